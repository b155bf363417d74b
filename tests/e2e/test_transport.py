#!/usr/bin/python3
"""End-to-end: the transport core with the echo test backend, driven by
real clients through a real server: discovery, XEP-0077 registration with
a data form, the presence subscriptions of XEP-0100, the legacy contact
showing up in the roster, messages both ways (XEP-0106 escaped addresses
too), the jabber:iq:gateway lookup, registration-required for strangers,
logout and login following the user's presence, unregistration cleaning
the roster, and the XEP-0050 ad-hoc commands.

Runs against Prosody and ejabberd (each skipped when not installed).
causeway is attached as echo.localhost (backend = echo, linger = 0,
admins = admin@localhost).  Output is TAP; exit status 0 only when every
test passed.

  /usr/bin/python3 tests/e2e/test_transport.py            # both servers
  /usr/bin/python3 tests/e2e/test_transport.py ejabberd   # one of them
Environment: CAUSEWAY_BIN (default ../../causeway from this file),
CWTEST_KEEP=1 keeps the temp dirs, CWTEST_XMPP_LOG=DEBUG traces the clients.
"""

import asyncio
import os
import re
import secrets
import sys
import time
from xml.etree import ElementTree as ET

sys.dont_write_bytecode = True                  # no __pycache__ in the tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cwtest                                   # noqa: E402
from cwtest import Causeway, Client, Ejabberd, Prosody, Tap   # noqa: E402

DOMAIN = "echo.localhost"
ECHO = "echo@" + DOMAIN
ESCAPED = "bob\\40example.net@" + DOMAIN        # bob@example.net, XEP-0106
HANDSHAKE = r"echo\.localhost: handshake accepted"

C = "{jabber:client}"
NS_INFO = "http://jabber.org/protocol/disco#info"
NS_ITEMS = "http://jabber.org/protocol/disco#items"
NS_REGISTER = "jabber:iq:register"
NS_GATEWAY = "jabber:iq:gateway"
NS_ROSTER = "jabber:iq:roster"
NS_DATA = "jabber:x:data"
NS_COMMANDS = "http://jabber.org/protocol/commands"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"

ADHOC_SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                         "..", "..", "src", "adhoc.c")


def xml_str(el):
    return "<none>" if el is None else ET.tostring(el, encoding="unicode")


def bare(jid):
    return (jid or "").split("/", 1)[0].lower()


def error_condition(el):
    """The defined condition of a stanza's <error/>, or None."""
    for e in el.findall(C + "error/*"):
        if e.tag.startswith("{%s}" % NS_STANZAS) and not e.tag.endswith("}text"):
            return e.tag.split("}", 1)[1]
    return None


def adhoc_implemented():
    """src/adhoc.c exists and is more than the stub."""
    try:
        with open(ADHOC_SRC) as f:
            text = f.read()
    except OSError:
        return False
    return not re.search(r"\bstub\b", text[:600]) and text.count("\n") > 80


class User(cwtest.RecordingClient):
    """A client that behaves like an IM client: it fetches its roster,
    sends available presence, and records every presence, message and
    roster push it receives.  Subscription requests are answered by the
    test (auto_authorize off)."""

    def prepare(self, xmpp):
        xmpp.auto_authorize = None          # the test answers requests
        xmpp.auto_subscribe = False
        self.record(xmpp, {"presence": C + "presence", "message": C + "message",
                           "push": "%siq/{%s}query" % (C, NS_ROSTER)},
                    self.keep)

    def login(self, timeout=20, presence=True):
        if not super().login(timeout):
            return False
        if presence:
            # As an IM client: roster first, then initial presence.
            self.roster()
            self.xmpp.send_presence()
        return True

    # -- what arrived --


    def wait_log(self, cw, regex, count=1, timeout=10):
        """cw.wait_for() while the client keeps its stream going."""
        return self.pump_until(lambda: cw.wait_for(regex, count, 0), timeout)

    def wait_roster(self, cond, timeout):
        """Poll the roster until cond(roster) is true; return the last
        roster fetched (None if the roster get failed)."""
        deadline = time.monotonic() + timeout
        while True:
            r = self.roster()
            if (r is not None and cond(r)) or time.monotonic() >= deadline:
                return r
            self.pump(0.2)

    def dump(self, since=0, n=12):
        return "\n".join("%s: %s" % (k, xml_str(e))
                         for k, e in self.got[since:][-n:]) or "(nothing received)"

    # -- sending --

    def presence(self, to=None, ptype=None):
        self.xmpp.send_presence(pto=to, ptype=ptype)

    def message(self, to, body):
        self.xmpp.send_message(mto=to, mbody=body, mtype="chat")

    def roster(self):
        """The roster as the server has it: {bare jid: element}, or None
        when the roster get fails."""
        r = self.iq(None, "<query xmlns='%s'/>" % NS_ROSTER)
        if r.type != "result":
            return None
        return {bare(i.get("jid")): i for i in
                r.findall("{%s}query/{%s}item" % (NS_ROSTER, NS_ROSTER))}


def is_presence(frm, ptype=None):
    """Matcher: a presence from bare JID frm, of type ptype (None:
    available)."""
    def pred(kind, el):
        return kind == "presence" and bare(el.get("from")) == frm and \
            el.get("type") == ptype
    return pred


def register_form(username, password, greeting=None):
    fields = [("FORM_TYPE", NS_REGISTER), ("username", username),
              ("password", password)]
    if greeting is not None:
        fields.append(("greeting", greeting))
    x = "".join("<field var='%s'><value>%s</value></field>" % f for f in fields)
    return ("<query xmlns='%s'><x xmlns='%s' type='submit'>%s</x></query>"
            % (NS_REGISTER, NS_DATA, x))


def form_fields(r):
    """{var: field element} of the data form in a register answer."""
    x = r.find("{%s}query/{%s}x" % (NS_REGISTER, NS_DATA))
    if x is None:
        return None, {}
    return x, {f.get("var"): f for f in x.findall("{%s}field" % NS_DATA)}


def field_value(f):
    v = f.find("{%s}value" % NS_DATA) if f is not None else None
    return v.text if v is not None else None


def roster_items(roster):
    """The gateway's items in a roster dict: echo.localhost, *@echo.localhost."""
    return {j: el.get("subscription") for j, el in (roster or {}).items()
            if j == DOMAIN or j.endswith("@" + DOMAIN)}


# --------------------------------------------------------------------------


def check_disco(tap, label, alice):
    r = alice.iq(DOMAIN, "<query xmlns='%s'/>" % NS_INFO)
    idents = [(i.get("category"), i.get("type")) for i in
              r.findall("{%s}query/{%s}identity" % (NS_INFO, NS_INFO))]
    feats = {f.get("var") for f in
             r.findall("{%s}query/{%s}feature" % (NS_INFO, NS_INFO))}
    tap.ok(r.type == "result" and ("gateway", "echo") in idents,
           "%s: disco#info on %s: identity gateway/echo" % (label, DOMAIN),
           diag="got %s: %s" % (r.type, r))
    want = {NS_REGISTER, NS_GATEWAY}
    tap.ok(want <= feats, "%s: disco#info features include jabber:iq:register "
           "and jabber:iq:gateway" % label,
           diag="missing %r; features %r" % (sorted(want - feats), sorted(feats)))


def check_register(tap, label, alice):
    """Form, wrong password, good password.  Returns True if registered."""
    r = alice.iq(DOMAIN, "<query xmlns='%s'/>" % NS_REGISTER)
    x, fields = form_fields(r)
    ftype = field_value(fields.get("FORM_TYPE"))
    pw = fields.get("password")
    tap.ok(r.type == "result" and x is not None and ftype == NS_REGISTER
           and "username" in fields and pw is not None,
           "%s: register get: a jabber:x:data form (FORM_TYPE %s) with "
           "username and password" % (label, NS_REGISTER),
           diag="got %s: %s" % (r.type, r))
    tap.ok(pw is not None and pw.get("type") == "text-private",
           "%s: register form: password is text-private" % label,
           diag="password field: %s" % xml_str(pw))
    tap.ok(r.find("{%s}query/{%s}registered" % (NS_REGISTER, NS_REGISTER)) is None,
           "%s: register get before registering: no <registered/>" % label,
           diag=str(r))

    r = alice.iq(DOMAIN, register_form("alice", "wrong"), "set")
    tap.ok(r.type == "error" and r.error_condition == "not-authorized",
           "%s: register with password \"wrong\": not-authorized" % label,
           diag="got %s (%s): %s" % (r.type, r.error_condition, r))

    r = alice.iq(DOMAIN, register_form("alice", "s3cret-" + secrets.token_hex(4)),
                 "set")
    return tap.ok(r.type == "result", "%s: register with a good password: "
                  "result" % label,
                  diag="got %s (%s): %s" % (r.type, r.error_condition, r))


def check_subscriptions(tap, label, server, cw, alice, since):
    """Steps 3 and 4: the gateway's subscription request, login, the
    gateway's presence, the echo contact in the roster and online."""
    sub = alice.wait(is_presence(DOMAIN, "subscribe"), 10, since)
    if not tap.ok(sub is not None, "%s: after registering, %s asks alice for "
                  "a presence subscription" % (label, DOMAIN),
                  diag="received:\n" + alice.dump(since)):
        return False
    logins = cw.count(r"echo\.localhost: alice@localhost: logging in")
    # Approve, and ask back, as an IM client does.
    alice.presence(DOMAIN, "subscribed")
    alice.presence(DOMAIN, "subscribe")
    # The server now sends alice's available presence to the gateway.
    how = "the server forwards alice's presence after her approval"
    hit = alice.wait_log(cw, r"echo\.localhost: alice@localhost: logging in",
                         logins + 1, 8)
    if not hit:
        tap.diag("%s: no login 8 s after alice approved; sending directed "
                 "presence to %s" % (label, DOMAIN))
        how = "after directed presence; the server did not forward it"
        alice.presence(DOMAIN)
        hit = alice.wait_log(cw, r"echo\.localhost: alice@localhost: logging in",
                             logins + 1, 8)
    tap.ok(hit, "%s: alice approves; the gateway logs her in (%s)" % (label, how),
           diag="received:\n" + alice.dump(since))
    online = alice.wait_log(cw, r"echo\.localhost: alice@localhost: online", 1, 8)
    tap.ok(online, "%s: alice's echo session is online" % label)

    gw = alice.wait(is_presence(DOMAIN), 10, since)
    tap.ok(gw is not None, "%s: alice receives the gateway's available "
           "presence" % label, diag="received:\n" + alice.dump(since))

    if isinstance(server, Prosody):
        # XEP-0356: the gateway pushes the item itself.
        def push(kind, el):
            if kind != "push" or el.get("type") != "set":
                return False
            return any(bare(i.get("jid")) == ECHO and i.get("subscription") == "both"
                       for i in el.iter("{%s}item" % NS_ROSTER))
        p = alice.wait(push, 10, since)
        tap.ok(p is not None, "%s: the gateway puts %s in alice's roster "
               "(XEP-0356 roster push, subscription both)" % (label, ECHO),
               diag="received:\n" + alice.dump(since))
        asked = alice.find(is_presence(ECHO, "subscribe"), since)
        if asked is not None:
            tap.diag("%s: %s also sent a subscription request: %s"
                     % (label, ECHO, xml_str(asked)))
            if p is None:       # approve it, so the later steps can run
                alice.presence(ECHO, "subscribed")
                alice.presence(ECHO, "subscribe")
    else:
        # ejabberd 23.01 refuses privileged roster sets: a request instead.
        asked = alice.wait(is_presence(ECHO, "subscribe"), 10, since)
        tap.ok(asked is not None, "%s: %s asks alice for a presence "
               "subscription (no privileged roster set on ejabberd)" % (label, ECHO),
               diag="received:\n" + alice.dump(since))
        if asked is not None:
            alice.presence(ECHO, "subscribed")
            alice.presence(ECHO, "subscribe")

    roster = alice.wait_roster(
        lambda r: ECHO in r and r[ECHO].get("subscription") == "both", 8)
    item = (roster or {}).get(ECHO)
    tap.ok(item is not None, "%s: %s is in alice's roster (subscription %s)"
           % (label, ECHO, item.get("subscription") if item is not None else "-"),
           diag="roster: %s" % {j: xml_str(e) for j, e in (roster or {}).items()})
    if isinstance(server, Prosody) and item is not None:
        tap.ok(item.get("subscription") == "both", "%s: the roster item of %s "
               "has subscription both" % (label, ECHO), diag=xml_str(item))

    av = alice.wait(is_presence(ECHO), 10, since)
    tap.ok(av is not None, "%s: %s's presence is available" % (label, ECHO),
           diag="received:\n" + alice.dump(since))
    return True


def check_messages(tap, label, alice):
    def reply(frm, body):
        def pred(kind, el):
            b = el.find(C + "body")
            return kind == "message" and bare(el.get("from")) == frm.lower() \
                and el.get("type") != "error" and b is not None and b.text == body
        return pred

    m0 = alice.mark()
    t0 = time.monotonic()
    alice.message(ECHO, "hello")
    r = alice.wait(reply(ECHO, "echo: hello"), 10, m0)
    tap.ok(r is not None, "%s: \"hello\" to %s is answered \"echo: hello\" by it "
           "(%.0f ms)" % (label, ECHO, 1000 * (time.monotonic() - t0)),
           diag="received:\n" + alice.dump(m0))

    m0 = alice.mark()
    text = "hi " + secrets.token_hex(3)
    alice.message(ESCAPED, text)
    r = alice.wait(reply(ESCAPED, "echo: " + text), 10, m0)
    tap.ok(r is not None, "%s: a message to %s (XEP-0106 escaped) is answered "
           "from that JID" % (label, ESCAPED),
           diag="received:\n" + alice.dump(m0))


def check_gateway_lookup(tap, label, alice):
    r = alice.iq(DOMAIN, "<query xmlns='%s'><prompt> Carol </prompt></query>"
                 % NS_GATEWAY, "set")
    jid = r.find("{%s}query/{%s}jid" % (NS_GATEWAY, NS_GATEWAY))
    jid = jid.text if jid is not None else None
    tap.ok(r.type == "result" and jid == "carol@" + DOMAIN,
           "%s: jabber:iq:gateway set with prompt \" Carol \" returns "
           "carol@%s" % (label, DOMAIN), diag="got %s: %s" % (r.type, r))


def check_stranger(tap, label, server, password):
    bob = User(server.c2s_port, "bob@localhost", password)
    try:
        if not tap.ok(bob.login(), "%s: bob logs in" % label,
                      diag=getattr(bob, "error", None)):
            return
        bob.message(ECHO, "hello from a stranger")
        err = bob.wait(lambda k, el: k == "message" and el.get("type") == "error"
                       and bare(el.get("from")) == ECHO, 10)
        cond = error_condition(err) if err is not None else None
        tap.ok(cond == "registration-required", "%s: bob (not registered) "
               "messages %s: error registration-required" % (label, ECHO),
               diag="error: %s\nreceived:\n%s" % (xml_str(err), bob.dump()))
    finally:
        bob.close()


def check_relogin(tap, label, cw, alice):
    out_re = r"echo\.localhost: alice@localhost: logging out"
    in_re = r"echo\.localhost: alice@localhost: logging in"
    n_out, n_in = cw.count(out_re), cw.count(in_re)
    t0 = time.monotonic()
    alice.close()
    out = cw.wait_for(out_re, n_out + 1, 10)
    tap.ok(out, "%s: alice goes offline: the gateway logs her out (%s)"
           % (label, ("%.1f s" % (out[0] - t0)) if out else "no"),
           diag="causeway lines about alice: %r" % [
               l for _, l in cw.matching(r"alice@localhost")][-5:])
    m0 = alice.mark()
    t1 = time.monotonic()
    ok = alice.login()
    if not tap.ok(ok, "%s: alice logs in again" % label,
                  diag=getattr(alice, "error", None)):
        return False
    hit = alice.wait_log(cw, in_re, n_in + 1, 10)
    tap.ok(hit and (not out or hit[0] >= out[0]),
           "%s: alice comes back online: the gateway logs her in again (%s)"
           % (label, ("%.1f s" % (hit[0] - t1)) if hit else "no"),
           diag="causeway lines about alice: %r" % [
               l for _, l in cw.matching(r"alice@localhost")][-5:])
    gw = alice.wait(is_presence(DOMAIN), 10, m0)
    echo = alice.wait(is_presence(ECHO), 10, m0)
    tap.ok(gw is not None and echo is not None, "%s: after logging in again "
           "alice sees %s and %s available" % (label, DOMAIN, ECHO),
           diag="received:\n" + alice.dump(m0))
    return True


def check_unregister(tap, label, server, alice):
    m0 = alice.mark()
    r = alice.iq(DOMAIN, "<query xmlns='%s'><remove/></query>" % NS_REGISTER,
                 "set")
    tap.ok(r.type == "result", "%s: unregister (<remove/>): result" % label,
           diag="got %s (%s): %s" % (r.type, r.error_condition, r))
    t0 = time.monotonic()
    if isinstance(server, Prosody):
        # XEP-0356: the gateway removes the items itself.
        roster = alice.wait_roster(lambda r: not roster_items(r), 8)
        items = roster_items(roster)
        tap.ok(roster is not None and not items, "%s: after unregistering "
               "alice's roster has no item for %s or *@%s (%.1f s)"
               % (label, DOMAIN, DOMAIN, time.monotonic() - t0),
               diag="gateway items left (jid: subscription): %r\nroster: %s\n"
               "received:\n%s" % (items, {j: xml_str(e) for j, e in
                                          (roster or {}).items()}, alice.dump(m0)))
    else:
        # ejabberd 23.01 refuses privileged roster sets: the gateway can
        # only end every subscription (unsubscribe + unsubscribed); by
        # RFC 6121 the items stay with subscription none, and XEP-0100
        # leaves their removal to the client.
        def ended(r):
            return all(r[j].get("subscription") == "none" and not r[j].get("ask")
                       for j in roster_items(r))
        roster = alice.wait_roster(ended, 8)
        items = roster_items(roster)
        tap.ok(roster is not None and ended(roster),
               "%s: after unregistering no item for %s or *@%s in alice's "
               "roster keeps a subscription (%.1f s; %d left with "
               "subscription none for the client to remove)"
               % (label, DOMAIN, DOMAIN, time.monotonic() - t0, len(items)),
               diag="gateway items (jid: subscription): %r\nroster: %s\n"
               "received:\n%s" % (items, {j: xml_str(e) for j, e in
                                          (roster or {}).items()}, alice.dump(m0)))
        # As a XEP-0100 client: remove them.
        for j in items:
            alice.iq(None, "<query xmlns='%s'><item jid='%s' subscription="
                     "'remove'/></query>" % (NS_ROSTER, j), "set")
    r = alice.iq(DOMAIN, "<query xmlns='%s'/>" % NS_REGISTER)
    tap.ok(r.type == "result" and
           r.find("{%s}query/{%s}registered" % (NS_REGISTER, NS_REGISTER)) is None,
           "%s: register get after unregistering: no <registered/>" % label,
           diag="got %s: %s" % (r.type, r))


def check_adhoc(tap, label, server, alice, admin_password):
    todo = None if adhoc_implemented() else \
        "src/adhoc.c is still a stub (ad-hoc commands not implemented)"
    admin = User(server.c2s_port, "admin@localhost", admin_password)
    try:
        if tap.ok(admin.login(presence=False), "%s: admin logs in" % label,
                  diag=getattr(admin, "error", None)):
            r = admin.iq(DOMAIN, "<command xmlns='%s' node='stats' "
                         "action='execute'/>" % NS_COMMANDS, "set")
            cmd = r.find("{%s}command" % NS_COMMANDS)
            x = cmd.find("{%s}x" % NS_DATA) if cmd is not None else None
            tap.ok(r.type == "result" and cmd is not None and
                   cmd.get("status") == "completed" and x is not None and
                   x.get("type") == "result",
                   "%s: admin@localhost runs the \"stats\" command: completed, "
                   "with a result form" % label,
                   diag="got %s: %s" % (r.type, r), todo=todo)
    finally:
        admin.close()

    r = alice.iq(DOMAIN, register_form("alice", "again-" + secrets.token_hex(4)),
                 "set")
    registered = tap.ok(r.type == "result", "%s: alice registers again" % label,
                        diag="got %s (%s): %s" % (r.type, r.error_condition, r))
    r = alice.iq(DOMAIN, "<query xmlns='%s' node='%s'/>" % (NS_ITEMS, NS_COMMANDS))
    nodes = {i.get("node") for i in
             r.findall("{%s}query/{%s}item" % (NS_ITEMS, NS_ITEMS))}
    tap.ok(registered and r.type == "result" and {"settings", "unregister"} <= nodes
           and "stats" not in nodes,
           "%s: alice's command list has settings and unregister, not stats"
           % label, diag="nodes %r; got %s: %s" % (sorted(n or "" for n in nodes),
                                                   r.type, r), todo=todo)


def run_server(tap, cls):
    label = cls.name
    t_server = time.monotonic()
    server = cls(domain=DOMAIN, tap=tap)
    cw = alice = None
    try:
        t0 = time.monotonic()
        server.start()
        passwords = {u: secrets.token_hex(8) for u in ("alice", "bob", "admin")}
        for u, pw in passwords.items():
            server.register(u, pw)
        tap.ok(True, "%s: server up, alice, bob and admin registered (%.1f s)"
               % (label, time.monotonic() - t0))

        cw = Causeway(server, tap=tap, name="causeway-%s" % label,
                      backend="echo",
                      options={"linger": 0, "admins": "admin@localhost"})
        cw.start()
        h = cw.wait_for(HANDSHAKE, 1, 20)
        if not tap.ok(h, "%s: causeway attached as %s (backend echo)"
                      % (label, DOMAIN),
                      diag="no line matching %r; causeway %s"
                      % (HANDSHAKE, "running" if cw.alive() else
                         "exited %r" % cw.popen.poll())):
            return

        alice = User(server.c2s_port, "alice@localhost", passwords["alice"])
        if not tap.ok(alice.login(), "%s: alice logs in" % label,
                      diag=getattr(alice, "error", None)):
            return
        check_disco(tap, label, alice)
        since = alice.mark()
        if not check_register(tap, label, alice):
            return
        if not check_subscriptions(tap, label, server, cw, alice, since):
            return
        check_messages(tap, label, alice)
        check_gateway_lookup(tap, label, alice)
        check_stranger(tap, label, server, passwords["bob"])
        if not check_relogin(tap, label, cw, alice):
            return
        check_unregister(tap, label, server, alice)
        check_adhoc(tap, label, server, alice, passwords["admin"])
        tap.ok(cw.alive() and cw.count(HANDSHAKE) == 1,
               "%s: causeway stayed up and attached throughout" % label,
               diag="%d handshakes; causeway %s" % (
                   cw.count(HANDSHAKE), "running" if cw.alive()
                   else "exited %r" % cw.popen.poll()))
    except Exception as e:
        cwtest.mark_failed()
        tap.bail("%s: unexpected exception: %s" % (label, e), e)
    finally:
        cwtest.stop_all(tap, label, server, t_server, alice, cw)


def main():
    return cwtest.main_per_server('transport tests', run_server)


if __name__ == "__main__":
    sys.exit(main())
