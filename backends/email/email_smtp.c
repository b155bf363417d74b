/*
 * SMTP for the email backend: libcurl's SMTP client driven by the loop
 * through curl's multi-socket interface (no worker per send).
 *
 *   email_smtp_start() -> an easy handle in the process-wide multi
 *   curl asks for socket events (sock_cb) and a timer (timer_cb);
 *   libevent calls back into curl_multi_socket_action(); a finished
 *   transfer is read from curl_multi_info_read() and its owner's
 *   callback runs on the loop, once.
 *
 * One transfer does both jobs: a send (MAIL FROM, RCPT TO, DATA) and
 * the registration check (the same connection, TLS and AUTH, then NOOP
 * instead of a mail), so what registration accepts is what sending
 * does.
 *
 * Security: implicit TLS (smtps://, port 465) or STARTTLS required
 * (CURLUSESSL_ALL); the trust store, verification and versions come
 * from tls.c like IMAP's and IRC's.  curl skips AUTH without a word
 * when the server (after STARTTLS) offers none, and would then go on to
 * MAIL FROM: the protocol trace (the debug callback, never logged)
 * shows whether AUTH succeeded (a 235), and the read callback, the
 * only way the mail itself leaves, refuses to hand out a byte before
 * that.  The server is then left with an envelope and no DATA, and the
 * user gets an error.  Unauthenticated submission only where the
 * operator allowed it for that host (account.smtp_no_auth).
 *
 * The trace also keeps the server's last reply, so an error says what
 * the server said ("550 5.1.1 no such user here"), not curl's summary.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <openssl/crypto.h>

#include "causeway.h"
#include "destination.h"
#include "email.h"
#include "log.h"
#include "tls.h"
#include "xmalloc.h"

struct email_smtp {
	CURL *easy;
	struct destination_req *dest;
	char *host;            /* user-supplied: checked before connecting */
	int port;
	struct curl_slist *rcpts, *resolve;
	char *mail;            /* owned; NULL for a check */
	size_t len, off;
	int no_auth_ok;
	int auth_sent, auth_ok;
	int gate_refused;      /* the read callback refused (no AUTH) */
	char reply[512];       /* the last refusal (4xx, 5xx) in full */
	int reply_code;
	char cur[512];         /* the reply being read */
	char errbuf[CURL_ERROR_SIZE];
	email_smtp_cb cb;
	void *arg;
};

static CURLM *multi;
static struct event *multi_timer;

/* ---- curl on libevent ---- */

static void check_done(void);

static void
event_cb(evutil_socket_t fd, short what, void *arg)
{
	int running, flags = 0;
	(void)arg;
	if (what & EV_READ)
		flags |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(multi, fd, flags, &running);
	check_done();
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	int running;
	(void)fd;
	(void)what;
	(void)arg;
	curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done();
}

static int
multi_timer_cb(CURLM *m, long ms, void *arg)
{
	(void)m;
	(void)arg;
	if (ms < 0) {
		evtimer_del(multi_timer);
		return 0;
	}
	struct timeval tv = { .tv_sec = ms / 1000,
	    .tv_usec = (ms % 1000) * 1000 };
	evtimer_add(multi_timer, &tv);
	return 0;
}

/* The event for a socket lives in curl's per-socket pointer. */
static int
sock_cb(CURL *e, curl_socket_t s, int what, void *arg, void *sockp)
{
	struct event *ev = sockp;
	(void)e;
	(void)arg;
	if (what == CURL_POLL_REMOVE) {
		if (ev != NULL)
			event_free(ev);
		curl_multi_assign(multi, s, NULL);
		return 0;
	}
	short kind = EV_PERSIST;
	if (what & CURL_POLL_IN)
		kind |= EV_READ;
	if (what & CURL_POLL_OUT)
		kind |= EV_WRITE;
	if (ev != NULL)
		event_free(ev);
	ev = event_new(cw->base, s, kind, event_cb, NULL);
	if (ev == NULL)
		log_fatal("email: cannot create an event");
	event_add(ev, NULL);
	curl_multi_assign(multi, s, ev);
	return 0;
}

void
email_smtp_init(void)
{
	if (multi != NULL)
		return;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		log_fatal("email: curl_global_init failed");
	multi = curl_multi_init();
	multi_timer = evtimer_new(cw->base, timer_cb, NULL);
	if (multi == NULL || multi_timer == NULL)
		log_fatal("email: cannot set up curl");
	curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
	curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, multi_timer_cb);
}

/* ---- one transfer ---- */

static size_t
read_cb(char *buf, size_t size, size_t n, void *arg)
{
	struct email_smtp *t = arg;
	/* The gate: not a byte of the mail before AUTH succeeded (or the
	 * operator lets this host go without). */
	if (!t->auth_ok && !t->no_auth_ok) {
		t->gate_refused = 1;
		return CURL_READFUNC_ABORT;
	}
	size_t k = t->len - t->off;
	if (k > size * n)
		k = size * n;
	memcpy(buf, t->mail + t->off, k);
	t->off += k;
	return k;
}

/* The protocol trace: commands out, replies in.  Nothing of it is
 * logged (AUTH carries the password). */
static int
debug_cb(CURL *e, curl_infotype type, char *data, size_t size, void *arg)
{
	struct email_smtp *t = arg;
	(void)e;
	if (type == CURLINFO_HEADER_OUT) {
		if (size >= 5 && strncasecmp(data, "AUTH ", 5) == 0)
			t->auth_sent = 1;
		return 0;
	}
	if (type != CURLINFO_HEADER_IN)
		return 0;
	/* One reply line per call: "250-..." continues, "250 ..." ends. */
	while (size > 0 && (data[size - 1] == '\n' || data[size - 1] == '\r'))
		size--;
	if (size < 3)
		return 0;
	if (t->auth_sent && strncmp(data, "235", 3) == 0)
		t->auth_ok = 1;
	size_t l = strlen(t->cur);
	const char *txt = size > 4 ? data + 4 : "";
	size_t tl = size > 4 ? size - 4 : 0;
	if (l == 0) {
		/* The code first, then the text lines. */
		tl = size;
		txt = data;
	} else if (l + 1 < sizeof(t->cur)) {
		t->cur[l++] = ' ';
	}
	if (tl > sizeof(t->cur) - l - 1)
		tl = sizeof(t->cur) - l - 1;
	memcpy(t->cur + l, txt, tl);
	t->cur[l + tl] = '\0';
	if (size == 3 || data[3] != '-') {
		/* A refusal is what an error must quote, not the "221 Bye"
		 * of the QUIT that follows it. */
		int code = atoi(t->cur);
		if (code >= 400) {
			snprintf(t->reply, sizeof(t->reply), "%s", t->cur);
			t->reply_code = code;
		}
		t->cur[0] = '\0';
	}
	return 0;
}

static void
transfer_free(struct email_smtp *t)
{
	free(t->host);
	curl_slist_free_all(t->rcpts);
	curl_slist_free_all(t->resolve);
	if (t->mail != NULL) {
		OPENSSL_cleanse(t->mail, t->len);
		free(t->mail);
	}
	free(t);
}

/* The server's reply, cleaned for the user; "" when there was none. */
static void
server_reply(const struct email_smtp *t, char *out, size_t len)
{
	char *clean = email_mime_clean_utf8(t->reply, strlen(t->reply), 0);
	snprintf(out, len, "%s", clean);
	free(clean);
}

/* A finished transfer: its outcome, for a send and for a check. */
static void
finish(struct email_smtp *t, CURLcode rc)
{
	long code = t->reply_code;
	char said[512], err[640];
	server_reply(t, said, sizeof(said));
	/* curl names the operator's CA file in its text: not the user's
	 * business. */
	char *ca = strstr(t->errbuf, " CAfile:");
	if (ca != NULL)
		*ca = '\0';
	enum email_smtp_result res = EMAIL_SMTP_TEMP;
	enum email_fail why = EMAIL_FAIL_NETWORK;
	if (rc == CURLE_OK && !t->auth_ok && !t->no_auth_ok) {
		/* A check (NOOP) on a server that offered no AUTH. */
		rc = CURLE_LOGIN_DENIED;
		t->gate_refused = 1;
	}
	if (rc == CURLE_OK) {
		res = EMAIL_SMTP_OK;
		why = EMAIL_FAIL_NONE;
		err[0] = '\0';
	} else if (t->gate_refused) {
		snprintf(err, sizeof(err), "the SMTP server offered no AUTH "
		    "over TLS (PLAIN or LOGIN): nothing was sent");
		res = EMAIL_SMTP_PERM;
	} else if (rc == CURLE_LOGIN_DENIED) {
		/* 4xx (the server's authentication service is away) is no
		 * verdict on the password. */
		snprintf(err, sizeof(err), "SMTP login %s: %s", code >= 500 ?
		    "refused" : "failed for now", said[0] ? said :
		    t->errbuf);
		if (code >= 500 || code == 0) {
			res = EMAIL_SMTP_PERM;
			why = EMAIL_FAIL_AUTH;
		}
	} else if (rc == CURLE_USE_SSL_FAILED) {
		snprintf(err, sizeof(err), "the SMTP server offers no "
		    "STARTTLS");
	} else if (rc == CURLE_PEER_FAILED_VERIFICATION ||
	    rc == CURLE_SSL_CACERT_BADFILE || rc == CURLE_SSL_PINNEDPUBKEYNOTMATCH) {
		snprintf(err, sizeof(err), "the server's certificate was "
		    "refused: %s", t->errbuf);
	} else if (rc == CURLE_SSL_CONNECT_ERROR) {
		snprintf(err, sizeof(err), "SMTP: TLS handshake failed: %s",
		    t->errbuf);
	} else if (code >= 400 && said[0] != '\0') {
		snprintf(err, sizeof(err), "%s", said);
		if (code >= 500)
			res = EMAIL_SMTP_PERM;
	} else {
		snprintf(err, sizeof(err), "SMTP: %s", t->errbuf[0] ?
		    t->errbuf : curl_easy_strerror(rc));
	}
	email_smtp_cb cb = t->cb;
	void *arg = t->arg;
	curl_multi_remove_handle(multi, t->easy);
	curl_easy_cleanup(t->easy);
	transfer_free(t);
	cb(arg, res, why, err);
}

static void
check_done(void)
{
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		struct email_smtp *t = NULL;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&t);
		finish(t, m->data.result);
	}
}

/* What curl is told to check: tls.c's decisions as curl options. */
static void
curl_tls(CURL *e, const char *ca_file)
{
	struct tls_curl_policy p;
	tls_curl_policy(ca_file, &p);
	if (p.cainfo != NULL)
		curl_easy_setopt(e, CURLOPT_CAINFO, p.cainfo);
	if (p.capath != NULL)
		curl_easy_setopt(e, CURLOPT_CAPATH, p.capath);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)(p.min_tls_minor == 3 ?
	    CURL_SSLVERSION_TLSv1_3 : CURL_SSLVERSION_TLSv1_2) |
	    CURL_SSLVERSION_MAX_DEFAULT);
}

/* A NOOP's answer is not wanted. */
static size_t
discard_cb(char *buf, size_t size, size_t n, void *arg)
{
	(void)buf;
	(void)arg;
	return size * n;
}

/* "host" for a URL: IPv6 literals in brackets. */
static char *
url_for(const struct email_account *a)
{
	int v6 = strchr(a->smtp_host, ':') != NULL;
	return xasprintf("%s://%s%s%s:%d", a->smtp_security == EMAIL_TLS ?
	    "smtps" : "smtp", v6 ? "[" : "", a->smtp_host, v6 ? "]" : "",
	    a->smtp_port);
}

/* The destination policy's answer for a user-supplied host: curl goes
 * to the checked address and nowhere else (the name is still what the
 * certificate must show). */
static void
dest_done(void *arg, const struct destination *d, const char *err)
{
	struct email_smtp *t = arg;
	t->dest = NULL;
	if (d == NULL) {
		email_smtp_cb cb = t->cb;
		void *cbarg = t->arg;
		curl_easy_cleanup(t->easy);
		transfer_free(t);
		cb(cbarg, EMAIL_SMTP_PERM, EMAIL_FAIL_NETWORK, err);
		return;
	}
	if (!tls_host_is_ip(t->host)) {
		int v6 = d->addr.ss_family == AF_INET6;
		char *r = xasprintf("%s:%d:%s%s%s", t->host, t->port, v6 ?
		    "[" : "", d->text, v6 ? "]" : "");
		t->resolve = curl_slist_append(NULL, r);
		free(r);
		curl_easy_setopt(t->easy, CURLOPT_RESOLVE, t->resolve);
	}
	if (curl_multi_add_handle(multi, t->easy) != CURLM_OK)
		log_fatal("email: curl_multi_add_handle failed");
}

struct email_smtp *
email_smtp_start(const struct email_account *a, const char *rcpt,
    const char *mail, email_smtp_cb cb, void *arg)
{
	struct email_smtp *t = xcalloc(1, sizeof(*t));
	t->cb = cb;
	t->arg = arg;
	t->no_auth_ok = a->smtp_no_auth;
	CURL *e = t->easy = curl_easy_init();
	if (e == NULL)
		log_fatal("email: curl_easy_init failed");
	char *url = url_for(a);
	curl_easy_setopt(e, CURLOPT_URL, url);
	free(url);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
#else
	curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_SMTP |
	    CURLPROTO_SMTPS));
#endif
	curl_easy_setopt(e, CURLOPT_PRIVATE, t);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard_cb);
	if (a->smtp_security != EMAIL_PLAIN) {
		curl_easy_setopt(e, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
		curl_tls(e, a->ca_file);
	}
	curl_easy_setopt(e, CURLOPT_USERNAME, a->smtp_user);
	curl_easy_setopt(e, CURLOPT_PASSWORD, a->smtp_password);
	curl_easy_setopt(e, CURLOPT_LOGIN_OPTIONS, "AUTH=PLAIN;AUTH=LOGIN");
	curl_easy_setopt(e, CURLOPT_SASL_IR, 1L);
	/* Per wait, and for the whole transfer. */
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, (long)a->timeout);
	curl_easy_setopt(e, CURLOPT_SERVER_RESPONSE_TIMEOUT, (long)a->timeout);
	curl_easy_setopt(e, CURLOPT_TIMEOUT, (long)a->timeout * 4);
	curl_easy_setopt(e, CURLOPT_VERBOSE, 1L);
	curl_easy_setopt(e, CURLOPT_DEBUGFUNCTION, debug_cb);
	curl_easy_setopt(e, CURLOPT_DEBUGDATA, t);
	if (mail != NULL) {
		t->mail = xstrdup(mail);
		t->len = strlen(mail);
		char *from = xasprintf("<%s>", a->email);
		curl_easy_setopt(e, CURLOPT_MAIL_FROM, from);
		free(from);
		char *to = xasprintf("<%s>", rcpt);
		t->rcpts = curl_slist_append(NULL, to);
		free(to);
		curl_easy_setopt(e, CURLOPT_MAIL_RCPT, t->rcpts);
		curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(e, CURLOPT_READFUNCTION, read_cb);
		curl_easy_setopt(e, CURLOPT_READDATA, t);
		curl_easy_setopt(e, CURLOPT_INFILESIZE, (long)t->len);
	} else {
		/* The check: the session up to AUTH, then NOOP. */
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "NOOP");
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	}
	if (!a->smtp_trusted) {
		t->host = xstrdup(a->smtp_host);
		t->port = a->smtp_port;
		t->dest = destination_resolve_async(cw->dns, a->smtp_host,
		    a->smtp_port, DESTINATION_SMTP, dest_done, t);
		return t;
	}
	if (curl_multi_add_handle(multi, e) != CURLM_OK)
		log_fatal("email: curl_multi_add_handle failed");
	return t;
}
