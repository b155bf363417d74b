/*
 * A growable byte buffer for the email backend's text builders, always
 * NUL-terminated.  Allocation failure is fatal (xmalloc), so callers
 * never check.
 */
#ifndef CAUSEWAY_EMAIL_BUF_H
#define CAUSEWAY_EMAIL_BUF_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "xmalloc.h"

struct ebuf {
	char *p;
	size_t len, cap;
};

static inline void
ebuf_add(struct ebuf *b, const void *data, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		b->p = xreallocarray(b->p, cap, 1);
		b->cap = cap;
	}
	if (n > 0)
		memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static inline void
ebuf_str(struct ebuf *b, const char *s)
{
	ebuf_add(b, s, strlen(s));
}

static inline void
ebuf_ch(struct ebuf *b, char c)
{
	ebuf_add(b, &c, 1);
}

static inline void ebuf_fmt(struct ebuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline void
ebuf_fmt(struct ebuf *b, const char *fmt, ...)
{
	char small[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof(small)) {
		ebuf_add(b, small, (size_t)n);
		return;
	}
	char *big = xmalloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	ebuf_add(b, big, (size_t)n);
	free(big);
}

/* The text (caller frees); the buffer is empty afterwards. */
static inline char *
ebuf_take(struct ebuf *b)
{
	char *p = b->p;
	if (p == NULL)
		p = xstrdup("");
	b->p = NULL;
	b->len = b->cap = 0;
	return p;
}

#endif
