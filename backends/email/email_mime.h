/*
 * Mail as chat text: an RFC 5322 message (possibly cut short by the
 * fetch size cap) becomes a UTF-8 body, subject, sender and thread.
 *
 * Everything here is pure (no I/O, no global state besides iconv) so it
 * is unit tested and fuzzed.  Input is hostile: every header value is
 * capped, MIME nesting and part counts are limited, undeclared or
 * unknown charsets fall back to Windows-1252, broken base64 and
 * quoted-printable decode what they can, and the output is always valid
 * UTF-8 without characters XML cannot carry.
 */
#ifndef CAUSEWAY_EMAIL_MIME_H
#define CAUSEWAY_EMAIL_MIME_H

#include <stddef.h>
#include <time.h>

/* A header value is read up to this many bytes (the rest is ignored). */
#define EMAIL_HEADER_MAX 16384
/* Decoded subjects and names are cut to this many bytes. */
#define EMAIL_SUBJECT_MAX 1024
#define EMAIL_NAME_MAX 256
/* MIME structure limits: deeper or further parts are listed as skipped. */
#define EMAIL_DEPTH_MAX 32
#define EMAIL_PARTS_MAX 256
/* References kept from a mail, in msg-ids (the newest ones). */
#define EMAIL_REFS_MAX 20

struct email_limits {
	size_t text_max;       /* bytes of body text shown */
	size_t total_size;     /* RFC822.SIZE of the whole mail (0: the raw
	                        * input is the whole mail) */
};

struct email_text {
	char *from_addr;       /* lower-case addr-spec, NULL: none usable */
	char *from_name;       /* display name, NULL: none */
	char *subject;         /* NULL: none */
	char *message_id;      /* "<x@y>", NULL: none */
	char *references;      /* "<a> <b> ...", the newest EMAIL_REFS_MAX */
	char *thread;          /* derived thread id, NULL: no ids at all */
	time_t date;           /* UTC, 0: absent or unreadable */
	char *body;            /* never NULL after email_mime_parse() */
};

/*
 * Parses raw (len bytes, which may be only the start of the mail) into
 * out.  Never fails: what cannot be read is said in the body.
 */
void email_mime_parse(const char *raw, size_t len,
    const struct email_limits *lim, struct email_text *out);
void email_text_clear(struct email_text *t);

/* ---- the pieces, exported for tests ---- */

/* Quoted-printable / base64 to bytes (caller frees; *outlen set).
 * Broken input decodes as far as it makes sense; never fails. */
char *email_mime_qp_decode(const char *in, size_t len, int header,
    size_t *outlen);
char *email_mime_b64_decode(const char *in, size_t len, size_t *outlen);
/* Bytes in charset (NULL or unknown: UTF-8 when valid, else
 * Windows-1252) to valid UTF-8 without C0 controls other than tab and
 * newline (CR LF becomes LF).  *known (may be NULL) is 0 when the
 * charset was unknown. */
char *email_mime_to_utf8(const char *in, size_t len, const char *charset,
    int *known);
/* An unfolded header value with RFC 2047 encoded words decoded, as one
 * line of UTF-8, cut to max bytes (0: no cut). */
char *email_mime_header_text(const char *raw, size_t max);
/* HTML to readable text (UTF-8 in, UTF-8 out). */
char *email_mime_html_to_text(const char *html, size_t len);
/* The first mailbox of an address list: *addr (lower-case addr-spec or
 * NULL) and *name (decoded display name or NULL); caller frees both. */
void email_mime_parse_from(const char *value, char **addr, char **name);
/* RFC 5322 date-time to UTC, 0 when unreadable. */
time_t email_mime_parse_date(const char *value);
/* A stable thread id for a conversation: from the first msg-id of
 * References, else In-Reply-To, else the Message-ID; NULL when none. */
char *email_mime_thread_id(const char *message_id, const char *in_reply_to,
    const char *references);
/* msg-ids ("<a@b>") found in a header value, space-separated, the last
 * max of them; NULL when none. */
char *email_mime_msgids(const char *value, size_t max);
/* 1 when a is an addr-spec this gateway can use: a dot-atom local
 * part (no quoted strings) and a host name. */
int email_mime_addr_valid(const char *a);
/* Valid UTF-8 with control characters removed (newline and tab kept
 * when multiline), invalid bytes as U+FFFD. */
char *email_mime_clean_utf8(const char *in, size_t len, int multiline);

#endif
