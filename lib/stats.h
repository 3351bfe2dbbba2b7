/*
 * stats.h -- live counters of the running gateway, for /metrics and the
 * dashboard's live tiles.
 *
 * The proxy and policy call stats_*() as things happen; the web threads
 * read them with stats_snapshot()/stats_prometheus(). Nothing here knows
 * about sessions: callers hand in plain names and numbers. History (per
 * minute, per verdict) lives in the database (db_stats); these are the
 * process-lifetime counters and the gauges of "right now".
 *
 * Public calls: stats_inc, stats_gauge_add, stats_gauge_set, stats_verdict,
 *   stats_outcome, stats_check, stats_observe, stats_get, stats_prometheus, stats_reset.
 * Ownership: all state is static in stats.c; stats_prometheus() returns an
 *   xmalloc'd string the caller frees.
 * Thread: every call is safe from any thread, lock-free on the hot path
 *   (atomic adds); a new (check, result) pair takes a mutex once.
 */
#ifndef POSTERN_STATS_H
#define POSTERN_STATS_H

#include <stddef.h>

/* Monotonic counters. */
enum stats_counter {
	STATS_SESSIONS = 0,	/* client connections accepted */
	STATS_MESSAGES,		/* transactions recorded (each with an outcome) */
	STATS_RCPTS,		/* recipients accepted */
	STATS_BYTES,		/* message bytes received */
	STATS_BACKEND_ERRORS,	/* backend connect/IO failures */
	STATS_REFUSED,		/* connections refused by limits */
	STATS_POLICY_INLINE,	/* policy stages run on the I/O loop (nothing blocks) */
	STATS_POLICY_WORKER,	/* policy stages handed to a worker */
	STATS_NCOUNTERS
};

/* Values of "now", moved both ways. */
enum stats_gauge {
	STATS_G_SESSIONS = 0,	/* sessions open */
	STATS_G_WORK_QUEUE,	/* jobs waiting for a policy worker */
	STATS_G_DB_QUEUE,	/* writes waiting for the db writer */
	STATS_NGAUGES
};

/* Latency histograms, in seconds. */
enum stats_hist {
	STATS_H_SESSION = 0,	/* whole client session */
	STATS_H_POLICY,		/* one policy stage (on a worker, or inline on the loop) */
	STATS_H_TRANSACTION,	/* MAIL FROM to the final reply */
	STATS_NHISTS
};

/* Distinct (check, result) pairs kept; more are counted as "other". */
#define STATS_MAX_CHECKS	128
#define STATS_MAX_NAME		32	/* bytes of a check or result name */

void	 stats_inc(enum stats_counter, long long n);
void	 stats_gauge_add(enum stats_gauge, long long delta);
void	 stats_gauge_set(enum stats_gauge, long long value);
/* verdict: "accept", "tag", "quarantine", "tempfail", "reject". */
void	 stats_verdict(const char *verdict);
/* How a transaction ended: a pol_outcome_name() ("accept",
 * "backend-reject", ...). */
void	 stats_outcome(const char *outcome);
/* One check's result, e.g. ("spf", "pass"). */
void	 stats_check(const char *check, const char *result);
void	 stats_observe(enum stats_hist, double seconds);

/* Read one counter or gauge (tests, /api/stats). */
long long stats_get(enum stats_counter);
long long stats_gauge_get(enum stats_gauge);
long long stats_verdict_get(const char *verdict);
long long stats_outcome_get(const char *outcome);

/* Everything in the Prometheus text exposition format 0.0.4. */
char	*stats_prometheus(void);
/* Zero everything (tests only). */
void	 stats_reset(void);

#endif
