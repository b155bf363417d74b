/*
 * Unit tests of access lists: each entry form, label-aligned subdomain
 * matching, case folding, resources, and the entries that are skipped.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "jid.h"
#include "log.h"
#include "tap.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* 1 or 0 as access_list_match says; -1 when s is not a JID at all. */
static int
match(const struct access_list *l, const char *s)
{
	struct jid j;
	if (jid_parse(s, &j) == -1) {
		printf("# bad JID in test: %s\n", s);
		return -1;
	}
	int r = access_list_match(l, &j);
	jid_clear(&j);
	return r;
}

static void
test_star(void)
{
	static const char *const e[] = { "*" };
	struct access_list *l = access_list_new(e, NELEM(e));
	CHECK(access_list_count(l) == 1);
	CHECK(match(l, "alice@example.org") == 1);
	CHECK(match(l, "example.org") == 1);
	CHECK(match(l, "bob@other.net/phone") == 1);
	CHECK(match(l, "x@[::1]") == 1);
	access_list_free(l);
}

static void
test_empty(void)
{
	struct access_list *l = access_list_new(NULL, 0);
	CHECK(access_list_count(l) == 0);
	CHECK(match(l, "alice@example.org") == 0);
	CHECK(match(l, "example.org") == 0);
	access_list_free(l);
}

static void
test_domain(void)
{
	static const char *const e[] = { "example.org" };
	struct access_list *l = access_list_new(e, NELEM(e));
	CHECK(access_list_count(l) == 1);
	CHECK(match(l, "alice@example.org") == 1);
	CHECK(match(l, "bob@example.org/res") == 1);
	CHECK(match(l, "example.org") == 1);
	CHECK(match(l, "example.org/res") == 1);
	CHECK(match(l, "alice@a.example.org") == 0);
	CHECK(match(l, "a.example.org") == 0);
	CHECK(match(l, "alice@badexample.org") == 0);
	CHECK(match(l, "alice@example.org.evil") == 0);
	CHECK(match(l, "alice@example.com") == 0);
	CHECK(match(l, "alice@org") == 0);
	access_list_free(l);
}

static void
test_subdomains(void)
{
	static const char *const e[] = { "*.example.org" };
	struct access_list *l = access_list_new(e, NELEM(e));
	CHECK(access_list_count(l) == 1);
	CHECK(match(l, "example.org") == 1);
	CHECK(match(l, "alice@example.org") == 1);
	CHECK(match(l, "a.example.org") == 1);
	CHECK(match(l, "alice@a.example.org/r") == 1);
	CHECK(match(l, "b.a.example.org") == 1);
	CHECK(match(l, "carol@b.a.example.org") == 1);
	CHECK(match(l, "badexample.org") == 0);
	CHECK(match(l, "alice@badexample.org") == 0);
	CHECK(match(l, "alice@a.badexample.org") == 0);
	CHECK(match(l, "alice@example.org.evil") == 0);
	CHECK(match(l, "alice@xample.org") == 0);
	CHECK(match(l, "org") == 0);
	access_list_free(l);
}

static void
test_bare_jid(void)
{
	static const char *const e[] = { "alice@example.org" };
	struct access_list *l = access_list_new(e, NELEM(e));
	CHECK(access_list_count(l) == 1);
	CHECK(match(l, "alice@example.org") == 1);
	CHECK(match(l, "alice@example.org/phone") == 1);
	CHECK(match(l, "alice@example.org/a/b@c") == 1);
	CHECK(match(l, "bob@example.org") == 0);
	CHECK(match(l, "example.org") == 0);
	CHECK(match(l, "alice@a.example.org") == 0);
	CHECK(match(l, "alice@example.net") == 0);
	CHECK(match(l, "alicex@example.org") == 0);
	CHECK(match(l, "xalice@example.org") == 0);
	access_list_free(l);
}

static void
test_case_folding(void)
{
	static const char *const e[] = { "ALICE@Example.ORG", "*.Sub.NET",
	    "Other.COM" };
	struct access_list *l = access_list_new(e, NELEM(e));
	CHECK(access_list_count(l) == 3);
	CHECK(match(l, "alice@example.org") == 1);
	CHECK(match(l, "Alice@EXAMPLE.org/Phone") == 1);
	CHECK(match(l, "x@a.sub.net") == 1);
	CHECK(match(l, "x@A.SUB.NET") == 1);
	CHECK(match(l, "y@other.com") == 1);
	CHECK(match(l, "bob@example.org") == 0);
	access_list_free(l);

	static const char *const e2[] = { "alice@example.org" };
	l = access_list_new(e2, NELEM(e2));
	CHECK(match(l, "ALICE@Example.ORG") == 1);
	access_list_free(l);
}

/* A trailing dot is stripped on both sides (RFC 7622 3.2). */
static void
test_trailing_dot(void)
{
	static const char *const e[] = { "example.org.", "*.sub.net." };
	struct access_list *l = access_list_new(e, NELEM(e));
	CHECK(access_list_count(l) == 2);
	CHECK(match(l, "alice@example.org") == 1);
	CHECK(match(l, "alice@example.org.") == 1);
	CHECK(match(l, "a.sub.net") == 1);
	access_list_free(l);
}

static void
test_several(void)
{
	static const char *const e[] = { "alice@example.org", "*.corp.net",
	    "guests.example.org" };
	struct access_list *l = access_list_new(e, NELEM(e));
	CHECK(access_list_count(l) == 3);
	CHECK(match(l, "alice@example.org") == 1);
	CHECK(match(l, "bob@example.org") == 0);
	CHECK(match(l, "bob@dev.corp.net") == 1);
	CHECK(match(l, "bob@guests.example.org") == 1);
	CHECK(match(l, "bob@x.guests.example.org") == 0);
	access_list_free(l);

	/* "*" anywhere in the list lets everyone in. */
	static const char *const e2[] = { "alice@example.org", "*" };
	l = access_list_new(e2, NELEM(e2));
	CHECK(match(l, "anyone@anywhere.test") == 1);
	access_list_free(l);
}

/* Bad entries are skipped (with a warning), the good ones kept. */
static void
test_skipped(void)
{
	static const char *const e[] = {
		"",
		"alice@example.org/phone",	/* entries are bare */
		"*.alice@example.org",		/* a wildcard is a domain */
		"*@example.org",		/* means the domain: say so */
		"**.example.org",
		"*example.org",
		"a..b",
		"@example.org",
		"bob@example.org",		/* the one good entry */
	};
	log_set_level(LOG_LEVEL_ERROR);	/* the warnings are expected */
	struct access_list *l = access_list_new(e, NELEM(e));
	log_set_level(LOG_LEVEL_DEBUG);
	CHECK(access_list_count(l) == 1);
	CHECK(match(l, "bob@example.org") == 1);
	CHECK(match(l, "alice@example.org") == 0);
	CHECK(match(l, "x@example.org") == 0);
	CHECK(match(l, "x@a.example.org") == 0);
	access_list_free(l);
}

/* A cleared JID (no domain) is no one, even for "*"; NULLs are safe. */
static void
test_degenerate(void)
{
	static const char *const e[] = { "*", "example.org" };
	struct access_list *l = access_list_new(e, NELEM(e));
	struct jid none = { 0 };
	CHECK(access_list_match(l, &none) == 0);
	CHECK(access_list_match(l, NULL) == 0);
	CHECK(access_list_match(NULL, &none) == 0);
	CHECK(access_list_count(NULL) == 0);
	access_list_free(l);
	access_list_free(NULL);
}

int
main(void)
{
	log_init(LOG_LEVEL_DEBUG, 0);
	RUN(test_star);
	RUN(test_empty);
	RUN(test_domain);
	RUN(test_subdomains);
	RUN(test_bare_jid);
	RUN(test_case_folding);
	RUN(test_trailing_dot);
	RUN(test_several);
	RUN(test_skipped);
	RUN(test_degenerate);
	return TAP_DONE();
}
