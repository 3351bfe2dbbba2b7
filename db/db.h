/*
 * db.h -- Postern's storage interface: greylist, access lists, the verdict
 * log, per-minute stats, rules, the quarantine, web users and the
 * classifier's token counts. Callers get C structs and row iterators,
 * never SQL, a database handle or JSON: the schema is db/'s business and
 * the API's JSON is web/'s (web/rowjson.c).
 *
 * Engines: db.c implements these calls once and hands the storage work to
 * an engine's operations table (db/backend.h): SQLite (db/sqlite.c) today,
 * PostgreSQL next. Nothing outside db/ includes an engine's header.
 *
 * Threads: reads and admin edits run on the calling thread -- the policy
 * workers, web threads and the CLI, never an I/O loop -- each thread on a
 * connection of its own, opened on first use. Writes on the SMTP path
 * (verdicts, stats, greylist, learned tokens) go through the one writer
 * thread, which batches queued writes into transactions; db_grey_update(),
 * db_flush(), db_prune() and db_bayes_learn() queue a job and wait for it.
 * Admin edits (access lists, rules, users) and the quarantine commit on
 * the caller's connection: they are rare and need an answer at once.
 * Everything here is safe from any thread after db_open().
 *
 * Ownership: arguments are only read during the call (queued writes copy
 * what they need). An iterator (db_*_each, db_quar_get) calls fn once per
 * row; the row and every string and array it points to belong to db/ and
 * are valid only during that call -- copy what you keep. fn's non-zero
 * return stops the walk and is returned. Anything else handed out says
 * who frees it, at the call.
 *
 * Failure: every call returns -1 (and logs why) when the database is busy,
 * full or unwritable; callers turn that into a 4xx, never into a pass.
 * db_ok() says whether the writer's last attempt failed, so policy can
 * refuse new transactions while their verdicts could not be recorded.
 *
 * Adding a table: append one step at the END of the engine's migrations
 * (never edit a step that has shipped), add its operations to struct
 * db_backend, and the public calls here under their own heading.
 *
 * Privilege: read/write access to db.path and its directory (WAL files).
 */
#ifndef POSTERN_DB_H
#define POSTERN_DB_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct conf;

/* Busy database: how long one statement waits for a lock before failing. */
#define DB_BUSY_TIMEOUT_MS	2000
/* Writes waiting for the writer; past it the oldest verdict rows are
 * dropped (with a log line) rather than growing without bound. */
#define DB_QUEUE_MAX		100000
/* A synchronous write (greylist) waits this long for the writer. */
#define DB_SYNC_WAIT_MS		10000

/* --- lifecycle --------------------------------------------------------- */

/* Open db.path, run pending migrations, start the writer. 0 or -1 (logged).
 * With writer 0 (CLI tools) only reads and admin edits are possible. */
int	 db_open(const struct conf *, int writer);
/* New limits (expiry, ages) after SIGHUP; the path does not change. */
void	 db_reload(const struct conf *);
/* Flush queued writes (bounded wait), stop the writer, close. */
void	 db_close(void);
/* 1 when the writer's last transaction committed, 0 while it fails. */
int	 db_ok(void);
/* Schema version of the open database (number of migrations run). */
int	 db_schema_version(void);
/* Writes queued for the writer right now (the /metrics gauge). */
int	 db_queue_len(void);
/* Wait until every write queued so far is committed (tests, shutdown);
 * 0, or -1 on timeout or failure. */
int	 db_flush(int timeout_ms);
/* Delete rows past their age now (the writer also does it periodically). */
int	 db_prune(time_t now);

/* --- admin edits --------------------------------------------------------- */

/* A token that changes whenever an admin edit (access lists, rules, users,
 * the dashboard's domain policies)
 * is committed, by this process, a CLI process or another node on the
 * same store: readers keep what they built from those tables in memory
 * and rebuild when it changes, instead of reading the database for every
 * session. It follows the shared edit version (db_edit_version), which a
 * thread of the daemon reads every DB_EDIT_POLL_MS: asking costs one
 * atomic load and never touches the database, so the event loop may ask.
 * This process's own edits count at once. In a process opened without a
 * writer (CLI tools) each call reads the row. Safe from any thread after
 * db_open(). */
#define DB_EDIT_POLL_MS	500
unsigned long long db_admin_token(void);
/* The same for greylist edits by hand that a memory of passed triplets
 * must hear of (db_grey_forget), on a counter of their own, so that other
 * admin edits leave the greylist memory alone (policy/grey.c). */
unsigned long long db_grey_token(void);

/* --- greylisting ------------------------------------------------------- */

/* A triplet's row as stored. found is 0 for a triplet never seen. */
struct db_grey_row {
	int	 found;
	time_t	 first_seen, last_seen;
	int	 passed;		/* retried in time at least once */
	int	 attempts;		/* deferred ones and the one that passed */
};

/*
 * The decision lives in policy/grey.c; db only makes it atomic. step gets
 * the stored row (or found = 0) and rewrites it in place; it returns what
 * to tell the client (opaque here) and sets *count_pass when this call
 * made the triplet pass for the first time (auto-allowlist counter).
 */
typedef int (*db_grey_step_fn)(struct db_grey_row *, time_t now,
	    void *arg, int *count_pass);

/* Run step on (net, sender, rcpt) inside one write transaction and store
 * the result. Returns step's value, or -1 when the database failed. */
int	 db_grey_update(const char *net, const char *sender, const char *rcpt,
	    time_t now, db_grey_step_fn step, void *arg);
/* Read a triplet's row without writing (found = 0 when unknown): the hot
 * path for triplets that passed. 0, or -1 on a database error. */
int	 db_grey_get(const char *net, const char *sender, const char *rcpt,
	    struct db_grey_row *);
/* Has net passed greylisting at least `need` times and been seen within
 * expire seconds? 1 yes, 0 no, -1 database error. */
int	 db_grey_auto_allowed(const char *net, int need, time_t now, long long expire);
/* The network's auto-allowlist row as stored (0 and 0 when it has none):
 * 0, or -1 on a database error. */
int	 db_grey_auto_get(const char *net, int *passes, time_t *last_seen);
/* Forget a triplet (by hand: the next attempt is a new triplet): 1
 * deleted, and db_grey_token() moved in the same commit; 0 no such
 * triplet, -1 database error. */
int	 db_grey_forget(const char *net, const char *sender, const char *rcpt);
/* A stored triplet, for listing. */
struct db_grey_entry {
	const char *net, *sender, *rcpt;
	time_t	 first_seen, last_seen;
	int	 passed;
	int	 attempts;		/* as in db_grey_row */
};
/* A network's auto-allowlist row, for listing. */
struct db_grey_auto {
	const char *net;
	int	 passes;
	time_t	 last_seen;
};
/* Call fn for the limit most recently seen triplets (auto-allow rows),
 * newest first, until fn returns non-zero, which is then returned; 0 at
 * the end; -1 on error. Strings are valid only during the call. */
int	 db_grey_each(int limit,
	    int (*fn)(void *arg, const struct db_grey_entry *), void *arg);
int	 db_grey_auto_each(int limit,
	    int (*fn)(void *arg, const struct db_grey_auto *), void *arg);

/* --- access lists ------------------------------------------------------ */

struct db_access {
	long long id;
	const char *list;		/* "allow" or "deny" */
	const char *kind;		/* "client", "helo", "sender", "rcpt" */
	const char *value;		/* lower-case */
	const char *note;
	time_t	 created;
};

/* Add an entry (value is lower-cased). 0, 1 when it already existed, -1. */
int	 db_access_add(const char *list, const char *kind, const char *value,
	    const char *note);
/* Remove by list+kind+value. Returns rows removed (0 or 1), or -1. */
int	 db_access_del(const char *list, const char *kind, const char *value);
/* Call fn for each entry of kind (NULL = all kinds) until fn returns
 * non-zero, which is then returned; 0 at the end; -1 on error. Strings in
 * the entry are valid only during the call. */
int	 db_access_each(const char *kind,
	    int (*fn)(void *arg, const struct db_access *), void *arg);

/* --- verdict log and stats --------------------------------------------- */

struct db_check {
	const char *check, *result, *reason;	/* reason may be NULL */
	double	 score;
};

/* One finished transaction. Everything is copied by db_verdict_add(). */
struct db_verdict {
	time_t	 ts;
	const char *sid, *client_ip, *client_name, *helo, *mail_from;
	const char *const *rcpts;
	int	 nrcpts;
	size_t	 size;
	const char *msgid, *subject;
	const struct db_check *checks;
	int	 nchecks;
	double	 score;
	const char *verdict;		/* "accept", "tag", ... */
	const char *reply;		/* what we answered, "550 5.7.1 ..." */
	const char *outcome;		/* "accept", "backend-reject", ... */
	const char *stage;		/* where it ended: "rcpt", "end-of-data", ... */
	const char *mta_reply;		/* the backend's own answer or "" */
	unsigned long ms;
};

/* Queue a verdict row (and its per-minute counters) for the writer.
 * Never blocks on the database. */
void	 db_verdict_add(const struct db_verdict *);
/* Count one event (e.g. "session") in the per-minute stats. Queued. */
void	 db_stat_add(const char *name, time_t when, int n);

/* A stored verdict: its row id and the row as it was added (rcpts and
 * checks decoded; text exactly as stored, which need not be UTF-8). */
struct db_verdict_row {
	long long id;
	struct db_verdict v;
};
/* Recent verdicts, newest first: at most limit (clamped to 1..1000), ids
 * below before (0 = no bound), q matched case-insensitively as a substring
 * of client, sender, recipients, subject, Message-ID, verdict or outcome
 * (NULL or "" = all). fn is called per row until it returns non-zero,
 * which is then returned; 0 at the end; -1 on error. Everything the row
 * points to is valid only during the call. */
int	 db_verdict_each(int limit, long long before, const char *q,
	    int (*fn)(void *arg, const struct db_verdict_row *), void *arg);

/* One per-minute counter: name is "verdict:<v>", "outcome:<o>",
 * "check:<c>:<r>" or "session"; minute is a multiple of 60. */
struct db_stat_row {
	time_t	 minute;
	const char *name;
	long long n;
};
/* Counters of minutes from since on, by minute then name, through fn as
 * db_verdict_each does. 0, fn's non-zero, or -1. */
int	 db_stat_each(time_t since,
	    int (*fn)(void *arg, const struct db_stat_row *), void *arg);

/* --- rules ------------------------------------------------------------ */

struct rule_def;

/* Bumped by triggers on every change to the rules table: a cheap check
 * before each transaction tells whether the compiled set is stale.
 * The version, or -1 on error. */
long long db_rule_version(void);
/* Every rule, ordered by id: *defs xmalloc'd, each cleared with
 * rule_def_clear(). 0 or -1. */
int	 db_rule_load(struct rule_def **defs, size_t *n);
/* One rule by id: 0 found, 1 not found, -1 error. */
int	 db_rule_get(long long id, struct rule_def *out);
/* Add (id ignored): the new id, -2 when the name is taken, -1 on error. */
long long db_rule_add(const struct rule_def *);
/* Replace rule id: 0, 1 not found, -2 name taken, -1 error. */
int	 db_rule_update(long long id, const struct rule_def *);
/* 0, 1 not found, -1 error. */
int	 db_rule_delete(long long id);
/* Import in one transaction: each rule added or, by name, updated; with
 * replace, rules not in the list are deleted. 0 or -1 (nothing changed). */
int	 db_rule_import(const struct rule_def *, size_t n, int replace);

/* --- rule hit counts --------------------------------------------------- */

/* One rule's matches on one UTC day (day = ts / DB_DAY). Each "rule" check
 * of a verdict row that names a rule counts one, written by the writer in
 * the batch that stores the row (never on the SMTP path). */
#define DB_DAY	86400
/* Days of counts kept past the verdict log's age (the API shows 30). */
#define DB_RULE_HIT_DAYS	31
struct db_rule_hit {
	const char *name;
	long long day;
	long long n;
};
/* Counts of days from since_day on, by name then day, through fn as
 * db_verdict_each does. 0, fn's non-zero, or -1. */
int	 db_rule_hit_each(long long since_day,
	    int (*fn)(void *arg, const struct db_rule_hit *), void *arg);

/* --- rate counters, shared by the nodes of a cluster ------------------ */

/* One count of a rate limit: kind (enum rate_kind of policy/rate.h: 0
 * connections, 1 messages), the client's key, the window (minute of the
 * wall clock: time_wall() / 60) and a number of events. */
struct db_rate_delta {
	int		 kind;
	const char	*key;
	long long	 win;
	long long	 n;
};
/* Add each delta's n to the shared count of its (kind, key, win) and
 * forget the counts of windows before cut_win, in the writer's batch;
 * waits for the commit. The deltas are sorted by (win, kind, key), no two
 * alike (rate_deltas' are). 0 committed, or -1 (nothing added). */
int	 db_rate_add(const struct db_rate_delta *, size_t n, long long cut_win);
/* The shared counts of windows from since_win on (n is the cluster's
 * total), on the caller's connection; fn as db_verdict_each. 0, fn's
 * non-zero, or -1. */
int	 db_rate_each(long long since_win,
	    int (*fn)(void *arg, const struct db_rate_delta *), void *arg);

/* --- quarantine ------------------------------------------------------- */

/* A message going into quarantine. Everything is copied. */
struct db_quar {
	const char *id;			/* ID_LEN hex digits */
	time_t	 ts;
	const char *sid, *client_ip, *client_name, *helo, *mail_from;
	const char *const *rcpts;
	int	 nrcpts;
	const char *subject, *msgid;
	double	 score;
	const struct db_check *reasons;	/* the checks behind the score */
	int	 nreasons;
	const char *raw;
	size_t	 len;
};

/* A stored message, for listing (raw is NULL; len is its size). */
struct db_quar_row {
	struct db_quar q;
	const char *state;		/* "held", "releasing", "released" */
	time_t	 released_at;		/* 0 until released */
	const char *released_by;	/* NULL until released */
};

/* Search filters for the list; NULL/0 fields do not filter. Text filters
 * are case-insensitive substrings. */
struct db_quar_query {
	const char *q;			/* any of sender, recipients, subject, reasons */
	const char *sender, *rcpt, *subject, *reason;
	time_t	 since, until;		/* ts range, inclusive */
	const char *state;		/* "held", "releasing", "released" */
	int	 limit;			/* 1..1000 */
	int	 offset;
	int	 oldest_first;		/* else newest first */
	/* with oldest_first, a page after the row (since, after_id): only
	 * rows with ts > since, or ts == since and a greater id. Paging by
	 * key, not offset, so rows leaving the set between pages (released,
	 * expired) make no later row be skipped. NULL: none. */
	const char *after_id;
};

/* Commit a message durably (synchronous = FULL, on the caller's thread)
 * before the client hears 250. 0; -2 when it would take the quarantine over
 * max_total bytes; -1 on a database error (busy, full disk). */
int	 db_quar_add(const struct db_quar *, long long max_total);
/* Matching messages, newest first (or oldest_first), by id within one
 * second, through fn until it returns non-zero,
 * which is then returned; 0 at the end; -1 on error. Everything the row
 * points to is valid only during the call. */
int	 db_quar_each(const struct db_quar_query *,
	    int (*fn)(void *arg, const struct db_quar_row *), void *arg);
/* One message (no raw) through fn: fn's value (0 when fn returns 0), 1
 * when there is no such message (fn not called), -1 on error. */
int	 db_quar_get(const char *id,
	    int (*fn)(void *arg, const struct db_quar_row *), void *arg);
/* The raw message: 0 (*raw xmalloc'd), 1 not found, -1 error. */
int	 db_quar_raw(const char *id, char **raw, size_t *len);

/* A claimed message's envelope and body, owned by the caller: every
 * pointer is xmalloc'd and freed by db_quar_claimed_free(). */
struct db_quar_claimed {
	char	*mail_from;
	char	**rcpts;
	int	 nrcpts;
	char	*raw;
	size_t	 len;
};
/* Release, step 1: claim a held message for delivery (held -> releasing in
 * one UPDATE, so a double click or a second admin gets 2) and return its
 * envelope and raw message. 0 claimed (*out filled), 1 not found, 2 not
 * held, -1 error; *out is empty unless 0. */
int	 db_quar_claim(const char *id, struct db_quar_claimed *out);
void	 db_quar_claimed_free(struct db_quar_claimed *);
/* Step 2: delivered -> released (by who, at when); not delivered -> held
 * again. 0 or -1. */
int	 db_quar_finish(const char *id, int delivered, const char *who, time_t when);
/* 0 deleted, 1 not found, -1 error. */
int	 db_quar_delete(const char *id);
/* Delete up to limit messages older than now - max_age (oldest first),
 * never one being released: how many, or -1. A bounded batch keeps each
 * call short. */
int	 db_quar_expire(time_t now, long long max_age, int limit);
/* Total bytes held: >= 0, or -1. */
long long db_quar_total(void);

/* --- web users --------------------------------------------------------- */

/* Create or replace a dashboard user's password hash (an opaque string from
 * auth_hash()). 0 or -1. */
int	 db_user_set(const char *name, const char *hash);
/* The stored hash (xmalloc'd), or NULL when there is no such user or the
 * database failed (logged). */
char	*db_user_hash(const char *name);

/* --- classifier token counts ------------------------------------------ */

/* The classifier's totals. seq advances with every learn that changed
 * something (rows it touched carry it in their `seen`); epoch advances
 * whenever rows are deleted (expiry), so a reader that mirrors the table
 * knows when a delta is not enough. */
struct db_bayes_meta {
	long long nspam, nham;		/* messages learned per class */
	long long ntokens;		/* rows stored */
	long long seq, epoch;
};

/* One message to learn (cls 0 ham, 1 spam) or forget (cls 2), by digest. */
struct db_bayes_learn {
	unsigned char digest[32];	/* SHA-256 of the message */
	int	 cls;
	uint64_t *keys;			/* its token hashes: a learn that
					 * changes counts sorts them and drops
					 * repeats (nkeys then says how many) */
	size_t	 nkeys;
	/* filled in by the learn: */
	int	 was;			/* -1 unknown, else 0 ham / 1 spam */
	int	 changed;
};

/* The totals and every row changed after since (seen > since; -1: all),
 * in one read snapshot: fn(arg, key, spam, ham) per row (a row whose
 * counts are both 0 was forgotten). 0 or -1. */
int	 db_bayes_load(long long since, struct db_bayes_meta *,
	    void (*fn)(void *arg, uint64_t key, unsigned spam, unsigned ham), void *arg);
/* Learn n messages in one transaction, in order, then expire the least
 * recently seen rows past max_tokens (0: no cap; down to 9/10 of it, so
 * that expiry runs once per many learns). With a writer (the daemon) the
 * writer runs it and this waits (DB_SYNC_WAIT_MS); without (CLI) it runs
 * on the caller's connection. 0 (was/changed filled) or -1. */
int	 db_bayes_learn(struct db_bayes_learn *, size_t n, long long max_tokens);
/* Learns queued and not yet written, at most: each holds a message's keys
 * (tens of KB with the Markov grams) and costs the writer milliseconds,
 * so a writer that falls behind a stream of autolearns skips them rather
 * than queue them without bound (DB_QUEUE_MAX jobs of that size would be
 * gigabytes) and hold verdict rows up behind them. */
#define DB_BAYES_PENDING_MAX	64
/* Queued learns wait for company before the writer commits them: up to
 * DB_BAYES_LINGER_MS, or until DB_BAYES_LINGER_N are queued, or a job
 * someone waits for (db_flush, a quarantine row) comes. A learn dirties
 * thousands of token pages, so a commit per learn cost the writer 74-95
 * ms of CPU per message at 2-5 autolearns a second; learns sharing a
 * commit share those pages (db_bayes_sum): 31-47 ms. */
#define DB_BAYES_LINGER_MS	1000
#define DB_BAYES_LINGER_N	16
/* One learn queued to the writer without waiting; in a process without
 * a writer it is stored at once instead. It takes the learn's keys (an
 * xmalloc'd array, freed once written or refused; a copy of 15,000 keys
 * a message was 3.6% of the daemon's CPU with autolearn on) and copies
 * the rest. 0, or -1 when DB_BAYES_PENDING_MAX learns already wait
 * (nothing queued; the skips are logged, one line per thousand) or the
 * store failed. */
int	 db_bayes_learn_queue(struct db_bayes_learn *, long long max_tokens);
/* The totals only. 0 or -1. */
int	 db_bayes_meta(struct db_bayes_meta *);

/* --- shared by every node of a cluster ------------------------------ */

/* Small named values every node shares (a key, the last round of a
 * periodic job). 1 and *val (xmalloc'd, the caller frees it) when set, 0
 * when not, -1 on error. */
int	 db_meta_get(const char *key, char **val);
/* Set key to val; with keep, only when key is not set yet, so that of
 * several nodes starting at once the first one's value wins (read it back
 * with db_meta_get). 0 or -1. */
int	 db_meta_put(const char *key, const char *val, int keep);
/* Delete the values named prefix followed by a decimal number below
 * `below` (a periodic job's claims of rounds long past); every other name
 * stays. How many went, or -1. */
int	 db_meta_prune(const char *prefix, long long below);

/* The admin edit counter: one row every node reads, moved one step up
 * by each rule, access-list or user edit above and each db_meta_edit, in
 * the edit's own transaction (an edit never commits without it). Its
 * value, or -1 on error. */
long long db_edit_version(void);
/* An admin edit of a shared value (the dashboard's domain policies,
 * policy/domtab.c): key set to val and the edit counter one step up, in
 * one transaction; this process's db_admin_token() moves at once. 0 or
 * -1 (then neither happened). */
int	 db_meta_edit(const char *key, const char *val);

/* Web login sessions, keyed by the hex SHA-256 of the cookie's token (the
 * token itself is never stored), so that a login on one node is valid on
 * every node. user and csrf are at most DB_SESSION_TEXT - 1 bytes. */
#define DB_SESSION_TEXT	128
/* A session's last use is written at most this often: a dashboard asks
 * every few seconds, and the idle limit is hours. */
#define DB_SESSION_TOUCH_S	60
/* Store a new session created (and seen) at now. 0 or -1. */
int	 db_session_put(const char *hash, const char *user, const char *csrf,
	    time_t now);
/* Look a session up: 1 and user/csrf filled (NUL-terminated, cut to their
 * sizes) when it was seen at or after idle_cut and created at or after
 * age_cut -- its seen time then moves to now, at most every
 * DB_SESSION_TOUCH_S (a failed move is logged, not an error); 0 when
 * unknown or expired;
 * -1 on error. */
int	 db_session_get(const char *hash, time_t now, time_t idle_cut,
	    time_t age_cut, char *user, size_t ulen, char *csrf, size_t clen);
/* End a session (logout): 0 or -1 (0 also when it did not exist). */
int	 db_session_del(const char *hash);
/* Delete sessions seen before idle_cut or created before age_cut: how
 * many, or -1. */
int	 db_session_prune(time_t idle_cut, time_t age_cut);

/* --- moving up: SQLite to PostgreSQL ----------------------------------- */

/* The tables db_copy() copies; db_copy_table(i) names the i-th (NULL past
 * the last). */
#define DB_COPY_TABLES	16
const char *db_copy_table(size_t i);
/* Rows copied so far of all (done), of how many (total); table is the one
 * being copied. Called every few hundred rows and after each table. */
typedef void (*db_copy_progress_fn)(void *arg, const char *table,
	    long long done, long long total);
/* Copy the SQLite database at path (migrated first) into the PostgreSQL
 * database at url (migrated first), every table, in one transaction;
 * copied[i] is what went into table i. 0 done; 1 refused: the target
 * already holds state (why names a table with rows; nothing was written);
 * -1 failed (logged; nothing was written). Call it with no database open
 * (before or instead of db_open). */
int	 db_copy(const char *path, const char *url, db_copy_progress_fn fn,
	    void *arg, long long copied[DB_COPY_TABLES], char *why, size_t whylen);

#endif
