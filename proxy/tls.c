/*
 * tls.c -- OpenSSL glue for STARTTLS (see tls.h).
 */
#include "tls.h"
#include "conf.h"
#include "ev.h"
#include "util.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>

#include <pthread.h>

/* The current context. tls_reload() swaps it under the lock; an SSL holds
 * its own reference to the context it was made from, so sessions in a
 * handshake or in TLS keep theirs. */
static SSL_CTX	*tls_ctx;
static pthread_mutex_t tls_mtx = PTHREAD_MUTEX_INITIALIZER;

static void	 tls_log_errors(const char *);
static SSL_CTX	*tls_ctx_build(const struct conf *);
static ssize_t	 tls_result(SSL *, int, unsigned *);

static void
tls_log_errors(const char *what)
{
	unsigned long e;
	char buf[256];

	while ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		log_err("tls: %s: %s", what, buf);
	}
}

/* A server context from proxy.tls_cert/tls_key, or NULL (logged). */
static SSL_CTX *
tls_ctx_build(const struct conf *c)
{
	SSL_CTX *tls_ctx;

	if ((tls_ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		tls_log_errors("SSL_CTX_new");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(tls_ctx, TLS1_2_VERSION);
	/* No client-initiated renegotiation: a write would then wait for a
	 * read, which our simple want-read/want-write handling does not do. */
	SSL_CTX_set_options(tls_ctx, SSL_OP_NO_RENEGOTIATION);
	/* Idle TLS sessions keep no record buffers: the memory target. */
	SSL_CTX_set_mode(tls_ctx, SSL_MODE_RELEASE_BUFFERS |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_ENABLE_PARTIAL_WRITE);
	if (SSL_CTX_use_certificate_chain_file(tls_ctx, c->tls_cert) != 1) {
		tls_log_errors(c->tls_cert);
		log_err("tls: cannot load proxy.tls_cert %s", c->tls_cert);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(tls_ctx, c->tls_key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(tls_ctx) != 1) {
		tls_log_errors(c->tls_key);
		log_err("tls: cannot load proxy.tls_key %s (or it does not match the certificate)",
		    c->tls_key);
		goto fail;
	}
	return tls_ctx;
fail:
	SSL_CTX_free(tls_ctx);
	return NULL;
}

int
tls_init(const struct conf *c)
{
	if (c->tls_cert[0] == '\0')
		return 0;
	return (tls_ctx = tls_ctx_build(c)) == NULL ? -1 : 0;
}

int
tls_reload(const struct conf *c)
{
	SSL_CTX *n = NULL, *old;

	/* Renewed files under the same names are the usual case (certbot):
	 * always read them again. */
	if (c->tls_cert[0] != '\0' && (n = tls_ctx_build(c)) == NULL) {
		log_err("reload: keeping the running TLS certificate");
		return -1;
	}
	pthread_mutex_lock(&tls_mtx);
	old = tls_ctx;
	tls_ctx = n;
	pthread_mutex_unlock(&tls_mtx);
	SSL_CTX_free(old);
	return 0;
}

int
tls_enabled(void)
{
	int on;

	pthread_mutex_lock(&tls_mtx);
	on = tls_ctx != NULL;
	pthread_mutex_unlock(&tls_mtx);
	return on;
}

void
tls_shutdown(void)
{
	SSL_CTX_free(tls_ctx);
	tls_ctx = NULL;
}

SSL *
tls_new(int fd)
{
	SSL *ssl = NULL;
	int off;

	pthread_mutex_lock(&tls_mtx);
	if ((off = tls_ctx == NULL) == 0)
		ssl = SSL_new(tls_ctx);
	pthread_mutex_unlock(&tls_mtx);
	if (off)
		return NULL;	/* a reload took the certificate away */
	if (ssl == NULL || SSL_set_fd(ssl, fd) != 1)
		fatalx("tls: SSL_new failed");
	SSL_set_accept_state(ssl);
	return ssl;
}

void
tls_free(SSL *ssl)
{
	SSL_free(ssl);
}

/* Map an OpenSSL return to our convention. */
static ssize_t
tls_result(SSL *ssl, int rc, unsigned *want)
{
	if (rc > 0)
		return rc;
	switch (SSL_get_error(ssl, rc)) {
	case SSL_ERROR_WANT_READ:
		*want = EV_READ;
		return 0;
	case SSL_ERROR_WANT_WRITE:
		*want = EV_WRITE;
		return 0;
	default:
		ERR_clear_error();
		return -1;
	}
}

int
tls_handshake(SSL *ssl, unsigned *want)
{
	int rc = SSL_do_handshake(ssl);

	if (rc == 1)
		return 1;
	return tls_result(ssl, rc, want) == 0 ? 0 : -1;
}

ssize_t
tls_read(SSL *ssl, void *buf, size_t n, unsigned *want)
{
	return tls_result(ssl, SSL_read(ssl, buf, (int)n), want);
}

ssize_t
tls_write(SSL *ssl, const void *buf, size_t n, unsigned *want)
{
	return tls_result(ssl, SSL_write(ssl, buf, (int)n), want);
}

int tls_pending(SSL *ssl) { return SSL_pending(ssl); }

void
tls_describe(SSL *ssl, char *buf, size_t sz)
{
	snprintf(buf, sz, "%s %s", SSL_get_version(ssl), SSL_get_cipher_name(ssl));
}
