/*
 * One XEP-0114 connection: causeway as an external component of an XMPP
 * server, for one domain (irc.example.org) served by one backend.
 *
 * Lifecycle of the connection:
 *
 *   IDLE --connect--> CONNECTING --TCP up, send header--> OPENING
 *   OPENING --server header (id)--> send SHA-1 handshake --> HANDSHAKING
 *   HANDSHAKING --<handshake/>--> READY --stanzas both ways-->
 *   any state --error, EOF, stream error, bad XML--> WAITING (backoff timer)
 *   WAITING --timer--> CONNECTING ...
 *   READY --shutdown--> CLOSING (</stream:stream> written) --> CLOSED
 *
 * The backoff starts at 1 s and doubles to 60 s, with up to +25% jitter,
 * and goes back to 1 s after a successful handshake; a wrong secret follows
 * the same schedule, so nothing ever retries in a tight loop.
 *
 * Stanzas sent while the stream is not READY wait, serialized, in a
 * bounded queue and go out right after the next handshake, before
 * anything else.  When the queue is full component_send() refuses the
 * stanza (returns -1), so the caller can keep it in the store instead of
 * losing it.
 */
#ifndef CAUSEWAY_COMPONENT_H
#define CAUSEWAY_COMPONENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <time.h>

struct backend;
struct bufferevent;
struct config_section;
struct event;
struct evbuffer;
struct access_list;
struct adhoc_state;
struct jid;
struct session_table;
struct stanza;
struct xmlstream;

enum component_state {
	COMPONENT_IDLE,
	COMPONENT_CONNECTING,
	COMPONENT_OPENING,
	COMPONENT_HANDSHAKING,
	COMPONENT_READY,
	COMPONENT_WAITING,
	COMPONENT_CLOSING,
	COMPONENT_CLOSED,
};

struct component_stats {
	uint64_t stanzas_in;
	uint64_t stanzas_out;
	uint64_t connects;       /* successful handshakes */
	uint64_t queue_refused;  /* stanzas refused because the queue was full */
	time_t ready_since;      /* 0 while not READY */
};

/*
 * What the server granted us through XEP-0356 (privileged entity), from
 * the <privilege/> message it sends after the handshake.  ns is the
 * namespace it used (urn:xmpp:privilege:2 on Prosody, :1 on ejabberd);
 * the rest are the access values ("none", "get", "set", "both",
 * "outgoing", "roster"...), "none" until the server says otherwise.
 */
struct component_privilege {
	char ns[32];
	char roster[8];
	char message[12];
	char presence[12];
};

/* Called with the answer to an iq we sent (type result or error), or
 * with NULL when none came in time or the stream went down. */
typedef void (*component_iq_cb)(struct component *c,
    const struct stanza *answer, void *arg);
struct pending_iq;
TAILQ_HEAD(pending_iq_list, pending_iq);

struct queued_stanza;
TAILQ_HEAD(queued_list, queued_stanza);

struct component {
	TAILQ_ENTRY(component) entry;
	char *domain;                 /* the component's JID */
	const struct backend *backend;
	void *backend_data;           /* owned by the backend */
	const struct config_section *section; /* current config's section */

	/* Copied from the configuration; a reload may change them. */
	char *server;
	int port;
	char *secret;
	char *name;                   /* disco identity name */
	size_t max_stanza;
	size_t queue_max;
	unsigned keepalive;           /* seconds, 0 = off */
	unsigned linger;              /* seconds a session outlives its user */
	struct access_list *allow;
	struct access_list *admins;
	/* Users the allow list admits may use the gateway before
	 * registering (backend->open_access, or require_registration). */
	int open_access;

	enum component_state state;
	struct bufferevent *bev;
	struct xmlstream *xs;
	char *stream_id;
	int close_after_feed;         /* set by parser callbacks */
	int lingering;                /* our stream error is on its way */
	struct event *stuck_timer;    /* output over OUTPUT_MAX: dropping */
	char linger_reason[64];
	struct event *retry_timer;
	struct event *keepalive_timer;
	struct event *deadline_timer;  /* handshake, close or linger */
	unsigned backoff;             /* seconds before the next attempt */
	time_t last_write;

	struct queued_list queue;
	size_t queued;
	size_t queued_bytes;

	struct session_table *sessions;  /* session.c's */
	struct adhoc_state *adhoc;       /* adhoc.c's */
	int rooms_restored;              /* persistent rooms rejoined */
	time_t sent_expired;             /* old "sent" rows last dropped */
	long kept;                       /* stanzas in the store for the
	                                  * server (-1: not counted yet) */
	struct event *replay_timer;      /* next batch of kept stanzas */
	struct component_privilege privilege;
	int roster_push_refused;      /* the server refused a privileged push */
	struct pending_iq_list pending;
	unsigned next_iq;
	struct component_stats stats;
};

/* Creates the component from its [component DOMAIN] section and its
 * backend; does not connect yet.  NULL when the backend's init fails. */
struct component *component_new(const struct config_section *sec);
void component_free(struct component *c);
/* Applies a reloaded section (same domain): live values change at once; a
 * changed server, port or secret reconnects. */
void component_reconfigure(struct component *c,
    const struct config_section *sec);

void component_connect(struct component *c);
/* Writes </stream:stream>, waits (briefly) for it to drain, closes, then
 * calls causeway_component_closed(). */
void component_shutdown(struct component *c);

/*
 * Sends a stanza (takes it).  Returns 0 when it was written or queued,
 * -1 when the queue is full (the stanza is freed; the caller must keep
 * its own copy if it cannot be lost).
 */
int component_send(struct component *c, struct stanza *st);

/*
 * Sends an iq get/set (takes it; an id is assigned) and calls cb with
 * the answer, or with NULL after timeout seconds or when the stream
 * goes down first.  Only while READY; otherwise cb(NULL) at once.
 */
void component_send_iq(struct component *c, struct stanza *iq,
    component_iq_cb cb, void *arg, int timeout);
/* Hands an iq result/error to its waiting callback; 1 if one was
 * waiting for it, else 0 (st borrowed). */
int component_iq_answer(struct component *c, const struct stanza *st);

/* Sends serialized XML while READY (0), else -1 and nothing is sent. */
int component_send_raw(struct component *c, const char *xml, size_t len);
/* 1 when the bare JID of who may use the component / administer it. */
int component_allows(const struct component *c, const struct jid *who);
int component_is_admin(const struct component *c, const struct jid *who);
/* 1 when an allowed user may use the gateway without registering. */
int component_open_access(const struct component *c);

const char *component_state_name(enum component_state s);

#endif
