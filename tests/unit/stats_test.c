/* stats_test.c -- live counters, check pairs, histograms and the
 * Prometheus text they print. */
#include "policy/policy.h"
#include "lib/stats.h"
#include "t.h"
#include "lib/util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

/* The value on the line that starts with "series " in text, or -1. */
static long long
metric(const char *text, const char *series)
{
	char key[256];
	const char *p;

	snprintf(key, sizeof(key), "\n%s ", series);
	if ((p = strstr(text, key)) == NULL)
		return -1;
	return atoll(p + strlen(key));
}

T_CASE(counters_and_gauges)
{
	char *t;

	stats_reset();
	stats_inc(STATS_SESSIONS, 1);
	stats_inc(STATS_SESSIONS, 2);
	stats_gauge_add(STATS_G_SESSIONS, 3);
	stats_gauge_add(STATS_G_SESSIONS, -1);
	stats_gauge_set(STATS_G_DB_QUEUE, 7);
	T_EQ_INT(stats_get(STATS_SESSIONS), 3);
	T_EQ_INT(stats_gauge_get(STATS_G_SESSIONS), 2);
	t = stats_prometheus();
	T_EQ_INT(metric(t, "postern_sessions_total"), 3);
	T_EQ_INT(metric(t, "postern_sessions_active"), 2);
	T_EQ_INT(metric(t, "postern_db_queue_depth"), 7);
	T_ASSERT(strstr(t, "# TYPE postern_sessions_total counter\n") != NULL);
	T_ASSERT(strstr(t, "# TYPE postern_sessions_active gauge\n") != NULL);
	free(t);
}

T_CASE(verdicts)
{
	char *t;

	stats_reset();
	stats_verdict("accept");
	stats_verdict("accept");
	stats_verdict("quarantine");
	stats_verdict("bogus");
	stats_verdict(NULL);
	T_EQ_INT(stats_verdict_get("accept"), 2);
	T_EQ_INT(stats_verdict_get("reject"), 0);
	t = stats_prometheus();
	T_EQ_INT(metric(t, "postern_verdicts_total{verdict=\"accept\"}"), 2);
	T_EQ_INT(metric(t, "postern_verdicts_total{verdict=\"quarantine\"}"), 1);
	T_EQ_INT(metric(t, "postern_verdicts_total{verdict=\"other\"}"), 2);
	free(t);
}

/* Every outcome policy records has its own counter: none lands in
 * "other", so the two name lists agree. */
T_CASE(outcomes)
{
	char *t, want[96];

	stats_reset();
	for (int i = 0; i < POL_NOUTCOMES; i++)
		for (int k = 0; k <= i; k++)
			stats_outcome(pol_outcome_name(i));
	stats_outcome("bogus");
	t = stats_prometheus();
	for (int i = 0; i < POL_NOUTCOMES; i++) {
		T_EQ_INT(stats_outcome_get(pol_outcome_name(i)), i + 1);
		snprintf(want, sizeof(want), "postern_outcomes_total{outcome=\"%s\"}",
		    pol_outcome_name(i));
		T_EQ_INT(metric(t, want), i + 1);
	}
	T_EQ_INT(metric(t, "postern_outcomes_total{outcome=\"other\"}"), 1);
	free(t);
}

T_CASE(check_pairs_and_hostile_names)
{
	char *t;

	stats_reset();
	stats_check("spf", "pass");
	stats_check("spf", "pass");
	stats_check("spf", "fail");
	stats_check("rule", "match");
	stats_check("x\"} 1\nfake", "pass");	/* never printed as a label */
	stats_check("SPF", "pass");		/* only [a-z0-9_.-] */
	t = stats_prometheus();
	T_EQ_INT(metric(t, "postern_checks_total{check=\"spf\",result=\"pass\"}"), 2);
	T_EQ_INT(metric(t, "postern_checks_total{check=\"spf\",result=\"fail\"}"), 1);
	T_EQ_INT(metric(t, "postern_checks_total{check=\"rule\",result=\"match\"}"), 1);
	T_EQ_INT(metric(t, "postern_checks_total{check=\"other\",result=\"other\"}"), 2);
	T_ASSERT(strstr(t, "fake") == NULL);
	free(t);
}

T_CASE(check_table_full)
{
	char name[32];
	char *t;

	stats_reset();
	for (int i = 0; i < STATS_MAX_CHECKS + 5; i++) {
		snprintf(name, sizeof(name), "c%d", i);
		stats_check(name, "pass");
	}
	t = stats_prometheus();
	T_EQ_INT(metric(t, "postern_checks_total{check=\"c0\",result=\"pass\"}"), 1);
	T_EQ_INT(metric(t, "postern_checks_total{check=\"other\",result=\"other\"}"), 5);
	free(t);
}

T_CASE(histogram_buckets)
{
	char *t;

	stats_reset();
	stats_observe(STATS_H_SESSION, 0.003);
	stats_observe(STATS_H_SESSION, 0.2);
	stats_observe(STATS_H_SESSION, 1000);
	stats_observe(STATS_H_SESSION, -1);	/* clock step: counts as 0 */
	t = stats_prometheus();
	T_EQ_INT(metric(t, "postern_session_duration_seconds_bucket{le=\"0.001\"}"), 1);
	T_EQ_INT(metric(t, "postern_session_duration_seconds_bucket{le=\"0.005\"}"), 2);
	T_EQ_INT(metric(t, "postern_session_duration_seconds_bucket{le=\"0.5\"}"), 3);
	T_EQ_INT(metric(t, "postern_session_duration_seconds_bucket{le=\"300\"}"), 3);
	T_EQ_INT(metric(t, "postern_session_duration_seconds_bucket{le=\"+Inf\"}"), 4);
	T_EQ_INT(metric(t, "postern_session_duration_seconds_count"), 4);
	T_EQ_INT(metric(t, "postern_session_duration_seconds_sum"), 1000);
	T_EQ_INT(metric(t, "postern_policy_stage_seconds_count"), 0);
	free(t);
}

static void *
bump(void *arg)
{
	(void)arg;
	for (int i = 0; i < 20000; i++) {
		stats_inc(STATS_MESSAGES, 1);
		stats_check("dkim", i % 2 ? "pass" : "fail");
		stats_observe(STATS_H_POLICY, 0.01);
	}
	return NULL;
}

T_CASE(threads_lose_nothing)
{
	pthread_t th[4];
	char *t;

	stats_reset();
	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, bump, NULL);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	T_EQ_INT(stats_get(STATS_MESSAGES), 80000);
	t = stats_prometheus();
	T_EQ_INT(metric(t, "postern_checks_total{check=\"dkim\",result=\"pass\"}"), 40000);
	T_EQ_INT(metric(t, "postern_checks_total{check=\"dkim\",result=\"fail\"}"), 40000);
	T_EQ_INT(metric(t, "postern_policy_stage_seconds_count"), 80000);
	free(t);
}

int
main(void)
{
	T_RUN(counters_and_gauges);
	T_RUN(verdicts);
	T_RUN(outcomes);
	T_RUN(check_pairs_and_hostile_names);
	T_RUN(check_table_full);
	T_RUN(histogram_buckets);
	T_RUN(threads_lose_nothing);
	return T_END();
}
