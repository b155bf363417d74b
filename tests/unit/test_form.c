/*
 * Unit tests of data forms: the XML form_build() writes for every field
 * type, parsing submissions (built with the stanza API and parsed from
 * text), and every way a submission can be refused, each in its own
 * test, with the error naming the field and never quoting the value.
 */
#include "autoconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "form.h"
#include "log.h"
#include "stanza.h"
#include "tap.h"
#include "xmlstream.h"

#define FT "urn:example:causeway:register"

#define STREAM_HEADER "<stream:stream xmlns='jabber:component:accept' " \
	"xmlns:stream='http://etherx.jabber.org/streams'>"

#define CHECK_XML(st, expected) do { \
	char *xml_ = stanza_to_string(st); \
	CHECK_STR(xml_, expected); \
	free(xml_); \
} while (0)

#define CHECK_HAS(s, sub) do { \
	const char *h_ = (s); \
	if (h_ == NULL || strstr(h_, sub) == NULL) { \
		tap_current_failed = 1; \
		printf("#   %s:%d: \"%s\" does not contain \"%s\"\n", \
		    __FILE__, __LINE__, h_ ? h_ : "(null)", sub); \
	} \
} while (0)

static const char *const networks[] = { "libera", "oftc", NULL };
static const char *const chans[] = { "#a", "#b", "#c", NULL };

/* The table the validation tests check submissions against. */
static const struct form_field_spec specs[] = {
	{ .var = "username", .type = FIELD_TEXT_SINGLE, .label = "User name",
	    .required = 1 },
	{ .var = "password", .type = FIELD_TEXT_PRIVATE, .label = "Password",
	    .required = 1, .secret = 1 },
	{ .var = "nick", .type = FIELD_TEXT_SINGLE, .label = "Nickname",
	    .max_len = 9 },
	{ .var = "tls", .type = FIELD_BOOLEAN, .label = "Use TLS" },
	{ .var = "network", .type = FIELD_LIST_SINGLE, .label = "Network",
	    .options = networks },
	{ .var = "channels", .type = FIELD_LIST_MULTI, .options = chans },
	{ .var = "owner", .type = FIELD_JID_SINGLE, .label = "Owner" },
	{ .var = "notes", .type = FIELD_TEXT_MULTI, .label = "Notes" },
	{ .var = NULL, .type = FIELD_FIXED, .def = "Connection" },
	{ .var = "session", .type = FIELD_HIDDEN },
};
#define NSPECS (sizeof(specs) / sizeof(specs[0]))

/* Adds <field var=var><value/>...</field>; values end with NULL. */
static struct stanza *
add_field(struct stanza *x, const char *var, ...)
{
	struct stanza *field = stanza_new_child(x, "field", NULL);
	if (var != NULL)
		stanza_set_attr(field, "var", var);
	va_list ap;
	va_start(ap, var);
	const char *v;
	while ((v = va_arg(ap, const char *)) != NULL)
		stanza_new_text_child(field, "value", v);
	va_end(ap);
	return field;
}

static struct stanza *
new_x(const char *type)
{
	struct stanza *x = stanza_new("x", NS_DATA);
	if (type != NULL)
		stanza_set_attr(x, "type", type);
	return x;
}

/* A submission that passes validation against specs. */
static struct stanza *
good_submission(void)
{
	struct stanza *x = new_x("submit");
	add_field(x, "FORM_TYPE", FT, NULL);
	add_field(x, "username", "alice", NULL);
	add_field(x, "password", "hunter2", NULL);
	return x;
}

/* Parses x (and frees it); the parse must succeed. */
static struct form *
parse_ok(struct stanza *x)
{
	struct form *f = (struct form *)1;
	char *err = (char *)1;
	int rc = form_parse(x, &f, &err);
	CHECK(rc == 0);
	CHECK(err == NULL);
	if (rc != 0) {
		printf("#   parse error: %s\n", err);
		free(err);
		f = NULL;
	}
	stanza_free(x);
	return f;
}

/* Parses x (and frees it); the parse must fail with an error holding
 * each of the NULL-terminated substrings. */
static void
parse_fails(struct stanza *x, ...)
{
	struct form *f = (struct form *)1;
	char *err = NULL;
	CHECK(form_parse(x, &f, &err) == -1);
	CHECK(f == NULL);
	CHECK(err != NULL);
	va_list ap;
	va_start(ap, x);
	const char *sub;
	while ((sub = va_arg(ap, const char *)) != NULL)
		CHECK_HAS(err, sub);
	va_end(ap);
	free(err);
	stanza_free(x);
}

/* Parses x (and frees it) and validates against specs: it must fail on
 * field var with a text holding name and not holding secret. */
static void
validate_fails(struct stanza *x, const char *var, const char *name,
    const char *secret)
{
	struct form *f = parse_ok(x);
	if (f == NULL)
		return;
	const char *bad = NULL;
	char *text = NULL;
	CHECK(form_validate(f, FT, specs, NSPECS, &bad, &text) == -1);
	CHECK_STR(bad, var);
	CHECK_HAS(text, name);
	if (secret != NULL && text != NULL)
		CHECK(strstr(text, secret) == NULL);
	free(text);
	form_free(f);
}

static void
validate_passes(struct stanza *x)
{
	struct form *f = parse_ok(x);
	if (f == NULL)
		return;
	const char *bad = (const char *)1;
	char *text = (char *)1;
	CHECK(form_validate(f, FT, specs, NSPECS, &bad, &text) == 0);
	CHECK(bad == NULL);
	CHECK(text == NULL);
	form_free(f);
}

/* ---- building ---- */

static void
test_build_every_type(void)
{
	static const char *const nets[] = { "libera", "oftc", NULL };
	static const char *const cs[] = { "#a", "#b", NULL };
	static const struct form_field_spec s[] = {
		{ .var = "username", .type = FIELD_TEXT_SINGLE,
		    .label = "User name", .desc = "Your login", .required = 1 },
		{ .var = "password", .type = FIELD_TEXT_PRIVATE,
		    .label = "Password", .required = 1, .secret = 1 },
		{ .var = "notes", .type = FIELD_TEXT_MULTI, .label = "Notes",
		    .def = "line one\r\nline two" },
		{ .var = "tls", .type = FIELD_BOOLEAN, .label = "Use TLS",
		    .def = "1" },
		{ .var = "network", .type = FIELD_LIST_SINGLE,
		    .label = "Network", .options = nets, .def = "libera" },
		{ .var = "channels", .type = FIELD_LIST_MULTI,
		    .label = "Channels", .options = cs },
		{ .var = "owner", .type = FIELD_JID_SINGLE, .label = "Owner" },
		{ .type = FIELD_FIXED, .def = "Connection settings" },
		{ .var = "session", .type = FIELD_HIDDEN, .def = "abc" },
	};
	struct stanza *x = form_build("form", "Register", "Fill in.\nSubmit.",
	    FT, s, sizeof(s) / sizeof(s[0]), NULL);
	CHECK_STR(stanza_name(x), "x");
	CHECK_STR(stanza_ns(x), NS_DATA);
	CHECK_XML(x, "<x xmlns='jabber:x:data' type='form'>"
	    "<title>Register</title>"
	    "<instructions>Fill in.</instructions>"
	    "<instructions>Submit.</instructions>"
	    "<field var='FORM_TYPE' type='hidden'><value>" FT "</value></field>"
	    "<field var='username' type='text-single' label='User name'>"
	    "<desc>Your login</desc><required/></field>"
	    "<field var='password' type='text-private' label='Password'>"
	    "<required/></field>"
	    "<field var='notes' type='text-multi' label='Notes'>"
	    "<value>line one</value><value>line two</value></field>"
	    "<field var='tls' type='boolean' label='Use TLS'>"
	    "<value>1</value></field>"
	    "<field var='network' type='list-single' label='Network'>"
	    "<value>libera</value>"
	    "<option label='libera'><value>libera</value></option>"
	    "<option label='oftc'><value>oftc</value></option></field>"
	    "<field var='channels' type='list-multi' label='Channels'>"
	    "<option label='#a'><value>#a</value></option>"
	    "<option label='#b'><value>#b</value></option></field>"
	    "<field var='owner' type='jid-single' label='Owner'/>"
	    "<field type='fixed'><value>Connection settings</value></field>"
	    "<field var='session' type='hidden'><value>abc</value></field>"
	    "</x>");
	stanza_free(x);
}

static void
test_build_prefilled(void)
{
	static const struct form_field_spec s[] = {
		{ .var = "username", .type = FIELD_TEXT_SINGLE,
		    .def = "nobody" },
		{ .var = "password", .type = FIELD_TEXT_PRIVATE, .secret = 1 },
		{ .var = "token", .type = FIELD_TEXT_SINGLE, .secret = 1,
		    .def = "" },
		{ .var = "pin", .type = FIELD_TEXT_PRIVATE },
		{ .var = "channels", .type = FIELD_LIST_MULTI, .options = chans },
		{ .var = "nick", .type = FIELD_TEXT_SINGLE },
		{ .var = "notes", .type = FIELD_TEXT_MULTI },
		{ .var = "tls", .type = FIELD_BOOLEAN, .def = "1" },
	};
	struct form *v = form_new();
	form_add(v, "username", "alice");
	form_add(v, "password", "hunter2");
	form_add(v, "token", "s3cr3t-token");
	form_add(v, "pin", "1234");
	form_add(v, "channels", "#a");
	form_add(v, "channels", "#c");
	/* A single-valued field shows only its first value. */
	form_add(v, "nick", "al");
	form_add(v, "nick", "ally");
	form_add(v, "notes", "one\ntwo");
	form_add(v, "tls", "0");
	form_add(v, "unrelated", "ignored");
	struct stanza *x = form_build("form", NULL, NULL, NULL, s,
	    sizeof(s) / sizeof(s[0]), v);
	char *xml = stanza_to_string(x);
	CHECK_STR(xml, "<x xmlns='jabber:x:data' type='form'>"
	    "<field var='username' type='text-single'><value>alice</value>"
	    "</field>"
	    "<field var='password' type='text-private'/>"
	    "<field var='token' type='text-single'><value/></field>"
	    "<field var='pin' type='text-private'/>"
	    "<field var='channels' type='list-multi'>"
	    "<value>#a</value><value>#c</value>"
	    "<option label='#a'><value>#a</value></option>"
	    "<option label='#b'><value>#b</value></option>"
	    "<option label='#c'><value>#c</value></option></field>"
	    "<field var='nick' type='text-single'><value>al</value></field>"
	    "<field var='notes' type='text-multi'>"
	    "<value>one</value><value>two</value></field>"
	    "<field var='tls' type='boolean'><value>0</value></field>"
	    "</x>");
	/* Secrets never leave, whatever the serializer does. */
	CHECK(xml != NULL && strstr(xml, "hunter2") == NULL);
	CHECK(xml != NULL && strstr(xml, "s3cr3t") == NULL);
	CHECK(xml != NULL && strstr(xml, "1234") == NULL);
	CHECK(xml != NULL && strstr(xml, "unrelated") == NULL);
	free(xml);
	stanza_free(x);
	form_free(v);
}

static void
test_build_minimal(void)
{
	static const struct form_field_spec s[] = {
		{ .var = "ok", .type = FIELD_BOOLEAN, .label = "It's <ok> & \"fine\"" },
	};
	/* No type given: a form.  No title, instructions or FORM_TYPE. */
	struct stanza *x = form_build(NULL, NULL, NULL, NULL, s, 1, NULL);
	CHECK_XML(x, "<x xmlns='jabber:x:data' type='form'>"
	    "<field var='ok' type='boolean' "
	    "label='It&apos;s &lt;ok&gt; &amp; &quot;fine&quot;'/></x>");
	stanza_free(x);

	x = form_build("result", "Done", NULL, NULL, NULL, 0, NULL);
	CHECK_XML(x, "<x xmlns='jabber:x:data' type='result'>"
	    "<title>Done</title></x>");
	stanza_free(x);
}

/* A built form, filled in by a client, goes back through the parser. */
static void
test_build_round_trip(void)
{
	struct form *v = form_new();
	form_add(v, "username", "alice");
	form_add(v, "password", "hunter2");
	struct stanza *x = form_build("submit", NULL, NULL, FT, specs, NSPECS,
	    v);
	form_free(v);
	struct form *f = parse_ok(x);
	if (f == NULL)
		return;
	CHECK_STR(form_kind(f), "submit");
	CHECK_STR(form_type(f), FT);
	CHECK_STR(form_value(f, "username"), "alice");
	/* The password was not echoed, so it is present and empty. */
	CHECK(form_value(f, "password") == NULL);
	const char *bad = NULL;
	char *text = NULL;
	CHECK(form_validate(f, FT, specs, NSPECS, &bad, &text) == -1);
	CHECK_STR(bad, "password");
	CHECK_HAS(text, "Password");
	free(text);
	form_free(f);
}

/* ---- the value store ---- */

static void
test_form_add(void)
{
	struct form *f = form_new();
	CHECK(form_kind(f) == NULL);
	CHECK(form_type(f) == NULL);
	CHECK(form_var_at(f, 0) == NULL);
	form_add(f, "a", "1");
	form_add(f, "b", NULL);
	form_add(f, "a", "2");
	CHECK_STR(form_var_at(f, 0), "a");
	CHECK_STR(form_var_at(f, 1), "b");
	CHECK(form_var_at(f, 2) == NULL);
	const char *const *vals = NULL;
	CHECK(form_values(f, "a", &vals) == 2);
	CHECK(vals != NULL && strcmp(vals[0], "1") == 0 &&
	    strcmp(vals[1], "2") == 0);
	CHECK(form_values(f, "b", &vals) == 0);
	CHECK(form_value(f, "b") == NULL);
	CHECK(form_values(f, "zzz", &vals) == 0);
	CHECK(vals == NULL);
	CHECK(form_values(f, "a", NULL) == 2);
	CHECK(form_value(f, "zzz") == NULL);
	form_free(f);
	form_free(NULL);
}

/* ---- parsing ---- */

static void
test_parse_submit(void)
{
	struct stanza *x = new_x("submit");
	stanza_new_text_child(x, "title", "ignored");
	add_field(x, "FORM_TYPE", FT, NULL);
	add_field(x, "username", "alice", NULL);
	/* Clients may echo the type; it does not matter. */
	stanza_set_attr(add_field(x, "password", "hunter2", NULL), "type",
	    "text-private");
	add_field(x, "channels", "#a", "#b", NULL);
	add_field(x, "notes", "first", "", "third", NULL);
	add_field(x, "owner", NULL);
	/* Elements in other namespaces are not fields or values. */
	stanza_new_child(x, "field", "urn:example:other");
	struct stanza *fl = add_field(x, "tls", "true", NULL);
	stanza_new_text_child(stanza_new_child(fl, "value", "urn:x"), "v",
	    "nope");

	struct form *f = parse_ok(x);
	if (f == NULL)
		return;
	CHECK_STR(form_kind(f), "submit");
	CHECK_STR(form_type(f), FT);
	/* FORM_TYPE is not one of the values. */
	CHECK(form_value(f, "FORM_TYPE") == NULL);
	CHECK_STR(form_var_at(f, 0), "username");
	CHECK_STR(form_var_at(f, 1), "password");
	CHECK_STR(form_var_at(f, 2), "channels");
	CHECK_STR(form_var_at(f, 3), "notes");
	CHECK_STR(form_var_at(f, 4), "owner");
	CHECK_STR(form_var_at(f, 5), "tls");
	CHECK(form_var_at(f, 6) == NULL);
	CHECK_STR(form_value(f, "username"), "alice");
	CHECK_STR(form_value(f, "password"), "hunter2");
	const char *const *vals = NULL;
	CHECK(form_values(f, "channels", &vals) == 2);
	CHECK(vals != NULL && strcmp(vals[0], "#a") == 0 &&
	    strcmp(vals[1], "#b") == 0);
	CHECK(form_values(f, "notes", &vals) == 3);
	CHECK(vals != NULL && strcmp(vals[1], "") == 0);
	CHECK(form_values(f, "owner", &vals) == 0);
	CHECK(form_value(f, "owner") == NULL);
	CHECK(form_values(f, "tls", NULL) == 1);
	CHECK(form_bool(f, "tls") == 1);

	CHECK(form_validate(f, FT, specs, NSPECS, NULL, NULL) == 0);
	form_free(f);
}

struct sink {
	struct stanza *st;
};

static void
sink_stanza(void *arg, struct stanza *st)
{
	struct sink *s = arg;
	stanza_free(s->st);
	s->st = st;
}

static const struct xmlstream_callbacks sink_cb = { .stanza = sink_stanza };

/* The first stanza in text, parsed as it would come off the wire. */
static struct stanza *
parse_text(const char *text)
{
	struct sink s = { NULL };
	struct xmlstream *xs = xmlstream_new(&sink_cb, &s, 0, 0);
	CHECK(xmlstream_feed(xs, STREAM_HEADER, strlen(STREAM_HEADER)) == 0);
	CHECK(xmlstream_feed(xs, text, strlen(text)) == 0);
	xmlstream_free(xs);
	CHECK(s.st != NULL);
	return s.st;
}

static void
test_parse_from_text(void)
{
	struct stanza *iq = parse_text("<iq type='set' id='r1' "
	    "to='irc.example.org' from='alice@example.com/x'>"
	    "<query xmlns='jabber:iq:register'>"
	    "<x xmlns='jabber:x:data' type='submit'>"
	    "<field var='FORM_TYPE'><value>" FT "</value></field>"
	    "<field var='username' type='text-single'>"
	    "<value>al&amp;ice</value></field>"
	    "<field var='password'><value> spaced  </value></field>"
	    "<field var='owner'><value>Boss@Example.COM/desk</value></field>"
	    "<field var='network'><value>oftc</value></field>"
	    "<field var='tls'><value>false</value></field>"
	    "</x></query></iq>");
	if (iq == NULL)
		return;
	struct stanza *q = stanza_child(iq, "query", "jabber:iq:register");
	struct stanza *x = q != NULL ? stanza_child(q, "x", NS_DATA) : NULL;
	CHECK(x != NULL);
	struct form *f = NULL;
	char *err = NULL;
	CHECK(form_parse(x, &f, &err) == 0);
	CHECK(err == NULL);
	stanza_free(iq);
	if (f == NULL)
		return;
	/* The form owns copies: the tree is gone. */
	CHECK_STR(form_type(f), FT);
	CHECK_STR(form_value(f, "username"), "al&ice");
	CHECK_STR(form_value(f, "password"), " spaced  ");
	CHECK_STR(form_value(f, "network"), "oftc");
	CHECK(form_bool(f, "tls") == 0);
	CHECK(form_validate(f, FT, specs, NSPECS, NULL, NULL) == 0);
	form_free(f);
}

static void
test_parse_not_a_form(void)
{
	struct stanza *x = stanza_new("x", "jabber:x:oob");
	stanza_set_attr(x, "type", "submit");
	parse_fails(x, "not a data form", NULL);

	x = stanza_new("form", NS_DATA);
	stanza_set_attr(x, "type", "submit");
	parse_fails(x, "not a data form", NULL);

	struct form *f = (struct form *)1;
	char *err = NULL;
	CHECK(form_parse(NULL, &f, &err) == -1);
	CHECK(f == NULL);
	CHECK_HAS(err, "not a data form");
	free(err);
}

static void
test_parse_bad_type(void)
{
	struct stanza *x = new_x(NULL);
	add_field(x, "username", "alice", NULL);
	parse_fails(x, "without a type", NULL);

	x = new_x("Submit");
	parse_fails(x, "unknown type", NULL);

	/* The other three kinds parse. */
	static const char *const kinds[] = { "form", "result", "submit" };
	for (size_t i = 0; i < 3; i++) {
		struct form *f = parse_ok(new_x(kinds[i]));
		CHECK(f != NULL && strcmp(form_kind(f), kinds[i]) == 0);
		form_free(f);
	}
}

static void
test_parse_cancel(void)
{
	struct stanza *iq = parse_text("<iq type='set' id='c1'>"
	    "<command xmlns='http://jabber.org/protocol/commands' "
	    "node='config' action='cancel'>"
	    "<x xmlns='jabber:x:data' type='cancel'/></command></iq>");
	if (iq == NULL)
		return;
	struct stanza *c = stanza_first_child(iq);
	struct stanza *x = c != NULL ? stanza_child(c, "x", NS_DATA) : NULL;
	struct form *f = NULL;
	char *err = NULL;
	CHECK(form_parse(x, &f, &err) == 0);
	stanza_free(iq);
	CHECK(f != NULL && strcmp(form_kind(f), "cancel") == 0);
	CHECK(f != NULL && form_var_at(f, 0) == NULL);
	form_free(f);

	/* Whatever a cancel carries is not read, so it cannot fail it. */
	x = new_x("cancel");
	add_field(x, NULL, "x", NULL);
	add_field(x, "a", NULL);
	add_field(x, "a", NULL);
	f = parse_ok(x);
	CHECK(f != NULL && strcmp(form_kind(f), "cancel") == 0);
	CHECK(f != NULL && form_var_at(f, 0) == NULL);
	form_free(f);
}

static void
test_parse_field_without_var(void)
{
	struct stanza *x = good_submission();
	add_field(x, NULL, "orphan", NULL);
	parse_fails(x, "no var", NULL);

	x = good_submission();
	add_field(x, "", "orphan", NULL);
	parse_fails(x, "no var", NULL);
}

/* Fixed fields echoed by a client, with or without var, are skipped. */
static void
test_parse_fixed_echoed(void)
{
	struct stanza *x = good_submission();
	stanza_set_attr(add_field(x, NULL, "Connection", NULL), "type",
	    "fixed");
	stanza_set_attr(add_field(x, "banner", "Hello", NULL), "type",
	    "fixed");
	struct form *f = parse_ok(x);
	if (f == NULL)
		return;
	CHECK(form_value(f, "banner") == NULL);
	CHECK(form_validate(f, FT, specs, NSPECS, NULL, NULL) == 0);
	form_free(f);
}

static void
test_parse_duplicate_var(void)
{
	struct stanza *x = good_submission();
	add_field(x, "username", "mallory", NULL);
	parse_fails(x, "'username'", "twice", NULL);

	x = good_submission();
	add_field(x, "FORM_TYPE", "urn:other", NULL);
	parse_fails(x, "'FORM_TYPE'", "twice", NULL);
}

static void
test_parse_form_type_two_values(void)
{
	struct stanza *x = new_x("submit");
	add_field(x, "FORM_TYPE", FT, "urn:other", NULL);
	parse_fails(x, "'FORM_TYPE'", "too many values", NULL);
}

static void
test_parse_huge_value(void)
{
	size_t n = 1024 * 1024;
	char *big = malloc(n);
	memset(big, 'A', n);
	struct stanza *x = good_submission();
	struct stanza *field = add_field(x, "notes", NULL);
	struct stanza *v = stanza_new_child(field, "value", NULL);
	/* In pieces, as the stream parser delivers text. */
	for (size_t off = 0; off < n; off += 4096)
		stanza_add_text(v, big + off, 4096);
	free(big);
	parse_fails(x, "'notes'", "longer than 4096 bytes", NULL);

	/* Exactly the limit is fine. */
	char *max = malloc(FORM_MAX_VALUE_LEN + 1);
	memset(max, 'b', FORM_MAX_VALUE_LEN);
	max[FORM_MAX_VALUE_LEN] = '\0';
	x = good_submission();
	add_field(x, "notes", max, NULL);
	struct form *f = parse_ok(x);
	CHECK(f != NULL && strlen(form_value(f, "notes")) == FORM_MAX_VALUE_LEN);
	form_free(f);

	/* One byte more is not, and neither is an over-long var. */
	max = realloc(max, FORM_MAX_VALUE_LEN + 2);
	strcpy(max + FORM_MAX_VALUE_LEN - 1, "bb");
	x = good_submission();
	add_field(x, "notes", max, NULL);
	parse_fails(x, "'notes'", "longer than", NULL);
	x = good_submission();
	add_field(x, max, "v", NULL);
	parse_fails(x, "var is longer than", NULL);
	free(max);
}

static void
test_parse_too_many_fields(void)
{
	char var[16];
	struct stanza *x = new_x("submit");
	for (int i = 0; i < FORM_MAX_FIELDS; i++) {
		snprintf(var, sizeof(var), "f%d", i);
		add_field(x, var, "v", NULL);
	}
	struct form *f = parse_ok(stanza_copy(x));
	CHECK(f != NULL && form_var_at(f, FORM_MAX_FIELDS - 1) != NULL);
	form_free(f);

	add_field(x, "one-more", "v", NULL);
	parse_fails(x, "too many fields", NULL);

	/* Fields that are skipped count too. */
	x = new_x("submit");
	for (int i = 0; i <= FORM_MAX_FIELDS; i++)
		stanza_set_attr(add_field(x, NULL, NULL), "type", "fixed");
	parse_fails(x, "too many fields", NULL);
}

static void
test_parse_too_many_values(void)
{
	struct stanza *x = good_submission();
	struct stanza *field = add_field(x, "channels", NULL);
	for (int i = 0; i < FORM_MAX_VALUES; i++)
		stanza_new_text_child(field, "value", "#a");
	struct form *f = parse_ok(stanza_copy(x));
	CHECK(f != NULL && form_values(f, "channels", NULL) == FORM_MAX_VALUES);
	form_free(f);

	stanza_new_text_child(field, "value", "#a");
	parse_fails(x, "'channels'", "too many values", NULL);
}

/* ---- validation ---- */

static void
test_valid_submission(void)
{
	struct stanza *x = good_submission();
	add_field(x, "nick", "al", NULL);
	add_field(x, "tls", "1", NULL);
	add_field(x, "network", "libera", NULL);
	add_field(x, "channels", "#a", "#b", "#c", NULL);
	add_field(x, "owner", "boss@example.com", NULL);
	add_field(x, "notes", "a", "b", NULL);
	add_field(x, "session", "xyz", NULL);
	validate_passes(x);
}

/* An optional field sent blank is not filled in, whatever its type. */
static void
test_empty_optional(void)
{
	struct stanza *x = good_submission();
	add_field(x, "tls", "", NULL);
	add_field(x, "network", "", NULL);
	add_field(x, "owner", "", NULL);
	add_field(x, "nick", NULL);
	validate_passes(x);
}

static void
test_missing_required(void)
{
	struct stanza *x = new_x("submit");
	add_field(x, "FORM_TYPE", FT, NULL);
	add_field(x, "username", "alice", NULL);
	validate_fails(x, "password", "Password", NULL);
}

static void
test_empty_required(void)
{
	struct stanza *x = new_x("submit");
	add_field(x, "username", "", NULL);
	add_field(x, "password", "hunter2", NULL);
	validate_fails(x, "username", "User name", NULL);

	/* No <value/> at all is empty too. */
	x = new_x("submit");
	add_field(x, "username", "alice", NULL);
	add_field(x, "password", NULL);
	validate_fails(x, "password", "Password", NULL);
}

static void
test_unknown_field(void)
{
	struct stanza *x = good_submission();
	add_field(x, "is_admin", "1", NULL);
	validate_fails(x, "is_admin", "is_admin", NULL);
}

static void
test_too_long_for_spec(void)
{
	struct stanza *x = good_submission();
	add_field(x, "nick", "abcdefghi", NULL);
	validate_passes(x);

	x = good_submission();
	add_field(x, "nick", "abcdefghij", NULL);
	validate_fails(x, "nick", "Nickname", "abcdefghij");
}

static void
test_boolean_maybe(void)
{
	struct stanza *x = good_submission();
	add_field(x, "tls", "maybe", NULL);
	validate_fails(x, "tls", "Use TLS", "maybe");

	/* xs:boolean is case-sensitive. */
	x = good_submission();
	add_field(x, "tls", "TRUE", NULL);
	validate_fails(x, "tls", "Use TLS", NULL);
}

static void
test_list_single_not_option(void)
{
	struct stanza *x = good_submission();
	add_field(x, "network", "efnet", NULL);
	validate_fails(x, "network", "Network", "efnet");

	/* Every value of a list-multi must be an option; a field without a
	 * label is named by its var. */
	x = good_submission();
	add_field(x, "channels", "#a", "#evil", NULL);
	validate_fails(x, "channels", "channels", "#evil");
}

static void
test_two_values_single(void)
{
	struct stanza *x = good_submission();
	add_field(x, "nick", "al", "ally", NULL);
	validate_fails(x, "nick", "Nickname", NULL);

	x = new_x("submit");
	add_field(x, "username", "alice", NULL);
	add_field(x, "password", "hunter2", "hunter3", NULL);
	validate_fails(x, "password", "Password", "hunter");

	x = good_submission();
	add_field(x, "network", "libera", "oftc", NULL);
	validate_fails(x, "network", "Network", NULL);
}

static void
test_invalid_jid(void)
{
	struct stanza *x = good_submission();
	add_field(x, "owner", "not a jid@@", NULL);
	validate_fails(x, "owner", "Owner", "not a jid");

	x = good_submission();
	add_field(x, "owner", "@example.com", NULL);
	validate_fails(x, "owner", "Owner", NULL);
}

static void
test_wrong_form_type(void)
{
	struct stanza *x = new_x("submit");
	add_field(x, "FORM_TYPE", "urn:example:other", NULL);
	add_field(x, "username", "alice", NULL);
	add_field(x, "password", "hunter2", NULL);
	validate_fails(x, "FORM_TYPE", FT, NULL);
}

/* Older clients leave hidden fields out of what they submit: a form
 * without FORM_TYPE is taken as the one the caller asked for. */
static void
test_no_form_type_accepted(void)
{
	struct stanza *x = new_x("submit");
	add_field(x, "username", "alice", NULL);
	add_field(x, "password", "hunter2", NULL);
	struct form *f = parse_ok(x);
	if (f == NULL)
		return;
	CHECK(form_type(f) == NULL);
	CHECK(form_validate(f, FT, specs, NSPECS, NULL, NULL) == 0);
	form_free(f);

	/* Nor is one required to be checked when the caller expects none. */
	f = parse_ok(good_submission());
	CHECK(f != NULL &&
	    form_validate(f, NULL, specs, NSPECS, NULL, NULL) == 0);
	form_free(f);
}

/*
 * Single-line fields refuse CR and LF: a password or user name is written
 * into line-based protocols (IMAP LOGIN, IRC PASS), where a line break
 * would end the command and start one the user wrote.  The error names
 * the field, never the value.  text-multi keeps its lines.
 */
static void
test_line_break_in_single_line(void)
{
	const char *bad[] = { "al\r\nA1 DELETE INBOX", "al\nice", "al\rice",
	    NULL };
	for (size_t i = 0; bad[i] != NULL; i++) {
		struct stanza *x = new_x("submit");
		add_field(x, "FORM_TYPE", FT, NULL);
		add_field(x, "username", bad[i], NULL);
		add_field(x, "password", "hunter2", NULL);
		validate_fails(x, "username", "User name", "DELETE");

		x = new_x("submit");
		add_field(x, "FORM_TYPE", FT, NULL);
		add_field(x, "username", "alice", NULL);
		add_field(x, "password", bad[i], NULL);
		validate_fails(x, "password", "Password", "DELETE");

		x = good_submission();
		add_field(x, "session", bad[i], NULL);
		validate_fails(x, "session", "session", "DELETE");
	}

	/* As it comes off the wire: &#13;&#10; survive XML parsing. */
	struct stanza *iq = parse_text("<iq type='set' id='r2'>"
	    "<query xmlns='jabber:iq:register'>"
	    "<x xmlns='jabber:x:data' type='submit'>"
	    "<field var='username'><value>alice</value></field>"
	    "<field var='password'><value>pw&#13;&#10;A2 LOGOUT</value>"
	    "</field></x></query></iq>");
	if (iq != NULL) {
		struct stanza *q = stanza_child(iq, "query",
		    "jabber:iq:register");
		struct stanza *x = q != NULL ? stanza_child(q, "x", NS_DATA) :
		    NULL;
		struct form *f = NULL;
		CHECK(x != NULL && form_parse(x, &f, NULL) == 0);
		const char *badvar = NULL;
		CHECK(f != NULL && form_validate(f, FT, specs, NSPECS, &badvar,
		    NULL) == -1);
		CHECK_STR(badvar, "password");
		form_free(f);
		stanza_free(iq);
	}

	/* A text-multi field keeps its lines. */
	struct stanza *x = good_submission();
	add_field(x, "notes", "line one\r\nline two", NULL);
	validate_passes(x);
}

/* XML 1.0 cannot carry NUL (not even as &#0;), so no value holds one; a
 * value built in code with an embedded NUL must not be cut short
 * silently either: form_parse refuses it. */
static void
test_nul_in_value(void)
{
	struct stanza *x = new_x("submit");
	add_field(x, "FORM_TYPE", FT, NULL);
	add_field(x, "username", "alice", NULL);
	struct stanza *field = stanza_new_child(x, "field", NULL);
	stanza_set_attr(field, "var", "password");
	struct stanza *v = stanza_new_child(field, "value", NULL);
	stanza_add_text(v, "pw\0rest", 7);
	parse_fails(x, "'password'", NULL);

	struct sink s = { NULL };
	struct xmlstream *xs = xmlstream_new(&sink_cb, &s, 0, 0);
	CHECK(xmlstream_feed(xs, STREAM_HEADER, strlen(STREAM_HEADER)) == 0);
	const char *text = "<iq><x xmlns='jabber:x:data' type='submit'>"
	    "<field var='password'><value>a&#0;b</value></field></x></iq>";
	CHECK(xmlstream_feed(xs, text, strlen(text)) == -1);
	xmlstream_free(xs);
	CHECK(s.st == NULL);
	stanza_free(s.st);
}

static void
test_form_bool(void)
{
	struct form *f = form_new();
	form_add(f, "t1", "1");
	form_add(f, "t2", "true");
	form_add(f, "f1", "0");
	form_add(f, "f2", "false");
	form_add(f, "f3", "");
	form_add(f, "f4", "yes");
	form_add(f, "f5", "TRUE");
	form_add(f, "f6", NULL);
	CHECK(form_bool(f, "t1") == 1);
	CHECK(form_bool(f, "t2") == 1);
	CHECK(form_bool(f, "f1") == 0);
	CHECK(form_bool(f, "f2") == 0);
	CHECK(form_bool(f, "f3") == 0);
	CHECK(form_bool(f, "f4") == 0);
	CHECK(form_bool(f, "f5") == 0);
	CHECK(form_bool(f, "f6") == 0);
	CHECK(form_bool(f, "absent") == 0);
	form_free(f);
}

int
main(void)
{
	log_init(LOG_LEVEL_ERROR, 0);
	RUN(test_build_every_type);
	RUN(test_build_prefilled);
	RUN(test_build_minimal);
	RUN(test_build_round_trip);
	RUN(test_form_add);
	RUN(test_parse_submit);
	RUN(test_parse_from_text);
	RUN(test_parse_not_a_form);
	RUN(test_parse_bad_type);
	RUN(test_parse_cancel);
	RUN(test_parse_field_without_var);
	RUN(test_parse_fixed_echoed);
	RUN(test_parse_duplicate_var);
	RUN(test_parse_form_type_two_values);
	RUN(test_parse_huge_value);
	RUN(test_parse_too_many_fields);
	RUN(test_parse_too_many_values);
	RUN(test_valid_submission);
	RUN(test_empty_optional);
	RUN(test_missing_required);
	RUN(test_empty_required);
	RUN(test_unknown_field);
	RUN(test_too_long_for_spec);
	RUN(test_boolean_maybe);
	RUN(test_list_single_not_option);
	RUN(test_two_values_single);
	RUN(test_invalid_jid);
	RUN(test_wrong_form_type);
	RUN(test_no_form_type_accepted);
	RUN(test_form_bool);
	RUN(test_line_break_in_single_line);
	RUN(test_nul_in_value);
	return TAP_DONE();
}
