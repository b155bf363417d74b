/*
 * Secrets out of logs.  Debug logging shows what arrives from the XMPP
 * server, and that includes what users type into forms: registration
 * (XEP-0077, with data forms or legacy <password/>), ad-hoc settings
 * (XEP-0050), and messages to NickServ.  These functions decide what is
 * a secret and give a copy fit for a log; the protocol logs of the
 * backends use redact_irc_line() the same way.
 *
 * What counts as a secret, by rule rather than by list so that a field
 * added later is covered too: a text-private field; a field the
 * backend's registration marks secret; a field whose var (the part after
 * a scope's '/') names a password, a secret, a token or NickServ; the
 * legacy <password/> of jabber:iq:register; the body of a message to
 * NickServ (nickserv%server@gw, or nickserv@gw) or of one that starts
 * with "/msg NickServ", "/ns" or "/nickserv".
 */
#ifndef CAUSEWAY_REDACT_H
#define CAUSEWAY_REDACT_H

struct backend;
struct stanza;

#define REDACTED "[redacted]"

/* Is var a secret field (type: the field's type attribute, may be NULL;
 * b: the backend whose forms these are, may be NULL)? */
int redact_is_secret_field(const char *var, const char *type,
    const struct backend *b);
/* Is this message body for NickServ (to: the message's to, may be
 * NULL)? */
int redact_is_nickserv(const char *to, const char *body);
/* The stanza serialized for a log with every secret replaced by
 * REDACTED; caller frees. */
char *redact_stanza_text(const struct stanza *st, const struct backend *b);

#endif
