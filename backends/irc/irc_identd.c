/*
 * RFC 1413 identd for causeway's IRC connections (see irc_identd.h).
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "irc_identd.h"
#include "log.h"
#include "xmalloc.h"

#define BUCKETS 4096

/* An address as compared: IPv4 and IPv4-mapped IPv6 are the same. */
struct ip {
	int family;		/* AF_INET, AF_INET6; 0: none */
	unsigned char a[16];
};

struct entry {
	struct ip laddr, raddr;
	unsigned lport, rport;
	char *user;
	struct entry *next;
};

static struct {
	struct evconnlistener *listener;
	char *addr;
	int port;
	unsigned clients;
	struct entry *table[BUCKETS];
} identd;

static unsigned
bucket(unsigned lport, unsigned rport)
{
	return (lport * 31u + rport) % BUCKETS;
}

/* The address and port of sa into ip and *port; -1 for another family. */
static int
ip_of(const struct sockaddr *sa, struct ip *ip, unsigned *port)
{
	memset(ip, 0, sizeof(*ip));
	if (sa == NULL)
		return -1;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)sa;
		ip->family = AF_INET;
		memcpy(ip->a, &s4->sin_addr, 4);
		*port = ntohs(s4->sin_port);
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)sa;
		*port = ntohs(s6->sin6_port);
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			ip->family = AF_INET;
			memcpy(ip->a, s6->sin6_addr.s6_addr + 12, 4);
		} else {
			ip->family = AF_INET6;
			memcpy(ip->a, &s6->sin6_addr, 16);
		}
		return 0;
	}
	return -1;
}

static int
ip_eq(const struct ip *a, const struct ip *b)
{
	return a->family == b->family && memcmp(a->a, b->a, 16) == 0;
}

static struct entry **
slot(const struct ip *laddr, unsigned lport, const struct ip *raddr,
    unsigned rport)
{
	struct entry **e = &identd.table[bucket(lport, rport)];
	while (*e != NULL && ((*e)->lport != lport || (*e)->rport != rport ||
	    !ip_eq(&(*e)->laddr, laddr) || !ip_eq(&(*e)->raddr, raddr)))
		e = &(*e)->next;
	return e;
}

void
identd_add(const struct sockaddr *local, const struct sockaddr *remote,
    const char *user)
{
	struct ip la, ra;
	unsigned lport, rport;
	if (ip_of(local, &la, &lport) != 0 || ip_of(remote, &ra, &rport) != 0)
		return;
	struct entry **e = slot(&la, lport, &ra, rport);
	if (*e == NULL) {
		*e = xcalloc(1, sizeof(**e));
		(*e)->laddr = la;
		(*e)->raddr = ra;
		(*e)->lport = lport;
		(*e)->rport = rport;
	}
	free((*e)->user);
	(*e)->user = xstrdup(user);
}

void
identd_remove(const struct sockaddr *local, const struct sockaddr *remote)
{
	struct ip la, ra;
	unsigned lport, rport;
	if (ip_of(local, &la, &lport) != 0 || ip_of(remote, &ra, &rport) != 0)
		return;
	struct entry **e = slot(&la, lport, &ra, rport);
	if (*e == NULL)
		return;
	struct entry *gone = *e;
	*e = gone->next;
	free(gone->user);
	free(gone);
}

/* One port number: digits only, 1..65535; *s moves past it. */
static int
parse_port(const char **s, unsigned *port)
{
	const char *p = *s;
	unsigned long v = 0;
	while (*p == ' ' || *p == '\t')
		p++;
	if (!isdigit((unsigned char)*p))
		return -1;
	while (isdigit((unsigned char)*p)) {
		v = v * 10 + (unsigned long)(*p - '0');
		if (v > 65535)
			return -1;
		p++;
	}
	while (*p == ' ' || *p == '\t')
		p++;
	if (v == 0)
		return -1;
	*port = (unsigned)v;
	*s = p;
	return 0;
}

int
identd_parse(const char *line, unsigned *lport, unsigned *rport)
{
	const char *p = line;
	if (parse_port(&p, lport) != 0 || *p++ != ',' ||
	    parse_port(&p, rport) != 0 || *p != '\0')
		return -1;
	return 0;
}

void
identd_answer(const char *line, const struct sockaddr *local,
    const struct sockaddr *peer, char *buf, size_t len)
{
	unsigned lport, rport, ignored;
	struct ip la, ra;
	if (identd_parse(line, &lport, &rport) != 0) {
		/* RFC 1413: ports that make no sense are INVALID-PORT; we
		 * cannot echo a line we could not read. */
		snprintf(buf, len, "0 , 0 : ERROR : INVALID-PORT\r\n");
		return;
	}
	/* The ports come from the line, the addresses from the query's
	 * own connection: only the far end of a connection hears who owns
	 * it. */
	struct entry *e = NULL;
	if (ip_of(local, &la, &ignored) == 0 && ip_of(peer, &ra,
	    &ignored) == 0)
		e = *slot(&la, lport, &ra, rport);
	if (e == NULL)
		snprintf(buf, len, "%u , %u : ERROR : NO-USER\r\n", lport,
		    rport);
	else
		snprintf(buf, len, "%u , %u : USERID : UNIX : %s\r\n", lport,
		    rport, e->user);
}

static void
client_done(struct bufferevent *bev)
{
	bufferevent_free(bev);
	identd.clients--;
}

static void
client_written(struct bufferevent *bev, void *arg)
{
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		client_done(bev);
}

static void client_event(struct bufferevent *bev, short what, void *arg);

static void
client_read(struct bufferevent *bev, void *arg)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t n = 0;
	char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF);
	if (line == NULL) {
		if (evbuffer_get_length(in) > IDENTD_LINE_MAX)
			client_done(bev);
		return;
	}
	char answer[128 + IDENTD_LINE_MAX];
	struct sockaddr_storage local, peer;
	socklen_t llen = sizeof(local), plen = sizeof(peer);
	int fd = bufferevent_getfd(bev);
	if (getsockname(fd, (struct sockaddr *)&local, &llen) != 0 ||
	    getpeername(fd, (struct sockaddr *)&peer, &plen) != 0) {
		free(line);
		client_done(bev);
		return;
	}
	/* NUL bytes inside the line end it early: harmless, it then
	 * fails to parse or names other ports. */
	identd_answer(n <= IDENTD_LINE_MAX ? line : "",
	    (struct sockaddr *)&local, (struct sockaddr *)&peer, answer,
	    sizeof(answer));
	free(line);
	bufferevent_disable(bev, EV_READ);
	/* An error while the answer drains (a reset) must free it too. */
	bufferevent_setcb(bev, NULL, client_written, client_event, NULL);
	bufferevent_write(bev, answer, strlen(answer));
}

static void
client_event(struct bufferevent *bev, short what, void *arg)
{
	/* EOF, error or timeout: nothing to answer. */
	client_done(bev);
}

static void
accepted(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	if (identd.clients >= IDENTD_CLIENTS_MAX) {
		evutil_closesocket(fd);
		return;
	}
	struct bufferevent *bev = bufferevent_socket_new(
	    evconnlistener_get_base(l), fd, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		evutil_closesocket(fd);
		return;
	}
	identd.clients++;
	struct timeval tv = { IDENTD_TIMEOUT, 0 };
	bufferevent_set_timeouts(bev, &tv, &tv);
	bufferevent_setcb(bev, client_read, NULL, client_event, NULL);
	bufferevent_enable(bev, EV_READ);
}

int
identd_listen(struct event_base *base, const char *addr)
{
	if (identd.listener != NULL && strcmp(identd.addr, addr) == 0)
		return 0;
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);
	/* libevent's parser refuses port 0 (any free port, for tests):
	 * parse with port 1 and put the 0 back. */
	size_t alen = strlen(addr);
	int any_port = alen > 2 && strcmp(addr + alen - 2, ":0") == 0;
	char *parsed = any_port ? xasprintf("%.*s:1", (int)(alen - 2), addr) :
	    xstrdup(addr);
	int bad = evutil_parse_sockaddr_port(parsed, (struct sockaddr *)&ss,
	    &sslen);
	free(parsed);
	if (bad != 0) {
		log_error("identd: %s is not an address and port", addr);
		return -1;
	}
	if (any_port && ss.ss_family == AF_INET6)
		((struct sockaddr_in6 *)&ss)->sin6_port = 0;
	else if (any_port)
		((struct sockaddr_in *)&ss)->sin_port = 0;
	struct evconnlistener *l = evconnlistener_new_bind(base, accepted,
	    NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
	    LEV_OPT_CLOSE_ON_EXEC, 16, (struct sockaddr *)&ss, sslen);
	if (l == NULL) {
		log_error("identd: cannot listen on %s: %s", addr,
		    strerror(errno));
		return -1;
	}
	if (identd.listener != NULL)
		evconnlistener_free(identd.listener);
	free(identd.addr);
	identd.listener = l;
	identd.addr = xstrdup(addr);
	struct sockaddr_storage bound;
	socklen_t blen = sizeof(bound);
	identd.port = 0;
	if (getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&bound,
	    &blen) == 0)
		identd.port = bound.ss_family == AF_INET6 ?
		    ntohs(((struct sockaddr_in6 *)&bound)->sin6_port) :
		    ntohs(((struct sockaddr_in *)&bound)->sin_port);
	log_info("identd: listening on %s (port %d)", addr, identd.port);
	return 0;
}

int
identd_port(void)
{
	return identd.port;
}

void
identd_stop(void)
{
	if (identd.listener != NULL)
		evconnlistener_free(identd.listener);
	identd.listener = NULL;
	free(identd.addr);
	identd.addr = NULL;
	identd.port = 0;
	for (size_t i = 0; i < BUCKETS; i++) {
		while (identd.table[i] != NULL) {
			struct entry *e = identd.table[i];
			identd.table[i] = e->next;
			free(e->user);
			free(e);
		}
	}
}
