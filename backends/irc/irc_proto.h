/*
 * The IRC protocol as text: parsing lines, building lines that cannot
 * inject commands, case mapping, ISUPPORT, text conversion (encodings,
 * formatting codes, CTCP), splitting long messages, and the addresses
 * users type as JIDs.  Pure functions, no I/O: everything here is unit
 * tested and fuzzed.
 *
 * Limits (RFC 1459/2812 and IRCv3 message-tags): a line is at most
 * IRC_LINE_MAX bytes including CR LF, plus at most IRC_TAGS_MAX bytes of
 * tags; at most IRC_PARAMS_MAX parameters.
 */
#ifndef CAUSEWAY_IRC_PROTO_H
#define CAUSEWAY_IRC_PROTO_H

#include <stddef.h>

struct evbuffer;

#define IRC_LINE_MAX 512
#define IRC_TAGS_MAX 8191
#define IRC_PARAMS_MAX 15
/* The longest line (tags, space, message, CR LF) a reader accepts. */
#define IRC_INPUT_MAX (IRC_TAGS_MAX + 1 + IRC_LINE_MAX)

/* ---- parsing ---- */

struct irc_tag {
	char *key;
	char *value;      /* unescaped (\: \s \\ \r \n); NULL when absent */
};

struct irc_msg {
	struct irc_tag *tags;
	size_t ntags;
	char *prefix;     /* raw prefix without ':', NULL when absent */
	char *nick;       /* prefix split: nick!user@host; a server prefix */
	char *user;       /*   gives nick = the server name, user = host = */
	char *host;       /*   NULL */
	char *command;    /* upper-cased; numerics stay three digits */
	char *params[IRC_PARAMS_MAX];
	size_t nparams;
};

/*
 * Parse one line (without its CR LF; len bytes, need not be
 * NUL-terminated).  0 and *out filled (the caller clears it), or -1 for
 * a line that is empty, has no command, holds a NUL byte, or exceeds the
 * limits above; *out is then untouched.  The parameters are raw bytes:
 * the text is not yet decoded (see irc_to_utf8).
 *
 * Trailing CR/LF bytes are ignored (a reader that frames on LF alone may
 * leave the CR); a CR or LF inside the line is refused like NUL.  All the
 * strings of a message (tags, prefix parts, command, params) live in ONE
 * allocation that irc_msg_clear() frees: never free() a field or keep a
 * pointer past irc_msg_clear(); xstrdup() what must outlive the message.
 * Fields may be modified in place (e.g. irc_casefold on a param).
 * irc_msg_clear() zeroes the struct, so clearing twice is harmless.
 */
int irc_msg_parse(const char *line, size_t len, struct irc_msg *out);
void irc_msg_clear(struct irc_msg *m);
/* A tag's value ("" for a tag without value), or NULL when absent. */
const char *irc_msg_tag(const struct irc_msg *m, const char *key);

/* ---- building ---- */

/*
 * Appends "COMMAND p1 p2 ... :last\r\n" to out.  params is
 * NULL-terminated.  Every parameter is checked: none may contain CR,
 * LF or NUL; all but the last must be non-empty, without spaces, and not
 * start with ':'.  The whole line must fit IRC_LINE_MAX.  Returns 0, or
 * -1 with nothing appended: a parameter that would inject a command (or
 * a line too long) is never sent.  The command must be letters (it is
 * upper-cased) or three digits; at most IRC_PARAMS_MAX parameters.  The
 * last parameter gets its ':' only when it needs one (empty, holding a
 * space, or starting with ':'), so "JOIN #chan" stays as servers expect.
 */
int irc_build(struct evbuffer *out, const char *command,
    const char *const *params);

/*
 * Splits text for PRIVMSG/NOTICE so that each piece, sent after a
 * prefix of overhead bytes (":nick!user@host PRIVMSG #target :" as the
 * server will relay it), fits IRC_LINE_MAX: pieces break at LF (CR is
 * dropped), then at the last space before the limit, else at a UTF-8
 * character boundary; NUL and other C0 controls except the IRC
 * formatting codes and TAB are dropped; empty pieces are skipped.
 * Returns the number of pieces in *pieces (a NULL-terminated array;
 * free with irc_split_free).
 *
 * Each piece is at most IRC_LINE_MAX - 2 - overhead bytes.  \x01 is
 * dropped like the other controls, so user text can never start a CTCP:
 * for /me, add the 9 bytes of "\x01ACTION " and "\x01" to overhead and
 * wrap each piece with irc_ctcp_build().  Bytes that are not UTF-8
 * become U+FFFD.  An overhead that leaves less than 4 bytes (room for one
 * character) gives 0 pieces.  *pieces is never NULL.
 */
size_t irc_split(const char *text, size_t overhead, char ***pieces);
void irc_split_free(char **pieces);

/* ---- case mapping and ISUPPORT ---- */

enum irc_casemapping {
	IRC_CASEMAP_RFC1459,         /* A-Z [ ] \ ~ -> a-z { } | ^ (default) */
	IRC_CASEMAP_STRICT_RFC1459,  /* without ~ -> ^ */
	IRC_CASEMAP_ASCII,
};

/* "rfc1459", "strict-rfc1459", "ascii"; -1 for anything else. */
int irc_casemapping_parse(const char *name, enum irc_casemapping *out);
/* Folds s in place. */
void irc_casefold(enum irc_casemapping cm, char *s);
int irc_casecmp(enum irc_casemapping cm, const char *a, const char *b);

struct irc_isupport {
	enum irc_casemapping casemapping;
	char chantypes[16];        /* default "#&" */
	char prefix_modes[16];     /* default "ov" */
	char prefix_chars[16];     /* default "@+" */
	unsigned nicklen;          /* 0: unknown */
	unsigned channellen;
	unsigned topiclen;
	char network[64];          /* "" when unknown */
};

void irc_isupport_init(struct irc_isupport *is);
/* Applies the tokens of one RPL_ISUPPORT (005) message; bad or
 * oversized values are ignored and the defaults kept. */
void irc_isupport_apply(struct irc_isupport *is, const struct irc_msg *m);
/* The mode letter for a prefix char ('@' -> 'o'), 0 when none. */
char irc_isupport_prefix_mode(const struct irc_isupport *is, char prefix);

/* ---- text ---- */

/*
 * Bytes from IRC as UTF-8: valid UTF-8 is kept; anything else is decoded
 * from fallback (an iconv charset name; NULL or unknown: CP1252), and
 * bytes that still do not decode become U+FFFD.  Surrogates and
 * overlong forms count as invalid.  NUL never appears in the result.
 * Caller frees.  The whole text is either kept as UTF-8 or decoded from
 * fallback (never a mix).  A fallback name with characters outside
 * [A-Za-z0-9._:()+-] (such as a "//TRANSLIT" or "//IGNORE" suffix) counts
 * as unknown.  bytes may be NULL when len is 0.
 */
char *irc_to_utf8(const char *bytes, size_t len, const char *fallback);
/* Removes IRC formatting: \x02 \x1d \x1f \x1e \x11 \x16 \x0f, colour
 * \x03[fg[,bg]] and hex colour \x04[rrggbb[,rrggbb]].  Caller frees. */
char *irc_strip_formatting(const char *text);
/* Maps bold, italic, strike-through and monospace to XEP-0393 styling
 * (*b*, _i_, ~s~, `m`), drops colours and the rest.  Caller frees. */
char *irc_format_to_styling(const char *text);

/* CTCP: "\x01COMMAND args\x01".  1 and *command (upper-cased) and *args
 * (may be "") allocated, or 0 when text is not CTCP. */
int irc_ctcp_parse(const char *text, char **command, char **args);
/* Caller frees; NULL when command or args hold \x01, CR, LF or NUL. */
char *irc_ctcp_build(const char *command, const char *args);

/* ---- addresses (the unescaped local part of a JID at the gateway) ---- */

enum irc_addr_kind {
	IRC_ADDR_CHANNEL,   /* #chan%server, or #chan with a fixed server */
	IRC_ADDR_NICK,      /* nick%server, or nick with a fixed server */
	IRC_ADDR_SERVER,    /* server (no fixed server) */
};

struct irc_addr {
	enum irc_addr_kind kind;
	char *name;         /* channel or nick; NULL for a server */
	char *server;       /* lower-cased host name */
};

/*
 * Parses local ("#chan%irc.example.org", "nick%irc.example.org",
 * "irc.example.org"; with fixed_server: "#chan", "nick").  chantypes are
 * the characters that start a channel ("#&" until the server says).
 * -1 for anything that is not a valid channel, nick or host name:
 * empty parts, more than one '%', spaces, commas, control characters,
 * a channel over 200 bytes or a nick over 64, a host name that is not
 * one.  0 and *out filled (clear it).
 *
 * fixed_server NULL or "" means none.  With a fixed server, a '%'
 * anywhere is refused.  Without one, a local part without '%' is a
 * server (so "nick" alone is the host "nick").  Host names are LDH labels
 * joined by dots (dotted IPv4 included) or an IPv6 address, at most 253
 * bytes.  Names must be valid UTF-8 without controls, space or comma; a
 * channel starts with a chantypes character (NULL: "#&") and may hold
 * ':'; a nick may not hold ! @ * ? nor start with ':'.  A channel name
 * holding '%' cannot be addressed (documented limitation, as in
 * biboumi).  name is kept as typed: case-fold it with the server's
 * CASEMAPPING before comparing.
 */
int irc_addr_parse(const char *local, const char *fixed_server,
    const char *chantypes, struct irc_addr *out);
/* The local part for an address (caller frees; escaping is the core's).
 * With a fixed server the server address itself is the gateway: "". */
char *irc_addr_local(const struct irc_addr *a, const char *fixed_server);
void irc_addr_clear(struct irc_addr *a);

#endif
