/*
 * tick.h -- a background thread that calls one function every so many
 * milliseconds until it is stopped: the DNS-list health probes, the rate
 * counters' sync with the store and the digest schedule each run on one.
 * Stopping wakes the thread at once and joins it; a function that loops
 * for long asks tick_stopping() between its steps.
 *
 * Public calls: tick_start, tick_stop, tick_stopping.
 * Ownership: the caller owns the struct tick (usually static) and fills
 *   name, ms, fn and arg before tick_start; the rest is tick's.
 * Thread: start and stop from one thread (the daemon's lifecycle);
 *   tick_stopping from any.
 */
#ifndef POSTERN_TICK_H
#define POSTERN_TICK_H

#include <pthread.h>
#include <stdatomic.h>

struct tick {
	const char	*name;		/* thread name and log lines */
	unsigned	 ms;		/* the pause between two calls */
	void		(*fn)(void *);
	void		*arg;

	pthread_t	 thread;
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	int		 running;
	atomic_int	 stopping;
};

/* Start the thread, which calls fn at once and then every ms. 0, or -1
 * and errno when no thread could be made (the caller says what that
 * costs). */
int	 tick_start(struct tick *);
/* Wake the thread, wait for fn to return and join it. Idempotent. */
void	 tick_stop(struct tick *);
/* Has tick_stop been called? */
int	 tick_stopping(struct tick *);

#endif
