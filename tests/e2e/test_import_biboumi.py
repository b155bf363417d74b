#!/usr/bin/python3
"""End-to-end: a biboumi deployment switches to causeway with its database
imported, and what was imported takes effect.

A biboumi 9 database is built with biboumi's own schema (the component
test's builder): alice@localhost has a nick, a real name and (with
atheme-services installed) SASL credentials for the IRC server
127.0.0.1, a persistent #imported, and three lines of #imported in the
log with biboumi's uuids.  `causeway --import-biboumi` runs before
causeway's first start; then, against a real InspIRCd and a real XMPP
server (Prosody, ejabberd):

  - causeway rejoins the persistent #imported on its own at start, as
    the imported nick (the bot sees the JOIN of alicebib; WHOIS shows the
    imported real name, and with Atheme the account the imported SASL
    password logged in to: the sealed secret opened);
  - alice's XEP-0313 query on the room returns the three imported lines
    with biboumi's uuids as their ids and biboumi's times as delays,
    and paging after a uuid that starts with digits (as a client that
    read the room through biboumi asks) returns the lines after it;
  - a line the bot says now is archived after them.

  /usr/bin/python3 tests/e2e/test_import_biboumi.py [prosody|ejabberd]
Needs inspircd; output is TAP.
"""

import importlib.util
import os
import sqlite3
import subprocess
import sys
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import cwtest                                   # noqa: E402
from cwtest import Atheme, Causeway, InspIRCd, IrcClient  # noqa: E402

# biboumi 9's schema, from the component test (one copy of it).
_spec = importlib.util.spec_from_file_location(
    "biboumi_component_test",
    os.path.join(HERE, "..", "component", "test_import_biboumi.py"))
_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mod)
BIBOUMI9 = _mod.BIBOUMI9

DOMAIN = "irc.localhost"
HANDSHAKE = r"irc\.localhost: handshake accepted"
SRV = "127.0.0.1"
ROOM = "#imported%%%s@%s" % (SRV, DOMAIN)
C = "{jabber:client}"
NS_MAM = "urn:xmpp:mam:2"
NS_RSM = "http://jabber.org/protocol/rsm"
NS_FORWARD = "urn:xmpp:forward:0"
NS_DELAY = "urn:xmpp:delay"
# Recent: a causeway with a retention (history_days) keeps them.
T0 = (int(time.time()) // 60 - 5 * 24 * 60) * 60
LINES = [("1b0e6a2c-7d7b-4c57-a1f0-5c8a1e9f0001", T0, "carol", "first"),
         ("20240101-7d7b-4c57-a1f0-5c8a1e9f0002", T0 + 60, "dave", "second"),
         ("f3c1d2e4-7d7b-4c57-a1f0-5c8a1e9f0003", T0 + 120, "carol",
          "third")]


class User(cwtest.RecordingClient):
    def prepare(self, xmpp):
        xmpp.auto_authorize = None
        xmpp.auto_subscribe = False
        self.record(xmpp, {"message": C + "message"}, self.keep)


def biboumi_db(path, sasl_password):
    db = sqlite3.connect(path)
    for stmt in BIBOUMI9:
        db.execute(stmt)
    db.execute("INSERT INTO ircserveroptions_ (owner_, server_, pass_, "
               "tlsports_, ports_, username_, realname_, verifycert_, "
               "trustedfingerprint_, encodingout_, encodingin_, "
               "maxhistorylength_, address_, nick_, saslpassword_, "
               "throttlelimit_) VALUES ('alice@localhost', ?, '', "
               "'6697;6670', '6667', '', 'Alice From Biboumi', 1, '', '', "
               "'', 20, '', 'alicebib', ?, 10)", (SRV, sasl_password))
    db.execute("INSERT INTO ircchanneloptions_ (owner_, server_, channel_, "
               "encodingout_, encodingin_, maxhistorylength_, persistent_, "
               "recordhistory_) VALUES ('alice@localhost', ?, '#imported', "
               "'', '', 20, 1, 0)", (SRV,))
    for uuid, date, nick, body in LINES:
        db.execute("INSERT INTO muclogline_ (uuid_, owner_, ircchanname_, "
                   "ircservername_, date_, body_, nick_) VALUES (?, "
                   "'alice@localhost', '#imported', ?, ?, ?, ?)",
                   (uuid, SRV, date, body, nick))
    db.commit()
    db.close()


def mam(user, queryid, after=None):
    rsm = "<set xmlns='%s'><max>10</max>%s</set>" % (
        NS_RSM, "" if after is None else "<after>%s</after>" % after)
    m = user.mark()
    r = user.iq(ROOM, "<query xmlns='%s' queryid='%s'>%s</query>"
                % (NS_MAM, queryid, rsm), "set")
    user.pump(0.3)
    out = []
    for kind, el in user.got[m:]:
        res = el.find("{%s}result" % NS_MAM)
        if res is None or res.get("queryid") != queryid:
            continue
        fwd = res.find("{%s}forwarded" % NS_FORWARD)
        inner = fwd.find(C + "message")
        delay = fwd.find("{%s}delay" % NS_DELAY)
        out.append((res.get("id"), inner.get("from", "").split("/", 1)[-1],
                    inner.findtext(C + "body"),
                    delay.get("stamp") if delay is not None else None))
    return r, out


def stamp(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def run_server(tap, cls):
    label = cls.name
    t_server = time.monotonic()
    server = cls(domain=DOMAIN, tap=tap)
    ircd = atheme = cw = alice = bot = None
    try:
        services = cwtest.have("atheme-services")
        ircd = InspIRCd(tap=tap, services=services)
        ircd.start()
        if services:
            atheme = Atheme(ircd, tap=tap)
            atheme.start()
        server.start()
        password = "pw-" + os.urandom(4).hex()
        server.register("alice", password)
        sasl_pw = "sasl-" + os.urandom(6).hex()
        if atheme is not None:
            atheme.register("alicebib", sasl_pw)

        cw = Causeway(server, tap=tap, name="causeway-%s" % label,
                      backend="irc", options={"linger": 0}, sections=[
                          ("irc-server %s" % SRV,
                           {"port": ircd.port, "tls": "no"})])
        bib = os.path.join(cw.dir, "biboumi.sqlite")
        biboumi_db(bib, sasl_pw)
        p = subprocess.run([cwtest.causeway_bin(), "-c", cw.cfg,
                            "--import-biboumi", bib], cwd=cw.dir,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=60)
        out = p.stdout.decode("utf-8", "replace")
        tap.ok(p.returncode == 0 and "3 history lines in 1 channels" in out,
               "%s: biboumi's database is imported before the first start"
               % label, diag=out + p.stderr.decode("utf-8", "replace"))

        bot = IrcClient(ircd.port, "bot")
        if not bot.register() or not bot.join("#imported"):
            raise RuntimeError("the bot cannot join:\n" + bot.dump())
        m = bot.mark()
        cw.start()
        if not tap.ok(cw.wait_for(HANDSHAKE, 1, 20), "%s: causeway attached"
                      % label):
            return
        join = bot.wait_for(r"^:alicebib!\S+ JOIN :?#imported", 20, m)
        tap.ok(join is not None, "%s: at start causeway rejoins the imported "
               "persistent channel as the imported nick" % label,
               diag="bot saw:\n%s\ncauseway:\n%s" % (
                   bot.dump(m), "\n".join(l for _, l in cw.lines[-15:])))
        m = bot.mark()
        bot.send("WHOIS alicebib")
        end = bot.wait_for(lambda l: cwtest.irc_numeric(l) == "318", 10, m)
        user = bot.find(lambda l: cwtest.irc_numeric(l) == "311", m)
        tap.ok(end and user and user.endswith(":Alice From Biboumi"),
               "%s: WHOIS shows the imported real name" % label,
               diag=bot.dump(m))
        if atheme is not None:
            acct = bot.find(lambda l: cwtest.irc_numeric(l) == "330", m)
            tap.ok(acct is not None and " alicebib alicebib " in acct,
                   "%s: the imported (sealed) SASL password logs in to "
                   "Atheme: WHOIS says logged in as alicebib (330)" % label,
                   diag=bot.dump(m))
        else:
            tap.skip("%s: imported SASL credentials" % label,
                     "atheme-services not installed")

        alice = User(server.c2s_port, "alice@localhost", password)
        if not tap.ok(alice.login(), "%s: alice logs in" % label,
                      diag=getattr(alice, "error", None)):
            return
        r, got = mam(alice, "q1")
        want = [(u, n, b, stamp(t)) for (u, t, n, b) in LINES]
        tap.ok(r.type == "result" and got == want,
               "%s: MAM on the room serves the imported lines with biboumi's "
               "ids and times" % label, diag="%s\n%s" % (r, got))
        r, got = mam(alice, "q2", after=LINES[1][0])
        tap.ok(r.type == "result" and [g[0] for g in got] == [LINES[2][0]],
               "%s: MAM paging after a biboumi id (one starting with digits "
               "and a dash) returns what followed it" % label,
               diag="%s\n%s" % (r, got))

        r, got = mam(alice, "q2b", after="00000001-0b1e-4c2a-9f00-"
                     "000000000001")
        tap.ok(r.type == "error" and r.error_condition == "item-not-found"
               and got == [],
               "%s: a uuid-shaped id that is in no archive row (its first "
               "group all digits, 1) is item-not-found, not archive id 1"
               % label, diag="%s\n%s" % (r, got))

        bot.send("PRIVMSG #imported :said after the switch")
        deadline = time.monotonic() + 10
        got = []
        while time.monotonic() < deadline:
            r, got = mam(alice, "q3", after=LINES[2][0])
            if got:
                break
            time.sleep(0.5)
        tap.ok([(g[1], g[2]) for g in got] ==
               [("bot", "said after the switch")],
               "%s: what is said now is archived after the imported lines"
               % label, diag=got)
    except Exception as e:
        cwtest.mark_failed()
        tap.bail("%s: unexpected exception: %s" % (label, e), e)
    finally:
        cwtest.stop_all(tap, label, server, t_server, bot, alice, cw,
                        atheme, ircd)


def main():
    return cwtest.main_per_server("biboumi import", run_server,
                                  requires=("inspircd",))


if __name__ == "__main__":
    sys.exit(main())
