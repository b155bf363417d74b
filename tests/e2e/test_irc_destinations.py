#!/usr/bin/python3
"""End-to-end: the destination policy on IRC servers users type, and the
nick of a persistent room rejoined after a restart; through a real XMPP
server (Prosody, ejabberd) and scripted IRC servers that record every
connection (AccessIrcd on 127.0.0.4, named by the operator; a recorder
on 127.0.0.1 that takes any connection a user's host might bring).

Causeway "default" keeps the default policy and names one server,
[irc-server 127.0.0.4]:

  - alice joins #named%127.0.0.4 as Caro: the operator's server is
    trusted without an allow entry (joined, AccessIrcd sees NICK Caro and
    the JOIN);
  - bob, with the recorder's port set for 127.0.0.1 (irc-server command),
    joins #x%127.0.0.1, then #x%10.0.0.1, #x%169.254.169.254 and, with
    port 2222 set, #x%203.0.113.7: each join fails with the one text
    (remote-server-not-found), and nothing connects (the recorder sees
    nothing; causeway's debug log has no "connecting to" that address);
    a private message to bot%10.0.0.2 and the channel list of 10.0.0.3@gw
    fail with the same text;
  - carol sets another port for the named 127.0.0.4: that port is her
    destination, not the operator's, and is refused the same way
    (AccessIrcd sees no new connection);
  - restart: alice keeps #named persistent; causeway stops and starts
    again, rejoins #named on its own, and AccessIrcd sees NICK Caro (the
    nick she had there), not her JID's local part; she renames herself
    Cara there, and after the next restart AccessIrcd sees NICK Cara.

Causeway "allowed" has destinations_allow = 127.0.0.0/8 and names no
server: dave's join of #x%127.0.0.1 on the recorder's port connects there
(the recorder sees the TLS handshake), and the join fails with a TLS
error, not the policy's text.

  /usr/bin/python3 tests/e2e/test_irc_destinations.py [prosody|ejabberd]
Output is TAP.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cwtest                                   # noqa: E402
from cwtest import Causeway                     # noqa: E402
from test_irc import (C, DOMAIN, HANDSHAKE, NS_STANZAS, WAIT,  # noqa: E402
                      FakeIrcd, User, error_condition, nick_jid, owner_form,
                      room_jid, run_command, self_presence)
from test_irc_access import AccessIrcd, presence_error_from  # noqa: E402

NAMED = "127.0.0.4"                # AccessIrcd's address (SRV_FAKE)
REFUSED = ("the gateway does not connect to this server (not allowed by "
           "the gateway's destination policy, or not found)")
USERS = ("alice", "bob", "carol", "dave")
NS_ITEMS = "http://jabber.org/protocol/disco#items"


class Recorder(FakeIrcd):
    """test_irc's scripted server bound to 127.0.0.1, with a script of its
    own: it keeps the first bytes of each connection and hangs up
    (causeway's TLS handshake then fails at once).  conns counts the
    connections accepted."""

    def __init__(self):
        self.firsts = []
        super().__init__("127.0.0.1")

    def _serve(self, conn):
        conn.settimeout(2)
        try:
            first = conn.recv(64)
        except OSError:
            first = b""
        with self.lock:
            self.firsts.append(first)
        conn.close()

    def count(self):
        with self.lock:
            return len(self.conns)


def error_text(el):
    return el.findtext("%serror/{%s}text" % (C, NS_STANZAS)) if el is not None \
        else None


def stanza_error_text(r):
    return r.find("%serror/{%s}text" % (C, NS_STANZAS)).text \
        if r.find("%serror/{%s}text" % (C, NS_STANZAS)) is not None else None


class Ctx:
    def __init__(self, tap, label, server, passwords):
        self.tap, self.label, self.server = tap, label, server
        self.passwords = passwords
        self.clients = []

    def ok(self, cond, desc, diag=None):
        return self.tap.ok(cond, "%s: %s" % (self.label, desc), diag=diag)

    def user(self, name):
        u = User(self.server.c2s_port, "%s@localhost" % name,
                 self.passwords[name])
        self.clients.append(u)
        if not self.ok(u.login(), "%s logs in" % name,
                       diag=getattr(u, "error", None)):
            return None
        return u


def join(user, room, nick, timeout=WAIT):
    m = user.mark()
    user.join(room, nick)
    return user.wait(lambda k, el: self_presence(room)(k, el)
                     or presence_error_from(room)(k, el), timeout, m)


def no_connect_line(cw, addr):
    return cw.count(r"connecting to %s$" % addr.replace(".", r"\.")) == 0


def check_refused(ctx, cw, bob, rec, fake):
    done, ntype, note = run_command(bob, "irc-server", [
        ("server", "127.0.0.1"), ("port", str(rec.port))])
    ctx.ok(done, "bob sets port %d for 127.0.0.1 (irc-server)" % rec.port,
           diag="%s %s %s" % (done, ntype, note))
    done, ntype, note = run_command(bob, "irc-server", [
        ("server", "203.0.113.7"), ("port", "2222")])
    ctx.ok(done, "bob sets port 2222 for 203.0.113.7", diag=note)
    f0 = fake.mark()
    for host, what in (("127.0.0.1", "loopback (the recorder's port)"),
                       ("10.0.0.1", "RFC 1918"),
                       ("169.254.169.254", "link-local (cloud metadata)"),
                       ("203.0.113.7", "a public address on port 2222")):
        room = room_jid("#x", host)
        r0 = rec.count()
        el = join(bob, room, "Bob")
        ok = el is not None and el.get("type") == "error"
        ctx.ok(ok and error_text(el) == REFUSED and
               error_condition(el) == "remote-server-not-found",
               "%s: %s is refused with the one text" % (host, what),
               diag="got %s" % (cwtest_xml(el)))
        bob.pump(0.3)
        ctx.ok(rec.count() == r0 and no_connect_line(cw, host),
               "%s: no connection made (recorder: %d new; causeway's log: "
               "no \"connecting to %s\")" % (host, rec.count() - r0, host))
    # A contact and a scope on a refused server: the same text.  (An
    # error message goes to the resource the gateway knows online: bob
    # tells it he is.)
    bob.xmpp.send_presence(pto=DOMAIN)
    bob.pump(0.5)
    m = bob.mark()
    bob.chat(nick_jid("bot", "10.0.0.2"), "hello?")
    el = bob.wait(lambda k, e: k == "message" and e.get("type") == "error",
                  WAIT, m)
    ctx.ok(el is not None and error_text(el) == REFUSED,
           "a message to bot%10.0.0.2 fails with the one text",
           diag=cwtest_xml(el))
    r = bob.iq("10.0.0.3@%s" % DOMAIN, "<query xmlns='%s'/>" % NS_ITEMS)
    ctx.ok(r.type == "error" and stanza_error_text(r) == REFUSED,
           "the channel list of 10.0.0.3@gw fails with the one text",
           diag=str(r))
    ctx.ok(no_connect_line(cw, "10.0.0.2") and
           no_connect_line(cw, "10.0.0.3") and fake.conns_since(f0) == 0,
           "nothing connected for them (and AccessIrcd saw nothing of bob)")


def check_named_other_port(ctx, carol, fake):
    done, ntype, note = run_command(carol, "irc-server", [
        ("server", NAMED), ("port", "6697")])
    ctx.ok(done, "carol sets port 6697 for the named %s" % NAMED, diag=note)
    f0 = fake.mark()
    el = join(carol, room_jid("#named", NAMED), "Carol")
    ctx.ok(el is not None and el.get("type") == "error" and
           error_text(el) == REFUSED,
           "the named server on a port the user chose goes through the "
           "policy: refused (loopback) with the one text",
           diag=cwtest_xml(el))
    ctx.ok(fake.conns_since(f0) == 0, "AccessIrcd saw no connection")


def restart(ctx, cw, fake, nick, n):
    """Stops and starts causeway (the n-th start); True when IRC then
    sees #named rejoined under nick, and not as alice."""
    rc, took = cw.terminate(10)
    ctx.ok(rc == 0, "causeway stops (status %r, %.1f s)" % (rc, took))
    f0 = fake.mark()
    cw.start()
    ctx.ok(cw.wait_for(HANDSHAKE, n, 20), "causeway starts again")
    got = cwtest.wait_until(
        lambda: any(l.startswith("JOIN #named") for l in fake.since(f0)),
        15)
    lines = fake.since(f0)
    nicks = [l for l in lines if l.startswith("NICK ")]
    return ctx.ok(got and nicks[:1] == ["NICK %s" % nick] and
                  "NICK alice" not in nicks,
                  "after the restart causeway rejoins #named as %s, the "
                  "nick alice last had there (not her JID's local part)"
                  % nick, diag="lines %r" % lines[:12])


def check_restart(ctx, cw, alice, fake):
    room = room_jid("#named", NAMED)
    r = alice.iq(room, owner_form(persistent="1"), "set")
    ctx.ok(r.type == "result", "alice keeps #named persistent", diag=str(r))
    if not restart(ctx, cw, fake, "Caro", 2):
        return
    # Her client rejoins after the restart (as clients do); a nick
    # change in the room is then the one kept.
    el = join(alice, room, "Caro")
    ctx.ok(el is not None and el.get("type") is None,
           "alice's client rejoins #named", diag=cwtest_xml(el))
    f0 = fake.mark()
    alice.nick(room, "Cara")
    ctx.ok(alice.pump_until(lambda: "NICK Cara" in fake.since(f0), WAIT),
           "alice renames herself Cara in #named (one NICK on IRC)",
           diag="lines %r" % fake.since(f0))
    alice.pump(0.5)
    restart(ctx, cw, fake, "Cara", 3)


def cwtest_xml(el):
    from xml.etree import ElementTree as ET
    return "<none>" if el is None else ET.tostring(el, encoding="unicode")


def run_server(tap, cls):
    label = cls.name
    t_server = time.monotonic()
    server = cls(domain=DOMAIN, tap=tap)
    cw = cw2 = fake = rec = ctx = None
    try:
        server.start()
        passwords = {u: "pw-" + os.urandom(4).hex() for u in USERS}
        for u, pw in passwords.items():
            server.register(u, pw)
        fake = AccessIrcd()
        rec = Recorder()
        cw = Causeway(server, tap=tap, name="causeway-dest-%s" % label,
                      backend="irc", options={"linger": 0},
                      sections=[("irc-server %s" % NAMED,
                                 dict(port=fake.port, tls="no",
                                      throttle_burst=100, throttle_rate=1))])
        cw.start()
        if not tap.ok(cw.wait_for(HANDSHAKE, 1, 20),
                      "%s: causeway (default policy) attached" % label):
            return
        ctx = Ctx(tap, label, server, passwords)

        alice = ctx.user("alice")
        if alice:
            f0 = fake.mark()
            el = join(alice, room_jid("#named", NAMED), "Caro")
            lines = fake.since(f0)
            ctx.ok(el is not None and el.get("type") is None and
                   "NICK Caro" in lines and "JOIN #named" in lines,
                   "the operator's [irc-server %s] is trusted without an "
                   "allow entry: alice joins #named as Caro" % NAMED,
                   diag="%s; lines %r" % (cwtest_xml(el), lines[:10]))
        bob = ctx.user("bob")
        if bob:
            check_refused(ctx, cw, bob, rec, fake)
        carol = ctx.user("carol")
        if carol:
            check_named_other_port(ctx, carol, fake)
        if alice:
            check_restart(ctx, cw, alice, fake)

        # The same component, now with loopback allowed.
        cw.stop()
        cw2 = Causeway(server, tap=tap, name="causeway-dest2-%s" % label,
                       backend="irc", options={"linger": 0},
                       general={"destinations_allow": "127.0.0.0/8"})
        cw2.start()
        if tap.ok(cw2.wait_for(HANDSHAKE, 1, 20),
                  "%s: causeway (destinations_allow = 127.0.0.0/8, no "
                  "[irc-server]) attached" % label):
            dave = ctx.user("dave")
            if dave:
                check_allowed(ctx, dave, rec)
    except Exception as e:
        cwtest.mark_failed()
        tap.bail("%s: unexpected exception: %s" % (label, e), e)
    finally:
        cwtest.stop_all(tap, label, server, t_server, fake, rec,
                        *(ctx.clients if ctx else []), cw, cw2)


def check_allowed(ctx, dave, rec):
    done, ntype, note = run_command(dave, "irc-server", [
        ("server", "127.0.0.1"), ("port", str(rec.port))])
    ctx.ok(done, "dave sets port %d for 127.0.0.1" % rec.port, diag=note)
    r0 = rec.count()
    room = room_jid("#x", "127.0.0.1")
    el = join(dave, room, "Dave", 20)
    dave.pump_until(lambda: len(rec.firsts) > r0, 2)
    with rec.lock:
        new = rec.firsts[r0:]
    ctx.ok(len(new) == 1 and new[0][:1] == b"\x16",
           "allowed by destinations_allow: the connection goes to "
           "127.0.0.1:%d (the recorder saw the TLS handshake)" % rec.port,
           diag="recorder: %r" % new)
    ctx.ok(el is not None and el.get("type") == "error" and
           error_text(el) not in (None, REFUSED),
           "the join then fails on the TLS handshake, not on the policy",
           diag=cwtest_xml(el))


def main():
    return cwtest.main_per_server("IRC destination policy", run_server,
                                  requires=())


if __name__ == "__main__":
    sys.exit(main())
