/*
 * pg_rate_bench.c -- what one rate-sync round costs the writer on
 * PostgreSQL: db_rate_add() of n deltas (distinct clients, one window),
 * from the enqueue to the commit, as policy/rate.c's sync thread waits for
 * it once a second. The first round inserts every row; the next ones find
 * them there and add (ON CONFLICT). Prints, per n, the insert round's and
 * the median later round's milliseconds, and checks the totals read back.
 *
 * Usage: pg_rate_bench URL N... (bench/pg_rate.py starts a PostgreSQL
 * with tests/integration/harness/pg.py and runs it on a fresh database).
 */
#include "db/db.h"
#include "lib/conf.h"
#include "lib/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BENCH_ROUNDS	7

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int
dbl_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

struct bench_sum {
	long long rows, total;
};

static int
bench_count(void *arg, const struct db_rate_delta *r)
{
	struct bench_sum *s = arg;

	s->rows++;
	s->total += r->n;
	return 0;
}

/* n deltas in window win, rounds of them; 0, or -1 when a round failed
 * or the totals read back are not what was added. */
static int
bench_one(size_t n, long long win)
{
	struct db_rate_delta *d = xcalloc(n, sizeof(*d));
	double ms[BENCH_ROUNDS];
	struct bench_sum s = { 0 };
	int rc = 0;

	for (size_t i = 0; i < n; i++) {
		char key[32];
		snprintf(key, sizeof(key), "10.%zu.%zu.%zu", i >> 16, (i >> 8) & 255, i & 255);
		d[i] = (struct db_rate_delta){ .kind = (int)(i & 1),
		    .key = xstrdup(key), .win = win, .n = 1 };
	}
	for (int r = 0; r < BENCH_ROUNDS && rc == 0; r++) {
		double t0 = now_ms();
		rc = db_rate_add(d, n, win - 1);
		ms[r] = now_ms() - t0;
	}
	if (rc == 0 && db_rate_each(win, bench_count, &s) == 0 &&
	    s.rows == (long long)n && s.total == (long long)n * BENCH_ROUNDS) {
		qsort(ms + 1, BENCH_ROUNDS - 1, sizeof(ms[0]), dbl_cmp);
		printf("pg_rate_bench: %6zu rows: insert %8.2f ms, add %8.2f ms"
		    " (median of %d)\n", n, ms[0], ms[BENCH_ROUNDS / 2],
		    BENCH_ROUNDS - 1);
	} else {
		fprintf(stderr, "pg_rate_bench: %zu rows: failed (rc %d, %lld rows,"
		    " total %lld)\n", n, rc, s.rows, s.total);
		rc = -1;
	}
	for (size_t i = 0; i < n; i++)
		free((char *)d[i].key);
	free(d);
	return rc;
}

int
main(int argc, char **argv)
{
	struct conf *c;
	int rc = 0;

	if (argc < 3) {
		fprintf(stderr, "usage: pg_rate_bench URL N...\n");
		return 2;
	}
	c = conf_defaults();
	free(c->db_url);
	c->db_url = xstrdup(argv[1]);
	log_set_level(LOG_LVL_ERR);
	/* the writer's connection opened and its statements prepared first */
	if (db_open(c, 1) == -1 || db_rate_add(NULL, 0, 0) == -1)
		return 1;
	/* each size in a window of its own: the next one's add prunes it */
	for (int i = 2; i < argc && rc == 0; i++)
		rc = bench_one((size_t)strtoul(argv[i], NULL, 10), 1000 + i);
	db_close();
	conf_unref(c);
	return rc == 0 ? 0 : 1;
}
