/*
 * JIDs (RFC 7622): localpart@domainpart/resourcepart.
 *
 * The resource is everything after the first '/' (it may hold '@' and
 * '/'); the localpart is what precedes the first '@' before that.
 * jid_parse() validates lengths (each part 1..1023 bytes), UTF-8, and the
 * characters each part may hold (no controls anywhere; a domainpart is a
 * hostname or an [IPv6] literal, its trailing dot stripped), and folds
 * ASCII letters of the localpart and domainpart to lower case (the
 * PRECIS case mapping for the common case; non-ASCII text is kept as
 * sent).  The parsed parts are copies the struct owns; jid_clear() frees
 * them.
 *
 * XEP-0106 escaping turns an arbitrary legacy address into a valid
 * localpart ("alice@example.net" -> "alice\40example.net") and back.
 */
#ifndef CAUSEWAY_JID_H
#define CAUSEWAY_JID_H

#define JID_PART_MAX 1023

struct jid {
	char *local;    /* NULL when absent */
	char *domain;   /* never NULL after a successful parse */
	char *resource; /* NULL when absent */
};

/* 0 and *out filled, or -1 (out untouched) when s is not a valid JID. */
int jid_parse(const char *s, struct jid *out);
void jid_clear(struct jid *j);
/* Fill out from parts (each copied; local/resource may be NULL) after
 * validating them as jid_parse would; 0 or -1. */
int jid_make(struct jid *out, const char *local, const char *domain,
    const char *resource);
/* Deep copy of every part into dst, whose old contents are not freed
 * (jid_clear() it first if it held a JID).  A cleared source gives a
 * cleared dst. */
void jid_copy(struct jid *dst, const struct jid *src);

/* Strings, caller frees.  A cleared JID gives "". */
char *jid_to_string(const struct jid *j);
char *jid_bare_string(const struct jid *j);

/* 1 when equal: all parts (jid_equal), local and domain (jid_bare_equal);
 * byte comparison of the folded parts, an absent part equals only an
 * absent one. */
int jid_equal(const struct jid *a, const struct jid *b);
int jid_bare_equal(const struct jid *a, const struct jid *b);

/* XEP-0106.  Escaping returns NULL when the result cannot be a localpart
 * (empty input, leading or trailing space, over JID_PART_MAX, invalid
 * UTF-8, control characters).  A backslash is escaped to \5c only where
 * it starts one of the ten codes (in either case, so the result survives
 * lower-casing); elsewhere it stays literal.  Unescaping only decodes the
 * ten defined lower-case sequences and leaves every other backslash as it
 * is; jid_unescape_local(jid_escape_local(s)) == s.  Caller frees. */
char *jid_escape_local(const char *s);
char *jid_unescape_local(const char *s);

#endif
