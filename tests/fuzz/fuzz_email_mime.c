/*
 * libFuzzer harness for the email backend's MIME and header decoding
 * (email_mime.h).
 *
 * The input, after its first byte, is a whole mail for
 * email_mime_parse() (cut short or not, as a capped IMAP fetch gives
 * it), and the same bytes go through every decoding piece on its own: a
 * header value (RFC 2047 words, unfolding, the cut), a From header, a
 * Date, msg-id lists and the thread id, quoted-printable and base64, a
 * charset conversion (the charset taken from the input's first line),
 * HTML to text, and the UTF-8 cleaner.  What must hold: every text the
 * chat side gets is valid UTF-8 (checked by tests/utf8_check.h, written
 * apart) without a character XML 1.0 forbids, header texts are one line
 * and within their cap, a sender address passes email_mime_addr_valid(),
 * the body is never NULL and within text_max plus its note, a date is
 * within the years 1970 to 9999, decoders never grow their input beyond the
 * encoding's ratio.  The first byte picks text_max and whether the mail
 * counts as cut.  Anything wrong aborts.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "email_mime.h"
#include "../utf8_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
die(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_email_mime: %s: %.200s\n", what,
	    detail != NULL ? detail : "(null)");
	abort();
}

/* Valid UTF-8 that XML 1.0 can carry: no C0 control but tab and (when
 * multiline) newline, no U+FFFE or U+FFFF. */
static void
check_text(const char *what, const char *s, int multiline)
{
	if (s == NULL)
		return;
	if (!valid_utf8(s))
		die(what, "not valid UTF-8");
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p < 0x20 && *p != '\t' && !(multiline && *p == '\n'))
			die(what, "a control character");
		if (p[0] == 0xef && p[1] == 0xbf && (p[2] == 0xbe ||
		    p[2] == 0xbf))
			die(what, "U+FFFE or U+FFFF");
	}
}

static void
check_header(const char *what, const char *s, size_t max)
{
	check_text(what, s, 0);
	if (s != NULL && max > 0 && strlen(s) > max)
		die(what, "longer than its cap");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	static const size_t text_max[] = { 256, 1024, 4096, 65536 };
	unsigned sel = data[0];
	data++;
	size--;
	/* A NUL-terminated copy for the functions that take strings. */
	char *s = malloc(size + 1);
	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	size_t slen = strlen(s);

	/* The whole mail. */
	struct email_limits lim = { .text_max = text_max[sel & 3],
	    .total_size = (sel & 4) ? size + 1000 : 0 };
	struct email_text t;
	memset(&t, 0, sizeof(t));
	email_mime_parse((const char *)data, size, &lim, &t);
	if (t.body == NULL)
		die("parse", "no body");
	check_text("body", t.body, 1);
	/* text_max of text, then notes (cut, parts listed) of bounded
	 * size: a few KB over is a bug. */
	if (strlen(t.body) > lim.text_max + 64 * 1024)
		die("body", "far beyond text_max");
	check_header("subject", t.subject, EMAIL_SUBJECT_MAX);
	check_header("from name", t.from_name, EMAIL_NAME_MAX);
	check_header("message-id", t.message_id, 0);
	check_header("references", t.references, 0);
	check_header("thread", t.thread, 0);
	if (t.from_addr != NULL && !email_mime_addr_valid(t.from_addr))
		die("from address", t.from_addr);
	/* Years 1970 to 9999 only (a zone offset may move it a day). */
	if (t.date < 0 || t.date > (time_t)253402387200LL)
		die("date", "beyond the year 9999");
	email_text_clear(&t);

	/* The pieces. */
	char *h = email_mime_header_text(s, (sel & 8) ? 0 : 64);
	check_header("header text", h, (sel & 8) ? 0 : 64);
	free(h);

	char *addr = NULL, *name = NULL;
	email_mime_parse_from(s, &addr, &name);
	if (addr != NULL && !email_mime_addr_valid(addr))
		die("parse_from address", addr);
	check_header("parse_from address", addr, 0);
	check_header("parse_from name", name, EMAIL_NAME_MAX);
	free(addr);
	free(name);

	time_t d = email_mime_parse_date(s);
	if (d < 0 || d > (time_t)253402387200LL)
		die("parse_date", "beyond the year 9999");
	(void)email_mime_addr_valid(s);

	char *ids = email_mime_msgids(s, 5);
	check_header("msgids", ids, 0);
	char *th = email_mime_thread_id(ids, s, s);
	check_header("thread id", th, 0);
	free(th);
	free(ids);

	size_t outlen;
	char *qp = email_mime_qp_decode((const char *)data, size, sel & 16,
	    &outlen);
	if (qp == NULL || outlen > size)
		die("qp", "NULL or longer than its input");
	free(qp);
	char *b64 = email_mime_b64_decode((const char *)data, size, &outlen);
	if (b64 == NULL || outlen > size * 3 / 4 + 3)
		die("base64", "NULL or longer than 3/4 of its input");
	free(b64);

	/* A charset named by the input's first line (bounded). */
	char cs[48];
	size_t cl = strcspn(s, "\n");
	if (cl >= sizeof(cs))
		cl = sizeof(cs) - 1;
	memcpy(cs, s, cl);
	cs[cl] = '\0';
	const char *rest = s + (s[cl] == '\n' ? cl + 1 : cl);
	int known;
	char *u = email_mime_to_utf8(rest, strlen(rest), (sel & 32) ? cs :
	    NULL, &known);
	check_text("to_utf8", u, 1);
	free(u);

	char *html = email_mime_html_to_text(s, slen);
	check_text("html", html, 1);
	free(html);

	char *c1 = email_mime_clean_utf8((const char *)data, size, 1);
	check_text("clean multiline", c1, 1);
	free(c1);
	char *c0 = email_mime_clean_utf8((const char *)data, size, 0);
	check_text("clean", c0, 0);
	free(c0);

	free(s);
	return 0;
}
