/* access_test.c -- CIDR matching, triplet network math, name entries,
 * entry validation, rate windows. */
#include "t.h"
#include "db/db.h"
#include "policy/access.h"
#include "lib/prefix.h"
#include "policy/rate.h"

#include <arpa/inet.h>
#include <netinet/in.h>

static struct sockaddr_storage ss;

static const struct sockaddr *
sa(const char *ip)
{
	memset(&ss, 0, sizeof(ss));
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		inet_pton(AF_INET6, ip, &s6->sin6_addr);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		inet_pton(AF_INET, ip, &s4->sin_addr);
	}
	return (const struct sockaddr *)&ss;
}

T_CASE(cidr_v4)
{
	struct prefix c;

	T_EQ_INT(prefix_parse("192.0.2.77/24", &c), 0);
	T_EQ_INT(prefix_match(&c, sa("192.0.2.1")), 1);
	T_EQ_INT(prefix_match(&c, sa("192.0.3.1")), 0);
	T_EQ_INT(prefix_match(&c, sa("::ffff:192.0.2.200")), 1);
	T_EQ_INT(prefix_match(&c, sa("2001:db8::1")), 0);
	T_EQ_INT(prefix_parse("10.1.2.3", &c), 0);
	T_EQ_INT(prefix_match(&c, sa("10.1.2.3")), 1);
	T_EQ_INT(prefix_match(&c, sa("10.1.2.4")), 0);
	T_EQ_INT(prefix_parse("0.0.0.0/0", &c), 0);
	T_EQ_INT(prefix_match(&c, sa("203.0.113.9")), 1);
	T_EQ_INT(prefix_parse("10.0.0.0/12", &c), 0);
	T_EQ_INT(prefix_match(&c, sa("10.15.255.255")), 1);
	T_EQ_INT(prefix_match(&c, sa("10.16.0.0")), 0);
}

T_CASE(cidr_v6_and_errors)
{
	struct prefix c;

	T_EQ_INT(prefix_parse("2001:db8:abcd::/47", &c), 0);
	T_EQ_INT(prefix_match(&c, sa("2001:db8:abcd:1::5")), 1);
	T_EQ_INT(prefix_match(&c, sa("2001:db8:abce::5")), 0);
	T_EQ_INT(prefix_match(&c, sa("192.0.2.1")), 0);
	T_EQ_INT(prefix_parse("192.0.2.0/33", &c), -1);
	T_EQ_INT(prefix_parse("192.0.2.0/", &c), -1);
	T_EQ_INT(prefix_parse("192.0.2/24", &c), -1);
	T_EQ_INT(prefix_parse("::/129", &c), -1);
	T_EQ_INT(prefix_parse("example.org", &c), -1);
}

/* Raw bytes, as SPF's ip4:/ip6: and a/mx answers hold them: the net may
 * carry host bits ("ip4:192.0.2.77/24"), which do not count. */
T_CASE(prefix_bytes)
{
	unsigned char a[16], n[16];

	inet_pton(AF_INET, "192.0.2.1", a);
	inet_pton(AF_INET, "192.0.2.77", n);
	T_EQ_INT(prefix_eq(a, n, 24), 1);
	T_EQ_INT(prefix_eq(a, n, 25), 1);
	T_EQ_INT(prefix_eq(a, n, 26), 0);
	T_EQ_INT(prefix_eq(a, n, 32), 0);
	T_EQ_INT(prefix_eq(a, n, 0), 1);
	inet_pton(AF_INET6, "2001:db8:abcd:12::1", a);
	inet_pton(AF_INET6, "2001:db8:abcd:13::", n);
	T_EQ_INT(prefix_eq(a, n, 63), 1);
	T_EQ_INT(prefix_eq(a, n, 64), 0);
	T_EQ_INT(prefix_eq(a, a, 128), 1);
}

T_CASE(triplet_networks)
{
	char net[64];

	T_EQ_INT(prefix_net(sa("192.0.2.77"), 24, 64, net, sizeof(net)), 0);
	T_EQ_STR(net, "192.0.2.0/24");
	T_EQ_INT(prefix_net(sa("192.0.2.77"), 32, 64, net, sizeof(net)), 0);
	T_EQ_STR(net, "192.0.2.77/32");
	T_EQ_INT(prefix_net(sa("192.0.2.77"), 20, 64, net, sizeof(net)), 0);
	T_EQ_STR(net, "192.0.0.0/20");
	T_EQ_INT(prefix_net(sa("::ffff:192.0.2.77"), 24, 64, net, sizeof(net)), 0);
	T_EQ_STR(net, "192.0.2.0/24");
	T_EQ_INT(prefix_net(sa("2001:db8:1:2:3:4:5:6"), 24, 64, net, sizeof(net)), 0);
	T_EQ_STR(net, "2001:db8:1:2::/64");
	T_EQ_INT(prefix_net(sa("2001:db8:1:2:3:4:5:6"), 24, 56, net, sizeof(net)), 0);
	T_EQ_STR(net, "2001:db8:1::/56");
	T_EQ_INT(prefix_net(sa("2001:db8:1:2:3:4:5:6"), 24, 64, net, 8), -1);
}

T_CASE(name_entries)
{
	T_EQ_INT(access_name_match("user@example.org", "User@Example.ORG"), 1);
	T_EQ_INT(access_name_match("user@example.org", "other@example.org"), 0);
	T_EQ_INT(access_name_match("@example.org", "a@example.org"), 1);
	T_EQ_INT(access_name_match("@example.org", "a@sub.example.org"), 0);
	T_EQ_INT(access_name_match("example.org", "a@sub.example.org"), 1);
	T_EQ_INT(access_name_match("example.org", "a@example.org"), 1);
	T_EQ_INT(access_name_match("example.org", "a@badexample.org"), 0);
	T_EQ_INT(access_name_match("example.org", "mail.example.org"), 1);	/* HELO */
	T_EQ_INT(access_name_match("example.org", "example.org.evil"), 0);
}

T_CASE(entry_validation)
{
	char why[200];

	T_EQ_INT(access_valid("client", "192.0.2.0/24", why, sizeof(why)), 0);
	T_EQ_INT(access_valid("client", "192.0.2.0/40", why, sizeof(why)), -1);
	T_EQ_INT(access_valid("sender", "a@example.org", why, sizeof(why)), 0);
	T_EQ_INT(access_valid("sender", "a b@example.org", why, sizeof(why)), -1);
	T_EQ_INT(access_valid("rcpt", "<a@example.org>", why, sizeof(why)), -1);
	T_EQ_INT(access_valid("ip", "1.2.3.4", why, sizeof(why)), -1);
	T_EQ_INT(access_valid("helo", "", why, sizeof(why)), -1);
	/* domains: labels of letters, digits, '-' inside, '_', UTF-8 */
	T_EQ_INT(access_valid("sender", "@example.org", why, sizeof(why)), 0);
	T_EQ_INT(access_valid("rcpt", "xn--bcher-kva.example", why, sizeof(why)), 0);
	T_EQ_INT(access_valid("rcpt", "b\xc3\xbc" "cher.example", why, sizeof(why)), 0);
	T_EQ_INT(access_valid("sender", "a@bad..example", why, sizeof(why)), -1);
	T_EQ_INT(access_valid("sender", "a@-bad.example", why, sizeof(why)), -1);
	T_EQ_INT(access_valid("sender", "a@bad-.example", why, sizeof(why)), -1);
	T_EQ_INT(access_valid("sender", "a@bad!.example", why, sizeof(why)), -1);
	T_EQ_INT(access_valid("sender", "a@", why, sizeof(why)), -1);
	T_EQ_INT(access_valid("sender", "a@b@example.org", why, sizeof(why)), -1);
	T_EQ_INT(access_valid("rcpt", ".example.org", why, sizeof(why)), -1);
	T_EQ_INT(access_valid("helo", "mail.example.org", why, sizeof(why)), 0);
	T_EQ_INT(access_valid("helo", "[192.0.2.1]", why, sizeof(why)), 0);
	T_EQ_INT(access_valid("helo", "[IPv6:2001:db8::1]", why, sizeof(why)), 0);
	T_EQ_INT(access_valid("helo", "192.0.2.1", why, sizeof(why)), 0);
	T_EQ_INT(access_valid("helo", "[192.0.2.0/24]", why, sizeof(why)), -1);
	T_EQ_INT(access_valid("helo", "bad_host!", why, sizeof(why)), -1);
	T_EQ_INT(access_entry_valid("allow", "client", "192.0.2.1", 1, why, sizeof(why)), 0);
	T_EQ_INT(access_entry_valid("maybe", "client", "192.0.2.1", 1, why, sizeof(why)), -1);
	T_EQ_INT(access_entry_valid(NULL, "client", "192.0.2.1", 1, why, sizeof(why)), -1);
	/* an entry an older version let in can still be deleted */
	T_EQ_INT(access_entry_valid("deny", "sender", "a@bad..example", 1, why, sizeof(why)), -1);
	T_EQ_INT(access_entry_valid("deny", "sender", "a@bad..example", 0, why, sizeof(why)), 0);
	T_EQ_INT(access_entry_valid("deny", "moon", "x", 0, why, sizeof(why)), -1);
	T_EQ_INT(access_entry_valid("deny", "sender", "", 0, why, sizeof(why)), -1);
}

T_CASE(rate_windows)
{
	rate_reset();
	T_EQ_INT(rate_hit("192.0.2.1", RATE_CONN, 2, 1000), 0);
	T_EQ_INT(rate_hit("192.0.2.1", RATE_CONN, 2, 2000), 0);
	T_EQ_INT(rate_hit("192.0.2.1", RATE_CONN, 2, 3000), 1);
	T_EQ_INT(rate_hit("192.0.2.1", RATE_MSG, 2, 3000), 0);	/* separate kind */
	T_EQ_INT(rate_hit("192.0.2.2", RATE_CONN, 2, 3000), 0);	/* separate client */
	T_EQ_INT(rate_hit("192.0.2.1", RATE_CONN, 2, 1000 + RATE_WINDOW_MS), 0);	/* new window */
	T_EQ_INT(rate_hit("192.0.2.1", RATE_CONN, 0, 1000), 0);	/* unlimited */
	rate_reset();
}

T_CASE(rate_table_bound)
{
	char k[32];
	int over = 0;

	rate_reset();
	for (int i = 0; i < RATE_MAX_ENTRIES + 10; i++) {
		snprintf(k, sizeof(k), "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
		over += rate_hit(k, RATE_CONN, 1, 5000);
	}
	T_EQ_INT(over, 0);
	/* a minute on, the stale windows are swept to make room */
	T_EQ_INT(rate_hit("192.0.2.99", RATE_CONN, 1, 5000 + RATE_WINDOW_MS), 0);
	T_EQ_INT(rate_hit("192.0.2.99", RATE_CONN, 1, 5001 + RATE_WINDOW_MS), 1);
	rate_reset();
}

/* The cluster's totals merged with this node's counts: the node's own
 * stored part of a total is not counted twice, a failed store is sent
 * again, a client only other nodes saw is counted once it comes here, and
 * a total of an ended window does not count. */
T_CASE(rate_cluster_merge)
{
	const uint64_t now = 2 * RATE_WINDOW_MS + 1000;	/* window 2 */
	struct db_rate_delta *d, row = { .kind = RATE_CONN, .win = 2 },
	    other = { .kind = RATE_CONN, .win = 2 };
	long long win = 2, next = 3;
	size_t n;

	rate_reset();
	T_EQ_INT(rate_hit("192.0.2.1", RATE_CONN, 5, now), 0);
	T_EQ_INT(rate_hit("192.0.2.1", RATE_CONN, 5, now), 0);
	T_EQ_INT(rate_hit("192.0.2.9", RATE_MSG, 5, now), 0);
	d = rate_deltas(now, &n);
	T_EQ_INT((int)n, 2);
	/* sorted by (win, kind, key): the connections first */
	T_EQ_STR(d[0].key, "192.0.2.1");
	T_EQ_INT(d[0].kind, RATE_CONN);
	T_EQ_INT((int)d[0].win, 2);
	T_EQ_INT((int)d[0].n, 2);
	T_EQ_INT(d[1].kind, RATE_MSG);
	rate_stored(d, n);
	rate_deltas_free(d, n);
	d = rate_deltas(now, &n);
	T_EQ_INT((int)n, 0);		/* nothing new since */
	rate_deltas_free(d, n);

	/* the store holds our 2 and another node's 2 */
	row.key = "192.0.2.1";
	row.n = 4;
	T_EQ_INT(rate_cluster(&win, &row), 0);
	T_EQ_INT(rate_over("192.0.2.1", RATE_CONN, 5, now), 0);	/* 4 + 1 */
	T_EQ_INT(rate_over("192.0.2.1", RATE_CONN, 4, now), 1);
	T_EQ_INT(rate_hit("192.0.2.1", RATE_CONN, 5, now), 0);	/* the 5th */
	T_EQ_INT(rate_over("192.0.2.1", RATE_CONN, 5, now), 1);

	/* a store that failed: the delta is offered again, with what came
	 * since; a total read meanwhile still leaves our unstored events in */
	d = rate_deltas(now, &n);
	T_EQ_INT((int)n, 1);
	T_EQ_INT((int)d[0].n, 1);
	rate_deltas_free(d, n);
	T_EQ_INT(rate_hit("192.0.2.1", RATE_CONN, 10, now), 0);
	row.key = "192.0.2.1";
	row.n = 5;			/* our 2, the other node's now 3 */
	T_EQ_INT(rate_cluster(&win, &row), 0);
	T_EQ_INT(rate_over("192.0.2.1", RATE_CONN, 8, now), 0);	/* 4 + 3 */
	T_EQ_INT(rate_over("192.0.2.1", RATE_CONN, 7, now), 1);
	d = rate_deltas(now, &n);
	T_EQ_INT((int)n, 1);
	T_EQ_INT((int)d[0].n, 2);
	rate_stored(d, n);
	rate_deltas_free(d, n);
	row.n = 7;			/* now with our 4 */
	T_EQ_INT(rate_cluster(&win, &row), 0);
	T_EQ_INT(rate_over("192.0.2.1", RATE_CONN, 8, now), 0);	/* still 7 */
	T_EQ_INT(rate_over("192.0.2.1", RATE_CONN, 7, now), 1);

	/* a client only the other nodes saw takes no room here and is not
	 * limited here until it comes; then the next round brings the
	 * others' count to its entry */
	other.key = "192.0.2.2";
	other.n = 5;
	T_EQ_INT(rate_cluster(&win, &other), 0);
	T_EQ_INT(rate_over("192.0.2.2", RATE_CONN, 5, now), 0);
	T_EQ_INT(rate_hit("192.0.2.2", RATE_CONN, 5, now), 0);	/* its 1st here */
	T_EQ_INT(rate_over("192.0.2.2", RATE_CONN, 1, now), 1);	/* 1 + 1 */
	T_EQ_INT(rate_over("192.0.2.2", RATE_CONN, 2, now), 0);
	T_EQ_INT(rate_cluster(&win, &other), 0);		/* the next round */
	T_EQ_INT(rate_over("192.0.2.2", RATE_CONN, 6, now), 1);	/* 1 + 5 + 1 */
	T_EQ_INT(rate_over("192.0.2.2", RATE_CONN, 7, now), 0);
	T_EQ_INT(rate_over("192.0.2.2", RATE_MSG, 1, now), 0);	/* other kind */

	/* the next minute starts empty; a late total of the last is dropped */
	T_EQ_INT(rate_over("192.0.2.1", RATE_CONN, 1, now + RATE_WINDOW_MS), 0);
	T_EQ_INT(rate_hit("192.0.2.1", RATE_CONN, 1, now + RATE_WINDOW_MS), 0);
	T_EQ_INT(rate_cluster(&next, &row), 0);
	T_EQ_INT(rate_cluster(&win, &row), 0);
	T_EQ_INT(rate_over("192.0.2.1", RATE_CONN, 2, now + RATE_WINDOW_MS), 0);
	d = rate_deltas(now + RATE_WINDOW_MS, &n);
	T_EQ_INT((int)n, 1);
	T_EQ_INT((int)d[0].win, 3);
	T_EQ_INT((int)d[0].n, 1);
	rate_deltas_free(d, n);
	rate_reset();
}

/* A flood spread over other nodes: their totals for more clients than the
 * table holds, none of which came here, leave every entry free for the
 * clients that do (each is limited: its second hit is over a limit of 1). */
T_CASE(rate_cluster_flood_leaves_room)
{
	const uint64_t now = 2 * RATE_WINDOW_MS + 1000;	/* window 2 */
	long long win = 2;
	char k[32];
	int over = 0;

	rate_reset();
	for (int i = 0; i < RATE_MAX_ENTRIES + 10; i++) {
		struct db_rate_delta row = { .kind = RATE_CONN, .key = k, .win = 2, .n = 3 };
		snprintf(k, sizeof(k), "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
		T_EQ_INT(rate_cluster(&win, &row), 0);
	}
	for (int i = 0; i < RATE_MAX_ENTRIES; i++) {
		snprintf(k, sizeof(k), "172.%d.%d.%d", 16 + (i >> 16), (i >> 8) & 255, i & 255);
		over += rate_hit(k, RATE_CONN, 1, now);
		over += rate_hit(k, RATE_CONN, 1, now);
	}
	T_EQ_INT(over, RATE_MAX_ENTRIES);
	rate_reset();
}

int
main(void)
{
	T_RUN(cidr_v4);
	T_RUN(cidr_v6_and_errors);
	T_RUN(prefix_bytes);
	T_RUN(triplet_networks);
	T_RUN(name_entries);
	T_RUN(entry_validation);
	T_RUN(rate_windows);
	T_RUN(rate_table_bound);
	T_RUN(rate_cluster_merge);
	T_RUN(rate_cluster_flood_leaves_room);
	return T_END();
}
