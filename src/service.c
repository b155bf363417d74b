#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "adhoc.h"
#include "backend.h"
#include "component.h"
#include "router.h"
#include "service.h"
#include "stanza.h"
#include "xmalloc.h"

/* A disco request for a node we do not publish. */
static struct stanza *
unknown_node(const struct stanza *iq, const struct stanza *payload)
{
	if (stanza_attr(payload, "node") == NULL)
		return NULL;
	return stanza_error_reply(iq, "item-not-found", "no such node");
}

struct stanza *
service_disco_info(struct component *c, const struct stanza *iq,
    const struct stanza *payload)
{
	const char *node = stanza_attr(payload, "node");
	struct stanza *cmd = node ? adhoc_disco_info(c, iq, node) : NULL;
	if (cmd != NULL)
		return cmd;
	struct stanza *err = unknown_node(iq, payload);
	if (err != NULL)
		return err;
	struct stanza *res = stanza_reply(iq, "result");
	struct stanza *q = stanza_new_child(res, "query", NS_DISCO_INFO);
	struct stanza *id = stanza_new_child(q, "identity", NULL);
	stanza_set_attr(id, "category", "gateway");
	stanza_set_attr(id, "type", c->backend->gateway_type);
	stanza_set_attr(id, "name", c->name);
	if (c->backend->is_room != NULL) {
		/* Clients look for conference services when they offer to
		 * join a room: a network with rooms is one too. */
		id = stanza_new_child(q, "identity", NULL);
		stanza_set_attr(id, "category", "conference");
		stanza_set_attr(id, "type", c->backend->gateway_type);
		stanza_set_attr(id, "name", c->name);
		stanza_set_attr(stanza_new_child(q, "feature", NULL), "var",
		    "http://jabber.org/protocol/muc");
	}
	if (c->backend->delivery_reports)
		stanza_set_attr(stanza_new_child(q, "feature", NULL), "var",
		    "urn:xmpp:receipts");
	if (c->backend->chat_marker != NULL)
		stanza_set_attr(stanza_new_child(q, "feature", NULL), "var",
		    "urn:xmpp:chat-markers:0");
	for (const struct iq_route *r = router_service_routes(); r->ns != NULL;
	    r++) {
		if (r->feature == NULL)
			continue;
		struct stanza *f = stanza_new_child(q, "feature", NULL);
		stanza_set_attr(f, "var", r->feature);
	}
	return res;
}

struct stanza *
service_disco_items(struct component *c, const struct stanza *iq,
    const struct stanza *payload)
{
	const char *node = stanza_attr(payload, "node");
	if (node != NULL && strcmp(node, NS_COMMANDS) == 0)
		return adhoc_disco_items(c, iq);
	struct stanza *err = unknown_node(iq, payload);
	if (err != NULL)
		return err;
	struct stanza *res = stanza_reply(iq, "result");
	stanza_new_child(res, "query", NS_DISCO_ITEMS);
	return res;
}

struct stanza *
service_version(struct component *c, const struct stanza *iq,
    const struct stanza *payload)
{
	struct stanza *res = stanza_reply(iq, "result");
	struct stanza *q = stanza_new_child(res, "query", NS_VERSION);
	stanza_new_text_child(q, "name", PACKAGE_NAME);
	stanza_new_text_child(q, "version", PACKAGE_VERSION);
	return res;
}

struct stanza *
service_scope_info(struct component *c, const struct stanza *iq,
    const char *scope)
{
	struct stanza *res = stanza_reply(iq, "result");
	struct stanza *q = stanza_new_child(res, "query", NS_DISCO_INFO);
	struct stanza *id = stanza_new_child(q, "identity", NULL);
	char *name = xasprintf("%s on %s", c->backend->description, scope);
	stanza_set_attr(id, "category", "gateway");
	stanza_set_attr(id, "type", c->backend->gateway_type);
	stanza_set_attr(id, "name", name);
	free(name);
	stanza_set_attr(stanza_new_child(q, "feature", NULL), "var",
	    NS_DISCO_INFO);
	stanza_set_attr(stanza_new_child(q, "feature", NULL), "var",
	    "jabber:iq:register");
	if (c->backend->list_rooms != NULL)
		stanza_set_attr(stanza_new_child(q, "feature", NULL), "var",
		    NS_DISCO_ITEMS);
	return res;
}

struct stanza *
service_ping(struct component *c, const struct stanza *iq,
    const struct stanza *payload)
{
	return stanza_reply(iq, "result");
}
