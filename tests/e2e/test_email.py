#!/usr/bin/python3
"""End-to-end: the email backend against a real Dovecot (IMAP with
STARTTLS and implicit TLS on a self-signed certificate trusted through
ca_file, LMTP for delivery), a private Postfix (submission with STARTTLS
and AUTH), Prosody and a slixmpp client.

Checks: registration with only address and password through a
[mail-domain] preset, and with every field given; a mail delivered by
LMTP arrives as a chat message (latency printed) with subject, nick
(XEP-0172), thread and delay; ISO-8859-1 quoted-printable, base64 UTF-8,
HTML-only, attachments, a 50 MB mail, 1,000 parts nested 100 deep, no
From, a 1 MB header line; a reply goes out with Re:, In-Reply-To and
References (read back from the correspondent's mailbox over IMAP) and a
XEP-0184 receipt; CR/LF injection in subject and body adds no header;
a 550 at RCPT comes back as an error message; the SMTP server down,
then up: the reply is delivered later; a restart of causeway delivers
nothing twice and skips nothing; \\Seen only with mark_read; a wrong
certificate is refused before any password is sent; a wrong password
is refused with not-authorized (last: Dovecot's auth penalty).

  CAUSEWAY_BIN=build/causeway /usr/bin/python3 tests/e2e/test_email.py
"""

import asyncio
import os
import re
import sys
import time
from email import message_from_bytes
from xml.etree import ElementTree as ET

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cwtest                                   # noqa: E402
from cwtest import Causeway, Client, Prosody, Tap   # noqa: E402
from mailenv import MailEnv                     # noqa: E402

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


def run(tap):
    env = MailEnv(tap=tap)
    t0 = time.monotonic()
    env.start()
    tap.ok(True, "dovecot and postfix up (%.1f s)" % (time.monotonic() - t0))
    server = Prosody(domain=DOMAIN, tap=tap)
    server.start()
    pw = {u: "pw-" + u for u in ("user", "other", "third")}
    for u, p in pw.items():
        server.register(u, p)
    opts = {"linger": 0, "ca_file": env.cert, "timeout": 5,
            "smtp_retry": 1, "idle_refresh": 60, "fetch_max": "2m"}
    sections = [("mail-domain example.test",
                 {"imap_host": "localhost", "imap_port": env.imaps,
                  "imap_security": "tls", "smtp_host": "localhost",
                  "smtp_port": env.submission,
                  "smtp_security": "starttls"})]
    cw = Causeway(server, tap=tap, name="causeway-email", backend="email",
                  options=opts, sections=sections)
    cw.start()
    if not tap.ok(cw.wait_for(HANDSHAKE, 1, 20), "causeway attached as %s"
                  % DOMAIN):
        return

    user = User(server.c2s_port, "user@localhost", pw["user"])
    if not tap.ok(user.login(), "user logs in"):
        return

    # -- registration with address and password (preset) --
    r = register(user, [("email", ALICE), ("imap_password", "alicepw"),
                        ("name", "Alice Ex")])
    if not tap.ok(r.type == "result", "registration with address + password "
                  "through the [mail-domain] preset", diag=str(r)):
        return
    since = user.mark()
    user.xmpp.send_presence(pto=DOMAIN)
    tap.ok(user.wait(lambda k, el: k == "presence" and bare(el.get("from"))
                     == DOMAIN and el.get("type") is None, 20, since)
           is not None, "gateway presence: available")
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
    tap.diag("mail -> chat latency: %.3f s" % lat)
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
    for label, raw, needle in cases:
        since = user.mark()
        env.deliver(ALICE, raw)
        el = user.wait(lambda k, e: k == "message" and needle in
                       (text(e, "body") or ""), 15, since)
        tap.ok(el is not None, "mail as chat: %s" % label,
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
    tap.ok(cw2.wait_for(HANDSHAKE, 1, 20), "causeway restarted")
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
           "a certificate for another name is refused (STARTTLS)",
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

    # -- wrong password (last: Dovecot slows later logins down) --
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
    tap.ok(cw2.alive(), "causeway stayed up")
    cw2.stop()
    server.stop()
    env.stop()


def main():
    tap = Tap()
    for tool in ("dovecot", "postfix", "prosody"):
        if not cwtest.have(tool):
            tap.skip("email tests", "%s not installed" % tool)
            return tap.finish()
    try:
        run(tap)
    except SystemExit:
        raise
    except Exception as e:
        cwtest.mark_failed()
        tap.bail("unexpected exception: %s" % e, e)
    return tap.finish()


if __name__ == "__main__":
    sys.exit(main())
