/*
 * Unit tests of the store's room settings and archive: the write-behind
 * queue (nothing written until a flush, everything written by
 * store_close), ids that keep growing across a reopen, retention,
 * queries with every filter and both directions, and the archive going
 * with its last reference.  Prints the batched write rate as a figure
 * (not a check: timing never fails a test).
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "log.h"
#include "store.h"
#include "tap.h"

static char dir[] = "/tmp/cw-test-archive-XXXXXX";
static char path[4096];

/* Rows in the archive table, read through a second connection (so only
 * what was committed counts). */
static int
rows_on_disk(void)
{
	sqlite3 *db;
	sqlite3_stmt *s;
	int n = -1;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) !=
	    SQLITE_OK)
		return -1;
	if (sqlite3_prepare_v2(db, "SELECT count(*) FROM archive", -1, &s,
	    NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
		n = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return n;
}

static void
fresh(void)
{
	unlink(path);
	char side[4200];
	snprintf(side, sizeof(side), "%s-wal", path);
	unlink(side);
	snprintf(side, sizeof(side), "%s-shm", path);
	unlink(side);
}

static void
test_settings(void)
{
	fresh();
	struct store *st = store_open(path);
	CHECK(st != NULL);
	if (st == NULL)
		return;
	struct store_room r;
	CHECK(store_user_add(st, "c", "a@x") == 1);
	CHECK(store_room_get(st, "c", "a@x", "#r%s", &r) == 0);
	CHECK(r.persistent == 0 && r.encoding == NULL && r.seen == 0);
	CHECK(store_room_set(st, "c", "a@x", "#r%s", 1, "ISO-8859-15") == 0);
	CHECK(store_room_seen(st, "c", "a@x", "#r%s", 42) == 0);
	/* Settings again: seen stays. */
	CHECK(store_room_set(st, "c", "a@x", "#r%s", 1, "ISO-8859-1") == 0);
	CHECK(store_room_get(st, "c", "a@x", "#r%s", &r) == 1);
	CHECK(r.persistent == 1 && r.seen == 42);
	CHECK_STR(r.encoding, "ISO-8859-1");
	free(r.encoding);
	/* Unregistering takes the settings with it. */
	CHECK(store_user_remove(st, "c", "a@x") == 1);
	CHECK(store_room_get(st, "c", "a@x", "#r%s", &r) == 0);
	store_close(st);
}

static void
test_queue_and_close(void)
{
	fresh();
	struct store *st = store_open(path);
	CHECK(st != NULL);
	if (st == NULL)
		return;
	long long room = store_archive_room(st, "c", "#r%s", 1);
	CHECK(room > 0);
	CHECK(store_archive_room(st, "c", "#r%s", 1) == room);
	CHECK(store_archive_room(st, "c", "#other%s", 0) == 0);
	char sid[64];
	long long first = store_archive_add(st, room, 1000, "bob", "one", sid,
	    sizeof(sid));
	CHECK(first == 1);
	CHECK(strncmp(sid, "1-", 2) == 0 && strlen(sid) == 18);
	CHECK(store_archive_add(st, room, 1001, "bob", "two", NULL, 0) == 2);
	/* Queued, not written. */
	CHECK(store_archive_queued(st) == 2);
	CHECK(rows_on_disk() == 0);
	CHECK(store_archive_flush(st) == 2);
	CHECK(rows_on_disk() == 2);
	CHECK(store_archive_add(st, room, 1002, "eve", "three", NULL, 0) == 3);
	/* store_close writes what is queued. */
	store_close(st);
	CHECK(rows_on_disk() == 3);
	/* Ids continue after a reopen. */
	st = store_open(path);
	CHECK(st != NULL);
	if (st == NULL)
		return;
	CHECK(store_archive_last(st) == 3);
	CHECK(store_archive_add(st, room, 1003, "eve", "four", NULL, 0) == 4);
	store_close(st);
}

static void
test_queries(void)
{
	fresh();
	struct store *st = store_open(path);
	if (st == NULL) {
		CHECK(st != NULL);
		return;
	}
	long long room = store_archive_room(st, "c", "#q%s", 1);
	long long other = store_archive_room(st, "c", "#o%s", 1);
	for (int i = 1; i <= 10; i++) {
		char body[16];
		snprintf(body, sizeof(body), "m%d", i);
		store_archive_add(st, room, 100 * i, i % 2 ? "odd" : "even",
		    body, NULL, 0);
		store_archive_add(st, other, 100 * i, "x", body, NULL, 0);
	}
	/* Rows of room: ids 1, 3, 5, ... 19. */
	struct store_archive_msg *v;
	size_t n;
	struct store_archive_query q = { .room = room, .max = 3 };
	CHECK(store_archive_query(st, &q, &v, &n) == 0 && n == 3);
	CHECK(n == 3 && strcmp(v[0].body, "m1") == 0 &&
	    strcmp(v[2].body, "m3") == 0 && v[0].stamp == 100);
	store_archive_msgs_free(v, n);
	CHECK(store_archive_queued(st) == 0);       /* reads flush */
	q.backward = 1;
	CHECK(store_archive_query(st, &q, &v, &n) == 0 && n == 3);
	/* The newest three, oldest first. */
	CHECK(n == 3 && strcmp(v[0].body, "m8") == 0 &&
	    strcmp(v[2].body, "m10") == 0);
	store_archive_msgs_free(v, n);
	struct store_archive_query f = { .room = room, .max = 100,
	    .nick = "even", .start = 300, .end = 800 };
	CHECK(store_archive_query(st, &f, &v, &n) == 0 && n == 3);
	CHECK(n == 3 && strcmp(v[0].body, "m4") == 0);
	store_archive_msgs_free(v, n);
	CHECK(store_archive_count(st, &f) == 3);
	struct store_archive_query a = { .room = room, .max = 100,
	    .after = 15 };
	CHECK(store_archive_count(st, &a) == 2);       /* ids 17, 19 */
	struct store_archive_query b = { .room = room, .max = 100,
	    .before = 5 };
	CHECK(store_archive_count(st, &b) == 2);       /* ids 1, 3 */
	CHECK(store_archive_has(st, room, 3) == 1);
	CHECK(store_archive_has(st, room, 4) == 0);     /* the other room's */
	store_close(st);
}

static void
test_retention_and_forget(void)
{
	fresh();
	struct store *st = store_open(path);
	if (st == NULL) {
		CHECK(st != NULL);
		return;
	}
	store_archive_set_keep(st, 5);
	CHECK(store_user_add(st, "c", "a@x") == 1);
	CHECK(store_user_add(st, "c", "b@x") == 1);
	CHECK(store_room_set(st, "c", "a@x", "#k%s", 1, NULL) == 0);
	CHECK(store_room_set(st, "c", "b@x", "#k%s", 1, NULL) == 0);
	long long room = store_archive_room(st, "c", "#k%s", 1);
	for (int i = 0; i < 12; i++)
		store_archive_add(st, room, 1, "n", "b", NULL, 0);
	CHECK(store_archive_flush(st) == 12);
	CHECK(rows_on_disk() == 5);
	struct store_archive_msg *v;
	size_t n;
	struct store_archive_query q = { .room = room, .max = 100 };
	CHECK(store_archive_query(st, &q, &v, &n) == 0 && n == 5);
	CHECK(n == 5 && v[0].id == 8 && v[4].id == 12);  /* the newest */
	store_archive_msgs_free(v, n);
	/* One reference left: the archive stays, queued rows included. */
	store_archive_add(st, room, 1, "n", "queued", NULL, 0);
	CHECK(store_room_set(st, "c", "a@x", "#k%s", 0, NULL) == 0);
	CHECK(store_archive_room(st, "c", "#k%s", 0) == room);
	CHECK(rows_on_disk() == 5);
	/* The last one goes: so does the archive. */
	CHECK(store_room_set(st, "c", "b@x", "#k%s", 0, NULL) == 0);
	CHECK(store_archive_room(st, "c", "#k%s", 0) == 0);
	CHECK(rows_on_disk() == 0);
	store_close(st);
}

/* A figure, not a check: messages per second through the batched
 * writes (200 a batch, as archive.c flushes them). */
static void
test_write_rate(void)
{
	fresh();
	struct store *st = store_open(path);
	if (st == NULL) {
		CHECK(st != NULL);
		return;
	}
	long long room = store_archive_room(st, "c", "#fast%s", 1);
	const int total = 100000;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < total; i++) {
		store_archive_add(st, room, 1700000000 + i, "somebody",
		    "a line of an ordinary length, about sixty bytes of text",
		    NULL, 0);
		if (store_archive_queued(st) >= 200)
			store_archive_flush(st);
	}
	store_archive_flush(st);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("# archive: %d messages in %.2f s (%.0f/s, batches of 200, "
	    "retention %d pruning included)\n", total, secs, total / secs,
	    STORE_ARCHIVE_KEEP);
	CHECK(rows_on_disk() == STORE_ARCHIVE_KEEP);
	store_close(st);
}

int
main(void)
{
	log_init(LOG_LEVEL_WARN, 0);
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 99;
	}
	snprintf(path, sizeof(path), "%s/causeway.db", dir);
	RUN(test_settings);
	RUN(test_queue_and_close);
	RUN(test_queries);
	RUN(test_retention_and_forget);
	RUN(test_write_rate);
	fresh();
	rmdir(dir);
	return TAP_DONE();
}
