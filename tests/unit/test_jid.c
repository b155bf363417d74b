/*
 * Unit tests for src/jid.c: RFC 7622 parsing and XEP-0106 escaping.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "jid.h"
#include "tap.h"

/* Parse s and compare each part (NULL: absent); 1 when all match. */
static int
parses_as(const char *s, const char *local, const char *domain,
    const char *resource)
{
	struct jid j;
	if (jid_parse(s, &j) != 0) {
		printf("#   jid_parse(\"%s\") failed\n", s);
		return 0;
	}
	int ok = 1;
	const char *want[3] = { local, domain, resource };
	const char *got[3] = { j.local, j.domain, j.resource };
	for (int i = 0; i < 3; i++) {
		if (want[i] == NULL ? got[i] != NULL :
		    got[i] == NULL || strcmp(want[i], got[i]) != 0) {
			printf("#   jid_parse(\"%s\") part %d: \"%s\", expected "
			    "\"%s\"\n", s, i, got[i] ? got[i] : "(null)",
			    want[i] ? want[i] : "(null)");
			ok = 0;
		}
	}
	jid_clear(&j);
	return ok;
}

/* 1 when s is rejected and the output struct is left alone. */
static int
rejects(const char *s)
{
	char marker;
	struct jid j = { &marker, &marker, &marker };
	int r = jid_parse(s, &j);
	if (r == 0) {
		printf("#   jid_parse accepted an invalid JID\n");
		jid_clear(&j);
		return 0;
	}
	return r == -1 && j.local == &marker && j.domain == &marker &&
	    j.resource == &marker;
}

static char *
repeat(char c, size_t n)
{
	char *s = malloc(n + 1);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

static void
test_valid_forms(void)
{
	CHECK(parses_as("example.com", NULL, "example.com", NULL));
	CHECK(parses_as("alice@example.com", "alice", "example.com", NULL));
	CHECK(parses_as("alice@example.com/phone", "alice", "example.com",
	    "phone"));
	CHECK(parses_as("example.com/res", NULL, "example.com", "res"));
	CHECK(parses_as("localhost", NULL, "localhost", NULL));
	CHECK(parses_as("a@b", "a", "b", NULL));
	/* The resource is everything after the first '/'. */
	CHECK(parses_as("alice@example.com/a@b/c", "alice", "example.com",
	    "a@b/c"));
	CHECK(parses_as("example.com/alice@example.org", NULL, "example.com",
	    "alice@example.org"));
	CHECK(parses_as("a@b/ with spaces ", "a", "b", " with spaces "));
	CHECK(parses_as("a@b//", "a", "b", "/"));
	/* biboumi-style addresses the IRC backend hands out. */
	CHECK(parses_as("#chan%irc.libera.chat@irc.example.org",
	    "#chan%irc.libera.chat", "irc.example.org", NULL));
	CHECK(parses_as("+15551234567@sms.example.org", "+15551234567",
	    "sms.example.org", NULL));
	CHECK(parses_as("alice\\40example.net@mail.gw", "alice\\40example.net",
	    "mail.gw", NULL));
	CHECK(parses_as("x@xn--mller-kva.example", "x", "xn--mller-kva.example",
	    NULL));
	CHECK(parses_as("m\xc3\xbcller@b\xc3\xbc\x63her.example/\xe2\x98\x83",
	    "m\xc3\xbcller", "b\xc3\xbc\x63her.example", "\xe2\x98\x83"));
	CHECK(parses_as("a@1-2.example", "a", "1-2.example", NULL));
}

static void
test_ip_literals(void)
{
	CHECK(parses_as("[::1]", NULL, "[::1]", NULL));
	CHECK(parses_as("a@[2001:DB8::1]/r", "a", "[2001:db8::1]", "r"));
	CHECK(parses_as("a@[::ffff:192.0.2.1]", "a", "[::ffff:192.0.2.1]",
	    NULL));
	CHECK(parses_as("a@192.0.2.1/r", "a", "192.0.2.1", "r"));
	CHECK(rejects("a@[::g]"));
	CHECK(rejects("a@[127.0.0.1]"));
	CHECK(rejects("a@[::1"));
	CHECK(rejects("a@::1"));
	CHECK(rejects("a@[]"));
	CHECK(rejects("a@[::1]x"));
	CHECK(rejects("a@x[::1]"));
}

static void
test_trailing_dot(void)
{
	CHECK(parses_as("example.com.", NULL, "example.com", NULL));
	CHECK(parses_as("a@example.com./r", "a", "example.com", "r"));
	CHECK(rejects("example.com.."));
	CHECK(rejects("."));
	CHECK(rejects("a@./r"));
}

static void
test_invalid_structure(void)
{
	CHECK(rejects(NULL));
	CHECK(rejects(""));
	CHECK(rejects("@example.com"));
	CHECK(rejects("alice@"));
	CHECK(rejects("alice@/r"));
	CHECK(rejects("example.com/"));
	CHECK(rejects("alice@example.com/"));
	CHECK(rejects("/r"));
	CHECK(rejects("@"));
	CHECK(rejects("a@b@c"));
}

static void
test_invalid_local(void)
{
	static const char *const bad[] = {
		"a b@x", "a\"b@x", "a&b@x", "a'b@x", "a:b@x", "a<b@x", "a>b@x",
		" a@x", "a @x",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(rejects(bad[i]));
	/* '/' and '@' cannot reach a localpart through jid_parse. */
	struct jid j;
	CHECK(jid_make(&j, "a/b", "x", NULL) == -1);
	CHECK(jid_make(&j, "a@b", "x", NULL) == -1);
	CHECK(jid_make(&j, "a b", "x", NULL) == -1);
	CHECK(jid_make(&j, "", "x", NULL) == -1);
}

static void
test_invalid_domain(void)
{
	static const char *const bad[] = {
		"a@exa mple.com", "exa mple.com", "a@ex_ample.com",
		"a@ex\"ample.com", "a@ex&ample.com", "a@ex'ample.com",
		"a@ex:5222", "a@ex<ample.com", "a@ex>ample.com",
		"a@.example.com", "a@example..com", "..", "a@ex!ample.com",
		"a@ex*ample.com", "a@ex\\ample.com", "a@ex,ample.com",
		"a@ex%ample.com", "a@ex+ample.com",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(rejects(bad[i]));

	struct jid j;
	CHECK(jid_make(&j, "a", "ex/ample", NULL) == -1);
	CHECK(jid_make(&j, "a", "ex@ample", NULL) == -1);
	CHECK(jid_make(&j, "a", "", NULL) == -1);
	CHECK(jid_make(&j, "a", NULL, NULL) == -1);

	/* Labels of 63 bytes are fine, 64 are not. */
	char *l63 = repeat('a', 63), *l64 = repeat('a', 64);
	char buf[200];
	snprintf(buf, sizeof(buf), "x@%s.example", l63);
	CHECK(jid_parse(buf, &j) == 0);
	jid_clear(&j);
	snprintf(buf, sizeof(buf), "x@%s.example", l64);
	CHECK(rejects(buf));
	snprintf(buf, sizeof(buf), "x@example.%s", l64);
	CHECK(rejects(buf));
	free(l63);
	free(l64);
}

static void
test_controls(void)
{
	static const char *const bad[] = {
		"a\tb@x", "a\x7f@x", "a\x01@x", "a@x\x7f", "a@x/r\x01",
		"a@x/r\x7f", "a@x/r\n", "a@x/r\x1f", "a@x/\xc2\x85",
		"\xc2\x9f@x",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(rejects(bad[i]));
	/* U+00A0 is not a control: allowed in a resource. */
	CHECK(parses_as("a@x/\xc2\xa0", "a", "x", "\xc2\xa0"));
}

static void
test_utf8(void)
{
	static const char *const bad_seqs[] = {
		"\xc0\xaf",          /* overlong '/' */
		"\xc1\xbf",          /* overlong */
		"\xe0\x80\xaf",      /* overlong, 3 bytes */
		"\xf0\x80\x80\xaf",  /* overlong, 4 bytes */
		"\xed\xa0\x80",      /* surrogate U+D800 */
		"\xed\xbf\xbf",      /* surrogate U+DFFF */
		"\xf4\x90\x80\x80",  /* U+110000 */
		"\xf5\x80\x80\x80",  /* beyond any code point */
		"\xff",
		"\x80",              /* stray continuation */
		"\xc3",              /* truncated */
		"\xe2\x98",          /* truncated */
		"\xc3\x28",          /* bad continuation */
	};
	for (size_t i = 0; i < sizeof(bad_seqs) / sizeof(bad_seqs[0]); i++) {
		char buf[64];
		snprintf(buf, sizeof(buf), "a%s@x", bad_seqs[i]);
		CHECK(rejects(buf));
		snprintf(buf, sizeof(buf), "a@x%s", bad_seqs[i]);
		CHECK(rejects(buf));
		snprintf(buf, sizeof(buf), "a@x/r%s", bad_seqs[i]);
		CHECK(rejects(buf));
	}
	/* The edges of the valid ranges. */
	CHECK(parses_as("a@x/\xed\x9f\xbf", "a", "x", "\xed\x9f\xbf"));
	CHECK(parses_as("a@x/\xee\x80\x80", "a", "x", "\xee\x80\x80"));
	CHECK(parses_as("a@x/\xf4\x8f\xbf\xbf", "a", "x", "\xf4\x8f\xbf\xbf"));
	CHECK(parses_as("a@x/\xf0\x90\x80\x80", "a", "x", "\xf0\x90\x80\x80"));
	CHECK(parses_as("a@x/\xc2\xa9", "a", "x", "\xc2\xa9"));
}

static void
test_lengths(void)
{
	struct jid j;
	char *p1023 = repeat('a', 1023), *p1024 = repeat('a', 1024);
	char *buf = malloc(4096);

	snprintf(buf, 4096, "%s@x", p1023);
	CHECK(jid_parse(buf, &j) == 0 && strlen(j.local) == 1023);
	jid_clear(&j);
	snprintf(buf, 4096, "%s@x", p1024);
	CHECK(rejects(buf));

	snprintf(buf, 4096, "a@x/%s", p1023);
	CHECK(jid_parse(buf, &j) == 0 && strlen(j.resource) == 1023);
	jid_clear(&j);
	snprintf(buf, 4096, "a@x/%s", p1024);
	CHECK(rejects(buf));

	/* Domains: 16 labels of 63 bytes and 15 dots are 1023 bytes. */
	char *l63 = repeat('d', 63);
	buf[0] = '\0';
	for (int i = 0; i < 16; i++) {
		if (i > 0)
			strcat(buf, ".");
		strcat(buf, l63);
	}
	CHECK(strlen(buf) == 1023);
	CHECK(jid_parse(buf, &j) == 0 && strlen(j.domain) == 1023);
	jid_clear(&j);
	/* A trailing dot does not count: it is stripped first. */
	strcat(buf, ".");
	CHECK(jid_parse(buf, &j) == 0 && strlen(j.domain) == 1023);
	jid_clear(&j);
	buf[1023] = '\0';
	strcat(buf, ".d");
	CHECK(strlen(buf) == 1025);
	CHECK(rejects(buf));
	/* 1024 bytes, every label within 63: 62 + 15 * (1 + 63) + 2. */
	memcpy(buf, l63, 62);
	buf[62] = '\0';
	for (int i = 0; i < 15; i++) {
		strcat(buf, ".");
		strcat(buf, l63);
	}
	strcat(buf, ".a");
	CHECK(strlen(buf) == 1024);
	CHECK(rejects(buf));

	CHECK(jid_make(&j, p1023, "x", p1023) == 0);
	jid_clear(&j);
	CHECK(jid_make(&j, p1024, "x", NULL) == -1);
	CHECK(jid_make(&j, "a", "x", p1024) == -1);

	free(l63);
	free(p1023);
	free(p1024);
	free(buf);
}

static void
test_case_folding(void)
{
	CHECK(parses_as("Alice@Example.COM/Phone", "alice", "example.com",
	    "Phone"));
	CHECK(parses_as("EXAMPLE.ORG", NULL, "example.org", NULL));
	/* Only ASCII is folded; other text is kept as sent. */
	CHECK(parses_as("M\xc3\x9cLLER@X", "m\xc3\x9cller", "x", NULL));

	struct jid j;
	CHECK(jid_make(&j, "Bob", "Example.NET.", "Desk") == 0);
	CHECK_STR(j.local, "bob");
	CHECK_STR(j.domain, "example.net");
	CHECK_STR(j.resource, "Desk");
	jid_clear(&j);
}

static void
test_equality(void)
{
	struct jid a, b, c, d, e;
	CHECK(jid_parse("alice@example.com/phone", &a) == 0);
	CHECK(jid_parse("ALICE@Example.Com/phone", &b) == 0);
	CHECK(jid_parse("alice@example.com/Phone", &c) == 0);
	CHECK(jid_parse("alice@example.com", &d) == 0);
	CHECK(jid_parse("example.com/phone", &e) == 0);

	CHECK(jid_equal(&a, &b));
	CHECK(jid_bare_equal(&a, &b));
	CHECK(!jid_equal(&a, &c));      /* resources keep their case */
	CHECK(jid_bare_equal(&a, &c));
	CHECK(!jid_equal(&a, &d));      /* a resource vs none */
	CHECK(jid_bare_equal(&a, &d));
	CHECK(!jid_equal(&a, &e));      /* a localpart vs none */
	CHECK(!jid_bare_equal(&a, &e));
	CHECK(jid_equal(&d, &d));

	jid_clear(&a);
	jid_clear(&b);
	jid_clear(&c);
	jid_clear(&d);
	jid_clear(&e);
}

static void
test_to_string(void)
{
	static const char *const canonical[] = {
		"example.com", "alice@example.com", "alice@example.com/phone",
		"example.com/res", "a@b/c@d/e", "a@[::1]/x y",
		"#chan%irc.libera.chat@irc.example.org/nick",
	};
	for (size_t i = 0; i < sizeof(canonical) / sizeof(canonical[0]); i++) {
		struct jid j, k;
		CHECK(jid_parse(canonical[i], &j) == 0);
		char *s = jid_to_string(&j);
		CHECK_STR(s, canonical[i]);
		/* And the string parses back to the same JID. */
		CHECK(jid_parse(s, &k) == 0 && jid_equal(&j, &k));
		free(s);
		jid_clear(&k);
		jid_clear(&j);
	}

	struct jid j;
	CHECK(jid_parse("Alice@Example.com./Phone", &j) == 0);
	char *s = jid_to_string(&j), *b = jid_bare_string(&j);
	CHECK_STR(s, "alice@example.com/Phone");
	CHECK_STR(b, "alice@example.com");
	free(s);
	free(b);
	jid_clear(&j);

	CHECK(jid_parse("example.com/r", &j) == 0);
	b = jid_bare_string(&j);
	CHECK_STR(b, "example.com");
	free(b);
	jid_clear(&j);

	/* A cleared JID prints as "" rather than crashing. */
	s = jid_to_string(&j);
	CHECK_STR(s, "");
	free(s);
}

static void
test_make_and_copy(void)
{
	struct jid j, k;
	CHECK(jid_make(&j, NULL, "example.com", NULL) == 0);
	CHECK(j.local == NULL && j.resource == NULL);
	CHECK_STR(j.domain, "example.com");
	jid_clear(&j);

	CHECK(jid_make(&j, "alice", "example.com", "r/1@2") == 0);
	jid_copy(&k, &j);
	CHECK(jid_equal(&j, &k));
	CHECK(k.local != j.local && k.domain != j.domain &&
	    k.resource != j.resource);
	jid_clear(&j);
	CHECK(j.local == NULL && j.domain == NULL && j.resource == NULL);
	CHECK_STR(k.local, "alice");
	CHECK_STR(k.resource, "r/1@2");

	/* Copying a cleared JID gives a cleared JID. */
	jid_clear(&k);
	jid_copy(&j, &k);
	CHECK(j.local == NULL && j.domain == NULL && j.resource == NULL);

	/* jid_clear twice is harmless. */
	jid_clear(&j);
	jid_clear(&j);

	/* A failed make leaves out alone. */
	char marker;
	j = (struct jid){ &marker, &marker, &marker };
	CHECK(jid_make(&j, "a b", "x", NULL) == -1);
	CHECK(j.local == &marker && j.domain == &marker);
}

/* XEP-0106 section 5.1, with the exceptions of section 4.3. */
static const struct {
	const char *in, *escaped;
} xep_examples[] = {
	{ "space cadet", "space\\20cadet" },
	{ "call me \"ishmael\"", "call\\20me\\20\\22ishmael\\22" },
	{ "at&t guy", "at\\26t\\20guy" },
	{ "d'artagnan", "d\\27artagnan" },
	{ "/.fanboy", "\\2f.fanboy" },
	{ "::foo::", "\\3a\\3afoo\\3a\\3a" },
	{ "<foo>", "\\3cfoo\\3e" },
	{ "user@host", "user\\40host" },
	/*
	 * The XEP's table escapes these backslashes too (c\3a\5cnet), but
	 * its section 4.3 and our contract leave a backslash that starts no
	 * escape as it is; the XEP's forms are unescaped below.
	 */
	{ "c:\\net", "c\\3a\\net" },
	{ "c:\\\\net", "c\\3a\\\\net" },
	{ "c:\\cool stuff", "c\\3a\\cool\\20stuff" },
	{ "c:\\5commas", "c\\3a\\5c5commas" },
	/* 4.2 step 3: the Wireless Village address. */
	{ "\\3and\\2is\\5cool", "\\5c3and\\2is\\5c5cool" },
	/* 4.3: partial and unknown sequences are not touched. */
	{ "\\2plus\\2is\\4", "\\2plus\\2is\\4" },
	{ "foo\\bar", "foo\\bar" },
	{ "foob\\41r", "foob\\41r" },
	{ "alice@example.net", "alice\\40example.net" },
	{ "plain", "plain" },
	{ "trailing\\", "trailing\\" },
	{ "\\", "\\" },
	{ "\\5c", "\\5c5c" },
	{ "\\20", "\\5c20" },
};

static void
test_escape_examples(void)
{
	for (size_t i = 0; i < sizeof(xep_examples) / sizeof(xep_examples[0]);
	    i++) {
		char *e = jid_escape_local(xep_examples[i].in);
		CHECK_STR(e, xep_examples[i].escaped);
		char *u = jid_unescape_local(xep_examples[i].escaped);
		CHECK_STR(u, xep_examples[i].in);
		/* The escaped form is a valid localpart. */
		struct jid j;
		CHECK(jid_make(&j, e, "example.com", NULL) == 0);
		jid_clear(&j);
		free(e);
		free(u);
	}
}

static void
test_unescape(void)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		/* The XEP's own wire forms of examples 9 to 11. */
		{ "c\\3a\\5cnet", "c:\\net" },
		{ "c\\3a\\5c\\5cnet", "c:\\\\net" },
		{ "c\\3a\\5ccool\\20stuff", "c:\\cool stuff" },
		{ "\\20\\22\\26\\27\\2f\\3a\\3c\\3e\\40\\5c", " \"&'/:<>@\\" },
		/* Case is significant: upper-case codes are not escapes. */
		{ "a\\2Fb\\3Ac", "a\\2Fb\\3Ac" },
		{ "\\5c5c", "\\5c" },
		{ "\\", "\\" },
		{ "\\2", "\\2" },
		{ "x\\4", "x\\4" },
		{ "", "" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *u = jid_unescape_local(cases[i].in);
		CHECK_STR(u, cases[i].out);
		free(u);
	}
	CHECK(jid_unescape_local(NULL) == NULL);
}

static void
test_escape_refuses(void)
{
	CHECK(jid_escape_local(NULL) == NULL);
	CHECK(jid_escape_local("") == NULL);
	CHECK(jid_escape_local(" leading") == NULL);
	CHECK(jid_escape_local("trailing ") == NULL);
	CHECK(jid_escape_local(" ") == NULL);
	CHECK(jid_escape_local("bad\xc0\xafutf8") == NULL);
	CHECK(jid_escape_local("ctl\x01") == NULL);
	CHECK(jid_escape_local("tab\there") == NULL);

	char *p1023 = repeat('a', 1023), *p1024 = repeat('a', 1024);
	char *e = jid_escape_local(p1023);
	CHECK_STR(e, p1023);
	free(e);
	CHECK(jid_escape_local(p1024) == NULL);
	/* Short input whose escaped form is too long. */
	char *ats = repeat('@', 400);
	ats[0] = 'a';
	ats[399] = 'b';
	CHECK(jid_escape_local(ats) == NULL);
	/* 341 escapes are 1023 bytes: just fits. */
	char *fit = repeat('@', 341);
	e = jid_escape_local(fit);
	CHECK(e != NULL && strlen(e) == 1023);
	free(e);
	free(fit);
	free(ats);
	free(p1023);
	free(p1024);
}

/*
 * Every string of up to five characters from an alphabet full of
 * escape fragments: unescape(escape(s)) == s, the escaped form is a
 * localpart, and lower-casing it (as jid_make() does) unescapes to the
 * lower-cased original, never to a different string.
 */
static void
test_escape_round_trip(void)
{
	static const char alphabet[] = "\\250cCfF@ a:";
	const size_t na = sizeof(alphabet) - 1;
	char s[6];
	int failures = 0;
	size_t total = 0;

	for (size_t len = 1; len <= 5; len++) {
		size_t combos = 1;
		for (size_t i = 0; i < len; i++)
			combos *= na;
		for (size_t k = 0; k < combos; k++) {
			size_t x = k;
			for (size_t i = 0; i < len; i++) {
				s[i] = alphabet[x % na];
				x /= na;
			}
			s[len] = '\0';
			char *e = jid_escape_local(s);
			if (e == NULL) {
				if (s[0] != ' ' && s[len - 1] != ' ')
					failures++;
				continue;
			}
			total++;
			char *u = jid_unescape_local(e);
			if (strcmp(u, s) != 0 && failures++ < 5)
				printf("#   round trip: \"%s\" -> \"%s\" -> \"%s\"\n",
				    s, e, u);
			struct jid j;
			if (jid_make(&j, e, "x", NULL) != 0) {
				failures++;
			} else {
				char *lu = jid_unescape_local(j.local);
				char lower[6];
				for (size_t i = 0; i <= len; i++)
					lower[i] = (s[i] >= 'A' && s[i] <= 'Z') ?
					    (char)(s[i] - 'A' + 'a') : s[i];
				if (strcmp(lu, lower) != 0 && failures++ < 5)
					printf("#   folded: \"%s\" -> \"%s\" -> "
					    "\"%s\"\n", s, j.local, lu);
				free(lu);
				jid_clear(&j);
			}
			free(u);
			free(e);
		}
	}
	CHECK(failures == 0);
	CHECK(total > 100000);
}

int
main(void)
{
	RUN(test_valid_forms);
	RUN(test_ip_literals);
	RUN(test_trailing_dot);
	RUN(test_invalid_structure);
	RUN(test_invalid_local);
	RUN(test_invalid_domain);
	RUN(test_controls);
	RUN(test_utf8);
	RUN(test_lengths);
	RUN(test_case_folding);
	RUN(test_equality);
	RUN(test_to_string);
	RUN(test_make_and_copy);
	RUN(test_escape_examples);
	RUN(test_unescape);
	RUN(test_escape_refuses);
	RUN(test_escape_round_trip);
	return TAP_DONE();
}
