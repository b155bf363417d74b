/*
 * libFuzzer harness for SMS text.
 *
 * The input, after its first byte, goes through every function of
 * sms_text.h: as a typed phone number (a number that normalises must
 * have the documented shape, display and normalise back to itself), as
 * an outgoing text (a plan exists exactly when the bytes are UTF-8
 * without NUL, checked by a validator written apart; parts are in order,
 * non-empty, start on character boundaries, cover the input, stay within
 * 153/67 units and add up; GSM-7 and UCS-2 encodings agree with the plan
 * and decode back), and as incoming bytes in every charset (valid UTF-8,
 * no NUL, nothing XML 1.0 forbids).  The first byte picks the country
 * code and the parts limit.  Anything wrong aborts.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sms_text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const unsigned country_codes[] = { 0, 1, 7, 36, 39, 44, 49, 353 };

static void
die(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_sms_text: %s: %s\n", what,
	    detail != NULL ? detail : "(null)");
	abort();
}

/*
 * Strict UTF-8 over n bytes, written apart from the code under test:
 * 1 when valid, and the number of code points and UTF-16 units in
 * *chars / *u16.  no_nul: a NUL byte counts as invalid.
 */
static int
valid_utf8(const unsigned char *p, size_t n, int no_nul, size_t *chars,
    size_t *u16)
{
	size_t i = 0, c = 0, u = 0;

	while (i < n) {
		uint32_t cp;
		size_t k;
		if (p[i] < 0x80) {
			if (p[i] == 0 && no_nul)
				return 0;
			i++;
			c++;
			u++;
			continue;
		} else if ((p[i] & 0xe0) == 0xc0) {
			cp = p[i] & 0x1f;
			k = 1;
		} else if ((p[i] & 0xf0) == 0xe0) {
			cp = p[i] & 0x0f;
			k = 2;
		} else if ((p[i] & 0xf8) == 0xf0) {
			cp = p[i] & 0x07;
			k = 3;
		} else {
			return 0;
		}
		if (i + k >= n)
			return 0;
		for (size_t j = 1; j <= k; j++) {
			if ((p[i + j] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (p[i + j] & 0x3f);
		}
		if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) ||
		    (k == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += k + 1;
		c++;
		u += cp >= 0x10000 ? 2 : 1;
	}
	if (chars != NULL)
		*chars = c;
	if (u16 != NULL)
		*u16 = u;
	return 1;
}

/* What an XMPP body may hold: valid UTF-8, no NUL, no C0 control but
 * TAB LF CR, no U+FFFE / U+FFFF. */
static void
check_xml_text(const char *s, const char *what)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);

	if (!valid_utf8(p, n, 1, NULL, NULL))
		die(what, "not UTF-8");
	for (size_t i = 0; i < n; i++) {
		if (p[i] < 0x20 && p[i] != '\t' && p[i] != '\n' && p[i] != '\r')
			die(what, "control character");
		if (i + 2 < n && p[i] == 0xef && p[i + 1] == 0xbf &&
		    (p[i + 2] == 0xbe || p[i + 2] == 0xbf))
			die(what, "U+FFFE or U+FFFF");
	}
}

static void
check_number(const char *data, size_t size, unsigned cc)
{
	char out[SMS_NUMBER_SIZE], again[SMS_NUMBER_SIZE];
	char disp[SMS_NUMBER_DISPLAY_SIZE];
	enum sms_number_kind kind;
	const char *why = NULL;
	size_t n;

	if (sms_number_normalize(data, size, cc, out, &kind, &why) != 0) {
		if (why == NULL || *why == '\0' || out[0] != '\0')
			die("refusal without reason", out);
		return;
	}
	n = strlen(out);
	if (kind == SMS_NUMBER_E164) {
		if (out[0] != '+' || n - 1 < SMS_E164_DIGITS_MIN ||
		    n - 1 > SMS_E164_DIGITS_MAX || out[1] == '0' ||
		    strspn(out + 1, "0123456789") != n - 1)
			die("bad E.164 number", out);
	} else {
		if (n < SMS_SHORTCODE_MIN || n > SMS_SHORTCODE_MAX ||
		    strspn(out, "0123456789") != n)
			die("bad short code", out);
	}
	/* normalised numbers are fixed points, display goes back */
	if (sms_number_normalize(out, n, cc, again, NULL, NULL) != 0 ||
	    strcmp(out, again) != 0)
		die("normalised number does not normalise to itself", out);
	if (sms_number_display(out, disp) != 0)
		die("display refused", out);
	if (sms_number_normalize(disp, strlen(disp), 0, again, NULL,
	    NULL) != 0 || strcmp(out, again) != 0)
		die("display does not normalise back", disp);
}

static void
check_plan(const char *data, size_t size, unsigned max_parts)
{
	const unsigned char *u = (const unsigned char *)data;
	struct sms_plan p;
	const char *why = NULL;
	char err[SMS_ERROR_SIZE];
	size_t chars = 0, u16 = 0, at = 0, sum = 0, single, per;
	int valid = valid_utf8(u, size, 1, &chars, &u16);

	if (sms_plan(data, size, &p, &why) != 0) {
		if (valid)
			die("valid text refused", why);
		if (why == NULL || p.parts != NULL || p.nparts != 0)
			die("refusal", why);
		return;
	}
	if (!valid)
		die("invalid text planned", NULL);
	if (p.chars != chars)
		die("character count", NULL);
	if (p.coding == SMS_CODING_UCS2 && p.units != u16)
		die("UTF-16 unit count", NULL);
	if (p.coding == SMS_CODING_GSM7 &&
	    (p.units < chars || p.units > 2 * chars))
		die("septet count", NULL);
	single = p.coding == SMS_CODING_GSM7 ? SMS_GSM7_SINGLE : SMS_UCS2_SINGLE;
	per = p.coding == SMS_CODING_GSM7 ? SMS_GSM7_PART : SMS_UCS2_PART;
	if (p.nparts == 0 || p.parts == NULL)
		die("no parts", NULL);
	if ((p.units <= single) != (p.nparts == 1))
		die("single or concatenated", NULL);
	for (size_t i = 0; i < p.nparts; i++) {
		const struct sms_part *pt = &p.parts[i];
		if (pt->start != at || pt->end < pt->start ||
		    (pt->end == pt->start && size != 0) || pt->end > size)
			die("part boundaries", NULL);
		if (pt->start < size && (u[pt->start] & 0xc0) == 0x80)
			die("part starts inside a character", NULL);
		if (p.nparts > 1 && (pt->units > per || pt->units == 0))
			die("part size", NULL);
		/* a part that is not the last is full but for one unit at
		 * most (the pair that did not fit) */
		if (i + 1 < p.nparts && pt->units + 1 < per)
			die("part ends too early", NULL);
		/* the slice alone costs what the plan says */
		struct sms_plan q;
		if (sms_plan(data + pt->start, pt->end - pt->start, &q,
		    NULL) != 0)
			die("part does not plan", NULL);
		if (q.coding == p.coding && q.units != pt->units)
			die("part units", NULL);
		sms_plan_clear(&q);
		sum += pt->units;
		at = pt->end;
	}
	if (at != size || sum != p.units)
		die("parts do not cover the text", NULL);

	if (sms_plan_check(&p, max_parts, err) == 0) {
		if (err[0] != '\0' || p.nparts > (max_parts ? max_parts : 1))
			die("limit", err);
	} else {
		check_xml_text(err, "limit error");
		if (strncmp(err, "this message needs ", 19) != 0 ||
		    p.nparts <= (max_parts ? max_parts : 1))
			die("limit error", err);
	}

	/* the encoders agree with the plan and decode back */
	unsigned char *enc;
	size_t enclen;
	char *ref = sms_decode(SMS_CHARSET_UTF8, data, size);
	int g = sms_gsm7_encode(data, size, &enc, &enclen);
	if ((g == 0) != (p.coding == SMS_CODING_GSM7))
		die("GSM-7 encoder disagrees with the plan", NULL);
	if (g == 0) {
		if (enclen != p.units)
			die("GSM-7 length", NULL);
		for (size_t i = 0; i < enclen; i++)
			if (enc[i] > 0x7f)
				die("septet above 0x7f", NULL);
		char *back = sms_decode(SMS_CHARSET_GSM7, enc, enclen);
		/* the one lossy step: FORM FEED comes back as LF, and
		 * U+000C is XML-forbidden, so ref has U+FFFD there */
		char *r = ref, *b = back;
		while (*r != '\0' && *b != '\0') {
			if (strncmp(r, "\xef\xbf\xbd", 3) == 0 && *b == '\n') {
				r += 3;
				b++;
			} else if (*r++ != *b++) {
				die("GSM-7 round trip", back);
			}
		}
		if (*r != '\0' || *b != '\0')
			die("GSM-7 round trip length", back);
		free(back);
		free(enc);
	}
	if (sms_ucs2_encode(data, size, &enc, &enclen) != 0)
		die("UCS-2 encoder refused", NULL);
	if (enclen != 2 * u16)
		die("UCS-2 length", NULL);
	char *back = sms_decode(SMS_CHARSET_UCS2, enc, enclen);
	const char *r = ref;
	if (strncmp(r, "\xef\xbb\xbf", 3) == 0)
		r += 3;         /* a leading U+FEFF reads as a BOM */
	if (strcmp(r, back) != 0)
		die("UCS-2 round trip", back);
	free(back);
	free(enc);
	free(ref);
	sms_plan_clear(&p);
}

static void
check_decode(const uint8_t *data, size_t size)
{
	static const enum sms_charset all[] = {
		SMS_CHARSET_UTF8, SMS_CHARSET_UCS2, SMS_CHARSET_GSM7,
		SMS_CHARSET_LATIN1,
	};

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		char *s = sms_decode(all[i], data, size);
		if (strlen(s) > 3 * size)
			die("decoded text too long", NULL);
		check_xml_text(s, "sms_decode");
		free(s);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned mode, cc, max_parts;
	char *str;
	enum sms_charset cs;

	if (size == 0)
		return 0;
	mode = data[0];
	data++;
	size--;
	cc = country_codes[mode % 8];
	max_parts = mode >> 3;          /* 0..31: 0 is clamped to 1 */

	check_number((const char *)data, size, cc);
	check_plan((const char *)data, size, max_parts);
	check_decode(data, size);

	str = malloc(size + 1);
	if (str == NULL)
		abort();
	memcpy(str, data, size);
	str[size] = '\0';
	unsigned v;
	if (sms_country_code_parse(str, &v, NULL) == 0 && (v < 1 || v > 999))
		die("country code out of range", str);
	(void)sms_charset_parse(str, &cs);
	free(str);
	return 0;
}
