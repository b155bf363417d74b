#!/usr/bin/python3
"""End-to-end: IRC without registration, the user's own nick, settings that
do not throw anyone out, and IRC credentials that go to one server only;
through a real XMPP server (Prosody, ejabberd) and a real InspIRCd, with a
raw IRC client (the bot) on the other side and a scripted IRC server
(AccessIrcd, on 127.0.0.4) that records every line it receives.

Every user here is a JID that never registered with the gateway (except
where a check registers on purpose), and allow names them one by one:
mallory@localhost is outside it.

  - alice joins #access%127.0.0.1/Caro: the IRC nick is Caro (no 210), she
    chats, sends a private message, and is not shown as registered; a
    second room joined as Other gets Caro with 210 and sends no NICK; a
    nick change in one room is one NICK on IRC and a 303 in both rooms;
  - bob lists the server's channels (disco#items on 127.0.0.1@gw), writes
    to bot%127.0.0.1 without joining anything (his nick: his user name),
    and runs the user commands, submitting with action next, execute and
    complete;
  - settings: the settings command submitted unchanged logs nothing out
    (no QUIT, no 332); a nick registered on 127.0.0.1@gw is one NICK; a
    new realname there reconnects, and the rooms stay joined (no 332,
    a status message, the rejoin, WHOIS shows the new realname);
  - 433 (nick in use) and 432 (erroneous nick) at connect: a variant,
    with 210;
  - bad input, counted at AccessIrcd (no connection at all): an empty
    nick, a 100-character nick, a nick with a space, a room JID that is
    only %server; 1,000 joins from one JID (128 rooms, the rest refused,
    one connection, 128 JOINs); two resources joining with different
    nicks at once (one nick, one connection, one JOIN, 210 for one);
  - mallory (outside allow): joins, private messages, channel lists,
    commands and registration are forbidden, and AccessIrcd and the bot
    see nothing of her;
  - credentials: gina registers SASL and server passwords on the gateway
    and on 127.0.0.1@gw, then joins a channel on 127.0.0.4: no PASS, no
    AUTHENTICATE, none of those secrets reach it; registering on
    127.0.0.4@gw then reconnects with those (PASS, SASL PLAIN) and her
    room stays joined;
  - --check-config: require_registration = no is refused for the email
    backend.

  /usr/bin/python3 tests/e2e/test_irc_access.py [prosody|ejabberd]
Needs inspircd; output is TAP.
"""

import base64
import os
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cwtest                                   # noqa: E402
from cwtest import Causeway, InspIRCd, irc_parse  # noqa: E402
from test_irc import (C, DOMAIN, HANDSHAKE, NS_MUC, NS_REGISTER,  # noqa: E402
                      NS_DATA, SRV, SRV_FAKE, WAIT, FakeIrcd, User, bare,
                      error_condition, irc, muc_codes, muc_item, nick_jid,
                      resource, room_jid, self_presence, start_bot, xml_str)

FAKE = SRV_FAKE
NS_CMD = "http://jabber.org/protocol/commands"
NS_ITEMS = "http://jabber.org/protocol/disco#items"
USERS = ("alice", "bob", "carol", "dave", "erin", "frank", "gina")
OUTSIDER = "mallory"


class AccessIrcd(FakeIrcd):
    """test_irc's scripted server (its socket on SRV_FAKE, its record of
    connections and lines) with a script of its own: it offers
    server-time and sasl (PLAIN, any credentials accepted), refuses nicks
    holding '.' (432) and the nick "taken" (433), answers JOIN with JOIN,
    NAMES and 366."""

    @staticmethod
    def _send(conn, *lines):
        try:
            conn.sendall("".join(l + "\r\n" for l in lines).encode())
        except OSError:
            pass

    def _serve(self, conn):
        st = {"nick": "*", "user": False, "caps": False, "reg": False}
        try:
            for raw in conn.makefile("rb"):
                line = raw.rstrip(b"\r\n").decode("utf-8", "replace")
                with self.lock:
                    self.lines.append(line)
                if self._line(conn, st, line):
                    break
        except OSError:
            pass
        conn.close()

    def _line(self, conn, st, line):
        """Answers one line; True when the client quit."""
        _, cmd, p = irc_parse(line)
        nick = st["nick"]
        if cmd == "CAP" and p[:1] == ["LS"]:
            st["caps"] = True
            self._send(conn, ":fake CAP * LS :server-time sasl")
        elif cmd == "CAP" and p[:1] == ["REQ"]:
            self._send(conn, ":fake CAP * ACK :%s" % p[-1])
        elif cmd == "CAP" and p[:1] == ["END"]:
            st["caps"] = False
        elif cmd == "AUTHENTICATE" and p == ["PLAIN"]:
            self._send(conn, "AUTHENTICATE +")
        elif cmd == "AUTHENTICATE":
            self._send(conn, ":fake 900 %s %s!u@fake acct :Logged in"
                       % (nick, nick), ":fake 903 %s :SASL ok" % nick)
        elif cmd == "NICK" and p:
            if "." in p[0]:
                self._send(conn, ":fake 432 %s %s :Erroneous nickname"
                           % (nick, p[0]))
            elif p[0].lower() == "taken":
                self._send(conn, ":fake 433 %s %s :Nickname is already in "
                           "use" % (nick, p[0]))
            else:
                if st["reg"]:
                    self._send(conn, ":%s!u@fake NICK :%s" % (nick, p[0]))
                st["nick"] = p[0]
        elif cmd == "USER":
            st["user"] = True
        elif cmd == "PING":
            self._send(conn, ":fake PONG fake :%s" % (p[-1] if p else ""))
        elif cmd == "JOIN" and p:
            self._send(conn, ":%s!u@fake JOIN %s" % (nick, p[0]),
                       ":fake 353 %s = %s :%s @op" % (nick, p[0], nick),
                       ":fake 366 %s %s :End of /NAMES list." % (nick, p[0]))
        elif cmd == "PART" and p:
            self._send(conn, ":%s!u@fake PART %s" % (nick, p[0]))
        elif cmd == "QUIT":
            self._send(conn, "ERROR :bye")
            return True
        if not st["reg"] and st["user"] and not st["caps"] and \
                st["nick"] != "*":
            st["reg"] = True
            n = st["nick"]
            self._send(conn, ":fake 001 %s :Welcome" % n,
                       ":fake 005 %s CHANTYPES=# PREFIX=(ov)@+ "
                       "CASEMAPPING=ascii :are supported" % n,
                       ":fake 422 %s :No MOTD" % n)
        return False

    def mark(self):
        with self.lock:
            return len(self.lines), len(self.conns)

    def since(self, mark, pred=None):
        """Lines received since mark (from mark()), matching pred."""
        with self.lock:
            return [l for l in self.lines[mark[0]:]
                    if pred is None or pred(l)]

    def conns_since(self, mark):
        with self.lock:
            return len(self.conns) - mark[1]


class Ctx:
    def __init__(self, tap, label, server, cw, bot, fake, passwords):
        self.tap, self.label, self.server = tap, label, server
        self.cw, self.bot, self.fake = cw, bot, fake
        self.passwords = passwords
        self.clients = []

    def ok(self, cond, desc, diag=None):
        return self.tap.ok(cond, "%s: %s" % (self.label, desc), diag=diag)

    def user(self, name, res=None):
        """A logged-in client of name (never registered with the
        gateway), or None."""
        jid = "%s@localhost" % name + ("/%s" % res if res else "")
        u = User(self.server.c2s_port, jid, self.passwords[name])
        self.clients.append(u)
        if not self.ok(u.login(), "%s logs in" % jid,
                       diag=getattr(u, "error", None)):
            return None
        return u

    def cw_lines(self, n=10):
        return "\n".join(l for _, l in self.cw.matching(r"irc|%s" % DOMAIN)
                         [-n:])


def form(**fields):
    return ("<x xmlns='%s' type='submit'>%s</x>" % (NS_DATA, "".join(
        "<field var='%s'><value>%s</value></field>" % kv
        for kv in fields.items())))


def register_at(user, to, **fields):
    return user.iq(to, "<query xmlns='%s'>%s</query>" % (
        NS_REGISTER, form(FORM_TYPE=NS_REGISTER, **fields)), "set")


def command(user, node, action=None, sessionid=None, fields=None):
    attrs = " node='%s'" % node
    if action:
        attrs += " action='%s'" % action
    if sessionid:
        attrs += " sessionid='%s'" % sessionid
    return user.iq(DOMAIN, "<command xmlns='%s'%s>%s</command>" % (
        NS_CMD, attrs, form(**fields) if fields is not None else ""), "set")


def cmd_status(r):
    c = r.find("{%s}command" % NS_CMD) if r.type == "result" else None
    return (c.get("status"), c.get("sessionid")) if c is not None \
        else (None, None)


def cmd_note(r):
    n = r.find("{%s}command/{%s}note" % (NS_CMD, NS_CMD)) \
        if r.type == "result" else None
    return (n.get("type"), n.text or "") if n is not None else (None, "")


def presence_error_from(room, nick=None):
    def pred(kind, el):
        return kind == "presence" and el.get("type") == "error" and \
            bare(el.get("from")) == room.lower() and \
            (nick is None or resource(el.get("from")) == nick)
    return pred


def closed_any(kind, el):
    """A 332 (or any unavailable self-presence) from a room."""
    return kind == "presence" and el.get("type") == "unavailable" and \
        ("332" in muc_codes(el) or "110" in muc_codes(el))


def join_ok(user, room, nick, timeout=15):
    m = user.mark()
    user.join(room, nick)
    return user.wait(lambda k, el: self_presence(room)(k, el)
                     or presence_error_from(room)(k, el), timeout, m)


# ---------------------------------------------------------------- checks

def check_open_join(ctx, alice):
    bot = ctx.bot
    room = room_jid("#access")
    m0, b0 = alice.mark(), bot.mark()
    me = join_ok(alice, room, "Caro")
    j = alice.wait_irc(bot, irc("JOIN", target="#access"), WAIT, b0)
    ctx.ok(me is not None and me.get("type") != "error" and
           resource(me.get("from")) == "Caro" and
           "210" not in muc_codes(me),
           "alice (never registered) joins #access/Caro: self-presence "
           "110 from room/Caro, no 210",
           diag="got %s\nreceived:\n%s\ncauseway:\n%s"
           % (xml_str(me), alice.dump(m0), ctx.cw_lines()))
    ctx.ok(j is not None and irc_parse(j)[0] == "Caro",
           "the bot sees JOIN #access from Caro: the nick she typed",
           diag="bot got:\n" + bot.dump(b0))
    if me is None or me.get("type") == "error":
        return False
    b1 = bot.mark()
    alice.groupchat(room, "hello from an unregistered JID")
    ctx.ok(alice.wait_irc(bot, irc("PRIVMSG", nick="Caro", target="#access",
                                   text="hello from an unregistered JID"),
                          WAIT, b1),
           "her groupchat reaches the bot from Caro",
           diag="bot got:\n" + bot.dump(b1))
    b2 = bot.mark()
    alice.chat(nick_jid("bot"), "psst")
    ctx.ok(alice.wait_irc(bot, irc("PRIVMSG", nick="Caro", target="bot",
                                   text="psst"), WAIT, b2),
           "her private message to %s reaches the bot" % nick_jid("bot"),
           diag="bot got:\n" + bot.dump(b2))
    r = alice.iq(DOMAIN, "<query xmlns='%s'/>" % NS_REGISTER)
    ctx.ok(r.type == "result" and
           r.find("{%s}query/{%s}registered" % (NS_REGISTER, NS_REGISTER))
           is None, "the gateway's registration form does not call her "
           "registered", diag=str(r))
    return True


def check_bob(ctx, bob):
    """Lists, a private message without any join, the user commands."""
    bot = ctx.bot
    t0 = time.monotonic()
    r = bob.iq("%s@%s" % (SRV, DOMAIN), "<query xmlns='%s'/>" % NS_ITEMS)
    items = [i.get("jid") for i in r.findall(".//{%s}item" % NS_ITEMS)]
    ctx.ok(r.type == "result" and room_jid("#access") in items,
           "bob (never registered) lists %s@%s: #access among %d rooms "
           "(%.1f s)" % (SRV, DOMAIN, len(items), time.monotonic() - t0),
           diag="got %s (%s): %s\ncauseway:\n%s"
           % (r.type, r.error_condition, items, ctx.cw_lines()))
    b0 = bot.mark()
    bob.chat(nick_jid("bot"), "hi from bob")
    got = bob.wait_irc(bot, irc("PRIVMSG", target="bot", text="hi from bob"),
                       WAIT, b0)
    ctx.ok(got is not None and irc_parse(got)[0] == "bob",
           "bob writes to %s without joining anything: the bot gets it from "
           "bob (his user name)" % nick_jid("bot"),
           diag="bot got:\n" + bot.dump(b0))
    r = bob.iq(DOMAIN, "<query xmlns='%s' node='%s'/>" % (NS_ITEMS, NS_CMD))
    nodes = {i.get("node") for i in r.findall(".//{%s}item" % NS_ITEMS)}
    ctx.ok({"settings", "irc-server", "irc-channel"} <= nodes,
           "the command list shows him the user commands", diag=str(nodes))
    done = []
    for action in ("next", "execute", "complete"):
        st, sid = cmd_status(command(bob, "irc-server"))
        r = command(bob, "irc-server", action, sid, {"server": SRV})
        done.append((action, cmd_status(r)[0], cmd_note(r)))
    ctx.ok(all(s == "completed" and n[0] == "info" for _, s, n in done),
           "irc-server submitted with action next, execute and complete: "
           "completed each time", diag=str(done))


def check_second_room(ctx, alice):
    bot = ctx.bot
    room = room_jid("#second")
    b0 = bot.mark()
    me = join_ok(alice, room, "Other")
    alice.pump(0.5)
    nicks = bot.find_all(irc("NICK", nick="Caro"), b0)
    ctx.ok(me is not None and me.get("type") != "error" and
           resource(me.get("from")) == "Caro" and "210" in muc_codes(me),
           "alice joins #second/Other while connected: she gets Caro, with "
           "status 210", diag=xml_str(me))
    ctx.ok(not nicks, "... and no NICK reaches IRC", diag=str(nicks))


def check_nick_change(ctx, alice):
    bot = ctx.bot
    rooms = [room_jid("#access"), room_jid("#second")]
    m0, b0 = alice.mark(), bot.mark()
    alice.nick(rooms[0], "Carol2")
    got = alice.wait_irc(bot, irc("NICK", nick="Caro"), WAIT, b0)
    for r in rooms:
        alice.wait(lambda k, el, r=r: self_presence(r)(k, el) and
                   resource(el.get("from")) == "Carol2", WAIT, m0)
    alice.pump(0.5)
    nicks = bot.find_all(irc("NICK"), b0)
    ctx.ok(got is not None and len(nicks) == 1 and
           irc_parse(got)[2][-1] == "Carol2",
           "alice changes nick in #access to Carol2: one NICK on IRC",
           diag="bot got:\n" + bot.dump(b0))
    codes = []
    for r in rooms:
        gone = alice.find(lambda k, el, r=r: self_presence(
            r, "unavailable", "303")(k, el), m0)
        codes.append(muc_item(gone).get("nick") if gone is not None else None)
    ctx.ok(codes == ["Carol2", "Carol2"],
           "... and a 303 (nick Carol2) in #access and in #second",
           diag="%s\nreceived:\n%s" % (codes, alice.dump(m0)))


def check_settings_unchanged(ctx, alice):
    bot = ctx.bot
    m0, b0 = alice.mark(), bot.mark()
    st, sid = cmd_status(command(alice, "settings"))
    r = command(alice, "settings", "complete", sid, {})
    alice.pump(2)
    quits = bot.find_all(irc("QUIT"), b0)
    closed = alice.find(closed_any, m0)
    ctx.ok(cmd_status(r)[0] == "completed" and cmd_note(r)[0] == "info" and
           not quits and closed is None,
           "alice submits the settings command unchanged: saved; no QUIT on "
           "IRC, no 332 in her rooms",
           diag="note %s; quits %s; closed %s" % (cmd_note(r), quits,
                                                  xml_str(closed)))
    r = alice.iq(DOMAIN, "<query xmlns='%s'/>" % NS_REGISTER)
    sub = alice.find(lambda k, el: k == "presence" and el.get("type") ==
                     "subscribe" and bare(el.get("from")) == DOMAIN, m0)
    ctx.ok(r.type == "result" and sub is None and
           r.find("{%s}query/{%s}registered" % (NS_REGISTER, NS_REGISTER))
           is None, "saving settings registers nobody: no <registered/>, "
           "no subscription request from the gateway",
           diag="%s\n%s" % (r, xml_str(sub)))
    b1 = bot.mark()
    alice.groupchat(room_jid("#access"), "still here")
    ctx.ok(alice.wait_irc(bot, irc("PRIVMSG", nick="Carol2",
                                   target="#access", text="still here"),
                          WAIT, b1), "... and she still talks in #access",
           diag="bot got:\n" + bot.dump(b1))


def check_registered_nick(ctx, alice):
    bot = ctx.bot
    rooms = [room_jid("#access"), room_jid("#second")]
    m0, b0 = alice.mark(), bot.mark()
    r = register_at(alice, "%s@%s" % (SRV, DOMAIN), nick="CaroReg")
    got = alice.wait_irc(bot, irc("NICK", nick="Carol2"), WAIT, b0)
    for room in rooms:
        alice.wait(lambda k, el, room=room: self_presence(room)(k, el) and
                   resource(el.get("from")) == "CaroReg", WAIT, m0)
    alice.pump(0.5)
    n303 = [room for room in rooms if alice.find(
        lambda k, el, room=room: self_presence(room, "unavailable", "303")
        (k, el), m0) is not None]
    ctx.ok(r.type == "result" and got is not None and
           irc_parse(got)[2][-1] == "CaroReg" and
           not bot.find_all(irc("QUIT"), b0) and len(n303) == 2,
           "alice registers the nick CaroReg on %s@%s: one NICK, a 303 in "
           "both rooms, no QUIT" % (SRV, DOMAIN),
           diag="iq %s\nbot got:\n%s\nreceived:\n%s"
           % (r, bot.dump(b0), alice.dump(m0)))


def check_realname_reconnect(ctx, alice):
    bot = ctx.bot
    room = room_jid("#access")
    m0, b0 = alice.mark(), bot.mark()
    t0 = time.monotonic()
    r = register_at(alice, "%s@%s" % (SRV, DOMAIN), nick="CaroReg",
                    realname="Caro R")
    q = alice.wait_irc(bot, irc("QUIT", nick="CaroReg"), WAIT, b0)
    j = alice.wait_irc(bot, irc("JOIN", nick="CaroReg", target="#access"),
                       15, b0)
    alice.wait(lambda k, el: k == "message" and "Reconnect" in
               (el.findtext(C + "body") or ""), WAIT, m0)
    alice.pump(1)
    closed = alice.find(closed_any, m0)
    status = alice.find(lambda k, el: k == "message" and
                        bare(el.get("from")) == room.lower() and
                        el.get("type") == "groupchat" and "Reconnect" in
                        (el.findtext(C + "body") or ""), m0)
    ctx.ok(r.type == "result" and q is not None and j is not None and
           closed is None,
           "a new realname on %s@%s: QUIT and JOIN again on IRC (%.1f s), "
           "and no 332 nor unavailable self-presence in any room"
           % (SRV, DOMAIN, time.monotonic() - t0),
           diag="iq %s\nbot got:\n%s\nclosed: %s\ncauseway:\n%s"
           % (r, bot.dump(b0), xml_str(closed), ctx.cw_lines()))
    ctx.ok(status is not None, "the room says it is reconnecting",
           diag=alice.dump(m0))
    b1 = bot.mark()
    bot.send("WHOIS CaroReg")
    bot.wait_for(lambda l: cwtest.irc_numeric(l) in ("318", "401"), WAIT, b1)
    w = bot.find(lambda l: cwtest.irc_numeric(l) == "311", b1)
    ctx.ok(w is not None and irc_parse(w)[2][-1] == "Caro R",
           "WHOIS CaroReg shows the new realname", diag=bot.dump(b1))
    b2 = bot.mark()
    alice.groupchat(room, "back again")
    ctx.ok(alice.wait_irc(bot, irc("PRIVMSG", nick="CaroReg",
                                   target="#access", text="back again"),
                          WAIT, b2), "alice talks in #access after it",
           diag="bot got:\n" + bot.dump(b2))


def check_connect_nick_errors(ctx, dave, erin):
    bot = ctx.bot
    room = room_jid("#access")
    b0 = bot.mark()
    me = join_ok(dave, room, "bot")
    ctx.ok(me is not None and me.get("type") != "error" and
           resource(me.get("from")) == "bot_" and "210" in muc_codes(me),
           "dave joins as bot, a nick in use (433 at connect): he is bot_, "
           "with 210", diag="%s\ncauseway:\n%s" % (xml_str(me),
                                                   ctx.cw_lines()))
    me = join_ok(erin, room, "9lives")
    j = erin.wait_irc(bot, irc("JOIN", target="#access", nick=resource(
        me.get("from")) if me is not None else "-"), WAIT, b0)
    ctx.ok(me is not None and me.get("type") != "error" and
           resource(me.get("from")) == "lives" and "210" in
           muc_codes(me) and j is not None,
           "erin joins as 9lives, a nick IRC refuses (432 at connect): she "
           "is lives, with 210", diag="%s\ncauseway:\n%s"
           % (xml_str(me), ctx.cw_lines()))


def check_bad_input(ctx, frank):
    fake = ctx.fake
    f0 = fake.mark()
    cases = (("", "jid-malformed", "an empty nick"),
             ("n" * 100, "not-acceptable", "a 100-character nick"),
             ("two words", "not-acceptable", "a nick with a space"))
    for nick, cond, what in cases:
        room = room_jid("#bad", FAKE)
        m = frank.mark()
        p = frank.xmpp.make_presence(pto=room + ("/" + nick if nick else ""))
        p.append(_muc_x())
        p.send()
        err = frank.wait(presence_error_from(room), WAIT, m)
        ctx.ok(err is not None and error_condition(err) == cond,
               "a join with %s: %s" % (what, cond), diag=xml_str(err))
    m = frank.mark()
    only = "%%%s@%s" % (FAKE, DOMAIN)
    frank.join(only, "frank")
    err = frank.wait(lambda k, el: k == "presence" and el.get("type") ==
                     "error" and bare(el.get("from")) == only.lower(),
                     WAIT, m)
    ctx.ok(err is not None and error_condition(err) == "jid-malformed",
           "a join to %s (only %%server): jid-malformed" % only,
           diag=xml_str(err))
    frank.pump(0.5)
    ctx.ok(fake.conns_since(f0) == 0 and not fake.since(f0),
           "none of these opened a connection to the IRC server",
           diag="%d connections, lines %s" % (fake.conns_since(f0),
                                             fake.since(f0)[:5]))

    # 1,000 joins from one JID.
    f1 = fake.mark()
    m = frank.mark()
    t0 = time.monotonic()
    for i in range(1000):
        frank.join(room_jid("#j%d" % i, FAKE), "frank")

    def tally():
        ok = err = 0
        for k, el in frank.got[m:]:
            if k != "presence" or "#j" not in (el.get("from") or ""):
                continue
            if el.get("type") == "error":
                err += 1
            elif "110" in muc_codes(el):
                ok += 1
        return ok, err
    frank.pump_until(lambda: sum(tally()) >= 1000, 90)
    ok, err = tally()
    joins = fake.since(f1, lambda l: l.startswith("JOIN "))
    ctx.ok(ok == 128 and err == 872,
           "1,000 joins from one JID: 128 rooms joined, 872 refused (%.1f s)"
           % (time.monotonic() - t0), diag="joined %d, errors %d" % (ok, err))
    ctx.ok(fake.conns_since(f1) == 1 and len(joins) == 128,
           "... over one IRC connection, with 128 JOINs",
           diag="%d connections, %d JOINs" % (fake.conns_since(f1),
                                              len(joins)))
    r = frank.iq(DOMAIN, "<query xmlns='http://jabber.org/protocol/"
                 "disco#info'/>")
    ctx.ok(r.type == "result" and ctx.cw.alive(),
           "causeway answers disco#info after it", diag=str(r))


def _muc_x():
    from xml.etree import ElementTree as ET
    return ET.fromstring("<x xmlns='%s'/>" % NS_MUC)


def check_twins(ctx, r1, r2):
    fake = ctx.fake
    room = room_jid("#twin", FAKE)
    f0 = fake.mark()
    m1, m2 = r1.mark(), r2.mark()
    r1.join(room, "red")
    r2.join(room, "blue")
    a = r1.wait(self_presence(room), 15, m1)
    b = r2.wait(self_presence(room), 15, m2)
    nicks = {resource(x.get("from")) for x in (a, b) if x is not None}
    n210 = [x for x in (a, b) if x is not None and "210" in muc_codes(x)]
    joins = fake.since(f0, lambda l: l.startswith("JOIN "))
    regs = fake.since(f0, lambda l: l.startswith("USER "))
    ctx.ok(a is not None and b is not None and len(nicks) == 1 and
           len(n210) == 1,
           "two resources join #twin as red and blue at once: both get the "
           "same nick (%s), one with 210" % "/".join(sorted(nicks)),
           diag="%s\n%s" % (xml_str(a), xml_str(b)))
    ctx.ok(fake.conns_since(f0) == 1 and len(regs) == 1 and len(joins) == 1,
           "... one IRC connection, one JOIN",
           diag="%d connections, lines:\n%s" % (
               fake.conns_since(f0), "\n".join(fake.since(f0))))


def check_outsider(ctx, mallory):
    fake, bot = ctx.fake, ctx.bot
    f0, b0 = fake.mark(), bot.mark()
    conds = {}
    for room in (room_jid("#x", FAKE), room_jid("#access")):
        m = mallory.mark()
        mallory.join(room, "mallory")
        e = mallory.wait(presence_error_from(room), WAIT, m)
        conds["join " + room] = error_condition(e) if e is not None else None
    m = mallory.mark()
    mallory.chat(nick_jid("someone", FAKE), "hello")
    e = mallory.wait(lambda k, el: k == "message" and
                     el.get("type") == "error", WAIT, m)
    conds["message"] = error_condition(e) if e is not None else None
    r = mallory.iq("%s@%s" % (FAKE, DOMAIN), "<query xmlns='%s'/>" % NS_ITEMS)
    conds["list"] = r.error_condition
    r = command(mallory, "settings")
    conds["command"] = r.error_condition
    r = register_at(mallory, "%s@%s" % (FAKE, DOMAIN), nick="m")
    conds["register"] = r.error_condition
    r = mallory.iq(DOMAIN, "<query xmlns='%s' node='%s'/>" % (NS_ITEMS, NS_CMD))
    listed = r.findall(".//{%s}item" % NS_ITEMS)
    ctx.ok(all(c == "forbidden" for c in conds.values()) and not listed,
           "mallory (outside allow): joins, a private message, a channel "
           "list, a command and a registration are forbidden; no command "
           "is listed", diag=str(conds))
    mallory.pump(1)
    seen = bot.find_all(lambda l: "mallory" in l.lower(), b0)
    ctx.ok(fake.conns_since(f0) == 0 and not fake.since(f0) and not seen,
           "... and neither IRC server hears of her",
           diag="%d connections; lines %s; bot %s" % (
               fake.conns_since(f0), fake.since(f0)[:5], seen))


def check_credentials(ctx, gina):
    fake = ctx.fake
    gw_secret, srv_secret = "gwsecret" + os.urandom(3).hex(), \
        "srvsecret" + os.urandom(3).hex()
    r1 = register_at(gina, DOMAIN, sasl_user="gwacct",
                     sasl_password=gw_secret, server_password=gw_secret)
    r2 = register_at(gina, "%s@%s" % (SRV, DOMAIN), sasl_user="srvacct",
                     sasl_password=srv_secret, server_password=srv_secret)
    ctx.ok(r1.type == "result" and r2.type == "result",
           "gina registers SASL and server passwords on the gateway and on "
           "%s@%s" % (SRV, DOMAIN), diag="%s\n%s" % (r1, r2))
    room = room_jid("#creds", FAKE)
    f0 = fake.mark()
    me = join_ok(gina, room, "gina")
    lines = fake.since(f0)
    leaked = [l for l in lines if l.startswith(("PASS", "AUTHENTICATE"))
              or gw_secret in l or srv_secret in l or "gwacct" in l or
              "srvacct" in l]
    ctx.ok(me is not None and me.get("type") != "error" and lines and
           not leaked,
           "she joins a channel on %s: no PASS, no AUTHENTICATE, none of "
           "those credentials reach that server" % FAKE,
           diag="leaked %s\nlines:\n%s" % (leaked, "\n".join(lines)))
    own = "own" + os.urandom(3).hex()
    m0, f1 = gina.mark(), fake.mark()
    r = register_at(gina, "%s@%s" % (FAKE, DOMAIN), sasl_user="fakeacct",
                    sasl_password=own, server_password=own)
    gina.pump_until(lambda: fake.since(f1, lambda l: l.startswith(
        "JOIN #creds")), 15)
    gina.pump(0.5)
    lines = fake.since(f1)
    auth = [l.split(" ", 1)[1] for l in lines
            if l.startswith("AUTHENTICATE ") and l != "AUTHENTICATE PLAIN"]
    plain = b""
    try:
        plain = base64.b64decode(auth[0]) if auth else b""
    except ValueError:
        pass
    closed = gina.find(closed_any, m0)
    ctx.ok(r.type == "result" and ("PASS %s" % own in lines or
                                   "PASS :%s" % own in lines) and
           own.encode() in plain and b"fakeacct" in plain and
           gw_secret not in "".join(lines) and srv_secret not in
           "".join(lines),
           "registering on %s@%s reconnects with that server's own PASS and "
           "SASL PLAIN, and only those" % (FAKE, DOMAIN),
           diag="iq %s\nlines:\n%s" % (r, "\n".join(lines)))
    ctx.ok(closed is None and fake.since(f1, lambda l: l.startswith(
        "JOIN #creds")), "... and her room stays joined across the "
        "reconnect (no 332; JOIN again)", diag=xml_str(closed))


def check_email_config(tap):
    d = cwtest.make_tempdir("cwtest-access-")
    cfg = os.path.join(d, "causeway.conf")
    with open(cfg, "w") as f:
        f.write("[causeway]\ndatabase = %s/db\nkey_file = %s/key\n\n"
                "[component mail.localhost]\nbackend = email\nsecret = x\n"
                "require_registration = no\n" % (d, d))
    p = subprocess.run([cwtest.causeway_bin(), "-c", cfg, "--check-config"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=30)
    out = p.stdout.decode(errors="replace")
    tap.ok(p.returncode != 0 and "require_registration" in out and
           "cannot be no" in out,
           "--check-config: require_registration = no is refused for the "
           "email backend (mail needs the account first)", diag=out)


def run_server(tap, cls):
    label = cls.name
    t_server = time.monotonic()
    server = cls(domain=DOMAIN, tap=tap)
    ircd = cw = bot = fake = ctx = None
    try:
        t0 = time.monotonic()
        ircd = InspIRCd(tap=tap)
        ircd.start()
        server.start()
        passwords = {u: "pw-" + os.urandom(4).hex()
                     for u in USERS + (OUTSIDER,)}
        for u, pw in passwords.items():
            server.register(u, pw)
        tap.ok(True, "%s: InspIRCd and %s up, %d accounts (%.1f s)"
               % (label, label, len(passwords), time.monotonic() - t0))
        fake = AccessIrcd()
        cw = Causeway(server, tap=tap, name="causeway-access-%s" % label,
                      backend="irc", options={
                          "linger": 0,
                          "allow": ", ".join("%s@localhost" % u
                                             for u in USERS)},
                      sections=[
                          ("irc-server %s" % SRV,
                           dict(port=ircd.port, tls="no", throttle_burst=10,
                                throttle_rate=100)),
                          ("irc-server %s" % FAKE,
                           dict(port=fake.port, tls="no",
                                throttle_burst=1000, throttle_rate=1)),
                      ])
        cw.start()
        if not tap.ok(cw.wait_for(HANDSHAKE, 1, 20),
                      "%s: causeway attached as %s" % (label, DOMAIN)):
            return
        cbot = type("BotCtx", (), {"ircd": ircd})
        bot = start_bot(cbot, "bot", ("#access", "#second"))
        bot.send("TOPIC #access :open to all")
        ctx = Ctx(tap, label, server, cw, bot, fake, passwords)

        alice = ctx.user("alice")
        if alice and check_open_join(ctx, alice):
            check_second_room(ctx, alice)
            check_nick_change(ctx, alice)
            check_settings_unchanged(ctx, alice)
            check_registered_nick(ctx, alice)
            check_realname_reconnect(ctx, alice)
        bob = ctx.user("bob")
        if bob:
            check_bob(ctx, bob)
        dave, erin = ctx.user("dave"), ctx.user("erin")
        if dave and erin:
            check_connect_nick_errors(ctx, dave, erin)
        mallory = ctx.user(OUTSIDER)
        if mallory:
            check_outsider(ctx, mallory)
        frank = ctx.user("frank")
        if frank:
            check_bad_input(ctx, frank)
        r1, r2 = ctx.user("carol", "r1"), ctx.user("carol", "r2")
        if r1 and r2:
            check_twins(ctx, r1, r2)
        gina = ctx.user("gina")
        if gina:
            check_credentials(ctx, gina)
        tap.ok(cw.alive() and cw.count(HANDSHAKE) == 1,
               "%s: causeway stayed up and attached throughout" % label)
    except Exception as e:
        cwtest.mark_failed()
        tap.bail("%s: unexpected exception: %s" % (label, e), e)
    finally:
        cwtest.stop_all(tap, label, server, t_server, fake, bot,
                        *(ctx.clients if ctx else []), cw, ircd)


def main():
    tap_holder = []

    def run(tap, cls):
        if not tap_holder:
            tap_holder.append(tap)
            check_email_config(tap)
        run_server(tap, cls)
    return cwtest.main_per_server("IRC access tests", run,
                                  requires=("inspircd", "openssl"))


if __name__ == "__main__":
    sys.exit(main())
