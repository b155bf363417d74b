/* Placeholder until the room layer lands: no backend has rooms yet. */
#include "autoconf.h"

#include <stddef.h>

#include "room.h"
#include "stanza.h"

void
room_handle_presence(struct component *c, const struct stanza *st,
    const struct jid *from, const struct jid *to, const char *room)
{
}

void
room_handle_message(struct component *c, const struct stanza *st,
    const struct jid *from, const struct jid *to, const char *room)
{
}

struct stanza *
room_handle_iq(struct component *c, const struct stanza *iq,
    const struct jid *from, const struct jid *to, const char *room)
{
	return stanza_error_reply(iq, "service-unavailable", NULL);
}

void room_session_online(struct session *s) { }
void room_session_offline(struct session *s, const char *reason) { }
void room_session_free(struct session *s) { }
unsigned room_session_count(const struct session *s) { return 0; }
