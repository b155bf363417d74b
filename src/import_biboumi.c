/*
 * The biboumi import: a biboumi 9 SQLite database into the store, for an
 * operator replacing biboumi with causeway under the same component
 * domain.  docs/import-biboumi.md is the user's side of this file.
 *
 *   check the file (exists, SQLite, quick_check, biboumi 9's tables and
 *   columns, nothing we do not know)  -- refuse: nothing written
 *     -> check no causeway holds the store open
 *     -> BEGIN
 *        global options   (per user: persistent by default)
 *        server options   -> registration values "HOST/var" (secrets
 *                            sealed) and the irc-server settings
 *        channel options  -> room settings (persistent, charset)
 *        roster           -> users
 *        muc log          -> the archive, once per channel, with
 *                            biboumi's stanza ids and times
 *     -> COMMIT (any store error: ROLLBACK, exit 1)
 *
 * biboumi keeps no schema version: it creates its tables with CREATE
 * TABLE IF NOT EXISTS and adds the columns a release introduced
 * (ALTER TABLE ADD) at every start, never dropping one.  So "biboumi 9"
 * means every table and column 9.0 makes; columns older releases left
 * behind are known and ignored; anything else (a table or column we do
 * not know, PRAGMA user_version not 0) is a schema we cannot read
 * faithfully, and the import refuses it rather than drop what it holds.
 *
 * An import never overwrites: a value, a setting or a room's settings
 * the user already has in causeway stay as they are, and an archived
 * line whose stanza-id is there already is not added again, so a second
 * run adds nothing.  biboumi logs a channel once per user in it
 * (muclogline_.owner_); causeway archives a channel once, so copies of
 * one line (same channel, second, nick and text) are kept once, with
 * the stanza id of the oldest copy.
 */
#include "autoconf.h"

#ifdef ENABLE_IRC
#include <errno.h>
#include <fcntl.h>
#include <iconv.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include <openssl/evp.h>
#include <sqlite3.h>

#include "../backends/irc/irc_proto.h"
#include "backend.h"
#include "config.h"
#include "form.h"
#include "import_biboumi.h"
#include "jid.h"
#include "log.h"
#include "secret.h"
#include "session.h"
#include "store.h"
#include "xmalloc.h"

/* The IRC backend's per-user server settings (irc.c SETTING_PREFIX):
 * PREFIX HOST "/" NAME in the backend state. */
#define SETTING_PREFIX "irc/server/"
/* What biboumi starts a channel name with. */
#define CHANTYPES "#&+!"
/* biboumi's defaults: its ports, history length, throttle. */
#define BIB_TLS_PORTS "6697;6670"
#define BIB_TLS_PORT 6697
#define BIB_HISTORY 20
#define BIB_THROTTLE 10
/* Limits on what is archived from the file. */
#define LINE_BODY_MAX (64 * 1024)
#define LINE_NICK_MAX 128
#define SID_MAX 64
/* A line stamped further in the future than this is not believed. */
#define FUTURE_SLACK (24 * 3600)

/* ---- biboumi's schema (src/database/database.hpp of biboumi 9) ---- */

struct bib_table {
	const char *name;
	const char *const *columns;   /* as 9.0 creates them */
	const char *const *legacy;    /* left by older releases, unused */
};

static const char *const muclog_cols[] = {
	"id_", "uuid_", "owner_", "ircchanname_", "ircservername_", "date_",
	"body_", "nick_", NULL,
};
static const char *const global_cols[] = {
	"id_", "owner_", "maxhistorylength_", "recordhistory_", "persistent_",
	NULL,
};
static const char *const server_cols[] = {
	"id_", "owner_", "server_", "pass_", "tlsports_", "ports_",
	"username_", "realname_", "verifycert_", "trustedfingerprint_",
	"encodingout_", "encodingin_", "maxhistorylength_", "address_",
	"nick_", "saslpassword_", "throttlelimit_", NULL,
};
static const char *const channel_cols[] = {
	"id_", "owner_", "server_", "channel_", "encodingout_", "encodingin_",
	"maxhistorylength_", "persistent_", "recordhistory_", NULL,
};
static const char *const roster_cols[] = { "local", "remote", NULL };
static const char *const commands_cols[] = {
	"id_", "fk_", "afterconnectioncommand_", NULL,
};
/* litesql (biboumi before 6.0) added type_ to its tables. */
static const char *const litesql_cols[] = { "type_", NULL };
/* Before 8.0 one after-connect command lived in the server's row; 8.0
 * moved them to their own table and ignores the old column. */
static const char *const server_legacy_cols[] = {
	"type_", "afterconnectioncommand_", NULL,
};

static const struct bib_table bib_tables[] = {
	{ "muclogline_", muclog_cols, litesql_cols },
	{ "globaloptions_", global_cols, litesql_cols },
	{ "ircserveroptions_", server_cols, server_legacy_cols },
	{ "ircchanneloptions_", channel_cols, litesql_cols },
	{ "roster", roster_cols, NULL },
	{ "after_connection_commands_", commands_cols, NULL },
};
#define NBIB_TABLES (sizeof(bib_tables) / sizeof(bib_tables[0]))

/* Statements on the biboumi file: static text, as everywhere. */
static const char sql_tables[] =
    "SELECT lower(name) FROM sqlite_master WHERE type = 'table'";
static const char sql_columns[] =
    "SELECT lower(name) FROM pragma_table_info(?1)";
static const char sql_globals[] =
    "SELECT owner_, persistent_, recordhistory_, maxhistorylength_ "
    "FROM globaloptions_ ORDER BY id_";
static const char sql_servers[] =
    "SELECT id_, owner_, server_, nick_, realname_, pass_, saslpassword_, "
    "ports_, tlsports_, encodingin_, encodingout_, username_, verifycert_, "
    "trustedfingerprint_, address_, maxhistorylength_, throttlelimit_ "
    "FROM ircserveroptions_ ORDER BY id_";
static const char sql_commands[] =
    "SELECT afterconnectioncommand_ FROM after_connection_commands_ "
    "WHERE fk_ = ?1 ORDER BY id_";
static const char sql_channels[] =
    "SELECT owner_, server_, channel_, persistent_, encodingin_, "
    "encodingout_, maxhistorylength_, recordhistory_ "
    "FROM ircchanneloptions_ ORDER BY id_";
static const char sql_roster[] = "SELECT local, remote FROM roster";
/*
 * The log, one copy of each line: k numbers the identical lines (same
 * channel, second, nick, text) of one owner, and each (line, k) over
 * all owners is one line, so a line said twice is kept twice and a line
 * every owner logged once is kept once.  The uuid is the oldest copy's
 * (SQLite takes bare columns from the min() row); the owners who logged
 * it, one a line, say who was in the channel then.  Ordered by channel,
 * then time, then biboumi's id (the order it logged them in).
 */
static const char sql_log[] =
    "SELECT srv, chan, date_, nick_, body_, uuid_, k, min(id_) AS first,"
    " group_concat(owner_, char(10)) FROM ("
    " SELECT id_, uuid_, date_, nick_, body_, owner_,"
    "  lower(ircservername_) AS srv, lower(ircchanname_) AS chan,"
    "  row_number() OVER (PARTITION BY lower(ircservername_),"
    "  lower(ircchanname_), date_, nick_, body_, lower(owner_) ORDER BY id_)"
    "  AS k FROM muclogline_)"
    " GROUP BY srv, chan, date_, nick_, body_, k"
    " ORDER BY srv, chan, date_, first";

/* ---- a set of strings (users, stanza-ids), kept in insertion order ---- */

struct strset {
	char **items;          /* owned, insertion order */
	size_t n, cap;
	size_t *slots;         /* index + 1, 0 empty; power of two */
	size_t nslots;
};

static uint64_t
str_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;      /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static size_t *
strset_slot(const struct strset *set, const char *s)
{
	size_t mask = set->nslots - 1;
	for (size_t i = (size_t)str_hash(s) & mask;; i = (i + 1) & mask)
		if (set->slots[i] == 0 ||
		    strcmp(set->items[set->slots[i] - 1], s) == 0)
			return &set->slots[i];
}

static int
strset_has(const struct strset *set, const char *s)
{
	return set->nslots > 0 && *strset_slot(set, s) != 0;
}

/* 1 added (copied), 0 there already. */
static int
strset_add(struct strset *set, const char *s)
{
	if (strset_has(set, s))
		return 0;
	if (2 * (set->n + 1) > set->nslots) {
		set->nslots = set->nslots ? set->nslots * 2 : 64;
		free(set->slots);
		set->slots = xcalloc(set->nslots, sizeof(*set->slots));
		for (size_t i = 0; i < set->n; i++)
			*strset_slot(set, set->items[i]) = i + 1;
	}
	if (set->n == set->cap) {
		set->cap = set->cap ? set->cap * 2 : 64;
		set->items = xreallocarray(set->items, set->cap,
		    sizeof(*set->items));
	}
	set->items[set->n++] = xstrdup(s);
	*strset_slot(set, s) = set->n;
	return 1;
}

static void
strset_clear(struct strset *set)
{
	for (size_t i = 0; i < set->n; i++)
		free(set->items[i]);
	free(set->items);
	free(set->slots);
	memset(set, 0, sizeof(*set));
}

/* ---- the run ---- */

struct import {
	const char *file;
	const char *domain;          /* the component */
	const char *fixed;           /* its fixed_server; NULL: none */
	const struct config *cfg;
	const struct config_section *sec;
	const struct backend *backend;
	sqlite3 *bib;
	struct store *st;
	struct secret_key *key;
	struct strset users;         /* bare JIDs met */
	struct strset persistent_by_default;
	struct strset made_persistent;   /* "JID\nROOM" added by this run */
	struct strset owner_raw;     /* owner_ values met in the log */
	char **owner_norm;           /* ... as bare JIDs (NULL: not one) */
	unsigned users_new, values, values_kept, settings, settings_kept;
	unsigned rooms, rooms_kept, persistent, not_carried, skipped;
	unsigned long lines, lines_there, lines_older, lines_bad, lines_pruned;
	unsigned long spans;
	unsigned archives;
};

/* A column as text: NULL when NULL, empty, or holding a NUL byte. */
static const char *
col_text(sqlite3_stmt *s, int i)
{
	const char *t = (const char *)sqlite3_column_text(s, i);
	if (t == NULL || *t == '\0' ||
	    (size_t)sqlite3_column_bytes(s, i) != strlen(t))
		return NULL;
	return t;
}

/* Valid UTF-8 without control characters, 1..max bytes. */
static int
text_ok(const char *v, size_t max)
{
	size_t len = v ? strlen(v) : 0;
	if (len == 0 || len > max)
		return 0;
	const unsigned char *p = (const unsigned char *)v;
	while (*p) {
		unsigned c = *p;
		size_t n = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 :
		    (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
		if (n == 0 || c < 0x20 || c == 0x7f || c == 0xc0 || c == 0xc1 ||
		    c > 0xf4)
			return 0;
		for (size_t i = 1; i < n; i++)
			if ((p[i] & 0xc0) != 0x80)
				return 0;
		/* Overlong three- and four-byte forms, surrogates. */
		if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f) ||
		    (c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] > 0x8f))
			return 0;
		p += n;
	}
	return 1;
}

/* A charset the IRC backend accepts (its charset check: a plain name
 * iconv knows). */
static int
charset_known(const char *charset)
{
	if (!text_ok(charset, 64) || strspn(charset,
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789._:()+-") != strlen(charset))
		return 0;
	iconv_t cd = iconv_open("UTF-8", charset);
	if (cd == (iconv_t)-1)
		return 0;
	iconv_close(cd);
	return 1;
}

/* biboumi's owner_ as causeway's bare JID (caller frees), or NULL. */
static char *
owner_jid(struct import *im, const char *raw)
{
	struct jid j;
	if (raw == NULL || jid_parse(raw, &j) != 0)
		goto bad;
	char *bare = j.local != NULL && j.resource == NULL ?
	    jid_bare_string(&j) : NULL;
	jid_clear(&j);
	if (bare != NULL)
		return bare;
bad:
	log_warn("%s: a row of user '%s' is skipped: not a bare JID", im->file,
	    raw && text_ok(raw, 256) ? raw : "?");
	im->skipped++;
	return NULL;
}

/* A server causeway connects this component's users to, lower-cased
 * (caller frees), or NULL and why not. */
static char *
server_host(struct import *im, const char *raw, const char **whyp)
{
	struct irc_addr a;
	char *host = NULL;
	if (raw != NULL && irc_addr_parse(raw, NULL, CHANTYPES, &a) == 0) {
		if (a.kind == IRC_ADDR_SERVER)
			host = xstrdup(a.server);
		irc_addr_clear(&a);
	}
	const char *why = NULL;
	size_t n;
	const char *const *allowed = config_list(im->sec, "allowed_servers", &n);
	int ok = n == 0;
	for (size_t i = 0; host != NULL && i < n; i++)
		ok |= strcasecmp(allowed[i], host) == 0;
	if (host == NULL)
		why = "not a host name";
	else if (im->fixed != NULL && strcasecmp(host, im->fixed) != 0)
		why = "not the fixed_server of the component";
	else if (!ok)
		why = "not in allowed_servers";
	*whyp = why;
	if (why == NULL)
		return host;
	free(host);
	return NULL;
}

/* The room settings' and archive's name for channel chan of server
 * (ASCII lower case, as the room layer folds it; caller frees), or NULL
 * and why not. */
static char *
room_key(struct import *im, const char *server, const char *chan,
    const char **whyp)
{
	char *host = server_host(im, server, whyp);
	if (host == NULL)
		return NULL;
	if (chan == NULL) {
		free(host);
		*whyp = "no channel name";
		return NULL;
	}
	char *local = im->fixed != NULL ? xstrdup(chan) :
	    xasprintf("%s%%%s", chan, host);
	struct irc_addr a;
	char *key = NULL;
	if (irc_addr_parse(local, im->fixed, CHANTYPES, &a) == 0) {
		if (a.kind == IRC_ADDR_CHANNEL)
			key = irc_addr_local(&a, im->fixed);
		irc_addr_clear(&a);
	}
	free(local);
	free(host);
	for (char *p = key; p != NULL && *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	if (key == NULL)
		*whyp = "not a channel name causeway can address";
	return key;
}

/* A nick the IRC backend would accept in an address (no space, comma,
 * control, ! @ * ?, not starting like a channel). */
static int
nick_valid(const char *nick, const char *host)
{
	char *local = xasprintf("%s%%%s", nick, host);
	struct irc_addr a;
	int ok = irc_addr_parse(local, NULL, CHANTYPES, &a) == 0;
	if (ok) {
		ok = a.kind == IRC_ADDR_NICK;
		irc_addr_clear(&a);
	}
	free(local);
	return ok;
}

static int
user_ensure(struct import *im, const char *jid)
{
	if (strset_has(&im->users, jid))
		return 0;
	int r = store_user_add(im->st, im->domain, jid);
	if (r < 0)
		return -1;
	im->users_new += r;
	strset_add(&im->users, jid);
	return 0;
}

struct field_find {
	const char *var;
	int found;
};

static int
field_find_cb(void *arg, const char *var, const void *value, size_t len,
    int sealed)
{
	struct field_find *f = arg;
	f->found = strcmp(var, f->var) == 0;
	return f->found;
}

static void
not_carried(struct import *im, const char *jid, const char *where,
    const char *what)
{
	log_warn("%s: %s: %s: not carried over (%s)", im->file, jid, where,
	    what);
	im->not_carried++;
}

/* value as it is stored (caller frees): a copy, or sealed with the key
 * and the user's associated data as registration seals it; NULL when
 * sealing failed (logged). */
static unsigned char *
stored_form(struct import *im, const char *jid, const char *value, int seal,
    size_t *len)
{
	*len = strlen(value);
	if (!seal)
		return (unsigned char *)xstrdup(value);
	char *ad = session_secret_ad(im->domain, jid);
	unsigned char *sealed = secret_seal(im->key, ad,
	    (const unsigned char *)value, *len, len);
	free(ad);
	return sealed;
}

/* A registration value SCOPE/name, sealed when the backend's field is
 * secret; kept when the user has one. -1 on a store error. */
static int
field_put(struct import *im, const char *jid, const char *scope,
    const char *name, const char *value, const char *what)
{
	const struct form_field_spec *f = NULL;
	for (size_t i = 0; i < im->backend->nregister_fields; i++)
		if (strcmp(im->backend->register_fields[i].var, name) == 0)
			f = &im->backend->register_fields[i];
	if (f == NULL) {
		not_carried(im, jid, scope, what);
		return 0;
	}
	size_t max = f->max_len ? f->max_len : FORM_MAX_VALUE_LEN;
	if (!text_ok(value, max)) {
		log_warn("%s: %s: %s: the %s is not carried over (not text, "
		    "or over %zu bytes)", im->file, jid, scope, what, max);
		im->not_carried++;
		return 0;
	}
	char *var = xasprintf("%s/%s", scope, name);
	struct field_find k = { .var = var };
	int r = store_field_foreach(im->st, im->domain, jid, field_find_cb, &k);
	if (r == 0 && k.found) {
		im->values_kept++;
	} else if (r == 0) {
		size_t len;
		unsigned char *v = stored_form(im, jid, value, f->secret, &len);
		r = v == NULL ? -1 : store_field_set(im->st, im->domain, jid,
		    var, v, len, f->secret);
		free(v);
		im->values++;
	}
	free(var);
	return r < 0 ? -1 : 0;
}

/* An irc-server setting of the user for host (sealed if asked); kept
 * when the user has one.  -1 on a store error. */
static int
setting_put(struct import *im, const char *jid, const char *host,
    const char *name, const char *value, int seal)
{
	char *key = xasprintf(SETTING_PREFIX "%s/%s", host, name);
	char *old = NULL;
	int r = store_state_get(im->st, im->domain, jid, key, &old, NULL);
	free(old);
	if (r == 1) {
		im->settings_kept++;
		r = 0;
	} else if (r == 0) {
		size_t len;
		unsigned char *v = stored_form(im, jid, value, seal, &len);
		r = v == NULL ? -1 : store_state_set(im->st, im->domain, jid,
		    key, v, len);
		free(v);
		im->settings++;
	}
	free(key);
	return r < 0 ? -1 : 0;
}

/* ---- checking the file ---- */

static const struct bib_table *
bib_table(const char *name)
{
	for (size_t i = 0; i < NBIB_TABLES; i++)
		if (strcmp(bib_tables[i].name, name) == 0)
			return &bib_tables[i];
	return NULL;
}

static int
in_list(const char *const *list, const char *s)
{
	for (; list != NULL && *list != NULL; list++)
		if (strcmp(*list, s) == 0)
			return 1;
	return 0;
}

/* Why the file's schema is not biboumi 9's, or NULL (*why allocated). */
static char *
schema_problem(sqlite3 *db)
{
	sqlite3_stmt *s;
	char *why = NULL;
	int found[NBIB_TABLES] = { 0 };

	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL) !=
	    SQLITE_OK)
		return xasprintf("cannot read it: %s", sqlite3_errmsg(db));
	int version = sqlite3_step(s) == SQLITE_ROW ?
	    sqlite3_column_int(s, 0) : -1;
	sqlite3_finalize(s);
	if (version != 0)
		return xasprintf("PRAGMA user_version is %d; biboumi leaves it "
		    "0, so this is not a biboumi database (or a newer one)",
		    version);

	if (sqlite3_prepare_v2(db, sql_tables, -1, &s, NULL) != SQLITE_OK)
		return xasprintf("cannot list its tables: %s",
		    sqlite3_errmsg(db));
	struct strset names = { 0 };
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		strset_add(&names, col_text(s, 0) ? col_text(s, 0) : "");
	if (rc != SQLITE_DONE)
		why = xasprintf("cannot list its tables: %s",
		    sqlite3_errmsg(db));
	sqlite3_finalize(s);
	s = NULL;
	for (size_t i = 0; why == NULL && i < names.n; i++) {
		const char *t = names.items[i];
		const struct bib_table *bt = bib_table(t);
		if (bt != NULL)
			found[bt - bib_tables] = 1;
		/* SQLite's own tables, and litesql's from biboumi < 6. */
		else if (strncmp(t, "sqlite_", 7) != 0 &&
		    strcmp(t, "schema_") != 0)
			why = xasprintf("it has a table '%s' that biboumi 9 "
			    "does not make (a newer biboumi, or not biboumi's)",
			    text_ok(t, 64) ? t : "?");
	}
	strset_clear(&names);
	for (size_t i = 0; why == NULL && i < NBIB_TABLES; i++)
		if (!found[i])
			why = xasprintf("it has no table %s: not a biboumi 9 "
			    "database (an older biboumi upgrades its database "
			    "when it starts: run biboumi 9 on it once)",
			    bib_tables[i].name);

	if (why == NULL && sqlite3_prepare_v2(db, sql_columns, -1, &s,
	    NULL) != SQLITE_OK)
		why = xasprintf("cannot read its columns: %s",
		    sqlite3_errmsg(db));
	for (size_t i = 0; why == NULL && i < NBIB_TABLES; i++) {
		const struct bib_table *bt = &bib_tables[i];
		struct strset cols = { 0 };
		sqlite3_bind_text(s, 1, bt->name, -1, SQLITE_STATIC);
		while ((rc = sqlite3_step(s)) == SQLITE_ROW)
			strset_add(&cols, col_text(s, 0) ? col_text(s, 0) : "");
		if (rc != SQLITE_DONE)
			why = xasprintf("cannot read the columns of %s: %s",
			    bt->name, sqlite3_errmsg(db));
		sqlite3_reset(s);
		for (size_t k = 0; why == NULL && k < cols.n; k++)
			if (!in_list(bt->columns, cols.items[k]) &&
			    !in_list(bt->legacy, cols.items[k]))
				why = xasprintf("its table %s has a column '%s' "
				    "that biboumi 9 does not make (a newer "
				    "biboumi?)", bt->name, text_ok(cols.items[k],
				    64) ? cols.items[k] : "?");
		for (size_t k = 0; why == NULL && bt->columns[k]; k++)
			if (!strset_has(&cols, bt->columns[k]))
				why = xasprintf("its table %s has no column %s: "
				    "not a biboumi 9 database (run biboumi 9 on "
				    "it once to upgrade it)", bt->name,
				    bt->columns[k]);
		strset_clear(&cols);
	}
	if (s != NULL)
		sqlite3_finalize(s);
	return why;
}

/* The biboumi file opened read-only and checked, or NULL (logged). */
static sqlite3 *
bib_open(const char *file)
{
	struct stat sb;
	if (stat(file, &sb) == -1) {
		log_error("%s: %s; nothing imported", file, strerror(errno));
		return NULL;
	}
	if (!S_ISREG(sb.st_mode)) {
		log_error("%s: not a regular file; nothing imported", file);
		return NULL;
	}
	sqlite3 *db = NULL;
	if (sqlite3_open_v2(file, &db, SQLITE_OPEN_READONLY, NULL) !=
	    SQLITE_OK) {
		log_error("%s: cannot open it: %s; nothing imported", file, db ?
		    sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return NULL;
	}
	sqlite3_busy_timeout(db, 2000);
	/* quick_check reads every page: a file that is not SQLite, or is
	 * damaged, is refused before anything else is read. */
	sqlite3_stmt *s = NULL;
	char *why = NULL;
	int rc = sqlite3_prepare_v2(db, "PRAGMA quick_check", -1, &s, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(s);
	if (rc == SQLITE_NOTADB)
		why = xstrdup("not an SQLite database");
	else if (rc == SQLITE_CORRUPT)
		why = xasprintf("the database is corrupt (%s)",
		    sqlite3_errmsg(db));
	else if (rc != SQLITE_ROW)
		why = xasprintf("cannot read it: %s", sqlite3_errmsg(db));
	else if (col_text(s, 0) == NULL || strcmp(col_text(s, 0), "ok") != 0)
		why = xasprintf("the database is corrupt (quick_check: %.200s)",
		    col_text(s, 0) ? col_text(s, 0) : "?");
	sqlite3_finalize(s);
	if (why == NULL)
		why = schema_problem(db);
	if (why != NULL) {
		log_error("%s: %s; nothing imported", file, why);
		free(why);
		sqlite3_close(db);
		return NULL;
	}
	return db;
}

/*
 * 1 when another process has the store open: every SQLite connection
 * to a WAL database holds a read lock on byte 128 of its -shm file (the
 * "DMS" lock) while open.  A running causeway keeps archive ids and
 * users' values in memory, so writing under it would collide.  Probed
 * before our own connection exists (closing a descriptor would drop
 * our own POSIX locks).
 */
static int
store_in_use(const char *database, long *pid)
{
	char *shm = xasprintf("%s-shm", database);
	int fd = open(shm, O_RDONLY | O_CLOEXEC);
	free(shm);
	if (fd == -1)
		return 0;
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET,
	    .l_start = 128, .l_len = 1 };
	int busy = fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
	*pid = (long)fl.l_pid;
	close(fd);
	return busy;
}

/* ---- the tables ---- */

/* Runs sql on the biboumi file and row() on each row; -1 when a row
 * failed or the file could not be read. */
static int
each_row(struct import *im, const char *sql,
    int (*row)(struct import *, sqlite3_stmt *))
{
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(im->bib, sql, -1, &s, NULL) != SQLITE_OK)
		return -1;
	int rc, r = 0;
	while (r == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW)
		r = row(im, s);
	sqlite3_finalize(s);
	return r != 0 || rc != SQLITE_DONE ? -1 : 0;
}

static int
import_global(struct import *im, sqlite3_stmt *s)
{
	char *jid = owner_jid(im, col_text(s, 0));
	if (jid == NULL)
		return 0;
	int r = user_ensure(im, jid);
	if (sqlite3_column_int(s, 1) != 0)
		strset_add(&im->persistent_by_default, jid);
	if (sqlite3_column_type(s, 2) != SQLITE_NULL &&
	    sqlite3_column_int(s, 2) == 0)
		not_carried(im, jid, "global options", "history not recorded: "
		    "causeway archives a channel once for everyone in it");
	if (sqlite3_column_type(s, 3) != SQLITE_NULL &&
	    sqlite3_column_int(s, 3) != BIB_HISTORY)
		not_carried(im, jid, "global options", "history length: the "
		    "client's <history/> asks for it");
	free(jid);
	return r;
}

/* The first port of biboumi's "6697;6670" list, or 0. */
static long
first_port(const char *list)
{
	if (list == NULL)
		return 0;
	char *end;
	errno = 0;
	long p = strtol(list, &end, 10);
	if (errno != 0 || end == list || (*end != '\0' && *end != ';') ||
	    p < 1 || p > 65535)
		return 0;
	return p;
}

/* After-connect commands: a NickServ line becomes the irc-server
 * "nickserv" setting; causeway sends no other raw line. */
static int
import_commands(struct import *im, const char *jid, const char *host,
    sqlite3_int64 id)
{
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(im->bib, sql_commands, -1, &s, NULL) !=
	    SQLITE_OK)
		return -1;
	sqlite3_bind_int64(s, 1, id);
	int rc, nickserv = 0, failed = 0;
	unsigned others = 0;
	while (!failed && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *cmd = col_text(s, 0);
		if (cmd == NULL)
			continue;
		const char *line = NULL;
		size_t skip = 0;
		if (strncasecmp(cmd, "PRIVMSG NickServ ", 17) == 0)
			skip = 17;
		else if (strncasecmp(cmd, "NICKSERV ", 9) == 0)
			skip = 9;
		else if (strncasecmp(cmd, "NS ", 3) == 0)
			skip = 3;
		if (skip > 0) {
			line = cmd + skip;
			line += strspn(line, " ");
			if (skip == 17 && *line == ':')
				line++;
		}
		if (line != NULL && !nickserv && text_ok(line, 400)) {
			nickserv = 1;
			failed = setting_put(im, jid, host, "nickserv", line,
			    1) != 0;
		} else {
			others++;
		}
	}
	sqlite3_finalize(s);
	if (others > 0) {
		char *what = xasprintf("%u after-connect command%s: causeway "
		    "sends only a NickServ line", others, others > 1 ? "s" :
		    "");
		not_carried(im, jid, host, what);
		free(what);
	}
	return failed || rc != SQLITE_DONE ? -1 : 0;
}

static int
import_server(struct import *im, sqlite3_stmt *s)
{
	char *jid = owner_jid(im, col_text(s, 1));
	if (jid == NULL)
		return 0;
	const char *raw = col_text(s, 2), *why;
	char *host = server_host(im, raw, &why);
	if (host == NULL) {
		log_warn("%s: %s: the settings for server %s are skipped: %s",
		    im->file, jid, raw && text_ok(raw, 253) ? raw : "?", why);
		im->skipped++;
		free(jid);
		return 0;
	}
	int r = user_ensure(im, jid);
	const char *nick = col_text(s, 3), *sasl = col_text(s, 6);
	if (nick != NULL && !nick_valid(nick, host)) {
		not_carried(im, jid, host, "nick: not a valid IRC nick");
		nick = NULL;
	}
	if (r == 0 && nick != NULL)
		r = field_put(im, jid, host, "nick", nick, "nick");
	if (r == 0 && col_text(s, 4) != NULL)
		r = field_put(im, jid, host, "realname", col_text(s, 4),
		    "real name");
	if (r == 0 && col_text(s, 5) != NULL)
		r = field_put(im, jid, host, "server_password", col_text(s, 5),
		    "server password");
	if (r == 0 && sasl != NULL) {
		/* biboumi logs in to SASL as the nick. */
		r = field_put(im, jid, host, "sasl_password", sasl,
		    "SASL password");
		if (r == 0 && nick != NULL)
			r = field_put(im, jid, host, "sasl_user", nick,
			    "SASL account");
		else if (r == 0)
			log_warn("%s: %s: %s: the SASL password has no account "
			    "name (biboumi used the nick of the join): the "
			    "user sets one by registering on %s", im->file,
			    jid, host, host);
	}

	/* Ports: biboumi tries its TLS ports, then its plain ones; causeway
	 * uses one port, with TLS unless the operator allows plaintext. */
	const char *tls = col_text(s, 8);
	long port = first_port(tls);
	if (r == 0 && tls != NULL && port > 0 &&
	    strcmp(tls, BIB_TLS_PORTS) != 0 && port != BIB_TLS_PORT) {
		char num[24];
		snprintf(num, sizeof(num), "%ld", port);
		r = setting_put(im, jid, host, "port", num, 0);
		if (r == 0)
			r = setting_put(im, jid, host, "tls", "yes", 0);
	} else if (r == 0 && tls == NULL && (port = first_port(col_text(s,
	    7))) > 0) {
		const struct config_section *srv = config_section_find(im->cfg,
		    "irc-server", host);
		if (srv == NULL || config_bool(srv, "tls")) {
			not_carried(im, jid, host, "plaintext IRC: this "
			    "gateway connects there with TLS only");
		} else {
			char num[24];
			snprintf(num, sizeof(num), "%ld", port);
			r = setting_put(im, jid, host, "port", num, 0);
			if (r == 0)
				r = setting_put(im, jid, host, "tls", "no", 0);
		}
	}
	const char *in = col_text(s, 9), *out = col_text(s, 10);
	if (r == 0 && in != NULL) {
		if (charset_known(in))
			r = setting_put(im, jid, host, "encoding", in, 0);
		else
			not_carried(im, jid, host, "incoming charset: unknown "
			    "to iconv");
	}
	if (r == 0 && out != NULL && strcasecmp(out, "UTF-8") != 0)
		not_carried(im, jid, host, "outgoing charset: causeway writes "
		    "UTF-8");
	if (r == 0 && col_text(s, 11) != NULL)
		not_carried(im, jid, host, "user name: causeway sets the ident "
		    "itself");
	if (r == 0 && sqlite3_column_type(s, 12) != SQLITE_NULL &&
	    sqlite3_column_int(s, 12) == 0)
		not_carried(im, jid, host, "certificate verification off: only "
		    "the operator can turn it off");
	if (r == 0 && col_text(s, 13) != NULL)
		not_carried(im, jid, host, "trusted fingerprint: the operator "
		    "pins one in [irc-server]");
	if (r == 0 && col_text(s, 14) != NULL)
		not_carried(im, jid, host, "address to connect to: causeway "
		    "connects to the server's own name");
	if (r == 0 && sqlite3_column_type(s, 15) != SQLITE_NULL &&
	    sqlite3_column_int(s, 15) != BIB_HISTORY)
		not_carried(im, jid, host, "history length");
	if (r == 0 && sqlite3_column_type(s, 16) != SQLITE_NULL &&
	    sqlite3_column_int(s, 16) != BIB_THROTTLE)
		not_carried(im, jid, host, "throttle limit: the operator's");
	if (r == 0)
		r = import_commands(im, jid, host, sqlite3_column_int64(s, 0));
	free(host);
	free(jid);
	return r;
}

static int
import_channel(struct import *im, sqlite3_stmt *s)
{
	char *jid = owner_jid(im, col_text(s, 0));
	if (jid == NULL)
		return 0;
	const char *server = col_text(s, 1), *chan = col_text(s, 2), *why;
	char *key = room_key(im, server, chan, &why);
	int r = 0;
	if (key == NULL) {
		log_warn("%s: %s: the settings of channel %s on %s are skipped: "
		    "%s", im->file, jid, chan && text_ok(chan, 200) ? chan : "?",
		    server && text_ok(server, 253) ? server : "?", why);
		im->skipped++;
		goto out;
	}
	int persistent = sqlite3_column_int(s, 3) != 0 ||
	    strset_has(&im->persistent_by_default, jid);
	const char *enc = col_text(s, 4), *out = col_text(s, 5);
	if (enc != NULL && !charset_known(enc)) {
		not_carried(im, jid, key, "incoming charset: unknown to iconv");
		enc = NULL;
	}
	if (out != NULL && strcasecmp(out, "UTF-8") != 0)
		not_carried(im, jid, key, "outgoing charset: causeway writes "
		    "UTF-8");
	if (sqlite3_column_type(s, 6) != SQLITE_NULL &&
	    sqlite3_column_int(s, 6) != BIB_HISTORY)
		not_carried(im, jid, key, "history length");
	/* OptionalBool: 0 unset, 1 yes, -1 no. */
	if (sqlite3_column_int(s, 7) < 0)
		not_carried(im, jid, key, "history not recorded: causeway "
		    "archives a channel once for everyone in it");
	if (!persistent && enc == NULL)
		goto out;
	if ((r = user_ensure(im, jid)) != 0)
		goto out;
	int added = store_room_add(im->st, im->domain, jid, key, persistent,
	    enc, 0);
	if (added < 0) {
		r = -1;
	} else if (added == 0) {
		im->rooms_kept++;
	} else {
		im->rooms++;
		if (persistent) {
			im->persistent++;
			char *pair = xasprintf("%s\n%s", jid, key);
			strset_add(&im->made_persistent, pair);
			free(pair);
		}
	}
out:
	free(key);
	free(jid);
	return r;
}

/* Who subscribed to the gateway's own JID: users, so causeway probes
 * their presence after each connection as biboumi sent them its own.
 * Entries for server JIDs (server@gw) stay in the XMPP server's roster;
 * causeway answers them without a row. */
static int
import_roster_item(struct import *im, sqlite3_stmt *s)
{
	const char *local = col_text(s, 0);
	if (local == NULL || strcasecmp(local, im->domain) != 0)
		return 0;
	char *jid = owner_jid(im, col_text(s, 1));
	int r = jid != NULL ? user_ensure(im, jid) : 0;
	free(jid);
	return r;
}

/* ---- the log ---- */

struct line {
	time_t stamp;
	char *nick, *body, *sid;
	char *owners;          /* biboumi's owner_ of each copy, one a line */
};

/* A user's stretch of membership being built from consecutive imported
 * lines of one channel: archive ids (from, to]. */
struct run {
	long long from, to;
};

/* One channel's lines, the newest `cap` of them (the retention). */
struct chan_lines {
	char *server, *chan;
	struct line *ring;
	size_t cap, n, head;
};

static void
line_free(struct line *l)
{
	free(l->nick);
	free(l->body);
	free(l->sid);
	free(l->owners);
}

/* owner_ as a bare JID, remembered (borrowed; NULL: not one). */
static const char *
owner_cached(struct import *im, const char *raw)
{
	if (strset_add(&im->owner_raw, raw)) {
		struct jid j;
		char *bare = NULL;
		if (jid_parse(raw, &j) == 0) {
			if (j.local != NULL && j.resource == NULL)
				bare = jid_bare_string(&j);
			jid_clear(&j);
		}
		im->owner_norm = xreallocarray(im->owner_norm, im->owner_raw.n,
		    sizeof(*im->owner_norm));
		im->owner_norm[im->owner_raw.n - 1] = bare;
	}
	return im->owner_norm[*strset_slot(&im->owner_raw, raw) - 1];
}

/*
 * Who may read the imported lines (what causeway lets a user read of a
 * channel's archive: the stretches they were in it): each owner whose
 * biboumi log had a line was in the channel then.  Consecutive imported
 * lines an owner logged are one stretch; id is the line just archived.
 */
static int
note_owners(struct import *im, const char *key, struct strset *who,
    struct run **runs, const char *owners, long long id)
{
	int r = 0;
	char *list = xstrdup(owners ? owners : "");
	for (char *save = NULL, *o = strtok_r(list, "\n", &save); o != NULL &&
	    r == 0; o = strtok_r(NULL, "\n", &save)) {
		const char *jid = owner_cached(im, o);
		if (jid == NULL)
			continue;
		if (strset_add(who, jid)) {
			*runs = xreallocarray(*runs, who->n, sizeof(**runs));
			(*runs)[who->n - 1] = (struct run){ id - 1, id };
			continue;
		}
		struct run *u = &(*runs)[*strset_slot(who, jid) - 1];
		if (u->to == id || u->to == id - 1) {
			u->to = id;
			continue;
		}
		r = store_member_span(im->st, im->domain, jid, key, u->from,
		    u->to);
		im->spans += r == 0;
		*u = (struct run){ id - 1, id };
	}
	free(list);
	return r;
}

static int
close_runs(struct import *im, const char *key, struct strset *who,
    struct run *runs)
{
	int r = 0;
	for (size_t i = 0; r == 0 && i < who->n; i++) {
		r = store_member_span(im->st, im->domain, who->items[i], key,
		    runs[i].from, runs[i].to);
		im->spans += r == 0;
	}
	return r;
}

/* A stanza-id for a line biboumi stored without a usable one: derived
 * from the line, so a second run finds it again. */
static char *
derived_sid(const char *server, const char *chan, long long stamp,
    const char *nick, const char *body, long long k)
{
	char *text = xasprintf("%s%c%s%c%lld%c%s%c%s%c%lld", server, 0, chan,
	    0, stamp, 0, nick, 0, body, 0, k);
	size_t len = strlen(server) + strlen(chan) + strlen(nick) +
	    strlen(body) + 5;
	char num[32];
	len += (size_t)snprintf(num, sizeof(num), "%lld", stamp);
	len += (size_t)snprintf(num, sizeof(num), "%lld", k);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	char *sid = NULL;
	if (EVP_Digest(text, len, md, &mdlen, EVP_sha256(), NULL) == 1) {
		sid = xmalloc(8 + 32 + 1);
		memcpy(sid, "biboumi-", 8);
		for (int i = 0; i < 16; i++)
			snprintf(sid + 8 + 2 * i, 3, "%02x", md[i]);
	}
	free(text);
	return sid;
}

/* biboumi's uuid as a stanza-id when it is one a client could send
 * back (letters, digits, '-'). */
static int
sid_ok(const char *sid)
{
	return sid != NULL && strlen(sid) <= SID_MAX &&
	    strspn(sid, "0123456789abcdefABCDEFghijklmnopqrstuvwxyz"
	    "GHIJKLMNOPQRSTUVWXYZ-") == strlen(sid);
}

/* Writes one channel's lines into its archive. */
static int
flush_channel(struct import *im, struct chan_lines *cl)
{
	int r = 0;
	const char *why;
	char *key = room_key(im, cl->server, cl->chan, &why);
	if (key == NULL) {
		log_warn("%s: the history of %s on %s is skipped: %s", im->file,
		    text_ok(cl->chan, 200) ? cl->chan : "?",
		    text_ok(cl->server, 253) ? cl->server : "?", why);
		im->skipped++;
		goto out;
	}
	long long room = store_archive_room(im->st, im->domain, key, 1);
	struct store_archive_query q = { .room = room, .max = (size_t)1 << 30 };
	struct store_archive_msg *v = NULL;
	size_t n = 0;
	if (room <= 0 || store_archive_query(im->st, &q, &v, &n) != 0) {
		r = -1;
		goto out;
	}
	/* What the archive holds: by stanza-id, and how recent. */
	struct strset sids = { 0 };
	time_t newest = 0;
	for (size_t i = 0; i < n; i++) {
		strset_add(&sids, v[i].sid);
		if (v[i].stamp > newest)
			newest = v[i].stamp;
	}
	store_archive_msgs_free(v, n);
	unsigned long added = 0;
	long long id;
	struct strset who = { 0 };
	struct run *runs = NULL;
	for (size_t i = 0; r == 0 && i < cl->n; i++) {
		struct line *l = &cl->ring[(cl->head + i) % cl->cap];
		if (strset_has(&sids, l->sid)) {
			im->lines_there++;
		} else if (l->stamp < newest) {
			/* Archive ids only grow, and MAM and history read
			 * in id order: a line older than what causeway
			 * archived already cannot go after it. */
			im->lines_older++;
		} else if ((id = store_archive_put(im->st, room, l->stamp,
		    l->nick, l->body, l->sid)) < 0) {
			r = -1;
		} else {
			strset_add(&sids, l->sid);
			added++;
			r = note_owners(im, key, &who, &runs, l->owners, id);
		}
	}
	if (r == 0)
		r = close_runs(im, key, &who, runs);
	strset_clear(&who);
	free(runs);
	strset_clear(&sids);
	if (r == 0 && added > 0 && store_archive_trim(im->st, room) < 0)
		r = -1;
	im->lines += added;
	im->archives += added > 0;
	if (r == 0 && added > 0)
		log_info("%s: %s: %lu lines of history imported", im->file, key,
		    added);
out:
	free(key);
	for (size_t i = 0; i < cl->n; i++)
		line_free(&cl->ring[(cl->head + i) % cl->cap]);
	cl->n = cl->head = 0;
	free(cl->server);
	free(cl->chan);
	cl->server = cl->chan = NULL;
	return r;
}

/* A whole number of the component's section, or -1 when the key is
 * not set (or this causeway has no such key). */
static long
component_number(struct import *im, const char *key)
{
	const char *v = config_declares(im->sec, key) ?
	    config_str(im->sec, key) : NULL;
	char *end;
	errno = 0;
	long n = v != NULL ? strtol(v, &end, 10) : -1;
	return v == NULL || errno != 0 || end == v || *end != '\0' ? -1 : n;
}

static int
import_history(struct import *im)
{
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(im->bib, sql_log, -1, &s, NULL) != SQLITE_OK) {
		log_error("%s: reading the log: %s", im->file,
		    sqlite3_errmsg(im->bib));
		return -1;
	}
	/* The component's retention, where this causeway has one
	 * (history_days, history_max): what it would delete at its next
	 * start is not imported. */
	long days = component_number(im, "history_days");
	long max = component_number(im, "history_max");
	struct chan_lines cl = { .cap = max > 0 ? (size_t)max :
	    store_archive_keep(im->st) };
	cl.ring = xcalloc(cl.cap, sizeof(*cl.ring));
	time_t now = time(NULL);
	sqlite3_int64 oldest = days > 0 ? (sqlite3_int64)now - days * 86400 :
	    0;
	int rc, r = 0;
	while (r == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *server = col_text(s, 0), *chan = col_text(s, 1);
		const char *nick = col_text(s, 3), *body = col_text(s, 4);
		if (server == NULL || chan == NULL) {
			im->lines_bad++;
			continue;
		}
		if (cl.server != NULL && (strcmp(cl.server, server) != 0 ||
		    strcmp(cl.chan, chan) != 0))
			r = flush_channel(im, &cl);
		if (cl.server == NULL) {
			cl.server = xstrdup(server);
			cl.chan = xstrdup(chan);
		}
		sqlite3_int64 stamp = sqlite3_column_int64(s, 2);
		if (sqlite3_column_type(s, 2) != SQLITE_INTEGER || stamp < 0 ||
		    stamp > (sqlite3_int64)now + FUTURE_SLACK ||
		    !text_ok(nick, LINE_NICK_MAX) || body == NULL ||
		    strlen(body) > LINE_BODY_MAX) {
			im->lines_bad++;
			continue;
		}
		if (stamp < oldest) {
			im->lines_pruned++;
			continue;
		}
		const char *uuid = col_text(s, 5);
		char *sid = sid_ok(uuid) ? xstrdup(uuid) : derived_sid(server,
		    chan, stamp, nick, body, sqlite3_column_int64(s, 6));
		if (sid == NULL) {
			r = -1;
			break;
		}
		const char *owners = col_text(s, 8);
		struct line l = { .stamp = (time_t)stamp, .nick = xstrdup(nick),
		    .body = xstrdup(body), .sid = sid,
		    .owners = owners ? xstrdup(owners) : NULL };
		if (cl.n < cl.cap) {
			cl.ring[(cl.head + cl.n++) % cl.cap] = l;
		} else {
			/* Past the retention: the oldest goes. */
			line_free(&cl.ring[cl.head]);
			cl.ring[cl.head] = l;
			cl.head = (cl.head + 1) % cl.cap;
			im->lines_pruned++;
		}
	}
	if (r == 0 && rc != SQLITE_DONE) {
		log_error("%s: reading the log: %s", im->file,
		    sqlite3_errmsg(im->bib));
		r = -1;
	}
	if (r == 0 && cl.server != NULL)
		r = flush_channel(im, &cl);
	else if (cl.server != NULL) {
		for (size_t i = 0; i < cl.n; i++)
			line_free(&cl.ring[(cl.head + i) % cl.cap]);
		free(cl.server);
		free(cl.chan);
	}
	free(cl.ring);
	sqlite3_finalize(s);
	return r;
}

/*
 * A channel this run made persistent: the imported history is what the
 * user already read through biboumi, so the first join in causeway
 * replays only what is said from now on (as after any leave).
 */
static int
mark_seen(struct import *im)
{
	for (size_t i = 0; i < im->made_persistent.n; i++) {
		char *jid = xstrdup(im->made_persistent.items[i]);
		char *key = strchr(jid, '\n');
		*key++ = '\0';
		long long room = store_archive_room(im->st, im->domain, key, 0);
		struct store_archive_query q = { .room = room, .max = 1,
		    .backward = 1 };
		struct store_archive_msg *v = NULL;
		size_t n = 0;
		int r = room < 0 ? -1 : 0;
		if (room > 0 && (r = store_archive_query(im->st, &q, &v,
		    &n)) == 0 && n == 1)
			r = store_room_seen(im->st, im->domain, jid, key,
			    v[0].id);
		store_archive_msgs_free(v, n);
		free(jid);
		if (r != 0)
			return -1;
	}
	return 0;
}

/* ---- the command ---- */

/* The IRC component to import into, or NULL (logged). */
static const struct config_section *
pick_component(const struct config *cfg, const char *domain)
{
	const struct config_section *sec, *found = NULL;
	size_t nirc = 0;
	for (size_t i = 0; (sec = config_section_at(cfg, "component", i));
	    i++) {
		int irc = strcmp(config_str(sec, "backend"), "irc") == 0;
		if (domain != NULL && strcasecmp(config_section_arg(sec),
		    domain) == 0) {
			if (!irc) {
				log_error("--component %s: not an IRC component "
				    "(backend = %s)", domain,
				    config_str(sec, "backend"));
				return NULL;
			}
			return sec;
		}
		if (irc) {
			nirc++;
			found = sec;
		}
	}
	if (domain != NULL) {
		log_error("--component %s: no such component in the "
		    "configuration", domain);
		return NULL;
	}
	if (nirc == 0) {
		log_error("the configuration has no IRC component (backend = "
		    "irc) to import into");
		return NULL;
	}
	if (nirc > 1) {
		log_error("the configuration has %zu IRC components: say which "
		    "one is biboumi's hostname with --component DOMAIN", nirc);
		return NULL;
	}
	return found;
}

static int
run(struct import *im)
{
	if (store_begin(im->st) != 0)
		return -1;
	int r = each_row(im, sql_globals, import_global);
	if (r == 0)
		r = each_row(im, sql_servers, import_server);
	if (r == 0)
		r = each_row(im, sql_channels, import_channel);
	if (r == 0)
		r = each_row(im, sql_roster, import_roster_item);
	if (r == 0)
		r = import_history(im);
	if (r == 0)
		r = mark_seen(im);
	int code = sqlite3_errcode(im->bib);
	if (r != 0 && code != SQLITE_OK && code != SQLITE_ROW &&
	    code != SQLITE_DONE)
		log_error("%s: reading it: %s", im->file,
		    sqlite3_errmsg(im->bib));
	return store_end(im->st, r == 0) == 0 && r == 0 ? 0 : -1;
}

int
import_biboumi(const struct config *cfg, const char *database,
    const char *key_file, const char *file, const char *domain)
{
	struct import im = { .file = file, .cfg = cfg };
	im.sec = pick_component(cfg, domain);
	if (im.sec == NULL)
		return 1;
	im.domain = config_section_arg(im.sec);
	im.fixed = config_str(im.sec, "fixed_server");
	if (im.fixed != NULL && *im.fixed == '\0')
		im.fixed = NULL;
	im.backend = backend_find("irc");
	if (im.backend == NULL) {
		log_error("this causeway has no IRC backend");
		return 1;
	}
	im.bib = bib_open(file);
	if (im.bib == NULL)
		return 1;
	long pid = 0;
	int status = 1;
	if (store_in_use(database, &pid)) {
		log_error("%s is in use by process %ld (a running causeway?): "
		    "stop it, then import; nothing imported", database, pid);
		goto out;
	}
	im.st = store_open(database);
	if (im.st == NULL) {
		log_error("cannot open the database %s; nothing imported",
		    database);
		goto out;
	}
	im.key = secret_key_load(key_file);
	if (im.key == NULL) {
		log_error("cannot use the key file %s; nothing imported",
		    key_file);
		goto out;
	}
	if (run(&im) != 0) {
		log_error("%s: the import failed and was rolled back; nothing "
		    "imported", file);
		goto out;
	}
	printf("%s: imported into %s: %zu users (%u new); %u values and %u "
	    "settings (%u already set); %u channel settings, %u persistent "
	    "(%u already set); %lu history lines in %u channels (%lu already "
	    "there, %lu older than the archive, %lu past the retention, %lu "
	    "unreadable; %lu stretches of membership); %u not carried over, "
	    "%u skipped (see the log)\n",
	    file, im.domain, im.users.n, im.users_new, im.values, im.settings,
	    im.values_kept + im.settings_kept, im.rooms, im.persistent,
	    im.rooms_kept, im.lines, im.archives, im.lines_there,
	    im.lines_older, im.lines_pruned, im.lines_bad, im.spans,
	    im.not_carried,
	    im.skipped);
	status = 0;
out:
	store_close(im.st);
	secret_key_free(im.key);
	sqlite3_close(im.bib);
	strset_clear(&im.users);
	strset_clear(&im.persistent_by_default);
	strset_clear(&im.made_persistent);
	for (size_t i = 0; i < im.owner_raw.n; i++)
		free(im.owner_norm[i]);
	free(im.owner_norm);
	strset_clear(&im.owner_raw);
	return status;
}

#else /* !ENABLE_IRC */
#include "import_biboumi.h"
#include "log.h"

int
import_biboumi(const struct config *cfg, const char *database,
    const char *key_file, const char *file, const char *domain)
{
	log_error("this causeway is built without the IRC backend: nothing "
	    "to import biboumi's database into");
	return 1;
}
#endif
