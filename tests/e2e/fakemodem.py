"""A fake GSM modem on a TCP socket, and smsd (smstools3) driving it.

smsd talks to a modem over `device = @127.0.0.1:PORT` as a TCP client,
sending AT commands ended by CR.  FakeModem answers the commands smsd
3.1.21 sends (the table in RECIPES.md 5b), decodes the SMS-SUBMIT PDUs it
is given into numbers and texts (GSM 7-bit with or without a
concatenation header, UCS-2), and keeps a SIM memory into which a test
puts SMS-DELIVER PDUs (texts from phones, split with a concatenation
header when long) and SMS-STATUS-REPORT PDUs (for a message reference it
gave out in +CMGS), which smsd then reads with AT+CPMS? / AT+CMGR.

Smsd writes an smsd.conf for a spool in a temp dir, starts `smsd -t`
there and stops it by the PID in its pid file.

Standard library only.
"""

import os
import re
import signal
import socket
import subprocess
import threading
import time

# ---- GSM 03.38 default alphabet and extension table ----

GSM_BASIC = (
    "@\u00a3$\u00a5\u00e8\u00e9\u00f9\u00ec\u00f2\u00c7\n\u00d8\u00f8\r\u00c5\u00e5"
    "\u0394_\u03a6\u0393\u039b\u03a9\u03a0\u03a8\u03a3\u0398\u039e\x1b\u00c6\u00e6\u00df\u00c9"
    " !\"#\u00a4%&'()*+,-./0123456789:;<=>?"
    "\u00a1ABCDEFGHIJKLMNOPQRSTUVWXYZ\u00c4\u00d6\u00d1\u00dc\u00a7"
    "\u00bfabcdefghijklmnopqrstuvwxyz\u00e4\u00f6\u00f1\u00fc\u00e0"
)
assert len(GSM_BASIC) == 128
GSM_EXT = {0x0A: "\f", 0x14: "^", 0x28: "{", 0x29: "}", 0x2F: "\\",
           0x3C: "[", 0x3D: "~", 0x3E: "]", 0x40: "|", 0x65: "\u20ac"}
GSM_BASIC_REV = {ch: i for i, ch in enumerate(GSM_BASIC) if i != 0x1B}
GSM_EXT_REV = {ch: code for code, ch in GSM_EXT.items()}


def gsm_septets(text):
    """The text as a list of septets, or None when GSM-7 cannot carry it."""
    out = []
    for ch in text:
        if ch in GSM_BASIC_REV:
            out.append(GSM_BASIC_REV[ch])
        elif ch in GSM_EXT_REV:
            out += [0x1B, GSM_EXT_REV[ch]]
        else:
            return None
    return out


def gsm_decode(septets):
    out, esc = [], False
    for s in septets:
        if esc:
            out.append(GSM_EXT.get(s, GSM_BASIC[s]))
            esc = False
        elif s == 0x1B:
            esc = True
        else:
            out.append(GSM_BASIC[s])
    return "".join(out)


def pack7(septets, udh=b""):
    """User data: the header octets, fill bits to a septet boundary, then
    the septets, as one bit stream taken least significant bit first."""
    bits = []
    for o in udh:
        bits += [(o >> i) & 1 for i in range(8)]
    while len(bits) % 7:
        bits.append(0)
    for s in septets:
        bits += [(s >> i) & 1 for i in range(7)]
    while len(bits) % 8:
        bits.append(0)
    return bytes(sum(bits[i + j] << j for j in range(8))
                 for i in range(0, len(bits), 8))


def unpack7(data, nseptets, skip_octets=0):
    bits = []
    for o in data:
        bits += [(o >> i) & 1 for i in range(8)]
    start = skip_octets * 8
    start += (-start) % 7
    out = []
    for k in range(nseptets - start // 7):
        b = bits[start + 7 * k:start + 7 * k + 7]
        if len(b) < 7:
            raise ValueError("user data shorter than its length")
        out.append(sum(bit << j for j, bit in enumerate(b)))
    return out


def bcd_number(digits):
    """Address digits as nibble-swapped BCD with an F pad."""
    if len(digits) % 2:
        digits += "F"
    return bytes(int(digits[i + 1] + digits[i], 16)
                 for i in range(0, len(digits), 2))


def address(number):
    """A TP address field: digit count, type of address, BCD digits."""
    digits = number.lstrip("+")
    toa = 0x91 if number.startswith("+") or len(digits) > 8 else 0x81
    return bytes([len(digits), toa]) + bcd_number(digits)


def read_address(b, i):
    n, toa = b[i], b[i + 1]
    octets = (n + 1) // 2
    raw = b[i + 2:i + 2 + octets].hex().upper()
    digits = "".join(raw[k + 1] + raw[k] for k in range(0, len(raw), 2))
    digits = digits[:n]
    if toa & 0x70 == 0x10:
        digits = "+" + digits
    return digits, i + 2 + octets


def timestamp(t=None):
    """A 7-octet service centre time stamp (UTC, time zone 0)."""
    tm = time.gmtime(t if t is not None else time.time())
    digits = "%02d%02d%02d%02d%02d%02d00" % (
        tm.tm_year % 100, tm.tm_mon, tm.tm_mday,
        tm.tm_hour, tm.tm_min, tm.tm_sec)
    return bcd_number(digits)


SMSC = "+15550000000"


def smsc_field():
    a = bytes([0x91]) + bcd_number(SMSC.lstrip("+"))
    return bytes([len(a)]) + a


def split_text(text, concat_ref):
    """(dcs, [(udh, user data, udl)]): one part, or several with an 8-bit
    reference concatenation header, as phones send long texts."""
    sept = gsm_septets(text)
    if sept is not None:
        if len(sept) <= 160:
            return 0x00, [(b"", pack7(sept), len(sept))]
        chunks, cur = [], []
        i = 0
        while i < len(sept):
            n = 2 if sept[i] == 0x1B else 1
            if len(cur) + n > 153:
                chunks.append(cur)
                cur = []
            cur += sept[i:i + n]
            i += n
        chunks.append(cur)
        parts = []
        for k, c in enumerate(chunks):
            udh = bytes([5, 0, 3, concat_ref, len(chunks), k + 1])
            parts.append((udh, pack7(c, udh), 7 + len(c)))
        return 0x00, parts
    units = text.encode("utf-16-be")
    if len(units) <= 140:
        return 0x08, [(b"", units, len(units))]
    chunks, cur = [], b""
    i = 0
    while i < len(units):
        hi = units[i] << 8 | units[i + 1]
        n = 4 if 0xD800 <= hi < 0xDC00 else 2
        if len(cur) + n > 134:
            chunks.append(cur)
            cur = b""
        cur += units[i:i + n]
        i += n
    chunks.append(cur)
    parts = []
    for k, c in enumerate(chunks):
        udh = bytes([5, 0, 3, concat_ref, len(chunks), k + 1])
        parts.append((udh, udh + c, 6 + len(c)))
    return 0x08, parts


def deliver_pdus(sender, text, concat_ref=0x42, when=None):
    """SMS-DELIVER PDUs (hex, with an SMSC field) and each one's TPDU
    length, for a text from sender."""
    dcs, parts = split_text(text, concat_ref)
    out = []
    for udh, ud, udl in parts:
        first = 0x04 | (0x40 if udh else 0)      # DELIVER, no more, UDHI
        tpdu = (bytes([first]) + address(sender) + bytes([0x00, dcs])
                + timestamp(when) + bytes([udl]) + ud)
        out.append(((smsc_field() + tpdu).hex().upper(), len(tpdu)))
    return out


def status_report_pdu(mr, recipient, status=0):
    tpdu = (bytes([0x06, mr & 0xFF]) + address(recipient) + timestamp()
            + timestamp() + bytes([status]))
    return (smsc_field() + tpdu).hex().upper(), len(tpdu)


def decode_submit(hexpdu):
    """An SMS-SUBMIT as smsd sends it: a dict with to, dcs, concat
    (ref, total, seq) or None, and text."""
    b = bytes.fromhex(hexpdu)
    i = 1 + b[0]                                  # SMSC field
    first = b[i]
    if first & 0x03 != 0x01:
        raise ValueError("not an SMS-SUBMIT: first octet %02X" % first)
    mr = b[i + 1]
    to, i = read_address(b, i + 2)
    pid, dcs = b[i], b[i + 1]
    i += 2
    vpf = (first >> 3) & 3
    i += {0: 0, 2: 1}.get(vpf, 7)
    udl = b[i]
    ud = b[i + 1:]
    udh = b""
    if first & 0x40:
        udh = ud[:1 + ud[0]]
    concat = None
    k = 1
    while k < len(udh):
        iei, ln = udh[k], udh[k + 1]
        val = udh[k + 2:k + 2 + ln]
        if iei == 0x00 and ln == 3:
            concat = (val[0], val[1], val[2])
        elif iei == 0x08 and ln == 4:
            concat = (val[0] << 8 | val[1], val[2], val[3])
        k += 2 + ln
    alphabet = (dcs >> 2) & 3 if dcs & 0xC0 == 0 else 0
    raw = b""
    if alphabet == 2:
        raw = ud[len(udh):udl]
        text = raw.decode("utf-16-be", errors="replace")
        coding = "ucs2"
    elif alphabet == 0:
        text = gsm_decode(unpack7(ud, udl, len(udh)))
        coding = "gsm7"
    else:
        text = ud[len(udh):udl].hex()
        coding = "8bit"
    return {"to": to, "mr_in_pdu": mr, "pid": pid, "dcs": dcs,
            "coding": coding, "udh": udh.hex().upper(), "concat": concat,
            "text": text, "raw": raw, "first": first}


class FakeModem:
    """The modem.  submits: every SMS-SUBMIT taken (decoded, with the
    message reference 'mr' given back in +CMGS).  Methods are
    thread-safe; the server runs in its own thread."""

    def __init__(self, host="127.0.0.1", port=0):
        self.lock = threading.Condition()
        self.submits = []
        self.refused = []           # PDUs answered with +CMS ERROR
        self.commands = []          # every command line, for diagnosis
        self.memory = {}            # slot -> (hex pdu, tpdu length)
        self.slots = 40
        self.refuse = []            # error codes for the next submits
        self.auto_report = None     # None, or a TP-Status for every submit
        self.next_mr = 1
        self.next_concat = 0x30
        self.connections = 0
        self.srv = socket.create_server((host, port))
        self.port = self.srv.getsockname()[1]
        self.closing = False
        self.conns = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    # ---- what tests call ----

    def inject_mo(self, sender, text, when=None):
        """A text from a phone, stored in the SIM as smsd will find it
        (several parts for a long one).  Returns the number of parts."""
        with self.lock:
            ref = self.next_concat
            self.next_concat = (self.next_concat + 1) & 0xFF
            pdus = deliver_pdus(sender, text, ref, when)
            for p in pdus:
                self._store(p)
            return len(pdus)

    def inject_pdu(self, hexpdu, tpdu_len):
        with self.lock:
            self._store((hexpdu, tpdu_len))

    def inject_report(self, mr, status=0, recipient=None):
        """A status report for the submit that got mr (TP-Status 0:
        delivered; 32..63 temporary; 64.. permanent failure)."""
        with self.lock:
            if recipient is None:
                recipient = next((s["to"] for s in self.submits
                                  if s["mr"] == mr), "+15559999999")
            self._store(status_report_pdu(mr, recipient, status))

    def refuse_next(self, code=38, count=1):
        with self.lock:
            self.refuse += [code] * count

    def stored(self):
        with self.lock:
            return len(self.memory)

    def texts(self):
        """Submits joined by their concatenation headers: a list of dicts
        with to, text, parts (the decoded submits), mrs."""
        with self.lock:
            subs = list(self.submits)
        out, open_ = [], {}
        for s in subs:
            if s["concat"] is None:
                out.append({"to": s["to"], "text": s["text"], "parts": [s],
                            "mrs": [s["mr"]]})
                continue
            ref, total, seq = s["concat"]
            key = (s["to"], ref, total)
            open_.setdefault(key, {})[seq] = s
            if len(open_[key]) == total:
                parts = [open_[key][k] for k in sorted(open_[key])]
                if all(p["coding"] == "ucs2" for p in parts):
                    # joined as UTF-16 units, as phones do: a surrogate
                    # pair may straddle two parts
                    text = b"".join(p["raw"] for p in parts).decode(
                        "utf-16-be", errors="replace")
                else:
                    text = "".join(p["text"] for p in parts)
                out.append({"to": s["to"], "text": text,
                            "parts": parts, "mrs": [p["mr"] for p in parts]})
                del open_[key]
        return out

    def wait_texts(self, n, timeout=30):
        return self._wait(lambda: len(self.texts()) >= n, timeout)

    def wait_stored_empty(self, timeout=30):
        return self._wait(lambda: not self.memory, timeout)

    def _wait(self, pred, timeout):
        end = time.monotonic() + timeout
        with self.lock:
            while not pred():
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self.lock.wait(min(left, 0.2))
            return True

    def close(self):
        self.closing = True
        try:
            self.srv.close()
        except OSError:
            pass
        for c in list(self.conns):
            try:
                c.shutdown(socket.SHUT_RDWR)
                c.close()
            except OSError:
                pass

    # ---- the AT side ----

    def _store(self, pdu):
        for slot in range(1, self.slots + 1):
            if slot not in self.memory:
                self.memory[slot] = pdu
                self.lock.notify_all()
                return
        raise RuntimeError("fake SIM memory full")

    def _accept(self):
        while not self.closing:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            self.connections += 1
            self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,),
                             daemon=True).start()

    def _serve(self, conn):
        buf = b""
        pending_cmgs = None
        try:
            while True:
                data = conn.recv(4096)
                if not data:
                    return
                buf += data
                while True:
                    if pending_cmgs is not None:
                        z = buf.find(b"\x1a")
                        esc = buf.find(b"\x1b")
                        if esc != -1 and (z == -1 or esc < z):
                            buf = buf[esc + 1:]       # ESC cancels
                            pending_cmgs = None
                            conn.sendall(b"\r\nOK\r\n")
                            continue
                        if z == -1:
                            break
                        pdu = buf[:z].decode("ascii", "replace").strip()
                        buf = buf[z + 1:]
                        conn.sendall(self._submit(pdu, pending_cmgs))
                        pending_cmgs = None
                        continue
                    m = re.search(rb"[\r\n]", buf)
                    if not m:
                        break
                    line = buf[:m.start()].decode("ascii", "replace").strip()
                    buf = buf[m.end():]
                    if not line:
                        continue
                    with self.lock:
                        self.commands.append(line)
                    up = line.upper()
                    if up.startswith("AT+CMGS="):
                        pending_cmgs = int(up[8:] or "0")
                        conn.sendall(b"\r\n> ")
                        continue
                    conn.sendall(self._answer(up))
        except OSError:
            return
        finally:
            try:
                conn.close()
            except OSError:
                pass
            if conn in self.conns:
                self.conns.remove(conn)

    def _answer(self, up):
        ok = b"\r\nOK\r\n"

        def line(s):
            return b"\r\n" + s.encode() + b"\r\n" + ok
        with self.lock:
            if up == "AT+CPIN?":
                return line("+CPIN: READY")
            if up == "AT+CSQ":
                return line("+CSQ: 20,99")
            if up == "AT+CREG?":
                return line("+CREG: 0,1")
            if up == "AT+CGSN":
                return line("490154203237518")
            if up == "AT+CIMI":
                return line("310150123456789")
            if up == "AT+CPMS?":
                n = len(self.memory)
                return line('+CPMS: "SM",%d,%d,"SM",%d,%d,"SM",%d,%d'
                            % (n, self.slots, n, self.slots, n, self.slots))
            m = re.match(r"AT\+CMGR=(\d+)$", up)
            if m:
                slot = int(m.group(1))
                if slot not in self.memory:
                    return ok
                pdu, ln = self.memory[slot]
                return line("+CMGR: 0,,%d\r\n%s" % (ln, pdu))
            m = re.match(r"AT\+CMGD=(\d+)$", up)
            if m:
                self.memory.pop(int(m.group(1)), None)
                self.lock.notify_all()
                return ok
            return ok

    def _submit(self, pdu, length):
        with self.lock:
            if self.refuse:
                code = self.refuse.pop(0)
                self.refused.append(pdu)
                self.lock.notify_all()
                return b"\r\n+CMS ERROR: %d\r\n" % code
            try:
                s = decode_submit(pdu)
            except (ValueError, IndexError) as e:
                self.refused.append(pdu)
                self.commands.append("undecodable PDU %s: %s" % (pdu, e))
                return b"\r\n+CMS ERROR: 304\r\n"
            mr = self.next_mr
            self.next_mr = self.next_mr % 255 + 1
            s["mr"] = mr
            s["pdu"] = pdu
            s["cmgs_length"] = length
            self.submits.append(s)
            if self.auto_report is not None:
                self._store(status_report_pdu(mr, s["to"], self.auto_report))
            self.lock.notify_all()
            return b"\r\n+CMGS: %d\r\n\r\nOK\r\n" % mr


MODEM_SECTION = """
[{modem}]
device = @127.0.0.1:{port}
incoming = yes
init = ATE0
report = yes
memory_start = 1
socket_connection_retries = -1
send_retries = 1
"""

SMSD_CONF = """\
# smsd for a causeway test; comments must be whole lines.
devices = {modem}
outgoing = {spool}/outgoing
checked = {dir}/checked
incoming = {spool}/incoming
sent = {spool}/sent
failed = {spool}/failed
report = {spool}/report
logfile = {dir}/smsd.log
loglevel = 7
infofile = {dir}/smsd.working
pidfile = {dir}/smsd.pid
stats = {dir}/stats
delaytime = 1
delaytime_mainprocess = 1
errorsleeptime = 1
autosplit = 3
incoming_utf8 = yes
# a test refuses texts on purpose: never block the modem for that
blockafter = 1000
blocktime = 1

""" + MODEM_SECTION


class Smsd:
    """smsd with its spool in spool (outgoing, incoming, sent, failed,
    report) and its own files in dir.  The modem is named after the SIM's
    number (digits, no '+'), which is how causeway learns the number an
    incoming text was sent to."""

    def __init__(self, dir, modem_port, spool=None, modem="15550001",
                 more_modems=()):
        """more_modems: further (name, port) modems; with them every
        modem gets a provider queue, Q and its name (smsd routes a file
        saying "Queue: QNAME" to that modem only; it does not find a
        queue named by digits alone)."""
        self.dir = dir
        self.spool = spool or os.path.join(dir, "spool")
        self.modem = modem
        self.conf = os.path.join(dir, "smsd.conf")
        self.pidfile = os.path.join(dir, "smsd.pid")
        self.log = os.path.join(dir, "smsd.log")
        self.proc = None
        self.pid = None
        for d in ("outgoing", "incoming", "sent", "failed", "report"):
            os.makedirs(os.path.join(self.spool, d), exist_ok=True)
        for d in ("checked", "stats"):
            os.makedirs(os.path.join(dir, d), exist_ok=True)
        modems = [(modem, modem_port)] + list(more_modems)
        conf = SMSD_CONF.format(dir=dir, spool=self.spool, port=modem_port,
                                modem=modem)
        if more_modems:
            conf = conf.replace("devices = %s\n" % modem, "devices = %s\n"
                                % ", ".join(m for m, _ in modems))
            conf += "queues = Q%s\n" % modem
            for name, port in more_modems:
                conf += MODEM_SECTION.format(modem=name, port=port) + \
                    "queues = Q%s\n" % name
            # smsd reads [queues] before the modems that name them.
            queues = "[queues]\n"
            for name, _ in modems:
                q = os.path.join(self.spool, "Q" + name)
                os.makedirs(q, exist_ok=True)
                queues += "Q%s = %s\n" % (name, q)
            head, sep, rest = conf.partition("\n[%s]\n" % modem)
            conf = head + "\n" + queues + sep + rest
        with open(self.conf, "w") as f:
            f.write(conf)

    def start(self, timeout=20):
        start = os.path.getsize(self.log) if os.path.exists(self.log) else 0
        if os.path.exists(self.pidfile):
            os.unlink(self.pidfile)
        self.out = open(os.path.join(self.dir, "smsd.out"), "ab")
        self.proc = subprocess.Popen(["smsd", "-t", "-c", self.conf],
                                     cwd=self.dir, stdout=self.out,
                                     stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("smsd exited with %d" % self.proc.returncode)
            if self.pid is None and os.path.exists(self.pidfile):
                try:
                    with open(self.pidfile) as f:
                        self.pid = int(f.read().strip() or "0") or None
                except (OSError, ValueError):
                    pass
            if self.pid and self._log_since(start, r"No SMS received|Used memory|Checking device for incoming SMS"):
                return
            time.sleep(0.1)
        raise RuntimeError("smsd not ready after %d s" % timeout)

    def _log_since(self, start, rx):
        try:
            with open(self.log, "rb") as f:
                f.seek(start)
                return re.search(rx.encode(), f.read()) is not None
        except OSError:
            return False

    def log_has(self, rx):
        return self._log_since(0, rx)

    def stop(self, timeout=10):
        """SIGTERM to the main process (its modem handler exits with it)."""
        if self.proc is None:
            return
        pid = self.pid or self.proc.pid
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None
        self.pid = None

    def files(self, sub):
        d = os.path.join(self.spool, sub)
        return sorted(n for n in os.listdir(d) if not n.startswith("."))

    def drop(self, name, text, to="15551234567", headers=""):
        """An outgoing file written elsewhere and renamed in, as causeway
        does."""
        tmp = os.path.join(self.dir, name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(("To: %s\nAlphabet: UTF-8\n%s\n" % (to, headers)).encode()
                    + text.encode())
        os.rename(tmp, os.path.join(self.spool, "outgoing", name))
