/*
 * Sessions: session.h draws the lifecycle.  This file holds the table of
 * sessions of each component (a hash by bare JID), the presence and
 * message paths from XMPP to the backend, and the functions backends call
 * to speak to the user.
 *
 * From XMPP to the legacy network: session_handle_presence() and
 * session_handle_message(), called by the router for registered and
 * allowed users.  From the legacy network to XMPP: session_deliver_*,
 * session_contact_*.  Every stanza toward the user goes through
 * deliver(), which keeps it in the store while the XMPP server is
 * unreachable, so nothing from a legacy network is lost while the
 * server restarts.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "backend.h"
#include "causeway.h"
#include "component.h"
#include "form.h"
#include "jid.h"
#include "log.h"
#include "room.h"
#include "router.h"
#include "secret.h"
#include "session.h"
#include "stanza.h"
#include "store.h"
#include "xmalloc.h"

#define NS_NICK "http://jabber.org/protocol/nick"
/* Stanzas kept per component while the server is away. */
#define KEPT_MAX 100000

struct resource {
	char *name;
	int priority;
};

struct contact_presence {
	char *legacy;
	char *show;      /* NULL: unavailable */
	char *status;
};

/*
 * Messages handed to a backend that reports deliveries are remembered in
 * the store under the user's JID (so they survive a restart and go when
 * the user unregisters): key SENT_KEY + stanza id, value "legacy\n"
 * "R\nfull JID of the sender", R 1 when a XEP-0184 receipt was asked.
 * The report (delivered: the receipt; failed: an error to the resource
 * that sent it) takes the row; rows never reported go after SENT_KEEP
 * seconds.
 */
#define SENT_KEY "core/sent/"
/*
 * With open access (component_open_access) a user row is created on
 * first use (a join, a private message, a channel list, a command),
 * marked with this key until the user registers on the gateway itself:
 * such a user is not shown as registered and gets no XEP-0100
 * subscription request.
 */
#define FIRST_USE_KEY "core/first-use"
#define SENT_ID_MAX 256
#define SENT_KEEP (7 * 86400)

static void sent_expire(struct component *c);

struct session {
	struct session *next;        /* hash chain */
	struct component *c;
	char *jid;
	enum session_state state;
	struct form *fields;         /* registration values, decrypted */
	void *data;                  /* the backend's */
	void *rooms;                 /* room.c's */
	struct resource *resources;
	size_t nresources;
	struct contact_presence *contacts;
	size_t ncontacts;
	struct event *linger;
	char *failure;               /* why the last login failed */
	/* The resource that sent the last message to a contact: where a
	 * failure the backend reports without a remembered id goes. */
	char *last_resource;
	/* Shown as the gateway's presence while online (a backend whose
	 * connection is being retried), NULL: plain available. */
	char *gw_show, *gw_status;
};

struct session_table {
	struct session **buckets;
	size_t nbuckets;
	size_t count;
};

static size_t
hash_jid(const char *s)
{
	/* FNV-1a: short keys, no adversarial control over the table size
	 * beyond registered users, who are vetted by the allow list. */
	size_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

static struct session_table *
table(struct component *c)
{
	if (c->sessions == NULL) {
		struct session_table *t = xcalloc(1, sizeof(*t));
		t->nbuckets = 64;
		t->buckets = xcalloc(t->nbuckets, sizeof(*t->buckets));
		c->sessions = t;
	}
	return c->sessions;
}

static struct session *
find(struct component *c, const char *jid)
{
	struct session_table *t = table(c);
	for (struct session *s = t->buckets[hash_jid(jid) & (t->nbuckets - 1)];
	    s != NULL; s = s->next)
		if (strcmp(s->jid, jid) == 0)
			return s;
	return NULL;
}

static void
grow(struct session_table *t)
{
	size_t n = t->nbuckets * 2;
	struct session **b = xcalloc(n, sizeof(*b));
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct session *s, *next;
		for (s = t->buckets[i]; s != NULL; s = next) {
			next = s->next;
			size_t k = hash_jid(s->jid) & (n - 1);
			s->next = b[k];
			b[k] = s;
		}
	}
	free(t->buckets);
	t->buckets = b;
	t->nbuckets = n;
}

/* ---- registration values ---- */

char *
session_secret_ad(const char *component, const char *jid)
{
	return xasprintf("causeway|%s|%s", component, jid);
}

struct load_ctx {
	struct component *c;
	const char *jid;
	struct form *fields;
	char *ad;
};

static int
load_field(void *arg, const char *var, const void *value, size_t len,
    int sealed)
{
	struct load_ctx *l = arg;
	if (!sealed) {
		char *v = xstrndup(value, len);
		form_add(l->fields, var, v);
		free(v);
		return 0;
	}
	size_t plen = 0;
	char *plain = cw->key != NULL ? secret_open(cw->key, l->ad, value,
	    len, &plen) : NULL;
	if (plain == NULL) {
		log_error("%s: %s: the stored %s does not decrypt with the "
		    "key file (was the key replaced?)", l->c->domain,
		    l->jid, var);
		return 0;
	}
	form_add(l->fields, var, plain);
	secret_wipe(plain, plen);
	free(plain);
	return 0;
}

struct form *
session_fields_load(struct component *c, const char *bare_jid)
{
	struct form *f = form_new();
	struct load_ctx l = { .c = c, .jid = bare_jid, .fields = f,
	    .ad = session_secret_ad(c->domain, bare_jid) };
	store_field_foreach(cw->store, c->domain, bare_jid, load_field, &l);
	free(l.ad);
	return f;
}

static void
load_fields(struct session *s)
{
	form_free(s->fields);
	s->fields = session_fields_load(s->c, s->jid);
}

/* ---- the table ---- */

static void linger_cb(evutil_socket_t fd, short what, void *arg);

static struct session *
session_get(struct component *c, const char *jid)
{
	struct session *s = find(c, jid);
	if (s != NULL)
		return s;
	struct session_table *t = table(c);
	if (t->count >= t->nbuckets)
		grow(t);
	s = xcalloc(1, sizeof(*s));
	s->c = c;
	s->jid = xstrdup(jid);
	s->state = SESSION_OFFLINE;
	s->linger = evtimer_new(cw->base, linger_cb, s);
	if (s->linger == NULL)
		log_fatal("%s: cannot create a timer", c->domain);
	size_t k = hash_jid(jid) & (t->nbuckets - 1);
	s->next = t->buckets[k];
	t->buckets[k] = s;
	t->count++;
	load_fields(s);
	return s;
}

static void
forget_contacts(struct session *s)
{
	for (size_t i = 0; i < s->ncontacts; i++) {
		free(s->contacts[i].legacy);
		free(s->contacts[i].show);
		free(s->contacts[i].status);
	}
	free(s->contacts);
	s->contacts = NULL;
	s->ncontacts = 0;
}

static void
forget_resources(struct session *s)
{
	for (size_t i = 0; i < s->nresources; i++)
		free(s->resources[i].name);
	free(s->resources);
	s->resources = NULL;
	s->nresources = 0;
}

static void
session_destroy(struct session *s)
{
	struct session_table *t = table(s->c);
	struct session **pp = &t->buckets[hash_jid(s->jid) &
	    (t->nbuckets - 1)];
	while (*pp != s)
		pp = &(*pp)->next;
	*pp = s->next;
	t->count--;
	/* Whatever state the session is in (a failed login, a dropped
	 * connection), the backend frees what it still holds for it. */
	if (s->data != NULL && s->c->backend->logout != NULL)
		s->c->backend->logout(s, "the session ended");
	event_free(s->linger);
	room_session_free(s);
	forget_contacts(s);
	forget_resources(s);
	form_free(s->fields);
	free(s->failure);
	free(s->last_resource);
	free(s->gw_show);
	free(s->gw_status);
	free(s->jid);
	free(s);
}

/* ---- toward the user ---- */

/*
 * Every stanza to a user leaves through here: straight to the server
 * while the stream is up, else into the store, from where
 * session_component_ready() sends it after the next handshake.
 */
static int
deliver(struct component *c, struct stanza *st)
{
	if (stanza_attr(st, "from") == NULL)
		stanza_set_attr(st, "from", c->domain);
	if (c->state == COMPONENT_READY) {
		component_send(c, st);
		return 0;
	}
	/* The store is not a bottomless pit either: a legacy network that
	 * floods while the server is away for hours would fill the disk. */
	if (c->kept < 0)
		c->kept = store_pending_count(cw->store, c->domain);
	if (c->kept >= KEPT_MAX) {
		if (c->kept == KEPT_MAX)
			log_error("%s: %d stanzas are waiting for the server; "
			    "more are dropped until it is back", c->domain,
			    KEPT_MAX);
		c->kept = KEPT_MAX + 1;
		stanza_free(st);
		return -1;
	}
	char *xml = stanza_to_string(st);
	int r = store_pending_add(cw->store, c->domain, xml);
	if (r != 0)
		log_error("%s: could not keep a <%s/> for %s while the server "
		    "is away; it is lost", c->domain, stanza_name(st),
		    stanza_attr(st, "to"));
	else
		c->kept++;
	free(xml);
	stanza_free(st);
	return r == 0 ? 0 : -1;
}

static int
send_kept(void *arg, const char *xml)
{
	struct component *c = arg;
	if (c->state != COMPONENT_READY)
		return 1;
	return component_send_raw(c, xml, strlen(xml));
}

void
session_component_ready(struct component *c)
{
	if (c->kept < 0)
		c->kept = store_pending_count(cw->store, c->domain);
	int n = store_pending_take(cw->store, c->domain, send_kept, c);
	if (n > 0) {
		log_info("%s: delivered %d stanzas kept while the server was "
		    "away", c->domain, n);
		c->kept = c->kept > n ? c->kept - n : 0;
	}
	/* A long backlog goes out one batch per loop turn. */
	if (n == STORE_PENDING_BATCH && c->state == COMPONENT_READY) {
		struct timeval now = { 0, 0 };
		evtimer_add(c->replay_timer, &now);
	}
	/* Persistent rooms outlive causeway: rejoin them once per process,
	 * when the server first lets us speak for the users. */
	if (!c->rooms_restored) {
		c->rooms_restored = 1;
		/* Messages whose delivery was never reported (a report
		 * the network lost) are not remembered for ever. */
		sent_expire(c);
		room_restore(c);
	}
}

char *
session_contact_jid(const struct component *c, const char *legacy)
{
	char *local = jid_escape_local(legacy);
	if (local == NULL)
		return NULL;
	char *jid = xasprintf("%s@%s", local, c->domain);
	free(local);
	return jid;
}

static struct stanza *
presence(const char *from, const char *to, const char *type)
{
	struct stanza *p = stanza_new("presence", NS_COMPONENT);
	if (from != NULL)
		stanza_set_attr(p, "from", from);
	stanza_set_attr(p, "to", to);
	if (type != NULL)
		stanza_set_attr(p, "type", type);
	return p;
}

static void
add_show_status(struct stanza *p, const char *show, const char *status)
{
	if (show != NULL && *show != '\0')
		stanza_new_text_child(p, "show", show);
	if (status != NULL && *status != '\0')
		stanza_new_text_child(p, "status", status);
}

/* The gateway's own presence, as the user sees it. */
static void
send_gateway_presence(struct session *s, const char *to)
{
	struct stanza *p;
	if (s->state == SESSION_ONLINE) {
		p = presence(s->c->domain, to, NULL);
		add_show_status(p, s->gw_show, s->gw_status);
	} else {
		p = presence(s->c->domain, to, "unavailable");
		if (s->state == SESSION_FAILED && s->failure != NULL)
			add_show_status(p, NULL, s->failure);
	}
	deliver(s->c, p);
}

static struct contact_presence *
contact_find(struct session *s, const char *legacy, int create)
{
	for (size_t i = 0; i < s->ncontacts; i++)
		if (strcmp(s->contacts[i].legacy, legacy) == 0)
			return &s->contacts[i];
	if (!create)
		return NULL;
	s->contacts = xreallocarray(s->contacts, s->ncontacts + 1,
	    sizeof(*s->contacts));
	struct contact_presence *cp = &s->contacts[s->ncontacts++];
	memset(cp, 0, sizeof(*cp));
	cp->legacy = xstrdup(legacy);
	return cp;
}

static void
send_contact_presence(struct session *s, const struct contact_presence *cp,
    const char *to)
{
	char *from = session_contact_jid(s->c, cp->legacy);
	if (from == NULL)
		return;
	struct stanza *p = presence(from, to, cp->show ? NULL : "unavailable");
	add_show_status(p, cp->show, cp->status);
	deliver(s->c, p);
	free(from);
}

/* Everything unavailable: the legacy side is gone. */
static void
contacts_offline(struct session *s)
{
	for (size_t i = 0; i < s->ncontacts; i++) {
		if (s->contacts[i].show == NULL)
			continue;
		free(s->contacts[i].show);
		s->contacts[i].show = NULL;
		send_contact_presence(s, &s->contacts[i], s->jid);
	}
}

/* ---- the legacy session ---- */

static void
start_login(struct session *s)
{
	const struct backend *b = s->c->backend;
	if (b->login == NULL) {
		s->state = SESSION_FAILED;
		free(s->failure);
		s->failure = xasprintf("the %s gateway cannot log in yet",
		    b->description);
		send_gateway_presence(s, s->jid);
		return;
	}
	log_info("%s: %s: logging in", s->c->domain, s->jid);
	s->state = SESSION_LOGGING_IN;
	b->login(s);
}

static void
end_login(struct session *s, const char *reason)
{
	if (s->state == SESSION_LOGGING_IN || s->state == SESSION_ONLINE) {
		log_info("%s: %s: logging out (%s)", s->c->domain, s->jid,
		    reason);
		if (s->c->backend->logout != NULL)
			s->c->backend->logout(s, reason);
	}
	s->state = SESSION_OFFLINE;
	room_session_offline(s, reason);
	contacts_offline(s);
	send_gateway_presence(s, s->jid);
}

static void
linger_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	if (s->nresources == 0 && room_session_count(s) == 0)
		end_login(s, "the user went offline");
}

void
session_login_result(struct session *s, int ok, const char *text)
{
	if (s->state != SESSION_LOGGING_IN)
		return;
	free(s->failure);
	s->failure = NULL;
	if (ok) {
		session_gateway_status(s, NULL, NULL);
		s->state = SESSION_ONLINE;
		log_info("%s: %s: online", s->c->domain, s->jid);
	} else {
		s->state = SESSION_FAILED;
		s->failure = xstrdup(text ? text : "login failed");
		log_info("%s: %s: login failed: %s", s->c->domain, s->jid,
		    s->failure);
	}
	send_gateway_presence(s, s->jid);
	if (ok)
		room_session_online(s);
	else
		room_session_offline(s, s->failure);
}

void
session_disconnected(struct session *s, const char *text)
{
	if (s->state != SESSION_ONLINE && s->state != SESSION_LOGGING_IN)
		return;
	free(s->failure);
	s->failure = xstrdup(text ? text : "disconnected");
	s->state = SESSION_FAILED;
	log_info("%s: %s: legacy connection lost: %s", s->c->domain, s->jid,
	    s->failure);
	room_session_offline(s, s->failure);
	contacts_offline(s);
	send_gateway_presence(s, s->jid);
}

void
session_gateway_status(struct session *s, const char *show,
    const char *status)
{
	const char *old_show = s->gw_show ? s->gw_show : "";
	const char *old_status = s->gw_status ? s->gw_status : "";
	int same = strcmp(old_show, show ? show : "") == 0 &&
	    strcmp(old_status, status ? status : "") == 0;
	free(s->gw_show);
	free(s->gw_status);
	s->gw_show = show && *show ? xstrdup(show) : NULL;
	s->gw_status = status && *status ? xstrdup(status) : NULL;
	if (!same && s->state == SESSION_ONLINE)
		send_gateway_presence(s, s->jid);
}

/* ---- accessors for backends ---- */

struct component *
session_component(const struct session *s)
{
	return s->c;
}

const char *
session_jid(const struct session *s)
{
	return s->jid;
}

enum session_state
session_state(const struct session *s)
{
	return s->state;
}

const char *
session_field(const struct session *s, const char *var)
{
	return form_value(s->fields, var);
}

/* The backend's registration field var, or NULL. */
static const struct form_field_spec *
field_spec(const struct component *c, const char *var)
{
	const struct backend *b = c->backend;
	for (size_t i = 0; i < b->nregister_fields; i++)
		if (strcmp(b->register_fields[i].var, var) == 0)
			return &b->register_fields[i];
	return NULL;
}

const char *
session_field_scoped(const struct session *s, const char *scope,
    const char *var)
{
	if (scope != NULL) {
		char *key = xasprintf("%s/%s", scope, var);
		const char *v = form_value(s->fields, key);
		free(key);
		if (v != NULL && *v != '\0')
			return v;
		/* Credentials for one network never go to another. */
		const struct form_field_spec *f = field_spec(s->c, var);
		if (f != NULL && f->scope_only)
			return NULL;
	}
	return form_value(s->fields, var);
}

void *
session_data(const struct session *s)
{
	return s->data;
}

void
session_set_data(struct session *s, void *data)
{
	s->data = data;
}

/* ---- from the legacy network ---- */

void
session_deliver_message(struct session *s, const char *legacy,
    const char *body)
{
	session_deliver_message_at(s, legacy, body, 0);
}

/* A chat message from a legacy contact to the user, NULL (logged) when
 * the address cannot be a JID. */
static struct stanza *
chat_from(struct session *s, const char *legacy)
{
	char *from = session_contact_jid(s->c, legacy);
	if (from == NULL) {
		log_warn("%s: %s: a message from a legacy address that is no "
		    "JID was dropped", s->c->domain, s->jid);
		return NULL;
	}
	struct stanza *m = stanza_new("message", NS_COMPONENT);
	stanza_set_attr(m, "from", from);
	stanza_set_attr(m, "to", s->jid);
	stanza_set_attr(m, "type", "chat");
	free(from);
	return m;
}

void
session_deliver_message_at(struct session *s, const char *legacy,
    const char *body, time_t stamp)
{
	struct stanza *m = chat_from(s, legacy);
	if (m == NULL)
		return;
	stanza_new_text_child(m, "body", body);
	stanza_add_delay(m, s->c->domain, stamp);
	deliver(s->c, m);
}

#define NS_NICK "http://jabber.org/protocol/nick"
#define NS_RECEIPTS "urn:xmpp:receipts"

int
session_deliver(struct session *s, const char *legacy,
    const struct legacy_message *lm)
{
	struct stanza *m = chat_from(s, legacy);
	if (m == NULL)
		return -1;
	if (lm->subject != NULL && *lm->subject != '\0')
		stanza_new_text_child(m, "subject", lm->subject);
	stanza_new_text_child(m, "body", lm->body);
	if (lm->thread != NULL && *lm->thread != '\0')
		stanza_new_text_child(m, "thread", lm->thread);
	if (lm->nick != NULL && *lm->nick != '\0') {
		struct stanza *n = stanza_new_child(m, "nick", NS_NICK);
		stanza_add_text(n, lm->nick, strlen(lm->nick));
	}
	/* A clock a little off is no reason to call a message late. */
	if (lm->stamp > 0 && lm->stamp < time(NULL) - 60)
		stanza_add_delay(m, s->c->domain, lm->stamp);
	return deliver(s->c, m);
}

/* Remembers a message handed to a backend that reports deliveries. */
/* 1 when id can key a "sent" row: short, and without control
 * characters (a backend may clean those away before reporting). */
static int
sent_id_ok(const char *id)
{
	if (id == NULL || *id == '\0' || strlen(id) > SENT_ID_MAX)
		return 0;
	for (const unsigned char *p = (const unsigned char *)id; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return 0;
	return 1;
}

/* The row's key: the contact and the id, so the same id toward two
 * contacts names two messages.  No JID part holds a control character,
 * so LF separates them. */
static char *
sent_key(const char *legacy, const char *id)
{
	return xasprintf(SENT_KEY "%s\n%s", legacy, id);
}

/* Rows never reported go after SENT_KEEP, checked at most hourly. */
static void
sent_expire(struct component *c)
{
	time_t now = time(NULL);
	if (now - c->sent_expired < 3600)
		return;
	c->sent_expired = now;
	int old = store_state_expire(cw->store, c->domain, SENT_KEY,
	    now - SENT_KEEP);
	if (old > 0)
		log_info("%s: forgot %d messages whose delivery was not "
		    "reported in %d days", c->domain, old, SENT_KEEP / 86400);
}

static void
sent_remember(struct session *s, const char *legacy, const char *id,
    const char *from_full, int receipt)
{
	sent_expire(s->c);
	if (!sent_id_ok(id))
		return;
	char *key = sent_key(legacy, id);
	char *value = xasprintf("%s\n%d\n%s", legacy, receipt ? 1 : 0,
	    from_full);
	store_state_set(cw->store, s->c->domain, s->jid, key, value,
	    strlen(value));
	free(value);
	free(key);
}

/* Takes the row of id sent to legacy: 1, the sender's full JID (caller
 * frees) and whether a receipt was asked; 0 when there is none. */
static int
sent_take(struct session *s, const char *legacy, const char *id, char **to,
    int *receipt)
{
	if (!sent_id_ok(id))
		return 0;
	char *key = sent_key(legacy, id);
	char *value = NULL;
	int found = store_state_get(cw->store, s->c->domain, s->jid, key,
	    &value, NULL) == 1;
	char *nl = found ? strchr(value, '\n') : NULL;
	char *nl2 = nl ? strchr(nl + 1, '\n') : NULL;
	/* An id the user reused toward another contact is not this one. */
	if (nl2 != NULL && (size_t)(nl - value) == strlen(legacy) &&
	    memcmp(value, legacy, strlen(legacy)) == 0) {
		store_state_remove(cw->store, s->c->domain, s->jid, key);
		*receipt = nl[1] == '1';
		*to = xstrdup(nl2 + 1);
	} else {
		found = 0;
	}
	free(value);
	free(key);
	return found;
}

void
session_message_delivered(struct session *s, const char *legacy,
    const char *id)
{
	char *to = NULL;
	int receipt = 0;
	if (!sent_take(s, legacy, id, &to, &receipt))
		return;
	char *from = receipt ? session_contact_jid(s->c, legacy) : NULL;
	if (from != NULL) {
		struct stanza *m = stanza_new("message", NS_COMPONENT);
		stanza_set_attr(m, "from", from);
		stanza_set_attr(m, "to", to);
		struct stanza *r = stanza_new_child(m, "received", NS_RECEIPTS);
		stanza_set_attr(r, "id", id);
		deliver(s->c, m);
		free(from);
	}
	free(to);
}

void
session_contact_presence(struct session *s, const char *legacy,
    const char *show, const char *status)
{
	struct contact_presence *cp = contact_find(s, legacy, 1);
	free(cp->show);
	free(cp->status);
	cp->show = show ? xstrdup(show) : NULL;
	cp->status = status ? xstrdup(status) : NULL;
	send_contact_presence(s, cp, s->jid);
}

#define NS_ROSTER "jabber:iq:roster"

/* The server lets us write users' rosters (XEP-0356), and has not
 * refused it yet. */
static int
can_push_roster(const struct component *c)
{
	return !c->roster_push_refused && c->state == COMPONENT_READY &&
	    (strcmp(c->privilege.roster, "set") == 0 ||
	    strcmp(c->privilege.roster, "both") == 0);
}

static struct stanza *
roster_push(const struct component *c, const char *user,
    const char *contact, const char *name, const char *subscription)
{
	struct stanza *iq = stanza_new("iq", NS_COMPONENT);
	stanza_set_attr(iq, "type", "set");
	stanza_set_attr(iq, "from", c->domain);
	stanza_set_attr(iq, "to", user);
	struct stanza *q = stanza_new_child(iq, "query", NS_ROSTER);
	struct stanza *item = stanza_new_child(q, "item", NULL);
	stanza_set_attr(item, "jid", contact);
	if (name != NULL)
		stanza_set_attr(item, "name", name);
	stanza_set_attr(item, "subscription", subscription);
	return iq;
}

/* Without roster privileges: ask the user, as a person would. */
static void
request_subscription(struct component *c, const char *user,
    const char *contact, const char *name)
{
	struct stanza *p = presence(contact, user, "subscribe");
	if (name != NULL) {
		struct stanza *n = stanza_new_child(p, "nick", NS_NICK);
		stanza_add_text(n, name, strlen(name));
	}
	deliver(c, p);
}

struct push_ctx {
	char *user, *contact, *legacy, *name;
};

static void
roster_pushed(struct component *c, const struct stanza *answer, void *arg)
{
	struct push_ctx *p = arg;
	const char *type = answer ? stanza_attr(answer, "type") : NULL;
	if (type != NULL && strcmp(type, "result") == 0) {
		store_contact_set(cw->store, c->domain, p->user, p->legacy,
		    NULL, "both");
	} else {
		/* ejabberd before 23.10 grants roster access and then
		 * refuses every set: remember, and ask users instead. */
		if (answer != NULL && !c->roster_push_refused) {
			log_warn("%s: the server refused a privileged roster "
			    "push; falling back to subscription requests",
			    c->domain);
			c->roster_push_refused = 1;
		}
		request_subscription(c, p->user, p->contact, p->name);
	}
	free(p->user);
	free(p->contact);
	free(p->legacy);
	free(p->name);
	free(p);
}

void
session_contact_known(struct session *s, const char *legacy,
    const char *name)
{
	char *contact = session_contact_jid(s->c, legacy);
	if (contact == NULL)
		return;
	/* Once: a contact already in the store was pushed or asked. */
	if (store_contact_get(cw->store, s->c->domain, s->jid, legacy,
	    NULL) == 0) {
		store_contact_set(cw->store, s->c->domain, s->jid, legacy, name,
		    "none");
		if (can_push_roster(s->c)) {
			struct push_ctx *p = xcalloc(1, sizeof(*p));
			p->user = xstrdup(s->jid);
			p->contact = xstrdup(contact);
			p->legacy = xstrdup(legacy);
			p->name = name ? xstrdup(name) : NULL;
			component_send_iq(s->c, roster_push(s->c, s->jid,
			    contact, name, "both"), roster_pushed, p, 30);
		} else {
			request_subscription(s->c, s->jid, contact, name);
		}
	}
	free(contact);
}

static struct resource *resource_find(struct session *s, const char *name);

void
session_message_failed(struct session *s, const char *legacy,
    const char *id, const char *condition, const char *text)
{
	/* The resource that sent it, when known: servers drop error
	 * messages to a bare JID (RFC 6121 8.5.2.1.1). */
	char *sender = NULL;
	int receipt;
	if (!sent_take(s, legacy, id, &sender, &receipt)) {
		/* Else the resource that last sent a message, while it is
		 * online; the bare JID as a last resort. */
		const char *r = s->last_resource;
		sender = r != NULL && resource_find(s, r) != NULL ?
		    xasprintf("%s/%s", s->jid, r) : xstrdup(s->jid);
	}
	char *from = session_contact_jid(s->c, legacy);
	if (from == NULL) {
		free(sender);
		return;
	}
	struct stanza *m = stanza_new("message", NS_COMPONENT);
	stanza_set_attr(m, "from", from);
	stanza_set_attr(m, "to", sender);
	if (id != NULL)
		stanza_set_attr(m, "id", id);
	struct stanza *err = stanza_error_reply(m, condition, text);
	stanza_free(m);
	/* stanza_error_reply swapped the addresses: swap them back. */
	stanza_set_attr(err, "from", from);
	stanza_set_attr(err, "to", sender);
	deliver(s->c, err);
	free(from);
	free(sender);
}

/* ---- from XMPP ---- */

static struct resource *
resource_find(struct session *s, const char *name)
{
	for (size_t i = 0; i < s->nresources; i++)
		if (strcmp(s->resources[i].name, name) == 0)
			return &s->resources[i];
	return NULL;
}

static void
resource_remove(struct session *s, const char *name)
{
	for (size_t i = 0; i < s->nresources; i++) {
		if (strcmp(s->resources[i].name, name) != 0)
			continue;
		free(s->resources[i].name);
		s->resources[i] = s->resources[--s->nresources];
		return;
	}
}

/* The user's most available resource speaks for the legacy presence. */
static void
user_available(struct session *s, const struct stanza *st,
    const struct jid *from)
{
	const char *res = from->resource ? from->resource : "";
	char *prio = stanza_child_text(st, "priority");
	int priority = prio ? atoi(prio) : 0;
	free(prio);
	struct resource *r = resource_find(s, res);
	int is_new = r == NULL;
	if (is_new) {
		if (s->nresources >= 64) {
			log_warn("%s: %s: more than 64 resources; ignoring %s",
			    s->c->domain, s->jid, res);
			return;
		}
		s->resources = xreallocarray(s->resources, s->nresources + 1,
		    sizeof(*s->resources));
		r = &s->resources[s->nresources++];
		r->name = xstrdup(res);
	}
	r->priority = priority;
	event_del(s->linger);

	char *full = jid_to_string(from);
	if (s->state == SESSION_OFFLINE || s->state == SESSION_FAILED) {
		start_login(s);
	} else if (is_new) {
		/* A new resource of an online user: tell it what the others
		 * already know. */
		send_gateway_presence(s, full);
		for (size_t i = 0; i < s->ncontacts; i++)
			if (s->contacts[i].show != NULL)
				send_contact_presence(s, &s->contacts[i], full);
	}
	free(full);
	if (s->state == SESSION_ONLINE &&
	    s->c->backend->set_presence != NULL) {
		char *show = stanza_child_text(st, "show");
		char *status = stanza_child_text(st, "status");
		s->c->backend->set_presence(s, show ? show : "", status);
		free(show);
		free(status);
	}
}

void
session_release(struct session *s)
{
	if (s->nresources > 0 || room_session_count(s) > 0 ||
	    (s->state != SESSION_ONLINE && s->state != SESSION_LOGGING_IN))
		return;
	struct timeval tv = { .tv_sec = (time_t)s->c->linger };
	if (s->c->linger == 0)
		end_login(s, "the user went offline");
	else
		evtimer_add(s->linger, &tv);
}

static void
user_unavailable(struct session *s, const struct jid *from)
{
	resource_remove(s, from->resource ? from->resource : "");
	session_release(s);
}

static void
subscription(struct component *c, struct session *s, const struct stanza *st,
    const char *type, const struct jid *from, const struct jid *to,
    const char *to_s)
{
	char *bare = jid_bare_string(from);
	char *legacy = to->local ? jid_unescape_local(to->local) : NULL;
	const struct backend *b = c->backend;

	if (strcmp(type, "subscribe") == 0 && (s == NULL ||
	    (to->local != NULL && (legacy == NULL || *legacy == '\0' ||
	    (b->valid_address != NULL && !b->valid_address(c, legacy)))))) {
		/* Nothing is stored or sent to the network for a user who is
		 * not registered or an address that is no contact. */
		router_reply_error(c, st, s == NULL ? "registration-required" :
		    "jid-malformed", s == NULL ? "register with the gateway "
		    "first" : "that address is not a valid contact on this "
		    "network");
	} else if (strcmp(type, "subscribe") == 0) {
		/* Approve, and (for contacts) ask back, so the roster item
		 * becomes both-ways as a native contact's would. */
		deliver(c, presence(to_s, bare, "subscribed"));
		if (legacy != NULL) {
			int had = store_contact_get(cw->store, c->domain, bare,
			    legacy, NULL);
			store_contact_set(cw->store, c->domain, bare, legacy,
			    NULL, "both");
			if (had == 0 && b->add_contact != NULL && s != NULL &&
			    s->state == SESSION_ONLINE)
				b->add_contact(s, legacy);
			struct contact_presence *cp = s ? contact_find(s,
			    legacy, 0) : NULL;
			if (cp != NULL)
				send_contact_presence(s, cp, bare);
		} else if (s != NULL) {
			send_gateway_presence(s, bare);
		}
	} else if (strcmp(type, "unsubscribe") == 0) {
		deliver(c, presence(to_s, bare, "unsubscribed"));
		if (legacy != NULL &&
		    store_contact_remove(cw->store, c->domain, bare,
		    legacy) == 1 && b->remove_contact != NULL && s != NULL &&
		    s->state == SESSION_ONLINE)
			b->remove_contact(s, legacy);
	} else if (strcmp(type, "probe") == 0) {
		if (s == NULL) {
			deliver(c, presence(to_s, bare, "unavailable"));
		} else if (legacy == NULL) {
			send_gateway_presence(s, bare);
		} else {
			struct contact_presence *cp = contact_find(s, legacy, 0);
			if (cp != NULL)
				send_contact_presence(s, cp, bare);
			else
				deliver(c, presence(to_s, bare, "unavailable"));
		}
	}
	/* subscribed / unsubscribed: the user answered our request; the
	 * server keeps the roster, nothing for us to do. */
	free(legacy);
	free(bare);
}

void
session_handle_presence(struct component *c, const struct stanza *st,
    const struct jid *from, const struct jid *to)
{
	const char *type = stanza_attr(st, "type");
	const char *to_s = stanza_attr(st, "to");
	char *bare = jid_bare_string(from);
	int registered = store_user_exists(cw->store, c->domain, bare);
	struct session *s = registered == 1 ? session_get(c, bare) : NULL;
	/* Adding the gateway or a contact to the roster is a first use. */
	if (s == NULL && c->open_access && type != NULL &&
	    strcmp(type, "subscribe") == 0)
		s = session_for_use(c, bare);
	free(bare);

	if (type == NULL && to->local != NULL &&
	    stanza_child(st, "x", "http://jabber.org/protocol/muc") != NULL) {
		/* A join to an address the backend calls no room: say so,
		 * rather than take it for the user's own presence. */
		router_reply_error(c, st, c->backend->is_room ? "jid-malformed" :
		    "service-unavailable", c->backend->is_room ? "that is not "
		    "a room address on this network" : "this network has no "
		    "rooms");
	} else if (type == NULL) {
		/* Presence from a user who never registered causes no legacy
		 * traffic at all. */
		if (s != NULL)
			user_available(s, st, from);
	} else if (strcmp(type, "unavailable") == 0) {
		if (s != NULL)
			user_unavailable(s, from);
	} else if (strcmp(type, "error") != 0) {
		subscription(c, s, st, type, from, to, to_s);
	}
}

/* 1 when the session is online; with open access a first message
 * starts the login (a backend that logs in at once is online then). */
static int
online_for_use(struct session *s)
{
	if (s->c->open_access)
		session_ensure_login(s);
	return s->state == SESSION_ONLINE;
}

void
session_handle_message(struct component *c, const struct stanza *st,
    const struct jid *from, const struct jid *to)
{
	const char *type = stanza_attr(st, "type");
	if (type != NULL && strcmp(type, "error") == 0)
		return;
	if (type != NULL && strcmp(type, "groupchat") == 0) {
		router_reply_error(c, st, "not-acceptable",
		    "groupchat messages belong in a room");
		return;
	}
	if (to->local == NULL) {
		router_reply_error(c, st, "service-unavailable", "this is a gateway: "
		    "send messages to contact addresses at this domain");
		return;
	}
	char *body = stanza_child_text(st, "body");
	if (body == NULL) {
		/* Chat states and receipts without a body: nothing to carry. */
		return;
	}
	char *bare = jid_bare_string(from);
	char *legacy = jid_unescape_local(to->local);
	const struct backend *b = c->backend;
	struct session *s = NULL;
	int registered = store_user_exists(cw->store, c->domain, bare);

	if (registered != 1 && !c->open_access) {
		router_reply_error(c, st, "registration-required",
		    "register with the gateway first");
	} else if (legacy == NULL || *legacy == '\0' ||
	    (b->valid_address != NULL && !b->valid_address(c, legacy))) {
		router_reply_error(c, st, "jid-malformed", "that address is not a "
		    "valid contact on this network");
	} else if (b->send_message == NULL) {
		router_reply_error(c, st, "feature-not-implemented",
		    "this gateway cannot send messages yet");
	} else if ((s = session_for_use(c, bare)) == NULL) {
		router_reply_error(c, st, "internal-server-error", "the "
		    "gateway could not keep your session");
	} else if (!online_for_use(s)) {
		char *why = xasprintf("you are not connected to the %s network%s%s",
		    b->description, s->failure ? ": " : " (go online first)",
		    s->failure ? s->failure : "");
		router_reply_error(c, st, "recipient-unavailable", why);
		free(why);
	} else {
		struct backend_error err = { .condition = NULL };
		if (from->resource != NULL) {
			free(s->last_resource);
			s->last_resource = xstrdup(from->resource);
		}
		char *subject = stanza_child_text(st, "subject");
		char *thread = stanza_child_text(st, "thread");
		struct outgoing_message m = {
			.id = stanza_attr(st, "id"),
			.body = body,
			.subject = subject,
			.thread = thread,
			.receipt = stanza_child(st, "request", NS_RECEIPTS) !=
			    NULL,
		};
		/* Remembered before the backend runs: it may report the
		 * delivery (or a failure) at once. */
		char *sender = b->delivery_reports ? jid_to_string(from) :
		    NULL;
		if (sender != NULL)
			sent_remember(s, legacy, m.id, sender, m.receipt);
		if (b->send_message(s, legacy, &m, &err) != 0) {
			char *drop = NULL;
			int receipt;
			if (sender != NULL &&
			    sent_take(s, legacy, m.id, &drop, &receipt))
				free(drop);
			router_reply_error(c, st, err.condition ? err.condition :
			    "undefined-condition", err.text[0] ? err.text :
			    NULL);
		}
		free(sender);
		free(subject);
		free(thread);
	}
	free(legacy);
	free(bare);
	free(body);
}

/* ---- registration changes ---- */

/* 1 when every var of a has the same values in b. */
static int
fields_within(const struct form *a, const struct form *b)
{
	const char *var;
	for (size_t i = 0; (var = form_var_at(a, i)) != NULL; i++) {
		const char *const *va, *const *vb;
		size_t na = form_values(a, var, &va);
		size_t nb = form_values(b, var, &vb);
		if (na != nb)
			return 0;
		for (size_t k = 0; k < na; k++)
			if (strcmp(va[k], vb[k]) != 0)
				return 0;
	}
	return 1;
}

void
session_registered(struct component *c, const char *bare_jid, int first)
{
	struct session *s = find(c, bare_jid);
	if (s != NULL) {
		struct form *old = s->fields;
		s->fields = session_fields_load(c, bare_jid);
		int same = old != NULL && fields_within(old, s->fields) &&
		    fields_within(s->fields, old);
		form_free(old);
		if (same && s->state != SESSION_FAILED) {
			/* The same values submitted again: nothing to do
			 * (a settings form sent unchanged logs nobody out).
			 * A failed session tries them again, though: the
			 * user may have fixed the account meanwhile. */
		} else if (c->backend->registration_changed != NULL &&
		    s->state == SESSION_ONLINE) {
			/* The backend knows what its connections use, and
			 * reconnects only for that, keeping the rooms. */
			c->backend->registration_changed(s);
		} else if (s->state != SESSION_OFFLINE) {
			/* New values: a running (or failed) legacy session
			 * logs in again with them. */
			if (s->state != SESSION_FAILED)
				end_login(s, "the registration changed");
			if (s->nresources > 0)
				start_login(s);
		}
	}
	/* Registered on the gateway itself: no longer a first-use user. */
	if (first)
		session_set_first_use(c, bare_jid, 0);
	/* XEP-0100: the gateway asks for the user's presence, so the
	 * server tells it when the user comes and goes. */
	if (first)
		deliver(c, presence(c->domain, bare_jid, "subscribe"));
}

static void
push_ignored(struct component *c, const struct stanza *answer, void *arg)
{
}

/* Takes an item out of the user's roster: removed outright where we may
 * write the roster, else ended from our side (XEP-0100: the client then
 * removes the item). */
static void
remove_roster_item(struct component *c, const char *user, const char *item)
{
	deliver(c, presence(item, user, "unsubscribe"));
	deliver(c, presence(item, user, "unsubscribed"));
	if (can_push_roster(c))
		component_send_iq(c, roster_push(c, user, item, NULL, "remove"),
		    push_ignored, NULL, 30);
}

struct clean_ctx {
	struct component *c;
	const char *jid;
};

static int
unsubscribe_contact(void *arg, const char *legacy, const char *name,
    const char *sub)
{
	struct clean_ctx *k = arg;
	char *from = session_contact_jid(k->c, legacy);
	if (from != NULL) {
		remove_roster_item(k->c, k->jid, from);
		free(from);
	}
	return 0;
}

void
session_unregistered(struct component *c, const char *bare_jid)
{
	struct session *s = find(c, bare_jid);
	if (s != NULL) {
		if (s->state == SESSION_ONLINE || s->state == SESSION_LOGGING_IN)
			end_login(s, "the user unregistered");
		session_destroy(s);
	}
	/* Clean the roster: every contact and the gateway itself. */
	struct clean_ctx k = { .c = c, .jid = bare_jid };
	store_contact_foreach(cw->store, c->domain, bare_jid,
	    unsubscribe_contact, &k);
	remove_roster_item(c, bare_jid, c->domain);
}

void
session_free_all(struct component *c)
{
	struct session_table *t = c->sessions;
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->nbuckets; i++) {
		while (t->buckets[i] != NULL) {
			struct session *s = t->buckets[i];
			if ((s->state == SESSION_ONLINE ||
			    s->state == SESSION_LOGGING_IN) &&
			    c->backend->logout != NULL)
				c->backend->logout(s, "causeway is stopping");
			session_destroy(s);
		}
	}
	free(t->buckets);
	free(t);
	c->sessions = NULL;
}

size_t
session_count(const struct component *c, size_t *online)
{
	const struct session_table *t = c->sessions;
	size_t n = 0, on = 0;
	if (t != NULL) {
		for (size_t i = 0; i < t->nbuckets; i++)
			for (struct session *s = t->buckets[i]; s; s = s->next) {
				n++;
				on += s->state == SESSION_ONLINE;
			}
	}
	if (online != NULL)
		*online = on;
	return n;
}

int
session_kick(struct component *c, const char *bare_jid, const char *reason)
{
	struct session *s = find(c, bare_jid);
	if (s == NULL || (s->state != SESSION_ONLINE &&
	    s->state != SESSION_LOGGING_IN))
		return -1;
	end_login(s, reason);
	return 0;
}

enum session_state
session_state_of(struct component *c, const char *bare_jid)
{
	struct session *s = find(c, bare_jid);
	return s ? s->state : SESSION_OFFLINE;
}

struct session *
session_find_registered(struct component *c, const char *bare_jid)
{
	if (store_user_exists(cw->store, c->domain, bare_jid) != 1)
		return NULL;
	return session_get(c, bare_jid);
}

struct session *
session_for_use(struct component *c, const char *bare_jid)
{
	int r = store_user_exists(cw->store, c->domain, bare_jid);
	if (r == 1)
		return session_get(c, bare_jid);
	if (r < 0 || !c->open_access)
		return NULL;
	/* The row first, then the marker: a user whose marker was not
	 * written looks registered, which costs nothing but a label. */
	if (store_user_add(cw->store, c->domain, bare_jid) < 0)
		return NULL;
	session_set_first_use(c, bare_jid, 1);
	log_info("%s: %s uses the gateway without registering", c->domain,
	    bare_jid);
	return session_get(c, bare_jid);
}

int
session_is_first_use(struct component *c, const char *bare_jid)
{
	char *v = NULL;
	int r = store_state_get(cw->store, c->domain, bare_jid,
	    FIRST_USE_KEY, &v, NULL);
	free(v);
	return r == 1;
}

void
session_set_first_use(struct component *c, const char *bare_jid, int on)
{
	if (on)
		store_state_set(cw->store, c->domain, bare_jid, FIRST_USE_KEY,
		    "1", 1);
	else
		store_state_remove(cw->store, c->domain, bare_jid,
		    FIRST_USE_KEY);
}

void
session_ensure_login(struct session *s)
{
	if (s->state == SESSION_OFFLINE || s->state == SESSION_FAILED)
		start_login(s);
}

void *
session_rooms(const struct session *s)
{
	return s->rooms;
}

void
session_set_rooms(struct session *s, void *rooms)
{
	s->rooms = rooms;
}
