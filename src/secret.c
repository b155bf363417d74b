/*
 * Secrets at rest: AES-256-GCM through OpenSSL's EVP interface.
 *
 * Key file lifecycle:
 *
 *   missing --create (O_EXCL, 0600, 32 random bytes, fsync)--> key
 *   existing --lstat/fstat checks--> (refuse: NULL, file untouched) | key
 *
 * A key file we refuse is never rewritten or replaced: every password in
 * the store is sealed under it, and a gateway that quietly makes a new
 * key has lost them all.  The fix is always the operator's, so each
 * refusal names the file and says what to do.
 *
 * Sealed value layout (see secret.h):
 *
 *   0x01 | nonce (12) | cipher text (len) | tag (16)
 *
 * The nonce is random per seal.  With 96-bit random nonces the chance of
 * a repeat stays negligible far beyond the number of passwords a gateway
 * will ever seal under one key.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "log.h"
#include "secret.h"
#include "xmalloc.h"

#define KEY_LEN 32
#define NONCE_LEN 12
#define TAG_LEN 16
#define VERSION_1 0x01
#define OVERHEAD (1 + NONCE_LEN + TAG_LEN)

/*
 * EVP_*Update takes an int length; feed longer input in pieces of this
 * size rather than refuse it.
 */
#define CHUNK (1 << 30)

struct secret_key {
	unsigned char key[KEY_LEN];
};

void
secret_wipe(void *p, size_t len)
{
	if (p != NULL && len > 0)
		OPENSSL_cleanse(p, len);
}

void
secret_key_free(struct secret_key *k)
{
	if (k == NULL)
		return;
	OPENSSL_cleanse(k, sizeof(*k));
	free(k);
}

/* The directory part of path, allocated (not dirname(3): it may write). */
static char *
path_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	if (slash == NULL)
		return xstrdup(".");
	while (slash > path && slash[-1] == '/')
		slash--;
	if (slash == path)
		return xstrdup("/");
	return xstrndup(path, (size_t)(slash - path));
}

/* Writes all of buf; 0 or -1 with errno set. */
static int
write_all(int fd, const unsigned char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads exactly len bytes; 0, or -1 with errno set (0 on a short file). */
static int
read_all(int fd, unsigned char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = read(fd, buf, len);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0) {
			errno = 0;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Makes a new key file at path.  Returns 1 with k filled, 0 when the file
 * already exists (the caller loads it: another process may have won the
 * race, and O_EXCL means we never clobber it), -1 on failure (logged).
 * A file this call made but could not finish is removed again, so a
 * failed start does not leave a truncated key behind to be refused later.
 */
static int
key_create(const char *path, struct secret_key *k)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0600);
	if (fd == -1) {
		if (errno == EEXIST)
			return 0;
		int err = errno;
		char *dir = path_dir(path);
		if (err == ENOENT)
			log_error("key file %s: directory %s does not exist; "
			    "create it (mkdir -p -m 700 %s) or set key_file "
			    "to a path in an existing directory",
			    path, dir, dir);
		else
			log_error("key file %s: cannot create it: %s",
			    path, strerror(err));
		free(dir);
		return -1;
	}

	/* The mode given to open() passes through the umask; say it again
	 * so the file is exactly 0600 whatever the umask. */
	if (fchmod(fd, 0600) == -1) {
		log_error("key file %s: chmod 0600: %s", path,
		    strerror(errno));
		goto fail;
	}
	if (RAND_bytes(k->key, KEY_LEN) != 1) {
		log_error("key file %s: the random number generator failed; "
		    "no key was made", path);
		goto fail;
	}
	if (write_all(fd, k->key, KEY_LEN) == -1) {
		log_error("key file %s: write: %s", path, strerror(errno));
		goto fail;
	}
	/*
	 * The key must reach the disk before any sealed value does: a store
	 * row that survives a crash while its key does not is lost.
	 */
	if (fsync(fd) == -1) {
		log_error("key file %s: fsync: %s", path, strerror(errno));
		goto fail;
	}
	if (close(fd) == -1) {
		fd = -1;
		log_error("key file %s: close: %s", path, strerror(errno));
		goto fail;
	}

	/* And so must its directory entry.  Best effort: some file systems
	 * do not let a directory be opened or synced. */
	char *dir = path_dir(path);
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd != -1) {
		if (fsync(dfd) == -1 && errno != EINVAL)
			log_warn("key file %s: fsync of %s: %s", path, dir,
			    strerror(errno));
		close(dfd);
	}
	free(dir);

	log_info("key file %s: created a new key (keep a backup of this "
	    "file: without it stored passwords cannot be read)", path);
	return 1;

fail:
	if (fd != -1)
		close(fd);
	OPENSSL_cleanse(k->key, KEY_LEN);
	if (unlink(path) == -1)
		log_error("key file %s: could not remove the unfinished file: "
		    "%s; remove it by hand", path, strerror(errno));
	return -1;
}

/*
 * Refusals shared by the lstat() and the fstat() of an existing file.
 * Returns 0 when sb describes a usable key file, else -1 (logged).
 */
static int
key_check(const char *path, const struct stat *sb)
{
	if (S_ISLNK(sb->st_mode)) {
		log_error("key file %s: is a symbolic link; set key_file to "
		    "the real file's path", path);
		return -1;
	}
	if (S_ISDIR(sb->st_mode)) {
		log_error("key file %s: is a directory; set key_file to a "
		    "file path (causeway creates the file on first start)",
		    path);
		return -1;
	}
	if (!S_ISREG(sb->st_mode)) {
		log_error("key file %s: not a regular file; set key_file to "
		    "a regular file", path);
		return -1;
	}
	/*
	 * We usually run as root, to whom access(2) would say yes to any
	 * mode, so look at the bits: a key others can read is a key others
	 * have, and one others can write is one they can replace.
	 */
	if ((sb->st_mode & (S_IRWXG | S_IRWXO)) != 0) {
		log_error("key file %s: readable or writable by group or "
		    "others (mode %04o); run chmod 600 %s", path,
		    (unsigned)(sb->st_mode & 07777), path);
		return -1;
	}
	if (sb->st_size != KEY_LEN) {
		log_error("key file %s: the key must be %d bytes; this one "
		    "has %lld.  Put the right key file back; only if no "
		    "passwords were ever stored under it, move it away and "
		    "causeway will create a new one", path, KEY_LEN,
		    (long long)sb->st_size);
		return -1;
	}
	return 0;
}

/* Loads an existing key file into k.  0 or -1 (logged). */
static int
key_read(const char *path, struct secret_key *k)
{
	struct stat sb, fsb;

	if (lstat(path, &sb) == -1) {
		log_error("key file %s: %s", path, strerror(errno));
		return -1;
	}
	if (key_check(path, &sb) == -1)
		return -1;

	/*
	 * O_NOFOLLOW and the fstat() comparison close the gap between the
	 * lstat() and the open(): a file swapped in meanwhile is refused,
	 * not read.  O_NONBLOCK so a FIFO swapped in cannot hang us.
	 */
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd == -1) {
		if (errno == ELOOP)
			log_error("key file %s: is a symbolic link; set "
			    "key_file to the real file's path", path);
		else
			log_error("key file %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &fsb) == -1) {
		log_error("key file %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	if (fsb.st_dev != sb.st_dev || fsb.st_ino != sb.st_ino) {
		log_error("key file %s: the file changed while being opened; "
		    "check who else writes it, then restart", path);
		close(fd);
		return -1;
	}
	if (key_check(path, &fsb) == -1) {
		close(fd);
		return -1;
	}
	/*
	 * secret.h asks for a file owned by our own user but lists no
	 * refusal for another owner; warn, since that owner holds the key.
	 */
	if (fsb.st_uid != geteuid())
		log_warn("key file %s: owned by uid %lu, not by the user "
		    "causeway runs as (uid %lu), so that user can read the "
		    "key; run chown %lu %s", path, (unsigned long)fsb.st_uid,
		    (unsigned long)geteuid(), (unsigned long)geteuid(), path);
	if (read_all(fd, k->key, KEY_LEN) == -1) {
		if (errno == 0)
			log_error("key file %s: shorter than %d bytes while "
			    "reading; check who else writes it", path,
			    KEY_LEN);
		else
			log_error("key file %s: read: %s", path,
			    strerror(errno));
		OPENSSL_cleanse(k->key, KEY_LEN);
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

struct secret_key *
secret_key_load(const char *path)
{
	if (path == NULL || path[0] == '\0') {
		log_error("key file: no path given; set key_file");
		return NULL;
	}

	struct secret_key *k = xcalloc(1, sizeof(*k));
	int rc = key_create(path, k);
	if (rc == 0)
		rc = key_read(path, k) == 0 ? 1 : -1;
	if (rc == -1) {
		secret_key_free(k);
		return NULL;
	}
	return k;
}

/* Feeds len bytes to the cipher in int-sized pieces.  1 or 0. */
static int
cipher_update(EVP_CIPHER_CTX *ctx, unsigned char *out,
    const unsigned char *in, size_t len)
{
	while (len > 0) {
		int n = len > CHUNK ? CHUNK : (int)len;
		int outl;
		if (EVP_CipherUpdate(ctx, out, &outl, in, n) != 1)
			return 0;
		/* GCM is a stream mode: output length equals input length. */
		out += outl;
		in += n;
		len -= (size_t)n;
	}
	return 1;
}

/* The associated data, NULL taken as "" so a caller's NULL and "" agree. */
static int
cipher_ad(EVP_CIPHER_CTX *ctx, const char *ad)
{
	size_t adlen = ad != NULL ? strlen(ad) : 0;
	int outl;
	while (adlen > 0) {
		int n = adlen > CHUNK ? CHUNK : (int)adlen;
		if (EVP_CipherUpdate(ctx, NULL, &outl,
		    (const unsigned char *)ad, n) != 1)
			return 0;
		ad += n;
		adlen -= (size_t)n;
	}
	return 1;
}

unsigned char *
secret_seal(const struct secret_key *k, const char *ad,
    const unsigned char *plain, size_t len, size_t *outlen)
{
	if (len > SIZE_MAX - OVERHEAD) {
		log_error("secret: value too large to seal (%zu bytes)", len);
		return NULL;
	}

	size_t total = OVERHEAD + len;
	unsigned char *out = xmalloc(total);
	unsigned char *nonce = out + 1;
	unsigned char *ct = nonce + NONCE_LEN;
	unsigned char *tag = ct + len;
	EVP_CIPHER_CTX *ctx = NULL;
	int outl;

	out[0] = VERSION_1;
	/* Never seal without a fresh nonce: a repeated one under GCM gives
	 * away the XOR of two plain texts and the authentication key. */
	if (RAND_bytes(nonce, NONCE_LEN) != 1) {
		log_error("secret: the random number generator failed; "
		    "nothing sealed");
		goto fail;
	}
	if ((ctx = EVP_CIPHER_CTX_new()) == NULL ||
	    EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN,
	    NULL) != 1 ||
	    EVP_EncryptInit_ex(ctx, NULL, NULL, k->key, nonce) != 1 ||
	    !cipher_ad(ctx, ad) ||
	    !cipher_update(ctx, ct, plain, len) ||
	    EVP_EncryptFinal_ex(ctx, ct + len, &outl) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN,
	    tag) != 1) {
		log_error("secret: AES-256-GCM encryption failed in OpenSSL");
		goto fail;
	}
	EVP_CIPHER_CTX_free(ctx);
	*outlen = total;
	return out;

fail:
	EVP_CIPHER_CTX_free(ctx);
	secret_wipe(out, total);
	free(out);
	return NULL;
}

char *
secret_open(const struct secret_key *k, const char *ad,
    const unsigned char *sealed, size_t len, size_t *outlen)
{
	if (sealed == NULL || len < OVERHEAD || sealed[0] != VERSION_1)
		return NULL;

	const unsigned char *nonce = sealed + 1;
	const unsigned char *ct = nonce + NONCE_LEN;
	size_t ctlen = len - OVERHEAD;
	/* The ctrl call takes a non-const pointer but only reads the tag. */
	unsigned char tag[TAG_LEN];
	memcpy(tag, ct + ctlen, TAG_LEN);

	char *plain = xmalloc(ctlen + 1);
	unsigned char *p = (unsigned char *)plain;
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int outl, ok;

	ok = ctx != NULL &&
	    EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN,
	    NULL) == 1 &&
	    EVP_DecryptInit_ex(ctx, NULL, NULL, k->key, nonce) == 1 &&
	    cipher_ad(ctx, ad) &&
	    cipher_update(ctx, p, ct, ctlen) &&
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) == 1 &&
	    /* The tag is checked here; before it passes, p is unverified
	     * and must not escape. */
	    EVP_DecryptFinal_ex(ctx, p + ctlen, &outl) == 1;
	EVP_CIPHER_CTX_free(ctx);
	if (!ok) {
		secret_wipe(plain, ctlen + 1);
		free(plain);
		return NULL;
	}
	plain[ctlen] = '\0';
	*outlen = ctlen;
	return plain;
}
