/*
 * libFuzzer harness for smstools3 spool files.
 *
 * The input is a spool file as smsd (or anyone who can write into the
 * spool) leaves it.  It goes through every function of smstools_file.h,
 * and each answer is checked against a model written here apart from
 * the code under test:
 *   - the file splits into headers and body exactly as a small reference
 *     splitter says (first empty line, "Name: value" lines, no control
 *     characters, limits), names and values are clean, the body is the
 *     tail of the input, smstools_file_header finds the first of a name;
 *   - a status report's id and status are what the lines say, its text
 *     is short and printable;
 *   - Message_id lists (every header value and the input itself) agree
 *     with a token model;
 *   - dates (the "Sent:" shape) are accepted only in the exact shape and
 *     for a time that exists (TZ is UTC here), and read back the same;
 *   - ISO-8859-15 gives valid UTF-8 of the exact length, and decodes
 *     back to the input through a table kept here;
 *   - To: values, file prefixes and refs from names keep their shapes.
 * Inputs are copied to buffers of their exact size, so ASan sees any
 * read past the end.  Anything wrong aborts.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "smstools_file.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void die(const char *, const char *) __attribute__((noreturn));

static void
die(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_smstools: %s: %.200s\n", what,
	    detail != NULL ? detail : "(null)");
	abort();
}

static int
is_name_char(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	    (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
}

/* ---- headers and body ---- */

struct ref_hdr {
	const char *name, *value;       /* into the input */
	size_t nlen, vlen;
};

/*
 * The reference splitter: lines end at LF; a line that is empty, or
 * only a CR, ends the headers (a first line that is only CR is not
 * counted as such: it is simply a bad header line).  Each header line
 * (its one final CR removed) is NAME ':' blanks VALUE with NAME 1..32
 * name characters; no byte of the header lines below 0x20 but TAB, nor
 * 0x7f; 1..SMSTOOLS_HEADERS_MAX lines.  0 and the headers and the body
 * offset, or -1.
 */
static int
ref_split(const char *d, size_t len, struct ref_hdr *h, size_t *nh,
    size_t *body)
{
	size_t at = 0, n = 0;

	for (;;) {
		const char *nl = memchr(d + at, '\n', len - at);
		size_t e, ll, k;

		if (nl == NULL)
			return -1;      /* no empty line */
		e = (size_t)(nl - d);
		ll = e - at;
		if (ll > 0 && d[e - 1] == '\r')
			ll--;
		if (ll == 0 && (e == at || at > 0)) {
			*body = e + 1;
			break;
		}
		for (k = 0; k < ll && is_name_char((unsigned char)d[at + k]);
		    k++)
			;
		if (k == 0 || k > SMSTOOLS_HEADER_NAME_MAX || k == ll ||
		    d[at + k] != ':')
			return -1;
		if (n == SMSTOOLS_HEADERS_MAX)
			return -1;
		h[n].name = d + at;
		h[n].nlen = k;
		k++;
		while (k < ll && (d[at + k] == ' ' || d[at + k] == '\t'))
			k++;
		h[n].value = d + at + k;
		h[n].vlen = ll - k;
		for (size_t i = 0; i < h[n].vlen; i++) {
			unsigned char ch = (unsigned char)h[n].value[i];
			if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
				return -1;
		}
		n++;
		at = e + 1;
	}
	if (n == 0)
		return -1;
	*nh = n;
	return 0;
}

static int
same(const char *s, const char *p, size_t n)
{
	return strlen(s) == n && memcmp(s, p, n) == 0;
}

static void
check_file(const char *data, size_t size, struct smstools_file *f, int *ok)
{
	static struct ref_hdr h[SMSTOOLS_HEADERS_MAX];
	size_t nh = 0, body = 0;
	const char *why = "unset";
	int r = smstools_file_parse(data, size, f, &why);
	int want = ref_split(data, size, h, &nh, &body);

	*ok = r == 0;
	if (r != 0 && r != -1)
		die("parse returned", NULL);
	if ((r == 0) != (want == 0))
		die(r == 0 ? "parse took a bad file" : "parse refused a good file",
		    r == 0 ? NULL : why);
	if (r == -1) {
		if (why == NULL || *why == '\0')
			die("refusal without a reason", NULL);
		if (f->buf != NULL || f->nhdr != 0 || f->body != NULL)
			die("refusal left something", why);
		return;
	}
	if (f->nhdr != nh)
		die("header count", NULL);
	for (size_t i = 0; i < nh; i++) {
		const char *nm = f->hdr[i].name, *v = f->hdr[i].value;
		if (nm == NULL || v == NULL)
			die("NULL header", NULL);
		if (!same(nm, h[i].name, h[i].nlen))
			die("header name", nm);
		if (!same(v, h[i].value, h[i].vlen))
			die("header value", v);
		if (strpbrk(v, "\r\n") != NULL || *v == ' ' || *v == '\t')
			die("value not clean", v);
		/* the first of a name is the one found */
		size_t first = i;
		for (size_t j = 0; j < i; j++)
			if (strcmp(f->hdr[j].name, nm) == 0) {
				first = j;
				break;
			}
		if (smstools_file_header(f, nm) != f->hdr[first].value)
			die("smstools_file_header", nm);
	}
	if (f->body != data + body || f->bodylen != size - body)
		die("body is not the rest of the input", NULL);
	if (smstools_file_header(f, "No-Such-Header-Name-Here") != NULL)
		die("a header that is not there", NULL);
}

/* ---- status reports ---- */

/* The number at the start of s after spaces: 1..9 digits, else -1. */
static long
ref_number(const char *s, const char **end)
{
	long v = 0;
	int k = 0;

	while (*s == ' ')
		s++;
	while (*s >= '0' && *s <= '9') {
		if (++k > 9) {
			*end = s;
			return -1;
		}
		v = v * 10 + (*s++ - '0');
	}
	*end = s;
	return k == 0 ? -1 : v;
}

static void
check_report(const char *body, size_t len)
{
	struct smstools_report r;
	long id = -1, st = -1;
	int is = len >= 17 && memcmp(body, "SMS STATUS REPORT", 17) == 0;
	int got = smstools_report_parse(body, len, &r);
	size_t at = 0;

	if (got != is)
		die("report recognised wrongly", NULL);
	if (!is) {
		if (r.message_id != -1 || r.status != -1 || r.text[0] != '\0')
			die("not a report, yet filled", NULL);
		return;
	}
	/* the last of each line wins; lines are read as their first 255
	 * bytes, up to a NUL */
	while (at < len) {
		const char *nl = memchr(body + at, '\n', len - at);
		size_t e = nl != NULL ? (size_t)(nl - body) : len, n = e - at;
		char line[256];
		const char *q;

		if (n > 255)
			n = 255;
		memcpy(line, body + at, n);
		line[n] = '\0';
		at = e + 1;
		if (strncmp(line, "Message_id:", 11) == 0) {
			id = ref_number(line + 11, &q);
		} else if (strncmp(line, "Status:", 7) == 0) {
			st = ref_number(line + 7, &q);
			if (st > 255)
				st = -1;
		}
	}
	if (r.message_id != id || r.status != st)
		die("report id or status", NULL);
	if (memchr(r.text, '\0', sizeof(r.text)) == NULL)
		die("report text not terminated", NULL);
	for (const unsigned char *p = (const unsigned char *)r.text; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			die("control character in report text", r.text);
	if (r.status == -1 && r.text[0] != '\0' &&
	    memmem(body, len, "Status:", 7) == NULL)
		die("report text without a Status line", r.text);

	enum smstools_status k = smstools_status_kind(r.status);
	if (r.status >= 0 && r.status < 32 ? k != SMSTOOLS_DELIVERED :
	    r.status >= 32 && r.status < 64 ? k != SMSTOOLS_PENDING :
	    k != SMSTOOLS_FAILED)
		die("status kind", NULL);
}

/* ---- Message_id lists ---- */

static int
blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

/* The reference: tokens between blanks, each 1..9 digits of a value
 * <= 255, at most 255 of them, at least one; a final "." after a
 * blank ends the list (smsd's messageids = 3). */
static int
ref_ids(const char *s, int *ids, size_t max)
{
	size_t len = strlen(s), n = 0, i = 0;

	if (len >= 2 && s[len - 1] == '.' && blank(s[len - 2]))
		len--;
	while (i < len) {
		size_t k = 0;
		long v = 0;

		while (i < len && blank(s[i]))
			i++;
		if (i == len)
			break;
		while (i < len && !blank(s[i])) {
			if (s[i] < '0' || s[i] > '9' || ++k > 9)
				return -1;
			v = v * 10 + (s[i] - '0');
			i++;
		}
		if (v > 255 || ++n > 255)
			return -1;
		if (n <= max)
			ids[n - 1] = (int)v;
	}
	if (n == 0)
		return -1;
	return (int)(n < max ? n : max);
}

static void
check_ids(const char *s, size_t max)
{
	int got[16], want[16];
	int r = smstools_message_ids(s, got, max);
	int w = ref_ids(s, want, max);

	if (r != w)
		die("Message_id count", s);
	for (int i = 0; i < r; i++)
		if (got[i] != want[i] || got[i] < 0 || got[i] > 255)
			die("Message_id value", s);
}

/* ---- dates ---- */

static void
check_time(const char *s)
{
	time_t t = 12345;
	int r = smstools_time_parse(s, &t);
	int shape = strlen(s) == 17;
	static const char pat[] = "99-99-99 99:99:99";
	struct tm tm;
	char back[32];

	for (size_t i = 0; shape && i < 17; i++)
		shape = pat[i] == '9' ? s[i] >= '0' && s[i] <= '9' :
		    s[i] == pat[i];
	if (r == -1) {
		if (t != 12345)
			die("refused date wrote its result", s);
		/* a date of the right shape that exists is not refused */
		if (shape) {
			memset(&tm, 0, sizeof(tm));
			if (strptime(s, "%y-%m-%d %H:%M:%S", &tm) == NULL)
				return;
			tm.tm_year = 100 + tm.tm_year % 100;
			time_t u = timegm(&tm);
			struct tm g;
			gmtime_r(&u, &g);
			if (strftime(back, sizeof(back), "%y-%m-%d %H:%M:%S",
			    &g) > 0 && strcmp(back, s) == 0)
				die("a good date refused", s);
		}
		return;
	}
	if (r != 0)
		die("time parse returned", s);
	if (!shape)
		die("a date of another shape accepted", s);
	if (localtime_r(&t, &tm) == NULL ||
	    strftime(back, sizeof(back), "%y-%m-%d %H:%M:%S", &tm) == 0 ||
	    strcmp(back, s) != 0 || tm.tm_year < 100 || tm.tm_year > 199)
		die("the date does not read back", s);
}

/* ---- ISO-8859-15 ---- */

/* ISO-8859-15 of a code point, or -1: the inverse kept here. */
static int
latin9_of(unsigned cp)
{
	switch (cp) {
	case 0x20ac: return 0xa4;
	case 0x0160: return 0xa6;
	case 0x0161: return 0xa8;
	case 0x017d: return 0xb4;
	case 0x017e: return 0xb8;
	case 0x0152: return 0xbc;
	case 0x0153: return 0xbd;
	case 0x0178: return 0xbe;
	case 0xa4: case 0xa6: case 0xa8: case 0xb4: case 0xb8: case 0xbc:
	case 0xbd: case 0xbe:
		return -1;      /* Latin-1 only: no byte gives them */
	}
	return cp < 0x100 ? (int)cp : -1;
}

static void
check_latin9(const char *in, size_t len)
{
	size_t outlen = (size_t)-1, want = 0, i = 0, k = 0;
	char *out = smstools_latin9_to_utf8(in, len, &outlen);
	const unsigned char *o = (const unsigned char *)out;

	for (size_t j = 0; j < len; j++) {
		unsigned char b = (unsigned char)in[j];
		/* of the eight where ISO-8859-15 is not Latin-1, only
		 * U+20AC lies above U+07FF */
		want += b < 0x80 ? 1 : b == 0xa4 ? 3 : 2;
	}
	if (out == NULL || outlen != want || out[outlen] != '\0')
		die("latin9 length", NULL);
	if (outlen > 3 * len)
		die("latin9 beyond its bound", NULL);
	/* strict UTF-8, each character back to the input byte */
	while (i < outlen) {
		unsigned cp;
		size_t n;
		if (o[i] < 0x80) {
			cp = o[i];
			n = 0;
		} else if ((o[i] & 0xe0) == 0xc0) {
			cp = o[i] & 0x1f;
			n = 1;
		} else if ((o[i] & 0xf0) == 0xe0) {
			cp = o[i] & 0x0f;
			n = 2;
		} else {
			die("latin9: not UTF-8", NULL);
		}
		if (i + n >= outlen)
			die("latin9: a cut character", NULL);
		for (size_t j = 1; j <= n; j++) {
			if ((o[i + j] & 0xc0) != 0x80)
				die("latin9: not UTF-8", NULL);
			cp = cp << 6 | (o[i + j] & 0x3f);
		}
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			die("latin9: overlong or surrogate", NULL);
		if (k >= len || latin9_of(cp) != (unsigned char)in[k])
			die("latin9: does not decode back", NULL);
		k++;
		i += n + 1;
	}
	if (k != len)
		die("latin9: characters lost", NULL);
	free(out);
}

/* ---- names ---- */

static void
check_names(const char *s)
{
	char to[32], prefix[SMSTOOLS_PREFIX_SIZE], ref[SMSTOOLS_REF_MAX + 1];
	const char *digits = s[0] == '+' ? s + 1 : s;
	size_t nd = strlen(digits), pl;
	int good = nd >= 1 && nd <= 20 && strspn(digits, "0123456789") == nd;

	if ((smstools_to_header(s, to, sizeof(to)) == 0) != good)
		die("To: accepted or refused wrongly", s);
	if (good && (strcmp(to + (s[0] == '+' ? 0 : 1), digits) != 0 ||
	    (s[0] != '+' && to[0] != 's')))
		die("To: value", to);
	if (smstools_to_header(s, to, 4) == 0 && strlen(to) > 3)
		die("To: past its buffer", to);

	/* a prefix from the input: causeway.X. with X of [a-z0-9.-] */
	memset(prefix, 'X', sizeof(prefix));
	smstools_file_prefix(s, prefix);
	if (memchr(prefix, '\0', sizeof(prefix)) == NULL)
		die("prefix not terminated", NULL);
	pl = strlen(prefix);
	if (pl < 11 || strncmp(prefix, "causeway.", 9) != 0 ||
	    prefix[pl - 1] != '.' || strspn(prefix,
	    "abcdefghijklmnopqrstuvwxyz0123456789.-") != pl)
		die("prefix shape", prefix);

	/* a ref from the input as a file name, under two prefixes */
	static const char *const prefixes[] = { "causeway.sms.example.org.",
	    "" };
	for (size_t i = 0; i < 2; i++) {
		const char *p = prefixes[i];
		size_t n = strlen(p), rl = strlen(s) - (strncmp(s, p, n) ?
		    0 : n);
		int want = strncmp(s, p, n) == 0 && rl >= 1 &&
		    rl <= SMSTOOLS_REF_MAX && strspn(s + n,
		    "abcdefghijklmnopqrstuvwxyz0123456789") == rl;
		memset(ref, 0, sizeof(ref));
		int got = smstools_ref_from_name(s, p, ref);
		if (got != want || (got && strcmp(ref, s + n) != 0))
			die("ref from name", s);
	}
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* dates read back through localtime: no DST gaps */
	setenv("TZ", "UTC", 1);
	tzset();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smstools_file f;
	char *buf, *str;
	size_t slen, max = size % 9;
	int ok;

	if (size > SMSTOOLS_FILE_MAX)
		return 0;
	/* exactly size bytes: a read past the end is ASan's */
	buf = malloc(size ? size : 1);
	if (buf == NULL)
		abort();
	memcpy(buf, data, size);

	check_file(buf, size, &f, &ok);
	if (ok) {
		for (size_t i = 0; i < f.nhdr; i++) {
			check_ids(f.hdr[i].value, max);
			check_time(f.hdr[i].value);
			check_names(f.hdr[i].value);
		}
		check_report(f.body, f.bodylen);
		check_latin9(f.body, f.bodylen);
		smstools_file_clear(&f);
		if (f.buf != NULL || f.nhdr != 0)
			die("clear", NULL);
	}
	check_report(buf, size);
	check_latin9(buf, size);

	/* the input as one string (up to a NUL) */
	slen = strnlen(buf, size);
	str = malloc(slen + 1);
	if (str == NULL)
		abort();
	memcpy(str, buf, slen);
	str[slen] = '\0';
	check_ids(str, max);
	check_time(str);
	check_names(str);
	free(str);
	free(buf);
	return 0;
}
