/*
 * dns_test.c -- the resolver against a real unbound (Debian's), started
 * here on a free loopback port and authoritative for "test.": typed
 * answers, split TXT strings, the cache, the session budget, timeouts
 * (a loopback UDP socket that never answers), many threads at once, and
 * reverse names.
 */
#include "t.h"
#include "dns/dns.h"
#include "lib/conf.h"
#include "lib/util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define UNBOUND "/usr/sbin/unbound"

static char	 dir[64];
static pid_t	 unbound_pid;
static int	 unbound_port, silent_fd, silent_port;

/* A UDP socket on a free loopback port; its port in *port. */
static int
udp_bound(int *port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd == -1 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) == -1)
		fatal("udp_bound");
	*port = ntohs(sin.sin_port);
	return fd;
}

static void
unbound_start(void)
{
	char path[128];
	FILE *f;
	int fd;

	snprintf(dir, sizeof(dir), "/tmp/postern-dns-test-XXXXXX");
	if (mkdtemp(dir) == NULL)
		fatal("mkdtemp");
	/* unbound serves UDP and TCP: the port must be free for both */
	for (int i = 0; i < 50; i++) {
		struct sockaddr_in sin = { .sin_family = AF_INET };
		int tcp = socket(AF_INET, SOCK_STREAM, 0), ok;

		fd = udp_bound(&unbound_port);
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sin.sin_port = htons((uint16_t)unbound_port);
		ok = bind(tcp, (struct sockaddr *)&sin, sizeof(sin)) == 0;
		close(tcp);
		close(fd);
		if (ok)
			break;
	}
	silent_fd = udp_bound(&silent_port);
	snprintf(path, sizeof(path), "%s/unbound.conf", dir);
	if ((f = fopen(path, "w")) == NULL)
		fatal("fopen");
	fprintf(f, "server:\n interface: 127.0.0.1\n port: %d\n"
	    " do-not-query-localhost: no\n chroot: \"\"\n username: \"\"\n"
	    " directory: \"%s\"\n pidfile: \"%s/unbound.pid\"\n use-syslog: no\n"
	    " logfile: \"%s/unbound.log\"\n num-threads: 1\n"
	    " local-zone: \".\" refuse\n"
	    " local-zone: \"test.\" static\n"
	    " local-data: \"test. 300 IN SOA ns.test. h.test. 1 3600 600 86400 120\"\n"
	    " local-data: \"a.test. 300 IN A 192.0.2.1\"\n"
	    " local-data: \"a.test. 300 IN A 192.0.2.2\"\n"
	    " local-data: \"a.test. 300 IN AAAA 2001:db8::1\"\n"
	    " local-data: \"mx.test. 300 IN MX 10 mail.a.test.\"\n"
	    " local-data: 'txt.test. 300 IN TXT \"v=spf1 \" \"-all\"'\n"
	    " local-data: \"short.test. 1 IN A 192.0.2.9\"\n"
	    " local-data: \"1.2.0.192.in-addr.arpa. 300 IN PTR a.test.\"\n"
	    " local-zone: \"slow.example.\" transparent\n"
	    "forward-zone:\n name: \"slow.example.\"\n forward-addr: 127.0.0.1@%d\n"
	    "forward-zone:\n name: \".\"\n forward-addr: 127.0.0.1@%d\n",
	    unbound_port, dir, dir, dir, silent_port, silent_port);
	fclose(f);
	if ((unbound_pid = fork()) == -1)
		fatal("fork");
	if (unbound_pid == 0) {
		execl(UNBOUND, "unbound", "-d", "-c", path, (char *)NULL);
		_exit(127);
	}
}

/* Wait (bounded, 30 s: a loaded CI machine starts unbound slowly, more so
 * under ASan) until unbound answers a raw UDP query. Not through
 * libunbound: it would mark a server that is not up yet as down and keep
 * refusing to ask it for a while. */
static void
unbound_wait(void)
{
	static const unsigned char q[] = { 0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0,
	    1, 'a', 4, 't', 'e', 's', 't', 0, 0, 1, 0, 1 };
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct pollfd pfd;
	unsigned char buf[512];
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)unbound_port);
	pfd.fd = fd;
	pfd.events = POLLIN;
	int up = 0;

	for (int i = 0; i < 300 && !up; i++) {
		if (waitpid(unbound_pid, NULL, WNOHANG) == unbound_pid)
			fatalx("unbound exited; see %s/unbound.log", dir);
		if (sendto(fd, q, sizeof(q), 0, (struct sockaddr *)&sin, sizeof(sin)) == -1)
			fatal("sendto");
		if (poll(&pfd, 1, 100) == 1 && recv(fd, buf, sizeof(buf), 0) > 0)
			up = 1;
		else
			usleep(100 * 1000);
	}
	close(fd);
	if (!up)
		fatalx("unbound did not answer within 30 s; see %s/unbound.log", dir);
}

static void
unbound_stop(void)
{
	char cmd[128];

	kill(unbound_pid, SIGTERM);
	waitpid(unbound_pid, NULL, 0);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	close(silent_fd);
}

/* Start the resolver against port with a timeout and cache size. */
static void
resolver_start(int port, long long timeout, int cache)
{
	struct conf *c = conf_defaults();

	free(c->dns_resolver);
	c->dns_resolver = xasprintf("127.0.0.1:%d", port);
	c->dns_timeout_ms = timeout;
	c->dns_cache_size = cache;
	if (dns_init(c) == -1)
		fatalx("dns_init failed");
	conf_unref(c);
}

/* Ask and forget: the status only. */
static int
status_of(const char *name, int type)
{
	struct dns_answer *a = dns_query(name, type, NULL);
	int st = (int)a->status;

	dns_answer_free(a);
	return st;
}

T_CASE(typed_a)
{
	struct dns_answer *a = dns_query("A.Test.", DNS_T_A, NULL);
	char ip[INET_ADDRSTRLEN];

	T_EQ_INT(a->status, DNS_OK);
	T_EQ_INT(a->count, 2);
	if (a->count >= 1) {
		inet_ntop(AF_INET, &a->rr[0].u.a, ip, sizeof(ip));
		T_ASSERT(strcmp(ip, "192.0.2.1") == 0 || strcmp(ip, "192.0.2.2") == 0);
		T_EQ_INT(a->rr[0].rdlen, 4);
	}
	T_ASSERT(a->ttl > 0 && a->ttl <= 300);
	dns_answer_free(a);
	a = dns_query("a.test", DNS_T_AAAA, NULL);
	T_EQ_INT(a->status, DNS_OK);
	T_EQ_INT(a->count, 1);
	dns_answer_free(a);
}

T_CASE(typed_mx_ptr_txt)
{
	struct dns_answer *a = dns_query("mx.test", DNS_T_MX, NULL);

	T_EQ_INT(a->status, DNS_OK);
	if (a->count == 1) {
		T_EQ_INT(a->rr[0].u.mx.pref, 10);
		T_EQ_STR(a->rr[0].u.mx.host, "mail.a.test");
	} else
		T_ASSERT(!"one MX");
	dns_answer_free(a);
	a = dns_query("1.2.0.192.in-addr.arpa", DNS_T_PTR, NULL);
	T_EQ_INT(a->status, DNS_OK);
	if (a->count == 1)
		T_EQ_STR(a->rr[0].u.name, "a.test");
	dns_answer_free(a);
	a = dns_query("txt.test", DNS_T_TXT, NULL);
	T_EQ_INT(a->status, DNS_OK);
	if (a->count == 1) {
		T_EQ_STR(a->rr[0].u.txt.joined, "v=spf1 -all");
		T_EQ_INT(a->rr[0].u.txt.nstrings, 2);
		T_EQ_INT(a->rr[0].u.txt.len, 11);
	} else
		T_ASSERT(!"one TXT");
	dns_answer_free(a);
}

T_CASE(typed_negative)
{
	struct dns_answer *a = dns_query("nope.test", DNS_T_A, NULL);

	T_EQ_INT(a->status, DNS_NXDOMAIN);
	T_EQ_INT(a->count, 0);
	dns_answer_free(a);
	a = dns_query("mx.test", DNS_T_A, NULL);
	T_EQ_INT(a->status, DNS_NODATA);
	T_EQ_INT(a->count, 0);
	dns_answer_free(a);
	/* Names that cannot be on the wire never reach the resolver. */
	a = dns_query("a..test", DNS_T_A, NULL);
	T_EQ_INT(a->status, DNS_NXDOMAIN);
	dns_answer_free(a);
	char big[300];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	a = dns_query(big, DNS_T_A, NULL);
	T_EQ_INT(a->status, DNS_NXDOMAIN);
	dns_answer_free(a);
}

T_CASE(refused_is_temperror)
{
	/* unbound refuses names outside its zones: not an answer. */
	T_EQ_INT(status_of("www.example.org", DNS_T_A), DNS_TEMPERROR);
}

T_CASE(cache_hits)
{
	struct dns_stats s0, s1;
	struct dns_answer *a;

	dns_cache_flush();
	dns_stats_get(&s0);
	a = dns_query("mx.test", DNS_T_MX, NULL);
	dns_answer_free(a);
	a = dns_query("MX.test.", DNS_T_MX, NULL);
	T_EQ_INT(a->status, DNS_OK);
	T_EQ_INT(a->count, 1);
	if (a->count == 1)
		T_EQ_STR(a->rr[0].u.mx.host, "mail.a.test");
	dns_answer_free(a);
	/* negative answers are cached too (SOA minimum 120) */
	T_EQ_INT(status_of("gone.test", DNS_T_TXT), DNS_NXDOMAIN);
	T_EQ_INT(status_of("gone.test", DNS_T_TXT), DNS_NXDOMAIN);
	dns_stats_get(&s1);
	T_EQ_INT(s1.cache_misses - s0.cache_misses, 2);
	T_EQ_INT(s1.cache_hits - s0.cache_hits, 2);
	T_ASSERT(s1.cache_entries >= 2);
}

/* Speculation (dns_spec_*): the cache answers, whatever the case or
 * trailing dot, negative answers too; a name it lacks is a temperror at
 * once and marks the run missed; the budget is charged as usual; the
 * statistics appear at dns_spec_end(1) only. */
static int
spec_status(const char *name, int type, struct dns_budget *b)
{
	struct dns_answer *a = dns_query(name, type, b);
	int st = a->status;

	dns_answer_free(a);
	return st;
}

T_CASE(speculation)
{
	struct dns_budget b = { 10, 0 };
	struct dns_stats s0, s1;

	dns_cache_flush();
	dns_answer_free(dns_query("mx.test", DNS_T_MX, NULL));
	T_EQ_INT(status_of("gone.test", DNS_T_TXT), DNS_NXDOMAIN);
	for (int keep = 0; keep <= 1; keep++) {
		dns_stats_get(&s0);
		dns_spec_begin();
		T_EQ_INT(dns_spec_active(), 1);
		T_EQ_INT(spec_status("MX.Test.", DNS_T_MX, &b), DNS_OK);
		T_EQ_INT(spec_status("gone.test", DNS_T_TXT, &b), DNS_NXDOMAIN);
		T_EQ_INT(dns_spec_missed(), 0);
		T_EQ_INT(spec_status("mx.test", DNS_T_A, &b), DNS_TEMPERROR);
		T_EQ_INT(dns_spec_missed(), 1);
		dns_stats_get(&s1);
		T_EQ_INT(s1.queries - s0.queries, 0);	/* held back */
		dns_spec_end(keep);
		T_EQ_INT(dns_spec_active(), 0);
		dns_stats_get(&s1);
		T_EQ_INT(s1.queries - s0.queries, keep ? 3 : 0);
		T_EQ_INT(s1.cache_hits - s0.cache_hits, keep ? 2 : 0);
		T_EQ_INT(s1.cache_misses - s0.cache_misses, keep ? 1 : 0);
	}
	T_EQ_INT(b.asked, 6);
	T_EQ_INT(b.left, 4);
	/* after it, a question the cache lacks is asked again */
	T_EQ_INT(status_of("mx.test", DNS_T_A), DNS_NODATA);
}

T_CASE(cache_expires)
{
	struct dns_stats s0, s1;
	struct dns_answer *a;

	/* short.test has a TTL of 1 second. */
	a = dns_query("short.test", DNS_T_A, NULL);
	T_EQ_INT(a->status, DNS_OK);
	dns_answer_free(a);
	usleep(1300 * 1000);
	dns_spec_begin();
	T_EQ_INT(status_of("short.test", DNS_T_A), DNS_TEMPERROR);	/* expired */
	T_EQ_INT(dns_spec_missed(), 1);
	dns_spec_end(0);
	dns_stats_get(&s0);
	a = dns_query("short.test", DNS_T_A, NULL);
	T_EQ_INT(a->status, DNS_OK);
	dns_answer_free(a);
	dns_stats_get(&s1);
	T_EQ_INT(s1.cache_misses - s0.cache_misses, 1);
}

T_CASE(budget)
{
	struct conf *c = conf_defaults();
	struct dns_budget b;
	struct dns_answer *a;

	c->dns_session_budget = 2;
	dns_budget_init(&b, c);
	conf_unref(c);
	for (int i = 0; i < 2; i++) {
		a = dns_query("a.test", DNS_T_A, &b);
		T_EQ_INT(a->status, DNS_OK);
		dns_answer_free(a);
	}
	a = dns_query("a.test", DNS_T_A, &b);
	T_EQ_INT(a->status, DNS_BUDGET);
	T_EQ_STR(dns_status_name(a->status), "budget");
	dns_answer_free(a);
	T_EQ_INT(b.asked, 2);
	T_EQ_INT(b.left, 0);
}

T_CASE(forwarded_to_silence)
{
	/* unbound forwards slow.example to a port that never answers; we
	 * must give up at our own timeout, not hang. */
	T_EQ_INT(status_of("x.slow.example", DNS_T_TXT), DNS_TEMPERROR);
}

struct th_arg {
	int	 ok;
};

static void *
th_run(void *p)
{
	struct th_arg *t = p;
	static const char *names[] = { "a.test", "mx.test", "txt.test", "nope.test" };
	static const int types[] = { DNS_T_A, DNS_T_MX, DNS_T_TXT, DNS_T_A };
	static const int want[] = { DNS_OK, DNS_OK, DNS_OK, DNS_NXDOMAIN };

	for (int i = 0; i < 200; i++) {
		int k = i % 4;
		struct dns_answer *a = dns_query(names[k], types[k], NULL);
		t->ok += (int)a->status == want[k];
		dns_answer_free(a);
		if (i % 50 == 0)
			dns_cache_flush();	/* keep libunbound busy too */
	}
	return NULL;
}

T_CASE(threads)
{
	pthread_t th[24];
	struct th_arg args[24];

	memset(args, 0, sizeof(args));
	for (int i = 0; i < 24; i++)
		pthread_create(&th[i], NULL, th_run, &args[i]);
	for (int i = 0; i < 24; i++) {
		pthread_join(th[i], NULL);
		T_EQ_INT(args[i].ok, 200);
	}
}

T_CASE(timeout_silent_resolver)
{
	struct dns_stats s0, s1;
	struct dns_answer *a;

	dns_shutdown();
	resolver_start(silent_port, 200, 100);
	dns_stats_get(&s0);
	a = dns_query("a.test", DNS_T_A, NULL);
	T_EQ_INT(a->status, DNS_TEMPERROR);
	T_EQ_STR(a->why, "timeout");
	dns_answer_free(a);
	/* a timeout is never cached */
	T_EQ_INT(status_of("a.test", DNS_T_A), DNS_TEMPERROR);
	dns_stats_get(&s1);
	T_EQ_INT(s1.timeouts - s0.timeouts, 2);
	dns_shutdown();
	resolver_start(unbound_port, 2000, 100);
}

T_CASE(reverse_names)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6 };
	char out[128];

	inet_pton(AF_INET, "192.0.2.1", &sin.sin_addr);
	T_EQ_INT(dns_reverse_name((struct sockaddr *)&sin, NULL, out, sizeof(out)), 0);
	T_EQ_STR(out, "1.2.0.192.in-addr.arpa");
	T_EQ_INT(dns_reverse_name((struct sockaddr *)&sin, "bl.example", out, sizeof(out)), 0);
	T_EQ_STR(out, "1.2.0.192.bl.example");
	T_EQ_INT(dns_reverse_name((struct sockaddr *)&sin, "bl.example", out, 10), -1);
	inet_pton(AF_INET6, "2001:db8::567:89ab", &sin6.sin6_addr);
	T_EQ_INT(dns_reverse_name((struct sockaddr *)&sin6, NULL, out, sizeof(out)), 0);
	T_EQ_STR(out, "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
	/* every octet width, and the exact fit: 15 + 1 + 2 bytes and the NUL */
	inet_pton(AF_INET, "0.9.10.255", &sin.sin_addr);
	T_EQ_INT(dns_reverse_name((struct sockaddr *)&sin, "bl", out, sizeof(out)), 0);
	T_EQ_STR(out, "255.10.9.0.bl");
	inet_pton(AF_INET, "100.199.200.255", &sin.sin_addr);
	T_EQ_INT(dns_reverse_name((struct sockaddr *)&sin, "ab", out, 19), 0);
	T_EQ_STR(out, "255.200.199.100.ab");
	T_EQ_INT(dns_reverse_name((struct sockaddr *)&sin, "ab", out, 18), -1);
	T_EQ_INT(dns_reverse_name((struct sockaddr *)&sin6, "x", out, 66), 0);
	T_EQ_INT((int)strlen(out), 65);
	T_EQ_INT(dns_reverse_name((struct sockaddr *)&sin6, "x", out, 65), -1);
	sin.sin_family = AF_UNIX;
	T_EQ_INT(dns_reverse_name((struct sockaddr *)&sin, NULL, out, sizeof(out)), -1);
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	T_RUN(reverse_names);
	unbound_start();
	unbound_wait();
	resolver_start(unbound_port, 2000, 100);
	T_RUN(typed_a);
	T_RUN(typed_mx_ptr_txt);
	T_RUN(typed_negative);
	T_RUN(refused_is_temperror);
	T_RUN(cache_hits);
	T_RUN(speculation);
	T_RUN(cache_expires);
	T_RUN(budget);
	T_RUN(forwarded_to_silence);
	T_RUN(threads);
	T_RUN(timeout_silent_resolver);
	dns_shutdown();
	unbound_stop();
	return T_END();
}
