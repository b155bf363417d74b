/*
 * An identd (RFC 1413) for causeway's IRC connections, so a network can
 * tell the gateway's users apart (and ban one without banning all).
 *
 * An IRC server that wants to know who owns a connection connects back
 * to the client's port 113 and asks "<our port>, <its port>"; we answer
 * with the user name the connection registered with (irc.c derives one
 * per user that does not reveal the JID), or NO-USER for connections
 * that are not ours.
 *
 * One listener per process, whatever the number of IRC components; each
 * connection registers its full 4-tuple (local address and port, remote
 * address and port) while it is open, so two users' connections to two
 * servers that happen to share the port pair never overwrite each other.
 * A query is answered only to the peer of the connection it asks about:
 * its source address must be the connection's remote address and it must
 * arrive on the connection's local address, as RFC 1413 has it (the
 * server connects back to where the connection came from).  Anyone else
 * learns NO-USER, so the identd tells no outsider who is connected where.  Queries are one line (at most IDENTD_LINE_MAX bytes), answered
 * and closed; a client that says nothing is dropped after
 * IDENTD_TIMEOUT seconds, and at most IDENTD_CLIENTS_MAX are served at
 * once.
 */
#ifndef CAUSEWAY_IRC_IDENTD_H
#define CAUSEWAY_IRC_IDENTD_H

#include <stddef.h>

struct event_base;
struct sockaddr;

#define IDENTD_LINE_MAX 1000
#define IDENTD_TIMEOUT 30
#define IDENTD_CLIENTS_MAX 64

/* Listens on addr ("127.0.0.1:113", "[::1]:113"); a second call with
 * the same address is a no-op, with another address moves the
 * listener.  0, or -1 (logged). */
int identd_listen(struct event_base *base, const char *addr);
/* Stops listening and forgets every connection. */
void identd_stop(void);
/* The port the listener is bound to (0: none), for tests. */
int identd_port(void);

/* The connection local -> remote (IPv4 or IPv6, ports set) belongs to
 * user.  An address of another family is ignored. */
void identd_add(const struct sockaddr *local, const struct sockaddr *remote,
    const char *user);
void identd_remove(const struct sockaddr *local,
    const struct sockaddr *remote);

/*
 * Parses a query line ("6193, 23", spaces allowed around the numbers,
 * CR LF already removed): 0 and the two ports (1..65535), or -1.
 */
int identd_parse(const char *line, unsigned *lport, unsigned *rport);
/* The answer to a query line, CR LF included, into buf: the query came
 * to our address local from peer (both with ports; their addresses are
 * what is matched, the ports come from the line). */
void identd_answer(const char *line, const struct sockaddr *local,
    const struct sockaddr *peer, char *buf, size_t len);

#endif
