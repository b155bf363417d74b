/*
 * Unit tests for the IRC protocol text layer: the parser against good
 * and hostile lines, the builder against every injection we can think
 * of, case mapping, ISUPPORT, text decoding and formatting, CTCP,
 * splitting and the JID local-part addresses.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "irc_proto.h"
#include "tap.h"

/* ---- helpers ---- */

static int
parse(const char *line, struct irc_msg *m)
{
	memset(m, 0, sizeof(*m));
	return irc_msg_parse(line, strlen(line), m);
}

#include "../utf8_check.h"

/* Builds into a fresh buffer; returns the line (caller frees) or NULL
 * when irc_build refused, checking that a refusal appended nothing. */
static char *
build(const char *command, const char *const *params)
{
	struct evbuffer *b = evbuffer_new();
	char *r = NULL;

	evbuffer_add(b, "x", 1);
	if (irc_build(b, command, params) == 0) {
		size_t n = evbuffer_get_length(b);
		r = calloc(1, n);
		evbuffer_remove(b, r, 1);
		evbuffer_remove(b, r, n - 1);
	} else {
		CHECK(evbuffer_get_length(b) == 1);
	}
	evbuffer_free(b);
	return r;
}

/* ---- parsing ---- */

static void
test_parse_basic(void)
{
	struct irc_msg m;

	CHECK(parse(":nick!user@host.example PRIVMSG #chan :hello world",
	    &m) == 0);
	CHECK_STR(m.prefix, "nick!user@host.example");
	CHECK_STR(m.nick, "nick");
	CHECK_STR(m.user, "user");
	CHECK_STR(m.host, "host.example");
	CHECK_STR(m.command, "PRIVMSG");
	CHECK(m.nparams == 2);
	CHECK_STR(m.params[0], "#chan");
	CHECK_STR(m.params[1], "hello world");
	CHECK(m.ntags == 0);
	irc_msg_clear(&m);
	CHECK(m.command == NULL && m.nparams == 0);
	irc_msg_clear(&m);      /* twice is harmless */

	CHECK(parse("PING :irc.example.org", &m) == 0);
	CHECK(m.prefix == NULL && m.nick == NULL);
	CHECK_STR(m.command, "PING");
	CHECK(m.nparams == 1);
	CHECK_STR(m.params[0], "irc.example.org");
	irc_msg_clear(&m);

	/* lower-case commands are upper-cased */
	CHECK(parse("privmsg #a b", &m) == 0);
	CHECK_STR(m.command, "PRIVMSG");
	CHECK(m.nparams == 2);
	CHECK_STR(m.params[1], "b");
	irc_msg_clear(&m);

	/* a CR left by LF-only framing is forgiven */
	CHECK(parse("PING x\r", &m) == 0);
	CHECK_STR(m.params[0], "x");
	irc_msg_clear(&m);
}

static void
test_parse_prefix_forms(void)
{
	struct irc_msg m;

	CHECK(parse(":irc.example.org 001 me :Welcome", &m) == 0);
	CHECK_STR(m.nick, "irc.example.org");
	CHECK(m.user == NULL && m.host == NULL);
	CHECK_STR(m.command, "001");
	CHECK_STR(m.params[0], "me");
	CHECK_STR(m.params[1], "Welcome");
	irc_msg_clear(&m);

	CHECK(parse(":nick@host JOIN #a", &m) == 0);
	CHECK_STR(m.nick, "nick");
	CHECK(m.user == NULL);
	CHECK_STR(m.host, "host");
	irc_msg_clear(&m);

	CHECK(parse(":nick!user JOIN #a", &m) == 0);
	CHECK_STR(m.nick, "nick");
	CHECK_STR(m.user, "user");
	CHECK(m.host == NULL);
	irc_msg_clear(&m);

	/* '@' in the user part is the host separator, '!' in the host is
	 * part of the host */
	CHECK(parse(":n!u@h!x QUIT", &m) == 0);
	CHECK_STR(m.nick, "n");
	CHECK_STR(m.user, "u");
	CHECK_STR(m.host, "h!x");
	CHECK(m.nparams == 0);
	irc_msg_clear(&m);

	CHECK(parse(":!u@h QUIT", &m) == -1);
	CHECK(parse(": QUIT", &m) == -1);
}

static void
test_parse_tags(void)
{
	struct irc_msg m;

	CHECK(parse("@time=2024-01-02T03:04:05.678Z;msgid=abc;+draft/x;"
	    "esc=a\\:b\\sc\\\\d\\re\\nf\\qg\\;empty= :n!u@h PRIVMSG #c :hi",
	    &m) == 0);
	CHECK(m.ntags == 5);
	CHECK_STR(irc_msg_tag(&m, "time"), "2024-01-02T03:04:05.678Z");
	CHECK_STR(irc_msg_tag(&m, "msgid"), "abc");
	CHECK_STR(irc_msg_tag(&m, "+draft/x"), "");
	CHECK(m.tags[2].value == NULL);
	CHECK_STR(irc_msg_tag(&m, "esc"), "a;b c\\d\re\nfqg");
	CHECK_STR(irc_msg_tag(&m, "empty"), "");
	CHECK(m.tags[4].value != NULL);
	CHECK(irc_msg_tag(&m, "missing") == NULL);
	CHECK_STR(m.nick, "n");
	CHECK_STR(m.params[1], "hi");
	irc_msg_clear(&m);

	/* trailing lone backslash dropped; last duplicate wins; empty
	 * entries skipped; several spaces after the tags */
	CHECK(parse("@a=x\\;a=y;;=z;b=1\\   PING", &m) == 0);
	CHECK_STR(irc_msg_tag(&m, "a"), "y");
	CHECK_STR(irc_msg_tag(&m, "b"), "1");
	CHECK(m.ntags == 3);
	CHECK_STR(m.command, "PING");
	irc_msg_clear(&m);

	/* a tag section of exactly the limit passes, one more does not */
	{
		size_t n = IRC_TAGS_MAX;
		char *line = malloc(n + 16);
		line[0] = '@';
		line[1] = 'k';
		line[2] = '=';
		memset(line + 3, 'v', n - 3);
		strcpy(line + n, " PING");
		CHECK(irc_msg_parse(line, strlen(line), &m) == 0);
		CHECK(strlen(irc_msg_tag(&m, "k")) == n - 3);
		irc_msg_clear(&m);
		line[n] = 'v';
		strcpy(line + n + 1, " PING");
		memset(&m, 0, sizeof(m));
		CHECK(irc_msg_parse(line, strlen(line), &m) == -1);
		free(line);
	}
}

static void
test_parse_params(void)
{
	struct irc_msg m;

	/* trailing empty */
	CHECK(parse(":n!u@h TOPIC #c :", &m) == 0);
	CHECK(m.nparams == 2);
	CHECK_STR(m.params[1], "");
	irc_msg_clear(&m);

	/* no trailing; several spaces; trailing spaces */
	CHECK(parse("MODE   #c  +o   nick  ", &m) == 0);
	CHECK(m.nparams == 3);
	CHECK_STR(m.params[0], "#c");
	CHECK_STR(m.params[1], "+o");
	CHECK_STR(m.params[2], "nick");
	irc_msg_clear(&m);

	/* trailing keeps ':' and spaces inside */
	CHECK(parse("PRIVMSG #c ::-)  a ", &m) == 0);
	CHECK_STR(m.params[1], ":-)  a ");
	irc_msg_clear(&m);

	/* a command alone */
	CHECK(parse("QUIT", &m) == 0);
	CHECK(m.nparams == 0);
	irc_msg_clear(&m);

	/* 15 params: the 15th takes the rest */
	CHECK(parse("CMD 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 :17", &m)
	    == 0);
	CHECK(m.nparams == 15);
	CHECK_STR(m.params[13], "14");
	CHECK_STR(m.params[14], "15 16 :17");
	irc_msg_clear(&m);

	CHECK(parse("CMD 1 2 3 4 5 6 7 8 9 10 11 12 13 14 :a b", &m) == 0);
	CHECK(m.nparams == 15);
	CHECK_STR(m.params[14], "a b");
	irc_msg_clear(&m);

	/* numerics */
	CHECK(parse(":s 353 me = #c :@op +voice plain", &m) == 0);
	CHECK_STR(m.command, "353");
	CHECK(m.nparams == 4);
	CHECK_STR(m.params[3], "@op +voice plain");
	irc_msg_clear(&m);
}

static void
test_parse_bad(void)
{
	struct irc_msg m;
	char *big;

	memset(&m, 0, sizeof(m));
	CHECK(irc_msg_parse("", 0, &m) == -1);
	CHECK(irc_msg_parse("\r\n", 2, &m) == -1);
	CHECK(parse("   ", &m) == -1);
	CHECK(parse("@a=b", &m) == -1);
	CHECK(parse("@a=b ", &m) == -1);
	CHECK(parse("@a=b :prefix", &m) == -1);
	CHECK(parse(":prefix", &m) == -1);
	CHECK(parse(":prefix ", &m) == -1);
	CHECK(parse(":prefix  ", &m) == -1);
	CHECK(irc_msg_parse("PING a\0b", 8, &m) == -1);
	CHECK(irc_msg_parse("PING\0", 5, &m) == -1);
	CHECK(parse("PRIVMSG #a :hi\r\nQUIT", &m) == -1);
	CHECK(parse("PRIVMSG #a :hi\nQUIT", &m) == -1);
	CHECK(parse("PRIVMSG #a :hi\rQUIT", &m) == -1);
	CHECK(parse("12 x", &m) == -1);
	CHECK(parse("1234 x", &m) == -1);
	CHECK(parse("12A x", &m) == -1);
	CHECK(parse("PRIV-MSG x", &m) == -1);
	CHECK(parse("PRIVMSG: x", &m) == -1);
	CHECK(parse(":p :x", &m) == -1);
	CHECK(m.command == NULL && m.nparams == 0);

	/* 510 bytes without CR LF fit, 511 do not */
	big = malloc(1024);
	memcpy(big, "PRIVMSG #a :", 12);
	memset(big + 12, 'x', 510 - 12);
	big[510] = '\0';
	CHECK(parse(big, &m) == 0);
	irc_msg_clear(&m);
	big[510] = 'x';
	big[511] = '\0';
	CHECK(parse(big, &m) == -1);
	/* the tag allowance does not extend the message itself */
	memmove(big + 5, big, 512);
	memcpy(big, "@a=b ", 5);
	CHECK(parse(big, &m) == -1);
	free(big);

	big = malloc(100 * 1024 + 1);
	memset(big, 'A', 100 * 1024);
	big[100 * 1024] = '\0';
	CHECK(parse(big, &m) == -1);
	big[0] = '@';
	CHECK(parse(big, &m) == -1);
	free(big);
}

/* ---- building ---- */

static void
test_build(void)
{
	char *s;

	s = build("PRIVMSG", (const char *const[]){ "#chan", "hello world",
	    NULL });
	CHECK_STR(s, "PRIVMSG #chan :hello world\r\n");
	free(s);
	s = build("JOIN", (const char *const[]){ "#chan", NULL });
	CHECK_STR(s, "JOIN #chan\r\n");
	free(s);
	s = build("TOPIC", (const char *const[]){ "#chan", "", NULL });
	CHECK_STR(s, "TOPIC #chan :\r\n");
	free(s);
	s = build("PRIVMSG", (const char *const[]){ "#c", ":)", NULL });
	CHECK_STR(s, "PRIVMSG #c ::)\r\n");
	free(s);
	s = build("QUIT", NULL);
	CHECK_STR(s, "QUIT\r\n");
	free(s);
	s = build("USER", (const char *const[]){ "u", "0", "*", "Real Name",
	    NULL });
	CHECK_STR(s, "USER u 0 * :Real Name\r\n");
	free(s);
	s = build("001", (const char *const[]){ "me", "Welcome", NULL });
	CHECK_STR(s, "001 me Welcome\r\n");
	free(s);
	s = build("privmsg", (const char *const[]){ "#c", "x", NULL });
	CHECK_STR(s, "PRIVMSG #c x\r\n");
	free(s);

	/* built lines parse back to the same */
	{
		struct irc_msg m;
		s = build("PRIVMSG", (const char *const[]){ "#c", " :a b ",
		    NULL });
		CHECK(s != NULL);
		if (s != NULL) {
			CHECK(irc_msg_parse(s, strlen(s) - 2, &m) == 0);
			CHECK_STR(m.params[1], " :a b ");
			irc_msg_clear(&m);
		}
		free(s);
	}
}

static void
test_build_injection(void)
{
	const char *evil[] = { "hi\r\nQUIT", "hi\nQUIT", "hi\rQUIT",
	    "\r\n", "QUIT\n", NULL };

	for (size_t e = 0; evil[e] != NULL; e++) {
		/* as every parameter of a 1..4 parameter line */
		for (size_t n = 1; n <= 4; n++)
			for (size_t pos = 0; pos < n; pos++) {
				const char *p[5] = { "a", "b", "c", "d", NULL };
				p[n] = NULL;
				p[pos] = evil[e];
				CHECK(build("PRIVMSG", p) == NULL);
			}
		/* as the command */
		CHECK(build(evil[e], (const char *const[]){ "x", NULL })
		    == NULL);
	}
	/* middle parameters: empty, with space, with leading ':' */
	CHECK(build("PRIVMSG", (const char *const[]){ "", "x", NULL })
	    == NULL);
	CHECK(build("PRIVMSG", (const char *const[]){ "#a b", "x", NULL })
	    == NULL);
	CHECK(build("PRIVMSG", (const char *const[]){ ":x", "x", NULL })
	    == NULL);
	CHECK(build("MODE", (const char *const[]){ "#a", " ", "n", NULL })
	    == NULL);
	/* bad commands */
	CHECK(build("", NULL) == NULL);
	CHECK(build("PRIV MSG", NULL) == NULL);
	CHECK(build("12", NULL) == NULL);
	CHECK(build("QUIT :x", NULL) == NULL);
	/* too many parameters */
	CHECK(build("X", (const char *const[]){ "1", "2", "3", "4", "5",
	    "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
	    NULL }) == NULL);
	{
		struct evbuffer *b = evbuffer_new();
		CHECK(irc_build(b, NULL, NULL) == -1);
		CHECK(irc_build(NULL, "QUIT", NULL) == -1);
		evbuffer_free(b);
	}
}

static void
test_build_length(void)
{
	char text[700], *s;

	/* "PRIVMSG #c :" is 12 bytes; 498 more make 510, plus CR LF */
	memset(text, 'x', sizeof(text));
	text[498] = ' ';
	text[497] = 'y';
	text[498] = '\0';
	s = build("PRIVMSG", (const char *const[]){ "#c", text, NULL });
	CHECK(s != NULL && strlen(s) == 511 - 1 + 2 - 1);
	free(s);
	/* without ':' needed: "PRIVMSG #c " + 499 = 510 */
	memset(text, 'x', 499);
	text[499] = '\0';
	s = build("PRIVMSG", (const char *const[]){ "#c", text, NULL });
	CHECK(s != NULL && strlen(s) == 512);
	free(s);
	text[499] = 'x';
	text[500] = '\0';
	CHECK(build("PRIVMSG", (const char *const[]){ "#c", text, NULL })
	    == NULL);
	/* the ':' counts */
	memset(text, 'x', 499);
	text[0] = ' ';
	text[499] = '\0';
	CHECK(build("PRIVMSG", (const char *const[]){ "#c", text, NULL })
	    == NULL);
	/* 600 bytes */
	memset(text, 'a', 600);
	text[600] = '\0';
	CHECK(build("PRIVMSG", (const char *const[]){ "#c", text, NULL })
	    == NULL);
	CHECK(build(text, NULL) == NULL);
	CHECK(build("PRIVMSG", (const char *const[]){ text, "x", NULL })
	    == NULL);
}

/* ---- case mapping and ISUPPORT ---- */

static void
test_casemapping(void)
{
	enum irc_casemapping cm;
	char s[32];

	CHECK(irc_casemapping_parse("rfc1459", &cm) == 0 &&
	    cm == IRC_CASEMAP_RFC1459);
	CHECK(irc_casemapping_parse("strict-rfc1459", &cm) == 0 &&
	    cm == IRC_CASEMAP_STRICT_RFC1459);
	CHECK(irc_casemapping_parse("ascii", &cm) == 0 &&
	    cm == IRC_CASEMAP_ASCII);
	CHECK(irc_casemapping_parse("rfc7613", &cm) == -1);
	CHECK(irc_casemapping_parse("ASCII", &cm) == -1);
	CHECK(irc_casemapping_parse("", &cm) == -1);
	CHECK(irc_casemapping_parse(NULL, &cm) == -1);

	strcpy(s, "AZaz[]\\~^{}|\xc3\x89");
	irc_casefold(IRC_CASEMAP_RFC1459, s);
	CHECK_STR(s, "azaz{}|^^{}|\xc3\x89");
	strcpy(s, "AZaz[]\\~^{}|");
	irc_casefold(IRC_CASEMAP_STRICT_RFC1459, s);
	CHECK_STR(s, "azaz{}|~^{}|");
	strcpy(s, "AZaz[]\\~^{}|");
	irc_casefold(IRC_CASEMAP_ASCII, s);
	CHECK_STR(s, "azaz[]\\~^{}|");

	CHECK(irc_casecmp(IRC_CASEMAP_RFC1459, "Nick[1]~", "nICK{1}^") == 0);
	CHECK(irc_casecmp(IRC_CASEMAP_STRICT_RFC1459, "Nick[1]", "nick{1}")
	    == 0);
	CHECK(irc_casecmp(IRC_CASEMAP_STRICT_RFC1459, "a~", "a^") != 0);
	CHECK(irc_casecmp(IRC_CASEMAP_ASCII, "[", "{") != 0);
	CHECK(irc_casecmp(IRC_CASEMAP_ASCII, "ABC", "abc") == 0);
	CHECK(irc_casecmp(IRC_CASEMAP_ASCII, "ab", "abc") < 0);
	CHECK(irc_casecmp(IRC_CASEMAP_ASCII, "abd", "abc") > 0);
}

static void
isupport_line(struct irc_isupport *is, const char *line)
{
	struct irc_msg m;

	CHECK(parse(line, &m) == 0);
	irc_isupport_apply(is, &m);
	irc_msg_clear(&m);
}

static void
test_isupport(void)
{
	struct irc_isupport is;
	char line[400];

	irc_isupport_init(&is);
	CHECK(is.casemapping == IRC_CASEMAP_RFC1459);
	CHECK_STR(is.chantypes, "#&");
	CHECK_STR(is.prefix_modes, "ov");
	CHECK_STR(is.prefix_chars, "@+");
	CHECK(is.nicklen == 0 && is.channellen == 0 && is.topiclen == 0);
	CHECK_STR(is.network, "");
	CHECK(irc_isupport_prefix_mode(&is, '@') == 'o');
	CHECK(irc_isupport_prefix_mode(&is, '+') == 'v');
	CHECK(irc_isupport_prefix_mode(&is, '%') == 0);
	CHECK(irc_isupport_prefix_mode(&is, '\0') == 0);

	isupport_line(&is, ":s 005 me CASEMAPPING=ascii CHANTYPES=# "
	    "PREFIX=(qaohv)~&@%+ NICKLEN=30 CHANNELLEN=64 TOPICLEN=390 "
	    "NETWORK=Example\\x20Net EXCEPTS INVEX :are supported by this "
	    "server");
	CHECK(is.casemapping == IRC_CASEMAP_ASCII);
	CHECK_STR(is.chantypes, "#");
	CHECK_STR(is.prefix_modes, "qaohv");
	CHECK_STR(is.prefix_chars, "~&@%+");
	CHECK(irc_isupport_prefix_mode(&is, '~') == 'q');
	CHECK(irc_isupport_prefix_mode(&is, '%') == 'h');
	CHECK(is.nicklen == 30 && is.channellen == 64 && is.topiclen == 390);
	CHECK_STR(is.network, "Example Net");

	/* garbage keeps what was there */
	isupport_line(&is, ":s 005 me CASEMAPPING=klingon CHANTYPES=#,& "
	    "PREFIX=(ov)@ PREFIX=ov@+ PREFIX=(o1)@+ NICKLEN=abc "
	    "CHANNELLEN=-5 TOPICLEN=99999999999999999999 NETWORK=a\\x0ab "
	    "CHANTYPES=#0123456789abcdef =x NICKLEN :are supported");
	CHECK(is.casemapping == IRC_CASEMAP_ASCII);
	CHECK_STR(is.chantypes, "#");
	CHECK_STR(is.prefix_modes, "qaohv");
	CHECK_STR(is.prefix_chars, "~&@%+");
	CHECK(is.nicklen == 30 && is.channellen == 64 && is.topiclen == 390);
	CHECK_STR(is.network, "Example Net");

	/* an over-long NETWORK is ignored */
	strcpy(line, ":s 005 me NETWORK=");
	memset(line + strlen(line), 'N', 64);
	strcpy(line + strlen(":s 005 me NETWORK=") + 64, " :are supported");
	isupport_line(&is, line);
	CHECK_STR(is.network, "Example Net");
	/* 63 bytes fit */
	strcpy(line, ":s 005 me NETWORK=");
	memset(line + strlen(line), 'N', 63);
	strcpy(line + strlen(":s 005 me NETWORK=") + 63, " :are supported");
	isupport_line(&is, line);
	CHECK(strlen(is.network) == 63);

	/* -TOKEN resets */
	isupport_line(&is, ":s 005 me -CASEMAPPING -CHANTYPES -PREFIX "
	    "-NICKLEN -CHANNELLEN -TOPICLEN -NETWORK -UNKNOWN :are supported");
	CHECK(is.casemapping == IRC_CASEMAP_RFC1459);
	CHECK_STR(is.chantypes, "#&");
	CHECK_STR(is.prefix_modes, "ov");
	CHECK_STR(is.prefix_chars, "@+");
	CHECK(is.nicklen == 0 && is.channellen == 0 && is.topiclen == 0);
	CHECK_STR(is.network, "");

	/* empty PREFIX means no prefixes */
	isupport_line(&is, ":s 005 me PREFIX= :are supported");
	CHECK_STR(is.prefix_modes, "");
	CHECK(irc_isupport_prefix_mode(&is, '@') == 0);
	irc_isupport_apply(&is, NULL);
}

/* ---- text ---- */

static void
test_to_utf8(void)
{
	char *s;

	s = irc_to_utf8("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", 15,
	    NULL);
	CHECK_STR(s, "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80");
	free(s);
	s = irc_to_utf8("caf\xe9", 4, NULL);
	CHECK_STR(s, "caf\xc3\xa9");
	free(s);
	s = irc_to_utf8("caf\xe9", 4, "CP1252");
	CHECK_STR(s, "caf\xc3\xa9");
	free(s);
	/* CP1252's 0x80 is the euro sign; ISO-8859-15 has it at 0xA4 */
	s = irc_to_utf8("\x80 \x93q\x94", 5, NULL);
	CHECK_STR(s, "\xe2\x82\xac \xe2\x80\x9cq\xe2\x80\x9d");
	free(s);
	s = irc_to_utf8("\xa4", 1, "ISO-8859-15");
	CHECK_STR(s, "\xe2\x82\xac");
	free(s);
	s = irc_to_utf8("\xa4", 1, "ISO-8859-1");
	CHECK_STR(s, "\xc2\xa4");
	free(s);
	/* unknown or suspicious names: CP1252 */
	s = irc_to_utf8("caf\xe9", 4, "no-such-charset");
	CHECK_STR(s, "caf\xc3\xa9");
	free(s);
	s = irc_to_utf8("caf\xe9", 4, "UTF-8//IGNORE");
	CHECK_STR(s, "caf\xc3\xa9");
	free(s);
	s = irc_to_utf8("caf\xe9", 4, "");
	CHECK_STR(s, "caf\xc3\xa9");
	free(s);
	/* bytes CP1252 leaves undefined: U+FFFD each */
	s = irc_to_utf8("a\x81\x8d" "b", 4, NULL);
	CHECK_STR(s, "a\xef\xbf\xbd\xef\xbf\xbd" "b");
	free(s);
	/* a fallback of UTF-8 itself: each bad byte replaced on its own */
	s = irc_to_utf8("a\xed\xa0\x80z", 5, "UTF-8");
	CHECK(valid_utf8(s));
	CHECK_STR(s, "a\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdz");
	free(s);
	/* lone surrogate and overlong are not UTF-8: decoded as CP1252 */
	s = irc_to_utf8("\xed\xa0\x80", 3, NULL);
	CHECK(valid_utf8(s));
	CHECK(strstr(s, "\xed\xa0") == NULL);
	CHECK_STR(s, "\xc3\xad\xc2\xa0\xe2\x82\xac");
	free(s);
	s = irc_to_utf8("\xc0\xaf", 2, NULL);
	CHECK(valid_utf8(s));
	CHECK_STR(s, "\xc3\x80\xc2\xaf");
	free(s);
	s = irc_to_utf8("\xf4\x90\x80\x80", 4, "UTF-8");
	CHECK(valid_utf8(s));
	CHECK(strlen(s) == 12);
	free(s);
	/* NUL removed, on both paths */
	s = irc_to_utf8("a\0b", 3, NULL);
	CHECK_STR(s, "ab");
	free(s);
	s = irc_to_utf8("\xe9\0\xe9", 3, NULL);
	CHECK_STR(s, "\xc3\xa9\xc3\xa9");
	free(s);
	s = irc_to_utf8("\xe9\0\0\0a\0", 6, "UTF-16LE");
	CHECK_STR(s, "\xc3\xa9" "a");
	free(s);
	/* truncated sequence at the end */
	s = irc_to_utf8("ab\xe2\x82", 4, "UTF-8");
	CHECK_STR(s, "ab\xef\xbf\xbd\xef\xbf\xbd");
	free(s);
	s = irc_to_utf8("", 0, NULL);
	CHECK_STR(s, "");
	free(s);
	s = irc_to_utf8(NULL, 5, NULL);
	CHECK_STR(s, "");
	free(s);
}

static void
test_strip_formatting(void)
{
	char *s;

	s = irc_strip_formatting("\x02" "bold\x02 \x1ditalic\x1d \x1funder"
	    "\x1f \x1estrike\x1e \x11mono\x11 \x16rev\x16 reset\x0f.");
	CHECK_STR(s, "bold italic under strike mono rev reset.");
	free(s);
	s = irc_strip_formatting("\x03" "4red\x03 \x03" "04red\x03 "
	    "\x03" "4,12bg\x03 \x03" "04,02bg\x03 \x03" "123x");
	CHECK_STR(s, "red red bg bg 3x");
	free(s);
	/* a comma without a colour after it is text */
	s = irc_strip_formatting("\x03" "4,text \x03,5 \x03" "12,");
	CHECK_STR(s, ",text ,5 ,");
	free(s);
	s = irc_strip_formatting("\x04" "FF0000red\x04 \x04" "ff0000,00ff00"
	    "bg\x04 \x04" "12345g \x04");
	CHECK_STR(s, "red bg 12345g ");
	free(s);
	s = irc_strip_formatting("plain \xc3\xa9");
	CHECK_STR(s, "plain \xc3\xa9");
	free(s);
	s = irc_strip_formatting("\x03");
	CHECK_STR(s, "");
	free(s);
}

static void
test_format_to_styling(void)
{
	char *s;

	s = irc_format_to_styling("a \x02" "bold\x02 b");
	CHECK_STR(s, "a *bold* b");
	free(s);
	s = irc_format_to_styling("\x1dit\x1d \x1estrike\x1e \x11mono\x11");
	CHECK_STR(s, "_it_ ~strike~ `mono`");
	free(s);
	/* unclosed styles are closed; reset closes all */
	s = irc_format_to_styling("\x02\x1d" "both");
	CHECK_STR(s, "*_both_*");
	free(s);
	s = irc_format_to_styling("\x02" "b \x1di\x0f plain");
	CHECK_STR(s, "*b _i_* plain");
	free(s);
	/* overlapping toggles nest properly */
	s = irc_format_to_styling("\x02" "a\x1d" "b\x02" "c\x1d");
	CHECK_STR(s, "*a_b_*_c_");
	free(s);
	/* spans never start or end with a space; empty spans vanish */
	s = irc_format_to_styling("x\x02 bold \x02y \x02\x02z");
	CHECK_STR(s, "x *bold* y z");
	free(s);
	/* colours, underline, reverse dropped */
	s = irc_format_to_styling("\x03" "4,5red\x03 \x1funder\x1f \x16r");
	CHECK_STR(s, "red under r");
	free(s);
	s = irc_format_to_styling("");
	CHECK_STR(s, "");
	free(s);
	/* no formatting: the text as it is */
	s = irc_format_to_styling("plain *text* \xc3\xa9");
	CHECK_STR(s, "plain *text* \xc3\xa9");
	free(s);
}

static void
test_ctcp(void)
{
	char *cmd = NULL, *args = NULL, *s;

	CHECK(irc_ctcp_parse("\x01" "ACTION waves hello\x01", &cmd, &args)
	    == 1);
	CHECK_STR(cmd, "ACTION");
	CHECK_STR(args, "waves hello");
	free(cmd);
	free(args);
	CHECK(irc_ctcp_parse("\x01version\x01", &cmd, &args) == 1);
	CHECK_STR(cmd, "VERSION");
	CHECK_STR(args, "");
	free(cmd);
	free(args);
	CHECK(irc_ctcp_parse("\x01PING 12345\x01", &cmd, &args) == 1);
	CHECK_STR(cmd, "PING");
	CHECK_STR(args, "12345");
	free(cmd);
	free(args);
	/* unterminated */
	CHECK(irc_ctcp_parse("\x01" "ACTION dances", &cmd, &args) == 1);
	CHECK_STR(cmd, "ACTION");
	CHECK_STR(args, "dances");
	free(cmd);
	free(args);
	/* not CTCP */
	CHECK(irc_ctcp_parse("hello", &cmd, &args) == 0);
	CHECK(irc_ctcp_parse("", &cmd, &args) == 0);
	CHECK(irc_ctcp_parse("\x01", &cmd, &args) == 0);
	CHECK(irc_ctcp_parse("\x01\x01", &cmd, &args) == 0);
	CHECK(irc_ctcp_parse("\x01 x\x01", &cmd, &args) == 0);
	CHECK(irc_ctcp_parse(NULL, &cmd, &args) == 0);

	s = irc_ctcp_build("ACTION", "waves");
	CHECK_STR(s, "\x01" "ACTION waves\x01");
	free(s);
	s = irc_ctcp_build("VERSION", NULL);
	CHECK_STR(s, "\x01VERSION\x01");
	free(s);
	s = irc_ctcp_build("PING", "");
	CHECK_STR(s, "\x01PING\x01");
	free(s);
	CHECK(irc_ctcp_build("ACTION", "hi\r\nQUIT") == NULL);
	CHECK(irc_ctcp_build("ACTION", "a\x01" "b") == NULL);
	CHECK(irc_ctcp_build("ACTION", "a\nb") == NULL);
	CHECK(irc_ctcp_build("ACT\r\nION", "x") == NULL);
	CHECK(irc_ctcp_build("A B", "x") == NULL);
	CHECK(irc_ctcp_build("", "x") == NULL);
	CHECK(irc_ctcp_build(NULL, "x") == NULL);
}

/* ---- splitting ---- */

/* Every piece: non-empty, valid UTF-8, fits, no CR LF NUL. */
static int
pieces_ok(char **v, size_t n, size_t overhead)
{
	size_t i;

	for (i = 0; v[i] != NULL; i++) {
		size_t len = strlen(v[i]);
		if (len == 0 || len > IRC_LINE_MAX - 2 - overhead ||
		    !valid_utf8(v[i]) || strpbrk(v[i], "\r\n\x01") != NULL)
			return 0;
	}
	return i == n;
}

static void
test_split(void)
{
	char **v, *text;
	size_t n;

	n = irc_split("hello world", 50, &v);
	CHECK(n == 1 && pieces_ok(v, n, 50));
	CHECK_STR(v[0], "hello world");
	irc_split_free(v);

	/* breaks at the last space that fits: budget 10 */
	n = irc_split("aaaa bbbb cccc dddd", IRC_LINE_MAX - 2 - 10, &v);
	CHECK(n == 2 && pieces_ok(v, n, IRC_LINE_MAX - 2 - 10));
	CHECK_STR(v[0], "aaaa bbbb");
	CHECK_STR(v[1], "cccc dddd");
	irc_split_free(v);
	/* a space just at the limit */
	n = irc_split("aaaaaaaaaa bbb", IRC_LINE_MAX - 2 - 10, &v);
	CHECK(n == 2);
	CHECK_STR(v[0], "aaaaaaaaaa");
	CHECK_STR(v[1], "bbb");
	irc_split_free(v);
	/* a word longer than the budget is cut */
	n = irc_split("abcdefghijklmnopqrstuvwxyz", IRC_LINE_MAX - 2 - 10,
	    &v);
	CHECK(n == 3);
	CHECK_STR(v[0], "abcdefghij");
	CHECK_STR(v[2], "uvwxyz");
	irc_split_free(v);

	/* LF and CRLF separate; empty lines skipped; controls dropped */
	n = irc_split("one\ntwo\r\n\r\n\nthree\x01\x07\x02" "b\t\x03" "4c\n",
	    60, &v);
	CHECK(n == 3 && pieces_ok(v, n, 60));
	CHECK_STR(v[0], "one");
	CHECK_STR(v[1], "two");
	CHECK_STR(v[2], "three\x02" "b\t\x03" "4c");
	irc_split_free(v);
	n = irc_split("hi\r\nQUIT", 60, &v);
	CHECK(n == 2);
	CHECK_STR(v[0], "hi");
	CHECK_STR(v[1], "QUIT");
	irc_split_free(v);
	n = irc_split("\r\n\n\r", 60, &v);
	CHECK(n == 0 && v != NULL && v[0] == NULL);
	irc_split_free(v);
	n = irc_split("", 60, &v);
	CHECK(n == 0 && v[0] == NULL);
	irc_split_free(v);

	/* 3000 bytes of words */
	text = malloc(3001);
	for (size_t i = 0; i < 3000; i++)
		text[i] = i % 7 == 6 ? ' ' : (char)('a' + i % 26);
	text[3000] = '\0';
	n = irc_split(text, 100, &v);
	CHECK(n >= 3000 / 410 + 1 && pieces_ok(v, n, 100));
	{
		/* nothing lost but the break spaces */
		size_t total = 0;
		for (size_t i = 0; i < n; i++)
			total += strlen(v[i]);
		CHECK(total + n - 1 == 3000);
	}
	irc_split_free(v);
	/* 3000 bytes without a space */
	memset(text, 'x', 3000);
	n = irc_split(text, 100, &v);
	CHECK(n == 8 && pieces_ok(v, n, 100));
	CHECK(strlen(v[0]) == 410);
	irc_split_free(v);

	/* multibyte text, no spaces, with every overhead: never cut in a
	 * character */
	for (size_t i = 0; i + 4 <= 3000; i += 9) {
		memcpy(text + i, "\xc3\xa9", 2);
		memcpy(text + i + 2, "\xe2\x82\xac", 3);
		memcpy(text + i + 5, "\xf0\x9f\x98\x80", 4);
	}
	text[2997] = '\0';
	for (size_t oh = 0; oh <= IRC_LINE_MAX - 2 - 4; oh += 7) {
		n = irc_split(text, oh, &v);
		CHECK(n > 0 && pieces_ok(v, n, oh));
		irc_split_free(v);
	}
	n = irc_split(text, IRC_LINE_MAX - 2 - 4, &v);
	CHECK(n > 0 && pieces_ok(v, n, IRC_LINE_MAX - 2 - 4));
	irc_split_free(v);
	/* no room at all */
	n = irc_split("abc", IRC_LINE_MAX, &v);
	CHECK(n == 0 && v[0] == NULL);
	irc_split_free(v);
	free(text);

	/* invalid UTF-8 becomes U+FFFD */
	n = irc_split("a\xff" "b\xed\xa0\x80", 60, &v);
	CHECK(n == 1 && pieces_ok(v, n, 60));
	CHECK_STR(v[0], "a\xef\xbf\xbd" "b\xef\xbf\xbd\xef\xbf\xbd"
	    "\xef\xbf\xbd");
	irc_split_free(v);
	irc_split_free(NULL);
}

/* ---- addresses ---- */

static int
addr(const char *local, const char *fixed, struct irc_addr *a)
{
	memset(a, 0, sizeof(*a));
	return irc_addr_parse(local, fixed, "#&", a);
}

static void
round_trip(const char *local, const char *fixed)
{
	struct irc_addr a, b;
	char *s;

	CHECK(addr(local, fixed, &a) == 0);
	s = irc_addr_local(&a, fixed);
	CHECK(s != NULL && addr(s, fixed, &b) == 0);
	CHECK(a.kind == b.kind);
	CHECK((a.name == NULL && b.name == NULL) ||
	    (a.name != NULL && b.name != NULL && strcmp(a.name, b.name) == 0));
	CHECK_STR(a.server, b.server);
	free(s);
	irc_addr_clear(&a);
	irc_addr_clear(&b);
}

static void
test_addr(void)
{
	struct irc_addr a;
	char *s;

	CHECK(addr("#chan%irc.example.org", NULL, &a) == 0);
	CHECK(a.kind == IRC_ADDR_CHANNEL);
	CHECK_STR(a.name, "#chan");
	CHECK_STR(a.server, "irc.example.org");
	s = irc_addr_local(&a, NULL);
	CHECK_STR(s, "#chan%irc.example.org");
	free(s);
	irc_addr_clear(&a);
	CHECK(a.name == NULL && a.server == NULL);
	irc_addr_clear(&a);

	CHECK(addr("&local:x%IRC.Example.ORG", NULL, &a) == 0);
	CHECK(a.kind == IRC_ADDR_CHANNEL);
	CHECK_STR(a.name, "&local:x");
	CHECK_STR(a.server, "irc.example.org");
	irc_addr_clear(&a);

	CHECK(addr("Nick[away]%irc.example.org", NULL, &a) == 0);
	CHECK(a.kind == IRC_ADDR_NICK);
	CHECK_STR(a.name, "Nick[away]");
	irc_addr_clear(&a);

	CHECK(addr("Irc.Example.Org", NULL, &a) == 0);
	CHECK(a.kind == IRC_ADDR_SERVER);
	CHECK(a.name == NULL);
	CHECK_STR(a.server, "irc.example.org");
	s = irc_addr_local(&a, NULL);
	CHECK_STR(s, "irc.example.org");
	free(s);
	irc_addr_clear(&a);

	CHECK(addr("localhost", NULL, &a) == 0);
	irc_addr_clear(&a);
	CHECK(addr("#c%127.0.0.1", NULL, &a) == 0);
	CHECK_STR(a.server, "127.0.0.1");
	irc_addr_clear(&a);
	CHECK(addr("#c%2001:DB8::1", NULL, &a) == 0);
	CHECK_STR(a.server, "2001:db8::1");
	irc_addr_clear(&a);
	CHECK(addr("#\xc3\xa9t\xc3\xa9%irc.example.org", NULL, &a) == 0);
	irc_addr_clear(&a);

	/* fixed server */
	CHECK(addr("#chan", "IRC.example.org", &a) == 0);
	CHECK(a.kind == IRC_ADDR_CHANNEL);
	CHECK_STR(a.name, "#chan");
	CHECK_STR(a.server, "irc.example.org");
	s = irc_addr_local(&a, "irc.example.org");
	CHECK_STR(s, "#chan");
	free(s);
	irc_addr_clear(&a);
	CHECK(addr("nick", "irc.example.org", &a) == 0);
	CHECK(a.kind == IRC_ADDR_NICK);
	CHECK_STR(a.name, "nick");
	irc_addr_clear(&a);
	CHECK(addr("#chan%irc.example.org", "irc.example.org", &a) == -1);
	CHECK(addr("", "irc.example.org", &a) == -1);
	CHECK(addr("#chan", "bad host!", &a) == -1);
	/* "" as fixed server means none */
	CHECK(addr("irc.example.org", "", &a) == 0);
	CHECK(a.kind == IRC_ADDR_SERVER);
	irc_addr_clear(&a);

	/* chantypes from ISUPPORT */
	memset(&a, 0, sizeof(a));
	CHECK(irc_addr_parse("&x%s.org", NULL, "#", &a) == 0);
	CHECK(a.kind == IRC_ADDR_NICK);
	irc_addr_clear(&a);
	CHECK(irc_addr_parse("!x%s.org", NULL, "#!", &a) == 0);
	CHECK(a.kind == IRC_ADDR_CHANNEL);
	irc_addr_clear(&a);
	CHECK(irc_addr_parse("#x%s.org", NULL, NULL, &a) == 0);
	CHECK(a.kind == IRC_ADDR_CHANNEL);
	irc_addr_clear(&a);

	round_trip("#chan%irc.example.org", NULL);
	round_trip("nick%irc.example.org", NULL);
	round_trip("irc.example.org", NULL);
	round_trip("#chan", "irc.example.org");
	round_trip("nick", "irc.example.org");
	round_trip("#a:b%irc.example.org", NULL);
	round_trip("nick%2001:db8::1", NULL);
}

static void
test_addr_invalid(void)
{
	struct irc_addr a;
	char *big;
	const char *bad[] = {
		"", "%", "%server", "%irc.example.org", "#chan%", "nick%",
		"#a b%irc.example.org", "#a,b%irc.example.org",
		"#a\x07" "b%irc.example.org", "#a\rb%irc.example.org",
		"#a\nb%irc.example.org", "#a%b%irc.example.org",
		"#chan%irc%example.org", "nick%%irc.example.org",
		"ni ck%irc.example.org", "ni,ck%s.org", "ni!ck%s.org",
		"ni@ck%s.org", "ni*ck%s.org", "ni?ck%s.org", ":nick%s.org",
		"ni\x01" "ck%s.org", "nick%irc.example.org.",
		"nick%.irc.example.org", "nick%irc..example.org",
		"nick%-irc.example.org", "nick%irc-.example.org",
		"nick%irc_x.example.org", "nick%irc example.org",
		"nick%irc.example.org:6667", "#chan",
		"a\xff%s.org", "#\xed\xa0\x80%s.org", "bad host",
		"host!", NULL,
	};

	for (size_t i = 0; bad[i] != NULL; i++) {
		memset(&a, 0, sizeof(a));
		if (irc_addr_parse(bad[i], NULL, "#&", &a) != -1) {
			printf("#   accepted: %s\n", bad[i]);
			CHECK(!"invalid address accepted");
			irc_addr_clear(&a);
		}
	}
	/* with a fixed server: nicks and channels only, no '%' */
	CHECK(addr("irc.example.org%x", "irc.example.org", &a) == -1);
	CHECK(addr("#a b", "irc.example.org", &a) == -1);
	CHECK(addr("a%", "irc.example.org", &a) == -1);

	/* 10 KB channel name; 200 bytes is the limit */
	big = malloc(10 * 1024 + 32);
	big[0] = '#';
	memset(big + 1, 'c', 10 * 1024);
	strcpy(big + 1 + 10 * 1024, "%irc.example.org");
	CHECK(addr(big, NULL, &a) == -1);
	strcpy(big + 200, "%irc.example.org");
	CHECK(addr(big, NULL, &a) == 0);
	irc_addr_clear(&a);
	strcpy(big + 201, "%irc.example.org");
	CHECK(addr(big, NULL, &a) == -1);
	/* nick: 64 bytes */
	memset(big, 'n', 64);
	strcpy(big + 64, "%irc.example.org");
	CHECK(addr(big, NULL, &a) == 0);
	irc_addr_clear(&a);
	memset(big, 'n', 65);
	strcpy(big + 65, "%irc.example.org");
	CHECK(addr(big, NULL, &a) == -1);
	/* host: labels of 63 */
	memset(big, 'h', 64);
	big[64] = '\0';
	CHECK(addr(big, NULL, &a) == -1);
	big[63] = '\0';
	CHECK(addr(big, NULL, &a) == 0);
	irc_addr_clear(&a);
	free(big);
}

int
main(void)
{
	RUN(test_parse_basic);
	RUN(test_parse_prefix_forms);
	RUN(test_parse_tags);
	RUN(test_parse_params);
	RUN(test_parse_bad);
	RUN(test_build);
	RUN(test_build_injection);
	RUN(test_build_length);
	RUN(test_casemapping);
	RUN(test_isupport);
	RUN(test_to_utf8);
	RUN(test_strip_formatting);
	RUN(test_format_to_styling);
	RUN(test_ctcp);
	RUN(test_split);
	RUN(test_addr);
	RUN(test_addr_invalid);
	return TAP_DONE();
}
