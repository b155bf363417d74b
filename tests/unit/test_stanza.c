/*
 * Unit tests of the element tree: building, attributes, text, namespaces,
 * serialization and escaping, copies, detaching, replies.  Round trips
 * through the parser are in test_xmlstream.c.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "log.h"
#include "stanza.h"
#include "tap.h"

/* Serializes st and compares with the expected text. */
#define CHECK_XML(st, expected) do { \
	char *xml_ = stanza_to_string(st); \
	CHECK_STR(xml_, expected); \
	free(xml_); \
} while (0)

static void
test_build_serialize(void)
{
	struct stanza *m = stanza_new("message", NS_COMPONENT);
	stanza_set_attr(m, "to", "juliet@capulet.example");
	stanza_set_attr(m, "from", "romeo@irc.example.org");
	stanza_set_attr(m, "type", "chat");
	stanza_new_text_child(m, "body", "Wherefore art thou?");
	stanza_new_child(m, "active", "http://jabber.org/protocol/chatstates");
	CHECK_XML(m, "<message to='juliet@capulet.example' "
	    "from='romeo@irc.example.org' type='chat'>"
	    "<body>Wherefore art thou?</body>"
	    "<active xmlns='http://jabber.org/protocol/chatstates'/></message>");
	CHECK_STR(stanza_name(m), "message");
	CHECK_STR(stanza_ns(m), NS_COMPONENT);
	stanza_free(m);
}

static void
test_serialize_evbuffer(void)
{
	struct stanza *p = stanza_new("presence", NULL);
	stanza_set_attr(p, "to", "a@b");
	struct evbuffer *buf = evbuffer_new();
	evbuffer_add(buf, "X", 1);
	stanza_serialize(p, NS_COMPONENT, buf);
	stanza_serialize(p, NS_COMPONENT, buf);
	size_t n = evbuffer_get_length(buf);
	char *s = calloc(1, n + 1);
	evbuffer_remove(buf, s, n);
	CHECK_STR(s, "X<presence to='a@b'/><presence to='a@b'/>");
	free(s);

	/* A big stanza takes the zero-copy path; the bytes must be the same. */
	struct stanza *big = stanza_new("message", NS_COMPONENT);
	char *text = malloc(100000);
	memset(text, 'x', 100000);
	stanza_add_text(stanza_new_child(big, "body", NULL), text, 100000);
	char *expect = stanza_to_string(big);
	stanza_serialize(big, NS_COMPONENT, buf);
	n = evbuffer_get_length(buf);
	CHECK(n == strlen(expect));
	s = calloc(1, n + 1);
	evbuffer_remove(buf, s, n);
	CHECK(strcmp(s, expect) == 0);
	free(s);
	free(expect);
	free(text);
	stanza_free(big);
	evbuffer_free(buf);
	stanza_free(p);
}

static void
test_escape_text(void)
{
	struct stanza *b = stanza_new("body", NS_COMPONENT);
	const char *t = "a&b<c>d\"e'f &amp; ]]>";
	stanza_add_text(b, t, strlen(t));
	CHECK_XML(b, "<body>a&amp;b&lt;c&gt;d&quot;e&apos;f &amp;amp; ]]&gt;"
	    "</body>");
	char *back = stanza_text(b);
	CHECK_STR(back, t);
	free(back);
	stanza_free(b);
}

static void
test_escape_attr(void)
{
	struct stanza *b = stanza_new("x", NS_COMPONENT);
	stanza_set_attr(b, "a", "1&2<3>4\"5'6");
	stanza_set_attr(b, "ws", "t\tn\nr\r");
	CHECK_XML(b, "<x a='1&amp;2&lt;3&gt;4&quot;5&apos;6' "
	    "ws='t&#9;n&#10;r&#13;'/>");
	CHECK_STR(stanza_attr(b, "a"), "1&2<3>4\"5'6");
	stanza_free(b);
}

static void
test_controls_dropped(void)
{
	struct stanza *b = stanza_new("body", NS_COMPONENT);
	const char t[] = "a\x01" "b\x1f" "c\td\ne\rf\x00g\x0b" "h";
	stanza_add_text(b, t, sizeof(t) - 1);
	stanza_set_attr(b, "v", "1\x02" "2\x7f" "3");
	/* TAB and LF stay in text, CR is kept as a reference, DEL is a
	 * legal XML character. */
	CHECK_XML(b, "<body v='12\x7f" "3'>abc\td\ne&#13;fgh</body>");
	stanza_free(b);
}

static void
test_invalid_utf8(void)
{
	struct stanza *b = stanza_new("body", NS_COMPONENT);
	/* Latin-1 e-acute, a UTF-8 surrogate, an overlong '/', U+FFFE, a
	 * truncated sequence at the end; valid é, € and U+1F600 stay. */
	const char t[] = "caf\xe9 \xed\xa0\x80 \xc0\xaf \xef\xbf\xbe "
	    "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 \xe2\x82";
	stanza_add_text(b, t, sizeof(t) - 1);
	CHECK_XML(b, "<body>caf\xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
	    " \xef\xbf\xbd\xef\xbf\xbd  \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 "
	    "\xef\xbf\xbd\xef\xbf\xbd</body>");
	stanza_free(b);
}

static void
test_namespaces(void)
{
	struct stanza *iq = stanza_new("iq", NS_COMPONENT);
	struct stanza *q = stanza_new_child(iq, "query",
	    "http://jabber.org/protocol/disco#info");
	struct stanza *f = stanza_new_child(q, "feature", NULL);
	struct stanza *same = stanza_new_child(q, "identity",
	    "http://jabber.org/protocol/disco#info");
	struct stanza *none = stanza_new_child(q, "plain", "");
	struct stanza *under_none = stanza_new_child(none, "kid", NULL);
	CHECK_STR(stanza_ns(f), "http://jabber.org/protocol/disco#info");
	CHECK_STR(stanza_ns(same), "http://jabber.org/protocol/disco#info");
	CHECK(stanza_ns(none) == NULL);
	CHECK(stanza_ns(under_none) == NULL);
	CHECK(stanza_parent(f) == q);
	CHECK_XML(iq, "<iq><query xmlns='http://jabber.org/protocol/disco#info'>"
	    "<feature/><identity/><plain xmlns=''><kid/></plain></query></iq>");

	/* The context namespace decides whether the root needs xmlns. */
	struct evbuffer *buf = evbuffer_new();
	stanza_serialize(iq, "jabber:client", buf);
	stanza_serialize(q, "http://jabber.org/protocol/disco#info", buf);
	stanza_serialize(f, NULL, buf);
	size_t n = evbuffer_get_length(buf);
	char *s = calloc(1, n + 1);
	evbuffer_remove(buf, s, n);
	CHECK_STR(s, "<iq xmlns='jabber:component:accept'><query "
	    "xmlns='http://jabber.org/protocol/disco#info'><feature/><identity/>"
	    "<plain xmlns=''><kid/></plain></query></iq>"
	    "<query><feature/><identity/><plain xmlns=''><kid/></plain></query>"
	    "<feature xmlns='http://jabber.org/protocol/disco#info'/>");
	free(s);
	evbuffer_free(buf);

	/* No namespace anywhere: written in the context's. */
	struct stanza *bare = stanza_new("presence", NULL);
	CHECK(stanza_ns(bare) == NULL);
	CHECK_XML(bare, "<presence/>");
	stanza_free(bare);
	stanza_free(iq);
}

static void
test_prefixed_attrs(void)
{
	struct stanza *x = stanza_new("x", NS_COMPONENT);
	stanza_set_attr(x, "urn:a|one", "1");
	stanza_set_attr(x, "plain", "p");
	stanza_set_attr(x, "urn:b|two", "2");
	stanza_set_attr(x, "xml:lang", "en");
	struct stanza *c = stanza_new_child(x, "c", NULL);
	stanza_set_attr(c, "urn:a|one", "3");
	/* Not writable: declarations and unbound prefixes. */
	stanza_set_attr(c, "xmlns", "urn:evil");
	stanza_set_attr(c, "xmlns:foo", "urn:evil");
	stanza_set_attr(c, "foo:bar", "x");
	log_set_level(LOG_LEVEL_ERROR);	/* the skipped name is logged */
	char *xml = stanza_to_string(x);
	log_set_level(LOG_LEVEL_INFO);
	CHECK_STR(xml, "<x xmlns:ns0='urn:a' ns0:one='1' plain='p' "
	    "xmlns:ns1='urn:b' ns1:two='2' xml:lang='en'>"
	    "<c xmlns:ns0='urn:a' ns0:one='3'/></x>");
	free(xml);
	stanza_free(x);
}

static void
test_xml_lang(void)
{
	struct stanza *m = stanza_new("message", NS_COMPONENT);
	stanza_set_attr(m, "xml:lang", "de");
	CHECK_STR(stanza_attr(m, "xml:lang"), "de");
	CHECK_XML(m, "<message xml:lang='de'/>");
	stanza_free(m);
}

static void
test_attrs(void)
{
	struct stanza *x = stanza_new("x", NULL);
	const char *name, *value;
	CHECK(stanza_attr(x, "a") == NULL);
	CHECK(stanza_attr_at(x, 0, &name, &value) == 0);
	stanza_set_attr(x, "a", "1");
	stanza_set_attr(x, "b", "2");
	stanza_set_attr(x, "c", "3");
	stanza_set_attr(x, "b", "two");	/* replaced in place */
	stanza_set_attr(x, "a", NULL);	/* removed */
	stanza_set_attr(x, "zz", NULL);	/* removing nothing is fine */
	stanza_set_attr(x, "d", "");
	CHECK(stanza_attr(x, "a") == NULL);
	CHECK_STR(stanza_attr(x, "b"), "two");
	CHECK_STR(stanza_attr(x, "d"), "");
	const char *want[][2] = { { "b", "two" }, { "c", "3" }, { "d", "" } };
	size_t i;
	for (i = 0; stanza_attr_at(x, i, &name, &value); i++) {
		CHECK(i < 3);
		if (i < 3) {
			CHECK_STR(name, want[i][0]);
			CHECK_STR(value, want[i][1]);
		}
	}
	CHECK(i == 3);
	/* Many attributes: growth keeps all of them. */
	char n[16];
	for (int k = 0; k < 1000; k++) {
		snprintf(n, sizeof(n), "k%d", k);
		stanza_set_attr(x, n, n);
	}
	CHECK_STR(stanza_attr(x, "k999"), "k999");
	CHECK_STR(stanza_attr(x, "k0"), "k0");
	stanza_free(x);
}

static void
test_text(void)
{
	struct stanza *b = stanza_new("body", NULL);
	char *t = stanza_text(b);
	CHECK_STR(t, "");
	free(t);
	stanza_add_text(b, "hello", 3);	/* not NUL-terminated use */
	stanza_add_text(b, "", 0);
	stanza_add_text(b, "p, world", 8);
	stanza_new_child(b, "br", NULL);
	stanza_add_text(b, "!", 1);
	t = stanza_text(b);
	CHECK_STR(t, "help, world!");
	free(t);
	CHECK_XML(b, "<body>help, world<br/>!</body>");

	struct stanza *m = stanza_new("message", NULL);
	stanza_new_text_child(m, "subject", "S");
	stanza_new_text_child(m, "body", NULL);
	struct stanza *c = stanza_new_child(m, "body", "urn:other");
	stanza_add_text(c, "other", 5);
	t = stanza_child_text(m, "subject");
	CHECK_STR(t, "S");
	free(t);
	t = stanza_child_text(m, "body");
	CHECK_STR(t, "");
	free(t);
	CHECK(stanza_child_text(m, "thread") == NULL);
	stanza_free(m);

	/* Appending a megabyte one byte at a time stays linear. */
	for (int i = 0; i < 1 << 20; i++)
		stanza_add_text(b, "x", 1);
	t = stanza_text(b);
	CHECK(strlen(t) == 12 + (1 << 20));
	free(t);
	stanza_free(b);
}

static void
test_children(void)
{
	struct stanza *m = stanza_new("message", NS_COMPONENT);
	stanza_add_text(m, " ", 1);
	struct stanza *a = stanza_new_child(m, "body", NULL);
	stanza_add_text(m, " ", 1);
	struct stanza *b = stanza_new_child(m, "x", "jabber:x:oob");
	struct stanza *c = stanza_add_child(m, stanza_new("x", "urn:xmpp:delay"));
	stanza_add_text(m, " ", 1);

	CHECK(stanza_first_child(m) == a);
	CHECK(stanza_next_sibling(a) == b);
	CHECK(stanza_next_sibling(b) == c);
	CHECK(stanza_next_sibling(c) == NULL);
	CHECK(stanza_first_child(a) == NULL);
	CHECK(stanza_child(m, "x", NULL) == b);
	CHECK(stanza_child(m, "x", "urn:xmpp:delay") == c);
	CHECK(stanza_child(m, NULL, "urn:xmpp:delay") == c);
	CHECK(stanza_child(m, "body", NS_COMPONENT) == a);
	CHECK(stanza_child(m, "body", "jabber:client") == NULL);
	CHECK(stanza_child(m, NULL, NULL) == a);
	CHECK(stanza_child(m, "none", NULL) == NULL);
	stanza_free(m);
}

static void
test_remove_child(void)
{
	struct stanza *m = stanza_new("message", NS_COMPONENT);
	struct stanza *a = stanza_new_child(m, "a", NULL);
	struct stanza *b = stanza_new_child(m, "b", NULL);
	struct stanza *c = stanza_new_child(m, "c", NULL);
	stanza_new_text_child(b, "inner", "t");

	stanza_remove_child(m, b);
	CHECK(stanza_parent(b) == NULL);
	CHECK(stanza_next_sibling(a) == c);
	CHECK(stanza_next_sibling(b) == NULL);
	/* The detached child keeps the namespace it inherited. */
	CHECK_STR(stanza_ns(b), NS_COMPONENT);
	CHECK_XML(m, "<message><a/><c/></message>");
	CHECK_XML(b, "<b><inner>t</inner></b>");

	/* Removing first and last, then re-adding elsewhere. */
	stanza_remove_child(m, a);
	stanza_remove_child(m, c);
	CHECK(stanza_first_child(m) == NULL);
	CHECK_XML(m, "<message/>");
	stanza_add_child(m, c);
	stanza_add_child(m, a);
	CHECK_XML(m, "<message><c/><a/></message>");

	/* Not a child: refused, nothing changes. */
	log_set_level(LOG_LEVEL_ERROR);
	stanza_remove_child(b, a);
	log_set_level(LOG_LEVEL_INFO);
	CHECK(stanza_parent(a) == m);

	struct stanza *f = stanza_new("foreign", "urn:x");
	stanza_add_child(f, b);
	CHECK_XML(f, "<foreign xmlns='urn:x'><b xmlns='jabber:component:accept'>"
	    "<inner>t</inner></b></foreign>");
	stanza_free(f);
	stanza_free(m);
}

static void
test_copy(void)
{
	struct stanza *m = stanza_new("message", NS_COMPONENT);
	stanza_set_attr(m, "id", "1");
	stanza_set_attr(m, "urn:a|b", "c");
	struct stanza *x = stanza_new_child(m, "x", "urn:x");
	struct stanza *item = stanza_new_child(x, "item", NULL);
	stanza_set_attr(item, "jid", "a@b");
	stanza_add_text(item, "t<", 2);
	stanza_add_text(m, "tail", 4);

	struct stanza *c = stanza_copy(m);
	char *s1 = stanza_to_string(m), *s2 = stanza_to_string(c);
	CHECK_STR(s2, s1);
	free(s1);
	free(s2);
	CHECK(stanza_parent(c) == NULL);

	/* Independent of the original. */
	stanza_set_attr(c, "id", "2");
	stanza_set_attr(stanza_first_child(stanza_first_child(c)), "jid", "x");
	CHECK_STR(stanza_attr(m, "id"), "1");
	CHECK_STR(stanza_attr(item, "jid"), "a@b");

	/* A copy of an inner node keeps its resolved namespace. */
	struct stanza *ic = stanza_copy(item);
	CHECK_STR(stanza_ns(ic), "urn:x");
	CHECK_XML(ic, "<item xmlns='urn:x' jid='a@b'>t&lt;</item>");
	stanza_free(ic);
	stanza_free(c);
	stanza_free(m);
}

static void
test_reply(void)
{
	struct stanza *iq = stanza_new("iq", NS_COMPONENT);
	stanza_set_attr(iq, "from", "juliet@example.com/balcony");
	stanza_set_attr(iq, "to", "irc.example.org");
	stanza_set_attr(iq, "id", "v1");
	stanza_set_attr(iq, "type", "get");
	stanza_new_child(iq, "query", "jabber:iq:version");

	struct stanza *r = stanza_reply(iq, "result");
	CHECK_STR(stanza_name(r), "iq");
	CHECK_STR(stanza_ns(r), NS_COMPONENT);
	CHECK_STR(stanza_attr(r, "to"), "juliet@example.com/balcony");
	CHECK_STR(stanza_attr(r, "from"), "irc.example.org");
	CHECK_STR(stanza_attr(r, "id"), "v1");
	CHECK_STR(stanza_attr(r, "type"), "result");
	CHECK(stanza_first_child(r) == NULL);
	stanza_free(r);

	r = stanza_reply(iq, NULL);
	CHECK(stanza_attr(r, "type") == NULL);
	stanza_free(r);

	/* No id, no from: nothing invented. */
	struct stanza *m = stanza_new("message", NS_COMPONENT);
	stanza_set_attr(m, "to", "x@irc.example.org");
	r = stanza_reply(m, "chat");
	CHECK(stanza_attr(r, "id") == NULL);
	CHECK(stanza_attr(r, "to") == NULL);
	CHECK_STR(stanza_attr(r, "from"), "x@irc.example.org");
	stanza_free(r);
	stanza_free(m);
	stanza_free(iq);
}

static void
test_error_reply(void)
{
	struct stanza *iq = stanza_new("iq", NS_COMPONENT);
	stanza_set_attr(iq, "from", "juliet@example.com/balcony");
	stanza_set_attr(iq, "to", "irc.example.org");
	stanza_set_attr(iq, "id", "e1");
	stanza_set_attr(iq, "type", "set");

	struct stanza *r = stanza_error_reply(iq, "service-unavailable",
	    "No such <thing> & more");
	CHECK_STR(stanza_attr(r, "type"), "error");
	CHECK_STR(stanza_attr(r, "to"), "juliet@example.com/balcony");
	CHECK_STR(stanza_attr(r, "from"), "irc.example.org");
	CHECK_STR(stanza_attr(r, "id"), "e1");
	struct stanza *e = stanza_child(r, "error", NS_COMPONENT);
	CHECK(e != NULL);
	if (e != NULL) {
		CHECK_STR(stanza_attr(e, "type"), "cancel");
		CHECK(stanza_child(e, "service-unavailable", NS_STANZAS) != NULL);
		char *t = stanza_child_text(e, "text");
		CHECK_STR(t, "No such <thing> & more");
		free(t);
	}
	CHECK_XML(r, "<iq to='juliet@example.com/balcony' from='irc.example.org' "
	    "id='e1' type='error'><error type='cancel'><service-unavailable "
	    "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text "
	    "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>No such &lt;thing&gt; "
	    "&amp; more</text></error></iq>");
	stanza_free(r);

	/* No text: no <text/>. */
	r = stanza_error_reply(iq, "resource-constraint", NULL);
	e = stanza_child(r, "error", NULL);
	CHECK(e != NULL);
	if (e != NULL) {
		CHECK_STR(stanza_attr(e, "type"), "wait");
		CHECK(stanza_child(e, "text", NULL) == NULL);
	}
	stanza_free(r);

	/* A made-up condition becomes undefined-condition. */
	log_set_level(LOG_LEVEL_ERROR);
	r = stanza_error_reply(iq, "no-such-condition", "x");
	log_set_level(LOG_LEVEL_INFO);
	e = stanza_child(r, "error", NULL);
	CHECK(e != NULL);
	if (e != NULL) {
		CHECK_STR(stanza_attr(e, "type"), "cancel");
		CHECK(stanza_child(e, "undefined-condition", NS_STANZAS) != NULL);
	}
	stanza_free(r);
	stanza_free(iq);
}

static void
test_error_types(void)
{
	static const char *const table[][2] = {
		{ "bad-request", "modify" },
		{ "conflict", "cancel" },
		{ "feature-not-implemented", "cancel" },
		{ "forbidden", "auth" },
		{ "gone", "cancel" },
		{ "internal-server-error", "cancel" },
		{ "item-not-found", "cancel" },
		{ "jid-malformed", "modify" },
		{ "not-acceptable", "modify" },
		{ "not-allowed", "cancel" },
		{ "not-authorized", "auth" },
		{ "payment-required", "auth" },
		{ "policy-violation", "modify" },
		{ "recipient-unavailable", "wait" },
		{ "redirect", "modify" },
		{ "registration-required", "auth" },
		{ "remote-server-not-found", "cancel" },
		{ "remote-server-timeout", "wait" },
		{ "resource-constraint", "wait" },
		{ "service-unavailable", "cancel" },
		{ "subscription-required", "auth" },
		{ "undefined-condition", "cancel" },
		{ "unexpected-request", "wait" },
	};
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		CHECK_STR(stanza_error_type(table[i][0]), table[i][1]);
	CHECK(stanza_error_type("not-a-condition") == NULL);
	CHECK(stanza_error_type("") == NULL);
	CHECK(stanza_error_type(NULL) == NULL);
}

static void
test_deep_tree(void)
{
	/* Freeing is iterative: a very deep tree built by code must not
	 * exhaust the stack. */
	struct stanza *root = stanza_new("a", NULL), *n = root;
	for (int i = 0; i < 200000; i++)
		n = stanza_new_child(n, "a", NULL);
	stanza_free(root);
	CHECK(1);
}

int
main(void)
{
	RUN(test_build_serialize);
	RUN(test_serialize_evbuffer);
	RUN(test_escape_text);
	RUN(test_escape_attr);
	RUN(test_controls_dropped);
	RUN(test_invalid_utf8);
	RUN(test_namespaces);
	RUN(test_prefixed_attrs);
	RUN(test_xml_lang);
	RUN(test_attrs);
	RUN(test_text);
	RUN(test_children);
	RUN(test_remove_child);
	RUN(test_copy);
	RUN(test_reply);
	RUN(test_error_reply);
	RUN(test_error_types);
	RUN(test_deep_tree);
	return TAP_DONE();
}
