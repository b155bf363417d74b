#include "autoconf.h"

#include <string.h>

#include "backend.h"
#include "log.h"

/* Each backend exports exactly one of these; configure decides which
 * are compiled in. */
extern const struct backend irc_backend;
extern const struct backend email_backend;
extern const struct backend sms_backend;
extern const struct backend echo_backend;

static const struct backend *const registry[] = {
#ifdef ENABLE_IRC
	&irc_backend,
#endif
#ifdef ENABLE_EMAIL
	&email_backend,
#endif
#ifdef ENABLE_SMS
	&sms_backend,
#endif
	/* The test network: always there, for tests and for trying
	 * causeway out without a legacy account. */
	&echo_backend,
	NULL,
};

static const char *names[sizeof(registry) / sizeof(registry[0])];

const struct backend *
backend_at(size_t i)
{
	if (i >= sizeof(registry) / sizeof(registry[0]))
		return NULL;
	return registry[i];
}

const struct backend *
backend_find(const char *name)
{
	for (size_t i = 0; registry[i] != NULL; i++) {
		if (strcmp(registry[i]->name, name) != 0)
			continue;
		if (registry[i]->abi != BACKEND_ABI) {
			log_error("backend %s was built for interface %d, "
			    "this causeway speaks %d", name, registry[i]->abi,
			    BACKEND_ABI);
			return NULL;
		}
		return registry[i];
	}
	return NULL;
}

const char *const *
backend_names(void)
{
	if (names[0] == NULL) {
		for (size_t i = 0; registry[i] != NULL; i++)
			names[i] = registry[i]->name;
	}
	return names;
}
