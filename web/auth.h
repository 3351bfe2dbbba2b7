/*
 * auth.h -- who may use the dashboard and the API: password hashes, login
 * sessions with their CSRF tokens, the API bearer token, and the growing
 * delays after failed attempts.
 *
 * Passwords are stored as "pbkdf2-sha256$ITER$SALT$KEY" (hex), made by
 * PKCS5_PBKDF2_HMAC with SHA-256 and AUTH_PBKDF2_ITER rounds (OWASP's 2023
 * floor is 600k for SHA-256; we stay above the 200k our brief demands and
 * keep a login near 0.1 s on a small core). Every secret comparison goes
 * through CRYPTO_memcmp over fixed-length digests, so neither content nor
 * length leaks through timing.
 *
 * Sessions live in the database (db_session_*), so a login made on one
 * node of a cluster is valid on every node and survives a restart, and a
 * logout anywhere ends it everywhere: a random 256-bit cookie token (only
 * its SHA-256 is stored), a random CSRF token, the user, and idle /
 * absolute expiry on the test-controllable wall clock (time_wall()).
 * Expired rows are deleted by a login at most every AUTH_SESSION_PRUNE.
 *
 * Public calls: auth_hash, auth_verify, auth_user_ok, auth_secret_eq,
 *   auth_session_new, auth_session_get, auth_session_end, auth_delay_*,
 *   auth_reset.
 * Ownership: auth_hash() returns an xmalloc'd string; all other state is
 *   static here.
 * Thread: every call is safe from any thread after db_open() (a mutex for
 *   the delay table; hashing runs outside it). The failure delays stay
 *   per process: each node of a cluster throttles the guesses it sees.
 */
#ifndef POSTERN_AUTH_H
#define POSTERN_AUTH_H

#include <stddef.h>

#define AUTH_PBKDF2_ITER	210000
#define AUTH_SALT_LEN		16	/* bytes */
#define AUTH_KEY_LEN		32	/* bytes of derived key */
#define AUTH_MAX_PASSWORD	1024	/* bytes; longer is refused, not cut */
#define AUTH_MAX_USER		64	/* bytes of a user name */
#define AUTH_TOKEN_HEX		64	/* hex chars of a session or CSRF token */
#define AUTH_SESSION_IDLE	(8 * 3600)	/* seconds without a request */
#define AUTH_SESSION_MAX_AGE	(24 * 3600)	/* seconds since login */
#define AUTH_SESSION_PRUNE	600	/* seconds between deletes of expired ones */
/*
 * Throttling failed attempts: never a lockout of the right password. Each
 * key counts failures; past its free allowance every further attempt must
 * wait 2^(failures - free) seconds after the last failure, up to
 * AUTH_DELAY_MAX, and is answered 429 with Retry-After meanwhile. Keys:
 * the pair (user, client address) for logins, with AUTH_DELAY_FREE; the
 * client address alone for logins under any name (password spraying), with
 * AUTH_DELAY_FREE_ADDR; and the client address for wrong bearer tokens,
 * with AUTH_DELAY_FREE_ADDR, kept apart so a valid token (checked first) is
 * never refused for others' failures. A good login clears its pair. A key
 * is forgotten AUTH_DELAY_FORGET after its last failure; the table has
 * AUTH_DELAY_SLOTS keys, and when full the key with the fewest failures
 * (the oldest among them) makes room: a flood of new keys evicts one-off
 * strays, not the address that keeps failing.
 */
#define AUTH_DELAY_FREE		5	/* failures of one user from one address */
#define AUTH_DELAY_FREE_ADDR	20	/* failures from one address, any user */
#define AUTH_DELAY_MAX		600	/* seconds: the longest wait */
#define AUTH_DELAY_FORGET	3600	/* seconds after the last failure */
#define AUTH_DELAY_SLOTS	4096

/* A new hash of password with a fresh random salt (xmalloc'd). */
char	*auth_hash(const char *password);
/* 1 when password matches stored, 0 when not, -1 when stored is malformed.
 * With stored NULL it still spends one hash (unknown users cost the same). */
int	 auth_verify(const char *password, const char *stored);
/* A user name we accept: 1..AUTH_MAX_USER of [A-Za-z0-9._@-]. */
int	 auth_user_ok(const char *);
/* Constant-time equality of two secrets of any length (1 equal). */
int	 auth_secret_eq(const char *a, const char *b);

/* Start a session for user: fills token and csrf (AUTH_TOKEN_HEX + 1).
 * 0, or -1 when the database did not store it (logged). */
int	 auth_session_new(const char *user, char *token, char *csrf);
/* Look a cookie token up: 1 and user/csrf filled (user AUTH_MAX_USER + 1,
 * csrf AUTH_TOKEN_HEX + 1) when live, which also refreshes its idle time;
 * 0 when unknown or expired; -1 when the database failed (logged). */
int	 auth_session_get(const char *token, char *user, char *csrf);
/* End the session (logout) on every node: 0, or -1 on a database error. */
int	 auth_session_end(const char *token);

/* Seconds before addr may try again: user's password (user non-NULL) or a
 * bearer token (user NULL); 0 = now. addr is the client address, or its
 * network for IPv6 (see web.c). */
int	 auth_delay_wait(const char *addr, const char *user);
/* Count a failed login (both its keys) or, user NULL, a wrong token. */
void	 auth_delay_fail(const char *addr, const char *user);
/* A good login: the (user, addr) pair starts afresh. */
void	 auth_delay_ok(const char *addr, const char *user);

/* Forget every session and failure count (tests). */
void	 auth_reset(void);

#endif
