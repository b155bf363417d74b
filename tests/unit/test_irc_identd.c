/* Unit tests of causeway's identd (backends/irc/irc_identd.c). */
#include "autoconf.h"

#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "irc_identd.h"
#include "tap.h"

static void
test_parse(void)
{
	unsigned l = 0, r = 0;
	CHECK(identd_parse("6193, 23", &l, &r) == 0 && l == 6193 && r == 23);
	CHECK(identd_parse("  6193 ,23  ", &l, &r) == 0 && l == 6193 &&
	    r == 23);
	CHECK(identd_parse("1,65535", &l, &r) == 0 && l == 1 && r == 65535);
	CHECK(identd_parse("", &l, &r) == -1);
	CHECK(identd_parse("6193", &l, &r) == -1);
	CHECK(identd_parse("6193,", &l, &r) == -1);
	CHECK(identd_parse("0, 23", &l, &r) == -1);
	CHECK(identd_parse("65536, 23", &l, &r) == -1);
	CHECK(identd_parse("99999999999999999999, 23", &l, &r) == -1);
	CHECK(identd_parse("-1, 23", &l, &r) == -1);
	CHECK(identd_parse("6193, 23, 5", &l, &r) == -1);
	CHECK(identd_parse("6193, 23 x", &l, &r) == -1);
	CHECK(identd_parse("a, b", &l, &r) == -1);
}

static struct sockaddr_in
sin_of(const char *ip, unsigned port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
	    .sin_port = htons((unsigned short)port) };
	inet_pton(AF_INET, ip, &sin.sin_addr);
	return sin;
}

#define SA(x) ((struct sockaddr *)&(x))

static void
test_answer(void)
{
	char buf[256];
	/* Our side 192.0.2.1; servers 198.51.100.7 and 203.0.113.9. */
	struct sockaddr_in l1 = sin_of("192.0.2.1", 40000),
	    r1 = sin_of("198.51.100.7", 6667),
	    l2 = sin_of("192.0.2.1", 40001),
	    r2 = sin_of("203.0.113.9", 6697),
	    me = sin_of("192.0.2.1", 113),
	    s1 = sin_of("198.51.100.7", 50000),
	    s2 = sin_of("203.0.113.9", 50000),
	    other = sin_of("203.0.113.66", 50000);
	identd_add(SA(l1), SA(r1), "cw1a2b3c4d");
	identd_add(SA(l2), SA(r2), "cw99");
	identd_answer("40000 , 6667", SA(me), SA(s1), buf, sizeof(buf));
	CHECK_STR(buf, "40000 , 6667 : USERID : UNIX : cw1a2b3c4d\r\n");
	identd_answer("40001,6697", SA(me), SA(s2), buf, sizeof(buf));
	CHECK_STR(buf, "40001 , 6697 : USERID : UNIX : cw99\r\n");
	/* The same local port toward another server is someone else. */
	identd_answer("40000, 6697", SA(me), SA(s2), buf, sizeof(buf));
	CHECK_STR(buf, "40000 , 6697 : ERROR : NO-USER\r\n");
	/* Only the server of the connection hears who owns it. */
	identd_answer("40000, 6667", SA(me), SA(s2), buf, sizeof(buf));
	CHECK_STR(buf, "40000 , 6667 : ERROR : NO-USER\r\n");
	identd_answer("40000, 6667", SA(me), SA(other), buf, sizeof(buf));
	CHECK_STR(buf, "40000 , 6667 : ERROR : NO-USER\r\n");
	identd_answer("garbage\r\nQUIT", SA(me), SA(s1), buf, sizeof(buf));
	CHECK_STR(buf, "0 , 0 : ERROR : INVALID-PORT\r\n");

	/* Two users, two servers, the same port pair: two entries, each
	 * told only to its own server. */
	struct sockaddr_in r3 = sin_of("203.0.113.9", 6667);
	identd_add(SA(l1), SA(r3), "cwother");
	identd_answer("40000, 6667", SA(me), SA(s1), buf, sizeof(buf));
	CHECK_STR(buf, "40000 , 6667 : USERID : UNIX : cw1a2b3c4d\r\n");
	identd_answer("40000, 6667", SA(me), SA(s2), buf, sizeof(buf));
	CHECK_STR(buf, "40000 , 6667 : USERID : UNIX : cwother\r\n");
	identd_remove(SA(l1), SA(r3));
	identd_answer("40000, 6667", SA(me), SA(s1), buf, sizeof(buf));
	CHECK_STR(buf, "40000 , 6667 : USERID : UNIX : cw1a2b3c4d\r\n");

	/* An IPv4-mapped IPv6 peer is the same IPv4 address. */
	struct sockaddr_in6 m6 = { .sin6_family = AF_INET6,
	    .sin6_port = htons(50000) };
	inet_pton(AF_INET6, "::ffff:198.51.100.7", &m6.sin6_addr);
	identd_answer("40000, 6667", SA(me), SA(m6), buf, sizeof(buf));
	CHECK_STR(buf, "40000 , 6667 : USERID : UNIX : cw1a2b3c4d\r\n");

	/* Replacing and removing. */
	identd_add(SA(l1), SA(r1), "cwnew");
	identd_answer("40000, 6667", SA(me), SA(s1), buf, sizeof(buf));
	CHECK_STR(buf, "40000 , 6667 : USERID : UNIX : cwnew\r\n");
	identd_remove(SA(l1), SA(r1));
	identd_remove(SA(l1), SA(r1));
	identd_answer("40000, 6667", SA(me), SA(s1), buf, sizeof(buf));
	CHECK_STR(buf, "40000 , 6667 : ERROR : NO-USER\r\n");
	identd_answer("40001, 6697", SA(me), SA(s2), buf, sizeof(buf));
	CHECK_STR(buf, "40001 , 6697 : USERID : UNIX : cw99\r\n");
	identd_stop();
	identd_answer("40001, 6697", SA(me), SA(s2), buf, sizeof(buf));
	CHECK_STR(buf, "40001 , 6697 : ERROR : NO-USER\r\n");
}

/* A client on its own thread: sends what, reads the answer. */
struct query {
	int port;
	const char *from;	/* source address; NULL: 127.0.0.1 */
	const char *send;
	size_t len;
	char answer[256];
	struct event_base *base;
};

static void *
client(void *arg)
{
	struct query *qr = arg;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET,
	    .sin_port = htons((unsigned short)qr->port) };
	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	struct sockaddr_in src = { .sin_family = AF_INET };
	inet_pton(AF_INET, qr->from != NULL ? qr->from : "127.0.0.1",
	    &src.sin_addr);
	size_t got = 0;
	if (bind(fd, (struct sockaddr *)&src, sizeof(src)) == 0 &&
	    connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0) {
		for (size_t off = 0; off < qr->len; ) {
			ssize_t n = write(fd, qr->send + off, qr->len - off);
			if (n <= 0)
				break;
			off += (size_t)n;
		}
		ssize_t n;
		while (got < sizeof(qr->answer) - 1 &&
		    (n = read(fd, qr->answer + got,
		    sizeof(qr->answer) - 1 - got)) > 0)
			got += (size_t)n;
	}
	qr->answer[got] = '\0';
	close(fd);
	event_base_loopbreak(qr->base);
	return NULL;
}

static void
ask(struct event_base *base, struct query *qr)
{
	pthread_t t;
	qr->base = base;
	qr->port = identd_port();
	pthread_create(&t, NULL, client, qr);
	/* The loop runs until the client has its answer (or EOF). */
	event_base_loop(base, EVLOOP_NO_EXIT_ON_EMPTY);
	pthread_join(t, NULL);
}

static void
test_socket(void)
{
	struct event_base *base = event_base_new();
	CHECK(identd_listen(base, "127.0.0.1:0") == 0);
	CHECK(identd_port() > 0);
	CHECK(identd_listen(base, "127.0.0.1:0") == 0);
	CHECK(identd_listen(base, "not an address") == -1);
	struct sockaddr_in l = sin_of("127.0.0.1", 51000),
	    r = sin_of("127.0.0.1", 6667);
	identd_add(SA(l), SA(r), "cwabc");

	struct query q1 = { .send = "51000 , 6667\r\n", .len = 14 };
	ask(base, &q1);
	CHECK_STR(q1.answer, "51000 , 6667 : USERID : UNIX : cwabc\r\n");
	struct query q2 = { .send = "51001, 6667\n", .len = 12 };
	ask(base, &q2);
	CHECK_STR(q2.answer, "51001 , 6667 : ERROR : NO-USER\r\n");
	/* A line past the limit with no end: dropped without an answer. */
	static char big[IDENTD_LINE_MAX * 3];
	memset(big, '1', sizeof(big));
	struct query q3 = { .send = big, .len = sizeof(big) };
	ask(base, &q3);
	CHECK_STR(q3.answer, "");
	/* Still serving afterwards. */
	struct query q4 = { .send = "51000,6667\r\n", .len = 12 };
	ask(base, &q4);
	CHECK_STR(q4.answer, "51000 , 6667 : USERID : UNIX : cwabc\r\n");
	/* The connection went to 127.0.0.1: anyone else asking about it,
	 * here 127.0.0.2, learns nothing. */
	struct query q5 = { .send = "51000,6667\r\n", .len = 12,
	    .from = "127.0.0.2" };
	ask(base, &q5);
	CHECK_STR(q5.answer, "51000 , 6667 : ERROR : NO-USER\r\n");
	identd_stop();
	CHECK(identd_port() == 0);
	event_base_free(base);
}

int
main(void)
{
	/* The client thread breaks the loop; a dropped client must not
	 * kill the test with SIGPIPE. */
	evthread_use_pthreads();
	signal(SIGPIPE, SIG_IGN);
	RUN(test_parse);
	RUN(test_answer);
	RUN(test_socket);
	return TAP_DONE();
}
