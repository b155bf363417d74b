/*
 * causeway: the process.  It reads the configuration, opens the store,
 * starts the worker pool and one XEP-0114 connection per [component]
 * section, and runs the event loop until SIGTERM or SIGINT.
 *
 * SIGHUP re-reads the configuration: log level, access lists and backend
 * options change at once; a component whose server, port or secret
 * changed reconnects; components added or removed start or stop.  A file
 * with errors is reported and the running configuration is kept.
 */
#include "autoconf.h"

#include <getopt.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <openssl/opensslv.h>
#include <expat.h>
#include <sqlite3.h>

#include "backend.h"
#include "causeway.h"
#include "component.h"
#include "config.h"
#include "jid.h"
#include "log.h"
#include "secret.h"
#include "store.h"
#include "worker.h"
#include "xmalloc.h"

struct causeway *cw;

static const char *const log_levels[] = {
	"error", "warn", "info", "debug", NULL,
};

static const struct config_option general_options[] = {
	{ .key = "database", .type = CONFIG_STRING,
	  .def = "/var/lib/causeway/causeway.db",
	  .help = "SQLite database, created 0600" },
	{ .key = "key_file", .type = CONFIG_STRING,
	  .def = "/var/lib/causeway/secret.key",
	  .help = "key that encrypts stored legacy passwords" },
	{ .key = "log_level", .type = CONFIG_ENUM, .def = "info",
	  .choices = log_levels, .help = "error, warn, info or debug" },
	{ .key = "syslog", .type = CONFIG_BOOL, .def = "no",
	  .help = "log to syslog (daemon facility) instead of stderr" },
	{ .key = "workers", .type = CONFIG_INT, .def = "4", .min = 1,
	  .max = 64, .help = "threads for blocking library calls" },
	{ .key = NULL },
};

/* Filled at start from the backend registry: the enum of backend = . */
static struct config_option component_options[] = {
	{ .key = "backend", .type = CONFIG_ENUM, .required = 1,
	  .help = "which network this component serves" },
	{ .key = "server", .type = CONFIG_STRING, .def = "127.0.0.1",
	  .help = "the XMPP server's address" },
	{ .key = "port", .type = CONFIG_INT, .def = "5347", .min = 1,
	  .max = 65535, .help = "the XMPP server's component port" },
	{ .key = "secret", .type = CONFIG_STRING, .required = 1,
	  .help = "the component secret shared with the server" },
	{ .key = "name", .type = CONFIG_STRING, .def = "",
	  .help = "name shown in service discovery" },
	{ .key = "allow", .type = CONFIG_LIST, .def = "*",
	  .help = "who may use the gateway: domains, *.domains, JIDs or *" },
	{ .key = "admins", .type = CONFIG_LIST, .def = "",
	  .help = "bare JIDs allowed to run admin commands" },
	/* No default here: it is the opposite of the backend's open_access
	 * (component.c reads it with config_has). */
	{ .key = "require_registration", .type = CONFIG_BOOL,
	  .help = "yes: users register before joining, messaging or "
	  "listing (default: no for IRC, yes for mail and SMS)" },
	{ .key = "max_stanza_size", .type = CONFIG_SIZE, .def = "256k",
	  .min = 4096, .max = 16 * 1024 * 1024,
	  .help = "largest stanza accepted from the server" },
	{ .key = "queue_max", .type = CONFIG_INT, .def = "10000", .min = 0,
	  .max = 10000000,
	  .help = "stanzas kept while the server is unreachable" },
	{ .key = "keepalive", .type = CONFIG_INT, .def = "60", .min = 0,
	  .max = 3600, .help = "seconds between whitespace keepalives" },
	{ .key = "linger", .type = CONFIG_INT, .def = "10", .min = 0,
	  .max = 86400, .help = "seconds a legacy session outlives the "
	  "user's last resource" },
	{ .key = NULL },
};

static const struct config_option *
component_backend_options(const struct config_section *sec)
{
	const char *name = config_str(sec, "backend");
	const struct backend *b = name ? backend_find(name) : NULL;
	return b ? b->options : NULL;
}

/* An allow entry: "*", "domain", "*.domain" or "user@domain". */
static int
valid_access_entry(const char *e, int allow_wildcards)
{
	struct jid j;
	int wildcard = 0;
	if (allow_wildcards && strcmp(e, "*") == 0)
		return 1;
	if (allow_wildcards && strncmp(e, "*.", 2) == 0) {
		e += 2;
		wildcard = 1;
	}
	if (jid_parse(e, &j) != 0)
		return 0;
	/* "*.x" names domains; an admin is a person (local@domain). */
	int ok = j.resource == NULL && (!wildcard || j.local == NULL) &&
	    (allow_wildcards || j.local != NULL);
	jid_clear(&j);
	return ok;
}

static void
component_validate(const struct config_section *sec,
    struct config_errors *errs)
{
	const char *domain = config_section_arg(sec);
	const char *file = config_section_file(sec);
	struct jid j;

	if (jid_parse(domain, &j) != 0 || j.local != NULL ||
	    j.resource != NULL) {
		config_error(errs, file, config_section_line(sec),
		    "[component %s]: not a valid domain name", domain);
	} else {
		jid_clear(&j);
	}
	if (config_str(sec, "secret")[0] == '\0')
		config_error(errs, file, config_key_line(sec, "secret"),
		    "secret: must not be empty");
	static const char *const lists[] = { "allow", "admins" };
	for (size_t k = 0; k < 2; k++) {
		size_t n;
		const char *const *items = config_list(sec, lists[k], &n);
		for (size_t i = 0; i < n; i++) {
			if (!valid_access_entry(items[i], k == 0))
				config_error(errs, file,
				    config_key_line(sec, lists[k]),
				    "%s: '%s' is not a %s", lists[k], items[i],
				    k == 0 ? "domain, *.domain, bare JID or *" :
				    "bare JID");
		}
	}
	/* Mail and SMS cannot do anything without the user's account. */
	const struct backend *b = backend_find(config_str(sec, "backend"));
	if (b != NULL && !b->open_access &&
	    config_has(sec, "require_registration") &&
	    !config_bool(sec, "require_registration"))
		config_error(errs, file, config_key_line(sec,
		    "require_registration"), "require_registration: the %s "
		    "backend needs the user's account first; it cannot be no",
		    b->name);
}

/* The table of section types: ours, then every backend's own. */
static struct config_section_type *section_types;
static size_t nsection_types;

static void
build_section_types(void)
{
	component_options[0].choices = backend_names();
	size_t n = 2;
	for (size_t i = 0; backend_at(i) != NULL; i++)
		n += backend_at(i)->nsections;
	section_types = xcalloc(n, sizeof(*section_types));
	section_types[0] = (struct config_section_type){
		.name = "causeway", .has_arg = 0, .options = general_options,
	};
	section_types[1] = (struct config_section_type){
		.name = "component", .has_arg = 1,
		.options = component_options,
		.extra_options = component_backend_options,
		.validate = component_validate,
	};
	nsection_types = 2;
	for (size_t i = 0; backend_at(i) != NULL; i++) {
		const struct backend *b = backend_at(i);
		for (size_t k = 0; k < b->nsections; k++)
			section_types[nsection_types++] = b->sections[k];
	}
}

/* Loads path; prints every error and returns NULL if there are any. */
static struct config *
load_config(const char *path, int to_stdout)
{
	struct config_errors *errs = config_errors_new();
	struct config *cfg = NULL;
	int n = config_load(path, section_types, nsection_types, &cfg, errs);
	if (n == 0 && config_section_at(cfg, "component", 0) == NULL) {
		config_error(errs, path, 0, "no [component DOMAIN] section: "
		    "nothing to run");
		config_free(cfg);
		cfg = NULL;
		n = 1;
	}
	for (size_t i = 0; i < config_errors_count(errs); i++) {
		if (to_stdout)
			printf("%s\n", config_errors_at(errs, i));
		else
			log_error("%s", config_errors_at(errs, i));
	}
	config_errors_free(errs);
	return n == 0 ? cfg : NULL;
}

static void
apply_logging(const struct config *cfg)
{
	const struct config_section *g = config_section_find(cfg, "causeway",
	    NULL);
	enum log_level level = LOG_LEVEL_INFO;
	int use_syslog = 0;
	if (g != NULL) {
		log_level_parse(config_str(g, "log_level"), &level);
		use_syslog = config_bool(g, "syslog");
	}
	log_init(level, use_syslog);
}

/* An argument-less section may be absent: its values are the defaults. */
static const char *
general_str(const char *key)
{
	const struct config_section *g = config_section_find(cw->config,
	    "causeway", NULL);
	if (g != NULL)
		return config_str(g, key);
	for (const struct config_option *o = general_options; o->key; o++)
		if (strcmp(o->key, key) == 0)
			return o->def;
	return NULL;
}

static struct component *
find_component(const char *domain)
{
	struct component *c;
	TAILQ_FOREACH(c, &cw->components, entry)
		if (strcmp(c->domain, domain) == 0)
			return c;
	return NULL;
}

static int
start_component(const struct config_section *sec)
{
	struct component *c = component_new(sec);
	if (c == NULL)
		return -1;
	TAILQ_INSERT_TAIL(&cw->components, c, entry);
	component_connect(c);
	return 0;
}

void
causeway_component_closed(struct component *c)
{
	if (!cw->stopping) {
		/* A component removed by a reload. */
		TAILQ_REMOVE(&cw->components, c, entry);
		component_free(c);
		return;
	}
	TAILQ_FOREACH(c, &cw->components, entry)
		if (c->state != COMPONENT_CLOSED)
			return;
	event_base_loopexit(cw->base, NULL);
}

static void
reload(void)
{
	log_info("SIGHUP: reloading %s", cw->config_path);
	struct config *cfg = load_config(cw->config_path, 0);
	if (cfg == NULL) {
		log_error("the configuration has errors; keeping the one "
		    "that is running");
		return;
	}
	struct config *old = cw->config;
	const char *old_db = general_str("database");
	char *old_db_copy = xstrdup(old_db ? old_db : "");
	cw->config = cfg;
	apply_logging(cfg);
	if (strcmp(old_db_copy, general_str("database")) != 0)
		log_warn("database: a new path takes effect at the next start");
	free(old_db_copy);

	/* Components that went away close; the rest take their new
	 * section (the old config is freed below). */
	struct component *c, *next;
	for (c = TAILQ_FIRST(&cw->components); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		const struct config_section *sec = config_section_find(cfg,
		    "component", c->domain);
		if (sec == NULL) {
			log_info("%s: removed from the configuration, closing",
			    c->domain);
			c->section = NULL;
			component_shutdown(c);
		} else if (strcmp(config_str(sec, "backend"),
		    c->backend->name) != 0) {
			log_warn("%s: a new backend takes effect at the next "
			    "start; keeping %s", c->domain, c->backend->name);
			component_reconfigure(c, sec);
		} else {
			component_reconfigure(c, sec);
		}
	}
	const struct config_section *sec;
	for (size_t i = 0; (sec = config_section_at(cfg, "component", i));
	    i++) {
		if (find_component(config_section_arg(sec)) == NULL) {
			log_info("%s: added to the configuration, starting",
			    config_section_arg(sec));
			start_component(sec);
		}
	}
	config_free(old);
	log_info("configuration reloaded");
}

static void
signal_cb(evutil_socket_t sig, short what, void *arg)
{
	if (sig == SIGHUP) {
		reload();
		return;
	}
	if (cw->stopping) {
		log_warn("second signal: exiting now");
		event_base_loopexit(cw->base, NULL);
		return;
	}
	log_info("%s: closing every stream", sig == SIGTERM ? "SIGTERM" :
	    "SIGINT");
	cw->stopping = 1;
	struct component *c, *next;
	for (c = TAILQ_FIRST(&cw->components); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		component_shutdown(c);
	}
}

/*
 * Memory given back after bursts.  glibc returns freed heap memory to
 * the system only from the top of the heap; a burst (a join storm puts
 * tens of thousands of presences into the server's output buffer within
 * a second or two) leaves megabytes free in the middle of the heap once
 * they are sent, between live data, and they would stay resident for
 * good.  Once a second we look at how much of the heap is free; when
 * that grew by TRIM_STEP since the last trim, malloc_trim() hands the
 * free pages back (madvise; the memory stays usable).  The look is one
 * walk of malloc's free lists, a few microseconds when idle.
 */
#define TRIM_STEP (256 * 1024)

static void
memory_setup(void)
{
#ifdef __GLIBC__
	/* Worker threads would each get a malloc arena (reserved 64 MiB,
	 * resident as used, never shared): two arenas in all. */
	mallopt(M_ARENA_MAX, 2);
	/* Fixed thresholds (glibc otherwise raises them after a large
	 * free, up to 32 MiB): blocks of 128 KiB and more (big channels'
	 * member arrays, large stanzas) are their own mappings, returned
	 * when freed, and the heap's top is trimmed past 128 KiB. */
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	mallopt(M_TRIM_THRESHOLD, 128 * 1024);
#endif
}

#if defined(__GLIBC__) && (__GLIBC__ > 2 || \
    (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
static void
trim_cb(evutil_socket_t fd, short what, void *arg)
{
	static size_t base;         /* free heap bytes after the last trim */
	struct mallinfo2 mi = mallinfo2();
	if (mi.fordblks < base)
		base = mi.fordblks;
	else if (mi.fordblks - base >= TRIM_STEP) {
		malloc_trim(0);
		base = mi.fordblks;
	}
}
#define HAVE_TRIM_TIMER 1
#endif

static void
usage(FILE *f)
{
	fprintf(f, "usage: causeway -c FILE [--check-config]\n"
	    "       causeway --version\n");
}

static void
print_version(void)
{
	printf("causeway %s\n", PACKAGE_VERSION);
	printf("backends:");
	for (const char *const *n = backend_names(); *n != NULL; n++)
		printf(" %s", *n);
	printf("\nlibevent %s, %s, expat %s, sqlite %s\n",
	    event_get_version(), OPENSSL_VERSION_TEXT,
	    XML_ExpatVersion(), sqlite3_libversion());
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, 'C' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = NULL;
	int check_only = 0, ch;

	while ((ch = getopt_long(argc, argv, "c:hV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 'C':
			check_only = 1;
			break;
		case 'V':
			print_version();
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (path == NULL || optind != argc) {
		usage(stderr);
		return 2;
	}
	build_section_types();

	if (check_only) {
		struct config *cfg = load_config(path, 1);
		if (cfg == NULL)
			return 1;
		printf("%s: configuration OK\n", path);
		config_free(cfg);
		return 0;
	}

	struct causeway ctx = { .config_path = path };
	cw = &ctx;
	TAILQ_INIT(&cw->components);
	cw->config = load_config(path, 0);
	if (cw->config == NULL)
		return 1;
	apply_logging(cw->config);
	log_info("causeway %s starting with %s", PACKAGE_VERSION, path);

	if (evthread_use_pthreads() != 0)
		log_fatal("libevent has no pthreads support");
	cw->base = event_base_new();
	if (cw->base == NULL)
		log_fatal("cannot create the event loop");
	memory_setup();
	struct event *trim = NULL;
#ifdef HAVE_TRIM_TIMER
	trim = event_new(cw->base, -1, EV_PERSIST, trim_cb, NULL);
	struct timeval second = { 1, 0 };
	if (trim == NULL || event_add(trim, &second) != 0)
		log_fatal("cannot create the memory timer");
#endif
	/* Reads /etc/resolv.conf and /etc/hosts; a machine without a
	 * resolver still works with numeric server addresses. */
	cw->dns = evdns_base_new(cw->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
	    EVDNS_BASE_NAMESERVERS_NO_DEFAULT);
	if (cw->dns == NULL)
		log_fatal("cannot create the DNS resolver");
	signal(SIGPIPE, SIG_IGN);

	cw->store = store_open(general_str("database"));
	if (cw->store == NULL) {
		log_error("cannot open the database %s; not starting",
		    general_str("database"));
		return 1;
	}
	cw->key = secret_key_load(general_str("key_file"));
	if (cw->key == NULL) {
		log_error("cannot use the key file %s; not starting",
		    general_str("key_file"));
		store_close(cw->store);
		return 1;
	}
	const struct config_section *g = config_section_find(cw->config,
	    "causeway", NULL);
	cw->workers = worker_pool_new(cw->base,
	    g ? (unsigned)config_int(g, "workers") : 4);
	cw->started = time(NULL);

	struct event *sigs[3];
	const int signums[3] = { SIGTERM, SIGINT, SIGHUP };
	for (int i = 0; i < 3; i++) {
		sigs[i] = evsignal_new(cw->base, signums[i], signal_cb, NULL);
		if (sigs[i] == NULL || event_add(sigs[i], NULL) != 0)
			log_fatal("cannot install signal handlers");
	}

	const struct config_section *sec;
	int failed = 0;
	for (size_t i = 0; (sec = config_section_at(cw->config, "component",
	    i)) != NULL; i++)
		if (start_component(sec) != 0)
			failed = 1;
	if (!failed)
		event_base_dispatch(cw->base);

	struct component *c;
	while ((c = TAILQ_FIRST(&cw->components)) != NULL) {
		TAILQ_REMOVE(&cw->components, c, entry);
		component_free(c);
	}
	worker_pool_free(cw->workers);
	store_close(cw->store);
	secret_key_free(cw->key);
	for (int i = 0; i < 3; i++)
		event_free(sigs[i]);
	if (trim != NULL)
		event_free(trim);
	evdns_base_free(cw->dns, 0);
	event_base_free(cw->base);
	config_free(cw->config);
	free(section_types);
	log_info("causeway stopped");
	return failed ? 1 : 0;
}
