/*
 * smstools3 spool files as text: the parts of a message file that the
 * smstools driver reads and writes, as pure functions (no I/O), unit
 * tested.  A file is header lines ("Name: value"), one empty line, and
 * the body: the text itself, or for a status report more "Name: value"
 * lines after "SMS STATUS REPORT".  Every file the driver reads may come
 * from anyone who can write into the spool, so everything here is
 * bounded and refuses what smsd never writes.
 */
#ifndef CAUSEWAY_SMSTOOLS_FILE_H
#define CAUSEWAY_SMSTOOLS_FILE_H

#include <stddef.h>
#include <time.h>

/* A spool file larger than this is refused unread.  The largest file
 * smsd writes for a text (255 UCS-2 parts of 67 units) is ~35 KB of
 * body plus a few hundred bytes of headers. */
#define SMSTOOLS_FILE_MAX (256 * 1024)
#define SMSTOOLS_HEADERS_MAX 64
#define SMSTOOLS_HEADER_NAME_MAX 32

struct smstools_header {
	const char *name;
	const char *value;      /* without leading blanks or a final CR */
};

struct smstools_file {
	char *buf;              /* a copy of the header lines, cut up */
	struct smstools_header hdr[SMSTOOLS_HEADERS_MAX];
	size_t nhdr;
	const char *body;       /* into the caller's data, not copied */
	size_t bodylen;
};

/*
 * Splits len bytes into headers and body.  Refused, with a static
 * reason in *reason: no empty line ending the headers, a header line
 * without "Name:" (name of letters, digits, '_' and '-'), a NUL or a
 * control character other than TAB in the headers, more than
 * SMSTOOLS_HEADERS_MAX lines.  The body is whatever follows (may hold
 * any byte).  0 (free with smstools_file_clear) or -1 (nothing to free).
 */
int smstools_file_parse(const char *data, size_t len, struct smstools_file *f,
    const char **reason);
void smstools_file_clear(struct smstools_file *f);
/* The value of the first header with that name (smsd's names are
 * case-sensitive), borrowed; NULL if there is none. */
const char *smstools_file_header(const struct smstools_file *f,
    const char *name);

/* A status report's body. */
struct smstools_report {
	long message_id;        /* -1 when missing */
	int status;             /* TP-Status 0..255, -1 when missing */
	char text[128];         /* smsd's words after the code ("Ok,short
	                         * message received by the SME"), cleaned */
};
/* 1 when the body is a status report ("SMS STATUS REPORT" first) and
 * *r is filled, 0 when it is not one (*r then empty).  The last
 * "Message_id:" and "Status:" lines count, each read as its first 255
 * bytes up to a NUL; an id or status of more than 9 digits is -1. */
int smstools_report_parse(const char *body, size_t len,
    struct smstools_report *r);

/* What a TP-Status (3GPP TS 23.040 9.2.3.15) means for the sender. */
enum smstools_status {
	SMSTOOLS_DELIVERED,     /* 0..31: the transaction is complete */
	SMSTOOLS_PENDING,       /* 32..63: the SC is still trying */
	SMSTOOLS_FAILED,        /* 64..255: permanent, or the SC gave up */
};
enum smstools_status smstools_status_kind(int status);

/*
 * A "Message_id:" value: one number, or with messageids = 3 several
 * separated by blanks and ended by " .".  Stores up to max ids (0..255
 * each; TP-MR is one octet) and returns how many, or -1 for anything
 * else.
 */
int smstools_message_ids(const char *value, int *ids, size_t max);

/* smsd's default date_format, "yy-mm-dd hh:mm:ss" (20yy) in local
 * time, to a time_t; 0 and *out, or -1 (*out untouched).  Exactly that
 * shape, two digits each, and only a time that exists on the local
 * clock (no 02-30, no second 60, none in a DST gap). */
int smstools_time_parse(const char *s, time_t *out);

/* ISO-8859-15 (what smsd writes for "Alphabet: ISO" without
 * incoming_utf8) to UTF-8; caller frees; never NULL.  Every byte is one
 * character: 1 byte of UTF-8 below 0x80, 3 for 0xA4 (U+20AC), 2 for
 * every other byte (U+0080..U+00FF and the seven other letters where
 * ISO-8859-15 differs from Latin-1), so *outlen <= 3 * len.  The result still needs sms_decode()
 * for XML (control characters, NUL). */
char *smstools_latin9_to_utf8(const char *in, size_t len, size_t *outlen);

/*
 * The "To:" value for an outgoing file: E.164 "+15551234567" becomes
 * "15551234567" (smsd wants international numbers without '+'), a short
 * code "12345" becomes "s12345" (smsd's mark for a number it must send
 * with an unknown type of address).  0, or -1 for anything that is not
 * digits after an optional '+' (1..20 of them).
 */
int smstools_to_header(const char *number, char *out, size_t size);

/*
 * Our outgoing files are named PREFIX REF: "causeway.DOMAIN.REF", so
 * that several components can share one spool and an operator sees
 * whose a file is.  DOMAIN is the component's domain in lower case when
 * it is made of letters, digits, '.' and '-' (at most 64), else 16 hex
 * digits of a hash of it.  out needs SMSTOOLS_PREFIX_SIZE bytes.
 */
#define SMSTOOLS_PREFIX_SIZE 80
#define SMSTOOLS_REF_MAX 32
void smstools_file_prefix(const char *domain, char out[SMSTOOLS_PREFIX_SIZE]);
/* The ref of a file named prefix REF (REF of [0-9a-z], at most 32
 * characters) into ref; 1, or 0 for other names. */
int smstools_ref_from_name(const char *name, const char *prefix,
    char ref[SMSTOOLS_REF_MAX + 1]);

#endif
