/*
 * The component's outgoing queue, driven from both ends in one process:
 * stanzas sent while disconnected wait in order, a full queue refuses
 * (and says so to the caller), and after the handshake the queue leaves
 * first, in order, with nothing lost.  The test's side of the socket
 * plays the XMPP server with a plain evconnlistener.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <openssl/evp.h>

#include "causeway.h"
#include "component.h"
#include "config.h"
#include "log.h"
#include "stanza.h"
#include "tap.h"

struct causeway *cw;
static int closed_calls;

void
causeway_component_closed(struct component *c)
{
	closed_calls++;
	event_base_loopexit(cw->base, NULL);
}

static const char *const backends[] = { "echo", NULL };
static const struct config_option options[] = {
	{ .key = "backend", .type = CONFIG_ENUM, .choices = backends },
	{ .key = "server", .type = CONFIG_STRING, .def = "127.0.0.1" },
	{ .key = "port", .type = CONFIG_INT, .min = 1, .max = 65535 },
	{ .key = "secret", .type = CONFIG_STRING },
	{ .key = "name", .type = CONFIG_STRING, .def = "" },
	{ .key = "max_stanza_size", .type = CONFIG_SIZE, .def = "256k",
	  .min = 1, .max = 1 << 24 },
	{ .key = "queue_max", .type = CONFIG_INT, .def = "3", .min = 0,
	  .max = 100 },
	{ .key = "keepalive", .type = CONFIG_INT, .def = "0", .min = 0,
	  .max = 100 },
	{ .key = "linger", .type = CONFIG_INT, .def = "0", .min = 0,
	  .max = 100 },
	{ .key = "allow", .type = CONFIG_LIST, .def = "*" },
	{ .key = "admins", .type = CONFIG_LIST, .def = "" },
	{ .key = "require_registration", .type = CONFIG_BOOL },
	{ .key = NULL },
};
static const struct config_section_type types[] = {
	{ .name = "component", .has_arg = 1, .options = options },
};

/* The fake server's view of the connection. */
struct server {
	struct bufferevent *bev;
	struct evbuffer *seen;    /* everything after the handshake */
	int stage;                /* 0 header, 1 handshake, 2 ready */
	int handshake_ok;
	const char *secret;
	int want;                 /* bodies to see before stopping */
};

/* A NUL-terminated copy of what the buffer holds; caller frees. */
static char *
buffer_text(struct evbuffer *b)
{
	size_t len = evbuffer_get_length(b);
	char *copy = malloc(len + 1);
	evbuffer_copyout(b, copy, len);
	copy[len] = '\0';
	return copy;
}

static void
server_read(struct bufferevent *bev, void *arg)
{
	struct server *s = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char *data = buffer_text(in);

	if (s->stage == 0) {
		char *hdr = strstr(data, "<stream:stream");
		char *end = hdr ? strchr(hdr, '>') : NULL;
		if (end != NULL) {
			evbuffer_drain(in, (size_t)(end - data) + 1);
			static const char reply[] = "<stream:stream xmlns='"
			    "jabber:component:accept' xmlns:stream='http://"
			    "etherx.jabber.org/streams' id='abc123'>";
			bufferevent_write(bev, reply, sizeof(reply) - 1);
			s->stage = 1;
		}
	} else if (s->stage == 1) {
		char *open = strstr(data, "<handshake>");
		char *close = open ? strstr(open, "</handshake>") : NULL;
		if (close != NULL) {
			unsigned char md[EVP_MAX_MD_SIZE];
			unsigned int mdlen;
			char input[256], hex[2 * EVP_MAX_MD_SIZE + 1];
			snprintf(input, sizeof(input), "abc123%s", s->secret);
			EVP_Digest(input, strlen(input), md, &mdlen,
			    EVP_sha1(), NULL);
			for (unsigned int i = 0; i < mdlen; i++)
				snprintf(hex + 2 * i, 3, "%02x", md[i]);
			*close = '\0';
			s->handshake_ok = strcmp(open + 11, hex) == 0;
			evbuffer_drain(in, (size_t)(close - data) + 12);
			bufferevent_write(bev, "<handshake/>", 12);
			s->stage = 2;
		}
	}
	free(data);
	if (s->stage == 2) {
		evbuffer_remove_buffer(in, s->seen, evbuffer_get_length(in));
		char *all = buffer_text(s->seen);
		int n = 0;
		for (const char *p = all; (p = strstr(p, "<body>")); p++)
			n++;
		free(all);
		if (n >= s->want)
			event_base_loopexit(cw->base, NULL);
	}
}

static void
server_accept(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct server *s = arg;
	s->bev = bufferevent_socket_new(cw->base, fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(s->bev, server_read, NULL, NULL, s);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

static struct stanza *
message(const char *body)
{
	struct stanza *m = stanza_new("message", NS_COMPONENT);
	stanza_set_attr(m, "to", "alice@localhost");
	stanza_set_attr(m, "type", "chat");
	stanza_new_text_child(m, "body", body);
	return m;
}

static void
timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	*(int *)arg = 1;
	event_base_loopexit(cw->base, NULL);
}

static void
test_queue_while_disconnected(void)
{
	static struct causeway ctx;
	cw = &ctx;
	evthread_use_pthreads();
	ctx.base = event_base_new();
	TAILQ_INIT(&ctx.components);

	struct sockaddr_in sin = { .sin_family = AF_INET };
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	struct server srv = { .seen = evbuffer_new(), .secret = "qsecret",
	    .want = 3 };
	struct evconnlistener *l = evconnlistener_new_bind(ctx.base,
	    server_accept, &srv, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
	    (struct sockaddr *)&sin, sizeof(sin));
	CHECK(l != NULL);
	struct sockaddr_in bound;
	socklen_t blen = sizeof(bound);
	getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&bound,
	    &blen);

	char path[] = "/tmp/cw-test-component-XXXXXX";
	int fd = mkstemp(path);
	dprintf(fd, "[component test.localhost]\nbackend = echo\n"
	    "port = %d\nsecret = qsecret\nqueue_max = 3\n",
	    ntohs(bound.sin_port));
	close(fd);
	struct config_errors *errs = config_errors_new();
	struct config *cfg = NULL;
	CHECK(config_load(path, types, 1, &cfg, errs) == 0);
	config_errors_free(errs);
	unlink(path);
	if (cfg == NULL)
		return;

	struct component *c = component_new(config_section_at(cfg,
	    "component", 0));
	CHECK(c != NULL);
	if (c == NULL)
		return;
	CHECK(component_send(c, message("one")) == 0);
	CHECK(component_send(c, message("two")) == 0);
	CHECK(component_send(c, message("three")) == 0);
	CHECK(c->queued == 3);
	/* The fourth does not fit: refused, and the caller is told. */
	CHECK(component_send(c, message("four")) == -1);
	CHECK(c->stats.queue_refused == 1);

	int timed_out = 0;
	struct event *t = evtimer_new(ctx.base, timeout_cb, &timed_out);
	struct timeval tv = { .tv_sec = 10 };
	evtimer_add(t, &tv);
	component_connect(c);
	event_base_dispatch(ctx.base);

	CHECK(!timed_out);
	CHECK(srv.handshake_ok);
	CHECK(c->state == COMPONENT_READY);
	CHECK(c->queued == 0);
	char *copy = buffer_text(srv.seen);
	const char *p1 = strstr(copy, "<body>one</body>");
	const char *p2 = strstr(copy, "<body>two</body>");
	const char *p3 = strstr(copy, "<body>three</body>");
	CHECK(p1 != NULL && p2 != NULL && p3 != NULL && p1 < p2 && p2 < p3);
	CHECK(strstr(copy, "four") == NULL);
	CHECK(strstr(copy, "from=\"test.localhost\"") != NULL ||
	    strstr(copy, "from='test.localhost'") != NULL);
	free(copy);

	/* Once ready, sends go straight out. */
	CHECK(component_send(c, message("five")) == 0);
	CHECK(c->queued == 0);

	/* Shutdown writes </stream:stream> and reports the close. */
	ctx.stopping = 1;
	component_shutdown(c);
	evtimer_add(t, &tv);
	event_base_dispatch(ctx.base);
	CHECK(closed_calls == 1);
	CHECK(c->state == COMPONENT_CLOSED);

	component_free(c);
	event_free(t);
	if (srv.bev)
		bufferevent_free(srv.bev);
	evbuffer_free(srv.seen);
	evconnlistener_free(l);
	config_free(cfg);
	event_base_free(ctx.base);
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	alarm(30);
	if (getenv("TEST_DEBUG"))
		log_init(LOG_LEVEL_DEBUG, 0);
	RUN(test_queue_while_disconnected);
	return TAP_DONE();
}
