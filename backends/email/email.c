/*
 * The email backend: a mailbox as chat.  New mail in the user's IMAP
 * INBOX arrives as chat messages from alice\40example.net@mail.gw; what
 * the user writes back leaves by SMTP as a threaded reply.
 *
 * A session's IMAP connection (struct email_user, the session's data):
 *
 *   login() -> CONNECT job (connect, TLS, LOGIN, SELECT) -> SYNC job
 *   SYNC job: [DONE if idling] UID FETCH last+1:* (capped bodies, parsed
 *             on the worker) [STORE \Seen] [IDLE] -> deliver on the loop
 *   idling: the loop watches the socket; readable, or the idle_refresh
 *           timer (under 29 minutes) -> SYNC job
 *   no IDLE: the poll_interval timer -> SYNC job
 *   any failure: connection dropped, the gateway's presence (and the
 *                mailbox contact's) xa with the error, reconnect after
 *                2 s doubling to 300 s (with jitter); the backoff and
 *                the presence are reset by the next sync that works
 *
 * Only one job holds a connection at a time (u->busy); the loop never
 * touches it meanwhile.  A logout during a job marks the user closing
 * and the job's done() frees it.
 *
 * What keeps mail from being lost or doubled: the UIDVALIDITY and the
 * last delivered UID per user in the store ("imap/INBOX"), written
 * after each delivered mail; a new registration starts at UIDNEXT (plus,
 * when its form asked with last_unread, that many of the newest unread
 * mails, delivered once); a changed UIDVALIDITY starts again at UIDNEXT
 * (logged: the old numbers mean nothing any more).  A mail the core
 * could not take (session_deliver() -1) is fetched again later.
 *
 * Replies: send_message() composes the mail (email_compose.c), writes
 * it to the store ("out/<seq>") and only then accepts it; the outbox
 * (per component) sends each on the worker pool, retries 4xx and lost
 * connections with backoff, reports 5xx as an error message, and a
 * delivered one as a receipt.  The outbox is resent after a restart.
 * Jobs carry the component's domain and the user's JID, not pointers,
 * so a job that ends after its user or component went away does
 * nothing harmful.
 *
 * Per correspondent the store keeps the last mail's Message-ID,
 * References and Subject ("corr/<addr>"), and per thread id the newest
 * mail of the thread ("thread/<id>"), so a reply threads right whether
 * the client sends <thread> or not.  Anyone who can mail the user
 * creates such rows, so they are bounded: context_max per user and
 * prefix (the least recently written go), and none older than
 * context_days (expired hourly).
 *
 * The account's own address is a contact too (the mailbox contact): its
 * presence says whether the IMAP connection is up.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "backend.h"
#include "causeway.h"
#include "component.h"
#include "config.h"
#include "email.h"
#include "email_compose.h"
#include "email_mime.h"
#include "form.h"
#include "log.h"
#include "metrics.h"
#include "ratelimit.h"
#include "register.h"
#include "session.h"
#include "store.h"
#include "worker.h"
#include "xmalloc.h"

#define RETRY_MIN 2            /* IMAP reconnect backoff, seconds */
#define RETRY_MAX 300
#define FETCH_BATCH 20         /* mails per SYNC job */
#define STATE_KEY "imap/INBOX"
#define LAST_UNREAD_MAX 50     /* unread mails a registration may ask for */
#define STUCK_RETRY 30         /* seconds before an undeliverable mail is
                                * tried again */

extern const struct backend email_backend;

static const char *const security_choices[] = { "tls", "starttls", "none",
    NULL };

static const struct config_option email_options[] = {
	{ .key = "ca_file", .type = CONFIG_STRING, .def = "",
	  .help = "extra CA certificates (PEM) trusted besides the system's" },
	{ .key = "allow_plaintext", .type = CONFIG_BOOL, .def = "no",
	  .help = "let users choose security none (passwords in clear)" },
	{ .key = "poll_interval", .type = CONFIG_INT, .def = "60", .min = 1,
	  .max = 86400, .help = "seconds between checks when the server "
	  "has no IDLE" },
	{ .key = "idle_refresh", .type = CONFIG_INT, .def = "1500", .min = 5,
	  .max = 1740, .help = "seconds before IDLE is renewed (servers "
	  "drop it after 30 minutes)" },
	{ .key = "timeout", .type = CONFIG_INT, .def = "60", .min = 1,
	  .max = 600, .help = "seconds a mail server may take for one "
	  "operation (connecting and logging in, or one command), in all" },
	{ .key = "outbox_max", .type = CONFIG_INT, .def = "100", .min = 1,
	  .max = 100000, .help = "mails of one user waiting to be sent; "
	  "more are refused" },
	{ .key = "context_max", .type = CONFIG_INT, .def = "1000", .min = 1,
	  .max = 1000000, .help = "correspondents and threads remembered "
	  "per user (each) for threading replies; the oldest go first" },
	{ .key = "context_days", .type = CONFIG_INT, .def = "180", .min = 1,
	  .max = 3650, .help = "days a correspondent or thread is "
	  "remembered after its last mail" },
	{ .key = "register_checks_per_jid", .type = CONFIG_INT, .def = "5",
	  .min = 0, .max = 1000000, .help = "registration checks (each "
	  "connects to the servers given) one JID may start per 10 minutes; "
	  "0: no limit" },
	{ .key = "register_checks_per_domain", .type = CONFIG_INT,
	  .def = "20", .min = 0, .max = 1000000, .help = "registration "
	  "checks for addresses of one mail domain per 10 minutes (domains "
	  "with a [mail-domain] preset are exempt); 0: no limit" },
	{ .key = "fetch_max", .type = CONFIG_SIZE, .def = "1m",
	  .min = 4096, .max = 64 * 1024 * 1024,
	  .help = "bytes fetched per mail (the rest is listed, not read)" },
	{ .key = "text_max", .type = CONFIG_SIZE, .def = "64k", .min = 256,
	  .max = 16 * 1024 * 1024, .help = "bytes of text shown per mail" },
	{ .key = "smtp_retry", .type = CONFIG_INT, .def = "30", .min = 1,
	  .max = 3600, .help = "seconds before a failed send is tried "
	  "again (doubling to 15 minutes)" },
	{ .key = "smtp_give_up", .type = CONFIG_INT, .def = "172800",
	  .min = 60, .max = 30 * 86400, .help = "seconds after which an "
	  "unsendable reply is reported as failed" },
	{ .key = "smtp_no_auth_hosts", .type = CONFIG_STRING, .def = "",
	  .help = "SMTP hosts (names or addresses, space-separated) that may "
	  "take mail without AUTH; everywhere else a mail leaves only after "
	  "AUTH succeeded over verified TLS" },
	{ .key = NULL },
};

static const struct config_option mail_domain_options[] = {
	{ .key = "imap_host", .type = CONFIG_STRING, .def = "" },
	{ .key = "imap_port", .type = CONFIG_INT, .def = "0", .min = 0,
	  .max = 65535, .help = "0: 993 for tls, 143 otherwise" },
	{ .key = "imap_security", .type = CONFIG_ENUM, .def = "tls",
	  .choices = security_choices },
	{ .key = "smtp_host", .type = CONFIG_STRING, .def = "" },
	{ .key = "smtp_port", .type = CONFIG_INT, .def = "0", .min = 0,
	  .max = 65535, .help = "0: 465 for tls, 587 for starttls, 25 for "
	  "none" },
	{ .key = "smtp_security", .type = CONFIG_ENUM, .def = "starttls",
	  .choices = security_choices },
	{ .key = "smtp_no_auth", .type = CONFIG_BOOL, .def = "no",
	  .help = "the preset SMTP host takes mail without AUTH (a relay "
	  "that trusts the gateway); only for that host" },
	{ .key = NULL },
};

static const struct config_section_type email_sections[] = {
	{ .name = "mail-domain", .has_arg = 1, .options = mail_domain_options },
};

static const struct form_field_spec email_fields[] = {
	{ .var = "email", .type = FIELD_TEXT_SINGLE, .label = "Email address",
	  .required = 1, .max_len = 254 },
	{ .var = "name", .type = FIELD_TEXT_SINGLE, .label = "Your name",
	  .desc = "Shown in the From of your replies", .max_len = 128 },
	{ .var = "imap_host", .type = FIELD_TEXT_SINGLE, .label = "IMAP server",
	  .desc = "Leave empty when the gateway knows your provider",
	  .max_len = 253 },
	{ .var = "imap_port", .type = FIELD_TEXT_SINGLE, .label = "IMAP port",
	  .max_len = 5 },
	{ .var = "imap_security", .type = FIELD_LIST_SINGLE,
	  .label = "IMAP security", .options = security_choices },
	{ .var = "imap_user", .type = FIELD_TEXT_SINGLE, .label = "IMAP user",
	  .desc = "Default: the email address", .max_len = 256 },
	{ .var = "imap_password", .type = FIELD_TEXT_PRIVATE,
	  .label = "Password", .required = 1, .max_len = 1024, .secret = 1 },
	{ .var = "smtp_host", .type = FIELD_TEXT_SINGLE, .label = "SMTP server",
	  .desc = "Default: the preset, else the IMAP server",
	  .max_len = 253 },
	{ .var = "smtp_port", .type = FIELD_TEXT_SINGLE, .label = "SMTP port",
	  .max_len = 5 },
	{ .var = "smtp_security", .type = FIELD_LIST_SINGLE,
	  .label = "SMTP security", .options = security_choices },
	{ .var = "smtp_user", .type = FIELD_TEXT_SINGLE, .label = "SMTP user",
	  .desc = "Default: the IMAP user", .max_len = 256 },
	{ .var = "smtp_password", .type = FIELD_TEXT_PRIVATE,
	  .label = "SMTP password", .desc = "Default: the IMAP password",
	  .max_len = 1024, .secret = 1 },
	{ .var = "mark_read", .type = FIELD_BOOLEAN,
	  .label = "Mark delivered mail as read", .def = "0" },
	{ .var = "last_unread", .type = FIELD_TEXT_SINGLE,
	  .label = "Unread mails to deliver at once (0-50)",
	  .desc = "On registration, the newest unread mails already in the "
	  "mailbox, up to this many; later mail always arrives", .def = "0",
	  .max_len = 2 },
	{ .var = "read_marker", .type = FIELD_BOOLEAN,
	  .label = "Mark mail read in my mailbox when I read it in the chat",
	  .def = "1" },
	{ .var = "sent_copy", .type = FIELD_BOOLEAN,
	  .label = "Keep a copy of my replies in Sent",
	  .desc = "Turn off when your provider files sent mail itself",
	  .def = "1" },
	{ .var = "add_contacts", .type = FIELD_BOOLEAN,
	  .label = "Add every sender to my contacts at once",
	  .desc = "Otherwise a correspondent becomes a contact when you "
	  "first answer", .def = "0" },
};

/* ---- the account ---- */

struct email_account *
email_account_copy(const struct email_account *a)
{
	struct email_account *c = xmalloc(sizeof(*c));
	*c = *a;
#define DUP(f) c->f = a->f ? xstrdup(a->f) : NULL
	DUP(email);
	DUP(name);
	DUP(imap_host);
	DUP(imap_user);
	DUP(imap_password);
	DUP(smtp_host);
	DUP(smtp_user);
	DUP(smtp_password);
	DUP(ca_file);
#undef DUP
	return c;
}

static void
account_clear(struct email_account *a)
{
	if (a->imap_password)
		OPENSSL_cleanse(a->imap_password, strlen(a->imap_password));
	if (a->smtp_password)
		OPENSSL_cleanse(a->smtp_password, strlen(a->smtp_password));
	free(a->email);
	free(a->name);
	free(a->imap_host);
	free(a->imap_user);
	free(a->imap_password);
	free(a->smtp_host);
	free(a->smtp_user);
	free(a->smtp_password);
	free(a->ca_file);
}

void
email_account_free(struct email_account *a)
{
	if (a == NULL)
		return;
	account_clear(a);
	free(a);
}

typedef const char *(*value_fn)(const void *ctx, const char *var);

/* The last_unread field: 0..LAST_UNREAD_MAX, -1 when it is not that. */
static int
last_unread_parse(const char *v)
{
	char *end;
	long n = strtol(v, &end, 10);
	if (*v < '0' || *v > '9' || *end != '\0' || n < 0 ||
	    n > LAST_UNREAD_MAX)
		return -1;
	return (int)n;
}

static const char *
form_get(const void *ctx, const char *var)
{
	const char *v = form_value(ctx, var);
	return v && *v ? v : NULL;
}

static const char *
session_get(const void *ctx, const char *var)
{
	const char *v = session_field(ctx, var);
	return v && *v ? v : NULL;
}

static int
parse_security(const char *v, enum email_security *out)
{
	if (strcmp(v, "tls") == 0)
		*out = EMAIL_TLS;
	else if (strcmp(v, "starttls") == 0)
		*out = EMAIL_STARTTLS;
	else if (strcmp(v, "none") == 0)
		*out = EMAIL_PLAIN;
	else
		return -1;
	return 0;
}

/*
 * A host a user typed: an IPv4 or IPv6 literal, or a name of letters,
 * digits and hyphens in dot-separated labels.  Anything else could mean
 * one host to the destination check and another to the URL or socket
 * code ("10.0.0.5/.example.com" resolves under a wildcard, but curl
 * reads the host as 10.0.0.5).
 */
static int
host_syntax_ok(const char *h)
{
	unsigned char addr[sizeof(struct in6_addr)];
	if (inet_pton(AF_INET, h, addr) == 1 ||
	    inet_pton(AF_INET6, h, addr) == 1)
		return 1;
	size_t n = strlen(h), label = 0;
	if (n == 0 || n > 253)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (h[i] == '.') {
			if (label == 0)
				return 0;
			label = 0;
		} else if (isalnum((unsigned char)h[i]) || h[i] == '-') {
			if (++label > 63)
				return 0;
		} else {
			return 0;
		}
	}
	return label > 0;
}

/*
 * One side (imap_ / smtp_) of the account: host, security and port from
 * what the user gave, else the [mail-domain] preset, else defaults.
 */
static int
resolve_side(struct component *c, const struct config_section *preset,
    value_fn get, const void *ctx, const char *side, const char *fallback,
    int fallback_trusted, char **host, int *trusted,
    enum email_security *sec, int *port, char *err, size_t errlen)
{
	char var[32];
	snprintf(var, sizeof(var), "%s_host", side);
	const char *h = get(ctx, var);
	/* A host the operator preset is trusted as it is; one the user
	 * typed goes through the destination policy. */
	*trusted = 0;
	if (h == NULL && preset != NULL && *config_str(preset, var) != '\0') {
		h = config_str(preset, var);
		*trusted = 1;
	}
	if (h == NULL) {
		h = fallback;
		*trusted = fallback_trusted;
	}
	if (h == NULL) {
		snprintf(err, errlen, "no %s server given (and none is preset "
		    "for your domain)", strcmp(side, "imap") ? "SMTP" : "IMAP");
		return -1;
	}
	if (!*trusted && !host_syntax_ok(h)) {
		snprintf(err, errlen, "%s_host: not a host name or an IP "
		    "address", side);
		return -1;
	}
	snprintf(var, sizeof(var), "%s_security", side);
	const char *s = get(ctx, var);
	const char *ps = preset ? config_str(preset, var) : NULL;
	int from_preset = s == NULL && ps != NULL;
	if (s == NULL)
		s = ps ? ps : strcmp(side, "imap") == 0 ? "tls" : "starttls";
	if (parse_security(s, sec) != 0) {
		snprintf(err, errlen, "%s: tls, starttls or none", var);
		return -1;
	}
	if (*sec == EMAIL_PLAIN && !config_bool(c->section, "allow_plaintext")) {
		snprintf(err, errlen, "this gateway does not allow %s without "
		    "TLS", strcmp(side, "imap") ? "SMTP" : "IMAP");
		return -1;
	}
	snprintf(var, sizeof(var), "%s_port", side);
	const char *p = get(ctx, var);
	*port = 0;
	if (p != NULL) {
		char *end;
		long v = strtol(p, &end, 10);
		if (*end != '\0' || v < 1 || v > 65535) {
			snprintf(err, errlen, "%s: a port number", var);
			return -1;
		}
		*port = (int)v;
	} else if (preset != NULL && (from_preset || (ps && strcmp(ps, s) ==
	    0))) {
		*port = (int)config_int(preset, var);
	}
	if (*port == 0) {
		if (strcmp(side, "imap") == 0)
			*port = *sec == EMAIL_TLS ? 993 : 143;
		else
			*port = *sec == EMAIL_PLAIN ? 25 : *sec == EMAIL_TLS ?
			    465 : 587;
	}
	*host = xstrdup(h);
	return 0;
}

/* Whether the operator lets host take mail without AUTH: listed in the
 * component's smtp_no_auth_hosts, or the preset's own SMTP host with
 * smtp_no_auth = yes. */
static int
no_auth_allowed(struct component *c, const struct config_section *preset,
    const char *host)
{
	if (preset != NULL && config_bool(preset, "smtp_no_auth") &&
	    strcasecmp(config_str(preset, "smtp_host"), host) == 0)
		return 1;
	const char *l = config_str(c->section, "smtp_no_auth_hosts");
	size_t hl = strlen(host);
	while (*l != '\0') {
		while (*l == ' ' || *l == ',')
			l++;
		size_t n = strcspn(l, " ,");
		if (n == hl && n > 0 && strncasecmp(l, host, n) == 0)
			return 1;
		l += n;
	}
	return 0;
}

static int
account_resolve(struct component *c, value_fn get, const void *ctx,
    struct email_account *a, char *err, size_t errlen)
{
	memset(a, 0, sizeof(*a));
	const char *email = get(ctx, "email");
	if (email == NULL) {
		snprintf(err, errlen, "no email address");
		return -1;
	}
	a->email = xstrdup(email);
	for (char *p = a->email; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	if (!email_mime_addr_valid(a->email)) {
		snprintf(err, errlen, "not a valid email address");
		goto fail;
	}
	const char *domain = strrchr(a->email, '@') + 1;
	const struct config_section *preset = config_section_find(cw->config,
	    "mail-domain", domain);
	if (resolve_side(c, preset, get, ctx, "imap", NULL, 0, &a->imap_host,
	    &a->imap_trusted, &a->imap_security, &a->imap_port, err,
	    errlen) != 0 ||
	    resolve_side(c, preset, get, ctx, "smtp", a->imap_host,
	    a->imap_trusted, &a->smtp_host, &a->smtp_trusted,
	    &a->smtp_security, &a->smtp_port, err, errlen) != 0)
		goto fail;
	const char *v = get(ctx, "name");
	a->name = v ? xstrdup(v) : NULL;
	v = get(ctx, "imap_user");
	a->imap_user = xstrdup(v ? v : a->email);
	v = get(ctx, "imap_password");
	if (v == NULL) {
		snprintf(err, errlen, "no password");
		goto fail;
	}
	a->imap_password = xstrdup(v);
	v = get(ctx, "smtp_user");
	a->smtp_user = xstrdup(v ? v : a->imap_user);
	v = get(ctx, "smtp_password");
	a->smtp_password = xstrdup(v ? v : a->imap_password);
	v = get(ctx, "last_unread");
	if (v != NULL && last_unread_parse(v) < 0) {
		snprintf(err, errlen, "last_unread: a number from 0 to %d",
		    LAST_UNREAD_MAX);
		goto fail;
	}
	v = get(ctx, "mark_read");
	a->mark_read = v && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0);
	/* On unless turned off (accounts older than the setting too). */
	v = get(ctx, "sent_copy");
	a->sent_copy = v == NULL || strcmp(v, "1") == 0 ||
	    strcmp(v, "true") == 0;
	a->smtp_no_auth = no_auth_allowed(c, preset, a->smtp_host);
	a->ca_file = xstrdup(config_str(c->section, "ca_file"));
	a->timeout = (int)config_int(c->section, "timeout");
	a->fetch_max = (size_t)config_int(c->section, "fetch_max");
	a->text_max = (size_t)config_int(c->section, "text_max");
	return 0;
fail:
	account_clear(a);
	memset(a, 0, sizeof(*a));
	return -1;
}

/* The component by domain, if it still exists and is ours. */
static struct component *
component_by_domain(const char *domain)
{
	struct component *c;
	TAILQ_FOREACH(c, &cw->components, entry)
		if (strcmp(c->domain, domain) == 0 &&
		    c->backend == &email_backend)
			return c;
	return NULL;
}

/* ---- registration ---- */

struct check_job {
	struct register_request *req;
	struct email_account a;
	enum email_fail why;
	char err[512];
};

static void
check_work(void *arg)
{
	struct check_job *j = arg;
	struct email_imap *im = email_imap_open(&j->a, &j->why, j->err,
	    sizeof(j->err));
	if (im == NULL)
		return;
	email_imap_close(im);
}

static void check_finish(struct check_job *j);

/* The SMTP half of the check: the session sending uses, up to AUTH. */
static void
check_smtp_done(void *arg, enum email_smtp_result res, enum email_fail why,
    const char *err)
{
	struct check_job *j = arg;
	(void)res;
	j->why = why;
	snprintf(j->err, sizeof(j->err), "%s", err);
	check_finish(j);
}

static void
check_done(void *arg)
{
	struct check_job *j = arg;
	if (j->why == EMAIL_FAIL_NONE) {
		email_smtp_start(&j->a, NULL, NULL, check_smtp_done, j);
		return;
	}
	check_finish(j);
}

static void
check_finish(struct check_job *j)
{
	if (j->why == EMAIL_FAIL_NONE)
		register_request_done(j->req, NULL, NULL);
	else
		register_request_done(j->req, j->why == EMAIL_FAIL_AUTH ?
		    "not-authorized" : "remote-server-not-found", j->err);
	account_clear(&j->a);
	free(j);
}

static int check_allowed(struct component *c, const char *jid,
    const char *email, char *err, size_t errlen);

static void
email_check_registration(struct component *c, const char *jid,
    const struct form *values, struct register_request *req)
{
	struct check_job *j = xcalloc(1, sizeof(*j));
	j->req = req;
	if (account_resolve(c, form_get, values, &j->a, j->err,
	    sizeof(j->err)) != 0) {
		register_request_done(req, "not-acceptable", j->err);
		free(j);
		return;
	}
	if (!check_allowed(c, jid, j->a.email, j->err, sizeof(j->err))) {
		register_request_done(req, "resource-constraint", j->err);
		account_clear(&j->a);
		free(j);
		return;
	}
	log_info("email: %s: %s: checking %s at %s:%d and %s:%d", c->domain,
	    jid, j->a.email, j->a.imap_host, j->a.imap_port, j->a.smtp_host,
	    j->a.smtp_port);
	/* Keyed by the JID: one user, one worker (worker.h). */
	worker_submit_keyed(cw->workers, jid, check_work, check_done, j);
}

/* ---- small store values ---- */

/* "line1\nline2\n...rest" -> up to n fields (borrowed into buf), the
 * last one holding the rest. */
static size_t
split_lines(char *buf, char **f, size_t n)
{
	size_t k = 0;
	char *p = buf;
	while (k < n && p != NULL) {
		f[k++] = p;
		/* The last field is the rest, newlines and all. */
		p = k < n ? strchr(p, '\n') : NULL;
		if (p != NULL)
			*p++ = '\0';
	}
	for (size_t i = k; i < n; i++)
		f[i] = NULL;
	return k;
}

static void context_expire(struct component *c);

static void
context_set(struct session *s, const char *prefix, const char *name,
    const char *msgid, const char *refs, const char *subject)
{
	struct component *c = session_component(s);
	char *key = xasprintf("%s/%s", prefix, name);
	char *v = xasprintf("%s\n%s\n%s", msgid ? msgid : "", refs ? refs : "",
	    subject ? subject : "");
	if (store_state_set(cw->store, c->domain, session_jid(s), key, v,
	    strlen(v)) != 0)
		log_warn("email: %s: %s: cannot store %s", c->domain,
		    session_jid(s), key);
	free(v);
	free(key);
	/* Bounded: the newest context_max rows of this kind stay. */
	char *pfx = xasprintf("%s/", prefix);
	int gone = store_state_trim(cw->store, c->domain, session_jid(s), pfx,
	    (unsigned)config_int(c->section, "context_max"));
	if (gone > 0)
		log_debug("email: %s: %s: %d old %s row(s) dropped", c->domain,
		    session_jid(s), gone, prefix);
	free(pfx);
	context_expire(c);
}

/* The stored msgid, references and subject under prefix/name; 1 found,
 * 0 not, -1 error.  *raw holds them (caller frees). */
static int
context_get(struct session *s, const char *prefix, const char *name,
    char **raw, char **f)
{
	struct component *c = session_component(s);
	char *key = xasprintf("%s/%s", prefix, name);
	int r = store_state_get(cw->store, c->domain, session_jid(s), key, raw,
	    NULL);
	free(key);
	if (r == 1)
		split_lines(*raw, f, 3);
	return r;
}

/* ---- receiving ---- */

struct email_user {
	struct session *s;     /* NULL once closing */
	char *key;             /* the bare JID: this user's worker key */
	struct component *c;
	struct email_account *acct;
	struct email_imap *im;
	int busy;              /* a job holds im */
	int closing;           /* logged out during a job */
	int reported;          /* session_login_result() was called */
	int idling;
	uint32_t uidvalidity, last_uid;
	int have_state;
	struct event *idle_ev;
	struct event *timer;
	unsigned backoff;
	char status[256];      /* the mailbox contact's last status */
	uint32_t *seen;        /* UIDs read in the chat, for the next sync */
	size_t nseen;
};

enum job_kind { JOB_CONNECT, JOB_SYNC, JOB_CLOSE, JOB_PEEK };

struct imap_job {
	enum job_kind kind;
	struct email_user *u;
	struct email_imap *im;
	struct email_account *acct;  /* borrowed from u (fixed meanwhile) */
	int was_idling;
	uint32_t after;
	size_t backlog;        /* CONNECT of a new registration: unread
	                        * mails it asked for */
	/* results */
	enum email_fail why;
	char err[512];
	uint32_t uidvalidity, uidnext;
	struct email_fetched *mails;
	size_t nmails;
	int more;
	int idle;              /* -1 no IDLE, 0 idling, 1 has data */
	uint32_t *seen;        /* owned: \Seen to set first (SYNC) */
	size_t nseen;
};

static void load_state(struct email_user *u);
static int setting_on(struct session *s, const char *var);
static void mark_id_new(char *out, size_t len);
static void marks_add(struct email_user *u, const char *id, uint32_t uid,
    const char *legacy);

static void user_schedule(struct email_user *u, int seconds);
static void submit_sync(struct email_user *u, int was_idling);
static void submit_job(struct email_user *u, enum job_kind kind,
    int was_idling);

static void
mailbox_presence(struct email_user *u, const char *show, const char *status)
{
	if (u->s == NULL)
		return;
	snprintf(u->status, sizeof(u->status), "%s", status ? status : "");
	session_contact_presence(u->s, u->acct->email, show, status);
}

static void
user_free(struct email_user *u)
{
	if (u->idle_ev != NULL)
		event_free(u->idle_ev);
	if (u->timer != NULL)
		event_free(u->timer);
	free(u->seen);
	email_account_free(u->acct);
	free(u->key);
	free(u);
}

static void
close_work(void *arg)
{
	email_imap_close(arg);
}

/* Gives the connection to a worker to say LOGOUT and free it. */
static void
drop_connection(struct email_user *u)
{
	if (u->idle_ev != NULL)
		event_del(u->idle_ev);
	u->idling = 0;
	if (u->im != NULL)
		worker_submit_keyed(cw->workers, u->key, close_work, NULL,
		    u->im);
	u->im = NULL;
}

static void
imap_work(void *arg)
{
	struct imap_job *j = arg;
	switch (j->kind) {
	case JOB_CONNECT:
		j->im = email_imap_open(j->acct, &j->why, j->err,
		    sizeof(j->err));
		if (j->im == NULL)
			return;
		if (email_imap_select(j->im, &j->uidvalidity, &j->uidnext,
		    j->err, sizeof(j->err)) != 0 || (j->backlog > 0 &&
		    email_imap_fetch_unseen(j->im, j->acct, j->uidnext,
		    j->backlog, &j->mails, &j->nmails, j->err,
		    sizeof(j->err)) != 0))
			break;
		return;
	case JOB_SYNC:
		if (j->was_idling && email_imap_idle_done(j->im, j->err,
		    sizeof(j->err)) != 0)
			break;
		if (j->nseen > 0 && email_imap_mark_seen(j->im, j->seen,
		    j->nseen, j->err, sizeof(j->err)) != 0)
			break;
		if (email_imap_fetch_new(j->im, j->acct, j->after, FETCH_BATCH,
		    &j->mails, &j->nmails, &j->more, j->err,
		    sizeof(j->err)) != 0)
			break;
		j->idle = -1;
		if (!j->more && email_imap_has_idle(j->im)) {
			j->idle = email_imap_idle(j->im, j->err,
			    sizeof(j->err));
			if (j->idle < 0)
				break;
		}
		return;
	case JOB_CLOSE:
		email_imap_close(j->im);
		j->im = NULL;
		return;
	case JOB_PEEK:
		/* Still in IDLE: what did the server say? */
		j->idle = email_imap_idle_peek(j->im, j->err, sizeof(j->err));
		if (j->idle < 0)
			break;
		return;
	}
	/* The connection failed: it is of no use any more. */
	j->why = EMAIL_FAIL_NETWORK;
	email_imap_abort(j->im);
	j->im = NULL;
}

/* One fetched mail to the user; -1 when the core could not take it. */
static int
deliver(struct email_user *u, struct email_fetched *f)
{
	struct session *s = u->s;
	struct component *c = u->c;
	struct email_text *t = &f->text;
	const char *legacy = t->from_addr;
	char *body = NULL;
	char *jid = legacy ? session_contact_jid(c, legacy) : NULL;
	if (jid == NULL) {
		/* Nobody to answer: it comes from the mailbox contact. */
		legacy = u->acct->email;
		body = xasprintf("[a mail without a usable sender address%s%s]"
		    "\n\n%s", t->from_name ? " from " : "", t->from_name ?
		    t->from_name : "", t->body);
	}
	free(jid);
	/* A random id, remembered with the UID: a read marker for it sets
	 * \Seen (and one for anything else is ignored). */
	char id[40] = "";
	int markable = legacy == t->from_addr && setting_on(s, "read_marker");
	if (markable)
		mark_id_new(id, sizeof(id));
	struct legacy_message lm = { .body = body ? body : t->body,
	    .subject = t->subject, .thread = t->thread, .nick = t->from_name,
	    .stamp = t->date, .id = markable ? id : NULL,
	    .markable = markable };
	int r = session_deliver(s, legacy, &lm);
	free(body);
	if (r == 0 && markable)
		marks_add(u, id, f->uid, legacy);
	if (r != 0) {
		log_warn("email: %s: %s: mail UID %u could not be delivered; "
		    "trying again in %d s", c->domain, session_jid(s), f->uid,
		    STUCK_RETRY);
		return -1;
	}
	if (legacy == t->from_addr) {
		context_set(s, "corr", legacy, t->message_id, t->references,
		    t->subject);
		if (session_field(s, "add_contacts") != NULL &&
		    strcmp(session_field(s, "add_contacts"), "1") == 0)
			session_contact_known(s, legacy, t->from_name);
	}
	if (t->thread != NULL)
		context_set(s, "thread", t->thread, t->message_id,
		    t->references, t->subject);
	return 0;
}

/* ---- read markers ---- */

#define MARKS_KEY "marks"
#define MARKS_MAX 500          /* delivered mails a marker may name */

/* A per-user boolean field, on unless set to something else (also for
 * accounts registered before it existed). */
static int
setting_on(struct session *s, const char *var)
{
	const char *v = session_field(s, var);
	return v == NULL || *v == '\0' || strcmp(v, "1") == 0 ||
	    strcmp(v, "true") == 0;
}

static void
mark_id_new(char *out, size_t len)
{
	unsigned char r[8];
	if (RAND_bytes(r, sizeof(r)) != 1)
		log_fatal("email: no random bytes");
	snprintf(out, len, "mail-%02x%02x%02x%02x%02x%02x%02x%02x", r[0], r[1],
	    r[2], r[3], r[4], r[5], r[6], r[7]);
}

/* The store keeps the newest MARKS_MAX delivered mails as lines
 * "id uidvalidity uid address", oldest first. */
static void
marks_add(struct email_user *u, const char *id, uint32_t uid,
    const char *legacy)
{
	struct session *s = u->s;
	char *old = NULL;
	if (store_state_get(cw->store, u->c->domain, session_jid(s),
	    MARKS_KEY, &old, NULL) < 0) {
		free(old);
		return;
	}
	const char *keep = old ? old : "";
	size_t lines = 0;
	for (const char *p = keep; *p; p++)
		lines += *p == '\n';
	while (lines >= MARKS_MAX) {
		const char *nl = strchr(keep, '\n');
		keep = nl ? nl + 1 : "";
		lines--;
	}
	char *v = xasprintf("%s%s %u %u %s\n", keep, id, u->uidvalidity, uid,
	    legacy);
	if (store_state_set(cw->store, u->c->domain, session_jid(s),
	    MARKS_KEY, v, strlen(v)) != 0)
		log_warn("email: %s: %s: cannot store a read marker id",
		    u->c->domain, session_jid(s));
	free(v);
	free(old);
}

static void
email_chat_marker(struct session *s, const char *legacy, const char *id,
    const char *marker)
{
	struct email_user *u = session_data(s);
	struct component *c = session_component(s);
	if (u == NULL || strcmp(marker, "displayed") != 0 ||
	    !setting_on(s, "read_marker"))
		return;
	char *raw = NULL;
	if (store_state_get(cw->store, c->domain, session_jid(s), MARKS_KEY,
	    &raw, NULL) != 1)
		goto out;
	/* The mail marked, and (XEP-0333: a marker counts for what came
	 * before) the earlier ones of that correspondent; each leaves the
	 * list once marked. */
	char *found = NULL;
	for (char *p = raw; *p && found == NULL; ) {
		char *nl = strchr(p, '\n');
		size_t il = strcspn(p, " \n");
		if (il == strlen(id) && strncmp(p, id, il) == 0)
			found = p;
		p = nl ? nl + 1 : p + strlen(p);
	}
	if (found == NULL) {
		log_debug("email: %s: %s: a marker for an id that is no mail "
		    "of ours: ignored", c->domain, session_jid(s));
		goto out;
	}
	char *end = strchr(found, '\n');
	end = end ? end + 1 : found + strlen(found);
	size_t outlen = 0;
	char *rest = xmalloc(strlen(raw) + 1);
	for (char *p = raw; *p; ) {
		char *nl = strchr(p, '\n');
		size_t ll = nl ? (size_t)(nl - p) + 1 : strlen(p);
		char mid[64], addr[300];
		unsigned validity, uid;
		int take = 0;
		if (p < end && sscanf(p, "%63s %u %u %299s", mid, &validity,
		    &uid, addr) == 4 && strcmp(addr, legacy) == 0) {
			take = 1;
			if (validity == u->uidvalidity) {
				u->seen = xreallocarray(u->seen, u->nseen + 1,
				    sizeof(*u->seen));
				u->seen[u->nseen++] = uid;
			}
		}
		if (!take) {
			memcpy(rest + outlen, p, ll);
			outlen += ll;
		}
		p += ll;
	}
	rest[outlen] = '\0';
	store_state_set(cw->store, c->domain, session_jid(s), MARKS_KEY, rest,
	    outlen);
	free(rest);
	log_debug("email: %s: %s: read in the chat: %zu mail(s) to mark",
	    c->domain, session_jid(s), u->nseen);
	if (u->nseen > 0 && !u->busy && u->im != NULL) {
		evtimer_del(u->timer);
		submit_sync(u, u->idling);
	}
out:
	free(raw);
}

static void
save_state(struct email_user *u)
{
	char v[32];
	snprintf(v, sizeof(v), "%u %u", u->uidvalidity, u->last_uid);
	if (store_state_set(cw->store, u->c->domain, session_jid(u->s),
	    STATE_KEY, v, strlen(v)) != 0)
		log_warn("email: %s: %s: cannot store the last UID",
		    u->c->domain, session_jid(u->s));
}

static void
load_state(struct email_user *u)
{
	char *v = NULL;
	unsigned validity, last;
	u->have_state = 0;
	if (store_state_get(cw->store, u->c->domain, session_jid(u->s),
	    STATE_KEY, &v, NULL) == 1 && sscanf(v, "%u %u", &validity,
	    &last) == 2) {
		u->uidvalidity = validity;
		u->last_uid = last;
		u->have_state = 1;
	}
	free(v);
}

static void
connection_failed(struct email_user *u, const char *err)
{
	log_info("email: %s: %s: %s", u->c->domain, session_jid(u->s), err);
	drop_connection(u);
	char *status = xasprintf("mailbox unreachable: %s", err);
	mailbox_presence(u, "xa", status);
	/* What XEP-0100 clients show: the gateway's own presence. */
	if (u->s != NULL)
		session_gateway_status(u->s, "xa", status);
	free(status);
	unsigned d = u->backoff ? u->backoff : RETRY_MIN;
	u->backoff = d * 2 > RETRY_MAX ? RETRY_MAX : d * 2;
	unsigned r;
	if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
		r = 0;
	user_schedule(u, (int)(d + d * (r % 25) / 100));
}

static void
imap_done(void *arg)
{
	struct imap_job *j = arg;
	struct email_user *u = j->u;
	u->busy = 0;
	if (u->closing) {
		/* Logged out meanwhile: nobody wants the result. */
		if (j->im != NULL)
			worker_submit_keyed(cw->workers, u->key, close_work,
			    NULL, j->im);
		email_fetched_free(j->mails, j->nmails);
		free(j);
		user_free(u);
		return;
	}
	u->im = j->im;
	if (j->kind == JOB_CONNECT) {
		if (j->im == NULL) {
			/* A refused password does not get better by
			 * retrying; an unreachable server might. */
			if (!u->reported && j->why == EMAIL_FAIL_AUTH) {
				struct session *s = u->s;
				log_info("email: %s: %s: %s", u->c->domain,
				    session_jid(s), j->err);
				session_set_data(s, NULL);
				user_free(u);
				session_login_result(s, 0, j->err);
				free(j);
				return;
			}
			if (!u->reported) {
				u->reported = 1;
				session_login_result(u->s, 1, NULL);
				session_contact_known(u->s, u->acct->email,
				    "Mailbox");
			}
			connection_failed(u, j->err);
			free(j);
			return;
		}
		if (!u->reported) {
			u->reported = 1;
			session_login_result(u->s, 1, NULL);
			session_contact_known(u->s, u->acct->email, "Mailbox");
		}
		/* The backoff is reset by the first sync that works: a server
		 * that lets us in and then fails every FETCH is not hammered
		 * every 2 s. */
		mailbox_presence(u, "", NULL);
		session_gateway_status(u->s, NULL, NULL);
		load_state(u);
		if (!u->have_state || u->uidvalidity != j->uidvalidity) {
			int first = !u->have_state;
			if (u->have_state)
				log_warn("email: %s: %s: UIDVALIDITY changed "
				    "(%u to %u): starting from the newest "
				    "mail", u->c->domain, session_jid(u->s),
				    u->uidvalidity, j->uidvalidity);
			u->uidvalidity = j->uidvalidity;
			u->last_uid = j->uidnext > 0 ? j->uidnext - 1 : 0;
			/* Saved before the backlog goes out: a crash then
			 * loses it rather than doubling it. */
			save_state(u);
			if (first && j->nmails > 0)
				log_info("email: %s: %s: delivering %zu unread "
				    "mail(s) of the registration",
				    u->c->domain, session_jid(u->s),
				    j->nmails);
			for (size_t i = 0; first && i < j->nmails; i++)
				if (deliver(u, &j->mails[i]) != 0)
					break;
		}
		email_fetched_free(j->mails, j->nmails);
		log_info("email: %s: %s: INBOX open (UIDVALIDITY %u, last "
		    "UID %u)", u->c->domain, session_jid(u->s),
		    u->uidvalidity, u->last_uid);
		free(j);
		submit_sync(u, 0);
		return;
	}
	if (j->kind == JOB_PEEK) {
		int change = j->idle;
		if (u->im == NULL) {
			connection_failed(u, j->err);
			free(j);
			return;
		}
		free(j);
		/* Only a change of the mailbox (or a marker waiting, or the
		 * IDLE renewal that came due meanwhile) is worth a round;
		 * keepalives are read and dropped. */
		if (change || u->nseen > 0 || !evtimer_pending(u->timer, NULL)) {
			submit_sync(u, 1);
			return;
		}
		log_debug("email: %s: %s: IDLE: the server's keepalive read, no "
		    "resync", u->c->domain, session_jid(u->s));
		u->idling = 1;
		event_add(u->idle_ev, NULL);
		return;
	}
	/* JOB_SYNC */
	free(j->seen);
	int stuck = 0;
	for (size_t i = 0; i < j->nmails && !stuck; i++) {
		if (j->mails[i].uid <= u->last_uid)
			continue;
		if (deliver(u, &j->mails[i]) != 0) {
			stuck = 1;
			break;
		}
		u->last_uid = j->mails[i].uid;
		save_state(u);
	}
	email_fetched_free(j->mails, j->nmails);
	if (j->im == NULL) {
		connection_failed(u, j->err);
		free(j);
		return;
	}
	int more = j->more, idle = j->idle;
	free(j);
	u->backoff = 0;
	if (!stuck && (more || idle == 1 || u->nseen > 0)) {
		submit_sync(u, idle == 1);
		return;
	}
	/* The server is in IDLE whether or not it said something already
	 * (idle 1 is left here only when a delivery got stuck). */
	u->idling = idle >= 0;
	user_schedule(u, stuck ? STUCK_RETRY : idle == 0 ?
	    (int)config_int(u->c->section, "idle_refresh") :
	    (int)config_int(u->c->section, "poll_interval"));
}

static void
idle_cb(evutil_socket_t fd, short what, void *arg)
{
	struct email_user *u = arg;
	(void)fd;
	(void)what;
	if (u->busy || u->im == NULL)
		return;
	/* Read first: most of what comes is a keepalive ("* OK Still
	 * here"), no reason for DONE and a FETCH. */
	event_del(u->idle_ev);
	submit_job(u, JOB_PEEK, 1);
}

static void
submit_job(struct email_user *u, enum job_kind kind, int was_idling)
{
	struct imap_job *j = xcalloc(1, sizeof(*j));
	j->kind = kind;
	j->u = u;
	j->im = u->im;
	j->acct = u->acct;
	j->was_idling = was_idling;
	j->after = u->last_uid;
	if (kind == JOB_SYNC) {
		j->seen = u->seen;
		j->nseen = u->nseen;
		u->seen = NULL;
		u->nseen = 0;
	}
	if (kind == JOB_CONNECT) {
		/* A new registration (no state yet) may want its unread
		 * mails. */
		const char *v = session_field(u->s, "last_unread");
		int n = v != NULL ? last_unread_parse(v) : 0;
		load_state(u);
		j->backlog = !u->have_state && n > 0 ? (size_t)n : 0;
	}
	u->im = NULL;
	u->busy = 1;
	worker_submit_keyed(cw->workers, u->key, imap_work, imap_done, j);
}

static void
submit_sync(struct email_user *u, int was_idling)
{
	if (u->idle_ev != NULL)
		event_del(u->idle_ev);
	u->idling = 0;
	submit_job(u, JOB_SYNC, was_idling);
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct email_user *u = arg;
	(void)fd;
	(void)what;
	if (u->busy)
		return;
	if (u->im == NULL)
		submit_job(u, JOB_CONNECT, 0);
	else
		submit_sync(u, u->idling);
}

static void
user_schedule(struct email_user *u, int seconds)
{
	struct timeval tv = { .tv_sec = seconds };
	if (u->idling) {
		event_free(u->idle_ev);
		u->idle_ev = event_new(cw->base, email_imap_fd(u->im), EV_READ,
		    idle_cb, u);
		if (u->idle_ev == NULL)
			log_fatal("email: cannot create an event");
		event_add(u->idle_ev, NULL);
	}
	evtimer_add(u->timer, &tv);
}

static void
email_login(struct session *s)
{
	struct component *c = session_component(s);
	struct email_user *u = session_data(s);
	if (u != NULL) {
		/* Already connected or connecting (a repeated login). */
		if (u->reported)
			session_login_result(s, 1, NULL);
		return;
	}
	struct email_account a;
	char err[256];
	if (account_resolve(c, session_get, s, &a, err, sizeof(err)) != 0) {
		session_login_result(s, 0, err);
		return;
	}
	u = xcalloc(1, sizeof(*u));
	u->s = s;
	u->key = xstrdup(session_jid(s));
	u->c = c;
	u->acct = email_account_copy(&a);
	account_clear(&a);
	u->timer = evtimer_new(cw->base, timer_cb, u);
	u->idle_ev = event_new(cw->base, -1, EV_READ, idle_cb, u);
	if (u->timer == NULL || u->idle_ev == NULL)
		log_fatal("email: cannot create a timer");
	session_set_data(s, u);
	submit_job(u, JOB_CONNECT, 0);
}

static void
email_logout(struct session *s, const char *reason)
{
	struct email_user *u = session_data(s);
	(void)reason;
	if (u == NULL)
		return;
	session_set_data(s, NULL);
	evtimer_del(u->timer);
	if (u->busy) {
		u->closing = 1;
		u->s = NULL;
		event_del(u->idle_ev);
		return;
	}
	drop_connection(u);
	user_free(u);
}

/* ---- the outbox ---- */

struct outbox_item {
	struct outbox_item *next;
	char *jid, *key;
	unsigned attempts;
	int busy;
	struct event *timer;
	struct email_comp *ec;
};

struct email_comp {
	struct component *c;
	struct outbox_item *items;
	struct event *resume;
	time_t expired;         /* when context rows were last expired */
	/* Registration checks started, by JID and by mail domain. */
	struct ratelimit *checks_jid, *checks_domain;
};

#define CHECK_WINDOW 600        /* seconds of the registration limits */

/* Correspondent and thread rows not written for context_days go, at
 * most once an hour. */
static void
context_expire(struct component *c)
{
	struct email_comp *ec = c->backend_data;
	time_t now = time(NULL);
	if (ec == NULL || now - ec->expired < 3600)
		return;
	ec->expired = now;
	time_t before = now - (time_t)config_int(c->section, "context_days") *
	    86400;
	int a = store_state_expire(cw->store, c->domain, "corr/", before);
	int b = store_state_expire(cw->store, c->domain, "thread/", before);
	if (a > 0 || b > 0)
		log_info("email: %s: %d correspondent and %d thread rows "
		    "expired", c->domain, a > 0 ? a : 0, b > 0 ? b : 0);
}

/*
 * May jid start a registration check for email now?  A check connects to
 * servers the user names and may hold a worker until its deadline, so
 * one JID, and all JIDs together for one mail domain, get a few per
 * window; domains the operator configured ([mail-domain]) are trusted
 * servers and only the per-JID limit applies.  0 with err (naming the
 * limit) when not.
 */
static int
check_allowed(struct component *c, const char *jid, const char *email,
    char *err, size_t errlen)
{
	struct email_comp *ec = c->backend_data;
	if (ec == NULL)
		return 1;
	time_t now = time(NULL);
	int retry = 0;
	unsigned per_jid = (unsigned)config_int(c->section,
	    "register_checks_per_jid");
	unsigned per_domain = (unsigned)config_int(c->section,
	    "register_checks_per_domain");
	const char *at = strrchr(email, '@');
	const char *domain = at != NULL ? at + 1 : email;
	int preset = config_section_find(cw->config, "mail-domain",
	    domain) != NULL;
	/* The domain is looked at first, so a refusal there does not use
	 * up the user's own allowance. */
	if (!preset && per_domain > 0 && ratelimit_take(ec->checks_domain,
	    domain, per_domain, CHECK_WINDOW, now, &retry) == 0) {
		snprintf(err, errlen, "too many registration attempts for "
		    "addresses at %s (at most %u per %d minutes); try again "
		    "in %d s", domain, per_domain, CHECK_WINDOW / 60, retry);
		log_warn("email: %s: %s: registration check refused: the "
		    "limit for %s is reached", c->domain, jid, domain);
		return 0;
	}
	if (per_jid > 0 && ratelimit_take(ec->checks_jid, jid, per_jid,
	    CHECK_WINDOW, now, &retry) == 0) {
		snprintf(err, errlen, "too many registration attempts from "
		    "this account (at most %u per %d minutes); try again in "
		    "%d s", per_jid, CHECK_WINDOW / 60, retry);
		log_warn("email: %s: %s: registration check refused: the "
		    "per-JID limit is reached", c->domain, jid);
		return 0;
	}
	return 1;
}

struct send_job {
	char *domain, *jid, *key;
	struct email_account *acct;
	char *rcpt, *mail;
	enum email_smtp_result res;
	char err[512];
};

static void outbox_try(struct outbox_item *it);

/* ---- the copy in Sent ---- */

#define SENT_WARNED_KEY "sent/warned"

struct sent_job {
	char *domain, *jid, *rcpt;
	struct email_account *acct;
	char *mail;
	int ok;
	char err[512];
};

static void
sent_work(void *arg)
{
	struct sent_job *j = arg;
	enum email_fail why;
	struct email_imap *im = email_imap_open(j->acct, &why, j->err,
	    sizeof(j->err));
	if (im == NULL)
		return;
	j->ok = email_imap_append_sent(im, j->mail, strlen(j->mail), j->err,
	    sizeof(j->err)) == 0;
	email_imap_close(im);
}

/* A copy that could not be kept: the mail went all the same; the user
 * hears of it once (a missing or read-only Sent stays so), the
 * operator every time. */
static void
sent_done(void *arg)
{
	struct sent_job *j = arg;
	struct component *c = component_by_domain(j->domain);
	if (j->ok || c == NULL) {
		if (j->ok)
			log_debug("email: %s: %s: copy in Sent kept", j->domain,
			    j->jid);
		goto out;
	}
	log_info("email: %s: %s: no copy in Sent of the mail to %s: %s",
	    j->domain, j->jid, j->rcpt, j->err);
	struct session *s = session_find_registered(c, j->jid);
	char *raw = NULL;
	if (s == NULL || store_state_get(cw->store, c->domain, j->jid,
	    SENT_WARNED_KEY, &raw, NULL) != 0) {
		free(raw);
		goto out;
	}
	char *body = xasprintf("Your mail to %s was sent, but no copy could "
	    "be kept in your Sent folder (%s). Create a Sent folder, or turn "
	    "off \"Keep a copy of my replies in Sent\" in the gateway's "
	    "settings. (Said once.)", j->rcpt, j->err);
	struct legacy_message lm = { .body = body };
	if (session_deliver(s, j->acct->email, &lm) == 0)
		store_state_set(cw->store, c->domain, j->jid, SENT_WARNED_KEY,
		    "1", 1);
	free(body);
out:
	email_account_free(j->acct);
	free(j->domain);
	free(j->jid);
	free(j->rcpt);
	OPENSSL_cleanse(j->mail, strlen(j->mail));
	free(j->mail);
	free(j);
}

static void
sent_copy_submit(struct component *c, const char *jid,
    const struct email_account *a, const char *rcpt, const char *mail)
{
	struct sent_job *j = xcalloc(1, sizeof(*j));
	j->domain = xstrdup(c->domain);
	j->jid = xstrdup(jid);
	j->rcpt = xstrdup(rcpt);
	j->acct = email_account_copy(a);
	j->mail = xstrdup(mail);
	worker_submit(cw->workers, sent_work, sent_done, j);
}

static struct outbox_item *
outbox_find(struct email_comp *ec, const char *jid, const char *key)
{
	for (struct outbox_item *it = ec->items; it; it = it->next)
		if (strcmp(it->jid, jid) == 0 && strcmp(it->key, key) == 0)
			return it;
	return NULL;
}

static void
outbox_remove(struct email_comp *ec, struct outbox_item *it)
{
	struct outbox_item **pp = &ec->items;
	while (*pp != it)
		pp = &(*pp)->next;
	*pp = it->next;
	metrics_outbox(ec->c->domain, "email", -1);
	event_free(it->timer);
	free(it->jid);
	free(it->key);
	free(it);
}

static void
outbox_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	outbox_try(arg);
}

static void
outbox_add(struct email_comp *ec, const char *jid, const char *key)
{
	if (outbox_find(ec, jid, key) != NULL)
		return;
	struct outbox_item *it = xcalloc(1, sizeof(*it));
	it->ec = ec;
	it->jid = xstrdup(jid);
	it->key = xstrdup(key);
	it->timer = evtimer_new(cw->base, outbox_retry_cb, it);
	if (it->timer == NULL)
		log_fatal("email: cannot create a timer");
	it->next = ec->items;
	ec->items = it;
	metrics_outbox(ec->c->domain, "email", 1);
	outbox_try(it);
}

/* The stored entry: "rcpt\nid\ncreated\n" then the mail. */
struct out_entry {
	char *raw;
	char *rcpt, *id, *mail;
	time_t created;
};

static int
out_parse(char *raw, struct out_entry *e)
{
	char *f[4];
	e->raw = raw;
	if (split_lines(raw, f, 4) != 4)
		return -1;
	e->rcpt = f[0];
	e->id = f[1];
	e->created = (time_t)strtoll(f[2], NULL, 10);
	e->mail = f[3];
	return 0;
}

static void
send_done(void *arg, enum email_smtp_result res, enum email_fail why,
    const char *err)
{
	struct send_job *j = arg;
	(void)why;
	j->res = res;
	snprintf(j->err, sizeof(j->err), "%s", err);
	struct component *c = component_by_domain(j->domain);
	struct email_comp *ec = c ? c->backend_data : NULL;
	struct outbox_item *it = ec ? outbox_find(ec, j->jid, j->key) : NULL;
	if (it == NULL)
		goto out;
	it->busy = 0;
	char *raw = NULL;
	struct out_entry e;
	if (store_state_get(cw->store, c->domain, j->jid, j->key, &raw,
	    NULL) != 1 || out_parse(raw, &e) != 0) {
		/* Gone (the user unregistered): nothing to report. */
		free(raw);
		outbox_remove(ec, it);
		goto out;
	}
	struct session *s = session_find_registered(c, j->jid);
	time_t give_up = (time_t)config_int(c->section, "smtp_give_up");
	if (j->res == EMAIL_SMTP_TEMP && time(NULL) - e.created < give_up) {
		unsigned d = (unsigned)config_int(c->section, "smtp_retry");
		for (unsigned i = 0; i < it->attempts && d < 900; i++)
			d *= 2;
		if (d > 900)
			d = 900;
		it->attempts++;
		log_info("email: %s: %s: sending to %s failed (%s); again in "
		    "%u s", c->domain, j->jid, e.rcpt, j->err, d);
		struct timeval tv = { .tv_sec = d };
		evtimer_add(it->timer, &tv);
		free(raw);
		goto out;
	}
	if (j->res == EMAIL_SMTP_OK) {
		log_info("email: %s: %s: mail to %s accepted", c->domain,
		    j->jid, e.rcpt);
		if (s != NULL && *e.id != '\0')
			session_message_delivered(s, e.rcpt, e.id);
		if (j->acct->sent_copy)
			sent_copy_submit(c, j->jid, j->acct, e.rcpt, e.mail);
	} else {
		log_info("email: %s: %s: mail to %s failed: %s", c->domain,
		    j->jid, e.rcpt, j->err);
		char *text = xasprintf("the mail server refused the mail: %s",
		    j->err);
		if (s != NULL)
			session_message_failed(s, e.rcpt, *e.id ? e.id : NULL,
			    j->res == EMAIL_SMTP_PERM ? "not-acceptable" :
			    "remote-server-timeout", text);
		free(text);
	}
	store_state_remove(cw->store, c->domain, j->jid, j->key);
	free(raw);
	outbox_remove(ec, it);
out:
	email_account_free(j->acct);
	free(j->domain);
	free(j->jid);
	free(j->key);
	free(j->rcpt);
	free(j->mail);
	free(j);
}

static void
outbox_try(struct outbox_item *it)
{
	struct email_comp *ec = it->ec;
	struct component *c = ec->c;
	if (it->busy)
		return;
	char *raw = NULL;
	struct out_entry e;
	if (store_state_get(cw->store, c->domain, it->jid, it->key, &raw,
	    NULL) != 1 || out_parse(raw, &e) != 0) {
		free(raw);
		outbox_remove(ec, it);
		return;
	}
	struct session *s = session_find_registered(c, it->jid);
	struct email_account a;
	char err[256];
	if (s == NULL || account_resolve(c, session_get, s, &a, err,
	    sizeof(err)) != 0) {
		log_warn("email: %s: %s: the outbox cannot be sent: %s",
		    c->domain, it->jid, s ? err : "not registered");
		free(raw);
		outbox_remove(ec, it);
		return;
	}
	struct send_job *j = xcalloc(1, sizeof(*j));
	j->domain = xstrdup(c->domain);
	j->jid = xstrdup(it->jid);
	j->key = xstrdup(it->key);
	j->acct = email_account_copy(&a);
	account_clear(&a);
	j->rcpt = xstrdup(e.rcpt);
	j->mail = xstrdup(e.mail);
	free(raw);
	it->busy = 1;
	email_smtp_start(j->acct, j->rcpt, j->mail, send_done, j);
}

static int
resume_one(void *arg, const char *jid, const char *key, const void *value,
    size_t len)
{
	(void)value;
	(void)len;
	outbox_add(arg, jid, key);
	return 0;
}

static void
resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct email_comp *ec = arg;
	(void)fd;
	(void)what;
	store_state_foreach(cw->store, ec->c->domain, NULL, "out/",
	    resume_one, ec);
}

/* ---- from XMPP ---- */

static int
email_send_message(struct session *s, const char *legacy,
    const struct outgoing_message *m, struct backend_error *err)
{
	struct component *c = session_component(s);
	struct email_comp *ec = c->backend_data;
	if (!email_mime_addr_valid(legacy)) {
		err->condition = "jid-malformed";
		snprintf(err->text, sizeof(err->text), "not an email address");
		return -1;
	}
	/* A user's mails waiting to be sent are bounded (a store row each,
	 * piling up while their SMTP server is away). */
	unsigned long cap = (unsigned long)config_int(c->section,
	    "outbox_max"), mine = 0;
	for (struct outbox_item *it = ec->items; it != NULL; it = it->next)
		mine += strcmp(it->jid, session_jid(s)) == 0;
	if (mine >= cap) {
		err->condition = "resource-constraint";
		snprintf(err->text, sizeof(err->text), "%lu of your mails are "
		    "still waiting to be sent (the limit is %lu); nothing was "
		    "sent, try again once they are out", mine, cap);
		log_warn("email: %s: %s: outbox full (%lu mails)", c->domain,
		    session_jid(s), mine);
		return -1;
	}
	struct email_account a;
	if (account_resolve(c, session_get, s, &a, err->text,
	    sizeof(err->text)) != 0) {
		err->condition = "not-acceptable";
		return -1;
	}
	/* What is being answered: the thread's newest mail, else the
	 * correspondent's last. */
	char *raw = NULL, *f[3] = { NULL, NULL, NULL };
	int found = 0;
	if (m->thread != NULL && *m->thread != '\0' && strlen(m->thread) < 200)
		found = context_get(s, "thread", m->thread, &raw, f) == 1;
	if (!found) {
		free(raw);
		raw = NULL;
		found = context_get(s, "corr", legacy, &raw, f) == 1;
	}
	const char *irt = found && *f[0] ? f[0] : NULL;
	const char *refs = found && *f[1] ? f[1] : NULL;
	char *subject = NULL;
	if (m->subject != NULL && *m->subject != '\0')
		subject = xstrdup(m->subject);
	else if (found && f[2] != NULL && *f[2] != '\0')
		subject = email_compose_reply_subject(f[2]);
	struct email_draft d = { .from_addr = a.email, .from_name = a.name,
	    .to_addr = legacy, .subject = subject, .body = m->body,
	    .in_reply_to = irt, .references = refs, .date = time(NULL) };
	char *mid = NULL;
	const char *why = NULL;
	char *mail = email_compose(&d, &mid, &why);
	if (mail == NULL) {
		err->condition = "not-acceptable";
		snprintf(err->text, sizeof(err->text), "%s", why);
		free(raw);
		free(subject);
		account_clear(&a);
		return -1;
	}
	/* Into the store before anything is acknowledged. */
	struct timeval tv;
	gettimeofday(&tv, NULL);
	static unsigned seq;
	char key[64];
	snprintf(key, sizeof(key), "out/%lld.%06ld.%u", (long long)tv.tv_sec,
	    (long)tv.tv_usec, seq++ % 1000);
	char *id = m->id ? email_mime_clean_utf8(m->id, strlen(m->id), 0) :
	    xstrdup("");
	char *value = xasprintf("%s\n%s\n%lld\n%s", legacy, id,
	    (long long)tv.tv_sec, mail);
	int r = store_state_set(cw->store, c->domain, session_jid(s), key,
	    value, strlen(value));
	free(value);
	free(id);
	free(mail);
	if (r != 0) {
		err->condition = "internal-server-error";
		snprintf(err->text, sizeof(err->text), "the mail could not be "
		    "stored for sending");
		free(mid);
		free(raw);
		free(subject);
		account_clear(&a);
		return -1;
	}
	/* Our mail is now the newest of its thread (and of the thread the
	 * client named, when that is another id). */
	char *all_refs = xasprintf("%s%s%s", refs ? refs : "",
	    refs && irt ? " " : "", irt ? irt : "");
	char *thread = email_mime_thread_id(mid, irt, refs);
	const char *subj_now = subject ? subject : "";
	if (thread != NULL)
		context_set(s, "thread", thread, mid, all_refs, subj_now);
	if (m->thread != NULL && *m->thread != '\0' &&
	    strlen(m->thread) < 200 && (thread == NULL ||
	    strcmp(thread, m->thread) != 0))
		context_set(s, "thread", m->thread, mid, all_refs, subj_now);
	free(thread);
	free(all_refs);
	free(mid);
	free(raw);
	free(subject);
	account_clear(&a);
	/* An exchange: the correspondent becomes a contact. */
	session_contact_known(s, legacy, NULL);
	outbox_add(ec, session_jid(s), key);
	return 0;
}

static int
email_valid_address(struct component *c, const char *legacy)
{
	(void)c;
	return email_mime_addr_valid(legacy);
}

/* "Alice <Alice@Example.NET>", "mailto:alice@example.net" -> the
 * address. */
static char *
email_normalize_address(struct component *c, const char *text)
{
	char *a = NULL, *n = NULL;
	(void)c;
	const char *t = text;
	while (*t == ' ')
		t++;
	if (strncasecmp(t, "mailto:", 7) == 0)
		t += 7;
	email_mime_parse_from(t, &a, &n);
	free(n);
	return a;
}

/* ---- lifecycle ---- */

static int
email_init(struct component *c)
{
	struct email_comp *ec = xcalloc(1, sizeof(*ec));
	email_smtp_init();
	ec->c = c;
	ec->checks_jid = ratelimit_new();
	ec->checks_domain = ratelimit_new();
	c->backend_data = ec;
	/* The outbox of the last run, once the component is settled. */
	ec->resume = evtimer_new(cw->base, resume_cb, ec);
	if (ec->resume == NULL)
		log_fatal("email: cannot create a timer");
	struct timeval tv = { .tv_sec = 1 };
	evtimer_add(ec->resume, &tv);
	return 0;
}

static void
email_shutdown(struct component *c)
{
	struct email_comp *ec = c->backend_data;
	if (ec == NULL)
		return;
	/* Unsent mail stays in the store for the next run; jobs still
	 * running find no item and leave it there. */
	while (ec->items != NULL)
		outbox_remove(ec, ec->items);
	event_free(ec->resume);
	ratelimit_free(ec->checks_jid);
	ratelimit_free(ec->checks_domain);
	free(ec);
	c->backend_data = NULL;
}

const struct backend email_backend = {
	.abi = BACKEND_ABI,
	.name = "email",
	.gateway_type = "smtp",
	.description = "Email",
	.options = email_options,
	.sections = email_sections,
	.nsections = sizeof(email_sections) / sizeof(email_sections[0]),
	.init = email_init,
	.shutdown = email_shutdown,
	.register_fields = email_fields,
	.nregister_fields = sizeof(email_fields) / sizeof(email_fields[0]),
	.register_instructions = "Your mailbox: the address and password are "
	    "enough when the gateway knows your provider; otherwise give the "
	    "IMAP and SMTP servers too.",
	.check_registration = email_check_registration,
	.valid_address = email_valid_address,
	.normalize_address = email_normalize_address,
	.login = email_login,
	.logout = email_logout,
	.delivery_reports = 1,
	.send_message = email_send_message,
	.chat_marker = email_chat_marker,
};
