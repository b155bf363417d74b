/*
 * Real-world mails as the chat shows them: every mail of two corpora
 * that ship in Debian (Python's email test messages, package
 * libpython3.11-testsuite, and the bounce samples of python3-flufl.bounce)
 * goes through email_mime_parse(), and the text is checked against what
 * a mail client shows for that mail: phrases that must be there (the
 * first paragraph, every inline part, forwarded and digest mails with
 * their headers, the recipient and status of a bounce), and phrases that
 * must not (MIME syntax, "(no text)", empty parts as attachments).
 *
 * Every mail of both corpora also gets the checks that hold for all
 * mail: valid UTF-8, and none of the mail's own boundary lines in the
 * text.  A missing corpus is a failure, not a skip: install the
 * packages (contrib/install-deps.sh --test) or point
 * CAUSEWAY_CORPUS_PYEMAIL / CAUSEWAY_CORPUS_BOUNCE at copies.
 */
#include "autoconf.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <stdarg.h>

#include "email_mime.h"
#include "../utf8_check.h"

#define PYEMAIL "/usr/lib/python3.11/test/test_email/data"
#define BOUNCE "/usr/lib/python3/dist-packages/flufl/bounce/tests/data"

struct expect {
	int bounce;             /* 0: Python's corpus, 1: the bounces */
	const char *file;
	const char *must[6];
	const char *must_not[4];
};

static const struct expect table[] = {
	/* A digest in mime parts: masthead, topics, each message. */
	{ 0, "msg_02.txt", { "Send Ppp mailing list submissions",
	    "Today's Topics:", "-------- Message --------\nFrom: barry@"
	    "digicool.com (Barry A. Warsaw)", "Subject: [Ppp] testing #1",
	    "Subject: [Ppp] testing #5", NULL },
	    { "Content-Type:", "--192.168", "(no text)", NULL } },
	/* Two inline text parts: both, in order. */
	{ 0, "msg_04.txt", { "a simple kind of mirror\nto reflect upon our "
	    "own\n\na simple kind of mirror", NULL },
	    { "Attachments:", "unnamed", NULL } },
	/* A report with a text part, a part without headers, the
	 * returned mail. */
	{ 0, "msg_05.txt", { "Yadda yadda yadda", "-------- The returned "
	    "mail --------\nFrom: nobody@python.org", NULL },
	    { "--D1690A7AC1", "unnamed", NULL } },
	/* A mail that is only a forwarded mail. */
	{ 0, "msg_06.txt", { "-------- Forwarded message --------\nFrom: "
	    "barry@python.org (Barry A. Warsaw)\nDate: Thu, 13 Sep 2001 "
	    "17:28:28 -0400\nSubject: testing", NULL },
	    { "(no text)", "Attachments:", NULL } },
	{ 0, "msg_07.txt", { "Hi there,\n\nThis is the dingus fish.",
	    "- dingusfish.gif (image/gif, 3.4 KB)", NULL }, { NULL } },
	/* Only empty parts: nothing to list. */
	{ 0, "msg_08.txt", { "(no text)", NULL },
	    { "Attachments:", "0 bytes", NULL } },
	/* Every encoding, every part shown. */
	{ 0, "msg_10.txt", { "This is a 7bit encoded message.",
	    "\xc2\xa1This is a Quoted Printable encoded message!",
	    "This is a Base64 encoded message.",
	    "This has no Content-Transfer-Encoding: header.", NULL },
	    { "unnamed", NULL } },
	{ 0, "msg_11.txt", { "-------- Forwarded message --------\n"
	    "Subject: An enclosed message\n\nHere is the body of the "
	    "message.", NULL }, { "Attachments:", NULL } },
	{ 0, "msg_13.txt", { "A text/plain part", "This is the dingus fish.",
	    "- dingusfish.gif (image/gif", NULL },
	    { "--OUTER", "unnamed", NULL } },
	/* multipart with its boundary parameter on no line. */
	{ 0, "msg_15.txt", { "Some removed test.", "Some removed text.",
	    NULL }, { "Content-Type", "--", "(no text)", NULL } },
	/* A delivery report: text, a line per recipient, returned mail. */
	{ 0, "msg_16.txt", { "Your message cannot be delivered to the "
	    "following recipients:", "Delivery report:\n- jangel1@cougar."
	    "noc.ucla.edu: failed, status 5.0.0", "-------- The returned "
	    "mail --------", "Subject: [scr] yeah for Ians!!", NULL },
	    { "Reporting-MTA", "unnamed", NULL } },
	{ 0, "msg_21.txt", { "One\n\nTwo", NULL }, { "unnamed", NULL } },
	{ 0, "msg_25.txt", { "The original message was received at",
	    "- scoffman@wellpartner.com: failed, status 5.4.6",
	    "Subject: [LinuxUser] bulletin no. 45", NULL },
	    { "Final-Recipient", NULL } },
	/* Digests: message/rfc822 by default. */
	{ 0, "msg_28.txt", { "-------- Message --------\nFrom: cc@dd.org\n"
	    "Subject: ee\n\nmessage 1", "message 2", NULL },
	    { "(no text)", "Attachments:", NULL } },
	{ 0, "msg_30.txt", { "message 1", "message 2", NULL },
	    { "(no text)", "Attachments:", NULL } },
	{ 0, "msg_33.txt", { "part 1\n\npart 2", NULL }, { NULL } },
	{ 0, "msg_34.txt", { "This is a text plain part",
	    "-------- Message --------\nFrom: cperson@dom.ain",
	    "A submessage", NULL }, { "--XYZ", NULL } },
	/* Headers with no blank line after them. */
	{ 0, "msg_35.txt", { "counter to RFC 2822, there's no separating "
	    "newline here", NULL }, { "(no text)", NULL } },
	{ 0, "msg_37.txt", { "Blah\n\nBlah\n\nBlah", NULL },
	    { "--ABCDE", NULL } },
	/* Boundary lines inside a part's text (msg_38) and inner parts
	 * that reuse the outer boundary (msg_39): text, no MIME syntax. */
	{ 0, "msg_38.txt", { "Unlike the test test_nested-multiples",
	    "I have not yet ever seen", "It's never too late to have a "
	    "happy childhood.", NULL }, { "Content-ID", "Content-Type",
	    NULL } },
	{ 0, "msg_39.txt", { "It's never too late to have a happy "
	    "childhood.", NULL }, { "Content-ID", "Content-Type", NULL } },
	/* text/html that names a boundary its body uses. */
	{ 0, "msg_40.txt", { NULL }, { "961284236552522269",
	    "Content-Type", NULL } },
	/* multipart/alternative without a boundary parameter. */
	{ 0, "msg_41.txt", { "Blah blah blah", NULL },
	    { "(no text)", "multipart", NULL } },
	{ 0, "msg_42.txt", { "Stuff", "-------- Forwarded message --------"
	    "\nFrom: webmaster@python.org", NULL }, { "--BBB", NULL } },
	{ 0, "msg_43.txt", { "BANNED FILENAME ALERT", "Delivery report:",
	    "status 5.7.1", "and 15 more recipients", NULL },
	    { "unnamed", NULL } },
	{ 0, "msg_45.txt", { "This is the signed contents.",
	    "signature.asc (application/pgp-signature", NULL }, { NULL } },
	{ 0, "msg_46.txt", { "From: \"Dr. Sender\" <sender@example.net>",
	    "Testing email forwarding with Groupwise", NULL },
	    { "(no text)", NULL } },

	{ 1, "dsn_01.txt", { "This report relates to a message you sent",
	    "- userx@sims-ms-daemon: failed, status 5.0.0", NULL },
	    { "unnamed", "Content-Type", NULL } },
	{ 1, "dsn_05.txt", { "Your message has been delayed",
	    "- userx@example.cz: delayed, status 4.4.1", NULL },
	    { "--45817", NULL } },
	{ 1, "dsn_08.txt", { "This is the Postfix program",
	    "- userx@example.de: delayed, status 4.0.0", NULL },
	    { "--A216D2D16B", NULL } },
	/* sendmail's text part starts with a blank line (no headers):
	 * its first paragraph is text, not headers. */
	{ 1, "dsn_11.txt", { "The original message was received at Sat, 26 "
	    "Oct 2002", "The following addresses had permanent fatal "
	    "errors", "- <joem@example.com>: failed, status 5.1.1", NULL },
	    { "--WAA27079", NULL } },
	{ 1, "dsn_12.txt", { "The following addresses have delivery "
	    "notifications", "- userx@example.jp: failed", NULL },
	    { "--12006021214472475", NULL } },
	/* A report nested in multipart/mixed. */
	{ 1, "dsn_15.txt", { "Delivery to the following recipients failed.",
	    "- userx@example.com: failed, status 5.1.1", NULL },
	    { "unnamed (multipart/report", NULL } },
	{ 1, "dsn_17.txt", { "This is the mail system at host",
	    "- xxx@example.fi: delayed, status 4.3.0", NULL }, { NULL } },
	{ 1, "exim_01.txt", { "This message was created automatically by "
	    "mail delivery software.", "userx@its.example.nl", NULL },
	    { NULL } },
	{ 1, "groupwise_03.txt", { "Solicitudes de Reservas a:",
	    "Hotel Raquel (19).jpg (image/jpeg", NULL },
	    { "text/html", NULL } },
	/* A body in MIME parts under no Content-Type. */
	{ 1, "microsoft_02.txt", { "Your message\n\n  To:      K12",
	    "-------- Forwarded message --------", NULL },
	    { "_NextPart_", "Content-Type:", NULL } },
	{ 1, "postfix_01.txt", { "This is the Postfix program at host "
	    "dinsdale.python.org.", "-------- Forwarded message --------",
	    NULL }, { "--BDD021CF6B", NULL } },
	{ 1, "qmail_01.txt", { "Hi. This is the qmail-send program",
	    "<userx@example.de>:", NULL }, { NULL } },
	{ 1, "sendmail_01.txt", { "The original message was received at "
	    "Sat, 14 Oct 2000", "Too many hops 26", NULL },
	    { "(no text)", NULL } },
	{ 1, "simple_01.txt", { "The attached message had PERMANENT fatal "
	    "delivery errors!", "bbbsss@example.com", NULL },
	    { "PART-BREAK", NULL } },
	{ 1, "yahoo_01.txt", { "Unable to deliver message to the following "
	    "address(es).", "<userx@example.com>:", NULL }, { NULL } },
};

/* TAP, one line per check (tap.h counts functions, this counts
 * mails). */
static int tests, failures;

static void __attribute__((format(printf, 2, 3)))
ok(int good, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("%sok %d - ", good ? "" : "not ", ++tests);
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	if (!good)
		failures++;
}

static void __attribute__((format(printf, 1, 2)))
diag(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char buf[8192];
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	printf("# ");
	for (const char *c = buf; *c; c++) {
		putchar(*c);
		if (*c == '\n')
			printf("# ");
	}
	printf("\n");
}

static char *
slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	char *b = NULL;
	size_t cap = 0;
	*n = 0;
	for (;;) {
		if (*n + 65536 > cap) {
			cap = *n + 65536;
			b = realloc(b, cap + 1);
			if (b == NULL)
				abort();
		}
		size_t r = fread(b + *n, 1, 65536, f);
		*n += r;
		if (r == 0)
			break;
	}
	fclose(f);
	b[*n] = '\0';
	return b;
}

static char *
render(const char *path)
{
	size_t n;
	char *raw = slurp(path, &n);
	if (raw == NULL)
		return NULL;
	struct email_limits lim = { .text_max = 64 * 1024 };
	struct email_text t;
	email_mime_parse(raw, n, &lim, &t);
	char *body = strdup(t.body);
	email_text_clear(&t);
	free(raw);
	return body;
}

/* 1 when a delimiter line of the boundary named in the mail's own
 * Content-Type shows in the text. */
static int
own_boundary_shown(const char *raw, const char *body)
{
	const char *hend = strstr(raw, "\n\n");
	size_t hl = hend ? (size_t)(hend - raw) : strlen(raw);
	const char *ct = NULL;
	for (const char *l = raw; l < raw + hl; l = strchr(l, '\n') + 1) {
		if (strncasecmp(l, "content-type:", 13) == 0) {
			ct = l;
			break;
		}
		if (strchr(l, '\n') == NULL)
			break;
	}
	if (ct == NULL)
		return 0;
	/* The field with its continuation lines. */
	const char *e = ct;
	while ((e = strchr(e, '\n')) != NULL && (e[1] == ' ' || e[1] == '\t'))
		e++;
	size_t fl = e ? (size_t)(e - ct) : strlen(ct);
	const char *b = NULL;
	for (size_t i = 0; i + 9 <= fl; i++)
		if (strncasecmp(ct + i, "boundary=", 9) == 0) {
			b = ct + i + 9;
			break;
		}
	if (b == NULL)
		return 0;
	if (*b == '"')
		b++;
	size_t l = strcspn(b, "\";\r\n");
	if (l == 0 || l > 100)
		return 0;
	char line[112];
	snprintf(line, sizeof(line), "\n--%.*s", (int)l, b);
	return strstr(body, line) != NULL || strncmp(body, line + 1,
	    strlen(line + 1)) == 0;
}

/* Every mail of a corpus: valid UTF-8, its own boundary lines hidden
 * (except where it is a plain-text mail quoting MIME). */
static void
whole_corpus(const char *dir, const char *suffix, int min)
{
	DIR *d = opendir(dir);
	ok(d != NULL, "corpus %s is installed", dir);
	if (d == NULL)
		return;
	int files = 0, bad = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		size_t nl = strlen(de->d_name), sl = strlen(suffix);
		if (nl < sl || strcmp(de->d_name + nl - sl, suffix) != 0)
			continue;
		char path[1024];
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		size_t n;
		char *raw = slurp(path, &n);
		char *body = render(path);
		files++;
		if (raw == NULL || body == NULL || !valid_utf8(body) ||
		    own_boundary_shown(raw, body)) {
			bad++;
			diag("%s reads badly:\n%s", de->d_name, body ? body :
			    "(unreadable)");
		}
		free(raw);
		free(body);
	}
	closedir(d);
	ok(files >= min, "%d mails in %s (at least %d)", files, dir, min);
	ok(bad == 0, "%d of %d mails show MIME syntax or invalid text", bad,
	    files);
}

int
main(void)
{
	const char *py = getenv("CAUSEWAY_CORPUS_PYEMAIL");
	const char *bo = getenv("CAUSEWAY_CORPUS_BOUNCE");
	if (py == NULL)
		py = PYEMAIL;
	if (bo == NULL)
		bo = BOUNCE;
	whole_corpus(py, ".txt", 40);
	whole_corpus(bo, ".txt", 100);
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		const struct expect *e = &table[i];
		char path[1024];
		snprintf(path, sizeof(path), "%s/%s", e->bounce ? bo : py,
		    e->file);
		char *body = render(path);
		int good = body != NULL;
		for (int k = 0; good && e->must[k] != NULL; k++)
			if (strstr(body, e->must[k]) == NULL) {
				diag("%s: missing \"%s\"", e->file, e->must[k]);
				good = 0;
			}
		for (int k = 0; good && e->must_not[k] != NULL; k++)
			if (strstr(body, e->must_not[k]) != NULL) {
				diag("%s: shows \"%s\"", e->file,
				    e->must_not[k]);
				good = 0;
			}
		if (!good)
			diag("%s as shown:\n%s", e->file, body ? body :
			    "(unreadable)");
		ok(good, "%s reads as a mail client shows it", e->file);
		free(body);
	}
	printf("1..%d\n", tests);
	return failures ? 1 : 0;
}
