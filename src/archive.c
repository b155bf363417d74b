/*
 * The room archive's live side: archive.h says what it does.
 *
 * Entries live in a short list (one per archived room that some user
 * is in or persists right now); each keeps its owners in attach order,
 * owners[0] being the writer.  The flush timer exists while any entry
 * does, so an idle gateway holds no timer and a shutdown that frees the
 * rooms frees it too (after writing the queue).
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "archive.h"
#include "causeway.h"
#include "log.h"
#include "store.h"
#include "xmalloc.h"

struct archive {
	struct archive *next;
	char *component;
	char *room;
	long long id;
	const void **owners;
	unsigned char *down;       /* per owner: its link is down */
	size_t nowners;
};

static struct archive *archives;
static struct event *flush_timer;

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

struct archive *
archive_attach(const char *component, const char *room, const void *owner)
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
	a->down[a->nowners] = 0;
	a->owners[a->nowners++] = owner;
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
	/* Order kept: the next owner in line becomes the writer. */
	memmove(&a->owners[i], &a->owners[i + 1],
	    (a->nowners - i - 1) * sizeof(*a->owners));
	memmove(&a->down[i], &a->down[i + 1],
	    (a->nowners - i - 1) * sizeof(*a->down));
	if (--a->nowners > 0)
		return;
	struct archive **pp = &archives;
	while (*pp != a)
		pp = &(*pp)->next;
	*pp = a->next;
	log_debug("%s: no longer archiving %s", a->component, a->room);
	free(a->owners);
	free(a->down);
	free(a->component);
	free(a->room);
	free(a);
	if (archives == NULL && flush_timer != NULL) {
		archive_flush();
		event_free(flush_timer);
		flush_timer = NULL;
	}
}

int
archive_is_writer(const struct archive *a, const void *owner)
{
	if (a == NULL || a->nowners == 0)
		return 0;
	/* The first owner in line whose link is up; with every link down,
	 * the first (nobody hears anything then anyway). */
	for (size_t i = 0; i < a->nowners; i++)
		if (!a->down[i])
			return a->owners[i] == owner;
	return a->owners[0] == owner;
}

void
archive_set_down(struct archive *a, const void *owner, int down)
{
	for (size_t i = 0; a != NULL && i < a->nowners; i++)
		if (a->owners[i] == owner)
			a->down[i] = down != 0;
}

long long
archive_room_id(const struct archive *a)
{
	return a->id;
}

long long
archive_add(struct archive *a, const char *nick, const char *body,
    time_t stamp, char *sid, size_t sidlen)
{
	long long id = store_archive_add(cw->store, a->id, stamp, nick, body,
	    sid, sidlen);
	if (id < 0)
		return -1;
	if (store_archive_queued(cw->store) >= ARCHIVE_FLUSH_ROWS) {
		event_del(flush_timer);
		archive_flush();
	} else if (!evtimer_pending(flush_timer, NULL)) {
		struct timeval tv = { 0, ARCHIVE_FLUSH_MS * 1000 };
		evtimer_add(flush_timer, &tv);
	}
	return id;
}
