/*
 * Sessions: a registered user's presence on XMPP and their legacy
 * connection, and everything that flows between the two.
 *
 * Lifecycle of a session (one per component and bare JID):
 *
 *   OFFLINE --first available resource--> LOGGING_IN --login ok--> ONLINE
 *   LOGGING_IN --login failed--> FAILED (until the next available)
 *   ONLINE --last resource unavailable--> linger timer --> OFFLINE
 *   ONLINE --legacy connection lost--> FAILED (told to the user)
 *
 * Only registered users have sessions.  The session keeps the user's
 * resources (with priorities) so the first one in starts the legacy
 * login and the last one out ends it after the component's linger.
 *
 * The backend calls the session_* functions below to speak to the user;
 * it never builds a stanza itself.
 */
#ifndef CAUSEWAY_SESSION_H
#define CAUSEWAY_SESSION_H

#include <stddef.h>
#include <time.h>

struct component;
struct form;
struct stanza;
struct jid;

enum session_state {
	SESSION_OFFLINE,
	SESSION_LOGGING_IN,
	SESSION_ONLINE,
	SESSION_FAILED,
};

struct session;

/* ---- from the core (router, registration) ---- */

/* Called for each message/presence to the component's domain or to a
 * contact JID of it, from a user who passed the access check (takes
 * nothing; st is borrowed). */
void session_handle_presence(struct component *c, const struct stanza *st,
    const struct jid *from, const struct jid *to);
void session_handle_message(struct component *c, const struct stanza *st,
    const struct jid *from, const struct jid *to);
/* The user registered on the gateway (first = 1: newly, or a first-use
 * user now registers) or changed the registration: values stored.  When
 * they differ from the session's, the backend's registration_changed()
 * decides what to redo, else a running session logs in again. */
void session_registered(struct component *c, const char *bare_jid,
    int first);
/* The user unregistered: log out, forget the session, clean the roster
 * (unsubscribe and unsubscribed from each contact and the gateway). */
void session_unregistered(struct component *c, const char *bare_jid);
/* The component reconnected: hand over stanzas kept in the store. */
void session_component_ready(struct component *c);
/* Ends every session of the component (shutdown). */
void session_free_all(struct component *c);
/* An admin ended the user's legacy session (it starts again when the
 * user next comes online); 0, or -1 when the user has no session. */
int session_kick(struct component *c, const char *bare_jid,
    const char *reason);
/* The user's state; SESSION_OFFLINE when there is no session. */
enum session_state session_state_of(struct component *c,
    const char *bare_jid);
/* Counts for statistics. */
size_t session_count(const struct component *c, size_t *online);

/* ---- for the room layer ---- */
/* The registered user's session (created on demand), NULL when the user
 * is not registered. */
struct session *session_find_registered(struct component *c,
    const char *bare_jid);
/*
 * The user's session for a first use (a join, a private message, a
 * channel list, a command, a roster subscription): the registered
 * user's, or, on a component with open access, a new user row (marked
 * first-use) and its session.  NULL when the user must register first
 * (or the store failed).  The caller checked the allow list.
 */
struct session *session_for_use(struct component *c, const char *bare_jid);
/* 1 when the user's row was created on first use and the user has not
 * registered on the gateway itself since; set/clear the mark. */
int session_is_first_use(struct component *c, const char *bare_jid);
void session_set_first_use(struct component *c, const char *bare_jid,
    int on);
/* Every stored registration value of the user, secrets decrypted (scoped
 * ones as "SCOPE/var"); caller frees. */
struct form *session_fields_load(struct component *c, const char *bare_jid);
/* Starts the legacy login when the session is offline or failed. */
void session_ensure_login(struct session *s);
/* The room layer left its last room: end the session after the linger
 * if no resource is online either. */
void session_release(struct session *s);
/* Keeps a room layer pointer per session. */
void *session_rooms(const struct session *s);
void session_set_rooms(struct session *s, void *rooms);

/* ---- for backends ---- */

struct component *session_component(const struct session *s);
const char *session_jid(const struct session *s);   /* bare JID */
enum session_state session_state(const struct session *s);
/* A registration value (decrypted); NULL when the user has none. */
const char *session_field(const struct session *s, const char *var);
/* The value registered for a scope (backend->register_scope), else the
 * component-wide one (never for fields marked scope_only: credentials
 * go only where they were registered), else NULL.  scope NULL: the
 * component-wide value. */
const char *session_field_scoped(const struct session *s, const char *scope,
    const char *var);
void *session_data(const struct session *s);
void session_set_data(struct session *s, void *data);

/* The login started by backend->login() ended.  ok = 0: text says why
 * (shown to the user). */
void session_login_result(struct session *s, int ok, const char *text);
/* While the session stays online, the gateway's own presence shows show
 * ("" or NULL = available, "away", "xa", "dnd") and status: a backend
 * whose connection dropped and is being retried says so without ending
 * the session (mail still goes out while IMAP reconnects).  Cleared by
 * the next successful login; sent only when it changes. */
void session_gateway_status(struct session *s, const char *show,
    const char *status);
/* The legacy connection is gone on its own (not through logout()). */
void session_disconnected(struct session *s, const char *text);
/* A message from a legacy contact to the user.  type: "chat" or NULL. */
void session_deliver_message(struct session *s, const char *legacy,
    const char *body);
/* The same for a message the network says was sent at stamp (UTC
 * seconds; 0: now): it carries a XEP-0203 delay. */
void session_deliver_message_at(struct session *s, const char *legacy,
    const char *body, time_t stamp);
/* A message from a legacy contact with what mail and SMS carry beyond a
 * body.  Strings are UTF-8, borrowed for the call. */
struct legacy_message {
	const char *body;      /* never NULL */
	const char *subject;   /* <subject>, NULL: none */
	const char *thread;    /* <thread>, NULL: none */
	const char *nick;      /* XEP-0172 nickname of the sender, NULL: none */
	time_t stamp;          /* when it was sent (UTC); 0: now.  A XEP-0203
	                        * delay is added when it is older than 60 s. */
};
/* Delivers it to the user's bare JID as a chat message from the
 * contact.  Works in any session state: a backend that receives while
 * the user is offline (SMS, mail) takes the session from
 * session_find_registered() and the XMPP server keeps the message
 * offline; while the XMPP server itself is away the core keeps it in
 * the store.  0: sent or kept; -1: lost (the address is no JID, the
 * store failed or is full), so a backend that can (an SMS gateway) has
 * it offered again later. */
int session_deliver(struct session *s, const char *legacy,
    const struct legacy_message *m);
/* A message accepted by send_message() reached the far end (an SMS
 * delivery report, the SMTP server accepted the mail): the user gets a
 * XEP-0184 <received/> if that message asked for one.  Call it for every
 * delivered message; the core remembers in the store, across restarts,
 * which ones asked, and forgets the id afterwards. */
void session_message_delivered(struct session *s, const char *legacy,
    const char *id);

/* A legacy contact's presence: show NULL = unavailable, "" = available,
 * or "away", "xa", "dnd", "chat"; status may be NULL. */
void session_contact_presence(struct session *s, const char *legacy,
    const char *show, const char *status);
/* The legacy network lists this contact: make sure the user's roster
 * has it (subscription request). */
void session_contact_known(struct session *s, const char *legacy,
    const char *name);
/* A message accepted by send_message() could not be delivered: the user
 * gets an error message for that id (and the receipt is forgotten). */
void session_message_failed(struct session *s, const char *legacy,
    const char *id, const char *condition, const char *text);

/* The associated data that binds a sealed registration value to its
 * component and user (caller frees). */
char *session_secret_ad(const char *component, const char *jid);

/* The contact JID for a legacy address (caller frees), NULL if it
 * cannot be escaped. */
char *session_contact_jid(const struct component *c, const char *legacy);

#endif
