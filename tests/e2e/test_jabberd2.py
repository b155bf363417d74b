#!/usr/bin/python3
"""End-to-end: causeway attached to Debian's jabberd2 (router, sm, c2s from
a temp dir, sqlite storage).  jabberd2's router hands the component the
stanzas in jabber:client; causeway must take them and answer in its own
stream's namespace.  Checks the handshake, disco#info, registration with
the echo backend and a message both ways.

  /usr/bin/python3 tests/e2e/test_jabberd2.py
Skipped when jabberd2 is not installed (apt-get install jabberd2).
"""

import gzip
import os
import secrets
import sqlite3
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cwtest                                   # noqa: E402
from cwtest import Causeway, Tap                # noqa: E402
import test_transport as tt                     # noqa: E402

DOMAIN = tt.DOMAIN                              # echo.localhost
SCHEMA = "/usr/share/doc/jabberd2/db-setup.sqlite.gz"
BINARIES = ("jabberd2-router", "jabberd2-sm", "jabberd2-c2s")


def libdir():
    for d in ("/usr/lib/x86_64-linux-gnu/jabberd2", "/usr/lib/jabberd2"):
        if os.path.exists(os.path.join(d, "storage_sqlite.so")):
            return d
    arch = subprocess.run(["dpkg-architecture", "-qDEB_HOST_MULTIARCH"],
                          stdout=subprocess.PIPE, text=True).stdout.strip()
    return "/usr/lib/%s/jabberd2" % arch


class Jabberd2(cwtest.Server):
    """jabberd2's router (which also takes XEP-0114 components), sm and
    c2s, each started from the temp dir with its own config."""

    name = "jabberd2"

    def __init__(self, **kw):
        super().__init__(**kw)
        self.router_pass = secrets.token_hex(8)
        values = dict(DIR=self.dir, C2S_PORT=self.c2s_port,
                      COMPONENT_PORT=self.component_port, SECRET=self.secret,
                      ROUTER_PASS=self.router_pass, HOST=self.host,
                      LIBDIR=libdir())
        for name in ("router.xml", "router-users.xml", "sm.xml", "c2s.xml"):
            cwtest.fill_template("jabberd2/%s.in" % name,
                                 os.path.join(self.dir, name), **values)
        with gzip.open(SCHEMA, "rt") as f:
            schema = f.read()
        db = sqlite3.connect(os.path.join(self.dir, "sqlite.db"))
        db.executescript(schema)
        db.close()
        self.procs = []
        if self.tap:
            for p in ("router", "sm", "c2s"):
                self.tap.watch("jabberd2 %s log" % p,
                               os.path.join(self.dir, "%s.log" % p))

    @property
    def log(self):
        return os.path.join(self.dir, "router.log")

    def start(self, timeout=30):
        for part in ("router", "sm", "c2s"):
            out = open(os.path.join(self.dir, "%s.out" % part), "ab")
            p = subprocess.Popen(["jabberd2-%s" % part, "-c",
                                  os.path.join(self.dir, "%s.xml" % part)],
                                 cwd=self.dir, stdin=subprocess.DEVNULL,
                                 stdout=out, stderr=subprocess.STDOUT)
            out.close()
            self.procs.append(p)
            if part == "router" and not cwtest.wait_until(
                    lambda: cwtest.port_open(self.component_port), timeout):
                raise RuntimeError("jabberd2 router did not listen on %d; "
                                   "see %s" % (self.component_port, self.dir))
        self.popen = self.procs[0]
        self.pid = self.popen.pid
        self._wait_ports(timeout)
        # The sm must have joined the router before a client logs in.
        if not cwtest.wait_until(lambda: cwtest.file_has(
                os.path.join(self.dir, "sm.log"), r"ready for sessions|"
                r"attached to router|connected to router"), timeout):
            raise RuntimeError("jabberd2 sm did not join the router; see %s"
                               % self.dir)

    def register(self, user, password):
        db = sqlite3.connect(os.path.join(self.dir, "sqlite.db"))
        # The realm is the host unless c2s.xml names another.
        for realm in (self.host, ""):
            db.execute("INSERT INTO authreg (username, realm, password) "
                       "VALUES (?, ?, ?)", (user, realm, password))
        db.commit()
        db.close()

    def stop(self, timeout=15):
        clean = True
        for p in reversed(self.procs):
            if p.poll() is None:
                clean = cwtest.stop_pid(p.pid, timeout, popen=p) and clean
        self.procs = []
        self.pid = None
        return clean


class RecordedCauseway(Causeway):
    """causeway as test_transport starts it, remembered for the checks
    made after its run."""
    started = []

    def start(self):
        RecordedCauseway.started.append(self)
        super().start()


def run(tap):
    # The transport suite (disco, registration, subscriptions, messages,
    # gateway lookup, a stranger, re-login, unregistration, ad-hoc) as it
    # runs against Prosody and ejabberd, here against jabberd2.
    tt.Causeway = RecordedCauseway
    tt.run_server(tap, Jabberd2)
    for cw in RecordedCauseway.started:
        ignored = cw.count(r"ignoring unknown top-level element")
        handled = cw.count(r"handshake accepted")
        tap.ok(handled >= 1 and ignored == 0, "jabberd2: no stanza from the "
               "router was ignored (jabber:client taken as the stream's "
               "namespace)", diag="%d lines say 'ignoring unknown top-level "
               "element'" % ignored)


def main():
    tap = Tap()
    missing = [b for b in BINARIES if not cwtest.have(b)]
    if missing or not os.path.exists(SCHEMA):
        tap.skip("jabberd2", "%s not installed (apt-get install jabberd2)"
                 % ", ".join(missing or [SCHEMA]))
        return tap.finish()
    try:
        run(tap)
    except Exception as e:          # noqa: BLE001
        tap.bail("jabberd2 test", e)
    rc = tap.finish()
    if rc:
        cwtest.mark_failed()
    return rc


if __name__ == "__main__":
    sys.exit(main())
