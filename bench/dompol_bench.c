/*
 * dompol_bench.c -- what per-domain policy costs a session on its hot
 * path with a large dashboard table: dompol_reject_early() (CONNECT,
 * HELO and MAIL each ask it) and dompol_find() (each RCPT), with 10
 * config sections and 1,000 dashboard entries, one in ten of them with
 * allow lists that the session's client and sender do not match (the
 * common case: every list is looked at). Prints microseconds per call on
 * one thread. Built by `make bench` (and `make build/bench/dompol_bench`);
 * run it by hand: build/bench/dompol_bench. Numbers vary 2-3x on a shared
 * machine: compare two builds in the same minute.
 */
#include "lib/buf.h"
#include "lib/conf.h"
#include "lib/util.h"
#include "policy/dompol.h"
#include "policy/domtab.h"
#include "policy/policy.h"
#include "policy/policy_int.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define BENCH_SECTIONS	10
#define BENCH_ENTRIES	1000
#define BENCH_CALLS	20000

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A config with a fresh database in dir and BENCH_SECTIONS sections. */
static struct conf *
bench_conf(char *dir)
{
	char path[300];
	struct conf_err *e = NULL;
	struct conf *c;
	FILE *f;
	int n = 0;

	if (mkdtemp(dir) == NULL)
		return NULL;
	snprintf(path, sizeof(path), "%s/b.conf", dir);
	if ((f = fopen(path, "w")) == NULL)
		return NULL;
	fprintf(f, "[db]\npath = %s/b.db\n[dns]\nresolver = 127.0.0.1:9\n"
	    "[spf]\nenabled = no\n[dkim]\nenabled = no\n[dmarc]\nenabled = no\n"
	    "[bayes]\nenabled = no\n", dir);
	for (int i = 0; i < BENCH_SECTIONS; i++)
		fprintf(f, "[domain cfg%d.example]\npolicy.reject_score = %d\n%s", i, 10 + i,
		    i % 5 ? "" : "access.allow_clients = 203.0.113.0/28, 2001:db8::/48\n");
	fclose(f);
	if ((c = conf_load(path, &e, &n)) == NULL) {
		for (int i = 0; i < n; i++)
			fprintf(stderr, "%s\n", e[i].msg);
		return NULL;
	}
	log_set_level(LOG_LVL_ERR);
	return pol_init(c) == 0 ? c : NULL;
}

/* The dashboard's document: BENCH_ENTRIES entries, every tenth with
 * allow lists of clients and senders. */
static char *
bench_doc(void)
{
	struct buf b = { 0 };

	buf_adds(&b, "{");
	for (int i = 0; i < BENCH_ENTRIES; i++) {
		buf_printf(&b, "%s\"%sd%04d.example\": {\"reject_score\": %d", i ? ", " : "",
		    i % 3 ? "" : ".", i, 10 + i % 7);
		if (i % 10 == 0)
			buf_printf(&b, ", \"allow_clients\": [\"192.0.2.%d\", \"10.%d.0.0/16\"],"
			    " \"allow_senders\": [\"@partner%d.example\", \"boss@corp%d.example\"]",
			    i % 250, i % 250, i, i);
		buf_adds(&b, "}");
	}
	buf_adds(&b, "}");
	return buf_take(&b);
}

int
main(void)
{
	static const char *const files[] = { "b.conf", "b.db", "b.db-wal", "b.db-shm" };
	char dir[] = "/tmp/postern-dompolbench-XXXXXX", *doc, rcpt[64];
	struct sockaddr_in sa = { .sin_family = AF_INET };
	struct conf *c = bench_conf(dir);
	struct pol_session *ps;
	struct domtab *t;
	double sink = 0;
	uint64_t t0, t1;
	int hits = 0;

	if (c == NULL)
		return 1;
	doc = bench_doc();
	t = domtab_from_json(doc);
	free(doc);
	inet_pton(AF_INET, "198.51.100.1", &sa.sin_addr);
	ps = pol_session_new(c, "B1", (struct sockaddr *)&sa, sizeof(sa));
	ps->priv[pol_check_slot(&dompol_check)] = t;	/* the session's reference */
	pol_tx_begin(ps, "someone@sender.example", "");

	t0 = now_ns();
	for (int i = 0; i < BENCH_CALLS; i++)
		sink += dompol_reject_early(ps);
	t1 = now_ns();
	printf("dompol_reject_early: %.2f us per call (%d sections, %d dashboard entries)\n",
	    (double)(t1 - t0) / BENCH_CALLS / 1000.0, BENCH_SECTIONS, BENCH_ENTRIES);

	t0 = now_ns();
	for (int i = 0; i < BENCH_CALLS; i++) {
		int k = i % (2 * BENCH_ENTRIES);	/* half of them hit an entry */
		snprintf(rcpt, sizeof(rcpt), "user@%sd%04d.example", k % 3 ? "" : "mx.",
		    k % BENCH_ENTRIES + (k >= BENCH_ENTRIES ? BENCH_ENTRIES : 0));
		hits += dompol_find(c, t, rcpt) != NULL;
	}
	t1 = now_ns();
	printf("dompol_find: %.2f us per call (%d of %d found)\n",
	    (double)(t1 - t0) / BENCH_CALLS / 1000.0, hits, BENCH_CALLS);
	pol_session_free(ps);
	pol_shutdown();
	conf_unref(c);
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		snprintf(rcpt, sizeof(rcpt), "%s/%s", dir, files[i]);
		unlink(rcpt);
	}
	rmdir(dir);
	return sink == 0;	/* the calls' results are used */
}
