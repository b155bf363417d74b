#!/usr/bin/env python3
"""causeway vs biboumi benchmark (issue 7).  Start it through run.sh.

One private Prosody (c2s + two components: causeway as irc.localhost,
biboumi as biboumi.localhost) and one private InspIRCd (flood control off
for loopback), both on 127.0.0.1 with free ports in a temp dir.  For each
run, each gateway is started fresh and taken through the same scenarios
by the same N XMPP clients (xmppload.py, one asyncio loop) and one raw
IRC bot.  CPU is utime+stime from /proc/PID/stat, memory VmRSS from
/proc/PID/status, for the gateway, Prosody and InspIRCd.  Prints a table
(median and min-max over the runs, ratio causeway/biboumi), writes JSON,
and stops every process it started, by PID.
"""

import argparse
import asyncio
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import traceback

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
if __name__ == "__main__":
    # scale.py and mailsms.py import this module as "bench": one copy, so
    # that every child is in the one list stop_all() stops.
    sys.modules.setdefault("bench", sys.modules[__name__])
from xmppload import (XmppClient, IrcBot, muc_status_codes,  # noqa: E402
                      NS_MUC_USER)

LO = "127.0.0.1"
XDOMAIN = "localhost"
CLK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024

GATEWAYS = ("causeway", "biboumi")
# Descriptors we may give InspIRCd and causeway: as many as scenario 5
# wants, within the hard limit this shell was given.
import resource  # noqa: E402
NOFILE_HARD = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
if NOFILE_HARD == resource.RLIM_INFINITY:
    NOFILE_HARD = 1 << 20
IRCD_NOFILE = min(65536, NOFILE_HARD)
GW_DOMAIN = {"causeway": "irc.localhost", "biboumi": "biboumi.localhost"}

# --------------------------------------------------------------------------
# processes: every child is recorded and stopped by PID


_children = []          # (label, Popen)


def log(*a):
    print("[%s]" % time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


def spawn(label, argv, cwd, logfile, env=None):
    out = open(logfile, "ab")
    p = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
                         stderr=subprocess.STDOUT, env=env,
                         start_new_session=True)    # Ctrl-C goes to us only
    out.close()
    _children.append((label, p))
    return p


def stop(p, timeout=10, sig=signal.SIGTERM):
    """SIGTERM by PID, wait, SIGKILL after timeout.  Returns the status."""
    if p is None:
        return None
    if p.poll() is None:
        try:
            os.kill(p.pid, sig)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass
    for i, (_, q) in enumerate(_children):
        if q is p:
            del _children[i]
            break
    return p.returncode


def stop_all():
    while _children:
        label, p = _children[-1]
        stop(p, 5)


def _on_signal(signum, _frame):
    raise KeyboardInterrupt("signal %d" % signum)


def free_ports(n):
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind((LO, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def port_open(port):
    try:
        with socket.create_connection((LO, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_port(p, port, timeout, what):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if p.poll() is not None:
            raise RuntimeError("%s exited with status %s" % (what, p.returncode))
        if port_open(port):
            return
        time.sleep(0.05)
    raise RuntimeError("%s did not open port %d within %d s" % (what, port, timeout))


def cpu_s(pid):
    """utime+stime of pid in seconds, or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return (int(rest[11]) + int(rest[12])) / CLK
    except (OSError, IndexError, ValueError):
        return None


def status_kb(pid, key="VmRSS"):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def self_cpu():
    t = os.times()
    return t.user + t.system


def pct(values, q):
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


# --------------------------------------------------------------------------
# servers


class Env:
    def __init__(self, args, tmp):
        self.args = args
        self.tmp = tmp
        (self.c2s_port, self.comp_port, self.irc_port) = free_ports(3)
        self.secret = {g: secrets.token_hex(12)
                       for g in GATEWAYS + ("mail", "sms")}
        self.prosody = self.ircd = None
        self.mail = self.sms = None         # scenario 6 (mailsms.py)

    # -- Prosody --
    def start_prosody(self):
        d = os.path.join(self.tmp, "prosody")
        os.makedirs(d)
        cfg = os.path.join(d, "prosody.cfg.lua")
        with open(cfg, "w") as f:
            f.write("""-- written by contrib/bench/bench.py
run_as_root = true
pidfile = "{d}/prosody.pid"
data_path = "{d}/data"
log = {{ {{ levels = {{ min = "warn" }}, to = "file", filename = "{d}/prosody.log" }} }}
network_backend = "epoll"
interfaces = {{ "127.0.0.1" }}
local_interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {c2s} }}
c2s_interfaces = {{ "127.0.0.1" }}
component_ports = {{ {comp} }}
component_interfaces = {{ "127.0.0.1" }}
modules_disabled = {{ "s2s"; "s2s_auth_certs"; "offline"; "limits"; "tls" }}
modules_enabled = {{ "roster"; "saslauth"; "disco"; "ping" }}
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_plain"
storage = "internal"
certificates = "{d}"
c2s_stanza_size_limit = 1048576
component_stanza_size_limit = 1048576

VirtualHost "localhost"

Component "irc.localhost"
  component_secret = "{s1}"

Component "biboumi.localhost"
  component_secret = "{s2}"

Component "mail.localhost"
  component_secret = "{s3}"

Component "sms.localhost"
  component_secret = "{s4}"
""".format(d=d, c2s=self.c2s_port, comp=self.comp_port,
           s1=self.secret["causeway"], s2=self.secret["biboumi"],
           s3=self.secret["mail"], s4=self.secret["sms"]))
        self.prosody_dir, self.prosody_cfg = d, cfg
        self.accounts_dir = os.path.join(d, "data", "localhost", "accounts")
        os.makedirs(self.accounts_dir)
        self.prosody = spawn("prosody", ["prosody", "-F", "--config", cfg], d,
                             os.path.join(d, "stdout.log"))
        wait_port(self.prosody, self.c2s_port, 30, "prosody")
        wait_port(self.prosody, self.comp_port, 30, "prosody")

    def create_accounts(self, users, password):
        """One account with prosodyctl (timed), the rest written straight
        into Prosody's internal storage (data/localhost/accounts/U.dat, the
        format prosodyctl writes for internal_plain).  Returns timings."""
        t0 = time.monotonic()
        r = subprocess.run(["prosodyctl", "--config", self.prosody_cfg,
                            "register", "probe", XDOMAIN, password],
                           cwd=self.prosody_dir, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=60)
        t_ctl = time.monotonic() - t0
        if r.returncode != 0:
            raise RuntimeError("prosodyctl register failed: %s" % r.stdout.decode())
        t0 = time.monotonic()
        for u in users:
            with open(os.path.join(self.accounts_dir, u + ".dat"), "w") as f:
                f.write('return {\n\t["password"] = "%s";\n};\n' % password)
        t_files = time.monotonic() - t0
        return {"prosodyctl_register_s_per_account": round(t_ctl, 4),
                "direct_files_s_per_account": round(t_files / max(1, len(users)), 6),
                "method": "direct files in Prosody's internal storage"}

    # -- InspIRCd --
    def start_ircd(self):
        d = os.path.join(self.tmp, "inspircd")
        os.makedirs(d)
        with open(os.path.join(d, "motd.txt"), "w") as f:
            f.write("bench\n")
        cfg = os.path.join(d, "inspircd.conf")
        with open(cfg, "w") as f:
            f.write("""# written by contrib/bench/bench.py ("#" comments only)
<server name="ircd.bench" description="causeway bench" network="Bench">
<admin name="bench" nick="bench" email="bench@ircd.bench">
<bind address="127.0.0.1" port="{port}" type="clients">
# Flood control off for loopback: the gateways are measured, not the ircd.
<connect name="loopback" allow="127.0.0.0/8"
         maxchans="100000" timeout="120" pingfreq="10m"
         hardsendq="64M" softsendq="16M" recvq="16M"
         threshold="100000000" commandrate="100000000" fakelag="no"
         localmax="100000" globalmax="100000" maxconnwarn="no"
         limit="100000" useident="no" resolvehostnames="no">
<performance clonesonconnect="no" somaxconn="4096" softlimit="100000">
<dns server="127.0.0.1" timeout="1">
<files motd="{d}/motd.txt">
<log method="file" type="* -USERINPUT -USEROUTPUT" level="default" target="{d}/ircd.log">
<options prefixquit="Quit: " syntaxhints="no" announcets="yes" hostintopic="yes"
         pingwarning="15" splitwhois="no">
<security hideserver="" userstats="Pu" customversion="" flatlinks="no"
          hidesplits="no" hideulines="no" hidebans="no" maxtargets="20">
<limits maxnick="30" maxchan="64" maxmodes="20" maxident="11" maxhost="64"
        maxquit="255" maxtopic="307" maxkick="255" maxreal="128" maxgecos="128"
        maxaway="200">
<channels users="100000" opers="100000">
<module name="cap">
<module name="ircv3">
<module name="ircv3_capnotify">
<module name="ircv3_servertime">
<module name="ircv3_echomessage">
<module name="namesx">
<module name="uhnames">
""".format(d=d, port=self.irc_port))
        self.ircd_dir = d
        # Descriptors for scenario 5's 10,000 clients (and the listener).
        self.ircd = spawn("inspircd", ["prlimit", "--core=0:0",
                                       "--nofile=%d:%d" % (IRCD_NOFILE, IRCD_NOFILE),
                                       "inspircd",
                                       "--config=" + cfg, "--nofork",
                                       "--runasroot", "--nopid"], d,
                          os.path.join(d, "ircd.out"))
        wait_port(self.ircd, self.irc_port, 20, "inspircd")


# --------------------------------------------------------------------------
# gateways


class Gateway:
    def __init__(self, env, name, run):
        self.env, self.name, self.run = env, name, run
        self.domain = GW_DOMAIN[name]
        self.dir = os.path.join(env.tmp, "%s-run%d" % (name, run))
        os.makedirs(self.dir)
        self.logfile = os.path.join(self.dir, "%s.log" % name)
        self.p = None

    @property
    def pid(self):
        return self.p.pid

    def alive(self):
        return self.p is not None and self.p.poll() is None

    def log_tail(self, n=15):
        try:
            with open(self.logfile, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return []
        return lines[-n:]

    def log_matching(self, words=("error", "warn", "crit", "assert", "abort")):
        try:
            with open(self.logfile, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return []
        # distinct problem lines (timestamps cut off), with their counts
        import re
        seen = {}
        for l in lines:
            if any(w in l.lower() for w in words):
                k = re.sub(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ ", "", l)
                seen[k] = seen.get(k, 0) + 1
        return ["%s  (x%d)" % (k, v) if v > 1 else k for k, v in seen.items()]

    def stop(self):
        rc = stop(self.p, 15)
        return rc


class Causeway(Gateway):
    def start(self):
        e = self.env
        cfg = os.path.join(self.dir, "causeway.conf")
        with open(cfg, "w") as f:
            f.write("[causeway]\ndatabase = %s/causeway.db\nkey_file = %s/secret.key\n"
                    "log_level = info\n\n[component irc.localhost]\nbackend = irc\n"
                    "server = %s\nport = %d\nsecret = %s\nlinger = 0\n\n"
                    "[irc-server %s]\nport = %d\ntls = no\n"
                    "throttle_burst = 1000\nthrottle_rate = 0\n"
                    % (self.dir, self.dir, LO, e.comp_port, e.secret["causeway"],
                       LO, e.irc_port))
        self.p = spawn("causeway", [e.args.causeway, "-c", cfg], self.dir, self.logfile)

    def prepare_users(self, users):
        pass

    OWNER_FORM = ("<query xmlns='http://jabber.org/protocol/muc#owner'>"
                  "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'>"
                  "<value>http://jabber.org/protocol/muc#roomconfig</value></field>"
                  "<field var='persistent'><value>1</value></field></x></query>")

    async def set_persistent(self, users, room_jid, timeout=60):
        """Every user makes room_jid persistent through the XEP-0045
        owner form (its own setting of the room).  Returns the number of
        users whose iq was answered with a result, and the errors."""
        res = await asyncio.gather(
            *[asyncio.wait_for(u.c.iq(room_jid, self.OWNER_FORM, "set"), timeout)
              for u in users], return_exceptions=True)
        ok, bad = 0, {}
        for r in res:
            if isinstance(r, Exception):
                k = type(r).__name__
            elif r.get("type") == "result":
                ok += 1
                continue
            else:
                k = ",".join(c.tag.split("}")[1] for c in
                             r.iterfind("{jabber:client}error/*")) or "error"
            bad[k] = bad.get(k, 0) + 1
        return ok, bad

    def archived(self):
        """Rows in causeway's archive table (all rooms)."""
        try:
            c = sqlite3.connect(os.path.join(self.dir, "causeway.db"), timeout=30)
            n = c.execute("select count(*) from archive").fetchone()[0]
            c.close()
            return n
        except sqlite3.Error:
            return None


class Biboumi(Gateway):
    schema = None           # CREATE statements, from a throw-away start

    @classmethod
    def make_schema(cls, tmp):
        """biboumi creates its tables when it starts; start it once with an
        unreachable XMPP port and keep the schema it wrote."""
        d = os.path.join(tmp, "biboumi-schema")
        os.makedirs(d)
        db = os.path.join(d, "b.sqlite")
        with open(os.path.join(d, "b.cfg"), "w") as f:
            f.write("hostname=biboumi.localhost\npassword=x\nxmpp_server_ip=127.0.0.1\n"
                    "port=%d\ndb_name=%s\nlog_level=1\nidentd_port=0\n"
                    "policy_directory=%s\n" % (free_ports(1)[0], db, d))
        p = spawn("biboumi-schema", ["biboumi", os.path.join(d, "b.cfg")], d,
                  os.path.join(d, "out.log"))
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            pass
        stop(p, 5)
        c = sqlite3.connect(db)
        cls.schema = [r[0] for r in c.execute(
            "select sql from sqlite_master where sql is not null "
            "and name not like 'sqlite_%'")]
        c.close()
        tables = " ".join(cls.schema)
        for t in ("ircserveroptions_", "globaloptions_", "muclogline_"):
            if t not in tables:
                raise RuntimeError("biboumi's database has no table %s; "
                                   "this bench knows biboumi 9's schema" % t)

    def start(self):
        e = self.env
        self.db = os.path.join(self.dir, "biboumi.sqlite")
        cfg = os.path.join(self.dir, "biboumi.cfg")
        with open(cfg, "w") as f:
            f.write("hostname=biboumi.localhost\npassword=%s\nxmpp_server_ip=%s\n"
                    "port=%d\ndb_name=%s\nlog_level=1\nidentd_port=0\n"
                    "realname_customization=true\npolicy_directory=%s\n"
                    % (e.secret["biboumi"], LO, e.comp_port, self.db, self.dir))
        self.p = spawn("biboumi", ["biboumi", cfg], self.dir, self.logfile)

    def prepare_db(self, users):
        """Per-user IRC server options (biboumi has no operator-level port
        setting): plain port of our InspIRCd, no TLS ports, throttling off;
        history recording off.  Written before biboumi starts."""
        self.db = os.path.join(self.dir, "biboumi.sqlite")
        c = sqlite3.connect(self.db)
        for s in self.schema:
            c.execute(s)
        for u in users:
            owner = "%s@%s" % (u, XDOMAIN)
            c.execute("insert into ircserveroptions_ (owner_, server_, pass_, "
                      "tlsports_, ports_, username_, realname_, verifycert_, "
                      "trustedfingerprint_, encodingout_, encodingin_, "
                      "maxhistorylength_, address_, nick_, saslpassword_, "
                      "throttlelimit_) values (?,?,'','',?,'','',1,'','','',"
                      "20,'','','',-1)", (owner, LO, str(self.env.irc_port)))
            c.execute("insert into globaloptions_ (owner_, maxhistorylength_, "
                      "recordhistory_, persistent_) values (?,20,0,0)", (owner,))
        c.commit()
        c.close()

    def set_history(self, users, on):
        c = sqlite3.connect(self.db, timeout=30)
        c.execute("update globaloptions_ set recordhistory_=?", (1 if on else 0,))
        c.commit()
        c.close()
        return True

    def archived(self):
        try:
            c = sqlite3.connect(self.db, timeout=30)
            n = c.execute("select count(*) from muclogline_").fetchone()[0]
            c.close()
            return n
        except sqlite3.Error:
            return None


# --------------------------------------------------------------------------
# the clients


class User:
    def __init__(self, name, env, password):
        self.name = name
        self.c = XmppClient(LO, env.c2s_port, name, XDOMAIN, password, "bench")
        self.c.on_stanza = self.on_stanza
        self.reset()

    def reset(self):
        self.selfpres = {}          # room (lower) -> time of 110 presence
        self.errpres = {}           # room -> error element text
        self.fan_room = None
        self.fan_seen = set()
        self.fan_lat = []
        self.fan_last = 0.0
        self.fan_dups = 0
        self.echo = 0
        self.waiter = None
        self.errors = []

    def on_stanza(self, kind, el):
        frm = (el.get("from") or "")
        room = frm.split("/", 1)[0].lower()
        if kind == "presence":
            if el.get("type") == "error":
                if room not in self.errpres:
                    cond = [c.tag.split("}")[1] for c in
                            el.iterfind("{jabber:client}error/*")]
                    self.errpres[room] = ",".join(cond)
                    self._poke()
                return
            if el.get("type") is None and "110" in muc_status_codes(el):
                if room not in self.selfpres:
                    self.selfpres[room] = time.perf_counter()
                    self._poke()
            return
        if el.get("type") == "error":
            self.errors.append(frm)
            return
        body = el.findtext("{jabber:client}body")
        if not body:
            return
        t = time.perf_counter()
        if room == self.fan_room and body.startswith("F "):
            parts = body.split()
            if len(parts) >= 3:
                seq = parts[1]
                if seq in self.fan_seen:
                    self.fan_dups += 1
                    return
                self.fan_seen.add(seq)
                self.fan_lat.append(t - float(parts[2]))
                self.fan_last = t
        elif body.startswith("X "):
            self.echo += 1

    def _poke(self):
        pass


# --------------------------------------------------------------------------
# scenarios


async def wait_progress(count, target, idle_timeout, max_timeout):
    """Wait until count() >= target, or no progress for idle_timeout s
    after the first arrival, or max_timeout s in all (a gateway may work
    for a long time before the first stanza comes out).  Never fails:
    returns the last count."""
    t0 = time.monotonic()
    first = last = count()
    t_last = time.monotonic()
    while True:
        n = count()
        if n >= target:
            return n
        now = time.monotonic()
        if n != last:
            last, t_last = n, now
        if (last != first and now - t_last > idle_timeout) or now - t0 > max_timeout:
            return n
        await asyncio.sleep(0.02)


class Snap:
    """CPU of the gateway, Prosody, InspIRCd and this process."""

    def __init__(self, env, gw):
        self.pids = {"gw": gw.pid, "prosody": env.prosody.pid, "ircd": env.ircd.pid}
        self.t = time.perf_counter()
        self.cpu = {k: cpu_s(p) for k, p in self.pids.items()}
        self.cpu["bench"] = self_cpu()

    def delta(self, later):
        out = {}
        for k, v in self.cpu.items():
            w = later.cpu.get(k)
            out[k] = None if v is None or w is None else round(w - v, 3)
        out["wall"] = round(later.t - self.t, 3)
        return out


async def wait_disco(gw, probe, domain, timeout=60):
    """Poll disco#info on the gateway's domain through Prosody until it
    answers with a result."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if not gw.alive():
            raise RuntimeError("%s exited with status %s at startup"
                               % (gw.name, gw.p.returncode))
        try:
            r = await asyncio.wait_for(probe.iq(
                domain, "<query xmlns='http://jabber.org/protocol/disco#info'/>"), 5)
        except asyncio.TimeoutError:
            continue
        if r.get("type") == "result":
            return
        await asyncio.sleep(0.01)
    raise RuntimeError("%s did not answer disco#info within %d s" % (gw.name, timeout))


async def gateway_run(env, users, name, run, args, tag):
    """All scenarios for one gateway in one run.  Returns a dict of
    figures; 'error' says what went wrong if it could not finish."""
    R = {"gateway": name, "run": run}
    gw = (Causeway if name == "causeway" else Biboumi)(env, name, run)
    domain = gw.domain
    names = [u.name for u in users]
    if name == "biboumi":
        gw.prepare_db(names)
    for u in users:
        u.reset()
    probe = env.probe
    bot = None
    try:
        # ---- 1. idle and startup --------------------------------------
        t0 = time.perf_counter()
        gw.start()
        await wait_disco(gw, probe, domain)
        R["startup_ms"] = round((time.perf_counter() - t0) * 1000, 1)
        await asyncio.sleep(1.0)
        R["idle_rss_kb"] = status_kb(gw.pid)
        R["idle_rss_anon_kb"] = status_kb(gw.pid, "RssAnon")
        R["startup_cpu_s"] = cpu_s(gw.pid)

        # Users never register: like biboumi's, causeway's users just join.

        # ---- the IRC bot -------------------------------------------------
        main = "#bench-%s" % tag
        own = ["#own-%s-%d" % (tag, i) for i in range(len(users))]
        bot = IrcBot(LO, env.irc_port, "bot%s" % tag.replace("-", ""))
        await bot.connect()
        await bot.join([main] + own, timeout=120)
        suffix = "%" + LO + "@" + domain
        room = (main + suffix).lower()

        # ---- 2. join storm -----------------------------------------------
        s0 = Snap(env, gw)
        t0 = time.perf_counter()
        for u in users:
            u.c.join(main + suffix, u.name)
        await asyncio.gather(*[u.c.drain() for u in users])
        n = len(users)
        got = await wait_progress(
            lambda: sum(1 for u in users if room in u.selfpres or room in u.errpres),
            n, 30, 60 + n)
        joined = [u for u in users if room in u.selfpres]
        R["storm_s"] = round(max([u.selfpres[room] for u in joined], default=t0) - t0, 3)
        R["storm_joined"] = len(joined)
        R["storm_errors"] = sum(1 for u in users if room in u.errpres)
        if R["storm_errors"]:
            R["storm_error_conditions"] = sorted(
                {u.errpres[room] for u in users if room in u.errpres})
        if got < n:
            R["storm_missing"] = n - got
        await asyncio.sleep(2.0)
        s1 = Snap(env, gw)
        R["storm_cpu"] = s0.delta(s1)
        R["storm_rss_kb"] = status_kb(gw.pid)
        R["rss_per_session_kb"] = round((R["storm_rss_kb"] - R["idle_rss_kb"]) / n, 1)
        R["storm_rss_anon_kb"] = status_kb(gw.pid, "RssAnon")
        R["anon_per_session_kb"] = round(
            (R["storm_rss_anon_kb"] - R["idle_rss_anon_kb"]) / n, 1)

        # ---- 3. XMPP -> IRC -----------------------------------------------
        # Each user sends into its own channel (which only the bot shares),
        # so this measures XMPP->IRC and not IRC->XMPP fan-out to the others.
        own_rooms = [(own[i] + suffix).lower() for i in range(n)]
        for i, u in enumerate(users):
            u.c.join(own[i] + suffix, u.name)
        await wait_progress(lambda: sum(1 for i, u in enumerate(users)
                                        if own_rooms[i] in u.selfpres
                                        or own_rooms[i] in u.errpres), n, 30, 60 + n)
        R["own_joined"] = sum(1 for i, u in enumerate(users) if own_rooms[i] in u.selfpres)
        M = args.messages
        seen, lat = set(), []
        last = [0.0]
        dups = [0]

        def on_line(line, t):
            p = line.split(" ", 3)
            if len(p) == 4 and p[1] == "PRIVMSG" and p[3].startswith(":X "):
                b = p[3][1:].split()
                if len(b) >= 3:
                    if b[1] in seen:
                        dups[0] += 1
                        return
                    seen.add(b[1])
                    lat.append(t - float(b[2]))
                    last[0] = t
        bot.on_line = on_line
        share = [M // n + (1 if i < M % n else 0) for i in range(n)]
        await asyncio.sleep(0.5)
        s0 = Snap(env, gw)
        t0 = time.perf_counter()

        async def send(i, u):
            seq0 = sum(share[:i])
            to = own[i] + suffix
            for k in range(share[i]):
                u.c.send(XmppClient.groupchat_xml(
                    to, "X %d %.6f" % (seq0 + k, time.perf_counter())))
                await u.c.drain()
        await asyncio.gather(*[send(i, u) for i, u in enumerate(users)])
        t_sent = time.perf_counter()
        await wait_progress(lambda: len(seen), M, 15, 120 + M / 50)
        # let the reflections to the senders settle before reading the CPU
        await wait_progress(lambda: sum(u.echo for u in users), M, 3, 30)
        s1 = Snap(env, gw)
        bot.on_line = None
        R["x2i_sent"] = M
        R["x2i_received"] = len(seen)
        R["x2i_loss"] = M - len(seen)
        R["x2i_dups"] = dups[0]
        R["x2i_send_s"] = round(t_sent - t0, 3)
        span = (last[0] - t0) if seen else None
        R["x2i_msgs_per_s"] = round(len(seen) / span, 1) if span else None
        R["x2i_p50_ms"] = round(pct(lat, 0.5) * 1000, 2) if lat else None
        R["x2i_p99_ms"] = round(pct(lat, 0.99) * 1000, 2) if lat else None
        R["x2i_reflections"] = sum(u.echo for u in users)
        R["x2i_cpu"] = s0.delta(s1)
        R["x2i_latencies_ms"] = [round(x * 1000, 3) for x in lat]
        if len(seen):
            for k in ("gw", "prosody", "ircd", "bench"):
                v = R["x2i_cpu"][k]
                R["x2i_%s_cpu_per_1000" % k] = None if v is None else round(
                    v * 1000 / len(seen), 4)

        # ---- 4. IRC -> XMPP fan-out (without, then with history) ---------
        K = args.fanout
        variants = [("fan", False)]
        if args.history:
            variants.append(("fanh", True))
        seq_base = 0
        for key, hist in variants:
            if hist and name == "causeway":
                # causeway archives persistent channels: every user sets
                # "persistent" in the room's owner form (not measured).
                t0 = time.perf_counter()
                ok, bad = await gw.set_persistent(users, main + suffix)
                R["persist_s"] = round(time.perf_counter() - t0, 3)
                R["persist_ok"] = ok
                if bad:
                    R["persist_errors"] = bad
                    log("%s: %d owner-form submissions failed: %s"
                        % (name, sum(bad.values()), bad))
                await asyncio.sleep(1.0)
            elif hist:
                # biboumi reads "record history" when it creates a user's
                # bridge: switch it on in its database and restart it, and
                # the users join again (not measured).
                gw.stop()
                gw.set_history(names, True)
                for u in users:
                    u.selfpres.pop(room, None)
                    u.errpres.pop(room, None)
                await asyncio.sleep(1.0)
                t0 = time.perf_counter()
                gw.start()
                await wait_disco(gw, probe, domain)
                R["restart_ms"] = round((time.perf_counter() - t0) * 1000, 1)
                for u in users:
                    u.c.join(main + suffix, u.name)
                await wait_progress(
                    lambda: sum(1 for u in users if room in u.selfpres
                                or room in u.errpres), n, 30, 60 + n)
                joined = [u for u in users if room in u.selfpres]
                R["rejoined"] = len(joined)
                await asyncio.sleep(1.0)
            for u in users:
                u.fan_room = room
                u.fan_seen = set()
                u.fan_lat = []
                u.fan_dups = 0
            await asyncio.sleep(0.5)
            a0 = gw.archived() if hist else None
            s0 = Snap(env, gw)
            t0 = time.perf_counter()
            buf = []
            for k in range(K):
                buf.append("PRIVMSG %s :F %d %.6f\r\n" % (main, seq_base + k,
                                                         time.perf_counter()))
            bot.writer.write("".join(buf).encode())
            await bot.writer.drain()
            seq_base += K
            target = K * len(joined)
            await wait_progress(lambda: sum(len(u.fan_seen) for u in users),
                                target, 60, 180 + target / 100)
            if hist:
                # causeway writes its archive behind (batches every
                # 500 ms): let the last batch land before CPU and rows
                # are read; the same wait for biboumi (idle by then).
                await asyncio.sleep(1.5)
            s1 = Snap(env, gw)
            got = sum(len(u.fan_seen) for u in users)
            lat = [x for u in users for x in u.fan_lat]
            t_last = max([u.fan_last for u in users if u.fan_seen], default=None)
            F = {"sent": K, "receivers": len(joined), "expected": target,
                 "received": got, "loss": target - got,
                 "dups": sum(u.fan_dups for u in users),
                 "stanzas_per_s": round(got / (t_last - t0), 1) if t_last else None,
                 "p50_ms": round(pct(lat, 0.5) * 1000, 2) if lat else None,
                 "p99_ms": round(pct(lat, 0.99) * 1000, 2) if lat else None,
                 "cpu": s0.delta(s1)}
            if hist:
                a1 = gw.archived()
                F["archived_rows"] = None if a1 is None or a0 is None else a1 - a0
            if got:
                for k in ("gw", "prosody", "ircd", "bench"):
                    v = F["cpu"][k]
                    F["%s_cpu_per_1000" % k] = None if v is None else round(
                        v * 1000 / got, 4)
            F["latencies_ms"] = [round(x * 1000, 3) for x in lat]
            R[key] = F
        R["rss_end_kb"] = status_kb(gw.pid)
        R["rss_peak_kb"] = status_kb(gw.pid, "VmHWM")
        R["fds"] = len(os.listdir("/proc/%d/fd" % gw.pid))
    except Exception as e:          # record, report, go on with the next one
        R["error"] = "%s: %s" % (type(e).__name__, e)
        log("%s run %d: %s" % (name, run, R["error"]))
        if os.environ.get("BENCH_DEBUG"):
            traceback.print_exc()
    finally:
        if gw.p is not None:
            alive = gw.alive()
            if not alive:
                R["exited"] = gw.p.returncode
                R.setdefault("error", "%s exited with status %s" % (name, gw.p.returncode))
            R["log_problems"] = gw.log_matching()[-20:]
            if not alive or "error" in R:
                R["log_tail"] = gw.log_tail(20)
            # leave the rooms, then stop the gateway by PID
            for u in users:
                u.reset()
            if bot is not None:
                await bot.close()
            R["stop_status"] = gw.stop()
    return R


# --------------------------------------------------------------------------
# summary


def getv(r, path):
    v = r
    for k in path.split("."):
        if not isinstance(v, dict) or k not in v:
            return None
        v = v[k]
    return v


ROWS = [
    # (scenario, label, path, unit scale, format)
    ("1 idle", "start to disco#info (ms)", "startup_ms", 1, "%.0f"),
    ("1 idle", "idle RSS (MB)", "idle_rss_kb", 1 / 1024, "%.1f"),
    ("1 idle", "idle RssAnon, private (MB)", "idle_rss_anon_kb", 1 / 1024, "%.1f"),
    ("2 join storm", "wall time, all self-presences (s)", "storm_s", 1, "%.2f"),
    ("2 join storm", "joined / N", "storm_joined", 1, "%.0f"),
    ("2 join storm", "RSS per IRC session (KB)", "rss_per_session_kb", 1, "%.1f"),
    ("2 join storm", "RssAnon per IRC session (KB)", "anon_per_session_kb", 1, "%.1f"),
    ("2 join storm", "gateway CPU (s)", "storm_cpu.gw", 1, "%.3f"),
    ("3 XMPP->IRC", "messages/s", "x2i_msgs_per_s", 1, "%.0f"),
    ("3 XMPP->IRC", "latency p50 (ms)", "x2i_p50_ms", 1, "%.1f"),
    ("3 XMPP->IRC", "latency p99 (ms)", "x2i_p99_ms", 1, "%.1f"),
    ("3 XMPP->IRC", "loss (messages)", "x2i_loss", 1, "%.0f"),
    ("3 XMPP->IRC", "gateway CPU-s / 1000 msgs", "x2i_gw_cpu_per_1000", 1, "%.4f"),
    ("3 XMPP->IRC", "Prosody CPU-s / 1000 msgs", "x2i_prosody_cpu_per_1000", 1, "%.4f"),
    ("3 XMPP->IRC", "InspIRCd CPU-s / 1000 msgs", "x2i_ircd_cpu_per_1000", 1, "%.4f"),
    ("3 XMPP->IRC", "load generator CPU-s / 1000 msgs", "x2i_bench_cpu_per_1000", 1, "%.4f"),
    ("4 IRC->XMPP", "stanzas/s", "fan.stanzas_per_s", 1, "%.0f"),
    ("4 IRC->XMPP", "latency p50 (ms)", "fan.p50_ms", 1, "%.1f"),
    ("4 IRC->XMPP", "latency p99 (ms)", "fan.p99_ms", 1, "%.1f"),
    ("4 IRC->XMPP", "loss (stanzas)", "fan.loss", 1, "%.0f"),
    ("4 IRC->XMPP", "gateway CPU-s / 1000 stanzas", "fan.gw_cpu_per_1000", 1, "%.4f"),
    ("4 IRC->XMPP", "Prosody CPU-s / 1000 stanzas", "fan.prosody_cpu_per_1000", 1, "%.4f"),
    ("4 IRC->XMPP", "InspIRCd CPU-s / 1000 stanzas", "fan.ircd_cpu_per_1000", 1, "%.4f"),
    ("4 IRC->XMPP", "load generator CPU-s / 1000 stanzas", "fan.bench_cpu_per_1000", 1, "%.4f"),
    ("4h with history", "stanzas/s", "fanh.stanzas_per_s", 1, "%.0f"),
    ("4h with history", "latency p50 (ms)", "fanh.p50_ms", 1, "%.1f"),
    ("4h with history", "latency p99 (ms)", "fanh.p99_ms", 1, "%.1f"),
    ("4h with history", "loss (stanzas)", "fanh.loss", 1, "%.0f"),
    ("4h with history", "gateway CPU-s / 1000 stanzas", "fanh.gw_cpu_per_1000", 1, "%.4f"),
    ("4h with history", "Prosody CPU-s / 1000 stanzas", "fanh.prosody_cpu_per_1000", 1, "%.4f"),
    ("4h with history", "archived rows", "fanh.archived_rows", 1, "%.0f"),
    ("-", "gateway peak RSS (MB)", "rss_peak_kb", 1 / 1024, "%.1f"),
    # scenario 6 (mailsms.py): causeway only, biboumi's column says n/a
    ("6 email", "mails/s, LMTP to XMPP client", "email.mails_per_s", 1, "%.0f"),
    ("6 email", "mails/s accepted by LMTP (Dovecot)", "email.lmtp_per_s", 1, "%.0f"),
    ("6 email", "latency p50 (ms), in mailbox to client", "email.idle_p50_ms", 1, "%.1f"),
    ("6 email", "latency p99 (ms), in mailbox to client", "email.idle_p99_ms", 1, "%.1f"),
    ("6 email", "latency p50 (ms), from LMTP start", "email.lmtp_p50_ms", 1, "%.1f"),
    ("6 email", "latency p99 (ms), from LMTP start", "email.lmtp_p99_ms", 1, "%.1f"),
    ("6 email", "latency p50 (ms), one mail at a time", "email.single_p50_ms", 1, "%.1f"),
    ("6 email", "loss (mails)", "email.loss", 1, "%.0f"),
    ("6 email", "gateway CPU-s / 1000 mails", "email.gw_cpu_per_1000", 1, "%.4f"),
    ("6 email", "Dovecot CPU-s / 1000 mails", "email.dovecot_cpu_per_1000", 1, "%.4f"),
    ("6 email", "Prosody CPU-s / 1000 mails", "email.prosody_cpu_per_1000", 1, "%.4f"),
    ("6 email", "load generator CPU-s / 1000 mails", "email.bench_cpu_per_1000", 1, "%.4f"),
    ("6 SMS", "texts/s, phone to XMPP client", "sms.mo_per_s", 1, "%.0f"),
    ("6 SMS", "round trips/s, phone to client to phone", "sms.rt_per_s", 1, "%.0f"),
    ("6 SMS", "latency p50 (ms), phone to client", "sms.in_p50_ms", 1, "%.1f"),
    ("6 SMS", "latency p99 (ms), phone to client", "sms.in_p99_ms", 1, "%.1f"),
    ("6 SMS", "latency p50 (ms), client to phone", "sms.out_p50_ms", 1, "%.1f"),
    ("6 SMS", "latency p99 (ms), client to phone", "sms.out_p99_ms", 1, "%.1f"),
    ("6 SMS", "phone to client p50 (ms), one text at a time", "sms.single_in_p50_ms", 1, "%.1f"),
    ("6 SMS", "round trip p50 (ms), one text at a time", "sms.single_rt_p50_ms", 1, "%.1f"),
    ("6 SMS", "loss (texts, both ways)", "sms.loss", 1, "%.0f"),
    ("6 SMS", "gateway CPU-s / 1000 round trips", "sms.gw_cpu_per_1000", 1, "%.4f"),
    ("6 SMS", "Kannel CPU-s / 1000 round trips", "sms.kannel_cpu_per_1000", 1, "%.4f"),
    ("6 SMS", "Prosody CPU-s / 1000 round trips", "sms.prosody_cpu_per_1000", 1, "%.4f"),
    ("6 SMS", "load generator CPU-s / 1000 round trips", "sms.bench_cpu_per_1000", 1, "%.4f"),
]
CAUSEWAY_ONLY = ("email", "sms")


def summarize(results):
    summary = []
    for scen, label, path, scale, fmt in ROWS:
        row = {"scenario": scen, "figure": label, "key": path}
        for g in GATEWAYS:
            vals, na = [], False
            if g != "causeway" and path.split(".")[0] in CAUSEWAY_ONLY:
                row[g] = "n/a"
                continue
            for r in results:
                if r["gateway"] != g:
                    continue
                top = path.split(".")[0]
                if r.get(top) == "n/a":
                    na = True
                    continue
                v = getv(r, path)
                if isinstance(v, (int, float)):
                    vals.append(v * scale)
            if vals:
                row[g] = {"median": statistics.median(vals), "min": min(vals),
                          "max": max(vals), "n": len(vals), "fmt": fmt}
            else:
                row[g] = "n/a" if na else None
        c, b = row["causeway"], row["biboumi"]
        if isinstance(c, dict) and isinstance(b, dict) and b["median"]:
            row["ratio"] = c["median"] / b["median"]
        else:
            row["ratio"] = None
        summary.append(row)
    return summary


def fmt_cell(v):
    if v is None:
        return "-"
    if v == "n/a":
        return "n/a"
    f = v["fmt"]
    s = f % v["median"]
    if v["n"] > 1 and v["min"] != v["max"]:
        s += " (%s-%s)" % (f % v["min"], f % v["max"])
    return s


def table(summary, args):
    head = ("scenario", "figure", "causeway", "biboumi", "cw/bb")
    rows, rows6 = [], []
    for r in summary:
        six = r["scenario"].startswith("6")
        if six and not isinstance(r["causeway"], dict):
            continue                # shown as one "not run" line below
        if not six and r["causeway"] is None and r["biboumi"] is None:
            continue                # --email-sms-only
        ratio = "-" if r["ratio"] is None else "%.2f" % r["ratio"]
        (rows6 if six else rows).append(
            (r["scenario"], r["figure"], fmt_cell(r["causeway"]),
             fmt_cell(r["biboumi"]), ratio))
    sc = getattr(args, "scale_result", None)
    if sc and sc.get("rss_per_session_kb") is not None:
        rows.append(("5 scale", "%d sessions: joined, RSS/session (KB)" % sc["sessions"],
                     "%s, %.1f" % (sc.get("joined"), sc["rss_per_session_kb"]),
                     "not run", "-"))
    else:
        rows.append(("5 scale", "10,000 sessions", "not run" if not sc else
                     "failed: %s" % sc.get("error"), "not run", "-"))
    rows += rows6
    for key, label in (("email", "6 email"), ("sms", "6 SMS")):
        if not any(r["scenario"] == label and isinstance(r["causeway"], dict)
                   for r in summary):
            why = getattr(args, "row6_skipped", {}).get(key, "not run")
            rows.append((label, "LMTP to XMPP" if key == "email" else
                         "Kannel to XMPP and back", why, "n/a", "-"))
    w = [max(len(str(x[i])) for x in rows + [head]) for i in range(5)]
    lines = ["| " + " | ".join(str(h).ljust(w[i]) for i, h in enumerate(head)) + " |",
             "|" + "|".join("-" * (w[i] + 2) for i in range(5)) + "|"]
    for x in rows:
        lines.append("| " + " | ".join(str(c).ljust(w[i]) for i, c in enumerate(x)) + " |")
    return "\n".join(lines)


def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = None
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) // 1024
    except OSError:
        pass

    def ver(cmd):
        try:
            r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", cmd],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               timeout=10)
            return r.stdout.decode().strip() or None
        except Exception:
            return None
    return {"nproc": os.cpu_count(), "mem_mb": mem, "cpu": model,
            "kernel": platform.release(), "python": platform.python_version(),
            "prosody": ver("prosody"), "inspircd": ver("inspircd"),
            "biboumi": ver("biboumi"), "dovecot": ver("dovecot-core"),
            "postfix": ver("postfix"), "kannel": ver("kannel")}


PLOT_NOTE = ("gnuplot not installed: no plots (apt-get install gnuplot-nox, "
             "then run again)")


def _cdf_file(outdir, name, lat):
    lat = sorted(lat)
    fn = os.path.join(outdir, "lat-%s.dat" % name)
    with open(fn, "w") as f:
        step = max(1, len(lat) // 2000)
        for i in range(0, len(lat), step):
            f.write("%.3f %.5f\n" % (max(lat[i], 0.001), (i + 1) / len(lat)))
        f.write("%.3f 1.0\n" % max(lat[-1], 0.001))
    return fn


def plot(results, summary, outdir):
    """With gnuplot: bench-latency.png (latency CDFs of scenarios 3, 4
    and 6) and bench-cpu.png (gateway and Prosody CPU-s per 1000, medians
    of the runs) in outdir.  Returns (list of PNGs, note)."""
    if not shutil.which("gnuplot"):
        return [], PLOT_NOTE

    def lat_of(g, path):
        out = []
        for r in results:
            if r["gateway"] == g:
                v = getv(r, path)
                if isinstance(v, list):
                    out.extend(v)
        return out
    panels = []
    for title, series in (
            ("XMPP->IRC (scenario 3)",
             [(g, "x2i_latencies_ms", g) for g in GATEWAYS]),
            ("IRC->XMPP fan-out (scenario 4)",
             [(g, "fan.latencies_ms", g) for g in GATEWAYS] +
             [(g, "fanh.latencies_ms", g + ", history") for g in GATEWAYS]),
            ("email and SMS, causeway (scenario 6)",
             [("causeway", "email.latencies_ms", "mail: in mailbox to client"),
              ("causeway", "sms.latencies_in_ms", "SMS: phone to client"),
              ("causeway", "sms.latencies_out_ms", "SMS: client to phone")])):
        lines = []
        for g, path, label in series:
            lat = lat_of(g, path)
            if lat:
                name = "%s-%s" % (g, path.replace(".", "-").replace("_ms", ""))
                lines.append((_cdf_file(outdir, name, lat), label, g))
        if lines:
            panels.append((title, lines))
    pngs = []
    color = {"causeway": "#1b7837", "biboumi": "#b2182b"}
    if panels:
        png = os.path.join(outdir, "bench-latency.png")
        gp = ["set terminal pngcairo size %d,460 font 'sans,9'" % (480 * len(panels) + 40),
              "set output '%s'" % png,
              "set multiplot layout 1,%d title 'latency distributions (CDF, all runs)'"
              % len(panels),
              "set logscale x", "set xlabel 'latency (ms, log scale)'",
              "set ylabel 'fraction of messages'", "set yrange [0:1]",
              "set key top left", "set grid"]
        for title, lines in panels:
            gp.append("set title '%s'" % title)
            items = []
            for i, (fn, label, g) in enumerate(lines):
                style = "lw 2 dt %d" % (2 if "history" in label else 1)
                if len(set(x[2] for x in lines)) > 1:
                    style += " lc rgb '%s'" % color.get(g, "#000000")
                items.append("'%s' using 1:2 with lines %s title '%s'"
                             % (fn, style, label))
            gp.append("plot " + ", ".join(items))
        gp.append("unset multiplot")
        pngs.append((png, gp))

    def med(path, g="causeway"):
        for r in summary:
            if r["key"] == path and isinstance(r.get(g), dict):
                return r[g]["median"]
        return None
    groups = [("XMPP->IRC\\n/1000 msgs", "x2i_gw_cpu_per_1000", "x2i_prosody_cpu_per_1000"),
              ("IRC->XMPP fan-out\\n/1000 stanzas", "fan.gw_cpu_per_1000",
               "fan.prosody_cpu_per_1000"),
              ("fan-out, history\\n/1000 stanzas", "fanh.gw_cpu_per_1000",
               "fanh.prosody_cpu_per_1000"),
              ("email\\n/1000 mails", "email.gw_cpu_per_1000",
               "email.prosody_cpu_per_1000"),
              ("SMS\\n/1000 round trips", "sms.gw_cpu_per_1000",
               "sms.prosody_cpu_per_1000")]
    rows = []
    for label, gwk, pk in groups:
        v = (med(gwk), med(gwk, "biboumi"), med(pk))
        if any(x is not None for x in v):
            rows.append((label, v))
    if rows:
        dat = os.path.join(outdir, "cpu.dat")
        with open(dat, "w") as f:
            for label, v in rows:
                f.write('"%s" %s\n' % (label, " ".join(
                    "NaN" if x is None else "%.5f" % max(x, 0.0001) for x in v)))
        png = os.path.join(outdir, "bench-cpu.png")
        lab = "($2==$2 ? sprintf('%.4f', $2) : '')"
        gp = ["set terminal pngcairo size 1000,460 font 'sans,9'",
              "set output '%s'" % png,
              "set title 'CPU seconds per 1000 messages (median of the runs; "
              "log scale; a bar at 0.0001 is below one clock tick)'",
              "set style data histograms", "set style histogram clustered gap 1",
              "set style fill solid 0.8 border -1", "set boxwidth 0.9",
              "set logscale y", "set yrange [0.0001:20]", "set grid ytics",
              "set ylabel 'CPU-s per 1000'", "set bmargin 5",
              "set key outside top center horizontal",
              "set datafile missing 'NaN'",
              "plot '%s' using 2:xtic(1) lc rgb '#1b7837' title 'causeway', "
              "'' using 3 lc rgb '#b2182b' title 'biboumi', "
              "'' using 4 lc rgb '#6a6a6a' title 'Prosody (causeway runs)', "
              "'' using ($0-0.25):2:%s with labels offset 0,0.6 notitle, "
              "'' using ($0):3:%s with labels offset 0,0.6 notitle, "
              "'' using ($0+0.25):4:%s with labels offset 0,0.6 notitle"
              % (dat, lab, lab.replace("$2", "$3"), lab.replace("$2", "$4"))]
        pngs.append((png, gp))
    out, notes = [], []
    for png, gp in pngs:
        script = png[:-4] + ".gp"
        with open(script, "w") as f:
            f.write("\n".join(gp) + "\n")
        r = subprocess.run(["gnuplot", script], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60)
        if r.returncode != 0 or not os.path.exists(png):
            notes.append("gnuplot failed on %s: %s" % (
                script, r.stdout.decode(errors="replace")[:300]))
        else:
            out.append(png)
    if not out and not notes:
        notes.append("no data to plot")
    return out, "; ".join(notes) or None


def copy_to_docs(pngs):
    """--docs: the PNGs to docs/bench/ of the tree this bench is in."""
    d = os.path.normpath(os.path.join(HERE, "..", "..", "docs", "bench"))
    os.makedirs(d, exist_ok=True)
    for p in pngs:
        shutil.copy(p, os.path.join(d, os.path.basename(p)))
    return d


# --------------------------------------------------------------------------


def setup_row6(args, env):
    """Dovecot + Postfix and Kannel for scenario 6, once for all runs.
    A row whose packages are missing or whose servers would not start is
    skipped with the reason (args.row6_skipped), the rest goes on."""
    import mailsms
    args.row6_skipped = {}
    for key, on in (("email", args.email), ("sms", args.sms)):
        if not on:
            args.row6_skipped[key] = "not run (--no-%s)" % key
            continue
        if "causeway" not in args.gateways:
            args.row6_skipped[key] = "not run (causeway not in --gateways)"
            continue
        miss = mailsms.missing_for(key)
        if miss:
            args.row6_skipped[key] = "not run: missing Debian packages: %s" % miss
            log("scenario 6 %s: %s" % (key, args.row6_skipped[key]))
            continue
        try:
            t0 = time.monotonic()
            if key == "email":
                env.mail = mailsms.MailSystem(args.mail_users)
                log("Dovecot (LMTP %d, IMAPS %d) and Postfix up, %d mailboxes "
                    "(%.1f s)" % (env.mail.env.lmtp, env.mail.env.imaps,
                                  args.mail_users, time.monotonic() - t0))
            else:
                env.sms = mailsms.SmsSystem()
                log("Kannel up: bearerbox, smsbox (sendsms %d), fakesmsc "
                    "(%.1f s)" % (env.sms.k.sendsms_port, time.monotonic() - t0))
        except Exception as e:
            args.row6_skipped[key] = "not run: %s: %s" % (type(e).__name__, e)
            log("scenario 6 %s: %s" % (key, args.row6_skipped[key]))


async def run_row6(args, env, users, results, run):
    import mailsms
    if env.mail is None and env.sms is None:
        return
    cw = next((r for r in results if r["gateway"] == "causeway"
               and r["run"] == run), None)
    if cw is None:
        cw = {"gateway": "causeway", "run": run}
        results.append(cw)
    for key, fn, system in (("email", mailsms.email_run, env.mail),
                            ("sms", mailsms.sms_run, env.sms)):
        if system is None:
            continue
        log("run %d/%d: causeway, %s row ..." % (run, args.runs, key))
        t0 = time.monotonic()
        cw[key] = await fn(env, users, run, args)
        log("run %d/%d: %s row done in %.0f s%s" % (
            run, args.runs, key, time.monotonic() - t0,
            (" -- ERROR: " + cw[key]["error"]) if "error" in cw[key] else ""))
        await asyncio.sleep(1)


async def bench(args, env):
    n = args.users
    users_names = ["u%d" % i for i in range(n)]
    password = secrets.token_hex(8)
    env.accounts = env.create_accounts(users_names, password)
    log("accounts: prosodyctl register %.3f s each; direct files %.6f s each "
        "(using direct files)" % (env.accounts["prosodyctl_register_s_per_account"],
                                  env.accounts["direct_files_s_per_account"]))
    env.probe = XmppClient(LO, env.c2s_port, "probe", XDOMAIN, password, "probe")
    await env.probe.login()
    users = [User(u, env, password) for u in users_names]
    t0 = time.monotonic()
    sem = asyncio.Semaphore(50)

    async def login(u):
        async with sem:
            await u.c.login()
    res = await asyncio.gather(*[login(u) for u in users], return_exceptions=True)
    bad = [r for r in res if isinstance(r, Exception)]
    if bad:
        raise RuntimeError("%d of %d clients could not log in: %s" % (len(bad), n, bad[0]))
    log("%d clients logged in (%.1f s)" % (n, time.monotonic() - t0))
    results = []
    for run in range(1, args.runs + 1):
        order = list(GATEWAYS) if run % 2 else list(reversed(GATEWAYS))
        for g in order:
            if g not in args.gateways or args.email_sms_only:
                continue
            tag = "%s%d" % ("cw" if g == "causeway" else "bb", run)
            log("run %d/%d: %s ..." % (run, args.runs, g))
            t0 = time.monotonic()
            r = await gateway_run(env, users, g, run, args, tag)
            lost = [c for c in users if c.c.closed]
            if lost:
                raise RuntimeError("%d XMPP clients lost their connection to "
                                   "Prosody (%s)" % (len(lost), lost[0].c.error))
            results.append(r)
            log("run %d/%d: %s done in %.0f s%s" % (
                run, args.runs, g, time.monotonic() - t0,
                (" -- ERROR: " + r["error"]) if "error" in r else ""))
            await asyncio.sleep(1)
        await run_row6(args, env, users, results, run)
    for u in users:
        await u.c.close()
    await env.probe.close()
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, help="N XMPP users (default 200, 50 with --quick)")
    ap.add_argument("--messages", type=int, default=2000,
                    help="M groupchat messages XMPP->IRC in total (default 2000)")
    ap.add_argument("--fanout", type=int, default=100,
                    help="K messages the IRC bot sends (default 100)")
    ap.add_argument("--runs", type=int, help="runs (default 3, 1 with --quick)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-history", dest="history", action="store_false",
                    help="skip the fan-out variant with history recorded")
    ap.add_argument("--gateways", default="causeway,biboumi")
    ap.add_argument("--causeway", default=os.environ.get("CAUSEWAY_BIN"))
    ap.add_argument("--out", default=None, help="JSON output (default ./bench-results.json)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    ap.add_argument("--scale", type=int, default=0, metavar="N",
                    help="also run scenario 5: N concurrent IRC sessions in one "
                    "causeway (e.g. 10000; default 0: off)")
    ap.add_argument("--scale-only", action="store_true",
                    help="run scenario 5 only (no Prosody, no biboumi)")
    ap.add_argument("--scale-group", type=int, default=10, metavar="S",
                    help="users per channel in scenario 5 (default 10)")
    ap.add_argument("--scale-batch", type=int, default=500, metavar="B",
                    help="joins sent at once in scenario 5 (default 500)")
    g6 = ap.add_argument_group("scenario 6: email and SMS rows (causeway only)")
    g6.add_argument("--no-email", dest="email", action="store_false",
                    help="skip the email row")
    g6.add_argument("--no-sms", dest="sms", action="store_false",
                    help="skip the SMS row")
    g6.add_argument("--email-sms-only", action="store_true",
                    help="run scenario 6 only (no InspIRCd, no biboumi)")
    g6.add_argument("--mail-users", type=int, default=20, metavar="U",
                    help="mailboxes, one per XMPP user, each in IMAP IDLE (default 20)")
    g6.add_argument("--mails", type=int, metavar="M",
                    help="mails delivered by LMTP per run (default 1000, 300 with --quick)")
    g6.add_argument("--lmtp-conns", type=int, default=4, metavar="C",
                    help="parallel LMTP connections (default 4)")
    g6.add_argument("--mail-bytes", type=int, default=1024, metavar="B",
                    help="size of each mail (default 1024)")
    g6.add_argument("--sms-users", type=int, default=20, metavar="S",
                    help="XMPP users with a phone number each (default 20, at most 150)")
    g6.add_argument("--texts", type=int, metavar="T",
                    help="texts from the phones per run (default 500, 200 with --quick)")
    ap.add_argument("--docs", action="store_true",
                    help="also copy the PNGs to docs/bench/ of this tree")
    args = ap.parse_args()
    if args.mails is None:
        args.mails = 300 if args.quick else 1000
    if args.texts is None:
        args.texts = 200 if args.quick else 500
    args.sms_users = max(1, min(args.sms_users, 150))   # numbers: one config line
    args.mail_users = max(1, args.mail_users)
    if args.scale_only and args.scale <= 0:
        args.scale = 10000
    if args.users is None:
        args.users = 50 if args.quick else 200
        if args.email_sms_only:
            args.users = max(args.mail_users, args.sms_users)
    if args.runs is None:
        args.runs = 1 if args.quick else 3
    args.gateways = [g.strip() for g in args.gateways.split(",") if g.strip()]
    if not args.causeway:
        args.causeway = os.path.normpath(os.path.join(HERE, "..", "..", "build", "causeway"))
    if "causeway" in args.gateways and not os.access(args.causeway, os.X_OK):
        print("bench: causeway binary not found: %s (build it, or --causeway PATH)"
              % args.causeway, file=sys.stderr)
        return 1
    args.out = args.out or os.path.join(os.getcwd(), "bench-results.json")

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, _on_signal)
    tmp = tempfile.mkdtemp(prefix="cwbench-")
    log("temp dir %s" % tmp)
    env = Env(args, tmp)
    rc = 0
    results = []
    try:
        if not args.email_sms_only:
            env.start_ircd()
        if not args.scale_only:
            env.start_prosody()
            if "biboumi" in args.gateways and not args.email_sms_only:
                Biboumi.make_schema(tmp)
            log("InspIRCd on %s, Prosody c2s %d / components %d"
                % (env.irc_port if env.ircd else "-", env.c2s_port, env.comp_port))
            setup_row6(args, env)
            results = asyncio.run(bench(args, env))
        if args.scale > 0 and "causeway" in args.gateways:
            import scale
            log("scenario 5: %d sessions in one causeway" % args.scale)
            args.scale_result = asyncio.run(scale.run_scale(args, env))
    except KeyboardInterrupt:
        log("interrupted: stopping everything")
        rc = 130
    except Exception as e:
        log("could not run: %s: %s" % (type(e).__name__, e))
        if os.environ.get("BENCH_DEBUG"):
            traceback.print_exc()
        rc = 1
    finally:
        for system in (env.mail, env.sms):
            if system is not None:
                try:
                    system.stop()
                except Exception as e:
                    log("stopping %s: %s" % (type(system).__name__, e))
        pstat = {}
        for label, p in (("inspircd", env.ircd), ("prosody", env.prosody)):
            if p is not None:
                pstat[label] = stop(p, 10)
        stop_all()
    sc = getattr(args, "scale_result", None)
    if sc and not results:
        import scale
        m = machine()
        with open(args.out, "w") as f:
            json.dump({"params": {"scale": args.scale, "scale_group": args.scale_group,
                                  "scale_batch": args.scale_batch},
                       "machine": m, "scale": sc,
                       "date": time.strftime("%Y-%m-%d %H:%M:%S %z")},
                      f, indent=1, default=str)
        print()
        print("machine: %d CPUs, %s MB, %s; InspIRCd %s"
              % (m["nproc"], m["mem_mb"], m["cpu"], m["inspircd"]))
        print()
        print(scale.scale_table(sc))
        for l in sc.get("log_problems", []):
            print("    log: " + l)
        print("JSON: %s" % args.out)
    if results:
        summary = summarize(results)
        pngs, note = plot(results, summary,
                          os.path.dirname(os.path.abspath(args.out)))
        docs = copy_to_docs(pngs) if args.docs and pngs else None
        m = machine()
        out = {"params": {"users": args.users, "messages": args.messages,
                          "fanout": args.fanout, "runs": args.runs,
                          "quick": args.quick, "history": args.history,
                          "email": args.email, "mail_users": args.mail_users,
                          "mails": args.mails, "lmtp_conns": args.lmtp_conns,
                          "mail_bytes": args.mail_bytes, "sms": args.sms,
                          "sms_users": args.sms_users, "texts": args.texts,
                          "row6_skipped": getattr(args, "row6_skipped", {})},
               "machine": m, "accounts": getattr(env, "accounts", None),
               "summary": [{k: v for k, v in r.items()} for r in summary],
               "runs": results, "plots": pngs, "plot_note": note,
               "scale": sc,
               "date": time.strftime("%Y-%m-%d %H:%M:%S %z")}
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1, default=str)
        print()
        print("causeway vs biboumi: N=%d users, M=%d messages, K=%d fan-out messages, "
              "%d run(s); median (min-max)" % (args.users, args.messages,
                                               args.fanout, args.runs))
        print("machine: %d CPUs, %s MB, %s; biboumi %s, Prosody %s, InspIRCd %s"
              % (m["nproc"], m["mem_mb"], m["cpu"], m["biboumi"], m["prosody"],
                 m["inspircd"]))
        print()
        print(table(summary, args))
        if sc:
            import scale
            print()
            print(scale.scale_table(sc))
        print()
        for r in results:
            if r["gateway"] == "causeway" and "persist_ok" in r:
                if r["persist_ok"] != args.users or r.get("persist_errors"):
                    print("causeway run %d: persistent set by %d of %d users %s"
                          % (r["run"], r["persist_ok"], args.users,
                             r.get("persist_errors", "")))
        for r in results:
            rows = [(r["gateway"], r)] + [
                ("causeway %s row" % k, r[k]) for k in ("email", "sms")
                if isinstance(r.get(k), dict)]
            for label, x in rows:
                if "error" in x or x.get("log_problems"):
                    print("%s run %d: %s" % (label, r["run"],
                                             x.get("error", "finished")))
                    for l in x.get("log_problems", [])[-8:]:
                        print("    log: " + l)
                    for l in x.get("log_tail", [])[-10:] if "error" in x else []:
                        print("    tail: " + l)
            for k in ("email", "sms"):
                x = r.get(k)
                if not isinstance(x, dict):
                    continue
                notes = []
                for f in ("register_errors", "lmtp_errors", "not_accepted",
                          "dups", "dups_in", "dups_out", "misrouted"):
                    if x.get(f):
                        notes.append("%s %s" % (f, x[f]))
                if k == "email" and x.get("inbox_open") not in (None, x["users"]):
                    notes.append("INBOX open for %s of %s" % (x["inbox_open"], x["users"]))
                if notes:
                    print("causeway %s row, run %d: %s" % (k, r["run"], "; ".join(notes)))
        print("JSON: %s" % args.out)
        for p in pngs:
            print("plot: %s" % p)
        if note:
            print("plot: %s" % note)
        if docs:
            print("plots copied to %s" % docs)
    if args.keep:
        log("kept %s" % tmp)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    if rc == 0 and not results and not sc:
        rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
