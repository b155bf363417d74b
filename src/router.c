#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "component.h"
#include "jid.h"
#include "adhoc.h"
#include "log.h"
#include "register.h"
#include "room.h"
#include "roomlist.h"
#include "session.h"
#include "router.h"
#include "service.h"
#include "stanza.h"

/* The component's own services.  disco#info advertises exactly these
 * features, so a feature is listed only when its handler exists. */
static const struct iq_route service_routes[] = {
	{ .ns = NS_DISCO_INFO, .kinds = IQ_GET, .feature = NS_DISCO_INFO,
	  .handler = service_disco_info },
	{ .ns = NS_DISCO_ITEMS, .kinds = IQ_GET, .feature = NS_DISCO_ITEMS,
	  .handler = service_disco_items },
	{ .ns = NS_VERSION, .kinds = IQ_GET, .feature = NS_VERSION,
	  .handler = service_version },
	{ .ns = NS_PING, .kinds = IQ_GET, .feature = NS_PING,
	  .handler = service_ping },
	{ .ns = NS_REGISTER, .kinds = IQ_GET | IQ_SET,
	  .feature = NS_REGISTER, .restricted = 1,
	  .handler = register_handle },
	{ .ns = NS_GATEWAY, .kinds = IQ_GET | IQ_SET, .feature = NS_GATEWAY,
	  .handler = register_gateway },
	{ .ns = NS_COMMANDS, .kinds = IQ_SET, .feature = NS_COMMANDS,
	  .restricted = 1, .handler = adhoc_handle },
	{ .ns = NULL },
};

const struct iq_route *
router_service_routes(void)
{
	return service_routes;
}

void
router_reply_error(struct component *c, const struct stanza *st,
    const char *condition, const char *text)
{
	const char *type = stanza_attr(st, "type");
	if (type != NULL && strcmp(type, "error") == 0)
		return;
	if (stanza_attr(st, "from") == NULL)
		return;
	struct stanza *err = stanza_error_reply(st, condition, text);
	/* A malformed or foreign 'to' must not become our 'from'. */
	struct jid to;
	const char *to_s = stanza_attr(st, "to");
	if (to_s == NULL || jid_parse(to_s, &to) != 0) {
		stanza_set_attr(err, "from", c->domain);
	} else {
		if (strcmp(to.domain, c->domain) != 0)
			stanza_set_attr(err, "from", c->domain);
		jid_clear(&to);
	}
	component_send(c, err);
}

/*
 * XEP-0356: right after the handshake the server (a bare domain) may tell
 * us what we are allowed to do on its users' behalf.  It is a message
 * from the server itself, so it is consumed, never answered.
 */
static int
take_privilege(struct component *c, const struct stanza *msg,
    const struct jid *from)
{
	static const char *const namespaces[] = {
		"urn:xmpp:privilege:2", "urn:xmpp:privilege:1",
	};
	const struct stanza *priv = NULL;
	const char *ns = NULL;
	if (from->local != NULL || from->resource != NULL)
		return 0;
	for (size_t i = 0; i < 2 && priv == NULL; i++) {
		priv = stanza_child(msg, "privilege", namespaces[i]);
		ns = namespaces[i];
	}
	if (priv == NULL)
		return 0;
	/* Only our own server may grant them: the domain the component's
	 * domain is a subdomain of (irc.example.org under example.org). */
	size_t dl = strlen(c->domain), fl = strlen(from->domain);
	if (fl >= dl || c->domain[dl - fl - 1] != '.' ||
	    strcmp(c->domain + dl - fl, from->domain) != 0) {
		log_warn("%s: ignoring a privilege grant from %s, which is not "
		    "this component's server", c->domain, from->domain);
		return 1;
	}
	struct component_privilege *p = &c->privilege;
	snprintf(p->ns, sizeof(p->ns), "%s", ns);
	for (const struct stanza *perm = stanza_first_child(priv);
	    perm != NULL; perm = stanza_next_sibling(perm)) {
		const char *access = stanza_attr(perm, "access");
		const char *type = stanza_attr(perm, "type");
		if (strcmp(stanza_name(perm), "perm") != 0 || access == NULL ||
		    type == NULL)
			continue;
		if (strcmp(access, "roster") == 0)
			snprintf(p->roster, sizeof(p->roster), "%s", type);
		else if (strcmp(access, "message") == 0)
			snprintf(p->message, sizeof(p->message), "%s", type);
		else if (strcmp(access, "presence") == 0)
			snprintf(p->presence, sizeof(p->presence), "%s", type);
	}
	log_info("%s: %s grants privileges (%s): roster=%s message=%s "
	    "presence=%s", c->domain, from->domain, ns, p->roster, p->message,
	    p->presence);
	return 1;
}

static void
send_answer(struct component *c, struct stanza *answer)
{
	if (answer != NULL)
		component_send(c, answer);
}

/* The room a JID at the component names (unescaped, caller frees), or
 * NULL when it names none. */
static char *
room_of(struct component *c, const struct jid *to)
{
	if (to->local == NULL || c->backend->is_room == NULL)
		return NULL;
	char *legacy = jid_unescape_local(to->local);
	if (legacy != NULL && c->backend->is_room(c, legacy))
		return legacy;
	free(legacy);
	return NULL;
}

/*
 * An iq to a registration scope (backend->register_scope: an IRC server
 * JID): registration and disco#info are answered there.  Returns 1 when
 * the iq was for a scope (and is answered), else 0.
 */
static void send_answer(struct component *c, struct stanza *answer);

static int
scope_iq(struct component *c, const struct stanza *iq, const struct jid *from,
    const struct jid *to, enum iq_kind kind, const struct stanza *payload,
    const char *ns)
{
	if (c->backend->register_scope == NULL)
		return 0;
	char *legacy = jid_unescape_local(to->local);
	int scoped = legacy != NULL && c->backend->register_scope(c, legacy);
	if (!scoped) {
		free(legacy);
		return 0;
	}
	if (strcmp(ns, NS_REGISTER) == 0) {
		if (component_allows(c, from))
			send_answer(c, register_handle(c, iq, payload));
		else
			router_reply_error(c, iq, "forbidden", "this gateway is "
			    "not open to your server or account");
	} else if (strcmp(ns, NS_DISCO_INFO) == 0 && kind == IQ_GET) {
		send_answer(c, service_scope_info(c, iq, legacy));
	} else if (strcmp(ns, NS_DISCO_ITEMS) == 0 && kind == IQ_GET &&
	    stanza_attr(payload, "node") == NULL) {
		if (component_allows(c, from))
			send_answer(c, roomlist_request(c, iq, legacy));
		else
			router_reply_error(c, iq, "forbidden", "this gateway is "
			    "not open to your server or account");
	} else {
		router_reply_error(c, iq, "service-unavailable", NULL);
	}
	free(legacy);
	return 1;
}

static struct stanza *
only_child(const struct stanza *st)
{
	struct stanza *first = stanza_first_child(st);
	if (first == NULL || stanza_next_sibling(first) != NULL)
		return NULL;
	return first;
}

static void
dispatch_iq(struct component *c, struct stanza *iq, const struct jid *from,
    const struct jid *to)
{
	const char *type = stanza_attr(iq, "type");
	enum iq_kind kind;

	if (type == NULL) {
		router_reply_error(c, iq, "bad-request", "iq without a type");
		return;
	}
	if (strcmp(type, "result") == 0 || strcmp(type, "error") == 0) {
		if (component_iq_answer(c, iq))
			return;
		log_debug("%s: unmatched iq %s id=%s from %s", c->domain, type,
		    stanza_attr(iq, "id") ? stanza_attr(iq, "id") : "(none)",
		    stanza_attr(iq, "from"));
		return;
	}
	if (strcmp(type, "get") == 0)
		kind = IQ_GET;
	else if (strcmp(type, "set") == 0)
		kind = IQ_SET;
	else {
		router_reply_error(c, iq, "bad-request", "unknown iq type");
		return;
	}
	if (stanza_attr(iq, "id") == NULL) {
		router_reply_error(c, iq, "bad-request", "iq without an id");
		return;
	}
	const struct stanza *payload = only_child(iq);
	if (payload == NULL) {
		router_reply_error(c, iq, "bad-request",
		    "an iq get or set carries exactly one payload element");
		return;
	}
	const char *ns = stanza_ns(payload);
	char *room = room_of(c, to);
	if (room != NULL) {
		if (component_allows(c, from))
			send_answer(c, room_handle_iq(c, iq, from, to, room));
		else
			router_reply_error(c, iq, "forbidden", "this gateway is "
			    "not open to your server or account");
		free(room);
		return;
	}
	if (to->local != NULL && to->resource == NULL && ns != NULL &&
	    scope_iq(c, iq, from, to, kind, payload, ns))
		return;
	if (to->local == NULL && to->resource == NULL && ns != NULL) {
		for (const struct iq_route *r = service_routes; r->ns != NULL;
		    r++) {
			if (strcmp(r->ns, ns) != 0)
				continue;
			if (!(r->kinds & kind))
				break;
			if (r->restricted && !component_allows(c, from)) {
				router_reply_error(c, iq, "forbidden", "this "
				    "gateway is not open to your server or "
				    "account");
				return;
			}
			send_answer(c, r->handler(c, iq, payload));
			return;
		}
	}
	router_reply_error(c, iq, "service-unavailable", NULL);
}

void
router_dispatch(struct component *c, struct stanza *st)
{
	const char *name = stanza_name(st);
	const char *ns = stanza_ns(st);
	const char *from_s = stanza_attr(st, "from");
	const char *to_s = stanza_attr(st, "to");
	struct jid from, to;

	if (ns == NULL || strcmp(ns, NS_COMPONENT) != 0 ||
	    (strcmp(name, "iq") != 0 && strcmp(name, "message") != 0 &&
	    strcmp(name, "presence") != 0)) {
		log_warn("%s: ignoring unknown top-level element <%s/> (%s)",
		    c->domain, name, ns ? ns : "no namespace");
		stanza_free(st);
		return;
	}
	/* The server stamps 'from'; without a valid one there is nobody to
	 * answer, so the stanza is dropped (and said so). */
	if (from_s == NULL || jid_parse(from_s, &from) != 0) {
		log_warn("%s: dropping <%s/> with %s 'from'", c->domain, name,
		    from_s ? "a malformed" : "no");
		stanza_free(st);
		return;
	}
	if (to_s == NULL || jid_parse(to_s, &to) != 0) {
		log_info("%s: <%s/> from %s with %s 'to'", c->domain, name,
		    from_s, to_s ? "a malformed" : "no");
		if (strcmp(name, "presence") != 0)
			router_reply_error(c, st, "jid-malformed",
			    "the 'to' address is not a valid JID");
		goto out_from;
	}
	if (strcmp(to.domain, c->domain) != 0) {
		if (strcmp(name, "presence") != 0)
			router_reply_error(c, st, "item-not-found",
			    "this gateway does not serve that domain");
		goto out;
	}
	if (strcmp(name, "iq") == 0) {
		dispatch_iq(c, st, &from, &to);
	} else if (strcmp(name, "message") == 0) {
		if (take_privilege(c, st, &from))
			goto out;
		char *room = room_of(c, &to);
		if (!component_allows(c, &from))
			router_reply_error(c, st, "forbidden", "this gateway "
			    "is not open to your server or account");
		else if (room != NULL)
			room_handle_message(c, st, &from, &to, room);
		else
			session_handle_message(c, st, &from, &to);
		free(room);
	} else if (component_allows(c, &from)) {
		char *room = room_of(c, &to);
		if (room != NULL)
			room_handle_presence(c, st, &from, &to, room);
		else
			session_handle_presence(c, st, &from, &to);
		free(room);
	} else {
		/* A user outside the allow list causes no legacy traffic;
		 * a subscription request or a room join learns why. */
		const char *type = stanza_attr(st, "type");
		char *room = type == NULL ? room_of(c, &to) : NULL;
		if ((type != NULL && strcmp(type, "subscribe") == 0) ||
		    (type == NULL && (room != NULL || stanza_child(st, "x",
		    "http://jabber.org/protocol/muc") != NULL)))
			router_reply_error(c, st, "forbidden", "this gateway "
			    "is not open to your server or account");
		free(room);
		log_debug("%s: presence from %s (not allowed) ignored",
		    c->domain, from_s);
	}
out:
	jid_clear(&to);
out_from:
	jid_clear(&from);
	stanza_free(st);
}
