/*
 * auth.h -- who may use the dashboard and the API: password hashes, login
 * sessions with their CSRF tokens, the API bearer token, and the login
 * rate limiter.
 *
 * Passwords are stored as "pbkdf2-sha256$ITER$SALT$KEY" (hex), made by
 * PKCS5_PBKDF2_HMAC with SHA-256 and AUTH_PBKDF2_ITER rounds (OWASP's 2023
 * floor is 600k for SHA-256; we stay above the 200k our brief demands and
 * keep a login near 0.1 s on a small core). Every secret comparison goes
 * through CRYPTO_memcmp over fixed-length digests, so neither content nor
 * length leaks through timing.
 *
 * Sessions live in memory only (a restart logs everyone out): a random
 * 256-bit cookie token, a random CSRF token, the user, and idle / absolute
 * expiry on the test-controllable wall clock (time_wall()).
 *
 * Public calls: auth_hash, auth_verify, auth_user_ok, auth_secret_eq,
 *   auth_session_new, auth_session_get, auth_session_end, auth_rate_*,
 *   auth_reset.
 * Ownership: auth_hash() returns an xmalloc'd string; all other state is
 *   static here.
 * Thread: every call is safe from any thread (one mutex each for sessions
 *   and the rate table; hashing runs outside the locks).
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
#define AUTH_MAX_SESSIONS	1024	/* past it the least recently used goes */
#define AUTH_SESSION_IDLE	(8 * 3600)	/* seconds without a request */
#define AUTH_SESSION_MAX_AGE	(24 * 3600)	/* seconds since login */
/* Failed logins allowed per window, per client address and per user name;
 * past either the login answers 429 until the window ends. */
#define AUTH_RATE_WINDOW	900	/* seconds */
#define AUTH_RATE_MAX_IP	20
#define AUTH_RATE_MAX_USER	5
#define AUTH_RATE_SLOTS		4096	/* keys tracked; the oldest is reused */

/* A new hash of password with a fresh random salt (xmalloc'd). */
char	*auth_hash(const char *password);
/* 1 when password matches stored, 0 when not, -1 when stored is malformed.
 * With stored NULL it still spends one hash (unknown users cost the same). */
int	 auth_verify(const char *password, const char *stored);
/* A user name we accept: 1..AUTH_MAX_USER of [A-Za-z0-9._@-]. */
int	 auth_user_ok(const char *);
/* Constant-time equality of two secrets of any length (1 equal). */
int	 auth_secret_eq(const char *a, const char *b);

/* Start a session for user: fills token and csrf (AUTH_TOKEN_HEX + 1). */
void	 auth_session_new(const char *user, char *token, char *csrf);
/* Look a cookie token up: 1 and user/csrf filled (user AUTH_MAX_USER + 1,
 * csrf AUTH_TOKEN_HEX + 1) when live, which also refreshes its idle time;
 * 0 when unknown or expired. */
int	 auth_session_get(const char *token, char *user, char *csrf);
void	 auth_session_end(const char *token);

/* May this address try to log in as user now? 1 yes, 0 no (answer 429).
 * user NULL: the address alone (bearer tokens: one bad script must not
 * lock every script out). */
int	 auth_rate_allowed(const char *ip, const char *user);
/* Count a failed login against both keys (the address alone for NULL). */
void	 auth_rate_fail(const char *ip, const char *user);
/* A good login clears the user's count (the address keeps its own). */
void	 auth_rate_ok(const char *user);

/* Forget every session and rate count (tests). */
void	 auth_reset(void);

#endif
