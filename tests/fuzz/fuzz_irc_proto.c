/*
 * libFuzzer harness for the IRC protocol text layer.
 *
 * The whole input is one line from a server: it is parsed, and a message
 * that parses is rebuilt with irc_build() and parsed again; the second
 * parse must succeed and agree on command and parameters (a rebuild may
 * be refused only for a reason irc_build() documents: too long, or a
 * parameter it cannot carry).  The same bytes then go through every
 * function that meets network or user text: irc_to_utf8 (valid UTF-8,
 * no NUL), irc_split (every piece valid UTF-8 and within its budget),
 * the formatting functions, CTCP and the address parser (which must
 * round-trip through irc_addr_local).  The first byte picks the fallback
 * charset, the split overhead and the address mode, so one input
 * explores several settings.  Anything wrong aborts.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "irc_proto.h"
#include "log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const charsets[] = {
	NULL, "CP1252", "ISO-8859-15", "UTF-16LE", "ISO-2022-JP",
	"no-such-charset", "UTF-8", "KOI8-R",
};

static void
die(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_irc_proto: %s: %s\n", what,
	    detail != NULL ? detail : "(null)");
	abort();
}

#include "../utf8_check.h"

static void
check_rebuild(const struct irc_msg *m)
{
	const char *params[IRC_PARAMS_MAX + 1];
	struct evbuffer *b = evbuffer_new();
	struct irc_msg r;
	size_t len;
	char *line;

	for (size_t i = 0; i < m->nparams; i++)
		params[i] = m->params[i];
	params[m->nparams] = NULL;
	if (irc_build(b, m->command, params) != 0) {
		/* A parsed message has no CR, LF or NUL, and its middle
		 * parameters are non-empty words without ':' in front; only
		 * the length (a ':' added to the last one) may not fit. */
		if (evbuffer_get_length(b) != 0)
			die("refused build appended", m->command);
		size_t total = strlen(m->command) + 2;
		for (size_t i = 0; i < m->nparams; i++)
			total += strlen(m->params[i]) + 2;
		if (total <= IRC_LINE_MAX)
			die("rebuild refused", m->command);
		evbuffer_free(b);
		return;
	}
	len = evbuffer_get_length(b);
	if (len > IRC_LINE_MAX || len < 2)
		die("built line too long", m->command);
	line = (char *)evbuffer_pullup(b, -1);
	if (line[len - 2] != '\r' || line[len - 1] != '\n' ||
	    memchr(line, '\r', len - 2) != NULL ||
	    memchr(line, '\n', len - 2) != NULL)
		die("built line has CR/LF inside", m->command);
	memset(&r, 0, sizeof(r));
	if (irc_msg_parse(line, len - 2, &r) != 0)
		die("rebuilt line does not parse", m->command);
	if (strcmp(r.command, m->command) != 0 || r.nparams != m->nparams)
		die("rebuilt line differs", m->command);
	for (size_t i = 0; i < m->nparams; i++)
		if (strcmp(r.params[i], m->params[i]) != 0)
			die("rebuilt parameter differs", m->params[i]);
	irc_msg_clear(&r);
	evbuffer_free(b);
}

static void
check_parse(const char *data, size_t size)
{
	struct irc_msg m;
	struct irc_isupport is;

	memset(&m, 0, sizeof(m));
	if (irc_msg_parse(data, size, &m) != 0)
		return;
	if (m.command == NULL || m.nparams > IRC_PARAMS_MAX)
		die("parse result", NULL);
	for (size_t i = 0; i < m.ntags; i++)
		if (irc_msg_tag(&m, m.tags[i].key) == NULL)
			die("tag lookup", m.tags[i].key);
	check_rebuild(&m);
	irc_isupport_init(&is);
	irc_isupport_apply(&is, &m);
	if (strlen(is.network) >= sizeof(is.network) ||
	    strlen(is.prefix_modes) != strlen(is.prefix_chars) ||
	    !valid_utf8(is.network))
		die("isupport", is.network);
	for (size_t i = 0; i < m.nparams; i++) {
		char *cmd, *args;
		if (irc_ctcp_parse(m.params[i], &cmd, &args) == 1) {
			char *again = irc_ctcp_build(cmd, args);
			free(again);
			free(cmd);
			free(args);
		}
	}
	irc_msg_clear(&m);
}

static void
check_text(const char *data, size_t size, const char *str, unsigned mode)
{
	char *s, *t, **v;
	size_t overhead, n, i;

	s = irc_to_utf8(data, size, charsets[mode % 8]);
	if (!valid_utf8(s))
		die("irc_to_utf8 not UTF-8", s);
	t = irc_strip_formatting(s);
	if (!valid_utf8(t) || strpbrk(t, "\x02\x03\x04\x0f\x11\x16\x1d\x1e"
	    "\x1f") != NULL)
		die("strip", t);
	free(t);
	t = irc_format_to_styling(s);
	if (!valid_utf8(t))
		die("styling", t);
	free(t);
	free(s);

	overhead = (size_t)(mode * 2) % (IRC_LINE_MAX - 2 - 4 + 1);
	n = irc_split(str, overhead, &v);
	for (i = 0; v[i] != NULL; i++) {
		size_t len = strlen(v[i]);
		if (len == 0 || len > IRC_LINE_MAX - 2 - overhead ||
		    !valid_utf8(v[i]) || strpbrk(v[i], "\r\n\x01") != NULL)
			die("split piece", v[i]);
	}
	if (i != n)
		die("split count", str);
	irc_split_free(v);
}

static void
check_addr(const char *str, unsigned mode)
{
	const char *fixed = (mode & 1) ? "irc.example.org" : NULL;
	const char *chantypes = (mode & 2) ? "#" : "#&!+";
	struct irc_addr a, b;
	char *local;

	memset(&a, 0, sizeof(a));
	if (irc_addr_parse(str, fixed, chantypes, &a) != 0)
		return;
	if (a.server == NULL || !valid_utf8(a.server) ||
	    (a.name != NULL && !valid_utf8(a.name)))
		die("address", str);
	local = irc_addr_local(&a, fixed);
	memset(&b, 0, sizeof(b));
	if (irc_addr_parse(local, fixed, chantypes, &b) != 0)
		die("address does not round-trip", local);
	if (a.kind != b.kind || strcmp(a.server, b.server) != 0 ||
	    (a.name != NULL) != (b.name != NULL) ||
	    (a.name != NULL && strcmp(a.name, b.name) != 0))
		die("address round-trip differs", local);
	free(local);
	irc_addr_clear(&a);
	irc_addr_clear(&b);
}

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
	unsigned mode = size > 0 ? data[0] : 0;
	char *str;

	/* The line itself, exactly as given (NUL and all). */
	check_parse((const char *)data, size);

	/* The same bytes as a C string for the functions that take one. */
	str = malloc(size + 1);
	if (str == NULL)
		return 0;
	memcpy(str, data, size);
	str[size] = '\0';
	check_text((const char *)data, size, str, mode);
	check_addr(str, mode);
	/* Without the mode byte, for a corpus of plain lines. */
	if (size > 0)
		check_addr(str + 1, mode >> 2);
	free(str);
	return 0;
}
