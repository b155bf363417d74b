/*
 * Who may use a component: the allow and admins lists of its
 * configuration section.  An allow entry is "*" (anyone), "domain"
 * (every user of that domain), "*.domain" (that domain and every
 * subdomain) or a bare JID; admins are bare JIDs.  Comparisons use the
 * JID rules (case-folded local and domain parts).
 */
#ifndef CAUSEWAY_ACCESS_H
#define CAUSEWAY_ACCESS_H

#include <stddef.h>

struct access_list;
struct jid;

/* Entries as validated by the configuration; NULL never (bad entries
 * are skipped with a warning). */
struct access_list *access_list_new(const char *const *entries, size_t n);
void access_list_free(struct access_list *l);
/* 1 when the JID (any resource) matches an entry, else 0. */
int access_list_match(const struct access_list *l, const struct jid *who);
size_t access_list_count(const struct access_list *l);

#endif
