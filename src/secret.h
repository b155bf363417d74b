/*
 * Secrets at rest: legacy passwords are stored encrypted with
 * AES-256-GCM under a key that lives in its own file (key_file), so a
 * copy of the database alone reveals no password.
 *
 * The key file holds exactly 32 random bytes, mode 0600, owned by the
 * user causeway runs as.  secret_key_load() creates it on first start
 * (O_EXCL, 0600) and refuses one that is readable or writable by group
 * or others, has another size, or is not a regular file.  The key never
 * reaches a log line.
 *
 * A sealed value is: version byte 0x01 | 12-byte random nonce | cipher
 * text | 16-byte tag, with the associated data (the component and the
 * user's JID) bound into the tag, so a value copied to another user's
 * row does not open.
 */
#ifndef CAUSEWAY_SECRET_H
#define CAUSEWAY_SECRET_H

#include <stddef.h>

struct secret_key;

/*
 * NULL (with the reason logged) when the file is unusable.  A missing
 * file is created; a missing directory is not (refused with the mkdir to
 * run).  A refused file is never modified.  A file owned by another user
 * is loaded with a warning.
 */
struct secret_key *secret_key_load(const char *path);
/* Wipes the key from memory and frees it. */
void secret_key_free(struct secret_key *k);

/*
 * Returns a new buffer of *outlen bytes (caller frees): len + 29.  NULL
 * (logged) only if OpenSSL or its random generator fails, never for
 * lack of memory (that exits).  ad is a C string; NULL counts as "".
 */
unsigned char *secret_seal(const struct secret_key *k, const char *ad,
    const unsigned char *plain, size_t len, size_t *outlen);
/*
 * Returns the plain text NUL-terminated (caller frees, and should wipe
 * it with secret_wipe), *outlen without the NUL; NULL when the value was
 * tampered with, sealed under another key or another ad, too short or
 * of an unknown version (nothing is logged: the caller knows the user).
 */
char *secret_open(const struct secret_key *k, const char *ad,
    const unsigned char *sealed, size_t len, size_t *outlen);
/* Zero memory in a way the compiler cannot drop. */
void secret_wipe(void *p, size_t len);

#endif
