/*
 * Unit tests of the store's room settings and archive: the write-behind
 * queue (nothing written until a flush, everything written by
 * store_close), ids that keep growing across a reopen, retention,
 * queries with every filter and both directions, retention by age and
 * count, stretches of membership and the reader filter.  Prints the batched write rate as a figure
 * (not a check: timing never fails a test).
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <sqlite3.h>

#include "archive.h"
#include "causeway.h"
#include "log.h"
#include "store.h"
#include "tap.h"

struct causeway *cw;

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
	CHECK(store_archive_has(st, room, 3, NULL) == 1);
	CHECK(store_archive_has(st, room, 4, NULL) == 0);  /* the other room's */
	store_close(st);
}

static void
test_retention(void)
{
	fresh();
	struct store *st = store_open(path);
	if (st == NULL) {
		CHECK(st != NULL);
		return;
	}
	store_archive_set_keep(st, 5);
	CHECK(store_user_add(st, "c", "a@x") == 1);
	CHECK(store_room_set(st, "c", "a@x", "#k%s", 1, NULL) == 0);
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
	/* Nobody persists it any more: the archive stays (it is everyone's
	 * who was in the room), retention decides. */
	CHECK(store_room_set(st, "c", "a@x", "#k%s", 0, NULL) == 0);
	CHECK(store_archive_room(st, "c", "#k%s", 0) == room);
	CHECK(rows_on_disk() == 5);
	store_archive_set_keep(st, 1000);

	/* By age and by count, per component: stamps 100..109 in #k,
	 * another component's old rows untouched. */
	long long other = store_archive_room(st, "d", "#k%s", 1);
	for (int i = 0; i < 10; i++) {
		store_archive_add(st, room, 100 + i, "n", "aged", NULL, 0);
		store_archive_add(st, other, 100 + i, "n", "aged", NULL, 0);
	}
	/* Older than 105: the 5 rows of stamp 1 and 100..104 go. */
	CHECK(store_archive_expire(st, "c", 105, 0) == 10);
	CHECK(rows_on_disk() == 5 + 10);
	/* The newest 3 stay. */
	CHECK(store_archive_expire(st, "c", 0, 3) == 2);
	q.max = 100;
	CHECK(store_archive_query(st, &q, &v, &n) == 0 && n == 3);
	CHECK(n == 3 && v[0].stamp == 107 && v[2].stamp == 109);
	store_archive_msgs_free(v, n);
	CHECK(store_archive_expire(st, "c", 0, 0) == 0);   /* no limits */
	CHECK(rows_on_disk() == 3 + 10);
	store_close(st);
}

/*
 * Stretches of membership and the reader filter: a user reads only the
 * ids archived while a stretch was open; a join right after a leave
 * continues the stretch; reopening the store ends open stretches;
 * expired archives take their stretches with them, and ids never go
 * back even when the archive is empty.
 */
static void
test_members(void)
{
	fresh();
	struct store *st = store_open(path);
	if (st == NULL) {
		CHECK(st != NULL);
		return;
	}
	long long room = store_archive_room(st, "c", "#m%s", 1);
	store_archive_add(st, room, 10, "x", "before anyone", NULL, 0);  /* 1 */
	CHECK(store_member_any(st, "c", "a@x", "#m%s") == 0);
	CHECK(store_member_open(st, "c", "a@x", "#m%s") == 0);
	CHECK(store_member_open(st, "c", "a@x", "#m%s") == 0);   /* no-op */
	CHECK(store_member_any(st, "c", "a@x", "#m%s") == 1);
	CHECK(store_member_any(st, "c", "a@x", "#other%s") == 0);
	CHECK(store_member_any(st, "c", "b@x", "#m%s") == 0);
	store_archive_add(st, room, 11, "x", "a in", NULL, 0);          /* 2 */
	CHECK(store_member_close(st, "c", "a@x", "#m%s") == 0);
	store_archive_add(st, room, 12, "x", "a out", NULL, 0);         /* 3 */
	CHECK(store_member_open(st, "c", "b@x", "#m%s") == 0);
	store_archive_add(st, room, 13, "x", "b in", NULL, 0);          /* 4 */
	/* a back, and out, and in again with nothing said: one stretch */
	CHECK(store_member_open(st, "c", "a@x", "#m%s") == 0);
	CHECK(store_member_close(st, "c", "a@x", "#m%s") == 0);
	CHECK(store_member_open(st, "c", "a@x", "#m%s") == 0);
	store_archive_add(st, room, 14, "x", "both in", NULL, 0);       /* 5 */

	struct store_archive_msg *v;
	size_t n;
	struct store_archive_query q = { .room = room, .max = 100,
	    .reader = "a@x" };
	CHECK(store_archive_query(st, &q, &v, &n) == 0 && n == 2);
	CHECK(n == 2 && v[0].id == 2 && v[1].id == 5);
	store_archive_msgs_free(v, n);
	CHECK(store_archive_count(st, &q) == 2);
	q.backward = 1;
	q.max = 1;
	CHECK(store_archive_query(st, &q, &v, &n) == 0 && n == 1 &&
	    v[0].id == 5);
	store_archive_msgs_free(v, n);
	q.reader = "b@x";
	q.max = 100;
	CHECK(store_archive_count(st, &q) == 2);           /* 4 and 5 */
	q.reader = "nobody@x";
	CHECK(store_archive_count(st, &q) == 0);
	q.reader = NULL;
	CHECK(store_archive_count(st, &q) == 5);
	CHECK(store_archive_has(st, room, 2, "a@x") == 1);
	CHECK(store_archive_has(st, room, 3, "a@x") == 0);  /* a was out */
	CHECK(store_archive_has(st, room, 1, "b@x") == 0);
	CHECK(store_archive_has(st, room, 3, NULL) == 1);
	/* One row per stretch: a's two, b's one (the rejoin with nothing
	 * said between continued a's second). */
	sqlite3 *db;
	sqlite3_stmt *s;
	int rows = -1;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) ==
	    SQLITE_OK && sqlite3_prepare_v2(db, "SELECT count(*) FROM "
	    "room_members", -1, &s, NULL) == SQLITE_OK) {
		if (sqlite3_step(s) == SQLITE_ROW)
			rows = sqlite3_column_int(s, 0);
		sqlite3_finalize(s);
	}
	sqlite3_close(db);
	CHECK(rows == 3);

	/* A restart: open stretches end at the last id of the old run. */
	store_close(st);
	st = store_open(path);
	if (st == NULL) {
		CHECK(st != NULL);
		return;
	}
	store_archive_add(st, room, 15, "x", "after the restart", NULL, 0);
	q.reader = "a@x";
	CHECK(store_archive_count(st, &q) == 2);
	CHECK(store_archive_has(st, room, 6, "a@x") == 0);

	/* Everything expires: the stretches go with it, and new ids stay
	 * above every id a stretch ever named. */
	CHECK(store_archive_expire(st, "c", 1000, 0) == 6);
	CHECK(store_member_any(st, "c", "a@x", "#m%s") == 0);
	CHECK(store_member_open(st, "c", "a@x", "#m%s") == 0);
	store_close(st);
	st = store_open(path);
	if (st == NULL) {
		CHECK(st != NULL);
		return;
	}
	CHECK(store_archive_last(st) >= 6);
	CHECK(store_archive_add(st, room, 2000, "x", "new", NULL, 0) >= 7);
	store_close(st);
}

/*
 * archive.c: two users' rooms in one channel report what they hear; a
 * message is archived once and both live copies carry its stanza-id,
 * whichever hears it first and in whatever order; repeated lines pair
 * up one by one; what a room heard before it attached or while its link
 * was down is not matched; attaching and the link make the membership.
 */
static void
test_heard(void)
{
	fresh();
	static struct causeway ctx;
	cw = &ctx;
	ctx.base = event_base_new();
	ctx.store = store_open(path);
	if (ctx.base == NULL || ctx.store == NULL) {
		CHECK(ctx.store != NULL);
		return;
	}
	int ra, rb, rc;          /* the rooms: only their addresses matter */
	struct archive *a = archive_attach("c", "#h%s", &ra, "a@x");
	CHECK(a != NULL);
	if (a == NULL)
		return;
	CHECK(archive_attach("c", "#h%s", &rb, "b@x") == a);
	CHECK(store_member_any(ctx.store, "c", "a@x", "#h%s") == 1);
	char s1[64], s2[64], s3[64], s4[64];
	long long i1 = archive_heard(a, &ra, "n", "hello", 0, s1, sizeof(s1));
	long long i2 = archive_heard(a, &rb, "n", "hello", 0, s2, sizeof(s2));
	CHECK(i1 > 0 && i1 == i2 && strcmp(s1, s2) == 0);
	/* b first, and two lines crossing */
	i1 = archive_heard(a, &rb, "b", "mine", 0, s1, sizeof(s1));
	i2 = archive_heard(a, &rb, "n", "yours", 0, s2, sizeof(s2));
	long long i3 = archive_heard(a, &ra, "n", "yours", 0, s3,
	    sizeof(s3));
	long long i4 = archive_heard(a, &ra, "b", "mine", 0, s4, sizeof(s4));
	CHECK(i1 > 0 && i1 == i4 && strcmp(s1, s4) == 0);
	CHECK(i2 > 0 && i2 == i3 && strcmp(s2, s3) == 0 && i1 != i2);
	/* the same line twice is two messages, matched in order */
	i1 = archive_heard(a, &ra, "n", "ok", 0, s1, sizeof(s1));
	i2 = archive_heard(a, &ra, "n", "ok", 0, s2, sizeof(s2));
	i3 = archive_heard(a, &rb, "n", "ok", 0, s3, sizeof(s3));
	i4 = archive_heard(a, &rb, "n", "ok", 0, s4, sizeof(s4));
	CHECK(i1 != i2 && i1 == i3 && i2 == i4);
	/* a third room attaching now does not take an old line as its own */
	i1 = archive_heard(a, &ra, "n", "early", 0, s1, sizeof(s1));
	CHECK(archive_attach("c", "#h%s", &rc, "c@x") == a);
	i2 = archive_heard(a, &rc, "n", "early", 0, s2, sizeof(s2));
	CHECK(i1 > 0 && i2 > 0 && i1 != i2);
	/* b's link down: its stretch ends; back, it matches nothing from
	 * while it was away */
	archive_set_down(a, &rb, 1);
	i1 = archive_heard(a, &ra, "n", "while b away", 0, s1, sizeof(s1));
	archive_set_down(a, &rb, 0);
	i2 = archive_heard(a, &rb, "n", "while b away", 0, s2, sizeof(s2));
	CHECK(i1 != i2);
	struct store_archive_query q = { .room = archive_room_id(a),
	    .max = 100, .reader = "b@x" };
	struct store_archive_msg *v;
	size_t n;
	CHECK(store_archive_query(ctx.store, &q, &v, &n) == 0);
	int saw_away = 0;
	for (size_t k = 0; k < n; k++)
		saw_away |= v[k].id == i1;
	CHECK(!saw_away && n > 0 && v[n - 1].id == i2);
	store_archive_msgs_free(v, n);
	/* each distinct message once: hello, mine, yours, ok, ok, early
	 * (twice: c's copy predates its attach), while b away (twice) */
	q.reader = NULL;
	CHECK(store_archive_count(ctx.store, &q) == 9);
	archive_detach(a, &rc);
	archive_detach(a, &rb);
	CHECK(store_member_any(ctx.store, "c", "b@x", "#h%s") == 1);
	/* b left: the next line is not b's to read */
	i1 = archive_heard(a, &ra, "n", "b gone", 0, s1, sizeof(s1));
	CHECK(store_archive_has(ctx.store, q.room, i1, "b@x") == 0);
	CHECK(store_archive_has(ctx.store, q.room, i1, "a@x") == 1);
	archive_detach(a, &ra);
	store_close(ctx.store);
	event_base_free(ctx.base);
	cw = NULL;
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
	RUN(test_retention);
	RUN(test_members);
	RUN(test_heard);
	RUN(test_write_rate);
	fresh();
	rmdir(dir);
	return TAP_DONE();
}
