/*
 * Allocation that never returns NULL: on failure it logs and exits.
 * A gateway that carries on with a NULL pointer corrupts users' state;
 * one that exits is restarted by its supervisor with the store intact.
 */
#ifndef CAUSEWAY_XMALLOC_H
#define CAUSEWAY_XMALLOC_H

#include <stddef.h>

#include "log.h"

void *xmalloc(size_t size);
void *xcalloc(size_t nmemb, size_t size);
void *xreallocarray(void *ptr, size_t nmemb, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) CW_PRINTF(1, 2);

#endif
