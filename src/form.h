/*
 * XEP-0004 data forms: building the forms causeway shows (registration,
 * ad-hoc commands, settings) and reading what a client submits.
 *
 * A form is described by a table of field specs; the same table builds
 * the form, validates the submission, and (through the backend) names
 * the stored values.  A submitted form is parsed into a struct form
 * holding each field's var and values; every limit is checked at parse
 * time so a hostile submission cannot make causeway hold more than
 * FORM_MAX_* of it.
 */
#ifndef CAUSEWAY_FORM_H
#define CAUSEWAY_FORM_H

#include <stddef.h>

struct stanza;

#define NS_DATA "jabber:x:data"
#define FORM_MAX_FIELDS 64
#define FORM_MAX_VALUES 64          /* per field */
#define FORM_MAX_VALUE_LEN 4096     /* bytes; a spec's max_len may lower it */

enum form_field_type {
	FIELD_TEXT_SINGLE,
	FIELD_TEXT_PRIVATE,
	FIELD_TEXT_MULTI,
	FIELD_BOOLEAN,
	FIELD_LIST_SINGLE,
	FIELD_LIST_MULTI,
	FIELD_JID_SINGLE,
	FIELD_FIXED,
	FIELD_HIDDEN,
};

struct form_field_spec {
	const char *var;
	enum form_field_type type;
	const char *label;
	const char *desc;            /* <desc/>, may be NULL */
	int required;
	size_t max_len;              /* 0: FORM_MAX_VALUE_LEN */
	const char *const *options;  /* list-*: NULL-terminated values */
	const char *def;             /* default value, may be NULL */
	int secret;                  /* never echoed back in a filled form */
	int scope_only;              /* registration: a value registered on a
	                              * scope (an IRC server) is used there
	                              * only, never the account-wide one
	                              * (credentials) */
};

struct form;

/* An empty set of values (for prefilling a form). */
struct form *form_new(void);
void form_free(struct form *f);
/* Adds a value to var (copied); list-multi and text-multi take several.
 * value NULL only makes var present, with no value. */
void form_add(struct form *f, const char *var, const char *value);

/*
 * <x xmlns='jabber:x:data' type=TYPE> with a title, instructions, a
 * hidden FORM_TYPE field (when form_type is not NULL) and one <field/>
 * per spec, each with its type, label, <required/>, <desc/>, options and
 * a value: from values when it has one for the var (never for secret
 * specs, nor for text-private ones, which are password boxes), else the
 * spec's default.  Caller owns the result.
 *
 * type NULL means "form".  A single-valued field shows only the first
 * of its values.  Instructions and text-multi values holding newlines
 * become one element per line (XEP-0004 asks for that).  Specs have no
 * option labels, so each <option/> is labelled with its value.
 */
struct stanza *form_build(const char *type, const char *title,
    const char *instructions, const char *form_type,
    const struct form_field_spec *specs, size_t nspecs,
    const struct form *values);

/*
 * Parse a submitted <x xmlns='jabber:x:data'/> (type submit, or cancel).
 * Returns 0 and *out, or -1 and *error (caller frees) naming what is
 * wrong: not a data form, too many fields or values, a value over
 * FORM_MAX_VALUE_LEN, a field without var, a duplicate var.
 *
 * Details: the type attribute is required and must be one of the four
 * XEP-0004 kinds, so form_kind() of a parsed form is never NULL.  A
 * cancel's fields are not read (nothing can fail it).  Every <field/>
 * counts toward FORM_MAX_FIELDS; fields with type='fixed' (clients echo
 * them, often without var) are then skipped.  A var is limited to
 * FORM_MAX_VALUE_LEN bytes like a value.  FORM_TYPE is kept apart: it is
 * read by form_type() (at most one value), not by form_value() or
 * form_var_at().  A field with no <value/> is present with no values.
 * *out is NULL after an error, *error NULL after success; the error may
 * quote a var but never a value.
 */
int form_parse(const struct stanza *x, struct form **out, char **error);

/* "submit", "cancel", "form", "result" as sent; NULL for form_new(). */
const char *form_kind(const struct form *f);
/* The hidden FORM_TYPE value, or NULL. */
const char *form_type(const struct form *f);
/* First value of var, or NULL when absent. */
const char *form_value(const struct form *f, const char *var);
/* All values of var (borrowed); returns the count. */
size_t form_values(const struct form *f, const char *var,
    const char *const **values);
/* Iterate over the vars present: i from 0 while it returns non-NULL. */
const char *form_var_at(const struct form *f, size_t i);

/*
 * Check a submission against its specs.  Returns 0, or -1 and *text
 * (caller frees) naming the field: a wrong FORM_TYPE (when form_type is
 * not NULL and the form carries another one), an unknown field, a
 * missing or empty required field, a value longer than max_len, a
 * boolean that is not 0/1/true/false, a value not among a list's
 * options, several values for a single-valued field, an invalid JID in
 * jid-single; *var (may be NULL) gets the offending var (borrowed from
 * the specs or the form).
 *
 * Details: a form without FORM_TYPE passes (older clients drop hidden
 * fields from what they submit); a wrong one sets *var to "FORM_TYPE".
 * The text names a field by its label, else its var, and never quotes a
 * value (it may be a password).  An empty value in an optional field is
 * "left blank" and skips the type checks; a required field is empty when
 * it has no non-empty value.  A list spec with options NULL accepts no
 * non-empty value.  Fixed specs are not checked.  var and text may be
 * NULL; on success *var and *text are NULL.
 */
int form_validate(const struct form *f, const char *form_type,
    const struct form_field_spec *specs, size_t nspecs, const char **var,
    char **text);
/* A boolean field's value: 1 for "1"/"true", else 0. */
int form_bool(const struct form *f, const char *var);

#endif
