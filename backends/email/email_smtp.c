/*
 * SMTP for the email backend, on worker threads.
 *
 * Sending is libesmtp's, with an SSL_CTX of our own (peer verification,
 * the operator's ca_file, the host name checked through the context's
 * verify parameters, so every SSL libesmtp makes from it inherits
 * them), and its certificate events answered "not acceptable".
 *
 * That context stops at TLS 1.2.  With TLS 1.3 the server sends its
 * session tickets after the handshake has finished on our side, and
 * libesmtp's loop, once it has buffered the EHLO that follows STARTTLS,
 * asks poll() for both reading and writing and serves reading first: if
 * a ticket has arrived by then, it waits for the EHLO answer without
 * having sent the EHLO, until the timeout (Postfix then logs "lost
 * connection after STARTTLS"; about one send in three stalled so on
 * loopback).  TLS 1.2 has nothing to say after its Finished message.  A
 * server that refuses TLS 1.2 is tried again at once with TLS 1.3.  The
 * outcome is read from the message's and the recipient's status, not
 * only from smtp_start_session(): 2xx delivered, 5xx permanent, the
 * rest (4xx, no connection, timeouts) temporary.
 *
 * libesmtp cannot authenticate without sending a mail, and registration
 * must check the password first: email_smtp_check() is a short client
 * of its own on email_net (EHLO, STARTTLS, EHLO, AUTH PLAIN, QUIT).
 *
 * libesmtp has no implicit TLS (port 465); registration refuses
 * smtp_security = tls with a clear text (email.c).
 */
#include "autoconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <auth-client.h>
#include <libesmtp.h>

#include "email.h"
#include "email_buf.h"
#include "email_net.h"
#include "xmalloc.h"

void
email_smtp_init(void)
{
	auth_client_init();
}

/* ---- the AUTH check ---- */

/* A reply (possibly multi-line): its code, its text lines joined with
 * a space (clean, one line) in text; -1 on a connection error. */
static int
reply(struct email_net *n, char *text, size_t tlen, int *has_auth,
    int *has_starttls)
{
	char line[1024];
	size_t lines = 0;
	text[0] = '\0';
	for (;;) {
		if (email_net_read_line(n, line, sizeof(line)) < 0)
			return -1;
		if (++lines > 100 || strlen(line) < 3 ||
		    line[0] < '1' || line[0] > '5') {
			snprintf(text, tlen, "the SMTP server sent something "
			    "that is not SMTP");
			return -1;
		}
		const char *t = line[3] ? line + 4 : "";
		if (has_auth && strncasecmp(t, "AUTH", 4) == 0 &&
		    strstr(t, "PLAIN") != NULL)
			*has_auth = 1;
		if (has_starttls && strncasecmp(t, "STARTTLS", 8) == 0)
			*has_starttls = 1;
		size_t l = strlen(text), tl = strlen(t);
		if (l > 0 && l + 1 < tlen)
			text[l++] = ' ';
		if (tl > tlen - l - 1)
			tl = tlen - l - 1;
		memcpy(text + l, t, tl);
		text[l + tl] = '\0';
		if (line[3] != '-')
			return atoi(line);
	}
}

static int
command(struct email_net *n, const char *cmd)
{
	return email_net_write(n, cmd, strlen(cmd)) < 0 ? -1 : 0;
}

int
email_smtp_check(const struct email_account *a, enum email_fail *why,
    char *err, size_t errlen)
{
	char text[512];
	*why = EMAIL_FAIL_NETWORK;
	struct email_net *n = email_net_connect(a->smtp_host, a->smtp_port,
	    a->timeout, err, errlen);
	if (n == NULL)
		return -1;
	email_net_set_budget(n, 256 * 1024);
	SSL_CTX *ctx = NULL;
	int r = -1, code, auth = 0, starttls = 0;
	if (a->smtp_security != EMAIL_PLAIN &&
	    (ctx = email_net_ctx(a->ca_file, err, errlen)) == NULL)
		goto out;
	if (a->smtp_security == EMAIL_TLS && email_net_start_tls(n, ctx,
	    a->smtp_host, err, errlen) != 0)
		goto out;
	if ((code = reply(n, text, sizeof(text), NULL, NULL)) != 220)
		goto proto;
	if (command(n, "EHLO causeway\r\n") != 0 || (code = reply(n, text,
	    sizeof(text), &auth, &starttls)) != 250)
		goto proto;
	if (a->smtp_security == EMAIL_STARTTLS) {
		if (!starttls) {
			snprintf(err, errlen, "the SMTP server offers no "
			    "STARTTLS");
			goto out;
		}
		if (command(n, "STARTTLS\r\n") != 0 || (code = reply(n, text,
		    sizeof(text), NULL, NULL)) != 220)
			goto proto;
		if (email_net_pending(n) > 0) {
			snprintf(err, errlen, "SMTP STARTTLS: the server sent "
			    "data before the TLS handshake");
			goto out;
		}
		if (email_net_start_tls(n, ctx, a->smtp_host, err, errlen) !=
		    0)
			goto out;
		auth = 0;
		if (command(n, "EHLO causeway\r\n") != 0 || (code = reply(n,
		    text, sizeof(text), &auth, NULL)) != 250)
			goto proto;
	}
	if (!auth) {
		snprintf(err, errlen, "the SMTP server offers no AUTH PLAIN");
		goto out;
	}
	/* AUTH PLAIN: base64 of "\0user\0password". */
	size_t ul = strlen(a->smtp_user), pl = strlen(a->smtp_password);
	unsigned char *raw = xmalloc(ul + pl + 2);
	raw[0] = '\0';
	memcpy(raw + 1, a->smtp_user, ul);
	raw[ul + 1] = '\0';
	memcpy(raw + ul + 2, a->smtp_password, pl);
	size_t rl = ul + pl + 2;
	char *b64 = xmalloc(4 * ((rl + 2) / 3) + 1);
	EVP_EncodeBlock((unsigned char *)b64, raw, (int)rl);
	OPENSSL_cleanse(raw, rl);
	free(raw);
	char *cmd = xasprintf("AUTH PLAIN %s\r\n", b64);
	OPENSSL_cleanse(b64, strlen(b64));
	free(b64);
	int w = command(n, cmd);
	OPENSSL_cleanse(cmd, strlen(cmd));
	free(cmd);
	if (w != 0 || (code = reply(n, text, sizeof(text), NULL, NULL)) < 0)
		goto proto;
	if (code != 235) {
		/* 4xx (the server's own authentication service is away) is
		 * no verdict on the password. */
		char *clean = email_mime_clean_utf8(text, strlen(text), 0);
		snprintf(err, errlen, "SMTP login %s: %d %s", code >= 500 ?
		    "refused" : "failed for now", code, clean);
		free(clean);
		*why = code >= 500 ? EMAIL_FAIL_AUTH : EMAIL_FAIL_NETWORK;
		goto out;
	}
	command(n, "QUIT\r\n");
	*why = EMAIL_FAIL_NONE;
	r = 0;
	goto out;
proto:
	if (text[0] != '\0') {
		char *clean = email_mime_clean_utf8(text, strlen(text), 0);
		snprintf(err, errlen, "SMTP: %s", clean);
		free(clean);
	} else {
		snprintf(err, errlen, "SMTP: %s", email_net_error(n));
	}
out:
	SSL_CTX_free(ctx);
	email_net_close(n);
	return r;
}

/* ---- sending with libesmtp ---- */

struct send_ctx {
	const struct email_account *a;
	int cert_refused;
};

static int
interact(auth_client_request_t req, char **result, int fields, void *arg)
{
	struct send_ctx *sc = arg;
	for (int i = 0; i < fields; i++) {
		if (req[i].flags & AUTH_USER)
			result[i] = sc->a->smtp_user;
		else if (req[i].flags & AUTH_PASS)
			result[i] = sc->a->smtp_password;
		else
			return 0;
	}
	return 1;
}

static void
on_event(smtp_session_t session, int event, void *arg, ...)
{
	struct send_ctx *sc = arg;
	va_list ap;
	int *ok;
	(void)session;
	va_start(ap, arg);
	switch (event) {
	case SMTP_EV_INVALID_PEER_CERTIFICATE:
		(void)va_arg(ap, long);
		ok = va_arg(ap, int *);
		*ok = 0;
		sc->cert_refused = 1;
		break;
	case SMTP_EV_NO_PEER_CERTIFICATE:
	case SMTP_EV_WRONG_PEER_CERTIFICATE:
		ok = va_arg(ap, int *);
		*ok = 0;
		sc->cert_refused = 1;
		break;
	case SMTP_EV_WEAK_CIPHER:
		(void)va_arg(ap, int);
		ok = va_arg(ap, int *);
		*ok = 0;
		break;
	default:
		break;
	}
	va_end(ap);
}

static void
status_text(char *err, size_t errlen, const smtp_status_t *st)
{
	const char *t = st && st->text ? st->text : "";
	char *clean = email_mime_clean_utf8(t, strlen(t), 0);
	snprintf(err, errlen, "%d %s", st ? st->code : 0, clean);
	free(clean);
}

static int send_once(const struct email_account *, const char *,
    const char *, int, char *, size_t);

enum email_smtp_result
email_smtp_send(const struct email_account *a, const char *rcpt,
    const char *mail, char *err, size_t errlen)
{
	if (a->smtp_security == EMAIL_TLS) {
		snprintf(err, errlen, "implicit TLS for SMTP is not supported; "
		    "use STARTTLS");
		return EMAIL_SMTP_PERM;
	}
	int res = send_once(a, rcpt, mail, 1, err, errlen);
	if (res < 0)
		res = send_once(a, rcpt, mail, 0, err, errlen);
	return res < 0 ? EMAIL_SMTP_TEMP : (enum email_smtp_result)res;
}

/* One SMTP session; tls12: the context stops at TLS 1.2 (see above).
 * An enum email_smtp_result, or -1 when the server refused TLS 1.2. */
static int
send_once(const struct email_account *a, const char *rcpt, const char *mail,
    int tls12, char *err, size_t errlen)
{
	struct send_ctx sc = { .a = a };
	SSL_CTX *ctx = NULL;
	if (a->smtp_security == EMAIL_STARTTLS) {
		ctx = email_net_ctx(a->ca_file, err, errlen);
		if (ctx == NULL)
			return EMAIL_SMTP_TEMP;
		if (tls12)
			SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
		X509_VERIFY_PARAM_set1_host(SSL_CTX_get0_param(ctx),
		    a->smtp_host, 0);
	}
	smtp_session_t ss = smtp_create_session();
	auth_context_t actx = auth_create_context();
	if (ss == NULL || actx == NULL)
		log_fatal("email: out of memory");
	char *server = xasprintf("%s:%d", a->smtp_host, a->smtp_port);
	smtp_set_server(ss, server);
	free(server);
	smtp_set_hostname(ss, "causeway");
	/* Milliseconds; below RFC 5321's minutes only with the flag. */
	long t = (long)a->timeout * 1000;
	int o = Timeout_OVERRIDE_RFC2822_MINIMUM;
	smtp_set_timeout(ss, Timeout_GREETING | o, t);
	smtp_set_timeout(ss, Timeout_ENVELOPE | o, t);
	smtp_set_timeout(ss, Timeout_DATA | o, t);
	smtp_set_timeout(ss, Timeout_TRANSFER | o, t);
	smtp_set_timeout(ss, Timeout_DATA2 | o, t);
	smtp_set_eventcb(ss, on_event, &sc);
	if (ctx != NULL) {
		smtp_starttls_enable(ss, Starttls_REQUIRED);
		smtp_starttls_set_ctx(ss, ctx);
	} else {
		smtp_starttls_enable(ss, Starttls_DISABLED);
	}
	auth_set_mechanism_flags(actx, AUTH_PLUGIN_PLAIN, 0);
	auth_set_interact_cb(actx, interact, &sc);
	smtp_auth_set_context(ss, actx);
	smtp_message_t m = smtp_add_message(ss);
	smtp_set_reverse_path(m, a->email);
	smtp_recipient_t r = smtp_add_recipient(m, rcpt);
	smtp_set_message_str(m, (void *)mail);

	int res;
	ERR_clear_error();
	int started = smtp_start_session(ss);
	/* The handshake's errors are still in this thread's queue. */
	unsigned long tls_err = ERR_peek_last_error();
	ERR_clear_error();
	if (tls12 && ctx != NULL && ERR_GET_LIB(tls_err) == ERR_LIB_SSL &&
	    (ERR_GET_REASON(tls_err) == SSL_R_TLSV1_ALERT_PROTOCOL_VERSION ||
	    ERR_GET_REASON(tls_err) == SSL_R_UNSUPPORTED_PROTOCOL)) {
		snprintf(err, errlen, "SMTP: the server refused TLS 1.2");
		res = -1;
	} else if (!started) {
		char buf[128];
		snprintf(err, errlen, "SMTP: %s", smtp_strerror(smtp_errno(),
		    buf, sizeof(buf)));
		res = EMAIL_SMTP_TEMP;
	} else {
		const smtp_status_t *ms = smtp_message_transfer_status(m);
		const smtp_status_t *rs = smtp_recipient_status(r);
		const smtp_status_t *rp = smtp_reverse_path_status(m);
		if (rp != NULL && rp->code >= 500) {
			status_text(err, errlen, rp);
			res = EMAIL_SMTP_PERM;
		} else if (rs != NULL && rs->code >= 500) {
			status_text(err, errlen, rs);
			res = EMAIL_SMTP_PERM;
		} else if (ms != NULL && ms->code >= 500) {
			status_text(err, errlen, ms);
			res = EMAIL_SMTP_PERM;
		} else if (ms != NULL && ms->code >= 200 && ms->code < 300 &&
		    rs != NULL && rs->code >= 200 && rs->code < 300) {
			res = EMAIL_SMTP_OK;
		} else {
			const smtp_status_t *s = rs && rs->code ? rs :
			    ms && ms->code ? ms : rp;
			if (s != NULL && s->code != 0)
				status_text(err, errlen, s);
			else
				snprintf(err, errlen, "SMTP: %s",
				    sc.cert_refused ? "the server's "
				    "certificate was refused" : "the "
				    "session ended early (no TLS, no AUTH, "
				    "or the connection dropped)");
			res = EMAIL_SMTP_TEMP;
		}
	}
	smtp_destroy_session(ss);
	auth_destroy_context(actx);
	SSL_CTX_free(ctx);
	return res;
}
