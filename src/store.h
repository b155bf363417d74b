/*
 * The store: everything causeway keeps across restarts.
 *
 * The functions here are the whole interface the rest of causeway sees;
 * they speak of users, components and messages, never of SQL, so that a
 * second engine (PostgreSQL, for several instances behind one ejabberd)
 * can implement the same functions.  The SQLite engine keeps one
 * connection on the loop thread, WAL mode, synchronous=NORMAL, every
 * statement static text prepared once, and schema changes as numbered
 * migrations keyed on PRAGMA user_version.
 */
#ifndef CAUSEWAY_STORE_H
#define CAUSEWAY_STORE_H

#include <stddef.h>
#include <time.h>

struct store;

/*
 * Open (creating with mode 0600 when missing) and migrate the database.
 * Refuses, with a logged reason and NULL, a file that is not a database,
 * is corrupted (PRAGMA quick_check at every open), is read-only (no owner
 * write bit, or a read-only file system), lives in a missing directory,
 * or has a schema newer than this causeway knows; it never writes to such
 * a file.  An existing file readable by group/other opens with a warning.
 * A relative path is a plain file name (":memory:" is a file here).
 */
struct store *store_open(const char *path);
/* Finish pending writes, checkpoint the WAL and close.  NULL is a no-op. */
void store_close(struct store *st);
/* The schema version now in the file (PRAGMA user_version); -1 on error. */
int store_schema_version(struct store *st);
/* The newest schema version this build knows. */
int store_schema_latest(void);

/*
 * Registered users of a component (bare JIDs), in JID order.  cb returns
 * 0 to go on, non-zero to stop.  The list is read before the first call,
 * so cb may use the store (even remove the user it is given); jid is
 * valid only during the call.  Returns -1 on a database error (logged,
 * cb not called), else 0.
 */
int store_user_foreach(struct store *st, const char *component,
    int (*cb)(void *arg, const char *jid), void *arg);
/* -1 error, 0 already there, 1 added. */
int store_user_add(struct store *st, const char *component, const char *jid);
/* -1 error, 0 not found, 1 removed. */
int store_user_remove(struct store *st, const char *component,
    const char *jid);
/* -1 error, 0 not registered, 1 registered. */
int store_user_exists(struct store *st, const char *component,
    const char *jid);

/*
 * Registration values of a user (XEP-0077 fields).  sealed marks a value
 * encrypted with secret_seal().  Removing the user removes them.
 */
typedef int (*store_field_cb)(void *arg, const char *var, const void *value,
    size_t len, int sealed);
/* Insert or replace; -1 error, 0 done. */
int store_field_set(struct store *st, const char *component, const char *jid,
    const char *var, const void *value, size_t len, int sealed);
/* Removes the values whose var starts with prefix; -1 or the count. */
int store_field_remove_prefix(struct store *st, const char *component,
    const char *jid, const char *prefix);
/* cb returns non-zero to stop; -1 on a database error, else 0. */
int store_field_foreach(struct store *st, const char *component,
    const char *jid, store_field_cb cb, void *arg);

/* A user's legacy contacts, with the XMPP subscription state
 * ("none", "to", "from", "both"); name may be NULL (kept as it was). */
typedef int (*store_contact_cb)(void *arg, const char *legacy,
    const char *name, const char *subscription);
int store_contact_set(struct store *st, const char *component,
    const char *jid, const char *legacy, const char *name,
    const char *subscription);
/* -1 error, 0 not found, 1 found (*subscription, if not NULL, gets a
 * copy the caller frees). */
int store_contact_get(struct store *st, const char *component,
    const char *jid, const char *legacy, char **subscription);
/* -1 error, 0 not found, 1 removed. */
int store_contact_remove(struct store *st, const char *component,
    const char *jid, const char *legacy);
int store_contact_foreach(struct store *st, const char *component,
    const char *jid, store_contact_cb cb, void *arg);

/*
 * Stanzas from legacy networks that could not be handed to the XMPP
 * server yet (serialized).  store_pending_take() calls cb for each of
 * the oldest STORE_PENDING_BATCH in order and forgets those for which it
 * returns 0; it stops at the first non-zero.  Returns how many were
 * taken, or -1.
 */
int store_pending_add(struct store *st, const char *component,
    const char *xml);
int store_pending_take(struct store *st, const char *component,
    int (*cb)(void *arg, const char *xml), void *arg);
/* At most this many are taken per call: call again for the rest. */
#define STORE_PENDING_BATCH 1000
/* How many are kept for the component; -1 on error. */
long store_pending_count(struct store *st, const char *component);

/*
 * Rooms.  A user's settings per room (room: the room's name, case-folded
 * by the caller): persistent, a fallback charset (NULL: none), and seen,
 * the last archive id when the user last left the room.
 */
struct store_room {
	int persistent;
	char *encoding;         /* caller frees */
	long long seen;
};
/* -1 error, 0 none (out zeroed), 1 found. */
int store_room_get(struct store *st, const char *component, const char *jid,
    const char *room, struct store_room *out);
/* Insert or update (seen kept); the archive does not depend on it.
 * -1 or 0. */
int store_room_set(struct store *st, const char *component, const char *jid,
    const char *room, int persistent, const char *encoding);
/* -1 or 0 (no settings row: nothing to update). */
int store_room_seen(struct store *st, const char *component, const char *jid,
    const char *room, long long seen);
/* Every (user, room) with persistent set, copied before the first call;
 * cb returns non-zero to stop.  -1 on a database error, else 0. */
int store_room_persistent_foreach(struct store *st, const char *component,
    int (*cb)(void *arg, const char *jid, const char *room), void *arg);

/*
 * The room archive: once per room (component + folded room name), not
 * per user.  Messages are queued in memory by store_archive_add() and
 * written in one transaction per batch by store_archive_flush(), which
 * also prunes each room to its newest STORE_ARCHIVE_KEEP messages;
 * queries and store_close() flush first, so nothing queued is lost or
 * missed.  Archive ids only grow (assigned here, continuing from the
 * file's largest), so "since id N" is well defined.
 */
#define STORE_ARCHIVE_KEEP 10000
/* The archive room's id (> 0); 0 when it has none and create is 0;
 * -1 on error. */
long long store_archive_room(struct store *st, const char *component,
    const char *room, int create);
/* Queues a message; returns its archive id (> 0) and its XEP-0359
 * stanza-id in sid (unique across runs), or -1. */
long long store_archive_add(struct store *st, long long room, time_t stamp,
    const char *nick, const char *body, char *sid, size_t sidlen);
/* Writes the queue in one transaction; the number written, or -1 (the
 * batch is then lost, logged). */
int store_archive_flush(struct store *st);
size_t store_archive_queued(const struct store *st);
/* The newest archive id handed out (queued or written). */
long long store_archive_last(const struct store *st);
/* Retention per room (tests): at least 1. */
void store_archive_set_keep(struct store *st, size_t keep);

struct store_archive_query {
	long long room;
	long long after, before;    /* exclusive ids; 0: no bound */
	time_t start, end;          /* inclusive stamps; 0: no bound */
	const char *nick;           /* NULL: anyone */
	size_t max;
	int backward;               /* the newest max, not the oldest */
	const char *reader;         /* bare JID: only its stretches of
	                             * membership; NULL: everything */
};
struct store_archive_msg {
	long long id;
	time_t stamp;
	char *nick, *body, *sid;
};
/* Matching messages, oldest first (caller frees with
 * store_archive_msgs_free); -1 or 0. */
int store_archive_query(struct store *st, const struct store_archive_query *q,
    struct store_archive_msg **out, size_t *n);
/* How many match, ignoring max and backward; -1 on error. */
long long store_archive_count(struct store *st,
    const struct store_archive_query *q);
/* -1 error, 0 no, 1 the id is in that room's archive (and, reader not
 * NULL, in a stretch of the reader's membership). */
int store_archive_has(struct store *st, long long room, long long id,
    const char *reader);
/* Retention for one component: messages older than before (0: any
 * age) and beyond the newest keep per room (0: no limit) go, and the
 * stretches of membership that cover nothing left.  The number of
 * messages removed, or -1. */
long long store_archive_expire(struct store *st, const char *component,
    time_t before, size_t keep);

/*
 * Membership of rooms (issue: a user reads a room's archive only for
 * the time they were in it).  Each stretch covers the archive ids
 * handed out while it lasted: store_member_open() starts one at the
 * newest id now (nothing if one is open; a stretch that ended at that
 * same id goes on instead of a new row), store_member_close() ends the
 * open one at the newest id now.  Opening the store ends every stretch
 * a previous run left open.  room: the room's folded name.  -1 or 0.
 */
int store_member_open(struct store *st, const char *component,
    const char *jid, const char *room);
int store_member_close(struct store *st, const char *component,
    const char *jid, const char *room);
/* -1 error, 0 the user never was in the room (as far as the archive
 * still remembers), 1 was or is. */
int store_member_any(struct store *st, const char *component,
    const char *jid, const char *room);
void store_archive_msgs_free(struct store_archive_msg *v, size_t n);

/*
 * Backend state: small values a backend keeps across restarts (SMS
 * waiting to be sent, delivery-report ids, a mailbox's UIDVALIDITY and
 * last UID, mails in the outbox), per component and user under a key.
 * jid "" holds the component's own values.  A user's rows go when the
 * user is removed.  Keys starting "core/" belong to the core.
 */
/* Inserts or replaces; 0 or -1. */
int store_state_set(struct store *st, const char *component,
    const char *jid, const char *key, const void *value, size_t len);
/* 1 and *value (malloc'ed, NUL-terminated after len bytes; len may be
 * NULL) when found, 0 when not, -1 on error. */
int store_state_get(struct store *st, const char *component,
    const char *jid, const char *key, char **value, size_t *len);
/* 1 when a row was removed, 0 when there was none, -1 on error. */
int store_state_remove(struct store *st, const char *component,
    const char *jid, const char *key);
/* Rows whose key starts with prefix ("" = all), of one user or of every
 * user and the component (jid NULL), ordered by jid then key.  Rows are
 * copied out first, so cb may write to the store.  cb returns non-zero
 * to stop.  0 or -1. */
/* Removes rows of the component whose key starts with prefix and that
 * were last written before the given time: the number removed, or -1. */
int store_state_expire(struct store *st, const char *component,
    const char *prefix, time_t before);
/* Keeps the keep most recently written rows of one user whose key starts
 * with prefix and removes the others: the number removed, or -1. */
int store_state_trim(struct store *st, const char *component,
    const char *jid, const char *prefix, unsigned keep);
typedef int (*store_state_cb)(void *arg, const char *jid, const char *key,
    const void *value, size_t len);
int store_state_foreach(struct store *st, const char *component,
    const char *jid, const char *prefix, store_state_cb cb, void *arg);

/*
 * Bulk writes, for the biboumi import (src/import_biboumi.c), which runs
 * with no event loop and wants all or nothing.  store_begin() writes
 * the archive queue, then opens one transaction (BEGIN IMMEDIATE: a
 * second writer waits, then fails); store_end() commits (commit 1) or
 * rolls back, and returns -1 when it rolled back.
 */
int store_begin(struct store *st);
int store_end(struct store *st, int commit);
/* Room settings only when the user has none for the room (never
 * overwrites, never deletes an archive): -1 error, 0 there already,
 * 1 added. */
int store_room_add(struct store *st, const char *component, const char *jid,
    const char *room, int persistent, const char *encoding, long long seen);
/* Writes one archive row now, with the stanza-id it had elsewhere, and
 * returns its new id (ids still only grow), or -1.  Refused while rows
 * are queued (store_archive_add): they hold smaller ids. */
long long store_archive_put(struct store *st, long long room, time_t stamp,
    const char *nick, const char *body, const char *sid);
/* Prunes a room to the retention (rows removed, or -1). */
int store_archive_trim(struct store *st, long long room);
/* The retention per room (store_archive_set_keep). */
size_t store_archive_keep(const struct store *st);
/* The archive id of the row with stanza-id sid in room: > 0, 0 when
 * none, -1 on error.  MAM anchors may be stanza-ids that were not
 * made here (an imported archive keeps its own). */
long long store_archive_find_sid(struct store *st, long long room,
    const char *sid);
/* A past stretch of a user's membership of a room (room_members,
 * migration 5): the user was there for the archive ids in
 * (from_id, to_id].  -1 or 0. */
int store_member_span(struct store *st, const char *component,
    const char *jid, const char *room, long long from_id, long long to_id);

#endif
