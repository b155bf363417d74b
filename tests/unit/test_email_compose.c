/*
 * Unit tests for outgoing mail: header injection through the subject,
 * the display name, the body, the addresses and the msg-ids (each
 * attempt must leave exactly the headers we write), RFC 2047 encoding
 * of non-ASCII headers, quoted-printable bodies (dots at line starts,
 * long lines, trailing blanks), Re: subjects, threading headers, and a
 * round trip through the incoming parser.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "email_compose.h"
#include "email_mime.h"
#include "tap.h"

/* How many header lines start with name (case-sensitive, as we write
 * them), in the header block only. */
static int
count_headers(const char *mail, const char *name)
{
	const char *end = strstr(mail, "\r\n\r\n");
	size_t nl = strlen(name);
	int n = 0;
	for (const char *p = mail; p && p < end; ) {
		if (strncasecmp(p, name, nl) == 0 && p[nl] == ':')
			n++;
		p = strstr(p, "\r\n");
		if (p)
			p += 2;
	}
	return n;
}

/* Every line ends with CRLF, no bare CR or LF, none longer than 998. */
static int
well_formed(const char *mail)
{
	size_t col = 0;
	for (const char *p = mail; *p; p++) {
		if (*p == '\r') {
			if (p[1] != '\n')
				return 0;
			p++;
			col = 0;
			continue;
		}
		if (*p == '\n' || ++col > 998)
			return 0;
	}
	return 1;
}

static char *
compose(const char *subject, const char *name, const char *body,
    const char *irt, const char *refs)
{
	struct email_draft d = { .from_addr = "me@example.org",
	    .from_name = name, .to_addr = "alice@example.net",
	    .subject = subject, .body = body, .in_reply_to = irt,
	    .references = refs, .date = 1057049557 };
	char *mid;
	const char *err;
	char *m = email_compose(&d, &mid, &err);
	free(mid);
	return m;
}

static void
injection(void)
{
	char *m = compose("hi\r\nBcc: victim@x", "Eve\r\nBcc: v2@x",
	    "body\r\n.\r\nBcc: v3@x", "<a@b>\r\nBcc: v4@x",
	    "<c@d>\nBcc: v5@x");
	CHECK(m != NULL);
	CHECK(count_headers(m, "Bcc") == 0);
	CHECK(count_headers(m, "Subject") == 1);
	CHECK(count_headers(m, "From") == 1);
	CHECK(count_headers(m, "To") == 1);
	CHECK(strstr(m, "\r\n.\r\n") == NULL);
	CHECK(well_formed(m));
	free(m);
	/* Lone CR and other controls. */
	m = compose("a\rb\x01\x7f" "c", "n\x0b", "x", NULL, NULL);
	CHECK(strstr(m, "Subject: a b" "c\r\n") != NULL);
	CHECK(well_formed(m));
	free(m);
	/* Addresses are checked, never cleaned. */
	struct email_draft d = { .from_addr = "me@example.org",
	    .to_addr = "a@b.test>\r\nBcc: x@y", .body = "x" };
	char *mid;
	const char *err = NULL;
	CHECK(email_compose(&d, &mid, &err) == NULL && err != NULL);
	d.to_addr = "a@b.test";
	d.from_addr = "me@ex\nample.org";
	CHECK(email_compose(&d, &mid, &err) == NULL);
}

static void
encoding(void)
{
	char *s = email_compose_encode("Gr\xc3\xbc\xc3\x9f" "e", 0);
	CHECK_STR(s, "=?UTF-8?B?R3LDvMOfZQ==?=");
	free(s);
	s = email_compose_encode("Doe, Alice", 1);
	CHECK_STR(s, "\"Doe, Alice\"");
	free(s);
	s = email_compose_encode("say \"hi\"", 1);
	CHECK_STR(s, "\"say \\\"hi\\\"\"");
	free(s);
	s = email_compose_encode("Alice", 1);
	CHECK_STR(s, "Alice");
	free(s);
	/* Text that looks like an encoded word is encoded itself. */
	s = email_compose_encode("=?utf-8?q?x?=", 0);
	CHECK(strncmp(s, "=?UTF-8?B?", 10) == 0);
	free(s);
	/* Long text folds into several words, each line short. */
	char longs[601];
	for (size_t i = 0; i + 1 < sizeof(longs); i += 2)
		memcpy(longs + i, "\xc3\xa9", 2);
	longs[sizeof(longs) - 1] = '\0';
	s = email_compose_encode(longs, 0);
	for (char *p = s, *e; *p; p = e + (*e ? 3 : 0)) {
		e = strstr(p, "\r\n ");
		if (e == NULL)
			e = p + strlen(p);
		CHECK(e - p <= 76);
	}
	char *back = email_mime_header_text(s, 0);
	CHECK_STR(back, longs);
	free(back);
	free(s);
}

static void
reply_subject(void)
{
	char *s = email_compose_reply_subject("Lunch");
	CHECK_STR(s, "Re: Lunch");
	free(s);
	s = email_compose_reply_subject("RE: Lunch");
	CHECK_STR(s, "RE: Lunch");
	free(s);
	s = email_compose_reply_subject("a\r\nBcc: x");
	CHECK_STR(s, "Re: a Bcc: x");
	free(s);
	s = email_compose_reply_subject(NULL);
	CHECK_STR(s, "Re: ");
	free(s);
}

static void
body_encoding(void)
{
	char *m = compose("s", NULL, "plain ascii\nsecond line", NULL, NULL);
	CHECK(strstr(m, "Content-Transfer-Encoding: 7bit\r\n\r\nplain ascii"
	    "\r\nsecond line\r\n") != NULL);
	CHECK(strstr(m, "Content-Type: text/plain; charset=utf-8\r\n") !=
	    NULL);
	CHECK(strstr(m, "MIME-Version: 1.0\r\n") != NULL);
	free(m);
	m = compose("s", NULL, "caf\xc3\xa9 = ok\n.dot\ntrailing \n", NULL,
	    NULL);
	CHECK(strstr(m, "quoted-printable") != NULL);
	CHECK(strstr(m, "caf=C3=A9 =3D ok\r\n=2Edot\r\ntrailing=20\r\n") !=
	    NULL);
	CHECK(well_formed(m));
	free(m);
	char big[3000];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	m = compose("s", NULL, big, NULL, NULL);
	CHECK(well_formed(m));
	CHECK(strstr(m, "=\r\n") != NULL);
	free(m);
}

static void
threading(void)
{
	struct email_draft d = { .from_addr = "me@example.org",
	    .from_name = "M\xc3\xa9", .to_addr = "alice@example.net",
	    .subject = "Re: Lunch", .body = "yes",
	    .in_reply_to = "<m2@example.net>",
	    .references = "<m0@x> <m1@example.org>", .date = 1057049557 };
	char *mid;
	const char *err;
	char *m = email_compose(&d, &mid, &err);
	CHECK(m != NULL);
	CHECK(mid != NULL && strstr(mid, "@example.org>") != NULL);
	CHECK(strstr(m, "In-Reply-To: <m2@example.net>\r\n") != NULL);
	CHECK(strstr(m, "References: <m0@x>\r\n <m1@example.org>\r\n "
	    "<m2@example.net>\r\n") != NULL);
	CHECK(strstr(m, "Date: Tue, 1 Jul 2003 08:52:37 +0000\r\n") != NULL);
	CHECK(strstr(m, "From: =?UTF-8?B?TcOp?= <me@example.org>\r\n") !=
	    NULL);
	/* Round trip: the parser sees the same thread as the original. */
	struct email_limits lim = { 0 };
	struct email_text t;
	email_mime_parse(m, strlen(m), &lim, &t);
	CHECK_STR(t.from_addr, "me@example.org");
	CHECK_STR(t.from_name, "M\xc3\xa9");
	CHECK_STR(t.subject, "Re: Lunch");
	CHECK_STR(t.body, "yes");
	char *th = email_mime_thread_id("<m0@x>", NULL, NULL);
	CHECK_STR(t.thread, th);
	CHECK_STR(t.message_id, mid);
	free(th);
	email_text_clear(&t);
	free(mid);
	free(m);
}

int
main(void)
{
	RUN(injection);
	RUN(encoding);
	RUN(reply_subject);
	RUN(body_encoding);
	RUN(threading);
	return TAP_DONE();
}
