/*
 * The process-wide context: one event loop, one store, one worker pool,
 * the loaded configuration and the components it declares.  Everything
 * here is owned by main.c and touched only on the loop thread.
 */
#ifndef CAUSEWAY_CAUSEWAY_H
#define CAUSEWAY_CAUSEWAY_H

#include <sys/queue.h>
#include <time.h>

struct component;
struct config;
struct event_base;
struct evdns_base;
struct secret_key;
struct store;
struct worker_pool;

TAILQ_HEAD(component_list, component);

struct causeway {
	struct event_base *base;
	struct evdns_base *dns;
	struct store *store;
	struct secret_key *key;      /* seals stored legacy passwords */
	struct worker_pool *workers;
	struct config *config;
	const char *config_path;
	struct component_list components;
	time_t started;
	int stopping;
};

extern struct causeway *cw;

/* Called by a component when its stream is closed during shutdown; the
 * loop exits once every component is closed. */
void causeway_component_closed(struct component *c);

#endif
