/*
 * JIDs (RFC 7622) and XEP-0106 escaping.
 *
 * A JID is split before anything is checked: the resource is everything
 * after the first '/', so a resource may hold '@' and '/'; the localpart
 * is what comes before the first '@' in front of that '/'.  Each part is
 * then validated on its own and copied, ASCII letters of the localpart and
 * domainpart folded to lower case.  This is not full PRECIS: non-ASCII
 * text is only checked to be well-formed UTF-8 without control characters
 * and is kept as sent, which is what the servers we talk to accept.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "jid.h"
#include "xmalloc.h"

/* The characters RFC 7622 forbids in a localpart, which XEP-0106 escapes. */
static const char local_forbidden[] = " \"&'/:<>@";

/*
 * XEP-0106 escapes: the nine characters above and the backslash itself.
 * Codes are lower case on the wire ("CASE IS SIGNIFICANT" in the XEP).
 */
static const struct {
	char c;
	char code[3];
} escapes[] = {
	{ ' ', "20" }, { '"', "22" }, { '&', "26" }, { '\'', "27" },
	{ '/', "2f" }, { ':', "3a" }, { '<', "3c" }, { '>', "3e" },
	{ '@', "40" }, { '\\', "5c" },
};
#define NESCAPES (sizeof(escapes) / sizeof(escapes[0]))

enum part {
	PART_LOCAL,
	PART_DOMAIN,
	PART_RESOURCE,
};

/*
 * Length of the UTF-8 sequence at s (n bytes available) with its code
 * point in *cp, or 0 when it is not well-formed.  Overlong forms,
 * surrogates and code points past U+10FFFF are rejected (RFC 3629): each
 * would let two different byte strings name the same address.
 */
static size_t
utf8_next(const unsigned char *s, size_t n, unsigned long *cp)
{
	unsigned char c = s[0];
	size_t len;
	unsigned long min;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		min = 0x80;
		*cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		min = 0x800;
		*cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		min = 0x10000;
		*cp = c & 0x07;
	} else {
		/* Continuation byte, C0/C1 (always overlong) or F5..FF. */
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		*cp = (*cp << 6) | (s[i] & 0x3f);
	}
	if (*cp < min || *cp > 0x10ffff || (*cp >= 0xd800 && *cp <= 0xdfff))
		return 0;
	return len;
}

/*
 * Control characters are refused in every part: C0, DEL and the C1 range
 * (U+0080..U+009F, PRECIS class Cc), which terminals and logs interpret.
 */
static int
is_control(unsigned long cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
}

/* Well-formed UTF-8 without controls; for local, none of local_forbidden. */
static int
check_text(const char *s, size_t len, enum part part)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < len) {
		unsigned long cp;
		size_t n = utf8_next(p + i, len - i, &cp);
		if (n == 0 || is_control(cp))
			return -1;
		if (part == PART_LOCAL && cp < 0x80 &&
		    strchr(local_forbidden, (int)cp) != NULL)
			return -1;
		i += n;
	}
	return 0;
}

/* "[IPv6]": RFC 7622 3.2 allows an IP-literal; IPv4 is written bare. */
static int
check_ip_literal(const char *s, size_t len)
{
	char addr[INET6_ADDRSTRLEN];
	struct in6_addr in6;

	if (len < 3 || s[len - 1] != ']' || len - 2 >= sizeof(addr))
		return -1;
	memcpy(addr, s + 1, len - 2);
	addr[len - 2] = '\0';
	return inet_pton(AF_INET6, addr, &in6) == 1 ? 0 : -1;
}

/*
 * A hostname: labels of letters, digits and '-' (or non-ASCII text, an
 * internationalized label as sent), 1..63 bytes, separated by single
 * dots.  The trailing dot has already been stripped.  Hyphen placement
 * is not checked: component domains need not be resolvable names.
 */
static int
check_domain(const char *s, size_t len)
{
	size_t label = 0;

	if (s[0] == '[')
		return check_ip_literal(s, len);
	if (check_text(s, len, PART_DOMAIN) == -1)
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.') {
			if (label == 0)
				return -1;
			label = 0;
			continue;
		}
		if (c < 0x80 && !(c == '-' || (c >= '0' && c <= '9') ||
		    (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
			return -1;
		if (++label > 63)
			return -1;
	}
	return label == 0 ? -1 : 0;
}

static char *
copy_folded(const char *s, size_t len)
{
	char *p = xstrndup(s, len);
	for (char *q = p; *q != '\0'; q++) {
		if (*q >= 'A' && *q <= 'Z')
			*q = (char)(*q - 'A' + 'a');
	}
	return p;
}

/*
 * Validate the parts (local and resource may be NULL: absent) and fill
 * out only when all are good, so a failed parse leaves out untouched.
 */
static int
jid_build(struct jid *out, const char *local, size_t llen,
    const char *domain, size_t dlen, const char *resource, size_t rlen)
{
	/* RFC 7622 3.2: a trailing dot is stripped before anything else. */
	if (dlen > 0 && domain[dlen - 1] == '.')
		dlen--;
	if (dlen == 0 || dlen > JID_PART_MAX ||
	    check_domain(domain, dlen) == -1)
		return -1;
	if (local != NULL && (llen == 0 || llen > JID_PART_MAX ||
	    check_text(local, llen, PART_LOCAL) == -1))
		return -1;
	if (resource != NULL && (rlen == 0 || rlen > JID_PART_MAX ||
	    check_text(resource, rlen, PART_RESOURCE) == -1))
		return -1;

	out->local = local != NULL ? copy_folded(local, llen) : NULL;
	out->domain = copy_folded(domain, dlen);
	out->resource = resource != NULL ? xstrndup(resource, rlen) : NULL;
	return 0;
}

int
jid_parse(const char *s, struct jid *out)
{
	if (s == NULL)
		return -1;

	const char *slash = strchr(s, '/');
	size_t bare_len = slash != NULL ? (size_t)(slash - s) : strlen(s);
	const char *at = memchr(s, '@', bare_len);
	const char *local = NULL, *domain = s, *resource = NULL;
	size_t llen = 0, dlen = bare_len, rlen = 0;

	if (at != NULL) {
		local = s;
		llen = (size_t)(at - s);
		domain = at + 1;
		dlen = bare_len - llen - 1;
	}
	if (slash != NULL) {
		resource = slash + 1;
		rlen = strlen(resource);
	}
	return jid_build(out, local, llen, domain, dlen, resource, rlen);
}

void
jid_clear(struct jid *j)
{
	free(j->local);
	free(j->domain);
	free(j->resource);
	j->local = j->domain = j->resource = NULL;
}

int
jid_make(struct jid *out, const char *local, const char *domain,
    const char *resource)
{
	if (domain == NULL)
		return -1;
	return jid_build(out, local, local != NULL ? strlen(local) : 0,
	    domain, strlen(domain), resource,
	    resource != NULL ? strlen(resource) : 0);
}

void
jid_copy(struct jid *dst, const struct jid *src)
{
	dst->local = src->local != NULL ? xstrdup(src->local) : NULL;
	dst->domain = src->domain != NULL ? xstrdup(src->domain) : NULL;
	dst->resource = src->resource != NULL ? xstrdup(src->resource) : NULL;
}

char *
jid_to_string(const struct jid *j)
{
	if (j->domain == NULL)
		return xstrdup("");
	return xasprintf("%s%s%s%s%s", j->local ? j->local : "",
	    j->local ? "@" : "", j->domain, j->resource ? "/" : "",
	    j->resource ? j->resource : "");
}

char *
jid_bare_string(const struct jid *j)
{
	if (j->domain == NULL)
		return xstrdup("");
	return xasprintf("%s%s%s", j->local ? j->local : "",
	    j->local ? "@" : "", j->domain);
}

/* NULL (absent) equals only NULL; parts are compared after folding. */
static int
part_equal(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

int
jid_equal(const struct jid *a, const struct jid *b)
{
	return jid_bare_equal(a, b) && part_equal(a->resource, b->resource);
}

int
jid_bare_equal(const struct jid *a, const struct jid *b)
{
	return part_equal(a->local, b->local) &&
	    part_equal(a->domain, b->domain);
}

/*
 * The character an escape code at p stands for, or -1.  With any_case,
 * "\2F" counts as well: the escaper protects such a backslash too, so an
 * escaped localpart still unescapes to the (folded) original after
 * jid_make() has lower-cased it to "\2f".
 */
static int
escape_at(const char *p, int any_case)
{
	if (p[0] == '\0' || p[1] == '\0')
		return -1;
	for (size_t i = 0; i < NESCAPES; i++) {
		const char *code = escapes[i].code;
		char c1 = p[1];
		if (any_case && c1 >= 'A' && c1 <= 'F')
			c1 = (char)(c1 - 'A' + 'a');
		if (p[0] == code[0] && c1 == code[1])
			return (unsigned char)escapes[i].c;
	}
	return -1;
}

char *
jid_escape_local(const char *s)
{
	if (s == NULL || s[0] == '\0')
		return NULL;
	size_t len = strlen(s);
	/* XEP-0106: "\20" may not start or end an escaped localpart. */
	if (s[0] == ' ' || s[len - 1] == ' ')
		return NULL;
	/* Controls and broken UTF-8 cannot be escaped into a localpart. */
	if (len > JID_PART_MAX || check_text(s, len, PART_RESOURCE) == -1)
		return NULL;

	char *out = xmalloc(3 * len + 1);
	size_t n = 0;
	for (const char *p = s; *p != '\0'; p++) {
		const char *hit = strchr(local_forbidden, *p);
		/*
		 * A backslash is escaped only when it would otherwise read as
		 * an escape; everywhere else it stays literal (XEP-0106 4.3),
		 * so "c:\net" keeps its backslash as written.
		 */
		if (hit != NULL || (*p == '\\' && escape_at(p + 1, 1) != -1)) {
			for (size_t i = 0; i < NESCAPES; i++) {
				if (escapes[i].c == *p) {
					out[n++] = '\\';
					out[n++] = escapes[i].code[0];
					out[n++] = escapes[i].code[1];
					break;
				}
			}
		} else {
			out[n++] = *p;
		}
	}
	out[n] = '\0';
	if (n > JID_PART_MAX) {
		free(out);
		return NULL;
	}
	return out;
}

char *
jid_unescape_local(const char *s)
{
	if (s == NULL)
		return NULL;
	char *out = xmalloc(strlen(s) + 1);
	size_t n = 0;
	for (const char *p = s; *p != '\0'; p++) {
		int c;
		if (*p == '\\' && (c = escape_at(p + 1, 0)) != -1) {
			out[n++] = (char)c;
			p += 2;
		} else {
			out[n++] = *p;
		}
	}
	out[n] = '\0';
	return out;
}
