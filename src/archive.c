/*
 * The room archive's live side: archive.h says what it does.
 *
 * Entries live in a short list (one per archived room that some user
 * is in right now); each keeps its owners in attach order, with per
 * owner the newest report sequence number it cannot match (floor: what
 * was reported before it attached or came back).  While an entry has
 * several owners it remembers the last ARCHIVE_RECENT messages and who
 * reported each, so the others' reports find them; with one owner there
 * is nobody to match and nothing is kept.  The flush timer exists while
 * any entry does, so an idle gateway holds no timer and a shutdown that
 * frees the rooms frees it too (after writing the queue).
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "archive.h"
#include "causeway.h"
#include "log.h"
#include "store.h"
#include "xmalloc.h"

/* A message one owner reported, waiting for the others' reports. */
struct recent {
	uint64_t seq;
	uint64_t hash;             /* of nick and body: most entries differ */
	time_t at;                 /* when it was first reported */
	long long id;
	char *nick, *body, *sid;
	const void **by;           /* the owners that reported it */
	size_t nby;
};

struct archive {
	struct archive *next;
	char *component;
	char *room;
	long long id;
	const void **owners;
	char **jids;               /* per owner: the user's bare JID */
	unsigned char *down;       /* per owner: its link is down */
	uint64_t *floor;           /* per owner: reports up to here predate it */
	size_t nowners;
	struct recent *recent;     /* ring of ARCHIVE_RECENT, or NULL */
	size_t nrecent, head;      /* in use; the oldest */
	uint64_t seq;              /* the last report's number */
};

/* Retention per component (archive_retention). */
struct retention {
	struct retention *next;
	char *component;
	unsigned days;
	size_t max;
};

static struct archive *archives;
static struct event *flush_timer;
static struct retention *retentions;
static struct event *expire_timer;

static void
flush_cb(evutil_socket_t fd, short what, void *arg)
{
	archive_flush();
}

void
archive_flush(void)
{
	if (store_archive_queued(cw->store) == 0)
		return;
	int n = store_archive_flush(cw->store);
	if (n > 0)
		log_debug("archive: %d messages written", n);
}

static void
recent_clear(struct recent *e)
{
	free(e->nick);
	free(e->body);
	free(e->sid);
	free(e->by);
	memset(e, 0, sizeof(*e));
}

/* Matching is only needed with several owners: one owner forgets. */
static void
recent_drop(struct archive *a)
{
	for (size_t i = 0; a->recent != NULL && i < a->nrecent; i++)
		recent_clear(&a->recent[(a->head + i) % ARCHIVE_RECENT]);
	free(a->recent);
	a->recent = NULL;
	a->nrecent = a->head = 0;
}

/* The user's membership of the room, as the store keeps it for
 * reading the archive later: open while attached with the link up. */
static void
membership(const struct archive *a, size_t i, int in)
{
	int rc = in ? store_member_open(cw->store, a->component, a->jids[i],
	    a->room) : store_member_close(cw->store, a->component, a->jids[i],
	    a->room);
	if (rc != 0)
		log_warn("%s: %s: %s: the membership could not be recorded",
		    a->component, a->jids[i], a->room);
}

struct archive *
archive_attach(const char *component, const char *room, const void *owner,
    const char *jid)
{
	struct archive *a;
	for (a = archives; a != NULL; a = a->next)
		if (strcmp(a->component, component) == 0 &&
		    strcmp(a->room, room) == 0)
			break;
	if (a == NULL) {
		long long id = store_archive_room(cw->store, component, room,
		    1);
		if (id <= 0)
			return NULL;
		if (flush_timer == NULL) {
			flush_timer = evtimer_new(cw->base, flush_cb, NULL);
			if (flush_timer == NULL)
				log_fatal("archive: cannot create a timer");
		}
		a = xcalloc(1, sizeof(*a));
		a->component = xstrdup(component);
		a->room = xstrdup(room);
		a->id = id;
		a->next = archives;
		archives = a;
		log_debug("%s: archiving %s", component, room);
	}
	a->owners = xreallocarray(a->owners, a->nowners + 1,
	    sizeof(*a->owners));
	a->down = xreallocarray(a->down, a->nowners + 1, sizeof(*a->down));
	a->floor = xreallocarray(a->floor, a->nowners + 1, sizeof(*a->floor));
	a->jids = xreallocarray(a->jids, a->nowners + 1, sizeof(*a->jids));
	a->down[a->nowners] = 0;
	a->floor[a->nowners] = a->seq;
	a->jids[a->nowners] = xstrdup(jid);
	a->owners[a->nowners++] = owner;
	membership(a, a->nowners - 1, 1);
	return a;
}

void
archive_detach(struct archive *a, const void *owner)
{
	size_t i;
	for (i = 0; i < a->nowners && a->owners[i] != owner; i++)
		;
	if (i == a->nowners)
		return;
	if (!a->down[i])
		membership(a, i, 0);
	free(a->jids[i]);
	size_t rest = a->nowners - i - 1;
	memmove(&a->jids[i], &a->jids[i + 1], rest * sizeof(*a->jids));
	memmove(&a->owners[i], &a->owners[i + 1], rest * sizeof(*a->owners));
	memmove(&a->down[i], &a->down[i + 1], rest * sizeof(*a->down));
	memmove(&a->floor[i], &a->floor[i + 1], rest * sizeof(*a->floor));
	a->nowners--;
	/* The pointer may come back as another room: it must not be found
	 * among the reporters then (its floor would hide old entries, but
	 * this keeps the lists honest). */
	for (size_t k = 0; a->recent != NULL && k < a->nrecent; k++) {
		struct recent *e = &a->recent[(a->head + k) % ARCHIVE_RECENT];
		for (size_t j = 0; j < e->nby; j++)
			if (e->by[j] == owner) {
				e->by[j] = e->by[--e->nby];
				break;
			}
	}
	if (a->nowners == 1)
		recent_drop(a);
	if (a->nowners > 0)
		return;
	struct archive **pp = &archives;
	while (*pp != a)
		pp = &(*pp)->next;
	*pp = a->next;
	log_debug("%s: no longer archiving %s", a->component, a->room);
	recent_drop(a);
	free(a->owners);
	free(a->jids);
	free(a->down);
	free(a->floor);
	free(a->component);
	free(a->room);
	free(a);
	if (archives == NULL && flush_timer != NULL) {
		archive_flush();
		event_free(flush_timer);
		flush_timer = NULL;
	}
}

static size_t
owner_index(const struct archive *a, const void *owner)
{
	size_t i;
	for (i = 0; i < a->nowners && a->owners[i] != owner; i++)
		;
	return i;
}

void
archive_set_down(struct archive *a, const void *owner, int down)
{
	if (a == NULL)
		return;
	size_t i = owner_index(a, owner);
	if (i == a->nowners || a->down[i] == (down != 0))
		return;
	a->down[i] = down != 0;
	/* Away from the channel, the user reads nothing said meanwhile;
	 * back, what was reported meanwhile is not what it hears now. */
	membership(a, i, !down);
	if (!down)
		a->floor[i] = a->seq;
}

long long
archive_room_id(const struct archive *a)
{
	return a->id;
}

static int
reported_by(const struct recent *e, const void *owner)
{
	for (size_t j = 0; j < e->nby; j++)
		if (e->by[j] == owner)
			return 1;
	return 0;
}

/* FNV-1a of nick, a NUL, and body: a quick "not this one". */
static uint64_t
line_hash(const char *nick, const char *body)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (const unsigned char *p = (const unsigned char *)nick; ; p++) {
		h = (h ^ *p) * 0x100000001b3ULL;
		if (*p == '\0')
			break;
	}
	for (const unsigned char *p = (const unsigned char *)body; *p; p++)
		h = (h ^ *p) * 0x100000001b3ULL;
	return h;
}

/* The oldest remembered message that is this one for owner i, or NULL.
 * Oldest first: the same line said twice pairs up in order. */
static struct recent *
recent_match(struct archive *a, size_t i, uint64_t hash, const char *nick,
    const char *body, time_t now)
{
	for (size_t k = 0; a->recent != NULL && k < a->nrecent; k++) {
		struct recent *e = &a->recent[(a->head + k) % ARCHIVE_RECENT];
		if (e->hash != hash || e->seq <= a->floor[i] ||
		    now - e->at > ARCHIVE_MATCH_SECS ||
		    strcmp(e->nick, nick) != 0 || strcmp(e->body, body) != 0 ||
		    reported_by(e, a->owners[i]))
			continue;
		return e;
	}
	return NULL;
}

static void
recent_add(struct archive *a, const void *owner, long long id, uint64_t hash,
    const char *nick, const char *body, const char *sid, time_t now)
{
	if (a->recent == NULL)
		a->recent = xcalloc(ARCHIVE_RECENT, sizeof(*a->recent));
	struct recent *e;
	if (a->nrecent == ARCHIVE_RECENT) {
		e = &a->recent[a->head];
		recent_clear(e);
		a->head = (a->head + 1) % ARCHIVE_RECENT;
	} else {
		e = &a->recent[(a->head + a->nrecent++) % ARCHIVE_RECENT];
	}
	e->seq = a->seq;
	e->hash = hash;
	e->at = now;
	e->id = id;
	e->nick = xstrdup(nick);
	e->body = xstrdup(body);
	e->sid = xstrdup(sid);
	e->by = xcalloc(1, sizeof(*e->by));
	e->by[0] = owner;
	e->nby = 1;
}

long long
archive_heard(struct archive *a, const void *owner, const char *nick,
    const char *body, time_t stamp, char *sid, size_t sidlen)
{
	size_t i = a != NULL ? owner_index(a, owner) : 0;
	if (a == NULL || i == a->nowners || nick == NULL || body == NULL)
		return -1;
	time_t now = time(NULL);
	uint64_t hash = a->nowners > 1 ? line_hash(nick, body) : 0;
	struct recent *e = a->nowners > 1 ? recent_match(a, i, hash, nick,
	    body, now) : NULL;
	if (e != NULL) {
		e->by = xreallocarray(e->by, e->nby + 1, sizeof(*e->by));
		e->by[e->nby++] = owner;
		snprintf(sid, sidlen, "%s", e->sid);
		return e->id;
	}
	long long id = store_archive_add(cw->store, a->id, stamp > 0 ? stamp :
	    now, nick, body, sid, sidlen);
	if (id < 0)
		return -1;
	a->seq++;
	if (a->nowners > 1)
		recent_add(a, owner, id, hash, nick, body, sid, now);
	if (store_archive_queued(cw->store) >= ARCHIVE_FLUSH_ROWS) {
		event_del(flush_timer);
		archive_flush();
	} else if (!evtimer_pending(flush_timer, NULL)) {
		struct timeval tv = { 0, ARCHIVE_FLUSH_MS * 1000 };
		evtimer_add(flush_timer, &tv);
	}
	return id;
}

static void
expire_one(const struct retention *r)
{
	time_t before = r->days > 0 ? time(NULL) - (time_t)r->days * 86400 :
	    0;
	long long n = store_archive_expire(cw->store, r->component, before,
	    r->max);
	if (n > 0)
		log_info("%s: archive retention removed %lld messages",
		    r->component, n);
}

static void
expire_cb(evutil_socket_t fd, short what, void *arg)
{
	for (struct retention *r = retentions; r != NULL; r = r->next)
		expire_one(r);
}

void
archive_retention(const char *component, unsigned days, size_t max)
{
	struct retention *r;
	for (r = retentions; r != NULL; r = r->next)
		if (strcmp(r->component, component) == 0)
			break;
	if (r == NULL) {
		r = xcalloc(1, sizeof(*r));
		r->component = xstrdup(component);
		r->next = retentions;
		retentions = r;
	}
	r->days = days;
	r->max = max;
	/* Each batch prunes to the largest limit of any component (no
	 * limit: as good as none); the periodic expiry applies each
	 * component's own. */
	size_t ceiling = 0;
	for (struct retention *x = retentions; x != NULL; x = x->next) {
		size_t m = x->max > 0 ? x->max : (size_t)INT64_MAX;
		if (m > ceiling)
			ceiling = m;
	}
	store_archive_set_keep(cw->store, ceiling);
	expire_one(r);
	if (expire_timer == NULL) {
		expire_timer = event_new(cw->base, -1, EV_PERSIST, expire_cb,
		    NULL);
		if (expire_timer == NULL)
			log_fatal("archive: cannot create a timer");
		struct timeval tv = { ARCHIVE_EXPIRE_SECS, 0 };
		evtimer_add(expire_timer, &tv);
	}
}
