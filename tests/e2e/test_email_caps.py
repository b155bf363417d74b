#!/usr/bin/python3
"""End-to-end: per-user caps of the email backend (issue 12, item 9).
Prosody, causeway's email backend with context_max = 3 and outbox_max =
2, fakeimap.py's IMAP and SMTP servers.

Checked:
  - anyone who mails the user creates a correspondent row and a thread
    row in the store; after mails from 6 different senders the store
    holds at most 3 of each for the user (the newest), and the newest
    correspondent's reply still threads;
  - with the SMTP server gone, replies wait in the outbox; the third
    while two wait is refused with resource-constraint and a text that
    names the limit.

  CAUSEWAY_BIN=build/causeway /usr/bin/python3 tests/e2e/test_email_caps.py
"""

import os
import sqlite3
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cwtest                                   # noqa: E402
from cwtest import RecordingClient              # noqa: E402
from fakeimap import FakeImap, FakeSmtp         # noqa: E402
from mailenv import make_cert                   # noqa: E402
from test_email_fairness import (DOMAIN, fields, form,  # noqa: E402
                                 start_causeway, text)

C = "{jabber:client}"
SENDERS = 6


def mail(i):
    return ("From: Sender %d <sender%d@else.test>\r\nTo: capper@fast.test\r\n"
            "Subject: hello %d\r\nMessage-ID: <m%d.%d@else.test>\r\n"
            "Date: %s\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\nbody %d\r\n"
            % (i, i, i, i, time.time_ns(), time.strftime(
                "%a, %d %b %Y %H:%M:%S +0000", time.gmtime()), i))


def rows(cw, jid, prefix):
    db = sqlite3.connect(os.path.join(cw.dir, "causeway.db"), timeout=5)
    try:
        return [r[0] for r in db.execute(
            "SELECT key FROM backend_state WHERE jid = ? AND "
            "substr(key, 1, ?) = ?", (jid, len(prefix), prefix))]
    finally:
        db.close()


class User(RecordingClient):
    def prepare(self, xmpp):
        self.record(xmpp, {"message": C + "message"}, self.keep)


def run_server(tap, cls):
    t0 = time.monotonic()
    certdir = cwtest.make_tempdir("cwtest-certs-")
    cert, key, trust = make_cert(certdir, "good")
    imap = FakeImap(cert, key)
    smtp = FakeSmtp(cert, key)
    imap.start()
    smtp.start()
    server = cls(domain=DOMAIN, tap=tap)
    cw = None
    try:
        server.start()
        server.register("capper", "pw-capper")
        cw = start_causeway(tap, server, trust, {
            "context_max": 3, "outbox_max": 2, "smtp_retry": 60})
        if cw is None:
            return
        u = User(server.c2s_port, "capper@localhost", "pw-capper")
        if not tap.ok(u.login(), "capper logs in"):
            return
        r = u.iq(DOMAIN, form(fields("capper@fast.test", imap.port,
                                     smtp.port)), "set", timeout=30)
        if not tap.ok(r.type == "result", "capper registers",
                      diag=text(r)):
            return
        u.xmpp.send_presence()
        u.xmpp.send_presence(pto=DOMAIN)
        tap.ok(u.pump_until(lambda: cw.count(
            r"capper@localhost: INBOX open"), 20), "the mailbox is open")
        u.pump(0.5)
        for i in range(SENDERS):
            imap.add_mail(mail(i))
            u.pump(0.3)

        def got(i):
            return u.find(lambda k, el: "sender%d" % i in (el.get("from")
                                                            or ""))
        u.pump_until(lambda: all(got(i) is not None for i in
                                 range(SENDERS)), 20)
        tap.ok(all(got(i) is not None for i in range(SENDERS)),
               "mails from %d different senders arrive" % SENDERS,
               diag=[(k, el.get("from"), el.get("type")) for k, el in u.got])
        corr = rows(cw, "capper@localhost", "corr/")
        thr = rows(cw, "capper@localhost", "thread/")
        tap.ok(len(corr) <= 3 and len(thr) <= 3,
               "the store keeps at most 3 correspondents and 3 threads "
               "for the user (%d, %d)" % (len(corr), len(thr)),
               diag=(corr, thr))
        tap.ok("corr/sender%d@else.test" % (SENDERS - 1) in corr,
               "... the newest among them", diag=corr)

        # The outbox: SMTP gone, replies wait; the third is refused.
        smtp.stop()
        since = u.mark()
        to = "sender%d\\40else.test@%s" % (SENDERS - 1, DOMAIN)
        for i in range(3):
            msg = u.xmpp.make_message(mto=to, mbody="reply %d" % i,
                                      mtype="chat")
            msg["id"] = "out%d" % i
            msg.send()
            u.pump(0.5)
        err = u.wait(lambda k, el: el.get("type") == "error" and
                     el.get("id") == "out2", 10, since)
        cond = err.find(C + "error") if err is not None else None
        names = [c.tag.split("}")[1] for c in cond] if cond is not None \
            else []
        txt = err.find(C + "error/{urn:ietf:params:xml:ns:xmpp-stanzas}"
                       "text") if err is not None else None
        tap.ok("resource-constraint" in names and txt is not None and
               "2" in (txt.text or ""),
               "with 2 mails waiting, the 3rd is refused: "
               "resource-constraint naming the limit (%s)"
               % (txt.text if txt is not None else None), diag=names)
        tap.ok(not u.find(lambda k, el: el.get("type") == "error" and
                          el.get("id") in ("out0", "out1"), since),
               "... while the first two wait, unrefused")
        u.close()
    except Exception as e:
        cwtest.mark_failed()
        tap.bail("%s: unexpected exception: %s" % (cls.name, e), e)
    finally:
        imap.stop()
        smtp.stop()
        cwtest.stop_all(tap, cls.name, server, t0, cw)


def main():
    return cwtest.main_per_server("email caps", run_server,
                                  requires=("prosody",))


if __name__ == "__main__":
    sys.exit(main())
