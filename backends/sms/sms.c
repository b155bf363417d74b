/*
 * The SMS backend: phone numbers as contacts, texts both ways through a
 * gateway program (a driver: Kannel, smstools3), delivery reports as
 * XEP-0184 receipts.
 *
 * Numbers.  The operator assigns numbers to JIDs or domains (numbers =
 * "+15550001 alice@example.org, +15550002 example.org"); a user claims
 * one of them by registering it (field phone).  The claim is a store
 * row under the user's JID (key "claim"), so it goes when the user
 * unregisters, plus an in-memory hash number -> JID, loaded at init,
 * which an incoming text uses to find its user at once; a hash entry is
 * trusted only after the store confirms it (the user is registered and
 * the row still names that number).
 *
 * A text from the user, as a state machine of its ref (unique for ever
 * per component: a counter kept in the store):
 *
 *   send_message: planned (GSM-7 / UCS-2, parts), refused over max_parts
 *     -> outbox row "out/REF" under the user + report row "dlr/REF" under
 *        the component, both written before send_message returns 0
 *     -> driver->send (from a timer, never inside send_message)
 *   sms_sent ACCEPTED  -> outbox row removed; the report row waits
 *   sms_sent TEMPFAIL  -> again after 5 s, doubling to 10 min, until
 *                         retry_for has passed since it was stored: then
 *                         an error to the user, both rows removed
 *   sms_sent PERMFAIL  -> error message to the user, both rows removed
 *   sms_report         -> receipt (or error) for the stanza id, report
 *                         row removed
 *
 * At init every outbox row left by an earlier run is sent again, so a
 * restart loses nothing (a text may then go out twice: at least once is
 * what SMS gateways promise too).
 *
 * A text to the user (sms_received) finds the user by the number it was
 * sent to and is delivered through session_deliver(), whatever the
 * user's session state; the core keeps it while the XMPP server is away.
 */
#include "autoconf.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/event.h>

#include "backend.h"
#include "causeway.h"
#include "component.h"
#include "config.h"
#include "form.h"
#include "log.h"
#include "register.h"
#include "session.h"
#include "sms_driver.h"
#include "sms_text.h"
#include "store.h"
#include "xmalloc.h"

#define RETRY_FIRST 5           /* seconds before the first retry */
#define RETRY_MAX 600           /* the longest wait between tries */
#define REF_BLOCK 1024          /* refs reserved in the store at once */
#define REPORT_KEEP (30 * 86400) /* report rows older than this go */
#define MAX_PARTS_DEFAULT "6"

static const char *const sms_driver_names[] = { "kannel", "smstools", NULL };
static const char *const sms_queue_modes[] = { "auto", "number", "none",
    NULL };

static const struct config_option sms_options[] = {
	{ .key = "driver", .type = CONFIG_ENUM, .def = "kannel",
	  .choices = sms_driver_names,
	  .help = "the gateway program: kannel or smstools" },
	{ .key = "kannel_url", .type = CONFIG_STRING, .def = "",
	  .help = "Kannel's sendsms URL (http://127.0.0.1:13013/cgi-bin/sendsms)" },
	{ .key = "kannel_user", .type = CONFIG_STRING, .def = "",
	  .help = "sendsms-user username" },
	{ .key = "kannel_password", .type = CONFIG_STRING, .def = "",
	  .help = "sendsms-user password" },
	{ .key = "kannel_smsc", .type = CONFIG_STRING, .def = "",
	  .help = "the smsc-id to send through (empty: Kannel routes)" },
	{ .key = "listen", .type = CONFIG_STRING, .def = "",
	  .help = "ADDR:PORT of causeway's listener for Kannel's callbacks" },
	{ .key = "listen_connections", .type = CONFIG_INT, .def = "64",
	  .min = 1, .max = 4096,
	  .help = "connections the callback listener holds at once (more "
	  "are refused)" },
	{ .key = "listen_timeout", .type = CONFIG_INT, .def = "30",
	  .min = 1, .max = 600,
	  .help = "seconds a callback request may take, whatever arrives" },
	{ .key = "callback_url", .type = CONFIG_STRING, .def = "",
	  .help = "the base URL at which Kannel reaches that listener" },
	{ .key = "callback_token", .type = CONFIG_STRING, .def = "",
	  .help = "secret in every callback URL (16+ of A-Z a-z 0-9 . _ ~ -)" },
	{ .key = "spool", .type = CONFIG_STRING, .def = "",
	  .help = "smstools3 spool directory" },
	{ .key = "queue", .type = CONFIG_ENUM, .def = "auto",
	  .choices = sms_queue_modes,
	  .help = "smstools: \"Queue: Q\" and the digits of the sender's number in each "
	  "outgoing file (number), never (none), or when the component has "
	  "several numbers (auto)" },
	{ .key = "country_code", .type = CONFIG_STRING, .def = "",
	  .help = "country code for national numbers (empty: none)" },
	{ .key = "max_parts", .type = CONFIG_INT, .def = MAX_PARTS_DEFAULT,
	  .min = 1, .max = SMS_PARTS_MAX,
	  .help = "longer texts are refused with an error" },
	{ .key = "outbox_max", .type = CONFIG_INT, .def = "100", .min = 1,
	  .max = 100000,
	  .help = "texts of one user waiting to be sent; more are refused" },
	{ .key = "retry_for", .type = CONFIG_INT, .def = "172800", .min = 1,
	  .max = 2592000,
	  .help = "seconds a text the gateway refuses for the moment is "
	  "tried again; then the user gets an error" },
	{ .key = "numbers", .type = CONFIG_LIST, .def = "",
	  .help = "NUMBER JID-or-domain-or-*, ...: who may claim which number" },
	{ .key = NULL },
};

static const struct form_field_spec sms_fields[] = {
	{ .var = "phone", .type = FIELD_TEXT_SINGLE, .label = "Phone number",
	  .desc = "One of the numbers the operator assigned to you, e.g. "
	  "+15550001", .required = 1, .max_len = SMS_NUMBER_INPUT_MAX },
};

/* ---- a small string-keyed hash ---- */

struct map_entry {
	struct map_entry *next;
	char *key;
	void *val;
};

struct map {
	struct map_entry **b;
	size_t nb, n;
};

static uint64_t
hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static struct map_entry **
map_slot(struct map *m, const char *key)
{
	struct map_entry **e = &m->b[hash(key) % m->nb];
	while (*e != NULL && strcmp((*e)->key, key) != 0)
		e = &(*e)->next;
	return e;
}

static void *
map_get(struct map *m, const char *key)
{
	if (m->nb == 0)
		return NULL;
	struct map_entry *e = *map_slot(m, key);
	return e ? e->val : NULL;
}

/* Sets key to val and returns the value it replaces (NULL: none). */
static void *
map_put(struct map *m, const char *key, void *val)
{
	if (m->n >= m->nb) {
		size_t nb = m->nb ? m->nb * 2 : 64;
		struct map_entry **b = xcalloc(nb, sizeof(*b));
		for (size_t i = 0; i < m->nb; i++) {
			struct map_entry *e, *next;
			for (e = m->b[i]; e != NULL; e = next) {
				next = e->next;
				struct map_entry **s = &b[hash(e->key) % nb];
				e->next = *s;
				*s = e;
			}
		}
		free(m->b);
		m->b = b;
		m->nb = nb;
	}
	struct map_entry **s = map_slot(m, key);
	if (*s != NULL) {
		void *old = (*s)->val;
		(*s)->val = val;
		return old;
	}
	struct map_entry *e = xcalloc(1, sizeof(*e));
	e->key = xstrdup(key);
	e->val = val;
	*s = e;
	m->n++;
	return NULL;
}

/* Removes key and returns its value (NULL: none). */
static void *
map_del(struct map *m, const char *key)
{
	if (m->nb == 0)
		return NULL;
	struct map_entry **s = map_slot(m, key);
	struct map_entry *e = *s;
	if (e == NULL)
		return NULL;
	void *val = e->val;
	*s = e->next;
	free(e->key);
	free(e);
	m->n--;
	return val;
}

/* Frees the map; free_val (may be NULL) gets each value. */
static void
map_clear(struct map *m, void (*free_val)(void *))
{
	for (size_t i = 0; i < m->nb; i++) {
		struct map_entry *e, *next;
		for (e = m->b[i]; e != NULL; e = next) {
			next = e->next;
			if (free_val != NULL)
				free_val(e->val);
			free(e->key);
			free(e);
		}
	}
	free(m->b);
	memset(m, 0, sizeof(*m));
}

/* ---- the backend's state ---- */

struct sms;

/* A text in the outbox. */
struct out {
	struct sms *sms;
	char *ref;
	char *jid;             /* the user */
	char *from;            /* the user's number */
	char *to;
	char *id;              /* the stanza id, NULL: none */
	char *text;
	int ucs2, parts;
	unsigned attempts;     /* handed to the driver so far */
	time_t created;        /* stored: retry_for counts from here */
	int in_flight;         /* waiting for sms_sent() */
	int reported;          /* its report came while in flight */
	struct event *timer;
};

struct assignment {
	char number[SMS_NUMBER_SIZE];
	char *target;          /* a bare JID, a domain, or "*" */
};

struct sms {
	struct component *c;
	const struct sms_driver_ops *ops;
	struct sms_driver *drv;
	struct map claims;     /* number -> JID (char *) */
	struct map granted;    /* number -> target (char *): assigned by an
	                        * admin command, kept as "grant/NUMBER" */
	struct map outbox;     /* ref -> struct out */
	struct assignment *assigned;
	size_t nassigned;
	unsigned country;
	unsigned long long ref_next, ref_end;
	time_t pruned;         /* when old report rows were last dropped */
};

static struct sms *
sms_of(struct component *c)
{
	return c->backend_data;
}

/* ---- stored values: fields joined by LF, each with % and LF escaped ---- */

static char *
pack(const char *const *f, size_t n, size_t *lenp)
{
	size_t len = 0;
	for (size_t i = 0; i < n; i++) {
		for (const char *p = f[i] ? f[i] : ""; *p; p++)
			len += (*p == '%' || *p == '\n') ? 3 : 1;
		len++;
	}
	char *out = xmalloc(len + 1), *o = out;
	for (size_t i = 0; i < n; i++) {
		for (const char *p = f[i] ? f[i] : ""; *p; p++) {
			if (*p == '%' || *p == '\n') {
				snprintf(o, 4, "%%%02X", (unsigned char)*p);
				o += 3;
			} else
				*o++ = *p;
		}
		*o++ = '\n';
	}
	*o = '\0';
	*lenp = len;
	return out;
}

/* Splits what pack() made into n fields (caller frees each); -1 when it
 * does not have n of them. */
static int
unpack(const char *v, size_t len, char **f, size_t n)
{
	size_t i = 0;
	const char *p = v, *end = v + len;
	memset(f, 0, n * sizeof(*f));
	while (i < n && p < end) {
		const char *lf = memchr(p, '\n', (size_t)(end - p));
		if (lf == NULL)
			break;
		char *s = xmalloc((size_t)(lf - p) + 1), *o = s;
		for (const char *q = p; q < lf; q++) {
			if (*q == '%' && lf - q >= 3 && isxdigit((unsigned char)q[1])
			    && isxdigit((unsigned char)q[2])) {
				char hex[3] = { q[1], q[2], '\0' };
				*o++ = (char)strtol(hex, NULL, 16);
				q += 2;
			} else
				*o++ = *q;
		}
		*o = '\0';
		f[i++] = s;
		p = lf + 1;
	}
	if (i == n)
		return 0;
	for (size_t j = 0; j < i; j++)
		free(f[j]);
	return -1;
}

/* ---- configuration ---- */

static void
assignments_free(struct sms *sms)
{
	for (size_t i = 0; i < sms->nassigned; i++)
		free(sms->assigned[i].target);
	free(sms->assigned);
	sms->assigned = NULL;
	sms->nassigned = 0;
}

/* Reads country_code and numbers; -1 with every problem logged. */
static int
read_numbers(struct component *c, struct sms *sms)
{
	const struct config_section *sec = c->section;
	int bad = 0;
	const char *cc = config_str(sec, "country_code");
	const char *why = NULL;
	unsigned country = 0;
	if (cc != NULL && *cc != '\0' &&
	    sms_country_code_parse(cc, &country, &why) != 0) {
		log_error("%s: country_code %s: %s", c->domain, cc, why);
		bad = 1;
	}
	size_t n;
	const char *const *list = config_list(sec, "numbers", &n);
	struct assignment *a = n ? xcalloc(n, sizeof(*a)) : NULL;
	size_t na = 0;
	for (size_t i = 0; i < n; i++) {
		/* "NUMBER TARGET": the number may hold spaces, the target
		 * cannot. */
		const char *item = list[i];
		const char *sp = item + strlen(item);
		while (sp > item && !isspace((unsigned char)sp[-1]))
			sp--;
		const char *target = sp;
		while (sp > item && isspace((unsigned char)sp[-1]))
			sp--;
		enum sms_number_kind kind;
		if (sp == item || *target == '\0') {
			log_error("%s: numbers: \"%s\" is not \"NUMBER JID\" "
			    "(NUMBER then a JID, a domain or *)", c->domain,
			    item);
			bad = 1;
			continue;
		}
		if (sms_number_normalize(item, (size_t)(sp - item), country,
		    a[na].number, &kind, &why) != 0 ||
		    kind != SMS_NUMBER_E164) {
			log_error("%s: numbers: \"%.*s\" is not a phone number "
			    "in E.164 form: %s", c->domain, (int)(sp - item),
			    item, why ? why : "a short code");
			bad = 1;
			continue;
		}
		if (strchr(target, '/') != NULL) {
			log_error("%s: numbers: \"%s\": a bare JID, a domain or "
			    "* please", c->domain, target);
			bad = 1;
			continue;
		}
		a[na++].target = xstrdup(target);
	}
	if (bad) {
		for (size_t i = 0; i < na; i++)
			free(a[i].target);
		free(a);
		return -1;
	}
	assignments_free(sms);
	sms->assigned = a;
	sms->nassigned = na;
	sms->country = country;
	return 0;
}

/* 1 when target ("*", a bare JID or a domain) covers jid. */
static int
target_covers(const char *target, const char *jid)
{
	const char *at = strchr(jid, '@');
	const char *domain = at ? at + 1 : jid;
	return strcmp(target, "*") == 0 || strcasecmp(target, jid) == 0 ||
	    (strchr(target, '@') == NULL && strcasecmp(target, domain) == 0);
}

/* 1 when the operator (numbers, or an admin command) lets jid claim
 * number. */
static int
assigned_to(struct sms *sms, const char *number, const char *jid)
{
	for (size_t i = 0; i < sms->nassigned; i++) {
		const struct assignment *a = &sms->assigned[i];
		if (strcmp(a->number, number) == 0 &&
		    target_covers(a->target, jid))
			return 1;
	}
	const char *granted = map_get(&sms->granted, number);
	return granted != NULL && target_covers(granted, jid);
}

/* ---- claims ---- */

/* 1 when jid is registered and its claim row names number; 0 when not;
 * -1 on a store error. */
static int
claim_holds(struct component *c, const char *jid, const char *number)
{
	int r = store_user_exists(cw->store, c->domain, jid);
	if (r != 1)
		return r;
	char *v = NULL;
	r = store_state_get(cw->store, c->domain, jid, "claim", &v, NULL);
	if (r == 1)
		r = strcmp(v, number) == 0;
	free(v);
	return r;
}

/* The user holding number (borrowed from the hash), or NULL. */
static const char *
claim_owner(struct component *c, const char *number)
{
	struct sms *sms = sms_of(c);
	const char *jid = map_get(&sms->claims, number);
	if (jid == NULL)
		return NULL;
	if (claim_holds(c, jid, number) == 1)
		return jid;
	return NULL;
}

static void
claim_set(struct component *c, const char *jid, const char *number)
{
	struct sms *sms = sms_of(c);
	char *old = NULL;
	if (store_state_get(cw->store, c->domain, jid, "claim", &old,
	    NULL) == 1 && strcmp(old, number) != 0) {
		const char *holder = map_get(&sms->claims, old);
		if (holder != NULL && strcmp(holder, jid) == 0)
			free(map_del(&sms->claims, old));
	}
	free(old);
	if (store_state_set(cw->store, c->domain, jid, "claim", number,
	    strlen(number)) != 0) {
		log_error("%s: %s: could not store the claim on %s; texts to "
		    "it cannot find the user", c->domain, jid, number);
		return;
	}
	free(map_put(&sms->claims, number, xstrdup(jid)));
}

static int
load_claim(void *arg, const char *jid, const char *key, const void *value,
    size_t len)
{
	struct sms *sms = arg;
	if (strcmp(key, "claim") != 0 || *jid == '\0' ||
	    len >= SMS_NUMBER_SIZE)
		return 0;
	free(map_put(&sms->claims, value, xstrdup(jid)));
	return 0;
}

#define GRANT_KEY "grant/"

static int
load_grant(void *arg, const char *jid, const char *key, const void *value,
    size_t len)
{
	struct sms *sms = arg;
	const char *number = key + strlen(GRANT_KEY);
	if (strlen(number) < SMS_NUMBER_SIZE)
		free(map_put(&sms->granted, number, xstrdup(value)));
	return 0;
}

/* The user's number, normalised, in out; -1 when the registration holds
 * none that is still theirs. */
static int
user_number(struct session *s, char out[SMS_NUMBER_SIZE])
{
	struct component *c = session_component(s);
	const char *phone = session_field(s, "phone");
	enum sms_number_kind kind;
	if (phone == NULL || sms_number_normalize(phone, strlen(phone),
	    sms_of(c)->country, out, &kind, NULL) != 0 ||
	    kind != SMS_NUMBER_E164)
		return -1;
	return 0;
}

/* ---- registration ---- */

static void
sms_check_registration(struct component *c, const char *jid,
    const struct form *values, struct register_request *req)
{
	struct sms *sms = sms_of(c);
	const char *phone = form_value(values, "phone");
	char number[SMS_NUMBER_SIZE], display[SMS_NUMBER_DISPLAY_SIZE];
	enum sms_number_kind kind;
	const char *why = NULL;
	char text[256];

	if (phone == NULL || sms_number_normalize(phone, strlen(phone),
	    sms->country, number, &kind, &why) != 0) {
		snprintf(text, sizeof(text), "That is not a phone number: %s.",
		    why ? why : "it is empty");
		register_request_done(req, "not-acceptable", text);
		return;
	}
	if (sms_number_display(number, display) != 0)
		snprintf(display, sizeof(display), "%s", number);
	if (kind != SMS_NUMBER_E164) {
		snprintf(text, sizeof(text), "%s is a short code; register "
		    "the full number you were given, with its country code.",
		    display);
		register_request_done(req, "not-acceptable", text);
		return;
	}
	if (!assigned_to(sms, number, jid)) {
		snprintf(text, sizeof(text), "The number %s is not assigned "
		    "to you; ask the operator of this gateway for one.",
		    display);
		register_request_done(req, "not-allowed", text);
		return;
	}
	const char *holder = claim_owner(c, number);
	if (holder != NULL && strcmp(holder, jid) != 0) {
		snprintf(text, sizeof(text), "The number %s belongs to "
		    "another user.", display);
		register_request_done(req, "conflict", text);
		return;
	}
	/* The core stores the registration in register_request_done()
	 * (which frees jid with req); the claim follows only when that
	 * worked and the stored field is this number. */
	char *who = xstrdup(jid);
	register_request_done(req, NULL, NULL);
	struct session *s = session_find_registered(c, who);
	char stored[SMS_NUMBER_SIZE];
	if (s != NULL && user_number(s, stored) == 0 &&
	    strcmp(stored, number) == 0) {
		claim_set(c, who, number);
		log_info("%s: %s claims %s", c->domain, who, number);
	}
	free(who);
}

/* ---- addresses ---- */

static int
sms_valid_address(struct component *c, const char *legacy)
{
	char out[SMS_NUMBER_SIZE];
	if (sms_number_normalize(legacy, strlen(legacy), sms_of(c)->country,
	    out, NULL, NULL) != 0)
		return 0;
	/* Contact JIDs carry the canonical form only, so one phone is one
	 * contact. */
	return strcmp(out, legacy) == 0;
}

static char *
sms_normalize_address(struct component *c, const char *text)
{
	char out[SMS_NUMBER_SIZE];
	if (sms_number_normalize(text, strlen(text), sms_of(c)->country, out,
	    NULL, NULL) != 0)
		return NULL;
	return xstrdup(out);
}

/* ---- sessions ---- */

static void
sms_login(struct session *s)
{
	/* No connection to open: texts travel through the gateway program
	 * whatever the user's state.  A claim lost to a store error comes
	 * back here. */
	struct component *c = session_component(s);
	char number[SMS_NUMBER_SIZE];
	const char *jid = session_jid(s);
	if (user_number(s, number) == 0 &&
	    assigned_to(sms_of(c), number, jid) &&
	    claim_holds(c, jid, number) == 0 &&
	    claim_owner(c, number) == NULL)
		claim_set(c, jid, number);
	session_login_result(s, 1, NULL);
}

static void
sms_logout(struct session *s, const char *reason)
{
	(void)s;
	(void)reason;
}

/* ---- the outbox ---- */

static void out_fire(evutil_socket_t fd, short what, void *arg);

static void
out_free(void *arg)
{
	struct out *o = arg;
	if (o == NULL)
		return;
	if (o->timer != NULL)
		event_free(o->timer);
	free(o->ref);
	free(o->jid);
	free(o->from);
	free(o->to);
	free(o->id);
	free(o->text);
	free(o);
}

static void
out_schedule(struct out *o, unsigned seconds)
{
	struct timeval tv = { .tv_sec = seconds, .tv_usec = 0 };
	if (o->timer == NULL)
		o->timer = evtimer_new(cw->base, out_fire, o);
	evtimer_add(o->timer, &tv);
}

/* Forgets a text: its outbox row and its entry. */
static void
out_done(struct out *o)
{
	struct sms *sms = o->sms;
	char *key = xasprintf("out/%s", o->ref);
	if (store_state_remove(cw->store, sms->c->domain, o->jid, key) < 0)
		log_error("%s: %s: could not remove the sent text %s from the "
		    "outbox; it will be sent again after a restart",
		    sms->c->domain, o->jid, o->ref);
	free(key);
	map_del(&sms->outbox, o->ref);
	out_free(o);
}

static void forget_report(struct component *c, const char *ref);
static int prune_report(void *arg, const char *jid, const char *key,
    const void *value, size_t len);

static void
out_fire(evutil_socket_t fd, short what, void *arg)
{
	struct out *o = arg;
	struct sms *sms = o->sms;
	(void)fd;
	(void)what;
	/* The user may have unregistered meanwhile: the row went with
	 * them, and so does the text. */
	char *key = xasprintf("out/%s", o->ref);
	char *v = NULL;
	int r = store_state_get(cw->store, sms->c->domain, o->jid, key, &v,
	    NULL);
	free(v);
	free(key);
	if (r == 0) {
		log_info("%s: %s: text %s dropped: the user is gone",
		    sms->c->domain, o->jid, o->ref);
		map_del(&sms->outbox, o->ref);
		out_free(o);
		return;
	}
	/* An admin released the number meanwhile: it no longer speaks
	 * for this user, whatever is still queued. */
	if (claim_holds(sms->c, o->jid, o->from) == 0 ||
	    !assigned_to(sms, o->from, o->jid)) {
		log_info("%s: %s: text %s dropped: %s is no longer the user's",
		    sms->c->domain, o->jid, o->ref, o->from);
		struct session *s = session_find_registered(sms->c, o->jid);
		if (s != NULL)
			session_message_failed(s, o->to, o->id, "not-allowed",
			    "the number this text would go out from is no "
			    "longer yours");
		forget_report(sms->c, o->ref);
		out_done(o);
		return;
	}
	o->attempts++;
	o->in_flight = 1;
	struct sms_out so = {
		.ref = o->ref, .from = o->from, .to = o->to, .text = o->text,
		.ucs2 = o->ucs2, .parts = o->parts,
	};
	log_debug("%s: %s: text %s to %s, attempt %u", sms->c->domain,
	    o->jid, o->ref, o->to, o->attempts);
	sms->ops->send(sms->drv, &so);
}

static void
base36(unsigned long long v, char *out, size_t size)
{
	char tmp[32];
	size_t n = 0;
	do {
		tmp[n++] = "0123456789abcdefghijklmnopqrstuvwxyz"[v % 36];
		v /= 36;
	} while (v != 0 && n < sizeof(tmp));
	size_t i;
	for (i = 0; i < n && i + 1 < size; i++)
		out[i] = tmp[n - 1 - i];
	out[i] = '\0';
}

/* The next ref, or -1 when the store cannot reserve more. */
static int
next_ref(struct sms *sms, char out[16])
{
	if (sms->ref_next >= sms->ref_end) {
		char *v = NULL;
		unsigned long long start = 1;
		int r = store_state_get(cw->store, sms->c->domain, "",
		    "ref/next", &v, NULL);
		if (r < 0)
			return -1;
		if (r == 1)
			start = strtoull(v, NULL, 10);
		free(v);
		if (start < sms->ref_end)
			start = sms->ref_end;
		char buf[32];
		int n = snprintf(buf, sizeof(buf), "%llu", start + REF_BLOCK);
		if (store_state_set(cw->store, sms->c->domain, "", "ref/next",
		    buf, (size_t)n) != 0)
			return -1;
		sms->ref_next = start;
		sms->ref_end = start + REF_BLOCK;
	}
	base36(sms->ref_next++, out, 16);
	return 0;
}

static struct out *
out_new(struct sms *sms, const char *ref, const char *jid, const char *from,
    const char *to, const char *id, const char *text, time_t created)
{
	struct out *o = xcalloc(1, sizeof(*o));
	o->sms = sms;
	o->created = created;
	o->ref = xstrdup(ref);
	o->jid = xstrdup(jid);
	o->from = xstrdup(from);
	o->to = xstrdup(to);
	o->id = id && *id ? xstrdup(id) : NULL;
	o->text = xstrdup(text);
	struct sms_plan plan;
	if (sms_plan(text, strlen(text), &plan, NULL) == 0) {
		o->ucs2 = plan.coding == SMS_CODING_UCS2;
		o->parts = (int)plan.nparts;
		sms_plan_clear(&plan);
	}
	return o;
}

static int
sms_send_message(struct session *s, const char *legacy,
    const struct outgoing_message *m, struct backend_error *err)
{
	struct component *c = session_component(s);
	struct sms *sms = sms_of(c);
	const char *jid = session_jid(s);
	char from[SMS_NUMBER_SIZE];

	/* Reports that never came are not kept for ever, however long
	 * causeway runs. */
	if (time(NULL) - sms->pruned >= 3600) {
		store_state_foreach(cw->store, c->domain, "", "dlr/",
		    prune_report, sms);
		sms->pruned = time(NULL);
	}
	if (user_number(s, from) != 0 || !assigned_to(sms, from, jid) ||
	    claim_holds(c, jid, from) != 1) {
		err->condition = "not-allowed";
		snprintf(err->text, sizeof(err->text), "you have no phone "
		    "number on this gateway (any more); register one");
		return -1;
	}
	struct sms_plan plan;
	const char *why = NULL;
	if (sms_plan(m->body, strlen(m->body), &plan, &why) != 0) {
		err->condition = "not-acceptable";
		snprintf(err->text, sizeof(err->text), "this text cannot be "
		    "sent as SMS: %s", why ? why : "bad text");
		return -1;
	}
	unsigned max = (unsigned)config_int(c->section, "max_parts");
	char limit[SMS_ERROR_SIZE];
	if (sms_plan_check(&plan, max, limit) != 0) {
		sms_plan_clear(&plan);
		err->condition = "not-acceptable";
		snprintf(err->text, sizeof(err->text), "%s; nothing was sent",
		    limit);
		return -1;
	}
	sms_plan_clear(&plan);

	/* A user's waiting texts are bounded: each is a store row and a
	 * timer, and a gateway that is down would let them pile up. */
	unsigned long cap = (unsigned long)config_int(c->section,
	    "outbox_max"), mine = 0;
	for (size_t i = 0; i < sms->outbox.nb; i++)
		for (struct map_entry *e = sms->outbox.b[i]; e != NULL;
		    e = e->next)
			mine += strcmp(((struct out *)e->val)->jid, jid) == 0;
	if (mine >= cap) {
		err->condition = "resource-constraint";
		snprintf(err->text, sizeof(err->text), "%lu of your texts are "
		    "still waiting to be sent (the limit is %lu); nothing was "
		    "sent, try again once they are out", mine, cap);
		log_warn("%s: %s: outbox full (%lu texts)", c->domain, jid,
		    mine);
		return -1;
	}

	char ref[16];
	if (next_ref(sms, ref) != 0) {
		err->condition = "internal-server-error";
		snprintf(err->text, sizeof(err->text), "the gateway could not "
		    "store the text; nothing was sent");
		return -1;
	}
	char now[32];
	snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
	const char *ofields[] = { from, legacy, m->id ? m->id : "", now,
	    m->body };
	const char *dfields[] = { jid, legacy, m->id ? m->id : "", now };
	size_t olen, dlen;
	char *ov = pack(ofields, 5, &olen);
	char *dv = pack(dfields, 4, &dlen);
	char *okey = xasprintf("out/%s", ref);
	char *dkey = xasprintf("dlr/%s", ref);
	/* The report row first: a report may overtake the gateway's answer
	 * to the request that sent the text. */
	int failed = store_state_set(cw->store, c->domain, "", dkey, dv,
	    dlen) != 0 || store_state_set(cw->store, c->domain, jid, okey,
	    ov, olen) != 0;
	if (failed)
		store_state_remove(cw->store, c->domain, "", dkey);
	free(ov);
	free(dv);
	free(okey);
	free(dkey);
	if (failed) {
		err->condition = "internal-server-error";
		snprintf(err->text, sizeof(err->text), "the gateway could not "
		    "store the text; nothing was sent");
		return -1;
	}
	struct out *o = out_new(sms, ref, jid, from, legacy, m->id, m->body,
	    time(NULL));
	map_put(&sms->outbox, ref, o);
	log_info("%s: %s: text %s to %s stored (%d part%s, %s)", c->domain,
	    jid, ref, legacy, o->parts, o->parts == 1 ? "" : "s",
	    o->ucs2 ? "UCS-2" : "GSM-7");
	/* From the loop, not from inside this call: a driver may answer at
	 * once, and the user hears of a failure after the message left. */
	out_schedule(o, 0);
	return 0;
}

/* ---- from the drivers ---- */

/* Hostile text for a log line: printable ASCII, at most 40 bytes. */
static const char *
loggable(const char *s, char buf[48])
{
	size_t i;
	for (i = 0; s != NULL && s[i] != '\0' && i < 40; i++)
		buf[i] = s[i] > 0x20 && s[i] < 0x7f ? s[i] : '?';
	buf[i] = '\0';
	return buf;
}

static void
forget_report(struct component *c, const char *ref)
{
	char *key = xasprintf("dlr/%s", ref);
	store_state_remove(cw->store, c->domain, "", key);
	free(key);
}

/* A text the gateway kept refusing for the moment for retry_for
 * seconds: the user hears so, and it goes. */
static void
tried_too_long(struct component *c, struct out *o, long limit,
    const char *text)
{
	char span[32];
	if (limit < 120)
		snprintf(span, sizeof(span), "%ld s", limit);
	else if (limit < 7200)
		snprintf(span, sizeof(span), "%ld minutes", limit / 60);
	else
		snprintf(span, sizeof(span), "%ld hours", limit / 3600);
	log_warn("%s: %s: text %s given up after %s of temporary failures",
	    c->domain, o->jid, o->ref, span);
	struct session *s = session_find_registered(c, o->jid);
	if (s != NULL) {
		char *why = xasprintf("the text was retried for %s and the "
		    "SMS gateway still could not take it (%s); it was not "
		    "sent", span, text ? text : "temporary failure");
		session_message_failed(s, o->to, o->id,
		    "remote-server-timeout", why);
		free(why);
	}
	forget_report(c, o->ref);
	out_done(o);
}

void
sms_sent(struct component *c, const char *ref, enum sms_result r,
    const char *text)
{
	struct sms *sms = sms_of(c);
	struct out *o = sms ? map_get(&sms->outbox, ref) : NULL;
	if (o == NULL || !o->in_flight) {
		log_warn("%s: the driver reported text %s, which is not on its "
		    "way", c->domain, ref);
		return;
	}
	o->in_flight = 0;
	if (o->reported) {
		/* The handset has it already, whatever the gateway says. */
		out_done(o);
		return;
	}
	switch (r) {
	case SMS_ACCEPTED:
		log_info("%s: %s: text %s accepted by the gateway%s%s",
		    c->domain, o->jid, ref, text ? ": " : "", text ? text : "");
		out_done(o);
		break;
	case SMS_TEMPFAIL: {
		time_t now = time(NULL);
		long limit = (long)config_int(c->section, "retry_for");
		long left = (long)(o->created + limit - now);
		if (left <= 0) {
			tried_too_long(c, o, limit, text);
			break;
		}
		unsigned delay = RETRY_FIRST;
		for (unsigned i = 1; i < o->attempts && delay < RETRY_MAX; i++)
			delay *= 2;
		if (delay > RETRY_MAX)
			delay = RETRY_MAX;
		/* The last try comes when retry_for ends, not after it. */
		if ((long)delay > left)
			delay = (unsigned)left;
		log_warn("%s: %s: text %s not sent (%s); again in %u s",
		    c->domain, o->jid, ref, text ? text : "temporary failure",
		    delay);
		out_schedule(o, delay);
		break;
	}
	case SMS_PERMFAIL: {
		log_warn("%s: %s: text %s refused by the gateway: %s",
		    c->domain, o->jid, ref, text ? text : "no reason given");
		struct session *s = session_find_registered(c, o->jid);
		if (s != NULL) {
			char *why = xasprintf("the SMS gateway refused the "
			    "text%s%s", text ? ": " : "", text ? text : "");
			session_message_failed(s, o->to, o->id,
			    "not-acceptable", why);
			free(why);
		}
		forget_report(c, ref);
		out_done(o);
		break;
	}
	}
}

void
sms_report(struct component *c, const char *ref, int delivered,
    const char *text)
{
	if (sms_of(c) == NULL)
		return;
	char *key = xasprintf("dlr/%s", ref);
	char *v = NULL;
	size_t len = 0;
	int r = store_state_get(cw->store, c->domain, "", key, &v, &len);
	if (r != 1) {
		char lb[48];
		log_info("%s: a delivery report for %s, which is no text of "
		    "ours (or one already reported), was ignored", c->domain,
		    loggable(ref, lb));
		free(key);
		free(v);
		return;
	}
	char *f[4];
	if (unpack(v, len, f, 4) != 0) {
		log_error("%s: the report row of %s is damaged; dropped",
		    c->domain, ref);
		store_state_remove(cw->store, c->domain, "", key);
		free(key);
		free(v);
		return;
	}
	const char *jid = f[0], *legacy = f[1];
	const char *id = *f[2] ? f[2] : NULL;
	struct session *s = session_find_registered(c, jid);
	if (s == NULL) {
		log_info("%s: report for text %s of %s, who is no longer "
		    "registered", c->domain, ref, jid);
	} else if (delivered) {
		log_info("%s: %s: text %s delivered", c->domain, jid, ref);
		session_message_delivered(s, legacy, id);
	} else {
		log_info("%s: %s: text %s not delivered: %s", c->domain, jid,
		    ref, text ? text : "no reason given");
		char *why = xasprintf("the text was not delivered%s%s",
		    text && *text ? ": " : "", text ? text : "");
		session_message_failed(s, legacy, id,
		    "recipient-unavailable", why);
		free(why);
	}
	store_state_remove(cw->store, c->domain, "", key);
	/* A report that overtook the gateway's answer: the text is out. */
	struct out *o = map_get(&sms_of(c)->outbox, ref);
	if (o != NULL && !o->in_flight)
		out_done(o);
	else if (o != NULL)
		o->reported = 1;
	for (int i = 0; i < 4; i++)
		free(f[i]);
	free(key);
	free(v);
}

int
sms_received(struct component *c, const char *from, const char *to,
    const char *text, time_t stamp)
{
	struct sms *sms = sms_of(c);
	char number[SMS_NUMBER_SIZE], sender[SMS_NUMBER_SIZE];
	const char *why = NULL;
	if (sms == NULL)
		return -2;      /* not started (yet): keep it */
	if (sms_number_normalize(to, strlen(to), sms->country, number, NULL,
	    &why) != 0) {
		char lb[48];
		log_warn("%s: a text to \"%s\", which is no number (%s), "
		    "was dropped", c->domain, loggable(to, lb), why);
		return -1;
	}
	const char *jid = map_get(&sms->claims, number);
	int held = jid ? claim_holds(c, jid, number) : 0;
	if (held < 0)
		return -2;
	if (held == 0 || !assigned_to(sms, number, jid)) {
		log_warn("%s: a text to %s, which no user holds, was dropped",
		    c->domain, number);
		return -1;
	}
	if (sms_number_normalize(from, strlen(from), sms->country, sender,
	    NULL, &why) != 0) {
		char lb[48];
		log_warn("%s: %s: a text from \"%s\", which is no number "
		    "(%s), was dropped", c->domain, jid, loggable(from, lb),
		    why);
		return -1;
	}
	struct session *s = session_find_registered(c, jid);
	if (s == NULL)
		return -2;
	struct legacy_message lm = { .body = text, .stamp = stamp };
	/* The core could not keep it (its store for the XMPP server is
	 * full or failing): the gateway offers it again later. */
	if (session_deliver(s, sender, &lm) != 0)
		return -2;
	log_debug("%s: %s: text from %s delivered", c->domain, jid, sender);
	return 0;
}

/* ---- lifecycle ---- */

static int
load_out(void *arg, const char *jid, const char *key, const void *value,
    size_t len)
{
	struct sms *sms = arg;
	const char *ref = key + 4;
	char *f[5];
	if (strncmp(key, "out/", 4) != 0 || *jid == '\0')
		return 0;
	if (unpack(value, len, f, 5) != 0) {
		log_error("%s: %s: outbox row %s is damaged; dropped",
		    sms->c->domain, jid, key);
		store_state_remove(cw->store, sms->c->domain, jid, key);
		return 0;
	}
	if (map_get(&sms->outbox, ref) == NULL) {
		/* A row without a readable time counts from now. */
		char *end;
		long long t = strtoll(f[3], &end, 10);
		time_t created = *f[3] != '\0' && *end == '\0' && t > 0 &&
		    t <= (long long)time(NULL) ? (time_t)t : time(NULL);
		struct out *o = out_new(sms, ref, jid, f[0], f[1], f[2], f[4],
		    created);
		map_put(&sms->outbox, ref, o);
		out_schedule(o, 0);
	}
	for (int i = 0; i < 5; i++)
		free(f[i]);
	return 0;
}

static int
prune_report(void *arg, const char *jid, const char *key, const void *value,
    size_t len)
{
	struct sms *sms = arg;
	char *f[4];
	if (*jid != '\0' || strncmp(key, "dlr/", 4) != 0)
		return 0;
	int old = 1;
	if (unpack(value, len, f, 4) == 0) {
		old = time(NULL) - strtoll(f[3], NULL, 10) > REPORT_KEEP;
		for (int i = 0; i < 4; i++)
			free(f[i]);
	}
	if (old)
		store_state_remove(cw->store, sms->c->domain, "", key);
	return 0;
}

static int
sms_init(struct component *c)
{
	struct sms *sms = xcalloc(1, sizeof(*sms));
	sms->c = c;
	const char *driver = config_str(c->section, "driver");
	if (strcmp(driver, sms_kannel_driver.name) == 0)
		sms->ops = &sms_kannel_driver;
	else if (strcmp(driver, sms_smstools_driver.name) == 0)
		sms->ops = &sms_smstools_driver;
	if (sms->ops == NULL) {
		log_error("%s: unknown SMS driver %s", c->domain, driver);
		free(sms);
		return -1;
	}
	if (read_numbers(c, sms) != 0) {
		/* Let the driver report its own mistakes too, so the
		 * operator sees them all at once. */
		struct sms_driver *d = sms->ops->start(c);
		if (d != NULL)
			sms->ops->stop(d);
		assignments_free(sms);
		free(sms);
		return -1;
	}
	if (sms->nassigned == 0)
		log_warn("%s: numbers is empty: only numbers an admin assigns "
		    "(command sms-assign) can be registered", c->domain);
	c->backend_data = sms;
	if (store_state_foreach(cw->store, c->domain, "", GRANT_KEY,
	    load_grant, sms) != 0 ||
	    store_state_foreach(cw->store, c->domain, NULL, "claim",
	    load_claim, sms) != 0) {
		log_error("%s: could not read the claimed numbers", c->domain);
		goto fail;
	}
	sms->drv = sms->ops->start(c);
	if (sms->drv == NULL)
		goto fail;
	store_state_foreach(cw->store, c->domain, "", "dlr/", prune_report,
	    sms);
	sms->pruned = time(NULL);
	if (store_state_foreach(cw->store, c->domain, NULL, "out/", load_out,
	    sms) != 0)
		log_error("%s: could not read the outbox", c->domain);
	if (sms->outbox.n > 0)
		log_info("%s: %zu text%s from the last run to send", c->domain,
		    sms->outbox.n, sms->outbox.n == 1 ? "" : "s");
	log_info("%s: SMS through %s, %zu number%s claimed", c->domain,
	    sms->ops->name, sms->claims.n, sms->claims.n == 1 ? "" : "s");
	return 0;
fail:
	map_clear(&sms->claims, free);
	map_clear(&sms->granted, free);
	assignments_free(sms);
	free(sms);
	c->backend_data = NULL;
	return -1;
}

static void
sms_reload(struct component *c)
{
	struct sms *sms = sms_of(c);
	if (sms == NULL)
		return;
	/* Numbers, country_code and max_parts change live; the driver's
	 * keys need a restart. */
	if (read_numbers(c, sms) != 0)
		log_error("%s: the new numbers or country_code are wrong; the "
		    "old ones stay", c->domain);
}

static void
sms_shutdown(struct component *c)
{
	struct sms *sms = sms_of(c);
	if (sms == NULL)
		return;
	if (sms->drv != NULL)
		sms->ops->stop(sms->drv);
	map_clear(&sms->outbox, out_free);
	map_clear(&sms->claims, free);
	map_clear(&sms->granted, free);
	assignments_free(sms);
	free(sms);
	c->backend_data = NULL;
}

/* ---- admin commands: assign, release and list numbers ---- */

static const struct form_field_spec assign_fields[] = {
	{ .var = "phone", .type = FIELD_TEXT_SINGLE, .label = "Phone number",
	  .required = 1, .max_len = SMS_NUMBER_INPUT_MAX },
	{ .var = "jid", .type = FIELD_TEXT_SINGLE, .label = "User",
	  .desc = "A bare JID, a domain (any user there), or *",
	  .required = 1, .max_len = 1024 },
};

static const struct form_field_spec release_fields[] = {
	{ .var = "phone", .type = FIELD_TEXT_SINGLE, .label = "Phone number",
	  .required = 1, .max_len = SMS_NUMBER_INPUT_MAX },
};

/* The E.164 form of the submitted phone field, or -1 with *note set. */
static int
command_number(struct sms *sms, const struct form *in,
    char number[SMS_NUMBER_SIZE], char **note)
{
	const char *phone = form_value(in, "phone");
	enum sms_number_kind kind;
	const char *why = NULL;
	if (phone == NULL || sms_number_normalize(phone, strlen(phone),
	    sms->country, number, &kind, &why) != 0 ||
	    kind != SMS_NUMBER_E164) {
		*note = xasprintf("That is not a phone number in E.164 form%s%s.",
		    why ? ": " : "", why ? why : "");
		return -1;
	}
	return 0;
}

static int
sms_cmd_assign(struct component *c, const char *admin, const struct form *in,
    char **note)
{
	struct sms *sms = sms_of(c);
	char number[SMS_NUMBER_SIZE];
	if (sms == NULL || command_number(sms, in, number, note) != 0)
		return -1;
	const char *target = form_value(in, "jid");
	if (target == NULL || *target == '\0' || strchr(target, '/') != NULL ||
	    strpbrk(target, " \t\r\n") != NULL) {
		*note = xstrdup("The user must be a bare JID, a domain or *.");
		return -1;
	}
	const char *holder = claim_owner(c, number);
	if (holder != NULL && !target_covers(target, holder)) {
		*note = xasprintf("%s is held by %s; release it first.", number,
		    holder);
		return -1;
	}
	char *key = xasprintf(GRANT_KEY "%s", number);
	int r = store_state_set(cw->store, c->domain, "", key, target,
	    strlen(target));
	free(key);
	if (r != 0) {
		*note = xstrdup("The gateway could not store the assignment.");
		return -1;
	}
	free(map_put(&sms->granted, number, xstrdup(target)));
	log_info("%s: %s assigned %s to %s", c->domain, admin, number, target);
	*note = xasprintf("%s is assigned to %s.", number, target);
	return 0;
}

static int
sms_cmd_release(struct component *c, const char *admin, const struct form *in,
    char **note)
{
	struct sms *sms = sms_of(c);
	char number[SMS_NUMBER_SIZE];
	if (sms == NULL || command_number(sms, in, number, note) != 0)
		return -1;
	char *key = xasprintf(GRANT_KEY "%s", number);
	int had_grant = store_state_remove(cw->store, c->domain, "", key) == 1;
	free(key);
	free(map_del(&sms->granted, number));
	char *holder = NULL;
	const char *h = claim_owner(c, number);
	if (h != NULL) {
		holder = xstrdup(h);
		store_state_remove(cw->store, c->domain, holder, "claim");
	}
	free(map_del(&sms->claims, number));
	log_info("%s: %s released %s%s%s", c->domain, admin, number,
	    holder ? " from " : "", holder ? holder : "");
	int in_config = 0;
	for (size_t i = 0; i < sms->nassigned; i++)
		if (strcmp(sms->assigned[i].number, number) == 0)
			in_config = 1;
	*note = xasprintf("%s is released%s%s.%s", number,
	    holder ? " from " : "", holder ? holder : "",
	    in_config ? " The configuration (numbers) still assigns it." :
	    !had_grant && holder == NULL ? " It was neither assigned by a "
	    "command nor held." : "");
	free(holder);
	return 0;
}

struct number_list {
	struct component *c;
	char *text;
};

static void
list_add(struct number_list *l, const char *number, const char *target,
    const char *how)
{
	const char *holder = claim_owner(l->c, number);
	char *line = xasprintf("%s%s -> %s (%s)%s%s", l->text ? l->text : "",
	    number, target, how, holder ? ", held by " : ", free",
	    holder ? holder : "");
	free(l->text);
	l->text = xasprintf("%s\n", line);
	free(line);
}

static int
sms_cmd_list(struct component *c, const char *admin, const struct form *in,
    char **note)
{
	struct sms *sms = sms_of(c);
	if (sms == NULL)
		return -1;
	struct number_list l = { .c = c };
	for (size_t i = 0; i < sms->nassigned; i++)
		list_add(&l, sms->assigned[i].number, sms->assigned[i].target,
		    "configuration");
	for (size_t b = 0; b < sms->granted.nb; b++)
		for (struct map_entry *e = sms->granted.b[b]; e != NULL;
		    e = e->next)
			list_add(&l, e->key, e->val, "command");
	*note = l.text ? l.text : xstrdup("No numbers are assigned.");
	return 0;
}

static const struct backend_command sms_commands[] = {
	{ .node = "sms-assign", .name = "Assign a phone number",
	  .admin_only = 1, .instructions = "The user (or any user of the "
	  "domain) may then register the number.", .fields = assign_fields,
	  .nfields = 2, .run = sms_cmd_assign },
	{ .node = "sms-release", .name = "Release a phone number",
	  .admin_only = 1, .instructions = "Takes the number from whoever "
	  "holds it; texts to it are refused until someone claims it again.",
	  .fields = release_fields, .nfields = 1, .run = sms_cmd_release },
	{ .node = "sms-numbers", .name = "List phone numbers",
	  .admin_only = 1, .run = sms_cmd_list },
};

const struct backend sms_backend = {
	.abi = BACKEND_ABI,
	.name = "sms",
	.gateway_type = "sms",
	.description = "SMS",
	.options = sms_options,
	.init = sms_init,
	.reload = sms_reload,
	.shutdown = sms_shutdown,
	.register_fields = sms_fields,
	.nregister_fields = sizeof(sms_fields) / sizeof(sms_fields[0]),
	.register_instructions = "Enter the phone number the operator of "
	    "this gateway assigned to you; texts to it arrive here, and "
	    "your texts go out from it.",
	.check_registration = sms_check_registration,
	.valid_address = sms_valid_address,
	.normalize_address = sms_normalize_address,
	.login = sms_login,
	.logout = sms_logout,
	.delivery_reports = 1,
	.send_message = sms_send_message,
	.commands = sms_commands,
	.ncommands = sizeof(sms_commands) / sizeof(sms_commands[0]),
};
