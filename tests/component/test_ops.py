"""Component tests for the operator's side: the metrics endpoint, the
service manager protocol (READY=1, STATUS=, WATCHDOG=1 through a
NOTIFY_SOCKET this test opens, as systemd would), journald priority
prefixes, and causeway with no component at all.

Bad input: a metrics port already in use, 1,000 idle connections to the
metrics port, a 1 MB request line, a metrics address that is not local.
promtool (Debian's prometheus package) checks a scrape taken during
traffic.
"""

import http.client
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Causeway, FakeServer, Tap, causeway_bin,  # noqa: E402
                     run_causeway)

tap = Tap()
GW = "echo.localhost"
ADMIN = "admin@localhost/console"
CMD = "http://jabber.org/protocol/commands"
DATA = "jabber:x:data"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def scrape(port, path="/metrics", timeout=5.0):
    """(status, body) of GET path, or (None, why)."""
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        c.request("GET", path)
        r = c.getresponse()
        body = r.read().decode("utf-8", "replace")
        c.close()
        return r.status, body
    except (OSError, http.client.HTTPException) as e:
        return None, repr(e)


def sample(body, name, **labels):
    """The value of the sample name{labels} (labels a subset), or None."""
    for line in body.splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$', line)
        if not m or m.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            return float(m.group(4))
    return None


def wait_port(port, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


class Notify:
    """The service manager's end of the notify protocol: a datagram
    socket whose path goes to causeway in NOTIFY_SOCKET."""

    def __init__(self, tmp):
        self.path = os.path.join(tmp, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages = []          # (time, "KEY=value")

    def env(self, watchdog_usec=None):
        e = dict(os.environ, NOTIFY_SOCKET=self.path)
        e.pop("WATCHDOG_PID", None)
        if watchdog_usec:
            e["WATCHDOG_USEC"] = str(watchdog_usec)
        else:
            e.pop("WATCHDOG_USEC", None)
        return e

    def collect(self, seconds):
        deadline = time.time() + seconds
        while time.time() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.time()))
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                break
            for line in data.decode("utf-8", "replace").split("\n"):
                if line:
                    self.messages.append((time.time(), line))

    def wait(self, pred, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if any(pred(m) for _, m in self.messages):
                return True
            self.collect(min(0.2, deadline - time.time()))
        return any(pred(m) for _, m in self.messages)

    def count(self, line):
        return sum(1 for _, m in self.messages if m == line)

    def close(self):
        self.sock.close()


def has_sd_notify():
    rc, out, _ = run_causeway(["--version"])
    return "sd_notify: yes" in out


def bare_config(tmp, metrics, extra=""):
    conf = os.path.join(tmp, "causeway.conf")
    with open(conf, "w") as f:
        f.write("[causeway]\ndatabase = %s/causeway.db\nkey_file = %s/secret.key\n"
                "log_level = info\nmetrics = %s\n%s" % (tmp, tmp, metrics, extra))
    return conf


def start(conf, tmp, env=None, stderr_path=None):
    log = open(stderr_path or os.path.join(tmp, "causeway.log"), "ab")
    p = subprocess.Popen([causeway_bin(), "-c", conf], stdout=log,
                         stderr=subprocess.STDOUT, cwd=tmp, env=env)
    log.close()
    return p


def read(path):
    with open(path, "rb") as f:
        return f.read().decode("utf-8", "replace")


def stop(p, timeout=10):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            return p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            return None
    return p.returncode


# ---------------------------------------------------------------------------


def test_idle_no_component(notify_ok):
    """The packaged configuration: no component.  causeway starts, says
    READY=1 and what it is doing, pings the watchdog, answers metrics,
    and stops on SIGTERM."""
    tmp = tempfile.mkdtemp(prefix="cw-ops-")
    port = free_port()
    conf = bare_config(tmp, "127.0.0.1:%d" % port)
    rc, out, err = run_causeway(["-c", conf, "--check-config"])
    tap.check(rc == 0, "--check-config accepts a configuration with no "
              "component", out + err)
    n = Notify(tmp)
    p = start(conf, tmp, env=n.env(watchdog_usec=200000))
    try:
        up = wait_port(port)
        tap.check(up and p.poll() is None, "no component: causeway starts "
                  "and serves metrics", read(os.path.join(tmp, "causeway.log")))
        st, body = scrape(port)
        tap.check(st == 200 and sample(body, "causeway_components") == 0,
                  "no component: the scrape says causeway_components 0", body)
        if not notify_ok:
            print("# causeway built --without-systemd: notify checks "
                  "skipped")
            return
        ready = n.wait(lambda m: m == "READY=1", 5)
        tap.check(ready, "READY=1 arrives on NOTIFY_SOCKET",
                  n.messages)
        tap.check(n.wait(lambda m: m == "STATUS=no component configured: "
                         "idle", 3),
                  "STATUS= says no component is configured", n.messages)
        t0 = time.time()
        n.collect(1.0)
        pings = [t for t, m in n.messages if m == "WATCHDOG=1" and t >= t0]
        tap.check(len(pings) >= 5, "WATCHDOG=1 from the loop about every "
                  "100 ms with WATCHDOG_USEC=200000 (%d in 1 s)" % len(pings),
                  n.messages[-10:])
        rc = stop(p)
        n.collect(0.3)
        tap.check(rc == 0 and n.count("STOPPING=1") == 1,
                  "SIGTERM with no component: STOPPING=1 and exit 0 "
                  "(exit %r)" % rc, read(os.path.join(tmp, "causeway.log")))
    finally:
        stop(p)
        n.close()
        shutil.rmtree(tmp, ignore_errors=True)


def test_journal_and_nonlocal():
    """stderr on the journal: no timestamps, <N> priority prefixes; a
    metrics address that is not loopback is allowed with a warning."""
    tmp = tempfile.mkdtemp(prefix="cw-ops-")
    port = free_port()
    conf = bare_config(tmp, "0.0.0.0:%d" % port)
    log = os.path.join(tmp, "journal.log")
    open(log, "w").close()
    st = os.stat(log)
    env = dict(os.environ, JOURNAL_STREAM="%d:%d" % (st.st_dev, st.st_ino))
    p = start(conf, tmp, env=env, stderr_path=log)
    try:
        up = wait_port(port)
        code, _ = scrape(port)
        text = read(log)
        tap.check(up and code == 200, "metrics = 0.0.0.0:PORT is allowed "
                  "and answers on 127.0.0.1", text)
        warn = [l for l in text.splitlines() if "not a loopback address" in l]
        tap.check(len(warn) == 1 and warn[0].startswith("<4>"),
                  "a non-local metrics address logs one warning, "
                  "at priority 4 (warning)", text)
        lines = text.splitlines()
        tap.check(lines and all(re.match(r"^<[3-7]>\S", l) for l in lines)
                  and not any(re.search(r"\d\d:\d\d:\d\d", l) for l in lines),
                  "JOURNAL_STREAM is stderr: every line starts with a "
                  "syslog priority and carries no timestamp", text)
        tap.check(any(l.startswith("<6>causeway ") for l in lines),
                  "info lines carry <6>", text)
    finally:
        stop(p)
    # The same JOURNAL_STREAM with stderr elsewhere is not the journal.
    log2 = os.path.join(tmp, "plain.log")
    p = start(bare_config(tmp, "127.0.0.1:%d" % port), tmp, env=env,
              stderr_path=log2)
    try:
        wait_port(port)
        text = read(log2)
        tap.check(text and not text.startswith("<") and
                  re.match(r"^\d{4}-\d\d-\d\d ", text),
                  "JOURNAL_STREAM naming another file: timestamps, no "
                  "prefixes", text)
    finally:
        stop(p)
        shutil.rmtree(tmp, ignore_errors=True)


def test_port_in_use():
    """The metrics port is taken: a clear error, exit 1, and nothing else
    started (no store, no component connection)."""
    srv = FakeServer(domain=GW)
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    port = blocker.getsockname()[1]
    cw = Causeway(srv.port, domain=GW, backend="echo",
                  general_extra="metrics = 127.0.0.1:%d\n" % port)
    cw.start()
    try:
        rc = cw.wait_exit(10)
        log = cw.log_text()
        tap.check(rc == 1, "metrics port in use: causeway exits 1 "
                  "(exit %r)" % rc, log)
        tap.check(re.search(r"metrics = 127\.0\.0\.1:%d: cannot listen: "
                            r"Address already in use" % port, log) is not None
                  and "not starting" in log,
                  "metrics port in use: the log names the address and "
                  "the reason", log)
        conn = srv.accept(timeout=1.0)
        tap.check(conn is None and not os.path.exists(
            os.path.join(cw.tmp, "causeway.db")),
            "metrics port in use: no component connected, no store "
            "created")
    finally:
        cw.close()
        srv.close()
        blocker.close()


def adhoc_stats(conn):
    conn.send("<iq type='set' id='st1' to='%s' from='%s'><command xmlns='%s' "
              "node='stats' action='execute'/></iq>" % (GW, ADMIN, CMD))
    res = conn.next_stanza(pred=lambda s: s.get("id") == "st1")
    if res is None:
        return None
    f = res.find(".//{%s}field[@var='metrics']" % DATA)
    if f is None:
        return None
    return "\n".join(v.text or "" for v in f.findall("{%s}value" % DATA))


def test_traffic(notify_ok):
    """A component attached, traffic flowing: STATUS names it, a scrape
    taken during traffic passes promtool, counters count, the admin
    stats command shows the same figures; then 1,000 idle connections
    and a 1 MB request line."""
    srv = FakeServer(domain=GW)
    port = free_port()
    tmp = tempfile.mkdtemp(prefix="cw-ops-")
    n = Notify(tmp)
    cw = Causeway(srv.port, domain=GW, backend="echo", tmp=tmp,
                  general_extra="metrics = 127.0.0.1:%d\n" % port,
                  extra="admins = admin@localhost\n")
    cw.logf = open(cw.log, "ab")
    cw.proc = subprocess.Popen([causeway_bin(), "-c", cw.conf],
                               stdout=cw.logf, stderr=subprocess.STDOUT,
                               cwd=tmp, env=n.env())
    conn = srv.accept()
    try:
        tap.check(conn is not None and conn.handshake_ok,
                  "causeway attaches with metrics on", cw.log_text())
        if conn is None:
            return
        if notify_ok:
            tap.check(n.wait(lambda m: m == "STATUS=1 of 1 components "
                             "attached: %s" % GW, 5),
                      "STATUS= names the attached component", n.messages)
        # Traffic: 200 disco queries written at once; the scrape goes
        # while causeway is answering them.
        burst = "".join("<iq type='get' id='d%d' to='%s' from='u%d@localhost/r'>"
                        "<query xmlns='http://jabber.org/protocol/disco#info'/>"
                        "</iq>" % (i, GW, i % 7) for i in range(200))
        conn.send(burst)
        st, body = scrape(port)
        tap.check(st == 200, "a scrape during traffic answers 200", body)
        promtool = shutil.which("promtool")
        if promtool is None:
            tap.check(False, "promtool is installed (apt-get install "
                      "prometheus)")
        else:
            pr = subprocess.run([promtool, "check", "metrics"],
                                input=body.encode(), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, timeout=60)
            tap.check(pr.returncode == 0 and not pr.stdout.strip(),
                      "promtool check metrics accepts the scrape taken "
                      "during traffic", pr.stdout.decode() + "\n" + body)
        got = 0
        deadline = time.time() + 10
        while got < 200 and time.time() < deadline:
            if conn.next_stanza(timeout=2.0,
                                pred=lambda s: (s.get("id") or "").startswith("d")) is None:
                break
            got += 1
        st, body = scrape(port)
        rin = sample(body, "causeway_component_stanzas_received_total",
                     component=GW, kind="iq")
        rout = sample(body, "causeway_component_stanzas_sent_total",
                      component=GW, kind="iq")
        tap.check(got == 200 and rin is not None and rin >= 200 and
                  rout is not None and rout >= 200,
                  "stanzas in and out are counted by kind (%s in, %s out "
                  "for %d answers)" % (rin, rout, got), body)
        tap.check(sample(body, "causeway_component_connected", component=GW,
                         backend="echo") == 1 and
                  sample(body, "causeway_component_handshakes_total",
                         component=GW) == 1 and
                  sample(body, "causeway_component_reconnects_total",
                         component=GW) == 0,
                  "connected 1, one handshake, no reconnect", body)
        for name in ("causeway_component_queue_stanzas",
                     "causeway_component_kept_stanzas",
                     "process_resident_memory_bytes", "process_open_fds",
                     "causeway_uptime_seconds"):
            tap.check(sample(body, name) is not None,
                      "the scrape has %s" % name, body)
        # The admin stats command reads the same registry.
        stats = adhoc_stats(conn)
        st, after = scrape(port)
        same = stats is not None
        for name in ("causeway_component_handshakes_total",
                     "causeway_component_connected"):
            lines_a = [l for l in (stats or "").splitlines()
                       if l.startswith(name + "{")]
            lines_b = [l for l in after.splitlines() if l.startswith(name + "{")]
            same = same and lines_a and lines_a == lines_b
        sin = sample(stats or "", "causeway_component_stanzas_received_total",
                     component=GW, kind="iq")
        tap.check(same and sin is not None and rin <= sin <= sample(
            after, "causeway_component_stanzas_received_total", component=GW,
            kind="iq"),
            "the admin stats command shows the endpoint's figures", stats)

        # A user's messages: delivery latency and failures by condition.
        reg = conn.iq("<query xmlns='jabber:iq:register'><x xmlns='%s' "
                      "type='submit'><field var='FORM_TYPE'><value>jabber:iq:"
                      "register</value></field><field var='username'><value>"
                      "alice</value></field><field var='password'><value>pw"
                      "</value></field></x></query>" % DATA, type_="set",
                      frm="alice@localhost/a", id_="reg1")
        conn.send("<presence from='alice@localhost/a' to='%s'/>" % GW)
        online = cw.wait_log("alice@localhost: online")
        conn.send("<message from='alice@localhost/a' to='echo@%s' id='m1' "
                  "type='chat'><body>hello</body></message>" % GW)
        answered = conn.next_stanza(5, lambda s: s.tag.endswith("message")
                                    and (s.get("from") or "").startswith("echo@")
                                    and s.get("type") != "error")
        conn.send("<message from='alice@localhost/a' to='echo@%s' id='m2' "
                  "type='chat'><body>/fail</body></message>" % GW)
        conn.next_stanza(5, lambda s: s.get("id") == "m2")
        st, body = scrape(port)
        count = sample(body, "causeway_delivery_seconds_count", component=GW,
                       backend="echo")
        fails = sample(body, "causeway_send_failures_total", component=GW,
                       backend="echo", condition="service-unavailable")
        sess = sample(body, "causeway_sessions", component=GW, backend="echo",
                      state="online")
        tap.check(reg is not None and reg.get("type") == "result" and online
                  and answered is not None and count == 1 and fails == 1
                  and sess == 1,
                  "a delivered message is one delivery-latency observation, "
                  "a refused one a send failure by condition, the online "
                  "session a session (count %s, failures %s, sessions %s)"
                  % (count, fails, sess), body)

        # Bad input: 1,000 idle connections.
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < 1100 <= hard or hard == resource.RLIM_INFINITY:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1100), hard))
        idle = []
        t0 = time.time()
        try:
            for _ in range(1000):
                s = socket.create_connection(("127.0.0.1", port), 5)
                idle.append(s)
        except OSError as e:
            tap.check(False, "opening 1,000 connections: %r" % e)
        t_open = time.time() - t0
        time.sleep(0.3)
        t0 = time.time()
        st, body = scrape(port)
        fds = sample(body, "process_open_fds") if st == 200 else None
        tap.check(st == 200 and time.time() - t0 < 2,
                  "with 1,000 idle connections open a scrape still answers "
                  "(%.0f ms; opened in %.1f s)" % (1000 * (time.time() - t0),
                                                   t_open), body)
        tap.check(fds is not None and fds < 64 + 40,
                  "the connection cap holds: %s descriptors open with 1,000 "
                  "idle connections (cap 64)" % fds)
        alive = sum(1 for s in idle if _still_open(s))
        tap.check(alive <= 64, "idle connections beyond the cap are closed "
                  "(%d of 1,000 still open)" % alive)
        for s in idle:
            s.close()
        # Bad input: a 1 MB request line.
        rss0 = sample(scrape(port)[1], "process_resident_memory_bytes")
        code, line = _huge_request(port, 1 << 20)
        st, body = scrape(port)
        rss1 = sample(body, "process_resident_memory_bytes")
        tap.check(code == 414 and st == 200,
                  "a 1 MB request line gets 414 and the endpoint keeps "
                  "answering (%r)" % line)
        tap.check(rss0 and rss1 and rss1 - rss0 < 1 << 20,
                  "the 1 MB request line costs no memory to speak of "
                  "(RSS %+d KiB)" % ((rss1 - rss0) // 1024 if rss0 and rss1
                                     else 0))
        st, _ = scrape(port, "/other")
        tap.check(st == 404, "another path gets 404")
        tap.check(cw.alive(), "causeway is still running")
    finally:
        cw.close()
        srv.close()
        n.close()


def _still_open(s):
    s.setblocking(False)
    try:
        data = s.recv(1)
        return data != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def _huge_request(port, size):
    s = socket.create_connection(("127.0.0.1", port), 5)
    payload = b"GET /" + b"a" * size + b" HTTP/1.1\r\nHost: x\r\n\r\n"

    def send():
        try:
            s.sendall(payload)
        except OSError:
            pass
    t = threading.Thread(target=send, daemon=True)
    t.start()
    s.settimeout(5)
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    s.close()
    t.join(5)
    line = data.split(b"\r\n", 1)[0].decode("latin-1")
    m = re.match(r"HTTP/1\.1 (\d+)", line)
    return (int(m.group(1)) if m else None), line


def test_check_config():
    tmp = tempfile.mkdtemp(prefix="cw-ops-")
    conf = bare_config(tmp, "localhost")
    rc, out, err = run_causeway(["-c", conf, "--check-config"])
    tap.check(rc == 1 and re.search(r"causeway\.conf:5: metrics: 'localhost' "
                                    r"is not ADDRESS:PORT", out),
              "--check-config: a metrics value without a port is an error "
              "with file and line", out + err)
    shutil.rmtree(tmp, ignore_errors=True)


def main():
    notify_ok = has_sd_notify()
    test_check_config()
    test_idle_no_component(notify_ok)
    test_journal_and_nonlocal()
    test_port_in_use()
    test_traffic(notify_ok)
    return tap.done()


if __name__ == "__main__":
    sys.exit(main())
