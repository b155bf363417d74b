/*
 * A stanza is an XML element tree: a name, a namespace URI, attributes and
 * an ordered list of children, each either an element or a text node.
 *
 * Ownership: a tree owns all its nodes.  stanza_add_child() takes the
 * child; stanza_free() frees an element and everything below it (only a
 * root may be freed, never a node still attached to a parent).  Strings
 * returned by accessors are borrowed from the tree and live as long as the
 * node; functions that return memory for the caller say "caller frees".
 *
 * Namespaces: each element stores the URI it was created with, or NULL to
 * mean "the namespace of my parent" (resolved by stanza_ns()); "" means
 * "no namespace" (xmlns='') and stops the inheritance.  An element with no
 * namespace anywhere up its ancestry is written in the namespace of the
 * place it is serialized to.  The serializer writes an xmlns attribute
 * only where an element's namespace differs from its context, so trees
 * round-trip without redundant declarations.  Attribute names are plain
 * strings; "xml:lang" (any attribute in the xml namespace) is stored as
 * "xml:local".  Other namespaced attributes are stored as "URI|local"
 * (with '|' as separator) and serialized with generated prefixes
 * (xmlns:ns0=...).  Namespace declarations are not attributes: stored
 * "xmlns" / "xmlns:*" attributes, and names with any other unbound
 * prefix, are not written.
 */
#ifndef CAUSEWAY_STANZA_H
#define CAUSEWAY_STANZA_H

#include <stddef.h>
#include <time.h>

struct evbuffer;
struct stanza;

#define NS_COMPONENT "jabber:component:accept"
#define NS_STREAMS "http://etherx.jabber.org/streams"
#define NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"
#define NS_STREAM_ERRORS "urn:ietf:params:xml:ns:xmpp-streams"
#define NS_XML "http://www.w3.org/XML/1998/namespace"

/* ns may be NULL: the element inherits its parent's namespace. */
struct stanza *stanza_new(const char *name, const char *ns);
/* NULL is fine.  A node still attached is detached first (and logged). */
void stanza_free(struct stanza *st);
/* Deep copy; the copy has no parent and keeps the resolved namespace. */
struct stanza *stanza_copy(const struct stanza *st);

const char *stanza_name(const struct stanza *st);
/* The resolved namespace: own, else the nearest ancestor's; NULL if none
 * (also for an element explicitly in no namespace). */
const char *stanza_ns(const struct stanza *st);
struct stanza *stanza_parent(const struct stanza *st);

/* Borrowed value, or NULL when absent. */
const char *stanza_attr(const struct stanza *st, const char *name);
/* Copies name and value; value NULL removes the attribute. */
void stanza_set_attr(struct stanza *st, const char *name, const char *value);
/* Iterate attributes: i from 0 while it returns 1. */
int stanza_attr_at(const struct stanza *st, size_t i, const char **name,
    const char **value);

/* Takes child (which must have no parent) and returns it. */
struct stanza *stanza_add_child(struct stanza *parent, struct stanza *child);
/* stanza_add_child(parent, stanza_new(name, ns)). */
struct stanza *stanza_new_child(struct stanza *parent, const char *name,
    const char *ns);
/* Appends a text node (copied; len bytes, need not be NUL-terminated). */
void stanza_add_text(struct stanza *st, const char *text, size_t len);
/* Adds <name>text</name> in the parent's namespace; returns the child. */
struct stanza *stanza_new_text_child(struct stanza *parent, const char *name,
    const char *text);
/* Detaches child from its parent (caller then owns it).  A child that
 * inherited its namespace keeps it. */
void stanza_remove_child(struct stanza *parent, struct stanza *child);

/* Element children only, in document order. */
struct stanza *stanza_first_child(const struct stanza *st);
struct stanza *stanza_next_sibling(const struct stanza *st);
/* First element child with this name (NULL = any) and namespace (NULL =
 * any); borrowed. */
struct stanza *stanza_child(const struct stanza *st, const char *name,
    const char *ns);
/* Concatenation of the direct text children; caller frees ("" if none). */
char *stanza_text(const struct stanza *st);
/* Bytes stanza_text() would hold, NULs included: a text built in code may
 * hold a NUL that the C string would silently cut at. */
size_t stanza_text_length(const struct stanza *st);
/* Text of the first child <name> in any namespace; caller frees; NULL if
 * there is no such child. */
char *stanza_child_text(const struct stanza *st, const char *name);

/*
 * Serialization.  context_ns is the default namespace in force where the
 * element is written (for a top-level stanza on a component stream,
 * NS_COMPONENT): an xmlns attribute is written only when they differ.
 * Text and attribute values are escaped (& < > " '; in attributes also
 * TAB, LF and CR, and CR in text, as character references so they
 * survive a parser's normalization), and characters that XML 1.0 cannot
 * carry (controls other than TAB, LF, CR; U+FFFE, U+FFFF) are dropped.
 * Bytes that are not UTF-8 are written as U+FFFD, so text in a legacy
 * charset can never break the stream.  Element and attribute names are
 * written as given: they must be XML names.
 */
void stanza_serialize(const struct stanza *st, const char *context_ns,
    struct evbuffer *out);
/* The same into a new string (caller frees); context NS_COMPONENT. */
char *stanza_to_string(const struct stanza *st);

/*
 * XEP-0203: marks st as sent at stamp (UTC seconds) by from, when the
 * network says a message is older than its arrival (a replay, a lagging
 * link); stamp <= 0 adds nothing.
 */
void stanza_add_delay(struct stanza *st, const char *from, time_t stamp);

/*
 * Replies.  stanza_reply() makes an element of the same name with to/from
 * swapped, the same id and the given type (NULL: no type).
 * stanza_error_reply() does the same with type='error' and an <error/>
 * carrying the RFC 6120 condition (its error type, cancel/modify/auth/wait,
 * is taken from the condition) and an optional human-readable text; an
 * unknown condition is sent as undefined-condition (and logged).  Never
 * answer a type='error' stanza with an error (RFC 6120 8.3.1): that check
 * is the caller's.  Both return a new tree; the caller owns it.
 */
struct stanza *stanza_reply(const struct stanza *req, const char *type);
struct stanza *stanza_error_reply(const struct stanza *req,
    const char *condition, const char *text);
/* "cancel", "modify", "auth" or "wait" for a defined condition; NULL for
 * an unknown one. */
const char *stanza_error_type(const char *condition);

#endif
