/*
 * The backend interface: what a legacy network (IRC, email, SMS) plugs
 * into the core.  A backend is one const struct of designated
 * initializers; a NULL operation means "not supported", and the core then
 * answers feature-not-implemented for it.  Backends never write XML and
 * never include each other: they call the core's functions.
 *
 * BACKEND_ABI changes whenever this struct changes incompatibly; the
 * registry refuses a backend built against another version.
 */
#ifndef CAUSEWAY_BACKEND_H
#define CAUSEWAY_BACKEND_H

#include <stddef.h>

#include "config.h"

#define BACKEND_ABI 5

struct component;
struct form;
struct form_field_spec;
struct register_request;
struct room_list;
struct session;

/* A message from the user to a legacy contact, as the stanza had it.
 * Strings are UTF-8 and borrowed for the call. */
struct outgoing_message {
	const char *id;        /* the stanza's id, NULL: none */
	const char *body;      /* never NULL */
	const char *subject;   /* <subject>, NULL: none */
	const char *thread;    /* <thread>, NULL: none */
	int receipt;           /* the sender asked for a XEP-0184 receipt */
};

/* Why an operation toward the legacy network failed: an RFC 6120 stanza
 * error condition and a sentence for the user. */
struct backend_error {
	const char *condition;
	char text[256];
};

/* An ad-hoc command (XEP-0050) a backend adds on the component's JID:
 * one form, then a note. */
struct backend_command {
	const char *node;          /* not one of the core's command nodes */
	const char *name;
	int admin_only;            /* 1: the component's admins only;
	                            * 0: registered users */
	const char *instructions;
	const struct form_field_spec *fields;
	size_t nfields;
	/* Runs with the submitted form, already validated against fields
	 * (a command without fields runs at once, in NULL); user is the
	 * requester's bare JID.  0: done; -1: refused.  *note
	 * (malloc'ed; may be left NULL) is shown either way. */
	int (*run)(struct component *c, const char *user,
	    const struct form *in, char **note);
};

struct backend {
	int abi;                      /* BACKEND_ABI */
	const char *name;             /* "irc": the value of backend = */
	const char *gateway_type;     /* XEP-0030 gateway identity type */
	const char *description;      /* "IRC", for the default disco name */
	/*
	 * 1: a JID that the component's allow list admits may join rooms,
	 * message contacts, list rooms and run the user commands without
	 * registering first; the core creates the user and the session on
	 * first use.  Registration then only adds credentials.  The
	 * component's require_registration key overrides it.  0: a
	 * registration comes first (mail and SMS need credentials).
	 */
	int open_access;
	/* Keys this backend adds to its [component ...] section. */
	const struct config_option *options;
	/* Section types of its own ([irc-server HOST]), nsections of them. */
	const struct config_section_type *sections;
	size_t nsections;

	/* Lifecycle: init when the component is created, reload after a
	 * SIGHUP changed the configuration, shutdown before it is freed. */
	int (*init)(struct component *c);
	void (*reload)(struct component *c);
	void (*shutdown)(struct component *c);

	/*
	 * Registration (XEP-0077).  The fields of the form; values of
	 * fields marked secret are stored encrypted.  All are handed back
	 * to the session through session_field().
	 */
	const struct form_field_spec *register_fields;
	size_t nregister_fields;
	const char *register_instructions;
	/*
	 * Checks the submitted values against the legacy network (a real
	 * login).  Must end, now or later, with exactly one
	 * register_request_done(req, NULL, NULL) to accept or
	 * register_request_done(req, condition, text) to refuse
	 * ("not-authorized", "conflict", "not-acceptable"...).  NULL: every
	 * valid form is accepted.
	 */
	void (*check_registration)(struct component *c, const char *jid,
	    const struct form *values, struct register_request *req);

	/*
	 * Registration scopes: 1 when legacy (the unescaped local part of a
	 * JID at the component) names something users register with on its
	 * own, with the same fields (an IRC server: nick, SASL account per
	 * network).  Values registered there are read with
	 * session_field_scoped(); NULL: no scopes.
	 */
	int (*register_scope)(struct component *c, const char *legacy);

	/*
	 * Legacy addresses travel as the XEP-0106-escaped local part of a
	 * contact JID.  1 when legacy (unescaped) names a possible contact
	 * on this network.  NULL: any non-empty address.
	 */
	int (*valid_address)(struct component *c, const char *legacy);
	/*
	 * XEP-0100 jabber:iq:gateway: turns what a user typed ("alice",
	 * "+1 555 123") into a legacy address (caller frees), or NULL when
	 * it cannot be one.  NULL: the text is taken as it is.
	 */
	char *(*normalize_address)(struct component *c, const char *text);

	/*
	 * A user's legacy session.  login() starts connecting and reports
	 * with session_login_result(); logout() ends it (no callback).
	 * logout() is called for a session that is online or logging in,
	 * and also when a session ends (unregistered, component removed)
	 * while the backend still holds session_data() for it, whatever its
	 * state: that is where the backend frees it.
	 */
	void (*login)(struct session *s);
	void (*logout)(struct session *s, const char *reason);

	/* 1: the backend calls session_message_delivered() for messages it
	 * knows arrived, so the core keeps XEP-0184 receipt requests and
	 * advertises urn:xmpp:receipts. */
	int delivery_reports;
	/* From XMPP to the legacy network.  0: accepted; -1: refused, with
	 * err filled.  A failure found later is reported with
	 * session_message_failed(m->id), a confirmed delivery with
	 * session_message_delivered(m->id) (the core sends the XEP-0184
	 * receipt when one was asked for). */
	int (*send_message)(struct session *s, const char *legacy,
	    const struct outgoing_message *m, struct backend_error *err);
	/* The user's own presence changed ("" = available, "away", "xa",
	 * "dnd", "chat"). */
	void (*set_presence)(struct session *s, const char *show,
	    const char *status);
	/* The user added or removed a contact in the roster. */
	void (*add_contact)(struct session *s, const char *legacy);
	void (*remove_contact)(struct session *s, const char *legacy);

	/*
	 * Rooms (src/room.h).  is_room: 1 when the legacy address names a
	 * room; NULL: the network has none.  join_room reports with
	 * room_joined() / room_join_failed(); its nick is NULL when the
	 * user did not ask (a persistent room rejoined after a restart):
	 * the backend then uses the nick the user last had there.  The
	 * others answer 0 or -1 with err filled, and report what the
	 * network does through the room_* functions.
	 */
	int (*is_room)(struct component *c, const char *legacy);
	void (*join_room)(struct session *s, const char *room,
	    const char *nick, const char *password);
	void (*leave_room)(struct session *s, const char *room,
	    const char *reason);
	int (*send_groupchat)(struct session *s, const char *room,
	    const char *id, const char *body, struct backend_error *err);
	int (*send_private)(struct session *s, const char *room,
	    const char *nick, const char *body, struct backend_error *err);
	int (*set_subject)(struct session *s, const char *room,
	    const char *subject, struct backend_error *err);
	int (*change_nick)(struct session *s, const char *room,
	    const char *nick, struct backend_error *err);
	int (*kick)(struct session *s, const char *room, const char *nick,
	    const char *reason, struct backend_error *err);
	/*
	 * muc#admin (XEP-0045 9 and 10): give nick the role "visitor",
	 * "participant" or "moderator" (IRC: -v, +v, +o), or the
	 * affiliation "outcast", "none", "member", "admin" or "owner"
	 * (IRC: +b on the nick's mask for outcast, -b to lift it).  A kick
	 * (role none) goes to kick().  0: sent; -1: refused, err filled.
	 * NULL: not supported.
	 */
	int (*set_role)(struct session *s, const char *room, const char *nick,
	    const char *role, const char *reason, struct backend_error *err);
	int (*set_affiliation)(struct session *s, const char *room,
	    const char *nick, const char *affiliation, const char *reason,
	    struct backend_error *err);
	/*
	 * A name a person reads for a legacy address (unescaped), for disco
	 * and nicknames: "#test on irc.libera.chat" for a room, "bot" for a
	 * contact "bot%irc.libera.chat".  Writes at most len bytes to buf
	 * and returns 1, or 0 to let the core show the address itself.
	 * NULL: the address is shown as it is.
	 */
	int (*display_name)(struct component *c, const char *legacy,
	    char *buf, size_t len);
	/* Ad-hoc commands of the backend's own, ncommands of them. */
	const struct backend_command *commands;
	size_t ncommands;
	/* The rooms of a registration scope (an IRC server), for
	 * disco#items there: see src/roomlist.h. */
	void (*list_rooms)(struct session *s, const char *scope,
	    struct room_list *list);
	/*
	 * The user's registration values changed (a registration on the
	 * gateway or a scope, or the settings command) while the session
	 * is online; session_field*() give the new ones.  The backend
	 * redoes only what uses a changed value (IRC: a NICK for a new
	 * nick; for new credentials a reconnect that keeps the rooms
	 * joined).  NULL: the core logs the session out and in again.
	 * Values submitted unchanged call nothing.
	 */
	void (*registration_changed)(struct session *s);
	/*
	 * XEP-0333 chat markers from the user: marker ("displayed") for
	 * the message id that legacy sent (an id the backend gave in
	 * legacy_message.id; anything else must be ignored).  Only for a
	 * registered user whose session is online; nothing is answered.
	 * Non-NULL also makes the gateway advertise
	 * urn:xmpp:chat-markers:0.  NULL: markers are dropped.
	 */
	void (*chat_marker)(struct session *s, const char *legacy,
	    const char *id, const char *marker);
	/*
	 * The legacy address of the person behind nick in room (caller
	 * frees; "nick%irc.libera.chat" for an IRC channel), or NULL when
	 * there is none: the jid of their occupant items, so a client can
	 * write to them directly (XEP-0045 non-anonymous rooms).  NULL: the
	 * items of other occupants carry no jid.
	 */
	char *(*occupant_address)(struct component *c, const char *room,
	    const char *nick);
};

/* The backend compiled in under this name, or NULL. */
const struct backend *backend_find(const char *name);
/* Names of all compiled-in backends, NULL-terminated (for the config
 * enum and --version). */
const char *const *backend_names(void);
/* i-th compiled-in backend, NULL past the end. */
const struct backend *backend_at(size_t i);

#endif
