/*
 * The destination policy (DESIGN.md, "Trust boundaries"): where a host
 * a user typed may take the gateway.
 *
 * A user-supplied host is resolved, every address checked, and the
 * connection made to the address that passed (no second lookup, so no
 * DNS rebinding between check and connect).  By default refused:
 * loopback, RFC 1918, CGNAT (100.64/10), link-local, ULA, multicast,
 * unspecified/reserved ranges, the machine's own addresses, and any
 * port but the protocol's usual ones (IMAP 143/993, SMTP 25/465/587,
 * IRC 6660-6669/6697/7000/7070).
 *
 * [causeway] destinations_deny and destinations_allow (comma-separated:
 * a CIDR, an address, a host name, each optionally ":port"; IPv6 with a
 * port as "[2001:db8::1]:993") change that: deny first, then allow (an
 * allowed entry without a port allows every port of it), then the
 * default.  Hosts the operator configured (presets, [irc-server HOST],
 * fixed_server, Kannel/smstools) do not come here: they are trusted.
 *
 * "localhost" and names under it are looked up as 127.0.0.1 (RFC 6761),
 * then judged like any loopback address.
 *
 * Every refusal, and every failure to resolve a user's host, gives the
 * same text (DESTINATION_REFUSED): what the network answered is not
 * the user's to learn.
 */
#ifndef CAUSEWAY_DESTINATION_H
#define CAUSEWAY_DESTINATION_H

#include <stddef.h>
#include <sys/socket.h>

struct config_section;
struct config_errors;
struct evdns_base;

#define DESTINATION_REFUSED "the gateway does not connect to this server " \
	"(not allowed by the gateway's destination policy, or not found)"

enum destination_proto {
	DESTINATION_IMAP,
	DESTINATION_SMTP,
	DESTINATION_IRC,
};

/* A checked address: where to connect. */
struct destination {
	struct sockaddr_storage addr;
	socklen_t len;
	char text[64];         /* the address as text (no port) */
};

/* Checks the [causeway] section's lists at load (config validate). */
void destination_validate(const struct config_section *sec,
    struct config_errors *errs);
/* Sets the lists (comma-separated as in the file; NULL: none), replacing
 * what the configuration said.  -1 on a bad entry.  For tests and for
 * callers that load the configuration themselves. */
int destination_configure(const char *allow, const char *deny);

/* The pure check of one address for host:port: 1 allowed, 0 refused. */
int destination_allowed(const char *host, const struct sockaddr *sa,
    int port, enum destination_proto proto);

/* Blocking (workers): resolves host and fills *out with the first
 * address allowed.  0, or -1 with err = DESTINATION_REFUSED. */
int destination_resolve(const char *host, int port,
    enum destination_proto proto, struct destination *out, char *err,
    size_t errlen);

/* The same on evdns for the loop: cb runs later on the loop, exactly
 * once (unless cancelled), with d NULL and err on refusal. */
struct destination_req;
typedef void (*destination_cb)(void *arg, const struct destination *d,
    const char *err);
struct destination_req *destination_resolve_async(struct evdns_base *dns,
    const char *host, int port, enum destination_proto proto,
    destination_cb cb, void *arg);
/* cb will not run; req is freed. */
void destination_cancel(struct destination_req *req);

#endif
