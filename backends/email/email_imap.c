/*
 * IMAP for the email backend: libetpan's protocol code on causeway's own
 * transport.
 *
 * libetpan's Debian build never verifies TLS certificates and its
 * socket layer waits with select().  So libetpan never opens a socket
 * here: email_net does (poll, timeouts, OpenSSL with chain and host name
 * verification), and a mailstream_low_driver of our own hands libetpan
 * the bytes.  STARTTLS switches the same email_net to TLS in place, and
 * refuses a server that sent anything after its STARTTLS answer (that
 * would be plaintext injected into the secure session).
 *
 * Every function here runs on a worker thread, one at a time per
 * connection.  While idling, the loop watches the socket (email.c) and
 * nobody reads it.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libetpan/libetpan.h>

#include "email.h"
#include "email_net.h"
#include "tls.h"
#include "xmalloc.h"

struct email_imap {
	struct email_net *net;
	mailimap *imap;
	int has_idle;
	size_t budget;         /* bytes one command may read */
	int timeout;           /* the account's, seconds */
	int opening;           /* in email_imap_open: one deadline for all */
};

/* ---- the mailstream driver on email_net ---- */

static ssize_t
low_read(mailstream_low *s, void *buf, size_t count)
{
	/* EOF is an error here: libetpan reading a literal takes 0 for
	 * "nothing yet" and would ask again forever. */
	ssize_t r = email_net_read(s->data, buf, count);
	return r == 0 ? -1 : r;
}

static ssize_t
low_write(mailstream_low *s, const void *buf, size_t count)
{
	return email_net_write(s->data, buf, count);
}

static int
low_close(mailstream_low *s)
{
	(void)s;
	return 0;
}

static int
low_get_fd(mailstream_low *s)
{
	return email_net_fd(s->data);
}

static void
low_free(mailstream_low *s)
{
	email_net_close(s->data);
	free(s);
}

static mailstream_low_driver net_driver = {
	.mailstream_read = low_read,
	.mailstream_write = low_write,
	.mailstream_close = low_close,
	.mailstream_get_fd = low_get_fd,
	.mailstream_free = low_free,
};

/* ---- helpers ---- */

/* The server's words for the last command, or a generic text. */
static void
server_text(struct email_imap *im, int r, const char *what, char *err,
    size_t errlen)
{
	const char *resp = im->imap ? im->imap->imap_response : NULL;
	if (r == MAILIMAP_ERROR_STREAM || r == MAILIMAP_ERROR_PARSE ||
	    resp == NULL || *resp == '\0') {
		const char *why = r == MAILIMAP_ERROR_PARSE ?
		    "the IMAP server sent something that is not IMAP" :
		    email_net_error(im->net);
		snprintf(err, errlen, "%s: %s", what, why);
		return;
	}
	/* The server's text goes to the user: one clean line. */
	char *clean = email_mime_clean_utf8(resp, strlen(resp), 0);
	snprintf(err, errlen, "%s: %s", what, clean);
	free(clean);
}

/*
 * CAPABILITY through libetpan's generic command, not its
 * mailimap_capability(): that one copies the session's capability list
 * on OK without checking what it got, and a server answering with a
 * bare OK or an empty "* CAPABILITY" made it dereference NULL (found by
 * fuzz_email_imap).  The list a server sends stays in the session, where
 * mailimap_has_idle() reads it (and copes with none).
 */
static int
capability(struct email_imap *im)
{
	return mailimap_custom_command(im->imap, "CAPABILITY");
}

/*
 * Before each command: its byte budget, and its deadline (email_net.h):
 * the account's timeout plus a second per 64 KB it may read, so a big
 * FETCH on a slow but honest link is not cut off while a server that
 * trickles bytes costs its user at most that.  While opening, the one
 * deadline email_net_connect() started covers TLS, greeting, LOGIN and
 * CAPABILITY together.
 */
static void
budget(struct email_imap *im, size_t n)
{
	email_net_set_budget(im->net, n);
	if (!im->opening)
		email_net_set_deadline(im->net, im->timeout +
		    (int)(n / 65536));
}

void
email_imap_abort(struct email_imap *im)
{
	if (im == NULL)
		return;
	if (im->imap != NULL) {
		/* mailimap_free() says LOGOUT on a stream still open: not
		 * to a server that just failed us.  A stream libetpan closed
		 * already (LOGOUT, a failed greeting) took net with it. */
		if (im->imap->imap_stream != NULL)
			email_net_abandon(im->net);
		mailimap_free(im->imap);   /* frees the stream and net */
	} else {
		email_net_close(im->net);
	}
	free(im);
}

void
email_imap_close(struct email_imap *im)
{
	if (im == NULL)
		return;
	if (im->imap != NULL) {
		email_net_set_timeout(im->net, 5);
		budget(im, 65536);
		email_net_set_deadline(im->net, 5);
		mailimap_logout(im->imap);
	}
	email_imap_abort(im);
}

struct email_imap *
email_imap_open(const struct email_account *a, enum email_fail *why,
    char *err, size_t errlen)
{
	*why = EMAIL_FAIL_NETWORK;
	struct email_imap *im = xcalloc(1, sizeof(*im));
	/* A command's answer: a batch of capped mails plus slack. */
	im->budget = a->fetch_max * 20 + 1024 * 1024;
	im->timeout = a->timeout;
	im->opening = 1;
	im->net = email_net_connect(a->imap_host, a->imap_port,
	    a->imap_trusted, a->timeout, err, errlen);
	if (im->net == NULL) {
		free(im);
		return NULL;
	}
	SSL_CTX *ctx = NULL;
	if (a->imap_security != EMAIL_PLAIN) {
		ctx = tls_client_ctx(a->ca_file, err, errlen);
		if (ctx == NULL)
			goto fail;
	}
	if (a->imap_security == EMAIL_TLS && email_net_start_tls(im->net, ctx,
	    a->imap_host, err, errlen) != 0)
		goto fail;

	mailstream_low *low = mailstream_low_new(im->net, &net_driver);
	if (low == NULL)
		log_fatal("email: out of memory");
	mailstream *stream = mailstream_new(low, 8192);
	if (stream == NULL)
		log_fatal("email: out of memory");
	im->imap = mailimap_new(0, NULL);
	if (im->imap == NULL)
		log_fatal("email: out of memory");
	budget(im, 65536);
	/* mailimap_connect() owns the stream from here, even on error. */
	int r = mailimap_connect(im->imap, stream);
	if (r != MAILIMAP_NO_ERROR_AUTHENTICATED &&
	    r != MAILIMAP_NO_ERROR_NON_AUTHENTICATED) {
		server_text(im, r, "IMAP greeting", err, errlen);
		goto fail;
	}
	if (a->imap_security == EMAIL_STARTTLS) {
		r = mailimap_starttls(im->imap);
		if (r != MAILIMAP_NO_ERROR) {
			server_text(im, r, "IMAP STARTTLS", err, errlen);
			goto fail;
		}
		if (im->imap->imap_stream->read_buffer_len > 0 ||
		    email_net_pending(im->net) > 0) {
			snprintf(err, errlen, "IMAP STARTTLS: the server sent "
			    "data before the TLS handshake");
			goto fail;
		}
		if (email_net_start_tls(im->net, ctx, a->imap_host, err,
		    errlen) != 0)
			goto fail;
	}
	budget(im, 65536);
	r = capability(im);
	if (r != MAILIMAP_NO_ERROR) {
		server_text(im, r, "IMAP CAPABILITY", err, errlen);
		goto fail;
	}
	budget(im, 65536);
	r = mailimap_login(im->imap, a->imap_user, a->imap_password);
	if (r != MAILIMAP_NO_ERROR) {
		if (r == MAILIMAP_ERROR_LOGIN)
			*why = EMAIL_FAIL_AUTH;
		server_text(im, r, r == MAILIMAP_ERROR_LOGIN ? "IMAP login "
		    "refused" : "IMAP LOGIN", err, errlen);
		goto fail;
	}
	/* Servers list more capabilities once logged in. */
	budget(im, 65536);
	r = capability(im);
	if (r != MAILIMAP_NO_ERROR) {
		server_text(im, r, "IMAP CAPABILITY", err, errlen);
		goto fail;
	}
	im->has_idle = mailimap_has_idle(im->imap);
	im->opening = 0;
	*why = EMAIL_FAIL_NONE;
	return im;
fail:
	email_imap_abort(im);
	return NULL;
}

int
email_imap_select(struct email_imap *im, uint32_t *uidvalidity,
    uint32_t *uidnext, char *err, size_t errlen)
{
	budget(im, 1024 * 1024);
	int r = mailimap_select(im->imap, "INBOX");
	if (r != MAILIMAP_NO_ERROR) {
		server_text(im, r, "IMAP SELECT INBOX", err, errlen);
		return -1;
	}
	struct mailimap_selection_info *si = im->imap->imap_selection_info;
	*uidvalidity = si ? si->sel_uidvalidity : 0;
	*uidnext = si ? si->sel_uidnext : 0;
	if (*uidvalidity == 0) {
		snprintf(err, errlen, "the IMAP server gave no UIDVALIDITY");
		return -1;
	}
	if (*uidnext == 0) {
		/* No UIDNEXT (allowed before IMAP4rev2): the highest UID
		 * plus one, or 1 for an empty box. */
		clist *res = NULL;
		struct mailimap_set *set = mailimap_set_new_interval(0, 0);
		struct mailimap_fetch_type *ft =
		    mailimap_fetch_type_new_fetch_att(
		    mailimap_fetch_att_new_uid());
		*uidnext = 1;
		if (si->sel_exists > 0) {
			r = mailimap_fetch(im->imap, set, ft, &res);
			if (r != MAILIMAP_NO_ERROR) {
				server_text(im, r, "IMAP FETCH", err, errlen);
				mailimap_set_free(set);
				mailimap_fetch_type_free(ft);
				return -1;
			}
			for (clistiter *it = clist_begin(res); it; it =
			    clist_next(it)) {
				struct mailimap_msg_att *ma = clist_content(it);
				for (clistiter *j = clist_begin(ma->att_list);
				    j; j = clist_next(j)) {
					struct mailimap_msg_att_item *item =
					    clist_content(j);
					if (item->att_type ==
					    MAILIMAP_MSG_ATT_ITEM_STATIC &&
					    item->att_data.att_static->att_type
					    == MAILIMAP_MSG_ATT_UID &&
					    item->att_data.att_static->
					    att_data.att_uid >= *uidnext)
						*uidnext = item->att_data.
						    att_static->att_data.
						    att_uid + 1;
				}
			}
			mailimap_fetch_list_free(res);
		}
		mailimap_set_free(set);
		mailimap_fetch_type_free(ft);
	}
	return 0;
}

void
email_fetched_free(struct email_fetched *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		email_text_clear(&v[i].text);
	free(v);
}

int
email_imap_mark_seen(struct email_imap *im, const uint32_t *uids, size_t n,
    char *err, size_t errlen)
{
	if (n == 0)
		return 0;
	struct mailimap_set *seen = mailimap_set_new_empty();
	for (size_t i = 0; i < n; i++)
		mailimap_set_add_single(seen, uids[i]);
	struct mailimap_flag_list *fl = mailimap_flag_list_new_empty();
	mailimap_flag_list_add(fl, mailimap_flag_new_seen());
	struct mailimap_store_att_flags *sa =
	    mailimap_store_att_flags_new_add_flags_silent(fl);
	budget(im, 1024 * 1024);
	int r = mailimap_uid_store(im->imap, seen, sa);
	mailimap_store_att_flags_free(sa);
	mailimap_set_free(seen);
	if (r != MAILIMAP_NO_ERROR) {
		server_text(im, r, "IMAP STORE \\Seen", err, errlen);
		return -1;
	}
	return 0;
}

static int
cmp_fetched(const void *a, const void *b)
{
	const struct email_fetched *x = a, *y = b;
	return x->uid < y->uid ? -1 : x->uid > y->uid;
}

static int
cmp_uid(const void *a, const void *b)
{
	const uint32_t *x = a, *y = b;
	return *x < *y ? -1 : *x > *y;
}

static int fetch_uids(struct email_imap *, const struct email_account *,
    const uint32_t *, size_t, struct email_fetched **, size_t *, char *,
    size_t);

/* The mailbox's message count as the server last said (EXISTS). */
static uint32_t
exists_of(const struct email_imap *im)
{
	const struct mailimap_selection_info *si =
	    im->imap->imap_selection_info;
	return si != NULL ? si->sel_exists : 0;
}

static int fetch_new(struct email_imap *im, const struct email_account *a,
    uint32_t after, size_t max, struct email_fetched **out, size_t *n,
    int *more, char *err, size_t errlen);

/*
 * A mail that arrives while we fetch is announced by an untagged EXISTS
 * inside the FETCH responses; libetpan takes it in silently, and the
 * IDLE that follows would never hear of that mail again (the server
 * told us already).  So a count that moved during the fetch means
 * "look again" before idling.
 */
int
email_imap_fetch_new(struct email_imap *im, const struct email_account *a,
    uint32_t after, size_t max, struct email_fetched **out, size_t *n,
    int *more, char *err, size_t errlen)
{
	uint32_t before = exists_of(im);
	int r = fetch_new(im, a, after, max, out, n, more, err, errlen);
	/* A count that stayed the same can still hide an arrival (another
	 * client expunged a mail meanwhile): a round that brought mail is
	 * followed by one more, which costs one UID FETCH when nothing
	 * came. */
	if (r == 0 && (exists_of(im) != before || *n > 0))
		*more = 1;
	return r;
}

static int
fetch_new(struct email_imap *im, const struct email_account *a,
    uint32_t after, size_t max, struct email_fetched **out, size_t *n,
    int *more, char *err, size_t errlen)
{
	*out = NULL;
	*n = 0;
	*more = 0;
	/* First the UIDs alone (cheap), then the capped bodies of the
	 * oldest max of them. */
	struct mailimap_set *set = mailimap_set_new_interval(after + 1, 0);
	struct mailimap_fetch_type *ft = mailimap_fetch_type_new_fetch_att(
	    mailimap_fetch_att_new_uid());
	clist *res = NULL;
	budget(im, 16 * 1024 * 1024);
	int r = mailimap_uid_fetch(im->imap, set, ft, &res);
	mailimap_set_free(set);
	mailimap_fetch_type_free(ft);
	if (r != MAILIMAP_NO_ERROR) {
		server_text(im, r, "IMAP UID FETCH", err, errlen);
		return -1;
	}
	uint32_t *uids = NULL;
	size_t nuids = 0;
	for (clistiter *it = clist_begin(res); it; it = clist_next(it)) {
		struct mailimap_msg_att *ma = clist_content(it);
		for (clistiter *j = clist_begin(ma->att_list); j;
		    j = clist_next(j)) {
			struct mailimap_msg_att_item *item = clist_content(j);
			if (item->att_type != MAILIMAP_MSG_ATT_ITEM_STATIC ||
			    item->att_data.att_static->att_type !=
			    MAILIMAP_MSG_ATT_UID)
				continue;
			uint32_t u = item->att_data.att_static->att_data.att_uid;
			/* "n:*" names the last mail even when its UID is
			 * below n. */
			if (u <= after)
				continue;
			uids = xreallocarray(uids, nuids + 1, sizeof(*uids));
			uids[nuids++] = u;
		}
	}
	mailimap_fetch_list_free(res);
	if (nuids == 0) {
		free(uids);
		return 0;
	}
	/* The oldest max. */
	qsort(uids, nuids, sizeof(*uids), cmp_uid);
	if (nuids > max) {
		*more = 1;
		nuids = max;
	}
	int r2 = fetch_uids(im, a, uids, nuids, out, n, err, errlen);
	free(uids);
	return r2;
}

/* The mails of uids (ascending), capped and parsed, \Seen set when the
 * account asks.  -1 with err. */
static int
fetch_uids(struct email_imap *im, const struct email_account *a,
    const uint32_t *uids, size_t nuids, struct email_fetched **out,
    size_t *n, char *err, size_t errlen)
{
	struct mailimap_set *set;
	struct mailimap_fetch_type *ft;
	clist *res;
	int r;
	*out = NULL;
	*n = 0;
	if (nuids == 0)
		return 0;
	struct email_fetched *v = xcalloc(nuids, sizeof(*v));
	size_t got = 0;
	for (size_t i = 0; i < nuids; i++) {
		set = mailimap_set_new_single(uids[i]);
		ft = mailimap_fetch_type_new_fetch_att_list_empty();
		mailimap_fetch_type_new_fetch_att_list_add(ft,
		    mailimap_fetch_att_new_uid());
		mailimap_fetch_type_new_fetch_att_list_add(ft,
		    mailimap_fetch_att_new_rfc822_size());
		mailimap_fetch_type_new_fetch_att_list_add(ft,
		    mailimap_fetch_att_new_body_peek_section_partial(
		    mailimap_section_new(NULL), 0, (uint32_t)a->fetch_max));
		res = NULL;
		budget(im, a->fetch_max + 1024 * 1024);
		r = mailimap_uid_fetch(im->imap, set, ft, &res);
		mailimap_set_free(set);
		mailimap_fetch_type_free(ft);
		if (r != MAILIMAP_NO_ERROR) {
			server_text(im, r, "IMAP UID FETCH", err, errlen);
			email_fetched_free(v, got);
			return -1;
		}
		const char *body = NULL;
		size_t blen = 0, size = 0;
		uint32_t uid = 0;
		/* Every FETCH response of the command is in res, also
		 * unsolicited ones (another client set \Seen on another
		 * mail: "* 57 FETCH (UID 99 FLAGS (\Seen))"): only the one
		 * whose UID is ours counts, size and body taken from it. */
		for (clistiter *it = clist_begin(res); it && uid != uids[i];
		    it = clist_next(it)) {
			struct mailimap_msg_att *ma = clist_content(it);
			const char *mb = NULL;
			size_t mblen = 0, msize = 0;
			uint32_t muid = 0;
			for (clistiter *j = clist_begin(ma->att_list); j;
			    j = clist_next(j)) {
				struct mailimap_msg_att_item *item =
				    clist_content(j);
				if (item->att_type !=
				    MAILIMAP_MSG_ATT_ITEM_STATIC)
					continue;
				struct mailimap_msg_att_static *st =
				    item->att_data.att_static;
				if (st->att_type == MAILIMAP_MSG_ATT_UID)
					muid = st->att_data.att_uid;
				else if (st->att_type ==
				    MAILIMAP_MSG_ATT_RFC822_SIZE)
					msize = st->att_data.att_rfc822_size;
				else if (st->att_type ==
				    MAILIMAP_MSG_ATT_BODY_SECTION &&
				    st->att_data.att_body_section != NULL) {
					mb = st->att_data.att_body_section->
					    sec_body_part;
					mblen = st->att_data.att_body_section->
					    sec_length;
				}
			}
			if (muid == uids[i]) {
				uid = muid;
				size = msize;
				body = mb;
				blen = mblen;
			}
		}
		if (uid == uids[i]) {
			struct email_limits lim = { .text_max = a->text_max,
			    .total_size = size > blen ? size : 0 };
			v[got].uid = uid;
			v[got].size = size;
			email_mime_parse(body ? body : "", body ? blen : 0, &lim,
			    &v[got].text);
			got++;
		}
		/* A mail expunged meanwhile has no answer: skip it. */
		mailimap_fetch_list_free(res);
	}
	if (a->mark_read && got > 0) {
		uint32_t *seen = xcalloc(got, sizeof(*seen));
		for (size_t i = 0; i < got; i++)
			seen[i] = v[i].uid;
		r = email_imap_mark_seen(im, seen, got, err, errlen);
		free(seen);
		if (r != 0) {
			email_fetched_free(v, got);
			return -1;
		}
	}
	qsort(v, got, sizeof(*v), cmp_fetched);
	*out = v;
	*n = got;
	return 0;
}

int
email_imap_fetch_unseen(struct email_imap *im, const struct email_account *a,
    uint32_t before, size_t max, struct email_fetched **out, size_t *n,
    char *err, size_t errlen)
{
	*out = NULL;
	*n = 0;
	if (max == 0 || before <= 1)
		return 0;
	struct mailimap_search_key *key = mailimap_search_key_new(
	    MAILIMAP_SEARCH_KEY_UNSEEN, NULL, NULL, NULL, NULL, NULL, NULL,
	    NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL,
	    NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL);
	clist *res = NULL;
	budget(im, 16 * 1024 * 1024);
	int r = mailimap_uid_search(im->imap, NULL, key, &res);
	mailimap_search_key_free(key);
	if (r != MAILIMAP_NO_ERROR) {
		server_text(im, r, "IMAP UID SEARCH UNSEEN", err, errlen);
		return -1;
	}
	uint32_t *uids = NULL;
	size_t nuids = 0;
	for (clistiter *it = clist_begin(res); it; it = clist_next(it)) {
		uint32_t *u = clist_content(it);
		if (u == NULL || *u == 0 || *u >= before)
			continue;
		uids = xreallocarray(uids, nuids + 1, sizeof(*uids));
		uids[nuids++] = *u;
	}
	mailimap_search_result_free(res);
	/* The newest max of them, delivered oldest first. */
	qsort(uids, nuids, sizeof(*uids), cmp_uid);
	size_t skip = nuids > max ? nuids - max : 0;
	r = fetch_uids(im, a, uids + skip, nuids - skip, out, n, err, errlen);
	free(uids);
	return r;
}

int
email_imap_has_idle(const struct email_imap *im)
{
	return im->has_idle;
}

int
email_imap_idle(struct email_imap *im, char *err, size_t errlen)
{
	budget(im, 65536);
	uint32_t before = exists_of(im);
	int r = mailimap_idle(im->imap);
	if (r != MAILIMAP_NO_ERROR) {
		server_text(im, r, "IMAP IDLE", err, errlen);
		return -1;
	}
	/* What came with the continuation is not on the socket any more:
	 * the loop would never see it. */
	if (im->imap->imap_stream->read_buffer_len > 0 ||
	    email_net_pending(im->net) > 0)
		return 1;
	/* An EXISTS the server sent before "+ idling" was read with the
	 * continuation and will not be sent again. */
	if (exists_of(im) != before)
		return 1;
	return 0;
}

int
email_imap_idle_done(struct email_imap *im, char *err, size_t errlen)
{
	budget(im, 1024 * 1024);
	int r = mailimap_idle_done(im->imap);
	if (r != MAILIMAP_NO_ERROR) {
		server_text(im, r, "IMAP IDLE", err, errlen);
		return -1;
	}
	return 0;
}

int
email_imap_fd(const struct email_imap *im)
{
	return email_net_fd(im->net);
}

/* ---- the copy in Sent ---- */

/* The mailbox that holds sent mail: the one LIST marks \Sent (RFC
 * 6154), else "Sent".  Owned by the caller; NULL with err when LIST
 * failed. */
static char *
sent_mailbox(struct email_imap *im, char *err, size_t errlen)
{
	clist *res = NULL;
	budget(im, 4 * 1024 * 1024);
	int r = mailimap_list(im->imap, "", "*", &res);
	if (r != MAILIMAP_NO_ERROR) {
		server_text(im, r, "IMAP LIST", err, errlen);
		return NULL;
	}
	char *found = NULL;
	for (clistiter *it = clist_begin(res); it && !found;
	    it = clist_next(it)) {
		struct mailimap_mailbox_list *mb = clist_content(it);
		if (mb->mb_flag == NULL || mb->mb_flag->mbf_oflags == NULL)
			continue;
		for (clistiter *f = clist_begin(mb->mb_flag->mbf_oflags); f;
		    f = clist_next(f)) {
			struct mailimap_mbx_list_oflag *o = clist_content(f);
			if (o->of_type == MAILIMAP_MBX_LIST_OFLAG_FLAG_EXT &&
			    o->of_flag_ext != NULL &&
			    strcasecmp(o->of_flag_ext, "Sent") == 0) {
				found = xstrdup(mb->mb_name);
				break;
			}
		}
	}
	mailimap_list_result_free(res);
	return found ? found : xstrdup("Sent");
}

int
email_imap_append_sent(struct email_imap *im, const char *mail, size_t len,
    char *err, size_t errlen)
{
	char *box = sent_mailbox(im, err, errlen);
	if (box == NULL)
		return -1;
	struct mailimap_flag_list *fl = mailimap_flag_list_new_empty();
	mailimap_flag_list_add(fl, mailimap_flag_new_seen());
	budget(im, 65536);
	int r = mailimap_append(im->imap, box, fl, NULL, mail, len);
	mailimap_flag_list_free(fl);
	if (r != MAILIMAP_NO_ERROR) {
		char what[300];
		char *clean = email_mime_clean_utf8(box, strlen(box), 0);
		snprintf(what, sizeof(what), "IMAP APPEND to %s", clean);
		free(clean);
		server_text(im, r, what, err, errlen);
		free(box);
		return -1;
	}
	free(box);
	return 0;
}

/* ---- what the server says while idling ---- */

#define PEEK_LITERAL_MAX (1024 * 1024)
#define PEEK_FIRST_WAIT 5          /* seconds */

/* What one untagged line during IDLE asks of us: 1 a resync (the
 * mailbox changed: EXISTS, EXPUNGE, FETCH; or BYE, or anything not
 * untagged), 0 nothing (OK "Still here" and other keepalives, RECENT,
 * FLAGS, CAPABILITY...). */
static int
idle_line_wants_sync(const char *line)
{
	if (strncmp(line, "* ", 2) != 0)
		return 1;
	const char *p = line + 2;
	if (strncasecmp(p, "BYE", 3) == 0)
		return 1;
	while (*p >= '0' && *p <= '9')
		p++;
	if (p == line + 2)
		return 0;          /* "* OK ...", "* FLAGS ..." */
	if (*p == ' ')
		p++;
	return strncasecmp(p, "EXISTS", 6) == 0 ||
	    strncasecmp(p, "EXPUNGE", 7) == 0 ||
	    strncasecmp(p, "FETCH", 5) == 0;
}

/* A line ending in a literal "{n}": n, else -1. */
static long
literal_size(const char *line)
{
	size_t l = strlen(line);
	if (l < 3 || line[l - 1] != '}')
		return -1;
	const char *o = strrchr(line, '{');
	if (o == NULL)
		return -1;
	char *end;
	long n = strtol(o + 1, &end, 10);
	if (end != line + l - 1 || n < 0)
		return -1;
	return n;
}

int
email_imap_idle_peek(struct email_imap *im, char *err, size_t errlen)
{
	char line[8192];
	int want = 0, first = 1;
	budget(im, 4 * PEEK_LITERAL_MAX);
	do {
		/* The socket can be readable with nothing for us: a TLS
		 * record that is no data (a key update, a late session
		 * ticket).  Not worth a long wait, nor an error. */
		if (first)
			email_net_set_timeout(im->net, PEEK_FIRST_WAIT);
		int r = email_net_read_line(im->net, line, sizeof(line));
		if (first)
			email_net_set_timeout(im->net, im->timeout);
		if (r < 0 && first && email_net_used(im->net) == 0 &&
		    email_net_timed_out(im->net))
			return 0;
		first = 0;
		if (r < 0) {
			snprintf(err, errlen, "IMAP IDLE: %s",
			    email_net_error(im->net));
			return -1;
		}
		if (idle_line_wants_sync(line))
			want = 1;
		/* A literal inside the response is read past, so the next
		 * line read is a line again. */
		long lit;
		while ((lit = literal_size(line)) >= 0) {
			if (lit > PEEK_LITERAL_MAX) {
				snprintf(err, errlen, "IMAP IDLE: a literal of "
				    "%ld bytes in an untagged response", lit);
				return -1;
			}
			char buf[4096];
			while (lit > 0) {
				ssize_t k = email_net_read(im->net, buf,
				    (size_t)lit < sizeof(buf) ? (size_t)lit :
				    sizeof(buf));
				if (k <= 0) {
					snprintf(err, errlen, "IMAP IDLE: %s",
					    email_net_error(im->net));
					return -1;
				}
				lit -= k;
			}
			if (email_net_read_line(im->net, line,
			    sizeof(line)) < 0) {
				snprintf(err, errlen, "IMAP IDLE: %s",
				    email_net_error(im->net));
				return -1;
			}
		}
		/* A change is enough: the resync reads the rest. */
	} while (!want && email_net_readable_now(im->net));
	return want;
}
