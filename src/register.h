/*
 * In-band registration (XEP-0077) with data forms (XEP-0004), and the
 * XEP-0100 gateway address lookup, on a component's own JID.
 *
 * A registration is answered only after the backend has checked the
 * credentials (check_registration, which may take a real login on the
 * worker pool or the loop): the request waits in a struct
 * register_request until register_request_done().
 */
#ifndef CAUSEWAY_REGISTER_H
#define CAUSEWAY_REGISTER_H

struct component;
struct form;
struct register_request;
struct stanza;

#define NS_REGISTER "jabber:iq:register"
#define NS_GATEWAY "jabber:iq:gateway"

struct stanza *register_handle(struct component *c, const struct stanza *iq,
    const struct stanza *payload);
struct stanza *register_gateway(struct component *c, const struct stanza *iq,
    const struct stanza *payload);

/*
 * Unregisters a user (the <remove/> of XEP-0077, and the "unregister"
 * ad-hoc command): ends the session, cleans the user's roster and
 * deletes everything stored for them.  The caller answers the request
 * first, so the answer arrives before the roster cleanup.  -1 on a store
 * error (logged), 0 when the user was not registered, 1 when removed.
 */
int register_remove(struct component *c, const char *bare_jid);

/* The backend's verdict: condition NULL accepts; otherwise the error
 * (with text for the user) goes back to the client.  Frees req. */
void register_request_done(struct register_request *req,
    const char *condition, const char *text);

/*
 * The settings command's submission: values (taken; the complete set
 * for the gateway itself, secrets included) go through the backend's
 * check_registration like a registration, are stored only when
 * accepted, and then done(c, iq, NULL, NULL, arg), or done(c, iq,
 * condition, text, arg) with nothing changed.  done may run before
 * this returns.  -1 (nothing called) while another submission of the
 * user's is being checked.
 */
typedef void (*register_done_fn)(struct component *c,
    const struct stanza *iq, const char *condition, const char *text,
    void *arg);
int register_submit(struct component *c, const struct stanza *iq,
    const char *jid, struct form *values, register_done_fn done, void *arg);
/* The user's values on the gateway itself (not scoped), secrets
 * decrypted; caller frees. */
struct form *register_stored_values(struct component *c, const char *jid);

/* The component is being freed: its outstanding requests end silently
 * when their backend answers. */
void register_component_gone(struct component *c);

/* Adds the user's stored registration values to a form, leaving out
 * the secret ones. */
void register_add_values(struct component *c, const char *jid,
    struct form *to);

#endif
