/*
 * Kannel callback query strings (see sms_query.h).
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sms_query.h"
#include "xmalloc.h"

static int
hexval(unsigned char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

int
sms_query_decode(const char *s, size_t n, char **out, size_t *outlen)
{
	char *o = xmalloc(n + 1);
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%') {
			int hi, lo;

			/* both digits inside the n bytes */
			if (n - i < 3 ||
			    (hi = hexval((unsigned char)s[i + 1])) < 0 ||
			    (lo = hexval((unsigned char)s[i + 2])) < 0) {
				free(o);
				return -1;
			}
			o[k++] = (char)(hi << 4 | lo);
			i += 2;
		} else
			o[k++] = s[i] == '+' ? ' ' : s[i];
	}
	o[k] = '\0';
	*out = o;
	*outlen = k;
	return 0;
}

void
sms_query_clear(struct sms_query_param *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(p[i].val);
		p[i].val = NULL;
	}
}

int
sms_query_parse(const char *q, struct sms_query_param *p, size_t max,
    size_t *np, const char **why)
{
	size_t n = 0;

	while (q != NULL && *q != '\0') {
		const char *amp = strchr(q, '&');
		size_t len = amp != NULL ? (size_t)(amp - q) : strlen(q);

		if (len > 0) {
			const char *eq = memchr(q, '=', len);
			const char *v = eq != NULL ? eq + 1 : q + len;

			if (n == max) {
				*why = "too many parameters";
				goto fail;
			}
			p[n].key = q;
			p[n].klen = eq != NULL ? (size_t)(eq - q) : len;
			if (sms_query_decode(v, (size_t)(q + len - v),
			    &p[n].val, &p[n].len) != 0) {
				*why = "bad percent-encoding";
				goto fail;
			}
			n++;
		}
		q = amp != NULL ? amp + 1 : NULL;
	}
	*np = n;
	return 0;
fail:
	sms_query_clear(p, n);
	*np = 0;
	return -1;
}

const struct sms_query_param *
sms_query_param(const struct sms_query_param *p, size_t n, const char *key)
{
	size_t kl = strlen(key);

	for (size_t i = 0; i < n; i++)
		if (p[i].klen == kl && memcmp(p[i].key, key, kl) == 0)
			return &p[i];
	return NULL;
}

const char *
sms_query_field(const struct sms_query_param *p, size_t n, const char *key,
    size_t maxlen)
{
	const struct sms_query_param *f = sms_query_param(p, n, key);

	if (f == NULL || f->len == 0 || f->len > maxlen ||
	    memchr(f->val, '\0', f->len) != NULL)
		return NULL;
	return f->val;
}

/* Exactly k decimal digits at s into *v; 0 or -1. */
static int
digits(const char *s, int k, long long *v)
{
	*v = 0;
	for (int i = 0; i < k; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		*v = *v * 10 + (s[i] - '0');
	}
	return 0;
}

/* Days from 1970-01-01 to y-m-d of the proleptic Gregorian calendar. */
static long long
days_from_civil(long long y, int m, int d)
{
	static const int before[12] = { 0, 31, 59, 90, 120, 151, 181, 212,
	    243, 273, 304, 334 };
	long long yy = y - 1;
	/* leap days from 1970 to the year y: those of the years 1..y-1
	 * less the 477 of the years 1..1969 (y >= 1970 here) */
	long long leaps = yy / 4 - yy / 100 + yy / 400 - 477;
	long long days = (y - 1970) * 365 + leaps + before[m - 1] + d - 1;

	if (m > 2 && (y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
		days++;
	return days;
}

time_t
sms_query_time(const char *s)
{
	static const int mdays[12] = { 31, 29, 31, 30, 31, 30, 31, 31, 30,
	    31, 30, 31 };
	long long y, mo, d, h, mi, se, t;
	size_t n;

	if (s == NULL)
		return 0;
	n = strlen(s);
	/* "YYYY-MM-DD HH:MM:SS": the only shape Kannel's %t has */
	if (n == 19 && s[4] == '-' && s[7] == '-' && s[10] == ' ' &&
	    s[13] == ':' && s[16] == ':') {
		if (digits(s, 4, &y) != 0 || digits(s + 5, 2, &mo) != 0 ||
		    digits(s + 8, 2, &d) != 0 || digits(s + 11, 2, &h) != 0 ||
		    digits(s + 14, 2, &mi) != 0 || digits(s + 17, 2, &se) != 0)
			return 0;
		if (y < 1970 || mo < 1 || mo > 12 || d < 1 ||
		    d > mdays[mo - 1] || h > 23 || mi > 59 || se > 59)
			return 0;
		if (mo == 2 && d == 29 &&
		    !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
			return 0;
		t = days_from_civil(y, (int)mo, (int)d) * 86400 + h * 3600 +
		    mi * 60 + se;
	} else {
		/* "%T": 1..10 digits, nothing else */
		if (n == 0 || n > 10 || digits(s, (int)n, &t) != 0)
			return 0;
	}
	return t > 0 && t < SMS_QUERY_TIME_END ? (time_t)t : 0;
}
