/*
 * Outgoing mail (see email_compose.h).  Nothing from the caller is put
 * into a header without passing one of: email_mime_addr_valid()
 * (addresses), email_mime_msgids() (msg-ids: printable ASCII without
 * blanks, in angle brackets) or email_compose_encode() (text: one line,
 * controls removed, encoded words where needed).
 */
#include "autoconf.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/rand.h>

#include "email_buf.h"
#include "email_compose.h"
#include "email_mime.h"
#include "xmalloc.h"

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void
b64_encode(struct ebuf *b, const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		ebuf_ch(b, b64[(v >> 18) & 63]);
		ebuf_ch(b, b64[(v >> 12) & 63]);
		ebuf_ch(b, i + 1 < n ? b64[(v >> 6) & 63] : '=');
		ebuf_ch(b, i + 2 < n ? b64[v & 63] : '=');
	}
}

static int
is_atext(unsigned char c)
{
	return isalnum(c) || strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

char *
email_compose_encode(const char *utf8, int phrase)
{
	char *line = email_mime_clean_utf8(utf8, strlen(utf8), 0);
	size_t n = strlen(line);
	int ascii = 1, atoms = 1;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)line[i];
		if (c >= 0x7f)
			ascii = 0;
		else if (c != ' ' && !is_atext(c))
			atoms = 0;
	}
	struct ebuf b = { 0 };
	ebuf_add(&b, "", 0);
	if (ascii && n <= 70 && strstr(line, "=?") == NULL) {
		if (!phrase || atoms) {
			ebuf_str(&b, line);
		} else {
			ebuf_ch(&b, '"');
			for (size_t i = 0; i < n; i++) {
				if (line[i] == '"' || line[i] == '\\')
					ebuf_ch(&b, '\\');
				ebuf_ch(&b, line[i]);
			}
			ebuf_ch(&b, '"');
		}
		free(line);
		return ebuf_take(&b);
	}
	/* Encoded words of at most 45 bytes of text each (60 of base64:
	 * 72 characters with the wrapping), cut on character boundaries,
	 * one per folded line. */
	size_t i = 0;
	while (i < n) {
		size_t k = n - i > 45 ? 45 : n - i;
		while (k > 0 && i + k < n &&
		    ((unsigned char)line[i + k] & 0xc0) == 0x80)
			k--;
		if (k == 0)
			k = 1;
		if (b.len > 0)
			ebuf_str(&b, "\r\n ");
		ebuf_str(&b, "=?UTF-8?B?");
		b64_encode(&b, (const unsigned char *)line + i, k);
		ebuf_str(&b, "?=");
		i += k;
	}
	free(line);
	return ebuf_take(&b);
}

char *
email_compose_reply_subject(const char *subject)
{
	char *s = email_mime_clean_utf8(subject ? subject : "",
	    strlen(subject ? subject : ""), 0);
	char *t = s;
	while (*t == ' ')
		t++;
	char *r;
	if (strncasecmp(t, "re:", 3) == 0 || strncasecmp(t, "aw:", 3) == 0 ||
	    strncasecmp(t, "sv:", 3) == 0)
		r = xstrdup(t);
	else
		r = xasprintf("Re: %s", t);
	free(s);
	return r;
}

char *
email_compose_message_id(const char *domain)
{
	unsigned char rnd[12];
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		log_fatal("email: no random bytes for a Message-ID");
	char hex[sizeof(rnd) * 2 + 1];
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
	return xasprintf("<%s.%lld@%s>", hex, (long long)time(NULL), domain);
}

static void
date_header(struct ebuf *b, time_t t)
{
	static const char *days[] = { "Sun", "Mon", "Tue", "Wed", "Thu",
	    "Fri", "Sat" };
	static const char *months[] = { "Jan", "Feb", "Mar", "Apr", "May",
	    "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm tm;
	gmtime_r(&t, &tm);
	ebuf_fmt(b, "Date: %s, %d %s %d %02d:%02d:%02d +0000\r\n",
	    days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
	    tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* msg-ids, one per folded line. */
static void
ids_header(struct ebuf *b, const char *name, const char *ids)
{
	ebuf_fmt(b, "%s:", name);
	const char *p = ids;
	while (*p != '\0') {
		size_t l = strcspn(p, " ");
		if (l > 0) {
			ebuf_str(b, p == ids ? " " : "\r\n ");
			ebuf_add(b, p, l);
		}
		p += l;
		p += strspn(p, " ");
	}
	ebuf_str(b, "\r\n");
}

/* The body as quoted-printable (RFC 2045 6.7), lines at most 76. */
static void
qp_body(struct ebuf *b, const char *text)
{
	size_t col = 0;
	for (const char *p = text; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '\n') {
			ebuf_str(b, "\r\n");
			col = 0;
			continue;
		}
		int blank_at_eol = (c == ' ' || c == '\t') &&
		    (p[1] == '\n' || p[1] == '\0');
		/* A dot at a line start is encoded, so no SMTP server ever
		 * sees a line that could end the data. */
		int enc = c == '=' || c >= 0x7f || (c < 0x20 && c != '\t') ||
		    blank_at_eol || (c == '.' && col == 0);
		size_t w = enc ? 3 : 1;
		if (col + w > 75) {
			ebuf_str(b, "=\r\n");
			col = 0;
		}
		if (enc)
			ebuf_fmt(b, "=%02X", c);
		else
			ebuf_ch(b, (char)c);
		col += w;
	}
	ebuf_str(b, "\r\n");
}

char *
email_compose(const struct email_draft *d, char **message_id,
    const char **err)
{
	*message_id = NULL;
	if (d->from_addr == NULL || !email_mime_addr_valid(d->from_addr)) {
		*err = "the registered address is not a valid address";
		return NULL;
	}
	if (d->to_addr == NULL || !email_mime_addr_valid(d->to_addr)) {
		*err = "not a valid address";
		return NULL;
	}
	struct ebuf b = { 0 };
	ebuf_add(&b, "", 0);
	if (d->from_name != NULL && *d->from_name != '\0') {
		char *n = email_compose_encode(d->from_name, 1);
		ebuf_fmt(&b, "From: %s <%s>\r\n", n, d->from_addr);
		free(n);
	} else {
		ebuf_fmt(&b, "From: <%s>\r\n", d->from_addr);
	}
	ebuf_fmt(&b, "To: <%s>\r\n", d->to_addr);
	if (d->subject != NULL && *d->subject != '\0') {
		char *s = email_compose_encode(d->subject, 0);
		ebuf_fmt(&b, "Subject: %s\r\n", s);
		free(s);
	}
	date_header(&b, d->date ? d->date : time(NULL));
	char *mid = NULL;
	if (d->message_id != NULL)
		mid = email_mime_msgids(d->message_id, 1);
	if (mid == NULL)
		mid = email_compose_message_id(strrchr(d->from_addr, '@') + 1);
	ebuf_fmt(&b, "Message-ID: %s\r\n", mid);
	char *irt = email_mime_msgids(d->in_reply_to, 1);
	if (irt != NULL)
		ids_header(&b, "In-Reply-To", irt);
	/* References: the parent's, then the parent (RFC 5322 3.6.4). */
	char *refs = email_mime_msgids(d->references, EMAIL_REFS_MAX);
	if (refs != NULL || irt != NULL) {
		char *all = xasprintf("%s%s%s", refs ? refs : "",
		    refs && irt ? " " : "", irt ? irt : "");
		char *cut = email_mime_msgids(all, EMAIL_REFS_MAX);
		ids_header(&b, "References", cut);
		free(cut);
		free(all);
	}
	free(irt);
	free(refs);
	ebuf_str(&b, "MIME-Version: 1.0\r\n");
	ebuf_str(&b, "Content-Type: text/plain; charset=utf-8\r\n");

	char *text = email_mime_clean_utf8(d->body, strlen(d->body), 1);
	int plain = 1;
	size_t col = 0;
	for (const char *p = text; *p && plain; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '\n') {
			col = 0;
			continue;
		}
		if (c >= 0x7f || (c == '.' && col == 0) || ++col > 76 ||
		    ((c == ' ' || c == '\t') && (p[1] == '\n' || !p[1])))
			plain = 0;
	}
	if (plain) {
		ebuf_str(&b, "Content-Transfer-Encoding: 7bit\r\n\r\n");
		for (const char *p = text; *p; p++) {
			if (*p == '\n')
				ebuf_str(&b, "\r\n");
			else
				ebuf_ch(&b, *p);
		}
		ebuf_str(&b, "\r\n");
	} else {
		ebuf_str(&b, "Content-Transfer-Encoding: quoted-printable\r\n"
		    "\r\n");
		qp_body(&b, text);
	}
	free(text);
	*message_id = mid;
	return ebuf_take(&b);
}
