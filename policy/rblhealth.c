/*
 * rblhealth.c -- see rblhealth.h. The zone table (under one mutex), a
 * round that probes each configured zone with its two RFC 5782 test
 * questions, and the thread that runs a round every rbl.health_interval.
 */
#include "policy/rblhealth.h"
#include "dns/dns.h"
#include "lib/conf.h"
#include "lib/tick.h"
#include "lib/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define RBLH_TICK_MS	1000	/* how often the thread looks at the config */

struct rblh_zone {
	struct rblh_view v;
	int		 domain;
};

/* What one test question got, from the point of view of a list. */
enum rblh_ans {
	RBLH_A_LISTED,		/* an answer in 127.0.0.0/8, not an error code */
	RBLH_A_NOT,		/* NXDOMAIN or NODATA */
	RBLH_A_BOGUS,		/* 127.255.255.x, or outside 127/8 */
	RBLH_A_DEAD,		/* no answer */
};

static pthread_mutex_t	 rblh_mu = PTHREAD_MUTEX_INITIALIZER;
static struct rblh_zone	 rblh_zones[RBLH_MAX_ZONES];
static int		 rblh_nzones;
/* Read on every session without the lock (DESIGN.md: no locks on the
 * session path); written under it. */
static _Atomic long	 rblh_hour;		/* time_wall() / 3600 of the counts */
static atomic_ulong	 rblh_sessions;		/* checked in rblh_hour */
static atomic_int	 rblh_nbroken;		/* zones rblh_usable() refuses */

static void	 rblh_tick(void *);
static struct tick	 rblh_thread = {
	.name = "postern-rblh", .ms = RBLH_TICK_MS, .fn = rblh_tick,
};
static uint64_t		 rblh_last;	/* the last round; thread only */
static int		 rblh_first = 1;

static struct rblh_zone *rblh_find(const char *zone, int domain);
static void	 rblh_hour_roll(void);
static int	 rblh_zone_usable(const struct rblh_zone *);
static void	 rblh_recount(void);
static int	 rblh_configured(const struct conf *, struct rblh_zone *out);
static void	 rblh_adopt(const struct rblh_zone *want, int n);
static enum rblh_ans rblh_ask(const char *zone, const char *label, char *out,
		    size_t outsz);
static enum rblh_state rblh_judge(enum rblh_ans listed, enum rblh_ans unlisted);
static void	 rblh_probe(const struct rblh_zone *);
static void	 rblh_log_change(const struct rblh_view *, enum rblh_state was);

const char *
rblh_state_name(enum rblh_state s)
{
	switch (s) {
	case RBLH_OK:		return "ok";
	case RBLH_DEAD:		return "dead";
	case RBLH_LISTS_ALL:	return "listing-everything";
	case RBLH_LISTS_NONE:	return "listing-nothing";
	default:		return "unknown";
	}
}

/* ------------------------------------------------------------- the table */

/* Under rblh_mu. */
static struct rblh_zone *
rblh_find(const char *zone, int domain)
{
	for (int i = 0; i < rblh_nzones; i++)
		if (rblh_zones[i].domain == domain &&
		    strcasecmp(rblh_zones[i].v.zone, zone) == 0)
			return &rblh_zones[i];
	return NULL;
}

static int
rblh_zone_usable(const struct rblh_zone *z)
{
	return z == NULL || z->v.state == RBLH_OK || z->v.state == RBLH_UNKNOWN;
}

/* Under rblh_mu, after the table changed. */
static void
rblh_recount(void)
{
	int n = 0;

	for (int i = 0; i < rblh_nzones; i++)
		n += !rblh_zone_usable(&rblh_zones[i]);
	atomic_store_explicit(&rblh_nbroken, n, memory_order_release);
}

int
rblh_usable(const char *zone, int domain)
{
	int ok;

	/* the usual case, every list healthy (or probes off): no lock */
	if (atomic_load_explicit(&rblh_nbroken, memory_order_acquire) == 0)
		return 1;
	pthread_mutex_lock(&rblh_mu);
	ok = rblh_zone_usable(rblh_find(zone, domain));
	pthread_mutex_unlock(&rblh_mu);
	return ok;
}

/* Under rblh_mu: a new hour starts the shares from zero. */
static void
rblh_hour_roll(void)
{
	long h = (long)(time_wall() / 3600);

	if (h == atomic_load(&rblh_hour))
		return;
	atomic_store(&rblh_hour, h);
	atomic_store(&rblh_sessions, 0);
	for (int i = 0; i < rblh_nzones; i++)
		rblh_zones[i].v.listed_hour = 0;
}

void
rblh_count_session(void)
{
	if ((long)(time_wall() / 3600) != atomic_load_explicit(&rblh_hour, memory_order_relaxed)) {
		pthread_mutex_lock(&rblh_mu);
		rblh_hour_roll();
		pthread_mutex_unlock(&rblh_mu);
	}
	atomic_fetch_add_explicit(&rblh_sessions, 1, memory_order_relaxed);
}

void
rblh_count_listed(const char *zone, int domain)
{
	struct rblh_zone *z;

	pthread_mutex_lock(&rblh_mu);
	rblh_hour_roll();
	if ((z = rblh_find(zone, domain)) != NULL)
		z->v.listed_hour++;
	pthread_mutex_unlock(&rblh_mu);
}

int
rblh_snapshot(struct rblh_view *out, int max)
{
	int n;

	pthread_mutex_lock(&rblh_mu);
	rblh_hour_roll();
	n = rblh_nzones < max ? rblh_nzones : max;
	for (int i = 0; i < n; i++) {
		out[i] = rblh_zones[i].v;
		out[i].sessions_hour = atomic_load(&rblh_sessions);
	}
	pthread_mutex_unlock(&rblh_mu);
	return n;
}

/* The zones of c, each once (a zone may appear in several sites with
 * different filters); a zone with a negative weight is an allow list. */
static int
rblh_configured(const struct conf *c, struct rblh_zone *out)
{
	const char *spec[2] = { c->rbl_zones, c->rhsbl_zones };
	struct rbl_site sites[RBL_MAX_SITES];
	char why[300];
	int n = 0;

	for (int d = 0; d < 2; d++) {
		int ns = rbl_parse(spec[d], sites, RBL_MAX_SITES, why, sizeof(why));
		for (int i = 0; i < ns; i++) {
			int j;
			for (j = 0; j < n; j++)
				if (out[j].domain == d && strcasecmp(out[j].v.zone, sites[i].zone) == 0)
					break;
			if (j < n)
				continue;
			memset(&out[n], 0, sizeof(out[n]));
			memcpy(out[n].v.zone, sites[i].zone, sizeof(out[n].v.zone));
			out[n].domain = d;
			out[n].v.kind = d ? "rhsbl" : sites[i].weight < 0 ? "dnswl" : "dnsbl";
			n++;
		}
	}
	return n;
}

/* The table becomes the n zones of want, keeping what it knew of those
 * it had (a reload must not make a dead list usable again). */
static void
rblh_adopt(const struct rblh_zone *want, int n)
{
	struct rblh_zone next[RBLH_MAX_ZONES];

	pthread_mutex_lock(&rblh_mu);
	for (int i = 0; i < n; i++) {
		const struct rblh_zone *old = rblh_find(want[i].v.zone, want[i].domain);
		next[i] = old ? *old : want[i];
		next[i].v.kind = want[i].v.kind;
	}
	memcpy(rblh_zones, next, sizeof(next[0]) * (size_t)n);
	rblh_nzones = n;
	rblh_recount();
	pthread_mutex_unlock(&rblh_mu);
}

/* ------------------------------------------------------------ the probes */

/* Ask label.zone (A) and describe the answer into out. */
static enum rblh_ans
rblh_ask(const char *zone, const char *label, char *out, size_t outsz)
{
	char name[RBL_ZONE_MAX + 32];
	struct dns_answer *a;
	enum rblh_ans r = RBLH_A_NOT;
	size_t o = 0;

	snprintf(name, sizeof(name), "%s.%s", label, zone);
	a = dns_query(name, DNS_T_A, NULL);
	out[0] = '\0';
	if (a->status == DNS_TEMPERROR || a->status == DNS_BUDGET) {
		snprintf(out, outsz, "no answer (%.60s)", a->why);
		r = RBLH_A_DEAD;
	} else if (a->status != DNS_OK) {
		snprintf(out, outsz, "%s", dns_status_name(a->status));
	}
	for (int i = 0; a->status == DNS_OK && i < a->count; i++) {
		const unsigned char *b = (const unsigned char *)&a->rr[i].u.a.s_addr;
		char ip[INET_ADDRSTRLEN];

		inet_ntop(AF_INET, &a->rr[i].u.a, ip, sizeof(ip));
		if (o < outsz)
			o += (size_t)snprintf(out + o, outsz - o, "%s%s", i ? " " : "", ip);
		if (b[0] != 127 || (b[1] == 255 && b[2] == 255))
			r = RBLH_A_BOGUS;
		else if (r != RBLH_A_BOGUS)
			r = RBLH_A_LISTED;
	}
	dns_answer_free(a);
	return r;
}

/* The state from what the listed test entry and the unlisted one got. */
static enum rblh_state
rblh_judge(enum rblh_ans listed, enum rblh_ans unlisted)
{
	if (listed == RBLH_A_DEAD || unlisted == RBLH_A_DEAD)
		return RBLH_DEAD;
	if (unlisted != RBLH_A_NOT || listed == RBLH_A_BOGUS)
		return RBLH_LISTS_ALL;
	if (listed != RBLH_A_LISTED)
		return RBLH_LISTS_NONE;
	return RBLH_OK;
}

/* Probe one zone (no lock held while asking) and record the outcome. */
static void
rblh_probe(const struct rblh_zone *want)
{
	struct rblh_view got = want->v;
	struct rblh_zone *z;
	enum rblh_state was = RBLH_UNKNOWN;
	uint64_t t0 = time_mono_ms();
	enum rblh_ans l, u;

	l = rblh_ask(want->v.zone, want->domain ? "test" : "2.0.0.127",
	    got.listed_answer, sizeof(got.listed_answer));
	u = rblh_ask(want->v.zone, want->domain ? "invalid" : "1.0.0.127",
	    got.unlisted_answer, sizeof(got.unlisted_answer));
	got.latency_ms = (unsigned)(time_mono_ms() - t0);
	got.state = rblh_judge(l, u);
	got.probed = time_wall();

	pthread_mutex_lock(&rblh_mu);
	if ((z = rblh_find(want->v.zone, want->domain)) != NULL) {
		was = z->v.state;
		got.listed_hour = z->v.listed_hour;
		z->v = got;
		rblh_recount();
	}
	pthread_mutex_unlock(&rblh_mu);
	if (z != NULL)
		rblh_log_change(&got, was);
}

/* One line when a zone stops being usable or changes how it is broken,
 * one when it comes back; nothing for a zone that stays as it was. */
static void
rblh_log_change(const struct rblh_view *v, enum rblh_state was)
{
	if (v->state == was || (v->state == RBLH_OK && was == RBLH_UNKNOWN))
		return;
	if (v->state == RBLH_OK)
		log_info("rbl health: %s %s answers its test entries correctly again; "
		    "policy uses it", v->kind, v->zone);
	else
		log_warn("rbl health: %s %s is %s (test entry: %s; not-listed entry: %s); "
		    "policy skips it until it answers correctly", v->kind, v->zone,
		    rblh_state_name(v->state), v->listed_answer, v->unlisted_answer);
}

void
rblh_round(const struct conf *c)
{
	struct rblh_zone want[RBLH_MAX_ZONES];
	int n = rblh_configured(c, want);

	rblh_adopt(want, n);
	for (int i = 0; i < n && !tick_stopping(&rblh_thread); i++)
		rblh_probe(&want[i]);
}

/* ------------------------------------------------------------ the thread */

/* Every RBLH_TICK_MS: a round when the interval has passed. */
static void
rblh_tick(void *arg)
{
	struct conf *c = conf_current();
	uint64_t now = time_mono_ms();

	(void)arg;
	if (c->rbl_health_interval <= 0)
		rblh_adopt(NULL, 0);	/* off: every list is used */
	else if (rblh_first || now - rblh_last >= (uint64_t)c->rbl_health_interval * 1000) {
		rblh_round(c);
		rblh_last = now;
		rblh_first = 0;
	}
	conf_unref(c);
}

void
rblh_start(void)
{
	rblh_first = 1;
	if (tick_start(&rblh_thread) == -1)
		log_err("rbl health: pthread_create: %s; every list is used unprobed",
		    strerror(errno));
}

void
rblh_stop(void)
{
	tick_stop(&rblh_thread);
}
