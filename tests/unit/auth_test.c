/* auth_test.c -- password hashes, sessions and CSRF tokens (in a database
 * of the test's own), the growing delays after failures; expiry runs on the
 * test clock (POSTERN_CLOCK_FILE). */
#include "web/auth.h"
#include "t.h"
#include "dbrows.h"
#include "db/db.h"
#include "lib/conf.h"
#include "lib/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char clock_path[] = "/tmp/postern-auth-clock-XXXXXX";
static char dir[] = "/tmp/postern-authtest-XXXXXX";
static char path[256];

static void
clock_set(long long off)
{
	FILE *f = fopen(clock_path, "w");

	if (f == NULL)
		abort();
	fprintf(f, "%lld\n", off);
	fclose(f);
}

T_CASE(hash_roundtrip)
{
	char *h = auth_hash("correct horse");

	T_ASSERT(strncmp(h, "pbkdf2-sha256$210000$", 21) == 0);
	T_EQ_INT(auth_verify("correct horse", h), 1);
	T_EQ_INT(auth_verify("correct horsE", h), 0);
	T_EQ_INT(auth_verify("", h), 0);
	free(h);
}

T_CASE(hash_is_salted)
{
	char *a = auth_hash("same"), *b = auth_hash("same");

	T_ASSERT(strcmp(a, b) != 0);
	T_EQ_INT(auth_verify("same", a), 1);
	T_EQ_INT(auth_verify("same", b), 1);
	free(a);
	free(b);
}

T_CASE(verify_malformed)
{
	char *h = auth_hash("pw");
	char *cut = xstrndup(h, strlen(h) - 2);

	T_EQ_INT(auth_verify("pw", "plain"), -1);
	T_EQ_INT(auth_verify("pw", ""), -1);
	T_EQ_INT(auth_verify("pw", cut), -1);
	T_EQ_INT(auth_verify("pw", "md5$1000$00112233445566778899aabbccddeeff$00"), -1);
	T_EQ_INT(auth_verify("pw", "pbkdf2-sha256$10$00112233445566778899aabbccddeeff$"
	    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"), -1);
	T_EQ_INT(auth_verify("pw", NULL), 0);	/* unknown user: no, at full cost */
	free(cut);
	free(h);
}

T_CASE(user_names)
{
	char longname[AUTH_MAX_USER + 2];

	T_EQ_INT(auth_user_ok("admin"), 1);
	T_EQ_INT(auth_user_ok("ops.team-1@example.org"), 1);
	T_EQ_INT(auth_user_ok(""), 0);
	T_EQ_INT(auth_user_ok("a b"), 0);
	T_EQ_INT(auth_user_ok("<script>"), 0);
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	T_EQ_INT(auth_user_ok(longname), 0);
	longname[AUTH_MAX_USER] = '\0';
	T_EQ_INT(auth_user_ok(longname), 1);
}

T_CASE(secret_eq)
{
	T_EQ_INT(auth_secret_eq("token", "token"), 1);
	T_EQ_INT(auth_secret_eq("token", "tokeN"), 0);
	T_EQ_INT(auth_secret_eq("token", "token2"), 0);
	T_EQ_INT(auth_secret_eq("", "x"), 0);
}

T_CASE(session_roundtrip)
{
	char tok[AUTH_TOKEN_HEX + 1], csrf[AUTH_TOKEN_HEX + 1];
	char user[AUTH_MAX_USER + 1], csrf2[AUTH_TOKEN_HEX + 1];

	auth_reset();
	auth_session_new("alice", tok, csrf);
	T_EQ_INT(strlen(tok), AUTH_TOKEN_HEX);
	T_EQ_INT(strlen(csrf), AUTH_TOKEN_HEX);
	T_ASSERT(strcmp(tok, csrf) != 0);
	T_EQ_INT(auth_session_get(tok, user, csrf2), 1);
	T_EQ_STR(user, "alice");
	T_EQ_STR(csrf2, csrf);
	auth_session_end(tok);
	T_EQ_INT(auth_session_get(tok, user, csrf2), 0);
}

T_CASE(session_wrong_tokens)
{
	char tok[AUTH_TOKEN_HEX + 1], csrf[AUTH_TOKEN_HEX + 1];
	char user[AUTH_MAX_USER + 1], c2[AUTH_TOKEN_HEX + 1];

	auth_reset();
	auth_session_new("bob", tok, csrf);
	T_EQ_INT(auth_session_get("", user, c2), 0);
	T_EQ_INT(auth_session_get("abc", user, c2), 0);
	T_EQ_INT(auth_session_get(csrf, user, c2), 0);	/* the CSRF token is no key */
	tok[0] = tok[0] == 'a' ? 'b' : 'a';
	T_EQ_INT(auth_session_get(tok, user, c2), 0);
}

T_CASE(session_idle_and_max_age)
{
	char tok[AUTH_TOKEN_HEX + 1], csrf[AUTH_TOKEN_HEX + 1];
	char user[AUTH_MAX_USER + 1], c2[AUTH_TOKEN_HEX + 1];

	auth_reset();
	clock_set(0);
	auth_session_new("carol", tok, csrf);
	clock_set(AUTH_SESSION_IDLE - 10);
	T_EQ_INT(auth_session_get(tok, user, c2), 1);	/* refreshes idle time */
	clock_set(2 * AUTH_SESSION_IDLE - 20);
	T_EQ_INT(auth_session_get(tok, user, c2), 1);
	clock_set(AUTH_SESSION_MAX_AGE + 1);		/* active, but too old */
	T_EQ_INT(auth_session_get(tok, user, c2), 0);

	auth_session_new("carol", tok, csrf);
	clock_set(AUTH_SESSION_MAX_AGE + 1 + AUTH_SESSION_IDLE + 1);
	T_EQ_INT(auth_session_get(tok, user, c2), 0);	/* idle too long */
	clock_set(0);
}

/* Only the token's hash is stored; expired rows are deleted by a later
 * login, live ones kept; auth_reset ends every session. */
T_CASE(session_stored_hashed_and_pruned)
{
	char old[AUTH_TOKEN_HEX + 1], tok[AUTH_TOKEN_HEX + 1], csrf[AUTH_TOKEN_HEX + 1];
	char user[AUTH_MAX_USER + 1], c2[AUTH_TOKEN_HEX + 1], q[200];

	auth_reset();
	clock_set(0);
	T_EQ_INT(auth_session_new("dave", old, csrf), 0);
	T_EQ_INT(auth_session_new("erin", tok, csrf), 0);
	snprintf(q, sizeof(q), "web_sessions WHERE hash = '%s'", old);
	T_EQ_INT(dbrows_count(path, q), 0);		/* never the token itself */
	T_EQ_INT(dbrows_count(path, "web_sessions"), 2);
	clock_set(AUTH_SESSION_IDLE - 5);
	T_EQ_INT(auth_session_get(tok, user, c2), 1);	/* erin stays active */
	clock_set(AUTH_SESSION_IDLE + 5);
	T_EQ_INT(auth_session_new("frank", c2, csrf), 0);	/* prunes dave's */
	T_EQ_INT(dbrows_count(path, "web_sessions"), 2);
	T_EQ_INT(auth_session_get(old, user, c2), 0);
	T_EQ_INT(auth_session_get(tok, user, c2), 1);
	T_EQ_STR(user, "erin");
	auth_reset();
	T_EQ_INT(dbrows_count(path, "web_sessions"), 0);
	T_EQ_INT(auth_session_get(tok, user, c2), 0);
	clock_set(0);
}

/* Fail n times; the wait that follows. */
static int
fail_n(const char *addr, const char *user, int n)
{
	for (int i = 0; i < n; i++)
		auth_delay_fail(addr, user);
	return auth_delay_wait(addr, user);
}

/* The test clock is the real one plus an offset, and a second may tick
 * between a failure and the look at its wait: one second less is right too.
 * Waits that must be over are checked exactly. */
#define T_WAIT(got, want) do { int _g = (got), _w = (want); \
	T_ASSERT(_g == _w || _g == _w - 1); } while (0)

T_CASE(delay_grows_per_user_and_address)
{
	auth_reset();
	clock_set(0);
	T_EQ_INT(fail_n("127.0.0.1", "admin", AUTH_DELAY_FREE - 1), 0);
	T_WAIT(fail_n("127.0.0.1", "admin", 1), 1);		/* 2^0 */
	T_EQ_INT(auth_delay_wait("127.0.0.9", "admin"), 0);	/* elsewhere: nothing */
	T_EQ_INT(auth_delay_wait("127.0.0.1", "other"), 0);	/* other users: nothing */
	T_WAIT(fail_n("127.0.0.1", "admin", 1), 2);
	T_WAIT(fail_n("127.0.0.1", "admin", 1), 4);
	clock_set(2);
	T_WAIT(auth_delay_wait("127.0.0.1", "admin"), 2);
	clock_set(4);
	T_EQ_INT(auth_delay_wait("127.0.0.1", "admin"), 0);	/* the wait is over */
	clock_set(0);
}

T_CASE(delay_clock_stepped_back)
{
	auth_reset();
	clock_set(0);
	T_WAIT(fail_n("127.0.0.8", "fay", AUTH_DELAY_FREE + 2), 4);
	clock_set(-3600);			/* an NTP step back */
	T_EQ_INT(auth_delay_wait("127.0.0.8", "fay"), 4);
	clock_set(0);
}

T_CASE(delay_good_login_starts_afresh)
{
	auth_reset();
	clock_set(0);
	T_WAIT(fail_n("127.0.0.4", "dave", AUTH_DELAY_FREE), 1);
	clock_set(1);
	T_EQ_INT(auth_delay_wait("127.0.0.4", "dave"), 0);
	auth_delay_ok("127.0.0.4", "dave");
	T_EQ_INT(fail_n("127.0.0.4", "dave", AUTH_DELAY_FREE - 1), 0);
	clock_set(0);
}

T_CASE(delay_capped_and_forgotten)
{
	auth_reset();
	clock_set(0);
	T_WAIT(fail_n("127.0.0.5", "erin", AUTH_DELAY_FREE + 9), 512);
	T_WAIT(fail_n("127.0.0.5", "erin", 1), AUTH_DELAY_MAX);
	T_WAIT(fail_n("127.0.0.5", "erin", 200), AUTH_DELAY_MAX);	/* no overflow */
	clock_set(AUTH_DELAY_FORGET);
	T_EQ_INT(auth_delay_wait("127.0.0.5", "erin"), 0);
	T_EQ_INT(fail_n("127.0.0.5", "erin", 1), 0);		/* counting anew */
	clock_set(0);
}

T_CASE(delay_per_address_over_user_names)
{
	char u[32];

	auth_reset();
	clock_set(0);
	for (int i = 0; i < AUTH_DELAY_FREE_ADDR + 2; i++) {
		snprintf(u, sizeof(u), "user%d", i);
		if (i < AUTH_DELAY_FREE_ADDR)
			T_EQ_INT(auth_delay_wait("127.0.0.2", u), 0);
		auth_delay_fail("127.0.0.2", u);
	}
	T_WAIT(auth_delay_wait("127.0.0.2", "fresh"), 4);
	T_EQ_INT(auth_delay_wait("127.0.0.3", "fresh"), 0);
	T_EQ_INT(auth_delay_wait("127.0.0.2", NULL), 0);	/* tokens are apart */
}

T_CASE(delay_tokens_apart_from_logins)
{
	auth_reset();
	clock_set(0);
	T_EQ_INT(fail_n("127.0.0.6", NULL, AUTH_DELAY_FREE_ADDR - 1), 0);
	T_WAIT(fail_n("127.0.0.6", NULL, 3), 4);
	T_EQ_INT(auth_delay_wait("127.0.0.7", NULL), 0);
	T_EQ_INT(auth_delay_wait("127.0.0.6", "admin"), 0);	/* logins unaffected */
}

T_CASE(delay_table_bounded)
{
	char ip[32];

	auth_reset();
	clock_set(0);
	T_EQ_INT(fail_n("10.255.255.1", "x", AUTH_DELAY_FREE + 9), 512);
	for (int i = 0; i < AUTH_DELAY_SLOTS * 2; i++) {
		snprintf(ip, sizeof(ip), "10.%d.%d.1", i / 256, i % 256);
		auth_delay_fail(ip, "x");
	}
	/* Still answering; the one that kept failing is still tracked (the
	 * flood takes seconds on the real clock, far less than its wait). */
	T_ASSERT(auth_delay_wait("10.255.255.1", "x") > 400);
}

int
main(void)
{
	int fd = mkstemp(clock_path);

	if (fd == -1)
		abort();
	close(fd);
	setenv("POSTERN_CLOCK_FILE", clock_path, 1);
	clock_set(0);
	if (mkdtemp(dir) == NULL)
		abort();
	snprintf(path, sizeof(path), "%s/auth.db", dir);
	struct conf *c = conf_defaults();
	free(c->db_path);
	c->db_path = xstrdup(path);
	log_set_level(LOG_LVL_ERR);
	if (db_open(c, 0) == -1)
		abort();
	T_RUN(hash_roundtrip);
	T_RUN(hash_is_salted);
	T_RUN(verify_malformed);
	T_RUN(user_names);
	T_RUN(secret_eq);
	T_RUN(session_roundtrip);
	T_RUN(session_wrong_tokens);
	T_RUN(session_idle_and_max_age);
	T_RUN(session_stored_hashed_and_pruned);
	T_RUN(delay_grows_per_user_and_address);
	T_RUN(delay_clock_stepped_back);
	T_RUN(delay_good_login_starts_afresh);
	T_RUN(delay_capped_and_forgotten);
	T_RUN(delay_per_address_over_user_names);
	T_RUN(delay_tokens_apart_from_logins);
	T_RUN(delay_table_bounded);
	unlink(clock_path);
	db_close();
	conf_unref(c);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		return 1;
	return T_END();
}
