/*
 * Unit tests of the stream parser: good streams in every slicing, round
 * trips through the serializer, and every kind of hostile input, each in
 * its own test.  Every bad input is also checked to leave the parser
 * failed (feed keeps returning -1) and to be forgotten by a reset.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "stanza.h"
#include "tap.h"
#include "xmlstream.h"

#define HEADER "<?xml version='1.0'?><stream:stream " \
	"xmlns:stream='http://etherx.jabber.org/streams' " \
	"xmlns='jabber:component:accept' from='irc.example.org' " \
	"id='3BF96D32' xml:lang='en'>"

#define MAX_KEPT 16

struct sink {
	struct xmlstream *xs;
	int opened, closed;
	struct stanza *root;		/* a copy of the stream root */
	struct stanza *st[MAX_KEPT];	/* the first stanzas received */
	size_t n;			/* stanzas received */
	size_t stop_after;		/* call xmlstream_stop() after that many */
	int stop_on_open;
};

static void
sink_open(void *arg, const struct stanza *root)
{
	struct sink *s = arg;
	s->opened++;
	stanza_free(s->root);
	s->root = stanza_copy(root);
	if (s->stop_on_open)
		xmlstream_stop(s->xs);
}

static void
sink_stanza(void *arg, struct stanza *st)
{
	struct sink *s = arg;
	CHECK(stanza_parent(st) == NULL);
	if (s->n < MAX_KEPT)
		s->st[s->n] = st;
	else
		stanza_free(st);
	s->n++;
	if (s->stop_after != 0 && s->n == s->stop_after)
		xmlstream_stop(s->xs);
}

static void
sink_close(void *arg)
{
	struct sink *s = arg;
	s->closed++;
}

static const struct xmlstream_callbacks sink_cb = {
	.open = sink_open,
	.stanza = sink_stanza,
	.close = sink_close,
};

static void
sink_clear(struct sink *s)
{
	for (size_t i = 0; i < s->n && i < MAX_KEPT; i++)
		stanza_free(s->st[i]);
	stanza_free(s->root);
	struct xmlstream *xs = s->xs;
	memset(s, 0, sizeof(*s));
	s->xs = xs;
}

static void
sink_init(struct sink *s, size_t max_bytes, unsigned max_depth)
{
	memset(s, 0, sizeof(*s));
	s->xs = xmlstream_new(&sink_cb, s, max_bytes, max_depth);
}

static void
sink_done(struct sink *s)
{
	sink_clear(s);
	xmlstream_free(s->xs);
}

static int
feed(struct sink *s, const char *data)
{
	return xmlstream_feed(s->xs, data, strlen(data));
}

/* The serialization of the i-th stanza received (caller frees). */
static char *
got(const struct sink *s, size_t i)
{
	if (i >= s->n || i >= MAX_KEPT)
		return strdup("(none)");
	return stanza_to_string(s->st[i]);
}

#define CHECK_GOT(s, i, expected) do { \
	char *got_ = got(s, i); \
	CHECK_STR(got_, expected); \
	free(got_); \
} while (0)

/* Parses one stanza inside a component stream; NULL if that fails. */
static struct stanza *
parse_one(const char *xml)
{
	struct sink s;
	struct stanza *st = NULL;
	sink_init(&s, 0, 0);
	if (feed(&s, HEADER) == 0 && feed(&s, xml) == 0 && s.n == 1) {
		st = s.st[0];
		s.n = 0;
	}
	sink_done(&s);
	return st;
}

/* A good stream on a parser that may have been used before. */
static int
good_stream_works(struct sink *s)
{
	sink_clear(s);
	if (feed(s, HEADER "<message to='a@b'><body>ok</body></message>") != 0)
		return 0;
	return s->opened == 1 && s->n == 1 &&
	    xmlstream_error_condition(s->xs) == NULL &&
	    strcmp(xmlstream_error_text(s->xs), "") == 0;
}

/*
 * Feeds prefix and then data (len bytes, in chunks of chunk bytes) and
 * expects the stream to fail with cond.  Then: another feed fails too,
 * with the same condition, and after a reset a good stream parses.
 * Prints what went wrong and returns 0 on failure.
 */
static int
bad_stream(const char *prefix, const char *data, size_t len, size_t chunk,
    const char *cond, size_t max_bytes, unsigned max_depth)
{
	struct sink s;
	int ok = 1, r = 0;
	sink_init(&s, max_bytes, max_depth);
	if (prefix != NULL && feed(&s, prefix) != 0) {
		printf("#   the prefix failed: %s\n",
		    xmlstream_error_condition(s.xs));
		ok = 0;
	}
	for (size_t off = 0; ok && off < len; off += chunk) {
		size_t n = len - off < chunk ? len - off : chunk;
		if ((r = xmlstream_feed(s.xs, data + off, n)) != 0)
			break;
	}
	const char *c = xmlstream_error_condition(s.xs);
	if (ok && (r != -1 || c == NULL || strcmp(c, cond) != 0)) {
		printf("#   feed returned %d, condition %s (%s), expected %s\n",
		    r, c ? c : "(null)", xmlstream_error_text(s.xs), cond);
		ok = 0;
	}
	if (ok && *xmlstream_error_text(s.xs) == '\0') {
		printf("#   no error text\n");
		ok = 0;
	}
	if (ok && (feed(&s, "<presence/>") != -1 ||
	    xmlstream_error_condition(s.xs) != c)) {
		printf("#   the stream did not stay failed\n");
		ok = 0;
	}
	xmlstream_reset(s.xs);
	if (xmlstream_error_condition(s.xs) != NULL) {
		printf("#   the condition survived the reset\n");
		ok = 0;
	}
	if (!good_stream_works(&s)) {
		printf("#   a good stream failed after the reset\n");
		ok = 0;
	}
	sink_done(&s);
	return ok;
}

static int
bad(const char *prefix, const char *data, const char *cond)
{
	return bad_stream(prefix, data, strlen(data), strlen(data), cond, 0, 0);
}

/* ---- good streams ---- */

static const char stanzas[] =
    "<handshake/>\n"
    "<message from='romeo@example.net/orchard' to='juliet@irc.example.org' "
    "type='chat' id='m1'><body>Hi &amp; bye &lt;3</body>"
    "<active xmlns='http://jabber.org/protocol/chatstates'/></message>\n"
    "<iq type='get' id='i1' from='romeo@example.net/orchard' "
    "to='irc.example.org'><query xmlns='http://jabber.org/protocol/disco#info'"
    "/></iq>"
    "<presence from='romeo@example.net/orchard' to='#room%irc.example.org@irc"
    ".example.org/romeo'><x xmlns='http://jabber.org/protocol/muc'/></presence>";

static const char *const expected[] = {
	"<handshake/>",
	"<message from='romeo@example.net/orchard' to='juliet@irc.example.org' "
	"type='chat' id='m1'><body>Hi &amp; bye &lt;3</body>"
	"<active xmlns='http://jabber.org/protocol/chatstates'/></message>",
	"<iq type='get' id='i1' from='romeo@example.net/orchard' "
	"to='irc.example.org'><query xmlns='http://jabber.org/protocol/disco#info'"
	"/></iq>",
	"<presence from='romeo@example.net/orchard' to='#room%irc.example.org@irc"
	".example.org/romeo'><x xmlns='http://jabber.org/protocol/muc'/>"
	"</presence>",
};

static void
check_component_stream(struct sink *s)
{
	CHECK(s->opened == 1);
	CHECK(s->root != NULL);
	if (s->root != NULL) {
		CHECK_STR(stanza_name(s->root), "stream");
		CHECK_STR(stanza_ns(s->root), NS_STREAMS);
		CHECK_STR(stanza_attr(s->root, "from"), "irc.example.org");
		CHECK_STR(stanza_attr(s->root, "id"), "3BF96D32");
		CHECK_STR(stanza_attr(s->root, "xml:lang"), "en");
		CHECK(stanza_attr(s->root, "xmlns") == NULL);
		CHECK(stanza_attr(s->root, "xmlns:stream") == NULL);
		CHECK(stanza_first_child(s->root) == NULL);
	}
	CHECK(s->n == 4);
	for (size_t i = 0; i < 4; i++)
		CHECK_GOT(s, i, expected[i]);
	if (s->n == 4) {
		CHECK_STR(stanza_ns(s->st[1]), NS_COMPONENT);
		CHECK_STR(stanza_ns(stanza_first_child(s->st[1])), NS_COMPONENT);
		CHECK(stanza_child(s->st[1], "active",
		    "http://jabber.org/protocol/chatstates") != NULL);
	}
	CHECK(s->closed == 0);
	CHECK(xmlstream_error_condition(s->xs) == NULL);
	CHECK_STR(xmlstream_error_text(s->xs), "");
}

static void
test_one_chunk(void)
{
	struct sink s;
	sink_init(&s, 0, 0);
	CHECK(feed(&s, HEADER "\n") == 0);
	CHECK(s.opened == 1);
	CHECK(feed(&s, stanzas) == 0);
	check_component_stream(&s);
	sink_done(&s);

	sink_init(&s, 0, 0);
	CHECK(feed(&s, HEADER "\n  " "" "\n") == 0);
	CHECK(xmlstream_feed(s.xs, stanzas, sizeof(stanzas) - 1) == 0);
	check_component_stream(&s);
	sink_done(&s);
}

static void
test_byte_by_byte(void)
{
	char all[sizeof(HEADER) + sizeof(stanzas)];
	snprintf(all, sizeof(all), "%s%s", HEADER, stanzas);
	struct sink s;
	sink_init(&s, 0, 0);
	for (size_t i = 0; all[i] != '\0'; i++)
		CHECK(xmlstream_feed(s.xs, all + i, 1) == 0);
	check_component_stream(&s);
	sink_done(&s);

	/* Uneven slices, every size from 1 to 17. */
	for (size_t step = 1; step <= 17; step++) {
		sink_init(&s, 0, 0);
		size_t len = strlen(all), k = 0;
		for (size_t off = 0; off < len; off += step + k % 3, k++) {
			size_t n = step + k % 3;
			if (n > len - off)
				n = len - off;
			CHECK(xmlstream_feed(s.xs, all + off, n) == 0);
		}
		check_component_stream(&s);
		sink_done(&s);
	}
}

static void
test_stream_close(void)
{
	struct sink s;
	sink_init(&s, 0, 0);
	CHECK(feed(&s, HEADER "<message/>") == 0);
	CHECK(s.n == 1 && s.closed == 0);
	CHECK(feed(&s, "<presence/></stream:stream>") == 0);
	CHECK(s.n == 2);
	CHECK(s.closed == 1);
	/* Trailing whitespace after the end is harmless. */
	CHECK(feed(&s, " \n") == 0);
	CHECK(xmlstream_error_condition(s.xs) == NULL);
	sink_done(&s);

	/* Closed in the middle of the slices. */
	sink_init(&s, 0, 0);
	const char *all = HEADER "<a/></stream:stream>";
	for (size_t i = 0; all[i] != '\0'; i++)
		CHECK(xmlstream_feed(s.xs, all + i, 1) == 0);
	CHECK(s.n == 1 && s.closed == 1);
	sink_done(&s);
}

static void
test_stream_error_stanza(void)
{
	/* <stream:error/> is a top-level element like any stanza. */
	struct sink s;
	sink_init(&s, 0, 0);
	CHECK(feed(&s, HEADER "<stream:error><conflict xmlns='urn:ietf:params:"
	    "xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-"
	    "streams'>Replaced</text></stream:error></stream:stream>") == 0);
	CHECK(s.n == 1 && s.closed == 1);
	if (s.n == 1) {
		CHECK_STR(stanza_name(s.st[0]), "error");
		CHECK_STR(stanza_ns(s.st[0]), NS_STREAMS);
		CHECK(stanza_child(s.st[0], "conflict", NS_STREAM_ERRORS) != NULL);
	}
	sink_done(&s);
}

/* parse -> serialize -> parse -> serialize: both serializations equal. */
static int
round_trip(const char *xml, const char *expect)
{
	struct stanza *a = parse_one(xml);
	if (a == NULL) {
		printf("#   did not parse: %s\n", xml);
		return 0;
	}
	char *s1 = stanza_to_string(a);
	struct stanza *b = parse_one(s1);
	char *s2 = b != NULL ? stanza_to_string(b) : NULL;
	int ok = s2 != NULL && strcmp(s1, s2) == 0 &&
	    (expect == NULL || strcmp(s1, expect) == 0);
	if (!ok)
		printf("#   in:  %s\n#   1st: %s\n#   2nd: %s\n#   want: %s\n",
		    xml, s1, s2 ? s2 : "(no parse)", expect ? expect : "(any)");
	free(s1);
	free(s2);
	stanza_free(a);
	stanza_free(b);
	return ok;
}

static void
test_round_trip(void)
{
	CHECK(round_trip("<message/>", "<message/>"));
	CHECK(round_trip(
	    "<message xmlns:x='urn:x' x:a='1' b=\"it's\" xml:lang='fr'>"
	    "<x:item xml:lang='de'>t&#x9;&#xA;&#xD;<x:sub/></x:item>"
	    "<body>&lt;&gt;&amp;&quot;&apos;&#65;&#x263A;<![CDATA[<&>]]></body>"
	    "<other xmlns='urn:o'><deeper/><none xmlns=''><kid/></none></other>"
	    "</message>",
	    "<message xmlns:ns0='urn:x' ns0:a='1' b='it&apos;s' xml:lang='fr'>"
	    "<item xmlns='urn:x' xml:lang='de'>t\t\n&#13;<sub/></item>"
	    "<body>&lt;&gt;&amp;&quot;&apos;A\xe2\x98\xba&lt;&amp;&gt;</body>"
	    "<other xmlns='urn:o'><deeper/><none xmlns=''><kid/></none></other>"
	    "</message>"));
	/* Attribute whitespace: literal TAB/LF are normalized to spaces by
	 * XML, character references survive. */
	CHECK(round_trip("<a v='1\t2\n3' w='1&#9;2&#10;3&#13;'/>",
	    "<a v='1 2 3' w='1&#9;2&#10;3&#13;'/>"));
	/* CRLF in text is one LF (XML end-of-line handling). */
	CHECK(round_trip("<a>x\r\ny\rz</a>", "<a>x\ny\nz</a>"));
	/* A stanza without any namespace. */
	CHECK(round_trip("<a xmlns=''><b/></a>", "<a xmlns=''><b/></a>"));
	/* Prefixes on the stream root are in scope in stanzas. */
	CHECK(round_trip("<stream:features><x/></stream:features>",
	    "<features xmlns='http://etherx.jabber.org/streams'><x "
	    "xmlns='jabber:component:accept'/></features>"));
	/* Two attributes with the same local name in two namespaces. */
	CHECK(round_trip("<a xmlns:p='urn:p' xmlns:q='urn:q' p:n='1' q:n='2' n='3'/>",
	    "<a xmlns:ns0='urn:p' ns0:n='1' xmlns:ns1='urn:q' ns1:n='2' n='3'/>"));
	/* An element in the xml namespace keeps its prefix (found by the
	 * fuzzer: xmlns='http://www.w3.org/XML/1998/namespace' is illegal). */
	CHECK(round_trip("<xml:shake><x/><xml:y/></xml:shake>",
	    "<xml:shake><x/><xml:y/></xml:shake>"));
	/* Non-ASCII names and text. */
	CHECK(round_trip("<\xc3\xa9l \xc3\xa0='\xe2\x82\xac'>\xf0\x9f\x98\x80</\xc3\xa9l>",
	    NULL));
}

static void
test_xml_lang(void)
{
	struct stanza *st = parse_one("<message xml:lang='en-GB'><body "
	    "xml:lang='fr'>salut</body></message>");
	CHECK(st != NULL);
	if (st == NULL)
		return;
	CHECK_STR(stanza_attr(st, "xml:lang"), "en-GB");
	CHECK_STR(stanza_attr(stanza_child(st, "body", NULL), "xml:lang"), "fr");
	char *s = stanza_to_string(st);
	CHECK_STR(s, "<message xml:lang='en-GB'><body xml:lang='fr'>salut</body>"
	    "</message>");
	free(s);
	stanza_free(st);
}

static void
test_namespace_decls(void)
{
	struct stanza *st = parse_one("<iq xmlns='jabber:component:accept' "
	    "xmlns:foo='urn:foo' id='1'><query xmlns='jabber:iq:roster'>"
	    "<item xmlns='jabber:iq:roster' jid='a@b'/><foo:bar/></query></iq>");
	CHECK(st != NULL);
	if (st == NULL)
		return;
	const char *name, *value;
	CHECK(stanza_attr_at(st, 0, &name, &value) == 1);
	CHECK_STR(name, "id");
	CHECK(stanza_attr_at(st, 1, &name, &value) == 0);
	struct stanza *q = stanza_first_child(st);
	struct stanza *item = stanza_first_child(q);
	struct stanza *bar = stanza_next_sibling(item);
	CHECK_STR(stanza_ns(q), "jabber:iq:roster");
	CHECK_STR(stanza_ns(item), "jabber:iq:roster");
	CHECK_STR(stanza_ns(bar), "urn:foo");
	CHECK_STR(stanza_name(bar), "bar");
	char *s = stanza_to_string(st);
	CHECK_STR(s, "<iq id='1'><query xmlns='jabber:iq:roster'><item "
	    "jid='a@b'/><bar xmlns='urn:foo'/></query></iq>");
	free(s);
	stanza_free(st);
}

static void
test_text_merged(void)
{
	struct stanza *st = parse_one("<body>a&amp;b<![CDATA[<c>]]>d&#x263A;\n"
	    "e&lt;f\n\ng</body>");
	CHECK(st != NULL);
	if (st == NULL)
		return;
	char *t = stanza_text(st);
	CHECK_STR(t, "a&b<c>d\xe2\x98\xba\ne<f\n\ng");
	free(t);
	/* A copy duplicates text node by text node: the same bytes come out. */
	struct stanza *c = stanza_copy(st);
	char *s1 = stanza_to_string(st), *s2 = stanza_to_string(c);
	CHECK_STR(s2, s1);
	free(s1);
	free(s2);
	stanza_free(c);
	stanza_free(st);
}

static void
test_stop(void)
{
	struct sink s;
	sink_init(&s, 0, 0);
	s.stop_after = 1;
	CHECK(feed(&s, HEADER "<a/><b/><c/>") == -1);
	CHECK(s.n == 1);
	CHECK(xmlstream_error_condition(s.xs) == NULL);
	CHECK_STR(xmlstream_error_text(s.xs), "");
	CHECK(feed(&s, "<d/>") == -1);
	CHECK(s.n == 1);
	xmlstream_reset(s.xs);
	CHECK(good_stream_works(&s));
	sink_done(&s);

	/* From the open callback, with an empty element still pending. */
	sink_init(&s, 0, 0);
	s.stop_on_open = 1;
	CHECK(feed(&s, HEADER "<a/>") == -1);
	CHECK(s.opened == 1 && s.n == 0);
	sink_done(&s);

	/* Stopped inside an empty element's end: nothing more. */
	sink_init(&s, 0, 0);
	s.stop_after = 2;
	CHECK(feed(&s, HEADER "<a/><b/></stream:stream>") == -1);
	CHECK(s.n == 2 && s.closed == 0);
	sink_done(&s);
}

static void
test_no_callbacks(void)
{
	/* NULL callbacks are allowed: stanzas are freed. */
	static const struct xmlstream_callbacks none = { 0 };
	struct xmlstream *xs = xmlstream_new(&none, NULL, 0, 0);
	const char *in = HEADER "<message><body>x</body></message></stream:stream>";
	CHECK(xmlstream_feed(xs, in, strlen(in)) == 0);
	xmlstream_free(xs);
}

static void
test_whitespace_keepalive(void)
{
	/* A limit of 1 KB and 100 KB of keepalives: whitespace between
	 * stanzas does not add up. */
	struct sink s;
	sink_init(&s, 1024, 0);
	CHECK(feed(&s, HEADER) == 0);
	char spaces[101];
	memset(spaces, ' ', 100);
	spaces[100] = '\0';
	for (int i = 0; i < 1000; i++)
		CHECK(feed(&s, spaces) == 0);
	CHECK(feed(&s, "<message/>") == 0);
	CHECK(s.n == 1);
	for (int i = 0; i < 1000; i++)
		CHECK(feed(&s, "\n") == 0);
	CHECK(feed(&s, "<message/>") == 0);
	CHECK(s.n == 2);
	CHECK(xmlstream_error_condition(s.xs) == NULL);
	sink_done(&s);
}

static void
test_limit_exact(void)
{
	/* A stanza of exactly max bytes passes, one more byte does not. */
	const size_t max = 300;
	char buf[400];
	struct sink s;
	for (int extra = 0; extra <= 1; extra++) {
		size_t len = max + (size_t)extra;
		memcpy(buf, "<m>", 3);
		memset(buf + 3, 'x', len - 7);
		memcpy(buf + len - 4, "</m>", 4);
		buf[len] = '\0';
		CHECK(strlen(buf) == len);
		sink_init(&s, max, 0);
		CHECK(feed(&s, HEADER) == 0);
		for (int round = 0; round < 3; round++) {
			int r = feed(&s, buf);
			if (extra == 0) {
				CHECK(r == 0);
				CHECK(s.n == (size_t)round + 1);
			} else {
				CHECK(r == -1);
				CHECK_STR(xmlstream_error_condition(s.xs),
				    "policy-violation");
				CHECK(s.n == 0);
				break;
			}
		}
		sink_done(&s);
	}
	/* The stream header counts too. */
	sink_init(&s, strlen(HEADER) - 1, 0);
	CHECK(feed(&s, HEADER) == -1);
	CHECK_STR(xmlstream_error_condition(s.xs), "policy-violation");
	CHECK(s.opened == 0);
	sink_done(&s);
	sink_init(&s, strlen(HEADER), 0);
	CHECK(feed(&s, HEADER) == 0);
	CHECK(s.opened == 1);
	sink_done(&s);
}

static void
test_big_stanza_in_chunks(void)
{
	/* A 200 KB stanza fed in 4 KB slices comes out with the last slice,
	 * not when the peer sends something else (expat's reparse
	 * deferral must be off). */
	size_t len = 200 * 1024;
	char *buf = malloc(len + 1);
	memcpy(buf, "<message><body>", 15);
	memset(buf + 15, 'y', len - 15 - 17);
	memcpy(buf + len - 17, "</body></message>", 17);
	buf[len] = '\0';
	struct sink s;
	sink_init(&s, 0, 0);
	CHECK(feed(&s, HEADER) == 0);
	for (size_t off = 0; off < len; off += 4096) {
		CHECK(s.n == 0);
		size_t n = len - off < 4096 ? len - off : 4096;
		CHECK(xmlstream_feed(s.xs, buf + off, n) == 0);
	}
	CHECK(s.n == 1);
	if (s.n == 1) {
		char *t = stanza_child_text(s.st[0], "body");
		CHECK(t != NULL && strlen(t) == len - 32);
		free(t);
	}
	sink_done(&s);
	free(buf);
}

static void
test_depth_limit_exact(void)
{
	/* max_depth 5: a stanza with four levels below it passes. */
	struct sink s;
	sink_init(&s, 0, 5);
	CHECK(feed(&s, HEADER "<a><b><c><d><e/></d></c></b></a>") == 0);
	CHECK(s.n == 1);
	sink_done(&s);
	const char *deep = "<a><b><c><d><e><f/></e></d></c></b></a>";
	CHECK(bad_stream(HEADER, deep, strlen(deep), strlen(deep),
	    "policy-violation", 0, 5));
}

/* ---- hostile input: one test each ---- */

static void
test_bad_garbage(void)
{
	CHECK(bad(NULL, "\x01\x02garbage<<<>>>", "not-well-formed"));
	CHECK(bad(NULL, "HTTP/1.1 200 OK\r\n\r\n", "not-well-formed"));
	CHECK(bad(HEADER, "<message><<</message>", "not-well-formed"));
	CHECK(bad(HEADER, "<message></presence>", "not-well-formed"));
	CHECK(bad(HEADER, "<message a='1' a='2'/>", "not-well-formed"));
}

static void
test_bad_billion_laughs(void)
{
	const char *lol =
	    "<?xml version='1.0'?>"
	    "<!DOCTYPE stream:stream ["
	    "<!ENTITY lol 'lol'>"
	    "<!ENTITY lol1 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>"
	    "<!ENTITY lol2 '&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;'>"
	    "<!ENTITY lol3 '&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;'>"
	    "<!ENTITY lol4 '&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;'>"
	    "<!ENTITY lol5 '&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;'>"
	    "<!ENTITY lol6 '&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;'>"
	    "<!ENTITY lol7 '&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;'>"
	    "<!ENTITY lol8 '&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;'>"
	    "<!ENTITY lol9 '&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;'>"
	    "]>"
	    "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' "
	    "xmlns='jabber:component:accept'><message><body>&lol9;</body>"
	    "</message>";
	CHECK(bad(NULL, lol, "restricted-xml"));
	CHECK(bad_stream(NULL, lol, strlen(lol), 1, "restricted-xml", 0, 0));
}

static void
test_bad_entity_declaration(void)
{
	CHECK(bad(NULL, "<!DOCTYPE s [<!ENTITY x 'y'>]><stream:stream "
	    "xmlns:stream='http://etherx.jabber.org/streams'>", "restricted-xml"));
	/* Not even a DOCTYPE may come in the middle of a stream. */
	CHECK(bad(HEADER, "<!ENTITY x 'y'>", "not-well-formed"));
	CHECK(bad(HEADER, "<!DOCTYPE x>", "not-well-formed"));
}

static void
test_bad_external_entity(void)
{
	CHECK(bad(NULL, "<!DOCTYPE s SYSTEM 'file:///etc/passwd'><stream:stream "
	    "xmlns:stream='http://etherx.jabber.org/streams'>&e;",
	    "restricted-xml"));
	CHECK(bad(NULL, "<!DOCTYPE s [<!ENTITY e SYSTEM 'file:///etc/passwd'>]>"
	    "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>"
	    "<a>&e;</a>", "restricted-xml"));
}

static void
test_bad_undefined_entity(void)
{
	CHECK(bad(HEADER, "<message>&foo;</message>", "not-well-formed"));
	CHECK(bad(HEADER, "<message a='&foo;'/>", "not-well-formed"));
}

static void
test_bad_comment(void)
{
	CHECK(bad(HEADER, "<message><!-- hi --></message>", "restricted-xml"));
	CHECK(bad(HEADER, "<!-- between stanzas -->", "restricted-xml"));
	CHECK(bad(NULL, "<!-- before the root -->" HEADER, "restricted-xml"));
}

static void
test_bad_pi(void)
{
	CHECK(bad(HEADER, "<message><?php echo 1; ?></message>",
	    "restricted-xml"));
	CHECK(bad(HEADER, "<?foo?>", "restricted-xml"));
	CHECK(bad(NULL, "<?xml-stylesheet href='x'?>" HEADER, "restricted-xml"));
	/* An XML declaration anywhere but at the start is malformed. */
	CHECK(bad(HEADER, "<?xml version='1.0'?>", "not-well-formed"));
}

/*
 * A huge input fed in 4 KB slices must fail once the limit is crossed,
 * long before all of it has been accepted.
 */
static void
huge(const char *open, char fill, const char *what)
{
	const size_t total = 10 * 1024 * 1024, chunk = 4096;
	const size_t max = XMLSTREAM_DEFAULT_MAX_STANZA;
	char *buf = malloc(total);
	memset(buf, fill, total);
	memcpy(buf, open, strlen(open));
	struct sink s;
	sink_init(&s, 0, 0);
	CHECK(feed(&s, HEADER) == 0);
	size_t accepted = 0;
	int r = 0;
	for (size_t off = 0; off < total; off += chunk) {
		if ((r = xmlstream_feed(s.xs, buf + off, chunk)) != 0)
			break;
		accepted += chunk;
	}
	CHECK(r == -1);
	CHECK_STR(xmlstream_error_condition(s.xs), "policy-violation");
	CHECK(s.n == 0);
	/* At most the limit itself was accepted, never 1 MB beyond it. */
	CHECK(accepted <= max);
	CHECK(accepted + chunk > max);
	if (accepted > max)
		printf("#   %s: %zu bytes accepted\n", what, accepted);
	CHECK(feed(&s, "<a/>") == -1);
	xmlstream_reset(s.xs);
	CHECK(good_stream_works(&s));

	/* The same in a single feed call. */
	xmlstream_reset(s.xs);
	sink_clear(&s);
	CHECK(feed(&s, HEADER) == 0);
	CHECK(xmlstream_feed(s.xs, buf, total) == -1);
	CHECK_STR(xmlstream_error_condition(s.xs), "policy-violation");
	sink_done(&s);
	free(buf);
}

static void
test_bad_huge_text(void)
{
	huge("<message><body>", 'x', "text");
}

static void
test_bad_huge_attribute(void)
{
	huge("<message to='", 'x', "attribute");
}

static void
test_bad_huge_name(void)
{
	huge("<m", 'x', "element name");
}

static void
test_bad_huge_whitespace_in_tag(void)
{
	/* Whitespace inside a start tag is part of the stanza. */
	huge("<message ", ' ', "tag whitespace");
}

static void
test_bad_deep_nesting(void)
{
	size_t n = 10000;
	char *buf = malloc(3 * n + 1);
	for (size_t i = 0; i < n; i++)
		memcpy(buf + 3 * i, "<a>", 3);
	buf[3 * n] = '\0';
	CHECK(bad(HEADER, buf, "policy-violation"));
	CHECK(bad_stream(HEADER, buf, 3 * n, 7, "policy-violation", 0, 0));
	free(buf);
}

static void
test_bad_many_attributes(void)
{
	char buf[8192];
	size_t len = (size_t)snprintf(buf, sizeof(buf), "<message");
	for (int i = 0; i < 200; i++)
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, " a%d=''", i);
	snprintf(buf + len, sizeof(buf) - len, "/>");
	CHECK(bad(HEADER, buf, "policy-violation"));
}

static void
test_bad_utf8(void)
{
	CHECK(bad(HEADER, "<message><body>\xff</body></message>",
	    "not-well-formed"));
	CHECK(bad(HEADER, "<message><body>\xc3\x28</body></message>",
	    "not-well-formed"));
	/* Overlong '/'. */
	CHECK(bad(HEADER, "<message><body>\xc0\xaf</body></message>",
	    "not-well-formed"));
	/* Beyond U+10FFFF. */
	CHECK(bad(HEADER, "<message><body>\xf4\x90\x80\x80</body></message>",
	    "not-well-formed"));
	CHECK(bad(HEADER, "<message to='\xe9'/>", "not-well-formed"));
	CHECK(bad(HEADER, "<m\xe9ssage/>", "not-well-formed"));
	/* In the stream header, sliced byte by byte. */
	const char *h = "<stream:stream xmlns:stream='http://etherx.jabber.org/"
	    "streams' from='\xff'>";
	CHECK(bad_stream(NULL, h, strlen(h), 1, "not-well-formed", 0, 0));
}

static void
test_bad_surrogate(void)
{
	CHECK(bad(HEADER, "<message><body>\xed\xa0\x80</body></message>",
	    "not-well-formed"));
	CHECK(bad(HEADER, "<message><body>&#xD800;</body></message>",
	    "not-well-formed"));
}

static void
test_bad_control_chars(void)
{
	CHECK(bad(HEADER, "<message><body>\x01</body></message>",
	    "not-well-formed"));
	CHECK(bad(HEADER, "<message><body>&#1;</body></message>",
	    "not-well-formed"));
	CHECK(bad(HEADER, "<message><body>&#0;</body></message>",
	    "not-well-formed"));
	CHECK(bad(HEADER, "<message><body>\xef\xbf\xbf</body></message>",
	    "not-well-formed"));
	const char nul[] = "<message><body>\0</body></message>";
	CHECK(bad_stream(HEADER, nul, sizeof(nul) - 1, sizeof(nul) - 1,
	    "not-well-formed", 0, 0));
}

static void
test_bad_encoding(void)
{
	/* The declaration cannot switch the stream away from UTF-8. */
	CHECK(bad(NULL, "<?xml version='1.0' encoding='ISO-8859-1'?>"
	    "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>"
	    "<message><body>caf\xe9</body></message>", "not-well-formed"));
	/* UTF-16 with a byte order mark. */
	/* UTF-16 with a byte order mark, which expat would honour, and
	 * UTF-16BE without one. */
	const char utf16[] = "\xff\xfe<\0s\0";
	CHECK(bad_stream(NULL, utf16, sizeof(utf16) - 1, sizeof(utf16) - 1,
	    "unsupported-encoding", 0, 0));
	CHECK(bad_stream(NULL, utf16, sizeof(utf16) - 1, 1,
	    "unsupported-encoding", 0, 0));
	const char utf16be[] = "\0<\0s";
	CHECK(bad_stream(NULL, utf16be, sizeof(utf16be) - 1, 1,
	    "unsupported-encoding", 0, 0));
	/* A UTF-8 byte order mark is fine. */
	struct sink s;
	sink_init(&s, 0, 0);
	CHECK(feed(&s, "\xef\xbb\xbf" HEADER "<a/>") == 0);
	CHECK(s.n == 1);
	sink_done(&s);
}

static void
test_bad_root(void)
{
	CHECK(bad(NULL, "<message xmlns='jabber:component:accept'/>",
	    "invalid-namespace"));
	CHECK(bad(NULL, "<stream:stream xmlns:stream='jabber:client'>",
	    "invalid-namespace"));
	CHECK(bad(NULL, "<stream>", "invalid-namespace"));
	CHECK(bad(NULL, "<stream:features xmlns:stream="
	    "'http://etherx.jabber.org/streams'>", "bad-format"));
	/* Unbound stream prefix. */
	CHECK(bad(NULL, "<stream:stream xmlns='jabber:component:accept'>",
	    "not-well-formed"));
}

static void
test_bad_text_after_close(void)
{
	CHECK(bad(HEADER, "<message/></stream:stream>trailing text",
	    "not-well-formed"));
	CHECK(bad(HEADER, "</stream:stream><message/>", "not-well-formed"));
	CHECK(bad(HEADER, "</stream:stream>" HEADER, "not-well-formed"));
}

static void
test_bad_text_between_stanzas(void)
{
	CHECK(bad(HEADER, "<message/>hello<message/>", "bad-format"));
	CHECK(bad(HEADER, "&amp;", "bad-format"));
}

static void
test_bad_unbound_prefix(void)
{
	CHECK(bad(HEADER, "<foo:message/>", "not-well-formed"));
	CHECK(bad(HEADER, "<message foo:a='1'/>", "not-well-formed"));
	CHECK(bad(HEADER, "<message><body><x:y/></body></message>",
	    "not-well-formed"));
	/* Binding a prefix to the xml namespace is not allowed either. */
	CHECK(bad(HEADER, "<message xmlns:x='http://www.w3.org/XML/1998/"
	    "namespace'/>", "not-well-formed"));
}

static void
test_reset_mid_stanza(void)
{
	/* A reset in the middle of a stanza forgets the partial tree. */
	struct sink s;
	sink_init(&s, 0, 0);
	CHECK(feed(&s, HEADER "<message><body>half") == 0);
	xmlstream_reset(s.xs);
	CHECK(good_stream_works(&s));
	/* Freeing mid-stanza does not leak (checked under ASan). */
	CHECK(feed(&s, "<message><body>half") == 0);
	sink_done(&s);
}

/* jabberd2 routes stanzas to a component in jabber:client: they are taken
 * in the stream's namespace (children too), answers serialize without
 * an xmlns, and a payload in its own namespace keeps it. */
static void
test_content_namespace_alias(void)
{
	struct stanza *st = parse_one("<iq xmlns='jabber:client' type='get' "
	    "id='1' to='gw' from='a@b/c'><query "
	    "xmlns='http://jabber.org/protocol/disco#info'/></iq>");
	CHECK(st != NULL);
	if (st == NULL)
		return;
	CHECK_STR(stanza_ns(st), NS_COMPONENT);
	char *xml = stanza_to_string(st);
	CHECK_STR(xml, "<iq type='get' id='1' to='gw' from='a@b/c'><query "
	    "xmlns='http://jabber.org/protocol/disco#info'/></iq>");
	free(xml);
	struct stanza *reply = stanza_reply(st, "result");
	CHECK_STR(stanza_ns(reply), NS_COMPONENT);
	stanza_free(reply);
	stanza_free(st);

	st = parse_one("<message xmlns='jabber:server' to='gw' from='a@b'>"
	    "<body>hi</body><x xmlns='jabber:client'/></message>");
	CHECK(st != NULL);
	if (st == NULL)
		return;
	CHECK_STR(stanza_ns(st), NS_COMPONENT);
	CHECK(stanza_child(st, "body", NS_COMPONENT) != NULL);
	CHECK(stanza_child(st, "x", "jabber:client") != NULL);
	stanza_free(st);
	/* Another namespace is not a stanza of this stream. */
	st = parse_one("<iq xmlns='jabber:other' to='gw'/>");
	CHECK(st != NULL && strcmp(stanza_ns(st), "jabber:other") == 0);
	stanza_free(st);
}

int
main(void)
{
	RUN(test_one_chunk);
	RUN(test_byte_by_byte);
	RUN(test_stream_close);
	RUN(test_stream_error_stanza);
	RUN(test_round_trip);
	RUN(test_xml_lang);
	RUN(test_namespace_decls);
	RUN(test_text_merged);
	RUN(test_stop);
	RUN(test_no_callbacks);
	RUN(test_whitespace_keepalive);
	RUN(test_limit_exact);
	RUN(test_big_stanza_in_chunks);
	RUN(test_depth_limit_exact);
	RUN(test_reset_mid_stanza);
	RUN(test_bad_garbage);
	RUN(test_bad_billion_laughs);
	RUN(test_bad_entity_declaration);
	RUN(test_bad_external_entity);
	RUN(test_bad_undefined_entity);
	RUN(test_bad_comment);
	RUN(test_bad_pi);
	RUN(test_bad_huge_text);
	RUN(test_bad_huge_attribute);
	RUN(test_bad_huge_name);
	RUN(test_bad_huge_whitespace_in_tag);
	RUN(test_bad_deep_nesting);
	RUN(test_bad_many_attributes);
	RUN(test_bad_utf8);
	RUN(test_bad_surrogate);
	RUN(test_bad_control_chars);
	RUN(test_bad_encoding);
	RUN(test_bad_root);
	RUN(test_bad_text_after_close);
	RUN(test_bad_text_between_stanzas);
	RUN(test_bad_unbound_prefix);
	RUN(test_content_namespace_alias);
	return TAP_DONE();
}
