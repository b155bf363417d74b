/*
 * irc_conn against a scripted IRC server in the same process and event
 * loop: the test's evconnlistener on 127.0.0.1 accepts the connection
 * (plain, or TLS with a certificate made at start-up), reads the
 * client's lines and answers as the script says.  Each test runs the
 * loop until a stop condition holds or a few seconds pass; alarm()
 * catches a hang anywhere.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "causeway.h"
#include "destination.h"
#include "irc_conn.h"
#include "irc_identd.h"
#include "irc_proto.h"
#include "log.h"
#include "tap.h"

#define MAX_LINES 512

static struct event_base *base;
static struct evdns_base *dns;
/* The destination policy's lookups run on cw->base. */
static struct causeway cw_state;
struct causeway *cw = &cw_state;

/* ---- the scripted server ---- */

struct fake {
	struct evconnlistener *lis;
	struct bufferevent *bev;
	int port;
	SSL_CTX *sctx;                /* TLS when set */
	/* the script */
	int no_cap;                   /* answer CAP with 421 */
	const char *ls1, *ls2;        /* LS lines; ls1 NULL: one line */
	int sasl_ok;                  /* answer credentials with 903/904 */
	int sasl_colon;               /* "AUTHENTICATE :+" like InspIRCd */
	int refuse_nicks;             /* 433 this many NICKs (-1: all) */
	int erroneous;                /* 432 for nicks with '.' or a digit
	                               * first */
	int close_after_nick;         /* hang up during registration */
	int ignore_ping;
	const char *isupport;
	/* what happened */
	int cap_end, user, registered, eof, accepted;
	int peer_port;                /* the client's port */
	char nick[64];
	char auth[2048];              /* the AUTHENTICATE payload */
	int auth_lines;
	char *lines[MAX_LINES];
	double times[MAX_LINES];
	size_t nlines;
	void (*after)(struct fake *f, const char *line);
};

struct client {
	struct irc_conn *c;
	int registered_calls;
	char reg_nick[64];
	int closed_calls;
	char reason[1024];
	char cmds[64][16];            /* commands passed to message() */
	int ncmds;
	char last_param[256];
	void (*on_registered)(struct client *cl);
	unsigned long written[64], unsent[64];   /* tags, in order */
	int nwritten, nunsent;
	int unsent_before_closed;                /* all came before closed() */
	int refused;                  /* irc_conn_refused() in closed() */
};

static int (*stop_cond)(void);
static struct fake *cur_fake;
static struct client *cur_client;

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
check_stop(void)
{
	if (stop_cond != NULL && stop_cond())
		event_base_loopbreak(base);
}

static void fake_send(struct fake *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
fake_send(struct fake *f, const char *fmt, ...)
{
	va_list ap;
	if (f->bev == NULL)
		return;
	va_start(ap, fmt);
	evbuffer_add_vprintf(bufferevent_get_output(f->bev), fmt, ap);
	va_end(ap);
	evbuffer_add(bufferevent_get_output(f->bev), "\r\n", 2);
}

static int
starts(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* The last parameter of a line as the client wrote it. */
static const char *
last_param(const char *line)
{
	const char *p = strstr(line, " :");
	if (p != NULL)
		return p + 2;
	p = strrchr(line, ' ');
	return p != NULL ? p + 1 : "";
}

/* The fake's index of the first line starting with prefix, or -1. */
static int
fake_find(const struct fake *f, const char *prefix)
{
	for (size_t i = 0; i < f->nlines; i++)
		if (starts(f->lines[i], prefix))
			return (int)i;
	return -1;
}

static int
fake_count(const struct fake *f, const char *prefix)
{
	int n = 0;
	for (size_t i = 0; i < f->nlines; i++)
		if (starts(f->lines[i], prefix))
			n++;
	return n;
}

static void
maybe_register(struct fake *f)
{
	if (f->registered || !f->user || f->nick[0] == '\0' ||
	    (!f->no_cap && !f->cap_end))
		return;
	f->registered = 1;
	fake_send(f, ":irc.test 001 %s :Welcome to the test network %s",
	    f->nick, f->nick);
	fake_send(f, ":irc.test 005 %s %s :are supported by this server",
	    f->nick, f->isupport != NULL ? f->isupport :
	    "CASEMAPPING=ascii PREFIX=(qaohv)~&@%+ CHANTYPES=#");
}

static void
fake_line(struct fake *f, const char *line)
{
	if (starts(line, "CAP LS")) {
		if (f->no_cap) {
			fake_send(f, ":irc.test 421 * CAP :Unknown command");
			return;
		}
		if (f->ls1 != NULL)
			fake_send(f, ":irc.test CAP * LS * :%s", f->ls1);
		/* NULL: the LS reply never ends. */
		if (f->ls2 != NULL)
			fake_send(f, ":irc.test CAP * LS :%s", f->ls2);
	} else if (starts(line, "CAP REQ ")) {
		fake_send(f, ":irc.test CAP * ACK :%s", last_param(line));
	} else if (strcmp(line, "CAP END") == 0) {
		f->cap_end = 1;
		maybe_register(f);
	} else if (strcmp(line, "AUTHENTICATE PLAIN") == 0) {
		fake_send(f, "AUTHENTICATE %s", f->sasl_colon ? ":+" : "+");
	} else if (starts(line, "AUTHENTICATE ")) {
		const char *p = line + 13;
		f->auth_lines++;
		if (strcmp(p, "+") != 0 &&
		    strlen(f->auth) + strlen(p) < sizeof(f->auth))
			strcat(f->auth, p);
		if (strlen(p) == 400)
			return;
		if (f->sasl_ok) {
			fake_send(f, ":irc.test 900 * * gwuser :You are now "
			    "logged in as gwuser");
			fake_send(f, ":irc.test 903 * :SASL authentication "
			    "successful");
		} else {
			fake_send(f, ":irc.test 904 * :SASL authentication "
			    "failed");
		}
	} else if (starts(line, "NICK ")) {
		const char *n = last_param(line);
		if (f->close_after_nick) {
			bufferevent_free(f->bev);
			f->bev = NULL;
			f->eof = 1;
			return;
		}
		if (!f->registered && f->erroneous && (strchr(n, '.') ||
		    (*n >= '0' && *n <= '9'))) {
			fake_send(f, ":irc.test 432 * %s :Erroneous nickname",
			    n);
			return;
		}
		if (!f->registered && f->refuse_nicks != 0) {
			if (f->refuse_nicks > 0)
				f->refuse_nicks--;
			fake_send(f, ":irc.test 433 * %s :Nickname is already "
			    "in use", n);
			return;
		}
		snprintf(f->nick, sizeof(f->nick), "%s", n);
		maybe_register(f);
	} else if (starts(line, "USER ")) {
		f->user = 1;
		maybe_register(f);
	} else if (starts(line, "PING ") && !f->ignore_ping) {
		fake_send(f, ":irc.test PONG irc.test :%s", last_param(line));
	} else if (starts(line, "QUIT")) {
		fake_send(f, "ERROR :Closing link: (quit)");
		bufferevent_flush(f->bev, EV_WRITE, BEV_FINISHED);
	}
}

static void
fake_read_cb(struct bufferevent *bev, void *arg)
{
	struct fake *f = arg;
	char *line;
	size_t n;
	while (f->bev != NULL && (line = evbuffer_readln(
	    bufferevent_get_input(bev), &n, EVBUFFER_EOL_CRLF)) != NULL) {
		int kept = 0;
		if (f->nlines < MAX_LINES) {
			f->times[f->nlines] = now_s();
			f->lines[f->nlines++] = line;
			kept = 1;
		}
		fake_line(f, line);
		if (f->after != NULL && f->bev != NULL)
			f->after(f, line);
		if (!kept)
			free(line);
	}
	check_stop();
}

static void
fake_write_cb(struct bufferevent *bev, void *arg)
{
	check_stop();
}

static void
fake_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct fake *f = arg;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		f->eof = 1;
		bufferevent_free(f->bev);
		f->bev = NULL;
	}
	check_stop();
}

static void
fake_accept_cb(struct evconnlistener *lis, evutil_socket_t fd,
    struct sockaddr *sa, int len, void *arg)
{
	struct fake *f = arg;
	int opts = BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS;
	if (f->bev != NULL) {
		/* One client per test. */
		evutil_closesocket(fd);
		return;
	}
	f->accepted++;
	if (sa->sa_family == AF_INET)
		f->peer_port = ntohs(((struct sockaddr_in *)(void *)sa)->sin_port);
	if (f->sctx != NULL) {
		SSL *ssl = SSL_new(f->sctx);
		f->bev = bufferevent_openssl_socket_new(base, fd, ssl,
		    BUFFEREVENT_SSL_ACCEPTING, opts);
		bufferevent_openssl_set_allow_dirty_shutdown(f->bev, 1);
	} else {
		f->bev = bufferevent_socket_new(base, fd, opts);
	}
	bufferevent_setcb(f->bev, fake_read_cb, fake_write_cb, fake_event_cb,
	    f);
	bufferevent_enable(f->bev, EV_READ | EV_WRITE);
}

static struct fake *
fake_new_at(SSL_CTX *sctx, uint32_t addr)
{
	struct fake *f = calloc(1, sizeof(*f));
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(addr);
	f->sctx = sctx;
	f->lis = evconnlistener_new_bind(base, fake_accept_cb, f,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
	    (struct sockaddr *)&sin, sizeof(sin));
	if (f->lis == NULL) {
		perror("listen");
		exit(1);
	}
	getsockname(evconnlistener_get_fd(f->lis), (struct sockaddr *)&sin,
	    &sl);
	f->port = ntohs(sin.sin_port);
	f->ls1 = "multi-prefix sasl=PLAIN,EXTERNAL unknown-cap=1";
	f->ls2 = "server-time away-notify echo-message cap-notify";
	f->sasl_ok = 1;
	cur_fake = f;
	return f;
}

static struct fake *
fake_new(SSL_CTX *sctx)
{
	return fake_new_at(sctx, INADDR_LOOPBACK);
}

static void
fake_free(struct fake *f)
{
	if (f->bev != NULL)
		bufferevent_free(f->bev);
	if (f->lis != NULL)
		evconnlistener_free(f->lis);
	for (size_t i = 0; i < f->nlines; i++)
		free(f->lines[i]);
	free(f);
	cur_fake = NULL;
}

/* ---- the client side ---- */

static void
cl_registered(void *arg, const char *nick)
{
	struct client *cl = arg;
	cl->registered_calls++;
	snprintf(cl->reg_nick, sizeof(cl->reg_nick), "%s", nick);
	if (cl->on_registered != NULL)
		cl->on_registered(cl);
	check_stop();
}

static void
cl_message(void *arg, const struct irc_msg *m)
{
	struct client *cl = arg;
	if (cl->ncmds < 64)
		snprintf(cl->cmds[cl->ncmds++], sizeof(cl->cmds[0]), "%s",
		    m->command);
	if (m->nparams > 0)
		snprintf(cl->last_param, sizeof(cl->last_param), "%s",
		    m->params[m->nparams - 1]);
	check_stop();
}

/* The owner frees the connection from inside closed(), as it may. */
static void
cl_written(void *arg, unsigned long tag)
{
	struct client *cl = arg;
	if (cl->nwritten < 64)
		cl->written[cl->nwritten++] = tag;
	check_stop();
}

static void
cl_unsent(void *arg, unsigned long tag)
{
	struct client *cl = arg;
	if (cl->nunsent < 64)
		cl->unsent[cl->nunsent++] = tag;
	cl->unsent_before_closed = cl->closed_calls == 0;
}

static void
cl_closed(void *arg, const char *reason)
{
	struct client *cl = arg;
	cl->closed_calls++;
	snprintf(cl->reason, sizeof(cl->reason), "%s", reason);
	cl->refused = irc_conn_refused(cl->c);
	irc_conn_free(cl->c);
	cl->c = NULL;
	event_base_loopbreak(base);
}

static const struct irc_conn_callbacks callbacks = {
	.registered = cl_registered,
	.message = cl_message,
	.closed = cl_closed,
	.written = cl_written,
	.unsent = cl_unsent,
};

static int
got_cmd(const struct client *cl, const char *cmd)
{
	for (int i = 0; i < cl->ncmds; i++)
		if (strcmp(cl->cmds[i], cmd) == 0)
			return 1;
	return 0;
}

static void
cfg_init(struct irc_conn_config *cfg, const struct fake *f)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->host = "127.0.0.1";
	cfg->port = f->port;
	cfg->nick = "alice";
	cfg->username = "al";
	cfg->realname = "Alice A";
	cfg->timeout = 5;
	cfg->throttle_burst = 10;
	cfg->throttle_rate_ms = 10;
}

static void
timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	*(int *)arg = 1;
	event_base_loopbreak(base);
}

/* Runs the loop until stop() holds, the client closed, or max_s. */
static int
run(int (*stop)(void), double max_s)
{
	int timed_out = 0;
	struct event *t = evtimer_new(base, timeout_cb, &timed_out);
	struct timeval tv = {
		.tv_sec = (time_t)max_s,
		.tv_usec = (suseconds_t)((max_s - (double)(time_t)max_s) * 1e6),
	};
	evtimer_add(t, &tv);
	stop_cond = stop;
	if (stop == NULL || !stop())
		event_base_dispatch(base);
	stop_cond = NULL;
	event_free(t);
	return timed_out;
}

static int
stop_closed(void)
{
	return cur_client->closed_calls > 0;
}

static int
stop_005(void)
{
	return got_cmd(cur_client, "005") || cur_client->closed_calls > 0;
}

static struct irc_conn *
start(struct client *cl, const struct irc_conn_config *cfg)
{
	cur_client = cl;
	cl->c = irc_conn_new(base, dns, cfg, &callbacks, cl);
	return cl->c;
}

static void
finish(struct client *cl, struct fake *f)
{
	if (cl->c != NULL)
		irc_conn_free(cl->c);
	cl->c = NULL;
	/* Let the fake see the close, so nothing lingers into the next
	 * test. */
	run(NULL, 0.05);
	fake_free(f);
	cur_client = NULL;
}

/* ---- tests ---- */

static void
test_register(void)
{
	struct fake *f = fake_new(NULL);
	struct client cl = { 0 };
	struct irc_conn_config cfg;
	cfg_init(&cfg, f);
	cfg.password = "serverpass";
	cfg.webirc_password = "wpass";
	cfg.webirc_gateway = "gw";
	cfg.webirc_host = "user.example";
	cfg.webirc_ip = "192.0.2.1";
	start(&cl, &cfg);
	CHECK(run(stop_005, 5) == 0);
	CHECK(cl.registered_calls == 1);
	CHECK_STR(cl.reg_nick, "alice");
	CHECK(cl.closed_calls == 0);
	CHECK(irc_conn_is_registered(cl.c));
	CHECK_STR(irc_conn_nick(cl.c), "alice");
	/* Order: WEBIRC first, PASS before NICK and USER. */
	CHECK(f->nlines >= 6);
	CHECK_STR(f->lines[0], "WEBIRC wpass gw user.example 192.0.2.1");
	CHECK_STR(f->lines[1], "PASS serverpass");
	CHECK(fake_find(f, "CAP LS 302") >= 0);
	CHECK(fake_find(f, "NICK alice") > 1);
	CHECK_STR(f->lines[fake_find(f, "USER ")], "USER al 0 * :Alice A");
	/* Both LS lines were read before the REQ: caps from each. */
	int req = fake_find(f, "CAP REQ");
	CHECK(req >= 0);
	if (req >= 0)
		CHECK_STR(f->lines[req], "CAP REQ :server-time multi-prefix "
		    "away-notify echo-message cap-notify");
	CHECK(fake_find(f, "CAP END") > req);
	CHECK(irc_conn_has_cap(cl.c, "server-time"));
	CHECK(irc_conn_has_cap(cl.c, "multi-prefix"));
	CHECK(irc_conn_has_cap(cl.c, "cap-notify"));
	/* Offered, but no credentials. */
	CHECK(!irc_conn_has_cap(cl.c, "sasl"));
	CHECK(!irc_conn_has_cap(cl.c, "message-tags"));
	CHECK(!irc_conn_has_cap(cl.c, "unknown-cap"));
	CHECK(fake_count(f, "AUTHENTICATE") == 0);
	const struct irc_isupport *is = irc_conn_isupport(cl.c);
	CHECK(is->casemapping == IRC_CASEMAP_ASCII);
	CHECK_STR(is->prefix_chars, "~&@%+");
	CHECK_STR(is->prefix_modes, "qaohv");
	CHECK(got_cmd(&cl, "001"));
	CHECK(!got_cmd(&cl, "CAP"));
	finish(&cl, f);
}

static void
test_no_cap(void)
{
	struct fake *f = fake_new(NULL);
	struct client cl = { 0 };
	struct irc_conn_config cfg;
	cfg_init(&cfg, f);
	f->no_cap = 1;
	start(&cl, &cfg);
	CHECK(run(stop_005, 5) == 0);
	CHECK(cl.registered_calls == 1);
	CHECK(fake_count(f, "CAP END") == 0);
	CHECK(fake_count(f, "CAP REQ") == 0);
	CHECK(!irc_conn_has_cap(cl.c, "server-time"));
	CHECK(!got_cmd(&cl, "421"));
	finish(&cl, f);
}

static void
test_nick_in_use(void)
{
	struct fake *f = fake_new(NULL);
	struct client cl = { 0 };
	struct irc_conn_config cfg;
	cfg_init(&cfg, f);
	f->refuse_nicks = 2;
	start(&cl, &cfg);
	CHECK(run(stop_005, 5) == 0);
	CHECK(cl.registered_calls == 1);
	CHECK_STR(cl.reg_nick, "alice__");
	CHECK_STR(irc_conn_nick(cl.c), "alice__");
	CHECK(fake_count(f, "NICK ") == 3);
	CHECK(fake_find(f, "NICK alice_") >= 0);
	CHECK(fake_find(f, "NICK alice__") >= 0);
	CHECK(!got_cmd(&cl, "433"));
	finish(&cl, f);
}

static void
test_nick_refused(void)
{
	struct fake *f = fake_new(NULL);
	struct client cl = { 0 };
	struct irc_conn_config cfg;
	cfg_init(&cfg, f);
	f->refuse_nicks = -1;
	start(&cl, &cfg);
	CHECK(run(stop_closed, 5) == 0);
	CHECK(cl.registered_calls == 0);
	CHECK(cl.closed_calls == 1);
	CHECK(strstr(cl.reason, "nick") != NULL);
	CHECK(fake_count(f, "NICK ") == IRC_NICK_TRIES);
	run(NULL, 0.1);
	CHECK(cl.closed_calls == 1);
	finish(&cl, f);
}

/* 432 at registration: the nick is mended (the characters every server
 * takes), not stepped aside with underscores; a nick the connection
 * cannot even send is mended before the first NICK; with nothing left
 * of it, the user name stands in. */
static void
test_nick_erroneous(void)
{
	static const struct {
		const char *nick, *got;
		int nicks;            /* NICK lines sent */
	} cases[] = {
		{ "9.lives", "lives", 2 },
		{ ":x,y", "xy", 1 },
		{ "1.2", "al", 2 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fake *f = fake_new(NULL);
		struct client cl = { 0 };
		struct irc_conn_config cfg;
		cfg_init(&cfg, f);
		f->erroneous = 1;
		cfg.nick = cases[i].nick;
		start(&cl, &cfg);
		CHECK(run(stop_005, 5) == 0);
		CHECK(cl.registered_calls == 1);
		CHECK_STR(cl.reg_nick, cases[i].got);
		CHECK(fake_count(f, "NICK ") == cases[i].nicks);
		finish(&cl, f);
	}
}

/* Decodes the base64 the fake collected. */
static size_t
unbase64(const char *in, unsigned char *out)
{
	int n = EVP_DecodeBlock(out, (const unsigned char *)in,
	    (int)strlen(in));
	if (n < 0)
		return 0;
	size_t len = (size_t)n;
	/* EVP_DecodeBlock counts the padding as zero bytes. */
	for (size_t i = strlen(in); i > 0 && in[i - 1] == '='; i--)
		len--;
	return len;
}

static void
test_sasl_ok(void)
{
	struct fake *f = fake_new(NULL);
	struct client cl = { 0 };
	struct irc_conn_config cfg;
	cfg_init(&cfg, f);
	cfg.sasl_user = "gwuser";
	cfg.sasl_password = "gwpass123";
	start(&cl, &cfg);
	CHECK(run(stop_005, 5) == 0);
	CHECK(cl.registered_calls == 1);
	CHECK(irc_conn_has_cap(cl.c, "sasl"));
	int req = fake_find(f, "CAP REQ");
	CHECK(req >= 0 && strstr(f->lines[req], "sasl") != NULL);
	int auth = fake_find(f, "AUTHENTICATE PLAIN");
	CHECK(auth > req);
	CHECK(fake_find(f, "CAP END") > auth);
	unsigned char raw[1024];
	size_t n = unbase64(f->auth, raw);
	CHECK(n == 1 + 6 + 1 + 9);
	CHECK(n == 17 && memcmp(raw, "\0gwuser\0gwpass123", 17) == 0);
	CHECK(f->auth_lines == 1);
	CHECK(!got_cmd(&cl, "903"));
	CHECK(!got_cmd(&cl, "AUTHENTICATE"));
	finish(&cl, f);
}

/* Credentials whose base64 is over 400 bytes, and exactly 400. */
static void
test_sasl_chunks(void)
{
	for (int round = 0; round < 2; round++) {
		struct fake *f = fake_new(NULL);
		struct client cl = { 0 };
		struct irc_conn_config cfg;
		char pass[400];
		/* raw = 1 + 6 + 1 + plen: 300 bytes give 400 base64 bytes,
		 * 308 give 412. */
		size_t plen = round == 0 ? 292 : 300;
		memset(pass, 'p', plen);
		pass[plen] = '\0';
		cfg_init(&cfg, f);
		cfg.sasl_user = "gwuser";
		cfg.sasl_password = pass;
		f->sasl_colon = 1;
		start(&cl, &cfg);
		CHECK(run(stop_005, 5) == 0);
		CHECK(cl.registered_calls == 1);
		CHECK(f->auth_lines == 2);
		int first = fake_find(f, "AUTHENTICATE PLAIN");
		CHECK(first >= 0);
		if (first >= 0 && (size_t)first + 2 < f->nlines) {
			CHECK(strlen(f->lines[first + 1]) == 13 + 400);
			if (round == 0)
				CHECK_STR(f->lines[first + 2],
				    "AUTHENTICATE +");
			else
				CHECK(strlen(f->lines[first + 2]) == 13 + 12);
		}
		unsigned char raw[1024];
		size_t n = unbase64(f->auth, raw);
		CHECK(n == 8 + plen);
		CHECK(n == 8 + plen && memcmp(raw, "\0gwuser\0", 8) == 0 &&
		    raw[n - 1] == 'p');
		finish(&cl, f);
	}
}

static void
test_sasl_fail(void)
{
	struct fake *f = fake_new(NULL);
	struct client cl = { 0 };
	struct irc_conn_config cfg;
	cfg_init(&cfg, f);
	cfg.sasl_user = "gwuser";
	cfg.sasl_password = "wrong";
	f->sasl_ok = 0;
	start(&cl, &cfg);
	CHECK(run(stop_closed, 5) == 0);
	CHECK(cl.registered_calls == 0);
	CHECK(cl.closed_calls == 1);
	CHECK_STR(cl.reason, "SASL authentication failed");
	CHECK(fake_count(f, "CAP END") == 0);
	finish(&cl, f);
}

/* After registration: PING, our NICK change, a nick error, ERROR. */
static int step;

static void
after_ping_script(struct fake *f, const char *line)
{
	if (starts(line, "PONG ") && step == 0) {
		step = 1;
		fake_send(f, ":alice!al@host NICK :alice2");
		fake_send(f, ":bob!b@host NICK :bobby");
		fake_send(f, ":irc.test 433 alice2 carol :Nickname is "
		    "already in use");
		fake_send(f, "ERROR :Closing link: bye now");
	}
}

static void
on_registered_ping(struct client *cl)
{
	fake_send(cur_fake, "PING :token 123");
}

static void
test_ping_nick_error(void)
{
	struct fake *f = fake_new(NULL);
	struct client cl = { 0 };
	struct irc_conn_config cfg;
	cfg_init(&cfg, f);
	step = 0;
	f->after = after_ping_script;
	cl.on_registered = on_registered_ping;
	start(&cl, &cfg);
	CHECK(run(stop_closed, 5) == 0);
	CHECK(cl.registered_calls == 1);
	CHECK(fake_find(f, "PONG :token 123") >= 0);
	CHECK(!got_cmd(&cl, "PING"));
	CHECK(got_cmd(&cl, "NICK"));
	CHECK(got_cmd(&cl, "433"));
	CHECK(cl.closed_calls == 1);
	CHECK_STR(cl.reason, "Closing link: bye now");
	finish(&cl, f);
}

/* The nick is followed before message() sees the NICK line. */
static char nick_seen_in_message[64];

static void
nick_message(void *arg, const struct irc_msg *m)
{
	struct client *cl = arg;
	if (strcmp(m->command, "NICK") == 0 && cl->c != NULL)
		snprintf(nick_seen_in_message, sizeof(nick_seen_in_message),
		    "%s", irc_conn_nick(cl->c));
	cl_message(arg, m);
}

static int
stop_nick(void)
{
	return got_cmd(cur_client, "NICK") || cur_client->closed_calls > 0;
}

static void
on_registered_nick(struct client *cl)
{
	fake_send(cur_fake, ":ALICE!al@host NICK :Alice_Away");
}

static void
test_nick_tracked(void)
{
	struct fake *f = fake_new(NULL);
	struct client cl = { 0 };
	struct irc_conn_config cfg;
	struct irc_conn_callbacks cbs = callbacks;
	cbs.message = nick_message;
	cfg_init(&cfg, f);
	cl.on_registered = on_registered_nick;
	cur_client = &cl;
	nick_seen_in_message[0] = '\0';
	cl.c = irc_conn_new(base, dns, &cfg, &cbs, &cl);
	CHECK(run(stop_nick, 5) == 0);
	/* CASEMAPPING=ascii: ALICE is us. */
	CHECK_STR(irc_conn_nick(cl.c), "Alice_Away");
	CHECK_STR(nick_seen_in_message, "Alice_Away");
	finish(&cl, f);
}

static void
test_close_during_registration(void)
{
	struct fake *f = fake_new(NULL);
	struct client cl = { 0 };
	struct irc_conn_config cfg;
	cfg_init(&cfg, f);
	f->close_after_nick = 1;
	start(&cl, &cfg);
	CHECK(run(stop_closed, 5) == 0);
	CHECK(cl.closed_calls == 1);
	CHECK(cl.registered_calls == 0);
	CHECK(strstr(cl.reason, "registration") != NULL);
	run(NULL, 0.1);
	CHECK(cl.closed_calls == 1);
	finish(&cl, f);
}

static void
test_connection_refused(void)
{
	struct fake *f = fake_new(NULL);
	struct client cl = { 0 };
	struct irc_conn_config cfg;
	cfg_init(&cfg, f);
	/* Nothing listens there any more. */
	evconnlistener_free(f->lis);
	f->lis = NULL;
	start(&cl, &cfg);
	/* closed() comes from the loop, never from inside new(). */
	CHECK(cl.closed_calls == 0);
	CHECK(run(stop_closed, 5) == 0);
	CHECK(cl.closed_calls == 1);
	CHECK(strstr(cl.reason, "connect") != NULL);
	finish(&cl, f);
}

/*
 * A host the user typed (user_host): by default 127.0.0.1 and
 * "localhost" are refused with the one text, before any connection;
 * freed while the policy looks, nothing is called; allowed by
 * destinations_allow, the connection registers as any other.
 */
static void
test_user_host(void)
{
	static const char *const hosts[] = { "127.0.0.1", "localhost",
	    "irc.localhost" };
	destination_configure(NULL, NULL);
	for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
		struct fake *f = fake_new(NULL);
		struct client cl = { 0 };
		struct irc_conn_config cfg;
		cfg_init(&cfg, f);
		cfg.host = hosts[i];
		cfg.user_host = 1;
		start(&cl, &cfg);
		CHECK(cl.closed_calls == 0);
		CHECK(run(stop_closed, 5) == 0);
		CHECK(cl.closed_calls == 1);
		CHECK_STR(cl.reason, DESTINATION_REFUSED);
		CHECK(cl.refused);
		run(NULL, 0.1);
		CHECK(f->accepted == 0);
		finish(&cl, f);
	}

	struct fake *f = fake_new(NULL);
	struct client cl = { 0 };
	struct irc_conn_config cfg;
	cfg_init(&cfg, f);
	cfg.user_host = 1;
	start(&cl, &cfg);
	irc_conn_free(cl.c);
	cl.c = NULL;
	run(NULL, 0.2);
	CHECK(cl.closed_calls == 0);
	CHECK(f->accepted == 0);
	finish(&cl, f);

	CHECK(destination_configure("127.0.0.0/8", NULL) == 0);
	f = fake_new(NULL);
	memset(&cl, 0, sizeof(cl));
	cfg_init(&cfg, f);
	cfg.host = "localhost";
	cfg.user_host = 1;
	start(&cl, &cfg);
	CHECK(run(stop_005, 5) == 0);
	CHECK(cl.registered_calls == 1);
	CHECK(!irc_conn_refused(cl.c) && !cl.refused);
	CHECK(f->accepted == 1);
	finish(&cl, f);
	destination_configure(NULL, NULL);
}

static int
stop_pong_after(void)
{
	return fake_find(cur_fake, "PONG after2") >= 0 ||
	    cur_client->closed_calls > 0;
}

static void
long_script(struct fake *f, const char *line)
{
	if (strcmp(line, "PONG after1") == 0) {
		/* A line that does not end (1 MB so far), then its end and
		 * a PING that must still be answered. */
		char *big = malloc(1 << 20);
		memset(big, 'y', 1 << 20);
		evbuffer_add(bufferevent_get_output(f->bev), big, 1 << 20);
		free(big);
	}
}

static void
on_registered_long(struct client *cl)
{
	struct fake *f = cur_fake;
	/* 100 KB in one line, a line that does not parse, then a PING. */
	char *big = malloc(100 * 1024 + 1);
	memset(big, 'x', 100 * 1024);
	big[0] = ':';
	memcpy(big + 1, "irc.test PRIVMSG alice :", 24);
	big[100 * 1024] = '\0';
	fake_send(f, "%s", big);
	free(big);
	fake_send(f, ":onlyaprefix");
	fake_send(f, "PING :after1");
}

static int
stop_big_sent(void)
{
	return (cur_fake->bev != NULL && fake_find(cur_fake,
	    "PONG after1") >= 0 && evbuffer_get_length(
	    bufferevent_get_output(cur_fake->bev)) == 0) ||
	    cur_client->closed_calls > 0;
}

static void
test_long_lines(void)
{
	struct fake *f = fake_new(NULL);
	struct client cl = { 0 };
	struct irc_conn_config cfg;
	struct irc_conn_stats st;
	cfg_init(&cfg, f);
	f->after = long_script;
	cl.on_registered = on_registered_long;
	start(&cl, &cfg);
	CHECK(run(stop_big_sent, 10) == 0);
	/* Let the client read what is left of the megabyte. */
	run(NULL, 0.3);
	CHECK(cl.closed_calls == 0);
	CHECK(fake_find(f, "PONG after1") >= 0);
	if (cl.c != NULL) {
		irc_conn_get_stats(cl.c, &st);
		CHECK(st.lines_too_long == 2);
		CHECK(st.lines_bad == 1);
		CHECK(st.input_peak <= 2 * IRC_INPUT_MAX);
	}
	fake_send(f, "\r\nPING :after2");
	CHECK(run(stop_pong_after, 5) == 0);
	CHECK(cl.closed_calls == 0);
	CHECK(fake_find(f, "PONG after2") >= 0);
	if (cl.c != NULL) {
		irc_conn_get_stats(cl.c, &st);
		CHECK(st.lines_too_long == 2);
		CHECK(st.input_peak <= 2 * IRC_INPUT_MAX);
	}
	CHECK(!got_cmd(&cl, "PRIVMSG"));
	finish(&cl, f);
}

static void
test_ping_timeout(void)
{
	struct fake *f = fake_new(NULL);
	struct client cl = { 0 };
	struct irc_conn_config cfg;
	cfg_init(&cfg, f);
	cfg.timeout = 1;
	f->ignore_ping = 1;
	start(&cl, &cfg);
	double t0 = now_s();
	CHECK(run(stop_closed, 6) == 0);
	double t = now_s() - t0;
	CHECK(cl.registered_calls == 1);
	CHECK(cl.closed_calls == 1);
	CHECK_STR(cl.reason, "ping timeout");
	CHECK(fake_find(f, "PING causeway") >= 0);
	CHECK(t >= 1.5 && t < 4.0);
	finish(&cl, f);
}

static void
test_register_timeout(void)
{
	struct fake *f = fake_new(NULL);
	struct client cl = { 0 };
	struct irc_conn_config cfg;
	cfg_init(&cfg, f);
	cfg.timeout = 1;
	/* LS never finishes: the server keeps us in registration. */
	f->ls2 = NULL;
	start(&cl, &cfg);
	CHECK(run(stop_closed, 5) == 0);
	CHECK(cl.closed_calls == 1);
	CHECK(cl.registered_calls == 0);
	CHECK(strstr(cl.reason, "registration") != NULL);
	finish(&cl, f);
}

static const char *const flood_nums[] = { "0", "1", "2", "3", "4", "5",
    "6", "7", "8", "9" };

static void
on_registered_flood(struct client *cl)
{
	for (int i = 0; i < 10; i++) {
		const char *p[] = { "#chan", flood_nums[i], NULL };
		CHECK(irc_conn_send(cl->c, "PRIVMSG", p) == 0);
	}
	CHECK(irc_conn_queued(cl->c) == 8);
	/* Nothing that could inject a command is queued. */
	const char *inj1[] = { "#chan", "hi\r\nQUIT", NULL };
	const char *inj2[] = { "#chan\r\nQUIT", "hi", NULL };
	const char *inj3[] = { "#chan", "hi\nQUIT :x", NULL };
	const char *inj4[] = { "#chan x", "hi", NULL };
	CHECK(irc_conn_send(cl->c, "PRIVMSG", inj1) == -1);
	CHECK(irc_conn_send(cl->c, "PRIVMSG", inj2) == -1);
	CHECK(irc_conn_send(cl->c, "PRIVMSG", inj3) == -1);
	CHECK(irc_conn_send(cl->c, "PRIVMSG", inj4) == -1);
	CHECK(irc_conn_send(cl->c, "PRIVMSG\r\nQUIT", NULL) == -1);
	CHECK(irc_conn_queued(cl->c) == 8);
	irc_conn_quit(cl->c, "see you");
	CHECK(irc_conn_queued(cl->c) == 9);
	const char *late[] = { "#chan", "too late", NULL };
	CHECK(irc_conn_send(cl->c, "PRIVMSG", late) == -1);
}

static void
test_flood(void)
{
	struct fake *f = fake_new(NULL);
	struct client cl = { 0 };
	struct irc_conn_config cfg;
	cfg_init(&cfg, f);
	cfg.throttle_burst = 2;
	cfg.throttle_rate_ms = 100;
	cl.on_registered = on_registered_flood;
	start(&cl, &cfg);
	CHECK(run(stop_closed, 5) == 0);
	CHECK(cl.closed_calls == 1);
	CHECK_STR(cl.reason, "quit");
	int first = fake_find(f, "PRIVMSG #chan 0");
	CHECK(first >= 0);
	if (first >= 0) {
		int ok = 1;
		for (int i = 0; i < 10; i++) {
			char want[32];
			snprintf(want, sizeof(want), "PRIVMSG #chan %d", i);
			if ((size_t)(first + i) >= f->nlines ||
			    strcmp(f->lines[first + i], want) != 0)
				ok = 0;
		}
		CHECK(ok);
		if (ok) {
			/* 0.8 s by the bucket; loosely, so a loaded machine
			 * does not fail it. */
			double span = f->times[first + 9] - f->times[first];
			CHECK(span >= 0.5);
			CHECK(span < 3.0);
			/* QUIT after everything queued. */
			CHECK((size_t)(first + 10) < f->nlines &&
			    strcmp(f->lines[first + 10], "QUIT :see you") ==
			    0);
		}
	}
	CHECK(fake_count(f, "QUIT") == 1);
	CHECK(fake_count(f, "PRIVMSG") == 10);
	finish(&cl, f);
}

/* The NickServ line after 001 when SASL is not used, before anything
 * queued; the identd knows the link while it is open. */
static void
on_registered_join(struct client *cl)
{
	const char *p[] = { "#chan", NULL };
	irc_conn_send(cl->c, "JOIN", p);
}

static void
test_nickserv_identd(void)
{
	struct fake *f = fake_new(NULL);
	struct client cl = { 0 };
	struct irc_conn_config cfg;
	cfg_init(&cfg, f);
	cfg.ident = "cw0123abcd";
	cfg.username = "cw0123abcd";
	cfg.nickserv = "IDENTIFY acct secret";
	cl.on_registered = on_registered_join;
	start(&cl, &cfg);
	CHECK(run(stop_005, 5) == 0);
	run(NULL, 0.1);
	int user = fake_find(f, "USER ");
	int ns = fake_find(f, "PRIVMSG NickServ");
	int join = fake_find(f, "JOIN #chan");
	CHECK(user >= 0 && ns > user && join > ns);
	if (ns >= 0)
		CHECK_STR(f->lines[ns], "PRIVMSG NickServ :IDENTIFY acct secret");
	CHECK(!irc_conn_sasl_done(cl.c));
	char q[64], a[256], want[128];
	snprintf(q, sizeof(q), "%d, %d", f->peer_port, f->port);
	/* Asked by the server's host (both ends are 127.0.0.1 here). */
	struct sockaddr_in lo = { .sin_family = AF_INET,
	    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	identd_answer(q, (struct sockaddr *)&lo, (struct sockaddr *)&lo, a,
	    sizeof(a));
	snprintf(want, sizeof(want), "%d , %d : USERID : UNIX : cw0123abcd\r\n",
	    f->peer_port, f->port);
	CHECK_STR(a, want);
	int lport = f->peer_port, rport = f->port;
	finish(&cl, f);
	/* Closed: the identd forgets it. */
	snprintf(q, sizeof(q), "%d, %d", lport, rport);
	identd_answer(q, (struct sockaddr *)&lo, (struct sockaddr *)&lo, a,
	    sizeof(a));
	CHECK(strstr(a, "NO-USER") != NULL);
}

/* With SASL done, no NickServ line. */
static void
test_nickserv_after_sasl(void)
{
	struct fake *f = fake_new(NULL);
	struct client cl = { 0 };
	struct irc_conn_config cfg;
	cfg_init(&cfg, f);
	cfg.sasl_user = "gwuser";
	cfg.sasl_password = "gwpass123";
	cfg.nickserv = "IDENTIFY acct secret";
	start(&cl, &cfg);
	CHECK(run(stop_005, 5) == 0);
	run(NULL, 0.1);
	CHECK(irc_conn_sasl_done(cl.c));
	CHECK(fake_count(f, "PRIVMSG NickServ") == 0);
	finish(&cl, f);
}

/* Tagged lines: written() for those that left, in order and never from
 * inside irc_conn_send(); unsent() for those still queued when the link
 * drops, before closed(). */
static int written_inside_send;

static void
on_registered_tagged(struct client *cl)
{
	char text[16];
	for (unsigned long i = 1; i <= 8; i++) {
		snprintf(text, sizeof(text), "%lu", i);
		const char *p[] = { "#chan", text, NULL };
		int before = cl->nwritten;
		irc_conn_send_tagged(cl->c, i, "PRIVMSG", p);
		if (cl->nwritten != before)
			written_inside_send = 1;
	}
}

static int
stop_two_written(void)
{
	return cur_client->nwritten >= 2 || cur_client->closed_calls > 0;
}

static void
test_tagged(void)
{
	struct fake *f = fake_new(NULL);
	struct client cl = { 0 };
	struct irc_conn_config cfg;
	cfg_init(&cfg, f);
	cfg.throttle_burst = 2;
	cfg.throttle_rate_ms = 1000;
	cl.on_registered = on_registered_tagged;
	start(&cl, &cfg);
	CHECK(run(stop_two_written, 5) == 0);
	CHECK(!written_inside_send);
	CHECK(cl.nwritten == 2 && cl.written[0] == 1 && cl.written[1] == 2);
	/* The server hangs up with 6 lines still waiting. */
	run(NULL, 0.05);
	bufferevent_free(f->bev);
	f->bev = NULL;
	CHECK(run(stop_closed, 5) == 0);
	CHECK(cl.closed_calls == 1);
	CHECK(cl.nwritten == 2);
	CHECK(cl.nunsent == 6 && cl.unsent_before_closed);
	int order = cl.nunsent == 6;
	for (int i = 0; i < cl.nunsent && order; i++)
		order = cl.unsent[i] == (unsigned long)i + 3;
	CHECK(order);
	finish(&cl, f);
}

/* irc_conn_free from inside message(): nothing may touch it after. */
static void
free_in_message(void *arg, const struct irc_msg *m)
{
	struct client *cl = arg;
	cl_message(arg, m);
	if (strcmp(m->command, "001") == 0) {
		irc_conn_free(cl->c);
		cl->c = NULL;
		event_base_loopbreak(base);
	}
}

static void
test_free_in_callback(void)
{
	struct fake *f = fake_new(NULL);
	struct client cl = { 0 };
	struct irc_conn_config cfg;
	struct irc_conn_callbacks cbs = callbacks;
	cbs.message = free_in_message;
	cfg_init(&cfg, f);
	cur_client = &cl;
	cl.c = irc_conn_new(base, dns, &cfg, &cbs, &cl);
	run(stop_closed, 5);
	CHECK(cl.c == NULL);
	CHECK(cl.closed_calls == 0);
	run(NULL, 0.1);
	CHECK(cl.closed_calls == 0);
	finish(&cl, f);
}

static void
test_bad_config(void)
{
	struct fake *f = fake_new(NULL);
	struct client cl = { 0 };
	struct irc_conn_config cfg;
	cfg_init(&cfg, f);
	cfg.tls = 1;
	cfg.fingerprint = "not a fingerprint";
	start(&cl, &cfg);
	CHECK(cl.c != NULL);
	CHECK(cl.closed_calls == 0);
	CHECK(run(stop_closed, 5) == 0);
	CHECK(cl.closed_calls == 1);
	CHECK(strstr(cl.reason, "fingerprint") != NULL);
	finish(&cl, f);

	/* A nick with a space must not become "NICK a b" (nor "NICK :a b"):
	 * it is mended to "ab" before anything is sent. */
	f = fake_new(NULL);
	memset(&cl, 0, sizeof(cl));
	cfg_init(&cfg, f);
	cfg.nick = "a b";
	start(&cl, &cfg);
	CHECK(run(stop_005, 5) == 0);
	CHECK(fake_count(f, "NICK ") == 1);
	CHECK(fake_find(f, "NICK ab") >= 0);
	CHECK(fake_find(f, "NICK a b") < 0 && fake_find(f, "NICK :a") < 0);
	CHECK_STR(cl.reg_nick, "ab");
	finish(&cl, f);
}

/* ---- TLS ---- */

static SSL_CTX *server_ctx;
static char cert_fp[32 * 3];
static char cert_file[] = "/tmp/test_irc_conn_cert_XXXXXX";

static void
make_cert(void)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_NAME *name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)"127.0.0.1", -1, -1, 0);
	X509_set_issuer_name(x, name);
	X509_set_pubkey(x, key);
	X509V3_CTX v3;
	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3,
	    NID_subject_alt_name, "IP:127.0.0.1, DNS:localhost");
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	X509_sign(x, key, EVP_sha256());

	unsigned char md[32];
	unsigned int n = 0;
	X509_digest(x, EVP_sha256(), md, &n);
	for (unsigned i = 0; i < n; i++)
		snprintf(cert_fp + 3 * i, 4, i + 1 < n ? "%02X:" : "%02X",
		    md[i]);

	server_ctx = SSL_CTX_new(TLS_server_method());
	SSL_CTX_use_certificate(server_ctx, x);
	SSL_CTX_use_PrivateKey(server_ctx, key);

	int fd = mkstemp(cert_file);
	FILE *fp = fdopen(fd, "w");
	PEM_write_X509(fp, x);
	fclose(fp);
	X509_free(x);
	EVP_PKEY_free(key);
}

static void
test_tls_unverified(void)
{
	struct fake *f = fake_new(server_ctx);
	struct client cl = { 0 };
	struct irc_conn_config cfg;
	cfg_init(&cfg, f);
	cfg.tls = 1;
	cfg.verify = 1;
	start(&cl, &cfg);
	CHECK(run(stop_closed, 5) == 0);
	CHECK(cl.closed_calls == 1);
	CHECK(cl.registered_calls == 0);
	CHECK(strstr(cl.reason, "certificate") != NULL);
	CHECK(strstr(cl.reason, "fingerprint") != NULL);
	CHECK(strstr(cl.reason, cert_fp) != NULL);
	/* Nothing was said to an unverified server. */
	CHECK(f->nlines == 0);
	finish(&cl, f);
}

static void
test_tls_pinned(void)
{
	struct fake *f = fake_new(server_ctx);
	struct client cl = { 0 };
	struct irc_conn_config cfg;
	char lower[sizeof(cert_fp)];
	cfg_init(&cfg, f);
	cfg.tls = 1;
	cfg.verify = 1;
	/* Case and colons do not matter. */
	size_t j = 0;
	for (size_t i = 0; cert_fp[i] != '\0'; i++)
		if (cert_fp[i] != ':')
			lower[j++] = (char)tolower((unsigned char)cert_fp[i]);
	lower[j] = '\0';
	cfg.fingerprint = lower;
	start(&cl, &cfg);
	CHECK(run(stop_005, 5) == 0);
	CHECK(cl.registered_calls == 1);
	CHECK(cl.closed_calls == 0);
	CHECK(irc_conn_has_cap(cl.c, "server-time"));
	finish(&cl, f);
}

static void
test_tls_wrong_pin(void)
{
	struct fake *f = fake_new(server_ctx);
	struct client cl = { 0 };
	struct irc_conn_config cfg;
	char wrong[sizeof(cert_fp)];
	snprintf(wrong, sizeof(wrong), "%s", cert_fp);
	wrong[0] = wrong[0] == 'A' ? 'B' : 'A';
	cfg_init(&cfg, f);
	cfg.tls = 1;
	cfg.verify = 1;
	cfg.fingerprint = wrong;
	start(&cl, &cfg);
	CHECK(run(stop_closed, 5) == 0);
	CHECK(cl.closed_calls == 1);
	CHECK(cl.registered_calls == 0);
	CHECK(strstr(cl.reason, "mismatch") != NULL);
	CHECK(strstr(cl.reason, cert_fp) != NULL);
	CHECK(f->nlines == 0);
	finish(&cl, f);
}

/* Real chain and name verification: the certificate as ca_file, by
 * address and by name (localhost from /etc/hosts through evdns). */
static void
test_tls_ca_file(void)
{
	for (int round = 0; round < 2; round++) {
		struct fake *f = fake_new(server_ctx);
		struct client cl = { 0 };
		struct irc_conn_config cfg;
		cfg_init(&cfg, f);
		cfg.host = round == 0 ? "127.0.0.1" : "localhost";
		cfg.tls = 1;
		cfg.verify = 1;
		cfg.ca_file = cert_file;
		start(&cl, &cfg);
		CHECK(run(stop_005, 5) == 0);
		CHECK(cl.registered_calls == 1);
		if (cl.closed_calls)
			printf("# %s: %s\n", cfg.host, cl.reason);
		finish(&cl, f);
	}
	/* The right CA but the wrong name (127/8 is all loopback). */
	struct fake *f = fake_new_at(server_ctx, 0x7f000002);
	struct client cl = { 0 };
	struct irc_conn_config cfg;
	cfg_init(&cfg, f);
	cfg.host = "127.0.0.2";
	cfg.tls = 1;
	cfg.verify = 1;
	cfg.ca_file = cert_file;
	start(&cl, &cfg);
	CHECK(run(stop_closed, 5) == 0);
	CHECK(cl.closed_calls == 1);
	CHECK(strstr(cl.reason, "fingerprint") != NULL);
	finish(&cl, f);
}

/* IPv6: the same exchange on ::1, where the machine has it. */
static void
test_ipv6(void)
{
	struct sockaddr_in6 sin6;
	socklen_t sl = sizeof(sin6);
	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_addr = in6addr_loopback;
	struct fake *f = fake_new(NULL);
	evconnlistener_free(f->lis);
	f->lis = evconnlistener_new_bind(base, fake_accept_cb, f,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
	    (struct sockaddr *)&sin6, sizeof(sin6));
	if (f->lis == NULL) {
		printf("# skipped: cannot listen on ::1\n");
		fake_free(f);
		return;
	}
	getsockname(evconnlistener_get_fd(f->lis), (struct sockaddr *)&sin6,
	    &sl);
	struct client cl = { 0 };
	struct irc_conn_config cfg;
	cfg_init(&cfg, f);
	cfg.host = "::1";
	cfg.port = ntohs(sin6.sin6_port);
	start(&cl, &cfg);
	CHECK(run(stop_005, 5) == 0);
	CHECK(cl.registered_calls == 1);
	finish(&cl, f);
}

static void
test_tls_no_verify(void)
{
	struct fake *f = fake_new(server_ctx);
	struct client cl = { 0 };
	struct irc_conn_config cfg;
	cfg_init(&cfg, f);
	cfg.tls = 1;
	cfg.verify = 0;
	start(&cl, &cfg);
	CHECK(run(stop_005, 5) == 0);
	CHECK(cl.registered_calls == 1);
	finish(&cl, f);
}

int
main(void)
{
	alarm(60);
	signal(SIGPIPE, SIG_IGN);
	log_init(getenv("TEST_DEBUG") != NULL ? LOG_LEVEL_DEBUG :
	    LOG_LEVEL_ERROR, 0);
	base = event_base_new();
	dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
	if (dns == NULL) {
		dns = evdns_base_new(base, 0);
		evdns_base_load_hosts(dns, NULL);
	}
	cw->base = base;
	cw->dns = dns;
	make_cert();

	RUN(test_register);
	RUN(test_no_cap);
	RUN(test_nick_in_use);
	RUN(test_nick_refused);
	RUN(test_nick_erroneous);
	RUN(test_sasl_ok);
	RUN(test_sasl_chunks);
	RUN(test_sasl_fail);
	RUN(test_ping_nick_error);
	RUN(test_nick_tracked);
	RUN(test_close_during_registration);
	RUN(test_connection_refused);
	RUN(test_user_host);
	RUN(test_long_lines);
	RUN(test_ping_timeout);
	RUN(test_register_timeout);
	RUN(test_flood);
	RUN(test_nickserv_identd);
	RUN(test_nickserv_after_sasl);
	RUN(test_tagged);
	RUN(test_free_in_callback);
	RUN(test_bad_config);
	RUN(test_ipv6);
	RUN(test_tls_unverified);
	RUN(test_tls_pinned);
	RUN(test_tls_wrong_pin);
	RUN(test_tls_ca_file);
	RUN(test_tls_no_verify);

	unlink(cert_file);
	SSL_CTX_free(server_ctx);
	evdns_base_free(dns, 0);
	event_base_free(base);
	return TAP_DONE();
}
