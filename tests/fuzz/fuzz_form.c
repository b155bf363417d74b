/*
 * libFuzzer harness for the data-form parser and validator (src/form.c)
 * with the XML stream parser in front, as submissions arrive: the input
 * is the bytes after a component stream header; every <x
 * xmlns='jabber:x:data'/> found in a stanza (at any depth) goes through
 * form_parse() and, when it parses, form_validate() against a table with
 * every field type.  Checked: a refusal has a text and no form; a parsed
 * form's values are within the limits and hold no NUL; a form that
 * validates has no CR or LF in a single-line field; an error text never
 * quotes a submitted value of the secret field.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "form.h"
#include "log.h"
#include "stanza.h"
#include "xmlstream.h"

#define PREFIX "<?xml version='1.0'?><stream:stream " \
	"xmlns:stream='http://etherx.jabber.org/streams' " \
	"xmlns='jabber:component:accept' from='fuzz.example.org' id='f1'>"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const opts[] = { "a", "b", "c", NULL };

static const struct form_field_spec specs[] = {
	{ .var = "user", .type = FIELD_TEXT_SINGLE, .label = "User",
	    .required = 1, .max_len = 64 },
	{ .var = "password", .type = FIELD_TEXT_PRIVATE, .label = "Password",
	    .secret = 1 },
	{ .var = "notes", .type = FIELD_TEXT_MULTI },
	{ .var = "tls", .type = FIELD_BOOLEAN },
	{ .var = "one", .type = FIELD_LIST_SINGLE, .options = opts },
	{ .var = "many", .type = FIELD_LIST_MULTI, .options = opts },
	{ .var = "owner", .type = FIELD_JID_SINGLE },
	{ .var = "session", .type = FIELD_HIDDEN },
	{ .var = NULL, .type = FIELD_FIXED, .def = "Fixed" },
};
#define NSPECS (sizeof(specs) / sizeof(specs[0]))

static int
multi(const char *var)
{
	return strcmp(var, "notes") == 0 || strcmp(var, "many") == 0;
}

static void
check_form(const struct stanza *x)
{
	struct form *f = (struct form *)1;
	char *err = NULL;
	if (form_parse(x, &f, &err) != 0) {
		if (f != NULL || err == NULL || *err == '\0')
			abort();
		free(err);
		return;
	}
	if (f == NULL || err != NULL)
		abort();
	const char *var;
	for (size_t i = 0; (var = form_var_at(f, i)) != NULL; i++) {
		const char *const *v;
		size_t n = form_values(f, var, &v);
		if (n > FORM_MAX_VALUES || i >= FORM_MAX_FIELDS)
			abort();
		for (size_t j = 0; j < n; j++)
			if (strlen(v[j]) > FORM_MAX_VALUE_LEN)
				abort();
	}
	const char *bad = NULL;
	char *text = NULL;
	if (form_validate(f, "urn:fuzz", specs, NSPECS, &bad, &text) == 0) {
		if (bad != NULL || text != NULL)
			abort();
		for (size_t i = 0; (var = form_var_at(f, i)) != NULL; i++) {
			const char *const *v;
			size_t n = form_values(f, var, &v);
			for (size_t j = 0; j < n && !multi(var); j++)
				if (strpbrk(v[j], "\r\n") != NULL)
					abort();
		}
	} else {
		if (bad == NULL || text == NULL || *text == '\0')
			abort();
		/* Texts may quote a field's var (the user named it), never a
		 * value: unless some var holds the password too, it must not
		 * appear. */
		const char *pw = form_value(f, "password");
		int in_var = 0;
		for (size_t i = 0; pw != NULL && (var = form_var_at(f, i)) !=
		    NULL; i++)
			in_var |= strstr(var, pw) != NULL;
		if (pw != NULL && strlen(pw) >= 6 && !in_var &&
		    strstr(text, pw) != NULL)
			abort();
		free(text);
	}
	form_free(f);
}

static void
walk(const struct stanza *st, int depth)
{
	if (depth > 64)
		return;
	const char *ns = stanza_ns(st);
	if (strcmp(stanza_name(st), "x") == 0 && ns != NULL &&
	    strcmp(ns, NS_DATA) == 0)
		check_form(st);
	for (const struct stanza *c = stanza_first_child(st); c != NULL;
	    c = stanza_next_sibling(c))
		walk(c, depth + 1);
}

static void
on_stanza(void *arg, struct stanza *st)
{
	(void)arg;
	walk(st, 0);
	stanza_free(st);
}

static const struct xmlstream_callbacks cb = { .stanza = on_stanza };

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_init(LOG_LEVEL_ERROR, 0);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct xmlstream *xs = xmlstream_new(&cb, NULL, 0, 0);
	if (xmlstream_feed(xs, PREFIX, strlen(PREFIX)) == 0)
		xmlstream_feed(xs, (const char *)data, size);
	xmlstream_free(xs);
	return 0;
}
