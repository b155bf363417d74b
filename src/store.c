/*
 * The SQLite engine of the store.
 *
 * Lifecycle of the file:
 *
 *   missing --create 0600--> empty --migrate 0..N--> current
 *   existing --checks--> (refuse: NULL, file untouched) | --migrate--> current
 *
 * Every check that can refuse a file runs before the first write to it:
 * permissions, file system, "is it SQLite", PRAGMA quick_check and the
 * schema version are all read-only.  Only then is the journal switched to
 * WAL and are migrations applied, each in its own transaction, so a crash
 * mid-migration leaves the file at the previous version.  causeway never
 * deletes, truncates or "repairs" a database it did not just create: a
 * gateway that quietly starts over loses every user's registrations.
 *
 * One connection, used only from the loop thread (SQLITE_OPEN_NOMUTEX).
 * Statements are static text, prepared once here and bound per call.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>

#include <sqlite3.h>

#include "log.h"
#include "store.h"
#include "xmalloc.h"

/*
 * How long a statement waits for a lock held by another process (a backup,
 * an operator's sqlite3 shell) before failing.  Short on purpose: the
 * store runs on the loop thread and every user's traffic waits with it.
 */
#define BUSY_TIMEOUT_MS 1000

/*
 * Schema migrations.  Entry i brings user_version from i to i + 1; the
 * macro appends the version bump so the number and the SQL cannot drift
 * apart, and the text stays static (no printf near SQL).  Never edit a
 * migration that has shipped: add a new one.
 *
 * Names are chosen so later migrations can hang legacy accounts, contacts
 * and queued messages off (component, jid).
 */
#define MIGRATION(to, sql) \
	[(to) - 1] = sql "\nPRAGMA user_version = " #to ";"

static const char *const migrations[] = {
	MIGRATION(1,
	    "CREATE TABLE users (\n"
	    "	component TEXT NOT NULL,\n"
	    "	jid TEXT NOT NULL,\n"
	    "	created INTEGER NOT NULL,\n"
	    "	PRIMARY KEY (component, jid)\n"
	    ");"),
	/* Registration values, contacts and stanzas waiting for the server.
	 * Deleting a user deletes the rest (foreign_keys is on). */
	MIGRATION(2,
	    "CREATE TABLE user_fields (\n"
	    "	component TEXT NOT NULL,\n"
	    "	jid TEXT NOT NULL,\n"
	    "	var TEXT NOT NULL,\n"
	    "	value BLOB NOT NULL,\n"
	    "	sealed INTEGER NOT NULL DEFAULT 0,\n"
	    "	PRIMARY KEY (component, jid, var),\n"
	    "	FOREIGN KEY (component, jid) REFERENCES users (component, jid)\n"
	    "	    ON DELETE CASCADE\n"
	    ");\n"
	    "CREATE TABLE contacts (\n"
	    "	component TEXT NOT NULL,\n"
	    "	jid TEXT NOT NULL,\n"
	    "	legacy TEXT NOT NULL,\n"
	    "	name TEXT,\n"
	    "	subscription TEXT NOT NULL DEFAULT 'none',\n"
	    "	PRIMARY KEY (component, jid, legacy),\n"
	    "	FOREIGN KEY (component, jid) REFERENCES users (component, jid)\n"
	    "	    ON DELETE CASCADE\n"
	    ");\n"
	    "CREATE TABLE pending (\n"
	    "	id INTEGER PRIMARY KEY,\n"
	    "	component TEXT NOT NULL,\n"
	    "	xml TEXT NOT NULL,\n"
	    "	created INTEGER NOT NULL\n"
	    ");\n"
	    "CREATE INDEX pending_component ON pending (component, id);"),
	/*
	 * Rooms: each user's settings per room (persistent, a fallback
	 * charset, and the last archived message the user saw), and the
	 * archive of persistent rooms, kept once per room (component and
	 * case-folded room name), whoever persists it: the users'
	 * room_settings rows with persistent = 1 are the references.
	 * Archive ids are assigned by causeway (store_archive_add) and only
	 * grow, so "since the user left" is "id > seen".
	 */
	MIGRATION(3,
	    "CREATE TABLE room_settings (\n"
	    "	component TEXT NOT NULL,\n"
	    "	jid TEXT NOT NULL,\n"
	    "	room TEXT NOT NULL,\n"
	    "	persistent INTEGER NOT NULL DEFAULT 0,\n"
	    "	encoding TEXT,\n"
	    "	seen INTEGER NOT NULL DEFAULT 0,\n"
	    "	PRIMARY KEY (component, jid, room),\n"
	    "	FOREIGN KEY (component, jid) REFERENCES users (component, jid)\n"
	    "	    ON DELETE CASCADE\n"
	    ");\n"
	    "CREATE INDEX room_settings_room ON room_settings (component, room);\n"
	    "CREATE TABLE archive_rooms (\n"
	    "	id INTEGER PRIMARY KEY,\n"
	    "	component TEXT NOT NULL,\n"
	    "	room TEXT NOT NULL,\n"
	    "	UNIQUE (component, room)\n"
	    ");\n"
	    "CREATE TABLE archive (\n"
	    "	id INTEGER PRIMARY KEY,\n"
	    "	room INTEGER NOT NULL REFERENCES archive_rooms (id)\n"
	    "	    ON DELETE CASCADE,\n"
	    "	stamp INTEGER NOT NULL,\n"
	    "	nick TEXT NOT NULL,\n"
	    "	body TEXT NOT NULL,\n"
	    "	sid TEXT NOT NULL\n"
	    ");\n"
	    "CREATE INDEX archive_room ON archive (room, id);"),
	/*
	 * Backend state (store_state_*): jid '' holds a component's own
	 * values, so there is no foreign key; the trigger removes a user's
	 * rows with the user.
	 */
	MIGRATION(4,
	    "CREATE TABLE backend_state (\n"
	    "	component TEXT NOT NULL,\n"
	    "	jid TEXT NOT NULL,\n"
	    "	key TEXT NOT NULL,\n"
	    "	value BLOB NOT NULL,\n"
	    "	updated INTEGER NOT NULL,\n"
	    "	PRIMARY KEY (component, jid, key)\n"
	    ");\n"
	    "CREATE TRIGGER users_state_delete AFTER DELETE ON users BEGIN\n"
	    "	DELETE FROM backend_state WHERE component = old.component\n"
	    "	    AND jid = old.jid;\n"
	    "END;"),
	/*
	 * Who may read which part of a room's archive: each row is one
	 * stretch of a user's membership of a room, the archive ids in
	 * (from_id, to_id], to_id NULL while it lasts.  Archives no longer
	 * depend on anyone persisting the room (every joined room is
	 * archived); retention removes old rows (store_archive_expire).
	 * No foreign key: a user who never registered has no users row;
	 * the trigger removes a user's rows with the user.  Nothing is
	 * granted for what was archived before this version: nobody's
	 * membership was recorded then.
	 */
	MIGRATION(5,
	    "CREATE TABLE room_members (\n"
	    "	component TEXT NOT NULL,\n"
	    "	jid TEXT NOT NULL,\n"
	    "	room TEXT NOT NULL,\n"
	    "	from_id INTEGER NOT NULL,\n"
	    "	to_id INTEGER\n"
	    ");\n"
	    "CREATE INDEX room_members_user ON room_members (component, jid, "
	    "room, from_id);\n"
	    "CREATE INDEX archive_stamp ON archive (room, stamp);\n"
	    "CREATE TRIGGER users_members_delete AFTER DELETE ON users BEGIN\n"
	    "	DELETE FROM room_members WHERE component = old.component\n"
	    "	    AND jid = old.jid;\n"
	    "END;"),
};

#define NMIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))

enum stmt_id {
	STMT_USER_VERSION,
	STMT_USER_FOREACH,
	STMT_USER_ADD,
	STMT_USER_REMOVE,
	STMT_USER_EXISTS,
	STMT_FIELD_SET,
	STMT_FIELD_FOREACH,
	STMT_FIELD_REMOVE_PREFIX,
	STMT_CONTACT_SET,
	STMT_CONTACT_REMOVE,
	STMT_CONTACT_GET,
	STMT_CONTACT_FOREACH,
	STMT_PENDING_ADD,
	STMT_PENDING_LIST,
	STMT_PENDING_DELETE,
	STMT_PENDING_COUNT,
	STMT_ROOM_GET,
	STMT_ROOM_SET,
	STMT_ROOM_SEEN,
	STMT_ROOM_PERSISTENT,
	STMT_ARCHIVE_ROOM_ADD,
	STMT_ARCHIVE_ROOM_FIND,
	STMT_ARCHIVE_MAX_ID,
	STMT_ARCHIVE_INSERT,
	STMT_ARCHIVE_PRUNE,
	STMT_ARCHIVE_FORWARD,
	STMT_ARCHIVE_BACKWARD,
	STMT_ARCHIVE_COUNT,
	STMT_ARCHIVE_HAS,
	STMT_MEMBER_REOPEN,
	STMT_MEMBER_OPEN,
	STMT_MEMBER_CLOSE,
	STMT_MEMBER_ANY,
	STMT_MEMBER_CLOSE_ALL,
	STMT_MEMBER_MAX_ID,
	STMT_MEMBER_EXPIRE,
	STMT_ARCHIVE_EXPIRE_AGE,
	STMT_ARCHIVE_ROOMS_OF,
	STMT_STATE_SET,
	STMT_STATE_GET,
	STMT_STATE_REMOVE,
	STMT_STATE_FOREACH,
	STMT_STATE_EXPIRE,
	STMT_ROOM_ADD,
	STMT_ARCHIVE_SID,
	STMT_MEMBER_SPAN,
	STMT_STATE_TRIM,
	STMT_COUNT
};

/*
 * ?8: the bare JID reading (only the archive ids of its stretches of
 * membership of the room, room_members), or NULL for everything.
 */
#define READER_SQL							\
	"(?8 IS NULL OR EXISTS (SELECT 1 FROM room_members m, "		\
	"archive_rooms r WHERE r.id = ?1 AND m.component = r.component "	\
	"AND m.room = r.room AND m.jid = ?8 AND archive.id > m.from_id "	\
	"AND (m.to_id IS NULL OR archive.id <= m.to_id)))"

static const char *const stmt_sql[STMT_COUNT] = {
	[STMT_USER_VERSION] = "PRAGMA user_version",
	[STMT_USER_FOREACH] =
	    "SELECT jid FROM users WHERE component = ?1 ORDER BY jid",
	/* OR IGNORE: an existing row is "already there", not an error. */
	[STMT_USER_ADD] =
	    "INSERT OR IGNORE INTO users (component, jid, created) "
	    "VALUES (?1, ?2, ?3)",
	[STMT_USER_REMOVE] =
	    "DELETE FROM users WHERE component = ?1 AND jid = ?2",
	[STMT_USER_EXISTS] =
	    "SELECT 1 FROM users WHERE component = ?1 AND jid = ?2",
	[STMT_FIELD_SET] =
	    "INSERT OR REPLACE INTO user_fields (component, jid, var, value, "
	    "sealed) VALUES (?1, ?2, ?3, ?4, ?5)",
	[STMT_FIELD_FOREACH] =
	    "SELECT var, value, sealed FROM user_fields "
	    "WHERE component = ?1 AND jid = ?2 ORDER BY var",
	[STMT_FIELD_REMOVE_PREFIX] =
	    "DELETE FROM user_fields WHERE component = ?1 AND jid = ?2 "
	    "AND substr(var, 1, length(?3)) = ?3",
	[STMT_CONTACT_SET] =
	    "INSERT INTO contacts (component, jid, legacy, name, subscription) "
	    "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (component, jid, legacy) "
	    "DO UPDATE SET name = coalesce(excluded.name, name), "
	    "subscription = excluded.subscription",
	[STMT_CONTACT_REMOVE] =
	    "DELETE FROM contacts WHERE component = ?1 AND jid = ?2 "
	    "AND legacy = ?3",
	[STMT_CONTACT_GET] =
	    "SELECT subscription FROM contacts WHERE component = ?1 "
	    "AND jid = ?2 AND legacy = ?3",
	[STMT_CONTACT_FOREACH] =
	    "SELECT legacy, name, subscription FROM contacts "
	    "WHERE component = ?1 AND jid = ?2 ORDER BY legacy",
	[STMT_PENDING_ADD] =
	    "INSERT INTO pending (component, xml, created) VALUES (?1, ?2, ?3)",
	[STMT_PENDING_LIST] =
	    "SELECT id, xml FROM pending WHERE component = ?1 ORDER BY id "
	    "LIMIT 1000",
	[STMT_PENDING_COUNT] =
	    "SELECT count(*) FROM pending WHERE component = ?1",
	[STMT_PENDING_DELETE] =
	    "DELETE FROM pending WHERE id = ?1",
	[STMT_ROOM_GET] =
	    "SELECT persistent, encoding, seen FROM room_settings "
	    "WHERE component = ?1 AND jid = ?2 AND room = ?3",
	/* seen is left as it was. */
	[STMT_ROOM_SET] =
	    "INSERT INTO room_settings (component, jid, room, persistent, "
	    "encoding) VALUES (?1, ?2, ?3, ?4, ?5) "
	    "ON CONFLICT (component, jid, room) DO UPDATE SET "
	    "persistent = excluded.persistent, encoding = excluded.encoding",
	[STMT_ROOM_SEEN] =
	    "UPDATE room_settings SET seen = ?4 WHERE component = ?1 "
	    "AND jid = ?2 AND room = ?3",
	[STMT_ROOM_PERSISTENT] =
	    "SELECT jid, room FROM room_settings WHERE component = ?1 "
	    "AND persistent = 1 ORDER BY jid, room",
	[STMT_ARCHIVE_ROOM_ADD] =
	    "INSERT OR IGNORE INTO archive_rooms (component, room) "
	    "VALUES (?1, ?2)",
	[STMT_ARCHIVE_ROOM_FIND] =
	    "SELECT id FROM archive_rooms WHERE component = ?1 AND room = ?2",
	[STMT_ARCHIVE_MAX_ID] =
	    "SELECT coalesce(max(id), 0) FROM archive",
	[STMT_ARCHIVE_INSERT] =
	    "INSERT INTO archive (id, room, stamp, nick, body, sid) "
	    "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	/* Keeps the newest ?2 of a room: one index range, no scan. */
	[STMT_ARCHIVE_PRUNE] =
	    "DELETE FROM archive WHERE room = ?1 AND id <= (SELECT id FROM "
	    "archive WHERE room = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
	/*
	 * One query for every filter, with neutral values for those not
	 * asked (ids 0 and max, stamps 0 and max, nick NULL), so the text
	 * stays static.
	 */
	[STMT_ARCHIVE_FORWARD] =
	    "SELECT id, stamp, nick, body, sid FROM archive WHERE room = ?1 "
	    "AND id > ?2 AND id < ?3 AND stamp >= ?4 AND stamp <= ?5 "
	    "AND (?6 IS NULL OR nick = ?6) AND " READER_SQL
	    " ORDER BY id ASC LIMIT ?7",
	[STMT_ARCHIVE_BACKWARD] =
	    "SELECT id, stamp, nick, body, sid FROM archive WHERE room = ?1 "
	    "AND id > ?2 AND id < ?3 AND stamp >= ?4 AND stamp <= ?5 "
	    "AND (?6 IS NULL OR nick = ?6) AND " READER_SQL
	    " ORDER BY id DESC LIMIT ?7",
	[STMT_ARCHIVE_COUNT] =
	    "SELECT count(*) FROM archive WHERE room = ?1 "
	    "AND id > ?2 AND id < ?3 AND stamp >= ?4 AND stamp <= ?5 "
	    "AND (?6 IS NULL OR nick = ?6) AND " READER_SQL,
	[STMT_ARCHIVE_HAS] =
	    "SELECT 1 FROM archive WHERE room = ?1 AND id = ?2 AND "
	    READER_SQL,
	/* Membership stretches (migration 5).  A join right after a leave
	 * with nothing said between continues the last stretch, so joins
	 * and leaves in a loop cost no rows. */
	[STMT_MEMBER_REOPEN] =
	    "UPDATE room_members SET to_id = NULL WHERE component = ?1 AND "
	    "jid = ?2 AND room = ?3 AND to_id = ?4 AND NOT EXISTS (SELECT 1 "
	    "FROM room_members WHERE component = ?1 AND jid = ?2 AND "
	    "room = ?3 AND to_id IS NULL)",
	[STMT_MEMBER_OPEN] =
	    "INSERT INTO room_members (component, jid, room, from_id) "
	    "SELECT ?1, ?2, ?3, ?4 WHERE NOT EXISTS (SELECT 1 FROM "
	    "room_members WHERE component = ?1 AND jid = ?2 AND room = ?3 "
	    "AND to_id IS NULL)",
	[STMT_MEMBER_CLOSE] =
	    "UPDATE room_members SET to_id = ?4 WHERE component = ?1 AND "
	    "jid = ?2 AND room = ?3 AND to_id IS NULL",
	[STMT_MEMBER_ANY] =
	    "SELECT 1 FROM room_members WHERE component = ?1 AND jid = ?2 "
	    "AND room = ?3 LIMIT 1",
	/* At open: nobody is in any room before causeway joins it again. */
	[STMT_MEMBER_CLOSE_ALL] =
	    "UPDATE room_members SET to_id = ?1 WHERE to_id IS NULL",
	[STMT_MEMBER_MAX_ID] =
	    "SELECT max(coalesce(max(from_id), 0), coalesce(max(to_id), 0)) "
	    "FROM room_members",
	/* A stretch that ended before the oldest message kept in its room
	 * grants nothing any more. */
	[STMT_MEMBER_EXPIRE] =
	    "DELETE FROM room_members WHERE component = ?1 AND to_id IS NOT "
	    "NULL AND to_id < (SELECT coalesce(min(a.id), ?2) FROM archive a, "
	    "archive_rooms r WHERE r.component = ?1 AND "
	    "r.room = room_members.room AND a.room = r.id)",
	[STMT_ARCHIVE_EXPIRE_AGE] =
	    "DELETE FROM archive WHERE room = ?1 AND stamp < ?2",
	[STMT_ARCHIVE_ROOMS_OF] =
	    "SELECT id FROM archive_rooms WHERE component = ?1 ORDER BY id",
	[STMT_STATE_SET] =
	    "INSERT OR REPLACE INTO backend_state (component, jid, key, value, "
	    "updated) VALUES (?1, ?2, ?3, ?4, ?5)",
	[STMT_STATE_GET] =
	    "SELECT value FROM backend_state WHERE component = ?1 AND jid = ?2 "
	    "AND key = ?3",
	[STMT_STATE_REMOVE] =
	    "DELETE FROM backend_state WHERE component = ?1 AND jid = ?2 "
	    "AND key = ?3",
	[STMT_STATE_EXPIRE] =
	    "DELETE FROM backend_state WHERE component = ?1 "
	    "AND substr(key, 1, length(?2)) = ?2 AND updated < ?3",
	[STMT_STATE_TRIM] =
	    "DELETE FROM backend_state WHERE component = ?1 AND jid = ?2 "
	    "AND substr(key, 1, length(?3)) = ?3 AND key NOT IN ("
	    "SELECT key FROM backend_state WHERE component = ?1 AND jid = ?2 "
	    "AND substr(key, 1, length(?3)) = ?3 "
	    "ORDER BY updated DESC, rowid DESC LIMIT ?4)",
	[STMT_STATE_FOREACH] =
	    "SELECT jid, key, value FROM backend_state WHERE component = ?1 "
	    "AND (?2 IS NULL OR jid = ?2) AND substr(key, 1, length(?3)) = ?3 "
	    "ORDER BY jid, key",
	/* An import never overwrites what the user set since. */
	[STMT_ROOM_ADD] =
	    "INSERT OR IGNORE INTO room_settings (component, jid, room, "
	    "persistent, encoding, seen) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	/* No index on sid: one room's rows (at most archive_keep) are read
	 * through archive_room, a millisecond for the largest. */
	[STMT_ARCHIVE_SID] =
	    "SELECT id FROM archive WHERE room = ?1 AND sid = ?2",
	[STMT_MEMBER_SPAN] =
	    "INSERT INTO room_members (component, jid, room, from_id, to_id) "
	    "VALUES (?1, ?2, ?3, ?4, ?5)",
};

static int run_write(struct store *st, sqlite3_stmt *s, const char *what);

/* An archived message waiting for the next batch (store_archive_add). */
struct archive_row {
	long long id;
	long long room;
	long long stamp;
	char *nick;
	char *body;
	char *sid;
};

struct store {
	sqlite3 *db;
	char *path;		/* for log lines */
	sqlite3_stmt *stmt[STMT_COUNT];
	/* The archive's write-behind queue: rows are written in batches,
	 * one transaction each (store_archive_flush), never one by one. */
	struct archive_row *queue;
	size_t nqueue, capqueue;
	long long archive_last;	/* the last archive id handed out */
	char sid_suffix[17];	/* random per run: stanza-ids stay unique
				 * even if the database starts over */
	size_t archive_keep;	/* rows kept per room */
};

int
store_schema_latest(void)
{
	return NMIGRATIONS;
}

/*
 * The directory part of path, allocated.  Not dirname(3): it may modify
 * its argument and differs between libcs.
 */
static char *
path_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	if (slash == NULL)
		return xstrdup(".");
	while (slash > path && slash[-1] == '/')
		slash--;
	if (slash == path)
		return xstrdup("/");
	return xstrndup(path, (size_t)(slash - path));
}

/* 1 if the file system holding path is mounted read-only, else 0. */
static int
on_readonly_fs(const char *path)
{
	struct statvfs sv;
	if (statvfs(path, &sv) == -1)
		return 0;	/* unknown: let the open find out */
	return (sv.f_flag & ST_RDONLY) != 0;
}

/*
 * Checks on the file before SQLite sees it.  Creates it with mode 0600
 * when missing, ourselves rather than through SQLite, so it is never
 * wider than 0600 for a moment; O_EXCL so a file appearing meanwhile is
 * checked like any existing one, never clobbered.  Sets *created when
 * this call made the file.  Returns 0 to go on, -1 to refuse (logged).
 */
static int
prepare_file(const char *path, int *created)
{
	struct stat sb;
	char *dir = path_dir(path);

	*created = 0;
	if (stat(dir, &sb) == -1) {
		if (errno == ENOENT)
			log_error("store %s: directory %s does not exist",
			    path, dir);
		else
			log_error("store %s: directory %s: %s", path, dir,
			    strerror(errno));
		free(dir);
		return -1;
	}
	if (!S_ISDIR(sb.st_mode)) {
		log_error("store %s: %s is not a directory", path, dir);
		free(dir);
		return -1;
	}

	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd != -1) {
		/* A umask like 0277 would take away our own write bit. */
		if (fchmod(fd, 0600) == -1)
			log_warn("store %s: chmod 0600: %s", path,
			    strerror(errno));
		close(fd);
		*created = 1;
		log_info("store %s: created", path);
		free(dir);
		return 0;
	}
	if (errno != EEXIST) {
		if (errno == EROFS)
			log_error("store %s: cannot create the database: "
			    "%s is on a read-only file system", path, dir);
		else
			log_error("store %s: cannot create the database: %s",
			    path, strerror(errno));
		free(dir);
		return -1;
	}
	free(dir);

	/* It exists: refuse anything we could not write without harm. */
	if (stat(path, &sb) == -1) {
		log_error("store %s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISREG(sb.st_mode)) {
		log_error("store %s: not a regular file", path);
		return -1;
	}
	/*
	 * We usually run as root, to whom access(2) says yes to everything,
	 * so look at the mode: an operator who took away write permission
	 * meant it (a read-only copy, a file being backed up or inspected).
	 */
	if ((sb.st_mode & S_IWUSR) == 0) {
		log_error("store %s: the file is read-only (mode %04o); "
		    "refusing to open it, not changing it",
		    path, (unsigned)(sb.st_mode & 07777));
		return -1;
	}
	if (on_readonly_fs(path)) {
		log_error("store %s: the file is on a read-only file system",
		    path);
		return -1;
	}
	if (access(path, R_OK | W_OK) == -1) {
		log_error("store %s: %s", path, strerror(errno));
		return -1;
	}
	if ((sb.st_mode & (S_IRWXG | S_IRWXO)) != 0)
		log_warn("store %s: the database is accessible by group or "
		    "others (mode %04o); it holds users' JIDs and accounts, "
		    "consider chmod 600", path, (unsigned)(sb.st_mode & 07777));
	return 0;
}

/*
 * Statement-level helper for setup: runs static SQL with no parameters
 * and no rows wanted.  Returns 0 or -1 (logged with what).
 */
static int
exec_sql(struct store *st, const char *sql, const char *what)
{
	char *err = NULL;
	if (sqlite3_exec(st->db, sql, NULL, NULL, &err) != SQLITE_OK) {
		log_error("store %s: %s: %s", st->path, what,
		    err ? err : sqlite3_errmsg(st->db));
		sqlite3_free(err);
		return -1;
	}
	return 0;
}

/*
 * Runs a one-row pragma and copies its text result into buf.
 * Returns 0 or -1 (logged).
 */
static int
pragma_text(struct store *st, const char *sql, char *buf, size_t len)
{
	sqlite3_stmt *s;
	int rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(s);
		if (rc == SQLITE_ROW) {
			const unsigned char *t = sqlite3_column_text(s, 0);
			snprintf(buf, len, "%s", t ? (const char *)t : "");
			rc = SQLITE_OK;
		}
	}
	if (rc != SQLITE_OK)
		log_error("store %s: %s: %s", st->path, sql,
		    sqlite3_errmsg(st->db));
	sqlite3_finalize(s);
	return rc == SQLITE_OK ? 0 : -1;
}

/*
 * PRAGMA quick_check: O(size of the file) but much cheaper than
 * integrity_check, and run once at start.  Finding corruption now beats
 * finding it at the first write, when SQLite may already be making it
 * worse.  Also the first read of the file, so "not a database" shows up
 * here.  Returns 0 if the database is sound, -1 (logged) if not.
 */
/* Logs why the first read of the file failed, in the operator's words. */
static void
log_read_error(struct store *st)
{
	int code = sqlite3_extended_errcode(st->db) & 0xff;
	if (code == SQLITE_NOTADB)
		log_error("store %s: not a SQLite database (%s); refusing to "
		    "use it and leaving it as it is", st->path,
		    sqlite3_errmsg(st->db));
	else if (code == SQLITE_CORRUPT)
		log_error("store %s: the database is damaged (%s)", st->path,
		    sqlite3_errmsg(st->db));
	else
		log_error("store %s: cannot read the database: %s", st->path,
		    sqlite3_errmsg(st->db));
}

static int
quick_check(struct store *st)
{
	sqlite3_stmt *s;
	int rows = 0, bad = 0;

	/* Preparing reads the schema: the first place a bad file shows. */
	if (sqlite3_prepare_v2(st->db, "PRAGMA quick_check", -1, &s, NULL)
	    != SQLITE_OK) {
		log_read_error(st);
		return -1;
	}
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(s, 0);
		rows++;
		if (t != NULL && strcmp((const char *)t, "ok") == 0)
			continue;
		/*
		 * A report can run to thousands of lines: log the start
		 * of it, on one line, as every log line is.
		 */
		if (++bad <= 3) {
			char line[512];
			snprintf(line, sizeof(line), "%s",
			    t ? (const char *)t : "(null)");
			for (char *p = line; *p != '\0'; p++)
				if (*p == '\n' || *p == '\r')
					*p = ' ';
			log_error("store %s: quick_check: %s%s", st->path,
			    line, strlen(line) + 1 >= sizeof(line) ? "..." : "");
		}
	}
	if (rc != SQLITE_DONE) {
		log_read_error(st);
		bad++;
	} else if (rows == 0) {
		log_error("store %s: quick_check returned nothing", st->path);
		bad++;
	}
	sqlite3_finalize(s);
	if (bad) {
		log_error("store %s: the database is damaged; refusing to use "
		    "it and leaving it as it is (restore a backup, or try the "
		    "sqlite3 .recover command on a copy)", st->path);
		return -1;
	}
	return 0;
}

static int
user_version(struct store *st)
{
	char buf[32];
	if (pragma_text(st, "PRAGMA user_version", buf, sizeof(buf)) == -1)
		return -1;
	return atoi(buf);
}

static int
migrate(struct store *st, int from)
{
	for (int v = from; v < NMIGRATIONS; v++) {
		/* IMMEDIATE: take the write lock now, not halfway through. */
		if (exec_sql(st, "BEGIN IMMEDIATE", "starting a migration")
		    == -1)
			return -1;
		char *err = NULL;
		if (sqlite3_exec(st->db, migrations[v], NULL, NULL, &err)
		    != SQLITE_OK) {
			log_error("store %s: migration %d -> %d failed: %s",
			    st->path, v, v + 1,
			    err ? err : sqlite3_errmsg(st->db));
			sqlite3_free(err);
			exec_sql(st, "ROLLBACK", "rolling back a migration");
			return -1;
		}
		int now = user_version(st);
		if (now != v + 1) {
			/* A mistake in migrations[], caught before commit. */
			log_error("store %s: migration %d -> %d left "
			    "user_version at %d", st->path, v, v + 1, now);
			exec_sql(st, "ROLLBACK", "rolling back a migration");
			return -1;
		}
		if (exec_sql(st, "COMMIT", "committing a migration") == -1) {
			exec_sql(st, "ROLLBACK", "rolling back a migration");
			return -1;
		}
		log_info("store %s: schema migrated to version %d", st->path,
		    v + 1);
	}
	return 0;
}

static void
finalize_all(struct store *st)
{
	for (int i = 0; i < STMT_COUNT; i++) {
		sqlite3_finalize(st->stmt[i]);
		st->stmt[i] = NULL;
	}
}

/*
 * Everything after the file checks.  Returns 0, or -1 (logged) with the
 * connection still open for the caller to close.
 */
static int
setup(struct store *st)
{
	sqlite3_extended_result_codes(st->db, 1);
	sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS);
#ifdef SQLITE_DBCONFIG_DEFENSIVE
	/* No writable_schema tricks or direct shadow-table writes. */
	sqlite3_db_config(st->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
#endif

	/*
	 * READWRITE quietly falls back to read-only when the OS says no;
	 * we would only find out at the first write, so ask now.
	 */
	if (sqlite3_db_readonly(st->db, "main") == 1) {
		log_error("store %s: SQLite can only open the file read-only",
		    st->path);
		return -1;
	}

	/* Read-only checks first: a refused file must stay byte-for-byte. */
	if (quick_check(st) == -1)
		return -1;
	int version = user_version(st);
	if (version < 0) {
		log_error("store %s: cannot read the schema version", st->path);
		return -1;
	}
	if (version > NMIGRATIONS) {
		log_error("store %s: schema version %d is newer than this "
		    "causeway knows (%d); refusing to touch it (run the newer "
		    "causeway, or restore a backup)", st->path, version,
		    NMIGRATIONS);
		return -1;
	}

	char mode[16];
	if (pragma_text(st, "PRAGMA journal_mode = WAL", mode, sizeof(mode))
	    == -1)
		return -1;
	if (strcmp(mode, "wal") != 0)
		/*
		 * E.g. a file system without shared memory.  The store is
		 * still correct in rollback mode, only slower, so go on.
		 */
		log_warn("store %s: cannot use WAL (journal mode is %s)",
		    st->path, mode);
	/* In WAL mode NORMAL is crash-safe; a power cut loses at most
	 * the last transactions, never consistency. */
	if (exec_sql(st, "PRAGMA synchronous = NORMAL", "setting synchronous")
	    == -1)
		return -1;
	if (exec_sql(st, "PRAGMA foreign_keys = ON", "enabling foreign keys")
	    == -1)
		return -1;

	if (migrate(st, version) == -1)
		return -1;

	for (int i = 0; i < STMT_COUNT; i++) {
		if (sqlite3_prepare_v2(st->db, stmt_sql[i], -1, &st->stmt[i],
		    NULL) != SQLITE_OK) {
			log_error("store %s: preparing \"%s\": %s", st->path,
			    stmt_sql[i], sqlite3_errmsg(st->db));
			return -1;
		}
	}

	/* Archive ids continue from the file's; the stanza-id suffix is
	 * drawn per run. */
	sqlite3_stmt *s = st->stmt[STMT_ARCHIVE_MAX_ID];
	if (sqlite3_step(s) != SQLITE_ROW) {
		log_error("store %s: reading the archive: %s", st->path,
		    sqlite3_errmsg(st->db));
		sqlite3_reset(s);
		return -1;
	}
	st->archive_last = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	/* Ids never go back, not even when retention emptied the archive:
	 * a stretch of membership recorded earlier must not cover messages
	 * archived later. */
	s = st->stmt[STMT_MEMBER_MAX_ID];
	if (sqlite3_step(s) != SQLITE_ROW) {
		log_error("store %s: reading room members: %s", st->path,
		    sqlite3_errmsg(st->db));
		sqlite3_reset(s);
		return -1;
	}
	if (sqlite3_column_int64(s, 0) > st->archive_last)
		st->archive_last = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	/* Whoever was in a room when the last run ended is not any more
	 * (a killed run closed nothing): their stretches end here. */
	s = st->stmt[STMT_MEMBER_CLOSE_ALL];
	sqlite3_bind_int64(s, 1, st->archive_last);
	if (run_write(st, s, "closing room memberships") < 0)
		return -1;
	unsigned char raw[8];
	sqlite3_randomness(sizeof(raw), raw);
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(st->sid_suffix + 2 * i, 3, "%02x", raw[i]);
	st->archive_keep = STORE_ARCHIVE_KEEP;
	return 0;
}

struct store *
store_open(const char *path)
{
	int created;

	if (path == NULL || *path == '\0') {
		log_error("store: no database path given");
		return NULL;
	}
	if (prepare_file(path, &created) == -1)
		return NULL;

	struct store *st = xcalloc(1, sizeof(*st));
	st->path = xstrdup(path);

	/*
	 * A relative name like ":memory:" or "file:x" means something special
	 * to SQLite; "./" makes it a plain file name again.
	 */
	char *sqlpath = path[0] == '/' ? xstrdup(path) : xasprintf("./%s", path);

	/*
	 * SQLite creates -wal and -shm with the mode of the database file
	 * (0600 for one we made).  umask 077 while it does so keeps that
	 * true whatever the SQLite build.  The umask is process-wide: a
	 * worker creating a file meanwhile gets a stricter mode, never a
	 * looser one.  Later WALs come from the same SQLite rule.
	 */
	mode_t old_umask = umask(077);
	int rc = sqlite3_open_v2(sqlpath, &st->db,
	    SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	free(sqlpath);
	if (rc != SQLITE_OK) {
		log_error("store %s: cannot open: %s", path,
		    st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
		rc = -1;
	} else {
		rc = setup(st);
	}
	umask(old_umask);

	if (rc == -1) {
		finalize_all(st);
		sqlite3_close(st->db);
		/* Only a file this call made, which holds nobody's data. */
		if (created && unlink(path) == -1)
			log_warn("store %s: removing the new file: %s", path,
			    strerror(errno));
		free(st->path);
		free(st);
		return NULL;
	}
	log_info("store %s: open, schema version %d", path, NMIGRATIONS);
	return st;
}

void
store_close(struct store *st)
{
	if (st == NULL)
		return;
	/* Archived messages still in the queue are written now. */
	store_archive_flush(st);
	free(st->queue);
	finalize_all(st);
	/*
	 * Best effort: leaves an empty WAL so a backup of the main file
	 * alone is complete.  Failure (another reader) costs nothing.
	 */
	char *err = NULL;
	if (sqlite3_exec(st->db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL,
	    &err) != SQLITE_OK) {
		log_warn("store %s: checkpoint at close: %s", st->path,
		    err ? err : sqlite3_errmsg(st->db));
		sqlite3_free(err);
	}
	if (sqlite3_close(st->db) != SQLITE_OK)
		log_error("store %s: close: %s", st->path,
		    sqlite3_errmsg(st->db));
	free(st->path);
	free(st);
}

/* Makes a statement ready for its next use and drops borrowed pointers. */
static void
done_with(sqlite3_stmt *s)
{
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
}

/*
 * Binds (component, jid) as ?1 and ?2.  SQLITE_STATIC: the caller's
 * strings outlive the statement's use, which ends in done_with().
 */
static int
bind_user(struct store *st, sqlite3_stmt *s, const char *component,
    const char *jid)
{
	if (sqlite3_bind_text(s, 1, component, -1, SQLITE_STATIC) != SQLITE_OK
	    || (jid != NULL &&
	    sqlite3_bind_text(s, 2, jid, -1, SQLITE_STATIC) != SQLITE_OK)) {
		log_error("store %s: binding %s %s: %s", st->path, component,
		    jid ? jid : "", sqlite3_errmsg(st->db));
		done_with(s);
		return -1;
	}
	return 0;
}

/* A NULL here is a caller's bug; without this it would bind SQL NULL. */
static int
bad_args(struct store *st, const char *fn, const char *component,
    const char *jid, int need_jid)
{
	if (st == NULL || component == NULL || (need_jid && jid == NULL)) {
		log_error("store: %s called with a NULL argument", fn);
		return 1;
	}
	return 0;
}

int
store_schema_version(struct store *st)
{
	sqlite3_stmt *s = st->stmt[STMT_USER_VERSION];
	int v = -1;
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int(s, 0);
	else
		log_error("store %s: reading user_version: %s", st->path,
		    sqlite3_errmsg(st->db));
	done_with(s);
	return v;
}

int
store_user_foreach(struct store *st, const char *component,
    int (*cb)(void *arg, const char *jid), void *arg)
{
	if (bad_args(st, "store_user_foreach", component, NULL, 0) || cb == NULL)
		return -1;
	sqlite3_stmt *s = st->stmt[STMT_USER_FOREACH];
	if (bind_user(st, s, component, NULL) == -1)
		return -1;

	/*
	 * Copy the JIDs out before calling back, so cb may use the store,
	 * this very statement included (remove the user it is given, or
	 * run another foreach), without disturbing an open cursor.
	 */
	char **jids = NULL;
	size_t n = 0, cap = 0;
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(s, 0);
		if (t == NULL)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			jids = xreallocarray(jids, cap, sizeof(*jids));
		}
		jids[n++] = xstrdup((const char *)t);
	}
	int ret = 0;
	if (rc != SQLITE_DONE) {
		log_error("store %s: listing users of %s: %s", st->path,
		    component, sqlite3_errmsg(st->db));
		ret = -1;
	}
	done_with(s);

	size_t i = 0;
	if (ret == 0)
		for (; i < n; i++)
			if (cb(arg, jids[i]) != 0)
				break;
	for (i = 0; i < n; i++)
		free(jids[i]);
	free(jids);
	return ret;
}

static int run_write(struct store *st, sqlite3_stmt *s, const char *what);

int
store_user_add(struct store *st, const char *component, const char *jid)
{
	if (bad_args(st, "store_user_add", component, jid, 1))
		return -1;
	sqlite3_stmt *s = st->stmt[STMT_USER_ADD];
	if (bind_user(st, s, component, jid) == -1)
		return -1;
	sqlite3_bind_int64(s, 3, (sqlite3_int64)time(NULL));
	int n = run_write(st, s, "adding a user");
	return n < 0 ? -1 : n > 0;
}

int
store_user_remove(struct store *st, const char *component, const char *jid)
{
	if (bad_args(st, "store_user_remove", component, jid, 1))
		return -1;
	sqlite3_stmt *s = st->stmt[STMT_USER_REMOVE];
	if (bind_user(st, s, component, jid) == -1)
		return -1;
	int n = run_write(st, s, "removing a user");
	return n < 0 ? -1 : n > 0;
}

int
store_user_exists(struct store *st, const char *component, const char *jid)
{
	if (bad_args(st, "store_user_exists", component, jid, 1))
		return -1;
	sqlite3_stmt *s = st->stmt[STMT_USER_EXISTS];
	if (bind_user(st, s, component, jid) == -1)
		return -1;
	int rc = sqlite3_step(s);
	int ret;
	if (rc == SQLITE_ROW) {
		ret = 1;
	} else if (rc == SQLITE_DONE) {
		ret = 0;
	} else {
		log_error("store %s: looking up user %s of %s: %s", st->path,
		    jid, component, sqlite3_errmsg(st->db));
		ret = -1;
	}
	done_with(s);
	return ret;
}

/* Runs a bound write statement; -1 on error (logged), else the number of
 * rows it changed. */
static int
run_write(struct store *st, sqlite3_stmt *s, const char *what)
{
	int rc = sqlite3_step(s);
	int ret = -1;
	if (rc == SQLITE_DONE)
		ret = sqlite3_changes(st->db);
	else
		log_error("store %s: %s: %s", st->path, what,
		    sqlite3_errmsg(st->db));
	done_with(s);
	return ret;
}

/* Text column, "" for NULL. */
static const char *
column_text(sqlite3_stmt *s, int i)
{
	const unsigned char *t = sqlite3_column_text(s, i);
	return t ? (const char *)t : "";
}

int
store_field_set(struct store *st, const char *component, const char *jid,
    const char *var, const void *value, size_t len, int sealed)
{
	if (bad_args(st, "store_field_set", component, jid, 1) || var == NULL)
		return -1;
	sqlite3_stmt *s = st->stmt[STMT_FIELD_SET];
	if (bind_user(st, s, component, jid) == -1)
		return -1;
	sqlite3_bind_text(s, 3, var, -1, SQLITE_STATIC);
	sqlite3_bind_blob(s, 4, len ? value : "", (int)len, SQLITE_STATIC);
	sqlite3_bind_int(s, 5, sealed ? 1 : 0);
	return run_write(st, s, "storing a registration value") < 0 ? -1 : 0;
}

int
store_field_foreach(struct store *st, const char *component,
    const char *jid, store_field_cb cb, void *arg)
{
	if (bad_args(st, "store_field_foreach", component, jid, 1))
		return -1;
	sqlite3_stmt *s = st->stmt[STMT_FIELD_FOREACH];
	if (bind_user(st, s, component, jid) == -1)
		return -1;
	/* A user has a handful of fields and cb only reads them: no copy. */
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (cb(arg, column_text(s, 0), sqlite3_column_blob(s, 1),
		    (size_t)sqlite3_column_bytes(s, 1),
		    sqlite3_column_int(s, 2)) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	}
	int ret = rc == SQLITE_DONE ? 0 : -1;
	if (ret < 0)
		log_error("store %s: reading %s's registration: %s", st->path,
		    jid, sqlite3_errmsg(st->db));
	done_with(s);
	return ret;
}

int
store_field_remove_prefix(struct store *st, const char *component,
    const char *jid, const char *prefix)
{
	if (bad_args(st, "store_field_remove_prefix", component, jid, 1) ||
	    prefix == NULL || *prefix == '\0')
		return -1;
	sqlite3_stmt *s = st->stmt[STMT_FIELD_REMOVE_PREFIX];
	if (bind_user(st, s, component, jid) == -1)
		return -1;
	sqlite3_bind_text(s, 3, prefix, -1, SQLITE_STATIC);
	return run_write(st, s, "removing registration values");
}

int
store_contact_set(struct store *st, const char *component, const char *jid,
    const char *legacy, const char *name, const char *subscription)
{
	if (bad_args(st, "store_contact_set", component, jid, 1) ||
	    legacy == NULL || subscription == NULL)
		return -1;
	sqlite3_stmt *s = st->stmt[STMT_CONTACT_SET];
	if (bind_user(st, s, component, jid) == -1)
		return -1;
	sqlite3_bind_text(s, 3, legacy, -1, SQLITE_STATIC);
	if (name != NULL)
		sqlite3_bind_text(s, 4, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 5, subscription, -1, SQLITE_STATIC);
	return run_write(st, s, "storing a contact") < 0 ? -1 : 0;
}

int
store_contact_remove(struct store *st, const char *component,
    const char *jid, const char *legacy)
{
	if (bad_args(st, "store_contact_remove", component, jid, 1) ||
	    legacy == NULL)
		return -1;
	sqlite3_stmt *s = st->stmt[STMT_CONTACT_REMOVE];
	if (bind_user(st, s, component, jid) == -1)
		return -1;
	sqlite3_bind_text(s, 3, legacy, -1, SQLITE_STATIC);
	int n = run_write(st, s, "removing a contact");
	return n < 0 ? -1 : n > 0;
}

int
store_contact_get(struct store *st, const char *component, const char *jid,
    const char *legacy, char **subscription)
{
	if (bad_args(st, "store_contact_get", component, jid, 1) ||
	    legacy == NULL)
		return -1;
	sqlite3_stmt *s = st->stmt[STMT_CONTACT_GET];
	if (bind_user(st, s, component, jid) == -1)
		return -1;
	sqlite3_bind_text(s, 3, legacy, -1, SQLITE_STATIC);
	int rc = sqlite3_step(s), ret = 0;
	if (rc == SQLITE_ROW) {
		ret = 1;
		if (subscription != NULL)
			*subscription = xstrdup(column_text(s, 0));
	} else if (rc != SQLITE_DONE) {
		log_error("store %s: looking up a contact of %s: %s", st->path,
		    jid, sqlite3_errmsg(st->db));
		ret = -1;
	}
	done_with(s);
	return ret;
}

int
store_contact_foreach(struct store *st, const char *component,
    const char *jid, store_contact_cb cb, void *arg)
{
	if (bad_args(st, "store_contact_foreach", component, jid, 1))
		return -1;
	sqlite3_stmt *s = st->stmt[STMT_CONTACT_FOREACH];
	if (bind_user(st, s, component, jid) == -1)
		return -1;
	/* Copied out first: callbacks send stanzas and may touch contacts. */
	struct row { char *legacy, *name, *sub; } *rows = NULL;
	size_t n = 0, cap = 0;
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			rows = xreallocarray(rows, cap, sizeof(*rows));
		}
		rows[n].legacy = xstrdup(column_text(s, 0));
		rows[n].name = sqlite3_column_type(s, 1) == SQLITE_NULL ? NULL :
		    xstrdup(column_text(s, 1));
		rows[n].sub = xstrdup(column_text(s, 2));
		n++;
	}
	int ret = rc == SQLITE_DONE ? 0 : -1;
	if (ret < 0)
		log_error("store %s: listing %s's contacts: %s", st->path, jid,
		    sqlite3_errmsg(st->db));
	done_with(s);
	for (size_t i = 0; i < n; i++) {
		if (ret == 0 && cb(arg, rows[i].legacy, rows[i].name,
		    rows[i].sub) != 0)
			ret = 1;
		free(rows[i].legacy);
		free(rows[i].name);
		free(rows[i].sub);
	}
	free(rows);
	return ret < 0 ? -1 : 0;
}

int
store_pending_add(struct store *st, const char *component, const char *xml)
{
	if (bad_args(st, "store_pending_add", component, xml, 1))
		return -1;
	sqlite3_stmt *s = st->stmt[STMT_PENDING_ADD];
	if (bind_user(st, s, component, xml) == -1)
		return -1;
	sqlite3_bind_int64(s, 3, (sqlite3_int64)time(NULL));
	return run_write(st, s, "keeping a stanza for later") < 0 ? -1 : 0;
}

int
store_pending_take(struct store *st, const char *component,
    int (*cb)(void *arg, const char *xml), void *arg)
{
	if (bad_args(st, "store_pending_take", component, NULL, 0))
		return -1;
	int total = 0;
	for (;;) {
		sqlite3_stmt *s = st->stmt[STMT_PENDING_LIST];
		if (bind_user(st, s, component, NULL) == -1)
			return -1;
		struct row { sqlite3_int64 id; char *xml; } *rows = NULL;
		size_t n = 0, cap = 0;
		int rc;
		while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
			if (n == cap) {
				cap = cap ? cap * 2 : 64;
				rows = xreallocarray(rows, cap, sizeof(*rows));
			}
			rows[n].id = sqlite3_column_int64(s, 0);
			rows[n].xml = xstrdup(column_text(s, 1));
			n++;
		}
		done_with(s);
		if (rc != SQLITE_DONE) {
			log_error("store %s: reading kept stanzas: %s",
			    st->path, sqlite3_errmsg(st->db));
			n = 0;
		}
		/* One transaction per batch: a crash re-sends at most the
		 * batch, and never loses a stanza. */
		exec_sql(st, "BEGIN", "starting a batch");
		int stop = 0;
		size_t i;
		for (i = 0; i < n && !stop; i++) {
			if (cb(arg, rows[i].xml) != 0) {
				stop = 1;
				break;
			}
			sqlite3_stmt *d = st->stmt[STMT_PENDING_DELETE];
			sqlite3_bind_int64(d, 1, rows[i].id);
			run_write(st, d, "forgetting a delivered stanza");
			total++;
		}
		exec_sql(st, "COMMIT", "ending a batch");
		for (i = 0; i < n; i++)
			free(rows[i].xml);
		free(rows);
		/* One batch per call: the caller comes back for the next one
		 * on a later loop turn, so a long backlog never stalls the
		 * loop. */
		(void)stop;
		return total;
	}
}

/* ---- rooms: settings and the archive ---- */

int
store_room_get(struct store *st, const char *component, const char *jid,
    const char *room, struct store_room *out)
{
	memset(out, 0, sizeof(*out));
	if (bad_args(st, "store_room_get", component, jid, 1) || room == NULL)
		return -1;
	sqlite3_stmt *s = st->stmt[STMT_ROOM_GET];
	if (bind_user(st, s, component, jid) == -1)
		return -1;
	sqlite3_bind_text(s, 3, room, -1, SQLITE_STATIC);
	int rc = sqlite3_step(s), ret = 0;
	if (rc == SQLITE_ROW) {
		ret = 1;
		out->persistent = sqlite3_column_int(s, 0);
		if (sqlite3_column_type(s, 1) != SQLITE_NULL)
			out->encoding = xstrdup(column_text(s, 1));
		out->seen = sqlite3_column_int64(s, 2);
	} else if (rc != SQLITE_DONE) {
		log_error("store %s: reading %s's settings of %s: %s",
		    st->path, jid, room, sqlite3_errmsg(st->db));
		ret = -1;
	}
	done_with(s);
	return ret;
}

int
store_room_set(struct store *st, const char *component, const char *jid,
    const char *room, int persistent, const char *encoding)
{
	if (bad_args(st, "store_room_set", component, jid, 1) || room == NULL)
		return -1;
	sqlite3_stmt *s = st->stmt[STMT_ROOM_SET];
	if (bind_user(st, s, component, jid) == -1)
		return -1;
	sqlite3_bind_text(s, 3, room, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 4, persistent ? 1 : 0);
	if (encoding != NULL && *encoding != '\0')
		sqlite3_bind_text(s, 5, encoding, -1, SQLITE_STATIC);
	/* The archive stays: it is everyone's who was in the room, and
	 * retention (store_archive_expire) decides when it goes. */
	return run_write(st, s, "storing room settings") < 0 ? -1 : 0;
}

int
store_room_seen(struct store *st, const char *component, const char *jid,
    const char *room, long long seen)
{
	if (bad_args(st, "store_room_seen", component, jid, 1) || room == NULL)
		return -1;
	sqlite3_stmt *s = st->stmt[STMT_ROOM_SEEN];
	if (bind_user(st, s, component, jid) == -1)
		return -1;
	sqlite3_bind_text(s, 3, room, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, seen);
	return run_write(st, s, "storing where a user left a room") < 0 ?
	    -1 : 0;
}

int
store_room_persistent_foreach(struct store *st, const char *component,
    int (*cb)(void *arg, const char *jid, const char *room), void *arg)
{
	if (bad_args(st, "store_room_persistent_foreach", component, NULL, 0)
	    || cb == NULL)
		return -1;
	sqlite3_stmt *s = st->stmt[STMT_ROOM_PERSISTENT];
	if (bind_user(st, s, component, NULL) == -1)
		return -1;
	/* Copied out first: callbacks join rooms and use the store. */
	struct row { char *jid, *room; } *rows = NULL;
	size_t n = 0, cap = 0;
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			rows = xreallocarray(rows, cap, sizeof(*rows));
		}
		rows[n].jid = xstrdup(column_text(s, 0));
		rows[n].room = xstrdup(column_text(s, 1));
		n++;
	}
	int ret = rc == SQLITE_DONE ? 0 : -1;
	if (ret < 0)
		log_error("store %s: listing persistent rooms of %s: %s",
		    st->path, component, sqlite3_errmsg(st->db));
	done_with(s);
	for (size_t i = 0; i < n; i++) {
		if (ret == 0 && cb(arg, rows[i].jid, rows[i].room) != 0)
			ret = 1;
		free(rows[i].jid);
		free(rows[i].room);
	}
	free(rows);
	return ret < 0 ? -1 : 0;
}

/* The archive room's id: -1 error, 0 none (create 0), else the id. */
static long long
archive_room(struct store *st, const char *component, const char *room,
    int create)
{
	sqlite3_stmt *s;
	if (create) {
		s = st->stmt[STMT_ARCHIVE_ROOM_ADD];
		if (bind_user(st, s, component, room) == -1 ||
		    run_write(st, s, "adding an archive") < 0)
			return -1;
	}
	s = st->stmt[STMT_ARCHIVE_ROOM_FIND];
	if (bind_user(st, s, component, room) == -1)
		return -1;
	long long id = 0;
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		id = sqlite3_column_int64(s, 0);
	} else if (rc != SQLITE_DONE) {
		log_error("store %s: looking up the archive of %s: %s",
		    st->path, room, sqlite3_errmsg(st->db));
		id = -1;
	}
	done_with(s);
	return id;
}

long long
store_archive_room(struct store *st, const char *component, const char *room,
    int create)
{
	if (bad_args(st, "store_archive_room", component, room, 1))
		return -1;
	return archive_room(st, component, room, create);
}

long long
store_archive_add(struct store *st, long long room, time_t stamp,
    const char *nick, const char *body, char *sid, size_t sidlen)
{
	if (st == NULL || room <= 0 || nick == NULL || body == NULL) {
		log_error("store: store_archive_add called with a bad "
		    "argument");
		return -1;
	}
	if (st->nqueue == st->capqueue) {
		st->capqueue = st->capqueue ? st->capqueue * 2 : 64;
		st->queue = xreallocarray(st->queue, st->capqueue,
		    sizeof(*st->queue));
	}
	struct archive_row *r = &st->queue[st->nqueue++];
	r->id = ++st->archive_last;
	r->room = room;
	r->stamp = (long long)stamp;
	r->nick = xstrdup(nick);
	r->body = xstrdup(body);
	r->sid = xasprintf("%lld-%s", r->id, st->sid_suffix);
	if (sid != NULL)
		snprintf(sid, sidlen, "%s", r->sid);
	return r->id;
}

size_t
store_archive_queued(const struct store *st)
{
	return st ? st->nqueue : 0;
}

long long
store_archive_last(const struct store *st)
{
	return st ? st->archive_last : 0;
}

void
store_archive_set_keep(struct store *st, size_t keep)
{
	st->archive_keep = keep > 0 ? keep : 1;
}

static void
row_clear(struct archive_row *r)
{
	free(r->nick);
	free(r->body);
	free(r->sid);
}

int
store_archive_flush(struct store *st)
{
	if (st == NULL || st->nqueue == 0)
		return 0;
	/*
	 * One transaction for the whole batch: one WAL commit (and, with
	 * synchronous=NORMAL, no fsync) however many messages.  A failed
	 * batch is logged and dropped: retrying it on every message would
	 * stall the loop behind a broken disk.
	 */
	size_t n = st->nqueue;
	int ok = exec_sql(st, "BEGIN IMMEDIATE", "starting an archive batch")
	    == 0;
	for (size_t i = 0; ok && i < n; i++) {
		struct archive_row *r = &st->queue[i];
		sqlite3_stmt *s = st->stmt[STMT_ARCHIVE_INSERT];
		sqlite3_bind_int64(s, 1, r->id);
		sqlite3_bind_int64(s, 2, r->room);
		sqlite3_bind_int64(s, 3, r->stamp);
		sqlite3_bind_text(s, 4, r->nick, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 5, r->body, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 6, r->sid, -1, SQLITE_STATIC);
		ok = run_write(st, s, "archiving a message") >= 0;
	}
	/* Retention: prune each room the batch touched, once. */
	for (size_t i = 0; ok && i < n; i++) {
		int seen = 0;
		for (size_t j = 0; j < i && !seen; j++)
			seen = st->queue[j].room == st->queue[i].room;
		if (seen)
			continue;
		sqlite3_stmt *s = st->stmt[STMT_ARCHIVE_PRUNE];
		sqlite3_bind_int64(s, 1, st->queue[i].room);
		sqlite3_bind_int64(s, 2, (sqlite3_int64)st->archive_keep);
		ok = run_write(st, s, "pruning an archive") >= 0;
	}
	if (ok)
		ok = exec_sql(st, "COMMIT", "committing an archive batch") == 0;
	if (!ok) {
		exec_sql(st, "ROLLBACK", "rolling back an archive batch");
		log_error("store %s: %zu archived messages are lost", st->path,
		    n);
	}
	for (size_t i = 0; i < n; i++)
		row_clear(&st->queue[i]);
	st->nqueue = 0;
	return ok ? (int)n : -1;
}

/* Binds the filters of q as ?1..?6 of an archive query. */
static void
bind_query(sqlite3_stmt *s, const struct store_archive_query *q)
{
	sqlite3_bind_int64(s, 1, q->room);
	sqlite3_bind_int64(s, 2, q->after > 0 ? q->after : 0);
	sqlite3_bind_int64(s, 3, q->before > 0 ? q->before : INT64_MAX);
	sqlite3_bind_int64(s, 4, q->start > 0 ? (long long)q->start : 0);
	sqlite3_bind_int64(s, 5, q->end > 0 ? (long long)q->end : INT64_MAX);
	if (q->nick != NULL)
		sqlite3_bind_text(s, 6, q->nick, -1, SQLITE_STATIC);
	if (q->reader != NULL)
		sqlite3_bind_text(s, 8, q->reader, -1, SQLITE_STATIC);
}

int
store_archive_query(struct store *st, const struct store_archive_query *q,
    struct store_archive_msg **out, size_t *nout)
{
	*out = NULL;
	*nout = 0;
	if (st == NULL || q == NULL || q->room <= 0)
		return -1;
	/* Reads see everything archived so far. */
	if (store_archive_flush(st) < 0)
		return -1;
	sqlite3_stmt *s = st->stmt[q->backward ? STMT_ARCHIVE_BACKWARD :
	    STMT_ARCHIVE_FORWARD];
	bind_query(s, q);
	sqlite3_bind_int64(s, 7, (sqlite3_int64)q->max);
	struct store_archive_msg *v = NULL;
	size_t n = 0, cap = 0;
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 32;
			v = xreallocarray(v, cap, sizeof(*v));
		}
		v[n].id = sqlite3_column_int64(s, 0);
		v[n].stamp = (time_t)sqlite3_column_int64(s, 1);
		v[n].nick = xstrdup(column_text(s, 2));
		v[n].body = xstrdup(column_text(s, 3));
		v[n].sid = xstrdup(column_text(s, 4));
		n++;
	}
	done_with(s);
	if (rc != SQLITE_DONE) {
		log_error("store %s: reading the archive: %s", st->path,
		    sqlite3_errmsg(st->db));
		store_archive_msgs_free(v, n);
		return -1;
	}
	/* Oldest first, whichever end the rows were taken from. */
	if (q->backward)
		for (size_t i = 0; i < n / 2; i++) {
			struct store_archive_msg t = v[i];
			v[i] = v[n - 1 - i];
			v[n - 1 - i] = t;
		}
	*out = v;
	*nout = n;
	return 0;
}

long long
store_archive_count(struct store *st, const struct store_archive_query *q)
{
	if (st == NULL || q == NULL || q->room <= 0)
		return -1;
	if (store_archive_flush(st) < 0)
		return -1;
	sqlite3_stmt *s = st->stmt[STMT_ARCHIVE_COUNT];
	bind_query(s, q);
	long long n = -1;
	if (sqlite3_step(s) == SQLITE_ROW)
		n = sqlite3_column_int64(s, 0);
	else
		log_error("store %s: counting the archive: %s", st->path,
		    sqlite3_errmsg(st->db));
	done_with(s);
	return n;
}

int
store_archive_has(struct store *st, long long room, long long id,
    const char *reader)
{
	if (st == NULL || store_archive_flush(st) < 0)
		return -1;
	sqlite3_stmt *s = st->stmt[STMT_ARCHIVE_HAS];
	sqlite3_bind_int64(s, 1, room);
	sqlite3_bind_int64(s, 2, id);
	if (reader != NULL)
		sqlite3_bind_text(s, 8, reader, -1, SQLITE_STATIC);
	int rc = sqlite3_step(s);
	int ret = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
	if (ret < 0)
		log_error("store %s: reading the archive: %s", st->path,
		    sqlite3_errmsg(st->db));
	done_with(s);
	return ret;
}

/* Binds component, jid and room as ?1..?3; -1 on a bad argument. */
static int
bind_member(struct store *st, sqlite3_stmt *s, const char *what,
    const char *component, const char *jid, const char *room)
{
	if (bad_args(st, what, component, jid, 1) || room == NULL)
		return -1;
	if (bind_user(st, s, component, jid) == -1)
		return -1;
	sqlite3_bind_text(s, 3, room, -1, SQLITE_STATIC);
	return 0;
}

int
store_member_open(struct store *st, const char *component, const char *jid,
    const char *room)
{
	sqlite3_stmt *s = st ? st->stmt[STMT_MEMBER_REOPEN] : NULL;
	if (bind_member(st, s, "store_member_open", component, jid, room) < 0)
		return -1;
	sqlite3_bind_int64(s, 4, st->archive_last);
	int n = run_write(st, s, "continuing a room membership");
	if (n != 0)
		return n < 0 ? -1 : 0;
	s = st->stmt[STMT_MEMBER_OPEN];
	if (bind_member(st, s, "store_member_open", component, jid, room) < 0)
		return -1;
	sqlite3_bind_int64(s, 4, st->archive_last);
	return run_write(st, s, "recording a room membership") < 0 ? -1 : 0;
}

int
store_member_close(struct store *st, const char *component, const char *jid,
    const char *room)
{
	sqlite3_stmt *s = st ? st->stmt[STMT_MEMBER_CLOSE] : NULL;
	if (bind_member(st, s, "store_member_close", component, jid, room) < 0)
		return -1;
	sqlite3_bind_int64(s, 4, st->archive_last);
	return run_write(st, s, "ending a room membership") < 0 ? -1 : 0;
}

int
store_member_any(struct store *st, const char *component, const char *jid,
    const char *room)
{
	sqlite3_stmt *s = st ? st->stmt[STMT_MEMBER_ANY] : NULL;
	if (bind_member(st, s, "store_member_any", component, jid, room) < 0)
		return -1;
	int rc = sqlite3_step(s);
	int ret = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
	if (ret < 0)
		log_error("store %s: reading room members: %s", st->path,
		    sqlite3_errmsg(st->db));
	done_with(s);
	return ret;
}

long long
store_archive_expire(struct store *st, const char *component, time_t before,
    size_t keep)
{
	if (bad_args(st, "store_archive_expire", component, NULL, 0))
		return -1;
	if (store_archive_flush(st) < 0)
		return -1;
	/* The rooms first (a statement is not stepped while another
	 * writes), then one transaction for all of them. */
	sqlite3_stmt *s = st->stmt[STMT_ARCHIVE_ROOMS_OF];
	if (bind_user(st, s, component, NULL) == -1)
		return -1;
	long long *rooms = NULL;
	size_t n = 0, cap = 0;
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			rooms = xreallocarray(rooms, cap, sizeof(*rooms));
		}
		rooms[n++] = sqlite3_column_int64(s, 0);
	}
	done_with(s);
	if (rc != SQLITE_DONE) {
		log_error("store %s: listing archives: %s", st->path,
		    sqlite3_errmsg(st->db));
		free(rooms);
		return -1;
	}
	long long gone = 0;
	int ok = exec_sql(st, "BEGIN IMMEDIATE", "starting an expiry") == 0;
	for (size_t i = 0; ok && i < n; i++) {
		int k;
		if (before > 0) {
			s = st->stmt[STMT_ARCHIVE_EXPIRE_AGE];
			sqlite3_bind_int64(s, 1, rooms[i]);
			sqlite3_bind_int64(s, 2, (long long)before);
			ok = (k = run_write(st, s, "expiring old messages")) >= 0;
			gone += ok ? k : 0;
		}
		if (ok && keep > 0) {
			s = st->stmt[STMT_ARCHIVE_PRUNE];
			sqlite3_bind_int64(s, 1, rooms[i]);
			sqlite3_bind_int64(s, 2, (sqlite3_int64)keep);
			ok = (k = run_write(st, s, "pruning an archive")) >= 0;
			gone += ok ? k : 0;
		}
	}
	if (ok) {
		s = st->stmt[STMT_MEMBER_EXPIRE];
		if (bind_user(st, s, component, NULL) == -1)
			ok = 0;
		else {
			sqlite3_bind_int64(s, 2, st->archive_last + 1);
			ok = run_write(st, s, "expiring room memberships") >= 0;
		}
	}
	if (ok)
		ok = exec_sql(st, "COMMIT", "committing an expiry") == 0;
	if (!ok)
		exec_sql(st, "ROLLBACK", "rolling back an expiry");
	free(rooms);
	return ok ? gone : -1;
}

void
store_archive_msgs_free(struct store_archive_msg *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].nick);
		free(v[i].body);
		free(v[i].sid);
	}
	free(v);
}

long
store_pending_count(struct store *st, const char *component)
{
	if (bad_args(st, "store_pending_count", component, NULL, 0))
		return -1;
	sqlite3_stmt *s = st->stmt[STMT_PENDING_COUNT];
	if (bind_user(st, s, component, NULL) == -1)
		return -1;
	long n = -1;
	if (sqlite3_step(s) == SQLITE_ROW)
		n = (long)sqlite3_column_int64(s, 0);
	else
		log_error("store %s: counting kept stanzas: %s", st->path,
		    sqlite3_errmsg(st->db));
	done_with(s);
	return n;
}

/* ---- backend state ---- */

/* Binds component, jid and key; -1 (logged) on a NULL argument. */
static int
bind_state(struct store *st, const char *fn, sqlite3_stmt *s,
    const char *component, const char *jid, const char *key)
{
	if (bad_args(st, fn, component, jid, 1) || key == NULL) {
		if (key == NULL)
			log_error("store: %s called without a key", fn);
		return -1;
	}
	if (bind_user(st, s, component, jid) == -1)
		return -1;
	sqlite3_bind_text(s, 3, key, -1, SQLITE_STATIC);
	return 0;
}

int
store_state_set(struct store *st, const char *component, const char *jid,
    const char *key, const void *value, size_t len)
{
	sqlite3_stmt *s = st ? st->stmt[STMT_STATE_SET] : NULL;
	if (bind_state(st, "store_state_set", s, component, jid, key) == -1)
		return -1;
	sqlite3_bind_blob(s, 4, len ? value : "", (int)len, SQLITE_STATIC);
	sqlite3_bind_int64(s, 5, (sqlite3_int64)time(NULL));
	return run_write(st, s, "storing backend state") < 0 ? -1 : 0;
}

int
store_state_get(struct store *st, const char *component, const char *jid,
    const char *key, char **value, size_t *len)
{
	sqlite3_stmt *s = st ? st->stmt[STMT_STATE_GET] : NULL;
	if (bind_state(st, "store_state_get", s, component, jid, key) == -1)
		return -1;
	int rc = sqlite3_step(s), ret = 0;
	if (rc == SQLITE_ROW) {
		size_t n = (size_t)sqlite3_column_bytes(s, 0);
		const void *v = sqlite3_column_blob(s, 0);
		char *copy = xmalloc(n + 1);
		if (n > 0)
			memcpy(copy, v, n);
		copy[n] = '\0';
		*value = copy;
		if (len != NULL)
			*len = n;
		ret = 1;
	} else if (rc != SQLITE_DONE) {
		log_error("store %s: reading backend state %s of %s: %s",
		    st->path, key, jid, sqlite3_errmsg(st->db));
		ret = -1;
	}
	done_with(s);
	return ret;
}

int
store_state_remove(struct store *st, const char *component, const char *jid,
    const char *key)
{
	sqlite3_stmt *s = st ? st->stmt[STMT_STATE_REMOVE] : NULL;
	if (bind_state(st, "store_state_remove", s, component, jid, key) == -1)
		return -1;
	int n = run_write(st, s, "removing backend state");
	return n < 0 ? -1 : n > 0;
}

int
store_state_foreach(struct store *st, const char *component, const char *jid,
    const char *prefix, store_state_cb cb, void *arg)
{
	if (bad_args(st, "store_state_foreach", component, jid, 0))
		return -1;
	sqlite3_stmt *s = st->stmt[STMT_STATE_FOREACH];
	if (bind_user(st, s, component, jid) == -1)
		return -1;
	sqlite3_bind_text(s, 3, prefix ? prefix : "", -1, SQLITE_STATIC);
	/* Copied out first: callbacks write to the store. */
	struct row { char *jid, *key; void *value; size_t len; } *rows = NULL;
	size_t n = 0, cap = 0;
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			rows = xreallocarray(rows, cap, sizeof(*rows));
		}
		size_t len = (size_t)sqlite3_column_bytes(s, 2);
		rows[n].jid = xstrdup(column_text(s, 0));
		rows[n].key = xstrdup(column_text(s, 1));
		rows[n].value = xmalloc(len + 1);
		if (len > 0)
			memcpy(rows[n].value, sqlite3_column_blob(s, 2), len);
		((char *)rows[n].value)[len] = '\0';
		rows[n].len = len;
		n++;
	}
	int ret = rc == SQLITE_DONE ? 0 : -1;
	if (ret < 0)
		log_error("store %s: listing backend state of %s: %s", st->path,
		    component, sqlite3_errmsg(st->db));
	done_with(s);
	for (size_t i = 0; i < n; i++) {
		if (ret == 0 && cb(arg, rows[i].jid, rows[i].key,
		    rows[i].value, rows[i].len) != 0)
			ret = 1;
		free(rows[i].jid);
		free(rows[i].key);
		free(rows[i].value);
	}
	free(rows);
	return ret < 0 ? -1 : 0;
}

int
store_state_trim(struct store *st, const char *component, const char *jid,
    const char *prefix, unsigned keep)
{
	if (bad_args(st, "store_state_trim", component, jid, 1) ||
	    bad_args(st, "store_state_trim", component, prefix, 1))
		return -1;
	sqlite3_stmt *s = st->stmt[STMT_STATE_TRIM];
	if (bind_user(st, s, component, jid) == -1)
		return -1;
	sqlite3_bind_text(s, 3, prefix, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, (sqlite3_int64)keep);
	return run_write(st, s, "trimming backend state");
}

int
store_state_expire(struct store *st, const char *component,
    const char *prefix, time_t before)
{
	if (bad_args(st, "store_state_expire", component, prefix, 1))
		return -1;
	sqlite3_stmt *s = st->stmt[STMT_STATE_EXPIRE];
	if (bind_user(st, s, component, prefix) == -1)
		return -1;
	sqlite3_bind_int64(s, 3, (sqlite3_int64)before);
	return run_write(st, s, "expiring backend state");
}

/* ---- bulk writes (the biboumi import) ---- */

int
store_begin(struct store *st)
{
	if (st == NULL)
		return -1;
	/* Queued archive rows first: they must not land inside (or be
	 * rolled back with) the caller's transaction. */
	if (store_archive_flush(st) < 0)
		return -1;
	return exec_sql(st, "BEGIN IMMEDIATE", "starting a transaction");
}

int
store_end(struct store *st, int commit)
{
	if (st == NULL)
		return -1;
	if (commit && exec_sql(st, "COMMIT", "committing") == 0)
		return 0;
	exec_sql(st, "ROLLBACK", "rolling back");
	return -1;
}

int
store_room_add(struct store *st, const char *component, const char *jid,
    const char *room, int persistent, const char *encoding, long long seen)
{
	if (bad_args(st, "store_room_add", component, jid, 1) || room == NULL)
		return -1;
	/* INSERT OR IGNORE: ?1..?5 as for store_room_set, ?6 seen. */
	sqlite3_stmt *s = st->stmt[STMT_ROOM_ADD];
	if (bind_user(st, s, component, jid) == -1)
		return -1;
	sqlite3_bind_text(s, 3, room, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 4, persistent ? 1 : 0);
	if (encoding != NULL && *encoding != '\0')
		sqlite3_bind_text(s, 5, encoding, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 6, seen);
	return run_write(st, s, "adding room settings");
}

long long
store_archive_put(struct store *st, long long room, time_t stamp,
    const char *nick, const char *body, const char *sid)
{
	if (st == NULL || room <= 0 || nick == NULL || body == NULL ||
	    sid == NULL || *sid == '\0') {
		log_error("store: store_archive_put called with a bad argument");
		return -1;
	}
	/* Anything queued holds smaller ids: it is written first. */
	if (st->nqueue > 0) {
		log_error("store: store_archive_put with archive rows queued");
		return -1;
	}
	long long id = st->archive_last + 1;
	sqlite3_stmt *s = st->stmt[STMT_ARCHIVE_INSERT];
	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_int64(s, 2, room);
	sqlite3_bind_int64(s, 3, (sqlite3_int64)stamp);
	sqlite3_bind_text(s, 4, nick, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 5, body, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 6, sid, -1, SQLITE_STATIC);
	if (run_write(st, s, "archiving a message") < 0)
		return -1;
	st->archive_last = id;
	return id;
}

int
store_archive_trim(struct store *st, long long room)
{
	if (st == NULL || room <= 0)
		return -1;
	sqlite3_stmt *s = st->stmt[STMT_ARCHIVE_PRUNE];
	sqlite3_bind_int64(s, 1, room);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)st->archive_keep);
	return run_write(st, s, "pruning an archive");
}

size_t
store_archive_keep(const struct store *st)
{
	return st ? st->archive_keep : STORE_ARCHIVE_KEEP;
}

long long
store_archive_find_sid(struct store *st, long long room, const char *sid)
{
	if (st == NULL || room <= 0 || sid == NULL)
		return -1;
	if (store_archive_flush(st) < 0)
		return -1;
	sqlite3_stmt *s = st->stmt[STMT_ARCHIVE_SID];
	sqlite3_bind_int64(s, 1, room);
	sqlite3_bind_text(s, 2, sid, -1, SQLITE_STATIC);
	int rc = sqlite3_step(s);
	long long id = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		log_error("store %s: finding a stanza-id: %s", st->path,
		    sqlite3_errmsg(st->db));
		id = -1;
	}
	done_with(s);
	return id;
}

int
store_member_span(struct store *st, const char *component, const char *jid,
    const char *room, long long from_id, long long to_id)
{
	if (bad_args(st, "store_member_span", component, jid, 1) ||
	    room == NULL || from_id < 0 || to_id <= from_id)
		return -1;
	sqlite3_stmt *s = st->stmt[STMT_MEMBER_SPAN];
	if (bind_user(st, s, component, jid) == -1)
		return -1;
	sqlite3_bind_text(s, 3, room, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, from_id);
	sqlite3_bind_int64(s, 5, to_id);
	return run_write(st, s, "recording a past room membership") < 0 ?
	    -1 : 0;
}
