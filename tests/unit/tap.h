/*
 * A few lines of TAP for causeway's unit tests: every RUN() prints
 * "ok N - name" or "not ok N - name", CHECK() failures print the file,
 * line and expression and let the test go on, so one run shows every
 * broken check.  tests/run.sh counts the ok / not ok lines.
 */
#ifndef CAUSEWAY_TAP_H
#define CAUSEWAY_TAP_H
#include <stdio.h>
#include <string.h>

static int tap_count, tap_failures, tap_current_failed;

#define CHECK(cond) do { \
	if (!(cond)) { \
		tap_current_failed = 1; \
		printf("#   %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
	} \
} while (0)

#define CHECK_STR(a, b) do { \
	const char *tap_a_ = (a), *tap_b_ = (b); \
	if (tap_a_ == NULL || tap_b_ == NULL || strcmp(tap_a_, tap_b_) != 0) { \
		tap_current_failed = 1; \
		printf("#   %s:%d: %s == \"%s\", expected \"%s\"\n", __FILE__, \
		    __LINE__, #a, tap_a_ ? tap_a_ : "(null)", tap_b_ ? tap_b_ : "(null)"); \
	} \
} while (0)

#define RUN(fn) do { \
	tap_current_failed = 0; \
	fn(); \
	tap_count++; \
	if (tap_current_failed) \
		tap_failures++; \
	printf("%sok %d - %s\n", tap_current_failed ? "not " : "", tap_count, #fn); \
	fflush(stdout); \
} while (0)

#define TAP_DONE() (printf("1..%d\n", tap_count), tap_failures ? 1 : 0)

#endif
