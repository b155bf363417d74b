"""cwtest: helpers for causeway's end-to-end tests.

Run the tests with Debian's interpreter, /usr/bin/python3: it is the one
that has python3-slixmpp.  Only the standard library and slixmpp are used.

What this module does:
  * picks free TCP ports on 127.0.0.1 at run time and makes temp dirs;
  * writes server configs from the templates next to this file
    (prosody.cfg.lua.in, ejabberd.yml.in, ejabberdctl.cfg.in) and starts,
    stops, restarts and registers users on a private Prosody or ejabberd;
  * writes a causeway config, starts the causeway binary (CAUSEWAY_BIN,
    default ../../causeway relative to this file) and watches its log;
  * logs in with a slixmpp client and sends iqs;
  * prints TAP ("ok N - ...", "not ok N - ...", "# ..."), dumping the tail
    of the relevant logs on a failure.

Every process started here is stopped on exit, also after a failure, an
exception or SIGTERM/SIGINT/SIGHUP: by PID, never by name.  Temp dirs are
removed on exit unless CWTEST_KEEP=1 is set (or a test failed and
CWTEST_KEEP_ON_FAIL=1 is set); their paths are printed as TAP comments.
"""

import asyncio
import atexit
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
LOOPBACK = "127.0.0.1"

# --------------------------------------------------------------------------
# TAP output


class Tap:
    """TAP producer.  Failures print diagnostics and the tail of the logs
    registered with watch()."""

    def __init__(self):
        self.n = 0
        self.failed = 0
        self.logs = []          # (label, path) dumped on failure
        self.t0 = time.monotonic()

    def diag(self, *lines):
        for text in lines:
            for line in str(text).splitlines() or [""]:
                print("# " + line, flush=True)

    def watch(self, label, path):
        if (label, path) not in self.logs:
            self.logs.append((label, path))

    def unwatch(self, path):
        self.logs = [(l, p) for (l, p) in self.logs if p != path]

    def dump_logs(self, lines=25):
        for label, path in self.logs:
            self.diag("---- last %d lines of %s (%s) ----" % (lines, label, path))
            self.diag(*tail(path, lines))

    def ok(self, cond, desc, diag=None, todo=None):
        """One test.  With todo (a reason), a failure is reported as
        "not ok ... # TODO reason" and does not fail the run (TAP TODO: a
        known defect); remove the todo once it passes."""
        self.n += 1
        desc = desc.replace("#", "\\#")
        if todo:
            print("%s %d - %s # TODO %s" % ("ok" if cond else "not ok", self.n,
                                           desc, todo), flush=True)
            if cond:
                self.diag("TODO test passed: the todo can be removed")
            elif diag:
                self.diag(diag)
            return bool(cond)
        if cond:
            print("ok %d - %s" % (self.n, desc), flush=True)
        else:
            self.failed += 1
            print("not ok %d - %s" % (self.n, desc), flush=True)
            if diag:
                self.diag(diag)
            self.dump_logs()
        return bool(cond)

    def skip(self, desc, reason):
        self.n += 1
        print("ok %d - %s # SKIP %s" % (self.n, desc, reason), flush=True)

    def bail(self, desc, exc=None):
        """Record an unexpected exception as a failure."""
        import traceback
        self.ok(False, desc, diag="".join(traceback.format_exception(exc)) if exc else None)

    def finish(self):
        print("1..%d" % self.n, flush=True)
        self.diag("%d of %d failed; %.1f s" % (self.failed, self.n,
                                               time.monotonic() - self.t0))
        return 1 if self.failed or self.n == 0 else 0


def tail(path, n=25):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError as e:
        return ["(cannot read: %s)" % e]
    return data.splitlines()[-n:] or ["(empty)"]


# --------------------------------------------------------------------------
# Processes, ports, temp dirs, cleanup

_cleanups = []              # callables, run last-in first-out on exit
_tempdirs = []
_any_failure = [False]


def on_exit(fn):
    _cleanups.append(fn)
    return fn


def _run_cleanups():
    while _cleanups:
        fn = _cleanups.pop()
        try:
            fn()
        except Exception as e:          # keep cleaning up
            print("# cleanup error: %r" % (e,), flush=True)
    keep = os.environ.get("CWTEST_KEEP") == "1" or (
        _any_failure[0] and os.environ.get("CWTEST_KEEP_ON_FAIL") == "1")
    for d in _tempdirs:
        if keep:
            print("# kept %s" % d, flush=True)
        else:
            shutil.rmtree(d, ignore_errors=True)


atexit.register(_run_cleanups)


def _on_signal(signum, _frame):
    # Turn the signal into an exception so that finally blocks and atexit
    # handlers run and every child gets stopped.
    raise SystemExit(128 + signum)


for _sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(_sig, _on_signal)


def mark_failed():
    _any_failure[0] = True


def make_tempdir(prefix="cwtest-"):
    d = tempfile.mkdtemp(prefix=prefix)
    _tempdirs.append(d)
    return d


def free_ports(n):
    """n distinct free TCP ports on 127.0.0.1 (bound together, then freed)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((LOOPBACK, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def port_open(port, host=LOOPBACK):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_until(pred, timeout, interval=0.1):
    """Poll pred() until it returns something true or timeout; return it."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def pid_alive(pid):
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still "exists"; check /proc for state Z.
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def stop_pid(pid, timeout=10, sig=signal.SIGTERM, popen=None):
    """Send sig to pid, wait for it to go, SIGKILL after timeout.  Returns
    True if it went away after sig (without SIGKILL)."""
    if popen is not None and popen.poll() is not None:
        return True
    if not pid_alive(pid):
        if popen is not None:
            popen.poll()
        return True
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return True

    def gone():
        if popen is not None:
            return popen.poll() is not None
        return not pid_alive(pid)
    if wait_until(gone, timeout, 0.05):
        return True
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    wait_until(gone, 5, 0.05)
    return False


def fill_template(name, dest, **values):
    """Copy tests/e2e/NAME to DEST, replacing @KEY@ by values[KEY]."""
    with open(os.path.join(HERE, name)) as f:
        text = f.read()
    for k, v in values.items():
        text = text.replace("@%s@" % k, str(v))
    left = re.findall(r"@[A-Z_]+@", text)
    if left:
        raise ValueError("%s: unfilled placeholders %s" % (name, sorted(set(left))))
    with open(dest, "w") as f:
        f.write(text)
    return dest


def file_has(path, regex, start=0):
    """Search regex in the file from byte offset start; return the match."""
    try:
        with open(path, "rb") as f:
            f.seek(start)
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    return re.search(regex, data, re.M)


def file_size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def have(cmd):
    return shutil.which(cmd) is not None


# --------------------------------------------------------------------------
# XMPP servers


class Server:
    """Common part of Prosody and ejabberd: a temp dir, ports, start/stop."""

    name = "server"
    host = "localhost"

    def __init__(self, domain="irc.localhost", secret=None, tap=None):
        self.domain = domain
        self.secret = secret or secrets.token_hex(12)
        self.dir = make_tempdir("cwtest-%s-" % self.name)
        self.tap = tap
        self.c2s_port, self.component_port = free_ports(2)
        self.popen = None
        self.pid = None
        self.starts = 0
        on_exit(self.stop)

    @property
    def log(self):
        raise NotImplementedError

    def log_offset(self):
        return file_size(self.log)

    def wait_log(self, regex, timeout, start=0):
        return wait_until(lambda: file_has(self.log, regex, start), timeout)

    def running(self):
        return pid_alive(self.pid)

    def _wait_ports(self, timeout):
        def ready():
            if self.popen.poll() is not None:
                return "died"
            return port_open(self.component_port) and port_open(self.c2s_port)
        r = wait_until(ready, timeout)
        if r != True:       # noqa: E712  ("died" or False)
            raise RuntimeError("%s did not open ports %d/%d within %ds (%s); see %s"
                               % (self.name, self.c2s_port, self.component_port,
                                  timeout, r or "timeout", self.dir))

    def stop(self, timeout=15):
        """SIGTERM the server by PID and wait until it is gone.  Returns
        True for a clean stop."""
        if self.pid is None:
            return True
        clean = stop_pid(self.pid, timeout, popen=self.popen if self.popen
                         and self.popen.pid == self.pid else None)
        self._after_stop()
        self.pid = None
        return clean

    def _after_stop(self):
        if self.popen is not None:
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                stop_pid(self.popen.pid, 5, popen=self.popen)

    def wait_ports_closed(self, timeout=10):
        return wait_until(lambda: not port_open(self.component_port)
                          and not port_open(self.c2s_port), timeout)


def _error_messages_to(path, rx, host, start):
    try:
        with open(path, "rb") as f:
            f.seek(start)
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    hits = []
    for line in data.splitlines():
        m = rx.search(line)
        if m and re.search(r"""type=['"]error['"]""", m.group(1)) and \
                re.search(r"""to=['"]%s['"]""" % re.escape(host), m.group(1)):
            hits.append(line.strip())
    return hits


class Prosody(Server):
    name = "prosody"

    def __init__(self, **kw):
        super().__init__(**kw)
        self.cfg = fill_template(
            "prosody.cfg.lua.in", os.path.join(self.dir, "prosody.cfg.lua"),
            DIR=self.dir, C2S_PORT=self.c2s_port,
            COMPONENT_PORT=self.component_port, DOMAIN=self.domain,
            SECRET=self.secret)
        self.stdout_log = os.path.join(self.dir, "stdout.log")
        if self.tap:
            self.tap.watch("prosody log", self.log)
            self.tap.watch("prosody stdout", self.stdout_log)

    @property
    def log(self):
        return os.path.join(self.dir, "prosody.log")

    def start(self, timeout=30):
        out = open(self.stdout_log, "ab")
        self.popen = subprocess.Popen(
            ["prosody", "-F", "--config", self.cfg], cwd=self.dir,
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        out.close()
        self.pid = self.popen.pid
        self.starts += 1
        self._wait_ports(timeout)

    def register(self, user, password):
        r = subprocess.run(
            ["prosodyctl", "--config", self.cfg, "register", user, self.host,
             password], cwd=self.dir, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("prosodyctl register %s failed: %s"
                               % (user, r.stdout.decode(errors="replace")))

    def clean_close(self, start=0):
        """The log line (after byte offset start) showing that a component
        closed its stream with </stream:stream>: Prosody logs it at debug
        level from the component session ("jcp..."), before "component
        disconnected: irc.localhost (...)"."""
        m = file_has(self.log, r"^.*jcp\w*\s+debug\s+Received </stream:stream>.*$",
                     start)
        return m.group(0) if m else None

    def error_messages_to_server(self, start=0):
        """Lines where the component sent <message type='error'> to the
        server's own JID (e.g. bouncing the XEP-0356 advertisement)."""
        rx = re.compile(r"Received\[component\]: (<message [^>]*>)")
        return _error_messages_to(self.log, rx, self.host, start)


class Ejabberd(Server):
    name = "ejabberd"

    def __init__(self, **kw):
        super().__init__(**kw)
        self.dist_port = free_ports(1)[0]
        while self.dist_port in (self.c2s_port, self.component_port):
            self.dist_port = free_ports(1)[0]
        # Unique node name: the beam.smp is found by it (pgrep -f).
        self.node = "cwtest%d%s@localhost" % (os.getpid(), secrets.token_hex(4))
        cookie = secrets.token_hex(16)
        fill_template("ejabberd.yml.in", os.path.join(self.dir, "ejabberd.yml"),
                      DIR=self.dir, C2S_PORT=self.c2s_port,
                      COMPONENT_PORT=self.component_port, DOMAIN=self.domain,
                      SECRET=self.secret)
        fill_template("ejabberdctl.cfg.in",
                      os.path.join(self.dir, "ejabberdctl.cfg"), DIR=self.dir,
                      NODE=self.node, DIST_PORT=self.dist_port, COOKIE=cookie)
        with open(os.path.join(self.dir, "inetrc"), "w") as f:
            f.write('{lookup,[file,native]}.\n{host,{127,0,0,1},["localhost"]}.\n')
        self.stdout_log = os.path.join(self.dir, "fg.out")
        if self.tap:
            self.tap.watch("ejabberd log", self.log)
            self.tap.watch("ejabberd stdout", self.stdout_log)

    @property
    def log(self):
        return os.path.join(self.dir, "logs", "ejabberd.log")

    def _ctl(self, *args, timeout=60):
        return subprocess.run(
            ["ejabberdctl", "--config-dir", self.dir] + list(args),
            cwd=self.dir, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, timeout=timeout)

    def _find_beam(self):
        r = subprocess.run(
            ["pgrep", "-f", r"beam\.smp .*-sname %s( |$)" % re.escape(self.node)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        pids = [int(p) for p in r.stdout.split()]
        return pids[0] if len(pids) == 1 else None

    def start(self, timeout=60):
        out = open(self.stdout_log, "ab")
        self.popen = subprocess.Popen(
            ["ejabberdctl", "--config-dir", self.dir, "foreground"],
            cwd=self.dir, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT)
        out.close()
        self.starts += 1
        # $! is the ejabberdctl shell script; the VM is found by node name.
        self.pid = wait_until(self._find_beam, 20)
        if not self.pid:
            stop_pid(self.popen.pid, 5, popen=self.popen)
            raise RuntimeError("ejabberd: no beam.smp for node %s" % self.node)
        self._wait_ports(timeout)

    def register(self, user, password):
        r = self._ctl("register", user, self.host, password)
        if r.returncode != 0:
            raise RuntimeError("ejabberdctl register %s failed: %s"
                               % (user, r.stdout.decode(errors="replace")))

    def _after_stop(self):
        # The VM is gone; its ejabberdctl script exits with it.
        super()._after_stop()

    def clean_close(self, start=0):
        """The log line (after byte offset start) where a component
        connection received </stream:stream>.  With loglevel debug,
        ejabberd logs every stream element with the connection's pid:
        "(tcp|<0.423.0>) Received XML on stream = <<...>>"."""
        try:
            with open(self.log, "rb") as f:
                data = f.read().decode("utf-8", "replace")
        except OSError:
            return None
        rx = re.compile(r'\((?:tcp|tls)\|(<[\d.]+>)\) Received XML on stream = '
                        r'<<"(.*)">>\s*$')
        components = set()
        pos = 0
        for line in data.splitlines(True):
            m = rx.search(line)
            if m and "jabber:component:accept" in m.group(2):
                components.add(m.group(1))
            elif m and pos >= start and m.group(2) == "</stream:stream>" \
                    and m.group(1) in components:
                return line.strip()
            pos += len(line.encode("utf-8", "replace"))
        return None

    def error_messages_to_server(self, start=0):
        """Lines where a connection sent <message type='error'> to the
        server's own JID (e.g. the component bouncing the XEP-0356
        advertisement)."""
        rx = re.compile(r'Received XML on stream = <<"(<message [^>]*>)')
        return _error_messages_to(self.log, rx, self.host, start)


# --------------------------------------------------------------------------
# causeway


def causeway_bin():
    """$CAUSEWAY_BIN (relative to the current directory), else the build
    tree's ./causeway two levels above this file."""
    env = os.environ.get("CAUSEWAY_BIN")
    if env:
        return os.path.abspath(env)
    return os.path.normpath(os.path.join(HERE, "..", "..", "causeway"))


class Causeway:
    """One causeway process: its config, its stderr (timestamped on arrival
    by a reader thread and copied to DIR/causeway.log)."""

    # What causeway may log when it closes its stream on shutdown.
    # causeway 0.1 logs "SIGTERM: closing every stream", then per component
    # "irc.localhost: ready -> closing" and "closing -> closed" (debug).
    clean_close_re = re.compile(
        r"(?i)closing -> closed|stream closed|closed cleanly|"
        r"send </stream:stream>")

    def __init__(self, server, secret=None, name="causeway", tap=None,
                 log_level="debug", domain=None, backend="irc", options=None,
                 sections=None, general=None):
        """backend: the component's backend (irc, echo, ...); options: a
        dict of further keys for the component section (e.g. linger);
        sections: further sections after it, a list of (header, dict),
        e.g. [("irc-server 127.0.0.1", {"port": 6667, "tls": "no"})];
        general: further keys for [causeway] (e.g. destinations_allow)."""
        self.server = server
        self.domain = domain or server.domain
        self.secret = secret if secret is not None else server.secret
        self.dir = make_tempdir("cwtest-%s-" % name)
        self.name = name
        self.cfg = os.path.join(self.dir, "causeway.conf")
        self.logfile = os.path.join(self.dir, "causeway.log")
        with open(self.cfg, "w") as f:
            f.write("[causeway]\n"
                    "database = %s/causeway.db\n"
                    "key_file = %s/secret.key\n"
                    "log_level = %s\n"
                    "%s"
                    "\n"
                    "[component %s]\n"
                    "backend = %s\n"
                    "server = %s\n"
                    "port = %d\n"
                    "secret = %s\n"
                    % (self.dir, self.dir, log_level, "".join(
                       "%s = %s\n" % kv for kv in (general or {}).items()),
                       self.domain, backend,
                       LOOPBACK, server.component_port, self.secret))
            for k, v in (options or {}).items():
                f.write("%s = %s\n" % (k, v))
            for header, values in sections or []:
                f.write("\n[%s]\n" % header)
                for k, v in values.items():
                    f.write("%s = %s\n" % (k, v))
        self.popen = None
        self.lines = []         # (monotonic time, line)
        self.cond = threading.Condition()
        self.tap = tap
        self.returncode = None
        self.t_start = None
        if tap:
            tap.watch("%s log" % name, self.logfile)
        on_exit(self.stop)

    @property
    def pid(self):
        return self.popen.pid if self.popen else None

    def start(self):
        binary = causeway_bin()
        if not os.access(binary, os.X_OK):
            raise RuntimeError("causeway binary not found or not executable: %s "
                               "(set CAUSEWAY_BIN)" % binary)
        self.popen = subprocess.Popen(
            [binary, "-c", self.cfg], cwd=self.dir, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.t_start = time.monotonic()
        self.reader = threading.Thread(target=self._reader, daemon=True)
        self.reader.start()

    def _reader(self):
        with open(self.logfile, "ab") as out:
            for raw in iter(self.popen.stdout.readline, b""):
                out.write(raw)
                out.flush()
                line = raw.decode("utf-8", "replace").rstrip("\n")
                with self.cond:
                    self.lines.append((time.monotonic(), line))
                    self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def matching(self, regex):
        with self.cond:
            return [(t, l) for (t, l) in self.lines if re.search(regex, l)]

    def count(self, regex):
        return len(self.matching(regex))

    def wait_for(self, regex, count=1, timeout=10):
        """Wait until at least count lines match regex; return the
        count-th match (time, line) or None on timeout."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                hits = [(t, l) for (t, l) in self.lines if re.search(regex, l)]
                if len(hits) >= count:
                    return hits[count - 1]
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(min(left, 0.5))

    def alive(self):
        return self.popen is not None and self.popen.poll() is None

    def terminate(self, timeout=5):
        """SIGTERM and wait up to timeout.  Returns (exit status or None if
        still running, seconds taken).  Does not SIGKILL (see stop())."""
        if not self.alive():
            return self.popen.returncode if self.popen else None, 0.0
        t0 = time.monotonic()
        self.popen.send_signal(signal.SIGTERM)
        try:
            rc = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            rc = None
        return rc, time.monotonic() - t0

    def stop(self):
        if self.popen is not None and self.popen.poll() is None:
            stop_pid(self.popen.pid, 5, popen=self.popen)
        if self.popen is not None:
            self.returncode = self.popen.returncode
            self.check_sanitizers()

    # What AddressSanitizer, LeakSanitizer and UBSan print on a finding.
    SANITIZER_REPORT = (r"ERROR: (Address|Leak)Sanitizer|runtime error: |"
                        r"SUMMARY: UndefinedBehaviorSanitizer")

    def check_sanitizers(self):
        """With CW_SANITIZERS=1 (the binary is a sanitizer build), one
        check per run of causeway: its output, read to the end, holds no
        sanitizer report."""
        if not os.environ.get("CW_SANITIZERS") or self.tap is None \
                or getattr(self, "sanitizers_checked", None) is self.popen:
            return
        self.sanitizers_checked = self.popen
        if getattr(self, "reader", None) is not None:
            self.reader.join(10)
        hits = self.matching(self.SANITIZER_REPORT)
        self.tap.ok(not hits, "%s: no sanitizer report in its output "
                    "(exit status %s)" % (self.name, self.returncode),
                    diag=[l for _, l in hits[:5]])


# --------------------------------------------------------------------------
# IRC: a private InspIRCd 3 and a raw IRC client


class InspIRCd:
    """A throw-away InspIRCd 3 from inspircd.conf.in in a temp dir, with a
    self-signed certificate (CN ircd.test): plain on 127.0.0.1:port, TLS on
    tls_port at 127.0.0.1, 127.0.0.2 and 127.0.0.3.

    Started from its temp dir under prlimit --core=0:0: with ssl_gnutls
    loaded it segfaults on SIGTERM (status 139, which stop() accepts), and
    it raises its own core limit otherwise."""

    name = "inspircd"

    def __init__(self, tap=None, services=False):
        """services: also listen for Atheme (inspircd-services.conf.in,
        link port self.link_port, password self.link_pass) and offer SASL
        once it is linked (see Atheme)."""
        self.dir = make_tempdir("cwtest-inspircd-")
        self.tap = tap
        self.port, self.tls_port, self.link_port = free_ports(3)
        self.link_pass = secrets.token_hex(8)
        self.oper_pass = secrets.token_hex(8)
        self.popen = None
        self.pid = None
        self.returncodes = []
        with open(os.path.join(self.dir, "motd.txt"), "w") as f:
            f.write("causeway e2e\n")
        r = subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
             "-days", "2", "-subj", "/CN=ircd.test",
             "-keyout", os.path.join(self.dir, "key.pem"),
             "-out", os.path.join(self.dir, "cert.pem")],
            cwd=self.dir, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("openssl req failed: %s"
                               % r.stdout.decode(errors="replace"))
        self.cfg = fill_template(
            "inspircd.conf.in", os.path.join(self.dir, "inspircd.conf"),
            DIR=self.dir, PORT=self.port, TLS_PORT=self.tls_port,
            OPER_PASS=self.oper_pass)
        if services:
            self.cfg = fill_template(
                "inspircd-services.conf.in",
                os.path.join(self.dir, "inspircd-services.conf"),
                DIR=self.dir, LINK_PORT=self.link_port,
                LINK_PASS=self.link_pass)
        self.stdout_log = os.path.join(self.dir, "ircd.out")
        if tap:
            tap.watch("inspircd log", self.log)
            tap.watch("inspircd stdout", self.stdout_log)
        on_exit(self.stop)

    @property
    def log(self):
        return os.path.join(self.dir, "ircd.log")

    @property
    def fingerprint(self):
        """SHA-256 of the certificate (DER), lowercase hex."""
        import hashlib
        import ssl
        with open(os.path.join(self.dir, "cert.pem")) as f:
            der = ssl.PEM_cert_to_DER_cert(f.read())
        return hashlib.sha256(der).hexdigest()

    def start(self, timeout=20):
        out = open(self.stdout_log, "ab")
        # prlimit execs inspircd: popen.pid is the daemon's PID.
        self.popen = subprocess.Popen(
            ["prlimit", "--core=0:0", "inspircd", "--config=" + self.cfg,
             "--nofork", "--runasroot", "--nopid"], cwd=self.dir,
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        out.close()
        self.pid = self.popen.pid

        def ready():
            if self.popen.poll() is not None:
                return "died"
            return all(port_open(p, h) for p, h in (
                (self.port, LOOPBACK), (self.tls_port, LOOPBACK),
                (self.tls_port, "127.0.0.2"), (self.tls_port, "127.0.0.3")))
        r = wait_until(ready, timeout, 0.05)
        if r != True:       # noqa: E712
            raise RuntimeError("inspircd did not open ports %d/%d within %ds "
                               "(%s); see %s" % (self.port, self.tls_port,
                                                 timeout, r or "timeout",
                                                 self.dir))

    def running(self):
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout=10):
        """SIGTERM by PID and wait.  Returns the exit status (-11 from
        Popen, 139 in a shell: the segfault on the way out with ssl_gnutls
        is normal) or None."""
        if self.popen is None:
            return None
        stop_pid(self.popen.pid, timeout, popen=self.popen)
        rc = self.popen.returncode
        self.returncodes.append(rc)
        self.popen = self.pid = None
        return rc


class Atheme:
    """Atheme 7.2 services (atheme.conf.in) linked to an InspIRCd started
    with services=True: NickServ accounts and SASL PLAIN."""

    def __init__(self, ircd, tap=None):
        self.ircd = ircd
        self.dir = make_tempdir("cwtest-atheme-")
        self.cfg = fill_template("atheme.conf.in",
                                 os.path.join(self.dir, "atheme.conf"),
                                 DIR=self.dir, LINK_PORT=ircd.link_port,
                                 LINK_PASS=ircd.link_pass)
        self.log = os.path.join(self.dir, "atheme.log")
        self.stdout_log = os.path.join(self.dir, "atheme.out")
        self.popen = None
        if tap:
            tap.watch("atheme log", self.log)
        on_exit(self.stop)

    def start(self, timeout=20):
        """Start (in the foreground, -n) and wait until it has linked."""
        start = file_size(self.log)
        out = open(self.stdout_log, "ab")
        self.popen = subprocess.Popen(
            ["atheme-services", "-n", "-c", self.cfg, "-D", self.dir,
             "-l", self.log, "-p", os.path.join(self.dir, "atheme.pid")],
            cwd=self.dir, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT)
        out.close()
        return self.wait_synched(timeout, start)

    def wait_synched(self, timeout=20, start=0):
        r = wait_until(lambda: self.popen.poll() is not None or
                       file_has(self.log, r"finished synching", start), timeout)
        if self.popen.poll() is not None or not r:
            raise RuntimeError("atheme did not link within %ds (%s); see %s"
                               % (timeout, "exited %s" % self.popen.poll()
                                  if self.popen.poll() is not None else
                                  "timeout", self.dir))
        return True

    def register(self, nick, password, timeout=10):
        """A NickServ account nick/password, registered from a raw client
        that then quits.  Returns NickServ's answer (a NOTICE line)."""
        c = IrcClient(self.ircd.port, nick)
        try:
            if not c.register(timeout):
                raise RuntimeError("cannot register %s on IRC:\n%s"
                                   % (nick, c.dump()))
            m = c.mark()
            c.send("PRIVMSG NickServ :REGISTER %s %s@example.test"
                   % (password, nick))
            line = c.wait_for(r"^:NickServ\S* NOTICE .*(registered|REGISTER)",
                              timeout, m)
            if not line or "registered" not in line:
                raise RuntimeError("NickServ REGISTER %s failed:\n%s"
                                   % (nick, c.dump(m)))
            return line
        finally:
            c.close()

    def stop(self, timeout=10):
        if self.popen is None:
            return None
        stop_pid(self.popen.pid, timeout, popen=self.popen)
        rc, self.popen = self.popen.returncode, None
        return rc


class IrcClient:
    """A raw IRC client on a plain (or TLS, any certificate) socket to
    127.0.0.1.  A reader thread keeps every line received, in order, with
    its arrival time, and answers PING.  find()/wait_for() take a
    predicate on the line (str, without CRLF) or a regex."""

    def __init__(self, port, nick, host=LOOPBACK, tls=False, timeout=10):
        self.nick = nick
        sock = socket.create_connection((host, port), timeout=timeout)
        if tls:
            import ssl
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            sock = ctx.wrap_socket(sock)
        sock.settimeout(None)
        self.sock = sock
        self.lines = []             # (monotonic time, line)
        self.raw_lengths = []       # bytes of each line, CRLF included
        self.cond = threading.Condition()
        self.eof = False
        self.wlock = threading.Lock()
        threading.Thread(target=self._reader, daemon=True).start()
        on_exit(self.close)

    def _reader(self):
        buf = b""
        sock = self.sock
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                buf += data
                while b"\n" in buf:
                    raw, buf = buf.split(b"\n", 1)
                    n = len(raw) + 1
                    line = raw.rstrip(b"\r").decode("utf-8", "replace")
                    if line.startswith("PING "):
                        self.send("PONG " + line[5:])
                    with self.cond:
                        self.lines.append((time.monotonic(), line))
                        self.raw_lengths.append(n)
                        self.cond.notify_all()
        except OSError:
            pass
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def send(self, line):
        with self.wlock:
            if self.sock is None:
                raise OSError("IRC client %s is closed" % self.nick)
            self.sock.sendall(line.encode("utf-8") + b"\r\n")

    def send_bytes(self, raw):
        """Send raw bytes as they are (add the CRLF yourself)."""
        with self.wlock:
            if self.sock is None:
                raise OSError("IRC client %s is closed" % self.nick)
            self.sock.sendall(raw)

    def mark(self):
        with self.cond:
            return len(self.lines)

    @staticmethod
    def _pred(pred):
        if isinstance(pred, str):
            rx = re.compile(pred)
            return lambda line: rx.search(line) is not None
        return pred

    def find(self, pred, since=0):
        """The first line from index since matching pred, or None."""
        pred = self._pred(pred)
        with self.cond:
            for _, line in self.lines[since:]:
                if pred(line):
                    return line
        return None

    def find_all(self, pred, since=0):
        pred = self._pred(pred)
        with self.cond:
            return [(i, l) for i, (_, l) in enumerate(self.lines)
                    if i >= since and pred(l)]

    def wait_for(self, pred, timeout=10, since=0):
        """Block (without running anything else) until a line matches."""
        pred = self._pred(pred)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for _, line in self.lines[since:]:
                    if pred(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or self.eof:
                    return None
                self.cond.wait(min(left, 0.5))

    def register(self, timeout=10):
        """NICK and USER; the end of the MOTD (376, or 422) ends it."""
        self.send("NICK " + self.nick)
        self.send("USER %s 0 * :cwtest %s" % (self.nick, self.nick))
        return self.wait_for(lambda l: irc_numeric(l) in ("376", "422"),
                             timeout)

    def join(self, chan, timeout=10):
        m = self.mark()
        self.send("JOIN " + chan)
        return self.wait_for(lambda l: irc_numeric(l) == "366", timeout, m)

    def dump(self, since=0, n=15):
        with self.cond:
            return "\n".join(l for _, l in self.lines[since:][-n:]) or \
                "(nothing received)"

    def close(self):
        sock, self.sock = getattr(self, "sock", None), None
        if sock is None:
            return
        try:
            with self.wlock:
                sock.sendall(b"QUIT :done\r\n")
        except OSError:
            pass
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()


def irc_numeric(line):
    """The command of an IRC line (":prefix CMD ..." or "CMD ...")."""
    parts = line.split()
    if parts and parts[0].startswith("@"):          # message tags
        parts = parts[1:]
    if parts and parts[0].startswith(":"):
        parts = parts[1:]
    return parts[0] if parts else ""


def irc_parse(line):
    """(nick or None, command, [params]) of an IRC line; message tags
    (@...) are dropped."""
    if line.startswith("@"):
        line = line.split(" ", 1)[1] if " " in line else ""
    nick = None
    if line.startswith(":"):
        prefix, _, line = line[1:].partition(" ")
        nick = prefix.split("!", 1)[0]
    trailing = None
    if " :" in line:
        line, trailing = line.split(" :", 1)
    elif line.startswith(":"):
        line, trailing = "", line[1:]
    params = line.split()
    cmd = params.pop(0) if params else ""
    if trailing is not None:
        params.append(trailing)
    return nick, cmd, params


# --------------------------------------------------------------------------
# XMPP client (slixmpp 1.8)

_loop = None


def event_loop():
    global _loop
    if _loop is None:
        _loop = asyncio.new_event_loop()
        asyncio.set_event_loop(_loop)
    return _loop


def _import_slixmpp():
    # Quieten slixmpp ("Using slower stringprep ..." and connection noise);
    # CWTEST_XMPP_LOG=DEBUG shows every stanza on stderr.
    level = os.environ.get("CWTEST_XMPP_LOG", "CRITICAL").upper()
    logging.basicConfig(level=getattr(logging, level, logging.CRITICAL),
                        stream=sys.stderr)
    logging.getLogger("slixmpp").setLevel(getattr(logging, level, logging.CRITICAL))
    import slixmpp                       # noqa: F401  (python3-slixmpp)
    return slixmpp


class IqResult:
    """Outcome of Client.iq(): type is "result", "error" or "timeout";
    xml is the <iq/> ElementTree element (None on timeout)."""

    def __init__(self, typ, xml=None):
        self.type = typ
        self.xml = xml

    def find(self, path):
        return None if self.xml is None else self.xml.find(path)

    def findall(self, path):
        return [] if self.xml is None else self.xml.findall(path)

    @property
    def error_condition(self):
        if self.xml is None:
            return None
        for e in self.xml.findall("{jabber:client}error/*"):
            if e.tag.startswith("{urn:ietf:params:xml:ns:xmpp-stanzas}") and \
                    not e.tag.endswith("}text"):
                return e.tag.split("}", 1)[1]
        return None

    def __str__(self):
        if self.xml is None:
            return "<timeout>"
        from xml.etree import ElementTree as ET
        return ET.tostring(self.xml, encoding="unicode")


class Client:
    """A slixmpp client logged in on 127.0.0.1 without TLS.  All calls are
    synchronous: they run the asyncio loop until the answer or a timeout."""

    def __init__(self, port, jid, password):
        self.slixmpp = _import_slixmpp()
        self.port, self.jid, self.password = port, jid, password
        self.xmpp = None
        on_exit(self.close)

    def login(self, timeout=20):
        """Connect and wait for session_start.  Returns True on success;
        on failure self.error says why."""
        self.close()
        loop = event_loop()
        xmpp = self.slixmpp.ClientXMPP(self.jid, self.password)
        xmpp["feature_mechanisms"].unencrypted_plain = True
        # No presence, roster or anything else is needed for iqs.
        done = loop.create_future()
        self.error = None

        def finish(ok, why=None):
            if not done.done():
                self.error = why
                done.set_result(ok)
        xmpp.add_event_handler("session_start", lambda _: finish(True))
        xmpp.add_event_handler("failed_auth", lambda _: finish(False, "auth failed"))
        xmpp.add_event_handler("connection_failed",
                               lambda e: finish(False, "connection failed: %s" % (e,)))
        self.xmpp = xmpp
        self.prepare(xmpp)
        xmpp.connect(address=(LOOPBACK, self.port), force_starttls=False,
                     disable_starttls=True)
        try:
            ok = loop.run_until_complete(asyncio.wait_for(done, timeout))
        except asyncio.TimeoutError:
            ok, self.error = False, "no session within %ds" % timeout
        if not ok:
            self.close()
        return ok

    def prepare(self, xmpp):
        """Called with each new stream before it connects: subclasses
        set options and register handlers here."""

    def record(self, xmpp, paths, store):
        """Hands a copy of every stanza matching one of paths (kind ->
        XPath) to store(kind, element), in order of arrival."""
        from slixmpp.xmlstream.handler import Callback
        from slixmpp.xmlstream.matcher import MatchXPath
        from xml.etree import ElementTree as ET

        def handler(kind):
            # A copy: slixmpp may change the element afterwards.
            return lambda st: store(kind, ET.fromstring(ET.tostring(st.xml)))
        for kind, path in paths.items():
            xmpp.register_handler(Callback("cwtest " + kind,
                                           MatchXPath(path), handler(kind)))

    def iq(self, to, payload, itype="get", timeout=10):
        """Send <iq type=itype to=to> with payload (XML string) and wait for
        the answer.  Returns an IqResult."""
        from xml.etree import ElementTree as ET
        from slixmpp.exceptions import IqError, IqTimeout
        loop = event_loop()
        iq = self.xmpp.Iq(stype=itype, sto=to)
        if payload:
            iq.append(ET.fromstring(payload))

        async def send():
            try:
                r = await iq.send(timeout=timeout)
                return IqResult(r["type"], r.xml)
            except IqError as e:
                return IqResult("error", e.iq.xml)
            except IqTimeout:
                return IqResult("timeout")
        return loop.run_until_complete(send())

    def connected(self):
        return self.xmpp is not None and self.xmpp.transport is not None

    def pump(self, seconds):
        """Let the client process its socket for a while."""
        event_loop().run_until_complete(asyncio.sleep(seconds))

    def pump_until(self, cond, timeout):
        """Process the stream until cond() is true (its value) or the
        timeout passed (cond()'s last value)."""
        async def poll():
            deadline = time.monotonic() + timeout
            while True:
                v = cond()
                if v or time.monotonic() >= deadline:
                    return v
                await asyncio.sleep(0.02)
        return event_loop().run_until_complete(poll())

    def close(self, timeout=3):
        xmpp, self.xmpp = self.xmpp, None
        if xmpp is None:
            return
        loop = event_loop()
        xmpp.cancel_connection_attempt()
        try:
            if xmpp.transport is not None:
                loop.run_until_complete(asyncio.wait_for(
                    asyncio.ensure_future(xmpp.disconnect(wait=1)), timeout))
        except Exception:
            pass
        xmpp.abort()
        loop.run_until_complete(asyncio.sleep(0))


# ---- the frame every per-server test script shares ----

def stop_all(tap, label, server, started, *objs):
    """End of one server's run: close clients and stop helpers in the
    order given (objects with close() are clients, others have stop()),
    then the XMPP server; forget their logs and say how long it took."""
    for obj in objs:
        if obj is None:
            continue
        if hasattr(obj, "close") and not hasattr(obj, "stop"):
            obj.close()
        else:
            obj.stop()
    server.stop()
    for path in [p for _, p in tap.logs]:
        tap.unwatch(path)
    tap.diag("%s: %.1f s" % (label, time.monotonic() - started))


def main_per_server(what, run_server, requires=()):
    """main() of a test script that runs run_server(tap, cls) once per
    XMPP server (Prosody, ejabberd; or those named on the command line).
    requires: commands without which the whole script is skipped.
    Returns the exit status."""
    tap = Tap()
    tap.diag("causeway binary: %s" % causeway_bin())
    wanted = sys.argv[1:] or ["prosody", "ejabberd"]
    try:
        missing = [c for c in requires if not have(c)]
        if missing:
            tap.skip(what, "%s not installed" % ", ".join(missing))
            return tap.finish()
        for cls, tool in ((Prosody, "prosody"), (Ejabberd, "ejabberdctl")):
            if cls.name not in wanted:
                continue
            if not have(tool):
                tap.skip("%s: %s" % (cls.name, what),
                         "%s not installed" % tool)
                continue
            run_server(tap, cls)
    except SystemExit as e:         # a signal (see _on_signal)
        tap.ok(False, "interrupted (exit status %s)" % e.code)
        tap.finish()
        mark_failed()
        raise
    rc = tap.finish()
    if rc:
        mark_failed()
    return rc


class RecordingClient(Client):
    """A client that keeps (kind, element) of what record() hands it in
    self.got, in order of arrival."""

    def __init__(self, port, jid, password):
        super().__init__(port, jid, password)
        self.got = []

    def keep(self, kind, el):
        self.got.append((kind, el))

    def mark(self):
        return len(self.got)

    def find(self, pred, since=0):
        """The first stanza since mark since with pred(kind, element)."""
        for kind, el in self.got[since:]:
            if pred(kind, el):
                return el
        return None

    def wait(self, pred, timeout, since=0):
        """Process the stream until a recorded stanza matches
        pred(kind, element); return it, or None after timeout."""
        # (An element without children is false: test against None.)
        self.pump_until(lambda: self.find(pred, since) is not None, timeout)
        return self.find(pred, since)


def check_no_secrets(tap, label, secrets_used, *logs):
    """No secret in any log line at any level (issue 12, item 8): greps
    each log (a path, or an object with .logfile, e.g. a Causeway) for
    every secret in secrets_used, as typed and base64-encoded (SASL
    PLAIN sends it that way; pass the whole PLAIN blob too).  One test
    point per log; the diagnostic names which secret, never shows it."""
    import base64
    wanted = []
    for s in secrets_used:
        if not s:
            continue
        raw = s.encode() if isinstance(s, str) else s
        wanted.append(raw)
        if len(raw) >= 6:
            wanted.append(base64.b64encode(raw))
    for log in logs:
        path = getattr(log, "logfile", log)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            tap.ok(False, "%s: the log %s can be read" % (label, path),
                   diag=str(e))
            continue
        found = [i for i, w in enumerate(wanted) if w in data]
        tap.ok(data != b"" and not found,
               "%s: none of the %d secrets used appears in %s (%d bytes)"
               % (label, len(secrets_used), os.path.basename(path),
                  len(data)),
               diag="secret #%s found" % found if found else None)
