#!/usr/bin/python3
"""End-to-end: real-world mails nobody here wrote, delivered by LMTP into a
real Dovecot, read by causeway over IMAP and shown to an XMPP client
(Prosody, then ejabberd), read as a mail client shows them.

The mails come from Debian packages (contrib/install-deps.sh --test):
Python's email test messages (libpython3.11-testsuite) and the bounce
corpus of python3-flufl.bounce.  A missing corpus is a failure.  Each mail
is checked for what must show (its first paragraph, a forwarded mail's
headers and text, each digest message, a bounce's recipient and status)
and for MIME syntax that must not.

  CAUSEWAY_BIN=build/causeway /usr/bin/python3 \\
      tests/e2e/test_email_corpus.py [prosody] [ejabberd]
"""

import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cwtest                                   # noqa: E402
from cwtest import Causeway                     # noqa: E402
from mailenv import MailEnv                     # noqa: E402
from test_email import (ALICE, DOMAIN, HANDSHAKE, User, gw_presence,  # noqa
                        register, text)

PYEMAIL = os.environ.get("CAUSEWAY_CORPUS_PYEMAIL",
                         "/usr/lib/python3.11/test/test_email/data")
BOUNCE = os.environ.get("CAUSEWAY_CORPUS_BOUNCE",
                        "/usr/lib/python3/dist-packages/flufl/bounce/tests/"
                        "data")

# file, phrases that must show, phrases that must not
MAILS = [
    # sendmail bounce: the text part starts with a blank line
    (BOUNCE, "dsn_11.txt",
     ["The original message was received at Sat, 26 Oct 2002",
      "- <joem@example.com>: failed, status 5.1.1"],
     ["--WAA27079", "Content-Type"]),
    # a report nested in multipart/mixed
    (BOUNCE, "dsn_15.txt",
     ["Delivery to the following recipients failed.",
      "- userx@example.com: failed, status 5.1.1"],
     ["unnamed (multipart/report"]),
    # a forwarded mail
    (PYEMAIL, "msg_46.txt",
     ["-------- Forwarded message --------\nFrom: \"Dr. Sender\" "
      "<sender@example.net>", "Testing email forwarding with Groupwise"],
     ["(no text)", "Attachments:"]),
    # a digest in MIME parts
    (PYEMAIL, "msg_02.txt",
     ["Today's Topics:", "Subject: [Ppp] testing #1",
      "Subject: [Ppp] testing #5"], ["--192.168", "Content-Type:"]),
    # multipart/alternative without a boundary parameter
    (PYEMAIL, "msg_41.txt", ["Blah blah blah"], ["(no text)", "multipart"]),
]


def run_server(tap, cls):
    label = cls.name
    t_server = time.monotonic()
    env = MailEnv(tap=tap)
    env.start()
    server = cls(domain=DOMAIN, tap=tap)
    cw = user = None
    try:
        server.start()
        server.register("user", "pw-user")
        opts = {"linger": 0, "ca_file": env.cert, "timeout": 5,
                "fetch_max": "2m", "poll_interval": 2}
        sections = [("mail-domain example.test",
                     {"imap_host": "localhost", "imap_port": env.imaps,
                      "imap_security": "tls", "smtp_host": "localhost",
                      "smtp_port": env.submission,
                      "smtp_security": "starttls"})]
        cw = Causeway(server, tap=tap, name="causeway-email",
                      backend="email", options=opts, sections=sections)
        cw.start()
        # Setup is no test: it only reports when it fails.
        if not cw.wait_for(HANDSHAKE, 1, 20):
            tap.ok(False, "%s: causeway attached as %s" % (label, DOMAIN))
            return
        user = User(server.c2s_port, "user@localhost", "pw-user")
        if not user.login():
            tap.ok(False, "%s: user logs in" % label)
            return
        r = register(user, [("email", ALICE), ("imap_password", "alicepw")])
        if r.type != "result":
            tap.ok(False, "%s: registered" % label, diag=str(r))
            return
        since = user.mark()
        user.xmpp.send_presence(pto=DOMAIN)
        if user.wait(gw_presence(), 20, since) is None:
            tap.ok(False, "%s: the gateway is online" % label)
            return
        for d, name, must, must_not in MAILS:
            path = os.path.join(d, name)
            if not os.path.exists(path):
                tap.ok(False, "%s: %s reads in the chat as in a mail client"
                       % (label, name), diag="%s is not installed "
                       "(contrib/install-deps.sh --test)" % path)
                continue
            with open(path, "rb") as f:
                raw = f.read().replace(b"\r\n", b"\n").replace(b"\n",
                                                               b"\r\n")
            since = user.mark()
            env.deliver(ALICE, raw)
            el = user.wait(lambda k, e: k == "message" and must[0] in
                           (text(e, "body") or ""), 20, since)
            body = text(el, "body") or ""
            missing = [m for m in must if m not in body]
            shown = [m for m in must_not if m in body]
            tap.ok(el is not None and not missing and not shown,
                   "%s: %s reads in the chat as in a mail client"
                   % (label, name),
                   diag="missing %r, shown %r, body:\n%s"
                   % (missing, shown, body[:3000]))
        tap.ok(cw.alive(), "%s: causeway stayed up" % label)
    except Exception as e:
        cwtest.mark_failed()
        tap.bail("%s: unexpected exception: %s" % (label, e), e)
    finally:
        cwtest.stop_all(tap, label, server, t_server, user, cw, env)


def main():
    return cwtest.main_per_server("email corpus tests", run_server,
                                  requires=("dovecot", "postfix"))


if __name__ == "__main__":
    sys.exit(main())
