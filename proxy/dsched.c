/*
 * dsched.c -- see dsched.h.
 */
#include "proxy/dsched.h"
#include "lib/conf.h"
#include "lib/tick.h"
#include "lib/util.h"
#include "policy/digest.h"
#include "proxy/qsend.h"

#include <errno.h>
#include <string.h>

static void	 dsched_tick(void *);
static struct tick	 dsched_thread = {
	.name = "postern-digest", .ms = DSCHED_TICK_MS, .fn = dsched_tick,
};
static time_t		 dsched_done;	/* the last slot handled */

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
dsched_tick(void *arg)
{
	struct conf *c = conf_current();
	time_t now = time_wall(), slot;

	(void)arg;
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

int
dsched_start(void)
{
	if (tick_start(&dsched_thread) == -1) {
		log_err("digest: cannot start the schedule thread: %s", strerror(errno));
		return -1;
	}
	return 0;
}

void
dsched_stop(void)
{
	tick_stop(&dsched_thread);
}
