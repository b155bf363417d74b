/*
 * One IRC client connection; irc_conn.h draws the lifecycle.  This file
 * keeps to it:
 *
 *   RESOLVING --(evdns answer)--> CONNECTING --(TCP [+ TLS checked])-->
 *   REGISTERING --(001)--> REGISTERED
 *
 * and every way out goes through close_conn(), which tears the socket
 * down at once and calls closed() from a zero-delay event, so the owner
 * never sees the callback from inside one of its own calls and may free
 * the connection in it.
 *
 * Callbacks into the owner (registered, message) run from read_cb();
 * the owner may call irc_conn_free() from them, so read_cb() counts its
 * depth and irc_conn_free() only marks the connection while we are
 * inside one; the read loop frees it once the callback has returned.
 *
 * Output: lines we must send to take part in the protocol (registration,
 * CAP, SASL, PONG, our keepalive PING) go straight to the socket, so a
 * long user queue can never delay a PONG into a ping timeout.  Lines
 * from the owner wait in a FIFO drained by a token bucket once we are
 * registered (a JOIN sent earlier would only earn a 451).
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "destination.h"
#include "irc_conn.h"
#include "irc_identd.h"
#include "irc_proto.h"
#include "log.h"
#include "tls.h"
#include "xmalloc.h"

#define DEFAULT_BURST 5
#define DEFAULT_RATE_MS 500
#define DEFAULT_TIMEOUT 60
/* After our QUIT has left, how long the server gets to close first (we
 * wait for it: closing with its ERROR line unread would reset the
 * connection and could destroy our QUIT before the server reads it). */
#define QUIT_LINGER 5
/* SASL payloads are sent in pieces of this many base64 bytes. */
#define SASL_CHUNK 400
#define PING_TOKEN "causeway"
/* A peer may keep this much unread input in our buffer; read_cb() always
 * brings it below IRC_INPUT_MAX, so reading never stalls for good. */
#define READ_HIGH_WATER (2 * IRC_INPUT_MAX)

#define CONN_FMT "irc %s:%d/%s: "
#define CONN_ARGS(c) (c)->host, (c)->port, (c)->nick

enum conn_state {
	ST_RESOLVING,
	ST_CONNECTING,
	ST_REGISTERING,
	ST_REGISTERED,
	ST_CLOSED,
};

enum cap_state {
	CAP_NONE,        /* not started, or the server has no CAP (421) */
	CAP_LS,          /* waiting for the (last line of the) LS reply */
	CAP_REQ,         /* waiting for ACK / NAK */
	CAP_SASL,        /* AUTHENTICATE exchange under way */
	CAP_DONE,        /* CAP END sent */
};

enum sasl_state {
	SASL_NONE,
	SASL_STARTED,    /* AUTHENTICATE PLAIN sent, waiting for "+" */
	SASL_SENT,       /* credentials sent, waiting for 903 / 904 */
};

/* The capabilities we ask for; a bit each in caps_avail / caps_acked. */
static const char *const wanted_caps[] = {
	"sasl",
	"server-time",
	"message-tags",
	"multi-prefix",
	"away-notify",
	"account-notify",
	"echo-message",
	"userhost-in-names",
	"cap-notify",
};
#define N_CAPS (sizeof(wanted_caps) / sizeof(wanted_caps[0]))
#define CAP_SASL_BIT 1u

struct out_line {
	TAILQ_ENTRY(out_line) entry;
	int is_quit;
	unsigned long tag;            /* irc_conn_send_tagged(); 0: none */
	size_t len;
	char data[];
};
TAILQ_HEAD(out_queue, out_line);

/*
 * A pending evdns request.  It lives apart from the connection so that
 * irc_conn_free() can cancel it: libevent then still calls back, and the
 * callback must find something that is not freed.
 */
struct resolve {
	struct irc_conn *c;                   /* NULL: abandoned */
	struct evdns_getaddrinfo_request *req;
};

struct irc_conn {
	struct event_base *base;
	struct evdns_base *dns;
	struct irc_conn_callbacks cb;
	void *arg;

	/* Configuration, copied. */
	char *host;
	int port;
	int tls;
	int verify;
	int pinned;
	unsigned char pin[32];
	char *ca_file;
	char *nick_base;
	char *username;
	char *realname;
	char *password;
	char *sasl_user;
	char *sasl_password;
	char *webirc_password;
	char *webirc_gateway;
	char *webirc_host;
	char *webirc_ip;
	char *ident;
	char *nickserv;
	unsigned burst;
	unsigned rate_ms;
	unsigned timeout;

	enum conn_state state;
	struct resolve *resolve;
	/* user_host: the policy's lookup, then the one address it let
	 * through (dest_ok). */
	int user_host;
	struct destination_req *dreq;
	struct destination dest;
	int dest_ok;
	int refused;                  /* closed by the policy */
	struct evutil_addrinfo *addrs;
	struct evutil_addrinfo *next_addr;
	struct bufferevent *bev;
	/* The first certificate problem the verify callback saw, and the
	 * fingerprint of the certificate it was about. */
	long verify_error;
	char seen_fp[32 * 3];

	char *nick;
	unsigned nick_tries;
	enum cap_state cap;
	enum sasl_state sasl;
	unsigned caps_avail;
	unsigned caps_acked;
	int sasl_plain;               /* the server's sasl= allows PLAIN */
	int sasl_ok;                  /* SASL logged us in */
	/* The 4-tuple given to the identd, while ident_on. */
	struct sockaddr_storage ident_local, ident_remote;
	int ident_on;
	struct irc_isupport isupport;

	int discarding;               /* dropping input up to the next LF */
	struct irc_conn_stats stats;

	struct out_queue queue;
	size_t queued;
	double tokens;
	uint64_t refill_ms;
	int quitting;
	int quit_sent;

	uint64_t last_rx_ms;
	uint64_t ping_sent_ms;
	int ping_out;

	struct event *deadline;
	struct event *idle;
	struct event *flood;
	struct event *close_ev;
	char *close_reason;
	/* Tags of lines written, told to the owner from notify_ev; tags of
	 * lines still queued when the connection closed, told before
	 * closed(). */
	unsigned long *written_tags;
	size_t nwritten, written_cap;
	unsigned long *unsent_tags;
	size_t nunsent;
	struct event *notify_ev;

	int depth;                    /* inside read_cb() */
	int freed;                    /* irc_conn_free() came during it */
};

static void try_connect(struct irc_conn *c);
static void drain_queue(struct irc_conn *c);

static uint64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
add_timer_ms(struct event *ev, uint64_t ms)
{
	struct timeval tv = {
		.tv_sec = (time_t)(ms / 1000),
		.tv_usec = (suseconds_t)(ms % 1000) * 1000,
	};
	evtimer_add(ev, &tv);
}

static char *
dup_or_null(const char *s)
{
	return s != NULL && *s != '\0' ? xstrdup(s) : NULL;
}

/* Secrets are wiped before their memory goes back to the allocator. */
static void
free_secret(char *s)
{
	if (s == NULL)
		return;
	OPENSSL_cleanse(s, strlen(s));
	free(s);
}

static int
alive(const struct irc_conn *c)
{
	return !c->freed && c->state != ST_CLOSED;
}

/* ---- teardown ---- */

static void
queue_clear(struct irc_conn *c)
{
	struct out_line *l;
	while ((l = TAILQ_FIRST(&c->queue)) != NULL) {
		TAILQ_REMOVE(&c->queue, l, entry);
		/* It may hold an IDENTIFY for NickServ. */
		OPENSSL_cleanse(l->data, l->len);
		free(l);
	}
	c->queued = 0;
}

/* The identd hears of the connection while its socket exists. */
static void
ident_register(struct irc_conn *c, const struct sockaddr *remote)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (c->ident == NULL || c->bev == NULL)
		return;
	int fd = bufferevent_getfd(c->bev);
	if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
		return;
	if (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)
		return;
	socklen_t rlen = remote->sa_family == AF_INET6 ?
	    sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	memcpy(&c->ident_local, &ss, len);
	memcpy(&c->ident_remote, remote, rlen);
	c->ident_on = 1;
	identd_add((struct sockaddr *)&c->ident_local,
	    (struct sockaddr *)&c->ident_remote, c->ident);
}

static void
ident_unregister(struct irc_conn *c)
{
	if (!c->ident_on)
		return;
	identd_remove((struct sockaddr *)&c->ident_local,
	    (struct sockaddr *)&c->ident_remote);
	c->ident_on = 0;
}

static void
teardown(struct irc_conn *c)
{
	if (c->resolve != NULL) {
		/* The callback still comes (with EVUTIL_EAI_CANCEL) and
		 * frees the request once it sees it abandoned. */
		struct resolve *r = c->resolve;
		c->resolve = NULL;
		r->c = NULL;
		if (r->req != NULL)
			evdns_getaddrinfo_cancel(r->req);
	}
	if (c->dreq != NULL) {
		destination_cancel(c->dreq);
		c->dreq = NULL;
	}
	c->dest_ok = 0;
	ident_unregister(c);
	if (c->bev != NULL) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	if (c->addrs != NULL) {
		evutil_freeaddrinfo(c->addrs);
		c->addrs = NULL;
		c->next_addr = NULL;
	}
	event_del(c->deadline);
	event_del(c->idle);
	event_del(c->flood);
	queue_clear(c);
}

/*
 * The one way a connection ends.  closed() follows from the loop, never
 * from inside the caller, which may be irc_conn_new() or
 * irc_conn_send().
 */
static void
close_conn(struct irc_conn *c, const char *reason)
{
	if (c->state == ST_CLOSED)
		return;
	if (c->quitting)
		log_info(CONN_FMT "closed (%s)", CONN_ARGS(c), reason);
	else
		log_warn(CONN_FMT "connection lost: %s", CONN_ARGS(c),
		    reason);
	/* The owner hears which of its lines never left. */
	struct out_line *l;
	TAILQ_FOREACH(l, &c->queue, entry) {
		if (l->tag == 0)
			continue;
		c->unsent_tags = xreallocarray(c->unsent_tags, c->nunsent + 1,
		    sizeof(*c->unsent_tags));
		c->unsent_tags[c->nunsent++] = l->tag;
	}
	teardown(c);
	c->state = ST_CLOSED;
	c->close_reason = xstrdup(reason);
	event_active(c->close_ev, 0, 0);
}

/* Tells the owner of the lines written since the last turn. */
static void
notify_written(struct irc_conn *c)
{
	while (c->nwritten > 0 && !c->freed) {
		/* written() may queue (and so write) more: take the list. */
		unsigned long *tags = c->written_tags;
		size_t n = c->nwritten;
		c->written_tags = NULL;
		c->nwritten = c->written_cap = 0;
		for (size_t i = 0; i < n && !c->freed; i++)
			if (c->cb.written != NULL)
				c->cb.written(c->arg, tags[i]);
		free(tags);
	}
}

static void
notify_ev_cb(evutil_socket_t fd, short what, void *arg)
{
	notify_written(arg);
}

static void
close_ev_cb(evutil_socket_t fd, short what, void *arg)
{
	struct irc_conn *c = arg;
	notify_written(c);
	event_del(c->notify_ev);
	for (size_t i = 0; i < c->nunsent && !c->freed; i++)
		if (c->cb.unsent != NULL)
			c->cb.unsent(c->arg, c->unsent_tags[i]);
	free(c->unsent_tags);
	c->unsent_tags = NULL;
	c->nunsent = 0;
	/* The owner may free c in here: touch nothing afterwards. */
	if (c->cb.closed != NULL)
		c->cb.closed(c->arg, c->close_reason);
}

static void
destroy(struct irc_conn *c)
{
	teardown(c);
	event_free(c->deadline);
	event_free(c->idle);
	event_free(c->flood);
	event_free(c->close_ev);
	event_free(c->notify_ev);
	free(c->written_tags);
	free(c->unsent_tags);
	free(c->ident);
	free_secret(c->nickserv);
	free(c->host);
	free(c->ca_file);
	free(c->nick_base);
	free(c->username);
	free(c->realname);
	free_secret(c->password);
	free(c->sasl_user);
	free_secret(c->sasl_password);
	free_secret(c->webirc_password);
	free(c->webirc_gateway);
	free(c->webirc_host);
	free(c->webirc_ip);
	free(c->nick);
	free(c->close_reason);
	OPENSSL_cleanse(c->pin, sizeof(c->pin));
	free(c);
}

/* ---- writing ---- */

/* Commands whose parameters are secrets and never reach the log. */
static int
is_secret(const char *command)
{
	return strcasecmp(command, "PASS") == 0 ||
	    strcasecmp(command, "AUTHENTICATE") == 0 ||
	    strcasecmp(command, "WEBIRC") == 0 ||
	    strcasecmp(command, "PRIVMSG") == 0 ||
	    strcasecmp(command, "NOTICE") == 0;
}

/* A protocol line straight to the socket (see the top of the file). */
static int
write_now(struct irc_conn *c, const char *command, const char *const *params)
{
	static const char *const none[] = { NULL };
	if (c->bev == NULL)
		return -1;
	struct evbuffer *buf = evbuffer_new();
	if (buf == NULL)
		log_fatal("cannot allocate an evbuffer");
	if (irc_build(buf, command, params != NULL ? params : none) != 0) {
		evbuffer_free(buf);
		return -1;
	}
	if (log_get_level() >= LOG_LEVEL_DEBUG) {
		if (is_secret(command) || params == NULL || params[0] == NULL)
			log_debug(CONN_FMT "send %s", CONN_ARGS(c), command);
		else
			log_debug(CONN_FMT "send %s %s%s", CONN_ARGS(c),
			    command, params[0], params[1] != NULL ? " ..." : "");
	}
	c->stats.lines_out++;
	bufferevent_write_buffer(c->bev, buf);
	evbuffer_free(buf);
	return 0;
}

static void
send_or_close(struct irc_conn *c, const char *command,
    const char *const *params, const char *what)
{
	if (write_now(c, command, params) != 0) {
		char *why = xasprintf("cannot send %s: %s holds a character "
		    "IRC cannot carry (CR, LF, NUL, or a space where none is "
		    "allowed) or is too long", command, what);
		close_conn(c, why);
		free(why);
	}
}

/* ---- TLS ---- */

/*
 * Used only when the chain must verify (verify = 1, no pin): records the
 * first problem and the fingerprint of the server's certificate, so the
 * reason can tell the operator what to pin.  Returning ok unchanged
 * makes OpenSSL abort the handshake on a problem: nothing is sent to an
 * unverified server.
 */
static int
verify_cb(int ok, X509_STORE_CTX *xs)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(xs,
	    SSL_get_ex_data_X509_STORE_CTX_idx());
	struct irc_conn *c = ssl != NULL ? SSL_get_app_data(ssl) : NULL;
	if (!ok && c != NULL && c->verify_error == 0) {
		unsigned char md[32];
		c->verify_error = X509_STORE_CTX_get_error(xs);
		if (c->verify_error == 0)
			c->verify_error = X509_V_ERR_UNSPECIFIED;
		if (tls_fingerprint(X509_STORE_CTX_get0_cert(xs), md) == 0)
			tls_fingerprint_format(md, c->seen_fp,
			    sizeof(c->seen_fp));
	}
	return ok;
}

static SSL *
tls_new(struct irc_conn *c, char *err, size_t errlen)
{
	/* The trust store, versions and the name or address check are
	 * tls.c's, as for IMAP and SMTP. */
	SSL_CTX *ctx = tls_client_ctx(c->ca_file, err, errlen);
	if (ctx == NULL)
		return NULL;
	SSL *ssl = SSL_new(ctx);
	if (ssl == NULL) {
		snprintf(err, errlen, "cannot create a TLS session");
		return NULL;
	}
	SSL_set_app_data(ssl, c);
	/* An idle connection (most of a gateway's) gives its 16 KiB read
	 * and write buffers back between records: about 34 KiB each. */
	SSL_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
	/* With a pin, the pin is checked after the handshake
	 * (check_peer()); without a pin and without verify, the operator
	 * chose an unauthenticated connection. */
	int verify = !c->pinned && c->verify;
	if (tls_client_prepare(ssl, c->host, verify, err, errlen) != 0) {
		SSL_free(ssl);
		return NULL;
	}
	if (verify)
		SSL_set_verify(ssl, SSL_VERIFY_PEER, verify_cb);
	return ssl;
}

/* After the handshake: the pin, when there is one.  0 or -1 (closed). */
static int
check_peer(struct irc_conn *c)
{
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
	log_info(CONN_FMT "TLS %s, %s", CONN_ARGS(c), SSL_get_version(ssl),
	    SSL_get_cipher_name(ssl));
	if (!c->pinned) {
		if (!c->verify)
			log_warn(CONN_FMT "certificate not verified "
			    "(verify = no)", CONN_ARGS(c));
		return 0;
	}
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
	X509 *cert = SSL_get1_peer_certificate(ssl);
#else
	X509 *cert = SSL_get_peer_certificate(ssl);
#endif
	unsigned char md[32];
	int r = tls_fingerprint(cert, md);
	X509_free(cert);
	if (r != 0) {
		close_conn(c, "the server sent no TLS certificate to check "
		    "against the configured fingerprint");
		return -1;
	}
	if (CRYPTO_memcmp(md, c->pin, sizeof(md)) != 0) {
		char seen[sizeof(c->seen_fp)];
		tls_fingerprint_format(md, seen, sizeof(seen));
		char *why = xasprintf("TLS certificate fingerprint mismatch: "
		    "%s presented SHA-256 %s, which is not the configured "
		    "fingerprint (if the server's certificate was renewed, "
		    "set fingerprint = %s)", c->host, seen, seen);
		close_conn(c, why);
		free(why);
		return -1;
	}
	log_info(CONN_FMT "certificate matches the pinned fingerprint",
	    CONN_ARGS(c));
	return 0;
}

/* Why the handshake failed, for the operator. */
static char *
tls_failure(struct irc_conn *c, short what)
{
	unsigned long e, last = 0;
	while ((e = bufferevent_get_openssl_error(c->bev)) != 0)
		last = e;
	if (c->verify_error != 0)
		return xasprintf("TLS certificate of %s not trusted (%s); its "
		    "SHA-256 fingerprint is %s: if that is the server's "
		    "certificate, set fingerprint = %s for this server (or "
		    "ca_file to its CA)", c->host,
		    X509_verify_cert_error_string(c->verify_error),
		    c->seen_fp[0] != '\0' ? c->seen_fp : "unknown",
		    c->seen_fp[0] != '\0' ? c->seen_fp : "<fingerprint>");
	if (last != 0) {
		char buf[256];
		ERR_error_string_n(last, buf, sizeof(buf));
		return xasprintf("TLS handshake with %s failed: %s", c->host,
		    buf);
	}
	return NULL;
}

/* ---- connecting ---- */

static void
resolve_cb(int err, struct evutil_addrinfo *ai, void *arg)
{
	struct resolve *r = arg;
	struct irc_conn *c = r->c;
	free(r);
	if (c == NULL) {
		/* Abandoned by irc_conn_free() or a close. */
		if (ai != NULL)
			evutil_freeaddrinfo(ai);
		return;
	}
	c->resolve = NULL;
	if (err != 0 || ai == NULL) {
		char *why = xasprintf("cannot resolve %s: %s", c->host,
		    err != 0 ? evutil_gai_strerror(err) : "no address");
		if (ai != NULL)
			evutil_freeaddrinfo(ai);
		close_conn(c, why);
		free(why);
		return;
	}
	c->addrs = ai;
	c->next_addr = ai;
	c->state = ST_CONNECTING;
	try_connect(c);
}

static void read_cb(struct bufferevent *bev, void *arg);
static void event_cb(struct bufferevent *bev, short what, void *arg);

/* Starts connecting to sa: 0, or -1 with err (the socket error). */
static int
connect_to(struct irc_conn *c, const struct sockaddr *sa, socklen_t len,
    char *err, size_t errlen)
{
	char addr[64] = "?";
	if (sa->sa_family == AF_INET)
		evutil_inet_ntop(AF_INET, &((const struct sockaddr_in *)
		    (const void *)sa)->sin_addr, addr, sizeof(addr));
	else if (sa->sa_family == AF_INET6)
		evutil_inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)
		    (const void *)sa)->sin6_addr, addr, sizeof(addr));
	log_debug(CONN_FMT "connecting to %s", CONN_ARGS(c), addr);
	int opts = BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS;
	if (c->tls) {
		SSL *ssl = tls_new(c, err, errlen);
		if (ssl == NULL)
			return -2;
		c->verify_error = 0;
		c->seen_fp[0] = '\0';
		c->bev = bufferevent_openssl_socket_new(c->base, -1, ssl,
		    BUFFEREVENT_SSL_CONNECTING, opts);
		if (c->bev == NULL) {
			SSL_free(ssl);
			log_fatal("cannot create a TLS buffer");
		}
		/* Many IRC servers close without close_notify; that is the
		 * end of the stream, not an attack on it (IRC has its own
		 * end: ERROR). */
		bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	} else {
		c->bev = bufferevent_socket_new(c->base, -1, opts);
		if (c->bev == NULL)
			log_fatal("cannot create a socket buffer");
	}
	bufferevent_setcb(c->bev, read_cb, NULL, event_cb, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, READ_HIGH_WATER);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	if (bufferevent_socket_connect(c->bev, sa, (int)len) == 0) {
		/* The port is bound now; the server may ask the identd as
		 * soon as it accepts. */
		ident_register(c, sa);
		return 0;
	}
	snprintf(err, errlen, "%s",
	    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	log_info(CONN_FMT "cannot connect to %s: %s", CONN_ARGS(c), addr, err);
	bufferevent_free(c->bev);
	c->bev = NULL;
	return -1;
}

/* The next address of the host (with user_host, the one address the
 * policy checked, once); all tried: closed. */
static void
try_connect(struct irc_conn *c)
{
	char err[256] = "";
	if (c->dest_ok) {
		c->dest_ok = 0;
		int r = connect_to(c, (struct sockaddr *)&c->dest.addr,
		    c->dest.len, err, sizeof(err));
		if (r == 0)
			return;
		if (r == -2) {
			close_conn(c, err);
			return;
		}
	}
	while (c->next_addr != NULL) {
		struct evutil_addrinfo *ai = c->next_addr;
		c->next_addr = ai->ai_next;
		int r = connect_to(c, ai->ai_addr, (socklen_t)ai->ai_addrlen,
		    err, sizeof(err));
		if (r == 0)
			return;
		if (r == -2) {
			close_conn(c, err);
			return;
		}
	}
	char *why = xasprintf("cannot connect to %s port %d%s%s", c->host,
	    c->port, err[0] != '\0' ? ": " : "", err);
	close_conn(c, why);
	free(why);
}

/* The policy's answer for a user's host: connect to the address it
 * checked, or close saying only DESTINATION_REFUSED. */
static void
dest_cb(void *arg, const struct destination *d, const char *err)
{
	struct irc_conn *c = arg;
	c->dreq = NULL;
	if (d == NULL) {
		c->refused = 1;
		close_conn(c, err);
		return;
	}
	c->dest = *d;
	c->dest_ok = 1;
	c->state = ST_CONNECTING;
	try_connect(c);
}

static void
start_registration(struct irc_conn *c)
{
	c->state = ST_REGISTERING;
	if (c->addrs != NULL) {
		evutil_freeaddrinfo(c->addrs);
		c->addrs = NULL;
		c->next_addr = NULL;
	}
	int fd = bufferevent_getfd(c->bev);
	int one = 1;
	(void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	log_info(CONN_FMT "connected, registering", CONN_ARGS(c));

	/* WEBIRC first: the server decides from it who we are before it
	 * looks at anything else. */
	if (c->webirc_password != NULL) {
		if (c->webirc_host == NULL || c->webirc_ip == NULL) {
			close_conn(c, "WEBIRC needs the user's host and ip "
			    "(webirc_host, webirc_ip)");
			return;
		}
		const char *p[] = { c->webirc_password,
		    c->webirc_gateway != NULL ? c->webirc_gateway : "causeway",
		    c->webirc_host, c->webirc_ip, NULL };
		send_or_close(c, "WEBIRC", p, "the WEBIRC configuration");
		if (!alive(c))
			return;
	}
	if (c->password != NULL) {
		const char *p[] = { c->password, NULL };
		send_or_close(c, "PASS", p, "the server password");
		if (!alive(c))
			return;
	}
	const char *ls[] = { "LS", "302", NULL };
	write_now(c, "CAP", ls);
	c->cap = CAP_LS;
	const char *n[] = { c->nick, NULL };
	send_or_close(c, "NICK", n, "the nick");
	if (!alive(c))
		return;
	const char *u[] = { c->username, "0", "*", c->realname, NULL };
	send_or_close(c, "USER", u, "the user name or real name");
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct irc_conn *c = arg;
	if (what & BEV_EVENT_CONNECTED) {
		if (c->tls && check_peer(c) != 0)
			return;
		start_registration(c);
		return;
	}
	char *why = NULL;
	if (c->state == ST_CONNECTING) {
		if (c->tls && (why = tls_failure(c, what)) != NULL) {
			close_conn(c, why);
			free(why);
			return;
		}
		if ((what & BEV_EVENT_ERROR) && c->next_addr != NULL) {
			log_info(CONN_FMT "%s; trying the next address",
			    CONN_ARGS(c), evutil_socket_error_to_string(
			    EVUTIL_SOCKET_ERROR()));
			ident_unregister(c);
			bufferevent_free(c->bev);
			c->bev = NULL;
			try_connect(c);
			return;
		}
	}
	if (c->quitting)
		why = xstrdup("quit");
	else if (what & BEV_EVENT_EOF)
		why = xasprintf("the server closed the connection%s",
		    c->state == ST_REGISTERED ? "" :
		    c->state == ST_REGISTERING ? " during registration" :
		    " while connecting");
	else if (c->tls && (why = tls_failure(c, what)) != NULL)
		;
	else
		why = xasprintf("%s%s", c->state == ST_CONNECTING ?
		    "cannot connect: " : "", evutil_socket_error_to_string(
		    EVUTIL_SOCKET_ERROR()));
	close_conn(c, why);
	free(why);
}

/* ---- timers ---- */

/* The one deadline a connection has at a time: connect and register
 * within the timeout, or the server's close after our QUIT. */
static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct irc_conn *c = arg;
	char *why;
	if (c->quitting)
		why = xstrdup("quit");
	else if (c->state == ST_REGISTERING)
		why = xasprintf("no registration within %u s", c->timeout);
	else
		why = xasprintf("cannot connect to %s port %d within %u s",
		    c->host, c->port, c->timeout);
	close_conn(c, why);
	free(why);
}

/* After registration: a silent server is pinged, a server that stays
 * silent for the timeout after that is dropped. */
static void
idle_cb(evutil_socket_t fd, short what, void *arg)
{
	struct irc_conn *c = arg;
	if (c->state != ST_REGISTERED || c->quit_sent)
		return;
	uint64_t now = now_ms(), t = (uint64_t)c->timeout * 1000;
	if (c->ping_out) {
		if (now - c->ping_sent_ms >= t) {
			close_conn(c, "ping timeout");
			return;
		}
		add_timer_ms(c->idle, c->ping_sent_ms + t - now);
	} else if (now - c->last_rx_ms >= t) {
		const char *p[] = { PING_TOKEN, NULL };
		write_now(c, "PING", p);
		c->ping_out = 1;
		c->ping_sent_ms = now;
		add_timer_ms(c->idle, t);
	} else {
		add_timer_ms(c->idle, c->last_rx_ms + t - now);
	}
}

static void
flood_cb(evutil_socket_t fd, short what, void *arg)
{
	drain_queue(arg);
}

/* ---- the token bucket ---- */

static void
refill(struct irc_conn *c)
{
	uint64_t now = now_ms();
	c->tokens += (double)(now - c->refill_ms) / (double)c->rate_ms;
	if (c->tokens > (double)c->burst)
		c->tokens = (double)c->burst;
	c->refill_ms = now;
}

static void
drain_queue(struct irc_conn *c)
{
	if (c->state != ST_REGISTERED || c->bev == NULL)
		return;
	refill(c);
	struct out_line *l;
	while ((l = TAILQ_FIRST(&c->queue)) != NULL && c->tokens >= 1.0) {
		TAILQ_REMOVE(&c->queue, l, entry);
		c->queued--;
		bufferevent_write(c->bev, l->data, l->len);
		c->stats.lines_out++;
		c->tokens -= 1.0;
		if (l->tag != 0) {
			if (c->nwritten == c->written_cap) {
				c->written_cap = c->written_cap ?
				    2 * c->written_cap : 8;
				c->written_tags = xreallocarray(c->written_tags,
				    c->written_cap, sizeof(*c->written_tags));
			}
			c->written_tags[c->nwritten++] = l->tag;
			event_active(c->notify_ev, 0, 0);
		}
		if (l->is_quit) {
			c->quit_sent = 1;
			event_del(c->idle);
			event_del(c->deadline);
			add_timer_ms(c->deadline, QUIT_LINGER * 1000);
		}
		OPENSSL_cleanse(l->data, l->len);
		free(l);
	}
	if (!TAILQ_EMPTY(&c->queue) && !evtimer_pending(c->flood, NULL)) {
		double wait = (1.0 - c->tokens) * (double)c->rate_ms;
		add_timer_ms(c->flood, wait < 1.0 ? 1 : (uint64_t)wait + 1);
	}
}

/* ---- capabilities and SASL ---- */

static int
cap_index(const char *name, size_t len)
{
	for (size_t i = 0; i < N_CAPS; i++)
		if (strlen(wanted_caps[i]) == len &&
		    strncmp(wanted_caps[i], name, len) == 0)
			return (int)i;
	return -1;
}

static int
want_sasl(const struct irc_conn *c)
{
	return c->sasl_user != NULL && c->sasl_password != NULL;
}

static void
cap_end(struct irc_conn *c)
{
	if (c->cap == CAP_DONE)
		return;
	c->cap = CAP_DONE;
	if (c->state == ST_REGISTERING) {
		const char *p[] = { "END", NULL };
		write_now(c, "CAP", p);
	}
}

/*
 * Walks a space-separated capability list ("a b=c -d ~e").  For LS and
 * NEW, the bits of what we want are set in caps_avail (nothing else is
 * kept, so a server that sends endless LS lines costs no memory); for
 * ACK they are set or, with '-', cleared in caps_acked; for DEL they
 * are cleared in both.
 */
static void
cap_walk(struct irc_conn *c, const char *list, const char *sub)
{
	const char *p = list;
	while (*p != '\0') {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		int off = 0;
		while (*p == '-' || *p == '~' || *p == '=') {
			if (*p == '-')
				off = 1;
			p++;
		}
		const char *name = p;
		while (*p != '\0' && *p != ' ' && *p != '=')
			p++;
		int i = cap_index(name, (size_t)(p - name));
		const char *value = NULL;
		size_t vlen = 0;
		if (*p == '=') {
			value = ++p;
			while (*p != '\0' && *p != ' ')
				p++;
			vlen = (size_t)(p - value);
		}
		if (i < 0)
			continue;
		unsigned bit = 1u << i;
		if (strcmp(sub, "LS") == 0 || strcmp(sub, "NEW") == 0) {
			c->caps_avail |= bit;
			if (bit == CAP_SASL_BIT) {
				/* sasl=EXTERNAL,PLAIN; no value: any. */
				c->sasl_plain = value == NULL;
				for (const char *m = value; m != NULL &&
				    m < value + vlen; ) {
					const char *e = memchr(m, ',',
					    (size_t)(value + vlen - m));
					size_t ml = (size_t)((e != NULL ? e :
					    value + vlen) - m);
					if (ml == 5 &&
					    strncasecmp(m, "PLAIN", 5) == 0)
						c->sasl_plain = 1;
					m = e != NULL ? e + 1 : NULL;
				}
			}
		} else if (strcmp(sub, "ACK") == 0) {
			if (off)
				c->caps_acked &= ~bit;
			else
				c->caps_acked |= bit;
		} else if (strcmp(sub, "DEL") == 0) {
			c->caps_avail &= ~bit;
			c->caps_acked &= ~bit;
		}
	}
}

/* CAP REQ for what is offered and wanted but not yet ours; 1 if sent. */
static int
cap_request(struct irc_conn *c)
{
	unsigned want = c->caps_avail & ~c->caps_acked;
	/* SASL only during registration, with credentials, and PLAIN. */
	if (c->state != ST_REGISTERING || !want_sasl(c) || !c->sasl_plain)
		want &= ~CAP_SASL_BIT;
	if (want == 0)
		return 0;
	char list[256] = "";
	for (size_t i = 0; i < N_CAPS; i++) {
		if (!(want & (1u << i)))
			continue;
		if (list[0] != '\0')
			strcat(list, " ");
		strcat(list, wanted_caps[i]);
	}
	const char *p[] = { "REQ", list, NULL };
	log_debug(CONN_FMT "requesting %s", CONN_ARGS(c), list);
	write_now(c, "CAP", p);
	return 1;
}

static void
sasl_start(struct irc_conn *c)
{
	c->cap = CAP_SASL;
	c->sasl = SASL_STARTED;
	const char *p[] = { "PLAIN", NULL };
	write_now(c, "AUTHENTICATE", p);
}

static void
after_ack(struct irc_conn *c)
{
	if ((c->caps_acked & CAP_SASL_BIT) && want_sasl(c))
		sasl_start(c);
	else
		cap_end(c);
}

static void
handle_cap(struct irc_conn *c, const struct irc_msg *m)
{
	if (m->nparams < 2)
		return;
	const char *sub = m->params[1];
	/* "CAP * LS * :list" (more to come) or "CAP * LS :list" (last). */
	int more = m->nparams >= 4 && strcmp(m->params[2], "*") == 0;
	const char *list = m->nparams >= 3 ? m->params[m->nparams - 1] : "";
	if (strcasecmp(sub, "LS") == 0) {
		if (c->cap != CAP_LS)
			return;
		cap_walk(c, list, "LS");
		if (more)
			return;
		if (want_sasl(c) && !(c->caps_avail & CAP_SASL_BIT))
			log_warn(CONN_FMT "the server offers no SASL; going "
			    "on without", CONN_ARGS(c));
		else if (want_sasl(c) && !c->sasl_plain)
			log_warn(CONN_FMT "the server offers no SASL PLAIN; "
			    "going on without", CONN_ARGS(c));
		if (cap_request(c))
			c->cap = CAP_REQ;
		else
			cap_end(c);
	} else if (strcasecmp(sub, "ACK") == 0) {
		cap_walk(c, list, "ACK");
		if (c->cap == CAP_REQ && !more)
			after_ack(c);
	} else if (strcasecmp(sub, "NAK") == 0) {
		log_warn(CONN_FMT "the server refused the capabilities %s",
		    CONN_ARGS(c), list);
		if (c->cap == CAP_REQ)
			cap_end(c);
	} else if (strcasecmp(sub, "NEW") == 0) {
		cap_walk(c, list, "NEW");
		if (c->state == ST_REGISTERED)
			cap_request(c);
	} else if (strcasecmp(sub, "DEL") == 0) {
		cap_walk(c, list, "DEL");
	}
}

static void
sasl_send_credentials(struct irc_conn *c)
{
	size_t ul = strlen(c->sasl_user), pl = strlen(c->sasl_password);
	/* PLAIN: authzid NUL authcid NUL password, authzid empty. */
	size_t rawlen = 1 + ul + 1 + pl;
	unsigned char *raw = xmalloc(rawlen);
	raw[0] = '\0';
	memcpy(raw + 1, c->sasl_user, ul);
	raw[1 + ul] = '\0';
	memcpy(raw + 2 + ul, c->sasl_password, pl);
	size_t b64len = 4 * ((rawlen + 2) / 3);
	char *b64 = xmalloc(b64len + 1);
	EVP_EncodeBlock((unsigned char *)b64, raw, (int)rawlen);
	OPENSSL_cleanse(raw, rawlen);
	free(raw);
	char chunk[SASL_CHUNK + 1];
	for (size_t off = 0; off < b64len; off += SASL_CHUNK) {
		size_t n = b64len - off < SASL_CHUNK ? b64len - off :
		    SASL_CHUNK;
		memcpy(chunk, b64 + off, n);
		chunk[n] = '\0';
		const char *p[] = { chunk, NULL };
		write_now(c, "AUTHENTICATE", p);
	}
	/* A last piece of exactly SASL_CHUNK bytes says "more follows";
	 * "+" ends it. */
	if (b64len % SASL_CHUNK == 0) {
		const char *p[] = { "+", NULL };
		write_now(c, "AUTHENTICATE", p);
	}
	OPENSSL_cleanse(chunk, sizeof(chunk));
	OPENSSL_cleanse(b64, b64len);
	free(b64);
	c->sasl = SASL_SENT;
}

static void
sasl_failed(struct irc_conn *c, const struct irc_msg *m)
{
	log_error(CONN_FMT "SASL authentication as %s failed: %s %s",
	    CONN_ARGS(c), c->sasl_user, m->command,
	    m->nparams > 0 ? m->params[m->nparams - 1] : "");
	close_conn(c, "SASL authentication failed");
}

/* ---- input ---- */

static int
is_cmd(const struct irc_msg *m, const char *cmd)
{
	return strcmp(m->command, cmd) == 0;
}

/*
 * A nick to try after a 432 for cur (caller frees): base kept to the
 * characters of RFC 2812's nick grammar (letters, digits, []\`_^{|}-,
 * not starting with a digit or '-') and cut to 30 bytes; when that is
 * what was refused, the same cut to 9 bytes; then the user name.
 */
static char *
nick_mended(const char *cur, const char *base, const char *user,
    unsigned tries)
{
	static const char special[] = "[]\\`_^{|}";
	size_t n = 0, len = strlen(base);
	char *out = xmalloc(len + 2);
	for (size_t i = 0; i < len && n < 30; i++) {
		unsigned char ch = (unsigned char)base[i];
		int letter = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
		int digit = ch >= '0' && ch <= '9';
		if (letter || strchr(special, ch) != NULL ||
		    (n > 0 && (digit || ch == '-')))
			out[n++] = (char)ch;
	}
	out[n] = '\0';
	if (n > 0 && strcmp(out, cur) != 0)
		return out;
	if (n > 9) {
		out[9] = '\0';
		if (strcmp(out, cur) != 0)
			return out;
	}
	free(out);
	/* The user name (our ident: "cw" and hex) when it is letters and
	 * digits, as it is unless an owner chose another. */
	if (user != NULL && (*user >= 'a' && *user <= 'z') && strspn(user,
	    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
	    == strlen(user) && strncmp(user, cur, 9) != 0)
		return xstrndup(user, 9);
	/* Nothing new: step aside from the user name. */
	out = xasprintf("cw%u_", tries);
	return out;
}

static void
nick_refused(struct irc_conn *c, const struct irc_msg *m)
{
	const char *text = m->nparams > 0 ? m->params[m->nparams - 1] : "";
	c->nick_tries++;
	if (c->nick_tries >= IRC_NICK_TRIES) {
		char *why = xasprintf("the server refused the nick %s and %u "
		    "variants of it (%s %s)", c->nick_base, c->nick_tries - 1,
		    m->command, text);
		close_conn(c, why);
		free(why);
		return;
	}
	char *next;
	if (is_cmd(m, "432")) {
		/* Erroneous: underscores will not mend it.  The nick in the
		 * characters every server takes, else the user name (our
		 * ident: "cw" and hex), within RFC 2812's nine bytes at the
		 * last; the owner tells the user the nick it got (210). */
		next = nick_mended(c->nick, c->nick_base, c->username,
		    c->nick_tries);
		free(c->nick_base);
		c->nick_base = xstrdup(next);
	} else {
		/* nick_, nick__, ...: the usual way clients step aside. */
		next = xmalloc(strlen(c->nick_base) + c->nick_tries + 1);
		strcpy(next, c->nick_base);
		memset(next + strlen(c->nick_base), '_', c->nick_tries);
		next[strlen(c->nick_base) + c->nick_tries] = '\0';
	}
	log_info(CONN_FMT "nick refused (%s %s); trying %s", CONN_ARGS(c),
	    m->command, text, next);
	free(c->nick);
	c->nick = next;
	const char *p[] = { c->nick, NULL };
	write_now(c, "NICK", p);
}

static void
registered(struct irc_conn *c, const struct irc_msg *m)
{
	if (m->nparams > 0 && m->params[0][0] != '\0' &&
	    strcmp(m->params[0], "*") != 0) {
		free(c->nick);
		c->nick = xstrdup(m->params[0]);
	}
	c->state = ST_REGISTERED;
	/* A server without CAP, or one that ignored our CAP END. */
	c->cap = CAP_DONE;
	event_del(c->deadline);
	c->tokens = (double)c->burst;
	c->refill_ms = now_ms();
	c->ping_out = 0;
	add_timer_ms(c->idle, (uint64_t)c->timeout * 1000);
	log_info(CONN_FMT "registered", CONN_ARGS(c));
	/* The fallback when SASL did not log us in: identify before any
	 * JOIN, so channels that want a registered nick let us in. */
	if (c->nickserv != NULL && !c->sasl_ok) {
		const char *p[] = { "NickServ", c->nickserv, NULL };
		if (write_now(c, "PRIVMSG", p) == 0) {
			log_info(CONN_FMT "identifying to NickServ",
			    CONN_ARGS(c));
			c->tokens -= 1.0;
		} else {
			log_warn(CONN_FMT "the NickServ line cannot be sent "
			    "(too long, or CR, LF or NUL in it)", CONN_ARGS(c));
		}
	}
	if (c->cb.registered != NULL) {
		c->depth++;
		c->cb.registered(c->arg, c->nick);
		c->depth--;
	}
	if (alive(c))
		drain_queue(c);
}

/* Our own lines (PING, the CAP and SASL exchange) are handled here;
 * everything else also goes to the owner. */
static void
dispatch(struct irc_conn *c, const struct irc_msg *m)
{
	if (is_cmd(m, "PING")) {
		const char *p[] = { m->nparams > 0 ? m->params[0] : "", NULL };
		if (p[0][0] == '\0')
			p[0] = NULL;
		write_now(c, "PONG", p);
		return;
	}
	if (is_cmd(m, "PONG") && m->nparams > 0 &&
	    strcmp(m->params[m->nparams - 1], PING_TOKEN) == 0)
		return;
	if (is_cmd(m, "ERROR")) {
		const char *text = m->nparams > 0 && m->params[0][0] != '\0' ?
		    m->params[0] : "ERROR from the server";
		close_conn(c, c->quitting ? "quit" : text);
		return;
	}
	if (is_cmd(m, "CAP")) {
		handle_cap(c, m);
		return;
	}
	if (is_cmd(m, "AUTHENTICATE")) {
		if (c->sasl == SASL_STARTED && m->nparams > 0 &&
		    strcmp(m->params[0], "+") == 0)
			sasl_send_credentials(c);
		else if (c->sasl == SASL_STARTED) {
			/* PLAIN has no challenge: this is not a server we
			 * can authenticate with. */
			const char *p[] = { "*", NULL };
			write_now(c, "AUTHENTICATE", p);
			sasl_failed(c, m);
		}
		return;
	}
	if (is_cmd(m, "903") || is_cmd(m, "907")) {
		if (c->sasl != SASL_NONE) {
			log_info(CONN_FMT "SASL authentication as %s "
			    "succeeded", CONN_ARGS(c), c->sasl_user);
			c->sasl = SASL_NONE;
			c->sasl_ok = 1;
			cap_end(c);
		}
		return;
	}
	if (is_cmd(m, "902") || is_cmd(m, "904") || is_cmd(m, "905") ||
	    is_cmd(m, "906")) {
		if (c->sasl != SASL_NONE)
			sasl_failed(c, m);
		return;
	}
	if (is_cmd(m, "908"))
		return;
	if (c->state == ST_REGISTERING) {
		if (is_cmd(m, "433") || is_cmd(m, "432") || is_cmd(m, "436")) {
			nick_refused(c, m);
			return;
		}
		if (is_cmd(m, "421") && m->nparams > 1 &&
		    strcasecmp(m->params[1], "CAP") == 0) {
			log_info(CONN_FMT "the server has no CAP",
			    CONN_ARGS(c));
			c->cap = CAP_DONE;
			return;
		}
		if (is_cmd(m, "001")) {
			registered(c, m);
			if (!alive(c))
				return;
		}
	}
	if (is_cmd(m, "005"))
		irc_isupport_apply(&c->isupport, m);
	if (is_cmd(m, "NICK") && m->nick != NULL && m->nparams > 0 &&
	    m->params[0][0] != '\0' &&
	    irc_casecmp(c->isupport.casemapping, m->nick, c->nick) == 0) {
		log_info(CONN_FMT "now known as %s", CONN_ARGS(c),
		    m->params[0]);
		free(c->nick);
		c->nick = xstrdup(m->params[0]);
	}
	if (c->cb.message != NULL) {
		c->depth++;
		c->cb.message(c->arg, m);
		c->depth--;
	}
}

static void
discard_note(struct irc_conn *c)
{
	c->stats.lines_too_long++;
	log_debug(CONN_FMT "discarding a line over %d bytes", CONN_ARGS(c),
	    IRC_INPUT_MAX);
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
	struct irc_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len = evbuffer_get_length(in);
	if (len > c->stats.input_peak)
		c->stats.input_peak = len;
	/* Any byte is a sign of life. */
	c->last_rx_ms = now_ms();
	c->ping_out = 0;
	c->depth++;
	while (alive(c)) {
		size_t eol_len = 0;
		struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol_len,
		    EVBUFFER_EOL_LF);
		if (p.pos < 0) {
			/* No LF yet: a partial line that can no longer fit
			 * is dropped now, and the rest of it as it comes. */
			len = evbuffer_get_length(in);
			if (!c->discarding && len >= IRC_INPUT_MAX) {
				discard_note(c);
				c->discarding = 1;
			}
			if (c->discarding)
				evbuffer_drain(in, len);
			break;
		}
		size_t linelen = (size_t)p.pos;
		if (c->discarding || linelen + 1 > IRC_INPUT_MAX) {
			if (!c->discarding)
				discard_note(c);
			c->discarding = 0;
			evbuffer_drain(in, linelen + 1);
			continue;
		}
		const char *line = (const char *)evbuffer_pullup(in,
		    (ev_ssize_t)(linelen + 1));
		size_t n = linelen;
		if (n > 0 && line[n - 1] == '\r')
			n--;
		if (n == 0) {
			evbuffer_drain(in, linelen + 1);
			continue;
		}
		struct irc_msg m;
		memset(&m, 0, sizeof(m));
		int r = irc_msg_parse(line, n, &m);
		evbuffer_drain(in, linelen + 1);
		if (r != 0) {
			c->stats.lines_bad++;
			log_debug(CONN_FMT "skipping a line that does not "
			    "parse (%zu bytes)", CONN_ARGS(c), n);
			continue;
		}
		c->stats.lines_in++;
		dispatch(c, &m);
		irc_msg_clear(&m);
	}
	c->depth--;
	if (c->freed && c->depth == 0)
		destroy(c);
}

/* ---- the API ---- */

struct irc_conn *
irc_conn_new(struct event_base *base, struct evdns_base *dns,
    const struct irc_conn_config *cfg, const struct irc_conn_callbacks *cb,
    void *arg)
{
	struct irc_conn *c = xcalloc(1, sizeof(*c));
	c->base = base;
	c->dns = dns;
	if (cb != NULL)
		c->cb = *cb;
	c->arg = arg;
	c->host = xstrdup(cfg->host != NULL ? cfg->host : "");
	c->port = cfg->port;
	c->tls = cfg->tls;
	c->verify = cfg->verify;
	c->ca_file = dup_or_null(cfg->ca_file);
	c->nick_base = xstrdup(cfg->nick != NULL ? cfg->nick : "");
	c->nick = xstrdup(c->nick_base);
	c->username = xstrdup(cfg->username != NULL && *cfg->username !=
	    '\0' ? cfg->username : c->nick_base);
	c->realname = xstrdup(cfg->realname != NULL && *cfg->realname !=
	    '\0' ? cfg->realname : c->nick_base);
	c->password = dup_or_null(cfg->password);
	c->sasl_user = dup_or_null(cfg->sasl_user);
	c->sasl_password = dup_or_null(cfg->sasl_password);
	c->webirc_password = dup_or_null(cfg->webirc_password);
	c->webirc_gateway = dup_or_null(cfg->webirc_gateway);
	c->webirc_host = dup_or_null(cfg->webirc_host);
	c->webirc_ip = dup_or_null(cfg->webirc_ip);
	c->ident = dup_or_null(cfg->ident);
	c->nickserv = dup_or_null(cfg->nickserv);
	c->burst = cfg->throttle_burst != 0 ? cfg->throttle_burst :
	    DEFAULT_BURST;
	c->rate_ms = cfg->throttle_rate_ms != 0 ? cfg->throttle_rate_ms :
	    DEFAULT_RATE_MS;
	c->timeout = cfg->timeout != 0 ? cfg->timeout : DEFAULT_TIMEOUT;
	TAILQ_INIT(&c->queue);
	irc_isupport_init(&c->isupport);
	c->deadline = evtimer_new(base, deadline_cb, c);
	c->idle = evtimer_new(base, idle_cb, c);
	c->flood = evtimer_new(base, flood_cb, c);
	c->close_ev = event_new(base, -1, 0, close_ev_cb, c);
	c->notify_ev = event_new(base, -1, 0, notify_ev_cb, c);
	if (c->deadline == NULL || c->idle == NULL || c->flood == NULL ||
	    c->close_ev == NULL || c->notify_ev == NULL)
		log_fatal("irc %s: cannot create timers", c->host);
	c->state = ST_RESOLVING;
	add_timer_ms(c->deadline, (uint64_t)c->timeout * 1000);

	if (cfg->fingerprint != NULL && cfg->fingerprint[0] != '\0') {
		if (tls_fingerprint_parse(cfg->fingerprint, c->pin) != 0) {
			close_conn(c, "the configured fingerprint is not a "
			    "SHA-256 fingerprint (64 hex digits, colons "
			    "allowed)");
			return c;
		}
		c->pinned = 1;
	}
	/* NICK's one parameter could legally be a trailing one with
	 * spaces ("NICK :a b"); a nick never has them.  A nick typed in a
	 * join is the user's: mended as after a 432, not refused (the
	 * owner sees the nick it got at 001). */
	if (c->nick_base[0] == '\0' || c->nick_base[0] == ':' ||
	    strpbrk(c->nick_base, " \r\n,") != NULL) {
		char *mended = nick_mended(c->nick_base, c->nick_base,
		    c->username, 0);
		log_info(CONN_FMT "not a valid IRC nick; trying %s",
		    CONN_ARGS(c), mended);
		free(c->nick_base);
		free(c->nick);
		c->nick_base = mended;
		c->nick = xstrdup(mended);
	}
	if (c->host[0] == '\0' || c->port <= 0 || c->port > 65535) {
		close_conn(c, "no IRC server host or port configured");
		return c;
	}
	log_info(CONN_FMT "connecting%s", CONN_ARGS(c),
	    c->tls ? " with TLS" : "");

	c->user_host = cfg->user_host;
	if (c->user_host) {
		/* No "localhost" rule here: the policy's lookup says what
		 * the name is, and loopback is refused unless allowed. */
		if (dns == NULL) {
			c->refused = 1;
			close_conn(c, DESTINATION_REFUSED);
			return c;
		}
		c->dreq = destination_resolve_async(dns, c->host, c->port,
		    DESTINATION_IRC, dest_cb, c);
		return c;
	}

	char port[8];
	snprintf(port, sizeof(port), "%d", c->port);
	/* RFC 6761 6.3: "localhost" and names under it are the loopback
	 * address, whatever /etc/hosts or DNS say (the demo's IRC server is
	 * irc.localhost). */
	const char *lookup = c->host;
	size_t hl = strlen(c->host);
	if (strcasecmp(c->host, "localhost") == 0 || (hl > 10 &&
	    strcasecmp(c->host + hl - 10, ".localhost") == 0))
		lookup = "127.0.0.1";
	struct evutil_addrinfo hints;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	if (dns == NULL) {
		/* Without a resolver only addresses do: a name would need
		 * the blocking getaddrinfo(), which stalls the loop. */
		struct evutil_addrinfo *ai = NULL;
		hints.ai_flags = EVUTIL_AI_NUMERICHOST | EVUTIL_AI_NUMERICSERV;
		int err = evutil_getaddrinfo(lookup, port, &hints, &ai);
		struct resolve *r = xcalloc(1, sizeof(*r));
		r->c = c;
		resolve_cb(err, ai, r);
		return c;
	}
	struct resolve *r = xcalloc(1, sizeof(*r));
	r->c = c;
	c->resolve = r;
	/* evdns may answer (addresses, /etc/hosts) before this returns:
	 * resolve_cb() then has already run, freed r and cleared
	 * c->resolve. */
	struct evdns_getaddrinfo_request *req = evdns_getaddrinfo(dns,
	    lookup, port, &hints, resolve_cb, r);
	if (c->resolve == r) {
		if (req != NULL) {
			r->req = req;
		} else {
			/* Not answered and no request: should not happen,
			 * but then nothing will ever call back. */
			c->resolve = NULL;
			free(r);
			close_conn(c, "cannot start resolving the host");
		}
	}
	return c;
}

void
irc_conn_free(struct irc_conn *c)
{
	if (c == NULL)
		return;
	memset(&c->cb, 0, sizeof(c->cb));
	if (c->depth > 0) {
		/* Called from our own callback: read_cb() frees it once
		 * the callback has returned. */
		c->freed = 1;
		teardown(c);
		event_del(c->close_ev);
		event_del(c->notify_ev);
		return;
	}
	destroy(c);
}

int
irc_conn_send(struct irc_conn *c, const char *command,
    const char *const *params)
{
	return irc_conn_send_tagged(c, 0, command, params);
}

int
irc_conn_send_tagged(struct irc_conn *c, unsigned long tag,
    const char *command, const char *const *params)
{
	static const char *const none[] = { NULL };
	if (c == NULL || !alive(c) || c->quitting || command == NULL)
		return -1;
	/* The queue drains at the flood-control pace; past this many lines
	 * waiting, more would only wait for minutes (or, with a hostile
	 * peer making us answer, grow without end): refuse. */
	if (c->queued >= IRC_QUEUE_MAX) {
		log_warn(CONN_FMT "%zu lines are waiting already; refusing a "
		    "%s", CONN_ARGS(c), c->queued, command);
		return -1;
	}
	struct evbuffer *buf = evbuffer_new();
	if (buf == NULL)
		log_fatal("cannot allocate an evbuffer");
	if (irc_build(buf, command, params != NULL ? params : none) != 0) {
		evbuffer_free(buf);
		log_warn(CONN_FMT "refusing to send a %s line that would "
		    "break IRC framing", CONN_ARGS(c), command);
		return -1;
	}
	size_t len = evbuffer_get_length(buf);
	struct out_line *l = xmalloc(sizeof(*l) + len);
	l->is_quit = 0;
	l->tag = tag;
	l->len = len;
	evbuffer_remove(buf, l->data, len);
	evbuffer_free(buf);
	TAILQ_INSERT_TAIL(&c->queue, l, entry);
	c->queued++;
	drain_queue(c);
	return 0;
}

void
irc_conn_quit(struct irc_conn *c, const char *reason)
{
	if (c == NULL || !alive(c) || c->quitting)
		return;
	c->quitting = 1;
	if (c->state == ST_RESOLVING || c->state == ST_CONNECTING) {
		close_conn(c, "quit");
		return;
	}
	struct evbuffer *buf = evbuffer_new();
	if (buf == NULL)
		log_fatal("cannot allocate an evbuffer");
	const char *p[] = { reason, NULL };
	const char *const none[] = { NULL };
	/* A reason IRC cannot carry does not keep us from leaving. */
	if (reason == NULL || reason[0] == '\0' ||
	    irc_build(buf, "QUIT", p) != 0)
		irc_build(buf, "QUIT", none);
	log_info(CONN_FMT "quitting", CONN_ARGS(c));
	if (c->state == ST_REGISTERING) {
		/* Nothing of the owner's goes out before 001 anyway. */
		queue_clear(c);
		bufferevent_write_buffer(c->bev, buf);
		evbuffer_free(buf);
		c->quit_sent = 1;
		event_del(c->deadline);
		add_timer_ms(c->deadline, QUIT_LINGER * 1000);
		return;
	}
	size_t len = evbuffer_get_length(buf);
	struct out_line *l = xmalloc(sizeof(*l) + len);
	l->is_quit = 1;
	l->tag = 0;
	l->len = len;
	evbuffer_remove(buf, l->data, len);
	evbuffer_free(buf);
	TAILQ_INSERT_TAIL(&c->queue, l, entry);
	c->queued++;
	drain_queue(c);
}

int
irc_conn_is_registered(const struct irc_conn *c)
{
	return c != NULL && c->state == ST_REGISTERED;
}

const char *
irc_conn_nick(const struct irc_conn *c)
{
	return c->nick;
}

const struct irc_isupport *
irc_conn_isupport(const struct irc_conn *c)
{
	return &c->isupport;
}

int
irc_conn_has_cap(const struct irc_conn *c, const char *cap)
{
	int i = cap_index(cap, strlen(cap));
	return i >= 0 && (c->caps_acked & (1u << i)) != 0;
}

int
irc_conn_sasl_done(const struct irc_conn *c)
{
	return c->sasl_ok;
}

int
irc_conn_refused(const struct irc_conn *c)
{
	return c != NULL && c->refused;
}

size_t
irc_conn_queued(const struct irc_conn *c)
{
	return c != NULL ? c->queued : 0;
}

void
irc_conn_get_stats(const struct irc_conn *c, struct irc_conn_stats *out)
{
	*out = c->stats;
}
