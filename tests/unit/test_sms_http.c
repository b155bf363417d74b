/*
 * Unit tests of the callback listener's request-head parser
 * (backends/sms/sms_http.c): what Kannel sends is taken, every bad
 * head is refused with the status the listener answers.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "sms_http.h"
#include "tap.h"

#define MH 1024
#define MT 256

static int
parse(const char *s, struct sms_http_head *h, int *st)
{
	const char *why;
	return sms_http_parse(s, strlen(s), MH, MT, h, st, &why);
}

static void
test_good(void)
{
	struct sms_http_head h;
	int st;
	const char *req = "GET /kannel/t/mo?from=1&text=a%20b HTTP/1.1\r\n"
	    "Host: 127.0.0.1\r\nUser-Agent: Kannel/1.4.5\r\n\r\nGET /next";
	CHECK(parse(req, &h, &st) == 1);
	CHECK_STR(h.method, "GET");
	CHECK_STR(h.target, "/kannel/t/mo?from=1&text=a%20b");
	CHECK(h.minor == 1 && h.keep_alive == 1);
	CHECK(h.head_len == strlen(req) - strlen("GET /next"));
	sms_http_head_clear(&h);

	CHECK(parse("GET / HTTP/1.0\r\n\r\n", &h, &st) == 1);
	CHECK(h.minor == 0 && h.keep_alive == 0);
	sms_http_head_clear(&h);
	CHECK(parse("GET / HTTP/1.0\nConnection: Keep-Alive\n\n", &h,
	    &st) == 1);
	CHECK(h.keep_alive == 1);
	sms_http_head_clear(&h);
	CHECK(parse("\r\nGET / HTTP/1.1\r\nConnection: foo, close\r\n"
	    "Content-Length: 0\r\n\r\n", &h, &st) == 1);
	CHECK(h.keep_alive == 0);
	sms_http_head_clear(&h);
}

static void
test_incomplete(void)
{
	struct sms_http_head h;
	int st;
	CHECK(parse("", &h, &st) == 0);
	CHECK(parse("GET /kann", &h, &st) == 0);
	CHECK(parse("GET / HTTP/1.1\r\nHost: x\r\n", &h, &st) == 0);
	CHECK(parse("GET / HTTP/1.1\r\nHost: x\r\n\r", &h, &st) == 0);
}

static void
refused(const char *req, int want)
{
	struct sms_http_head h;
	int st = 0;
	const char *why = NULL;
	CHECK(sms_http_parse(req, strlen(req), MH, MT, &h, &st, &why) == -1);
	CHECK(st == want);
	CHECK(why != NULL && h.target == NULL);
	if (st != want)
		printf("#   %.40s: %d, wanted %d\n", req, st, want);
}

static void
test_refused(void)
{
	refused("POST /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", 405);
	refused("GET /x HTTP/1.1\r\nContent-Length: 3\r\n\r\n", 413);
	refused("GET /x HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400);
	refused("GET /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501);
	refused("GET /x HTTP/1.1\r\n Folded: x\r\n\r\n", 400);
	refused("GET /x HTTP/1.1\r\nNo colon\r\n\r\n", 400);
	refused("GET /x HTTP/1.1\r\nBad Name: x\r\n\r\n", 400);
	refused("GET /x HTTP/1.1\r\n: empty name\r\n\r\n", 400);
	refused("GET /x HTTP/1.1\r\nA: b\rc\r\n\r\n", 400);
	refused("GET /x HTTP/2.0\r\n\r\n", 505);
	refused("GET /x FTP/1.0\r\n\r\n", 400);
	refused("GET x HTTP/1.1\r\n\r\n", 400);
	refused("GET /a\x01 HTTP/1.1\r\n\r\n", 400);
	refused("GET  /x HTTP/1.1\r\n\r\n", 400);
	refused("G(T /x HTTP/1.1\r\n\r\n", 400);
	refused("GET /x HTTP/1.1 \r\n\r\n", 400);

	/* Sizes: a target past MT, a line with no end, a head past MH,
	 * too many header lines. */
	char big[MH + 64];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "GET /", 5);
	refused(big, 414);
	memcpy(big + MT + 10, " HTTP/1.1\r\n", 11);
	refused(big, 414);
	char hdrs[MH + 200] = "GET / HTTP/1.1\r\n";
	while (strlen(hdrs) < MH + 100)
		strcat(hdrs, "X-A: bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\r\n");
	refused(hdrs, 431);
	char many[4096] = "GET / HTTP/1.1\r\n";
	for (int i = 0; i <= SMS_HTTP_HEADERS_MAX; i++)
		strcat(many, "A: b\r\n");
	strcat(many, "\r\n");
	refused(many, 431);
}

int
main(void)
{
	RUN(test_good);
	RUN(test_incomplete);
	RUN(test_refused);
	return TAP_DONE();
}
