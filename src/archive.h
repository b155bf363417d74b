/*
 * The room archive's live side: which rooms are archived now, who of
 * their users writes the archive, and when the queued messages are
 * written.
 *
 * A persistent room is archived once, however many users persist it.
 * Each of those users has an IRC connection in the channel and hears
 * every message, so each of their rooms attaches to the one archive
 * entry (archive_attach) and only the first attached, the writer,
 * archives; when it detaches, the next one takes over.
 *
 * Writes are batched: archive_add() queues the message in the store,
 * and the queue is written in one transaction ARCHIVE_FLUSH_MS after
 * the first queued message, or at once when ARCHIVE_FLUSH_ROWS are
 * waiting.  store_close() writes what is left.
 */
#ifndef CAUSEWAY_ARCHIVE_H
#define CAUSEWAY_ARCHIVE_H

#include <stddef.h>
#include <time.h>

#define ARCHIVE_FLUSH_MS 500
#define ARCHIVE_FLUSH_ROWS 200

struct archive;

/* The archive of room (component, folded room name) with owner (an
 * opaque pointer: the user's room) attached; NULL on a store error
 * (logged).  Each attach is undone by one archive_detach(). */
struct archive *archive_attach(const char *component, const char *room,
    const void *owner);
void archive_detach(struct archive *a, const void *owner);
/* 1 when owner is the one that writes a's messages: the first attached
 * whose link is up. */
int archive_is_writer(const struct archive *a, const void *owner);
/* owner's link to the network went down (1) or is back (0): while down,
 * the next owner in line writes, so the history keeps being recorded. */
void archive_set_down(struct archive *a, const void *owner, int down);
/* The archive room's id in the store. */
long long archive_room_id(const struct archive *a);
/* Queues a message (stamp: when it was sent); its XEP-0359 stanza-id
 * goes to sid.  Returns the archive id, or -1. */
long long archive_add(struct archive *a, const char *nick, const char *body,
    time_t stamp, char *sid, size_t sidlen);
/* Writes the queue now (also done by every archive read). */
void archive_flush(void);

#endif
