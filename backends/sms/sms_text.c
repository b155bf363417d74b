/*
 * SMS as text.  Three independent parts share only the UTF-8 helpers:
 *
 *   numbers:  typed text -> digits and a shape ("+", "00", trunk prefix,
 *             short) -> "+CC..." or a short code; the ITU country code
 *             lengths also drive display and the country_code check.
 *   outgoing: UTF-8 -> code points -> GSM cost (1, 2 or "not GSM") ->
 *             coding -> a greedy cut into parts that never splits an
 *             escape pair or a surrogate pair.
 *   incoming: bytes in one of four charsets -> code points -> the same
 *             emitter, which is where XML-unsafe characters are caught.
 *
 * The GSM 03.38 tables below are the one source for both directions, so
 * what sms_plan() calls GSM is exactly what sms_decode() can produce.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sms_text.h"
#include "xmalloc.h"

#define REPLACEMENT 0xfffdu
#define GSM_ESC 0x1b

/* ---- UTF-8 ---- */

/*
 * Decodes the well-formed sequence at s (n > 0 bytes available) into
 * *cp and returns its length, or 0 when the bytes are not one (Unicode
 * table 3-7: no overlong forms, no surrogates, nothing above U+10FFFF).
 */
static size_t
utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
	unsigned char c = s[0];

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c < 0xc2)
		return 0;
	if (c < 0xe0) {
		if (n < 2 || (s[1] & 0xc0) != 0x80)
			return 0;
		*cp = ((uint32_t)(c & 0x1f) << 6) | (s[1] & 0x3f);
		return 2;
	}
	if (c < 0xf0) {
		if (n < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
			return 0;
		if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] >= 0xa0))
			return 0;
		*cp = ((uint32_t)(c & 0x0f) << 12) |
		    ((uint32_t)(s[1] & 0x3f) << 6) | (s[2] & 0x3f);
		return 3;
	}
	if (c < 0xf5) {
		if (n < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 ||
		    (s[3] & 0xc0) != 0x80)
			return 0;
		if ((c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] >= 0x90))
			return 0;
		*cp = ((uint32_t)(c & 0x07) << 18) |
		    ((uint32_t)(s[1] & 0x3f) << 12) |
		    ((uint32_t)(s[2] & 0x3f) << 6) | (s[3] & 0x3f);
		return 4;
	}
	return 0;
}

/* Appends cp (a scalar value) to d; returns the bytes written. */
static size_t
utf8_encode(uint32_t cp, char *d)
{
	if (cp < 0x80) {
		d[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		d[0] = (char)(0xc0 | (cp >> 6));
		d[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		d[0] = (char)(0xe0 | (cp >> 12));
		d[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		d[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	d[0] = (char)(0xf0 | (cp >> 18));
	d[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	d[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	d[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/*
 * Every decoder ends here, so this is the one place that decides what an
 * XMPP body may hold: NUL goes (padding), and what XML 1.0 cannot carry
 * becomes U+FFFD rather than vanishing, so the reader sees that
 * something was there.
 */
static size_t
emit(uint32_t cp, char *d)
{
	if (cp == 0)
		return 0;
	if ((cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') ||
	    cp == 0xfffe || cp == 0xffff || (cp >= 0xd800 && cp <= 0xdfff) ||
	    cp > 0x10ffff)
		cp = REPLACEMENT;
	return utf8_encode(cp, d);
}

/* ---- GSM 03.38 (3GPP TS 23.038 section 6.2.1) ---- */

/*
 * The default alphabet by septet.  0x1B is the escape to the extension
 * table and has no character of its own (0 here).  0x09 is the capital
 * C with cedilla as the current specification draws it.
 */
static const uint16_t gsm_default[128] = {
	0x0040, 0x00a3, 0x0024, 0x00a5, 0x00e8, 0x00e9, 0x00f9, 0x00ec,
	0x00f2, 0x00c7, 0x000a, 0x00d8, 0x00f8, 0x000d, 0x00c5, 0x00e5,
	0x0394, 0x005f, 0x03a6, 0x0393, 0x039b, 0x03a9, 0x03a0, 0x03a8,
	0x03a3, 0x0398, 0x039e, 0x0000, 0x00c6, 0x00e6, 0x00df, 0x00c9,
	0x0020, 0x0021, 0x0022, 0x0023, 0x00a4, 0x0025, 0x0026, 0x0027,
	0x0028, 0x0029, 0x002a, 0x002b, 0x002c, 0x002d, 0x002e, 0x002f,
	0x0030, 0x0031, 0x0032, 0x0033, 0x0034, 0x0035, 0x0036, 0x0037,
	0x0038, 0x0039, 0x003a, 0x003b, 0x003c, 0x003d, 0x003e, 0x003f,
	0x00a1, 0x0041, 0x0042, 0x0043, 0x0044, 0x0045, 0x0046, 0x0047,
	0x0048, 0x0049, 0x004a, 0x004b, 0x004c, 0x004d, 0x004e, 0x004f,
	0x0050, 0x0051, 0x0052, 0x0053, 0x0054, 0x0055, 0x0056, 0x0057,
	0x0058, 0x0059, 0x005a, 0x00c4, 0x00d6, 0x00d1, 0x00dc, 0x00a7,
	0x00bf, 0x0061, 0x0062, 0x0063, 0x0064, 0x0065, 0x0066, 0x0067,
	0x0068, 0x0069, 0x006a, 0x006b, 0x006c, 0x006d, 0x006e, 0x006f,
	0x0070, 0x0071, 0x0072, 0x0073, 0x0074, 0x0075, 0x0076, 0x0077,
	0x0078, 0x0079, 0x007a, 0x00e4, 0x00f6, 0x00f1, 0x00fc, 0x00e0,
};

/* The extension table: ESC then the septet. */
static const struct {
	unsigned char septet;
	uint16_t cp;
} gsm_extension[] = {
	{ 0x0a, 0x000c },       /* FORM FEED (page break) */
	{ 0x14, 0x005e },       /* ^ */
	{ 0x28, 0x007b },       /* { */
	{ 0x29, 0x007d },       /* } */
	{ 0x2f, 0x005c },       /* \ */
	{ 0x3c, 0x005b },       /* [ */
	{ 0x3d, 0x007e },       /* ~ */
	{ 0x3e, 0x005d },       /* ] */
	{ 0x40, 0x007c },       /* | */
	{ 0x65, 0x20ac },       /* EURO SIGN */
};

/*
 * The GSM encoding of cp: a septet (< 0x80), ESC << 8 | septet for the
 * extension table, or -1 when GSM-7 cannot carry it.  Letters, digits
 * and most ASCII punctuation are their own septet, which the first test
 * finds without a search; the rest (a few dozen code points) is a scan
 * of 138 entries, cheaper than keeping a second, reverse table in step.
 */
static int
gsm_lookup(uint32_t cp)
{
	size_t i;

	if (cp < 0x80 && cp != GSM_ESC && gsm_default[cp] == cp)
		return (int)cp;
	for (i = 0; i < 128; i++)
		if (gsm_default[i] == cp && i != GSM_ESC)
			return (int)i;
	for (i = 0; i < sizeof(gsm_extension) / sizeof(gsm_extension[0]); i++)
		if (gsm_extension[i].cp == cp)
			return GSM_ESC << 8 | gsm_extension[i].septet;
	return -1;
}

/* Septets for cp: 1, 2 (extension) or 0 (not GSM). */
static unsigned
gsm_cost(uint32_t cp)
{
	int g = gsm_lookup(cp);

	if (g < 0)
		return 0;
	return g > 0x7f ? 2 : 1;
}

static unsigned
utf16_cost(uint32_t cp)
{
	return cp >= 0x10000 ? 2 : 1;
}

/* ---- phone numbers ---- */

/*
 * How many digits the country code at the start of digits takes, from
 * the ITU-T E.164 assignments: 1 (NANP) and 7 are one digit; a fixed set
 * of two-digit codes; everything else three.  0 when digits start with 0
 * (no country code does).
 */
static size_t
cc_length(const char *digits)
{
	static const char two[] =
	    "20 27 30 31 32 33 34 36 39 40 41 43 44 45 46 47 48 49 "
	    "51 52 53 54 55 56 57 58 60 61 62 63 64 65 66 81 82 84 86 "
	    "90 91 92 93 94 95 98 ";

	if (digits[0] == '0' || digits[0] == '\0')
		return 0;
	if (digits[0] == '1' || digits[0] == '7')
		return 1;
	if (digits[1] == '\0')
		return 3;
	for (const char *p = two; *p != '\0'; p += 3)
		if (p[0] == digits[0] && p[1] == digits[1])
			return 2;
	return 3;
}

/* The national trunk prefix dropped in front of national numbers. */
static const char *
trunk_prefix(unsigned cc)
{
	switch (cc) {
	case 1:
		return "1";     /* NANP: "1 555 123 4567" */
	case 7:
		return "8";     /* Russia, Kazakhstan: "8 912 ..." */
	case 36:
		return "06";    /* Hungary */
	case 39:
	case 378:
		return "";      /* Italy, San Marino: the 0 is the number's */
	default:
		return "0";
	}
}

static int
valid_cc(unsigned cc)
{
	char buf[12];

	if (cc < 1 || cc > 999)
		return 0;
	snprintf(buf, sizeof(buf), "%u", cc);
	return cc_length(buf) == strlen(buf);
}

static int
fail(const char **reason, const char *why)
{
	if (reason != NULL)
		*reason = why;
	return -1;
}

int
sms_country_code_parse(const char *s, unsigned *out, const char **reason)
{
	unsigned v = 0;
	size_t n = 0;

	if (s == NULL)
		return fail(reason, "no country code");
	while (*s == ' ' || *s == '\t')
		s++;
	if (*s == '+')
		s++;
	if (*s == '0')
		return fail(reason, "a country code does not start with 0");
	for (; *s >= '0' && *s <= '9'; s++) {
		if (++n > 3)
			return fail(reason, "a country code has 1 to 3 digits");
		v = v * 10 + (unsigned)(*s - '0');
	}
	while (*s == ' ' || *s == '\t')
		s++;
	if (*s != '\0' || n == 0)
		return fail(reason, "a country code is 1 to 3 digits");
	if (!valid_cc(v))
		return fail(reason, "no such country code");
	*out = v;
	return 0;
}

static int
is_separator(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '-' || c == '.' || c == '/' ||
	    c == '(' || c == ')';
}

/*
 * Spaces and dashes outside ASCII that copying a number from a web page
 * or a word processor brings along: NO-BREAK SPACE, THIN SPACE, NARROW
 * NO-BREAK SPACE, the dashes U+2010..U+2015 and MINUS SIGN.
 */
static int
is_unicode_separator(uint32_t cp)
{
	return cp == 0x00a0 || cp == 0x2009 || cp == 0x202f ||
	    (cp >= 0x2010 && cp <= 0x2015) || cp == 0x2212;
}

/*
 * 1 when the digits so far are an international prefix and a whole
 * country code: the point where "+44 (0)20" has its "(0)".
 */
static int
after_country_code(char *digits, size_t nd, int plus)
{
	size_t skip = plus ? 0 : 2;

	if (!plus && (nd < 2 || digits[0] != '0' || digits[1] != '0'))
		return 0;
	if (nd <= skip)
		return 0;
	digits[nd] = '\0';
	return cc_length(digits + skip) == nd - skip;
}

int
sms_number_normalize(const char *in, size_t len, unsigned country_code,
    char out[SMS_NUMBER_SIZE], enum sms_number_kind *kind,
    const char **reason)
{
	/* Room for any digit count up to the input limit, so "too many"
	 * is decided after counting, with the count in hand. */
	char digits[SMS_NUMBER_INPUT_MAX + 1];
	const unsigned char *p, *end;
	size_t nd = 0, skip, total;
	int plus = 0, international;
	char ccbuf[12];

	out[0] = '\0';
	if (len > SMS_NUMBER_INPUT_MAX)
		return fail(reason, "too long for a phone number");
	if (in == NULL || len == 0)
		return fail(reason, "no phone number");
	p = (const unsigned char *)in;
	end = p + len;
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	if (p == end)
		return fail(reason, "no phone number");
	if (*p == '+') {
		plus = 1;
		p++;
	}
	for (; p < end; p++) {
		unsigned char c = *p;
		uint32_t cp;
		size_t k;

		if (c >= '0' && c <= '9') {
			digits[nd++] = (char)c;
		} else if (c == '(' && end - p >= 3 && p[1] == '0' &&
		    p[2] == ')' && after_country_code(digits, nd, plus)) {
			/* "+44 (0)20 ...": the trunk 0 a national caller
			 * would dial, never part of the E.164 number. */
			p += 2;
		} else if (is_separator(c)) {
			continue;
		} else if (c < 0x20 || c == 0x7f) {
			return fail(reason,
			    "control characters are not allowed in a phone "
			    "number");
		} else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
			return fail(reason,
			    "letters are not allowed in a phone number");
		} else if (c == '+') {
			return fail(reason,
			    "'+' may only start a phone number, once");
		} else if (c >= 0x80 &&
		    (k = utf8_decode(p, (size_t)(end - p), &cp)) != 0 &&
		    is_unicode_separator(cp)) {
			p += k - 1;
		} else {
			return fail(reason,
			    "a phone number holds digits, spaces, '-', '.', "
			    "'/', '(', ')' and a leading '+'");
		}
	}
	digits[nd] = '\0';
	if (nd == 0)
		return fail(reason, "no digits in the phone number");

	international = plus || (nd >= 2 && digits[0] == '0' &&
	    digits[1] == '0');
	if (international) {
		skip = plus ? 0 : 2;
		total = nd - skip;
		if (total == 0)
			return fail(reason, "no digits in the phone number");
		if (digits[skip] == '0')
			return fail(reason,
			    "a country code does not start with 0");
		if (total > SMS_E164_DIGITS_MAX)
			return fail(reason,
			    "a phone number has at most 15 digits after the "
			    "country code's '+'");
		if (total < SMS_E164_DIGITS_MIN)
			return fail(reason,
			    "too few digits for an international phone number");
		out[0] = '+';
		memcpy(out + 1, digits + skip, total + 1);
		if (kind != NULL)
			*kind = SMS_NUMBER_E164;
		return 0;
	}

	if (nd < SMS_SHORTCODE_MIN)
		return fail(reason, "too few digits for a phone number");
	if (nd <= SMS_SHORTCODE_MAX) {
		memcpy(out, digits, nd + 1);
		if (kind != NULL)
			*kind = SMS_NUMBER_SHORTCODE;
		return 0;
	}
	if (nd > SMS_E164_DIGITS_MAX + 2)
		/* Even a trunk prefix and a one-digit country code leave
		 * too many: say so before asking for a country code. */
		return fail(reason,
		    "a phone number has at most 15 digits");
	if (country_code == 0 || !valid_cc(country_code))
		return fail(reason,
		    "a national number needs a country code: write it with "
		    "'+' and the country code");

	const char *trunk = trunk_prefix(country_code);
	size_t tl = strlen(trunk);
	skip = 0;
	if (tl > 0 && strncmp(digits, trunk, tl) == 0)
		skip = tl;
	if (digits[skip] == '0' && tl > 0)
		/* Where the trunk prefix is not "0", a leading 0 is no
		 * national number (a NANP area code starts with 2..9). */
		return fail(reason,
		    "not a national number here: write it with '+' and the "
		    "country code");
	snprintf(ccbuf, sizeof(ccbuf), "%u", country_code);
	total = strlen(ccbuf) + nd - skip;
	if (nd - skip == 0 || total < SMS_E164_DIGITS_MIN)
		return fail(reason, "too few digits for a phone number");
	if (total > SMS_E164_DIGITS_MAX)
		return fail(reason,
		    "a phone number has at most 15 digits with its country "
		    "code");
	out[0] = '+';
	memcpy(out + 1, ccbuf, strlen(ccbuf));
	memcpy(out + 1 + strlen(ccbuf), digits + skip, nd - skip + 1);
	if (kind != NULL)
		*kind = SMS_NUMBER_E164;
	return 0;
}

int
sms_number_display(const char *number, char out[SMS_NUMBER_DISPLAY_SIZE])
{
	size_t n, i, ccl;
	const char *d;

	out[0] = '\0';
	if (number == NULL)
		return -1;
	d = number[0] == '+' ? number + 1 : number;
	n = strlen(d);
	for (i = 0; i < n; i++)
		if (d[i] < '0' || d[i] > '9')
			return -1;
	if (number[0] != '+') {
		if (n < SMS_SHORTCODE_MIN || n > SMS_SHORTCODE_MAX)
			return -1;
		memcpy(out, d, n + 1);
		return 0;
	}
	if (n < SMS_E164_DIGITS_MIN || n > SMS_E164_DIGITS_MAX)
		return -1;
	ccl = cc_length(d);
	if (ccl == 0)
		return -1;
	if (ccl == 1 && d[0] == '1' && n == 11) {
		snprintf(out, SMS_NUMBER_DISPLAY_SIZE, "+1 %.3s %.3s %.4s",
		    d + 1, d + 4, d + 7);
		return 0;
	}
	snprintf(out, SMS_NUMBER_DISPLAY_SIZE, "+%.*s %s", (int)ccl, d,
	    d + ccl);
	return 0;
}

/* ---- outgoing text ---- */

/*
 * Walks text once: 0 and the coding, code points and units when it is
 * well-formed UTF-8 without NUL, else -1 with the reason.
 */
static int
scan(const char *text, size_t len, enum sms_coding *coding, size_t *chars,
    size_t *units, const char **reason)
{
	const unsigned char *p = (const unsigned char *)text;
	const unsigned char *end = p + len;
	size_t septets = 0, u16 = 0, n = 0;
	int gsm = 1;

	while (p < end) {
		uint32_t cp;
		size_t k = utf8_decode(p, (size_t)(end - p), &cp);
		if (k == 0)
			return fail(reason, "the text is not valid UTF-8");
		if (cp == 0)
			return fail(reason, "the text holds a NUL character");
		if (gsm) {
			unsigned c = gsm_cost(cp);
			if (c == 0)
				gsm = 0;
			septets += c;
		}
		u16 += utf16_cost(cp);
		n++;
		p += k;
	}
	*coding = gsm ? SMS_CODING_GSM7 : SMS_CODING_UCS2;
	*chars = n;
	*units = gsm ? septets : u16;
	return 0;
}

int
sms_plan(const char *text, size_t len, struct sms_plan *out,
    const char **reason)
{
	const unsigned char *base = (const unsigned char *)text;
	size_t single, per, cap, pos, start, cur;

	memset(out, 0, sizeof(*out));
	if (text == NULL && len > 0)
		return fail(reason, "no text");
	if (text == NULL)
		text = "";
	if (scan(text, len, &out->coding, &out->chars, &out->units,
	    reason) != 0)
		return -1;
	single = out->coding == SMS_CODING_GSM7 ? SMS_GSM7_SINGLE :
	    SMS_UCS2_SINGLE;
	per = out->coding == SMS_CODING_GSM7 ? SMS_GSM7_PART : SMS_UCS2_PART;

	if (out->units <= single) {
		out->parts = xcalloc(1, sizeof(*out->parts));
		out->parts[0].start = 0;
		out->parts[0].end = len;
		out->parts[0].units = out->units;
		out->nparts = 1;
		return 0;
	}

	/* A first guess that is right unless escape pairs or surrogate
	 * pairs push parts short; grown as needed. */
	cap = out->units / per + 2;
	out->parts = xreallocarray(NULL, cap, sizeof(*out->parts));
	pos = start = cur = 0;
	while (pos < len) {
		uint32_t cp;
		size_t k = utf8_decode(base + pos, len - pos, &cp);
		unsigned c = out->coding == SMS_CODING_GSM7 ? gsm_cost(cp) :
		    utf16_cost(cp);
		if (cur + c > per) {
			if (out->nparts == cap) {
				cap *= 2;
				out->parts = xreallocarray(out->parts, cap,
				    sizeof(*out->parts));
			}
			out->parts[out->nparts].start = start;
			out->parts[out->nparts].end = pos;
			out->parts[out->nparts].units = cur;
			out->nparts++;
			start = pos;
			cur = 0;
		}
		cur += c;
		pos += k;
	}
	if (out->nparts == cap)
		out->parts = xreallocarray(out->parts, cap + 1,
		    sizeof(*out->parts));
	out->parts[out->nparts].start = start;
	out->parts[out->nparts].end = len;
	out->parts[out->nparts].units = cur;
	out->nparts++;
	return 0;
}

void
sms_plan_clear(struct sms_plan *p)
{
	free(p->parts);
	memset(p, 0, sizeof(*p));
}

int
sms_plan_check(const struct sms_plan *p, unsigned max_parts,
    char err[SMS_ERROR_SIZE])
{
	if (max_parts < 1)
		max_parts = 1;
	if (max_parts > SMS_PARTS_MAX)
		max_parts = SMS_PARTS_MAX;
	if (p->nparts <= max_parts) {
		if (err != NULL)
			err[0] = '\0';
		return 0;
	}
	if (err != NULL)
		snprintf(err, SMS_ERROR_SIZE,
		    "this message needs %zu SMS; the limit is %u", p->nparts,
		    max_parts);
	return -1;
}

int
sms_gsm7_encode(const char *text, size_t len, unsigned char **out,
    size_t *outlen)
{
	const unsigned char *p, *end;
	unsigned char *buf, *d;

	*out = NULL;
	*outlen = 0;
	if (text == NULL && len > 0)
		return -1;
	if (text == NULL)
		text = "";
	p = (const unsigned char *)text;
	end = p + len;
	/* At most two septets per UTF-8 byte ('{' -> ESC '('). */
	buf = d = xmalloc(2 * len + 1);
	while (p < end) {
		uint32_t cp;
		size_t k = utf8_decode(p, (size_t)(end - p), &cp);
		int g;
		if (k == 0 || cp == 0 || (g = gsm_lookup(cp)) < 0) {
			free(buf);
			return -1;
		}
		if (g > 0x7f)
			*d++ = GSM_ESC;
		*d++ = (unsigned char)(g & 0x7f);
		p += k;
	}
	*out = buf;
	*outlen = (size_t)(d - buf);
	return 0;
}

int
sms_ucs2_encode(const char *text, size_t len, unsigned char **out,
    size_t *outlen)
{
	const unsigned char *p, *end;
	unsigned char *buf, *d;

	*out = NULL;
	*outlen = 0;
	if (text == NULL && len > 0)
		return -1;
	if (text == NULL)
		text = "";
	p = (const unsigned char *)text;
	end = p + len;
	/* At most two bytes per UTF-8 byte (ASCII); a 4-byte sequence
	 * becomes a 4-byte surrogate pair. */
	buf = d = xmalloc(2 * len + 1);
	while (p < end) {
		uint32_t cp;
		size_t k = utf8_decode(p, (size_t)(end - p), &cp);
		if (k == 0 || cp == 0) {
			free(buf);
			return -1;
		}
		if (cp >= 0x10000) {
			uint32_t v = cp - 0x10000;
			uint32_t hi = 0xd800 | (v >> 10), lo = 0xdc00 | (v & 0x3ff);
			*d++ = (unsigned char)(hi >> 8);
			*d++ = (unsigned char)(hi & 0xff);
			*d++ = (unsigned char)(lo >> 8);
			*d++ = (unsigned char)(lo & 0xff);
		} else {
			*d++ = (unsigned char)(cp >> 8);
			*d++ = (unsigned char)(cp & 0xff);
		}
		p += k;
	}
	*out = buf;
	*outlen = (size_t)(d - buf);
	return 0;
}

/* ---- incoming text ---- */

int
sms_charset_parse(const char *name, enum sms_charset *out)
{
	static const struct {
		const char *name;
		enum sms_charset cs;
	} names[] = {
		{ "UTF-8", SMS_CHARSET_UTF8 },
		{ "UTF8", SMS_CHARSET_UTF8 },
		{ "UTF-16BE", SMS_CHARSET_UCS2 },
		{ "UTF-16", SMS_CHARSET_UCS2 },
		{ "UCS-2", SMS_CHARSET_UCS2 },
		{ "UCS2", SMS_CHARSET_UCS2 },
		{ "UCS-2BE", SMS_CHARSET_UCS2 },
		{ "GSM", SMS_CHARSET_GSM7 },
		{ "GSM7", SMS_CHARSET_GSM7 },
		{ "GSM0338", SMS_CHARSET_GSM7 },
		{ "ISO-8859-1", SMS_CHARSET_LATIN1 },
		{ "ISO8859-1", SMS_CHARSET_LATIN1 },
		{ "ISO_8859-1", SMS_CHARSET_LATIN1 },
		{ "LATIN1", SMS_CHARSET_LATIN1 },
		{ "ISO", SMS_CHARSET_LATIN1 },
	};

	if (name == NULL)
		return -1;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(name, names[i].name) == 0) {
			*out = names[i].cs;
			return 0;
		}
	return -1;
}

static size_t
decode_utf8(const unsigned char *p, size_t len, char *d)
{
	const unsigned char *end = p + len;
	char *start = d;

	while (p < end) {
		uint32_t cp;
		size_t k = utf8_decode(p, (size_t)(end - p), &cp);
		if (k == 0) {
			/* One byte at a time, so a bad byte never swallows
			 * the good characters after it. */
			cp = REPLACEMENT;
			k = 1;
		}
		d += emit(cp, d);
		p += k;
	}
	return (size_t)(d - start);
}

static size_t
decode_ucs2(const unsigned char *p, size_t len, char *d)
{
	char *start = d;
	size_t i = 0;

	if (len >= 2 && p[0] == 0xfe && p[1] == 0xff)
		i = 2;
	for (; i + 1 < len; i += 2) {
		uint32_t u = (uint32_t)p[i] << 8 | p[i + 1];
		if (u >= 0xd800 && u <= 0xdbff && i + 3 < len) {
			uint32_t lo = (uint32_t)p[i + 2] << 8 | p[i + 3];
			if (lo >= 0xdc00 && lo <= 0xdfff) {
				u = 0x10000 + ((u - 0xd800) << 10) +
				    (lo - 0xdc00);
				i += 2;
			}
		}
		/* A surrogate still standing here is a lone one: emit()
		 * turns it into U+FFFD. */
		d += emit(u, d);
	}
	if (i < len)
		d += emit(REPLACEMENT, d);
	return (size_t)(d - start);
}

static size_t
decode_gsm7(const unsigned char *p, size_t len, char *d)
{
	char *start = d;

	for (size_t i = 0; i < len; i++) {
		uint32_t cp;
		if (p[i] > 0x7f) {
			cp = REPLACEMENT;
		} else if (p[i] != GSM_ESC) {
			cp = gsm_default[p[i]];
		} else if (i + 1 == len || p[i + 1] == GSM_ESC) {
			/* ESC ESC is reserved for a further table; with
			 * nothing defined, a space shows where it was. */
			cp = ' ';
		} else if (p[i + 1] > 0x7f) {
			cp = REPLACEMENT;
			i++;
		} else {
			unsigned char s = p[++i];
			/* TS 23.038: an unknown extension code shows the
			 * default table's character. */
			cp = gsm_default[s];
			for (size_t j = 0; j < sizeof(gsm_extension) /
			    sizeof(gsm_extension[0]); j++)
				if (gsm_extension[j].septet == s)
					cp = gsm_extension[j].cp;
			if (cp == 0x0c)
				cp = '\n';
		}
		d += emit(cp, d);
	}
	return (size_t)(d - start);
}

static size_t
decode_latin1(const unsigned char *p, size_t len, char *d)
{
	char *start = d;

	for (size_t i = 0; i < len; i++)
		d += emit(p[i], d);
	return (size_t)(d - start);
}

char *
sms_decode(enum sms_charset cs, const void *bytes, size_t len)
{
	const unsigned char *p = bytes;
	char *buf;
	size_t n;

	if (p == NULL) {
		p = (const unsigned char *)"";
		len = 0;
	}
	/* 3 bytes out per byte in bounds every charset (U+FFFD for each
	 * bad byte is the worst case); the check keeps the product from
	 * wrapping on absurd lengths. */
	if (len > (SIZE_MAX - 1) / 3)
		log_fatal("sms_decode: %zu bytes is too long", len);
	buf = xmalloc(3 * len + 1);
	switch (cs) {
	case SMS_CHARSET_UCS2:
		n = decode_ucs2(p, len, buf);
		break;
	case SMS_CHARSET_GSM7:
		n = decode_gsm7(p, len, buf);
		break;
	case SMS_CHARSET_LATIN1:
		n = decode_latin1(p, len, buf);
		break;
	case SMS_CHARSET_UTF8:
	default:
		n = decode_utf8(p, len, buf);
		break;
	}
	buf[n] = '\0';
	return buf;
}
