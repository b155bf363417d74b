/*
 * libFuzzer harness for the callback listener's request-head parser
 * (sms_http_parse).  The input is the bytes a client sends; the first
 * byte, when below 0x20, picks smaller limits so that both the size
 * refusals and the normal path are reached.  Checked, apart from "no
 * crash, no leak, no read past the end" (inputs are copied to buffers
 * of their exact size):
 *   - the answer is 1, 0 or -1, a refusal carries one of the statuses
 *     the listener knows and a reason;
 *   - a complete head is no longer than the input and the limit, its
 *     method is GET, its target a path of printable bytes within the
 *     target limit, and it ends in a blank line;
 *   - more bytes after a complete head change nothing about it
 *     (pipelining), and any shorter prefix of it is "needs more";
 *   - "needs more" happens only below the head limit.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sms_http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void die(const char *) __attribute__((noreturn));

static void
die(const char *what)
{
	fprintf(stderr, "fuzz_sms_http: %s\n", what);
	abort();
}

static int
parse(const char *b, size_t n, size_t mh, size_t mt, struct sms_http_head *h,
    int *st)
{
	const char *why = NULL;
	int r = sms_http_parse(b, n, mh, mt, h, st, &why);
	if (r < -1 || r > 1)
		die("answer out of range");
	if (r == -1) {
		static const int known[] = { 400, 405, 413, 414, 431, 501, 505 };
		int ok = 0;
		for (size_t i = 0; i < sizeof(known) / sizeof(*known); i++)
			ok |= *st == known[i];
		if (!ok || why == NULL || *why == '\0')
			die("refusal without a known status or a reason");
		if (h->target != NULL)
			die("a refusal left a target");
	}
	if (r == 0 && (n >= mh || h->target != NULL))
		die("needs more at or past the head limit");
	return r;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t mh = 48 * 1024, mt = 32 * 1024;
	if (size > 0 && data[0] < 0x20) {
		mh = 16 + (size_t)data[0] * 8;
		mt = 1 + (size_t)data[0] * 4;
		data++;
		size--;
	}
	char *buf = malloc(size ? size : 1);
	if (buf == NULL)
		abort();
	memcpy(buf, data, size);
	struct sms_http_head h;
	int st = 0;
	int r = parse(buf, size, mh, mt, &h, &st);
	if (r == 1) {
		if (h.head_len == 0 || h.head_len > size || h.head_len > mh)
			die("head length");
		if (strcmp(h.method, "GET") != 0)
			die("method");
		size_t tl = strlen(h.target);
		if (tl == 0 || tl > mt || h.target[0] != '/')
			die("target");
		for (size_t i = 0; i < tl; i++)
			if ((unsigned char)h.target[i] <= 0x20 ||
			    (unsigned char)h.target[i] >= 0x7f)
				die("byte in the target");
		if (buf[h.head_len - 1] != '\n')
			die("head does not end a line");
		if (h.minor != 0 && h.minor != 1)
			die("version");
		/* A prefix of the head needs more. */
		struct sms_http_head p;
		int pst;
		char *pre = malloc(h.head_len);
		if (pre == NULL)
			abort();
		memcpy(pre, buf, h.head_len - 1);
		if (parse(pre, h.head_len - 1, mh, mt, &p, &pst) != 0)
			die("a prefix of a complete head is not 'needs more'");
		free(pre);
		/* Bytes after it change nothing. */
		char *more = malloc(size + 7);
		if (more == NULL)
			abort();
		memcpy(more, buf, size);
		memcpy(more + size, "GET / H", 7);
		if (parse(more, size + 7, mh, mt, &p, &pst) != 1 ||
		    p.head_len != h.head_len || strcmp(p.target,
		    h.target) != 0 || p.keep_alive != h.keep_alive)
			die("trailing bytes changed the head");
		sms_http_head_clear(&p);
		free(more);
		sms_http_head_clear(&h);
	}
	free(buf);
	return 0;
}
