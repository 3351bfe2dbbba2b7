/*
 * dkim.c -- the "dkim" check; see dkim.h for what it reports.
 *
 * Flow at POL_DATA: dkim_verify() a fresh handle, feed the header section
 * field by field (dkim_header(), dkim_eoh()), dkim_eom() (which, without DKIM_LIBFLAGS_VERIFYONE,
 * processes every signature), then read each signature's flags and error
 * code and map them to RFC 8601 results.
 *
 * The body: the library never sees it. Its body canonicalization costs a
 * function call per octet (a third of the policy's CPU on 10 KB of mail),
 * so dkim_body_ok() hashes the body per signature with dkimbody.c and
 * compares bh= itself. Given no body, the library still checks everything
 * else -- tags, key, t=/x=, the header hash and signature -- and, for a
 * signature whose header signature verified, reports the body hash as
 * mismatched (DKIM_SIGERROR_BADSIG): that one verdict is replaced by ours.
 * A signature with l= it sets aside unverified (l= exceeds the empty body
 * it saw); then the message is verified again the library's way, whole.
 *
 * Key lookups: dkim_key_lookup() is the library's key-lookup hook. It asks
 * dns_query() for the TXT at SELECTOR._domainkey.DOMAIN and hands the text
 * back. NXDOMAIN / no TXT is DKIM_CBSTAT_NOTFOUND, which the library turns
 * into DKIM_SIGERROR_NOKEY: a permanent error (RFC 6376 6.1.2), never a
 * deferral. A temporary DNS failure is remembered in our per-message
 * context, because the library leaves such a signature unprocessed with no
 * error code of its own.
 *
 * Key size: RFC 8301's 1024-bit floor is applied here, to RSA keys only
 * (an Ed25519 key is 256 bits by design, RFC 8463), instead of through the
 * library's DKIM_OPTS_MINKEYBITS, so the rule is visible in one place and
 * the result names the size. rsa-sha1 is refused as RFC 8301 3.1 asks.
 *
 * Decoded keys: libopendkim turns the key record's DER into an EVP_PKEY
 * with d2i_PUBKEY_bio() for every signature it verifies, and in OpenSSL 3
 * that runs the generic decoder framework: ~100-200 us and global rwlock
 * traffic per message, the largest single cost of DKIM. The library has
 * no way to take a decoded key from us (its key-lookup hook returns
 * text), so this file defines d2i_PUBKEY_bio() itself: the dynamic linker
 * binds libopendkim's call to the executable's definition, which
 * memoizes by the DER bytes (dkim_keys, DKIM_KEYS entries, least recently
 * used out). Same bytes, same key: nothing can go stale (a rotated key is
 * other bytes, and TTLs stay with the DNS cache). Any other BIO or a
 * reuse argument goes to OpenSSL's own function (dlsym RTLD_NEXT).
 * Sharing is safe: an EVP_PKEY is reference-counted and, in OpenSSL 3,
 * usable by several threads at once for verification; its legacy RSA
 * (EVP_PKEY_get1_RSA, which the library calls next) is made once, here,
 * under our lock.
 *
 * Thread: any worker thread. Ownership: the DKIM handle lives for one
 * call; a cached key holds one reference, each caller gets its own.
 */
#include "policy/dkim.h"
#include "lib/conf.h"
#include "lib/util.h"
#include "policy/authres.h"
#include "policy/dkimbody.h"
#include "policy/msghdr.h"
#include "policy/policy_int.h"

#include <opendkim/dkim.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <ctype.h>
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* SELECTOR._domainkey.DOMAIN as text: RFC 1035 2.3.4, plus the NUL. */
#define DKIM_NAME_MAX		256

/* Decoded keys kept (a few per sending domain in use); DER bytes per key
 * beyond which we do not cache (an RSA-8192 SubjectPublicKeyInfo is about
 * 1,100 bytes; RFC 6376 3.6.1 puts no bound, the TXT size does). */
#define DKIM_KEYS		64
#define DKIM_KEY_DER_MAX	2048

struct dkim_key {
	unsigned char	*der;
	size_t		 len;		/* bytes of der, the whole BIO */
	long		 used;		/* bytes the decoder consumed */
	EVP_PKEY	*pk;
	uint64_t	 tick;		/* last use, for LRU */
};

static pthread_mutex_t	 dkim_keys_mtx = PTHREAD_MUTEX_INITIALIZER;
static struct dkim_key	 dkim_keys[DKIM_KEYS];
static uint64_t		 dkim_keys_tick;

/* The library's memory for one handle: it makes some sixty allocations
 * per message (header copies, tag sets, canonicalization buffers; ~24 KB
 * for one signature) and frees each again in dkim_free(). They are carved
 * from a per-thread block instead and dropped together; what does not fit
 * goes to malloc as before. A thread has one handle at a time (dkim_run).
 * The block is allocated the first time a thread verifies (most policy
 * workers never do: stages with cached keys run on the I/O threads) and
 * freed when the thread ends (dkim_arena_key's destructor). */
#define DKIM_ARENA	65536

struct dkim_arena {
	unsigned char	*base;
	size_t		 used;
};

static _Thread_local unsigned char *dkim_arena_mem;
static pthread_key_t	 dkim_arena_key;	/* frees a thread's block */

/* Under AddressSanitizer every allocation of the library stays its own,
 * so that the sanitizer still sees how the library uses each. */
#if defined(__SANITIZE_ADDRESS__)
#define DKIM_ARENA_ON	0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DKIM_ARENA_ON	0
#endif
#endif
#ifndef DKIM_ARENA_ON
#define DKIM_ARENA_ON	1
#endif

/* One verification: what dkim_key_lookup() learnt, by signature. */
struct dkim_ctx {
	struct dkim_arena arena;	/* the handle's memory closure */
	struct pol_session *ps;
	const char	*body;		/* the message body, for dkim_body_ok() */
	size_t		 bodylen;
	int		 body_ours;	/* the library saw the header section only */
	int		 ntemp;
	DKIM_SIGINFO	*temp[DKIM_MAX_SIGS];	/* key lookup failed for now */
	char		 why[192];
};

static pthread_once_t	 dkim_once = PTHREAD_ONCE_INIT;
static DKIM_LIB		*dkim_lib;
/* The body hashes, fetched once: handing OpenSSL 3 EVP_sha256() makes
 * every digest look its implementation up again. */
static EVP_MD		*dkim_md_sha256, *dkim_md_sha1;
static _Atomic int	 dkim_ready;	/* dkim_lib_init ran (on a worker) */
static uint64_t		 dkim_drift;	/* the library's allowed clock drift, s */

static void	 dkim_lib_init(void);
static struct dkim_arena *dkim_arena_start(struct dkim_arena *);
static void	*dkim_arena_alloc(void *, size_t);
static void	 dkim_arena_free(void *, void *);
static EVP_PKEY	*dkim_key_cached(const unsigned char *, size_t, long *used);
static EVP_PKEY	*dkim_key_decode(const unsigned char *, size_t, long *used);
static void	 dkim_bio_skip(BIO *, long);
static DKIM_CBSTAT dkim_key_lookup(DKIM *, DKIM_SIGINFO *, u_char *, size_t);
static DKIM_CBSTAT dkim_prescreen(DKIM *, DKIM_SIGINFO **, int);
static int	 dkim_refuse_query(void *, int, unsigned char *, unsigned char *,
		    size_t, void **);
static int	 dkim_enabled(const struct conf *);
static void	 dkim_run(struct pol_session *, enum pol_stage, const struct pol_msg *);
static enum authres_result dkim_sig_result(struct dkim_ctx *, DKIM_SIGINFO *,
		    char *why, size_t whysz);
static void	 dkim_found_add(struct pol_session *, DKIM_SIGINFO *,
		    enum authres_result);
static int	 dkim_body_ok(const struct dkim_ctx *, DKIM_SIGINFO *);
static DKIM_STAT dkim_feed_fields(struct dkim_ctx *, DKIM *, const struct pol_msg *);
static void	 dkim_sig_props(DKIM_SIGINFO *, char *, size_t);
static void	 dkim_sig_identity(DKIM_SIGINFO *, char *, size_t);
static int	 dkim_sig_expired(DKIM_SIGINFO *);
static void	 dkim_report(struct pol_session *, struct dkim_ctx *,
		    DKIM_SIGINFO **, int);
static int	 dkim_key_name(const char *sel, const char *dom, char *out, size_t outsz);
static int	 dkim_blocks(const struct pol_session *, enum pol_stage,
		    const struct pol_msg *);

const struct pol_check dkim_check = {
	.name = "dkim",
	.stages = 1u << POL_DATA,
	.enabled = dkim_enabled,
	.run = dkim_run,
	.blocks = dkim_blocks,
};

static void
dkim_lib_init(void)
{
	unsigned int bits = 1;
	/* Signatures are processed at dkim_eom(), where a key lookup that
	 * must be retried skips only its own signature; at end of header
	 * (the default) it would abandon all the others too. */
	unsigned int flags = DKIM_LIBFLAGS_DELAYSIGPROC | DKIM_LIBFLAGS_BADSIGHANDLES;

	if (pthread_key_create(&dkim_arena_key, free) != 0)
		fatalx("dkim: pthread_key_create failed");
	dkim_lib = dkim_init(dkim_arena_alloc, dkim_arena_free);
	if (dkim_lib == NULL)
		fatalx("dkim_init failed");
	dkim_md_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	dkim_md_sha1 = EVP_MD_fetch(NULL, "SHA1", NULL);
	if (dkim_md_sha256 == NULL || dkim_md_sha1 == NULL)
		fatalx("dkim: OpenSSL has no SHA-256 or SHA-1");
	(void)dkim_options(dkim_lib, DKIM_OP_SETOPT, DKIM_OPTS_FLAGS, &flags,
	    sizeof(flags));
	(void)dkim_options(dkim_lib, DKIM_OP_SETOPT, DKIM_OPTS_MINKEYBITS,
	    &bits, sizeof(bits));
	(void)dkim_options(dkim_lib, DKIM_OP_GETOPT, DKIM_OPTS_CLOCKDRIFT,
	    &dkim_drift, sizeof(dkim_drift));
	(void)dkim_set_key_lookup(dkim_lib, dkim_key_lookup);
	(void)dkim_set_prescreen(dkim_lib, dkim_prescreen);
	dkim_dns_set_query_start(dkim_lib, dkim_refuse_query);
	atomic_store(&dkim_ready, 1);
}

/* The closure for a new handle: this thread's block, empty again (NULL,
 * the library's plain malloc, under AddressSanitizer). */
static struct dkim_arena *
dkim_arena_start(struct dkim_arena *a)
{
	if (!DKIM_ARENA_ON)
		return NULL;
	if (dkim_arena_mem == NULL) {
		dkim_arena_mem = xmalloc(DKIM_ARENA);	/* malloc aligns it */
		if (pthread_setspecific(dkim_arena_key, dkim_arena_mem) != 0)
			fatalx("dkim: pthread_setspecific failed");
	}
	a->base = dkim_arena_mem;
	a->used = 0;
	return a;
}

/* A closure of NULL is the library's own (dkim_init's) memory. */
static void *
dkim_arena_alloc(void *closure, size_t n)
{
	struct dkim_arena *a = closure;
	size_t need = (n + 15) & ~(size_t)15;

	if (a != NULL && need >= n && DKIM_ARENA - a->used >= need) {
		void *p = a->base + a->used;
		a->used += need;
		return p;
	}
	return malloc(n);
}

static void
dkim_arena_free(void *closure, void *p)
{
	struct dkim_arena *a = closure;
	uintptr_t u = (uintptr_t)p;

	if (a != NULL && u >= (uintptr_t)a->base && u < (uintptr_t)a->base + DKIM_ARENA)
		return;		/* dropped with the arena */
	free(p);
}

/* The library's own resolver must never run: every question goes to dns/. */
static int
dkim_refuse_query(void *srv, int type, unsigned char *q, unsigned char *buf,
    size_t buflen, void **qh)
{
	(void)srv; (void)type; (void)buf; (void)buflen; (void)qh;
	log_warn("dkim: library tried its own DNS query for %s; refused", q);
	return DKIM_DNS_ERROR;
}

/* Bound the work per message: only the first DKIM_MAX_SIGS are evaluated. */
static DKIM_CBSTAT
dkim_prescreen(DKIM *d, DKIM_SIGINFO **sigs, int n)
{
	struct dkim_ctx *ctx = dkim_get_user_context(d);

	for (int i = DKIM_MAX_SIGS; i < n; i++)
		dkim_sig_ignore(sigs[i]);
	if (n > DKIM_MAX_SIGS)
		log_info("%s: dkim: %d signatures, only the first %d evaluated",
		    ctx->ps->sid, n, DKIM_MAX_SIGS);
	return DKIM_CBSTAT_CONTINUE;
}

/* SELECTOR._domainkey.DOMAIN: the one name a signature's key is asked
 * at (RFC 6376 3.6.2.1). 0, or -1 when it does not fit. */
static int
dkim_key_name(const char *sel, const char *dom, char *out, size_t outsz)
{
	return (size_t)snprintf(out, outsz, "%s._domainkey.%s", sel, dom) < outsz ? 0 : -1;
}

/* A worker's job unless the library is set up (on a worker: it reads
 * the system's OpenSSL setup) and the work is small: a message of at
 * most DKIM_INLINE_MAX bytes with at most DKIM_INLINE_SIGS signatures.
 * The keys are the DNS cache's to answer (pol_run_here). */
static int
dkim_blocks(const struct pol_session *ps, enum pol_stage stage,
    const struct pol_msg *msg)
{
	struct msghdr_field f;
	size_t pos = 0;
	int nsig = 0;

	(void)ps;
	if (stage != POL_DATA || msg == NULL || msg->len > DKIM_INLINE_MAX ||
	    atomic_load(&dkim_ready) == 0)
		return 1;
	while (nsig <= DKIM_INLINE_SIGS && msghdr_next(msg->data, msg->len, &pos, &f))
		nsig += msghdr_is(&f, "DKIM-Signature");
	return nsig > DKIM_INLINE_SIGS;
}

static DKIM_CBSTAT
dkim_key_lookup(DKIM *d, DKIM_SIGINFO *sig, u_char *buf, size_t buflen)
{
	struct dkim_ctx *ctx = dkim_get_user_context(d);
	const char *sel = (const char *)dkim_sig_getselector(sig);
	const char *dom = (const char *)dkim_sig_getdomain(sig);
	char name[DKIM_NAME_MAX];
	struct dns_answer *a;
	DKIM_CBSTAT st;

	if (dkim_key_name(sel, dom, name, sizeof(name)) == -1)
		return DKIM_CBSTAT_NOTFOUND;
	a = dns_query(name, DNS_T_TXT, &ctx->ps->dns);
	switch (a->status) {
	case DNS_OK:
		/* RFC 6376 3.6.2.2: with several key records the verifier
		 * may choose one; we take the first. */
		if (a->rr[0].u.txt.len < 0 || (size_t)a->rr[0].u.txt.len >= buflen ||
		    memchr(a->rr[0].u.txt.joined, '\0', (size_t)a->rr[0].u.txt.len)) {
			st = DKIM_CBSTAT_NOTFOUND;
			break;
		}
		memcpy(buf, a->rr[0].u.txt.joined, (size_t)a->rr[0].u.txt.len + 1);
		st = DKIM_CBSTAT_CONTINUE;
		break;
	case DNS_NXDOMAIN:
	case DNS_NODATA:
		st = DKIM_CBSTAT_NOTFOUND;
		break;
	default:
		if (ctx->ntemp < DKIM_MAX_SIGS)
			ctx->temp[ctx->ntemp++] = sig;
		snprintf(ctx->why, sizeof(ctx->why), "key lookup %s: %s",
		    dns_status_name(a->status), a->why);
		st = DKIM_CBSTAT_TRYAGAIN;
		break;
	}
	dns_answer_free(a);
	return st;
}

/* ---- decoded keys (see the top of the file) ---- */

/* OpenSSL's prototype; called by libopendkim, and by anyone else in the
 * process. */
EVP_PKEY *
d2i_PUBKEY_bio(BIO *bp, EVP_PKEY **a)
{
	static EVP_PKEY *(*next)(BIO *, EVP_PKEY **);
	char *data = NULL;
	long len, used = 0;
	EVP_PKEY *pk;

	if (a == NULL && BIO_method_type(bp) == BIO_TYPE_MEM &&
	    (len = BIO_get_mem_data(bp, &data)) > 0 && len <= DKIM_KEY_DER_MAX) {
		pk = dkim_key_cached((const unsigned char *)data, (size_t)len, &used);
		if (pk != NULL)
			dkim_bio_skip(bp, used);
		return pk;
	}
	if (next == NULL && (next = (EVP_PKEY *(*)(BIO *, EVP_PKEY **))
	    dlsym(RTLD_NEXT, "d2i_PUBKEY_bio")) == NULL)
		fatalx("dkim: OpenSSL's d2i_PUBKEY_bio not found");
	return next(bp, a);
}

/* A new reference to the key of these DER bytes, decoding them on a miss;
 * NULL when they are no key (not cached: a bad record costs its decode
 * every time, as before). */
static EVP_PKEY *
dkim_key_cached(const unsigned char *der, size_t len, long *used)
{
	struct dkim_key *e, *old = &dkim_keys[0];
	EVP_PKEY *pk;

	pthread_mutex_lock(&dkim_keys_mtx);
	for (int i = 0; i < DKIM_KEYS; i++) {
		e = &dkim_keys[i];
		if (e->pk != NULL && e->len == len && memcmp(e->der, der, len) == 0) {
			e->tick = ++dkim_keys_tick;
			*used = e->used;
			EVP_PKEY_up_ref(e->pk);
			pthread_mutex_unlock(&dkim_keys_mtx);
			return e->pk;
		}
		if (e->tick < old->tick)
			old = e;
	}
	pthread_mutex_unlock(&dkim_keys_mtx);
	if ((pk = dkim_key_decode(der, len, used)) == NULL)
		return NULL;
	pthread_mutex_lock(&dkim_keys_mtx);
	/* Another thread may have added it meanwhile: a duplicate only
	 * wastes a slot until it ages out. */
	EVP_PKEY_free(old->pk);
	free(old->der);
	old->der = xmalloc(len);
	memcpy(old->der, der, len);
	old->len = len;
	old->used = *used;
	old->pk = pk;
	old->tick = ++dkim_keys_tick;
	EVP_PKEY_up_ref(pk);
	pthread_mutex_unlock(&dkim_keys_mtx);
	return pk;
}

/* OpenSSL's decoder on a memory buffer; the legacy RSA made now so that
 * threads sharing the key later only read it. */
static EVP_PKEY *
dkim_key_decode(const unsigned char *der, size_t len, long *used)
{
	const unsigned char *p = der;
	EVP_PKEY *pk = d2i_PUBKEY(NULL, &p, (long)len);

	if (pk == NULL)
		return NULL;
	*used = (long)(p - der);
	if (EVP_PKEY_get_base_id(pk) == EVP_PKEY_RSA) {
		/* Deprecated in OpenSSL 3, and what libopendkim calls next. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
		RSA *r = EVP_PKEY_get1_RSA(pk);
		RSA_free(r);
#pragma GCC diagnostic pop
	}
	return pk;
}

/* Consume what the decoder would have read, as OpenSSL's own does. */
static void
dkim_bio_skip(BIO *bp, long n)
{
	char scratch[256];

	while (n > 0) {
		int k = BIO_read(bp, scratch, n < (long)sizeof(scratch) ? (int)n :
		    (int)sizeof(scratch));
		if (k <= 0)
			break;
		n -= k;
	}
}

static int
dkim_enabled(const struct conf *c)
{
	return c->dkim_enabled;
}

enum authres_result
dkim_sigerror_result(int e)
{
	switch (e) {
	case DKIM_SIGERROR_KEYFAIL:
		return AUTHRES_TEMPERROR;
	case DKIM_SIGERROR_BADSIG:
	case DKIM_SIGERROR_TOOLARGE_L:	/* body shorter than l=: cut */
		return AUTHRES_FAIL;
	case DKIM_SIGERROR_EXPIRED:	/* RFC 6376 3.5 x=: verifier's choice */
	case DKIM_SIGERROR_FUTURE:
	case DKIM_SIGERROR_KEYTOOSMALL:
	case DKIM_SIGERROR_MBSFAILED:
	case DKIM_SIGERROR_SUBDOMAIN:
		return AUTHRES_POLICY;
	case DKIM_SIGERROR_NOKEY:	/* RFC 6376 6.1.2: PERMFAIL */
	case DKIM_SIGERROR_KEYREVOKED:	/* RFC 6376 3.6.1 p= empty */
	case DKIM_SIGERROR_DNSSYNTAX:
	case DKIM_SIGERROR_MULTIREPLY:
	case DKIM_SIGERROR_KEYVERSION:
	case DKIM_SIGERROR_KEYUNKNOWNHASH:
	case DKIM_SIGERROR_KEYHASHMISMATCH:
	case DKIM_SIGERROR_NOTEMAILKEY:
	case DKIM_SIGERROR_KEYTYPEMISSING:
	case DKIM_SIGERROR_KEYTYPEUNKNOWN:
	case DKIM_SIGERROR_KEYDECODE:
		return AUTHRES_PERMERROR;
	default:
		/* RFC 8601 2.7.1: a signature with syntax errors, or one
		 * we could not process, is neutral. */
		return AUTHRES_NEUTRAL;
	}
}

/* x= against our wall clock (time_wall(): the test clock when one is set;
 * the library only knows time()), with the library's drift. */
static int
dkim_sig_expired(DKIM_SIGINFO *sig)
{
	const char *x = (const char *)dkim_sig_gettagvalue(sig, 0, (u_char *)"x");
	char *end;
	unsigned long long t;

	if (x == NULL)
		return 0;
	t = strtoull(x, &end, 10);
	return end != x && (uint64_t)time_wall() >= t + dkim_drift;
}

/* 1 when the signature's bh= is the hash of our body (its c= body
 * canonicalization, a= hash, l= length), 0 when not or unreadable. */
static int
dkim_body_ok(const struct dkim_ctx *ctx, DKIM_SIGINFO *sig)
{
	const char *bh = (const char *)dkim_sig_gettagvalue(sig, 0, (u_char *)"bh");
	const char *l = (const char *)dkim_sig_gettagvalue(sig, 0, (u_char *)"l");
	dkim_canon_t hc = DKIM_CANON_UNKNOWN, bc = DKIM_CANON_UNKNOWN;
	dkim_alg_t alg = DKIM_SIGN_UNKNOWN;
	unsigned char dig[EVP_MAX_MD_SIZE], b64[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
	long long limit = -1;
	unsigned int n;
	size_t k = 0;

	if (bh == NULL || dkim_sig_getcanons(sig, &hc, &bc) != DKIM_STAT_OK ||
	    dkim_sig_getsignalg(sig, &alg) != DKIM_STAT_OK ||
	    (bc != DKIM_CANON_SIMPLE && bc != DKIM_CANON_RELAXED))
		return 0;
	if (l != NULL) {
		char *end;
		unsigned long long v = strtoull(l, &end, 10);
		if (end == l || *end != '\0' || v > (unsigned long long)LLONG_MAX)
			return 0;
		limit = (long long)v;
	}
	n = dkimbody_hash(ctx->body, ctx->bodylen,
	    bc == DKIM_CANON_RELAXED ? DKIMBODY_RELAXED : DKIMBODY_SIMPLE, limit,
	    alg == DKIM_SIGN_RSASHA1 ? dkim_md_sha1 : dkim_md_sha256, dig);
	if (n == 0)
		return 0;
	(void)EVP_EncodeBlock(b64, dig, (int)n);
	/* bh= may be folded: its whitespace is not part of the value */
	for (; *bh != '\0'; bh++) {
		if (*bh == ' ' || *bh == '\t' || *bh == '\r' || *bh == '\n')
			continue;
		if (b64[k] == '\0' || (unsigned char)*bh != b64[k])
			return 0;
		k++;
	}
	return b64[k] == '\0';
}

/* Result of one signature after dkim_eom(). */
static enum authres_result
dkim_sig_result(struct dkim_ctx *ctx, DKIM_SIGINFO *sig, char *why, size_t whysz)
{
	unsigned int flags = dkim_sig_getflags(sig), bits = 0;
	int err = dkim_sig_geterror(sig), bhr = dkim_sig_getbh(sig);
	dkim_alg_t alg = DKIM_SIGN_UNKNOWN;

	why[0] = '\0';
	for (int i = 0; i < ctx->ntemp; i++)
		if (ctx->temp[i] == sig) {
			snprintf(why, whysz, "%s", ctx->why);
			return AUTHRES_TEMPERROR;
		}
	/* The header signature verified, so the library compared bh= with
	 * the body it was given (none): the body verdict is ours. With
	 * PASSED set, BADSIG can only be that comparison; another error
	 * (t=s and i=, say) stands. */
	if (ctx->body_ours && (flags & DKIM_SIGFLAG_PASSED) && bhr != DKIM_SIGBH_UNTESTED) {
		bhr = dkim_body_ok(ctx, sig) ? DKIM_SIGBH_MATCH : DKIM_SIGBH_MISMATCH;
		if (err == DKIM_SIGERROR_BADSIG)
			err = bhr == DKIM_SIGBH_MATCH ? DKIM_SIGERROR_OK : DKIM_SIGERROR_BADSIG;
	}
	(void)dkim_sig_getsignalg(sig, &alg);
	(void)dkim_sig_getkeysize(sig, &bits);
	if ((flags & DKIM_SIGFLAG_PASSED) && bhr == DKIM_SIGBH_MATCH &&
	    err == DKIM_SIGERROR_OK) {
		if (alg == DKIM_SIGN_RSASHA1) {
			snprintf(why, whysz, "rsa-sha1 is not accepted (RFC 8301)");
			return AUTHRES_POLICY;
		}
		if (alg == DKIM_SIGN_RSASHA256 && bits < DKIM_MIN_RSA_BITS) {
			snprintf(why, whysz, "%u-bit RSA key, under %d (RFC 8301)",
			    bits, DKIM_MIN_RSA_BITS);
			return AUTHRES_POLICY;
		}
		if (dkim_sig_expired(sig)) {
			snprintf(why, whysz, "signature expired (x=)");
			return AUTHRES_POLICY;
		}
		if (flags & DKIM_SIGFLAG_TESTKEY)
			snprintf(why, whysz, "key in test mode (t=y)");
		return AUTHRES_PASS;
	}
	if ((flags & DKIM_SIGFLAG_PASSED) && bhr == DKIM_SIGBH_MISMATCH) {
		snprintf(why, whysz, "body hash mismatch");
		return AUTHRES_FAIL;
	}
	if (err == DKIM_SIGERROR_UNKNOWN) {
		snprintf(why, whysz, "signature not evaluated");
		return AUTHRES_NEUTRAL;
	}
	snprintf(why, whysz, "%s", dkim_sig_geterrorstr(err) ?
	    dkim_sig_geterrorstr(err) : "unknown error");
	return dkim_sigerror_result(err);
}

/* "header.d=... header.i=... header.s=... header.a=... header.b=..." with
 * every value cleaned: they come from the message. */
static void
dkim_sig_props(DKIM_SIGINFO *sig, char *out, size_t outsz)
{
	char dv[256], iv[256], sv[128], av[32], bv[16], raw[256];
	const u_char *a = dkim_sig_gettagvalue(sig, 0, (u_char *)"a");
	const u_char *b = dkim_sig_gettagvalue(sig, 0, (u_char *)"b");

	authres_value((const char *)dkim_sig_getdomain(sig), dv, sizeof(dv));
	authres_value((const char *)dkim_sig_getselector(sig), sv, sizeof(sv));
	authres_value((const char *)a, av, sizeof(av));
	authres_value((const char *)b, bv, 9);	/* RFC 6008: first 8 chars */
	dkim_sig_identity(sig, raw, sizeof(raw));
	authres_value(raw, iv, sizeof(iv));
	snprintf(out, outsz, "header.d=%s%s%s header.s=%s header.a=%s header.b=%s",
	    dv, *iv ? " header.i=" : "", iv, sv, av, bv);
}

/* The signature's i= (RFC 6376 3.5) with DKIM-Quoted-Printable undone
 * (2.11), or "@" d= when absent, into out. Not dkim_sig_getidentity():
 * libopendkim's dkim_qp_decode() steps past the end of a value ending in
 * "=" and reads on through the heap (a forged signature crashed us). */
static void
dkim_sig_identity(DKIM_SIGINFO *sig, char *out, size_t outsz)
{
	const char *i = (const char *)dkim_sig_gettagvalue(sig, 0, (u_char *)"i");
	const char *dom = (const char *)dkim_sig_getdomain(sig);
	size_t o = 0;

	if (i == NULL) {
		snprintf(out, outsz, "@%s", dom ? dom : "");
		return;
	}
	for (; *i != '\0' && o + 1 < outsz; i++) {
		unsigned char h = (unsigned char)i[1], l = h ? (unsigned char)i[2] : 0;
		if (*i == ' ' || *i == '\t' || *i == '\r' || *i == '\n')
			continue;	/* FWS may fold a tag value */
		if (*i == '=' && isxdigit(h) && isxdigit(l)) {
			out[o++] = (char)((isdigit(h) ? h - '0' : (h | 0x20) - 'a' + 10) * 16 +
			    (isdigit(l) ? l - '0' : (l | 0x20) - 'a' + 10));
			i += 2;
		} else
			out[o++] = *i;
	}
	out[o] = '\0';
}

/* The signature's outcome, typed, for the checks after dkim (DMARC,
 * greylisting): its result, d= and s= as the library read them. */
static void
dkim_found_add(struct pol_session *ps, DKIM_SIGINFO *sig, enum authres_result res)
{
	const char *d = (const char *)dkim_sig_getdomain(sig);
	const char *s = (const char *)dkim_sig_getselector(sig);
	struct dkim_found *f;

	ps->found.dkim_last = res;
	if (ps->found.ndkim == DKIM_MAX_SIGS)
		return;
	f = &ps->found.dkim[ps->found.ndkim++];
	f->result = res;
	snprintf(f->domain, sizeof(f->domain), "%s", d ? d : "");
	snprintf(f->selector, sizeof(f->selector), "%s", s ? s : "");
}

static void
dkim_report(struct pol_session *ps, struct dkim_ctx *ctx,
    DKIM_SIGINFO **sigs, int n)
{
	const struct conf *c = ps->conf;
	struct pol_result *first = NULL;
	int pass = 0, fail = 0;

	for (int i = 0; i < n && i < DKIM_MAX_SIGS; i++) {
		char props[768], why[256];
		enum authres_result res = dkim_sig_result(ctx, sigs[i], why, sizeof(why));
		struct pol_result *r;

		dkim_found_add(ps, sigs[i], res);
		dkim_sig_props(sigs[i], props, sizeof(props));
		r = pol_result_add(ps, "dkim", authres_result_name(res), 0, props, "%s", why);
		if (res == AUTHRES_PASS) {
			if (!pass++ && r != NULL)
				r->score = c->dkim_pass_score;
		} else if (res != AUTHRES_TEMPERROR) {
			fail++;
			if (first == NULL)
				first = r;
		}
	}
	/* The score is once per message, on the deciding result. */
	if (pass)
		ps->score += c->dkim_pass_score;
	else if (fail && first != NULL) {
		first->score = c->dkim_fail_score;
		ps->score += c->dkim_fail_score;
	}
}

/* Verify with the library, given the header section only (body_ours:
 * dkim_body_ok() judges bh=) or the whole message. NULL, with a result
 * added, when the library gave no handle. */
static DKIM *
dkim_verify_msg(struct dkim_ctx *ctx, const struct pol_msg *msg, int body_ours)
{
	DKIM_STAT st;
	DKIM *d;

	d = dkim_verify(dkim_lib, (const u_char *)ctx->ps->sid,
	    dkim_arena_start(&ctx->arena), &st);

	if (d == NULL) {
		ctx->ps->found.dkim_last = AUTHRES_TEMPERROR;
		pol_result_add(ctx->ps, "dkim", "temperror", 0, "", "dkim_verify: %s",
		    dkim_getresultstr(st));
		return NULL;
	}
	ctx->ntemp = 0;
	ctx->body_ours = body_ours;
	(void)dkim_set_user_context(d, ctx);
	if (body_ours) {
		st = dkim_feed_fields(ctx, d, msg);
	} else {
		/* The library reads the buffer only. */
		st = dkim_chunk(d, (u_char *)(uintptr_t)msg->data, msg->len);
		if (st == DKIM_STAT_OK)
			st = dkim_chunk(d, NULL, 0);
	}
	if (st == DKIM_STAT_OK || st == DKIM_STAT_NOSIG)
		(void)dkim_eom(d, NULL);
	return d;
}

/* The header fields (msghdr's walk: policy/msghdr.h decides where a field
 * ends), each without its line end, as dkim_chunk() would hand them over
 * after copying the header an octet at a time. A field the library finds
 * malformed is skipped, as DKIM_LIBFLAGS_BADSIGHANDLES makes dkim_chunk()
 * do. The same walk tells where the body starts (past the empty line that
 * ends the header fields, or at the end of a message without one), for
 * dkim_body_ok(). */
static DKIM_STAT
dkim_feed_fields(struct dkim_ctx *ctx, DKIM *d, const struct pol_msg *msg)
{
	struct msghdr_field f;
	size_t pos = 0;
	DKIM_STAT st = DKIM_STAT_OK;

	while (msghdr_next(msg->data, msg->len, &pos, &f) == 1) {
		size_t n = f.len;

		if (st != DKIM_STAT_OK && st != DKIM_STAT_SYNTAX)
			continue;	/* the library gave up: only walk on */
		if (n > 0 && msg->data[f.off + n - 1] == '\n')
			n--;
		if (n > 0 && msg->data[f.off + n - 1] == '\r')
			n--;
		st = dkim_header(d, (u_char *)(uintptr_t)(msg->data + f.off), n);
	}
	if (pos < msg->len && msg->data[pos] == '\r')
		pos++;
	if (pos < msg->len && msg->data[pos] == '\n')
		pos++;
	ctx->body = msg->data + pos;
	ctx->bodylen = msg->len - pos;
	return st != DKIM_STAT_OK && st != DKIM_STAT_SYNTAX ? st : dkim_eoh(d);
}

/* 1 when the library set a signature aside because its l= exceeds the
 * body it saw (none): only the whole message can settle that one. */
static int
dkim_needs_body(DKIM *d)
{
	DKIM_SIGINFO **sigs = NULL;
	int n = 0;

	if (dkim_getsiglist(d, &sigs, &n) != DKIM_STAT_OK || sigs == NULL)
		return 0;
	for (int i = 0; i < n; i++)
		if (dkim_sig_geterror(sigs[i]) == DKIM_SIGERROR_TOOLARGE_L)
			return 1;
	return 0;
}

static void
dkim_run(struct pol_session *ps, enum pol_stage stage, const struct pol_msg *msg)
{
	struct dkim_ctx ctx;
	DKIM_SIGINFO **sigs = NULL;
	DKIM *d;
	int n = 0;

	if (stage != POL_DATA || msg == NULL)
		return;
	pthread_once(&dkim_once, dkim_lib_init);
	memset(&ctx, 0, sizeof(ctx));
	ctx.ps = ps;
	if ((d = dkim_verify_msg(&ctx, msg, 1)) == NULL)
		return;
	if (dkim_needs_body(d)) {	/* l= (rare): the library's way */
		dkim_free(d);
		if ((d = dkim_verify_msg(&ctx, msg, 0)) == NULL)
			return;
	}
	if (dkim_getsiglist(d, &sigs, &n) != DKIM_STAT_OK || n == 0 || sigs == NULL) {
		ps->found.dkim_last = AUTHRES_NONE;
		pol_result_add(ps, "dkim", "none", 0, "", "no signature");
	} else
		dkim_report(ps, &ctx, sigs, n);
	dkim_free(d);
}
