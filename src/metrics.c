/*
 * The metrics registry and its HTTP endpoint (see metrics.h).
 *
 * Registry: families keyed by name (two files may declare the same
 * family), each with its series keyed by label values, both in the order
 * they first appeared so a scrape reads the same from one time to the
 * next.  The counts are small (tens of families, a few series per
 * component), so lists are searched linearly.
 *
 * Endpoint: one listening socket, and per connection one request:
 *
 *   accepted --request line + headers (<= REQUEST_MAX bytes)--> answered
 *   answered --output drained--> closed
 *   any state --REQUEST_DEADLINE seconds, EOF, error, too long--> closed
 *
 * libevent 2.1's evhttp (Debian 12) has no connection cap and no way to
 * see a connection close that never sent a request, so the cap could
 * not be kept with it; this endpoint is its own small server on
 * bufferevents, which answers GET /metrics and nothing else.  At the cap
 * the oldest connection that has not sent its request is closed to make
 * room, so idle connections can never lock a scraper out.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "log.h"
#include "metrics.h"
#include "xmalloc.h"

/* ---- registry ---- */

/* Upper bounds of the histogram buckets, in seconds: from a write on a
 * socket (IRC) to a mail that waited for its server. */
static const double bucket_bounds[] = {
	0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300,
};
#define NBUCKETS (sizeof(bucket_bounds) / sizeof(bucket_bounds[0]))

struct series {
	struct series *next;
	char *values[METRICS_MAX_LABELS];
	double value;                      /* counter, gauge; histogram sum */
	uint64_t count;                    /* histogram observations */
	uint64_t buckets[NBUCKETS];        /* per bucket, not cumulative */
};

struct family {
	const struct metrics_family *def;
	size_t nlabels;
	struct series *first, **tail;
};

static struct family *families;
static size_t nfamilies;

struct collector {
	metrics_collector fn;
	void *arg;
};
static struct collector *collectors;
static size_t ncollectors;

static time_t started;

static struct family *
family_get(const struct metrics_family *def)
{
	for (size_t i = 0; i < nfamilies; i++)
		if (strcmp(families[i].def->name, def->name) == 0)
			return &families[i];
	families = xreallocarray(families, nfamilies + 1, sizeof(*families));
	struct family *f = &families[nfamilies++];
	f->def = def;
	f->nlabels = 0;
	while (f->nlabels < METRICS_MAX_LABELS && def->labels[f->nlabels])
		f->nlabels++;
	f->first = NULL;
	f->tail = &f->first;
	if (started == 0)
		started = time(NULL);
	return f;
}

/* The series of def with the label values in ap; created when create. */
static struct series *
series_get(const struct metrics_family *def, va_list ap, int create)
{
	struct family *f = family_get(def);
	const char *v[METRICS_MAX_LABELS];
	for (size_t i = 0; i < f->nlabels; i++) {
		v[i] = va_arg(ap, const char *);
		if (v[i] == NULL)
			v[i] = "";
	}
	for (struct series *s = f->first; s != NULL; s = s->next) {
		size_t i = 0;
		while (i < f->nlabels && strcmp(s->values[i], v[i]) == 0)
			i++;
		if (i == f->nlabels)
			return s;
	}
	if (!create)
		return NULL;
	struct series *s = xcalloc(1, sizeof(*s));
	for (size_t i = 0; i < f->nlabels; i++)
		s->values[i] = xstrdup(v[i]);
	*f->tail = s;
	f->tail = &s->next;
	return s;
}

void
metrics_add(const struct metrics_family *f, uint64_t n, ...)
{
	va_list ap;
	va_start(ap, n);
	series_get(f, ap, 1)->value += (double)n;
	va_end(ap);
}

void
metrics_set(const struct metrics_family *f, double v, ...)
{
	va_list ap;
	va_start(ap, v);
	series_get(f, ap, 1)->value = v;
	va_end(ap);
}

void
metrics_adjust(const struct metrics_family *f, double delta, ...)
{
	va_list ap;
	va_start(ap, delta);
	series_get(f, ap, 1)->value += delta;
	va_end(ap);
}

static const struct metrics_family legacy_connections = {
	.name = "causeway_legacy_connections",
	.help = "Connections open to legacy networks, per backend.",
	.type = METRICS_GAUGE, .labels = { "component", "backend" },
};

void
metrics_legacy_connection(const char *component, const char *backend,
    int delta)
{
	metrics_adjust(&legacy_connections, delta, component, backend);
}

static const struct metrics_family delivery = {
	.name = "causeway_delivery_seconds",
	.help = "From a user's message to the legacy network's acceptance "
	"(IRC: written to the server; mail and SMS: reported delivered).",
	.type = METRICS_HISTOGRAM, .labels = { "component", "backend" },
};
static const struct metrics_family send_failures = {
	.name = "causeway_send_failures_total",
	.help = "Messages to a legacy network that failed, by error condition.",
	.type = METRICS_COUNTER,
	.labels = { "component", "backend", "condition" },
};

void
metrics_delivery(const char *component, const char *backend, double seconds)
{
	metrics_observe(&delivery, seconds, component, backend);
}

void
metrics_send_failure(const char *component, const char *backend,
    const char *condition)
{
	metrics_add(&send_failures, 1, component, backend,
	    condition != NULL ? condition : "undefined-condition");
}

static const struct metrics_family outbox = {
	.name = "causeway_outbox_messages",
	.help = "Messages waiting in a backend's outbox for the legacy "
	"network.", .type = METRICS_GAUGE, .labels = { "component", "backend" },
};

void
metrics_outbox(const char *component, const char *backend, int delta)
{
	metrics_adjust(&outbox, delta, component, backend);
}

void
metrics_observe(const struct metrics_family *f, double v, ...)
{
	va_list ap;
	va_start(ap, v);
	struct series *s = series_get(f, ap, 1);
	va_end(ap);
	if (!(v >= 0))             /* also NaN */
		v = 0;
	s->value += v;
	s->count++;
	for (size_t i = 0; i < NBUCKETS; i++) {
		if (v <= bucket_bounds[i]) {
			s->buckets[i]++;
			break;
		}
	}
}

double
metrics_value(const struct metrics_family *f, ...)
{
	va_list ap;
	va_start(ap, f);
	struct series *s = series_get(f, ap, 0);
	va_end(ap);
	return s != NULL ? s->value : 0;
}

void
metrics_add_collector(metrics_collector fn, void *arg)
{
	collectors = xreallocarray(collectors, ncollectors + 1,
	    sizeof(*collectors));
	collectors[ncollectors++] = (struct collector){ fn, arg };
}

void
metrics_remove_collector(metrics_collector fn, void *arg)
{
	for (size_t i = 0; i < ncollectors; i++) {
		if (collectors[i].fn == fn && collectors[i].arg == arg) {
			memmove(&collectors[i], &collectors[i + 1],
			    (ncollectors - i - 1) * sizeof(*collectors));
			ncollectors--;
			return;
		}
	}
}

static const struct metrics_family stanzas_in = {
	.name = "causeway_component_stanzas_received_total",
	.help = "Stanzas received from the XMPP server, by kind.",
	.type = METRICS_COUNTER, .labels = { "component", "kind" },
};
static const struct metrics_family stanzas_out = {
	.name = "causeway_component_stanzas_sent_total",
	.help = "Stanzas written to the XMPP server, by kind.",
	.type = METRICS_COUNTER, .labels = { "component", "kind" },
};

void
metrics_stanza(const char *component, int outgoing, const char *kind)
{
	if (kind == NULL || (strcmp(kind, "message") != 0 &&
	    strcmp(kind, "presence") != 0 && strcmp(kind, "iq") != 0))
		kind = "other";
	metrics_add(outgoing ? &stanzas_out : &stanzas_in, 1, component,
	    kind);
}

const char *
metrics_kind_of_xml(const char *xml)
{
	static const char *const kinds[] = { "message", "presence", "iq" };
	if (xml == NULL || *xml != '<')
		return "other";
	for (size_t i = 0; i < 3; i++) {
		size_t n = strlen(kinds[i]);
		if (strncmp(xml + 1, kinds[i], n) == 0 &&
		    (xml[n + 1] == ' ' || xml[n + 1] == '>' ||
		    xml[n + 1] == '/'))
			return kinds[i];
	}
	return "other";
}

/* ---- process figures ---- */

static const struct metrics_family process_rss = {
	.name = "process_resident_memory_bytes",
	.help = "Resident memory size in bytes.", .type = METRICS_GAUGE,
};
static const struct metrics_family process_fds = {
	.name = "process_open_fds",
	.help = "Number of open file descriptors.", .type = METRICS_GAUGE,
};
static const struct metrics_family process_max_fds = {
	.name = "process_max_fds",
	.help = "Maximum number of open file descriptors.",
	.type = METRICS_GAUGE,
};
static const struct metrics_family process_start = {
	.name = "process_start_time_seconds",
	.help = "Start time of the process since the Unix epoch in seconds.",
	.type = METRICS_GAUGE,
};
static const struct metrics_family uptime = {
	.name = "causeway_uptime_seconds",
	.help = "Seconds since causeway started.", .type = METRICS_GAUGE,
};

static void
collect_process(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	long pages, resident;
	if (f != NULL) {
		if (fscanf(f, "%ld %ld", &pages, &resident) == 2)
			metrics_set(&process_rss,
			    (double)resident * (double)sysconf(_SC_PAGESIZE));
		fclose(f);
	}
	DIR *d = opendir("/proc/self/fd");
	if (d != NULL) {
		long n = 0;
		struct dirent *e;
		while ((e = readdir(d)) != NULL)
			if (e->d_name[0] != '.')
				n++;
		closedir(d);
		metrics_set(&process_fds, (double)(n - 1)); /* not d's own */
	}
	metrics_set(&process_max_fds, (double)sysconf(_SC_OPEN_MAX));
	metrics_set(&process_start, (double)started);
	metrics_set(&uptime, (double)(time(NULL) - started));
}

void
metrics_collect(void)
{
	if (started == 0)
		started = time(NULL);
	collect_process();
	for (size_t i = 0; i < ncollectors; i++)
		collectors[i].fn(collectors[i].arg);
}

/* ---- exposition ---- */

static void
write_number(struct evbuffer *out, double v)
{
	if (isinf(v))
		evbuffer_add_printf(out, v > 0 ? "+Inf" : "-Inf");
	else if (v == floor(v) && fabs(v) < 1e15)
		evbuffer_add_printf(out, "%.0f", v);
	else
		evbuffer_add_printf(out, "%.9g", v);
}

/* A label value: backslash, double quote and newline escaped. */
static void
write_label_value(struct evbuffer *out, const char *v)
{
	for (; *v != '\0'; v++) {
		if (*v == '\\' || *v == '"')
			evbuffer_add_printf(out, "\\%c", *v);
		else if (*v == '\n')
			evbuffer_add(out, "\\n", 2);
		else
			evbuffer_add(out, v, 1);
	}
}

/* name{labels[,le="x"]} */
static void
write_name(struct evbuffer *out, const struct family *f, const char *suffix,
    const struct series *s, const char *le)
{
	evbuffer_add_printf(out, "%s%s", f->def->name, suffix);
	if (f->nlabels == 0 && le == NULL)
		return;
	evbuffer_add(out, "{", 1);
	for (size_t i = 0; i < f->nlabels; i++) {
		evbuffer_add_printf(out, "%s%s=\"", i ? "," : "",
		    f->def->labels[i]);
		write_label_value(out, s->values[i]);
		evbuffer_add(out, "\"", 1);
	}
	if (le != NULL)
		evbuffer_add_printf(out, "%sle=\"%s\"", f->nlabels ? "," : "",
		    le);
	evbuffer_add(out, "}", 1);
}

void
metrics_write(struct evbuffer *out)
{
	static const char *const types[] = {
		[METRICS_COUNTER] = "counter", [METRICS_GAUGE] = "gauge",
		[METRICS_HISTOGRAM] = "histogram",
	};
	for (size_t i = 0; i < nfamilies; i++) {
		const struct family *f = &families[i];
		if (f->first == NULL)
			continue;
		evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n",
		    f->def->name, f->def->help, f->def->name,
		    types[f->def->type]);
		for (const struct series *s = f->first; s; s = s->next) {
			if (f->def->type != METRICS_HISTOGRAM) {
				write_name(out, f, "", s, NULL);
				evbuffer_add(out, " ", 1);
				write_number(out, s->value);
				evbuffer_add(out, "\n", 1);
				continue;
			}
			uint64_t cum = 0;
			char le[32];
			for (size_t b = 0; b < NBUCKETS; b++) {
				cum += s->buckets[b];
				snprintf(le, sizeof(le), "%g", bucket_bounds[b]);
				write_name(out, f, "_bucket", s, le);
				evbuffer_add_printf(out, " %llu\n",
				    (unsigned long long)cum);
			}
			write_name(out, f, "_bucket", s, "+Inf");
			evbuffer_add_printf(out, " %llu\n",
			    (unsigned long long)s->count);
			write_name(out, f, "_sum", s, NULL);
			evbuffer_add(out, " ", 1);
			write_number(out, s->value);
			evbuffer_add(out, "\n", 1);
			write_name(out, f, "_count", s, NULL);
			evbuffer_add_printf(out, " %llu\n",
			    (unsigned long long)s->count);
		}
	}
}

char *
metrics_text(const char *component)
{
	struct evbuffer *all = evbuffer_new();
	if (all == NULL)
		log_fatal("out of memory");
	metrics_collect();
	metrics_write(all);
	/* Keep the sample lines of the process and of this component. */
	size_t cap = evbuffer_get_length(all) + 1, len = 0;
	char *text = xmalloc(cap);
	size_t n;
	char *line;
	while ((line = evbuffer_readln(all, &n, EVBUFFER_EOL_LF)) != NULL) {
		int keep = line[0] != '#';
		if (keep && component != NULL) {
			const char *brace = strchr(line, '{');
			char *want = xasprintf("component=\"%s\"", component);
			keep = brace == NULL || strstr(brace, "component=\"") ==
			    NULL || strstr(brace, want) != NULL;
			free(want);
		}
		if (keep) {
			memcpy(text + len, line, n);
			len += n;
			text[len++] = '\n';
		}
		free(line);
	}
	evbuffer_free(all);
	if (len > 0)
		len--;              /* no newline after the last line */
	text[len] = '\0';
	return text;
}

void
metrics_free(void)
{
	for (size_t i = 0; i < nfamilies; i++) {
		struct series *s, *next;
		for (s = families[i].first; s != NULL; s = next) {
			next = s->next;
			for (size_t k = 0; k < families[i].nlabels; k++)
				free(s->values[k]);
			free(s);
		}
	}
	free(families);
	families = NULL;
	nfamilies = 0;
	free(collectors);
	collectors = NULL;
	ncollectors = 0;
}

/* ---- the endpoint ---- */

#define REQUEST_MAX 8192        /* request line and headers */
#define REQUEST_DEADLINE 10     /* seconds to send them, and to read us */

struct mconn {
	TAILQ_ENTRY(mconn) entry;
	struct bufferevent *bev;
	int answered;
};
TAILQ_HEAD(mconn_list, mconn);

static struct {
	struct evconnlistener *listener;
	struct mconn_list conns;      /* oldest first */
	unsigned nconns, max_conns;
	uint64_t evicted;
} ep = { .conns = TAILQ_HEAD_INITIALIZER(ep.conns) };

static const struct metrics_family http_requests = {
	.name = "causeway_metrics_requests_total",
	.help = "Requests to the metrics endpoint, by HTTP status.",
	.type = METRICS_COUNTER, .labels = { "code" },
};
static const struct metrics_family http_evicted = {
	.name = "causeway_metrics_connections_evicted_total",
	.help = "Idle metrics connections closed to stay under the cap.",
	.type = METRICS_COUNTER,
};

static void
conn_close(struct mconn *m)
{
	TAILQ_REMOVE(&ep.conns, m, entry);
	ep.nconns--;
	bufferevent_free(m->bev);
	free(m);
}

/* The answer; head_only: the headers a GET would get, no body. */
static void
respond(struct mconn *m, int code, const char *reason,
    struct evbuffer *body, int head_only)
{
	struct evbuffer *out = bufferevent_get_output(m->bev);
	char code_s[8];
	snprintf(code_s, sizeof(code_s), "%d", code);
	metrics_add(&http_requests, 1, code_s);
	size_t len = body != NULL ? evbuffer_get_length(body) : 0;
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n"
	    "Content-Type: %s\r\nContent-Length: %zu\r\n"
	    "Connection: close\r\n\r\n", code, reason,
	    code == 200 ? "text/plain; version=0.0.4; charset=utf-8" :
	    "text/plain; charset=utf-8", len);
	if (body != NULL && !head_only)
		evbuffer_add_buffer(out, body);
	m->answered = 1;
	/* Nothing more is read; the write callback closes once drained. */
	bufferevent_disable(m->bev, EV_READ);
	bufferevent_enable(m->bev, EV_WRITE);
}

static void
respond_text(struct mconn *m, int code, const char *reason, const char *text)
{
	struct evbuffer *b = evbuffer_new();
	if (b == NULL)
		log_fatal("out of memory");
	evbuffer_add_printf(b, "%s\n", text);
	respond(m, code, reason, b, 0);
	evbuffer_free(b);
}

static void
handle_request(struct mconn *m, int head_only)
{
	struct evbuffer *body = evbuffer_new();
	if (body == NULL)
		log_fatal("out of memory");
	metrics_collect();
	metrics_write(body);
	respond(m, 200, "OK", body, head_only);
	evbuffer_free(body);
}

static void
conn_read(struct bufferevent *bev, void *arg)
{
	struct mconn *m = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	if (m->answered) {
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
	if (end.pos < 0)
		end = evbuffer_search(in, "\n\n", 2, NULL);
	if (end.pos < 0) {
		if (evbuffer_get_length(in) > REQUEST_MAX) {
			struct evbuffer_ptr eol = evbuffer_search(in, "\n", 1,
			    NULL);
			evbuffer_drain(in, evbuffer_get_length(in));
			if (eol.pos < 0)
				respond_text(m, 414, "URI Too Long",
				    "request line too long");
			else
				respond_text(m, 431, "Request Header Fields "
				    "Too Large", "request headers too large");
		}
		return;
	}
	size_t n;
	char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF);
	evbuffer_drain(in, evbuffer_get_length(in));
	if (line == NULL || n > REQUEST_MAX) {
		free(line);
		respond_text(m, 400, "Bad Request", "bad request");
		return;
	}
	char method[8], target[64], version[16];
	if (sscanf(line, "%7s %63s %15s", method, target, version) != 3 ||
	    strncmp(version, "HTTP/1.", 7) != 0) {
		respond_text(m, 400, "Bad Request", "bad request");
	} else if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		respond_text(m, 405, "Method Not Allowed", "only GET");
	} else if (strcmp(target, "/metrics") != 0 &&
	    strncmp(target, "/metrics?", 9) != 0) {
		respond_text(m, 404, "Not Found", "try /metrics");
	} else {
		handle_request(m, strcmp(method, "HEAD") == 0);
	}
	free(line);
}

static void
conn_write(struct bufferevent *bev, void *arg)
{
	struct mconn *m = arg;
	if (m->answered &&
	    evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		conn_close(m);
}

static void
conn_event(struct bufferevent *bev, short what, void *arg)
{
	/* EOF, error or the deadline: the connection is done. */
	conn_close(arg);
}

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int socklen, void *arg)
{
	if (ep.nconns >= ep.max_conns) {
		/* Make room: the oldest that has not sent its request. */
		struct mconn *old;
		TAILQ_FOREACH(old, &ep.conns, entry)
			if (!old->answered)
				break;
		if (old == NULL) {
			evutil_closesocket(fd);
			metrics_add(&http_evicted, 1);
			return;
		}
		conn_close(old);
		metrics_add(&http_evicted, 1);
		if (ep.evicted++ % 1000 == 0)
			log_warn("metrics: more than %u connections; closing "
			    "the oldest idle ones", ep.max_conns);
	}
	struct bufferevent *bev = bufferevent_socket_new(
	    evconnlistener_get_base(l), fd, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		evutil_closesocket(fd);
		return;
	}
	struct mconn *m = xcalloc(1, sizeof(*m));
	m->bev = bev;
	TAILQ_INSERT_TAIL(&ep.conns, m, entry);
	ep.nconns++;
	struct timeval deadline = { REQUEST_DEADLINE, 0 };
	bufferevent_set_timeouts(bev, &deadline, &deadline);
	/* Reading stops past the limit, so a 1 MB request line costs no
	 * more than REQUEST_MAX bytes of memory. */
	bufferevent_setwatermark(bev, EV_READ, 0, REQUEST_MAX + 1);
	bufferevent_setcb(bev, conn_read, conn_write, conn_event, m);
	bufferevent_enable(bev, EV_READ);
}

static int
parse_addr(const char *addr, struct sockaddr_storage *ss, int *len)
{
	*len = (int)sizeof(*ss);
	memset(ss, 0, sizeof(*ss));
	if (evutil_parse_sockaddr_port(addr, (struct sockaddr *)ss, len) != 0)
		return -1;
	/* A port is required: evutil takes "1.2.3.4" as port 0. */
	const char *colon = strrchr(addr, ':');
	if (colon == NULL || colon[1] == '\0' || strchr(colon, ']') != NULL)
		return -1;
	in_port_t port = ss->ss_family == AF_INET6 ?
	    ((struct sockaddr_in6 *)ss)->sin6_port :
	    ((struct sockaddr_in *)ss)->sin_port;
	return port != 0 ? 0 : -1;
}

int
metrics_addr_valid(const char *addr)
{
	struct sockaddr_storage ss;
	int len;
	return parse_addr(addr, &ss, &len) == 0;
}

static int
is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr)
		    >> 24) == 127;
	const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
	return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) &&
	    a->s6_addr[12] == 127);
}

int
metrics_listen(struct event_base *base, const char *addr, unsigned max_conns)
{
	struct sockaddr_storage ss;
	int len;
	if (parse_addr(addr, &ss, &len) != 0) {
		log_error("metrics = %s: not an ADDRESS:PORT (numeric address, "
		    "[IPv6]:PORT)", addr);
		return -1;
	}
	evutil_socket_t fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC |
	    SOCK_NONBLOCK, 0);
	if (fd < 0) {
		log_error("metrics = %s: socket: %s", addr, strerror(errno));
		return -1;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, (socklen_t)len) != 0 ||
	    listen(fd, 128) != 0) {
		int e = errno;
		log_error("metrics = %s: cannot listen: %s%s", addr,
		    strerror(e), e == EADDRINUSE ? " (another process has "
		    "that port: pick another one in [causeway] metrics)" : "");
		evutil_closesocket(fd);
		return -1;
	}
	ep.listener = evconnlistener_new(base, accept_cb, NULL,
	    LEV_OPT_CLOSE_ON_FREE, -1, fd);
	if (ep.listener == NULL) {
		log_error("metrics = %s: cannot watch the socket", addr);
		evutil_closesocket(fd);
		return -1;
	}
	ep.max_conns = max_conns > 0 ? max_conns : 1;
	if (!is_loopback(&ss))
		log_warn("metrics = %s: not a loopback address: the figures "
		    "(component names, traffic) are open to whoever reaches "
		    "it; restrict it with a firewall", addr);
	log_info("metrics: serving GET /metrics on %s (at most %u "
	    "connections)", addr, ep.max_conns);
	if (started == 0)
		started = time(NULL);
	return 0;
}

void
metrics_shutdown(void)
{
	while (!TAILQ_EMPTY(&ep.conns))
		conn_close(TAILQ_FIRST(&ep.conns));
	if (ep.listener != NULL)
		evconnlistener_free(ep.listener);
	ep.listener = NULL;
}
