"""Scenario 6 of the benchmark: the email and SMS rows (causeway only;
biboumi has neither).  Called from bench.py for every run, after the IRC
scenarios, with the same Prosody and the same logged-in XMPP clients.

Email (LMTP -> Dovecot -> IMAP IDLE -> causeway -> Prosody -> client):
the mail system is tests/e2e/mailenv.py's MailEnv (Dovecot with IMAP,
implicit TLS and LMTP, plus a private Postfix, which causeway's
registration check talks to), imported, not copied; the bench adds U
mailboxes (mb0@example.test ...) to its password file before Dovecot
starts.  A fresh causeway with the email backend only (mail.localhost)
is started per run; the first U bench users register one mailbox each
through the [mail-domain example.test] preset (address and password)
and log in (each holds one IMAP connection in IDLE).  After one warm-up
mail per mailbox (not timed), M mails are delivered over C parallel
LMTP connections (this module's asyncio LMTP client, one transaction
after the other on each connection), mail i to mailbox i % U.  Latency
of a mail: from the moment Dovecot answered 250 to its DATA (the mail
is in the mailbox) to the chat message at the client: Dovecot's IDLE
notice, causeway's FETCH, the XMPP stanza through Prosody.  The time
from the start of the LMTP transaction is reported too.

SMS (fakesmsc -> bearerbox -> smsbox -> HTTP -> causeway -> Prosody ->
client -> causeway -> HTTP sendsms -> smsbox -> bearerbox -> fakesmsc):
Kannel is tests/e2e/smsenv.py's Kannel, imported; the bench subclasses
it to read fakesmsc's output through a pipe (each received MT is
timestamped when fakesmsc prints it), to write MOs as fast as fakesmsc
takes them (the next line once fakesmsc says it sent the previous one:
its interactive mode drops lines written faster than that) with no
pause between them (-i 0 instead of 0.01), and to lower Kannel's log
level from debug to warning.  The texts enter through the real Kannel
chain (fakesmsc's fake SMSC link), not by calling causeway's callback
directly.  S bench users register a number each (numbers assigned to
domain localhost); T texts come from 10 phones, text k to user k % S.
Each client answers every text at once; the answer must reach fakesmsc.
"""

import asyncio
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from xml.sax.saxutils import escape, quoteattr

from bench import (LO, XDOMAIN, CLK, Gateway, log, pct, status_kb,  # noqa
                   self_cpu, wait_progress, free_ports)

E2E = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(
    __file__)), "..", "..", "tests", "e2e"))

MAIL_DOMAIN = "mail.localhost"
SMS_DOMAIN = "sms.localhost"
NS_REGISTER = "jabber:iq:register"
PHONES = 10
PROBES = 10             # one-at-a-time messages for the unloaded latency


def _import_e2e(name):
    """Import tests/e2e/NAME.  cwtest (imported by it) installs its own
    signal handlers; keep the bench's."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM,
                                             signal.SIGHUP)}
    if E2E not in sys.path:
        sys.path.insert(0, E2E)
    try:
        return __import__(name)
    finally:
        for s, h in saved.items():
            signal.signal(s, h)


def missing_for(kind):
    """Programs the row needs that are not installed (None: all there)."""
    if kind == "email":
        need = [("dovecot", "dovecot-imapd dovecot-lmtpd"),
                ("postfix", "postfix"), ("openssl", "openssl")]
    else:
        need = [("bearerbox", "kannel"), ("smsbox", "kannel")]
    miss = sorted({pkg for prog, pkg in need if not shutil.which(prog)})
    if kind == "sms" and not os.access("/usr/lib/kannel/test/fakesmsc",
                                       os.X_OK):
        miss.append("kannel-extras")
    return " ".join(miss) or None


# --------------------------------------------------------------------------
# CPU of process trees


def _stat(pid):
    """(ppid, own utime+stime, reaped children's cutime+cstime) in
    seconds, or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return (int(rest[1]), (int(rest[11]) + int(rest[12])) / CLK,
                (int(rest[13]) + int(rest[14])) / CLK)
    except (OSError, IndexError, ValueError):
        return None


def tree_cpu(roots):
    """CPU seconds of the processes roots and all their descendants,
    those still running and those already reaped (cutime/cstime): what
    a daemon such as Dovecot, which starts a process per connection,
    spent in all."""
    stats = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            s = _stat(int(d))
            if s is not None:
                stats[int(d)] = s
    kids = {}
    for pid, (ppid, _, _) in stats.items():
        kids.setdefault(ppid, []).append(pid)
    total, todo, seen = 0.0, [r for r in roots if r in stats], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        total += stats[p][1] + stats[p][2]
        todo.extend(kids.get(p, []))
    return total


class Snap:
    def __init__(self, pids):
        self.t = time.perf_counter()
        self.cpu = {k: tree_cpu(v) for k, v in pids.items()}
        self.cpu["bench"] = self_cpu()

    def delta(self, later):
        out = {k: round(later.cpu[k] - v, 3) for k, v in self.cpu.items()}
        out["wall"] = round(later.t - self.t, 3)
        return out


# --------------------------------------------------------------------------
# causeway with one backend


class RowGateway(Gateway):
    """A fresh causeway for one row: one component (mail or sms)."""

    def __init__(self, env, name, run, domain, secret, options, sections=()):
        self.env, self.name, self.run = env, name, run
        self.domain = domain
        self.dir = os.path.join(env.tmp, "%s-run%d" % (name, run))
        os.makedirs(self.dir)
        self.logfile = os.path.join(self.dir, "causeway.log")
        self.p = None
        cfg = ["[causeway]", "database = %s/causeway.db" % self.dir,
               "key_file = %s/secret.key" % self.dir, "log_level = info", "",
               "[component %s]" % domain, "server = %s" % LO,
               "port = %d" % env.comp_port, "secret = %s" % secret,
               "linger = 0"]
        cfg += ["%s = %s" % kv for kv in options]
        for head, kvs in sections:
            cfg += ["", "[%s]" % head] + ["%s = %s" % kv for kv in kvs]
        self.cfg = os.path.join(self.dir, "causeway.conf")
        with open(self.cfg, "w") as f:
            f.write("\n".join(cfg) + "\n")

    def start(self):
        from bench import spawn
        self.p = spawn(self.name, [self.env.args.causeway, "-c", self.cfg],
                       self.dir, self.logfile)

    def log_count(self, rx):
        try:
            with open(self.logfile, "rb") as f:
                return len(re.findall(rx, f.read().decode("utf-8", "replace")))
        except OSError:
            return 0


def register_form(fields):
    x = "".join("<field var=%s><value>%s</value></field>"
                % (quoteattr(k), escape(v)) for k, v in
                [("FORM_TYPE", NS_REGISTER)] + list(fields))
    return ("<query xmlns='%s'><x xmlns='jabber:x:data' type='submit'>%s"
            "</x></query>" % (NS_REGISTER, x))


async def register_all(users, domain, forms, timeout=60):
    res = await asyncio.gather(*[asyncio.wait_for(u.c.iq(domain, f, "set"),
                                                  timeout)
                                 for u, f in zip(users, forms)],
                               return_exceptions=True)
    bad = {}
    for r in res:
        if isinstance(r, Exception):
            k = type(r).__name__
        elif r.get("type") == "result":
            continue
        else:
            k = ",".join(c.tag.split("}")[1] for c in
                         r.iterfind("{jabber:client}error/*")) or "error"
        bad[k] = bad.get(k, 0) + 1
    return bad


def finish_row(R, gw):
    if gw is None or gw.p is None:
        return
    if not gw.alive():
        R["exited"] = gw.p.returncode
        R.setdefault("error", "causeway exited with status %s"
                     % gw.p.returncode)
    R["log_problems"] = gw.log_matching()[-20:]
    if "error" in R:
        R["log_tail"] = gw.log_tail(20)
    R["rss_end_kb"] = status_kb(gw.pid) if gw.alive() else None
    R["stop_status"] = gw.stop()


def lat_figures(R, key, lat):
    R[key + "_p50_ms"] = round(pct(lat, 0.5) * 1000, 2) if lat else None
    R[key + "_p99_ms"] = round(pct(lat, 0.99) * 1000, 2) if lat else None


def per_1000(R, cpu, n, what):
    for k, v in cpu.items():
        if k != "wall" and n:
            R["%s_cpu_per_1000" % k] = round(v * 1000 / n, 4)
    R["cpu_per_1000_of"] = what


# --------------------------------------------------------------------------
# email


class MailSystem:
    """MailEnv with U extra mailboxes, started once for all runs."""

    def __init__(self, users):
        mailenv = _import_e2e("mailenv")
        self.env = mailenv.MailEnv()
        self.users = ["mb%d@example.test" % i for i in range(users)]
        self.password = secrets.token_hex(8)
        with open(os.path.join(self.env.dir, "users"), "a") as f:
            for u in self.users:
                f.write("%s:{PLAIN}%s\n" % (u, self.password))
        # One imap-login (the TLS proxy) and one imap process per IDLE
        # connection: room for more than Dovecot's default 100.
        with open(os.path.join(self.env.dir, "dovecot.conf"), "a") as f:
            f.write("default_process_limit = %d\n" % max(100, 2 * users + 50))
        self.env.start()

    @property
    def dovecot_pid(self):
        return self.env.dovecot.pid if self.env.dovecot else None

    def stop(self):
        self.env.stop()


async def _lmtp_reply(r):
    text = b""
    while True:
        line = await r.readline()
        if not line:
            raise ConnectionError("LMTP server closed the connection")
        text += line
        if len(line) < 4 or line[3:4] != b"-":
            return int(line[:3]), text


async def lmtp_sender(port, items, started, accepted, errors):
    """Deliver items [(seq, rcpt, data)] one after the other on one LMTP
    connection; record when each transaction started and when the
    server's 250 to the DATA came."""
    r, w = await asyncio.open_connection(LO, port)
    try:
        code, _ = await _lmtp_reply(r)
        w.write(b"LHLO bench.localhost\r\n")
        code, _ = await _lmtp_reply(r)
        for seq, rcpt, data in items:
            started[seq] = time.perf_counter()
            for cmd, want in ((b"MAIL FROM:<sender@example.net>\r\n", 250),
                              (b"RCPT TO:<" + rcpt.encode() + b">\r\n", 250),
                              (b"DATA\r\n", 354), (data + b".\r\n", 250)):
                w.write(cmd)
                code, text = await _lmtp_reply(r)
                if code != want:
                    errors.append("%d %s" % (code, text[:200]))
                    w.write(b"RSET\r\n")
                    await _lmtp_reply(r)
                    break
            else:
                accepted[seq] = time.perf_counter()
        w.write(b"QUIT\r\n")
        await _lmtp_reply(r)
    finally:
        w.close()


def make_mail(run, seq, rcpt, size, kind="E"):
    tag = "%s-%d-%d" % (kind, run, seq)
    head = ("From: Bench Sender <sender@example.net>\r\nTo: %s\r\n"
            "Subject: bench %s\r\nMessage-ID: <%s.%s@example.net>\r\n"
            "Date: %s\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n"
            % (rcpt, tag, tag, secrets.token_hex(4), time.strftime(
                "%a, %d %b %Y %H:%M:%S +0000", time.gmtime())))
    body = "bench mail %s\r\n" % tag
    line = "The quick brown fox jumps over the lazy dog, %s.\r\n" % tag
    while len(head) + len(body) + len(line) <= size:
        body += line
    return (head + body).encode()


async def email_run(env, users, run, args):
    """The email row for one run.  Returns a dict of figures."""
    R = {"users": args.mail_users, "mails": args.mails,
         "lmtp_connections": args.lmtp_conns, "mail_bytes": args.mail_bytes}
    ms = env.mail
    U = min(args.mail_users, len(users))
    mus = users[:U]
    boxes = ms.users[:U]
    opts = [("backend", "email"), ("ca_file", ms.env.cert)]
    preset = [("mail-domain example.test",
               [("imap_host", "localhost"), ("imap_port", ms.env.imaps),
                ("imap_security", "tls"), ("smtp_host", "localhost"),
                ("smtp_port", ms.env.submission),
                ("smtp_security", "starttls")])]
    gw = RowGateway(env, "causeway-email", run, MAIL_DOMAIN,
                    env.secret["mail"], opts, preset)
    got = {}                # seq -> arrival time
    warm = {}
    dups = [0]
    rx = re.compile(r"([EWP])-%d-(\d+)" % run)

    def on_stanza(kind, el):
        if kind != "message" or el.get("type") == "error":
            return
        if not (el.get("from") or "").split("/")[0].endswith("@" + MAIL_DOMAIN):
            return
        m = rx.search(el.findtext("{jabber:client}body") or "")
        if not m:
            return
        t = time.perf_counter()
        seq = int(m.group(2))
        if m.group(1) != "E":
            warm.setdefault((m.group(1), seq), t)
        elif seq in got:
            dups[0] += 1
        else:
            got[seq] = t
    saved = [u.c.on_stanza for u in mus]
    for u in mus:
        u.c.on_stanza = on_stanza
    try:
        t0 = time.perf_counter()
        gw.start()
        from bench import wait_disco
        await wait_disco(gw, env.probe, MAIL_DOMAIN)
        R["startup_ms"] = round((time.perf_counter() - t0) * 1000, 1)
        await asyncio.sleep(1.0)
        R["idle_rss_kb"] = status_kb(gw.pid)
        bad = await register_all(mus, MAIL_DOMAIN, [register_form(
            [("email", b), ("imap_password", ms.password)]) for b in boxes])
        if bad:
            R["register_errors"] = bad
            log("email: %d registrations failed: %s" % (sum(bad.values()), bad))
        for u in mus:
            u.c.send("<presence to=%s/>" % quoteattr(MAIL_DOMAIN))
        n_open = await wait_progress(lambda: gw.log_count(r"INBOX open"), U,
                                     30, 60 + U)
        R["inbox_open"] = n_open
        # Warm-up: one mail per mailbox, so every IDLE loop has run once.
        started, accepted, errors = {}, {}, []
        await lmtp_sender(ms.env.lmtp, [(i, b, make_mail(run, i, b, 300, "W"))
                                         for i, b in enumerate(boxes)],
                          started, accepted, errors)
        await wait_progress(lambda: len(warm), U, 20, 60)
        R["warmup_arrived"] = len(warm)
        await asyncio.sleep(0.5)
        # Unloaded latency: PROBES mails one at a time, each waited for.
        single = []
        for i in range(PROBES):
            b = boxes[i % U]
            started, accepted = {}, {}
            await lmtp_sender(ms.env.lmtp, [(i, b, make_mail(
                run, i, b, args.mail_bytes, "P"))], started, accepted, errors)
            await wait_progress(lambda: ("P", i) in warm, 1, 10, 10)
            if ("P", i) in warm and i in accepted:
                single.append(warm[("P", i)] - accepted[i])
            await asyncio.sleep(0.05)
        lat_figures(R, "single", single)
        R["single_n"] = len(single)

        # The burst.
        M, C = args.mails, max(1, args.lmtp_conns)
        mails = [(i, boxes[i % U], make_mail(run, i, boxes[i % U],
                                             args.mail_bytes))
                 for i in range(M)]
        started, accepted, errors = {}, {}, []
        pids = {"gw": [gw.pid], "prosody": [env.prosody.pid],
                "dovecot": [ms.dovecot_pid]}
        rss0 = status_kb(gw.pid)
        s0 = Snap(pids)
        t0 = time.perf_counter()
        senders = [asyncio.ensure_future(lmtp_sender(
            ms.env.lmtp, mails[c::C], started, accepted, errors))
            for c in range(C)]
        await wait_progress(lambda: len(got), M, 15, 120 + M / 20)
        done = await asyncio.gather(*senders, return_exceptions=True)
        for d in done:
            if isinstance(d, Exception):
                errors.append("%s: %s" % (type(d).__name__, d))
        await asyncio.sleep(0.5)
        s1 = Snap(pids)
        R["rss_kb"] = status_kb(gw.pid)
        R["rss_growth_kb"] = (R["rss_kb"] - rss0) if R["rss_kb"] and rss0 else None
        R["lmtp_errors"] = errors[:10]
        R["lmtp_accepted"] = len(accepted)
        R["received"] = len(got)
        R["loss"] = len(accepted) - len([s for s in got if s in accepted])
        R["lost_seqs"] = sorted(s for s in accepted if s not in got)[:20]
        R["not_accepted"] = M - len(accepted)
        R["dups"] = dups[0]
        lat = [got[s] - accepted[s] for s in got if s in accepted]
        lat_all = [got[s] - started[s] for s in got if s in started]
        lat_figures(R, "idle", lat)
        lat_figures(R, "lmtp", lat_all)
        R["latencies_ms"] = [round(x * 1000, 3) for x in lat]
        if accepted:
            span = max(accepted.values()) - t0
            R["lmtp_per_s"] = round(len(accepted) / span, 1) if span > 0 else None
        if got:
            span = max(got.values()) - t0
            R["mails_per_s"] = round(len(got) / span, 1) if span > 0 else None
        R["cpu"] = s0.delta(s1)
        per_1000(R, R["cpu"], len(got), "mails received")
    except Exception as e:
        R["error"] = "%s: %s" % (type(e).__name__, e)
        log("email row, run %d: %s" % (run, R["error"]))
    finally:
        for u, f in zip(mus, saved):
            u.c.on_stanza = f
        finish_row(R, gw)
    return R


# --------------------------------------------------------------------------
# SMS


def _kannel_class():
    smsenv = _import_e2e("smsenv")

    class BenchKannel(smsenv.Kannel):
        """smsenv's Kannel, with fakesmsc's output read through a pipe
        (MTs timestamped as it prints them), no pause between MOs, and
        Kannel logging warnings only."""

        RX_SENT = re.compile(rb"fakesmsc: sent message")
        RX_GOT = re.compile(rb"Got message \d+: <(\S+) (\S+) (\S+) ?(.*)>")

        def __init__(self, mo_url):
            super().__init__(mo_url)
            with open(self.conf) as f:
                text = f.read()
            with open(self.conf, "w") as f:
                f.write(text.replace("log-level = 0", "log-level = 2"))
            self.sent = 0
            self.mt = []            # (time, from, to, kind, data)
            self.loop = self.evt = None
            self.on_mt = None

        def _spawn(self, args, out):
            if args[0] != smsenv.FAKESMSC:
                return super()._spawn(args, out)
            args = list(args)
            args[args.index("-i") + 1] = "0"
            p = subprocess.Popen(args, cwd=self.dir, stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT)
            threading.Thread(target=self._reader, args=(p,),
                             daemon=True).start()
            return p

        def _reader(self, p):
            for line in p.stdout:
                t = time.perf_counter()
                if self.RX_SENT.search(line):
                    self.sent += 1
                else:
                    m = self.RX_GOT.search(line)
                    if m is None:
                        continue
                    self.mt.append((t,) + tuple(g.decode("utf-8", "replace")
                                                for g in m.groups()))
                if self.loop is not None:
                    try:
                        self.loop.call_soon_threadsafe(self.evt.set)
                    except RuntimeError:        # loop closed
                        pass

        def attach(self, loop):
            self.loop, self.evt = loop, asyncio.Event()

        async def ticker(self, every=0.002):
            """fakesmsc reads the SMSC link only after a line on its
            stdin or after 1 s in select() (its IN_TIMEOUT): a blank
            line, which it does not send, every few ms makes it read the
            MTs as they come."""
            try:
                while True:
                    if self.fk is not None and self.fk.stdin:
                        self.fk.stdin.write(b"\n")
                        self.fk.stdin.flush()
                    await asyncio.sleep(every)
            except (OSError, ValueError):
                pass

        async def wait_sent(self, n, timeout=10):
            deadline = time.monotonic() + timeout
            while self.sent < n:
                self.evt.clear()
                if self.sent >= n:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError("fakesmsc took no MO for %d s" % timeout)
                try:
                    await asyncio.wait_for(self.evt.wait(), left)
                except asyncio.TimeoutError:
                    pass
    return BenchKannel


class SmsSystem:
    """Kannel for all runs; causeway's callback listener port is fixed
    so that smsbox's get-url stays right across causeway restarts."""

    def __init__(self):
        self.listen = free_ports(1)[0]
        self.token = secrets.token_urlsafe(24)
        self.k = _kannel_class()("http://127.0.0.1:%d/kannel/%s/mo"
                                 % (self.listen, self.token))
        self.k.start()

    def pids(self):
        """bearerbox and smsbox (fakesmsc, the phone network, apart)."""
        return [p.pid for p in (self.k.bb, self.k.sb) if p]

    def stop(self):
        self.k.loop = None
        self.k.stop()


def number(i):
    return "+1555100%04d" % i


def phone(j):
    return "+1555200%04d" % j


async def sms_run(env, users, run, args):
    R = {"users": args.sms_users, "texts": args.texts, "phones": PHONES}
    ss = env.sms
    k = ss.k
    k.attach(asyncio.get_running_loop())
    S = min(args.sms_users, len(users))
    sus = users[:S]
    opts = [("backend", "sms"), ("driver", "kannel"),
            ("kannel_url", k.sendsms_url), ("kannel_user", k.user),
            ("kannel_password", k.password),
            ("listen", "127.0.0.1:%d" % ss.listen),
            ("callback_url", "http://127.0.0.1:%d" % ss.listen),
            ("callback_token", ss.token), ("country_code", "1"),
            ("numbers", ", ".join("%s %s" % (number(i), XDOMAIN)
                                  for i in range(S)))]
    gw = RowGateway(env, "causeway-sms", run, SMS_DOMAIN, env.secret["sms"],
                    opts)
    t_in, t_reply, t_out = {}, {}, {}
    dups = {"in": 0, "out": 0}
    bad_route = [0]
    rx = re.compile(r"^S-%d-(-?\d+)$" % run)
    rx_out = re.compile(r"^R-%d-(-?\d+)$" % run)
    owner = {}              # user index of each text

    def on_stanza_for(i, u):
        def on_stanza(kind, el):
            if kind != "message" or el.get("type") == "error":
                return
            frm = (el.get("from") or "").split("/")[0]
            if not frm.endswith("@" + SMS_DOMAIN):
                return
            m = rx.match(el.findtext("{jabber:client}body") or "")
            if not m:
                return
            t = time.perf_counter()
            seq = int(m.group(1))
            if seq in t_in:
                dups["in"] += 1
                return
            t_in[seq] = t
            if owner.get(seq) != i:
                bad_route[0] += 1
            u.c.send("<message type='chat' to=%s><body>R-%d-%d</body>"
                     "</message>" % (quoteattr(frm), run, seq))
            t_reply[seq] = time.perf_counter()
        return on_stanza

    seen_mt = [0]

    def scan_mt():
        while seen_mt[0] < len(k.mt):
            t, frm, to, kind, data = k.mt[seen_mt[0]]
            seen_mt[0] += 1
            m = rx_out.match(data)
            if not m:
                continue
            seq = int(m.group(1))
            if seq in t_out:
                dups["out"] += 1
                continue
            if to != phone(seq % PHONES) or frm != number(owner.get(seq, -1)):
                bad_route[0] += 1
            t_out[seq] = t
        return len(t_out)
    saved = [u.c.on_stanza for u in sus]
    for i, u in enumerate(sus):
        u.c.on_stanza = on_stanza_for(i, u)
    tick = asyncio.ensure_future(k.ticker())
    try:
        t0 = time.perf_counter()
        gw.start()
        from bench import wait_disco
        await wait_disco(gw, env.probe, SMS_DOMAIN)
        R["startup_ms"] = round((time.perf_counter() - t0) * 1000, 1)
        await asyncio.sleep(1.0)
        R["idle_rss_kb"] = status_kb(gw.pid)
        bad = await register_all(sus, SMS_DOMAIN, [register_form(
            [("phone", number(i))]) for i in range(S)])
        if bad:
            R["register_errors"] = bad
            log("sms: %d registrations failed: %s" % (sum(bad.values()), bad))
        for u in sus:
            u.c.send("<presence to=%s/>" % quoteattr(SMS_DOMAIN))
        await asyncio.sleep(1.0)
        T = args.texts
        for seq in range(-PROBES, T):
            owner[seq] = seq % S
        # Unloaded round trips: PROBES texts one at a time (sequence
        # numbers -PROBES..-1), each answered before the next.
        single_in, single_rt = [], []
        for seq in range(-PROBES, 0):
            t_probe = time.perf_counter()
            base = k.sent
            k.mo(phone(seq % PHONES), number(seq % S), "S-%d-%d" % (run, seq))
            await k.wait_sent(base + 1)

            def answered():
                scan_mt()
                return 1 if seq in t_out else 0
            await wait_progress(answered, 1, 10, 10)
            if seq in t_in:
                single_in.append(t_in[seq] - t_probe)
            if seq in t_out:
                single_rt.append(t_out[seq] - t_probe)
        lat_figures(R, "single_in", single_in)
        lat_figures(R, "single_rt", single_rt)
        R["single_n"] = len(single_rt)
        for d in (t_in, t_reply, t_out):
            for seq in range(-PROBES, 0):
                d.pop(seq, None)
        await asyncio.sleep(0.5)
        pids = {"gw": [gw.pid], "prosody": [env.prosody.pid],
                "kannel": ss.pids(), "fakesmsc": [k.fk.pid]}
        rss0 = status_kb(gw.pid)
        t_mo = {}
        s0 = Snap(pids)
        t0 = time.perf_counter()
        base = k.sent
        for seq in range(T):
            t_mo[seq] = time.perf_counter()
            k.mo(phone(seq % PHONES), number(seq % S), "S-%d-%d" % (run, seq))
            await k.wait_sent(base + seq + 1)
        t_written = time.perf_counter()
        await wait_progress(lambda: len(t_in), T, 15, 60 + T / 10)
        await wait_progress(scan_mt, T, 15, 60 + T / 10)
        await asyncio.sleep(0.5)
        scan_mt()
        s1 = Snap(pids)
        R["rss_kb"] = status_kb(gw.pid)
        R["rss_growth_kb"] = (R["rss_kb"] - rss0) if R["rss_kb"] and rss0 else None
        R["mo_written_s"] = round(t_written - t0, 3)
        R["received"] = len(t_in)
        R["replied"] = len(t_reply)
        R["answered"] = len(t_out)
        R["loss_in"] = T - len(t_in)
        R["loss_out"] = len(t_reply) - len([s for s in t_out if s in t_reply])
        R["loss"] = T - len(t_out)
        R["lost_in_seqs"] = sorted(set(range(T)) - set(t_in))[:20]
        R["lost_out_seqs"] = sorted(set(t_reply) - set(t_out))[:20]
        R["dups_in"], R["dups_out"] = dups["in"], dups["out"]
        R["misrouted"] = bad_route[0]
        if t_in:
            R["mo_per_s"] = round(len(t_in) / (max(t_in.values()) - t0), 1)
        if t_out:
            R["rt_per_s"] = round(len(t_out) / (max(t_out.values()) - t0), 1)
        lat_in = [t_in[s] - t_mo[s] for s in t_in]
        lat_out = [t_out[s] - t_reply[s] for s in t_out if s in t_reply]
        lat_rt = [t_out[s] - t_mo[s] for s in t_out]
        lat_figures(R, "in", lat_in)
        lat_figures(R, "out", lat_out)
        lat_figures(R, "rt", lat_rt)
        R["latencies_in_ms"] = [round(x * 1000, 3) for x in lat_in]
        R["latencies_out_ms"] = [round(x * 1000, 3) for x in lat_out]
        R["cpu"] = s0.delta(s1)
        per_1000(R, R["cpu"], len(t_out), "round trips (a text in and "
                 "its answer out)")
        R["receipts_logged"] = gw.log_count(r"text \S+ delivered")
    except Exception as e:
        R["error"] = "%s: %s" % (type(e).__name__, e)
        log("SMS row, run %d: %s" % (run, R["error"]))
    finally:
        tick.cancel()
        for u, f in zip(sus, saved):
            u.c.on_stanza = f
        finish_row(R, gw)
    return R
