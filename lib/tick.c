/*
 * tick.c -- see tick.h.
 */
#include "lib/tick.h"
#include "lib/util.h"

#include <errno.h>
#include <stdio.h>

static void *
tick_main(void *arg)
{
	struct tick *t = arg;
	struct timespec ts;
	char name[16];

	snprintf(name, sizeof(name), "%s", t->name);
	pthread_setname_np(pthread_self(), name);
	pthread_mutex_lock(&t->mu);
	while (!atomic_load(&t->stopping)) {
		pthread_mutex_unlock(&t->mu);
		t->fn(t->arg);
		pthread_mutex_lock(&t->mu);
		time_deadline_ts(CLOCK_MONOTONIC, t->ms, &ts);
		/* checked under the lock: tick_stop's signal cannot fall
		 * between this test and the wait */
		while (!atomic_load(&t->stopping) &&
		    pthread_cond_timedwait(&t->cv, &t->mu, &ts) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&t->mu);
	return NULL;
}

int
tick_start(struct tick *t)
{
	pthread_condattr_t ca;

	pthread_mutex_init(&t->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&t->cv, &ca);
	pthread_condattr_destroy(&ca);
	atomic_store(&t->stopping, 0);
	if ((errno = pthread_create(&t->thread, NULL, tick_main, t)) != 0) {
		pthread_cond_destroy(&t->cv);
		pthread_mutex_destroy(&t->mu);
		return -1;
	}
	t->running = 1;
	return 0;
}

void
tick_stop(struct tick *t)
{
	if (!t->running)
		return;
	pthread_mutex_lock(&t->mu);
	atomic_store(&t->stopping, 1);
	pthread_cond_signal(&t->cv);
	pthread_mutex_unlock(&t->mu);
	pthread_join(t->thread, NULL);
	pthread_cond_destroy(&t->cv);
	pthread_mutex_destroy(&t->mu);
	t->running = 0;
}

int
tick_stopping(struct tick *t)
{
	return atomic_load(&t->stopping);
}
