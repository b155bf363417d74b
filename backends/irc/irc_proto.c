/*
 * The IRC protocol as text.  Everything that comes from an IRC server
 * passes irc_msg_parse() and everything that goes to one passes
 * irc_build(), so these two are where injection and over-long input are
 * stopped:
 *
 *   server bytes -> line framing (irc_conn) -> irc_msg_parse -> irc_msg
 *                -> irc_to_utf8 / irc_strip_formatting -> XMPP text
 *   XMPP text -> irc_split (pieces that fit) -> irc_build -> evbuffer
 *
 * A parsed message lives in one allocation (the tag array followed by
 * every string), so a line costs one malloc however many parameters it
 * has; irc_msg_clear() knows where that block starts.
 *
 * Text handed to XMPP must be valid UTF-8 without NUL (XML cannot carry
 * anything else), so every function that produces text for the XMPP side
 * ends in the same strict validation: no overlong forms, no surrogates,
 * nothing above U+10FFFF.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <iconv.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "irc_proto.h"
#include "log.h"
#include "xmalloc.h"

#define IRC_DEFAULT_CHANTYPES "#&"
#define IRC_DEFAULT_PREFIX_MODES "ov"
#define IRC_DEFAULT_PREFIX_CHARS "@+"
#define IRC_DEFAULT_CHARSET "CP1252"
#define IRC_CHANNEL_MAX 200
#define IRC_NICK_MAX 64
#define IRC_HOST_MAX 253

/* U+FFFD REPLACEMENT CHARACTER */
static const char replacement[3] = { '\xef', '\xbf', '\xbd' };

/* ---- UTF-8 ---- */

/*
 * Length of the well-formed UTF-8 sequence at s (n > 0 bytes available),
 * or 0 when it is not one (Unicode 3.9 table 3-7): C0, C1 and F5..FF
 * never start a sequence, E0 and F0 need a second byte that rules out
 * overlong forms, ED one that rules out the surrogates D800..DFFF, F4
 * one that stays at or below U+10FFFF.
 */
static size_t
utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];

	if (c < 0x80)
		return 1;
	if (c < 0xc2)
		return 0;
	if (c < 0xe0) {
		if (n < 2 || (s[1] & 0xc0) != 0x80)
			return 0;
		return 2;
	}
	if (c < 0xf0) {
		if (n < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
			return 0;
		if (c == 0xe0 && s[1] < 0xa0)
			return 0;
		if (c == 0xed && s[1] >= 0xa0)
			return 0;
		return 3;
	}
	if (c < 0xf5) {
		if (n < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 ||
		    (s[3] & 0xc0) != 0x80)
			return 0;
		if (c == 0xf0 && s[1] < 0x90)
			return 0;
		if (c == 0xf4 && s[1] >= 0x90)
			return 0;
		return 4;
	}
	return 0;
}

/* 1 when [s, s + n) is well-formed UTF-8 (NUL counts as valid here). */
static int
utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	const unsigned char *end = p + n;

	while (p < end) {
		if (*p < 0x80) {
			p++;
			continue;
		}
		size_t k = utf8_seq(p, (size_t)(end - p));
		if (k == 0)
			return 0;
		p += k;
	}
	return 1;
}

/*
 * Copies [s, s + n) to dst as valid UTF-8 without NUL: each byte that
 * does not start a well-formed sequence becomes U+FFFD on its own, so
 * one bad byte never swallows the characters after it.  dst must hold
 * 3 * n bytes.  Returns the bytes written (no terminator).
 */
static size_t
utf8_sanitize(char *dst, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	const unsigned char *end = p + n;
	char *d = dst;

	while (p < end) {
		if (*p < 0x80) {
			if (*p != '\0')
				*d++ = (char)*p;
			p++;
			continue;
		}
		size_t k = utf8_seq(p, (size_t)(end - p));
		if (k == 0) {
			memcpy(d, replacement, sizeof(replacement));
			d += sizeof(replacement);
			p++;
			continue;
		}
		memcpy(d, p, k);
		d += k;
		p += k;
	}
	return (size_t)(d - dst);
}

/* ---- parsing ---- */

static int
is_alpha(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static int
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static char
ascii_upper(char c)
{
	return (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
}

static char
ascii_lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* A command is letters, or exactly three digits (a numeric reply). */
static int
command_valid(const char *s, size_t n)
{
	if (n == 0)
		return 0;
	if (n == 3 && is_digit((unsigned char)s[0]) &&
	    is_digit((unsigned char)s[1]) && is_digit((unsigned char)s[2]))
		return 1;
	for (size_t i = 0; i < n; i++)
		if (!is_alpha((unsigned char)s[i]))
			return 0;
	return 1;
}

/* Copies n bytes to *arena and NUL-terminates; returns the copy. */
static char *
arena_put(char **arena, const char *s, size_t n)
{
	char *r = *arena;
	memcpy(r, s, n);
	r[n] = '\0';
	*arena += n + 1;
	return r;
}

/*
 * IRCv3 message-tags value unescaping: \: \s \\ \r \n, any other escaped
 * character stands for itself, and a lone backslash at the end is
 * dropped.  The result is never longer than the input.
 */
static char *
arena_put_unescaped(char **arena, const char *s, size_t n)
{
	char *r = *arena, *d = r;

	for (size_t i = 0; i < n; i++) {
		if (s[i] != '\\') {
			*d++ = s[i];
			continue;
		}
		if (++i == n)
			break;
		switch (s[i]) {
		case ':':
			*d++ = ';';
			break;
		case 's':
			*d++ = ' ';
			break;
		case 'r':
			*d++ = '\r';
			break;
		case 'n':
			*d++ = '\n';
			break;
		default:
			*d++ = s[i];
			break;
		}
	}
	*d++ = '\0';
	*arena = d;
	return r;
}

int
irc_msg_parse(const char *line, size_t len, struct irc_msg *out)
{
	const char *p, *end, *tags = NULL, *prefix = NULL, *cmd;
	size_t tags_len = 0, prefix_len = 0, cmd_len, ntags_max = 0;

	if (line == NULL || out == NULL)
		return -1;
	/* A reader that frames on LF alone leaves the CR: forgive it here
	 * rather than make every caller strip it. */
	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	if (len == 0 || len > IRC_INPUT_MAX)
		return -1;
	/* A CR or LF inside a line means the framing went wrong or someone
	 * tries to smuggle a second line: refuse it, like NUL. */
	if (memchr(line, '\0', len) != NULL ||
	    memchr(line, '\r', len) != NULL ||
	    memchr(line, '\n', len) != NULL)
		return -1;

	p = line;
	end = line + len;
	if (*p == '@') {
		const char *sp = memchr(p, ' ', len);
		if (sp == NULL)
			return -1;
		tags = p + 1;
		tags_len = (size_t)(sp - tags);
		/* The limit counts the '@' as the IRCv3 spec does. */
		if (tags_len + 1 > IRC_TAGS_MAX)
			return -1;
		ntags_max = 1;
		for (const char *t = tags; t < sp; t++)
			if (*t == ';')
				ntags_max++;
		p = sp;
		while (p < end && *p == ' ')
			p++;
	}
	/* Everything after the tags must fit a classic line (CR LF aside). */
	if ((size_t)(end - p) > IRC_LINE_MAX - 2)
		return -1;
	if (p < end && *p == ':') {
		prefix = ++p;
		while (p < end && *p != ' ')
			p++;
		prefix_len = (size_t)(p - prefix);
		if (prefix_len == 0 || p == end)
			return -1;
		while (p < end && *p == ' ')
			p++;
	}
	cmd = p;
	while (p < end && *p != ' ')
		p++;
	cmd_len = (size_t)(p - cmd);
	if (!command_valid(cmd, cmd_len))
		return -1;

	/*
	 * One block: the tag array, then every string.  Each string is at
	 * most as long as the input span it comes from plus its NUL, and the
	 * prefix is stored twice (raw and split), so 2 * len + a few bytes
	 * bound it.
	 */
	size_t array = ntags_max * sizeof(struct irc_tag);
	char *block = xmalloc(array + 2 * len + 8);
	char *arena = block + array;
	struct irc_tag *tv = ntags_max > 0 ? (struct irc_tag *)(void *)block :
	    NULL;
	struct irc_msg m;

	memset(&m, 0, sizeof(m));
	m.tags = tv;
	/* With no tags the command starts the block: irc_msg_clear() relies
	 * on it. */
	m.command = arena_put(&arena, cmd, cmd_len);
	for (char *c = m.command; *c != '\0'; c++)
		*c = ascii_upper(*c);

	if (tags != NULL) {
		const char *t = tags, *tend = tags + tags_len;
		while (t <= tend) {
			const char *semi = memchr(t, ';', (size_t)(tend - t));
			const char *e = semi != NULL ? semi : tend;
			const char *eq = memchr(t, '=', (size_t)(e - t));
			const char *kend = eq != NULL ? eq : e;
			/* Empty entries (";;", "=v") carry nothing. */
			if (kend > t) {
				struct irc_tag *tag = &tv[m.ntags++];
				tag->key = arena_put(&arena, t,
				    (size_t)(kend - t));
				tag->value = eq != NULL ?
				    arena_put_unescaped(&arena, eq + 1,
				    (size_t)(e - eq - 1)) : NULL;
			}
			t = e + 1;
		}
	}

	if (prefix != NULL) {
		const char *pend = prefix + prefix_len;
		const char *bang = memchr(prefix, '!', prefix_len);
		const char *at = memchr(bang != NULL ? bang : prefix, '@',
		    (size_t)(pend - (bang != NULL ? bang : prefix)));
		const char *nend = bang != NULL ? bang : at != NULL ? at : pend;
		if (nend == prefix) {
			free(block);
			return -1;
		}
		m.prefix = arena_put(&arena, prefix, prefix_len);
		m.nick = arena_put(&arena, prefix, (size_t)(nend - prefix));
		if (bang != NULL) {
			const char *uend = at != NULL ? at : pend;
			m.user = arena_put(&arena, bang + 1,
			    (size_t)(uend - bang - 1));
		}
		if (at != NULL)
			m.host = arena_put(&arena, at + 1,
			    (size_t)(pend - at - 1));
	}

	/* Parameters: spaces separate (several are tolerated), ':' starts
	 * the trailing one, and the fifteenth takes the rest of the line. */
	while (p < end) {
		while (p < end && *p == ' ')
			p++;
		if (p == end)
			break;
		if (*p == ':' || m.nparams == IRC_PARAMS_MAX - 1) {
			if (*p == ':')
				p++;
			m.params[m.nparams++] = arena_put(&arena, p,
			    (size_t)(end - p));
			break;
		}
		const char *s = p;
		while (p < end && *p != ' ')
			p++;
		m.params[m.nparams++] = arena_put(&arena, s, (size_t)(p - s));
	}

	*out = m;
	return 0;
}

void
irc_msg_clear(struct irc_msg *m)
{
	if (m == NULL)
		return;
	/* See irc_msg_parse(): the block starts with the tag array when
	 * there is one, else with the command. */
	free(m->tags != NULL ? (void *)m->tags : (void *)m->command);
	memset(m, 0, sizeof(*m));
}

const char *
irc_msg_tag(const struct irc_msg *m, const char *key)
{
	if (m == NULL || key == NULL)
		return NULL;
	/* A key sent twice: the last one wins, as IRCv3 says. */
	for (size_t i = m->ntags; i > 0; i--) {
		const struct irc_tag *t = &m->tags[i - 1];
		if (strcmp(t->key, key) == 0)
			return t->value != NULL ? t->value : "";
	}
	return NULL;
}

/* ---- building ---- */

/*
 * The line is assembled on the stack and appended in one call, so a
 * refused parameter leaves out untouched and nothing can be half sent.
 */
int
irc_build(struct evbuffer *out, const char *command,
    const char *const *params)
{
	char line[IRC_LINE_MAX];
	size_t n, np = 0;

	if (out == NULL || command == NULL)
		return -1;
	n = strlen(command);
	if (!command_valid(command, n) || n > IRC_LINE_MAX - 2)
		return -1;
	for (size_t i = 0; i < n; i++)
		line[i] = ascii_upper(command[i]);
	if (params != NULL)
		while (params[np] != NULL)
			np++;
	if (np > IRC_PARAMS_MAX)
		return -1;

	for (size_t i = 0; i < np; i++) {
		const char *s = params[i];
		size_t k = strcspn(s, "\r\n");
		int last = i + 1 == np, colon = 0;

		if (s[k] != '\0')
			return -1;
		if (!last) {
			if (k == 0 || s[0] == ':' || memchr(s, ' ', k) != NULL)
				return -1;
		} else {
			/* ':' only where the grammar needs it, so short
			 * commands look the way servers expect them. */
			colon = k == 0 || s[0] == ':' ||
			    memchr(s, ' ', k) != NULL;
		}
		if (k + 1 + (size_t)colon > IRC_LINE_MAX - 2 - n)
			return -1;
		line[n++] = ' ';
		if (colon)
			line[n++] = ':';
		memcpy(line + n, s, k);
		n += k;
	}
	line[n++] = '\r';
	line[n++] = '\n';
	return evbuffer_add(out, line, n) == 0 ? 0 : -1;
}

/* ---- splitting ---- */

/* The C0 controls that survive irc_split(): TAB and formatting codes. */
static int
control_kept(unsigned char c)
{
	switch (c) {
	case '\t':
	case 0x02: case 0x03: case 0x04: case 0x0f: case 0x11:
	case 0x16: case 0x1d: case 0x1e: case 0x1f:
		return 1;
	default:
		return 0;
	}
}

static void
pieces_add(char ***v, size_t *n, size_t *cap, const char *s, size_t len)
{
	if (len == 0)
		return;
	if (*n + 1 >= *cap) {
		*cap = *cap != 0 ? *cap * 2 : 4;
		*v = xreallocarray(*v, *cap, sizeof(char *));
	}
	(*v)[(*n)++] = xstrndup(s, len);
	(*v)[*n] = NULL;
}

size_t
irc_split(const char *text, size_t overhead, char ***pieces)
{
	char **v = NULL;
	size_t n = 0, cap = 0, budget, len, clen;
	char *clean;

	if (text == NULL || overhead > IRC_LINE_MAX - 2 - 4) {
		/* No room for even one character: nothing can be sent. */
		*pieces = xcalloc(1, sizeof(char *));
		return 0;
	}
	budget = IRC_LINE_MAX - 2 - overhead;

	/*
	 * One pass makes the text safe: CR and the controls IRC has no use
	 * for go, bytes that are not UTF-8 become U+FFFD (3 bytes for 1,
	 * hence the size), LF stays as the line separator.
	 */
	len = strlen(text);
	clean = xmalloc(3 * len + 1);
	{
		const unsigned char *p = (const unsigned char *)text;
		const unsigned char *e = p + len;
		char *d = clean;
		while (p < e) {
			if (*p < 0x20) {
				if (*p == '\n' || control_kept(*p))
					*d++ = (char)*p;
				p++;
				continue;
			}
			if (*p < 0x80) {
				*d++ = (char)*p++;
				continue;
			}
			size_t k = utf8_seq(p, (size_t)(e - p));
			if (k == 0) {
				memcpy(d, replacement, sizeof(replacement));
				d += sizeof(replacement);
				p++;
				continue;
			}
			memcpy(d, p, k);
			d += k;
			p += k;
		}
		clen = (size_t)(d - clean);
	}

	const char *s = clean, *end = clean + clen;
	while (s < end) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		const char *le = nl != NULL ? nl : end;

		while ((size_t)(le - s) > budget) {
			/* The last space at or before the limit: a space at
			 * index budget still leaves a piece that fits. */
			size_t k = budget;
			while (k > 0 && s[k] != ' ')
				k--;
			if (k > 0) {
				pieces_add(&v, &n, &cap, s, k);
				s += k + 1;
				continue;
			}
			/* One word longer than the limit: cut it at a
			 * character boundary (the text is valid UTF-8 and the
			 * budget holds a 4-byte character, so k > 0). */
			k = budget;
			while (k > 0 && ((unsigned char)s[k] & 0xc0) == 0x80)
				k--;
			pieces_add(&v, &n, &cap, s, k);
			s += k;
		}
		pieces_add(&v, &n, &cap, s, (size_t)(le - s));
		s = le + 1;
	}
	free(clean);
	if (v == NULL)
		v = xcalloc(1, sizeof(char *));
	*pieces = v;
	return n;
}

void
irc_split_free(char **pieces)
{
	if (pieces == NULL)
		return;
	for (size_t i = 0; pieces[i] != NULL; i++)
		free(pieces[i]);
	free(pieces);
}

/* ---- case mapping and ISUPPORT ---- */

int
irc_casemapping_parse(const char *name, enum irc_casemapping *out)
{
	if (name == NULL)
		return -1;
	if (strcmp(name, "rfc1459") == 0)
		*out = IRC_CASEMAP_RFC1459;
	else if (strcmp(name, "strict-rfc1459") == 0)
		*out = IRC_CASEMAP_STRICT_RFC1459;
	else if (strcmp(name, "ascii") == 0)
		*out = IRC_CASEMAP_ASCII;
	else
		return -1;
	return 0;
}

static unsigned char
casefold_char(enum irc_casemapping cm, unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return (unsigned char)(c - 'A' + 'a');
	if (cm == IRC_CASEMAP_ASCII)
		return c;
	/* RFC 1459 counts {}| as the lower case of []\ (Scandinavian
	 * letters in ISO 646); rfc1459 also pairs ~ with ^. */
	switch (c) {
	case '[':
		return '{';
	case ']':
		return '}';
	case '\\':
		return '|';
	case '~':
		return cm == IRC_CASEMAP_RFC1459 ? '^' : c;
	default:
		return c;
	}
}

void
irc_casefold(enum irc_casemapping cm, char *s)
{
	if (s == NULL)
		return;
	for (; *s != '\0'; s++)
		*s = (char)casefold_char(cm, (unsigned char)*s);
}

int
irc_casecmp(enum irc_casemapping cm, const char *a, const char *b)
{
	const unsigned char *x = (const unsigned char *)a;
	const unsigned char *y = (const unsigned char *)b;

	for (;; x++, y++) {
		unsigned char cx = casefold_char(cm, *x);
		unsigned char cy = casefold_char(cm, *y);
		if (cx != cy)
			return cx < cy ? -1 : 1;
		if (cx == '\0')
			return 0;
	}
}

void
irc_isupport_init(struct irc_isupport *is)
{
	memset(is, 0, sizeof(*is));
	is->casemapping = IRC_CASEMAP_RFC1459;
	memcpy(is->chantypes, IRC_DEFAULT_CHANTYPES,
	    sizeof(IRC_DEFAULT_CHANTYPES));
	memcpy(is->prefix_modes, IRC_DEFAULT_PREFIX_MODES,
	    sizeof(IRC_DEFAULT_PREFIX_MODES));
	memcpy(is->prefix_chars, IRC_DEFAULT_PREFIX_CHARS,
	    sizeof(IRC_DEFAULT_PREFIX_CHARS));
}

static int
hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * ISUPPORT values escape bytes as \xHH (NETWORK=Example\x20Net).
 * Unescapes into dst (size bytes); -1 when it does not fit or the
 * result holds a control character.
 */
static int
isupport_unescape(char *dst, size_t size, const char *v)
{
	size_t n = 0;

	while (*v != '\0') {
		unsigned char c = (unsigned char)*v++;
		int hi, lo;
		if (c == '\\' && v[0] == 'x' &&
		    (hi = hex_value((unsigned char)v[1])) >= 0 &&
		    (lo = hex_value((unsigned char)v[2])) >= 0) {
			c = (unsigned char)(hi * 16 + lo);
			v += 3;
		}
		if (c < 0x20 || c == 0x7f || n + 1 >= size)
			return -1;
		dst[n++] = (char)c;
	}
	dst[n] = '\0';
	return 0;
}

/* A length: decimal, no sign, bounded; "" means no limit (0). */
static int
isupport_uint(const char *v, unsigned *out)
{
	unsigned long n = 0;

	if (*v == '\0') {
		*out = 0;
		return 0;
	}
	for (; *v != '\0'; v++) {
		if (!is_digit((unsigned char)*v))
			return -1;
		n = n * 10 + (unsigned long)(*v - '0');
		if (n > 1000000)
			return -1;
	}
	*out = (unsigned)n;
	return 0;
}

/* CHANTYPES: printable characters that cannot end up as a separator. */
static int
isupport_chantypes(struct irc_isupport *is, const char *v)
{
	size_t n = strlen(v);

	if (n >= sizeof(is->chantypes))
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c <= 0x20 || c >= 0x7f || c == ',' || c == ':' ||
		    c == '%' || memchr(v, c, i) != NULL)
			return -1;
	}
	memcpy(is->chantypes, v, n + 1);
	return 0;
}

/* PREFIX=(modes)chars, as many modes as chars; "" means none. */
static int
isupport_prefix(struct irc_isupport *is, const char *v)
{
	const char *close;
	size_t nm, nc;

	if (*v == '\0') {
		is->prefix_modes[0] = is->prefix_chars[0] = '\0';
		return 0;
	}
	if (*v != '(' || (close = strchr(v, ')')) == NULL)
		return -1;
	nm = (size_t)(close - v - 1);
	nc = strlen(close + 1);
	if (nm != nc || nm >= sizeof(is->prefix_modes))
		return -1;
	for (size_t i = 0; i < nm; i++) {
		unsigned char mc = (unsigned char)v[1 + i];
		unsigned char pc = (unsigned char)close[1 + i];
		if (!is_alpha(mc) || pc <= 0x20 || pc >= 0x7f ||
		    is_alpha(pc) || is_digit(pc) || pc == ',' || pc == ':')
			return -1;
	}
	memcpy(is->prefix_modes, v + 1, nm);
	is->prefix_modes[nm] = '\0';
	memcpy(is->prefix_chars, close + 1, nc + 1);
	return 0;
}

static int
isupport_network(struct irc_isupport *is, const char *v)
{
	char buf[sizeof(is->network)];

	/* It may be shown to users: it must be text. */
	if (isupport_unescape(buf, sizeof(buf), v) != 0 ||
	    !utf8_valid(buf, strlen(buf)))
		return -1;
	memcpy(is->network, buf, sizeof(buf));
	return 0;
}

static void
isupport_reset(struct irc_isupport *is, const char *key)
{
	struct irc_isupport def;

	irc_isupport_init(&def);
	if (strcmp(key, "CASEMAPPING") == 0)
		is->casemapping = def.casemapping;
	else if (strcmp(key, "CHANTYPES") == 0)
		memcpy(is->chantypes, def.chantypes, sizeof(def.chantypes));
	else if (strcmp(key, "PREFIX") == 0) {
		memcpy(is->prefix_modes, def.prefix_modes,
		    sizeof(def.prefix_modes));
		memcpy(is->prefix_chars, def.prefix_chars,
		    sizeof(def.prefix_chars));
	} else if (strcmp(key, "NICKLEN") == 0)
		is->nicklen = 0;
	else if (strcmp(key, "CHANNELLEN") == 0)
		is->channellen = 0;
	else if (strcmp(key, "TOPICLEN") == 0)
		is->topiclen = 0;
	else if (strcmp(key, "NETWORK") == 0)
		is->network[0] = '\0';
}

static void
isupport_token(struct irc_isupport *is, const char *tok)
{
	char key[32];
	const char *eq = strchr(tok, '='), *v;
	size_t klen = eq != NULL ? (size_t)(eq - tok) : strlen(tok);
	int r = 0;

	if (tok[0] == '-') {
		if (eq == NULL && klen - 1 < sizeof(key)) {
			memcpy(key, tok + 1, klen);
			isupport_reset(is, key);
		}
		return;
	}
	/* Every token we use has a value; a bare one says nothing here. */
	if (eq == NULL || klen == 0 || klen >= sizeof(key))
		return;
	memcpy(key, tok, klen);
	key[klen] = '\0';
	v = eq + 1;
	if (strcmp(key, "CASEMAPPING") == 0)
		r = irc_casemapping_parse(v, &is->casemapping);
	else if (strcmp(key, "CHANTYPES") == 0)
		r = isupport_chantypes(is, v);
	else if (strcmp(key, "PREFIX") == 0)
		r = isupport_prefix(is, v);
	else if (strcmp(key, "NICKLEN") == 0)
		r = isupport_uint(v, &is->nicklen);
	else if (strcmp(key, "CHANNELLEN") == 0)
		r = isupport_uint(v, &is->channellen);
	else if (strcmp(key, "TOPICLEN") == 0)
		r = isupport_uint(v, &is->topiclen);
	else if (strcmp(key, "NETWORK") == 0)
		r = isupport_network(is, v);
	if (r != 0)
		log_debug("irc: ignoring ISUPPORT %s with a bad value", key);
}

void
irc_isupport_apply(struct irc_isupport *is, const struct irc_msg *m)
{
	if (is == NULL || m == NULL)
		return;
	/*
	 * "005 nick TOKEN... :are supported by this server": the first
	 * parameter is our nick, the human text is the last one and has
	 * spaces, which no token has.
	 */
	for (size_t i = 1; i < m->nparams; i++)
		if (m->params[i][0] != '\0' &&
		    strchr(m->params[i], ' ') == NULL)
			isupport_token(is, m->params[i]);
}

char
irc_isupport_prefix_mode(const struct irc_isupport *is, char prefix)
{
	const char *p;

	if (is == NULL || prefix == '\0' ||
	    (p = strchr(is->prefix_chars, prefix)) == NULL)
		return 0;
	return is->prefix_modes[p - is->prefix_chars];
}

/* ---- text ---- */

/* Charset names as iconv knows them; anything else (a "//IGNORE" or
 * "//TRANSLIT" suffix included, which would change what we promise) is
 * replaced by the default. */
static int
charset_name_ok(const char *name)
{
	size_t n = 0;

	for (; name[n] != '\0'; n++) {
		unsigned char c = (unsigned char)name[n];
		if (!is_alpha(c) && !is_digit(c) && c != '-' && c != '_' &&
		    c != '.' && c != ':' && c != '+' && c != '(' && c != ')')
			return 0;
	}
	return n > 0 && n < 64;
}

/*
 * Without gconv modules (a static build, a stripped container) even
 * CP1252 cannot be opened: decode as ISO-8859-1, which agrees with
 * CP1252 outside 0x80..0x9F, and mark those bytes unknown.
 */
static char *
latin1_to_utf8(const char *bytes, size_t len, size_t *outlen)
{
	char *out = xmalloc(2 * len + 1), *d = out;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)bytes[i];
		if (c < 0x80) {
			*d++ = (char)c;
		} else if (c < 0xa0) {
			memcpy(d, replacement, sizeof(replacement));
			d += sizeof(replacement);
		} else {
			*d++ = (char)(0xc0 | (c >> 6));
			*d++ = (char)(0x80 | (c & 0x3f));
		}
	}
	*outlen = (size_t)(d - out);
	return out;
}

/* Makes room for at least need more bytes after *o in *buf. */
static void
iconv_grow(char **buf, size_t *cap, char **o, size_t *oleft, size_t need)
{
	size_t used = (size_t)(*o - *buf);

	while (*oleft < need) {
		*cap *= 2;
		*oleft = *cap - used;
	}
	*buf = xreallocarray(*buf, *cap, 1);
	*o = *buf + used;
}

static char *
fallback_decode(const char *bytes, size_t len, const char *fallback,
    size_t *outlen)
{
	static int warned;
	iconv_t cd = (iconv_t)-1;

	if (fallback != NULL && charset_name_ok(fallback))
		cd = iconv_open("UTF-8", fallback);
	if (cd == (iconv_t)-1)
		cd = iconv_open("UTF-8", IRC_DEFAULT_CHARSET);
	if (cd == (iconv_t)-1) {
		if (!warned++)
			log_warn("irc: iconv cannot open %s, decoding "
			    "ISO-8859-1", IRC_DEFAULT_CHARSET);
		return latin1_to_utf8(bytes, len, outlen);
	}

	size_t cap = 4 * len + 16, inleft = len, oleft = cap;
	char *buf = xmalloc(cap), *o = buf;
	char *in = (char *)(uintptr_t)bytes;

	while (inleft > 0) {
		if (iconv(cd, &in, &inleft, &o, &oleft) != (size_t)-1)
			continue;
		if (errno == E2BIG) {
			iconv_grow(&buf, &cap, &o, &oleft, oleft + 16);
			continue;
		}
		/* EILSEQ, or EINVAL for a sequence cut short at the end: one
		 * byte becomes U+FFFD and decoding resumes after it. */
		if (oleft < sizeof(replacement))
			iconv_grow(&buf, &cap, &o, &oleft, sizeof(replacement));
		memcpy(o, replacement, sizeof(replacement));
		o += sizeof(replacement);
		oleft -= sizeof(replacement);
		in++;
		inleft--;
	}
	/* Stateful charsets (ISO-2022-*) may owe a final sequence. */
	while (iconv(cd, NULL, NULL, &o, &oleft) == (size_t)-1 &&
	    errno == E2BIG)
		iconv_grow(&buf, &cap, &o, &oleft, oleft + 16);
	iconv_close(cd);
	*outlen = (size_t)(o - buf);
	return buf;
}

char *
irc_to_utf8(const char *bytes, size_t len, const char *fallback)
{
	char *out, *dec;
	size_t n;

	if (bytes == NULL)
		len = 0;
	if (utf8_valid(bytes, len)) {
		/* The common case today: copy, leaving out NUL. */
		out = xmalloc(len + 1);
		n = 0;
		for (size_t i = 0; i < len; i++)
			if (bytes[i] != '\0')
				out[n++] = bytes[i];
		out[n] = '\0';
		return out;
	}
	dec = fallback_decode(bytes, len, fallback, &n);
	/* iconv's UTF-8 is well-formed, but a charset like UTF-16 can
	 * decode to NUL; the same strict pass as everywhere settles it. */
	out = xmalloc(3 * n + 1);
	out[utf8_sanitize(out, dec, n)] = '\0';
	free(dec);
	return out;
}

/* Digits after \x03: at most two. */
static const char *
skip_colour_digits(const char *p)
{
	if (is_digit((unsigned char)*p)) {
		p++;
		if (is_digit((unsigned char)*p))
			p++;
	}
	return p;
}

static int
is_hex6(const char *p)
{
	for (int i = 0; i < 6; i++)
		if (hex_value((unsigned char)p[i]) < 0)
			return 0;
	return 1;
}

/*
 * Past a colour code: \x03[fg[,bg]] with one or two digits each, or
 * \x04[rrggbb[,rrggbb]].  A comma not followed by a colour is text.
 */
static const char *
skip_colour(const char *p)
{
	if (*p == '\x03') {
		const char *q = skip_colour_digits(++p);
		if (q != p && q[0] == ',' && is_digit((unsigned char)q[1]))
			q = skip_colour_digits(q + 1);
		return q;
	}
	p++;
	if (!is_hex6(p))
		return p;
	p += 6;
	if (p[0] == ',' && is_hex6(p + 1))
		p += 7;
	return p;
}

static int
is_format_toggle(char c)
{
	switch (c) {
	case '\x02': case '\x0f': case '\x11': case '\x16':
	case '\x1d': case '\x1e': case '\x1f':
		return 1;
	default:
		return 0;
	}
}

char *
irc_strip_formatting(const char *text)
{
	char *out, *d;

	if (text == NULL)
		return xstrdup("");
	out = d = xmalloc(strlen(text) + 1);
	for (const char *p = text; *p != '\0';) {
		if (*p == '\x03' || *p == '\x04')
			p = skip_colour(p);
		else if (is_format_toggle(*p))
			p++;
		else
			*d++ = *p++;
	}
	*d = '\0';
	return out;
}

/*
 * IRC formatting toggles; XEP-0393 spans must nest and must not begin or
 * end with whitespace.  So styles are opened lazily, just before the
 * next character that is not a space, and spaces are held back while a
 * style might close after them.  A style that closes beneath another
 * one closes those above it too and reopens them.
 */
enum { STYLE_BOLD, STYLE_ITALIC, STYLE_STRIKE, STYLE_MONO, STYLE_COUNT };
static const char style_marks[STYLE_COUNT] = { '*', '_', '~', '`' };

struct styler {
	char *d;
	unsigned want;                  /* bit per style */
	unsigned openmask;              /* the same bits for open[] */
	int open[STYLE_COUNT];          /* styles emitted, in order */
	int nopen;
	size_t spaces;                  /* held back */
};

static void
styler_close_unwanted(struct styler *st)
{
	int keep = st->nopen;

	/* The lowest open style that is no longer wanted decides how far
	 * the stack unwinds. */
	for (int i = 0; i < st->nopen; i++)
		if (!(st->want & (1u << st->open[i]))) {
			keep = i;
			break;
		}
	while (st->nopen > keep) {
		int s = st->open[--st->nopen];
		st->openmask &= ~(1u << s);
		*st->d++ = style_marks[s];
	}
}

static void
styler_flush_spaces(struct styler *st)
{
	memset(st->d, ' ', st->spaces);
	st->d += st->spaces;
	st->spaces = 0;
}

static void
styler_text(struct styler *st, char c)
{
	if (c == ' ') {
		if (st->nopen == 0)
			*st->d++ = c;
		else
			st->spaces++;
		return;
	}
	/* Most characters find the spans as they want them. */
	if (st->want != st->openmask || st->spaces > 0) {
		styler_close_unwanted(st);
		styler_flush_spaces(st);
		for (int s = 0; s < STYLE_COUNT; s++) {
			unsigned bit = 1u << s;
			if ((st->want & bit) && !(st->openmask & bit)) {
				st->open[st->nopen++] = s;
				st->openmask |= bit;
				*st->d++ = style_marks[s];
			}
		}
	}
	*st->d++ = c;
}

char *
irc_format_to_styling(const char *text)
{
	struct styler st;
	char *out;

	if (text == NULL)
		return xstrdup("");
	/* Most lines carry no formatting at all. */
	if (text[strcspn(text, "\x02\x03\x04\x0f\x11\x16\x1d\x1e\x1f")] == '\0')
		return xstrdup(text);
	/* Each input byte yields at most itself plus the closing and
	 * reopening of every style. */
	out = xmalloc(strlen(text) * (2 * STYLE_COUNT + 1) + STYLE_COUNT + 1);
	memset(&st, 0, sizeof(st));
	st.d = out;
	for (const char *p = text; *p != '\0';) {
		switch (*p) {
		case '\x03':
		case '\x04':
			p = skip_colour(p);
			continue;
		case '\x02':
			st.want ^= 1u << STYLE_BOLD;
			break;
		case '\x1d':
			st.want ^= 1u << STYLE_ITALIC;
			break;
		case '\x1e':
			st.want ^= 1u << STYLE_STRIKE;
			break;
		case '\x11':
			st.want ^= 1u << STYLE_MONO;
			break;
		case '\x0f':
			st.want = 0;
			break;
		case '\x16':
		case '\x1f':
			break;      /* reverse, underline: no XEP-0393 form */
		default:
			styler_text(&st, *p);
			break;
		}
		p++;
	}
	st.want = 0;
	styler_close_unwanted(&st);
	styler_flush_spaces(&st);
	*st.d = '\0';
	return out;
}

int
irc_ctcp_parse(const char *text, char **command, char **args)
{
	const char *body, *end, *sp;

	if (text == NULL || text[0] != '\x01')
		return 0;
	body = text + 1;
	/* Some clients leave out the closing \x01: accept that. */
	end = strchr(body, '\x01');
	if (end == NULL)
		end = body + strlen(body);
	sp = memchr(body, ' ', (size_t)(end - body));
	if ((sp != NULL ? sp : end) == body)
		return 0;
	*command = xstrndup(body, (size_t)((sp != NULL ? sp : end) - body));
	for (char *c = *command; *c != '\0'; c++)
		*c = ascii_upper(*c);
	*args = sp != NULL ? xstrndup(sp + 1, (size_t)(end - sp - 1)) :
	    xstrdup("");
	return 1;
}

char *
irc_ctcp_build(const char *command, const char *args)
{
	if (command == NULL || command[0] == '\0' ||
	    command[strcspn(command, "\x01\r\n ")] != '\0')
		return NULL;
	if (args == NULL || args[0] == '\0')
		return xasprintf("\x01%s\x01", command);
	if (args[strcspn(args, "\x01\r\n")] != '\0')
		return NULL;
	return xasprintf("\x01%s %s\x01", command, args);
}

/* ---- addresses ---- */

/*
 * A host name: LDH labels (letters, digits, hyphens; 1..63 bytes, no
 * hyphen at either end) joined by dots, or an IPv6 address.  Dotted
 * IPv4 is LDH already.  Returns a lower-cased copy, or NULL.
 */
static char *
host_parse(const char *s, size_t n)
{
	char *h;

	if (n == 0 || n > IRC_HOST_MAX)
		return NULL;
	h = xstrndup(s, n);
	for (size_t i = 0; i < n; i++)
		h[i] = ascii_lower(h[i]);
	if (memchr(h, ':', n) != NULL) {
		unsigned char addr[16];
		if (inet_pton(AF_INET6, h, addr) == 1)
			return h;
		free(h);
		return NULL;
	}
	for (size_t i = 0, label = 0; i <= n; i++) {
		unsigned char c = (unsigned char)h[i];
		if (i == n || c == '.') {
			if (label == 0 || label > 63 || h[i - 1] == '-')
				goto bad;
			label = 0;
			continue;
		}
		if (c == '-' && label == 0)
			goto bad;
		if (!is_alpha(c) && !is_digit(c) && c != '-')
			goto bad;
		label++;
	}
	return h;
bad:
	free(h);
	return NULL;
}

/* Bytes no IRC name may hold: the separators of the protocol, and
 * controls (BEL among them, which some servers treat as one too). */
static int
name_bytes_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f || c == ' ' || c == ',')
			return 0;
	}
	return utf8_valid(s, n);
}

static int
channel_ok(const char *s, size_t n, const char *chantypes)
{
	if (n == 0 || n > IRC_CHANNEL_MAX || strchr(chantypes, s[0]) == NULL)
		return 0;
	return name_bytes_ok(s, n);
}

static int
nick_ok(const char *s, size_t n)
{
	if (n == 0 || n > IRC_NICK_MAX || s[0] == ':')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (strchr("!@*?%", s[i]) != NULL)
			return 0;
	return name_bytes_ok(s, n);
}

int
irc_addr_parse(const char *local, const char *fixed_server,
    const char *chantypes, struct irc_addr *out)
{
	const char *pct, *name;
	size_t len, nlen;
	char *server;
	enum irc_addr_kind kind;

	if (local == NULL || out == NULL)
		return -1;
	if (chantypes == NULL)
		chantypes = IRC_DEFAULT_CHANTYPES;
	if (fixed_server != NULL && fixed_server[0] == '\0')
		fixed_server = NULL;
	len = strlen(local);
	pct = memchr(local, '%', len);
	/* '%' separates name and server, so it cannot be part of a name:
	 * a channel with '%' in it is out of reach (as in biboumi). */
	if (pct != NULL && strchr(pct + 1, '%') != NULL)
		return -1;

	if (fixed_server != NULL) {
		if (pct != NULL || len == 0)
			return -1;
		name = local;
		nlen = len;
		server = host_parse(fixed_server, strlen(fixed_server));
	} else if (pct != NULL) {
		name = local;
		nlen = (size_t)(pct - local);
		server = host_parse(pct + 1, len - nlen - 1);
	} else {
		server = host_parse(local, len);
		if (server == NULL)
			return -1;
		out->kind = IRC_ADDR_SERVER;
		out->name = NULL;
		out->server = server;
		return 0;
	}
	if (server == NULL)
		return -1;
	if (nlen > 0 && strchr(chantypes, name[0]) != NULL) {
		kind = IRC_ADDR_CHANNEL;
		if (!channel_ok(name, nlen, chantypes))
			goto bad;
	} else {
		kind = IRC_ADDR_NICK;
		if (!nick_ok(name, nlen))
			goto bad;
	}
	out->kind = kind;
	out->name = xstrndup(name, nlen);
	out->server = server;
	return 0;
bad:
	free(server);
	return -1;
}

char *
irc_addr_local(const struct irc_addr *a, const char *fixed_server)
{
	if (fixed_server != NULL && fixed_server[0] == '\0')
		fixed_server = NULL;
	if (a->kind == IRC_ADDR_SERVER)
		return xstrdup(fixed_server != NULL ? "" : a->server);
	if (fixed_server != NULL)
		return xstrdup(a->name);
	return xasprintf("%s%%%s", a->name, a->server);
}

void
irc_addr_clear(struct irc_addr *a)
{
	if (a == NULL)
		return;
	free(a->name);
	free(a->server);
	memset(a, 0, sizeof(*a));
}
