/* auth_test.c -- password hashes, sessions and CSRF tokens, login rate
 * limits; expiry runs on the test clock (POSTERN_CLOCK_FILE). */
#include "auth.h"
#include "t.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char clock_path[] = "/tmp/postern-auth-clock-XXXXXX";

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

T_CASE(session_table_bounded)
{
	char first[AUTH_TOKEN_HEX + 1], tok[AUTH_TOKEN_HEX + 1], csrf[AUTH_TOKEN_HEX + 1];
	char user[AUTH_MAX_USER + 1], c2[AUTH_TOKEN_HEX + 1];

	auth_reset();
	auth_session_new("u0", first, csrf);
	for (int i = 1; i <= AUTH_MAX_SESSIONS; i++)
		auth_session_new("un", tok, csrf);
	T_EQ_INT(auth_session_get(first, user, c2), 0);	/* the oldest went */
	T_EQ_INT(auth_session_get(tok, user, c2), 1);
}

T_CASE(rate_per_user)
{
	auth_reset();
	clock_set(0);
	for (int i = 0; i < AUTH_RATE_MAX_USER; i++) {
		T_EQ_INT(auth_rate_allowed("127.0.0.1", "admin"), 1);
		auth_rate_fail("127.0.0.1", "admin");
	}
	T_EQ_INT(auth_rate_allowed("127.0.0.1", "admin"), 0);
	T_EQ_INT(auth_rate_allowed("127.0.0.9", "admin"), 0);	/* any address */
	T_EQ_INT(auth_rate_allowed("127.0.0.1", "other"), 1);
	clock_set(AUTH_RATE_WINDOW);
	T_EQ_INT(auth_rate_allowed("127.0.0.1", "admin"), 1);	/* window over */
	clock_set(0);
}

T_CASE(rate_per_address)
{
	char u[32];

	auth_reset();
	for (int i = 0; i < AUTH_RATE_MAX_IP; i++) {
		snprintf(u, sizeof(u), "user%d", i);
		auth_rate_fail("127.0.0.2", u);
	}
	T_EQ_INT(auth_rate_allowed("127.0.0.2", "fresh"), 0);
	T_EQ_INT(auth_rate_allowed("127.0.0.3", "fresh"), 1);
}

T_CASE(rate_address_only)
{
	auth_reset();
	for (int i = 0; i < AUTH_RATE_MAX_USER + 1; i++)
		auth_rate_fail("127.0.0.6", NULL);
	T_EQ_INT(auth_rate_allowed("127.0.0.7", NULL), 1);	/* no user key */
	T_EQ_INT(auth_rate_allowed("127.0.0.6", NULL), 1);	/* under the address max */
	for (int i = AUTH_RATE_MAX_USER + 1; i < AUTH_RATE_MAX_IP; i++)
		auth_rate_fail("127.0.0.6", NULL);
	T_EQ_INT(auth_rate_allowed("127.0.0.6", NULL), 0);
	T_EQ_INT(auth_rate_allowed("127.0.0.6", "admin"), 0);	/* same address */
}

T_CASE(rate_good_login_clears_user)
{
	auth_reset();
	for (int i = 0; i < AUTH_RATE_MAX_USER - 1; i++)
		auth_rate_fail("127.0.0.4", "dave");
	auth_rate_ok("dave");
	auth_rate_fail("127.0.0.4", "dave");
	T_EQ_INT(auth_rate_allowed("127.0.0.5", "dave"), 1);
}

T_CASE(rate_table_bounded)
{
	char ip[32];

	auth_reset();
	for (int i = 0; i < AUTH_RATE_SLOTS * 2; i++) {
		snprintf(ip, sizeof(ip), "10.%d.%d.1", i / 256, i % 256);
		auth_rate_fail(ip, "x");
	}
	/* Still answering, and the newest address is still tracked. */
	for (int i = 1; i < AUTH_RATE_MAX_IP; i++)
		auth_rate_fail(ip, "y");
	T_EQ_INT(auth_rate_allowed(ip, "z"), 0);
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
	T_RUN(hash_roundtrip);
	T_RUN(hash_is_salted);
	T_RUN(verify_malformed);
	T_RUN(user_names);
	T_RUN(secret_eq);
	T_RUN(session_roundtrip);
	T_RUN(session_wrong_tokens);
	T_RUN(session_idle_and_max_age);
	T_RUN(session_table_bounded);
	T_RUN(rate_per_user);
	T_RUN(rate_per_address);
	T_RUN(rate_address_only);
	T_RUN(rate_good_login_clears_user);
	T_RUN(rate_table_bounded);
	unlink(clock_path);
	return T_END();
}
