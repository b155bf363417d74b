"""Component tests: this program plays the XMPP server.

It listens on a free loopback port, accepts causeway's XEP-0114
connection, checks the SHA-1 handshake, and then sends stanzas and
expects stanzas.  Everything causeway writes goes through an incremental
XML parser, so a byte of malformed output fails the test that caused it.

Only the standard library is used, so the tests run wherever python3 is.
"""

import hashlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

NS_COMPONENT = "jabber:component:accept"
NS_STREAMS = "http://etherx.jabber.org/streams"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_STREAM_ERRORS = "urn:ietf:params:xml:ns:xmpp-streams"

HERE = os.path.dirname(os.path.abspath(__file__))


def causeway_bin():
    env = os.environ.get("CAUSEWAY_BIN")
    if env:
        return os.path.abspath(env)
    return os.path.abspath(os.path.join(HERE, "..", "..", "causeway"))


def q(ns, name):
    return "{%s}%s" % (ns, name)


class Tap:
    """TAP output: ok / not ok lines, a plan at the end."""

    def __init__(self):
        self.n = 0
        self.failed = 0

    def check(self, cond, name, diag=None):
        self.n += 1
        if cond:
            print("ok %d - %s" % (self.n, name))
        else:
            self.failed += 1
            print("not ok %d - %s" % (self.n, name))
            if diag:
                for line in str(diag).splitlines()[-40:]:
                    print("#   " + line)
        sys.stdout.flush()
        return cond

    def done(self):
        print("1..%d" % self.n)
        return 1 if self.failed else 0


class Conn:
    """One accepted component connection, seen from the server side."""

    def __init__(self, sock, secret, domain, stream_id, accept=True):
        self.sock = sock
        self.secret = secret
        self.domain = domain
        self.stream_id = stream_id
        self.parser = ET.XMLPullParser(events=("start", "end"))
        self.depth = 0
        self.stanzas = []
        self.root = None
        self.closed = False
        self.handshake_ok = None
        self.accept = accept

    def fill(self, timeout):
        """Read what arrives within timeout; False when the peer closed."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return True
        except OSError:
            self.closed = True
            return False
        if not data:
            self.closed = True
            return False
        self.parser.feed(data)
        for ev, el in self.parser.read_events():
            if ev == "start":
                self.depth += 1
                if self.depth == 1:
                    self.root = el
            elif ev == "end":
                self.depth -= 1
                if self.depth == 1:
                    self.stanzas.append(el)
                    self.root.remove(el)
                elif self.depth == 0:
                    self.closed = True
        return True

    def next_stanza(self, timeout=5.0, pred=None):
        """The first stanza (matching pred) that arrives; None on timeout."""
        deadline = time.time() + timeout
        while True:
            for i, st in enumerate(self.stanzas):
                if pred is None or pred(st):
                    del self.stanzas[i]
                    return st
            left = deadline - time.time()
            if left <= 0 or self.closed:
                return None
            if not self.fill(min(left, 0.2)) and not self.stanzas:
                return None

    def handshake(self, timeout=5.0):
        """Read the stream header, answer it, check the handshake; the
        result is also in handshake_ok (None: no handshake arrived)."""
        deadline = time.time() + timeout
        while self.root is None and time.time() < deadline:
            if not self.fill(0.2):
                return False
        if self.root is None:
            return False
        if self.root.tag != q(NS_STREAMS, "stream") or \
                self.root.get("to") != self.domain:
            return False
        self.send("<?xml version='1.0'?><stream:stream xmlns:stream='%s' "
                  "xmlns='%s' id='%s' from='%s'>" %
                  (NS_STREAMS, NS_COMPONENT, self.stream_id, self.domain))
        hs = self.next_stanza(timeout=max(0.1, deadline - time.time()))
        if hs is None or hs.tag != q(NS_COMPONENT, "handshake"):
            return False
        want = hashlib.sha1((self.stream_id + self.secret).encode()).hexdigest()
        self.handshake_ok = (hs.text or "").strip() == want
        if self.handshake_ok and self.accept:
            self.send("<handshake/>")
        else:
            self.send("<stream:error><not-authorized xmlns='%s'/>"
                      "</stream:error></stream:stream>" % NS_STREAM_ERRORS)
        return self.handshake_ok

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        try:
            self.sock.sendall(data)
        except OSError:
            self.closed = True

    def iq(self, xml_payload, type_="get", to=None, frm="alice@localhost/res",
           id_="q1", timeout=5.0):
        to = to or self.domain
        self.send("<iq type='%s' id='%s' to='%s' from='%s'>%s</iq>" %
                  (type_, id_, to, frm, xml_payload))
        return self.next_stanza(
            timeout, lambda s: s.get("id") == id_ and s.tag == q(NS_COMPONENT, "iq"))

    def stream_error(self, timeout=5.0):
        """The condition of a <stream:error/> that arrives, or None."""
        st = self.next_stanza(timeout, lambda s: s.tag == q(NS_STREAMS, "error"))
        if st is None:
            return None
        for ch in st:
            if ch.tag.startswith("{%s}" % NS_STREAM_ERRORS) and \
                    not ch.tag.endswith("}text"):
                return ch.tag.split("}")[1]
        return "?"

    def wait_closed(self, timeout=5.0):
        deadline = time.time() + timeout
        while not self.closed and time.time() < deadline:
            self.fill(0.2)
        return self.closed

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def error_condition(st):
    """(type, condition) of a stanza error, or None."""
    if st is None or st.get("type") != "error":
        return None
    err = st.find(q(NS_COMPONENT, "error"))
    if err is None:
        return None
    for ch in err:
        if ch.tag.startswith("{%s}" % NS_STANZAS) and not ch.tag.endswith("}text"):
            return (err.get("type"), ch.tag.split("}")[1])
    return (err.get("type"), None)


class FakeServer:
    """A listening socket that plays the XMPP server's component port."""

    def __init__(self, domain="irc.localhost", secret="s3cret"):
        self.domain = domain
        self.secret = secret
        self.listener = None
        self.port = None
        self.counter = 0
        self.listen()

    def listen(self, port=None):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port or 0))
        s.listen(16)
        self.listener = s
        self.port = s.getsockname()[1]

    def stop_listening(self):
        if self.listener:
            self.listener.close()
            self.listener = None

    def accept(self, timeout=10.0, handshake=True, accept=True, secret=None):
        self.listener.settimeout(timeout)
        try:
            sock, _ = self.listener.accept()
        except socket.timeout:
            return None
        self.counter += 1
        conn = Conn(sock, secret or self.secret, self.domain,
                    "sid%d" % self.counter, accept=accept)
        if handshake:
            conn.handshake()
        return conn

    def close(self):
        self.stop_listening()


class Causeway:
    """causeway started on a config in a temp dir; stopped on close()."""

    def __init__(self, port, domain="irc.localhost", secret="s3cret",
                 extra="", general_extra="", backend="irc", tmp=None):
        self.tmp = tmp or tempfile.mkdtemp(prefix="cw-comp-")
        self.conf = os.path.join(self.tmp, "causeway.conf")
        self.log = os.path.join(self.tmp, "causeway.log")
        self.write_config(port, domain, secret, extra, general_extra, backend)
        self.proc = None

    def write_config(self, port, domain="irc.localhost", secret="s3cret",
                     extra="", general_extra="", backend="irc"):
        with open(self.conf, "w") as f:
            f.write("[causeway]\n"
                    "database = %s/causeway.db\n"
                    "key_file = %s/secret.key\n"
                    "log_level = debug\n%s\n"
                    "[component %s]\n"
                    "backend = %s\n"
                    "server = 127.0.0.1\n"
                    "port = %d\n"
                    "secret = %s\n%s\n" %
                    (self.tmp, self.tmp, general_extra, domain, backend, port,
                     secret, extra))

    def start(self):
        self.logf = open(self.log, "ab")
        self.proc = subprocess.Popen([causeway_bin(), "-c", self.conf],
                                     stdout=self.logf, stderr=subprocess.STDOUT,
                                     cwd=self.tmp)
        return self

    def log_text(self):
        try:
            with open(self.log, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_log(self, needle, count=1, timeout=10.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.log_text().count(needle) >= count:
                return True
            time.sleep(0.05)
        return False

    def signal(self, sig):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait_exit(self, timeout=10.0):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def close(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        if getattr(self, "logf", None):
            self.logf.close()


def run_causeway(args, timeout=10):
    """Run causeway to completion (for --check-config, --version)."""
    p = subprocess.run([causeway_bin()] + args, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace"), \
        p.stderr.decode("utf-8", "replace")
