/*
 * Rooms: XEP-0045 multi-user chat, the part a gateway room needs, for
 * backends with group chats (IRC channels).  A room is a JID at the
 * component whose unescaped local part the backend calls a room
 * (backend->is_room); occupants are ROOM@component/NICK.
 *
 * From XMPP: presence to ROOM/NICK joins (a resource already in the
 * room gets the join sequence again; without <x/> it changes nick),
 * unavailable leaves, groupchat messages go to the room,
 * private messages to ROOM/NICK go to that occupant, iq to the room or
 * an occupant (disco#info, XEP-0410 self-ping) are answered here.
 * Several resources of one user share one nick in a room: each resource
 * that joined gets the room's traffic; the backend sees one membership.
 *
 * From the backend: the room_* functions below, which the room layer
 * turns into XEP-0045 stanzas (occupant list before self-presence with
 * status 110 (+100, +210 when the network changed the nick), the subject
 * after the occupant list, messages reflected with the same id and a
 * XEP-0359 stanza-id, 303 nick changes, 307 kicks, 301 bans, 332 when
 * the network drops the room).
 *
 * A join while the user's legacy session is not online starts the login
 * and waits for it (room_session_online / room_session_offline are
 * called by session.c).
 *
 * Persistent rooms (bouncer mode): a user's per-room setting, changed
 * with the room's XEP-0045 owner form (fields "persistent" and
 * "encoding", stored per user and room).  A persistent room stays
 * joined on the network when the user's last resource leaves it (the
 * XMPP side sees an ordinary leave), and keeps the session online
 * meanwhile.  Its messages are archived once per room (src/archive.h),
 * replayed on the next join as XEP-0045 history (XEP-0203 delays, the
 * client's <history/> honoured, at most 100) and served by XEP-0313 MAM
 * with XEP-0059 paging on the room's JID to users in the room or who
 * persist it.
 *
 * Every room_* function for backends may be called for a room the user
 * has left meanwhile: it is then ignored.  Room names compare ignoring
 * ASCII case.  Limits: 128 rooms per session, 10,000 occupants per room
 * (more are not shown, and logged once).  Stanzas go out only while the
 * component is READY: rooms are live state, never kept in the store.
 */
#ifndef CAUSEWAY_ROOM_H
#define CAUSEWAY_ROOM_H

#include <stdint.h>
#include <time.h>

struct component;
struct jid;
struct session;
struct stanza;

enum room_role { ROLE_NONE, ROLE_VISITOR, ROLE_PARTICIPANT, ROLE_MODERATOR };
enum room_affiliation {
	AFFIL_NONE, AFFIL_MEMBER, AFFIL_ADMIN, AFFIL_OWNER, AFFIL_OUTCAST
};

/* ---- from the router (to.local is a room per backend->is_room) ---- */
void room_handle_presence(struct component *c, const struct stanza *st,
    const struct jid *from, const struct jid *to, const char *room);
void room_handle_message(struct component *c, const struct stanza *st,
    const struct jid *from, const struct jid *to, const char *room);
/* Returns the answer to an iq get/set to the room or an occupant. */
struct stanza *room_handle_iq(struct component *c, const struct stanza *iq,
    const struct jid *from, const struct jid *to, const char *room);

/* ---- from session.c ---- */
void room_session_online(struct session *s);
void room_session_offline(struct session *s, const char *reason);
/* How many rooms the user is in (or joining), persistent rooms kept
 * while the user is away included; 0 lets the session end. */
unsigned room_session_count(const struct session *s);
/* Frees the session's rooms (no stanzas). */
void room_session_free(struct session *s);

/*
 * Persistent rooms after a restart: joins, with no member, every room a
 * registered user of c keeps persistent (starting their sessions), so
 * the gateway is in them again as it was before.  Meant to run once,
 * when the component first reaches the server.
 */
void room_restore(struct component *c);

/* ---- for backends ---- */
/* The user's fallback charset for text in room that is not UTF-8 (the
 * owner form's "encoding"; borrowed), or NULL: the backend's default. */
const char *room_encoding(struct session *s, const char *room);

/* The join asked with backend->join_room() succeeded under nick (which
 * may differ from the one asked: then status 210). Call after the
 * occupant list (room_occupant) and before room_subject. */
void room_joined(struct session *s, const char *room, const char *nick);
void room_join_failed(struct session *s, const char *room,
    const char *condition, const char *text);
/* Someone is (or came) in the room, or their role/affiliation changed. */
void room_occupant(struct session *s, const char *room, const char *nick,
    enum room_role role, enum room_affiliation affiliation);
/* Someone left: reason may be NULL; kicked/banned give 307/301 with
 * the reason in <item/>, a part or quit gives the reason as <status/>.
 * When nick is the user's own, the user is out of the room (110 too)
 * and the backend forgets it on its own: no leave_room() follows. */
enum room_leave { LEAVE_PART, LEAVE_KICK, LEAVE_BAN, LEAVE_QUIT };
void room_occupant_left(struct session *s, const char *room,
    const char *nick, enum room_leave how, const char *reason);
void room_nick_changed(struct session *s, const char *room,
    const char *old_nick, const char *new_nick);
/* The network changed the user's own nick without being asked (or to
 * another nick than asked): as room_nick_changed, with status 210. */
void room_nick_forced(struct session *s, const char *room,
    const char *old_nick, const char *new_nick);
/* The network refused the nick change that backend->change_nick() sent
 * for this room: a presence error (condition: "conflict",
 * "not-acceptable"...) from ROOM/NEWNICK to the resource that asked; the
 * user keeps the old nick.  Ignored when no change is pending in that
 * room, so a backend whose nick is shared by several rooms may call it
 * for each. */
void room_nick_change_failed(struct session *s, const char *room,
    const char *condition, const char *text);
/* The link to the network is down but the backend is reconnecting and
 * will rejoin: text (may be NULL) goes to the room as a message from the
 * room itself, every other occupant leaves, the user stays in the room.
 * After the rejoin, room_occupant() brings the occupants back (the room
 * stays joined throughout: no room_joined() again). */
void room_link_lost(struct session *s, const char *room, const char *text);
/* A message from an occupant to the room; nick NULL: from the room itself
 * (a server notice). */
void room_message(struct session *s, const char *room, const char *nick,
    const char *body);
/* The same, sent at stamp by the network's clock (XEP-0203 delay);
 * stamp 0: now, no delay. */
void room_message_at(struct session *s, const char *room, const char *nick,
    const char *body, time_t stamp);
/* A message from an occupant to the user alone (type chat from
 * ROOM/NICK, marked as a room's with <x xmlns=muc#user/>). */
void room_private_message(struct session *s, const char *room,
    const char *nick, const char *body);
void room_private_message_at(struct session *s, const char *room,
    const char *nick, const char *body, time_t stamp);
/* The user's own message was accepted by the network (reflect it with
 * the client's id); id may be NULL. */
void room_message_sent(struct session *s, const char *room, const char *id,
    const char *body);
/* The user's message with that id, accepted by send_groupchat(), never
 * reached the network (the link dropped with it queued): an error
 * message from the room with the id to each of the user's resources in
 * the room. */
void room_message_failed(struct session *s, const char *room,
    const char *id, const char *condition, const char *text);
/* The room's subject (nick NULL: set by nobody in the room; the same
 * subject again with nick NULL in a joined room is no change).  It ends
 * each resource's join: call it before room_joined() or right after it
 * in the same event-loop turn; when none comes in that turn the join
 * ends with an empty subject, and later calls are subject changes. */
void room_subject(struct session *s, const char *room, const char *nick,
    const char *subject);
/* The same, with when it was set (IRC's 333; 0: not known): the
 * subject of a join carries it as a XEP-0203 delay.  nick is the
 * setter, who need not be in the room (the subject then comes from
 * ROOM/NICK all the same). */
void room_subject_at(struct session *s, const char *room, const char *nick,
    const char *subject, time_t stamp);
/* The network dropped the user from the room (332). */
void room_closed(struct session *s, const char *room, const char *reason);

/*
 * Nicks, interned once per process.  Every room's occupants refer to one
 * shared copy of each nick, and a backend may keep its own member lists
 * the same way: N users of the gateway in one channel of N people hold
 * each nick once, not N times (nor 2N with the backend's copy).  A nick
 * is named by an id (never 0) that stays valid, with its string, until
 * its last reference is released; ids of released nicks are reused.
 * Strings compare exactly (bytes); a backend that folds case interns its
 * folded form as another nick.  Main loop only (not thread-safe).
 */
/* An id for nick, with one more reference. */
uint32_t room_nick_intern(const char *nick);
/* The id of nick when someone holds it (no reference taken), else 0. */
uint32_t room_nick_lookup(const char *nick);
void room_nick_hold(uint32_t id);
/* Drops one reference (0 is ignored); the last frees the nick. */
void room_nick_release(uint32_t id);
/* The nick (borrowed: valid while a reference is held). */
const char *room_nick_str(uint32_t id);
/* A keyed hash of the nick (random key per process, SipHash-1-3): for
 * the backend's own indexes; a hostile server cannot aim at one slot. */
uint32_t room_nick_hash(uint32_t id);

#endif
