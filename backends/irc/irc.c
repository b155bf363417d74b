/*
 * The IRC backend: channels as rooms, IRC users as contacts.
 *
 * A user's causeway session holds one IRC connection per IRC server,
 * opened on the first join or private message to that server and shared
 * by all the user's resources:
 *
 *   struct irc_user (the session's backend data)
 *     -> struct irc_server, one per server: its irc_conn, its channels
 *        -> struct irc_chan, one per channel joined or joining: who is
 *           in it (nicks with their prefixes), for QUIT and NICK, which
 *           IRC reports per server and rooms need per channel
 *
 * From XMPP to IRC: the backend operations at the end of this file.
 * From IRC to XMPP: on_message(), one dispatch table by command.
 *
 * Addresses (biboumi's, so bookmarks carry over): a room is
 * "#chan%irc.server", a person "nick%irc.server"; with fixed_server set,
 * "#chan" and "nick".  The core hands us the JID's unescaped local part.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "backend.h"
#include "causeway.h"
#include "component.h"
#include "config.h"
#include "form.h"
#include "irc_conn.h"
#include "irc_proto.h"
#include "log.h"
#include "room.h"
#include "session.h"
#include "xmalloc.h"

#define RETRY_MIN 2
#define RETRY_MAX 120

struct irc_member {
	char *nick;
	char *folded;
	char prefixes[8];      /* mode prefix characters, e.g. "@+" */
};

struct irc_chan {
	struct irc_chan *next;
	char *room;            /* the address the core knows the room by */
	char *name;            /* as sent to IRC */
	char *folded;
	char *key;
	int joined;            /* our JOIN came back */
	int announced;         /* room_joined() was called */
	struct irc_member *members;
	size_t nmembers;
};

struct irc_server {
	struct irc_server *next;
	struct irc_user *u;
	char *host;
	struct irc_conn *conn;
	struct irc_chan *chans;
	struct event *retry;
	unsigned backoff;
};

struct irc_user {
	struct session *s;
	struct irc_server *servers;
};

static const struct config_option irc_options[] = {
	{ .key = "fixed_server", .type = CONFIG_STRING, .def = "",
	  .help = "the only IRC server; rooms are then #chan@component" },
	{ .key = "allowed_servers", .type = CONFIG_LIST, .def = "",
	  .help = "IRC servers users may reach (empty: any)" },
	{ .key = NULL },
};

static const struct config_option irc_server_options[] = {
	{ .key = "port", .type = CONFIG_INT, .def = "6697", .min = 1,
	  .max = 65535 },
	{ .key = "tls", .type = CONFIG_BOOL, .def = "yes" },
	{ .key = "verify", .type = CONFIG_BOOL, .def = "yes" },
	{ .key = "fingerprint", .type = CONFIG_STRING, .def = "",
	  .help = "SHA-256 of the server certificate, to pin it" },
	{ .key = "password", .type = CONFIG_STRING, .def = "" },
	{ .key = "webirc_password", .type = CONFIG_STRING, .def = "" },
	{ .key = "encoding", .type = CONFIG_STRING, .def = "CP1252",
	  .help = "charset of text that is not UTF-8" },
	{ .key = "throttle_burst", .type = CONFIG_INT, .def = "5", .min = 1,
	  .max = 1000 },
	{ .key = "throttle_rate", .type = CONFIG_INT, .def = "500", .min = 0,
	  .max = 60000, .help = "milliseconds between lines after a burst" },
	{ .key = NULL },
};

static const struct config_section_type irc_sections[] = {
	{ .name = "irc-server", .has_arg = 1, .options = irc_server_options },
};

static const struct form_field_spec irc_fields[] = {
	{ .var = "nick", .type = FIELD_TEXT_SINGLE, .label = "Nick",
	  .desc = "Used where a room join does not say otherwise",
	  .max_len = 64 },
	{ .var = "realname", .type = FIELD_TEXT_SINGLE, .label = "Real name",
	  .max_len = 128 },
	{ .var = "sasl_user", .type = FIELD_TEXT_SINGLE,
	  .label = "Account (SASL)", .max_len = 128 },
	{ .var = "sasl_password", .type = FIELD_TEXT_PRIVATE,
	  .label = "Account password (SASL)", .max_len = 256, .secret = 1 },
	{ .var = "server_password", .type = FIELD_TEXT_PRIVATE,
	  .label = "Server password", .max_len = 256, .secret = 1 },
};

/* ---- small helpers ---- */

static const char *
fixed_server(struct component *c)
{
	const char *f = config_str(c->section, "fixed_server");
	return f != NULL && *f != '\0' ? f : NULL;
}

static int
parse_addr(struct component *c, const char *legacy, struct irc_addr *a)
{
	return irc_addr_parse(legacy, fixed_server(c), "#&", a);
}

static int
server_allowed(struct component *c, const char *host)
{
	size_t n;
	const char *const *allowed = config_list(c->section, "allowed_servers",
	    &n);
	if (n == 0)
		return 1;
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(allowed[i], host) == 0)
			return 1;
	return 0;
}

static enum irc_casemapping
casemap(const struct irc_server *srv)
{
	const struct irc_isupport *is = srv->conn ?
	    irc_conn_isupport(srv->conn) : NULL;
	return is ? is->casemapping : IRC_CASEMAP_RFC1459;
}

static char *
fold(const struct irc_server *srv, const char *name)
{
	char *f = xstrdup(name);
	irc_casefold(casemap(srv), f);
	return f;
}

static int
send_line(struct irc_server *srv, const char *command, const char *a,
    const char *b, const char *c3)
{
	const char *params[4] = { a, b, c3, NULL };
	if (srv->conn == NULL)
		return -1;
	return irc_conn_send(srv->conn, command, params);
}

/* A person's address on this server, as the core knows it. */
static char *
nick_address(struct irc_server *srv, const char *nick)
{
	struct component *c = session_component(srv->u->s);
	struct irc_addr a = { .kind = IRC_ADDR_NICK, .name = (char *)nick,
	    .server = srv->host };
	return irc_addr_local(&a, fixed_server(c));
}

/* IRC text (raw bytes) as UTF-8 without IRC formatting; caller frees. */
static char *
text_in(struct irc_server *srv, const char *raw)
{
	const struct config_section *sec = config_section_find(cw->config,
	    "irc-server", srv->host);
	char *utf8 = irc_to_utf8(raw, strlen(raw),
	    sec ? config_str(sec, "encoding") : "CP1252");
	char *styled = irc_format_to_styling(utf8);
	free(utf8);
	return styled;
}

/* ---- channels and members ---- */

static struct irc_chan *
chan_find(struct irc_server *srv, const char *name)
{
	char *f = fold(srv, name);
	struct irc_chan *ch;
	for (ch = srv->chans; ch != NULL; ch = ch->next)
		if (strcmp(ch->folded, f) == 0)
			break;
	free(f);
	return ch;
}

static void
member_clear(struct irc_member *m)
{
	free(m->nick);
	free(m->folded);
}

static void
chan_free(struct irc_chan *ch)
{
	for (size_t i = 0; i < ch->nmembers; i++)
		member_clear(&ch->members[i]);
	free(ch->members);
	free(ch->room);
	free(ch->name);
	free(ch->folded);
	free(ch->key);
	free(ch);
}

static void
chan_remove(struct irc_server *srv, struct irc_chan *ch)
{
	struct irc_chan **pp = &srv->chans;
	while (*pp != ch)
		pp = &(*pp)->next;
	*pp = ch->next;
	chan_free(ch);
}

static struct irc_member *
member_find(struct irc_server *srv, struct irc_chan *ch, const char *nick)
{
	char *f = fold(srv, nick);
	struct irc_member *m = NULL;
	for (size_t i = 0; i < ch->nmembers && m == NULL; i++)
		if (strcmp(ch->members[i].folded, f) == 0)
			m = &ch->members[i];
	free(f);
	return m;
}

static void
member_remove(struct irc_chan *ch, struct irc_member *m)
{
	member_clear(m);
	*m = ch->members[--ch->nmembers];
}

/* The XEP-0045 role and affiliation of IRC channel prefixes. */
static void
role_of(const char *prefixes, enum room_role *role,
    enum room_affiliation *affil)
{
	*role = ROLE_PARTICIPANT;
	*affil = AFFIL_NONE;
	if (strchr(prefixes, '~')) {
		*role = ROLE_MODERATOR;
		*affil = AFFIL_OWNER;
	} else if (strchr(prefixes, '&') || strchr(prefixes, '@')) {
		*role = ROLE_MODERATOR;
		*affil = AFFIL_ADMIN;
	} else if (strchr(prefixes, '%')) {
		*role = ROLE_MODERATOR;
		*affil = AFFIL_MEMBER;
	} else if (strchr(prefixes, '+')) {
		*affil = AFFIL_MEMBER;
	}
}

static void
announce_member(struct irc_server *srv, struct irc_chan *ch,
    const struct irc_member *m)
{
	enum room_role role;
	enum room_affiliation affil;
	role_of(m->prefixes, &role, &affil);
	room_occupant(srv->u->s, ch->room, m->nick, role, affil);
}

/* Adds or updates a member from a NAMES entry ("@+nick" or
 * "@nick!user@host" with userhost-in-names). */
static struct irc_member *
member_add(struct irc_server *srv, struct irc_chan *ch, const char *entry)
{
	const struct irc_isupport *is = irc_conn_isupport(srv->conn);
	char prefixes[8] = "";
	size_t np = 0;
	while (*entry && strchr(is->prefix_chars, *entry) && np < 7)
		prefixes[np++] = *entry++;
	prefixes[np] = '\0';
	size_t len = strcspn(entry, "!");
	if (len == 0 || len > 64)
		return NULL;
	char *nick = xstrndup(entry, len);
	struct irc_member *m = member_find(srv, ch, nick);
	if (m == NULL) {
		if (ch->nmembers >= 10000) {
			free(nick);
			return NULL;
		}
		ch->members = xreallocarray(ch->members, ch->nmembers + 1,
		    sizeof(*ch->members));
		m = &ch->members[ch->nmembers++];
		m->nick = nick;
		m->folded = fold(srv, nick);
	} else {
		free(nick);
	}
	snprintf(m->prefixes, sizeof(m->prefixes), "%s", prefixes);
	return m;
}

/* ---- the connection ---- */

static void server_connect(struct irc_server *srv);

static void
retry_cb(evutil_socket_t fd, short what, void *arg)
{
	server_connect(arg);
}

static void
server_free(struct irc_server *srv)
{
	struct irc_chan *ch;
	while ((ch = srv->chans) != NULL) {
		srv->chans = ch->next;
		chan_free(ch);
	}
	if (srv->conn != NULL)
		irc_conn_free(srv->conn);
	event_free(srv->retry);
	free(srv->host);
	free(srv);
}

static void
server_remove(struct irc_server *srv)
{
	struct irc_server **pp = &srv->u->servers;
	while (*pp != srv)
		pp = &(*pp)->next;
	*pp = srv->next;
	server_free(srv);
}

/* JOIN, or a join error for a channel or key IRC cannot carry (the
 * channel is then forgotten). */
static void
send_join(struct irc_server *srv, struct irc_chan *ch)
{
	if (send_line(srv, "JOIN", ch->name, ch->key, NULL) == 0)
		return;
	room_join_failed(srv->u->s, ch->room, "not-acceptable", "that "
	    "channel name or password cannot be sent to IRC");
	chan_remove(srv, ch);
}

static void
on_registered(void *arg, const char *nick)
{
	struct irc_server *srv = arg;
	srv->backoff = RETRY_MIN;
	log_info("irc: %s: connected to %s as %s",
	    session_jid(srv->u->s), srv->host, nick);
	struct irc_chan *ch, *next;
	for (ch = srv->chans; ch != NULL; ch = next) {
		next = ch->next;
		send_join(srv, ch);
	}
}

/* The connection is gone: tell every room, and try again while rooms
 * want the server (a rejoin by the user brings them back). */
static void
on_closed(void *arg, const char *reason)
{
	struct irc_server *srv = arg;
	struct session *s = srv->u->s;
	log_info("irc: %s: connection to %s closed: %s", session_jid(s),
	    srv->host, reason);
	/* reason belongs to the connection: use it before freeing that. */
	char *why = xasprintf("the connection to %s was lost: %s", srv->host,
	    reason);
	irc_conn_free(srv->conn);
	srv->conn = NULL;
	struct irc_chan *ch;
	while ((ch = srv->chans) != NULL) {
		srv->chans = ch->next;
		if (ch->announced)
			room_closed(s, ch->room, why);
		else
			room_join_failed(s, ch->room, "remote-server-not-found",
			    why);
		chan_free(ch);
	}
	free(why);
	/* Nothing joined any more: the connection reopens on demand. */
	server_remove(srv);
}

static void irc_dispatch(struct irc_server *srv, const struct irc_msg *m);

static void
on_message(void *arg, const struct irc_msg *m)
{
	irc_dispatch(arg, m);
}

static const struct irc_conn_callbacks conn_callbacks = {
	.registered = on_registered,
	.message = on_message,
	.closed = on_closed,
};

static void
server_connect(struct irc_server *srv)
{
	struct session *s = srv->u->s;
	const struct config_section *sec = config_section_find(cw->config,
	    "irc-server", srv->host);
	const char *nick = session_field(s, "nick");
	char fallback_nick[32];
	if (nick == NULL || *nick == '\0') {
		/* The local part of the user's JID is the natural default. */
		snprintf(fallback_nick, sizeof(fallback_nick), "%.*s",
		    (int)strcspn(session_jid(s), "@"), session_jid(s));
		nick = fallback_nick;
	}
	const char *realname = session_field(s, "realname");
	struct irc_conn_config cfg = {
		.host = srv->host,
		.port = sec ? (int)config_int(sec, "port") : 6697,
		.tls = sec ? config_bool(sec, "tls") : 1,
		.verify = sec ? config_bool(sec, "verify") : 1,
		.fingerprint = sec ? config_str(sec, "fingerprint") : NULL,
		.nick = nick,
		.username = nick,
		.realname = realname && *realname ? realname : nick,
		.password = session_field(s, "server_password"),
		.sasl_user = session_field(s, "sasl_user"),
		.sasl_password = session_field(s, "sasl_password"),
		.throttle_burst = sec ? (unsigned)config_int(sec,
		    "throttle_burst") : 0,
		.throttle_rate_ms = sec ? (unsigned)config_int(sec,
		    "throttle_rate") : 0,
	};
	if (cfg.fingerprint != NULL && *cfg.fingerprint == '\0')
		cfg.fingerprint = NULL;
	if (cfg.password != NULL && *cfg.password == '\0')
		cfg.password = sec ? config_str(sec, "password") : NULL;
	if (cfg.password != NULL && *cfg.password == '\0')
		cfg.password = NULL;
	if (sec != NULL && *config_str(sec, "webirc_password") != '\0') {
		cfg.webirc_password = config_str(sec, "webirc_password");
		cfg.webirc_gateway = "causeway";
		cfg.webirc_host = "xmpp.gateway";
		cfg.webirc_ip = "127.0.0.1";
	}
	srv->conn = irc_conn_new(cw->base, cw->dns, &cfg, &conn_callbacks, srv);
}

static struct irc_server *
server_get(struct session *s, const char *host, int create)
{
	struct irc_user *u = session_data(s);
	if (u == NULL)
		return NULL;
	for (struct irc_server *srv = u->servers; srv; srv = srv->next)
		if (strcasecmp(srv->host, host) == 0)
			return srv;
	if (!create)
		return NULL;
	struct irc_server *srv = xcalloc(1, sizeof(*srv));
	srv->u = u;
	srv->host = xstrdup(host);
	srv->backoff = RETRY_MIN;
	srv->retry = evtimer_new(cw->base, retry_cb, srv);
	srv->next = u->servers;
	u->servers = srv;
	server_connect(srv);
	return srv;
}

/* ---- from IRC ---- */

static int
is_us(struct irc_server *srv, const char *nick)
{
	return nick != NULL && srv->conn != NULL &&
	    irc_casecmp(casemap(srv), nick, irc_conn_nick(srv->conn)) == 0;
}

static void
on_join(struct irc_server *srv, const struct irc_msg *m)
{
	if (m->nparams < 1 || m->nick == NULL)
		return;
	struct irc_chan *ch = chan_find(srv, m->params[0]);
	if (ch == NULL)
		return;
	if (is_us(srv, m->nick)) {
		ch->joined = 1;
		return;
	}
	struct irc_member *mem = member_add(srv, ch, m->nick);
	if (mem != NULL && ch->announced)
		announce_member(srv, ch, mem);
}

static void
on_names(struct irc_server *srv, const struct irc_msg *m)
{
	/* 353 me = #chan :nick1 @nick2 +nick3 */
	if (m->nparams < 4)
		return;
	struct irc_chan *ch = chan_find(srv, m->params[2]);
	if (ch == NULL)
		return;
	char *list = xstrdup(m->params[3]);
	char *save = NULL;
	for (char *tok = strtok_r(list, " ", &save); tok != NULL;
	    tok = strtok_r(NULL, " ", &save)) {
		struct irc_member *mem = member_add(srv, ch, tok);
		if (mem != NULL && !is_us(srv, mem->nick))
			announce_member(srv, ch, mem);
	}
	free(list);
}

static void
on_names_end(struct irc_server *srv, const struct irc_msg *m)
{
	if (m->nparams < 2)
		return;
	struct irc_chan *ch = chan_find(srv, m->params[1]);
	if (ch == NULL || ch->announced)
		return;
	ch->announced = 1;
	room_joined(srv->u->s, ch->room, irc_conn_nick(srv->conn));
}

static void
on_topic(struct irc_server *srv, const struct irc_msg *m, int numeric)
{
	/* 332 me #chan :topic, or :nick TOPIC #chan :topic */
	size_t ci = numeric ? 1 : 0;
	if (m->nparams < ci + 2)
		return;
	struct irc_chan *ch = chan_find(srv, m->params[ci]);
	if (ch == NULL)
		return;
	char *topic = text_in(srv, m->params[ci + 1]);
	room_subject(srv->u->s, ch->room, numeric ? NULL : m->nick, topic);
	free(topic);
}

static void
on_part(struct irc_server *srv, const struct irc_msg *m, int kick)
{
	/* PART #chan :reason, KICK #chan nick :reason */
	size_t need = kick ? 2 : 1;
	if (m->nparams < need || m->nick == NULL)
		return;
	struct irc_chan *ch = chan_find(srv, m->params[0]);
	if (ch == NULL)
		return;
	const char *who = kick ? m->params[1] : m->nick;
	const char *raw = m->nparams > need ? m->params[need] : NULL;
	char *reason = raw ? text_in(srv, raw) : NULL;
	struct irc_member *mem = member_find(srv, ch, who);
	char *nick = xstrdup(mem ? mem->nick : who);
	if (mem != NULL)
		member_remove(ch, mem);
	room_occupant_left(srv->u->s, ch->room, nick,
	    kick ? LEAVE_KICK : LEAVE_PART, reason);
	if (is_us(srv, who))
		chan_remove(srv, ch);
	free(nick);
	free(reason);
}

static void
on_quit(struct irc_server *srv, const struct irc_msg *m)
{
	if (m->nick == NULL)
		return;
	char *reason = m->nparams > 0 ? text_in(srv, m->params[0]) : NULL;
	for (struct irc_chan *ch = srv->chans; ch != NULL; ch = ch->next) {
		struct irc_member *mem = member_find(srv, ch, m->nick);
		if (mem == NULL)
			continue;
		char *nick = xstrdup(mem->nick);
		member_remove(ch, mem);
		room_occupant_left(srv->u->s, ch->room, nick, LEAVE_QUIT,
		    reason);
		free(nick);
	}
	free(reason);
}

static void
on_nick(struct irc_server *srv, const struct irc_msg *m)
{
	if (m->nick == NULL || m->nparams < 1)
		return;
	const char *new = m->params[0];
	for (struct irc_chan *ch = srv->chans; ch != NULL; ch = ch->next) {
		struct irc_member *mem = member_find(srv, ch, m->nick);
		if (mem == NULL)
			continue;
		char *old = xstrdup(mem->nick);
		free(mem->nick);
		free(mem->folded);
		mem->nick = xstrdup(new);
		mem->folded = fold(srv, new);
		room_nick_changed(srv->u->s, ch->room, old, new);
		free(old);
	}
}

static void
on_mode(struct irc_server *srv, const struct irc_msg *m)
{
	/* MODE #chan +ov-v nick1 nick2 nick3 */
	if (m->nparams < 2)
		return;
	struct irc_chan *ch = chan_find(srv, m->params[0]);
	if (ch == NULL)
		return;
	const struct irc_isupport *is = irc_conn_isupport(srv->conn);
	int adding = 1;
	size_t arg = 2;
	for (const char *p = m->params[1]; *p; p++) {
		if (*p == '+' || *p == '-') {
			adding = *p == '+';
			continue;
		}
		const char *mode = strchr(is->prefix_modes, *p);
		if (mode == NULL) {
			/* Modes with arguments we do not track still use one:
			 * keys, limits, bans. */
			if (strchr("kbeIlfjL", *p) && (adding || *p != 'l'))
				arg++;
			continue;
		}
		if (arg >= m->nparams)
			break;
		char prefix = is->prefix_chars[mode - is->prefix_modes];
		struct irc_member *mem = member_find(srv, ch, m->params[arg++]);
		if (mem == NULL)
			continue;
		char *at = strchr(mem->prefixes, prefix);
		size_t len = strlen(mem->prefixes);
		if (adding && at == NULL && len + 1 < sizeof(mem->prefixes)) {
			mem->prefixes[len] = prefix;
			mem->prefixes[len + 1] = '\0';
		} else if (!adding && at != NULL) {
			memmove(at, at + 1, strlen(at));
		}
		if (!is_us(srv, mem->nick) || ch->announced)
			announce_member(srv, ch, mem);
	}
}

static void
answer_ctcp(struct irc_server *srv, const char *nick, const char *command,
    const char *args)
{
	char *reply = NULL;
	if (strcmp(command, "VERSION") == 0)
		reply = irc_ctcp_build("VERSION", "causeway " PACKAGE_VERSION
		    " XMPP gateway");
	else if (strcmp(command, "PING") == 0)
		reply = irc_ctcp_build("PING", args);
	if (reply != NULL)
		send_line(srv, "NOTICE", nick, reply, NULL);
	free(reply);
}

static void
on_privmsg(struct irc_server *srv, const struct irc_msg *m, int notice)
{
	if (m->nparams < 2 || m->nick == NULL)
		return;
	struct session *s = srv->u->s;
	char *command = NULL, *args = NULL;
	char *text;
	if (irc_ctcp_parse(m->params[1], &command, &args)) {
		if (strcmp(command, "ACTION") != 0) {
			if (!notice && !is_us(srv, m->nick))
				answer_ctcp(srv, m->nick, command, args);
			free(command);
			free(args);
			return;
		}
		char *body = text_in(srv, args);
		text = xasprintf("/me %s", body);
		free(body);
	} else {
		text = text_in(srv, m->params[1]);
	}
	free(command);
	free(args);

	const char *target = m->params[0];
	const struct irc_isupport *is = irc_conn_isupport(srv->conn);
	if (strchr(is->chantypes, target[0]) != NULL) {
		struct irc_chan *ch = chan_find(srv, target);
		/* Our own lines come back with echo-message; the room layer
		 * reflected them already when we sent them. */
		if (ch != NULL && !is_us(srv, m->nick))
			room_message(s, ch->room, m->nick, text);
	} else if (!is_us(srv, m->nick) && strchr(m->nick, '.') == NULL) {
		char *from = nick_address(srv, m->nick);
		if (from != NULL)
			session_deliver_message(s, from, text);
		free(from);
	}
	free(text);
}

/* Numerics that refuse a join, and what XEP-0045 calls them. */
static const struct {
	const char *numeric;
	const char *condition;
} join_errors[] = {
	{ "403", "item-not-found" },         /* no such channel */
	{ "405", "not-allowed" },            /* too many channels */
	{ "471", "service-unavailable" },    /* channel is full */
	{ "473", "registration-required" },  /* invite only */
	{ "474", "forbidden" },              /* banned */
	{ "475", "not-authorized" },         /* bad key */
	{ "477", "not-allowed" },            /* needs a registered nick */
	{ "479", "jid-malformed" },          /* illegal channel name */
};

static void
on_join_error(struct irc_server *srv, const struct irc_msg *m,
    const char *condition)
{
	if (m->nparams < 2)
		return;
	struct irc_chan *ch = chan_find(srv, m->params[1]);
	if (ch == NULL || ch->announced)
		return;
	char *text = text_in(srv, m->nparams > 2 ? m->params[2] :
	    "the IRC server refused the join");
	room_join_failed(srv->u->s, ch->room, condition, text);
	free(text);
	chan_remove(srv, ch);
}

static void
irc_dispatch(struct irc_server *srv, const struct irc_msg *m)
{
	const char *cmd = m->command;
	if (strcmp(cmd, "PRIVMSG") == 0)
		on_privmsg(srv, m, 0);
	else if (strcmp(cmd, "NOTICE") == 0)
		on_privmsg(srv, m, 1);
	else if (strcmp(cmd, "JOIN") == 0)
		on_join(srv, m);
	else if (strcmp(cmd, "PART") == 0)
		on_part(srv, m, 0);
	else if (strcmp(cmd, "KICK") == 0)
		on_part(srv, m, 1);
	else if (strcmp(cmd, "QUIT") == 0)
		on_quit(srv, m);
	else if (strcmp(cmd, "NICK") == 0)
		on_nick(srv, m);
	else if (strcmp(cmd, "MODE") == 0)
		on_mode(srv, m);
	else if (strcmp(cmd, "TOPIC") == 0)
		on_topic(srv, m, 0);
	else if (strcmp(cmd, "332") == 0)
		on_topic(srv, m, 1);
	else if (strcmp(cmd, "353") == 0)
		on_names(srv, m);
	else if (strcmp(cmd, "366") == 0)
		on_names_end(srv, m);
	else {
		for (size_t i = 0; i < sizeof(join_errors) /
		    sizeof(join_errors[0]); i++)
			if (strcmp(cmd, join_errors[i].numeric) == 0)
				on_join_error(srv, m, join_errors[i].condition);
	}
}

/* ---- from XMPP ---- */

static int
irc_is_room(struct component *c, const char *legacy)
{
	struct irc_addr a;
	if (parse_addr(c, legacy, &a) != 0)
		return 0;
	int room = a.kind == IRC_ADDR_CHANNEL;
	irc_addr_clear(&a);
	return room;
}

static int
irc_valid_address(struct component *c, const char *legacy)
{
	struct irc_addr a;
	if (parse_addr(c, legacy, &a) != 0)
		return 0;
	int ok = a.kind == IRC_ADDR_NICK && server_allowed(c, a.server);
	irc_addr_clear(&a);
	return ok;
}

static void
irc_login(struct session *s)
{
	/* Connections open per server on demand: the session itself is
	 * ready at once. */
	if (session_data(s) == NULL) {
		struct irc_user *u = xcalloc(1, sizeof(*u));
		u->s = s;
		session_set_data(s, u);
	}
	session_login_result(s, 1, NULL);
}

static void
irc_logout(struct session *s, const char *reason)
{
	struct irc_user *u = session_data(s);
	if (u == NULL)
		return;
	struct irc_server *srv;
	while ((srv = u->servers) != NULL) {
		u->servers = srv->next;
		/* QUIT is queued, but freeing the connection right away may
		 * cut it short; the network then sees a dropped link. */
		if (srv->conn != NULL)
			irc_conn_quit(srv->conn, reason);
		server_free(srv);
	}
	free(u);
	session_set_data(s, NULL);
}

static void
irc_join_room(struct session *s, const char *room, const char *nick,
    const char *password)
{
	struct component *c = session_component(s);
	struct irc_addr a;
	if (parse_addr(c, room, &a) != 0 || a.kind != IRC_ADDR_CHANNEL) {
		room_join_failed(s, room, "jid-malformed", "not a channel");
		return;
	}
	if (!server_allowed(c, a.server)) {
		room_join_failed(s, room, "not-allowed", "this gateway does "
		    "not connect to that IRC server");
		irc_addr_clear(&a);
		return;
	}
	struct irc_server *srv = server_get(s, a.server, 1);
	if (srv == NULL) {
		room_join_failed(s, room, "internal-server-error", NULL);
		irc_addr_clear(&a);
		return;
	}
	struct irc_chan *ch = chan_find(srv, a.name);
	if (ch == NULL) {
		ch = xcalloc(1, sizeof(*ch));
		ch->room = xstrdup(room);
		ch->name = xstrdup(a.name);
		ch->folded = fold(srv, a.name);
		ch->key = password && *password ? xstrdup(password) : NULL;
		ch->next = srv->chans;
		srv->chans = ch;
		if (srv->conn != NULL && irc_conn_is_registered(srv->conn))
			send_join(srv, ch);
	}
	(void)nick;  /* one nick per server: the registration's */
	irc_addr_clear(&a);
}

static struct irc_chan *
chan_of_room(struct session *s, const char *room, struct irc_server **out)
{
	struct irc_addr a;
	if (parse_addr(session_component(s), room, &a) != 0)
		return NULL;
	struct irc_server *srv = server_get(s, a.server, 0);
	struct irc_chan *ch = srv ? chan_find(srv, a.name) : NULL;
	irc_addr_clear(&a);
	*out = srv;
	return ch;
}

static void
irc_leave_room(struct session *s, const char *room, const char *reason)
{
	struct irc_server *srv;
	struct irc_chan *ch = chan_of_room(s, room, &srv);
	if (ch == NULL)
		return;
	send_line(srv, "PART", ch->name, reason, NULL);
	chan_remove(srv, ch);
}

static int
not_connected(struct backend_error *err)
{
	err->condition = "recipient-unavailable";
	snprintf(err->text, sizeof(err->text), "not in that channel");
	return -1;
}

/* Sends text as PRIVMSG lines (or one CTCP ACTION for "/me "). */
static int
send_text(struct irc_server *srv, const char *target, const char *body,
    struct backend_error *err)
{
	if (strncmp(body, "/me ", 4) == 0) {
		char *ctcp = irc_ctcp_build("ACTION", body + 4);
		int r = ctcp ? send_line(srv, "PRIVMSG", target, ctcp, NULL) : -1;
		free(ctcp);
		if (r == 0)
			return 0;
	} else {
		/* ":nick!user@host PRIVMSG target :" as the server relays
		 * it: leave room for the longest prefix it may add. */
		size_t overhead = 1 + 64 + 1 + 16 + 1 + 64 + 9 + strlen(target)
		    + 2;
		char **pieces;
		size_t n = irc_split(body, overhead, &pieces);
		int r = 0;
		for (size_t i = 0; i < n && r == 0; i++)
			r = send_line(srv, "PRIVMSG", target, pieces[i], NULL);
		irc_split_free(pieces);
		if (r == 0)
			return 0;
	}
	err->condition = "not-acceptable";
	snprintf(err->text, sizeof(err->text), "the message cannot be sent "
	    "to IRC");
	return -1;
}

static int
irc_send_groupchat(struct session *s, const char *room, const char *id,
    const char *body, struct backend_error *err)
{
	struct irc_server *srv;
	struct irc_chan *ch = chan_of_room(s, room, &srv);
	if (ch == NULL || !ch->announced)
		return not_connected(err);
	if (send_text(srv, ch->name, body, err) != 0)
		return -1;
	room_message_sent(s, room, id, body);
	return 0;
}

static int
irc_send_private(struct session *s, const char *room, const char *nick,
    const char *body, struct backend_error *err)
{
	struct irc_server *srv;
	struct irc_chan *ch = chan_of_room(s, room, &srv);
	if (ch == NULL)
		return not_connected(err);
	return send_text(srv, nick, body, err);
}

static int
irc_send_message(struct session *s, const char *legacy, const char *id,
    const char *body, struct backend_error *err)
{
	struct irc_addr a;
	if (parse_addr(session_component(s), legacy, &a) != 0 ||
	    a.kind != IRC_ADDR_NICK) {
		err->condition = "jid-malformed";
		snprintf(err->text, sizeof(err->text), "not an IRC nick");
		return -1;
	}
	struct irc_server *srv = server_get(s, a.server, 1);
	int r = srv ? send_text(srv, a.name, body, err) : -1;
	irc_addr_clear(&a);
	return r;
}

static int
irc_set_subject(struct session *s, const char *room, const char *subject,
    struct backend_error *err)
{
	struct irc_server *srv;
	struct irc_chan *ch = chan_of_room(s, room, &srv);
	if (ch == NULL)
		return not_connected(err);
	if (send_line(srv, "TOPIC", ch->name, subject, NULL) != 0) {
		err->condition = "not-acceptable";
		snprintf(err->text, sizeof(err->text), "that topic cannot be "
		    "sent to IRC");
		return -1;
	}
	return 0;
}

static int
irc_change_nick(struct session *s, const char *room, const char *nick,
    struct backend_error *err)
{
	struct irc_server *srv;
	struct irc_chan *ch = chan_of_room(s, room, &srv);
	if (ch == NULL)
		return not_connected(err);
	/* IRC nicks are per server: the NICK that comes back renames us in
	 * every room of that server (on_nick). */
	if (send_line(srv, "NICK", nick, NULL, NULL) != 0) {
		err->condition = "not-acceptable";
		snprintf(err->text, sizeof(err->text), "not a valid IRC nick");
		return -1;
	}
	return 0;
}

static int
irc_kick(struct session *s, const char *room, const char *nick,
    const char *reason, struct backend_error *err)
{
	struct irc_server *srv;
	struct irc_chan *ch = chan_of_room(s, room, &srv);
	if (ch == NULL)
		return not_connected(err);
	if (send_line(srv, "KICK", ch->name, nick, reason) != 0) {
		err->condition = "not-acceptable";
		snprintf(err->text, sizeof(err->text), "that kick cannot be "
		    "sent to IRC");
		return -1;
	}
	return 0;
}

const struct backend irc_backend = {
	.abi = BACKEND_ABI,
	.name = "irc",
	.gateway_type = "irc",
	.description = "IRC",
	.options = irc_options,
	.sections = irc_sections,
	.nsections = sizeof(irc_sections) / sizeof(irc_sections[0]),
	.register_fields = irc_fields,
	.nregister_fields = sizeof(irc_fields) / sizeof(irc_fields[0]),
	.register_instructions = "Your IRC identity: all fields are "
	    "optional (your nick defaults to your XMPP user name).",
	.valid_address = irc_valid_address,
	.login = irc_login,
	.logout = irc_logout,
	.send_message = irc_send_message,
	.is_room = irc_is_room,
	.join_room = irc_join_room,
	.leave_room = irc_leave_room,
	.send_groupchat = irc_send_groupchat,
	.send_private = irc_send_private,
	.set_subject = irc_set_subject,
	.change_nick = irc_change_nick,
	.kick = irc_kick,
};
