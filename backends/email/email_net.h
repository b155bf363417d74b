/*
 * One blocking TCP connection for the worker pool, plain or TLS, on
 * poll() (no select(), so descriptors above 1024 are fine) with a
 * timeout on every wait, a deadline on the whole operation (a server
 * that sends one byte now and then never hits the per-wait timeout, and
 * would otherwise hold a worker for as long as it likes), and a budget
 * on the bytes read so a server that sends an endless line cannot make
 * us hold unbounded memory.
 *
 * TLS is OpenSSL set up by tls.c (the trust store plus the operator's
 * ca_file, the host name or IP address checked, TLS 1.2 and 1.3)
 * before the handshake counts as done: a wrong certificate fails here,
 * before the caller writes a password.
 *
 * Used from one thread at a time (the worker running the session's
 * job); nothing here touches the loop.
 */
#ifndef CAUSEWAY_EMAIL_NET_H
#define CAUSEWAY_EMAIL_NET_H

#include <stddef.h>
#include <sys/types.h>

#include <openssl/ssl.h>

struct email_net;

/* Connects within timeout seconds (every address tried counts against
 * it), and starts a deadline of timeout seconds for everything that
 * follows until email_net_set_deadline() starts another; NULL with err
 * filled.  Unless trusted (a host of the operator's), host passes the
 * destination policy first and the connection goes to the address
 * checked. */
struct email_net *email_net_connect(const char *host, int port, int trusted,
    int timeout, char *err, size_t errlen);
/* TLS on the connection (implicit TLS, or after STARTTLS) with a
 * context from tls_client_ctx(): handshake, chain and host verified.
 * -1 with err filled. */
int email_net_start_tls(struct email_net *n, SSL_CTX *ctx, const char *host,
    char *err, size_t errlen);
/* 0 at EOF, -1 on error, timeout or an exhausted budget (err says
 * which). */
ssize_t email_net_read(struct email_net *n, void *buf, size_t len);
/* Writes everything or returns -1. */
ssize_t email_net_write(struct email_net *n, const void *buf, size_t len);
/* One line (up to LF, CR LF removed), at most max - 1 bytes; a longer
 * line is an error.  -1 on error. */
int email_net_read_line(struct email_net *n, char *buf, size_t max);
/* Bytes already read and decrypted but not handed out. */
int email_net_pending(struct email_net *n);
/* 1 when a read would not wait: bytes pending, or the socket readable
 * now. */
int email_net_readable_now(struct email_net *n);
int email_net_fd(const struct email_net *n);
/* Reads beyond budget bytes fail (0: no budget); counting restarts. */
void email_net_set_budget(struct email_net *n, size_t budget);
void email_net_set_timeout(struct email_net *n, int seconds);
/* From now on, every read, write and handshake step fails once seconds
 * have passed in all, however the bytes trickle in (0: no deadline). */
void email_net_set_deadline(struct email_net *n, int seconds);
/* From now on every read and write fails at once (a connection given up
 * on: whatever a library still wants to say on it is not waited for). */
void email_net_abandon(struct email_net *n);
/* Bytes read since the budget was last set. */
size_t email_net_used(const struct email_net *n);
/* 1 when the last failure was a wait that timed out. */
int email_net_timed_out(const struct email_net *n);
/* What went wrong last. */
const char *email_net_error(const struct email_net *n);
void email_net_close(struct email_net *n);

#endif
