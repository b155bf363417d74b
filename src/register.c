/*
 * XEP-0077 registration on a component's JID.
 *
 *   get    -> the backend's data form (and the legacy fields old clients
 *             read), with <registered/> and the current values, never
 *             secrets, when the user is registered already
 *   set    -> parse, validate every field, let the backend check the
 *             credentials, and only then store (secrets sealed) and
 *             answer; the gateway then asks for the user's presence
 *   remove -> end the session, delete everything, clean the roster
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "causeway.h"
#include "component.h"
#include "form.h"
#include "jid.h"
#include "log.h"
#include "register.h"
#include "secret.h"
#include "session.h"
#include "stanza.h"
#include "store.h"
#include "xmalloc.h"

struct register_request {
	struct register_request *next;   /* all outstanding requests */
	struct component *c;             /* NULL: the component is gone */
	struct stanza *iq;
	char *jid;
	char *scope;                     /* NULL: the component itself */
	struct form *values;
	/* NULL: answer the XEP-0077 iq; else the settings command's. */
	register_done_fn done;
	void *done_arg;
};

/* Requests waiting for their backend's verdict.  Few at a time: one per
 * user, and the backend answers within a login's time. */
static struct register_request *outstanding;

void
register_component_gone(struct component *c)
{
	for (struct register_request *r = outstanding; r != NULL; r = r->next)
		if (r->c == c)
			r->c = NULL;
}

static int
request_pending(struct component *c, const char *jid)
{
	for (struct register_request *r = outstanding; r != NULL; r = r->next)
		if (r->c == c && strcmp(r->jid, jid) == 0)
			return 1;
	return 0;
}

static void
request_free(struct register_request *req)
{
	struct register_request **pp = &outstanding;
	while (*pp != req)
		pp = &(*pp)->next;
	*pp = req->next;
	stanza_free(req->iq);
	form_free(req->values);
	free(req->jid);
	free(req->scope);
	free(req);
}

/* The fixed element names of XEP-0077 that old clients understand. */
static const char *const legacy_names[] = {
	"username", "nick", "password", "name", "first", "last", "email",
	"address", "city", "state", "zip", "phone", "url", "date", "misc",
	"text", "key", NULL,
};

static int
is_legacy_name(const char *var)
{
	for (size_t i = 0; legacy_names[i] != NULL; i++)
		if (strcmp(legacy_names[i], var) == 0)
			return 1;
	return 0;
}

static char *
bare_from(const struct stanza *iq)
{
	struct jid j;
	if (jid_parse(stanza_attr(iq, "from"), &j) != 0)
		return NULL;
	char *bare = jid_bare_string(&j);
	jid_clear(&j);
	return bare;
}

struct collect {
	struct form *to;
	const char *scope;       /* NULL: component-wide values only */
	size_t scope_len;
	int found;
};

/*
 * Scoped values are stored as "SCOPE/var" (a scope is a host name and
 * vars are words, so '/' separates them unambiguously).
 */
static int
collect_plain(void *arg, const char *var, const void *value, size_t len,
    int sealed)
{
	struct collect *k = arg;
	if (k->scope == NULL) {
		if (strchr(var, '/') != NULL)
			return 0;
	} else {
		if (strncmp(var, k->scope, k->scope_len) != 0 ||
		    var[k->scope_len] != '/')
			return 0;
		var += k->scope_len + 1;
	}
	k->found = 1;
	/* Sealed values are secrets: never shown, not even to admins. */
	if (sealed)
		return 0;
	char *v = xstrndup(value, len);
	form_add(k->to, var, v);
	free(v);
	return 0;
}

/* 1 when the user has any value in that scope; adds the visible ones. */
static int
add_values(struct component *c, const char *jid, const char *scope,
    struct form *to)
{
	struct collect k = { .to = to, .scope = scope,
	    .scope_len = scope ? strlen(scope) : 0 };
	store_field_foreach(cw->store, c->domain, jid, collect_plain, &k);
	return k.found;
}

void
register_add_values(struct component *c, const char *jid, struct form *to)
{
	add_values(c, jid, NULL, to);
}

/* The scope an iq is addressed to (unescaped local part), or NULL for
 * the component's own JID; caller frees. */
static char *
scope_of(const struct stanza *iq)
{
	struct jid j;
	char *scope = NULL;
	if (jid_parse(stanza_attr(iq, "to"), &j) != 0)
		return NULL;
	if (j.local != NULL)
		scope = jid_unescape_local(j.local);
	jid_clear(&j);
	return scope;
}

static struct stanza *
registration_form(struct component *c, const struct stanza *iq,
    const char *jid, const char *scope)
{
	const struct backend *b = c->backend;
	int registered = store_user_exists(cw->store, c->domain, jid) == 1;
	struct form *current = NULL;
	if (registered) {
		current = form_new();
		if (add_values(c, jid, scope, current) == 0 && scope != NULL)
			registered = 0;
	}
	/* A user who only used an open gateway has not registered (the
	 * values saved through the settings command are shown all the
	 * same). */
	if (registered && scope == NULL && session_is_first_use(c, jid))
		registered = 0;
	char *instructions = xasprintf("%s%s",
	    b->register_instructions ? b->register_instructions :
	    "Fill in your account on the legacy network.",
	    registered ? " You are registered; send the form again to "
	    "change your registration." : "");
	struct stanza *res = stanza_reply(iq, "result");
	struct stanza *q = stanza_new_child(res, "query", NS_REGISTER);
	if (registered)
		stanza_new_child(q, "registered", NULL);
	stanza_new_text_child(q, "instructions", instructions);
	for (size_t i = 0; i < b->nregister_fields; i++) {
		const struct form_field_spec *f = &b->register_fields[i];
		if (!is_legacy_name(f->var))
			continue;
		const char *v = current && !f->secret ?
		    form_value(current, f->var) : NULL;
		stanza_new_text_child(q, f->var, v ? v : "");
	}
	char *title = scope ? xasprintf("Your %s account on %s",
	    b->description, scope) : xasprintf("Register with the %s gateway",
	    b->description);
	stanza_add_child(q, form_build("form", title, instructions,
	    NS_REGISTER, b->register_fields, b->nregister_fields, current));
	free(title);
	free(instructions);
	form_free(current);
	return res;
}

/* Old clients send <username/>, <password/>... instead of a form. */
static struct form *
legacy_values(struct component *c, const struct stanza *q, char **error)
{
	const struct backend *b = c->backend;
	struct form *f = form_new();
	for (struct stanza *ch = stanza_first_child(q); ch != NULL;
	    ch = stanza_next_sibling(ch)) {
		const char *name = stanza_name(ch);
		size_t i;
		for (i = 0; i < b->nregister_fields; i++)
			if (strcmp(b->register_fields[i].var, name) == 0)
				break;
		if (i == b->nregister_fields) {
			*error = xasprintf("unknown field <%s/>", name);
			form_free(f);
			return NULL;
		}
		char *v = stanza_text(ch);
		if (strlen(v) > FORM_MAX_VALUE_LEN) {
			*error = xasprintf("%s: the value is too long", name);
			free(v);
			form_free(f);
			return NULL;
		}
		form_add(f, name, v);
		free(v);
	}
	return f;
}

void
register_request_done(struct register_request *req, const char *condition,
    const char *text)
{
	struct component *c = req->c;
	if (c == NULL) {
		/* Removed by a reload while the backend was checking. */
		request_free(req);
		return;
	}
	const struct backend *b = c->backend;
	struct stanza *answer = NULL;
	int added = 0;
	int was_first_use = session_is_first_use(c, req->jid);
	const char *store_error = "the gateway could not store the "
	    "registration";

	if (condition != NULL) {
		log_info("%s: registration of %s refused: %s (%s)", c->domain,
		    req->jid, condition, text ? text : "");
		answer = stanza_error_reply(req->iq, condition, text);
	} else if ((added = store_user_add(cw->store, c->domain,
	    req->jid)) < 0) {
		answer = stanza_error_reply(req->iq, "internal-server-error",
		    "the gateway could not store the registration");
	} else {
		char *ad = session_secret_ad(c->domain, req->jid);
		int failed = 0;
		for (size_t i = 0; i < b->nregister_fields; i++) {
			const struct form_field_spec *f = &b->register_fields[i];
			const char *v = form_value(req->values, f->var);
			if (v == NULL || f->type == FIELD_FIXED)
				continue;
			char *var = req->scope ? xasprintf("%s/%s", req->scope,
			    f->var) : xstrdup(f->var);
			if (!f->secret) {
				failed |= store_field_set(cw->store, c->domain,
				    req->jid, var, v, strlen(v), 0) != 0;
				free(var);
				continue;
			}
			size_t len;
			unsigned char *sealed = secret_seal(cw->key, ad,
			    (const unsigned char *)v, strlen(v), &len);
			failed |= sealed == NULL || store_field_set(cw->store,
			    c->domain, req->jid, var, sealed, len, 1) != 0;
			free(sealed);
			free(var);
		}
		free(ad);
		if (failed) {
			/* No half-registered user without credentials. */
			if (added == 1)
				store_user_remove(cw->store, c->domain,
				    req->jid);
			answer = stanza_error_reply(req->iq,
			    "internal-server-error", store_error);
		} else {
			log_info("%s: %s registered%s%s", c->domain, req->jid,
			    req->scope ? " on " : "",
			    req->scope ? req->scope : "");
			answer = stanza_reply(req->iq, "result");
		}
	}
	int accepted = strcmp(stanza_attr(answer, "type"), "result") == 0;
	/* Credentials for one server do not register anyone with an open
	 * gateway; a registration on the gateway itself does (and then
	 * the gateway asks for the user's presence, XEP-0100). */
	int first = 0;
	if (accepted && req->done != NULL)
		first = 0;    /* settings change values; they register no one */
	else if (accepted && req->scope == NULL)
		first = added == 1 || was_first_use;
	else if (accepted && added == 1 && c->open_access)
		session_set_first_use(c, req->jid, 1);
	else if (accepted)
		first = added == 1;
	if (req->done != NULL) {
		stanza_free(answer);
		req->done(c, req->iq, accepted ? NULL : condition ? condition :
		    "internal-server-error", accepted ? NULL : condition ?
		    text : store_error, req->done_arg);
	} else {
		component_send(c, answer);
	}
	if (accepted)
		session_registered(c, req->jid, first);
	request_free(req);
}

int
register_remove(struct component *c, const char *bare_jid)
{
	int r = store_user_exists(cw->store, c->domain, bare_jid);
	if (r != 1)
		return r;
	session_unregistered(c, bare_jid);
	r = store_user_remove(cw->store, c->domain, bare_jid);
	if (r == 1)
		log_info("%s: %s unregistered", c->domain, bare_jid);
	return r;
}

static struct stanza *
unregister(struct component *c, const struct stanza *iq, const char *jid,
    const char *scope)
{
	int r = store_user_exists(cw->store, c->domain, jid);
	if (r == 1 && scope != NULL) {
		/* Forget that scope's values only; the user stays. */
		char *prefix = xasprintf("%s/", scope);
		r = store_field_remove_prefix(cw->store, c->domain, jid,
		    prefix);
		free(prefix);
		if (r > 0) {
			component_send(c, stanza_reply(iq, "result"));
			session_registered(c, jid, 0);
			return NULL;
		}
	}
	if (r != 1)
		return stanza_error_reply(iq, r < 0 ? "internal-server-error" :
		    "registration-required", "you are not registered");
	/* The answer goes out before the roster cleanup that
	 * register_remove() sends. */
	component_send(c, stanza_reply(iq, "result"));
	register_remove(c, jid);
	return NULL;
}

/* Hands values (taken) to the backend's check; -1 while another
 * submission of the user's is being checked. */
static int
submit(struct component *c, const struct stanza *iq, const char *jid,
    const char *scope, struct form *values, register_done_fn done,
    void *arg)
{
	if (request_pending(c, jid)) {
		form_free(values);
		return -1;
	}
	struct register_request *req = xcalloc(1, sizeof(*req));
	req->next = outstanding;
	outstanding = req;
	req->c = c;
	req->iq = stanza_copy(iq);
	req->jid = xstrdup(jid);
	req->scope = scope ? xstrdup(scope) : NULL;
	req->values = values;
	req->done = done;
	req->done_arg = arg;
	if (c->backend->check_registration != NULL)
		c->backend->check_registration(c, jid, values, req);
	else
		register_request_done(req, NULL, NULL);
	return 0;
}

int
register_submit(struct component *c, const struct stanza *iq,
    const char *jid, struct form *values, register_done_fn done, void *arg)
{
	return submit(c, iq, jid, NULL, values, done, arg);
}

struct form *
register_stored_values(struct component *c, const char *jid)
{
	struct form *all = session_fields_load(c, jid);
	struct form *out = form_new();
	const char *var;
	for (size_t i = 0; (var = form_var_at(all, i)) != NULL; i++) {
		/* Scoped values ("SCOPE/var") belong to their scope. */
		if (strchr(var, '/') != NULL)
			continue;
		const char *const *v;
		size_t n = form_values(all, var, &v);
		for (size_t k = 0; k < n; k++)
			form_add(out, var, v[k]);
	}
	form_free(all);
	return out;
}

struct stanza *
register_handle(struct component *c, const struct stanza *iq,
    const struct stanza *q)
{
	char *jid = bare_from(iq);
	struct stanza *answer = NULL;
	if (jid == NULL)
		return stanza_error_reply(iq, "jid-malformed", NULL);
	char *scope = scope_of(iq);
	if (strcmp(stanza_attr(iq, "type"), "get") == 0) {
		answer = registration_form(c, iq, jid, scope);
		free(scope);
		free(jid);
		return answer;
	}
	if (stanza_child(q, "remove", NULL) != NULL) {
		answer = unregister(c, iq, jid, scope);
		free(scope);
		free(jid);
		return answer;
	}

	struct form *values = NULL;
	char *error = NULL;
	const char *var = NULL;
	const struct stanza *x = stanza_child(q, "x", NS_DATA);
	if (x != NULL) {
		if (form_parse(x, &values, &error) == 0 &&
		    strcmp(form_kind(values), "cancel") == 0) {
			form_free(values);
			free(scope);
			free(jid);
			return stanza_reply(iq, "result");
		}
	} else {
		values = legacy_values(c, q, &error);
	}
	const struct backend *b = c->backend;
	if (values != NULL && form_validate(values, NS_REGISTER,
	    b->register_fields, b->nregister_fields, &var, &error) != 0) {
		form_free(values);
		values = NULL;
	}
	if (values == NULL) {
		answer = stanza_error_reply(iq, "not-acceptable", error);
		free(error);
		free(scope);
		free(jid);
		return answer;
	}

	answer = NULL;
	if (submit(c, iq, jid, scope, values, NULL, NULL) != 0)
		answer = stanza_error_reply(iq, "resource-constraint", "your "
		    "previous registration is still being checked");
	free(scope);
	free(jid);
	return answer;
}

/* XEP-0100: what to type, and the JID for what was typed. */
struct stanza *
register_gateway(struct component *c, const struct stanza *iq,
    const struct stanza *q)
{
	const struct backend *b = c->backend;
	struct stanza *res = stanza_reply(iq, "result");
	struct stanza *out = stanza_new_child(res, "query", NS_GATEWAY);
	if (strcmp(stanza_attr(iq, "type"), "get") == 0) {
		char *desc = xasprintf("Enter the %s address of the contact.",
		    b->description);
		stanza_new_text_child(out, "desc", desc);
		stanza_new_text_child(out, "prompt", "Address");
		free(desc);
		return res;
	}
	char *prompt = stanza_child_text(q, "prompt");
	char *legacy = NULL;
	if (prompt != NULL && *prompt != '\0' && strlen(prompt) <= 1023)
		legacy = b->normalize_address ? b->normalize_address(c,
		    prompt) : xstrdup(prompt);
	char *jid = NULL;
	if (legacy != NULL && (b->valid_address == NULL ||
	    b->valid_address(c, legacy)))
		jid = session_contact_jid(c, legacy);
	free(prompt);
	free(legacy);
	if (jid == NULL) {
		stanza_free(res);
		return stanza_error_reply(iq, "not-acceptable",
		    "that is not an address on this network");
	}
	stanza_new_text_child(out, "jid", jid);
	free(jid);
	return res;
}
