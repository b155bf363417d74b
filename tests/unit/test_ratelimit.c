/* Unit tests of the fixed-window rate limits (src/ratelimit.c). */
#include "autoconf.h"

#include <stdio.h>

#include "ratelimit.h"
#include "tap.h"

static void
test_limit_and_window(void)
{
	struct ratelimit *rl = ratelimit_new();
	int retry = -1;
	for (int i = 0; i < 3; i++)
		CHECK(ratelimit_take(rl, "alice@example.org", 3, 600, 1000 + i,
		    &retry) == 1);
	CHECK(ratelimit_take(rl, "alice@example.org", 3, 600, 1010,
	    &retry) == 0);
	CHECK(retry == 590);
	/* Another key is counted apart. */
	CHECK(ratelimit_take(rl, "bob@example.org", 3, 600, 1010, NULL) == 1);
	/* The window ends 600 s after the first take. */
	CHECK(ratelimit_take(rl, "alice@example.org", 3, 600, 1599,
	    NULL) == 0);
	CHECK(ratelimit_take(rl, "alice@example.org", 3, 600, 1600,
	    NULL) == 1);
	/* Expired entries go: bob's window ended too. */
	CHECK(ratelimit_take(rl, "carol@example.org", 3, 600, 1700,
	    NULL) == 1);
	CHECK(ratelimit_size(rl) == 2);
	/* limit 0: no limit, nothing kept. */
	for (int i = 0; i < 100; i++)
		CHECK(ratelimit_take(rl, "x", 0, 600, 1700, NULL) == 1);
	ratelimit_free(rl);
}

static void
test_bounded(void)
{
	struct ratelimit *rl = ratelimit_new();
	char key[32];
	int ok = 1;
	for (int i = 0; i < RATELIMIT_KEYS; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		ok &= ratelimit_take(rl, key, 1, 60, 5000, NULL) == 1;
	}
	CHECK(ok);
	int retry = 0;
	CHECK(ratelimit_take(rl, "one-too-many", 1, 60, 5000, &retry) == 0);
	CHECK(retry == 60);
	CHECK(ratelimit_size(rl) == RATELIMIT_KEYS);
	/* Once their windows end, new keys are taken again. */
	CHECK(ratelimit_take(rl, "later", 1, 60, 5060, NULL) == 1);
	CHECK(ratelimit_size(rl) == 1);
	ratelimit_free(rl);
}

int
main(void)
{
	RUN(test_limit_and_window);
	RUN(test_bounded);
	return TAP_DONE();
}
