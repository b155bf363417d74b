#!/usr/bin/python3
"""End-to-end: history of IRC channels and who may read it, through a
real XMPP server and a real InspIRCd, with a raw IRC client (the bot).

What is checked, for Prosody and ejabberd (each skipped when not
installed):
- A channel nobody keeps persistent is archived: the bot's lines reach
  alice and carol, both in #plain, with one stanza-id each (the same for
  both), and the archive holds each line once.
- A join gets recent history honouring <history maxstanzas/>, with the
  live stanza-ids and XEP-0203 delays, and only lines said while the
  user was in the channel (not those said while she was out).
- MAM on the room pages with XEP-0059 (count, first/last, complete) and
  gives each user only the lines of her own stretches of membership.
- Issue 12 item 1: carol marks a channel persistent with the
  irc-channel command without joining it (a keyed channel alice keeps):
  MAM is refused, and the room's disco#info to carol is the same as for
  a channel nobody ever joined.  Carol kicked from #plain (kept
  persistent by alice) by the bot, then marking it persistent with
  irc-channel, reads nothing said after the kick.
- The IRC channel list (disco#items on server@gw) pages with XEP-0059.

  /usr/bin/python3 tests/e2e/test_irc_history.py [prosody|ejabberd]
Environment: CAUSEWAY_BIN, CWTEST_KEEP=1.  Needs inspircd; output is TAP.
"""

import os
import sqlite3
import sys
import time
from xml.etree import ElementTree as ET

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cwtest                                   # noqa: E402
import test_irc as ti                           # noqa: E402
from cwtest import Causeway, InspIRCd           # noqa: E402

SRV = ti.SRV
DOMAIN = ti.DOMAIN
NS_MUC = ti.NS_MUC
NS_SID = ti.NS_SID
NS_DELAY = ti.NS_DELAY
DISCO_INFO = "http://jabber.org/protocol/disco#info"
WAIT = ti.WAIT


def join_with(user, room, nick, extra=""):
    p = user.xmpp.make_presence(pto="%s/%s" % (room, nick))
    p.append(ET.fromstring("<x xmlns='%s'>%s</x>" % (NS_MUC, extra)))
    p.send()


def sid_of(el):
    x = el.find("{%s}stanza-id" % NS_SID) if el is not None else None
    return x.get("id") if x is not None else None


def history_in(user, room, since):
    """The history messages of a join sequence (before the subject)."""
    out = []
    for kind, el in user.got[since:]:
        if kind != "message" or ti.bare(el.get("from")) != room.lower():
            continue
        if el.find(ti.C + "subject") is not None:
            break
        if el.find("{%s}delay" % NS_DELAY) is not None:
            out.append((sid_of(el), el.findtext(ti.C + "body")))
    return out


def rows_of(cw, room):
    db = sqlite3.connect(os.path.join(cw.dir, "causeway.db"), timeout=5)
    try:
        return [r[0] for r in db.execute(
            "SELECT a.body FROM archive a, archive_rooms r WHERE "
            "a.room = r.id AND r.room = ? ORDER BY a.id", (room,))]
    finally:
        db.close()


def mam(user, room, qid, **kw):
    m = user.mark()
    r = user.iq(room, ti.mam_query(qid, **kw), "set")
    user.pump(0.3)
    return r, ti.mam_results(user, qid, m)


def joined(ctx, user, room, nick, extra=""):
    m = user.mark()
    join_with(user, room, nick, extra)
    me = user.wait(lambda k, el: ti.presence_error(room)(k, el) or
                   ti.self_presence(room)(k, el), 15, m)
    user.wait(lambda k, el: k == "message" and
              ti.bare(el.get("from")) == room.lower() and
              el.find(ti.C + "subject") is not None, WAIT, m)
    return m if me is not None and me.get("type") != "error" else None


def left(user, room, nick):
    m = user.mark()
    user.leave(room, nick)
    user.wait(ti.self_presence(room, "unavailable"), WAIT, m)


def bot_says(ctx, users, room, lines):
    """The bot says lines in room; {user: [(sid, body)]} as received."""
    marks = [u.mark() for u in users]
    for line in lines:
        ctx.bot.send("PRIVMSG %s :%s" % (room.split("%")[0], line))
    got = {}
    for u, m in zip(users, marks):
        u.wait(ti.groupchat(room, "bot", lines[-1]), WAIT, m)
        got[u] = [(sid_of(el), el.findtext(ti.C + "body"))
                  for k, el in u.got[m:]
                  if ti.groupchat(room, "bot", el.findtext(ti.C + "body"))(
                      k, el) and el.findtext(ti.C + "body") in lines]
    return got


def check_plain(ctx, carol):
    a, cw = ctx.alice, ctx.cw
    room = ti.room_jid("#plain")
    if not ctx.bot.join("#plain"):
        ctx.ok(False, "the bot joins #plain", diag=ctx.bot.dump())
        return False
    if not ctx.ok(joined(ctx, a, room, "alice") is not None,
                  "alice joins #plain (not persistent)"):
        return False
    live_a = bot_says(ctx, [a], room, ["p1", "p2", "p3"])[a]
    m = joined(ctx, carol, room, "carol", "<history maxstanzas='20'/>")
    ctx.ok(m is not None and history_in(carol, room, m) == [],
           "carol joins #plain: no history of what was said before she "
           "was in", diag=m and history_in(carol, room, m))
    both = bot_says(ctx, [a, carol], room, ["p4"])
    live_a += both[a]
    a.pump(1.0)     # past the archive's batch interval
    rows = rows_of(cw, "#plain%" + SRV)
    ctx.ok([b for _, b in live_a] == ["p1", "p2", "p3", "p4"] and
           all(s for s, _ in live_a) and both[carol] == both[a] and
           rows == ["p1", "p2", "p3", "p4"],
           "a channel nobody keeps persistent is archived, each line once "
           "(rows %r), and alice's and carol's live copies of p4 carry "
           "the same stanza-id" % rows,
           diag="alice %r carol %r" % (both[a], both[carol]))

    left(a, room, "alice")
    bot_says(ctx, [carol], room, ["p5 while alice is out"])
    m = joined(ctx, a, room, "alice", "<history maxstanzas='3'/>")
    hist = history_in(a, room, m) if m is not None else None
    ctx.ok(hist == live_a[1:],
           "alice rejoins with maxstanzas=3: p2, p3, p4 with their live "
           "stanza-ids and delays, not the line said while she was out",
           diag="history %r, live %r" % (hist, live_a))

    r, res = mam(a, room, "h1", max_=2)
    complete, count, first, last = ti.fin_of(r)
    r2, res2 = mam(a, room, "h2", max_=2, after=last)
    c2, n2, _, _ = ti.fin_of(r2)
    ctx.ok([(x[0], x[2]) for x in res] == live_a[:2] and not complete and
           count == "4" and first == live_a[0][0] and
           [(x[0], x[2]) for x in res2] == live_a[2:] and c2 and n2 == "4",
           "alice's MAM: pages of 2 over her 4 lines (count 4, first/last, "
           "complete on the second), the live ids, not p5",
           diag="%r %r %r" % (res, res2, ti.fin_of(r)))
    r, res = mam(carol, room, "h3")
    ctx.ok(r.type == "result" and [x[2] for x in res] ==
           ["p4", "p5 while alice is out"] and ti.fin_of(r)[1] == "2",
           "carol's MAM: only p4 and p5, said while she was in",
           diag="%s %r" % (r, res))
    left(a, room, "alice")
    return True


def check_secret(ctx, carol):
    """A keyed channel alice keeps: carol marks it persistent without
    joining; she reads nothing and disco#info tells her nothing."""
    a = ctx.alice
    room = ti.room_jid("#secret")
    bot = ctx.bot
    if not bot.join("#secret"):
        ctx.ok(False, "the bot joins #secret", diag=bot.dump())
        return
    bot.send("MODE #secret +k sesame")
    m = a.mark()
    join_with(a, room, "alice", "<password>sesame</password>")
    ok = a.wait(ti.self_presence(room), 15, m) is not None
    ok = ok and a.iq(room, ti.owner_form(persistent="1"), "set").type == \
        "result"
    ctx.ok(ok, "alice joins the keyed #secret and keeps it persistent")
    bot_says(ctx, [a], room, ["the secret is 42"])
    done, ntype, note = ti.run_command(carol, "irc-channel", [
        ("channel", "#secret%" + SRV), ("persistent", "yes")])
    ctx.ok(done, "carol marks #secret persistent with irc-channel without "
           "joining it", diag=note)
    r, res = mam(carol, room, "s1")
    ctx.ok(r.type == "error" and r.error_condition == "forbidden" and
           not res, "carol's MAM on #secret: forbidden, nothing of it",
           diag="%s %r" % (r, res))
    feats = []
    for chan in ("#secret", "#nobodyhere"):
        r = carol.iq(ti.room_jid(chan), "<query xmlns='%s'/>" % DISCO_INFO)
        feats.append(sorted(f.get("var") for f in r.findall(
            "{%s}query/{%s}feature" % (DISCO_INFO, DISCO_INFO))))
    ctx.ok(feats[0] == feats[1] and ti.NS_MAM in feats[0],
           "disco#info of #secret (kept by alice) and of a channel nobody "
           "joined, asked by carol: the same features",
           diag="%r" % feats)
    ti.run_command(carol, "irc-channel", [("channel", "#secret%" + SRV),
                                          ("persistent", "no")])
    a.iq(room, ti.owner_form(persistent="0"), "set")
    left(a, room, "alice")
    bot.send("PART #secret")


def check_list_paging(ctx):
    """The channel list of the IRC server (disco#items on server@gw,
    IRC LIST) in pages of one (XEP-0059)."""
    items_ns = "http://jabber.org/protocol/disco#items"
    rsm = "http://jabber.org/protocol/rsm"

    def page(set_xml):
        r = ctx.alice.iq("%s@%s" % (SRV, DOMAIN), "<query xmlns='%s'>"
                         "<set xmlns='%s'>%s</set></query>"
                         % (items_ns, rsm, set_xml))
        jids = [i.get("jid") for i in r.findall(".//{%s}item" % items_ns)]
        st = r.find("{%s}query/{%s}set" % (items_ns, rsm))
        info = {c.tag.split("}")[1]: c.text for c in st} \
            if st is not None else {}
        return r.type, jids, info
    for chan in ("#list-a", "#list-b"):
        ctx.bot.join(chan)
    t1, p1, i1 = page("<max>1</max>")
    t2, p2, i2 = page("<max>1</max><after>%s</after>" % (p1 or ["x"])[0])
    t3, p3, i3 = page("<max>1</max><before/>")
    count = int(i1.get("count") or 0)
    for chan in ("#list-a", "#list-b"):
        ctx.bot.send("PART %s" % chan)
    ctx.ok(t1 == t2 == t3 == "result" and len(p1) == len(p2) == 1 and
           len(p3) == 1 and p1[0] < p2[0] < p3[0] and count >= 3 and
           i1.get("first") == p1[0] and i3.get("last") == p3[0],
           "the IRC channel list in pages of one: the first, the one after "
           "it, the last (count %d)" % count,
           diag="%r %r %r" % ((t1, p1, i1), (t2, p2, i2), (t3, p3, i3)))


def check_kicked(ctx, carol):
    """Kicked from #plain (which alice keeps persistent, so it was
    archived before this version too), carol reads nothing said after
    the kick, even after marking the channel persistent with
    irc-channel."""
    a, bot = ctx.alice, ctx.bot
    room = ti.room_jid("#plain")
    ok = joined(ctx, a, room, "alice") is not None and a.iq(
        room, ti.owner_form(persistent="1"), "set").type == "result"
    ctx.ok(ok, "alice back in #plain, keeping it persistent")
    check_list_paging(ctx)
    bot_says(ctx, [a, carol], room, ["k0 before the kick"])
    m = carol.mark()
    bot.send("KICK #plain carol :out")
    kicked = carol.wait(lambda k, el: ti.self_presence(
        room, "unavailable", "307")(k, el), WAIT, m)
    bot_says(ctx, [a], room, ["said after the kick"])
    done, _, note = ti.run_command(carol, "irc-channel", [
        ("channel", "#plain%" + SRV), ("persistent", "yes")])
    r, res = mam(carol, room, "k1")
    bodies = [x[2] for x in res]
    ctx.ok(kicked is not None and done and
           "said after the kick" not in bodies and
           "k0 before the kick" in bodies,
           "carol kicked, then marking #plain persistent: her MAM holds "
           "what was said while she was in, nothing after the kick",
           diag="%s %r" % (r, bodies))
    ti.run_command(carol, "irc-channel", [("channel", "#plain%" + SRV),
                                          ("persistent", "no")])
    a.iq(room, ti.owner_form(persistent="0"), "set")
    left(a, room, "alice")


def run_server(tap, cls):
    label = cls.name
    t_server = time.monotonic()
    server = cls(domain=DOMAIN, tap=tap)
    ircd = cw = alice = carol = ctx = None
    try:
        ircd = InspIRCd(tap=tap)
        ircd.start()
        server.start()
        password = "pw-" + os.urandom(4).hex()
        carol_password = "pw-" + os.urandom(4).hex()
        server.register("alice", password)
        server.register("carol", carol_password)
        cw = Causeway(server, tap=tap, name="causeway-%s" % label,
                      backend="irc", options={"linger": 0},
                      sections=[("irc-server %s" % SRV,
                                 dict(port=ircd.port, tls="no",
                                      throttle_burst=10,
                                      throttle_rate=100))])
        cw.start()
        if not tap.ok(cw.wait_for(ti.HANDSHAKE, 1, 20),
                      "%s: causeway attached as %s" % (label, DOMAIN)):
            return
        alice = ti.User(server.c2s_port, "alice@localhost", password)
        carol = ti.User(server.c2s_port, "carol@localhost", carol_password)
        if not tap.ok(alice.login() and carol.login(),
                      "%s: alice and carol log in" % label):
            return
        ctx = ti.Ctx(tap, label, server, ircd, cw, alice)
        ctx.bot = ti.start_bot(ctx, "bot", ())
        # Until joining needs no registration, both register first.
        form = ("<query xmlns='%s'><x xmlns='%s' type='submit'><field var="
                "'FORM_TYPE'><value>%s</value></field></x></query>"
                % (ti.NS_REGISTER, ti.NS_DATA, ti.NS_REGISTER))
        for u in (alice, carol):
            u.iq(DOMAIN, form, "set")
        if check_plain(ctx, carol):
            check_kicked(ctx, carol)
        check_secret(ctx, carol)
        tap.ok(cw.alive(), "%s: causeway stayed up" % label)
    except Exception as e:
        cwtest.mark_failed()
        tap.bail("%s: unexpected exception: %s" % (label, e), e)
    finally:
        if carol is not None:
            carol.close()
        cwtest.stop_all(tap, label, server, t_server, None,
                        ctx.bot if ctx is not None else None, alice, cw,
                        None, ircd)


def main():
    return cwtest.main_per_server('IRC history tests', run_server,
                                  requires=('inspircd',))


if __name__ == "__main__":
    sys.exit(main())
