/*
 * work.h -- the policy worker pool: jobs out, verdicts back to the owning
 * loop (in the manner of Redis's bio.c and OpenSMTPD's wait trees).
 *
 * A job carries the session id, the pol_session (which the loop does not
 * touch while the job is out: reading from the client pauses) and, for
 * DATA, a view of the spooled message. A worker runs pol_run(), then puts
 * the job on its home loop's done list and wakes that loop through its
 * eventfd. The loop takes done jobs with work_take() and looks the session
 * up by id; a job whose session is gone is dropped by the loop.
 * Ownership: the submitter allocates the job; it is the worker's from
 * work_submit() until it is back on the done list, then the loop's.
 * Thread: work_submit()/work_take() on a loop thread; pool threads inside.
 */
#ifndef POSTERN_WORK_H
#define POSTERN_WORK_H

#include "lib/util.h"
#include "policy/policy.h"

struct ev_loop;
struct work_home;

struct work_job {
	struct work_job	*next;
	struct work_home *home;
	char		 sid[ID_LEN + 1];
	struct pol_session *ps;
	enum pol_stage	 stage;
	struct pol_msg	 msg;		/* POL_DATA only */
	struct pol_decision d;		/* the answer */
	void		*keep;		/* owner data the job keeps alive (spool) */
};

/* Start n worker threads (policy.workers). */
void		 work_init(int n);
/* Stop and join the workers once the queue is empty (loops are stopped
 * first, so nobody submits more). */
void		 work_shutdown(void);
/* A loop's return address; its eventfd is registered on the loop. */
struct work_home *work_home_new(struct ev_loop *, void (*done)(void *), void *arg);
void		 work_home_free(struct work_home *);
void		 work_submit(struct work_home *, struct work_job *);
/* Run the job here, on the loop thread (pol_run_here), and queue it on
 * the home's done list like a worker would: the loop finishes it on its
 * next turn, by the same path. Only for a stage pol_stage_needed() let
 * through; saves the futex and eventfd round trip through the pool. When
 * the stage needed more than the DNS cache and memory hold, it was undone
 * and the job goes to a worker after all (work_submit). */
void		 work_run_here(struct work_home *, struct work_job *);
/* All finished jobs for this home, as a list (oldest first), or NULL. */
struct work_job	*work_take(struct work_home *);

#endif
