/*
 * The backend interface: what a legacy network (IRC, email, SMS) plugs
 * into the core.  A backend is one const struct of designated
 * initializers; a NULL operation means "not supported", and the core then
 * answers feature-not-implemented for it.  Backends never write XML and
 * never include each other: they call the core's functions.
 *
 * BACKEND_ABI changes whenever this struct changes incompatibly; the
 * registry refuses a backend built against another version.
 */
#ifndef CAUSEWAY_BACKEND_H
#define CAUSEWAY_BACKEND_H

#include <stddef.h>

#include "config.h"

#define BACKEND_ABI 1

struct component;

struct backend {
	int abi;                      /* BACKEND_ABI */
	const char *name;             /* "irc": the value of backend = */
	const char *gateway_type;     /* XEP-0030 gateway identity type */
	const char *description;      /* "IRC", for the default disco name */
	/* Keys this backend adds to its [component ...] section. */
	const struct config_option *options;
	/* Section types of its own ([irc-server HOST]), nsections of them. */
	const struct config_section_type *sections;
	size_t nsections;

	/* Lifecycle: init when the component is created, reload after a
	 * SIGHUP changed the configuration, shutdown before it is freed. */
	int (*init)(struct component *c);
	void (*reload)(struct component *c);
	void (*shutdown)(struct component *c);
};

/* The backend compiled in under this name, or NULL. */
const struct backend *backend_find(const char *name);
/* Names of all compiled-in backends, NULL-terminated (for the config
 * enum and --version). */
const char *const *backend_names(void);
/* i-th compiled-in backend, NULL past the end. */
const struct backend *backend_at(size_t i);

#endif
