/*
 * dsched.h -- the digest schedule: a thread of its own that sends a round
 * of quarantine digests (qsend_digest) at each time quarantine.digest
 * names, off the SMTP path (a round waits on the database and the
 * backend; no I/O loop ever does).
 *
 * Once a second it reads the current config (SIGHUP may change the
 * schedule) and the wall clock (time_wall: the tests' clock moves it) and
 * asks digest_slot() for the latest scheduled time. A slot it has not
 * handled yet is sent when it is at most half a period old (a gateway
 * started at 09:00 still sends the 08:00 round; one started in the
 * evening waits for tomorrow) and when digest_claim() gives it this
 * process, so of several nodes sharing a database one sends each round.
 *
 * Public calls: dsched_start, dsched_stop (cli/daemon.c).
 * Thread: start and stop from the main thread; the rounds on dsched's own.
 */
#ifndef POSTERN_DSCHED_H
#define POSTERN_DSCHED_H

#define DSCHED_TICK_MS	1000	/* how often the schedule is looked at */

/* Start the thread (it idles while digests are off). 0, or -1 logged. */
int	 dsched_start(void);
/* Stop it, waiting for a round in progress to end. */
void	 dsched_stop(void);

#endif
