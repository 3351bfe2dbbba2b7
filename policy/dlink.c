/*
 * dlink.c -- see dlink.h.
 */
#include "policy/dlink.h"
#include "db/db.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DLINK_META_KEY	"digest.key"
#define DLINK_MAC_LEN	32		/* SHA-256 */
/* "1\n" id "\n" action "\n" rcpt "\n" expiry */
#define DLINK_PAYLOAD_MAX	(2 + ID_LEN + 1 + 8 + LIM_PATH + 1 + 24)

static const char *dlink_names[] = { "release", "delete", "allow" };

static pthread_mutex_t	 dlink_mtx = PTHREAD_MUTEX_INITIALIZER;
static unsigned char	 dlink_cached[DLINK_KEY_LEN];
static int		 dlink_have;

static void	 dlink_b64(const unsigned char *in, size_t n, char *out);
static int	 dlink_unb64(const char *in, size_t n, unsigned char *out, size_t cap,
		    size_t *outlen);
static void	 dlink_mac(const unsigned char *key, const unsigned char *p, size_t n,
		    unsigned char mac[DLINK_MAC_LEN]);
static int	 dlink_fields(const char *p, size_t n, struct dlink *out);
static int	 dlink_hex(const char *s, unsigned char *out, size_t n);

static const char dlink_alpha[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

const char *
dlink_action_name(enum dlink_action a)
{
	return dlink_names[a];
}

int
dlink_action_parse(const char *s, size_t len, enum dlink_action *a)
{
	for (size_t i = 0; i < ARRAY_SIZE(dlink_names); i++)
		if (strlen(dlink_names[i]) == len && memcmp(s, dlink_names[i], len) == 0) {
			*a = (enum dlink_action)i;
			return 0;
		}
	return -1;
}

/* RFC 4648 section 5, without padding; out holds 4 * ceil(n / 3) + 1. */
static void
dlink_b64(const unsigned char *in, size_t n, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0) |
		    (i + 2 < n ? in[i + 2] : 0);
		out[o++] = dlink_alpha[v >> 18 & 63];
		out[o++] = dlink_alpha[v >> 12 & 63];
		if (i + 1 < n)
			out[o++] = dlink_alpha[v >> 6 & 63];
		if (i + 2 < n)
			out[o++] = dlink_alpha[v & 63];
	}
	out[o] = '\0';
}

/* The reverse, strict: only the alphabet, no padding, no leftover bits
 * (so one token has exactly one spelling). 0, or -1. */
static int
dlink_unb64(const char *in, size_t n, unsigned char *out, size_t cap, size_t *outlen)
{
	unsigned v = 0;
	int bits = 0;
	size_t o = 0;

	if (n % 4 == 1)
		return -1;
	for (size_t i = 0; i < n; i++) {
		const char *p = memchr(dlink_alpha, in[i], 64);
		if (p == NULL || in[i] == '\0')
			return -1;
		v = v << 6 | (unsigned)(p - dlink_alpha);
		if ((bits += 6) >= 8) {
			if (o == cap)
				return -1;
			bits -= 8;
			out[o++] = (unsigned char)(v >> bits);
			v &= (1u << bits) - 1;
		}
	}
	if (v != 0)
		return -1;
	*outlen = o;
	return 0;
}

static void
dlink_mac(const unsigned char *key, const unsigned char *p, size_t n,
    unsigned char mac[DLINK_MAC_LEN])
{
	unsigned len = DLINK_MAC_LEN;

	if (HMAC(EVP_sha256(), key, DLINK_KEY_LEN, p, n, mac, &len) == NULL ||
	    len != DLINK_MAC_LEN)
		fatalx("dlink: HMAC-SHA256 failed");
}

char *
dlink_sign(const unsigned char key[DLINK_KEY_LEN], const struct dlink *l)
{
	char payload[DLINK_PAYLOAD_MAX + 1], *tok;
	unsigned char mac[DLINK_MAC_LEN];
	int n;

	n = snprintf(payload, sizeof(payload), "1\n%s\n%s\n%s\n%lld", l->id,
	    dlink_action_name(l->action), l->rcpt, (long long)l->expires);
	if (n < 0 || (size_t)n >= sizeof(payload))
		fatalx("dlink: payload of %d bytes", n);
	dlink_mac(key, (unsigned char *)payload, (size_t)n, mac);
	tok = xmalloc(((size_t)n + 2) / 3 * 4 + 1 + (DLINK_MAC_LEN + 2) / 3 * 4 + 1);
	dlink_b64((unsigned char *)payload, (size_t)n, tok);
	strcat(tok, ".");
	dlink_b64(mac, DLINK_MAC_LEN, tok + strlen(tok));
	return tok;
}

/* The signed payload's fields into out: 0, or -1 when one is not what we
 * ever sign (our own bug or an old format). */
static int
dlink_fields(const char *p, size_t n, struct dlink *out)
{
	const char *f[5], *end = p + n;
	size_t len[5];
	char num[24], *e;
	int k = 0;

	for (const char *s = p; k < 5; k++) {
		const char *nl = k < 4 ? memchr(s, '\n', (size_t)(end - s)) : end;
		if (nl == NULL)
			return -1;
		f[k] = s;
		len[k] = (size_t)(nl - s);
		s = nl + (k < 4);
	}
	if (len[0] != 1 || f[0][0] != '1' || len[1] != ID_LEN ||
	    strspn(f[1], "0123456789ABCDEF") < ID_LEN ||
	    dlink_action_parse(f[2], len[2], &out->action) == -1 ||
	    len[3] == 0 || len[3] > LIM_PATH || memchr(f[3], '\0', len[3]) != NULL ||
	    len[4] == 0 || len[4] >= sizeof(num))
		return -1;
	memcpy(out->id, f[1], ID_LEN);
	out->id[ID_LEN] = '\0';
	memcpy(out->rcpt, f[3], len[3]);
	out->rcpt[len[3]] = '\0';
	memcpy(num, f[4], len[4]);
	num[len[4]] = '\0';
	out->expires = (time_t)strtoll(num, &e, 10);
	return *e == '\0' && out->expires > 0 ? 0 : -1;
}

enum dlink_err
dlink_verify(const unsigned char key[DLINK_KEY_LEN], const char *token, time_t now,
    struct dlink *out)
{
	unsigned char payload[DLINK_PAYLOAD_MAX], mac[DLINK_MAC_LEN + 1],
	    want[DLINK_MAC_LEN];
	size_t tl = strnlen(token, DLINK_TOKEN_MAX + 1), pl, ml;
	const char *dot = memchr(token, '.', tl);

	memset(out, 0, sizeof(*out));
	if (tl > DLINK_TOKEN_MAX || dot == NULL ||
	    dlink_unb64(token, (size_t)(dot - token), payload, sizeof(payload), &pl) == -1 ||
	    dlink_unb64(dot + 1, tl - (size_t)(dot + 1 - token), mac, sizeof(mac), &ml) == -1 ||
	    ml != DLINK_MAC_LEN)
		return DLINK_MALFORMED;
	dlink_mac(key, payload, pl, want);
	if (CRYPTO_memcmp(mac, want, DLINK_MAC_LEN) != 0)
		return DLINK_BAD_SIG;
	if (dlink_fields((const char *)payload, pl, out) == -1)
		return DLINK_MALFORMED;
	return now > out->expires ? DLINK_EXPIRED : DLINK_OK;
}

/* 2n hex digits into n bytes: 0, or -1. */
static int
dlink_hex(const char *s, unsigned char *out, size_t n)
{
	if (strlen(s) != 2 * n)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (unsigned char)v;
	}
	return 0;
}

int
dlink_key(unsigned char key[DLINK_KEY_LEN])
{
	unsigned char fresh[DLINK_KEY_LEN];
	char hex[2 * DLINK_KEY_LEN + 1], *val = NULL;
	int rc = -1;

	pthread_mutex_lock(&dlink_mtx);
	if (dlink_have) {
		memcpy(key, dlink_cached, DLINK_KEY_LEN);
		pthread_mutex_unlock(&dlink_mtx);
		return 0;
	}
	/* Make one and offer it; whatever is stored afterwards is the key. */
	if (RAND_bytes(fresh, sizeof(fresh)) != 1)
		fatalx("dlink: RAND_bytes failed");
	for (size_t i = 0; i < DLINK_KEY_LEN; i++)
		snprintf(hex + 2 * i, 3, "%02x", fresh[i]);
	if (db_meta_put(DLINK_META_KEY, hex, 1) == 0 &&
	    db_meta_get(DLINK_META_KEY, &val) == 1) {
		if (dlink_hex(val, dlink_cached, DLINK_KEY_LEN) == 0) {
			dlink_have = 1;
			memcpy(key, dlink_cached, DLINK_KEY_LEN);
			rc = 0;
		} else
			log_err("digest: the stored link key is not %d hex bytes", DLINK_KEY_LEN);
	} else
		log_err("digest: cannot read or store the link key");
	free(val);
	OPENSSL_cleanse(fresh, sizeof(fresh));
	pthread_mutex_unlock(&dlink_mtx);
	return rc;
}
