/*
 * Unit tests for src/config.c: the INI parser, its typed options and the
 * error messages operators see from --check-config.
 */
#include "autoconf.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>

#include "config.h"
#include "tap.h"

/* Option tables shaped like causeway's own. */

static const char *const log_levels[] = {
	"error", "warn", "info", "debug", NULL,
};
static const char *const backends[] = { "irc", "email", "sms", NULL };

static const struct config_option causeway_options[] = {
	{ .key = "database", .type = CONFIG_STRING,
	    .def = "/var/lib/causeway/causeway.db" },
	{ .key = "key_file", .type = CONFIG_STRING, .required = 1 },
	{ .key = "log_level", .type = CONFIG_ENUM, .def = "info",
	    .choices = log_levels },
	{ .key = "workers", .type = CONFIG_INT, .def = "4", .min = 1,
	    .max = 64 },
	{ .key = "syslog", .type = CONFIG_BOOL, .def = "no" },
	{ .key = "offset", .type = CONFIG_INT, .def = "-5" },
	{ .key = NULL },
};

static const struct config_option component_options[] = {
	{ .key = "backend", .type = CONFIG_ENUM, .choices = backends,
	    .required = 1 },
	{ .key = "server", .type = CONFIG_STRING, .def = "127.0.0.1" },
	{ .key = "port", .type = CONFIG_INT, .def = "5347", .min = 1,
	    .max = 65535 },
	{ .key = "secret", .type = CONFIG_STRING, .required = 1 },
	{ .key = "allow", .type = CONFIG_LIST, .def = "*" },
	{ .key = "admins", .type = CONFIG_LIST, .def = "" },
	{ .key = "max_stanza_size", .type = CONFIG_SIZE, .def = "64k",
	    .min = 1024, .max = 16 * 1024 * 1024 },
	{ .key = NULL },
};

static const struct config_option irc_options[] = {
	{ .key = "nick", .type = CONFIG_STRING, .def = "causeway" },
	{ .key = "fixed_server", .type = CONFIG_STRING },
	{ .key = "tls", .type = CONFIG_BOOL, .def = "yes" },
	{ .key = NULL },
};

static const struct config_option email_options[] = {
	{ .key = "smtp_host", .type = CONFIG_STRING, .required = 1 },
	{ .key = NULL },
};

static int extra_calls, validate_calls;
static char extra_saw_backend[32];

static const struct config_option *
component_extra(const struct config_section *sec)
{
	const char *b = config_str(sec, "backend");
	extra_calls++;
	snprintf(extra_saw_backend, sizeof(extra_saw_backend), "%s",
	    b ? b : "(null)");
	if (b != NULL && strcmp(b, "irc") == 0)
		return irc_options;
	if (b != NULL && strcmp(b, "email") == 0)
		return email_options;
	return NULL;
}

/* '*' means everyone, so listing more next to it is a mistake. */
static void
component_validate(const struct config_section *sec,
    struct config_errors *errs)
{
	size_t n;
	const char *const *allow = config_list(sec, "allow", &n);
	validate_calls++;
	for (size_t i = 0; i < n && n > 1; i++) {
		if (strcmp(allow[i], "*") == 0) {
			config_error(errs, config_section_file(sec),
			    config_key_line(sec, "allow"),
			    "allow: '*' cannot be combined with other entries "
			    "in [component %s]", config_section_arg(sec));
			return;
		}
	}
}

static const struct config_section_type types[] = {
	{ .name = "causeway", .has_arg = 0, .options = causeway_options },
	{ .name = "component", .has_arg = 1, .options = component_options,
	    .extra_options = component_extra,
	    .validate = component_validate },
};
#define NTYPES (sizeof(types) / sizeof(types[0]))

/* Helpers. */

static char *
write_temp(const char *content, size_t len)
{
	char *path = strdup("/tmp/cw_test_config.XXXXXX");
	int fd = mkstemp(path);
	if (fd == -1) {
		perror("mkstemp");
		exit(2);
	}
	size_t off = 0;
	while (off < len) {
		ssize_t w = write(fd, content + off, len - off);
		if (w <= 0) {
			perror("write");
			exit(2);
		}
		off += (size_t)w;
	}
	close(fd);
	return path;
}

struct loaded {
	char *path;
	struct config *cfg;
	struct config_errors *errs;
	int nerr;
};

static struct loaded
load_mem(const char *content, size_t len)
{
	struct loaded l;
	l.path = write_temp(content, len);
	l.errs = config_errors_new();
	l.cfg = NULL;
	l.nerr = config_load(l.path, types, NTYPES, &l.cfg, l.errs);
	return l;
}

static struct loaded
load(const char *content)
{
	return load_mem(content, strlen(content));
}

static void
unload(struct loaded *l)
{
	unlink(l->path);
	free(l->path);
	config_free(l->cfg);
	config_errors_free(l->errs);
}

static void
print_errors(const struct loaded *l)
{
	for (size_t i = 0; i < config_errors_count(l->errs); i++)
		printf("#     got: %s\n", config_errors_at(l->errs, i));
}

/*
 * Load content and compare its errors, in order, with expected: each
 * ":LINE: message" (or ": message") after the file's path.  NULL ends it.
 */
static int
errors_are(const char *content, const char *const *expected)
{
	struct loaded l = load(content);
	size_t n = 0;
	int ok = 1;
	while (expected[n] != NULL)
		n++;
	if ((size_t)l.nerr != n || config_errors_count(l.errs) != n ||
	    (n > 0) != (l.cfg == NULL)) {
		printf("#   %d errors, expected %zu\n", l.nerr, n);
		ok = 0;
	}
	for (size_t i = 0; ok && i < n; i++) {
		char want[8192];
		snprintf(want, sizeof(want), "%s%s", l.path, expected[i]);
		const char *got = config_errors_at(l.errs, i);
		if (got == NULL || strcmp(got, want) != 0) {
			printf("#   error %zu: expected %s\n", i, want);
			ok = 0;
		}
	}
	if (!ok)
		print_errors(&l);
	unload(&l);
	return ok;
}

#define ERRORS(content, ...) \
	errors_are(content, (const char *const[]){ __VA_ARGS__, NULL })
#define NO_ERRORS(content) \
	errors_are(content, (const char *const[]){ NULL })

/* A component section that is complete apart from what a test adds. */
#define GOOD_COMPONENT \
	"[component irc.example.org]\n" \
	"backend = irc\n" \
	"secret = s3cret\n"

/* Tests. */

static const char full_file[] =
    "; causeway configuration\n"
    "# both comment styles\n"
    "\n"
    "[causeway]\n"
    "database = /var/lib/causeway/causeway.db   ; SQLite\n"
    "key_file = /var/lib/causeway/secret.key\n"
    "log_level = debug\n"
    "workers = 8\n"
    "syslog = yes\n"
    "\n"
    "[component irc.example.org]\n"
    "backend = irc\n"
    "server = 127.0.0.2\n"
    "port = 5348\n"
    "secret = change-me\n"
    "allow = example.org, *.example.net ,alice@example.com\n"
    "admins = admin@example.org\n"
    "max_stanza_size = 128k\n"
    "nick = gw\n"
    "\n"
    "[component sms.example.org]\n"
    "  backend=sms\n"
    "\tsecret=\"x;y\"\n";

static void
test_full_file(void)
{
	extra_calls = validate_calls = 0;
	struct loaded l = load(full_file);
	CHECK(l.nerr == 0);
	CHECK(l.cfg != NULL);
	print_errors(&l);
	if (l.cfg == NULL) {
		unload(&l);
		return;
	}
	CHECK_STR(config_path(l.cfg), l.path);

	const struct config_section *c = config_section_find(l.cfg,
	    "causeway", NULL);
	CHECK(c != NULL);
	CHECK(c == config_section_at(l.cfg, "causeway", 0));
	CHECK(config_section_at(l.cfg, "causeway", 1) == NULL);
	CHECK_STR(config_section_type_name(c), "causeway");
	CHECK(config_section_arg(c) == NULL);
	CHECK_STR(config_section_file(c), l.path);
	CHECK(config_section_line(c) == 4);
	CHECK_STR(config_str(c, "database"), "/var/lib/causeway/causeway.db");
	CHECK_STR(config_str(c, "key_file"), "/var/lib/causeway/secret.key");
	CHECK_STR(config_str(c, "log_level"), "debug");
	CHECK(config_int(c, "workers") == 8);
	CHECK_STR(config_str(c, "workers"), "8");
	CHECK(config_bool(c, "syslog") == 1);
	CHECK(config_int(c, "offset") == -5);
	CHECK(config_has(c, "workers"));
	CHECK(!config_has(c, "offset"));
	CHECK(config_key_line(c, "workers") == 8);
	CHECK(config_key_line(c, "offset") == 4);

	const struct config_section *irc = config_section_at(l.cfg,
	    "component", 0);
	const struct config_section *sms = config_section_at(l.cfg,
	    "component", 1);
	CHECK(config_section_at(l.cfg, "component", 2) == NULL);
	CHECK(config_section_at(l.cfg, "nope", 0) == NULL);
	CHECK(irc == config_section_find(l.cfg, "component",
	    "irc.example.org"));
	CHECK(sms == config_section_find(l.cfg, "component",
	    "sms.example.org"));
	CHECK(config_section_find(l.cfg, "component", "x.example.org") ==
	    NULL);
	CHECK(config_section_find(l.cfg, "component", NULL) == NULL);
	CHECK(config_section_find(l.cfg, "nope", NULL) == NULL);
	CHECK_STR(config_section_arg(irc), "irc.example.org");
	CHECK(config_section_line(irc) == 11);

	CHECK_STR(config_str(irc, "backend"), "irc");
	CHECK_STR(config_str(irc, "server"), "127.0.0.2");
	CHECK(config_int(irc, "port") == 5348);
	CHECK_STR(config_str(irc, "secret"), "change-me");
	size_t n;
	const char *const *allow = config_list(irc, "allow", &n);
	CHECK(n == 3);
	if (n == 3) {
		CHECK_STR(allow[0], "example.org");
		CHECK_STR(allow[1], "*.example.net");
		CHECK_STR(allow[2], "alice@example.com");
	}
	const char *const *admins = config_list(irc, "admins", &n);
	CHECK(n == 1 && admins != NULL);
	if (n == 1)
		CHECK_STR(admins[0], "admin@example.org");
	CHECK(config_int(irc, "max_stanza_size") == 128 * 1024);
	/* The backend's own keys, declared by extra_options. */
	CHECK_STR(config_str(irc, "nick"), "gw");
	CHECK(config_str(irc, "fixed_server") == NULL);
	CHECK(config_bool(irc, "tls") == 1);

	CHECK_STR(config_str(sms, "backend"), "sms");
	CHECK_STR(config_str(sms, "secret"), "x;y");
	CHECK(config_key_line(sms, "secret") == 23);

	CHECK(extra_calls == 2);
	CHECK(validate_calls == 2);
	unload(&l);
}

static void
test_defaults(void)
{
	struct loaded l = load("[causeway]\nkey_file = k\n" GOOD_COMPONENT);
	CHECK(l.nerr == 0);
	print_errors(&l);
	if (l.cfg == NULL) {
		unload(&l);
		return;
	}
	const struct config_section *c = config_section_at(l.cfg, "causeway",
	    0);
	CHECK_STR(config_str(c, "database"), "/var/lib/causeway/causeway.db");
	CHECK_STR(config_str(c, "log_level"), "info");
	CHECK(config_int(c, "workers") == 4);
	CHECK(config_bool(c, "syslog") == 0);

	const struct config_section *s = config_section_at(l.cfg, "component",
	    0);
	CHECK_STR(config_str(s, "server"), "127.0.0.1");
	CHECK(config_int(s, "port") == 5347);
	CHECK(config_int(s, "max_stanza_size") == 65536);
	size_t n = 99;
	const char *const *allow = config_list(s, "allow", &n);
	CHECK(n == 1 && allow != NULL);
	if (n == 1)
		CHECK_STR(allow[0], "*");
	n = 99;
	CHECK(config_list(s, "admins", &n) == NULL && n == 0);
	CHECK_STR(config_str(s, "admins"), "");
	CHECK(!config_has(s, "allow"));
	CHECK_STR(config_str(s, "nick"), "causeway");
	unload(&l);

	/* Sections absent from the file are the caller's business. */
	l = load("; nothing here\n");
	CHECK(l.nerr == 0 && l.cfg != NULL);
	CHECK(config_section_at(l.cfg, "causeway", 0) == NULL);
	unload(&l);
	l = load("");
	CHECK(l.nerr == 0 && l.cfg != NULL);
	unload(&l);
}

static long long
size_of(const char *value, int *nerr)
{
	char buf[256];
	snprintf(buf, sizeof(buf), GOOD_COMPONENT "max_stanza_size = %s\n",
	    value);
	struct loaded l = load(buf);
	long long v = -1;
	*nerr = l.nerr;
	if (l.cfg != NULL)
		v = config_int(config_section_at(l.cfg, "component", 0),
		    "max_stanza_size");
	unload(&l);
	return v;
}

static void
test_sizes(void)
{
	int e;
	CHECK(size_of("1024", &e) == 1024 && e == 0);
	CHECK(size_of("64k", &e) == 65536 && e == 0);
	CHECK(size_of("64K", &e) == 65536 && e == 0);
	CHECK(size_of("2M", &e) == 2 * 1024 * 1024 && e == 0);
	CHECK(size_of("2m", &e) == 2 * 1024 * 1024 && e == 0);
	CHECK(size_of("16M", &e) == 16 * 1024 * 1024 && e == 0);
	CHECK(size_of("\"1k\"", &e) == 1024 && e == 0);
	static const char *const bad[] = {
		"64 k", "1G", "k", "-1", "1.5k", "0x10", "64kb",
		"99999999999999999999", "9999999999999999M",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK(size_of(bad[i], &e) == -1 && e == 1);
	}
	CHECK(ERRORS(GOOD_COMPONENT "max_stanza_size = 17M\n",
	    ":4: max_stanza_size: 17M is out of range 1024..16777216 bytes"));
	CHECK(ERRORS(GOOD_COMPONENT "max_stanza_size = 1023\n",
	    ":4: max_stanza_size: 1023 is out of range 1024..16777216 bytes"));
	CHECK(ERRORS(GOOD_COMPONENT "max_stanza_size = 64 k\n",
	    ":4: max_stanza_size: '64 k' is not a size (bytes, or a number "
	    "with suffix k or M)"));
}

static int
bool_of(const char *value)
{
	char buf[256];
	snprintf(buf, sizeof(buf), "[causeway]\nkey_file = k\nsyslog = %s\n",
	    value);
	struct loaded l = load(buf);
	int v = -1;
	if (l.cfg != NULL)
		v = config_bool(config_section_at(l.cfg, "causeway", 0),
		    "syslog");
	unload(&l);
	return v;
}

static void
test_bools(void)
{
	CHECK(bool_of("yes") == 1);
	CHECK(bool_of("true") == 1);
	CHECK(bool_of("on") == 1);
	CHECK(bool_of("1") == 1);
	CHECK(bool_of("YES") == 1);
	CHECK(bool_of("no") == 0);
	CHECK(bool_of("false") == 0);
	CHECK(bool_of("off") == 0);
	CHECK(bool_of("0") == 0);
	CHECK(bool_of("Off") == 0);
	CHECK(bool_of("maybe") == -1);
	CHECK(bool_of("2") == -1);
	CHECK(ERRORS("[causeway]\nkey_file = k\nsyslog = maybe\n",
	    ":3: syslog: 'maybe' is not a boolean (yes/no, true/false, on/off, "
	    "1/0)"));
}

static void
test_quotes_and_comments(void)
{
	struct loaded l = load(
	    "[causeway]\n"
	    "key_file = \"a;b#c\"\n"
	    "database = \"with \\\"quotes\\\" and \\\\ and \\n\"   ; comment\n"
	    "log_level = warn;not a comment, so a bad enum?\n"
	    "[component a.example]\n"
	    "backend = irc ; the backend\n"
	    "secret = \"  spaced  \"\n"
	    "server = host#frag\t# a comment after a tab\n"
	    "nick = \"\"\n"
	    "fixed_server =\n"
	    "port = \"5349\"\n"
	    "allow = \"a, b;c\"\n");
	/* "warn;not ..." has no blank before ';': it is all the value. */
	CHECK(l.nerr == 1);
	CHECK(l.nerr == 1 && strstr(config_errors_at(l.errs, 0),
	    ":4: log_level: 'warn;not a comment, so a bad enum?' is not one "
	    "of") != NULL);
	unload(&l);

	l = load(
	    "[causeway]\n"
	    "key_file = \"a;b#c\"\n"
	    "database = \"with \\\"quotes\\\" and \\\\ and \\n\"   ; comment\n"
	    "log_level = warn ;comment\n"
	    "[component a.example]\n"
	    "backend = irc ; the backend\n"
	    "secret = \"  spaced  \"\n"
	    "server = host#frag\t# a comment after a tab\n"
	    "nick = \"\"\n"
	    "fixed_server =\n"
	    "port = \"5349\"\n"
	    "allow = \"a, b;c\"\n"
	    "admins = x ;\n");
	CHECK(l.nerr == 0);
	print_errors(&l);
	if (l.cfg != NULL) {
		const struct config_section *c = config_section_at(l.cfg,
		    "causeway", 0);
		const struct config_section *s = config_section_at(l.cfg,
		    "component", 0);
		CHECK_STR(config_str(c, "key_file"), "a;b#c");
		CHECK_STR(config_str(c, "database"),
		    "with \"quotes\" and \\ and \\n");
		CHECK_STR(config_str(c, "log_level"), "warn");
		CHECK_STR(config_str(s, "backend"), "irc");
		CHECK_STR(config_str(s, "secret"), "  spaced  ");
		CHECK_STR(config_str(s, "server"), "host#frag");
		CHECK_STR(config_str(s, "nick"), "");
		CHECK(config_has(s, "nick"));
		CHECK_STR(config_str(s, "fixed_server"), "");
		CHECK(config_int(s, "port") == 5349);
		size_t n;
		const char *const *a = config_list(s, "allow", &n);
		CHECK(n == 2);
		if (n == 2) {
			CHECK_STR(a[0], "a");
			CHECK_STR(a[1], "b;c");
		}
		a = config_list(s, "admins", &n);
		CHECK(n == 1);
	}
	unload(&l);

	CHECK(ERRORS("[causeway]\nkey_file = \"abc\n",
	    ":2: unterminated quoted value"));
	CHECK(ERRORS("[causeway]\nkey_file = \"abc\n\"\n",
	    ":2: unterminated quoted value",
	    ":3: expected 'key = value' or a [section] header"));
	CHECK(ERRORS("[causeway]\nkey_file = \"abc\\\"\n",
	    ":2: unterminated quoted value"));
	/* A key with a broken value is not reported missing as well. */
	CHECK(ERRORS("[causeway]\nkey_file = \"abc\" def\n",
	    ":2: unexpected text after the closing quote"));
}

static void
test_crlf_and_bom(void)
{
	struct loaded l = load("\xef\xbb\xbf[causeway]\r\n"
	    "key_file = k\r\n"
	    "log_level = debug\r\n"
	    "\r\n"
	    "[component a.example]\r\n"
	    "backend = sms\r\n"
	    "secret = \"q\"\r\n"
	    "allow = a, b\r\n");
	CHECK(l.nerr == 0);
	print_errors(&l);
	if (l.cfg != NULL) {
		const struct config_section *c = config_section_at(l.cfg,
		    "causeway", 0);
		const struct config_section *s = config_section_at(l.cfg,
		    "component", 0);
		CHECK_STR(config_str(c, "log_level"), "debug");
		CHECK_STR(config_str(s, "secret"), "q");
		size_t n;
		const char *const *a = config_list(s, "allow", &n);
		CHECK(n == 2 && strcmp(a[1], "b") == 0);
		CHECK(config_key_line(s, "allow") == 8);
	}
	unload(&l);

	/* Line numbers stay right with CRLF, and a last line without \n. */
	CHECK(ERRORS("\xef\xbb\xbf[causeway]\r\nkey_file = k\r\n\r\n"
	    "workers = 0\r\nsyslog = nah",
	    ":4: workers: 0 is out of range 1..64",
	    ":5: syslog: 'nah' is not a boolean (yes/no, true/false, on/off, "
	    "1/0)"));
}

static void
test_bad_inputs(void)
{
	CHECK(ERRORS(GOOD_COMPONENT "secrett = x\n",
	    ":4: unknown key 'secrett' in [component irc.example.org]"));
	CHECK(ERRORS(GOOD_COMPONENT "\n" GOOD_COMPONENT,
	    ":5: duplicate section [component irc.example.org] (first at "
	    "line 1)"));
	CHECK(ERRORS("[causeway]\nkey_file = k\n\n[causeway]\nkey_file = k\n",
	    ":4: duplicate section [causeway] (first at line 1)"));
	CHECK(ERRORS("\n\n[component irc.example.org]\nbackend = irc\n",
	    ":3: missing required key 'secret' in [component "
	    "irc.example.org]"));
	CHECK(ERRORS(GOOD_COMPONENT "port = 1\nport = 2\n",
	    ":5: duplicate key 'port' in [component irc.example.org] (first "
	    "at line 4)"));
	CHECK(ERRORS(GOOD_COMPONENT "port = abc\n",
	    ":4: port: 'abc' is not a whole number"));
	CHECK(ERRORS(GOOD_COMPONENT "port = 53 47\n",
	    ":4: port: '53 47' is not a whole number"));
	CHECK(ERRORS(GOOD_COMPONENT "port = 99999\n",
	    ":4: port: 99999 is out of range 1..65535"));
	CHECK(ERRORS(GOOD_COMPONENT "port = 0\n",
	    ":4: port: 0 is out of range 1..65535"));
	CHECK(ERRORS(GOOD_COMPONENT "port = -1\n",
	    ":4: port: -1 is out of range 1..65535"));
	CHECK(ERRORS(GOOD_COMPONENT "port = 99999999999999999999999\n",
	    ":4: port: 99999999999999999999999 is out of range 1..65535"));
	CHECK(ERRORS("[causeway]\nkey_file = k\nlog_level = loud\n",
	    ":3: log_level: 'loud' is not one of error, warn, info, debug"));
	CHECK(ERRORS("[causeway]\nkey_file = k\nlog_level = INFO\n",
	    ":3: log_level: 'INFO' is not one of error, warn, info, debug"));
	CHECK(ERRORS("; leading comment\nkey = value\n",
	    ":2: key outside any section"));
	CHECK(ERRORS("[foo]\nkey = value\nother = 1\n",
	    ":1: unknown section type [foo]"));
	CHECK(ERRORS("[foo bar]\n", ":1: unknown section type [foo]"));
	CHECK(ERRORS("[component]\nbackend = irc\nsecret = s\n",
	    ":1: [component] needs an argument"));
	/* The keys of a section with a wrong header are still checked. */
	CHECK(ERRORS("[component]\nbackend = irc\nsecret = s\nbogus = 1\n",
	    ":1: [component] needs an argument",
	    ":4: unknown key 'bogus' in [component]"));
	CHECK(ERRORS("[causeway x]\nkey_file = k\n",
	    ":1: [causeway] takes no argument (found 'x')"));
	CHECK(ERRORS("[component a b]\nbackend = irc\nsecret = s\n",
	    ":1: the argument of [component a b] may not contain spaces"));
	CHECK(ERRORS("[component a.example\nbackend = irc\n",
	    ":1: missing ']' in section header"));
	CHECK(ERRORS("[component a.example] x\n",
	    ":1: unexpected text after section header [component a.example]"));
	CHECK(ERRORS("[ ]\n", ":1: empty section header []"));
	CHECK(ERRORS(GOOD_COMPONENT "just some words\n",
	    ":4: expected 'key = value' or a [section] header"));
	CHECK(ERRORS(GOOD_COMPONENT "bad key = 1\n",
	    ":4: invalid key 'bad key' (letters, digits, '_', '.', '-')"));
	CHECK(ERRORS(GOOD_COMPONENT " = 1\n",
	    ":4: invalid key '' (letters, digits, '_', '.', '-')"));
	CHECK(ERRORS(GOOD_COMPONENT "port =\n",
	    ":4: port: value is empty"));
	CHECK(ERRORS(GOOD_COMPONENT "allow = \"\"\n",
	    ":4: allow: value is empty"));
	CHECK(ERRORS(GOOD_COMPONENT "allow = a,,b\n",
	    ":4: allow: empty item in list 'a,,b'"));
	CHECK(ERRORS(GOOD_COMPONENT "allow = a,\n",
	    ":4: allow: empty item in list 'a,'"));
	/* Keys are case-sensitive. */
	CHECK(ERRORS(GOOD_COMPONENT "Port = 1\n",
	    ":4: unknown key 'Port' in [component irc.example.org]"));
}

static void
test_file_errors(void)
{
	struct config_errors *errs = config_errors_new();
	struct config *cfg = (struct config *)&errs;  /* must stay as is */
	int n = config_load("/nonexistent/causeway.conf", types, NTYPES, &cfg,
	    errs);
	CHECK(n == 1);
	CHECK(cfg == (struct config *)&errs);
	CHECK_STR(config_errors_at(errs, 0), "/nonexistent/causeway.conf: "
	    "cannot open: No such file or directory");
	CHECK(config_errors_at(errs, 1) == NULL);

	/* A directory opens but cannot be read. */
	n = config_load("/tmp", types, NTYPES, &cfg, errs);
	CHECK(n == 1 && config_errors_count(errs) == 2);
	CHECK_STR(config_errors_at(errs, 1), "/tmp: cannot read: Is a "
	    "directory");
	config_errors_free(errs);

	/* 2 MiB is refused; exactly 1 MiB of comments is fine. */
	size_t big = 2 * 1024 * 1024;
	char *buf = malloc(big);
	for (size_t i = 0; i < big; i += 64) {
		memset(buf + i, ' ', 64);
		buf[i] = ';';
		buf[i + 63] = '\n';
	}
	struct loaded l = load_mem(buf, big);
	CHECK(l.nerr == 1 && l.cfg == NULL);
	char want[512];
	snprintf(want, sizeof(want), "%s: file is larger than the limit of "
	    "1048576 bytes (1 MiB)", l.path);
	CHECK_STR(config_errors_at(l.errs, 0), want);
	unload(&l);
	l = load_mem(buf, 1024 * 1024);
	CHECK(l.nerr == 0 && l.cfg != NULL);
	unload(&l);
	l = load_mem(buf, 1024 * 1024 + 1);
	CHECK(l.nerr == 1);
	unload(&l);
	free(buf);

	/* A line of 4096 bytes is fine, 4097 is not. */
	char *line = malloc(10000);
	strcpy(line, GOOD_COMPONENT "server = ");
	size_t used = strlen(line), head = strlen("server = ");
	memset(line + used, 'x', 4096 - head);
	strcpy(line + used + 4096 - head, "\n");
	l = load(line);
	CHECK(l.nerr == 0);
	if (l.cfg != NULL)
		CHECK(strlen(config_str(config_section_at(l.cfg, "component",
		    0), "server")) == 4096 - head);
	unload(&l);
	/* CRLF is not counted. */
	strcpy(line + used + 4096 - head, "\r\n");
	l = load(line);
	CHECK(l.nerr == 0);
	unload(&l);
	strcpy(line + used + 4096 - head, "x\nbogus = 1\n");
	CHECK(ERRORS(line, ":4: line is longer than 4096 bytes",
	    ":5: unknown key 'bogus' in [component irc.example.org]"));
	free(line);

	/* A NUL byte is reported, not silently cut. */
	static const char nul[] = GOOD_COMPONENT "server = a\0b\n";
	l = load_mem(nul, sizeof(nul) - 1);
	CHECK(l.nerr == 1);
	snprintf(want, sizeof(want), "%s:4: line contains a NUL byte", l.path);
	CHECK_STR(config_errors_at(l.errs, 0), want);
	unload(&l);
}

static void
test_several_errors(void)
{
	/* Three kinds of mistake: every one reported, in line order. */
	CHECK(ERRORS(
	    "[causeway]\n"                      /* 1 */
	    "key_file = k\n"                    /* 2 */
	    "workers = 100\n"                   /* 3 */
	    "\n"                                /* 4 */
	    "[component irc.example.org]\n"     /* 5 */
	    "backend = irc\n"                   /* 6 */
	    "secrett = change-me\n"             /* 7 */
	    "[bogus]\n"                         /* 8 */
	    "a = b\n",                          /* 9 */
	    ":3: workers: 100 is out of range 1..64",
	    ":5: missing required key 'secret' in [component irc.example.org]",
	    ":7: unknown key 'secrett' in [component irc.example.org]",
	    ":8: unknown section type [bogus]"));

	/* Errors already in errs stay; the count is this load's only. */
	struct config_errors *errs = config_errors_new();
	config_error(errs, "earlier.conf", 9, "from %s", "before");
	char *path = write_temp("x = 1\n[causeway]\n", 17);
	struct config *cfg = NULL;
	CHECK(config_load(path, types, NTYPES, &cfg, errs) == 2);
	CHECK(cfg == NULL);
	CHECK(config_errors_count(errs) == 3);
	CHECK_STR(config_errors_at(errs, 0), "earlier.conf:9: from before");
	unlink(path);
	free(path);
	config_errors_free(errs);
}

static void
test_extra_options(void)
{
	/* irc keys under an irc backend, email's required key missing. */
	CHECK(NO_ERRORS(GOOD_COMPONENT "nick = bot\ntls = off\n"));
	CHECK(ERRORS("[component mail.example]\nbackend = email\nsecret = s\n",
	    ":1: missing required key 'smtp_host' in [component "
	    "mail.example]"));
	CHECK(ERRORS("[component mail.example]\nbackend = email\nsecret = s\n"
	    "smtp_host = localhost\nnick = x\n",
	    ":5: unknown key 'nick' in [component mail.example]"));
	CHECK(ERRORS("[component sms.example]\nbackend = sms\nsecret = s\n"
	    "nick = x\n",
	    ":4: unknown key 'nick' in [component sms.example]"));
	CHECK(ERRORS(GOOD_COMPONENT "tls = sometimes\nnick = a\nnick = b\n",
	    ":4: tls: 'sometimes' is not a boolean (yes/no, true/false, "
	    "on/off, 1/0)",
	    ":6: duplicate key 'nick' in [component irc.example.org] (first "
	    "at line 5)"));
	/* extra_options sees the backend, even before its own keys. */
	extra_calls = 0;
	CHECK(NO_ERRORS("[component a.example]\nnick = n\nbackend = irc\n"
	    "secret = s\n"));
	CHECK(extra_calls == 1);
	CHECK_STR(extra_saw_backend, "irc");
	/*
	 * A misspelt backend: its keys cannot be judged, so only the real
	 * mistake is reported.
	 */
	CHECK(ERRORS("[component a.example]\nbackend = ircc\nsecret = s\n"
	    "nick = n\ntls = yes\n",
	    ":2: backend: 'ircc' is not one of irc, email, sms"));
	/* A bad value extra_options() did not look at hides nothing. */
	CHECK(ERRORS(GOOD_COMPONENT "port = 99999\nsecrett = x\nnick = n\n",
	    ":4: port: 99999 is out of range 1..65535",
	    ":5: unknown key 'secrett' in [component irc.example.org]"));
	CHECK(ERRORS("[component a.example]\nbackend = sms\nsecret = s\n"
	    "port = x\nnick = n\n",
	    ":4: port: 'x' is not a whole number",
	    ":5: unknown key 'nick' in [component a.example]"));
	/* Nor does an unreadable backend line. */
	CHECK(ERRORS("[component a.example]\nbackend = \"irc\nsecret = s\n"
	    "nick = n\n",
	    ":2: unterminated quoted value"));
	CHECK(ERRORS("[component a.example]\nbackend =\nsecret = s\n"
	    "nick = n\n",
	    ":2: backend: value is empty"));
	/* No backend at all. */
	CHECK(ERRORS("[component a.example]\nsecret = s\nnick = n\n",
	    ":1: missing required key 'backend' in [component a.example]"));
}

static void
test_validate(void)
{
	validate_calls = 0;
	CHECK(ERRORS(GOOD_COMPONENT "allow = *, example.org\n",
	    ":4: allow: '*' cannot be combined with other entries in "
	    "[component irc.example.org]"));
	CHECK(validate_calls == 1);
	/* Not called for a section that already has errors. */
	validate_calls = 0;
	CHECK(ERRORS(GOOD_COMPONENT "allow = *, example.org\nport = x\n",
	    ":5: port: 'x' is not a whole number"));
	CHECK(validate_calls == 0);
	/* But called for the clean sections next to it. */
	CHECK(ERRORS(GOOD_COMPONENT "port = x\n"
	    "[component b.example]\nbackend = sms\nsecret = s\nallow = *,a\n",
	    ":4: port: 'x' is not a whole number",
	    ":8: allow: '*' cannot be combined with other entries in "
	    "[component b.example]"));
	CHECK(validate_calls == 1);
}

/* 1 when fn() aborts in a child process (its message goes to /dev/null). */
static int
aborts(void (*fn)(const struct config_section *),
    const struct config_section *sec)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);
		dup2(fd, 2);
		fn(sec);
		_exit(0);
	}
	int status;
	if (pid == -1 || waitpid(pid, &status, 0) != pid)
		return 0;
	return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

static void
ask_undeclared(const struct config_section *sec)
{
	(void)config_str(sec, "no_such_key");
}

static void
ask_int_of_string(const struct config_section *sec)
{
	(void)config_int(sec, "server");
}

static void
ask_list_of_int(const struct config_section *sec)
{
	size_t n;
	(void)config_list(sec, "port", &n);
}

static void
ask_has_undeclared(const struct config_section *sec)
{
	(void)config_has(sec, "secrett");
}

static void
ask_other_backend(const struct config_section *sec)
{
	(void)config_str(sec, "smtp_host");
}

static void
ask_declared(const struct config_section *sec)
{
	(void)config_str(sec, "nick");
}

static void
test_misuse_aborts(void)
{
	struct loaded l = load(GOOD_COMPONENT);
	CHECK(l.cfg != NULL);
	if (l.cfg != NULL) {
		const struct config_section *s = config_section_at(l.cfg,
		    "component", 0);
		CHECK(aborts(ask_undeclared, s));
		CHECK(aborts(ask_int_of_string, s));
		CHECK(aborts(ask_list_of_int, s));
		CHECK(aborts(ask_has_undeclared, s));
		CHECK(aborts(ask_other_backend, s));
		CHECK(!aborts(ask_declared, s));
	}
	unload(&l);
}

static void
test_error_api(void)
{
	struct config_errors *errs = config_errors_new();
	CHECK(config_errors_count(errs) == 0);
	CHECK(config_errors_at(errs, 0) == NULL);
	config_error(errs, "f.conf", 12, "bad %s %d", "thing", 7);
	config_error(errs, "f.conf", 0, "whole file");
	CHECK(config_errors_count(errs) == 2);
	CHECK_STR(config_errors_at(errs, 0), "f.conf:12: bad thing 7");
	CHECK_STR(config_errors_at(errs, 1), "f.conf: whole file");
	config_errors_free(errs);
	config_errors_free(NULL);
	config_free(NULL);
}

/* Thousands of sections and keys: the parser must stay linear-ish. */
static void
test_large_file(void)
{
	size_t cap = 900 * 1024, len = 0;
	char *buf = malloc(cap);
	int sections = 2500;
	for (int i = 0; i < sections; i++)
		len += (size_t)snprintf(buf + len, cap - len,
		    "[component c%d.example]\nbackend = sms\nsecret = s%d\n\n",
		    i, i);
	clock_t t0 = clock();
	struct loaded l = load_mem(buf, len);
	double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
	CHECK(l.nerr == 0);
	CHECK(secs < 2.0);
	if (l.cfg != NULL) {
		const struct config_section *s = config_section_find(l.cfg,
		    "component", "c2499.example");
		CHECK(s != NULL && s == config_section_at(l.cfg, "component",
		    2499));
		CHECK(s != NULL && config_section_line(s) == 2499 * 4 + 1);
		CHECK_STR(config_str(s, "secret"), "s2499");
		CHECK(config_section_at(l.cfg, "component", 2500) == NULL);
	}
	unload(&l);

	/* 10,000 repeats of one key: 9,999 errors, quickly. */
	len = (size_t)snprintf(buf, cap, GOOD_COMPONENT);
	for (int i = 0; i < 10000; i++)
		len += (size_t)snprintf(buf + len, cap - len, "port = %d\n",
		    i + 1);
	t0 = clock();
	l = load_mem(buf, len);
	secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
	CHECK(l.nerr == 9999);
	CHECK(secs < 2.0);
	unload(&l);
	free(buf);
}

int
main(void)
{
	RUN(test_full_file);
	RUN(test_defaults);
	RUN(test_sizes);
	RUN(test_bools);
	RUN(test_quotes_and_comments);
	RUN(test_crlf_and_bom);
	RUN(test_bad_inputs);
	RUN(test_file_errors);
	RUN(test_several_errors);
	RUN(test_extra_options);
	RUN(test_validate);
	RUN(test_misuse_aborts);
	RUN(test_error_api);
	RUN(test_large_file);
	return TAP_DONE();
}
