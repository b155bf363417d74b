/*
 * The HTTP listener Kannel calls back (MO texts, delivery reports): a
 * small HTTP/1.1 server of our own instead of libevent's evhttp, because
 * a listener anyone on the network can reach needs three things evhttp
 * does not give: a cap on connections held at once (idle connections
 * would otherwise take every descriptor of the process, XMPP and IRC
 * links included), one deadline per request that arriving bytes do not
 * extend (evhttp's timeout restarts on every byte), and a request
 * parser of our own that the fuzz harness can reach.
 *
 * A connection's life:
 *
 *   accepted (refused outright beyond max_conns)
 *     -> reading a head; deadline armed  --(complete)--> handler, which
 *        answers at once with sms_http_reply()
 *     -> keep-alive: deadline re-armed for the next request
 *        or close: closed once the answer is written
 *   the deadline, EOF, an error or a bad request close it.
 *
 * Only GET without a body is taken: Kannel's callbacks are GETs with a
 * query.  The head (request line and headers) is bounded, the request
 * target more tightly; pipelined requests are answered in order.
 */
#ifndef CAUSEWAY_SMS_HTTP_H
#define CAUSEWAY_SMS_HTTP_H

#include <stddef.h>

struct event_base;
struct sms_http;
struct sms_http_req;

/* A parsed request head. */
struct sms_http_head {
	char method[16];
	char *target;           /* owned, NUL-terminated, no controls */
	int minor;              /* HTTP/1.minor */
	int keep_alive;         /* another request may follow on the
	                         * connection */
	size_t head_len;        /* bytes of the head, blank line included */
};

/* The most header lines a head may have. */
#define SMS_HTTP_HEADERS_MAX 64

/*
 * Parses the head at the start of buf[0..len): 1 complete (h filled;
 * free it with sms_http_head_clear), 0 needs more bytes, -1 refused
 * with *status the HTTP status to answer (400, 405, 413, 414, 431, 501,
 * 505) and *why a static reason.  max_head bounds the head, max_target
 * the request target.  Pure: no I/O, fuzzed.
 */
int sms_http_parse(const char *buf, size_t len, size_t max_head,
    size_t max_target, struct sms_http_head *h, int *status,
    const char **why);
void sms_http_head_clear(struct sms_http_head *h);

/* Called for each request; must call sms_http_reply() once before it
 * returns.  req is borrowed for the call. */
typedef void (*sms_http_cb)(struct sms_http_req *req, void *arg);

/*
 * Listens on addr:port; at most max_conns connections at once, each
 * request within timeout seconds of its first byte's turn (accept, or
 * the end of the previous answer).  NULL with err filled on failure.
 */
struct sms_http *sms_http_new(struct event_base *base, const char *addr,
    int port, unsigned max_conns, int timeout, size_t max_head,
    size_t max_target, sms_http_cb cb, void *arg, char *err,
    size_t errlen);
/* Closes the listener and every connection; NULL is a no-op. */
void sms_http_free(struct sms_http *h);

/* The request target as sent (borrowed). */
const char *sms_http_target(const struct sms_http_req *req);
/* "ADDR:PORT" of the client, for logs (borrowed). */
const char *sms_http_peer(const struct sms_http_req *req);
/* Answers with code, reason and body (text/plain; a newline is added). */
void sms_http_reply(struct sms_http_req *req, int code, const char *reason,
    const char *body);

#endif
