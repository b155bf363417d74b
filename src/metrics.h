/*
 * Metrics: a small registry of counters, gauges and histograms that any
 * part of causeway feeds, and the endpoint that serves them in the
 * Prometheus text format (`metrics = ADDR:PORT` in [causeway]).
 *
 * A family is a static const struct metrics_family at the caller: its
 * name, help text, type and label names (at most METRICS_MAX_LABELS).
 * A call names the family and gives one value per label, in order:
 *
 *     static const struct metrics_family irc_failures = {
 *         .name = "causeway_send_failures_total", .type = METRICS_COUNTER,
 *         .help = "...", .labels = { "component", "kind" } };
 *     metrics_add(&irc_failures, 1, c->domain, "remote-server-timeout");
 *
 * Series are created on first use and live until the process ends (label
 * values are component domains and fixed words, never user data, so
 * their number stays small).  Everything runs on the loop thread.
 *
 * Figures that already live elsewhere (component state, queue lengths,
 * sessions, process RSS) are read when a scrape or the admin stats
 * command asks, through metrics_collect(); a backend adds its own
 * figures with metrics_add_collector().
 */
#ifndef CAUSEWAY_METRICS_H
#define CAUSEWAY_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct evbuffer;

#define METRICS_MAX_LABELS 3

enum metrics_type {
	METRICS_COUNTER,
	METRICS_GAUGE,
	METRICS_HISTOGRAM,     /* observations in seconds */
};

struct metrics_family {
	const char *name;
	const char *help;
	enum metrics_type type;
	const char *labels[METRICS_MAX_LABELS];  /* NULL-terminated early */
};

/* Counter += n. */
void metrics_add(const struct metrics_family *f, uint64_t n, ...);
/* Gauge = v. */
void metrics_set(const struct metrics_family *f, double v, ...);
/* Gauge += delta (up and down: connections opened and closed). */
void metrics_adjust(const struct metrics_family *f, double delta, ...);
/* Histogram: one observation of v seconds. */
void metrics_observe(const struct metrics_family *f, double v, ...);
/* The value of a counter or gauge series (0 when it does not exist). */
double metrics_value(const struct metrics_family *f, ...);

/* Called before every scrape (and stats command) to set gauges. */
typedef void (*metrics_collector)(void *arg);
void metrics_add_collector(metrics_collector fn, void *arg);
void metrics_remove_collector(metrics_collector fn, void *arg);

/* Component traffic, by kind (message, presence, iq, other); xml is the
 * serialized stanza when only that is at hand. */
void metrics_stanza(const char *component, int outgoing, const char *kind);
const char *metrics_kind_of_xml(const char *xml);

/* A backend's legacy connection (IRC server link, IMAP session) opened
 * (+1) or closed (-1): causeway_legacy_connections{component,backend}. */
void metrics_legacy_connection(const char *component, const char *backend,
    int delta);
/* A message entered (+1) or left (-1) a backend's outbox (kept until the
 * legacy network takes it): causeway_outbox_messages{component,backend}. */
void metrics_outbox(const char *component, const char *backend, int delta);

/* A message to a legacy network: delivered after seconds (from the
 * user's stanza to the network's acceptance: written to the IRC server,
 * reported delivered by mail or SMS), or failed with an RFC 6120
 * condition (NULL: undefined-condition).  For every backend; the core
 * calls them for chat messages, room messages may follow. */
void metrics_delivery(const char *component, const char *backend,
    double seconds);
void metrics_send_failure(const char *component, const char *backend,
    const char *condition);

/* Runs the collectors, then appends the whole exposition to out. */
void metrics_collect(void);
void metrics_write(struct evbuffer *out);
/* The sample lines (no # comments) of the process and of component (all
 * when NULL), after running the collectors; caller frees.  The admin
 * stats command shows these, so it reads what a scrape reads. */
char *metrics_text(const char *component);

/*
 * The endpoint.  addr is "HOST:PORT" ("127.0.0.1:9380", "[::1]:9380");
 * returns 0 when listening, -1 after logging why not (address in use,
 * malformed).  A non-loopback address is allowed, with a warning.
 * max_conns caps connections: at the cap the oldest connection still
 * waiting for its request is closed to make room.
 */
int metrics_listen(struct event_base *base, const char *addr,
    unsigned max_conns);
/* 1 when addr parses as HOST:PORT with a numeric host. */
int metrics_addr_valid(const char *addr);
void metrics_shutdown(void);
/* Frees every series (at exit). */
void metrics_free(void);

#endif
