/*
 * XEP-0050 ad-hoc commands on a component's JID.
 *
 * A command is a row of the table below: a node, a name, who may run it,
 * and one function called once per step.  Every command here asks at
 * most one form, so a run has one of two shapes:
 *
 *   execute --> completed                         (stats, list-users)
 *   execute --> executing + form, sessionid S
 *     S: complete (or execute) + submitted form --> completed
 *     S: cancel                                 --> canceled
 *     S: an invalid submission --> executing, the form again + error note
 *
 * While a run waits for its form it lives in the component's table of
 * pending runs under a random sessionid, bound to the full JID that
 * started it (nobody else may continue or cancel it).  A run not
 * continued within ADHOC_TIMEOUT seconds expires; the table holds at most
 * ADHOC_MAX_RUNS runs per component and ADHOC_MAX_RUNS_PER_USER per bare
 * JID, dropping the least recently used, so nobody can make it grow
 * without bound.
 *
 * Who may run what is checked at every step, not only the first: an
 * admin removed by a reload, or a user who unregistered meanwhile, cannot
 * finish a run started before.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include <openssl/rand.h>

#include "adhoc.h"
#include "backend.h"
#include "causeway.h"
#include "component.h"
#include "form.h"
#include "jid.h"
#include "log.h"
#include "register.h"
#include "service.h"
#include "session.h"
#include "stanza.h"
#include "store.h"
#include "worker.h"
#include "xmalloc.h"


#define ADHOC_ID_BYTES 16
#define ADHOC_MAX_RUNS 1000
#define ADHOC_MAX_RUNS_PER_USER 16
/* Rows of list-users; past that a note says how many were left out, so
 * the answer stays a reasonable stanza on a large gateway. */
#define ADHOC_LIST_MAX 500

enum adhoc_access {
	ADHOC_USER,      /* registered users */
	ADHOC_ADMIN,     /* the component's admins */
};

enum adhoc_status {
	ADHOC_EXECUTING, /* a form is shown; its answer is the next step */
	ADHOC_COMPLETED,
	ADHOC_DEFERRED,  /* completed; the command sends the answer itself
	                  * (after an asynchronous check) */
};

/* What one step of a command sees and answers. */
struct adhoc_ctx {
	struct component *c;
	const char *requester;    /* full JID */
	const char *user;         /* its bare JID */
	const struct adhoc_command *cmd;
	const struct stanza *iq;  /* the request (for a deferred answer) */
	const char *sessionid;    /* the run's, NULL on a first step */
	/* Filled by the command. */
	struct stanza *form;      /* <x/> to show, or NULL */
	const char *note_type;    /* "info", "warn", "error", or NULL */
	char *note;
	/* Runs after the answer is sent (unregistering must answer before
	 * the roster cleanup, as XEP-0077's <remove/> does). */
	void (*after)(struct adhoc_ctx *x);
};

/* in is the submitted form, NULL on the first step. */
typedef enum adhoc_status (*adhoc_step_fn)(struct adhoc_ctx *x,
    const struct form *in);

struct adhoc_command {
	const char *node;
	const char *name;
	enum adhoc_access access;
	adhoc_step_fn step;
	const struct backend_command *bc;  /* a backend's, run by cmd_backend */
};

/* A run waiting for its form. */
struct adhoc_run {
	TAILQ_ENTRY(adhoc_run) entry;
	char id[ADHOC_ID_BYTES * 2 + 1];
	const struct adhoc_command *cmd;
	char *requester;          /* full JID, as jid_to_string() writes it */
	char *user;               /* its bare JID */
	time_t created;
	/* The last step: expiry counts from it, so a run expires after
	 * ADHOC_TIMEOUT seconds of silence, not of total length. */
	time_t last;
};

TAILQ_HEAD(adhoc_runs, adhoc_run);

struct adhoc_state {
	struct adhoc_runs runs;   /* least recently used first */
	size_t nruns;
	/* The backend's commands in the core's shape, NULL-node ended. */
	struct adhoc_command *backend_cmds;
};

static enum adhoc_status cmd_settings(struct adhoc_ctx *, const struct form *);
static struct stanza *command_reply(const struct stanza *iq, const char *node,
    const char *sessionid, const char *status);
static enum adhoc_status cmd_unregister(struct adhoc_ctx *,
    const struct form *);
static enum adhoc_status cmd_list_users(struct adhoc_ctx *,
    const struct form *);
static enum adhoc_status cmd_user_details(struct adhoc_ctx *,
    const struct form *);
static enum adhoc_status cmd_disconnect_user(struct adhoc_ctx *,
    const struct form *);
static enum adhoc_status cmd_announce(struct adhoc_ctx *, const struct form *);
static enum adhoc_status cmd_stats(struct adhoc_ctx *, const struct form *);
static enum adhoc_status cmd_backend(struct adhoc_ctx *, const struct form *);

static const struct adhoc_command commands[] = {
	{ .node = "settings", .name = "Change settings",
	  .access = ADHOC_USER, .step = cmd_settings },
	{ .node = "unregister", .name = "Unregister from this gateway",
	  .access = ADHOC_USER, .step = cmd_unregister },
	{ .node = "list-users", .name = "List registered users",
	  .access = ADHOC_ADMIN, .step = cmd_list_users },
	{ .node = "user-details", .name = "Show a user's details",
	  .access = ADHOC_ADMIN, .step = cmd_user_details },
	{ .node = "disconnect-user", .name = "Disconnect a user",
	  .access = ADHOC_ADMIN, .step = cmd_disconnect_user },
	{ .node = "announce", .name = "Send an announcement to all users",
	  .access = ADHOC_ADMIN, .step = cmd_announce },
	{ .node = "stats", .name = "Show statistics",
	  .access = ADHOC_ADMIN, .step = cmd_stats },
	{ .node = NULL },
};

/* ---- helpers ---- */

/* Expiry must not follow the wall clock: a clock set forward would
 * expire every run at once. */
static time_t
now_monotonic(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		return time(NULL);
	return ts.tv_sec;
}

static const char *
state_name(enum session_state s)
{
	switch (s) {
	case SESSION_OFFLINE:
		return "offline";
	case SESSION_LOGGING_IN:
		return "logging in";
	case SESSION_ONLINE:
		return "online";
	case SESSION_FAILED:
		return "failed";
	}
	return "unknown";
}

static void
set_note(struct adhoc_ctx *x, const char *type, char *text)
{
	free(x->note);
	x->note_type = type;
	x->note = text;
}

/* The bare form of a JID typed into a jid-single field (validated
 * already); NULL when it does not parse. */
static char *
bare_of(const char *s)
{
	struct jid j;
	if (s == NULL || jid_parse(s, &j) != 0)
		return NULL;
	char *bare = jid_bare_string(&j);
	jid_clear(&j);
	return bare;
}

/* Validation failed: the same form again, with the reason. */
static enum adhoc_status
ask_again(struct adhoc_ctx *x, struct stanza *form, char *error)
{
	x->form = form;
	set_note(x, "error", error != NULL ? error :
	    xstrdup("the form is not valid"));
	return ADHOC_EXECUTING;
}

/*
 * The backend's registration fields a user may see and change after
 * registering: not secret (those need the credential check of a new
 * registration) and not fixed (those are text).  Caller frees the
 * array, not the strings (borrowed from the backend).
 */
static struct form_field_spec *
plain_fields(const struct backend *b, size_t *n)
{
	struct form_field_spec *specs = xcalloc(b->nregister_fields + 1,
	    sizeof(*specs));
	*n = 0;
	for (size_t i = 0; i < b->nregister_fields; i++) {
		const struct form_field_spec *f = &b->register_fields[i];
		if (f->secret || f->type == FIELD_FIXED)
			continue;
		specs[(*n)++] = *f;
	}
	return specs;
}

/* ---- user commands ---- */

static struct stanza *
settings_form(struct adhoc_ctx *x, const struct form_field_spec *specs,
    size_t n, const struct form *values)
{
	char *title = xasprintf("Settings of your %s account",
	    x->c->backend->description);
	struct stanza *f = form_build("form", title, "Change what you want "
	    "and submit. Your password is not shown here: register again "
	    "to change it.", NULL, specs, n, values);
	free(title);
	return f;
}

/* A settings submission waiting for the backend's check. */
struct settings_wait {
	char *sessionid;
	char *user;
};

static void
settings_checked(struct component *c, const struct stanza *iq,
    const char *condition, const char *text, void *arg)
{
	struct settings_wait *w = arg;
	struct stanza *res = command_reply(iq, "settings", w->sessionid,
	    "completed");
	struct stanza *note;
	if (condition == NULL) {
		log_info("%s: %s changed their settings", c->domain, w->user);
		note = stanza_new_text_child(stanza_child(res, "command",
		    NS_COMMANDS), "note", "Your settings are saved.");
		stanza_set_attr(note, "type", "info");
	} else {
		log_info("%s: %s: settings refused: %s", c->domain, w->user,
		    condition);
		char *t = xasprintf("Nothing was changed: %s", text ? text :
		    condition);
		note = stanza_new_text_child(stanza_child(res, "command",
		    NS_COMMANDS), "note", t);
		stanza_set_attr(note, "type", "error");
		free(t);
	}
	component_send(c, res);
	free(w->sessionid);
	free(w->user);
	free(w);
}

static enum adhoc_status
cmd_settings(struct adhoc_ctx *x, const struct form *in)
{
	struct component *c = x->c;
	size_t n;
	struct form_field_spec *specs = plain_fields(c->backend, &n);
	enum adhoc_status st = ADHOC_COMPLETED;

	if (n == 0) {
		set_note(x, "info", xstrdup("This gateway has no settings "
		    "to change."));
		goto out;
	}
	if (in == NULL) {
		struct form *current = form_new();
		register_add_values(c, x->user, current);
		x->form = settings_form(x, specs, n, current);
		form_free(current);
		st = ADHOC_EXECUTING;
		goto out;
	}
	char *error = NULL;
	if (form_validate(in, NULL, specs, n, NULL, &error) != 0) {
		st = ask_again(x, settings_form(x, specs, n, in), error);
		goto out;
	}
	/*
	 * What the backend checks is the whole registration: the stored
	 * values (secrets too) with the submitted ones over them.  A field
	 * left out of the submission keeps its value.  The same validation
	 * and live check as a registration, and nothing is stored when the
	 * check fails.
	 */
	const struct backend *b = c->backend;
	struct form *stored = register_stored_values(c, x->user);
	struct form *merged = form_new();
	for (size_t i = 0; i < b->nregister_fields; i++) {
		const char *var = b->register_fields[i].var;
		const char *v = form_value(in, var);
		int submitted = 0;
		for (size_t k = 0; k < n && !submitted; k++)
			submitted = strcmp(specs[k].var, var) == 0 && v != NULL;
		if (!submitted)
			v = form_value(stored, var);
		if (v != NULL)
			form_add(merged, var, v);
	}
	form_free(stored);
	if (form_validate(merged, NULL, b->register_fields,
	    b->nregister_fields, NULL, &error) != 0) {
		form_free(merged);
		st = ask_again(x, settings_form(x, specs, n, in), error);
		goto out;
	}
	struct settings_wait *w = xcalloc(1, sizeof(*w));
	w->sessionid = x->sessionid ? xstrdup(x->sessionid) : NULL;
	w->user = xstrdup(x->user);
	if (register_submit(c, x->iq, x->user, merged, settings_checked,
	    w) != 0) {
		free(w->sessionid);
		free(w->user);
		free(w);
		set_note(x, "error", xstrdup("Your previous change is still "
		    "being checked."));
		goto out;
	}
	st = ADHOC_DEFERRED;
out:
	free(specs);
	return st;
}

static const struct form_field_spec unregister_specs[] = {
	{ .var = "confirm", .type = FIELD_BOOLEAN,
	  .label = "Yes, unregister me", .required = 1, .def = "0",
	  .desc = "Ends your session and removes your account and "
	  "contacts from this gateway." },
};

static void
unregister_after(struct adhoc_ctx *x)
{
	register_remove(x->c, x->user);
}

static enum adhoc_status
cmd_unregister(struct adhoc_ctx *x, const struct form *in)
{
	const size_t n = sizeof(unregister_specs) / sizeof(unregister_specs[0]);
	if (in == NULL) {
		/* Removing everything deserves one confirmation. */
		x->form = form_build("form", "Unregister", "Your session "
		    "ends and the gateway forgets your account and your "
		    "contacts.", NULL, unregister_specs, n, NULL);
		return ADHOC_EXECUTING;
	}
	char *error = NULL;
	if (form_validate(in, NULL, unregister_specs, n, NULL, &error) != 0)
		return ask_again(x, form_build("form", "Unregister", NULL,
		    NULL, unregister_specs, n, NULL), error);
	if (!form_bool(in, "confirm")) {
		set_note(x, "info", xstrdup("Nothing changed: you are still "
		    "registered."));
		return ADHOC_COMPLETED;
	}
	x->after = unregister_after;
	set_note(x, "info", xstrdup("You are unregistered."));
	return ADHOC_COMPLETED;
}

/* ---- admin commands ---- */

struct list_ctx {
	struct component *c;
	struct stanza *x;
	size_t n;
};

static void
item_field(struct stanza *item, const char *var, const char *value)
{
	struct stanza *f = stanza_new_child(item, "field", NULL);
	stanza_set_attr(f, "var", var);
	stanza_new_text_child(f, "value", value);
}

static int
list_user(void *arg, const char *jid)
{
	struct list_ctx *k = arg;
	if (k->n++ >= ADHOC_LIST_MAX)
		return 0;
	struct stanza *item = stanza_new_child(k->x, "item", NULL);
	item_field(item, "jid", jid);
	item_field(item, "state", state_name(session_state_of(k->c, jid)));
	return 0;
}

static void
reported_field(struct stanza *rep, const char *var, const char *type,
    const char *label)
{
	struct stanza *f = stanza_new_child(rep, "field", NULL);
	stanza_set_attr(f, "var", var);
	stanza_set_attr(f, "type", type);
	stanza_set_attr(f, "label", label);
}

static enum adhoc_status
cmd_list_users(struct adhoc_ctx *x, const struct form *in)
{
	(void)in;
	/* A table (XEP-0004 reported + items), which form_build() does
	 * not make. */
	struct list_ctx k = { .c = x->c, .x = stanza_new("x", NS_DATA) };
	stanza_set_attr(k.x, "type", "result");
	stanza_new_text_child(k.x, "title", "Registered users");
	struct stanza *rep = stanza_new_child(k.x, "reported", NULL);
	reported_field(rep, "jid", "jid-single", "User");
	reported_field(rep, "state", "text-single", "Session");
	if (store_user_foreach(cw->store, x->c->domain, list_user, &k) != 0) {
		stanza_free(k.x);
		set_note(x, "error", xstrdup("The gateway could not read "
		    "its users."));
		return ADHOC_COMPLETED;
	}
	x->form = k.x;
	if (k.n > ADHOC_LIST_MAX)
		set_note(x, "warn", xasprintf("%zu users; the first %d are "
		    "shown.", k.n, ADHOC_LIST_MAX));
	else
		set_note(x, "info", xasprintf("%zu registered user%s.", k.n,
		    k.n == 1 ? "" : "s"));
	return ADHOC_COMPLETED;
}

static const struct form_field_spec user_specs[] = {
	{ .var = "jid", .type = FIELD_JID_SINGLE, .label = "User",
	  .required = 1 },
};

static int
count_contact(void *arg, const char *legacy, const char *name,
    const char *subscription)
{
	(void)legacy;
	(void)name;
	(void)subscription;
	(*(size_t *)arg)++;
	return 0;
}

static enum adhoc_status
cmd_user_details(struct adhoc_ctx *x, const struct form *in)
{
	struct component *c = x->c;
	const size_t nuser = sizeof(user_specs) / sizeof(user_specs[0]);
	char *error = NULL;
	if (in == NULL) {
		x->form = form_build("form", "User details", "Whose details?",
		    NULL, user_specs, nuser, NULL);
		return ADHOC_EXECUTING;
	}
	if (form_validate(in, NULL, user_specs, nuser, NULL, &error) != 0)
		return ask_again(x, form_build("form", "User details", NULL,
		    NULL, user_specs, nuser, in), error);

	char *jid = bare_of(form_value(in, "jid"));
	int r = jid ? store_user_exists(cw->store, c->domain, jid) : 0;
	if (r != 1) {
		set_note(x, "error", r < 0 ? xstrdup("The gateway could not "
		    "read its users.") : xasprintf("%s is not registered.",
		    jid ? jid : "That JID"));
		free(jid);
		return ADHOC_COMPLETED;
	}
	log_info("%s: %s looks at the details of %s", c->domain,
	    x->requester, jid);

	/* The user's plain values, shown read-only: a result form shows
	 * the value of every spec, so the specs are copied as text-single
	 * (text-private would hide it) without defaults (a default is not
	 * what the user gave). */
	const struct backend *b = c->backend;
	size_t n;
	struct form_field_spec *fields = plain_fields(b, &n);
	struct form_field_spec *specs = xcalloc(n + 3, sizeof(*specs));
	size_t ns = 0;
	specs[ns++] = (struct form_field_spec){ .var = "jid",
	    .type = FIELD_JID_SINGLE, .label = "User" };
	for (size_t i = 0; i < n; i++) {
		specs[ns] = fields[i];
		if (specs[ns].type == FIELD_TEXT_PRIVATE)
			specs[ns].type = FIELD_TEXT_SINGLE;
		specs[ns].required = 0;
		specs[ns].def = NULL;
		specs[ns].desc = NULL;
		ns++;
	}
	specs[ns++] = (struct form_field_spec){ .var = "contacts",
	    .type = FIELD_TEXT_SINGLE, .label = "Contacts" };
	specs[ns++] = (struct form_field_spec){ .var = "session",
	    .type = FIELD_TEXT_SINGLE, .label = "Session" };

	struct form *values = form_new();
	form_add(values, "jid", jid);
	register_add_values(c, jid, values);
	size_t ncontacts = 0;
	store_contact_foreach(cw->store, c->domain, jid, count_contact,
	    &ncontacts);
	char *count = xasprintf("%zu", ncontacts);
	form_add(values, "contacts", count);
	free(count);
	form_add(values, "session", state_name(session_state_of(c, jid)));

	x->form = form_build("result", "User details", NULL, NULL, specs, ns,
	    values);
	form_free(values);
	free(specs);
	free(fields);
	free(jid);
	return ADHOC_COMPLETED;
}

static const struct form_field_spec disconnect_specs[] = {
	{ .var = "jid", .type = FIELD_JID_SINGLE, .label = "User",
	  .required = 1 },
	{ .var = "reason", .type = FIELD_TEXT_SINGLE, .label = "Reason",
	  .desc = "Shown to the user.", .max_len = 256 },
};

static enum adhoc_status
cmd_disconnect_user(struct adhoc_ctx *x, const struct form *in)
{
	struct component *c = x->c;
	const size_t n = sizeof(disconnect_specs) / sizeof(disconnect_specs[0]);
	char *error = NULL;
	if (in == NULL) {
		x->form = form_build("form", "Disconnect a user", "Ends the "
		    "user's legacy session; it starts again when the user "
		    "next comes online.", NULL, disconnect_specs, n, NULL);
		return ADHOC_EXECUTING;
	}
	if (form_validate(in, NULL, disconnect_specs, n, NULL, &error) != 0)
		return ask_again(x, form_build("form", "Disconnect a user",
		    NULL, NULL, disconnect_specs, n, in), error);
	char *jid = bare_of(form_value(in, "jid"));
	const char *reason = form_value(in, "reason");
	if (reason == NULL || *reason == '\0')
		reason = "an administrator ended the session";
	if (jid == NULL || session_kick(c, jid, reason) != 0) {
		set_note(x, "error", xasprintf("%s is not online.",
		    jid ? jid : "That JID"));
	} else {
		log_info("%s: %s disconnected %s (%s)", c->domain,
		    x->requester, jid, reason);
		set_note(x, "info", xasprintf("%s is disconnected.", jid));
	}
	free(jid);
	return ADHOC_COMPLETED;
}

static const char *const announce_types[] = { "headline", "normal", NULL };

static const struct form_field_spec announce_specs[] = {
	{ .var = "body", .type = FIELD_TEXT_MULTI, .label = "Message",
	  .required = 1 },
	{ .var = "type", .type = FIELD_LIST_SINGLE, .label = "Message type",
	  .options = announce_types, .def = "headline",
	  .desc = "headline: shown once, not kept in chat history." },
};

struct announce_ctx {
	struct component *c;
	const char *type;
	const char *body;
	size_t sent, refused;
};

static int
announce_one(void *arg, const char *jid)
{
	struct announce_ctx *k = arg;
	struct stanza *m = stanza_new("message", NULL);
	stanza_set_attr(m, "from", k->c->domain);
	stanza_set_attr(m, "to", jid);
	stanza_set_attr(m, "type", k->type);
	stanza_new_text_child(m, "body", k->body);
	if (component_send(k->c, m) == 0)
		k->sent++;
	else
		k->refused++;
	return 0;
}

static enum adhoc_status
cmd_announce(struct adhoc_ctx *x, const struct form *in)
{
	struct component *c = x->c;
	const size_t n = sizeof(announce_specs) / sizeof(announce_specs[0]);
	char *error = NULL;
	if (in == NULL) {
		x->form = form_build("form", "Announcement", "Sent from the "
		    "gateway to every registered user.", NULL,
		    announce_specs, n, NULL);
		return ADHOC_EXECUTING;
	}
	if (form_validate(in, NULL, announce_specs, n, NULL, &error) != 0)
		return ask_again(x, form_build("form", "Announcement", NULL,
		    NULL, announce_specs, n, in), error);

	/* text-multi arrives as one value per line. */
	const char *const *lines;
	size_t nlines = form_values(in, "body", &lines);
	size_t len = 1;
	for (size_t i = 0; i < nlines; i++)
		len += strlen(lines[i]) + 1;
	char *body = xcalloc(1, len);
	for (size_t i = 0; i < nlines; i++) {
		if (i > 0)
			strcat(body, "\n");
		strcat(body, lines[i]);
	}
	const char *type = form_value(in, "type");
	struct announce_ctx k = { .c = c, .body = body,
	    .type = type != NULL && *type != '\0' ? type : "headline" };
	if (store_user_foreach(cw->store, c->domain, announce_one, &k) != 0) {
		set_note(x, "error", xstrdup("The gateway could not read "
		    "its users."));
	} else if (k.refused > 0) {
		set_note(x, "warn", xasprintf("Sent to %zu users; %zu could "
		    "not be sent (the queue is full).", k.sent, k.refused));
	} else {
		set_note(x, "info", xasprintf("Sent to %zu user%s.", k.sent,
		    k.sent == 1 ? "" : "s"));
	}
	log_info("%s: %s sent an announcement to %zu users", c->domain,
	    x->requester, k.sent);
	free(body);
	return ADHOC_COMPLETED;
}

static int
count_user(void *arg, const char *jid)
{
	(void)jid;
	(*(size_t *)arg)++;
	return 0;
}

/* VmRSS in KiB, -1 where /proc does not tell (not Linux).  /proc is
 * answered from the kernel's memory, so reading it does not block the
 * loop the way a file on a disk could. */
static long
resident_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kib = -1;
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

static const struct form_field_spec stats_specs[] = {
	{ .var = "users", .type = FIELD_TEXT_SINGLE,
	  .label = "Registered users" },
	{ .var = "sessions", .type = FIELD_TEXT_SINGLE, .label = "Sessions" },
	{ .var = "online", .type = FIELD_TEXT_SINGLE,
	  .label = "Online sessions" },
	{ .var = "stanzas-in", .type = FIELD_TEXT_SINGLE,
	  .label = "Stanzas received" },
	{ .var = "stanzas-out", .type = FIELD_TEXT_SINGLE,
	  .label = "Stanzas sent" },
	{ .var = "queued", .type = FIELD_TEXT_SINGLE,
	  .label = "Stanzas queued" },
	{ .var = "worker-jobs", .type = FIELD_TEXT_SINGLE,
	  .label = "Worker jobs pending" },
	{ .var = "uptime", .type = FIELD_TEXT_SINGLE,
	  .label = "Uptime (seconds)" },
	{ .var = "memory", .type = FIELD_TEXT_SINGLE,
	  .label = "Resident memory (KiB)" },
};

static void
add_number(struct form *f, const char *var, unsigned long long v)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "%llu", v);
	form_add(f, var, buf);
}

static enum adhoc_status
cmd_stats(struct adhoc_ctx *x, const struct form *in)
{
	struct component *c = x->c;
	(void)in;
	size_t users = 0, online = 0;
	if (store_user_foreach(cw->store, c->domain, count_user, &users) != 0) {
		set_note(x, "error", xstrdup("The gateway could not read "
		    "its users."));
		return ADHOC_COMPLETED;
	}
	size_t sessions = session_count(c, &online);
	time_t now = time(NULL);
	long rss = resident_kib();

	struct form *v = form_new();
	add_number(v, "users", users);
	add_number(v, "sessions", sessions);
	add_number(v, "online", online);
	add_number(v, "stanzas-in", c->stats.stanzas_in);
	add_number(v, "stanzas-out", c->stats.stanzas_out);
	add_number(v, "queued", c->queued);
	add_number(v, "worker-jobs", cw->workers ?
	    worker_pending(cw->workers) : 0);
	add_number(v, "uptime", now > cw->started ?
	    (unsigned long long)(now - cw->started) : 0);
	if (rss >= 0)
		add_number(v, "memory", (unsigned long long)rss);
	else
		form_add(v, "memory", "unknown");
	x->form = form_build("result", "Statistics", NULL, NULL, stats_specs,
	    sizeof(stats_specs) / sizeof(stats_specs[0]), v);
	form_free(v);
	return ADHOC_COMPLETED;
}

/* ---- the table of pending runs ---- */

static struct adhoc_state *
state(struct component *c)
{
	if (c->adhoc == NULL) {
		c->adhoc = xcalloc(1, sizeof(*c->adhoc));
		TAILQ_INIT(&c->adhoc->runs);
	}
	return c->adhoc;
}

static void
run_free(struct adhoc_state *t, struct adhoc_run *r)
{
	TAILQ_REMOVE(&t->runs, r, entry);
	t->nruns--;
	free(r->requester);
	free(r->user);
	free(r);
}

static void
expire_runs(struct component *c, time_t now)
{
	struct adhoc_state *t = state(c);
	struct adhoc_run *r;
	/* Least recently used first: the first live run ends the scan. */
	while ((r = TAILQ_FIRST(&t->runs)) != NULL &&
	    now - r->last >= ADHOC_TIMEOUT) {
		log_debug("%s: %s: command %s (session %s) expired", c->domain,
		    r->requester, r->cmd->node, r->id);
		run_free(t, r);
	}
}

static struct adhoc_run *
run_find(struct component *c, const char *id)
{
	struct adhoc_run *r;
	TAILQ_FOREACH(r, &state(c)->runs, entry)
		if (strcmp(r->id, id) == 0)
			return r;
	return NULL;
}

/*
 * A random sessionid into id (ADHOC_ID_BYTES * 2 + 1 bytes); -1 when
 * there are no random bytes (logged).  Unguessable, so a sessionid seen
 * in a log or a stanza trace is no key to anything (the requester check
 * is the lock; this is the second one).
 */
static int
make_id(struct component *c, const char *requester, char *id)
{
	unsigned char raw[ADHOC_ID_BYTES];
	if (RAND_bytes(raw, sizeof(raw)) != 1) {
		log_error("%s: %s: no random bytes for an ad-hoc sessionid",
		    c->domain, requester);
		return -1;
	}
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(id + 2 * i, 3, "%02x", raw[i]);
	return 0;
}

/* A new run for a first step that showed a form; NULL when no random
 * sessionid could be made (logged). */
static struct adhoc_run *
run_new(struct component *c, const struct adhoc_command *cmd,
    const char *requester, const char *user, time_t now)
{
	struct adhoc_state *t = state(c);
	char id[ADHOC_ID_BYTES * 2 + 1];
	if (make_id(c, requester, id) != 0)
		return NULL;
	/* Make room: the user's own oldest run first, then anyone's. */
	size_t mine = 0;
	struct adhoc_run *r, *oldest_mine = NULL;
	TAILQ_FOREACH(r, &t->runs, entry)
		if (strcmp(r->user, user) == 0 && mine++ == 0)
			oldest_mine = r;
	if (mine >= ADHOC_MAX_RUNS_PER_USER) {
		log_info("%s: %s: too many pending commands; dropping %s",
		    c->domain, user, oldest_mine->id);
		run_free(t, oldest_mine);
	} else if (t->nruns >= ADHOC_MAX_RUNS) {
		r = TAILQ_FIRST(&t->runs);
		log_warn("%s: %s: %d pending commands; dropping the oldest "
		    "(%s of %s)", c->domain, user, ADHOC_MAX_RUNS, r->cmd->node,
		    r->requester);
		run_free(t, r);
	}

	r = xcalloc(1, sizeof(*r));
	memcpy(r->id, id, sizeof(r->id));
	r->cmd = cmd;
	r->requester = xstrdup(requester);
	r->user = xstrdup(user);
	r->created = r->last = now;
	TAILQ_INSERT_TAIL(&t->runs, r, entry);
	t->nruns++;
	return r;
}

void
adhoc_free_all(struct component *c)
{
	struct adhoc_state *t = c->adhoc;
	if (t == NULL)
		return;
	while (!TAILQ_EMPTY(&t->runs))
		run_free(t, TAILQ_FIRST(&t->runs));
	free(t->backend_cmds);
	free(t);
	c->adhoc = NULL;
}

/* ---- the protocol ---- */

/* An error with XEP-0050's specific condition next to the RFC 6120 one. */
static struct stanza *
command_error(const struct stanza *iq, const char *condition,
    const char *specific, const char *text)
{
	struct stanza *err = stanza_error_reply(iq, condition, text);
	if (specific != NULL)
		stanza_new_child(stanza_child(err, "error", NULL), specific,
		    NS_COMMANDS);
	return err;
}

static struct stanza *
command_reply(const struct stanza *iq, const char *node,
    const char *sessionid, const char *status)
{
	struct stanza *res = stanza_reply(iq, "result");
	struct stanza *cmd = stanza_new_child(res, "command", NS_COMMANDS);
	stanza_set_attr(cmd, "node", node);
	if (sessionid != NULL)
		stanza_set_attr(cmd, "sessionid", sessionid);
	stanza_set_attr(cmd, "status", status);
	return res;
}

/* The backend's commands, wrapped once per component. */
static const struct adhoc_command *
backend_commands(struct component *c)
{
	struct adhoc_state *t = state(c);
	if (t->backend_cmds == NULL) {
		const struct backend *b = c->backend;
		t->backend_cmds = xcalloc(b->ncommands + 1,
		    sizeof(*t->backend_cmds));
		for (size_t i = 0; i < b->ncommands; i++) {
			const struct backend_command *bc = &b->commands[i];
			t->backend_cmds[i] = (struct adhoc_command){
				.node = bc->node, .name = bc->name,
				.access = bc->admin_only ? ADHOC_ADMIN :
				    ADHOC_USER,
				.step = cmd_backend, .bc = bc,
			};
		}
	}
	return t->backend_cmds;
}

static const struct adhoc_command *
command_find(struct component *c, const char *node)
{
	for (const struct adhoc_command *cmd = commands; cmd->node != NULL;
	    cmd++)
		if (strcmp(cmd->node, node) == 0)
			return cmd;
	for (const struct adhoc_command *cmd = backend_commands(c);
	    cmd->node != NULL; cmd++)
		if (strcmp(cmd->node, node) == 0)
			return cmd;
	return NULL;
}

static enum adhoc_status
cmd_backend(struct adhoc_ctx *x, const struct form *in)
{
	const struct backend_command *bc = x->cmd->bc;
	char *error = NULL;
	/* A command without fields runs at once. */
	if (in == NULL && bc->nfields > 0) {
		x->form = form_build("form", bc->name, bc->instructions, NULL,
		    bc->fields, bc->nfields, NULL);
		return ADHOC_EXECUTING;
	}
	if (in != NULL && form_validate(in, NULL, bc->fields, bc->nfields,
	    NULL, &error) != 0)
		return ask_again(x, form_build("form", bc->name, NULL, NULL,
		    bc->fields, bc->nfields, in), error);
	char *note = NULL;
	int r = bc->run(x->c, x->user, in, &note);
	log_info("%s: %s ran %s: %s", x->c->domain, x->requester, bc->node,
	    r == 0 ? "done" : "refused");
	set_note(x, r == 0 ? "info" : "error", note != NULL ? note :
	    xstrdup(r == 0 ? "Done." : "The command failed."));
	return ADHOC_COMPLETED;
}

/* 1 when who may run cmd, 0 when not (*condition says why), -1 on a
 * store error. */
static int
may_run(struct component *c, const struct adhoc_command *cmd,
    const struct jid *who, const char *bare, const char **condition)
{
	if (cmd->access == ADHOC_ADMIN) {
		*condition = "forbidden";
		return component_is_admin(c, who) ? 1 : 0;
	}
	*condition = "registration-required";
	/* With open access, running a user command is a first use. */
	if (component_open_access(c))
		return session_for_use(c, bare) != NULL ? 1 : -1;
	return store_user_exists(cw->store, c->domain, bare);
}

enum action {
	ACTION_EXECUTE,
	ACTION_NEXT,
	ACTION_PREV,
	ACTION_COMPLETE,
	ACTION_CANCEL,
	ACTION_INVALID,
};

static enum action
parse_action(const char *s)
{
	static const char *const names[] = {
		[ACTION_EXECUTE] = "execute", [ACTION_NEXT] = "next",
		[ACTION_PREV] = "prev", [ACTION_COMPLETE] = "complete",
		[ACTION_CANCEL] = "cancel",
	};
	if (s == NULL)
		return ACTION_EXECUTE;
	for (size_t i = 0; i < ACTION_INVALID; i++)
		if (strcmp(names[i], s) == 0)
			return (enum action)i;
	return ACTION_INVALID;
}

/*
 * One step of cmd, in a run (r, NULL on the first step): the answer, or
 * NULL when it was sent already.  The run is kept when the step shows a
 * form, dropped when the command completed.
 */
static struct stanza *
run_step(struct component *c, const struct stanza *iq,
    const struct adhoc_command *cmd, struct adhoc_run *r, const char *full,
    const char *bare, const struct form *in, time_t now)
{
	struct adhoc_ctx x = { .c = c, .requester = full, .user = bare,
		.cmd = cmd, .iq = iq, .sessionid = r ? r->id : NULL };
	enum adhoc_status st = cmd->step(&x, in);
	if (st == ADHOC_DEFERRED) {
		/* The command answers later (or has already). */
		stanza_free(x.form);
		free(x.note);
		if (r != NULL)
			run_free(state(c), r);
		return NULL;
	}
	const char *sessionid = NULL;
	char once[ADHOC_ID_BYTES * 2 + 1];

	if (st == ADHOC_EXECUTING) {
		if (r == NULL)
			r = run_new(c, cmd, full, bare, now);
		if (r == NULL) {
			stanza_free(x.form);
			free(x.note);
			return stanza_error_reply(iq, "internal-server-error",
			    "the gateway could not start the command");
		}
		/* Most recently used goes last. */
		r->last = now;
		TAILQ_REMOVE(&state(c)->runs, r, entry);
		TAILQ_INSERT_TAIL(&state(c)->runs, r, entry);
		sessionid = r->id;
	} else if (r != NULL) {
		/* XEP-0050 wants the sessionid in every answer of a run,
		 * the last one too. */
		sessionid = r->id;
	} else if (make_id(c, full, once) == 0) {
		/* Done at once: XEP-0050's examples still name the session
		 * (clients key on it); nothing is kept under it. */
		sessionid = once;
	}

	struct stanza *res = command_reply(iq, cmd->node, sessionid,
	    st == ADHOC_EXECUTING ? "executing" : "completed");
	struct stanza *out = stanza_child(res, "command", NS_COMMANDS);
	if (st == ADHOC_EXECUTING) {
		/* Every command asks one form, so its answer completes. */
		struct stanza *actions = stanza_new_child(out, "actions",
		    NULL);
		stanza_set_attr(actions, "execute", "complete");
		stanza_new_child(actions, "complete", NULL);
	}
	if (x.note != NULL) {
		struct stanza *note = stanza_new_text_child(out, "note",
		    x.note);
		stanza_set_attr(note, "type", x.note_type);
	}
	if (x.form != NULL)
		stanza_add_child(out, x.form);
	log_debug("%s: %s: command %s %s%s%s", c->domain, full, cmd->node,
	    st == ADHOC_EXECUTING ? "executing" : "completed",
	    x.note ? ": " : "", x.note ? x.note : "");
	free(x.note);
	if (st == ADHOC_COMPLETED && r != NULL)
		run_free(state(c), r);
	if (x.after == NULL)
		return res;
	component_send(c, res);
	x.after(&x);
	return NULL;
}

/* A step of a run that exists: sessionid, requester and node checked. */
static struct stanza *
continue_run(struct component *c, const struct stanza *iq,
    const struct stanza *command, struct adhoc_run *r, enum action action,
    const char *full, const char *bare, time_t now)
{
	if (action == ACTION_CANCEL) {
		log_debug("%s: %s: command %s canceled", c->domain, full,
		    r->cmd->node);
		struct stanza *res = command_reply(iq, r->cmd->node, r->id,
		    "canceled");
		run_free(state(c), r);
		return res;
	}
	/* Only "complete" is offered (execute means the offered one), but
	 * clients submit a one-form command with "next" as well (poezio):
	 * all three submit the form.  It cannot go back. */
	if (action != ACTION_EXECUTE && action != ACTION_COMPLETE &&
	    action != ACTION_NEXT)
		return command_error(iq, "bad-request", "bad-action",
		    "this step can only be completed or canceled");
	const struct stanza *xel = stanza_child(command, "x", NS_DATA);
	if (xel == NULL)
		return command_error(iq, "bad-request", "bad-payload",
		    "the step needs the submitted form");
	struct form *in = NULL;
	char *error = NULL;
	if (form_parse(xel, &in, &error) != 0) {
		struct stanza *err = command_error(iq, "bad-request",
		    "bad-payload", error);
		free(error);
		return err;
	}
	struct stanza *res;
	if (strcmp(form_kind(in), "cancel") == 0) {
		/* XEP-0004's own way to say cancel. */
		res = command_reply(iq, r->cmd->node, r->id, "canceled");
		run_free(state(c), r);
	} else if (strcmp(form_kind(in), "submit") != 0) {
		res = command_error(iq, "bad-request", "bad-payload",
		    "the form must be submitted (type='submit')");
	} else {
		res = run_step(c, iq, r->cmd, r, full, bare, in, now);
	}
	form_free(in);
	return res;
}

struct stanza *
adhoc_handle(struct component *c, const struct stanza *iq,
    const struct stanza *command)
{
	struct jid from;
	if (strcmp(stanza_name(command), "command") != 0)
		return stanza_error_reply(iq, "bad-request",
		    "expected a <command/>");
	if (jid_parse(stanza_attr(iq, "from"), &from) != 0)
		return stanza_error_reply(iq, "jid-malformed", NULL);
	char *full = jid_to_string(&from);
	char *bare = jid_bare_string(&from);
	struct stanza *res = NULL;
	time_t now = now_monotonic();

	const char *node = stanza_attr(command, "node");
	const struct adhoc_command *cmd = node ? command_find(c, node) : NULL;
	if (cmd == NULL) {
		res = stanza_error_reply(iq, "item-not-found",
		    "no such command");
		goto out;
	}
	const char *condition;
	int ok = may_run(c, cmd, &from, bare, &condition);
	if (ok != 1) {
		if (ok == 0)
			log_info("%s: %s may not run %s (%s)", c->domain, full,
			    cmd->node, condition);
		res = stanza_error_reply(iq, ok < 0 ? "internal-server-error" :
		    condition, ok < 0 ? NULL : cmd->access == ADHOC_ADMIN ?
		    "only the gateway's admins may run this command" :
		    "register with the gateway first");
		goto out;
	}
	enum action action = parse_action(stanza_attr(command, "action"));
	if (action == ACTION_INVALID) {
		res = command_error(iq, "bad-request", "malformed-action",
		    NULL);
		goto out;
	}

	const char *sessionid = stanza_attr(command, "sessionid");
	if (sessionid == NULL) {
		expire_runs(c, now);
		if (action == ACTION_CANCEL)
			/* Nothing started, nothing to undo. */
			res = command_reply(iq, cmd->node, NULL, "canceled");
		else if (action != ACTION_EXECUTE)
			res = command_error(iq, "bad-request", "bad-action",
			    "a command starts with execute");
		else
			res = run_step(c, iq, cmd, NULL, full, bare, NULL,
			    now);
		goto out;
	}

	struct adhoc_run *r = run_find(c, sessionid);
	/* Someone else's run looks exactly like one that does not exist,
	 * so sessionids cannot be probed. */
	if (r == NULL || strcmp(r->requester, full) != 0 || r->cmd != cmd) {
		if (r != NULL)
			log_info("%s: %s used sessionid %s of %s's %s",
			    c->domain, full, sessionid, r->requester,
			    r->cmd->node);
		res = command_error(iq, "bad-request", "bad-sessionid",
		    "no such command session");
	} else if (now - r->last >= ADHOC_TIMEOUT) {
		log_debug("%s: %s: command %s (session %s) expired",
		    c->domain, full, cmd->node, r->id);
		run_free(state(c), r);
		res = command_error(iq, "not-allowed", "session-expired",
		    "the command session expired");
	} else {
		res = continue_run(c, iq, command, r, action, full, bare, now);
	}
	expire_runs(c, now);
out:
	free(full);
	free(bare);
	jid_clear(&from);
	return res;
}

struct stanza *
adhoc_disco_items(struct component *c, const struct stanza *iq)
{
	struct stanza *res = stanza_reply(iq, "result");
	struct stanza *q = stanza_new_child(res, "query", NS_DISCO_ITEMS);
	stanza_set_attr(q, "node", NS_COMMANDS);

	/* disco#items is open to everyone (the router does not restrict
	 * it), so the list applies the same rules as adhoc_handle(): an
	 * empty list for whoever may run nothing. */
	struct jid from;
	if (jid_parse(stanza_attr(iq, "from"), &from) != 0)
		return res;
	int admin = component_is_admin(c, &from);
	int user = 0;
	if (component_allows(c, &from) && component_open_access(c)) {
		user = 1;
	} else if (component_allows(c, &from)) {
		char *bare = jid_bare_string(&from);
		user = store_user_exists(cw->store, c->domain, bare) == 1;
		free(bare);
	}
	jid_clear(&from);
	const struct adhoc_command *tables[] = { commands,
		backend_commands(c) };
	for (size_t i = 0; i < 2; i++) {
		for (const struct adhoc_command *cmd = tables[i];
		    cmd->node != NULL; cmd++) {
			if (cmd->access == ADHOC_ADMIN ? !admin : !user)
				continue;
			struct stanza *item = stanza_new_child(q, "item",
			    NULL);
			stanza_set_attr(item, "jid", c->domain);
			stanza_set_attr(item, "node", cmd->node);
			stanza_set_attr(item, "name", cmd->name);
		}
	}
	return res;
}

struct stanza *
adhoc_disco_info(struct component *c, const struct stanza *iq,
    const char *node)
{
	const struct adhoc_command *cmd = command_find(c, node);
	if (cmd == NULL)
		return NULL;
	/* XEP-0050: a command node is an automation/command-node that
	 * speaks commands and data forms. */
	struct stanza *res = stanza_reply(iq, "result");
	struct stanza *q = stanza_new_child(res, "query", NS_DISCO_INFO);
	stanza_set_attr(q, "node", node);
	struct stanza *id = stanza_new_child(q, "identity", NULL);
	stanza_set_attr(id, "category", "automation");
	stanza_set_attr(id, "type", "command-node");
	stanza_set_attr(id, "name", cmd->name);
	stanza_set_attr(stanza_new_child(q, "feature", NULL), "var",
	    NS_COMMANDS);
	stanza_set_attr(stanza_new_child(q, "feature", NULL), "var",
	    "jabber:x:data");
	return res;
}
