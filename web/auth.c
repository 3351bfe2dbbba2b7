/*
 * auth.c -- see auth.h. OpenSSL does the cryptography (RAND_bytes,
 * PKCS5_PBKDF2_HMAC, SHA256, CRYPTO_memcmp); this file only keeps tables.
 * Sessions live in the database (db_session_*), keyed by the hex SHA-256
 * of their token: the token itself is never stored, and a lookup's time
 * can tell at most how much of a guess's hash matched a stored hash, which
 * is no help in finding a token.
 */
#include "web/auth.h"
#include "db/db.h"
#include "lib/util.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AUTH_SCHEME	"pbkdf2-sha256"
#define AUTH_DELAY_ADDR	64	/* chars of an address (or IPv6 network) kept */
#define AUTH_DELAY_KEY	(2 + AUTH_MAX_USER + 1 + AUTH_DELAY_ADDR + 1)	/* "l:" user "|" addr */

struct auth_delay {
	char	 key[AUTH_DELAY_KEY];
	time_t	 last;		/* the last failure; 0 = free slot */
	int	 fails;
};

static _Atomic long long	 auth_pruned;	/* when this process last pruned */
static struct auth_delay	 auth_delays[AUTH_DELAY_SLOTS];
static pthread_mutex_t		 auth_dmtx = PTHREAD_MUTEX_INITIALIZER;

static void	 auth_random_hex(char *out, size_t nbytes);
static void	 auth_hex(const unsigned char *, size_t, char *);
static int	 auth_unhex(const char *, unsigned char *, size_t);
static void	 auth_derive(const char *pw, const unsigned char *salt, size_t saltlen,
		    int iter, unsigned char *key, size_t keylen);
static void	 auth_token_key(const char *token, char *key);
static void	 auth_session_prune(time_t now, int force);
static struct auth_delay *auth_delay_slot(const char *key, time_t now, int create);
static int	 auth_delay_left(const char *key, int allowed, time_t now);
static void	 auth_delay_bump(const char *key, time_t now);
static void	 auth_delay_keys(const char *addr, const char *user, char *pair,
		    char *akey);

static void
auth_hex(const unsigned char *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

/* Exactly n bytes of lower- or upper-case hex; 0 or -1. */
static int
auth_unhex(const char *s, unsigned char *out, size_t n)
{
	if (strlen(s) != 2 * n)
		return -1;
	for (size_t i = 0; i < 2 * n; i++) {
		int c = s[i], v;

		if (c >= '0' && c <= '9')
			v = c - '0';
		else if (c >= 'a' && c <= 'f')
			v = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v = c - 'A' + 10;
		else
			return -1;
		out[i / 2] = (unsigned char)(i % 2 ? out[i / 2] | v : v << 4);
	}
	return 0;
}

static void
auth_random_hex(char *out, size_t nbytes)
{
	unsigned char buf[64];

	if (nbytes > sizeof(buf) || RAND_bytes(buf, (int)nbytes) != 1)
		fatalx("auth: RAND_bytes failed");
	auth_hex(buf, nbytes, out);
	OPENSSL_cleanse(buf, sizeof(buf));
}

static void
auth_derive(const char *pw, const unsigned char *salt, size_t saltlen, int iter,
    unsigned char *key, size_t keylen)
{
	if (PKCS5_PBKDF2_HMAC(pw, (int)strlen(pw), salt, (int)saltlen, iter,
	    EVP_sha256(), (int)keylen, key) != 1)
		fatalx("auth: PKCS5_PBKDF2_HMAC failed");
}

char *
auth_hash(const char *pw)
{
	unsigned char salt[AUTH_SALT_LEN], key[AUTH_KEY_LEN];
	char salthex[2 * AUTH_SALT_LEN + 1], keyhex[2 * AUTH_KEY_LEN + 1];

	if (RAND_bytes(salt, sizeof(salt)) != 1)
		fatalx("auth: RAND_bytes failed");
	auth_derive(pw, salt, sizeof(salt), AUTH_PBKDF2_ITER, key, sizeof(key));
	auth_hex(salt, sizeof(salt), salthex);
	auth_hex(key, sizeof(key), keyhex);
	OPENSSL_cleanse(key, sizeof(key));
	return xasprintf("%s$%d$%s$%s", AUTH_SCHEME, AUTH_PBKDF2_ITER, salthex, keyhex);
}

int
auth_verify(const char *pw, const char *stored)
{
	unsigned char salt[AUTH_SALT_LEN], want[AUTH_KEY_LEN], got[AUTH_KEY_LEN];
	char scheme[32], salthex[2 * AUTH_SALT_LEN + 2], keyhex[2 * AUTH_KEY_LEN + 2];
	int iter, ok;

	if (stored == NULL) {
		/* Same cost as a real check, so a probe cannot tell users apart. */
		memset(salt, 0, sizeof(salt));
		auth_derive(pw, salt, sizeof(salt), AUTH_PBKDF2_ITER, got, sizeof(got));
		return 0;
	}
	if (sscanf(stored, "%31[^$]$%d$%33[0-9a-fA-F]$%65[0-9a-fA-F]", scheme, &iter,
	    salthex, keyhex) != 4 || strcmp(scheme, AUTH_SCHEME) != 0 ||
	    iter < 1000 || iter > 100000000 ||
	    auth_unhex(salthex, salt, sizeof(salt)) == -1 ||
	    auth_unhex(keyhex, want, sizeof(want)) == -1)
		return -1;
	auth_derive(pw, salt, sizeof(salt), iter, got, sizeof(got));
	ok = CRYPTO_memcmp(got, want, sizeof(got)) == 0;
	OPENSSL_cleanse(got, sizeof(got));
	return ok;
}

int
auth_user_ok(const char *u)
{
	size_t n = 0;

	for (; u[n] != '\0'; n++)
		if (n >= AUTH_MAX_USER || !((u[n] >= 'a' && u[n] <= 'z') ||
		    (u[n] >= 'A' && u[n] <= 'Z') || (u[n] >= '0' && u[n] <= '9') ||
		    strchr("._@-", u[n]) != NULL))
			return 0;
	return n > 0;
}

int
auth_secret_eq(const char *a, const char *b)
{
	unsigned char ha[SHA256_DIGEST_LENGTH], hb[SHA256_DIGEST_LENGTH];

	SHA256((const unsigned char *)a, strlen(a), ha);
	SHA256((const unsigned char *)b, strlen(b), hb);
	return CRYPTO_memcmp(ha, hb, sizeof(ha)) == 0;
}

/* ------------------------------------------------------------- sessions */

/* The database key of a token: its SHA-256 in hex (2 * 32 + 1 chars). */
static void
auth_token_key(const char *token, char *key)
{
	unsigned char h[SHA256_DIGEST_LENGTH];

	SHA256((const unsigned char *)token, strlen(token), h);
	auth_hex(h, sizeof(h), key);
}

/* Expired sessions go at most once per AUTH_SESSION_PRUNE per process
 * (force: now), on a login; a lookup never finds them anyway. */
static void
auth_session_prune(time_t now, int force)
{
	long long last = atomic_load(&auth_pruned);

	if (!force && (now >= last && now - last < AUTH_SESSION_PRUNE))
		return;
	if (!force && !atomic_compare_exchange_strong(&auth_pruned, &last, now))
		return;		/* another thread is at it */
	if (db_session_prune(now - AUTH_SESSION_IDLE, now - AUTH_SESSION_MAX_AGE) == -1)
		log_err("auth: expired login sessions not pruned; next login tries again");
}

int
auth_session_new(const char *user, char *token, char *csrf)
{
	char key[2 * SHA256_DIGEST_LENGTH + 1];
	time_t now = time_wall();

	auth_session_prune(now, 0);
	auth_random_hex(token, AUTH_TOKEN_HEX / 2);
	auth_random_hex(csrf, AUTH_TOKEN_HEX / 2);
	auth_token_key(token, key);
	return db_session_put(key, user, csrf, now) == 0 ? 0 : -1;
}

int
auth_session_get(const char *token, char *user, char *csrf)
{
	char key[2 * SHA256_DIGEST_LENGTH + 1];
	time_t now = time_wall();

	if (strlen(token) != AUTH_TOKEN_HEX)
		return 0;
	auth_token_key(token, key);
	return db_session_get(key, now, now - AUTH_SESSION_IDLE,
	    now - AUTH_SESSION_MAX_AGE, user, AUTH_MAX_USER + 1, csrf,
	    AUTH_TOKEN_HEX + 1);
}

int
auth_session_end(const char *token)
{
	char key[2 * SHA256_DIGEST_LENGTH + 1];

	auth_token_key(token, key);
	return db_session_del(key);
}

/* ------------------------------------------------------ failure delays */

/* Under auth_dmtx: key's live slot, or (create) a fresh one in a free or
 * forgotten slot, else in the one with the fewest failures (the oldest
 * among those). NULL when absent. */
static struct auth_delay *
auth_delay_slot(const char *key, time_t now, int create)
{
	struct auth_delay *victim = NULL;

	for (size_t i = 0; i < AUTH_DELAY_SLOTS; i++) {
		struct auth_delay *d = &auth_delays[i];

		if (d->last != 0 && now - d->last >= AUTH_DELAY_FORGET)
			d->last = 0;
		if (d->last != 0 && strcmp(d->key, key) == 0)
			return d;
		if (victim == NULL || (victim->last != 0 && (d->last == 0 ||
		    d->fails < victim->fails ||
		    (d->fails == victim->fails && d->last < victim->last))))
			victim = d;
	}
	if (!create)
		return NULL;
	memset(victim, 0, sizeof(*victim));
	snprintf(victim->key, sizeof(victim->key), "%s", key);
	return victim;
}

/* Under auth_dmtx: seconds key must still wait, allowed failures being
 * free. */
static int
auth_delay_left(const char *key, int allowed, time_t now)
{
	struct auth_delay *d = auth_delay_slot(key, now, 0);
	time_t delay, left;
	int over;

	if (d == NULL || d->fails < allowed)
		return 0;
	/* 1, 2, 4, ... seconds; 2^10 is past any sane cap. */
	over = d->fails - allowed;
	delay = over < 10 && (1 << over) < AUTH_DELAY_MAX ? 1 << over : AUTH_DELAY_MAX;
	left = d->last + delay - now;
	/* A wall clock stepped back must not stretch the wait. */
	return left <= 0 ? 0 : left > delay ? (int)delay : (int)left;
}

static void
auth_delay_bump(const char *key, time_t now)
{
	struct auth_delay *d = auth_delay_slot(key, now, 1);

	if (d->fails < AUTH_DELAY_FREE_ADDR + 64)	/* capped long before: no overflow */
		d->fails++;
	d->last = now;
}

/* The pair key of a login ("" for a token) and the address's own key,
 * which differs for logins and tokens so neither delays the other. */
static void
auth_delay_keys(const char *addr, const char *user, char *pair, char *akey)
{
	pair[0] = '\0';
	if (user != NULL)
		snprintf(pair, AUTH_DELAY_KEY, "l:%.*s|%.*s", AUTH_MAX_USER, user,
		    AUTH_DELAY_ADDR, addr);
	snprintf(akey, AUTH_DELAY_KEY, "%s:%.*s", user != NULL ? "a" : "t",
	    AUTH_DELAY_ADDR, addr);
}

int
auth_delay_wait(const char *addr, const char *user)
{
	char pair[AUTH_DELAY_KEY], akey[AUTH_DELAY_KEY];
	time_t now = time_wall();
	int wait, pw;

	auth_delay_keys(addr, user, pair, akey);
	pthread_mutex_lock(&auth_dmtx);
	wait = auth_delay_left(akey, AUTH_DELAY_FREE_ADDR, now);
	if (user != NULL && (pw = auth_delay_left(pair, AUTH_DELAY_FREE, now)) > wait)
		wait = pw;
	pthread_mutex_unlock(&auth_dmtx);
	return wait;
}

void
auth_delay_fail(const char *addr, const char *user)
{
	char pair[AUTH_DELAY_KEY], akey[AUTH_DELAY_KEY];
	time_t now = time_wall();

	auth_delay_keys(addr, user, pair, akey);
	pthread_mutex_lock(&auth_dmtx);
	auth_delay_bump(akey, now);
	if (user != NULL)
		auth_delay_bump(pair, now);
	pthread_mutex_unlock(&auth_dmtx);
}

void
auth_delay_ok(const char *addr, const char *user)
{
	char pair[AUTH_DELAY_KEY], akey[AUTH_DELAY_KEY];
	struct auth_delay *d;

	auth_delay_keys(addr, user, pair, akey);
	pthread_mutex_lock(&auth_dmtx);
	if ((d = auth_delay_slot(pair, time_wall(), 0)) != NULL)
		d->last = 0;
	pthread_mutex_unlock(&auth_dmtx);
}

void
auth_reset(void)
{
	/* cut-offs past any session's times end them all */
	if (db_session_prune((time_t)INT64_MAX, (time_t)INT64_MAX) == -1)
		log_err("auth: login sessions not reset");
	atomic_store(&auth_pruned, 0);
	pthread_mutex_lock(&auth_dmtx);
	memset(auth_delays, 0, sizeof(auth_delays));
	pthread_mutex_unlock(&auth_dmtx);
}
