/*
 * The shared TLS client setup (see tls.h).
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "tls.h"
#include "xmalloc.h"

struct ctx_cache {
	struct ctx_cache *next;
	char *ca_file;                /* "": system store only */
	SSL_CTX *ctx;
};
static struct ctx_cache *ctx_cache;
static pthread_mutex_t ctx_lock = PTHREAD_MUTEX_INITIALIZER;

SSL_CTX *
tls_client_ctx(const char *ca_file, char *err, size_t errlen)
{
	if (ca_file == NULL)
		ca_file = "";
	pthread_mutex_lock(&ctx_lock);
	struct ctx_cache *e;
	for (e = ctx_cache; e != NULL; e = e->next)
		if (strcmp(e->ca_file, ca_file) == 0)
			break;
	SSL_CTX *ctx = e != NULL ? e->ctx : NULL;
	if (ctx != NULL)
		goto out;
	ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL) {
		snprintf(err, errlen, "cannot create a TLS context");
		ERR_clear_error();
		goto out;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (SSL_CTX_set_default_verify_paths(ctx) != 1)
		log_warn("tls: cannot load the system's trusted certificates");
	ERR_clear_error();
	if (*ca_file != '\0' &&
	    SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
		snprintf(err, errlen, "cannot read ca_file %s", ca_file);
		ERR_clear_error();
		SSL_CTX_free(ctx);
		ctx = NULL;
		goto out;
	}
	e = xcalloc(1, sizeof(*e));
	e->ca_file = xstrdup(ca_file);
	e->ctx = ctx;
	e->next = ctx_cache;
	ctx_cache = e;
out:
	pthread_mutex_unlock(&ctx_lock);
	return ctx;
}

int
tls_host_is_ip(const char *host)
{
	unsigned char addr[16];
	return inet_pton(AF_INET, host, addr) == 1 ||
	    inet_pton(AF_INET6, host, addr) == 1;
}

int
tls_client_prepare(SSL *ssl, const char *host, int verify, char *err,
    size_t errlen)
{
	int is_ip = tls_host_is_ip(host);
	/* SNI is for names only (RFC 6066 forbids addresses). */
	if (!is_ip && SSL_set_tlsext_host_name(ssl, host) != 1) {
		snprintf(err, errlen, "cannot set the TLS server name");
		ERR_clear_error();
		return -1;
	}
	if (!verify) {
		SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
		return 0;
	}
	/* An address is checked against the certificate's IP addresses:
	 * a host-name check on "192.0.2.1" fails on every valid
	 * certificate issued for that address. */
	int r = is_ip ?
	    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) :
	    SSL_set1_host(ssl, host);
	if (r != 1) {
		snprintf(err, errlen, "cannot set the host to verify");
		ERR_clear_error();
		return -1;
	}
	SSL_set_verify(ssl, SSL_VERIFY_PEER, SSL_get_verify_callback(ssl));
	return 0;
}

const char *
tls_verify_error(SSL *ssl)
{
	long v = SSL_get_verify_result(ssl);
	return v == X509_V_OK ? "" : X509_verify_cert_error_string(v);
}

int
tls_fingerprint(X509 *cert, unsigned char md[32])
{
	unsigned int n = 0;
	return cert != NULL && X509_digest(cert, EVP_sha256(), md, &n) == 1 &&
	    n == 32 ? 0 : -1;
}

void
tls_fingerprint_format(const unsigned char *md, char *out, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (size_t i = 0; i < 32 && o + 3 <= len; i++) {
		out[o++] = hex[md[i] >> 4];
		out[o++] = hex[md[i] & 15];
		out[o++] = i + 1 < 32 ? ':' : '\0';
	}
	if (o == 0 && len > 0)
		out[0] = '\0';
}

static int
hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch = tolower(ch);
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

int
tls_fingerprint_parse(const char *s, unsigned char out[32])
{
	size_t n = 0;
	while (*s != '\0') {
		if (*s == ':') {
			s++;
			continue;
		}
		int hi = hexval((unsigned char)s[0]);
		int lo = hi < 0 ? -1 : hexval((unsigned char)s[1]);
		if (lo < 0 || n == 32)
			return -1;
		out[n++] = (unsigned char)(hi << 4 | lo);
		s += 2;
	}
	return n == 32 ? 0 : -1;
}

void
tls_curl_policy(const char *ca_file, struct tls_curl_policy *p)
{
	/* curl's CA file replaces its default bundle: with a ca_file of
	 * the operator's, the system store comes in as the directory
	 * OpenSSL's own default paths use. */
	p->cainfo = ca_file != NULL && *ca_file != '\0' ? ca_file : NULL;
	p->capath = p->cainfo != NULL ? X509_get_default_cert_dir() : NULL;
	p->min_tls_minor = 2;
}
