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
 * are skipped with a warning, and so is "*@domain", which is a valid
 * JID but is meant as "domain"; "*.user@domain" is skipped too).  Any
 * entry form is accepted: keeping admins to bare JIDs is the
 * configuration's check. */
struct access_list *access_list_new(const char *const *entries, size_t n);
void access_list_free(struct access_list *l);
/* 1 when the JID (any resource) matches an entry, else 0.  who is a
 * parsed (case-folded) JID; a cleared one (no domain) matches nothing,
 * not even "*". */
int access_list_match(const struct access_list *l, const struct jid *who);
/* Entries kept, i.e. without the skipped ones. */
size_t access_list_count(const struct access_list *l);

#endif
