/*
 * Unit tests for mail as chat text: RFC 2047 headers, quoted-printable
 * and base64 (good and broken), charsets (declared, undeclared,
 * unknown), HTML to text, From parsing (no address, several, groups),
 * dates, thread derivation, the MIME walk (alternatives, attachments,
 * 1,000 parts, nesting 100 deep, a 1 MB header line, a cut mail) and
 * the size cap with its note.  Every output is checked to be valid
 * UTF-8 without control characters.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "email_buf.h"
#include "email_mime.h"
#include "tap.h"
#include "../utf8_check.h"

static int
clean(const char *s)
{
	if (!valid_utf8(s))
		return 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if ((*p < 0x20 && *p != '\n' && *p != '\t') || *p == 0x7f)
			return 0;
	return 1;
}

static struct email_text
parse(const char *raw, size_t text_max)
{
	struct email_limits lim = { .text_max = text_max };
	struct email_text t;
	email_mime_parse(raw, strlen(raw), &lim, &t);
	return t;
}

static void
rfc2047(void)
{
	char *s = email_mime_header_text("=?ISO-8859-1?Q?Caf=E9_cr=E8me?=", 0);
	CHECK_STR(s, "Caf\xc3\xa9 cr\xc3\xa8me");
	free(s);
	/* Adjacent words join without the blank between them. */
	s = email_mime_header_text("=?UTF-8?B?SGVs?= =?UTF-8?B?bG8=?= world",
	    0);
	CHECK_STR(s, "Hello world");
	free(s);
	/* A character split across two words. */
	s = email_mime_header_text("=?UTF-8?B?w6k=?=", 0);
	CHECK_STR(s, "\xc3\xa9");
	free(s);
	s = email_mime_header_text("=?UTF-8?Q?=C3?= =?UTF-8?Q?=A9t=C3=A9?=",
	    0);
	CHECK_STR(s, "\xc3\xa9t\xc3\xa9");
	free(s);
	/* Unknown charset: the bytes, read as Windows-1252. */
	s = email_mime_header_text("=?x-nonsense?Q?a=E9?=", 0);
	CHECK_STR(s, "a\xc3\xa9");
	free(s);
	/* Malformed words stay as text. */
	s = email_mime_header_text("=?utf-8?X?abc?= =?broken", 0);
	CHECK_STR(s, "=?utf-8?X?abc?= =?broken");
	free(s);
	/* Encoded CR LF never survives into a one-line header. */
	s = email_mime_header_text("=?UTF-8?Q?a=0D=0ABcc:_x?=", 0);
	CHECK(strchr(s, '\n') == NULL && strchr(s, '\r') == NULL);
	CHECK(clean(s));
	free(s);
	/* 8-bit garbage in a raw header. */
	s = email_mime_header_text("caf\xe9 \xff\xfe\x01 ok", 0);
	CHECK(clean(s));
	CHECK(strstr(s, "ok") != NULL);
	free(s);
	/* Cut to a limit on a character boundary. */
	s = email_mime_header_text("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9",
	    6);
	CHECK(strlen(s) <= 6 && clean(s));
	free(s);
}

static void
qp_base64(void)
{
	size_t n;
	char *s = email_mime_qp_decode("a=3Db=\r\nc=XZd=", 14, 0, &n);
	CHECK_STR(s, "a=bc=XZd");
	free(s);
	s = email_mime_qp_decode("x=4", 3, 0, &n);
	CHECK_STR(s, "x=4");
	free(s);
	s = email_mime_qp_decode("a_b", 3, 1, &n);
	CHECK_STR(s, "a b");
	free(s);
	s = email_mime_b64_decode("aGVsbG8gd29y\r\nbGQ=", 18, &n);
	CHECK_STR(s, "hello world");
	CHECK(n == 11);
	free(s);
	/* Broken base64: garbage skipped, no overrun. */
	s = email_mime_b64_decode("aGV*s!bG8", 9, &n);
	CHECK_STR(s, "hello");
	free(s);
	s = email_mime_b64_decode("a", 1, &n);
	CHECK(n == 0);
	free(s);
}

static void
charsets(void)
{
	int known;
	char *s = email_mime_to_utf8("caf\xe9", 4, "iso-8859-1", &known);
	CHECK_STR(s, "caf\xc3\xa9");
	CHECK(known == 1);
	free(s);
	s = email_mime_to_utf8("\x80", 1, "windows-1252", &known);
	CHECK_STR(s, "\xe2\x82\xac");
	free(s);
	s = email_mime_to_utf8("caf\xe9", 4, "x-unknown-charset", &known);
	CHECK_STR(s, "caf\xc3\xa9");
	CHECK(known == 0);
	free(s);
	s = email_mime_to_utf8("caf\xc3\xa9", 5, NULL, &known);
	CHECK_STR(s, "caf\xc3\xa9");
	free(s);
	/* A charset name iconv must never see. */
	s = email_mime_to_utf8("abc", 3, "../../etc/passwd", &known);
	CHECK_STR(s, "abc");
	CHECK(known == 0);
	free(s);
	/* Declared UTF-8 but broken: U+FFFD, controls gone, CRLF -> LF. */
	s = email_mime_to_utf8("a\xff\x01" "b\r\nc", 7, "utf-8", NULL);
	CHECK_STR(s, "a\xef\xbf\xbd" "b\nc");
	free(s);
	/* An overlong and a surrogate. */
	s = email_mime_to_utf8("\xc0\xaf\xed\xa0\x80", 5, "UTF-8", NULL);
	CHECK(clean(s) && strchr(s, '/') == NULL);
	free(s);
	/* Truncated multibyte in a stateful charset. */
	s = email_mime_to_utf8("\x1b$B", 3, "ISO-2022-JP", NULL);
	CHECK(clean(s));
	free(s);
}

static void
html(void)
{
	const char *h = "<html><head><title>T</title><style>p{}</style>"
	    "</head><body><p>Hello&nbsp;<b>world</b> &amp; all</p>"
	    "<script>alert(1)</script><ul><li>one</li><li>two</li></ul>"
	    "line<br>break <a href=\"https://example.org/x\">link</a> "
	    "&#233;&#x20AC;&bogus; &#0; <!-- hidden --><img alt=\"pic\">"
	    "</body></html>";
	char *s = email_mime_html_to_text(h, strlen(h));
	CHECK(strstr(s, "Hello world & all") != NULL);
	CHECK(strstr(s, "alert") == NULL && strstr(s, "p{}") == NULL);
	CHECK(strstr(s, "- one\n- two") != NULL);
	CHECK(strstr(s, "line\nbreak") != NULL);
	CHECK(strstr(s, "link <https://example.org/x>") != NULL);
	CHECK(strstr(s, "\xc3\xa9\xe2\x82\xac&bogus;") != NULL);
	CHECK(strstr(s, "hidden") == NULL);
	CHECK(strstr(s, "[pic]") != NULL);
	CHECK(strstr(s, "T") == NULL || strstr(s, "<title>") == NULL);
	CHECK(clean(s));
	free(s);
	/* Unterminated everything. */
	s = email_mime_html_to_text("<p>a<script>b", 13);
	CHECK_STR(s, "a");
	free(s);
	s = email_mime_html_to_text("<a href='x", 10);
	CHECK(clean(s));
	free(s);
}

static void
from_header(void)
{
	char *a, *n;
	email_mime_parse_from("\"Doe, Alice\" <Alice@Example.NET>", &a, &n);
	CHECK_STR(a, "alice@example.net");
	CHECK_STR(n, "Doe, Alice");
	free(a);
	free(n);
	email_mime_parse_from("bob@example.net (Bob B)", &a, &n);
	CHECK_STR(a, "bob@example.net");
	CHECK_STR(n, "Bob B");
	free(a);
	free(n);
	email_mime_parse_from("=?UTF-8?Q?J=C3=B6rg?= <j@x.test>", &a, &n);
	CHECK_STR(a, "j@x.test");
	CHECK_STR(n, "J\xc3\xb6rg");
	free(a);
	free(n);
	/* No address at all. */
	email_mime_parse_from("Just A Name", &a, &n);
	CHECK(a == NULL);
	free(n);
	email_mime_parse_from("undisclosed-recipients:;", &a, &n);
	CHECK(a == NULL);
	free(n);
	/* Several: the first usable one. */
	email_mime_parse_from("Nobody <not an address>, c@d.test, e@f.test",
	    &a, &n);
	CHECK_STR(a, "c@d.test");
	/* The name of the mailbox with the address, not the one before
	 * (which was leaked, found by fuzz_email_mime). */
	CHECK(n == NULL);
	free(a);
	free(n);
	email_mime_parse_from("team: x@y.test, z@w.test;", &a, &n);
	CHECK_STR(a, "x@y.test");
	free(a);
	free(n);
	/* CR LF in a name cannot survive. */
	email_mime_parse_from("\"a\r\nBcc: v@x\" <a@b.test>", &a, &n);
	CHECK_STR(a, "a@b.test");
	CHECK(n != NULL && strchr(n, '\n') == NULL && strchr(n, '\r') == NULL);
	free(a);
	free(n);
	CHECK(email_mime_addr_valid("a.b+c@ex-ample.org"));
	CHECK(!email_mime_addr_valid("a..b@x.org"));
	CHECK(!email_mime_addr_valid("a@-x.org"));
	CHECK(!email_mime_addr_valid("a b@x.org"));
	CHECK(!email_mime_addr_valid("a@x.org\r\nBcc: y@z"));
	CHECK(!email_mime_addr_valid("@x.org"));
	CHECK(!email_mime_addr_valid("a@"));
}

static void
dates(void)
{
	CHECK(email_mime_parse_date("Tue, 1 Jul 2003 10:52:37 +0200") ==
	    1057049557);
	CHECK(email_mime_parse_date("1 Jul 2003 08:52:37 GMT") == 1057049557);
	CHECK(email_mime_parse_date("Tue, 1 Jul 2003 03:52:37 -0500 (EST)") ==
	    1057049557);
	CHECK(email_mime_parse_date("garbage") == 0);
	CHECK(email_mime_parse_date("Tue, 99 Foo 2003 10:52:37 +0200") == 0);
}

static void
threads(void)
{
	char *a = email_mime_thread_id("<m1@x>", NULL, NULL);
	char *b = email_mime_thread_id("<m2@y>", "<m1@x>", NULL);
	char *c = email_mime_thread_id("<m3@z>", "<m2@y>", "<m1@x> <m2@y>");
	char *d = email_mime_thread_id("<other@x>", NULL, NULL);
	CHECK(a != NULL && strlen(a) == 32);
	CHECK_STR(b, a);
	CHECK_STR(c, a);
	CHECK(strcmp(d, a) != 0);
	CHECK(email_mime_thread_id(NULL, NULL, "no ids here") == NULL);
	free(a);
	free(b);
	free(c);
	free(d);
	char *r = email_mime_msgids("<a@b> junk <c d@e> <f@g>\r\n <h@i>", 2);
	CHECK_STR(r, "<f@g> <h@i>");
	free(r);
}

static void
simple_mail(void)
{
	struct email_text t = parse("From: Alice <alice@example.net>\r\n"
	    "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
	    "Message-ID: <m2@example.net>\r\n"
	    "In-Reply-To: <m1@example.org>\r\n"
	    "Date: Tue, 1 Jul 2003 10:52:37 +0200\r\n"
	    "\r\nHello\r\nthere\r\n", 0);
	CHECK_STR(t.from_addr, "alice@example.net");
	CHECK_STR(t.from_name, "Alice");
	CHECK_STR(t.subject, "Gr\xc3\xbc\xc3\x9f" "e");
	CHECK_STR(t.message_id, "<m2@example.net>");
	CHECK_STR(t.references, "<m1@example.org>");
	CHECK(t.date == 1057049557);
	CHECK_STR(t.body, "Hello\nthere");
	char *th = email_mime_thread_id("<m1@example.org>", NULL, NULL);
	CHECK_STR(t.thread, th);
	free(th);
	email_text_clear(&t);
}

static void
mime_mails(void)
{
	/* Alternative: text/plain wins, the HTML version is no
	 * attachment; base64 UTF-8. */
	struct email_text t = parse("From: a@b.test\r\n"
	    "Content-Type: multipart/alternative; boundary=\"XX\"\r\n\r\n"
	    "preamble\r\n--XX\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n"
	    "--XX\r\nContent-Type: text/plain; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\nw6l0w6k=\r\n--XX--\r\n"
	    "epilogue\r\n", 0);
	CHECK_STR(t.body, "\xc3\xa9t\xc3\xa9");
	email_text_clear(&t);
	/* HTML only, ISO-8859-1 QP. */
	t = parse("From: a@b.test\r\nContent-Type: text/html; "
	    "charset=iso-8859-1\r\nContent-Transfer-Encoding: "
	    "quoted-printable\r\n\r\n<p>caf=E9</p><p>n=\r\next</p>\r\n", 0);
	CHECK_STR(t.body, "caf\xc3\xa9\n\nnext");
	email_text_clear(&t);
	/* Attachments listed by name, type and size. */
	t = parse("From: a@b.test\r\n"
	    "Content-Type: multipart/mixed; boundary=b1\r\n\r\n"
	    "--b1\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
	    "--b1\r\nContent-Type: application/pdf; name=\"r.pdf\"\r\n"
	    "Content-Disposition: attachment; filename=\"report.pdf\"\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\nAAAAAAAA\r\n"
	    "--b1\r\nContent-Type: image/png\r\nContent-Disposition: "
	    "attachment; filename*=utf-8''%C3%A9t%C3%A9.png\r\n\r\nxyz\r\n"
	    "--b1--\r\n", 0);
	CHECK(strstr(t.body, "see attached\n\nAttachments:\n") != NULL);
	CHECK(strstr(t.body, "- report.pdf (application/pdf, 6 bytes)") !=
	    NULL);
	CHECK(strstr(t.body, "- \xc3\xa9t\xc3\xa9.png (image/png, 3 bytes)") !=
	    NULL);
	email_text_clear(&t);
	/* No Content-Type, 8-bit Latin-1 body, no From. */
	t = parse("Subject: x\r\n\r\ncaf\xe9\r\n", 0);
	CHECK(t.from_addr == NULL);
	CHECK_STR(t.body, "caf\xc3\xa9");
	email_text_clear(&t);
	/* Boundary missing and no delimiter: the body reads as text. */
	t = parse("Content-Type: multipart/mixed\r\n\r\nbody\r\n", 0);
	CHECK_STR(t.body, "body");
	email_text_clear(&t);
	/* Empty mail. */
	t = parse("", 0);
	CHECK_STR(t.body, "(no text)");
	email_text_clear(&t);
}

static void
hostile_structure(void)
{
	/* 1,000 parts. */
	struct ebuf b = { 0 };
	ebuf_str(&b, "Content-Type: multipart/mixed; boundary=q\r\n\r\n");
	for (int i = 0; i < 1000; i++)
		ebuf_fmt(&b, "--q\r\nContent-Type: application/x-%d\r\n\r\n"
		    "data\r\n", i);
	ebuf_str(&b, "--q--\r\n");
	struct email_text t = parse(b.p, 0);
	CHECK(strstr(t.body, "more MIME parts were not read") != NULL);
	CHECK(clean(t.body));
	email_text_clear(&t);
	free(b.p);
	/* Nested 100 deep, the text at the bottom. */
	b = (struct ebuf){ 0 };
	for (int i = 0; i < 100; i++)
		ebuf_fmt(&b, "Content-Type: multipart/mixed; boundary=n%d\r\n"
		    "\r\n--n%d\r\n", i, i);
	ebuf_str(&b, "Content-Type: text/plain\r\n\r\ndeep\r\n");
	t = parse(b.p, 0);
	CHECK(strstr(t.body, "more MIME parts were not read") != NULL);
	CHECK(strncmp(t.body, "deep", 4) != 0);
	email_text_clear(&t);
	free(b.p);
	/* A header line of 1 MB. */
	b = (struct ebuf){ 0 };
	ebuf_str(&b, "Subject: ");
	for (int i = 0; i < 1024 * 1024; i++)
		ebuf_ch(&b, (char)('a' + i % 26));
	ebuf_str(&b, "\r\nFrom: x@y.test\r\n\r\nbody\r\n");
	t = parse(b.p, 0);
	CHECK(t.subject != NULL && strlen(t.subject) <= EMAIL_SUBJECT_MAX);
	CHECK_STR(t.from_addr, "x@y.test");
	CHECK_STR(t.body, "body");
	email_text_clear(&t);
	free(b.p);
	/* Headers without an end. */
	t = parse("From: x@y.test\r\nSubject: never ends", 0);
	CHECK_STR(t.subject, "never ends");
	CHECK_STR(t.body, "(no text)");
	email_text_clear(&t);
}

static void
size_cap(void)
{
	struct ebuf b = { 0 };
	ebuf_str(&b, "From: x@y.test\r\n\r\n");
	for (int i = 0; i < 10000; i++)
		ebuf_str(&b, "0123456789");
	struct email_limits lim = { .text_max = 1000, .total_size =
	    50 * 1024 * 1024 };
	struct email_text t;
	email_mime_parse(b.p, b.len, &lim, &t);
	CHECK(strncmp(t.body, "0123456789", 10) == 0);
	CHECK(strstr(t.body, "[cut: the first 1000 bytes of at least 97.7 KB "
	    "of text are shown]") != NULL);
	CHECK(strstr(t.body, "[the mail is 50.0 MB; only its first 97.7 KB "
	    "were read]") != NULL);
	CHECK(strlen(t.body) < 1200);
	email_text_clear(&t);
	free(b.p);
	/* A cut inside a multi-byte character stays valid UTF-8. */
	t = parse("\r\n\xc3\xa9\xc3\xa9\xc3\xa9", 3);
	CHECK(clean(t.body));
	CHECK(strncmp(t.body, "\xc3\xa9\n", 3) == 0);
	email_text_clear(&t);
}

/* What a mail client shows, for each way real mail read badly. */
static void
as_a_client_shows(void)
{
	/* A bounce whose text part starts with a blank line (no headers):
	 * the first paragraph is text; a line per recipient; the returned
	 * mail's headers. */
	struct email_text t = parse("From: MAILER-DAEMON@mx.test\r\n"
	    "Content-Type: multipart/report; report-type=delivery-status;\r\n"
	    "\tboundary=\"B/mx.test\"\r\n\r\n"
	    "This is a MIME-encapsulated message\r\n\r\n--B/mx.test\r\n\r\n"
	    "The original message was received at noon.\r\n"
	    "from [192.0.2.1]\r\n\r\nSecond paragraph.\r\n\r\n"
	    "--B/mx.test\r\nContent-Type: message/delivery-status\r\n\r\n"
	    "Reporting-MTA: dns; mx.test\r\n\r\n"
	    "Final-Recipient: RFC822; joe@example.org\r\nAction: failed\r\n"
	    "Status: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1\r\n"
	    "    User unknown\r\n\r\n--B/mx.test\r\n"
	    "Content-Type: text/rfc822-headers\r\n\r\n"
	    "From: me@example.net\r\nTo: joe@example.org\r\n"
	    "Subject: hello\r\n\r\n--B/mx.test--\r\n", 0);
	CHECK_STR(t.body, "The original message was received at noon.\n"
	    "from [192.0.2.1]\n\nSecond paragraph.\n\nDelivery report:\n"
	    "- joe@example.org: failed, status 5.1.1: smtp; 550 5.1.1 User "
	    "unknown\n\n-------- The returned mail --------\n"
	    "From: me@example.net\nSubject: hello\nTo: joe@example.org");
	email_text_clear(&t);
	/* The same report nested in multipart/mixed. */
	t = parse("Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\n"
	    "Content-Type: multipart/report; boundary=r\r\n\r\n--r\r\n"
	    "Content-Type: text/plain\r\n\r\nCould not deliver.\r\n--r\r\n"
	    "Content-Type: message/delivery-status\r\n\r\n"
	    "Final-Recipient: rfc822;a@b.test\r\nAction: delayed\r\n"
	    "Status: 4.4.1\r\n--r--\r\n--o--\r\n", 0);
	CHECK_STR(t.body, "Could not deliver.\n\nDelivery report:\n"
	    "- a@b.test: delayed, status 4.4.1");
	email_text_clear(&t);
	/* Several inline text parts: all of them, in order. */
	t = parse("Content-Type: multipart/mixed; boundary=m\r\n\r\n--m\r\n"
	    "Content-Type: text/plain\r\n\r\none\r\n--m\r\n\r\ntwo\r\n--m\r\n"
	    "Content-Type: text/html\r\n\r\n<p>three</p>\r\n--m--\r\n", 0);
	CHECK_STR(t.body, "one\n\ntwo\n\nthree");
	email_text_clear(&t);
	/* A forwarded mail: inline under its From, Date, Subject. */
	t = parse("Content-Type: multipart/mixed; boundary=f\r\n\r\n--f\r\n"
	    "Content-Type: text/plain\r\n\r\nsee below\r\n--f\r\n"
	    "Content-Type: message/rfc822\r\n\r\n"
	    "From: =?utf-8?q?Ren=C3=A9?= <rene@example.org>\r\n"
	    "Date: Mon, 1 Feb 2010 12:18:40 +0100\r\nSubject: plans\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\nw6l0w6k=\r\n--f--\r\n",
	    0);
	CHECK_STR(t.body, "see below\n\n-------- Forwarded message --------\n"
	    "From: Ren\xc3\xa9 <rene@example.org>\n"
	    "Date: Mon, 1 Feb 2010 12:18:40 +0100\nSubject: plans\n\n"
	    "\xc3\xa9t\xc3\xa9");
	email_text_clear(&t);
	/* A digest: its parts are mails by default. */
	t = parse("Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n"
	    "\r\nFrom: a@b.test\r\nSubject: s1\r\n\r\nbody 1\r\n--d\r\n\r\n"
	    "From: c@d.test\r\nSubject: s2\r\n\r\nbody 2\r\n--d--\r\n", 0);
	CHECK_STR(t.body, "-------- Message --------\nFrom: a@b.test\n"
	    "Subject: s1\n\nbody 1\n\n-------- Message --------\n"
	    "From: c@d.test\nSubject: s2\n\nbody 2");
	email_text_clear(&t);
	/* Empty alternatives are no attachments. */
	t = parse("Content-Type: multipart/alternative; boundary=a\r\n\r\n"
	    "--a\r\nContent-Type: text/plain\r\n\r\n\r\n--a\r\n"
	    "Content-Type: text/html\r\n\r\n\r\n--a--\r\n", 0);
	CHECK_STR(t.body, "(no text)");
	email_text_clear(&t);
	t = parse("Content-Type: multipart/alternative; boundary=a\r\n\r\n"
	    "--a\r\nContent-Type: text/plain\r\n\r\n \r\n--a\r\n"
	    "Content-Type: text/html\r\n\r\n<p>rich</p>\r\n--a--\r\n", 0);
	CHECK_STR(t.body, "rich");
	email_text_clear(&t);
	/* No boundary parameter: the one the body uses. */
	t = parse("Content-Type: multipart/alternative;\r\n\r\n--zz\r\n"
	    "Content-Type: text/plain\r\n\r\nhi\r\n--zz--\r\n", 0);
	CHECK_STR(t.body, "hi");
	email_text_clear(&t);
	/* A boundary the body never uses: no MIME syntax in the text. */
	t = parse("Content-Type: multipart/mixed; boundary=\"a\"\r\n\r\n"
	    "--b\r\nContent-Type: text/plain\r\n\r\nthe text\r\n--b--\r\n", 0);
	CHECK_STR(t.body, "the text");
	email_text_clear(&t);
	/* A text part that names a boundary its body uses. */
	t = parse("Content-Type: text/html; boundary=\"--x\"\r\n\r\n----x\r\n"
	    "Content-Type: text/html\r\n\r\n<b>bold</b>\r\n----x--\r\n", 0);
	CHECK_STR(t.body, "bold");
	email_text_clear(&t);
	/* No Content-Type over a body in parts (a gateway dropped it). */
	t = parse("Subject: x\r\n\r\nThis is a MIME message.\r\n\r\n--q\r\n"
	    "Content-Type: text/plain\r\n\r\nYour message\r\n--q\r\n"
	    "Content-Type: application/pdf; name=a.pdf\r\n\r\n%PDF\r\n"
	    "--q--\r\n", 0);
	CHECK_STR(t.body, "This is a MIME message.\n\nYour message\n\n"
	    "Attachments:\n- a.pdf (application/pdf, 4 bytes)");
	email_text_clear(&t);
	/* Headers with no blank line after them. */
	t = parse("From: a@b.test\r\nSubject: s\r\nno blank line here\r\n", 0);
	CHECK_STR(t.subject, "s");
	CHECK_STR(t.body, "no blank line here");
	email_text_clear(&t);
	/* A named text attachment stays an attachment. */
	t = parse("Content-Type: multipart/mixed; boundary=m\r\n\r\n--m\r\n"
	    "\r\nhello\r\n--m\r\nContent-Type: text/csv; name=t.csv\r\n\r\n"
	    "a,b\r\n--m\r\nContent-Type: text/plain\r\n"
	    "Content-Disposition: attachment; filename=n.txt\r\n\r\nx\r\n"
	    "--m--\r\n", 0);
	CHECK_STR(t.body, "hello\n\nAttachments:\n- t.csv (text/csv, 3 bytes)"
	    "\n- n.txt (text/plain, 1 bytes)");
	email_text_clear(&t);
}

/* A report of many recipients and long diagnostics stays short;
 * forwarded mails nested deep end in the skip note. */
static void
hostile_reports(void)
{
	struct ebuf b = { 0 };
	ebuf_str(&b, "Content-Type: multipart/report; boundary=r\r\n\r\n"
	    "--r\r\nContent-Type: message/delivery-status\r\n\r\n"
	    "Reporting-MTA: dns; x\r\n");
	for (int i = 0; i < 1000; i++) {
		ebuf_fmt(&b, "\r\nFinal-Recipient: rfc822; u%d@x.test\r\n"
		    "Action: failed\r\nStatus: 5.0.0\r\nDiagnostic-Code: ", i);
		for (int k = 0; k < 100; k++)
			ebuf_str(&b, "long words ");
		ebuf_str(&b, "\r\n");
	}
	ebuf_str(&b, "--r--\r\n");
	struct email_text t = parse(b.p, 0);
	CHECK(strstr(t.body, "- u9@x.test: failed") != NULL);
	CHECK(strstr(t.body, "u10@x.test") == NULL);
	CHECK(strstr(t.body, "- and 990 more recipients") != NULL);
	CHECK(strlen(t.body) < 10 * 400 + 200);
	CHECK(clean(t.body));
	email_text_clear(&t);
	free(b.p);
	/* 100 forwarded mails, each inside the one before. */
	b = (struct ebuf){ 0 };
	for (int i = 0; i < 100; i++)
		ebuf_fmt(&b, "Subject: level %d\r\n"
		    "Content-Type: message/rfc822\r\n\r\n", i);
	ebuf_str(&b, "Subject: bottom\r\n\r\ndeep\r\n");
	t = parse(b.p, 0);
	CHECK(strstr(t.body, "more MIME parts were not read") != NULL);
	CHECK(strstr(t.body, "Subject: level 33") != NULL);
	CHECK(strstr(t.body, "bottom") == NULL);
	CHECK(clean(t.body));
	email_text_clear(&t);
	free(b.p);
	/* 100,000 lines that each look like a different boundary over a
	 * Content- field: a few are tried, not every one against the
	 * rest (which would take minutes). */
	b = (struct ebuf){ 0 };
	ebuf_str(&b, "Content-Type: multipart/mixed\r\n\r\n");
	for (int i = 0; i < 100000; i++)
		ebuf_fmt(&b, "--b%d\r\nContent-X: y\r\n", i);
	clock_t c0 = clock();
	t = parse(b.p, 0);
	CHECK((double)(clock() - c0) / CLOCKS_PER_SEC < 5.0);
	CHECK(clean(t.body));
	email_text_clear(&t);
	free(b.p);
	/* A quoted reply is no boundary: the text stays whole. */
	t = parse("Subject: re\r\n\r\nI agree.\r\n\r\n"
	    "-----Original Message-----\r\nFrom: Bob\r\nSent: Monday\r\n"
	    "\r\nShall we?\r\n", 0);
	CHECK_STR(t.body, "I agree.\n\n-----Original Message-----\n"
	    "From: Bob\nSent: Monday\n\nShall we?");
	email_text_clear(&t);
	/* A forwarded mail in base64. */
	t = parse("Content-Type: message/rfc822\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\n"
	    "U3ViamVjdDogaW5uZXIKCmJvZHkK\r\n", 0);
	CHECK_STR(t.body, "-------- Forwarded message --------\n"
	    "Subject: inner\n\nbody");
	email_text_clear(&t);
}

int
main(void)
{
	RUN(rfc2047);
	RUN(qp_base64);
	RUN(charsets);
	RUN(html);
	RUN(from_header);
	RUN(dates);
	RUN(threads);
	RUN(simple_mail);
	RUN(mime_mails);
	RUN(hostile_structure);
	RUN(size_cap);
	RUN(as_a_client_shows);
	RUN(hostile_reports);
	return TAP_DONE();
}
