/*
 * sqlite.c -- the SQLite engine behind db.h (struct db_backend db_sqlite,
 * see backend.h): the schema and its migrations, every SQL statement of
 * the embedded store, and the connections.
 *
 * Connections: the writer thread's one writing connection (opened by
 * open(writer = 1), batches framed by begin/commit) with its prepared
 * statements; and a read connection per calling thread, opened on first
 * use and closed by a pthread key at thread exit. WAL lets them read
 * while the writer writes. Admin edits and the quarantine write on the
 * caller's connection, in transactions of their own (an admin edit's
 * framed by edit_begin/edit_end).
 *
 * Failure: every statement waits DB_BUSY_TIMEOUT_MS for a lock, then
 * fails (logged); busy, full, I/O and read-only errors are retryable().
 */
#include "db/backend.h"
#include "lib/conf.h"
#include "lib/util.h"
#include "rules/rules.h"

#include <assert.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SQ_STMT_CACHE	24	/* prepared hot-path statements kept per connection */
#define SQ_BAYES_CACHE_KB "131072"	/* page cache of a learning CLI process */
#define SQ_BUSY_POLL_US	1000	/* how often a blocked connection tries again */

/* A thread's connection and its prepared hot-path statements, keyed by
 * the SQL text's address (each is a literal in this file). */
struct sq_rconn {
	sqlite3		*h;
	struct {
		const char	*sql;
		sqlite3_stmt	*st;
	} cache[SQ_STMT_CACHE];
};

/* A row iterator's callback and its argument (seen: rows counted), and
 * the row's decoded JSON columns, freed after each call. */
struct sq_each {
	union db_row_fn fn;
	void	*arg;
	int	*seen;
	struct db_dec dec;
};

/* One migration step: SQL run once, in order, inside a transaction. */
struct sq_migration {
	const char	*what;
	const char	*sql;
};

static void	 sq_key_init(void);
static void	 sq_reader_free(void *p);
static sqlite3 *sq_conn_open(const char *path, int create);
static int	 sq_busy(void *arg, int tries);
static struct sq_rconn *sq_rconn(void);
static sqlite3 *sq_reader(void);
static sqlite3_stmt *sq_stmt_cached(struct sq_rconn *rc, const char *sql);
static sqlite3_stmt *sq_rstmt(sqlite3 **hp, const char *sql);
static void	 sq_rdone(sqlite3_stmt *st);
static int	 sq_exec(sqlite3 *h, const char *sql, const char *what);
static int	 sq_migrate(sqlite3 *h);
static void	 sq_mkdir_parent(const char *path);
static int	 sq_open(const struct conf *c, int writer);
static void	 sq_close(void);
static int	 sq_schema_version(void);
static int	 sq_wexec(const char *sql, const char *what);
static int	 sq_begin(void);
static int	 sq_commit(void);
static void	 sq_rollback(void);
static int	 sq_retryable(void);
static int	 sq_probe(void);
static int	 sq_transient(int rc);
static void	 sq_fail(sqlite3 *h, int rc, const char *what);
static int	 sq_step_done(sqlite3 *h, sqlite3_stmt *st, const char *what);
static sqlite3_stmt *sq_prep(sqlite3 *h, const char *sql);
static int	 sq_one_end(sqlite3 *h, sqlite3_stmt *st, int rc,
		    const char *what);
static int	 sq_wstep(sqlite3_stmt *st, const char *what);
static int	 sq_bump(const char *sql, long long k, const char *name, int n,
		    const char *what);
static int	 sq_stat_bump(const char *name, long long minute, int n);
static int	 sq_put_verdict(const struct db_vrow *v);
static int	 sq_rule_hit_bump(const char *name, long long day, int n);
static int	 sq_rule_hit_row(sqlite3_stmt *st, struct sq_each *e);
static int	 sq_rule_hit_each(long long since_day, int (*fn)(void *,
		    const struct db_rule_hit *), void *arg);
static int	 sq_grey_run(const char *net, const char *sender,
		    const char *rcpt, time_t now, db_grey_step_fn step,
		    void *arg, int *answer);
static int	 sq_prune(time_t verdict_cut, time_t grey_cut);
static int	 sq_grey_get(const char *net, const char *sender,
		    const char *rcpt, struct db_grey_row *row);
static int	 sq_grey_auto_get(const char *net, int *passes,
		    time_t *last_seen);
static const char *sq_ctext(sqlite3_stmt *st, int i);
static int	 sq_rows(sqlite3 *h, sqlite3_stmt *st, const char *what,
		    int (*row)(sqlite3_stmt *, struct sq_each *),
		    struct sq_each *each);
static int	 sq_rows_once(sqlite3 *h, sqlite3_stmt *st, const char *what,
		    int (*row)(sqlite3_stmt *, struct sq_each *),
		    struct sq_each *each);
static int	 sq_rows_by(const char *sql, long long v, const char *what,
		    int (*row)(sqlite3_stmt *, struct sq_each *),
		    struct sq_each *each);
static int	 sq_grey_row_each(sqlite3_stmt *st, struct sq_each *e);
static int	 sq_grey_each(int limit, int (*fn)(void *,
		    const struct db_grey_entry *), void *arg);
static int	 sq_grey_auto_row(sqlite3_stmt *st, struct sq_each *e);
static int	 sq_grey_forget(const char *net, const char *sender,
		    const char *rcpt);
static int	 sq_grey_auto_each(int limit, int (*fn)(void *,
		    const struct db_grey_auto *), void *arg);
static int	 sq_verdict_row(sqlite3_stmt *st, struct sq_each *e);
static int	 sq_verdict_each(int limit, long long before, const char *q,
		    int (*fn)(void *, const struct db_verdict_row *),
		    void *arg);
static int	 sq_stat_row(sqlite3_stmt *st, struct sq_each *e);
static int	 sq_stat_each(time_t since, int (*fn)(void *,
		    const struct db_stat_row *), void *arg);
static void	 sq_bind3(sqlite3_stmt *st, const char *a, const char *b,
		    const char *c);
static int	 sq_delete3(const char *sql, const char *a, const char *b,
		    const char *c, const char *what);
static int	 sq_access_add(const char *list, const char *kind,
		    const char *value, const char *note);
static int	 sq_access_del(const char *list, const char *kind,
		    const char *value);
static int	 sq_access_row(sqlite3_stmt *st, struct sq_each *e);
static int	 sq_access_each(const char *kind, int (*fn)(void *,
		    const struct db_access *), void *arg);
static long long	 sq_scalar(const char *sql);
static long long	 sq_rule_version(void);
static void	 sq_rule_row(sqlite3_stmt *st, struct rule_def *d);
static int	 sq_rule_load(struct rule_def **defs, size_t *n);
static int	 sq_rule_get(long long id, struct rule_def *out);
static void	 sq_rule_bind(sqlite3_stmt *st, const struct rule_def *d);
static int	 sq_rule_write(sqlite3 **hp, const char *sql,
		    const struct rule_def *d, long long id, const char *what);
static long long	 sq_rule_add(const struct rule_def *d);
static int	 sq_rule_update(long long id, const struct rule_def *d);
static int	 sq_rule_delete(long long id);
static int	 sq_rule_import(const struct rule_def *defs, size_t n,
		    int replace);
static int	 sq_quar_insert(const struct db_quar *q, const char *rcpts,
		    const char *reasons, long long max_total);
static int	 sq_quar_row(sqlite3_stmt *st, struct sq_each *e);
static int	 sq_quar_each(const struct db_quar_query *q, int (*fn)(void *,
		    const struct db_quar_row *), void *arg);
static int	 sq_quar_one(sqlite3_stmt *st, struct sq_each *e);
static int	 sq_quar_get(const char *id, int (*fn)(void *,
		    const struct db_quar_row *), void *arg);
static int	 sq_quar_raw(const char *id, char **raw, size_t *len);
static int	 sq_quar_change(const char *sql, const char *id,
		    const char *what);
static int	 sq_quar_claim(const char *id, struct db_quar_claimed *out);
static int	 sq_quar_finish(const char *id, int delivered, const char *who,
		    time_t when);
static int	 sq_quar_delete(const char *id);
static int	 sq_quar_expire(time_t cut, int limit);
static long long	 sq_quar_total(void);
static int	 sq_user_set(const char *name, const char *hash);
static char *sq_user_hash(const char *name);
static int	 sq_meta_get(const char *key, char **val);
static int	 sq_meta_put(const char *key, const char *val, int keep);
static int	 sq_meta_prune(const char *prefix, long long below);
static long long	 sq_edit_version(enum db_edit_sig sig);
static int	 sq_edit_begin(void);
static int	 sq_edit_end(enum db_edit_sig sig);
static int	 sq_session_put(const char *hash, const char *user,
		    const char *csrf, time_t now);
static int	 sq_session_get(const char *hash, time_t now, time_t idle_cut,
		    time_t age_cut, char *user, size_t ulen, char *csrf,
		    size_t clen);
static int	 sq_session_del(const char *hash);
static int	 sq_session_prune(time_t idle_cut, time_t age_cut);
static int	 sq_rate_add(const struct db_rate_delta *d, size_t n,
		    long long cut_win);
static int	 sq_rate_row(sqlite3_stmt *st, struct sq_each *e);
static int	 sq_rate_each(long long since_win, int (*fn)(void *,
		    const struct db_rate_delta *), void *arg);
static void	 sq_bq_free(sqlite3 *h, sqlite3_stmt **q);
static int	 sq_bq_prep(sqlite3 *h, sqlite3_stmt **q);
static int	 sq_bq_meta(sqlite3 *h, sqlite3_stmt *st,
		    struct db_bayes_meta *m);
static int	 sq_bq_tokens(sqlite3_stmt **q, const struct db_bayes_delta *d,
		    size_t n, struct db_bayes_meta *m);
static int	 sq_bq_token(sqlite3_stmt *st, const struct db_bayes_delta *d,
		    long long seq);
static int	 sq_bq_one(sqlite3 *h, sqlite3_stmt **q,
		    struct db_bayes_learn *v, struct db_bayes_meta *m,
		    struct db_bayes_sum *sum);
static int	 sq_bq_expire(sqlite3 *h, sqlite3_stmt **q,
		    struct db_bayes_meta *m, long long max);
static int	 sq_bayes_run(sqlite3 *h, struct db_bayes_learn *const *v,
		    size_t n, long long max);
static int	 sq_bayes_learn(struct db_bayes_learn *const *v, size_t n,
		    long long max_tokens);
static int	 sq_bayes_batch(struct db_bayes_learn *const *v, size_t n,
		    long long max_tokens);
static int	 sq_bayes_meta(struct db_bayes_meta *m);
static int	 sq_bayes_load(long long since, struct db_bayes_meta *m,
		    void (*fn)(void *, uint64_t, unsigned, unsigned),
		    void *arg);

/*
 * The schema, one step per entry. APPEND ONLY: a database records in
 * PRAGMA user_version how many steps it has run, so editing a shipped step
 * would leave existing databases behind. Rules and quarantine tables go in
 * new entries below the last one.
 */
static const struct sq_migration migrations[] = {
	{ "greylist, access lists, verdict log, stats",
	  "CREATE TABLE greylist ("
	  "  net TEXT NOT NULL, sender TEXT NOT NULL, rcpt TEXT NOT NULL,"
	  "  first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL,"
	  "  passed INTEGER NOT NULL DEFAULT 0,"
	  "  PRIMARY KEY (net, sender, rcpt)) WITHOUT ROWID;"
	  "CREATE INDEX greylist_last ON greylist(last_seen);"
	  "CREATE TABLE grey_auto ("
	  "  net TEXT PRIMARY KEY, passes INTEGER NOT NULL,"
	  "  last_seen INTEGER NOT NULL) WITHOUT ROWID;"
	  "CREATE TABLE access ("
	  "  id INTEGER PRIMARY KEY,"
	  "  list TEXT NOT NULL CHECK (list IN ('allow', 'deny')),"
	  "  kind TEXT NOT NULL CHECK (kind IN ('client', 'helo', 'sender', 'rcpt')),"
	  "  value TEXT NOT NULL, note TEXT NOT NULL DEFAULT '',"
	  "  created INTEGER NOT NULL, UNIQUE (list, kind, value));"
	  "CREATE TABLE verdicts ("
	  "  id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, sid TEXT NOT NULL,"
	  "  client_ip TEXT NOT NULL, client_name TEXT NOT NULL, helo TEXT NOT NULL,"
	  "  mail_from TEXT NOT NULL, rcpts TEXT NOT NULL, size INTEGER NOT NULL,"
	  "  msgid TEXT NOT NULL, subject TEXT NOT NULL, checks TEXT NOT NULL,"
	  "  score REAL NOT NULL, verdict TEXT NOT NULL, reply TEXT NOT NULL,"
	  "  backend_reply TEXT NOT NULL, ms INTEGER NOT NULL);"
	  "CREATE INDEX verdicts_ts ON verdicts(ts);"
	  "CREATE TABLE stats ("
	  "  minute INTEGER NOT NULL, name TEXT NOT NULL, n INTEGER NOT NULL,"
	  "  PRIMARY KEY (minute, name)) WITHOUT ROWID;" },
	{ "rules and quarantine",
	  "CREATE TABLE rules ("
	  "  id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
	  "  target TEXT NOT NULL, pattern TEXT NOT NULL, flags TEXT NOT NULL DEFAULT '',"
	  "  action TEXT NOT NULL, score REAL NOT NULL DEFAULT 0,"
	  "  enabled INTEGER NOT NULL DEFAULT 1, updated INTEGER NOT NULL);"
	  "CREATE TABLE rules_version ("
	  "  one INTEGER PRIMARY KEY CHECK (one = 1), version INTEGER NOT NULL);"
	  "INSERT INTO rules_version VALUES (1, 0);"
	  "CREATE TRIGGER rules_ins AFTER INSERT ON rules BEGIN"
	  "  UPDATE rules_version SET version = version + 1; END;"
	  "CREATE TRIGGER rules_upd AFTER UPDATE ON rules BEGIN"
	  "  UPDATE rules_version SET version = version + 1; END;"
	  "CREATE TRIGGER rules_del AFTER DELETE ON rules BEGIN"
	  "  UPDATE rules_version SET version = version + 1; END;"
	  "CREATE TABLE quarantine ("
	  "  id TEXT PRIMARY KEY, ts INTEGER NOT NULL, sid TEXT NOT NULL,"
	  "  client_ip TEXT NOT NULL, client_name TEXT NOT NULL, helo TEXT NOT NULL,"
	  "  mail_from TEXT NOT NULL, rcpts TEXT NOT NULL, subject TEXT NOT NULL,"
	  "  msgid TEXT NOT NULL, score REAL NOT NULL, reasons TEXT NOT NULL,"
	  "  size INTEGER NOT NULL, raw BLOB NOT NULL,"
	  "  state TEXT NOT NULL DEFAULT 'held'"
	  "   CHECK (state IN ('held', 'releasing', 'released')),"
	  "  released_at INTEGER, released_by TEXT);"
	  "CREATE INDEX quarantine_ts ON quarantine(ts);" },
	{ "web users",
	  "CREATE TABLE web_users ("
	  "  name TEXT PRIMARY KEY, hash TEXT NOT NULL,"
	  "  updated INTEGER NOT NULL) WITHOUT ROWID;" },
	/* The column backend_reply keeps the backend's own words only (the
	 * API also calls it mta_reply); rows from before get the outcome
	 * their verdict and reply tell, or "unknown". */
	{ "verdicts: outcome and stage",
	  "ALTER TABLE verdicts ADD COLUMN outcome TEXT NOT NULL DEFAULT '';"
	  "ALTER TABLE verdicts ADD COLUMN stage TEXT NOT NULL DEFAULT '';"
	  "UPDATE verdicts SET outcome = CASE"
	  "  WHEN verdict IN ('quarantine', 'reject', 'tempfail') THEN verdict"
	  "  WHEN backend_reply LIKE '2%' THEN 'accept' ELSE 'unknown' END;" },
	{ "classifier token counts",
	  "CREATE TABLE bayes_tokens ("
	  "  key INTEGER PRIMARY KEY, spam INTEGER NOT NULL, ham INTEGER NOT NULL,"
	  "  seen INTEGER NOT NULL);"
	  "CREATE INDEX bayes_tokens_seen ON bayes_tokens(seen);"
	  "CREATE TABLE bayes_msgs ("
	  "  digest BLOB PRIMARY KEY, class INTEGER NOT NULL,"
	  "  ts INTEGER NOT NULL) WITHOUT ROWID;"
	  "CREATE TABLE bayes_meta ("
	  "  one INTEGER PRIMARY KEY CHECK (one = 1), nspam INTEGER NOT NULL,"
	  "  nham INTEGER NOT NULL, ntokens INTEGER NOT NULL, seq INTEGER NOT NULL,"
	  "  epoch INTEGER NOT NULL);"
	  "INSERT INTO bayes_meta VALUES (1, 0, 0, 0, 0, 0);" },
	/* Rows from before count as one attempt: at least that was made. */
	{ "greylist: attempts",
	  "ALTER TABLE greylist ADD COLUMN attempts INTEGER NOT NULL DEFAULT 1;" },
	/* Matches per rule and UTC day (day = ts / 86400), by rule name so
	 * that counts survive an edit and an import of the same rule. */
	{ "rule hit counts",
	  "CREATE TABLE rule_hits ("
	  "  day INTEGER NOT NULL, name TEXT NOT NULL, n INTEGER NOT NULL,"
	  "  PRIMARY KEY (name, day)) WITHOUT ROWID;" },
	/* A log-only rule matches and is recorded, but adds no score and
	 * takes no action (docs/rules.md). */
	{ "rules: log-only",
	  "ALTER TABLE rules ADD COLUMN log_only INTEGER NOT NULL DEFAULT 0;" },
	/* Shared by every node of a cluster: small named values, the admin
	 * edit counter every node polls (db.c), and web login sessions. */
	{ "cluster: meta, edit version, web sessions",
	  "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;"
	  "CREATE TABLE edits ("
	  "  id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL);"
	  "INSERT INTO edits VALUES (1, 0);"
	  "CREATE TABLE web_sessions ("
	  "  hash TEXT PRIMARY KEY, user TEXT NOT NULL, csrf TEXT NOT NULL,"
	  "  created INTEGER NOT NULL, seen INTEGER NOT NULL) WITHOUT ROWID;" },
	/* A count per rate limit, client and minute (kind: 0 connections,
	 * 1 messages; win: time_wall() / 60), added to by every node's
	 * writer (policy/rate.c). Keyed by window first: the prune and the
	 * read of the current window are ranges. */
	{ "rate counters",
	  "CREATE TABLE rate_counts ("
	  "  win INTEGER NOT NULL, kind INTEGER NOT NULL, key TEXT NOT NULL,"
	  "  n INTEGER NOT NULL, PRIMARY KEY (win, kind, key)) WITHOUT ROWID;" },
	/* The greylist's own edit counter: a triplet forgotten by hand moves
	 * it, and only the greylist memory reloads (db.c, policy/grey.c). */
	{ "edit counter of the greylist",
	  "ALTER TABLE edits ADD COLUMN grey INTEGER NOT NULL DEFAULT 0;" },
	/* Append new steps here. */
};

static char		*sq_path;
static int		 sq_version;
static pthread_key_t	 sq_reader_key;
static pthread_once_t	 sq_key_once = PTHREAD_ONCE_INIT;
static sqlite3		*sq_wconn;	/* the writer thread's only */
static struct sq_rconn	 sq_wrc;	/* its prepared statements */

/* ---------------------------------------------------------------- setup */

static void
sq_key_init(void)
{
	if (pthread_key_create(&sq_reader_key, sq_reader_free) != 0)
		fatalx("db: pthread_key_create");
}

static void
sq_reader_free(void *p)
{
	struct sq_rconn *rc = p;

	for (int i = 0; i < SQ_STMT_CACHE; i++)
		sqlite3_finalize(rc->cache[i].st);
	sqlite3_close_v2(rc->h);
	free(rc);
}

/* Another connection holds the write lock: try again every
 * SQ_BUSY_POLL_US, for up to DB_BUSY_TIMEOUT_MS. SQLite's own handler
 * backs off to a try per 100 ms, and `postern learn` commits batch after
 * batch with only its tokenizing in between: a waiter at 100 ms missed
 * every gap, and the daemon's writer gave up and answered 451 at MAIL
 * while a learn of 4,000 messages ran (tests/integration/test_bayes.py,
 * test_bulk_learning_never_defers_mail). A wait runs on one thread, for
 * one statement at a time, so its start can be the thread's. */
static int
sq_busy(void *arg, int tries)
{
	static __thread uint64_t since;
	uint64_t now = time_mono_ms();

	(void)arg;
	if (tries == 0)
		since = now;
	else if (now - since >= DB_BUSY_TIMEOUT_MS)
		return 0;
	usleep(SQ_BUSY_POLL_US);
	return 1;
}

/* A connection with our settings; NULL (logged) on failure. */
static sqlite3 *
sq_conn_open(const char *path, int create)
{
	sqlite3 *h = NULL;
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX |
	    (create ? SQLITE_OPEN_CREATE : 0);
	int rc = sqlite3_open_v2(path, &h, flags, NULL);

	if (rc != SQLITE_OK) {
		log_err("db: cannot open %s: %s", path,
		    h ? sqlite3_errmsg(h) : sqlite3_errstr(rc));
		sqlite3_close_v2(h);
		return NULL;
	}
	sqlite3_busy_handler(h, sq_busy, NULL);
	sqlite3_extended_result_codes(h, 0);
	/* NORMAL is durable in WAL mode up to the last checkpointed commit;
	 * verdict rows may be lost in a power cut, mail never is. */
	if (sq_exec(h, "PRAGMA synchronous = NORMAL", "set synchronous") == -1) {
		sqlite3_close_v2(h);
		return NULL;
	}
	return h;
}

/* This thread's read connection, opened on first use; NULL on failure. */
static struct sq_rconn *
sq_rconn(void)
{
	struct sq_rconn *rc;
	sqlite3 *h;

	if (sq_path == NULL)
		fatalx("db: used before sq_open");
	if ((rc = pthread_getspecific(sq_reader_key)) != NULL)
		return rc;
	if ((h = sq_conn_open(sq_path, 0)) == NULL)
		return NULL;
	rc = xcalloc(1, sizeof(*rc));
	rc->h = h;
	pthread_setspecific(sq_reader_key, rc);
	return rc;
}

static sqlite3 *
sq_reader(void)
{
	struct sq_rconn *rc = sq_rconn();

	return rc ? rc->h : NULL;
}

/* A statement of rc's connection, prepared once and kept. NULL (logged)
 * on failure. */
static sqlite3_stmt *
sq_stmt_cached(struct sq_rconn *rc, const char *sql)
{
	int i, rv;

	for (i = 0; i < SQ_STMT_CACHE && rc->cache[i].sql != NULL; i++)
		if (rc->cache[i].sql == sql)
			return rc->cache[i].st;
	if (i == SQ_STMT_CACHE)
		fatalx("db: more than %d cached statements", SQ_STMT_CACHE);
	rv = sqlite3_prepare_v3(rc->h, sql, -1, SQLITE_PREPARE_PERSISTENT,
	    &rc->cache[i].st, NULL);
	if (rv != SQLITE_OK) {
		sq_fail(rc->h, rv, "prepare");
		sqlite3_finalize(rc->cache[i].st);
		rc->cache[i].st = NULL;
		return NULL;
	}
	rc->cache[i].sql = sql;
	return rc->cache[i].st;
}

/* A hot-path statement on this thread's connection; give it back with
 * sq_rdone(). NULL on failure. */
static sqlite3_stmt *
sq_rstmt(sqlite3 **hp, const char *sql)
{
	struct sq_rconn *rc = sq_rconn();

	if (rc == NULL)
		return NULL;
	*hp = rc->h;
	return sq_stmt_cached(rc, sql);
}

static void
sq_rdone(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

static int
sq_exec(sqlite3 *h, const char *sql, const char *what)
{
	char *err = NULL;
	int rc = sqlite3_exec(h, sql, NULL, NULL, &err);

	if (rc != SQLITE_OK) {
		log_err("db: %s failed: %s", what, err ? err : sqlite3_errstr(rc));
		sqlite3_free(err);
		return -1;
	}
	return 0;
}

/* Bring the schema up to date, all steps in one transaction. */
static int
sq_migrate(sqlite3 *h)
{
	int have = -1, want = (int)ARRAY_SIZE(migrations);
	sqlite3_stmt *st;

	if (sq_exec(h, "BEGIN IMMEDIATE", "migration lock") == -1)
		return -1;
	if (sqlite3_prepare_v2(h, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		have = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (have < 0 || have > want) {
		log_err("db: %s has schema version %d, this postern knows %d; "
		    "use a newer postern or another db.path", sq_path, have, want);
		sq_exec(h, "ROLLBACK", "rollback");
		return -1;
	}
	for (int i = have; i < want; i++) {
		log_info("db: migration %d: %s", i + 1, migrations[i].what);
		if (sq_exec(h, migrations[i].sql, migrations[i].what) == -1) {
			sq_exec(h, "ROLLBACK", "rollback");
			return -1;
		}
	}
	char sql[64];
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", want);
	if (sq_exec(h, sql, "set schema version") == -1 ||
	    sq_exec(h, "COMMIT", "migration commit") == -1) {
		sq_exec(h, "ROLLBACK", "rollback");
		return -1;
	}
	sq_version = want;
	return 0;
}

/* The database's directory, made when missing (a fresh checkout's var/). */
static void
sq_mkdir_parent(const char *path)
{
	char *dir = xstrdup(path), *slash = strrchr(dir, '/');

	if (slash != NULL && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0750) == 0)
			log_info("db: created directory %s", dir);
	}
	free(dir);
}

static int
sq_open(const struct conf *c, int writer)
{
	sqlite3 *h;

	pthread_once(&sq_key_once, sq_key_init);
	free(sq_path);
	sq_path = xstrdup(c->db_path);
	sq_mkdir_parent(sq_path);
	if ((h = sq_conn_open(sq_path, 1)) == NULL)
		return -1;
	if (sq_exec(h, "PRAGMA journal_mode = WAL", "enable WAL") == -1 ||
	    sq_migrate(h) == -1) {
		sqlite3_close_v2(h);
		return -1;
	}
	if (!writer) {
		sqlite3_close_v2(h);
		return 0;
	}
	sq_wconn = h;
	memset(&sq_wrc, 0, sizeof(sq_wrc));
	sq_wrc.h = h;
	return 0;
}

/* After the writer thread stopped: its connection, then the caller's. */
static void
sq_close(void)
{
	struct sq_rconn *rc;

	if (sq_wconn != NULL) {
		for (int i = 0; i < SQ_STMT_CACHE; i++)
			sqlite3_finalize(sq_wrc.cache[i].st);
		memset(&sq_wrc, 0, sizeof(sq_wrc));
		sqlite3_close_v2(sq_wconn);
		sq_wconn = NULL;
	}
	if ((rc = pthread_getspecific(sq_reader_key)) != NULL) {
		pthread_setspecific(sq_reader_key, NULL);
		sq_reader_free(rc);
	}
}

static int
sq_schema_version(void)
{
	return sq_version;
}

/* ---------------------------------------------------- the writer's batch */

/* A statement on the writer's connection, failure logged as what. */
static int
sq_wexec(const char *sql, const char *what)
{
	int rc = sqlite3_exec(sq_wconn, sql, NULL, NULL, NULL);

	if (rc != SQLITE_OK) {
		sq_fail(sq_wconn, rc, what);
		return -1;
	}
	return 0;
}

static int
sq_begin(void)
{
	return sq_wexec("BEGIN IMMEDIATE", "cannot start a write transaction");
}

static int
sq_commit(void)
{
	return sq_wexec("COMMIT", "commit failed");
}

static void
sq_rollback(void)
{
	sqlite3_exec(sq_wconn, "ROLLBACK", NULL, NULL, NULL);
}

static int
sq_retryable(void)
{
	return sq_transient(sqlite3_errcode(sq_wconn));
}

static int
sq_probe(void)
{
	return sq_exec(sq_wconn, "BEGIN IMMEDIATE; COMMIT", "health probe");
}


/* Busy, locked, full or I/O trouble: worth retrying later. */
static int
sq_transient(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_BUSY: case SQLITE_LOCKED: case SQLITE_FULL:
	case SQLITE_IOERR: case SQLITE_READONLY: case SQLITE_CANTOPEN:
	case SQLITE_PROTOCOL: case SQLITE_NOMEM:
		return 1;
	}
	return 0;
}

static void
sq_fail(sqlite3 *h, int rc, const char *what)
{
	log_err("db: %s: %s (%s)", what, sqlite3_errmsg(h), sqlite3_errstr(rc));
}

/* --------------------------------------------------- statements (writer) */

static int
sq_step_done(sqlite3 *h, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);

	sqlite3_finalize(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		sq_fail(h, rc, what);
		return -1;
	}
	return 0;
}

static sqlite3_stmt *
sq_prep(sqlite3 *h, const char *sql)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(h, sql, -1, &st, NULL);

	if (rc != SQLITE_OK) {
		sq_fail(h, rc, "prepare");
		sqlite3_finalize(st);
		return NULL;
	}
	return st;
}

/* After the one step of a single-row read (rc its result): finalize st;
 * 0 a row, 1 none, -1 error (logged). */
static int
sq_one_end(sqlite3 *h, sqlite3_stmt *st, int rc, const char *what)
{
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		sq_fail(h, rc, what);
		return -1;
	}
	return rc == SQLITE_ROW ? 0 : 1;
}

/* Step a writer statement to its end and reset it for the next use. */
static int
sq_wstep(sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		sq_fail(sqlite3_db_handle(st), rc, what);
		return -1;
	}
	return 0;
}

/* One UPSERT that adds n to a counter row keyed by (k, name), on the
 * writer's cached statement. */
static int
sq_bump(const char *sql, long long k, const char *name, int n, const char *what)
{
	sqlite3_stmt *st = sq_stmt_cached(&sq_wrc, sql);

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, k);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, n);
	return sq_wstep(st, what);
}

static int
sq_stat_bump(const char *name, long long minute, int n)
{
	return sq_bump("INSERT INTO stats (minute, name, n) VALUES (?1, ?2, ?3)"
	    " ON CONFLICT (minute, name) DO UPDATE SET n = n + excluded.n",
	    minute, name, n, "count stats");
}

static int
sq_rule_hit_bump(const char *name, long long day, int n)
{
	return sq_bump("INSERT INTO rule_hits (day, name, n) VALUES (?1, ?2, ?3)"
	    " ON CONFLICT (name, day) DO UPDATE SET n = n + excluded.n",
	    day, name, n, "count rule hits");
}

static int
sq_put_verdict(const struct db_vrow *v)
{
	static const char sql[] =
	    "INSERT INTO verdicts (ts, sid, client_ip, client_name, helo, mail_from,"
	    " rcpts, size, msgid, subject, checks, score, verdict, reply,"
	    " backend_reply, ms, outcome, stage) VALUES (?1, ?2, ?3, ?4, ?5, ?6,"
	    " ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)";
	/* The parameter of each text column, by enum db_vtext. */
	static const int col[DB_V_NTEXT] = { 2, 3, 4, 5, 6, 7, 9, 10, 11, 13, 14, 15,
	    17, 18 };
	sqlite3_stmt *st = sq_stmt_cached(&sq_wrc, sql);
	const size_t *off = v->off;

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)v->ts);
	for (int k = 0; k < DB_V_NTEXT; k++)
		sqlite3_bind_text(st, col[k], v->text + off[k],
		    (int)(off[k + 1] - off[k] - 1), SQLITE_STATIC);
	sqlite3_bind_int64(st, 8, v->size);
	sqlite3_bind_double(st, 12, v->score);
	sqlite3_bind_int64(st, 16, (sqlite3_int64)v->ms);
	return sq_wstep(st, "store verdict");
}

static int
sq_grey_run(const char *net, const char *sender, const char *rcpt, time_t now,
    db_grey_step_fn step, void *arg, int *answer)
{
	static const char q_get[] = "SELECT first_seen, last_seen, passed, attempts"
	    " FROM greylist WHERE net = ?1 AND sender = ?2 AND rcpt = ?3";
	static const char q_put[] =
	    "INSERT INTO greylist (net, sender, rcpt, first_seen, last_seen, passed, attempts)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (net, sender, rcpt) DO UPDATE"
	    " SET first_seen = excluded.first_seen, last_seen = excluded.last_seen,"
	    " passed = excluded.passed, attempts = excluded.attempts";
	static const char q_auto[] =
	    "INSERT INTO grey_auto (net, passes, last_seen) VALUES (?1, ?2, ?3)"
	    " ON CONFLICT (net) DO UPDATE SET passes = passes + excluded.passes,"
	    " last_seen = excluded.last_seen";
	struct db_grey_row row = { 0 };
	sqlite3_stmt *st = sq_stmt_cached(&sq_wrc, q_get);
	int rc, count_pass = 0;

	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, net, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, sender, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, rcpt, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		row.found = 1;
		row.first_seen = (time_t)sqlite3_column_int64(st, 0);
		row.last_seen = (time_t)sqlite3_column_int64(st, 1);
		row.passed = sqlite3_column_int(st, 2);
		row.attempts = sqlite3_column_int(st, 3);
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		sq_fail(sq_wconn, rc, "read greylist");
		return -1;
	}
	*answer = step(&row, now, arg, &count_pass);
	if ((st = sq_stmt_cached(&sq_wrc, q_put)) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, net, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, sender, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, rcpt, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)row.first_seen);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)row.last_seen);
	sqlite3_bind_int(st, 6, row.passed);
	sqlite3_bind_int(st, 7, row.attempts);
	if (sq_wstep(st, "store greylist") == -1)
		return -1;
	if (!row.passed)
		return 0;
	if ((st = sq_stmt_cached(&sq_wrc, q_auto)) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, net, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, count_pass ? 1 : 0);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)now);
	return sq_wstep(st, "store greylist auto-allow");
}

static int
sq_prune(time_t verdict_cut, time_t grey_cut)
{
	struct { const char *sql; long long cut; } p[] = {
		{ "DELETE FROM verdicts WHERE ts < ?1", verdict_cut },
		{ "DELETE FROM stats WHERE minute < ?1", verdict_cut },
		{ "DELETE FROM rule_hits WHERE day < ?1",
		  verdict_cut / DB_DAY - DB_RULE_HIT_DAYS },
		{ "DELETE FROM greylist WHERE last_seen < ?1", grey_cut },
		{ "DELETE FROM grey_auto WHERE last_seen < ?1", grey_cut },
	};
	int removed = 0;

	for (size_t i = 0; i < ARRAY_SIZE(p); i++) {
		sqlite3_stmt *st = sq_prep(sq_wconn, p[i].sql);
		if (st == NULL)
			return -1;
		sqlite3_bind_int64(st, 1, p[i].cut);
		if (sq_step_done(sq_wconn, st, "prune") == -1)
			return -1;
		removed += sqlite3_changes(sq_wconn);
	}
	return removed;
}

/* ---------------------------------------------------------------- reads */

static int
sq_grey_get(const char *net, const char *sender, const char *rcpt,
    struct db_grey_row *row)
{
	static const char sql[] = "SELECT first_seen, last_seen, passed, attempts"
	    " FROM greylist WHERE net = ?1 AND sender = ?2 AND rcpt = ?3";
	sqlite3 *h;
	sqlite3_stmt *st;
	int rc;

	memset(row, 0, sizeof(*row));
	if ((st = sq_rstmt(&h, sql)) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, net, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, sender, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, rcpt, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		row->found = 1;
		row->first_seen = (time_t)sqlite3_column_int64(st, 0);
		row->last_seen = (time_t)sqlite3_column_int64(st, 1);
		row->passed = sqlite3_column_int(st, 2);
		row->attempts = sqlite3_column_int(st, 3);
	}
	sq_rdone(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		sq_fail(h, rc, "read greylist");
		return -1;
	}
	return 0;
}

static int
sq_grey_auto_get(const char *net, int *passes, time_t *last_seen)
{
	static const char sql[] = "SELECT passes, last_seen FROM grey_auto WHERE net = ?1";
	sqlite3 *h;
	sqlite3_stmt *st;
	int rc;

	*passes = 0;
	*last_seen = 0;
	if ((st = sq_rstmt(&h, sql)) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, net, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		*passes = sqlite3_column_int(st, 0);
		*last_seen = (time_t)sqlite3_column_int64(st, 1);
	}
	sq_rdone(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		sq_fail(h, rc, "read greylist auto-allow");
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------- row iterators */

static const char *
sq_ctext(sqlite3_stmt *st, int i)
{
	const unsigned char *s = sqlite3_column_text(st, i);

	return s != NULL ? (const char *)s : "";
}

/* Step st to its end, calling row(st, each) per row until it returns
 * non-zero; st is reset (cached) or finalized by the caller. That value,
 * 0 at the end, or -1 (logged). */
static int
sq_rows(sqlite3 *h, sqlite3_stmt *st, const char *what,
    int (*row)(sqlite3_stmt *, struct sq_each *), struct sq_each *each)
{
	int rc, ret = 0;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		ret = row(st, each);
		db_dec_free(&each->dec);
		if (ret != 0)
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		sq_fail(h, rc, what);
		return -1;
	}
	return ret;
}

/* sq_rows on a statement prepared for this one query, then finalized. */
static int
sq_rows_once(sqlite3 *h, sqlite3_stmt *st, const char *what,
    int (*row)(sqlite3_stmt *, struct sq_each *), struct sq_each *each)
{
	int rc = sq_rows(h, st, what, row, each);

	sqlite3_finalize(st);
	return rc;
}

/* sq_rows_once on the reader's statement sql, with ?1 bound to v. */
static int
sq_rows_by(const char *sql, long long v, const char *what,
    int (*row)(sqlite3_stmt *, struct sq_each *), struct sq_each *each)
{
	sqlite3 *h = sq_reader();
	sqlite3_stmt *st;

	if (h == NULL || (st = sq_prep(h, sql)) == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, v);
	return sq_rows_once(h, st, what, row, each);
}

static int
sq_grey_row_each(sqlite3_stmt *st, struct sq_each *e)
{
	struct db_grey_entry g = {
		.net = sq_ctext(st, 0), .sender = sq_ctext(st, 1),
		.rcpt = sq_ctext(st, 2),
		.first_seen = (time_t)sqlite3_column_int64(st, 3),
		.last_seen = (time_t)sqlite3_column_int64(st, 4),
		.passed = sqlite3_column_int(st, 5),
		.attempts = sqlite3_column_int(st, 6),
	};

	return e->fn.grey(e->arg, &g);
}

static int
sq_grey_each(int limit, int (*fn)(void *, const struct db_grey_entry *), void *arg)
{
	struct sq_each e = { .fn.grey = fn, .arg = arg };

	return sq_rows_by("SELECT net, sender, rcpt, first_seen, last_seen, passed,"
	    " attempts FROM greylist ORDER BY last_seen DESC LIMIT ?1", limit,
	    "list greylist", sq_grey_row_each, &e);
}

static int
sq_grey_auto_row(sqlite3_stmt *st, struct sq_each *e)
{
	struct db_grey_auto a = {
		.net = sq_ctext(st, 0), .passes = sqlite3_column_int(st, 1),
		.last_seen = (time_t)sqlite3_column_int64(st, 2),
	};

	return e->fn.grey_auto(e->arg, &a);
}

static int
sq_grey_auto_each(int limit, int (*fn)(void *, const struct db_grey_auto *),
    void *arg)
{
	struct sq_each e = { .fn.grey_auto = fn, .arg = arg };

	return sq_rows_by("SELECT net, passes, last_seen FROM grey_auto"
	    " ORDER BY last_seen DESC LIMIT ?1", limit, "list auto-allow",
	    sq_grey_auto_row, &e);
}

static int
sq_verdict_row(sqlite3_stmt *st, struct sq_each *e)
{
	struct db_verdict_row r = {
		.id = sqlite3_column_int64(st, 0),
		.v = {
			.ts = (time_t)sqlite3_column_int64(st, 1),
			.sid = sq_ctext(st, 2), .client_ip = sq_ctext(st, 3),
			.client_name = sq_ctext(st, 4), .helo = sq_ctext(st, 5),
			.mail_from = sq_ctext(st, 6),
			.size = (size_t)sqlite3_column_int64(st, 8),
			.msgid = sq_ctext(st, 9), .subject = sq_ctext(st, 10),
			.score = sqlite3_column_double(st, 12),
			.verdict = sq_ctext(st, 13), .reply = sq_ctext(st, 14),
			.outcome = sq_ctext(st, 15), .stage = sq_ctext(st, 16),
			.mta_reply = sq_ctext(st, 17),
			.ms = (unsigned long)sqlite3_column_int64(st, 18),
		},
	};

	r.v.rcpts = db_dec_rcpts(&e->dec, sq_ctext(st, 7), &r.v.nrcpts);
	r.v.checks = db_dec_checks(&e->dec, sq_ctext(st, 11), &r.v.nchecks);
	return e->fn.verdict(e->arg, &r);
}

static int
sq_verdict_each(int limit, long long before, const char *q,
    int (*fn)(void *, const struct db_verdict_row *), void *arg)
{
	struct sq_each e = { .fn.verdict = fn, .arg = arg };
	sqlite3 *h = sq_reader();
	sqlite3_stmt *st;

	if (h == NULL || (st = sq_prep(h,
	    "SELECT id, ts, sid, client_ip, client_name, helo, mail_from, rcpts,"
	    " size, msgid, subject, checks, score, verdict, reply, outcome, stage,"
	    " backend_reply, ms FROM verdicts"
	    " WHERE (?1 = 0 OR id < ?1) AND (?2 IS NULL OR"
	    "  instr(lower(client_ip || ' ' || client_name || ' ' || mail_from || ' ' ||"
	    "   rcpts || ' ' || subject || ' ' || msgid || ' ' || verdict || ' ' ||"
	    "   outcome), lower(?2)) > 0)"
	    " ORDER BY id DESC LIMIT ?3")) == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, before);
	if (q && *q)
		sqlite3_bind_text(st, 2, q, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, limit);
	return sq_rows_once(h, st, "list verdicts", sq_verdict_row, &e);
}

static int
sq_stat_row(sqlite3_stmt *st, struct sq_each *e)
{
	struct db_stat_row r = {
		.minute = (time_t)sqlite3_column_int64(st, 0),
		.name = sq_ctext(st, 1), .n = sqlite3_column_int64(st, 2),
	};

	return e->fn.stat(e->arg, &r);
}

static int
sq_stat_each(time_t since, int (*fn)(void *, const struct db_stat_row *), void *arg)
{
	struct sq_each e = { .fn.stat = fn, .arg = arg };

	return sq_rows_by("SELECT minute, name, n FROM stats WHERE minute >= ?1"
	    " ORDER BY minute, name", since, "read stats", sq_stat_row, &e);
}

static int
sq_rule_hit_row(sqlite3_stmt *st, struct sq_each *e)
{
	struct db_rule_hit h = {
		.name = sq_ctext(st, 0), .day = sqlite3_column_int64(st, 1),
		.n = sqlite3_column_int64(st, 2),
	};

	return e->fn.rule_hit(e->arg, &h);
}

static int
sq_rule_hit_each(long long since_day,
    int (*fn)(void *, const struct db_rule_hit *), void *arg)
{
	struct sq_each e = { .fn.rule_hit = fn, .arg = arg };

	return sq_rows_by("SELECT name, day, n FROM rule_hits WHERE day >= ?1"
	    " ORDER BY name, day", since_day, "read rule hits", sq_rule_hit_row, &e);
}

/* ------------------------------------------------------- rate counters */

static int
sq_rate_add(const struct db_rate_delta *d, size_t n, long long cut_win)
{
	static const char q_add[] = "INSERT INTO rate_counts (win, kind, key, n)"
	    " VALUES (?1, ?2, ?3, ?4) ON CONFLICT (win, kind, key)"
	    " DO UPDATE SET n = n + excluded.n";
	static const char q_cut[] = "DELETE FROM rate_counts WHERE win < ?1";
	sqlite3_stmt *st;

	for (size_t i = 0; i < n; i++) {
		if ((st = sq_stmt_cached(&sq_wrc, q_add)) == NULL)
			return -1;
		sqlite3_bind_int64(st, 1, d[i].win);
		sqlite3_bind_int(st, 2, d[i].kind);
		sqlite3_bind_text(st, 3, d[i].key, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, d[i].n);
		if (sq_wstep(st, "count rates") == -1)
			return -1;
	}
	if ((st = sq_stmt_cached(&sq_wrc, q_cut)) == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, cut_win);
	return sq_wstep(st, "prune rate counts");
}

static int
sq_rate_row(sqlite3_stmt *st, struct sq_each *e)
{
	struct db_rate_delta r = {
		.win = sqlite3_column_int64(st, 0), .kind = sqlite3_column_int(st, 1),
		.key = sq_ctext(st, 2), .n = sqlite3_column_int64(st, 3),
	};

	return e->fn.rate(e->arg, &r);
}

static int
sq_rate_each(long long since_win,
    int (*fn)(void *, const struct db_rate_delta *), void *arg)
{
	struct sq_each e = { .fn.rate = fn, .arg = arg };

	return sq_rows_by("SELECT win, kind, key, n FROM rate_counts WHERE win >= ?1"
	    " ORDER BY win, kind, key",
	    since_win, "read rate counts", sq_rate_row, &e);
}

/* ---------------------------------------------------------- access lists */

/* ?1 list, ?2 kind, ?3 value (lower-cased by db.c). */
/* Bind ?1..?3; the strings outlive the statement's step. */
static void
sq_bind3(sqlite3_stmt *st, const char *a, const char *b, const char *c)
{
	sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, c, -1, SQLITE_STATIC);
}

static int
sq_access_add(const char *list, const char *kind, const char *value,
    const char *note)
{
	sqlite3 *h = sq_reader();
	sqlite3_stmt *st;

	if (h == NULL || (st = sq_prep(h,
	    "INSERT INTO access (list, kind, value, note, created)"
	    " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING")) == NULL)
		return -1;
	sq_bind3(st, list, kind, value);
	sqlite3_bind_text(st, 4, note ? note : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)time_wall());
	if (sq_step_done(h, st, "add access entry") == -1)
		return -1;
	return sqlite3_changes(h) == 0 ? 1 : 0;
}

/* Run a DELETE keyed by three text parameters: rows deleted, or -1. */
static int
sq_delete3(const char *sql, const char *a, const char *b, const char *c,
    const char *what)
{
	sqlite3 *h = sq_reader();
	sqlite3_stmt *st;

	if (h == NULL || (st = sq_prep(h, sql)) == NULL)
		return -1;
	sq_bind3(st, a, b, c);
	if (sq_step_done(h, st, what) == -1)
		return -1;
	return sqlite3_changes(h);
}

static int
sq_access_del(const char *list, const char *kind, const char *value)
{
	return sq_delete3("DELETE FROM access WHERE list = ?1 AND kind = ?2 AND value = ?3",
	    list, kind, value, "delete access entry");
}

static int
sq_grey_forget(const char *net, const char *sender, const char *rcpt)
{
	return sq_delete3("DELETE FROM greylist WHERE net = ?1 AND sender = ?2 AND rcpt = ?3",
	    net, sender, rcpt, "forget greylist triplet");
}

static int
sq_access_row(sqlite3_stmt *st, struct sq_each *e)
{
	struct db_access a = {
		.id = sqlite3_column_int64(st, 0),
		.list = sq_ctext(st, 1), .kind = sq_ctext(st, 2),
		.value = sq_ctext(st, 3), .note = sq_ctext(st, 4),
		.created = (time_t)sqlite3_column_int64(st, 5),
	};

	return e->fn.access(e->arg, &a);
}

static int
sq_access_each(const char *kind, int (*fn)(void *, const struct db_access *),
    void *arg)
{
	static const char sql[] = "SELECT id, list, kind, value, note, created FROM access"
	    " WHERE ?1 IS NULL OR kind = ?1 ORDER BY list DESC, kind, value";
	struct sq_each e = { .fn.access = fn, .arg = arg };
	sqlite3 *h;
	sqlite3_stmt *st;
	int rc;

	if ((st = sq_rstmt(&h, sql)) == NULL)
		return -1;
	if (kind)
		sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
	rc = sq_rows(h, st, "read access lists", sq_access_row, &e);
	sq_rdone(st);
	return rc;
}

/* ----------------------------------------------------------------- rules */

/* One integer from a query on this thread's connection, or -1. sql is a
 * string literal: the statement is prepared once per thread (the rules
 * version is asked at every connect and transaction). */
static long long
sq_scalar(const char *sql)
{
	sqlite3 *h;
	sqlite3_stmt *st;
	long long v = -1;

	if ((st = sq_rstmt(&h, sql)) == NULL)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sq_rdone(st);
	return v;
}

static long long
sq_rule_version(void)
{
	return sq_scalar("SELECT version FROM rules_version WHERE one = 1");
}

static void
sq_rule_row(sqlite3_stmt *st, struct rule_def *d)
{
	d->id = sqlite3_column_int64(st, 0);
	d->name = xstrdup((const char *)sqlite3_column_text(st, 1));
	d->target = xstrdup((const char *)sqlite3_column_text(st, 2));
	d->pattern = xstrdup((const char *)sqlite3_column_text(st, 3));
	d->flags = xstrdup((const char *)sqlite3_column_text(st, 4));
	d->action = xstrdup((const char *)sqlite3_column_text(st, 5));
	d->score = sqlite3_column_double(st, 6);
	d->enabled = sqlite3_column_int(st, 7);
	d->log_only = sqlite3_column_int(st, 8);
}

#define SQ_RULE_COLS "id, name, target, pattern, flags, action, score, enabled, log_only"

static int
sq_rule_load(struct rule_def **defs, size_t *n)
{
	sqlite3 *h = sq_reader();
	sqlite3_stmt *st;
	struct rule_def *v = NULL;
	size_t nv = 0;
	int rc;

	*defs = NULL;
	*n = 0;
	if (h == NULL || (st = sq_prep(h, "SELECT " SQ_RULE_COLS
	    " FROM rules ORDER BY id")) == NULL)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		v = xrealloc(v, (nv + 1) * sizeof(*v));
		sq_rule_row(st, &v[nv++]);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		sq_fail(h, rc, "load rules");
		for (size_t i = 0; i < nv; i++)
			rule_def_clear(&v[i]);
		free(v);
		return -1;
	}
	*defs = v;
	*n = nv;
	return 0;
}

static int
sq_rule_get(long long id, struct rule_def *out)
{
	sqlite3 *h = sq_reader();
	sqlite3_stmt *st;
	int rc;

	memset(out, 0, sizeof(*out));
	if (h == NULL || (st = sq_prep(h, "SELECT " SQ_RULE_COLS
	    " FROM rules WHERE id = ?1")) == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		sq_rule_row(st, out);
	return sq_one_end(h, st, rc, "read rule");
}

/* Bind a rule's fields as ?1..?7 (name .. enabled), ?8 = now and ?10 =
 * log_only (?9 is the id of an update). */
static void
sq_rule_bind(sqlite3_stmt *st, const struct rule_def *d)
{
	sqlite3_bind_text(st, 1, d->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, d->target, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, d->pattern, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, d->flags ? d->flags : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, d->action, -1, SQLITE_STATIC);
	sqlite3_bind_double(st, 6, d->score);
	sqlite3_bind_int(st, 7, d->enabled ? 1 : 0);
	sqlite3_bind_int64(st, 8, (sqlite3_int64)time_wall());
	sqlite3_bind_int(st, 10, d->log_only ? 1 : 0);
}

/* Run sql with a rule's fields bound (and ?9 = id when id > 0) on this
 * thread's connection (*hp): 0, -2 on a UNIQUE violation (the name is
 * taken), -1 other errors. */
static int
sq_rule_write(sqlite3 **hp, const char *sql, const struct rule_def *d,
    long long id, const char *what)
{
	sqlite3 *h = *hp = sq_reader();
	sqlite3_stmt *st;
	int rc;

	if (h == NULL || (st = sq_prep(h, sql)) == NULL)
		return -1;
	sq_rule_bind(st, d);
	if (id > 0)
		sqlite3_bind_int64(st, 9, id);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc == SQLITE_CONSTRAINT)
		return -2;
	if (rc != SQLITE_DONE) {
		sq_fail(h, rc, what);
		return -1;
	}
	return 0;
}

static long long
sq_rule_add(const struct rule_def *d)
{
	sqlite3 *h;
	int rc = sq_rule_write(&h, "INSERT INTO rules (name, target, pattern, flags,"
	    " action, score, enabled, updated, log_only)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?10)",
	    d, 0, "add rule");

	return rc < 0 ? rc : sqlite3_last_insert_rowid(h);
}

static int
sq_rule_update(long long id, const struct rule_def *d)
{
	sqlite3 *h;
	int rc = sq_rule_write(&h, "UPDATE rules SET name = ?1, target = ?2,"
	    " pattern = ?3, flags = ?4, action = ?5, score = ?6, enabled = ?7,"
	    " updated = ?8, log_only = ?10 WHERE id = ?9", d, id, "update rule");

	return rc < 0 ? rc : sqlite3_changes(h) ? 0 : 1;
}

static int
sq_rule_delete(long long id)
{
	sqlite3 *h = sq_reader();
	sqlite3_stmt *st;

	if (h == NULL || (st = sq_prep(h, "DELETE FROM rules WHERE id = ?1")) == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	if (sq_step_done(h, st, "delete rule") == -1)
		return -1;
	return sqlite3_changes(h) == 0 ? 1 : 0;
}

static int
sq_rule_import(const struct rule_def *defs, size_t n, int replace)
{
	sqlite3 *h = sq_reader();
	sqlite3_stmt *st;

	if (h == NULL)
		return -1;
	if (replace && sq_exec(h, "DELETE FROM rules", "clear rules") == -1)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if ((st = sq_prep(h, "INSERT INTO rules (name, target, pattern, flags,"
		    " action, score, enabled, updated, log_only)"
		    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?10) ON CONFLICT (name) DO UPDATE"
		    " SET target = ?2, pattern = ?3, flags = ?4, action = ?5, score = ?6,"
		    " enabled = ?7, updated = ?8, log_only = ?10")) == NULL)
			return -1;
		sq_rule_bind(st, &defs[i]);
		if (sq_step_done(h, st, "import rule") == -1)
			return -1;
	}
	return 0;
}

/* ------------------------------------------------------------ quarantine */

/* db_quar_add's transaction: 0, -2 over max_total, -1 error. */
static int
sq_quar_insert(const struct db_quar *q, const char *rcpts, const char *reasons,
    long long max_total)
{
	sqlite3 *h = sq_reader();
	sqlite3_stmt *st;
	long long total;

	/* FULL: the commit is on disk before the client hears 250. */
	if (h == NULL || sq_exec(h, "PRAGMA synchronous = FULL", "set synchronous") == -1 ||
	    sq_exec(h, "BEGIN IMMEDIATE", "quarantine") == -1)
		return -1;
	total = sq_quar_total();	/* inside the transaction: no race */
	if (total < 0 || total + (long long)q->len > max_total) {
		sq_exec(h, "ROLLBACK", "rollback quarantine");
		return total < 0 ? -1 : -2;
	}
	if ((st = sq_prep(h, "INSERT INTO quarantine (id, ts, sid, client_ip,"
	    " client_name, helo, mail_from, rcpts, subject, msgid, score, reasons,"
	    " size, raw) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12,"
	    " ?13, ?14)")) == NULL)
		goto fail;
	const char *txt[] = { q->id, NULL, q->sid, q->client_ip, q->client_name,
	    q->helo, q->mail_from, rcpts, q->subject, q->msgid, NULL, reasons };
	for (int i = 0; i < (int)ARRAY_SIZE(txt); i++)
		if (i != 1 && i != 10)
			sqlite3_bind_text(st, i + 1, txt[i] ? txt[i] : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)q->ts);
	sqlite3_bind_double(st, 11, q->score);
	sqlite3_bind_int64(st, 13, (sqlite3_int64)q->len);
	sqlite3_bind_blob64(st, 14, q->raw, q->len, SQLITE_STATIC);
	if (sq_step_done(h, st, "store quarantined message") == -1 ||
	    sq_exec(h, "COMMIT", "commit quarantine") == -1)
		goto fail;
	return 0;
fail:
	sq_exec(h, "ROLLBACK", "rollback quarantine");
	return -1;
}

#define SQ_QUAR_COLS "id, ts, sid, client_ip, client_name, helo, mail_from," \
	" rcpts, subject, msgid, score, reasons, size, state, released_at," \
	" released_by"

static int
sq_quar_row(sqlite3_stmt *st, struct sq_each *e)
{
	struct db_quar_row r = {
		.q = {
			.id = sq_ctext(st, 0),
			.ts = (time_t)sqlite3_column_int64(st, 1),
			.sid = sq_ctext(st, 2), .client_ip = sq_ctext(st, 3),
			.client_name = sq_ctext(st, 4), .helo = sq_ctext(st, 5),
			.mail_from = sq_ctext(st, 6), .subject = sq_ctext(st, 8),
			.msgid = sq_ctext(st, 9),
			.score = sqlite3_column_double(st, 10),
			.len = (size_t)sqlite3_column_int64(st, 12),
		},
		.state = sq_ctext(st, 13),
		.released_at = (time_t)sqlite3_column_int64(st, 14),
		.released_by = (const char *)sqlite3_column_text(st, 15),
	};

	r.q.rcpts = db_dec_rcpts(&e->dec, sq_ctext(st, 7), &r.q.nrcpts);
	r.q.reasons = db_dec_checks(&e->dec, sq_ctext(st, 11), &r.q.nreasons);
	return e->fn.quar(e->arg, &r);
}

/* db_quar_each's statement in an order: the filters ?1..?8, the page
 * ?9, ?10. */
#define SQ_QUAR_EACH(order) "SELECT " SQ_QUAR_COLS " FROM quarantine" \
	" WHERE (?1 IS NULL OR instr(lower(mail_from || ' ' || rcpts || ' ' ||" \
	"   subject || ' ' || reasons || ' ' || id), lower(?1)) > 0)" \
	" AND (?2 IS NULL OR instr(lower(mail_from), lower(?2)) > 0)" \
	" AND (?3 IS NULL OR instr(lower(rcpts), lower(?3)) > 0)" \
	" AND (?4 IS NULL OR instr(lower(subject), lower(?4)) > 0)" \
	" AND (?5 IS NULL OR instr(lower(reasons), lower(?5)) > 0)" \
	" AND (?6 = 0 OR ts >= ?6) AND (?7 = 0 OR ts <= ?7)" \
	" AND (?8 IS NULL OR state = ?8)" \
	" AND (?11 IS NULL OR ts > ?6 OR id > ?11)" \
	" ORDER BY " order " LIMIT ?9 OFFSET ?10"

static int
sq_quar_each(const struct db_quar_query *q,
    int (*fn)(void *, const struct db_quar_row *), void *arg)
{
	struct sq_each e = { .fn.quar = fn, .arg = arg };
	sqlite3 *h = sq_reader();
	sqlite3_stmt *st;
	int limit = q->limit < 1 ? 100 : q->limit > 1000 ? 1000 : q->limit;

	if (h == NULL || (st = sq_prep(h, q->oldest_first ?
	    SQ_QUAR_EACH("ts, id") : SQ_QUAR_EACH("ts DESC, id"))) == NULL)
		return -1;
	const char *txt[] = { q->q, q->sender, q->rcpt, q->subject, q->reason };
	for (int i = 0; i < (int)ARRAY_SIZE(txt); i++)
		if (txt[i] != NULL && *txt[i])
			sqlite3_bind_text(st, i + 1, txt[i], -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, (sqlite3_int64)q->since);
	sqlite3_bind_int64(st, 7, (sqlite3_int64)q->until);
	if (q->state != NULL && *q->state)
		sqlite3_bind_text(st, 8, q->state, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 9, limit);
	sqlite3_bind_int(st, 10, q->offset < 0 ? 0 : q->offset);
	if (q->after_id != NULL)
		sqlite3_bind_text(st, 11, q->after_id, -1, SQLITE_STATIC);
	return sq_rows_once(h, st, "list quarantine", sq_quar_row, &e);
}

/* Counts the row and hands it on: a get must tell "none" from fn's 0. */
static int
sq_quar_one(sqlite3_stmt *st, struct sq_each *e)
{
	(*e->seen)++;
	return sq_quar_row(st, e);
}

static int
sq_quar_get(const char *id, int (*fn)(void *, const struct db_quar_row *), void *arg)
{
	int seen = 0;
	struct sq_each e = { .fn.quar = fn, .arg = arg, .seen = &seen };
	sqlite3 *h = sq_reader();
	sqlite3_stmt *st;
	int rc;

	if (h == NULL || (st = sq_prep(h, "SELECT " SQ_QUAR_COLS
	    " FROM quarantine WHERE id = ?1")) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	rc = sq_rows_once(h, st, "read quarantine", sq_quar_one, &e);
	return rc == 0 && seen == 0 ? 1 : rc;
}

static int
sq_quar_raw(const char *id, char **raw, size_t *len)
{
	sqlite3 *h = sq_reader();
	sqlite3_stmt *st;
	int rc;

	*raw = NULL;
	*len = 0;
	if (h == NULL || (st = sq_prep(h, "SELECT raw FROM quarantine WHERE id = ?1")) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		*len = (size_t)sqlite3_column_bytes(st, 0);
		*raw = xmalloc(*len + 1);
		memcpy(*raw, sqlite3_column_blob(st, 0), *len);
		(*raw)[*len] = '\0';
	}
	return sq_one_end(h, st, rc, "read quarantined message");
}

/* Run a change to the message ?1 = id: the rows it changed, or -1. */
static int
sq_quar_change(const char *sql, const char *id, const char *what)
{
	sqlite3 *h = sq_reader();
	sqlite3_stmt *st;

	if (h == NULL || (st = sq_prep(h, sql)) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	if (sq_step_done(h, st, what) == -1)
		return -1;
	return sqlite3_changes(h);
}

static int
sq_quar_claim(const char *id, struct db_quar_claimed *out)
{
	sqlite3 *h;
	sqlite3_stmt *st;
	int rc, claimed;

	memset(out, 0, sizeof(*out));
	if ((claimed = sq_quar_change("UPDATE quarantine SET state = 'releasing'"
	    " WHERE id = ?1 AND state = 'held'", id, "claim quarantined message")) == -1 ||
	    (h = sq_reader()) == NULL)
		return -1;
	if ((st = sq_prep(h, "SELECT mail_from, rcpts FROM quarantine WHERE id = ?1")) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW && claimed == 1) {
		out->mail_from = xstrdup(sq_ctext(st, 0));
		db_dec_claimed(out, sq_ctext(st, 1));
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return rc == SQLITE_DONE ? 1 : -1;
	if (claimed != 1)
		return 2;
	if (sq_quar_raw(id, &out->raw, &out->len) != 0) {
		db_quar_claimed_free(out);
		sq_quar_finish(id, 0, NULL, 0);
		return -1;
	}
	return 0;
}

static int
sq_quar_finish(const char *id, int delivered, const char *who, time_t when)
{
	sqlite3 *h = sq_reader();
	sqlite3_stmt *st;

	if (h == NULL || (st = sq_prep(h, delivered ?
	    "UPDATE quarantine SET state = 'released', released_at = ?2,"
	    " released_by = ?3 WHERE id = ?1 AND state = 'releasing'" :
	    "UPDATE quarantine SET state = 'held' WHERE id = ?1"
	    " AND state = 'releasing'")) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	if (delivered) {
		sqlite3_bind_int64(st, 2, (sqlite3_int64)when);
		sqlite3_bind_text(st, 3, who ? who : "", -1, SQLITE_STATIC);
	}
	return sq_step_done(h, st, "finish release");
}

static int
sq_quar_delete(const char *id)
{
	int rc = sq_quar_change("DELETE FROM quarantine WHERE id = ?1"
	    " AND state != 'releasing'", id, "delete quarantined message");

	return rc == -1 ? -1 : rc ? 0 : 1;
}

static int
sq_quar_expire(time_t cut, int limit)
{
	sqlite3 *h = sq_reader();
	sqlite3_stmt *st;

	if (h == NULL || (st = sq_prep(h, "DELETE FROM quarantine WHERE id IN"
	    " (SELECT id FROM quarantine WHERE ts < ?1 AND state != 'releasing'"
	    "  ORDER BY ts LIMIT ?2)")) == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)cut);
	sqlite3_bind_int(st, 2, limit);
	if (sq_step_done(h, st, "expire quarantine") == -1)
		return -1;
	return sqlite3_changes(h);
}

static long long
sq_quar_total(void)
{
	return sq_scalar("SELECT coalesce(sum(size), 0) FROM quarantine");
}

/* ------------------------------------------------------------ web users */

static int
sq_user_set(const char *name, const char *hash)
{
	sqlite3 *h = sq_reader();
	sqlite3_stmt *st;
	int rc;

	if (h == NULL || (st = sq_prep(h,
	    "INSERT INTO web_users (name, hash, updated) VALUES (?1, ?2, ?3)"
	    " ON CONFLICT (name) DO UPDATE SET hash = excluded.hash,"
	    " updated = excluded.updated")) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, hash, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)time_wall());
	rc = sq_step_done(h, st, "set web user");
	return rc;
}

static char *
sq_user_hash(const char *name)
{
	sqlite3 *h = sq_reader();
	sqlite3_stmt *st;
	char *hash = NULL;
	int rc;

	if (h == NULL || (st = sq_prep(h,
	    "SELECT hash FROM web_users WHERE name = ?1")) == NULL)
		return NULL;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		hash = xstrdup((const char *)sqlite3_column_text(st, 0));
	else if (rc != SQLITE_DONE)
		sq_fail(h, rc, "read web user");
	sqlite3_finalize(st);
	return hash;
}

/* -------------------------------------------------- shared by the cluster */

static int
sq_meta_get(const char *key, char **val)
{
	sqlite3 *h = sq_reader();
	sqlite3_stmt *st;
	int rc;

	*val = NULL;
	if (h == NULL || (st = sq_prep(h, "SELECT value FROM meta WHERE key = ?1")) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		*val = xstrdup(sq_ctext(st, 0));
	return sq_one_end(h, st, rc, "read meta") == -1 ? -1 : *val != NULL;
}

static int
sq_meta_put(const char *key, const char *val, int keep)
{
	sqlite3 *h = sq_reader();
	sqlite3_stmt *st;

	if (h == NULL || (st = sq_prep(h, keep ?
	    "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT DO NOTHING" :
	    "INSERT INTO meta (key, value) VALUES (?1, ?2)"
	    " ON CONFLICT (key) DO UPDATE SET value = excluded.value")) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, val, -1, SQLITE_STATIC);
	return sq_step_done(h, st, "write meta");
}

/* The number is the key past the prefix, all digits (a name with
 * anything else there is not ours to delete). */
static int
sq_meta_prune(const char *prefix, long long below)
{
	sqlite3 *h = sq_reader();
	sqlite3_stmt *st;

	if (h == NULL || (st = sq_prep(h, "DELETE FROM meta"
	    " WHERE substr(key, 1, length(?1)) = ?1"
	    " AND substr(key, length(?1) + 1) <> ''"
	    " AND substr(key, length(?1) + 1) NOT GLOB '*[^0-9]*'"
	    " AND CAST(substr(key, length(?1) + 1) AS INTEGER) < ?2")) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, prefix, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)below);
	if (sq_step_done(h, st, "prune meta") == -1)
		return -1;
	return sqlite3_changes(h);
}

static long long
sq_edit_version(enum db_edit_sig sig)
{
	assert(sig >= 0 && sig < DB_SIG_N);
	return sq_scalar(db_edit_read_sql[sig]);
}

/* IMMEDIATE: the write lock from the start, so that the edit cannot
 * meet another writer's transaction half-way (SQLITE_BUSY on upgrade). */
static int
sq_edit_begin(void)
{
	sqlite3 *h = sq_reader();

	return h == NULL ? -1 : sq_exec(h, "BEGIN IMMEDIATE", "start an admin edit");
}

static int
sq_edit_end(enum db_edit_sig sig)
{
	sqlite3 *h = sq_reader();

	if (h == NULL)
		return -1;
	assert(sig >= DB_SIG_NONE && sig < DB_SIG_N);
	if (sig != DB_SIG_NONE &&
	    sq_exec(h, db_edit_move_sql[sig], "move the edit version") == 0 &&
	    sq_exec(h, "COMMIT", "commit an admin edit") == 0)
		return 0;
	sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
	return sig == DB_SIG_NONE ? 0 : -1;
}

static int
sq_session_put(const char *hash, const char *user, const char *csrf, time_t now)
{
	sqlite3 *h = sq_reader();
	sqlite3_stmt *st;

	if (h == NULL || (st = sq_prep(h,
	    "INSERT INTO web_sessions (hash, user, csrf, created, seen)"
	    " VALUES (?1, ?2, ?3, ?4, ?4)")) == NULL)
		return -1;
	sq_bind3(st, hash, user, csrf);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)now);
	return sq_step_done(h, st, "store web session");
}

/* Read, then move seen only when it is older than now: the requests of
 * one page load (a second) write once. */
static int
sq_session_get(const char *hash, time_t now, time_t idle_cut, time_t age_cut,
    char *user, size_t ulen, char *csrf, size_t clen)
{
	static const char sql[] = "SELECT user, csrf, seen FROM web_sessions"
	    " WHERE hash = ?1 AND seen >= ?2 AND created >= ?3";
	sqlite3 *h;
	sqlite3_stmt *st;
	time_t seen = now;
	int rc;

	if ((st = sq_rstmt(&h, sql)) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)idle_cut);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)age_cut);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		snprintf(user, ulen, "%s", sq_ctext(st, 0));
		snprintf(csrf, clen, "%s", sq_ctext(st, 1));
		seen = (time_t)sqlite3_column_int64(st, 2);
	}
	sq_rdone(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		sq_fail(h, rc, "read web session");
		return -1;
	}
	if (rc == SQLITE_DONE)
		return 0;
	/* a failed touch is logged; the session found stays valid */
	if (seen + DB_SESSION_TOUCH_S <= now &&
	    (st = sq_prep(h, "UPDATE web_sessions SET seen = ?2"
	    " WHERE hash = ?1 AND seen < ?2")) != NULL) {
		sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)now);
		(void)sq_step_done(h, st, "touch web session");
	}
	return 1;
}

static int
sq_session_del(const char *hash)
{
	sqlite3 *h = sq_reader();
	sqlite3_stmt *st;

	if (h == NULL || (st = sq_prep(h, "DELETE FROM web_sessions WHERE hash = ?1")) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
	return sq_step_done(h, st, "delete web session");
}

static int
sq_session_prune(time_t idle_cut, time_t age_cut)
{
	sqlite3 *h = sq_reader();
	sqlite3_stmt *st;

	if (h == NULL || (st = sq_prep(h,
	    "DELETE FROM web_sessions WHERE seen < ?1 OR created < ?2")) == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)idle_cut);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)age_cut);
	if (sq_step_done(h, st, "prune web sessions") == -1)
		return -1;
	return sqlite3_changes(h);
}

/* ------------------------------------------------------------ classifier */

/* The statements one learn batch uses, prepared once per batch. */
enum sq_bq {
	SQ_BQ_META, SQ_BQ_META_SET, SQ_BQ_MSG_GET, SQ_BQ_MSG_PUT, SQ_BQ_MSG_DEL,
	SQ_BQ_TOK_ADD, SQ_BQ_TOK_NEW, SQ_BQ_EXPIRE, SQ_BQ_COUNT, SQ_BQ_N
};

static const char *const sq_bq_sql[SQ_BQ_N] = {
	[SQ_BQ_META] = "SELECT nspam, nham, ntokens, seq, epoch FROM bayes_meta",
	[SQ_BQ_META_SET] = "UPDATE bayes_meta SET nspam = ?1, nham = ?2,"
	    " ntokens = ?3, seq = ?4, epoch = ?5",
	[SQ_BQ_MSG_GET] = "SELECT class FROM bayes_msgs WHERE digest = ?1",
	[SQ_BQ_MSG_PUT] = "INSERT INTO bayes_msgs (digest, class, ts) VALUES (?1, ?2, ?3)"
	    " ON CONFLICT (digest) DO UPDATE SET class = excluded.class, ts = excluded.ts",
	[SQ_BQ_MSG_DEL] = "DELETE FROM bayes_msgs WHERE digest = ?1",
	[SQ_BQ_TOK_ADD] = "UPDATE bayes_tokens SET spam = max(0, spam + ?2),"
	    " ham = max(0, ham + ?3), seen = ?4 WHERE key = ?1",
	[SQ_BQ_TOK_NEW] = "INSERT INTO bayes_tokens (key, spam, ham, seen)"
	    " VALUES (?1, max(0, ?2), max(0, ?3), ?4)",
	/* zero rows (forgotten) go first, then the least recently seen */
	[SQ_BQ_EXPIRE] = "DELETE FROM bayes_tokens WHERE key IN (SELECT key FROM"
	    " bayes_tokens ORDER BY (spam + ham > 0), seen LIMIT ?1)",
	[SQ_BQ_COUNT] = "SELECT count(*) FROM bayes_tokens",
};

/* The writer keeps them prepared (sq_wrc), as its other statements: it
 * runs a batch per autolearned message, and preparing nine statements
 * each time was 6% of Postern's CPU with every check on (bench/run.py
 * --policy all). `postern learn` prepares them per batch of 100. */
static void
sq_bq_free(sqlite3 *h, sqlite3_stmt **q)
{
	if (h != sq_wrc.h)
		for (int i = 0; i < SQ_BQ_N; i++)
			sqlite3_finalize(q[i]);
}

static int
sq_bq_prep(sqlite3 *h, sqlite3_stmt **q)
{
	memset(q, 0, sizeof(*q) * SQ_BQ_N);
	for (int i = 0; i < SQ_BQ_N; i++) {
		q[i] = h == sq_wrc.h ? sq_stmt_cached(&sq_wrc, sq_bq_sql[i]) :
		    sq_prep(h, sq_bq_sql[i]);
		if (q[i] == NULL) {
			sq_bq_free(h, q);
			return -1;
		}
	}
	return 0;
}

/* The totals through q[SQ_BQ_META]. 0 or -1. */
static int
sq_bq_meta(sqlite3 *h, sqlite3_stmt *st, struct db_bayes_meta *m)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW) {
		m->nspam = sqlite3_column_int64(st, 0);
		m->nham = sqlite3_column_int64(st, 1);
		m->ntokens = sqlite3_column_int64(st, 2);
		m->seq = sqlite3_column_int64(st, 3);
		m->epoch = sqlite3_column_int64(st, 4);
	}
	sqlite3_reset(st);
	if (rc != SQLITE_ROW) {
		sq_fail(h, rc, "read classifier totals");
		return -1;
	}
	return 0;
}

/* Move each key by its summed deltas (db_bayes_sum), stamping it with
 * seq: an UPDATE, and where it found no row and the key has a positive
 * part, an INSERT; the rows inserted count in ntokens. (An upsert cannot
 * tell a row it made from one it moved; the keys a batch makes are a
 * minority once the table holds a corpus, and the UPDATE that misses
 * costs one index probe.) The keys come in the table's order: their
 * rows are visited page by page. 0 or -1. */
static int
sq_bq_tokens(sqlite3_stmt **q, const struct db_bayes_delta *d, size_t n,
    struct db_bayes_meta *m)
{
	sqlite3 *h = sqlite3_db_handle(q[SQ_BQ_TOK_ADD]);

	for (size_t i = 0; i < n; i++) {
		if (sq_bq_token(q[SQ_BQ_TOK_ADD], &d[i], m->seq) == -1)
			return -1;
		if (sqlite3_changes(h) > 0 || db_bayes_fresh(&d[i]) == 0)
			continue;
		if (sq_bq_token(q[SQ_BQ_TOK_NEW], &d[i], m->seq) == -1)
			return -1;
		m->ntokens++;
	}
	return 0;
}

/* One key's statement of sq_bq_tokens. 0 or -1. */
static int
sq_bq_token(sqlite3_stmt *st, const struct db_bayes_delta *d, long long seq)
{
	sqlite3_bind_int64(st, 1, (sqlite3_int64)d->key);
	sqlite3_bind_int(st, 2, d->ds);
	sqlite3_bind_int(st, 3, d->dh);
	sqlite3_bind_int64(st, 4, seq);
	return sq_wstep(st, "count classifier token");
}

/* One message: what it was learned as decides what moves (into sum);
 * its own row is written at once. 0 or -1. */
static int
sq_bq_one(sqlite3 *h, sqlite3_stmt **q, struct db_bayes_learn *v,
    struct db_bayes_meta *m, struct db_bayes_sum *sum)
{
	int rc;

	sqlite3_bind_blob(q[SQ_BQ_MSG_GET], 1, v->digest, 32, SQLITE_STATIC);
	rc = sqlite3_step(q[SQ_BQ_MSG_GET]);
	v->was = rc == SQLITE_ROW ? sqlite3_column_int(q[SQ_BQ_MSG_GET], 0) : -1;
	sqlite3_reset(q[SQ_BQ_MSG_GET]);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		sq_fail(h, rc, "read learned message");
		return -1;
	}
	if (!db_bayes_move(v, m, sum))
		return 0;
	if (v->cls == 2) {
		sqlite3_bind_blob(q[SQ_BQ_MSG_DEL], 1, v->digest, 32, SQLITE_STATIC);
		return sq_wstep(q[SQ_BQ_MSG_DEL], "forget learned message");
	}
	sqlite3_bind_blob(q[SQ_BQ_MSG_PUT], 1, v->digest, 32, SQLITE_STATIC);
	sqlite3_bind_int(q[SQ_BQ_MSG_PUT], 2, v->cls);
	sqlite3_bind_int64(q[SQ_BQ_MSG_PUT], 3, (sqlite3_int64)time_wall());
	return sq_wstep(q[SQ_BQ_MSG_PUT], "record learned message");
}

/* Past the cap: delete down to 9/10 of it, forgotten rows first. */
static int
sq_bq_expire(sqlite3 *h, sqlite3_stmt **q, struct db_bayes_meta *m, long long max)
{
	int rc;

	if (max <= 0 || m->ntokens <= max)
		return 0;
	rc = sqlite3_step(q[SQ_BQ_COUNT]);	/* the count may run ahead */
	if (rc == SQLITE_ROW)
		m->ntokens = sqlite3_column_int64(q[SQ_BQ_COUNT], 0);
	sqlite3_reset(q[SQ_BQ_COUNT]);
	if (rc != SQLITE_ROW) {
		sq_fail(h, rc, "count classifier tokens");
		return -1;
	}
	if (m->ntokens <= max)
		return 0;
	sqlite3_bind_int64(q[SQ_BQ_EXPIRE], 1, m->ntokens - max / 10 * 9);
	if (sq_wstep(q[SQ_BQ_EXPIRE], "expire classifier tokens") == -1)
		return -1;
	m->ntokens -= sqlite3_changes(h);
	m->epoch++;
	return 0;
}

/* Inside a transaction the caller opened. */
static int
sq_bayes_run(sqlite3 *h, struct db_bayes_learn *const *v, size_t n, long long max)
{
	sqlite3_stmt *q[SQ_BQ_N];
	struct db_bayes_meta m;
	struct db_bayes_sum *sum = NULL;
	const struct db_bayes_delta *d;
	size_t nd;
	int rc = -1;

	if (sq_bq_prep(h, q) == -1)
		return -1;
	if (sq_bq_meta(h, q[SQ_BQ_META], &m) == -1)
		goto out;
	sum = db_bayes_sum_new(n);
	for (size_t i = 0; i < n; i++)
		if (sq_bq_one(h, q, v[i], &m, sum) == -1)
			goto out;
	d = db_bayes_sum_end(sum, &nd);
	if (sq_bq_tokens(q, d, nd, &m) == -1 || sq_bq_expire(h, q, &m, max) == -1)
		goto out;
	sqlite3_bind_int64(q[SQ_BQ_META_SET], 1, m.nspam);
	sqlite3_bind_int64(q[SQ_BQ_META_SET], 2, m.nham);
	sqlite3_bind_int64(q[SQ_BQ_META_SET], 3, m.ntokens);
	sqlite3_bind_int64(q[SQ_BQ_META_SET], 4, m.seq);
	sqlite3_bind_int64(q[SQ_BQ_META_SET], 5, m.epoch);
	rc = sq_wstep(q[SQ_BQ_META_SET], "store classifier totals");
out:
	db_bayes_sum_free(sum);
	sq_bq_free(h, q);
	return rc;
}

/* Learn without a writer (a CLI process), in a transaction of its own.
 * Bulk learning touches token rows all over the table: a page cache that
 * holds the table saves a read per token. */
static int
sq_bayes_learn(struct db_bayes_learn *const *v, size_t n, long long max_tokens)
{
	sqlite3 *h;
	int rc;

	if ((h = sq_reader()) == NULL ||
	    sq_exec(h, "PRAGMA cache_size = -" SQ_BAYES_CACHE_KB, "size the cache") == -1 ||
	    sq_exec(h, "BEGIN IMMEDIATE", "start learning") == -1)
		return -1;
	rc = sq_bayes_run(h, v, n, max_tokens);
	if (rc == 0 && sq_exec(h, "COMMIT", "commit learning") == 0)
		return 0;
	sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

/* Inside the writer's batch. */
static int
sq_bayes_batch(struct db_bayes_learn *const *v, size_t n, long long max_tokens)
{
	return sq_bayes_run(sq_wconn, v, n, max_tokens);
}

static int
sq_bayes_meta(struct db_bayes_meta *m)
{
	static const char sql[] = "SELECT nspam, nham, ntokens, seq, epoch FROM bayes_meta";
	sqlite3 *h;
	sqlite3_stmt *st;

	if ((st = sq_rstmt(&h, sql)) == NULL)
		return -1;
	return sq_bq_meta(h, st, m);
}

static int
sq_bayes_load(long long since, struct db_bayes_meta *m,
    void (*fn)(void *, uint64_t, unsigned, unsigned), void *arg)
{
	sqlite3 *h = sq_reader();
	sqlite3_stmt *st = NULL;
	int rc = -1, step;

	if (h == NULL || sq_exec(h, "BEGIN", "read classifier") == -1)
		return -1;
	if (sq_bayes_meta(m) == -1 || (st = sq_prep(h,
	    "SELECT key, spam, ham FROM bayes_tokens WHERE seen > ?1")) == NULL)
		goto out;
	sqlite3_bind_int64(st, 1, since);
	while ((step = sqlite3_step(st)) == SQLITE_ROW)
		fn(arg, (uint64_t)sqlite3_column_int64(st, 0),
		    (unsigned)sqlite3_column_int64(st, 1),
		    (unsigned)sqlite3_column_int64(st, 2));
	if (step != SQLITE_DONE)
		sq_fail(h, step, "read classifier tokens");
	else
		rc = 0;
out:
	sqlite3_finalize(st);
	sqlite3_exec(h, "COMMIT", NULL, NULL, NULL);
	return rc;
}

const struct db_backend db_sqlite = {
	.name = "sqlite",
	.open = sq_open,
	.close = sq_close,
	.schema_version = sq_schema_version,
	.begin = sq_begin,
	.commit = sq_commit,
	.rollback = sq_rollback,
	.retryable = sq_retryable,
	.probe = sq_probe,
	.put_verdict = sq_put_verdict,
	.put_stat = sq_stat_bump,
	.put_rule_hit = sq_rule_hit_bump,
	.grey_run = sq_grey_run,
	.prune = sq_prune,
	.bayes_batch = sq_bayes_batch,
	.grey_get = sq_grey_get,
	.grey_auto_get = sq_grey_auto_get,
	.grey_each = sq_grey_each,
	.grey_auto_each = sq_grey_auto_each,
	.access_each = sq_access_each,
	.verdict_each = sq_verdict_each,
	.stat_each = sq_stat_each,
	.rule_hit_each = sq_rule_hit_each,
	.rule_version = sq_rule_version,
	.rule_load = sq_rule_load,
	.rule_get = sq_rule_get,
	.quar_each = sq_quar_each,
	.quar_get = sq_quar_get,
	.quar_raw = sq_quar_raw,
	.quar_total = sq_quar_total,
	.user_hash = sq_user_hash,
	.bayes_meta = sq_bayes_meta,
	.bayes_load = sq_bayes_load,
	.edit_begin = sq_edit_begin,
	.edit_end = sq_edit_end,
	.access_add = sq_access_add,
	.access_del = sq_access_del,
	.grey_forget = sq_grey_forget,
	.rule_add = sq_rule_add,
	.rule_update = sq_rule_update,
	.rule_delete = sq_rule_delete,
	.rule_import = sq_rule_import,
	.quar_add = sq_quar_insert,
	.quar_claim = sq_quar_claim,
	.quar_finish = sq_quar_finish,
	.quar_delete = sq_quar_delete,
	.quar_expire = sq_quar_expire,
	.user_set = sq_user_set,
	.bayes_learn = sq_bayes_learn,
	.meta_get = sq_meta_get,
	.meta_put = sq_meta_put,
	.meta_prune = sq_meta_prune,
	.edit_version = sq_edit_version,
	.session_put = sq_session_put,
	.session_get = sq_session_get,
	.session_del = sq_session_del,
	.session_prune = sq_session_prune,
	.rate_add = sq_rate_add,
	.rate_each = sq_rate_each,
};
