#!/usr/bin/env python3
"""Component tests of open access with the IRC backend (the test plays
the XMPP server, and a few lines of Python play an IRC server on
127.0.0.1 that counts connections):

  - by default an allowed JID that never registered joins a channel
    (the core creates the user then) and is not shown as registered;
    <remove/> still deletes its row;
  - a JID outside allow gets forbidden for a join and causes no IRC
    connection;
  - with require_registration = yes the same join, a private message, a
    channel list and a user command get registration-required, with no
    IRC connection;
  - --check-config refuses require_registration = no for a backend that
    needs an account first (echo, like mail and SMS)."""

import os
import socket
import sqlite3
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (NS_COMPONENT, Causeway, FakeServer, Tap,  # noqa: E402
                     error_condition, q, run_causeway)

GW = "irc.localhost"
REG = "jabber:iq:register"
MUC = "http://jabber.org/protocol/muc"
CMD = "http://jabber.org/protocol/commands"
ITEMS = "http://jabber.org/protocol/disco#items"

tap = Tap()


class TinyIrcd:
    """Counts connections; registers anyone and answers JOIN with the
    JOIN and an end of NAMES."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.conns = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns += 1
            threading.Thread(target=self._serve, args=(c,),
                             daemon=True).start()

    def _serve(self, c):
        nick = "*"
        answers = {
            "USER": lambda w: [":t 001 %s :hi" % nick],
            "JOIN": lambda w: [":%s!u@t JOIN %s" % (nick, w[1]),
                               ":t 366 %s %s :end" % (nick, w[1])],
        }
        try:
            for raw in c.makefile("rb"):
                words = raw.decode("utf-8", "replace").split()
                if words[:1] == ["NICK"] and len(words) > 1:
                    nick = words[1].lstrip(":")
                elif words and words[0] in answers and len(words) > 1:
                    c.sendall("".join(l + "\r\n" for l in
                                      answers[words[0]](words)).encode())
        except OSError:
            pass
        c.close()

    def close(self):
        self.sock.close()


def join(conn, who, room, nick, id_):
    conn.send("<presence from='%s' to='%s@%s/%s' id='%s'><x xmlns='%s'/>"
              "</presence>" % (who, room, GW, nick, id_, MUC))
    return conn.next_stanza(5, lambda s: s.get("id") == id_)


def users(cw):
    db = sqlite3.connect(os.path.join(cw.tmp, "causeway.db"))
    try:
        return [r[0] for r in db.execute("SELECT jid FROM users")]
    finally:
        db.close()


def gateway(ircd, key, check):
    """Runs check(conn, cw, ircd) against a causeway whose component section
    has key (a line) and reaches ircd as 127.0.0.1."""
    srv = FakeServer(domain=GW)
    cw = Causeway(srv.port, domain=GW, extra=(
        "linger = 0\n%s\n\n[irc-server 127.0.0.1]\nport = %d\n"
        "tls = no\n" % (key, ircd.port))).start()
    conn = srv.accept()
    try:
        check(conn, cw, ircd)
    finally:
        cw.close()
        srv.close()


def open_gateway(conn, cw, ircd):
    room = "#c%127.0.0.1"
    st = join(conn, "alice@localhost/a", room, "Al", "j1")
    tap.check(st is not None and st.get("type") != "error"
              and st.get("from") == "%s@%s/Al" % (room, GW),
              "an allowed JID that never registered joins a channel "
              "(self-presence from room/Al)", st)
    tap.check(users(cw) == ["alice@localhost"],
              "... and the core created its user row then", users(cw))
    res = conn.iq("<query xmlns='%s'/>" % REG, frm="alice@localhost/a",
                  id_="rg")
    tap.check(res is not None and res.get("type") == "result"
              and res.find("%s/%s" % (q(REG, "query"),
                                      q(REG, "registered"))) is None,
              "the registration form does not call it registered", res)
    n = ircd.conns
    st = join(conn, "eve@elsewhere.example/e", room, "Eve", "j2")
    tap.check(error_condition(st) == ("auth", "forbidden"),
              "a JID outside allow joining: forbidden", st)
    tap.check(ircd.conns == n and "eve@elsewhere.example" not in
              users(cw), "... with no IRC connection and no user row")
    res = conn.iq("<query xmlns='%s'><remove/></query>" % REG,
                  type_="set", frm="alice@localhost/a", id_="rm")
    tap.check(res is not None and res.get("type") == "result"
              and users(cw) == [],
              "<remove/> from the first-use user: result, row deleted",
              res)
    tap.check(cw.alive(), "causeway is still running")


def closed_gateway(conn, cw, ircd):
    n = ircd.conns
    who = "bob@localhost/b"
    conds = {}
    st = join(conn, who, "#c%127.0.0.1", "Bob", "k1")
    conds["join"] = error_condition(st)
    conn.send("<message from='%s' to='x%%127.0.0.1@%s' id='k2' "
              "type='chat'><body>hi</body></message>" % (who, GW))
    conds["message"] = error_condition(conn.next_stanza(
        5, lambda s: s.get("id") == "k2"))
    conds["list"] = error_condition(conn.iq(
        "<query xmlns='%s'/>" % ITEMS, to="127.0.0.1@" + GW, frm=who,
        id_="k3"))
    conds["command"] = error_condition(conn.iq(
        "<command xmlns='%s' node='settings'/>" % CMD, type_="set",
        frm=who, id_="k4"))
    tap.check(all(c is not None and c[1] == "registration-required"
                  for c in conds.values()),
              "require_registration = yes: a join, a private message, "
              "a channel list and a command get registration-required",
              conds)
    tap.check(ircd.conns == n and users(cw) == [],
              "... with no IRC connection and no user row")


def config_checks():
    with tempfile.TemporaryDirectory(prefix="cw-comp-") as d:
        config_checks_in(d)


def config_checks_in(d):
    out = {}
    for backend, value in (("echo", "no"), ("irc", "yes"), ("irc", "no")):
        cfg = os.path.join(d, "%s-%s.conf" % (backend, value))
        with open(cfg, "w") as f:
            f.write("[causeway]\ndatabase = %s/db\nkey_file = %s/key\n\n"
                    "[component x.localhost]\nbackend = %s\nsecret = s\n"
                    "require_registration = %s\n" % (d, d, backend, value))
        out[(backend, value)] = run_causeway(["-c", cfg, "--check-config"])
    rc, o, e = out[("echo", "no")]
    tap.check(rc != 0 and "cannot be no" in o + e,
              "--check-config: require_registration = no refused for a "
              "backend that needs an account (echo)", o + e)
    tap.check(out[("irc", "yes")][0] == 0 and out[("irc", "no")][0] == 0,
              "--check-config: require_registration = yes and no accepted "
              "for IRC", out)


def main():
    ircd = TinyIrcd()
    try:
        gateway(ircd, "allow = localhost", open_gateway)
        gateway(ircd, "require_registration = yes", closed_gateway)
        config_checks()
    finally:
        ircd.close()
    return tap.done()


if __name__ == "__main__":
    sys.exit(main())
