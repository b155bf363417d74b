/*
 * The destination policy (see destination.h).
 *
 * The rules are read once from [causeway] (or set by
 * destination_configure()) and then only read, under a lock because
 * workers check too.  The machine's own addresses come from
 * getifaddrs(), refreshed at most once a minute.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>

#include "causeway.h"
#include "config.h"
#include "destination.h"
#include "log.h"
#include "xmalloc.h"

struct rule {
	struct rule *next;
	char *host;            /* a host name, or NULL for an address rule */
	int family;            /* AF_INET or AF_INET6 */
	unsigned char net[16];
	int prefix;
	int port;              /* 0: every port */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct rule *allow_rules, *deny_rules;
static int loaded;

/* Own addresses (IPv4 and IPv6 as 16 bytes, IPv4 mapped). */
static unsigned char (*own)[16];
static size_t nown;
static time_t own_at;

static void
rules_free(struct rule *r)
{
	while (r != NULL) {
		struct rule *n = r->next;
		free(r->host);
		free(r);
		r = n;
	}
}

/* One entry: "CIDR", "addr", "host", each with an optional ":port";
 * "[v6]" or "[v6/len]" before a port.  NULL when not valid. */
static struct rule *
rule_parse(const char *entry)
{
	char buf[300];
	if (strlen(entry) >= sizeof(buf) || *entry == '\0')
		return NULL;
	snprintf(buf, sizeof(buf), "%s", entry);
	struct rule *r = xcalloc(1, sizeof(*r));
	char *body = buf, *port = NULL;
	if (buf[0] == '[') {
		char *close = strchr(buf, ']');
		if (close == NULL)
			goto bad;
		*close = '\0';
		body = buf + 1;
		if (close[1] == ':')
			port = close + 2;
		else if (close[1] != '\0')
			goto bad;
	} else {
		char *c = strchr(buf, ':');
		if (c != NULL && strchr(c + 1, ':') == NULL) {
			*c = '\0';
			port = c + 1;
		}
	}
	if (port != NULL) {
		char *end;
		long p = strtol(port, &end, 10);
		if (*port == '\0' || *end != '\0' || p < 1 || p > 65535)
			goto bad;
		r->port = (int)p;
	}
	char *slash = strchr(body, '/');
	if (slash != NULL)
		*slash = '\0';
	if (inet_pton(AF_INET, body, r->net) == 1) {
		r->family = AF_INET;
		r->prefix = 32;
	} else if (inet_pton(AF_INET6, body, r->net) == 1) {
		r->family = AF_INET6;
		r->prefix = 128;
	} else if (slash == NULL && *body != '\0') {
		for (char *p = body; *p; p++) {
			if (!isalnum((unsigned char)*p) && *p != '-' &&
			    *p != '.' && *p != '_')
				goto bad;
			*p = (char)tolower((unsigned char)*p);
		}
		r->host = xstrdup(body);
		return r;
	} else {
		goto bad;
	}
	if (slash != NULL) {
		char *end;
		long l = strtol(slash + 1, &end, 10);
		if (slash[1] == '\0' || *end != '\0' || l < 0 || l > r->prefix)
			goto bad;
		r->prefix = (int)l;
	}
	return r;
bad:
	free(r);
	return NULL;
}

/* A comma-separated list into rules; -1 (and *bad the entry) on error. */
static int
rules_parse(const char *list, struct rule **out, char *bad, size_t badlen)
{
	*out = NULL;
	if (list == NULL)
		return 0;
	const char *p = list;
	while (*p != '\0') {
		while (*p == ',' || *p == ' ' || *p == '\t')
			p++;
		size_t n = strcspn(p, ",");
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n == 0)
			break;
		char *e = xstrndup(p, n);
		struct rule *r = rule_parse(e);
		if (r == NULL) {
			snprintf(bad, badlen, "%s", e);
			free(e);
			rules_free(*out);
			*out = NULL;
			return -1;
		}
		free(e);
		r->next = *out;
		*out = r;
		p += n;
	}
	return 0;
}

void
destination_validate(const struct config_section *sec,
    struct config_errors *errs)
{
	static const char *const keys[] = { "destinations_allow",
	    "destinations_deny" };
	for (size_t k = 0; k < 2; k++) {
		struct rule *r;
		char bad[300];
		if (rules_parse(config_str(sec, keys[k]), &r, bad,
		    sizeof(bad)) != 0)
			config_error(errs, config_section_file(sec),
			    config_key_line(sec, keys[k]), "%s: '%s' is not a "
			    "CIDR, an address or a host name (with an optional "
			    ":port)", keys[k], bad);
		rules_free(r);
	}
}

int
destination_configure(const char *allow, const char *deny)
{
	struct rule *a, *d;
	char bad[300];
	if (rules_parse(allow, &a, bad, sizeof(bad)) != 0)
		return -1;
	if (rules_parse(deny, &d, bad, sizeof(bad)) != 0) {
		rules_free(a);
		return -1;
	}
	pthread_mutex_lock(&lock);
	rules_free(allow_rules);
	rules_free(deny_rules);
	allow_rules = a;
	deny_rules = d;
	loaded = 1;
	pthread_mutex_unlock(&lock);
	return 0;
}

/* Under the lock: the rules of the configuration, once. */
static void
load_locked(void)
{
	if (loaded)
		return;
	loaded = 1;
	const struct config_section *g = cw != NULL && cw->config != NULL ?
	    config_section_find(cw->config, "causeway", NULL) : NULL;
	if (g == NULL)
		return;
	char bad[300];
	/* Validated at load: an error here cannot happen. */
	if (rules_parse(config_str(g, "destinations_allow"), &allow_rules,
	    bad, sizeof(bad)) != 0 || rules_parse(config_str(g,
	    "destinations_deny"), &deny_rules, bad, sizeof(bad)) != 0)
		log_error("destinations: '%s' is not valid", bad);
}

/* The address as 16 bytes (IPv4 mapped into IPv6) and whether it was
 * IPv4; -1 for another family. */
static int
addr16(const struct sockaddr *sa, unsigned char a[16], int *v4)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s = (const void *)sa;
		memset(a, 0, 10);
		a[10] = a[11] = 0xff;
		memcpy(a + 12, &s->sin_addr, 4);
		*v4 = 1;
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const void *)sa;
		memcpy(a, &s->sin6_addr, 16);
		static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0,
		    0, 0, 0, 0xff, 0xff };
		*v4 = memcmp(a, mapped, 12) == 0;
		return 0;
	}
	return -1;
}

static int
prefix_match(const unsigned char *a, const unsigned char *net, int bits)
{
	int bytes = bits / 8, rest = bits % 8;
	if (memcmp(a, net, (size_t)bytes) != 0)
		return 0;
	if (rest == 0)
		return 1;
	unsigned char m = (unsigned char)(0xff << (8 - rest));
	return (a[bytes] & m) == (net[bytes] & m);
}

/* a: 16 bytes; v4: it is an IPv4 address (mapped). */
static int
rule_matches(const struct rule *r, const char *host, const unsigned char *a,
    int v4, int port)
{
	if (r->port != 0 && r->port != port)
		return 0;
	if (r->host != NULL)
		return host != NULL && strcasecmp(r->host, host) == 0;
	if (r->family == AF_INET)
		return v4 && prefix_match(a + 12, r->net, r->prefix);
	return prefix_match(a, r->net, r->prefix);
}

/* IPv4 (network order bytes) in a range the default refuses. */
static int
v4_internal(const unsigned char *b)
{
	uint32_t x = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 |
	    (uint32_t)b[2] << 8 | b[3];
	static const struct { uint32_t net; int bits; } bad[] = {
		{ 0x00000000, 8 },     /* "this network" */
		{ 0x0a000000, 8 },     /* RFC 1918 */
		{ 0x64400000, 10 },    /* CGNAT */
		{ 0x7f000000, 8 },     /* loopback */
		{ 0xa9fe0000, 16 },    /* link-local */
		{ 0xac100000, 12 },    /* RFC 1918 */
		{ 0xc0000000, 24 },    /* IETF protocol assignments */
		{ 0xc0a80000, 16 },    /* RFC 1918 */
		{ 0xc6120000, 15 },    /* benchmarking */
		{ 0xe0000000, 4 },     /* multicast */
		{ 0xf0000000, 4 },     /* reserved, broadcast */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if ((x >> (32 - bad[i].bits)) == (bad[i].net >> (32 -
		    bad[i].bits)))
			return 1;
	return 0;
}

static int
v6_internal(const unsigned char *a)
{
	static const unsigned char zero[16];
	if (memcmp(a, zero, 15) == 0 && (a[15] == 0 || a[15] == 1))
		return 1;                          /* ::, ::1 */
	if ((a[0] & 0xfe) == 0xfc)
		return 1;                          /* ULA fc00::/7 */
	if (a[0] == 0xfe && (a[1] & 0x80) == 0x80)
		return 1;                          /* fe80::/10, fec0::/10 */
	if (a[0] == 0xff)
		return 1;                          /* multicast */
	if (memcmp(a, zero, 12) == 0)
		return 1;                          /* IPv4-compatible */
	static const unsigned char nat64[12] = { 0, 0x64, 0xff, 0x9b };
	if (memcmp(a, nat64, 12) == 0)
		return v4_internal(a + 12);
	if (a[0] == 0x20 && a[1] == 0x02)
		return v4_internal(a + 2);         /* 6to4 */
	static const unsigned char discard[8] = { 0x01, 0x00 };
	if (memcmp(a, discard, 8) == 0)
		return 1;                          /* 100::/64 */
	return 0;
}

/* Under the lock. */
static int
own_address_locked(const unsigned char *a)
{
	time_t now = time(NULL);
	if (own == NULL || now - own_at >= 60) {
		struct ifaddrs *ifa = NULL;
		free(own);
		own = NULL;
		nown = 0;
		own_at = now;
		if (getifaddrs(&ifa) == 0) {
			for (struct ifaddrs *i = ifa; i != NULL; i = i->ifa_next) {
				unsigned char b[16];
				int v4;
				if (i->ifa_addr == NULL ||
				    addr16(i->ifa_addr, b, &v4) != 0)
					continue;
				own = xreallocarray(own, nown + 1,
				    sizeof(*own));
				memcpy(own[nown++], b, 16);
			}
			freeifaddrs(ifa);
		}
	}
	for (size_t i = 0; i < nown; i++)
		if (memcmp(own[i], a, 16) == 0)
			return 1;
	return 0;
}

static int
usual_port(enum destination_proto proto, int port)
{
	switch (proto) {
	case DESTINATION_IMAP:
		return port == 143 || port == 993;
	case DESTINATION_SMTP:
		return port == 25 || port == 465 || port == 587;
	case DESTINATION_IRC:
		return (port >= 6660 && port <= 6669) || port == 6697 ||
		    port == 7000 || port == 7070;
	}
	return 0;
}

int
destination_allowed(const char *host, const struct sockaddr *sa, int port,
    enum destination_proto proto)
{
	unsigned char a[16];
	int v4;
	if (addr16(sa, a, &v4) != 0)
		return 0;
	int ok = -1;
	pthread_mutex_lock(&lock);
	load_locked();
	for (struct rule *r = deny_rules; r != NULL && ok < 0; r = r->next)
		if (rule_matches(r, host, a, v4, port))
			ok = 0;
	for (struct rule *r = allow_rules; r != NULL && ok < 0; r = r->next)
		if (rule_matches(r, host, a, v4, port))
			ok = 1;
	if (ok < 0)
		ok = !(v4 ? v4_internal(a + 12) : v6_internal(a)) &&
		    !own_address_locked(a) && usual_port(proto, port);
	pthread_mutex_unlock(&lock);
	return ok;
}

static void
fill(struct destination *d, const struct sockaddr *sa, socklen_t len,
    int port)
{
	memset(d, 0, sizeof(*d));
	memcpy(&d->addr, sa, len);
	d->len = len;
	if (sa->sa_family == AF_INET) {
		struct sockaddr_in *s = (void *)&d->addr;
		s->sin_port = htons((uint16_t)port);
		inet_ntop(AF_INET, &s->sin_addr, d->text, sizeof(d->text));
	} else {
		struct sockaddr_in6 *s = (void *)&d->addr;
		s->sin6_port = htons((uint16_t)port);
		inet_ntop(AF_INET6, &s->sin6_addr, d->text, sizeof(d->text));
	}
}

/* The first allowed address of res; -1 when none is. */
static int
pick(const char *host, const struct evutil_addrinfo *res, int port,
    enum destination_proto proto, struct destination *out)
{
	for (const struct evutil_addrinfo *ai = res; ai != NULL;
	    ai = ai->ai_next) {
		if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
		    ai->ai_addrlen > sizeof(out->addr))
			continue;
		if (destination_allowed(host, ai->ai_addr, port, proto)) {
			fill(out, ai->ai_addr, ai->ai_addrlen, port);
			return 0;
		}
	}
	return -1;
}

/* What to look up for host: RFC 6761 6.3 makes "localhost" and names
 * under it the loopback address whatever DNS says (as the operator's
 * IRC servers are resolved); the policy then judges that address. */
static const char *
lookup_name(const char *host)
{
	size_t hl = strlen(host);
	if (strcasecmp(host, "localhost") == 0 || (hl > 10 &&
	    strcasecmp(host + hl - 10, ".localhost") == 0))
		return "127.0.0.1";
	return host;
}

int
destination_resolve(const char *host, int port, enum destination_proto proto,
    struct destination *out, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
	    .ai_socktype = SOCK_STREAM }, *res = NULL;
	int r = getaddrinfo(lookup_name(host), NULL, &hints, &res);
	if (r == 0)
		r = pick(host, (const struct evutil_addrinfo *)res, port, proto,
		    out);
	if (res != NULL)
		freeaddrinfo(res);
	if (r != 0) {
		log_info("destinations: %s port %d refused or not found", host,
		    port);
		snprintf(err, errlen, "%s", DESTINATION_REFUSED);
		return -1;
	}
	return 0;
}

struct destination_req {
	char *host;
	int port;
	enum destination_proto proto;
	destination_cb cb;
	void *arg;
	struct evdns_getaddrinfo_request *dns;
	struct event *fire;
	int done, ok, cancelled;
	struct destination d;
};

static void
req_free(struct destination_req *q)
{
	if (q->fire != NULL)
		event_free(q->fire);
	free(q->host);
	free(q);
}

static void
fire_cb(evutil_socket_t fd, short what, void *arg)
{
	struct destination_req *q = arg;
	(void)fd;
	(void)what;
	if (!q->ok)
		log_info("destinations: %s port %d refused or not found",
		    q->host, q->port);
	q->cb(q->arg, q->ok ? &q->d : NULL, q->ok ? NULL :
	    DESTINATION_REFUSED);
	req_free(q);
}

static void
dns_cb(int result, struct evutil_addrinfo *res, void *arg)
{
	struct destination_req *q = arg;
	q->dns = NULL;
	if (q->cancelled) {
		if (res != NULL)
			evutil_freeaddrinfo(res);
		req_free(q);
		return;
	}
	q->ok = result == 0 && pick(q->host, res, q->port, q->proto,
	    &q->d) == 0;
	if (res != NULL)
		evutil_freeaddrinfo(res);
	q->done = 1;
	/* Always later, from the loop: evdns answers an address literal
	 * before evdns_getaddrinfo() has returned. */
	event_active(q->fire, 0, 0);
}

struct destination_req *
destination_resolve_async(struct evdns_base *dns, const char *host, int port,
    enum destination_proto proto, destination_cb cb, void *arg)
{
	struct destination_req *q = xcalloc(1, sizeof(*q));
	q->host = xstrdup(host);
	q->port = port;
	q->proto = proto;
	q->cb = cb;
	q->arg = arg;
	q->fire = event_new(cw->base, -1, 0, fire_cb, q);
	if (q->fire == NULL)
		log_fatal("destinations: cannot create an event");
	struct evutil_addrinfo hints = { .ai_family = AF_UNSPEC,
	    .ai_socktype = SOCK_STREAM };
	struct evdns_getaddrinfo_request *r = evdns_getaddrinfo(dns,
	    lookup_name(host), NULL, &hints, dns_cb, q);
	if (!q->done)
		q->dns = r;
	return q;
}

void
destination_cancel(struct destination_req *q)
{
	if (q == NULL)
		return;
	if (q->dns != NULL) {
		/* Its callback runs with EVUTIL_EAI_CANCEL and frees q. */
		q->cancelled = 1;
		evdns_getaddrinfo_cancel(q->dns);
		return;
	}
	req_free(q);
}
