/*
 * Unit tests of src/redact.c: which fields and messages hold secrets,
 * and that the logged copy of a stanza keeps everything but them.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "form.h"
#include "redact.h"
#include "stanza.h"
#include "tap.h"

static const struct form_field_spec fields[] = {
	{ .var = "nick", .type = FIELD_TEXT_SINGLE },
	{ .var = "pin", .type = FIELD_TEXT_SINGLE, .secret = 1 },
};

static const struct backend b = {
	.register_fields = fields,
	.nregister_fields = sizeof(fields) / sizeof(fields[0]),
};

static void
test_secret_fields(void)
{
	CHECK(redact_is_secret_field("sasl_password", NULL, NULL));
	CHECK(redact_is_secret_field("imap_password", NULL, NULL));
	CHECK(redact_is_secret_field("irc.example.org/server_password", NULL,
	    NULL));
	CHECK(redact_is_secret_field("nickserv", NULL, NULL));
	CHECK(redact_is_secret_field("callback_token", NULL, NULL));
	CHECK(redact_is_secret_field("anything", "text-private", NULL));
	CHECK(redact_is_secret_field("pin", NULL, &b));
	CHECK(redact_is_secret_field("x/pin", NULL, &b));
	CHECK(!redact_is_secret_field("nick", NULL, &b));
	CHECK(!redact_is_secret_field("email", "text-single", &b));
	CHECK(!redact_is_secret_field(NULL, NULL, &b));
}

static void
test_nickserv(void)
{
	CHECK(redact_is_nickserv("NickServ%irc.example.org@irc.gw", NULL));
	CHECK(redact_is_nickserv("nickserv@irc.gw", "hi"));
	CHECK(!redact_is_nickserv("nickservx%irc.example.org@irc.gw", "hi"));
	CHECK(!redact_is_nickserv("#chan%irc.example.org@irc.gw", "hello"));
	CHECK(redact_is_nickserv("#chan%irc.example.org@irc.gw",
	    "  /msg NickServ identify pw"));
	CHECK(redact_is_nickserv(NULL, "/ns identify pw"));
	CHECK(!redact_is_nickserv(NULL, "/nsfw is not a command"));
}

static void
test_stanza_copy(void)
{
	struct stanza *iq = stanza_new("iq", NS_COMPONENT);
	stanza_set_attr(iq, "type", "set");
	struct stanza *q = stanza_new_child(iq, "query", "jabber:iq:register");
	stanza_new_text_child(q, "username", "alice");
	stanza_new_text_child(q, "password", "Legacy-Secret");
	struct stanza *x = stanza_new_child(q, "x", NS_DATA);
	struct stanza *f = stanza_new_child(x, "field", NULL);
	stanza_set_attr(f, "var", "pin");
	stanza_new_text_child(f, "value", "Pin-Secret");
	f = stanza_new_child(x, "field", NULL);
	stanza_set_attr(f, "var", "nick");
	stanza_new_text_child(f, "value", "alice-nick");
	char *s = redact_stanza_text(iq, &b);
	CHECK(s != NULL && strstr(s, "Legacy-Secret") == NULL);
	CHECK(s != NULL && strstr(s, "Pin-Secret") == NULL);
	CHECK(s != NULL && strstr(s, "alice-nick") != NULL);
	CHECK(s != NULL && strstr(s, "<username>alice</username>") != NULL);
	CHECK(s != NULL && strstr(s, REDACTED) != NULL);
	free(s);
	/* The original is untouched. */
	s = stanza_to_string(iq);
	CHECK(s != NULL && strstr(s, "Legacy-Secret") != NULL &&
	    strstr(s, "Pin-Secret") != NULL);
	free(s);
	stanza_free(iq);

	struct stanza *m = stanza_new("message", NS_COMPONENT);
	stanza_set_attr(m, "to", "nickserv%irc.example.org@irc.gw");
	stanza_new_text_child(m, "body", "IDENTIFY Ns-Secret");
	stanza_new_text_child(m, "thread", "t1");
	s = redact_stanza_text(m, NULL);
	CHECK(s != NULL && strstr(s, "Ns-Secret") == NULL &&
	    strstr(s, "<thread>t1</thread>") != NULL);
	free(s);
	stanza_free(m);
}

int
main(void)
{
	RUN(test_secret_fields);
	RUN(test_nickserv);
	RUN(test_stanza_copy);
	return TAP_DONE();
}
