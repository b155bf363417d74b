#!/usr/bin/python3
"""End-to-end: IRC rooms as a biboumi user's client saw them, through a
real XMPP server (Prosody, ejabberd) and a real InspIRCd 3, with raw IRC
clients as the other people in the channels.

alice is logged in twice (resources a and b; a third, c, stays out of
the rooms).  Checked, for each XMPP server:
  * the join: occupants with XEP-0045 roles from IRC prefixes (op:
    moderator/admin, voice: participant/member) and the contact JID
    (nick%server) as their item's jid, self-presence 110+100,
    the subject from ROOM/SETTER with the time of RPL_TOPICWHOTIME (333)
    as a XEP-0203 delay; a channel without a topic ends the join with an
    empty <subject/> from the room;
  * reflection: alice's message reaches both resources with her id, her
    <origin-id/> and the room's <stanza-id/>, once; a body of two lines is
    two PRIVMSGs and two reflections (origin-id on each); /me and CTCP
    ACTION both ways, also as the second line of a message;
  * a subject change before alice is op: the server's 482 as an error
    from the room;
  * muc#admin (alice made op by the bot): a subject of two lines becomes
    a one-line TOPIC; role none is a KICK with the reason and 307 to both
    resources; roles visitor/participant/moderator are -v/+v/+o;
    affiliation member is +v (and -o), outcast is +b nick!*@* and a KICK
    (the nick cannot come back: 474), none lifts the ban, admin is +o,
    owner (no founder mode on InspIRCd) is not-allowed; a ban by the jid
    of the occupant's item (as clients send it) works the same;
  * a join while joined gets the occupants, self-presence and subject
    again, also with another nick (the room's nick with 210, no NICK on
    IRC: a reconnecting client's configured nick); XEP-0410 self-ping answers each joined resource, and
    not-acceptable to one that is not in the room (or left it);
  * XEP-0106: #a@b and #c:d/e as #a\\40b and #c\\3ad\\2fe round-trip;
  * joins and leaves sent together before the IRC link is up (carol's
    first contact) are carried out in order, several channels at once;
  * names: disco#info on a room reads "#room on 127.0.0.1", the
    muc#traffic node is answered, a private message from the bot carries
    the XEP-0172 nick "bot".
A scripted server (PrefixIrcd, 127.0.0.4, PREFIX=(qaohv)~&@%+) checks
the rank mapping biboumi used (founder and protected: owner; op: admin;
halfop: moderator/member; voice: participant/member), a MODE +h as it
happens, a topic set by a server name (the subject then comes from the
room itself, still with its delay), and a 333 whose time overflows (no
delay).

Until registration is optional, alice and carol register with an empty
form first (the helper of test_irc.py).

  /usr/bin/python3 tests/e2e/test_irc_rooms.py [prosody|ejabberd]
Needs inspircd and openssl; output is TAP.
"""

import calendar
import os
import sys
import time

sys.dont_write_bytecode = True                  # no __pycache__ in the tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cwtest                                   # noqa: E402
import test_irc as ti                           # noqa: E402
from cwtest import Causeway, InspIRCd, IrcClient, irc_parse  # noqa: E402
from test_irc import (C, DOMAIN, HANDSHAKE, NS_DELAY, NS_MUC,  # noqa: E402
                      NS_SID, SRV, WAIT, User, bare, groupchat, irc,
                      muc_codes, muc_item, nick_jid, occupant, resource,
                      room_jid, self_presence, xml_str)

SRV_RANKS = ti.SRV_FAKE           # PrefixIrcd
NS_NICK = "http://jabber.org/protocol/nick"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_MUC_ADMIN = "http://jabber.org/protocol/muc#admin"
NS_PING = "urn:xmpp:ping"
TOPIC_TIME = 1700000000           # PrefixIrcd's 333


class PrefixIrcd(ti.FakeIrcd):
    """test_irc.py's scripted server (on its address; this script has no
    other use for it) with five ranks instead: registers anyone (no
    capabilities), answers a JOIN with the topic (332, 333 by a server
    name), NAMES of every rank and 366; send_all pushes lines."""

    def _serve(self, conn):
        client, user, buf = [conn, None], False, b""
        while True:
            try:
                data = conn.recv(4096)
            except OSError:
                data = b""
            if not data:
                break
            buf += data
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                _, cmd, params = irc_parse(raw.rstrip(b"\r").decode("utf-8",
                                                                    "replace"))
                nick = client[1]
                if cmd == "CAP" and params[:1] == ["LS"]:
                    self._send(conn, ":ranks CAP * LS :")
                elif cmd == "NICK" and params:
                    client[1] = params[0]
                elif cmd == "USER":
                    user = True
                elif cmd == "PING":
                    self._send(conn, ":ranks PONG ranks :%s" % params[-1])
                elif cmd == "JOIN" and params and nick:
                    ch = params[0]
                    # #odd: a 333 with a time no clock has reached.
                    who = ("x*y!u@h 99999999999999999999999" if ch == "#odd"
                           else "irc.ranks.example %d" % TOPIC_TIME)
                    for line in (":%s!u@ranks JOIN %s" % (nick, ch),
                                 ":ranks 332 %s %s :rank and file" % (nick, ch),
                                 ":ranks 333 %s %s %s" % (nick, ch, who),
                                 ":ranks 353 %s = %s :~founder &prot @op %%half "
                                 "+voice plain %s" % (nick, ch, nick),
                                 ":ranks 366 %s %s :End of /NAMES list."
                                 % (nick, ch)):
                        self._send(conn, line)
                if client[1] and user and client not in self.clients:
                    with self.lock:
                        self.clients.append(client)
                    for line in (":ranks 001 %s :Welcome" % client[1],
                                 ":ranks 005 %s CHANTYPES=# PREFIX=(qaohv)"
                                 "~&@%%+ CASEMAPPING=ascii :are supported"
                                 % client[1],
                                 ":ranks 422 %s :No MOTD" % client[1]):
                        self._send(conn, line)
        with self.lock:
            if client in self.clients:
                self.clients.remove(client)
        conn.close()


def send_raw(user, xml):
    user.xmpp.send_raw(xml)


def groupchat_with_ids(user, room, body, mid, origin):
    send_raw(user, "<message to='%s' type='groupchat' id='%s'><body>%s</body>"
             "<origin-id xmlns='%s' id='%s'/></message>"
             % (room, mid, body.replace("&", "&amp;").replace("<", "&lt;"),
                NS_SID, origin))


def subject_of(room):
    def pred(kind, el):
        return kind == "message" and bare(el.get("from")) == room.lower() \
            and el.get("type") == "groupchat" \
            and el.find(C + "subject") is not None
    return pred


def own_line(room, body=None):
    def pred(kind, el):
        b = el.find(C + "body")
        return kind == "message" and bare(el.get("from")) == room.lower() \
            and resource(el.get("from")) == "alice" \
            and el.get("type") == "groupchat" and b is not None \
            and (body is None or b.text == body)
    return pred


def ids_of(el):
    """(id, origin-id, [(stanza-id, by)]) of a message."""
    o = el.find("{%s}origin-id" % NS_SID)
    return (el.get("id"), o.get("id") if o is not None else None,
            [(s.get("id"), s.get("by"))
             for s in el.findall("{%s}stanza-id" % NS_SID)])


def stamp_of(el):
    d = el.find("{%s}delay" % NS_DELAY) if el is not None else None
    if d is None:
        return None
    return d.get("stamp"), d.get("from")


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def role_affil(el):
    it = muc_item(el) if el is not None else None
    return (it.get("role"), it.get("affiliation")) if it is not None else None


def admin(user, room, **attrs):
    reason = attrs.pop("reason", None)
    return user.iq(room, "<query xmlns='%s'><item %s>%s</item></query>"
                   % (NS_MUC_ADMIN, " ".join("%s='%s'" % kv for kv in
                                             attrs.items()),
                      "<reason>%s</reason>" % reason if reason else ""), "set")


def join_sequence(user, room, m0, timeout=15):
    """Waits for the subject that ends a join; returns (subject, self)."""
    s = user.wait(subject_of(room), timeout, m0)
    me = user.find(self_presence(room), m0)
    return s, me


def timed_join(user, room, nick="alice"):
    """Joins and waits for the subject: (mark, subject, self, seconds)."""
    m0 = user.mark()
    t0 = time.monotonic()
    user.join(room, nick)
    subj, me = join_sequence(user, room, m0)
    return m0, subj, me, time.monotonic() - t0


def check_join(ctx, a, b, t_topic):
    bot = ctx.bot
    room = room_jid("#room")
    b0 = bot.mark()
    m0, subj, me, took = timed_join(a, room)
    if not ctx.ok(me is not None and subj is not None,
                  "alice/a joins #room: self-presence and subject (%.2f s)" % took,
                  diag="received:\n%s\ncauseway:\n%s" % (a.dump(m0), ctx.cw_lines())):
        return False
    ctx.ok({"110", "100"} <= muc_codes(me) and role_affil(me) ==
           ("participant", "none"),
           "self-presence with 110 and 100, participant/none", diag=xml_str(me))
    occ = {n: role_affil(a.find(occupant(room, n), m0))
           for n in ("bot", "voicy", "victim")}
    ctx.ok(occ == {"bot": ("moderator", "admin"),
                   "voicy": ("participant", "member"),
                   "victim": ("participant", "none")},
           "occupants from IRC prefixes: @bot moderator/admin, +voicy "
           "participant/member, victim participant/none", diag=repr(occ))
    bot_item = muc_item(a.find(occupant(room, "bot"), m0))
    ctx.ok(bot_item is not None and bot_item.get("jid") == nick_jid("bot"),
           "the bot's item carries a jid alice can write to: %s"
           % nick_jid("bot"), diag=xml_str(bot_item))
    st = stamp_of(subj)
    ctx.ok(resource(subj.get("from")) == "bot"
           and (subj.find(C + "subject").text or "") == "the bot's topic"
           and st is not None and st[1].lower() == room.lower()
           and abs(calendar.timegm(time.strptime(st[0], "%Y-%m-%dT%H:%M:%SZ"))
                   - t_topic) <= 2,
           "the subject comes from room/bot (the setter of 333) with its "
           "time as a delay (%s, set at %s)" % (st and st[0], iso(t_topic)),
           diag=xml_str(subj))
    ctx.ok(a.wait_irc(bot, irc("JOIN", nick="alice", target="#room"), WAIT, b0),
           "the bot sees alice JOIN #room")

    m1 = b.mark()
    b.join(room, "alice")
    subj_b, me_b = join_sequence(b, room, m1)
    ctx.ok(me_b is not None and subj_b is not None
           and b.find(occupant(room, "bot"), m1) is not None
           and "210" not in muc_codes(me_b)
           and (subj_b.find(C + "subject").text or "") == "the bot's topic",
           "alice/b joins too: occupants, self-presence, subject",
           diag="received:\n" + b.dump(m1))

    empty = room_jid("#empty")
    m0 = a.mark()
    a.join(empty, "alice")
    s, me = join_sequence(a, empty, m0)
    ctx.ok(s is not None and me is not None and s.get("from") == empty
           and (s.find(C + "subject").text or "") == ""
           and s.find(C + "body") is None and stamp_of(s) is None,
           "a channel without a topic: the join ends with an empty "
           "<subject/> from the room", diag="received:\n" + a.dump(m0))
    return True


def check_reflection(ctx, a, b):
    bot = ctx.bot
    room = room_jid("#room")
    ma, mb, b0 = a.mark(), b.mark(), bot.mark()
    t0 = time.monotonic()
    groupchat_with_ids(a, room, "hello all", "r1", "orig-r1")
    ra = a.wait(own_line(room, "hello all"), WAIT, ma)
    rb = b.wait(own_line(room, "hello all"), WAIT, mb)
    took = time.monotonic() - t0
    want = ("r1", "orig-r1")
    ok_ids = [x is not None and ids_of(x)[:2] == want and
              (room.lower(),) in [(by.lower(),) for _, by in ids_of(x)[2]]
              for x in (ra, rb)]
    ctx.ok(all(ok_ids), "alice/a's message is reflected to a and b with "
           "her id, her origin-id and the room's stanza-id (%.0f ms)"
           % (1000 * took),
           diag="a: %s\nb: %s" % (xml_str(ra), xml_str(rb)))
    a.pump(0.5)
    n = len([1 for k, e in a.got[ma:] if own_line(room, "hello all")(k, e)])
    lines = bot.find_all(irc("PRIVMSG", nick="alice", target="#room",
                             text="hello all"), b0)
    ctx.ok(n == 1 and len(lines) == 1, "one reflection to a, one PRIVMSG "
           "on IRC", diag="%d reflections, %d lines" % (n, len(lines)))

    ma, mb, b0 = a.mark(), b.mark(), bot.mark()
    groupchat_with_ids(a, room, "first line\nsecond line", "r2", "orig-r2")
    a.pump_until(lambda: b.find(own_line(room, "second line"), mb) is not None
                 and a.find(own_line(room, "second line"), ma) is not None, WAIT)
    got = bot.find_all(irc("PRIVMSG", nick="alice", target="#room"), b0)
    texts = [irc_parse(l)[2][-1] for _, l in got]
    ctx.ok(texts == ["first line", "second line"],
           "a body of two lines is two PRIVMSGs, in order", diag=repr(texts))
    for who, u, m in (("a", a, ma), ("b", b, mb)):
        refl = [e for k, e in u.got[m:] if own_line(room)(k, e)]
        got = [(e.find(C + "body").text,) + ids_of(e)[:2] for e in refl]
        ctx.ok(len(got) == 2 and got[0] == ("first line", "r2", "orig-r2")
               and got[1][0] == "second line" and got[1][1] not in (None, "r2")
               and got[1][2] == "orig-r2",
               "... and two reflections to %s: the first with the id, both "
               "with the origin-id" % who, diag=repr(got))

    ma, b0 = a.mark(), bot.mark()
    a.groupchat(room, "/me waves")
    ok_irc = a.wait_irc(bot, irc("PRIVMSG", nick="alice", target="#room",
                                 text="\x01ACTION waves\x01"), WAIT, b0)
    refl = a.wait(own_line(room, "/me waves"), WAIT, ma)
    ctx.ok(ok_irc and refl is not None, "/me waves: a CTCP ACTION on IRC, "
           "reflected as /me waves", diag="bot:\n%s" % bot.dump(b0))
    ma = a.mark()
    bot.send("PRIVMSG #room :\x01ACTION dances\x01")
    ctx.ok(a.wait(groupchat(room, "bot", "/me dances"), WAIT, ma) is not None,
           "the bot's ACTION reaches alice as /me dances",
           diag="received:\n" + a.dump(ma))
    b0 = bot.mark()
    a.groupchat(room, "hi\n/me bows")
    a.pump_until(lambda: len(bot.find_all(irc("PRIVMSG", nick="alice"),
                                          b0)) >= 2, WAIT)
    texts = [irc_parse(l)[2][-1] for _, l in
             bot.find_all(irc("PRIVMSG", nick="alice"), b0)]
    ctx.ok(texts == ["hi", "\x01ACTION bows\x01"],
           "\"hi\\n/me bows\": a PRIVMSG, then an ACTION", diag=repr(texts))


def check_admin(ctx, a, b, voicy):
    bot = ctx.bot
    room = room_jid("#room")
    ma = a.mark()
    a.xmpp.send_message(mto=room, msubject="not mine", mtype="groupchat")
    err = a.wait(lambda k, el: k == "message" and el.get("type") == "error"
                 and bare(el.get("from")) == room.lower(), WAIT, ma)
    ctx.ok(err is not None and ti.error_condition(err) == "forbidden",
           "a subject change before alice is op: the server's refusal "
           "(482) comes back as forbidden from the room",
           diag="received:\n" + a.dump(ma))
    ma = a.mark()
    bot.send("MODE #room +o alice")
    me = a.wait(lambda k, el: self_presence(room)(k, el)
                and role_affil(el) == ("moderator", "admin"), WAIT, ma)
    if not ctx.ok(me is not None, "the bot ops alice: her self-presence says "
                  "moderator/admin", diag="received:\n" + a.dump(ma)):
        return

    ma, mb, b0 = a.mark(), b.mark(), bot.mark()
    send_raw(a, "<message to='%s' type='groupchat'><subject>two&#13;&#10;"
             "lines</subject></message>" % room)
    ok_irc = a.wait_irc(bot, irc("TOPIC", nick="alice", target="#room",
                                 text="two lines"), WAIT, b0)
    s = b.wait(lambda k, el: subject_of(room)(k, el)
               and el.find(C + "subject").text == "two lines", WAIT, mb)
    ctx.ok(ok_irc and s is not None and resource(s.get("from")) == "alice",
           "a subject of two lines becomes TOPIC #room :two lines, and "
           "comes back from room/alice", diag="bot:\n%s\nb:\n%s"
           % (bot.dump(b0), b.dump(mb)))

    ma, mb, b0 = a.mark(), b.mark(), bot.mark()
    r = admin(a, room, nick="victim", role="none", reason="bye now")
    ok_irc = a.wait_irc(bot, irc("KICK", nick="alice", target="#room",
                                 text="bye now"), WAIT, b0)
    got = [u.wait(lambda k, el: occupant(room, "victim", "unavailable")(k, el)
                  and "307" in muc_codes(el), WAIT, m)
           for u, m in ((a, ma), (b, mb))]
    reasons = [muc_item(g).find("{%s}reason" % ti.NS_MUC_USER) if g is not None
               else None for g in got]
    ctx.ok(r.type == "result" and ok_irc and all(
        x is not None and x.text == "bye now" for x in reasons),
        "muc#admin role none: KICK #room victim :bye now, 307 with the "
        "reason to both resources", diag="iq %s\nbot:\n%s" % (r, bot.dump(b0)))

    steps = [(dict(role="visitor"), "-v voicy", ("participant", "none")),
             (dict(role="participant"), "+v voicy", ("participant", "member")),
             (dict(role="moderator"), "+o voicy", ("moderator", "admin")),
             # voicy has +v and +o: the server relays only the -o.
             (dict(affiliation="member"), "-o voicy",
              ("participant", "member"))]
    for attrs, mode, want in steps:
        ma, b0 = a.mark(), bot.mark()
        r = admin(a, room, nick="voicy", **attrs)
        line = a.wait_irc(bot, lambda l: irc_parse(l)[1] == "MODE" and
                          irc_parse(l)[0] == "alice" and
                          " ".join(irc_parse(l)[2][1:]) == mode, WAIT, b0)
        pres = a.wait(lambda k, el: occupant(room, "voicy")(k, el)
                      and role_affil(el) == want, WAIT, ma)
        ctx.ok(r.type == "result" and line and pres is not None,
               "muc#admin %s on voicy: MODE #room %s, and voicy is %s/%s"
               % (attrs, mode, want[0], want[1]),
               diag="iq %s\nbot:\n%s\nalice:\n%s" % (r, bot.dump(b0), a.dump(ma)))

    ma, b0 = a.mark(), bot.mark()
    r = admin(a, room, nick="voicy", affiliation="outcast", reason="go away")
    ban = a.wait_irc(bot, irc("MODE", nick="alice", target="#room",
                              text="voicy!*@*"), WAIT, b0)
    kick = a.wait_irc(bot, irc("KICK", nick="alice", target="#room",
                               text="go away"), WAIT, b0)
    gone = a.wait(occupant(room, "voicy", "unavailable"), WAIT, ma)
    ctx.ok(r.type == "result" and ban and "+b" in ban and kick
           and gone is not None,
           "muc#admin affiliation outcast: MODE #room +b voicy!*@*, KICK with "
           "the reason, voicy leaves", diag="iq %s\nbot:\n%s" % (r, bot.dump(b0)))
    v0 = voicy.mark()
    voicy.send("JOIN #room")
    ctx.ok(voicy.wait_for(lambda l: irc_parse(l)[1] == "474", WAIT, v0),
           "voicy cannot come back (474, banned)", diag=voicy.dump(v0))

    ma, b0 = a.mark(), bot.mark()
    r = admin(a, room, nick="voicy", affiliation="none")
    unban = a.wait_irc(bot, irc("MODE", nick="alice", target="#room",
                                text="voicy!*@*"), WAIT, b0)
    v0 = voicy.mark()
    voicy.send("JOIN #room")
    back = voicy.wait_for(lambda l: irc_parse(l)[1] == "366", WAIT, v0)
    ctx.ok(r.type == "result" and unban and "-b" in unban and back,
           "muc#admin affiliation none on an absent nick: MODE -b voicy!*@*, "
           "voicy joins again", diag="bot:\n%s\nvoicy:\n%s"
           % (bot.dump(b0), voicy.dump(v0)))
    a.wait(occupant(room, "voicy"), WAIT, ma)

    ma, b0 = a.mark(), bot.mark()
    r = admin(a, room, nick="voicy", affiliation="admin")
    line = a.wait_irc(bot, lambda l: irc_parse(l)[1] == "MODE" and
                      irc_parse(l)[0] == "alice" and
                      " ".join(irc_parse(l)[2][1:]) == "+o voicy", WAIT, b0)
    pres = a.wait(lambda k, el: occupant(room, "voicy")(k, el)
                  and role_affil(el) == ("moderator", "admin"), WAIT, ma)
    ctx.ok(r.type == "result" and line and pres is not None,
           "muc#admin affiliation admin on voicy: MODE #room +o voicy, "
           "moderator/admin", diag="bot:\n" + bot.dump(b0))
    r = admin(a, room, nick="voicy", affiliation="owner")
    ctx.ok(r.type == "error" and r.error_condition == "not-allowed",
           "affiliation owner where the server has no founder mode: "
           "not-allowed", diag=str(r))

    # Clients ban by the jid of the occupant's item (nick%server@gw).
    ma, b0 = a.mark(), bot.mark()
    r = admin(a, room, jid=nick_jid("voicy"), affiliation="outcast")
    ban = a.wait_irc(bot, irc("MODE", nick="alice", target="#room",
                              text="voicy!*@*"), WAIT, b0)
    gone = a.wait(occupant(room, "voicy", "unavailable"), WAIT, ma)
    ctx.ok(r.type == "result" and ban and "+b" in ban and gone is not None,
           "a ban by the jid of voicy's item (%s): +b voicy!*@*, voicy "
           "leaves" % nick_jid("voicy"), diag="iq %s\nbot:\n%s"
           % (r, bot.dump(b0)))


def check_rejoin_ping(ctx, a, b, c):
    room = room_jid("#room")
    mb = b.mark()
    ma, subj, me, took = timed_join(a, room)
    ctx.ok(subj is not None and me is not None
           and a.find(occupant(room, "bot"), ma) is not None
           and a.find(lambda k, el: k == "presence" and el.get("type") ==
                      "error", ma) is None,
           "a join while joined: the occupants, self-presence (110) and the "
           "subject again (%.0f ms)" % (1000 * took),
           diag="received:\n" + a.dump(ma))
    b.pump(0.3)
    ctx.ok(b.find(self_presence(room), mb) is None,
           "... and nothing of it to the other resource", diag=b.dump(mb))
    b0 = ctx.bot.mark()
    ma, subj, me, took = timed_join(a, room, "alice_reconnected")
    a.pump(0.3)
    ctx.ok(subj is not None and me is not None
           and resource(me.get("from")) == "alice"
           and {"110", "210"} <= muc_codes(me)
           and ctx.bot.find(irc("NICK", nick="alice"), b0) is None,
           "a join while joined with another nick (as a reconnecting client "
           "may send): the join sequence as alice with 210, no NICK on IRC",
           diag="received:\n%s\nbot:\n%s" % (a.dump(ma), ctx.bot.dump(b0)))

    for who, u in (("a", a), ("b", b)):
        r = u.iq(room + "/alice", "<ping xmlns='%s'/>" % NS_PING)
        ctx.ok(r.type == "result", "XEP-0410 self-ping from alice/%s (joined): "
               "result" % who, diag=str(r))
    r = c.iq(room + "/alice", "<ping xmlns='%s'/>" % NS_PING)
    ctx.ok(r.type == "error" and r.error_condition == "not-acceptable",
           "self-ping from alice/c, not in the room: not-acceptable",
           diag=str(r))
    mb = b.mark()
    b.leave(room, "alice")
    b.wait(self_presence(room, "unavailable"), WAIT, mb)
    r = b.iq(room + "/alice", "<ping xmlns='%s'/>" % NS_PING)
    r2 = a.iq(room + "/alice", "<ping xmlns='%s'/>" % NS_PING)
    ctx.ok(r.error_condition == "not-acceptable" and r2.type == "result",
           "after alice/b left: her self-ping is not-acceptable, alice/a's "
           "still a result", diag="%s\n%s" % (r, r2))


def check_escaped(ctx, a):
    bot = ctx.bot
    for chan, local in (("#a@b", "#a\\40b"), ("#c:d/e", "#c\\3ad\\2fe")):
        b0 = bot.mark()
        bot.send("JOIN %s" % chan)
        if not bot.wait_for(lambda l: irc_parse(l)[1] == "366", WAIT, b0):
            ctx.ok(False, "the bot joins %s" % chan, diag=bot.dump(b0))
            continue
        room = room_jid(local)
        ma, b0 = a.mark(), bot.mark()
        a.join(room, "alice")
        subj, me = join_sequence(a, room, ma)
        joined = a.wait_irc(bot, irc("JOIN", nick="alice", target=chan), WAIT, b0)
        ctx.ok(me is not None and me.get("from") == room + "/alice" and joined,
               "%s@%s: self-presence from that very JID, JOIN %s on IRC"
               % (local, DOMAIN, chan),
               diag="received:\n%s\nbot:\n%s" % (a.dump(ma), bot.dump(b0)))
        ma, b0 = a.mark(), bot.mark()
        bot.send("PRIVMSG %s :in %s" % (chan, chan))
        got = a.wait(groupchat(room, "bot", "in %s" % chan), WAIT, ma)
        a.groupchat(room, "back")
        out = a.wait_irc(bot, irc("PRIVMSG", nick="alice", target=chan,
                                  text="back"), WAIT, b0)
        ctx.ok(got is not None and got.get("from") == room + "/bot" and out,
               "messages round-trip through %s" % local,
               diag="received:\n%s\nbot:\n%s" % (a.dump(ma), bot.dump(b0)))
        a.leave(room, "alice")


def check_early(ctx, carol):
    """Joins and leaves in one burst, before carol has an IRC link."""
    bot = ctx.bot
    chans = ("#q1", "#q2", "#q3", "#q4")
    b0 = bot.mark()
    for ch in chans:
        bot.send("JOIN %s" % ch)
    bot.wait_for(lambda l: irc_parse(l)[1] == "366" and "#q4" in l, WAIT, b0)
    rj = {ch: room_jid(ch) for ch in chans}

    def join(ch):
        return "<presence to='%s/carol'><x xmlns='%s'/></presence>" % (
            rj[ch], NS_MUC)

    def leave(ch):
        return "<presence to='%s/carol' type='unavailable'/>" % rj[ch]
    m0, b0 = carol.mark(), bot.mark()
    t0 = time.monotonic()
    send_raw(carol, join("#q1") + join("#q2") + join("#q3") + leave("#q2") +
             join("#q4") + leave("#q4") + join("#q4"))
    done = carol.pump_until(lambda: all(
        carol.find(subject_of(rj[ch]), m0) is not None
        for ch in ("#q1", "#q3", "#q4")), 20)
    took = time.monotonic() - t0
    joins = [irc_parse(l)[2][0] for _, l in
             bot.find_all(irc("JOIN", nick="carol"), b0)]
    ctx.ok(done, "carol's joins of #q1, #q3 and #q4 sent together before her "
           "IRC link existed all complete (%.2f s)" % took,
           diag="received:\n%s\ncauseway:\n%s" % (carol.dump(m0),
                                                  ctx.cw_lines()))
    ctx.ok(joins == ["#q1", "#q3", "#q4"],
           "IRC sees JOIN #q1, #q3, #q4 in that order, nothing of #q2",
           diag=repr(joins))
    ctx.ok(bot.find(irc("PART", nick="carol"), b0) is None,
           "no PART for channels left before the link was up")
    q2 = [el.get("type") for k, el in carol.got[m0:] if k == "presence"
          and bare(el.get("from")) == rj["#q2"].lower()
          and "110" in muc_codes(el)]
    q4 = [el.get("type") for k, el in carol.got[m0:] if k == "presence"
          and bare(el.get("from")) == rj["#q4"].lower()
          and "110" in muc_codes(el)]
    ctx.ok(q2 == ["unavailable"] and q4 and q4[-1] is None,
           "#q2: only the leave's unavailable; #q4 (joined, left, joined): "
           "in at the end", diag="q2 %r q4 %r" % (q2, q4))


def check_names(ctx, a):
    bot = ctx.bot
    room = room_jid("#room")
    r = a.iq(room, "<query xmlns='%s'/>" % NS_DISCO_INFO)
    ident = r.find("{%s}query/{%s}identity" % (NS_DISCO_INFO, NS_DISCO_INFO))
    ctx.ok(ident is not None and ident.get("name") == "#room on %s" % SRV
           and ident.get("category") == "conference",
           "disco#info on the room: \"#room on %s\"" % SRV, diag=str(r))
    r = a.iq(room, "<query xmlns='%s' node='%s#traffic'/>" % (NS_DISCO_INFO,
                                                             NS_MUC))
    ctx.ok(r.type == "result", "the muc#traffic node is answered", diag=str(r))
    ma = a.mark()
    bot.send("PRIVMSG alice :psst")
    m = a.wait(ti.chat_from(nick_jid("bot"), "psst"), WAIT, ma)
    n = m.find("{%s}nick" % NS_NICK) if m is not None else None
    ctx.ok(n is not None and n.text == "bot",
           "a private message from the bot carries <nick>bot</nick> "
           "(XEP-0172)", diag=xml_str(m))
    ma = a.mark()
    a.xmpp.send_presence(pto=nick_jid("bot"), ptype="subscribe")
    p = a.wait(lambda k, el: k == "presence" and el.get("type") == "subscribed"
               and bare(el.get("from")) == nick_jid("bot").lower(), WAIT, ma)
    n = p.find("{%s}nick" % NS_NICK) if p is not None else None
    ctx.ok(n is not None and n.text == "bot",
           "subscribing to bot%%%s: the approval carries <nick>bot</nick>"
           % SRV, diag="received:\n" + a.dump(ma))


def check_ranks(ctx, a, fake):
    room = room_jid("#ranks", SRV_RANKS)
    m0 = a.mark()
    a.join(room, "alice")
    subj, me = join_sequence(a, room, m0)
    if not ctx.ok(me is not None, "alice joins #ranks on the scripted server",
                  diag="received:\n%s\ncauseway:\n%s" % (a.dump(m0),
                                                         ctx.cw_lines())):
        return
    want = {"founder": ("moderator", "owner"), "prot": ("moderator", "owner"),
            "op": ("moderator", "admin"), "half": ("moderator", "member"),
            "voice": ("participant", "member"), "plain": ("participant", "none")}
    got = {n: role_affil(a.find(occupant(room, n), m0)) for n in want}
    ctx.ok(got == want, "ranks as biboumi shows them: ~ and & owner, @ "
           "admin, % moderator/member, + participant/member",
           diag="got %r" % got)
    ctx.ok(subj is not None and subj.get("from") == room
           and subj.find(C + "subject").text == "rank and file"
           and stamp_of(subj) == (iso(TOPIC_TIME), room),
           "a topic set by a server name: the subject comes from the room, "
           "with the 333 time as delay", diag=xml_str(subj))
    ma = a.mark()
    fake.send_all(":op!u@ranks MODE #ranks +h plain")
    p = a.wait(lambda k, el: occupant(room, "plain")(k, el)
               and role_affil(el) == ("moderator", "member"), WAIT, ma)
    ctx.ok(p is not None, "MODE +h plain: plain becomes moderator/member",
           diag="received:\n" + a.dump(ma))
    a.leave(room, "alice")

    odd = room_jid("#odd", SRV_RANKS)
    m0 = a.mark()
    a.join(odd, "alice")
    subj, me = join_sequence(a, odd, m0)
    ctx.ok(subj is not None and subj.get("from") == odd + "/x*y"
           and stamp_of(subj) is None,
           "a 333 with an overflowing time: the subject from room/x*y (the "
           "setter's nick), without a delay", diag=xml_str(subj))
    a.leave(odd, "alice")


def run_server(tap, cls):
    label = cls.name
    t_server = time.monotonic()
    server = cls(domain=DOMAIN, tap=tap)
    ircd = cw = a = b = c = carol = bot = voicy = victim = fake = None
    try:
        ircd = InspIRCd(tap=tap)
        ircd.start()
        server.start()
        pw, carol_pw = "pw-" + os.urandom(4).hex(), "pw-" + os.urandom(4).hex()
        server.register("alice", pw)
        server.register("carol", carol_pw)
        fake = PrefixIrcd()
        common = {"throttle_burst": 20, "throttle_rate": 50, "tls": "no"}
        cw = Causeway(server, tap=tap, name="causeway-%s" % label,
                      backend="irc", options={"linger": 0},
                      sections=[("irc-server %s" % SRV,
                                 dict(port=ircd.port, **common)),
                                ("irc-server %s" % SRV_RANKS,
                                 dict(port=fake.port, **common))])
        cw.start()
        if not tap.ok(cw.wait_for(HANDSHAKE, 1, 20), "%s: causeway attached "
                      "as %s" % (label, DOMAIN)):
            return
        a = User(server.c2s_port, "alice@localhost/a", pw)
        b = User(server.c2s_port, "alice@localhost/b", pw)
        c = User(server.c2s_port, "alice@localhost/c", pw)
        carol = User(server.c2s_port, "carol@localhost/x", carol_pw)
        if not tap.ok(all(u.login() for u in (a, b, c, carol)),
                      "%s: alice (resources a, b, c) and carol log in" % label):
            return
        ctx = ti.Ctx(tap, label, server, ircd, cw, a)
        if not ti.check_register(ctx):
            return
        # (Reported as "alice registers": it is carol.)
        ctx.alice = carol
        ti.check_register(ctx)
        ctx.alice = a
        bot = ctx.bot = ti.start_bot(ctx, "bot", ("#room", "#empty"))
        t_topic = time.time()
        bot.send("TOPIC #room :the bot's topic")
        bot.wait_for(irc("TOPIC", nick="bot", target="#room"), 5)
        voicy = ti.start_bot(ctx, "voicy", ("#room",))
        victim = ti.start_bot(ctx, "victim", ("#room",))
        b0 = bot.mark()
        bot.send("MODE #room +v voicy")
        bot.wait_for(irc("MODE", nick="bot", target="#room"), 5, b0)

        if not check_join(ctx, a, b, t_topic):
            return
        check_reflection(ctx, a, b)
        check_admin(ctx, a, b, voicy)
        check_rejoin_ping(ctx, a, b, c)
        check_escaped(ctx, a)
        check_early(ctx, carol)
        check_names(ctx, a)
        check_ranks(ctx, a, fake)
        tap.ok(cw.alive() and cw.count(HANDSHAKE) == 1,
               "%s: causeway stayed up and attached throughout" % label)
    except Exception as e:
        cwtest.mark_failed()
        tap.bail("%s: unexpected exception: %s" % (label, e), e)
    finally:
        cwtest.stop_all(tap, label, server, t_server, fake, bot, voicy,
                        victim, a, b, c, carol, cw, ircd)


def main():
    return cwtest.main_per_server("IRC rooms as biboumi showed them",
                                  run_server, requires=("inspircd", "openssl"))


if __name__ == "__main__":
    sys.exit(main())
