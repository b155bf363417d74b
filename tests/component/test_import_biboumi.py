#!/usr/bin/env python3
"""causeway --import-biboumi: biboumi 9 databases built here with the
schema biboumi 9 creates (its CREATE TABLE statements, column for
column), imported, and the store read back with sqlite3.

Checks what maps to what (registration values, sealed secrets that open
with the key file and the user's associated data, irc-server settings,
room settings, the archive with biboumi's stanza ids and times, one copy
of a line several users logged), that a second run adds no row, and that
each bad input (missing file, not SQLite, corrupt, newer schema, older
schema, user_version set, unknown table, causeway running on the store,
a store write failing half-way) is refused with exit status 1 and the
store left exactly as it was.
"""

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Tap, FakeServer, causeway_bin  # noqa: E402

tap = Tap()
STDERRS = []      # every run's stderr, for a sanitizer build's reports
GW = "irc.example.org"
SERVER = "irc.libera.example"

# biboumi 9's tables, as Table::create() writes them: every column in
# declaration order, id_ "INTEGER PRIMARY KEY AUTOINCREMENT" (SQLite),
# strings TEXT, everything else INTEGER; then the log's index.
BIBOUMI9 = [
    "CREATE TABLE IF NOT EXISTS muclogline_ (id_ INTEGER PRIMARY KEY "
    "AUTOINCREMENT,uuid_ TEXT,owner_ TEXT,ircchanname_ TEXT,"
    "ircservername_ TEXT,date_ INTEGER,body_ TEXT,nick_ TEXT)",
    "CREATE TABLE IF NOT EXISTS globaloptions_ (id_ INTEGER PRIMARY KEY "
    "AUTOINCREMENT,owner_ TEXT,maxhistorylength_ INTEGER,"
    "recordhistory_ INTEGER,persistent_ INTEGER)",
    "CREATE TABLE IF NOT EXISTS ircserveroptions_ (id_ INTEGER PRIMARY KEY "
    "AUTOINCREMENT,owner_ TEXT,server_ TEXT,pass_ TEXT,tlsports_ TEXT,"
    "ports_ TEXT,username_ TEXT,realname_ TEXT,verifycert_ INTEGER,"
    "trustedfingerprint_ TEXT,encodingout_ TEXT,encodingin_ TEXT,"
    "maxhistorylength_ INTEGER,address_ TEXT,nick_ TEXT,saslpassword_ TEXT,"
    "throttlelimit_ INTEGER)",
    "CREATE TABLE IF NOT EXISTS ircchanneloptions_ (id_ INTEGER PRIMARY KEY "
    "AUTOINCREMENT,owner_ TEXT,server_ TEXT,channel_ TEXT,encodingout_ TEXT,"
    "encodingin_ TEXT,maxhistorylength_ INTEGER,persistent_ INTEGER,"
    "recordhistory_ INTEGER)",
    "CREATE TABLE IF NOT EXISTS roster (local TEXT,remote TEXT)",
    "CREATE TABLE IF NOT EXISTS after_connection_commands_ (id_ INTEGER "
    "PRIMARY KEY AUTOINCREMENT,fk_ INTEGER,afterconnectioncommand_ TEXT)",
    "CREATE INDEX IF NOT EXISTS archive_index ON muclogline_(owner_,"
    "ircchanname_,ircservername_)",
]

# Recent: a causeway with a retention (history_days) keeps them.
T0 = (int(time.time()) // 60 - 5 * 24 * 60) * 60
# uuids as biboumi makes them; the second starts with digits and a dash,
# which causeway's own ids do too.
UUIDS = ["a3f1c2d4-0b1e-4c2a-9f00-000000000001",
         "12345678-0b1e-4c2a-9f00-000000000002",
         "a3f1c2d4-0b1e-4c2a-9f00-000000000003",
         "a3f1c2d4-0b1e-4c2a-9f00-000000000004"]


def make_biboumi(path, extra_sql=(), schema=BIBOUMI9):
    db = sqlite3.connect(path)
    for stmt in schema:
        db.execute(stmt)
    A, B = "alice@example.net", "Bob@Example.NET"
    db.execute("INSERT INTO globaloptions_ (owner_, maxhistorylength_, "
               "recordhistory_, persistent_) VALUES (?, 20, 1, 0)", (A,))
    # Bob: every channel persistent by default.
    db.execute("INSERT INTO globaloptions_ (owner_, maxhistorylength_, "
               "recordhistory_, persistent_) VALUES (?, 20, 1, 1)", (B,))
    cur = db.execute(
        "INSERT INTO ircserveroptions_ (owner_, server_, pass_, tlsports_, "
        "ports_, username_, realname_, verifycert_, trustedfingerprint_, "
        "encodingout_, encodingin_, maxhistorylength_, address_, nick_, "
        "saslpassword_, throttlelimit_) VALUES (?, ?, 'srvpass-1', '7000', "
        "'6667', 'aliceu', 'Alice Liddell', 1, '', '', 'ISO-8859-15', 20, "
        "'', 'alicebib', 'saslpass-2', 10)", (A, SERVER))
    fk = cur.lastrowid
    db.execute("INSERT INTO after_connection_commands_ (fk_, "
               "afterconnectioncommand_) VALUES (?, ?)",
               (fk, "PRIVMSG NickServ :IDENTIFY alicebib nspass-3"))
    db.execute("INSERT INTO after_connection_commands_ (fk_, "
               "afterconnectioncommand_) VALUES (?, 'MODE alicebib +x')",
               (fk,))
    # Defaults only (as biboumi saves a form submitted unchanged).
    db.execute("INSERT INTO ircserveroptions_ (owner_, server_, pass_, "
               "tlsports_, ports_, username_, realname_, verifycert_, "
               "trustedfingerprint_, encodingout_, encodingin_, "
               "maxhistorylength_, address_, nick_, saslpassword_, "
               "throttlelimit_) VALUES (?, ?, '', '6697;6670', '6667', '', "
               "'', 1, '', '', '', 20, '', '', '', 10)", (B, SERVER))
    for owner, chan, pers, enc in [(A, "#chan", 1, ""),
                                   (A, "#latin", 0, "latin1"),
                                   (A, "#plain", 0, ""),
                                   (B, "#bobchan", 0, ""),
                                   (A, "bad chan", 1, "")]:
        db.execute("INSERT INTO ircchanneloptions_ (owner_, server_, "
                   "channel_, encodingout_, encodingin_, maxhistorylength_, "
                   "persistent_, recordhistory_) VALUES (?, ?, ?, '', ?, 20, "
                   "?, 0)", (owner, SERVER, chan, enc, pers))
    db.execute("INSERT INTO roster VALUES (?, 'carol@example.net')", (GW,))
    db.execute("INSERT INTO roster VALUES ('other.gw', 'dave@example.net')")
    # The log of #chan as alice's copy and bob's copy of the same lines,
    # and a line said twice in the same second (kept twice).
    lines = [(T0, "carol", "hello"), (T0 + 5, "alicebib", "hi carol"),
             (T0 + 9, "carol", "again"), (T0 + 9, "carol", "again")]
    for i, (date, nick, body) in enumerate(lines):
        db.execute("INSERT INTO muclogline_ (uuid_, owner_, ircchanname_, "
                   "ircservername_, date_, body_, nick_) VALUES "
                   "(?, ?, '#chan', ?, ?, ?, ?)",
                   (UUIDS[i], A, SERVER, date, body, nick))
    for i, (date, nick, body) in enumerate(lines[:2]):
        db.execute("INSERT INTO muclogline_ (uuid_, owner_, ircchanname_, "
                   "ircservername_, date_, body_, nick_) VALUES "
                   "(?, ?, '#CHAN', ?, ?, ?, ?)",
                   ("b0b%05d-0000-4000-8000-000000000000" % i, B,
                    SERVER.upper(), date, body, nick))
    # No uuid, and an unreadable line (a date that is text).
    db.execute("INSERT INTO muclogline_ (uuid_, owner_, ircchanname_, "
               "ircservername_, date_, body_, nick_) VALUES "
               "('', ?, '#bobchan', ?, ?, 'no uuid here', 'erin')",
               (B, SERVER, T0 + 20))
    db.execute("INSERT INTO muclogline_ (uuid_, owner_, ircchanname_, "
               "ircservername_, date_, body_, nick_) VALUES "
               "('x', ?, '#bobchan', ?, 'yesterday', 'bad date', 'erin')",
               (B, SERVER))
    for stmt in extra_sql:
        db.execute(stmt)
    db.commit()
    db.close()


class Setup:
    def __init__(self, extra="", components=None, port=5347):
        self.xmpp_port = port
        self.tmp = tempfile.mkdtemp(prefix="cw-import-")
        self.conf = os.path.join(self.tmp, "causeway.conf")
        self.db = os.path.join(self.tmp, "causeway.db")
        self.key = os.path.join(self.tmp, "secret.key")
        comps = components or [(GW, "irc")]
        with open(self.conf, "w") as f:
            f.write("[causeway]\ndatabase = %s\nkey_file = %s\n"
                    "log_level = info\n\n" % (self.db, self.key))
            for dom, backend in comps:
                f.write("[component %s]\nbackend = %s\nserver = 127.0.0.1\n"
                        "port = %d\nsecret = s3cret\n%s\n"
                        % (dom, backend, self.xmpp_port, extra))

    def run(self, *args):
        p = subprocess.run([causeway_bin(), "-c", self.conf] + list(args),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=60)
        STDERRS.append(p.stderr.decode("utf-8", "replace"))
        return (p.returncode, p.stdout.decode("utf-8", "replace"),
                STDERRS[-1])

    def query(self, sql, args=()):
        db = sqlite3.connect(self.db)
        try:
            return db.execute(sql, args).fetchall()
        finally:
            db.close()

    def dump(self):
        """Every row of every table (the whole store's content)."""
        if not os.path.exists(self.db):
            return None
        db = sqlite3.connect(self.db)
        try:
            tables = [r[0] for r in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "ORDER BY name")]
            return {t: sorted(db.execute("SELECT * FROM \"%s\"" % t)
                              .fetchall(), key=repr) for t in tables}
        finally:
            db.close()

    def counts(self):
        d = self.dump() or {}
        return {t: len(v) for t, v in d.items()}

    def close(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


def unseal(key_path, domain, jid, blob):
    """A value sealed by secret.c: 0x01 | nonce | ciphertext | tag,
    AES-256-GCM, associated data "causeway|DOMAIN|JID"."""
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError:
        return None
    with open(key_path, "rb") as f:
        key = f.read()
    if blob[:1] != b"\x01":
        return None
    ad = ("causeway|%s|%s" % (domain, jid)).encode()
    return AESGCM(key).decrypt(blob[1:13], blob[13:], ad).decode()


def test_import():
    s = Setup()
    bib = os.path.join(s.tmp, "biboumi.sqlite")
    make_biboumi(bib)
    rc, out, err = s.run("--import-biboumi", bib)
    tap.check(rc == 0 and "imported into %s" % GW in out,
              "a biboumi 9 database is imported (exit 0, a summary line)",
              out + err)
    tap.check(out.count("\n") == 1 and "3 users (3 new)" in out,
              "the summary counts alice, bob and carol (from the roster) "
              "as new users", out)

    users = [r[0] for r in s.query("SELECT jid FROM users WHERE "
                                   "component = ? ORDER BY jid", (GW,))]
    tap.check(users == ["alice@example.net", "bob@example.net",
                        "carol@example.net"],
              "users: owners folded to causeway's bare JIDs, the roster's "
              "subscriber of the gateway; another gateway's is not", users)

    fields = {r[0]: (r[1], r[2]) for r in s.query(
        "SELECT var, value, sealed FROM user_fields WHERE jid = ?",
        ("alice@example.net",))}
    P = SERVER + "/"
    tap.check(fields.get(P + "nick") == (b"alicebib", 0) or
              fields.get(P + "nick") == ("alicebib", 0),
              "the nick is the registration value SERVER/nick", fields)
    tap.check(fields.get(P + "realname", (None,))[0] in
              ("Alice Liddell", b"Alice Liddell"),
              "the real name is SERVER/realname")
    tap.check(fields.get(P + "sasl_user", (None,))[0] in
              ("alicebib", b"alicebib"),
              "the SASL account is the nick (biboumi logs in as the nick)")
    secrets_ok = True
    for var, plain in [("server_password", "srvpass-1"),
                       ("sasl_password", "saslpass-2")]:
        v = fields.get(P + var)
        blob = bytes(v[0]) if v else b""
        secrets_ok &= v is not None and v[1] == 1 and \
            plain.encode() not in blob
        opened = unseal(s.key, GW, "alice@example.net", blob) if v else None
        tap.check(v is not None and v[1] == 1 and opened == plain,
                  "the %s is sealed with causeway's key and the user's "
                  "associated data (opens to the original)" % var,
                  "%r %r" % (v, opened))
    tap.check(not any(k.startswith(P + "username") for k in fields),
              "biboumi's user name is not carried over (causeway sets the "
              "ident)", fields)

    state = {r[0]: bytes(r[1]) if isinstance(r[1], bytes) else r[1]
             for r in s.query("SELECT key, value FROM backend_state WHERE "
                              "jid = 'alice@example.net'")}
    K = "irc/server/%s/" % SERVER

    def sv(name):
        v = state.get(K + name)
        return v.decode() if isinstance(v, bytes) else v
    tap.check(sv("port") == "7000" and sv("tls") == "yes",
              "a TLS port that is not biboumi's default becomes the "
              "irc-server port, with TLS", state)
    tap.check(sv("encoding") == "ISO-8859-15",
              "the incoming charset becomes the irc-server charset", state)
    ns = state.get(K + "nickserv")
    ns = ns if isinstance(ns, bytes) else (ns or "").encode()
    tap.check(ns and b"nspass-3" not in ns and
              unseal(s.key, GW, "alice@example.net", ns) ==
              "IDENTIFY alicebib nspass-3",
              "the NickServ after-connect command becomes the sealed "
              "irc-server NickServ line", ns)
    tap.check("after-connect command: causeway sends only a NickServ "
              "line" in err and "nspass-3" not in err and
              "srvpass-1" not in err and "saslpass-2" not in err,
              "the other command is reported as not carried over, and no "
              "secret reaches the log", err)
    bob_state = s.query("SELECT key FROM backend_state WHERE jid = "
                        "'bob@example.net'")
    tap.check(bob_state == [],
              "biboumi's defaults (ports 6697;6670, no charset) store "
              "nothing", bob_state)

    rooms = {(r[0], r[1]): (r[2], r[3], r[4]) for r in s.query(
        "SELECT jid, room, persistent, encoding, seen FROM room_settings")}
    chan = "#chan%" + SERVER
    tap.check(rooms.get(("alice@example.net", chan), (0,))[0] == 1,
              "a persistent channel is persistent in causeway", rooms)
    tap.check(rooms.get(("alice@example.net", "#latin%" + SERVER)) ==
              (0, "latin1", 0),
              "a channel's incoming charset is the room's charset", rooms)
    tap.check(("alice@example.net", "#plain%" + SERVER) not in rooms,
              "a channel with only defaults stores nothing", rooms)
    tap.check(rooms.get(("bob@example.net", "#bobchan%" + SERVER),
                        (0,))[0] == 1,
              "'persistent by default' makes the user's configured "
              "channels persistent", rooms)
    tap.check(not any("bad chan" in r for (_, r) in rooms),
              "a channel name causeway cannot address is skipped", rooms)

    arch = s.query("SELECT a.id, a.stamp, a.nick, a.body, a.sid FROM "
                   "archive a JOIN archive_rooms r ON a.room = r.id WHERE "
                   "r.component = ? AND r.room = ? ORDER BY a.id",
                   (GW, chan))
    want = [(T0, "carol", "hello", UUIDS[0]),
            (T0 + 5, "alicebib", "hi carol", UUIDS[1]),
            (T0 + 9, "carol", "again", UUIDS[2]),
            (T0 + 9, "carol", "again", UUIDS[3])]
    tap.check([a[1:] for a in arch] == want,
              "the log is archived once per channel, with biboumi's times "
              "and stanza ids; a line two users logged is kept once, a "
              "line said twice stays twice", arch)
    ids = [a[0] for a in arch]
    bid = s.query("SELECT a.id FROM archive a JOIN archive_rooms r ON "
                  "a.room = r.id WHERE r.room = ?", ("#bobchan%" + SERVER,))
    spans = s.query("SELECT jid, room, from_id, to_id FROM room_members "
                    "ORDER BY jid, room")
    tap.check(len(ids) == 4 and len(bid) == 1 and spans == [
        ("alice@example.net", chan, ids[0] - 1, ids[3]),
        ("bob@example.net", "#bobchan%" + SERVER, bid[0][0] - 1, bid[0][0]),
        ("bob@example.net", chan, ids[0] - 1, ids[1])],
        "each user may read the imported lines their biboumi log had (a "
        "stretch of membership over them): alice all of #chan, bob the "
        "two lines he logged", (spans, ids, bid))
    seen = rooms.get(("alice@example.net", chan), (0, 0, 0))[2]
    tap.check(arch and seen == arch[-1][0],
              "the persistent channel's history counts as read (what "
              "biboumi delivered is not replayed on the first join)",
              (seen, arch[-1:]))
    bobarch = s.query("SELECT a.nick, a.body, a.sid FROM archive a JOIN "
                      "archive_rooms r ON a.room = r.id WHERE r.room = ?",
                      ("#bobchan%" + SERVER,))
    tap.check(len(bobarch) == 1 and bobarch[0][2].startswith("biboumi-")
              and "1 unreadable" in out,
              "a line without a uuid gets a stanza id derived from it; a "
              "line with a date that is not a number is not imported",
              (bobarch, out))

    before = s.counts()
    before_rows = s.dump()
    rc2, out2, err2 = s.run("--import-biboumi", bib)
    after = s.counts()
    tap.check(rc2 == 0 and before == after,
              "a second run adds no row to any table", (before, after, out2))
    changed = {t for t in before_rows
               if t != "backend_state" and before_rows[t] != s.dump()[t]}
    tap.check(not changed and "(0 new)" in out2 and
              "5 already there" in out2,
              "the second run changes nothing and says so", (changed, out2))
    return s, bib


def test_fixed_server_and_limits():
    """A component with fixed_server (rooms are #chan@gw): keys without
    the server; rows for other servers skipped; hostile log lines (a
    100 KB body, a nick with a control character) not archived."""
    s = Setup(extra="fixed_server = %s" % SERVER.upper())
    bib = os.path.join(s.tmp, "biboumi.sqlite")
    make_biboumi(bib, [
        "INSERT INTO ircchanneloptions_ (owner_, server_, channel_, "
        "encodingout_, encodingin_, maxhistorylength_, persistent_, "
        "recordhistory_) VALUES ('alice@example.net', 'irc.other.example', "
        "'#elsewhere', '', '', 20, 1, 0)",
        "UPDATE ircserveroptions_ SET nick_ = 'bad nick' WHERE owner_ = "
        "'alice@example.net'",
        "INSERT INTO muclogline_ (uuid_, owner_, ircchanname_, "
        "ircservername_, date_, body_, nick_) VALUES ('g0alice', "
        "'alice@example.net', '#gap', '%s', %d, 'gap 0', 'zed')"
        % (SERVER, T0 + 100),
        "INSERT INTO muclogline_ (uuid_, owner_, ircchanname_, "
        "ircservername_, date_, body_, nick_) VALUES ('g0bob', "
        "'bob@example.net', '#gap', '%s', %d, 'gap 0', 'zed')"
        % (SERVER, T0 + 100),
        "INSERT INTO muclogline_ (uuid_, owner_, ircchanname_, "
        "ircservername_, date_, body_, nick_) VALUES ('g1alice', "
        "'alice@example.net', '#gap', '%s', %d, 'gap 1', 'zed')"
        % (SERVER, T0 + 101),
        "INSERT INTO muclogline_ (uuid_, owner_, ircchanname_, "
        "ircservername_, date_, body_, nick_) VALUES ('g2alice', "
        "'alice@example.net', '#gap', '%s', %d, 'gap 2', 'zed')"
        % (SERVER, T0 + 102),
        "INSERT INTO muclogline_ (uuid_, owner_, ircchanname_, "
        "ircservername_, date_, body_, nick_) VALUES ('g2bob', "
        "'bob@example.net', '#gap', '%s', %d, 'gap 2', 'zed')"
        % (SERVER, T0 + 102),
        "INSERT INTO muclogline_ (uuid_, owner_, ircchanname_, "
        "ircservername_, date_, body_, nick_) VALUES ('big', "
        "'alice@example.net', '#chan', '%s', %d, '%s', 'carol')"
        % (SERVER, T0 + 30, "x" * 100000),
        "INSERT INTO muclogline_ (uuid_, owner_, ircchanname_, "
        "ircservername_, date_, body_, nick_) VALUES ('ctl', "
        "'alice@example.net', '#chan', '%s', %d, 'hi', 'ca' || char(1) || "
        "'rol')" % (SERVER, T0 + 31)])
    rc, out, err = s.run("--import-biboumi", bib)
    rooms = sorted(r[0] for r in s.query(
        "SELECT room FROM room_settings WHERE jid = 'alice@example.net'"))
    tap.check(rc == 0 and rooms == ["#chan", "#latin"],
              "fixed_server: channels are keyed as the rooms #chan@gw; a "
              "channel on another server is skipped", (rooms, out, err))
    names = s.query("SELECT var FROM user_fields WHERE var LIKE "
                    "'%/realname'")
    tap.check(names == [(SERVER + "/realname",)],
              "fixed_server: values are scoped to the fixed server", names)
    nick = s.query("SELECT var FROM user_fields WHERE var LIKE '%/nick' OR "
                   "var LIKE '%/sasl_user'")
    tap.check(nick == [] and "nick: not a valid IRC nick" in err,
              "a nick with a space is not carried over (nor used as the "
              "SASL account), and said so", (nick, err))
    arch = s.query("SELECT r.room, count(*) FROM archive a JOIN "
                   "archive_rooms r ON a.room = r.id GROUP BY r.room")
    tap.check(("#chan", 4) in arch and "3 unreadable" in out,
              "a 100 KB line and a nick with a control character are not "
              "archived", (arch, out))
    gap = [r[0] for r in s.query(
        "SELECT a.id FROM archive a JOIN archive_rooms r ON a.room = r.id "
        "WHERE r.room = '#gap' ORDER BY a.id")]
    spans = s.query("SELECT jid, from_id, to_id FROM room_members WHERE "
                    "room = '#gap' ORDER BY jid, from_id")
    tap.check(len(gap) == 3 and spans == [
        ("alice@example.net", gap[0] - 1, gap[2]),
        ("bob@example.net", gap[0] - 1, gap[0]),
        ("bob@example.net", gap[1], gap[2])],
        "a user whose log misses a line in the middle gets two stretches, "
        "around it", (spans, gap))
    s.close()

    s = Setup(extra="allowed_servers = irc.only.example")
    bib = os.path.join(s.tmp, "biboumi.sqlite")
    make_biboumi(bib)
    rc, out, err = s.run("--import-biboumi", bib)
    n = s.query("SELECT (SELECT count(*) FROM room_settings) + (SELECT "
                "count(*) FROM archive) + (SELECT count(*) FROM "
                "user_fields)")[0][0]
    tap.check(rc == 0 and n == 0 and err.count("not in allowed_servers") == 9,
              "servers outside allowed_servers: their settings and history "
              "are skipped and said so", (n, out, err))
    s.close()


def test_retention():
    """The component's retention (history_days, history_max, where this
    causeway has them): what it would delete at start is not imported."""
    s = Setup(extra="history_days = 2\nhistory_max = 2")
    rc, out, err = s.run("--check-config")
    if rc != 0:
        tap.n += 1
        print("ok %d - retention # SKIP this causeway has no history_days "
              "(%s)" % (tap.n, (out + err).strip().splitlines()[-1:]))
        s.close()
        return
    bib = os.path.join(s.tmp, "biboumi.sqlite")
    now = int(time.time())
    make_biboumi(bib, [
        "INSERT INTO muclogline_ (uuid_, owner_, ircchanname_, "
        "ircservername_, date_, body_, nick_) VALUES ('f%d', "
        "'alice@example.net', '#fresh', '%s', %d, 'fresh %d', 'zed')"
        % (i, SERVER, now - 3600 + i, i) for i in range(3)])
    rc, out, err = s.run("--import-biboumi", bib)
    rows = s.query("SELECT r.room, a.body FROM archive a JOIN archive_rooms "
                   "r ON a.room = r.id ORDER BY a.id")
    tap.check(rc == 0 and rows == [("#fresh%" + SERVER, "fresh 1"),
                                   ("#fresh%" + SERVER, "fresh 2")],
              "lines older than history_days, and beyond the newest "
              "history_max of a channel, are not imported", (rows, out))
    s.close()


def test_component_choice(bib):
    s = Setup(components=[(GW, "irc"), ("irc2.example.org", "irc"),
                          ("echo.example.org", "echo")])
    rc, out, err = s.run("--import-biboumi", bib)
    tap.check(rc == 1 and "--component" in err and
              not os.path.exists(s.db),
              "two IRC components and no --component: refused, no store "
              "made", err)
    rc, out, err = s.run("--import-biboumi", bib, "--component",
                         "echo.example.org")
    tap.check(rc == 1 and "not an IRC component" in err,
              "--component naming a component of another backend: refused",
              err)
    rc, out, err = s.run("--import-biboumi", bib, "--component",
                         "irc2.example.org")
    n = s.query("SELECT count(*) FROM users WHERE component = "
                "'irc2.example.org'") if rc == 0 else [(0,)]
    tap.check(rc == 0 and n[0][0] == 2,
              "--component DOMAIN picks the component (the roster's "
              "subscriber of %s is not one of its users)" % GW, (out, err))
    rc, out, err = s.run("--component", GW)
    tap.check(rc == 2, "--component without --import-biboumi is a usage "
              "error")
    s.close()


def refused(s, path, name, needle):
    before = s.dump()
    rc, out, err = s.run("--import-biboumi", path)
    after = s.dump()
    tap.check(rc == 1 and needle in err and "nothing imported" in err and
              before == after and out == "",
              "%s: refused with a clear error, the store unchanged" % name,
              "rc=%d\n%s" % (rc, err))


def test_bad_inputs(s):
    d = s.tmp
    refused(s, os.path.join(d, "missing.sqlite"), "a missing file",
            "No such file")
    p = os.path.join(d, "text.sqlite")
    with open(p, "w") as f:
        f.write("this is not a database\n" * 200)
    refused(s, p, "a file that is not SQLite", "not an SQLite database")

    p = os.path.join(d, "corrupt.sqlite")
    make_biboumi(p)
    db = sqlite3.connect(p)
    db.executemany("INSERT INTO muclogline_ (uuid_, owner_, ircchanname_, "
                   "ircservername_, date_, body_, nick_) VALUES "
                   "('u', 'alice@example.net', '#big', ?, ?, ?, 'n')",
                   [(SERVER, T0 + i, "x" * 300) for i in range(300)])
    db.commit()
    db.close()
    with open(p, "r+b") as f:
        size = os.path.getsize(p)
        f.seek(size // 2)
        f.write(b"\xde\xad\xbe\xef" * 1024)
    refused(s, p, "a corrupt database", "corrupt")

    p = os.path.join(d, "truncated.sqlite")
    make_biboumi(p)
    with open(p, "r+b") as f:
        f.truncate(4096 + 100)
    refused(s, p, "a truncated database", "nothing imported")

    p = os.path.join(d, "newer.sqlite")
    make_biboumi(p, ["ALTER TABLE ircserveroptions_ ADD "
                     "websocketurl_ TEXT"])
    refused(s, p, "a newer schema (a column biboumi 9 does not make)",
            "websocketurl_")
    p = os.path.join(d, "newtable.sqlite")
    make_biboumi(p, ["CREATE TABLE muc_bookmarks_ (id_ INTEGER)"])
    refused(s, p, "a newer schema (a table biboumi 9 does not make)",
            "muc_bookmarks_")
    p = os.path.join(d, "version.sqlite")
    make_biboumi(p, ["PRAGMA user_version = 3"])
    refused(s, p, "a database with a schema version", "user_version is 3")
    older = [t.replace(",saslpassword_ TEXT", "") for t in BIBOUMI9]
    p = os.path.join(d, "older.sqlite")
    db = sqlite3.connect(p)
    for stmt in older:
        db.execute(stmt)
    db.commit()
    db.close()
    refused(s, p, "an older schema (no column saslpassword_)",
            "no column saslpassword_")
    p = os.path.join(d, "empty.sqlite")
    sqlite3.connect(p).close()
    refused(s, p, "an empty SQLite file (not biboumi's)", "no table")

    # Legacy leftovers older biboumis left are known and ignored.
    p = os.path.join(d, "legacy.sqlite")
    make_biboumi(p, ["ALTER TABLE ircserveroptions_ ADD "
                     "afterconnectioncommand_ TEXT",
                     "ALTER TABLE muclogline_ ADD type_ TEXT",
                     "CREATE TABLE schema_ (name_ TEXT, type_ TEXT)"])
    rc, out, err = s.run("--import-biboumi", p)
    tap.check(rc == 0 and "(0 new)" in out,
              "columns and tables older biboumis left behind are accepted "
              "(and add nothing to what was imported)", out + err)


def test_rollback(bib):
    """A store write that fails half-way (a trigger refuses archive rows,
    after users and values were written): everything is rolled back."""
    s = Setup()
    # A store made by causeway itself (started once, with no XMPP server
    # to reach), then given the refusing trigger.
    p = subprocess.Popen([causeway_bin(), "-c", s.conf],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while not os.path.exists(s.db) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    p.send_signal(signal.SIGTERM)
    p.wait(10)
    db = sqlite3.connect(s.db)
    db.execute("CREATE TRIGGER no_archive BEFORE INSERT ON archive BEGIN "
               "SELECT RAISE(ABORT, 'refused by the test'); END")
    db.commit()
    db.close()
    before = s.dump()
    rc, out, err = s.run("--import-biboumi", bib)
    after = s.dump()
    tap.check(rc == 1 and "rolled back" in err and before == after and
              after.get("users") == [],
              "a write failing after users and values were written: exit 1, "
              "all of it rolled back", "rc=%d %s" % (rc, err))
    s.close()


def test_running(bib):
    """The import refuses a store a running causeway has open."""
    srv = FakeServer(domain=GW)
    s = Setup(port=srv.port)
    p = subprocess.Popen([causeway_bin(), "-c", s.conf],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    conn = srv.accept()
    try:
        before = s.dump()
        rc, out, err = s.run("--import-biboumi", bib)
        tap.check(conn is not None and rc == 1 and "in use by process %d"
                  % p.pid in err and s.dump() == before,
                  "causeway running on the store: refused, naming its "
                  "process", err)
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(10)
        srv.close()
    rc, out, err = s.run("--import-biboumi", bib)
    tap.check(rc == 0, "once it stopped, the import runs", out + err)
    s.close()


def test_usage():
    p = subprocess.run([causeway_bin(), "--help"], stdout=subprocess.PIPE)
    tap.check(b"--import-biboumi" in p.stdout and b"--component" in p.stdout,
              "the usage text names --import-biboumi and --component")


def main():
    test_usage()
    s, bib = test_import()
    test_bad_inputs(s)
    test_fixed_server_and_limits()
    test_retention()
    test_component_choice(bib)
    test_rollback(bib)
    test_running(bib)
    s.close()
    reports = [e for e in STDERRS if "Sanitizer" in e or
               "runtime error" in e]
    tap.check(not reports, "no sanitizer report in %d runs of the import"
              % len(STDERRS), "\n".join(reports)[-3000:])
    return tap.done()


if __name__ == "__main__":
    sys.exit(main())
