/*
 * Unit tests for SMS text: number normalisation and its refusals, the
 * GSM-7 / UCS-2 choice and the part boundaries around 160/153 and 70/67
 * (with escape pairs and surrogate pairs at the edge), the max-parts
 * error, and decoding of every incoming charset, including a round trip
 * of the whole GSM 03.38 table.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "sms_text.h"
#include "tap.h"

/* ---- helpers ---- */

/* n copies of s, joined (caller frees). */
static char *
repeat(const char *s, size_t n)
{
	size_t l = strlen(s);
	char *r = malloc(l * n + 1);

	for (size_t i = 0; i < n; i++)
		memcpy(r + i * l, s, l);
	r[l * n] = '\0';
	return r;
}

/* a + b (caller frees). */
static char *
cat(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *r = malloc(la + lb + 1);

	memcpy(r, a, la);
	memcpy(r + la, b, lb + 1);
	return r;
}

static char *
cat_free(char *a, char *b)
{
	char *r = cat(a, b);

	free(a);
	free(b);
	return r;
}

static char num[SMS_NUMBER_SIZE];

/* Normalises s; the number, or "ERR" when refused. */
static const char *
norm(const char *s, unsigned cc)
{
	const char *why = NULL;

	if (sms_number_normalize(s, strlen(s), cc, num, NULL, &why) != 0) {
		if (why == NULL || *why == '\0' || num[0] != '\0')
			return "BAD-REFUSAL";
		return "ERR";
	}
	return num;
}

/* Plans s; the number of parts, or 0 when refused. */
static size_t
parts_of(const char *s, enum sms_coding *coding, size_t *units)
{
	struct sms_plan p;
	size_t n;

	if (sms_plan(s, strlen(s), &p, NULL) != 0)
		return 0;
	n = p.nparts;
	if (coding != NULL)
		*coding = p.coding;
	if (units != NULL)
		*units = p.units;
	sms_plan_clear(&p);
	return n;
}

/* Parts are in order, non-empty (unless the text is), and cover it. */
static int
covers(const struct sms_plan *p, size_t len)
{
	size_t at = 0;

	if (p->nparts == 0)
		return 0;
	for (size_t i = 0; i < p->nparts; i++) {
		if (p->parts[i].start != at || p->parts[i].end < at)
			return 0;
		if (p->parts[i].end == at && len != 0)
			return 0;
		at = p->parts[i].end;
	}
	return at == len;
}

/* ---- numbers ---- */

static void
test_number_examples(void)
{
	enum sms_number_kind kind = SMS_NUMBER_SHORTCODE;
	const char *why = "x";

	CHECK_STR(norm("+1 (555) 123-4567", 49), "+15551234567");
	CHECK_STR(norm("+1 (555) 123-4567", 0), "+15551234567");
	CHECK_STR(norm("0155 512 34567", 49), "+4915551234567");
	CHECK_STR(norm("00 44 20 7946 0000", 49), "+442079460000");
	CHECK_STR(norm("0044-20-7946-0000", 0), "+442079460000");
	CHECK_STR(norm("+44 (0)20 7946 0000", 0), "+442079460000");
	CHECK_STR(norm("0044 (0)20 7946 0000", 0), "+442079460000");
	CHECK_STR(norm("+49.155.512.345.67", 1), "+4915551234567");
	CHECK_STR(norm("  +4915551234567\t ", 1), "+4915551234567");
	CHECK_STR(norm("0155/51234567", 49), "+4915551234567");
	CHECK(sms_number_normalize("+1 555 123 4567", 15, 0, num, &kind,
	    &why) == 0);
	CHECK(kind == SMS_NUMBER_E164);
	/* NO-BREAK SPACE and EN DASH from a copied number */
	CHECK_STR(norm("+1\xc2\xa0" "555\xe2\x80\x93" "123 4567", 0),
	    "+15551234567");
}

static void
test_number_national(void)
{
	/* NANP: trunk "1", or none */
	CHECK_STR(norm("1 555 123 4567", 1), "+15551234567");
	CHECK_STR(norm("(555) 123-4567", 1), "+15551234567");
	CHECK_STR(norm("0555 123 4567", 1), "ERR");
	/* Italy keeps its 0 */
	CHECK_STR(norm("06 1234 5678", 39), "+390612345678");
	/* Russia: trunk 8 */
	CHECK_STR(norm("8 912 345 67 89", 7), "+79123456789");
	/* Hungary: trunk 06 */
	CHECK_STR(norm("06 30 123 4567", 36), "+36301234567");
	/* a national number without trunk prefix */
	CHECK_STR(norm("155 512 34567", 49), "+4915551234567");
	/* national numbers need a country code */
	CHECK_STR(norm("0155 512 34567", 0), "ERR");
	/* an invalid configured code counts as none */
	CHECK_STR(norm("0155 512 34567", 42), "ERR");
	/* too long once the country code is in front */
	CHECK_STR(norm("0123456789012345", 49), "ERR");
	CHECK_STR(norm("012345678901", 353), "+35312345678901");
	CHECK_STR(norm("0123456789012", 353), "+353123456789012");
	CHECK_STR(norm("01234567890123", 353), "ERR");
}

static void
test_number_shortcodes(void)
{
	enum sms_number_kind kind = SMS_NUMBER_E164;

	CHECK_STR(norm("12345", 49), "12345");
	CHECK_STR(norm("123", 0), "123");
	CHECK_STR(norm("12345678", 49), "12345678");
	CHECK_STR(norm("7 2 4 6 0", 49), "72460");
	CHECK_STR(norm("0800", 49), "0800");
	CHECK(sms_number_normalize("72460", 5, 49, num, &kind, NULL) == 0);
	CHECK(kind == SMS_NUMBER_SHORTCODE);
	/* 9 digits is no short code: a national number */
	CHECK_STR(norm("123456789", 49), "+49123456789");
	CHECK_STR(norm("123456789", 0), "ERR");
	CHECK_STR(norm("12", 49), "ERR");
	/* '+' makes it international, and too short for that */
	CHECK_STR(norm("+12345", 49), "ERR");
}

static void
test_number_refused(void)
{
	const char *why;
	char forty[41];

	CHECK_STR(norm("+", 49), "ERR");
	CHECK_STR(norm("++1", 49), "ERR");
	CHECK_STR(norm("+1+555", 49), "ERR");
	CHECK_STR(norm("abc", 49), "ERR");
	CHECK_STR(norm("1-800-FLOWERS", 1), "ERR");
	CHECK_STR(norm("+1555123456a", 1), "ERR");
	CHECK_STR(norm("", 49), "ERR");
	CHECK_STR(norm("   ", 49), "ERR");
	CHECK_STR(norm("-()-", 49), "ERR");
	CHECK_STR(norm("+1 555 123 4567#", 1), "ERR");
	CHECK_STR(norm("*100#", 1), "ERR");
	CHECK_STR(norm("+0123456789", 1), "ERR");
	CHECK_STR(norm("000", 1), "ERR");
	CHECK_STR(norm("+1\x01" "5551234567", 1), "ERR");
	CHECK_STR(norm("+1555\n1234567", 1), "ERR");
	CHECK_STR(norm("+1555\xff" "1234567", 1), "ERR");
	/* E.164: 15 digits after '+' at most */
	CHECK_STR(norm("+123456789012345", 1), "+123456789012345");
	CHECK_STR(norm("+1234567890123456", 1), "ERR");
	CHECK_STR(norm("00123456789012345", 1), "+123456789012345");
	CHECK_STR(norm("001234567890123456", 1), "ERR");
	memset(forty, '5', 40);
	forty[40] = '\0';
	CHECK_STR(norm(forty, 49), "ERR");
	forty[0] = '+';
	CHECK_STR(norm(forty, 49), "ERR");
	why = NULL;
	CHECK(sms_number_normalize(forty, 40, 49, num, NULL, &why) == -1);
	CHECK(why != NULL && strstr(why, "15 digits") != NULL);
	/* too long before it is read */
	char *spaces = repeat(" ", SMS_NUMBER_INPUT_MAX - 8);
	char *longer = cat_free(spaces, repeat("5", 9));
	CHECK_STR(norm(longer, 49), "ERR");
	free(longer);
	/* embedded NUL: the length says there is more */
	why = NULL;
	CHECK(sms_number_normalize("+15551234567\0" "99", 15, 1, num, NULL,
	    &why) == -1);
	CHECK(why != NULL && strstr(why, "control") != NULL);
	CHECK(sms_number_normalize("\0", 1, 1, num, NULL, &why) == -1);
	CHECK(sms_number_normalize(NULL, 0, 1, num, NULL, &why) == -1);
	/* letters say so */
	CHECK(sms_number_normalize("abc", 3, 1, num, NULL, &why) == -1);
	CHECK(strstr(why, "letters") != NULL);
}

static void
test_number_display(void)
{
	char d[SMS_NUMBER_DISPLAY_SIZE];
	static const char *const numbers[] = {
		"+15551234567", "+4915551234567", "+442079460000",
		"+35312345678901", "+79123456789", "+123456789012345",
		"+2901234", "12345", "123",
	};

	CHECK(sms_number_display("+15551234567", d) == 0);
	CHECK_STR(d, "+1 555 123 4567");
	CHECK(sms_number_display("+4915551234567", d) == 0);
	CHECK_STR(d, "+49 15551234567");
	CHECK(sms_number_display("+3531234567", d) == 0);
	CHECK_STR(d, "+353 1234567");
	CHECK(sms_number_display("+79123456789", d) == 0);
	CHECK_STR(d, "+7 9123456789");
	CHECK(sms_number_display("12345", d) == 0);
	CHECK_STR(d, "12345");
	CHECK(sms_number_display("+0123456789", d) == -1);
	CHECK(sms_number_display("abc", d) == -1);
	CHECK_STR(d, "");
	CHECK(sms_number_display("+1234567890123456", d) == -1);
	CHECK(sms_number_display("12", d) == -1);
	CHECK(sms_number_display("", d) == -1);
	CHECK(sms_number_display("+", d) == -1);
	CHECK(sms_number_display(NULL, d) == -1);
	/* display normalises back, whatever the country code */
	for (size_t i = 0; i < sizeof(numbers) / sizeof(numbers[0]); i++) {
		CHECK(sms_number_display(numbers[i], d) == 0);
		CHECK_STR(norm(d, 49), numbers[i]);
		CHECK_STR(norm(d, 1), numbers[i]);
	}
}

static void
test_country_code(void)
{
	unsigned cc = 0;
	const char *why;

	CHECK(sms_country_code_parse("49", &cc, NULL) == 0 && cc == 49);
	CHECK(sms_country_code_parse("+49", &cc, NULL) == 0 && cc == 49);
	CHECK(sms_country_code_parse(" 1 ", &cc, NULL) == 0 && cc == 1);
	CHECK(sms_country_code_parse("7", &cc, NULL) == 0 && cc == 7);
	CHECK(sms_country_code_parse("353", &cc, NULL) == 0 && cc == 353);
	cc = 5;
	CHECK(sms_country_code_parse("4", &cc, &why) == -1 && cc == 5);
	CHECK(sms_country_code_parse("42", &cc, &why) == -1);
	CHECK(sms_country_code_parse("4912", &cc, &why) == -1);
	CHECK(sms_country_code_parse("0", &cc, &why) == -1);
	CHECK(sms_country_code_parse("049", &cc, &why) == -1);
	CHECK(sms_country_code_parse("", &cc, &why) == -1);
	CHECK(sms_country_code_parse("+", &cc, &why) == -1);
	CHECK(sms_country_code_parse("4 9", &cc, &why) == -1);
	CHECK(sms_country_code_parse("de", &cc, &why) == -1);
	CHECK(sms_country_code_parse(NULL, &cc, &why) == -1);
	CHECK(why != NULL);
}

/* ---- outgoing: GSM-7 ---- */

static void
test_gsm_lengths(void)
{
	enum sms_coding c = SMS_CODING_UCS2;
	size_t u = 0;
	char *s;

	s = repeat("a", 160);
	CHECK(parts_of(s, &c, &u) == 1);
	CHECK(c == SMS_CODING_GSM7 && u == 160);
	free(s);
	s = repeat("a", 161);
	CHECK(parts_of(s, &c, &u) == 2);
	CHECK(c == SMS_CODING_GSM7 && u == 161);
	free(s);
	s = repeat("a", 153 * 2);
	CHECK(parts_of(s, NULL, NULL) == 2);
	free(s);
	s = repeat("a", 307);
	CHECK(parts_of(s, NULL, NULL) == 3);
	free(s);
	s = repeat("a", 153 * 3);
	CHECK(parts_of(s, NULL, NULL) == 3);
	free(s);
	s = repeat("a", 153 * 3 + 1);
	CHECK(parts_of(s, NULL, NULL) == 4);
	free(s);
}

/* The issue's end-to-end case: a 200-character GSM text is 2 parts. */
static void
test_gsm_200(void)
{
	struct sms_plan p;
	char *s = repeat("Hello @ Ä£$ 0123456789", 9);   /* 9 * 22 = 198 */
	char *t = cat(s, "ok");

	CHECK(sms_plan(t, strlen(t), &p, NULL) == 0);
	CHECK(p.coding == SMS_CODING_GSM7);
	CHECK(p.chars == 200 && p.units == 200);
	CHECK(p.nparts == 2);
	CHECK(p.parts[0].units == 153 && p.parts[1].units == 47);
	CHECK(covers(&p, strlen(t)));
	sms_plan_clear(&p);
	sms_plan_clear(&p);
	CHECK(p.parts == NULL && p.nparts == 0);
	free(s);
	free(t);
}

static void
test_gsm_extension(void)
{
	enum sms_coding c = SMS_CODING_UCS2;
	size_t u = 0;
	char *s;

	/* the euro sign costs two septets and keeps the text GSM */
	CHECK(parts_of("Price 5", &c, &u) == 1 && u == 7);
	CHECK(parts_of("Price 5€", &c, &u) == 1);
	CHECK(c == SMS_CODING_GSM7 && u == 9);
	CHECK(parts_of("^{}\\[~]|€", &c, &u) == 1);
	CHECK(c == SMS_CODING_GSM7 && u == 18);
	CHECK(parts_of("\f", &c, &u) == 1 && c == SMS_CODING_GSM7 && u == 2);
	/* 158 + 2 = 160: one part; 159 + 2 = 161: two, though 160 chars */
	s = cat_free(repeat("a", 158), strdup("€"));
	CHECK(parts_of(s, &c, &u) == 1 && u == 160);
	free(s);
	s = cat_free(repeat("a", 159), strdup("€"));
	CHECK(parts_of(s, &c, &u) == 2 && u == 161);
	free(s);
	/* 80 euro signs: 160 septets, one part */
	s = repeat("€", 80);
	CHECK(parts_of(s, &c, &u) == 1 && u == 160);
	free(s);
	s = repeat("€", 81);
	CHECK(parts_of(s, &c, &u) == 2 && u == 162);
	free(s);
}

/* An escape pair never straddles parts: the part ends a septet early. */
static void
test_gsm_extension_boundary(void)
{
	struct sms_plan p;
	char *s = cat_free(cat_free(repeat("a", 152), strdup("€")),
	    repeat("b", 10));

	CHECK(sms_plan(s, strlen(s), &p, NULL) == 0);
	CHECK(p.coding == SMS_CODING_GSM7 && p.units == 164);
	CHECK(p.nparts == 2);
	CHECK(p.parts[0].start == 0 && p.parts[0].end == 152);
	CHECK(p.parts[0].units == 152);
	CHECK(p.parts[1].start == 152 && p.parts[1].end == strlen(s));
	CHECK(p.parts[1].units == 12);
	CHECK(covers(&p, strlen(s)));
	sms_plan_clear(&p);
	free(s);

	/* 151 + '{' fits exactly: 153 */
	s = cat_free(cat_free(repeat("a", 151), strdup("{")),
	    repeat("b", 10));
	CHECK(sms_plan(s, strlen(s), &p, NULL) == 0);
	CHECK(p.nparts == 2 && p.parts[0].end == 152);
	CHECK(p.parts[0].units == 153 && p.parts[1].units == 10);
	sms_plan_clear(&p);
	free(s);

	/* all escapes: 76 per part (152 septets), never 76.5 */
	s = repeat("|", 200);
	CHECK(sms_plan(s, strlen(s), &p, NULL) == 0);
	CHECK(p.units == 400 && p.nparts == 3);
	CHECK(p.parts[0].units == 152 && p.parts[1].units == 152);
	CHECK(p.parts[2].units == 96);
	CHECK(covers(&p, strlen(s)));
	sms_plan_clear(&p);
	free(s);
}

static void
test_gsm_or_not(void)
{
	enum sms_coding c;

	/* the whole default alphabet, in one text */
	CHECK(parts_of("@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./"
	    "0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿"
	    "abcdefghijklmnopqrstuvwxyzäöñüà\r\n", &c, NULL) == 1);
	CHECK(c == SMS_CODING_GSM7);
	CHECK(parts_of("Привет, мир", &c, NULL) == 1 && c == SMS_CODING_UCS2);
	/* not in GSM: lower-case c-cedilla, TAB, backquote, typographic
	 * apostrophe */
	CHECK(parts_of("Ça va", &c, NULL) == 1 && c == SMS_CODING_GSM7);
	CHECK(parts_of("garçon", &c, NULL) == 1 && c == SMS_CODING_UCS2);
	CHECK(parts_of("a\tb", &c, NULL) == 1 && c == SMS_CODING_UCS2);
	CHECK(parts_of("`", &c, NULL) == 1 && c == SMS_CODING_UCS2);
	CHECK(parts_of("it’s", &c, NULL) == 1 && c == SMS_CODING_UCS2);
	CHECK(parts_of("\x1b", &c, NULL) == 1 && c == SMS_CODING_UCS2);
	CHECK(parts_of("\x7f", &c, NULL) == 1 && c == SMS_CODING_UCS2);
}

/* ---- outgoing: UCS-2 ---- */

static void
test_ucs2_lengths(void)
{
	enum sms_coding c = SMS_CODING_GSM7;
	size_t u = 0;
	char *s;

	s = repeat("ж", 70);
	CHECK(parts_of(s, &c, &u) == 1 && c == SMS_CODING_UCS2 && u == 70);
	free(s);
	s = repeat("ж", 71);
	CHECK(parts_of(s, &c, &u) == 2 && c == SMS_CODING_UCS2 && u == 71);
	free(s);
	s = repeat("ж", 134);
	CHECK(parts_of(s, NULL, NULL) == 2);
	free(s);
	s = repeat("ж", 135);
	CHECK(parts_of(s, NULL, NULL) == 3);
	free(s);
	/* one non-GSM character makes a GSM-sized text UCS-2 */
	s = cat_free(repeat("a", 69), strdup("ж"));
	CHECK(parts_of(s, &c, &u) == 1 && c == SMS_CODING_UCS2 && u == 70);
	free(s);
	s = cat_free(repeat("a", 70), strdup("ж"));
	CHECK(parts_of(s, &c, &u) == 2 && u == 71);
	free(s);
}

/*
 * The issue's end-to-end case: a 100-character text with emoji is UCS-2
 * and 2 parts.  90 letters + 10 emoji = 100 characters, 110 units (an
 * emoji is a surrogate pair): 67 + 43.  With 35 emoji the same 100
 * characters are 135 units: 3 parts.
 */
static void
test_ucs2_emoji(void)
{
	struct sms_plan p;
	char *s = cat_free(repeat("a", 90), repeat("😀", 10));

	CHECK(sms_plan(s, strlen(s), &p, NULL) == 0);
	CHECK(p.coding == SMS_CODING_UCS2);
	CHECK(p.chars == 100 && p.units == 110);
	CHECK(p.nparts == 2);
	CHECK(p.parts[0].units == 67 && p.parts[1].units == 43);
	CHECK(covers(&p, strlen(s)));
	sms_plan_clear(&p);
	free(s);

	s = cat_free(repeat("a", 65), repeat("😀", 35));
	CHECK(sms_plan(s, strlen(s), &p, NULL) == 0);
	CHECK(p.chars == 100 && p.units == 135 && p.nparts == 3);
	CHECK(p.parts[0].units == 67 && p.parts[1].units == 66);
	CHECK(p.parts[2].units == 2);
	sms_plan_clear(&p);
	free(s);

	/* 35 emoji alone are 70 units: one part */
	s = repeat("😀", 35);
	CHECK(parts_of(s, NULL, NULL) == 1);
	free(s);
	s = repeat("😀", 36);
	CHECK(parts_of(s, NULL, NULL) == 2);
	free(s);
}

/* A surrogate pair never straddles parts. */
static void
test_ucs2_surrogate_boundary(void)
{
	struct sms_plan p;
	char *s = cat_free(cat_free(repeat("д", 66), strdup("😀")),
	    repeat("д", 10));

	CHECK(sms_plan(s, strlen(s), &p, NULL) == 0);
	CHECK(p.coding == SMS_CODING_UCS2 && p.units == 78);
	CHECK(p.nparts == 2);
	CHECK(p.parts[0].start == 0 && p.parts[0].end == 132);
	CHECK(p.parts[0].units == 66);
	CHECK(p.parts[1].start == 132 && p.parts[1].units == 12);
	CHECK(strncmp(s + p.parts[1].start, "😀", 4) == 0);
	CHECK(covers(&p, strlen(s)));
	sms_plan_clear(&p);
	free(s);

	/* 65 + emoji = 67 exactly: the pair stays in part one */
	s = cat_free(cat_free(repeat("д", 65), strdup("😀")),
	    repeat("д", 10));
	CHECK(sms_plan(s, strlen(s), &p, NULL) == 0);
	CHECK(p.nparts == 2 && p.parts[0].units == 67);
	CHECK(p.parts[0].end == 134);
	sms_plan_clear(&p);
	free(s);
}

static void
test_plan_refused(void)
{
	struct sms_plan p;
	const char *why;
	static const char *const bad[] = {
		"\xff", "a\xc0\x80", "\xed\xa0\x80", "\xe2\x82", "\xf4\x90\x80\x80",
		"ok\x80", "\xf8\x88\x80\x80\x80",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = NULL;
		CHECK(sms_plan(bad[i], strlen(bad[i]), &p, &why) == -1);
		CHECK(why != NULL && strstr(why, "UTF-8") != NULL);
		CHECK(p.parts == NULL && p.nparts == 0);
	}
	CHECK(sms_plan("a\0b", 3, &p, &why) == -1);
	CHECK(strstr(why, "NUL") != NULL);
	CHECK(sms_plan(NULL, 1, &p, &why) == -1);
	/* empty: one empty part */
	CHECK(sms_plan(NULL, 0, &p, NULL) == 0);
	CHECK(p.nparts == 1 && p.units == 0 && p.coding == SMS_CODING_GSM7);
	CHECK(p.parts[0].start == 0 && p.parts[0].end == 0);
	sms_plan_clear(&p);
}

static void
test_plan_limit(void)
{
	struct sms_plan p;
	char err[SMS_ERROR_SIZE];
	char *s = repeat("a", 153 * 4 + 1);

	CHECK(sms_plan(s, strlen(s), &p, NULL) == 0);
	CHECK(p.nparts == 5);
	CHECK(sms_plan_check(&p, 4, err) == -1);
	CHECK_STR(err, "this message needs 5 SMS; the limit is 4");
	CHECK(sms_plan_check(&p, 5, err) == 0);
	CHECK_STR(err, "");
	CHECK(sms_plan_check(&p, 10, NULL) == 0);
	CHECK(sms_plan_check(&p, 0, err) == -1);
	CHECK_STR(err, "this message needs 5 SMS; the limit is 1");
	sms_plan_clear(&p);
	free(s);

	s = repeat("a", 153 * 256);
	CHECK(sms_plan(s, strlen(s), &p, NULL) == 0);
	CHECK(p.nparts == 256);
	CHECK(covers(&p, strlen(s)));
	CHECK(sms_plan_check(&p, 1000, err) == -1);
	CHECK_STR(err, "this message needs 256 SMS; the limit is 255");
	sms_plan_clear(&p);
	free(s);
}

static void
test_encoders(void)
{
	unsigned char *o;
	size_t n;

	CHECK(sms_gsm7_encode("@£$€{", strlen("@£$€{"), &o, &n) == 0);
	CHECK(n == 7 && memcmp(o, "\x00\x01\x02\x1b\x65\x1b\x28", 7) == 0);
	free(o);
	CHECK(sms_gsm7_encode("\f\n", 2, &o, &n) == 0);
	CHECK(n == 3 && memcmp(o, "\x1b\x0a\x0a", 3) == 0);
	free(o);
	CHECK(sms_gsm7_encode("ж", strlen("ж"), &o, &n) == -1);
	CHECK(o == NULL && n == 0);
	CHECK(sms_gsm7_encode("\xff", 1, &o, &n) == -1);
	CHECK(sms_gsm7_encode("a\0", 2, &o, &n) == -1);
	CHECK(sms_gsm7_encode(NULL, 0, &o, &n) == 0 && n == 0 && o != NULL);
	free(o);

	CHECK(sms_ucs2_encode("Aж😀", strlen("Aж😀"), &o, &n) == 0);
	CHECK(n == 8 && memcmp(o, "\x00\x41\x04\x36\xd8\x3d\xde\x00", 8) == 0);
	char *back = sms_decode(SMS_CHARSET_UCS2, o, n);
	CHECK_STR(back, "Aж😀");
	free(back);
	free(o);
	CHECK(sms_ucs2_encode("\xed\xa0\x80", 3, &o, &n) == -1);
}

/* ---- incoming ---- */

static void
check_decode(enum sms_charset cs, const char *in, size_t len,
    const char *want, int line)
{
	char *got = sms_decode(cs, in, len);

	if (strcmp(got, want) != 0) {
		tap_current_failed = 1;
		printf("#   line %d: decoded \"%s\", expected \"%s\"\n", line,
		    got, want);
	}
	free(got);
}
#define DECODE(cs, lit, want) \
	check_decode(cs, lit, sizeof(lit) - 1, want, __LINE__)

static void
test_decode_utf8(void)
{
	DECODE(SMS_CHARSET_UTF8, "héllo 😀", "héllo 😀");
	DECODE(SMS_CHARSET_UTF8, "a\xff" "b", "a\xef\xbf\xbd" "b");
	DECODE(SMS_CHARSET_UTF8, "\xc0\x80", "\xef\xbf\xbd\xef\xbf\xbd");
	DECODE(SMS_CHARSET_UTF8, "\xed\xa0\x80" "x",
	    "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" "x");
	DECODE(SMS_CHARSET_UTF8, "\xe2\x82", "\xef\xbf\xbd\xef\xbf\xbd");
	DECODE(SMS_CHARSET_UTF8, "a\0b", "ab");
	DECODE(SMS_CHARSET_UTF8, "a\x01\tb\r\n", "a\xef\xbf\xbd\tb\r\n");
	DECODE(SMS_CHARSET_UTF8, "\xef\xbf\xbe", "\xef\xbf\xbd");
	DECODE(SMS_CHARSET_UTF8, "", "");
	char *s = sms_decode(SMS_CHARSET_UTF8, NULL, 5);
	CHECK_STR(s, "");
	free(s);
}

static void
test_decode_ucs2(void)
{
	DECODE(SMS_CHARSET_UCS2, "\x04\x1f\x04\x40\x00\x21", "Пр!");
	DECODE(SMS_CHARSET_UCS2, "\xfe\xff\x00\x41", "A");
	DECODE(SMS_CHARSET_UCS2, "\xd8\x3d\xde\x00", "😀");
	/* lone surrogates */
	DECODE(SMS_CHARSET_UCS2, "\xd8\x3d\x00\x41", "\xef\xbf\xbd" "A");
	DECODE(SMS_CHARSET_UCS2, "\xde\x00\x00\x41", "\xef\xbf\xbd" "A");
	DECODE(SMS_CHARSET_UCS2, "\x00\x41\xd8\x3d", "A\xef\xbf\xbd");
	DECODE(SMS_CHARSET_UCS2, "\xd8\x3d\xd8\x3d\xde\x00",
	    "\xef\xbf\xbd😀");
	/* odd length, NUL, controls */
	DECODE(SMS_CHARSET_UCS2, "\x00\x41\x00", "A\xef\xbf\xbd");
	DECODE(SMS_CHARSET_UCS2, "\x00\x00\x00\x41", "A");
	DECODE(SMS_CHARSET_UCS2, "\x00\x07", "\xef\xbf\xbd");
	DECODE(SMS_CHARSET_UCS2, "\xff\xff", "\xef\xbf\xbd");
	DECODE(SMS_CHARSET_UCS2, "\x20\xac", "€");
}

static void
test_decode_gsm7(void)
{
	DECODE(SMS_CHARSET_GSM7, "\x00\x01\x02\x03", "@£$¥");
	DECODE(SMS_CHARSET_GSM7, "\x48\x69\x11\x10", "Hi_Δ");
	DECODE(SMS_CHARSET_GSM7, "\x1b\x65\x1b\x14\x1b\x28\x1b\x29",
	    "€^{}");
	DECODE(SMS_CHARSET_GSM7, "\x1b\x2f\x1b\x3c\x1b\x3d\x1b\x3e\x1b\x40",
	    "\\[~]|");
	DECODE(SMS_CHARSET_GSM7, "a\x1b\x0a" "b", "a\nb");
	/* unknown extension code: the default character */
	DECODE(SMS_CHARSET_GSM7, "\x1b\x41", "A");
	DECODE(SMS_CHARSET_GSM7, "\x1b\x00", "@");
	/* ESC at the end, ESC ESC */
	DECODE(SMS_CHARSET_GSM7, "a\x1b", "a ");
	DECODE(SMS_CHARSET_GSM7, "\x1b\x1b\x65", " €");
	/* not septets */
	DECODE(SMS_CHARSET_GSM7, "\x80" "a\xff", "\xef\xbf\xbd" "a\xef\xbf\xbd");
	DECODE(SMS_CHARSET_GSM7, "\x1b\x80", "\xef\xbf\xbd");
}

static void
test_decode_latin1(void)
{
	DECODE(SMS_CHARSET_LATIN1, "caf\xe9 \xa3" "5", "café £5");
	DECODE(SMS_CHARSET_LATIN1, "\xff\x80", "ÿ\xc2\x80");
	DECODE(SMS_CHARSET_LATIN1, "a\0b\x02", "ab\xef\xbf\xbd");
}

static void
test_charset_names(void)
{
	enum sms_charset cs = SMS_CHARSET_GSM7;

	CHECK(sms_charset_parse("UTF-8", &cs) == 0 && cs == SMS_CHARSET_UTF8);
	CHECK(sms_charset_parse("utf-16be", &cs) == 0 &&
	    cs == SMS_CHARSET_UCS2);
	CHECK(sms_charset_parse("UCS2", &cs) == 0 && cs == SMS_CHARSET_UCS2);
	CHECK(sms_charset_parse("ISO", &cs) == 0 && cs == SMS_CHARSET_LATIN1);
	CHECK(sms_charset_parse("iso-8859-1", &cs) == 0 &&
	    cs == SMS_CHARSET_LATIN1);
	CHECK(sms_charset_parse("GSM", &cs) == 0 && cs == SMS_CHARSET_GSM7);
	cs = SMS_CHARSET_UTF8;
	CHECK(sms_charset_parse("WINDOWS-1252", &cs) == -1);
	CHECK(cs == SMS_CHARSET_UTF8);
	CHECK(sms_charset_parse("", &cs) == -1);
	CHECK(sms_charset_parse(NULL, &cs) == -1);
}

/*
 * Every character of the default table decodes to one character that
 * encodes back to the same septet and plans as 1 GSM septet; every
 * extension character likewise as ESC + septet, 2 septets.
 */
static void
test_gsm_round_trip(void)
{
	static const unsigned char ext[] = {
		0x14, 0x28, 0x29, 0x2f, 0x3c, 0x3d, 0x3e, 0x40, 0x65,
	};
	unsigned char in[2], *o;
	size_t n, u;
	enum sms_coding c;

	for (unsigned s = 0; s < 128; s++) {
		if (s == 0x1b)
			continue;
		in[0] = (unsigned char)s;
		char *t = sms_decode(SMS_CHARSET_GSM7, in, 1);
		int ok = strlen(t) > 0 && parts_of(t, &c, &u) == 1 &&
		    c == SMS_CODING_GSM7 && u == 1 &&
		    sms_gsm7_encode(t, strlen(t), &o, &n) == 0;
		if (ok) {
			ok = n == 1 && o[0] == s;
			free(o);
		}
		if (!ok) {
			tap_current_failed = 1;
			printf("#   septet 0x%02x does not round-trip\n", s);
		}
		free(t);
	}
	for (size_t i = 0; i < sizeof(ext); i++) {
		in[0] = 0x1b;
		in[1] = ext[i];
		char *t = sms_decode(SMS_CHARSET_GSM7, in, 2);
		int ok = parts_of(t, &c, &u) == 1 && c == SMS_CODING_GSM7 &&
		    u == 2 && sms_gsm7_encode(t, strlen(t), &o, &n) == 0;
		if (ok) {
			ok = n == 2 && memcmp(o, in, 2) == 0;
			free(o);
		}
		if (!ok) {
			tap_current_failed = 1;
			printf("#   extension 0x%02x does not round-trip\n",
			    ext[i]);
		}
		free(t);
	}
	/* and all 127 + 9 as one text, through both directions */
	unsigned char all[127 + 18];
	size_t k = 0;
	for (unsigned s = 0; s < 128; s++)
		if (s != 0x1b)
			all[k++] = (unsigned char)s;
	for (size_t i = 0; i < sizeof(ext); i++) {
		all[k++] = 0x1b;
		all[k++] = ext[i];
	}
	char *t = sms_decode(SMS_CHARSET_GSM7, all, k);
	CHECK(sms_gsm7_encode(t, strlen(t), &o, &n) == 0);
	CHECK(n == k && memcmp(o, all, k) == 0);
	free(o);
	free(t);
}

int
main(void)
{
	RUN(test_number_examples);
	RUN(test_number_national);
	RUN(test_number_shortcodes);
	RUN(test_number_refused);
	RUN(test_number_display);
	RUN(test_country_code);
	RUN(test_gsm_lengths);
	RUN(test_gsm_200);
	RUN(test_gsm_extension);
	RUN(test_gsm_extension_boundary);
	RUN(test_gsm_or_not);
	RUN(test_ucs2_lengths);
	RUN(test_ucs2_emoji);
	RUN(test_ucs2_surrogate_boundary);
	RUN(test_plan_refused);
	RUN(test_plan_limit);
	RUN(test_encoders);
	RUN(test_decode_utf8);
	RUN(test_decode_ucs2);
	RUN(test_decode_gsm7);
	RUN(test_decode_latin1);
	RUN(test_charset_names);
	RUN(test_gsm_round_trip);
	return TAP_DONE();
}
