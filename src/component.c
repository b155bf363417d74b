/*
 * The XEP-0114 connection.  component.h draws the state machine; this
 * file keeps to it: every transition goes through set_state(), and every
 * way a connection can end goes through drop_connection(), which frees
 * the socket and the parser state and arms the backoff timer.
 *
 * Parser callbacks run inside xmlstream_feed(); they never tear the
 * connection down themselves (that would free the parser under its own
 * feet).  They set close_after_feed and stop the parser, and read_cb()
 * acts on it once feed() has returned.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "access.h"
#include "adhoc.h"
#include "backend.h"
#include "causeway.h"
#include "component.h"
#include "config.h"
#include "log.h"
#include "register.h"
#include "router.h"
#include "session.h"
#include "stanza.h"
#include "store.h"
#include "xmalloc.h"
#include "xmlstream.h"

#define BACKOFF_MIN 1
#define BACKOFF_MAX 60
#define HANDSHAKE_TIMEOUT 30
#define CLOSE_TIMEOUT 3
#define LINGER_TIMEOUT 2
/*
 * Unread output we hold for the server before we call it stuck and
 * reconnect.  A healthy server reads megabytes per second; one that has
 * stopped reading would otherwise make us grow without bound.
 */
#define OUTPUT_MAX (64u * 1024 * 1024)
/* Bytes read from the socket per feed() call. */
#define READ_CHUNK 16384

struct queued_stanza {
	TAILQ_ENTRY(queued_stanza) entry;
	size_t len;
	char data[];
};

struct pending_iq {
	TAILQ_ENTRY(pending_iq) entry;
	struct component *c;
	char id[24];
	char *to;
	component_iq_cb cb;
	void *arg;
	struct event *timer;
};

static const char *const state_names[] = {
	[COMPONENT_IDLE] = "idle",
	[COMPONENT_CONNECTING] = "connecting",
	[COMPONENT_OPENING] = "opening",
	[COMPONENT_HANDSHAKING] = "handshaking",
	[COMPONENT_READY] = "ready",
	[COMPONENT_WAITING] = "waiting",
	[COMPONENT_CLOSING] = "closing",
	[COMPONENT_CLOSED] = "closed",
};

static void stream_open_cb(void *arg, const struct stanza *root);
static void stream_stanza_cb(void *arg, struct stanza *st);
static void stream_close_cb(void *arg);
static void retry_cb(evutil_socket_t fd, short what, void *arg);
static void keepalive_cb(evutil_socket_t fd, short what, void *arg);
static void deadline_cb(evutil_socket_t fd, short what, void *arg);
static void stuck_cb(evutil_socket_t fd, short what, void *arg);

/* The next batch of stanzas kept while the server was away. */
static void
replay_cb(evutil_socket_t fd, short what, void *arg)
{
	struct component *c = arg;
	if (c->state == COMPONENT_READY && cw->store != NULL)
		session_component_ready(c);
}
static void read_cb(struct bufferevent *bev, void *arg);
static void write_cb(struct bufferevent *bev, void *arg);

static const struct xmlstream_callbacks stream_callbacks = {
	.open = stream_open_cb,
	.stanza = stream_stanza_cb,
	.close = stream_close_cb,
};

const char *
component_state_name(enum component_state s)
{
	return state_names[s];
}

static void
set_state(struct component *c, enum component_state s)
{
	if (c->state == s)
		return;
	log_debug("%s: %s -> %s", c->domain, state_names[c->state],
	    state_names[s]);
	if (c->state == COMPONENT_READY)
		c->stats.ready_since = 0;
	c->state = s;
	if (s == COMPONENT_READY)
		c->stats.ready_since = time(NULL);
}

static void
copy_settings(struct component *c, const struct config_section *sec)
{
	free(c->server);
	free(c->secret);
	free(c->name);
	c->section = sec;
	c->server = xstrdup(config_str(sec, "server"));
	c->port = (int)config_int(sec, "port");
	c->secret = xstrdup(config_str(sec, "secret"));
	const char *name = config_str(sec, "name");
	c->name = name != NULL && *name != '\0' ? xstrdup(name) :
	    xasprintf("causeway %s gateway", c->backend->description);
	c->max_stanza = (size_t)config_int(sec, "max_stanza_size");
	c->queue_max = (size_t)config_int(sec, "queue_max");
	c->keepalive = (unsigned)config_int(sec, "keepalive");
	c->linger = (unsigned)config_int(sec, "linger");
	size_t n;
	const char *const *items;
	access_list_free(c->allow);
	access_list_free(c->admins);
	items = config_list(sec, "allow", &n);
	c->allow = access_list_new(items, n);
	items = config_list(sec, "admins", &n);
	c->admins = access_list_new(items, n);
	c->open_access = config_has(sec, "require_registration") ?
	    !config_bool(sec, "require_registration") :
	    c->backend->open_access;
}

int
component_allows(const struct component *c, const struct jid *who)
{
	return access_list_match(c->allow, who) ||
	    access_list_match(c->admins, who);
}

int
component_is_admin(const struct component *c, const struct jid *who)
{
	return access_list_match(c->admins, who);
}

int
component_open_access(const struct component *c)
{
	return c->open_access;
}

struct component *
component_new(const struct config_section *sec)
{
	const struct backend *b = backend_find(config_str(sec, "backend"));
	if (b == NULL) {
		/* The configuration's enum check makes this unreachable
		 * unless the registry refused the backend's ABI. */
		log_error("%s: backend %s is not available",
		    config_section_arg(sec), config_str(sec, "backend"));
		return NULL;
	}
	struct component *c = xcalloc(1, sizeof(*c));
	c->domain = xstrdup(config_section_arg(sec));
	c->backend = b;
	c->state = COMPONENT_IDLE;
	c->backoff = BACKOFF_MIN;
	TAILQ_INIT(&c->queue);
	TAILQ_INIT(&c->pending);
	copy_settings(c, sec);
	c->xs = xmlstream_new(&stream_callbacks, c, c->max_stanza,
	    XMLSTREAM_DEFAULT_MAX_DEPTH);
	c->retry_timer = evtimer_new(cw->base, retry_cb, c);
	c->keepalive_timer = event_new(cw->base, -1, EV_PERSIST, keepalive_cb,
	    c);
	c->deadline_timer = evtimer_new(cw->base, deadline_cb, c);
	c->stuck_timer = evtimer_new(cw->base, stuck_cb, c);
	c->replay_timer = evtimer_new(cw->base, replay_cb, c);
	c->kept = -1;
	if (c->retry_timer == NULL || c->keepalive_timer == NULL ||
	    c->deadline_timer == NULL || c->stuck_timer == NULL ||
	    c->replay_timer == NULL)
		log_fatal("%s: cannot create timers", c->domain);
	if (b->init != NULL && b->init(c) != 0) {
		log_error("%s: the %s backend failed to start", c->domain,
		    b->name);
		component_free(c);
		return NULL;
	}
	log_info("%s: %s backend ready, server %s port %d", c->domain,
	    b->name, c->server, c->port);
	return c;
}

static void pending_fail_all(struct component *c);

static void
close_socket(struct component *c)
{
	if (c->bev != NULL) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	/* After the socket is gone, so whatever the callbacks send waits
	 * for the next stream instead of going into a freed buffer. */
	pending_fail_all(c);
	event_del(c->keepalive_timer);
	event_del(c->deadline_timer);
	free(c->stream_id);
	c->stream_id = NULL;
	c->close_after_feed = 0;
	c->lingering = 0;
	event_del(c->stuck_timer);
}

static void
queue_clear(struct component *c)
{
	struct queued_stanza *q;
	while ((q = TAILQ_FIRST(&c->queue)) != NULL) {
		TAILQ_REMOVE(&c->queue, q, entry);
		free(q);
	}
	c->queued = 0;
	c->queued_bytes = 0;
}

void
component_free(struct component *c)
{
	if (c == NULL)
		return;
	session_free_all(c);
	adhoc_free_all(c);
	register_component_gone(c);
	if (c->backend->shutdown != NULL)
		c->backend->shutdown(c);
	close_socket(c);
	access_list_free(c->allow);
	access_list_free(c->admins);
	if (c->queued > 0)
		log_warn("%s: %zu stanzas still queued at exit are dropped",
		    c->domain, c->queued);
	queue_clear(c);
	event_free(c->retry_timer);
	event_free(c->keepalive_timer);
	event_free(c->deadline_timer);
	event_free(c->stuck_timer);
	event_free(c->replay_timer);
	xmlstream_free(c->xs);
	free(c->domain);
	free(c->server);
	free(c->secret);
	free(c->name);
	free(c);
}

/* A random factor in [1, 1.25], so that several causeway instances (or
 * components) that lost the same server do not reconnect in lockstep;
 * upward only, so no retry comes sooner than the backoff promises. */
static double
jitter(void)
{
	unsigned short r = 0;
	if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
		r = (unsigned short)(time(NULL) & 0xffff);
	return 1.0 + 0.25 * ((double)r / 65535.0);
}

/*
 * The one way a connection ends: free it and, unless we are shutting
 * down, try again after the current backoff.
 */
static void
drop_connection(struct component *c, const char *why)
{
	close_socket(c);
	if (c->state == COMPONENT_CLOSING || cw->stopping) {
		set_state(c, COMPONENT_CLOSED);
		causeway_component_closed(c);
		return;
	}
	double delay = c->backoff * jitter();
	struct timeval tv = {
		.tv_sec = (time_t)delay,
		.tv_usec = (suseconds_t)((delay - (double)(time_t)delay) * 1e6),
	};
	log_warn("%s: connection to %s:%d lost (%s); retrying in %.1f s",
	    c->domain, c->server, c->port, why, delay);
	set_state(c, COMPONENT_WAITING);
	evtimer_add(c->retry_timer, &tv);
	c->backoff *= 2;
	if (c->backoff > BACKOFF_MAX)
		c->backoff = BACKOFF_MAX;
}

static void
stuck_cb(evutil_socket_t fd, short what, void *arg)
{
	struct component *c = arg;
	if (c->bev == NULL || c->state != COMPONENT_READY)
		return;
	log_error("%s: the server at %s:%d has not read %zu bytes of our "
	    "output; reconnecting", c->domain, c->server, c->port,
	    evbuffer_get_length(bufferevent_get_output(c->bev)));
	drop_connection(c, "the server stopped reading");
}

/*
 * Called after every write: the connection is dropped from the loop,
 * never from inside a write (the caller may be in the middle of reading
 * the same connection).
 */
static void
check_output(struct component *c)
{
	if (c->bev == NULL || evtimer_pending(c->stuck_timer, NULL) ||
	    evbuffer_get_length(bufferevent_get_output(c->bev)) <= OUTPUT_MAX)
		return;
	struct timeval now = { 0, 0 };
	evtimer_add(c->stuck_timer, &now);
}

static void
write_raw(struct component *c, const char *data, size_t len)
{
	if (c->bev == NULL)
		return;
	bufferevent_write(c->bev, data, len);
	c->last_write = time(NULL);
	check_output(c);
}

/* Once our last bytes have left, half-close the socket. */
static void
linger_shutdown(struct component *c)
{
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
		shutdown(bufferevent_getfd(c->bev), SHUT_WR);
}

/*
 * Ends the stream with a stream error we detected, then reconnects.
 * Closing a socket that still has unread input makes the kernel answer
 * with a reset, which can destroy the stream error before the server
 * reads it; so we half-close after the error has left and discard what
 * the server still sends, until it closes or LINGER_TIMEOUT passes.
 */
static void
stream_error(struct component *c, const char *condition, const char *text)
{
	log_error("%s: stream error %s: %s", c->domain, condition, text);
	char *xml = xasprintf("<stream:error><%s xmlns='" NS_STREAM_ERRORS
	    "'/></stream:error></stream:stream>", condition);
	write_raw(c, xml, strlen(xml));
	free(xml);
	c->lingering = 1;
	snprintf(c->linger_reason, sizeof(c->linger_reason), "%s", condition);
	evbuffer_drain(bufferevent_get_input(c->bev),
	    evbuffer_get_length(bufferevent_get_input(c->bev)));
	event_del(c->keepalive_timer);
	event_del(c->deadline_timer);
	struct timeval tv = { .tv_sec = LINGER_TIMEOUT };
	event_add(c->deadline_timer, &tv);
	linger_shutdown(c);
}

static void
flush_queue(struct component *c)
{
	struct queued_stanza *q;
	size_t n = c->queued;
	while ((q = TAILQ_FIRST(&c->queue)) != NULL) {
		TAILQ_REMOVE(&c->queue, q, entry);
		write_raw(c, q->data, q->len);
		c->stats.stanzas_out++;
		free(q);
	}
	c->queued = 0;
	c->queued_bytes = 0;
	if (n > 0)
		log_info("%s: sent %zu stanzas queued while disconnected",
		    c->domain, n);
}

static void
pending_finish(struct pending_iq *p, const struct stanza *answer)
{
	struct component *c = p->c;
	TAILQ_REMOVE(&c->pending, p, entry);
	event_free(p->timer);
	component_iq_cb cb = p->cb;
	void *arg = p->arg;
	free(p->to);
	free(p);
	cb(c, answer, arg);
}

static void
pending_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pending_iq *p = arg;
	log_warn("%s: no answer to iq %s from %s", p->c->domain, p->id,
	    p->to);
	pending_finish(p, NULL);
}

static void
pending_fail_all(struct component *c)
{
	struct pending_iq *p;
	while ((p = TAILQ_FIRST(&c->pending)) != NULL)
		pending_finish(p, NULL);
}

void
component_send_iq(struct component *c, struct stanza *iq,
    component_iq_cb cb, void *arg, int timeout)
{
	if (c->state != COMPONENT_READY) {
		stanza_free(iq);
		cb(c, NULL, arg);
		return;
	}
	struct pending_iq *p = xcalloc(1, sizeof(*p));
	p->c = c;
	snprintf(p->id, sizeof(p->id), "cw%u", ++c->next_iq);
	p->to = xstrdup(stanza_attr(iq, "to") ? stanza_attr(iq, "to") :
	    c->domain);
	p->cb = cb;
	p->arg = arg;
	p->timer = evtimer_new(cw->base, pending_timeout_cb, p);
	if (p->timer == NULL)
		log_fatal("%s: cannot create a timer", c->domain);
	struct timeval tv = { .tv_sec = timeout };
	evtimer_add(p->timer, &tv);
	TAILQ_INSERT_TAIL(&c->pending, p, entry);
	stanza_set_attr(iq, "id", p->id);
	component_send(c, iq);
}

int
component_iq_answer(struct component *c, const struct stanza *st)
{
	const char *id = stanza_attr(st, "id");
	const char *from = stanza_attr(st, "from");
	struct pending_iq *p;
	if (id == NULL || from == NULL)
		return 0;
	TAILQ_FOREACH(p, &c->pending, entry) {
		/* The answer must come from whom we asked: an id alone
		 * could be guessed by anyone who can send us stanzas. */
		if (strcmp(p->id, id) == 0 && strcmp(p->to, from) == 0) {
			pending_finish(p, st);
			return 1;
		}
	}
	return 0;
}

int
component_send_raw(struct component *c, const char *xml, size_t len)
{
	if (c->state != COMPONENT_READY || c->bev == NULL)
		return -1;
	write_raw(c, xml, len);
	c->stats.stanzas_out++;
	return 0;
}

int
component_send(struct component *c, struct stanza *st)
{
	if (stanza_attr(st, "from") == NULL)
		stanza_set_attr(st, "from", c->domain);
	if (c->state == COMPONENT_READY && c->bev != NULL) {
		struct evbuffer *out = bufferevent_get_output(c->bev);
		stanza_serialize(st, NS_COMPONENT, out);
		c->last_write = time(NULL);
		c->stats.stanzas_out++;
		stanza_free(st);
		check_output(c);
		return 0;
	}
	if (c->queued >= c->queue_max) {
		c->stats.queue_refused++;
		log_warn("%s: outgoing queue full (%zu stanzas) while "
		    "disconnected; refusing a <%s/>", c->domain, c->queued,
		    stanza_name(st));
		stanza_free(st);
		return -1;
	}
	char *xml = stanza_to_string(st);
	size_t len = strlen(xml);
	struct queued_stanza *q = xmalloc(sizeof(*q) + len);
	memcpy(q->data, xml, len);
	q->len = len;
	free(xml);
	TAILQ_INSERT_TAIL(&c->queue, q, entry);
	c->queued++;
	c->queued_bytes += len;
	stanza_free(st);
	return 0;
}

/* Re-announce: probe every registered user's presence, so the backend
 * learns who is online after a start or a reconnect. */
static int
probe_user(void *arg, const char *jid)
{
	struct component *c = arg;
	struct stanza *p = stanza_new("presence", NS_COMPONENT);
	stanza_set_attr(p, "type", "probe");
	stanza_set_attr(p, "from", c->domain);
	stanza_set_attr(p, "to", jid);
	component_send(c, p);
	return 0;
}

static void
became_ready(struct component *c)
{
	event_del(c->deadline_timer);
	set_state(c, COMPONENT_READY);
	c->stats.connects++;
	c->backoff = BACKOFF_MIN;
	/* A new stream: the server tells us our privileges again, if any. */
	memset(&c->privilege, 0, sizeof(c->privilege));
	strcpy(c->privilege.roster, "none");
	strcpy(c->privilege.message, "none");
	strcpy(c->privilege.presence, "none");
	log_info("%s: handshake accepted by %s:%d, online", c->domain,
	    c->server, c->port);
	flush_queue(c);
	if (cw->store != NULL) {
		session_component_ready(c);
		store_user_foreach(cw->store, c->domain, probe_user, c);
	}
	if (c->keepalive > 0) {
		struct timeval tv = { .tv_sec = c->keepalive, .tv_usec = 0 };
		event_add(c->keepalive_timer, &tv);
	}
}

static void
send_handshake(struct component *c)
{
	/* XEP-0114: hex(SHA1(stream id + secret)). */
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char hex[2 * EVP_MAX_MD_SIZE + 1];
	size_t idlen = strlen(c->stream_id), slen = strlen(c->secret);
	char *input = xmalloc(idlen + slen);
	memcpy(input, c->stream_id, idlen);
	memcpy(input + idlen, c->secret, slen);
	if (EVP_Digest(input, idlen + slen, md, &mdlen, EVP_sha1(), NULL) != 1)
		log_fatal("%s: SHA-1 is not available", c->domain);
	OPENSSL_cleanse(input, idlen + slen);
	free(input);
	for (unsigned int i = 0; i < mdlen; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	char *xml = xasprintf("<handshake>%s</handshake>", hex);
	write_raw(c, xml, strlen(xml));
	free(xml);
	set_state(c, COMPONENT_HANDSHAKING);
}

static void
stream_open_cb(void *arg, const struct stanza *root)
{
	struct component *c = arg;
	const char *id = stanza_attr(root, "id");
	if (c->state != COMPONENT_OPENING) {
		c->close_after_feed = 1;
		return;
	}
	if (id == NULL || *id == '\0' || strlen(id) > 1024) {
		log_error("%s: the server's stream header has no usable id",
		    c->domain);
		c->close_after_feed = 1;
		xmlstream_stop(c->xs);
		return;
	}
	c->stream_id = xstrdup(id);
	send_handshake(c);
}

/* The server sent <stream:error/>: say what it means for the operator. */
static void
server_stream_error(struct component *c, struct stanza *err)
{
	const char *condition = "undefined-condition";
	char *text = NULL;
	for (struct stanza *ch = stanza_first_child(err); ch != NULL;
	    ch = stanza_next_sibling(ch)) {
		const char *ns = stanza_ns(ch);
		if (ns == NULL || strcmp(ns, NS_STREAM_ERRORS) != 0)
			continue;
		if (strcmp(stanza_name(ch), "text") == 0) {
			free(text);
			text = stanza_text(ch);
		} else {
			condition = stanza_name(ch);
		}
	}
	if (c->state == COMPONENT_HANDSHAKING &&
	    strcmp(condition, "not-authorized") == 0)
		log_error("%s: the server at %s:%d refused the handshake "
		    "(not-authorized): the secret in the configuration does "
		    "not match the server's component secret for %s",
		    c->domain, c->server, c->port, c->domain);
	else if (strcmp(condition, "conflict") == 0)
		log_error("%s: the server refused the connection (conflict): "
		    "another component is already connected as %s",
		    c->domain, c->domain);
	else if (strcmp(condition, "host-unknown") == 0)
		log_error("%s: the server does not know the component domain "
		    "(host-unknown): declare %s as a component on the server",
		    c->domain, c->domain);
	else
		log_error("%s: the server ended the stream: %s%s%s", c->domain,
		    condition, text ? ": " : "", text ? text : "");
	free(text);
}

static void
stream_stanza_cb(void *arg, struct stanza *st)
{
	struct component *c = arg;
	const char *ns = stanza_ns(st);
	int is_stream_ns = ns != NULL && strcmp(ns, NS_STREAMS) == 0;

	if (is_stream_ns && strcmp(stanza_name(st), "error") == 0) {
		server_stream_error(c, st);
		stanza_free(st);
		c->close_after_feed = 1;
		xmlstream_stop(c->xs);
		return;
	}
	if (c->state == COMPONENT_HANDSHAKING) {
		if (strcmp(stanza_name(st), "handshake") == 0) {
			became_ready(c);
		} else {
			log_error("%s: expected <handshake/>, got <%s/>",
			    c->domain, stanza_name(st));
			c->close_after_feed = 1;
			xmlstream_stop(c->xs);
		}
		stanza_free(st);
		return;
	}
	if (c->state != COMPONENT_READY) {
		stanza_free(st);
		return;
	}
	c->stats.stanzas_in++;
	router_dispatch(c, st);
}

static void
stream_close_cb(void *arg)
{
	struct component *c = arg;
	if (c->state != COMPONENT_CLOSING) {
		log_warn("%s: the server closed the stream", c->domain);
		write_raw(c, "</stream:stream>", 16);
	}
	c->close_after_feed = 1;
	xmlstream_stop(c->xs);
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
	struct component *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char chunk[READ_CHUNK];
	int n;

	if (c->lingering) {
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	while ((n = evbuffer_remove(in, chunk, sizeof(chunk))) > 0) {
		if (log_get_level() >= LOG_LEVEL_DEBUG)
			log_debug("%s: recv %.*s", c->domain, n, chunk);
		int r = xmlstream_feed(c->xs, chunk, (size_t)n);
		if (c->state == COMPONENT_CLOSING && c->close_after_feed) {
			/* The server answered our close: we are done. */
			drop_connection(c, "closed");
			return;
		}
		if (r == 0 && !c->close_after_feed)
			continue;
		const char *cond = xmlstream_error_condition(c->xs);
		if (cond != NULL) {
			stream_error(c, cond, xmlstream_error_text(c->xs));
			return;
		}
		drop_connection(c, "stream ended");
		return;
	}
}

static void
write_cb(struct bufferevent *bev, void *arg)
{
	struct component *c = arg;
	if (c->lingering) {
		linger_shutdown(c);
		return;
	}
	/* Otherwise only armed in CLOSING: our </stream:stream> has left. */
	if (c->state == COMPONENT_CLOSING &&
	    evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		drop_connection(c, "closed");
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct component *c = arg;
	if (what & BEV_EVENT_CONNECTED) {
		int fd = bufferevent_getfd(bev);
		int one = 1;
		(void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one,
		    sizeof(one));
		set_state(c, COMPONENT_OPENING);
		xmlstream_reset(c->xs);
		char *hdr = xasprintf("<?xml version='1.0'?><stream:stream "
		    "xmlns='" NS_COMPONENT "' xmlns:stream='" NS_STREAMS "' "
		    "to='%s'>", c->domain);
		write_raw(c, hdr, strlen(hdr));
		free(hdr);
		struct timeval tv = { .tv_sec = HANDSHAKE_TIMEOUT };
		event_add(c->deadline_timer, &tv);
		return;
	}
	char why[256];
	if (c->lingering) {
		drop_connection(c, c->linger_reason);
		return;
	}
	if (what & BEV_EVENT_EOF) {
		snprintf(why, sizeof(why), "the server closed the connection");
	} else {
		int dnserr = bufferevent_socket_get_dns_error(bev);
		if (dnserr != 0)
			snprintf(why, sizeof(why), "cannot resolve %s: %s",
			    c->server, evutil_gai_strerror(dnserr));
		else
			snprintf(why, sizeof(why), "%s",
			    evutil_socket_error_to_string(
			    EVUTIL_SOCKET_ERROR()));
	}
	drop_connection(c, why);
}

void
component_connect(struct component *c)
{
	if (c->bev != NULL || cw->stopping)
		return;
	event_del(c->retry_timer);
	log_info("%s: connecting to %s:%d", c->domain, c->server, c->port);
	c->bev = bufferevent_socket_new(cw->base, -1,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (c->bev == NULL)
		log_fatal("%s: cannot create a socket buffer", c->domain);
	bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	set_state(c, COMPONENT_CONNECTING);
	/* evdns may call back before this returns; event_cb copes since the
	 * state is already CONNECTING and c->bev is set. */
	if (bufferevent_socket_connect_hostname(c->bev, cw->dns, AF_UNSPEC,
	    c->server, c->port) != 0 && c->bev != NULL &&
	    c->state == COMPONENT_CONNECTING)
		drop_connection(c, "cannot start connecting");
}

static void
retry_cb(evutil_socket_t fd, short what, void *arg)
{
	component_connect(arg);
}

static void
keepalive_cb(evutil_socket_t fd, short what, void *arg)
{
	struct component *c = arg;
	/* Whitespace between stanzas is allowed by RFC 6120 and keeps NAT
	 * and the server's idle timers from dropping a quiet stream. */
	if (c->state == COMPONENT_READY &&
	    time(NULL) - c->last_write >= (time_t)c->keepalive)
		write_raw(c, " ", 1);
}

/* The one deadline a connection has at a time: the handshake's, the
 * clean close's, or the linger after our stream error. */
static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct component *c = arg;
	if (c->lingering) {
		drop_connection(c, c->linger_reason);
	} else if (c->state == COMPONENT_CLOSING) {
		drop_connection(c, "close timeout");
	} else {
		log_error("%s: no handshake answer from %s:%d within %d s",
		    c->domain, c->server, c->port, HANDSHAKE_TIMEOUT);
		drop_connection(c, "handshake timeout");
	}
}

void
component_shutdown(struct component *c)
{
	event_del(c->retry_timer);
	if (c->bev == NULL || c->state == COMPONENT_CLOSED) {
		set_state(c, COMPONENT_CLOSED);
		causeway_component_closed(c);
		return;
	}
	if (c->state == COMPONENT_READY || c->state == COMPONENT_HANDSHAKING ||
	    c->state == COMPONENT_OPENING)
		write_raw(c, "</stream:stream>", 16);
	set_state(c, COMPONENT_CLOSING);
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
		drop_connection(c, "closed");
		return;
	}
	event_del(c->deadline_timer);
	struct timeval tv = { .tv_sec = CLOSE_TIMEOUT };
	event_add(c->deadline_timer, &tv);
}

void
component_reconfigure(struct component *c, const struct config_section *sec)
{
	int reconnect = strcmp(c->server, config_str(sec, "server")) != 0 ||
	    c->port != (int)config_int(sec, "port") ||
	    strcmp(c->secret, config_str(sec, "secret")) != 0;
	size_t old_max = c->max_stanza;
	copy_settings(c, sec);
	if (old_max != c->max_stanza) {
		/* The parser's limit is fixed at creation; a new one takes
		 * effect with the next connection. */
		xmlstream_free(c->xs);
		c->xs = xmlstream_new(&stream_callbacks, c, c->max_stanza,
		    XMLSTREAM_DEFAULT_MAX_DEPTH);
		reconnect = 1;
	}
	if (c->backend->reload != NULL)
		c->backend->reload(c);
	event_del(c->keepalive_timer);
	if (c->state == COMPONENT_READY && c->keepalive > 0) {
		struct timeval tv = { .tv_sec = c->keepalive, .tv_usec = 0 };
		event_add(c->keepalive_timer, &tv);
	}
	if (reconnect && c->state != COMPONENT_CLOSING) {
		log_info("%s: connection settings changed, reconnecting",
		    c->domain);
		close_socket(c);
		set_state(c, COMPONENT_IDLE);
		c->backoff = BACKOFF_MIN;
		component_connect(c);
	}
}
