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
 * A lost link (once registered) keeps the server and its joined
 * channels: the rooms hear it (room_link_lost: a status message, the
 * occupants leave, the user stays), we reconnect with backoff (on_closed)
 * and rejoin, and the NAMES of the rejoin bring the occupants back.  The
 * rooms close (332) only when the user has left them all or after
 * RETRY_TRIES failed attempts.
 *
 * Persistent channels (bouncer mode) need nothing here: the room layer
 * keeps the room, and so the channel, while the user is away, and never
 * calls leave_room() for it.  The user's per-channel charset (the
 * room's owner form) is read with room_encoding() when channel text is
 * not UTF-8 (text_in_chan).
 *
 * Private messages the user starts through a room's occupant JID are
 * answered through it (a small per-server map, struct pm_route); the
 * others come from nick%server.
 *
 * Addresses (biboumi's, so bookmarks carry over): a room is
 * "#chan%irc.server", a person "nick%irc.server"; with fixed_server set,
 * "#chan" and "nick".  The core hands us the JID's unescaped local part.
 * Channel prefixes are the server's ISUPPORT CHANTYPES while any user of
 * the component is connected to it (struct known_server), else "#&".
 *
 * The user's messages are reflected to the room when their last line
 * was written to the server, or, with echo-message, echoed back (struct
 * irc_pending); a link that drops with lines still queued tells the
 * user which messages were not sent (error messages with their ids).
 *
 * Each user's ident (USER's user name, and the identd's answer) is
 * derived from the component's salt and the bare JID (ident_name).  The
 * user's own settings per server (port, TLS, charset, NickServ line)
 * live in the store (SETTING_PREFIX) and are read at each connect; the
 * irc-server and irc-channel ad-hoc commands change them.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <iconv.h>

#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "backend.h"
#include "causeway.h"
#include "component.h"
#include "config.h"
#include "destination.h"
#include "form.h"
#include "irc_conn.h"
#include "irc_identd.h"
#include "irc_proto.h"
#include "log.h"
#include "metrics.h"
#include "room.h"
#include "roomlist.h"
#include "secret.h"
#include "session.h"
#include "store.h"
#include "xmalloc.h"

/* Reconnecting after a lost link: 2 s doubling to 120 s, with jitter;
 * after RETRY_TRIES failures in a row the rooms are closed. */
#define RETRY_MIN 2
#define SERVERS_MAX 16         /* IRC servers per user at once */
#define RETRY_MAX 120
#define RETRY_TRIES 10
/* Nicks whose private messages come back through a room (the one the
 * user last wrote to them through), per server. */
#define PM_ROUTES 32
/* A server-time tag this much older than our clock marks a message as
 * delayed (XEP-0203); less is ordinary lag. */
#define DELAY_MIN_SECONDS 10
/* Members kept per channel (as the room layer's occupants). */
#define CHAN_MEMBERS_MAX 10000
_Static_assert(CHAN_MEMBERS_MAX < 65535, "member index slots are 16 bits");
/* With echo-message, the user's channel messages waiting for their echo
 * (past this, the oldest is taken as sent: a server that stopped echoing
 * must not make us hold messages without end). */
#define PENDING_ECHO_MAX 100
/* The per-user settings of a server (the irc-server command), in the
 * store under the user: PREFIX HOST "/" NAME. */
#define SETTING_PREFIX "irc/server/"
/* The nick the user last had on a server (asked at connect, or changed
 * by the user since), in the store under the user: PREFIX HOST.  A
 * persistent room rejoined after a restart connects with it. */
#define LAST_NICK_PREFIX "irc/last-nick/"
/* The component's salt for ident names, in the store (jid ""). */
#define SALT_KEY "irc/ident-salt"

/* 16 bytes: both nicks are interned (room_nick_*), shared with the
 * rooms' occupants and with every other user in the same channel. */
struct irc_member {
	uint32_t nick;
	uint32_t folded;       /* the nick in the server's case mapping */
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
	int rejoining;         /* announced, JOIN sent again after a lost
	                        * link */
	struct irc_member *members;
	uint32_t nmembers, cap;
	/* Open-addressing index over members by folded nick (slot = index
	 * + 1, 0 = empty; at most CHAN_MEMBERS_MAX: 16 bits), rebuilt
	 * after removals and renames: a NAMES reply of thousands of nicks
	 * stays linear. */
	uint16_t *index;
	uint32_t index_cap;
	int index_stale;
	struct irc_server *srv;
	struct event *join_timer;  /* a join the server never answers */
	/* The topic the server told with the last JOIN (332, 333), handed
	 * to the room with the occupants (366). */
	char *topic;           /* NULL: none came */
	char *topic_setter;    /* a nick, or NULL */
	time_t topic_time;     /* 0: not told */
};

struct pm_route {
	char *folded;          /* the nick, case-folded */
	char *room;            /* the room the user wrote to it through */
};

/*
 * A message of the user's on its way to IRC: its lines are queued with
 * one tag; it is reflected to the room (room_message_sent) once its last
 * line was written, or, with echo-message, once the server echoed every
 * line.  If the link drops first, the user hears that it was not sent
 * (an error message with its id).
 */
struct irc_pending {
	struct irc_pending *next;
	unsigned long tag;
	char *room;            /* a groupchat's room; NULL: a private message */
	char *pm_room;         /* a private message through this room */
	char *legacy;          /* a private message to nick%server */
	char *target;          /* the IRC target, case-folded */
	char *id;              /* the stanza's id; may be NULL */
	char *body;
	unsigned lines;        /* queued */
	unsigned written;
	unsigned echoed;
};

struct irc_server {
	struct irc_server *next;
	struct irc_user *u;
	char *host;
	struct irc_conn *conn;
	struct irc_chan *chans;
	struct event *retry;
	unsigned backoff;      /* seconds before the next reconnect */
	unsigned attempts;     /* reconnects failed since the link was lost */
	int ever_registered;   /* a link was up once: rooms wait for it */
	int up;                /* registered now (irc_conn says CLOSED by
	                        * the time closed() runs) */
	char *nick;            /* ours, as the rooms know it */
	char *nick_wanted;     /* a NICK we sent, not answered yet */
	char *join_nick;       /* the nick of the join that opened the
	                        * server (the user's nick there unless one
	                        * is registered for the server); NULL: none */
	char *reg_nick;        /* the nick registered for the server when we
	                        * connected (registration_changed) */
	char *conn_nick;       /* the nick the connection asked for, when
	                        * the user's choice (not srv->nick) */
	unsigned char creds[32];  /* SHA-256 of the credentials and realname
	                           * the connection was opened with */
	int reconnect_now;     /* closing to reconnect with new values */
	struct pm_route *routes;  /* PM_ROUTES, most recent first; allocated
	                           * on the first private message */
	size_t nroutes;
	struct room_list *list;  /* a LIST being answered (roomlist.h) */
	int list_sent;
	char *encoding;        /* the user's charset for the server (irc-server
	                        * command), read at each connect; NULL: none */
	struct irc_pending *pending, **pending_tail;
	unsigned long next_tag;
};

/* A server some user of the component is connected to, with the
 * CHANTYPES it announced: addresses typed from XMPP are read with them
 * (irc_is_room has no session). */
struct known_server {
	struct known_server *next;
	char *host;
	char chantypes[16];    /* "" until its 005 says */
	unsigned refs;         /* connections to it */
};

/* The component's own state (backend_data). */
struct irc_comp {
	char *identd;          /* the identd address in force; NULL: off */
	unsigned char salt[16];
	struct known_server *known;
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
	{ .key = "identd", .type = CONFIG_STRING, .def = "",
	  .help = "ADDR:PORT for an RFC 1413 identd telling IRC servers "
	  "each user's ident name (empty: none)" },
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

/*
 * Registered on server@gw (or, with fixed_server, on the gateway) they
 * are that server's: scope_only keeps a server's nick and credentials
 * from ever reaching another server.  The account-wide nick on the
 * gateway is only a default where no join says otherwise.
 */
static const struct form_field_spec irc_fields[] = {
	{ .var = "nick", .type = FIELD_TEXT_SINGLE, .label = "Nick",
	  .desc = "On SERVER@gateway: your nick there, whatever a join "
	  "says; on the gateway: used where a join does not say otherwise",
	  .max_len = 64, .scope_only = 1 },
	{ .var = "realname", .type = FIELD_TEXT_SINGLE, .label = "Real name",
	  .max_len = 128 },
	{ .var = "sasl_user", .type = FIELD_TEXT_SINGLE,
	  .label = "Account (SASL)", .max_len = 128, .scope_only = 1 },
	{ .var = "sasl_password", .type = FIELD_TEXT_PRIVATE,
	  .label = "Account password (SASL)", .max_len = 256, .secret = 1,
	  .scope_only = 1 },
	{ .var = "server_password", .type = FIELD_TEXT_PRIVATE,
	  .label = "Server password", .max_len = 256, .secret = 1,
	  .scope_only = 1 },
};

/* ---- small helpers ---- */

static const char *
fixed_server(struct component *c)
{
	const char *f = config_str(c->section, "fixed_server");
	return f != NULL && *f != '\0' ? f : NULL;
}

/* The channel prefixes of the server legacy names: what the server
 * announced (ISUPPORT CHANTYPES) while some user of the component is
 * connected to it, else "#&". */
static const char *
chantypes_of(struct component *c, const char *legacy)
{
	struct irc_comp *ic = c->backend_data;
	const char *host = fixed_server(c);
	if (host == NULL) {
		const char *pct = strrchr(legacy, '%');
		host = pct != NULL ? pct + 1 : NULL;
	}
	for (struct known_server *k = ic ? ic->known : NULL; k != NULL &&
	    host != NULL; k = k->next)
		if (strcasecmp(k->host, host) == 0 && k->chantypes[0] != '\0')
			return k->chantypes;
	return "#&";
}

static int
parse_addr(struct component *c, const char *legacy, struct irc_addr *a)
{
	return irc_addr_parse(legacy, fixed_server(c), chantypes_of(c, legacy),
	    a);
}

static struct known_server *
known_find(struct component *c, const char *host)
{
	struct irc_comp *ic = c->backend_data;
	for (struct known_server *k = ic ? ic->known : NULL; k != NULL;
	    k = k->next)
		if (strcasecmp(k->host, host) == 0)
			return k;
	return NULL;
}

/* A connection to host opened (up = 1) or ended (up = 0). */
static void
known_ref(struct component *c, const char *host, int up)
{
	struct irc_comp *ic = c->backend_data;
	struct known_server *k = known_find(c, host);
	if (ic == NULL)
		return;
	if (up) {
		if (k == NULL) {
			k = xcalloc(1, sizeof(*k));
			k->host = xstrdup(host);
			k->next = ic->known;
			ic->known = k;
		}
		k->refs++;
		return;
	}
	if (k == NULL || --k->refs > 0)
		return;
	struct known_server **pp = &ic->known;
	while (*pp != k)
		pp = &(*pp)->next;
	*pp = k->next;
	free(k->host);
	free(k);
}

/*
 * The ident name of a user (USER's user name, and what the identd
 * answers): "cw" and 8 hex digits of SHA-256 over the component's
 * random salt, the component and the bare JID.  Stable across
 * connections and restarts, so a network can tell users apart and ban
 * one; it does not reveal the JID, and the salt keeps anyone from
 * testing guessed JIDs against it.
 */
static void
ident_name(struct component *c, const char *jid, char out[11])
{
	struct irc_comp *ic = c->backend_data;
	size_t dl = strlen(c->domain), jl = strlen(jid);
	size_t n = sizeof(ic->salt) + dl + 1 + jl;
	unsigned char *buf = xmalloc(n);
	memcpy(buf, ic->salt, sizeof(ic->salt));
	memcpy(buf + sizeof(ic->salt), c->domain, dl + 1);
	memcpy(buf + sizeof(ic->salt) + dl + 1, jid, jl);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	if (EVP_Digest(buf, n, md, &mdlen, EVP_sha256(), NULL) != 1 ||
	    mdlen < 4)
		log_fatal("irc: SHA-256 failed");
	free(buf);
	snprintf(out, 11, "cw%02x%02x%02x%02x", md[0], md[1], md[2], md[3]);
}

/* A setting of the user's for a server (caller frees), or NULL. */
static char *
setting_get(struct component *c, const char *jid, const char *host,
    const char *name, size_t *lenp)
{
	char *key = xasprintf(SETTING_PREFIX "%s/%s", host, name);
	char *v = NULL;
	size_t len = 0;
	int r = store_state_get(cw->store, c->domain, jid, key, &v, &len);
	free(key);
	if (r != 1)
		return NULL;
	if (lenp != NULL)
		*lenp = len;
	return v;
}

static char *
user_setting(struct session *s, const char *host, const char *name,
    size_t *lenp)
{
	return setting_get(session_component(s), session_jid(s), host, name,
	    lenp);
}

/* The user's NickServ line for host, unsealed (caller wipes and frees),
 * or NULL. */
static char *
user_nickserv(struct session *s, const char *host)
{
	size_t len;
	char *sealed = user_setting(s, host, "nickserv", &len);
	if (sealed == NULL)
		return NULL;
	char *ad = session_secret_ad(session_component(s)->domain,
	    session_jid(s));
	size_t plen;
	char *plain = secret_open(cw->key, ad, (unsigned char *)sealed, len,
	    &plen);
	free(ad);
	free(sealed);
	if (plain == NULL)
		log_warn("irc: %s: the NickServ line for %s does not open (a "
		    "new key file?); not identifying", session_jid(s), host);
	return plain;
}

/* The nick the user last had on host (caller frees), or NULL. */
static char *
last_nick_get(struct session *s, const char *host)
{
	char *key = xasprintf(LAST_NICK_PREFIX "%s", host);
	char *v = NULL;
	size_t len = 0;
	int r = store_state_get(cw->store, session_component(s)->domain,
	    session_jid(s), key, &v, &len);
	free(key);
	if (r != 1)
		return NULL;
	/* Stored by us, but a nick is one line: anything else is not
	 * used. */
	if (len == 0 || len > 64 || memchr(v, '\0', len) != NULL ||
	    strpbrk(v, " \r\n") != NULL) {
		free(v);
		return NULL;
	}
	return v;
}

static void
last_nick_put(struct session *s, const char *host, const char *nick)
{
	if (nick == NULL || *nick == '\0')
		return;
	char *old = last_nick_get(s, host);
	int same = old != NULL && strcmp(old, nick) == 0;
	free(old);
	if (same)
		return;
	char *key = xasprintf(LAST_NICK_PREFIX "%s", host);
	if (store_state_set(cw->store, session_component(s)->domain,
	    session_jid(s), key, nick, strlen(nick)) != 0)
		log_warn("irc: %s: cannot store the nick for %s",
		    session_jid(s), host);
	free(key);
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

/* nick on server as an address (caller frees), or NULL: servers send
 * nicks our parser refuses ("a*b", "x%y", 65 bytes), and an address the
 * user could not answer to is no address. */
static char *
nick_local(struct component *c, const char *server, const char *nick)
{
	struct irc_addr a = { .kind = IRC_ADDR_NICK, .name = (char *)nick,
	    .server = (char *)server };
	char *local = irc_addr_local(&a, fixed_server(c));
	struct irc_addr back;
	if (local != NULL && parse_addr(c, local, &back) == 0) {
		int ok = back.kind == IRC_ADDR_NICK;
		irc_addr_clear(&back);
		if (ok)
			return local;
	}
	free(local);
	return NULL;
}

/* A person's address on this server, as the core knows it. */
static char *
nick_address(struct irc_server *srv, const char *nick)
{
	char *local = nick_local(session_component(srv->u->s), srv->host,
	    nick);
	if (local == NULL)
		log_info("irc: %s: %s: the nick %s cannot be an address; its "
		    "message is dropped", session_jid(srv->u->s), srv->host,
		    nick);
	return local;
}

/* IRCv3 server-time ("2024-05-01T12:00:00.000Z"): the time to mark a
 * message with, or 0 when it is recent (or the tag is absent or bad). */
static time_t
message_time(const struct irc_msg *m)
{
	const char *v = irc_msg_tag(m, "time");
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	if (v == NULL)
		return 0;
	const char *end = strptime(v, "%Y-%m-%dT%H:%M:%S", &tm);
	if (end == NULL)
		return 0;
	if (*end == '.')
		end += 1 + strspn(end + 1, "0123456789");
	if (strcmp(end, "Z") != 0)
		return 0;
	time_t t = timegm(&tm);
	time_t now = time(NULL);
	if (t == (time_t)-1 || t <= 0 || now - t < DELAY_MIN_SECONDS)
		return 0;
	return t;
}

/* ---- private messages through rooms ---- */

static struct pm_route *
route_find(struct irc_server *srv, const char *nick)
{
	char *f = fold(srv, nick);
	struct pm_route *r = NULL;
	for (size_t i = 0; i < srv->nroutes && r == NULL; i++)
		if (strcmp(srv->routes[i].folded, f) == 0)
			r = &srv->routes[i];
	free(f);
	return r;
}

static void
route_drop(struct irc_server *srv, struct pm_route *r)
{
	free(r->folded);
	free(r->room);
	size_t i = (size_t)(r - srv->routes);
	memmove(r, r + 1, (srv->nroutes - i - 1) * sizeof(*r));
	srv->nroutes--;
}

/* The user wrote to nick through room: its answers go there too (until
 * the user writes to nick%server, or PM_ROUTES other nicks push it out). */
static void
route_set(struct irc_server *srv, const char *nick, const char *room)
{
	struct pm_route *old = route_find(srv, nick);
	if (old != NULL)
		route_drop(srv, old);
	if (srv->routes == NULL)
		srv->routes = xcalloc(PM_ROUTES, sizeof(*srv->routes));
	if (srv->nroutes == PM_ROUTES)
		route_drop(srv, &srv->routes[PM_ROUTES - 1]);
	memmove(&srv->routes[1], &srv->routes[0],
	    srv->nroutes * sizeof(srv->routes[0]));
	srv->routes[0].folded = fold(srv, nick);
	srv->routes[0].room = xstrdup(room);
	srv->nroutes++;
}

struct irc_chan;
static const char *chan_encoding(struct irc_server *srv,
    const struct irc_chan *ch);

/* IRC text (raw bytes) of channel ch (NULL: not a channel's) as UTF-8
 * without IRC formatting; caller frees.  Bytes that are not UTF-8 are
 * read in the user's charset for the channel (the room's owner form or
 * the irc-channel command), else the user's for the server (irc-server),
 * else the operator's for the server, else CP1252. */
static char *
text_in_chan(struct irc_server *srv, const struct irc_chan *ch,
    const char *raw)
{
	const struct config_section *sec = config_section_find(cw->config,
	    "irc-server", srv->host);
	const char *enc = ch ? chan_encoding(srv, ch) : NULL;
	if (enc == NULL)
		enc = srv->encoding;
	char *utf8 = irc_to_utf8(raw, strlen(raw), enc ? enc :
	    sec ? config_str(sec, "encoding") : "CP1252");
	char *styled = irc_format_to_styling(utf8);
	free(utf8);
	return styled;
}

static char *
text_in(struct irc_server *srv, const char *raw)
{
	return text_in_chan(srv, NULL, raw);
}

/* ---- channels and members ---- */

static const char *
chan_encoding(struct irc_server *srv, const struct irc_chan *ch)
{
	return room_encoding(srv->u->s, ch->room);
}

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
	room_nick_release(m->nick);
	room_nick_release(m->folded);
}

/* The folded form of nick, interned (the same id as nick itself when
 * folding changes nothing). */
static uint32_t
fold_intern(const struct irc_server *srv, const char *nick)
{
	char *f = fold(srv, nick);
	uint32_t id = room_nick_intern(f);
	free(f);
	return id;
}

static void
chan_free(struct irc_chan *ch)
{
	for (size_t i = 0; i < ch->nmembers; i++)
		member_clear(&ch->members[i]);
	free(ch->members);
	free(ch->index);
	if (ch->join_timer != NULL)
		event_free(ch->join_timer);
	free(ch->room);
	free(ch->name);
	free(ch->folded);
	free(ch->key);
	free(ch->topic);
	free(ch->topic_setter);
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

static void
index_put(struct irc_chan *ch, uint32_t i)
{
	uint32_t mask = ch->index_cap - 1;
	uint32_t k = room_nick_hash(ch->members[i].folded) & mask;
	while (ch->index[k] != 0)
		k = (k + 1) & mask;
	ch->index[k] = (uint16_t)(i + 1);
}

static void
index_build(struct irc_chan *ch)
{
	uint32_t cap = 16;
	while (cap < 2 * ch->nmembers + 2)
		cap *= 2;
	free(ch->index);
	ch->index = xcalloc(cap, sizeof(*ch->index));
	ch->index_cap = cap;
	for (uint32_t i = 0; i < ch->nmembers; i++)
		index_put(ch, i);
	ch->index_stale = 0;
}

static struct irc_member *
member_find(struct irc_server *srv, struct irc_chan *ch, const char *nick)
{
	char f[72];
	if (strlen(nick) >= sizeof(f) - 1)
		return NULL;        /* longer than any member we keep */
	strcpy(f, nick);
	irc_casefold(casemap(srv), f);
	/* Nobody holds that folded nick: it is in no channel. */
	uint32_t id = ch->nmembers ? room_nick_lookup(f) : 0;
	if (id == 0)
		return NULL;
	if (ch->index == NULL || ch->index_stale)
		index_build(ch);
	uint32_t mask = ch->index_cap - 1;
	for (uint32_t k = room_nick_hash(id) & mask; ch->index[k] != 0;
	    k = (k + 1) & mask) {
		struct irc_member *m = &ch->members[ch->index[k] - 1];
		if (m->folded == id)
			return m;
	}
	return NULL;
}

static void
member_remove(struct irc_chan *ch, struct irc_member *m)
{
	member_clear(m);
	*m = ch->members[--ch->nmembers];
	ch->index_stale = 1;
}

/*
 * A nick that can be the resource of an occupant JID: 1..64 bytes of
 * valid UTF-8 without controls or spaces.  Servers send odd things
 * ("a\tb", bare \x01); such a member is not shown and its lines are
 * dropped, rather than put into a JID no client can answer.
 */
static int
nick_ok(const char *nick)
{
	size_t n = strlen(nick);
	if (n == 0 || n > 64)
		return 0;
	for (const unsigned char *p = (const unsigned char *)nick; *p; ) {
		if (*p <= 0x20 || *p == 0x7f)
			return 0;
		if (*p < 0x80) {
			p++;
			continue;
		}
		int len = *p >= 0xf0 ? 4 : *p >= 0xe0 ? 3 : *p >= 0xc2 ? 2 : 0;
		if (len == 0 || *p > 0xf4)
			return 0;
		for (int i = 1; i < len; i++)
			if ((p[i] & 0xc0) != 0x80)
				return 0;
		p += len;
	}
	return 1;
}

/*
 * The XEP-0045 role and affiliation of a member's channel prefixes, by
 * the highest mode they stand for (the server's PREFIX says which):
 * q (founder) and a (protected) are owners, o admins, h moderating
 * members, v members with voice; everyone else a participant.  Clients
 * show these; a biboumi user saw the same.
 */
static void
role_of(const struct irc_server *srv, const char *prefixes,
    enum room_role *role, enum room_affiliation *affil)
{
	static const struct {
		char mode;
		enum room_role role;
		enum room_affiliation affil;
	} ranks[] = {
		{ 'q', ROLE_MODERATOR, AFFIL_OWNER },
		{ 'a', ROLE_MODERATOR, AFFIL_OWNER },
		{ 'o', ROLE_MODERATOR, AFFIL_ADMIN },
		{ 'h', ROLE_MODERATOR, AFFIL_MEMBER },
		{ 'v', ROLE_PARTICIPANT, AFFIL_MEMBER },
	};
	const struct irc_isupport *is = srv->conn ?
	    irc_conn_isupport(srv->conn) : NULL;
	const char *chars = is ? is->prefix_chars : "@+";
	const char *modes = is ? is->prefix_modes : "ov";
	*role = ROLE_PARTICIPANT;
	*affil = AFFIL_NONE;
	for (size_t i = 0; i < sizeof(ranks) / sizeof(ranks[0]); i++) {
		const char *m = strchr(modes, ranks[i].mode);
		if (m == NULL || (size_t)(m - modes) >= strlen(chars) ||
		    strchr(prefixes, chars[m - modes]) == NULL)
			continue;
		*role = ranks[i].role;
		*affil = ranks[i].affil;
		return;
	}
}

static void
announce_member(struct irc_server *srv, struct irc_chan *ch,
    const struct irc_member *m)
{
	enum room_role role;
	enum room_affiliation affil;
	role_of(srv, m->prefixes, &role, &affil);
	room_occupant(srv->u->s, ch->room, room_nick_str(m->nick), role,
	    affil);
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
	if (!nick_ok(nick)) {
		log_debug("irc: %s: ignoring the member %s of %s: not a "
		    "usable nick", srv->host, nick, ch->name);
		free(nick);
		return NULL;
	}
	struct irc_member *m = member_find(srv, ch, nick);
	if (m == NULL) {
		if (ch->nmembers >= CHAN_MEMBERS_MAX) {
			free(nick);
			return NULL;
		}
		if (ch->nmembers == ch->cap) {
			ch->cap = ch->cap ? ch->cap * 2 : 16;
			ch->members = xreallocarray(ch->members, ch->cap,
			    sizeof(*ch->members));
		}
		m = &ch->members[ch->nmembers++];
		m->nick = room_nick_intern(nick);
		m->folded = fold_intern(srv, nick);
		free(nick);
		if (!ch->index_stale && ch->index != NULL &&
		    2 * ch->nmembers + 2 <= ch->index_cap)
			index_put(ch, ch->nmembers - 1);
		else
			ch->index_stale = 1;
	} else {
		free(nick);
	}
	snprintf(m->prefixes, sizeof(m->prefixes), "%s", prefixes);
	return m;
}

/* ---- the user's messages on their way (struct irc_pending) ---- */

static int
echo_on(const struct irc_server *srv)
{
	return srv->conn != NULL && irc_conn_has_cap(srv->conn,
	    "echo-message");
}

static struct irc_pending *
pending_new(struct irc_server *srv, const char *target, const char *id,
    const char *body)
{
	struct irc_pending *p = xcalloc(1, sizeof(*p));
	p->tag = ++srv->next_tag;
	if (p->tag == 0)
		p->tag = ++srv->next_tag;
	p->target = xstrdup(target);
	p->id = id != NULL ? xstrdup(id) : NULL;
	p->body = xstrdup(body);
	*srv->pending_tail = p;
	srv->pending_tail = &p->next;
	return p;
}

static void
pending_unlink(struct irc_server *srv, struct irc_pending *p)
{
	struct irc_pending **pp = &srv->pending;
	while (*pp != p)
		pp = &(*pp)->next;
	*pp = p->next;
	if (srv->pending_tail == &p->next)
		srv->pending_tail = pp;
	free(p->room);
	free(p->pm_room);
	free(p->legacy);
	free(p->target);
	free(p->id);
	free(p->body);
	free(p);
}

/* It went out: a groupchat is reflected to its room now. */
static void
pending_done(struct irc_server *srv, struct irc_pending *p)
{
	if (p->room != NULL)
		room_message_sent(srv->u->s, p->room, p->id, p->body);
	pending_unlink(srv, p);
}

/* It did not go out (or may not have): the user hears it, with the
 * message's id where XMPP has one. */
static void
pending_fail(struct irc_server *srv, struct irc_pending *p,
    const char *condition, const char *text)
{
	struct session *s = srv->u->s;
	log_info("irc: %s: a message to %s on %s was not sent: %s",
	    session_jid(s), p->target, srv->host, text);
	if (p->room != NULL) {
		room_message_failed(s, p->room, p->id, condition, text);
	} else if (p->legacy != NULL) {
		session_message_failed(s, p->legacy, p->id, condition, text);
	} else if (p->pm_room != NULL) {
		/* Private messages through a room carry no id to the
		 * backend: say it in the room. */
		char *note = xasprintf("Your private message to %s was not "
		    "sent (%s): %s", p->target, text, p->body);
		room_message(s, p->pm_room, NULL, note);
		free(note);
	}
	pending_unlink(srv, p);
}

static struct irc_pending *
pending_by_tag(struct irc_server *srv, unsigned long tag)
{
	struct irc_pending *p;
	for (p = srv->pending; p != NULL && p->tag != tag; p = p->next)
		;
	return p;
}

static int
pending_complete(const struct irc_server *srv, const struct irc_pending *p)
{
	return p->written == p->lines && (p->room == NULL || !echo_on(srv) ||
	    p->echoed >= p->lines);
}

/* A line of a message left for the server. */
static void
on_written(void *arg, unsigned long tag)
{
	struct irc_server *srv = arg;
	struct irc_pending *p = pending_by_tag(srv, tag);
	if (p == NULL)
		return;
	p->written++;
	if (pending_complete(srv, p)) {
		pending_done(srv, p);
		return;
	}
	/* A server that stopped echoing must not make us hold messages
	 * without end: past PENDING_ECHO_MAX, the oldest counts as sent. */
	size_t waiting = 0;
	for (struct irc_pending *q = srv->pending; q != NULL; q = q->next)
		waiting += q->written == q->lines;
	while (waiting-- > PENDING_ECHO_MAX) {
		struct irc_pending *q = srv->pending;
		while (q != NULL && q->written != q->lines)
			q = q->next;
		if (q == NULL)
			break;
		pending_done(srv, q);
	}
}

/* The connection ended with a line of that message still queued. */
static void
on_unsent(void *arg, unsigned long tag)
{
	struct irc_server *srv = arg;
	struct irc_pending *p = pending_by_tag(srv, tag);
	if (p == NULL)
		return;
	char *text = irc_conn_refused(srv->conn) ?
	    xstrdup(DESTINATION_REFUSED) : xasprintf(p->written > 0 ?
	    "the connection to %s was lost while sending it: only its "
	    "first lines went out" : "the connection to %s was lost before "
	    "it could be sent", srv->host);
	pending_fail(srv, p, "recipient-unavailable", text);
	free(text);
}

/* Our own channel message came back (echo-message). */
static void
pending_echo(struct irc_server *srv, const char *target)
{
	enum irc_casemapping cm = casemap(srv);
	for (struct irc_pending *p = srv->pending; p != NULL; p = p->next) {
		if (p->room == NULL || p->echoed >= p->lines ||
		    irc_casecmp(cm, p->target, target) != 0)
			continue;
		p->echoed++;
		if (pending_complete(srv, p))
			pending_done(srv, p);
		return;
	}
}

/* 404: the channel refused a message of ours (moderated, banned, not
 * in it).  With echo-message the oldest one not echoed is the one; the
 * user gets its error.  Without, it was reflected already: the room
 * hears the server's words. */
static void
on_cannot_send(struct irc_server *srv, const struct irc_msg *m)
{
	if (m->nparams < 2)
		return;
	struct irc_chan *ch = chan_find(srv, m->params[1]);
	char *text = text_in(srv, m->nparams > 2 ? m->params[2] :
	    "cannot send to the channel");
	enum irc_casemapping cm = casemap(srv);
	struct irc_pending *p;
	for (p = srv->pending; p != NULL; p = p->next)
		if (p->room != NULL && p->written > p->echoed &&
		    irc_casecmp(cm, p->target, m->params[1]) == 0)
			break;
	if (p != NULL && echo_on(srv)) {
		pending_fail(srv, p, "forbidden", text);
	} else if (ch != NULL && ch->announced) {
		char *note = xasprintf("%s did not pass a message on: %s",
		    srv->host, text);
		room_message(srv->u->s, ch->room, NULL, note);
		free(note);
	}
	free(text);
}

/* The server refused a TOPIC, MODE or KICK of the user's (a subject,
 * muc#admin) in a joined channel: 482 (not an operator), 437 (retry the
 * topic later)...  The request was answered already; the user's
 * resources in the room get the server's words as an error from the
 * room. */
static void
on_refused(struct irc_server *srv, const struct irc_msg *m,
    const char *condition)
{
	if (m->nparams < 2)
		return;
	struct irc_chan *ch = chan_find(srv, m->params[1]);
	if (ch == NULL || !ch->announced)
		return;
	char *text = text_in(srv, m->nparams > 2 ? m->params[2] :
	    "refused");
	char *note = xasprintf("%s refused: %s", srv->host, text);
	room_message_failed(srv->u->s, ch->room, NULL, condition, note);
	free(note);
	free(text);
}

/* The link is gone: what was written but not echoed may or may not
 * have reached the channel; the user hears it was not confirmed. */
static void
pending_lost(struct irc_server *srv)
{
	while (srv->pending != NULL) {
		char *text = xasprintf("the connection to %s was lost before "
		    "the server confirmed this message; it may not have been "
		    "sent", srv->host);
		pending_fail(srv, srv->pending, "recipient-unavailable", text);
		free(text);
	}
}

/* ---- the connection ---- */

static void server_connect(struct irc_server *srv);

static void
conn_drop(struct irc_server *srv)
{
	if (srv->conn == NULL)
		return;
	irc_conn_free(srv->conn);
	srv->conn = NULL;
	known_ref(session_component(srv->u->s), srv->host, 0);
	metrics_legacy_connection(session_component(srv->u->s)->domain, "irc",
	    -1);
}

static void
retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct irc_server *srv = arg;
	log_info("irc: %s: reconnecting to %s (attempt %u of %u)",
	    session_jid(srv->u->s), srv->host, srv->attempts, RETRY_TRIES);
	server_connect(srv);
}

/* A random factor in [1, 1.25], upward only (as component.c's): users
 * of one gateway that lost the same IRC server do not come back in
 * lockstep, and no retry comes sooner than the backoff says. */
static double
jitter(void)
{
	unsigned short r = 0;
	if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
		r = (unsigned short)(time(NULL) & 0xffff);
	return 1.0 + 0.25 * ((double)r / 65535.0);
}

static void
members_clear(struct irc_chan *ch)
{
	for (size_t i = 0; i < ch->nmembers; i++)
		member_clear(&ch->members[i]);
	free(ch->members);
	ch->members = NULL;
	ch->nmembers = 0;
	ch->cap = 0;
	ch->index_stale = 1;
}

static void
server_free(struct irc_server *srv)
{
	struct irc_chan *ch;
	while ((ch = srv->chans) != NULL) {
		srv->chans = ch->next;
		chan_free(ch);
	}
	conn_drop(srv);
	/* Logging out: the user is gone, nobody to tell. */
	while (srv->pending != NULL) {
		free(srv->pending->room);
		srv->pending->room = NULL;
		pending_unlink(srv, srv->pending);
	}
	free(srv->encoding);
	event_free(srv->retry);
	if (srv->list != NULL)
		room_list_done(srv->list, "remote-server-not-found",
		    "the connection to the IRC server ended");
	while (srv->nroutes > 0)
		route_drop(srv, &srv->routes[srv->nroutes - 1]);
	free(srv->routes);
	free(srv->nick);
	free(srv->nick_wanted);
	free(srv->join_nick);
	free(srv->reg_nick);
	free(srv->conn_nick);
	free(srv->host);
	OPENSSL_cleanse(srv->creds, sizeof(srv->creds));
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
#define JOIN_TIMEOUT 60

static void
join_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct irc_chan *ch = arg;
	struct irc_server *srv = ch->srv;
	if (ch->announced)
		return;
	log_info("irc: %s: %s did not answer the JOIN of %s",
	    session_jid(srv->u->s), srv->host, ch->name);
	room_join_failed(srv->u->s, ch->room, "remote-server-timeout",
	    "the IRC server did not answer the join");
	send_line(srv, "PART", ch->name, NULL, NULL);
	chan_remove(srv, ch);
}

static void
send_join(struct irc_server *srv, struct irc_chan *ch)
{
	/* What this JOIN brings is the topic now. */
	free(ch->topic);
	free(ch->topic_setter);
	ch->topic = ch->topic_setter = NULL;
	ch->topic_time = 0;
	if (send_line(srv, "JOIN", ch->name, ch->key, NULL) == 0) {
		if (!ch->announced) {
			struct timeval tv = { .tv_sec = JOIN_TIMEOUT };
			evtimer_add(ch->join_timer, &tv);
		}
		return;
	}
	room_join_failed(srv->u->s, ch->room, "not-acceptable", "that "
	    "channel name or password cannot be sent to IRC");
	chan_remove(srv, ch);
}

static void
on_registered(void *arg, const char *nick)
{
	struct irc_server *srv = arg;
	struct session *s = srv->u->s;
	int again = srv->ever_registered;
	srv->backoff = RETRY_MIN;
	srv->attempts = 0;
	srv->ever_registered = 1;
	srv->up = 1;
	log_info("irc: %s: %s to %s as %s", session_jid(s),
	    again ? "reconnected" : "connected", srv->host, nick);
	/* Rooms still joined from the last link know us by the old nick:
	 * the network chose another this time. */
	if (srv->nick != NULL && irc_casecmp(casemap(srv), srv->nick,
	    nick) != 0) {
		for (struct irc_chan *ch = srv->chans; ch; ch = ch->next)
			if (ch->announced)
				room_nick_forced(s, ch->room, srv->nick, nick);
	}
	free(srv->nick);
	srv->nick = xstrdup(nick);
	/* The nick asked for, not a variant the network fell back to:
	 * that is what the user chose. */
	last_nick_put(s, srv->host, srv->conn_nick);
	struct irc_chan *ch, *next;
	for (ch = srv->chans; ch != NULL; ch = next) {
		next = ch->next;
		ch->rejoining = ch->announced;
		send_join(srv, ch);
	}
	if (srv->list != NULL && !srv->list_sent) {
		srv->list_sent = 1;
		send_line(srv, "LIST", NULL, NULL, NULL);
	}
}

/* Closes every room of the server (332, or a join error for those still
 * joining) and forgets the server. */
static void
server_give_up(struct irc_server *srv, const char *why)
{
	struct session *s = srv->u->s;
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
	server_remove(srv);
}

/*
 * The connection is gone.  Joins still waiting for an answer fail.  If
 * the link was up once, joined channels stay: their rooms hear that the
 * link is down and lose their occupants but keep the user, and we
 * reconnect with backoff and rejoin them (the NAMES of the rejoin bring
 * the occupants back).  Without channels, with a server that never let
 * us in, or after RETRY_TRIES failures in a row, the rooms close (332)
 * and the server is forgotten: it reopens on the next join or message.
 */
static void
on_closed(void *arg, const char *reason)
{
	struct irc_server *srv = arg;
	struct session *s = srv->u->s;
	int was_up = srv->up;
	/* We closed it to reconnect with the user's new values: at once,
	 * keeping every channel, joined or joining. */
	int again = srv->reconnect_now;
	srv->reconnect_now = 0;
	srv->up = 0;
	log_info("irc: %s: connection to %s closed: %s", session_jid(s),
	    srv->host, reason);
	/* reason belongs to the connection: use it before freeing that.
	 * The destination policy's refusal is told as it is, nothing
	 * more (what the network answered is not the user's to learn). */
	char *why = srv->conn != NULL && irc_conn_refused(srv->conn) ?
	    xstrdup(DESTINATION_REFUSED) : xasprintf("the connection to %s "
	    "was lost: %s", srv->host, reason);
	pending_lost(srv);
	conn_drop(srv);
	if (srv->list != NULL) {
		room_list_done(srv->list, "remote-server-not-found", why);
		srv->list = NULL;
		srv->list_sent = 0;
	}
	free(srv->nick_wanted);
	srv->nick_wanted = NULL;
	if (!again && (!srv->ever_registered ||
	    srv->attempts >= RETRY_TRIES)) {
		if (srv->attempts >= RETRY_TRIES)
			log_warn("irc: %s: giving up on %s after %u attempts",
			    session_jid(s), srv->host, srv->attempts);
		server_give_up(srv, why);
		free(why);
		return;
	}
	char *status = again ? xasprintf("Reconnecting to %s with your new "
	    "settings", srv->host) : xasprintf("%s; reconnecting", why);
	struct irc_chan *ch, *next;
	for (ch = srv->chans; ch != NULL; ch = next) {
		next = ch->next;
		members_clear(ch);
		ch->joined = 0;
		if (!ch->announced && !again) {
			room_join_failed(s, ch->room, "remote-server-not-found",
			    why);
			chan_remove(srv, ch);
		} else if (was_up) {
			/* Told once per lost link, not per failed attempt. */
			room_link_lost(s, ch->room, status);
		}
	}
	free(status);
	free(why);
	if (srv->chans == NULL) {
		server_remove(srv);
		return;
	}
	double delay = again ? 0 : srv->backoff * jitter();
	struct timeval tv = {
		.tv_sec = (time_t)delay,
		.tv_usec = (suseconds_t)((delay - (double)(time_t)delay) * 1e6),
	};
	log_info("irc: %s: reconnecting to %s in %.1f s", session_jid(s),
	    srv->host, delay);
	evtimer_add(srv->retry, &tv);
	if (again)
		return;
	srv->attempts++;
	srv->backoff = srv->backoff * 2 > RETRY_MAX ? RETRY_MAX :
	    srv->backoff * 2;
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
	.written = on_written,
	.unsent = on_unsent,
};

/* The scope of the server's registration: server@gw, or the gateway
 * itself with fixed_server (session_field_scoped's NULL). */
static const char *
reg_scope(struct irc_server *srv)
{
	return fixed_server(session_component(srv->u->s)) ? NULL : srv->host;
}

/* What a connection to srv authenticates and presents with, as one
 * digest: a change of any of them needs a new connection. */
static void
creds_digest(struct irc_server *srv, unsigned char out[32])
{
	static const char *const vars[] = { "realname", "server_password",
		"sasl_user", "sasl_password" };
	struct session *s = srv->u->s;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned int len = 0;
	if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
		log_fatal("irc: SHA-256 failed");
	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
		const char *v = session_field_scoped(s, reg_scope(srv),
		    vars[i]);
		/* With the NUL: "ab","c" is not "a","bc". */
		if (v == NULL)
			v = "";
		EVP_DigestUpdate(md, v, strlen(v) + 1);
	}
	if (EVP_DigestFinal_ex(md, out, &len) != 1 || len != 32)
		log_fatal("irc: SHA-256 failed");
	EVP_MD_CTX_free(md);
}

/* The nick registered for the server, or NULL. */
static const char *
registered_nick(struct irc_server *srv)
{
	const char *n = session_field_scoped(srv->u->s, reg_scope(srv),
	    "nick");
	return n != NULL && *n != '\0' ? n : NULL;
}

static void
server_connect(struct irc_server *srv)
{
	struct session *s = srv->u->s;
	const struct config_section *sec = config_section_find(cw->config,
	    "irc-server", srv->host);
	const char *scope = reg_scope(srv);
	/*
	 * One nick per user and server: the one the rooms know (after a
	 * lost link), else the one registered for the server, else the
	 * nick of the join that opened it, else the one the user last had
	 * there (a persistent room rejoined after a restart: no join nick),
	 * else the account-wide default, else the JID's local part.
	 */
	char *last = NULL;
	const char *nick = srv->nick;
	if (nick == NULL)
		nick = registered_nick(srv);
	if (nick == NULL)
		nick = srv->join_nick;
	if (nick == NULL)
		nick = last = last_nick_get(s, srv->host);
	if (nick == NULL || *nick == '\0')
		nick = session_field(s, "nick");
	char fallback_nick[32];
	if (nick == NULL || *nick == '\0') {
		snprintf(fallback_nick, sizeof(fallback_nick), "%.*s",
		    (int)strcspn(session_jid(s), "@"), session_jid(s));
		nick = fallback_nick;
	}
	free(srv->reg_nick);
	srv->reg_nick = registered_nick(srv) ? xstrdup(registered_nick(srv)) :
	    NULL;
	creds_digest(srv, srv->creds);
	const char *realname = session_field_scoped(s, scope, "realname");
	struct component *c = session_component(s);
	struct irc_comp *ic = c->backend_data;
	char ident[11];
	ident_name(c, session_jid(s), ident);
	/* The user's own settings for the server (irc-server command),
	 * read at every connect: changes apply from the next one. */
	char *port = user_setting(s, srv->host, "port", NULL);
	char *tls = user_setting(s, srv->host, "tls", NULL);
	char *nickserv = user_nickserv(s, srv->host);
	free(srv->encoding);
	srv->encoding = user_setting(s, srv->host, "encoding", NULL);
	int plain_ok = sec != NULL && !config_bool(sec, "tls");
	struct irc_conn_config cfg = {
		.host = srv->host,
		.port = sec ? (int)config_int(sec, "port") : 6697,
		.tls = sec ? config_bool(sec, "tls") : 1,
		.verify = sec ? config_bool(sec, "verify") : 1,
		.fingerprint = sec ? config_str(sec, "fingerprint") : NULL,
		.nick = nick,
		.username = ident,
		.ident = ic != NULL && ic->identd != NULL ? ident : NULL,
		.nickserv = nickserv,
		.realname = realname && *realname ? realname : nick,
		/* Registered for this server only (scope_only): never
		 * another server's, nor an account-wide value. */
		.password = session_field_scoped(s, scope,
		    "server_password"),
		.sasl_user = session_field_scoped(s, scope, "sasl_user"),
		.sasl_password = session_field_scoped(s, scope,
		    "sasl_password"),
		.throttle_burst = sec ? (unsigned)config_int(sec,
		    "throttle_burst") : 0,
		.throttle_rate_ms = sec ? (unsigned)config_int(sec,
		    "throttle_rate") : 0,
	};
	if (port != NULL)
		cfg.port = atoi(port);
	/* The servers the operator named (fixed_server, [irc-server HOST]
	 * on its port) are trusted as they are; any other host, or another
	 * port the user chose for a named one, is the user's destination:
	 * checked by the policy, connected to where it checked. */
	cfg.user_host = fixed_server(c) == NULL && (sec == NULL ||
	    cfg.port != (int)config_int(sec, "port"));
	/* Plaintext only where the operator allows it for the server. */
	if (tls != NULL)
		cfg.tls = strcmp(tls, "no") != 0 || !plain_ok;
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
	/* Kept as the user's at 001; not the rooms' nick of a lost link,
	 * which may be a rename the network forced. */
	free(srv->conn_nick);
	srv->conn_nick = nick != srv->nick ? xstrdup(nick) : NULL;
	srv->conn = irc_conn_new(cw->base, cw->dns, &cfg, &conn_callbacks, srv);
	free(last);
	known_ref(c, srv->host, 1);
	metrics_legacy_connection(c->domain, "irc", 1);
	free(port);
	free(tls);
	if (nickserv != NULL) {
		secret_wipe(nickserv, strlen(nickserv));
		free(nickserv);
	}
}

/* Closes the link to reconnect at once with the user's new values; the
 * rooms stay joined (on_closed: a status message, the occupants leave
 * and come back with the rejoin; never 332). */
static void
server_reconnect(struct irc_server *srv)
{
	if (srv->conn == NULL)
		return;    /* between attempts: the next one reads them */
	if (!srv->up) {
		/* Still registering: start over; the joins wait for 001. */
		conn_drop(srv);
		server_connect(srv);
		return;
	}
	srv->reconnect_now = 1;
	irc_conn_quit(srv->conn, "Reconnecting with new settings");
}

/*
 * The user's registration changed (registration on server@gw or the
 * gateway, the settings command).  Per server: a new registered nick is
 * one NICK (a 303 in every room of the server); new credentials or a
 * new realname, a reconnect that keeps the rooms; anything else (an
 * unchanged submission, another server's values) nothing.
 */
static void
irc_registration_changed(struct session *s)
{
	struct irc_user *u = session_data(s);
	struct irc_server *srv, *next;
	for (srv = u ? u->servers : NULL; srv != NULL; srv = next) {
		next = srv->next;
		const char *reg = registered_nick(srv);
		if ((reg == NULL) != (srv->reg_nick == NULL) || (reg != NULL &&
		    strcmp(reg, srv->reg_nick) != 0)) {
			free(srv->reg_nick);
			srv->reg_nick = reg ? xstrdup(reg) : NULL;
			if (reg != NULL && srv->up && srv->nick != NULL &&
			    irc_casecmp(casemap(srv), reg, srv->nick) != 0 &&
			    send_line(srv, "NICK", reg, NULL, NULL) == 0) {
				log_info("irc: %s: registered nick %s for %s",
				    session_jid(s), reg, srv->host);
				free(srv->nick_wanted);
				srv->nick_wanted = xstrdup(reg);
			}
		}
		unsigned char now[32];
		creds_digest(srv, now);
		int same = CRYPTO_memcmp(now, srv->creds, sizeof(now)) == 0;
		OPENSSL_cleanse(now, sizeof(now));
		if (!same) {
			log_info("irc: %s: new credentials or realname for %s: "
			    "reconnecting", session_jid(s), srv->host);
			server_reconnect(srv);
		}
	}
}

/* The user's connection to host; with create, opened when there is
 * none, with nick (the join's; NULL: none) as the nick unless one is
 * registered for the server. */
static struct irc_server *
server_get(struct session *s, const char *host, int create,
    const char *nick)
{
	struct irc_user *u = session_data(s);
	if (u == NULL)
		return NULL;
	for (struct irc_server *srv = u->servers; srv; srv = srv->next)
		if (strcasecmp(srv->host, host) == 0)
			return srv;
	if (!create)
		return NULL;
	/* One XMPP user must not make the gateway open connections to any
	 * number of IRC servers. */
	size_t n = 0;
	for (struct irc_server *srv = u->servers; srv; srv = srv->next)
		n++;
	if (n >= SERVERS_MAX) {
		log_warn("irc: %s: already connected to %zu IRC servers; not "
		    "opening another to %s", session_jid(s), n, host);
		return NULL;
	}
	struct irc_server *srv = xcalloc(1, sizeof(*srv));
	srv->u = u;
	srv->host = xstrdup(host);
	srv->backoff = RETRY_MIN;
	srv->pending_tail = &srv->pending;
	srv->join_nick = nick != NULL && *nick != '\0' ? xstrdup(nick) : NULL;
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
		/* Ourselves only in a room that is joined already (a rejoin:
		 * our modes may differ); a new room learns our nick with
		 * room_joined(). */
		if (mem != NULL && (!is_us(srv, room_nick_str(mem->nick)) ||
		    ch->announced))
			announce_member(srv, ch, mem);
	}
	free(list);
}

/* The topic of the JOIN (none: an empty subject) to the room. */
static void
chan_subject(struct irc_server *srv, struct irc_chan *ch)
{
	room_subject_at(srv->u->s, ch->room, ch->topic ? ch->topic_setter :
	    NULL, ch->topic ? ch->topic : "", ch->topic ? ch->topic_time : 0);
}

static void
on_names_end(struct irc_server *srv, const struct irc_msg *m)
{
	if (m->nparams < 2)
		return;
	struct irc_chan *ch = chan_find(srv, m->params[1]);
	if (ch == NULL)
		return;
	event_del(ch->join_timer);
	if (ch->rejoining) {
		ch->rejoining = 0;
		char *text = xasprintf("Reconnected to %s", srv->host);
		room_message(srv->u->s, ch->room, NULL, text);
		free(text);
		/* Unchanged, the room says nothing; changed meanwhile, it is
		 * a subject change. */
		chan_subject(srv, ch);
		return;
	}
	if (ch->announced)
		return;
	ch->announced = 1;
	/* The subject first: the room sends it right after the join
	 * (an empty one when the channel has none: clients wait for it). */
	chan_subject(srv, ch);
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
	char *topic = text_in_chan(srv, ch, m->params[ci + 1]);
	if (numeric) {
		/* Part of a JOIN's answer: told with the occupants (366),
		 * with its setter and time when 333 follows. */
		free(ch->topic);
		ch->topic = topic;
		return;
	}
	/* A change as it happens: from its author, now. */
	room_subject(srv->u->s, ch->room, m->nick != NULL &&
	    nick_ok(m->nick) ? m->nick : NULL, topic);
	free(topic);
}

/* 333 me #chan setter time: who set the topic of 332, and when.  The
 * setter may be "nick!user@host" or a server's name. */
static void
on_topic_who(struct irc_server *srv, const struct irc_msg *m)
{
	if (m->nparams < 3)
		return;
	struct irc_chan *ch = chan_find(srv, m->params[1]);
	if (ch == NULL)
		return;
	char *setter = xstrndup(m->params[2], strcspn(m->params[2], "!"));
	free(ch->topic_setter);
	ch->topic_setter = NULL;
	/* A server (a dot in it) or a nick no JID can carry: the topic
	 * then comes from the room itself. */
	if (nick_ok(setter) && strchr(setter, '.') == NULL)
		ch->topic_setter = setter;
	else
		free(setter);
	char *end = NULL;
	long long t = m->nparams > 3 ? strtoll(m->params[3], &end, 10) : 0;
	ch->topic_time = end != NULL && *end == '\0' && t > 0 &&
	    t <= (long long)time(NULL) + 86400 ? (time_t)t : 0;
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
	char *reason = raw ? text_in_chan(srv, ch, raw) : NULL;
	struct irc_member *mem = member_find(srv, ch, who);
	char *nick = xstrdup(mem ? room_nick_str(mem->nick) : who);
	if (mem != NULL)
		member_remove(ch, mem);
	if (is_us(srv, who) && !ch->announced) {
		/* Put out before the join completed (a KICK right after the
		 * JOIN, a channel that parts newcomers): the join fails. */
		room_join_failed(srv->u->s, ch->room, kick ? "forbidden" :
		    "not-allowed", reason ? reason : "the IRC server took us "
		    "out of the channel while joining");
		chan_remove(srv, ch);
		free(nick);
		free(reason);
		return;
	}
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
		char *nick = xstrdup(room_nick_str(mem->nick));
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
	if (m->nick == NULL || m->nparams < 1 || m->params[0][0] == '\0')
		return;
	const char *new = m->params[0];
	/* irc_conn follows our own renames before we see them: compare
	 * with the nick the rooms know. */
	enum irc_casemapping cm = casemap(srv);
	int self = srv->nick != NULL && irc_casecmp(cm, m->nick,
	    srv->nick) == 0;
	/* A rename we did not ask for (SVSNICK, a services enforcer), or
	 * to another nick than asked: XEP-0045 status 210. */
	int forced = self && (srv->nick_wanted == NULL ||
	    irc_casecmp(cm, new, srv->nick_wanted) != 0);
	for (struct irc_chan *ch = srv->chans; ch != NULL; ch = ch->next) {
		struct irc_member *mem = member_find(srv, ch, m->nick);
		if (mem == NULL && !(self && ch->announced))
			continue;
		char *old = xstrdup(mem ? room_nick_str(mem->nick) :
		    srv->nick);
		if (mem != NULL) {
			member_clear(mem);
			mem->nick = room_nick_intern(new);
			mem->folded = fold_intern(srv, new);
			ch->index_stale = 1;
		}
		if (forced)
			room_nick_forced(srv->u->s, ch->room, old, new);
		else
			room_nick_changed(srv->u->s, ch->room, old, new);
		free(old);
	}
	if (self) {
		if (forced)
			log_info("irc: %s: %s renamed us %s (asked: %s)",
			    session_jid(srv->u->s), srv->host, new,
			    srv->nick_wanted ? srv->nick_wanted : "nothing");
		free(srv->nick);
		srv->nick = xstrdup(new);
		free(srv->nick_wanted);
		srv->nick_wanted = NULL;
		if (!forced)
			last_nick_put(srv->u->s, srv->host, new);
		return;
	}
	/* Private messages through a room follow the person. */
	struct pm_route *r = route_find(srv, m->nick);
	if (r != NULL) {
		free(r->folded);
		r->folded = fold(srv, new);
	}
}

/* 432/433/436 after registration: the NICK we sent for the user was
 * refused.  Rooms where the user asked for it get a presence error (the
 * room layer knows which); the nick stays. */
static void
on_nick_error(struct irc_server *srv, const struct irc_msg *m,
    const char *condition)
{
	if (srv->nick_wanted == NULL)
		return;
	char *text = text_in(srv, m->nparams > 0 ? m->params[m->nparams - 1] :
	    "the IRC server refused the nick");
	log_info("irc: %s: %s refused the nick %s: %s %s",
	    session_jid(srv->u->s), srv->host, srv->nick_wanted, m->command,
	    text);
	free(srv->nick_wanted);
	srv->nick_wanted = NULL;
	for (struct irc_chan *ch = srv->chans; ch != NULL; ch = ch->next)
		if (ch->announced)
			room_nick_change_failed(srv->u->s, ch->room, condition,
			    text);
	free(text);
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
		if (!is_us(srv, room_nick_str(mem->nick)) || ch->announced)
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
	/* Answer only when nothing of the user's waits: a flood of CTCP
	 * requests must never queue up ahead of the user's own lines. */
	if (reply != NULL && srv->conn != NULL && irc_conn_queued(srv->conn) == 0)
		send_line(srv, "NOTICE", nick, reply, NULL);
	free(reply);
}

static void
on_privmsg(struct irc_server *srv, const struct irc_msg *m, int notice)
{
	if (m->nparams < 2 || m->nick == NULL)
		return;
	struct session *s = srv->u->s;
	const char *target = m->params[0];
	const struct irc_isupport *is = irc_conn_isupport(srv->conn);
	/* STATUSMSG ("@#chan": to the channel's operators) is shown in
	 * the channel, but as the room's notice: it is not the channel's
	 * conversation and must not be archived as such. */
	const char *status_to = NULL;
	while (target[0] != '\0' && strchr(is->prefix_chars, target[0]) &&
	    target[1] != '\0' && strchr(is->chantypes, target[1])) {
		status_to = m->params[0];
		target++;
	}
	int to_chan = target[0] != '\0' && strchr(is->chantypes,
	    target[0]) != NULL;
	/* The channel first: its text is read in its own charset. */
	struct irc_chan *tch = to_chan ? chan_find(srv, target) : NULL;

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
		char *body = text_in_chan(srv, tch, args);
		text = xasprintf("/me %s", body);
		free(body);
	} else {
		text = text_in_chan(srv, tch, m->params[1]);
	}
	free(command);
	free(args);

	time_t stamp = message_time(m);
	if (to_chan) {
		struct irc_chan *ch = tch;
		/* Our own lines come back with echo-message: each one that
		 * does brings its message closer to being reflected. */
		if (ch != NULL && is_us(srv, m->nick) && status_to == NULL &&
		    !notice)
			pending_echo(srv, target);
		else if (ch != NULL && !is_us(srv, m->nick) &&
		    nick_ok(m->nick) && status_to != NULL) {
			/* A room notice (nick NULL) is never archived. */
			char *note = xasprintf("%s (to %s only): %s", m->nick,
			    status_to, text);
			room_message_at(s, ch->room, NULL, note, stamp);
			free(note);
		} else if (ch != NULL && !is_us(srv, m->nick) &&
		    nick_ok(m->nick))
			room_message_at(s, ch->room, m->nick, text, stamp);
	} else if (!is_us(srv, m->nick) && strchr(m->nick, '.') == NULL) {
		/* Answers come where the user wrote from: the room's occupant
		 * JID if that is where the conversation started. */
		struct pm_route *r = route_find(srv, m->nick);
		struct irc_chan *ch = NULL;
		for (ch = srv->chans; r != NULL && ch != NULL; ch = ch->next)
			if (ch->announced && strcasecmp(ch->room, r->room) == 0)
				break;
		if (r != NULL && ch != NULL) {
			room_private_message_at(s, ch->room, m->nick, text,
			    stamp);
		} else {
			char *from = nick_address(srv, m->nick);
			if (from != NULL)
				session_deliver_message_at(s, from, text, stamp);
			free(from);
		}
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
	{ "470", "redirect" },               /* forwarded to another channel */
	{ "437", "resource-constraint" },    /* temporarily unavailable */
	{ "476", "jid-malformed" },          /* bad channel mask */
	{ "480", "not-allowed" },            /* cannot join (TLS only...) */
	{ "489", "not-allowed" },            /* secure-only channel */
	{ "520", "not-allowed" },            /* oper-only channel */
};

static void
on_join_error(struct irc_server *srv, const struct irc_msg *m,
    const char *condition)
{
	if (m->nparams < 2)
		return;
	struct irc_chan *ch = chan_find(srv, m->params[1]);
	if (ch != NULL && ch->announced && !ch->rejoining) {
		/* Not about a join: something else the user asked in the
		 * channel (437: a topic changed too often). */
		on_refused(srv, m, condition);
		return;
	}
	if (ch == NULL)
		return;
	char *text = text_in(srv, m->nparams > 2 ? m->params[2] :
	    "the IRC server refused the join");
	/* A rejoin after a lost link can be refused too (banned or a new
	 * key meanwhile): the user is out of that room then. */
	if (ch->announced) {
		char *why = xasprintf("%s refused to rejoin %s: %s", srv->host,
		    ch->name, text);
		room_closed(srv->u->s, ch->room, why);
		free(why);
	} else {
		room_join_failed(srv->u->s, ch->room, condition, text);
	}
	free(text);
	chan_remove(srv, ch);
}

/* 322 me #chan users :topic, one per channel, then 323. */
static void
on_list_item(struct irc_server *srv, const struct irc_msg *m)
{
	if (srv->list == NULL || m->nparams < 3)
		return;
	struct component *c = session_component(srv->u->s);
	struct irc_addr a = { .kind = IRC_ADDR_CHANNEL,
	    .name = m->params[1], .server = srv->host };
	char *room = irc_addr_local(&a, fixed_server(c));
	struct irc_addr back;
	/* Only names that are rooms here (and so joinable) are listed. */
	if (room != NULL && parse_addr(c, room, &back) == 0) {
		if (back.kind == IRC_ADDR_CHANNEL) {
			char *topic = m->nparams > 3 && *m->params[3] ?
			    text_in(srv, m->params[3]) : NULL;
			char *name = topic ? xasprintf("%s: %s", m->params[1],
			    topic) : NULL;
			room_list_add(srv->list, room, name,
			    strtol(m->params[2], NULL, 10));
			free(name);
			free(topic);
		}
		irc_addr_clear(&back);
	}
	free(room);
}

static void
on_list_end(struct irc_server *srv)
{
	if (srv->list == NULL)
		return;
	room_list_done(srv->list, NULL, NULL);
	srv->list = NULL;
	srv->list_sent = 0;
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
	else if (strcmp(cmd, "333") == 0)
		on_topic_who(srv, m);
	else if (strcmp(cmd, "353") == 0)
		on_names(srv, m);
	else if (strcmp(cmd, "322") == 0)
		on_list_item(srv, m);
	else if (strcmp(cmd, "323") == 0)
		on_list_end(srv);
	else if ((strcmp(cmd, "263") == 0 || strcmp(cmd, "481") == 0) &&
	    srv->list != NULL && srv->list_sent) {
		/* LIST refused (rate-limited, or opers only). */
		room_list_done(srv->list, "resource-constraint",
		    "the IRC server refused to list its channels now");
		srv->list = NULL;
		srv->list_sent = 0;
	}
	else if (strcmp(cmd, "366") == 0)
		on_names_end(srv, m);
	else if (strcmp(cmd, "404") == 0)
		on_cannot_send(srv, m);
	else if (strcmp(cmd, "482") == 0)
		on_refused(srv, m, "forbidden");
	else if (strcmp(cmd, "005") == 0) {
		/* Addresses typed from XMPP are read with these. */
		struct known_server *k = known_find(session_component(
		    srv->u->s), srv->host);
		if (k != NULL && srv->conn != NULL)
			snprintf(k->chantypes, sizeof(k->chantypes), "%s",
			    irc_conn_isupport(srv->conn)->chantypes);
	}
	else if (strcmp(cmd, "433") == 0 || strcmp(cmd, "436") == 0)
		on_nick_error(srv, m, "conflict");
	else if (strcmp(cmd, "432") == 0)
		on_nick_error(srv, m, "not-acceptable");
	else if (strcmp(cmd, "438") == 0)    /* nick changes too fast */
		on_nick_error(srv, m, "resource-constraint");
	else if (strcmp(cmd, "447") == 0)    /* +N: no nick changes here */
		on_nick_error(srv, m, "not-allowed");
	else {
		for (size_t i = 0; i < sizeof(join_errors) /
		    sizeof(join_errors[0]); i++)
			if (strcmp(cmd, join_errors[i].numeric) == 0)
				on_join_error(srv, m, join_errors[i].condition);
	}
}

/* ---- from XMPP ---- */

/* 1 when legacy parses as an address of that kind (and, with allowed,
 * on a server the operator allows). */
static int
addr_is(struct component *c, const char *legacy, enum irc_addr_kind kind,
    int allowed)
{
	struct irc_addr a;
	if (parse_addr(c, legacy, &a) != 0)
		return 0;
	int ok = a.kind == kind && (!allowed || server_allowed(c, a.server));
	irc_addr_clear(&a);
	return ok;
}

static int
irc_is_room(struct component *c, const char *legacy)
{
	return addr_is(c, legacy, IRC_ADDR_CHANNEL, 0);
}

static int
irc_valid_address(struct component *c, const char *legacy)
{
	return addr_is(c, legacy, IRC_ADDR_NICK, 1);
}

/* "irc.example.org@irc.gw": users register a nick and an account per
 * IRC network there. */
static int
irc_register_scope(struct component *c, const char *legacy)
{
	return addr_is(c, legacy, IRC_ADDR_SERVER, 1);
}

static void
irc_list_rooms(struct session *s, const char *scope, struct room_list *l)
{
	struct component *c = session_component(s);
	struct irc_addr a;
	if (parse_addr(c, scope, &a) != 0) {
		room_list_done(l, "item-not-found", "not an IRC server here");
		return;
	}
	if (a.kind != IRC_ADDR_SERVER || !server_allowed(c, a.server)) {
		irc_addr_clear(&a);
		room_list_done(l, "item-not-found", "not an IRC server here");
		return;
	}
	struct irc_server *srv = server_get(s, a.server, 1, NULL);
	irc_addr_clear(&a);
	if (srv == NULL) {
		room_list_done(l, "resource-constraint", "too many IRC "
		    "servers at once");
		return;
	}
	if (srv->list != NULL) {
		room_list_done(l, "resource-constraint", "a list of this "
		    "server's channels is already on its way");
		return;
	}
	srv->list = l;
	srv->list_sent = 0;
	if (srv->up) {
		srv->list_sent = 1;
		send_line(srv, "LIST", NULL, NULL, NULL);
	}
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
	/* The first join's nick is the user's on that server; a join with
	 * another nick later gets the current one (room_joined: 210). */
	struct irc_server *srv = server_get(s, a.server, 1, nick);
	if (srv == NULL) {
		room_join_failed(s, room, "resource-constraint", "you are "
		    "connected to too many IRC servers at once");
		irc_addr_clear(&a);
		return;
	}
	struct irc_chan *ch = chan_find(srv, a.name);
	if (ch == NULL) {
		ch = xcalloc(1, sizeof(*ch));
		ch->srv = srv;
		ch->join_timer = evtimer_new(cw->base, join_timeout_cb, ch);
		if (ch->join_timer == NULL)
			log_fatal("irc: cannot create a timer");
		ch->room = xstrdup(room);
		ch->name = xstrdup(a.name);
		ch->folded = fold(srv, a.name);
		ch->key = password && *password ? xstrdup(password) : NULL;
		/* At the end: JOINs waiting for the link go out in the order
		 * the user asked for them. */
		struct irc_chan **tail = &srv->chans;
		while (*tail != NULL)
			tail = &(*tail)->next;
		*tail = ch;
		if (srv->conn != NULL && irc_conn_is_registered(srv->conn))
			send_join(srv, ch);
	}
	irc_addr_clear(&a);
}

static struct irc_chan *
chan_of_room(struct session *s, const char *room, struct irc_server **out)
{
	struct irc_addr a;
	if (parse_addr(session_component(s), room, &a) != 0)
		return NULL;
	struct irc_server *srv = server_get(s, a.server, 0, NULL);
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
	/* JOINs go out once the link is registered: a channel left before
	 * that was never joined on this link, and needs no PART.  A reason
	 * IRC cannot carry (several lines) must not keep us in the channel:
	 * leave without it. */
	if (srv->conn != NULL && irc_conn_is_registered(srv->conn) &&
	    send_line(srv, "PART", ch->name, reason, NULL) != 0)
		send_line(srv, "PART", ch->name, NULL, NULL);
	chan_remove(srv, ch);
	/* Reconnecting only for rooms the user is in: with the last one
	 * gone, stop trying. */
	if (srv->chans == NULL && (srv->conn == NULL ||
	    !irc_conn_is_registered(srv->conn)) && srv->ever_registered) {
		log_info("irc: %s: no channel left on %s; not reconnecting",
		    session_jid(s), srv->host);
		server_remove(srv);
	}
}

static int
not_connected(struct backend_error *err)
{
	err->condition = "recipient-unavailable";
	snprintf(err->text, sizeof(err->text), "not in that channel");
	return -1;
}

/* The link is down (reconnecting): say so rather than fail oddly. */
static int
link_down(struct irc_server *srv, struct backend_error *err)
{
	if (srv->conn != NULL && irc_conn_is_registered(srv->conn))
		return 0;
	err->condition = "recipient-unavailable";
	snprintf(err->text, sizeof(err->text), "not connected to %s at the "
	    "moment; reconnecting", srv->host);
	return -1;
}

/* A line IRC could not carry (CR/LF, a misplaced colon, a full
 * queue): refused, saying what it was. */
static int
cannot_send(struct backend_error *err, const char *what)
{
	err->condition = "not-acceptable";
	snprintf(err->text, sizeof(err->text), "%s cannot be sent to IRC",
	    what);
	return -1;
}

static int
send_tagged(struct irc_server *srv, unsigned long tag, const char *target,
    const char *text)
{
	const char *params[] = { target, text, NULL };
	if (srv->conn == NULL)
		return -1;
	return irc_conn_send_tagged(srv->conn, tag, "PRIVMSG", params);
}

/* Sends one line of text as PRIVMSGs (CTCP ACTIONs for "/me "), each
 * tagged with p's tag; p->lines counts them. */
static int
send_line_text(struct irc_server *srv, const char *target, const char *line,
    struct irc_pending *p)
{
	/* ":nick!user@host PRIVMSG target :" as the server relays it:
	 * leave room for the longest prefix it may add. */
	size_t overhead = 1 + 64 + 1 + 16 + 1 + 64 + 9 + strlen(target) + 2;
	int action = strncmp(line, "/me ", 4) == 0;
	if (action) {
		/* Each piece becomes "\x01ACTION piece\x01": 9 bytes more. */
		line += 4;
		overhead += 9;
	}
	char **pieces;
	size_t n = irc_split(line, overhead, &pieces);
	int r = 0;
	for (size_t i = 0; i < n && r == 0; i++) {
		if (!action) {
			r = send_tagged(srv, p->tag, target, pieces[i]);
		} else {
			char *ctcp = irc_ctcp_build("ACTION", pieces[i]);
			r = ctcp ? send_tagged(srv, p->tag, target, ctcp) : -1;
			free(ctcp);
		}
		if (r == 0)
			p->lines++;
	}
	irc_split_free(pieces);
	return r;
}

/* Sends text line by line (each line's "/me " is its own, as the room
 * layer sends a groupchat's lines), all tagged with p's tag. */
static int
send_text(struct irc_server *srv, const char *target, const char *body,
    struct irc_pending *p, struct backend_error *err)
{
	char *copy = xstrdup(body);
	char *save = NULL;
	int r = 0;
	for (char *line = strtok_r(copy, "\n", &save); line != NULL &&
	    r == 0; line = strtok_r(NULL, "\n", &save))
		r = send_line_text(srv, target, line, p);
	free(copy);
	if (r == 0 && p->lines > 0)
		return 0;
	return cannot_send(err, "the message");
}

static int
irc_send_groupchat(struct session *s, const char *room, const char *id,
    const char *body, struct backend_error *err)
{
	struct irc_server *srv;
	struct irc_chan *ch = chan_of_room(s, room, &srv);
	if (ch == NULL || !ch->announced)
		return not_connected(err);
	if (link_down(srv, err) != 0)
		return -1;
	/* Reflected when written (or echoed): on_written, pending_echo. */
	struct irc_pending *p = pending_new(srv, ch->name, id, body);
	p->room = xstrdup(room);
	if (send_text(srv, ch->name, body, p, err) != 0) {
		pending_unlink(srv, p);
		return -1;
	}
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
	if (link_down(srv, err) != 0)
		return -1;
	struct irc_pending *p = pending_new(srv, nick, NULL, body);
	p->pm_room = xstrdup(ch->room);
	if (send_text(srv, nick, body, p, err) != 0) {
		pending_unlink(srv, p);
		return -1;
	}
	route_set(srv, nick, ch->room);
	return 0;
}

static int
irc_send_message(struct session *s, const char *legacy,
    const struct outgoing_message *m, struct backend_error *err)
{
	const char *body = m->body;
	struct irc_addr a;
	if (parse_addr(session_component(s), legacy, &a) != 0 ||
	    a.kind != IRC_ADDR_NICK) {
		err->condition = "jid-malformed";
		snprintf(err->text, sizeof(err->text), "not an IRC nick");
		return -1;
	}
	struct irc_server *srv = server_get(s, a.server, 1, NULL);
	/* Between reconnects there is no connection to queue on. */
	if (srv == NULL) {
		err->condition = "resource-constraint";
		snprintf(err->text, sizeof(err->text), "you are connected to "
		    "too many IRC servers at once");
	}
	int r = srv == NULL ? -1 : srv->conn == NULL ? link_down(srv, err) :
	    0;
	if (r == 0) {
		struct irc_pending *p = pending_new(srv, a.name, m->id, body);
		p->legacy = xstrdup(legacy);
		r = send_text(srv, a.name, body, p, err);
		if (r != 0)
			pending_unlink(srv, p);
	}
	if (r == 0) {
		/* Answers come back to nick%server now. */
		struct pm_route *route = route_find(srv, a.name);
		if (route != NULL)
			route_drop(srv, route);
	}
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
	/* A topic is one line: a subject of several lines becomes one,
	 * its lines joined by spaces. */
	char *line = xstrdup(subject);
	size_t n = 0;
	for (const char *p = subject; *p != '\0'; p++) {
		if (*p == '\r')
			continue;
		line[n++] = *p == '\n' ? ' ' : *p;
	}
	line[n] = '\0';
	int r = send_line(srv, "TOPIC", ch->name, line, NULL);
	free(line);
	return r != 0 ? cannot_send(err, "that topic") : 0;
}

static int
irc_change_nick(struct session *s, const char *room, const char *nick,
    struct backend_error *err)
{
	struct irc_server *srv;
	struct irc_chan *ch = chan_of_room(s, room, &srv);
	if (ch == NULL)
		return not_connected(err);
	if (link_down(srv, err) != 0)
		return -1;
	/* IRC nicks are per server: the NICK that comes back renames us in
	 * every room of that server (on_nick); a 432/433/436 refuses it
	 * (on_nick_error). */
	if (send_line(srv, "NICK", nick, NULL, NULL) != 0) {
		err->condition = "not-acceptable";
		snprintf(err->text, sizeof(err->text), "not a valid IRC nick");
		return -1;
	}
	free(srv->nick_wanted);
	srv->nick_wanted = xstrdup(nick);
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
	if (send_line(srv, "KICK", ch->name, nick, reason) != 0)
		return cannot_send(err, "that kick");
	return 0;
}

/* The nick!*@* mask a ban on nick puts on the channel. */
static char *
ban_mask(const char *nick)
{
	return xasprintf("%s!*@*", nick);
}

/* MODE ch modes with the same nick as every argument. */
static int
send_modes(struct irc_server *srv, struct irc_chan *ch, const char *modes,
    const char *nick, struct backend_error *err)
{
	const char *params[8] = { ch->name, modes };
	size_t n = 2;
	for (const char *p = modes; *p != '\0' && n < 7; p++)
		if (*p != '+' && *p != '-')
			params[n++] = nick;
	params[n] = NULL;
	if (irc_conn_send(srv->conn, "MODE", params) != 0)
		return cannot_send(err, "that mode change");
	return 0;
}

/* Appends "-x" to modes for each rank prefix above keep (a mode letter,
 * or 0: all) that the member holds: giving voice to an operator also
 * takes the op away, as in XEP-0045 where a role replaces the last. */
static void
drop_ranks(struct irc_server *srv, const struct irc_member *mem, char keep,
    char *modes, size_t len)
{
	const struct irc_isupport *is = irc_conn_isupport(srv->conn);
	const char *above = keep == 'v' ? "hoaq" : keep == 'h' ? "oaq" :
	    keep == 'o' ? "aq" : keep == 'q' ? "" : "vhoaq";
	for (const char *m = is->prefix_modes; mem != NULL && *m != '\0' &&
	    (size_t)(m - is->prefix_modes) < strlen(is->prefix_chars); m++) {
		char prefix = is->prefix_chars[m - is->prefix_modes];
		if (strchr(above, *m) == NULL || strchr(mem->prefixes,
		    prefix) == NULL)
			continue;
		size_t n = strlen(modes);
		if (n + 3 > len)
			break;
		modes[n] = '-';
		modes[n + 1] = *m;
		modes[n + 2] = '\0';
	}
}

/* The mode letter the server has for a rank (a PREFIX mode), or 0. */
static char
rank_mode(struct irc_server *srv, char mode)
{
	const struct irc_isupport *is = irc_conn_isupport(srv->conn);
	return strchr(is->prefix_modes, mode) != NULL ? mode : 0;
}

/* The channel of a muc#admin change, joined with the link up, and the
 * member it names (NULL: not in the channel).  0, or -1 with err. */
static int
admin_target(struct session *s, const char *room, const char *nick,
    struct irc_server **srv, struct irc_chan **ch, struct irc_member **mem,
    struct backend_error *err)
{
	*ch = chan_of_room(s, room, srv);
	if (*ch == NULL || !(*ch)->announced)
		return not_connected(err);
	if (link_down(*srv, err) != 0)
		return -1;
	*mem = member_find(*srv, *ch, nick);
	return 0;
}

/* muc#admin roles: visitor takes voice away (-v), participant gives it
 * (+v), moderator makes an operator (+o). */
static int
irc_set_role(struct session *s, const char *room, const char *nick,
    const char *role, const char *reason, struct backend_error *err)
{
	struct irc_server *srv;
	struct irc_chan *ch;
	struct irc_member *mem;
	if (admin_target(s, room, nick, &srv, &ch, &mem, err) != 0)
		return -1;
	char modes[32];
	if (strcmp(role, "visitor") == 0) {
		/* No voice, and no rank above it either. */
		modes[0] = '\0';
		drop_ranks(srv, mem, 0, modes, sizeof(modes));
		if (strstr(modes, "-v") == NULL)
			strcat(modes, "-v");
	} else if (strcmp(role, "participant") == 0) {
		snprintf(modes, sizeof(modes), "+v");
		drop_ranks(srv, mem, 'v', modes, sizeof(modes));
	} else {
		snprintf(modes, sizeof(modes), "+o");
	}
	(void)reason;   /* MODE carries none */
	return send_modes(srv, ch, modes, nick, err);
}

/* muc#admin affiliations: outcast bans nick!*@* and kicks the nick out
 * (XEP-0045 9.1: a banned occupant leaves), none lifts that ban, or
 * takes the ranks of an occupant away; member, admin, owner are voice,
 * operator and founder (where the server has it). */
static int
irc_set_affiliation(struct session *s, const char *room, const char *nick,
    const char *affiliation, const char *reason, struct backend_error *err)
{
	struct irc_server *srv;
	struct irc_chan *ch;
	struct irc_member *mem;
	if (admin_target(s, room, nick, &srv, &ch, &mem, err) != 0)
		return -1;
	char modes[32] = "";
	if (strcmp(affiliation, "outcast") == 0 ||
	    (strcmp(affiliation, "none") == 0 && mem == NULL)) {
		char *mask = ban_mask(nick);
		const char *params[] = { ch->name, affiliation[0] == 'o' ?
		    "+b" : "-b", mask, NULL };
		int r = irc_conn_send(srv->conn, "MODE", params);
		free(mask);
		if (r == 0 && affiliation[0] == 'o' && mem != NULL)
			r = send_line(srv, "KICK", ch->name, nick, reason &&
			    *reason ? reason : "banned");
		return r != 0 ? cannot_send(err, "that ban") : 0;
	}
	char rank = strcmp(affiliation, "member") == 0 ? 'v' :
	    strcmp(affiliation, "admin") == 0 ? 'o' :
	    strcmp(affiliation, "owner") == 0 ? rank_mode(srv, 'q') : 0;
	if (rank == 0 && strcmp(affiliation, "none") != 0) {
		err->condition = "not-allowed";
		snprintf(err->text, sizeof(err->text), "%s has no channel "
		    "owners", srv->host);
		return -1;
	}
	if (rank != 0)
		snprintf(modes, sizeof(modes), "+%c", rank);
	drop_ranks(srv, mem, rank, modes, sizeof(modes));
	if (modes[0] == '\0')
		return 0;   /* nothing to take away */
	(void)reason;
	return send_modes(srv, ch, modes, nick, err);
}

/* "#test on irc.libera.chat" for a room, "bot" for bot%irc.libera.chat:
 * what a person reads in a room list or a roster. */
static int
irc_display_name(struct component *c, const char *legacy, char *buf,
    size_t len)
{
	struct irc_addr a;
	if (parse_addr(c, legacy, &a) != 0)
		return 0;
	int r = 1;
	if (a.kind == IRC_ADDR_CHANNEL)
		snprintf(buf, len, "%s on %s", a.name, a.server);
	else if (a.kind == IRC_ADDR_NICK)
		snprintf(buf, len, "%s", a.name);
	else
		r = 0;
	irc_addr_clear(&a);
	return r;
}

/* nick%server of a member of room, or NULL when the nick cannot be an
 * address. */
static char *
irc_occupant_address(struct component *c, const char *room,
    const char *nick)
{
	struct irc_addr a;
	if (parse_addr(c, room, &a) != 0)
		return NULL;
	char *local = nick_local(c, a.server, nick);
	irc_addr_clear(&a);
	return local;
}

/* ---- the component: identd, ident salt ---- */

/* Components whose identd is on (the listener is the process's). */
static unsigned identd_users;

/* Starts, moves or stops the identd as the section says now. */
static int
identd_apply(struct component *c, struct irc_comp *ic)
{
	const char *addr = config_str(c->section, "identd");
	if (addr != NULL && *addr == '\0')
		addr = NULL;
	if (addr != NULL && ic->identd != NULL && strcmp(addr,
	    ic->identd) == 0)
		return 0;
	if (addr != NULL) {
		if (identd_listen(cw->base, addr) != 0)
			return -1;
		if (ic->identd == NULL)
			identd_users++;
		else if (identd_users > 1)
			log_warn("%s: one identd serves every IRC component; it "
			    "moves to %s", c->domain, addr);
		free(ic->identd);
		ic->identd = xstrdup(addr);
	} else if (ic->identd != NULL) {
		free(ic->identd);
		ic->identd = NULL;
		if (--identd_users == 0)
			identd_stop();
	}
	return 0;
}

/* The salt of ident names: random once, then kept in the store so the
 * names stay the same across restarts. */
static void
salt_load(struct component *c, struct irc_comp *ic)
{
	char *v = NULL;
	size_t len = 0;
	if (store_state_get(cw->store, c->domain, "", SALT_KEY, &v,
	    &len) == 1 && len == sizeof(ic->salt)) {
		memcpy(ic->salt, v, sizeof(ic->salt));
		free(v);
		return;
	}
	free(v);
	if (RAND_bytes(ic->salt, sizeof(ic->salt)) != 1)
		log_fatal("irc: no random bytes for the ident salt");
	if (store_state_set(cw->store, c->domain, "", SALT_KEY, ic->salt,
	    sizeof(ic->salt)) != 0)
		log_warn("%s: cannot store the ident salt: ident names change "
		    "at the next start", c->domain);
}

static int
irc_init(struct component *c)
{
	struct irc_comp *ic = xcalloc(1, sizeof(*ic));
	c->backend_data = ic;
	salt_load(c, ic);
	return identd_apply(c, ic);
}

static void
irc_reload(struct component *c)
{
	struct irc_comp *ic = c->backend_data;
	if (ic != NULL && identd_apply(c, ic) != 0)
		log_error("%s: the identd stays %s%s", c->domain,
		    ic->identd ? "on " : "off", ic->identd ? ic->identd : "");
}

static void
irc_shutdown(struct component *c)
{
	struct irc_comp *ic = c->backend_data;
	if (ic == NULL)
		return;
	if (ic->identd != NULL && --identd_users == 0)
		identd_stop();
	free(ic->identd);
	/* Sessions ended before this (their connections let go of the
	 * known servers); anything left is freed all the same. */
	while (ic->known != NULL) {
		struct known_server *k = ic->known;
		ic->known = k->next;
		free(k->host);
		free(k);
	}
	OPENSSL_cleanse(ic->salt, sizeof(ic->salt));
	free(ic);
	c->backend_data = NULL;
}

/* ---- ad-hoc commands: the user's settings per server and channel ---- */

static const char *const tls_options[] = { "", "yes", "no", NULL };
static const char *const persistent_options[] = { "", "yes", "no", NULL };

static const struct form_field_spec server_cmd_fields[] = {
	{ .var = "server", .type = FIELD_TEXT_SINGLE, .label = "IRC server",
	  .desc = "e.g. irc.libera.chat", .required = 1, .max_len = 253 },
	{ .var = "port", .type = FIELD_TEXT_SINGLE, .label = "Port",
	  .desc = "empty: unchanged; -: the gateway's", .max_len = 5 },
	{ .var = "tls", .type = FIELD_LIST_SINGLE, .label = "TLS",
	  .desc = "empty: unchanged; no only where the gateway allows "
	  "plaintext", .options = tls_options },
	{ .var = "encoding", .type = FIELD_TEXT_SINGLE,
	  .label = "Charset of messages that are not UTF-8",
	  .desc = "e.g. ISO-8859-15; empty: unchanged; -: the gateway's",
	  .max_len = 64 },
	{ .var = "nickserv", .type = FIELD_TEXT_PRIVATE,
	  .label = "NickServ identify line",
	  .desc = "sent to NickServ after connecting when SASL did not log "
	  "you in, e.g. IDENTIFY account password; empty: unchanged; -: "
	  "none", .max_len = 400, .secret = 1 },
};

static const struct form_field_spec channel_cmd_fields[] = {
	{ .var = "channel", .type = FIELD_TEXT_SINGLE, .label = "Channel",
	  .desc = "as in its room address, e.g. #chan%irc.libera.chat",
	  .required = 1, .max_len = 512 },
	{ .var = "encoding", .type = FIELD_TEXT_SINGLE,
	  .label = "Charset of messages that are not UTF-8",
	  .desc = "e.g. ISO-8859-15; empty: unchanged; -: the server's",
	  .max_len = 64 },
	{ .var = "persistent", .type = FIELD_LIST_SINGLE,
	  .label = "Stay in the channel while I am away (archive it)",
	  .desc = "empty: unchanged", .options = persistent_options },
};

static int
charset_ok(const char *charset)
{
	/* irc_to_utf8 refuses names outside this set; iconv must know it. */
	if (strspn(charset, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789._:()+-") != strlen(charset))
		return 0;
	iconv_t cd = iconv_open("UTF-8", charset);
	if (cd == (iconv_t)-1)
		return 0;
	iconv_close(cd);
	return 1;
}

/* "" and NULL leave a setting as it is; "-" removes it. */
static int
setting_put(struct component *c, const char *user, const char *host,
    const char *name, const void *value, size_t len)
{
	char *key = xasprintf(SETTING_PREFIX "%s/%s", host, name);
	int r = value == NULL ? (store_state_remove(cw->store, c->domain,
	    user, key) < 0 ? -1 : 0) : store_state_set(cw->store, c->domain,
	    user, key, value, len);
	free(key);
	return r;
}

static int
irc_cmd_server(struct component *c, const char *user, const struct form *in,
    char **note)
{
	struct irc_addr a;
	const char *host = form_value(in, "server");
	const char *port = form_value(in, "port");
	const char *tls = form_value(in, "tls");
	const char *enc = form_value(in, "encoding");
	const char *ns = form_value(in, "nickserv");
	char *lhost = NULL;
	if (fixed_server(c) != NULL && strcasecmp(host, fixed_server(c)) == 0) {
		lhost = xstrdup(fixed_server(c));
		for (char *p = lhost; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
	} else if (fixed_server(c) == NULL && parse_addr(c, host, &a) == 0) {
		if (a.kind == IRC_ADDR_SERVER)
			lhost = xstrdup(a.server);
		irc_addr_clear(&a);
	}
	if (lhost == NULL || !server_allowed(c, lhost)) {
		*note = xstrdup("That is not an IRC server this gateway "
		    "connects to.");
		free(lhost);
		return -1;
	}
	const struct config_section *sec = config_section_find(cw->config,
	    "irc-server", lhost);
	const char *why = NULL;
	char *end = NULL;
	long pv = port && *port && strcmp(port, "-") != 0 ?
	    strtol(port, &end, 10) : 0;
	if (end != NULL && (*end != '\0' || pv < 1 || pv > 65535))
		why = "The port is a number from 1 to 65535.";
	else if (tls != NULL && strcmp(tls, "no") == 0 && (sec == NULL ||
	    config_bool(sec, "tls")))
		why = "This gateway connects to that server with TLS only.";
	else if (enc != NULL && *enc != '\0' && strcmp(enc, "-") != 0 &&
	    !charset_ok(enc))
		why = "This gateway does not know that charset.";
	else if (ns != NULL && strpbrk(ns, "\r\n") != NULL)
		why = "The NickServ line must be one line.";
	if (why != NULL) {
		*note = xstrdup(why);
		free(lhost);
		return -1;
	}
	int failed = 0;
#define PUT(name, v) do { \
		if ((v) != NULL && *(v) != '\0') \
			failed |= setting_put(c, user, lhost, name, \
			    strcmp((v), "-") == 0 ? NULL : (v), strlen(v)); \
	} while (0)
	PUT("port", port);
	PUT("tls", tls);
	PUT("encoding", enc);
#undef PUT
	if (ns != NULL && *ns != '\0' && strcmp(ns, "-") == 0) {
		failed |= setting_put(c, user, lhost, "nickserv", NULL, 0);
	} else if (ns != NULL && *ns != '\0') {
		char *ad = session_secret_ad(c->domain, user);
		size_t len;
		unsigned char *sealed = secret_seal(cw->key, ad,
		    (const unsigned char *)ns, strlen(ns), &len);
		failed |= sealed == NULL || setting_put(c, user, lhost,
		    "nickserv", sealed, len) != 0;
		free(sealed);
		free(ad);
	}
	if (failed) {
		*note = xstrdup("The settings could not be stored.");
		free(lhost);
		return -1;
	}
	/* What the next connection will use, in one sentence. */
	char *p = setting_get(c, user, lhost, "port", NULL);
	char *t = setting_get(c, user, lhost, "tls", NULL);
	char *e = setting_get(c, user, lhost, "encoding", NULL);
	char *n = setting_get(c, user, lhost, "nickserv", NULL);
	*note = xasprintf("Your settings for %s: port %s, TLS %s, charset %s, "
	    "NickServ line %s.  They apply from your next connection to %s "
	    "(the current one, if any, keeps its own).", lhost,
	    p ? p : "(the gateway's)", t ? t : "(the gateway's)",
	    e ? e : "(the gateway's)", n ? "set" : "none", lhost);
	log_info("%s: %s changed the settings for %s", c->domain, user, lhost);
	free(p);
	free(t);
	free(e);
	free(n);
	free(lhost);
	return 0;
}

static int
irc_cmd_channel(struct component *c, const char *user, const struct form *in,
    char **note)
{
	struct irc_addr a;
	const char *chan = form_value(in, "channel");
	const char *enc = form_value(in, "encoding");
	const char *pers = form_value(in, "persistent");
	if (parse_addr(c, chan, &a) != 0 || a.kind != IRC_ADDR_CHANNEL) {
		if (parse_addr(c, chan, &a) == 0)
			irc_addr_clear(&a);
		*note = xstrdup("That is not a channel address (#chan%server, "
		    "as in the room's JID).");
		return -1;
	}
	if (!server_allowed(c, a.server)) {
		irc_addr_clear(&a);
		*note = xstrdup("This gateway does not connect to that IRC "
		    "server.");
		return -1;
	}
	if (enc != NULL && *enc != '\0' && strcmp(enc, "-") != 0 &&
	    !charset_ok(enc)) {
		irc_addr_clear(&a);
		*note = xstrdup("This gateway does not know that charset.");
		return -1;
	}
	/* The room layer's key for its settings: the address in ASCII
	 * lower case (room JIDs are case-folded). */
	char *key = irc_addr_local(&a, fixed_server(c));
	for (char *p = key; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	struct store_room cur;
	memset(&cur, 0, sizeof(cur));
	if (store_room_get(cw->store, c->domain, user, key, &cur) < 0) {
		irc_addr_clear(&a);
		free(key);
		*note = xstrdup("The settings could not be read.");
		return -1;
	}
	int persistent = pers == NULL || *pers == '\0' ? cur.persistent :
	    strcmp(pers, "yes") == 0;
	const char *encoding = enc == NULL || *enc == '\0' ? cur.encoding :
	    strcmp(enc, "-") == 0 ? NULL : enc;
	/* A room the user holds now is bounced by its persistence: turning
	 * it off under it is done in the room's own form (or by leaving). */
	struct session *s = session_state_of(c, user) != SESSION_OFFLINE ?
	    session_find_registered(c, user) : NULL;
	struct irc_server *srv = s ? server_get(s, a.server, 0, NULL) : NULL;
	int held = srv != NULL && chan_find(srv, a.name) != NULL;
	int r = -1;
	if (held && cur.persistent && !persistent) {
		*note = xasprintf("You are in %s now (or it is kept while you "
		    "are away): change that in the room's configuration form, "
		    "or leave the room first.", a.name);
	} else if (store_room_set(cw->store, c->domain, user, key,
	    persistent, encoding) != 0) {
		*note = xstrdup("The settings could not be stored.");
	} else {
		if (persistent && !cur.persistent)
			/* What is archived from now on is news to the user. */
			store_room_seen(cw->store, c->domain, user, key,
			    store_archive_last(cw->store));
		*note = xasprintf("Your settings for %s on %s: %s, charset %s. "
		    " They apply from your next join of the room.", a.name,
		    a.server, persistent ? "persistent" : "not persistent",
		    encoding ? encoding : "(the server's)");
		log_info("%s: %s: %s: persistent %s, encoding %s", c->domain,
		    user, key, persistent ? "yes" : "no",
		    encoding ? encoding : "(the server's)");
		r = 0;
	}
	free(cur.encoding);
	free(key);
	irc_addr_clear(&a);
	return r;
}

static const struct backend_command irc_commands[] = {
	{ .node = "irc-server", .name = "Settings for an IRC server",
	  .instructions = "Your own settings for one IRC server: port, TLS, "
	  "charset, and a line for NickServ when SASL is not used.  Fields "
	  "left empty stay as they are; - puts one back to the gateway's.",
	  .fields = server_cmd_fields,
	  .nfields = sizeof(server_cmd_fields) / sizeof(server_cmd_fields[0]),
	  .run = irc_cmd_server },
	{ .node = "irc-channel", .name = "Settings for an IRC channel",
	  .instructions = "Your own settings for one channel, as in the "
	  "room's configuration form.  Fields left empty stay as they are.",
	  .fields = channel_cmd_fields,
	  .nfields = sizeof(channel_cmd_fields) /
	  sizeof(channel_cmd_fields[0]),
	  .run = irc_cmd_channel },
};

const struct backend irc_backend = {
	.abi = BACKEND_ABI,
	.name = "irc",
	.gateway_type = "irc",
	.description = "IRC",
	/* biboumi asked nobody to register: a join is enough. */
	.open_access = 1,
	.options = irc_options,
	.sections = irc_sections,
	.init = irc_init,
	.reload = irc_reload,
	.shutdown = irc_shutdown,
	.commands = irc_commands,
	.ncommands = sizeof(irc_commands) / sizeof(irc_commands[0]),
	.nsections = sizeof(irc_sections) / sizeof(irc_sections[0]),
	.register_fields = irc_fields,
	.nregister_fields = sizeof(irc_fields) / sizeof(irc_fields[0]),
	.register_instructions = "Your IRC identity: all fields are "
	    "optional, and nothing needs registering to join channels (the "
	    "nick of your first join is your nick). Register on "
	    "SERVER@this-gateway for that server's nick, SASL account and "
	    "server password: they go to that server only.",
	.valid_address = irc_valid_address,
	.register_scope = irc_register_scope,
	.list_rooms = irc_list_rooms,
	.registration_changed = irc_registration_changed,
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
	.set_role = irc_set_role,
	.set_affiliation = irc_set_affiliation,
	.display_name = irc_display_name,
	.occupant_address = irc_occupant_address,
};
