/*
 * One IRC client connection on a libevent bufferevent (with
 * bufferevent_openssl for TLS): connect, negotiate IRCv3 capabilities,
 * authenticate, register, keep alive, and hand every parsed line to its
 * owner; send lines through an ordered flood-control queue.
 *
 * Lifecycle:
 *
 *   RESOLVING (evdns) -> CONNECTING -> [TLS handshake, certificate and
 *   host name verified, or the SHA-256 fingerprint pinned] ->
 *   REGISTERING: CAP LS 302, CAP REQ for what we use, SASL PLAIN when
 *   credentials are set and offered, PASS, WEBIRC, NICK, USER, CAP END;
 *   433/432/436 during registration retry with another nick (nick_, then
 *   nick__...: at most IRC_NICK_TRIES nicks in all, the configured one
 *   included; the IRC_NICK_TRIES-th refusal closes) -> 001: REGISTERED ->
 *   ... -> CLOSED (the owner's closed() callback says why; the
 *   connection does nothing more and the owner frees it, reconnecting
 *   if it wants to).
 *
 * Every incoming line goes through irc_msg_parse(); lines over
 * IRC_INPUT_MAX are discarded up to the next LF (and counted), so a peer
 * that never sends a newline cannot grow our buffer.  PING is answered
 * here.  A server that says nothing for the timeout is pinged; one that
 * then stays silent is dropped.
 *
 * Sending: irc_conn_send() builds the line with irc_build() (nothing
 * that could inject a command is ever queued) and appends it to a FIFO
 * drained by a token bucket (burst lines at once, then rate lines per
 * second), so a message that waits is never dropped and order is kept.
 */
#ifndef CAUSEWAY_IRC_CONN_H
#define CAUSEWAY_IRC_CONN_H

#include <stddef.h>

struct event_base;
struct evdns_base;
struct irc_conn;
struct irc_isupport;
struct irc_msg;

#define IRC_NICK_TRIES 5
/* Lines irc_conn_send() lets wait in the flood-control queue. */
#define IRC_QUEUE_MAX 1000

struct irc_conn_config {
	const char *host;             /* name or address */
	int port;
	int tls;                      /* 1: TLS from the first byte */
	int verify;                   /* 1: verify the chain and host name */
	const char *fingerprint;      /* SHA-256 of the certificate (hex,
	                               * colons allowed); set: pinned, and
	                               * chain verification is not needed */
	const char *ca_file;          /* extra trust anchors, may be NULL */
	const char *nick;
	const char *username;         /* USER's user name */
	const char *realname;
	const char *password;         /* server PASS, may be NULL */
	const char *sasl_user;        /* SASL PLAIN when both are set */
	const char *sasl_password;
	const char *webirc_password;  /* WEBIRC when set, with: */
	const char *webirc_gateway;   /*   the gateway's name */
	const char *webirc_host;      /*   the user's host and ip as the */
	const char *webirc_ip;        /*   network should see them */
	unsigned throttle_burst;      /* lines sent at once (0: 5) */
	unsigned throttle_rate_ms;    /* then one line per this (0: 500) */
	unsigned timeout;             /* seconds: connect, register, idle
	                               * (0: 60) */
	const char *ident;            /* set: the connection's (local port,
	                               * remote port) is given to the identd
	                               * (irc_identd.h) under this user name
	                               * from the moment connect() is called
	                               * (servers ask at once) until it
	                               * closes */
	const char *nickserv;         /* set: sent as PRIVMSG NickServ right
	                               * after 001, before anything queued,
	                               * unless SASL logged us in ("IDENTIFY
	                               * account password") */
	int user_host;                /* 1: the host (and port) are the
	                               * user's: resolved and checked against
	                               * the destination policy
	                               * (destination.h) and connected to the
	                               * address that passed, never another;
	                               * refused: closed() with
	                               * DESTINATION_REFUSED.  TLS still
	                               * verifies host.  0: the operator's,
	                               * resolved as it is ("localhost" and
	                               * *.localhost are 127.0.0.1) */
};

struct irc_conn_callbacks {
	/* 001 arrived: the network calls us nick. */
	void (*registered)(void *arg, const char *nick);
	/* Every parsed line, before and after registration (PING, the
	 * PONG to our keepalive PING, the CAP/SASL exchange (CAP,
	 * AUTHENTICATE, 902-908, 421 for CAP) and the 432/433/436 handled
	 * during registration excluded; after 001 nick errors come here).
	 * 001 comes here too, after registered(). */
	void (*message)(void *arg, const struct irc_msg *m);
	/* The connection is over (error, EOF, timeout, refused TLS or SASL,
	 * ERROR from the server, irc_conn_quit done).  Called once; the
	 * owner may free the connection from inside this callback. */
	void (*closed)(void *arg, const char *reason);
	/* A line queued with irc_conn_send_tagged() left the queue for the
	 * socket.  Told from the loop (never from inside irc_conn_send),
	 * in order; the owner must not free the connection here. */
	void (*written)(void *arg, unsigned long tag);
	/* The connection ended with that line still queued: it was never
	 * sent.  Called for each such line, in order, after the pending
	 * written() calls and just before closed(); the owner must not
	 * free the connection here. */
	void (*unsent)(void *arg, unsigned long tag);
};

/* Starts connecting at once; the config's strings are copied.  Never
 * NULL; problems (a bad fingerprint, an unresolvable host) arrive
 * through closed(), from the loop.  dns may be NULL: then only IP
 * addresses can be connected to (names would need a blocking lookup). */
struct irc_conn *irc_conn_new(struct event_base *base,
    struct evdns_base *dns, const struct irc_conn_config *cfg,
    const struct irc_conn_callbacks *cb, void *arg);
/* Closes without callbacks (no QUIT: use irc_conn_quit first for a
 * polite exit). */
void irc_conn_free(struct irc_conn *c);

/*
 * Queue a line; params NULL-terminated.  0, or -1 when the line would
 * inject a command or exceed IRC_LINE_MAX (nothing queued), when
 * IRC_QUEUE_MAX lines wait already, or the connection is closed.
 */
int irc_conn_send(struct irc_conn *c, const char *command,
    const char *const *params);
/* The same for a line the owner wants news of: written() or unsent()
 * with tag (non-zero) follows, exactly once, unless the owner frees the
 * connection first. */
int irc_conn_send_tagged(struct irc_conn *c, unsigned long tag,
    const char *command, const char *const *params);
/* Sends QUIT (after what is queued), then closes; closed() follows. */
void irc_conn_quit(struct irc_conn *c, const char *reason);

int irc_conn_is_registered(const struct irc_conn *c);
/* Our current nick (follows NICK changes of ourselves). */
const char *irc_conn_nick(const struct irc_conn *c);
const struct irc_isupport *irc_conn_isupport(const struct irc_conn *c);
/* 1 when the capability was acknowledged ("server-time", ...). */
int irc_conn_has_cap(const struct irc_conn *c, const char *cap);
/* 1 when SASL logged us in on this connection. */
int irc_conn_sasl_done(const struct irc_conn *c);
/* 1 when the connection was closed because the destination policy
 * refused its host (user_host): the owner says DESTINATION_REFUSED and
 * nothing of the network. */
int irc_conn_refused(const struct irc_conn *c);
/* Lines waiting in the flood-control queue. */
size_t irc_conn_queued(const struct irc_conn *c);

/* Counters for logs, ad-hoc statistics and tests (added by irc_conn.c's
 * author; not in the first version of this header). */
struct irc_conn_stats {
	unsigned long lines_in;       /* parsed and handled */
	unsigned long lines_bad;      /* failed irc_msg_parse, skipped */
	unsigned long lines_too_long; /* over IRC_INPUT_MAX, discarded */
	unsigned long lines_out;      /* written to the socket */
	size_t input_peak;            /* most unread input bytes held */
};
void irc_conn_get_stats(const struct irc_conn *c, struct irc_conn_stats *out);

#endif
