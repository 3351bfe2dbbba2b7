/*
 * authres_test.c -- Authentication-Results hygiene: authserv-id parsing in
 * every form a forger may try (comments, quotes, folding, case, trailing
 * dot), which fields get skip ranges, and property value cleaning.
 */
#include "t.h"
#include "policy/authres.h"
#include "policy/msghdr.h"
#include "policy/policy.h"

#include <stdlib.h>
#include <strings.h>

static int
servid(const char *v, char *out)
{
	return authres_servid(v, strlen(v), out, AUTHRES_SERVID_MAX + 1);
}

T_CASE(servid_plain)
{
	char id[AUTHRES_SERVID_MAX + 1];

	T_EQ_INT(servid(" mx.example.org; spf=pass", id), 0);
	T_EQ_STR(id, "mx.example.org");
	T_EQ_INT(servid("mx.example.org 1; none", id), 0);	/* version */
	T_EQ_STR(id, "mx.example.org");
	T_EQ_INT(servid("mx.example.org;dkim=pass", id), 0);
	T_EQ_STR(id, "mx.example.org");
}

T_CASE(servid_cfws_quotes_folding)
{
	char id[AUTHRES_SERVID_MAX + 1];

	T_EQ_INT(servid(" (a (nested) comment \\) ) \r\n\tMX.Example.ORG.; spf=pass", id), 0);
	T_EQ_STR(id, "MX.Example.ORG");
	T_EQ_INT(servid(" \"mx.example.org\"; spf=pass", id), 0);
	T_EQ_STR(id, "mx.example.org");
	T_EQ_INT(servid(" \"mx.exa\\mple.org\"", id), 0);	/* quoted-pair */
	T_EQ_STR(id, "mx.example.org");
}

T_CASE(servid_none_or_too_long)
{
	char id[AUTHRES_SERVID_MAX + 1], big[400];

	T_EQ_INT(servid("   ", id), -1);
	T_EQ_INT(servid(" (only a comment)", id), -1);
	T_EQ_INT(servid(" ; spf=pass", id), -1);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	T_EQ_INT(servid(big, id), -1);
}

static const char msg[] =
	"Received: from x\r\n"
	"Authentication-Results: mx.example.org; spf=pass smtp.mailfrom=a@b.example\r\n"
	"authentication-results:\r\n (forged, folded)\r\n\tMX.EXAMPLE.ORG;\r\n dkim=pass\r\n"
	"Authentication-Results: other.example.net; spf=fail\r\n"
	"Authentication-Results : \"mx.example.org.\"; dmarc=pass\r\n"
	"Authentication-Results: mx.example.org.evil.example; dkim=pass\r\n"
	"Subject: hi\r\n"
	"\r\n"
	"Authentication-Results: mx.example.org; body text, not a header\r\n";

T_CASE(skips_only_ours)
{
	struct pol_skip *s;
	const char *p;
	int n = authres_skips(msg, sizeof(msg) - 1, "mx.example.org", &s);

	T_EQ_INT(n, 3);
	if (n != 3)
		return;
	p = strstr(msg, "Authentication-Results: mx.example.org;");
	T_EQ_INT(s[0].off, p - msg);
	T_EQ_INT(s[0].len, strlen("Authentication-Results: mx.example.org; spf=pass smtp.mailfrom=a@b.example\r\n"));
	p = strstr(msg, "authentication-results:");
	T_EQ_INT(s[1].off, p - msg);
	T_EQ_INT(s[1].len, strlen("authentication-results:\r\n (forged, folded)\r\n\tMX.EXAMPLE.ORG;\r\n dkim=pass\r\n"));
	p = strstr(msg, "Authentication-Results : ");
	T_EQ_INT(s[2].off, p - msg);
	/* sorted, non-overlapping */
	T_ASSERT(s[0].off + s[0].len <= s[1].off);
	T_ASSERT(s[1].off + s[1].len <= s[2].off);
	free(s);
}

T_CASE(skips_none)
{
	struct pol_skip *s;

	T_EQ_INT(authres_skips(msg, sizeof(msg) - 1, "mx2.example.org", &s), 0);
	T_ASSERT(s == NULL);
	T_EQ_INT(authres_skips(msg, sizeof(msg) - 1, "", &s), 0);
	T_EQ_INT(authres_skips("", 0, "mx.example.org", &s), 0);
}

T_CASE(skips_hostname_trailing_dot_and_last_field)
{
	static const char m[] = "Authentication-Results: mx.example.org; none";
	struct pol_skip *s;

	/* a header without final CRLF and no body still counts */
	T_EQ_INT(authres_skips(m, sizeof(m) - 1, "mx.example.org.", &s), 1);
	if (s != NULL)
		T_EQ_INT(s[0].len, sizeof(m) - 1);
	free(s);
}

/* Fields only Postern writes go whatever the hostname: X-Spam-* and
 * X-Postern-*, folded or with space before the colon; look-alikes and
 * the body stay. */
T_CASE(skips_our_own_names)
{
	static const char m[] =
	    "X-Spam-Flag: NO\r\n"
	    "x-spam-score:\r\n -100\r\n"
	    "X-Spam: not ours\r\n"
	    "X-Spammer: not ours\r\n"
	    "X-Spam-Status : No, score=-100\r\n"
	    "Subject: hi\r\n"
	    "X-Postern-Released: forged\r\n"
	    "\r\n"
	    "X-Spam-Flag: YES in the body\r\n";
	static const char *gone[] = { "X-Spam-Flag: NO\r\n",
	    "x-spam-score:\r\n -100\r\n", "X-Spam-Status : No, score=-100\r\n",
	    "X-Postern-Released: forged\r\n" };
	struct pol_skip *s;
	int n = authres_skips(m, sizeof(m) - 1, "", &s);

	T_EQ_INT(n, 4);
	for (int i = 0; i < n && i < 4; i++) {
		T_EQ_INT(s[i].off, strstr(m, gone[i]) - m);
		T_EQ_INT(s[i].len, strlen(gone[i]));
	}
	free(s);
}

T_CASE(value_cleaned)
{
	char out[32];

	T_EQ_STR(authres_value("example.org\r\nX-Evil: 1", out, sizeof(out)),
	    "example.orgX-Evil1");
	T_EQ_STR(authres_value("a;b (c) \"d\"", out, sizeof(out)), "abcd");
	T_EQ_STR(authres_value("@ex.org", out, sizeof(out)), "@ex.org");
	T_EQ_STR(authres_value("ab+/cd==", out, 5), "ab+/");
	T_EQ_STR(authres_value(NULL, out, sizeof(out)), "");
}

T_CASE(msghdr_walk)
{
	static const char m[] = "A: 1\r\nB:\r\n 2\r\n\t3\r\nnocolon\r\n\r\nC: body\r\n";
	struct msghdr_field f;
	size_t pos = 0;
	char *v;

	T_EQ_INT(msghdr_next(m, sizeof(m) - 1, &pos, &f), 1);
	T_ASSERT(msghdr_is(&f, "a"));
	T_EQ_INT(msghdr_next(m, sizeof(m) - 1, &pos, &f), 1);
	T_ASSERT(msghdr_is(&f, "B"));
	v = msghdr_unfold(&f);
	T_EQ_STR(v, " 2\t3");
	free(v);
	T_EQ_INT(msghdr_next(m, sizeof(m) - 1, &pos, &f), 1);
	T_ASSERT(f.name == NULL);
	T_EQ_INT(msghdr_next(m, sizeof(m) - 1, &pos, &f), 0);
}

/* Hostile headers: random bytes over the characters the parser cares
 * about. Ranges must stay inside the message, sorted, non-overlapping, and
 * each must start a field named Authentication-Results. Seeded. */
T_CASE(hostile_headers)
{
	static const char alpha[] = "()\"\\; \t\r\n:mx.AUTHENTICATION-results";
	static const char pre[] = "Authentication-Results:";
	char buf[400];
	unsigned seed = 777;
	int hits = 0;

	for (int n = 0; n < 20000; n++) {
		size_t len = sizeof(pre) - 1 + (seed = seed * 1103515245 + 12345) % 300;
		struct pol_skip *s;
		int k;

		memcpy(buf, pre, sizeof(pre) - 1);
		for (size_t i = sizeof(pre) - 1; i < len; i++)
			buf[i] = alpha[((seed = seed * 1103515245 + 12345) >> 16) %
			    (sizeof(alpha) - 1)];
		k = authres_skips(buf, len, "mx", &s);
		for (int i = 0; i < k; i++) {
			T_ASSERT(s[i].off + s[i].len <= len);
			T_ASSERT(i == 0 || s[i - 1].off + s[i - 1].len <= s[i].off);
			T_ASSERT(strncasecmp(buf + s[i].off, pre, sizeof(pre) - 2) == 0);
		}
		hits += k;
		free(s);
	}
	T_ASSERT(hits > 0);
}

int
main(void)
{
	T_RUN(servid_plain);
	T_RUN(servid_cfws_quotes_folding);
	T_RUN(servid_none_or_too_long);
	T_RUN(skips_only_ours);
	T_RUN(skips_none);
	T_RUN(skips_hostname_trailing_dot_and_last_field);
	T_RUN(skips_our_own_names);
	T_RUN(value_cleaned);
	T_RUN(msghdr_walk);
	T_RUN(hostile_headers);
	return T_END();
}
