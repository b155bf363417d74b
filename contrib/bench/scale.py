#!/usr/bin/env python3
"""Scenario 5 of the benchmark: N concurrent IRC sessions (default
10,000) in one causeway process.  Start it through run.sh --scale.

Prosody is not used here: 10,000 c2s logins and 10,000 asyncio XMPP
clients would measure Prosody and this script.  This program plays the
XMPP server itself, on the XEP-0114 component port (as
tests/component/harness.py does), so every stanza between the users and
causeway crosses one socket, and the figures are causeway's alone.  The
IRC side is the bench's real InspIRCd, which holds the N connections
causeway opens (one per user, as in production).

Steps, all on 127.0.0.1:
  1. causeway starts and connects to us; idle RSS 1 s later;
  2. (the N users never register: they join on first use);
  3. the IRC bot joins a few of the channels (so they have a speaker);
  4. the users join channels of S users each (#scale-K, user i in channel
     i // S: N/S channels), in batches of B joins, each batch waited for:
     every join must end with the user's self-presence (status 110).
     Time, causeway's CPU, its RSS 3 s after the last join, RSS per
     session = (that - idle) / N, its descriptors;
  5. round trips, with all N sessions still up: in the first, middle and
     last channel one user sends a groupchat message (latency until the
     bot reads it on IRC), and the bot answers on IRC (latency until
     every user of that channel got it from causeway).
Then every process is stopped by PID.
"""

import asyncio
import hashlib
import os
import secrets
import signal
import time
import xml.etree.ElementTree as ET
from xml.sax.saxutils import quoteattr, escape

from bench import (LO, spawn, stop, free_ports, cpu_s, status_kb,  # noqa
                   log, NOFILE_HARD)
from xmppload import IrcBot

NS_COMPONENT = "jabber:component:accept"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
DOMAIN = "irc.localhost"
XDOMAIN = "localhost"


def q(ns, name):
    return "{%s}%s" % (ns, name)


class FakeServer:
    """The XMPP server side of one XEP-0114 stream: handshake, then
    stanzas in both directions.  Incoming stanzas are handed to
    on_stanza(elem) as they end (then dropped: nothing accumulates)."""

    def __init__(self, secret):
        self.secret = secret
        self.port = free_ports(1)[0]
        self.connected = asyncio.get_running_loop().create_future()
        self.writer = None
        self.on_stanza = None
        self.iq_waiters = {}
        self.stanzas_in = 0
        self.closed = False
        self.server = None
        self.task = None
        self.closing = False

    async def listen(self):
        self.server = await asyncio.start_server(self._conn, LO, self.port,
                                                 limit=1 << 22)

    async def _conn(self, reader, writer):
        if self.writer is not None:         # one stream at a time
            writer.close()
            return
        self.writer = writer
        self.task = asyncio.current_task()
        sid = secrets.token_hex(8)
        parser = ET.XMLPullParser(events=("start", "end"))
        depth = 0
        root = None
        try:
            while True:
                data = await reader.read(1 << 18)
                if not data:
                    break
                parser.feed(data)
                for ev, el in parser.read_events():
                    if ev == "end" and depth == 1:      # </stream:stream>
                        writer.write(b"</stream:stream>")
                        raise ConnectionResetError("causeway closed its stream")
                    if ev == "start":
                        depth += 1
                        if depth == 1:
                            root = el
                            writer.write((
                                "<?xml version='1.0'?><stream:stream xmlns:stream="
                                "'http://etherx.jabber.org/streams' xmlns="
                                "'jabber:component:accept' from='%s' id='%s'>"
                                % (DOMAIN, sid)).encode())
                        continue
                    depth -= 1
                    if depth != 1:
                        continue
                    if el.tag == q(NS_COMPONENT, "handshake"):
                        want = hashlib.sha1((sid + self.secret).encode()).hexdigest()
                        if (el.text or "").strip() != want:
                            raise RuntimeError("causeway's handshake is wrong")
                        writer.write(b"<handshake/>")
                        if not self.connected.done():
                            self.connected.set_result(True)
                    else:
                        self.stanzas_in += 1
                        self._stanza(el)
                    root.remove(el)
        except (ConnectionError, ET.ParseError) as e:
            if not self.closing:
                log("scale: the component stream ended: %s" % e)
        except asyncio.CancelledError:
            pass
        finally:
            self.closed = True
            writer.close()

    def _stanza(self, el):
        if el.tag == q(NS_COMPONENT, "iq"):
            t, i = el.get("type"), el.get("id")
            if t in ("result", "error") and i in self.iq_waiters:
                f = self.iq_waiters.pop(i)
                if not f.done():
                    f.set_result(el)
                return
            if t in ("get", "set"):
                # Addressed to the server (roster, disco): not offered.
                self.send("<iq type='error' id=%s to=%s from=%s><error type='cancel'>"
                          "<service-unavailable xmlns='urn:ietf:params:xml:ns:"
                          "xmpp-stanzas'/></error></iq>"
                          % (quoteattr(i or ""), quoteattr(el.get("from") or DOMAIN),
                             quoteattr(el.get("to") or XDOMAIN)))
                return
        if self.on_stanza:
            self.on_stanza(el)

    def send(self, xml):
        self.writer.write(xml.encode("utf-8"))

    async def drain(self):
        await self.writer.drain()

    def iq(self, frm, to, payload, type_="set"):
        i = "s%s" % secrets.token_hex(6)
        f = asyncio.get_running_loop().create_future()
        self.iq_waiters[i] = f
        self.send("<iq type=%s id=%s from=%s to=%s>%s</iq>"
                  % (quoteattr(type_), quoteattr(i), quoteattr(frm), quoteattr(to),
                     payload))
        return f

    async def close(self):
        self.closing = True
        if self.task is not None:
            try:
                await asyncio.wait_for(self.task, 5)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                pass
        if self.writer is not None:
            self.writer.close()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


def chan(k):
    return "#scale-%d" % k


def room_jid(k):
    return "%s%%%s@%s" % (chan(k), LO, DOMAIN)


async def run_scale(args, env):
    """Returns a dict of figures (and 'error' when it could not finish)."""
    n, size, batch = args.scale, max(1, args.scale_group), max(1, args.scale_batch)
    nchan = (n + size - 1) // size
    R = {"sessions": n, "group": size, "channels": nchan, "batch": batch}
    secret = secrets.token_hex(12)
    srv = FakeServer(secret)
    await srv.listen()
    d = os.path.join(env.tmp, "causeway-scale")
    os.makedirs(d)
    cfg = os.path.join(d, "causeway.conf")
    with open(cfg, "w") as f:
        f.write("[causeway]\ndatabase = %s/causeway.db\nkey_file = %s/secret.key\n"
                "log_level = warn\n\n[component %s]\nbackend = irc\n"
                "server = %s\nport = %d\nsecret = %s\nlinger = 0\n\n"
                "[irc-server %s]\nport = %d\ntls = no\n"
                "throttle_burst = 1000\nthrottle_rate = 0\n"
                % (d, d, DOMAIN, LO, srv.port, secret, LO, env.irc_port))
    nofile = min(2 * n + 1024, NOFILE_HARD)
    if nofile < n + 64:
        raise RuntimeError("scenario 5 needs %d descriptors; the hard limit "
                           "is %d (ulimit -Hn)" % (n + 64, NOFILE_HARD))
    gw = spawn("causeway", ["prlimit", "--nofile=%d:%d" % (nofile, nofile),
                            "--core=0:0", args.causeway, "-c", cfg], d,
               os.path.join(d, "causeway.log"))
    R["nofile"] = nofile
    bot = None
    users = ["s%d@%s" % (i, XDOMAIN) for i in range(n)]
    selfpres, errpres = {}, {}
    got_msg = {}                 # (user, token) -> arrival time
    try:
        t0 = time.perf_counter()
        await asyncio.wait_for(srv.connected, 30)
        R["startup_ms"] = round((time.perf_counter() - t0) * 1000, 1)
        await asyncio.sleep(1.0)
        R["idle_rss_kb"] = status_kb(gw.pid)
        R["idle_rss_anon_kb"] = status_kb(gw.pid, "RssAnon")

        def on_stanza(el):
            to = (el.get("to") or "").split("/")[0]
            if el.tag == q(NS_COMPONENT, "presence"):
                if el.get("type") == "error":
                    errpres[to] = el.get("from")
                    return
                x = el.find(q(NS_MUC_USER, "x"))
                if x is not None and any(s.get("code") == "110" for s in
                                         x.findall(q(NS_MUC_USER, "status"))):
                    selfpres.setdefault(to, time.perf_counter())
            elif el.tag == q(NS_COMPONENT, "message") and el.get("type") == "groupchat":
                b = el.find(q(NS_COMPONENT, "body"))
                if b is not None and b.text and b.text.startswith("RT "):
                    got_msg.setdefault((to, b.text.split()[1]), time.perf_counter())
        srv.on_stanza = on_stanza

        # ---- 2. no registrations: users join on first use ------------
        R["before_join_rss_kb"] = status_kb(gw.pid)

        # ---- 3. the bot ---------------------------------------------------
        probe = sorted({0, nchan // 2, nchan - 1})
        bot = IrcBot(LO, env.irc_port, "scalebot")
        await bot.connect()
        await bot.join([chan(k) for k in probe], timeout=60)

        # ---- 4. N sessions, in batches -----------------------------------
        c0 = cpu_s(gw.pid)
        t1 = time.perf_counter()
        for k in range(0, n, batch):
            part = range(k, min(n, k + batch))
            for i in part:
                srv.send("<presence from=%s to=%s><x xmlns='http://jabber.org/"
                         "protocol/muc'/></presence>"
                         % (quoteattr(users[i] + "/r"),
                            quoteattr("%s/s%d" % (room_jid(i // size), i))))
            await srv.drain()
            tb = time.perf_counter()
            while time.perf_counter() - tb < 120:
                done = sum(1 for i in part if users[i] in selfpres or users[i] in errpres)
                if done == len(part) or srv.closed or gw.poll() is not None:
                    break
                await asyncio.sleep(0.05)
            if srv.closed or gw.poll() is not None:
                raise RuntimeError("causeway stopped (status %s) after %d joins"
                                   % (gw.poll(), len(selfpres)))
            log("scale: %d of %d sessions joined (%.1f s)"
                % (len(selfpres), n, time.perf_counter() - t1))
        R["join_s"] = round(time.perf_counter() - t1, 2)
        R["joined"] = len(selfpres)
        R["join_errors"] = len(errpres)
        R["join_cpu_s"] = round(cpu_s(gw.pid) - c0, 2)
        await asyncio.sleep(3.0)
        R["rss_kb"] = status_kb(gw.pid)
        R["rss_anon_kb"] = status_kb(gw.pid, "RssAnon")
        R["rss_per_session_kb"] = round((R["rss_kb"] - R["idle_rss_kb"]) / n, 2)
        R["fds"] = len(os.listdir("/proc/%d/fd" % gw.pid))
        R["ircd_rss_kb"] = status_kb(env.ircd.pid)
        R["stanzas_from_causeway"] = srv.stanzas_in
        c0 = cpu_s(gw.pid)
        await asyncio.sleep(5.0)
        R["idle_cpu_s_per_min"] = round((cpu_s(gw.pid) - c0) * 12, 2)

        # ---- 5. round trips ----------------------------------------------
        trips = []
        for k in probe:
            members = [i for i in range(k * size, min(n, (k + 1) * size))
                       if users[i] in selfpres]
            if not members:
                continue
            tok = secrets.token_hex(4)
            seen = asyncio.get_running_loop().create_future()

            def on_line(line, t, tok=tok, seen=seen):
                if ("PRIVMSG" in line and ("RT %s" % tok) in line
                        and not seen.done()):
                    seen.set_result(t)
            bot.on_line = on_line
            ts = time.perf_counter()
            srv.send("<message type='groupchat' from=%s to=%s id=%s><body>RT %s"
                     "</body></message>" % (quoteattr(users[members[0]] + "/r"),
                                            quoteattr(room_jid(k)),
                                            quoteattr("rt" + tok), escape(tok)))
            await srv.drain()
            trip = {"channel": chan(k), "members": len(members)}
            try:
                trip["xmpp_to_irc_ms"] = round((await asyncio.wait_for(seen, 30) - ts)
                                               * 1000, 2)
            except asyncio.TimeoutError:
                trip["xmpp_to_irc_ms"] = None
            bot.on_line = None
            tok2 = secrets.token_hex(4)
            ts = time.perf_counter()
            bot.send("PRIVMSG %s :RT %s" % (chan(k), tok2))
            await bot.writer.drain()
            while time.perf_counter() - ts < 30:
                if all((users[i], tok2) in got_msg for i in members):
                    break
                await asyncio.sleep(0.01)
            arrived = [got_msg[(users[i], tok2)] - ts for i in members
                       if (users[i], tok2) in got_msg]
            trip["irc_to_xmpp_received"] = len(arrived)
            trip["irc_to_xmpp_max_ms"] = round(max(arrived) * 1000, 2) if arrived else None
            trips.append(trip)
        R["round_trips"] = trips
        R["round_trips_ok"] = sum(1 for t in trips if t["xmpp_to_irc_ms"] is not None
                                  and t["irc_to_xmpp_received"] == t["members"])
        R["rss_end_kb"] = status_kb(gw.pid)
        R["rss_peak_kb"] = status_kb(gw.pid, "VmHWM")
    except Exception as e:
        R["error"] = "%s: %s" % (type(e).__name__, e)
        log("scale: %s" % R["error"])
    finally:
        if gw.poll() is not None:
            R["exited"] = gw.returncode
        if bot is not None:
            await bot.close()
        # SIGTERM, and keep answering the stream while causeway closes it.
        srv.closing = True
        if gw.poll() is None:
            os.kill(gw.pid, signal.SIGTERM)
            t = time.perf_counter()
            while gw.poll() is None and time.perf_counter() - t < 20:
                await asyncio.sleep(0.05)
        R["stop_status"] = stop(gw, 10)
        await srv.close()
        try:
            with open(os.path.join(d, "causeway.log"), "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            R["log_problems"] = sorted({l.split(" ", 2)[-1] for l in lines
                                        if " warn " in l or " error " in l})[:10]
        except OSError:
            pass
    return R


def scale_table(R):
    rows = [
        ("sessions joined / N", "%s / %s" % (R.get("joined"), R.get("sessions"))),
        ("channels x users", "%s x %s" % (R.get("channels"), R.get("group"))),
        ("join errors", R.get("join_errors")),
        ("time to join all (s)", R.get("join_s")),
        ("causeway CPU for the joins (s)", R.get("join_cpu_s")),
        ("idle RSS (MB)", _mb(R.get("idle_rss_kb"))),
        ("RSS with N sessions (MB)", _mb(R.get("rss_kb"))),
        ("RSS per session (KB)", R.get("rss_per_session_kb")),
        ("RssAnon with N sessions (MB)", _mb(R.get("rss_anon_kb"))),
        ("peak RSS (MB)", _mb(R.get("rss_peak_kb"))),
        ("descriptors", R.get("fds")),
        ("causeway CPU-s per minute, N sessions idle", R.get("idle_cpu_s_per_min")),
        ("InspIRCd RSS (MB)", _mb(R.get("ircd_rss_kb"))),
        ("round trips complete", "%s of %d" % (R.get("round_trips_ok"),
                                               len(R.get("round_trips", [])))),
    ]
    for t in R.get("round_trips", []):
        rows.append(("  %s (%d users): XMPP->IRC / IRC->XMPP all (ms)"
                     % (t["channel"], t["members"]),
                     "%s / %s (%d got it)" % (t["xmpp_to_irc_ms"], t["irc_to_xmpp_max_ms"],
                                              t["irc_to_xmpp_received"])))
    w = max(len(r[0]) for r in rows)
    out = ["| %-*s | %s |" % (w, "5 scale (causeway alone, XEP-0114 driver)", "")]
    out += ["| %-*s | %s |" % (w, k, "-" if v is None else v) for k, v in rows]
    return "\n".join(out)


def _mb(kb):
    return None if kb is None else round(kb / 1024, 1)
