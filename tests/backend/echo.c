/*
 * The echo network: a backend with no network behind it, for tests and
 * for trying causeway out.  Its contacts answer what you send them, go
 * online and offline on command, and its logins can fail on demand, so
 * every path of the transport core can be driven without a real network.
 *
 *   registration: username, password (secret), greeting (optional).
 *   password "wrong"      -> registration refused (not-authorized)
 *   username "taken"      -> registration refused (conflict)
 *   username "faillogin"  -> registration accepted, every login fails
 *   after login           -> the contact "echo" is offered to the roster
 *                            and comes online
 *   a message to X        -> X answers "<greeting><your text>"
 *   "/offline", "/online", "/away TEXT"  -> X's presence changes
 *   "/fail"               -> the message is refused at once
 *   "/drop"               -> accepted, then reported as undeliverable
 *   "/disconnect"         -> the echo network drops the session
 *   "/later TEXT"         -> X answers TEXT two seconds later
 *
 * Every answer comes from a zero-delay timer, as a real network's would
 * come later from the event loop, never from inside the call.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "backend.h"
#include "causeway.h"
#include "component.h"
#include "form.h"
#include "log.h"
#include "register.h"
#include "session.h"
#include "xmalloc.h"

enum echo_kind {
	ECHO_REGISTER,
	ECHO_LOGIN,
	ECHO_REPLY,
	ECHO_DROP,
	ECHO_DISCONNECT,
};

/* One deferred answer. */
struct echo_job {
	enum echo_kind kind;
	struct event *ev;
	struct register_request *req;
	struct session *s;
	char *legacy, *id, *text;
	int ok;
	struct echo_job *next;     /* the session's pending jobs */
};

/* Per session: jobs not yet run, cancelled at logout. */
struct echo_session {
	struct echo_job *jobs;
};

static const struct form_field_spec echo_fields[] = {
	{ .var = "username", .type = FIELD_TEXT_SINGLE, .label = "Username",
	  .required = 1, .max_len = 64 },
	{ .var = "password", .type = FIELD_TEXT_PRIVATE, .label = "Password",
	  .required = 1, .max_len = 128, .secret = 1 },
	{ .var = "greeting", .type = FIELD_TEXT_SINGLE,
	  .label = "What echo contacts say before your text",
	  .max_len = 64, .def = "echo: " },
};

static void run_job(evutil_socket_t fd, short what, void *arg);

static struct echo_job *
job_new_delayed(enum echo_kind kind, struct session *s, int seconds)
{
	struct echo_job *j = xcalloc(1, sizeof(*j));
	j->kind = kind;
	j->s = s;
	j->ev = evtimer_new(cw->base, run_job, j);
	if (j->ev == NULL)
		log_fatal("echo: cannot create a timer");
	if (s != NULL) {
		struct echo_session *es = session_data(s);
		j->next = es->jobs;
		es->jobs = j;
	}
	struct timeval tv = { seconds, 0 };
	evtimer_add(j->ev, &tv);
	return j;
}

static struct echo_job *
job_new(enum echo_kind kind, struct session *s)
{
	return job_new_delayed(kind, s, 0);
}

static void
job_free(struct echo_job *j)
{
	if (j->s != NULL) {
		struct echo_session *es = session_data(j->s);
		struct echo_job **pp = &es->jobs;
		while (*pp != NULL && *pp != j)
			pp = &(*pp)->next;
		if (*pp == j)
			*pp = j->next;
	}
	event_free(j->ev);
	free(j->legacy);
	free(j->id);
	free(j->text);
	free(j);
}

static void
run_job(evutil_socket_t fd, short what, void *arg)
{
	struct echo_job *j = arg;
	switch (j->kind) {
	case ECHO_REGISTER:
		if (j->ok)
			register_request_done(j->req, NULL, NULL);
		else
			register_request_done(j->req, j->id, j->text);
		break;
	case ECHO_LOGIN:
		session_login_result(j->s, j->ok, j->text);
		if (j->ok) {
			session_contact_known(j->s, "echo", "Echo");
			session_contact_presence(j->s, "echo", "",
			    "ready to echo");
		}
		break;
	case ECHO_REPLY:
		session_deliver_message(j->s, j->legacy, j->text);
		break;
	case ECHO_DROP:
		session_message_failed(j->s, j->legacy, j->id,
		    "recipient-unavailable", "the echo network could not "
		    "deliver the message");
		break;
	case ECHO_DISCONNECT:
		session_disconnected(j->s, "the echo network closed the "
		    "connection");
		break;
	}
	job_free(j);
}

static void
echo_check_registration(struct component *c, const char *jid,
    const struct form *values, struct register_request *req)
{
	struct echo_job *j = job_new(ECHO_REGISTER, NULL);
	j->req = req;
	j->ok = 1;
	if (strcmp(form_value(values, "password"), "wrong") == 0) {
		j->ok = 0;
		j->id = xstrdup("not-authorized");
		j->text = xstrdup("the echo network refused the password");
	} else if (strcmp(form_value(values, "username"), "taken") == 0) {
		j->ok = 0;
		j->id = xstrdup("conflict");
		j->text = xstrdup("that echo username belongs to someone "
		    "else");
	}
}

/* Echo addresses: 1-64 of letters, digits and . _ - + @ */
static int
echo_valid_address(struct component *c, const char *legacy)
{
	size_t n = strlen(legacy);
	if (n == 0 || n > 64)
		return 0;
	return strspn(legacy, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-+@") == n;
}

static char *
echo_normalize_address(struct component *c, const char *text)
{
	/* Echo names are case-insensitive; spaces around are typos. */
	size_t start = strspn(text, " \t");
	char *s = xstrdup(text + start);
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
	for (char *p = s; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return s;
}

static void
echo_login(struct session *s)
{
	if (session_data(s) == NULL)
		session_set_data(s, xcalloc(1, sizeof(struct echo_session)));
	struct echo_job *j = job_new(ECHO_LOGIN, s);
	const char *user = session_field(s, "username");
	j->ok = user != NULL && strcmp(user, "faillogin") != 0 &&
	    session_field(s, "password") != NULL;
	if (!j->ok)
		j->text = xstrdup("the echo network refused the login");
}

static void
echo_logout(struct session *s, const char *reason)
{
	struct echo_session *es = session_data(s);
	if (es == NULL)
		return;
	while (es->jobs != NULL) {
		if (es->jobs->kind == ECHO_DROP)
			log_info("echo: %s: a message in flight is lost at "
			    "logout", session_jid(s));
		job_free(es->jobs);
	}
	free(es);
	session_set_data(s, NULL);
}

static int
echo_send_message(struct session *s, const char *legacy, const char *id,
    const char *body, struct backend_error *err)
{
	if (strcmp(body, "/fail") == 0) {
		err->condition = "service-unavailable";
		snprintf(err->text, sizeof(err->text), "the echo network "
		    "refused the message to %s", legacy);
		return -1;
	}
	if (strcmp(body, "/offline") == 0) {
		session_contact_presence(s, legacy, NULL, NULL);
		return 0;
	}
	if (strcmp(body, "/online") == 0) {
		session_contact_presence(s, legacy, "", NULL);
		return 0;
	}
	if (strncmp(body, "/away", 5) == 0) {
		session_contact_presence(s, legacy, "away",
		    body[5] == ' ' ? body + 6 : NULL);
		return 0;
	}
	if (strcmp(body, "/disconnect") == 0) {
		job_new(ECHO_DISCONNECT, s);
		return 0;
	}
	if (strcmp(body, "/drop") == 0) {
		struct echo_job *j = job_new(ECHO_DROP, s);
		j->legacy = xstrdup(legacy);
		j->id = id ? xstrdup(id) : NULL;
		return 0;
	}
	if (strncmp(body, "/later ", 7) == 0) {
		struct echo_job *j = job_new_delayed(ECHO_REPLY, s, 2);
		j->legacy = xstrdup(legacy);
		j->text = xstrdup(body + 7);
		return 0;
	}
	struct echo_job *j = job_new(ECHO_REPLY, s);
	const char *greeting = session_field(s, "greeting");
	j->legacy = xstrdup(legacy);
	j->text = xasprintf("%s%s", greeting ? greeting : "echo: ", body);
	return 0;
}

static void
echo_add_contact(struct session *s, const char *legacy)
{
	/* Every echo contact exists and is glad to be added. */
	session_contact_presence(s, legacy, "", NULL);
}

const struct backend echo_backend = {
	.abi = BACKEND_ABI,
	.name = "echo",
	.gateway_type = "echo",
	.description = "Echo",
	.register_fields = echo_fields,
	.nregister_fields = sizeof(echo_fields) / sizeof(echo_fields[0]),
	.register_instructions = "Choose any username and password for the "
	    "echo test network.",
	.check_registration = echo_check_registration,
	.valid_address = echo_valid_address,
	.normalize_address = echo_normalize_address,
	.login = echo_login,
	.logout = echo_logout,
	.send_message = echo_send_message,
	.add_contact = echo_add_contact,
};
