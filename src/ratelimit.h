/*
 * Fixed-window rate limits by key: at most limit takes per key in any
 * window of window seconds (counted from the key's first take in it).
 * Used where a user can make causeway do costly work for them on demand
 * (an email registration connects to servers the user names).
 *
 * Memory is bounded: entries whose window ended are dropped as takes
 * come, and beyond RATELIMIT_KEYS live keys a new key is refused (the
 * caller then answers "try later", which is what an attacker making up
 * keys should get).  Loop thread only.
 */
#ifndef CAUSEWAY_RATELIMIT_H
#define CAUSEWAY_RATELIMIT_H

#include <time.h>

#define RATELIMIT_KEYS 10000

struct ratelimit;

struct ratelimit *ratelimit_new(void);
void ratelimit_free(struct ratelimit *rl);
/*
 * One take for key at now under (limit, window): 1 when allowed (and
 * counted), 0 when over the limit, with *retry (may be NULL) the seconds
 * until the key's window ends.  limit 0 means no limit.
 */
int ratelimit_take(struct ratelimit *rl, const char *key, unsigned limit,
    int window, time_t now, int *retry);
/* Live keys, for tests. */
unsigned ratelimit_size(const struct ratelimit *rl);

#endif
