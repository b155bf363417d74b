#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "backend.h"
#include "causeway.h"
#include "component.h"
#include "jid.h"
#include "log.h"
#include "roomlist.h"
#include "service.h"
#include "session.h"
#include "stanza.h"
#include "xmalloc.h"

#define NS_RSM "http://jabber.org/protocol/rsm"

/* One listed room: its JID (the page key) and the name shown. */
struct room_item {
	char *jid;
	char *name;
};

/*
 * XEP-0059 as the request asked: at most max items (ROOM_LIST_PAGE
 * when it did not say), those after the JID after, or the last ones
 * before the JID before (empty: the last page).  Pages are by JID
 * order, not by position, so a room that appears or goes between two
 * requests moves no other room to another page.
 */
struct page {
	int with_set;              /* the request had <set/> */
	size_t max;
	char *after, *before;
	int backward;
};

struct room_list {
	struct component *c;
	struct stanza *iq;         /* the request, for the answer */
	struct event *timer;
	struct room_item *items;
	unsigned count;
	struct page page;
	int answered;
};

static int
item_cmp(const void *a, const void *b)
{
	return strcmp(((const struct room_item *)a)->jid,
	    ((const struct room_item *)b)->jid);
}

/* The request's <set/>: 0, or -1 with *why. */
static int
page_parse(const struct stanza *iq, struct page *p, const char **why)
{
	const struct stanza *qy = stanza_child(iq, "query", NS_DISCO_ITEMS);
	const struct stanza *set = qy ? stanza_child(qy, "set", NS_RSM) : NULL;
	memset(p, 0, sizeof(*p));
	p->max = ROOM_LIST_PAGE;
	if (set == NULL)
		return 0;
	p->with_set = 1;
	char *t = stanza_child_text(set, "max");
	if (t != NULL) {
		char *end;
		errno = 0;
		long n = strtol(t, &end, 10);
		int bad = end == t || *end != '\0' || n < 0 || errno != 0;
		free(t);
		if (bad) {
			*why = "max is not a number";
			return -1;
		}
		p->max = n > ROOM_LIST_PAGE ? ROOM_LIST_PAGE : (size_t)n;
	}
	const struct stanza *before = stanza_child(set, "before", NULL);
	if (before != NULL) {
		p->backward = 1;
		p->before = stanza_text(before);
		if (p->before != NULL && *p->before == '\0') {
			free(p->before);
			p->before = NULL;
		}
	} else {
		p->after = stanza_child_text(set, "after");
	}
	return 0;
}

static void
page_clear(struct page *p)
{
	free(p->after);
	free(p->before);
}

/* The result: the page of the sorted items, with <set/> when asked or
 * when there is more than one page. */
static struct stanza *
build_answer(struct room_list *l)
{
	qsort(l->items, l->count, sizeof(*l->items), item_cmp);
	size_t lo = 0, hi = l->count;  /* the rooms the page is taken from */
	const struct page *p = &l->page;
	if (p->after != NULL)
		while (lo < hi && strcmp(l->items[lo].jid, p->after) <= 0)
			lo++;
	if (p->before != NULL)
		while (hi > lo && strcmp(l->items[hi - 1].jid, p->before) >= 0)
			hi--;
	size_t first = lo, last = hi;
	if (hi - lo > p->max) {
		if (p->backward)
			first = hi - p->max;
		else
			last = lo + p->max;
	}
	struct stanza *res = stanza_reply(l->iq, "result");
	struct stanza *qy = stanza_new_child(res, "query", NS_DISCO_ITEMS);
	for (size_t i = first; i < last; i++) {
		struct stanza *item = stanza_new_child(qy, "item", NULL);
		stanza_set_attr(item, "jid", l->items[i].jid);
		stanza_set_attr(item, "name", l->items[i].name);
	}
	if (!p->with_set && last - first == l->count)
		return res;
	struct stanza *set = stanza_new_child(qy, "set", NS_RSM);
	char num[32];
	if (last > first) {
		struct stanza *f = stanza_new_text_child(set, "first",
		    l->items[first].jid);
		snprintf(num, sizeof(num), "%zu", first);
		stanza_set_attr(f, "index", num);
		stanza_new_text_child(set, "last", l->items[last - 1].jid);
	}
	snprintf(num, sizeof(num), "%u", l->count);
	stanza_new_text_child(set, "count", num);
	return res;
}

static void
send_answer(struct room_list *l, const char *condition, const char *text)
{
	if (l->answered)
		return;
	l->answered = 1;
	event_del(l->timer);
	if (condition != NULL)
		component_send(l->c, stanza_error_reply(l->iq, condition,
		    text));
	else
		component_send(l->c, build_answer(l));
}

static void
timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct room_list *l = arg;
	log_info("%s: room list for %s took longer than %d s; answering with "
	    "%u rooms", l->c->domain, stanza_attr(l->iq, "from"),
	    ROOM_LIST_TIMEOUT, l->count);
	if (l->count == 0)
		send_answer(l, "remote-server-timeout", "the network did not "
		    "list its rooms in time");
	else
		send_answer(l, NULL, NULL);
}

struct stanza *
roomlist_request(struct component *c, const struct stanza *iq,
    const char *scope)
{
	if (c->backend->list_rooms == NULL)
		return stanza_error_reply(iq, "feature-not-implemented", NULL);
	struct jid from;
	if (jid_parse(stanza_attr(iq, "from"), &from) != 0)
		return stanza_error_reply(iq, "jid-malformed", NULL);
	char *bare = jid_bare_string(&from);
	jid_clear(&from);
	/* With open access, listing is a first use: the session starts. */
	struct session *s = session_for_use(c, bare);
	free(bare);
	if (s == NULL)
		return stanza_error_reply(iq, "registration-required",
		    "register with the gateway to list rooms");
	if (component_open_access(c))
		session_ensure_login(s);
	if (session_state(s) != SESSION_ONLINE)
		return stanza_error_reply(iq, "recipient-unavailable", "come "
		    "online (send presence to the gateway) to list rooms");

	struct page page;
	const char *why = NULL;
	if (page_parse(iq, &page, &why) != 0)
		return stanza_error_reply(iq, "bad-request", why);

	struct room_list *l = xcalloc(1, sizeof(*l));
	l->c = c;
	l->iq = stanza_copy(iq);
	l->page = page;
	l->timer = evtimer_new(cw->base, timeout_cb, l);
	if (l->timer == NULL)
		log_fatal("%s: cannot create a timer", c->domain);
	struct timeval tv = { .tv_sec = ROOM_LIST_TIMEOUT };
	evtimer_add(l->timer, &tv);
	c->backend->list_rooms(s, scope, l);
	return NULL;
}

void
room_list_add(struct room_list *l, const char *room, const char *name,
    long users)
{
	if (l->answered || l->count >= ROOM_LIST_MAX)
		return;
	char *local = jid_escape_local(room);
	if (local == NULL)
		return;
	if (l->count % 64 == 0)
		l->items = xreallocarray(l->items, l->count + 64,
		    sizeof(*l->items));
	struct room_item *it = &l->items[l->count++];
	it->jid = xasprintf("%s@%s", local, l->c->domain);
	free(local);
	it->name = users >= 0 ? xasprintf("%s (%ld)", name ? name : room,
	    users) : xstrdup(name ? name : room);
}

void
room_list_done(struct room_list *l, const char *condition, const char *text)
{
	send_answer(l, condition, text);
	event_free(l->timer);
	for (unsigned i = 0; i < l->count; i++) {
		free(l->items[i].jid);
		free(l->items[i].name);
	}
	free(l->items);
	page_clear(&l->page);
	stanza_free(l->iq);
	free(l);
}
