#!/usr/bin/env python3
"""Component tests of the SMS backend with its Kannel driver, without
Kannel: this program plays the XMPP server (harness.FakeServer), Kannel's
sendsms interface (a small HTTP server that records each request and
answers what the test tells it) and Kannel's callbacks (HTTP requests to
causeway's listener).

Covers registration (assigned, not assigned, claimed by another user),
addresses, outgoing texts (parameters, GSM-7 / UCS-2, too long, 5xx then
retry, 4xx), delivery reports (receipts only when asked, failures,
unknown refs), incoming texts (codings, unknown numbers), hostile
callbacks (no or wrong token, 1 MB text, bad percent-encoding, missing
fields, unknown coding), a burst of 1,000 texts in a second, texts while
the XMPP server is away, and a restart with a text in the outbox."""

import http.client
import http.server
import os
import queue
import re
import signal
import socket
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (NS_COMPONENT, Causeway, FakeServer, Tap,  # noqa: E402
                     error_condition, q)

GW = "sms.localhost"
REG = "jabber:iq:register"
GATEWAY = "jabber:iq:gateway"
RECEIPTS = "urn:xmpp:receipts"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
TOKEN = "Tok3n-for-callbacks_0123456789"
ALICE_NO = "+15551230001"
BOB_NO = "+15551230002"
PHONE = "+15551234567"

tap = Tap()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class FakeKannel:
    """Kannel's sendsms: records each GET's query and answers from a
    script (code, body), by default 202 "0: Accepted for delivery"."""

    def __init__(self):
        self.requests = queue.Queue()
        self.script = []
        self.lock = threading.Lock()
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                params = urllib.parse.parse_qs(url.query, keep_blank_values=True,
                                               strict_parsing=True)
                with outer.lock:
                    code, body = outer.script.pop(0) if outer.script else \
                        (202, "0: Accepted for delivery")
                outer.requests.put((url.path, {k: v[0] for k, v in params.items()}))
                data = body.encode()
                self.send_response(code)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        class Quiet(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass        # causeway killed mid-request: not our concern

        self.httpd = Quiet(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def answer(self, *pairs):
        with self.lock:
            self.script.extend(pairs)

    def next(self, timeout=5):
        try:
            return self.requests.get(timeout=timeout)
        except queue.Empty:
            return None

    def drain(self, wait=0.3):
        out = []
        while True:
            r = self.next(wait)
            if r is None:
                return out
            out.append(r)

    def close(self):
        self.httpd.shutdown()


def callback(port, path, timeout=10):
    """GET path on causeway's listener: (status, body), or (None, why)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read().decode("utf-8", "replace")
    except (OSError, http.client.HTTPException) as e:
        return None, repr(e)
    finally:
        c.close()


def enc(s):
    return urllib.parse.quote(s, safe="")


def mo_path(frm, to, text, coding="0", charset="UTF-8", token=TOKEN, extra=""):
    t = text if isinstance(text, str) else None
    text_q = enc(t) if t is not None else urllib.parse.quote_from_bytes(text, safe="")
    return ("/kannel/%s/mo?from=%s&to=%s&text=%s&coding=%s&charset=%s"
            "&smsc=FAKE&id=x&ts=%s%s" % (token, enc(frm), enc(to), text_q,
                                          coding, charset,
                                          enc("2026-01-02 03:04:05"), extra))


def body_of(st):
    b = st.find(q(NS_COMPONENT, "body")) if st is not None else None
    return b.text if b is not None else None


def error_text(st):
    t = st.find(".//{%s}text" % STANZAS) if st is not None else None
    return t.text if t is not None else ""


def form(fields):
    out = ("<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' "
           "type='hidden'><value>%s</value></field>" % REG)
    for k, v in fields.items():
        out += "<field var='%s'><value>%s</value></field>" % (k, v)
    return out + "</x>"


def register(conn, who, phone, id_):
    return conn.iq("<query xmlns='%s'>%s</query>" % (REG, form({"phone": phone})),
                   type_="set", frm=who, id_=id_, timeout=5)


def messages(conn, timeout, pred=None):
    out = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        st = conn.next_stanza(max(0.05, deadline - time.time()),
                              lambda s: s.tag == q(NS_COMPONENT, "message")
                              and (pred is None or pred(s)))
        if st is None:
            break
        out.append(st)
    return out


def send_msg(conn, to_local, body, id_, receipt=False, frm="alice@localhost/res"):
    conn.send("<message type='chat' from='%s' to='%s@%s' id='%s'><body>%s</body>%s"
              "</message>" % (frm, to_local, GW, id_, body,
                              "<request xmlns='%s'/>" % RECEIPTS if receipt else ""))


def config(kannel, listen):
    return ("driver = kannel\n"
            "kannel_url = http://127.0.0.1:%d/cgi-bin/sendsms\n"
            "kannel_user = gwuser\n"
            "kannel_password = gw pass&x\n"
            "listen = 127.0.0.1:%d\n"
            "callback_url = http://127.0.0.1:%d/\n"
            "callback_token = %s\n"
            "country_code = 1\n"
            "max_parts = 3\n"
            "numbers = %s alice@localhost, %s localhost\n"
            "admins = admin@localhost\n"
            % (kannel.port, listen, listen, TOKEN, ALICE_NO, BOB_NO))


def test_config_errors():
    srv = FakeServer(domain=GW)
    cw = Causeway(srv.port, domain=GW, backend="sms",
                  extra="driver = kannel\nnumbers = +15551230001 a@b\n")
    cw.start()
    rc = cw.wait_exit(10)
    log = cw.log_text()
    tap.check(rc not in (None, 0) and "needs kannel_url" in log
              and "needs callback_token" in log,
              "a kannel driver without kannel_url, callback_token...: a "
              "config error naming the keys", log[-800:])
    cw.close()
    cw = Causeway(srv.port, domain=GW, backend="sms",
                  extra="driver = kannel\nkannel_url = http://127.0.0.1:1/\n"
                  "listen = 127.0.0.1:1\ncallback_url = http://x\n"
                  "callback_token = short\nnumbers = +1555 alice@localhost\n")
    cw.start()
    rc = cw.wait_exit(10)
    log = cw.log_text()
    tap.check(rc not in (None, 0) and "callback_token must be" in log
              and "not a phone number" in log,
              "a short token and a bad number in numbers: config errors",
              log[-800:])
    cw.close()
    srv.close()


def test_registration(conn, cw):
    res = register(conn, "alice@localhost/res", "+1 555 123 0009", "r1")
    tap.check(error_condition(res) == ("cancel", "not-allowed")
              and "not assigned" in error_text(res),
              "registering a number not assigned to the user: not-allowed "
              "with a sentence", error_text(res))
    for i, bad in enumerate(["+", "++1", "1" * 40, "call-me", "12"]):
        res = register(conn, "alice@localhost/res", bad, "rb%d" % i)
        tap.check(error_condition(res) == ("modify", "not-acceptable")
                  and "not a phone number" in error_text(res),
                  "registering %r: not-acceptable" % bad, error_text(res))
    res = register(conn, "alice@localhost/res", "(555) 123-0001", "r2")
    tap.check(res is not None and res.get("type") == "result",
              "registering an assigned number typed nationally: accepted",
              res is not None and res.attrib)
    res = register(conn, "bob@localhost/res", BOB_NO, "r3")
    tap.check(res is not None and res.get("type") == "result",
              "a number assigned to a domain: a user of it may claim it")
    res = register(conn, "carol@localhost/res", BOB_NO, "r4")
    tap.check(error_condition(res) == ("cancel", "conflict")
              and "another user" in error_text(res),
              "a number another user holds: conflict", error_text(res))
    res = register(conn, "bob@localhost/res", ALICE_NO, "r5")
    tap.check(error_condition(res) == ("cancel", "not-allowed"),
              "another user's own number: not-allowed")
    messages(conn, 0.5)


CMDS = "http://jabber.org/protocol/commands"
CAROL_NO = "+15551230009"


def command(conn, who, node, fields, id_):
    """Runs an ad-hoc command with one form: (status, note type, note)."""
    res = conn.iq("<command xmlns='%s' node='%s' action='execute'/>"
                  % (CMDS, node), type_="set", frm=who, id_=id_ + "a")
    cmd = res.find(q(CMDS, "command")) if res is not None else None
    if cmd is None:
        return (res.get("type") if res is not None else None, None, None)
    if cmd.get("status") == "completed":        # no form to fill
        note = cmd.find(q(CMDS, "note"))
        return ("completed", note.get("type") if note is not None else None,
                note.text if note is not None else None)
    res = conn.iq("<command xmlns='%s' node='%s' sessionid='%s'>%s</command>"
                  % (CMDS, node, cmd.get("sessionid"), form(fields)),
                  type_="set", frm=who, id_=id_ + "b")
    cmd = res.find(q(CMDS, "command")) if res is not None else None
    note = cmd.find(q(CMDS, "note")) if cmd is not None else None
    return (cmd.get("status") if cmd is not None else None,
            note.get("type") if note is not None else None,
            note.text if note is not None else None)


def test_admin_numbers(conn, cw, listen):
    admin = "admin@localhost/console"
    got = command(conn, "alice@localhost/res", "sms-assign",
                  {"phone": CAROL_NO, "jid": "alice@localhost"}, "c0")
    tap.check(got[0] == "error", "a user cannot assign numbers", got)
    got = command(conn, admin, "sms-assign",
                  {"phone": "555 123 0009", "jid": "carol@localhost"}, "c1")
    tap.check(got[:2] == ("completed", "info") and CAROL_NO in got[2],
              "an admin assigns a number (typed nationally) to a user", got)
    res = register(conn, "carol@localhost/res", CAROL_NO, "rc1")
    tap.check(res is not None and res.get("type") == "result",
              "the user may now register it")
    got = command(conn, admin, "sms-assign",
                  {"phone": CAROL_NO, "jid": "dave@localhost"}, "c2")
    tap.check(got[:2] == ("completed", "error") and "carol@localhost" in got[2],
              "assigning a held number to someone else: refused, naming the "
              "holder", got)
    got = command(conn, admin, "sms-assign",
                  {"phone": "letters", "jid": "dave@localhost"}, "c3")
    tap.check(got[:2] == ("completed", "error"),
              "assigning something that is no number: refused", got)
    got = command(conn, admin, "sms-numbers", {}, "c4")
    tap.check(got[0] == "completed" and got[2] is not None
              and "%s -> carol@localhost (command), held by carol@localhost"
              % CAROL_NO in got[2]
              and "%s -> alice@localhost (configuration)" % ALICE_NO in got[2],
              "an admin lists the numbers, who may claim them and who holds "
              "them", got)
    status, _ = callback(listen, mo_path("+15559990000", CAROL_NO, "hi carol"))
    msg = messages(conn, 2, lambda m: m.get("to") == "carol@localhost")
    tap.check(status == 200 and len(msg) == 1,
              "a text to the assigned number reaches its user", (status, msg))
    got = command(conn, admin, "sms-release", {"phone": CAROL_NO}, "c5")
    tap.check(got[:2] == ("completed", "info") and "carol@localhost" in got[2],
              "an admin releases the number from its holder", got)
    status, _ = callback(listen, mo_path("+15559990000", CAROL_NO, "gone?"))
    tap.check(status == 404, "a text to a released number is refused (404)",
              status)
    res = register(conn, "carol@localhost/res", CAROL_NO, "rc2")
    tap.check(error_condition(res) == ("cancel", "not-allowed"),
              "a released number cannot be registered again")
    messages(conn, 0.3)


def test_addresses(conn, cw, kannel):
    def lookup(text, id_):
        return conn.iq("<query xmlns='%s'><prompt>%s</prompt></query>"
                       % (GATEWAY, text), type_="set", id_=id_)
    for i, (typed, want) in enumerate([("+1 (555) 123-4567", PHONE),
                                       ("555 123 4567", PHONE),
                                       ("72460", "72460")]):
        res = lookup(typed, "gw%d" % i)
        jid = res.find(".//{%s}jid" % GATEWAY) if res is not None else None
        tap.check(jid is not None and jid.text == "%s@%s" % (want, GW),
                  "jabber:iq:gateway turns %r into %s@%s" % (typed, want, GW),
                  jid.text if jid is not None else res)
    for i, bad in enumerate(["+", "++1", "1" * 40, "letters"]):
        res = lookup(bad, "gwb%d" % i)
        tap.check(error_condition(res) == ("modify", "not-acceptable"),
                  "jabber:iq:gateway refuses %r" % bad)
    conn.send("<presence from='alice@localhost/res' to='%s'/>" % GW)
    time.sleep(0.5)
    kannel.drain(0.1)
    for i, bad in enumerate(["+", "++1", "1" * 40, "letters", "15551234567"]):
        send_msg(conn, bad, "hi", "bad%d" % i)
        err = conn.next_stanza(5, lambda s: s.get("id") == "bad%d" % i)
        tap.check(error_condition(err) == ("modify", "jid-malformed"),
                  "a text to %r@%s: jid-malformed" % (bad, GW),
                  err is not None and err.attrib)
    tap.check(kannel.next(0.5) is None, "... and nothing reached Kannel")


def test_outgoing(conn, cw, kannel, listen):
    send_msg(conn, PHONE, "hello there", "m1", receipt=True)
    r = kannel.next(5)
    p = r[1] if r else {}
    dlr = p.get("dlr-url", "")
    ok = (r is not None and r[0] == "/cgi-bin/sendsms"
          and p.get("username") == "gwuser" and p.get("password") == "gw pass&x"
          and p.get("from") == ALICE_NO and p.get("to") == PHONE
          and p.get("text") == "hello there" and p.get("coding") == "0"
          and p.get("charset") == "UTF-8" and p.get("dlr-mask") == "31"
          and dlr.startswith("http://127.0.0.1:%d/kannel/%s/dlr?ref=" % (listen, TOKEN))
          and "status=%d" in dlr)
    tap.check(ok, "a text goes to sendsms with user, password, from, to, "
              "text, coding=0, charset=UTF-8, dlr-mask=31 and a dlr-url "
              "with the token", r)
    ref1 = urllib.parse.parse_qs(urllib.parse.urlsplit(dlr).query).get("ref", [""])[0]
    tap.check(cw.wait_log("text %s accepted" % ref1, timeout=5),
              "Kannel's 202 counts as accepted")

    st, _ = callback(listen, "/kannel/%s/dlr?ref=%s&status=8&answer=ACK%%2F" % (TOKEN, ref1))
    got = messages(conn, 0.7)
    tap.check(st == 200 and got == [],
              "a DLR 8 (SMSC accepted): 200, nothing for the user")
    st, _ = callback(listen, "/kannel/%s/dlr?ref=%s&status=1&answer=" % (TOKEN, ref1))
    rec = conn.next_stanza(5, lambda s: s.find(q(RECEIPTS, "received")) is not None)
    tap.check(st == 200 and rec is not None
              and rec.find(q(RECEIPTS, "received")).get("id") == "m1"
              and rec.get("from") == "%s@%s" % (PHONE, GW)
              and rec.get("to") == "alice@localhost/res",
              "a DLR 1 (delivered): <received id='m1'/> from the phone's JID",
              rec is not None and rec.attrib)
    st, _ = callback(listen, "/kannel/%s/dlr?ref=%s&status=1" % (TOKEN, ref1))
    tap.check(st == 200 and messages(conn, 0.7) == [],
              "the same DLR again: 200, no second receipt")

    send_msg(conn, PHONE, "no receipt wanted", "m2")
    r = kannel.next(5)
    ref2 = urllib.parse.parse_qs(urllib.parse.urlsplit(
        r[1]["dlr-url"]).query)["ref"][0] if r else "x"
    tap.check(ref2 != ref1, "every text gets its own ref")
    cw.wait_log("text %s accepted" % ref2, timeout=5)
    st, _ = callback(listen, "/kannel/%s/dlr?ref=%s&status=1" % (TOKEN, ref2))
    tap.check(st == 200 and messages(conn, 1.0) == [],
              "a DLR for a text that asked for no receipt: no <received/>")

    emoji = "Grüße 😀 " + "x" * 80
    send_msg(conn, PHONE, emoji, "m3")
    r = kannel.next(5)
    tap.check(r is not None and r[1].get("coding") == "2"
              and r[1].get("charset") == "UTF-8" and r[1].get("text") == emoji,
              "a text with an emoji: coding=2 and charset=UTF-8, the text intact",
              r and (r[1].get("coding"), r[1].get("text")))

    send_msg(conn, PHONE, "a" * 500, "m4")
    err = conn.next_stanza(5, lambda s: s.get("id") == "m4")
    tap.check(error_condition(err) == ("modify", "not-acceptable")
              and "limit is 3" in error_text(err) and "4" in error_text(err),
              "a 500-character text (4 parts) over max_parts 3: error naming "
              "the limit and the count", error_text(err))
    tap.check(kannel.next(0.5) is None, "... and nothing was sent, not even a cut text")
    send_msg(conn, PHONE, "a" * 459, "m4b")
    r = kannel.next(5)
    tap.check(r is not None and len(r[1].get("text", "")) == 459,
              "459 GSM characters (3 parts of 153) go out whole")

    kannel.answer((503, "Temporal failure, try again later."))
    t0 = time.time()
    send_msg(conn, PHONE, "try again", "m5", receipt=True)
    first = kannel.next(5)
    second = kannel.next(12)
    tap.check(first is not None and second is not None
              and first[1]["dlr-url"] == second[1]["dlr-url"]
              and second[1]["text"] == "try again" and time.time() - t0 >= 4,
              "a 503 from Kannel: the same text again after ~5 s (%.1f s)"
              % (time.time() - t0))
    ref5 = urllib.parse.parse_qs(urllib.parse.urlsplit(
        second[1]["dlr-url"]).query)["ref"][0] if second else "x"
    tap.check(cw.wait_log("text %s accepted" % ref5, timeout=5)
              and conn.next_stanza(0.5, lambda s: s.get("id") == "m5") is None,
              "... accepted then, and the user saw no error")
    callback(listen, "/kannel/%s/dlr?ref=%s&status=2&answer=%s" % (
        TOKEN, ref5, enc("absent subscriber")))
    err = conn.next_stanza(5, lambda s: s.get("id") == "m5")
    tap.check(error_condition(err) is not None
              and "absent subscriber" in error_text(err),
              "a DLR 2 (failed): an error message for the stanza id with "
              "the network's words", error_text(err))

    kannel.answer((403, "Authorization failed for sendsms"))
    send_msg(conn, PHONE, "never", "m6")
    err = conn.next_stanza(8, lambda s: s.get("id") == "m6")
    tap.check(error_condition(err) is not None
              and "Authorization failed" in error_text(err),
              "a 403 from Kannel: an error stanza with Kannel's words",
              error_text(err))
    r = kannel.next(5)
    tap.check(r is not None and r[1].get("text") == "never"
              and kannel.next(6.5) is None,
              "... and it is not tried again")


def test_incoming(conn, cw, listen):
    st, _ = callback(listen, mo_path("+1 555 987 6543", ALICE_NO, "hi alice"))
    m = conn.next_stanza(5, lambda s: body_of(s) == "hi alice")
    tap.check(st == 200 and m is not None
              and m.get("from") == "+15559876543@%s" % GW
              and m.get("to") == "alice@localhost" and m.get("type") == "chat",
              "an MO to alice's number: 200, a chat message from the "
              "sender's E.164 JID to alice's bare JID", (st, m is not None and m.attrib))
    delay = m.find("{urn:xmpp:delay}delay") if m is not None else None
    tap.check(delay is not None and delay.get("stamp", "").startswith("2026-01-02T03:04:05"),
              "Kannel's ts becomes a XEP-0203 delay", delay is not None and delay.attrib)

    ucs = "Привет 😀".encode("utf-16-be")
    st, _ = callback(listen, mo_path("+15559876543", ALICE_NO, ucs, coding="2",
                                     charset="UTF-16BE"))
    m = conn.next_stanza(5, lambda s: body_of(s) == "Привет 😀")
    tap.check(st == 200 and m is not None,
              "an MO with coding=2 in UTF-16BE: decoded")
    st, _ = callback(listen, mo_path("+15559876543", BOB_NO, "héllo bob",
                                     coding="2", charset="UTF-8"))
    m = conn.next_stanza(5, lambda s: body_of(s) == "héllo bob")
    tap.check(st == 200 and m is not None and m.get("to") == "bob@localhost",
              "an MO with coding=2 recoded to UTF-8 (mo-recode): to bob")

    st, _ = callback(listen, mo_path("+15559876543", "+15551239999", "lost?"))
    tap.check(st == 404 and messages(conn, 0.5) == []
              and cw.wait_log("which no user holds", timeout=2),
              "an MO to a number nobody holds: 404 (logged), nothing delivered")


def delivered_count(cw):
    return len(re.findall(r"text from \S+ delivered", cw.log_text()))


def test_hostile(conn, cw, listen):
    before = delivered_count(cw)
    cases = [
        ("no token", "/kannel/mo?from=%2B15559876543&to=%2B15551230001&text=x", 403),
        ("an empty token", "/kannel//mo?from=%2B15559876543&to=%2B15551230001&text=x", 403),
        ("a wrong token", mo_path("+15559876543", ALICE_NO, "x", token="Tok3n-for-callbacks_0123456788"), 403),
        ("a token one character short", mo_path("+15559876543", ALICE_NO, "x", token=TOKEN[:-1]), 403),
        ("a wrong token on dlr", "/kannel/nope/dlr?ref=1&status=1", 403),
        ("invalid percent-encoding", mo_path("+15559876543", ALICE_NO, "x") .replace("text=x", "text=%zz%4"), 400),
        ("a truncated escape", mo_path("+15559876543", ALICE_NO, "x").replace("text=x", "text=ab%4"), 400),
        ("no from", "/kannel/%s/mo?to=%%2B15551230001&text=x" % TOKEN, 400),
        ("no text", "/kannel/%s/mo?from=1234567&to=%%2B15551230001" % TOKEN, 400),
        ("a from of 100 digits", mo_path("1" * 100, ALICE_NO, "x"), 400),
        ("a NUL in from", mo_path("+1555\x009876543", ALICE_NO, "x"), 400),
        ("an unknown coding", mo_path("+15559876543", ALICE_NO, "x", coding="7"), 400),
        ("a coding that is no number", mo_path("+15559876543", ALICE_NO, "x", coding="utf8"), 400),
        ("a sender like ++1", mo_path("++1", ALICE_NO, "x"), 404),
        ("a sender of letters", mo_path("letters", ALICE_NO, "x"), 404),
        ("a dlr without status", "/kannel/%s/dlr?ref=abc" % TOKEN, 400),
        ("another path", "/kannel/%s/admin" % TOKEN, 404),
        ("the root", "/", 404),
    ]
    for what, path, want in cases:
        st, body = callback(listen, path)
        tap.check(st == want, "a callback with %s: %d" % (what, want), (st, body))
    big = "/kannel/%s/mo?from=%%2B15559876543&to=%%2B15551230001&text=%s" % (
        TOKEN, "A" * (1024 * 1024))
    st, body = callback(listen, big)
    tap.check(st in (400, 413, 414, None) and cw.alive(),
              "a callback with a 1 MB text: refused (%s), causeway alive" % st, body)
    mid = "/kannel/%s/mo?from=%%2B15559876543&to=%%2B15551230001&text=%s" % (
        TOKEN, "B" * 20000)
    st, body = callback(listen, mid)
    tap.check(st in (413, 414), "a callback with a 20 KB text: refused (%s)" % st, body)
    post = http.client.HTTPConnection("127.0.0.1", listen, timeout=5)
    post.request("POST", mo_path("+15559876543", ALICE_NO, "posted"), body="x" * 10)
    st = post.getresponse().status
    post.close()
    tap.check(st in (405, 501), "a POST: refused (%s)" % st)
    st, _ = callback(listen, "/kannel/%s/dlr?ref=zz9never&status=1" % TOKEN)
    st2, _ = callback(listen, "/kannel/%s/dlr?ref=%s&status=2" % (TOKEN, "R" * 40))
    tap.check(st == 200 and st2 == 200 and cw.wait_log("zz9never", timeout=2),
              "DLRs for refs that never existed: 200, logged, nothing else")
    tap.check(messages(conn, 1.0) == [] and delivered_count(cw) == before,
              "none of these delivered anything")
    st, _ = callback(listen, mo_path("+15559876543", ALICE_NO, "still here"))
    tap.check(st == 200 and conn.next_stanza(5, lambda s: body_of(s) == "still here"),
              "the listener still works")


def test_burst(conn, cw, listen):
    n, threads = 1000, 10
    results = []
    lock = threading.Lock()

    def worker(k):
        c = http.client.HTTPConnection("127.0.0.1", listen, timeout=20)
        mine = []
        for i in range(k, n, threads):
            try:
                c.request("GET", mo_path("+15559876543", ALICE_NO, "burst %d" % i))
                r = c.getresponse()
                r.read()
                mine.append(r.status)
            except (OSError, http.client.HTTPException):
                c.close()
                c = http.client.HTTPConnection("127.0.0.1", listen, timeout=20)
                mine.append(None)
        c.close()
        with lock:
            results.extend(mine)

    t0 = time.time()
    ts = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    elapsed = time.time() - t0
    seen = set()
    deadline = time.time() + 20
    while len(seen) < n and time.time() < deadline:
        st = conn.next_stanza(1.0, lambda s: (body_of(s) or "").startswith("burst "))
        if st is not None:
            seen.add(body_of(st))
    tap.check(results.count(200) == n and len(seen) == n and elapsed < 1.5,
              "a burst of 1,000 MO requests (%.2f s): all answered 200 and "
              "all 1,000 delivered" % elapsed,
              "200s: %d, delivered: %d" % (results.count(200), len(seen)))


def fd_count(cw):
    try:
        return len(os.listdir("/proc/%d/fd" % cw.proc.pid))
    except OSError:
        return -1


def raw_exchange(port, chunks, gap=0.0, wait=5.0):
    """Sends chunks (bytes) on one connection, gap seconds apart, then
    reads until the server closes or wait runs out: (answer bytes, seconds
    from connect to close or None if still open)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=wait)
    t0 = time.time()
    got = b""
    closed = None
    try:
        for c in chunks:
            s.sendall(c)
            if gap:
                time.sleep(gap)
        s.settimeout(0.2)
        end = t0 + wait
        while time.time() < end:
            try:
                d = s.recv(65536)
            except socket.timeout:
                continue
            if not d:
                closed = time.time() - t0
                break
            got += d
    except OSError:
        closed = time.time() - t0
    finally:
        s.close()
    return got, closed


def test_listener_flood(conn, cw, listen, kannel):
    """Idle connections to the callback listener cannot use up causeway's
    descriptors (shared with the XMPP and IRC connections): the listener
    holds at most listen_connections (64 by default) at once."""
    before = fd_count(cw)
    socks = []
    for _ in range(400):
        try:
            socks.append(socket.create_connection(("127.0.0.1", listen), timeout=5))
        except OSError:
            break
    time.sleep(1.0)
    during = fd_count(cw)
    tap.check(len(socks) == 400 and 0 <= during - before <= 64 + 2,
              "400 idle connections to the listener hold at most 64 of "
              "causeway's descriptors (%d -> %d)" % (before, during))
    conn.send("<presence from='alice@localhost/res' to='%s'/>" % GW)
    time.sleep(0.3)
    kannel.drain(0.1)
    send_msg(conn, PHONE, "during a flood", "mflood")
    r = kannel.next(5)
    tap.check(r is not None and r[1]["text"] == "during a flood",
              "... and causeway still sends texts meanwhile")
    for s in socks:
        s.close()
    time.sleep(0.5)
    st, _ = callback(listen, mo_path("+15559876543", ALICE_NO, "after the flood"))
    tap.check(st == 200 and conn.next_stanza(5, lambda s: body_of(s) == "after the flood"),
              "... and once they are gone a callback is answered again")
    tap.check(fd_count(cw) - before <= 2,
              "... and their descriptors are given back (%d -> %d)" % (before, fd_count(cw)))


def test_listener_huge(cw, listen):
    """Requests larger than the listener takes: refused with a status,
    the connection closed, causeway alive."""
    head = ("GET /kannel/%s/dlr?ref=a&status=1 HTTP/1.1\r\nHost: x\r\n" % TOKEN).encode()
    pad = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"a" * 1000) for i in range(200))
    got, closed = raw_exchange(listen, [head + pad + b"\r\n"])
    tap.check(got.startswith(b"HTTP/1.1 431") and closed is not None,
              "200 KB of headers: 431 and the connection closed", got[:80])
    got, closed = raw_exchange(listen, [b"GET /" + b"a" * (200 * 1024)])
    tap.check(got.startswith(b"HTTP/1.1 414") and closed is not None,
              "a request line of 200 KB with no end: 414 and closed", got[:80])
    got, closed = raw_exchange(listen, [head + b"Content-Length: 10000000\r\n\r\n" + b"x" * 65536])
    tap.check(got.startswith(b"HTTP/1.1 413") and closed is not None,
              "a GET announcing a 10 MB body: 413 before reading it, closed", got[:80])
    got, closed = raw_exchange(listen, [head + b"Transfer-Encoding: chunked\r\n\r\n"])
    tap.check(got[:12] in (b"HTTP/1.1 501", b"HTTP/1.1 400") and closed is not None,
              "a chunked GET: refused and closed", got[:80])
    got, closed = raw_exchange(listen, [b"GET /kannel/x HTTP/1.1\r\nBad Header\r\n\r\n"])
    tap.check(got.startswith(b"HTTP/1.1 400") and closed is not None,
              "a header line without a colon: 400 and closed", got[:80])
    # A client without the token cannot keep a slot by asking again on
    # a kept-alive connection: a refusal closes it.
    got, closed = raw_exchange(listen, [
        b"GET /kannel/wrong-token/dlr?ref=1&status=1 HTTP/1.1\r\n"
        b"Host: x\r\nConnection: keep-alive\r\n\r\n"])
    tap.check(got.startswith(b"HTTP/1.1 403") and closed is not None and
              closed < 2, "a keep-alive request with a wrong token: 403 "
              "and closed at once (%s s)" % closed, got[:80])
    # 2,000 pipelined requests from a client that reads nothing for a
    # second: causeway holds at most 64 KB of answers meanwhile, and
    # once the client reads, every request is answered, in order.
    n = 2000
    req = ("GET /kannel/%s/dlr?ref=zz7never&status=1 HTTP/1.1\r\n"
           "Host: x\r\n\r\n" % TOKEN).encode()
    s = socket.create_connection(("127.0.0.1", listen), timeout=10)
    s.sendall(req * n)
    time.sleep(1.0)
    got = b""
    s.settimeout(5)
    try:
        while got.count(b"HTTP/1.1 200") < n:
            d = s.recv(65536)
            if not d:
                break
            got += d
    except OSError:
        pass
    s.close()
    tap.check(got.count(b"HTTP/1.1 200") == n,
              "2,000 pipelined requests, read only after a second: all "
              "answered (%d)" % got.count(b"HTTP/1.1 200"))
    tap.check(cw.alive(), "causeway alive after the huge requests")


def test_listener_deadline(kannel):
    """One deadline per request, which bytes arriving do not extend: a
    client sending a byte every half second is cut off at
    listen_timeout; after a complete request on a kept-alive
    connection the next request gets its own deadline."""
    listen = free_port()
    srv = FakeServer(domain=GW)
    cw = Causeway(srv.port, domain=GW, backend="sms",
                  extra=config(kannel, listen) + "listen_timeout = 2\n")
    cw.start()
    conn = srv.accept()
    try:
        if not tap.check(conn is not None and conn.handshake_ok,
                         "causeway with listen_timeout = 2 connects",
                         cw.log_text()[-1500:]):
            return
        slow = [bytes([b]) for b in b"GET /kannel/%s/mo?from=1 HTTP/1.1\r\n" % TOKEN.encode()]
        t0 = time.time()
        got, closed = raw_exchange(listen, slow, gap=0.5, wait=8)
        tap.check(closed is not None and 1.5 <= closed <= 3.5,
                  "a client sending one byte every 0.5 s is cut off at the "
                  "2 s deadline (%s s)" % (None if closed is None else "%.1f" % closed),
                  got[:80])
        req = ("GET /kannel/%s/dlr?ref=zz8never&status=1 HTTP/1.1\r\n"
               "Host: x\r\n\r\n" % TOKEN).encode()
        got, closed = raw_exchange(listen, [req], wait=6)
        tap.check(got.startswith(b"HTTP/1.1 200") and closed is not None
                  and 1.5 <= closed <= 3.5,
                  "after a request answered 200 on a kept-alive connection, "
                  "silence is cut off at the next request's deadline (%s s)"
                  % (None if closed is None else "%.1f" % closed), got[:80])
        del t0
    finally:
        cw.close()
        srv.close()


def test_caps(kannel):
    """Per-user caps: at most outbox_max texts of one user wait to be
    sent, the next is refused with an error naming the limit; a text the
    gateway keeps refusing for the moment (HTTP 503) is retried only for
    retry_for seconds, then the user gets an error."""
    listen = free_port()
    srv = FakeServer(domain=GW)
    cw = Causeway(srv.port, domain=GW, backend="sms",
                  extra=config(kannel, listen) + "outbox_max = 3\n"
                  "retry_for = 4\n")
    cw.start()
    conn = srv.accept()
    try:
        if not tap.check(conn is not None and conn.handshake_ok,
                         "causeway with outbox_max = 3, retry_for = 4 "
                         "connects", cw.log_text()[-1500:]):
            return
        res = register(conn, "alice@localhost/res", ALICE_NO, "rc1")
        tap.check(res is not None and res.get("type") == "result",
                  "alice registers")
        conn.send("<presence from='alice@localhost/res' to='%s'/>" % GW)
        time.sleep(0.3)
        kannel.drain(0.1)
        with kannel.lock:
            kannel.script = [(503, "down")] * 100
        t0 = time.time()
        for i in range(4):
            send_msg(conn, PHONE, "capped %d" % i, "cap%d" % i)
        errs = messages(conn, 2, lambda s: s.get("type") == "error")
        fourth = [e for e in errs if e.get("id") == "cap3"]
        tap.check(len(fourth) == 1 and error_condition(fourth[0]) ==
                  ("wait", "resource-constraint") and "3" in
                  error_text(fourth[0]),
                  "the 4th text while 3 wait is refused: resource-constraint "
                  "naming the limit (%s)" % (error_text(fourth[0]) if fourth
                                             else None), [e.attrib for e in errs])
        late = []
        deadline = time.time() + 12
        while len(late) < 3 and time.time() < deadline:
            st = conn.next_stanza(0.5, lambda s: s.get("type") == "error" and
                                  s.get("id") in ("cap0", "cap1", "cap2"))
            if st is not None:
                late.append(st)
        ids = sorted(e.get("id") for e in late)
        elapsed = time.time() - t0
        tap.check(ids == ["cap0", "cap1", "cap2"] and 3.5 <= elapsed <= 9,
                  "texts the gateway keeps refusing fail after retry_for "
                  "(4 s) with an error to the user (%.1f s)" % elapsed, ids)
        tap.check(all("4 s" in error_text(e) or "retried" in error_text(e)
                      for e in late),
                  "... saying for how long it was tried (%s)" %
                  (error_text(late[0]) if late else None))
        with kannel.lock:
            kannel.script = []
        kannel.drain(0.5)
        send_msg(conn, PHONE, "after the caps", "cap9")
        r = kannel.next(5)
        tap.check(r is not None and r[1]["text"] == "after the caps",
                  "once the outbox emptied, a text goes out again")
    finally:
        cw.close()
        srv.close()


def test_server_away(srv, conn, cw, listen):
    conn.close()
    cw.wait_log("sms.localhost: connection lost", timeout=5) or time.sleep(1)
    codes = []
    for i in range(3):
        st, _ = callback(listen, mo_path("+15559876543", ALICE_NO, "while away %d" % i))
        codes.append(st)
    new = srv.accept(timeout=20)
    got = set()
    deadline = time.time() + 10
    while new is not None and len(got) < 3 and time.time() < deadline:
        st = new.next_stanza(1, lambda s: (body_of(s) or "").startswith("while away"))
        if st is not None:
            got.add(body_of(st))
    tap.check(codes == [200] * 3 and len(got) == 3,
              "3 texts while the XMPP server is away: 200 each, all delivered "
              "after it is back", (codes, got))
    return new


def test_restart(srv, conn, cw, kannel, listen):
    conn.send("<presence from='alice@localhost/res' to='%s'/>" % GW)
    time.sleep(0.3)
    kannel.drain(0.1)
    kannel.answer(*[(503, "down")] * 3)
    send_msg(conn, PHONE, "kept across a restart", "m9", receipt=True)
    first = kannel.next(5)
    tap.check(first is not None and first[1]["text"] == "kept across a restart",
              "a text Kannel refuses with 503 ...")
    cw.signal(signal.SIGKILL)
    cw.wait_exit(5)
    conn.close()
    with kannel.lock:
        kannel.script = []
    cw.start()
    new = srv.accept(timeout=20)
    again = kannel.next(10)
    tap.check(again is not None and again[1]["text"] == "kept across a restart"
              and again[1]["dlr-url"] == first[1]["dlr-url"],
              "... is sent again, same ref, after causeway was killed and "
              "restarted", again)
    ref = urllib.parse.parse_qs(urllib.parse.urlsplit(
        again[1]["dlr-url"]).query)["ref"][0] if again else "x"
    cw.wait_log("text %s accepted" % ref, timeout=5)
    st, _ = callback(listen, "/kannel/%s/dlr?ref=%s&status=1" % (TOKEN, ref))
    rec = new.next_stanza(5, lambda s: s.find(q(RECEIPTS, "received")) is not None) \
        if new else None
    tap.check(st == 200 and rec is not None
              and rec.find(q(RECEIPTS, "received")).get("id") == "m9",
              "its DLR after the restart still becomes the receipt for m9")
    # Refs stay unique across runs.
    new.send("<presence from='alice@localhost/res' to='%s'/>" % GW)
    time.sleep(0.3)
    send_msg(new, PHONE, "after restart", "m10")
    r = kannel.next(5)
    ref10 = urllib.parse.parse_qs(urllib.parse.urlsplit(
        r[1]["dlr-url"]).query)["ref"][0] if r else ref
    tap.check(ref10 != ref and int(ref10, 36) > int(ref, 36),
              "refs keep growing across restarts (%s after %s)" % (ref10, ref))
    return new


def main():
    test_config_errors()
    kannel = FakeKannel()
    listen = free_port()
    srv = FakeServer(domain=GW)
    cw = Causeway(srv.port, domain=GW, backend="sms", extra=config(kannel, listen))
    cw.start()
    conn = srv.accept()
    try:
        if not tap.check(conn is not None and conn.handshake_ok,
                         "causeway connects as sms.localhost", cw.log_text()[-2000:]):
            return tap.done()
        test_registration(conn, cw)
        test_admin_numbers(conn, cw, listen)
        test_addresses(conn, cw, kannel)
        test_outgoing(conn, cw, kannel, listen)
        test_incoming(conn, cw, listen)
        test_hostile(conn, cw, listen)
        test_burst(conn, cw, listen)
        test_listener_huge(cw, listen)
        test_listener_flood(conn, cw, listen, kannel)
        conn = test_server_away(srv, conn, cw, listen)
        if conn is not None:
            conn = test_restart(srv, conn, cw, kannel, listen)
        tap.check(cw.alive(), "causeway is still running",
                  cw.log_text()[-3000:])
        test_listener_deadline(kannel)
        test_caps(kannel)
    finally:
        cw.close()
        srv.close()
        kannel.close()
        if tap.failed:
            print("# causeway log tail:")
            for line in cw.log_text().splitlines()[-40:]:
                print("#   " + line)
    return tap.done()


if __name__ == "__main__":
    sys.exit(main())
