/*
 * spf_bench.c -- SPF evaluations per second with a warm cache.
 *
 *   spf_bench -c FILE --ip IP --from ADDR [--helo NAME] [-n COUNT] [-t THREADS]
 *
 * Starts the resolver from the config, evaluates the identity once to warm
 * the cache, then COUNT times in each of THREADS threads through
 * spf_check_host(), and prints one JSON line: evaluations, seconds, rate,
 * rate per thread, and the result (so a broken setup cannot pass for fast).
 * Not a test: numbers vary 2-3x on shared machines.
 */
#include "lib/conf.h"
#include "dns/dns.h"
#include "policy/spf.h"
#include "lib/util.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct bench {
	struct spf_query q;
	long	 n;
	int	 mismatches;
	enum spf_result want;
};

static void *
bench_run(void *p)
{
	struct bench *b = p;
	struct spf_outcome o;

	for (long i = 0; i < b->n; i++) {
		spf_check_host(&b->q, &o);
		if (o.result != b->want)
			b->mismatches++;
		spf_outcome_clear(&o);
	}
	return NULL;
}

int
main(int argc, char **argv)
{
	const char *cf = NULL, *ip = NULL, *from = NULL, *helo = "bench.test";
	struct sockaddr_storage ss;
	struct conf_err *errs;
	struct spf_outcome o;
	struct conf *c;
	long n = 20000;
	int nerrs, threads = 1;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "-c") == 0) cf = argv[i + 1];
		else if (strcmp(argv[i], "--ip") == 0) ip = argv[i + 1];
		else if (strcmp(argv[i], "--from") == 0) from = argv[i + 1];
		else if (strcmp(argv[i], "--helo") == 0) helo = argv[i + 1];
		else if (strcmp(argv[i], "-n") == 0) n = atol(argv[i + 1]);
		else if (strcmp(argv[i], "-t") == 0) threads = atoi(argv[i + 1]);
	}
	if (cf == NULL || ip == NULL || from == NULL || strchr(from, '@') == NULL ||
	    threads < 1 || threads > 256 || n < 1) {
		fprintf(stderr, "usage: spf_bench -c FILE --ip IP --from ADDR [-n N] [-t T]\n");
		return 2;
	}
	log_init("spf_bench", 0);
	if ((c = conf_load(cf, &errs, &nerrs)) == NULL || dns_init(c) == -1)
		return 1;
	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, ip, &((struct sockaddr_in *)&ss)->sin_addr) == 1)
		ss.ss_family = AF_INET;
	else if (inet_pton(AF_INET6, ip, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1)
		ss.ss_family = AF_INET6;
	else
		return 2;

	struct bench *b = xcalloc((size_t)threads, sizeof(*b));
	pthread_t *th = xcalloc((size_t)threads, sizeof(*th));
	for (int i = 0; i < threads; i++) {
		b[i].q.ip = (struct sockaddr *)&ss;
		b[i].q.sender = from;
		b[i].q.helo = helo;
		b[i].q.domain = strchr(from, '@') + 1;
		b[i].n = n;
	}
	spf_check_host(&b[0].q, &o);	/* warm the cache */
	for (int i = 0; i < threads; i++)
		b[i].want = o.result;
	uint64_t t0 = time_mono_ms();
	for (int i = 0; i < threads; i++)
		pthread_create(&th[i], NULL, bench_run, &b[i]);
	int bad = 0;
	for (int i = 0; i < threads; i++) {
		pthread_join(th[i], NULL);
		bad += b[i].mismatches;
	}
	double secs = (double)(time_mono_ms() - t0) / 1000.0;
	struct dns_stats st;
	dns_stats_get(&st);
	printf("{\"result\": \"%s\", \"dns_terms\": %d, \"threads\": %d, \"evaluations\": %ld, "
	    "\"seconds\": %.3f, \"per_second\": %.0f, \"per_second_per_thread\": %.0f, "
	    "\"mismatches\": %d, \"cache_hits\": %lu, \"cache_misses\": %lu}\n",
	    spf_result_name(o.result), o.dns_terms, threads, n * threads, secs,
	    secs > 0 ? (double)(n * threads) / secs : 0,
	    secs > 0 ? (double)n / secs : 0, bad, st.cache_hits, st.cache_misses);
	spf_outcome_clear(&o);
	free(b);
	free(th);
	dns_shutdown();
	conf_unref(c);
	return bad ? 1 : 0;
}
