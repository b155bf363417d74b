#!/usr/bin/env python3
"""Component tests of the room layer (XEP-0045) with the echo backend:
joins (also before the legacy login), the join sequence, messages with
stanza-ids, nick changes, private messages, kicks, bans and closes from
the network, XEP-0410 self-ping, disco#info, several resources in one
room, limits, and the session ending after the last room is left.
Persistent rooms: the owner form, a room kept while the user is away,
history on the rejoin, XEP-0313 MAM on the room."""

import os
import xml.etree.ElementTree as ET
import signal
import sqlite3
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (NS_COMPONENT, Causeway, FakeServer, Tap,  # noqa: E402
                     error_condition, q)

GW = "echo.localhost"
REG = "jabber:iq:register"
MUC = "http://jabber.org/protocol/muc"
MUC_USER = MUC + "#user"
MUC_ADMIN = MUC + "#admin"
SID = "urn:xmpp:sid:0"
DISCO_INFO = "http://jabber.org/protocol/disco#info"
PING = "urn:xmpp:ping"
OWNER = MUC + "#owner"
ROOMCONFIG = MUC + "#roomconfig"
DATA = "jabber:x:data"
MAM = "urn:xmpp:mam:2"
RSM = "http://jabber.org/protocol/rsm"
FORWARD = "urn:xmpp:forward:0"
DELAY = "urn:xmpp:delay"

tap = Tap()


def register(conn, who, username, id_):
    form = ("<x xmlns='jabber:x:data' type='submit'>"
            "<field var='FORM_TYPE' type='hidden'><value>%s</value></field>"
            "<field var='username'><value>%s</value></field>"
            "<field var='password'><value>pw</value></field></x>"
            % (REG, username))
    return conn.iq("<query xmlns='%s'>%s</query>" % (REG, form),
                   type_="set", frm=who, id_=id_, timeout=5)


def room_jid(room, nick=None):
    return "%s@%s%s" % (room, GW, "/" + nick if nick else "")


def bare(jid):
    return (jid or "").split("/", 1)[0]


def nick_of(st):
    f = st.get("from") or ""
    return f.split("/", 1)[1] if "/" in f else None


def is_(kind):
    return lambda s: s.tag == q(NS_COMPONENT, kind)


def codes(st):
    x = st.find(q(MUC_USER, "x")) if st is not None else None
    if x is None:
        return set()
    return {s.get("code") for s in x.findall(q(MUC_USER, "status"))}


def item(st):
    x = st.find(q(MUC_USER, "x")) if st is not None else None
    return x.find(q(MUC_USER, "item")) if x is not None else None


def text(st, name, ns=NS_COMPONENT):
    el = st.find(q(ns, name)) if st is not None else None
    return el.text or "" if el is not None else None


def drain(conn, timeout=0.3):
    while conn.next_stanza(timeout) is not None:
        pass


def collect(conn, stop, keep, timeout=5.0):
    """Stanzas matching keep, in order, up to and including the first one
    matching stop; (list, stopped)."""
    out = []
    deadline = time.time() + timeout
    while True:
        st = conn.next_stanza(max(0.01, deadline - time.time()), keep)
        if st is None:
            return out, False
        out.append(st)
        if stop(st):
            return out, True


def join_presence(conn, who, room, nick, extra="", id_="j", x=True):
    conn.send("<presence from='%s' to='%s' id='%s'>%s%s</presence>" %
              (who, room_jid(room, nick), id_,
               "<x xmlns='%s'>%s</x>" % (MUC, extra) if x else "", ""))


def join_sequence(conn, who, room, timeout=5.0):
    """What a resource gets from the room until its subject message."""
    return collect(conn,
                   lambda s: s.tag == q(NS_COMPONENT, "message")
                   and s.find(q(NS_COMPONENT, "subject")) is not None,
                   lambda s: bare(s.get("from")) == room_jid(room)
                   and s.get("to") == who, timeout)


def from_room(room, who=None, kind=None):
    return lambda s: bare(s.get("from")) == room_jid(room) and \
        (who is None or s.get("to") == who) and \
        (kind is None or s.tag == q(NS_COMPONENT, kind))


def groupchat(conn, who, room, body, id_):
    conn.send("<message from='%s' to='%s' type='groupchat' id='%s'>"
              "<body>%s</body></message>" % (who, room_jid(room), id_, body))


def stanza_id(st):
    el = st.find(q(SID, "stanza-id")) if st is not None else None
    return (el.get("id"), el.get("by")) if el is not None else None


A = "alice@localhost/a"
B = "alice@localhost/b"
C = "alice@localhost/c"


def test_refused_joins(conn, cw):
    join_presence(conn, "stranger@localhost/x", "#test", "str", id_="jr")
    st = conn.next_stanza(3, lambda s: s.get("id") == "jr")
    tap.check(error_condition(st) == ("auth", "registration-required")
              and st.get("from") == room_jid("#test", "str"),
              "join from an unregistered user: registration-required", st)

    conn.send("<presence from='%s' to='%s' id='je'><x xmlns='%s'/></presence>"
              % (A, room_jid("#test"), MUC))
    st = conn.next_stanza(3, lambda s: s.get("id") == "je")
    tap.check(error_condition(st) == ("modify", "jid-malformed"),
              "join without a nick: jid-malformed", st)

    join_presence(conn, A, "#test", "n" * 65, id_="jl")
    st = conn.next_stanza(3, lambda s: s.get("id") == "jl")
    tap.check(error_condition(st) == ("modify", "not-acceptable"),
              "join with a 65-byte nick: not-acceptable", st)

    join_presence(conn, A, "#test", "a b", id_="js")
    st = conn.next_stanza(3, lambda s: s.get("id") == "js")
    tap.check(error_condition(st) == ("modify", "not-acceptable"),
              "join with a blank in the nick: not-acceptable", st)
    tap.check("alice@localhost: logging in" not in cw.log_text(),
              "refused joins cause no legacy login")


def test_join(conn, cw):
    join_presence(conn, A, "#test", "alice", id_="j1")
    seq, done = join_sequence(conn, A, "#test")
    pres = [s for s in seq if s.tag == q(NS_COMPONENT, "presence")]
    self_i = [i for i, s in enumerate(pres) if "110" in codes(s)]
    others = {nick_of(s): item(s) for s in pres if "110" not in codes(s)}
    tap.check(done and cw.wait_log("alice@localhost: logging in", timeout=1),
              "a join without any presence to the gateway logs the user "
              "in and completes", [s.attrib for s in seq])
    tap.check(len(self_i) == 1 and self_i[0] == len(pres) - 1
              and others.get("echo") is not None
              and others["echo"].get("role") == "moderator"
              and others.get("bot") is not None
              and others["bot"].get("role") == "participant"
              and others["bot"].get("jid") is None,
              "occupants (echo moderator, bot participant) come before "
              "the self-presence", [(s.get("from"), codes(s)) for s in pres])
    me = pres[self_i[0]] if self_i else None
    tap.check(me is not None and {"110", "100"} <= codes(me)
              and "210" not in codes(me)
              and me.get("from") == room_jid("#test", "alice")
              and me.get("id") == "j1"
              and item(me).get("jid") == A,
              "self-presence: 110 and 100 (non-anonymous), own jid, the "
              "join's id", me is not None and (me.attrib, codes(me)))
    subj = seq[-1] if done else None
    tap.check(subj is not None and subj.get("type") == "groupchat"
              and text(subj, "subject") == "Welcome to #test"
              and text(subj, "body") is None
              and subj.get("from") == room_jid("#test", "echo"),
              "then the subject: 'Welcome to #test'",
              subj is not None and subj.attrib)


def test_messages(conn, cw):
    groupchat(conn, A, "#test", "hello", "m1")
    refl = conn.next_stanza(3, lambda s: s.get("id") == "m1")
    tap.check(refl is not None and refl.get("type") == "groupchat"
              and refl.get("from") == room_jid("#test", "alice")
              and refl.get("to") == A and text(refl, "body") == "hello"
              and stanza_id(refl) is not None
              and stanza_id(refl)[1] == room_jid("#test"),
              "groupchat: reflected with the same id and a stanza-id by the "
              "room", refl is not None and refl.attrib)
    echo = conn.next_stanza(3, lambda s: s.get("from") == room_jid("#test", "echo")
                            and s.tag == q(NS_COMPONENT, "message"))
    tap.check(echo is not None and text(echo, "body") == "echo: hello"
              and echo.get("type") == "groupchat"
              and stanza_id(echo) is not None
              and stanza_id(echo)[0] != stanza_id(refl)[0],
              "then echo answers 'echo: hello' with its own stanza-id",
              echo is not None and echo.attrib)

    groupchat(conn, "alice@localhost/other", "#test", "sneaky", "m2")
    st = conn.next_stanza(3, lambda s: s.get("id") == "m2")
    tap.check(error_condition(st) == ("modify", "not-acceptable"),
              "groupchat from a resource not in the room: not-acceptable", st)
    groupchat(conn, "stranger@localhost/x", "#test", "sneaky", "m3")
    st = conn.next_stanza(3, lambda s: s.get("id") == "m3")
    tap.check(error_condition(st) == ("modify", "not-acceptable"),
              "groupchat from an unregistered user: not-acceptable", st)

    conn.send("<message from='%s' to='%s' type='groupchat' id='m4'>"
              "<body>x</body></message>" % (A, room_jid("#test", "echo")))
    st = conn.next_stanza(3, lambda s: s.get("id") == "m4")
    tap.check(error_condition(st) == ("modify", "bad-request"),
              "groupchat to an occupant: bad-request", st)

    conn.send("<message from='%s' to='%s' type='error' id='m5'>"
              "<body>x</body></message>" % (A, room_jid("#test")))
    conn.send("<presence from='%s' to='%s' type='error' id='p5'/>" %
              ("alice@localhost/nowhere", room_jid("#test", "alice")))
    st = conn.next_stanza(1, lambda s: s.get("id") in ("m5", "p5"))
    tap.check(st is None, "errors to the room are never answered", st)

    conn.send("<message from='%s' to='%s' type='groupchat' id='m6'>"
              "<subject>new topic</subject></message>" % (A, room_jid("#test")))
    st = conn.next_stanza(3, lambda s: s.tag == q(NS_COMPONENT, "message")
                          and s.find(q(NS_COMPONENT, "subject")) is not None)
    tap.check(st is not None and text(st, "subject") == "new topic"
              and st.get("from") == room_jid("#test", "alice"),
              "a subject change goes to the network and comes back", st)


def test_nick_change(conn, cw):
    conn.send("<presence from='%s' to='%s' id='n1'/>" % (A, room_jid("#test", "alice2")))
    got, _ = collect(conn, lambda s: nick_of(s) == "alice2",
                     from_room("#test", A, "presence"), 3)
    gone = [s for s in got if nick_of(s) == "alice"]
    back = [s for s in got if nick_of(s) == "alice2"]
    tap.check(len(gone) == 1 and gone[0].get("type") == "unavailable"
              and {"303", "110"} <= codes(gone[0])
              and item(gone[0]).get("nick") == "alice2"
              and len(back) == 1 and back[0].get("type") is None
              and "110" in codes(back[0]) and got.index(gone[0]) < got.index(back[0]),
              "nick change: unavailable with 303/110 and the new nick, then "
              "the new nick's presence with 110", [(s.attrib, codes(s)) for s in got])

    conn.send("<presence from='%s' to='%s' id='n2'/>" % (A, room_jid("#test", "echo")))
    st = conn.next_stanza(3, lambda s: s.get("id") == "n2")
    tap.check(error_condition(st) == ("cancel", "conflict")
              and st.get("from") == room_jid("#test", "echo"),
              "nick change to an occupant's nick (echo): conflict", st)


def test_second_resource(conn, cw):
    joins = cw.log_text().count("joining #test as")
    join_presence(conn, B, "#test", "bee", id_="jb")
    seq, done = join_sequence(conn, B, "#test")
    pres = [s for s in seq if s.tag == q(NS_COMPONENT, "presence")]
    nicks = [nick_of(s) for s in pres]
    me = pres[-1] if pres else None
    tap.check(done and "echo" in nicks and "bot" in nicks
              and me is not None and {"110", "210"} <= codes(me)
              and me.get("from") == room_jid("#test", "alice2")
              and text(seq[-1], "subject") == "new topic",
              "a second resource gets the occupants, self-presence with "
              "the room's nick (210) and the subject",
              [(s.get("from"), codes(s)) for s in seq])
    tap.check(cw.log_text().count("joining #test as") == joins,
              "... and causes no second legacy join")

    groupchat(conn, A, "#test", "both", "m7")
    ra = conn.next_stanza(3, lambda s: s.get("id") == "m7" and s.get("to") == A)
    rb = conn.next_stanza(3, lambda s: s.get("id") == "m7" and s.get("to") == B)
    tap.check(ra is not None and rb is not None
              and stanza_id(ra) == stanza_id(rb),
              "a message is reflected to both resources, one stanza-id")
    drain(conn)


def test_private(conn, cw):
    conn.send("<message from='%s' to='%s' type='chat' id='pm1'><body>psst</body>"
              "</message>" % (A, room_jid("#test", "echo")))
    st = conn.next_stanza(3, lambda s: s.get("from") == room_jid("#test", "echo")
                          and s.get("type") == "chat" and s.get("to") == A)
    tap.check(st is not None and text(st, "body") == "echo: psst"
              and st.find(q(MUC_USER, "x")) is not None,
              "private message to an occupant: answered privately, marked "
              "muc#user", st is not None and st.attrib)
    conn.send("<message from='%s' to='%s' type='chat' id='pm2'><body>psst</body>"
              "</message>" % (A, room_jid("#test", "ghost")))
    st = conn.next_stanza(3, lambda s: s.get("id") == "pm2")
    tap.check(error_condition(st) == ("cancel", "item-not-found"),
              "private message to a nick not in the room: item-not-found", st)
    conn.send("<message from='%s' to='%s' type='chat' id='pm3'><body>psst</body>"
              "</message>" % (C, room_jid("#test", "echo")))
    st = conn.next_stanza(3, lambda s: s.get("id") == "pm3")
    tap.check(error_condition(st) == ("modify", "not-acceptable"),
              "private message from a resource not in the room: "
              "not-acceptable", st)
    drain(conn)


def test_occupants(conn, cw):
    groupchat(conn, A, "#test", "/join carol", "c1")
    st = conn.next_stanza(3, lambda s: s.get("from") == room_jid("#test", "carol")
                          and s.get("to") == A)
    tap.check(st is not None and st.get("type") is None
              and item(st).get("role") == "participant",
              "an occupant coming in: their presence", st is not None and st.attrib)
    groupchat(conn, A, "#test", "/part carol", "c2")
    st = conn.next_stanza(3, lambda s: s.get("from") == room_jid("#test", "carol")
                          and s.get("to") == A)
    tap.check(st is not None and st.get("type") == "unavailable"
              and text(st, "status") == "bye" and item(st).get("role") == "none"
              and not codes(st),
              "an occupant parting: unavailable with the reason as status",
              st is not None and (st.attrib, codes(st)))

    res = conn.iq("<query xmlns='%s'><item nick='bot' role='none'>"
                  "<reason>spam</reason></item></query>" % MUC_ADMIN,
                  type_="set", to=room_jid("#test"), frm=A, id_="k1")
    st = conn.next_stanza(3, lambda s: s.get("from") == room_jid("#test", "bot")
                          and s.get("to") == A)
    tap.check(res is not None and res.get("type") == "result"
              and st is not None and st.get("type") == "unavailable"
              and "307" in codes(st) and item(st).find(q(MUC_USER, "reason")) is not None
              and item(st).find(q(MUC_USER, "reason")).text == "spam",
              "kick from XMPP: result, then the occupant leaves with 307 "
              "and the reason", st is not None and (st.attrib, codes(st)))
    res = conn.iq("<query xmlns='%s'><item nick='bot' role='none'/></query>"
                  % MUC_ADMIN, type_="set", to=room_jid("#test"), frm=A, id_="k2")
    tap.check(error_condition(res) == ("cancel", "item-not-found"),
              "kicking a nick not in the room: item-not-found", res)
    res = conn.iq("<query xmlns='%s'><item nick='echo' role='none'/></query>"
                  % MUC_ADMIN, type_="set", to=room_jid("#test"), frm=C, id_="k3")
    tap.check(error_condition(res) == ("auth", "forbidden"),
              "kick from a resource not in the room: forbidden", res)

    # bot is gone: the core lets the nick through, the network refuses.
    conn.send("<presence from='%s' to='%s' id='n3'/>" % (A, room_jid("#test", "bot")))
    st = conn.next_stanza(3, lambda s: s.get("id") == "n3")
    tap.check(error_condition(st) == ("cancel", "conflict"),
              "nick change the network refuses: its conflict", st)
    drain(conn)


def test_iq(conn, cw):
    res = conn.iq("<ping xmlns='%s'/>" % PING, to=room_jid("#test", "alice2"),
                  frm=A, id_="sp1")
    tap.check(res is not None and res.get("type") == "result",
              "self-ping from a joined resource: result", res)
    res = conn.iq("<ping xmlns='%s'/>" % PING, to=room_jid("#test", "alice2"),
                  frm=C, id_="sp2")
    tap.check(error_condition(res) == ("modify", "not-acceptable"),
              "self-ping from a resource not in the room: not-acceptable", res)
    res = conn.iq("<ping xmlns='%s'/>" % PING, to=room_jid("#test", "echo"),
                  frm=A, id_="sp3")
    tap.check(res is not None and res.get("type") == "result",
              "ping to another occupant: result", res)
    res = conn.iq("<ping xmlns='%s'/>" % PING, to=room_jid("#test", "ghost"),
                  frm=A, id_="sp4")
    tap.check(error_condition(res) == ("cancel", "item-not-found"),
              "ping to a nick not in the room: item-not-found", res)

    res = conn.iq("<query xmlns='%s'/>" % DISCO_INFO, to=room_jid("#test"),
                  frm=C, id_="di1")
    qel = res.find(q(DISCO_INFO, "query")) if res is not None else None
    ident = qel.find(q(DISCO_INFO, "identity")) if qel is not None else None
    feats = {f.get("var") for f in qel.findall(q(DISCO_INFO, "feature"))} \
        if qel is not None else set()
    tap.check(ident is not None and ident.get("category") == "conference"
              and ident.get("type") == "echo" and ident.get("name") == "#test (echo)"
              and {MUC, "muc_nonanonymous", "muc_open", "muc_unmoderated",
                   "muc_temporary", SID} <= feats
              and "muc_persistent" not in feats,
              "disco#info on the room: conference/echo named by the backend (#test (echo)), MUC "
              "features", feats)
    res = conn.iq("<query xmlns='%s'/>" % DISCO_INFO, to=room_jid("#test", "echo"),
                  frm=C, id_="di2")
    tap.check(error_condition(res) == ("modify", "bad-request"),
              "disco#info to an occupant from a non-occupant: bad-request", res)
    res = conn.iq("<query xmlns='%s'/>" % DISCO_INFO, to=room_jid("#test", "echo"),
                  frm=A, id_="di3")
    tap.check(error_condition(res) == ("cancel", "service-unavailable"),
              "disco#info to an occupant from an occupant: "
              "service-unavailable", res)
    res = conn.iq("<query xmlns='jabber:iq:version'/>", to=room_jid("#test"),
                  frm=A, id_="di4")
    tap.check(error_condition(res) == ("cancel", "service-unavailable"),
              "any other iq to the room: service-unavailable", res)


def admin_set(conn, who, id_, attrs, reason=None):
    return conn.iq("<query xmlns='%s'><item %s>%s</item></query>"
                   % (MUC_ADMIN, " ".join("%s='%s'" % kv for kv in attrs.items()),
                      "<reason>%s</reason>" % reason if reason else ""),
                   type_="set", to=room_jid("#test"), frm=who, id_=id_)


def test_drop_in(conn, cw):
    """What a biboumi user's client saw: reflections with origin-id to
    every resource, line by line; muc#admin; muc#traffic; a join while
    joined; self-ping from each resource."""
    drain(conn)
    conn.send("<message from='%s' to='%s' type='groupchat' id='ml1'>"
              "<body>one\n\n  \ntwo</body><origin-id xmlns='%s' id='orig-1'/>"
              "<stanza-id xmlns='%s' id='forged' by='%s'/></message>"
              % (A, room_jid("#test"), SID, SID, room_jid("#test")))
    got, _ = collect(conn, lambda s: False,
                     lambda s: s.tag == q(NS_COMPONENT, "message")
                     and s.get("from") == room_jid("#test", "alice2"), 2)
    lines = {}
    for st in got:
        lines.setdefault(st.get("to"), []).append(st)

    def summary(st):
        o = st.find(q(SID, "origin-id"))
        sids = st.findall(q(SID, "stanza-id"))
        return (text(st, "body"), st.get("id"), o.get("id") if o is not None
                else None, [(x.get("id"), x.get("by")) for x in sids])
    a = [summary(x) for x in lines.get(A, [])]
    b = [summary(x) for x in lines.get(B, [])]
    tap.check(len(a) == 2 and a[0][0] == "one" and a[0][1] == "ml1"
              and a[1][0] == "two" and a[1][1] not in (None, "ml1")
              and all(x[2] == "orig-1" for x in a)
              and all(len(x[3]) == 1 and x[3][0][1] == room_jid("#test")
                      and x[3][0][0] != "forged" for x in a)
              and a[0][3] != a[1][3],
              "a body of two lines (and blank ones): two reflections, the "
              "first with the stanza's id, each with the origin-id and one "
              "stanza-id of the room's (the client's forged one dropped)", a)
    tap.check(b == a, "... and the same two to the other resource", (a, b))
    drain(conn)

    # muc#admin.  Roles on echo (it ends moderator again), bans on others.
    steps = [({"nick": "echo", "role": "participant"}, ("participant", "none")),
             ({"nick": "echo", "role": "visitor"}, ("visitor", "none")),
             ({"nick": "echo", "affiliation": "member"}, ("participant", "member")),
             ({"nick": "echo", "role": "moderator"}, ("moderator", "none"))]
    for i, (attrs, want) in enumerate(steps):
        res = admin_set(conn, A, "ad%d" % i, attrs)
        got = {}
        for _ in range(2):
            st = conn.next_stanza(3, lambda s: s.get("from") ==
                                  room_jid("#test", "echo") and
                                  s.tag == q(NS_COMPONENT, "presence"))
            if st is not None:
                got[st.get("to")] = (item(st).get("role"),
                                     item(st).get("affiliation"))
        tap.check(res is not None and res.get("type") == "result"
                  and got.get(A) == want and got.get(B) == want,
                  "muc#admin %s: result, and echo's presence says %s/%s to "
                  "both resources" % (attrs, want[0], want[1]), (res, got))

    groupchat(conn, A, "#test", "/join dave", "cd")
    drain(conn, 0.5)
    res = admin_set(conn, B, "ad9", {"nick": "dave", "role": "none"},
                    reason="out")
    got = {}
    for _ in range(2):
        st = conn.next_stanza(3, lambda s: s.get("from") ==
                              room_jid("#test", "dave") and
                              s.get("type") == "unavailable")
        if st is not None:
            got[st.get("to")] = (codes(st), item(st).find(q(MUC_USER, "reason")))
    tap.check(res is not None and res.get("type") == "result"
              and all("307" in got.get(w, (set(), None))[0]
                      and got[w][1] is not None and got[w][1].text == "out"
                      for w in (A, B)),
              "a kick from one resource: 307 with the reason to every "
              "resource", got)
    groupchat(conn, A, "#test", "/join erin", "ce")
    drain(conn, 0.5)
    res = admin_set(conn, A, "ad10", {"nick": "erin", "affiliation": "outcast"},
                    reason="spam")
    st = conn.next_stanza(3, lambda s: s.get("from") ==
                          room_jid("#test", "erin") and s.get("to") == A)
    tap.check(res is not None and res.get("type") == "result"
              and st is not None and st.get("type") == "unavailable"
              and "301" in codes(st)
              and item(st).get("affiliation") == "outcast",
              "affiliation outcast: result, the occupant leaves with 301",
              st is not None and (st.attrib, codes(st)))
    drain(conn)
    res = admin_set(conn, A, "ad11", {"nick": "nobody", "affiliation": "outcast"})
    tap.check(res is not None and res.get("type") == "result",
              "a ban on a nick that is not in the room goes to the network",
              res)
    res = admin_set(conn, A, "ad12", {"nick": "nobody", "role": "participant"})
    tap.check(error_condition(res) == ("cancel", "item-not-found"),
              "a role for a nick not in the room: item-not-found", res)
    res = admin_set(conn, A, "ad13", {"nick": "echo", "affiliation": "owner"})
    tap.check(error_condition(res) == ("cancel", "not-allowed"),
              "what the network refuses (owner on echo): its error", res)
    for i, attrs in enumerate(({"nick": "echo", "role": "king"},
                               {"role": "visitor"},
                               {"nick": "echo"},
                               {"nick": "echo", "affiliation": "boss"})):
        res = admin_set(conn, A, "adb%d" % i, attrs)
        tap.check(error_condition(res) == ("modify", "bad-request"),
                  "muc#admin with %s: bad-request" % attrs, res)
    res = admin_set(conn, A, "adj", {"jid": "nobody@" + GW,
                                     "affiliation": "outcast"})
    tap.check(error_condition(res) == ("cancel", "item-not-found"),
              "a ban by a jid no occupant's item carries: item-not-found",
              res)
    res = conn.iq("<query xmlns='%s'><item affiliation='outcast'/></query>"
                  % MUC_ADMIN, to=room_jid("#test"), frm=A, id_="adg")
    tap.check(error_condition(res) == ("cancel", "feature-not-implemented"),
              "a muc#admin list (get): feature-not-implemented", res)
    drain(conn)

    res = conn.iq("<query xmlns='%s' node='%s'/>"
                  % (DISCO_INFO, MUC + "#traffic"), to=room_jid("#test"),
                  frm=A, id_="tr1")
    qel = res.find(q(DISCO_INFO, "query")) if res is not None else None
    tap.check(res is not None and res.get("type") == "result"
              and qel is not None and qel.get("node") == MUC + "#traffic",
              "disco#info on the muc#traffic node: answered (no features)",
              res)

    # A client that lost track rejoins with the same resource and nick.
    join_presence(conn, B, "#test", "alice2", id_="rj")
    seq, done = join_sequence(conn, B, "#test")
    pres = [s for s in seq if s.tag == q(NS_COMPONENT, "presence")]
    me = [s for s in pres if "110" in codes(s)]
    tap.check(done and "echo" in [nick_of(s) for s in pres]
              and len(me) == 1 and me[0].get("id") == "rj"
              and pres[-1] is me[0] and "210" not in codes(me[0])
              and text(seq[-1], "subject") == "new topic"
              and not any(error_condition(s) for s in seq),
              "a join while joined: the occupants, self-presence (110, the "
              "join's id) and the subject again",
              [(s.get("from"), codes(s)) for s in seq])
    tap.check(not any(s.get("to") == A for s in seq),
              "... to that resource only")
    joins = cw.log_text().count("changing nick in #test")
    join_presence(conn, B, "#test", "configured", id_="rj2")
    seq, done = join_sequence(conn, B, "#test")
    me = [s for s in seq if "110" in codes(s)]
    tap.check(done and len(me) == 1 and me[0].get("id") == "rj2"
              and me[0].get("from") == room_jid("#test", "alice2")
              and {"110", "210"} <= codes(me[0])
              and not any(error_condition(s) for s in seq)
              and cw.log_text().count("changing nick in #test") == joins,
              "a join while joined with another nick (a client's configured "
              "one): the join sequence with the room's nick and 210, no nick "
              "change", [(s.get("from"), codes(s)) for s in seq])
    for who in (A, B):
        res = conn.iq("<ping xmlns='%s'/>" % PING,
                      to=room_jid("#test", "alice2"), frm=who, id_="spx")
        tap.check(res is not None and res.get("type") == "result",
                  "self-ping from %s, one of two joined resources: result"
                  % who.split("/")[1], res)
    drain(conn)


def test_network_side(conn, cw):
    join_presence(conn, A, "#other", "taken", id_="jt")
    seq, done = join_sequence(conn, A, "#other")
    me = [s for s in seq if "110" in codes(s)]
    tap.check(done and len(me) == 1 and "210" in codes(me[0])
              and me[0].get("from") == room_jid("#other", "taken_"),
              "join as 'taken': 210 and the nick taken_",
              [(s.get("from"), codes(s)) for s in seq])

    join_presence(conn, A, "#locked", "alice", id_="jk1")
    st = conn.next_stanza(3, lambda s: s.get("id") == "jk1")
    tap.check(error_condition(st) == ("auth", "not-authorized")
              and st.get("from") == room_jid("#locked", "alice"),
              "#locked without the password: not-authorized", st)
    join_presence(conn, A, "#locked", "alice", id_="jk2",
                  extra="<password>wrong</password>")
    st = conn.next_stanza(3, lambda s: s.get("id") == "jk2")
    tap.check(error_condition(st) == ("auth", "not-authorized"),
              "#locked with a wrong password: not-authorized", st)
    join_presence(conn, A, "#locked", "alice", id_="jk3",
                  extra="<password>secret</password>")
    seq, done = join_sequence(conn, A, "#locked")
    tap.check(done and any("110" in codes(s) for s in seq),
              "#locked with the password: joined")
    res = conn.iq("<query xmlns='%s'/>" % DISCO_INFO, to=room_jid("#locked"),
                  frm=A, id_="di5")
    tap.check(res is not None and res.find(".//{%s}feature[@var='muc_passwordprotected']"
                                           % DISCO_INFO) is not None,
              "disco#info of a room joined with a password: "
              "muc_passwordprotected")

    groupchat(conn, A, "#other", "/kickme", "km")
    st = conn.next_stanza(3, lambda s: s.get("from") == room_jid("#other", "taken_")
                          and s.tag == q(NS_COMPONENT, "presence"))
    reason = item(st).find(q(MUC_USER, "reason")) if st is not None else None
    tap.check(st is not None and st.get("type") == "unavailable"
              and {"110", "307"} <= codes(st) and reason is not None
              and reason.text == "you asked for it",
              "kicked by the network: self unavailable with 110 and 307 and "
              "the reason", st is not None and (st.attrib, codes(st)))
    groupchat(conn, A, "#other", "still here?", "km2")
    st = conn.next_stanza(3, lambda s: s.get("id") == "km2")
    tap.check(error_condition(st) == ("modify", "not-acceptable"),
              "after the kick the user is out of the room", st)

    groupchat(conn, A, "#locked", "/close", "cl")
    st = conn.next_stanza(3, lambda s: s.get("from") == room_jid("#locked", "alice")
                          and s.tag == q(NS_COMPONENT, "presence"))
    tap.check(st is not None and st.get("type") == "unavailable"
              and {"110", "332"} <= codes(st),
              "the network closes the room: 332 with 110",
              st is not None and (st.attrib, codes(st)))
    drain(conn)


def test_crowd(conn, cw):
    n = 9997   # with echo and alice2: 9999 occupants, the user makes 10,000
    groupchat(conn, A, "#test", "/crowd %d" % n, "cr")
    t0 = time.time()
    want = {"crowd%d" % i for i in range(1, n + 1)}
    seen = {A: set(), B: set()}
    deadline = t0 + 30
    # Everything is taken in arrival order (a predicate that skips
    # stanzas would rescan the skipped ones on every call).
    while (seen[A] != want or seen[B] != want) and time.time() < deadline:
        st = conn.next_stanza(max(0.01, deadline - time.time()))
        if st is None:
            break
        if st.tag == q(NS_COMPONENT, "presence") and \
                bare(st.get("from")) == room_jid("#test") and st.get("to") in seen:
            seen[st.get("to")].add(nick_of(st))
    tap.check(seen[A] == want and seen[B] == want,
              "/crowd %d: every new occupant's presence reaches both "
              "resources (%.1f s)" % (n, time.time() - t0),
              "%d and %d of %d" % (len(seen[A] & want), len(seen[B] & want), n))
    drain(conn, 1.0)

    t0 = time.time()
    join_presence(conn, C, "#test", "alice2", id_="jc")
    seq, done = join_sequence(conn, C, "#test", timeout=30)
    took = time.time() - t0
    nicks = {nick_of(s) for s in seq if s.tag == q(NS_COMPONENT, "presence")
             and "110" not in codes(s)}
    tap.check(done and want <= nicks and "echo" in nicks and took < 10,
              "a resource joining a room of 10,000 occupants gets them all, "
              "then self-presence and subject, in %.1f s" % took,
              "%d nicks, done=%s" % (len(nicks), done))

    groupchat(conn, A, "#test", "/crowd %d" % (n + 2), "cr2")
    tap.check(cw.wait_log("the others are not shown", timeout=10),
              "past 10,000 occupants the rest are dropped and logged")
    drain(conn, 1.0)


def test_leave(conn, cw):
    for i, who in enumerate((A, B, C)):
        conn.send("<presence from='%s' to='%s' type='unavailable' id='l%d'/>"
                  % (who, room_jid("#test", "alice2"), i))
        st = conn.next_stanza(5, lambda s: s.get("to") == who
                              and s.get("from") == room_jid("#test", "alice2")
                              and s.get("type") == "unavailable")
        tap.check(st is not None and "110" in codes(st),
                  "leaving (%s): self unavailable with 110" % who.split("/")[1],
                  st is not None and (st.attrib, codes(st)))
        if i == 1:
            tap.check("leaving #test" not in cw.log_text(),
                      "the room stays while a resource is in it")
    tap.check(cw.wait_log("leaving #test") and
              cw.wait_log("alice@localhost: logging out"),
              "the last resource out leaves the room, and with no resource "
              "and no room left the session logs out")
    drain(conn)


def test_offline(conn, cw):
    join_presence(conn, A, "#dc", "alice", id_="jd")
    seq, done = join_sequence(conn, A, "#dc")
    tap.check(done, "a join after logout logs in again")
    conn.send("<message from='%s' to='echo@%s' type='chat'><body>/disconnect"
              "</body></message>" % (A, GW))
    st = conn.next_stanza(5, lambda s: s.get("from") == room_jid("#dc", "alice")
                          and s.tag == q(NS_COMPONENT, "presence"))
    tap.check(st is not None and st.get("type") == "unavailable"
              and {"110", "332"} <= codes(st),
              "the legacy connection lost: 332 in every joined room",
              st is not None and (st.attrib, codes(st)))
    drain(conn)

    res = register(conn, "bob@localhost/x", "faillogin", "rb")
    drain(conn)
    join_presence(conn, "bob@localhost/x", "#test", "bob", id_="jf")
    st = conn.next_stanza(5, lambda s: s.get("id") == "jf")
    tap.check(res is not None and res.get("type") == "result"
              and error_condition(st) is not None
              and st.get("from") == room_jid("#test", "bob"),
              "a join waiting for a login that fails: a presence error with "
              "the reason", st)
    drain(conn)


def test_bad_rooms(conn, cw):
    # The router sends only what the backend calls a room to the room
    # layer: "#a b" is a contact address.
    W = "alice@localhost/w"
    conn.send("<presence from='%s' to='#a\\20b@%s/alice' id='bad1'><x xmlns='%s'/>"
              "</presence>" % (W, GW, MUC))
    got = []
    deadline = time.time() + 1.5
    while time.time() < deadline:
        st = conn.next_stanza(0.2)
        if st is not None:
            got.append(st)
    tap.check(not any("110" in codes(s) for s in got) and cw.alive(),
              "a join to an address that is no room joins nothing")
    tap.check(any(s.get("id") == "bad1" and error_condition(s) is not None
                  for s in got),
              "... and is answered with an error")
    conn.send("<presence from='%s' to='echo.localhost' type='unavailable'/>" % W)

    big = "#" + "x" * 10240
    conn.send("<presence from='%s' to='%s@%s/alice' id='bad2'><x xmlns='%s'/>"
              "</presence>" % (A, big, GW, MUC))
    conn.send("<message from='%s' to='%s@%s' type='groupchat' id='bad3'>"
              "<body>x</body></message>" % (A, big, GW))
    st = conn.next_stanza(3, lambda s: s.get("id") in ("bad2", "bad3"))
    tap.check(st is not None and st.get("id") == "bad3"
              and error_condition(st) == ("modify", "jid-malformed")
              and cw.alive(),
              "a 10 KB room name: the presence is dropped, a message gets "
              "jid-malformed", st)
    drain(conn)


def owner_set(conn, who, room, id_, **fields):
    form = "".join("<field var='%s'><value>%s</value></field>" % kv
                   for kv in fields.items())
    return conn.iq("<query xmlns='%s'><x xmlns='%s' type='submit'>"
                   "<field var='FORM_TYPE'><value>%s</value></field>%s</x>"
                   "</query>" % (OWNER, DATA, ROOMCONFIG, form), type_="set",
                   to=room_jid(room), frm=who, id_=id_)


def test_persistent(conn, cw):
    join_presence(conn, A, "#keep", "alice", id_="jk1")
    seq, done = join_sequence(conn, A, "#keep")
    res = conn.iq("<query xmlns='%s'/>" % OWNER, to=room_jid("#keep"),
                  frm=A, id_="o1")
    x = res.find(q(OWNER, "query")).find(q(DATA, "x")) if res is not None \
        and res.find(q(OWNER, "query")) is not None else None
    vars_ = [f.get("var") for f in x.findall(q(DATA, "field"))] \
        if x is not None else []
    tap.check(done and "persistent" in vars_ and "encoding" in vars_,
              "the owner form of a joined room: persistent and encoding",
              res)
    res = owner_set(conn, "stranger@localhost/x", "#keep", "o2",
                    persistent="1")
    tap.check(error_condition(res) == ("auth", "forbidden"),
              "the owner form from someone not in the room: forbidden", res)
    res = owner_set(conn, A, "#keep", "o3", encoding="NOT-A-CHARSET")
    tap.check(error_condition(res) == ("modify", "not-acceptable"),
              "an unknown charset: not-acceptable", res)
    res = owner_set(conn, A, "#keep", "o4", persistent="1")
    tap.check(res is not None and res.get("type") == "result",
              "persistent = 1: result", res)
    drain(conn)

    # The message and the leave in one write: echo's answers come after
    # the user left.
    conn.send("<message from='%s' to='%s' type='groupchat' id='k1'><body>"
              "while away</body></message><presence from='%s' to='%s' "
              "type='unavailable'/>" % (A, room_jid("#keep"), A,
                                        room_jid("#keep", "alice")))
    st = conn.next_stanza(3, lambda s: s.get("type") == "unavailable"
                          and "110" in codes(s))
    kept = cw.wait_log("#keep stays joined while the user is away", timeout=3)
    tap.check(st is not None and kept and
              "leaving #keep" not in cw.log_text(),
              "leaving the persistent room: unavailable self-presence, but "
              "the membership stays", st)
    time.sleep(0.3)     # echo's answer, archived with nobody in the room
    join_presence(conn, A, "#keep", "alice", id_="jk2",
                  extra="<history maxstanzas='10'/>")
    seq, done = join_sequence(conn, A, "#keep")
    kinds = [("self" if "110" in codes(s) else "occ")
             if s.tag == q(NS_COMPONENT, "presence") else
             "subject" if s.find(q(NS_COMPONENT, "subject")) is not None
             else "msg" for s in seq]
    msgs = [s for s in seq if s.tag == q(NS_COMPONENT, "message")
            and s.find(q(NS_COMPONENT, "subject")) is None]
    tap.check(done and kinds[-4:] == ["self", "msg", "msg", "subject"] and
              [(nick_of(m), text(m, "body")) for m in msgs] ==
              [("alice", "while away"), ("echo", "echo: while away")] and
              all(m.find(q(DELAY, "delay")) is not None for m in msgs),
              "the rejoin: self-presence, the 2 messages said meanwhile as "
              "history with delays, then the subject", kinds)

    conn.send("<iq type='set' id='mam1' to='%s' from='%s'><query xmlns='%s' "
              "queryid='k'><set xmlns='%s'><max>1</max><before/></set>"
              "</query></iq>" % (room_jid("#keep"), A, MAM, RSM))
    out, fin = collect(conn, lambda s: s.get("id") == "mam1",
                       lambda s: s.get("to") == A and (
                           s.get("id") == "mam1" or
                           s.find(q(MAM, "result")) is not None))
    results = [s.find(q(MAM, "result")) for s in out
               if s.find(q(MAM, "result")) is not None]
    inner = [r.find(q(FORWARD, "forwarded")).find(q("jabber:client",
                                                     "message"))
             for r in results]
    f = out[-1].find(q(MAM, "fin")) if fin else None
    count = f.find(q(RSM, "set")).find(q(RSM, "count")).text \
        if f is not None else None
    tap.check(fin and len(results) == 1 and results[0].get("queryid") == "k"
              and text(inner[0], "body", "jabber:client") ==
              "echo: while away" and count == "2"
              and f.get("complete") is None,
              "MAM, the last page of 1: echo's line, count 2, not complete",
              [x.attrib for x in out])
    res = conn.iq("<query xmlns='%s'/>" % MAM, type_="set",
                  to=room_jid("#keep"), frm="stranger@localhost/x", id_="mam2")
    tap.check(error_condition(res) == ("auth", "forbidden"),
              "MAM from someone who neither is in nor keeps the room: "
              "forbidden", res)
    res = owner_set(conn, A, "#keep", "o5", persistent="0")
    conn.send("<presence from='%s' to='%s' type='unavailable'/>"
              % (A, room_jid("#keep", "alice")))
    tap.check(res is not None and res.get("type") == "result" and
              cw.wait_log("alice@localhost: leaving #keep", timeout=3),
              "persistent off: leaving the room leaves it")
    drain(conn)


BOB = "carol@localhost/c"


def say(conn, who, room, body, id_):
    """A groupchat line and its reflection and echo's answer to who:
    (reflection, echo's line)."""
    groupchat(conn, who, room, body, id_)
    refl = conn.next_stanza(3, lambda s: s.get("id") == id_
                            and s.get("to") == who)
    echo = conn.next_stanza(3, lambda s: s.get("to") == who and
                            s.get("from") == room_jid(room, "echo") and
                            text(s, "body") == "echo: " + body)
    return refl, echo


def history_of(conn, who, room, nick, extra, id_):
    """Joins with <history/> extra: the history messages of the join
    sequence (or None when it did not complete)."""
    join_presence(conn, who, room, nick, id_=id_, extra=extra)
    seq, done = join_sequence(conn, who, room)
    if not done:
        return None
    return [s for s in seq if s.tag == q(NS_COMPONENT, "message")
            and s.find(q(NS_COMPONENT, "subject")) is None]


def leave_room(conn, who, room, nick):
    conn.send("<presence from='%s' to='%s' type='unavailable'/>"
              % (who, room_jid(room, nick)))
    conn.next_stanza(3, lambda s: s.get("to") == who and
                     s.get("type") == "unavailable" and "110" in codes(s))


def mam_query(conn, who, room, id_, form="", rsm=""):
    """(results [(id, nick, body)], fin element or None)."""
    x = ("<x xmlns='%s' type='submit'><field var='FORM_TYPE' "
         "type='hidden'><value>%s</value></field>%s</x>" % (DATA, MAM, form)
         if form else "")
    conn.send("<iq type='set' id='%s' to='%s' from='%s'><query xmlns='%s' "
              "queryid='%s'>%s%s</query></iq>" % (id_, room_jid(room), who,
                                                  MAM, id_, x, rsm))
    out, fin = collect(conn, lambda s: s.get("id") == id_,
                       lambda s: s.get("to") == who and (
                           s.get("id") == id_ or
                           s.find(q(MAM, "result")) is not None))
    res = []
    for st in out:
        r = st.find(q(MAM, "result"))
        if r is None or r.get("queryid") != id_:
            continue
        m = r.find(q(FORWARD, "forwarded")).find(q("jabber:client",
                                                    "message"))
        res.append((r.get("id"), nick_of(m), text(m, "body",
                                                  "jabber:client")))
    if not fin:
        return res, None
    if out[-1].get("type") == "error":
        return res, out[-1]
    return res, out[-1].find(q(MAM, "fin"))


def rsm_of(fin):
    st = fin.find(q(RSM, "set")) if fin is not None else None
    if st is None:
        return {}
    return {c.tag.split("}")[1]: c.text for c in st}


def test_history(conn, cw):
    """Join history in a room nobody keeps persistent, with every
    <history/> limit, and MAM with filters and paging; the ids are the
    ones the live messages carried."""
    join_presence(conn, A, "#hist", "alice", id_="jh1")
    seq, done = join_sequence(conn, A, "#hist")
    live = []       # (stanza-id, nick, body) as the live copies had them
    for i in range(1, 6):
        refl, echo = say(conn, A, "#hist", "h%d" % i, "h%d" % i)
        for st in (refl, echo):
            live.append((stanza_id(st)[0] if stanza_id(st) else None,
                         nick_of(st), text(st, "body")))
    tap.check(done and len(live) == 10 and all(x[0] for x in live),
              "a plain room: 5 lines and echo's 5 answers, live with "
              "stanza-ids", live)

    hist = history_of(conn, B, "#hist", "alice", "<history maxstanzas='3'/>",
                      "jh2")
    got = [(stanza_id(m)[0] if stanza_id(m) else None, nick_of(m),
            text(m, "body")) for m in hist or []]
    tap.check(got == live[-3:] and
              all(m.find(q(DELAY, "delay")) is not None for m in hist),
              "a second resource joining a plain room: maxstanzas=3 gives "
              "the newest 3, with delays and the live stanza-ids", got)
    leave_room(conn, B, "#hist", "alice")

    future = time.strftime("%Y-%m-%dT%H:%M:%SZ",
                           time.gmtime(time.time() + 3600))
    past = time.strftime("%Y-%m-%dT%H:%M:%SZ",
                         time.gmtime(time.time() - 3600))
    cases = [
        ("maxchars='1'", lambda h: h == [], "maxchars=1: no history"),
        ("maxchars='700'", lambda h: 1 <= len(h) < 10 and
         text(h[-1], "body") == live[-1][2],
         "maxchars=700: the newest messages that fit in 700 characters, "
         "not all 10"),
        ("seconds='0'", lambda h: h == [], "seconds=0: no history"),
        ("seconds='3600'", lambda h: len(h) == 10, "seconds=3600: all 10"),
        ("since='%s'" % future, lambda h: h == [],
         "since an hour from now: no history"),
        ("since='%s' maxstanzas='4'" % past, lambda h: len(h) == 4,
         "since an hour ago with maxstanzas=4: 4"),
        ("maxstanzas='x1'", lambda h: len(h) == 10,
         "maxstanzas not a number: ignored (all 10)"),
    ]
    for i, (attrs, good, desc) in enumerate(cases):
        hist = history_of(conn, B, "#hist", "alice",
                          "<history %s/>" % attrs, "jc%d" % i)
        tap.check(hist is not None and good(hist), desc,
                  hist and [text(m, "body") for m in hist])
        leave_room(conn, B, "#hist", "alice")

    # More than the limit: 110 lines with echo's answers make 230.
    for i in range(110):
        groupchat(conn, A, "#hist", "bulk %d" % i, "bk%d" % i)
    conn.next_stanza(10, lambda s: text(s, "body") == "echo: bulk 109")
    drain(conn)
    newest, _ = mam_query(conn, A, "#hist", "mh0",
                          rsm="<set xmlns='%s'><max>5</max><before/></set>"
                          % RSM)
    hist = history_of(conn, B, "#hist", "alice",
                      "<history maxstanzas='1000'/>", "jh10")
    tap.check(hist is not None and len(hist) == 100 and len(newest) == 5
              and stanza_id(hist[-1])[0] == newest[-1][0],
              "maxstanzas=1000 over 230 messages: the limit, 100, the "
              "newest last", hist and len(hist))
    leave_room(conn, B, "#hist", "alice")

    # MAM: forward pages of 4 from the start, then on with after.
    res, fin = mam_query(conn, A, "#hist", "mh1",
                         rsm="<set xmlns='%s'><max>4</max></set>" % RSM)
    rs = rsm_of(fin)
    tap.check([(i, n, b) for i, n, b in res] == live[:4] and
              fin is not None and fin.get("complete") is None and
              rs.get("count") == "230" and rs.get("first") == live[0][0] and
              rs.get("last") == live[3][0],
              "MAM max=4: the oldest 4 with the live stanza-ids, count "
              "230, first/last, not complete", (res, rs))
    res, fin = mam_query(conn, A, "#hist", "mh2",
                         rsm="<set xmlns='%s'><max>4</max><after>%s</after>"
                         "</set>" % (RSM, live[3][0]))
    tap.check([(i, n, b) for i, n, b in res] == live[4:8],
              "MAM after the last of page 1: the next 4", res)
    res, fin = mam_query(conn, A, "#hist", "mh3",
                         rsm="<set xmlns='%s'><max>3</max><before/></set>"
                         % RSM)
    last3 = res
    tap.check(res == newest[2:] and
              fin is not None and fin.get("complete") is None,
              "MAM before (empty): the last page of 3", res)
    res, fin = mam_query(conn, A, "#hist", "mh4",
                         rsm="<set xmlns='%s'><max>2</max><before>%s"
                         "</before></set>" % (RSM, last3[0][0] if last3
                                              else "x"))
    tap.check(res == newest[:2],
              "MAM before the first of the last page: the 2 before it",
              res)
    res, fin = mam_query(conn, A, "#hist", "mh5",
                         rsm="<set xmlns='%s'><max>50</max><after>%s</after>"
                         "</set>" % (RSM, live[3][0]),
                         form="<field var='with'><value>%s</value></field>"
                         % room_jid("#hist", "echo"))
    tap.check(len(res) == 50 and all(n == "echo" for _, n, _ in res) and
              res[0][2] == "echo: h3" and rsm_of(fin).get("count") == "115",
              "MAM with=room/echo after an id: echo's lines only, count 115",
              (len(res), res[:2], rsm_of(fin)))
    res, fin = mam_query(conn, A, "#hist", "mh6",
                         form="<field var='start'><value>%s</value></field>"
                         % future)
    tap.check(res == [] and fin is not None and
              fin.get("complete") == "true" and
              rsm_of(fin).get("count") == "0",
              "MAM start an hour from now: nothing, complete, count 0",
              (res, rsm_of(fin)))
    res, fin = mam_query(conn, A, "#hist", "mh7",
                         form="<field var='end'><value>%s</value></field>"
                         % past)
    tap.check(res == [] and fin is not None and
              fin.get("complete") == "true",
              "MAM end an hour ago: nothing", res)
    res, fin = mam_query(conn, A, "#hist", "mh8",
                         form="<field var='start'><value>%s</value></field>"
                         "<field var='end'><value>%s</value></field>"
                         % (past, future),
                         rsm="<set xmlns='%s'><max>0</max></set>" % RSM)
    tap.check(res == [] and rsm_of(fin).get("count") == "230" and
              fin.get("complete") is None,
              "MAM between an hour ago and an hour from now, max=0: the "
              "count alone, 230", rsm_of(fin))
    res, fin = mam_query(conn, A, "#hist", "mh9",
                         rsm="<set xmlns='%s'><after>999999-nope</after>"
                         "</set>" % RSM)
    tap.check(fin is not None and error_condition(fin) ==
              ("cancel", "item-not-found"),
              "MAM after an id that is not in the archive: item-not-found",
              fin)
    res, fin = mam_query(conn, A, "#hist", "mh10",
                         rsm="<set xmlns='%s'><max>-1</max></set>" % RSM)
    tap.check(fin is not None and error_condition(fin) ==
              ("modify", "bad-request"), "MAM max=-1: bad-request", fin)
    leave_room(conn, A, "#hist", "alice")
    drain(conn)


def test_archive_access(conn, cw):
    """Issue 12 item 1: a user reads a room's archive only for the time
    they were in it; keeping the room persistent grants nothing from
    before; disco#info tells nothing about other users."""
    join_presence(conn, A, "#secret", "alice", id_="js1")
    join_sequence(conn, A, "#secret")
    owner_set(conn, A, "#secret", "so1", persistent="1")
    say(conn, A, "#secret", "before bob", "sb1")
    drain(conn)

    # What disco#info tells bob (never there) of a room alice keeps and
    # of a room nobody was ever in: the same.
    feats = []
    for i, room in enumerate(("#secret", "#never")):
        res = conn.iq("<query xmlns='%s'/>" % DISCO_INFO, to=room_jid(room),
                      frm=BOB, id_="sd%d" % i)
        feats.append(sorted(f.get("var") for f in res.iter(
            q(DISCO_INFO, "feature"))) if res is not None else None)
    tap.check(feats[0] is not None and feats[0] == feats[1] and
              MAM in feats[0],
              "disco#info of a room alice keeps and of a room nobody "
              "joined, asked by carol: the same features (MAM in both)",
              feats)

    res, fin = mam_query(conn, BOB, "#secret", "sm1")
    tap.check(res == [] and fin is not None and
              error_condition(fin) == ("auth", "forbidden"),
              "MAM by carol, never in the room: forbidden, nothing", (res, fin))

    join_presence(conn, BOB, "#secret", "bob", id_="js2",
                  extra="<history maxstanzas='50'/>")
    seq, done = join_sequence(conn, BOB, "#secret")
    hist = [text(s, "body") for s in seq if s.tag == q(NS_COMPONENT,
            "message") and s.find(q(NS_COMPONENT, "subject")) is None]
    tap.check(done and hist == [],
              "carol joins: no history from before she was in", hist)
    res = owner_set(conn, BOB, "#secret", "so2", persistent="1")
    say(conn, A, "#secret", "while bob in", "sb2")
    drain(conn)
    res, fin = mam_query(conn, BOB, "#secret", "sm2")
    bodies = [b for _, _, b in res]
    tap.check(bodies == ["while bob in", "echo: while bob in"] and
              rsm_of(fin).get("count") == "2",
              "carol marks it persistent and reads MAM: only what was said "
              "since she joined (count 2), nothing from before",
              (bodies, rsm_of(fin)))
    res, fin = mam_query(conn, BOB, "#secret", "sm3",
                         rsm="<set xmlns='%s'><after>%s</after></set>"
                         % (RSM, "1"))
    tap.check(fin is not None and error_condition(fin) ==
              ("cancel", "item-not-found"),
              "carol paging from an id of before she was in: item-not-found",
              fin)

    # Kicked: bob reads nothing said after the kick.
    groupchat(conn, BOB, "#secret", "/kickme", "sk1")
    st = conn.next_stanza(3, lambda s: s.get("to") == BOB and
                          s.get("type") == "unavailable" and
                          "307" in codes(s))
    say(conn, A, "#secret", "after the kick", "sb3")
    drain(conn)
    res, fin = mam_query(conn, BOB, "#secret", "sm4")
    bodies = [b for _, _, b in res]
    tap.check(st is not None and "after the kick" not in bodies and
              "echo: after the kick" not in bodies and
              "while bob in" in bodies,
              "kicked, carol reads what was said while she was in, nothing "
              "after the kick", bodies)
    hist = history_of(conn, BOB, "#secret", "bob",
                      "<history maxstanzas='50'/>", "js3")
    tap.check(hist is not None and not any(
        "after the kick" in (text(m, "body") or "") for m in hist),
        "carol rejoins: the history skips what was said while she was out",
        hist and [text(m, "body") for m in hist])
    leave_room(conn, BOB, "#secret", "bob")
    owner_set(conn, A, "#secret", "so3", persistent="0")
    leave_room(conn, A, "#secret", "alice")
    drain(conn)


def test_room_list_paging(conn, cw):
    """disco#items on a scope pages with XEP-0059 (echo lists #echo,
    #lobby and #test)."""
    scope = "list@" + GW
    # Listing needs the legacy session online: a room keeps it so.
    join_presence(conn, A, "#listing", "alice", id_="jl")
    join_sequence(conn, A, "#listing")
    names = lambda res: [i.get("jid").split("@")[0] for i in res.iter(
        q("http://jabber.org/protocol/disco#items", "item"))] \
        if res is not None else None
    rs = lambda res: rsm_of(res.find(q(
        "http://jabber.org/protocol/disco#items", "query"))) \
        if res is not None else {}
    res = conn.iq("<query xmlns='http://jabber.org/protocol/disco#items'/>",
                  to=scope, frm=A, id_="rl0", timeout=5)
    tap.check(names(res) == ["#echo", "#lobby", "#test"] and rs(res) == {},
              "the room list without <set/>: all three, no set",
              res is not None and ET.tostring(res))
    res = conn.iq("<query xmlns='http://jabber.org/protocol/disco#items'>"
                  "<set xmlns='%s'><max>2</max></set></query>" % RSM,
                  to=scope, frm=A, id_="rl1", timeout=5)
    r = rs(res)
    tap.check(names(res) == ["#echo", "#lobby"] and r.get("count") == "3"
              and r.get("first") == room_jid("#echo") and
              r.get("last") == room_jid("#lobby"),
              "max=2: the first two, count 3, first/last", (names(res), r))
    res = conn.iq("<query xmlns='http://jabber.org/protocol/disco#items'>"
                  "<set xmlns='%s'><max>2</max><after>%s</after></set>"
                  "</query>" % (RSM, room_jid("#lobby")),
                  to=scope, frm=A, id_="rl2", timeout=5)
    tap.check(names(res) == ["#test"] and rs(res).get("count") == "3",
              "after the last of page 1: the third", names(res))
    res = conn.iq("<query xmlns='http://jabber.org/protocol/disco#items'>"
                  "<set xmlns='%s'><max>1</max><before/></set></query>"
                  % RSM, to=scope, frm=A, id_="rl3", timeout=5)
    tap.check(names(res) == ["#test"],
              "before (empty), max=1: the last page", names(res))
    res = conn.iq("<query xmlns='http://jabber.org/protocol/disco#items'>"
                  "<set xmlns='%s'><max>5</max><before>%s</before></set>"
                  "</query>" % (RSM, room_jid("#test")),
                  to=scope, frm=A, id_="rl4", timeout=5)
    tap.check(names(res) == ["#echo", "#lobby"],
              "before #test: the two before it", names(res))
    res = conn.iq("<query xmlns='http://jabber.org/protocol/disco#items'>"
                  "<set xmlns='%s'><max>0</max></set></query>" % RSM,
                  to=scope, frm=A, id_="rl5", timeout=5)
    tap.check(names(res) == [] and rs(res).get("count") == "3",
              "max=0: the count alone", (names(res), rs(res)))
    res = conn.iq("<query xmlns='http://jabber.org/protocol/disco#items'>"
                  "<set xmlns='%s'><max>many</max></set></query>" % RSM,
                  to=scope, frm=A, id_="rl6", timeout=5)
    tap.check(error_condition(res) == ("modify", "bad-request"),
              "max not a number: bad-request", res)
    leave_room(conn, A, "#listing", "alice")
    drain(conn)


def test_retention(srv, cw):
    """history_days and history_max, applied when causeway starts: rows
    older than the days go, each room keeps its newest history_max."""
    path = os.path.join(cw.tmp, "causeway.db")
    db = sqlite3.connect(path)
    room = db.execute("SELECT id FROM archive_rooms WHERE room = '#hist'"
                      ).fetchone()[0]
    top = db.execute("SELECT max(id) FROM archive").fetchone()[0]
    for i in range(3):
        db.execute("INSERT INTO archive (id, room, stamp, nick, body, sid) "
                   "VALUES (?, ?, 1000, 'old', 'ancient', 'x')",
                   (top + 1 + i, room))
    db.commit()
    before = db.execute("SELECT count(*) FROM archive WHERE room = ?",
                        (room,)).fetchone()[0]
    db.close()
    cw2 = Causeway(srv.port, domain=GW, backend="echo", tmp=cw.tmp,
                   extra="linger = 0\nhistory_days = 1\n"
                   "history_max = 50\n").start()
    conn = srv.accept()
    removed = cw2.wait_log("archive retention removed", timeout=10)
    cw2.signal(signal.SIGTERM)
    cw2.wait_exit(15)
    conn.close()
    db = sqlite3.connect(path)
    ancient = db.execute("SELECT count(*) FROM archive WHERE body = "
                         "'ancient'").fetchone()[0]
    per_room = db.execute("SELECT max(n) FROM (SELECT count(*) AS n FROM "
                          "archive GROUP BY room)").fetchone()[0]
    hist = db.execute("SELECT count(*) FROM archive WHERE room = ?",
                      (room,)).fetchone()[0]
    db.close()
    tap.check(removed and before == 233 and ancient == 0 and
              per_room <= 50 and hist == 50,
              "restarted with history_days = 1, history_max = 50: the "
              "3 rows of 1970 are gone and #hist keeps its newest 50 of "
              "233", (removed, before, ancient, per_room, hist))


def main():
    srv = FakeServer(domain=GW)
    cw = Causeway(srv.port, domain=GW, backend="echo",
                  extra="linger = 0\n").start()
    conn = srv.accept()
    try:
        res = register(conn, A, "alice", "r1")
        tap.check(res is not None and res.get("type") == "result",
                  "alice registers", res)
        res = register(conn, BOB, "carol", "r2")
        tap.check(res is not None and res.get("type") == "result",
                  "carol registers", res)
        drain(conn)
        test_refused_joins(conn, cw)
        test_join(conn, cw)
        test_messages(conn, cw)
        test_nick_change(conn, cw)
        test_second_resource(conn, cw)
        test_private(conn, cw)
        test_occupants(conn, cw)
        test_iq(conn, cw)
        test_drop_in(conn, cw)
        test_network_side(conn, cw)
        test_crowd(conn, cw)
        test_leave(conn, cw)
        test_offline(conn, cw)
        test_bad_rooms(conn, cw)
        test_persistent(conn, cw)
        test_history(conn, cw)
        test_archive_access(conn, cw)
        test_room_list_paging(conn, cw)
        # Stop with a room open, so its state is freed at shutdown (and
        # a sanitizer build reports any leak).
        join_presence(conn, A, "#last", "alice", id_="jz")
        seq, done = join_sequence(conn, A, "#last")
        # Persistent, with messages still in the archive's queue at the
        # SIGTERM: the shutdown writes them.
        owner_set(conn, A, "#last", "oz", persistent="1")
        groupchat(conn, A, "#last", "queued at exit", "mz")
        conn.next_stanza(3, lambda s: s.get("id") == "mz")
        cw.signal(signal.SIGTERM)
        tap.check(done and cw.wait_exit(15) == 0,
                  "SIGTERM with a room open: a clean exit")
        db = sqlite3.connect(os.path.join(cw.tmp, "causeway.db"))
        rows = db.execute("SELECT nick, body FROM archive").fetchall()
        db.close()
        tap.check(("alice", "queued at exit") in rows,
                  "archived messages still queued at the SIGTERM are "
                  "written at shutdown", rows)
        test_retention(srv, cw)
        log = cw.log_text()
        tap.check("ERROR: AddressSanitizer" not in log
                  and "ERROR: LeakSanitizer" not in log
                  and "runtime error" not in log,
                  "no sanitizer report in causeway's log",
                  cw.log)
    finally:
        cw.close()
        srv.close()
    print("# causeway log: %s" % cw.log)
    return tap.done()


if __name__ == "__main__":
    sys.exit(main())
