/*
 * The router: where every stanza from the XMPP server goes.
 *
 * It checks what RFC 6120 requires before anyone looks at a stanza
 * (a known stanza kind, a valid from and to, an id and exactly one
 * payload on iq get/set), answers what is wrong with the right error,
 * and hands iq requests to handlers found by payload namespace and type
 * in one table.  Every iq get or set gets exactly one answer; a stanza of
 * type error is never answered with an error.
 */
#ifndef CAUSEWAY_ROUTER_H
#define CAUSEWAY_ROUTER_H

struct component;
struct stanza;

enum iq_kind {
	IQ_GET = 1,
	IQ_SET = 2,
};

/*
 * An iq handler gets the request and its payload (borrowed) and returns
 * the answer (a result or an error, which the router sends), or NULL
 * when it has taken responsibility for answering later itself.
 */
typedef struct stanza *(*iq_handler)(struct component *c,
    const struct stanza *iq, const struct stanza *payload);

struct iq_route {
	const char *ns;         /* payload namespace */
	unsigned kinds;         /* IQ_GET | IQ_SET */
	const char *feature;    /* advertised in disco#info, or NULL */
	int restricted;         /* only for users the allow list admits */
	iq_handler handler;
};

/* Takes st. */
void router_dispatch(struct component *c, struct stanza *st);
/* Sends an error answer to st unless st is itself an error (st is
 * borrowed). */
void router_reply_error(struct component *c, const struct stanza *st,
    const char *condition, const char *text);
/* The routes of the component's own JID, for disco#info. */
const struct iq_route *router_service_routes(void);

#endif
