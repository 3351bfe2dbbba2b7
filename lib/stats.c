/*
 * stats.c -- see stats.h. Counters are _Atomic long longs bumped with
 * relaxed adds: a scrape may see one counter a step ahead of another,
 * which Prometheus tolerates; nothing here is used for decisions.
 * Histogram buckets are cumulative at scrape time, not at observe time,
 * so an observation is one atomic add to its own bucket.
 */
#include "lib/stats.h"
#include "lib/buf.h"
#include "lib/util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Upper bounds of the latency buckets, seconds; +Inf is implicit. */
static const double stats_bounds[] = {
	0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300
};
#define STATS_NBUCKETS	(ARRAY_SIZE(stats_bounds) + 1)

static const char *const stats_verdicts[] = {
	"accept", "tag", "quarantine", "tempfail", "reject", "other"
};
#define STATS_NVERDICTS	ARRAY_SIZE(stats_verdicts)
/* policy.h's pol_outcome_name()s; tests/unit/stats_test.c holds the two
 * lists together. */
static const char *const stats_outcomes[] = {
	"accept", "quarantine", "reject", "tempfail", "backend-reject",
	"backend-tempfail", "backend-lost", "abandoned", "other"
};
#define STATS_NOUTCOMES	ARRAY_SIZE(stats_outcomes)

struct stats_hist_data {
	_Atomic unsigned long long bucket[STATS_NBUCKETS];
	_Atomic unsigned long long count;
	_Atomic unsigned long long micros;	/* sum, in microseconds */
};

struct stats_check_pair {
	char	 check[STATS_MAX_NAME], result[STATS_MAX_NAME];
	_Atomic long long n;
};

static const struct {
	const char *name, *help;
} stats_counter_info[STATS_NCOUNTERS] = {
	[STATS_SESSIONS] = { "sessions_total", "Client SMTP sessions accepted." },
	[STATS_MESSAGES] = { "messages_total", "Transactions recorded, each with one outcome." },
	[STATS_RCPTS] = { "recipients_total", "Recipients accepted." },
	[STATS_BYTES] = { "received_bytes_total", "Message bytes received from clients." },
	[STATS_BACKEND_ERRORS] = { "backend_errors_total", "Backend connection or I/O failures." },
	[STATS_REFUSED] = { "refused_connections_total", "Connections refused by limits." },
	[STATS_POLICY_INLINE] = { "policy_stages_inline_total", "Policy stages run on an I/O loop: nothing in them could block." },
	[STATS_POLICY_WORKER] = { "policy_stages_worker_total", "Policy stages handed to a policy worker." },
}, stats_gauge_info[STATS_NGAUGES] = {
	[STATS_G_SESSIONS] = { "sessions_active", "Client sessions open now." },
	[STATS_G_WORK_QUEUE] = { "policy_queue_depth", "Policy jobs waiting for a worker." },
	[STATS_G_DB_QUEUE] = { "db_queue_depth", "Writes waiting for the database writer." },
}, stats_hist_info[STATS_NHISTS] = {
	[STATS_H_SESSION] = { "session_duration_seconds", "Client session duration." },
	[STATS_H_POLICY] = { "policy_stage_seconds", "One policy stage run (on a worker, or inline on an I/O loop when nothing in it can block)." },
	[STATS_H_TRANSACTION] = { "transaction_duration_seconds", "MAIL FROM to the final reply." },
};

static _Atomic long long	 stats_counters[STATS_NCOUNTERS];
static _Atomic long long	 stats_gauges[STATS_NGAUGES];
static _Atomic long long	 stats_verdict_n[STATS_NVERDICTS];
static _Atomic long long	 stats_outcome_n[STATS_NOUTCOMES];

/* A counter per label of a fixed list, the last label "other". */
struct stats_family {
	const char	*name, *label, *help;
	const char *const *labels;
	size_t		 n;
	_Atomic long long *count;
};

static const struct stats_family stats_by_verdict = {
	"verdicts_total", "verdict", "Transactions by final verdict.",
	stats_verdicts, STATS_NVERDICTS, stats_verdict_n,
}, stats_by_outcome = {
	"outcomes_total", "outcome", "Transactions by how they ended: accept (the "
	"backend took the message), quarantine, reject and tempfail (ours), "
	"backend-reject, backend-tempfail, backend-lost, abandoned.",
	stats_outcomes, STATS_NOUTCOMES, stats_outcome_n,
};
static struct stats_hist_data	 stats_hists[STATS_NHISTS];
/* Pairs are appended under stats_mtx and published by stats_npairs; a
 * published pair's names never change, so readers scan without the lock. */
static struct stats_check_pair	 stats_pairs[STATS_MAX_CHECKS];
static _Atomic long long	 stats_check_other;
static _Atomic int		 stats_npairs;
static pthread_mutex_t		 stats_mtx = PTHREAD_MUTEX_INITIALIZER;

static struct stats_check_pair *stats_pair_find(const char *, const char *, int);
static struct stats_check_pair *stats_pair_add(const char *, const char *);
static void	 stats_put_hist(struct buf *, enum stats_hist);
static void	 stats_put_family(struct buf *, const struct stats_family *);
static void	 stats_reset_family(const struct stats_family *);
static _Atomic long long *stats_slot(const struct stats_family *, const char *);
static int	 stats_name_ok(const char *);

void
stats_inc(enum stats_counter c, long long n)
{
	if ((unsigned)c >= STATS_NCOUNTERS)
		fatalx("stats_inc: counter %d", (int)c);
	atomic_fetch_add_explicit(&stats_counters[c], n, memory_order_relaxed);
}

void
stats_gauge_add(enum stats_gauge g, long long delta)
{
	if ((unsigned)g >= STATS_NGAUGES)
		fatalx("stats_gauge_add: gauge %d", (int)g);
	atomic_fetch_add_explicit(&stats_gauges[g], delta, memory_order_relaxed);
}

void
stats_gauge_set(enum stats_gauge g, long long value)
{
	if ((unsigned)g >= STATS_NGAUGES)
		fatalx("stats_gauge_set: gauge %d", (int)g);
	atomic_store_explicit(&stats_gauges[g], value, memory_order_relaxed);
}

/* The counter of label v in family f ("other" when v is none of its). */
static _Atomic long long *
stats_slot(const struct stats_family *f, const char *v)
{
	for (size_t i = 0; i + 1 < f->n; i++)
		if (v != NULL && strcmp(v, f->labels[i]) == 0)
			return &f->count[i];
	return &f->count[f->n - 1];
}

void
stats_verdict(const char *v)
{
	atomic_fetch_add_explicit(stats_slot(&stats_by_verdict, v), 1, memory_order_relaxed);
}

long long
stats_verdict_get(const char *v)
{
	return atomic_load(stats_slot(&stats_by_verdict, v));
}

void
stats_outcome(const char *o)
{
	atomic_fetch_add_explicit(stats_slot(&stats_by_outcome, o), 1, memory_order_relaxed);
}

long long
stats_outcome_get(const char *o)
{
	return atomic_load(stats_slot(&stats_by_outcome, o));
}

static void
stats_put_family(struct buf *b, const struct stats_family *fam)
{
	buf_printf(b, "# HELP postern_%s %s\n# TYPE postern_%s counter\n", fam->name,
	    fam->help, fam->name);
	for (size_t i = 0; i < fam->n; i++)
		buf_printf(b, "postern_%s{%s=\"%s\"} %lld\n", fam->name, fam->label,
		    fam->labels[i], atomic_load(&fam->count[i]));
}

static void
stats_reset_family(const struct stats_family *fam)
{
	for (size_t i = 0; i < fam->n; i++)
		atomic_store(&fam->count[i], 0);
}

/* Label values we print must need no escaping: [a-z0-9_.-], bounded. */
static int
stats_name_ok(const char *s)
{
	size_t n = 0;

	for (; s[n] != '\0'; n++)
		if (n >= STATS_MAX_NAME - 1 || !((s[n] >= 'a' && s[n] <= 'z') ||
		    (s[n] >= '0' && s[n] <= '9') || s[n] == '_' || s[n] == '.' ||
		    s[n] == '-'))
			return 0;
	return n > 0;
}

static struct stats_check_pair *
stats_pair_find(const char *check, const char *result, int n)
{
	for (int i = 0; i < n; i++)
		if (strcmp(stats_pairs[i].check, check) == 0 &&
		    strcmp(stats_pairs[i].result, result) == 0)
			return &stats_pairs[i];
	return NULL;
}

/* Under the lock: look again (another thread may have added it), then
 * append. NULL when the table is full. */
static struct stats_check_pair *
stats_pair_add(const char *check, const char *result)
{
	struct stats_check_pair *p;
	int n;

	pthread_mutex_lock(&stats_mtx);
	n = atomic_load(&stats_npairs);
	if ((p = stats_pair_find(check, result, n)) == NULL && n < STATS_MAX_CHECKS) {
		p = &stats_pairs[n];
		snprintf(p->check, sizeof(p->check), "%s", check);
		snprintf(p->result, sizeof(p->result), "%s", result);
		atomic_store(&p->n, 0);
		atomic_store(&stats_npairs, n + 1);
	}
	pthread_mutex_unlock(&stats_mtx);
	return p;
}

void
stats_check(const char *check, const char *result)
{
	struct stats_check_pair *p = NULL;

	/* Look first: a published pair's names passed stats_name_ok(), so a
	 * match needs no second look at every byte (once per check result). */
	if (check != NULL && result != NULL &&
	    (p = stats_pair_find(check, result, atomic_load(&stats_npairs))) == NULL &&
	    stats_name_ok(check) && stats_name_ok(result))
		p = stats_pair_add(check, result);
	if (p == NULL)
		atomic_fetch_add_explicit(&stats_check_other, 1, memory_order_relaxed);
	else
		atomic_fetch_add_explicit(&p->n, 1, memory_order_relaxed);
}

void
stats_observe(enum stats_hist h, double secs)
{
	struct stats_hist_data *d;
	size_t b = 0;

	if ((unsigned)h >= STATS_NHISTS)
		fatalx("stats_observe: histogram %d", (int)h);
	d = &stats_hists[h];
	if (secs < 0)
		secs = 0;
	while (b < ARRAY_SIZE(stats_bounds) && secs > stats_bounds[b])
		b++;
	atomic_fetch_add_explicit(&d->bucket[b], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&d->count, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&d->micros, (unsigned long long)(secs * 1e6),
	    memory_order_relaxed);
}

long long
stats_get(enum stats_counter c)
{
	if ((unsigned)c >= STATS_NCOUNTERS)
		fatalx("stats_get: counter %d", (int)c);
	return atomic_load(&stats_counters[c]);
}

long long
stats_gauge_get(enum stats_gauge g)
{
	if ((unsigned)g >= STATS_NGAUGES)
		fatalx("stats_gauge_get: gauge %d", (int)g);
	return atomic_load(&stats_gauges[g]);
}

static void
stats_put_hist(struct buf *out, enum stats_hist h)
{
	const char *name = stats_hist_info[h].name;
	struct stats_hist_data *d = &stats_hists[h];
	unsigned long long cum = 0;

	buf_printf(out, "# HELP postern_%s %s\n# TYPE postern_%s histogram\n",
	    name, stats_hist_info[h].help, name);
	for (size_t b = 0; b < STATS_NBUCKETS; b++) {
		cum += atomic_load(&d->bucket[b]);
		if (b < ARRAY_SIZE(stats_bounds))
			buf_printf(out, "postern_%s_bucket{le=\"%g\"} %llu\n", name,
			    stats_bounds[b], cum);
		else
			buf_printf(out, "postern_%s_bucket{le=\"+Inf\"} %llu\n", name, cum);
	}
	buf_printf(out, "postern_%s_sum %.6f\npostern_%s_count %llu\n", name,
	    atomic_load(&d->micros) / 1e6, name, cum);
}

char *
stats_prometheus(void)
{
	struct buf out = { 0 }, *b = &out;
	int n = atomic_load(&stats_npairs);

	for (int c = 0; c < STATS_NCOUNTERS; c++)
		buf_printf(b, "# HELP postern_%s %s\n# TYPE postern_%s counter\npostern_%s %lld\n",
		    stats_counter_info[c].name, stats_counter_info[c].help,
		    stats_counter_info[c].name, stats_counter_info[c].name,
		    atomic_load(&stats_counters[c]));
	for (int g = 0; g < STATS_NGAUGES; g++)
		buf_printf(b, "# HELP postern_%s %s\n# TYPE postern_%s gauge\npostern_%s %lld\n",
		    stats_gauge_info[g].name, stats_gauge_info[g].help,
		    stats_gauge_info[g].name, stats_gauge_info[g].name,
		    atomic_load(&stats_gauges[g]));
	stats_put_family(b, &stats_by_verdict);
	stats_put_family(b, &stats_by_outcome);
	buf_printf(b, "# HELP postern_checks_total Check results by check and result.\n"
	    "# TYPE postern_checks_total counter\n");
	for (int i = 0; i < n; i++)
		buf_printf(b, "postern_checks_total{check=\"%s\",result=\"%s\"} %lld\n",
		    stats_pairs[i].check, stats_pairs[i].result,
		    atomic_load(&stats_pairs[i].n));
	buf_printf(b, "postern_checks_total{check=\"other\",result=\"other\"} %lld\n",
	    atomic_load(&stats_check_other));
	for (int h = 0; h < STATS_NHISTS; h++)
		stats_put_hist(b, h);
	return buf_take(b);
}

void
stats_reset(void)
{
	pthread_mutex_lock(&stats_mtx);
	for (int c = 0; c < STATS_NCOUNTERS; c++)
		atomic_store(&stats_counters[c], 0);
	for (int g = 0; g < STATS_NGAUGES; g++)
		atomic_store(&stats_gauges[g], 0);
	stats_reset_family(&stats_by_verdict);
	stats_reset_family(&stats_by_outcome);
	memset(stats_hists, 0, sizeof(stats_hists));
	atomic_store(&stats_npairs, 0);
	atomic_store(&stats_check_other, 0);
	pthread_mutex_unlock(&stats_mtx);
}
