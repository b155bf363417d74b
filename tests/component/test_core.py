#!/usr/bin/env python3
"""Component tests of causeway's core: handshake, services, routing rules,
hostile input, reconnects, signals and the operator interface."""

import os
import signal
import sqlite3
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (NS_COMPONENT, Causeway, FakeServer, Tap,  # noqa: E402
                     error_condition, q, run_causeway)

DISCO_INFO = "http://jabber.org/protocol/disco#info"
DISCO_ITEMS = "http://jabber.org/protocol/disco#items"

tap = Tap()


def started(srv, **kw):
    cw = Causeway(srv.port, **kw).start()
    conn = srv.accept()
    return cw, conn


def test_services(srv, cw, conn):
    tap.check(conn is not None and conn.handshake_ok,
              "handshake is hex(SHA-1(stream id + secret))", cw.log_text())
    tap.check(cw.wait_log("irc.localhost: handshake accepted"),
              "causeway logs the accepted handshake")

    res = conn.iq("<query xmlns='%s'/>" % DISCO_INFO, id_="info1")
    ok = res is not None and res.get("type") == "result"
    ident = feats = None
    if ok:
        qel = res.find(q(DISCO_INFO, "query"))
        ident = qel.find(q(DISCO_INFO, "identity"))
        feats = {f.get("var") for f in qel.findall(q(DISCO_INFO, "feature"))}
    tap.check(ok and ident is not None and ident.get("category") == "gateway"
              and ident.get("type") == "irc",
              "disco#info: identity gateway/irc")
    tap.check(ok and res.get("to") == "alice@localhost/res"
              and res.get("from") == "irc.localhost",
              "disco#info answer is addressed back to the asker")
    tap.check(feats is not None and {DISCO_INFO, DISCO_ITEMS, "jabber:iq:version",
                                     "urn:xmpp:ping"} <= feats,
              "disco#info lists disco, version and ping", feats)

    res = conn.iq("<query xmlns='%s' node='nope'/>" % DISCO_INFO, id_="info2")
    tap.check(error_condition(res) == ("cancel", "item-not-found"),
              "disco#info on an unknown node: item-not-found")

    res = conn.iq("<query xmlns='%s'/>" % DISCO_ITEMS, id_="items1")
    tap.check(res is not None and res.get("type") == "result"
              and res.find(q(DISCO_ITEMS, "query")) is not None,
              "disco#items answers")

    res = conn.iq("<query xmlns='jabber:iq:version'/>", id_="v1")
    name = res.find(".//{jabber:iq:version}name") if res is not None else None
    ver = res.find(".//{jabber:iq:version}version") if res is not None else None
    tap.check(name is not None and name.text == "causeway" and ver is not None
              and ver.text, "version: causeway and a version number")

    res = conn.iq("<ping xmlns='urn:xmpp:ping'/>", id_="p1")
    tap.check(res is not None and res.get("type") == "result", "ping answers")


def test_routing_rules(srv, cw, conn):
    res = conn.iq("<query xmlns='urn:example:unknown'/>", id_="u1")
    tap.check(error_condition(res) == ("cancel", "service-unavailable"),
              "iq to an unknown namespace: service-unavailable")

    res = conn.iq("<query xmlns='jabber:iq:version'/>", type_="set", id_="u2")
    tap.check(error_condition(res) == ("cancel", "service-unavailable"),
              "iq set of a get-only namespace: service-unavailable")

    conn.send("<iq type='get' to='irc.localhost' from='alice@localhost/r'>"
              "<ping xmlns='urn:xmpp:ping'/></iq>")
    res = conn.next_stanza(5, lambda s: s.tag == q(NS_COMPONENT, "iq"))
    tap.check(error_condition(res) == ("modify", "bad-request")
              and res.get("id") is None, "iq with no id: bad-request")

    res = conn.iq("<ping xmlns='urn:xmpp:ping'/><ping xmlns='urn:xmpp:ping'/>",
                  id_="two")
    tap.check(error_condition(res) == ("modify", "bad-request"),
              "iq get with two payloads: bad-request")

    res = conn.iq("", id_="zero")
    tap.check(error_condition(res) == ("modify", "bad-request"),
              "iq get with no payload: bad-request")

    # Errors and results are never answered: send some, then a ping, and
    # the ping's answer must be the next stanza.
    conn.send("<iq type='error' id='e1' to='irc.localhost' from='alice@localhost/r'>"
              "<error type='cancel'><item-not-found xmlns='%s'/></error></iq>"
              % "urn:ietf:params:xml:ns:xmpp-stanzas")
    conn.send("<iq type='result' id='r1' to='irc.localhost' from='alice@localhost/r'/>")
    conn.send("<message type='error' to='irc.localhost' from='alice@localhost/r'/>")
    res = conn.iq("<ping xmlns='urn:xmpp:ping'/>", id_="after-errors")
    nxt = conn.next_stanza(0.5)
    tap.check(res is not None and res.get("type") == "result" and nxt is None,
              "iq errors, results and message errors get no answer")

    res = conn.iq("<ping xmlns='urn:xmpp:ping'/>", to="not a jid@@irc.localhost",
                  id_="badto")
    tap.check(error_condition(res) == ("modify", "jid-malformed")
              and res.get("from") == "irc.localhost",
              "malformed 'to': jid-malformed from the gateway's own JID")

    conn.send("<iq type='get' id='badfrom' to='irc.localhost' from='@@bad'>"
              "<ping xmlns='urn:xmpp:ping'/></iq>")
    conn.send("<iq type='get' id='nofrom' to='irc.localhost'>"
              "<ping xmlns='urn:xmpp:ping'/></iq>")
    res = conn.iq("<ping xmlns='urn:xmpp:ping'/>", id_="after-badfrom")
    tap.check(res is not None and res.get("type") == "result"
              and conn.next_stanza(0.3) is None
              and cw.wait_log("with a malformed 'from'"),
              "malformed or missing 'from': dropped and logged, stream goes on")

    res = conn.iq("<ping xmlns='urn:xmpp:ping'/>", to="other.localhost",
                  id_="foreign")
    tap.check(error_condition(res) is not None, "iq to a foreign domain: error")

    conn.send("<message to='irc.localhost' id='m1' from='alice@localhost/r'>"
              "<body>hi</body></message>")
    res = conn.next_stanza(5, lambda s: s.get("id") == "m1")
    tap.check(error_condition(res) == ("cancel", "service-unavailable"),
              "a message to the gateway itself is answered with an error")

    conn.send("<unknown xmlns='jabber:component:accept'/>")
    res = conn.iq("<ping xmlns='urn:xmpp:ping'/>", id_="after-unknown")
    tap.check(res is not None and res.get("type") == "result",
              "an unknown top-level element is ignored")

    conn.send("<iq type='get' id='lang' xml:lang='de' to='irc.localhost' "
              "from='alice@localhost/r'><query xmlns='jabber:iq:version'/></iq>")
    res = conn.next_stanza(5, lambda s: s.get("id") == "lang")
    tap.check(res is not None and res.get("type") == "result",
              "xml:lang on a stanza is accepted")

    # Escaping: attribute values with quotes, ampersands and angle brackets
    # come back intact in the reply's 'to'.
    weird = "alice@localhost/we&apos;ird&amp;&lt;x&gt;&quot;"
    conn.send("<iq type='get' id='esc&amp;1' to='irc.localhost' from='%s'>"
              "<ping xmlns='urn:xmpp:ping'/></iq>" % weird)
    res = conn.next_stanza(5, lambda s: s.get("id") == "esc&1")
    tap.check(res is not None and res.get("to") == "alice@localhost/we'ird&<x>\"",
              "special characters survive the round trip (escaped output)",
              res is not None and res.attrib)


def hostile(srv, cw, conn, payload, expect, name, chunked=False):
    """Send payload; causeway must answer with stream error expect,
    close, and reconnect (a new handshake on a new connection)."""
    if chunked:
        for i in range(0, len(payload), 65536):
            conn.send(payload[i:i + 65536])
            if conn.closed:
                break
    else:
        conn.send(payload)
    cond = conn.stream_error(10)
    closed = conn.wait_closed(5)
    conn.close()
    new = srv.accept(timeout=15)
    tap.check(cond == expect and closed and new is not None and new.handshake_ok,
              "%s: stream error %s, close, reconnect" % (name, expect),
              "got %r closed=%r reconnected=%r\n%s" % (cond, closed, new is not None,
                                                        cw.log_text()[-3000:]))
    res = new.iq("<ping xmlns='urn:xmpp:ping'/>", id_="alive") if new else None
    tap.check(res is not None and res.get("type") == "result" and cw.alive(),
              "%s: the new stream works" % name)
    return new


def test_hostile(srv, cw, conn):
    conn = hostile(srv, cw, conn, b"\x00\x01garbage\xff<<>>", "not-well-formed",
                   "garbage bytes")
    conn = hostile(srv, cw, conn,
                   b"<iq from='a@b' to='irc.localhost' type='get' id='x'>"
                   b"<ping xmlns='urn:xmpp:ping'/>\xc3\x28</iq>",
                   "not-well-formed", "invalid UTF-8")
    # Inside the stream a DOCTYPE is not even well-formed XML ...
    conn = hostile(srv, cw, conn,
                   b"<!DOCTYPE lolz [<!ENTITY lol 'lol'><!ENTITY lol2 "
                   b"'&lol;&lol;&lol;&lol;'>]><iq>&lol2;</iq>",
                   "not-well-formed", "DOCTYPE inside the stream")
    conn = hostile(srv, cw, conn,
                   b"<message from='a@localhost/r' to='irc.localhost'>"
                   b"<body>&lol;</body></message>",
                   "not-well-formed", "an undefined entity reference")
    conn = hostile(srv, cw, conn, b"<!-- a comment -->", "restricted-xml",
                   "a comment")
    conn = hostile(srv, cw, conn, b"<?evil processing instruction?>",
                   "restricted-xml", "a processing instruction")
    # ... and before the stream root, where XML allows one, XMPP does not.
    conn.close()
    conn = srv.accept(timeout=15, handshake=False)
    while conn is not None and conn.root is None and conn.fill(0.2) and not conn.closed:
        pass
    conn.send("<?xml version='1.0'?><!DOCTYPE stream:stream [<!ENTITY a "
              "'aaaaaaaaaaaaaaaaaaaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;&a;&a;&a;'>]>"
              "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' "
              "xmlns='jabber:component:accept' id='dt' from='irc.localhost'>&b;")
    cond = conn.stream_error(10) if conn else None
    tap.check(cond == "restricted-xml" and cw.alive(),
              "a DOCTYPE with entity expansion in the server's header: "
              "restricted-xml", "got %r" % cond)
    conn.close()
    conn = srv.accept(timeout=15)
    big = (b"<message from='a@localhost/r' to='irc.localhost'><body>" +
           b"A" * (10 * 1024 * 1024) + b"</body></message>")
    conn = hostile(srv, cw, conn, big, "policy-violation", "a 10 MB stanza",
                   chunked=True)
    nested = b"<message from='a@localhost/r' to='irc.localhost'>" + \
        b"<x>" * 10000 + b"</x>" * 10000 + b"</message>"
    conn = hostile(srv, cw, conn, nested, "policy-violation",
                   "10,000 nested elements")
    # The server closes the stream in the middle of a stanza.
    conn.send(b"<iq type='get' id='half' to='irc.localhost' from='a@localhost/r'><pi")
    conn.close()
    new = srv.accept(timeout=15)
    tap.check(new is not None and new.handshake_ok and cw.alive(),
              "server closes mid-stanza: causeway reconnects")
    return new


def test_backoff_and_restart(srv, cw, conn):
    # Server gone: the port refuses connections; causeway must retry with
    # growing delays, and reattach once the server is back.
    port = srv.port
    srv.stop_listening()
    conn.close()
    t0 = time.time()
    time.sleep(4.5)
    srv.listen(port)
    new = srv.accept(timeout=20)
    took = time.time() - t0
    tap.check(new is not None and new.handshake_ok,
              "server restarts: causeway is back within the backoff (%.1f s)" % took,
              cw.log_text()[-2000:])
    return new


def test_reannounce(tmp, srv):
    # Users registered in the store are probed after every handshake.
    db = os.path.join(tmp, "causeway.db")
    cw = Causeway(srv.port, tmp=tmp).start()
    conn = srv.accept()
    tap.check(conn is not None, "causeway starts on a fresh database")
    cw.signal(signal.SIGTERM)
    cw.wait_exit()
    conn.close()
    con = sqlite3.connect(db)
    con.execute("INSERT INTO users(component, jid, created) VALUES "
                "('irc.localhost', 'alice@localhost', 0), "
                "('irc.localhost', 'bob@localhost', 0), "
                "('mail.localhost', 'carol@localhost', 0)")
    con.commit()
    con.close()
    cw = Causeway(srv.port, tmp=tmp).start()
    conn = srv.accept()
    probes = set()
    while True:
        st = conn.next_stanza(2, lambda s: s.tag == q(NS_COMPONENT, "presence"))
        if st is None:
            break
        if st.get("type") == "probe" and st.get("from") == "irc.localhost":
            probes.add(st.get("to"))
    tap.check(probes == {"alice@localhost", "bob@localhost"},
              "after the handshake every registered user is probed", probes)
    conn.close()
    conn = srv.accept(timeout=15)
    probes = set()
    while conn is not None:
        st = conn.next_stanza(2, lambda s: s.tag == q(NS_COMPONENT, "presence"))
        if st is None:
            break
        probes.add(st.get("to"))
    tap.check(probes == {"alice@localhost", "bob@localhost"},
              "after a reconnect the users are probed again", probes)
    cw.close()
    if conn:
        conn.close()


def test_wrong_secret():
    srv = FakeServer(secret="the-right-one")
    cw = Causeway(srv.port, secret="a-wrong-one").start()
    times = []
    t0 = time.time()
    for _ in range(3):
        conn = srv.accept(timeout=15)
        if conn is None:
            break
        times.append(time.time() - t0)
        conn.wait_closed(5)
        conn.close()
    gaps = [b - a for a, b in zip(times, times[1:])]
    log = cw.log_text()
    tap.check(len(times) == 3 and "not-authorized" in log and "secret" in log,
              "wrong secret: a clear error in the log", log[-1500:])
    tap.check(len(gaps) == 2 and gaps[0] >= 0.7 and gaps[1] >= 1.5 and cw.alive(),
              "wrong secret: retried with growing backoff, no tight loop "
              "(gaps %s)" % ["%.2f" % g for g in gaps])
    cw.close()
    srv.close()


def test_signals():
    srv = FakeServer()
    cw, conn = started(srv)
    # SIGHUP with a new log level and a new secret: reconnects with it.
    srv.secret = "rotated"
    cw.write_config(srv.port, secret="rotated")
    with open(cw.conf, "a") as f:
        f.write("keepalive = 1\n")
    cw.signal(signal.SIGHUP)
    new = srv.accept(timeout=10)
    tap.check(new is not None and new.handshake_ok and cw.wait_log("configuration reloaded"),
              "SIGHUP: a changed secret reconnects with the new one",
              cw.log_text()[-2000:])
    conn.close()
    conn = new
    # keepalive = 1: whitespace arrives while idle
    got = b""
    if conn:
        conn.sock.settimeout(3)
        try:
            got = conn.sock.recv(100)
        except OSError:
            pass
    tap.check(got.strip() == b"" and len(got) > 0,
              "whitespace keepalive on an idle stream")
    # A broken config on SIGHUP keeps the running one.
    with open(cw.conf, "a") as f:
        f.write("bogus_key = 1\n")
    cw.signal(signal.SIGHUP)
    tap.check(cw.wait_log("keeping the one that is running") and cw.alive(),
              "SIGHUP with a broken file keeps the running configuration")
    res = conn.iq("<ping xmlns='urn:xmpp:ping'/>", id_="after-bad-hup") if conn else None
    tap.check(res is not None and res.get("type") == "result",
              "the stream is untouched by the rejected reload")
    # SIGTERM: </stream:stream>, exit 0.
    cw.signal(signal.SIGTERM)
    closed = conn.wait_closed(5) if conn else False
    rc = cw.wait_exit(10)
    tap.check(closed and rc == 0, "SIGTERM closes the stream and exits 0 (rc=%r)" % rc,
              cw.log_text()[-1500:])
    cw.close()
    srv.close()


def test_operator_interface(tmp):
    rc, out, err = run_causeway(["--version"])
    tap.check(rc == 0 and out.startswith("causeway "), "--version")

    good = os.path.join(tmp, "good.conf")
    with open(good, "w") as f:
        f.write("[causeway]\ndatabase = %s/x.db\n\n[component irc.example.org]\n"
                "backend = irc\nsecret = s\n" % tmp)
    rc, out, err = run_causeway(["-c", good, "--check-config"])
    tap.check(rc == 0, "--check-config on a good file exits 0", out + err)

    bad = os.path.join(tmp, "bad.conf")
    with open(bad, "w") as f:
        f.write("[causeway]\n"                    # 1
                "log_level = loud\n"              # 2
                "\n"                              # 3
                "[component irc.example.org]\n"   # 4
                "backend = irc\n"                 # 5
                "colour = blue\n"                 # 6
                "\n"                              # 7
                "[component irc.example.org]\n"   # 8
                "backend = irc\n"                 # 9
                "secret = x\n"                    # 10
                "[component mail.example.org]\n"  # 11
                "backend = email\n"               # 12
                "allow = not a domain!\n"         # 13
                "secret = m\n"                    # 14
                "[component sms.example.org]\n"   # 15
                "backend = sms\n")                # 16
    rc, out, err = run_causeway(["-c", bad, "--check-config"])
    lines = [l for l in out.splitlines() if l.startswith(bad + ":")]
    want = {2: "log_level", 6: "colour", 8: "duplicate", 4: "secret", 15: "secret"}
    found = {ln: any(l.startswith("%s:%d:" % (bad, ln)) and key in l for l in lines)
             for ln, key in want.items()}
    tap.check(rc == 1 and all(found.values()),
              "--check-config reports every error as FILE:LINE (unknown key, "
              "duplicate section, missing secret, bad value)", out + err)
    tap.check(any(":13:" in l and "allow" in l for l in lines),
              "--check-config rejects a malformed allow entry", out)

    rc, out, err = run_causeway(["-c", os.path.join(tmp, "missing.conf")])
    tap.check(rc != 0 and "missing.conf" in (out + err),
              "a missing config file is named in the error")

    # A read-only database: clear error, non-zero exit, file untouched.
    ro = tempfile.mkdtemp(prefix="cw-ro-")
    dbp = os.path.join(ro, "causeway.db")
    con = sqlite3.connect(dbp)
    con.execute("CREATE TABLE t(x)")
    con.commit()
    con.close()
    os.chmod(dbp, 0o400)
    before = open(dbp, "rb").read()
    conf = os.path.join(ro, "c.conf")
    with open(conf, "w") as f:
        f.write("[causeway]\ndatabase = %s\n[component irc.example.org]\n"
                "backend = irc\nsecret = s\nport = 1\n" % dbp)
    rc, out, err = run_causeway(["-c", conf])
    tap.check(rc != 0 and "causeway.db" in err and open(dbp, "rb").read() == before,
              "a read-only database: clear error, exit non-zero, untouched", err)

    with open(dbp, "wb") as f:
        f.write(b"this is not a database" * 100)
    os.chmod(dbp, 0o600)
    before = open(dbp, "rb").read()
    rc, out, err = run_causeway(["-c", conf])
    tap.check(rc != 0 and open(dbp, "rb").read() == before,
              "a corrupted database: exit non-zero, untouched", err)

    fresh = os.path.join(ro, "fresh.db")
    with open(conf, "w") as f:
        f.write("[causeway]\ndatabase = %s\n[component irc.example.org]\n"
                "backend = irc\nsecret = s\nport = 1\n" % fresh)
    srv = FakeServer(domain="irc.example.org", secret="s")
    with open(conf, "w") as f:
        f.write("[causeway]\ndatabase = %s\nkey_file = %s/k\n"
                "[component irc.example.org]\n"
                "backend = irc\nsecret = s\nport = %d\n" % (fresh, ro, srv.port))
    cw = Causeway(srv.port, tmp=ro)
    cw.conf = conf
    cw.start()
    conn = srv.accept()
    mode = os.stat(fresh).st_mode & 0o777 if os.path.exists(fresh) else None
    tap.check(conn is not None and mode == 0o600,
              "the database is created with mode 0600 (%s)" % (oct(mode) if mode else None))
    cw.close()
    srv.close()


def main():
    tmp = tempfile.mkdtemp(prefix="cw-comp-")
    srv = FakeServer()
    cw, conn = started(srv)
    try:
        test_services(srv, cw, conn)
        test_routing_rules(srv, cw, conn)
        conn = test_hostile(srv, cw, conn)
        conn = test_backoff_and_restart(srv, cw, conn)
    finally:
        cw.close()
        srv.close()
    test_reannounce(tmp, FakeServer())
    test_wrong_secret()
    test_signals()
    test_operator_interface(tmp)
    return tap.done()


if __name__ == "__main__":
    sys.exit(main())
