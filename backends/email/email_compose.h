/*
 * Outgoing mail: a reply built from what the XMPP side sent.
 *
 * Every value here may come from an XMPP stanza and is hostile: CR, LF
 * and other control characters can never reach a header (they become
 * spaces, or the value is refused), addresses must be addr-specs,
 * msg-ids are re-read and only well-formed ones kept, non-ASCII header
 * text is RFC 2047 encoded, the body is UTF-8 in quoted-printable (7bit
 * when it is plain short ASCII).
 */
#ifndef CAUSEWAY_EMAIL_COMPOSE_H
#define CAUSEWAY_EMAIL_COMPOSE_H

#include <time.h>

struct email_draft {
	const char *from_addr;   /* the user's address */
	const char *from_name;   /* NULL: none */
	const char *to_addr;
	const char *subject;     /* NULL: none */
	const char *body;
	const char *in_reply_to; /* "<id>", NULL: none */
	const char *references;  /* "<a> <b>", NULL: none */
	time_t date;
	const char *message_id;  /* NULL: a new one */
};

/*
 * The mail as RFC 5322 text with CRLF line ends (caller frees), and its
 * Message-ID in *message_id (caller frees); NULL with *err (static text)
 * when an address is not an addr-spec.
 */
char *email_compose(const struct email_draft *d, char **message_id,
    const char **err);
/* "Re: " + subject, unless it already starts with a reply prefix; the
 * subject cleaned to one line (caller frees). */
char *email_compose_reply_subject(const char *subject);
/* A header's text as RFC 2047 encoded words when it needs them, folded
 * so no line passes 78 characters (caller frees).  phrase: for a
 * display name (quoted when it has specials). */
char *email_compose_encode(const char *utf8, int phrase);
/* A new "<random.time@domain>" (caller frees). */
char *email_compose_message_id(const char *domain);

#endif
