/*
 * grey.h -- greylisting with postgrey/sqlgrey semantics, decided per RCPT.
 *
 * The triplet is (client network, envelope sender, recipient); the network
 * is the client address cut to greylist.ipv4_prefix / ipv6_prefix bits.
 * First attempt: 450 4.7.1 "Greylisted, try again in N seconds". A retry
 * after greylist.delay and within greylist.retry_window of the first
 * attempt passes, and the triplet then passes until unused for
 * greylist.expire. A network whose triplets first passed greylist.auto_allow
 * times is not greylisted any more (until unused for greylist.expire).
 * Not greylisted either: allowlisted clients, senders and recipients
 * (policy/access), clients on a DNS allow list, and, when enabled, senders
 * from greylist.skip_domains with SPF pass or with a DKIM signature that
 * verifies for a skip domain aligned with the From header
 * (greylist.skip_dkim_pass) -- all read from the typed findings of the
 * checks before (ps->found: dnswl, spf, dkim[]). DKIM is only known at
 * the end of DATA, so for envelope senders from a skip domain the
 * decision waits until then (grey_data_check runs after dkim and dmarc):
 * the message passes on the signature, or its recipients' triplets are
 * run through greylisting then, and a deferral answers 450 4.7.1 to the
 * final dot. A database failure answers 451 4.3.0, never a pass.
 *
 * State is in the database (db_grey_update() makes each step atomic);
 * time is time_wall(), so tests move the clock with POSTERN_CLOCK_FILE.
 * What the database said about passed triplets and auto-allowlisted
 * networks is kept in memory too (policy/greyc.h): a recipient decided by
 * that alone needs no SQLite read, so its stage may run on the I/O loop.
 * Thread: a worker, on its own session; or the session's I/O loop in a
 * speculative run (policy/policy.c, pol_run_here), where a recipient that
 * needs the database sends the stage to a worker, and one that waits for
 * DKIM is kept only once the stage is (grey_check.commit).
 */
#ifndef POSTERN_GREY_H
#define POSTERN_GREY_H

#include <time.h>

struct db_grey_row;
struct pol_check;

enum grey_action {
	GREY_NEW = 0,		/* first attempt (or after expiry/window): defer */
	GREY_EARLY,		/* retried before the delay: defer */
	GREY_PASS_RETRY,	/* retried in time: passes from now on */
	GREY_PASS_KNOWN,	/* passed before */
};

/* A passed triplet's last_seen is refreshed (a write) at most this often;
 * in between it passes on a read alone. Far below greylist.expire. */
#define GREY_TOUCH_S	3600

struct grey_params {
	long long	 delay, retry_window, expire;
	/* out: seconds the client should still wait (NEW, EARLY) */
	long long	 wait;
	/* out: the row grey_step left (to store) and whether it counted a
	 * first pass, for the cache of policy/greyc.h */
	int		 passed, counted;
	time_t		 last_seen;
};

/* The state machine, pure: the row in, the row out (for db_grey_update). */
int	 grey_step(struct db_grey_row *, time_t now, void *params, int *count_pass);
/* Does a verified host name look dynamic (greylist.only_unverified)? */
int	 grey_name_dynamic(const char *name);
/* Is domain (or a parent of it) listed in a comma-separated set? 1 or 0. */
int	 grey_domain_listed(const char *list, const char *domain);

/* By hand (the API): make a stored triplet pass from now on, or forget
 * it so that its next attempt is a new triplet. The parts as stored
 * (lower-case, the network as listed). 1 done, 0 no such triplet, -1
 * database error. */
int	 grey_hand_pass(const char *net, const char *sender, const char *rcpt);
int	 grey_hand_forget(const char *net, const char *sender, const char *rcpt);

extern const struct pol_check grey_check;
extern const struct pol_check grey_data_check;	/* after dkim and dmarc */

#endif
