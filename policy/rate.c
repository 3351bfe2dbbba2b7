/*
 * rate.c -- see rate.h. A chained hash table of fixed windows; one mutex
 * (the critical section is a hash, a compare and an increment).
 */
#include "policy/rate.h"
#include "lib/conf.h"
#include "lib/util.h"
#include "policy/policy_int.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define RATE_BUCKETS	4096
#define RATE_KEY_MAX	64	/* longest textual IPv6 address fits */

struct rate_ent {
	struct rate_ent	*next;
	char		 key[RATE_KEY_MAX];
	int		 kind;
	uint64_t	 start_ms;
	int		 count;
};

static struct rate_ent	*rate_tab[RATE_BUCKETS];
static int		 rate_n;
static uint64_t		 rate_swept;	/* time of the last full sweep */
static pthread_mutex_t	 rate_mtx = PTHREAD_MUTEX_INITIALIZER;

static unsigned	 rate_hash(const char *, int);
static struct rate_ent *rate_find(const char *, int, uint64_t);
static void	 rate_sweep(uint64_t);
static void	 rate_run(struct pol_session *, enum pol_stage, const struct pol_msg *);
static int	 rate_enabled(const struct conf *);
static void	 rate_commit(struct pol_session *, enum pol_stage);
static int	 rate_limit(const struct conf *, enum pol_stage);

const struct pol_check rate_check = {
	.name = "rate",
	.stages = 1u << POL_CONNECT | 1u << POL_MAIL,
	.enabled = rate_enabled,
	.run = rate_run,
	.commit = rate_commit,
};

static unsigned
rate_hash(const char *s, int kind)
{
	unsigned h = 2166136261u ^ (unsigned)kind;	/* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % RATE_BUCKETS;
}

/* Drop every window that has ended. Called with rate_mtx held. */
static void
rate_sweep(uint64_t now)
{
	for (int b = 0; b < RATE_BUCKETS; b++) {
		struct rate_ent **pp = &rate_tab[b];
		while (*pp) {
			struct rate_ent *e = *pp;
			if (now - e->start_ms >= RATE_WINDOW_MS) {
				*pp = e->next;
				free(e);
				rate_n--;
			} else
				pp = &e->next;
		}
	}
}

/* The entry for key, created when missing; NULL when the table is full.
 * Called with rate_mtx held. */
static struct rate_ent *
rate_find(const char *key, int kind, uint64_t now)
{
	unsigned b = rate_hash(key, kind);
	struct rate_ent *e;

	for (e = rate_tab[b]; e; e = e->next)
		if (e->kind == kind && strcmp(e->key, key) == 0)
			return e;
	/* A full sweep walks the whole table: at most once a second, so a
	 * flood of new addresses cannot make every call pay for it. */
	if (rate_n >= RATE_MAX_ENTRIES && now - rate_swept >= 1000) {
		rate_sweep(now);
		rate_swept = now;
	}
	if (rate_n >= RATE_MAX_ENTRIES)
		return NULL;
	e = xcalloc(1, sizeof(*e));
	snprintf(e->key, sizeof(e->key), "%s", key);
	e->kind = kind;
	e->start_ms = now;
	e->next = rate_tab[b];
	rate_tab[b] = e;
	rate_n++;
	return e;
}

int
rate_hit(const char *key, enum rate_kind kind, int limit, uint64_t now)
{
	struct rate_ent *e;
	int over = 0;

	if (limit <= 0)
		return 0;
	pthread_mutex_lock(&rate_mtx);
	if ((e = rate_find(key, kind, now)) != NULL) {
		if (now - e->start_ms >= RATE_WINDOW_MS) {
			e->start_ms = now;
			e->count = 0;
		}
		over = ++e->count > limit;
	}
	pthread_mutex_unlock(&rate_mtx);
	if (e == NULL)
		log_warn("rate: table full (%d clients); %s not limited", RATE_MAX_ENTRIES, key);
	return over;
}

int
rate_over(const char *key, enum rate_kind kind, int limit, uint64_t now)
{
	unsigned b = rate_hash(key, kind);
	struct rate_ent *e;
	int count = 0;

	if (limit <= 0)
		return 0;
	pthread_mutex_lock(&rate_mtx);
	for (e = rate_tab[b]; e; e = e->next)
		if (e->kind == (int)kind && strcmp(e->key, key) == 0 &&
		    now - e->start_ms < RATE_WINDOW_MS)
			count = e->count;
	pthread_mutex_unlock(&rate_mtx);
	return count + 1 > limit;
}

void
rate_reset(void)
{
	pthread_mutex_lock(&rate_mtx);
	for (int b = 0; b < RATE_BUCKETS; b++)
		while (rate_tab[b]) {
			struct rate_ent *e = rate_tab[b];
			rate_tab[b] = e->next;
			free(e);
		}
	rate_n = 0;
	rate_swept = 0;
	pthread_mutex_unlock(&rate_mtx);
}

static int
rate_enabled(const struct conf *c)
{
	return c->rate_connections_per_minute > 0 || c->rate_messages_per_minute > 0;
}

/* The limit of the kind this stage counts. */
static int
rate_limit(const struct conf *c, enum pol_stage stage)
{
	return stage == POL_CONNECT ? c->rate_connections_per_minute :
	    c->rate_messages_per_minute;
}

/* Decide only: the event is counted by rate_commit, so a speculative
 * run that is undone does not count it twice. */
static void
rate_run(struct pol_session *ps, enum pol_stage stage, const struct pol_msg *m)
{
	const struct conf *c = ps->conf;

	(void)m;
	if (!rate_over(ps->client_ip, stage == POL_CONNECT ? RATE_CONN : RATE_MSG,
	    rate_limit(c, stage), time_mono_ms()))
		return;
	if (stage == POL_CONNECT) {
		pol_result_add(ps, "rate", "connections", 0, NULL,
		    "over %d connections per minute", c->rate_connections_per_minute);
		pol_hard_set(ps, POL_TEMPFAIL, 421, "4.7.0", 1,
		    "Too many connections from %s, try again later", ps->client_ip);
	} else {
		pol_result_add(ps, "rate", "messages", 0, NULL,
		    "over %d messages per minute", c->rate_messages_per_minute);
		pol_hard_set(ps, POL_TEMPFAIL, 450, "4.7.1",
		    0, "Too many messages from %s, try again later", ps->client_ip);
	}
}

static void
rate_commit(struct pol_session *ps, enum pol_stage stage)
{
	(void)rate_hit(ps->client_ip, stage == POL_CONNECT ? RATE_CONN : RATE_MSG,
	    rate_limit(ps->conf, stage), time_mono_ms());
}
