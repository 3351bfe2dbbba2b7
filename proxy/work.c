/*
 * work.c -- the policy worker pool (see work.h).
 */
#include "proxy/work.h"
#include "lib/stats.h"
#include "proxy/ev.h"

#include <pthread.h>
#include <errno.h>
#include <stdlib.h>

struct work_home {
	struct ev_loop	*loop;
	pthread_mutex_t	 mu;
	struct work_job	*head, **tail;
};

static struct {
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	struct work_job	*head, **tail;
	int		 stop;
	int		 n;
	pthread_t	*threads;
} pool = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, NULL, 0, 0, NULL };

static void	*work_main(void *);
static void	 work_return(struct work_job *);
static void	 work_run(struct work_job *);

void
work_init(int n)
{
	pool.tail = &pool.head;
	pool.n = n;
	pool.threads = xcalloc((size_t)n, sizeof(pthread_t));
	for (int i = 0; i < n; i++)
		if ((errno = pthread_create(&pool.threads[i], NULL, work_main, NULL)) != 0)
			fatal("pthread_create");
}

void
work_shutdown(void)
{
	pthread_mutex_lock(&pool.mu);
	pool.stop = 1;
	pthread_cond_broadcast(&pool.cv);
	pthread_mutex_unlock(&pool.mu);
	for (int i = 0; i < pool.n; i++)
		pthread_join(pool.threads[i], NULL);
	free(pool.threads); pool.threads = NULL;
	pool.n = 0;
}

static void *
work_main(void *unused)
{
	struct work_job *j;

	(void)unused;
	pthread_setname_np(pthread_self(), "postern-work");
	for (;;) {
		pthread_mutex_lock(&pool.mu);
		while (pool.head == NULL && !pool.stop)
			pthread_cond_wait(&pool.cv, &pool.mu);
		if (pool.head == NULL) {
			pthread_mutex_unlock(&pool.mu);
			return NULL;
		}
		j = pool.head;
		if ((pool.head = j->next) == NULL)
			pool.tail = &pool.head;
		pthread_mutex_unlock(&pool.mu);
		stats_gauge_add(STATS_G_WORK_QUEUE, -1);
		j->next = NULL;
		work_run(j);
	}
}

static void
work_run(struct work_job *j)
{
	const struct pol_msg *m = j->stage == POL_DATA ? &j->msg : NULL;
	uint64_t t0 = time_mono_ms();

	pol_run(j->ps, j->stage, m, &j->d);
	stats_observe(STATS_H_POLICY, (double)(time_mono_ms() - t0) / 1000.0);
	work_return(j);
}

void
work_run_here(struct work_home *h, struct work_job *j)
{
	uint64_t t0 = time_mono_ms();

	j->home = h;
	j->next = NULL;
	if (pol_run_here(j->ps, j->stage, j->stage == POL_DATA ? &j->msg : NULL, &j->d) == -1) {
		work_submit(h, j);
		return;
	}
	stats_inc(STATS_POLICY_INLINE, 1);
	stats_observe(STATS_H_POLICY, (double)(time_mono_ms() - t0) / 1000.0);
	/* work_return's ev_wake from the loop's own thread only marks the
	 * loop pending (it is not sleeping): no syscall. */
	work_return(j);
}

static void
work_return(struct work_job *j)
{
	struct work_home *h = j->home;
	int was_empty;

	pthread_mutex_lock(&h->mu);
	was_empty = h->head == NULL;
	*h->tail = j;
	h->tail = &j->next;
	pthread_mutex_unlock(&h->mu);
	if (was_empty)
		ev_wake(h->loop);
}

struct work_home *
work_home_new(struct ev_loop *l, void (*done)(void *), void *arg)
{
	struct work_home *h = xcalloc(1, sizeof(*h));

	h->loop = l;
	pthread_mutex_init(&h->mu, NULL);
	h->tail = &h->head;
	ev_wake_init(l, done, arg);
	return h;
}

void
work_home_free(struct work_home *h)
{
	pthread_mutex_destroy(&h->mu);
	free(h);
}

void
work_submit(struct work_home *h, struct work_job *j)
{
	j->home = h;
	j->next = NULL;
	pthread_mutex_lock(&pool.mu);
	if (pool.tail == NULL)
		pool.tail = &pool.head;
	*pool.tail = j;
	pool.tail = &j->next;
	pthread_mutex_unlock(&pool.mu);
	stats_gauge_add(STATS_G_WORK_QUEUE, 1);
	stats_inc(STATS_POLICY_WORKER, 1);
	/* Signalled after the unlock, so the woken worker does not sleep
	 * again at once on the mutex we still held (two futex calls fewer). */
	pthread_cond_signal(&pool.cv);
}

struct work_job *
work_take(struct work_home *h)
{
	struct work_job *list;

	pthread_mutex_lock(&h->mu);
	list = h->head;
	h->head = NULL;
	h->tail = &h->head;
	pthread_mutex_unlock(&h->mu);
	return list;
}
