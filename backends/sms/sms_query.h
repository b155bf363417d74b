/*
 * The query strings of Kannel's callbacks (MO texts and delivery
 * reports) as pure functions: no I/O, unit tested and fuzzed.  A query
 * is "key=value" parameters separated by '&', values in
 * application/x-www-form-urlencoded ('+' is a space, "%XX" a byte).
 * Whoever can reach the callback listener writes these bytes, so every
 * function here is bounded and strict: a bad escape is an error, never
 * guessed at.
 */
#ifndef CAUSEWAY_SMS_QUERY_H
#define CAUSEWAY_SMS_QUERY_H

#include <stddef.h>
#include <time.h>

/* The most parameters a Kannel callback needs (ours use a dozen). */
#define SMS_QUERY_PARAMS_MAX 32
/* sms_query_time() gives nothing from this second on (2100-01-01). */
#define SMS_QUERY_TIME_END 4102444800LL

struct sms_query_param {
	const char *key;        /* into the query, as sent (not decoded),
	                         * klen bytes, not NUL-terminated */
	size_t klen;
	char *val;              /* decoded, NUL-terminated, owned */
	size_t len;             /* decoded length (the value may hold NULs) */
};

/*
 * Decodes n bytes of a form value: '+' becomes a space, '%' must be
 * followed by two hex digits (either case) and becomes that byte, every
 * other byte stays.  0 with *out (caller frees; NUL-terminated, at most
 * n bytes before the NUL) and *outlen, or -1 on a bad escape (nothing
 * to free).
 */
int sms_query_decode(const char *s, size_t n, char **out, size_t *outlen);

/*
 * Splits the NUL-terminated query q (NULL: no query) at '&' and decodes
 * each value into p[0..*np).  Empty pieces ("a=1&&b=2", a trailing '&')
 * are skipped; a piece without '=' is a key with an empty value; the
 * key is everything before the first '='.  More than max parameters or
 * a bad escape: -1 with a static reason in *why and nothing to free.
 * On 0, free the values with sms_query_clear(p, *np).
 */
int sms_query_parse(const char *q, struct sms_query_param *p, size_t max,
    size_t *np, const char **why);
void sms_query_clear(struct sms_query_param *p, size_t n);

/* The first parameter whose key (as sent, compared bytewise) is key,
 * borrowed; NULL if none. */
const struct sms_query_param *sms_query_param(
    const struct sms_query_param *p, size_t n, const char *key);

/* A short field (a number, a ref, a status): the first key's value if
 * it is 1..maxlen bytes without NUL, borrowed; NULL otherwise. */
const char *sms_query_field(const struct sms_query_param *p, size_t n,
    const char *key, size_t maxlen);

/*
 * Kannel's timestamp: "%t" ("2026-11-21 10:15:50", UTC) or "%T" (seconds
 * since the epoch).  The time, always in 1 .. SMS_QUERY_TIME_END - 1;
 * 0 when s is NULL or not understood.
 */
time_t sms_query_time(const char *s);

#endif
