#!/usr/bin/python3
"""End-to-end: the SMS backend through smstools3.  A real smsd drives a
fake network modem (fakemodem.py: smsd's `device = @127.0.0.1:PORT`),
causeway's smstools driver shares smsd's spool, and a real Prosody and a
slixmpp client play the user:

  register a number; texts both ways; a 200-character GSM text (2 parts
  with a concatenation header at the modem); a 100-character text with an
  emoji (UCS-2, 2 parts); a text over max_parts refused with an error; a
  XEP-0184 receipt from a status report; a report saying the network
  gave up (TP-Status 70) as an error; a text the network refuses (smsd's
  failed/ with Fail_reason) as an error message; a spool that cannot take
  a text (TEMPFAIL) and the backend's retry once it can; an incoming
  concatenated text as one message; incoming texts while Prosody is down
  delivered after it is back; causeway restarted with texts in flight
  (sent, received, reported while it was down) losing none; bad spool
  files (half-written, empty, binary, 10 MB, a report nobody sent, a
  stranger's file in sent/) survived and set aside.

  /usr/bin/python3 tests/e2e/test_sms_smstools.py
Environment: CAUSEWAY_BIN, CWTEST_KEEP=1, CWTEST_XMPP_LOG=DEBUG.
"""

import asyncio
import os
import re
import shutil
import sys
import time
from xml.etree import ElementTree as ET

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cwtest                                   # noqa: E402
from cwtest import Causeway, Client, Prosody, Tap   # noqa: E402
from fakemodem import FakeModem, Smsd           # noqa: E402

DOMAIN = "sms.localhost"
USER_NUMBER = "+15550001"           # the SIM; smsd's modem is named 15550001
PHONE = "+15551234567"
PHONE_JID = PHONE + "@" + DOMAIN
HANDSHAKE = r"sms\.localhost: handshake accepted"
MAX_PARTS = 3

C = "{jabber:client}"
NS_REGISTER = "jabber:iq:register"
NS_DATA = "jabber:x:data"
NS_RECEIPTS = "urn:xmpp:receipts"


def bare(jid):
    return (jid or "").split("/", 1)[0].lower()


def xml_str(el):
    return "<none>" if el is None else ET.tostring(el, encoding="unicode")


class User(Client):
    """A client with available presence that records every message."""

    def __init__(self, port, jid, password):
        super().__init__(port, jid, password)
        self.got = []

    def prepare(self, xmpp):
        self.record(xmpp, {"message": C + "message"},
                    lambda kind, el: self.got.append(el))

    def login(self, timeout=20):
        if not super().login(timeout):
            return False
        self.xmpp.send_presence()
        return True

    def mark(self):
        return len(self.got)

    def messages(self, since=0, frm=None, mtype=None):
        return [m for m in self.got[since:]
                if (frm is None or bare(m.get("from")) == frm.lower())
                and (mtype is None or (m.get("type") or "normal") == mtype)]

    def wait_message(self, pred, timeout, since=0):
        def find():
            for m in self.got[since:]:
                if pred(m):
                    return m
            return None
        self.pump_until(lambda: find() is not None, timeout)
        return find()

    def send(self, to, body, mid=None, receipt=False):
        msg = self.xmpp.make_message(mto=to, mbody=body, mtype="chat")
        if mid:
            msg["id"] = mid
        if receipt:
            msg.append(ET.fromstring("<request xmlns='%s'/>" % NS_RECEIPTS))
        msg.send()

    def dump(self, since=0, n=8):
        return "\n".join(xml_str(e) for e in self.got[since:][-n:]) or \
            "(nothing received)"


def body_of(m):
    b = m.find(C + "body")
    return b.text if b is not None else None


def text_from(phone, text):
    def pred(m):
        return bare(m.get("from")) == (phone + "@" + DOMAIN).lower() and \
            m.get("type") != "error" and body_of(m) == text
    return pred


def error_for(mid):
    def pred(m):
        return m.get("type") == "error" and (mid is None or m.get("id") == mid)
    return pred


def receipt_for(mid):
    def pred(m):
        r = m.find("{%s}received" % NS_RECEIPTS)
        return r is not None and r.get("id") == mid
    return pred


def error_text(m):
    t = m.find("%serror/{urn:ietf:params:xml:ns:xmpp-stanzas}text" % C) \
        if m is not None else None
    return t.text if t is not None else ""


def register_form(phone):
    x = ("<field var='FORM_TYPE'><value>%s</value></field>"
         "<field var='phone'><value>%s</value></field>" % (NS_REGISTER, phone))
    return ("<query xmlns='%s'><x xmlns='%s' type='submit'>%s</x></query>"
            % (NS_REGISTER, NS_DATA, x))


def main():
    tap = Tap()
    for cmd in ("prosody", "smsd"):
        if not cwtest.have(cmd):
            tap.skip("smstools end-to-end", "%s is not installed" % cmd)
            return tap.finish()

    work = cwtest.make_tempdir("cwtest-smsd-")
    modem = FakeModem()
    cwtest.on_exit(modem.close)
    smsd = Smsd(work, modem.port)
    cwtest.on_exit(smsd.stop)
    tap.watch("smsd log", smsd.log)
    spool = smsd.spool
    rejected = os.path.join(spool, "causeway-rejected")

    server = Prosody(domain=DOMAIN, tap=tap)
    # Texts causeway delivers while alice is offline (after the server
    # came back, before she did) wait in her server's offline storage,
    # as on any real server; the shared template turns it off.
    with open(server.cfg) as f:
        cfg = f.read()
    with open(server.cfg, "w") as f:
        f.write(cfg.replace('"offline";', ""))
    server.start()
    server.register("alice", "alicepw")
    cw = Causeway(server, tap=tap, backend="sms", name="causeway-sms",
                  options={"driver": "smstools", "spool": spool,
                           "country_code": "1", "max_parts": MAX_PARTS,
                           "numbers": "%s alice@localhost" % USER_NUMBER})
    smsd.start()
    cw.start()
    if not tap.ok(cw.wait_for(HANDSHAKE, timeout=20),
                  "causeway with driver = smstools is up"):
        return tap.finish()

    alice = User(server.c2s_port, "alice@localhost", "alicepw")
    if not tap.ok(alice.login(), "alice logs in", diag=alice.error):
        return tap.finish()
    clients = [alice]

    def until(pred, timeout):
        """Wait for pred while the client's stream keeps going (a message
        it sent goes out only while its loop runs)."""
        c = clients[-1]
        if c.xmpp is not None:
            return c.pump_until(pred, timeout)
        return cwtest.wait_until(pred, timeout)

    def wait_texts(n, timeout=30):
        return until(lambda: len(modem.texts()) >= n, timeout)

    # ---- registration ----
    r = alice.iq(DOMAIN, register_form(USER_NUMBER), itype="set")
    tap.ok(r.type == "result", "alice registers %s" % USER_NUMBER, diag=str(r))

    # ---- text to a phone ----
    alice.send(PHONE_JID, "hello phone, où es-tu?")
    ok = wait_texts(1, 30)
    t = modem.texts()[-1] if ok else None
    tap.ok(t is not None and t["to"] == PHONE and t["text"] == "hello phone, où es-tu?"
           and len(t["parts"]) == 1 and t["parts"][0]["coding"] == "gsm7",
           "a text to %s reaches the modem as one GSM-7 SMS" % PHONE,
           diag=repr(t))
    tap.ok(until(lambda: not smsd.files("sent")
                             and not smsd.files("outgoing"), 15),
           "its sent/ file is read and removed",
           diag="sent: %s" % smsd.files("sent"))
    tap.ok(not os.listdir(os.path.join(spool, ".causeway-tmp")),
           "nothing is left in the temporary folder")

    # ---- text from a phone ----
    m0 = alice.mark()
    modem.inject_mo(PHONE, "hi alice, ünïcödé ok {}")
    got = alice.wait_message(text_from(PHONE, "hi alice, ünïcödé ok {}"), 30, m0)
    tap.ok(got is not None, "a text from %s arrives from %s" % (PHONE, PHONE_JID),
           diag=alice.dump(m0))
    tap.ok(until(lambda: not smsd.files("incoming"), 10),
           "its incoming/ file is removed once delivered",
           diag="%s" % smsd.files("incoming"))

    # ---- 200-character GSM text: 2 parts ----
    long_gsm = ("The quick brown fox jumps over the lazy dog. " * 5)[:200]
    n0 = len(modem.texts())
    alice.send(PHONE_JID, long_gsm)
    ok = wait_texts(n0 + 1, 30)
    t = modem.texts()[-1] if ok else None
    tap.ok(t is not None and t["text"] == long_gsm and len(t["parts"]) == 2
           and all(p["coding"] == "gsm7" and p["concat"] is not None
                   and p["concat"][1] == 2 for p in t["parts"])
           and [p["concat"][2] for p in t["parts"]] == [1, 2],
           "a 200-character GSM text goes out as 2 concatenated GSM-7 parts",
           diag=repr(t and [(p["udh"], p["coding"], len(p["text"])) for p in t["parts"]]))

    # ---- 100 characters with an emoji: UCS-2, 2 parts ----
    emoji_text = ("Grüße 😀 " * 13)[:99] + "!"
    n0 = len(modem.texts())
    alice.send(PHONE_JID, emoji_text)
    ok = wait_texts(n0 + 1, 30)
    t = modem.texts()[-1] if ok else None
    tap.ok(t is not None and t["text"] == emoji_text and len(t["parts"]) == 2
           and all(p["coding"] == "ucs2" and p["concat"] is not None
                   for p in t["parts"]),
           "a 100-character text with emoji goes out whole as 2 UCS-2 parts",
           diag=repr(t and (t["text"], [(p["udh"], p["coding"]) for p in t["parts"]])))

    # ---- too long: refused with an error, nothing sent ----
    m0 = alice.mark()
    n0 = len(modem.submits)
    too_long = "x" * (153 * MAX_PARTS + 1)
    alice.send(PHONE_JID, too_long, mid="toolong1")
    e = alice.wait_message(error_for("toolong1"), 15, m0)
    tap.ok(e is not None and str(MAX_PARTS) in error_text(e),
           "a text needing %d parts is refused with an error naming the "
           "limit" % (MAX_PARTS + 1), diag=xml_str(e) + "\n" + alice.dump(m0))
    alice.pump_until(lambda: False, 3)
    tap.ok(len(modem.submits) == n0, "and nothing of it was sent",
           diag="%d new submits" % (len(modem.submits) - n0))

    # ---- receipt ----
    m0 = alice.mark()
    n0 = len(modem.texts())
    alice.send(PHONE_JID, "tell me when you got this", mid="rcpt1", receipt=True)
    ok = wait_texts(n0 + 1, 30)
    t = modem.texts()[-1] if ok else None
    if t is not None:
        # the sent/ file (Message_id) is read before the report comes
        until(lambda: not smsd.files("sent"), 10)
        modem.inject_report(t["mrs"][-1], 0)
    got = alice.wait_message(receipt_for("rcpt1"), 30, m0)
    tap.ok(got is not None, "a status report 'delivered' becomes a XEP-0184 "
           "receipt for the stanza id", diag=alice.dump(m0))
    tap.ok(until(lambda: not smsd.files("report"), 10),
           "the report/ file is removed")

    # ---- a text the network refuses: failed/ ----
    m0 = alice.mark()
    modem.refuse_next(38, 10)
    alice.send(PHONE_JID, "this one fails", mid="fail1")
    e = alice.wait_message(error_for("fail1"), 40, m0)
    with modem.lock:
        modem.refuse = []
    tap.ok(e is not None and re.search(r"38|[Nn]etwork out of order", error_text(e)),
           "a text smsd puts in failed/ comes back as an error with its "
           "Fail_reason", diag=xml_str(e) + "\n" + alice.dump(m0))
    tap.ok(until(lambda: not smsd.files("failed"), 10),
           "the failed/ file is removed")

    # ---- a status report saying the network gave up ----
    m0 = alice.mark()
    n0 = len(modem.texts())
    alice.send(PHONE_JID, "to a phone that is off", mid="rcpt3", receipt=True)
    ok = wait_texts(n0 + 1, 30)
    t = modem.texts()[-1] if ok else None
    if t is not None:
        until(lambda: not smsd.files("sent"), 10)
        modem.inject_report(t["mrs"][-1], 48)     # temporary: still trying
        modem.inject_report(t["mrs"][-1], 70)     # permanent: given up
    e = alice.wait_message(error_for("rcpt3"), 30, m0)
    tap.ok(e is not None and "70" in error_text(e) and
           alice.messages(m0) and not any(receipt_for("rcpt3")(m)
                                          for m in alice.messages(m0)),
           "a status report 'failed' (TP-Status 70) becomes an error, "
           "not a receipt", diag=xml_str(e) + "\n" + alice.dump(m0))

    # ---- the spool cannot take a text: TEMPFAIL, retried ----
    tmpdir = os.path.join(spool, ".causeway-tmp")
    os.rmdir(tmpdir)
    with open(tmpdir, "w") as f:             # now a file: open() fails
        f.write("in the way")
    n0 = len(modem.texts())
    alice.send(PHONE_JID, "retried after a spool failure")
    until(lambda: cw.count(r"text \d+ to .*: cannot write") > 0, 15)
    tap.ok(cw.count(r"smstools: text \d+: cannot write") > 0 and
           len(modem.texts()) == n0,
           "a text the spool cannot take is not sent yet",
           diag="log: %s" % cw.matching(r"smstools"))
    os.unlink(tmpdir)
    os.mkdir(tmpdir)
    ok = wait_texts(n0 + 1, 40)
    tap.ok(ok and modem.texts()[-1]["text"] == "retried after a spool failure",
           "and goes out on a later try once the spool works again",
           diag=repr([t["text"] for t in modem.texts()[n0:]]))

    # ---- an incoming concatenated text ----
    m0 = alice.mark()
    long_mo = ("Part of a long answer from the phone, " * 8).strip()
    parts = modem.inject_mo(PHONE, long_mo)
    got = alice.wait_message(text_from(PHONE, long_mo), 30, m0)
    tap.ok(parts == 2 and got is not None and
           len([m for m in alice.messages(m0, PHONE_JID) if body_of(m)]) == 1,
           "a concatenated text (%d parts) arrives as one message" % parts,
           diag=alice.dump(m0))

    # ---- texts while Prosody is down ----
    server.stop()
    alice.close()
    modem.inject_mo(PHONE, "while you were away 1")
    modem.inject_mo(PHONE, "while you were away 2")
    gone = until(lambda: modem.stored() == 0 and not
                             smsd.files("incoming"), 30)
    tap.ok(gone, "with Prosody down, smsd's incoming files are still taken "
           "(and kept by causeway)", diag="incoming: %s, SIM: %d" %
           (smsd.files("incoming"), modem.stored()))
    server.start()
    cw.wait_for(HANDSHAKE, count=2, timeout=60)
    alice = User(server.c2s_port, "alice@localhost", "alicepw")
    alice.login()
    clients.append(alice)
    ok1 = alice.wait_message(text_from(PHONE, "while you were away 1"), 40)
    ok2 = alice.wait_message(text_from(PHONE, "while you were away 2"), 20)
    tap.ok(ok1 is not None and ok2 is not None,
           "texts that came while Prosody was down arrive once it is back",
           diag=alice.dump())

    # ---- restart causeway with texts in flight ----
    smsd.stop()
    n0 = len(modem.texts())
    alice.send(PHONE_JID, "in flight 1")
    alice.send(PHONE_JID, "in flight 2", mid="rcpt2", receipt=True)
    tap.ok(alice.pump_until(lambda: len(smsd.files("outgoing")) >= 2, 20),
           "with smsd stopped, the texts wait in outgoing/",
           diag="outgoing: %s" % smsd.files("outgoing"))
    rc, _ = cw.terminate(10)
    tap.ok(rc == 0, "causeway stops cleanly (exit %r)" % rc)
    modem.inject_mo(PHONE, "sent while causeway was down")
    smsd.start()
    ok = wait_texts(n0 + 2, 40)
    texts = [t["text"] for t in modem.texts()[n0:]]
    tap.ok(ok and sorted(texts) == ["in flight 1", "in flight 2"],
           "smsd sends both texts while causeway is down", diag=repr(texts))
    until(lambda: modem.stored() == 0 and len(smsd.files("sent")) >= 2, 20)
    mr = next((t["mrs"][-1] for t in modem.texts()[n0:]
               if t["text"] == "in flight 2"), None)
    m0 = alice.mark()
    cw.start()
    cw.wait_for(HANDSHAKE, count=3, timeout=30)
    got = alice.wait_message(text_from(PHONE, "sent while causeway was down"), 30, m0)
    tap.ok(got is not None, "a text received while causeway was down arrives "
           "after its restart", diag=alice.dump(m0))
    tap.ok(until(lambda: not smsd.files("sent"), 15),
           "the sent/ files written while it was down are read")
    if mr is not None:
        modem.inject_report(mr, 0)
    got = alice.wait_message(receipt_for("rcpt2"), 30, m0)
    tap.ok(got is not None, "the receipt for a text sent before the restart "
           "still arrives", diag=alice.dump(m0))
    alice.pump_until(lambda: False, 2)
    tap.ok(len([t for t in modem.texts()[n0:]]) == 2,
           "no text went out twice", diag=repr([t["text"] for t in modem.texts()[n0:]]))

    # ---- bad spool files ----
    inc = os.path.join(spool, "incoming")

    def drop(name, data):
        tmp = os.path.join(work, name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
        os.rename(tmp, os.path.join(inc, name))

    drop("bad.empty", b"")
    drop("bad.binary", bytes(range(256)) * 40)
    big = os.path.join(work, "bad.big.tmp")
    with open(big, "wb") as f:
        f.truncate(10 * 1024 * 1024)
        f.seek(0)
        f.write(b"From: 15551234567\nAlphabet: UTF-8\n\n")
    os.rename(big, os.path.join(inc, "bad.big"))
    drop("bad.report", b"From: 15551234567\nModem: 15550001\n\nSMS STATUS "
         b"REPORT\nMessage_id: 201\nStatus: 0,Ok\n")
    stranger = os.path.join(spool, "sent", "someone.else")
    with open(stranger, "wb") as f:
        f.write(b"To: 15551234567\nMessage_id: 7\n\nnot ours")
    for name in ("empty", "binary", "big"):
        tap.ok(until(lambda: os.path.exists(os.path.join(
            rejected, "incoming.bad." + name)), 30) and not
            os.path.exists(os.path.join(inc, "bad." + name)),
            "a%s %s incoming file is set aside in causeway-rejected/" %
            ("n" if name == "empty" else "", "10 MB" if name == "big" else name),
            diag="rejected: %s" % os.listdir(rejected))
    tap.ok(until(lambda: not os.path.exists(
        os.path.join(inc, "bad.report")), 15),
        "a status report for a message nobody sent is dropped")

    # half-written: the body grows for 12 s (longer than a scan period),
    # then the writer closes it
    m0 = alice.mark()
    path = os.path.join(inc, "slow.writer")
    with open(path, "wb") as f:
        f.write(b"From: 15551234567\nFrom_TOA: 91 international\n"
                b"Alphabet: UTF-8\n\nslow")
        f.flush()
        for i in range(12):
            alice.pump_until(lambda: False, 1)
            f.write(b" %d" % i)
            f.flush()
    slow = "slow" + "".join(" %d" % i for i in range(12))
    got = alice.wait_message(text_from(PHONE, slow), 20, m0)
    tap.ok(got is not None and not os.path.exists(
        os.path.join(rejected, "incoming.slow.writer")),
        "a file still being written is read whole once it is closed",
        diag=alice.dump(m0) + "\nrejected: %s" % os.listdir(rejected))
    tap.ok(os.path.exists(stranger), "a file in sent/ that is not causeway's "
           "is left alone")
    m0 = alice.mark()
    modem.inject_mo(PHONE, "still alive")
    got = alice.wait_message(text_from(PHONE, "still alive"), 30, m0)
    tap.ok(cw.alive() and got is not None,
           "causeway survived the bad files and still delivers texts",
           diag=alice.dump(m0))

    alice.close()
    rc, _ = cw.terminate(10)
    tap.ok(rc == 0, "causeway exits cleanly (exit %r)" % rc)
    smsd.stop()
    server.stop()
    return tap.finish()


if __name__ == "__main__":
    try:
        rc = main()
    except Exception:
        import traceback
        traceback.print_exc()
        rc = 1
    sys.exit(rc)
