/*
 * tls.h -- STARTTLS for the client leg (RFC 3207) over OpenSSL.
 *
 * tls_init() builds the server context from proxy.tls_* (certificate and
 * key; protocols, ciphers, suites and groups; session ticket rotation; an
 * OCSP response to staple) at start, tls_reload() again at SIGHUP; sessions
 * then wrap their socket with tls_new() after the 220 reply to STARTTLS. I/O calls follow the I/O helper convention: >0
 * bytes done, 0 would block (*want says on which event), -1 error or EOF.
 * Ownership: the session owns its SSL (tls_free). Thread: any; the context
 * is shared read-only.
 */
#ifndef POSTERN_TLS_H
#define POSTERN_TLS_H

#include <stddef.h>
#include <sys/types.h>

struct conf;
typedef struct ssl_st SSL;

/* 0, or -1 with the reason logged. With no certificate configured it
 * succeeds and tls_enabled() says 0. */
int		 tls_init(const struct conf *);
/* configtest: would tls_init() succeed? 0, or -1 with the reasons logged. */
int		 tls_check(const struct conf *);
/* SIGHUP: read the certificate, key and OCSP response again (renewed files keep their
 * names) and use them for new handshakes; on failure keep the old ones.
 * 0 or -1 (logged). */
int		 tls_reload(const struct conf *);
int		 tls_enabled(void);
void		 tls_shutdown(void);
SSL		*tls_new(int fd);	/* NULL: no certificate (any more) */
void		 tls_free(SSL *);
/* 1 done, 0 in progress (*want = EV_READ|EV_WRITE), -1 failed. */
int		 tls_handshake(SSL *, unsigned *want);
ssize_t		 tls_read(SSL *, void *, size_t, unsigned *want);
ssize_t		 tls_write(SSL *, const void *, size_t, unsigned *want);
/* Bytes already decrypted and waiting inside OpenSSL. */
int		 tls_pending(SSL *);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384" for logs and policy. */
void		 tls_describe(SSL *, char *, size_t);

#endif
