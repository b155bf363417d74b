/*
 * The smstools3 driver: texts through smsd's spool directories.
 *
 * The operator points `spool = DIR` at a directory that holds the
 * folders smsd.conf names (outgoing = DIR/outgoing, incoming =
 * DIR/incoming, sent = DIR/sent, failed = DIR/failed, report =
 * DIR/report), all on one filesystem.  A text's life:
 *
 *   send()    DIR/.causeway-tmp/causeway.DOMAIN.REF written, fsync'ed,
 *             renamed to DIR/outgoing/causeway.DOMAIN.REF (so several
 *             components may share a spool): smsd never sees half a file.
 *             The rename is ACCEPTED; a failed write is TEMPFAIL (the
 *             backend retries), a number smsd cannot take PERMFAIL.
 *   sent/     smsd moved it there with "Message_id: N" (the modem's
 *             message reference, one octet): N -> REF is kept in the
 *             store (component state, key smstools/mid/MODEM/N) so a
 *             status report after a restart still finds its text.
 *   report/   "Message_id: N", "Status: S,...": S 0..31 delivered,
 *             32..63 the network still tries (ignored), 64.. failed.
 *   failed/   smsd gave up: the "Fail_reason:" goes to the user as a
 *             failed delivery (sms_report 0).  ACCEPTED was reported at
 *             the rename already, so this is a report, not a result.
 *   incoming/ a text from a phone: decoded per "Alphabet:", handed to
 *             sms_received(); the file goes once the backend has it.
 *
 * Files come to our notice by inotify (IN_CLOSE_WRITE, IN_MOVED_TO) and
 * by a scan every SCAN_SECONDS (and at start: what arrived while we were
 * down).  An event reads the file at once: a complete message is handled
 * then.  smsd names its temporary files as it names messages and creates
 * each message file empty before writing it, so a file that is empty or
 * not in smsd's format is only set aside once it has stayed unchanged
 * for SETTLE_SECONDS and across two scans; a scan reads a file under
 * the same rule, so one still being written waits.  Files we cannot use
 * (over SMSTOOLS_FILE_MAX at once; empty, binary, not in smsd's format
 * once settled) are logged and moved to DIR/causeway-rejected/ where an
 * operator can look at them; they are never read twice.  Files in sent/ and failed/ that are not named
 * causeway.* belong to someone else sharing the spool and are left
 * alone, and so are smsd's own files in incoming/ (smsd_own()).
 *
 * smsd facts this relies on (3.1.21): with "Alphabet: UTF-8" smsd picks
 * GSM 7-bit itself but cuts the text at the first character outside the
 * BMP (an emoji), so texts the backend plans as UCS-2 are written as
 * "Alphabet: UCS2" with UTF-16BE bytes.  keep_filename = yes (the
 * default) keeps our name through sent/ and failed/.  With messageids =
 * 2 (the default) the id of a long text is its last part's.  The number
 * a text came in on is not in smsd's files: name each modem after its
 * SIM's number in smsd.conf (devices = 15550001, digits only), or give
 * the component a single number.
 *
 * Out, a text must leave from the sender's own SIM (the answers go to
 * that number): each outgoing file says "Queue: QDIGITS", Q and the
 * sender's number without '+', and smsd.conf gives each modem its own
 * provider queue under that name ([queues] Q15550001 = DIR/Q15550001,
 * and in the modem's section queues = Q15550001).  smsd 3.1.21 does not
 * find a queue whose name is all digits, hence the Q.  queue = auto (the default) does
 * so whenever the component has more than one number (or none fixed);
 * queue = number always; queue = none never (one modem sends all).
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/inotify.h>
#include <sys/queue.h>
#include <sys/stat.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "causeway.h"
#include "component.h"
#include "config.h"
#include "log.h"
#include "sms_driver.h"
#include "sms_text.h"
#include "smstools_file.h"
#include "store.h"
#include "xmalloc.h"

#define SCAN_SECONDS 10
#define SETTLE_SECONDS 2
#define TMP_DIR ".causeway-tmp"
#define REJECT_DIR "causeway-rejected"
#define MID_PREFIX "smstools/mid/"

enum kind {
	K_INCOMING,
	K_SENT,
	K_FAILED,
	K_REPORT,
	K_COUNT
};

static const char *const kind_dir[K_COUNT] = {
	[K_INCOMING] = "incoming",
	[K_SENT] = "sent",
	[K_FAILED] = "failed",
	[K_REPORT] = "report",
};

/* A file a scan saw but did not read yet (maybe still being written),
 * or one that must wait (the backend asked to be offered it later). */
struct held {
	TAILQ_ENTRY(held) entry;
	enum kind kind;
	char *name;
	off_t size;
	struct timespec mtime;
	int seen;               /* in the current scan */
};
TAILQ_HEAD(held_list, held);

struct sms_driver {
	struct component *c;
	char *spool;
	char *dir[K_COUNT];
	char *outgoing;
	char *tmp;
	char *rejected;
	char to_default[SMS_NUMBER_SIZE];   /* the component's one number */
	int per_number_queue;               /* write "Queue: QDIGITS" */
	char prefix[SMSTOOLS_PREFIX_SIZE];  /* of our file names */
	int ifd;
	int wd[K_COUNT];
	struct event *iev;
	struct event *scan_timer;
	struct held_list held;
};

/* ---- outgoing ---- */

static int
write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void
send_text(struct sms_driver *d, const struct sms_out *out)
{
	char to[32], head[192], *tmp, *dst, why[160];
	unsigned char *body = NULL;
	size_t bodylen;
	int fd, hl, saved = 0;

	if (smstools_to_header(out->to, to, sizeof(to)) == -1) {
		log_warn("%s: smstools: text %s: smsd cannot send to \"%s\"",
		    d->c->domain, out->ref, out->to);
		sms_sent(d->c, out->ref, SMS_PERMFAIL,
		    "this number cannot be reached through smstools");
		return;
	}
	if (out->ucs2) {
		if (sms_ucs2_encode(out->text, strlen(out->text), &body,
		    &bodylen) == -1) {
			sms_sent(d->c, out->ref, SMS_PERMFAIL,
			    "the text is not valid UTF-8");
			return;
		}
	} else {
		bodylen = strlen(out->text);
		body = (unsigned char *)xstrdup(out->text);
	}
	/* The sender's queue: its number's digits, nothing else, so no
	 * byte of it can start another header line. */
	char queue[48] = "";
	if (d->per_number_queue) {
		const char *q = out->from[0] == '+' ? out->from + 1 : out->from;
		size_t ql = strlen(q);
		if (ql == 0 || ql > 20 || strspn(q, "0123456789") != ql) {
			free(body);
			log_warn("%s: smstools: text %s: the sender \"%s\" names "
			    "no queue", d->c->domain, out->ref, out->from);
			sms_sent(d->c, out->ref, SMS_PERMFAIL,
			    "your number has no modem queue at the gateway");
			return;
		}
		snprintf(queue, sizeof(queue), "Queue: Q%s\n", q);
	}
	/* Autosplit 3: concatenated parts with a UDH whatever smsd.conf
	 * says; the backend counted the parts that way. */
	hl = snprintf(head, sizeof(head),
	    "To: %s\n%sAlphabet: %s\nAutosplit: 3\n\n", to, queue,
	    out->ucs2 ? "UCS2" : "UTF-8");
	tmp = xasprintf("%s/%s%s", d->tmp, d->prefix, out->ref);
	dst = xasprintf("%s/%s%s", d->outgoing, d->prefix, out->ref);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
	    0640);
	if (fd == -1 || write_all(fd, head, (size_t)hl) == -1 ||
	    write_all(fd, body, bodylen) == -1 || fsync(fd) == -1) {
		saved = errno;
		if (fd != -1)
			close(fd);
		unlink(tmp);
		goto fail;
	}
	if (close(fd) == -1) {
		saved = errno;
		unlink(tmp);
		goto fail;
	}
	if (rename(tmp, dst) == -1) {
		saved = errno;
		unlink(tmp);
		goto fail;
	}
	log_debug("%s: smstools: text %s to %s in %s", d->c->domain,
	    out->ref, out->to, dst);
	free(tmp);
	free(dst);
	free(body);
	sms_sent(d->c, out->ref, SMS_ACCEPTED, NULL);
	return;
fail:
	log_warn("%s: smstools: text %s: cannot write %s: %s", d->c->domain,
	    out->ref, dst, strerror(saved));
	snprintf(why, sizeof(why), "the SMS spool cannot take it (%s)",
	    strerror(saved));
	free(tmp);
	free(dst);
	free(body);
	sms_sent(d->c, out->ref, SMS_TEMPFAIL, why);
}

/* ---- files that come back ---- */

enum outcome {
	DONE,           /* handled: remove the file */
	LEAVE,          /* not ours: leave it where it is */
	RETRY,          /* keep it, offer it again on the next scan */
	REJECT,         /* unusable: move it aside (once settled) */
	REFUSED,        /* the backend can never deliver it: move it aside */
};

static void
set_aside(struct sms_driver *d, enum kind k, const char *path,
    const char *name)
{
	char *dst = xasprintf("%s/%s.%s", d->rejected, kind_dir[k], name);

	if (rename(path, dst) == -1 && errno != ENOENT) {
		log_warn("%s: smstools: cannot move %s to %s (%s): removing it",
		    d->c->domain, path, dst, strerror(errno));
		if (unlink(path) == -1 && errno != ENOENT)
			log_error("%s: smstools: cannot remove %s: %s",
			    d->c->domain, path, strerror(errno));
	}
	free(dst);
}

/* The modem's name as a store key part (smsd allows letters, digits,
 * '_', '-' and '.' in it). */
static void
modem_key(const struct smstools_file *f, char *out, size_t size)
{
	const char *m = smstools_file_header(f, "Modem");
	size_t n;

	if (m == NULL)
		m = smstools_file_header(f, "Subject");
	if (m == NULL || (n = strlen(m)) == 0 || n >= size || n > 32 ||
	    strspn(m, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN"
	    "OPQRSTUVWXYZ_-.") != n) {
		snprintf(out, size, "-");
		return;
	}
	memcpy(out, m, n + 1);
}

static enum outcome
on_sent(struct sms_driver *d, const char *ref, const struct smstools_file *f)
{
	const char *v = smstools_file_header(f, "Message_id");
	char modem[40], key[80];
	int ids[8], n, i;

	if (v == NULL) {
		/* no status report was asked for: nothing will follow */
		log_debug("%s: smstools: text %s sent (no Message_id)",
		    d->c->domain, ref);
		return DONE;
	}
	if ((n = smstools_message_ids(v, ids, 8)) < 0) {
		log_warn("%s: smstools: text %s: unreadable Message_id \"%.40s\"",
		    d->c->domain, ref, v);
		return DONE;
	}
	modem_key(f, modem, sizeof(modem));
	for (i = 0; i < n; i++) {
		snprintf(key, sizeof(key), MID_PREFIX "%s/%d", modem, ids[i]);
		if (store_state_set(cw->store, d->c->domain, "", key, ref,
		    strlen(ref)) == -1)
			return RETRY;
	}
	log_debug("%s: smstools: text %s sent by %s as message %d",
	    d->c->domain, ref, modem, ids[n - 1]);
	return DONE;
}

static enum outcome
on_failed(struct sms_driver *d, const char *ref, const struct smstools_file *f)
{
	const char *why = smstools_file_header(f, "Fail_reason");
	char text[200];

	snprintf(text, sizeof(text), "the SMS could not be sent: %.160s",
	    why != NULL && *why != '\0' ? why : "smsd gave up on it");
	log_info("%s: smstools: text %s failed: %s", d->c->domain, ref,
	    why != NULL ? why : "(no Fail_reason)");
	sms_report(d->c, ref, 0, text);
	return DONE;
}

/*
 * Names in incoming/ and report/ that are smsd's own, not messages:
 * its store of parts waiting for the rest of a long text
 * ("MODEM-concatenated"), the shell script it tries at startup
 * ("smsd_script.XXXXXX"), lock files, and dot files (ours and others'
 * temporary names).
 */
static int
smsd_own(const char *name)
{
	static const char concat[] = "-concatenated", lock[] = ".LOCK";
	size_t n = strlen(name);

	return name[0] == '.' || strncmp(name, "smsd_", 5) == 0 ||
	    (n >= sizeof(concat) - 1 &&
	    strcmp(name + n - (sizeof(concat) - 1), concat) == 0) ||
	    (n >= sizeof(lock) - 1 &&
	    strcmp(name + n - (sizeof(lock) - 1), lock) == 0);
}

/* 1 when sent/ holds a file of ours not read yet (a report may be
 * waiting for its Message_id). */
static int
sent_pending(struct sms_driver *d)
{
	char ref[SMSTOOLS_REF_MAX + 1];
	struct dirent *de;
	DIR *dir;
	int found = 0;

	if (d->dir[K_SENT] == NULL || (dir = opendir(d->dir[K_SENT])) == NULL)
		return 0;
	while (!found && (de = readdir(dir)) != NULL)
		found = smstools_ref_from_name(de->d_name, d->prefix, ref);
	closedir(dir);
	return found;
}

static enum outcome
on_report(struct sms_driver *d, const struct smstools_file *f,
    const struct smstools_report *r, const char *name)
{
	char modem[40], key[80], *ref = NULL, text[200];
	enum smstools_status kind;
	int found;

	if (r->message_id < 0 || r->status < 0) {
		log_warn("%s: smstools: status report %s without Message_id "
		    "or Status", d->c->domain, name);
		return REJECT;
	}
	modem_key(f, modem, sizeof(modem));
	snprintf(key, sizeof(key), MID_PREFIX "%s/%ld", modem, r->message_id);
	found = store_state_get(cw->store, d->c->domain, "", key, &ref, NULL);
	if (found == -1 || (found == 0 && sent_pending(d)))
		return RETRY;   /* the store failed, or sent/ comes first */
	if (found == 0) {
		log_info("%s: smstools: status report %s for message %ld of %s, "
		    "which is not ours or forgotten: dropped", d->c->domain,
		    name, r->message_id, modem);
		return DONE;
	}
	kind = smstools_status_kind(r->status);
	if (kind == SMSTOOLS_PENDING) {
		log_debug("%s: smstools: text %s: network still trying (%d)",
		    d->c->domain, ref, r->status);
		free(ref);
		return DONE;
	}
	if (kind == SMSTOOLS_DELIVERED) {
		log_debug("%s: smstools: text %s delivered", d->c->domain, ref);
		sms_report(d->c, ref, 1, NULL);
	} else {
		snprintf(text, sizeof(text), "the SMS was not delivered: %s "
		    "(status %d)", r->text[0] != '\0' ? r->text : "failed",
		    r->status);
		log_info("%s: smstools: text %s not delivered: status %d %s",
		    d->c->domain, ref, r->status, r->text);
		sms_report(d->c, ref, 0, text);
	}
	store_state_remove(cw->store, d->c->domain, "", key);
	free(ref);
	return DONE;
}

/* The number a text came in on: the modem's name when it is one
 * (digits: the SIM's number in international form), else the
 * component's only number. */
static const char *
incoming_to(struct sms_driver *d, const struct smstools_file *f,
    char *buf, size_t size)
{
	const char *m = smstools_file_header(f, "Modem");
	size_t n;

	if (m == NULL)
		m = smstools_file_header(f, "Subject");
	if (m != NULL && (n = strlen(m)) >= SMS_E164_DIGITS_MIN &&
	    n <= SMS_E164_DIGITS_MAX && strspn(m, "0123456789") == n) {
		snprintf(buf, size, "+%s", m);
		return buf;
	}
	if (d->to_default[0] != '\0')
		return d->to_default;
	return m != NULL ? m : "";
}

static enum outcome
on_incoming(struct sms_driver *d, const struct smstools_file *f,
    const char *name)
{
	const char *from = smstools_file_header(f, "From");
	const char *toa = smstools_file_header(f, "From_TOA");
	const char *alpha = smstools_file_header(f, "Alphabet");
	const char *sent = smstools_file_header(f, "Sent");
	char from_buf[64], to_buf[SMS_NUMBER_SIZE + 1], *text;
	const char *to;
	time_t stamp = 0;
	int rc;

	/* Status reports are read from report/ only: in incoming/ a text
	 * whose body looks like one is just a text (anyone may send the
	 * user "SMS STATUS REPORT ... Status: 0" to fake a receipt). */
	if (from == NULL || *from == '\0' || strlen(from) > 40) {
		log_warn("%s: smstools: incoming %s has no usable From:",
		    d->c->domain, name);
		return REJECT;
	}
	/* smsd writes international senders without their '+' and says
	 * so in From_TOA ("91 international, ..."). */
	if (toa != NULL && strncmp(toa, "91", 2) == 0 && from[0] != '+')
		snprintf(from_buf, sizeof(from_buf), "+%s", from);
	else
		snprintf(from_buf, sizeof(from_buf), "%s", from);
	if (alpha == NULL || strncasecmp(alpha, "ISO", 3) == 0 ||
	    strncasecmp(alpha, "GSM", 3) == 0 ||
	    strncasecmp(alpha, "Lat", 3) == 0 ||
	    strncasecmp(alpha, "Ans", 3) == 0) {
		/* ISO-8859-15, smsd's own character set (GSM texts are
		 * stored in it unless incoming_utf8 = yes) */
		size_t ulen;
		char *u = smstools_latin9_to_utf8(f->body, f->bodylen, &ulen);

		text = sms_decode(SMS_CHARSET_UTF8, u, ulen);
		free(u);
	} else if (strncasecmp(alpha, "UTF", 3) == 0) {
		text = sms_decode(SMS_CHARSET_UTF8, f->body, f->bodylen);
	} else if (strncasecmp(alpha, "UCS", 3) == 0 ||
	    strncasecmp(alpha, "Uni", 3) == 0 ||
	    strncasecmp(alpha, "Chi", 3) == 0) {
		text = sms_decode(SMS_CHARSET_UCS2, f->body, f->bodylen);
	} else {
		log_warn("%s: smstools: incoming %s from %s: alphabet \"%.20s\" "
		    "is not text", d->c->domain, name, from, alpha);
		return REJECT;
	}
	if (sent != NULL && smstools_time_parse(sent, &stamp) == -1)
		stamp = 0;
	to = incoming_to(d, f, to_buf, sizeof(to_buf));
	rc = sms_received(d->c, from_buf, to, text, stamp);
	free(text);
	if (rc == 0)
		return DONE;
	if (rc == -2)
		return RETRY;
	log_warn("%s: smstools: incoming %s from %s to %s cannot be delivered",
	    d->c->domain, name, from_buf, to);
	return REFUSED;
}

/*
 * Reads and handles one file.  settled: a scan found it unchanged for
 * SETTLE_SECONDS and since the previous scan; 0: inotify said a writer
 * closed it, which smsd also does with files that are not messages (yet).
 * An unusable file is set aside only when settled.  Returns 1 when the
 * file should be looked at again later, else 0.
 */
static int
handle_file(struct sms_driver *d, enum kind k, const char *name, int settled)
{
	char *path, *data = NULL, ref[SMSTOOLS_REF_MAX + 1];
	struct smstools_file f;
	struct smstools_report r;
	const char *why = NULL;
	enum outcome o = REJECT;
	struct stat sb;
	ssize_t n;
	size_t len = 0;
	int fd, ours;

	ours = smstools_ref_from_name(name, d->prefix, ref);
	if ((k == K_SENT || k == K_FAILED) && !ours)
		return 0;       /* someone else's text */
	if (smsd_own(name))
		return 0;
	/* smsd holds NAME.LOCK while it writes NAME into sent/ or
	 * failed/ */
	path = xasprintf("%s/%s.LOCK", d->dir[k], name);
	if (access(path, F_OK) == 0) {
		free(path);
		return 1;
	}
	free(path);
	path = xasprintf("%s/%s", d->dir[k], name);
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd == -1) {
		if (errno != ENOENT) {
			log_warn("%s: smstools: cannot open %s: %s",
			    d->c->domain, path, strerror(errno));
			if (errno == ELOOP)
				set_aside(d, k, path, name);
		}
		free(path);
		return 0;
	}
	if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode)) {
		why = "not a regular file";
		goto reject;
	}
	if (sb.st_size == 0) {
		why = "empty";
		goto unusable;
	}
	if (sb.st_size > SMSTOOLS_FILE_MAX) {
		why = "too big";
		goto reject;
	}
	data = xmalloc(SMSTOOLS_FILE_MAX + 1);
	while (len <= SMSTOOLS_FILE_MAX) {
		n = read(fd, data + len, SMSTOOLS_FILE_MAX + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			log_warn("%s: smstools: cannot read %s: %s",
			    d->c->domain, path, strerror(errno));
			close(fd);
			free(data);
			free(path);
			return 1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > SMSTOOLS_FILE_MAX) {
		why = "too big";
		goto reject;
	}
	if (smstools_file_parse(data, len, &f, &why) == -1)
		goto unusable;
	switch (k) {
	case K_INCOMING:
		o = on_incoming(d, &f, name);
		break;
	case K_SENT:
		o = on_sent(d, ref, &f);
		break;
	case K_FAILED:
		o = on_failed(d, ref, &f);
		break;
	case K_REPORT:
		if (smstools_report_parse(f.body, f.bodylen, &r) == 1) {
			o = on_report(d, &f, &r, name);
		} else {
			log_warn("%s: smstools: %s is not a status report",
			    d->c->domain, path);
			o = REJECT;
		}
		break;
	case K_COUNT:
		break;
	}
	smstools_file_clear(&f);
	close(fd);
	free(data);
	switch (o) {
	case DONE:
		if (unlink(path) == -1 && errno != ENOENT) {
			log_error("%s: smstools: cannot remove %s: %s",
			    d->c->domain, path, strerror(errno));
			set_aside(d, k, path, name);
		}
		break;
	case REJECT:
		if (!settled) {
			/* maybe one of smsd's temporary files: it names
			 * them as it names messages */
			free(path);
			return 1;
		}
		/* FALLTHROUGH */
	case REFUSED:
		log_warn("%s: smstools: %s set aside in %s", d->c->domain,
		    path, d->rejected);
		set_aside(d, k, path, name);
		break;
	case RETRY:
		free(path);
		return 1;
	case LEAVE:
		break;
	}
	free(path);
	return 0;
unusable:
	/*
	 * smsd creates a message file empty (mkstemp, close) before it
	 * writes it, and writes other files under names like a message's:
	 * only a file that has stayed so for a scan period is set aside.
	 */
	if (!settled) {
		close(fd);
		free(data);
		free(path);
		return 1;
	}
reject:
	log_warn("%s: smstools: %s (%lld bytes) is %s: set aside in %s",
	    d->c->domain, path, (long long)sb.st_size,
	    why != NULL ? why : "unusable", d->rejected);
	close(fd);
	free(data);
	set_aside(d, k, path, name);
	free(path);
	return 0;
}

static struct held *
held_find(struct sms_driver *d, enum kind k, const char *name)
{
	struct held *h;

	TAILQ_FOREACH(h, &d->held, entry)
		if (h->kind == k && strcmp(h->name, name) == 0)
			return h;
	return NULL;
}

static void
held_drop(struct sms_driver *d, struct held *h)
{
	TAILQ_REMOVE(&d->held, h, entry);
	free(h->name);
	free(h);
}

static void
hold(struct sms_driver *d, enum kind k, const char *name, const struct stat *sb)
{
	struct held *h = held_find(d, k, name);

	if (h == NULL) {
		h = xcalloc(1, sizeof(*h));
		h->kind = k;
		h->name = xstrdup(name);
		TAILQ_INSERT_TAIL(&d->held, h, entry);
	}
	h->size = sb->st_size;
	h->mtime = sb->st_mtim;
	h->seen = 1;
}

/* An event said name is complete: read it now. */
static void
file_ready(struct sms_driver *d, enum kind k, const char *name)
{
	struct held *h = held_find(d, k, name);
	struct stat sb;
	char *path;

	if (smsd_own(name))
		return;
	if (h != NULL)
		held_drop(d, h);
	if (handle_file(d, k, name, 0)) {
		path = xasprintf("%s/%s", d->dir[k], name);
		if (stat(path, &sb) == 0)
			hold(d, k, name, &sb);
		free(path);
	}
}

/*
 * Looks at every file in one folder.  A file is read when it has the
 * size and time it had at the previous scan, or was last written
 * SETTLE_SECONDS ago; else it is remembered and waits.
 */
static void
scan_dir(struct sms_driver *d, enum kind k)
{
	DIR *dir;
	struct dirent *de;
	struct held *h, *next;
	struct stat sb;
	char *path;
	time_t t = time(NULL);
	int again;

	if ((dir = opendir(d->dir[k])) == NULL) {
		log_warn("%s: smstools: cannot read %s: %s", d->c->domain,
		    d->dir[k], strerror(errno));
		return;
	}
	TAILQ_FOREACH(h, &d->held, entry)
		if (h->kind == k)
			h->seen = 0;
	while ((de = readdir(dir)) != NULL) {
		if (smsd_own(de->d_name))
			continue;
		if (k == K_SENT || k == K_FAILED) {
			char ref[SMSTOOLS_REF_MAX + 1];

			if (!smstools_ref_from_name(de->d_name, d->prefix, ref))
				continue;
		}
		path = xasprintf("%s/%s", d->dir[k], de->d_name);
		if (lstat(path, &sb) == -1) {
			free(path);
			continue;
		}
		free(path);
		h = held_find(d, k, de->d_name);
		if (S_ISREG(sb.st_mode) && sb.st_size <= SMSTOOLS_FILE_MAX &&
		    (sb.st_mtim.tv_sec > t - SETTLE_SECONDS || (h != NULL &&
		    (h->size != sb.st_size ||
		    h->mtime.tv_sec != sb.st_mtim.tv_sec ||
		    h->mtime.tv_nsec != sb.st_mtim.tv_nsec)))) {
			/* recent, or changed since the last scan: wait */
			hold(d, k, de->d_name, &sb);
			continue;
		}
		again = handle_file(d, k, de->d_name, 1);
		if (again)
			hold(d, k, de->d_name, &sb);
		else if ((h = held_find(d, k, de->d_name)) != NULL)
			held_drop(d, h);
	}
	closedir(dir);
	for (h = TAILQ_FIRST(&d->held); h != NULL; h = next) {
		next = TAILQ_NEXT(h, entry);
		if (h->kind == k && !h->seen)
			held_drop(d, h);
	}
}

static void
scan_all(struct sms_driver *d)
{
	int k;

	/* sent/ before report/: a report needs its Message_id */
	for (k = 0; k < K_COUNT; k++)
		if (d->dir[k] != NULL)
			scan_dir(d, (enum kind)k);
}

static void
on_scan(evutil_socket_t fd, short what, void *arg)
{
	struct sms_driver *d = arg;
	struct timeval tv = { SCAN_SECONDS, 0 };

	scan_all(d);
	evtimer_add(d->scan_timer, &tv);
}

static void
on_inotify(evutil_socket_t fd, short what, void *arg)
{
	struct sms_driver *d = arg;
	char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;
	char *p;
	int k, overflow = 0;

	for (;;) {
		n = read(d->ifd, buf, sizeof(buf));
		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			break;
		}
		for (p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const void *)p;

			p += sizeof(*ev) + ev->len;
			if (ev->mask & IN_Q_OVERFLOW) {
				overflow = 1;
				continue;
			}
			if (ev->len == 0 || (ev->mask & IN_ISDIR))
				continue;
			for (k = 0; k < K_COUNT; k++)
				if (d->wd[k] == ev->wd)
					break;
			if (k == K_COUNT)
				continue;
			file_ready(d, (enum kind)k, ev->name);
		}
	}
	if (overflow) {
		log_info("%s: smstools: inotify queue overflowed: scanning",
		    d->c->domain);
		scan_all(d);
	}
}

/* ---- start and stop ---- */

/* The component's numbers = list when it names exactly one number: the
 * number every incoming text is for, when the modem's name is not a
 * number. */
static void
single_number(struct sms_driver *d)
{
	const char *v = config_str(d->c->section, "numbers");
	const char *country = config_str(d->c->section, "country_code");
	char first[SMS_NUMBER_SIZE] = "", num[SMS_NUMBER_SIZE];
	unsigned cc = 0;
	const char *p, *e;

	if (v == NULL)
		return;
	if (country != NULL && sms_country_code_parse(country, &cc, NULL) == -1)
		cc = 0;
	for (p = v; *p != '\0'; p = *e == ',' ? e + 1 : e) {
		const char *sp;

		e = p + strcspn(p, ",");
		while (p < e && isspace((unsigned char)*p))
			p++;
		for (sp = p; sp < e && !isspace((unsigned char)*sp); sp++)
			;
		if (sp == p)
			continue;
		if (sms_number_normalize(p, (size_t)(sp - p), cc, num, NULL,
		    NULL) == -1)
			return;
		if (first[0] == '\0')
			memcpy(first, num, sizeof(first));
		else if (strcmp(first, num) != 0)
			return;
	}
	memcpy(d->to_default, first, sizeof(first));
}

/* Files a crash left half-written in the temporary folder: their texts
 * were never reported ACCEPTED, so the backend sends them again. */
static void
remove_stale(struct sms_driver *d)
{
	struct dirent *de;
	DIR *dir;
	char *path;

	if ((dir = opendir(d->tmp)) == NULL)
		return;
	while ((de = readdir(dir)) != NULL) {
		if (strncmp(de->d_name, d->prefix, strlen(d->prefix)) != 0)
			continue;
		path = xasprintf("%s/%s", d->tmp, de->d_name);
		if (unlink(path) == 0)
			log_info("%s: smstools: removed %s, left by a crash",
			    d->c->domain, path);
		free(path);
	}
	closedir(dir);
}

static int
ensure_dir(const char *path, int create)
{
	struct stat sb;

	if (create && mkdir(path, 0750) == -1 && errno != EEXIST)
		return -1;
	if (stat(path, &sb) == -1)
		return -1;
	if (!S_ISDIR(sb.st_mode)) {
		errno = ENOTDIR;
		return -1;
	}
	return 0;
}

static void driver_stop(struct sms_driver *);

static struct sms_driver *
driver_start(struct component *c)
{
	const char *spool = config_str(c->section, "spool");
	struct sms_driver *d;
	struct timeval zero = { 0, 0 };
	int k;

	if (spool == NULL || *spool == '\0') {
		log_error("%s: smstools: no spool directory (spool = DIR)",
		    c->domain);
		return NULL;
	}
	d = xcalloc(1, sizeof(*d));
	d->c = c;
	d->ifd = -1;
	TAILQ_INIT(&d->held);
	for (k = 0; k < K_COUNT; k++)
		d->wd[k] = -1;
	d->spool = xstrdup(spool);
	smstools_file_prefix(c->domain, d->prefix);
	d->outgoing = xasprintf("%s/outgoing", spool);
	d->tmp = xasprintf("%s/%s", spool, TMP_DIR);
	d->rejected = xasprintf("%s/%s", spool, REJECT_DIR);
	if (ensure_dir(d->outgoing, 0) == -1) {
		log_error("%s: smstools: %s: %s (smsd's outgoing folder)",
		    c->domain, d->outgoing, strerror(errno));
		goto fail;
	}
	if (ensure_dir(d->tmp, 1) == -1 || ensure_dir(d->rejected, 1) == -1) {
		log_error("%s: smstools: cannot create %s and %s: %s",
		    c->domain, d->tmp, d->rejected, strerror(errno));
		goto fail;
	}
	if ((d->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) == -1)
		log_warn("%s: smstools: no inotify (%s): scanning every %d s",
		    c->domain, strerror(errno), SCAN_SECONDS);
	for (k = 0; k < K_COUNT; k++) {
		char *dir = xasprintf("%s/%s", spool, kind_dir[k]);

		if (ensure_dir(dir, 0) == -1) {
			log_warn("%s: smstools: %s: %s: %s", c->domain, dir,
			    strerror(errno), k == K_INCOMING ?
			    "no texts will come in" : k == K_REPORT ?
			    "status reports only through incoming" :
			    "no receipts or failures for sent texts");
			free(dir);
			continue;
		}
		d->dir[k] = dir;
		if (d->ifd != -1 && (d->wd[k] = inotify_add_watch(d->ifd, dir,
		    IN_CLOSE_WRITE | IN_MOVED_TO)) == -1)
			log_warn("%s: smstools: cannot watch %s: %s", c->domain,
			    dir, strerror(errno));
	}
	if (d->ifd != -1) {
		d->iev = event_new(cw->base, d->ifd, EV_READ | EV_PERSIST,
		    on_inotify, d);
		event_add(d->iev, NULL);
	}
	remove_stale(d);
	single_number(d);
	const char *qmode = config_str(c->section, "queue");
	d->per_number_queue = qmode != NULL && strcmp(qmode, "number") == 0 ?
	    1 : qmode != NULL && strcmp(qmode, "none") == 0 ? 0 :
	    d->to_default[0] == '\0';
	/* The first scan (what came while we were down) runs from the
	 * loop, once the backend has finished starting. */
	d->scan_timer = evtimer_new(cw->base, on_scan, d);
	evtimer_add(d->scan_timer, &zero);
	log_info("%s: smstools: spool %s", c->domain, spool);
	return d;
fail:
	driver_stop(d);
	return NULL;
}

static void
driver_stop(struct sms_driver *d)
{
	struct held *h;
	int k;

	if (d == NULL)
		return;
	if (d->iev != NULL)
		event_free(d->iev);
	if (d->scan_timer != NULL)
		event_free(d->scan_timer);
	if (d->ifd != -1)
		close(d->ifd);
	while ((h = TAILQ_FIRST(&d->held)) != NULL)
		held_drop(d, h);
	for (k = 0; k < K_COUNT; k++)
		free(d->dir[k]);
	free(d->spool);
	free(d->outgoing);
	free(d->tmp);
	free(d->rejected);
	free(d);
}

const struct sms_driver_ops sms_smstools_driver = {
	.name = "smstools",
	.start = driver_start,
	.stop = driver_stop,
	.send = send_text,
};
