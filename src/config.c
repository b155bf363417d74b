/*
 * The configuration file parser.
 *
 * config_load() reads the whole file (at most CONFIG_FILE_MAX bytes) and
 * walks it line by line.  A section header finishes the section before
 * it; the key lines of a section are only collected as they come, because
 * which keys are legal depends on the section's own values (a component's
 * backend decides its extra keys).  Finishing a section then runs:
 *
 *   own keys -> values parsed -> extra_options(sec) -> extra keys parsed
 *     -> unknown keys, missing required keys -> validate(sec) if clean
 *
 * Every problem becomes one "FILE:LINE: message" and parsing goes on, so
 * an operator sees every mistake in one --check-config run.  The errors of
 * one load are sorted by line at the end, since finishing a section
 * reports things (a missing key at the header) out of file order.
 *
 * Sections live in plain arrays: one in file order that owns them, one per
 * type for config_section_at(), and a small hash of (type, argument) for
 * duplicate detection and config_section_find(), so a file of thousands
 * of sections costs no quadratic scan.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "xmalloc.h"

/* Generous for a hand-written file; anything bigger is a mistake. */
#define CONFIG_FILE_MAX (1024 * 1024)
#define CONFIG_LINE_MAX 4096

struct config_errors {
	struct error_entry {
		char *text;
		int line;  /* for sorting one load's errors into file order */
	} *v;
	size_t n, cap;
};

/* A "key = value" line as read, before anyone knows if the key is legal. */
struct entry {
	char *key;
	char *value;
	int line;
	int used;    /* matched an option */
	int broken;  /* the value had a syntax error, already reported */
};

/* One declared option of a section and its resolved value. */
struct slot {
	const struct config_option *opt;
	const char *text;  /* as written, else opt->def, else NULL; borrowed */
	int line;          /* 0 when not written in the file */
	int broken;        /* written but unreadable: no value, no default */
	int bad;           /* written, and rejected (broken or bad value) */
	long long num;     /* CONFIG_INT, CONFIG_SIZE, CONFIG_BOOL */
	char **items;      /* CONFIG_LIST; NULL when empty */
	size_t nitems;
};

struct config_section {
	struct config *cfg;
	const struct config_section_type *type;
	char *arg;    /* NULL for argument-less types */
	char *label;  /* "[component irc.example.org]", for messages */
	int line;
	struct entry *entries;
	size_t nentries, entries_cap;
	/* Own options first (nown of them), then the extra ones. */
	struct slot *slots;
	size_t nslots, nown;
	size_t nerrors;  /* validate() runs only when this stays 0 */
	int probing;     /* inside extra_options() */
	int probed_bad;  /* ... and read a rejected or missing value */
};

struct section_list {
	struct config_section **v;
	size_t n, cap;
};

struct config {
	char *path;
	const struct config_section_type *types;  /* the caller's, borrowed */
	size_t ntypes;
	struct section_list all;       /* file order; owns every section */
	struct section_list *by_type;  /* ntypes lists of usable sections */
	struct config_section **hash;  /* open addressing on (type, arg) */
	size_t hash_cap, hash_n;
};

struct loader {
	struct config *cfg;
	struct config_errors *errs;
	struct config_section *cur;  /* section whose keys are being read */
	int skipping;                /* body of a header we could not use */
};

static const char *const type_names[] = {
	[CONFIG_STRING] = "string",
	[CONFIG_INT] = "int",
	[CONFIG_SIZE] = "size",
	[CONFIG_BOOL] = "bool",
	[CONFIG_ENUM] = "enum",
	[CONFIG_LIST] = "list",
};

/* Error collection. */

static void
errors_add(struct config_errors *errs, int line, char *text)
{
	if (errs->n == errs->cap) {
		errs->cap = errs->cap ? errs->cap * 2 : 16;
		errs->v = xreallocarray(errs->v, errs->cap, sizeof(*errs->v));
	}
	errs->v[errs->n].text = text;
	errs->v[errs->n].line = line;
	errs->n++;
}

static char * CW_PRINTF(1, 0)
vformat(const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		log_fatal("config: cannot format an error message");
	char *s = xmalloc((size_t)n + 1);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	return s;
}

static void CW_PRINTF(4, 0)
config_verror(struct config_errors *errs, const char *file, int line,
    const char *fmt, va_list ap)
{
	char *msg = vformat(fmt, ap);
	char *text;
	if (file == NULL)
		text = xstrdup(msg);
	else if (line <= 0)
		text = xasprintf("%s: %s", file, msg);
	else
		text = xasprintf("%s:%d: %s", file, line, msg);
	free(msg);
	errors_add(errs, line, text);
}

struct config_errors *
config_errors_new(void)
{
	return xcalloc(1, sizeof(struct config_errors));
}

void
config_errors_free(struct config_errors *errs)
{
	if (errs == NULL)
		return;
	for (size_t i = 0; i < errs->n; i++)
		free(errs->v[i].text);
	free(errs->v);
	free(errs);
}

void
config_error(struct config_errors *errs, const char *file, int line,
    const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	config_verror(errs, file, line, fmt, ap);
	va_end(ap);
}

size_t
config_errors_count(const struct config_errors *errs)
{
	return errs->n;
}

const char *
config_errors_at(const struct config_errors *errs, size_t i)
{
	return i < errs->n ? errs->v[i].text : NULL;
}

struct sort_entry {
	struct error_entry e;
	size_t pos;
};

static int
error_cmp(const void *a, const void *b)
{
	const struct sort_entry *x = a, *y = b;
	if (x->e.line != y->e.line)
		return x->e.line < y->e.line ? -1 : 1;
	/* Same line: keep the order they were reported in. */
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/*
 * qsort is not stable, so sort copies that remember their position and
 * break ties with it.
 */
static void
errors_sort_from(struct config_errors *errs, size_t start)
{
	size_t n = errs->n - start;
	if (n < 2)
		return;
	struct sort_entry *tmp = xreallocarray(NULL, n, sizeof(*tmp));
	for (size_t i = 0; i < n; i++)
		tmp[i] = (struct sort_entry){ errs->v[start + i], i };
	qsort(tmp, n, sizeof(*tmp), error_cmp);
	for (size_t i = 0; i < n; i++)
		errs->v[start + i] = tmp[i].e;
	free(tmp);
}

/* Errors about the file, counted against the section being read. */
static void CW_PRINTF(3, 4)
load_error(struct loader *ld, int line, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	config_verror(ld->errs, ld->cfg->path, line, fmt, ap);
	va_end(ap);
	if (ld->cur != NULL)
		ld->cur->nerrors++;
}

static void CW_PRINTF(4, 5)
section_error(struct loader *ld, struct config_section *sec, int line,
    const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	config_verror(ld->errs, ld->cfg->path, line, fmt, ap);
	va_end(ap);
	sec->nerrors++;
}

/* Programming errors: the option tables and the code disagree. */
static void __attribute__((noreturn)) CW_PRINTF(1, 2)
misuse(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = vformat(fmt, ap);
	va_end(ap);
	log_error("config: %s (programming error)", msg);
	free(msg);
	abort();
}

/* Values. */

static int
is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static int
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Trim blanks at both ends in place; returns the new start. */
static char *
trim(char *s)
{
	while (is_blank(*s))
		s++;
	size_t n = strlen(s);
	while (n > 0 && is_blank(s[n - 1]))
		s[--n] = '\0';
	return s;
}

static void
option_range(const struct config_option *o, long long *min, long long *max)
{
	/* A table that leaves both at 0 means "no limit". */
	if (o->min == 0 && o->max == 0) {
		*min = o->type == CONFIG_SIZE ? 0 : LLONG_MIN;
		*max = LLONG_MAX;
	} else {
		*min = o->min;
		*max = o->max;
	}
}

/* Decimal digits only; -1 not a number, -2 overflow. */
static int
parse_digits(const char *s, long long *out)
{
	long long v = 0;
	if (!is_digit(*s))
		return -1;
	for (; is_digit(*s); s++) {
		int d = *s - '0';
		if (v > (LLONG_MAX - d) / 10)
			return -2;
		v = v * 10 + d;
	}
	*out = v;
	return *s == '\0' ? 0 : -1;
}

static char *
parse_int(struct slot *s, const char *t)
{
	long long v = 0, min, max;
	int neg = t[0] == '-';
	int r = parse_digits(t + (neg || t[0] == '+'), &v);

	option_range(s->opt, &min, &max);
	if (r == -1)
		return xasprintf("'%s' is not a whole number", t);
	/* v <= LLONG_MAX, so -v cannot overflow. */
	if (neg)
		v = -v;
	if (r == -2 || v < min || v > max)
		return xasprintf("%s is out of range %lld..%lld", t, min, max);
	s->num = v;
	return NULL;
}

static char *
parse_size(struct slot *s, const char *t)
{
	long long v = 0, min, max;
	size_t len = strlen(t);
	long long mult = 1;
	char *digits = xstrdup(t);

	if (len > 0) {
		switch (t[len - 1]) {
		case 'k': case 'K':
			mult = 1024;
			break;
		case 'm': case 'M':
			mult = 1024 * 1024;
			break;
		}
		if (mult != 1)
			digits[len - 1] = '\0';
	}
	int r = parse_digits(digits, &v);
	free(digits);
	option_range(s->opt, &min, &max);
	if (r == -1)
		return xasprintf("'%s' is not a size (bytes, or a number "
		    "with suffix k or M)", t);
	if (r == -2 || v > LLONG_MAX / mult || v * mult < min || v * mult > max)
		return xasprintf("%s is out of range %lld..%lld bytes", t, min,
		    max);
	s->num = v * mult;
	return NULL;
}

static char *
parse_bool(struct slot *s, const char *t)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(t, yes[i]) == 0) {
			s->num = 1;
			return NULL;
		}
		if (strcasecmp(t, no[i]) == 0) {
			s->num = 0;
			return NULL;
		}
	}
	return xasprintf("'%s' is not a boolean (yes/no, true/false, on/off, "
	    "1/0)", t);
}

static char *
parse_enum(struct slot *s, const char *t)
{
	const char *const *c = s->opt->choices;
	if (c == NULL)
		misuse("option '%s' is an enum without choices", s->opt->key);
	for (size_t i = 0; c[i] != NULL; i++) {
		if (strcmp(t, c[i]) == 0)
			return NULL;
	}
	/* List the choices: the fix is then obvious from the message. */
	size_t len = 1;
	for (size_t i = 0; c[i] != NULL; i++)
		len += strlen(c[i]) + 2;
	char *list = xmalloc(len);
	list[0] = '\0';
	for (size_t i = 0; c[i] != NULL; i++) {
		if (i > 0)
			strcat(list, ", ");
		strcat(list, c[i]);
	}
	char *msg = xasprintf("'%s' is not one of %s", t, list);
	free(list);
	return msg;
}

static void
free_items(struct slot *s)
{
	for (size_t i = 0; i < s->nitems; i++)
		free(s->items[i]);
	free(s->items);
	s->items = NULL;
	s->nitems = 0;
}

static char *
parse_list(struct slot *s, const char *t)
{
	char *copy = xstrdup(t);
	char *p = copy;

	/* "" is the empty list, the usual default of an optional list. */
	if (*trim(copy) == '\0') {
		free(copy);
		return NULL;
	}
	for (;;) {
		char *comma = strchr(p, ',');
		if (comma != NULL)
			*comma = '\0';
		char *item = trim(p);
		if (*item == '\0') {
			free(copy);
			free_items(s);
			return xasprintf("empty item in list '%s'", t);
		}
		s->items = xreallocarray(s->items, s->nitems + 1,
		    sizeof(*s->items));
		s->items[s->nitems++] = xstrdup(item);
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	free(copy);
	return NULL;
}

/* NULL, or an error message (without the key) the caller frees. */
static char *
parse_value(struct slot *s, const char *t)
{
	switch (s->opt->type) {
	case CONFIG_STRING:
		return NULL;
	case CONFIG_INT:
		return parse_int(s, t);
	case CONFIG_SIZE:
		return parse_size(s, t);
	case CONFIG_BOOL:
		return parse_bool(s, t);
	case CONFIG_ENUM:
		return parse_enum(s, t);
	case CONFIG_LIST:
		return parse_list(s, t);
	}
	misuse("option '%s' has unknown type %d", s->opt->key,
	    (int)s->opt->type);
}

/*
 * Parse a slot's text: the value from the file (errors are the
 * operator's) or the default (errors are the table author's).
 */
static void
resolve_slot(struct loader *ld, struct config_section *sec, struct slot *s)
{
	if (s->broken) {
		s->bad = 1;
		return;
	}
	if (s->line == 0) {
		s->text = s->opt->def;
		if (s->text == NULL)
			return;
		char *err = parse_value(s, s->text);
		if (err != NULL)
			misuse("default of '%s' in %s: %s", s->opt->key,
			    sec->label, err);
		return;
	}
	if (s->text[0] == '\0' && s->opt->type != CONFIG_STRING) {
		section_error(ld, sec, s->line, "%s: value is empty",
		    s->opt->key);
		s->bad = 1;
		return;
	}
	char *err = parse_value(s, s->text);
	if (err != NULL) {
		section_error(ld, sec, s->line, "%s: %s", s->opt->key, err);
		free(err);
		s->bad = 1;
	}
}

/* Sections. */

static struct slot *
find_slot(const struct config_section *sec, const char *key)
{
	for (size_t i = 0; i < sec->nslots; i++) {
		if (strcmp(sec->slots[i].opt->key, key) == 0)
			return &sec->slots[i];
	}
	return NULL;
}

static void
add_slots(struct config_section *sec, const struct config_option *opts)
{
	size_t n = 0;
	while (opts[n].key != NULL)
		n++;
	sec->slots = xreallocarray(sec->slots, sec->nslots + n,
	    sizeof(*sec->slots));
	memset(sec->slots + sec->nslots, 0, n * sizeof(*sec->slots));
	for (size_t i = 0; i < n; i++)
		sec->slots[sec->nslots + i].opt = &opts[i];
	sec->nslots += n;
}

/* Give entries to the slots from first to end; report repeated keys. */
static void
match_entries(struct loader *ld, struct config_section *sec, size_t first)
{
	for (size_t i = 0; i < sec->nentries; i++) {
		struct entry *e = &sec->entries[i];
		if (e->used)
			continue;
		struct slot *s = find_slot(sec, e->key);
		if (s == NULL || (size_t)(s - sec->slots) < first)
			continue;
		e->used = 1;
		if (s->line != 0) {
			section_error(ld, sec, e->line,
			    "duplicate key '%s' in %s (first at line %d)",
			    e->key, sec->label, s->line);
			continue;
		}
		s->line = e->line;
		s->broken = e->broken;
		s->text = e->broken ? NULL : e->value;
	}
}

static void
finish_section(struct loader *ld, struct config_section *sec)
{
	const struct config_section_type *t = sec->type;

	add_slots(sec, t->options);
	sec->nown = sec->nslots;
	match_entries(ld, sec, 0);
	for (size_t i = 0; i < sec->nown; i++)
		resolve_slot(ld, sec, &sec->slots[i]);

	const struct config_option *extra = NULL;
	if (t->extra_options != NULL) {
		sec->probing = 1;
		extra = t->extra_options(sec);
		sec->probing = 0;
	}
	if (extra != NULL) {
		add_slots(sec, extra);
		match_entries(ld, sec, sec->nown);
		for (size_t i = sec->nown; i < sec->nslots; i++)
			resolve_slot(ld, sec, &sec->slots[i]);
	}

	/*
	 * When extra_options() decided from a rejected or missing value (a
	 * misspelt backend), the extra keys cannot be known: calling each
	 * of them unknown would bury the real mistake under noise.
	 */
	if (!sec->probed_bad) {
		for (size_t i = 0; i < sec->nentries; i++) {
			struct entry *e = &sec->entries[i];
			if (!e->used)
				section_error(ld, sec, e->line,
				    "unknown key '%s' in %s", e->key,
				    sec->label);
		}
	}
	for (size_t i = 0; i < sec->nslots; i++) {
		struct slot *s = &sec->slots[i];
		if (s->opt->required && s->line == 0)
			section_error(ld, sec, sec->line,
			    "missing required key '%s' in %s", s->opt->key,
			    sec->label);
	}

	if (sec->nerrors == 0 && t->validate != NULL) {
		size_t before = ld->errs->n;
		t->validate(sec, ld->errs);
		sec->nerrors += ld->errs->n - before;
	}
}

static void
section_free(struct config_section *sec)
{
	for (size_t i = 0; i < sec->nentries; i++) {
		free(sec->entries[i].key);
		free(sec->entries[i].value);
	}
	free(sec->entries);
	for (size_t i = 0; i < sec->nslots; i++)
		free_items(&sec->slots[i]);
	free(sec->slots);
	free(sec->arg);
	free(sec->label);
	free(sec);
}

static void
list_add(struct section_list *l, struct config_section *sec)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 8;
		l->v = xreallocarray(l->v, l->cap, sizeof(*l->v));
	}
	l->v[l->n++] = sec;
}

/* The hash of (type, arg) behind duplicate detection and _find(). */

static size_t
section_hash(const struct config_section_type *t, const char *arg)
{
	/* FNV-1a; the table is private and the input the operator's own. */
	uint64_t h = 14695981039346656037ULL;
	for (const char *p = t->name; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	h = (h ^ 0xff) * 1099511628211ULL;
	for (const char *p = arg ? arg : ""; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	return (size_t)h;
}

static int
section_is(const struct config_section *sec,
    const struct config_section_type *t, const char *arg)
{
	if (sec->type != t)
		return 0;
	if (sec->arg == NULL || arg == NULL)
		return sec->arg == arg;
	return strcmp(sec->arg, arg) == 0;
}

static struct config_section *
hash_find(const struct config *cfg, const struct config_section_type *t,
    const char *arg)
{
	if (cfg->hash_cap == 0)
		return NULL;
	size_t mask = cfg->hash_cap - 1;
	for (size_t i = section_hash(t, arg) & mask; cfg->hash[i] != NULL;
	    i = (i + 1) & mask) {
		if (section_is(cfg->hash[i], t, arg))
			return cfg->hash[i];
	}
	return NULL;
}

static void
hash_insert(struct config *cfg, struct config_section *sec)
{
	/* Keep the load at most one half so probes stay short. */
	if (2 * (cfg->hash_n + 1) > cfg->hash_cap) {
		size_t old_cap = cfg->hash_cap;
		struct config_section **old = cfg->hash;
		cfg->hash_cap = old_cap ? old_cap * 2 : 16;
		cfg->hash = xcalloc(cfg->hash_cap, sizeof(*cfg->hash));
		cfg->hash_n = 0;
		for (size_t i = 0; i < old_cap; i++) {
			if (old[i] != NULL)
				hash_insert(cfg, old[i]);
		}
		free(old);
	}
	size_t mask = cfg->hash_cap - 1;
	size_t i = section_hash(sec->type, sec->arg) & mask;
	while (cfg->hash[i] != NULL)
		i = (i + 1) & mask;
	cfg->hash[i] = sec;
	cfg->hash_n++;
}

/* Lines. */

/* Only letters, digits and _ . - so a typo like "port: 5347" is caught. */
static int
valid_key(const char *k)
{
	if (*k == '\0')
		return 0;
	for (; *k != '\0'; k++) {
		char c = *k;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    is_digit(c) || c == '_' || c == '.' || c == '-'))
			return 0;
	}
	return 1;
}

/* Whitespace, or a comment, is all that may follow a header or quote. */
static int
only_comment(const char *s)
{
	while (is_blank(*s))
		s++;
	return *s == '\0' || *s == ';' || *s == '#';
}

static void
finish_current(struct loader *ld)
{
	if (ld->cur != NULL)
		finish_section(ld, ld->cur);
	ld->cur = NULL;
	ld->skipping = 0;
}

static void
header_line(struct loader *ld, char *s, int line)
{
	struct config *cfg = ld->cfg;

	finish_current(ld);
	ld->skipping = 1;

	char *close = strchr(s, ']');
	if (close == NULL) {
		load_error(ld, line, "missing ']' in section header");
		return;
	}
	*close = '\0';
	if (!only_comment(close + 1)) {
		load_error(ld, line, "unexpected text after section header "
		    "[%s]", s + 1);
		return;
	}
	char *name = trim(s + 1);
	if (*name == '\0') {
		load_error(ld, line, "empty section header []");
		return;
	}
	char *arg = name;
	while (*arg != '\0' && !is_blank(*arg))
		arg++;
	if (*arg != '\0')
		*arg++ = '\0';
	arg = trim(arg);

	const struct config_section_type *t = NULL;
	for (size_t i = 0; i < cfg->ntypes; i++) {
		if (strcmp(cfg->types[i].name, name) == 0) {
			t = &cfg->types[i];
			break;
		}
	}
	if (t == NULL) {
		load_error(ld, line, "unknown section type [%s]", name);
		return;
	}

	/*
	 * From here on the section's keys are checked even when the header
	 * is wrong, so one run reports those too; such a section is just
	 * never found by config_section_*().
	 */
	struct config_section *sec = xcalloc(1, sizeof(*sec));
	sec->cfg = cfg;
	sec->type = t;
	sec->line = line;
	list_add(&cfg->all, sec);
	ld->cur = sec;
	ld->skipping = 0;

	int usable = 0;
	if (t->has_arg && *arg == '\0') {
		sec->label = xasprintf("[%s]", name);
		load_error(ld, line, "[%s] needs an argument", name);
	} else if (!t->has_arg && *arg != '\0') {
		sec->label = xasprintf("[%s]", name);
		load_error(ld, line, "[%s] takes no argument (found '%s')",
		    name, arg);
	} else if (strpbrk(arg, " \t") != NULL) {
		sec->label = xasprintf("[%s %s]", name, arg);
		load_error(ld, line, "the argument of %s may not contain "
		    "spaces", sec->label);
	} else {
		if (t->has_arg)
			sec->arg = xstrdup(arg);
		sec->label = t->has_arg ? xasprintf("[%s %s]", name, arg) :
		    xasprintf("[%s]", name);
		struct config_section *first = hash_find(cfg, t, sec->arg);
		if (first != NULL)
			load_error(ld, line, "duplicate section %s (first at "
			    "line %d)", sec->label, first->line);
		else
			usable = 1;
	}
	if (usable) {
		hash_insert(cfg, sec);
		list_add(&cfg->by_type[t - cfg->types], sec);
	}
}

/*
 * The value after '=': a double-quoted string (only \" and \\ are
 * escapes, so a secret may hold ';' and '#'), or bare text up to a
 * comment.  Rewrites v in place; NULL after reporting an error.
 */
static char *
parse_raw_value(struct loader *ld, char *v, int line)
{
	while (is_blank(*v))
		v++;
	if (*v == '"') {
		char *r = v + 1, *w = v;
		for (;;) {
			if (*r == '\0') {
				load_error(ld, line,
				    "unterminated quoted value");
				return NULL;
			}
			if (*r == '"')
				break;
			if (*r == '\\' && (r[1] == '"' || r[1] == '\\'))
				r++;
			*w++ = *r++;
		}
		*w = '\0';
		if (!only_comment(r + 1)) {
			load_error(ld, line, "unexpected text after the "
			    "closing quote");
			return NULL;
		}
		return v;
	}
	/* A comment starts the value or follows a blank. */
	for (char *p = v; *p != '\0'; p++) {
		if ((*p == ';' || *p == '#') && (p == v || is_blank(p[-1]))) {
			*p = '\0';
			break;
		}
	}
	return trim(v);
}

static void
key_line(struct loader *ld, char *s, int line)
{
	char *eq = strchr(s, '=');
	if (eq == NULL) {
		load_error(ld, line, "expected 'key = value' or a [section] "
		    "header");
		return;
	}
	*eq = '\0';
	char *key = trim(s);
	if (!valid_key(key)) {
		load_error(ld, line, "invalid key '%s' (letters, digits, "
		    "'_', '.', '-')", key);
		return;
	}
	char *value = parse_raw_value(ld, eq + 1, line);
	if (ld->skipping)
		return;
	if (ld->cur == NULL) {
		if (value != NULL)
			load_error(ld, line, "key outside any section");
		return;
	}

	struct config_section *sec = ld->cur;
	if (sec->nentries == sec->entries_cap) {
		sec->entries_cap = sec->entries_cap ? sec->entries_cap * 2 : 8;
		sec->entries = xreallocarray(sec->entries, sec->entries_cap,
		    sizeof(*sec->entries));
	}
	sec->entries[sec->nentries++] = (struct entry){
		.key = xstrdup(key),
		/*
		 * A broken value still records the key, so it is not also
		 * reported missing.
		 */
		.value = xstrdup(value != NULL ? value : ""),
		.line = line,
		.broken = value == NULL,
	};
}

static void
parse_line(struct loader *ld, char *s, int line)
{
	while (is_blank(*s))
		s++;
	if (*s == '\0' || *s == ';' || *s == '#')
		return;
	if (*s == '[')
		header_line(ld, s, line);
	else
		key_line(ld, s, line);
}

static void
parse_buffer(struct loader *ld, const char *buf, size_t len)
{
	static const char bom[] = "\xef\xbb\xbf";
	char line_buf[CONFIG_LINE_MAX + 1];
	size_t pos = 0;
	int line = 0;

	if (len >= 3 && memcmp(buf, bom, 3) == 0)
		pos = 3;
	while (pos < len) {
		const char *nl = memchr(buf + pos, '\n', len - pos);
		size_t end = nl != NULL ? (size_t)(nl - buf) : len;
		size_t n = end - pos;

		line++;
		if (n > 0 && buf[pos + n - 1] == '\r')
			n--;
		if (n > CONFIG_LINE_MAX) {
			load_error(ld, line, "line is longer than %d bytes",
			    CONFIG_LINE_MAX);
		} else if (memchr(buf + pos, '\0', n) != NULL) {
			load_error(ld, line, "line contains a NUL byte");
		} else {
			memcpy(line_buf, buf + pos, n);
			line_buf[n] = '\0';
			parse_line(ld, line_buf, line);
		}
		pos = end + 1;
	}
	finish_current(ld);
}

/* The whole file, capped; 0, or -1 after reporting the error. */
static int
read_file(const char *path, struct config_errors *errs, char **out,
    size_t *outlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd == -1) {
		config_error(errs, path, 0, "cannot open: %s", strerror(errno));
		return -1;
	}
	size_t cap = 64 * 1024, len = 0;
	char *buf = xmalloc(cap);
	for (;;) {
		if (len == cap) {
			/* A byte past the cap tells "too large" from "full". */
			if (cap > CONFIG_FILE_MAX)
				break;
			cap *= 2;
			if (cap > CONFIG_FILE_MAX + 1)
				cap = CONFIG_FILE_MAX + 1;
			buf = xreallocarray(buf, cap, 1);
		}
		ssize_t r = read(fd, buf + len, cap - len);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			config_error(errs, path, 0, "cannot read: %s",
			    strerror(errno));
			close(fd);
			free(buf);
			return -1;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	if (len > CONFIG_FILE_MAX) {
		config_error(errs, path, 0, "file is larger than the limit of "
		    "%d bytes (1 MiB)", CONFIG_FILE_MAX);
		free(buf);
		return -1;
	}
	*out = buf;
	*outlen = len;
	return 0;
}

int
config_load(const char *path, const struct config_section_type *types,
    size_t ntypes, struct config **out, struct config_errors *errs)
{
	size_t start = errs->n;
	char *buf;
	size_t len;

	if (read_file(path, errs, &buf, &len) == -1)
		return (int)(errs->n - start);

	struct config *cfg = xcalloc(1, sizeof(*cfg));
	cfg->path = xstrdup(path);
	cfg->types = types;
	cfg->ntypes = ntypes;
	cfg->by_type = xcalloc(ntypes, sizeof(*cfg->by_type));

	struct loader ld = { .cfg = cfg, .errs = errs };
	parse_buffer(&ld, buf, len);
	free(buf);

	errors_sort_from(errs, start);
	size_t nerr = errs->n - start;
	if (nerr > 0) {
		config_free(cfg);
		return nerr > INT_MAX ? INT_MAX : (int)nerr;
	}
	*out = cfg;
	return 0;
}

void
config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	for (size_t i = 0; i < cfg->all.n; i++)
		section_free(cfg->all.v[i]);
	free(cfg->all.v);
	for (size_t i = 0; i < cfg->ntypes; i++)
		free(cfg->by_type[i].v);
	free(cfg->by_type);
	free(cfg->hash);
	free(cfg->path);
	free(cfg);
}

const char *
config_path(const struct config *cfg)
{
	return cfg->path;
}

static const struct config_section_type *
type_by_name(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->ntypes; i++) {
		if (strcmp(cfg->types[i].name, name) == 0)
			return &cfg->types[i];
	}
	return NULL;
}

const struct config_section *
config_section_at(const struct config *cfg, const char *type, size_t i)
{
	const struct config_section_type *t = type_by_name(cfg, type);
	if (t == NULL)
		return NULL;
	const struct section_list *l = &cfg->by_type[t - cfg->types];
	return i < l->n ? l->v[i] : NULL;
}

const struct config_section *
config_section_find(const struct config *cfg, const char *type,
    const char *arg)
{
	const struct config_section_type *t = type_by_name(cfg, type);
	if (t == NULL)
		return NULL;
	return hash_find(cfg, t, arg);
}

const char *
config_section_type_name(const struct config_section *sec)
{
	return sec->type->name;
}

const char *
config_section_arg(const struct config_section *sec)
{
	return sec->arg;
}

const char *
config_section_file(const struct config_section *sec)
{
	return sec->cfg->path;
}

int
config_section_line(const struct config_section *sec)
{
	return sec->line;
}

/*
 * The slot of a declared key, checked against the accessor's type;
 * anything else means the code and the option tables disagree.
 */
static const struct slot *
declared(const struct config_section *sec, const char *key, const char *fn,
    unsigned types)
{
	const struct slot *s = find_slot(sec, key);
	if (s == NULL)
		misuse("%s(): %s declares no option '%s'", fn, sec->label,
		    key);
	if (!(types & (1u << s->opt->type)))
		misuse("%s(): option '%s' in %s is a %s", fn, key, sec->label,
		    type_names[s->opt->type]);
	/*
	 * The section is ours and never const while loading; the flag
	 * remembers that extra_options() based its answer on a value that
	 * was rejected or is missing.
	 */
	if (sec->probing && (s->bad || (s->opt->required && s->line == 0)))
		((struct config_section *)sec)->probed_bad = 1;
	return s;
}

#define ANY_TYPE (~0u)

int
config_key_line(const struct config_section *sec, const char *key)
{
	const struct slot *s = declared(sec, key, __func__, ANY_TYPE);
	return s->line != 0 ? s->line : sec->line;
}

int
config_has(const struct config_section *sec, const char *key)
{
	return declared(sec, key, __func__, ANY_TYPE)->line != 0;
}

const char *
config_str(const struct config_section *sec, const char *key)
{
	return declared(sec, key, __func__, ANY_TYPE)->text;
}

long long
config_int(const struct config_section *sec, const char *key)
{
	return declared(sec, key, __func__,
	    1u << CONFIG_INT | 1u << CONFIG_SIZE)->num;
}

int
config_bool(const struct config_section *sec, const char *key)
{
	return (int)declared(sec, key, __func__, 1u << CONFIG_BOOL)->num;
}

const char *const *
config_list(const struct config_section *sec, const char *key, size_t *n)
{
	const struct slot *s = declared(sec, key, __func__, 1u << CONFIG_LIST);
	*n = s->nitems;
	return (const char *const *)s->items;
}

int
config_declares(const struct config_section *sec, const char *key)
{
	return find_slot(sec, key) != NULL;
}
