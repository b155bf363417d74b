/*
 * Fixed-window rate limits (see ratelimit.h).  A singly linked list:
 * the takes it counts are rare (registration checks), and every take
 * walks it once anyway to drop the entries whose window ended.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "ratelimit.h"
#include "xmalloc.h"

struct entry {
	struct entry *next;
	char *key;
	time_t start;
	unsigned count;
};

struct ratelimit {
	struct entry *head;
	unsigned n;
};

struct ratelimit *
ratelimit_new(void)
{
	return xcalloc(1, sizeof(struct ratelimit));
}

void
ratelimit_free(struct ratelimit *rl)
{
	if (rl == NULL)
		return;
	while (rl->head != NULL) {
		struct entry *e = rl->head;
		rl->head = e->next;
		free(e->key);
		free(e);
	}
	free(rl);
}

int
ratelimit_take(struct ratelimit *rl, const char *key, unsigned limit,
    int window, time_t now, int *retry)
{
	struct entry *found = NULL;
	if (retry != NULL)
		*retry = 0;
	if (limit == 0)
		return 1;
	for (struct entry **p = &rl->head; *p != NULL; ) {
		struct entry *e = *p;
		/* A clock stepped back counts as a window that ended. */
		if (now - e->start >= window || now < e->start) {
			*p = e->next;
			free(e->key);
			free(e);
			rl->n--;
			continue;
		}
		if (strcmp(e->key, key) == 0)
			found = e;
		p = &e->next;
	}
	if (found == NULL) {
		if (rl->n >= RATELIMIT_KEYS) {
			if (retry != NULL)
				*retry = window;
			return 0;
		}
		found = xcalloc(1, sizeof(*found));
		found->key = xstrdup(key);
		found->start = now;
		found->next = rl->head;
		rl->head = found;
		rl->n++;
	}
	if (found->count >= limit) {
		if (retry != NULL)
			*retry = (int)(found->start + window - now);
		return 0;
	}
	found->count++;
	return 1;
}

unsigned
ratelimit_size(const struct ratelimit *rl)
{
	return rl->n;
}
