/*
 * Blocking connections on poll() and OpenSSL for the worker pool (see
 * email_net.h).  The socket stays non-blocking; every wait is a poll()
 * with the connection's timeout, cut short by the operation's deadline,
 * so no wait blocks longer than the one and no operation lasts longer
 * than the other.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "destination.h"
#include "email_net.h"
#include "tls.h"
#include "xmalloc.h"

struct email_net {
	int fd;
	SSL *ssl;
	int timeout;           /* seconds per wait */
	struct timespec deadline; /* CLOCK_MONOTONIC; tv_sec 0: none */
	int deadline_s;        /* its length, for the error text */
	size_t budget, used;
	char rbuf[4096];       /* read ahead by read_line */
	size_t rlen, roff;
	int dead;              /* abandoned: no more waiting on the peer */
	int timed_out;         /* the last wait ran out of time */
	char error[256];
};

static void
ssl_error(char *err, size_t errlen, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[200];
	if (e != 0)
		ERR_error_string_n(e, buf, sizeof(buf));
	else
		snprintf(buf, sizeof(buf), "%s", strerror(errno));
	snprintf(err, errlen, "%s: %s", what, buf);
	ERR_clear_error();
}

/* Milliseconds left before the deadline (0 when it passed), or -1
 * when there is none. */
static long
deadline_left(const struct email_net *n)
{
	if (n->deadline.tv_sec == 0)
		return -1;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	long ms = (long)(n->deadline.tv_sec - now.tv_sec) * 1000 +
	    (n->deadline.tv_nsec - now.tv_nsec) / 1000000;
	return ms > 0 ? ms : 0;
}

/* Waits for events on the socket within the timeout and the deadline:
 * 1 ready, 0 timed out, -1 error. */
static int
wait_fd(struct email_net *n, short events)
{
	struct pollfd p = { .fd = n->fd, .events = events };
	for (;;) {
		long ms = n->timeout > 0 ? n->timeout * 1000L : -1;
		long left = deadline_left(n);
		int by_deadline = left >= 0 && (ms < 0 || left < ms);
		if (by_deadline)
			ms = left;
		int r = ms == 0 ? 0 : poll(&p, 1, (int)ms);
		if (r < 0 && errno == EINTR)
			continue;
		n->timed_out = r == 0;
		if (r == 0)
			snprintf(n->error, sizeof(n->error), "the server did "
			    "not answer within %d s", by_deadline ?
			    n->deadline_s : n->timeout);
		else if (r < 0)
			snprintf(n->error, sizeof(n->error), "poll: %s",
			    strerror(errno));
		return r < 0 ? -1 : r;
	}
}

struct email_net *
email_net_connect(const char *host, int port, int trusted, int timeout,
    char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
	    .ai_socktype = SOCK_STREAM }, *res, *ai, checked;
	struct destination d;
	char service[16];
	snprintf(service, sizeof(service), "%d", port);
	if (!trusted) {
		/* The one address the policy allowed, nothing else. */
		if (destination_resolve(host, port, DESTINATION_IMAP, &d, err,
		    errlen) != 0)
			return NULL;
		memset(&checked, 0, sizeof(checked));
		checked.ai_family = d.addr.ss_family;
		checked.ai_socktype = SOCK_STREAM;
		checked.ai_addr = (struct sockaddr *)&d.addr;
		checked.ai_addrlen = d.len;
		res = &checked;
	} else {
		int r = getaddrinfo(host, service, &hints, &res);
		if (r != 0) {
			snprintf(err, errlen, "cannot resolve %s: %s", host,
			    gai_strerror(r));
			return NULL;
		}
	}
	struct email_net *n = xcalloc(1, sizeof(*n));
	n->fd = -1;
	n->timeout = timeout;
	email_net_set_deadline(n, timeout);
	snprintf(err, errlen, "cannot connect to %s:%d", host, port);
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC |
		    SOCK_NONBLOCK, ai->ai_protocol);
		if (fd < 0)
			continue;
		n->fd = fd;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		if (errno == EINPROGRESS && wait_fd(n, POLLOUT) == 1) {
			int e = 0;
			socklen_t el = sizeof(e);
			getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el);
			if (e == 0)
				break;
			errno = e;
		}
		snprintf(err, errlen, "cannot connect to %s:%d: %s", host,
		    port, n->error[0] ? n->error : strerror(errno));
		n->error[0] = '\0';
		close(fd);
		n->fd = -1;
	}
	if (res != &checked)
		freeaddrinfo(res);
	if (n->fd < 0) {
		free(n);
		return NULL;
	}
	return n;
}

int
email_net_start_tls(struct email_net *n, SSL_CTX *ctx, const char *host,
    char *err, size_t errlen)
{
	n->ssl = SSL_new(ctx);
	if (n->ssl == NULL) {
		ssl_error(err, errlen, "TLS");
		return -1;
	}
	SSL_set_fd(n->ssl, n->fd);
	/* The certificate must name the host (or the address) we were
	 * told to reach: tls.c decides how. */
	if (tls_client_prepare(n->ssl, host, 1, err, errlen) != 0)
		return -1;
	for (;;) {
		ERR_clear_error();
		int r = SSL_connect(n->ssl);
		if (r == 1)
			break;
		int e = SSL_get_error(n->ssl, r);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			if (wait_fd(n, e == SSL_ERROR_WANT_READ ? POLLIN :
			    POLLOUT) != 1) {
				snprintf(err, errlen, "TLS handshake: %s",
				    n->error);
				return -1;
			}
			continue;
		}
		long v = SSL_get_verify_result(n->ssl);
		if (v != X509_V_OK)
			snprintf(err, errlen, "the server's certificate was "
			    "refused: %s", X509_verify_cert_error_string(v));
		else
			ssl_error(err, errlen, "TLS handshake failed");
		return -1;
	}
	if (SSL_get_verify_result(n->ssl) != X509_V_OK) {
		snprintf(err, errlen, "the server's certificate was refused");
		return -1;
	}
	return 0;
}

static ssize_t
raw_read_once(struct email_net *, void *, size_t);

/* As raw_read_once(), an EOF said in n->error for libetpan's sake. */
static ssize_t
raw_read(struct email_net *n, void *buf, size_t len)
{
	ssize_t r = raw_read_once(n, buf, len);
	if (r == 0)
		snprintf(n->error, sizeof(n->error), "the server closed the "
		    "connection");
	return r;
}

static ssize_t
raw_read_once(struct email_net *n, void *buf, size_t len)
{
	if (n->dead)
		return -1;
	if (n->budget > 0 && n->used >= n->budget) {
		snprintf(n->error, sizeof(n->error), "the server sent more "
		    "than %zu bytes in answer to one command", n->budget);
		return -1;
	}
	for (;;) {
		ssize_t r;
		if (n->ssl != NULL) {
			ERR_clear_error();
			int k = SSL_read(n->ssl, buf, len > 65536 ? 65536 :
			    (int)len);
			if (k > 0) {
				n->used += (size_t)k;
				return k;
			}
			int e = SSL_get_error(n->ssl, k);
			if (e == SSL_ERROR_ZERO_RETURN)
				return 0;
			if (e == SSL_ERROR_WANT_READ ||
			    e == SSL_ERROR_WANT_WRITE) {
				if (wait_fd(n, e == SSL_ERROR_WANT_READ ?
				    POLLIN : POLLOUT) != 1)
					return -1;
				continue;
			}
			if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
				return 0;
			if (e == SSL_ERROR_SSL && ERR_GET_REASON(
			    ERR_peek_error()) ==
			    SSL_R_UNEXPECTED_EOF_WHILE_READING) {
				/* Closed without close_notify: for us the
				 * same as a plain close. */
				ERR_clear_error();
				return 0;
			}
			ssl_error(n->error, sizeof(n->error), "TLS");
			return -1;
		}
		r = read(n->fd, buf, len);
		if (r > 0) {
			n->used += (size_t)r;
			return r;
		}
		if (r == 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN) {
			snprintf(n->error, sizeof(n->error), "read: %s",
			    strerror(errno));
			return -1;
		}
		if (wait_fd(n, POLLIN) != 1)
			return -1;
	}
}

ssize_t
email_net_read(struct email_net *n, void *buf, size_t len)
{
	if (n->roff < n->rlen) {
		size_t k = n->rlen - n->roff;
		if (k > len)
			k = len;
		memcpy(buf, n->rbuf + n->roff, k);
		n->roff += k;
		return (ssize_t)k;
	}
	return raw_read(n, buf, len);
}

ssize_t
email_net_write(struct email_net *n, const void *buf, size_t len)
{
	const char *p = buf;
	size_t left = len;
	if (n->dead)
		return -1;
	while (left > 0) {
		ssize_t w;
		if (n->ssl != NULL) {
			ERR_clear_error();
			int k = SSL_write(n->ssl, p, left > 65536 ? 65536 :
			    (int)left);
			if (k > 0) {
				w = k;
			} else {
				int e = SSL_get_error(n->ssl, k);
				if ((e == SSL_ERROR_WANT_READ ||
				    e == SSL_ERROR_WANT_WRITE) &&
				    wait_fd(n, e == SSL_ERROR_WANT_READ ?
				    POLLIN : POLLOUT) == 1)
					continue;
				if (n->error[0] == '\0')
					ssl_error(n->error, sizeof(n->error),
					    "TLS write");
				return -1;
			}
		} else {
			w = write(n->fd, p, left);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0 && errno == EAGAIN) {
				if (wait_fd(n, POLLOUT) != 1)
					return -1;
				continue;
			}
			if (w < 0) {
				snprintf(n->error, sizeof(n->error),
				    "write: %s", strerror(errno));
				return -1;
			}
		}
		p += w;
		left -= (size_t)w;
	}
	return (ssize_t)len;
}

int
email_net_read_line(struct email_net *n, char *buf, size_t max)
{
	size_t o = 0;
	for (;;) {
		if (n->roff == n->rlen) {
			ssize_t r = raw_read(n, n->rbuf, sizeof(n->rbuf));
			if (r <= 0) {
				if (r == 0)
					snprintf(n->error, sizeof(n->error),
					    "the server closed the "
					    "connection");
				return -1;
			}
			n->rlen = (size_t)r;
			n->roff = 0;
		}
		char c = n->rbuf[n->roff++];
		if (c == '\n') {
			if (o > 0 && buf[o - 1] == '\r')
				o--;
			buf[o] = '\0';
			return (int)o;
		}
		if (o + 1 >= max) {
			snprintf(n->error, sizeof(n->error), "the server sent "
			    "a line longer than %zu bytes", max);
			return -1;
		}
		buf[o++] = c;
	}
}

int
email_net_pending(struct email_net *n)
{
	int k = (int)(n->rlen - n->roff);
	if (n->ssl != NULL)
		k += SSL_pending(n->ssl);
	return k;
}

int
email_net_readable_now(struct email_net *n)
{
	if (email_net_pending(n) > 0)
		return 1;
	struct pollfd p = { .fd = n->fd, .events = POLLIN };
	return poll(&p, 1, 0) == 1;
}

int
email_net_fd(const struct email_net *n)
{
	return n->fd;
}

void
email_net_set_budget(struct email_net *n, size_t budget)
{
	n->budget = budget;
	n->used = 0;
}

void
email_net_abandon(struct email_net *n)
{
	n->dead = 1;
}

void
email_net_set_timeout(struct email_net *n, int seconds)
{
	n->timeout = seconds;
}

size_t
email_net_used(const struct email_net *n)
{
	return n->used;
}

int
email_net_timed_out(const struct email_net *n)
{
	return n->timed_out;
}

void
email_net_set_deadline(struct email_net *n, int seconds)
{
	n->deadline_s = seconds;
	if (seconds <= 0) {
		n->deadline.tv_sec = 0;
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &n->deadline);
	n->deadline.tv_sec += seconds;
}

const char *
email_net_error(const struct email_net *n)
{
	return n->error[0] ? n->error : "connection error";
}

void
email_net_close(struct email_net *n)
{
	if (n == NULL)
		return;
	if (n->ssl != NULL) {
		/* No close_notify wait: the peer may be gone. */
		SSL_set_quiet_shutdown(n->ssl, 1);
		SSL_free(n->ssl);
	}
	if (n->fd >= 0)
		close(n->fd);
	free(n);
}
