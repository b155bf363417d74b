/*
 * smstools3 spool files as text (see smstools_file.h).
 */
#include "autoconf.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "smstools_file.h"
#include "xmalloc.h"

static int
name_char(unsigned char ch)
{
	return isascii(ch) && (isalnum(ch) || ch == '_' || ch == '-');
}

int
smstools_file_parse(const char *data, size_t len, struct smstools_file *f,
    const char **reason)
{
	const char *end = NULL, *why = NULL;
	size_t i, hlen;
	char *p, *line, *next;

	memset(f, 0, sizeof(*f));
	/* The headers end at the first empty line ("\n\n"; a CR before
	 * either LF is tolerated). */
	for (i = 0; i < len; i++) {
		if (data[i] != '\n')
			continue;
		if (i + 1 < len && data[i + 1] == '\n') {
			end = data + i + 1;
			f->body = data + i + 2;
			break;
		}
		if (i + 2 < len && data[i + 1] == '\r' && data[i + 2] == '\n') {
			end = data + i + 1;
			f->body = data + i + 3;
			break;
		}
	}
	if (len > 0 && data[0] == '\n') {
		end = data;
		f->body = data + 1;
	}
	if (end == NULL) {
		why = "no empty line after the headers";
		goto bad;
	}
	f->bodylen = (size_t)(data + len - f->body);
	hlen = (size_t)(end - data);
	for (i = 0; i < hlen; i++) {
		unsigned char ch = (unsigned char)data[i];

		if (ch == '\n' || ch == '\t' || (ch == '\r' &&
		    i + 1 < hlen && data[i + 1] == '\n'))
			continue;
		if (ch < 0x20 || ch == 0x7f) {
			why = "a control character in the headers";
			goto bad;
		}
	}
	f->buf = xmalloc(hlen + 1);
	memcpy(f->buf, data, hlen);
	f->buf[hlen] = '\0';
	for (line = f->buf; *line != '\0'; line = next) {
		char *colon, *v;
		size_t n;

		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		else
			next = line + strlen(line);
		n = strlen(line);
		if (n > 0 && line[n - 1] == '\r')
			line[--n] = '\0';
		for (p = line; name_char((unsigned char)*p); p++)
			;
		colon = p;
		if (p == line || *colon != ':' ||
		    (size_t)(p - line) > SMSTOOLS_HEADER_NAME_MAX) {
			why = "a header line that is not \"Name: value\"";
			goto bad;
		}
		if (f->nhdr == SMSTOOLS_HEADERS_MAX) {
			why = "too many header lines";
			goto bad;
		}
		*colon = '\0';
		for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
			;
		f->hdr[f->nhdr].name = line;
		f->hdr[f->nhdr].value = v;
		f->nhdr++;
	}
	if (f->nhdr == 0) {
		why = "no headers";
		goto bad;
	}
	return 0;
bad:
	smstools_file_clear(f);
	if (reason != NULL)
		*reason = why;
	return -1;
}

void
smstools_file_clear(struct smstools_file *f)
{
	free(f->buf);
	memset(f, 0, sizeof(*f));
}

const char *
smstools_file_header(const struct smstools_file *f, const char *name)
{
	size_t i;

	for (i = 0; i < f->nhdr; i++)
		if (strcmp(f->hdr[i].name, name) == 0)
			return f->hdr[i].value;
	return NULL;
}

/* A decimal number of at most 9 digits starting at *p; advances. */
static long
number(const char **p)
{
	long v = 0;
	int n = 0;

	while (isascii((unsigned char)**p) && isdigit((unsigned char)**p)) {
		if (++n > 9)
			return -1;
		v = v * 10 + (**p - '0');
		(*p)++;
	}
	return n == 0 ? -1 : v;
}

int
smstools_report_parse(const char *body, size_t len, struct smstools_report *r)
{
	static const char mark[] = "SMS STATUS REPORT";
	const char *p = body, *end = body + len;

	r->message_id = -1;
	r->status = -1;
	r->text[0] = '\0';
	if (len < sizeof(mark) - 1 || memcmp(body, mark, sizeof(mark) - 1) != 0)
		return 0;
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		size_t n = (eol != NULL ? eol : end) - p;
		char line[256];
		const char *q;

		if (n >= sizeof(line))
			n = sizeof(line) - 1;
		memcpy(line, p, n);
		line[n] = '\0';
		p = eol != NULL ? eol + 1 : end;
		if (strncmp(line, "Message_id:", 11) == 0) {
			q = line + 11;
			while (*q == ' ')
				q++;
			r->message_id = number(&q);
		} else if (strncmp(line, "Status:", 7) == 0) {
			long st;
			size_t o = 0;

			q = line + 7;
			while (*q == ' ')
				q++;
			st = number(&q);
			r->status = st >= 0 && st <= 255 ? (int)st : -1;
			if (*q == ',')
				q++;
			/* smsd's explanation, kept printable for a
			 * user's error message */
			for (; *q != '\0' && o + 1 < sizeof(r->text); q++) {
				unsigned char ch = (unsigned char)*q;

				if (ch == '\r')
					continue;
				r->text[o++] = ch < 0x20 || ch == 0x7f ?
				    ' ' : (char)ch;
			}
			r->text[o] = '\0';
		}
	}
	return 1;
}

enum smstools_status
smstools_status_kind(int status)
{
	if (status >= 0 && status < 32)
		return SMSTOOLS_DELIVERED;
	if (status >= 32 && status < 64)
		return SMSTOOLS_PENDING;
	return SMSTOOLS_FAILED;
}

int
smstools_message_ids(const char *value, int *ids, size_t max)
{
	const char *p = value;
	size_t n = 0;
	long v;

	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0' || (*p == '.' && p[1] == '\0' && n > 0))
			break;
		if ((v = number(&p)) < 0 || v > 255)
			return -1;
		if (*p != '\0' && *p != ' ' && *p != '\t')
			return -1;
		if (n < max)
			ids[n] = (int)v;
		n++;
		if (n > 255)
			return -1;
	}
	if (n == 0)
		return -1;
	return (int)(n < max ? n : max);
}

int
smstools_time_parse(const char *s, time_t *out)
{
	static const char shape[] = "99-99-99 99:99:99";
	struct tm tm;
	int v[6];
	size_t i;
	time_t t;

	/* Exactly the shape, digit for digit: no sign, no blank, no
	 * short field (the first byte that differs, s's NUL included,
	 * stops the loop, so nothing past s is read). */
	for (i = 0; shape[i] != '\0'; i++)
		if (shape[i] == '9' ? !(s[i] >= '0' && s[i] <= '9') :
		    s[i] != shape[i])
			return -1;
	if (s[i] != '\0')
		return -1;
	for (i = 0; i < 6; i++)
		v[i] = (s[3 * i] - '0') * 10 + (s[3 * i + 1] - '0');
	if (v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > 31 || v[3] > 23 ||
	    v[4] > 59 || v[5] > 59)
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = 100 + v[0];
	tm.tm_mon = v[1] - 1;
	tm.tm_mday = v[2];
	tm.tm_hour = v[3];
	tm.tm_min = v[4];
	tm.tm_sec = v[5];
	tm.tm_isdst = -1;
	if ((t = mktime(&tm)) == (time_t)-1)
		return -1;
	/* mktime moves a day that the month lacks (02-30) or a local
	 * time that the clock skipped: such a date is not smsd's */
	if (tm.tm_year != 100 + v[0] || tm.tm_mon != v[1] - 1 ||
	    tm.tm_mday != v[2] || tm.tm_hour != v[3] || tm.tm_min != v[4] ||
	    tm.tm_sec != v[5])
		return -1;
	*out = t;
	return 0;
}

char *
smstools_latin9_to_utf8(const char *in, size_t len, size_t *outlen)
{
	/* The eight places where ISO-8859-15 differs from ISO-8859-1. */
	static const struct {
		unsigned char byte;
		unsigned cp;
	} diff[] = {
		{ 0xA4, 0x20AC }, { 0xA6, 0x0160 }, { 0xA8, 0x0161 },
		{ 0xB4, 0x017D }, { 0xB8, 0x017E }, { 0xBC, 0x0152 },
		{ 0xBD, 0x0153 }, { 0xBE, 0x0178 },
	};
	char *out = xmalloc(len * 3 + 1);
	size_t i, j, o = 0;

	for (i = 0; i < len; i++) {
		unsigned cp = (unsigned char)in[i];

		for (j = 0; j < sizeof(diff) / sizeof(diff[0]); j++)
			if (diff[j].byte == cp)
				cp = diff[j].cp;
		if (cp < 0x80) {
			out[o++] = (char)cp;
		} else if (cp < 0x800) {
			out[o++] = (char)(0xC0 | cp >> 6);
			out[o++] = (char)(0x80 | (cp & 0x3F));
		} else {
			out[o++] = (char)(0xE0 | cp >> 12);
			out[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
			out[o++] = (char)(0x80 | (cp & 0x3F));
		}
	}
	out[o] = '\0';
	if (outlen != NULL)
		*outlen = o;
	return out;
}

int
smstools_to_header(const char *number, char *out, size_t size)
{
	const char *p = number;
	int intl = 0;
	size_t n;

	if (*p == '+') {
		intl = 1;
		p++;
	}
	n = strlen(p);
	if (n == 0 || n > 20 || strspn(p, "0123456789") != n)
		return -1;
	if ((size_t)snprintf(out, size, "%s%s", intl ? "" : "s", p) >= size)
		return -1;
	return 0;
}

void
smstools_file_prefix(const char *domain, char out[SMSTOOLS_PREFIX_SIZE])
{
	size_t n = strlen(domain), i;
	unsigned long long h = 1469598103934665603ULL;

	if (n > 0 && n <= 64 && strspn(domain, "0123456789abcdefghijklmnopq"
	    "rstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-") == n) {
		memcpy(out, "causeway.", 9);
		for (i = 0; i < n; i++)
			out[9 + i] = (char)tolower((unsigned char)domain[i]);
		out[9 + n] = '.';
		out[10 + n] = '\0';
		return;
	}
	for (i = 0; i < n; i++)
		h = (h ^ (unsigned char)domain[i]) * 1099511628211ULL;
	snprintf(out, SMSTOOLS_PREFIX_SIZE, "causeway.%016llx.", h);
}

int
smstools_ref_from_name(const char *name, const char *prefix,
    char ref[SMSTOOLS_REF_MAX + 1])
{
	size_t plen = strlen(prefix), n;

	if (strncmp(name, prefix, plen) != 0)
		return 0;
	name += plen;
	n = strlen(name);
	if (n == 0 || n > SMSTOOLS_REF_MAX ||
	    strspn(name, "0123456789abcdefghijklmnopqrstuvwxyz") != n)
		return 0;
	memcpy(ref, name, n + 1);
	return 1;
}
