#!/usr/bin/python3
"""End-to-end: causeway attaches to a real XMPP server as an XEP-0114
component, answers a real client, survives a server restart, retries a
wrong secret with backoff, and stops cleanly on SIGTERM.

Runs against Prosody and ejabberd (each skipped when not installed).
Output is TAP; exit status 0 only when every test passed.

  /usr/bin/python3 tests/e2e/test_attach.py            # both servers
  /usr/bin/python3 tests/e2e/test_attach.py prosody    # one of them
Environment: CAUSEWAY_BIN (default ../../causeway from this file),
CWTEST_KEEP=1 keeps the temp dirs, CWTEST_XMPP_LOG=DEBUG traces the client.
"""

import os
import secrets
import sys
import time

sys.dont_write_bytecode = True                  # no __pycache__ in the tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cwtest                                   # noqa: E402
from cwtest import Causeway, Client, Ejabberd, Prosody, Tap   # noqa: E402

DOMAIN = "irc.localhost"
HANDSHAKE = r"irc\.localhost: handshake accepted"
CONNECTING = r"irc\.localhost: connecting to"
NOT_AUTHORIZED = r"not-authorized"
NOT_AUTHORIZED_MSG = r"^(?!.*<stream:error).*not-authorized"

NS_INFO = "http://jabber.org/protocol/disco#info"
NS_ITEMS = "http://jabber.org/protocol/disco#items"
NS_VERSION = "jabber:iq:version"
NS_PING = "urn:xmpp:ping"
C = "{jabber:client}"

RECONNECT_TIMEOUT = 70      # seconds causeway may take to re-attach


def check_disco_info(tap, label, client):
    r = client.iq(DOMAIN, "<query xmlns='%s'/>" % NS_INFO)
    ok = r.type == "result"
    tap.ok(ok, "%s: disco#info on %s gets a result" % (label, DOMAIN),
           diag="got %s: %s" % (r.type, r))
    idents = [(i.get("category"), i.get("type"), i.get("name"))
              for i in r.findall("{%s}query/{%s}identity" % (NS_INFO, NS_INFO))]
    feats = {f.get("var") for f in
             r.findall("{%s}query/{%s}feature" % (NS_INFO, NS_INFO))}
    tap.ok(any(c == "gateway" and t == "irc" for c, t, _ in idents),
           "%s: disco#info identity is gateway/irc" % label,
           diag="identities: %r" % (idents,))
    want = {NS_INFO, NS_VERSION, NS_PING}
    tap.ok(want <= feats, "%s: disco#info features include disco#info, "
           "jabber:iq:version, urn:xmpp:ping" % label,
           diag="missing %r; features %r" % (sorted(want - feats), sorted(feats)))
    return ok


def check_queries(tap, label, client):
    r = client.iq(DOMAIN, "<query xmlns='%s'/>" % NS_VERSION)
    name = r.find("{%s}query/{%s}name" % (NS_VERSION, NS_VERSION))
    version = r.find("{%s}query/{%s}version" % (NS_VERSION, NS_VERSION))
    name = name.text if name is not None else None
    version = (version.text or "").strip() if version is not None else ""
    tap.ok(r.type == "result" and name == "causeway" and version,
           "%s: jabber:iq:version answers name=causeway and a version (%s)"
           % (label, version or "none"), diag="got %s: %s" % (r.type, r))

    t0 = time.monotonic()
    r = client.iq(DOMAIN, "<ping xmlns='%s'/>" % NS_PING)
    tap.ok(r.type == "result", "%s: XEP-0199 ping gets a result (%.0f ms)"
           % (label, 1000 * (time.monotonic() - t0)),
           diag="got %s: %s" % (r.type, r))

    r = client.iq(DOMAIN, "<query xmlns='%s'/>" % NS_ITEMS)
    tap.ok(r.type == "result" and r.find("{%s}query" % NS_ITEMS) is not None,
           "%s: disco#items gets a result" % label,
           diag="got %s: %s" % (r.type, r))


def check_wrong_secret(tap, label, bad):
    """bad was started a while ago with a wrong secret.  Needs: a clear
    not-authorized error, >= 2 attempts spaced >= 1 s, < 10 attempts in the
    5 s after the first one."""
    first = bad.wait_for(CONNECTING, 1, 10)
    if not tap.ok(first, "%s: wrong secret: causeway tries to connect" % label,
                  diag="no line matching %r" % CONNECTING):
        return
    # A readable error, not just the raw <stream:error> in a debug trace.
    err = bad.wait_for(NOT_AUTHORIZED_MSG, 1, 10)
    tap.ok(err, "%s: wrong secret: causeway logs a clear not-authorized "
           "error" % label, diag="no line matching %r outside the raw XML "
           "trace; raw: %r" % (NOT_AUTHORIZED, bad.matching(NOT_AUTHORIZED)[:1]))
    if err:
        tap.diag("%s: wrong secret logged as: %s" % (label, err[1].strip()))
    bad.wait_for(CONNECTING, 2, 15)
    # Watch the 5 s after the first attempt (tight-loop check).
    left = first[0] + 5.0 - time.monotonic()
    if left > 0:
        time.sleep(left)
    attempts = [t for t, _ in bad.matching(CONNECTING)]
    gaps = [b - a for a, b in zip(attempts, attempts[1:])]
    in5 = [t for t in attempts if t - first[0] <= 5.0]
    # At least 2 attempts, none closer than the 1 s backoff (causeway's
    # jitter only ever lengthens a delay; 0.95 allows for log timestamps).
    tap.ok(len(attempts) >= 2 and min(gaps) >= 0.95,
           "%s: wrong secret: causeway retries with backoff (%d attempts, "
           "gaps %s s)" % (label, len(attempts),
                           ", ".join("%.1f" % g for g in gaps) or "none"),
           diag="attempt times (s after first): %s" % [
               round(t - first[0], 2) for t in attempts])
    tap.ok(len(in5) < 10, "%s: wrong secret: no tight loop (%d attempts in "
           "5 s)" % (label, len(in5)))
    tap.ok(bad.alive(), "%s: wrong secret: causeway keeps running" % label,
           diag="exit status %r" % (bad.popen.poll(),))
    rc, dt = bad.terminate(5)
    tap.ok(rc == 0, "%s: wrong-secret causeway exits 0 on SIGTERM (%.1f s)"
           % (label, dt), diag="exit status %r" % (rc,))
    bad.stop()


def run_server(tap, cls):
    label = cls.name
    t_server = time.monotonic()
    server = cls(domain=DOMAIN, tap=tap)
    cw = bad = client = None
    try:
        t0 = time.monotonic()
        server.start()
        tap.ok(True, "%s: server up in %.1f s (c2s %d, component %d)"
               % (label, time.monotonic() - t0, server.c2s_port,
                  server.component_port))
        password = secrets.token_hex(8)
        server.register("alice", password)

        cw = Causeway(server, tap=tap, name="causeway-%s" % label)
        cw.start()
        h = cw.wait_for(HANDSHAKE, 1, 20)
        if not tap.ok(h, "%s: causeway handshake accepted (%.1f s)"
                      % (label, (h[0] - cw.t_start) if h else -1),
                      diag="no line matching %r; causeway %s"
                      % (HANDSHAKE, "running" if cw.alive() else
                         "exited %r" % cw.popen.poll())):
            return

        # The wrong-secret instance runs while the client tests below run.
        bad = Causeway(server, secret="wrong-" + secrets.token_hex(6),
                       tap=tap, name="causeway-%s-badsecret" % label)
        bad.start()

        client = Client(server.c2s_port, "alice@localhost", password)
        if tap.ok(client.login(), "%s: alice logs in" % label,
                  diag=getattr(client, "error", None)):
            check_disco_info(tap, label, client)
            check_queries(tap, label, client)

        check_wrong_secret(tap, label, bad)
        tap.unwatch(bad.logfile)

        # XEP-0356: the server sends <message from='localhost'><privilege/>
        # right after the handshake; it must not be bounced with an error.
        # Checked a few seconds later: ejabberd writes its log with a delay.
        bounces = server.error_messages_to_server()
        tap.ok(not bounces, "%s: causeway accepts the XEP-0356 privilege "
               "advertisement without an error reply" % label,
               diag="error messages sent to %s:\n%s" % (server.host,
                                                         "\n".join(bounces[:3])))

        n = cw.count(HANDSHAKE)
        tap.ok(n == 1 and cw.alive(), "%s: causeway stayed attached during "
               "the client tests (1 handshake)" % label,
               diag="%d handshakes; causeway %s" % (n, "running" if cw.alive()
                                                    else "exited %r" % cw.popen.poll()))

        # Restart the server under causeway's feet.
        pid = cw.pid
        t0 = time.monotonic()
        clean = server.stop()
        gone = not server.running() and server.wait_ports_closed(10)
        tap.ok(clean and gone, "%s: server stopped by SIGTERM (%.1f s)"
               % (label, time.monotonic() - t0))
        client.close()
        t0 = time.monotonic()
        server.start()
        tap.ok(True, "%s: server restarted with the same ports and data "
               "(%.1f s)" % (label, time.monotonic() - t0))
        h2 = cw.wait_for(HANDSHAKE, 2, RECONNECT_TIMEOUT)
        tap.ok(h2 and cw.alive() and cw.pid == pid,
               "%s: causeway (same PID %d) re-attached on its own %s"
               % (label, pid, ("%.1f s after the restart" % (h2[0] - t0)) if h2
                  else "(not within %d s)" % RECONNECT_TIMEOUT),
               diag="attempts since restart: %d; causeway %s" % (
                   len([1 for t, _ in cw.matching(CONNECTING) if t >= t0]),
                   "running" if cw.alive() else "exited %r" % cw.popen.poll()))
        if h2:
            ok = client.login()
            tap.ok(ok, "%s: alice logs in again" % label,
                   diag=getattr(client, "error", None))
            if ok:
                check_disco_info(tap, label + " after restart", client)
        client.close()

        # SIGTERM: exit 0 within 5 s, and a clean close.
        off = cwtest.file_size(server.log)
        n_lines = len(cw.lines)
        rc, dt = cw.terminate(5)
        tap.ok(rc == 0, "%s: causeway exits 0 within 5 s of SIGTERM (%.2f s)"
               % (label, dt), diag="exit status %r (None = still running)" % (rc,))
        srv_close = cwtest.wait_until(lambda: server.clean_close(off), 5)
        cw_close = [l for _, l in cw.lines[n_lines:]
                    if Causeway.clean_close_re.search(l)]
        tap.ok(srv_close or cw_close,
               "%s: clean close of the component stream" % label,
               diag="neither the server log nor causeway's log shows that "
               "the component stream was closed with </stream:stream>")
        if srv_close:
            tap.diag("%s log: %s" % (label, srv_close))
        if cw_close:
            tap.diag("causeway log: %s" % cw_close[-1].strip())
    except Exception as e:
        cwtest.mark_failed()
        tap.bail("%s: unexpected exception: %s" % (label, e), e)
    finally:
        cwtest.stop_all(tap, label, server, t_server, client, bad, cw)


def main():
    return cwtest.main_per_server('attach tests', run_server)


if __name__ == "__main__":
    sys.exit(main())
