/*
 * Access lists: "*", "domain", "*.domain" and bare JIDs, matched against
 * a sender's JID.
 *
 * Every entry is normalised once, here, through jid_parse() (case
 * folding, trailing dot), and so is the JID being matched (it arrived as
 * a struct jid), so matching is byte comparison of folded parts.  The
 * list is small (an operator's configuration), so a linear scan per
 * stanza costs less than any index would.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "jid.h"
#include "log.h"
#include "xmalloc.h"

enum entry_kind {
	ENTRY_ANY,		/* "*" */
	ENTRY_DOMAIN,		/* "example.org": users of exactly it */
	ENTRY_SUBDOMAINS,	/* "*.example.org": it and below */
	ENTRY_BARE,		/* "alice@example.org" */
};

struct entry {
	enum entry_kind kind;
	char *local;		/* ENTRY_BARE only */
	char *domain;		/* folded; NULL for ENTRY_ANY */
};

struct access_list {
	struct entry *entries;
	size_t n;
};

/*
 * Parses one entry into e.  0, or -1 with a warning that names the entry
 * (an operator's own text, not a secret).
 */
static int
entry_parse(const char *s, struct entry *e)
{
	struct jid j;
	int wildcard = 0;

	if (s == NULL || s[0] == '\0') {
		log_warn("access: skipping an empty entry");
		return -1;
	}
	if (strcmp(s, "*") == 0) {
		*e = (struct entry){ .kind = ENTRY_ANY };
		return 0;
	}
	if (strncmp(s, "*.", 2) == 0) {
		wildcard = 1;
		s += 2;
	}
	if (jid_parse(s, &j) == -1) {
		log_warn("access: skipping '%s%s': not a domain, *.domain, "
		    "bare JID or *", wildcard ? "*." : "", s);
		return -1;
	}
	if (j.resource != NULL) {
		log_warn("access: skipping '%s%s': entries are bare; drop "
		    "the '/%s'", wildcard ? "*." : "", s, j.resource);
		jid_clear(&j);
		return -1;
	}
	if (wildcard && j.local != NULL) {
		log_warn("access: skipping '*.%s': a wildcard covers a domain, "
		    "not a user; write '*.%s' or '%s'", s, j.domain, s);
		jid_clear(&j);
		return -1;
	}
	/*
	 * "*@example.org" is a valid JID (a user named "*"), but an operator
	 * who writes it means the domain; skip it rather than match a user
	 * nobody has and leave the whole domain out silently.
	 */
	if (j.local != NULL && strcmp(j.local, "*") == 0) {
		log_warn("access: skipping '%s': write '%s' for every user "
		    "of that domain", s, j.domain);
		jid_clear(&j);
		return -1;
	}

	if (wildcard)
		e->kind = ENTRY_SUBDOMAINS;
	else if (j.local != NULL)
		e->kind = ENTRY_BARE;
	else
		e->kind = ENTRY_DOMAIN;
	e->local = j.local;	/* the entry takes both parts */
	e->domain = j.domain;
	return 0;
}

struct access_list *
access_list_new(const char *const *entries, size_t n)
{
	struct access_list *l = xcalloc(1, sizeof(*l));
	if (n > 0)
		l->entries = xcalloc(n, sizeof(*l->entries));
	for (size_t i = 0; i < n; i++) {
		if (entry_parse(entries[i], &l->entries[l->n]) == 0)
			l->n++;
	}
	return l;
}

void
access_list_free(struct access_list *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->n; i++) {
		free(l->entries[i].local);
		free(l->entries[i].domain);
	}
	free(l->entries);
	free(l);
}

size_t
access_list_count(const struct access_list *l)
{
	return l != NULL ? l->n : 0;
}

/*
 * 1 when domain is base or ends in "." base: label-aligned, so
 * "badexample.org" is not under "example.org".
 */
static int
domain_under(const char *domain, const char *base)
{
	size_t dl = strlen(domain), bl = strlen(base);
	if (dl == bl)
		return strcmp(domain, base) == 0;
	if (dl < bl + 1)
		return 0;
	return domain[dl - bl - 1] == '.' &&
	    strcmp(domain + dl - bl, base) == 0;
}

static int
entry_match(const struct entry *e, const struct jid *who)
{
	switch (e->kind) {
	case ENTRY_ANY:
		return 1;
	case ENTRY_DOMAIN:
		return strcmp(e->domain, who->domain) == 0;
	case ENTRY_SUBDOMAINS:
		return domain_under(who->domain, e->domain);
	case ENTRY_BARE:
		return who->local != NULL &&
		    strcmp(e->local, who->local) == 0 &&
		    strcmp(e->domain, who->domain) == 0;
	}
	return 0;
}

int
access_list_match(const struct access_list *l, const struct jid *who)
{
	/* A cleared JID is no one: not even "*" lets it in. */
	if (l == NULL || who == NULL || who->domain == NULL)
		return 0;
	for (size_t i = 0; i < l->n; i++) {
		if (entry_match(&l->entries[i], who))
			return 1;
	}
	return 0;
}
