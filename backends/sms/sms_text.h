/*
 * SMS as text: phone numbers, the GSM 03.38 / UCS-2 choice and the split
 * into parts for outgoing texts, and decoding incoming texts to UTF-8.
 * Pure functions, no I/O and no state: everything here is unit tested
 * and fuzzed, and both drivers (Kannel, smstools3) use the same rules.
 *
 *   typed number / JID local part / MO sender -> sms_number_normalize
 *       -> "+15551234567" or a short code "12345"
 *   XMPP body (UTF-8) -> sms_plan (coding, septets or UTF-16 units, parts)
 *       -> sms_plan_check (max_parts) -> driver sends the text or its parts
 *   MO bytes + coding -> sms_decode -> UTF-8 for the XMPP body
 *
 * Everything that takes input takes a pointer and a length: input from
 * Kannel callbacks and spool files may hold NUL bytes, which are refused
 * (numbers, outgoing text) or dropped (incoming text), never a silent
 * truncation at the first NUL.
 */
#ifndef CAUSEWAY_SMS_TEXT_H
#define CAUSEWAY_SMS_TEXT_H

#include <stddef.h>
#include <stdint.h>

/* ---- phone numbers ---- */

/* E.164: at most 15 digits after the '+'.  No assigned country has
 * international numbers shorter than 7 digits (+683 4xxx, Niue). */
#define SMS_E164_DIGITS_MAX 15
#define SMS_E164_DIGITS_MIN 7
/* Short codes (network services, "Text STOP to 12345"). */
#define SMS_SHORTCODE_MIN 3
#define SMS_SHORTCODE_MAX 8
/* A normalised number with its NUL: '+' and 15 digits, or a short code. */
#define SMS_NUMBER_SIZE (1 + SMS_E164_DIGITS_MAX + 1)
/* A number for display ("+1 555 123 4567") with its NUL. */
#define SMS_NUMBER_DISPLAY_SIZE 24
/* Longer typed input is refused before it is looked at. */
#define SMS_NUMBER_INPUT_MAX 64

enum sms_number_kind {
	SMS_NUMBER_E164,        /* "+" and 7..15 digits */
	SMS_NUMBER_SHORTCODE,   /* 3..8 digits, no '+' */
};

/*
 * An operator's country_code setting ("49", "+49", " 1 ") to the number
 * (1..999).  The code must have the length the ITU numbering plan gives
 * its first digits: "1" and "7" are one digit, "44" and "49" two, "353"
 * three; "4" (no such code), "4912" and "049" are refused.  0 or -1
 * (with the reason in *reason, a static string; may be NULL).
 */
int sms_country_code_parse(const char *s, unsigned *out, const char **reason);

/*
 * Turns a number as people type it into its E.164 form or a short code.
 *
 * Accepted: digits with separators between them (space, TAB, '-', '.',
 * '/', '(' and ')'; and, as copying from web pages brings them, NO-BREAK
 * SPACE, THIN SPACE, NARROW NO-BREAK SPACE, the dashes U+2010..U+2015
 * and MINUS SIGN), optionally preceded by one '+' (after optional
 * leading space).  Leading and trailing white space is ignored.  Then:
 *
 *   "+..." or "00..."   international: "+1 (555) 123-4567" ->
 *                       "+15551234567", "00 44 20 7946 0000" ->
 *                       "+442079460000".  The "(0)" some people write
 *                       after the country code ("+44 (0)20 7946 0000")
 *                       is dropped.
 *   3..8 digits         a short code, kept as typed minus separators
 *                       ("12345", "7 2 4 6 0" -> "72460").
 *   other national      country_code is put in front, without the
 *                       country's trunk prefix: "0155 512 34567" with 49
 *                       -> "+4915551234567".  The trunk prefix is "0"
 *                       except for 1 (NANP: "1"), 7 ("8"), 36 ("06"),
 *                       and 39 and 378 (none: Italian numbers keep their
 *                       0).  A number without its trunk prefix is taken
 *                       as national too ("555 123 4567" with 1 ->
 *                       "+15551234567"), which also means that
 *                       "4915551234567" typed without '+' with country
 *                       code 49 becomes "+494915551234567": users who
 *                       mean an international number type '+' or "00".
 *
 * Refused, with a reason for the user in *reason (a static string; may
 * be NULL): empty input, input over SMS_NUMBER_INPUT_MAX bytes, NUL or
 * other control characters (TAB excepted), letters ("1-800-FLOWERS"),
 * any other character ('#', '*', a second '+', a '+' inside), no digits
 * ("+"), fewer than 3 digits, an international number with fewer than
 * SMS_E164_DIGITS_MIN or more than SMS_E164_DIGITS_MAX digits (40 digits
 * included), a country code starting with 0 ("+0...", "000"), a national
 * number when country_code is 0 (none configured), a national number
 * over 15 digits once the country code is in front, and a national
 * number starting with 0 where the trunk prefix is not "0" ("0555 123
 * 4567" with 1).
 *
 * Returns 0 with the number in out (NUL-terminated) and its kind in
 * *kind (may be NULL), or -1 with out set to "".  country_code is 0 or
 * a value sms_country_code_parse() accepts (anything else counts as 0).
 */
int sms_number_normalize(const char *in, size_t len, unsigned country_code,
    char out[SMS_NUMBER_SIZE], enum sms_number_kind *kind,
    const char **reason);

/*
 * A normalised number for people to read: the country code set apart
 * ("+49 15551234567", "+44 2079460000"), NANP numbers grouped as at home
 * ("+1 555 123 4567"); short codes as they are.  The result normalises
 * back to number (with any country code).  0, or -1 with out = "" when
 * number is not what sms_number_normalize() produces.
 */
int sms_number_display(const char *number, char out[SMS_NUMBER_DISPLAY_SIZE]);

/* ---- outgoing text: coding and parts ---- */

/* One SMS carries 140 octets: 160 GSM septets or 70 UTF-16 units; a
 * concatenated one loses 6 octets to its user data header (8-bit
 * reference, what Kannel and smstools send). */
#define SMS_GSM7_SINGLE 160
#define SMS_GSM7_PART 153
#define SMS_UCS2_SINGLE 70
#define SMS_UCS2_PART 67
/* The UDH counts parts in one octet. */
#define SMS_PARTS_MAX 255
/* Room for sms_plan_check()'s message. */
#define SMS_ERROR_SIZE 96

enum sms_coding {
	/* GSM 03.38 default alphabet plus its extension table (no national
	 * language shift tables).  Kannel: coding=0 (the default). */
	SMS_CODING_GSM7,
	/* UCS-2 as phones really use it: UTF-16BE, so a character outside
	 * the BMP (emoji) takes two units.  Kannel: coding=2 and
	 * charset=UTF-8, or Kannel sends question marks. */
	SMS_CODING_UCS2,
};

/* Bytes [start, end) of the UTF-8 text, and what they cost. */
struct sms_part {
	size_t start;
	size_t end;
	size_t units;           /* septets (GSM-7) or UTF-16 code units */
};

struct sms_plan {
	enum sms_coding coding;
	size_t chars;           /* Unicode code points */
	size_t units;           /* septets (GSM-7) or UTF-16 units, total */
	size_t nparts;          /* >= 1 */
	struct sms_part *parts; /* nparts entries, in order */
};

/*
 * Plans an outgoing text of len bytes of UTF-8.  GSM-7 when every
 * character is in the GSM 03.38 default alphabet or its extension table
 * (^ { } \ [ ] ~ | EURO SIGN and FORM FEED cost 2 septets: ESC and the
 * character), UCS-2 otherwise.  Note that some everyday characters are
 * not GSM: TAB, typographic quotes, and lower-case c-cedilla (0x09 is
 * the capital letter in 3GPP TS 23.038); any of them makes the whole
 * text UCS-2.  Nothing is transliterated here: the text is sent as
 * written or refused.
 *
 * Up to SMS_GSM7_SINGLE septets / SMS_UCS2_SINGLE units the text is one
 * part; longer texts are cut into parts of at most SMS_GSM7_PART /
 * SMS_UCS2_PART.  A part never splits a character: an extension
 * character (2 septets) or a surrogate pair (2 units) that would not fit
 * ends the part one unit early and starts the next.  Parts break at code
 * points, not words or grapheme clusters (as phones do).  The parts
 * cover [0, len) without gaps; an empty text is one empty part.
 *
 * Returns 0 and fills *out (free with sms_plan_clear), or -1 with a
 * reason for the user in *reason (static; may be NULL) and *out zeroed:
 * text that is not well-formed UTF-8 (overlong forms, surrogates and
 * values above U+10FFFF included) or that holds a NUL.  text may be NULL
 * when len is 0.  Length is not limited here: see sms_plan_check.
 */
int sms_plan(const char *text, size_t len, struct sms_plan *out,
    const char **reason);
/* Frees the parts and zeroes the plan; clearing twice is harmless. */
void sms_plan_clear(struct sms_plan *p);

/*
 * 0 when the plan fits max_parts (clamped to 1..SMS_PARTS_MAX), else -1
 * and err (SMS_ERROR_SIZE bytes, may be NULL) holds the text for the
 * user's error stanza: "this message needs 5 SMS; the limit is 4".
 * A text is never cut to fit: the caller refuses it.
 */
int sms_plan_check(const struct sms_plan *p, unsigned max_parts,
    char err[SMS_ERROR_SIZE]);

/*
 * The text as unpacked GSM 03.38 septets (one per byte, 0x00..0x7F;
 * extension characters as 0x1B and the character), for drivers and
 * tests that need the septets themselves.  Returns the number of bytes
 * in *out (caller frees; never NULL on success), or -1 when the text is
 * not valid UTF-8 without NUL or holds a character GSM-7 cannot carry.
 */
int sms_gsm7_encode(const char *text, size_t len, unsigned char **out,
    size_t *outlen);
/*
 * The text as UTF-16BE (no BOM), e.g. for an smstools "Alphabet: UCS2"
 * spool file.  Same contract and refusals as sms_gsm7_encode, except
 * that every character fits.
 */
int sms_ucs2_encode(const char *text, size_t len, unsigned char **out,
    size_t *outlen);

/* ---- incoming text ---- */

enum sms_charset {
	SMS_CHARSET_UTF8,       /* Kannel charset=UTF-8 */
	SMS_CHARSET_UCS2,       /* UTF-16BE: Kannel coding=2 with
				 * charset=UTF-16BE, smstools "UCS2" */
	SMS_CHARSET_GSM7,       /* unpacked septets, one per byte */
	SMS_CHARSET_LATIN1,     /* ISO-8859-1: smstools "ISO" */
};

/*
 * A charset name as drivers see it (case-insensitive): "UTF-8", "UTF8";
 * "UTF-16BE", "UTF-16", "UCS-2", "UCS2", "UCS-2BE"; "GSM", "GSM7",
 * "GSM0338"; "ISO-8859-1", "ISO8859-1", "ISO_8859-1", "LATIN1", "ISO".
 * 0, or -1 for anything else (the driver picks its fallback and logs).
 */
int sms_charset_parse(const char *name, enum sms_charset *out);

/*
 * Incoming bytes as UTF-8 that an XMPP body can carry.  Caller frees;
 * never NULL; bytes may be NULL when len is 0.
 *
 *   UTF8    well-formed sequences pass; each byte that does not start
 *           one becomes U+FFFD on its own.
 *   UCS2    big-endian units; a leading BOM (FE FF) is dropped; a lone
 *           surrogate or an odd last byte becomes U+FFFD.
 *   GSM7    the default alphabet and extension table; ESC before a code
 *           the extension table lacks gives that code's default
 *           character (TS 23.038), a final or doubled ESC a space, a
 *           byte above 0x7F U+FFFD.  The extension FORM FEED (a page
 *           break) becomes LF.
 *   LATIN1  every byte is its code point.
 *
 * In every charset NUL is dropped (padding some SMSCs and modems add),
 * and characters XML 1.0 cannot carry (C0 controls other than TAB, LF,
 * CR; U+FFFE, U+FFFF) become U+FFFD.  The result is valid UTF-8 without
 * NUL.  Length is the caller's to limit (at most 4 bytes out per 2 in
 * for UCS2, 3 per 1 otherwise).
 */
char *sms_decode(enum sms_charset cs, const void *bytes, size_t len);

#endif
