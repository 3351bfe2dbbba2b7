/* rbl_test.c -- the dnsbl_sites parser, answer filters, query names. */
#include "t.h"
#include "policy/rbl.h"

#include <arpa/inet.h>

static struct in_addr
ip4(const char *s)
{
	struct in_addr a;

	inet_pton(AF_INET, s, &a);
	return a;
}

T_CASE(parse_plain_and_weights)
{
	struct rbl_site s[4];
	char why[300];

	T_EQ_INT(rbl_parse("bl.test, wl.test*-5 ,  x.test*2.5", s, 4, why, sizeof(why)), 3);
	T_EQ_STR(s[0].zone, "bl.test");
	T_ASSERT(s[0].weight == 1 && !s[0].filtered);
	T_EQ_STR(s[1].zone, "wl.test");
	T_ASSERT(s[1].weight == -5);
	T_ASSERT(s[2].weight == 2.5);
	T_EQ_INT(rbl_parse("", s, 4, why, sizeof(why)), 0);
	T_EQ_INT(rbl_parse(NULL, s, 4, why, sizeof(why)), 0);
}

T_CASE(parse_filters)
{
	struct rbl_site s[2];
	char why[300];

	T_EQ_INT(rbl_parse("bl.test=127.0.0.[2..11]*3 zen.test=127.0.[0;1].[2;4..5]",
	    s, 2, why, sizeof(why)), 2);
	T_ASSERT(s[0].filtered && s[0].weight == 3);
	T_EQ_INT(rbl_match(&s[0], ip4("127.0.0.2")), 1);
	T_EQ_INT(rbl_match(&s[0], ip4("127.0.0.11")), 1);
	T_EQ_INT(rbl_match(&s[0], ip4("127.0.0.12")), 0);
	T_EQ_INT(rbl_match(&s[0], ip4("127.0.0.1")), 0);
	T_EQ_INT(rbl_match(&s[0], ip4("127.0.1.2")), 0);
	T_EQ_INT(rbl_match(&s[1], ip4("127.0.1.4")), 1);
	T_EQ_INT(rbl_match(&s[1], ip4("127.0.1.3")), 0);
	T_EQ_INT(rbl_match(&s[1], ip4("127.0.0.5")), 1);
}

T_CASE(unfiltered_takes_loopback_answers_only)
{
	struct rbl_site s[1];
	char why[300];

	T_EQ_INT(rbl_parse("bl.test", s, 1, why, sizeof(why)), 1);
	T_EQ_INT(rbl_match(&s[0], ip4("127.0.0.4")), 1);
	T_EQ_INT(rbl_match(&s[0], ip4("10.0.0.4")), 0);
}

T_CASE(parse_errors_name_the_site)
{
	struct rbl_site s[2];
	char why[300];

	const char *bad[] = { "bl.test=127.0.0", "bl.test=127.0.0.256", "bl.test*",
	    "bl.test=127.0.0.[5..2]", "bl.test=127.0.0.[2", "=127.0.0.2", "bl test!",
	    "bl.test*x", "bl.test=127.0.0.2x" };
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why[0] = '\0';
		T_EQ_INT(rbl_parse(bad[i], s, 2, why, sizeof(why)), -1);
		T_ASSERT(strstr(why, "bad DNS list") != NULL || strstr(why, "more than") != NULL);
	}
	T_EQ_INT(rbl_parse("a.test b.test c.test", s, 2, why, sizeof(why)), -1);
	T_ASSERT(strstr(why, "more than 2") != NULL);
}

T_CASE(query_names)
{
	struct sockaddr_in a4 = { .sin_family = AF_INET };
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6 };
	char out[512];

	inet_pton(AF_INET, "192.0.2.1", &a4.sin_addr);
	T_EQ_INT(rbl_name((struct sockaddr *)&a4, "bl.test", out, sizeof(out)), 0);
	T_EQ_STR(out, "1.2.0.192.bl.test");
	inet_pton(AF_INET6, "2001:db8::1", &a6.sin6_addr);
	T_EQ_INT(rbl_name((struct sockaddr *)&a6, "bl.test", out, sizeof(out)), 0);
	T_EQ_STR(out, "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.test");
	inet_pton(AF_INET6, "::ffff:198.51.100.7", &a6.sin6_addr);
	T_EQ_INT(rbl_name((struct sockaddr *)&a6, "bl.test", out, sizeof(out)), 0);
	T_EQ_STR(out, "7.100.51.198.bl.test");
	T_EQ_INT(rbl_name((struct sockaddr *)&a4, "bl.test", out, 10), -1);
}

int
main(void)
{
	T_RUN(parse_plain_and_weights);
	T_RUN(parse_filters);
	T_RUN(unfiltered_takes_loopback_answers_only);
	T_RUN(parse_errors_name_the_site);
	T_RUN(query_names);
	return T_END();
}
