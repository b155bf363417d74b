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

struct store;

/*
 * Open (creating with mode 0600 when missing) and migrate the database.
 * Refuses, with a logged reason and NULL, a file that is not a database,
 * is corrupted, is read-only, or has a schema newer than this causeway
 * knows; it never overwrites such a file.
 */
struct store *store_open(const char *path);
/* Finish pending writes, checkpoint the WAL and close. */
void store_close(struct store *st);
/* The schema version now in the file (PRAGMA user_version). */
int store_schema_version(struct store *st);
/* The newest schema version this build knows. */
int store_schema_latest(void);

/*
 * Registered users of a component (bare JIDs).  cb returns 0 to go on,
 * non-zero to stop.  Returns -1 on a database error (logged), else 0.
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

#endif
