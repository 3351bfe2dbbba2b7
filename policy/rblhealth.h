/*
 * rblhealth.h -- is each DNS list answering correctly? A thread of its own
 * probes every zone of rbl.zones and rbl.rhsbl_zones every
 * rbl.health_interval with the RFC 5782 test entries (section 5: an IP list
 * lists 127.0.0.2 and not 127.0.0.1; a domain list lists "test" and not
 * "invalid") through dns_query(), and keeps a state per zone:
 *	ok			both test entries answered as they should
 *	dead			no answer: timeout, SERVFAIL, network error
 *	listing-everything	127.0.0.1 / "invalid" listed, or any answer in
 *				127.255.255.0/24 (the list refusing us)
 *	listing-nothing		127.0.0.2 / "test" not listed
 * Policy (rbl.c) asks rblh_usable() before each list and skips a zone whose
 * state is not ok (a zone never probed yet is usable); each change of a
 * zone's state is one log line, never one per message.
 *
 * Thread: every call from any thread (one mutex); the probes run on the
 * module's own thread, never on an I/O loop or a policy worker.
 */
#ifndef POSTERN_RBLHEALTH_H
#define POSTERN_RBLHEALTH_H

#include <time.h>

#include "policy/rbl.h"

enum rblh_state {
	RBLH_UNKNOWN = 0,	/* not probed yet */
	RBLH_OK,
	RBLH_DEAD,
	RBLH_LISTS_ALL,
	RBLH_LISTS_NONE,
};

/* One zone as the web shows it (a copy: the table may change after). */
struct rblh_view {
	char		 zone[RBL_ZONE_MAX + 1];
	const char	*kind;		/* "dnsbl", "dnswl" or "rhsbl" */
	enum rblh_state	 state;
	time_t		 probed;	/* wall clock; 0: never */
	unsigned	 latency_ms;	/* both test questions, last probe */
	char		 listed_answer[80];	/* 127.0.0.2 / "test" */
	char		 unlisted_answer[80];	/* 127.0.0.1 / "invalid" */
	unsigned long	 listed_hour;	/* sessions it listed this hour */
	unsigned long	 sessions_hour;	/* sessions checked this hour */
};

#define RBLH_MAX_ZONES	(2 * RBL_MAX_SITES)

/* Start and stop the probing thread (serve only: a one-shot command has
 * no health and uses every list). It reads conf_current() each round, so
 * a reload's zones and interval apply from the next round. */
void	 rblh_start(void);
void	 rblh_stop(void);
/* Probe every zone of c once, now, on the calling thread. */
void	 rblh_round(const struct conf *c);
/* May policy ask zone (domain: an RHSBL, else an IP list)? 1 or 0. */
int	 rblh_usable(const char *zone, int domain);
/* Count, for this hour's share: a session checked against the IP lists,
 * and one a zone listed. */
void	 rblh_count_session(void);
void	 rblh_count_listed(const char *zone, int domain);
/* Copy up to max zones into out; returns how many. */
int	 rblh_snapshot(struct rblh_view *out, int max);
const char *rblh_state_name(enum rblh_state);

#endif
