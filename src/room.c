/*
 * Rooms: room.h says what the layer does.  This file keeps, per session,
 * the rooms the user is in or joining: for each, the user's resources in
 * it (members) and the occupants the network reported, and turns both
 * directions into XEP-0045 stanzas.
 *
 * Lifecycle of one room of one session:
 *
 *   join, session not online --> PENDING --room_session_online--> JOINING
 *   join, session online --------------------------------------> JOINING
 *   JOINING --room_joined--> JOINED
 *   PENDING/JOINING --room_join_failed, login failed--> gone (errors)
 *   JOINED --last member left, own kick/ban/part, room_closed,
 *            session offline--> gone
 *
 * Decisions worth knowing:
 *
 * - The subject ends a join (clients take the subject message as "join
 *   complete", XEP-0045 7.2.15), so every member gets exactly one subject
 *   in its join sequence.  room_subject() may come before room_joined()
 *   (kept) or right after it in the same event-loop turn; if none has
 *   come by the end of that turn, an empty <subject/> is sent, and a
 *   later room_subject() is a subject change.
 * - The user's resources share one nick.  A second resource joining
 *   with another nick gets the room's nick (status 210) and causes no
 *   legacy traffic; the backend sees one membership, left when the last
 *   resource leaves.
 * - Leaving the last room may end the legacy session (linger 0), and a
 *   backend's logout must never run inside its own callback (it would
 *   free the state that is calling us), so session_release() runs from
 *   a zero-delay timer.
 * - Rooms are live state: stanzas are sent only while the component is
 *   READY, never kept in the store (a room replayed after a reconnect
 *   would be stale; clients rejoin, XEP-0410).
 * - The room is non-anonymous (status 100): the user's own item carries
 *   the receiving resource's jid, other occupants' items the contact JID
 *   the backend gives them (backend->occupant_address), if any.
 * - A backend that lost its link but will rejoin calls room_link_lost():
 *   the room stays JOINED with only the user in it, and the occupants of
 *   the rejoin arrive as ordinary room_occupant() presences; the subject
 *   told again unchanged (nick NULL) is not sent again.
 * - A nick change asked of the network is remembered (nick_req) until it
 *   is answered: renamed (room_nick_changed/room_nick_forced) or refused
 *   (room_nick_change_failed, the error to the resource that asked).
 * - Occupants are in an array (for the join sequence, in arrival order)
 *   indexed by a hash of the nick, so a NAMES reply of 10,000 nicks is
 *   linear.
 *
 * Persistent rooms (bouncer mode), a per-user setting in the store
 * (store_room_*, set through the XEP-0045 owner form):
 *
 *   JOINED --last member left, persistent--> JOINED with no members
 *            ("detached": the network membership stays, the room still
 *            counts in room_session_count(), so the session stays
 *            online while the user is away)
 *   detached --a resource joins--> JOINED: the join sequence, with the
 *            history since the user left between self-presence and
 *            subject (XEP-0045 7.2.15, each with a XEP-0203 delay)
 *
 * - Every JOINED room is attached to its room's archive (archive.h),
 *   kept once per room however many users are in it: each user's room
 *   reports what it hears and the archive pairs up the reports, so the
 *   archive's id is the XEP-0359 stanza-id of every user's live copy
 *   and the XEP-0313 MAM result id.
 * - The attachment is the user's membership for the store (its link up,
 *   store_member_*): join history and MAM read only the archive ids of
 *   the user's stretches of membership, so nothing said before the user
 *   joined, while they were out, or after a kick is theirs to read, and
 *   setting a room persistent grants nothing by itself.
 * - "Since the user left" is the archive id handed out last when the
 *   last member left (seen, stored), so history is exact even for
 *   messages of the same second.
 * - The archive key is the room's name in ASCII lower case (the
 *   router's names come from case-folded JIDs already); IRC's wider
 *   RFC 1459 folding ({ for [) is not applied.
 */
#include "autoconf.h"

#include <errno.h>
#include <iconv.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/event.h>
#include <openssl/rand.h>

#include "archive.h"
#include "backend.h"
#include "causeway.h"
#include "component.h"
#include "config.h"
#include "form.h"
#include "jid.h"
#include "log.h"
#include "metrics.h"
#include "room.h"
#include "service.h"
#include "session.h"
#include "stanza.h"
#include "store.h"
#include "xmalloc.h"

#define NS_MUC "http://jabber.org/protocol/muc"
#define NS_MUC_USER "http://jabber.org/protocol/muc#user"
#define NS_MUC_ADMIN "http://jabber.org/protocol/muc#admin"
#define NS_SID "urn:xmpp:sid:0"
#define NS_SELF_PING_OPT "http://jabber.org/protocol/muc#self-ping-optimization"
#define NS_MUC_OWNER "http://jabber.org/protocol/muc#owner"
#define NS_ROOMCONFIG "http://jabber.org/protocol/muc#roomconfig"
#define NS_MAM "urn:xmpp:mam:2"
#define NS_RSM "http://jabber.org/protocol/rsm"
#define NS_FORWARD "urn:xmpp:forward:0"
#define NS_DELAY "urn:xmpp:delay"
#define NS_CLIENT "jabber:client"

#define ROOM_MAX_PER_SESSION 128
#define ROOM_MAX_OCCUPANTS 10000      /* < 65535: 16-bit index slots */
#define ROOM_MAX_MEMBERS 64        /* a session keeps at most 64 resources */
#define ROOM_NICK_MAX 64
/* Messages replayed as history on a join, at most (the client's
 * <history/> may ask for fewer). */
#define ROOM_HISTORY_MAX 100
/* A MAM page: the default and the most a client may ask for. */
#define MAM_PAGE_DEFAULT 50
#define MAM_PAGE_MAX 250
/* Lines of the user's waiting for their reflection, per room; past this
 * the oldest loses its origin-id (a backend that never reflects must
 * not make us keep ids without end). */
#define ROOM_REFLECT_MAX 64
#define NS_MUC_TRAFFIC "http://jabber.org/protocol/muc#traffic"

enum room_state { ROOM_PENDING, ROOM_JOINING, ROOM_JOINED };

/* One of the user's resources in the room (or joining it). */
struct member {
	char *jid;            /* full JID */
	char *asked;          /* the nick it asked for (210 when it differs) */
	char *id;             /* its join presence's id, echoed back */
	int want_subject;     /* in the room, its subject not sent yet */
	long hist_max;        /* <history maxstanzas/>; -1: not asked */
	long hist_chars;      /* <history maxchars/>; -1: not asked */
	time_t hist_since;    /* <history seconds/ since/>; 0: not asked */
};

/*
 * An occupant is 8 bytes: its interned nick (room_nick_*, shared with
 * every other room and the backend) and two small enums.  Pointers to
 * occupants are valid until the next occ_add or occ_remove.
 */
struct occupant {
	uint32_t nick;              /* interned */
	unsigned char role;         /* enum room_role */
	unsigned char affil;        /* enum room_affiliation */
};

_Static_assert(ROOM_MAX_OCCUPANTS < 65535, "occupant slots are 16 bits");

struct occupants {
	struct occupant *v;         /* arrival order; a removal moves the last
	                             * one into the gap */
	uint32_t n, cap;
	/* Open addressing over v by the nick's hash, linear probing:
	 * slot = index in v + 1 (at most ROOM_MAX_OCCUPANTS: 16 bits
	 * are enough), 0 = empty; at most 3/4 full. */
	uint16_t *slots;
	uint32_t nslots;            /* a power of two, or 0 */
};

struct room {
	struct room *next;
	struct session *s;
	char *name;                 /* legacy name, as the router gave it */
	char *jid;                  /* ROOM@component */
	enum room_state state;
	char *nick;                 /* asked until JOINED, then the network's */
	char *password;             /* until the join is sent */
	int with_password;
	struct member *members;
	size_t nmembers;
	struct occupants occ;
	char *subject;
	char *subject_nick;         /* NULL: from the room itself */
	int subject_known;
	struct event *subject_timer;
	int full_logged;            /* the occupant limit was logged */
	char *nick_req;             /* a nick change asked of the network, */
	char *nick_req_jid;         /*   by this member, */
	char *nick_req_id;          /*   with this presence id */
	char *key;                  /* name in lower case: settings, archive */
	int persistent;             /* the user's setting */
	char *encoding;             /* the user's fallback charset, or NULL */
	long long seen;             /* archive id when the user last left */
	struct archive *archive;    /* attached while persistent and JOINED */
	time_t subject_time;        /* when the subject was set; 0: unknown */
	/* The user's lines on their way to the network, by the id they are
	 * reflected with: what the reflection must carry back
	 * (XEP-0359 origin-id).  Oldest first, at most ROOM_REFLECT_MAX. */
	struct reflect *refl;
	size_t nrefl;
	int restored;               /* rejoined by room_restore(), not asked
	                             * by the user: the join carries no nick
	                             * (the backend knows the user's) */
};

/* One line of the user's, sent and not yet reflected. */
struct reflect {
	char *id;                   /* the id it is reflected with */
	char *origin;               /* the client's <origin-id/>, or NULL */
};

struct room_set {
	struct session *s;
	struct room *rooms;
	unsigned count;
	struct event *release;      /* deferred session_release() */
};

static const char *const role_names[] = {
	[ROLE_NONE] = "none", [ROLE_VISITOR] = "visitor",
	[ROLE_PARTICIPANT] = "participant", [ROLE_MODERATOR] = "moderator",
};

static const char *const affil_names[] = {
	[AFFIL_NONE] = "none", [AFFIL_MEMBER] = "member",
	[AFFIL_ADMIN] = "admin", [AFFIL_OWNER] = "owner",
	[AFFIL_OUTCAST] = "outcast",
};

static const char *
role_name(enum room_role r)
{
	return (unsigned)r < sizeof(role_names) / sizeof(role_names[0]) ?
	    role_names[r] : "none";
}

static const char *
affil_name(enum room_affiliation a)
{
	return (unsigned)a < sizeof(affil_names) / sizeof(affil_names[0]) ?
	    affil_names[a] : "none";
}

/* ---- interned nicks (room.h) ---- */

/*
 * One table per process: records by id (recs[0] unused; a free record's
 * refs holds the next free id), and an open-addressing index of ids by
 * a keyed hash of the string (linear probing, at most half full,
 * backward-shift deletion: no tombstones).  A NAMES reply of N nicks
 * costs N lookups here and nothing per room beyond the 8-byte occupant.
 */
struct nick_rec {
	char *s;                    /* NULL: free */
	unsigned long refs;         /* free: the next free id */
	uint32_t hash;
};

static struct {
	struct nick_rec *recs;
	uint32_t nrecs, cap;        /* records in use or free; allocated */
	uint32_t free_id;           /* first free record, or 0 */
	uint32_t *slots;
	uint32_t nslots, used;
	uint64_t k0, k1;            /* SipHash key */
	int keyed;
} nicks;

#define ROTL64(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND do {							\
	v0 += v1; v1 = ROTL64(v1, 13); v1 ^= v0; v0 = ROTL64(v0, 32);	\
	v2 += v3; v3 = ROTL64(v3, 16); v3 ^= v2;			\
	v0 += v3; v3 = ROTL64(v3, 21); v3 ^= v0;			\
	v2 += v1; v1 = ROTL64(v1, 17); v1 ^= v2; v2 = ROTL64(v2, 32);	\
} while (0)

/* SipHash-1-3 of s with the process's random key, cut to 32 bits. */
static uint32_t
nick_hash_str(const char *s, size_t len)
{
	if (!nicks.keyed) {
		unsigned char key[16];
		if (RAND_bytes(key, sizeof(key)) != 1) {
			log_warn("rooms: no random bytes for the nick hash key");
			memset(key, 0, sizeof(key));
			uint64_t t = (uint64_t)time(NULL) ^
			    ((uint64_t)(uintptr_t)&nicks << 16);
			memcpy(key, &t, sizeof(t));
		}
		memcpy(&nicks.k0, key, 8);
		memcpy(&nicks.k1, key + 8, 8);
		nicks.keyed = 1;
	}
	uint64_t v0 = 0x736f6d6570736575ULL ^ nicks.k0;
	uint64_t v1 = 0x646f72616e646f6dULL ^ nicks.k1;
	uint64_t v2 = 0x6c7967656e657261ULL ^ nicks.k0;
	uint64_t v3 = 0x7465646279746573ULL ^ nicks.k1;
	const unsigned char *p = (const unsigned char *)s;
	size_t i, end = len - len % 8;
	for (i = 0; i < end; i += 8) {
		uint64_t m = 0;
		for (int j = 7; j >= 0; j--)
			m = (m << 8) | p[i + j];
		v3 ^= m;
		SIPROUND;
		v0 ^= m;
	}
	uint64_t b = (uint64_t)len << 56;
	for (size_t j = 0; i + j < len; j++)
		b |= (uint64_t)p[i + j] << (8 * j);
	v3 ^= b;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	uint64_t h = v0 ^ v1 ^ v2 ^ v3;
	return (uint32_t)(h ^ (h >> 32));
}

/*
 * Deletion from a linear-probing table without tombstones: the entries
 * after the gap move back unless their home slot k lies cyclically in
 * (gap, j], where they would be found before the gap anyway.
 */
static int
probe_keeps(uint32_t gap, uint32_t j, uint32_t k)
{
	return gap <= j ? (gap < k && k <= j) : (gap < k || k <= j);
}

static void
nicks_slot_delete(uint32_t i)
{
	uint32_t mask = nicks.nslots - 1;
	for (uint32_t j = (i + 1) & mask; nicks.slots[j] != 0;
	    j = (j + 1) & mask) {
		if (!probe_keeps(i, j, nicks.recs[nicks.slots[j]].hash & mask)) {
			nicks.slots[i] = nicks.slots[j];
			i = j;
		}
	}
	nicks.slots[i] = 0;
}

static void
nicks_rehash(uint32_t nslots)
{
	free(nicks.slots);
	nicks.slots = xcalloc(nslots, sizeof(*nicks.slots));
	nicks.nslots = nslots;
	for (uint32_t id = 1; id < nicks.nrecs; id++) {
		if (nicks.recs[id].s == NULL)
			continue;
		uint32_t k = nicks.recs[id].hash & (nslots - 1);
		while (nicks.slots[k] != 0)
			k = (k + 1) & (nslots - 1);
		nicks.slots[k] = id;
	}
}

/* The slot holding nick, or the empty slot where it would go. */
static uint32_t
nicks_probe(const char *nick, uint32_t hash)
{
	uint32_t mask = nicks.nslots - 1;
	uint32_t k = hash & mask;
	for (; nicks.slots[k] != 0; k = (k + 1) & mask) {
		const struct nick_rec *r = &nicks.recs[nicks.slots[k]];
		if (r->hash == hash && strcmp(r->s, nick) == 0)
			break;
	}
	return k;
}

uint32_t
room_nick_lookup(const char *nick)
{
	if (nicks.used == 0 || nick == NULL)
		return 0;
	return nicks.slots[nicks_probe(nick, nick_hash_str(nick,
	    strlen(nick)))];
}

uint32_t
room_nick_intern(const char *nick)
{
	if (2 * (nicks.used + 1) > nicks.nslots)
		nicks_rehash(nicks.nslots ? nicks.nslots * 2 : 64);
	uint32_t hash = nick_hash_str(nick, strlen(nick));
	uint32_t k = nicks_probe(nick, hash);
	if (nicks.slots[k] != 0) {
		nicks.recs[nicks.slots[k]].refs++;
		return nicks.slots[k];
	}
	uint32_t id = nicks.free_id;
	if (id != 0) {
		nicks.free_id = (uint32_t)nicks.recs[id].refs;
	} else {
		if (nicks.nrecs == 0)
			nicks.nrecs = 1;          /* id 0 means none */
		if (nicks.nrecs == UINT32_MAX)
			log_fatal("rooms: out of nick ids");
		id = nicks.nrecs++;
		/* Grown by half: the table of all nicks of a large gateway
		 * is the one array here that may be big. */
		if (id >= nicks.cap) {
			nicks.cap = nicks.cap < 64 ? 64 :
			    nicks.cap + nicks.cap / 2;
			nicks.recs = xreallocarray(nicks.recs, nicks.cap,
			    sizeof(*nicks.recs));
		}
	}
	nicks.recs[id] = (struct nick_rec){ .s = xstrdup(nick), .refs = 1,
	    .hash = hash };
	nicks.slots[k] = id;
	nicks.used++;
	return id;
}

void
room_nick_hold(uint32_t id)
{
	if (id != 0)
		nicks.recs[id].refs++;
}

void
room_nick_release(uint32_t id)
{
	if (id == 0)
		return;
	struct nick_rec *r = &nicks.recs[id];
	if (--r->refs > 0)
		return;
	nicks_slot_delete(nicks_probe(r->s, r->hash));
	free(r->s);
	r->s = NULL;
	r->refs = nicks.free_id;
	nicks.free_id = id;
	nicks.used--;
	if (nicks.used == 0) {
		/* The last room is gone: give the tables back. */
		free(nicks.slots);
		free(nicks.recs);
		nicks.slots = NULL;
		nicks.recs = NULL;
		nicks.nslots = nicks.nrecs = nicks.cap = nicks.free_id = 0;
	}
}

const char *
room_nick_str(uint32_t id)
{
	return nicks.recs[id].s;
}

uint32_t
room_nick_hash(uint32_t id)
{
	return nicks.recs[id].hash;
}

/* ---- occupants: an array indexed by the nick's hash ---- */

static void
occ_slot_delete(struct occupants *o, uint32_t i)
{
	uint32_t mask = o->nslots - 1;
	for (uint32_t j = (i + 1) & mask; o->slots[j] != 0;
	    j = (j + 1) & mask) {
		uint32_t k = room_nick_hash(o->v[o->slots[j] - 1].nick) & mask;
		if (!probe_keeps(i, j, k)) {
			o->slots[i] = o->slots[j];
			i = j;
		}
	}
	o->slots[i] = 0;
}

static struct occupant *
occ_find_id(const struct occupants *o, uint32_t id)
{
	if (o->nslots == 0 || id == 0)
		return NULL;
	uint32_t mask = o->nslots - 1;
	for (uint32_t k = room_nick_hash(id) & mask; o->slots[k] != 0;
	    k = (k + 1) & mask)
		if (o->v[o->slots[k] - 1].nick == id)
			return &o->v[o->slots[k] - 1];
	return NULL;
}

static struct occupant *
occ_find(const struct occupants *o, const char *nick)
{
	return o->n == 0 ? NULL : occ_find_id(o, room_nick_lookup(nick));
}

static void
occ_slot_put(struct occupants *o, uint32_t i)
{
	uint32_t mask = o->nslots - 1;
	uint32_t k = room_nick_hash(o->v[i].nick) & mask;
	while (o->slots[k] != 0)
		k = (k + 1) & mask;
	o->slots[k] = (uint16_t)(i + 1);
}

/* The slot that holds index i of v. */
static uint32_t
occ_slot_of(const struct occupants *o, uint32_t i)
{
	uint32_t mask = o->nslots - 1;
	uint32_t k = room_nick_hash(o->v[i].nick) & mask;
	while (o->slots[k] != i + 1)
		k = (k + 1) & mask;
	return k;
}

/* A new occupant (the nick must not be there), or NULL at the limit. */
static struct occupant *
occ_add(struct occupants *o, const char *nick, enum room_role role,
    enum room_affiliation affil)
{
	if (o->n >= ROOM_MAX_OCCUPANTS)
		return NULL;
	if (o->n == o->cap) {
		o->cap = o->cap ? o->cap * 2 : 8;
		o->v = xreallocarray(o->v, o->cap, sizeof(*o->v));
	}
	if (4 * (o->n + 1) > 3 * o->nslots) {
		free(o->slots);
		o->nslots = o->nslots ? o->nslots * 2 : 16;
		o->slots = xcalloc(o->nslots, sizeof(*o->slots));
		for (uint32_t i = 0; i < o->n; i++)
			occ_slot_put(o, i);
	}
	struct occupant *p = &o->v[o->n];
	p->nick = room_nick_intern(nick);
	p->role = (unsigned char)role;
	p->affil = (unsigned char)affil;
	occ_slot_put(o, o->n++);
	return p;
}

static void
occ_remove(struct occupants *o, struct occupant *p)
{
	uint32_t i = (uint32_t)(p - o->v), last = o->n - 1;
	occ_slot_delete(o, occ_slot_of(o, i));
	if (i != last) {
		uint32_t k = occ_slot_of(o, last);
		room_nick_release(p->nick);
		o->v[i] = o->v[last];
		o->slots[k] = (uint16_t)(i + 1);
	} else {
		room_nick_release(p->nick);
	}
	o->n--;
}

static void
occ_clear(struct occupants *o)
{
	for (uint32_t i = 0; i < o->n; i++)
		room_nick_release(o->v[i].nick);
	free(o->v);
	free(o->slots);
	memset(o, 0, sizeof(*o));
}

/* ---- the session's rooms ---- */

static struct room_set *
set_of(struct session *s)
{
	return session_rooms(s);
}

static void release_cb(evutil_socket_t fd, short what, void *arg);

static struct room_set *
set_get(struct session *s)
{
	struct room_set *set = session_rooms(s);
	if (set == NULL) {
		set = xcalloc(1, sizeof(*set));
		set->s = s;
		set->release = evtimer_new(cw->base, release_cb, set);
		if (set->release == NULL)
			log_fatal("%s: cannot create a timer",
			    session_component(s)->domain);
		session_set_rooms(s, set);
	}
	return set;
}

/* Room names compare as the network's do, ignoring ASCII case: the
 * router's name comes from a case-folded JID, a backend may report the
 * network's spelling. */
static struct room *
room_find(struct session *s, const char *name)
{
	struct room_set *set = set_of(s);
	if (set == NULL || name == NULL)
		return NULL;
	for (struct room *r = set->rooms; r != NULL; r = r->next)
		if (strcasecmp(r->name, name) == 0)
			return r;
	return NULL;
}

static void
room_free(struct room *r)
{
	if (r->archive != NULL)
		archive_detach(r->archive, r);
	free(r->key);
	free(r->encoding);
	for (size_t i = 0; i < r->nmembers; i++) {
		free(r->members[i].jid);
		free(r->members[i].asked);
		free(r->members[i].id);
	}
	free(r->members);
	occ_clear(&r->occ);
	if (r->subject_timer != NULL)
		event_free(r->subject_timer);
	free(r->name);
	free(r->jid);
	free(r->nick);
	free(r->password);
	free(r->subject);
	free(r->subject_nick);
	free(r->nick_req);
	free(r->nick_req_jid);
	free(r->nick_req_id);
	for (size_t i = 0; i < r->nrefl; i++) {
		free(r->refl[i].id);
		free(r->refl[i].origin);
	}
	free(r->refl);
	free(r);
}

/* Unlinks and frees r.  The caller then calls release_later(). */
static void
room_forget(struct session *s, struct room *r)
{
	struct room_set *set = set_of(s);
	struct room **pp = &set->rooms;
	while (*pp != r)
		pp = &(*pp)->next;
	*pp = r->next;
	set->count--;
	room_free(r);
}

static void
release_cb(evutil_socket_t fd, short what, void *arg)
{
	struct room_set *set = arg;
	session_release(set->s);
}

/* The user may have left their last room: let the session decide, from
 * the event loop (see the top of the file). */
static void
release_later(struct session *s)
{
	struct room_set *set = set_of(s);
	if (set == NULL || set->count > 0)
		return;
	struct timeval tv = { 0, 0 };
	evtimer_add(set->release, &tv);
}

static struct member *
member_find(struct room *r, const char *jid)
{
	for (size_t i = 0; i < r->nmembers; i++)
		if (strcmp(r->members[i].jid, jid) == 0)
			return &r->members[i];
	return NULL;
}

static struct member *
member_add(struct room *r, const char *jid, const char *asked,
    const char *id)
{
	r->members = xreallocarray(r->members, r->nmembers + 1,
	    sizeof(*r->members));
	struct member *m = &r->members[r->nmembers++];
	m->jid = xstrdup(jid);
	m->asked = xstrdup(asked);
	m->id = id ? xstrdup(id) : NULL;
	m->want_subject = 0;
	m->hist_max = -1;
	m->hist_chars = -1;
	m->hist_since = 0;
	return m;
}

static void
member_remove(struct room *r, struct member *m)
{
	free(m->jid);
	free(m->asked);
	free(m->id);
	*m = r->members[--r->nmembers];
}

/* ---- stanzas toward the user ---- */

/* Rooms are live state: nothing is kept for a server that is away. */
static void
send_user(struct session *s, struct stanza *st)
{
	struct component *c = session_component(s);
	if (c->state != COMPONENT_READY) {
		log_info("%s: %s: not connected to the server; a room <%s/> "
		    "is dropped", c->domain, session_jid(s), stanza_name(st));
		stanza_free(st);
		return;
	}
	component_send(c, st);
}

/* Sends a copy of st to every member, then frees st. */
static void
send_members(struct session *s, struct room *r, struct stanza *st)
{
	for (size_t i = 0; i < r->nmembers; i++) {
		struct stanza *copy = stanza_copy(st);
		stanza_set_attr(copy, "to", r->members[i].jid);
		send_user(s, copy);
	}
	stanza_free(st);
}

static char *
occupant_jid(const struct room *r, const char *nick)
{
	return nick ? xasprintf("%s/%s", r->jid, nick) : xstrdup(r->jid);
}

/* What an occupant presence says; codes end at 0. */
struct pres {
	int unavailable;
	enum room_role role;
	enum room_affiliation affil;
	const char *jid;         /* the item's jid; NULL: not known */
	const char *new_nick;    /* the item's nick (303) */
	const char *reason;      /* the item's <reason/> (307, 301) */
	const char *status;      /* <status/> text */
	const char *id;
	int codes[5];
};

static struct stanza *
occupant_presence(const struct room *r, const char *nick, const char *to,
    const struct pres *p)
{
	struct stanza *st = stanza_new("presence", NS_COMPONENT);
	char *from = occupant_jid(r, nick);
	stanza_set_attr(st, "from", from);
	free(from);
	if (to != NULL)
		stanza_set_attr(st, "to", to);
	if (p->id != NULL)
		stanza_set_attr(st, "id", p->id);
	if (p->unavailable)
		stanza_set_attr(st, "type", "unavailable");
	if (p->status != NULL && *p->status != '\0')
		stanza_new_text_child(st, "status", p->status);
	struct stanza *x = stanza_new_child(st, "x", NS_MUC_USER);
	struct stanza *item = stanza_new_child(x, "item", NULL);
	stanza_set_attr(item, "affiliation", affil_name(p->affil));
	stanza_set_attr(item, "role", role_name(p->role));
	if (p->jid != NULL) {
		stanza_set_attr(item, "jid", p->jid);
	} else if (nick != NULL && strcmp(nick, r->nick) != 0) {
		/* Someone else: the contact JID the backend knows them by,
		 * which the user can write to (as biboumi showed it). */
		struct component *c = session_component(r->s);
		char *legacy = c->backend->occupant_address != NULL ?
		    c->backend->occupant_address(c, r->name, nick) : NULL;
		char *jid = legacy != NULL ? session_contact_jid(c, legacy) :
		    NULL;
		if (jid != NULL)
			stanza_set_attr(item, "jid", jid);
		free(jid);
		free(legacy);
	}
	if (p->new_nick != NULL)
		stanza_set_attr(item, "nick", p->new_nick);
	if (p->reason != NULL && *p->reason != '\0')
		stanza_new_text_child(item, "reason", p->reason);
	for (size_t i = 0; i < 5 && p->codes[i] != 0; i++) {
		char code[8];
		snprintf(code, sizeof(code), "%d", p->codes[i]);
		stanza_set_attr(stanza_new_child(x, "status", NULL), "code",
		    code);
	}
	return st;
}

/* A presence error from ROOM/NICK, carrying <x xmlns=muc/> as XEP-0045
 * shows it. */
static struct stanza *
presence_error(struct session *s, const char *from, const char *to,
    const char *id, const char *condition, const char *text)
{
	const char *type = stanza_error_type(condition);
	if (type == NULL) {
		log_warn("%s: %s: unknown error condition '%s' from the "
		    "backend, sending undefined-condition",
		    session_component(s)->domain, session_jid(s),
		    condition ? condition : "(null)");
		condition = "undefined-condition";
		type = "cancel";
	}
	struct stanza *st = stanza_new("presence", NS_COMPONENT);
	stanza_set_attr(st, "from", from);
	stanza_set_attr(st, "to", to);
	if (id != NULL)
		stanza_set_attr(st, "id", id);
	stanza_set_attr(st, "type", "error");
	stanza_new_child(st, "x", NS_MUC);
	struct stanza *e = stanza_new_child(st, "error", NULL);
	stanza_set_attr(e, "type", type);
	stanza_new_child(e, condition, NS_STANZAS);
	if (text != NULL && *text != '\0') {
		struct stanza *t = stanza_new_child(e, "text", NS_STANZAS);
		stanza_add_text(t, text, strlen(text));
	}
	return st;
}

/* Answers a stanza from the user with an error, never an error. */
static void
reply_error(struct component *c, const struct stanza *st,
    const char *condition, const char *text)
{
	const char *type = stanza_attr(st, "type");
	if (type != NULL && strcmp(type, "error") == 0)
		return;
	struct stanza *err = stanza_error_reply(st, condition, text);
	if (strcmp(stanza_name(st), "presence") == 0)
		stanza_new_child(err, "x", NS_MUC);
	if (c->state == COMPONENT_READY)
		component_send(c, err);
	else
		stanza_free(err);
}

/* A XEP-0359 stanza-id: unique per message across restarts (a random
 * prefix drawn once) and within one run (a counter). */
static void
new_stanza_id(char *out, size_t len)
{
	static char prefix[17];
	static uint64_t counter;
	if (prefix[0] == '\0') {
		unsigned char raw[8];
		if (RAND_bytes(raw, sizeof(raw)) != 1) {
			/* Only uniqueness matters here, not secrecy. */
			uint64_t t = (uint64_t)time(NULL);
			memcpy(raw, &t, sizeof(raw));
		}
		for (size_t i = 0; i < sizeof(raw); i++)
			snprintf(prefix + 2 * i, 3, "%02x", raw[i]);
	}
	snprintf(out, len, "%s-%llx", prefix, (unsigned long long)++counter);
}

/* A groupchat message; sid: its stanza-id (NULL: a new one). */
static struct stanza *
groupchat_sid(const struct room *r, const char *nick, const char *id,
    const char *body, const char *sid)
{
	char fresh[48];
	struct stanza *m = stanza_new("message", NS_COMPONENT);
	char *from = occupant_jid(r, nick);
	stanza_set_attr(m, "from", from);
	free(from);
	stanza_set_attr(m, "type", "groupchat");
	if (id != NULL)
		stanza_set_attr(m, "id", id);
	stanza_new_text_child(m, "body", body);
	if (sid == NULL) {
		new_stanza_id(fresh, sizeof(fresh));
		sid = fresh;
	}
	struct stanza *x = stanza_new_child(m, "stanza-id", NS_SID);
	stanza_set_attr(x, "id", sid);
	stanza_set_attr(x, "by", r->jid);
	return m;
}

static struct stanza *
groupchat(const struct room *r, const char *nick, const char *id,
    const char *body)
{
	return groupchat_sid(r, nick, id, body, NULL);
}

/* ---- reflections of the user's own lines (XEP-0045 7.4, XEP-0359) ---- */

/* A line with that id goes to the network: its reflection will carry
 * origin (may be NULL). */
static void
reflect_expect(struct room *r, const char *id, const char *origin)
{
	if (r->nrefl == ROOM_REFLECT_MAX) {
		free(r->refl[0].id);
		free(r->refl[0].origin);
		memmove(&r->refl[0], &r->refl[1],
		    (r->nrefl - 1) * sizeof(*r->refl));
		r->nrefl--;
	}
	if (r->refl == NULL)
		r->refl = xcalloc(ROOM_REFLECT_MAX, sizeof(*r->refl));
	r->refl[r->nrefl].id = xstrdup(id);
	r->refl[r->nrefl].origin = origin != NULL ? xstrdup(origin) : NULL;
	r->nrefl++;
}

/* The origin-id of the line with that id, taken out of the list
 * (caller frees), or NULL. */
static char *
reflect_take(struct room *r, const char *id)
{
	if (id == NULL)
		return NULL;
	for (size_t i = 0; i < r->nrefl; i++) {
		if (strcmp(r->refl[i].id, id) != 0)
			continue;
		char *origin = r->refl[i].origin;
		free(r->refl[i].id);
		memmove(&r->refl[i], &r->refl[i + 1],
		    (r->nrefl - i - 1) * sizeof(*r->refl));
		r->nrefl--;
		return origin;
	}
	return NULL;
}

/* ---- persistence and the archive ---- */

/* The name settings and the archive know the room by (caller frees). */
static char *
room_key(const char *room)
{
	char *key = xstrdup(room);
	for (char *p = key; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return key;
}

/* Attached to the room's archive exactly while JOINED (the user is in
 * the channel, present or kept persistent): every joined room is
 * archived, and the attachment is the user's membership. */
static void
archive_update(struct room *r)
{
	int want = r->state == ROOM_JOINED;
	if (want && r->archive == NULL) {
		r->archive = archive_attach(session_component(r->s)->domain,
		    r->key, r, session_jid(r->s));
	} else if (!want && r->archive != NULL) {
		archive_detach(r->archive, r);
		r->archive = NULL;
	}
}

/* Archives a message heard in r (once for all users who hear it); sid
 * gets the stanza-id to send it with, the same for every user, else is
 * "". */
static void
archive_message(struct room *r, const char *nick, const char *body,
    time_t stamp, char *sid, size_t len)
{
	sid[0] = '\0';
	if (nick == NULL || r->archive == NULL)
		return;
	if (archive_heard(r->archive, r, nick, body, stamp, sid, len) < 0)
		sid[0] = '\0';
}

/*
 * XEP-0045 7.2.15: recent history, each message with its time
 * (XEP-0203): what was said while the user was in the room (the
 * archive's reader filter), since the user last left a persistent room,
 * as much as the member's <history/> asks (maxstanzas, maxchars counted
 * on the stanzas as sent, seconds, since) and ROOM_HISTORY_MAX allows:
 * a request for more gets that many.  Read from the store on the loop:
 * a join is rare, the read is one index range of at most 100 rows.
 */
static void
send_history(struct session *s, struct room *r, struct member *m)
{
	if (r->archive == NULL || m->hist_max == 0 || m->hist_chars == 0)
		return;
	struct store_archive_query q = {
		.room = archive_room_id(r->archive),
		.after = r->seen,
		.start = m->hist_since,
		.max = m->hist_max > 0 && m->hist_max < ROOM_HISTORY_MAX ?
		    (size_t)m->hist_max : ROOM_HISTORY_MAX,
		.backward = 1,
		.reader = session_jid(s),
	};
	struct store_archive_msg *v;
	size_t n;
	if (store_archive_query(cw->store, &q, &v, &n) != 0)
		return;
	struct stanza **out = xcalloc(n + 1, sizeof(*out));
	size_t first = n;           /* the oldest that fits */
	long chars = 0;
	while (first > 0) {
		struct stanza *msg = groupchat_sid(r, v[first - 1].nick, NULL,
		    v[first - 1].body, v[first - 1].sid);
		stanza_set_attr(msg, "to", m->jid);
		stanza_add_delay(msg, r->jid, v[first - 1].stamp);
		if (m->hist_chars > 0) {
			char *text = stanza_to_string(msg);
			chars += (long)strlen(text);
			free(text);
			if (chars > m->hist_chars) {
				stanza_free(msg);
				break;
			}
		}
		out[--first] = msg;
	}
	for (size_t i = first; i < n; i++)
		send_user(s, out[i]);
	if (n > first)
		log_info("%s: %s: %zu messages of history in %s to %s",
		    session_component(s)->domain, session_jid(s), n - first,
		    r->name, m->jid);
	free(out);
	store_archive_msgs_free(v, n);
}

/* XEP-0082 date-time ("2024-05-01T12:00:00Z", fractions and offsets
 * allowed) as UTC seconds; -1 when it is not one. */
static time_t
parse_datetime(const char *v)
{
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	if (v == NULL)
		return -1;
	const char *end = strptime(v, "%Y-%m-%dT%H:%M:%S", &tm);
	if (end == NULL)
		return -1;
	if (*end == '.') {
		end++;
		size_t digits = strspn(end, "0123456789");
		if (digits == 0)
			return -1;
		end += digits;
	}
	long offset = 0;
	if ((end[0] == '+' || end[0] == '-') && strlen(end) == 6 &&
	    end[3] == ':') {
		int hh, mm;
		if (sscanf(end + 1, "%2d:%2d", &hh, &mm) != 2 || hh > 23 ||
		    mm > 59)
			return -1;
		offset = (hh * 3600L + mm * 60L) * (end[0] == '+' ? 1 : -1);
	} else if (strcmp(end, "Z") != 0) {
		return -1;
	}
	time_t t = timegm(&tm);
	return t == (time_t)-1 ? -1 : t - offset;
}

/* A <history/> count: a non-negative integer, -1 when it is not one
 * (then ignored, as if not given). */
static long
history_count(const char *v)
{
	if (v == NULL || *v < '0' || *v > '9')
		return -1;
	char *end;
	errno = 0;
	long n = strtol(v, &end, 10);
	if (*end != '\0')
		return -1;
	return errno == ERANGE ? LONG_MAX : n;
}

/* What the join presence's <history/> asks (XEP-0045 7.2.15). */
static void
read_history_request(struct member *m, const struct stanza *st)
{
	const struct stanza *x = stanza_child(st, "x", NS_MUC);
	const struct stanza *h = x ? stanza_child(x, "history", NULL) : NULL;
	m->hist_max = -1;
	m->hist_chars = -1;
	m->hist_since = 0;
	if (h == NULL)
		return;
	m->hist_max = history_count(stanza_attr(h, "maxstanzas"));
	m->hist_chars = history_count(stanza_attr(h, "maxchars"));
	long secs = history_count(stanza_attr(h, "seconds"));
	if (secs == 0)
		m->hist_max = 0;
	else if (secs > 0)
		m->hist_since = secs >= time(NULL) ? 1 : time(NULL) - secs;
	time_t since = parse_datetime(stanza_attr(h, "since"));
	if (since > 0 && since > m->hist_since)
		m->hist_since = since;
}

/* The subject to one member: from ROOM/SETTER (the room itself when
 * nobody is known), with the time it was set as a XEP-0203 delay when
 * delayed (a join; a change as it happens is not late). */
static void
send_subject(struct session *s, struct room *r, struct member *m,
    int delayed)
{
	struct stanza *msg = stanza_new("message", NS_COMPONENT);
	char *from = occupant_jid(r, r->subject_nick);
	stanza_set_attr(msg, "from", from);
	free(from);
	stanza_set_attr(msg, "to", m->jid);
	stanza_set_attr(msg, "type", "groupchat");
	struct stanza *subj = stanza_new_child(msg, "subject", NULL);
	if (r->subject != NULL && *r->subject != '\0') {
		stanza_add_text(subj, r->subject, strlen(r->subject));
		if (delayed)
			stanza_add_delay(msg, r->jid, r->subject_time);
	}
	m->want_subject = 0;
	send_user(s, msg);
}

static struct occupant *
self_occupant(struct room *r)
{
	struct occupant *o = occ_find(&r->occ, r->nick);
	if (o == NULL) {
		o = occ_add(&r->occ, r->nick, ROLE_PARTICIPANT, AFFIL_NONE);
		/* At the limit, the user still is in the room: make room. */
		if (o == NULL) {
			occ_remove(&r->occ, &r->occ.v[r->occ.n - 1]);
			o = occ_add(&r->occ, r->nick, ROLE_PARTICIPANT,
			    AFFIL_NONE);
		}
	}
	return o;
}

/* The user's own presence in the room to one member. */
static void
send_self(struct session *s, struct room *r, struct member *m,
    const struct pres *base)
{
	struct pres p = *base;
	struct occupant *self = self_occupant(r);
	if (p.role == ROLE_NONE && !p.unavailable)
		p.role = self->role;
	if (p.affil == AFFIL_NONE)
		p.affil = self->affil;
	p.jid = m->jid;
	send_user(s, occupant_presence(r, r->nick, m->jid, &p));
}

/* The join sequence for one member: every other occupant, then its
 * self-presence, then the subject (now or at the end of this turn). */
static void
send_join(struct session *s, struct room *r, struct member *m)
{
	struct occupant *self = self_occupant(r);
	for (size_t i = 0; i < r->occ.n; i++) {
		struct occupant *o = &r->occ.v[i];
		if (o == self)
			continue;
		struct pres p = { .role = o->role, .affil = o->affil };
		send_user(s, occupant_presence(r, room_nick_str(o->nick),
		    m->jid, &p));
	}
	struct pres p = { .role = self->role, .affil = self->affil,
	    .id = m->id, .codes = { 110, 100 } };
	if (strcmp(m->asked, r->nick) != 0)
		p.codes[2] = 210;
	send_self(s, r, m, &p);
	send_history(s, r, m);
	if (r->subject_known)
		send_subject(s, r, m, 1);
	else
		m->want_subject = 1;
}

static void
subject_cb(evutil_socket_t fd, short what, void *arg)
{
	struct room *r = arg;
	/* No subject came with the join: an empty one completes it. */
	r->subject_known = 1;
	for (size_t i = 0; i < r->nmembers; i++)
		if (r->members[i].want_subject)
			send_subject(r->s, r, &r->members[i], 1);
}

/* ---- from XMPP ---- */

static struct room *
room_new(struct session *s, const char *name, const char *nick)
{
	struct room_set *set = set_get(s);
	struct room *r = xcalloc(1, sizeof(*r));
	r->s = s;
	r->name = xstrdup(name);
	r->jid = session_contact_jid(session_component(s), name);
	r->nick = xstrdup(nick);
	r->subject_timer = evtimer_new(cw->base, subject_cb, r);
	if (r->jid == NULL || r->subject_timer == NULL)
		log_fatal("%s: %s: cannot set up the room %s",
		    session_component(s)->domain, session_jid(s), name);
	r->key = room_key(name);
	struct store_room stored;
	if (store_room_get(cw->store, session_component(s)->domain,
	    session_jid(s), r->key, &stored) == 1) {
		r->persistent = stored.persistent;
		r->encoding = stored.encoding;
		r->seen = stored.seen;
	}
	/* At the end: joins waiting for the login go to the network in
	 * the order they came (room_session_online). */
	struct room **tail = &set->rooms;
	while (*tail != NULL)
		tail = &(*tail)->next;
	*tail = r;
	set->count++;
	return r;
}

/* Sends the join to the network.  The backend may answer from inside
 * the call (and free the room), so it gets copies and r is not used
 * after. */
static void
send_join_request(struct session *s, struct room *r)
{
	char *name = xstrdup(r->name);
	char *nick = xstrdup(r->nick);
	char *password = r->password;
	r->password = NULL;
	r->state = ROOM_JOINING;
	int restored = r->restored;
	r->restored = 0;
	log_info("%s: %s: joining %s as %s", session_component(s)->domain,
	    session_jid(s), name, restored ? "the nick the user had there" :
	    nick);
	session_component(s)->backend->join_room(s, name, restored ? NULL :
	    nick, password);
	free(name);
	free(nick);
	free(password);
}

/* Errors to every member of a room that never became JOINED, then the
 * room is forgotten. */
static void
fail_join(struct session *s, struct room *r, const char *condition,
    const char *text)
{
	log_info("%s: %s: joining %s failed: %s%s%s",
	    session_component(s)->domain, session_jid(s), r->name, condition,
	    text ? ": " : "", text ? text : "");
	for (size_t i = 0; i < r->nmembers; i++) {
		char *from = occupant_jid(r, r->members[i].asked);
		send_user(s, presence_error(s, from, r->members[i].jid,
		    r->members[i].id, condition, text));
		free(from);
	}
	room_forget(s, r);
}

/* 0 when nick can be a nick; else the error condition. */
static const char *
nick_problem(const char *nick, const char **why)
{
	if (nick == NULL || *nick == '\0') {
		*why = "a nickname is required (join ROOM@GATEWAY/NICK)";
		return "jid-malformed";
	}
	if (strlen(nick) > ROOM_NICK_MAX) {
		*why = "that nickname is too long";
		return "not-acceptable";
	}
	/* No chat network takes blanks or control characters in a nick;
	 * anything finer is the backend's to refuse. */
	for (const unsigned char *p = (const unsigned char *)nick; *p; p++) {
		if (*p <= ' ' || *p == 0x7f) {
			*why = "a nickname cannot hold blanks or control "
			    "characters";
			return "not-acceptable";
		}
	}
	return NULL;
}

static void
join(struct component *c, const struct stanza *st, struct session *s,
    const char *full, const char *name, const char *nick)
{
	const struct backend *b = c->backend;
	const char *id = stanza_attr(st, "id");
	struct room *r = room_find(s, name);

	if (r != NULL) {
		/* Another resource of the user is in (or entering) the room:
		 * it shares the membership, with the room's nick. */
		if (r->nmembers >= ROOM_MAX_MEMBERS) {
			reply_error(c, st, "resource-constraint",
			    "too many of your resources are in this room");
			return;
		}
		struct member *m = member_add(r, full, nick, id);
		read_history_request(m, st);
		log_info("%s: %s: %s enters %s%s", c->domain,
		    session_jid(s), full, name, r->nmembers == 1 ?
		    " (kept while the user was away)" : " too");
		if (r->state == ROOM_JOINED)
			send_join(s, r, m);
		return;
	}
	if (b->join_room == NULL) {
		reply_error(c, st, "feature-not-implemented",
		    "this gateway cannot join rooms yet");
		return;
	}
	struct room_set *set = set_of(s);
	if (set != NULL && set->count >= ROOM_MAX_PER_SESSION) {
		reply_error(c, st, "resource-constraint",
		    "you are in too many rooms on this gateway");
		return;
	}
	r = room_new(s, name, nick);
	read_history_request(member_add(r, full, nick, id), st);
	const struct stanza *x = stanza_child(st, "x", NS_MUC);
	char *password = x ? stanza_child_text(x, "password") : NULL;
	if (password != NULL) {
		r->password = password;
		r->with_password = 1;
	}
	if (session_state(s) == SESSION_ONLINE) {
		send_join_request(s, r);
		return;
	}
	r->state = ROOM_PENDING;
	log_info("%s: %s: %s waits for the legacy login", c->domain,
	    session_jid(s), name);
	session_ensure_login(s);
	/* The login may have failed at once without calling us back. */
	r = room_find(s, name);
	if (r != NULL && r->state == ROOM_PENDING &&
	    session_state(s) != SESSION_LOGGING_IN &&
	    session_state(s) != SESSION_ONLINE) {
		fail_join(s, r, "service-unavailable", "the legacy session "
		    "could not log in");
		release_later(s);
	}
}

static void
leave(struct component *c, const struct stanza *st, struct session *s,
    const char *full, const char *name, int reflect)
{
	struct room *r = room_find(s, name);
	struct member *m = r ? member_find(r, full) : NULL;
	if (m == NULL) {
		log_debug("%s: %s: %s leaves %s, where it is not",
		    c->domain, session_jid(s), full, name);
		return;
	}
	if (reflect) {
		struct pres p = { .unavailable = 1,
		    .id = stanza_attr(st, "id"), .codes = { 110 } };
		if (r->state == ROOM_JOINED) {
			send_self(s, r, m, &p);
		} else {
			p.jid = m->jid;
			send_user(s, occupant_presence(r, m->asked, m->jid,
			    &p));
		}
	}
	member_remove(r, m);
	if (r->nmembers > 0)
		return;
	if (r->persistent && r->state != ROOM_PENDING) {
		/* Bouncer mode: the network membership stays, and what is
		 * said from now on is history for the next join. */
		r->seen = store_archive_last(cw->store);
		store_room_seen(cw->store, c->domain, session_jid(s), r->key,
		    r->seen);
		log_info("%s: %s: %s stays joined while the user is away "
		    "(persistent)", c->domain, session_jid(s), name);
		return;
	}
	log_info("%s: %s: leaving %s", c->domain, session_jid(s), name);
	enum room_state was = r->state;
	char *legacy = xstrdup(r->name);
	room_forget(s, r);
	if (was != ROOM_PENDING && c->backend->leave_room != NULL) {
		char *status = stanza_child_text(st, "status");
		c->backend->leave_room(s, legacy, status);
		free(status);
	}
	free(legacy);
	release_later(s);
}

static void
change_nick(struct component *c, const struct stanza *st,
    struct session *s, struct room *r, const char *full, const char *nick)
{
	const struct backend *b = c->backend;
	struct occupant *o = occ_find(&r->occ, nick);
	if (o != NULL) {
		reply_error(c, st, "conflict", "that nickname is in use in "
		    "this room");
		return;
	}
	if (b->change_nick == NULL) {
		reply_error(c, st, "feature-not-implemented",
		    "this gateway cannot change nicknames");
		return;
	}
	struct backend_error err = { .condition = NULL };
	char *legacy = xstrdup(r->name);
	log_info("%s: %s: changing nick in %s to %s", c->domain,
	    session_jid(s), legacy, nick);
	/* The network may refuse later (room_nick_change_failed): keep
	 * whom to tell before the backend can answer. */
	free(r->nick_req);
	free(r->nick_req_jid);
	free(r->nick_req_id);
	r->nick_req = xstrdup(nick);
	r->nick_req_jid = xstrdup(full);
	r->nick_req_id = stanza_attr(st, "id") ? xstrdup(stanza_attr(st,
	    "id")) : NULL;
	if (b->change_nick(s, legacy, nick, &err) != 0)
		reply_error(c, st, err.condition ? err.condition :
		    "not-acceptable", err.text[0] ? err.text : NULL);
	free(legacy);
}

void
room_handle_presence(struct component *c, const struct stanza *st,
    const struct jid *from, const struct jid *to, const char *room)
{
	const char *type = stanza_attr(st, "type");
	int unavailable = type != NULL && strcmp(type, "unavailable") == 0;
	/* A presence error from the user's client means that resource is
	 * gone: it leaves, silently (an error never gets an answer). */
	int bounced = type != NULL && strcmp(type, "error") == 0;

	if (type != NULL && !unavailable && !bounced) {
		log_debug("%s: presence type %s to the room %s ignored",
		    c->domain, type, room);
		return;
	}
	char *bare = jid_bare_string(from);
	char *full = jid_to_string(from);
	struct session *s = session_find_registered(c, bare);

	if (unavailable || bounced) {
		if (s != NULL && to->resource != NULL)
			leave(c, st, s, full, room, !bounced);
		goto out;
	}
	if (s == NULL && !component_open_access(c)) {
		reply_error(c, st, "registration-required",
		    "register with the gateway before joining its rooms");
		goto out;
	}
	const char *why = NULL;
	const char *problem = nick_problem(to->resource, &why);
	if (problem != NULL) {
		reply_error(c, st, problem, why);
		goto out;
	}
	/* An open gateway: the first join creates the user and session. */
	if (s == NULL && (s = session_for_use(c, bare)) == NULL) {
		reply_error(c, st, "internal-server-error",
		    "the gateway could not keep your session");
		goto out;
	}
	struct room *r = room_find(s, room);
	struct member *m = r ? member_find(r, full) : NULL;
	if (m == NULL) {
		join(c, st, s, full, room, to->resource);
	} else if (r->state != ROOM_JOINED) {
		/* Still joining: the answer is on its way. */
	} else if (stanza_child(st, "x", NS_MUC) != NULL) {
		/* A client that believes it is out joins again (XEP-0410,
		 * a reconnect), maybe with the nick it was configured with:
		 * it gets the whole join sequence, with the room's nick (210
		 * when it asked another).  A join is no nick change (those
		 * carry no <x/>, XEP-0045 7.6), so nothing goes to the
		 * network. */
		free(m->id);
		m->id = stanza_attr(st, "id") ? xstrdup(stanza_attr(st,
		    "id")) : NULL;
		free(m->asked);
		m->asked = xstrdup(to->resource);
		read_history_request(m, st);
		send_join(s, r, m);
	} else if (strcmp(to->resource, r->nick) != 0) {
		change_nick(c, st, s, r, full, to->resource);
	} else {
		/* A presence update: reflected, the network has no use for
		 * it. */
		struct pres p = { .codes = { 110 } };
		send_self(s, r, m, &p);
	}
out:
	free(bare);
	free(full);
}

/* The room and member the sender is in, or NULL. */
static struct room *
joined_room(struct component *c, const struct jid *from, const char *room,
    struct session **sp, struct member **mp)
{
	char *bare = jid_bare_string(from);
	struct session *s = session_find_registered(c, bare);
	free(bare);
	*sp = s;
	*mp = NULL;
	if (s == NULL)
		return NULL;
	struct room *r = room_find(s, room);
	if (r == NULL || r->state != ROOM_JOINED)
		return NULL;
	char *full = jid_to_string(from);
	*mp = member_find(r, full);
	free(full);
	return *mp ? r : NULL;
}

/*
 * A groupchat body goes to the network line by line, each line a
 * message of its own that is reflected on its own (a chat network has no
 * multi-line messages; the user then sees what the channel saw): the
 * first line with the stanza's id, the others with new ones, every one
 * with the client's XEP-0359 origin-id.  Empty lines are skipped.  The
 * first refusal is answered with the stanza's id, and the lines after
 * it are not sent.
 */
static void
send_lines(struct component *c, const struct stanza *st, struct session *s,
    struct room *r, const char *body)
{
	const struct stanza *o = stanza_child(st, "origin-id", NS_SID);
	char *origin = o != NULL && stanza_attr(o, "id") != NULL ?
	    xstrdup(stanza_attr(o, "id")) : NULL;
	char *name = xstrdup(r->name);
	const char *sent_id = stanza_attr(st, "id");
	int first = 1;
	for (const char *p = body; *p != '\0'; ) {
		size_t len = strcspn(p, "\n");
		char *line = xstrndup(p, len);
		p += len + (p[len] == '\n');
		/* CR LF from a client that writes both. */
		if (len > 0 && line[len - 1] == '\r')
			line[--len] = '\0';
		if (strspn(line, " \t\r") == len) {
			free(line);
			continue;
		}
		char fresh[48];
		const char *id = first ? sent_id : NULL;
		if (id == NULL) {
			new_stanza_id(fresh, sizeof(fresh));
			id = fresh;
		}
		first = 0;
		/* The backend may reflect from inside the call: expect it
		 * first, and find the room again after. */
		reflect_expect(r, id, origin);
		struct backend_error err = { .condition = NULL };
		int rc = c->backend->send_groupchat(s, name, id, line, &err);
		free(line);
		r = room_find(s, name);
		if (rc != 0) {
			if (r != NULL)
				free(reflect_take(r, id));
			metrics_send_failure(c->domain, c->backend->name,
			    err.condition);
			reply_error(c, st, err.condition ? err.condition :
			    "undefined-condition", err.text[0] ? err.text :
			    NULL);
			break;
		}
		if (r == NULL || r->state != ROOM_JOINED)
			break;
	}
	free(name);
	free(origin);
}

void
room_handle_message(struct component *c, const struct stanza *st,
    const struct jid *from, const struct jid *to, const char *room)
{
	const struct backend *b = c->backend;
	const char *type = stanza_attr(st, "type");
	if (type != NULL && strcmp(type, "error") == 0)
		return;
	int is_groupchat = type != NULL && strcmp(type, "groupchat") == 0;
	struct session *s;
	struct member *m;
	struct room *r = joined_room(c, from, room, &s, &m);
	char *body = stanza_child_text(st, "body");
	struct backend_error err = { .condition = NULL };

	if (to->resource == NULL && is_groupchat) {
		const struct stanza *subject = stanza_child(st, "subject",
		    NULL);
		if (r == NULL) {
			reply_error(c, st, "not-acceptable", "you are not in "
			    "this room: join it first");
		} else if (subject != NULL && body == NULL) {
			char *text = stanza_text(subject);
			if (b->set_subject == NULL)
				reply_error(c, st, "feature-not-implemented",
				    "this gateway cannot change subjects");
			else if (b->set_subject(s, room, text, &err) != 0)
				reply_error(c, st, err.condition ?
				    err.condition : "forbidden",
				    err.text[0] ? err.text : NULL);
			free(text);
		} else if (body == NULL) {
			/* Chat states and the like: nothing to carry. */
		} else if (b->send_groupchat == NULL) {
			reply_error(c, st, "feature-not-implemented",
			    "this gateway cannot send to rooms yet");
		} else {
			send_lines(c, st, s, r, body);
		}
	} else if (to->resource == NULL) {
		if (stanza_child(st, "x", NS_MUC_USER) != NULL)
			reply_error(c, st, "feature-not-implemented",
			    "this gateway cannot invite to rooms");
		else if (body != NULL)
			reply_error(c, st, "bad-request", "messages to a room "
			    "are of type groupchat");
	} else if (is_groupchat) {
		reply_error(c, st, "bad-request", "a private message is not "
		    "of type groupchat");
	} else if (body == NULL) {
		/* Chat states toward an occupant: nothing to carry. */
	} else if (r == NULL) {
		reply_error(c, st, "not-acceptable", "you are not in this "
		    "room: join it first");
	} else if (occ_find(&r->occ, to->resource) == NULL) {
		reply_error(c, st, "item-not-found", "nobody in the room has "
		    "that nickname");
	} else if (b->send_private == NULL) {
		reply_error(c, st, "feature-not-implemented",
		    "this gateway cannot send private messages in rooms");
	} else if (b->send_private(s, room, to->resource, body, &err) != 0) {
		reply_error(c, st, err.condition ? err.condition :
		    "undefined-condition", err.text[0] ? err.text : NULL);
	}
	free(body);
}

/* The room's archive id in the store, 0 when it has none, -1 on error. */
static long long
archive_of(struct component *c, const char *room)
{
	char *key = room_key(room);
	long long id = store_archive_room(cw->store, c->domain, key, 0);
	free(key);
	return id;
}

static struct stanza *
disco_info(struct component *c, const struct stanza *iq, struct session *s,
    const char *room)
{
	struct room *r = s ? room_find(s, room) : NULL;
	struct stanza *res = stanza_reply(iq, "result");
	struct stanza *qy = stanza_new_child(res, "query", NS_DISCO_INFO);
	struct stanza *id = stanza_new_child(qy, "identity", NULL);
	stanza_set_attr(id, "category", "conference");
	stanza_set_attr(id, "type", c->backend->gateway_type);
	char name[256];
	stanza_set_attr(id, "name", c->backend->display_name != NULL &&
	    c->backend->display_name(c, room, name, sizeof(name)) == 1 &&
	    name[0] != '\0' ? name : room);
	/* What a legacy channel is, as far as the gateway knows: anyone may
	 * enter, everyone's nick is public and the room ends with its last
	 * occupant.  Only a key the user gave tells us it is protected. */
	const char *features[] = {
		NS_DISCO_INFO, NS_MUC, "muc_nonanonymous", "muc_temporary",
		"muc_open", "muc_unmoderated",
		r != NULL && r->with_password ? "muc_passwordprotected" :
		    "muc_unsecured",
		NS_SID, NS_SELF_PING_OPT,
	};
	for (size_t i = 0; i < sizeof(features) / sizeof(features[0]); i++)
		stanza_set_attr(stanza_new_child(qy, "feature", NULL), "var",
		    features[i]);
	/* XEP-0313 8: every room is archived while a user of the gateway
	 * is in it; saying so for every room tells nothing about anyone. */
	stanza_set_attr(stanza_new_child(qy, "feature", NULL), "var", NS_MAM);
	return res;
}

/* 1 when v is one of the NULL-terminated names. */
static int
one_of(const char *v, const char *const *names)
{
	for (; v != NULL && *names != NULL; names++)
		if (strcmp(v, *names) == 0)
			return 1;
	return 0;
}

/* The nick of the occupant whose item carries jid (the contact JID of
 * backend->occupant_address; caller frees), or NULL.  Clients ban by
 * jid (XEP-0045 9.1). */
static char *
nick_of_jid(struct component *c, struct room *r, const char *jid)
{
	struct jid j;
	if (c->backend->occupant_address == NULL || jid_parse(jid, &j) != 0)
		return NULL;
	char *legacy = j.local != NULL && strcmp(j.domain, c->domain) == 0 ?
	    jid_unescape_local(j.local) : NULL;
	jid_clear(&j);
	char *nick = NULL;
	for (uint32_t i = 0; legacy != NULL && nick == NULL && i < r->occ.n;
	    i++) {
		const char *n = room_nick_str(r->occ.v[i].nick);
		char *addr = c->backend->occupant_address(c, r->name, n);
		if (addr != NULL && strcasecmp(addr, legacy) == 0)
			nick = xstrdup(n);
		free(addr);
	}
	free(legacy);
	return nick;
}

/* admin() with the item checked and its nick known. */
static struct stanza *
admin_apply(struct component *c, const struct stanza *iq,
    const struct stanza *item, struct session *s, struct room *r,
    const char *room, const char *nick, const char *role, const char *affil)
{
	const struct backend *b = c->backend;
	/* A ban and its lifting may name someone who is not here (the
	 * network keeps masks); everything else is for occupants. */
	int absent_ok = affil != NULL && (strcmp(affil, "outcast") == 0 ||
	    strcmp(affil, "none") == 0);
	if (!absent_ok && occ_find(&r->occ, nick) == NULL)
		return stanza_error_reply(iq, "item-not-found", "nobody in "
		    "the room has that nickname");
	char *reason = stanza_child_text(item, "reason");
	struct backend_error err = { .condition = NULL };
	int rc;                     /* the backend's 0 or -1; 1: no such
	                             * operation in this backend */
	const char *what;
	if (affil != NULL) {
		what = affil;
		rc = b->set_affiliation == NULL ? 1 : b->set_affiliation(s,
		    room, nick, affil, reason, &err);
	} else if (strcmp(role, "none") == 0) {
		what = "kick";
		rc = b->kick == NULL ? 1 : b->kick(s, room, nick, reason,
		    &err);
	} else {
		what = role;
		rc = b->set_role == NULL ? 1 : b->set_role(s, room, nick,
		    role, reason, &err);
	}
	free(reason);
	if (rc == 1)
		return stanza_error_reply(iq, "feature-not-implemented",
		    "this gateway cannot do that on its network");
	if (rc != 0)
		return stanza_error_reply(iq, err.condition ? err.condition :
		    "not-allowed", err.text[0] ? err.text : NULL);
	log_info("%s: %s: %s %s in %s", c->domain, session_jid(s), what,
	    nick, room);
	return stanza_reply(iq, "result");
}

/*
 * XEP-0045 9 and 10, muc#admin by nick: role none is a kick (10.3.1),
 * the other roles voice and operator status (9.6, 10.4), affiliations
 * bans and their lifting (9.1, 9.2) and the network's ranks; the
 * backend says what each is on its network.  Lists (a get) are the
 * network's own: not offered.
 */
static struct stanza *
admin(struct component *c, const struct stanza *iq,
    const struct stanza *query, const struct jid *from, const char *room)
{
	static const char *const roles[] = { "visitor", "participant",
	    "moderator", NULL };
	static const char *const affils[] = { "outcast", "none", "member",
	    "admin", "owner", NULL };
	struct session *s;
	struct member *m;
	struct room *r = joined_room(c, from, room, &s, &m);
	const struct stanza *item = stanza_child(query, "item", NULL);
	if (strcmp(stanza_attr(iq, "type"), "set") != 0)
		return stanza_error_reply(iq, "feature-not-implemented",
		    "the network keeps its own lists of roles and bans");
	if (item == NULL || stanza_next_sibling(item) != NULL)
		return stanza_error_reply(iq, "bad-request", "one <item/> "
		    "at a time");
	const char *nick = stanza_attr(item, "nick");
	const char *role = stanza_attr(item, "role");
	const char *affil = stanza_attr(item, "affiliation");
	const char *jid = stanza_attr(item, "jid");
	if ((nick == NULL || *nick == '\0') && jid == NULL)
		return stanza_error_reply(iq, "bad-request", "this gateway "
		    "needs the occupant's nick or the jid of their item");
	if ((role == NULL && affil == NULL) ||
	    (role != NULL && strcmp(role, "none") != 0 &&
	    !one_of(role, roles)) ||
	    (affil != NULL && !one_of(affil, affils)))
		return stanza_error_reply(iq, "bad-request", "not a role or "
		    "affiliation of XEP-0045");
	if (r == NULL)
		return stanza_error_reply(iq, "forbidden", "you are not in "
		    "this room");
	char *by_jid = NULL;
	if (nick == NULL || *nick == '\0') {
		if ((by_jid = nick_of_jid(c, r, jid)) == NULL)
			return stanza_error_reply(iq, "item-not-found",
			    "nobody in the room has that address");
		nick = by_jid;
	}
	struct stanza *res = admin_apply(c, iq, item, s, r, room, nick, role,
	    affil);
	free(by_jid);
	return res;
}

/* ---- the owner form: the user's settings of the room ---- */

static const struct form_field_spec owner_fields[] = {
	{ .var = "persistent", .type = FIELD_BOOLEAN,
	  .label = "Stay in the room while I am away (archive it and replay "
	  "what I missed)" },
	{ .var = "encoding", .type = FIELD_TEXT_SINGLE,
	  .label = "Charset of messages that are not UTF-8",
	  .desc = "e.g. ISO-8859-15; empty: the server's", .max_len = 64 },
};
#define NOWNER_FIELDS (sizeof(owner_fields) / sizeof(owner_fields[0]))

/* 1 when iconv can decode charset into UTF-8. */
static int
charset_known(const char *charset)
{
	iconv_t cd = iconv_open("UTF-8", charset);
	if (cd == (iconv_t)-1)
		return 0;
	iconv_close(cd);
	return 1;
}

/*
 * XEP-0045 10.2: the room's configuration form, which on a gateway holds
 * the asking user's own settings of the room (the network owns the
 * rest).  Only a user in the room may see or change them.
 */
static struct stanza *
owner(struct component *c, const struct stanza *iq,
    const struct stanza *query, const struct jid *from, const char *room)
{
	struct session *s;
	struct member *m;
	struct room *r = joined_room(c, from, room, &s, &m);
	if (r == NULL)
		return stanza_error_reply(iq, "forbidden", "join the room to "
		    "change your settings of it");
	if (strcmp(stanza_attr(iq, "type"), "get") == 0) {
		struct form *values = form_new();
		form_add(values, "persistent", r->persistent ? "1" : "0");
		form_add(values, "encoding", r->encoding ? r->encoding : "");
		struct stanza *res = stanza_reply(iq, "result");
		struct stanza *q = stanza_new_child(res, "query",
		    NS_MUC_OWNER);
		char *title = xasprintf("Your settings of %s", room);
		stanza_add_child(q, form_build("form", title, "These "
		    "settings are yours alone; the network keeps the room's "
		    "own.", NS_ROOMCONFIG, owner_fields, NOWNER_FIELDS,
		    values));
		free(title);
		form_free(values);
		return res;
	}
	const struct stanza *x = stanza_child(query, "x", NS_DATA);
	if (x == NULL)
		return stanza_error_reply(iq, "feature-not-implemented",
		    "this gateway only takes its configuration form here");
	struct form *f = NULL;
	char *why = NULL;
	if (form_parse(x, &f, &why) != 0) {
		struct stanza *e = stanza_error_reply(iq, "bad-request", why);
		free(why);
		return e;
	}
	if (strcmp(form_kind(f), "cancel") == 0) {
		form_free(f);
		return stanza_reply(iq, "result");
	}
	if (strcmp(form_kind(f), "submit") != 0 || form_validate(f,
	    NS_ROOMCONFIG, owner_fields, NOWNER_FIELDS, NULL, &why) != 0) {
		form_free(f);
		struct stanza *e = stanza_error_reply(iq, "bad-request",
		    why ? why : "submit the form");
		free(why);
		return e;
	}
	int persistent = form_value(f, "persistent") ? form_bool(f,
	    "persistent") : r->persistent;
	const char *enc = form_value(f, "encoding");
	if (enc == NULL)
		enc = r->encoding;
	if (enc != NULL && *enc == '\0')
		enc = NULL;
	if (enc != NULL && !charset_known(enc)) {
		form_free(f);
		return stanza_error_reply(iq, "not-acceptable", "this gateway "
		    "does not know that charset");
	}
	char *encoding = enc ? xstrdup(enc) : NULL;
	form_free(f);
	int was = r->persistent;
	r->persistent = persistent;
	archive_update(r);
	if (store_room_set(cw->store, c->domain, session_jid(s), r->key,
	    persistent, encoding) != 0) {
		r->persistent = was;
		archive_update(r);
		free(encoding);
		return stanza_error_reply(iq, "internal-server-error",
		    "the settings could not be stored");
	}
	free(r->encoding);
	r->encoding = encoding;
	if (persistent && !was) {
		/* What is archived from now on is news to the user. */
		r->seen = store_archive_last(cw->store);
		store_room_seen(cw->store, c->domain, session_jid(s), r->key,
		    r->seen);
	}
	log_info("%s: %s: %s: persistent %s, encoding %s", c->domain,
	    session_jid(s), room, persistent ? "yes" : "no",
	    encoding ? encoding : "(the server's)");
	return stanza_reply(iq, "result");
}

/* ---- XEP-0313 message archive management on the room ---- */

static const struct form_field_spec mam_fields[] = {
	{ .var = "start", .type = FIELD_TEXT_SINGLE, .label = "Since" },
	{ .var = "end", .type = FIELD_TEXT_SINGLE, .label = "Until" },
	{ .var = "with", .type = FIELD_JID_SINGLE,
	  .label = "From (ROOM/NICK)" },
};
#define NMAM_FIELDS (sizeof(mam_fields) / sizeof(mam_fields[0]))

/* Where MAM results go and what they say they answer. */
struct room_mam {
	const char *queryid;
	const char *room_jid;
	const char *to;
};

/* A stanza to the user outside any session's rooms (MAM results). */
static void
send_user_component(struct component *c, struct stanza *st)
{
	if (c->state == COMPONENT_READY)
		component_send(c, st);
	else
		stanza_free(st);
}

/* An archive id from a MAM/RSM id ("ID-SUFFIX"), or 0. */
static long long
mam_id(const char *text)
{
	if (text == NULL)
		return 0;
	char *end;
	errno = 0;
	long long id = strtoll(text, &end, 10);
	if (errno != 0 || end == text || id <= 0)
		return 0;
	/* Our suffix is 16 hex digits: an imported id that merely starts
	 * with digits and a dash (a uuid) is not an archive id. */
	if (*end == '-' && strlen(end + 1) == 16 &&
	    strspn(end + 1, "0123456789abcdef") == 16)
		return id;
	return *end == '\0' ? id : 0;
}

static struct stanza *
mam_result(const struct room_mam *mr, const struct store_archive_msg *v)
{
	struct stanza *msg = stanza_new("message", NS_COMPONENT);
	stanza_set_attr(msg, "from", mr->room_jid);
	stanza_set_attr(msg, "to", mr->to);
	struct stanza *res = stanza_new_child(msg, "result", NS_MAM);
	if (mr->queryid != NULL)
		stanza_set_attr(res, "queryid", mr->queryid);
	stanza_set_attr(res, "id", v->sid);
	struct stanza *fwd = stanza_new_child(res, "forwarded", NS_FORWARD);
	stanza_add_delay(fwd, NULL, v->stamp);
	struct stanza *inner = stanza_new_child(fwd, "message", NS_CLIENT);
	char *from = xasprintf("%s/%s", mr->room_jid, v->nick);
	stanza_set_attr(inner, "from", from);
	free(from);
	stanza_set_attr(inner, "type", "groupchat");
	stanza_set_attr(inner, "id", v->sid);
	stanza_new_text_child(inner, "body", v->body);
	return msg;
}

/*
 * XEP-0313 query on the room: for a user in the room or who persists
 * it.  Filters start, end and with (ROOM/NICK); XEP-0059 paging with
 * max, after and before (empty: the last page).  The results go to the
 * asking resource first, then the iq result with <fin/>.
 */
static struct stanza *
mam(struct component *c, const struct stanza *iq, const struct stanza *query,
    const struct jid *from, const char *room)
{
	struct session *s;
	struct member *m;
	struct room *r = joined_room(c, from, room, &s, &m);
	/* Only what was said while the user was in the room: the reader
	 * filter of every query below.  Someone who never was gets a
	 * refusal rather than an empty archive. */
	char *reader = jid_bare_string(from);
	char *key = room_key(room);
	int allowed = r != NULL || store_member_any(cw->store, c->domain,
	    reader, key) == 1;
	free(key);
	if (!allowed) {
		free(reader);
		return stanza_error_reply(iq, "forbidden", "only users who "
		    "were in the room may read its archive");
	}

	if (strcmp(stanza_attr(iq, "type"), "get") == 0) {
		/* XEP-0313 5.1: the fields this archive can filter on. */
		struct stanza *res = stanza_reply(iq, "result");
		struct stanza *q = stanza_new_child(res, "query", NS_MAM);
		stanza_add_child(q, form_build("form", NULL, NULL, NS_MAM,
		    mam_fields, NMAM_FIELDS, NULL));
		free(reader);
		return res;
	}

	struct store_archive_query q = { .max = MAM_PAGE_DEFAULT,
	    .reader = reader };
	struct room_mam mr = { .queryid = stanza_attr(query, "queryid") };
	char *room_jid = session_contact_jid(c, room);
	mr.room_jid = room_jid;
	mr.to = stanza_attr(iq, "from");
	const char *bad = NULL;

	const struct stanza *x = stanza_child(query, "x", NS_DATA);
	struct form *f = NULL;
	char *why = NULL;
	if (x != NULL && (form_parse(x, &f, &why) != 0 ||
	    form_validate(f, NS_MAM, mam_fields, NMAM_FIELDS, NULL,
	    &why) != 0)) {
		struct stanza *e = stanza_error_reply(iq, "bad-request", why);
		free(why);
		form_free(f);
		free(room_jid);
		free(reader);
		return e;
	}
	const char *v;
	if (f != NULL && (v = form_value(f, "start")) != NULL && *v &&
	    (q.start = parse_datetime(v)) < 0)
		bad = "start is not a date and time";
	if (f != NULL && (v = form_value(f, "end")) != NULL && *v &&
	    (q.end = parse_datetime(v)) < 0)
		bad = "end is not a date and time";
	char *with_nick = NULL;
	if (f != NULL && (v = form_value(f, "with")) != NULL && *v) {
		/* Occupants are ROOM/NICK; any other address said nothing
		 * here (an empty nick matches no message). */
		struct jid wj;
		if (jid_parse(v, &wj) == 0) {
			char *wb = jid_bare_string(&wj);
			with_nick = xstrdup(wj.resource != NULL &&
			    strcasecmp(wb, room_jid) == 0 ? wj.resource : "");
			free(wb);
			jid_clear(&wj);
		} else {
			bad = "with is not an address";
		}
	}
	q.nick = with_nick;
	form_free(f);

	const struct stanza *set = stanza_child(query, "set", NS_RSM);
	const struct stanza *before = set ? stanza_child(set, "before",
	    NULL) : NULL;
	char *t;
	if (set != NULL && (t = stanza_child_text(set, "max")) != NULL) {
		char *end;
		long n = strtol(t, &end, 10);
		if (end == t || *end != '\0' || n < 0)
			bad = "max is not a number";
		q.max = n > MAM_PAGE_MAX ? MAM_PAGE_MAX : n < 0 ? 0 :
		    (size_t)n;
		free(t);
	}
	long long anchor = 0;
	const char *anchor_text = NULL;
	char *after_text = set ? stanza_child_text(set, "after") : NULL;
	char *before_text = before ? stanza_text(before) : NULL;
	if (before != NULL) {
		q.backward = 1;
		if (before_text != NULL && *before_text != '\0')
			anchor_text = before_text;
	} else if (after_text != NULL) {
		anchor_text = after_text;
	}

	struct stanza *answer = NULL;
	q.room = archive_of(c, room);
	if (bad == NULL && anchor_text != NULL) {
		/* A stanza-id kept by an import (biboumi's uuids) first:
		 * one may begin with digits and a dash. */
		anchor = q.room > 0 ? store_archive_find_sid(cw->store,
		    q.room, anchor_text) : 0;
		if (anchor <= 0)
			anchor = mam_id(anchor_text);
		if (anchor == 0 || q.room <= 0 || store_archive_has(cw->store,
		    q.room, anchor, reader) != 1)
			answer = stanza_error_reply(iq, "item-not-found",
			    "no message in this archive has that id");
		else if (q.backward)
			q.before = anchor;
		else
			q.after = anchor;
	}
	if (bad != NULL)
		answer = stanza_error_reply(iq, "bad-request", bad);
	if (answer == NULL && q.room < 0)
		answer = stanza_error_reply(iq, "internal-server-error", NULL);
	if (answer != NULL) {
		free(with_nick);
		free(after_text);
		free(before_text);
		free(room_jid);
		free(reader);
		return answer;
	}

	struct store_archive_msg *msgs = NULL;
	size_t n = 0;
	long long count = 0;
	int complete = 1;
	if (q.room > 0) {
		struct store_archive_query all = q;
		all.after = all.before = 0;
		count = store_archive_count(cw->store, &all);
		/* One more than asked tells whether the page is the last. */
		size_t want = q.max;
		q.max = want + 1;
		if (store_archive_query(cw->store, &q, &msgs, &n) != 0) {
			free(with_nick);
			free(after_text);
			free(before_text);
			free(room_jid);
			free(reader);
			return stanza_error_reply(iq, "internal-server-error",
			    NULL);
		}
		if (n > want) {
			complete = 0;
			if (q.backward) {
				/* Drop the oldest: it is beyond the page. */
				free(msgs[0].nick);
				free(msgs[0].body);
				free(msgs[0].sid);
				memmove(msgs, msgs + 1, (n - 1) *
				    sizeof(*msgs));
			} else {
				free(msgs[n - 1].nick);
				free(msgs[n - 1].body);
				free(msgs[n - 1].sid);
			}
			n--;
		}
	}
	for (size_t i = 0; i < n; i++)
		send_user_component(c, mam_result(&mr, &msgs[i]));

	struct stanza *res = stanza_reply(iq, "result");
	struct stanza *fin = stanza_new_child(res, "fin", NS_MAM);
	if (complete)
		stanza_set_attr(fin, "complete", "true");
	struct stanza *rsm = stanza_new_child(fin, "set", NS_RSM);
	if (n > 0) {
		stanza_new_text_child(rsm, "first", msgs[0].sid);
		stanza_new_text_child(rsm, "last", msgs[n - 1].sid);
	}
	char num[32];
	snprintf(num, sizeof(num), "%lld", count < 0 ? 0 : count);
	stanza_new_text_child(rsm, "count", num);
	log_info("%s: %s: MAM query on %s: %zu of %lld messages%s", c->domain,
	    mr.to, room, n, count, complete ? " (complete)" : "");
	store_archive_msgs_free(msgs, n);
	free(with_nick);
	free(after_text);
	free(before_text);
	free(room_jid);
	free(reader);
	return res;
}

struct stanza *
room_handle_iq(struct component *c, const struct stanza *iq,
    const struct jid *from, const struct jid *to, const char *room)
{
	const struct stanza *payload = stanza_first_child(iq);
	const char *ns = payload ? stanza_ns(payload) : NULL;
	int get = strcmp(stanza_attr(iq, "type"), "get") == 0;
	if (ns == NULL)
		return stanza_error_reply(iq, "service-unavailable", NULL);

	if (to->resource == NULL) {
		if (get && strcmp(ns, NS_DISCO_INFO) == 0 &&
		    strcmp(stanza_name(payload), "query") == 0) {
			const char *node = stanza_attr(payload, "node");
			if (node != NULL && strcmp(node, NS_MUC_TRAFFIC) == 0) {
				/* XEP-0045's muc#traffic node: the payloads a
				 * room lets through beyond bodies; a network's
				 * channel carries none of them. */
				struct stanza *res = stanza_reply(iq, "result");
				stanza_set_attr(stanza_new_child(res, "query",
				    NS_DISCO_INFO), "node", NS_MUC_TRAFFIC);
				return res;
			}
			if (node != NULL)
				return stanza_error_reply(iq,
				    "item-not-found", NULL);
			char *bare = jid_bare_string(from);
			struct session *s = session_find_registered(c, bare);
			free(bare);
			return disco_info(c, iq, s, room);
		}
		if (strcmp(ns, NS_MUC_ADMIN) == 0 &&
		    strcmp(stanza_name(payload), "query") == 0)
			return admin(c, iq, payload, from, room);
		if (strcmp(ns, NS_MUC_OWNER) == 0 &&
		    strcmp(stanza_name(payload), "query") == 0)
			return owner(c, iq, payload, from, room);
		if (strcmp(ns, NS_MAM) == 0 &&
		    strcmp(stanza_name(payload), "query") == 0)
			return mam(c, iq, payload, from, room);
		return stanza_error_reply(iq, "service-unavailable", NULL);
	}

	struct session *s;
	struct member *m;
	struct room *r = joined_room(c, from, room, &s, &m);
	if (get && strcmp(ns, NS_PING) == 0) {
		/* XEP-0410: the gateway answers for the user's own nick and
		 * for occupants, who have no XMPP client to ask. */
		if (r == NULL)
			return stanza_error_reply(iq, "not-acceptable",
			    "you are not in this room");
		if (strcmp(to->resource, r->nick) == 0 ||
		    occ_find(&r->occ, to->resource) != NULL)
			return stanza_reply(iq, "result");
		return stanza_error_reply(iq, "item-not-found",
		    "nobody in the room has that nickname");
	}
	if (strcmp(ns, NS_DISCO_INFO) == 0) {
		/* XEP-0045 6.7: non-occupants get bad-request; occupants'
		 * queries cannot pass to a legacy user. */
		if (r == NULL)
			return stanza_error_reply(iq, "bad-request",
			    "you are not in this room");
		return stanza_error_reply(iq, "service-unavailable", NULL);
	}
	return stanza_error_reply(iq, "service-unavailable", NULL);
}

/* ---- from session.c ---- */

void
room_session_online(struct session *s)
{
	struct room_set *set = set_of(s);
	if (set == NULL)
		return;
	/* One at a time from the start: a backend may answer (and change
	 * the list) from inside join_room(). */
	for (;;) {
		struct room *r;
		for (r = set->rooms; r != NULL; r = r->next)
			if (r->state == ROOM_PENDING)
				break;
		if (r == NULL)
			break;
		if (session_component(s)->backend->join_room == NULL) {
			fail_join(s, r, "feature-not-implemented",
			    "this gateway cannot join rooms yet");
			continue;
		}
		send_join_request(s, r);
	}
}

void
room_session_offline(struct session *s, const char *reason)
{
	struct room_set *set = set_of(s);
	if (set == NULL)
		return;
	while (set->rooms != NULL) {
		struct room *r = set->rooms;
		if (r->state != ROOM_JOINED) {
			fail_join(s, r, "service-unavailable", reason);
			continue;
		}
		struct pres p = { .unavailable = 1, .status = reason,
		    .codes = { 110, 332 } };
		for (size_t i = 0; i < r->nmembers; i++)
			send_self(s, r, &r->members[i], &p);
		log_info("%s: %s: out of %s: %s", session_component(s)->domain,
		    session_jid(s), r->name, reason ? reason : "offline");
		room_forget(s, r);
	}
	/* The session is ending already: no release. */
}

unsigned
room_session_count(const struct session *s)
{
	const struct room_set *set = session_rooms(s);
	return set ? set->count : 0;
}

void
room_session_free(struct session *s)
{
	struct room_set *set = set_of(s);
	if (set == NULL)
		return;
	while (set->rooms != NULL) {
		struct room *r = set->rooms;
		set->rooms = r->next;
		room_free(r);
	}
	event_free(set->release);
	free(set);
	session_set_rooms(s, NULL);
}

/* ---- from the backend ---- */

/* The room the backend speaks of, in one of the states given (a bit
 * mask of 1 << state); NULL (logged) otherwise. */
static struct room *
backend_room(struct session *s, const char *room, unsigned states,
    const char *what)
{
	struct room *r = room_find(s, room);
	if (r == NULL || !(states & (1u << r->state))) {
		log_debug("%s: %s: %s for %s, which the user is %s; ignored",
		    session_component(s)->domain, session_jid(s), what,
		    room ? room : "(null)", r ? "still joining" : "not in");
		return NULL;
	}
	return r;
}

#define JOINING_OR_JOINED ((1u << ROOM_JOINING) | (1u << ROOM_JOINED))

void
room_joined(struct session *s, const char *room, const char *nick)
{
	struct room *r = backend_room(s, room, 1u << ROOM_JOINING,
	    "room_joined");
	if (r == NULL || nick == NULL || *nick == '\0')
		return;
	free(r->nick);
	r->nick = xstrdup(nick);
	r->state = ROOM_JOINED;
	archive_update(r);
	log_info("%s: %s: joined %s as %s (%u occupants)",
	    session_component(s)->domain, session_jid(s), r->name, nick,
	    r->occ.n);
	for (size_t i = 0; i < r->nmembers; i++)
		send_join(s, r, &r->members[i]);
	if (!r->subject_known) {
		struct timeval tv = { 0, 0 };
		evtimer_add(r->subject_timer, &tv);
	}
}

void
room_join_failed(struct session *s, const char *room, const char *condition,
    const char *text)
{
	struct room *r = backend_room(s, room, 1u << ROOM_JOINING,
	    "room_join_failed");
	if (r == NULL)
		return;
	fail_join(s, r, condition ? condition : "undefined-condition", text);
	release_later(s);
}

void
room_occupant(struct session *s, const char *room, const char *nick,
    enum room_role role, enum room_affiliation affiliation)
{
	struct room *r = backend_room(s, room, JOINING_OR_JOINED,
	    "room_occupant");
	if (r == NULL || nick == NULL || *nick == '\0')
		return;
	archive_set_down(r->archive, r, 0);    /* heard: the link is up */
	struct occupant *o = occ_find(&r->occ, nick);
	if (o == NULL) {
		o = occ_add(&r->occ, nick, role, affiliation);
		if (o == NULL) {
			if (!r->full_logged)
				log_warn("%s: %s: %s has over %d occupants; "
				    "the others are not shown",
				    session_component(s)->domain,
				    session_jid(s), r->name,
				    ROOM_MAX_OCCUPANTS);
			r->full_logged = 1;
			return;
		}
	} else {
		o->role = role;
		o->affil = affiliation;
	}
	if (r->state != ROOM_JOINED)
		return;
	if (strcmp(nick, r->nick) == 0) {
		struct pres p = { .role = role, .affil = affiliation,
		    .codes = { 110 } };
		for (size_t i = 0; i < r->nmembers; i++)
			send_self(s, r, &r->members[i], &p);
		return;
	}
	struct pres p = { .role = role, .affil = affiliation };
	send_members(s, r, occupant_presence(r, nick, NULL, &p));
}

void
room_occupant_left(struct session *s, const char *room, const char *nick,
    enum room_leave how, const char *reason)
{
	struct room *r = backend_room(s, room, JOINING_OR_JOINED,
	    "room_occupant_left");
	if (r == NULL || nick == NULL)
		return;
	struct occupant *o = occ_find(&r->occ, nick);
	enum room_affiliation affil = o ? o->affil : AFFIL_NONE;
	struct pres p = { .unavailable = 1, .affil = affil };
	int code = 0;
	if (how == LEAVE_KICK) {
		code = 307;
		p.reason = reason;
	} else if (how == LEAVE_BAN) {
		code = 301;
		p.affil = AFFIL_OUTCAST;
		p.reason = reason;
	} else {
		p.status = reason;
	}

	if (r->state == ROOM_JOINED && strcmp(nick, r->nick) == 0) {
		/* The network put the user out: every resource hears it and
		 * the room is gone (no leave_room: we are not in it). */
		p.codes[0] = 110;
		p.codes[1] = code;
		for (size_t i = 0; i < r->nmembers; i++)
			send_self(s, r, &r->members[i], &p);
		log_info("%s: %s: %s from %s%s%s", session_component(s)->domain,
		    session_jid(s), code == 307 ? "kicked" : code == 301 ?
		    "banned" : "parted", r->name, reason ? ": " : "",
		    reason ? reason : "");
		if (r->persistent) {
			/* Put out by the channel: no more bouncing it, and no
			 * more reading its archive. */
			r->persistent = 0;
			archive_update(r);
			store_room_set(cw->store, session_component(s)->domain,
			    session_jid(s), r->key, 0, r->encoding);
		}
		room_forget(s, r);
		release_later(s);
		return;
	}
	if (o == NULL)
		return;
	occ_remove(&r->occ, o);
	if (r->state != ROOM_JOINED)
		return;
	p.codes[0] = code;
	send_members(s, r, occupant_presence(r, nick, NULL, &p));
}

static void
nick_changed(struct session *s, const char *room, const char *old_nick,
    const char *new_nick, int forced)
{
	struct room *r = backend_room(s, room, JOINING_OR_JOINED,
	    "room_nick_changed");
	if (r == NULL || old_nick == NULL || new_nick == NULL ||
	    *new_nick == '\0' || strcmp(old_nick, new_nick) == 0)
		return;
	int self = strcmp(old_nick, r->nick) == 0;
	struct occupant *o = occ_find(&r->occ, old_nick);
	enum room_role role = o ? o->role : ROLE_PARTICIPANT;
	enum room_affiliation affil = o ? o->affil : AFFIL_NONE;
	if (o == NULL && !self)
		return;
	if (o != NULL)
		occ_remove(&r->occ, o);
	struct occupant *clash = occ_find(&r->occ, new_nick);
	if (clash != NULL)
		occ_remove(&r->occ, clash);
	occ_add(&r->occ, new_nick, role, affil);
	if (self) {
		free(r->nick);
		r->nick = xstrdup(new_nick);
		/* Whatever was asked is answered now. */
		free(r->nick_req);
		r->nick_req = NULL;
	}
	if (r->state != ROOM_JOINED)
		return;
	if (self)
		log_info("%s: %s: now %s in %s", session_component(s)->domain,
		    session_jid(s), new_nick, r->name);
	struct pres gone = { .unavailable = 1, .role = role, .affil = affil,
	    .new_nick = new_nick, .codes = { 303 } };
	struct pres back = { .role = role, .affil = affil };
	if (self) {
		gone.codes[1] = 110;
		back.codes[0] = 110;
		/* XEP-0045 7.6: the service chose the nick, not the user. */
		if (forced)
			back.codes[1] = 210;
	}
	for (size_t i = 0; i < r->nmembers; i++) {
		const char *to = r->members[i].jid;
		struct pres g = gone, b = back;
		if (self)
			g.jid = b.jid = to;
		send_user(s, occupant_presence(r, old_nick, to, &g));
		send_user(s, occupant_presence(r, new_nick, to, &b));
	}
}

void
room_nick_changed(struct session *s, const char *room, const char *old_nick,
    const char *new_nick)
{
	nick_changed(s, room, old_nick, new_nick, 0);
}

void
room_nick_forced(struct session *s, const char *room, const char *old_nick,
    const char *new_nick)
{
	nick_changed(s, room, old_nick, new_nick, 1);
}

void
room_nick_change_failed(struct session *s, const char *room,
    const char *condition, const char *text)
{
	struct room *r = backend_room(s, room, 1u << ROOM_JOINED,
	    "room_nick_change_failed");
	if (r == NULL || r->nick_req == NULL)
		return;
	log_info("%s: %s: nick %s refused in %s: %s%s%s",
	    session_component(s)->domain, session_jid(s), r->nick_req,
	    r->name, condition ? condition : "undefined-condition",
	    text ? ": " : "", text ? text : "");
	/* XEP-0045 7.6: the error comes from the nick asked for, to the
	 * resource that asked (or every resource, if it left meanwhile);
	 * the user keeps the old nick, so no other presence changes. */
	char *from = occupant_jid(r, r->nick_req);
	struct member *asker = r->nick_req_jid ? member_find(r,
	    r->nick_req_jid) : NULL;
	for (size_t i = 0; i < r->nmembers; i++) {
		struct member *m = &r->members[i];
		if (asker != NULL && m != asker)
			continue;
		send_user(s, presence_error(s, from, m->jid,
		    m == asker ? r->nick_req_id : NULL,
		    condition ? condition : "undefined-condition", text));
	}
	free(from);
	free(r->nick_req);
	r->nick_req = NULL;
}

void
room_link_lost(struct session *s, const char *room, const char *text)
{
	struct room *r = backend_room(s, room, 1u << ROOM_JOINED,
	    "room_link_lost");
	if (r == NULL)
		return;
	log_info("%s: %s: %s is out of reach, %u occupants gone: %s",
	    session_component(s)->domain, session_jid(s), r->name,
	    r->occ.n > 0 ? r->occ.n - 1 : 0, text ? text : "");
	/* Out of the channel until the link is back: the user's stretch of
	 * membership ends here (others in the channel go on archiving). */
	archive_set_down(r->archive, r, 1);
	/* A status message from the room itself (clients show it in the
	 * room's window), then everyone else leaves; the user stays, so
	 * the client does not think it was thrown out (no 332). */
	if (text != NULL && *text != '\0')
		send_members(s, r, groupchat(r, NULL, NULL, text));
	/* Removals move occupants: the user is known by nick, not by
	 * pointer. */
	uint32_t self = self_occupant(r)->nick;
	for (size_t i = r->occ.n; i-- > 0; ) {
		struct occupant *o = &r->occ.v[i];
		if (o->nick == self)
			continue;
		struct pres p = { .unavailable = 1, .affil = o->affil };
		send_members(s, r, occupant_presence(r, room_nick_str(o->nick),
		    NULL, &p));
		occ_remove(&r->occ, o);
	}
}

void
room_message(struct session *s, const char *room, const char *nick,
    const char *body)
{
	room_message_at(s, room, nick, body, 0);
}

void
room_message_at(struct session *s, const char *room, const char *nick,
    const char *body, time_t stamp)
{
	struct room *r = backend_room(s, room, 1u << ROOM_JOINED,
	    "room_message");
	if (r == NULL || body == NULL)
		return;
	char sid[64];
	/* The room is heard: its link is up. */
	archive_set_down(r->archive, r, 0);
	archive_message(r, nick, body, stamp, sid, sizeof(sid));
	struct stanza *m = groupchat_sid(r, nick, NULL, body, sid[0] ? sid :
	    NULL);
	stanza_add_delay(m, r->jid, stamp);
	send_members(s, r, m);
}

void
room_message_sent(struct session *s, const char *room, const char *id,
    const char *body)
{
	struct room *r = backend_room(s, room, 1u << ROOM_JOINED,
	    "room_message_sent");
	if (r == NULL || body == NULL)
		return;
	char sid[64];
	archive_message(r, r->nick, body, 0, sid, sizeof(sid));
	struct stanza *m = groupchat_sid(r, r->nick, id, body, sid[0] ? sid :
	    NULL);
	/* XEP-0359: the client knows its own message by its origin-id
	 * (profanity shows a line without it twice). */
	char *origin = reflect_take(r, id);
	if (origin != NULL)
		stanza_set_attr(stanza_new_child(m, "origin-id", NS_SID), "id",
		    origin);
	free(origin);
	send_members(s, r, m);
}

void
room_message_failed(struct session *s, const char *room, const char *id,
    const char *condition, const char *text)
{
	struct room *r = backend_room(s, room, 1u << ROOM_JOINED,
	    "room_message_failed");
	if (r == NULL)
		return;
	free(reflect_take(r, id));
	struct stanza *m = stanza_new("message", NS_COMPONENT);
	stanza_set_attr(m, "to", r->jid);
	if (id != NULL)
		stanza_set_attr(m, "id", id);
	/* The reply is from the room (the "to" above) to each member. */
	struct stanza *err = stanza_error_reply(m, condition, text);
	stanza_free(m);
	stanza_set_attr(err, "from", r->jid);
	send_members(s, r, err);
}

void
room_private_message(struct session *s, const char *room, const char *nick,
    const char *body)
{
	room_private_message_at(s, room, nick, body, 0);
}

void
room_private_message_at(struct session *s, const char *room,
    const char *nick, const char *body, time_t stamp)
{
	struct room *r = backend_room(s, room, 1u << ROOM_JOINED,
	    "room_private_message");
	if (r == NULL || nick == NULL || body == NULL)
		return;
	struct stanza *m = stanza_new("message", NS_COMPONENT);
	char *from = occupant_jid(r, nick);
	stanza_set_attr(m, "from", from);
	free(from);
	stanza_set_attr(m, "type", "chat");
	stanza_new_text_child(m, "body", body);
	/* XEP-0045 7.5: marks it as from a room occupant, not a contact. */
	stanza_new_child(m, "x", NS_MUC_USER);
	stanza_add_delay(m, r->jid, stamp);
	send_members(s, r, m);
}

void
room_subject(struct session *s, const char *room, const char *nick,
    const char *subject)
{
	/* Set now, as far as anyone knows. */
	room_subject_at(s, room, nick, subject, time(NULL));
}

void
room_subject_at(struct session *s, const char *room, const char *nick,
    const char *subject, time_t stamp)
{
	struct room *r = backend_room(s, room, JOINING_OR_JOINED,
	    "room_subject");
	if (r == NULL)
		return;
	if (nick != NULL && *nick == '\0')
		nick = NULL;
	if (r->state == ROOM_JOINED && r->subject_known &&
	    r->subject != NULL && strcmp(r->subject, subject ? subject :
	    "") == 0 && (nick == NULL || (r->subject_nick != NULL &&
	    strcmp(r->subject_nick, nick) == 0))) {
		/* The same subject told again (IRC's 332/333 after a
		 * rejoin): nothing changed, and nobody waits for it
		 * (want_subject is only set before subject_known). */
		return;
	}
	free(r->subject);
	free(r->subject_nick);
	r->subject = xstrdup(subject ? subject : "");
	r->subject_nick = nick ? xstrdup(nick) : NULL;
	r->subject_time = stamp > 0 ? stamp : 0;
	r->subject_known = 1;
	if (r->state != ROOM_JOINED)
		return;
	event_del(r->subject_timer);
	/* Members waiting for their join's subject get it, and so does
	 * everyone else: it changed. */
	for (size_t i = 0; i < r->nmembers; i++)
		send_subject(s, r, &r->members[i],
		    r->members[i].want_subject);
}

void
room_closed(struct session *s, const char *room, const char *reason)
{
	struct room *r = backend_room(s, room,
	    (1u << ROOM_PENDING) | JOINING_OR_JOINED, "room_closed");
	if (r == NULL)
		return;
	if (r->state != ROOM_JOINED) {
		fail_join(s, r, "service-unavailable", reason);
	} else {
		struct pres p = { .unavailable = 1, .status = reason,
		    .codes = { 110, 332 } };
		for (size_t i = 0; i < r->nmembers; i++)
			send_self(s, r, &r->members[i], &p);
		log_info("%s: %s: %s closed%s%s", session_component(s)->domain,
		    session_jid(s), r->name, reason ? ": " : "",
		    reason ? reason : "");
		room_forget(s, r);
	}
	release_later(s);
}

/* ---- settings for backends, and persistent rooms after a restart ---- */

const char *
room_encoding(struct session *s, const char *room)
{
	struct room *r = room_find(s, room);
	return r != NULL ? r->encoding : NULL;
}

static int
restore_one(void *arg, const char *jid, const char *room)
{
	struct component *c = arg;
	struct session *s = session_find_registered(c, jid);
	if (s == NULL || room_find(s, room) != NULL)
		return 0;
	struct room_set *set = set_of(s);
	if (set != NULL && set->count >= ROOM_MAX_PER_SESSION)
		return 0;
	if (c->backend->join_room == NULL || c->backend->is_room == NULL ||
	    !c->backend->is_room(c, room))
		return 0;
	/* The nick is the backend's to choose (the one the user last had
	 * there: the join carries none) and room_joined says which; the
	 * user's local part stands in until then. */
	char *nick = xstrndup(jid, strcspn(jid, "@"));
	struct room *r = room_new(s, room, nick);
	free(nick);
	r->restored = 1;
	log_info("%s: %s: rejoining %s (persistent)", c->domain, jid, room);
	if (session_state(s) == SESSION_ONLINE) {
		send_join_request(s, r);
		return 0;
	}
	r->state = ROOM_PENDING;
	session_ensure_login(s);
	return 0;
}

void
room_restore(struct component *c)
{
	if (c->section != NULL)
		archive_retention(c->domain,
		    (unsigned)config_int(c->section, "history_days"),
		    (size_t)config_int(c->section, "history_max"));
	store_room_persistent_foreach(cw->store, c->domain, restore_one, c);
}
