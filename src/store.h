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
 * server yet (serialized).  store_pending_take() calls cb for each in
 * order and forgets those for which it returns 0; it stops at the first
 * non-zero.  Returns how many were taken, or -1.
 */
int store_pending_add(struct store *st, const char *component,
    const char *xml);
int store_pending_take(struct store *st, const char *component,
    int (*cb)(void *arg, const char *xml), void *arg);

#endif
