/*
 * libFuzzer harness for the stream parser and the serializer.
 *
 * Input: one mode byte, then the bytes the peer sends after a component
 * stream header.  The mode picks the limits, whether a callback stops the
 * stream, and a multiplier; the slices fed to the parser take their sizes
 * from the input bytes themselves, so the fuzzer explores token
 * boundaries falling everywhere.
 *
 * Every stanza that comes out is serialized, and the serialization must
 * parse again, to exactly one stanza that serializes to the same bytes
 * (and so must a copy, and the evbuffer path).  Anything else aborts.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "log.h"
#include "stanza.h"
#include "xmlstream.h"

#define PREFIX "<?xml version='1.0'?><stream:stream " \
	"xmlns:stream='http://etherx.jabber.org/streams' " \
	"xmlns='jabber:component:accept' from='fuzz.example.org' id='f1'>"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct run {
	struct xmlstream *xs;
	size_t stanzas;
	size_t stop_after;
	unsigned max_depth;
};

struct reparse {
	size_t n;
	struct stanza *st;
};

static void
die(const char *what, const char *a, const char *b)
{
	fprintf(stderr, "fuzz_xmlstream: %s\n  1: %s\n  2: %s\n", what,
	    a ? a : "(null)", b ? b : "(null)");
	abort();
}

static void
reparse_stanza(void *arg, struct stanza *st)
{
	struct reparse *r = arg;
	if (r->n++ == 0)
		r->st = st;
	else
		stanza_free(st);
}

static void
check_round_trip(const struct stanza *st, unsigned max_depth)
{
	char *s1 = stanza_to_string(st);
	size_t len = strlen(s1);

	static const struct xmlstream_callbacks cb = {
		.stanza = reparse_stanza,
	};
	struct reparse r = { 0 };
	/* Escaping may make the text longer than what was parsed. */
	struct xmlstream *xs = xmlstream_new(&cb, &r,
	    sizeof(PREFIX) + len + 1, max_depth);
	if (xmlstream_feed(xs, PREFIX, sizeof(PREFIX) - 1) != 0)
		die("the prefix failed", xmlstream_error_condition(xs), NULL);
	if (xmlstream_feed(xs, s1, len) != 0)
		die("the serialization does not parse", s1,
		    xmlstream_error_text(xs));
	if (r.n != 1)
		die("the serialization is not one stanza", s1, NULL);

	char *s2 = stanza_to_string(r.st);
	if (strcmp(s1, s2) != 0)
		die("serialization is not stable", s1, s2);
	free(s2);

	struct stanza *c = stanza_copy(st);
	s2 = stanza_to_string(c);
	if (strcmp(s1, s2) != 0)
		die("a copy serializes differently", s1, s2);
	free(s2);
	stanza_free(c);

	struct evbuffer *buf = evbuffer_new();
	stanza_serialize(st, NS_COMPONENT, buf);
	if (evbuffer_get_length(buf) != len ||
	    memcmp(evbuffer_pullup(buf, -1), s1, len) != 0)
		die("evbuffer and string serializations differ", s1, NULL);
	evbuffer_free(buf);

	stanza_free(r.st);
	xmlstream_free(xs);
	free(s1);
}

static void
on_stanza(void *arg, struct stanza *st)
{
	struct run *run = arg;
	check_round_trip(st, run->max_depth);
	stanza_free(st);
	if (++run->stanzas == run->stop_after)
		xmlstream_stop(run->xs);
}

static void
on_open(void *arg, const struct stanza *root)
{
	(void)arg;
	char *s = stanza_to_string(root);
	free(s);
}

static void
on_close(void *arg)
{
	(void)arg;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level(LOG_LEVEL_ERROR);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	uint8_t mode = data[0];
	const char *in = (const char *)data + 1;
	size_t len = size - 1;

	static const struct xmlstream_callbacks cb = {
		.open = on_open,
		.stanza = on_stanza,
		.close = on_close,
	};
	struct run run = {
		.stop_after = (mode & 0x08) ? 2 : 0,
		.max_depth = (mode & 0x04) ? 8 : 0,
	};
	size_t max_bytes = (mode & 0x02) ? 512 : 0;
	run.xs = xmlstream_new(&cb, &run, max_bytes, run.max_depth);
	if (run.max_depth == 0)
		run.max_depth = XMLSTREAM_DEFAULT_MAX_DEPTH;

	int r = xmlstream_feed(run.xs, PREFIX, sizeof(PREFIX) - 1);
	if (r != 0)
		die("the prefix failed", xmlstream_error_condition(run.xs), NULL);

	/* Slice sizes come from the input: 1 + (byte * multiplier) % 64,
	 * or everything at once when bit 0 of the mode is set. */
	unsigned mult = (mode >> 4) | 1;
	for (size_t off = 0; r == 0 && off < len;) {
		size_t n = (mode & 0x01) ? len - off :
		    1 + ((size_t)(uint8_t)in[off] * mult) % 64;
		if (n > len - off)
			n = len - off;
		r = xmlstream_feed(run.xs, in + off, n);
		off += n;
	}
	if (r != 0 && !(mode & 0x08) &&
	    xmlstream_error_condition(run.xs) == NULL)
		die("feed failed without a condition", NULL, NULL);
	if (r == 0 && xmlstream_error_condition(run.xs) != NULL)
		die("a condition without a failure",
		    xmlstream_error_condition(run.xs), NULL);

	/* A reset must bring back a working parser. */
	xmlstream_reset(run.xs);
	run.stop_after = 0;
	if (xmlstream_feed(run.xs, PREFIX "<presence/>", sizeof(PREFIX) + 10) != 0)
		die("reset did not work", xmlstream_error_condition(run.xs), NULL);
	xmlstream_free(run.xs);
	return 0;
}
