"""fakeimap: a small IMAP server for causeway's email tests that can be
told to misbehave.

It speaks just enough IMAP4rev1 for causeway's client (CAPABILITY,
STARTTLS, LOGIN, SELECT, UID FETCH, UID SEARCH UNSEEN, UID STORE, IDLE,
NOOP, LOGOUT) over TLS (implicit, or STARTTLS) with the certificate it is
given, on a free 127.0.0.1 port, one thread per connection.  It records
every command line it receives (FakeImap.commands) and when each
connection was accepted (FakeImap.accepted), so a test can check that no
LOGIN was ever sent, or how far apart the reconnections were.

FakeImap.mode picks a misbehaviour, applied from the next command on:

  normal        answers properly
  close_fetch   closes the connection in the middle of a mail's FETCH
  garbage       answers a mail's FETCH with bytes that are not IMAP
  endless       answers a mail's FETCH with a line that never ends
                (bounded: it stops after ENDLESS_MAX bytes or when the
                client hangs up)
  silent_login  never answers LOGIN
  literal_2g    announces a 2 GB literal for a mail's body and sends
                bytes until the client hangs up (bounded as above)
  bad_greeting  greets with bytes that are not IMAP
  close_greeting  closes the connection instead of greeting
  trickle       sends its greeting one byte every 2 s (a server that is
                slow but never silent for long)

Without idle=True the IDLE capability is not announced (the client must
poll).  set_uidvalidity() renumbers the mailbox as a server that lost
its index would.  Everything runs on 127.0.0.1 only and stops by itself
at stop() or at exit.
"""

import os
import re
import select
import socket
import ssl
import threading
import time

import cwtest

ENDLESS_MAX = 64 * 1024 * 1024
MODES = ("normal", "close_fetch", "garbage", "endless", "silent_login",
         "literal_2g", "bad_greeting", "close_greeting", "trickle")


class _Conn:
    def __init__(self, server, sock):
        self.server = server
        self.sock = sock
        self.buf = b""
        self.wlock = threading.Lock()
        self.idling = False
        self.closed = False
        self.known = 0          # mails this client was told about
        self.wake = False       # new mail while idling
        self.say = []           # raw bytes to send while idling

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        with self.wlock:
            if self.closed:
                return
            try:
                self.sock.sendall(data)
            except OSError:
                self.close()

    def close(self):
        if self.closed:
            return
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass

    def readline(self, limit=1 << 20):
        while b"\n" not in self.buf:
            if len(self.buf) > limit:
                return None
            try:
                data = self.sock.recv(65536)
            except (OSError, ssl.SSLError):
                return None
            if not data:
                return None
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r")

    def idle_line(self, on_wake):
        """The next line, calling on_wake() whenever self.wake is set
        meanwhile; None at EOF."""
        while b"\n" not in self.buf:
            while self.say:
                self.send(self.say.pop(0))
            if self.wake:
                self.wake = False
                self.server.note(0, "wake")
                on_wake()
            pending = getattr(self.sock, "pending", lambda: 0)()
            if not pending:
                try:
                    r, _, _ = select.select([self.sock], [], [], 0.05)
                except (OSError, ValueError):
                    return None
                if not r:
                    continue
            try:
                data = self.sock.recv(65536)
            except ssl.SSLWantReadError:
                continue
            except (OSError, ssl.SSLError):
                return None
            if not data:
                return None
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r")

    def read_exact(self, n):
        while len(self.buf) < n:
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buf += data
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def command(self):
        """One command line, with any literals ({n}) read in."""
        line = self.readline()
        if line is None:
            return None
        while True:
            m = re.search(rb"\{(\d+)\+?\}$", line)
            if not m or int(m.group(1)) > 65536:
                return line
            if not line.endswith(b"+}"):
                self.send("+ go on\r\n")
            data = self.read_exact(int(m.group(1)))
            rest = self.readline()
            if data is None or rest is None:
                return None
            line = line[:m.start()] + b'"' + data + b'"' + rest

    def flood(self, prefix):
        """prefix, then bytes without a line end until the client hangs
        up or ENDLESS_MAX bytes went out."""
        self.send(prefix)
        chunk = b"x" * 65536
        sent = 0
        self.sock.settimeout(30)
        while sent < ENDLESS_MAX and not self.closed:
            try:
                self.sock.sendall(chunk)
            except (OSError, ssl.SSLError):
                break
            sent += len(chunk)
        self.server.flooded.append(sent)


def _uid_set(spec, uids):
    """The UIDs of uids that the sequence set spec names."""
    top = max(uids) if uids else 0
    out = set()
    for part in spec.split(","):
        if ":" in part:
            a, b = part.split(":", 1)
            a = top if a == "*" else int(a)
            b = top if b == "*" else int(b)
            lo, hi = min(a, b), max(a, b)
            # "n:*" names the last mail even when its UID is below n
            hits = [u for u in uids if lo <= u <= hi]
            if not hits and b == top and uids and "*" in part:
                hits = [top]
            out.update(hits)
        else:
            u = top if part == "*" else int(part)
            if u in uids:
                out.add(u)
    return sorted(out)


class FakeImap:
    def __init__(self, cert, key, tls="implicit", idle=True, tap=None):
        self.cert, self.key = cert, key
        self.tls = tls
        self.idle = idle
        self.tap = tap
        self.port = cwtest.free_ports(1)[0]
        self.mode = "normal"
        self.uidvalidity = 100
        self.mails = []           # [uid, raw bytes, seen]
        self.next_uid = 1
        self.commands = []        # (connection number, command line)
        self.accepted = []        # monotonic time of each connection
        self.flooded = []         # bytes sent by each flood
        self.lock = threading.Lock()
        self.conns = []
        self.log = os.path.join(cwtest.make_tempdir("cwtest-fakeimap-"),
                                "fakeimap.log")
        self.logf = open(self.log, "a")
        if tap:
            tap.watch("fakeimap %d log" % self.port, self.log)
        self.listener = None
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        cwtest.on_exit(self.stop)

    # -- control --

    def start(self):
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((cwtest.LOOPBACK, self.port))
        self.listener.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    def stop(self):
        if self.listener is not None:
            # close() alone leaves a socket another thread is blocked in
            # accept() on listening until that accept returns: shutdown
            # wakes it, so the port refuses connections from here on.
            try:
                self.listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                self.listener.close()
            except OSError:
                pass
            self.listener = None
        self.drop_all()

    def drop_all(self):
        """Closes every connection (a server restart, as a client sees
        it)."""
        with self.lock:
            conns, self.conns = self.conns, []
        for c in conns:
            c.close()

    def add_mail(self, raw, seen=False):
        if isinstance(raw, str):
            raw = raw.encode()
        with self.lock:
            uid = self.next_uid
            self.next_uid += 1
            self.mails.append([uid, raw, seen])
            idlers = [c for c in self.conns if c.idling]
        for c in idlers:
            # its own thread tells it (one SSL object, one thread)
            c.wake = True
        return uid

    def idle_say(self, raw):
        """Sends raw (bytes or str) to every connection in IDLE, from its
        own thread; returns how many were idling."""
        if isinstance(raw, str):
            raw = raw.encode()
        with self.lock:
            idlers = [c for c in self.conns if c.idling]
        for c in idlers:
            c.say.append(raw)
        return len(idlers)

    def set_uidvalidity(self, value):
        """A new UIDVALIDITY, the mails renumbered from 1 (as a server
        that rebuilt its index)."""
        with self.lock:
            self.uidvalidity = value
            for i, m in enumerate(self.mails):
                m[0] = i + 1
            self.next_uid = len(self.mails) + 1

    def note(self, n, what):
        with self.lock:
            self.logf.write("%.3f [%d] %s\n" % (time.monotonic(), n, what))
            self.logf.flush()

    def saw(self, regex):
        """Command lines (any connection) matching regex (bytes)."""
        rx = re.compile(regex, re.I)
        return [c for _, c in self.commands if rx.search(c)]

    # -- serving --

    def _accept(self):
        n = 0
        while self.listener is not None:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            n += 1
            self.accepted.append(time.monotonic())
            self.note(n, "accepted")
            threading.Thread(target=self._serve, args=(sock, n),
                             daemon=True).start()

    def _caps(self, secure):
        caps = "IMAP4rev1"
        if self.idle:
            caps += " IDLE"
        if not secure and self.tls == "starttls":
            caps += " STARTTLS"
        return caps

    def _serve(self, sock, n):
        sock.settimeout(120)
        secure = False
        if self.tls == "implicit":
            try:
                sock = self.ctx.wrap_socket(sock, server_side=True)
            except (OSError, ssl.SSLError):
                sock.close()
                return
            secure = True
        c = _Conn(self, sock)
        with self.lock:
            self.conns.append(c)
        try:
            if self.mode == "close_greeting":
                return
            if self.mode == "bad_greeting":
                c.send(b"\xff\xfe HELLO ((( {5}\r\n")
                while c.readline() is not None:
                    pass
                return
            if self.mode == "trickle":
                for b in b"* OK fake IMAP ready, slowly\r\n":
                    if c.closed:
                        return
                    c.send(bytes([b]))
                    time.sleep(2)
            else:
                c.send("* OK fake IMAP ready\r\n")
            while not c.closed:
                line = c.command()
                if line is None:
                    break
                self.commands.append((n, line))
                self.note(n, "C: %r mode=%s" % (line[:100], self.mode))
                parts = line.split(b" ", 2)
                if len(parts) < 2:
                    c.send("* BAD what?\r\n")
                    continue
                tag = parts[0].decode(errors="replace")
                cmd = parts[1].decode(errors="replace").upper()
                args = parts[2].decode(errors="replace") if len(parts) > 2 \
                    else ""
                if cmd == "UID" and args:
                    sub, _, args = args.partition(" ")
                    cmd = "UID " + sub.upper()
                if cmd == "STARTTLS" and not secure:
                    c.send("%s OK begin TLS now\r\n" % tag)
                    try:
                        c.sock = self.ctx.wrap_socket(c.sock,
                                                      server_side=True)
                    except (OSError, ssl.SSLError):
                        break
                    secure = True
                    continue
                if not self._command(c, tag, cmd, args, secure):
                    break
        finally:
            self.note(n, "closed")
            c.close()
            with self.lock:
                if c in self.conns:
                    self.conns.remove(c)

    def _command(self, c, tag, cmd, args, secure):
        mode = self.mode
        if cmd == "CAPABILITY":
            c.send("* CAPABILITY %s\r\n%s OK done\r\n"
                   % (self._caps(secure), tag))
        elif cmd in ("LOGIN", "AUTHENTICATE"):
            if mode == "silent_login":
                # read on (so the client's close is noticed), answer never
                while c.readline() is not None:
                    pass
                return False
            c.send("%s OK logged in\r\n" % tag)
        elif cmd in ("SELECT", "EXAMINE"):
            with self.lock:
                n = len(self.mails)
                c.known = n
                c.send("* %d EXISTS\r\n* 0 RECENT\r\n* FLAGS (\\Seen)\r\n"
                       "* OK [UIDVALIDITY %d] ok\r\n* OK [UIDNEXT %d] ok\r\n"
                       "%s OK [READ-WRITE] done\r\n"
                       % (n, self.uidvalidity, self.next_uid, tag))
        elif cmd == "UID FETCH":
            return self._fetch(c, tag, args, mode)
        elif cmd == "UID SEARCH":
            with self.lock:
                hits = [str(m[0]) for m in self.mails
                        if "UNSEEN" in args.upper() and not m[2]]
            c.send("* SEARCH%s\r\n%s OK done\r\n"
                   % ("".join(" " + h for h in hits), tag))
        elif cmd == "UID STORE":
            spec = args.split(" ", 1)[0]
            with self.lock:
                uids = _uid_set(spec, [m[0] for m in self.mails])
                for m in self.mails:
                    if m[0] in uids and "\\SEEN" in args.upper():
                        m[2] = True
            c.send("%s OK done\r\n" % tag)
        elif cmd == "IDLE" and self.idle:
            with self.lock:
                c.idling = True
                n = len(self.mails)
                news = n > c.known
                c.known = n
            c.send("+ idling\r\n")
            if news:
                # what came since the client last looked, as servers do
                c.send("* %d EXISTS\r\n" % n)
            while True:
                line = c.idle_line(lambda: self._news(c))
                if line is None:
                    return False
                self.commands.append((0, line))
                if line.strip().upper() == b"DONE":
                    break
            c.idling = False
            c.send("%s OK IDLE done\r\n" % tag)
        elif cmd == "NOOP":
            self._news(c)
            c.send("%s OK done\r\n" % tag)
        elif cmd == "LOGOUT":
            c.send("* BYE\r\n%s OK done\r\n" % tag)
            return False
        else:
            c.send("%s BAD unknown command\r\n" % tag)
        return True

    def _fetch(self, c, tag, args, mode):
        spec, _, what = args.partition(" ")
        with self.lock:
            seqs = {m[0]: i + 1 for i, m in enumerate(self.mails)}
            uids = _uid_set(spec, list(seqs))
            mails = {m[0]: m[1] for m in self.mails}
        body = "BODY" in what.upper()
        out = []
        for uid in uids:
            if not body:
                out.append("* %d FETCH (UID %d)\r\n" % (seqs[uid], uid))
                continue
            raw = mails[uid]
            m = re.search(r"<0\.(\d+)>", what)
            part = raw[:int(m.group(1))] if m else raw
            head = "* %d FETCH (UID %d RFC822.SIZE %d BODY[]<0> " % (
                seqs[uid], uid, len(raw))
            if mode == "close_fetch":
                c.send(head + "{%d}\r\n" % len(part))
                c.send(part[:len(part) // 2])
                return False
            if mode == "garbage":
                c.send(b"\x00\x01\xfe garbage ((( \" {99x}\r\n" + tag.encode()
                       + b" ??\r\n")
                return True
            if mode == "endless":
                c.flood(head.encode())
                return False
            if mode == "literal_2g":
                c.flood(("* %d FETCH (UID %d RFC822.SIZE 2147483648 BODY[]<0> "
                         "{2147483648}\r\n" % (seqs[uid], uid)).encode())
                return False
            out.append(head.encode() + b"{%d}\r\n" % len(part) + part
                       + b")\r\n")
        for o in out:
            c.send(o)
        self._news(c)
        c.send("%s OK done\r\n" % tag)
        return True

    def _news(self, c):
        """Tells c of mails added since it last heard (as servers do
        with any command's answer)."""
        with self.lock:
            n = len(self.mails)
            news = n > c.known
            c.known = n
        if news:
            c.send("* %d EXISTS\r\n" % n)


class FakeSmtp:
    """A submission server that speaks TLS 1.3 only (no session tickets)
    after STARTTLS, takes any AUTH PLAIN, and keeps the mails it
    accepts (FakeSmtp.mails: (rcpt, data)).  handshakes records how each
    STARTTLS went ("TLSv1.3", or the error); commands every command verb
    received, with whether TLS was on ("AUTH", True).

    implicit: TLS from the first byte (port 465).  mode (may change while
    running): "normal"; "auth_before_tls" (AUTH offered only before
    STARTTLS); "no_starttls" (never offers it); "plain" (speaks plaintext
    SMTP from the first byte whatever the client expects)."""

    def __init__(self, cert, key, implicit=False, mode="normal"):
        self.port = cwtest.free_ports(1)[0]
        self.mails = []
        self.handshakes = []
        self.commands = []
        self.implicit = implicit
        self.mode = mode
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        self.ctx.num_tickets = 0
        self.listener = None
        cwtest.on_exit(self.stop)

    def start(self):
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((cwtest.LOOPBACK, self.port))
        self.listener.listen(8)
        threading.Thread(target=self._accept, daemon=True).start()

    def stop(self):
        if self.listener is not None:
            # close() alone leaves a socket another thread is blocked in
            # accept() on listening until that accept returns: shutdown
            # wakes it, so the port refuses connections from here on.
            try:
                self.listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                self.listener.close()
            except OSError:
                pass
            self.listener = None

    def _accept(self):
        while self.listener is not None:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(sock,),
                             daemon=True).start()

    def _serve(self, sock):
        sock.settimeout(30)
        c = _Conn(self, sock)
        secure = False
        rcpt = None
        if self.implicit and self.mode != "plain":
            try:
                c.sock = self.ctx.wrap_socket(c.sock, server_side=True)
            except (OSError, ssl.SSLError) as e:
                self.handshakes.append("refused: %s" % e)
                c.close()
                return
            self.handshakes.append(c.sock.version())
            secure = True
        try:
            c.send("220 fake ESMTP\r\n")
            while True:
                line = c.readline()
                if line is None:
                    return
                verb = line.split(b" ", 1)[0].upper()
                self.commands.append((verb.decode("ascii", "replace"),
                                      secure))
                if verb in (b"EHLO", b"HELO"):
                    offer = ""
                    if self.mode == "auth_before_tls":
                        offer = "" if secure else \
                            "250-AUTH PLAIN LOGIN\r\n250-STARTTLS\r\n"
                    elif self.mode in ("no_starttls", "plain"):
                        offer = "250-AUTH PLAIN LOGIN\r\n"
                    else:
                        offer = "250-AUTH PLAIN\r\n" if secure else \
                            "250-STARTTLS\r\n"
                    c.send("250-fake\r\n%s250 8BITMIME\r\n" % offer)
                elif verb == b"STARTTLS" and not secure and \
                        self.mode not in ("no_starttls", "plain"):
                    c.send("220 go ahead\r\n")
                    try:
                        c.sock = self.ctx.wrap_socket(c.sock,
                                                      server_side=True)
                    except (OSError, ssl.SSLError) as e:
                        self.handshakes.append("refused: %s" % e)
                        return
                    self.handshakes.append(c.sock.version())
                    secure = True
                elif verb == b"AUTH":
                    if len(line.split(b" ")) < 3:
                        c.send("334 \r\n")
                        if c.readline() is None:
                            return
                    c.send("235 2.7.0 ok\r\n")
                elif verb == b"MAIL":
                    c.send("250 2.1.0 ok\r\n")
                elif verb == b"RCPT":
                    rcpt = line.split(b":", 1)[-1].strip(b" <>").decode()
                    c.send("250 2.1.5 ok\r\n")
                elif verb == b"DATA":
                    c.send("354 go on\r\n")
                    data = []
                    while True:
                        ln = c.readline()
                        if ln is None:
                            return
                        if ln == b".":
                            break
                        data.append(ln[1:] if ln.startswith(b".") else ln)
                    self.mails.append((rcpt, b"\r\n".join(data)))
                    c.send("250 2.0.0 queued\r\n")
                elif verb == b"QUIT":
                    c.send("221 bye\r\n")
                    return
                else:
                    c.send("250 ok\r\n" if verb in (b"RSET", b"NOOP")
                           else "502 not here\r\n")
        finally:
            c.close()

    def note(self, n, what):
        pass
