#!/usr/bin/python3
"""End-to-end: sending mail through Dovecot's own submission service
(dovecot-submissiond: STARTTLS on one port, implicit TLS on another,
relaying to a private Postfix) and the destination policy, through
Prosody and ejabberd.

Against the real servers: registration and a reply over 587 (STARTTLS)
and 465 (implicit TLS), each by host name and by IP literal (the
certificate names localhost and 127.0.0.1), the reply read back from
the correspondent's mailbox and receipted.

Against fakeimap.py's FakeSmtp: a wrong (untrusted) certificate on 465
and on 587 is refused before AUTH; bad inputs, each refused with nothing
sent: a server that offers AUTH only before TLS (registration, and a
send to a server that changed so: no mail leaves), a 465 port that
speaks plaintext, a 587 port that never offers STARTTLS.

The destination policy, with causeway restarted without
destinations_allow: loopback, an internal address and an unusual port
are refused with one text and no connection; a preset host (the
operator's) still works.

  CAUSEWAY_BIN=build/causeway /usr/bin/python3 \\
      tests/e2e/test_email_submission.py [prosody] [ejabberd]
"""

import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cwtest                                   # noqa: E402
from cwtest import Causeway                     # noqa: E402
from fakeimap import FakeImap, FakeSmtp         # noqa: E402
from mailenv import MailEnv, make_cert          # noqa: E402
from test_email import (DOMAIN, HANDSHAKE, NS_RECEIPTS, ALICE, BOB,  # noqa
                        BOB_JID, User, register, err_text, gw_presence,
                        C, chat_from, mail)

REFUSED = "the gateway does not connect to this server"


def receipt(mid):
    def pred(kind, el):
        r = el.find("{%s}received" % NS_RECEIPTS)
        return kind == "message" and r is not None and r.get("id") == mid
    return pred


def error_for(mid):
    def pred(kind, el):
        return kind == "message" and el.get("type") == "error" and \
            el.get("id") == mid
    return pred


def fields(env, smtp_host, smtp_port, security, imap_host="localhost",
           email=ALICE, extra=()):
    return [("email", email), ("imap_host", imap_host),
            ("imap_port", env.imaps), ("imap_security", "tls"),
            ("imap_password", env.passwords[email]), ("smtp_host", smtp_host),
            ("smtp_port", smtp_port), ("smtp_security", security)] + \
        list(extra)


class Users:
    """A fresh XMPP account per case (one registration each)."""

    def __init__(self, server):
        self.server = server
        self.n = 0
        self.open = []

    def new(self):
        self.n += 1
        name = "sub%d" % self.n
        self.server.register(name, "pw-" + name)
        u = User(self.server.c2s_port, "%s@localhost" % name, "pw-" + name)
        if not u.login():
            return None
        self.open.append(u)
        return u

    def close(self):
        for u in self.open:
            u.close()
        self.open = []


def online(u):
    since = u.mark()
    u.xmpp.send_presence(pto=DOMAIN)
    return u.wait(gw_presence(), 20, since) is not None


def real_submission(tap, env, users):
    """Registration and a reply over 587 and 465, by name and by IP."""
    dlog = env.dovecot_log
    for label, host, port, sec in (
            ("587 STARTTLS by name", "localhost", env.dsub, "starttls"),
            ("465 implicit TLS by name", "localhost", env.dsubs, "tls"),
            ("587 STARTTLS by IP literal", "127.0.0.1", env.dsub,
             "starttls"),
            ("465 implicit TLS by IP literal", "127.0.0.1", env.dsubs,
             "tls")):
        u = users.new()
        if not tap.ok(u is not None, "%s: a user logs in" % label):
            continue
        # IMAP by the same name or address: an IP literal is checked
        # against the certificate's IP addresses there too.
        r = register(u, fields(env, host, port, sec, imap_host=host))
        tap.ok(r.type == "result", "%s: registration against Dovecot's "
               "submission (IMAP at %s too)" % (label, host),
               diag=err_text(r))
        if r.type != "result":
            continue
        online(u)
        before = open(dlog, errors="replace").read().count(
            "submission(alice@example.test)")
        since = u.mark()
        body = "through dovecot %s %d" % (label, time.time_ns())
        mid = "sub-%d" % users.n
        u.send(BOB_JID, body, receipt=True, mid=mid)
        rc = u.wait(receipt(mid), 20, since)
        got = env.wait_message(BOB, lambda raw: body.encode() in raw, 20)
        tap.ok(rc is not None and got is not None, "%s: the reply is "
               "receipted and reaches bob's mailbox" % label,
               diag=str(u.all(error_for(mid), since)[:1]))
        after = open(dlog, errors="replace").read().count(
            "submission(alice@example.test)")
        tap.ok(after > before, "%s: ... through Dovecot's submission "
               "service (its log: %d new lines)" % (label, after - before))


def no_auth(smtp):
    return not any(v == "AUTH" for v, _ in smtp.commands)


def commands(smtp):
    return " ".join(v for v, _ in smtp.commands) or "none"


def refused(tap, env, users, label, cert, security, needle, keep=False,
            **kw):
    """A registration against a FakeSmtp(cert, **kw) that must be
    refused with needle in the error, no AUTH and no mail sent.  The
    server is stopped unless keep."""
    smtp = FakeSmtp(*cert[:2], **kw)
    smtp.start()
    u = users.new()
    t = time.monotonic()
    r = register(u, fields(env, "localhost", smtp.port, security))
    tap.ok(r.type == "error" and needle in err_text(r), "%s: registration "
           "refused (%.1f s): %s" % (label, time.monotonic() - t,
                                     err_text(r)))
    tap.ok(no_auth(smtp) and not smtp.mails and not any(
        v == "MAIL" for v, _ in smtp.commands), "%s: ... no AUTH, nothing "
           "sent (commands: %s)" % (label, commands(smtp)))
    if not keep:
        smtp.stop()
    return smtp


def fake_cases(tap, env, users, certs):
    good, bad = certs
    # -- a wrong certificate, on 465 and on 587: refused before AUTH --
    refused(tap, env, users, "465 with an untrusted certificate", bad,
            "tls", "certificate", implicit=True)
    refused(tap, env, users, "587 with an untrusted certificate", bad,
            "starttls", "certificate")
    # -- AUTH offered only before TLS --
    smtp = refused(tap, env, users, "a server offering AUTH only before "
                   "TLS", good, "starttls", "no AUTH", keep=True,
                   mode="auth_before_tls")
    # The same server, well-behaved for the registration, then not.
    smtp.mode = "normal"
    u2 = users.new()
    r = register(u2, fields(env, "localhost", smtp.port, "starttls"))
    tap.ok(r.type == "result", "registration while it behaves",
           diag=err_text(r))
    online(u2)
    smtp.mode = "auth_before_tls"
    smtp.mails.clear()
    since = u2.mark()
    u2.send(BOB_JID, "must not leave unauthenticated", receipt=True,
            mid="noauth-1")
    el = u2.wait(error_for("noauth-1"), 20, since)
    tap.ok(el is not None and "no AUTH" in err_text(el),
           "a send to it once it offers AUTH only before TLS: an error "
           "to the user: %s" % err_text(el))
    tap.ok(not smtp.mails and not u2.all(receipt("noauth-1"), since),
           "... and no mail left (the fake accepted %d, no receipt)"
           % len(smtp.mails))
    smtp.stop()
    # -- a 465 port that speaks plaintext --
    refused(tap, env, users, "465 speaking plaintext", good, "tls", "TLS",
            implicit=True, mode="plain")
    # -- a 587 port that never offers STARTTLS (but AUTH in clear) --
    refused(tap, env, users, "587 without STARTTLS", good, "starttls",
            "STARTTLS", mode="no_starttls")


def default_policy(tap, env, users, cw):
    """causeway without destinations_allow."""
    cases = (("loopback by name", "localhost", env.imaps),
             ("loopback by address", "127.0.0.1", env.imaps),
             ("an RFC 1918 address", "10.255.255.1", 993),
             ("link-local (cloud metadata)", "169.254.169.254", 993),
             ("a public address on an unusual port", "192.0.2.1", 2222))
    for label, host, port in cases:
        u = users.new()
        f = fields(env, "localhost", env.dsub, "starttls", imap_host=host)
        f = [(k, port if k == "imap_port" else v) for k, v in f]
        t = time.monotonic()
        r = register(u, f)
        dt = time.monotonic() - t
        tap.ok(r.type == "error" and err_text(r).startswith(REFUSED) and
               dt < 3, "default policy: %s refused at once (%.2f s) with "
               "the one text" % (label, dt), diag=err_text(r))
    # The SMTP side too (IMAP through the operator's preset host).
    u = users.new()
    r = register(u, [("email", ALICE), ("imap_password", "alicepw"),
                     ("smtp_host", "127.0.0.1"), ("smtp_port", env.dsub),
                     ("smtp_security", "starttls")])
    tap.ok(r.type == "error" and err_text(r).startswith(REFUSED),
           "default policy: a loopback SMTP host refused with the same "
           "text", diag=err_text(r))
    # Host text that the check and the URL would read differently.
    for host in ("127.0.0.1/.example.com", "127.0.0.1#.example.com",
                 "mail.example.com?x", "mail..example.com"):
        u = users.new()
        r = register(u, [("email", ALICE), ("imap_password", "alicepw"),
                         ("smtp_host", host), ("smtp_port", env.dsub),
                         ("smtp_security", "starttls")])
        tap.ok(r.type == "error" and "not a host name" in err_text(r),
               "an SMTP host of %r is refused as no host name" % host,
               diag=err_text(r))
    u = users.new()
    r = register(u, [("email", ALICE), ("imap_password", "alicepw")])
    tap.ok(r.type == "result", "the operator's preset (loopback) is "
           "trusted", diag=err_text(r))
    tap.ok(cw.wait_for(r"refused or not found", 1, 5),
           "the refusals are logged for the operator")


def from_mailbox(addr, needle):
    jid = addr.replace("@", "\\40") + "@" + DOMAIN

    def pred(kind, el):
        b = el.find(C + "body")
        return kind == "message" and (el.get("from") or "").split("/")[0] \
            == jid and b is not None and needle in (b.text or "")
    return pred


def send_and_wait(tap, env, u, body, mid):
    since = u.mark()
    u.send(BOB_JID, body, receipt=True, mid=mid)
    rc = u.wait(receipt(mid), 20, since)
    got = env.wait_message(BOB, lambda raw: body.encode() in raw, 20)
    return rc is not None and got is not None


def sent_copy(tap, env, users):
    box = "Sent Messages"
    env.create_mailbox(ALICE, box)
    u = users.new()
    r = register(u, fields(env, "localhost", env.dsub, "starttls"))
    tap.ok(r.type == "result", "Sent: registration", diag=err_text(r))
    online(u)
    body = "kept in sent %d" % time.time_ns()
    tap.ok(send_and_wait(tap, env, u, body, "sent-1"), "Sent: the reply "
           "goes out")
    copy = []
    cwtest.wait_until(lambda: any(body.encode() in raw for _, raw in
                                  (env.mailbox(ALICE, box) or []))
                      and not copy.append(1), 10, 0.3)
    msgs = [(f, raw) for f, raw in env.mailbox(ALICE, box) or []
            if body.encode() in raw]
    tap.ok(len(msgs) == 1, "Sent: one copy in the mailbox marked \\Sent "
           "(\"%s\", found by LIST, not by its name)" % box)
    tap.ok(msgs and b"\\Seen" in msgs[0][0], "Sent: ... flagged \\Seen",
           diag=str(msgs[0][0] if msgs else None))
    tap.ok(msgs and b"Message-ID:" in msgs[0][1] and b"To: " in
           msgs[0][1], "Sent: ... the whole mail as sent")

    # -- turned off --
    u = users.new()
    r = register(u, fields(env, "localhost", env.dsub, "starttls",
                           extra=[("sent_copy", "0")]))
    online(u)
    body = "not kept %d" % time.time_ns()
    ok = send_and_wait(tap, env, u, body, "sent-2")
    time.sleep(2)
    tap.ok(ok and not any(body.encode() in raw for _, raw in
                          env.mailbox(ALICE, box) or []),
           "Sent: with the setting off, the reply goes and no copy is kept")

    # -- no Sent mailbox at all; then a read-only one --
    for label, who in (("a Sent mailbox that does not exist",
                        "carol@example.test"),
                       ("a read-only Sent mailbox", "victim@example.net")):
        if who == "victim@example.net":
            env.create_mailbox(who, box)
            d = env.maildir(who, box)
            for root, dirs, files in os.walk(d):
                os.chmod(root, 0o555)
        u = users.new()
        r = register(u, fields(env, "localhost", env.dsub, "starttls",
                               email=who))
        tap.ok(r.type == "result", "%s: registration" % label,
               diag=err_text(r))
        online(u)
        since = u.mark()
        sent = [send_and_wait(tap, env, u, "%s %d %d" % (who, i,
                                                        time.time_ns()),
                              "nosent-%s-%d" % (who, i)) for i in range(2)]
        tap.ok(all(sent), "%s: both replies go out all the same" % label)
        told = u.wait(from_mailbox(who, "Sent folder"), 10, since)
        time.sleep(1)
        n = len(u.all(from_mailbox(who, "Sent folder"), since))
        tap.ok(told is not None and n == 1, "%s: the user is told once "
               "(%d message(s)): %s" % (label, n, told.find(C + "body").text
                                        if told is not None else None))


NS_MARKERS = "urn:xmpp:chat-markers:0"


def send_marker(u, to, mid):
    from xml.etree import ElementTree as ET
    m = u.xmpp.make_message(mto=to, mtype="chat")
    m.xml.append(ET.fromstring("<displayed xmlns='%s' id='%s'/>"
                               % (NS_MARKERS, mid)))
    m.send()
    u.pump(0.1)


def seen(env, needle):
    f = env.flags(ALICE, needle.encode())
    return f is not None and b"\\Seen" in f


def read_markers(tap, env, users):
    u = users.new()
    r = register(u, fields(env, "localhost", env.dsub, "starttls"))
    tap.ok(r.type == "result", "markers: registration", diag=err_text(r))
    online(u)
    d = u.iq(DOMAIN, "<query xmlns='http://jabber.org/protocol/disco#info'/>")
    feats = [f.get("var") for f in d.findall(
        "{http://jabber.org/protocol/disco#info}query/"
        "{http://jabber.org/protocol/disco#info}feature")]
    tap.ok(NS_MARKERS in feats, "disco on the gateway advertises chat "
           "markers", diag=str(feats))
    time.sleep(1)
    needle = "read me %d" % time.time_ns()
    since = u.mark()
    env.deliver(ALICE, mail("marker test", needle + "\r\n")[0])
    el = u.wait(chat_from(BOB_JID, needle), 15, since)
    mk = el.find("{%s}markable" % NS_MARKERS) if el is not None else None
    tap.ok(el is not None and el.get("id") and mk is not None,
           "a delivered mail carries an id and <markable/>",
           diag=str(el.get("id") if el is not None else None))
    tap.ok(not seen(env, needle), "... and is unread in the mailbox")
    # -- a marker for an id that was never a mail --
    for bogus in ("never-a-mail", "mail-0000000000000000", "x" * 300):
        send_marker(u, BOB_JID, bogus)
    time.sleep(2)
    tap.ok(not seen(env, needle), "markers for ids that were never a mail "
           "are ignored (the mail stays unread)")
    # -- the real one --
    if el is not None:
        t = time.monotonic()
        send_marker(u, BOB_JID, el.get("id"))
        ok = cwtest.wait_until(lambda: seen(env, needle), 10, 0.2)
        tap.ok(ok, "a displayed marker sets \\Seen on that mail (%.2f s)"
               % (time.monotonic() - t))
    # -- the setting off --
    u2 = users.new()
    r = register(u2, fields(env, "localhost", env.dsub, "starttls",
                            extra=[("read_marker", "0")]))
    online(u2)
    time.sleep(1)
    needle = "stays unread %d" % time.time_ns()
    since = u2.mark()
    env.deliver(ALICE, mail("marker off", needle + "\r\n")[0])
    el = u2.wait(chat_from(BOB_JID, needle), 15, since)
    tap.ok(el is not None and el.find("{%s}markable" % NS_MARKERS) is None,
           "read_marker off: no <markable/>")
    if el is not None and el.get("id"):
        send_marker(u2, BOB_JID, el.get("id"))
    time.sleep(2)
    tap.ok(not seen(env, needle), "read_marker off: the mail stays unread")


def rawlog_count(env, suffix, needle):
    n = 0
    for name in os.listdir(env.rawlog):
        if name.endswith(suffix):
            with open(os.path.join(env.rawlog, name), "rb") as f:
                n += f.read().count(needle)
    return n


def quiet_idle(tap, env, users, cw):
    """Dovecot says "* OK Still here" every second (idle_notify)."""
    u = users.new()
    r = register(u, fields(env, "localhost", env.dsub, "starttls"))
    tap.ok(r.type == "result", "IDLE: registration", diag=err_text(r))
    online(u)
    time.sleep(2)
    fetch0 = rawlog_count(env, ".in", b"FETCH")
    done0 = rawlog_count(env, ".in", b"DONE")
    ka0 = rawlog_count(env, ".out", b"Still here")
    time.sleep(6)
    fetch1 = rawlog_count(env, ".in", b"FETCH")
    done1 = rawlog_count(env, ".in", b"DONE")
    ka1 = rawlog_count(env, ".out", b"Still here")
    tap.ok(ka1 - ka0 >= 4, "IDLE: Dovecot sent keepalives (%d in 6 s, "
           "over every idling session)" % (ka1 - ka0))
    tap.ok(fetch1 == fetch0 and done1 == done0, "IDLE: the keepalives "
           "caused no FETCH and no DONE (FETCH %d -> %d, DONE %d -> %d)"
           % (fetch0, fetch1, done0, done1))
    tap.ok(cw.wait_for(r"IDLE: the server's keepalive read, no resync", 1,
                       5), "IDLE: causeway read them (its log)")
    needle = "after keepalives %d" % time.time_ns()
    since = u.mark()
    t = time.monotonic()
    env.deliver(ALICE, mail("idle still works", needle + "\r\n")[0])
    el = u.wait(chat_from(BOB_JID, needle), 10, since)
    tap.ok(el is not None, "IDLE: a mail after the keepalives still arrives "
           "at once (%.2f s)" % (time.monotonic() - t))
    tap.ok(rawlog_count(env, ".in", b"FETCH") > fetch1, "IDLE: ... its "
           "EXISTS started a FETCH")


def hostile_idle(tap, env, users, good):
    """What a server may say during IDLE, against fakeimap.py."""
    fk = FakeImap(*good[:2], tap=tap)
    fk.start()
    try:
        u = users.new()
        r = register(u, [("email", "dave@fake.test"),
                         ("imap_host", "localhost"), ("imap_port", fk.port),
                         ("imap_security", "tls"), ("imap_user", "dave"),
                         ("imap_password", "fakepw"),
                         ("smtp_host", "localhost"), ("smtp_port", env.dsub),
                         ("smtp_security", "starttls"),
                         ("smtp_user", ALICE), ("smtp_password", "alicepw")])
        tap.ok(r.type == "result", "hostile IDLE: registration against the "
               "fake IMAP server", diag=err_text(r))
        online(u)
        idle = cwtest.wait_until(lambda: fk.idle_say(b"") > 0, 10)
        logins = len(fk.saw(rb"LOGIN"))
        fetches = len(fk.saw(rb"UID FETCH"))
        for text in (b"* OK Still here\r\n", b"* 7 RECENT\r\n",
                     b"* FLAGS (\\Seen \\Draft)\r\n",
                     b"* OK [ALERT] read me\r\n"):
            fk.idle_say(text)
            time.sleep(0.3)
        time.sleep(1)
        tap.ok(idle and len(fk.saw(rb"UID FETCH")) == fetches and
               not fk.saw(rb"^DONE"), "hostile IDLE: keepalives, RECENT, "
               "FLAGS and an ALERT start no round (UID FETCH %d -> %d)"
               % (fetches, len(fk.saw(rb"UID FETCH"))))
        # An unsolicited FETCH with a literal: a round, the literal read
        # past, the connection kept.
        fk.idle_say(b"* 1 FETCH (UID 1 BODY[HEADER] {12}\r\nX-Test: 1\r\n"
                    b")\r\n")
        ok = cwtest.wait_until(lambda: len(fk.saw(rb"UID FETCH")) > fetches,
                               5)
        time.sleep(1)
        tap.ok(ok and len(fk.saw(rb"LOGIN")) == logins, "hostile IDLE: a "
               "FETCH with a literal starts a round on the same connection")
        # A line of 100 KB: refused (the connection is given up), and
        # causeway comes back.
        fk.idle_say(b"* OK " + b"x" * 100000 + b"\r\n")
        back = cwtest.wait_until(lambda: len(fk.saw(rb"LOGIN")) > logins,
                                 15)
        tap.ok(back, "hostile IDLE: a 100 KB line drops the connection and "
               "causeway logs in again")
        since = u.mark()
        cwtest.wait_until(lambda: fk.idle_say(b"") > 0, 10)
        fk.add_mail(b"From: Carol <carol@else.test>\r\nTo: dave@fake.test"
                    b"\r\nSubject: still here\r\nMessage-ID: <h%d@else.test>"
                    b"\r\n\r\nafter the hostile lines\r\n" % time.time_ns())
        el = u.wait(chat_from("carol\\40else.test@" + DOMAIN, "hostile"),
                    15, since)
        tap.ok(el is not None, "hostile IDLE: mail still arrives after it")
    finally:
        fk.stop()


def run_server(tap, cls):
    label = cls.name
    t_server = time.monotonic()
    env = MailEnv(tap=tap, submission=True, idle_notify=1, ip_san=True)
    env.start()
    tap.ok(True, "%s: dovecot (with submission) and postfix up (%.1f s)"
           % (label, time.monotonic() - t_server))
    certdir = cwtest.make_tempdir("cwtest-certs-")
    good = make_cert(certdir, "good")
    bad = make_cert(certdir, "untrusted")
    ca_file = os.path.join(certdir, "ca.pem")
    with open(ca_file, "w") as f:
        for path in (env.cert, good[2]):
            f.write(open(path).read())
    server = cls(domain=DOMAIN, tap=tap)
    cw = None
    users = None
    try:
        server.start()
        opts = {"linger": 0, "ca_file": ca_file, "timeout": 5,
                "smtp_retry": 1, "idle_refresh": 60}
        sections = [("mail-domain example.test",
                     {"imap_host": "localhost", "imap_port": env.imaps,
                      "imap_security": "tls", "smtp_host": "localhost",
                      "smtp_port": env.dsubs, "smtp_security": "tls"})]
        cw = Causeway(server, tap=tap, name="causeway-sub", backend="email",
                      options=opts, sections=sections,
                      general={"destinations_allow": "127.0.0.0/8"})
        cw.start()
        if not tap.ok(cw.wait_for(HANDSHAKE, 1, 20), "%s: causeway attached"
                      % label):
            return
        users = Users(server)
        real_submission(tap, env, users)
        sent_copy(tap, env, users)
        read_markers(tap, env, users)
        quiet_idle(tap, env, users, cw)
        hostile_idle(tap, env, users, good)
        fake_cases(tap, env, users, (good, bad))
        users.close()
        cw.stop()
        cw = Causeway(server, tap=tap, name="causeway-sub2",
                      backend="email", options=opts, sections=sections)
        cw.start()
        if tap.ok(cw.wait_for(HANDSHAKE, 1, 20), "%s: causeway restarted "
                  "with the default destination policy" % label):
            default_policy(tap, env, users, cw)
        tap.ok(cw.alive(), "%s: causeway stayed up" % label)
    except Exception as e:
        cwtest.mark_failed()
        tap.bail("%s: unexpected exception: %s" % (label, e), e)
    finally:
        if users is not None:
            users.close()
        cwtest.stop_all(tap, label, server, t_server, cw, env)


def main():
    return cwtest.main_per_server("email submission tests", run_server,
                                  requires=("dovecot", "postfix"))


if __name__ == "__main__":
    sys.exit(main())
