/*
 * The XML stream parser: bytes in, stanzas out.
 *
 * It wraps expat in namespace mode and enforces what RFC 6120 allows on
 * an XMPP stream: no DOCTYPE, no entity declarations, no comments, no
 * processing instructions (restricted-xml); well-formed UTF-8 and XML
 * namespaces (not-well-formed; the stream is UTF-8 whatever its XML
 * declaration says, and a UTF-16/32 byte order mark is
 * unsupported-encoding); a maximum stanza size and depth and at most 128
 * attributes per element (policy-violation).  The size limit counts every
 * byte fed since the end of the previous complete stanza (or the stream
 * header, or whitespace between stanzas, so keepalives never add up), so
 * a giant start tag or an unterminated text node is caught as early as a
 * giant complete stanza, and no more than about the limit is ever held.
 * The root must be {http://etherx.jabber.org/streams}stream: another
 * namespace is invalid-namespace, another name in that namespace
 * bad-format; text other than whitespace between stanzas is bad-format.
 *
 * Model: stream header -> open(); each complete depth-1 element ->
 * stanza() (the callback takes ownership of the tree); </stream:stream>
 * -> close().  After an error the parser stays failed until
 * xmlstream_reset(); callbacks may call xmlstream_stop() but must never
 * free or reset the parser from inside a callback.
 *
 * Depth: a stanza is depth 1, its children depth 2, and so on.  A stanza
 * handed to the callback has no parent and stores its namespace (usually
 * NS_COMPONENT) explicitly; its children store one only where it differs.
 */
#ifndef CAUSEWAY_XMLSTREAM_H
#define CAUSEWAY_XMLSTREAM_H

#include <stddef.h>

struct stanza;
struct xmlstream;

struct xmlstream_callbacks {
	/* The stream root (<stream:stream>), with its attributes and no
	 * children; borrowed for the call only. */
	void (*open)(void *arg, const struct stanza *root);
	/* A complete top-level element; the callback owns it. */
	void (*stanza)(void *arg, struct stanza *st);
	/* The peer closed the stream with </stream:stream>. */
	void (*close)(void *arg);
};

#define XMLSTREAM_DEFAULT_MAX_STANZA (256 * 1024)
#define XMLSTREAM_DEFAULT_MAX_DEPTH 128

/* Any callback may be NULL (a NULL stanza callback frees the stanza);
 * 0 for max_stanza_bytes or max_depth means the default. */
struct xmlstream *xmlstream_new(const struct xmlstream_callbacks *cb,
    void *arg, size_t max_stanza_bytes, unsigned max_depth);
void xmlstream_free(struct xmlstream *xs);
/* Forget all state, ready for a new stream (a new connection). */
void xmlstream_reset(struct xmlstream *xs);

/*
 * Parse len more bytes.  Returns 0 when all went well, -1 when the stream
 * is broken (then xmlstream_error_condition() says why) or was stopped.
 */
int xmlstream_feed(struct xmlstream *xs, const char *data, size_t len);
/* Called from a callback: stop parsing; feed returns -1 with no error. */
void xmlstream_stop(struct xmlstream *xs);

/* The RFC 6120 stream error condition ("not-well-formed",
 * "restricted-xml", "policy-violation", "invalid-namespace", ...), or
 * NULL while there is no error. */
const char *xmlstream_error_condition(const struct xmlstream *xs);
/* A human-readable explanation for logs; "" while there is no error. */
const char *xmlstream_error_text(const struct xmlstream *xs);

#endif
