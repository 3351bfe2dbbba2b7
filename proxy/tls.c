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

static SSL_CTX	*tls_ctx;

static void	 tls_log_errors(const char *);
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

int
tls_init(const struct conf *c)
{
	if (c->tls_cert[0] == '\0')
		return 0;
	if ((tls_ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		tls_log_errors("SSL_CTX_new");
		return -1;
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
	return 0;
fail:
	SSL_CTX_free(tls_ctx);
	tls_ctx = NULL;
	return -1;
}

int tls_enabled(void) { return tls_ctx != NULL; }

void
tls_shutdown(void)
{
	SSL_CTX_free(tls_ctx);
	tls_ctx = NULL;
}

SSL *
tls_new(int fd)
{
	SSL *ssl = SSL_new(tls_ctx);

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
