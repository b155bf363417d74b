#include "autoconf.h"

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

struct room_list {
	struct component *c;
	struct stanza *answer;     /* the result being filled */
	struct stanza *query;      /* its <query/> */
	struct stanza *iq;         /* the request, for an error answer */
	struct event *timer;
	unsigned count;
	int answered;
};

static void
send_answer(struct room_list *l, const char *condition, const char *text)
{
	if (l->answered)
		return;
	l->answered = 1;
	event_del(l->timer);
	if (condition != NULL) {
		component_send(l->c, stanza_error_reply(l->iq, condition,
		    text));
		stanza_free(l->answer);
	} else {
		component_send(l->c, l->answer);
	}
	l->answer = NULL;
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

	struct room_list *l = xcalloc(1, sizeof(*l));
	l->c = c;
	l->iq = stanza_copy(iq);
	l->answer = stanza_reply(iq, "result");
	l->query = stanza_new_child(l->answer, "query", NS_DISCO_ITEMS);
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
	char *jid = xasprintf("%s@%s", local, l->c->domain);
	free(local);
	struct stanza *item = stanza_new_child(l->query, "item", NULL);
	stanza_set_attr(item, "jid", jid);
	free(jid);
	char *label = users >= 0 ? xasprintf("%s (%ld)", name ? name : room,
	    users) : xstrdup(name ? name : room);
	stanza_set_attr(item, "name", label);
	free(label);
	l->count++;
}

void
room_list_done(struct room_list *l, const char *condition, const char *text)
{
	send_answer(l, condition, text);
	event_free(l->timer);
	stanza_free(l->answer);
	stanza_free(l->iq);
	free(l);
}
