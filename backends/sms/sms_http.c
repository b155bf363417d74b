/*
 * The callback listener's HTTP/1.1 server (see sms_http.h for the
 * connection's life and why it is our own).
 */
#include "autoconf.h"

#include <sys/queue.h>
#include <sys/socket.h>

#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "log.h"
#include "sms_http.h"
#include "xmalloc.h"

/* ---- the parser ---- */

static int
tchar(int c)
{
	/* RFC 9110 token characters. */
	return isalnum(c) || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) !=
	    NULL);
}

static int
refuse(int code, const char *reason, int *status, const char **why)
{
	*status = code;
	*why = reason;
	return -1;
}

/* The end of the line starting at p (before end): the LF, or NULL. */
static const char *
line_end(const char *p, const char *end)
{
	return memchr(p, '\n', (size_t)(end - p));
}

/* Does the comma-separated list v[0..n) hold token (any case)? */
static int
list_has(const char *v, size_t n, const char *token)
{
	size_t tl = strlen(token);
	const char *p = v, *end = v + n;
	while (p < end) {
		while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
			p++;
		const char *s = p;
		while (p < end && *p != ',')
			p++;
		const char *e = p;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if ((size_t)(e - s) == tl && strncasecmp(s, token, tl) == 0)
			return 1;
	}
	return 0;
}

int
sms_http_parse(const char *buf, size_t len, size_t max_head,
    size_t max_target, struct sms_http_head *h, int *status,
    const char **why)
{
	memset(h, 0, sizeof(*h));
	*status = 0;
	*why = NULL;
	const char *end = buf + (len > max_head ? max_head : len);

	/* Leading empty lines are allowed before a request (RFC 9112
	 * 2.2), a few of them. */
	const char *p = buf;
	for (int i = 0; i < 4 && p < end && (*p == '\r' || *p == '\n'); i++)
		p += *p == '\r' && p + 1 < end && p[1] == '\n' ? 2 : 1;

	/* The request line. */
	const char *rl = p;
	const char *le = line_end(p, end);
	if (le == NULL) {
		if ((size_t)(end - p) > max_target + 32)
			return refuse(414, "request line too long", status,
			    why);
		if (len >= max_head)
			return refuse(431, "request head too large", status,
			    why);
		return 0;
	}
	const char *lend = le > p && le[-1] == '\r' ? le - 1 : le;
	const char *sp1 = memchr(p, ' ', (size_t)(lend - p));
	if (sp1 == NULL || sp1 == p || (size_t)(sp1 - p) >= sizeof(h->method))
		return refuse(400, "bad request line", status, why);
	for (const char *m = p; m < sp1; m++)
		if (!tchar((unsigned char)*m))
			return refuse(400, "bad method", status, why);
	const char *t = sp1 + 1;
	const char *sp2 = memchr(t, ' ', (size_t)(lend - t));
	if (sp2 == NULL || sp2 == t)
		return refuse(400, "bad request line", status, why);
	if ((size_t)(sp2 - t) > max_target)
		return refuse(414, "request target too long", status, why);
	if (*t != '/')
		return refuse(400, "the target must be a path", status, why);
	for (const char *c = t; c < sp2; c++)
		if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f)
			return refuse(400, "bad byte in the target", status,
			    why);
	const char *v = sp2 + 1;
	if (lend - v != 8 || strncmp(v, "HTTP/1.", 7) != 0 ||
	    (v[7] != '0' && v[7] != '1'))
		return refuse(v + 5 <= lend && strncmp(v, "HTTP/", 5) == 0 &&
		    memchr(v, ' ', (size_t)(lend - v)) == NULL ? 505 : 400, "HTTP/1.0 or HTTP/1.1 only", status, why);
	int minor = v[7] - '0';
	int keep = minor == 1, close_asked = 0, alive_asked = 0;

	/* The headers. */
	p = le + 1;
	int nheaders = 0, body = 0;
	for (;;) {
		le = line_end(p, end);
		if (le == NULL) {
			if (len >= max_head)
				return refuse(431, "request head too large",
				    status, why);
			return 0;
		}
		lend = le > p && le[-1] == '\r' ? le - 1 : le;
		if (lend == p)
			break;          /* the blank line: end of the head */
		if (++nheaders > SMS_HTTP_HEADERS_MAX)
			return refuse(431, "too many header lines", status,
			    why);
		if (*p == ' ' || *p == '\t')
			return refuse(400, "folded header line", status, why);
		const char *colon = memchr(p, ':', (size_t)(lend - p));
		if (colon == NULL || colon == p)
			return refuse(400, "a header line without a name",
			    status, why);
		for (const char *c = p; c < colon; c++)
			if (!tchar((unsigned char)*c))
				return refuse(400, "bad header name", status,
				    why);
		const char *val = colon + 1;
		for (const char *c = val; c < lend; c++)
			if (*c == '\0' || *c == '\r' || *c == '\n')
				return refuse(400, "bad byte in a header",
				    status, why);
		while (val < lend && (*val == ' ' || *val == '\t'))
			val++;
		size_t nlen = (size_t)(colon - p), vlen = (size_t)(lend - val);
		if (nlen == 17 && strncasecmp(p, "transfer-encoding", 17) == 0)
			return refuse(501, "no request bodies here", status,
			    why);
		if (nlen == 14 && strncasecmp(p, "content-length", 14) == 0) {
			size_t k = 0;
			while (k < vlen && val[k] == '0')
				k++;
			while (k < vlen && (val[k] == ' ' || val[k] == '\t'))
				k++;
			if (vlen == 0 || strspn(val, "0123456789") == 0)
				return refuse(400, "bad Content-Length",
				    status, why);
			if (k != vlen)
				body = 1;
		}
		if (nlen == 10 && strncasecmp(p, "connection", 10) == 0) {
			close_asked |= list_has(val, vlen, "close");
			alive_asked |= list_has(val, vlen, "keep-alive");
		}
		p = le + 1;
	}
	/* Method last: a POST with a body is refused before its body is
	 * read, with the headers known to be sane. */
	size_t mlen = (size_t)(sp1 - rl);
	const char *mstart = rl;
	if (mlen != 3 || strncmp(mstart, "GET", 3) != 0)
		return refuse(405, "only GET", status, why);
	if (body)
		return refuse(413, "no request bodies here", status, why);
	memcpy(h->method, mstart, mlen);
	h->method[mlen] = '\0';
	h->target = xstrndup(t, (size_t)(sp2 - t));
	h->minor = minor;
	h->keep_alive = close_asked ? 0 : keep || alive_asked;
	h->head_len = (size_t)(le + 1 - buf);
	return 1;
}

void
sms_http_head_clear(struct sms_http_head *h)
{
	free(h->target);
	h->target = NULL;
}

/* ---- the server ---- */

/* Answers a client has not read yet: beyond this, its further requests
 * wait (a client pipelining requests and never reading would otherwise
 * make us hold every answer). */
#define OUT_MAX (64 * 1024)

struct conn {
	TAILQ_ENTRY(conn) entry;
	struct sms_http *srv;
	struct bufferevent *bev;
	struct event *deadline;
	char peer[64];
	int closing;            /* answer written, then close */
};
TAILQ_HEAD(conn_list, conn);

struct sms_http_req {
	struct conn *c;
	const struct sms_http_head *head;
	int replied;
	int keep;               /* the answer lets the connection live on */
};

struct sms_http {
	struct event_base *base;
	struct evconnlistener *listener;
	struct conn_list conns;
	unsigned nconns, max_conns;
	int timeout;
	size_t max_head, max_target;
	sms_http_cb cb;
	void *arg;
	unsigned long refused;  /* connections refused at the cap */
	time_t refused_logged;
};

static void
conn_free(struct conn *c)
{
	struct sms_http *srv = c->srv;
	TAILQ_REMOVE(&srv->conns, c, entry);
	srv->nconns--;
	event_free(c->deadline);
	bufferevent_free(c->bev);
	free(c);
}

static void
arm_deadline(struct conn *c)
{
	struct timeval tv = { c->srv->timeout, 0 };
	evtimer_add(c->deadline, &tv);
}

static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	(void)fd;
	(void)what;
	log_debug("http listener: %s: no complete request within %d s, "
	    "closed", c->peer, c->srv->timeout);
	conn_free(c);
}

static void
write_answer(struct conn *c, int code, const char *reason,
    const char *body, int keep)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Length: %zu\r\n"
	    "Connection: %s\r\n\r\n%s\n", code, reason, strlen(body) + 1,
	    keep ? "keep-alive" : "close", body);
}

/* Stop reading; close once the answer is out (or at the deadline). */
static void
close_after_write(struct conn *c)
{
	c->closing = 1;
	bufferevent_disable(c->bev, EV_READ);
	evbuffer_drain(bufferevent_get_input(c->bev),
	    evbuffer_get_length(bufferevent_get_input(c->bev)));
	/* The deadline still runs: a client that does not read its answer
	 * does not keep the connection. */
}

static void read_cb(struct bufferevent *bev, void *arg);

static void
write_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	if (evbuffer_get_length(bufferevent_get_output(bev)) != 0)
		return;
	if (c->closing) {
		conn_free(c);
		return;
	}
	/* Drained: requests that waited for that may go on. */
	bufferevent_enable(bev, EV_READ);
	read_cb(bev, c);
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	(void)bev;
	(void)what;
	/* EOF or an error: nothing more to say or hear. */
	conn_free(c);
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct sms_http *srv = c->srv;
	struct evbuffer *in = bufferevent_get_input(bev);
	while (!c->closing) {
		if (evbuffer_get_length(bufferevent_get_output(bev)) > OUT_MAX) {
			bufferevent_disable(bev, EV_READ);
			return;
		}
		size_t len = evbuffer_get_length(in);
		if (len == 0)
			return;
		size_t look = len > srv->max_head ? srv->max_head : len;
		const char *buf = (const char *)evbuffer_pullup(in,
		    (ev_ssize_t)look);
		struct sms_http_head h;
		int status;
		const char *why;
		int r = sms_http_parse(buf, look, srv->max_head,
		    srv->max_target, &h, &status, &why);
		if (r == 0)
			return;         /* more to come, within the deadline */
		if (r < 0) {
			log_info("http listener: %s: refused with %d: %s",
			    c->peer, status, why);
			write_answer(c, status, status == 431 ? "Request "
			    "Header Fields Too Large" : status == 414 ? "URI "
			    "Too Long" : status == 413 ? "Content Too Large" :
			    status == 405 ? "Method Not Allowed" : status ==
			    501 ? "Not Implemented" : status == 505 ? "HTTP "
			    "Version Not Supported" : "Bad Request", why, 0);
			close_after_write(c);
			return;
		}
		evbuffer_drain(in, h.head_len);
		struct sms_http_req req = { .c = c, .head = &h,
		    .keep = h.keep_alive };
		srv->cb(&req, srv->arg);
		if (!req.replied) {
			log_error("http listener: %s: no answer for %s", c->peer,
			    h.target);
			write_answer(c, 500, "Internal Server Error", "no answer",
			    0);
			req.keep = 0;
		}
		sms_http_head_clear(&h);
		if (!req.keep) {
			close_after_write(c);
			return;
		}
		/* The next request has a deadline of its own. */
		arm_deadline(c);
	}
}

static void
accepted(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct sms_http *srv = arg;
	(void)l;
	if (srv->nconns >= srv->max_conns) {
		/* Closed at once: the descriptor is back before the next
		 * accept.  Logged at most once a minute, with a count. */
		evutil_closesocket(fd);
		srv->refused++;
		time_t now = time(NULL);
		if (now - srv->refused_logged >= 60) {
			log_warn("http listener: %lu connection(s) refused: %u "
			    "open already (the cap)", srv->refused,
			    srv->max_conns);
			srv->refused = 0;
			srv->refused_logged = now;
		}
		return;
	}
	struct bufferevent *bev = bufferevent_socket_new(srv->base, fd,
	    BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		evutil_closesocket(fd);
		return;
	}
	struct conn *c = xcalloc(1, sizeof(*c));
	c->srv = srv;
	c->bev = bev;
	c->deadline = evtimer_new(srv->base, deadline_cb, c);
	if (c->deadline == NULL)
		log_fatal("http listener: out of memory");
	char host[48] = "?", port[8] = "?";
	if (getnameinfo(sa, (socklen_t)salen, host, sizeof(host), port,
	    sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		snprintf(host, sizeof(host), "?");
	snprintf(c->peer, sizeof(c->peer), "%s:%s", host, port);
	TAILQ_INSERT_TAIL(&srv->conns, c, entry);
	srv->nconns++;
	/* Reading stops once a head's worth is buffered: the parser then
	 * has enough to refuse it, and no client makes us hold more. */
	bufferevent_setwatermark(bev, EV_READ, 0, srv->max_head + 1);
	bufferevent_setcb(bev, read_cb, write_cb, event_cb, c);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	arm_deadline(c);
}

struct sms_http *
sms_http_new(struct event_base *base, const char *addr, int port,
    unsigned max_conns, int timeout, size_t max_head, size_t max_target,
    sms_http_cb cb, void *arg, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);
	char *spec = strchr(addr, ':') != NULL ? xasprintf("[%s]:%d", addr,
	    port) : xasprintf("%s:%d", addr, port);
	int bad = evutil_parse_sockaddr_port(spec, (struct sockaddr *)&ss,
	    &sslen);
	free(spec);
	if (bad != 0) {
		snprintf(err, errlen, "%s is not an address", addr);
		return NULL;
	}
	struct sms_http *srv = xcalloc(1, sizeof(*srv));
	srv->base = base;
	TAILQ_INIT(&srv->conns);
	srv->max_conns = max_conns > 0 ? max_conns : 1;
	srv->timeout = timeout > 0 ? timeout : 1;
	srv->max_head = max_head;
	srv->max_target = max_target;
	srv->cb = cb;
	srv->arg = arg;
	srv->listener = evconnlistener_new_bind(base, accepted, srv,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
	    128, (struct sockaddr *)&ss, sslen);
	if (srv->listener == NULL) {
		snprintf(err, errlen, "%s", evutil_socket_error_to_string(
		    EVUTIL_SOCKET_ERROR()));
		free(srv);
		return NULL;
	}
	return srv;
}

void
sms_http_free(struct sms_http *srv)
{
	if (srv == NULL)
		return;
	evconnlistener_free(srv->listener);
	while (!TAILQ_EMPTY(&srv->conns))
		conn_free(TAILQ_FIRST(&srv->conns));
	free(srv);
}

const char *
sms_http_target(const struct sms_http_req *req)
{
	return req->head->target;
}

const char *
sms_http_peer(const struct sms_http_req *req)
{
	return req->c->peer;
}

void
sms_http_reply(struct sms_http_req *req, int code, const char *reason,
    const char *body)
{
	if (req->replied)
		return;
	req->replied = 1;
	/* Only a request that was accepted keeps its connection: a client
	 * answered 403 or 404 (no token, wrong path) must not hold one of
	 * the listener's few slots by asking again and again. */
	if (code >= 400)
		req->keep = 0;
	write_answer(req->c, code, reason, body, req->keep);
}
