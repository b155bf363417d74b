#!/usr/bin/python3
"""End-to-end: the IRC backend against a real InspIRCd 3, through a real
XMPP server, with a raw IRC client (the "bot") as the other side.

causeway is attached as irc.localhost (backend = irc, linger = 0) with
three IRC server policies, all on one private InspIRCd:
  [irc-server 127.0.0.1]  plain port (tls = no)
  [irc-server 127.0.0.3]  TLS port, self-signed certificate, no pin
  [irc-server 127.0.0.2]  TLS port, fingerprint = its SHA-256

With atheme-services installed, InspIRCd is linked to Atheme (SASL).

What is checked, for Prosody and ejabberd (each skipped when not
installed), by a JID that never registered: joining
#test%127.0.0.1@irc.localhost (self-presence 110, the IRC JOIN, the bot as
a moderator occupant, its topic as the subject); groupchat both ways;
topic change; private messages both ways through bot%127.0.0.1@...; CTCP
ACTION both ways, NOTICE, CP1252 fallback, formatting codes; nick changes
both ways (303); a kick (307) and a rejoin; CR/LF in a body, a subject and
a join password cannot inject a command; a 1500-byte body is split into
ordered lines of at most 512 bytes; voice and op become affiliations and
roles; alice as op sets the topic and kicks the bot; leaving (PART or
QUIT); XEP-0077 registration with an empty form (after all that);
registration's nick, realname and SASL credentials (Atheme account,
WHOIS 330); TLS refused without a pin and accepted with one; PMs through
the room's occupant JID answered through it; a long multi-line /me split
into CTCP ACTIONs; nick refusals after registration (433 conflict, 432
not-acceptable) as presence errors; the IRC server dying (a status message
from the room, the bot leaves, alice stays) and the gateway reconnecting
and rejoining on its own after the restart.

Persistent channels (bouncer mode): alice makes #hist persistent through
the room's owner form, leaves and goes offline; the bot still sees her
in #hist (NAMES) and says three lines; when alice rejoins they come as
history (XEP-0203 delays) between her self-presence and the subject, and
a XEP-0313 MAM query on the room returns them with XEP-0059 paging and
counts; carol persisting #hist too does not archive anything twice (rows
counted in causeway's database); the owner form's encoding ISO-8859-15
reads the bot's 0xA4 as the euro sign, for alice only; with nobody
persisting #hist any more its archive stays (retention decides).
History in channels nobody keeps persistent and who may read it:
tests/e2e/test_irc_history.py.

A scripted server (FakeIrcd, on 127.0.0.4, CHANTYPES=#!+) covers old
server-time tags (XEP-0203 delay on groupchat and room PMs), a forced
nick (210), the identd (USERID for the link's ports, NO-USER, INVALID-PORT;
the derived ident name, stable across links), +chan as a room from the
server's CHANTYPES, a STATUSMSG shown but not archived, the irc-server and
irc-channel commands (bad input refused; charset, NickServ line sent after
USER and before the rejoin, persistence), a link cut with lines queued
(error messages with the ids, nothing reflected), and the archive writer's
link dropping while another user persists the channel.

  /usr/bin/python3 tests/e2e/test_irc.py            # both XMPP servers
  /usr/bin/python3 tests/e2e/test_irc.py prosody    # one of them
Environment: CAUSEWAY_BIN (default ../../causeway from this file),
CWTEST_KEEP=1 keeps the temp dirs, CWTEST_XMPP_LOG=DEBUG traces the client.
Needs inspircd and openssl; output is TAP.
"""

import asyncio
import os
import re
import socket
import sqlite3
import sys
import threading
import time
from xml.etree import ElementTree as ET

sys.dont_write_bytecode = True                  # no __pycache__ in the tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cwtest                                   # noqa: E402
from cwtest import (Atheme, Causeway, Client, Ejabberd, InspIRCd,  # noqa: E402
                    IrcClient, Prosody, Tap, irc_parse)

DOMAIN = "irc.localhost"
HANDSHAKE = r"irc\.localhost: handshake accepted"
SRV = "127.0.0.1"                 # plain
SRV_PIN = "127.0.0.2"             # TLS, pinned
SRV_NOPIN = "127.0.0.3"           # TLS, not pinned
SRV_FAKE = "127.0.0.4"            # the scripted server below (plain)

C = "{jabber:client}"
NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_REGISTER = "jabber:iq:register"
NS_DATA = "jabber:x:data"
NS_ROSTER = "jabber:iq:roster"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_DELAY = "urn:xmpp:delay"
NS_MUC_OWNER = "http://jabber.org/protocol/muc#owner"
NS_ROOMCONFIG = "http://jabber.org/protocol/muc#roomconfig"
NS_MAM = "urn:xmpp:mam:2"
NS_RSM = "http://jabber.org/protocol/rsm"
NS_FORWARD = "urn:xmpp:forward:0"
NS_SID = "urn:xmpp:sid:0"

WAIT = 8                          # seconds for anything that should happen


def room_jid(chan, server=SRV):
    return "%s%%%s@%s" % (chan, server, DOMAIN)


def nick_jid(nick, server=SRV):
    return "%s%%%s@%s" % (nick, server, DOMAIN)


def xml_str(el):
    return "<none>" if el is None else ET.tostring(el, encoding="unicode")


def bare(jid):
    return (jid or "").split("/", 1)[0].lower()


def resource(jid):
    return (jid or "").split("/", 1)[1] if "/" in (jid or "") else None


def error_condition(el):
    for e in el.findall(C + "error/*"):
        if e.tag.startswith("{%s}" % NS_STANZAS) and not e.tag.endswith("}text"):
            return e.tag.split("}", 1)[1]
    return None


def muc_codes(el):
    return {s.get("code") for s in
            el.findall("{%s}x/{%s}status" % (NS_MUC_USER, NS_MUC_USER))}


def muc_item(el):
    return el.find("{%s}x/{%s}item" % (NS_MUC_USER, NS_MUC_USER))


class User(cwtest.RecordingClient):
    """An IM client: roster, initial presence, and a record of every
    presence and message received, in order."""

    def prepare(self, xmpp):
        xmpp.auto_authorize = None
        xmpp.auto_subscribe = False
        self.record(xmpp, {"presence": C + "presence", "message": C + "message"},
                    self.keep)

    def login(self, timeout=20):
        if not super().login(timeout):
            return False
        self.iq(None, "<query xmlns='%s'/>" % NS_ROSTER)
        self.xmpp.send_presence()
        return True

    def wait(self, pred, timeout=WAIT, since=0):
        return super().wait(pred, timeout, since)

    def wait_irc(self, bot, pred, timeout=WAIT, since=0):
        """Wait for a line at the IRC bot while this client's stream runs."""
        return self.pump_until(lambda: bot.find(pred, since), timeout)

    def dump(self, since=0, n=12):
        return "\n".join("%s: %s" % (k, xml_str(e))
                         for k, e in self.got[since:][-n:]) or "(nothing received)"

    # -- sending --

    def join(self, room, nick):
        p = self.xmpp.make_presence(pto="%s/%s" % (room, nick))
        p.append(ET.fromstring("<x xmlns='%s'/>" % NS_MUC))
        p.send()

    def leave(self, room, nick):
        self.xmpp.send_presence(pto="%s/%s" % (room, nick), ptype="unavailable")

    def nick(self, room, nick):
        self.xmpp.send_presence(pto="%s/%s" % (room, nick))

    def groupchat(self, room, body):
        self.xmpp.send_message(mto=room, mbody=body, mtype="groupchat")

    def chat(self, to, body):
        self.xmpp.send_message(mto=to, mbody=body, mtype="chat")


# Matchers on (kind, element).

def self_presence(room, ptype=None, code="110"):
    def pred(kind, el):
        return kind == "presence" and bare(el.get("from")) == room.lower() \
            and el.get("type") == ptype and code in muc_codes(el)
    return pred


def presence_error(room):
    def pred(kind, el):
        return kind == "presence" and bare(el.get("from")) == room.lower() \
            and el.get("type") == "error"
    return pred


def occupant(room, nick, ptype=None):
    def pred(kind, el):
        return kind == "presence" and bare(el.get("from")) == room.lower() \
            and resource(el.get("from")) == nick and el.get("type") == ptype
    return pred


def subject(room, text):
    def pred(kind, el):
        s = el.find(C + "subject")
        return kind == "message" and bare(el.get("from")) == room.lower() \
            and el.get("type") == "groupchat" and s is not None \
            and (s.text or "") == text
    return pred


def groupchat(room, nick, body):
    def pred(kind, el):
        b = el.find(C + "body")
        return kind == "message" and bare(el.get("from")) == room.lower() \
            and resource(el.get("from")) == nick \
            and el.get("type") == "groupchat" and b is not None and b.text == body
    return pred


def chat_from(jid, body):
    def pred(kind, el):
        b = el.find(C + "body")
        return kind == "message" and bare(el.get("from")) == jid.lower() \
            and el.get("type") != "error" and b is not None and b.text == body
    return pred


def error_from(jid):
    def pred(kind, el):
        return bare(el.get("from")) == jid.lower() and el.get("type") == "error"
    return pred


# Matchers on IRC lines.

def irc(cmd, nick=None, target=None, text=None, text_has=None):
    def pred(line):
        n, c, params = irc_parse(line)
        if c != cmd or (nick is not None and (n or "").lower() != nick.lower()):
            return False
        if target is not None and (not params or params[0].lower() != target.lower()):
            return False
        if text is not None and (len(params) < 2 or params[-1] != text):
            return False
        if text_has is not None and (len(params) < 2 or text_has not in params[-1]):
            return False
        return True
    return pred


def irc_from_alice(cmd, **kw):
    """cmd from alice's connection, whatever nick the network gave it."""
    inner = irc(cmd, **kw)

    def pred(line):
        n = irc_parse(line)[0] or ""
        return n.lower().startswith("alice") and inner(line)
    return pred


# --------------------------------------------------------------------------


class FakeIrcd:
    """A scripted IRC server on SRV_FAKE for what InspIRCd will not do on
    demand: old server-time tags and forced nick changes.  It offers
    server-time, registers anyone, answers JOIN with JOIN, NAMES (the
    joiner and @old) and 366, and lets the test push raw lines to every
    client (send_all)."""

    def __init__(self, host=SRV_FAKE):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.clients = []           # [socket, nick]
        self.lines = []             # every line received, in order
        self.conns = []             # (socket, causeway's port) accepted
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()
        cwtest.on_exit(self.close)

    def _accept(self):
        while True:
            try:
                conn, peer = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.conns.append((conn, peer[1]))
            threading.Thread(target=self._serve, args=(conn,),
                             daemon=True).start()

    def _send(self, conn, line):
        try:
            conn.sendall(line.encode() + b"\r\n")
        except OSError:
            pass

    def _serve(self, conn):
        client = [conn, "*"]
        caps, user, registered = False, False, False
        buf = b""
        while True:
            try:
                data = conn.recv(4096)
            except OSError:
                data = b""
            if not data:
                break
            buf += data
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                line = raw.rstrip(b"\r").decode("utf-8", "replace")
                with self.lock:
                    self.lines.append(line)
                _, cmd, params = irc_parse(line)
                nick = client[1]
                if cmd == "CAP" and params[:1] == ["LS"]:
                    caps = True
                    self._send(conn, ":fake CAP * LS :server-time")
                elif cmd == "CAP" and params[:1] == ["REQ"]:
                    self._send(conn, ":fake CAP * ACK :%s" % params[-1])
                elif cmd == "CAP" and params[:1] == ["END"]:
                    caps = False
                elif cmd == "NICK" and params:
                    if registered:
                        self._send(conn, ":%s!u@fake NICK :%s" % (nick, params[0]))
                    client[1] = params[0]
                elif cmd == "USER":
                    user = True
                elif cmd == "PING":
                    self._send(conn, ":fake PONG fake :%s" % (params[-1] if params else ""))
                elif cmd == "JOIN" and params:
                    ch = params[0]
                    names = [nick, "@old"]
                    if ch == "#kickjoin":
                        # Put out before NAMES: the join must fail.
                        self._send(conn, ":%s!u@fake JOIN %s" % (nick, ch))
                        self._send(conn, ":old!u@fake KICK %s %s :go away"
                                   % (ch, nick))
                        continue
                    if ch == "#crowd":
                        # A NAMES reply of 10,000 nicks, 50 per line.
                        names += ["c%d" % i for i in range(10000)]
                    lines = [":%s!u@fake JOIN %s" % (nick, ch)]
                    for i in range(0, len(names), 50):
                        lines.append(":fake 353 %s = %s :%s"
                                     % (nick, ch, " ".join(names[i:i + 50])))
                    lines.append(":fake 366 %s %s :End of /NAMES list." % (nick, ch))
                    try:
                        conn.sendall(("\r\n".join(lines) + "\r\n").encode())
                    except OSError:
                        pass
                elif cmd == "QUIT":
                    self._send(conn, "ERROR :bye")
                    conn.close()
                    return
                if not registered and user and not caps and client[1] != "*":
                    registered = True
                    with self.lock:
                        self.clients.append(client)
                    n = client[1]
                    for l in (":fake 001 %s :Welcome" % n,
                              ":fake 005 %s CHANTYPES=#!+ PREFIX=(ov)@+ "
                              "STATUSMSG=@+ CASEMAPPING=ascii :are supported"
                              % n,
                              ":fake 422 %s :No MOTD" % n):
                        self._send(conn, l)
        with self.lock:
            if client in self.clients:
                self.clients.remove(client)
        conn.close()

    def send_all(self, line):
        """line with {nick} replaced by each client's nick."""
        with self.lock:
            clients = list(self.clients)
        for conn, nick in clients:
            self._send(conn, line.replace("{nick}", nick))

    def send_all_raw(self, data):
        """data (bytes, CR LF included) to every registered client."""
        with self.lock:
            clients = list(self.clients)
        for conn, _ in clients:
            try:
                conn.sendall(data)
            except OSError:
                pass

    def drop_all(self):
        """Cuts every client's link (no ERROR): a network failure."""
        with self.lock:
            conns = [c for c, _ in self.conns]
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def drop_nick(self, nick):
        """Cuts the link of the client registered as nick."""
        with self.lock:
            conns = [c for c, n in self.clients if n == nick]
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def open_ports(self):
        """causeway's local ports of the links open now."""
        with self.lock:
            return [p for c, p in self.conns if c.fileno() >= 0]

    def nicks(self):
        with self.lock:
            return [n for _, n in self.clients]

    def received(self, pred):
        with self.lock:
            return [l for l in self.lines if pred(l)]

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
        with self.lock:
            clients, self.clients = self.clients, []
        for conn, _ in clients:
            try:
                conn.close()
            except OSError:
                pass


class Ctx:
    def __init__(self, tap, label, server, ircd, cw, alice):
        self.tap, self.label, self.server = tap, label, server
        self.ircd, self.cw, self.alice = ircd, cw, alice
        self.bot = None
        self.secrets = []       # every secret typed: none may be logged

    def ok(self, cond, desc, diag=None, todo=None):
        return self.tap.ok(cond, "%s: %s" % (self.label, desc), diag=diag,
                           todo=todo)

    def cw_lines(self, regex=r"irc", n=8):
        return "\n".join(l for _, l in self.cw.matching(regex)[-n:])


def start_bot(ctx, nick="bot", chans=("#test",)):
    bot = IrcClient(ctx.ircd.port, nick)
    if not bot.register():
        raise RuntimeError("the IRC bot %s could not register:\n%s"
                           % (nick, bot.dump()))
    for ch in chans:
        if not bot.join(ch):
            raise RuntimeError("the IRC bot could not join %s:\n%s"
                               % (ch, bot.dump()))
    return bot


def check_register(ctx):
    a = ctx.alice
    form = ("<query xmlns='%s'><x xmlns='%s' type='submit'><field var="
            "'FORM_TYPE'><value>%s</value></field></x></query>"
            % (NS_REGISTER, NS_DATA, NS_REGISTER))
    r = a.iq(DOMAIN, form, "set")
    return ctx.ok(r.type == "result", "alice registers on %s with an empty "
                  "form: result" % DOMAIN,
                  diag="got %s (%s): %s" % (r.type, r.error_condition, r))


def check_join(ctx):
    """alice joins #test; returns True when she is in."""
    a, bot = ctx.alice, ctx.bot
    room = room_jid("#test")
    m0, b0 = a.mark(), bot.mark()
    t0 = time.monotonic()
    a.join(room, "alice")
    me = a.wait(self_presence(room), 15, m0)
    t = time.monotonic() - t0
    err = a.find(presence_error(room), m0)
    if not ctx.ok(me is not None, "alice joins %s/alice: self-presence with "
                  "status 110 (%.1f s)" % (room, t),
                  diag="error presence: %s\nreceived:\n%s\ncauseway:\n%s"
                  % (xml_str(err), a.dump(m0), ctx.cw_lines())):
        return False
    ctx.ok(resource(me.get("from")) == "alice", "the self-presence is from "
           "room/alice", diag=xml_str(me))
    j = a.wait_irc(bot, irc("JOIN", nick="alice", target="#test"), WAIT, b0)
    ctx.ok(j, "the IRC bot sees alice JOIN #test", diag="bot got:\n" + bot.dump(b0))

    occ = a.find(occupant(room, "bot"), m0)
    item = muc_item(occ) if occ is not None else None
    ctx.ok(item is not None and item.get("role") == "moderator"
           and item.get("affiliation") == "admin",
           "the bot (@, channel operator) is an occupant with role moderator, "
           "affiliation admin", diag="bot's presence: %s\nreceived:\n%s"
           % (xml_str(occ), a.dump(m0)))
    # The occupant list comes before the self-presence (XEP-0045 7.2.3).
    ok_order = occ is not None and a.got.index(
        next(x for x in a.got[m0:] if x[1] is occ)) < a.got.index(
        next(x for x in a.got[m0:] if x[1] is me))
    ctx.ok(ok_order, "the bot's presence comes before alice's self-presence")
    s = a.wait(subject(room, "first topic"), WAIT, m0)
    ctx.ok(s is not None, "the topic the bot set is the room subject",
           diag="received:\n" + a.dump(m0))
    return True


def check_groupchat(ctx):
    a, bot = ctx.alice, ctx.bot
    room = room_jid("#test")
    m0, b0 = a.mark(), bot.mark()
    t0 = time.monotonic()
    a.groupchat(room, "hello")
    got = a.wait_irc(bot, irc("PRIVMSG", nick="alice", target="#test",
                              text="hello"), WAIT, b0)
    ctx.ok(got, "alice's groupchat \"hello\" reaches the bot as PRIVMSG #test "
           ":hello (%.0f ms)" % (1000 * (time.monotonic() - t0)),
           diag="bot got:\n%s\nalice got:\n%s" % (bot.dump(b0), a.dump(m0)))
    refl = a.wait(groupchat(room, "alice", "hello"), WAIT, m0)
    ctx.ok(refl is not None, "alice gets her message reflected from room/alice",
           diag="received:\n" + a.dump(m0))
    a.pump(0.3)
    dup = [e for k, e in a.got[m0:] if groupchat(room, "alice", "hello")(k, e)]
    ctx.ok(len(dup) == 1, "exactly one reflection (echo-message is not shown "
           "twice)", diag="%d copies:\n%s" % (len(dup), a.dump(m0)))

    m0 = a.mark()
    t0 = time.monotonic()
    bot.send("PRIVMSG #test :hi")
    got = a.wait(groupchat(room, "bot", "hi"), WAIT, m0)
    ctx.ok(got is not None, "the bot's PRIVMSG #test :hi reaches alice as "
           "groupchat from %s/bot (%.0f ms)" % (room, 1000 * (time.monotonic() - t0)),
           diag="received:\n" + a.dump(m0))

    m0 = a.mark()
    bot.send("TOPIC #test :second topic")
    s = a.wait(subject(room, "second topic"), WAIT, m0)
    ctx.ok(s is not None and resource(s.get("from")) == "bot",
           "the bot changes the topic: alice gets the subject from room/bot",
           diag="subject: %s\nreceived:\n%s" % (xml_str(s), a.dump(m0)))


def check_private(ctx):
    a, bot = ctx.alice, ctx.bot
    m0, b0 = a.mark(), bot.mark()
    bot.send("PRIVMSG alice :psst")
    got = a.wait(chat_from(nick_jid("bot"), "psst"), WAIT, m0)
    ctx.ok(got is not None and got.get("type") == "chat",
           "the bot's private PRIVMSG reaches alice as chat from %s"
           % nick_jid("bot"), diag="received:\n" + a.dump(m0))
    a.chat(nick_jid("bot"), "psst back")
    got = a.wait_irc(bot, irc("PRIVMSG", nick="alice", target="bot",
                              text="psst back"), WAIT, b0)
    ctx.ok(got, "alice answers %s: the bot gets PRIVMSG bot :psst back"
           % nick_jid("bot"),
           diag="bot got:\n%s\nalice got:\n%s" % (bot.dump(b0), a.dump(m0)))


def check_private_in_room(ctx):
    """A PM started through #test%SRV/bot comes back through it; one
    written to bot%SRV then comes back through bot%SRV again."""
    a, bot = ctx.alice, ctx.bot
    room = room_jid("#test")
    occ = room + "/bot"
    m0, b0 = a.mark(), bot.mark()
    a.chat(occ, "via the room")
    got = a.wait_irc(bot, irc("PRIVMSG", nick="alice", target="bot",
                              text="via the room"), WAIT, b0)
    ctx.ok(got, "alice writes to %s: the bot gets PRIVMSG bot :via the room"
           % occ, diag="bot got:\n%s\nalice got:\n%s" % (bot.dump(b0), a.dump(m0)))
    bot.send("PRIVMSG alice :room reply")
    r = a.wait(lambda k, el: chat_from(room, "room reply")(k, el)
               or chat_from(nick_jid("bot"), "room reply")(k, el), WAIT, m0)
    ctx.ok(r is not None and r.get("from") == occ and r.get("type") == "chat"
           and r.find("{%s}x" % NS_MUC_USER) is not None,
           "the bot's answer comes back from %s (chat, muc#user x), not "
           "from %s" % (occ, nick_jid("bot")),
           diag="got: %s\nreceived:\n%s" % (xml_str(r), a.dump(m0)))
    m0, b0 = a.mark(), bot.mark()
    a.chat(nick_jid("bot"), "direct now")
    a.wait_irc(bot, irc("PRIVMSG", nick="alice", target="bot",
                        text="direct now"), WAIT, b0)
    bot.send("PRIVMSG alice :direct reply")
    r = a.wait(lambda k, el: chat_from(room, "direct reply")(k, el)
               or chat_from(nick_jid("bot"), "direct reply")(k, el), WAIT, m0)
    ctx.ok(r is not None and bare(r.get("from")) == nick_jid("bot").lower(),
           "after alice writes to %s, answers come from there again"
           % nick_jid("bot"),
           diag="got: %s\nreceived:\n%s" % (xml_str(r), a.dump(m0)))


def check_text(ctx):
    """CTCP ACTION both ways, NOTICE, and text that is not UTF-8."""
    a, bot = ctx.alice, ctx.bot
    room = room_jid("#test")
    m0 = a.mark()
    bot.send("PRIVMSG #test :\x01ACTION waves\x01")
    got = a.wait(groupchat(room, "bot", "/me waves"), WAIT, m0)
    ctx.ok(got is not None, "the bot's CTCP ACTION reaches alice as \"/me "
           "waves\"", diag="received:\n" + a.dump(m0))
    m0, b0 = a.mark(), bot.mark()
    a.groupchat(room, "/me waves back")
    got = a.wait_irc(bot, irc("PRIVMSG", nick="alice", target="#test",
                              text="\x01ACTION waves back\x01"), WAIT, b0)
    ctx.ok(got, "alice's \"/me waves back\" reaches the bot as CTCP ACTION",
           diag="bot got:\n%r" % bot.dump(b0))
    words = ["m%03d" % i for i in range(200)]             # 999 bytes
    m0, b0 = a.mark(), bot.mark()
    a.groupchat(room, "/me " + " ".join(words) + "\nsecond line")

    def actions():
        return [irc_parse(l)[2][-1] for _, l in bot.find_all(
            irc("PRIVMSG", nick="alice", target="#test"), b0)]
    a.pump_until(lambda: any("second line" in t for t in actions()), WAIT)
    acts = actions()
    inner = [t[len("\x01ACTION "):-1] for t in acts
             if t.startswith("\x01ACTION ") and t.endswith("\x01")]
    # Each line is a message of its own (as in biboumi): the /me is the
    # first line's, the second line is an ordinary PRIVMSG.
    ctx.ok(len(acts) >= 3 and len(inner) == len(acts) - 1
           and " ".join(inner).split() == words
           and acts[-1] == "second line",
           "a 1000-byte /me and a second line reach the bot as %d CTCP ACTION "
           "lines and a PRIVMSG, in order" % (len(acts) - 1),
           diag="texts %r\nalice got:\n%s" % ([t[:30] for t in acts], a.dump(m0)))
    m0 = a.mark()
    bot.send("NOTICE #test :a notice")
    got = a.wait(groupchat(room, "bot", "a notice"), WAIT, m0)
    ctx.ok(got is not None, "the bot's NOTICE #test reaches alice as groupchat",
           diag="received:\n" + a.dump(m0))
    m0 = a.mark()
    bot.send_bytes(b"PRIVMSG #test :caf\xe9 \x80uro\r\n")    # CP1252
    got = a.wait(groupchat(room, "bot", "caf\u00e9 \u20acuro"), WAIT, m0)
    ctx.ok(got is not None, "CP1252 bytes from IRC (not UTF-8) reach alice as "
           "\"caf\u00e9 \u20acuro\"",
           diag="received:\n" + a.dump(m0))
    m0 = a.mark()
    bot.send("PRIVMSG #test :\x02bold\x02 \x0304red\x03 plain")
    got = a.wait(lambda k, el: k == "message" and bare(el.get("from")) == room.lower()
                 and resource(el.get("from")) == "bot"
                 and el.find(C + "body") is not None
                 and "plain" in (el.find(C + "body").text or ""), WAIT, m0)
    body = got.find(C + "body").text if got is not None else None
    ctx.ok(body is not None and not re.search(r"[\x00-\x08\x0b-\x1f]", body)
           and "bold" in body and "red" in body,
           "IRC formatting codes do not reach alice as control characters "
           "(got %r)" % body, diag="received:\n" + a.dump(m0))


def check_nicks(ctx):
    """The bot renames itself, then alice does (and back)."""
    a, bot = ctx.alice, ctx.bot
    room = room_jid("#test")
    m0 = a.mark()
    bot.send("NICK botty")
    gone = a.wait(lambda k, el: occupant(room, "bot", "unavailable")(k, el)
                  and "303" in muc_codes(el), WAIT, m0)
    item = muc_item(gone) if gone is not None else None
    back = a.wait(occupant(room, "botty"), WAIT, m0)
    ctx.ok(item is not None and item.get("nick") == "botty" and back is not None,
           "the bot's NICK botty: alice sees bot leave with 303 nick=botty and "
           "botty arrive", diag="received:\n" + a.dump(m0))
    m1, b1 = a.mark(), bot.mark()
    bot.send("NICK bot")
    a.pump_until(lambda: bot.find(irc("NICK", nick="botty"), b1), 3)
    a.wait(occupant(room, "bot"), WAIT, m1)

    m0, b0 = a.mark(), bot.mark()
    a.nick(room, "alice2")
    got = a.wait_irc(bot, irc("NICK", nick="alice"), WAIT, b0)
    n, _, params = irc_parse(got) if got else (None, None, [])
    me = a.wait(lambda k, el: self_presence(room, "unavailable", "303")(k, el)
                and "110" in muc_codes(el), WAIT, m0)
    item = muc_item(me) if me is not None else None
    ctx.ok(got and params and params[-1] == "alice2",
           "alice asks for nick alice2: the bot sees NICK alice2",
           diag="bot got:\n%s\ncauseway:\n%s" % (bot.dump(b0), ctx.cw_lines()))
    ctx.ok(item is not None and item.get("nick") == "alice2"
           and a.wait(self_presence(room), WAIT, m0) is not None,
           "alice gets 303 (nick alice2) and 110 for her nick change",
           diag="received:\n" + a.dump(m0))
    # Back to alice, so the rest reads simply.
    m1, b1 = a.mark(), bot.mark()
    a.nick(room, "alice")
    a.wait_irc(bot, irc("NICK", nick="alice2"), WAIT, b1)
    a.wait(lambda k, el: self_presence(room)(k, el)
           and resource(el.get("from")) == "alice", WAIT, m1)


def check_nick_errors(ctx):
    """Nicks the network refuses after registration: 433 (in use by
    someone outside the room) is a conflict, 432 (erroneous) is
    not-acceptable; alice keeps her nick.  A nick in the room is refused
    by the gateway itself (conflict)."""
    a, bot = ctx.alice, ctx.bot
    room = room_jid("#test")
    carl = IrcClient(ctx.ircd.port, "carl")
    try:
        if not carl.register():
            ctx.ok(False, "a second IRC client, carl, registers",
                   diag=carl.dump())
            return
        for want, cond, what in (("carl", "conflict", "433"),
                                 ("1bad", "not-acceptable", "432"),
                                 ("bot", "conflict", "an occupant's")):
            m0, b0 = a.mark(), bot.mark()
            a.nick(room, want)
            err = a.wait(lambda k, el: k == "presence" and
                         el.get("from") == "%s/%s" % (room, want)
                         and el.get("type") == "error", WAIT, m0)
            ctx.ok(err is not None and error_condition(err) == cond,
                   "alice asks for nick %s (%s): presence error %s from "
                   "room/%s (got %s)" % (want, what, cond, want,
                                         error_condition(err) if err is not None
                                         else "nothing"),
                   diag="received:\n%s\ncauseway:\n%s" % (a.dump(m0), ctx.cw_lines()))
        m0, b0 = a.mark(), bot.mark()
        a.groupchat(room, "still alice")
        got = a.wait_irc(bot, irc("PRIVMSG", nick="alice", target="#test",
                                  text="still alice"), WAIT, b0)
        moved = a.find(lambda k, el: k == "presence" and
                       bare(el.get("from")) == room.lower() and
                       "303" in muc_codes(el), m0)
        ctx.ok(got and moved is None, "alice keeps her nick: her next "
               "message reaches the bot from alice", diag="bot got:\n" + bot.dump(b0))
    finally:
        carl.close()


def check_kick(ctx):
    a, bot = ctx.alice, ctx.bot
    room = room_jid("#test")
    m0 = a.mark()
    bot.send("KICK #test alice :out you go")
    k = a.wait(lambda kind, el: self_presence(room, "unavailable", "307")(kind, el),
               WAIT, m0)
    ctx.ok(k is not None and "110" in muc_codes(k),
           "the bot kicks alice: alice gets unavailable self-presence with 307 "
           "and 110", diag="received:\n" + a.dump(m0))
    if k is not None:
        r = k.find("{%s}x/{%s}item/{%s}reason" % (NS_MUC_USER, NS_MUC_USER,
                                                  NS_MUC_USER))
        ctx.ok(r is not None and r.text == "out you go",
               "the kick's reason is the IRC reason", diag=xml_str(k))
    # linger = 0: the session may end with the last room; let it settle.
    a.pump(0.5)
    m0, b0 = a.mark(), bot.mark()
    t0 = time.monotonic()
    a.join(room, "alice")
    me = a.wait(self_presence(room), 15, m0)
    j = a.wait_irc(bot, irc_from_alice("JOIN", target="#test"), WAIT, b0)
    ctx.ok(me is not None and j, "alice rejoins #test after the kick "
           "(%.1f s)" % (time.monotonic() - t0),
           diag="received:\n%s\nbot got:\n%s\ncauseway:\n%s"
           % (a.dump(m0), bot.dump(b0), ctx.cw_lines()))
    if j:
        nick = irc_parse(j)[0]
        if nick != "alice":
            ctx.tap.diag("%s: after the rejoin alice is %s on IRC" % (ctx.label, nick))
        ctx.alice_nick = nick
    return me is not None and j


def check_injection(ctx):
    a, bot = ctx.alice, ctx.bot
    room = room_jid("#test")
    nick = getattr(ctx, "alice_nick", "alice")
    m0, b0 = a.mark(), bot.mark()
    # A real CR LF in the body (character references survive the XML
    # server; a literal CR would be normalised to LF by any parser).
    a.xmpp.send_raw("<message to='%s' type='groupchat' id='inj1'><body>hi&#13;"
                    "&#10;QUIT :x</body></message>" % room)
    got = a.wait_irc(bot, irc("PRIVMSG", nick=nick, target="#test",
                              text_has="QUIT :x"), WAIT, b0)
    a.pump(1.0)
    quits = bot.find_all(irc("QUIT", nick=nick), b0) + \
        bot.find_all(irc("PART", nick=nick), b0)
    ctx.ok(got and not quits, "a body \"hi\\r\\nQUIT :x\" reaches the bot as "
           "text (PRIVMSG #test :...QUIT :x), and alice does not quit",
           diag="bot got:\n%s\ncauseway:\n%s" % (bot.dump(b0), ctx.cw_lines()))
    texts = [irc_parse(l)[2][-1] for _, l in
             bot.find_all(irc("PRIVMSG", nick=nick, target="#test"), b0)]
    ctx.tap.diag("%s: the bot got PRIVMSG #test texts %r" % (ctx.label, texts))
    hi = bot.find(irc("PRIVMSG", nick=nick, target="#test", text_has="hi"), b0)
    ctx.ok(hi, "the \"hi\" part arrives too", diag="bot got:\n" + bot.dump(b0))
    # Alice's connection is still in the channel.
    b1 = bot.mark()
    bot.send("NAMES #test")
    names = a.wait_irc(bot, lambda l: cwtest.irc_numeric(l) == "353", WAIT, b1)
    in_names = names and re.search(r"(^|[ :@+~&%])" + re.escape(nick) + r"( |!|$)",
                                   irc_parse(names)[2][-1])
    ctx.ok(in_names and not bot.eof, "alice is still in #test, and the bot "
           "still connected", diag="NAMES: %s" % names)


def check_long(ctx):
    a, bot = ctx.alice, ctx.bot
    room = room_jid("#test")
    nick = getattr(ctx, "alice_nick", "alice")
    words = ["w%04d" % i for i in range(250)]          # 250 * 6 - 1 = 1499
    body = " ".join(words) + "."
    assert len(body.encode()) == 1500
    b0 = bot.mark()
    a.groupchat(room, body)
    want = "".join(body.split())

    def collected():
        hits = bot.find_all(irc("PRIVMSG", nick=nick, target="#test"), b0)
        text = "".join("".join(irc_parse(l)[2][-1].split()) for _, l in hits)
        return hits, text
    a.pump_until(lambda: len(collected()[1]) >= len(want), 15)
    hits, text = collected()
    lengths = [bot.raw_lengths[i] for i, _ in hits]
    ctx.ok(len(hits) >= 3 and text == want,
           "a 1500-byte body reaches the bot as %d PRIVMSG lines, in order, "
           "nothing lost" % len(hits),
           diag="lines %d, bytes %r; text %s" % (
               len(hits), lengths, "matches" if text == want else
               "differs: got %r...%r" % (text[:60], text[-60:])))
    ctx.ok(hits and max(lengths) <= 512, "none of those lines is over 512 "
           "bytes as the bot receives them (longest %d)" % max(lengths or [0]))


def check_modes(ctx):
    """Voice and op for alice (MODE), then alice as an operator: topic and
    a kick from XMPP; the bot comes back."""
    a, bot = ctx.alice, ctx.bot
    room = room_jid("#test")
    nick = getattr(ctx, "alice_nick", "alice")

    def my_item(role, affil):
        def pred(kind, el):
            item = muc_item(el)
            return self_presence(room)(kind, el) and item is not None and \
                item.get("role") == role and item.get("affiliation") == affil
        return pred
    m0 = a.mark()
    bot.send("MODE #test +v %s" % nick)
    v = a.wait(my_item("participant", "member"), WAIT, m0)
    ctx.ok(v is not None, "MODE +v alice: alice's self-presence (110) says "
           "participant, member", diag="received:\n" + a.dump(m0))
    m0 = a.mark()
    bot.send("MODE #test +o %s" % nick)
    o = a.wait(my_item("moderator", "admin"), WAIT, m0)
    if not ctx.ok(o is not None, "MODE +o alice: alice's self-presence (110) "
                  "says moderator, admin", diag="received:\n" + a.dump(m0)):
        return

    m0, b0 = a.mark(), bot.mark()
    a.xmpp.send_raw("<message to='%s' type='groupchat'><subject>set from "
                    "XMPP</subject></message>" % room)
    t = a.wait_irc(bot, irc("TOPIC", nick=nick, target="#test",
                            text="set from XMPP"), WAIT, b0)
    s = a.wait(subject(room, "set from XMPP"), WAIT, m0)
    ctx.ok(t and s is not None, "alice (op) sets the subject: the bot sees "
           "TOPIC #test :set from XMPP, alice gets the subject",
           diag="bot got:\n%s\nalice got:\n%s" % (bot.dump(b0), a.dump(m0)))

    m0, b0 = a.mark(), bot.mark()
    r = a.iq(room, "<query xmlns='http://jabber.org/protocol/muc#admin'><item "
             "nick='bot' role='none'><reason>your turn</reason></item></query>",
             "set")
    k = a.wait_irc(bot, irc("KICK", nick=nick, target="#test"), WAIT, b0)
    _, _, params = irc_parse(k) if k else (None, None, [])
    ctx.ok(r.type == "result" and params[1:] == ["bot", "your turn"],
           "alice kicks the bot (muc#admin role none): result, and the bot "
           "sees KICK #test bot :your turn",
           diag="iq %s: %s\nbot got:\n%s" % (r.type, r, bot.dump(b0)))
    gone = a.wait(lambda kind, el: occupant(room, "bot", "unavailable")(kind, el)
                  and "307" in muc_codes(el), WAIT, m0)
    ctx.ok(gone is not None, "alice sees the bot leave with 307",
           diag="received:\n" + a.dump(m0))
    m0 = a.mark()
    bot.join("#test")
    back = a.wait(occupant(room, "bot"), WAIT, m0)
    item = muc_item(back) if back is not None else None
    ctx.ok(item is not None and item.get("role") == "participant"
           and item.get("affiliation") == "none",
           "the bot rejoins: alice sees it as participant, affiliation none",
           diag="received:\n" + a.dump(m0))
    return True


def check_injection_more(ctx):
    """CR LF in a subject (alice is an operator now) and in a join
    password: whatever the gateway does with them, alice's connection
    sends no QUIT."""
    a, bot = ctx.alice, ctx.bot
    room = room_jid("#test")
    nick = getattr(ctx, "alice_nick", "alice")
    m0, b0 = a.mark(), bot.mark()
    a.xmpp.send_raw("<message to='%s' type='groupchat'><subject>t1&#13;&#10;"
                    "QUIT :x</subject></message>" % room)
    inj = room_jid("#inj")
    a.xmpp.send_raw("<presence to='%s/alice'><x xmlns='%s'><password>k&#13;"
                    "&#10;QUIT :y</password></x></presence>" % (inj, NS_MUC))
    a.wait(lambda k, el: presence_error(inj)(k, el) or self_presence(inj)(k, el),
           WAIT, m0)
    # A subject sent as one line waits its turn in alice's throttled
    # queue: give it the time.
    a.pump_until(lambda: bot.find(irc("TOPIC", nick=nick, target="#test"), b0)
                 or a.find(lambda k, el: k == "message" and el.get("type") ==
                           "error" and bare(el.get("from")) == room.lower(),
                           m0) is not None, WAIT)
    a.pump(1.0)
    b1 = bot.mark()
    bot.send("ISON %s" % nick)
    ison = a.wait_irc(bot, lambda l: cwtest.irc_numeric(l) == "303", WAIT, b1)
    quits = [l for _, l in bot.find_all(irc("QUIT", nick=nick), b0)]
    topics = [irc_parse(l)[2][-1] for _, l in
              bot.find_all(irc("TOPIC", nick=nick, target="#test"), b0)]
    joined = a.find(self_presence(inj), m0)
    jerr = a.find(presence_error(inj), m0)
    serr = a.find(lambda k, el: k == "message" and el.get("type") == "error"
                  and bare(el.get("from")) == room.lower(), m0)
    ctx.tap.diag("%s: subject with CR LF: TOPIC texts at the bot %r, error "
                 "%s; join with a CR LF password: %s" % (
                     ctx.label, topics, error_condition(serr) if serr is not None
                     else "none", "joined" if joined is not None else
                     "error %s" % error_condition(jerr) if jerr is not None
                     else "no answer"))
    ctx.ok(serr is not None or (len(topics) == 1 and "QUIT :x" in topics[0]),
           "a subject with CR LF is refused with an error (%s) or sent as one "
           "TOPIC line" % (error_condition(serr) if serr is not None else "-"),
           diag="TOPICs %r\nreceived:\n%s" % (topics, a.dump(m0)))
    ctx.ok(joined is not None or jerr is not None,
           "a join with CR LF in the password is answered (error or "
           "self-presence) within %d s" % WAIT,
           diag="no presence from %s; causeway:\n%s" % (
               inj, ctx.cw_lines(r"#inj|framing")))
    ctx.ok(not quits and ison and nick.lower() in ison.lower().split(":")[-1].split(),
           "CR LF in a subject and in a join password inject no QUIT: alice "
           "is still on IRC", diag="QUITs: %r\nISON: %s\nbot got:\n%s"
           % (quits, ison, bot.dump(b0)))
    if joined is not None:
        a.leave(inj, "alice")
        a.pump(0.3)


def check_leave(ctx):
    a, bot = ctx.alice, ctx.bot
    room = room_jid("#test")
    nick = getattr(ctx, "alice_nick", "alice")
    m0, b0 = a.mark(), bot.mark()
    a.leave(room, "alice")
    got = a.wait_irc(bot, lambda l: irc("PART", nick=nick, target="#test")(l)
                     or irc("QUIT", nick=nick)(l), WAIT, b0)
    ctx.ok(got, "alice leaves: the bot sees %s" % (
        irc_parse(got)[1] if got else "PART or QUIT"),
        diag="bot got:\n" + bot.dump(b0))
    me = a.wait(self_presence(room, "unavailable"), WAIT, m0)
    ctx.ok(me is not None, "alice gets her unavailable self-presence (110)",
           diag="received:\n" + a.dump(m0))
    # linger = 0: with no room left the IRC connection goes (QUIT).
    a.pump(0.5)


def check_tls(ctx):
    a = ctx.alice
    room = room_jid("#tls", SRV_NOPIN)
    m0 = a.mark()
    t0 = time.monotonic()
    a.join(room, "alice")
    err = a.wait(lambda k, el: presence_error(room)(k, el)
                 or self_presence(room)(k, el), 15, m0)
    ctx.ok(err is not None and err.get("type") == "error",
           "TLS to a self-signed server without a pin (%s): the join fails "
           "with a presence error (%s, %.1f s)"
           % (SRV_NOPIN, error_condition(err) if err is not None else "none",
              time.monotonic() - t0),
           diag="got: %s\nreceived:\n%s\ncauseway:\n%s"
           % (xml_str(err), a.dump(m0), ctx.cw_lines(r"irc|TLS|tls|certif")))
    if err is not None and err.get("type") != "error":
        a.leave(room, "alice")

    room = room_jid("#tls", SRV_PIN)
    m0, b0 = a.mark(), ctx.bot.mark()
    t0 = time.monotonic()
    a.join(room, "alice")
    me = a.wait(lambda k, el: presence_error(room)(k, el)
                or self_presence(room)(k, el), 15, m0)
    j = a.wait_irc(ctx.bot, irc_from_alice("JOIN", target="#tls"), 3, b0)
    ctx.ok(me is not None and me.get("type") != "error" and j,
           "TLS with fingerprint = the certificate's SHA-256 (%s): the join "
           "works and the bot sees alice JOIN #tls (%.1f s)"
           % (SRV_PIN, time.monotonic() - t0),
           diag="got: %s\nreceived:\n%s\nbot got:\n%s\ncauseway:\n%s"
           % (xml_str(me), a.dump(m0), ctx.bot.dump(b0),
              ctx.cw_lines(r"irc|TLS|tls|certif")))
    return me is not None and me.get("type") != "error"


def check_kickjoin(ctx, fake):
    """Kicked between JOIN and NAMES: the join fails instead of hanging."""
    a = ctx.alice
    room = room_jid("#kickjoin", SRV_FAKE)
    m0 = a.mark()
    a.join(room, "alice")
    me = a.wait(lambda k, el: presence_error(room)(k, el)
                or self_presence(room)(k, el), 15, m0)
    ctx.ok(me is not None and me.get("type") == "error",
           "kicked before the join completed: the join fails with an error",
           diag="got %s\ncauseway:\n%s" % (xml_str(me), ctx.cw_lines()))


def check_crowd(ctx, fake):
    """A NAMES reply of 10,000 nicks: the join completes, the occupants
    arrive, and causeway keeps answering."""
    a = ctx.alice
    room = room_jid("#crowd", SRV_FAKE)
    m0 = a.mark()
    t0 = time.monotonic()
    a.join(room, "alice")
    me = a.wait(lambda k, el: presence_error(room)(k, el)
                or self_presence(room)(k, el), 60, m0)
    took = time.monotonic() - t0
    n = len([1 for k, el in a.got[m0:] if k == "presence"
             and (el.get("from") or "").startswith(room + "/c")])
    # Rooms hold at most 10,000 occupants (old and alice count too).
    ctx.ok(me is not None and me.get("type") != "error" and 9990 <= n <= 10000,
           "a NAMES reply of 10,000 nicks: the join completes with the "
           "occupants up to the 10,000 cap (%.1f s, %d occupant presences)"
           % (took, n),
           diag="got %s\ncauseway:\n%s" % (xml_str(me), ctx.cw_lines()))
    r = a.iq(DOMAIN, "<ping xmlns='urn:xmpp:ping'/>")
    ctx.ok(r.type == "result", "causeway still answers after the 10,000-nick "
           "NAMES reply")
    a.leave(room, "alice")
    a.pump(0.5)


def check_fake(ctx, fake):
    """Against the scripted server: an old server-time tag becomes a
    XEP-0203 delay on a groupchat and on a PM through the room; a nick
    the network forces on alice carries 210."""
    a = ctx.alice
    room = room_jid("#hist", SRV_FAKE)
    m0 = a.mark()
    a.join(room, "alice")
    me = a.wait(lambda k, el: presence_error(room)(k, el)
                or self_presence(room)(k, el), 15, m0)
    if not ctx.ok(me is not None and me.get("type") != "error",
                  "alice joins %s on the scripted server" % room,
                  diag="got %s\nreceived:\n%s\ncauseway:\n%s"
                  % (xml_str(me), a.dump(m0), ctx.cw_lines())):
        return
    m0 = a.mark()
    fake.send_all("@time=2020-01-02T03:04:05.678Z :old!u@h PRIVMSG #hist :old news")
    fake.send_all("@time=%s :old!u@h PRIVMSG #hist :fresh news" % time.strftime(
        "%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()))
    old = a.wait(groupchat(room, "old", "old news"), WAIT, m0)
    d = old.find("{%s}delay" % NS_DELAY) if old is not None else None
    ctx.ok(d is not None and d.get("stamp") == "2020-01-02T03:04:05Z",
           "a groupchat with an old server-time tag carries <delay "
           "stamp='2020-01-02T03:04:05Z'/>", diag="got %s\nreceived:\n%s"
           % (xml_str(old), a.dump(m0)))
    fresh = a.wait(groupchat(room, "old", "fresh news"), WAIT, m0)
    ctx.ok(fresh is not None and fresh.find("{%s}delay" % NS_DELAY) is None,
           "a groupchat with a current server-time tag carries no delay",
           diag="got %s" % xml_str(fresh))

    m0 = a.mark()
    a.chat(room + "/old", "hello old")
    a.pump_until(lambda: fake.received(lambda l: "PRIVMSG old :hello old" in l), WAIT)
    fake.send_all("@time=2020-01-02T03:04:06.000Z :old!u@h PRIVMSG {nick} :old pm")
    pm = a.wait(lambda k, el: k == "message" and el.find(C + "body") is not None
                and el.find(C + "body").text == "old pm", WAIT, m0)
    d = pm.find("{%s}delay" % NS_DELAY) if pm is not None else None
    ctx.ok(pm is not None and pm.get("from") == room + "/old"
           and d is not None and d.get("stamp") == "2020-01-02T03:04:06Z",
           "a delayed PM answering one sent through the room comes from "
           "room/old with its delay", diag="got %s\nreceived:\n%s"
           % (xml_str(pm), a.dump(m0)))

    m0 = a.mark()
    fake.send_all(":{nick}!u@fake NICK :forced")
    gone = a.wait(lambda k, el: self_presence(room, "unavailable", "303")(k, el),
                  WAIT, m0)
    back = a.wait(lambda k, el: self_presence(room)(k, el)
                  and resource(el.get("from")) == "forced", WAIT, m0)
    ctx.ok(gone is not None and back is not None and "210" in muc_codes(back),
           "a nick the network forces (NICK forced, not asked): 303, then "
           "self-presence as forced with 110 and 210",
           diag="back: %s\nreceived:\n%s" % (xml_str(back), a.dump(m0)))
    m0 = a.mark()
    a.leave(room, "forced")
    a.wait(self_presence(room, "unavailable"), WAIT, m0)


NS_COMMANDS = "http://jabber.org/protocol/commands"


def run_command(user, node, fields):
    """Runs a XEP-0050 command of one form: (completed, note type, note
    text or the answer)."""
    from xml.sax.saxutils import escape, quoteattr
    r = user.iq(DOMAIN, "<command xmlns='%s' node='%s' action='execute'/>"
                % (NS_COMMANDS, node), "set")
    cmd = r.find("{%s}command" % NS_COMMANDS) if r.type == "result" else None
    if cmd is None or cmd.get("sessionid") is None:
        return False, None, "execute: %s %s" % (r.type, r)
    xs = "".join("<field var=%s><value>%s</value></field>"
                 % (quoteattr(k), escape(v)) for k, v in fields)
    r = user.iq(DOMAIN, "<command xmlns='%s' node='%s' sessionid=%s "
                "action='complete'><x xmlns='%s' type='submit'>%s</x>"
                "</command>" % (NS_COMMANDS, node,
                                quoteattr(cmd.get("sessionid")), NS_DATA, xs),
                "set")
    cmd = r.find("{%s}command" % NS_COMMANDS) if r.type == "result" else None
    note = cmd.find("{%s}note" % NS_COMMANDS) if cmd is not None else None
    return (cmd is not None and cmd.get("status") == "completed",
            note.get("type") if note is not None else None,
            note.text if note is not None else "%s %s" % (r.type, r))


def identd_query(port, data, source=SRV_FAKE):
    """Asks the identd as an IRC server would: from the server's own
    address (an answer goes only to the far end of the link)."""
    s = socket.create_connection(("127.0.0.1", port), 5,
                                 source_address=(source, 0))
    try:
        s.settimeout(5)
        s.sendall(data)
        got = b""
        while True:
            chunk = s.recv(1024)
            if not chunk:
                break
            got += chunk
        return got.decode("utf-8", "replace")
    except OSError as e:
        return "error: %s" % e
    finally:
        s.close()


def send_with_id(user, room, body, mid):
    m = user.xmpp.make_message(mto=room, mbody=body, mtype="groupchat")
    m["id"] = mid
    m.send()


def user_names(fake):
    """USER's user names the scripted server received, in order."""
    return [irc_parse(l)[2][0] for l in fake.received(lambda l: l.startswith("USER "))]


def check_fake_more(ctx, fake, identd_port):
    """Against the scripted server: the identd, CHANTYPES from ISUPPORT,
    STATUSMSG kept out of the archive, the irc-server and irc-channel
    commands, the NickServ line, and messages queued when the link drops."""
    a = ctx.alice
    room = room_jid("#drop", SRV_FAKE)
    m0 = a.mark()
    a.join(room, "alice")
    me = a.wait(lambda k, el: presence_error(room)(k, el)
                or self_presence(room)(k, el), 15, m0)
    if not ctx.ok(me is not None and me.get("type") != "error",
                  "alice joins #drop on the scripted server",
                  diag="got %s\ncauseway:\n%s" % (xml_str(me), ctx.cw_lines())):
        return
    my_nick = resource(me.get("from"))

    # The identd (RFC 1413) knows the link by its two ports.
    names = user_names(fake)
    ports = fake.open_ports()
    ident = names[-1] if names else None
    ctx.ok(ident is not None and re.fullmatch(r"cw[0-9a-f]{8}", ident)
           and ident != "alice",
           "USER's user name is the derived ident name cw + 8 hex digits "
           "(%s), not the nick or the JID" % ident, diag="USER names %r" % names)
    ans = identd_query(identd_port, b"%d, %d\r\n" % (ports[-1], fake.port)) \
        if ports else ""
    ctx.ok(ident is not None and ans == "%d , %d : USERID : UNIX : %s\r\n"
           % (ports[-1], fake.port, ident),
           "the identd answers the link's ports (%s, %d) with USERID and "
           "that name" % (ports[-1] if ports else "?", fake.port),
           diag="answer %r; open ports %r" % (ans, ports))
    ans = identd_query(identd_port, b"%d, %d\r\n" % (ports[-1], fake.port),
                       source="127.0.0.9") if ports else ""
    ctx.ok(ans.endswith(": ERROR : NO-USER\r\n"),
           "the identd tells a host that is not the link's server nothing "
           "(NO-USER for 127.0.0.9)", diag="answer %r" % ans)
    ans = identd_query(identd_port, b"%d , %d\r\n" % (ports[-1], fake.port + 1)) \
        if ports else ""
    ctx.ok(ans.endswith(": ERROR : NO-USER\r\n"),
           "the identd answers NO-USER for ports that are no link of ours",
           diag="answer %r" % ans)
    ans = identd_query(identd_port, b"hello, world\r\n")
    ctx.ok(ans == "0 , 0 : ERROR : INVALID-PORT\r\n",
           "the identd answers INVALID-PORT to garbage", diag="answer %r" % ans)

    # CHANTYPES=#!+: "+plus" is a channel on this server.
    plus = room_jid("+plus", SRV_FAKE)
    m0 = a.mark()
    a.join(plus, "alice")
    me = a.wait(lambda k, el: presence_error(plus)(k, el)
                or self_presence(plus)(k, el), 15, m0)
    ctx.ok(me is not None and me.get("type") != "error" and
           fake.received(lambda l: l == "JOIN +plus"),
           "with the server's CHANTYPES=#!+, +plus%%%s@%s is a room: JOIN +plus"
           % (SRV_FAKE, DOMAIN),
           diag="got %s\ncauseway:\n%s" % (xml_str(me), ctx.cw_lines()))
    if me is not None and me.get("type") != "error":
        a.leave(plus, resource(me.get("from")))
        a.wait(self_presence(plus, "unavailable"), WAIT, m0)

    # irc-channel: bad input, then #ops persistent from the next join.
    done, ntype, note = run_command(a, "irc-channel", [("channel", "#a b%" + SRV_FAKE)])
    ctx.ok(not done or ntype == "error",
           "irc-channel refuses '#a b%%%s' (not a channel)" % SRV_FAKE,
           diag="%s %s %s" % (done, ntype, note))
    done, ntype, note = run_command(a, "irc-channel", [
        ("channel", "#ops%" + SRV_FAKE), ("persistent", "yes"),
        ("encoding", "no-such-charset")])
    ctx.ok(ntype == "error", "irc-channel refuses an unknown charset",
           diag="%s %s %s" % (done, ntype, note))
    done, ntype, note = run_command(a, "irc-channel", [
        ("channel", "#Ops%" + SRV_FAKE), ("persistent", "yes")])
    ctx.ok(done and ntype == "info" and "next join" in (note or ""),
           "irc-channel makes #ops persistent: completed, \"from your next "
           "join\"", diag="%s %s %s" % (done, ntype, note))
    ops = room_jid("#ops", SRV_FAKE)
    m0 = a.mark()
    a.join(ops, "alice")
    me = a.wait(lambda k, el: presence_error(ops)(k, el)
                or self_presence(ops)(k, el), 15, m0)
    if ctx.ok(me is not None and me.get("type") != "error",
              "alice joins #ops", diag=xml_str(me)):
        r = a.iq(ops, "<query xmlns='%s'/>" % NS_MUC_OWNER)
        pf = None
        for f in r.findall(".//{%s}field" % NS_DATA) if r.type == "result" else []:
            if f.get("var") == "persistent":
                pf = f.findtext("{%s}value" % NS_DATA)
        ctx.ok(pf in ("1", "true"), "the owner form of #ops shows persistent "
               "set by the irc-channel command", diag="got %s" % r)
        rows0 = archive_bodies(ctx.cw)
        m0 = a.mark()
        fake.send_all(":old!u@h PRIVMSG @#ops :ops only")
        fake.send_all(":old!u@h PRIVMSG #ops :for all")
        st = a.wait(lambda k, el: k == "message" and el.get("from") == ops
                    and (el.findtext(C + "body") or "").endswith("ops only"),
                    WAIT, m0)
        pub = a.wait(groupchat(ops, "old", "for all"), WAIT, m0)
        ctx.ok(st is not None and st.findtext(C + "body") ==
               "old (to @#ops only): ops only",
               "a STATUSMSG to @#ops comes as the room's notice \"old (to "
               "@#ops only): ops only\"", diag="got %s\nreceived:\n%s"
               % (xml_str(st), a.dump(m0)))
        a.pump(1.5)
        rows = archive_bodies(ctx.cw)[len(rows0):]
        ctx.ok(pub is not None and "for all" in rows and
               not any("ops only" in b for b in rows),
               "the channel message is archived, the STATUSMSG is not",
               diag="new archive rows %r" % rows)
        done, ntype, note = run_command(a, "irc-channel", [
            ("channel", "#ops%" + SRV_FAKE), ("persistent", "no")])
        ctx.ok(not done or ntype == "error",
               "irc-channel will not turn persistence off while alice is in "
               "#ops", diag="%s %s %s" % (done, ntype, note))
        r = a.iq(ops, owner_form(persistent="0"), "set")
        m0 = a.mark()
        a.leave(ops, resource(me.get("from")))
        a.wait(self_presence(ops, "unavailable"), WAIT, m0)

    # irc-server: bad input, then a charset and a NickServ line.
    for fields, what in (
            ([("server", SRV_FAKE), ("port", "70000")], "a port of 70000"),
            ([("server", SRV_NOPIN), ("tls", "no")],
             "plaintext to a server the operator keeps on TLS"),
            ([("server", "not a host!")], "a server that is no host name"),
            ([("server", SRV_FAKE), ("nickserv", "IDENTIFY a\nQUIT")],
             "a NickServ line with a newline")):
        done, ntype, note = run_command(a, "irc-server", fields)
        ctx.ok(not done or ntype == "error", "irc-server refuses %s" % what,
               diag="%s %s %s" % (done, ntype, note))
    secret = "s3cret-" + os.urandom(3).hex()
    ctx.secrets.append(secret)
    done, ntype, note = run_command(a, "irc-server", [
        ("server", SRV_FAKE), ("encoding", "ISO-8859-15"),
        ("nickserv", "IDENTIFY alice " + secret)])
    ctx.ok(done and ntype == "info" and "next connection" in (note or ""),
           "irc-server sets a charset and a NickServ line for %s: completed, "
           "\"from your next connection\"" % SRV_FAKE,
           diag="%s %s %s" % (done, ntype, note))
    ctx.ok(not state_has(ctx.cw, secret.encode()),
           "the NickServ line is not stored in clear")

    # Messages queued when the link drops: errors with their ids.
    m0 = a.mark()
    send_with_id(a, room, "before the drop", "msg-a")
    refl = a.wait(lambda k, el: groupchat(room, my_nick, "before the drop")(k, el)
                  and el.get("id") == "msg-a", WAIT, m0)
    ctx.ok(refl is not None and fake.received(
        lambda l: l == "PRIVMSG #drop :before the drop"),
        "a message written to the server is reflected with its id",
        diag="received:\n%s" % a.dump(m0))
    m0 = a.mark()
    users0 = len(user_names(fake))
    send_with_id(a, room, "\n".join("long %d" % i for i in range(40)), "msg-b")
    send_with_id(a, room, "after the long one", "msg-c")
    a.pump_until(lambda: fake.received(lambda l: l == "PRIVMSG #drop :long 0"),
                 WAIT)
    fake.drop_all()
    errs = {}

    def got_errors():
        for k, el in a.got[m0:]:
            if k == "message" and el.get("type") == "error" and \
                    el.get("from") == room:
                errs[el.get("id")] = el
        return "msg-c" in errs
    a.pump_until(got_errors, 15)
    sent_long = len(fake.received(lambda l: l.startswith("PRIVMSG #drop :long ")))
    # Each of the 40 lines is a message of its own (msg-b's id on the
    # first): reflected once written, or an error message with its id.
    reflected = [el.get("id") for k, el in a.got[m0:] if k == "message"
                 and el.get("type") == "groupchat" and el.find(C + "body")
                 is not None and (el.find(C + "body").text or "").startswith(
                     ("long ", "after the long one"))]
    err_long = [i for i in errs if i != "msg-c"]
    ctx.ok("msg-c" in errs and "msg-c" not in reflected and sent_long < 40
           and err_long and not set(err_long) & set(reflected)
           and len(err_long) + len(reflected) == 40,
           "the link drops with lines queued (%d of 40 sent): each line not "
           "written is an error message from the room with its id (%d), the "
           "others were reflected (%d), and msg-c is an error"
           % (sent_long, len(err_long), len(reflected)),
           diag="errors %r, reflected %r\nreceived:\n%s"
           % (sorted(errs), reflected, a.dump(m0, 20)))
    # The reconnect: NickServ line after USER and before the rejoin.
    a.pump_until(lambda: len(user_names(fake)) > users0 and fake.received(
        lambda l: l == "JOIN #drop") and len(fake.received(
            lambda l: l == "JOIN #drop")) >= 2, 20)
    lines = fake.received(lambda l: l.startswith(("USER ", "JOIN #drop",
                                                  "PRIVMSG NickServ")))
    tail = lines[max(i for i, l in enumerate(lines) if l.startswith("USER ")):] \
        if any(l.startswith("USER ") for l in lines) else []
    ctx.ok(len(tail) >= 3 and tail[1] == "PRIVMSG NickServ :IDENTIFY alice "
           + secret and tail[2] == "JOIN #drop",
           "after the reconnect the NickServ line goes out after USER and "
           "before the rejoin (SASL not used)",
           diag="lines %r" % [l.replace(secret, "<secret>") for l in tail])
    names = user_names(fake)
    ctx.ok(len(names) >= 2 and names[-1] == names[0] == ident,
           "the ident name is the same on the new link", diag="%r" % names)
    m0 = a.mark()
    a.pump(1)
    fake.send_all_raw(b":old!u@h PRIVMSG #drop :price \xa4 5\r\n")
    eur = a.wait(groupchat(room, "old", "price \u20ac 5"), WAIT, m0)
    ctx.ok(eur is not None, "the user's charset for the server (ISO-8859-15) "
           "reads 0xA4 as the euro sign", diag="received:\n%s" % a.dump(m0))
    run_command(a, "irc-server", [("server", SRV_FAKE), ("encoding", "-"),
                                  ("nickserv", "-")])
    m0 = a.mark()
    a.leave(room, my_nick)
    a.wait(self_presence(room, "unavailable"), WAIT, m0)


def check_handover(ctx, fake, carol_password):
    """Two users persist #keep on the scripted server; the archive
    writer's link drops: the other one's link keeps the history."""
    a = ctx.alice
    room = room_jid("#keep", SRV_FAKE)
    carol = User(ctx.server.c2s_port, "carol@localhost", carol_password)
    joined = []
    try:
        if not ctx.ok(carol.login(), "carol logs in for #keep",
                      diag=getattr(carol, "error", None)):
            return
        carol.iq(DOMAIN, "<query xmlns='%s'><x xmlns='%s' type='submit'/>"
                 "</query>" % (NS_REGISTER, NS_DATA), "set")
        nicks = {}
        for u, nick in ((a, "alice"), (carol, "carol")):
            m0 = u.mark()
            u.join(room, nick)
            me = u.wait(lambda k, el: presence_error(room)(k, el)
                        or self_presence(room)(k, el), 15, m0)
            ok = me is not None and me.get("type") != "error"
            if ok:
                joined.append((u, resource(me.get("from"))))
                nicks[nick] = resource(me.get("from"))
                ok = u.iq(room, owner_form(persistent="1"), "set").type == "result"
            if not ctx.ok(ok, "%s joins #keep and makes it persistent (%s "
                          "first: the archive's writer)" % (nick, "alice"),
                          diag=xml_str(me)):
                return
        m0 = a.mark()
        rows0 = len(archive_bodies(ctx.cw))
        fake.drop_nick(nicks["alice"])
        a.wait(lambda k, el: k == "message" and el.get("from") == room and
               "lost" in (el.findtext(C + "body") or ""), WAIT, m0)
        fake.send_all(":old!u@h PRIVMSG #keep :while the writer is away")
        carol.wait(groupchat(room, "old", "while the writer is away"), WAIT)
        a.pump(1.5)
        rows = archive_bodies(ctx.cw)[rows0:]
        ctx.ok(rows.count("while the writer is away") == 1,
               "the writer's link drops: a line said meanwhile is archived "
               "once, through carol's link", diag="new rows %r" % rows)
        a.wait(lambda k, el: k == "message" and el.get("from") == room and
               (el.findtext(C + "body") or "").startswith("Reconnected"),
               20, m0)
        m1 = a.mark()
        fake.send_all(":old!u@h PRIVMSG #keep :both hear this")
        a.wait(groupchat(room, "old", "both hear this"), WAIT, m1)
        a.pump(1.5)
        rows = archive_bodies(ctx.cw)[rows0:]
        ctx.ok(rows.count("both hear this") == 1,
               "with both links up again a line is archived once",
               diag="new rows %r" % rows)
    finally:
        for u, nick in joined:
            u.iq(room, owner_form(persistent="0"), "set")
            m0 = u.mark()
            u.leave(room, nick)
            u.wait(self_presence(room, "unavailable"), WAIT, m0)
        carol.close()


def archive_bodies(cw):
    db = sqlite3.connect(os.path.join(cw.dir, "causeway.db"), timeout=5)
    try:
        return [r[0] for r in db.execute("SELECT body FROM archive ORDER BY id")]
    finally:
        db.close()


def state_has(cw, needle):
    db = sqlite3.connect(os.path.join(cw.dir, "causeway.db"), timeout=5)
    try:
        return any(needle in bytes(r[0]) for r in
                   db.execute("SELECT value FROM backend_state"))
    finally:
        db.close()


def check_reconnect(ctx, in_tls_room):
    """alice is in #test (plain) and maybe #tls (pinned); the IRC server
    dies: the rooms say the link is lost, the bot leaves, alice stays.
    After the restart the gateway reconnects and rejoins on its own: the
    bot is back and messages flow, without a join from alice."""
    a = ctx.alice
    room = room_jid("#test")
    m0 = a.mark()
    a.join(room, "alice")
    if a.wait(self_presence(room), 15, m0) is None:
        ctx.ok(False, "alice joins #test again before the restart",
               diag="received:\n" + a.dump(m0))
        return
    a.wait(occupant(room, "bot"), WAIT, m0)
    m0 = a.mark()
    t0 = time.monotonic()
    rc = ctx.ircd.stop()
    ctx.tap.diag("%s: inspircd stopped, exit status %s (139 is normal with "
                 "ssl_gnutls)" % (ctx.label, rc))

    def status_msg(r):
        def pred(k, el):
            b = el.find(C + "body")
            return k == "message" and el.get("from", "").lower() == r.lower() \
                and el.get("type") == "groupchat" and b is not None \
                and "was lost" in (b.text or "")
        return pred
    lost = a.wait(status_msg(room), WAIT, m0)
    why = lost.find(C + "body").text if lost is not None else None
    ctx.ok(why is not None and "reconnecting" in why and "Server shutting down"
           in why and not re.search("[\x00-\x1f\x7f-\x9f\ufffd]", why),
           "the IRC server is killed: alice gets a groupchat status from the "
           "room saying why, readably (got %r, %.1f s)"
           % (why, time.monotonic() - t0),
           diag="received:\n%s\ncauseway:\n%s" % (a.dump(m0), ctx.cw_lines()))
    left = a.wait(occupant(room, "bot", "unavailable"), WAIT, m0)
    closed = a.find(lambda k, el: self_presence(room, "unavailable")(k, el)
                    or self_presence(room, "unavailable", "332")(k, el), m0)
    ctx.ok(left is not None and closed is None,
           "the bot leaves the room; alice stays (no unavailable "
           "self-presence, no 332)", diag="received:\n" + a.dump(m0))
    if in_tls_room:
        tls_room = room_jid("#tls", SRV_PIN)
        ctx.ok(a.wait(status_msg(tls_room), 3, m0) is not None,
               "... and #tls%%%s gets the status message too" % SRV_PIN,
               diag="received:\n" + a.dump(m0))
    ctx.ircd.start()
    ctx.bot.close()
    bot = ctx.bot = start_bot(ctx, "bot", ("#test",))
    t0 = time.monotonic()
    back = a.wait(occupant(room, "bot"), 20, m0)
    ctx.ok(back is not None, "after the IRC server restarts the gateway "
           "reconnects and rejoins: alice sees the bot in #test again "
           "(%.1f s)" % (time.monotonic() - t0),
           diag="received:\n%s\ncauseway:\n%s" % (a.dump(m0), ctx.cw_lines(n=20)))
    joins = [e for k, e in a.got[m0:] if self_presence(room, None, "100")(k, e)]
    ctx.ok(not joins, "alice did not have to rejoin (no new join sequence)",
           diag="received:\n" + a.dump(m0))
    m1, b1 = a.mark(), bot.mark()
    bot.send("PRIVMSG #test :welcome back")
    got = a.wait(groupchat(room, "bot", "welcome back"), WAIT, m1)
    a.groupchat(room, "glad to be back")
    sent = a.wait_irc(bot, irc_from_alice("PRIVMSG", target="#test",
                                          text="glad to be back"), WAIT, b1)
    ctx.ok(got is not None and sent, "messages flow both ways after the "
           "reconnect", diag="alice got:\n%s\nbot got:\n%s"
           % (a.dump(m1), bot.dump(b1)))
    m1 = a.mark()
    a.leave(room, "alice")
    a.wait(self_presence(room, "unavailable"), WAIT, m1)
    if in_tls_room:
        a.leave(room_jid("#tls", SRV_PIN), "alice")
    a.pump(0.3)


def check_list(ctx):
    """The room directory: disco#items on the server's JID lists its
    channels (IRC LIST), with the user count and topic in the name."""
    t0 = time.monotonic()
    r = ctx.alice.iq("%s@%s" % (SRV, DOMAIN),
                     "<query xmlns='http://jabber.org/protocol/disco#items'/>")
    items = [(i.get("jid"), i.get("name") or "") for i in
             r.findall(".//{http://jabber.org/protocol/disco#items}item")]
    ctx.ok(r.type == "result" and any(j == room_jid("#test") and "#test" in n
                                      for j, n in items),
           "disco#items on %s@%s lists #test as %s (%.1f s, %d rooms)"
           % (SRV, DOMAIN, room_jid("#test"), time.monotonic() - t0, len(items)),
           diag="got %s: %s\ncauseway:\n%s" % (r.type, items, ctx.cw_lines()))


def check_sasl(ctx, atheme, carol_password):
    """carol registers with nick, realname and SASL credentials of a
    NickServ account: her IRC connection uses them."""
    bot = ctx.bot
    sasl_pw = "sasl-" + os.urandom(4).hex()
    ctx.secrets += [sasl_pw, "carolacct\0carolacct\0" + sasl_pw,
                    "\0carolacct\0" + sasl_pw]
    atheme.register("carolacct", sasl_pw)
    carol = User(ctx.server.c2s_port, "carol@localhost", carol_password)
    try:
        if not ctx.ok(carol.login(), "carol logs in",
                      diag=getattr(carol, "error", None)):
            return
        fields = (("FORM_TYPE", NS_REGISTER), ("nick", "carolirc"),
                  ("realname", "Carol C"), ("sasl_user", "carolacct"),
                  ("sasl_password", sasl_pw))
        form = ("<query xmlns='%s'><x xmlns='%s' type='submit'>%s</x></query>"
                % (NS_REGISTER, NS_DATA, "".join(
                    "<field var='%s'><value>%s</value></field>" % f
                    for f in fields)))
        # Per-network registration: at the server's JID (the stable
        # field names nick, realname, sasl_user, sasl_password).
        r = carol.iq("%s@%s" % (SRV, DOMAIN), form, "set")
        if not ctx.ok(r.type == "result", "carol registers at %s@%s with nick "
                      "carolirc, a realname and SASL credentials: result"
                      % (SRV, DOMAIN),
                      diag="got %s (%s): %s" % (r.type, r.error_condition, r)):
            return
        room = room_jid("#test")
        m0, b0 = carol.mark(), bot.mark()
        t0 = time.monotonic()
        carol.join(room, "carolirc")
        me = carol.wait(lambda k, el: presence_error(room)(k, el)
                        or self_presence(room)(k, el), 15, m0)
        j = carol.wait_irc(bot, irc("JOIN", target="#test"), WAIT, b0)
        ctx.ok(me is not None and me.get("type") != "error" and j and
               irc_parse(j)[0] == "carolirc",
               "carol joins #test: the bot sees JOIN from carolirc, the "
               "registration's nick (%.1f s)" % (time.monotonic() - t0),
               diag="got: %s\nbot got:\n%s\ncauseway:\n%s"
               % (xml_str(me), bot.dump(b0), ctx.cw_lines()))
        b1 = bot.mark()
        bot.send("WHOIS carolirc")
        end = carol.wait_irc(bot, lambda l: cwtest.irc_numeric(l) in ("318", "401"),
                             WAIT, b1)
        acct = bot.find(lambda l: cwtest.irc_numeric(l) == "330", b1)
        user = bot.find(lambda l: cwtest.irc_numeric(l) == "311", b1)
        ctx.ok(acct and irc_parse(acct)[2][2:3] == ["carolacct"],
               "SASL PLAIN against Atheme: WHOIS carolirc says logged in as "
               "carolacct (330)", diag="WHOIS:\n%s\ncauseway:\n%s"
               % (bot.dump(b1), ctx.cw_lines()))
        ctx.ok(user and irc_parse(user)[2][-1] == "Carol C",
               "WHOIS shows the registration's realname \"Carol C\"",
               diag="311: %s (WHOIS ended: %s)" % (user, end))
        m0, b0 = carol.mark(), bot.mark()
        carol.leave(room, "carolirc")
        carol.wait_irc(bot, lambda l: irc("PART", nick="carolirc")(l)
                       or irc("QUIT", nick="carolirc")(l), WAIT, b0)
    finally:
        carol.close()


def owner_form(**fields):
    """An owner-form submission (muc#owner) with the given fields."""
    return ("<query xmlns='%s'><x xmlns='%s' type='submit'>"
            "<field var='FORM_TYPE'><value>%s</value></field>%s</x></query>"
            % (NS_MUC_OWNER, NS_DATA, NS_ROOMCONFIG, "".join(
                "<field var='%s'><value>%s</value></field>" % kv
                for kv in fields.items())))


def mam_query(queryid, max_=None, after=None, before=None, with_=None):
    rsm = ""
    if max_ is not None or after is not None or before is not None:
        rsm = "<set xmlns='%s'>%s%s%s</set>" % (
            NS_RSM, "" if max_ is None else "<max>%d</max>" % max_,
            "" if after is None else "<after>%s</after>" % after,
            "" if before is None else "<before>%s</before>" % before)
    form = ""
    if with_ is not None:
        form = ("<x xmlns='%s' type='submit'><field var='FORM_TYPE' "
                "type='hidden'><value>%s</value></field><field var='with'>"
                "<value>%s</value></field></x>" % (NS_DATA, NS_MAM, with_))
    return "<query xmlns='%s' queryid='%s'>%s%s</query>" % (
        NS_MAM, queryid, form, rsm)


def mam_results(user, queryid, since):
    """(id, nick, body, has delay) of the MAM results for queryid."""
    out = []
    for kind, el in user.got[since:]:
        r = el.find("{%s}result" % NS_MAM)
        if kind != "message" or r is None or r.get("queryid") != queryid:
            continue
        fwd = r.find("{%s}forwarded" % NS_FORWARD)
        inner = fwd.find(C + "message") if fwd is not None else None
        body = inner.find(C + "body") if inner is not None else None
        out.append((r.get("id"), resource(inner.get("from")) if inner is not
                    None else None, body.text if body is not None else None,
                    fwd.find("{%s}delay" % NS_DELAY) is not None))
    return out


def fin_of(r):
    fin = r.find("{%s}fin" % NS_MAM)
    if fin is None:
        return None, None, None, None
    st = fin.find("{%s}set" % NS_RSM)

    def txt(tag):
        e = st.find("{%s}%s" % (NS_RSM, tag)) if st is not None else None
        return e.text if e is not None else None
    return fin.get("complete") in ("true", "1"), txt("count"), \
        txt("first"), txt("last")


def archive_rows(cw, room="#hist%" + SRV):
    """Archived messages of one room in causeway's database (every
    joined room is archived)."""
    db = sqlite3.connect(os.path.join(cw.dir, "causeway.db"), timeout=5)
    try:
        return db.execute("SELECT count(*) FROM archive a, archive_rooms r "
                          "WHERE a.room = r.id AND r.room = ?",
                          (room,)).fetchone()[0]
    finally:
        db.close()


def check_history(ctx, carol_password):
    """Bouncer mode: a persistent #hist, history on rejoin, MAM, one
    archive for two users, a per-channel charset."""
    a, bot, cw = ctx.alice, ctx.bot, ctx.cw
    room = room_jid("#hist")
    if not bot.join("#hist"):
        ctx.ok(False, "the bot joins #hist", diag=bot.dump())
        return
    bot.send("TOPIC #hist :history topic")
    bot.wait_for(irc("TOPIC", nick="bot", target="#hist"), 5)
    m0 = a.mark()
    a.join(room, "alice")
    if not ctx.ok(a.wait(subject(room, "history topic"), 15, m0) is not None,
                  "alice joins #hist", diag="received:\n%s\ncauseway:\n%s"
                  % (a.dump(m0), ctx.cw_lines())):
        return
    r = a.iq(room, "<query xmlns='%s'/>" % NS_MUC_OWNER, "get")
    fields = {f.get("var"): f for f in r.findall(
        "{%s}query/{%s}x/{%s}field" % (NS_MUC_OWNER, NS_DATA, NS_DATA))}
    ctx.ok(r.type == "result" and fields.get("persistent") is not None and
           fields["persistent"].get("type") == "boolean" and
           fields.get("encoding") is not None,
           "the room's owner form (muc#owner get) has the fields persistent "
           "(boolean) and encoding", diag=str(r))
    r = a.iq(room, owner_form(persistent="1"), "set")
    ctx.ok(r.type == "result", "alice submits persistent = 1: result",
           diag="got %s (%s): %s" % (r.type, r.error_condition, r))
    r = a.iq(room, "<query xmlns='http://jabber.org/protocol/disco#info'/>")
    ctx.ok(any(f.get("var") == NS_MAM for f in r.findall(
        "{http://jabber.org/protocol/disco#info}query/"
        "{http://jabber.org/protocol/disco#info}feature")),
        "disco#info on the persistent room advertises %s" % NS_MAM,
        diag=str(r))

    m0, b0 = a.mark(), bot.mark()
    a.leave(room, "alice")
    me = a.wait(self_presence(room, "unavailable"), WAIT, m0)
    a.close()
    time.sleep(0.5)
    parted = bot.find(lambda l: irc("PART", target="#hist")(l) or
                      irc("QUIT")(l), b0)
    ctx.ok(me is not None and not parted, "alice leaves #hist (unavailable "
           "self-presence) and goes offline; the bot sees no PART or QUIT",
           diag="bot got:\n%s\nalice got:\n%s" % (bot.dump(b0), a.dump(m0)))
    b1 = bot.mark()
    lines = ["history one", "history two", "history three"]
    for line in lines:
        bot.send("PRIVMSG #hist :%s" % line)
    bot.send("NAMES #hist")
    names = bot.wait_for(lambda l: cwtest.irc_numeric(l) == "353" and
                         "#hist" in l, WAIT, b1)
    nicks = [n.lstrip("~&@%+") for n in
             (irc_parse(names)[2][-1].split() if names else [])]
    ctx.ok(any(n.lower().startswith("alice") for n in nicks),
           "while alice is offline the bot still sees her in #hist (NAMES)",
           diag="NAMES: %s" % names)

    if not ctx.ok(a.login(), "alice comes back online",
                  diag=getattr(a, "error", None)):
        return
    m1 = a.mark()
    t0 = time.monotonic()
    a.join(room, "alice")
    subj = a.wait(subject(room, "history topic"), 15, m1)
    got = a.got[m1:]

    def index(pred):
        for i, (k, e) in enumerate(got):
            if pred(k, e):
                return i
        return None
    i_self = index(self_presence(room))
    i_hist = [index(groupchat(room, "bot", line)) for line in lines]
    i_subj = index(subject(room, "history topic"))
    ctx.ok(subj is not None and i_self is not None and None not in i_hist
           and i_self < i_hist[0] < i_hist[1] < i_hist[2] < i_subj,
           "alice rejoins: the 3 lines said while she was away come as "
           "history after her self-presence and before the subject "
           "(%.1f s)" % (time.monotonic() - t0),
           diag="received:\n%s\ncauseway:\n%s" % (a.dump(m1, 20),
                                                 ctx.cw_lines(n=20)))
    hist = [got[i][1] for i in i_hist if i is not None]
    delays = [h.find("{%s}delay" % NS_DELAY) for h in hist]
    ctx.ok(len(hist) == 3 and all(d is not None and d.get("stamp") and
                                  d.get("from", "").lower() == room.lower()
                                  for d in delays),
           "each history message carries a XEP-0203 delay from the room",
           diag="\n".join(xml_str(h) for h in hist))
    sids = [h.find("{%s}stanza-id" % NS_SID) for h in hist]
    sids = [x.get("id") if x is not None else None for x in sids]

    # XEP-0313 on the room, with XEP-0059 paging.
    m2 = a.mark()
    r = a.iq(room, mam_query("q1", max_=10), "set")
    a.pump(0.2)
    res = mam_results(a, "q1", m2)
    complete, count, first, last = fin_of(r)
    ctx.ok(r.type == "result" and [x[2] for x in res] == lines and
           all(x[1] == "bot" and x[3] for x in res) and complete and
           count == "3",
           "MAM query on the room: the 3 lines from room/bot with delays, "
           "<fin complete='true'> with RSM count 3",
           diag="iq %s: %s\nresults: %r" % (r.type, r, res))
    ctx.ok([x[0] for x in res] == sids and first == sids[0] and
           last == sids[2], "MAM result ids are the history's stanza-ids "
           "(XEP-0359), first/last in <set/>",
           diag="results %r, history %r, first %s last %s"
           % ([x[0] for x in res], sids, first, last))
    m3 = a.mark()
    r1 = a.iq(room, mam_query("q2", max_=2), "set")
    a.pump(0.2)
    page1 = mam_results(a, "q2", m3)
    c1, n1, _, last1 = fin_of(r1)
    m4 = a.mark()
    r2 = a.iq(room, mam_query("q3", max_=2, after=last1), "set")
    a.pump(0.2)
    page2 = mam_results(a, "q3", m4)
    c2, n2, _, _ = fin_of(r2)
    m5 = a.mark()
    r3 = a.iq(room, mam_query("q4", max_=1, before=""), "set")
    a.pump(0.2)
    page3 = mam_results(a, "q4", m5)
    ctx.ok([x[2] for x in page1] == lines[:2] and not c1 and n1 == "3" and
           [x[2] for x in page2] == lines[2:] and c2 and n2 == "3" and
           [x[2] for x in page3] == lines[2:],
           "RSM paging: max 2 gives 2 (incomplete), after <last/> the third "
           "(complete), an empty <before/> the newest",
           diag="pages %r %r %r; fins %r %r" % (page1, page2, page3,
                                                fin_of(r1), fin_of(r2)))
    m6 = a.mark()
    r = a.iq(room, mam_query("q5", with_=room + "/nobody"), "set")
    a.pump(0.2)
    ctx.ok(r.type == "result" and not mam_results(a, "q5", m6) and
           fin_of(r)[1] == "0", "a MAM 'with' filter for another nick "
           "finds nothing", diag=str(r))

    # A second user who persists #hist shares the one archive.
    carol = User(ctx.server.c2s_port, "carol@localhost", carol_password)
    try:
        if not ctx.ok(carol.login(), "carol logs in",
                      diag=getattr(carol, "error", None)):
            return
        reg = ("<query xmlns='%s'><x xmlns='%s' type='submit'><field var="
               "'FORM_TYPE'><value>%s</value></field></x></query>"
               % (NS_REGISTER, NS_DATA, NS_REGISTER))
        carol.iq(DOMAIN, reg, "set")
        c0 = carol.mark()
        carol.join(room, "carol")
        carol.wait(subject(room, "history topic"), 15, c0)
        r = carol.iq(room, owner_form(persistent="1"), "set")
        before = archive_rows(cw)
        a.pump(0.1)
        m7, c1_ = a.mark(), carol.mark()
        bot.send("PRIVMSG #hist :shared one")
        bot.send("PRIVMSG #hist :shared two")
        a.wait(groupchat(room, "bot", "shared two"), WAIT, m7)
        carol.wait(groupchat(room, "bot", "shared two"), WAIT, c1_)
        a.pump(1.0)     # past the archive's batch interval
        after = archive_rows(cw)
        ctx.ok(r.type == "result" and before == 3 and after == 5,
               "carol persists #hist too: two more lines add 2 archive rows, "
               "not 4 (rows before %s, after %s)" % (before, after),
               diag="carol's form: %s\ncauseway:\n%s" % (r, ctx.cw_lines()))

        # The owner form's charset, per user and channel.
        r = a.iq(room, owner_form(encoding="ISO-8859-15"), "set")
        bad = a.iq(room, owner_form(encoding="NO-SUCH-CHARSET"), "set")
        m8, c2_ = a.mark(), carol.mark()
        bot.send_bytes(b"PRIVMSG #hist :costs 5 \xa4\r\n")
        ga = a.wait(groupchat(room, "bot", "costs 5 \u20ac"), WAIT, m8)
        gc = carol.wait(groupchat(room, "bot", "costs 5 \u00a4"), WAIT, c2_)
        ctx.ok(r.type == "result" and ga is not None,
               "encoding ISO-8859-15 through the owner form: the bot's 0xA4 "
               "reaches alice as the euro sign",
               diag="form: %s\nalice got:\n%s" % (r, a.dump(m8)))
        ctx.ok(gc is not None, "... and carol, without that setting, gets "
               "the CP1252 default (currency sign)",
               diag="carol got:\n" + carol.dump(c2_))
        ctx.ok(bad.type == "error" and bad.error_condition == "not-acceptable",
               "an unknown charset is refused (not-acceptable)", diag=str(bad))
        r = a.iq(room, "<query xmlns='%s'/>" % NS_MUC_OWNER, "get")
        vals = {f.get("var"): f.findtext("{%s}value" % NS_DATA) for f in
                r.findall("{%s}query/{%s}x/{%s}field"
                          % (NS_MUC_OWNER, NS_DATA, NS_DATA))}
        ctx.ok(vals.get("persistent") in ("1", "true") and
               vals.get("encoding") == "ISO-8859-15",
               "the owner form shows alice's settings back", diag=str(r))

        # Nobody persists #hist any more: the archive stays (it is
        # everyone's who was in the room; retention decides).
        ra = a.iq(room, owner_form(persistent="0", encoding=""), "set")
        rc = carol.iq(room, owner_form(persistent="0"), "set")
        ctx.ok(ra.type == "result" and rc.type == "result" and
               archive_rows(cw) >= 5,
               "with persistent off for both, the archive of #hist stays",
               diag="rows: %s" % archive_rows(cw))
        m9, b9 = a.mark(), bot.mark()
        a.leave(room, "alice")
        carol.leave(room, "carol")
        a.wait(self_presence(room, "unavailable"), WAIT, m9)
        a.wait_irc(bot, irc_from_alice("PART", target="#hist"), WAIT, b9)
    finally:
        carol.close()
    bot.send("PART #hist")


def run_server(tap, cls):
    label = cls.name
    t_server = time.monotonic()
    server = cls(domain=DOMAIN, tap=tap)
    ircd = atheme = cw = alice = bot = fake = ctx = None
    try:
        t0 = time.monotonic()
        services = cwtest.have("atheme-services")
        ircd = InspIRCd(tap=tap, services=services)
        ircd.start()
        if services:
            atheme = Atheme(ircd, tap=tap)
            atheme.start()
        server.start()
        password = "pw-" + os.urandom(4).hex()
        carol_password = "pw-" + os.urandom(4).hex()
        server.register("alice", password)
        server.register("carol", carol_password)
        tap.ok(True, "%s: InspIRCd%s and %s up, alice and carol registered "
               "(%.1f s)" % (label, " with Atheme" if atheme else "", label,
                             time.monotonic() - t0))

        common = {"throttle_burst": 10, "throttle_rate": 100}
        fake = FakeIrcd()
        identd_port = cwtest.free_ports(1)[0]
        cw = Causeway(server, tap=tap, name="causeway-%s" % label,
                      backend="irc", options={
                          "linger": 0,
                          "identd": "127.0.0.1:%d" % identd_port},
                      sections=[
                          ("irc-server %s" % SRV,
                           dict(port=ircd.port, tls="no", **common)),
                          ("irc-server %s" % SRV_NOPIN,
                           dict(port=ircd.tls_port, tls="yes", **common)),
                          ("irc-server %s" % SRV_PIN,
                           dict(port=ircd.tls_port, tls="yes",
                                fingerprint=ircd.fingerprint, **common)),
                          ("irc-server %s" % SRV_FAKE,
                           dict(port=fake.port, tls="no", **common)),
                      ])
        cw.start()
        h = cw.wait_for(HANDSHAKE, 1, 20)
        if not tap.ok(h, "%s: causeway attached as %s (backend irc)" % (label, DOMAIN),
                      diag="causeway %s" % ("running" if cw.alive() else
                                            "exited %r" % cw.popen.poll())):
            return

        alice = User(server.c2s_port, "alice@localhost", password)
        if not tap.ok(alice.login(), "%s: alice logs in" % label,
                      diag=getattr(alice, "error", None)):
            return
        ctx = Ctx(tap, label, server, ircd, cw, alice)
        bot = ctx.bot = start_bot(ctx, "bot", ("#test", "#tls"))
        bot.send("TOPIC #test :first topic")
        if not bot.wait_for(irc("TOPIC", nick="bot", target="#test"), 5):
            raise RuntimeError("the bot could not set the topic:\n" + bot.dump())

        # alice has not registered: joining, chatting, private messages,
        # nicks, kicks, modes and the channel list need no registration
        # (registering on the gateway follows, and still works).
        if not check_join(ctx):
            tap.diag("%s: alice cannot join: the other IRC checks are left "
                     "out" % label)
            return
        check_groupchat(ctx)
        check_private(ctx)
        check_private_in_room(ctx)
        check_text(ctx)
        check_nicks(ctx)
        check_nick_errors(ctx)
        if check_kick(ctx):
            check_injection(ctx)
            check_long(ctx)
            if check_modes(ctx):
                check_injection_more(ctx)
        check_list(ctx)
        check_leave(ctx)
        check_register(ctx)
        if atheme is not None:
            check_sasl(ctx, atheme, carol_password)
        else:
            tap.skip("%s: SASL" % label, "atheme-services not installed")
        check_history(ctx, carol_password)
        check_kickjoin(ctx, fake)
        check_fake_more(ctx, fake, identd_port)
        check_handover(ctx, fake, carol_password)
        check_fake(ctx, fake)
        check_crowd(ctx, fake)
        in_tls = check_tls(ctx)
        check_reconnect(ctx, in_tls)
        cwtest.check_no_secrets(tap, label, ctx.secrets, cw)
        tap.ok(cw.alive() and cw.count(HANDSHAKE) == 1,
               "%s: causeway stayed up and attached throughout" % label,
               diag="%d handshakes; causeway %s" % (
                   cw.count(HANDSHAKE), "running" if cw.alive()
                   else "exited %r" % cw.popen.poll()))
    except Exception as e:
        cwtest.mark_failed()
        tap.bail("%s: unexpected exception: %s" % (label, e), e)
    finally:
        cwtest.stop_all(tap, label, server, t_server, fake,
                        ctx.bot if ctx is not None else None, alice, cw,
                        atheme, ircd)


def main():
    return cwtest.main_per_server('IRC tests', run_server, requires=('inspircd', 'openssl'))


if __name__ == "__main__":
    sys.exit(main())
