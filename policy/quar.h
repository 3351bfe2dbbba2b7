/*
 * quar.h -- the quarantine: store at DATA, list/search, release to the
 * backend exactly once, delete, expire (for the web, the CLI and pol_run).
 *
 * Storage: the raw message and its envelope, client, score and reasons go
 * into one SQLite row (raw as a BLOB), committed with synchronous = FULL on
 * the worker's own connection before pol_run() returns POL_QUARANTINE, so
 * the client's 250 always follows a durable commit (docs/rules.md says why
 * a BLOB rather than a file).
 *
 * Release: quar_claim() (held -> releasing, one UPDATE: a double click
 * gets "not held") hands over the original envelope, the message and an
 * X-Postern-Released header; the caller delivers it (proxy/qsend.c: no
 * socket here); quar_finish() marks it released, or puts a failed
 * delivery back to held. A delivered release teaches the classifier the
 * message is ham (bayes.learn_on_release); "delete as spam" teaches it
 * spam (bayes.learn_on_delete_spam), then deletes.
 *
 * Public calls: quar_store, quar_claim, quar_finish, quar_spam,
 *   quar_expire, quar_tick.
 * Thread: any (policy workers, web threads, the CLI).
 * Exposure: message bytes are attacker-written; they are stored and handed
 * back byte for byte, never interpreted here.
 * Privilege: the database through db/.
 */
#ifndef POSTERN_QUAR_H
#define POSTERN_QUAR_H

#include "lib/util.h"

#include <stddef.h>
#include <time.h>

struct conf;
struct pol_decision;
struct pol_msg;
struct pol_session;
struct pol_skip;

#define QUAR_TICK_S		60	/* expiry runs at most this often */
#define QUAR_EXPIRE_BATCH	500	/* messages deleted per tick */

/*
 * At DATA with verdict QUARANTINE (called by pol_run): commit the message,
 * then answer 250 2.0.0 "Ok: quarantined as ID". Over quarantine.max_message
 * or max_total: 452 4.3.1; database failure: 451 4.3.0 (TEMPFAIL, nothing
 * lost). With quarantine.enabled = no the verdict becomes a 550 reject.
 */
void	 quar_store(struct pol_session *, const struct pol_msg *, struct pol_decision *);

/* A message claimed for release: what goes to the backend. */
struct quar_release {
	char		 id[ID_LEN + 1];
	const char	*who;		/* the caller's; "admin" when none given */
	time_t		 when;
	char		*from;		/* "" for <> */
	char		**rcpts;		/* as db_quar_claim() allocated them */
	int		 nrcpts;
	char		*header;	/* "X-Postern-Released: DATE by WHO" CRLF */
	char		*raw;		/* the message as stored */
	size_t		 len;
	struct pol_skip	*skip;		/* fields only Postern writes: left out */
	int		 nskip;
};
/* Claim a held message for release (held -> releasing) and fill r. 0
 * claimed (deliver it, then quar_finish), 1 not found, 2 not held
 * (released already or being released), -1 database error; err says why. */
int	 quar_claim(const struct conf *, const char *id, const char *who,
	    struct quar_release *r, char *err, size_t errsz);
/* After the delivery: released when delivered (and learned as ham under
 * bayes.learn_on_release), else back to held; logs why (err); frees r. */
void	 quar_finish(const struct conf *, struct quar_release *r, int delivered,
	    const char *err);
/* Delete a message as spam, learning it as spam first. 0 done, 1 not
 * found, 2 being released (not deleted; learned), -1 failed (kept; err
 * says why). */
int	 quar_spam(const struct conf *, const char *id, const char *who,
	    char *err, size_t errsz);
/* Delete messages older than quarantine.max_age (time_wall clock), at
 * most batch of them (0: all): how many, or -1. */
int	 quar_expire(const struct conf *, int batch);
/* quar_expire at most once a minute; cheap to call per transaction. */
void	 quar_tick(const struct conf *);
/* Would quar_tick() expire now or within a second (and so block on the
 * database and files)? Non-blocking. */
int	 quar_tick_due(void);

#endif
