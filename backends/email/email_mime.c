/*
 * Mail as chat text (see email_mime.h).
 *
 * The walk over a message:
 *
 *   headers (From, Subject, Message-ID, References, Date) -> struct fields
 *   body -> walk_entity(), as a mail client shows a mail: every inline
 *           text part in order (HTML converted); of an alternative the
 *           plain text (else what there is); a forwarded or digest mail
 *           inline under its From, Date and Subject; of a delivery
 *           report its text, a line per recipient from the
 *           delivery-status and the returned mail's headers; parts that
 *           are attachments listed by name, type and size.  A multipart
 *           whose boundary is missing or wrong is split on the boundary
 *           its body uses, else read as text; a part without headers
 *           (no blank line, or a blank first line) is text.
 *   -> decode transfer encoding, charset -> cap the text -> notes
 *
 * The raw input may be only the first bytes of a bigger mail (the fetch
 * cap): a part or boundary cut off simply ends where the input ends, and
 * a note says how much of the mail was read.
 */
#include "autoconf.h"

#include <ctype.h>
#include <errno.h>
#include <iconv.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/sha.h>

#include "email_buf.h"
#include "email_mime.h"
#include "xmalloc.h"

/* ---- UTF-8 and charsets ---- */

static void
put_cp(struct ebuf *b, uint32_t cp)
{
	char u[4];
	if (cp < 0x80) {
		u[0] = (char)cp;
		ebuf_add(b, u, 1);
	} else if (cp < 0x800) {
		u[0] = (char)(0xc0 | (cp >> 6));
		u[1] = (char)(0x80 | (cp & 0x3f));
		ebuf_add(b, u, 2);
	} else if (cp < 0x10000) {
		u[0] = (char)(0xe0 | (cp >> 12));
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f));
		ebuf_add(b, u, 3);
	} else {
		u[0] = (char)(0xf0 | (cp >> 18));
		u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[3] = (char)(0x80 | (cp & 0x3f));
		ebuf_add(b, u, 4);
	}
}

/* The code point at p (at most n bytes), its length in *len; -1 for
 * an invalid sequence (*len 1). */
static long
utf8_next(const unsigned char *p, size_t n, size_t *len)
{
	uint32_t cp;
	size_t k;
	*len = 1;
	if (p[0] < 0x80)
		return p[0];
	if ((p[0] & 0xe0) == 0xc0) {
		cp = p[0] & 0x1f;
		k = 1;
	} else if ((p[0] & 0xf0) == 0xe0) {
		cp = p[0] & 0x0f;
		k = 2;
	} else if ((p[0] & 0xf8) == 0xf0) {
		cp = p[0] & 0x07;
		k = 3;
	} else {
		return -1;
	}
	if (k >= n)
		return -1;
	for (size_t i = 1; i <= k; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return -1;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) ||
	    (k == 3 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return -1;
	*len = k + 1;
	return (long)cp;
}

static int
valid_utf8(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, l;
	while (i < n) {
		if (utf8_next(p + i, n - i, &l) < 0)
			return 0;
		i += l;
	}
	return 1;
}

char *
email_mime_clean_utf8(const char *in, size_t len, int multiline)
{
	const unsigned char *p = (const unsigned char *)in;
	struct ebuf b = { 0 };
	size_t i = 0, l;
	ebuf_add(&b, "", 0);
	while (i < len) {
		long cp = utf8_next(p + i, len - i, &l);
		i += l;
		if (cp < 0) {
			put_cp(&b, 0xfffd);
			continue;
		}
		if (cp == '\r') {
			/* CR LF is a newline; a lone CR too. */
			if (i < len && p[i] == '\n')
				continue;
			cp = '\n';
		}
		if (cp == '\n' || cp == '\t') {
			ebuf_ch(&b, multiline ? (char)cp : ' ');
			continue;
		}
		if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0) ||
		    cp == 0xfffe || cp == 0xffff)
			continue;
		put_cp(&b, (uint32_t)cp);
	}
	return ebuf_take(&b);
}

/* A charset name we hand to iconv: letters, digits and -_.: only. */
static int
charset_ok(const char *cs)
{
	size_t n = strlen(cs);
	if (n == 0 || n > 40)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)cs[i]) && strchr("-_.:", cs[i]) ==
		    NULL)
			return 0;
	return 1;
}

static char *
iconv_utf8(const char *in, size_t len, const char *charset, int *ok)
{
	iconv_t cd = iconv_open("UTF-8", charset);
	*ok = cd != (iconv_t)-1;
	if (!*ok)
		return NULL;
	struct ebuf b = { 0 };
	char out[4096];
	char *ip = (char *)in;
	size_t il = len;
	ebuf_add(&b, "", 0);
	while (il > 0) {
		char *op = out;
		size_t ol = sizeof(out);
		size_t r = iconv(cd, &ip, &il, &op, &ol);
		ebuf_add(&b, out, sizeof(out) - ol);
		if (r != (size_t)-1)
			break;
		if (errno == E2BIG)
			continue;
		if (errno == EILSEQ) {
			put_cp(&b, 0xfffd);
			ip++;
			il--;
			iconv(cd, NULL, NULL, NULL, NULL);
			continue;
		}
		/* EINVAL: an incomplete sequence at the end. */
		put_cp(&b, 0xfffd);
		break;
	}
	/* Flush a stateful encoding's shift sequence. */
	char *op = out;
	size_t ol = sizeof(out);
	iconv(cd, NULL, NULL, &op, &ol);
	ebuf_add(&b, out, sizeof(out) - ol);
	iconv_close(cd);
	return ebuf_take(&b);
}

char *
email_mime_to_utf8(const char *in, size_t len, const char *charset,
    int *known)
{
	char cs[48];
	int ok = 1;
	cs[0] = '\0';
	if (charset != NULL) {
		size_t n = strlen(charset);
		if (n >= sizeof(cs))
			n = sizeof(cs) - 1;
		memcpy(cs, charset, n);
		cs[n] = '\0';
		for (char *q = cs; *q; q++)
			*q = (char)tolower((unsigned char)*q);
		/* RFC 2231 language suffix ("utf-8*en"). */
		char *star = strchr(cs, '*');
		if (star != NULL)
			*star = '\0';
	}
	if (known != NULL)
		*known = 1;
	if (strcmp(cs, "utf-8") == 0 || strcmp(cs, "utf8") == 0)
		return email_mime_clean_utf8(in, len, 1);
	if (cs[0] != '\0' && strcmp(cs, "us-ascii") != 0 &&
	    strcmp(cs, "ascii") != 0) {
		char *r = NULL;
		if (charset_ok(cs))
			r = iconv_utf8(in, len, cs, &ok);
		else
			ok = 0;
		if (r != NULL) {
			char *c = email_mime_clean_utf8(r, strlen(r), 1);
			free(r);
			return c;
		}
		if (known != NULL)
			*known = 0;
	}
	/* Undeclared (or declared ASCII but carrying 8-bit bytes) or
	 * unknown: UTF-8 if it is that, else what most such mail is. */
	if (valid_utf8(in, len))
		return email_mime_clean_utf8(in, len, 1);
	char *r = iconv_utf8(in, len, "WINDOWS-1252", &ok);
	if (r == NULL)
		r = iconv_utf8(in, len, "ISO-8859-1", &ok);
	if (r == NULL)
		return email_mime_clean_utf8(in, len, 1);
	char *c = email_mime_clean_utf8(r, strlen(r), 1);
	free(r);
	return c;
}

/* ---- transfer encodings ---- */

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

char *
email_mime_qp_decode(const char *in, size_t len, int header, size_t *outlen)
{
	char *out = xmalloc(len + 1);
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		char c = in[i];
		if (header && c == '_') {
			out[o++] = ' ';
			continue;
		}
		if (c != '=') {
			out[o++] = c;
			continue;
		}
		/* A soft line break: "=" then optional blanks, then a
		 * newline. */
		size_t j = i + 1;
		while (j < len && (in[j] == ' ' || in[j] == '\t'))
			j++;
		if (j < len && (in[j] == '\r' || in[j] == '\n')) {
			if (in[j] == '\r' && j + 1 < len && in[j + 1] == '\n')
				j++;
			i = j;
			continue;
		}
		if (j == len && !header) {
			i = j;
			continue;
		}
		int h = i + 2 < len ? hexval((unsigned char)in[i + 1]) : -1;
		int l = i + 2 < len ? hexval((unsigned char)in[i + 2]) : -1;
		if (h < 0 || l < 0) {
			/* Broken: keep the "=" as it is. */
			out[o++] = '=';
			continue;
		}
		out[o++] = (char)(h * 16 + l);
		i += 2;
	}
	out[o] = '\0';
	*outlen = o;
	return out;
}

char *
email_mime_b64_decode(const char *in, size_t len, size_t *outlen)
{
	static const char alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *out = xmalloc(len / 4 * 3 + 4);
	size_t o = 0;
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < len; i++) {
		const char *k = in[i] ? strchr(alphabet, in[i]) : NULL;
		/* Anything else (whitespace, "=", garbage) is skipped:
		 * broken base64 decodes what is there. */
		if (k == NULL)
			continue;
		acc = (acc << 6) | (uint32_t)(k - alphabet);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (char)((acc >> bits) & 0xff);
		}
	}
	out[o] = '\0';
	*outlen = o;
	return out;
}

/* ---- headers ---- */

/*
 * 1 when the line at p starts a header field ("Name:"): a part whose
 * first line is no header field has no header block (a broken mailer
 * left out the blank line), and its first paragraph is text.
 */
static int
header_line(const char *p, size_t len)
{
	size_t i = 0;
	if (len >= 5 && memcmp(p, "From ", 5) == 0)
		return 1;       /* an mbox separator before the headers */
	while (i < len && p[i] > ' ' && p[i] < 127 && p[i] != ':')
		i++;
	return i > 0 && i < len && p[i] == ':';
}

/* Where the header block ends (*body set to the body's start); the
 * whole input when it has no empty line. */
static size_t
header_end(const char *p, size_t len, const char **body)
{
	/* A part that starts with a blank line has no headers at all: its
	 * first paragraph is text, not a header block. */
	if (len > 0 && (p[0] == '\n' || (len > 1 && p[0] == '\r' &&
	    p[1] == '\n'))) {
		*body = p + (p[0] == '\n' ? 1 : 2);
		return 0;
	}
	for (size_t i = 0; i < len; i++) {
		if (p[i] != '\n')
			continue;
		/* A line that is neither a header field nor a folded
		 * continuation is the body, the blank line left out. */
		if (i + 1 < len && p[i + 1] != '\n' && p[i + 1] != '\r' &&
		    p[i + 1] != ' ' && p[i + 1] != '\t' &&
		    !header_line(p + i + 1, len - i - 1)) {
			*body = p + i + 1;
			return i + 1;
		}
		if (i + 1 < len && p[i + 1] == '\n') {
			*body = p + i + 2;
			return i + 1;
		}
		if (i + 2 < len && p[i + 1] == '\r' && p[i + 2] == '\n') {
			*body = p + i + 3;
			return i + 1;
		}
	}
	*body = p + len;
	return len;
}

/*
 * The first header called name in the block, unfolded (CR and LF
 * removed), capped at EMAIL_HEADER_MAX bytes; NULL when absent.
 */
static char *
header_get(const char *h, size_t hlen, const char *name)
{
	size_t nl = strlen(name);
	size_t i = 0;
	while (i < hlen) {
		const char *line = h + i;
		const char *eol = memchr(line, '\n', hlen - i);
		size_t ll = eol ? (size_t)(eol - line) : hlen - i;
		if (ll > nl && line[nl] == ':' && strncasecmp(line, name,
		    nl) == 0) {
			struct ebuf b = { 0 };
			size_t j = i + nl + 1;
			ebuf_add(&b, "", 0);
			for (;;) {
				const char *s = h + j;
				const char *e = memchr(s, '\n', hlen - j);
				size_t n = e ? (size_t)(e - s) : hlen - j;
				if (b.len < EMAIL_HEADER_MAX)
					ebuf_add(&b, s, n < EMAIL_HEADER_MAX -
					    b.len ? n : EMAIL_HEADER_MAX -
					    b.len);
				j += n + 1;
				if (e == NULL || j >= hlen || (h[j] != ' ' &&
				    h[j] != '\t'))
					break;
			}
			/* Unfolded: CRs go, the line breaks already went. */
			char *v = ebuf_take(&b);
			char *w = v;
			for (char *r = v; *r; r++)
				if (*r != '\r')
					*w++ = *r;
			*w = '\0';
			return v;
		}
		i += ll + 1;
	}
	return NULL;
}

static char *
trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
	return s;
}

/* Cut a UTF-8 string at max bytes on a character boundary, with an
 * ellipsis when something was cut. */
static void
utf8_cut(char **s, size_t max)
{
	size_t n = strlen(*s);
	if (max == 0 || n <= max)
		return;
	size_t k = max >= 3 ? max - 3 : 0;
	while (k > 0 && ((unsigned char)(*s)[k] & 0xc0) == 0x80)
		k--;
	memcpy(*s + k, "\xe2\x80\xa6", 4);
}

/* Raw header bytes (not encoded words): UTF-8 when valid, else
 * Windows-1252. */
static void
add_raw(struct ebuf *b, const char *s, size_t n)
{
	char *u = email_mime_to_utf8(s, n, NULL, NULL);
	ebuf_str(b, u);
	free(u);
}

char *
email_mime_header_text(const char *raw, size_t max)
{
	struct ebuf b = { 0 };
	struct ebuf pend = { 0 };   /* decoded bytes of adjacent words */
	char pend_cs[48] = "";
	const char *p = raw;
	const char *text = raw;     /* plain text not yet added */
	ebuf_add(&b, "", 0);
	while ((p = strstr(p, "=?")) != NULL) {
		/* =?charset?X?encoded?= */
		const char *cs = p + 2;
		const char *q1 = strchr(cs, '?');
		if (q1 == NULL || q1 - cs == 0 || q1 - cs >= 40 ||
		    memchr(cs, ' ', (size_t)(q1 - cs)) != NULL) {
			p += 2;
			continue;
		}
		char enc = (char)toupper((unsigned char)q1[1]);
		if ((enc != 'B' && enc != 'Q') || q1[2] != '?') {
			p += 2;
			continue;
		}
		const char *data = q1 + 3;
		const char *end = strstr(data, "?=");
		if (end == NULL || end - data > 4096 ||
		    memchr(data, ' ', (size_t)(end - data)) != NULL) {
			p += 2;
			continue;
		}
		char charset[48];
		memcpy(charset, cs, (size_t)(q1 - cs));
		charset[q1 - cs] = '\0';
		/* Whitespace between two encoded words is dropped. */
		const char *gap = text;
		int only_ws = 1;
		for (const char *g = gap; g < p; g++)
			if (*g != ' ' && *g != '\t' && *g != '\r' && *g != '\n')
				only_ws = 0;
		int joined = pend.len > 0 && only_ws;
		if (!joined || strcasecmp(pend_cs, charset) != 0) {
			if (pend.len > 0) {
				char *u = email_mime_to_utf8(pend.p, pend.len,
				    pend_cs, NULL);
				ebuf_str(&b, u);
				free(u);
				pend.len = 0;
			}
			if (!joined)
				add_raw(&b, text, (size_t)(p - text));
			snprintf(pend_cs, sizeof(pend_cs), "%s", charset);
		}
		size_t dl;
		char *d = enc == 'B' ? email_mime_b64_decode(data,
		    (size_t)(end - data), &dl) : email_mime_qp_decode(data,
		    (size_t)(end - data), 1, &dl);
		ebuf_add(&pend, d, dl);
		free(d);
		p = text = end + 2;
	}
	if (pend.len > 0) {
		char *u = email_mime_to_utf8(pend.p, pend.len, pend_cs, NULL);
		ebuf_str(&b, u);
		free(u);
	}
	free(pend.p);
	add_raw(&b, text, strlen(text));
	char *all = ebuf_take(&b);
	char *one = email_mime_clean_utf8(all, strlen(all), 0);
	free(all);
	char *t = xstrdup(trim(one));
	free(one);
	utf8_cut(&t, max);
	return t;
}

/* ---- structured headers ---- */

/* The value of parameter name in a Content-Type or Content-Disposition
 * value ("text/plain; charset=utf-8"), or NULL.  RFC 2231 "name*=" with
 * a charset and %-escapes is understood; continuations are not. */
static char *
param_get(const char *v, const char *name)
{
	size_t nl = strlen(name);
	const char *p = v;
	int inq = 0;
	for (; *p; p++) {
		if (*p == '"')
			inq = !inq;
		if (inq || *p != ';')
			continue;
		const char *k = p + 1;
		while (*k == ' ' || *k == '\t')
			k++;
		if (strncasecmp(k, name, nl) != 0)
			continue;
		const char *r = k + nl;
		int ext = 0;
		if (*r == '*') {
			ext = 1;
			r++;
			if (*r == '0' && r[1] == '*')
				r += 2;
			else if (*r == '0')
				r++;
		}
		while (*r == ' ' || *r == '\t')
			r++;
		if (*r != '=')
			continue;
		r++;
		while (*r == ' ' || *r == '\t')
			r++;
		struct ebuf b = { 0 };
		ebuf_add(&b, "", 0);
		if (*r == '"') {
			for (r++; *r && *r != '"'; r++) {
				if (*r == '\\' && r[1] != '\0')
					r++;
				ebuf_ch(&b, *r);
			}
		} else {
			for (; *r && *r != ';' && *r != ' ' && *r != '\t';
			    r++)
				ebuf_ch(&b, *r);
		}
		char *val = ebuf_take(&b);
		if (!ext)
			return val;
		/* charset'lang'%XX... */
		char *q1 = strchr(val, '\'');
		char *q2 = q1 ? strchr(q1 + 1, '\'') : NULL;
		if (q2 == NULL)
			return val;
		*q1 = '\0';
		struct ebuf d = { 0 };
		ebuf_add(&d, "", 0);
		for (char *s = q2 + 1; *s; s++) {
			int h, l;
			if (*s == '%' && (h = hexval((unsigned char)s[1])) >=
			    0 && (l = hexval((unsigned char)s[2])) >= 0) {
				ebuf_ch(&d, (char)(h * 16 + l));
				s += 2;
			} else {
				ebuf_ch(&d, *s);
			}
		}
		char *u = email_mime_to_utf8(d.p, d.len, val, NULL);
		free(d.p);
		free(val);
		return u;
	}
	return NULL;
}

/* "Text/Plain; ..." -> "text/plain" (caller frees). */
static char *
mime_type(const char *v)
{
	size_t n = strcspn(v, ";");
	char *t = xstrndup(v, n > 128 ? 128 : n);
	char *s = trim(t);
	char *r = xstrdup(s);
	free(t);
	for (char *q = r; *q; q++)
		*q = (char)tolower((unsigned char)*q);
	if (strchr(r, '/') == NULL || strchr(r, ' ') != NULL) {
		free(r);
		return NULL;
	}
	return r;
}

/* Skips a (nested) comment at p; returns the character after it. */
static const char *
skip_comment(const char *p, struct ebuf *text)
{
	int depth = 0;
	for (; *p; p++) {
		if (*p == '\\' && p[1] != '\0') {
			p++;
			if (text)
				ebuf_ch(text, *p);
			continue;
		}
		if (*p == '(') {
			if (depth++ == 0)
				continue;
		} else if (*p == ')') {
			if (--depth == 0)
				return p + 1;
		}
		if (text)
			ebuf_ch(text, *p);
	}
	return p;
}

/* One mailbox token (between commas): *addr and *name or nothing. */
static void
mailbox(const char *tok, size_t n, char **addr, char **name)
{
	char *t = xstrndup(tok, n);
	char *lt = NULL;
	int inq = 0;
	for (char *p = t; *p; p++) {
		if (*p == '\\' && p[1] != '\0') {
			p++;
			continue;
		}
		if (*p == '"')
			inq = !inq;
		else if (*p == '<' && !inq) {
			lt = p;
			break;
		}
	}
	struct ebuf a = { 0 }, nm = { 0 };
	ebuf_add(&a, "", 0);
	ebuf_add(&nm, "", 0);
	if (lt != NULL) {
		char *gt = strchr(lt, '>');
		if (gt != NULL)
			*gt = '\0';
		char *spec = lt + 1;
		/* An obsolete route ("@a,@b:x@y"). */
		char *colon = strchr(spec, ':');
		if (spec[0] == '@' && colon != NULL)
			spec = colon + 1;
		ebuf_str(&a, trim(spec));
		*lt = '\0';
		/* The display name: quotes and escapes removed, comments
		 * dropped. */
		for (const char *p = t; *p; ) {
			if (*p == '(') {
				p = skip_comment(p, NULL);
				continue;
			}
			if (*p == '"') {
				p++;
				continue;
			}
			if (*p == '\\' && p[1] != '\0')
				p++;
			ebuf_ch(&nm, *p++);
		}
	} else {
		/* addr (Name) */
		for (const char *p = t; *p; ) {
			if (*p == '(') {
				p = skip_comment(p, &nm);
				continue;
			}
			if (*p != ' ' && *p != '\t')
				ebuf_ch(&a, *p);
			p++;
		}
	}
	char *spec = ebuf_take(&a);
	for (char *p = spec; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	if (email_mime_addr_valid(spec))
		*addr = spec;
	else
		free(spec);
	char *raw = ebuf_take(&nm);
	char *dn = email_mime_header_text(raw, EMAIL_NAME_MAX);
	free(raw);
	if (*dn != '\0' && (*addr == NULL || strcmp(dn, *addr) != 0))
		*name = dn;
	else
		free(dn);
	free(t);
}

void
email_mime_parse_from(const char *value, char **addr, char **name)
{
	*addr = NULL;
	*name = NULL;
	if (value == NULL)
		return;
	const char *start = value;
	int inq = 0, inangle = 0;
	for (const char *p = value; ; p++) {
		if (*p == '\\' && p[1] != '\0') {
			p++;
			continue;
		}
		if (*p == '(' && !inq) {
			p = skip_comment(p, NULL) - 1;
			continue;
		}
		if (*p == '"')
			inq = !inq;
		else if (!inq && *p == '<')
			inangle = 1;
		else if (!inq && *p == '>')
			inangle = 0;
		else if (!inq && !inangle && *p == ':') {
			/* A group: its name is no mailbox. */
			start = p + 1;
			continue;
		}
		if (*p != '\0' && (inq || inangle || (*p != ',' && *p !=
		    ';')))
			continue;
		char *a = NULL, *n = NULL;
		mailbox(start, (size_t)(p - start), &a, &n);
		if (a != NULL) {
			/* The name that goes with this address, not one of
			 * an earlier token without an address. */
			free(*name);
			*addr = a;
			*name = n;
			return;
		}
		/* No address here: keep the first name seen, look on. */
		if (*name == NULL)
			*name = n;
		else
			free(n);
		if (*p == '\0')
			return;
		start = p + 1;
	}
}

int
email_mime_addr_valid(const char *a)
{
	const char *at = strrchr(a, '@');
	if (at == NULL || at == a || at - a > 64 || strlen(at + 1) > 253 ||
	    at[1] == '\0')
		return 0;
	for (const char *p = a; p < at; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '.') {
			if (p == a || p + 1 == at || p[1] == '.')
				return 0;
			continue;
		}
		if (!isalnum(c) && strchr("!#$%&'*+-/=?^_`{|}~", c) == NULL)
			return 0;
	}
	const char *label = at + 1;
	for (const char *p = at + 1; ; p++) {
		if (*p == '.' || *p == '\0') {
			size_t l = (size_t)(p - label);
			if (l == 0 || l > 63 || *label == '-' || p[-1] == '-')
				return 0;
			if (*p == '\0')
				break;
			label = p + 1;
			continue;
		}
		if (!isalnum((unsigned char)*p) && *p != '-')
			return 0;
	}
	return 1;
}

time_t
email_mime_parse_date(const char *value)
{
	static const char *months[] = { "jan", "feb", "mar", "apr", "may",
	    "jun", "jul", "aug", "sep", "oct", "nov", "dec" };
	static const struct { const char *name; int off; } zones[] = {
		{ "UT", 0 }, { "GMT", 0 }, { "Z", 0 }, { "EST", -500 },
		{ "EDT", -400 }, { "CST", -600 }, { "CDT", -500 },
		{ "MST", -700 }, { "MDT", -600 }, { "PST", -800 },
		{ "PDT", -700 },
	};
	if (value == NULL)
		return 0;
	const char *p = value;
	char mon[4];
	int day, year, hh, mm, ss = 0, n = 0;
	while (*p == ' ' || *p == '\t')
		p++;
	const char *comma = strchr(p, ',');
	if (comma != NULL && comma - p <= 10)
		p = comma + 1;
	if (sscanf(p, "%2d %3s %4d %2d:%2d%n", &day, mon, &year, &hh, &mm,
	    &n) != 5)
		return 0;
	p += n;
	if (*p == ':') {
		int k = 0;
		if (sscanf(p, ":%2d%n", &ss, &k) != 1)
			return 0;
		p += k;
	}
	while (*p == ' ' || *p == '\t')
		p++;
	int off = 0;
	if ((*p == '+' || *p == '-') && isdigit((unsigned char)p[1])) {
		off = atoi(p + 1) % 10000;
		if (*p == '-')
			off = -off;
	} else {
		for (size_t i = 0; i < sizeof(zones) / sizeof(zones[0]); i++)
			if (strncasecmp(p, zones[i].name,
			    strlen(zones[i].name)) == 0)
				off = zones[i].off;
	}
	int m = -1;
	for (int i = 0; i < 12; i++)
		if (strncasecmp(mon, months[i], 3) == 0)
			m = i;
	if (year < 100)
		year += year < 50 ? 2000 : 1900;
	if (m < 0 || day < 1 || day > 31 || year < 1970 || year > 9999 ||
	    hh > 23 || mm > 59 || ss > 60 || hh < 0 || mm < 0 || ss < 0)
		return 0;
	struct tm tm = { .tm_year = year - 1900, .tm_mon = m, .tm_mday = day,
	    .tm_hour = hh, .tm_min = mm, .tm_sec = ss };
	time_t t = timegm(&tm);
	if (t == (time_t)-1)
		return 0;
	t -= (off / 100) * 3600 + (off % 100) * 60;
	return t > 0 ? t : 0;
}

char *
email_mime_msgids(const char *value, size_t max)
{
	if (value == NULL || max == 0)
		return NULL;
	const char **ids = NULL;
	size_t *lens = NULL, n = 0;
	for (const char *p = value; (p = strchr(p, '<')) != NULL; ) {
		size_t l = 1;
		while (p[l] != '\0' && p[l] != '>' && p[l] != '<' &&
		    (unsigned char)p[l] > 0x20 && (unsigned char)p[l] < 0x7f)
			l++;
		if (p[l] != '>' || l < 2 || l > 250) {
			p += l;
			continue;
		}
		ids = xreallocarray(ids, n + 1, sizeof(*ids));
		lens = xreallocarray(lens, n + 1, sizeof(*lens));
		ids[n] = p;
		lens[n++] = l + 1;
		p += l + 1;
	}
	if (n == 0)
		return NULL;
	struct ebuf b = { 0 };
	for (size_t i = n > max ? n - max : 0; i < n; i++) {
		if (b.len > 0)
			ebuf_ch(&b, ' ');
		ebuf_add(&b, ids[i], lens[i]);
	}
	free(ids);
	free(lens);
	return ebuf_take(&b);
}

char *
email_mime_thread_id(const char *message_id, const char *in_reply_to,
    const char *references)
{
	const char *src = references && *references ? references :
	    in_reply_to && *in_reply_to ? in_reply_to : message_id;
	char *first = src ? email_mime_msgids(src, SIZE_MAX) : NULL;
	if (first == NULL)
		return NULL;
	first[strcspn(first, " ")] = '\0';
	unsigned char md[SHA256_DIGEST_LENGTH];
	SHA256((const unsigned char *)first, strlen(first), md);
	free(first);
	char *hex = xmalloc(33);
	for (int i = 0; i < 16; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return hex;
}

/* ---- HTML ---- */

static const struct { const char *name; uint32_t cp; } entities[] = {
	{ "amp", '&' }, { "lt", '<' }, { "gt", '>' }, { "quot", '"' },
	{ "apos", '\'' }, { "nbsp", ' ' }, { "copy", 0xa9 }, { "reg", 0xae },
	{ "hellip", 0x2026 }, { "mdash", 0x2014 }, { "ndash", 0x2013 },
	{ "lsquo", 0x2018 }, { "rsquo", 0x2019 }, { "ldquo", 0x201c },
	{ "rdquo", 0x201d }, { "euro", 0x20ac }, { "eacute", 0xe9 },
	{ "egrave", 0xe8 }, { "agrave", 0xe0 }, { "auml", 0xe4 },
	{ "ouml", 0xf6 }, { "uuml", 0xfc }, { "Auml", 0xc4 },
	{ "Ouml", 0xd6 }, { "Uuml", 0xdc }, { "szlig", 0xdf },
	{ "ccedil", 0xe7 }, { "bull", 0x2022 }, { "middot", 0xb7 },
	{ "trade", 0x2122 }, { "laquo", 0xab }, { "raquo", 0xbb },
};

struct html {
	struct ebuf out;
	int space;             /* a collapsed blank is pending */
	int pre;
};

static void
html_newlines(struct html *h, int want)
{
	int have = 0;
	size_t i = h->out.len;
	/* Trailing blanks before a newline go. */
	while (i > 0 && h->out.p[i - 1] == ' ')
		i--;
	h->out.len = i;
	if (h->out.p)
		h->out.p[i] = '\0';
	while (i > 0 && h->out.p[i - 1] == '\n' && have < want) {
		have++;
		i--;
	}
	if (h->out.len == 0)
		have = want;
	for (; have < want; have++)
		ebuf_ch(&h->out, '\n');
	h->space = 0;
}

static void
html_text(struct html *h, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!h->pre && (c == ' ' || c == '\t' || c == '\r' ||
		    c == '\n')) {
			h->space = 1;
			continue;
		}
		if (h->space && h->out.len > 0 &&
		    h->out.p[h->out.len - 1] != '\n')
			ebuf_ch(&h->out, ' ');
		h->space = 0;
		if (c != '&') {
			ebuf_ch(&h->out, c);
			continue;
		}
		/* An entity, or a plain "&". */
		size_t j = i + 1;
		while (j < n && j - i < 12 && s[j] != ';' &&
		    (isalnum((unsigned char)s[j]) || s[j] == '#'))
			j++;
		if (j >= n || s[j] != ';') {
			ebuf_ch(&h->out, '&');
			continue;
		}
		char name[16];
		memcpy(name, s + i + 1, j - i - 1);
		name[j - i - 1] = '\0';
		long cp = -1;
		if (name[0] == '#') {
			char *end;
			cp = name[1] == 'x' || name[1] == 'X' ?
			    strtol(name + 2, &end, 16) : strtol(name + 1, &end,
			    10);
			if (*end != '\0' || end == name + 1)
				cp = -1;
			else if (cp <= 0 || cp > 0x10ffff || (cp >= 0xd800 &&
			    cp <= 0xdfff))
				cp = 0xfffd;
		} else {
			for (size_t k = 0; k < sizeof(entities) /
			    sizeof(entities[0]); k++)
				if (strcmp(entities[k].name, name) == 0)
					cp = entities[k].cp;
		}
		if (cp < 0) {
			ebuf_ch(&h->out, '&');
			continue;
		}
		put_cp(&h->out, (uint32_t)cp);
		i = j;
	}
}

/* The value of attribute name in a tag's text, or NULL. */
static char *
html_attr(const char *tag, size_t n, const char *name)
{
	size_t nl = strlen(name);
	for (size_t i = 0; i + nl < n; i++) {
		if ((i > 0 && !isspace((unsigned char)tag[i - 1])) ||
		    strncasecmp(tag + i, name, nl) != 0)
			continue;
		size_t j = i + nl;
		while (j < n && isspace((unsigned char)tag[j]))
			j++;
		if (j >= n || tag[j] != '=')
			continue;
		j++;
		while (j < n && isspace((unsigned char)tag[j]))
			j++;
		char q = j < n && (tag[j] == '"' || tag[j] == '\'') ? tag[j] :
		    0;
		if (q)
			j++;
		size_t k = j;
		while (k < n && (q ? tag[k] != q : !isspace(
		    (unsigned char)tag[k]) && tag[k] != '>'))
			k++;
		struct html tmp = { .out = { 0 } };
		ebuf_add(&tmp.out, "", 0);
		html_text(&tmp, tag + j, k - j);
		return ebuf_take(&tmp.out);
	}
	return NULL;
}

char *
email_mime_html_to_text(const char *s, size_t n)
{
	struct html h = { .out = { 0 } };
	char *href = NULL;
	size_t link_start = 0;
	ebuf_add(&h.out, "", 0);
	size_t i = 0;
	while (i < n) {
		if (s[i] != '<') {
			size_t j = i;
			while (j < n && s[j] != '<')
				j++;
			html_text(&h, s + i, j - i);
			i = j;
			continue;
		}
		if (n - i >= 4 && memcmp(s + i, "<!--", 4) == 0) {
			const char *e = NULL;
			for (size_t k = i + 4; k + 3 <= n; k++)
				if (memcmp(s + k, "-->", 3) == 0) {
					e = s + k + 3;
					break;
				}
			i = e ? (size_t)(e - s) : n;
			continue;
		}
		/* A tag: up to the next '>' outside quotes. */
		size_t j = i + 1;
		char q = 0;
		while (j < n && (q || s[j] != '>')) {
			if (q && s[j] == q)
				q = 0;
			else if (!q && (s[j] == '"' || s[j] == '\''))
				q = s[j];
			j++;
		}
		const char *tag = s + i + 1;
		size_t tl = j - i - 1;
		i = j < n ? j + 1 : n;
		int closing = tl > 0 && tag[0] == '/';
		const char *nm = tag + closing;
		size_t nl = 0;
		while (nl < tl - (size_t)closing && nl < 15 &&
		    isalnum((unsigned char)nm[nl]))
			nl++;
		char name[16];
		for (size_t k = 0; k < nl; k++)
			name[k] = (char)tolower((unsigned char)nm[k]);
		name[nl] = '\0';
		if (!closing && (strcmp(name, "script") == 0 ||
		    strcmp(name, "style") == 0 || strcmp(name, "head") == 0 ||
		    strcmp(name, "title") == 0)) {
			/* Skip to the matching end tag. */
			char end[20];
			snprintf(end, sizeof(end), "</%s", name);
			size_t el = strlen(end), k = i;
			while (k + el <= n && strncasecmp(s + k, end, el) != 0)
				k++;
			if (k + el > n) {
				i = n;
				continue;
			}
			const char *gt = memchr(s + k, '>', n - k);
			i = gt ? (size_t)(gt - s) + 1 : n;
			continue;
		}
		if (strcmp(name, "br") == 0) {
			html_newlines(&h, 1);
			if (h.out.len > 0 && h.out.p[h.out.len - 1] != '\n')
				ebuf_ch(&h.out, '\n');
		} else if (strcmp(name, "p") == 0 || strcmp(name, "div") == 0 ||
		    strcmp(name, "table") == 0 || strcmp(name, "ul") == 0 ||
		    strcmp(name, "ol") == 0 || strcmp(name, "blockquote") ==
		    0 || (name[0] == 'h' && name[1] >= '1' && name[1] <= '6' &&
		    name[2] == '\0') || strcmp(name, "hr") == 0) {
			html_newlines(&h, strcmp(name, "div") == 0 ? 1 : 2);
		} else if (strcmp(name, "pre") == 0) {
			html_newlines(&h, 2);
			h.pre = !closing;
		} else if (strcmp(name, "tr") == 0) {
			html_newlines(&h, 1);
		} else if (strcmp(name, "li") == 0 && !closing) {
			html_newlines(&h, 1);
			ebuf_str(&h.out, "- ");
		} else if ((strcmp(name, "td") == 0 || strcmp(name, "th") == 0)
		    && !closing) {
			h.space = 1;
		} else if (strcmp(name, "img") == 0) {
			char *alt = html_attr(tag, tl, "alt");
			if (alt != NULL && *alt != '\0') {
				html_text(&h, "[", 1);
				html_text(&h, alt, strlen(alt));
				html_text(&h, "]", 1);
			}
			free(alt);
		} else if (strcmp(name, "a") == 0 && !closing) {
			free(href);
			href = html_attr(tag, tl, "href");
			link_start = h.out.len;
		} else if (strcmp(name, "a") == 0 && closing && href != NULL) {
			/* Show where a link goes unless its text says it. */
			size_t tlen = h.out.len - link_start;
			const char *shown = h.out.p + link_start;
			if ((strncasecmp(href, "http", 4) == 0 ||
			    strncasecmp(href, "mailto:", 7) == 0) &&
			    strlen(href) < 2048 && (tlen != strlen(href) ||
			    memcmp(shown, href, tlen) != 0)) {
				ebuf_str(&h.out, " <");
				ebuf_str(&h.out, href);
				ebuf_ch(&h.out, '>');
			}
			free(href);
			href = NULL;
		}
	}
	free(href);
	html_newlines(&h, 1);
	char *raw = ebuf_take(&h.out);
	/* Trim leading newlines and the final one. */
	char *t = raw;
	while (*t == '\n' || *t == ' ')
		t++;
	size_t l = strlen(t);
	while (l > 0 && (t[l - 1] == '\n' || t[l - 1] == ' '))
		l--;
	char *r = email_mime_clean_utf8(t, l, 1);
	free(raw);
	return r;
}

/* ---- the MIME walk ---- */

/* Delivery reports: recipients summed up, and the summary's caps. */
#define REPORT_RCPTS_MAX 10
#define REPORT_DIAG_MAX 300
/* Boundary lines tried when a multipart's own boundary does not split
 * it. */
#define GUESS_TRIES_MAX 8

struct walk {
	const struct email_limits *lim;
	const char *end;       /* the end of the buffer being walked */
	int truncated;         /* that buffer is not the whole mail */
	int parts;
	int skipped;
	int in_report;         /* inside a multipart/report */
	struct ebuf text;      /* the text shown, part after part */
	struct ebuf attach;
	int nattach;
};

/* One MIME entity's headers, read once. */
struct entity {
	const char *body;
	size_t blen;
	char *ct;              /* the raw Content-Type value, or NULL */
	char *type;            /* lower-case type/subtype, never NULL */
	char *cte;             /* trimmed transfer encoding, or NULL */
	char *fname;           /* decoded file name, or NULL */
	int attachment;        /* Content-Disposition: attachment */
};

static void
human_size(char *buf, size_t n, size_t bytes)
{
	if (bytes < 1024)
		snprintf(buf, n, "%zu bytes", bytes);
	else if (bytes < 1024 * 1024)
		snprintf(buf, n, "%.1f KB", (double)bytes / 1024);
	else
		snprintf(buf, n, "%.1f MB", (double)bytes / (1024 * 1024));
}

/* Bytes after decoding a body of this encoding. */
static size_t
decoded_size(const char *p, size_t len, const char *cte)
{
	if (cte == NULL || strcasecmp(cte, "base64") != 0)
		return len;
	size_t n = 0;
	for (size_t i = 0; i < len; i++)
		if (isalnum((unsigned char)p[i]) || p[i] == '+' || p[i] == '/')
			n++;
	return n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
}

/* 1 when the bytes are only blanks and line breaks. */
static int
blank(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isspace((unsigned char)p[i]))
			return 0;
	return 1;
}

static void
entity_read(struct entity *e, const char *p, size_t len, int depth,
    const char *deftype)
{
	const char *body;
	size_t hlen;
	if (depth > 0 && !header_line(p, len) && !(len > 0 && (p[0] ==
	    '\n' || p[0] == '\r'))) {
		hlen = 0;
		body = p;
	} else {
		hlen = header_end(p, len, &body);
	}
	memset(e, 0, sizeof(*e));
	e->body = body;
	e->blen = len - (size_t)(body - p);
	e->ct = header_get(p, hlen, "Content-Type");
	e->type = e->ct ? mime_type(e->ct) : NULL;
	if (e->type == NULL)
		e->type = xstrdup(deftype);
	char *cte_raw = header_get(p, hlen, "Content-Transfer-Encoding");
	e->cte = cte_raw ? xstrdup(trim(cte_raw)) : NULL;
	free(cte_raw);
	char *disp = header_get(p, hlen, "Content-Disposition");
	e->attachment = disp != NULL && strncasecmp(trim(disp),
	    "attachment", 10) == 0;
	e->fname = disp ? param_get(disp, "filename") : NULL;
	if (e->fname == NULL && e->ct != NULL)
		e->fname = param_get(e->ct, "name");
	if (e->fname != NULL) {
		/* Mailers put RFC 2047 words in file names too. */
		char *d = email_mime_header_text(e->fname, EMAIL_NAME_MAX);
		free(e->fname);
		e->fname = *d ? d : NULL;
		if (e->fname == NULL)
			free(d);
	}
	free(disp);
}

static void
entity_clear(struct entity *e)
{
	free(e->ct);
	free(e->type);
	free(e->cte);
	free(e->fname);
}

/* The body's bytes with the transfer encoding undone (caller frees). */
static char *
body_bytes(const struct entity *e, size_t *n)
{
	if (e->cte != NULL && strcasecmp(e->cte, "base64") == 0)
		return email_mime_b64_decode(e->body, e->blen, n);
	if (e->cte != NULL && strcasecmp(e->cte, "quoted-printable") == 0)
		return email_mime_qp_decode(e->body, e->blen, 0, n);
	/* A NUL in the body ends nothing: keep the rest. */
	char *b = xmalloc(e->blen + 1);
	memcpy(b, e->body, e->blen);
	b[e->blen] = '\0';
	*n = e->blen;
	return b;
}

/* The body as UTF-8 text (HTML converted) (caller frees). */
static char *
body_text(const struct entity *e)
{
	size_t n;
	char *bytes = body_bytes(e, &n);
	char *cs = e->ct ? param_get(e->ct, "charset") : NULL;
	char *u = email_mime_to_utf8(bytes, n, cs, NULL);
	free(cs);
	free(bytes);
	if (strcmp(e->type, "text/html") == 0) {
		char *t = email_mime_html_to_text(u, strlen(u));
		free(u);
		u = t;
	}
	return u;
}

static void
list_part(struct walk *w, const char *name, const char *type,
    const char *body, size_t blen, const char *cte)
{
	char size[32];
	human_size(size, sizeof(size), decoded_size(body, blen, cte));
	int cut = w->truncated && body + blen >= w->end;
	w->nattach++;
	ebuf_fmt(&w->attach, "- %s (%s, %s%s)\n", name && *name ? name :
	    "unnamed", type, cut ? "at least " : "", size);
}

/* Adds a block of text (leading blank lines and trailing blanks
 * dropped), a blank line apart from the one before; nothing when the
 * block is empty. */
static void
text_add(struct walk *w, const char *s)
{
	while (*s == '\n' || *s == ' ' || *s == '\t') {
		/* Keep the indentation of the first line of text. */
		const char *nl = s + strspn(s, " \t");
		if (*nl != '\n')
			break;
		s = nl + 1;
	}
	size_t n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	if (n == 0)
		return;
	if (w->text.len > 0)
		ebuf_str(&w->text, "\n\n");
	ebuf_add(&w->text, s, n);
}

static void walk_entity(struct walk *w, const char *p, size_t len, int depth,
    const char *deftype);

/*
 * The parts of a multipart body: (*starts)[i], (*lens)[i], at most max
 * of them stored; returns how many there are (*seen counts the
 * delimiter lines).  A delimiter is "--boundary" at the start
 * of a line with only blanks after it (or "--" for the closing one).
 */
static size_t
split_parts(const char *body, size_t blen, const char *boundary,
    const char **starts, size_t *lens, size_t max, int *seen)
{
	size_t bl = strlen(boundary);
	char *delim = xasprintf("--%s", boundary);
	const char *part = NULL;
	const char *p = body, *end = body + blen;
	size_t n = 0;
	while (p < end) {
		const char *d = NULL;
		for (const char *s = p; s + bl + 2 <= end; s++) {
			s = memmem(s, (size_t)(end - s), delim, bl + 2);
			if (s == NULL)
				break;
			if (s == body || s[-1] == '\n') {
				d = s;
				break;
			}
		}
		if (d == NULL)
			break;
		const char *after = d + bl + 2;
		int closing = end - after >= 2 && after[0] == '-' &&
		    after[1] == '-';
		const char *t = closing ? after + 2 : after;
		/* Only blanks may follow a delimiter on its line: "--b1"
		 * is no delimiter of boundary "b". */
		while (t < end && (*t == ' ' || *t == '\t' || *t == '\r'))
			t++;
		if (t < end && *t != '\n') {
			p = after;
			continue;
		}
		(*seen)++;
		if (part != NULL && n++ < max) {
			/* The CRLF before the delimiter belongs to it. */
			const char *pe = d;
			if (pe > part && pe[-1] == '\n')
				pe--;
			if (pe > part && pe[-1] == '\r')
				pe--;
			starts[n - 1] = part;
			lens[n - 1] = (size_t)(pe - part);
		}
		if (closing || t >= end) {
			part = NULL;
			break;
		}
		part = t + 1;
		p = part;
	}
	/* No closing delimiter (cut short, or broken): the last part runs
	 * to the end. */
	if (part != NULL && part < end && n++ < max) {
		starts[n - 1] = part;
		lens[n - 1] = (size_t)(end - part);
	}
	free(delim);
	return n;
}

/*
 * The boundary a multipart body really uses when its header names none
 * or one that never occurs (caller frees), or NULL: the first line "--x"
 * followed by a Content- field, when "--x" starts another line too (a
 * quoted "-----Original Message-----" over "From:" is no boundary).
 */
static char *
guess_boundary(const char *body, size_t blen)
{
	const char *p = body, *end = body + blen;
	/* Each candidate costs a scan of the rest: a few only. */
	int tries = GUESS_TRIES_MAX;
	while (p < end && tries > 0) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *le = eol ? eol : end;
		size_t ll = (size_t)(le - p);
		while (ll > 0 && (p[ll - 1] == '\r' || p[ll - 1] == ' ' ||
		    p[ll - 1] == '\t'))
			ll--;
		if (ll > 2 && ll <= 72 && p[0] == '-' && p[1] == '-' &&
		    eol != NULL && (size_t)(end - eol - 1) > 8 &&
		    strncasecmp(eol + 1, "Content-", 8) == 0) {
			tries--;
			int seen = 0;
			char *b = xstrndup(p + 2, ll - 2);
			split_parts(p, (size_t)(end - p), b, NULL, NULL, 0,
			    &seen);
			if (seen >= 2)
				return b;
			free(b);
		}
		if (eol == NULL)
			break;
		p = eol + 1;
	}
	return NULL;
}

/* Text shown of an alternative: plain text first, then a nested
 * multipart (HTML with its pictures), then HTML, then anything. */
static int
alt_rank(const struct entity *e)
{
	if (blank(e->body, e->blen))
		return 0;
	if (e->attachment)
		return 1;
	if (strcmp(e->type, "text/plain") == 0)
		return 5;
	if (strncmp(e->type, "multipart/", 10) == 0)
		return 4;
	if (strcmp(e->type, "text/html") == 0)
		return 3;
	return 2;
}

/* Of an alternative, only the version shown: the others are the same
 * mail, no attachments. */
static void
walk_alternative(struct walk *w, const char **starts, const size_t *lens,
    size_t n, int depth)
{
	size_t best = n;
	int rank = 0;
	for (size_t i = 0; i < n; i++) {
		struct entity e;
		entity_read(&e, starts[i], lens[i], depth + 1, "text/plain");
		int r = alt_rank(&e);
		if (r > rank) {
			rank = r;
			best = i;
		}
		entity_clear(&e);
	}
	if (best != n)
		walk_entity(w, starts[best], lens[best], depth + 1,
		    "text/plain");
}

static void
walk_multipart(struct walk *w, const struct entity *e, int depth,
    const char *guessed)
{
	const char *subtype = e->type + 10;
	char *boundary = guessed ? xstrdup(guessed) : e->ct ?
	    param_get(e->ct, "boundary") : NULL;
	size_t max = EMAIL_PARTS_MAX + 1;
	const char **starts = xreallocarray(NULL, max, sizeof(*starts));
	size_t *lens = xreallocarray(NULL, max, sizeof(*lens));
	size_t n = 0;
	int seen = 0;
	if (boundary != NULL && *boundary != '\0' && strlen(boundary) <= 200)
		n = split_parts(e->body, e->blen, boundary, starts, lens, max,
		    &seen);
	if (n == 0 && !seen) {
		/* No boundary, or one the body never uses. */
		free(boundary);
		boundary = guess_boundary(e->body, e->blen);
		if (boundary != NULL)
			n = split_parts(e->body, e->blen, boundary, starts,
			    lens, max, &seen);
	}
	free(boundary);
	if (n > max) {
		w->skipped += (int)(n - max);
		n = max;
	}
	if (n == 0 && seen) {
		/* Only a closing delimiter: an empty multipart. */
	} else if (n == 0) {
		/* No parts at all: what is there reads as plain text. */
		struct entity t = *e;
		t.type = (char *)"text/plain";
		char *s = body_text(&t);
		text_add(w, s);
		free(s);
	} else if (strcmp(subtype, "alternative") == 0) {
		walk_alternative(w, starts, lens, n, depth);
	} else {
		int rep = w->in_report;
		w->in_report = strcmp(subtype, "report") == 0;
		const char *deftype = strcmp(subtype, "digest") == 0 ?
		    "message/rfc822" : "text/plain";
		for (size_t i = 0; i < n; i++)
			walk_entity(w, starts[i], lens[i], depth + 1, deftype);
		w->in_report = rep;
	}
	free(starts);
	free(lens);
}

/* "Name: value" of a header of the block, decoded, when present. */
static void
show_header(struct ebuf *b, const char *h, size_t hlen, const char *name)
{
	char *raw = header_get(h, hlen, name);
	if (raw == NULL)
		return;
	char *v = email_mime_header_text(raw, EMAIL_SUBJECT_MAX);
	free(raw);
	if (*v != '\0')
		ebuf_fmt(b, "\n%s: %s", name, v);
	free(v);
}

/*
 * A mail inside the mail (forwarded, from a digest, or the mail a
 * delivery report returns): its From, Date and Subject, then its text,
 * as a mail client shows it.  A returned mail shows only its headers:
 * the report is about it, its text was the sender's own.
 */
static void
walk_message(struct walk *w, const struct entity *e, int depth, int digest)
{
	size_t n;
	char *inner = body_bytes(e, &n);
	const char *body;
	size_t hlen = header_end(inner, n, &body);
	struct ebuf b = { 0 };
	int returned = w->in_report || strstr(e->type, "rfc822-headers") !=
	    NULL;
	ebuf_str(&b, returned ? "-------- The returned mail --------" :
	    digest ? "-------- Message --------" :
	    "-------- Forwarded message --------");
	show_header(&b, inner, hlen, "From");
	show_header(&b, inner, hlen, "Date");
	show_header(&b, inner, hlen, "Subject");
	if (returned)
		show_header(&b, inner, hlen, "To");
	text_add(w, b.p);
	free(b.p);
	if (!returned) {
		const char *end = w->end;
		int truncated = w->truncated;
		/* A decoded copy ends where the raw part ended. */
		w->truncated = truncated && e->body + e->blen >= end;
		w->end = inner + n;
		walk_entity(w, inner, n, depth + 1, "text/plain");
		w->end = end;
		w->truncated = truncated;
	}
	free(inner);
}

/* Runs of blanks (left by unfolding a long diagnostic) as one space. */
static void
squeeze(char *s)
{
	char *w = s;
	for (char *r = s; *r; r++)
		if (!(*r == ' ' || *r == '\t') || w == s || (w[-1] != ' '))
			*w++ = *r == '\t' ? ' ' : *r;
	*w = '\0';
}

/*
 * The machine part of a delivery report (RFC 3464): per recipient, who,
 * what happened, the status code and the server's words.
 */
static void
walk_dsn(struct walk *w, const struct entity *e)
{
	size_t n;
	char *all = body_bytes(e, &n);
	char *u = email_mime_to_utf8(all, n, NULL, NULL);
	free(all);
	const char *p = u, *end = u + strlen(u);
	struct ebuf b = { 0 };
	int shown = 0, more = 0;
	while (p < end) {
		/* Groups of fields, a blank line apart. */
		while (p < end && (*p == '\n' || *p == ' ' || *p == '\t'))
			p++;
		if (p >= end)
			break;
		const char *next;
		size_t gl = header_end(p, (size_t)(end - p), &next);
		char *rcpt = header_get(p, gl, "Final-Recipient");
		if (rcpt == NULL)
			rcpt = header_get(p, gl, "Original-Recipient");
		char *action = header_get(p, gl, "Action");
		if (rcpt != NULL || action != NULL) {
			if (shown >= REPORT_RCPTS_MAX) {
				more++;
			} else {
				char *status = header_get(p, gl, "Status");
				char *diag = header_get(p, gl,
				    "Diagnostic-Code");
				/* "rfc822; a@b": the address type goes. */
				char *r = rcpt ? strchr(rcpt, ';') : NULL;
				char *who = email_mime_header_text(r ? r + 1 :
				    rcpt ? rcpt : "?", EMAIL_NAME_MAX);
				char *act = email_mime_header_text(action ?
				    action : "?", 64);
				char *st = status ? email_mime_header_text(
				    status, 64) : NULL;
				char *dg = diag ? email_mime_header_text(diag,
				    REPORT_DIAG_MAX) : NULL;
				squeeze(who);
				if (dg != NULL)
					squeeze(dg);
				ebuf_fmt(&b, "\n- %s: %s%s%s%s%s", who, act,
				    st && *st ? ", status " : "", st ? st : "",
				    dg && *dg ? ": " : "", dg ? dg : "");
				free(who);
				free(act);
				free(st);
				free(dg);
				free(status);
				free(diag);
				shown++;
			}
		}
		free(rcpt);
		free(action);
		if (next <= p)
			break;
		p = next;
	}
	if (shown > 0) {
		if (more > 0)
			ebuf_fmt(&b, "\n- and %d more recipients", more);
		char *s = xasprintf("Delivery report:%s", b.p);
		text_add(w, s);
		free(s);
	}
	free(b.p);
	free(u);
}

/* 1 when a text part names a boundary its body uses: a multipart under
 * a wrong type, whose MIME syntax must not show as text. */
static int
mislabelled(const struct entity *e)
{
	char *boundary = e->ct ? param_get(e->ct, "boundary") : NULL;
	int seen = 0;
	if (boundary != NULL && *boundary != '\0' && strlen(boundary) <= 200)
		split_parts(e->body, e->blen, boundary, NULL, NULL, 0, &seen);
	free(boundary);
	return seen;
}

static void
walk_entity(struct walk *w, const char *p, size_t len, int depth,
    const char *deftype)
{
	if (depth > EMAIL_DEPTH_MAX || w->parts >= EMAIL_PARTS_MAX) {
		w->skipped++;
		return;
	}
	w->parts++;
	struct entity e;
	entity_read(&e, p, len, depth, deftype);
	const char *t = e.type;
	if (strncmp(t, "text/", 5) == 0 && mislabelled(&e)) {
		free(e.type);
		e.type = xstrdup("multipart/mixed");
		t = e.type;
	}
	char *guess = NULL;
	if (e.ct == NULL && strcmp(t, "text/plain") == 0 &&
	    (guess = guess_boundary(e.body, e.blen)) != NULL) {
		/* No Content-Type at all (a gateway dropped it) over a body
		 * in MIME parts: the parts are read, and what comes before
		 * them is text, as it may be a bounce quoting a mail. */
		char *delim = xasprintf("--%s", guess);
		const char *d = memmem(e.body, e.blen, delim, strlen(delim));
		free(delim);
		char *pre = xstrndup(e.body, d ? (size_t)(d - e.body) : 0);
		text_add(w, pre);
		free(pre);
		free(e.type);
		e.type = xstrdup("multipart/mixed");
		t = e.type;
	}
	if (strncmp(t, "multipart/", 10) == 0) {
		walk_multipart(w, &e, depth, guess);
	} else if (strcmp(t, "message/rfc822") == 0 ||
	    strcmp(t, "message/global") == 0 ||
	    strcmp(t, "text/rfc822-headers") == 0 ||
	    strcmp(t, "message/rfc822-headers") == 0) {
		walk_message(w, &e, depth, strcmp(deftype,
		    "message/rfc822") == 0);
	} else if (strcmp(t, "message/delivery-status") == 0 ||
	    strcmp(t, "message/global-delivery-status") == 0) {
		walk_dsn(w, &e);
	} else if (strcmp(t, "message/disposition-notification") == 0) {
		/* A read receipt: its text part says it for people. */
	} else if (!e.attachment && strncmp(t, "text/", 5) == 0 &&
	    (e.fname == NULL || strcmp(t, "text/plain") == 0 ||
	    strcmp(t, "text/html") == 0)) {
		/* Inline text, in the order it comes. */
		char *s = body_text(&e);
		text_add(w, s);
		free(s);
	} else if (e.attachment || e.fname != NULL ||
	    !blank(e.body, e.blen)) {
		/* Empty unnamed parts (an empty alternative) are nothing
		 * a person could open. */
		list_part(w, e.fname, t, e.body, e.blen, e.cte);
	}
	free(guess);
	entity_clear(&e);
}

void
email_mime_parse(const char *raw, size_t len, const struct email_limits *lim,
    struct email_text *out)
{
	memset(out, 0, sizeof(*out));
	const char *body;
	size_t hlen = header_end(raw, len, &body);

	char *from = header_get(raw, hlen, "From");
	email_mime_parse_from(from, &out->from_addr, &out->from_name);
	free(from);
	char *subj = header_get(raw, hlen, "Subject");
	if (subj != NULL) {
		out->subject = email_mime_header_text(subj, EMAIL_SUBJECT_MAX);
		free(subj);
		if (*out->subject == '\0') {
			free(out->subject);
			out->subject = NULL;
		}
	}
	char *mid = header_get(raw, hlen, "Message-ID");
	out->message_id = email_mime_msgids(mid, 1);
	free(mid);
	char *irt_raw = header_get(raw, hlen, "In-Reply-To");
	char *irt = email_mime_msgids(irt_raw, 1);
	free(irt_raw);
	char *refs_raw = header_get(raw, hlen, "References");
	out->references = email_mime_msgids(refs_raw, EMAIL_REFS_MAX);
	free(refs_raw);
	if (out->references == NULL && irt != NULL)
		out->references = xstrdup(irt);
	out->thread = email_mime_thread_id(out->message_id, irt,
	    out->references);
	free(irt);
	char *date = header_get(raw, hlen, "Date");
	out->date = email_mime_parse_date(date);
	free(date);

	struct walk w = { .lim = lim, .end = raw + len,
	    .truncated = lim->total_size > len };
	ebuf_add(&w.text, "", 0);
	walk_entity(&w, raw, len, 0, "text/plain");
	char *text = ebuf_take(&w.text);

	struct ebuf b = { 0 };
	ebuf_add(&b, "", 0);
	{
		size_t tl = strlen(text);
		size_t full = tl;
		if (lim->text_max > 0 && tl > lim->text_max) {
			size_t k = lim->text_max;
			while (k > 0 && ((unsigned char)text[k] & 0xc0) == 0x80)
				k--;
			text[k] = '\0';
		}
		ebuf_str(&b, text);
		if (strlen(text) < full) {
			char a[32], t[32];
			human_size(a, sizeof(a), strlen(text));
			human_size(t, sizeof(t), full);
			ebuf_fmt(&b, "\n\n[cut: the first %s of %s%s of text "
			    "are shown]", a, w.truncated ? "at least " : "", t);
		}
		free(text);
	}
	if (w.truncated) {
		char a[32], t[32];
		human_size(a, sizeof(a), len);
		human_size(t, sizeof(t), lim->total_size);
		ebuf_fmt(&b, "%s[the mail is %s; only its first %s were "
		    "read]", b.len ? "\n\n" : "", t, a);
	}
	if (w.nattach > 0) {
		ebuf_fmt(&b, "%sAttachments:\n", b.len ? "\n\n" : "");
		ebuf_add(&b, w.attach.p, w.attach.len - 1);
	}
	if (w.skipped > 0)
		ebuf_fmt(&b, "%s[%d more MIME parts were not read: nested "
		    "too deep or too many]", b.len ? "\n\n" : "", w.skipped);
	if (b.len == 0)
		ebuf_str(&b, "(no text)");
	free(w.attach.p);
	char *all = ebuf_take(&b);
	out->body = email_mime_clean_utf8(all, strlen(all), 1);
	free(all);
}

void
email_text_clear(struct email_text *t)
{
	free(t->from_addr);
	free(t->from_name);
	free(t->subject);
	free(t->message_id);
	free(t->references);
	free(t->thread);
	free(t->body);
	memset(t, 0, sizeof(*t));
}
