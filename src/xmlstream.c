/*
 * The XML stream parser.
 *
 *   PROLOG --<stream:stream>--> OPEN --</stream:stream>--> CLOSED
 *      \                          |                          |
 *       +-------- any error ------+--------------------------+--> FAILED
 *
 * In OPEN, level counts the open elements (the stream root is level 1, a
 * stanza's own element level 2): start tags at level >= 2 grow the tree in
 * top/cur, the end tag that brings level back to 1 hands top to the
 * stanza callback.  FAILED (cond set) and stopped are sticky until
 * xmlstream_reset(); every expat handler checks them first because expat
 * may deliver a few more events after XML_StopParser().
 *
 * Size accounting: mark is the stream offset where the last complete
 * stanza, the stream header or a run of whitespace between stanzas ended.
 * xmlstream_feed() never gives expat a byte beyond mark + max_bytes; if
 * the next byte would be past that point, the stanza in progress is too
 * big.  Expat and the tree together therefore never hold much more than
 * max_bytes of one stanza, however the peer slices its bytes.
 */
#include "autoconf.h"

#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Declares the billion-laughs setters, which expat.h hides without it. */
#define XML_DTD
#include <expat.h>

#include "log.h"
#include "stanza.h"
#include "xmalloc.h"
#include "xmlstream.h"

/* Expat's namespace separator: '|' never occurs in a local name and
 * matches the "URI|local" attribute names stanza.h documents.  (':' would
 * make "URI:local" ambiguous, as URIs are full of colons.) */
#define NS_SEP '|'

/*
 * No XMPP element carries more than a handful of attributes.  The cap
 * keeps stanza_set_attr()'s duplicate check (linear per attribute) from
 * turning one 256 KB start tag into tens of millions of comparisons.
 */
#define MAX_ATTRS 128

enum xs_state {
	XS_PROLOG,
	XS_OPEN,
	XS_CLOSED,
};

struct xmlstream {
	struct xmlstream_callbacks cb;
	void *arg;
	size_t max_bytes;
	unsigned max_depth;

	XML_Parser parser;
	enum xs_state state;
	unsigned level;			/* open elements, root included */
	struct stanza *top;		/* the stanza being built */
	struct stanza *cur;		/* its innermost open element */
	/* The namespace in force at each depth (a stanza is depth 1),
	 * borrowed from the tree, so that a start tag is compared with its
	 * parent's without walking up. */
	const char **ns_at;

	uint64_t fed;			/* bytes given to expat */
	uint64_t mark;			/* see the top of the file */
	int in_parse;
	int stopped;

	const char *cond;		/* NULL until the stream fails */
	char text[256];

	char *scratch;			/* for NUL-terminating name parts */
	size_t scratch_cap;
};

static void fail(struct xmlstream *xs, const char *cond, const char *fmt, ...)
    CW_PRINTF(3, 4);

static void
fail(struct xmlstream *xs, const char *cond, const char *fmt, ...)
{
	if (xs->cond != NULL)
		return;
	xs->cond = cond;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(xs->text, sizeof(xs->text), fmt, ap);
	va_end(ap);
	if (xs->in_parse)
		XML_StopParser(xs->parser, XML_FALSE);
	/* Nothing will complete this stanza: give its memory back now. */
	stanza_free(xs->top);
	xs->top = xs->cur = NULL;
}

static int
dead(const struct xmlstream *xs)
{
	return xs->cond != NULL || xs->stopped;
}

/* Where the current expat event ends, as a stream offset. */
static uint64_t
event_end(const struct xmlstream *xs)
{
	XML_Index i = XML_GetCurrentByteIndex(xs->parser);
	int n = XML_GetCurrentByteCount(xs->parser);
	if (i < 0)
		return xs->mark;
	return (uint64_t)i + (uint64_t)(n > 0 ? n : 0);
}

static const char *
scratch_copy(struct xmlstream *xs, const char *prefix, const char *s,
    size_t n)
{
	size_t p = strlen(prefix);
	if (p + n + 1 > xs->scratch_cap) {
		xs->scratch_cap = p + n + 1 > 256 ? p + n + 1 : 256;
		free(xs->scratch);
		xs->scratch = xmalloc(xs->scratch_cap);
	}
	memcpy(xs->scratch, prefix, p);
	memcpy(xs->scratch + p, s, n);
	xs->scratch[p + n] = '\0';
	return xs->scratch;
}

/* Copies expat's attributes to st, mapping the xml: namespace back to its
 * prefix; other namespaced names stay "URI|local". */
static void
add_attrs(struct xmlstream *xs, struct stanza *st, const XML_Char **atts)
{
	static const char xml_ns_sep[] = NS_XML "|";
	for (size_t i = 0; atts[i] != NULL; i += 2) {
		const char *name = atts[i];
		if (strncmp(name, xml_ns_sep, sizeof(xml_ns_sep) - 1) == 0) {
			const char *local = name + sizeof(xml_ns_sep) - 1;
			name = scratch_copy(xs, "xml:", local, strlen(local));
		}
		stanza_set_attr(st, name, atts[i + 1]);
	}
}

static void
start_root(struct xmlstream *xs, const char *uri, size_t urilen,
    const char *local, const XML_Char **atts)
{
	if (uri == NULL || urilen != strlen(NS_STREAMS) ||
	    strncmp(uri, NS_STREAMS, urilen) != 0) {
		/* RFC 6120 4.8.1: a wrong stream namespace is
		 * invalid-namespace, whatever the element is called. */
		fail(xs, "invalid-namespace", "the stream root is not in the "
		    "namespace " NS_STREAMS);
		return;
	}
	if (strcmp(local, "stream") != 0) {
		/* Well-formed but not a stream: bad-format, RFC 6120
		 * 4.9.3.1 (not-well-formed is for broken XML). */
		fail(xs, "bad-format", "the stream root is <%.64s/>, not "
		    "<stream/>", local);
		return;
	}
	struct stanza *root = stanza_new("stream", NS_STREAMS);
	add_attrs(xs, root, atts);
	xs->level = 1;
	xs->state = XS_OPEN;
	xs->mark = event_end(xs);
	if (xs->cb.open != NULL)
		xs->cb.open(xs->arg, root);
	stanza_free(root);
}

/* The other content namespaces a peer may use for the stanzas of a
 * component stream (RFC 6120 4.8.3); the returned string is static. */
static const char *
content_alias(const char *uri, size_t len)
{
	static const char *const aliases[] = { "jabber:client",
	    "jabber:server" };
	for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++)
		if (strlen(aliases[i]) == len && memcmp(aliases[i], uri,
		    len) == 0)
			return aliases[i];
	return NULL;
}

static void XMLCALL
on_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
	struct xmlstream *xs = ud;
	if (dead(xs))
		return;
	const char *local = strrchr(name, NS_SEP);
	const char *uri = NULL;
	size_t urilen = 0;
	if (local != NULL) {
		uri = name;
		urilen = (size_t)(local - name);
		local++;
	} else {
		local = name;
	}
	if (xs->level == 0) {
		start_root(xs, uri, urilen, local, atts);
		return;
	}
	if (xs->state != XS_OPEN)
		return;
	/* The new element's depth is xs->level (a stanza is 1). */
	if (xs->level > xs->max_depth) {
		fail(xs, "policy-violation", "elements nested deeper than %u",
		    xs->max_depth);
		return;
	}
	size_t natts = 0;
	while (atts[natts] != NULL)
		natts += 2;
	if (natts / 2 > MAX_ATTRS) {
		fail(xs, "policy-violation", "<%.64s/> has more than %d "
		    "attributes", local, MAX_ATTRS);
		return;
	}

	/* An element in its parent's namespace stores none and inherits;
	 * one in no namespace (uri NULL) stores "", which stops the
	 * inheritance. */
	struct stanza *st;
	const char *alias;
	const char *parent_ns = xs->cur != NULL ? xs->ns_at[xs->level - 1] : NULL;
	if (uri == NULL)
		uri = "";
	if (parent_ns != NULL && strlen(parent_ns) == urilen &&
	    strncmp(parent_ns, uri, urilen) == 0) {
		st = stanza_new(local, NULL);
		stanza_add_child(xs->cur, st);
		xs->ns_at[xs->level] = parent_ns;
	} else if (xs->cur == NULL && (alias = content_alias(uri, urilen))) {
		/* jabberd2's router writes the stanzas it routes to a
		 * component in jabber:client (or jabber:server): they are
		 * the stream's content all the same, so they are taken in
		 * the stream's own namespace, children included, and the
		 * answers go out in it too. */
		st = stanza_new(local, NS_COMPONENT);
		xs->top = st;
		xs->ns_at[xs->level] = alias;
	} else {
		st = stanza_new(local, scratch_copy(xs, "", uri, urilen));
		if (xs->cur != NULL)
			stanza_add_child(xs->cur, st);
		else
			xs->top = st;
		/* stanza_ns() returns the element's own copy, which lives as
		 * long as the element (NULL for ""). */
		const char *own = stanza_ns(st);
		xs->ns_at[xs->level] = own != NULL ? own : "";
	}
	xs->cur = st;
	xs->level++;
	add_attrs(xs, st, atts);
}

static void XMLCALL
on_end(void *ud, const XML_Char *name)
{
	struct xmlstream *xs = ud;
	(void)name;
	if (dead(xs) || xs->state != XS_OPEN)
		return;
	xs->level--;
	if (xs->level == 0) {
		xs->state = XS_CLOSED;
		if (xs->cb.close != NULL)
			xs->cb.close(xs->arg);
		return;
	}
	if (xs->level > 1) {
		xs->cur = stanza_parent(xs->cur);
		return;
	}
	struct stanza *st = xs->top;
	xs->top = xs->cur = NULL;
	xs->mark = event_end(xs);
	if (xs->cb.stanza != NULL)
		xs->cb.stanza(xs->arg, st);
	else
		stanza_free(st);
}

static void XMLCALL
on_text(void *ud, const XML_Char *s, int len)
{
	struct xmlstream *xs = ud;
	if (dead(xs) || len <= 0)
		return;
	if (xs->level >= 2) {
		stanza_add_text(xs->cur, s, (size_t)len);
		return;
	}
	/* Between stanzas only whitespace may appear (keepalives). */
	for (int i = 0; i < len; i++) {
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r') {
			fail(xs, "bad-format", "text between stanzas");
			return;
		}
	}
	/* Years of whitespace keepalives must not add up to one big stanza. */
	xs->mark = event_end(xs);
}

/* ---- what RFC 6120 section 11.1 forbids: all restricted-xml ---- */

static void XMLCALL
on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
    const XML_Char *pubid, int has_internal_subset)
{
	(void)name;
	(void)sysid;
	(void)pubid;
	(void)has_internal_subset;
	fail(ud, "restricted-xml", "DOCTYPE declaration");
}

static void XMLCALL
on_entity_decl(void *ud, const XML_Char *name, int is_param,
    const XML_Char *value, int value_len, const XML_Char *base,
    const XML_Char *sysid, const XML_Char *pubid, const XML_Char *notation)
{
	(void)name;
	(void)is_param;
	(void)value;
	(void)value_len;
	(void)base;
	(void)sysid;
	(void)pubid;
	(void)notation;
	fail(ud, "restricted-xml", "entity declaration");
}

static void XMLCALL
on_unparsed_entity_decl(void *ud, const XML_Char *name, const XML_Char *base,
    const XML_Char *sysid, const XML_Char *pubid, const XML_Char *notation)
{
	(void)name;
	(void)base;
	(void)sysid;
	(void)pubid;
	(void)notation;
	fail(ud, "restricted-xml", "unparsed entity declaration");
}

static void XMLCALL
on_notation_decl(void *ud, const XML_Char *name, const XML_Char *base,
    const XML_Char *sysid, const XML_Char *pubid)
{
	(void)name;
	(void)base;
	(void)sysid;
	(void)pubid;
	fail(ud, "restricted-xml", "notation declaration");
}

static void XMLCALL
on_comment(void *ud, const XML_Char *data)
{
	(void)data;
	fail(ud, "restricted-xml", "comment");
}

static void XMLCALL
on_pi(void *ud, const XML_Char *target, const XML_Char *data)
{
	(void)target;
	(void)data;
	fail(ud, "restricted-xml", "processing instruction");
}

static void XMLCALL
on_skipped_entity(void *ud, const XML_Char *name, int is_param)
{
	(void)name;
	(void)is_param;
	fail(ud, "restricted-xml", "entity reference");
}

static int XMLCALL
on_external_entity(XML_Parser p, const XML_Char *context,
    const XML_Char *base, const XML_Char *sysid, const XML_Char *pubid)
{
	(void)context;
	(void)base;
	(void)sysid;
	(void)pubid;
	fail(XML_GetUserData(p), "restricted-xml", "external entity reference");
	return XML_STATUS_ERROR;
}

static void
parser_init(struct xmlstream *xs)
{
	/* The encoding argument overrides the document's declaration: an
	 * XMPP stream is UTF-8 (RFC 6120 11.6), whatever the peer claims. */
	XML_Parser p = XML_ParserCreateNS("UTF-8", NS_SEP);
	if (p == NULL)
		log_fatal("out of memory creating an XML parser");
	XML_SetUserData(p, xs);
	XML_SetElementHandler(p, on_start, on_end);
	XML_SetCharacterDataHandler(p, on_text);
	XML_SetStartDoctypeDeclHandler(p, on_doctype);
	XML_SetEntityDeclHandler(p, on_entity_decl);
	XML_SetUnparsedEntityDeclHandler(p, on_unparsed_entity_decl);
	XML_SetNotationDeclHandler(p, on_notation_decl);
	XML_SetCommentHandler(p, on_comment);
	XML_SetProcessingInstructionHandler(p, on_pi);
	XML_SetSkippedEntityHandler(p, on_skipped_entity);
	XML_SetExternalEntityRefHandler(p, on_external_entity);
	XML_SetParamEntityParsing(p, XML_PARAM_ENTITY_PARSING_NEVER);
#ifdef HAVE_XML_SETBILLIONLAUGHSATTACKPROTECTIONMAXIMUMAMPLIFICATION
	/* DOCTYPEs are refused at their first token, so no entity can be
	 * declared at all; this is the second line of defence. */
	XML_SetBillionLaughsAttackProtectionMaximumAmplification(p, 10.0f);
	XML_SetBillionLaughsAttackProtectionActivationThreshold(p,
	    (unsigned long long)xs->max_bytes);
#endif
#ifdef HAVE_XML_SETREPARSEDEFERRALENABLED
	/* Deferral (expat >= 2.6, and Debian's patched 2.5) waits for more
	 * input before re-scanning a large unfinished token: the end of a
	 * big stanza would sit unparsed until the peer sends again. */
	XML_SetReparseDeferralEnabled(p, XML_FALSE);
#endif
	xs->parser = p;
}

struct xmlstream *
xmlstream_new(const struct xmlstream_callbacks *cb, void *arg,
    size_t max_stanza_bytes, unsigned max_depth)
{
	struct xmlstream *xs = xcalloc(1, sizeof(*xs));
	if (cb != NULL)
		xs->cb = *cb;
	xs->arg = arg;
	xs->max_bytes = max_stanza_bytes ? max_stanza_bytes :
	    XMLSTREAM_DEFAULT_MAX_STANZA;
	xs->max_depth = max_depth ? max_depth : XMLSTREAM_DEFAULT_MAX_DEPTH;
	if (xs->max_depth > 1000000)
		xs->max_depth = 1000000;
	xs->ns_at = xreallocarray(NULL, (size_t)xs->max_depth + 2,
	    sizeof(*xs->ns_at));
	parser_init(xs);
	return xs;
}

static void
clear(struct xmlstream *xs)
{
	XML_ParserFree(xs->parser);
	xs->parser = NULL;
	stanza_free(xs->top);
	xs->top = xs->cur = NULL;
	xs->state = XS_PROLOG;
	xs->level = 0;
	xs->fed = xs->mark = 0;
	xs->in_parse = xs->stopped = 0;
	xs->cond = NULL;
	xs->text[0] = '\0';
}

void
xmlstream_free(struct xmlstream *xs)
{
	if (xs == NULL)
		return;
	clear(xs);
	free(xs->ns_at);
	free(xs->scratch);
	free(xs);
}

void
xmlstream_reset(struct xmlstream *xs)
{
	clear(xs);
	parser_init(xs);
}

void
xmlstream_stop(struct xmlstream *xs)
{
	xs->stopped = 1;
	if (xs->in_parse)
		XML_StopParser(xs->parser, XML_FALSE);
}

/* The stream error for an error expat found by itself. */
static const char *
condition_for(enum XML_Error e)
{
	switch (e) {
	case XML_ERROR_NO_MEMORY:
		return "resource-constraint";
	case XML_ERROR_EXTERNAL_ENTITY_HANDLING:
	case XML_ERROR_RECURSIVE_ENTITY_REF:
	case XML_ERROR_BINARY_ENTITY_REF:
	case XML_ERROR_ASYNC_ENTITY:
	case XML_ERROR_PARAM_ENTITY_REF:
	case XML_ERROR_ENTITY_DECLARED_IN_PE:
	case XML_ERROR_AMPLIFICATION_LIMIT_BREACH:
		/* Only reachable through a DTD, which is restricted. */
		return "restricted-xml";
	default:
		/* Syntax, encoding, unbound prefixes (XML namespaces are
		 * part of well-formedness for RFC 6120 4.9.3.13), undefined
		 * entities, junk after the root. */
		return "not-well-formed";
	}
}

int
xmlstream_feed(struct xmlstream *xs, const char *data, size_t len)
{
	if (dead(xs))
		return -1;
	/* Expat lets a UTF-16 byte order mark override the encoding we
	 * force; no UTF-8 stream can start with these bytes anyway. */
	if (xs->fed == 0 && len > 0) {
		unsigned char c = (unsigned char)data[0];
		if (c == 0xfe || c == 0xff || c == 0x00) {
			fail(xs, "unsupported-encoding", "the stream is not UTF-8");
			return -1;
		}
	}
	while (len > 0) {
		uint64_t used = xs->fed - xs->mark;
		if (used >= xs->max_bytes) {
			fail(xs, "policy-violation", "stanza larger than %zu "
			    "bytes", xs->max_bytes);
			return -1;
		}
		uint64_t room = xs->max_bytes - used;
		size_t n = len < room ? len : (size_t)room;
		if (n > INT_MAX)
			n = INT_MAX;
		xs->in_parse = 1;
		enum XML_Status status = XML_Parse(xs->parser, data, (int)n,
		    XML_FALSE);
		xs->in_parse = 0;
		xs->fed += n;
		if (dead(xs))
			return -1;
		if (status != XML_STATUS_OK) {
			enum XML_Error e = XML_GetErrorCode(xs->parser);
			fail(xs, condition_for(e), "line %llu, column %llu: %s",
			    (unsigned long long)XML_GetCurrentLineNumber(xs->parser),
			    (unsigned long long)XML_GetCurrentColumnNumber(xs->parser),
			    XML_ErrorString(e));
			return -1;
		}
		data += n;
		len -= n;
	}
	return 0;
}

const char *
xmlstream_error_condition(const struct xmlstream *xs)
{
	return xs->cond;
}

const char *
xmlstream_error_text(const struct xmlstream *xs)
{
	return xs->cond != NULL ? xs->text : "";
}
