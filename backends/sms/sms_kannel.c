/*
 * The Kannel driver: texts out through Kannel's HTTP sendsms interface,
 * texts in (MO) and delivery reports (DLR) through an HTTP listener of
 * our own that Kannel calls.
 *
 * Out: one GET per text to kannel_url, on at most CONNS keep-alive
 * connections, each carrying one request at a time; the rest wait in a
 * queue in order.  2xx means Kannel took the text (ACCEPTED); no answer,
 * a refused connection, a timeout or 5xx is TEMPFAIL (the backend tries
 * again); 4xx is PERMFAIL with Kannel's own words.  Each request asks for
 * every report (dlr-mask=31) at
 *   {callback_url}/kannel/{token}/dlr?ref=REF&status=%d&answer=%A
 * where Kannel fills in %d (1 delivered, 2 failed, 4 buffered at the
 * SMSC, 8 accepted by the SMSC, 16 rejected by the SMSC) and %A.
 *
 * In: only GET /kannel/{token}/mo and /kannel/{token}/dlr.  The token is
 * compared in constant time; a wrong or missing one is answered 403 and
 * changes nothing.  Queries are decoded strictly by sms_query.c (a bad
 * %-escape is a 400), sizes are bounded (request line and headers, body,
 * text), and an MO is answered 200 only once the backend has it
 * (sms_received() 0): until then Kannel keeps it.
 */
#include "autoconf.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>

#include "causeway.h"
#include "component.h"
#include "config.h"
#include "log.h"
#include "sms_driver.h"
#include "sms_http.h"
#include "sms_query.h"
#include "sms_text.h"
#include "xmalloc.h"

#define CONNS 4                 /* connections to sendsms */
#define REQUEST_TIMEOUT 30      /* seconds for a sendsms answer */
#define URI_MAX (32 * 1024)     /* a callback's request target */
#define HEADERS_MAX (48 * 1024) /* request line and headers */
#define TEXT_MAX (16 * 1024)    /* an MO's text, in bytes, as sent */
#define FIELD_MAX 64            /* from, to, ref, status, coding... */
#define ANSWER_MAX 160          /* of Kannel's answer, for the user */
#define TOKEN_MIN 16

struct job {
	TAILQ_ENTRY(job) entry;
	struct sms_driver *d;
	char *ref;
	char *uri;
	int slot;
};
TAILQ_HEAD(job_list, job);

struct slot {
	struct evhttp_connection *evcon;
	struct job *job;            /* the request on it, NULL: idle */
	int broken;                 /* replace the connection */
};

struct sms_driver {
	struct component *c;
	char *host;
	int port;
	char *target;               /* path?query& for sendsms */
	char *dlr_base;             /* {callback_url}/kannel/{token}/dlr */
	char *token;
	struct slot slots[CONNS];
	struct job_list queue;
	struct event *kick;         /* dispatch, outside libevent callbacks */
	struct sms_http *http;      /* the callback listener */
};

/* ---- configuration ---- */

static int
token_ok(const char *t)
{
	size_t n = strlen(t);
	if (n < TOKEN_MIN)
		return 0;
	for (; *t; t++)
		if (!isalnum((unsigned char)*t) && strchr("._~-", *t) == NULL)
			return 0;
	return 1;
}

/* "ADDR:PORT" or "[V6]:PORT" -> addr (caller frees) and port. */
static int
parse_listen(const char *s, char **addr, int *port)
{
	const char *colon = strrchr(s, ':');
	if (colon == NULL || colon == s)
		return -1;
	char *end;
	long p = strtol(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || p < 1 || p > 65535)
		return -1;
	const char *a = s;
	size_t n = (size_t)(colon - s);
	if (*a == '[') {
		if (n < 3 || a[n - 1] != ']')
			return -1;
		a++;
		n -= 2;
	}
	*addr = xstrndup(a, n);
	*port = (int)p;
	return 0;
}

/* ---- outgoing ---- */

static void dispatch(struct sms_driver *d);

static void
kick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	dispatch(arg);
}

static void
job_free(struct job *j)
{
	free(j->ref);
	free(j->uri);
	free(j);
}

/* Kannel's answer as a short printable line (caller frees). */
static char *
answer_text(struct evhttp_request *req)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = in ? evbuffer_get_length(in) : 0;
	char buf[ANSWER_MAX + 1];
	if (len > ANSWER_MAX)
		len = ANSWER_MAX;
	if (len > 0)
		evbuffer_copyout(in, buf, len);
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)buf[i];
		if (ch == '\r' || ch == '\n' || ch == '\t')
			ch = ' ';
		if (ch < 0x20 || ch >= 0x7f)
			continue;
		if (ch == ' ' && (o == 0 || buf[o - 1] == ' '))
			continue;
		buf[o++] = (char)ch;
	}
	while (o > 0 && buf[o - 1] == ' ')
		o--;
	buf[o] = '\0';
	return xstrdup(buf);
}

static void
request_done(struct evhttp_request *req, void *arg)
{
	struct job *j = arg;
	struct sms_driver *d = j->d;
	struct slot *sl = &d->slots[j->slot];
	int code = req ? evhttp_request_get_response_code(req) : 0;
	char *text = NULL;
	enum sms_result r;

	sl->job = NULL;
	if (code == 0) {
		/* Refused, reset, timed out: libevent has no answer. */
		sl->broken = 1;
		r = SMS_TEMPFAIL;
		text = xstrdup("no answer from Kannel");
	} else {
		text = answer_text(req);
		if (code >= 200 && code < 300)
			r = SMS_ACCEPTED;
		else if (code >= 400 && code < 500)
			r = SMS_PERMFAIL;
		else
			r = SMS_TEMPFAIL;
		if (r != SMS_ACCEPTED) {
			char *t = xasprintf("HTTP %d%s%s", code,
			    *text ? ": " : "", text);
			free(text);
			text = t;
		}
	}
	event_active(d->kick, EV_TIMEOUT, 0);
	char *ref = j->ref;
	j->ref = NULL;
	job_free(j);
	sms_sent(d->c, ref, r, text && *text ? text : NULL);
	free(ref);
	free(text);
}

static void
dispatch(struct sms_driver *d)
{
	for (int i = 0; i < CONNS && !TAILQ_EMPTY(&d->queue); i++) {
		struct slot *sl = &d->slots[i];
		if (sl->job != NULL)
			continue;
		if (sl->broken && sl->evcon != NULL) {
			evhttp_connection_free(sl->evcon);
			sl->evcon = NULL;
		}
		sl->broken = 0;
		if (sl->evcon == NULL) {
			sl->evcon = evhttp_connection_base_new(cw->base,
			    cw->dns, d->host, (unsigned short)d->port);
			if (sl->evcon == NULL) {
				log_error("%s: kannel: cannot make an HTTP "
				    "connection", d->c->domain);
				return;
			}
			evhttp_connection_set_timeout(sl->evcon,
			    REQUEST_TIMEOUT);
			evhttp_connection_set_retries(sl->evcon, 0);
		}
		struct job *j = TAILQ_FIRST(&d->queue);
		TAILQ_REMOVE(&d->queue, j, entry);
		j->slot = i;
		struct evhttp_request *req = evhttp_request_new(request_done,
		    j);
		struct evkeyvalq *h = evhttp_request_get_output_headers(req);
		evhttp_add_header(h, "Host", d->host);
		evhttp_add_header(h, "Connection", "keep-alive");
		sl->job = j;
		if (evhttp_make_request(sl->evcon, req, EVHTTP_REQ_GET,
		    j->uri) != 0) {
			/* libevent freed req. */
			sl->job = NULL;
			sl->broken = 1;
			char *ref = j->ref;
			j->ref = NULL;
			job_free(j);
			sms_sent(d->c, ref, SMS_TEMPFAIL, "the request to "
			    "Kannel could not be made");
			free(ref);
		}
	}
}

static void
add_param(struct evbuffer *b, const char *key, const char *value)
{
	char *enc = evhttp_uriencode(value, -1, 0);
	evbuffer_add_printf(b, "%s=%s&", key, enc ? enc : "");
	free(enc);
}

static void
kannel_send(struct sms_driver *d, const struct sms_out *out)
{
	struct component *c = d->c;
	const struct config_section *sec = c->section;
	struct evbuffer *b = evbuffer_new();
	evbuffer_add_printf(b, "%s", d->target);
	add_param(b, "username", config_str(sec, "kannel_user"));
	add_param(b, "password", config_str(sec, "kannel_password"));
	add_param(b, "from", out->from);
	add_param(b, "to", out->to);
	add_param(b, "text", out->text);
	/* The text is UTF-8 in the request either way; coding says what
	 * goes over the air.  UCS-2 needs both or Kannel sends '?'. */
	add_param(b, "charset", "UTF-8");
	add_param(b, "coding", out->ucs2 ? "2" : "0");
	const char *smsc = config_str(sec, "kannel_smsc");
	if (smsc != NULL && *smsc != '\0')
		add_param(b, "smsc", smsc);
	add_param(b, "dlr-mask", "31");
	char *dlr = xasprintf("%s?ref=%s&status=%%d&answer=%%A", d->dlr_base,
	    out->ref);
	add_param(b, "dlr-url", dlr);
	free(dlr);
	/* the last '&' */
	size_t len = evbuffer_get_length(b);
	struct job *j = xcalloc(1, sizeof(*j));
	j->d = d;
	j->ref = xstrdup(out->ref);
	j->uri = xmalloc(len);
	evbuffer_remove(b, j->uri, len);
	j->uri[len - 1] = '\0';
	evbuffer_free(b);
	TAILQ_INSERT_TAIL(&d->queue, j, entry);
	event_active(d->kick, EV_TIMEOUT, 0);
}

/* ---- incoming ---- */

/* Hostile text for a log line: printable ASCII, at most 40 bytes. */
static const char *
loggable(const char *s, char buf[48])
{
	size_t i;
	for (i = 0; s != NULL && s[i] != '\0' && i < 40; i++)
		buf[i] = s[i] > 0x20 && s[i] < 0x7f ? s[i] : '?';
	buf[i] = '\0';
	return buf;
}

/* A short field (number, ref, status): present, no NUL, not too long. */
static const char *
field(const struct sms_query_param *p, size_t n, const char *key)
{
	return sms_query_field(p, n, key, FIELD_MAX);
}

static void
reply(struct sms_http_req *req, int code, const char *reason,
    const char *body)
{
	sms_http_reply(req, code, reason, body);
}

static void
bad(struct sms_http_req *req, const char *why)
{
	reply(req, 400, "Bad Request", why);
}

static void
on_mo(struct sms_driver *d, struct sms_http_req *req,
    const struct sms_query_param *p, size_t n)
{
	const char *from = field(p, n, "from");
	const char *to = field(p, n, "to");
	const struct sms_query_param *text = sms_query_param(p, n, "text");
	const char *coding = field(p, n, "coding");
	const struct sms_query_param *charset = sms_query_param(p, n,
	    "charset");
	if (from == NULL || to == NULL || text == NULL) {
		bad(req, "from, to and text are required (and short)");
		return;
	}
	if (text->len > TEXT_MAX) {
		reply(req, 413, "Payload Too Large", "text too long");
		return;
	}
	/* Kannel's codings: 0 7-bit (the text is already characters), 1
	 * 8-bit data, 2 UCS-2. */
	enum sms_charset cs = SMS_CHARSET_UTF8;
	if (coding == NULL || strcmp(coding, "0") == 0)
		cs = SMS_CHARSET_UTF8;
	else if (strcmp(coding, "1") == 0)
		cs = SMS_CHARSET_LATIN1;
	else if (strcmp(coding, "2") == 0)
		cs = SMS_CHARSET_UCS2;
	else {
		bad(req, "unknown coding");
		return;
	}
	/* charset names the bytes as Kannel sends them (with mo-recode,
	 * UTF-8 even for UCS-2 texts). */
	if (charset != NULL && charset->len > 0) {
		enum sms_charset named;
		if (charset->len <= FIELD_MAX &&
		    memchr(charset->val, '\0', charset->len) == NULL &&
		    sms_charset_parse(charset->val, &named) == 0)
			cs = named;
		else {
			char lb[48];
			log_info("%s: kannel: MO charset \"%s\" unknown; "
			    "read by its coding", d->c->domain,
			    loggable(charset->val, lb));
		}
	}
	char *body = sms_decode(cs, text->val, text->len);
	time_t stamp = sms_query_time(field(p, n, "ts"));
	int r = sms_received(d->c, from, to, body, stamp);
	free(body);
	if (r == 0)
		reply(req, 200, "OK", "ok");
	else if (r == -1)
		reply(req, 404, "Not Found", "no user has that number");
	else
		reply(req, 503, "Service Unavailable", "try again later");
}

static void
on_dlr(struct sms_driver *d, struct sms_http_req *req,
    const struct sms_query_param *p, size_t n)
{
	const char *ref = field(p, n, "ref");
	const char *status = field(p, n, "status");
	const struct sms_query_param *answer = sms_query_param(p, n,
	    "answer");
	if (ref == NULL || status == NULL) {
		bad(req, "ref and status are required");
		return;
	}
	if (strlen(ref) > 32 || strspn(ref,
	    "0123456789abcdefghijklmnopqrstuvwxyz") != strlen(ref)) {
		/* Not one of ours: nothing to do, and nothing for Kannel to
		 * try again. */
		char lb[48];
		log_info("%s: kannel: a report for \"%s\", no ref of ours",
		    d->c->domain, loggable(ref, lb));
		reply(req, 200, "OK", "unknown ref");
		return;
	}
	char *e;
	long st = strtol(status, &e, 10);
	if (*e != '\0' || st < 0) {
		bad(req, "status is not a number");
		return;
	}
	char *why = NULL;
	if (answer != NULL && answer->len > 0) {
		size_t len = answer->len > ANSWER_MAX ? ANSWER_MAX :
		    answer->len;
		why = sms_decode(SMS_CHARSET_UTF8, answer->val, len);
	}
	if (st & 1)
		sms_report(d->c, ref, 1, NULL);
	else if (st & (2 | 16))
		sms_report(d->c, ref, 0, why ? why : (st & 16 ?
		    "the SMS centre rejected it" : "not delivered"));
	else
		log_debug("%s: kannel: report %ld for %s (on its way)",
		    d->c->domain, st, ref);
	free(why);
	reply(req, 200, "OK", "ok");
}

static void
on_request(struct sms_http_req *req, void *arg)
{
	struct sms_driver *d = arg;
	const char *uri = sms_http_target(req);
	size_t ulen = uri ? strlen(uri) : 0;
	if (ulen > URI_MAX) {
		reply(req, 414, "URI Too Long", "too long");
		return;
	}
	const char *qm = strchr(uri, '?');
	size_t plen = qm ? (size_t)(qm - uri) : ulen;
	static const char prefix[] = "/kannel/";
	if (plen < sizeof(prefix) || strncmp(uri, prefix,
	    sizeof(prefix) - 1) != 0) {
		reply(req, 404, "Not Found", "not here");
		return;
	}
	const char *tok = uri + sizeof(prefix) - 1;
	const char *slash = memchr(tok, '/', (size_t)(uri + plen - tok));
	size_t tlen = slash ? (size_t)(slash - tok) : (size_t)(uri + plen -
	    tok);
	size_t want = strlen(d->token);
	/* Constant time over the configured token's length. */
	int ok = tlen == want && CRYPTO_memcmp(tok, d->token, want) == 0;
	if (!ok) {
		log_warn("%s: kannel: a callback with a wrong token was "
		    "refused (from %s)", d->c->domain, sms_http_peer(req));
		reply(req, 403, "Forbidden", "wrong token");
		return;
	}
	const char *what = slash ? slash + 1 : "";
	size_t wlen = (size_t)(uri + plen - what);
	int mo = wlen == 2 && strncmp(what, "mo", 2) == 0;
	int dlr = wlen == 3 && strncmp(what, "dlr", 3) == 0;
	if (!mo && !dlr) {
		reply(req, 404, "Not Found", "only mo and dlr");
		return;
	}
	struct sms_query_param p[SMS_QUERY_PARAMS_MAX];
	size_t n = 0;
	const char *why = NULL;
	if (sms_query_parse(qm ? qm + 1 : NULL, p, SMS_QUERY_PARAMS_MAX, &n,
	    &why) != 0) {
		bad(req, why);
		return;
	}
	if (mo)
		on_mo(d, req, p, n);
	else
		on_dlr(d, req, p, n);
	sms_query_clear(p, n);
}

/* ---- lifecycle ---- */

static void
kannel_stop(struct sms_driver *d)
{
	if (d == NULL)
		return;
	sms_http_free(d->http);
	for (int i = 0; i < CONNS; i++) {
		if (d->slots[i].evcon != NULL) {
			/* Frees its requests without calling them back:
			 * the outbox in the store still has those texts. */
			evhttp_connection_free(d->slots[i].evcon);
		}
		if (d->slots[i].job != NULL)
			job_free(d->slots[i].job);
	}
	struct job *j;
	while ((j = TAILQ_FIRST(&d->queue)) != NULL) {
		TAILQ_REMOVE(&d->queue, j, entry);
		job_free(j);
	}
	if (d->kick != NULL)
		event_free(d->kick);
	free(d->host);
	free(d->target);
	free(d->dlr_base);
	free(d->token);
	free(d);
}

static struct sms_driver *
kannel_start(struct component *c)
{
	const struct config_section *sec = c->section;
	const char *url = config_str(sec, "kannel_url");
	const char *listen = config_str(sec, "listen");
	const char *cb = config_str(sec, "callback_url");
	const char *token = config_str(sec, "callback_token");
	int bad = 0;
	static const char *const needed[] = { "kannel_url", "listen",
	    "callback_url", "callback_token" };
	for (size_t i = 0; i < sizeof(needed) / sizeof(needed[0]); i++) {
		const char *v = config_str(sec, needed[i]);
		if (v == NULL || *v == '\0') {
			log_error("%s:%d: [component %s]: driver = kannel needs "
			    "%s", config_section_file(sec),
			    config_key_line(sec, needed[i]), c->domain,
			    needed[i]);
			bad = 1;
		}
	}
	if (bad)
		return NULL;

	struct sms_driver *d = xcalloc(1, sizeof(*d));
	d->c = c;
	TAILQ_INIT(&d->queue);
	struct evhttp_uri *u = evhttp_uri_parse(url);
	const char *scheme = u ? evhttp_uri_get_scheme(u) : NULL;
	if (u == NULL || scheme == NULL || strcasecmp(scheme, "http") != 0 ||
	    evhttp_uri_get_host(u) == NULL || evhttp_uri_get_userinfo(u)) {
		log_error("%s:%d: [component %s]: kannel_url must be an "
		    "http:// URL without user info (Kannel's sendsms, e.g. "
		    "http://127.0.0.1:13013/cgi-bin/sendsms)",
		    config_section_file(sec), config_key_line(sec,
		    "kannel_url"), c->domain);
		bad = 1;
	} else {
		d->host = xstrdup(evhttp_uri_get_host(u));
		d->port = evhttp_uri_get_port(u) > 0 ?
		    evhttp_uri_get_port(u) : 80;
		const char *path = evhttp_uri_get_path(u);
		const char *query = evhttp_uri_get_query(u);
		d->target = xasprintf("%s?%s%s", path && *path ? path : "/",
		    query ? query : "", query && *query ? "&" : "");
	}
	if (u != NULL)
		evhttp_uri_free(u);
	if (!token_ok(token)) {
		log_error("%s:%d: [component %s]: callback_token must be at "
		    "least %d characters of A-Z a-z 0-9 . _ ~ -",
		    config_section_file(sec), config_key_line(sec,
		    "callback_token"), c->domain, TOKEN_MIN);
		bad = 1;
	}
	if (strncasecmp(cb, "http://", 7) != 0 &&
	    strncasecmp(cb, "https://", 8) != 0) {
		log_error("%s:%d: [component %s]: callback_url must be an "
		    "http:// or https:// URL", config_section_file(sec),
		    config_key_line(sec, "callback_url"), c->domain);
		bad = 1;
	}
	char *addr = NULL;
	int port = 0;
	if (parse_listen(listen, &addr, &port) != 0) {
		log_error("%s:%d: [component %s]: listen must be ADDR:PORT",
		    config_section_file(sec), config_key_line(sec, "listen"),
		    c->domain);
		bad = 1;
	}
	if (bad) {
		free(addr);
		kannel_stop(d);
		return NULL;
	}
	size_t cbl = strlen(cb);
	while (cbl > 0 && cb[cbl - 1] == '/')
		cbl--;
	d->token = xstrdup(token);
	d->dlr_base = xasprintf("%.*s/kannel/%s/dlr", (int)cbl, cb, token);
	d->kick = event_new(cw->base, -1, 0, kick_cb, d);

	char err[128];
	d->http = sms_http_new(cw->base, addr, port,
	    (unsigned)config_int(sec, "listen_connections"),
	    (int)config_int(sec, "listen_timeout"), HEADERS_MAX, URI_MAX,
	    on_request, d, err, sizeof(err));
	if (d->http == NULL) {
		log_error("%s: kannel: cannot listen on %s: %s", c->domain,
		    listen, err);
		free(addr);
		kannel_stop(d);
		return NULL;
	}
	free(addr);
	log_info("%s: kannel: sendsms at %s:%d, callbacks on %s", c->domain,
	    d->host, d->port, listen);
	return d;
}

const struct sms_driver_ops sms_kannel_driver = {
	.name = "kannel",
	.start = kannel_start,
	.stop = kannel_stop,
	.send = kannel_send,
};
