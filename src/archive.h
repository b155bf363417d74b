/*
 * The room archive's live side: which rooms are archived now, how
 * what several users hear becomes one archived message, when the
 * queued messages are written, and when old ones go.
 *
 * Every joined room is archived, once however many of the gateway's
 * users are in it.  Each of those users has a connection in the channel
 * and hears every message, so each of their rooms attaches to the one
 * archive entry (archive_attach) and reports what it hears
 * (archive_heard).  The first to report a message archives it; the
 * others' reports of the same message (same nick and body, not yet
 * reported by them, heard within ARCHIVE_MATCH_SECS) get the same
 * archive id and stanza-id, so every user's live copy carries the id
 * MAM gives for it.  Matching needs no order (two connections may hear
 * a user's own line and another's in either order); what a room heard
 * before it attached, or while its link was down, is never matched.
 *
 * Writes are batched: a new message is queued in the store, and the
 * queue is written in one transaction ARCHIVE_FLUSH_MS after the first
 * queued message, or at once when ARCHIVE_FLUSH_ROWS are waiting.
 * store_close() writes what is left.
 *
 * Retention is the operator's (history_days, history_max per
 * component): archive_retention() applies it at once and every
 * ARCHIVE_EXPIRE_SECS after.
 */
#ifndef CAUSEWAY_ARCHIVE_H
#define CAUSEWAY_ARCHIVE_H

#include <stddef.h>
#include <time.h>

#define ARCHIVE_FLUSH_MS 500
#define ARCHIVE_FLUSH_ROWS 200
/* Reports of one message by several owners are this close in time. */
#define ARCHIVE_MATCH_SECS 30
/* Messages remembered for matching, per archive with several owners. */
#define ARCHIVE_RECENT 256
#define ARCHIVE_EXPIRE_SECS 3600

struct archive;

/* The archive of room (component, folded room name) with owner (an
 * opaque pointer: the user's room, of bare JID jid) attached; NULL on a
 * store error (logged).  Each attach is undone by one archive_detach().
 * While attached with its link up, the user is a member of the room
 * for the store (store_member_open): what is archived meanwhile is
 * theirs to read. */
struct archive *archive_attach(const char *component, const char *room,
    const void *owner, const char *jid);
void archive_detach(struct archive *a, const void *owner);
/* owner's link to the network went down (1) or is back (0): what it
 * hears after coming back is never matched with what others reported
 * while it was away. */
void archive_set_down(struct archive *a, const void *owner, int down);
/* The archive room's id in the store. */
long long archive_room_id(const struct archive *a);
/* owner heard a message (stamp: when it was sent): the archive id of
 * the one message all owners report as this one (queued if owner is
 * the first), its XEP-0359 stanza-id in sid; -1 on an error. */
long long archive_heard(struct archive *a, const void *owner,
    const char *nick, const char *body, time_t stamp, char *sid,
    size_t sidlen);
/* Retention of component's archives: messages older than days (0: any
 * age) and beyond the newest max per room (0: no limit) are removed
 * now and periodically. */
void archive_retention(const char *component, unsigned days, size_t max);
/* Writes the queue now (also done by every archive read). */
void archive_flush(void);

#endif
