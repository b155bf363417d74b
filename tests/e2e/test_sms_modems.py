#!/usr/bin/python3
"""End-to-end: with smstools3 and one modem per number, a text leaves
from the sender's own SIM (issue 12, item 5).  A real smsd drives two
fake network modems (fakemodem.py), 15550001 (alice's SIM) and 15550002
(bob's), each serving the provider queue of its own name; causeway
shares smsd's spool; Prosody and two slixmpp clients play alice and bob.

Each sends texts to the same phone; every one of alice's must reach the
phone through modem 15550001 and every one of bob's through 15550002
(before, files named no queue and smsd took the first free modem, so
texts left from the other user's SIM and the answers went to them).  A
text from the phone to each SIM still reaches its owner.

  /usr/bin/python3 tests/e2e/test_sms_modems.py
"""

import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cwtest                                   # noqa: E402
from cwtest import Causeway, Prosody, Tap       # noqa: E402
from fakemodem import FakeModem, Smsd           # noqa: E402
from test_sms_smstools import (DOMAIN, HANDSHAKE, PHONE, User,  # noqa: E402
                               register_form, text_from)

ALICE_NO = "+15550001"
BOB_NO = "+15550002"
ROUNDS = 4


def main():
    tap = Tap()
    for cmd in ("prosody", "smsd"):
        if not cwtest.have(cmd):
            tap.skip("smstools with two modems", "%s is not installed" % cmd)
            return tap.finish()
    work = cwtest.make_tempdir("cwtest-smsd2-")
    m_alice, m_bob = FakeModem(), FakeModem()
    for m in (m_alice, m_bob):
        cwtest.on_exit(m.close)
    smsd = Smsd(work, m_alice.port, modem=ALICE_NO[1:],
                more_modems=[(BOB_NO[1:], m_bob.port)])
    cwtest.on_exit(smsd.stop)
    tap.watch("smsd log", smsd.log)
    server = Prosody(domain=DOMAIN, tap=tap)
    server.start()
    server.register("alice", "alicepw")
    server.register("bob", "bobpw")
    cw = Causeway(server, tap=tap, backend="sms", name="causeway-sms2",
                  options={"driver": "smstools", "spool": smsd.spool,
                           "country_code": "1",
                           "numbers": "%s alice@localhost, %s bob@localhost"
                           % (ALICE_NO, BOB_NO)})
    smsd.start()
    cw.start()
    if not tap.ok(cw.wait_for(HANDSHAKE, timeout=20),
                  "causeway with driver = smstools and two numbers is up"):
        return tap.finish()
    users = {}
    for who, no in (("alice", ALICE_NO), ("bob", BOB_NO)):
        u = User(server.c2s_port, "%s@localhost" % who, "%spw" % who)
        if not tap.ok(u.login(), "%s logs in" % who, diag=u.error):
            return tap.finish()
        r = u.iq(DOMAIN, register_form(no), itype="set")
        tap.ok(r.type == "result", "%s registers %s" % (who, no), diag=str(r))
        users[who] = u
    for i in range(ROUNDS):
        for who, u in users.items():
            u.send(PHONE + "@" + DOMAIN, "%s %d" % (who, i))

    def texts_of(m):
        return sorted(t["text"] for t in m.texts())

    want_a = sorted("alice %d" % i for i in range(ROUNDS))
    want_b = sorted("bob %d" % i for i in range(ROUNDS))
    users["alice"].pump_until(lambda: len(m_alice.texts()) + len(
        m_bob.texts()) >= 2 * ROUNDS, 60)
    users["alice"].pump(2)
    tap.ok(texts_of(m_alice) == want_a,
           "all of alice's texts left through her SIM's modem 15550001 "
           "and nothing else did", diag=repr(texts_of(m_alice)))
    tap.ok(texts_of(m_bob) == want_b,
           "all of bob's texts left through his SIM's modem 15550002 and "
           "nothing else did", diag=repr(texts_of(m_bob)))
    # Answers come back to the right user.
    m_alice.inject_mo(PHONE, "to alice's SIM")
    m_bob.inject_mo(PHONE, "to bob's SIM")
    a = users["alice"].wait_message(text_from(PHONE, "to alice's SIM"), 30)
    b = users["bob"].wait_message(text_from(PHONE, "to bob's SIM"), 30)
    tap.ok(a is not None and b is not None,
           "a text to each SIM reaches its owner")
    tap.ok(not users["alice"].wait_message(text_from(PHONE, "to bob's SIM"),
                                           0.5) and
           not users["bob"].wait_message(text_from(PHONE, "to alice's SIM"),
                                         0.5),
           "... and only its owner")
    for u in users.values():
        u.close()
    return tap.finish()


if __name__ == "__main__":
    sys.exit(main())
