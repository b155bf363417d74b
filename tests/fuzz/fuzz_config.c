/*
 * libFuzzer harness for the configuration parser (src/config.c): the
 * input is a whole configuration file.  It is written to a file of its
 * own (config_load reads a path) and loaded against a table with every
 * option type, sections with and without an argument, backend-dependent
 * extra options and a cross-key check, as causeway's own table has.
 * Checked: errors or a config, never both; every error is a non-empty
 * line naming the file; with a config, every declared key reads back
 * through its typed getter within its bounds, lists have no empty
 * items, and every section found by position is found by name too.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const levels[] = { "error", "warn", "info", "debug",
    NULL };

static const struct config_option general[] = {
	{ .key = "database", .type = CONFIG_STRING, .def = "x.db" },
	{ .key = "log_level", .type = CONFIG_ENUM, .def = "info",
	    .choices = levels },
	{ .key = "workers", .type = CONFIG_INT, .def = "4", .min = 1,
	    .max = 64 },
	{ .key = "queue_max", .type = CONFIG_SIZE, .def = "64k", .min = 1,
	    .max = 1024 * 1024 },
	{ .key = NULL },
};

static const struct config_option component[] = {
	{ .key = "backend", .type = CONFIG_STRING, .required = 1 },
	{ .key = "secret", .type = CONFIG_STRING, .required = 1 },
	{ .key = "port", .type = CONFIG_INT, .def = "5347", .min = 1,
	    .max = 65535 },
	{ .key = "allow", .type = CONFIG_LIST, .def = "*" },
	{ .key = "linger", .type = CONFIG_BOOL, .def = "yes" },
	{ .key = NULL },
};

static const struct config_option irc[] = {
	{ .key = "identd", .type = CONFIG_STRING, .def = "" },
	{ .key = "throttle_burst", .type = CONFIG_INT, .def = "5", .min = 1,
	    .max = 100 },
	{ .key = NULL },
};

static const struct config_option server[] = {
	{ .key = "port", .type = CONFIG_INT, .def = "6697", .min = 1,
	    .max = 65535 },
	{ .key = "tls", .type = CONFIG_BOOL, .def = "yes" },
	{ .key = NULL },
};

static const struct config_option *
extra(const struct config_section *sec)
{
	const char *b = config_str(sec, "backend");
	return b != NULL && strcmp(b, "irc") == 0 ? irc : NULL;
}

static void
validate(const struct config_section *sec, struct config_errors *errs)
{
	size_t n;
	const char *const *allow = config_list(sec, "allow", &n);
	for (size_t i = 0; i < n && n > 1; i++)
		if (strcmp(allow[i], "*") == 0)
			config_error(errs, config_section_file(sec),
			    config_key_line(sec, "allow"), "'*' and more");
}

static const struct config_section_type types[] = {
	{ .name = "causeway", .options = general },
	{ .name = "component", .has_arg = 1, .options = component,
	    .extra_options = extra, .validate = validate },
	{ .name = "irc-server", .has_arg = 1, .options = server },
};
#define NTYPES (sizeof(types) / sizeof(types[0]))

static char path[64];

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_init(LOG_LEVEL_ERROR, 0);
	snprintf(path, sizeof(path), "/tmp/fuzz_config.%ld", (long)getpid());
	return 0;
}

static void
check_options(const struct config_section *sec,
    const struct config_option *o)
{
	for (; o != NULL && o->key != NULL; o++) {
		const char *s = config_str(sec, o->key);
		size_t n;
		switch (o->type) {
		case CONFIG_INT:
		case CONFIG_SIZE: {
			long long v = config_int(sec, o->key);
			if (s != NULL && (v < o->min || v > o->max))
				abort();
			break;
		}
		case CONFIG_BOOL:
			if (config_bool(sec, o->key) > 1)
				abort();
			break;
		case CONFIG_LIST: {
			const char *const *l = config_list(sec, o->key, &n);
			for (size_t i = 0; i < n; i++)
				if (l[i] == NULL || l[i][0] == '\0')
					abort();
			break;
		}
		case CONFIG_ENUM:
			if (s != NULL) {
				int ok = 0;
				for (size_t i = 0; o->choices[i]; i++)
					ok |= strcmp(o->choices[i], s) == 0;
				if (!ok)
					abort();
			}
			break;
		default:
			break;
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FILE *f = fopen(path, "wb");
	if (f == NULL)
		return 0;
	if (size > 0 && fwrite(data, 1, size, f) != size) {
		fclose(f);
		return 0;
	}
	fclose(f);
	struct config_errors *errs = config_errors_new();
	struct config *cfg = NULL;
	int n = config_load(path, types, NTYPES, &cfg, errs);
	if (n < 0 || (size_t)n != config_errors_count(errs))
		abort();
	if (n > 0 && cfg != NULL)
		abort();
	for (size_t i = 0; i < config_errors_count(errs); i++) {
		const char *e = config_errors_at(errs, i);
		if (e == NULL || *e == '\0' || strstr(e, path) == NULL ||
		    strchr(e, '\n') != NULL)
			abort();
	}
	if (n == 0 && cfg != NULL) {
		for (size_t t = 0; t < NTYPES; t++) {
			const struct config_section *sec;
			for (size_t i = 0; (sec = config_section_at(cfg,
			    types[t].name, i)) != NULL; i++) {
				check_options(sec, types[t].options);
				if (types[t].extra_options != NULL)
					check_options(sec,
					    types[t].extra_options(sec));
				if (config_section_find(cfg, types[t].name,
				    config_section_arg(sec)) != sec)
					abort();
			}
		}
		config_free(cfg);
	}
	config_errors_free(errs);
	return 0;
}
