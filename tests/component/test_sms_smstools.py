#!/usr/bin/env python3
"""Component test of the smstools driver's outgoing files (issue 12,
item 5): with one modem per number, a text must leave from the sender's
own SIM.  This program plays the XMPP server; causeway writes into a
spool directory of its own (no smsd: the files in outgoing/ are what
smsd would take).  Two users with two numbers each send a text; each
file must carry "Queue: Q<sender's digits>", the provider queue smsd
routes to that number's modem (smsd.conf: [queues] Q15551230001 = ...,
and the modem with queues = Q15551230001).  With queue = none (one modem
for everything) no Queue header is written, and a queue name can never
carry a line break into the file."""

import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Causeway, FakeServer, Tap  # noqa: E402

GW = "sms.localhost"
REG = "jabber:iq:register"
ALICE_NO = "+15551230001"
BOB_NO = "+15551230002"
PHONE = "+15551234567"

tap = Tap()


def register(conn, who, phone, id_):
    return conn.iq("<query xmlns='%s'><x xmlns='jabber:x:data' type='submit'>"
                   "<field var='phone'><value>%s</value></field></x></query>"
                   % (REG, phone), type_="set", frm=who, id_=id_, timeout=5)


def outgoing(spool):
    out = {}
    d = os.path.join(spool, "outgoing")
    for name in os.listdir(d):
        with open(os.path.join(d, name), "rb") as f:
            out[name] = f.read()
    return out


def headers(raw):
    head = raw.split(b"\n\n", 1)[0].decode("utf-8", "replace")
    return dict(line.split(": ", 1) for line in head.splitlines()
                if ": " in line)


def run(extra, label):
    spool = tempfile.mkdtemp(prefix="cw-smstools-")
    for sub in ("outgoing", "incoming", "sent", "failed", "report"):
        os.mkdir(os.path.join(spool, sub))
    srv = FakeServer(domain=GW)
    cw = Causeway(srv.port, domain=GW, backend="sms", extra=(
        "driver = smstools\nspool = %s\ncountry_code = 1\n"
        "numbers = %s alice@localhost, %s bob@localhost\n%s"
        % (spool, ALICE_NO, BOB_NO, extra))).start()
    conn = srv.accept()
    try:
        if not tap.check(conn is not None and conn.handshake_ok,
                         "%s: causeway connects" % label,
                         cw.log_text()[-1500:]):
            return None
        for i, (who, no) in enumerate((("alice", ALICE_NO), ("bob", BOB_NO))):
            r = register(conn, "%s@localhost/res" % who, no, "r%d" % i)
            tap.check(r is not None and r.get("type") == "result",
                      "%s: %s registers %s" % (label, who, no))
            conn.send("<presence from='%s@localhost/res' to='%s'/>" % (who, GW))
        time.sleep(0.3)
        for who in ("alice", "bob"):
            conn.send("<message type='chat' from='%s@localhost/res' "
                      "to='%s@%s' id='m-%s'><body>from %s</body></message>"
                      % (who, PHONE, GW, who, who))
        deadline = time.time() + 5
        files = {}
        while time.time() < deadline and len(files) < 2:
            files = outgoing(spool)
            time.sleep(0.1)
        return [(headers(raw), raw) for raw in files.values()]
    finally:
        cw.close()
        srv.close()


def main():
    got = run("", "two numbers")
    if got is not None:
        texts = {raw.split(b"\n\n", 1)[1].decode(): h for h, raw in got}
        tap.check(len(texts) == 2, "two numbers: two texts in outgoing/",
                  repr(got)[:500])
        ha, hb = texts.get("from alice", {}), texts.get("from bob", {})
        tap.check(ha.get("Queue") == "Q" + ALICE_NO[1:],
                  "alice's text names her number's queue (Queue: %s)"
                  % ha.get("Queue"), ha)
        tap.check(hb.get("Queue") == "Q" + BOB_NO[1:],
                  "bob's text names his number's queue (Queue: %s)"
                  % hb.get("Queue"), hb)
    got = run("queue = none\n", "queue = none")
    if got is not None:
        hs = [h for h, _ in got]
        tap.check(len(hs) == 2 and all("Queue" not in h for h in hs),
                  "queue = none: no Queue header (one modem sends all)", hs)
    return tap.done()


if __name__ == "__main__":
    sys.exit(main())
