/*
 * Room directories: disco#items on a registration scope (an IRC
 * server's JID) lists the rooms there (XEP-0030 items, as clients show
 * in their room browser).  The backend fills the list asynchronously
 * (IRC's LIST takes seconds on a large network):
 *
 *   core: roomlist_request() -> backend->list_rooms(s, scope, l)
 *   backend: room_list_add(l, ...) for each room, then exactly once
 *            room_list_done(l, NULL, NULL) or room_list_done(l, cond, text)
 *
 * The answer leaves at done, or after ROOM_LIST_TIMEOUT seconds with
 * what has arrived (the backend still calls done later, which then only
 * frees the list).  At most ROOM_LIST_MAX rooms are kept, and an answer
 * holds at most ROOM_LIST_PAGE: clients page through the rest with
 * XEP-0059 (max, after, before; count and first/last in every page),
 * in the order of the rooms' JIDs.  A backend
 * must call room_list_done for every list it was given, also when the
 * session logs out.
 */
#ifndef CAUSEWAY_ROOMLIST_H
#define CAUSEWAY_ROOMLIST_H

struct component;
struct room_list;
struct stanza;

#define ROOM_LIST_TIMEOUT 30
#define ROOM_LIST_MAX 50000
#define ROOM_LIST_PAGE 1000

/* disco#items to a scope: NULL when the answer comes later, else the
 * answer (an error). */
struct stanza *roomlist_request(struct component *c, const struct stanza *iq,
    const char *scope);

/* room: the room's legacy address (unescaped local part); name may be
 * NULL; users < 0 when unknown. */
void room_list_add(struct room_list *l, const char *room, const char *name,
    long users);
void room_list_done(struct room_list *l, const char *condition,
    const char *text);

#endif
