/*
 * XEP-0004 data forms.  Two directions, one table of specs:
 *
 *   specs (+ prefilled values) -> form_build() -> <x type='form'/> to the user
 *   <x type='submit'/> from the user -> form_parse() -> struct form
 *                                   -> form_validate(specs) -> values to use
 *
 * form_parse() only checks what bounds the memory a submission can make us
 * hold (field and value counts, value and var lengths) and what makes the
 * form ambiguous (fields without var, duplicate vars); what the values
 * mean is form_validate()'s job, because only the specs know it.  The
 * hidden FORM_TYPE field is kept apart from the other fields: it says
 * which form this is, it is not a value the user filled in.
 *
 * Error texts name the field (its label when the spec has one, else its
 * var) but never quote a submitted value: the value may be a password.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "form.h"
#include "jid.h"
#include "log.h"
#include "stanza.h"
#include "xmalloc.h"

#define FORM_TYPE_VAR "FORM_TYPE"

struct form_entry {
	char *var;
	char **values;
	size_t nvalues;
};

struct form {
	char *kind;         /* type attribute as sent; NULL from form_new() */
	char *type;         /* the FORM_TYPE value, NULL when absent */
	struct form_entry *fields;
	size_t nfields;
};

static const char *const field_type_names[] = {
	[FIELD_TEXT_SINGLE] = "text-single",
	[FIELD_TEXT_PRIVATE] = "text-private",
	[FIELD_TEXT_MULTI] = "text-multi",
	[FIELD_BOOLEAN] = "boolean",
	[FIELD_LIST_SINGLE] = "list-single",
	[FIELD_LIST_MULTI] = "list-multi",
	[FIELD_JID_SINGLE] = "jid-single",
	[FIELD_FIXED] = "fixed",
	[FIELD_HIDDEN] = "hidden",
};

static const char *const form_kinds[] = {
	"form", "submit", "cancel", "result",
};

/* ---- the value store ---- */

struct form *
form_new(void)
{
	return xcalloc(1, sizeof(struct form));
}

void
form_free(struct form *f)
{
	if (f == NULL)
		return;
	for (size_t i = 0; i < f->nfields; i++) {
		struct form_entry *e = &f->fields[i];
		for (size_t j = 0; j < e->nvalues; j++)
			free(e->values[j]);
		free(e->values);
		free(e->var);
	}
	free(f->fields);
	free(f->kind);
	free(f->type);
	free(f);
}

static struct form_entry *
find_entry(const struct form *f, const char *var)
{
	if (f == NULL || var == NULL)
		return NULL;
	for (size_t i = 0; i < f->nfields; i++)
		if (strcmp(f->fields[i].var, var) == 0)
			return &f->fields[i];
	return NULL;
}

static struct form_entry *
add_entry(struct form *f, const char *var)
{
	f->fields = xreallocarray(f->fields, f->nfields + 1,
	    sizeof(*f->fields));
	struct form_entry *e = &f->fields[f->nfields++];
	e->var = xstrdup(var);
	e->values = NULL;
	e->nvalues = 0;
	return e;
}

/* Takes value (an allocated string). */
static void
entry_push(struct form_entry *e, char *value)
{
	e->values = xreallocarray(e->values, e->nvalues + 1,
	    sizeof(*e->values));
	e->values[e->nvalues++] = value;
}

void
form_add(struct form *f, const char *var, const char *value)
{
	struct form_entry *e = find_entry(f, var);
	if (e == NULL)
		e = add_entry(f, var);
	/* NULL only makes the var present, with no value. */
	if (value != NULL)
		entry_push(e, xstrdup(value));
}

const char *
form_kind(const struct form *f)
{
	return f->kind;
}

const char *
form_type(const struct form *f)
{
	return f->type;
}

const char *
form_value(const struct form *f, const char *var)
{
	const struct form_entry *e = find_entry(f, var);
	return e != NULL && e->nvalues > 0 ? e->values[0] : NULL;
}

size_t
form_values(const struct form *f, const char *var,
    const char *const **values)
{
	const struct form_entry *e = find_entry(f, var);
	if (values != NULL)
		*values = e != NULL && e->nvalues > 0 ?
		    (const char *const *)e->values : NULL;
	return e != NULL ? e->nvalues : 0;
}

const char *
form_var_at(const struct form *f, size_t i)
{
	return i < f->nfields ? f->fields[i].var : NULL;
}

int
form_bool(const struct form *f, const char *var)
{
	const char *v = form_value(f, var);
	return v != NULL && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0);
}

/* ---- building ---- */

static const char *
type_name(enum form_field_type t)
{
	if ((size_t)t >= sizeof(field_type_names) / sizeof(*field_type_names) ||
	    field_type_names[t] == NULL)
		log_fatal("form: field type %d unknown", (int)t);
	return field_type_names[t];
}

/*
 * XEP-0004 asks for one element per line instead of newlines inside
 * <instructions/> and text-multi <value/>s; a lone CR before the LF (text
 * typed on another platform) goes with it.
 */
static void
add_lines(struct stanza *parent, const char *name, const char *text)
{
	for (;;) {
		const char *nl = strchr(text, '\n');
		size_t len = nl != NULL ? (size_t)(nl - text) : strlen(text);
		size_t keep = len > 0 && text[len - 1] == '\r' ? len - 1 : len;
		struct stanza *c = stanza_new_child(parent, name, NULL);
		stanza_add_text(c, text, keep);
		if (nl == NULL)
			break;
		text = nl + 1;
	}
}

static int
multi_valued(enum form_field_type t)
{
	return t == FIELD_TEXT_MULTI || t == FIELD_LIST_MULTI;
}

static void
add_value(struct stanza *field, enum form_field_type t, const char *v)
{
	if (t == FIELD_TEXT_MULTI)
		add_lines(field, "value", v);
	else
		stanza_new_text_child(field, "value", v);
}

static void
build_field(struct stanza *x, const struct form_field_spec *s,
    const struct form *values)
{
	struct stanza *field = stanza_new_child(x, "field", NULL);
	if (s->var != NULL)
		stanza_set_attr(field, "var", s->var);
	stanza_set_attr(field, "type", type_name(s->type));
	if (s->label != NULL)
		stanza_set_attr(field, "label", s->label);
	/* XEP-0004's schema orders a field's children: desc, required,
	 * values, options. */
	if (s->desc != NULL)
		stanza_new_text_child(field, "desc", s->desc);
	if (s->required)
		stanza_new_child(field, "required", NULL);

	/* A text-private field is a password box whatever the spec says:
	 * filling it in would send the stored secret to the client. */
	const struct form_entry *e = s->secret ||
	    s->type == FIELD_TEXT_PRIVATE ? NULL : find_entry(values, s->var);
	if (e != NULL && e->nvalues > 0) {
		size_t n = multi_valued(s->type) ? e->nvalues : 1;
		for (size_t i = 0; i < n; i++)
			add_value(field, s->type, e->values[i]);
	} else if (s->def != NULL) {
		add_value(field, s->type, s->def);
	}

	if (s->type == FIELD_LIST_SINGLE || s->type == FIELD_LIST_MULTI) {
		for (size_t i = 0; s->options != NULL && s->options[i] != NULL;
		    i++) {
			/* Specs have no separate option labels; some clients
			 * show an option without a label as a blank line. */
			struct stanza *o = stanza_new_child(field, "option",
			    NULL);
			stanza_set_attr(o, "label", s->options[i]);
			stanza_new_text_child(o, "value", s->options[i]);
		}
	}
}

struct stanza *
form_build(const char *type, const char *title, const char *instructions,
    const char *form_type, const struct form_field_spec *specs, size_t nspecs,
    const struct form *values)
{
	struct stanza *x = stanza_new("x", NS_DATA);
	stanza_set_attr(x, "type", type != NULL ? type : "form");
	if (title != NULL)
		stanza_new_text_child(x, "title", title);
	if (instructions != NULL)
		add_lines(x, "instructions", instructions);
	if (form_type != NULL) {
		struct stanza *ft = stanza_new_child(x, "field", NULL);
		stanza_set_attr(ft, "var", FORM_TYPE_VAR);
		stanza_set_attr(ft, "type", "hidden");
		stanza_new_text_child(ft, "value", form_type);
	}
	for (size_t i = 0; i < nspecs; i++)
		build_field(x, &specs[i], values);
	return x;
}

/* ---- parsing ---- */

static int
is_data(const struct stanza *st, const char *name)
{
	const char *ns = stanza_ns(st);
	return strcmp(stanza_name(st), name) == 0 && ns != NULL &&
	    strcmp(ns, NS_DATA) == 0;
}

static int
parse_fail(struct form *f, char **error, char *text)
{
	form_free(f);
	if (error != NULL)
		*error = text;
	else
		free(text);
	return -1;
}

/*
 * The <value/>s of one field into e.  The tree already holds the text
 * (the stream's stanza size limit bounds it); stanza_text() copies it,
 * and a copy that is too long is freed at once, so an over-long value
 * is never kept beyond this call.
 */
static char *
parse_values(const struct stanza *field, const char *var,
    struct form_entry *e, char **single)
{
	for (const struct stanza *v = stanza_first_child(field); v != NULL;
	    v = stanza_next_sibling(v)) {
		if (!is_data(v, "value"))
			continue;
		if (e == NULL ? *single != NULL : e->nvalues >= FORM_MAX_VALUES)
			return xasprintf("field '%s' has too many values (at "
			    "most %d)", var, e == NULL ? 1 : FORM_MAX_VALUES);
		char *text = stanza_text(v);
		if (strlen(text) != stanza_text_length(v)) {
			/* XML cannot carry NUL; a stanza built in code can,
			 * and the C string would end there unnoticed. */
			free(text);
			return xasprintf("a value of field '%s' holds a NUL "
			    "character", var);
		}
		if (strlen(text) > FORM_MAX_VALUE_LEN) {
			free(text);
			return xasprintf("a value of field '%s' is longer than "
			    "%d bytes", var, FORM_MAX_VALUE_LEN);
		}
		if (e != NULL)
			entry_push(e, text);
		else
			*single = text;
	}
	return NULL;
}

int
form_parse(const struct stanza *x, struct form **out, char **error)
{
	*out = NULL;
	if (error != NULL)
		*error = NULL;
	if (x == NULL || !is_data(x, "x"))
		return parse_fail(NULL, error, xstrdup("not a data form"));

	const char *kind = stanza_attr(x, "type");
	size_t k;
	for (k = 0; kind != NULL && k < sizeof(form_kinds) /
	    sizeof(*form_kinds); k++)
		if (strcmp(kind, form_kinds[k]) == 0)
			break;
	/* The type is required (XEP-0004 3.1); refusing a missing one means
	 * form_kind() of a parsed form is never NULL. */
	if (kind == NULL || k == sizeof(form_kinds) / sizeof(*form_kinds))
		return parse_fail(NULL, error, xstrdup(kind == NULL ?
		    "data form without a type" : "data form of unknown type"));

	struct form *f = form_new();
	f->kind = xstrdup(kind);
	/* A cancel carries nothing the caller uses: its fields are not
	 * read, so they cannot fail it either. */
	if (strcmp(kind, "cancel") == 0) {
		*out = f;
		return 0;
	}

	size_t nfield = 0;
	int have_type = 0;
	for (const struct stanza *c = stanza_first_child(x); c != NULL;
	    c = stanza_next_sibling(c)) {
		if (!is_data(c, "field"))
			continue;
		/* Every <field/> counts, kept or not: the limit bounds the
		 * work as well as the memory. */
		if (++nfield > FORM_MAX_FIELDS)
			return parse_fail(f, error, xasprintf("too many "
			    "fields (at most %d)", FORM_MAX_FIELDS));
		const char *var = stanza_attr(c, "var");
		const char *ftype = stanza_attr(c, "type");
		/* Some clients echo the form's fixed fields, which may have
		 * no var (XEP-0004 3.2); they carry no data. */
		if (ftype != NULL && strcmp(ftype, "fixed") == 0)
			continue;
		if (var == NULL || *var == '\0')
			return parse_fail(f, error, xstrdup("a field has no "
			    "var"));
		if (strlen(var) > FORM_MAX_VALUE_LEN)
			return parse_fail(f, error, xasprintf("a field's var "
			    "is longer than %d bytes", FORM_MAX_VALUE_LEN));
		if (strcmp(var, FORM_TYPE_VAR) == 0 ? have_type :
		    find_entry(f, var) != NULL)
			return parse_fail(f, error, xasprintf("field '%s' "
			    "appears twice", var));

		char *err;
		if (strcmp(var, FORM_TYPE_VAR) == 0) {
			/* One value: two would leave open which form this
			 * is. */
			have_type = 1;
			err = parse_values(c, var, NULL, &f->type);
		} else {
			err = parse_values(c, var, add_entry(f, var), NULL);
		}
		if (err != NULL)
			return parse_fail(f, error, err);
	}
	*out = f;
	return 0;
}

/* ---- validation ---- */

static const struct form_field_spec *
find_spec(const struct form_field_spec *specs, size_t nspecs,
    const char *var)
{
	for (size_t i = 0; i < nspecs; i++)
		if (specs[i].var != NULL && strcmp(specs[i].var, var) == 0)
			return &specs[i];
	return NULL;
}

static const char *
field_name(const struct form_field_spec *s)
{
	return s->label != NULL ? s->label : s->var;
}

static int
is_option(const struct form_field_spec *s, const char *v)
{
	for (size_t i = 0; s->options != NULL && s->options[i] != NULL; i++)
		if (strcmp(s->options[i], v) == 0)
			return 1;
	return 0;
}

static int
valid_jid(const char *v)
{
	struct jid j;
	if (jid_parse(v, &j) == -1)
		return 0;
	jid_clear(&j);
	return 1;
}

/* Every type but text-multi holds one line (list-multi values are
 * options, checked against the list anyway). */
static int
single_line(enum form_field_type t)
{
	return t != FIELD_TEXT_MULTI && t != FIELD_LIST_MULTI;
}

/* NULL, or what is wrong with value v of spec s (caller frees). */
static char *
check_value(const struct form_field_spec *s, const char *v)
{
	const char *name = field_name(s);
	size_t max = s->max_len != 0 && s->max_len < FORM_MAX_VALUE_LEN ?
	    s->max_len : FORM_MAX_VALUE_LEN;
	if (strlen(v) > max)
		return xasprintf("'%s' is longer than %zu bytes", name, max);
	/* One line: such values end up inside line-based commands (IMAP
	 * LOGIN, IRC PASS, SMTP AUTH), where a CR or LF would end the
	 * command and start one the user wrote. */
	if (single_line(s->type) && strpbrk(v, "\r\n") != NULL)
		return xasprintf("'%s' must be a single line", name);
	/* An empty value is how a client sends an optional field left
	 * blank; whether that is allowed is the required check's call. */
	if (*v == '\0')
		return NULL;
	switch (s->type) {
	case FIELD_BOOLEAN:
		if (strcmp(v, "0") != 0 && strcmp(v, "1") != 0 &&
		    strcmp(v, "true") != 0 && strcmp(v, "false") != 0)
			return xasprintf("'%s' must be true or false", name);
		break;
	case FIELD_LIST_SINGLE:
	case FIELD_LIST_MULTI:
		if (!is_option(s, v))
			return xasprintf("'%s' has a value that is not one of "
			    "its options", name);
		break;
	case FIELD_JID_SINGLE:
		if (!valid_jid(v))
			return xasprintf("'%s' is not a valid JID", name);
		break;
	default:
		break;
	}
	return NULL;
}

static int
has_content(const struct form_entry *e)
{
	for (size_t i = 0; e != NULL && i < e->nvalues; i++)
		if (*e->values[i] != '\0')
			return 1;
	return 0;
}

static int
invalid(const char **var, const char *v, char **text, char *t)
{
	if (var != NULL)
		*var = v;
	if (text != NULL)
		*text = t;
	else
		free(t);
	return -1;
}

int
form_validate(const struct form *f, const char *form_type,
    const struct form_field_spec *specs, size_t nspecs, const char **var,
    char **text)
{
	if (var != NULL)
		*var = NULL;
	if (text != NULL)
		*text = NULL;

	/* A form without FORM_TYPE passes: older clients drop hidden
	 * fields from what they submit, and the caller already knows which
	 * form it asked for. */
	if (form_type != NULL && f->type != NULL &&
	    strcmp(f->type, form_type) != 0)
		return invalid(var, FORM_TYPE_VAR, text, xasprintf("this is "
		    "not a '%s' form", form_type));

	for (size_t i = 0; i < f->nfields; i++) {
		const struct form_entry *e = &f->fields[i];
		const struct form_field_spec *s = find_spec(specs, nspecs,
		    e->var);
		if (s == NULL)
			return invalid(var, e->var, text, xasprintf("unknown "
			    "field '%s'", e->var));
		if (s->type == FIELD_FIXED)
			continue;
		if (e->nvalues > 1 && !multi_valued(s->type))
			return invalid(var, s->var, text, xasprintf("'%s' "
			    "takes a single value", field_name(s)));
		for (size_t j = 0; j < e->nvalues; j++) {
			char *t = check_value(s, e->values[j]);
			if (t != NULL)
				return invalid(var, s->var, text, t);
		}
	}

	for (size_t i = 0; i < nspecs; i++) {
		const struct form_field_spec *s = &specs[i];
		if (!s->required || s->var == NULL || s->type == FIELD_FIXED)
			continue;
		const struct form_entry *e = find_entry(f, s->var);
		if (e == NULL)
			return invalid(var, s->var, text, xasprintf("'%s' is "
			    "required", field_name(s)));
		if (!has_content(e))
			return invalid(var, s->var, text, xasprintf("'%s' is "
			    "required and cannot be empty", field_name(s)));
	}
	return 0;
}
