/*
 * Unit tests of secrets at rest: sealing round trips and tampering, and
 * the key file's creation and refusals.  Each key file test works in its
 * own mkdtemp directory.  Every call that may log runs with stderr sent
 * to a file, so the tests can prove no key bytes reach a log line.
 */
#include "autoconf.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "log.h"
#include "secret.h"
#include "tap.h"

#define AD "gw.example.org alice@example.org"

static char *
make_dir(void)
{
	char tmpl[] = "/tmp/cw-test-secret-XXXXXX";
	if (mkdtemp(tmpl) == NULL) {
		perror("mkdtemp");
		exit(99);
	}
	return strdup(tmpl);
}

static char *
join(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);
	snprintf(p, n, "%s/%s", dir, name);
	return p;
}

/* Removes dir and the few plain entries a test may leave in it. */
static void
remove_dir(char *dir)
{
	static const char *const names[] = { "key", "sub", "link", "nodir" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char *p = join(dir, names[i]);
		if (unlink(p) == -1)
			rmdir(p);
		free(p);
	}
	rmdir(dir);
	free(dir);
}

static void
write_file(const char *path, const unsigned char *buf, size_t len,
    mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd == -1 || write(fd, buf, len) != (ssize_t)len) {
		perror(path);
		exit(99);
	}
	fchmod(fd, mode);
	close(fd);
}

/* Reads a whole small file; returns its length or -1. */
static ssize_t
read_file(const char *path, unsigned char *buf, size_t max)
{
	int fd = open(path, O_RDONLY);
	if (fd == -1)
		return -1;
	ssize_t n = read(fd, buf, max);
	close(fd);
	return n;
}

/*
 * stderr capture: capture_start() sends fd 2 to a temporary file,
 * capture_end() puts it back and returns what was written (NUL-ended,
 * caller frees) with its length in *len.  Also echoed to stdout as TAP
 * comments so a failing run shows the messages.
 */
static int saved_stderr = -1;
static FILE *capture_file;

static void
capture_start(void)
{
	fflush(stderr);
	capture_file = tmpfile();
	saved_stderr = dup(2);
	if (capture_file == NULL || saved_stderr == -1 ||
	    dup2(fileno(capture_file), 2) == -1) {
		perror("capture");
		exit(99);
	}
}

static char *
capture_end(size_t *len)
{
	fflush(stderr);
	dup2(saved_stderr, 2);
	close(saved_stderr);
	fseek(capture_file, 0, SEEK_END);
	long n = ftell(capture_file);
	rewind(capture_file);
	char *buf = calloc(1, (size_t)n + 1);
	*len = fread(buf, 1, (size_t)n, capture_file);
	fclose(capture_file);
	for (char *line = buf, *nl; *line != '\0'; line = nl + 1) {
		nl = strchr(line, '\n');
		if (nl == NULL)
			break;
		printf("# log: %.*s\n", (int)(nl - line), line);
	}
	return buf;
}

static int
contains_bytes(const char *hay, size_t hlen, const void *needle,
    size_t nlen)
{
	return memmem(hay, hlen, needle, nlen) != NULL;
}

/*
 * 1 when the log holds any 4 consecutive key bytes, raw or as hex in
 * either case: the whole key, or any partial dump of it.
 */
static int
log_has_key(const char *log, size_t len, const unsigned char *key)
{
	char hex[65], HEX[65];
	for (int i = 0; i < 32; i++) {
		snprintf(hex + 2 * i, 3, "%02x", key[i]);
		snprintf(HEX + 2 * i, 3, "%02X", key[i]);
	}
	for (int i = 0; i + 4 <= 32; i++) {
		if (contains_bytes(log, len, key + i, 4))
			return 1;
	}
	for (int i = 0; i + 8 <= 64; i += 2) {
		if (contains_bytes(log, len, hex + i, 8) ||
		    contains_bytes(log, len, HEX + i, 8))
			return 1;
	}
	return 0;
}

/* A key whose bytes are easy to spot and not printable text. */
static void
known_key(unsigned char *key, size_t len)
{
	for (size_t i = 0; i < len; i++)
		key[i] = (unsigned char)(0x80 + i * 3);
}

/* A fresh key in its own directory; *dirp to remove afterwards. */
static struct secret_key *
fresh_key(char **dirp)
{
	*dirp = make_dir();
	char *path = join(*dirp, "key");
	capture_start();
	struct secret_key *k = secret_key_load(path);
	size_t n;
	free(capture_end(&n));
	free(path);
	if (k == NULL) {
		printf("# fresh_key failed\n");
		exit(99);
	}
	return k;
}

static void
round_trip_len(const struct secret_key *k, size_t len)
{
	unsigned char *plain = malloc(len + 1);
	for (size_t i = 0; i < len; i++)
		plain[i] = (unsigned char)(i * 7 + 1);
	size_t slen = 0, olen = 12345;
	unsigned char *sealed = secret_seal(k, AD, plain, len, &slen);
	CHECK(sealed != NULL);
	CHECK(slen == 1 + 12 + len + 16);
	CHECK(sealed != NULL && sealed[0] == 0x01);
	/* The plain text does not show through (len >= 16 so a match would
	 * not be chance). */
	if (len >= 16)
		CHECK(memmem(sealed, slen, plain, 16) == NULL);
	char *out = secret_open(k, AD, sealed, slen, &olen);
	CHECK(out != NULL);
	CHECK(olen == len);
	CHECK(out != NULL && memcmp(out, plain, len) == 0);
	CHECK(out != NULL && out[len] == '\0');
	if (out != NULL)
		secret_wipe(out, olen);
	free(out);
	free(sealed);
	free(plain);
}

static void
test_round_trip(void)
{
	char *dir;
	struct secret_key *k = fresh_key(&dir);
	round_trip_len(k, 0);
	round_trip_len(k, 1);
	round_trip_len(k, 16);
	round_trip_len(k, 10 * 1024);

	/* A text password comes back as a C string. */
	size_t slen, olen;
	unsigned char *s = secret_seal(k, AD, (const unsigned char *)"hunter2",
	    7, &slen);
	char *p = secret_open(k, AD, s, slen, &olen);
	CHECK_STR(p, "hunter2");
	free(p);
	free(s);
	secret_key_free(k);
	remove_dir(dir);
}

static void
test_nonces_differ(void)
{
	char *dir;
	struct secret_key *k = fresh_key(&dir);
	size_t l1, l2;
	unsigned char *a = secret_seal(k, AD, (const unsigned char *)"same", 4,
	    &l1);
	unsigned char *b = secret_seal(k, AD, (const unsigned char *)"same", 4,
	    &l2);
	CHECK(l1 == l2);
	CHECK(memcmp(a + 1, b + 1, 12) != 0);
	CHECK(memcmp(a, b, l1) != 0);
	free(a);
	free(b);
	secret_key_free(k);
	remove_dir(dir);
}

/* Flips one bit at offset off and expects the value to be refused. */
static int
opens_after_flip(const struct secret_key *k, const unsigned char *sealed,
    size_t len, size_t off)
{
	unsigned char *c = malloc(len);
	memcpy(c, sealed, len);
	c[off] ^= 0x01;
	size_t olen = 0;
	char *p = secret_open(k, AD, c, len, &olen);
	int opened = p != NULL;
	free(p);
	free(c);
	return opened;
}

static void
test_tamper(void)
{
	char *dir;
	struct secret_key *k = fresh_key(&dir);
	const char *text = "correct horse battery staple";
	size_t len = strlen(text), slen, olen;
	unsigned char *s = secret_seal(k, AD, (const unsigned char *)text,
	    len, &slen);

	CHECK(!opens_after_flip(k, s, slen, 0));		/* version */
	CHECK(!opens_after_flip(k, s, slen, 1));		/* nonce, first */
	CHECK(!opens_after_flip(k, s, slen, 12));		/* nonce, last */
	CHECK(!opens_after_flip(k, s, slen, 13));		/* cipher text */
	CHECK(!opens_after_flip(k, s, slen, 13 + len - 1));
	CHECK(!opens_after_flip(k, s, slen, slen - 16));	/* tag, first */
	CHECK(!opens_after_flip(k, s, slen, slen - 1));	/* tag, last */

	/* Version 0x02 with everything else intact. */
	unsigned char *c = malloc(slen);
	memcpy(c, s, slen);
	c[0] = 0x02;
	CHECK(secret_open(k, AD, c, slen, &olen) == NULL);
	free(c);

	/* Short buffers: truncated tag, header only, nothing. */
	CHECK(secret_open(k, AD, s, slen - 1, &olen) == NULL);
	CHECK(secret_open(k, AD, s, 1 + 12 + 15, &olen) == NULL);
	CHECK(secret_open(k, AD, s, 1, &olen) == NULL);
	CHECK(secret_open(k, AD, s, 0, &olen) == NULL);

	/* The untouched value still opens. */
	char *p = secret_open(k, AD, s, slen, &olen);
	CHECK_STR(p, text);
	free(p);
	free(s);
	secret_key_free(k);
	remove_dir(dir);
}

static void
test_other_ad(void)
{
	char *dir;
	struct secret_key *k = fresh_key(&dir);
	size_t slen, olen;
	unsigned char *s = secret_seal(k, AD, (const unsigned char *)"pw", 2,
	    &slen);
	CHECK(secret_open(k, "gw.example.org bob@example.org", s, slen,
	    &olen) == NULL);
	CHECK(secret_open(k, "", s, slen, &olen) == NULL);
	CHECK(secret_open(k, AD " ", s, slen, &olen) == NULL);
	char *p = secret_open(k, AD, s, slen, &olen);
	CHECK_STR(p, "pw");
	free(p);
	free(s);

	/* An empty ad seals and opens too, and NULL is taken as "". */
	s = secret_seal(k, "", (const unsigned char *)"pw", 2, &slen);
	p = secret_open(k, NULL, s, slen, &olen);
	CHECK_STR(p, "pw");
	free(p);
	free(s);
	secret_key_free(k);
	remove_dir(dir);
}

static void
test_other_key(void)
{
	char *d1, *d2;
	struct secret_key *k1 = fresh_key(&d1);
	struct secret_key *k2 = fresh_key(&d2);
	size_t slen, olen;
	unsigned char *s = secret_seal(k1, AD, (const unsigned char *)"pw", 2,
	    &slen);
	CHECK(secret_open(k2, AD, s, slen, &olen) == NULL);
	free(s);
	secret_key_free(k1);
	secret_key_free(k2);
	remove_dir(d1);
	remove_dir(d2);
}

static void
test_key_create_and_reload(void)
{
	char *dir = make_dir();
	char *path = join(dir, "key");
	struct stat sb;
	unsigned char key[64];

	/* A umask that would take away the owner's write bit. */
	mode_t old = umask(0277);
	capture_start();
	struct secret_key *k = secret_key_load(path);
	size_t llen;
	char *log = capture_end(&llen);
	umask(old);

	CHECK(k != NULL);
	CHECK(lstat(path, &sb) == 0);
	CHECK(S_ISREG(sb.st_mode));
	CHECK((sb.st_mode & 07777) == 0600);
	CHECK(sb.st_size == 32);
	CHECK(read_file(path, key, sizeof(key)) == 32);
	CHECK(!log_has_key(log, llen, key));
	CHECK(strstr(log, path) != NULL);	/* "created" names the file */
	free(log);

	size_t slen, olen;
	unsigned char *s = secret_seal(k, AD, (const unsigned char *)"pw", 2,
	    &slen);
	secret_key_free(k);

	/* Second start: the same file, the same key, nothing rewritten. */
	capture_start();
	k = secret_key_load(path);
	log = capture_end(&llen);
	CHECK(k != NULL);
	CHECK(!log_has_key(log, llen, key));
	free(log);
	unsigned char again[64];
	CHECK(read_file(path, again, sizeof(again)) == 32);
	CHECK(memcmp(key, again, 32) == 0);
	char *p = k ? secret_open(k, AD, s, slen, &olen) : NULL;
	CHECK_STR(p, "pw");
	free(p);
	free(s);
	secret_key_free(k);
	free(path);
	remove_dir(dir);
}

/* A key file we wrote ourselves (known bytes) loads and works. */
static void
test_key_existing(void)
{
	char *dir = make_dir();
	char *path = join(dir, "key");
	unsigned char key[32];
	known_key(key, sizeof(key));
	write_file(path, key, sizeof(key), 0600);

	capture_start();
	struct secret_key *k = secret_key_load(path);
	size_t llen;
	char *log = capture_end(&llen);
	CHECK(k != NULL);
	CHECK(!log_has_key(log, llen, key));
	free(log);
	secret_key_free(k);

	/* 0400 is fine too: only group and other bits refuse. */
	chmod(path, 0400);
	capture_start();
	k = secret_key_load(path);
	free(capture_end(&llen));
	CHECK(k != NULL);
	secret_key_free(k);
	free(path);
	remove_dir(dir);
}

/*
 * Owned by another user: loaded (secret.h lists no such refusal) but
 * warned about, since that user can read the key.  Needs root to chown.
 */
static void
test_key_other_owner(void)
{
	if (geteuid() != 0) {
		printf("# skipped: needs root to chown\n");
		return;
	}
	char *dir = make_dir();
	char *path = join(dir, "key");
	unsigned char key[32];
	known_key(key, sizeof(key));
	write_file(path, key, sizeof(key), 0600);
	CHECK(chown(path, 65534, 65534) == 0);

	capture_start();
	struct secret_key *k = secret_key_load(path);
	size_t llen;
	char *log = capture_end(&llen);
	CHECK(k != NULL);
	CHECK(strstr(log, "warn") != NULL);
	CHECK(strstr(log, "chown") != NULL);
	CHECK(strstr(log, path) != NULL);
	CHECK(!log_has_key(log, llen, key));
	free(log);
	secret_key_free(k);
	free(path);
	remove_dir(dir);
}

/*
 * Loads path and expects a refusal: NULL, the file left as it was, a log
 * line naming want (the path and the fix), and no key bytes in the log.
 */
static void
expect_refusal(const char *path, const char *want1, const char *want2,
    const unsigned char *key)
{
	struct stat before, after;
	int existed = lstat(path, &before) == 0;

	capture_start();
	struct secret_key *k = secret_key_load(path);
	size_t llen;
	char *log = capture_end(&llen);
	CHECK(k == NULL);
	secret_key_free(k);
	CHECK(strstr(log, "error") != NULL);
	if (want1 != NULL)
		CHECK(strstr(log, want1) != NULL);
	if (want2 != NULL)
		CHECK(strstr(log, want2) != NULL);
	if (key != NULL)
		CHECK(!log_has_key(log, llen, key));
	free(log);
	if (existed) {
		CHECK(lstat(path, &after) == 0);
		CHECK(after.st_ino == before.st_ino);
		CHECK(after.st_size == before.st_size);
		CHECK(after.st_mode == before.st_mode);
	} else {
		CHECK(lstat(path, &after) == -1);
	}
}

static void
refuse_mode(mode_t mode, const char *mode_text)
{
	char *dir = make_dir();
	char *path = join(dir, "key");
	unsigned char key[32];
	known_key(key, sizeof(key));
	write_file(path, key, sizeof(key), mode);
	char fix[4200];
	snprintf(fix, sizeof(fix), "chmod 600 %s", path);
	expect_refusal(path, fix, mode_text, key);
	free(path);
	remove_dir(dir);
}

static void
test_refuse_0644(void)
{
	refuse_mode(0644, "0644");
}

static void
test_refuse_0640(void)
{
	refuse_mode(0640, "0640");
}

static void
test_refuse_0602(void)
{
	refuse_mode(0602, "0602");
}

static void
refuse_size(size_t len, const char *has)
{
	char *dir = make_dir();
	char *path = join(dir, "key");
	unsigned char key[64];
	known_key(key, sizeof(key));
	write_file(path, key, len, 0600);
	expect_refusal(path, path, has, len >= 32 ? key : NULL);
	/* For short files check the bytes we did write are not logged. */
	if (len < 32) {
		capture_start();
		struct secret_key *k = secret_key_load(path);
		size_t llen;
		char *log = capture_end(&llen);
		CHECK(k == NULL);
		for (size_t i = 0; i + 4 <= len; i++)
			CHECK(memmem(log, llen, key + i, 4) == NULL);
		free(log);
	}
	free(path);
	remove_dir(dir);
}

static void
test_refuse_31_bytes(void)
{
	refuse_size(31, "this one has 31");
}

static void
test_refuse_33_bytes(void)
{
	refuse_size(33, "this one has 33");
}

static void
test_refuse_empty(void)
{
	refuse_size(0, "this one has 0");
}

static void
test_refuse_directory(void)
{
	char *dir = make_dir();
	char *path = join(dir, "sub");
	mkdir(path, 0700);
	expect_refusal(path, path, "directory", NULL);
	free(path);
	remove_dir(dir);
}

static void
test_refuse_symlink(void)
{
	char *dir = make_dir();
	char *path = join(dir, "key");
	char *link = join(dir, "link");
	unsigned char key[32];
	known_key(key, sizeof(key));
	write_file(path, key, sizeof(key), 0600);
	CHECK(symlink(path, link) == 0);
	expect_refusal(link, link, "symbolic link", key);

	/* A dangling link is refused too, not followed to create a file. */
	unlink(path);
	expect_refusal(link, link, "symbolic link", NULL);
	CHECK(access(path, F_OK) == -1);
	free(link);
	free(path);
	remove_dir(dir);
}

static void
test_refuse_missing_directory(void)
{
	char *dir = make_dir();
	char *path = join(dir, "nodir/key");
	char *sub = join(dir, "nodir");
	char fix[4200];
	snprintf(fix, sizeof(fix), "mkdir -p -m 700 %s", sub);
	expect_refusal(path, path, fix, NULL);
	CHECK(access(sub, F_OK) == -1);	/* not created for the operator */
	free(sub);
	free(path);
	remove_dir(dir);
}

int
main(void)
{
	log_init(LOG_LEVEL_DEBUG, 0);
	RUN(test_round_trip);
	RUN(test_nonces_differ);
	RUN(test_tamper);
	RUN(test_other_ad);
	RUN(test_other_key);
	RUN(test_key_create_and_reload);
	RUN(test_key_existing);
	RUN(test_key_other_owner);
	RUN(test_refuse_0644);
	RUN(test_refuse_0640);
	RUN(test_refuse_0602);
	RUN(test_refuse_31_bytes);
	RUN(test_refuse_33_bytes);
	RUN(test_refuse_empty);
	RUN(test_refuse_directory);
	RUN(test_refuse_symlink);
	RUN(test_refuse_missing_directory);
	return TAP_DONE();
}
