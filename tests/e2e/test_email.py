#!/usr/bin/python3
"""End-to-end: the email backend against a real Dovecot (IMAP with
STARTTLS and implicit TLS on a self-signed certificate trusted through
ca_file, LMTP for delivery), a private Postfix (submission with STARTTLS
and AUTH), an XMPP server (Prosody, then ejabberd) and a slixmpp client,
plus fakeimap.py, an IMAP server that misbehaves on demand.

The main flow runs once per XMPP server: registration with only address
and password through a [mail-domain] preset, and with every field given;
a mail delivered by LMTP arrives as a chat message (latency printed) with
subject, nick (XEP-0172), thread and delay; ISO-8859-1 quoted-printable,
base64 UTF-8, HTML-only, attachments, a 50 MB mail, 1,000 parts nested
100 deep, no From, a 1 MB header line; a reply goes out with Re:,
In-Reply-To and References (read back from the correspondent's mailbox
over IMAP) and a XEP-0184 receipt; five replies in a row each reach the
mailbox within a few seconds (libesmtp's STARTTLS stall); CR/LF
injection in subject and body adds no header; a 550 at RCPT comes back
as an error message; the SMTP server down, then up: the reply is
delivered later; restarts of causeway, of Dovecot and of the XMPP server
deliver nothing twice and skip nothing; \\Seen only with mark_read; a
wrong certificate is refused before any password is sent; a wrong
password is refused with not-authorized (last: Dovecot's auth penalty).

Once (with the first server), against fakeimap.py: an untrusted and an
expired certificate are refused before LOGIN; an IMAP server that closes
during FETCH, sends garbage, a line without end, a 2 GB literal, or
never answers LOGIN: causeway survives, the gateway's presence shows the
error (xa) and is cleared when IMAP is back, it reconnects with a backoff
that grows, and every mail arrives once; UIDVALIDITY changing starts
again from the newest mail; a server without IDLE is polled; a new
registration with last_unread = 2 gets the two newest unread mails.

  CAUSEWAY_BIN=build/causeway /usr/bin/python3 tests/e2e/test_email.py \\
      [prosody] [ejabberd]
(CWTEST_EMAIL_PART=fake skips the main flow, for work on the rest.)
"""

import asyncio
import os
import re
import signal
import sys
import time
from email import message_from_bytes
from xml.etree import ElementTree as ET

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cwtest                                   # noqa: E402
from cwtest import Causeway, Client             # noqa: E402
from fakeimap import FakeImap, FakeSmtp         # noqa: E402
from mailenv import MailEnv, make_cert          # noqa: E402

DOMAIN = "mail.localhost"
HANDSHAKE = r"mail\.localhost: handshake accepted"
C = "{jabber:client}"
NS_REGISTER = "jabber:iq:register"
NS_DATA = "jabber:x:data"
NS_NICK = "{http://jabber.org/protocol/nick}nick"
NS_DELAY = "{urn:xmpp:delay}delay"
NS_RECEIPTS = "urn:xmpp:receipts"
ALICE = "alice@example.test"
BOB = "bob@example.net"
BOB_JID = "bob\\40example.net@" + DOMAIN


def bare(jid):
    return (jid or "").split("/", 1)[0].lower()


class User(Client):
    """An IM client that records every message and presence."""

    def __init__(self, port, jid, password):
        super().__init__(port, jid, password)
        self.got = []

    def login(self, timeout=20):
        if not super().login(timeout):
            return False
        from slixmpp.xmlstream.handler import Callback
        from slixmpp.xmlstream.matcher import MatchXPath

        def record(kind):
            def fn(st):
                self.got.append((kind, ET.fromstring(ET.tostring(st.xml))))
            return fn
        for kind in ("message", "presence"):
            self.xmpp.register_handler(Callback(
                "rec " + kind, MatchXPath(C + kind), record(kind)))
        self.xmpp.auto_authorize = True
        self.xmpp.send_presence()
        return True

    def mark(self):
        return len(self.got)

    def wait(self, pred, timeout, since=0):
        async def poll():
            deadline = time.monotonic() + timeout
            while True:
                for kind, el in self.got[since:]:
                    if pred(kind, el):
                        return el
                if time.monotonic() >= deadline:
                    return None
                await asyncio.sleep(0.05)
        return cwtest.event_loop().run_until_complete(poll())

    def all(self, pred, since=0):
        return [el for kind, el in self.got[since:] if pred(kind, el)]

    def send(self, to, body, subject=None, thread=None, receipt=False,
             mid=None):
        m = self.xmpp.make_message(mto=to, mbody=body, msubject=subject,
                                   mtype="chat")
        if thread:
            m["thread"] = thread
        if mid:
            m["id"] = mid
        if receipt:
            m.xml.append(ET.fromstring("<request xmlns='%s'/>" % NS_RECEIPTS))
        m.send()
        self.pump(0.1)


def chat_from(frm, needle=None):
    def pred(kind, el):
        if kind != "message" or bare(el.get("from")) != frm.lower():
            return False
        b = el.find(C + "body")
        return b is not None and (needle is None or needle in (b.text or ""))
    return pred


def text(el, tag):
    e = el.find(C + tag) if el is not None else None
    return e.text if e is not None else None


def register(user, fields):
    x = "".join("<field var='%s'><value>%s</value></field>" % (k, v)
                for k, v in [("FORM_TYPE", NS_REGISTER)] + list(fields))
    return user.iq(DOMAIN, "<query xmlns='%s'><x xmlns='%s' type='submit'>"
                   "%s</x></query>" % (NS_REGISTER, NS_DATA, x), "set",
                   timeout=60)


def err_text(el):
    t = el.find(C + "error/{urn:ietf:params:xml:ns:xmpp-stanzas}text") \
        if el is not None else None
    return t.text if t is not None else ""


def mail(subject, body, frm="Bob Example <bob@example.net>", extra="",
         msgid=None, ctype="text/plain; charset=utf-8", cte=None):
    msgid = msgid or "<%s.%d@example.net>" % (re.sub(r"\W", "", subject)[:20],
                                               time.time_ns())
    h = "From: %s\r\nTo: alice@example.test\r\nSubject: %s\r\n" \
        "Message-ID: %s\r\nDate: %s\r\nMIME-Version: 1.0\r\n" \
        "Content-Type: %s\r\n" % (frm, subject, msgid, time.strftime(
            "%a, %d %b %Y %H:%M:%S +0000", time.gmtime()), ctype)
    if cte:
        h += "Content-Transfer-Encoding: %s\r\n" % cte
    return (h + extra + "\r\n").encode() + (body if isinstance(body, bytes)
                                            else body.encode()), msgid


def gw_presence(show=None, needle=None):
    """The gateway's own presence: available (show None) or show with a
    status containing needle."""
    def pred(kind, el):
        if kind != "presence" or bare(el.get("from")) != DOMAIN or \
                el.get("type") is not None:
            return False
        sh = text(el, "show")
        if show is None:
            return sh is None
        return sh == show and (needle is None or needle in
                               (text(el, "status") or ""))
    return pred


def fake_mail(subject, body, frm="Carol Fake <carol@else.test>"):
    return ("From: %s\r\nTo: someone@fake.test\r\nSubject: %s\r\n"
            "Message-ID: <%s.%d@else.test>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n"
            % (frm, subject, re.sub(r"\W", "", subject), time.time_ns(),
               body)).encode()


def fake_fields(email, fake, env, security="tls", extra=()):
    return [("email", email), ("imap_host", "localhost"),
            ("imap_port", fake.port), ("imap_security", security),
            ("imap_user", email.split("@")[0]), ("imap_password", "fakepw"),
            ("smtp_host", "localhost"), ("smtp_port", env.submission),
            ("smtp_security", "starttls"), ("smtp_user", ALICE),
            ("smtp_password", "alicepw")] + list(extra)


def main_flow(tap, label, server, env, cw, opts, sections, pw):
    """Returns the causeway running at the end (after its restart)."""
    user = User(server.c2s_port, "user@localhost", pw["user"])
    if not tap.ok(user.login(), "%s: user logs in" % label):
        return cw

    # -- registration with address and password (preset) --
    r = register(user, [("email", ALICE), ("imap_password", "alicepw"),
                        ("name", "Alice Ex")])
    if not tap.ok(r.type == "result", "registration with address + password "
                  "through the [mail-domain] preset", diag=str(r)):
        return cw
    since = user.mark()
    user.xmpp.send_presence(pto=DOMAIN)
    tap.ok(user.wait(gw_presence(), 20, since) is not None,
           "gateway presence: available")
    tap.ok(cw.wait_for(r"INBOX open", 1, 20), "IMAP INBOX opened (IDLE)")
    time.sleep(0.5)

    # -- one plain mail --
    since = user.mark()
    raw, m1 = mail("Lunch on Friday?", "Shall we meet at noon?\r\n")
    t = time.monotonic()
    env.deliver(ALICE, raw)
    el = user.wait(chat_from(BOB_JID, "noon"), 10, since)
    lat = time.monotonic() - t
    tap.ok(el is not None, "an LMTP-delivered mail arrives as chat within "
           "10 s (latency %.2f s)" % lat)
    tap.diag("%s: mail -> chat latency: %.3f s" % (label, lat))
    tap.ok(lat < 2.0, "latency under 2 s (%.2f s)" % lat)
    tap.ok(text(el, "subject") == "Lunch on Friday?", "subject carried",
           diag=str(text(el, "subject")))
    nick = el.find(NS_NICK) if el is not None else None
    tap.ok(nick is not None and nick.text == "Bob Example", "nick from the "
           "display name (XEP-0172)")
    thread1 = text(el, "thread")
    tap.ok(thread1 is not None and len(thread1) > 8, "a thread id")
    tap.ok(el is not None and el.get("type") == "chat", "type chat")

    # -- a reply with receipt --
    since = user.mark()
    user.send(BOB_JID, "Yes, noon is fine.", thread=thread1, receipt=True,
              mid="reply-1")
    rc = user.wait(lambda k, el: k == "message" and el.find(
        "{%s}received" % NS_RECEIPTS) is not None and el.find(
        "{%s}received" % NS_RECEIPTS).get("id") == "reply-1", 20, since)
    tap.ok(rc is not None, "XEP-0184 receipt after the SMTP server accepted")
    got = env.wait_message(BOB, lambda r: b"noon is fine" in r, 20)
    tap.ok(got is not None, "the reply reached bob's mailbox")
    if got is not None:
        pm = message_from_bytes(got)
        tap.ok(pm["Subject"] == "Re: Lunch on Friday?", "Subject Re:",
               diag=str(pm["Subject"]))
        tap.ok(pm["In-Reply-To"] == m1, "In-Reply-To the original",
               diag=str(pm["In-Reply-To"]))
        tap.ok(m1 in (pm["References"] or ""), "References the original")
        tap.ok("alice@example.test" in pm["From"] and "Alice Ex" in
               pm["From"], "From the registered address and name",
               diag=str(pm["From"]))
        tap.ok(pm.get_content_charset() == "utf-8", "UTF-8 text/plain")
        tap.ok((pm["Message-ID"] or "").endswith("@example.test>"),
               "Message-ID at the user's domain")
        reply_id = pm["Message-ID"]
        # bob answers in the thread: same thread id on the XMPP side
        since = user.mark()
        raw, _ = mail("Re: Lunch on Friday?", "Great, see you.\r\n",
                      extra="In-Reply-To: %s\r\nReferences: %s %s\r\n"
                      % (reply_id, m1, reply_id))
        env.deliver(ALICE, raw)
        el = user.wait(chat_from(BOB_JID, "see you"), 10, since)
        tap.ok(el is not None and text(el, "thread") == thread1,
               "bob's answer stays in the same thread")

    # -- several replies in a row: each leaves at once.  libesmtp used
    # to wait for the EHLO answer after STARTTLS without having sent the
    # EHLO when the server's TLS 1.3 session ticket came first (about one
    # send in three on loopback), until the timeout (5 s here). --
    failed_before = cw.count(r"sending to bob@example\.net failed")
    slow = []
    for i in range(5):
        t = time.monotonic()
        user.send(BOB_JID, "quick reply %d" % i, receipt=True,
                  mid="quick-%d" % i)
        ok = env.wait_message(BOB, lambda r, i=i: b"quick reply %d" % i in r,
                              10) is not None
        dt = time.monotonic() - t
        if not ok or dt > 3.0:
            slow.append("%d: %s %.1f s" % (i, "arrived" if ok else "lost",
                                           dt))
        time.sleep(0.3 * i)     # vary the gap to the previous session
    tap.ok(not slow, "five replies in a row each reach the mailbox within "
           "3 s", diag="; ".join(slow))
    tap.ok(cw.count(r"sending to bob@example\.net failed") == failed_before,
           "... and none needed a second attempt")

    # -- injection --
    user.send(BOB_JID, "line1\r\n.\r\nBcc: victim@example.net\r\n\r\nx",
              subject="hello\r\nBcc: victim@example.net")
    got = env.wait_message(BOB, lambda r: b"line1" in r, 20)
    tap.ok(got is not None, "a reply with CR/LF in subject and body sent")
    if got is not None:
        hdr = got.split(b"\r\n\r\n", 1)[0]
        tap.ok(not re.search(rb"(?im)^bcc:", hdr), "no Bcc header injected",
               diag=hdr.decode(errors="replace"))
    time.sleep(1)
    tap.ok(env.messages("victim@example.net") == [], "the victim got nothing")

    # -- MIME variety --
    cases = [
        ("ISO-8859-1 quoted-printable",
         mail("qp", "Caf=E9 cr=E8me\r\n", ctype="text/plain; "
              "charset=iso-8859-1", cte="quoted-printable")[0],
         "Caf\u00e9 cr\u00e8me"),
        ("base64 UTF-8", mail("b64", "w6l0w6kgZ3Jvw59l\r\n",
                              cte="base64")[0], "\u00e9t\u00e9 gro\u00dfe"),
        ("HTML only", mail("html", "<html><body><p>Hello <b>bold</b>"
                           "</p><script>x()</script></body></html>\r\n",
                           ctype="text/html; charset=utf-8")[0],
         "Hello bold"),
        ("attachments", mail("att", "--b\r\nContent-Type: text/plain\r\n\r\n"
                             "see file\r\n--b\r\nContent-Type: "
                             "application/pdf\r\nContent-Disposition: "
                             "attachment; filename=\"r.pdf\"\r\n"
                             "Content-Transfer-Encoding: base64\r\n\r\n"
                             "AAAAAAAA\r\n--b--\r\n", ctype="multipart/"
                             "mixed; boundary=b")[0],
         "r.pdf (application/pdf, 6 bytes)"),
        ("unknown charset", mail("unk", b"caf\xe9 ok\r\n",
                                 ctype="text/plain; charset=x-bogus")[0],
         "caf\u00e9 ok"),
        ("broken base64", mail("brb", "w6l0w6k*!!\r\n", cte="base64")[0],
         "\u00e9t\u00e9"),
    ]
    deep = "".join("Content-Type: multipart/mixed; boundary=n%d\r\n\r\n"
                   "--n%d\r\n" % (i, i) for i in range(100))
    parts = "".join("--q\r\nContent-Type: application/x-%d\r\n\r\nd\r\n" % i
                    for i in range(1000))
    cases.append(("1,000 parts", mail("many", parts + "--q--\r\n",
                                      ctype="multipart/mixed; boundary=q")[0],
                  "more MIME parts were not read"))
    cases.append(("nesting 100 deep", (
        "From: bob@example.net\r\nSubject: deep\r\nMIME-Version: 1.0\r\n"
        + deep + "Content-Type: text/plain\r\n\r\nbottom\r\n").encode(),
        "nested too deep"))
    cases.append(("a 1 MB header line", mail("x" * (1024 * 1024),
                                             "after the long header\r\n")[0],
                  "after the long header"))
    for what, raw, needle in cases:
        since = user.mark()
        env.deliver(ALICE, raw)
        el = user.wait(lambda k, e: k == "message" and needle in
                       (text(e, "body") or ""), 15, since)
        tap.ok(el is not None, "mail as chat: %s" % what,
               diag="\n".join(str(text(e, "body"))[:200] for e in
                              user.all(lambda k, e: k == "message",
                                       since)))
    since = user.mark()
    env.deliver(ALICE, b"From: Nobody Here\r\nSubject: anon\r\n\r\nwho?\r\n")
    el = user.wait(lambda k, e: k == "message" and "who?" in
                   (text(e, "body") or ""), 15, since)
    tap.ok(el is not None and bare(el.get("from")) ==
           "alice\\40example.test@" + DOMAIN,
           "a mail without a sender address comes from the mailbox contact",
           diag=el is not None and el.get("from"))
    # 50 MB
    big = b"From: bob@example.net\r\nSubject: huge\r\n\r\n" + \
        (b"0123456789" * 102 + b"\r\n") * 51000
    since = user.mark()
    t = time.monotonic()
    env.deliver(ALICE, big)
    el = user.wait(lambda k, e: k == "message" and "huge" ==
                   text(e, "subject"), 60, since)
    body = text(el, "body") or ""
    tap.ok(el is not None and "cut: the first" in body and
           "only its first" in body and len(body) < 80 * 1024,
           "a 50 MB mail: the first KB with a note (%.1f s)"
           % (time.monotonic() - t), diag=body[-300:])
    tap.ok(cw.alive(), "causeway survived the hostile mails")

    # -- 5xx at RCPT --
    since = user.mark()
    user.send("nosuch\\40example.net@" + DOMAIN, "hello?", mid="bad-1")
    el = user.wait(lambda k, e: k == "message" and e.get("type") == "error"
                   and e.get("id") == "bad-1", 30, since)
    tap.ok(cw.wait_for(r"mail to nosuch@example\.net failed: 550 .*no "
                       r"such user", 1, 30),
           "a 550 at RCPT is reported as failed with the server's text")
    tap.ok(el is not None and "no such user" in err_text(el),
           "the 550 comes back to the client as an error message",
           diag=err_text(el))

    # -- SMTP down, then up --
    env.stop_postfix()
    since = user.mark()
    user.send(BOB_JID, "sent while postfix is down", receipt=True,
              mid="later-1")
    time.sleep(3)
    tap.ok(user.wait(lambda k, e: k == "message" and e.get("id") ==
                     "later-1" and e.get("type") == "error", 0.5, since)
           is None, "no error while the SMTP server is down (retrying)")
    env.start_postfix()
    got = env.wait_message(BOB, lambda r: b"postfix is down" in r, 60)
    tap.ok(got is not None, "the reply is delivered once postfix is back")

    # -- restart: no duplicates, no gaps --
    before = len(user.all(chat_from(BOB_JID)))
    cw.stop()
    for i in range(2):
        env.deliver(ALICE, mail("while down %d" % i, "down body %d\r\n" % i)[0])
    cw2 = Causeway(server, tap=tap, name="causeway-email", backend="email",
                   options=opts, sections=sections)
    # The same store: copy the config's paths over.
    cw2.cfg = cw.cfg
    cw2.start()
    cw = cw2
    tap.ok(cw.wait_for(HANDSHAKE, 1, 20), "causeway restarted")
    user.xmpp.send_presence(pto=DOMAIN)
    for i in range(2):
        tap.ok(user.wait(chat_from(BOB_JID, "down body %d" % i), 20)
               is not None, "mail %d delivered while causeway was down "
               "arrives after the restart" % i)
    user.pump(3)
    msgs = [text(e, "body") for e in user.all(chat_from(BOB_JID))]
    dups = [b for b in set(msgs) if msgs.count(b) > 1]
    tap.ok(not dups and len(msgs) == before + 2, "nothing delivered twice "
           "across the restart (%d before, %d after)" % (before, len(msgs)),
           diag=repr(dups)[:300])
    tap.ok(b"\\Seen" not in (env.flags(ALICE, b"down body 0") or b"\\Seen"),
           "BODY.PEEK: delivered mail stays unread without mark_read")

    # -- Dovecot restarted: the gateway says so, then catches up --
    since = user.mark()
    t = time.monotonic()
    env.stop_dovecot()
    xa = user.wait(gw_presence("xa", "mailbox unreachable"), 15, since)
    tap.ok(xa is not None, "Dovecot stopped: the gateway's presence turns "
           "xa (%s)" % (text(xa, "status") if xa is not None else "none"))
    i_xa = user.mark()
    env.start_dovecot()
    env.deliver(ALICE, mail("dovecot back",
                            "after the dovecot restart\r\n")[0])
    el = user.wait(chat_from(BOB_JID, "after the dovecot restart"), 40,
                   since)
    tap.ok(el is not None, "a mail delivered right after Dovecot's restart "
           "arrives (%.1f s after the stop)" % (time.monotonic() - t))
    tap.ok(user.wait(gw_presence(), 10, i_xa) is not None,
           "... and the gateway's presence is available again")
    user.pump(2)
    tap.ok(len(user.all(chat_from(BOB_JID, "after the dovecot restart"),
                        since)) == 1, "... once")
    # Postfix's smtpd processes keep their link to the old Dovecot auth
    # service and answer the next AUTH with a 454: start them afresh.
    env.stop_postfix()
    env.start_postfix()

    # -- the XMPP server restarted: mail meanwhile arrives once after --
    server.stop()
    user.close()
    env.deliver(ALICE, mail("xmpp down",
                            "while the xmpp server is down\r\n")[0])
    time.sleep(1)
    tap.ok(cw.alive(), "%s stopped: causeway stays up" % label)
    # The user is back before causeway re-attaches (held with SIGSTOP
    # meanwhile): the ejabberd of these tests keeps no offline messages.
    os.kill(cw.pid, signal.SIGSTOP)
    try:
        server.start()
        user.got = []
        user.login()
        user.xmpp.send_presence(pto=DOMAIN)
    finally:
        os.kill(cw.pid, signal.SIGCONT)
    tap.ok(cw.wait_for(HANDSHAKE, 2, 40), "causeway re-attached to the "
           "restarted %s" % label)
    el = user.wait(chat_from(BOB_JID, "while the xmpp server is down"), 30)
    tap.ok(el is not None, "a mail that came while %s was down arrives "
           "after its restart" % label)
    user.pump(2)
    tap.ok(len(user.all(chat_from(BOB_JID, "while the xmpp server is "
                                  "down"))) == 1, "... once")

    # -- wrong certificate: refused before the password --
    other = User(server.c2s_port, "other@localhost", pw["other"])
    other.login()
    off = os.path.getsize(env.dovecot_log)
    r = register(other, [("email", BOB), ("imap_host", "127.0.0.1"),
                         ("imap_port", env.imap), ("imap_security",
                                                   "starttls"),
                         ("imap_password", "bobpw"),
                         ("smtp_host", "localhost"),
                         ("smtp_port", env.submission)])
    tap.ok(r.type == "error" and "certificate" in err_text(r.xml),
           "a certificate that does not name the IP literal 127.0.0.1 is "
           "refused (STARTTLS; the address checked against IP SANs)",
           diag=str(r))
    log = open(env.dovecot_log, errors="replace").read()[off:]
    tap.ok("bob@example.net" not in log and "auth" not in log.lower()
           .replace("no auth attempts", ""),
           "Dovecot saw no LOGIN or AUTH from the refused connection",
           diag=log[-600:])
    # every field given, right certificate: accepted
    r = register(other, [("email", BOB), ("imap_host", "localhost"),
                         ("imap_port", env.imap), ("imap_security",
                                                   "starttls"),
                         ("imap_password", "bobpw"),
                         ("smtp_host", "localhost"),
                         ("smtp_port", env.submission),
                         ("smtp_security", "starttls"),
                         ("mark_read", "1")])
    tap.ok(r.type == "result", "registration with every field (IMAP "
           "STARTTLS)", diag=str(r))
    other.close()
    user.close()
    return cw


def wrong_password(tap, server, cw, pw):
    # last: Dovecot slows later logins down
    third = User(server.c2s_port, "third@localhost", pw["third"])
    third.login()
    r = register(third, [("email", ALICE), ("imap_password", "wrong")])
    cond = None
    if r.xml is not None:
        for e in r.xml.findall(C + "error/*"):
            if not e.tag.endswith("}text"):
                cond = e.tag.split("}", 1)[1]
    tap.ok(r.type == "error" and cond == "not-authorized",
           "a wrong password is refused: not-authorized with the server's "
           "reason (%s)" % err_text(r.xml), diag=str(r))
    third.close()


def fake_flow(tap, server, env, cw, fakes, certs):
    """Against fakeimap.py: certificates, hostile servers, UIDVALIDITY,
    polling, last_unread.  fakes: the servers (good, no IDLE, untrusted,
    expired), already started."""
    good, noidle, untrusted, expired = fakes
    for u in ("hostile", "poller", "certs"):
        server.register(u, "pw-" + u)

    # -- certificates: refused before any password --
    c = User(server.c2s_port, "certs@localhost", "pw-certs")
    c.login()
    r = register(c, fake_fields("erin@fake.test", untrusted, env))
    tap.ok(r.type == "error" and "certificate" in err_text(r.xml),
           "an untrusted certificate (implicit TLS) is refused: %s"
           % err_text(r.xml), diag=str(r))
    tap.ok(untrusted.commands == [], "... before any IMAP command "
           "(no LOGIN, no AUTHENTICATE)", diag=repr(untrusted.commands))
    r = register(c, fake_fields("erin@fake.test", expired, env,
                                security="starttls"))
    tap.ok(r.type == "error" and "expired" in err_text(r.xml),
           "an expired certificate (STARTTLS) is refused: %s"
           % err_text(r.xml), diag=str(r))
    tap.ok(expired.saw(rb"STARTTLS") and not expired.saw(
        rb"^\S+ (LOGIN|AUTHENTICATE)"), "... after STARTTLS, before any "
           "LOGIN or AUTHENTICATE", diag=repr(expired.commands))
    c.close()

    # -- a mailbox on the fake server --
    good.add_mail(fake_mail("before registration", "old mail"))
    h = User(server.c2s_port, "hostile@localhost", "pw-hostile")
    if not tap.ok(h.login(), "hostile@localhost logs in"):
        return
    r = register(h, fake_fields("carol@fake.test", good, env))
    if not tap.ok(r.type == "result", "registration on the fake IMAP "
                  "server", diag=str(r)):
        return
    since = h.mark()
    h.xmpp.send_presence(pto=DOMAIN)
    tap.ok(h.wait(gw_presence(), 20, since) is not None and
           cw.wait_for(r"hostile@localhost: INBOX open", 1, 20),
           "the fake mailbox is open")
    time.sleep(0.5)
    CAROL = "carol\\40else.test@" + DOMAIN
    good.add_mail(fake_mail("first", "fake hello"))
    tap.ok(h.wait(chat_from(CAROL, "fake hello"), 10, since) is not None,
           "a new mail on the fake server arrives")
    tap.ok(not h.all(chat_from(CAROL, "old mail")), "a new registration "
           "starts from now: the older mail is not delivered")

    # -- hostile servers: each breaks the connection during a fetch --
    cases = [
        ("close_fetch", "closes the connection during FETCH",
         "closed the connection"),
        ("garbage", "sends garbage", "not IMAP"),
        ("endless", "sends a line without end", "more than"),
        ("literal_2g", "announces a 2 GB literal", "more than"),
    ]
    for mode, what, needle in cases:
        since = h.mark()
        good.mode = mode
        n_acc = len(good.accepted)
        good.add_mail(fake_mail(mode, "after %s" % mode))
        xa = h.wait(gw_presence("xa", needle), 20, since)
        t_xa = time.monotonic()
        i_xa = h.mark()
        tap.ok(xa is not None, "a server that %s: the gateway's presence "
               "is xa with the error (%s)" % (what, text(xa, "status")),
               diag=str([(k, ET.tostring(e)[:300]) for k, e in
                         h.got[since:]]))
        if mode == "garbage":
            # still broken for two more attempts: the waits must grow
            cwtest.wait_until(lambda: len(good.accepted) >= n_acc + 2, 20)
            acc = good.accepted[n_acc:n_acc + 2]
            gaps = [acc[0] - t_xa] + ([acc[1] - acc[0]] if len(acc) > 1
                                      else [])
            tap.ok(len(gaps) == 2 and gaps[0] < 3.5 and gaps[1] > 3.5,
                   "reconnects with a growing backoff (%s s)"
                   % ", ".join("%.1f" % g for g in gaps))
        good.mode = "normal"
        el = h.wait(chat_from(CAROL, "after %s" % mode), 30, since)
        tap.ok(el is not None and cw.alive(), "... causeway survives, "
               "reconnects, and the mail arrives")
        tap.ok(h.wait(gw_presence(), 10, i_xa) is not None,
               "... and the gateway's presence is available again")
    tap.ok(max(good.flooded or [0]) < 32 * 1024 * 1024,
           "causeway stopped reading the floods early (%s bytes)"
           % good.flooded)

    # -- never answers LOGIN: a timeout --
    since = h.mark()
    good.mode = "silent_login"
    good.add_mail(fake_mail("silent", "after the silent login"))
    good.drop_all()
    xa = h.wait(gw_presence("xa", "did not answer"), 25, since)
    tap.ok(xa is not None, "a server that never answers LOGIN: a timeout, "
           "shown in the gateway's presence (%s)" % text(xa, "status"))
    good.mode = "normal"
    tap.ok(h.wait(chat_from(CAROL, "after the silent login"), 30, since)
           is not None, "... then the mail arrives")

    # -- UIDVALIDITY changes: again from the newest mail, nothing twice --
    since = h.mark()
    n_log = cw.count(r"UIDVALIDITY changed")
    good.set_uidvalidity(777)
    good.drop_all()
    tap.ok(cw.wait_for(r"hostile@localhost: UIDVALIDITY changed \(100 to "
                       r"777\): starting from the newest mail", n_log + 1,
                       20), "a changed UIDVALIDITY is logged; causeway "
           "starts again from the newest mail")
    cwtest.wait_until(lambda: any(c.idling for c in good.conns), 10)
    good.add_mail(fake_mail("renumbered", "after the renumbering"))
    tap.ok(h.wait(chat_from(CAROL, "after the renumbering"), 15, since)
           is not None, "a mail after the change arrives")
    h.pump(1)
    tap.ok(len(h.all(chat_from(CAROL), since)) == 1, "the renumbered old "
           "mails are not delivered again",
           diag=repr([text(e, "body") for e in h.all(chat_from(CAROL),
                                                     since)]))
    bodies = [text(e, "body") for e in h.all(chat_from(CAROL))]
    tap.ok(len(bodies) == len(set(bodies)) == 7, "every mail of the fake "
           "server arrived exactly once (%d)" % len(bodies),
           diag=repr(bodies))
    h.close()

    # -- no IDLE: polled; last_unread on registration --
    DAVE = "dave\\40else.test@" + DOMAIN
    for i in range(4):
        noidle.add_mail(fake_mail("backlog %d" % i, "backlog body %d" % i,
                                  frm="Dave <dave@else.test>"),
                        seen=(i == 2))
    p = User(server.c2s_port, "poller@localhost", "pw-poller")
    p.login()
    r = register(p, fake_fields("dave@fake.test", noidle, env,
                                security="starttls",
                                extra=[("last_unread", "2")]))
    tap.ok(r.type == "result", "registration with last_unread = 2 on a "
           "server without IDLE (STARTTLS)", diag=str(r))
    p.xmpp.send_presence(pto=DOMAIN)
    p.wait(chat_from(DAVE, "backlog body 3"), 15)
    p.pump(1)
    got = [text(e, "body") for e in p.all(chat_from(DAVE))]
    tap.ok(got == ["backlog body 1", "backlog body 3"], "the two newest "
           "unread mails arrive, oldest first; the read one and the older "
           "one do not", diag=repr(got))
    tap.ok(all(x[2] is False for x in noidle.mails if b"body 1" in x[1]),
           "... and stay unread on the server (no mark_read)")
    t = time.monotonic()
    noidle.add_mail(fake_mail("polled", "found by polling",
                              frm="Dave <dave@else.test>"))
    el = p.wait(chat_from(DAVE, "found by polling"), 10)
    tap.ok(el is not None, "without IDLE a new mail is found by polling "
           "(%.1f s, poll_interval 2 s)" % (time.monotonic() - t))
    tap.ok(not noidle.saw(rb"IDLE"), "... and no IDLE was sent")
    p.close()

    # -- an SMTP server that speaks only TLS 1.3 (libesmtp was pinned
    # to TLS 1.2; curl negotiates 1.3 at once) --
    smtp = FakeSmtp(*certs)
    smtp.start()
    server.register("tls13", "pw-tls13")
    u = User(server.c2s_port, "tls13@localhost", "pw-tls13")
    u.login()
    fields = [(k, smtp.port if k == "smtp_port" else v) for k, v in
              fake_fields("frank@fake.test", good, env)]
    r = register(u, fields)
    tap.ok(r.type == "result", "registration with a TLS 1.3-only SMTP "
           "server", diag=str(r))
    since = u.mark()
    u.xmpp.send_presence(pto=DOMAIN)
    u.wait(gw_presence(), 20, since)
    since = u.mark()
    t = time.monotonic()
    u.send("zed\\40else.test@" + DOMAIN, "over TLS 1.3", receipt=True,
           mid="t13")
    rc = u.wait(lambda k, el: k == "message" and el.find(
        "{%s}received" % NS_RECEIPTS) is not None, 15, since)
    got = [m for m in smtp.mails if b"over TLS 1.3" in m[1]]
    tap.ok(rc is not None and len(got) == 1 and got[0][0] ==
           "zed@else.test", "a reply through it is accepted (%.1f s) and "
           "receipted" % (time.monotonic() - t), diag=repr(smtp.handshakes))
    tap.ok(smtp.handshakes and smtp.handshakes[-1] == "TLSv1.3" and
           not any(h.startswith("refused") for h in smtp.handshakes),
           "... over TLS 1.3 at the first handshake (registration and "
           "send alike)", diag=repr(smtp.handshakes))
    u.close()
    smtp.stop()
    tap.ok(cw.alive(), "causeway is still running")


def run_server(tap, cls):
    label = cls.name
    t_server = time.monotonic()
    env = MailEnv(tap=tap)
    env.start()
    tap.ok(True, "%s: dovecot and postfix up (%.1f s)"
           % (label, time.monotonic() - t_server))
    first = not RAN
    RAN.append(label)
    fakes = []
    ca_file = env.cert
    if first:
        certdir = cwtest.make_tempdir("cwtest-certs-")
        good = make_cert(certdir, "good")
        bad = make_cert(certdir, "untrusted")
        old = make_cert(certdir, "expired", expired=True)
        ca_file = os.path.join(certdir, "ca.pem")
        with open(ca_file, "w") as f:
            for path in (env.cert, good[2], old[2]):
                f.write(open(path).read())
        fakes = [FakeImap(*good[:2]),
                 FakeImap(*good[:2], tls="starttls", idle=False),
                 FakeImap(*bad[:2]), FakeImap(*old[:2], tls="starttls")]
        for fk in fakes:
            fk.start()
    server = cls(domain=DOMAIN, tap=tap)
    cw = None
    try:
        server.start()
        pw = {u: "pw-" + u for u in ("user", "other", "third")}
        for u, p in pw.items():
            server.register(u, p)
        opts = {"linger": 0, "ca_file": ca_file, "timeout": 5,
                "smtp_retry": 1, "idle_refresh": 60, "fetch_max": "2m",
                "poll_interval": 2}
        sections = [("mail-domain example.test",
                     {"imap_host": "localhost", "imap_port": env.imaps,
                      "imap_security": "tls", "smtp_host": "localhost",
                      "smtp_port": env.submission,
                      "smtp_security": "starttls"})]
        cw = Causeway(server, tap=tap, name="causeway-email",
                      backend="email", options=opts, sections=sections,
                      general=GENERAL)
        cw.start()
        if not tap.ok(cw.wait_for(HANDSHAKE, 1, 20), "%s: causeway attached "
                      "as %s" % (label, DOMAIN)):
            return
        t = time.monotonic()
        if os.environ.get("CWTEST_EMAIL_PART") != "fake":
            cw = main_flow(tap, label, server, env, cw, opts, sections, pw)
        tap.diag("%s: main flow %.1f s" % (label, time.monotonic() - t))
        if first:
            t = time.monotonic()
            fake_flow(tap, server, env, cw, fakes, good[:2])
            tap.diag("%s: fake IMAP servers %.1f s"
                     % (label, time.monotonic() - t))
        wrong_password(tap, server, cw, pw)
        # Every mailbox password typed in this run, at log_level debug.
        cwtest.check_no_secrets(tap, label, ["alicepw", "bobpw", "fakepw",
                                             "\0alice@example.test\0alicepw"],
                                cw)
        tap.ok(cw.alive(), "%s: causeway stayed up" % label)
    except Exception as e:
        cwtest.mark_failed()
        tap.bail("%s: unexpected exception: %s" % (label, e), e)
    finally:
        for fk in fakes:
            fk.stop()
        cwtest.stop_all(tap, label, server, t_server, cw, env)


RAN = []
# The users of these tests type loopback hosts (fakeimap.py): allowed
# explicitly, as the destination policy refuses them by default.
GENERAL = {"destinations_allow": "127.0.0.0/8"}


def main():
    return cwtest.main_per_server("email tests", run_server,
                                  requires=("dovecot", "postfix"))


if __name__ == "__main__":
    sys.exit(main())
