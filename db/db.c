/*
 * db.c -- SQLite storage behind db.h: schema and migrations, every SQL
 * statement of Postern, the writer thread and per-thread read connections.
 *
 * Writer: db_verdict_add()/db_stat_add() queue jobs; db_grey_update() and
 * db_flush()/db_prune() queue a job and wait for it. The writer takes up to
 * DB_BATCH_MAX jobs, runs them in one BEGIN IMMEDIATE ... COMMIT and then
 * wakes the waiters. Rows nobody waits for are held up to DB_LINGER_MS
 * for company, so a busy server commits once per many messages rather
 * than once per message; a waited-for job ends the wait at once. When the batch fails (busy, full, read-only disk) it
 * rolls back, answers -1 to the waiters, puts the queued rows back at the
 * head of the queue, marks the database unhealthy (db_ok() == 0) and
 * retries every DB_RETRY_MS: a row is lost only when the queue overflows
 * DB_QUEUE_MAX or when shutdown cannot write it, and both are logged.
 *
 * Readers: db_reader() hands each thread its own connection (a pthread key
 * closes it at thread exit). WAL lets them read while the writer writes.
 *
 * Ownership: jobs are owned by the queue, then by the writer; a waited-for
 * job by its waiter, unless the waiter gave up (abandoned): then the writer
 * frees it.
 */
#include "db/db.h"
#include "db/backend.h"
#include "db/jsonw.h"
#include "rules/rules.h"
#include "lib/conf.h"
#include "lib/util.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define DB_BATCH_MAX	512	/* jobs per transaction */
#define DB_RETRY_MS	1000	/* pause before retrying a failed batch */
#define DB_PRUNE_MS	60000	/* housekeeping interval */
#define DB_PRUNE_RETRY_MS 15000	/* after a failed housekeeping round */
#define DB_CLOSE_TRIES	3	/* batches tried at shutdown before giving up */
#define DB_STMT_CACHE	8	/* prepared hot-path reads kept per thread */
#define DB_BAYES_CACHE_KB "131072"	/* page cache of a learning CLI process */
/* How long queued rows that nobody waits for may wait for more. Each
 * commit costs a WAL write, a wakeup of the writer and lock traffic with
 * the readers; at 2,000 messages/s this turns ~3 commits per message
 * into one per ~20 messages. Verdicts show up in the log that much later. */
#define DB_LINGER_MS	10
/* First buffer for a verdict row's strings: a typical row (five checks, one
 * recipient) takes ~800 bytes. Kept under 1008 so glibc serves it from a
 * small bin: a larger first size cost ~1,500 instructions per row in malloc,
 * a rare bigger row one realloc. */
#define DB_ROW_HINT	1000

/* A thread's read connection and its prepared hot-path statements, keyed
 * by the SQL text's address (each is a literal in this file). */
struct db_rconn {
	sqlite3		*h;
	struct {
		const char	*sql;
		sqlite3_stmt	*st;
	} cache[DB_STMT_CACHE];
};

enum db_job_type {
	DB_J_VERDICT,
	DB_J_STAT,
	DB_J_GREY,
	DB_J_FLUSH,
	DB_J_PRUNE,
	DB_J_BAYES,
};

/* The text columns of a verdict row, in the order they are bound. */
enum db_vtext {
	DB_V_SID, DB_V_CLIENT_IP, DB_V_CLIENT_NAME, DB_V_HELO, DB_V_MAIL_FROM,
	DB_V_RCPTS, DB_V_MSGID, DB_V_SUBJECT, DB_V_CHECKS, DB_V_VERDICT,
	DB_V_REPLY, DB_V_MTA_REPLY, DB_V_OUTCOME, DB_V_STAGE,
	DB_V_NTEXT
};

struct db_job {
	struct db_job	*next;
	enum db_job_type type;
	/* Waited-for jobs. A waiter that times out may abandon a job only
	 * before the writer took it (started); all four under db_mtx. */
	int		 sync, started, done, abandoned, rc;
	int		 bad;		/* failed for good: drop, do not retry */
	union {
		struct {
			time_t	 ts;
			long long size;
			double	 score;
			unsigned long ms;
			/* One allocation for the row's strings: text column k
			 * at off[k], NUL-terminated (its length is off[k + 1] -
			 * off[k] - 1), then from off[DB_V_NTEXT] the nstats
			 * counter names ("verdict:x", "check:c:r"), each
			 * NUL-terminated. */
			char	*text;
			size_t	 off[DB_V_NTEXT + 1];
			int	 nstats;
		} v;
		struct {
			char	*name;
			time_t	 when;
			int	 n;
		} st;
		struct {
			const char *net, *sender, *rcpt;	/* the waiter's */
			time_t	 now;
			db_grey_step_fn step;
			void	*arg;
		} g;
		struct {
			time_t	 now;
		} p;
		struct {
			/* sync: the waiter's; queued: an owned copy (one
			 * allocation holding the struct and its keys) */
			struct db_bayes_learn *v;
			size_t	 n;
			long long max_tokens;
		} b;
	} u;
};

/* A row iterator's callback and its argument (seen: rows counted). */
struct db_each {
	union {
		int	(*access)(void *, const struct db_access *);
		int	(*grey)(void *, const struct db_grey_entry *);
		int	(*grey_auto)(void *, const struct db_grey_auto *);
		int	(*verdict)(void *, const struct db_verdict_row *);
		int	(*stat)(void *, const struct db_stat_row *);
		int	(*quar)(void *, const struct db_quar_row *);
	} fn;
	void	*arg;
	int	*seen;
};

/* One migration step: SQL run once, in order, inside a transaction. */
struct db_migration {
	const char	*what;
	const char	*sql;
};

static sqlite3	*db_conn_open(const char *path, int create);
static sqlite3	*db_reader(void);
static void	 db_reader_free(void *);
static int	 db_exec(sqlite3 *, const char *sql, const char *what);
static int	 db_migrate(sqlite3 *);
static void	 db_admin_open(void);
static void	 db_admin_touch(void);
static void	*db_writer_main(void *);
static void	 db_linger(void);
static int	 db_batch_run(struct db_job *);
static int	 db_job_run(struct db_job *);
static int	 db_run_verdict(struct db_job *);
static int	 db_run_grey(struct db_job *);
static int	 db_run_prune(time_t now);
static int	 db_bayes_run(sqlite3 *, struct db_bayes_learn *, size_t, long long max);
static int	 db_stat_bump(const char *name, long long minute, int n);
static int	 db_stat_acc(const char *name, time_t when, int n);
static int	 db_acc_flush(void);
static unsigned	 db_acc_hash(const char *, size_t *len);
static void	 db_batch_finish(struct db_job *, int ok);
static void	 db_job_free(struct db_job *);
static void	 db_enqueue(struct db_job *);
static int	 db_wait(struct db_job *, int timeout_ms);
static int	 db_transient(int rc);
static void	 db_fail(sqlite3 *, int rc, const char *what);
static void	 db_key_init(void);
static void	 db_mkdir_parent(const char *);
static struct db_rconn *db_rconn(void);
static sqlite3_stmt *db_stmt_cached(struct db_rconn *, const char *sql);
static sqlite3_stmt *db_rstmt(sqlite3 **, const char *sql);
static void	 db_rdone(sqlite3_stmt *);
static sqlite3_stmt *db_prep(sqlite3 *, const char *sql);
static int	 db_step_done(sqlite3 *, sqlite3_stmt *, const char *what);
static int	 db_wstep(sqlite3_stmt *, const char *what);
static struct db_job *db_job_new(enum db_job_type, int sync);
static int	 db_sync(struct db_job *, int timeout_ms);
static void	 db_wstr(struct jsonw *, const char *);
static void	 db_rcpts_json(struct jsonw *, const char *const *, int);
static void	 db_checks_json(struct jsonw *, const struct db_check *, int);
static int	 db_verdict_stats(struct jsonw *, const struct db_verdict *);
static char	*db_lower(const char *);
static const char *db_ctext(sqlite3_stmt *, int col);
static int	 db_rows(sqlite3 *, sqlite3_stmt *, const char *what,
		    int (*row)(sqlite3_stmt *, const struct db_each *),
		    const struct db_each *);
static int	 db_rows_once(sqlite3 *, sqlite3_stmt *, const char *what,
		    int (*row)(sqlite3_stmt *, const struct db_each *),
		    const struct db_each *);
static int	 db_quar_insert(const struct db_quar *, const char *rcpts,
		    const char *reasons, long long max_total);
static void	 db_claimed_rcpts(struct db_quar_claimed *, const char *text);

/*
 * The schema, one step per entry. APPEND ONLY: a database records in
 * PRAGMA user_version how many steps it has run, so editing a shipped step
 * would leave existing databases behind. Rules and quarantine tables go in
 * new entries below the last one.
 */
static const struct db_migration migrations[] = {
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
	/* Append new steps here. */
};

static char		*db_path;
static _Atomic long long db_verdict_max_age, db_grey_expire;
static _Atomic int	 db_healthy = 1;
static _Atomic unsigned long db_dropped;	/* rows lost to a full queue */
static int		 db_version;
static pthread_key_t	 db_reader_key;
static int		 db_admin_fd = -1;	/* db_path + DB_ADMIN_SUFFIX */
static _Atomic unsigned long long db_admin_local;	/* edits made here */
static pthread_once_t	 db_key_once = PTHREAD_ONCE_INIT;

/* writer state, under db_mtx */
static pthread_mutex_t	 db_mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	 db_work_cv = PTHREAD_COND_INITIALIZER;
static pthread_cond_t	 db_done_cv = PTHREAD_COND_INITIALIZER;
static struct db_job	*db_head, *db_tail;
static int		 db_qlen, db_stop, db_has_writer;
static int		 db_nsync;	/* queued jobs someone waits for */
static int		 db_idle;	/* the writer sleeps on an empty queue */
static pthread_t	 db_writer;
static sqlite3		*db_wconn;	/* the writer thread's only */
static struct db_rconn	 db_wrc;	/* its prepared statements */

/* Per-minute counters summed over a batch, written once per key at commit
 * (a verdict bumps several); writer thread only. */
#define DB_ACC_MAX	128
#define DB_ACC_NAME	80
static struct {
	long long	 minute;
	unsigned	 hash;		/* db_acc_hash(name): most misses end here */
	char		 name[DB_ACC_NAME];
	int		 n;
} db_acc[DB_ACC_MAX];
static int		 db_nacc;

/* ---------------------------------------------------------------- setup */

static void
db_key_init(void)
{
	if (pthread_key_create(&db_reader_key, db_reader_free) != 0)
		fatalx("db: pthread_key_create");
}

static void
db_reader_free(void *p)
{
	struct db_rconn *rc = p;

	for (int i = 0; i < DB_STMT_CACHE; i++)
		sqlite3_finalize(rc->cache[i].st);
	sqlite3_close_v2(rc->h);
	free(rc);
}

/* A connection with our settings; NULL (logged) on failure. */
static sqlite3 *
db_conn_open(const char *path, int create)
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
	sqlite3_busy_timeout(h, DB_BUSY_TIMEOUT_MS);
	sqlite3_extended_result_codes(h, 0);
	/* NORMAL is durable in WAL mode up to the last checkpointed commit;
	 * verdict rows may be lost in a power cut, mail never is. */
	if (db_exec(h, "PRAGMA synchronous = NORMAL", "set synchronous") == -1) {
		sqlite3_close_v2(h);
		return NULL;
	}
	return h;
}

/* This thread's read connection, opened on first use; NULL on failure. */
static struct db_rconn *
db_rconn(void)
{
	struct db_rconn *rc;
	sqlite3 *h;

	if (db_path == NULL)
		fatalx("db: used before db_open");
	if ((rc = pthread_getspecific(db_reader_key)) != NULL)
		return rc;
	if ((h = db_conn_open(db_path, 0)) == NULL)
		return NULL;
	rc = xcalloc(1, sizeof(*rc));
	rc->h = h;
	pthread_setspecific(db_reader_key, rc);
	return rc;
}

static sqlite3 *
db_reader(void)
{
	struct db_rconn *rc = db_rconn();

	return rc ? rc->h : NULL;
}

/* A statement of rc's connection, prepared once and kept. NULL (logged)
 * on failure. */
static sqlite3_stmt *
db_stmt_cached(struct db_rconn *rc, const char *sql)
{
	int i, rv;

	for (i = 0; i < DB_STMT_CACHE && rc->cache[i].sql != NULL; i++)
		if (rc->cache[i].sql == sql)
			return rc->cache[i].st;
	if (i == DB_STMT_CACHE)
		fatalx("db: more than %d cached statements", DB_STMT_CACHE);
	rv = sqlite3_prepare_v3(rc->h, sql, -1, SQLITE_PREPARE_PERSISTENT,
	    &rc->cache[i].st, NULL);
	if (rv != SQLITE_OK) {
		db_fail(rc->h, rv, "prepare");
		sqlite3_finalize(rc->cache[i].st);
		rc->cache[i].st = NULL;
		return NULL;
	}
	rc->cache[i].sql = sql;
	return rc->cache[i].st;
}

/* A hot-path statement on this thread's connection; give it back with
 * db_rdone(). NULL on failure. */
static sqlite3_stmt *
db_rstmt(sqlite3 **hp, const char *sql)
{
	struct db_rconn *rc = db_rconn();

	if (rc == NULL)
		return NULL;
	*hp = rc->h;
	return db_stmt_cached(rc, sql);
}

static void
db_rdone(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

static int
db_exec(sqlite3 *h, const char *sql, const char *what)
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
db_migrate(sqlite3 *h)
{
	int have = -1, want = (int)ARRAY_SIZE(migrations);
	sqlite3_stmt *st;

	if (db_exec(h, "BEGIN IMMEDIATE", "migration lock") == -1)
		return -1;
	if (sqlite3_prepare_v2(h, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		have = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (have < 0 || have > want) {
		log_err("db: %s has schema version %d, this postern knows %d; "
		    "use a newer postern or another db.path", db_path, have, want);
		db_exec(h, "ROLLBACK", "rollback");
		return -1;
	}
	for (int i = have; i < want; i++) {
		log_info("db: migration %d: %s", i + 1, migrations[i].what);
		if (db_exec(h, migrations[i].sql, migrations[i].what) == -1) {
			db_exec(h, "ROLLBACK", "rollback");
			return -1;
		}
	}
	char sql[64];
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", want);
	if (db_exec(h, sql, "set schema version") == -1 ||
	    db_exec(h, "COMMIT", "migration commit") == -1) {
		db_exec(h, "ROLLBACK", "rollback");
		return -1;
	}
	db_version = want;
	return 0;
}

/* The database's directory, made when missing (a fresh checkout's var/). */
static void
db_mkdir_parent(const char *path)
{
	char *dir = xstrdup(path), *slash = strrchr(dir, '/');

	if (slash != NULL && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0750) == 0)
			log_info("db: created directory %s", dir);
	}
	free(dir);
}

int
db_open(const struct conf *c, int writer)
{
	sqlite3 *h;

	pthread_once(&db_key_once, db_key_init);
	free(db_path);
	db_path = xstrdup(c->db_path);
	db_reload(c);
	db_mkdir_parent(db_path);
	if ((h = db_conn_open(db_path, 1)) == NULL)
		return -1;
	if (db_exec(h, "PRAGMA journal_mode = WAL", "enable WAL") == -1 ||
	    db_migrate(h) == -1) {
		sqlite3_close_v2(h);
		return -1;
	}
	atomic_store(&db_healthy, 1);
	db_admin_open();
	if (!writer) {
		sqlite3_close_v2(h);
		return 0;
	}
	db_wconn = h;
	memset(&db_wrc, 0, sizeof(db_wrc));
	db_wrc.h = h;
	db_stop = 0;
	if (pthread_create(&db_writer, NULL, db_writer_main, NULL) != 0)
		fatalx("db: cannot start the writer thread");
	db_has_writer = 1;
	return 0;
}

/* The admin token's file, opened once (before privileges are dropped)
 * and kept: read-only is enough for a process that never edits. Without
 * it the token still moves with this process's own edits, and the log
 * says that edits made elsewhere go unnoticed. */
static void
db_admin_open(void)
{
	char *p = xasprintf("%s%s", db_path, DB_ADMIN_SUFFIX);

	if (db_admin_fd != -1)
		close(db_admin_fd);
	if ((db_admin_fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) == -1 &&
	    (db_admin_fd = open(p, O_RDONLY | O_CLOEXEC)) == -1)
		log_err("db: cannot open %s: %s; access list and rule edits made by"
		    " other processes apply after a restart", p, strerror(errno));
	free(p);
}

/* After a committed admin edit. A random value rather than a counter: two
 * processes editing at once must not write the same next number. */
static void
db_admin_touch(void)
{
	unsigned long long v;

	atomic_fetch_add(&db_admin_local, 1);
	if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v))
		v = (unsigned long long)time_mono_ms() ^ ((unsigned long long)getpid() << 40);
	if (db_admin_fd != -1 && pwrite(db_admin_fd, &v, sizeof(v), 0) != (ssize_t)sizeof(v))
		log_err("db: cannot write %s%s: %s; other processes see this edit"
		    " after a restart", db_path, DB_ADMIN_SUFFIX, strerror(errno));
}

/* The file is read at most once per millisecond per thread: the checks
 * of one stage ask several times in a row, and another process's edit
 * takes longer than that to reach a client anyway. This process's own
 * edits count at once (db_admin_local). */
unsigned long long
db_admin_token(void)
{
	static _Thread_local struct { uint64_t ms; unsigned long long v; } memo;
	uint64_t now = time_mono_ms();
	unsigned long long v = 0;

	if (now != 0 && now == memo.ms)
		v = memo.v;
	else if (db_admin_fd != -1 && pread(db_admin_fd, &v, sizeof(v), 0) != (ssize_t)sizeof(v))
		v = 0;	/* never edited yet */
	memo.ms = now;
	memo.v = v;
	/* odd multiplier: distinct local counts give distinct tokens */
	return v ^ (atomic_load(&db_admin_local) * 0x9e3779b97f4a7c15ULL);
}

void
db_reload(const struct conf *c)
{
	atomic_store(&db_verdict_max_age, c->db_verdict_max_age);
	atomic_store(&db_grey_expire, c->greylist_expire);
}

void
db_close(void)
{

	if (db_has_writer) {
		pthread_mutex_lock(&db_mtx);
		db_stop = 1;
		pthread_cond_signal(&db_work_cv);
		pthread_mutex_unlock(&db_mtx);
		pthread_join(db_writer, NULL);
		db_has_writer = 0;
		for (int i = 0; i < DB_STMT_CACHE; i++)
			sqlite3_finalize(db_wrc.cache[i].st);
		memset(&db_wrc, 0, sizeof(db_wrc));
		sqlite3_close_v2(db_wconn);
		db_wconn = NULL;
	}
	struct db_rconn *rc;
	if ((rc = pthread_getspecific(db_reader_key)) != NULL) {
		pthread_setspecific(db_reader_key, NULL);
		db_reader_free(rc);
	}
	if (db_admin_fd != -1) {
		close(db_admin_fd);
		db_admin_fd = -1;
	}
}

int
db_ok(void)
{
	return atomic_load(&db_healthy);
}

int
db_schema_version(void)
{
	return db_version;
}

/* ---------------------------------------------------------------- writer */

/* Busy, locked, full or I/O trouble: worth retrying later. */
static int
db_transient(int rc)
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
db_fail(sqlite3 *h, int rc, const char *what)
{
	log_err("db: %s: %s (%s)", what, sqlite3_errmsg(h), sqlite3_errstr(rc));
}

/* With db_mtx held: give rows nobody waits for up to DB_LINGER_MS to
 * gather company. Ends early for a waited-for job, a full batch or
 * shutdown (each signals db_work_cv); not while writes fail (the retry
 * pause is long enough). */
static void
db_linger(void)
{
	struct timespec ts;

	if (db_head == NULL || !atomic_load(&db_healthy))
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += DB_LINGER_MS * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	while (!db_stop && db_nsync == 0 && db_qlen < DB_BATCH_MAX)
		if (pthread_cond_timedwait(&db_work_cv, &db_mtx, &ts) == ETIMEDOUT)
			break;
}

static void
db_enqueue(struct db_job *j)
{
	struct db_job *drop = NULL;

	pthread_mutex_lock(&db_mtx);
	if (!db_has_writer) {
		pthread_mutex_unlock(&db_mtx);
		fatalx("db: write queued without a writer (db_open writer=0)");
	}
	j->next = NULL;
	if (db_tail)
		db_tail->next = j;
	else
		db_head = j;
	db_tail = j;
	db_nsync += j->sync;
	if (++db_qlen > DB_QUEUE_MAX && db_head->type != DB_J_GREY &&
	    !db_head->sync) {
		drop = db_head;
		db_head = drop->next;
		db_qlen--;
	}
	/* A lingering or busy writer looks at the queue again by itself. */
	if (db_idle || j->sync || db_qlen >= DB_BATCH_MAX)
		pthread_cond_signal(&db_work_cv);
	pthread_mutex_unlock(&db_mtx);
	if (drop) {
		/* one line per thousand, not a flood while the disk is stuck */
		unsigned long n = atomic_fetch_add(&db_dropped, 1) + 1;
		if (n == 1 || n % 1000 == 0)
			log_err("db: write queue full (%d); %lu queued rows dropped so far",
			    DB_QUEUE_MAX, n);
		db_job_free(drop);
	}
}

/* Wait for a sync job. Returns its rc, or -1 after timeout_ms (the writer
 * then frees the job). */
static int
db_wait(struct db_job *j, int timeout_ms)
{
	struct timespec ts;
	int rc;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&db_mtx);
	/* Once started, a job runs statements bounded by the busy timeout:
	 * keep waiting, as it uses our strings. */
	while (!j->done)
		if (pthread_cond_timedwait(&db_done_cv, &db_mtx, &ts) == ETIMEDOUT &&
		    !j->started)
			break;
	if (!j->done) {
		j->abandoned = 1;
		pthread_mutex_unlock(&db_mtx);
		log_err("db: the writer did not answer within %d ms", timeout_ms);
		return -1;
	}
	rc = j->rc;
	pthread_mutex_unlock(&db_mtx);
	free(j);
	return rc;
}

static void *
db_writer_main(void *arg)
{
	uint64_t next_prune = 0;	/* at once, then every DB_PRUNE_MS */
	int stopping_tries = 0;

	(void)arg;
	for (;;) {
		struct db_job *batch, *last;
		int n = 0;

		pthread_mutex_lock(&db_mtx);
		if (db_head == NULL && !db_stop) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 1;
			db_idle = 1;
			pthread_cond_timedwait(&db_work_cv, &db_mtx, &ts);
			db_idle = 0;
		}
		db_linger();
		if (db_head == NULL && db_stop) {
			pthread_mutex_unlock(&db_mtx);
			break;
		}
		batch = last = db_head;
		for (struct db_job *j = batch; j && n < DB_BATCH_MAX; j = j->next) {
			db_nsync -= j->sync;
			j->started = 1;
			last = j;
			n++;
		}
		if (last) {
			db_head = last->next;
			if (db_head == NULL)
				db_tail = NULL;
			last->next = NULL;
			db_qlen -= n;
		}
		pthread_mutex_unlock(&db_mtx);

		if (time_mono_ms() >= next_prune) {
			/* A failed prune (busy, full) waits a while: each of its
			 * statements may block for the whole busy timeout. */
			next_prune = time_mono_ms() + (db_run_prune(time_wall()) == 0 ?
			    DB_PRUNE_MS : DB_PRUNE_RETRY_MS);
		}
		if (batch == NULL) {
			if (!atomic_load(&db_healthy) &&
			    db_exec(db_wconn, "BEGIN IMMEDIATE; COMMIT",
			    "health probe") == 0) {
				atomic_store(&db_healthy, 1);
				log_info("db: writable again");
			}
			continue;
		}
		int ok = db_batch_run(batch) == 0;
		db_batch_finish(batch, ok);
		if (!ok) {
			if (db_stop && ++stopping_tries >= DB_CLOSE_TRIES)
				break;
			struct timespec d = { DB_RETRY_MS / 1000, (DB_RETRY_MS % 1000) * 1000000L };
			nanosleep(&d, NULL);
		}
	}
	/* Whatever is still queued cannot be written. */
	pthread_mutex_lock(&db_mtx);
	if (db_qlen > 0)
		log_err("db: shutting down with %d queued writes not stored", db_qlen);
	while (db_head) {
		struct db_job *j = db_head;
		db_head = j->next;
		if (j->sync) {
			j->done = 1;
			j->rc = -1;
			if (j->abandoned)
				db_job_free(j);
		} else
			db_job_free(j);
	}
	db_tail = NULL;
	db_qlen = 0;
	db_nsync = 0;
	pthread_cond_broadcast(&db_done_cv);
	pthread_mutex_unlock(&db_mtx);
	return NULL;
}

/* One transaction over the batch. 0, or -1 after a rollback. */
static int
db_batch_run(struct db_job *batch)
{
	int rc;

	if ((rc = sqlite3_exec(db_wconn, "BEGIN IMMEDIATE", NULL, NULL, NULL)) != SQLITE_OK) {
		db_fail(db_wconn, rc, "cannot start a write transaction");
		return -1;
	}
	db_nacc = 0;
	for (struct db_job *j = batch; j; j = j->next) {
		if (db_job_run(j) == -1) {
			/* A row the database will never take (a bug, not the
			 * disk) must not block the queue forever. */
			if (!db_transient(sqlite3_errcode(db_wconn)))
				j->bad = 1;
			sqlite3_exec(db_wconn, "ROLLBACK", NULL, NULL, NULL);
			return -1;
		}
	}
	if (db_acc_flush() == -1) {
		sqlite3_exec(db_wconn, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	if ((rc = sqlite3_exec(db_wconn, "COMMIT", NULL, NULL, NULL)) != SQLITE_OK) {
		db_fail(db_wconn, rc, "commit failed");
		sqlite3_exec(db_wconn, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	return 0;
}

static int
db_job_run(struct db_job *j)
{
	if (j->abandoned)	/* stable: only set before started */
		return 0;
	switch (j->type) {
	case DB_J_VERDICT:
		return db_run_verdict(j);
	case DB_J_STAT:
		return db_stat_acc(j->u.st.name, j->u.st.when, j->u.st.n);
	case DB_J_GREY:
		return db_run_grey(j);
	case DB_J_FLUSH:
		return 0;
	case DB_J_PRUNE:
		return db_run_prune(j->u.p.now);
	case DB_J_BAYES:
		return db_bayes_run(db_wconn, j->u.b.v, j->u.b.n, j->u.b.max_tokens);
	}
	fatalx("db: job type %d", (int)j->type);
}

/*
 * After a batch: on success answer the waiters and free the rest; on
 * failure answer waiters -1 and requeue queued rows at the head, in order.
 */
static void
db_batch_finish(struct db_job *batch, int ok)
{
	struct db_job *keep = NULL, **kt = &keep, *last = NULL, *next;
	int nkeep = 0;

	if (ok != atomic_load(&db_healthy)) {
		atomic_store(&db_healthy, ok);
		if (ok)
			log_info("db: writable again");
		else
			log_err("db: writes failing; new transactions get 451 4.3.0 until it recovers");
	}
	pthread_mutex_lock(&db_mtx);
	for (struct db_job *j = batch; j; j = next) {
		next = j->next;
		j->next = NULL;
		if (j->sync) {
			j->rc = ok ? j->rc : -1;
			j->done = 1;
			if (j->abandoned)
				db_job_free(j);
		} else if (ok || j->bad) {
			if (j->bad)
				log_err("db: dropped a row the database refused");
			db_job_free(j);
		} else {
			*kt = last = j;
			kt = &j->next;
			nkeep++;
		}
	}
	if (keep) {
		*kt = db_head;
		if (db_head == NULL)
			db_tail = last;
		db_head = keep;
		db_qlen += nkeep;
	}
	pthread_cond_broadcast(&db_done_cv);
	pthread_mutex_unlock(&db_mtx);
}

static void
db_job_free(struct db_job *j)
{
	if (j->type == DB_J_VERDICT)
		free(j->u.v.text);
	else if (j->type == DB_J_STAT)
		free(j->u.st.name);
	else if (j->type == DB_J_BAYES && !j->sync)
		free(j->u.b.v);
	free(j);
}

/* --------------------------------------------------- statements (writer) */

static int
db_step_done(sqlite3 *h, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);

	sqlite3_finalize(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		db_fail(h, rc, what);
		return -1;
	}
	return 0;
}

static sqlite3_stmt *
db_prep(sqlite3 *h, const char *sql)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(h, sql, -1, &st, NULL);

	if (rc != SQLITE_OK) {
		db_fail(h, rc, "prepare");
		sqlite3_finalize(st);
		return NULL;
	}
	return st;
}

/* Step a writer statement to its end and reset it for the next use. */
static int
db_wstep(sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		db_fail(sqlite3_db_handle(st), rc, what);
		return -1;
	}
	return 0;
}

static int
db_stat_bump(const char *name, long long minute, int n)
{
	static const char sql[] = "INSERT INTO stats (minute, name, n) VALUES (?1, ?2, ?3)"
	    " ON CONFLICT (minute, name) DO UPDATE SET n = n + excluded.n";
	sqlite3_stmt *st = db_stmt_cached(&db_wrc, sql);

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, minute);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, n);
	return db_wstep(st, "count stats");
}

static int
db_acc_flush(void)
{
	for (int i = 0; i < db_nacc; i++)
		if (db_stat_bump(db_acc[i].name, db_acc[i].minute, db_acc[i].n) == -1)
			return -1;
	db_nacc = 0;
	return 0;
}

/* FNV-1a of a counter name, and its length. */
static unsigned
db_acc_hash(const char *name, size_t *len)
{
	const unsigned char *p = (const unsigned char *)name;
	unsigned h = 2166136261u;

	for (; *p; p++)
		h = (h ^ *p) * 16777619u;
	*len = (size_t)(p - (const unsigned char *)name);
	return h;
}

/* Add to a counter of the running batch. A verdict adds 2 + its number of
 * checks, each looked up among the batch's counters: by hash first. */
static int
db_stat_acc(const char *name, time_t when, int n)
{
	long long minute = (long long)(when - when % 60);
	size_t len;
	unsigned h = db_acc_hash(name, &len);
	int i;

	if (len >= DB_ACC_NAME)
		return db_stat_bump(name, minute, n);
	for (i = 0; i < db_nacc; i++)
		if (db_acc[i].hash == h && db_acc[i].minute == minute &&
		    strcmp(db_acc[i].name, name) == 0) {
			db_acc[i].n += n;
			return 0;
		}
	if (db_nacc == DB_ACC_MAX && db_acc_flush() == -1)
		return -1;
	db_acc[db_nacc].minute = minute;
	db_acc[db_nacc].hash = h;
	memcpy(db_acc[db_nacc].name, name, len + 1);
	db_acc[db_nacc++].n = n;
	return 0;
}

static int
db_run_verdict(struct db_job *j)
{
	static const char sql[] =
	    "INSERT INTO verdicts (ts, sid, client_ip, client_name, helo, mail_from,"
	    " rcpts, size, msgid, subject, checks, score, verdict, reply,"
	    " backend_reply, ms, outcome, stage) VALUES (?1, ?2, ?3, ?4, ?5, ?6,"
	    " ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)";
	/* The parameter of each text column, by enum db_vtext. */
	static const int col[DB_V_NTEXT] = { 2, 3, 4, 5, 6, 7, 9, 10, 11, 13, 14, 15,
	    17, 18 };
	sqlite3_stmt *st = db_stmt_cached(&db_wrc, sql);
	const size_t *off = j->u.v.off;
	const char *name;

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)j->u.v.ts);
	for (int k = 0; k < DB_V_NTEXT; k++)
		sqlite3_bind_text(st, col[k], j->u.v.text + off[k],
		    (int)(off[k + 1] - off[k] - 1), SQLITE_STATIC);
	sqlite3_bind_int64(st, 8, j->u.v.size);
	sqlite3_bind_double(st, 12, j->u.v.score);
	sqlite3_bind_int64(st, 16, (sqlite3_int64)j->u.v.ms);
	if (db_wstep(st, "store verdict") == -1)
		return -1;
	name = j->u.v.text + off[DB_V_NTEXT];
	for (int i = 0; i < j->u.v.nstats; i++, name += strlen(name) + 1)
		if (db_stat_acc(name, j->u.v.ts, 1) == -1)
			return -1;
	return 0;
}

static int
db_run_grey(struct db_job *j)
{
	static const char q_get[] = "SELECT first_seen, last_seen, passed FROM greylist"
	    " WHERE net = ?1 AND sender = ?2 AND rcpt = ?3";
	static const char q_put[] =
	    "INSERT INTO greylist (net, sender, rcpt, first_seen, last_seen, passed)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (net, sender, rcpt) DO UPDATE"
	    " SET first_seen = excluded.first_seen, last_seen = excluded.last_seen,"
	    " passed = excluded.passed";
	static const char q_auto[] =
	    "INSERT INTO grey_auto (net, passes, last_seen) VALUES (?1, ?2, ?3)"
	    " ON CONFLICT (net) DO UPDATE SET passes = passes + excluded.passes,"
	    " last_seen = excluded.last_seen";
	struct db_grey_row row = { 0 };
	sqlite3_stmt *st = db_stmt_cached(&db_wrc, q_get);
	int rc, count_pass = 0;

	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, j->u.g.net, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, j->u.g.sender, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, j->u.g.rcpt, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		row.found = 1;
		row.first_seen = (time_t)sqlite3_column_int64(st, 0);
		row.last_seen = (time_t)sqlite3_column_int64(st, 1);
		row.passed = sqlite3_column_int(st, 2);
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		db_fail(db_wconn, rc, "read greylist");
		return -1;
	}
	j->rc = j->u.g.step(&row, j->u.g.now, j->u.g.arg, &count_pass);
	if ((st = db_stmt_cached(&db_wrc, q_put)) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, j->u.g.net, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, j->u.g.sender, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, j->u.g.rcpt, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)row.first_seen);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)row.last_seen);
	sqlite3_bind_int(st, 6, row.passed);
	if (db_wstep(st, "store greylist") == -1)
		return -1;
	if (!row.passed)
		return 0;
	if ((st = db_stmt_cached(&db_wrc, q_auto)) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, j->u.g.net, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, count_pass ? 1 : 0);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)j->u.g.now);
	return db_wstep(st, "store greylist auto-allow");
}

static int
db_run_prune(time_t now)
{
	long long age = atomic_load(&db_verdict_max_age);
	long long exp = atomic_load(&db_grey_expire);
	struct { const char *sql; long long cut; } p[] = {
		{ "DELETE FROM verdicts WHERE ts < ?1", now - age },
		{ "DELETE FROM stats WHERE minute < ?1", now - age },
		{ "DELETE FROM greylist WHERE last_seen < ?1", now - exp },
		{ "DELETE FROM grey_auto WHERE last_seen < ?1", now - exp },
	};
	int removed = 0;

	for (size_t i = 0; i < ARRAY_SIZE(p); i++) {
		sqlite3_stmt *st = db_prep(db_wconn, p[i].sql);
		if (st == NULL)
			return -1;
		sqlite3_bind_int64(st, 1, p[i].cut);
		if (db_step_done(db_wconn, st, "prune") == -1)
			return -1;
		removed += sqlite3_changes(db_wconn);
	}
	if (removed)
		log_info("db: pruned %d old rows", removed);
	return 0;
}

/* ------------------------------------------------------ queued writes */

static struct db_job *
db_job_new(enum db_job_type type, int sync)
{
	struct db_job *j = xcalloc(1, sizeof(*j));

	j->type = type;
	j->sync = sync;
	return j;
}

/* Queue a waited-for job and wait: its result, or -1. */
static int
db_sync(struct db_job *j, int timeout_ms)
{
	db_enqueue(j);
	return db_wait(j, timeout_ms);
}

/* A string as it is, NULL as "" (the row's NOT NULL text columns). */
static void
db_wstr(struct jsonw *w, const char *s)
{
	if (s != NULL)
		jsonw_raw(w, s, strlen(s));
}

/* The rcpts column: ["a@b",...], as json_dumps would print it. */
static void
db_rcpts_json(struct jsonw *w, const char *const *rcpts, int n)
{
	JSONW_LIT(w, "[");
	for (int i = 0; i < n; i++) {
		if (i > 0)
			JSONW_LIT(w, ",");
		jsonw_str(w, rcpts[i]);
	}
	JSONW_LIT(w, "]");
}

/* The checks column: [{"check":..,"result":..,"score":..[,"reason":..]},...]
 * in this key order, as json_dumps printed the object json_pack built. */
static void
db_checks_json(struct jsonw *w, const struct db_check *ck, int n)
{
	JSONW_LIT(w, "[");
	for (int i = 0; i < n; i++) {
		if (i > 0)
			JSONW_LIT(w, ",");
		JSONW_LIT(w, "{\"check\":");
		jsonw_str(w, ck[i].check);
		JSONW_LIT(w, ",\"result\":");
		jsonw_str(w, ck[i].result);
		JSONW_LIT(w, ",\"score\":");
		jsonw_real(w, ck[i].score);
		if (ck[i].reason != NULL) {
			JSONW_LIT(w, ",\"reason\":");
			jsonw_str(w, ck[i].reason);
		}
		JSONW_LIT(w, "}");
	}
	JSONW_LIT(w, "]");
}

/* The counters a verdict bumps, each NUL-terminated: "verdict:<v>",
 * "outcome:<o>" and one "check:<c>:<r>" per check. Their number. */
static int
db_verdict_stats(struct jsonw *w, const struct db_verdict *v)
{
	JSONW_LIT(w, "verdict:");
	db_wstr(w, v->verdict);
	JSONW_LIT(w, "\0");
	JSONW_LIT(w, "outcome:");
	db_wstr(w, v->outcome);
	JSONW_LIT(w, "\0");
	for (int i = 0; i < v->nchecks; i++) {
		JSONW_LIT(w, "check:");
		db_wstr(w, v->checks[i].check);
		JSONW_LIT(w, ":");
		db_wstr(w, v->checks[i].result);
		JSONW_LIT(w, "\0");
	}
	return 2 + v->nchecks;
}

/* The row's strings go into one buffer, written in one pass: the JSON
 * columns by jsonw (not a jansson tree: ~80k instructions a message, see
 * jsonw.c), the rest copied as they are. */
void
db_verdict_add(const struct db_verdict *v)
{
	struct db_job *j = db_job_new(DB_J_VERDICT, 0);
	const char *plain[DB_V_NTEXT] = {
		[DB_V_SID] = v->sid, [DB_V_CLIENT_IP] = v->client_ip,
		[DB_V_CLIENT_NAME] = v->client_name, [DB_V_HELO] = v->helo,
		[DB_V_MAIL_FROM] = v->mail_from, [DB_V_MSGID] = v->msgid,
		[DB_V_SUBJECT] = v->subject, [DB_V_VERDICT] = v->verdict,
		[DB_V_REPLY] = v->reply, [DB_V_MTA_REPLY] = v->mta_reply,
		[DB_V_OUTCOME] = v->outcome, [DB_V_STAGE] = v->stage,
	};
	struct jsonw w;

	jsonw_init(&w, DB_ROW_HINT);
	for (int k = 0; k < DB_V_NTEXT; k++) {
		j->u.v.off[k] = w.len;
		if (k == DB_V_RCPTS)
			db_rcpts_json(&w, v->rcpts, v->nrcpts);
		else if (k == DB_V_CHECKS)
			db_checks_json(&w, v->checks, v->nchecks);
		else
			db_wstr(&w, plain[k]);
		JSONW_LIT(&w, "\0");
	}
	j->u.v.off[DB_V_NTEXT] = w.len;
	j->u.v.nstats = db_verdict_stats(&w, v);
	j->u.v.text = jsonw_take(&w, NULL);
	j->u.v.ts = v->ts;
	j->u.v.size = (long long)v->size;
	j->u.v.score = v->score;
	j->u.v.ms = v->ms;
	db_enqueue(j);
}

void
db_stat_add(const char *name, time_t when, int n)
{
	struct db_job *j = db_job_new(DB_J_STAT, 0);

	j->u.st.name = xstrdup(name);
	j->u.st.when = when;
	j->u.st.n = n;
	db_enqueue(j);
}

int
db_grey_update(const char *net, const char *sender, const char *rcpt,
    time_t now, db_grey_step_fn step, void *arg)
{
	struct db_job *j = db_job_new(DB_J_GREY, 1);

	j->u.g.net = net;
	j->u.g.sender = sender;
	j->u.g.rcpt = rcpt;
	j->u.g.now = now;
	j->u.g.step = step;
	j->u.g.arg = arg;
	return db_sync(j, DB_SYNC_WAIT_MS);
}

int
db_queue_len(void)
{
	int n;

	pthread_mutex_lock(&db_mtx);
	n = db_qlen;
	pthread_mutex_unlock(&db_mtx);
	return n;
}

int
db_flush(int timeout_ms)
{
	return db_sync(db_job_new(DB_J_FLUSH, 1), timeout_ms);
}

int
db_prune(time_t now)
{
	struct db_job *j = db_job_new(DB_J_PRUNE, 1);

	j->u.p.now = now;
	return db_sync(j, DB_SYNC_WAIT_MS);
}

/* ---------------------------------------------------------------- reads */

int
db_grey_get(const char *net, const char *sender, const char *rcpt,
    struct db_grey_row *row)
{
	static const char sql[] = "SELECT first_seen, last_seen, passed FROM greylist"
	    " WHERE net = ?1 AND sender = ?2 AND rcpt = ?3";
	sqlite3 *h;
	sqlite3_stmt *st;
	int rc;

	memset(row, 0, sizeof(*row));
	if ((st = db_rstmt(&h, sql)) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, net, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, sender, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, rcpt, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		row->found = 1;
		row->first_seen = (time_t)sqlite3_column_int64(st, 0);
		row->last_seen = (time_t)sqlite3_column_int64(st, 1);
		row->passed = sqlite3_column_int(st, 2);
	}
	db_rdone(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		db_fail(h, rc, "read greylist");
		return -1;
	}
	return 0;
}

int
db_grey_auto_allowed(const char *net, int need, time_t now, long long expire)
{
	int passes;
	time_t seen;

	if (db_grey_auto_get(net, &passes, &seen) == -1)
		return -1;
	return passes >= need && (long long)seen + expire >= (long long)now;
}

int
db_grey_auto_get(const char *net, int *passes, time_t *last_seen)
{
	static const char sql[] = "SELECT passes, last_seen FROM grey_auto WHERE net = ?1";
	sqlite3 *h;
	sqlite3_stmt *st;
	int rc;

	*passes = 0;
	*last_seen = 0;
	if ((st = db_rstmt(&h, sql)) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, net, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		*passes = sqlite3_column_int(st, 0);
		*last_seen = (time_t)sqlite3_column_int64(st, 1);
	}
	db_rdone(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		db_fail(h, rc, "read greylist auto-allow");
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------- decoded columns */

/* A JSON column that should hold an array, parsed; NULL when it does not
 * (a row written by a bug: it reads as empty rather than failing). */
static json_t *
db_dec_parse(const char *text)
{
	json_t *j = text != NULL ? json_loads(text, 0, NULL) : NULL;

	if (j != NULL && !json_is_array(j)) {
		json_decref(j);
		j = NULL;
	}
	return j;
}

const char **
db_dec_rcpts(struct db_dec *d, const char *text, int *n)
{
	json_t *a = d->jr = db_dec_parse(text), *e;
	size_t i;

	d->rcpts = xcalloc(json_array_size(a) + 1, sizeof(*d->rcpts));
	*n = 0;
	json_array_foreach(a, i, e)
		if (json_is_string(e))
			d->rcpts[(*n)++] = json_string_value(e);
	return d->rcpts;
}

const struct db_check *
db_dec_checks(struct db_dec *d, const char *text, int *n)
{
	json_t *a = d->jc = db_dec_parse(text), *e;
	size_t i;

	d->checks = xcalloc(json_array_size(a) + 1, sizeof(*d->checks));
	*n = 0;
	json_array_foreach(a, i, e) {
		struct db_check *c = &d->checks[*n];
		json_t *score = json_object_get(e, "score");

		if (!json_is_object(e))
			continue;
		c->check = json_string_value(json_object_get(e, "check"));
		c->result = json_string_value(json_object_get(e, "result"));
		c->reason = json_string_value(json_object_get(e, "reason"));
		/* jsonw writes a score JSON cannot carry as null */
		c->score = json_is_number(score) ? json_number_value(score) : NAN;
		(*n)++;
	}
	return d->checks;
}

void
db_dec_free(struct db_dec *d)
{
	json_decref(d->jr);
	json_decref(d->jc);
	free(d->rcpts);
	free(d->checks);
	memset(d, 0, sizeof(*d));
}

/* ------------------------------------------------------- row iterators */

static const char *
db_ctext(sqlite3_stmt *st, int i)
{
	const unsigned char *s = sqlite3_column_text(st, i);

	return s != NULL ? (const char *)s : "";
}

/* Step st to its end, calling row(st, each) per row until it returns
 * non-zero; st is reset (cached) or finalized by the caller. That value,
 * 0 at the end, or -1 (logged). */
static int
db_rows(sqlite3 *h, sqlite3_stmt *st, const char *what,
    int (*row)(sqlite3_stmt *, const struct db_each *), const struct db_each *each)
{
	int rc, ret = 0;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if ((ret = row(st, each)) != 0)
			break;
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		db_fail(h, rc, what);
		return -1;
	}
	return ret;
}

/* db_rows on a statement prepared for this one query, then finalized. */
static int
db_rows_once(sqlite3 *h, sqlite3_stmt *st, const char *what,
    int (*row)(sqlite3_stmt *, const struct db_each *), const struct db_each *each)
{
	int rc = db_rows(h, st, what, row, each);

	sqlite3_finalize(st);
	return rc;
}

static int
db_grey_row_each(sqlite3_stmt *st, const struct db_each *e)
{
	struct db_grey_entry g = {
		.net = db_ctext(st, 0), .sender = db_ctext(st, 1),
		.rcpt = db_ctext(st, 2),
		.first_seen = (time_t)sqlite3_column_int64(st, 3),
		.last_seen = (time_t)sqlite3_column_int64(st, 4),
		.passed = sqlite3_column_int(st, 5),
	};

	return e->fn.grey(e->arg, &g);
}

int
db_grey_each(int limit, int (*fn)(void *, const struct db_grey_entry *), void *arg)
{
	struct db_each e = { .fn.grey = fn, .arg = arg };
	sqlite3 *h = db_reader();
	sqlite3_stmt *st;

	if (h == NULL || (st = db_prep(h,
	    "SELECT net, sender, rcpt, first_seen, last_seen, passed FROM greylist"
	    " ORDER BY last_seen DESC LIMIT ?1")) == NULL)
		return -1;
	sqlite3_bind_int(st, 1, limit);
	return db_rows_once(h, st, "list greylist", db_grey_row_each, &e);
}

static int
db_grey_auto_row(sqlite3_stmt *st, const struct db_each *e)
{
	struct db_grey_auto a = {
		.net = db_ctext(st, 0), .passes = sqlite3_column_int(st, 1),
		.last_seen = (time_t)sqlite3_column_int64(st, 2),
	};

	return e->fn.grey_auto(e->arg, &a);
}

int
db_grey_auto_each(int limit, int (*fn)(void *, const struct db_grey_auto *),
    void *arg)
{
	struct db_each e = { .fn.grey_auto = fn, .arg = arg };
	sqlite3 *h = db_reader();
	sqlite3_stmt *st;

	if (h == NULL || (st = db_prep(h, "SELECT net, passes, last_seen FROM grey_auto"
	    " ORDER BY last_seen DESC LIMIT ?1")) == NULL)
		return -1;
	sqlite3_bind_int(st, 1, limit);
	return db_rows_once(h, st, "list auto-allow", db_grey_auto_row, &e);
}

static int
db_verdict_row(sqlite3_stmt *st, const struct db_each *e)
{
	struct db_dec d = { 0 };
	struct db_verdict_row r = {
		.id = sqlite3_column_int64(st, 0),
		.v = {
			.ts = (time_t)sqlite3_column_int64(st, 1),
			.sid = db_ctext(st, 2), .client_ip = db_ctext(st, 3),
			.client_name = db_ctext(st, 4), .helo = db_ctext(st, 5),
			.mail_from = db_ctext(st, 6),
			.size = (size_t)sqlite3_column_int64(st, 8),
			.msgid = db_ctext(st, 9), .subject = db_ctext(st, 10),
			.score = sqlite3_column_double(st, 12),
			.verdict = db_ctext(st, 13), .reply = db_ctext(st, 14),
			.outcome = db_ctext(st, 15), .stage = db_ctext(st, 16),
			.mta_reply = db_ctext(st, 17),
			.ms = (unsigned long)sqlite3_column_int64(st, 18),
		},
	};
	int rc;

	r.v.rcpts = db_dec_rcpts(&d, db_ctext(st, 7), &r.v.nrcpts);
	r.v.checks = db_dec_checks(&d, db_ctext(st, 11), &r.v.nchecks);
	rc = e->fn.verdict(e->arg, &r);
	db_dec_free(&d);
	return rc;
}

int
db_verdict_each(int limit, long long before, const char *q,
    int (*fn)(void *, const struct db_verdict_row *), void *arg)
{
	struct db_each e = { .fn.verdict = fn, .arg = arg };
	sqlite3 *h = db_reader();
	sqlite3_stmt *st;

	if (limit < 1)
		limit = 1;
	if (limit > 1000)
		limit = 1000;
	if (h == NULL || (st = db_prep(h,
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
	return db_rows_once(h, st, "list verdicts", db_verdict_row, &e);
}

static int
db_stat_row(sqlite3_stmt *st, const struct db_each *e)
{
	struct db_stat_row r = {
		.minute = (time_t)sqlite3_column_int64(st, 0),
		.name = db_ctext(st, 1), .n = sqlite3_column_int64(st, 2),
	};

	return e->fn.stat(e->arg, &r);
}

int
db_stat_each(time_t since, int (*fn)(void *, const struct db_stat_row *), void *arg)
{
	struct db_each e = { .fn.stat = fn, .arg = arg };
	sqlite3 *h = db_reader();
	sqlite3_stmt *st;

	if (h == NULL || (st = db_prep(h, "SELECT minute, name, n FROM stats"
	    " WHERE minute >= ?1 ORDER BY minute, name")) == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)since);
	return db_rows_once(h, st, "read stats", db_stat_row, &e);
}

/* ---------------------------------------------------------- access lists */

static char *
db_lower(const char *s)
{
	char *l = xstrdup(s);

	for (char *p = l; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return l;
}

int
db_access_add(const char *list, const char *kind, const char *value,
    const char *note)
{
	sqlite3 *h = db_reader();
	sqlite3_stmt *st;
	char *v;
	int rc;

	if (h == NULL || (st = db_prep(h,
	    "INSERT INTO access (list, kind, value, note, created)"
	    " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING")) == NULL)
		return -1;
	v = db_lower(value);
	sqlite3_bind_text(st, 1, list, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, v, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, note ? note : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)time_wall());
	rc = db_step_done(h, st, "add access entry");
	free(v);
	if (rc == -1)
		return -1;
	if (sqlite3_changes(h) == 0)
		return 1;
	db_admin_touch();
	return 0;
}

int
db_access_del(const char *list, const char *kind, const char *value)
{
	sqlite3 *h = db_reader();
	sqlite3_stmt *st;
	char *v;
	int rc;

	if (h == NULL || (st = db_prep(h,
	    "DELETE FROM access WHERE list = ?1 AND kind = ?2 AND value = ?3")) == NULL)
		return -1;
	v = db_lower(value);
	sqlite3_bind_text(st, 1, list, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, v, -1, SQLITE_STATIC);
	rc = db_step_done(h, st, "delete access entry");
	free(v);
	if (rc == -1)
		return -1;
	if ((rc = sqlite3_changes(h)) > 0)
		db_admin_touch();
	return rc;
}

static int
db_access_row(sqlite3_stmt *st, const struct db_each *e)
{
	struct db_access a = {
		.id = sqlite3_column_int64(st, 0),
		.list = db_ctext(st, 1), .kind = db_ctext(st, 2),
		.value = db_ctext(st, 3), .note = db_ctext(st, 4),
		.created = (time_t)sqlite3_column_int64(st, 5),
	};

	return e->fn.access(e->arg, &a);
}

int
db_access_each(const char *kind, int (*fn)(void *, const struct db_access *),
    void *arg)
{
	static const char sql[] = "SELECT id, list, kind, value, note, created FROM access"
	    " WHERE ?1 IS NULL OR kind = ?1 ORDER BY list DESC, kind, value";
	struct db_each e = { .fn.access = fn, .arg = arg };
	sqlite3 *h;
	sqlite3_stmt *st;
	int rc;

	if ((st = db_rstmt(&h, sql)) == NULL)
		return -1;
	if (kind)
		sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
	rc = db_rows(h, st, "read access lists", db_access_row, &e);
	db_rdone(st);
	return rc;
}

/* ----------------------------------------------------------------- rules */

/* One integer from a query on this thread's connection, or -1. sql is a
 * string literal: the statement is prepared once per thread (the rules
 * version is asked at every connect and transaction). */
static long long
db_scalar(const char *sql)
{
	sqlite3 *h;
	sqlite3_stmt *st;
	long long v = -1;

	if ((st = db_rstmt(&h, sql)) == NULL)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	db_rdone(st);
	return v;
}

long long
db_rule_version(void)
{
	return db_scalar("SELECT version FROM rules_version WHERE one = 1");
}

static void
db_rule_row(sqlite3_stmt *st, struct rule_def *d)
{
	d->id = sqlite3_column_int64(st, 0);
	d->name = xstrdup((const char *)sqlite3_column_text(st, 1));
	d->target = xstrdup((const char *)sqlite3_column_text(st, 2));
	d->pattern = xstrdup((const char *)sqlite3_column_text(st, 3));
	d->flags = xstrdup((const char *)sqlite3_column_text(st, 4));
	d->action = xstrdup((const char *)sqlite3_column_text(st, 5));
	d->score = sqlite3_column_double(st, 6);
	d->enabled = sqlite3_column_int(st, 7);
}

#define DB_RULE_COLS "id, name, target, pattern, flags, action, score, enabled"

int
db_rule_load(struct rule_def **defs, size_t *n)
{
	sqlite3 *h = db_reader();
	sqlite3_stmt *st;
	struct rule_def *v = NULL;
	size_t nv = 0;
	int rc;

	*defs = NULL;
	*n = 0;
	if (h == NULL || (st = db_prep(h, "SELECT " DB_RULE_COLS
	    " FROM rules ORDER BY id")) == NULL)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		v = xrealloc(v, (nv + 1) * sizeof(*v));
		db_rule_row(st, &v[nv++]);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		db_fail(h, rc, "load rules");
		for (size_t i = 0; i < nv; i++)
			rule_def_clear(&v[i]);
		free(v);
		return -1;
	}
	*defs = v;
	*n = nv;
	return 0;
}

int
db_rule_get(long long id, struct rule_def *out)
{
	sqlite3 *h = db_reader();
	sqlite3_stmt *st;
	int rc;

	memset(out, 0, sizeof(*out));
	if (h == NULL || (st = db_prep(h, "SELECT " DB_RULE_COLS
	    " FROM rules WHERE id = ?1")) == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		db_rule_row(st, out);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		db_fail(h, rc, "read rule");
		return -1;
	}
	return rc == SQLITE_ROW ? 0 : 1;
}

/* Bind a rule's fields as ?1..?7 (name .. enabled) and ?8 = now. */
static void
db_rule_bind(sqlite3_stmt *st, const struct rule_def *d)
{
	sqlite3_bind_text(st, 1, d->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, d->target, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, d->pattern, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, d->flags ? d->flags : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, d->action, -1, SQLITE_STATIC);
	sqlite3_bind_double(st, 6, d->score);
	sqlite3_bind_int(st, 7, d->enabled ? 1 : 0);
	sqlite3_bind_int64(st, 8, (sqlite3_int64)time_wall());
}

/* Run a write statement; -2 on a UNIQUE violation, -1 other errors. */
static int
db_rule_step(sqlite3 *h, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);

	sqlite3_finalize(st);
	if (rc == SQLITE_CONSTRAINT)
		return -2;
	if (rc != SQLITE_DONE) {
		db_fail(h, rc, what);
		return -1;
	}
	db_admin_touch();
	return 0;
}

long long
db_rule_add(const struct rule_def *d)
{
	sqlite3 *h = db_reader();
	sqlite3_stmt *st;
	int rc;

	if (h == NULL || (st = db_prep(h, "INSERT INTO rules (name, target,"
	    " pattern, flags, action, score, enabled, updated)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")) == NULL)
		return -1;
	db_rule_bind(st, d);
	if ((rc = db_rule_step(h, st, "add rule")) < 0)
		return rc;
	return sqlite3_last_insert_rowid(h);
}

int
db_rule_update(long long id, const struct rule_def *d)
{
	sqlite3 *h = db_reader();
	sqlite3_stmt *st;
	int rc;

	if (h == NULL || (st = db_prep(h, "UPDATE rules SET name = ?1, target = ?2,"
	    " pattern = ?3, flags = ?4, action = ?5, score = ?6, enabled = ?7,"
	    " updated = ?8 WHERE id = ?9")) == NULL)
		return -1;
	db_rule_bind(st, d);
	sqlite3_bind_int64(st, 9, id);
	if ((rc = db_rule_step(h, st, "update rule")) < 0)
		return rc;
	return sqlite3_changes(h) ? 0 : 1;
}

int
db_rule_delete(long long id)
{
	sqlite3 *h = db_reader();
	sqlite3_stmt *st;

	if (h == NULL || (st = db_prep(h, "DELETE FROM rules WHERE id = ?1")) == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	if (db_step_done(h, st, "delete rule") == -1)
		return -1;
	if (sqlite3_changes(h) == 0)
		return 1;
	db_admin_touch();
	return 0;
}

int
db_rule_import(const struct rule_def *defs, size_t n, int replace)
{
	sqlite3 *h = db_reader();
	sqlite3_stmt *st;

	if (h == NULL || db_exec(h, "BEGIN IMMEDIATE", "import rules") == -1)
		return -1;
	if (replace && db_exec(h, "DELETE FROM rules", "clear rules") == -1)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		if ((st = db_prep(h, "INSERT INTO rules (name, target, pattern, flags,"
		    " action, score, enabled, updated)"
		    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (name) DO UPDATE"
		    " SET target = ?2, pattern = ?3, flags = ?4, action = ?5, score = ?6,"
		    " enabled = ?7, updated = ?8")) == NULL)
			goto fail;
		db_rule_bind(st, &defs[i]);
		if (db_step_done(h, st, "import rule") == -1)
			goto fail;
	}
	if (db_exec(h, "COMMIT", "import rules") == -1)
		goto fail;
	db_admin_touch();
	return 0;
fail:
	db_exec(h, "ROLLBACK", "rollback import");
	return -1;
}

/* ------------------------------------------------------------ quarantine */

/* The quarantine's JSON columns as text: rcpts ["a@b",...] and reasons
 * [{"check":..,"result":..,"score":..[,"reason":..]},...]. */
int
db_quar_add(const struct db_quar *q, long long max_total)
{
	struct jsonw w;
	char *rcpts, *reasons;
	int rc;

	jsonw_init(&w, 64);
	db_rcpts_json(&w, q->rcpts, q->nrcpts);
	rcpts = jsonw_take(&w, NULL);
	jsonw_init(&w, 256);
	db_checks_json(&w, q->reasons, q->nreasons);
	reasons = jsonw_take(&w, NULL);
	rc = db_quar_insert(q, rcpts, reasons, max_total);
	free(rcpts);
	free(reasons);
	return rc;
}

/* db_quar_add's transaction: 0, -2 over max_total, -1 error. */
static int
db_quar_insert(const struct db_quar *q, const char *rcpts, const char *reasons,
    long long max_total)
{
	sqlite3 *h = db_reader();
	sqlite3_stmt *st;
	long long total;

	/* FULL: the commit is on disk before the client hears 250. */
	if (h == NULL || db_exec(h, "PRAGMA synchronous = FULL", "set synchronous") == -1 ||
	    db_exec(h, "BEGIN IMMEDIATE", "quarantine") == -1)
		return -1;
	total = db_quar_total();	/* inside the transaction: no race */
	if (total < 0 || total + (long long)q->len > max_total) {
		db_exec(h, "ROLLBACK", "rollback quarantine");
		return total < 0 ? -1 : -2;
	}
	if ((st = db_prep(h, "INSERT INTO quarantine (id, ts, sid, client_ip,"
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
	if (db_step_done(h, st, "store quarantined message") == -1 ||
	    db_exec(h, "COMMIT", "commit quarantine") == -1)
		goto fail;
	return 0;
fail:
	db_exec(h, "ROLLBACK", "rollback quarantine");
	return -1;
}

#define DB_QUAR_COLS "id, ts, sid, client_ip, client_name, helo, mail_from," \
	" rcpts, subject, msgid, score, reasons, size, state, released_at," \
	" released_by"

static int
db_quar_row(sqlite3_stmt *st, const struct db_each *e)
{
	struct db_dec d = { 0 };
	struct db_quar_row r = {
		.q = {
			.id = db_ctext(st, 0),
			.ts = (time_t)sqlite3_column_int64(st, 1),
			.sid = db_ctext(st, 2), .client_ip = db_ctext(st, 3),
			.client_name = db_ctext(st, 4), .helo = db_ctext(st, 5),
			.mail_from = db_ctext(st, 6), .subject = db_ctext(st, 8),
			.msgid = db_ctext(st, 9),
			.score = sqlite3_column_double(st, 10),
			.len = (size_t)sqlite3_column_int64(st, 12),
		},
		.state = db_ctext(st, 13),
		.released_at = (time_t)sqlite3_column_int64(st, 14),
		.released_by = (const char *)sqlite3_column_text(st, 15),
	};
	int rc;

	r.q.rcpts = db_dec_rcpts(&d, db_ctext(st, 7), &r.q.nrcpts);
	r.q.reasons = db_dec_checks(&d, db_ctext(st, 11), &r.q.nreasons);
	rc = e->fn.quar(e->arg, &r);
	db_dec_free(&d);
	return rc;
}

int
db_quar_each(const struct db_quar_query *q,
    int (*fn)(void *, const struct db_quar_row *), void *arg)
{
	struct db_each e = { .fn.quar = fn, .arg = arg };
	sqlite3 *h = db_reader();
	sqlite3_stmt *st;
	int limit = q->limit < 1 ? 100 : q->limit > 1000 ? 1000 : q->limit;

	if (h == NULL || (st = db_prep(h, "SELECT " DB_QUAR_COLS " FROM quarantine"
	    " WHERE (?1 IS NULL OR instr(lower(mail_from || ' ' || rcpts || ' ' ||"
	    "   subject || ' ' || reasons || ' ' || id), lower(?1)) > 0)"
	    " AND (?2 IS NULL OR instr(lower(mail_from), lower(?2)) > 0)"
	    " AND (?3 IS NULL OR instr(lower(rcpts), lower(?3)) > 0)"
	    " AND (?4 IS NULL OR instr(lower(subject), lower(?4)) > 0)"
	    " AND (?5 IS NULL OR instr(lower(reasons), lower(?5)) > 0)"
	    " AND (?6 = 0 OR ts >= ?6) AND (?7 = 0 OR ts <= ?7)"
	    " AND (?8 IS NULL OR state = ?8)"
	    " ORDER BY ts DESC, id LIMIT ?9 OFFSET ?10")) == NULL)
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
	return db_rows_once(h, st, "list quarantine", db_quar_row, &e);
}

/* Counts the row and hands it on: a get must tell "none" from fn's 0. */
static int
db_quar_one(sqlite3_stmt *st, const struct db_each *e)
{
	(*e->seen)++;
	return db_quar_row(st, e);
}

int
db_quar_get(const char *id, int (*fn)(void *, const struct db_quar_row *), void *arg)
{
	int seen = 0;
	struct db_each e = { .fn.quar = fn, .arg = arg, .seen = &seen };
	sqlite3 *h = db_reader();
	sqlite3_stmt *st;
	int rc;

	if (h == NULL || (st = db_prep(h, "SELECT " DB_QUAR_COLS
	    " FROM quarantine WHERE id = ?1")) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	rc = db_rows_once(h, st, "read quarantine", db_quar_one, &e);
	return rc == 0 && seen == 0 ? 1 : rc;
}

int
db_quar_raw(const char *id, char **raw, size_t *len)
{
	sqlite3 *h = db_reader();
	sqlite3_stmt *st;
	int rc;

	*raw = NULL;
	*len = 0;
	if (h == NULL || (st = db_prep(h, "SELECT raw FROM quarantine WHERE id = ?1")) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		*len = (size_t)sqlite3_column_bytes(st, 0);
		*raw = xmalloc(*len + 1);
		memcpy(*raw, sqlite3_column_blob(st, 0), *len);
		(*raw)[*len] = '\0';
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		db_fail(h, rc, "read quarantined message");
		return -1;
	}
	return rc == SQLITE_ROW ? 0 : 1;
}

int
db_quar_claim(const char *id, struct db_quar_claimed *out)
{
	sqlite3 *h = db_reader();
	sqlite3_stmt *st;
	int rc, claimed;

	memset(out, 0, sizeof(*out));
	if (h == NULL || (st = db_prep(h, "UPDATE quarantine SET state = 'releasing'"
	    " WHERE id = ?1 AND state = 'held'")) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	if (db_step_done(h, st, "claim quarantined message") == -1)
		return -1;
	claimed = sqlite3_changes(h) == 1;
	if ((st = db_prep(h, "SELECT mail_from, rcpts FROM quarantine WHERE id = ?1")) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW && claimed) {
		out->mail_from = xstrdup(db_ctext(st, 0));
		db_claimed_rcpts(out, db_ctext(st, 1));
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return rc == SQLITE_DONE ? 1 : -1;
	if (!claimed)
		return 2;
	if (db_quar_raw(id, &out->raw, &out->len) != 0) {
		db_quar_claimed_free(out);
		db_quar_finish(id, 0, NULL, 0);
		return -1;
	}
	return 0;
}

/* The recipients of a claim, copied out of their JSON column. */
static void
db_claimed_rcpts(struct db_quar_claimed *out, const char *text)
{
	struct db_dec d = { 0 };
	const char **v = db_dec_rcpts(&d, text, &out->nrcpts);

	out->rcpts = xcalloc((size_t)out->nrcpts + 1, sizeof(*out->rcpts));
	for (int i = 0; i < out->nrcpts; i++)
		out->rcpts[i] = xstrdup(v[i]);
	db_dec_free(&d);
}

void
db_quar_claimed_free(struct db_quar_claimed *c)
{
	for (int i = 0; i < c->nrcpts; i++)
		free(c->rcpts[i]);
	free(c->rcpts);
	free(c->mail_from);
	free(c->raw);
	memset(c, 0, sizeof(*c));
}

int
db_quar_finish(const char *id, int delivered, const char *who, time_t when)
{
	sqlite3 *h = db_reader();
	sqlite3_stmt *st;

	if (h == NULL || (st = db_prep(h, delivered ?
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
	return db_step_done(h, st, "finish release");
}

int
db_quar_delete(const char *id)
{
	sqlite3 *h = db_reader();
	sqlite3_stmt *st;

	if (h == NULL || (st = db_prep(h, "DELETE FROM quarantine WHERE id = ?1"
	    " AND state != 'releasing'")) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	if (db_step_done(h, st, "delete quarantined message") == -1)
		return -1;
	return sqlite3_changes(h) ? 0 : 1;
}

int
db_quar_expire(time_t now, long long max_age, int limit)
{
	sqlite3 *h = db_reader();
	sqlite3_stmt *st;

	if (h == NULL || (st = db_prep(h, "DELETE FROM quarantine WHERE id IN"
	    " (SELECT id FROM quarantine WHERE ts < ?1 AND state != 'releasing'"
	    "  ORDER BY ts LIMIT ?2)")) == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)(now - max_age));
	sqlite3_bind_int(st, 2, limit);
	if (db_step_done(h, st, "expire quarantine") == -1)
		return -1;
	return sqlite3_changes(h);
}

long long
db_quar_total(void)
{
	return db_scalar("SELECT coalesce(sum(size), 0) FROM quarantine");
}

/* ------------------------------------------------------------ web users */

int
db_user_set(const char *name, const char *hash)
{
	sqlite3 *h = db_reader();
	sqlite3_stmt *st;
	int rc;

	if (h == NULL || (st = db_prep(h,
	    "INSERT INTO web_users (name, hash, updated) VALUES (?1, ?2, ?3)"
	    " ON CONFLICT (name) DO UPDATE SET hash = excluded.hash,"
	    " updated = excluded.updated")) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, hash, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)time_wall());
	rc = db_step_done(h, st, "set web user");
	return rc;
}

char *
db_user_hash(const char *name)
{
	sqlite3 *h = db_reader();
	sqlite3_stmt *st;
	char *hash = NULL;
	int rc;

	if (h == NULL || (st = db_prep(h,
	    "SELECT hash FROM web_users WHERE name = ?1")) == NULL)
		return NULL;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		hash = xstrdup((const char *)sqlite3_column_text(st, 0));
	else if (rc != SQLITE_DONE)
		db_fail(h, rc, "read web user");
	sqlite3_finalize(st);
	return hash;
}

/* ------------------------------------------------------------ classifier */

/* The statements one learn batch uses, prepared once per batch. */
enum db_bq {
	DB_BQ_META, DB_BQ_META_SET, DB_BQ_MSG_GET, DB_BQ_MSG_PUT, DB_BQ_MSG_DEL,
	DB_BQ_TOK_UPSERT, DB_BQ_TOK_ADD, DB_BQ_EXPIRE, DB_BQ_COUNT, DB_BQ_N
};

static const char *const db_bq_sql[DB_BQ_N] = {
	[DB_BQ_META] = "SELECT nspam, nham, ntokens, seq, epoch FROM bayes_meta",
	[DB_BQ_META_SET] = "UPDATE bayes_meta SET nspam = ?1, nham = ?2,"
	    " ntokens = ?3, seq = ?4, epoch = ?5",
	[DB_BQ_MSG_GET] = "SELECT class FROM bayes_msgs WHERE digest = ?1",
	[DB_BQ_MSG_PUT] = "INSERT INTO bayes_msgs (digest, class, ts) VALUES (?1, ?2, ?3)"
	    " ON CONFLICT (digest) DO UPDATE SET class = excluded.class, ts = excluded.ts",
	[DB_BQ_MSG_DEL] = "DELETE FROM bayes_msgs WHERE digest = ?1",
	[DB_BQ_TOK_UPSERT] = "INSERT INTO bayes_tokens (key, spam, ham, seen)"
	    " VALUES (?1, max(0, ?2), max(0, ?3), ?4) ON CONFLICT (key) DO UPDATE SET"
	    " spam = max(0, spam + ?2), ham = max(0, ham + ?3), seen = ?4"
	    " RETURNING spam + ham",
	[DB_BQ_TOK_ADD] = "UPDATE bayes_tokens SET spam = max(0, spam + ?2),"
	    " ham = max(0, ham + ?3), seen = ?4 WHERE key = ?1",
	/* zero rows (forgotten) go first, then the least recently seen */
	[DB_BQ_EXPIRE] = "DELETE FROM bayes_tokens WHERE key IN (SELECT key FROM"
	    " bayes_tokens ORDER BY (spam + ham > 0), seen LIMIT ?1)",
	[DB_BQ_COUNT] = "SELECT count(*) FROM bayes_tokens",
};

static void
db_bq_free(sqlite3_stmt **q)
{
	for (int i = 0; i < DB_BQ_N; i++)
		sqlite3_finalize(q[i]);
}

static int
db_bq_prep(sqlite3 *h, sqlite3_stmt **q)
{
	memset(q, 0, sizeof(*q) * DB_BQ_N);
	for (int i = 0; i < DB_BQ_N; i++)
		if ((q[i] = db_prep(h, db_bq_sql[i])) == NULL) {
			db_bq_free(q);
			return -1;
		}
	return 0;
}

/* The totals through q[DB_BQ_META]. 0 or -1. */
static int
db_bq_meta(sqlite3 *h, sqlite3_stmt *st, struct db_bayes_meta *m)
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
		db_fail(h, rc, "read classifier totals");
		return -1;
	}
	return 0;
}

/* Move every key of v by (ds, dh), stamping it with seq: one UPSERT per
 * key (half the statements of an INSERT OR IGNORE and an UPDATE). A row
 * it made counts in ntokens; so does, once more, a forgotten (all zero)
 * row learned again, which only makes expiry come early -- expiry then
 * counts the table exactly. 0 or -1. */
static int
db_bq_tokens(sqlite3_stmt **q, const struct db_bayes_learn *v, int ds, int dh,
    struct db_bayes_meta *m)
{
	sqlite3_stmt *st = q[ds > 0 || dh > 0 ? DB_BQ_TOK_UPSERT : DB_BQ_TOK_ADD];
	int fresh = (ds > 0 ? ds : 0) + (dh > 0 ? dh : 0);

	for (size_t i = 0; i < v->nkeys; i++) {
		int rc;
		sqlite3_bind_int64(st, 1, (sqlite3_int64)v->keys[i]);
		sqlite3_bind_int(st, 2, ds);
		sqlite3_bind_int(st, 3, dh);
		sqlite3_bind_int64(st, 4, m->seq);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW && st == q[DB_BQ_TOK_UPSERT])
			m->ntokens += sqlite3_column_int(st, 0) == fresh;
		while (rc == SQLITE_ROW)
			rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE) {
			db_fail(sqlite3_db_handle(st), rc, "count classifier token");
			return -1;
		}
	}
	return 0;
}

/* One message: what it was learned as decides what moves. 0 or -1. */
static int
db_bq_one(sqlite3 *h, sqlite3_stmt **q, struct db_bayes_learn *v,
    struct db_bayes_meta *m)
{
	long long *n[2] = { &m->nham, &m->nspam };
	int rc, ds = 0, dh = 0;

	sqlite3_bind_blob(q[DB_BQ_MSG_GET], 1, v->digest, 32, SQLITE_STATIC);
	rc = sqlite3_step(q[DB_BQ_MSG_GET]);
	v->was = rc == SQLITE_ROW ? sqlite3_column_int(q[DB_BQ_MSG_GET], 0) : -1;
	sqlite3_reset(q[DB_BQ_MSG_GET]);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		db_fail(h, rc, "read learned message");
		return -1;
	}
	v->changed = v->was != v->cls && !(v->cls == 2 && v->was == -1);
	if (!v->changed)
		return 0;
	if (v->was == 0 || v->was == 1) {
		(*n[v->was])--;
		*(v->was ? &ds : &dh) -= 1;
	}
	if (v->cls == 0 || v->cls == 1) {
		(*n[v->cls])++;
		*(v->cls ? &ds : &dh) += 1;
	}
	m->seq++;
	if (db_bq_tokens(q, v, ds, dh, m) == -1)
		return -1;
	if (v->cls == 2) {
		sqlite3_bind_blob(q[DB_BQ_MSG_DEL], 1, v->digest, 32, SQLITE_STATIC);
		return db_wstep(q[DB_BQ_MSG_DEL], "forget learned message");
	}
	sqlite3_bind_blob(q[DB_BQ_MSG_PUT], 1, v->digest, 32, SQLITE_STATIC);
	sqlite3_bind_int(q[DB_BQ_MSG_PUT], 2, v->cls);
	sqlite3_bind_int64(q[DB_BQ_MSG_PUT], 3, (sqlite3_int64)time_wall());
	return db_wstep(q[DB_BQ_MSG_PUT], "record learned message");
}

/* Past the cap: delete down to 9/10 of it, forgotten rows first. */
static int
db_bq_expire(sqlite3 *h, sqlite3_stmt **q, struct db_bayes_meta *m, long long max)
{
	int rc;

	if (max <= 0 || m->ntokens <= max)
		return 0;
	rc = sqlite3_step(q[DB_BQ_COUNT]);	/* the count may run ahead */
	if (rc == SQLITE_ROW)
		m->ntokens = sqlite3_column_int64(q[DB_BQ_COUNT], 0);
	sqlite3_reset(q[DB_BQ_COUNT]);
	if (rc != SQLITE_ROW) {
		db_fail(h, rc, "count classifier tokens");
		return -1;
	}
	if (m->ntokens <= max)
		return 0;
	sqlite3_bind_int64(q[DB_BQ_EXPIRE], 1, m->ntokens - max / 10 * 9);
	if (db_wstep(q[DB_BQ_EXPIRE], "expire classifier tokens") == -1)
		return -1;
	m->ntokens -= sqlite3_changes(h);
	m->epoch++;
	return 0;
}

/* Inside a transaction the caller opened. */
static int
db_bayes_run(sqlite3 *h, struct db_bayes_learn *v, size_t n, long long max)
{
	sqlite3_stmt *q[DB_BQ_N];
	struct db_bayes_meta m;
	int rc = -1;

	if (db_bq_prep(h, q) == -1)
		return -1;
	if (db_bq_meta(h, q[DB_BQ_META], &m) == -1)
		goto out;
	for (size_t i = 0; i < n; i++)
		if (db_bq_one(h, q, &v[i], &m) == -1)
			goto out;
	if (db_bq_expire(h, q, &m, max) == -1)
		goto out;
	sqlite3_bind_int64(q[DB_BQ_META_SET], 1, m.nspam);
	sqlite3_bind_int64(q[DB_BQ_META_SET], 2, m.nham);
	sqlite3_bind_int64(q[DB_BQ_META_SET], 3, m.ntokens);
	sqlite3_bind_int64(q[DB_BQ_META_SET], 4, m.seq);
	sqlite3_bind_int64(q[DB_BQ_META_SET], 5, m.epoch);
	rc = db_wstep(q[DB_BQ_META_SET], "store classifier totals");
out:
	db_bq_free(q);
	return rc;
}

int
db_bayes_learn(struct db_bayes_learn *v, size_t n, long long max_tokens)
{
	sqlite3 *h;
	int rc;

	if (db_has_writer) {
		struct db_job *j = db_job_new(DB_J_BAYES, 1);
		j->u.b.v = v;
		j->u.b.n = n;
		j->u.b.max_tokens = max_tokens;
		return db_sync(j, DB_SYNC_WAIT_MS);
	}
	/* Bulk learning touches token rows all over the table: a page cache
	 * that holds the table saves a read per token. */
	if ((h = db_reader()) == NULL ||
	    db_exec(h, "PRAGMA cache_size = -" DB_BAYES_CACHE_KB, "size the cache") == -1 ||
	    db_exec(h, "BEGIN IMMEDIATE", "start learning") == -1)
		return -1;
	rc = db_bayes_run(h, v, n, max_tokens);
	if (rc == 0 && db_exec(h, "COMMIT", "commit learning") == 0)
		return 0;
	sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

void
db_bayes_learn_queue(const struct db_bayes_learn *v, long long max_tokens)
{
	struct db_job *j;
	struct db_bayes_learn *c, one;
	uint64_t *keys;

	if (!db_has_writer) {	/* a CLI or web-only process: write here */
		one = *v;
		if (db_bayes_learn(&one, 1, max_tokens) == -1)
			log_err("db: a queued learn was not stored");
		return;
	}
	j = db_job_new(DB_J_BAYES, 0);
	c = xmalloc(sizeof(*c) + v->nkeys * sizeof(uint64_t));
	keys = (uint64_t *)(c + 1);

	*c = *v;
	if (v->nkeys > 0)
		memcpy(keys, v->keys, v->nkeys * sizeof(uint64_t));
	c->keys = keys;
	j->u.b.v = c;
	j->u.b.n = 1;
	j->u.b.max_tokens = max_tokens;
	db_enqueue(j);
}

int
db_bayes_meta(struct db_bayes_meta *m)
{
	static const char sql[] = "SELECT nspam, nham, ntokens, seq, epoch FROM bayes_meta";
	sqlite3 *h;
	sqlite3_stmt *st;

	if ((st = db_rstmt(&h, sql)) == NULL)
		return -1;
	return db_bq_meta(h, st, m);
}

int
db_bayes_load(long long since, struct db_bayes_meta *m,
    void (*fn)(void *, uint64_t, unsigned, unsigned), void *arg)
{
	sqlite3 *h = db_reader();
	sqlite3_stmt *st = NULL;
	int rc = -1, step;

	if (h == NULL || db_exec(h, "BEGIN", "read classifier") == -1)
		return -1;
	if (db_bayes_meta(m) == -1 || (st = db_prep(h,
	    "SELECT key, spam, ham FROM bayes_tokens WHERE seen > ?1")) == NULL)
		goto out;
	sqlite3_bind_int64(st, 1, since);
	while ((step = sqlite3_step(st)) == SQLITE_ROW)
		fn(arg, (uint64_t)sqlite3_column_int64(st, 0),
		    (unsigned)sqlite3_column_int64(st, 1),
		    (unsigned)sqlite3_column_int64(st, 2));
	if (step != SQLITE_DONE)
		db_fail(h, step, "read classifier tokens");
	else
		rc = 0;
out:
	sqlite3_finalize(st);
	sqlite3_exec(h, "COMMIT", NULL, NULL, NULL);
	return rc;
}
