#!/usr/bin/python3
"""End-to-end: a slow mail server costs only its own user (issue 12,
item 4).  Prosody, causeway's email backend with timeout = 5, and three
servers from fakeimap.py: one IMAP server that sends its greeting one
byte every 2 s (so no single wait ever reaches the timeout), a normal
IMAP server and an SMTP server.

Checked:
  - four JIDs registering against the slow server at once each get an
    error within their own timeout (a total deadline per operation, not
    per wait), and meanwhile a fifth JID's registration against the
    normal servers completes within its own timeout;
  - registration checks are rate-limited per JID and per mail domain
    (register_checks_per_jid, register_checks_per_domain): the check
    beyond the limit is refused at once with resource-constraint and a
    text naming the limit, without touching any server.

  CAUSEWAY_BIN=build/causeway /usr/bin/python3 tests/e2e/test_email_fairness.py
"""

import asyncio
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cwtest                                   # noqa: E402
from cwtest import Causeway, Client, Prosody   # noqa: E402
from fakeimap import FakeImap, FakeSmtp         # noqa: E402
from mailenv import make_cert                   # noqa: E402

DOMAIN = "mail.localhost"
HANDSHAKE = r"mail\.localhost: handshake accepted"
NS_REGISTER = "jabber:iq:register"
NS_DATA = "jabber:x:data"
STANZAS = "{urn:ietf:params:xml:ns:xmpp-stanzas}"


def form(fields):
    x = "".join("<field var='%s'><value>%s</value></field>" % (k, v)
                for k, v in [("FORM_TYPE", NS_REGISTER)] + list(fields))
    return ("<query xmlns='%s'><x xmlns='%s' type='submit'>%s</x></query>"
            % (NS_REGISTER, NS_DATA, x))


def fields(email, imap_port, smtp_port):
    return [("email", email), ("imap_host", "localhost"),
            ("imap_port", imap_port), ("imap_security", "tls"),
            ("imap_user", email.split("@")[0]), ("imap_password", "pw"),
            ("smtp_host", "localhost"), ("smtp_port", smtp_port),
            ("smtp_security", "starttls")]


def condition(res):
    if res is None or res.type != "error":
        return None
    err = res.xml.find("{jabber:client}error")
    if err is None:
        return None
    for c in err:
        if c.tag.startswith(STANZAS) and not c.tag.endswith("}text"):
            return c.tag[len(STANZAS):]
    return None


def text(res):
    t = res.xml.find("{jabber:client}error/%stext" % STANZAS) \
        if res is not None and res.xml is not None else None
    return t.text if t is not None else ""


def register_all(clients_forms, timeout=60):
    """Sends each (client, form) registration at once; returns
    [(IqResult, seconds until the answer)] in the same order."""
    from slixmpp.exceptions import IqError, IqTimeout
    from xml.etree import ElementTree as ET
    loop = cwtest.event_loop()

    async def one(cl, payload, delay):
        await asyncio.sleep(delay)
        iq = cl.xmpp.Iq(stype="set", sto=DOMAIN)
        iq.append(ET.fromstring(payload))
        t0 = time.monotonic()
        try:
            r = await iq.send(timeout=timeout)
            res = cwtest.IqResult(r["type"], r.xml)
        except IqError as e:
            res = cwtest.IqResult("error", e.iq.xml)
        except IqTimeout:
            res = cwtest.IqResult("timeout")
        return res, time.monotonic() - t0

    async def run():
        return await asyncio.gather(*[one(cl, p, d) for cl, p, d in
                                      clients_forms])
    return loop.run_until_complete(run())


def start_causeway(tap, server, ca, extra=None):
    opts = {"linger": 0, "ca_file": ca, "timeout": 5}
    opts.update(extra or {})
    cw = Causeway(server, tap=tap, name="causeway-fair", backend="email",
                  domain=DOMAIN, options=opts,
                  general={"destinations_allow": "127.0.0.0/8"})
    cw.start()
    return cw if tap.ok(cw.wait_for(HANDSHAKE, 1, 20),
                        "causeway attached as %s" % DOMAIN,
                        diag=cwtest.tail(cw.logfile)) else None


def fairness(tap, server, ca, slow, good, smtp):
    cw = start_causeway(tap, server, ca)
    if cw is None:
        return
    clients = []
    for name in ("slow1", "slow2", "slow3", "slow4", "legit"):
        c = Client(server.c2s_port, "%s@localhost" % name, "pw-" + name)
        if not tap.ok(c.login(), "%s logs in" % name):
            return
        clients.append(c)
    jobs = [(c, form(fields("%s@slow.test" % c.jid.split("@")[0],
                            slow.port, smtp.port)), 0) for c in clients[:4]]
    # The legitimate one comes once the four hold whatever they hold.
    jobs.append((clients[4], form(fields("legit@fast.test", good.port,
                                         smtp.port)), 1.0))
    res = register_all(jobs)
    slow_times = [t for _, t in res[:4]]
    tap.ok(all(r.type == "error" for r, _ in res[:4]) and
           max(slow_times) <= 5 + 2.5,
           "four registrations against a server sending a byte every 2 s "
           "each fail within their 5 s timeout (%s s)" %
           ", ".join("%.1f" % t for t in slow_times),
           diag=[(r.type, text(r)) for r, _ in res[:4]])
    tap.ok(all("5 s" in text(r) for r, _ in res[:4]),
           "... with a text that names the timeout (%s)" % text(res[0][0]))
    r, t = res[4]
    tap.ok(r.type == "result" and t < 5,
           "meanwhile a registration against a working server completes "
           "within its own timeout (%.1f s)" % t, diag=(r.type, text(r)))
    tap.ok(cw.alive(), "causeway alive")
    for c in clients:
        c.close()
    cw.stop()


def rate_limits(tap, server, ca, slow, good, smtp):
    cw = start_causeway(tap, server, ca, {"register_checks_per_jid": 3,
                                          "register_checks_per_domain": 4})
    if cw is None:
        return
    closed = cwtest.free_ports(1)[0]   # nothing listens there: fails fast
    c = Client(server.c2s_port, "rl@localhost", "pw-rl")
    if not tap.ok(c.login(), "rl logs in"):
        return
    got = []
    for i in range(4):
        res = register_all([(c, form(fields("rl@limit%d.test" % i, closed,
                                            smtp.port)), 0)])
        got.append(res[0])
    conds = [condition(r) for r, _ in got]
    tap.ok(conds[:3] == ["remote-server-not-found"] * 3,
           "three checks by one JID reach the (absent) server", diag=conds)
    r, t = got[3]
    tap.ok(conds[3] == "resource-constraint" and t < 1 and
           "3" in text(r),
           "the fourth within the window is refused at once with "
           "resource-constraint (%s: %s)" % (conds[3], text(r)))
    n_acc = len(good.accepted)
    others = []
    for i in range(5):
        o = Client(server.c2s_port, "dom%d@localhost" % i, "pw-dom%d" % i)
        if not tap.ok(o.login(), "dom%d logs in" % i):
            return
        others.append(o)
    res = register_all([(o, form(fields("dom%d@crowded.test" % i, good.port,
                                        smtp.port)), 0.3 * i)
                        for i, o in enumerate(others)])
    conds = [condition(r) for r, _ in res]
    tap.ok(conds[:4] == [None] * 4 and [r.type for r, _ in res[:4]] ==
           ["result"] * 4,
           "four JIDs register addresses of one mail domain", diag=conds)
    tap.ok(conds[4] == "resource-constraint" and "4" in text(res[4][0]),
           "the fifth for that domain within the window is refused with "
           "resource-constraint (%s)" % text(res[4][0]))
    tap.ok(len(good.accepted) - n_acc == 4,
           "... and causeway did not connect for it (%d connections)"
           % (len(good.accepted) - n_acc))
    for o in others + [c]:
        o.close()
    cw.stop()


def run_server(tap, cls):
    t0 = time.monotonic()
    certdir = cwtest.make_tempdir("cwtest-certs-")
    cert, key, trust = make_cert(certdir, "good")
    slow = FakeImap(cert, key)
    slow.mode = "trickle"
    good = FakeImap(cert, key)
    smtp = FakeSmtp(cert, key)
    for s in (slow, good, smtp):
        s.start()
    server = cls(domain=DOMAIN, tap=tap)
    try:
        server.start()
        for u in ("slow1", "slow2", "slow3", "slow4", "legit", "rl") + \
                tuple("dom%d" % i for i in range(5)):
            server.register(u, "pw-" + u)
        fairness(tap, server, trust, slow, good, smtp)
        rate_limits(tap, server, trust, slow, good, smtp)
    except Exception as e:
        cwtest.mark_failed()
        tap.bail("%s: unexpected exception: %s" % (cls.name, e), e)
    finally:
        for s in (slow, good, smtp):
            s.stop()
        cwtest.stop_all(tap, cls.name, server, t0)


def main():
    return cwtest.main_per_server("email fairness", run_server,
                                  requires=("prosody",))


if __name__ == "__main__":
    sys.exit(main())
