/*
 * rate.c -- see rate.h. A chained hash table of per-minute windows; one
 * mutex (the critical section is a hash, a compare and an increment), and
 * the sync thread that trades counts with the store.
 */
#include "policy/rate.h"
#include "db/db.h"
#include "lib/conf.h"
#include "lib/tick.h"
#include "lib/util.h"
#include "policy/policy_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define RATE_BUCKETS	4096
#define RATE_KEY_MAX	64	/* longest textual IPv6 address fits */

struct rate_ent {
	struct rate_ent	*next;
	char		 key[RATE_KEY_MAX];
	int		 kind;
	long long	 win;		/* the minute: wall ms / RATE_WINDOW_MS */
	int		 count;		/* events counted here in win */
	int		 sent;		/* of which committed to the store */
	int		 others;	/* other nodes' events in win, as last read */
};

static struct rate_ent	*rate_tab[RATE_BUCKETS];
static int		 rate_n;
static uint64_t		 rate_swept;	/* time of the last full sweep */
static pthread_mutex_t	 rate_mtx = PTHREAD_MUTEX_INITIALIZER;

static void	 rate_sync_tick(void *);
/* the sync thread, and whether its last round reached the store */
static struct tick	 rate_sync_thread = {
	.name = "postern-rate", .ms = RATE_SYNC_MS, .fn = rate_sync_tick,
};
static int		 rate_sync_down;

static unsigned	 rate_hash(const char *, int);
static struct rate_ent *rate_get(const char *, int);
static struct rate_ent *rate_find(const char *, int, uint64_t);
static void	 rate_roll(struct rate_ent *, long long win);
static void	 rate_sweep(uint64_t);
static int	 rate_delta_cmp(const void *, const void *);
static uint64_t	 rate_now(void);
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

/* A new window for e: nothing counted in it yet. */
static void
rate_roll(struct rate_ent *e, long long win)
{
	e->win = win;
	e->count = e->sent = e->others = 0;
}

/* Drop every window that has ended. Called with rate_mtx held. */
static void
rate_sweep(uint64_t now)
{
	long long win = (long long)(now / RATE_WINDOW_MS);

	for (int b = 0; b < RATE_BUCKETS; b++) {
		struct rate_ent **pp = &rate_tab[b];
		while (*pp) {
			struct rate_ent *e = *pp;
			if (e->win != win) {
				*pp = e->next;
				free(e);
				rate_n--;
			} else
				pp = &e->next;
		}
	}
}

/* The entry for key, or NULL. Called with rate_mtx held. */
static struct rate_ent *
rate_get(const char *key, int kind)
{
	struct rate_ent *e;

	for (e = rate_tab[rate_hash(key, kind)]; e; e = e->next)
		if (e->kind == kind && strcmp(e->key, key) == 0)
			return e;
	return NULL;
}

/* The entry for key, created (in now's window) when missing; NULL when
 * the table is full. Called with rate_mtx held. */
static struct rate_ent *
rate_find(const char *key, int kind, uint64_t now)
{
	unsigned b = rate_hash(key, kind);
	struct rate_ent *e;

	if ((e = rate_get(key, kind)) != NULL)
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
	e->win = (long long)(now / RATE_WINDOW_MS);
	e->next = rate_tab[b];
	rate_tab[b] = e;
	rate_n++;
	return e;
}

int
rate_hit(const char *key, enum rate_kind kind, int limit, uint64_t now)
{
	long long win = (long long)(now / RATE_WINDOW_MS);
	struct rate_ent *e;
	int over = 0;

	if (limit <= 0)
		return 0;
	pthread_mutex_lock(&rate_mtx);
	if ((e = rate_find(key, kind, now)) != NULL) {
		if (e->win != win)
			rate_roll(e, win);
		over = ++e->count + e->others > limit;
	}
	pthread_mutex_unlock(&rate_mtx);
	if (e == NULL)
		log_warn("rate: table full (%d clients); %s not limited", RATE_MAX_ENTRIES, key);
	return over;
}

int
rate_over(const char *key, enum rate_kind kind, int limit, uint64_t now)
{
	struct rate_ent *e;
	int count = 0;

	if (limit <= 0)
		return 0;
	pthread_mutex_lock(&rate_mtx);
	if ((e = rate_get(key, kind)) != NULL &&
	    e->win == (long long)(now / RATE_WINDOW_MS))
		count = e->count + e->others;
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

/* ------------------------------------------------- the cluster's counts */

static int
rate_delta_cmp(const void *a, const void *b)
{
	const struct db_rate_delta *x = a, *y = b;

	if (x->win != y->win)
		return x->win < y->win ? -1 : 1;
	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	return strcmp(x->key, y->key);
}

struct db_rate_delta *
rate_deltas(uint64_t now, size_t *n)
{
	long long win = (long long)(now / RATE_WINDOW_MS);
	struct db_rate_delta *d = NULL;
	size_t len = 0, cap = 0;

	pthread_mutex_lock(&rate_mtx);
	for (int b = 0; b < RATE_BUCKETS; b++)
		for (struct rate_ent *e = rate_tab[b]; e; e = e->next) {
			if (e->win != win || e->count == e->sent)
				continue;
			if (len == cap) {
				cap = cap ? cap * 2 : 64;
				d = xrealloc(d, cap * sizeof(*d));
			}
			d[len++] = (struct db_rate_delta){ .kind = e->kind,
			    .key = xstrdup(e->key), .win = e->win,
			    .n = e->count - e->sent };
		}
	pthread_mutex_unlock(&rate_mtx);
	if (len > 1)
		qsort(d, len, sizeof(*d), rate_delta_cmp);
	*n = len;
	return d;
}

void
rate_stored(const struct db_rate_delta *d, size_t n)
{
	pthread_mutex_lock(&rate_mtx);
	for (size_t i = 0; i < n; i++) {
		struct rate_ent *e = rate_get(d[i].key, d[i].kind);
		if (e != NULL && e->win == d[i].win)	/* else gone with its window */
			e->sent += (int)d[i].n;
	}
	pthread_mutex_unlock(&rate_mtx);
}

void
rate_deltas_free(struct db_rate_delta *d, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free((char *)d[i].key);
	free(d);
}

/* This node's part of the total is what it stored (sent): the sync
 * thread, the only one to store, read after its last store committed.
 * Only clients this node has an entry for take the others' count: a
 * flood spread over the other nodes must not fill this node's table and
 * leave its own clients unlimited. A client first seen here starts from
 * its own count and has the cluster's from the next round on. */
int
rate_cluster(void *arg, const struct db_rate_delta *row)
{
	const long long *win = arg;
	struct rate_ent *e;

	/* a node whose clock runs ahead counts a minute not begun here */
	if (row->win != *win || row->n <= 0)
		return 0;
	pthread_mutex_lock(&rate_mtx);
	if ((e = rate_get(row->key, row->kind)) != NULL && e->win < row->win)
		rate_roll(e, row->win);
	if (e != NULL && e->win == row->win)
		e->others = row->n > e->sent ? (int)(row->n - e->sent) : 0;
	pthread_mutex_unlock(&rate_mtx);
	return 0;
}

int
rate_sync(uint64_t now)
{
	long long win = (long long)(now / RATE_WINDOW_MS);
	size_t n;
	struct db_rate_delta *d = rate_deltas(now, &n);
	int rc = 0;

	/* windows before the previous one go with the next counts stored */
	if (n > 0 && (rc = db_rate_add(d, n, win - 1)) == 0)
		rate_stored(d, n);
	rate_deltas_free(d, n);
	if (db_rate_each(win, rate_cluster, &win) == -1)
		rc = -1;
	return rc;
}

/* A round every RATE_SYNC_MS while a limit is set. An outage logs one
 * line when it starts and one when it ends. */
static void
rate_sync_tick(void *arg)
{
	(void)arg;
	struct conf *c = conf_current();
	int on = rate_enabled(c);
	conf_unref(c);
	int rc = on ? rate_sync(rate_now()) : 0;
	if (rc == -1 && !rate_sync_down)
		log_err("rate: the store's counts are out of reach; each node"
		    " limits on its own counts until they are back");
	else if (rc == 0 && rate_sync_down)
		log_info("rate: the store's counts are back; limits are the cluster's");
	rate_sync_down = rc == -1;
}

void
rate_sync_start(void)
{
	if (tick_start(&rate_sync_thread) == -1)
		log_err("rate: pthread_create: %s; limits count this node only",
		    strerror(errno));
}

void
rate_sync_stop(void)
{
	tick_stop(&rate_sync_thread);
}

/* The wall clock (the test clock too): windows are the same minutes on
 * every node. */
static uint64_t
rate_now(void)
{
	return (uint64_t)time_wall() * 1000;
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
	    rate_limit(c, stage), rate_now()))
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
	    rate_limit(ps->conf, stage), rate_now());
}
