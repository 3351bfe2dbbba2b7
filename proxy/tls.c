/*
 * tls.c -- OpenSSL glue for STARTTLS (see tls.h).
 *
 * The context follows proxy.tls_*: protocols, TLS 1.2 ciphers, TLS 1.3
 * suites and groups (defaults: the "intermediate" server profile), the
 * server's cipher order, no renegotiation, session tickets under keys we
 * rotate ourselves, and a stapled OCSP response when the admin gives one.
 */
#include "proxy/tls.h"
#include "lib/conf.h"
#include "lib/util.h"
#include "proxy/ev.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <pthread.h>

/* The current context. tls_reload() swaps it under the lock; an SSL holds
 * its own reference to the context it was made from, so sessions in a
 * handshake or in TLS keep theirs. */
static SSL_CTX	*tls_ctx;
static pthread_mutex_t tls_mtx = PTHREAD_MUTEX_INITIALIZER;

/*
 * Session ticket keys (RFC 5077 format: AES-256-CBC inside, HMAC-SHA256
 * over it). They belong to the process, not to a context, so a reload does
 * not void the tickets out there. Wall-clock time is cut into epochs of
 * proxy.tls_ticket_rotation seconds, each with its own key; the key of the
 * epoch before still opens tickets (and the client gets a fresh one), so a
 * ticket opens for at least one rotation and at most two. Keys never leave
 * memory: a restart voids every ticket, which only costs a full handshake.
 */
struct tls_tkey {
	unsigned char	 name[16], aes[32], hmac[32];
	long long	 epoch;
	int		 set;
};

static struct {
	pthread_mutex_t	 mu;
	struct tls_tkey	 cur, prev;
	long long	 rotation;	/* seconds; 0: tickets off */
} tls_tk = { .mu = PTHREAD_MUTEX_INITIALIZER };

/* A DER OCSP response to staple, owned by its context (ex_data). */
struct tls_ocsp {
	unsigned char	*der;
	long		 len;
	time_t		 next_update;	/* stop stapling after this */
};
static int	 tls_ocsp_idx = -1;

static void	 tls_log_errors(const char *);
static SSL_CTX	*tls_ctx_build(const struct conf *);
static int	 tls_ctx_params(SSL_CTX *, const struct conf *);
static int	 tls_ctx_load_keys(SSL_CTX *, const struct conf *);
static void	 tls_tkey_new(struct tls_tkey *, long long);
static void	 tls_ticket_rotate(time_t);
static int	 tls_ticket_cb(SSL *, unsigned char *, unsigned char *,
		    EVP_CIPHER_CTX *, EVP_MAC_CTX *, int);
static int	 tls_ticket_mac(EVP_MAC_CTX *, const struct tls_tkey *);
static int	 tls_ocsp_load(SSL_CTX *, const char *);
static int	 tls_ocsp_usable(SSL_CTX *, OCSP_RESPONSE *, time_t *);
static int	 tls_ocsp_cb(SSL *, void *);
static void	 tls_ocsp_free(void *, void *, CRYPTO_EX_DATA *, int, long, void *);
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

/* Protocols, ciphers, groups and options from proxy.tls_*; 0 or -1 (logged). */
static int
tls_ctx_params(SSL_CTX *ctx, const struct conf *c)
{
	int min, max;

	if (conf_tls_range(c->tls_protocols, &min, &max) == -1) {
		log_err("tls: proxy.tls_protocols '%s' is not a range of TLSv1, TLSv1.1, "
		    "TLSv1.2, TLSv1.3", c->tls_protocols);
		return -1;
	}
	if (SSL_CTX_set_min_proto_version(ctx, min) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, max) != 1) {
		tls_log_errors("proxy.tls_protocols");
		return -1;
	}
	if (SSL_CTX_set_cipher_list(ctx, c->tls_ciphers) != 1) {
		tls_log_errors("proxy.tls_ciphers");
		log_err("tls: proxy.tls_ciphers '%s' names no usable cipher", c->tls_ciphers);
		return -1;
	}
	if (SSL_CTX_set_ciphersuites(ctx, c->tls_ciphersuites) != 1) {
		tls_log_errors("proxy.tls_ciphersuites");
		log_err("tls: proxy.tls_ciphersuites '%s' is not a TLS 1.3 suite list",
		    c->tls_ciphersuites);
		return -1;
	}
	if (SSL_CTX_set1_groups_list(ctx, c->tls_groups) != 1) {
		tls_log_errors("proxy.tls_groups");
		log_err("tls: proxy.tls_groups '%s' is not a group list", c->tls_groups);
		return -1;
	}
	/* DHE runs only if the admin lists DHE ciphers: then with the RFC 7919
	 * group that matches the key's strength. */
	SSL_CTX_set_dh_auto(ctx, 1);
	/* No client-initiated renegotiation: a write would then wait for a
	 * read, which our simple want-read/want-write handling does not do,
	 * and each one costs us a handshake (a DoS lever). Our order of
	 * ciphers, not the client's; ChaCha20 first for clients that ask it
	 * first (no AES hardware). */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
	    SSL_OP_PRIORITIZE_CHACHA | SSL_OP_NO_COMPRESSION);
	return 0;
}

/* Certificate, key, tickets and OCSP; 0 or -1 (logged). */
static int
tls_ctx_load_keys(SSL_CTX *ctx, const struct conf *c)
{
	if (SSL_CTX_use_certificate_chain_file(ctx, c->tls_cert) != 1) {
		tls_log_errors(c->tls_cert);
		log_err("tls: cannot load proxy.tls_cert %s", c->tls_cert);
		return -1;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, c->tls_key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		tls_log_errors(c->tls_key);
		log_err("tls: cannot load proxy.tls_key %s (or it does not match the certificate)",
		    c->tls_key);
		return -1;
	}
	/* Resumption by ticket only: no server-side cache to fill or bound. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"postern", 7);
	pthread_mutex_lock(&tls_tk.mu);
	tls_tk.rotation = c->tls_ticket_rotation;
	pthread_mutex_unlock(&tls_tk.mu);
	if (c->tls_ticket_rotation == 0) {
		SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
		SSL_CTX_set_num_tickets(ctx, 0);
	} else {
		/* A session is worth no more than the key that sealed it. */
		SSL_CTX_set_timeout(ctx, (long)c->tls_ticket_rotation);
		SSL_CTX_set_num_tickets(ctx, 1);
		SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, tls_ticket_cb);
	}
	if (*c->tls_ocsp_file != '\0' && tls_ocsp_load(ctx, c->tls_ocsp_file) == -1)
		return -1;
	return 0;
}

/* A server context from proxy.tls_*, or NULL (logged). */
static SSL_CTX *
tls_ctx_build(const struct conf *c)
{
	SSL_CTX *ctx;

	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		tls_log_errors("SSL_CTX_new");
		return NULL;
	}
	/* Idle TLS sessions keep no record buffers: the memory target. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_ENABLE_PARTIAL_WRITE);
	if (tls_ctx_params(ctx, c) == -1 || tls_ctx_load_keys(ctx, c) == -1) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/* ---- session tickets ------------------------------------------------- */

static void
tls_tkey_new(struct tls_tkey *k, long long epoch)
{
	if (RAND_bytes(k->name, sizeof(k->name)) != 1 ||
	    RAND_bytes(k->aes, sizeof(k->aes)) != 1 ||
	    RAND_bytes(k->hmac, sizeof(k->hmac)) != 1)
		fatalx("tls: no random bytes for a ticket key");
	k->epoch = epoch;
	k->set = 1;
}

/* Under tls_tk.mu: the keys for the epoch of now. */
static void
tls_ticket_rotate(time_t now)
{
	long long e = (long long)now / tls_tk.rotation;

	if (tls_tk.cur.set && tls_tk.cur.epoch == e)
		return;
	OPENSSL_cleanse(&tls_tk.prev, sizeof(tls_tk.prev));
	if (tls_tk.cur.set && tls_tk.cur.epoch == e - 1)
		tls_tk.prev = tls_tk.cur;
	OPENSSL_cleanse(&tls_tk.cur, sizeof(tls_tk.cur));
	tls_tkey_new(&tls_tk.cur, e);
}

static int
tls_ticket_mac(EVP_MAC_CTX *hctx, const struct tls_tkey *k)
{
	OSSL_PARAM params[3];

	params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY,
	    (void *)k->hmac, sizeof(k->hmac));
	params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0);
	params[2] = OSSL_PARAM_construct_end();
	return EVP_MAC_CTX_set_params(hctx, params) == 1 ? 0 : -1;
}

/* OpenSSL's ticket callback: enc=1 seal a new ticket with the current key;
 * enc=0 open one by key name: 1 with the current key, 2 (open, and issue a
 * new one) with the previous, 0 (full handshake) with a key gone. */
static int
tls_ticket_cb(SSL *ssl, unsigned char *name, unsigned char *iv,
    EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
	struct tls_tkey k;
	int rc = 0;

	(void)ssl;
	pthread_mutex_lock(&tls_tk.mu);
	if (tls_tk.rotation > 0)
		tls_ticket_rotate(time_wall());
	if (tls_tk.rotation == 0) {
		/* tickets were turned off by a reload: none sealed nor opened */
	} else if (enc) {
		k = tls_tk.cur;
		rc = 1;
	} else if (tls_tk.cur.set && memcmp(name, tls_tk.cur.name, 16) == 0) {
		k = tls_tk.cur;
		rc = 1;
	} else if (tls_tk.prev.set && memcmp(name, tls_tk.prev.name, 16) == 0) {
		k = tls_tk.prev;
		rc = 2;
	}
	pthread_mutex_unlock(&tls_tk.mu);
	if (rc == 0)
		return 0;
	if (enc) {
		memcpy(name, k.name, 16);
		if (RAND_bytes(iv, EVP_MAX_IV_LENGTH) != 1)
			rc = -1;
	}
	if (rc > 0 && ((enc ? EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv) :
	    EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv)) != 1 ||
	    tls_ticket_mac(hctx, &k) == -1))
		rc = -1;
	OPENSSL_cleanse(&k, sizeof(k));
	return rc;
}

/* ---- OCSP stapling --------------------------------------------------- */

static void
tls_ocsp_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	struct tls_ocsp *o = ptr;

	(void)parent; (void)ad; (void)idx; (void)argl; (void)argp;
	if (o == NULL)
		return;
	OPENSSL_free(o->der);
	free(o);
}

/*
 * May we staple r: successful, about this context's certificate (whose
 * issuer must be in the chain file), "good", and current? 1 with
 * *next_update set, or 0 with the reason logged. The signature is the
 * client's to check: it holds the trust anchors, we do not.
 */
static int
tls_ocsp_usable(SSL_CTX *ctx, OCSP_RESPONSE *r, time_t *next_update)
{
	OCSP_BASICRESP *b = NULL;
	OCSP_CERTID *id = NULL;
	X509 *leaf = SSL_CTX_get0_certificate(ctx), *issuer = NULL;
	STACK_OF(X509) *chain = NULL;
	ASN1_GENERALIZEDTIME *thisupd, *nextupd;
	const char *why = NULL;
	int status, reason;
	struct tm tm;

	SSL_CTX_get0_chain_certs(ctx, &chain);
	for (int i = 0; chain != NULL && i < sk_X509_num(chain); i++)
		if (X509_check_issued(sk_X509_value(chain, i), leaf) == X509_V_OK)
			issuer = sk_X509_value(chain, i);
	if (OCSP_response_status(r) != OCSP_RESPONSE_STATUS_SUCCESSFUL ||
	    (b = OCSP_response_get1_basic(r)) == NULL)
		why = "not a successful OCSP response";
	else if (issuer == NULL)
		why = "the issuer of proxy.tls_cert is not in its chain file";
	else if ((id = OCSP_cert_to_id(NULL, leaf, issuer)) == NULL ||
	    OCSP_resp_find_status(b, id, &status, &reason, NULL, &thisupd, &nextupd) != 1)
		why = "the response is not about proxy.tls_cert";
	else if (status != V_OCSP_CERTSTATUS_GOOD)
		why = "the certificate's status is not good";
	else if (nextupd == NULL || OCSP_check_validity(thisupd, nextupd, 300, -1) != 1 ||
	    ASN1_TIME_to_tm(nextupd, &tm) != 1)
		why = "the response is out of date (or has no next update)";
	else
		*next_update = timegm(&tm);
	ERR_clear_error();
	OCSP_CERTID_free(id);
	OCSP_BASICRESP_free(b);
	if (why != NULL)
		log_warn("tls: proxy.tls_ocsp_file: %s; not stapling it", why);
	return why == NULL;
}

/* Read proxy.tls_ocsp_file for ctx. -1 (logged) only when the file is not
 * a DER OCSP response: a stale or foreign one is a warning and no staple,
 * so that a certificate renewed before its response still takes effect. */
static int
tls_ocsp_load(SSL_CTX *ctx, const char *path)
{
	BIO *bio = BIO_new_file(path, "rb");
	OCSP_RESPONSE *r = bio ? d2i_OCSP_RESPONSE_bio(bio, NULL) : NULL;
	struct tls_ocsp *o;
	unsigned char *der = NULL;
	time_t next;
	int len;

	BIO_free(bio);
	if (r == NULL) {
		tls_log_errors(path);
		log_err("tls: cannot read proxy.tls_ocsp_file %s as a DER OCSP response", path);
		return -1;
	}
	if (!tls_ocsp_usable(ctx, r, &next) || (len = i2d_OCSP_RESPONSE(r, &der)) <= 0) {
		OCSP_RESPONSE_free(r);
		return 0;
	}
	OCSP_RESPONSE_free(r);
	if (tls_ocsp_idx == -1)
		tls_ocsp_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, tls_ocsp_free);
	o = xcalloc(1, sizeof(*o));
	o->der = der;
	o->len = len;
	o->next_update = next;
	SSL_CTX_set_ex_data(ctx, tls_ocsp_idx, o);
	SSL_CTX_set_tlsext_status_cb(ctx, tls_ocsp_cb);
	SSL_CTX_set_tlsext_status_arg(ctx, o);
	log_info("tls: stapling the OCSP response from %s", path);
	return 0;
}

/* A client asked for the certificate status (status_request). */
static int
tls_ocsp_cb(SSL *ssl, void *arg)
{
	const struct tls_ocsp *o = arg;
	unsigned char *copy;

	if (time_wall() > o->next_update)
		return SSL_TLSEXT_ERR_NOACK;	/* stale: better none */
	if ((copy = OPENSSL_memdup(o->der, (size_t)o->len)) == NULL)
		return SSL_TLSEXT_ERR_NOACK;
	SSL_set_tlsext_status_ocsp_resp(ssl, copy, o->len);	/* takes copy */
	return SSL_TLSEXT_ERR_OK;
}

/* ---- the context ----------------------------------------------------- */

int
tls_init(const struct conf *c)
{
	if (c->tls_cert[0] == '\0')
		return 0;
	return (tls_ctx = tls_ctx_build(c)) == NULL ? -1 : 0;
}

int
tls_check(const struct conf *c)
{
	SSL_CTX *ctx;

	if (c->tls_cert[0] == '\0')
		return 0;
	if ((ctx = tls_ctx_build(c)) == NULL)
		return -1;
	SSL_CTX_free(ctx);
	return 0;
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
