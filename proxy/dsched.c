/*
 * dsched.c -- see dsched.h.
 */
#include "proxy/dsched.h"
#include "lib/conf.h"
#include "lib/util.h"
#include "policy/digest.h"
#include "proxy/qsend.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

static pthread_t	 dsched_thread;
static pthread_mutex_t	 dsched_mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	 dsched_cond = PTHREAD_COND_INITIALIZER;
static int		 dsched_running, dsched_stopping;
static time_t		 dsched_done;	/* the last slot handled */

static void	*dsched_main(void *);
static void	 dsched_tick(void);
static void	 dsched_round(const struct conf *, time_t slot, time_t now);

static void
dsched_round(const struct conf *c, time_t slot, time_t now)
{
	struct qsend_digest_sum sum;
	char err[512];
	int rc = digest_claim(slot);

	if (rc != 1) {
		if (rc == -1)
			log_err("digest: cannot claim the round of %lld (database)", (long long)slot);
		return;
	}
	if (qsend_digest(c, now, &sum, err, sizeof(err)) == -1)
		log_err("digest: round not sent: %s", err);
	else
		log_info("digest: round sent: %d recipients, %d messages%s%s", sum.rcpts,
		    sum.msgs, sum.failed ? "; " : "", sum.failed ? err : "");
}

static void
dsched_tick(void)
{
	struct conf *c = conf_current();
	time_t now = time_wall(), slot;

	if (c == NULL)
		return;
	slot = digest_slot(c, now);
	if (slot != 0 && slot != dsched_done) {
		dsched_done = slot;
		if (now - slot <= c->digest_every / 2)
			dsched_round(c, slot, now);
	}
	conf_unref(c);
}

static void *
dsched_main(void *arg)
{
	struct timespec ts;

	(void)arg;
	pthread_setname_np(pthread_self(), "postern-digest");
	pthread_mutex_lock(&dsched_mtx);
	while (!dsched_stopping) {
		pthread_mutex_unlock(&dsched_mtx);
		dsched_tick();
		pthread_mutex_lock(&dsched_mtx);
		time_deadline_ts(CLOCK_REALTIME, DSCHED_TICK_MS, &ts);
		while (!dsched_stopping &&
		    pthread_cond_timedwait(&dsched_cond, &dsched_mtx, &ts) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&dsched_mtx);
	return NULL;
}

int
dsched_start(void)
{
	dsched_stopping = 0;
	if ((errno = pthread_create(&dsched_thread, NULL, dsched_main, NULL)) != 0) {
		log_err("digest: cannot start the schedule thread: %s", strerror(errno));
		return -1;
	}
	dsched_running = 1;
	return 0;
}

void
dsched_stop(void)
{
	if (!dsched_running)
		return;
	pthread_mutex_lock(&dsched_mtx);
	dsched_stopping = 1;
	pthread_cond_signal(&dsched_cond);
	pthread_mutex_unlock(&dsched_mtx);
	pthread_join(dsched_thread, NULL);
	dsched_running = 0;
}
