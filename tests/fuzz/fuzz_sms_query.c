/*
 * libFuzzer harness for Kannel callback queries.
 *
 * The input is a query string as it follows '?' in a callback's URL
 * (the first byte, when it is a control byte below 0x20, sets the
 * parameter limit, so that real queries can be seeds as they are).  It
 * goes through every function of sms_query.h, and each answer is
 * checked against models written here apart from the code under test:
 *   - sms_query_decode of the raw bytes (NULs included) agrees with a
 *     reference decoder, and what it gives, escaped again, decodes back;
 *   - sms_query_parse agrees with a reference split (same pieces, keys,
 *     values, count, limit), its keys point into the query, its values
 *     are NUL-terminated at their length;
 *   - lookups find the first of a key, fields obey their length limit;
 *   - sms_query_time of the input and of every value is 0 or a time in
 *     range that libc's gmtime gives back as the same text.
 * Inputs are copied to buffers of their exact size, so ASan sees any
 * read past the end.  Anything wrong aborts.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sms_query.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void die(const char *, const char *) __attribute__((noreturn));

static void
die(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_sms_query: %s: %.200s\n", what,
	    detail != NULL ? detail : "(null)");
	abort();
}

/* The reference decoder: a byte table instead of arithmetic; -1 on an
 * escape that is not '%' and two hex digits inside the n bytes. */
static int
ref_decode(const char *s, size_t n, char *out, size_t *outlen)
{
	static const char hex[] = "0123456789abcdef0123456789ABCDEF";
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] != '%') {
			out[k++] = s[i] == '+' ? ' ' : s[i];
			continue;
		}
		if (i + 2 >= n || s[i + 1] == '\0' || s[i + 2] == '\0')
			return -1;
		const char *a = strchr(hex, s[i + 1]);
		const char *b = strchr(hex, s[i + 2]);
		if (a == NULL || b == NULL)
			return -1;
		out[k++] = (char)(((a - hex) % 16) * 16 + (b - hex) % 16);
		i += 2;
	}
	*outlen = k;
	return 0;
}

static void
check_decode(const char *s, size_t n)
{
	char *got = NULL, *want = malloc(n + 1), *esc, *again = NULL;
	size_t glen = 99, wlen = 0, alen = 0;
	int r = sms_query_decode(s, n, &got, &glen);
	int w;

	if (want == NULL)
		abort();
	w = ref_decode(s, n, want, &wlen);
	if (r != w)
		die("decode accepts or refuses wrongly", NULL);
	if (r != 0) {
		free(want);
		return;
	}
	if (glen != wlen || memcmp(got, want, wlen) != 0 || got[glen] != '\0')
		die("decoded bytes", NULL);
	if (glen > n)
		die("decoded longer than the input", NULL);
	/* escaped again ('+' for space, %XX for anything else but
	 * letters and digits), it decodes back */
	esc = malloc(3 * glen + 1);
	if (esc == NULL)
		abort();
	size_t e = 0;
	for (size_t i = 0; i < glen; i++) {
		unsigned char ch = (unsigned char)got[i];
		if (ch == ' ')
			esc[e++] = '+';
		else if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9'))
			esc[e++] = (char)ch;
		else
			e += (size_t)snprintf(esc + e, 4, "%%%02X", ch);
	}
	if (sms_query_decode(esc, e, &again, &alen) != 0 || alen != glen ||
	    memcmp(again, got, glen) != 0)
		die("escaped value does not decode back", NULL);
	free(again);
	free(esc);
	free(want);
	free(got);
}

static void
check_time(const char *s)
{
	time_t t = sms_query_time(s);
	char back[64];
	struct tm tm;
	size_t n;

	if (s == NULL) {
		if (t != 0)
			die("time of NULL", NULL);
		return;
	}
	n = strlen(s);
	if (t == 0) {
		/* not refused when libc reads it the same way back */
		if (n == 19) {
			memset(&tm, 0, sizeof(tm));
			const char *e = strptime(s, "%Y-%m-%d %H:%M:%S", &tm);
			if (e == NULL || *e != '\0')
				return;
			time_t u = timegm(&tm);
			struct tm g;
			if (u > 0 && u < (time_t)SMS_QUERY_TIME_END &&
			    gmtime_r(&u, &g) != NULL && strftime(back,
			    sizeof(back), "%Y-%m-%d %H:%M:%S", &g) > 0 &&
			    strcmp(back, s) == 0)
				die("a good %t refused", s);
		} else if (n >= 1 && n <= 10 && strspn(s, "0123456789") == n) {
			long long v = strtoll(s, NULL, 10);
			if (v > 0 && v < SMS_QUERY_TIME_END)
				die("a good %T refused", s);
		}
		return;
	}
	if (t < 1 || (long long)t >= SMS_QUERY_TIME_END)
		die("time out of range", s);
	if (n == 19) {
		if (gmtime_r(&t, &tm) == NULL || strftime(back, sizeof(back),
		    "%Y-%m-%d %H:%M:%S", &tm) == 0 || strcmp(back, s) != 0)
			die("%t does not read back", s);
	} else {
		if (n > 10 || strspn(s, "0123456789") != n ||
		    strtoll(s, NULL, 10) != (long long)t)
			die("%T does not read back", s);
	}
}

/* The reference split of the query q of qlen bytes (no NUL inside). */
struct piece {
	size_t at, klen, vat, vlen;
};

static size_t
ref_split(const char *q, size_t qlen, struct piece *pc)
{
	size_t n = 0, start = 0;

	for (size_t i = 0; i <= qlen; i++) {
		if (i < qlen && q[i] != '&')
			continue;
		if (i > start) {
			const char *eq = memchr(q + start, '=', i - start);
			pc[n].at = start;
			pc[n].klen = eq != NULL ? (size_t)(eq - q) - start :
			    i - start;
			pc[n].vat = eq != NULL ? (size_t)(eq - q) + 1 : i;
			pc[n].vlen = i - pc[n].vat;
			n++;
		}
		start = i + 1;
	}
	return n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct sms_query_param p[SMS_QUERY_PARAMS_MAX + 1];
	static const char *const keys[] = { "from", "to", "text", "coding",
	    "charset", "ts", "ref", "status", "answer", "", "a" };
	size_t max = SMS_QUERY_PARAMS_MAX, n = 999, qlen, np;
	const char *why = NULL;
	struct piece *pc;
	char *raw, *q, *tmp;
	int r, bad = 0;

	/* the raw bytes, exactly size of them, NULs and all */
	raw = malloc(size ? size : 1);
	if (raw == NULL)
		abort();
	memcpy(raw, data, size);
	check_decode(raw, size);

	if (size > 0 && data[0] < 0x20) {
		max = data[0] % (SMS_QUERY_PARAMS_MAX + 2);
		data++;
		size--;
	}
	/* the query as the URL gives it: a string, up to a NUL */
	qlen = strnlen((const char *)data, size);
	q = malloc(qlen + 1);
	pc = malloc((qlen / 1 + 1) * sizeof(*pc));
	tmp = malloc(qlen + 1);
	if (q == NULL || pc == NULL || tmp == NULL)
		abort();
	memcpy(q, data, qlen);
	q[qlen] = '\0';

	np = ref_split(q, qlen, pc);
	/* the code decodes piece after piece: a bad escape before the
	 * limit is met is that, else more than max is too many */
	for (size_t i = 0; i < np && i < max; i++) {
		size_t tl;
		if (ref_decode(q + pc[i].vat, pc[i].vlen, tmp, &tl) != 0)
			bad = 1;
	}
	r = sms_query_parse(q, p, max, &n, &why);
	if (r == -1) {
		if (why == NULL || *why == '\0' || n != 0)
			die("refusal", why);
		if (!bad && np <= max)
			die("a good query refused", why);
		if (strcmp(why, bad ? "bad percent-encoding" :
		    "too many parameters") != 0)
			die("refused for the wrong reason", why);
	} else {
		if (r != 0 || bad || np > max)
			die("a bad query taken", NULL);
		if (n != np)
			die("parameter count", NULL);
		for (size_t i = 0; i < n; i++) {
			size_t tl;
			if (p[i].key != q + pc[i].at || p[i].klen != pc[i].klen)
				die("key", NULL);
			if (p[i].key + p[i].klen > q + qlen)
				die("key past the query", NULL);
			if (ref_decode(q + pc[i].vat, pc[i].vlen, tmp, &tl) != 0 ||
			    p[i].len != tl || memcmp(p[i].val, tmp, tl) != 0 ||
			    p[i].val[tl] != '\0')
				die("value", p[i].val);
			if (memchr(p[i].val, '\0', p[i].len) == NULL)
				check_time(p[i].val);
		}
		for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
			const struct sms_query_param *f =
			    sms_query_param(p, n, keys[k]);
			size_t kl = strlen(keys[k]), first = n;
			for (size_t i = 0; i < n; i++)
				if (p[i].klen == kl &&
				    memcmp(p[i].key, keys[k], kl) == 0) {
					first = i;
					break;
				}
			if (first == n ? f != NULL : f != &p[first])
				die("lookup", keys[k]);
			for (size_t lim = 0; lim < 80; lim += 16) {
				const char *v = sms_query_field(p, n, keys[k],
				    lim);
				int ok = f != NULL && f->len >= 1 &&
				    f->len <= lim &&
				    memchr(f->val, '\0', f->len) == NULL;
				if (ok ? v != f->val : v != NULL)
					die("field", keys[k]);
			}
		}
		sms_query_clear(p, n);
		for (size_t i = 0; i < n; i++)
			if (p[i].val != NULL)
				die("clear", NULL);
	}
	check_time(q);
	check_time(NULL);
	free(tmp);
	free(pc);
	free(q);
	free(raw);
	return 0;
}
