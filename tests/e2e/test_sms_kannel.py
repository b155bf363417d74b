#!/usr/bin/python3
"""End-to-end: the SMS gateway through a real Kannel (bearerbox, smsbox
and Kannel's fakesmsc as the phone network), a real Prosody and a real
XMPP client (slixmpp).

alice registers her number, texts a phone and gets texts from it, a
200-character GSM text goes out as 2 parts, a 100-character text with an
emoji as 2 UCS-2 parts, a text over max_parts is refused with an error,
Kannel's delivery report becomes a XEP-0184 receipt, a text that arrives
while Prosody is down reaches alice after it is back, and nothing is lost
when causeway (killed) and Kannel restart in the middle.

  CAUSEWAY_BIN=build/causeway /usr/bin/python3 tests/e2e/test_sms_kannel.py
"""

import os
import sys
import time
from xml.etree import ElementTree as ET

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cwtest                                          # noqa: E402
from cwtest import Causeway, Client, Prosody, Tap, free_ports   # noqa: E402
from smsenv import Kannel, decode_mt                   # noqa: E402

DOMAIN = "sms.localhost"
TOKEN = "e2e-callback-token-0123456789"
ALICE_NO = "+15551230001"
PHONE = "+15551234567"
PHONE_JID = PHONE + "@" + DOMAIN
C = "{jabber:client}"
NS_REGISTER = "jabber:iq:register"
NS_RECEIPTS = "urn:xmpp:receipts"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


class SmsClient(Client):
    """cwtest's client plus every message it receives, and sending."""

    def login(self, timeout=20):
        self.got = getattr(self, "got", [])
        ok = super().login(timeout)
        if ok:
            from slixmpp.xmlstream.handler import Callback
            from slixmpp.xmlstream.matcher import MatchXPath
            self.xmpp.register_handler(Callback(
                "all messages", MatchXPath("{jabber:client}message"),
                lambda m: self.got.append(m.xml)))
            self.xmpp.send_presence()
            self.xmpp.send_presence(pto=DOMAIN)
            self.pump(0.5)
        return ok

    def send(self, to, body, id_, receipt=False):
        m = self.xmpp.make_message(mto=to, mbody=body, mtype="chat")
        m["id"] = id_
        if receipt:
            m.xml.append(ET.Element("{%s}request" % NS_RECEIPTS))
        m.send()
        self.pump(0.1)

    def wait(self, pred, timeout=15):
        deadline = time.monotonic() + timeout
        while True:
            for i, m in enumerate(self.got):
                if pred(m):
                    del self.got[i]
                    return m
            if time.monotonic() >= deadline:
                return None
            self.pump(0.1)


def body(m):
    b = m.find(C + "body")
    return b.text if b is not None else None


def err_text(m):
    t = m.find(".//{%s}text" % NS_STANZAS) if m is not None else None
    return t.text if t is not None else ""


def raw_bytes(data):
    """fakesmsc's URL-encoding ('+' a space) back to bytes."""
    import urllib.parse
    return urllib.parse.unquote_to_bytes(data.replace("+", " "))


def mt_texts(kannel, start=0):
    """The texts fakesmsc received since index start, parts joined: a
    list of (from, to, texts, number of parts), texts a dict of what the
    bytes say read as GSM ("gsm", the 7-bit text Kannel shows as
    characters) and as UCS-2 ("ucs2", UTF-16BE).  fakesmsc does not say
    which coding a concatenated part had, so a check compares the one
    it expects: a GSM text never reads as the same text in UTF-16."""
    out = []
    pending = {}
    for frm, to, kind, data in kannel.mts()[start:]:
        if kind == "udh":
            udh_s, _, payload = data.split(" ", 2)
            udh = raw_bytes(udh_s)
            ref, total, seq = udh[3], udh[4], udh[5]
            key = (frm, to, ref)
            pending.setdefault(key, {})[seq] = raw_bytes(payload)
            if len(pending[key]) == total:
                parts = pending.pop(key)
                raw = b"".join(parts[i] for i in sorted(parts))
                out.append((frm, to, {
                    "gsm": raw.decode("latin-1"),
                    "ucs2": raw.decode("utf-16-be", "replace")}, total))
        elif kind in ("ucs-2", "ucs2"):
            out.append((frm, to, {"ucs2": raw_bytes(data).decode(
                "utf-16-be", "replace")}, 1))
        else:
            out.append((frm, to, {"gsm": decode_mt(kind, data)}, 1))
    return out


def wait_mt(kannel, pred, start=0, timeout=20):
    return cwtest.wait_until(
        lambda: next((t for t in mt_texts(kannel, start) if pred(t)), None),
        timeout, 0.2)


def main():
    tap = Tap()
    listen = free_ports(1)[0]
    prosody = Prosody(domain=DOMAIN, tap=tap)
    # Offline storage on: a text delivered while alice reconnects waits.
    with open(prosody.cfg) as f:
        cfg = f.read()
    with open(prosody.cfg, "w") as f:
        f.write(cfg.replace('"offline"; ', ""))
    kannel = Kannel("http://127.0.0.1:%d/kannel/%s/mo" % (listen, TOKEN), tap=tap)
    prosody.start()
    prosody.register("alice", "alicepw")
    kannel.start()
    cw = Causeway(prosody, domain=DOMAIN, backend="sms", tap=tap, options={
        "linger": 0,
        "driver": "kannel",
        "kannel_url": kannel.sendsms_url,
        "kannel_user": kannel.user,
        "kannel_password": kannel.password,
        "listen": "127.0.0.1:%d" % listen,
        "callback_url": "http://127.0.0.1:%d" % listen,
        "callback_token": TOKEN,
        "country_code": "1",
        "max_parts": "3",
        "numbers": "%s alice@localhost" % ALICE_NO,
    })
    cw.start()
    tap.ok(cw.wait_for(r"sms\.localhost: handshake accepted", timeout=15),
           "causeway connects to Prosody as sms.localhost")

    alice = SmsClient(prosody.c2s_port, "alice@localhost", "alicepw")
    if not tap.ok(alice.login(), "alice logs in", alice.error):
        return tap.finish()
    form = ("<query xmlns='%s'><x xmlns='jabber:x:data' type='submit'>"
            "<field var='FORM_TYPE' type='hidden'><value>%s</value></field>"
            "<field var='phone'><value>%s</value></field></x></query>"
            % (NS_REGISTER, NS_REGISTER, "+1 (555) 123-0001"))
    r = alice.iq(DOMAIN, form, itype="set")
    tap.ok(r.type == "result" and cw.wait_for("claims " + ALICE_NO.replace("+", r"\+"), timeout=5),
           "alice registers her number from a client", str(r))
    alice.xmpp.send_presence(pto=DOMAIN)
    alice.pump(1)

    # Text from a phone.
    kannel.mo(PHONE, ALICE_NO, "hello from the phone")
    m = alice.wait(lambda m: body(m) == "hello from the phone")
    tap.ok(m is not None and m.get("from", "").split("/")[0] == PHONE_JID,
           "an SMS from a phone reaches alice from %s" % PHONE_JID,
           m is not None and m.attrib)
    kannel.mo(PHONE, ALICE_NO, "Grüße 😀 aus dem Netz", kind="ucs2")
    m = alice.wait(lambda m: body(m) == "Grüße 😀 aus dem Netz")
    tap.ok(m is not None, "a UCS-2 SMS with an emoji arrives intact")

    # Text to the phone, with a receipt.
    start = len(kannel.mts())
    alice.send(PHONE_JID, "hi phone", "t1", receipt=True)
    mt = wait_mt(kannel, lambda t: t[2].get("gsm") == "hi phone", start)
    tap.ok(mt is not None and mt[0] == ALICE_NO and mt[1] == PHONE,
           "alice's text reaches the phone from her number", mt)
    rec = alice.wait(lambda m: m.find("{%s}received" % NS_RECEIPTS) is not None)
    tap.ok(rec is not None and rec.find("{%s}received" % NS_RECEIPTS).get("id") == "t1"
           and rec.get("from", "").split("/")[0] == PHONE_JID,
           "Kannel's delivery report becomes a receipt for t1",
           rec is not None and ET.tostring(rec))

    text200 = ("The quick brown fox jumps over the lazy dog. " * 5)[:200]
    start = len(kannel.mts())
    alice.send(PHONE_JID, text200, "t2")
    mt = wait_mt(kannel, lambda t: t[2].get("gsm") == text200, start)
    tap.ok(mt is not None and mt[3] == 2,
           "a 200-character GSM text goes out as 2 parts", mt)

    text_emoji = "😀 " + ("Emoji text, " * 10)[:97]
    start = len(kannel.mts())
    alice.send(PHONE_JID, text_emoji, "t3")
    mt = wait_mt(kannel, lambda t: t[2].get("ucs2") == text_emoji, start)
    tap.ok(mt is not None and mt[3] == 2,
           "a 100-character text with an emoji goes out as 2 UCS-2 parts",
           mt)

    start = len(kannel.mts())
    alice.send(PHONE_JID, "x" * 600, "t4")
    err = alice.wait(lambda m: m.get("id") == "t4" and m.get("type") == "error")
    tap.ok(err is not None and "limit is 3" in err_text(err),
           "a 600-character text is refused with an error naming the limit",
           err_text(err))
    time.sleep(1)
    tap.ok(not any("xxx" in v for t in mt_texts(kannel, start) for v in t[2].values()),
           "... and none of it reached the phone")

    # Prosody down: a text waits in causeway, then arrives.
    prosody.stop()
    alice.close()
    kannel.mo(PHONE, ALICE_NO, "while prosody is down")
    tap.ok(cw.wait_for(r"text from \+15551234567 delivered", count=3, timeout=15),
           "a text while Prosody is down is taken from Kannel")
    prosody.start()
    tap.ok(cw.wait_for(r"sms\.localhost: handshake accepted", count=2, timeout=30),
           "causeway reconnects to Prosody")
    alice.got = []
    alice.login()
    m = alice.wait(lambda m: body(m) == "while prosody is down", timeout=20)
    tap.ok(m is not None, "... and reaches alice after Prosody is back")

    # Kannel down, a text in flight, causeway killed and restarted.
    kannel.stop()
    alice.send(PHONE_JID, "sent while kannel was down", "t5", receipt=True)
    tap.ok(cw.wait_for(r"text \w+ not sent", timeout=15),
           "with Kannel down the text waits for a retry")
    cw.popen.kill()
    cw.popen.wait(10)
    cw.start()
    tap.ok(cw.wait_for(r"1 text from the last run to send", timeout=15),
           "causeway killed and restarted finds the text in its outbox")
    start = len(kannel.mts())
    kannel.start()
    mt = wait_mt(kannel, lambda t: t[2].get("gsm") == "sent while kannel was down", start,
                 timeout=30)
    tap.ok(mt is not None, "once Kannel is back the text reaches the phone")
    alice.pump(1)
    rec = alice.wait(lambda m: m.find("{%s}received" % NS_RECEIPTS) is not None
                     and m.find("{%s}received" % NS_RECEIPTS).get("id") == "t5",
                     timeout=20)
    tap.ok(rec is not None, "... and its receipt comes back")

    # An incoming text while causeway is down: Kannel keeps trying.
    cw.stop()
    kannel.mo(PHONE, ALICE_NO, "while causeway was down")
    time.sleep(2)
    cw.start()
    m = alice.wait(lambda m: body(m) == "while causeway was down", timeout=30)
    tap.ok(m is not None, "a text that came while causeway was down arrives "
           "after it is back (Kannel retried)")
    alice.send(PHONE_JID, "after everything", "t6")
    mt = wait_mt(kannel, lambda t: t[2].get("gsm") == "after everything", 0)
    tap.ok(mt is not None, "texting still works after all the restarts")
    alice.close()
    # Kannel's password goes in every sendsms URL and the token in every
    # callback: neither may be logged, at log_level debug.
    cwtest.check_no_secrets(tap, "kannel", [kannel.password, TOKEN], cw)
    return tap.finish()


if __name__ == "__main__":
    sys.exit(main())
