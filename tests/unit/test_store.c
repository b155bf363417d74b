/*
 * Unit tests of the SQLite store.  Each test works in its own mkdtemp
 * directory.  The refusal tests compare the file byte-for-byte before and
 * after, since "refuse" must mean "do not touch".
 */
#include "autoconf.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <sqlite3.h>

#include "log.h"
#include "store.h"
#include "tap.h"

/*
 * synchronous is a per-connection setting, so another connection cannot
 * see the store's.  An auto-extension runs for every connection opened in
 * this process; armed, it hands us the store's own handle to ask.
 */
static int capture_armed;
static sqlite3 *captured_db;

static int
capture_db(sqlite3 *db, const char **errmsg,
    const struct sqlite3_api_routines *api)
{
	if (capture_armed)
		captured_db = db;
	return SQLITE_OK;
}

static char *
make_dir(void)
{
	char tmpl[] = "/tmp/cw-test-store-XXXXXX";
	if (mkdtemp(tmpl) == NULL) {
		perror("mkdtemp");
		exit(99);
	}
	return strdup(tmpl);
}

static void
remove_dir(char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char p[4096];
	while (d != NULL && (e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		unlink(p);
	}
	if (d != NULL)
		closedir(d);
	rmdir(dir);
	free(dir);
}

static char *
join(const char *dir, const char *name)
{
	char *p = malloc(strlen(dir) + strlen(name) + 2);
	sprintf(p, "%s/%s", dir, name);
	return p;
}

/* The whole file, malloc'd; *len set.  NULL if it cannot be read. */
static unsigned char *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	unsigned char *buf = malloc(n > 0 ? (size_t)n : 1);
	*len = fread(buf, 1, (size_t)n, f);
	fclose(f);
	return buf;
}

static int
same_bytes(const unsigned char *a, size_t alen, const unsigned char *b,
    size_t blen)
{
	return a != NULL && b != NULL && alen == blen &&
	    memcmp(a, b, alen) == 0;
}

static int
file_mode(const char *path)
{
	struct stat sb;
	if (stat(path, &sb) == -1)
		return -1;
	return (int)(sb.st_mode & 07777);
}

static int
exists(const char *path)
{
	struct stat sb;
	return stat(path, &sb) == 0;
}

/* One text value from SQL on a connection of our own. */
static char *
query_text(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *s;
	char *out = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
		return NULL;
	if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0))
		out = strdup((const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	return out;
}

static char *
query_other(const char *path, const char *sql)
{
	sqlite3 *db;
	char *out = NULL;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK)
		out = query_text(db, sql);
	sqlite3_close(db);
	return out;
}

/* A database made by the store, holding n users, closed again. */
static int
make_db(const char *path, int n)
{
	struct store *st = store_open(path);
	if (st == NULL)
		return -1;
	char jid[64];
	for (int i = 0; i < n; i++) {
		snprintf(jid, sizeof(jid), "user%04d@example.org", i);
		if (store_user_add(st, "irc.example.org", jid) != 1) {
			store_close(st);
			return -1;
		}
	}
	store_close(st);
	return 0;
}

/* Opening path must fail and leave it exactly as it was. */
static void
check_refused_unchanged(const char *path)
{
	size_t before_len = 0, after_len = 0;
	unsigned char *before = slurp(path, &before_len);
	int mode = file_mode(path);
	CHECK(before != NULL);

	struct store *st = store_open(path);
	CHECK(st == NULL);
	store_close(st);

	unsigned char *after = slurp(path, &after_len);
	CHECK(same_bytes(before, before_len, after, after_len));
	CHECK(file_mode(path) == mode);
	free(before);
	free(after);
}

static void
test_new_file_modes(void)
{
	char *dir = make_dir();
	char *path = join(dir, "causeway.db");
	char *wal = join(dir, "causeway.db-wal");
	char *shm = join(dir, "causeway.db-shm");

	struct store *st = store_open(path);
	CHECK(st != NULL);
	CHECK(file_mode(path) == 0600);
	CHECK(store_user_add(st, "irc.example.org", "a@example.org") == 1);
	/* The WAL lives while the connection does. */
	CHECK(exists(wal));
	CHECK(file_mode(wal) == 0600);
	CHECK(file_mode(shm) == 0600);
	store_close(st);
	CHECK(file_mode(path) == 0600);

	free(wal);
	free(shm);
	free(path);
	remove_dir(dir);
}

static void
test_pragmas(void)
{
	char *dir = make_dir();
	char *path = join(dir, "causeway.db");

	capture_armed = 1;
	captured_db = NULL;
	struct store *st = store_open(path);
	capture_armed = 0;
	CHECK(st != NULL);
	CHECK(captured_db != NULL);

	/* journal_mode=WAL is written into the file: anyone sees it. */
	char *jm = query_other(path, "PRAGMA journal_mode");
	CHECK_STR(jm, "wal");
	free(jm);

	/* The rest are per connection: ask the store's own. */
	if (captured_db != NULL) {
		char *v = query_text(captured_db, "PRAGMA synchronous");
		CHECK_STR(v, "1");
		free(v);
		v = query_text(captured_db, "PRAGMA foreign_keys");
		CHECK_STR(v, "1");
		free(v);
		v = query_text(captured_db, "PRAGMA busy_timeout");
		CHECK(v != NULL && atoi(v) > 0);
		free(v);
	}
	store_close(st);
	captured_db = NULL;

	free(path);
	remove_dir(dir);
}

static void
test_schema_version(void)
{
	char *dir = make_dir();
	char *path = join(dir, "causeway.db");

	CHECK(store_schema_latest() >= 1);
	struct store *st = store_open(path);
	CHECK(st != NULL);
	CHECK(store_schema_version(st) == store_schema_latest());
	store_close(st);

	char *v = query_other(path, "PRAGMA user_version");
	CHECK(v != NULL && atoi(v) == store_schema_latest());
	free(v);

	free(path);
	remove_dir(dir);
}

static void
test_reopen(void)
{
	char *dir = make_dir();
	char *path = join(dir, "causeway.db");

	struct store *st = store_open(path);
	CHECK(st != NULL);
	CHECK(store_user_add(st, "irc.example.org", "a@example.org") == 1);
	store_close(st);
	char *created1 = query_other(path,
	    "SELECT created FROM users WHERE jid = 'a@example.org'");
	CHECK(created1 != NULL);

	/* A re-run migration 1 would fail on CREATE TABLE users. */
	for (int i = 0; i < 3; i++) {
		st = store_open(path);
		CHECK(st != NULL);
		if (st == NULL)
			break;
		CHECK(store_schema_version(st) == store_schema_latest());
		CHECK(store_user_exists(st, "irc.example.org",
		    "a@example.org") == 1);
		store_close(st);
	}
	char *created2 = query_other(path,
	    "SELECT created FROM users WHERE jid = 'a@example.org'");
	CHECK_STR(created2, created1);
	/* Reopening creates no table twice: users, user_fields, contacts,
	 * pending, room_settings, archive_rooms, archive, backend_state,
	 * room_members. */
	char *n = query_other(path, "SELECT count(*) FROM sqlite_master "
	    "WHERE type = 'table'");
	CHECK_STR(n, "9");
	free(n);
	free(created1);
	free(created2);
	free(path);
	remove_dir(dir);
}

struct collect {
	char jids[8][64];
	int n;
	int stop_after;
};

static int
collect_cb(void *arg, const char *jid)
{
	struct collect *c = arg;
	if (c->n < 8)
		snprintf(c->jids[c->n], sizeof(c->jids[0]), "%s", jid);
	c->n++;
	return c->stop_after > 0 && c->n >= c->stop_after;
}

struct remover {
	struct store *st;
	int n;
};

/* Removes every user it is given: the store must allow that. */
static int
remove_cb(void *arg, const char *jid)
{
	struct remover *r = arg;
	if (store_user_remove(r->st, "sms.example.org", jid) == 1)
		r->n++;
	return 0;
}

static void
test_users(void)
{
	char *dir = make_dir();
	char *path = join(dir, "causeway.db");
	const char *irc = "irc.example.org", *sms = "sms.example.org";

	struct store *st = store_open(path);
	CHECK(st != NULL);

	CHECK(store_user_exists(st, irc, "a@example.org") == 0);
	CHECK(store_user_add(st, irc, "b@example.org") == 1);
	CHECK(store_user_add(st, irc, "a@example.org") == 1);
	CHECK(store_user_add(st, irc, "a@example.org") == 0);
	CHECK(store_user_add(st, sms, "a@example.org") == 1);
	CHECK(store_user_add(st, sms, "c@example.org") == 1);

	CHECK(store_user_exists(st, irc, "a@example.org") == 1);
	CHECK(store_user_exists(st, irc, "c@example.org") == 0);
	CHECK(store_user_exists(st, sms, "c@example.org") == 1);
	CHECK(store_user_exists(st, "email.example.org", "a@example.org")
	    == 0);

	struct collect c = { .n = 0 };
	CHECK(store_user_foreach(st, irc, collect_cb, &c) == 0);
	CHECK(c.n == 2);
	CHECK_STR(c.jids[0], "a@example.org");
	CHECK_STR(c.jids[1], "b@example.org");

	struct collect stop = { .n = 0, .stop_after = 1 };
	CHECK(store_user_foreach(st, irc, collect_cb, &stop) == 0);
	CHECK(stop.n == 1);

	struct collect none = { .n = 0 };
	CHECK(store_user_foreach(st, "email.example.org", collect_cb, &none)
	    == 0);
	CHECK(none.n == 0);

	CHECK(store_user_remove(st, irc, "a@example.org") == 1);
	CHECK(store_user_remove(st, irc, "a@example.org") == 0);
	CHECK(store_user_exists(st, irc, "a@example.org") == 0);
	/* The same JID of another component is untouched. */
	CHECK(store_user_exists(st, sms, "a@example.org") == 1);

	struct remover r = { .st = st, .n = 0 };
	CHECK(store_user_foreach(st, sms, remove_cb, &r) == 0);
	CHECK(r.n == 2);
	struct collect after = { .n = 0 };
	CHECK(store_user_foreach(st, sms, collect_cb, &after) == 0);
	CHECK(after.n == 0);

	CHECK(store_user_add(st, NULL, "a@example.org") == -1);
	CHECK(store_user_exists(st, irc, NULL) == -1);
	store_close(st);

	/* And it all survives a reopen. */
	st = store_open(path);
	CHECK(st != NULL);
	struct collect again = { .n = 0 };
	CHECK(store_user_foreach(st, irc, collect_cb, &again) == 0);
	CHECK(again.n == 1);
	CHECK_STR(again.jids[0], "b@example.org");
	store_close(st);

	free(path);
	remove_dir(dir);
}

static void
test_readonly_file_refused(void)
{
	char *dir = make_dir();
	char *path = join(dir, "causeway.db");

	CHECK(make_db(path, 3) == 0);
	CHECK(chmod(path, 0400) == 0);
	check_refused_unchanged(path);
	CHECK(file_mode(path) == 0400);

	free(path);
	remove_dir(dir);
}

static void
test_random_bytes_refused(void)
{
	char *dir = make_dir();
	char *path = join(dir, "causeway.db");

	/* Fixed seed: a failure must reproduce. */
	unsigned char buf[8192];
	unsigned x = 2463534242u;
	for (size_t i = 0; i < sizeof(buf); i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		buf[i] = (unsigned char)x;
	}
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	CHECK(fd != -1);
	CHECK(write(fd, buf, sizeof(buf)) == (ssize_t)sizeof(buf));
	close(fd);

	check_refused_unchanged(path);

	free(path);
	remove_dir(dir);
}

static void
test_corrupt_refused(void)
{
	char *dir = make_dir();
	char *path = join(dir, "causeway.db");

	/* Enough users for several b-tree pages. */
	CHECK(make_db(path, 400) == 0);

	size_t len = 0;
	unsigned char *db = slurp(path, &len);
	CHECK(db != NULL && len >= 100);
	if (db == NULL || len < 100) {
		free(db);
		free(path);
		remove_dir(dir);
		return;
	}
	size_t page = ((size_t)db[16] << 8) | db[17];
	if (page == 1)
		page = 65536;
	free(db);
	CHECK(len >= 4 * page);

	/* From the middle of page 2 to the middle of page 3. */
	unsigned char junk[65536];
	for (size_t i = 0; i < page; i++)
		junk[i] = (unsigned char)(0xA5 ^ (i * 7));
	int fd = open(path, O_WRONLY);
	CHECK(fd != -1);
	CHECK(pwrite(fd, junk, page, (off_t)(page + page / 2))
	    == (ssize_t)page);
	close(fd);

	check_refused_unchanged(path);

	free(path);
	remove_dir(dir);
}

static void
test_newer_schema_refused(void)
{
	char *dir = make_dir();
	char *path = join(dir, "causeway.db");

	CHECK(make_db(path, 2) == 0);
	sqlite3 *db;
	CHECK(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL)
	    == SQLITE_OK);
	CHECK(sqlite3_exec(db, "PRAGMA user_version = 999", NULL, NULL, NULL)
	    == SQLITE_OK);
	CHECK(sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL,
	    NULL) == SQLITE_OK);
	sqlite3_close(db);

	check_refused_unchanged(path);

	char *v = query_other(path, "PRAGMA user_version");
	CHECK_STR(v, "999");
	free(v);
	free(path);
	remove_dir(dir);
}

/*
 * Migration 5 on a version-4 file: the archive and the settings stay,
 * the membership table comes empty (keeping a room persistent before
 * the upgrade grants nothing), and removing the user removes its rows.
 */
static void
test_migration_members(void)
{
	char *dir = make_dir();
	char *path = join(dir, "causeway.db");
	struct store *st = store_open(path);
	CHECK(st != NULL);
	if (st == NULL)
		return;
	CHECK(store_user_add(st, "c", "a@x") == 1);
	CHECK(store_room_set(st, "c", "a@x", "#r%s", 1, NULL) == 0);
	long long room = store_archive_room(st, "c", "#r%s", 1);
	store_archive_add(st, room, 100, "n", "old", NULL, 0);
	store_close(st);
	/* Back to what version 4 wrote. */
	sqlite3 *db;
	CHECK(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL)
	    == SQLITE_OK);
	CHECK(sqlite3_exec(db, "DROP TRIGGER users_members_delete; "
	    "DROP TABLE room_members; DROP INDEX archive_stamp; "
	    "PRAGMA user_version = 4; PRAGMA wal_checkpoint(TRUNCATE)",
	    NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(db);
	st = store_open(path);
	CHECK(st != NULL);
	if (st == NULL)
		return;
	CHECK(store_schema_version(st) == 5);
	struct store_archive_query q = { .room = room, .max = 10 };
	CHECK(store_archive_count(st, &q) == 1);
	q.reader = "a@x";
	CHECK(store_archive_count(st, &q) == 0);
	CHECK(store_member_any(st, "c", "a@x", "#r%s") == 0);
	CHECK(store_member_open(st, "c", "a@x", "#r%s") == 0);
	CHECK(store_member_any(st, "c", "a@x", "#r%s") == 1);
	CHECK(store_user_remove(st, "c", "a@x") == 1);
	CHECK(store_member_any(st, "c", "a@x", "#r%s") == 0);
	/* Someone who never registered has rows all the same. */
	CHECK(store_member_open(st, "c", "guest@x", "#r%s") == 0);
	CHECK(store_member_any(st, "c", "guest@x", "#r%s") == 1);
	store_close(st);
	free(path);
	remove_dir(dir);
}

static void
test_missing_dir_refused(void)
{
	char *dir = make_dir();
	char *sub = join(dir, "nope");
	char *path = join(sub, "causeway.db");

	CHECK(store_open(path) == NULL);
	CHECK(!exists(sub));
	CHECK(!exists(path));

	free(path);
	free(sub);
	remove_dir(dir);
}

static void
test_wide_mode_opens(void)
{
	char *dir = make_dir();
	char *path = join(dir, "causeway.db");

	/* Warned about, not refused: the operator may share it on purpose. */
	CHECK(make_db(path, 1) == 0);
	CHECK(chmod(path, 0644) == 0);
	struct store *st = store_open(path);
	CHECK(st != NULL);
	CHECK(store_user_exists(st, "irc.example.org",
	    "user0000@example.org") == 1);
	store_close(st);
	CHECK(file_mode(path) == 0644);

	free(path);
	remove_dir(dir);
}

static void
test_relative_special_name(void)
{
	char *dir = make_dir();
	char cwd[4096];
	CHECK(getcwd(cwd, sizeof(cwd)) != NULL);
	CHECK(chdir(dir) == 0);

	/* Must be a file, not SQLite's in-memory database. */
	struct store *st = store_open(":memory:");
	CHECK(st != NULL);
	CHECK(store_user_add(st, "irc.example.org", "a@example.org") == 1);
	store_close(st);
	CHECK(file_mode(":memory:") == 0600);

	CHECK(chdir(cwd) == 0);
	remove_dir(dir);
}

static int
count_field(void *arg, const char *var, const void *value, size_t len,
    int sealed)
{
	int *n = arg;
	if (strcmp(var, "password") == 0 && sealed && len == 3 &&
	    memcmp(value, "\x01\x00\x02", 3) == 0)
		*n += 100;
	(*n)++;
	return 0;
}

static int
collect_contact(void *arg, const char *legacy, const char *name,
    const char *sub)
{
	char *buf = arg;
	size_t l = strlen(buf);
	snprintf(buf + l, 256 - l, "%s=%s/%s;", legacy, name ? name : "-", sub);
	return 0;
}

static int
take_two(void *arg, const char *xml)
{
	int *n = arg;
	if (*n >= 2)
		return 1;
	(*n)++;
	return 0;
}

static void
test_fields_contacts_pending(void)
{
	char *dir = make_dir();
	char *path = join(dir, "causeway.db");
	struct store *st = store_open(path);
	CHECK(st != NULL);
	if (st == NULL)
		return;
	CHECK(store_user_add(st, "c", "u@x") == 1);
	CHECK(store_field_set(st, "c", "u@x", "username", "bob", 3, 0) == 0);
	CHECK(store_field_set(st, "c", "u@x", "password", "\x01\x00\x02", 3,
	    1) == 0);
	CHECK(store_field_set(st, "c", "u@x", "username", "rob", 3, 0) == 0);
	int n = 0;
	CHECK(store_field_foreach(st, "c", "u@x", count_field, &n) == 0);
	CHECK(n == 102);

	char buf[256] = "";
	CHECK(store_contact_set(st, "c", "u@x", "echo", "Echo", "none") == 0);
	CHECK(store_contact_set(st, "c", "u@x", "echo", NULL, "both") == 0);
	CHECK(store_contact_set(st, "c", "u@x", "zed", NULL, "to") == 0);
	CHECK(store_contact_foreach(st, "c", "u@x", collect_contact, buf) == 0);
	CHECK_STR(buf, "echo=Echo/both;zed=-/to;");
	CHECK(store_contact_remove(st, "c", "u@x", "zed") == 1);
	CHECK(store_contact_remove(st, "c", "u@x", "zed") == 0);

	/* Removing the user removes fields and contacts with it. */
	CHECK(store_user_remove(st, "c", "u@x") == 1);
	n = 0;
	CHECK(store_field_foreach(st, "c", "u@x", count_field, &n) == 0);
	CHECK(n == 0);
	buf[0] = '\0';
	CHECK(store_contact_foreach(st, "c", "u@x", collect_contact, buf) == 0);
	CHECK_STR(buf, "");

	CHECK(store_pending_add(st, "c", "<message>1</message>") == 0);
	CHECK(store_pending_add(st, "c", "<message>2</message>") == 0);
	CHECK(store_pending_add(st, "c", "<message>3</message>") == 0);
	CHECK(store_pending_add(st, "d", "<message>x</message>") == 0);
	n = 0;
	CHECK(store_pending_take(st, "c", take_two, &n) == 2);
	n = 0;
	CHECK(store_pending_take(st, "c", take_two, &n) == 1);
	n = 0;
	CHECK(store_pending_take(st, "c", take_two, &n) == 0);
	store_close(st);
	free(path);
	remove_dir(dir);
}

struct state_seen {
	char text[512];
	int stop_after;
	int calls;
};

static int
state_collect(void *arg, const char *jid, const char *key,
    const void *value, size_t len)
{
	struct state_seen *seen = arg;
	size_t used = strlen(seen->text);
	snprintf(seen->text + used, sizeof(seen->text) - used, "%s|%s|%.*s;",
	    jid, key, (int)len, (const char *)value);
	return ++seen->calls == seen->stop_after;
}

static void
test_backend_state(void)
{
	char *dir = make_dir();
	char *path = join(dir, "causeway.db");
	struct store *st = store_open(path);
	CHECK(st != NULL);
	const char *gw = "sms.example.org";
	CHECK(store_user_add(st, gw, "a@example.org") == 1);
	CHECK(store_user_add(st, gw, "b@example.org") == 1);

	/* Binary values with NUL bytes come back whole, NUL-terminated. */
	CHECK(store_state_set(st, gw, "a@example.org", "out/2", "x\0y", 3) == 0);
	CHECK(store_state_set(st, gw, "a@example.org", "out/1", "one", 3) == 0);
	CHECK(store_state_set(st, gw, "b@example.org", "out/3", "three", 5) == 0);
	CHECK(store_state_set(st, gw, "", "next", "7", 1) == 0);
	CHECK(store_state_set(st, "other.example.org", "", "next", "9", 1) == 0);
	char *v = NULL;
	size_t len = 0;
	CHECK(store_state_get(st, gw, "a@example.org", "out/2", &v, &len) == 1);
	CHECK(len == 3 && v != NULL && memcmp(v, "x\0y", 4) == 0);
	free(v);
	CHECK(store_state_get(st, gw, "a@example.org", "none", &v, NULL) == 0);
	/* Replacing keeps one row. */
	CHECK(store_state_set(st, gw, "", "next", "8", 1) == 0);
	CHECK(store_state_get(st, gw, "", "next", &v, NULL) == 1);
	CHECK_STR(v, "8");
	free(v);

	/* Every user's rows with a prefix, ordered by jid then key; the
	 * other component's are not seen. */
	struct state_seen seen = { .text = "" };
	CHECK(store_state_foreach(st, gw, NULL, "out/", state_collect,
	    &seen) == 0);
	CHECK_STR(seen.text, "a@example.org|out/1|one;a@example.org|out/2|x;"
	    "b@example.org|out/3|three;");
	memset(&seen, 0, sizeof(seen));
	CHECK(store_state_foreach(st, gw, "b@example.org", "", state_collect,
	    &seen) == 0);
	CHECK_STR(seen.text, "b@example.org|out/3|three;");
	/* A callback may stop the walk. */
	memset(&seen, 0, sizeof(seen));
	seen.stop_after = 1;
	CHECK(store_state_foreach(st, gw, NULL, "", state_collect, &seen) == 0);
	CHECK(seen.calls == 1);

	CHECK(store_state_remove(st, gw, "a@example.org", "out/1") == 1);
	CHECK(store_state_remove(st, gw, "a@example.org", "out/1") == 0);
	/* Removing a user removes the user's rows, not the component's. */
	CHECK(store_user_remove(st, gw, "a@example.org") == 1);
	CHECK(store_state_get(st, gw, "a@example.org", "out/2", &v, NULL) == 0);
	CHECK(store_state_get(st, gw, "", "next", &v, NULL) == 1);
	free(v);
	CHECK(store_state_get(st, gw, "b@example.org", "out/3", &v, NULL) == 1);
	free(v);
	/* Expiry: only the prefix, only older rows. */
	CHECK(store_state_set(st, gw, "b@example.org", "core/sent/1", "x",
	    1) == 0);
	CHECK(store_state_expire(st, gw, "core/sent/", time(NULL) - 60)
	    == 0);
	CHECK(store_state_expire(st, gw, "core/sent/", time(NULL) + 60)
	    == 1);
	CHECK(store_state_get(st, gw, "b@example.org", "out/3", &v, NULL) == 1);
	free(v);
	/* Trimming: one user's rows under a prefix, the newest kept. */
	char key[32];
	for (int i = 0; i < 5; i++) {
		snprintf(key, sizeof(key), "corr/%d", i);
		CHECK(store_state_set(st, gw, "c@example.org", key, "x", 1) ==
		    0);
	}
	CHECK(store_state_set(st, gw, "d@example.org", "corr/0", "x", 1) ==
	    0);
	CHECK(store_state_set(st, gw, "c@example.org", "other", "x", 1) == 0);
	CHECK(store_state_trim(st, gw, "c@example.org", "corr/", 3) == 2);
	CHECK(store_state_get(st, gw, "c@example.org", "corr/0", &v, NULL) ==
	    0);
	CHECK(store_state_get(st, gw, "c@example.org", "corr/1", &v, NULL) ==
	    0);
	CHECK(store_state_get(st, gw, "c@example.org", "corr/4", &v, NULL) ==
	    1);
	free(v);
	CHECK(store_state_get(st, gw, "c@example.org", "other", &v, NULL) ==
	    1);
	free(v);
	CHECK(store_state_get(st, gw, "d@example.org", "corr/0", &v, NULL) ==
	    1);
	free(v);
	/* Rewriting an old row makes it the newest. */
	CHECK(store_state_set(st, gw, "c@example.org", "corr/2", "y", 1) == 0);
	CHECK(store_state_set(st, gw, "c@example.org", "corr/5", "x", 1) == 0);
	CHECK(store_state_trim(st, gw, "c@example.org", "corr/", 3) == 1);
	CHECK(store_state_get(st, gw, "c@example.org", "corr/3", &v, NULL) ==
	    0);
	CHECK(store_state_get(st, gw, "c@example.org", "corr/2", &v, NULL) ==
	    1);
	free(v);
	CHECK(store_state_trim(st, gw, NULL, "corr/", 3) == -1);
	/* Missing arguments are refused, not crashed on. */
	CHECK(store_state_set(st, gw, NULL, "k", "v", 1) == -1);
	CHECK(store_state_get(st, gw, "b@example.org", NULL, &v, NULL) == -1);
	store_close(st);
	free(path);
	remove_dir(dir);
}

/* The bulk writes the biboumi import uses: one transaction that rolls
 * back as a whole, room settings that never overwrite, archive rows
 * with a stanza-id of their own, found again by it. */
static void
test_bulk_import(void)
{
	char *dir = make_dir();
	char *path = join(dir, "causeway.db");
	struct store *st = store_open(path);
	CHECK(st != NULL);
	if (st == NULL)
		return;
	const char *gw = "irc.example.org", *u = "a@example.org";
	CHECK(store_user_add(st, gw, u) == 1);
	long long room = store_archive_room(st, gw, "#c%irc.x", 1);
	CHECK(room > 0);

	/* Rolled back: the user and the row are gone again. */
	CHECK(store_begin(st) == 0);
	CHECK(store_user_add(st, gw, "b@example.org") == 1);
	CHECK(store_archive_put(st, room, 100, "n", "gone", "u-0") > 0);
	CHECK(store_end(st, 0) == -1);
	CHECK(store_user_exists(st, gw, "b@example.org") == 0);
	CHECK(store_archive_find_sid(st, room, "u-0") == 0);

	CHECK(store_begin(st) == 0);
	CHECK(store_room_add(st, gw, u, "#c%irc.x", 1, "latin1", 7) == 1);
	/* Never overwritten. */
	CHECK(store_room_add(st, gw, u, "#c%irc.x", 0, NULL, 0) == 0);
	long long id1 = store_archive_put(st, room, 100, "carol", "one",
	    "12345678-aaaa");
	long long id2 = store_archive_put(st, room, 101, "dave", "two",
	    "b-2");
	CHECK(id1 > 0 && id2 > id1);
	CHECK(store_end(st, 1) == 0);
	struct store_room r;
	CHECK(store_room_get(st, gw, u, "#c%irc.x", &r) == 1);
	CHECK(r.persistent == 1 && r.seen == 7);
	CHECK_STR(r.encoding, "latin1");
	free(r.encoding);
	/* Found by the stanza-id it came with, not by its leading digits. */
	CHECK(store_archive_find_sid(st, room, "12345678-aaaa") == id1);
	CHECK(store_archive_find_sid(st, room, "b-2") == id2);
	CHECK(store_archive_find_sid(st, room, "nope") == 0);
	/* Ids keep growing past imported rows. */
	char sid[64];
	CHECK(store_archive_add(st, room, 102, "e", "three", sid,
	    sizeof(sid)) > id2);
	/* Not while rows are queued (they hold smaller ids). */
	CHECK(store_archive_put(st, room, 103, "n", "x", "q-1") == -1);
	CHECK(store_archive_flush(st) == 1);
	/* Retention. */
	store_archive_set_keep(st, 2);
	CHECK(store_archive_keep(st) == 2);
	CHECK(store_archive_trim(st, room) == 1);
	CHECK(store_archive_find_sid(st, room, "12345678-aaaa") == 0);
	CHECK(store_archive_put(st, room, 100, "n", "x", "") == -1);
	store_close(st);
	free(path);
	remove_dir(dir);
}

int
main(void)
{
	/* A typical umask: the 0600 modes must come from the store. */
	umask(022);
	log_init(LOG_LEVEL_WARN, 0);
	sqlite3_auto_extension((void (*)(void))capture_db);

	RUN(test_new_file_modes);
	RUN(test_pragmas);
	RUN(test_schema_version);
	RUN(test_reopen);
	RUN(test_users);
	RUN(test_readonly_file_refused);
	RUN(test_random_bytes_refused);
	RUN(test_corrupt_refused);
	RUN(test_newer_schema_refused);
	RUN(test_missing_dir_refused);
	RUN(test_migration_members);
	RUN(test_wide_mode_opens);
	RUN(test_relative_special_name);
	RUN(test_fields_contacts_pending);
	RUN(test_backend_state);
	RUN(test_bulk_import);
	return TAP_DONE();
}
