/*
 * Kannel callback queries: form decoding, the split into parameters
 * with its limit, lookups, and Kannel's two timestamp forms, with the
 * bad input a caller of the callback URL can send.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sms_query.h"
#include "tap.h"

/* Decodes the C string s; the result or NULL on -1 (caller frees). */
static char *
dec(const char *s, size_t *len)
{
	char *out = NULL;
	size_t n = 0;

	if (sms_query_decode(s, strlen(s), &out, &n) != 0)
		return NULL;
	if (len != NULL)
		*len = n;
	return out;
}

static void
test_decode(void)
{
	char *s;
	size_t n;

	CHECK_STR(s = dec("hello+world", NULL), "hello world");
	free(s);
	CHECK_STR(s = dec("%2B1%20555%2f%2F", NULL), "+1 555//");
	free(s);
	CHECK_STR(s = dec("%D0%9F%d0%bf", NULL), "\xd0\x9f\xd0\xbf");
	free(s);
	CHECK_STR(s = dec("", &n), "");
	CHECK(n == 0);
	free(s);
	/* a NUL in the middle is kept, and counted */
	s = dec("a%00b", &n);
	CHECK(s != NULL && n == 3 && memcmp(s, "a\0b", 4) == 0);
	free(s);
	/* '=' and '&' inside a value are plain bytes here */
	CHECK_STR(s = dec("a=b", NULL), "a=b");
	free(s);

	/* bad escapes: cut short, not hex, at the very end */
	CHECK(dec("%", NULL) == NULL);
	CHECK(dec("%4", NULL) == NULL);
	CHECK(dec("abc%4", NULL) == NULL);
	CHECK(dec("%G1", NULL) == NULL);
	CHECK(dec("%1G", NULL) == NULL);
	CHECK(dec("%%41", NULL) == NULL);
	CHECK(dec("%+1", NULL) == NULL);
	CHECK(dec("% 1", NULL) == NULL);
	CHECK(dec("%-1", NULL) == NULL);
	/* the length given is the end, even when a hex digit follows */
	CHECK(sms_query_decode("%41", 2, &s, &n) == -1);
	CHECK(sms_query_decode("%41", 3, &s, &n) == 0 && n == 1 &&
	    strcmp(s, "A") == 0);
	free(s);
}

static void
test_parse_mo(void)
{
	/* an MO as Kannel's get-url "...&text=%a&coding=%c&ts=%t" sends it */
	static const char q[] = "from=%2B15559876543&to=15550001&"
	    "text=hi+alice%21&coding=0&charset=UTF-8&smsc=FAKE&id=x&"
	    "ts=2026-01-02+03:04:05";
	struct sms_query_param p[SMS_QUERY_PARAMS_MAX];
	const struct sms_query_param *t;
	size_t n = 99;
	const char *why = NULL;

	CHECK(sms_query_parse(q, p, SMS_QUERY_PARAMS_MAX, &n, &why) == 0);
	CHECK(n == 8);
	CHECK_STR(sms_query_field(p, n, "from", 64), "+15559876543");
	CHECK_STR(sms_query_field(p, n, "to", 64), "15550001");
	CHECK((t = sms_query_param(p, n, "text")) != NULL && t->len == 9 &&
	    strcmp(t->val, "hi alice!") == 0);
	CHECK(p[2].klen == 4 && memcmp(p[2].key, "text", 4) == 0);
	CHECK(sms_query_time(sms_query_field(p, n, "ts", 64)) ==
	    (time_t)1767323045);
	CHECK(sms_query_param(p, n, "missing") == NULL);
	CHECK(sms_query_param(p, n, "fro") == NULL);
	CHECK(sms_query_param(p, n, "fromm") == NULL);
	CHECK(sms_query_field(p, n, "from", 11) == NULL);   /* too long */
	CHECK_STR(sms_query_field(p, n, "from", 12), "+15559876543");
	sms_query_clear(p, n);
	CHECK(p[0].val == NULL);
}

static void
test_parse_dlr(void)
{
	static const char q[] = "ref=k3f9a0&status=16&answer=NACK%2F0x0000000b"
	    "%2FInvalid+Destination+Address";
	struct sms_query_param p[SMS_QUERY_PARAMS_MAX];
	size_t n = 0;
	const char *why = NULL;

	CHECK(sms_query_parse(q, p, SMS_QUERY_PARAMS_MAX, &n, &why) == 0);
	CHECK(n == 3);
	CHECK_STR(sms_query_field(p, n, "ref", 64), "k3f9a0");
	CHECK_STR(sms_query_field(p, n, "status", 64), "16");
	CHECK_STR(sms_query_field(p, n, "answer", 64),
	    "NACK/0x0000000b/Invalid Destination Address");
	sms_query_clear(p, n);
}

static void
test_parse_shapes(void)
{
	struct sms_query_param p[SMS_QUERY_PARAMS_MAX];
	const struct sms_query_param *f;
	size_t n = 99;
	const char *why = NULL;

	/* no query, an empty one, only separators */
	CHECK(sms_query_parse(NULL, p, SMS_QUERY_PARAMS_MAX, &n, &why) == 0 &&
	    n == 0);
	CHECK(sms_query_parse("", p, SMS_QUERY_PARAMS_MAX, &n, &why) == 0 &&
	    n == 0);
	CHECK(sms_query_parse("&&&", p, SMS_QUERY_PARAMS_MAX, &n, &why) == 0 &&
	    n == 0);

	/* duplicated keys: both kept, the first is the one found; empty
	 * values; a key without '='; a value with '='; an empty key */
	CHECK(sms_query_parse("to=1&to=2&&text=&flag&a=b=c&=x&", p,
	    SMS_QUERY_PARAMS_MAX, &n, &why) == 0);
	CHECK(n == 6);
	CHECK_STR(sms_query_field(p, n, "to", 64), "1");
	CHECK_STR(p[1].val, "2");
	CHECK((f = sms_query_param(p, n, "text")) != NULL && f->len == 0);
	CHECK(sms_query_field(p, n, "text", 64) == NULL);   /* empty */
	CHECK((f = sms_query_param(p, n, "flag")) != NULL && f->len == 0 &&
	    f->klen == 4);
	CHECK_STR(sms_query_field(p, n, "a", 64), "b=c");
	CHECK_STR(sms_query_field(p, n, "", 64), "x");
	sms_query_clear(p, n);

	/* keys are compared as sent: an escaped key is another key */
	CHECK(sms_query_parse("fr%6Fm=1", p, SMS_QUERY_PARAMS_MAX, &n,
	    &why) == 0 && n == 1);
	CHECK(sms_query_param(p, n, "from") == NULL);
	sms_query_clear(p, n);

	/* a NUL in a value: a param, never a field */
	CHECK(sms_query_parse("from=1%002", p, SMS_QUERY_PARAMS_MAX, &n,
	    &why) == 0 && n == 1);
	CHECK((f = sms_query_param(p, n, "from")) != NULL && f->len == 3);
	CHECK(sms_query_field(p, n, "from", 64) == NULL);
	sms_query_clear(p, n);
}

static void
test_parse_bad(void)
{
	struct sms_query_param p[SMS_QUERY_PARAMS_MAX];
	size_t n = 99;
	const char *why = NULL;
	char big[SMS_QUERY_PARAMS_MAX * 4 + 16];
	size_t o = 0;

	/* a bad escape in a later parameter: nothing is left to free */
	CHECK(sms_query_parse("from=1&to=2&text=%zz", p, SMS_QUERY_PARAMS_MAX,
	    &n, &why) == -1);
	CHECK_STR(why, "bad percent-encoding");
	CHECK(n == 0 && p[0].val == NULL && p[1].val == NULL);
	CHECK(sms_query_parse("text=50%", p, SMS_QUERY_PARAMS_MAX, &n,
	    &why) == -1);

	/* exactly the limit, then one more */
	for (size_t i = 0; i < SMS_QUERY_PARAMS_MAX; i++)
		o += (size_t)snprintf(big + o, sizeof(big) - o, "k=%zu&", i % 10);
	CHECK(sms_query_parse(big, p, SMS_QUERY_PARAMS_MAX, &n, &why) == 0 &&
	    n == SMS_QUERY_PARAMS_MAX);
	sms_query_clear(p, n);
	snprintf(big + o, sizeof(big) - o, "x");
	why = NULL;
	CHECK(sms_query_parse(big, p, SMS_QUERY_PARAMS_MAX, &n, &why) == -1);
	CHECK_STR(why, "too many parameters");
	/* a smaller limit is the caller's */
	CHECK(sms_query_parse("a&b&c", p, 2, &n, &why) == -1);
	CHECK(sms_query_parse("a&b", p, 2, &n, &why) == 0 && n == 2);
	sms_query_clear(p, n);
	CHECK(sms_query_parse("a", p, 0, &n, &why) == -1);
	CHECK(sms_query_parse("", p, 0, &n, &why) == 0 && n == 0);
}

static void
test_long_value(void)
{
	size_t len = 3 * 33333;     /* "%41" a 33,333 times */
	char *q = malloc(len + 6);
	struct sms_query_param p[1];
	size_t n = 0;
	const char *why = NULL;

	memcpy(q, "text=", 5);
	for (size_t i = 0; i < len; i += 3)
		memcpy(q + 5 + i, "%41", 3);
	q[5 + len] = '\0';
	CHECK(sms_query_parse(q, p, 1, &n, &why) == 0 && n == 1);
	CHECK(q != NULL && p[0].len == len / 3 &&
	    strspn(p[0].val, "A") == len / 3);
	CHECK(sms_query_field(p, n, "text", 64) == NULL);
	sms_query_clear(p, n);
	free(q);
}

static void
test_time(void)
{
	CHECK(sms_query_time(NULL) == 0);
	CHECK(sms_query_time("") == 0);
	/* %t, UTC */
	CHECK(sms_query_time("2026-01-02 03:04:05") == (time_t)1767323045);
	CHECK(sms_query_time("2026-11-21 10:15:50") == (time_t)1795256150);
	CHECK(sms_query_time("2000-02-29 12:00:00") == (time_t)951825600);
	CHECK(sms_query_time("2024-12-31 23:59:59") == (time_t)1735689599);
	CHECK(sms_query_time("1970-01-01 00:00:01") == 1);
	CHECK(sms_query_time("2099-12-31 23:59:59") == (time_t)4102444799LL);
	/* out of range, impossible dates, other shapes */
	CHECK(sms_query_time("1970-01-01 00:00:00") == 0);
	CHECK(sms_query_time("1969-12-31 23:59:59") == 0);
	CHECK(sms_query_time("2100-01-01 00:00:00") == 0);
	CHECK(sms_query_time("2001-02-29 00:00:00") == 0);
	CHECK(sms_query_time("1900-02-29 00:00:00") == 0);
	CHECK(sms_query_time("2026-04-31 00:00:00") == 0);
	CHECK(sms_query_time("2026-13-01 00:00:00") == 0);
	CHECK(sms_query_time("2026-00-01 00:00:00") == 0);
	CHECK(sms_query_time("2026-01-00 00:00:00") == 0);
	CHECK(sms_query_time("2026-01-01 24:00:00") == 0);
	CHECK(sms_query_time("2026-01-01 00:60:00") == 0);
	CHECK(sms_query_time("2026-01-01 00:00:60") == 0);
	CHECK(sms_query_time("2026-1-2 03:04:05") == 0);
	CHECK(sms_query_time("2026-01-02 03:04:05 ") == 0);
	CHECK(sms_query_time(" 2026-01-02 03:04:0") == 0);
	CHECK(sms_query_time("2026-01-02T03:04:05") == 0);
	CHECK(sms_query_time("2026-01-02 03:04") == 0);
	CHECK(sms_query_time("+026-01-02 03:04:05") == 0);
	/* %T, seconds */
	CHECK(sms_query_time("1767323045") == (time_t)1767323045);
	CHECK(sms_query_time("1") == 1);
	CHECK(sms_query_time("0") == 0);
	CHECK(sms_query_time("4102444799") == (time_t)4102444799LL);
	CHECK(sms_query_time("4102444800") == 0);
	CHECK(sms_query_time("9999999999") == 0);
	CHECK(sms_query_time("17673230450") == 0);
	CHECK(sms_query_time("+1767323045") == 0);
	CHECK(sms_query_time(" 1767323045") == 0);
	CHECK(sms_query_time("-1") == 0);
	CHECK(sms_query_time("1767323045x") == 0);
	CHECK(sms_query_time("0x10") == 0);
}

int
main(void)
{
	RUN(test_decode);
	RUN(test_parse_mo);
	RUN(test_parse_dlr);
	RUN(test_parse_shapes);
	RUN(test_parse_bad);
	RUN(test_long_value);
	RUN(test_time);
	return TAP_DONE();
}
