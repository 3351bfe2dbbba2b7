/*
 * auth.c -- see auth.h. OpenSSL does the cryptography (RAND_bytes,
 * PKCS5_PBKDF2_HMAC, SHA256, CRYPTO_memcmp); this file only keeps tables.
 * Sessions are found by the SHA-256 of their token, compared with
 * CRYPTO_memcmp against every slot, so a lookup's time does not depend on
 * how much of a guessed token was right.
 */
#include "web/auth.h"
#include "lib/util.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AUTH_SCHEME	"pbkdf2-sha256"
#define AUTH_DELAY_ADDR	64	/* chars of an address (or IPv6 network) kept */
#define AUTH_DELAY_KEY	(2 + AUTH_MAX_USER + 1 + AUTH_DELAY_ADDR + 1)	/* "l:" user "|" addr */

struct auth_session {
	int	 used;
	unsigned char tokhash[SHA256_DIGEST_LENGTH];
	char	 user[AUTH_MAX_USER + 1];
	char	 csrf[AUTH_TOKEN_HEX + 1];
	time_t	 created, seen;
};

struct auth_delay {
	char	 key[AUTH_DELAY_KEY];
	time_t	 last;		/* the last failure; 0 = free slot */
	int	 fails;
};

static struct auth_session	 auth_sessions[AUTH_MAX_SESSIONS];
static pthread_mutex_t		 auth_smtx = PTHREAD_MUTEX_INITIALIZER;
static struct auth_delay	 auth_delays[AUTH_DELAY_SLOTS];
static pthread_mutex_t		 auth_dmtx = PTHREAD_MUTEX_INITIALIZER;

static void	 auth_random_hex(char *out, size_t nbytes);
static void	 auth_hex(const unsigned char *, size_t, char *);
static int	 auth_unhex(const char *, unsigned char *, size_t);
static void	 auth_derive(const char *pw, const unsigned char *salt, size_t saltlen,
		    int iter, unsigned char *key, size_t keylen);
static struct auth_session *auth_session_find(const unsigned char *h, time_t now);
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

/* Under auth_smtx: the live slot whose token hashes to h. Every slot is
 * compared, hit or miss; expired slots are freed on the way. */
static struct auth_session *
auth_session_find(const unsigned char *h, time_t now)
{
	struct auth_session *hit = NULL;

	for (size_t i = 0; i < AUTH_MAX_SESSIONS; i++) {
		struct auth_session *s = &auth_sessions[i];

		if (s->used && (now - s->seen > AUTH_SESSION_IDLE ||
		    now - s->created > AUTH_SESSION_MAX_AGE))
			s->used = 0;
		if (CRYPTO_memcmp(s->tokhash, h, sizeof(s->tokhash)) == 0 && s->used)
			hit = s;
	}
	return hit;
}

void
auth_session_new(const char *user, char *token, char *csrf)
{
	struct auth_session *s = NULL;
	time_t now = time_wall();

	auth_random_hex(token, AUTH_TOKEN_HEX / 2);
	pthread_mutex_lock(&auth_smtx);
	for (size_t i = 0; i < AUTH_MAX_SESSIONS; i++) {
		struct auth_session *c = &auth_sessions[i];

		if (!c->used) {
			s = c;
			break;
		}
		if (s == NULL || c->seen < s->seen)
			s = c;		/* least recently used, if all are taken */
	}
	memset(s, 0, sizeof(*s));
	s->used = 1;
	SHA256((const unsigned char *)token, strlen(token), s->tokhash);
	snprintf(s->user, sizeof(s->user), "%s", user);
	auth_random_hex(s->csrf, AUTH_TOKEN_HEX / 2);
	memcpy(csrf, s->csrf, sizeof(s->csrf));
	s->created = s->seen = now;
	pthread_mutex_unlock(&auth_smtx);
}

int
auth_session_get(const char *token, char *user, char *csrf)
{
	unsigned char h[SHA256_DIGEST_LENGTH];
	struct auth_session *s;

	if (strlen(token) != AUTH_TOKEN_HEX)
		return 0;
	SHA256((const unsigned char *)token, strlen(token), h);
	pthread_mutex_lock(&auth_smtx);
	if ((s = auth_session_find(h, time_wall())) != NULL) {
		s->seen = time_wall();
		memcpy(user, s->user, sizeof(s->user));
		memcpy(csrf, s->csrf, sizeof(s->csrf));
	}
	pthread_mutex_unlock(&auth_smtx);
	return s != NULL;
}

void
auth_session_end(const char *token)
{
	unsigned char h[SHA256_DIGEST_LENGTH];
	struct auth_session *s;

	SHA256((const unsigned char *)token, strlen(token), h);
	pthread_mutex_lock(&auth_smtx);
	if ((s = auth_session_find(h, time_wall())) != NULL)
		memset(s, 0, sizeof(*s));
	pthread_mutex_unlock(&auth_smtx);
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
	pthread_mutex_lock(&auth_smtx);
	memset(auth_sessions, 0, sizeof(auth_sessions));
	pthread_mutex_unlock(&auth_smtx);
	pthread_mutex_lock(&auth_dmtx);
	memset(auth_delays, 0, sizeof(auth_delays));
	pthread_mutex_unlock(&auth_dmtx);
}
