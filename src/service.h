/*
 * What every component answers on its own JID, whatever its backend:
 * XEP-0030 disco#info and disco#items, XEP-0092 software version and
 * XEP-0199 ping.
 */
#ifndef CAUSEWAY_SERVICE_H
#define CAUSEWAY_SERVICE_H

struct component;
struct stanza;

#define NS_DISCO_INFO "http://jabber.org/protocol/disco#info"
#define NS_DISCO_ITEMS "http://jabber.org/protocol/disco#items"
#define NS_VERSION "jabber:iq:version"
#define NS_PING "urn:xmpp:ping"

struct stanza *service_disco_info(struct component *c,
    const struct stanza *iq, const struct stanza *payload);
struct stanza *service_disco_items(struct component *c,
    const struct stanza *iq, const struct stanza *payload);
struct stanza *service_version(struct component *c, const struct stanza *iq,
    const struct stanza *payload);
/* disco#info of a registration scope (an IRC server JID). */
struct stanza *service_scope_info(struct component *c,
    const struct stanza *iq, const char *scope);
struct stanza *service_ping(struct component *c, const struct stanza *iq,
    const struct stanza *payload);

#endif
