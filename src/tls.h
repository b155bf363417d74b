/*
 * The TLS client setup every protocol shares (IRC, IMAP, SMTP): one
 * place decides what a verified connection is.
 *
 *   trust:     the system's store plus the operator's ca_file (PEM);
 *   versions:  TLS 1.2 and 1.3 (nothing older);
 *   identity:  a host name is checked against the certificate's DNS
 *              names, an IP literal against its IP addresses (never
 *              against a DNS name, and no SNI for it: RFC 6066);
 *   pins:      a SHA-256 fingerprint of the certificate, where the
 *              operator configured one, checked after the handshake.
 *
 * OpenSSL users get a context (cached per ca_file, shared for the life
 * of the process: loading the system store per connection would cost
 * thousands of file reads) and prepare each SSL with the host.  libcurl
 * (SMTP) is given the same decisions as options: tls_curl_policy().
 * Contexts are made and used on the loop thread or on workers; the
 * cache has a lock.
 */
#ifndef CAUSEWAY_TLS_H
#define CAUSEWAY_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

/* The client context for ca_file (NULL or "": the system store only);
 * borrowed, lives as long as the process.  NULL with err on failure
 * (an unreadable ca_file). */
SSL_CTX *tls_client_ctx(const char *ca_file, char *err, size_t errlen);
/* 1 when host is an IPv4 or IPv6 literal. */
int tls_host_is_ip(const char *host);
/* Readies ssl for host: SNI for a name, and (verify) the peer checked
 * against the trust store and host (name or address).  Without verify
 * the caller checks a pin after the handshake.  -1 with err. */
int tls_client_prepare(SSL *ssl, const char *host, int verify, char *err,
    size_t errlen);
/* After a failed or finished handshake: "" when the chain and identity
 * verified, else why not (static text). */
const char *tls_verify_error(SSL *ssl);

/* The SHA-256 fingerprint of a certificate; -1 without one. */
int tls_fingerprint(X509 *cert, unsigned char md[32]);
/* "AB:CD:..." (len >= 96). */
void tls_fingerprint_format(const unsigned char *md, char *out, size_t len);
/* "AB:CD:..." or "abcd...": 32 bytes, or -1. */
int tls_fingerprint_parse(const char *s, unsigned char out[32]);

/* The same decisions for libcurl: the CA file and directory to give it
 * (either may be NULL: curl's default) and the lowest version as a
 * CURL_SSLVERSION value's TLS minor (2: TLS 1.2). */
struct tls_curl_policy {
	const char *cainfo, *capath;
	int min_tls_minor;
};
void tls_curl_policy(const char *ca_file, struct tls_curl_policy *p);

#endif
