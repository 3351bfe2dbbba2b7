/*
 * backend.h -- inside db/ only: the operations a storage engine implements
 * behind db.h, and what db.c shares with it. db.c owns everything that is
 * the same for every engine -- the public calls, the writer thread with
 * its queue, batching, retry and health, the per-minute counter sums, the
 * admin token, and the JSON text of recipient and check columns (jsonw) --
 * and calls the engine through struct db_backend. sqlite.c is the one
 * engine today (db_sqlite); a PostgreSQL engine fills the same table.
 *
 * Threads, as the engine sees them:
 * - open/close: the thread calling db_open()/db_close(). open(writer = 1)
 *   also prepares the connection the writer thread will use.
 * - begin, commit, rollback, retryable, probe, put_verdict, put_stat,
 *   put_rule_hit, grey_run, bayes_batch, rate_add: the writer thread only,
 *   between begin and commit/rollback (probe and prune outside a batch
 *   too). Each returns 0 or -1 (logged); after -1, retryable() says
 *   whether the failure was the database's state (busy, full, I/O: retry
 *   the batch later; 1) rather than the row's (drop it; 0), or a conflict
 *   with another node's concurrent transaction (a deadlock or
 *   serialization failure: retry the batch at once; DB_CONFLICT).
 * - everything else: any thread, on a connection of that thread's own,
 *   opened on first use and closed at thread exit. Return values are the
 *   public call's of the same name in db.h.
 *
 * Ownership: the engine keeps no pointer it is given past the call;
 * iterator rows point into the engine's memory only during the callback.
 * Admin edits report what changed; db.c runs each between edit_begin and
 * edit_end, which moves the shared edit counter in the edit's own
 * transaction when it changed something.
 */
#ifndef POSTERN_DB_BACKEND_H
#define POSTERN_DB_BACKEND_H

#include "db/db.h"

#include <jansson.h>

struct conf;
struct rule_def;

/* The text columns of a verdict row, in the order they are packed. */
enum db_vtext {
	DB_V_SID, DB_V_CLIENT_IP, DB_V_CLIENT_NAME, DB_V_HELO, DB_V_MAIL_FROM,
	DB_V_RCPTS, DB_V_MSGID, DB_V_SUBJECT, DB_V_CHECKS, DB_V_VERDICT,
	DB_V_REPLY, DB_V_MTA_REPLY, DB_V_OUTCOME, DB_V_STAGE,
	DB_V_NTEXT
};

/* A verdict row ready to store: one allocation for its strings, text
 * column k at text + off[k], NUL-terminated (its length is off[k + 1] -
 * off[k] - 1); DB_V_RCPTS and DB_V_CHECKS hold JSON text. From
 * off[DB_V_NTEXT] come the nstats counter names the row bumps, then the
 * nhits names of the rules it counts a hit for. */
struct db_vrow {
	time_t		 ts;
	long long	 size;
	double		 score;
	unsigned long	 ms;
	char		*text;
	size_t		 off[DB_V_NTEXT + 1];
	int		 nstats;
	int		 nhits;
};

/* retryable(): another writer's transaction got in the way. */
#define DB_CONFLICT	2

/* The shared edit counters every node polls (columns of the one row of
 * `edits`), and how an admin edit's transaction ends (edit_end): rolled
 * back (NONE: it changed nothing, or failed), or committed with one of
 * them one step up -- the admin version for access lists, rules, users
 * and domain policies; the greylist's for triplets forgotten by hand,
 * which only the greylist memory (policy/greyc.c) must hear of. */
enum db_edit_sig {
	DB_SIG_NONE = -1,
	DB_SIG_ADMIN,		/* edits.version */
	DB_SIG_GREY,		/* edits.grey */
	DB_SIG_N
};
/* Each counter's read and one-step statements, the same SQL for both
 * engines (db.c). */
extern const char *const db_edit_read_sql[DB_SIG_N];
extern const char *const db_edit_move_sql[DB_SIG_N];

struct db_backend {
	const char *name;

	/* lifecycle: connect, migrate (once, even with several processes
	 * starting at once), and keep the writer's connection when writer */
	int	(*open)(const struct conf *, int writer);
	void	(*close)(void);
	int	(*schema_version)(void);

	/* the writer thread's batch */
	int	(*begin)(void);
	int	(*commit)(void);
	void	(*rollback)(void);
	int	(*retryable)(void);
	int	(*probe)(void);		/* can a write transaction start? */
	int	(*put_verdict)(const struct db_vrow *);
	int	(*put_stat)(const char *name, long long minute, int n);
	int	(*put_rule_hit)(const char *name, long long day, int n);
	/* read the triplet, call step, store the row (and the auto-allow
	 * count); *answer is step's value */
	int	(*grey_run)(const char *net, const char *sender, const char *rcpt,
		    time_t now, db_grey_step_fn, void *arg, int *answer);
	/* rows past their age: verdicts and stats before verdict_cut,
	 * greylist rows last seen before grey_cut (writer, any time); how
	 * many went, or -1 */
	int	(*prune)(time_t verdict_cut, time_t grey_cut);
	/* learn v[0..n) in order (db.c's batch of every learn the writer
	 * took: their keys are summed, db_bayes_sum) */
	int	(*bayes_batch)(struct db_bayes_learn *const *v, size_t n,
		    long long max);

	/* reads */
	int	(*grey_get)(const char *net, const char *sender, const char *rcpt,
		    struct db_grey_row *);
	int	(*grey_auto_get)(const char *net, int *passes, time_t *last_seen);
	int	(*grey_each)(int limit,
		    int (*)(void *, const struct db_grey_entry *), void *);
	int	(*grey_auto_each)(int limit,
		    int (*)(void *, const struct db_grey_auto *), void *);
	int	(*access_each)(const char *kind,
		    int (*)(void *, const struct db_access *), void *);
	int	(*verdict_each)(int limit, long long before, const char *q,
		    int (*)(void *, const struct db_verdict_row *), void *);
	int	(*stat_each)(time_t since,
		    int (*)(void *, const struct db_stat_row *), void *);
	int	(*rule_hit_each)(long long since_day,
		    int (*)(void *, const struct db_rule_hit *), void *);
	long long (*rule_version)(void);
	int	(*rule_load)(struct rule_def **, size_t *);
	int	(*rule_get)(long long id, struct rule_def *);
	int	(*quar_each)(const struct db_quar_query *,
		    int (*)(void *, const struct db_quar_row *), void *);
	int	(*quar_get)(const char *id,
		    int (*)(void *, const struct db_quar_row *), void *);
	int	(*quar_raw)(const char *id, char **raw, size_t *len);
	long long (*quar_total)(void);
	char	*(*user_hash)(const char *name);
	int	(*bayes_meta)(struct db_bayes_meta *);
	int	(*bayes_load)(long long since, struct db_bayes_meta *,
		    void (*)(void *, uint64_t, unsigned, unsigned), void *);

	/* An admin edit's transaction on the caller's connection. The admin
	 * edits -- access_add ... rule_import below, user_set, and meta_put
	 * when db_meta_edit calls it -- run inside it, framing no
	 * transaction of their own. edit_end(sig): DB_SIG_NONE rolls back
	 * (0); else the counter moves and the whole commits (0), or nothing
	 * of it stays (-1). */
	int	(*edit_begin)(void);
	int	(*edit_end)(enum db_edit_sig sig);
	int	(*access_add)(const char *list, const char *kind,
		    const char *value, const char *note);	/* value lower-case */
	int	(*access_del)(const char *list, const char *kind, const char *value);
	int	(*grey_forget)(const char *net, const char *sender, const char *rcpt);
	long long (*rule_add)(const struct rule_def *);
	int	(*rule_update)(long long id, const struct rule_def *);
	int	(*rule_delete)(long long id);
	int	(*rule_import)(const struct rule_def *, size_t n, int replace);
	/* other edits, committed before they return */
	/* durably, before the client hears 250; rcpts and reasons are the
	 * JSON text of q's arrays */
	int	(*quar_add)(const struct db_quar *q, const char *rcpts,
		    const char *reasons, long long max_total);
	int	(*quar_claim)(const char *id, struct db_quar_claimed *);
	int	(*quar_finish)(const char *id, int delivered, const char *who,
		    time_t when);
	int	(*quar_delete)(const char *id);
	int	(*quar_expire)(time_t cut, int limit);
	int	(*user_set)(const char *name, const char *hash);
	/* learn outside the writer (a process without one), in a
	 * transaction of its own */
	int	(*bayes_learn)(struct db_bayes_learn *const *v, size_t n,
		    long long max);

	/* --- shared by every node of a cluster --------------------------- */
	/* small named values (the digest HMAC key, the last digest round,
	 * ...): 1 and *val (xmalloc'd) when set, 0 when not, -1 on error */
	int	(*meta_get)(const char *key, char **val);
	/* set key to val; with keep, only when key is not yet set (the
	 * first node's value wins); 0 or -1 */
	int	(*meta_put)(const char *key, const char *val, int keep);
	/* delete the keys prefix + decimal digits whose number is below
	 * `below`; how many went, or -1 */
	int	(*meta_prune)(const char *prefix, long long below);
	/* an edit counter every node polls (moved by edit_end): its value,
	 * -1 on error */
	long long (*edit_version)(enum db_edit_sig);
	/* web login sessions, keyed by the hex SHA-256 of the cookie token */
	int	(*session_put)(const char *hash, const char *user,
		    const char *csrf, time_t now);
	/* 1 and user/csrf filled when the session was seen at or after
	 * idle_cut and created at or after age_cut (and its seen time moved
	 * to now), 0 when unknown or expired, -1 on error */
	int	(*session_get)(const char *hash, time_t now, time_t idle_cut,
		    time_t age_cut, char *user, size_t ulen, char *csrf,
		    size_t clen);
	int	(*session_del)(const char *hash);
	/* delete sessions seen before idle_cut or created before age_cut */
	int	(*session_prune)(time_t idle_cut, time_t age_cut);
	/* rate counters (db_rate_add, on the writer in its batch; deltas
	 * distinct and sorted by (win, kind, key), so that two nodes lock
	 * rows in one order) and their totals (db_rate_each, any thread) */
	int	(*rate_add)(const struct db_rate_delta *, size_t n,
		    long long cut_win);
	int	(*rate_each)(long long since_win,
		    int (*)(void *, const struct db_rate_delta *), void *);
};

extern const struct db_backend db_sqlite;
extern const struct db_backend db_pg;

/* A row iterator's callback, whichever rows it walks (the engines keep
 * it with its argument while they step through a result). */
union db_row_fn {
	int	(*access)(void *, const struct db_access *);
	int	(*grey)(void *, const struct db_grey_entry *);
	int	(*grey_auto)(void *, const struct db_grey_auto *);
	int	(*verdict)(void *, const struct db_verdict_row *);
	int	(*stat)(void *, const struct db_stat_row *);
	int	(*rule_hit)(void *, const struct db_rule_hit *);
	int	(*rate)(void *, const struct db_rate_delta *);
	int	(*quar)(void *, const struct db_quar_row *);
};

/*
 * A learn batch's token moves, summed per key. An engine learning n
 * messages makes one with db_bayes_sum_new(n), reads each message's class
 * (v->was) and calls db_bayes_move(), which decides what the message
 * moves and adds it here; the engine stores the message's own row at
 * once (a repeat later in the batch must see it). At the end
 * db_bayes_sum_end() gives every key the batch moved, once, in the
 * database's order (signed 64-bit), with its summed deltas (keys whose
 * deltas add up to 0 and 0 left out): the engine writes each, stamped
 * with the batch's final seq, clamping counts at 0. A key with a
 * positive part (db_bayes_fresh) that has no row gets one, with that
 * part; each row made counts in ntokens. (Rows made, exactly: the
 * old rule, a row whose new spam + ham equals that part, also counted
 * the rows of a message relearned as the other class, so the count would
 * depend on how learns fall into batches.)
 *
 * Summed, the counts come out as message by message except where a count
 * would have gone below 0 midway, which clamps once at the end instead of
 * at that step. That takes counts already inconsistent: a row that expiry
 * deleted and a later learn made again holds fewer than the messages
 * learned with it, and forgetting one of those in the batch before a
 * learn that adds to the row leaves one less than message by message
 * (which clamped the forget). Expiry made that error, not the sum, and a
 * count off by one on a row expiry judged unimportant weighs nothing.
 * Besides, a key a batch learns
 * and forgets again is left untouched instead of left as a row of zeros
 * (which expiry deletes first), and every row is stamped with the batch's
 * last seq rather than its last message's (a reader loads all of the
 * batch's rows either way; expiry finds them all equally recent).
 * The gain is one write per distinct key instead of one per key and
 * message: most of a batch's keys repeat.
 *
 * The sum keeps pointers to the messages' keys: they must outlive it.
 */
struct db_bayes_delta {
	uint64_t	 key;
	int		 ds, dh;
};
struct db_bayes_sum;

struct db_bayes_sum *db_bayes_sum_new(size_t nmsg);
/* What learning message v moves, once the engine read what it was
 * learned as (v->was): sets v->changed; when it did, moves the class
 * totals and seq in m, sorts v's keys (dropping repeats) and adds them
 * to sum with the message's move. Returns v->changed. */
int	 db_bayes_move(struct db_bayes_learn *v, struct db_bayes_meta *m,
	    struct db_bayes_sum *sum);
/* The summed moves, *n of them, valid until db_bayes_sum_free(). */
const struct db_bayes_delta *db_bayes_sum_end(struct db_bayes_sum *, size_t *n);
void	 db_bayes_sum_free(struct db_bayes_sum *);
/* The part of d a row made for it starts with (see above). */
static inline int
db_bayes_fresh(const struct db_bayes_delta *d)
{
	return (d->ds > 0 ? d->ds : 0) + (d->dh > 0 ? d->dh : 0);
}

/* --- decoded columns ------------------------------------------------- */

/* An engine that keeps recipients and check results as JSON text
 * decodes them with these into db.h's typed arrays, which live (with
 * their strings) until db_dec_free(). */
struct db_dec {
	json_t		*jr, *jc;	/* the parsed columns */
	const char	**rcpts;	/* strings inside jr */
	struct db_check	*checks;	/* strings inside jc */
};

/* ["a@b",...] as an array of *n strings (non-strings skipped; text that is
 * not a JSON array reads as empty). */
const char	**db_dec_rcpts(struct db_dec *, const char *text, int *n);
/* [{"check":..,"result":..,"score":..[,"reason":..]},...] as *n checks;
 * a missing reason is NULL, a score that is not a number NaN. */
const struct db_check *db_dec_checks(struct db_dec *, const char *text, int *n);
void		 db_dec_free(struct db_dec *);
/* A claim's recipients: the column's text decoded into out->rcpts
 * (xmalloc'd copies). */
void		 db_dec_claimed(struct db_quar_claimed *out, const char *text);

#endif
