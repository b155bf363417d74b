#!/usr/bin/env python3
"""Component tests of XEP-0050 ad-hoc commands with the echo backend:
the command list per asker, every command's happy path, multi-step runs
with sessionids (wrong, foreign, canceled, reused), and the errors."""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (NS_COMPONENT, Causeway, FakeServer, Tap,  # noqa: E402
                     error_condition, q)

GW = "echo.localhost"
REG = "jabber:iq:register"
DATA = "jabber:x:data"
CMD = "http://jabber.org/protocol/commands"
DISCO_ITEMS = "http://jabber.org/protocol/disco#items"

ADMIN = "admin@localhost/console"
ALICE = "alice@localhost/a"
BOB = "bob@localhost/b"
STRANGER = "stranger@localhost/s"

USER_NODES = {"settings", "unregister", "echo-note"}
ADMIN_NODES = {"list-users", "user-details", "disconnect-user", "announce",
               "stats", "echo-count"}

tap = Tap()
_ids = [0]


def next_id():
    _ids[0] += 1
    return "c%d" % _ids[0]


def form(fields, typ="submit"):
    out = "<x xmlns='%s' type='%s'>" % (DATA, typ)
    for var, val in fields.items():
        vals = val if isinstance(val, list) else [val]
        out += "<field var='%s'>%s</field>" % (
            var, "".join("<value>%s</value>" % v for v in vals))
    return out + "</x>"


def register(conn, who, fields):
    x = form(dict(fields, FORM_TYPE=REG))
    return conn.iq("<query xmlns='%s'>%s</query>" % (REG, x), type_="set",
                   frm=who, id_=next_id())


def run(conn, who, node, action=None, sessionid=None, fields=None,
        payload=None):
    """One <command/> request; the answer (or None)."""
    attrs = " node='%s'" % node
    if action:
        attrs += " action='%s'" % action
    if sessionid:
        attrs += " sessionid='%s'" % sessionid
    inner = payload if payload is not None else \
        (form(fields) if fields is not None else "")
    return conn.iq("<command xmlns='%s'%s>%s</command>" % (CMD, attrs, inner),
                   type_="set", frm=who, id_=next_id())


def command(res):
    if res is None or res.get("type") != "result":
        return None
    return res.find(q(CMD, "command"))


def status(res):
    c = command(res)
    return c.get("status") if c is not None else None


def note(res):
    c = command(res)
    n = c.find(q(CMD, "note")) if c is not None else None
    return (n.get("type"), n.text or "") if n is not None else (None, "")


def xform(res):
    c = command(res)
    return c.find(q(DATA, "x")) if c is not None else None


def fields_of(x):
    """var -> (type, [values]) of a data form's top-level fields."""
    out = {}
    if x is None:
        return out
    for f in x.findall(q(DATA, "field")):
        out[f.get("var")] = (f.get("type"),
                             [v.text or "" for v in f.findall(q(DATA, "value"))])
    return out


def value(x, var):
    vals = fields_of(x).get(var, (None, []))[1]
    return vals[0] if vals else None


def cmd_error(res):
    """The XEP-0050 specific condition of an error, or None."""
    if res is None or res.get("type") != "error":
        return None
    err = res.find(q(NS_COMPONENT, "error"))
    for ch in (err if err is not None else []):
        if ch.tag.startswith("{%s}" % CMD):
            return ch.tag.split("}")[1]
    return None


def disco_commands(conn, who):
    res = conn.iq("<query xmlns='%s' node='%s'/>" % (DISCO_ITEMS, CMD),
                  frm=who, id_=next_id())
    if res is None or res.get("type") != "result":
        return None
    qel = res.find(q(DISCO_ITEMS, "query"))
    return {it.get("node"): it for it in qel.findall(q(DISCO_ITEMS, "item"))}


def drain(conn, timeout=0.5):
    """Drop what arrives within timeout (subscription requests...)."""
    out = []
    while True:
        st = conn.next_stanza(timeout)
        if st is None:
            return out
        out.append(st)


def messages_to(conn, timeout, jids):
    got = {}
    deadline = time.time() + timeout
    while time.time() < deadline and len(got) < len(jids):
        st = conn.next_stanza(max(0.05, deadline - time.time()),
                              lambda s: s.tag == q(NS_COMPONENT, "message")
                              and s.get("to") in jids)
        if st is None:
            break
        got[st.get("to")] = st
    return got


def body_of(st):
    b = st.find(q(NS_COMPONENT, "body")) if st is not None else None
    return b.text if b is not None else None


def test_disco(conn):
    items = disco_commands(conn, ADMIN)
    tap.check(items is not None and set(items) == ADMIN_NODES
              and all(i.get("jid") == GW and i.get("name")
                      for i in items.values()),
              "disco#items of commands: an admin sees the admin commands, "
              "each with jid and name", items and list(items))
    items = disco_commands(conn, ALICE)
    tap.check(items is not None and set(items) == USER_NODES,
              "disco#items of commands: a registered user sees settings and "
              "unregister", items and list(items))
    items = disco_commands(conn, STRANGER)
    tap.check(items == {}, "disco#items of commands: an unregistered user "
              "sees none", items and list(items))


def test_backend_commands(conn):
    """Commands a backend adds: listed, run with their form, validated,
    refused, and admin-only ones kept from users."""
    res = run(conn, ALICE, "echo-note")
    x = xform(res)
    tap.check(status(res) == "executing" and "note" in fields_of(x),
              "a backend's command shows its form")
    sid = command(res).get("sessionid") if command(res) is not None else None
    res = run(conn, ALICE, "echo-note", sessionid=sid, fields={"note": "x" * 101})
    tap.check(status(res) == "executing" and note(res)[0] == "error",
              "a value past the field's limit is asked again with an error",
              note(res))
    res = run(conn, ALICE, "echo-note", sessionid=sid, fields={"note": "milk"})
    tap.check(status(res) == "completed" and note(res) == ("info", "Noted: milk"),
              "the backend runs the submitted form and its note is shown",
              note(res))
    res = run(conn, BOB, "echo-note")
    sid = command(res).get("sessionid") if command(res) is not None else None
    res = run(conn, BOB, "echo-note", sessionid=sid, fields={"note": "fail"})
    tap.check(status(res) == "completed" and note(res)[0] == "error"
              and "refuses" in note(res)[1],
              "a command the backend refuses completes with an error note",
              note(res))
    res = run(conn, ALICE, "echo-count")
    tap.check(res is not None and res.get("type") == "error",
              "a backend's admin-only command is refused to a user")
    res = run(conn, ADMIN, "echo-count")
    tap.check(status(res) == "completed" and note(res) == ("info", "1 notes"),
              "an admin runs it; a command without fields runs at once",
              note(res))


def test_errors(conn):
    res = run(conn, ALICE, "stats")
    tap.check(error_condition(res) == ("auth", "forbidden"),
              "a non-admin running an admin command: forbidden")
    res = run(conn, ALICE, "no-such-command")
    tap.check(error_condition(res) == ("cancel", "item-not-found"),
              "an unknown node: item-not-found")
    res = run(conn, STRANGER, "settings")
    tap.check(error_condition(res) is not None
              and error_condition(res)[1] == "registration-required",
              "an unregistered user running a user command: "
              "registration-required")
    res = run(conn, ADMIN, "stats", action="jump")
    tap.check(error_condition(res) == ("modify", "bad-request")
              and cmd_error(res) == "malformed-action",
              "an unknown action: bad-request with <malformed-action/>")
    res = run(conn, ADMIN, "announce", action="complete")
    tap.check(error_condition(res) == ("modify", "bad-request")
              and cmd_error(res) == "bad-action",
              "complete without a session: bad-request with <bad-action/>")
    res = run(conn, ADMIN, "announce", action="cancel")
    tap.check(status(res) == "canceled",
              "cancel without a session: canceled, nothing to undo")


def test_stats(conn):
    res = run(conn, ADMIN, "stats")
    x = xform(res)
    f = fields_of(x)

    def num(var):
        v = value(x, var)
        return int(v) if v is not None and v.isdigit() else None
    sid = command(res).get("sessionid") if command(res) is not None else None
    tap.check(status(res) == "completed" and sid
              and x is not None and x.get("type") == "result",
              "stats: completed at once with a result form and a sessionid")
    res = run(conn, ADMIN, "stats", action="complete", sessionid=sid,
              fields={})
    tap.check(cmd_error(res) == "bad-sessionid",
              "the sessionid of a command done at once cannot be continued")
    tap.check(num("users") == 2,
              "stats: the registered users count matches (2)", f)
    tap.check(num("sessions") is not None and num("online") is not None
              and num("online") <= num("sessions")
              and num("queued") is not None and num("worker-jobs") is not None,
              "stats: sessions, online sessions, queued stanzas and worker "
              "jobs are numbers", f)
    tap.check(num("stanzas-in") is not None and num("stanzas-in") > 5
              and num("stanzas-out") is not None and num("stanzas-out") > 5,
              "stats: stanzas in and out are counted", f)
    tap.check(num("uptime") is not None and num("uptime") < 3600
              and num("memory") is not None and 100 < num("memory") < 10 ** 7,
              "stats: uptime in seconds and resident memory in KiB", f)


def test_list_users(conn):
    res = run(conn, ADMIN, "list-users")
    x = xform(res)
    rows = {}
    if x is not None:
        for it in x.findall(q(DATA, "item")):
            fs = {f.get("var"): (f.findtext(q(DATA, "value")) or "")
                  for f in it.findall(q(DATA, "field"))}
            rows[fs.get("jid")] = fs.get("state")
    rep = x.find(q(DATA, "reported")) if x is not None else None
    tap.check(status(res) == "completed" and x.get("type") == "result"
              and rep is not None and rows == {"alice@localhost": "offline",
                                               "bob@localhost": "offline"},
              "list-users: a result table of the registered users and their "
              "session state", rows)


def test_settings(conn, cw):
    res = run(conn, ALICE, "settings")
    c = command(res)
    sid = c.get("sessionid") if c is not None else None
    acts = c.find(q(CMD, "actions")) if c is not None else None
    x = xform(res)
    f = fields_of(x)
    tap.check(status(res) == "executing" and sid and len(sid) >= 16
              and acts is not None and acts.get("execute") == "complete"
              and acts.find(q(CMD, "complete")) is not None,
              "settings: executing, a random sessionid, actions offer complete")
    tap.check(x is not None and x.get("type") == "form"
              and value(x, "username") == "alice"
              and value(x, "greeting") == "hi: " and "password" not in f,
              "settings: the form holds the stored values, never the password",
              f)

    res = run(conn, ALICE, "settings", action="complete", sessionid="0" * 32,
              fields={"greeting": "x"})
    tap.check(error_condition(res) == ("modify", "bad-request")
              and cmd_error(res) == "bad-sessionid",
              "a wrong sessionid: bad-request with <bad-sessionid/>")
    res = run(conn, BOB, "settings", action="complete", sessionid=sid,
              fields={"greeting": "stolen: "})
    tap.check(cmd_error(res) == "bad-sessionid",
              "another JID using someone's sessionid: bad-sessionid")
    res = run(conn, "alice@localhost/other", "settings", action="complete",
              sessionid=sid, fields={"greeting": "stolen: "})
    tap.check(cmd_error(res) == "bad-sessionid",
              "another resource of the same user: bad-sessionid (the full "
              "JID owns the session)")
    res = run(conn, ALICE, "settings", action="prev", sessionid=sid,
              fields={"greeting": "x"})
    tap.check(cmd_error(res) == "bad-action",
              "an action the step does not offer (prev): <bad-action/>")
    res = run(conn, ALICE, "settings", action="complete", sessionid=sid)
    tap.check(cmd_error(res) == "bad-payload",
              "completing without a form: <bad-payload/>")
    res = run(conn, ALICE, "settings", action="complete", sessionid=sid,
              fields={"password": "sneaky"})
    tap.check(status(res) == "executing" and note(res)[0] == "error"
              and command(res).get("sessionid") == sid
              and xform(res) is not None,
              "an invalid submission (a secret field): the form again with an "
              "error note, same session", note(res))

    res = run(conn, ALICE, "settings", action="complete", sessionid=sid,
              fields={"username": "alice", "greeting": "new: "})
    tap.check(status(res) == "completed" and note(res)[0] == "info"
              and command(res).get("sessionid") == sid,
              "settings: submitted, completed with a note", note(res))
    res = run(conn, ALICE, "settings", action="complete", sessionid=sid,
              fields={"greeting": "again: "})
    tap.check(cmd_error(res) == "bad-sessionid",
              "a completed session's id is no longer valid")
    # poezio submits a one-form command with "next": it completes too.
    res = run(conn, ALICE, "settings")
    sid = command(res).get("sessionid") if command(res) is not None else None
    res = run(conn, ALICE, "settings", action="next", sessionid=sid,
              fields={"username": "alice", "greeting": "new: "})
    tap.check(status(res) == "completed" and note(res)[0] == "info"
              and command(res).get("sessionid") == sid,
              "settings submitted with action next: completed with a note",
              note(res))
    drain(conn, 0.3)

    conn.send("<presence from='%s' to='%s'/>" % (ALICE, GW))
    st = conn.next_stanza(5, lambda s: s.tag == q(NS_COMPONENT, "presence")
                          and s.get("from") == GW and s.get("type") is None)
    tap.check(st is not None and cw.wait_log("alice@localhost: online"),
              "alice comes online: the gateway's available presence")
    drain(conn, 0.3)
    conn.send("<message from='%s' to='echo@%s' id='m1' type='chat'>"
              "<body>hello</body></message>" % (ALICE, GW))
    st = conn.next_stanza(3, lambda s: s.tag == q(NS_COMPONENT, "message")
                          and s.get("from") == "echo@" + GW)
    tap.check(body_of(st) == "new: hello",
              "the echo contact answers with the new greeting",
              body_of(st))

    # The same values again: saved, and the live session is left alone.
    outs = cw.log_text().count("alice@localhost: logging out")
    res = run(conn, ALICE, "settings")
    sid = command(res).get("sessionid") if command(res) is not None else None
    res = run(conn, ALICE, "settings", action="complete", sessionid=sid,
              fields={"username": "alice", "greeting": "new: "})
    time.sleep(0.5)
    tap.check(status(res) == "completed" and note(res)[0] == "info"
              and cw.log_text().count("alice@localhost: logging out") == outs,
              "settings submitted unchanged: saved, the session is not "
              "logged out", note(res))
    # The backend's check refuses: nothing changes.
    res = run(conn, ALICE, "settings")
    sid = command(res).get("sessionid") if command(res) is not None else None
    res = run(conn, ALICE, "settings", action="complete", sessionid=sid,
              fields={"username": "taken", "greeting": "bad: "})
    tap.check(status(res) == "completed" and note(res)[0] == "error"
              and "Nothing was changed" in note(res)[1],
              "settings the backend's live check refuses: an error note",
              note(res))
    res = run(conn, ALICE, "settings")
    x = xform(res)
    tap.check(value(x, "username") == "alice" and value(x, "greeting") ==
              "new: ", "... and the stored values are as they were",
              fields_of(x))
    if command(res) is not None:
        run(conn, ALICE, "settings", action="cancel",
            sessionid=command(res).get("sessionid"))
    drain(conn, 0.3)


def test_user_details(conn):
    res = run(conn, ADMIN, "user-details")
    sid = command(res).get("sessionid") if command(res) is not None else None
    f = fields_of(xform(res))
    tap.check(status(res) == "executing" and sid
              and f.get("jid", (None,))[0] == "jid-single",
              "user-details: step 1 asks for a JID (jid-single)", f)
    res = run(conn, ADMIN, "user-details", action="cancel", sessionid=sid)
    tap.check(status(res) == "canceled" and command(res).get("sessionid") == sid,
              "cancel: status canceled")
    res = run(conn, ADMIN, "user-details", action="complete", sessionid=sid,
              fields={"jid": "alice@localhost"})
    tap.check(cmd_error(res) == "bad-sessionid",
              "a canceled session's id is no longer valid")

    res = run(conn, ADMIN, "user-details")
    sid = command(res).get("sessionid") if command(res) is not None else None
    res = run(conn, ADMIN, "user-details", sessionid=sid,
              fields={"jid": "Alice@localhost/some-resource"})
    x = xform(res)
    f = fields_of(x)
    tap.check(status(res) == "completed" and x is not None
              and x.get("type") == "result"
              and value(x, "jid") == "alice@localhost"
              and value(x, "username") == "alice"
              and value(x, "greeting") == "new: " and "password" not in f,
              "user-details: step 2 shows the user's values (execute = "
              "complete), never the secret ones", f)
    tap.check(value(x, "contacts") is not None
              and value(x, "contacts").isdigit()
              and value(x, "session") == "online",
              "user-details: contact count and session state", f)

    res = run(conn, ADMIN, "user-details")
    sid = command(res).get("sessionid") if command(res) is not None else None
    res = run(conn, ADMIN, "user-details", action="complete", sessionid=sid,
              fields={"jid": "nobody@localhost"})
    tap.check(status(res) == "completed" and note(res)[0] == "error",
              "user-details of someone not registered: an error note",
              note(res))
    res = run(conn, ADMIN, "user-details")
    sid = command(res).get("sessionid") if command(res) is not None else None
    res = run(conn, ADMIN, "user-details", action="complete", sessionid=sid,
              fields={"jid": "not a jid@@"})
    tap.check(status(res) == "executing" and note(res)[0] == "error",
              "user-details with an invalid JID: the form again with an error",
              note(res))
    run(conn, ADMIN, "user-details", action="cancel", sessionid=sid)


def test_disconnect(conn, cw):
    res = run(conn, ADMIN, "disconnect-user")
    sid = command(res).get("sessionid") if command(res) is not None else None
    f = fields_of(xform(res))
    tap.check(status(res) == "executing" and "jid" in f and "reason" in f,
              "disconnect-user: a form with jid and reason", f)
    res = run(conn, ADMIN, "disconnect-user", action="complete", sessionid=sid,
              fields={"jid": "alice@localhost", "reason": "maintenance"})
    st = conn.next_stanza(3, lambda s: s.tag == q(NS_COMPONENT, "presence")
                          and s.get("from") == GW
                          and s.get("to") == "alice@localhost")
    tap.check(status(res) == "completed" and note(res)[0] == "info"
              and cw.wait_log("alice@localhost: logging out (maintenance)"),
              "disconnect-user: the legacy session ends, with the reason",
              note(res))
    tap.check(st is not None,
              "disconnect-user: the user is told by the gateway's presence")
    res = run(conn, ADMIN, "disconnect-user")
    sid = command(res).get("sessionid") if command(res) is not None else None
    res = run(conn, ADMIN, "disconnect-user", action="complete", sessionid=sid,
              fields={"jid": "alice@localhost"})
    tap.check(status(res) == "completed" and note(res)[0] == "error"
              and "not online" in note(res)[1],
              "disconnect-user of a user not online: an error note", note(res))
    drain(conn, 0.3)


def test_announce(conn):
    res = run(conn, ADMIN, "announce")
    sid = command(res).get("sessionid") if command(res) is not None else None
    f = fields_of(xform(res))
    tap.check(status(res) == "executing"
              and f.get("body", (None,))[0] == "text-multi",
              "announce: a form with a text-multi body", f)
    res = run(conn, ADMIN, "announce", action="complete", sessionid=sid,
              fields={"body": ["Maintenance tonight", "at 22:00"]})
    got = messages_to(conn, 3, {"alice@localhost", "bob@localhost"})
    tap.check(status(res) == "completed" and "2" in note(res)[1],
              "announce: completed, the note says how many (2)", note(res))
    tap.check(set(got) == {"alice@localhost", "bob@localhost"}
              and all(m.get("from") == GW and m.get("type") == "headline"
                      and body_of(m) == "Maintenance tonight\nat 22:00"
                      for m in got.values()),
              "announce: a headline from the gateway reaches every registered "
              "user", got)
    res = run(conn, ADMIN, "announce")
    sid = command(res).get("sessionid") if command(res) is not None else None
    res = run(conn, ADMIN, "announce", sessionid=sid,
              fields={"body": "plain", "type": "normal"})
    got = messages_to(conn, 3, {"alice@localhost", "bob@localhost"})
    tap.check(status(res) == "completed" and len(got) == 2
              and all(m.get("type") == "normal" for m in got.values()),
              "announce: type normal when asked")


def test_limits(conn):
    # At most 16 pending runs per bare JID: the 17th drops the oldest.
    sids = []
    for _ in range(17):
        res = run(conn, ADMIN, "announce")
        c = command(res)
        sids.append(c.get("sessionid") if c is not None else None)
    res = run(conn, ADMIN, "announce", action="cancel", sessionid=sids[0])
    res2 = run(conn, ADMIN, "announce", action="cancel", sessionid=sids[1])
    tap.check(all(sids) and len(set(sids)) == 17
              and cmd_error(res) == "bad-sessionid"
              and status(res2) == "canceled",
              "16 pending runs per user: the 17th drops the oldest, the "
              "others stay")
    for sid in sids[2:]:
        run(conn, ADMIN, "announce", action="cancel", sessionid=sid)


def test_unregister(conn):
    res = run(conn, BOB, "unregister")
    sid = command(res).get("sessionid") if command(res) is not None else None
    f = fields_of(xform(res))
    tap.check(status(res) == "executing"
              and f.get("confirm", (None,))[0] == "boolean",
              "unregister: asks for a confirmation", f)
    res = run(conn, BOB, "unregister", action="complete", sessionid=sid,
              fields={"confirm": "false"})
    tap.check(status(res) == "completed" and disco_commands(conn, BOB)
              and set(disco_commands(conn, BOB)) == USER_NODES,
              "unregister not confirmed: still registered")

    res = run(conn, BOB, "unregister")
    sid = command(res).get("sessionid") if command(res) is not None else None
    res = run(conn, BOB, "unregister", action="complete", sessionid=sid,
              fields={"confirm": "true"})
    tap.check(status(res) == "completed" and note(res)[0] == "info",
              "unregister confirmed: completed", note(res))
    unsub = conn.next_stanza(3, lambda s: s.tag == q(NS_COMPONENT, "presence")
                             and s.get("to") == "bob@localhost"
                             and s.get("type") in ("unsubscribe",
                                                   "unsubscribed"))
    tap.check(unsub is not None,
              "unregister: the roster is cleaned as with <remove/>")
    res = conn.iq("<query xmlns='%s'/>" % REG, frm=BOB, id_=next_id())
    qel = res.find(q(REG, "query")) if res is not None else None
    tap.check(qel is not None and qel.find(q(REG, "registered")) is None,
              "unregister: a register get shows no <registered/> afterwards")
    tap.check(disco_commands(conn, BOB) == {},
              "unregister: the user's command list is empty afterwards")
    res = run(conn, ADMIN, "stats")
    tap.check(value(xform(res), "users") == "1",
              "stats: the users count follows (1)")
    drain(conn, 0.3)


def test_admin_and_user(conn):
    # An admin who also registers sees both lists.
    res = register(conn, ADMIN, {"username": "root", "password": "pw"})
    items = disco_commands(conn, ADMIN)
    tap.check(res is not None and res.get("type") == "result"
              and items is not None and set(items) == ADMIN_NODES | USER_NODES,
              "a registered admin sees user and admin commands",
              items and list(items))
    drain(conn, 0.3)


def test_shutdown(conn, cw):
    # Runs still pending at shutdown are freed (a sanitizer build would
    # report a leak or a bad free here).
    res = run(conn, ADMIN, "announce")
    tap.check(status(res) == "executing", "a run is left pending")
    cw.signal(signal.SIGTERM)
    conn.wait_closed(5)
    rc = cw.wait_exit(10)
    log = cw.log_text()
    tap.check(rc == 0 and "Sanitizer" not in log
              and "runtime error" not in log,
              "SIGTERM with a pending run: clean exit, no sanitizer report",
              log[-3000:])


def main():
    srv = FakeServer(domain=GW)
    cw = Causeway(srv.port, domain=GW, backend="echo",
                  extra="admins = admin@localhost\nlinger = 0\n").start()
    conn = srv.accept()
    try:
        tap.check(conn is not None and conn.handshake_ok,
                  "causeway connects", cw.log_text())
        res = register(conn, ALICE, {"username": "alice", "password": "pw",
                                     "greeting": "hi: "})
        res2 = register(conn, BOB, {"username": "bob", "password": "pw"})
        info = conn.iq("<query xmlns='http://jabber.org/protocol/disco#info' "
                       "node='stats'/>", frm=ALICE, id_="node-info")
        ident = info.find(".//{http://jabber.org/protocol/disco#info}identity") \
            if info is not None else None
        tap.check(ident is not None and ident.get("category") == "automation"
                  and ident.get("type") == "command-node",
                  "disco#info on a command node: automation/command-node")
        tap.check(res is not None and res.get("type") == "result"
                  and res2 is not None and res2.get("type") == "result",
                  "alice and bob register")
        drain(conn, 0.3)
        test_disco(conn)
        test_errors(conn)
        test_backend_commands(conn)
        test_stats(conn)
        test_list_users(conn)
        test_settings(conn, cw)
        test_user_details(conn)
        test_disconnect(conn, cw)
        test_announce(conn)
        test_limits(conn)
        test_unregister(conn)
        test_admin_and_user(conn)
        tap.check(cw.alive(), "causeway is still running")
        test_shutdown(conn, cw)
    finally:
        cw.close()
        srv.close()
    return tap.done()


if __name__ == "__main__":
    sys.exit(main())
