/*
 * JIDs (RFC 7622): localpart@domainpart/resourcepart.
 *
 * jid_parse() validates lengths (each part 1..1023 bytes), UTF-8, and the
 * characters each part may hold, and folds ASCII letters of the localpart
 * and domainpart to lower case (the PRECIS case mapping for the common
 * case; non-ASCII text is kept as sent).  The parsed parts are copies the
 * struct owns; jid_clear() frees them.
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
/* Deep copy; 0 or -1 for an empty source. */
void jid_copy(struct jid *dst, const struct jid *src);

/* Strings, caller frees. */
char *jid_to_string(const struct jid *j);
char *jid_bare_string(const struct jid *j);

int jid_equal(const struct jid *a, const struct jid *b);
int jid_bare_equal(const struct jid *a, const struct jid *b);

/* XEP-0106.  Escaping returns NULL when the result cannot be a localpart
 * (empty input, leading or trailing space, over JID_PART_MAX, invalid
 * UTF-8).  Unescaping only decodes the ten defined sequences and leaves
 * every other backslash as it is; caller frees. */
char *jid_escape_local(const char *s);
char *jid_unescape_local(const char *s);

#endif
