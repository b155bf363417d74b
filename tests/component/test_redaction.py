#!/usr/bin/env python3
"""Component test: no secret a user types reaches causeway's log, even at
log_level = debug (issue 12, item 8).  This program plays the XMPP server
and sends, as users would, a registration with data-form passwords
(XEP-0077), a legacy registration with <password/>, the per-server
settings command with a NickServ password (XEP-0050), a message to
NickServ and a room message starting with /msg NickServ; then it greps
causeway's log for every secret it used, and checks that the stanzas
themselves were logged (so the check is not passing on an empty log)."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Causeway, FakeServer, Tap  # noqa: E402

GW = "irc.localhost"
REG = "jabber:iq:register"
DATA = "jabber:x:data"
CMDS = "http://jabber.org/protocol/commands"

SECRETS = {
    "sasl": "Sasl-Secret-4711",
    "server": "Server-Pass-0815",
    "legacy": "Legacy-Pw-2342",
    "nickserv_field": "NickServ-Field-9999",
    "nickserv_msg": "NickServ-Msg-1234",
    "nickserv_room": "NickServ-Room-5678",
    "scoped": "Scoped-Pw-3141",
}

tap = Tap()


def form(fields, kind="submit"):
    return ("<x xmlns='%s' type='%s'>%s</x>" % (DATA, kind, "".join(
        "<field var='%s'%s><value>%s</value></field>"
        % (k, " type='%s'" % t if t else "", v) for k, v, t in fields)))


def main():
    srv = FakeServer(domain=GW)
    cw = Causeway(srv.port, domain=GW).start()
    conn = srv.accept()
    try:
        if not tap.check(conn is not None and conn.handshake_ok,
                         "causeway connects"):
            return tap.done()
        # XEP-0077 with a data form, on the gateway and on a server.
        conn.iq("<query xmlns='%s'>%s</query>" % (REG, form([
            ("FORM_TYPE", REG, "hidden"), ("nick", "alice", None),
            ("sasl_user", "alice", None),
            ("sasl_password", SECRETS["sasl"], None),
            ("server_password", SECRETS["server"], "text-private")])),
            "set", id_="r1")
        conn.iq("<query xmlns='%s'>%s</query>" % (REG, form([
            ("FORM_TYPE", REG, "hidden"),
            ("irc.example.org/sasl_password", SECRETS["scoped"], None)])),
            "set", to="irc.example.org@" + GW, id_="r2")
        # Legacy XEP-0077 fields.
        conn.iq("<query xmlns='%s'><username>alice</username><password>%s"
                "</password></query>" % (REG, SECRETS["legacy"]), "set",
                id_="r3")
        # The per-server command with a NickServ password.
        conn.iq("<command xmlns='%s' node='irc-server' action='execute'>%s"
                "</command>" % (CMDS, form([
                    ("server", "irc.example.org", None),
                    ("nickserv", SECRETS["nickserv_field"], None)])),
                "set", id_="c1")
        # A message to NickServ, and /msg NickServ typed in a room.
        conn.send("<message type='chat' from='alice@localhost/res' "
                  "to='NickServ%%irc.example.org@%s'><body>IDENTIFY %s"
                  "</body></message>" % (GW, SECRETS["nickserv_msg"]))
        conn.send("<message type='groupchat' from='alice@localhost/res' "
                  "to='#room%%irc.example.org@%s'><body>/msg NickServ "
                  "identify %s</body></message>" % (GW, SECRETS["nickserv_room"]))
        # Something after them, to know they were all read.
        conn.iq("<ping xmlns='urn:xmpp:ping'/>", "get", id_="last")
        time.sleep(0.5)
        log = cw.log_text()
        tap.check("recv <iq" in log and "[redacted]" in log,
                  "the stanzas were logged at debug, with [redacted] in "
                  "place of secrets", log[-1500:])
        for what, secret in SECRETS.items():
            tap.check(secret not in log,
                      "the %s secret is not in the debug log" % what,
                      [line for line in log.splitlines() if secret in line][:3])
        tap.check("IDENTIFY" not in log,
                  "nor is the NickServ line around it")
    finally:
        cw.close()
        srv.close()
    return tap.done()


if __name__ == "__main__":
    sys.exit(main())
