/*
 * Secrets out of logs (see redact.h).  The stanza is copied, the copy's
 * secret values are swapped for REDACTED, and the copy is serialized:
 * the original goes on to the router untouched.
 */
#include "autoconf.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "backend.h"
#include "form.h"
#include "redact.h"
#include "stanza.h"
#include "xmalloc.h"

static int
contains_ci(const char *s, const char *word)
{
	size_t n = strlen(word);
	for (; *s != '\0'; s++)
		if (strncasecmp(s, word, n) == 0)
			return 1;
	return 0;
}

int
redact_is_secret_field(const char *var, const char *type,
    const struct backend *b)
{
	if (type != NULL && strcmp(type, "text-private") == 0)
		return 1;
	if (var == NULL)
		return 0;
	/* Settings scope fields to a server: "irc.example.org/sasl_password". */
	const char *slash = strrchr(var, '/');
	const char *name = slash != NULL ? slash + 1 : var;
	static const char *const words[] = { "password", "passwd", "secret",
	    "token", "nickserv", "passphrase" };
	for (size_t i = 0; i < sizeof(words) / sizeof(*words); i++)
		if (contains_ci(name, words[i]))
			return 1;
	for (size_t i = 0; b != NULL && i < b->nregister_fields; i++) {
		const struct form_field_spec *f = &b->register_fields[i];
		if (f->var != NULL && (f->secret || f->type ==
		    FIELD_TEXT_PRIVATE) && strcmp(f->var, name) == 0)
			return 1;
	}
	return 0;
}

int
redact_is_nickserv(const char *to, const char *body)
{
	if (to != NULL) {
		size_t n = strcspn(to, "%@/");
		if (n == 8 && strncasecmp(to, "nickserv", 8) == 0)
			return 1;
	}
	if (body == NULL)
		return 0;
	while (isspace((unsigned char)*body))
		body++;
	static const char *const cmds[] = { "/msg nickserv", "/ns ",
	    "/nickserv", "/quote pass", "/pass " };
	for (size_t i = 0; i < sizeof(cmds) / sizeof(*cmds); i++)
		if (strncasecmp(body, cmds[i], strlen(cmds[i])) == 0)
			return 1;
	return 0;
}

/* Replaces child's text by REDACTED, keeping its place among its
 * siblings' kinds (it is moved to the end of parent: fine for a log). */
static void
replace_text(struct stanza *parent, struct stanza *child)
{
	struct stanza *fresh = stanza_new(stanza_name(child),
	    stanza_ns(child));
	stanza_add_text(fresh, REDACTED, strlen(REDACTED));
	stanza_remove_child(parent, child);
	stanza_free(child);
	stanza_add_child(parent, fresh);
}

static int
is(const struct stanza *st, const char *name, const char *ns)
{
	const char *n = stanza_ns(st);
	return strcmp(stanza_name(st), name) == 0 && (ns == NULL ||
	    (n != NULL && strcmp(n, ns) == 0));
}

static void
redact_tree(struct stanza *st, const struct backend *b, const char *to)
{
	if (is(st, "field", NS_DATA) && redact_is_secret_field(
	    stanza_attr(st, "var"), stanza_attr(st, "type"), b)) {
		struct stanza *c = stanza_first_child(st);
		while (c != NULL) {
			struct stanza *next = stanza_next_sibling(c);
			if (is(c, "value", NULL))
				replace_text(st, c);
			c = next;
		}
		return;
	}
	struct stanza *c = stanza_first_child(st);
	/* Children that get replaced are appended at the end: stop at the
	 * first of those, which is the old last child's next. */
	struct stanza *last = NULL;
	for (struct stanza *k = c; k != NULL; k = stanza_next_sibling(k))
		last = k;
	while (c != NULL) {
		struct stanza *next = c == last ? NULL :
		    stanza_next_sibling(c);
		if (is(c, "password", "jabber:iq:register") ||
		    (is(c, "body", NULL) && is(st, "message", NULL) &&
		    redact_is_nickserv(to, NULL))) {
			replace_text(st, c);
		} else if (is(c, "body", NULL) && is(st, "message", NULL)) {
			char *body = stanza_text(c);
			if (redact_is_nickserv(NULL, body))
				replace_text(st, c);
			free(body);
		} else {
			redact_tree(c, b, to);
		}
		c = next;
	}
}

char *
redact_stanza_text(const struct stanza *st, const struct backend *b)
{
	struct stanza *copy = stanza_copy(st);
	redact_tree(copy, b, stanza_attr(copy, "to"));
	char *s = stanza_to_string(copy);
	stanza_free(copy);
	return s;
}
