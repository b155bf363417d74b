/*
 * The element tree.
 *
 * Every node is a struct stanza: an element (name, namespace, attributes,
 * children) or a text node (a growable byte buffer).  Children of either
 * kind sit in one doubly linked list in document order, so appending,
 * detaching and freeing are O(1) per node; the public iterators skip text
 * nodes.  stanza_add_text() appends to a trailing text node instead of
 * making a new one, which is how the parser merges the many pieces of
 * character data expat reports for one run of text.
 *
 * Allocation: an element is one block holding the struct and its name;
 * its namespace is a separate string only when it differs from the
 * parent's (so a parsed tree mostly costs one allocation per element); an
 * attribute is one block "name\0value\0".
 *
 * Namespaces are stored raw: NULL inherits, "" is "no namespace" (what
 * xmlns='' declares), anything else is a URI.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "log.h"
#include "stanza.h"
#include "xmalloc.h"

#define NS_XMLNS "http://www.w3.org/2000/xmlns/"

enum node_kind {
	NODE_ELEMENT,
	NODE_TEXT,
};

struct attr {
	char *name;	/* owns the block "name\0value\0" */
	char *value;	/* points into the same block */
};

struct stanza {
	enum node_kind kind;
	struct stanza *parent;
	struct stanza *prev, *next;	/* siblings, elements and text alike */

	/* NODE_ELEMENT */
	struct stanza *first, *last;	/* children, elements and text alike */
	char *ns;			/* NULL: inherited; "": no namespace */
	struct attr *attrs;
	size_t nattrs, attrs_cap;

	/* NODE_TEXT: len bytes, NUL-terminated for convenience */
	char *text;
	size_t len, cap;

	char name[];			/* elements; "" for text nodes */
};

static const struct {
	const char *condition;
	const char *type;
} error_types[] = {
	{ .condition = "bad-request", .type = "modify" },
	{ .condition = "conflict", .type = "cancel" },
	{ .condition = "feature-not-implemented", .type = "cancel" },
	{ .condition = "forbidden", .type = "auth" },
	{ .condition = "gone", .type = "cancel" },
	{ .condition = "internal-server-error", .type = "cancel" },
	{ .condition = "item-not-found", .type = "cancel" },
	{ .condition = "jid-malformed", .type = "modify" },
	{ .condition = "not-acceptable", .type = "modify" },
	{ .condition = "not-allowed", .type = "cancel" },
	{ .condition = "not-authorized", .type = "auth" },
	/* RFC 3920 only, still sent by some servers and clients. */
	{ .condition = "payment-required", .type = "auth" },
	{ .condition = "policy-violation", .type = "modify" },
	{ .condition = "recipient-unavailable", .type = "wait" },
	{ .condition = "redirect", .type = "modify" },
	{ .condition = "registration-required", .type = "auth" },
	{ .condition = "remote-server-not-found", .type = "cancel" },
	{ .condition = "remote-server-timeout", .type = "wait" },
	{ .condition = "resource-constraint", .type = "wait" },
	{ .condition = "service-unavailable", .type = "cancel" },
	{ .condition = "subscription-required", .type = "auth" },
	{ .condition = "undefined-condition", .type = "cancel" },
	{ .condition = "unexpected-request", .type = "wait" },
};

/* ---- nodes ---- */

static struct stanza *
node_new(enum node_kind kind, const char *name)
{
	size_t n = strlen(name);
	struct stanza *st = xcalloc(1, sizeof(*st) + n + 1);
	st->kind = kind;
	memcpy(st->name, name, n + 1);
	return st;
}

static void
node_free(struct stanza *st)
{
	for (size_t i = 0; i < st->nattrs; i++)
		free(st->attrs[i].name);
	free(st->attrs);
	free(st->ns);
	free(st->text);
	free(st);
}

static void
link_child(struct stanza *parent, struct stanza *child)
{
	child->parent = parent;
	child->prev = parent->last;
	child->next = NULL;
	if (parent->last != NULL)
		parent->last->next = child;
	else
		parent->first = child;
	parent->last = child;
}

static void
unlink_child(struct stanza *child)
{
	struct stanza *parent = child->parent;
	if (child->prev != NULL)
		child->prev->next = child->next;
	else
		parent->first = child->next;
	if (child->next != NULL)
		child->next->prev = child->prev;
	else
		parent->last = child->prev;
	child->parent = child->prev = child->next = NULL;
}

/* The stored namespace in force at st: its own or the nearest ancestor's,
 * "" for "no namespace", NULL when nobody on the way up set one. */
static const char *
raw_ns(const struct stanza *st)
{
	for (; st != NULL; st = st->parent)
		if (st->ns != NULL)
			return st->ns;
	return NULL;
}

/* NULL and "" both mean "no namespace" when comparing. */
static int
ns_equal(const char *a, const char *b)
{
	if (a == NULL)
		a = "";
	if (b == NULL)
		b = "";
	return strcmp(a, b) == 0;
}

struct stanza *
stanza_new(const char *name, const char *ns)
{
	struct stanza *st = node_new(NODE_ELEMENT, name);
	if (ns != NULL)
		st->ns = xstrdup(ns);
	return st;
}

void
stanza_free(struct stanza *st)
{
	if (st == NULL)
		return;
	/* The contract forbids freeing an attached node; detaching first
	 * keeps that bug from leaving the parent pointing at freed memory. */
	if (st->parent != NULL) {
		log_warn("stanza_free: <%s/> is still attached to <%s/>",
		    st->name, st->parent->name);
		unlink_child(st);
	}
	/* Iterative so that no tree, however deep, can exhaust the stack:
	 * go down to a leaf, free it, go back to its parent, repeat. */
	struct stanza *n = st;
	for (;;) {
		while (n->first != NULL)
			n = n->first;
		if (n == st)
			break;
		struct stanza *p = n->parent;
		p->first = n->next;
		node_free(n);
		n = p;
	}
	node_free(st);
}

static struct stanza *
copy_tree(const struct stanza *st, const char *ns)
{
	struct stanza *c;
	if (st->kind == NODE_TEXT) {
		c = node_new(NODE_TEXT, "");
		c->text = xmalloc(st->len + 1);
		memcpy(c->text, st->text, st->len + 1);
		c->len = c->cap = st->len;
		return c;
	}
	c = stanza_new(st->name, ns);
	if (st->nattrs > 0) {
		c->attrs = xreallocarray(NULL, st->nattrs, sizeof(*c->attrs));
		c->attrs_cap = c->nattrs = st->nattrs;
		for (size_t i = 0; i < st->nattrs; i++) {
			const struct attr *a = &st->attrs[i];
			size_t n = strlen(a->name) + 1;
			size_t v = strlen(a->value) + 1;
			c->attrs[i].name = xmalloc(n + v);
			memcpy(c->attrs[i].name, a->name, n);
			memcpy(c->attrs[i].name + n, a->value, v);
			c->attrs[i].value = c->attrs[i].name + n;
		}
	}
	/* Recursion depth is the tree depth: parsed trees are bounded by the
	 * stream's depth limit. */
	for (const struct stanza *k = st->first; k != NULL; k = k->next)
		link_child(c, copy_tree(k, k->kind == NODE_ELEMENT ? k->ns : NULL));
	return c;
}

struct stanza *
stanza_copy(const struct stanza *st)
{
	return copy_tree(st, raw_ns(st));
}

const char *
stanza_name(const struct stanza *st)
{
	return st->name;
}

const char *
stanza_ns(const struct stanza *st)
{
	const char *ns = raw_ns(st);
	return ns != NULL && *ns != '\0' ? ns : NULL;
}

struct stanza *
stanza_parent(const struct stanza *st)
{
	return st->parent;
}

/* ---- attributes ---- */

static struct attr *
find_attr(const struct stanza *st, const char *name)
{
	for (size_t i = 0; i < st->nattrs; i++)
		if (strcmp(st->attrs[i].name, name) == 0)
			return &st->attrs[i];
	return NULL;
}

const char *
stanza_attr(const struct stanza *st, const char *name)
{
	const struct attr *a = find_attr(st, name);
	return a != NULL ? a->value : NULL;
}

void
stanza_set_attr(struct stanza *st, const char *name, const char *value)
{
	struct attr *a = find_attr(st, name);
	if (value == NULL) {
		if (a == NULL)
			return;
		free(a->name);
		size_t i = (size_t)(a - st->attrs);
		memmove(a, a + 1, (st->nattrs - i - 1) * sizeof(*a));
		st->nattrs--;
		return;
	}
	size_t n = strlen(name) + 1;
	size_t v = strlen(value) + 1;
	char *block = xmalloc(n + v);
	memcpy(block, name, n);
	memcpy(block + n, value, v);
	if (a != NULL) {
		/* Replace in place: attribute order stays as first set. */
		free(a->name);
	} else {
		if (st->nattrs == st->attrs_cap) {
			st->attrs_cap = st->attrs_cap ? st->attrs_cap * 2 : 4;
			st->attrs = xreallocarray(st->attrs, st->attrs_cap,
			    sizeof(*st->attrs));
		}
		a = &st->attrs[st->nattrs++];
	}
	a->name = block;
	a->value = block + n;
}

int
stanza_attr_at(const struct stanza *st, size_t i, const char **name,
    const char **value)
{
	if (i >= st->nattrs)
		return 0;
	if (name != NULL)
		*name = st->attrs[i].name;
	if (value != NULL)
		*value = st->attrs[i].value;
	return 1;
}

/* ---- children and text ---- */

struct stanza *
stanza_add_child(struct stanza *parent, struct stanza *child)
{
	/* Attaching a node twice would corrupt two trees (or make a cycle);
	 * there is no safe way to carry on. */
	if (child->parent != NULL)
		log_fatal("stanza_add_child: <%s/> already has a parent",
		    child->name);
	if (child == parent || parent->kind != NODE_ELEMENT)
		log_fatal("stanza_add_child: bad parent for <%s/>", child->name);
	link_child(parent, child);
	return child;
}

struct stanza *
stanza_new_child(struct stanza *parent, const char *name, const char *ns)
{
	return stanza_add_child(parent, stanza_new(name, ns));
}

void
stanza_add_text(struct stanza *st, const char *text, size_t len)
{
	if (len == 0)
		return;
	struct stanza *t = st->last;
	if (t == NULL || t->kind != NODE_TEXT) {
		t = node_new(NODE_TEXT, "");
		link_child(st, t);
	}
	if (len > SIZE_MAX / 2 - t->len)
		log_fatal("stanza_add_text: text too long");
	if (t->len + len + 1 > t->cap) {
		/* Doubling keeps merging many small pieces linear. */
		size_t cap = t->cap ? t->cap * 2 : 64;
		if (cap < t->len + len + 1)
			cap = t->len + len + 1;
		t->text = xreallocarray(t->text, cap, 1);
		t->cap = cap;
	}
	memcpy(t->text + t->len, text, len);
	t->len += len;
	t->text[t->len] = '\0';
}

struct stanza *
stanza_new_text_child(struct stanza *parent, const char *name,
    const char *text)
{
	struct stanza *c = stanza_new_child(parent, name, NULL);
	if (text != NULL)
		stanza_add_text(c, text, strlen(text));
	return c;
}

void
stanza_remove_child(struct stanza *parent, struct stanza *child)
{
	if (child->parent != parent || parent == NULL) {
		log_warn("stanza_remove_child: <%s/> is not a child of <%s/>",
		    child->name, parent != NULL ? parent->name : "(null)");
		return;
	}
	/* A detached child that inherited its namespace would silently change
	 * meaning; pin the namespace it had. */
	if (child->ns == NULL) {
		const char *ns = raw_ns(parent);
		if (ns != NULL)
			child->ns = xstrdup(ns);
	}
	unlink_child(child);
}

static struct stanza *
element_from(struct stanza *n)
{
	while (n != NULL && n->kind != NODE_ELEMENT)
		n = n->next;
	return n;
}

struct stanza *
stanza_first_child(const struct stanza *st)
{
	return element_from(st->first);
}

struct stanza *
stanza_next_sibling(const struct stanza *st)
{
	return element_from(st->next);
}

struct stanza *
stanza_child(const struct stanza *st, const char *name, const char *ns)
{
	const char *inherited = NULL;
	int resolved = 0;
	for (struct stanza *c = element_from(st->first); c != NULL;
	    c = element_from(c->next)) {
		if (name != NULL && strcmp(c->name, name) != 0)
			continue;
		if (ns != NULL) {
			const char *cns = c->ns;
			if (cns == NULL) {
				if (!resolved) {
					inherited = raw_ns(st);
					resolved = 1;
				}
				cns = inherited;
			}
			if (!ns_equal(cns, ns))
				continue;
		}
		return c;
	}
	return NULL;
}

char *
stanza_text(const struct stanza *st)
{
	size_t total = 0;
	for (const struct stanza *c = st->first; c != NULL; c = c->next)
		if (c->kind == NODE_TEXT)
			total += c->len;
	char *s = xmalloc(total + 1), *p = s;
	for (const struct stanza *c = st->first; c != NULL; c = c->next) {
		if (c->kind == NODE_TEXT) {
			memcpy(p, c->text, c->len);
			p += c->len;
		}
	}
	*p = '\0';
	return s;
}

size_t
stanza_text_length(const struct stanza *st)
{
	size_t total = 0;
	for (const struct stanza *c = st->first; c != NULL; c = c->next)
		if (c->kind == NODE_TEXT)
			total += c->len;
	return total;
}

char *
stanza_child_text(const struct stanza *st, const char *name)
{
	const struct stanza *c = stanza_child(st, name, NULL);
	return c != NULL ? stanza_text(c) : NULL;
}

/* ---- serialization ---- */

/*
 * The serializer writes into one growable buffer and hands it to the
 * evbuffer at the end: one append per stanza instead of one per token.
 */
struct out {
	char *p;
	size_t len, cap;
};

static void
out_add(struct out *o, const void *s, size_t n)
{
	if (n > o->cap - o->len) {
		if (n > SIZE_MAX / 2 - o->len)
			log_fatal("stanza serialization too large");
		size_t cap = o->cap ? o->cap * 2 : 512;
		if (cap < o->len + n)
			cap = o->len + n;
		o->p = xreallocarray(o->p, cap, 1);
		o->cap = cap;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
}

static void
out_str(struct out *o, const char *s)
{
	out_add(o, s, strlen(s));
}

/*
 * Length of the UTF-8 sequence at s that XML 1.0 can carry: > 0 to copy
 * that many bytes, 0 when the bytes are not UTF-8 (no shortest form, a
 * surrogate, past U+10FFFF, truncated), -3 for U+FFFE and U+FFFF (valid
 * UTF-8 but not XML characters).
 */
static int
utf8_char(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	unsigned char lo = 0x80, hi = 0xbf;
	int len;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else {
		return 0;
	}
	if (n < (size_t)len || s[1] < lo || s[1] > hi)
		return 0;
	for (int i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	if (c == 0xef && s[1] == 0xbf && (s[2] == 0xbe || s[2] == 0xbf))
		return -3;
	return len;
}

/*
 * Escape text or an attribute value.  Runs of bytes that need nothing are
 * copied in one go.  In attributes TAB and LF are escaped too, and CR
 * everywhere, because a parser normalizes them otherwise and the value
 * would not survive a round trip.  Other C0 controls cannot be written in
 * XML 1.0 and are dropped; bytes that are not UTF-8 become U+FFFD, so text
 * from a legacy network in some other charset can never make the XMPP
 * server close our stream.
 */
static void
out_escaped(struct out *o, const char *s, size_t n, int in_attr)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + n;
	const unsigned char *run = p;
	while (p < end) {
		unsigned char c = *p;
		const char *rep;
		size_t skip = 1;
		if (c >= 0x80) {
			int k = utf8_char(p, (size_t)(end - p));
			if (k > 0) {
				p += k;
				continue;
			}
			if (k == 0) {
				rep = "\xef\xbf\xbd";
			} else {
				rep = "";
				skip = (size_t)-k;
			}
		} else if (c >= 0x20) {
			switch (c) {
			case '&': rep = "&amp;"; break;
			case '<': rep = "&lt;"; break;
			case '>': rep = "&gt;"; break;
			case '"': rep = "&quot;"; break;
			case '\'': rep = "&apos;"; break;
			default:
				p++;
				continue;
			}
		} else if (c == '\t' || c == '\n') {
			if (!in_attr) {
				p++;
				continue;
			}
			rep = c == '\t' ? "&#9;" : "&#10;";
		} else if (c == '\r') {
			rep = "&#13;";
		} else {
			rep = "";
		}
		out_add(o, run, (size_t)(p - run));
		out_str(o, rep);
		p += skip;
		run = p;
	}
	out_add(o, run, (size_t)(p - run));
}

static void
out_prefix(struct out *o, unsigned n)
{
	char buf[16];
	size_t i = sizeof(buf);
	do {
		buf[--i] = (char)('0' + n % 10);
		n /= 10;
	} while (n > 0);
	out_add(o, "ns", 2);
	out_add(o, buf + i, sizeof(buf) - i);
}

static void
out_attr(struct out *o, const struct attr *a, unsigned *prefixes)
{
	const char *name = a->name;
	/* Declarations are derived from the tree; a stored one would clash
	 * with the ones written here. */
	if (strncmp(name, "xmlns", 5) == 0 && (name[5] == '\0' || name[5] == ':'))
		return;
	const char *bar = strrchr(name, '|');
	if (bar != NULL) {
		/* "URI|local": a local name cannot contain '|', a URI can. */
		const char *local = bar + 1;
		size_t urilen = (size_t)(bar - name);
		/* Nothing may be bound to the xmlns namespace. */
		if (*local == '\0' || (urilen == strlen(NS_XMLNS) &&
		    strncmp(name, NS_XMLNS, urilen) == 0))
			return;
		out_add(o, " ", 1);
		if (urilen == strlen(NS_XML) && strncmp(name, NS_XML, urilen) == 0) {
			out_add(o, "xml:", 4);
		} else if (urilen > 0) {
			/* A prefix per attribute: unique on this element, and
			 * redeclaring it on a descendant is legal. */
			unsigned k = (*prefixes)++;
			out_add(o, "xmlns:", 6);
			out_prefix(o, k);
			out_add(o, "='", 2);
			out_escaped(o, name, urilen, 1);
			out_add(o, "' ", 2);
			out_prefix(o, k);
			out_add(o, ":", 1);
		}
		out_str(o, local);
	} else {
		/* A prefixed name other than xml: would be unbound, and an
		 * unparsable stanza costs the whole component connection. */
		const char *colon = strchr(name, ':');
		if (colon != NULL && !(colon - name == 3 &&
		    strncmp(name, "xml", 3) == 0)) {
			log_warn("stanza: not writing attribute '%s' (unbound "
			    "prefix)", name);
			return;
		}
		out_add(o, " ", 1);
		out_str(o, name);
	}
	out_add(o, "='", 2);
	out_escaped(o, a->value, strlen(a->value), 1);
	out_add(o, "'", 1);
}

/* ns is the element's namespace in force, ctx the default namespace where
 * it is written. */
static void
out_element(struct out *o, const struct stanza *st, const char *ns,
    const char *ctx)
{
	/* The xml namespace cannot be made the default one: such an
	 * element keeps the predeclared prefix and its children the
	 * default namespace around it. */
	int xml_prefix = ns != NULL && strcmp(ns, NS_XML) == 0;
	const char *child_ctx = xml_prefix ? ctx : ns;
	out_add(o, xml_prefix ? "<xml:" : "<", xml_prefix ? 5 : 1);
	out_str(o, st->name);
	if (!xml_prefix && !ns_equal(ns, ctx)) {
		out_add(o, " xmlns='", 8);
		if (ns != NULL)
			out_escaped(o, ns, strlen(ns), 1);
		out_add(o, "'", 1);
	}
	unsigned prefixes = 0;
	for (size_t i = 0; i < st->nattrs; i++)
		out_attr(o, &st->attrs[i], &prefixes);
	if (st->first == NULL) {
		out_add(o, "/>", 2);
		return;
	}
	out_add(o, ">", 1);
	/* Recursion depth is the tree depth: see copy_tree(). */
	for (const struct stanza *c = st->first; c != NULL; c = c->next) {
		if (c->kind == NODE_TEXT)
			out_escaped(o, c->text, c->len, 0);
		else
			out_element(o, c, c->ns != NULL ? c->ns : ns, child_ctx);
	}
	out_add(o, xml_prefix ? "</xml:" : "</", xml_prefix ? 6 : 2);
	out_str(o, st->name);
	out_add(o, ">", 1);
}

static void
serialize(struct out *o, const struct stanza *st, const char *context_ns)
{
	/* An element with no namespace up its whole ancestry takes the one
	 * where it is written: stanza_new("iq", NULL) goes out as a stanza
	 * of the stream it is sent on. */
	const char *ns = raw_ns(st);
	if (ns == NULL)
		ns = context_ns;
	out_element(o, st, ns, context_ns);
}

static void
free_reference(const void *data, size_t len, void *arg)
{
	(void)len;
	(void)arg;
	free((void *)data);
}

void
stanza_serialize(const struct stanza *st, const char *context_ns,
    struct evbuffer *out)
{
	struct out o = { 0 };
	serialize(&o, st, context_ns);
	/* Small stanzas are copied into the evbuffer's free space; big ones
	 * are handed over without a copy. */
	if (o.len >= 16384 &&
	    evbuffer_add_reference(out, o.p, o.len, free_reference, NULL) == 0)
		return;
	if (evbuffer_add(out, o.p, o.len) != 0)
		log_fatal("out of memory appending %zu bytes to a buffer", o.len);
	free(o.p);
}

char *
stanza_to_string(const struct stanza *st)
{
	struct out o = { 0 };
	serialize(&o, st, NS_COMPONENT);
	out_add(&o, "", 1);
	return o.p;
}

/* ---- replies ---- */

const char *
stanza_error_type(const char *condition)
{
	if (condition == NULL)
		return NULL;
	for (size_t i = 0; i < sizeof(error_types) / sizeof(error_types[0]); i++)
		if (strcmp(error_types[i].condition, condition) == 0)
			return error_types[i].type;
	return NULL;
}

struct stanza *
stanza_reply(const struct stanza *req, const char *type)
{
	struct stanza *r = stanza_new(req->name, raw_ns(req));
	const char *v;
	if ((v = stanza_attr(req, "from")) != NULL)
		stanza_set_attr(r, "to", v);
	if ((v = stanza_attr(req, "to")) != NULL)
		stanza_set_attr(r, "from", v);
	if ((v = stanza_attr(req, "id")) != NULL)
		stanza_set_attr(r, "id", v);
	if (type != NULL)
		stanza_set_attr(r, "type", type);
	return r;
}

struct stanza *
stanza_error_reply(const struct stanza *req, const char *condition,
    const char *text)
{
	const char *type = stanza_error_type(condition);
	if (type == NULL) {
		/* A made-up condition would be a protocol error of our own. */
		log_warn("stanza_error_reply: unknown condition '%s', sending "
		    "undefined-condition", condition != NULL ? condition : "(null)");
		condition = "undefined-condition";
		type = "cancel";
	}
	struct stanza *r = stanza_reply(req, "error");
	struct stanza *e = stanza_new_child(r, "error", NULL);
	stanza_set_attr(e, "type", type);
	stanza_new_child(e, condition, NS_STANZAS);
	if (text != NULL && *text != '\0') {
		struct stanza *t = stanza_new_child(e, "text", NS_STANZAS);
		stanza_add_text(t, text, strlen(text));
	}
	return r;
}

void
stanza_add_delay(struct stanza *st, const char *from, time_t stamp)
{
	struct tm tm;
	char when[32];
	if (stamp <= 0 || gmtime_r(&stamp, &tm) == NULL ||
	    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		return;
	struct stanza *d = stanza_new_child(st, "delay", "urn:xmpp:delay");
	stanza_set_attr(d, "from", from);
	stanza_set_attr(d, "stamp", when);
}
