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
 *   disco#items on X@component   -> the rooms #echo, #test, #lobby
 *   registering at X@component (a registration scope) with a greeting
 *                         -> X answers with that greeting instead
 *
 * Rooms: a room is '#' and 1-63 more of [a-z0-9#_-] (any case).  Every
 * room holds "echo" (moderator) and "bot" (participant) and says
 * "Welcome to ROOM" as its subject.
 *   join as "taken"       -> joined as "taken_" (status 210)
 *   join as "echo"/"bot"  -> refused (conflict)
 *   join "#locked"        -> refused (not-authorized) unless the
 *                            password is "secret"
 *   a message to the room -> reflected, then "echo" says "echo: TEXT"
 *   "/kickme"             -> the user is kicked ("you asked for it")
 *   "/join NICK", "/part NICK" -> NICK comes in, goes out
 *   "/crowd N"            -> N more occupants (crowd1..crowdN) come in
 *   "/close"              -> the network closes the room (332)
 *   a private message     -> that occupant answers "echo: TEXT"
 *   nick "echo" or "bot"  -> nick change refused (conflict)
 *   a kick                -> the occupant leaves (307)
 *
 * Every answer comes from a zero-delay timer, as a real network's would
 * come later from the event loop, never from inside the call.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>

#include "backend.h"
#include "causeway.h"
#include "component.h"
#include "form.h"
#include "log.h"
#include "register.h"
#include "room.h"
#include "roomlist.h"
#include "session.h"
#include "store.h"
#include "xmalloc.h"

enum echo_kind {
	ECHO_REGISTER,
	ECHO_LOGIN,
	ECHO_REPLY,
	ECHO_RICH,            /* session_deliver with every field */
	ECHO_DROP,
	ECHO_DISCONNECT,
	ECHO_ROOM_JOIN,
	ECHO_ROOM_SENT,       /* reflect, then the command or the echo */
	ECHO_ROOM_SAY,
	ECHO_ROOM_KICKME,
	ECHO_ROOM_ENTER,
	ECHO_ROOM_PART,
	ECHO_ROOM_CROWD,
	ECHO_ROOM_CLOSE,
	ECHO_ROOM_NICK,
	ECHO_ROOM_PRIVATE,
	ECHO_ROOM_KICK,
	ECHO_ROOM_SUBJECT,
	ECHO_ROOM_RANK,       /* a role or an affiliation given (text) */
	ECHO_LIST,
};

/* One deferred answer. */
struct echo_job {
	enum echo_kind kind;
	struct event *ev;
	struct register_request *req;
	struct room_list *list;
	struct session *s;
	char *legacy, *id, *text;  /* rooms: legacy is the room */
	char *nick;
	int ok;
	struct echo_job *next;     /* the session's pending jobs */
};

/* A room the user is in: its name and the user's nick there. */
struct echo_room {
	char *name, *nick;
	struct echo_room *next;
};

/* Per session: jobs not yet run, cancelled at logout, and rooms. */
struct echo_session {
	struct echo_job *jobs;
	struct echo_room *rooms;
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
static void echo_logout(struct session *s, const char *reason);

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
	free(j->nick);
	free(j);
}

static struct echo_room *
room_get(struct session *s, const char *name)
{
	struct echo_session *es = session_data(s);
	for (struct echo_room *r = es ? es->rooms : NULL; r; r = r->next)
		if (strcasecmp(r->name, name) == 0)
			return r;
	return NULL;
}

static void
room_drop(struct session *s, const char *name)
{
	struct echo_session *es = session_data(s);
	if (es == NULL)
		return;
	for (struct echo_room **pp = &es->rooms; *pp; pp = &(*pp)->next) {
		if (strcasecmp((*pp)->name, name) != 0)
			continue;
		struct echo_room *r = *pp;
		*pp = r->next;
		free(r->name);
		free(r->nick);
		free(r);
		return;
	}
}

/* A room job for later, as a network's answer would come. */
static struct echo_job *
room_job(enum echo_kind kind, struct session *s, const char *room,
    const char *nick, const char *text)
{
	struct echo_job *j = job_new(kind, s);
	j->legacy = xstrdup(room);
	j->nick = nick ? xstrdup(nick) : NULL;
	j->text = text ? xstrdup(text) : NULL;
	return j;
}

static void
run_room_join(struct echo_job *j)
{
	struct echo_session *es = session_data(j->s);
	if (strcasecmp(j->legacy, "#locked") == 0 &&
	    (j->text == NULL || strcmp(j->text, "secret") != 0)) {
		room_join_failed(j->s, j->legacy, "not-authorized",
		    "#locked needs the right password");
		return;
	}
	if (strcmp(j->nick, "echo") == 0 || strcmp(j->nick, "bot") == 0) {
		room_join_failed(j->s, j->legacy, "conflict",
		    "that nickname is in use in the room");
		return;
	}
	const char *nick = strcmp(j->nick, "taken") == 0 ? "taken_" : j->nick;
	struct echo_room *r = xcalloc(1, sizeof(*r));
	r->name = xstrdup(j->legacy);
	r->nick = xstrdup(nick);
	r->next = es->rooms;
	es->rooms = r;
	room_occupant(j->s, j->legacy, "echo", ROLE_MODERATOR, AFFIL_NONE);
	room_occupant(j->s, j->legacy, "bot", ROLE_PARTICIPANT, AFFIL_NONE);
	room_occupant(j->s, j->legacy, nick, ROLE_PARTICIPANT, AFFIL_NONE);
	room_joined(j->s, j->legacy, nick);
	char *subject = xasprintf("Welcome to %s", j->legacy);
	room_subject(j->s, j->legacy, "echo", subject);
	free(subject);
}

/* After the user's message was reflected: a command, or the echo, one
 * tick later. */
static void
run_room_sent(struct echo_job *j)
{
	room_message_sent(j->s, j->legacy, j->id, j->text);
	const char *body = j->text;
	if (strcmp(body, "/kickme") == 0) {
		room_job(ECHO_ROOM_KICKME, j->s, j->legacy, NULL, NULL);
	} else if (strncmp(body, "/join ", 6) == 0) {
		room_job(ECHO_ROOM_ENTER, j->s, j->legacy, body + 6, NULL);
	} else if (strncmp(body, "/part ", 6) == 0) {
		room_job(ECHO_ROOM_PART, j->s, j->legacy, body + 6, NULL);
	} else if (strncmp(body, "/crowd ", 7) == 0) {
		room_job(ECHO_ROOM_CROWD, j->s, j->legacy, NULL, body + 7);
	} else if (strcmp(body, "/close") == 0) {
		room_job(ECHO_ROOM_CLOSE, j->s, j->legacy, NULL, NULL);
	} else {
		char *say = xasprintf("echo: %s", body);
		room_job(ECHO_ROOM_SAY, j->s, j->legacy, "echo", say);
		free(say);
	}
}

static void
run_room(struct echo_job *j)
{
	struct echo_room *r = room_get(j->s, j->legacy);
	switch (j->kind) {
	case ECHO_ROOM_SAY:
		room_message(j->s, j->legacy, j->nick, j->text);
		break;
	case ECHO_ROOM_KICKME:
		if (r != NULL) {
			char *nick = xstrdup(r->nick);
			room_drop(j->s, j->legacy);
			room_occupant_left(j->s, j->legacy, nick, LEAVE_KICK,
			    "you asked for it");
			free(nick);
		}
		break;
	case ECHO_ROOM_ENTER:
		room_occupant(j->s, j->legacy, j->nick, ROLE_PARTICIPANT,
		    AFFIL_NONE);
		break;
	case ECHO_ROOM_PART:
		room_occupant_left(j->s, j->legacy, j->nick, LEAVE_PART,
		    "bye");
		break;
	case ECHO_ROOM_CROWD: {
		long n = strtol(j->text, NULL, 10);
		for (long i = 1; i <= n && i <= 10000; i++) {
			char nick[32];
			snprintf(nick, sizeof(nick), "crowd%ld", i);
			room_occupant(j->s, j->legacy, nick, ROLE_PARTICIPANT,
			    AFFIL_NONE);
		}
		break;
	}
	case ECHO_ROOM_CLOSE:
		room_drop(j->s, j->legacy);
		room_closed(j->s, j->legacy, "the echo network closed the "
		    "room");
		break;
	case ECHO_ROOM_NICK:
		if (r != NULL) {
			char *old = r->nick;
			r->nick = xstrdup(j->nick);
			room_nick_changed(j->s, j->legacy, old, j->nick);
			free(old);
		}
		break;
	case ECHO_ROOM_PRIVATE:
		room_private_message(j->s, j->legacy, j->nick, j->text);
		break;
	case ECHO_ROOM_KICK:
		if (r != NULL && strcmp(r->nick, j->nick) == 0)
			room_drop(j->s, j->legacy);
		room_occupant_left(j->s, j->legacy, j->nick, LEAVE_KICK,
		    j->text);
		break;
	case ECHO_ROOM_SUBJECT:
		if (r != NULL)
			room_subject(j->s, j->legacy, r->nick, j->text);
		break;
	case ECHO_ROOM_RANK:
		/* As a network would: a ban puts the nick out (301), the
		 * rest changes what the occupant is. */
		if (strcmp(j->text, "outcast") == 0)
			room_occupant_left(j->s, j->legacy, j->nick, LEAVE_BAN,
			    "banned from the echo room");
		else
			room_occupant(j->s, j->legacy, j->nick,
			    strcmp(j->text, "visitor") == 0 ? ROLE_VISITOR :
			    strcmp(j->text, "moderator") == 0 ||
			    strcmp(j->text, "admin") == 0 ? ROLE_MODERATOR :
			    ROLE_PARTICIPANT,
			    strcmp(j->text, "admin") == 0 ? AFFIL_ADMIN :
			    strcmp(j->text, "member") == 0 ? AFFIL_MEMBER :
			    AFFIL_NONE);
		break;
	default:
		break;
	}
}

static void
run_job(evutil_socket_t fd, short what, void *arg)
{
	struct echo_job *j = arg;
	switch (j->kind) {
	case ECHO_LIST:
		room_list_add(j->list, "#echo", "Echo", 2);
		room_list_add(j->list, "#test", NULL, 2);
		room_list_add(j->list, "#lobby", "The lobby", -1);
		room_list_done(j->list, NULL, NULL);
		break;
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
		/* The echo network "delivered" the message by answering. */
		session_message_delivered(j->s, j->legacy, j->id);
		session_deliver_message(j->s, j->legacy, j->text);
		break;
	case ECHO_RICH: {
		/* What mail and SMS carry: subject, thread, nick, an old
		 * date (an hour ago). */
		struct legacy_message lm = {
			.body = j->text,
			.subject = "echo subject",
			.thread = j->nick,
			.nick = "Echo Person",
			.stamp = time(NULL) - 3600,
		};
		session_message_delivered(j->s, j->legacy, j->id);
		session_deliver(j->s, j->legacy, &lm);
		break;
	}
	case ECHO_DROP:
		session_message_failed(j->s, j->legacy, j->id,
		    "recipient-unavailable", "the echo network could not "
		    "deliver the message");
		break;
	case ECHO_DISCONNECT:
		session_disconnected(j->s, "the echo network closed the "
		    "connection");
		break;
	case ECHO_ROOM_JOIN:
		run_room_join(j);
		break;
	case ECHO_ROOM_SENT:
		run_room_sent(j);
		break;
	default:
		run_room(j);
		break;
	}
	/* A failed login gets no logout(): the state goes now. */
	struct session *s = j->s;
	int failed_login = j->kind == ECHO_LOGIN && !j->ok;
	job_free(j);
	if (failed_login)
		echo_logout(s, "the login failed");
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

/* Every scope lists the same three rooms. */
static void
echo_list_rooms(struct session *s, const char *scope, struct room_list *l)
{
	struct echo_job *j = job_new(ECHO_LIST, s);
	j->list = l;
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
		if (es->jobs->kind == ECHO_LIST)
			room_list_done(es->jobs->list, "service-unavailable",
			    "the session ended");
		job_free(es->jobs);
	}
	while (es->rooms != NULL)
		room_drop(s, es->rooms->name);
	free(es);
	session_set_data(s, NULL);
}

static int
echo_send_message(struct session *s, const char *legacy,
    const struct outgoing_message *m, struct backend_error *err)
{
	const char *body = m->body, *id = m->id;
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
	if (strncmp(body, "/gwstatus", 9) == 0) {
		/* "/gwstatus xa some text", or "/gwstatus" to clear. */
		char show[16] = "";
		int skip = 0;
		if (sscanf(body + 9, " %15s %n", show, &skip) < 1)
			session_gateway_status(s, NULL, NULL);
		else
			session_gateway_status(s, show, skip > 0 ?
			    body + 9 + skip : NULL);
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
	if (strncmp(body, "/rich ", 6) == 0) {
		struct echo_job *j = job_new(ECHO_RICH, s);
		j->legacy = xstrdup(legacy);
		j->id = id ? xstrdup(id) : NULL;
		j->text = xstrdup(body + 6);
		j->nick = m->thread ? xstrdup(m->thread) : NULL;
		return 0;
	}
	struct echo_job *j = job_new(ECHO_REPLY, s);
	j->id = id ? xstrdup(id) : NULL;
	/* A greeting registered with this contact (a registration scope)
	 * wins over the account's. */
	const char *greeting = session_field_scoped(s, legacy, "greeting");
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

/* Rooms: '#' then 1-63 of [a-z0-9#_-], any case. */
static int
echo_is_room(struct component *c, const char *legacy)
{
	size_t n = strlen(legacy);
	if (n < 2 || n > 64 || legacy[0] != '#')
		return 0;
	return strspn(legacy, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789#_-") == n;
}

static void
echo_join_room(struct session *s, const char *room, const char *nick,
    const char *password)
{
	/* No nick: a persistent room rejoined after a restart.  The echo
	 * network keeps no nicks: the JID's local part, as before. */
	char *local = nick == NULL ? xstrndup(session_jid(s),
	    strcspn(session_jid(s), "@")) : NULL;
	room_job(ECHO_ROOM_JOIN, s, room, nick != NULL ? nick : local,
	    password);
	free(local);
}

/* Jobs for a room the user left are dropped with it, so a quick rejoin
 * never sees the old room's answers. */
static void
echo_leave_room(struct session *s, const char *room, const char *reason)
{
	struct echo_session *es = session_data(s);
	room_drop(s, room);
	if (es == NULL)
		return;
	struct echo_job *j = es->jobs, *next;
	for (; j != NULL; j = next) {
		next = j->next;
		if (j->kind >= ECHO_ROOM_JOIN && j->legacy != NULL &&
		    strcasecmp(j->legacy, room) == 0)
			job_free(j);
	}
}

/* The room the user is in, else -1 with err filled. */
static int
in_room(struct session *s, const char *room, struct backend_error *err)
{
	if (room_get(s, room) != NULL)
		return 0;
	err->condition = "not-acceptable";
	snprintf(err->text, sizeof(err->text), "you are not in %s on the "
	    "echo network", room);
	return -1;
}

static int
echo_send_groupchat(struct session *s, const char *room, const char *id,
    const char *body, struct backend_error *err)
{
	if (in_room(s, room, err) != 0)
		return -1;
	struct echo_job *j = room_job(ECHO_ROOM_SENT, s, room, NULL, body);
	j->id = id ? xstrdup(id) : NULL;
	return 0;
}

static int
echo_send_private(struct session *s, const char *room, const char *nick,
    const char *body, struct backend_error *err)
{
	if (in_room(s, room, err) != 0)
		return -1;
	char *say = xasprintf("echo: %s", body);
	room_job(ECHO_ROOM_PRIVATE, s, room, nick, say);
	free(say);
	return 0;
}

static int
echo_set_subject(struct session *s, const char *room, const char *subject,
    struct backend_error *err)
{
	if (in_room(s, room, err) != 0)
		return -1;
	room_job(ECHO_ROOM_SUBJECT, s, room, NULL, subject);
	return 0;
}

static int
echo_change_nick(struct session *s, const char *room, const char *nick,
    struct backend_error *err)
{
	if (in_room(s, room, err) != 0)
		return -1;
	if (strcmp(nick, "echo") == 0 || strcmp(nick, "bot") == 0) {
		err->condition = "conflict";
		snprintf(err->text, sizeof(err->text), "%s is in use in %s",
		    nick, room);
		return -1;
	}
	room_job(ECHO_ROOM_NICK, s, room, nick, NULL);
	return 0;
}

static int
echo_kick(struct session *s, const char *room, const char *nick,
    const char *reason, struct backend_error *err)
{
	if (in_room(s, room, err) != 0)
		return -1;
	room_job(ECHO_ROOM_KICK, s, room, nick, reason);
	return 0;
}

static int
echo_set_rank(struct session *s, const char *room, const char *nick,
    const char *rank, const char *reason, struct backend_error *err)
{
	if (in_room(s, room, err) != 0)
		return -1;
	if (strcmp(rank, "owner") == 0) {
		err->condition = "not-allowed";
		snprintf(err->text, sizeof(err->text), "the echo network has "
		    "no owners");
		return -1;
	}
	room_job(ECHO_ROOM_RANK, s, room, nick, rank);
	return 0;
}

/* A name for an address: "#room (echo)" for rooms. */
static int
echo_display_name(struct component *c, const char *legacy, char *buf,
    size_t len)
{
	if (legacy[0] != '#')
		return 0;
	snprintf(buf, len, "%s (echo)", legacy);
	return 1;
}

/* Commands of the backend's own: a user's note kept in the store, and
 * an admin-only count of the notes. */
static const struct form_field_spec note_fields[] = {
	{ .var = "note", .type = FIELD_TEXT_SINGLE, .label = "Note",
	  .required = 1, .max_len = 100 },
};

static int
echo_cmd_note(struct component *c, const char *user, const struct form *in,
    char **note)
{
	const char *text = form_value(in, "note");
	if (strcmp(text, "fail") == 0) {
		*note = xstrdup("The echo network refuses that note.");
		return -1;
	}
	if (store_state_set(cw->store, c->domain, user, "note", text,
	    strlen(text)) != 0)
		return -1;
	*note = xasprintf("Noted: %s", text);
	return 0;
}

static int
count_note(void *arg, const char *jid, const char *key, const void *value,
    size_t len)
{
	(*(int *)arg)++;
	return 0;
}

static int
echo_cmd_count(struct component *c, const char *user, const struct form *in,
    char **note)
{
	int n = 0;
	if (store_state_foreach(cw->store, c->domain, NULL, "note", count_note,
	    &n) != 0)
		return -1;
	*note = xasprintf("%d notes", n);
	return 0;
}

static const struct backend_command echo_commands[] = {
	{ .node = "echo-note", .name = "Leave a note", .fields = note_fields,
	  .nfields = 1, .run = echo_cmd_note },
	{ .node = "echo-count", .name = "Count the notes", .admin_only = 1,
	  .run = echo_cmd_count },
};

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
	/* Every contact is also a registration scope, so the tests can
	 * drive per-scope registration (IRC uses it per server). */
	.register_scope = echo_valid_address,
	.list_rooms = echo_list_rooms,
	.normalize_address = echo_normalize_address,
	.login = echo_login,
	.logout = echo_logout,
	.delivery_reports = 1,
	.commands = echo_commands,
	.ncommands = sizeof(echo_commands) / sizeof(echo_commands[0]),
	.send_message = echo_send_message,
	.add_contact = echo_add_contact,
	.is_room = echo_is_room,
	.join_room = echo_join_room,
	.leave_room = echo_leave_room,
	.send_groupchat = echo_send_groupchat,
	.send_private = echo_send_private,
	.set_subject = echo_set_subject,
	.change_nick = echo_change_nick,
	.kick = echo_kick,
	.set_role = echo_set_rank,
	.set_affiliation = echo_set_rank,
	.display_name = echo_display_name,
};
