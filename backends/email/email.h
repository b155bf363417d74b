/*
 * The email backend's parts speak to each other through this header:
 * email.c (the backend: registration, sessions, outbox, contacts) hands
 * blocking work to email_imap.c (IMAP over libetpan on email_net) on the
 * worker pool; email_smtp.c (libcurl) runs on the loop.
 *
 * The IMAP functions below run on a worker thread: they read only the
 * account given (a copy the job owns) and touch nothing of the loop's.
 */
#ifndef CAUSEWAY_EMAIL_H
#define CAUSEWAY_EMAIL_H

#include <stddef.h>
#include <stdint.h>

#include "email_mime.h"

enum email_security {
	EMAIL_TLS,             /* implicit TLS */
	EMAIL_STARTTLS,
	EMAIL_PLAIN,           /* only where the operator allows it */
};

/* One user's mail account with every default resolved (owned copies). */
struct email_account {
	char *email, *name;
	char *imap_host, *imap_user, *imap_password;
	int imap_port;
	enum email_security imap_security;
	char *smtp_host, *smtp_user, *smtp_password;
	int smtp_port;
	enum email_security smtp_security;
	int smtp_no_auth;      /* the operator lets this SMTP host take mail
	                        * without AUTH */
	int imap_trusted;      /* the host is the operator's (a preset): */
	int smtp_trusted;      /* else the destination policy applies */
	int mark_read;
	int sent_copy;         /* replies copied to the Sent mailbox */
	/* From the component section. */
	char *ca_file;
	int timeout;           /* seconds per operation, in all */
	size_t fetch_max;      /* bytes fetched per mail */
	size_t text_max;       /* bytes of text shown per mail */
};

struct email_account *email_account_copy(const struct email_account *a);
void email_account_free(struct email_account *a);

/* ---- email_imap.c ---- */

struct email_imap;

enum email_fail {
	EMAIL_FAIL_NONE,
	EMAIL_FAIL_NETWORK,    /* unreachable, timeout, TLS, protocol */
	EMAIL_FAIL_AUTH,       /* the server refused the login */
};

/* Connects, secures, logs in and learns the capabilities.  NULL with
 * *why and err (for the user: the server's own words where it gave
 * them) on failure. */
struct email_imap *email_imap_open(const struct email_account *a,
    enum email_fail *why, char *err, size_t errlen);
/* SELECT INBOX: its UIDVALIDITY and UIDNEXT.  -1 with err. */
int email_imap_select(struct email_imap *im, uint32_t *uidvalidity,
    uint32_t *uidnext, char *err, size_t errlen);

struct email_fetched {
	uint32_t uid;
	size_t size;           /* RFC822.SIZE */
	struct email_text text;
};
/* The mails with UID > after, oldest first, at most max of them (*more
 * set when there are others), parsed; \Seen set on them when the
 * account asks.  -1 with err (the connection is then unusable). */
int email_imap_fetch_new(struct email_imap *im, const struct email_account *a,
    uint32_t after, size_t max, struct email_fetched **out, size_t *n,
    int *more, char *err, size_t errlen);
/* The newest max unread mails with UID < before, oldest first, parsed
 * (and marked \Seen when the account asks).  -1 with err. */
int email_imap_fetch_unseen(struct email_imap *im,
    const struct email_account *a, uint32_t before, size_t max,
    struct email_fetched **out, size_t *n, char *err, size_t errlen);
void email_fetched_free(struct email_fetched *v, size_t n);
int email_imap_has_idle(const struct email_imap *im);
/* IDLE: 1 when the server has already said something (call
 * email_imap_idle_done at once), 0 when idling, -1 with err. */
int email_imap_idle(struct email_imap *im, char *err, size_t errlen);
/* DONE, and the server's answer.  -1 with err. */
int email_imap_idle_done(struct email_imap *im, char *err, size_t errlen);
/* While idling, the socket became readable: reads what the server
 * said without ending IDLE.  1 when the mailbox changed (EXISTS,
 * EXPUNGE, FETCH, BYE: a resync is due), 0 when it was only talk
 * (keepalives such as "* OK Still here"), -1 with err. */
int email_imap_idle_peek(struct email_imap *im, char *err, size_t errlen);
/* \Seen on the mails uids of the selected INBOX.  -1 with err. */
int email_imap_mark_seen(struct email_imap *im, const uint32_t *uids,
    size_t n, char *err, size_t errlen);
/* A copy of mail (RFC 5322, CRLF lines) in the Sent mailbox (the one
 * marked \Sent, else "Sent"), flagged \Seen.  -1 with err (the
 * server's words: no such mailbox, read-only...). */
int email_imap_append_sent(struct email_imap *im, const char *mail,
    size_t len, char *err, size_t errlen);
/* The socket to watch while idling. */
int email_imap_fd(const struct email_imap *im);
/* LOGOUT (briefly), then frees; NULL is a no-op. */
void email_imap_close(struct email_imap *im);
/* Frees without a word to the server. */
void email_imap_abort(struct email_imap *im);

/* ---- email_smtp.c ---- */

enum email_smtp_result {
	EMAIL_SMTP_OK,
	EMAIL_SMTP_TEMP,       /* 4xx, or no connection: try again later */
	EMAIL_SMTP_PERM,       /* 5xx: tell the user */
};

/* Once, on the loop thread, before any send. */
void email_smtp_init(void);

struct email_smtp;
/* A transfer's end, on the loop: res (OK / TEMP / PERM), why (NONE,
 * AUTH for a refused password, NETWORK otherwise) and err for the
 * user (the server's own reply where it gave one). */
typedef void (*email_smtp_cb)(void *arg, enum email_smtp_result res,
    enum email_fail why, const char *err);
/* Starts an SMTP session on the loop: TLS as the account says, AUTH
 * (required unless smtp_no_auth), then with mail the RFC 5322 text
 * (CRLF lines) from the account's address to rcpt, without it only a
 * NOOP (the registration check).  A host the user gave passes the
 * destination policy first and curl connects to the address checked.
 * cb runs exactly once, never before this returns. */
struct email_smtp *email_smtp_start(const struct email_account *a,
    const char *rcpt, const char *mail, email_smtp_cb cb, void *arg);

#endif
