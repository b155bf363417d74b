/*
 * The configuration file: INI sections of typed options.
 *
 *   [causeway]                  a section type with no argument
 *   [component irc.example.org] a section type with an argument
 *   key = value                 ; comment
 *
 * Lines starting with ';' or '#' are comments; so is the rest of a line
 * after whitespace followed by ';' or '#'.  A value in double quotes is
 * taken as written (for secrets that contain ';' or '#'; \" and \\ are the
 * only escapes).  Keys are case-sensitive.
 *
 * The parser knows no option itself: the caller passes a table of section
 * types, each with a table of options (type, default, range, required).
 * Every problem is collected as "FILE:LINE: message" (syntax, unknown
 * section type, duplicate section, unknown or duplicate key, bad value,
 * missing required key), so --check-config can report all at once.
 */
#ifndef CAUSEWAY_CONFIG_H
#define CAUSEWAY_CONFIG_H

#include <stddef.h>

#include "log.h"

enum config_type {
	CONFIG_STRING,
	CONFIG_INT,   /* decimal, within [min, max] */
	CONFIG_SIZE,  /* bytes, suffix k/K (1024) or m/M, within [min, max] */
	CONFIG_BOOL,  /* yes/no, true/false, on/off, 1/0, any case */
	CONFIG_ENUM,  /* one of choices, exact case */
	CONFIG_LIST,  /* comma-separated, items trimmed, none empty */
};

/*
 * An empty value in the file is an error for every type but
 * CONFIG_STRING.  A default is checked like a value; a bad default is a
 * programming error and aborts.  A CONFIG_LIST default of "" is the empty
 * list.  min = max = 0 means no limit (sizes still cannot be negative).
 */
struct config_option {
	const char *key;
	enum config_type type;
	const char *def;             /* default as text; NULL: no default */
	long long min, max;          /* CONFIG_INT and CONFIG_SIZE */
	const char *const *choices;  /* CONFIG_ENUM: NULL-terminated */
	int required;
	const char *help;            /* one line, for docs and errors */
};

struct config;
struct config_section;
struct config_errors;

struct config_section_type {
	const char *name;       /* "causeway", "component", "irc-server" */
	int has_arg;            /* 1: [name ARG] required; 0: [name] only */
	const struct config_option *options;  /* ends with key NULL */
	/*
	 * Optional: more options that depend on the section's own values
	 * (a component's backend-specific keys).  May return NULL.
	 */
	const struct config_option *(*extra_options)(
	    const struct config_section *sec);
	/* Optional: checks across keys; report with config_error(). */
	void (*validate)(const struct config_section *sec,
	    struct config_errors *errs);
};

/*
 * Parse and validate path.  types has ntypes entries; it and its option
 * tables are borrowed and must outlive the config.  Returns the number of
 * errors of this call (all appended to errs, which must not be NULL, and
 * sorted by line); *out is set only when there were none.  A section type
 * that is listed but absent from the file is not an error; the caller
 * decides what must exist.
 *
 * extra_options() runs after the section's own keys are parsed and may
 * read them (not its extra keys, which are not declared yet).  When it
 * read a rejected or missing value, the section's remaining keys are not
 * reported as unknown.  validate() runs only for a section without
 * errors.  A section whose header is wrong ([component] without an
 * argument, a duplicate) still has its keys checked but is never
 * returned by config_section_at() / config_section_find().
 */
int config_load(const char *path, const struct config_section_type *types,
    size_t ntypes, struct config **out, struct config_errors *errs);
void config_free(struct config *cfg);
const char *config_path(const struct config *cfg);

/* The i-th section of a type in file order (borrowed), NULL past the end. */
const struct config_section *config_section_at(const struct config *cfg,
    const char *type, size_t i);
/* The section [type arg] (arg NULL for argument-less types), or NULL. */
const struct config_section *config_section_find(const struct config *cfg,
    const char *type, const char *arg);

const char *config_section_type_name(const struct config_section *sec);
const char *config_section_arg(const struct config_section *sec);
const char *config_section_file(const struct config_section *sec);
int config_section_line(const struct config_section *sec);
/* Line of key in the file, or the section's line if the key is absent. */
int config_key_line(const struct config_section *sec, const char *key);
/* 1 when the key was written in the file (not a default). */
int config_has(const struct config_section *sec, const char *key);
/* 1 when an option table of the section declares key (code that must
 * work with and without an option asks first), else 0. */
int config_declares(const struct config_section *sec, const char *key);

/*
 * Typed values; a key that is absent takes its option's default.  Asking
 * for a key no option table of the section declares is a programming
 * error and aborts (so does config_key_line() and config_has() for such
 * a key, and a typed getter on an option of another type).
 * config_str() works for every type and returns the text as written (or
 * the default); config_int() serves CONFIG_INT and CONFIG_SIZE.
 * config_str() returns NULL when there is neither a value nor a default;
 * the others return 0.
 */
const char *config_str(const struct config_section *sec, const char *key);
long long config_int(const struct config_section *sec, const char *key);
int config_bool(const struct config_section *sec, const char *key);
/* List items, borrowed; *n receives the count.  NULL with *n = 0 when
 * empty. */
const char *const *config_list(const struct config_section *sec,
    const char *key, size_t *n);

/* Error collection. */
struct config_errors *config_errors_new(void);
void config_errors_free(struct config_errors *errs);
void config_error(struct config_errors *errs, const char *file, int line,
    const char *fmt, ...) CW_PRINTF(4, 5);
size_t config_errors_count(const struct config_errors *errs);
/* "FILE:LINE: message" ("FILE: message" for line 0), borrowed; NULL
 * past the end. */
const char *config_errors_at(const struct config_errors *errs, size_t i);

#endif
