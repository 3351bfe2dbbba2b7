/*
 * db.c -- the storage interface of db.h, the same for every engine: the
 * public calls, which dispatch to the engine (struct db_backend in
 * backend.h; sqlite.c today), the writer thread, the admin token, and the
 * JSON text of recipient and check columns.
 *
 * Writer: db_verdict_add()/db_stat_add() queue jobs; db_grey_update(),
 * db_rate_add() and db_flush()/db_prune() queue a job and wait for it. The
 * writer takes up to DB_BATCH_MAX jobs, runs them in one engine
 * transaction (begin ... commit) and then wakes the waiters. Rows nobody
 * waits for are held up to DB_LINGER_MS for company, so a busy server
 * commits once per many messages rather than once per message; a
 * waited-for job ends the wait at once. When the batch fails (busy, full,
 * read-only disk) it rolls back, answers -1 to the waiters, puts the
 * queued rows back at the head of the queue, marks the database unhealthy
 * (db_ok() == 0) and retries every DB_RETRY_MS: a row is lost only when
 * the queue overflows DB_QUEUE_MAX or when shutdown cannot write it, and
 * both are logged.
 *
 * Readers and admin edits run on the caller's thread, in the engine; an
 * admin edit in one transaction with its step of a shared edit counter
 * (db_edit_begin/db_edit_end), which every process polls.
 *
 * Ownership: jobs are owned by the queue, then by the writer; a waited-for
 * job by its waiter, unless the waiter gave up (abandoned): then the writer
 * frees it.
 */
#include "db/db.h"
#include "db/backend.h"
#include "db/jsonw.h"
#include "lib/buf.h"
#include "lib/conf.h"
#include "lib/tick.h"
#include "lib/util.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DB_BATCH_MAX	512	/* jobs per transaction */
#define DB_RETRY_MS	1000	/* pause before retrying a failed batch */
#define DB_PRUNE_MS	60000	/* housekeeping interval */
#define DB_PRUNE_RETRY_MS 15000	/* after a failed housekeeping round */
#define DB_CLOSE_TRIES	3	/* batches tried at shutdown before giving up */
#define DB_CONFLICT_TRIES 5	/* runs of a batch another node's writer deadlocked */
/* How long queued rows that nobody waits for may wait for more. Each
 * commit costs a WAL write, a wakeup of the writer and lock traffic with
 * the readers; at 2,000 messages/s 10 ms turned ~3 commits per message
 * into one per ~20 messages, and 25 ms took the writer from 3.6% to 2.7%
 * of Postern's CPU (perf, 10 KB x 10, every check on; 50 ms: 2.3%).
 * Verdicts show up in the log that much later. */
#define DB_LINGER_MS	25
/* First buffer for a verdict row's strings: a typical row (five checks, one
 * recipient) takes ~800 bytes. Kept under 1008 so glibc serves it from a
 * small bin: a larger first size cost ~1,500 instructions per row in malloc,
 * a rare bigger row one realloc. */
#define DB_ROW_HINT	1000

enum db_job_type {
	DB_J_VERDICT,
	DB_J_STAT,
	DB_J_GREY,
	DB_J_FLUSH,
	DB_J_PRUNE,
	DB_J_BAYES,
	DB_J_RATE,
};

struct db_job {
	struct db_job	*next;
	enum db_job_type type;
	/* Waited-for jobs. A waiter that times out may abandon a job only
	 * before the writer took it (started); all four under db_mtx. */
	int		 sync, started, done, abandoned, rc;
	int		 bad;		/* failed for good: drop, do not retry */
	union {
		struct db_vrow v;
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
		struct {
			const struct db_rate_delta *d;	/* the waiter's */
			size_t	 n;
			long long cut_win;
		} r;
	} u;
};

static int	 db_edit_begin(void);
static long long	 db_edit_end(long long rc, int changed);
static long long	 db_edit_signal(long long rc, enum db_edit_sig);
static void	 db_edit_publish(enum db_edit_sig, long long v);
static unsigned long long db_edit_token(enum db_edit_sig);
static void	 db_poll_tick(void *);
static void	 db_thread_stop(pthread_mutex_t *, pthread_cond_t *, int *stop,
		    pthread_t);
static void	*db_writer_main(void *);
static void	 db_linger(void);
static int	 db_batch_run(struct db_job *);
static int	 db_job_run(struct db_job *);
static int	 db_job_pass(const struct db_job *);
static int	 db_run_bayes(struct db_job *first);
static int	 db_run_verdict(struct db_job *);
static int	 db_run_prune(time_t now);
static int	 db_acc_add(int hit, const char *name, long long key, int n);
static int	 db_acc_put(int hit, const char *name, long long key, int n);
static int	 db_acc_flush(void);
static unsigned	 db_acc_hash(const char *, size_t *len);
static void	 db_batch_finish(struct db_job *, int ok);
static void	 db_job_free(struct db_job *);
static void	 db_enqueue(struct db_job *);
static int	 db_wait(struct db_job *, int timeout_ms);
static struct db_job *db_job_new(enum db_job_type, int sync);
static int	 db_sync(struct db_job *, int timeout_ms);
struct db_bayes_src;
static int	 db_bayes_before(const struct db_bayes_src *,
		    const struct db_bayes_src *);
static void	 db_bayes_down(struct db_bayes_src *, size_t n, size_t i);
static void	 db_wstr(struct jsonw *, const char *);
static void	 db_rcpts_json(struct jsonw *, const char *const *, int);
static void	 db_checks_json(struct jsonw *, const struct db_check *, int);
static int	 db_verdict_stats(struct jsonw *, const struct db_verdict *);
static json_t	*db_dec_parse(const char *);
static char	*db_lower(const char *);

/* The engine: SQLite until a db.url chooses another. */
static const struct db_backend *db_be = &db_sqlite;

static _Atomic long long db_verdict_max_age, db_grey_expire;
static _Atomic int	 db_healthy = 1;
static _Atomic unsigned long db_dropped;	/* rows lost to a full queue */
static _Atomic int db_bayes_pending;	/* async learns queued, not yet freed */
static _Atomic unsigned long db_bayes_skipped;	/* learns refused for that */
/* Per edit counter (enum db_edit_sig): its value as last read from the
 * database (by the poller, or after an edit here), the highest seen, so a
 * slow read never moves it back; and the edits made here. */
static struct {
	_Atomic long long	 seen;
	_Atomic unsigned long long local;
} db_sig[DB_SIG_N];

/* the edit version's poller */
static struct tick	 db_poller = {
	.name = "postern-edits", .ms = DB_EDIT_POLL_MS, .fn = db_poll_tick,
};

/* writer state, under db_mtx */
static pthread_mutex_t	 db_mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	 db_work_cv = PTHREAD_COND_INITIALIZER;
static pthread_cond_t	 db_done_cv = PTHREAD_COND_INITIALIZER;
static struct db_job	*db_head, *db_tail;
static int		 db_qlen, db_stop, db_has_writer;
static int		 db_nsync;	/* queued jobs someone waits for */
static int		 db_idle;	/* the writer sleeps on an empty queue */
static pthread_t	 db_writer;

/* Counters summed over a batch, written once per key at commit (a verdict
 * bumps several): per-minute stats, and per-day rule hits (hit set);
 * writer thread only. */
#define DB_ACC_MAX	128
#define DB_ACC_NAME	80
static struct {
	int		 hit;		/* a rule hit (key: day), else a stat (minute) */
	long long	 key;		/* the minute (stat) or day (hit) */
	unsigned	 hash;		/* db_acc_hash(name): most misses end here */
	char		 name[DB_ACC_NAME];
	int		 n;
} db_acc[DB_ACC_MAX];
static int		 db_nacc;

/* -------------------------------------------------------------- lifecycle */

/* Open the engine (it migrates), then the edit version's first value, the
 * poller and the writer. */
int
db_open(const struct conf *c, int writer)
{
	db_be = c->db_url != NULL && *c->db_url ? &db_pg : &db_sqlite;
	db_reload(c);
	if (db_be->open(c, writer) == -1)
		return -1;
	atomic_store(&db_healthy, 1);
	for (int i = 0; i < DB_SIG_N; i++) {
		atomic_store(&db_sig[i].seen, 0);
		db_edit_publish(i, db_be->edit_version(i));
	}
	if (!writer)
		return 0;
	if (tick_start(&db_poller) == -1)
		fatalx("db: cannot start the edit poller thread");
	db_stop = 0;
	if (pthread_create(&db_writer, NULL, db_writer_main, NULL) != 0)
		fatalx("db: cannot start the writer thread");
	db_has_writer = 1;
	return 0;
}

void
db_close(void)
{
	if (db_has_writer) {
		db_thread_stop(&db_mtx, &db_work_cv, &db_stop, db_writer);
		db_has_writer = 0;
	}
	tick_stop(&db_poller);
	db_be->close();
}

int
db_schema_version(void)
{
	return db_be->schema_version();
}

/* ------------------------------------------------------------ admin token */

/* Why a polled row and not a notification: docs/cluster.md. */

const char *const db_edit_read_sql[DB_SIG_N] = {
	"SELECT version FROM edits WHERE id = 1",
	"SELECT grey FROM edits WHERE id = 1",
};
const char *const db_edit_move_sql[DB_SIG_N] = {
	"UPDATE edits SET version = version + 1 WHERE id = 1",
	"UPDATE edits SET grey = grey + 1 WHERE id = 1",
};

static void
db_edit_publish(enum db_edit_sig sig, long long v)
{
	long long cur = atomic_load(&db_sig[sig].seen);

	while (v > cur && !atomic_compare_exchange_weak(&db_sig[sig].seen, &cur, v))
		;
}

/* Read the edit counters every DB_EDIT_POLL_MS on a connection of this
 * thread's own, so that db_admin_token() and db_grey_token() -- asked on
 * the event loop -- only load atomics. A failed read keeps the last
 * value: the caches stay as they are until the database answers again. */
static void
db_poll_tick(void *arg)
{
	(void)arg;
	for (int i = 0; i < DB_SIG_N; i++)
		db_edit_publish(i, db_be->edit_version(i));
}

/* Tell a thread waiting on cv under m to stop, and wait for it. */
static void
db_thread_stop(pthread_mutex_t *m, pthread_cond_t *cv, int *stop, pthread_t t)
{
	pthread_mutex_lock(m);
	*stop = 1;
	pthread_cond_signal(cv);
	pthread_mutex_unlock(m);
	pthread_join(t, NULL);
}

/* Open an admin edit's transaction on this thread's connection; the
 * engine's edit call follows, then db_edit_end. 0 or -1. */
static int
db_edit_begin(void)
{
	return db_be->edit_begin();
}

/* End the edit begun by db_edit_begin, whose engine call answered rc
 * (changed: it changed something). A change commits together with one
 * step of the shared edit version, so that no node or process can see
 * the edit without the signal to reload: rc, or -1 when the commit
 * failed and nothing of the edit stays. Otherwise the transaction rolls
 * back and rc is returned as it was. This process sees its own commit at
 * once. */
static long long
db_edit_end(long long rc, int changed)
{
	return db_edit_signal(rc, changed ? DB_SIG_ADMIN : DB_SIG_NONE);
}

/* db_edit_end with the counter to move named: sig (DB_SIG_NONE for an
 * edit that changed nothing). */
static long long
db_edit_signal(long long rc, enum db_edit_sig sig)
{
	if (db_be->edit_end(sig) == -1)
		return -1;
	if (sig != DB_SIG_NONE) {
		atomic_fetch_add(&db_sig[sig].local, 1);
		db_edit_publish(sig, db_be->edit_version(sig));
	}
	return rc;
}

/* In a process without the poller (CLI tools) the row is read here, at
 * most once per millisecond per thread and counter: the checks of one
 * stage ask several times in a row. */
static unsigned long long
db_edit_token(enum db_edit_sig sig)
{
	static _Thread_local uint64_t read_ms[DB_SIG_N];
	unsigned long long v;

	if (!db_poller.running && time_mono_ms() != read_ms[sig]) {
		read_ms[sig] = time_mono_ms();
		db_edit_publish(sig, db_be->edit_version(sig));
	}
	v = (unsigned long long)atomic_load(&db_sig[sig].seen);
	/* odd multiplier: distinct local counts give distinct tokens */
	return v ^ (atomic_load(&db_sig[sig].local) * 0x9e3779b97f4a7c15ULL);
}

unsigned long long
db_admin_token(void)
{
	return db_edit_token(DB_SIG_ADMIN);
}

unsigned long long
db_grey_token(void)
{
	return db_edit_token(DB_SIG_GREY);
}

void
db_reload(const struct conf *c)
{
	atomic_store(&db_verdict_max_age, c->db_verdict_max_age);
	atomic_store(&db_grey_expire, c->greylist_expire);
}

int
db_ok(void)
{
	return atomic_load(&db_healthy);
}

/* ---------------------------------------------------------------- writer */

/* With db_mtx held: give rows nobody waits for up to DB_LINGER_MS to
 * gather company (DB_BAYES_LINGER_MS while a queued learn waits, until
 * DB_BAYES_LINGER_N wait). Ends early for a waited-for job, a full batch
 * or shutdown (each signals db_work_cv); not while writes fail (the
 * retry pause is long enough). */
static void
db_linger(void)
{
	struct timespec ts;

	if (db_head == NULL || !atomic_load(&db_healthy))
		return;
	time_deadline_ts(CLOCK_REALTIME, atomic_load(&db_bayes_pending) > 0 ?
	    DB_BAYES_LINGER_MS : DB_LINGER_MS, &ts);
	while (!db_stop && db_nsync == 0 && db_qlen < DB_BATCH_MAX &&
	    atomic_load(&db_bayes_pending) < DB_BAYES_LINGER_N)
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
	if (db_idle || j->sync || db_qlen >= DB_BATCH_MAX ||
	    (j->type == DB_J_BAYES && atomic_load(&db_bayes_pending) >= DB_BAYES_LINGER_N))
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

	time_deadline_ts(CLOCK_REALTIME, (uint64_t)timeout_ms, &ts);
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
			if (!atomic_load(&db_healthy) && db_be->probe() == 0) {
				atomic_store(&db_healthy, 1);
				log_info("db: writable again");
			}
			continue;
		}
		/* A conflict with another node's writer is no outage: the
		 * batch runs again at once, and new transactions go on. */
		int rc, tries = 0;
		while ((rc = db_batch_run(batch)) == DB_CONFLICT &&
		    ++tries < DB_CONFLICT_TRIES)
			;
		int ok = rc == 0;
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

/* One transaction over the batch. 0, or after a rollback DB_CONFLICT
 * (run it again) or -1. */
static int
db_batch_run(struct db_job *batch)
{
	int why;

	if (db_be->begin() == -1)
		return db_be->retryable() == DB_CONFLICT ? DB_CONFLICT : -1;
	db_nacc = 0;
	/* The learns together after the other rows (db_run_bayes: the
	 * first learn's job runs them all); rate counters after them and
	 * before the stats: rows locked in the same order on every node
	 * cannot deadlock two nodes' batches (PostgreSQL). */
	for (int pass = 0; pass < 3; pass++)
		for (struct db_job *j = batch; j; j = j->next) {
			if (db_job_pass(j) != pass)
				continue;
			if (db_job_run(j) == -1) {
				/* A row the database will never take (a bug,
				 * not the disk) must not block the queue
				 * forever: the learns go as one. */
				if (!(why = db_be->retryable()))
					for (struct db_job *b = j; b; b = b->next)
						b->bad |= b == j ||
						    (pass == 1 && db_job_pass(b) == 1);
				db_be->rollback();
				return why == DB_CONFLICT ? DB_CONFLICT : -1;
			}
			if (pass == 1)
				break;
		}
	if (db_acc_flush() == -1 || db_be->commit() == -1) {
		why = db_be->retryable();
		db_be->rollback();
		return why == DB_CONFLICT ? DB_CONFLICT : -1;
	}
	return 0;
}

static int
db_job_run(struct db_job *j)
{
	if (j->type == DB_J_BAYES)	/* it and every learn after it */
		return db_run_bayes(j);
	if (j->abandoned)	/* stable: only set before started */
		return 0;
	switch (j->type) {
	case DB_J_VERDICT:
		return db_run_verdict(j);
	case DB_J_STAT:
		return db_acc_add(0, j->u.st.name, j->u.st.when - j->u.st.when % 60, j->u.st.n);
	case DB_J_GREY:
		return db_be->grey_run(j->u.g.net, j->u.g.sender, j->u.g.rcpt,
		    j->u.g.now, j->u.g.step, j->u.g.arg, &j->rc);
	case DB_J_FLUSH:
		return 0;
	case DB_J_PRUNE:
		return db_run_prune(j->u.p.now);
	case DB_J_BAYES:	/* run above: not here */
		break;
	case DB_J_RATE:
		return db_be->rate_add(j->u.r.d, j->u.r.n, j->u.r.cut_win);
	}
	fatalx("db: job type %d", (int)j->type);
}

/* Which of db_batch_run's passes runs j: 0 most, 1 learns, 2 rates. */
static int
db_job_pass(const struct db_job *j)
{
	return j->type == DB_J_BAYES ? 1 : j->type == DB_J_RATE ? 2 : 0;
}

/* The learns of the batch from `first` on, in one engine run: a batch's
 * messages share most of their keys, and summed each is written once
 * (db_bayes_sum). At most DB_BATCH_MAX jobs, of which at most
 * DB_BAYES_PENDING_MAX queued ones and a waiter's batch each. */
static int
db_run_bayes(struct db_job *first)
{
	struct db_bayes_learn **v;
	long long max = 0;
	size_t n = 0, k = 0;
	int rc;

	for (struct db_job *j = first; j; j = j->next)
		if (j->type == DB_J_BAYES && !j->abandoned) {
			n += j->u.b.n;
			max = j->u.b.max_tokens;	/* the config's; the last */
		}
	if (n == 0)
		return 0;
	v = xmalloc(n * sizeof(*v));
	for (struct db_job *j = first; j; j = j->next)
		if (j->type == DB_J_BAYES && !j->abandoned)
			for (size_t i = 0; i < j->u.b.n; i++)
				v[k++] = &j->u.b.v[i];
	rc = db_be->bayes_batch(v, n, max);
	free(v);
	return rc;
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
	else if (j->type == DB_J_BAYES && !j->sync) {
		free(j->u.b.v->keys);
		free(j->u.b.v);
		atomic_fetch_sub(&db_bayes_pending, 1);
	}
	free(j);
}

/* ------------------------------------------------- the batch's counters */

/* Counter rows in one order, (kind, minute or day, name), on every node:
 * two writers adding to the same rows then never wait for each other in
 * a cycle. */
static int
db_acc_cmp(const void *a, const void *b)
{
	const typeof(db_acc[0]) *x = a, *y = b;

	if (x->hit != y->hit)
		return x->hit - y->hit;
	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return strcmp(x->name, y->name);
}

static int
db_acc_flush(void)
{
	qsort(db_acc, (size_t)db_nacc, sizeof(db_acc[0]), db_acc_cmp);
	for (int i = 0; i < db_nacc; i++)
		if (db_acc_put(db_acc[i].hit, db_acc[i].name, db_acc[i].key, db_acc[i].n) == -1)
			return -1;
	db_nacc = 0;
	return 0;
}

static int
db_acc_put(int hit, const char *name, long long key, int n)
{
	return hit ? db_be->put_rule_hit(name, key, n) : db_be->put_stat(name, key, n);
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

/* Add to a counter of the running batch: a stat of the minute, or (hit)
 * a rule's hits of the day. A verdict adds 2 + its number of checks and
 * hits, each looked up among the batch's counters: by hash first. */
static int
db_acc_add(int hit, const char *name, long long key, int n)
{
	size_t len;
	unsigned h = db_acc_hash(name, &len);
	int i;

	if (len >= DB_ACC_NAME)
		return db_acc_put(hit, name, key, n);
	for (i = 0; i < db_nacc; i++)
		if (db_acc[i].hash == h && db_acc[i].key == key &&
		    db_acc[i].hit == hit && strcmp(db_acc[i].name, name) == 0) {
			db_acc[i].n += n;
			return 0;
		}
	if (db_nacc == DB_ACC_MAX && db_acc_flush() == -1)
		return -1;
	db_acc[db_nacc].hit = hit;
	db_acc[db_nacc].key = key;
	db_acc[db_nacc].hash = h;
	memcpy(db_acc[db_nacc].name, name, len + 1);
	db_acc[db_nacc++].n = n;
	return 0;
}

static int
db_run_verdict(struct db_job *j)
{
	const struct db_vrow *v = &j->u.v;
	const char *name = v->text + v->off[DB_V_NTEXT];

	if (db_be->put_verdict(v) == -1)
		return -1;
	for (int i = 0; i < v->nstats; i++, name += strlen(name) + 1)
		if (db_acc_add(0, name, (long long)(v->ts - v->ts % 60), 1) == -1)
			return -1;
	for (int i = 0; i < v->nhits; i++, name += strlen(name) + 1)
		if (db_acc_add(1, name, (long long)(v->ts / DB_DAY), 1) == -1)
			return -1;
	return 0;
}

/* Rows past their age (writer thread). 0 or -1. */
static int
db_run_prune(time_t now)
{
	int removed = db_be->prune(now - atomic_load(&db_verdict_max_age),
	    now - atomic_load(&db_grey_expire));

	if (removed > 0)
		log_info("db: pruned %d old rows", removed);
	return removed < 0 ? -1 : 0;
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

/* The rules a verdict counts a hit for, each NUL-terminated: the reason of
 * every "rule" check (policy/rulecheck.c names the rule there; its "N more
 * rules" sum has spaces, which no rule name has). Their number. */
static int
db_verdict_hits(struct jsonw *w, const struct db_verdict *v)
{
	int n = 0;

	for (int i = 0; i < v->nchecks; i++) {
		const struct db_check *c = &v->checks[i];

		if (c->check == NULL || strcmp(c->check, "rule") != 0 ||
		    c->reason == NULL || *c->reason == '\0' ||
		    strchr(c->reason, ' ') != NULL)
			continue;
		db_wstr(w, c->reason);
		JSONW_LIT(w, "\0");
		n++;
	}
	return n;
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
	j->u.v.nhits = db_verdict_hits(&w, v);
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

/* ---------------------------------------------------------------- greylist */

int
db_grey_auto_allowed(const char *net, int need, time_t now, long long expire)
{
	int passes;
	time_t seen;

	if (db_grey_auto_get(net, &passes, &seen) == -1)
		return -1;
	return passes >= need && (long long)seen + expire >= (long long)now;
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
	rc = db_be->quar_add(q, rcpts, reasons, max_total);
	free(rcpts);
	free(reasons);
	return rc;
}

/* The recipients of a claim, copied out of their JSON column into one
 * allocation: the pointers, then the strings they point to. */
void
db_dec_claimed(struct db_quar_claimed *out, const char *text)
{
	struct db_dec d = { 0 };
	const char **v = db_dec_rcpts(&d, text, &out->nrcpts);
	size_t room = ((size_t)out->nrcpts + 1) * sizeof(char *);
	char *p;

	for (int i = 0; i < out->nrcpts; i++)
		room += strlen(v[i]) + 1;
	out->rcpts = xmalloc(room);
	p = (char *)(out->rcpts + out->nrcpts + 1);
	for (int i = 0; i < out->nrcpts; i++) {
		out->rcpts[i] = p;
		p = stpcpy(p, v[i]) + 1;
	}
	out->rcpts[out->nrcpts] = NULL;
	db_dec_free(&d);
}

void
db_quar_claimed_free(struct db_quar_claimed *c)
{
	free(c->rcpts);
	free(c->mail_from);
	free(c->raw);
	memset(c, 0, sizeof(*c));
}

/* ------------------------------------------------------------ classifier */

/* keys[0..n) into the database's order (SQLite's: signed 64-bit), each
 * once; their new number. An LSD radix sort on 11-bit digits (6 passes,
 * 16 KB of counts), then repeats dropped (the Markov grams of a message
 * come with them, bmark.h). In that order a
 * message's thousands of rows are then visited page by page, not at
 * random (postern learn with the Markov part: 11.2 -> 8.4 s CPU for 400
 * messages). qsort did it at 34% of the daemon's CPU (perf, autolearn of
 * 10 KB messages with the Markov part's 15,000 keys). */
#define DB_RADIX_BITS	11
static size_t
db_keys_sort(uint64_t *keys, size_t n)
{
	enum { DIGITS = 1 << DB_RADIX_BITS };
	uint64_t *tmp, *from = keys, *to;
	size_t count[DIGITS], k = 0;

	if (n < 2)
		return n;
	tmp = xmalloc(n * sizeof(*tmp));
	to = tmp;
	for (int shift = 0; shift < 64; shift += DB_RADIX_BITS) {
		size_t sum = 0;
		memset(count, 0, sizeof(count));
		for (size_t i = 0; i < n; i++)
			count[((from[i] ^ 1ULL << 63) >> shift) & (DIGITS - 1)]++;
		for (size_t d = 0; d < DIGITS; d++) {
			size_t c = count[d];
			count[d] = sum;
			sum += c;
		}
		for (size_t i = 0; i < n; i++)
			to[count[((from[i] ^ 1ULL << 63) >> shift) & (DIGITS - 1)]++] = from[i];
		from = to;
		to = from == tmp ? keys : tmp;
	}
	/* an even number of passes (6): the result is back in keys */
	free(tmp);
	for (size_t i = 0; i < n; i++)
		if (k == 0 || keys[i] != keys[k - 1])
			keys[k++] = keys[i];
	return k;
}

/* One changed message of a learn batch: its keys still to merge, and
 * how it moves each. */
struct db_bayes_src {
	const uint64_t	*k, *end;
	int		 ds, dh;
};

struct db_bayes_sum {
	struct db_bayes_src *src;	/* a min-heap on *k in db_bayes_sum_end */
	size_t		 n, cap;
	struct buf	 out;		/* struct db_bayes_delta[] */
};

struct db_bayes_sum *
db_bayes_sum_new(size_t nmsg)
{
	struct db_bayes_sum *s = xcalloc(1, sizeof(*s));

	s->cap = nmsg;
	s->src = xcalloc(nmsg ? nmsg : 1, sizeof(*s->src));
	return s;
}

void
db_bayes_sum_free(struct db_bayes_sum *s)
{
	if (s == NULL)
		return;
	buf_free(&s->out);
	free(s->src);
	free(s);
}

int
db_bayes_move(struct db_bayes_learn *v, struct db_bayes_meta *m,
    struct db_bayes_sum *sum)
{
	long long *n[2] = { &m->nham, &m->nspam };
	int ds = 0, dh = 0;

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
	v->nkeys = db_keys_sort(v->keys, v->nkeys);
	assert(sum->n < sum->cap);
	if (v->nkeys > 0)
		sum->src[sum->n++] = (struct db_bayes_src){ v->keys,
		    v->keys + v->nkeys, ds, dh };
	return 1;
}

/* Keys compare as the database orders them (signed 64-bit). */
static int
db_bayes_before(const struct db_bayes_src *a, const struct db_bayes_src *b)
{
	return (int64_t)*a->k < (int64_t)*b->k;
}

/* Restore the heap below h[i]. */
static void
db_bayes_down(struct db_bayes_src *h, size_t n, size_t i)
{
	for (;;) {
		size_t c = 2 * i + 1;
		struct db_bayes_src t;

		if (c >= n)
			return;
		if (c + 1 < n && db_bayes_before(&h[c + 1], &h[c]))
			c++;
		if (!db_bayes_before(&h[c], &h[i]))
			return;
		t = h[i];
		h[i] = h[c];
		h[c] = t;
		i = c;
	}
}

/* A k-way merge of the messages' sorted keys (each sorted once by
 * db_bayes_move): no copy of the batch's keys is made, only of the
 * distinct ones with their sums. With 100 messages of 5,000-12,000 keys
 * that is a few MB and about 15 ms of CPU (perf on postern learn: 5% of
 * it, where the writes it saves were 80%). */
const struct db_bayes_delta *
db_bayes_sum_end(struct db_bayes_sum *s, size_t *n)
{
	struct db_bayes_src *h = s->src;
	size_t hn = s->n;

	for (size_t i = hn / 2; i-- > 0;)
		db_bayes_down(h, hn, i);
	while (hn > 0) {
		struct db_bayes_delta d = { *h[0].k, 0, 0 };
		do {
			d.ds += h[0].ds;
			d.dh += h[0].dh;
			if (++h[0].k == h[0].end)
				h[0] = h[--hn];
			db_bayes_down(h, hn, 0);
		} while (hn > 0 && *h[0].k == d.key);
		if (d.ds != 0 || d.dh != 0)
			buf_add(&s->out, &d, sizeof(d));
	}
	s->n = 0;
	*n = s->out.len / sizeof(struct db_bayes_delta);
	return (const struct db_bayes_delta *)(const void *)buf_ptr(&s->out);
}

int
db_bayes_learn(struct db_bayes_learn *v, size_t n, long long max_tokens)
{
	struct db_bayes_learn **p;
	int rc;

	if (db_has_writer) {
		struct db_job *j = db_job_new(DB_J_BAYES, 1);
		j->u.b.v = v;
		j->u.b.n = n;
		j->u.b.max_tokens = max_tokens;
		return db_sync(j, DB_SYNC_WAIT_MS);
	}
	p = xmalloc((n ? n : 1) * sizeof(*p));
	for (size_t i = 0; i < n; i++)
		p[i] = &v[i];
	rc = db_be->bayes_learn(p, n, max_tokens);
	free(p);
	return rc;
}

int
db_bayes_learn_queue(struct db_bayes_learn *v, long long max_tokens)
{
	struct db_job *j;
	int rc;

	if (!db_has_writer) {	/* a CLI or web-only process: write here */
		if ((rc = db_bayes_learn(v, 1, max_tokens)) == -1)
			log_err("db: a queued learn was not stored");
		free(v->keys);
		return rc;
	}
	if (atomic_fetch_add(&db_bayes_pending, 1) >= DB_BAYES_PENDING_MAX) {
		unsigned long n = atomic_fetch_add(&db_bayes_skipped, 1) + 1;
		atomic_fetch_sub(&db_bayes_pending, 1);
		if (n == 1 || n % 1000 == 0)
			log_warn("db: %d learns wait for the writer; %lu more skipped so far",
			    DB_BAYES_PENDING_MAX, n);
		free(v->keys);
		return -1;
	}
	j = db_job_new(DB_J_BAYES, 0);
	j->u.b.v = xmalloc(sizeof(*v));
	*j->u.b.v = *v;		/* the keys go with it: db_job_free frees them */
	j->u.b.n = 1;
	j->u.b.max_tokens = max_tokens;
	db_enqueue(j);
	return 0;
}

/* ------------------------------------------------------ reads (dispatch) */

int
db_grey_get(const char *net, const char *sender, const char *rcpt,
    struct db_grey_row *row)
{
	return db_be->grey_get(net, sender, rcpt, row);
}

int
db_grey_auto_get(const char *net, int *passes, time_t *last_seen)
{
	return db_be->grey_auto_get(net, passes, last_seen);
}

/* A forgotten triplet moves the greylist's token, not the admin one:
 * every node's greylist memory (policy/grey.c) lets go of it, and the
 * access lists, rules and domain policies stay as they are. */
int
db_grey_forget(const char *net, const char *sender, const char *rcpt)
{
	int rc;

	if (db_edit_begin() == -1)
		return -1;
	rc = db_be->grey_forget(net, sender, rcpt);
	return (int)db_edit_signal(rc, rc > 0 ? DB_SIG_GREY : DB_SIG_NONE);
}

int
db_grey_each(int limit, int (*fn)(void *, const struct db_grey_entry *), void *arg)
{
	return db_be->grey_each(limit, fn, arg);
}

int
db_grey_auto_each(int limit, int (*fn)(void *, const struct db_grey_auto *),
    void *arg)
{
	return db_be->grey_auto_each(limit, fn, arg);
}

int
db_access_each(const char *kind, int (*fn)(void *, const struct db_access *),
    void *arg)
{
	return db_be->access_each(kind, fn, arg);
}

int
db_verdict_each(int limit, long long before, const char *q,
    int (*fn)(void *, const struct db_verdict_row *), void *arg)
{
	return db_be->verdict_each(limit < 1 ? 1 : limit > 1000 ? 1000 : limit,
	    before, q, fn, arg);
}

int
db_rate_add(const struct db_rate_delta *d, size_t n, long long cut_win)
{
	struct db_job *j = db_job_new(DB_J_RATE, 1);

	j->u.r.d = d;
	j->u.r.n = n;
	j->u.r.cut_win = cut_win;
	return db_sync(j, DB_SYNC_WAIT_MS);
}

int
db_rate_each(long long since_win,
    int (*fn)(void *, const struct db_rate_delta *), void *arg)
{
	return db_be->rate_each(since_win, fn, arg);
}

int
db_stat_each(time_t since, int (*fn)(void *, const struct db_stat_row *), void *arg)
{
	return db_be->stat_each(since, fn, arg);
}

int
db_rule_hit_each(long long since_day,
    int (*fn)(void *, const struct db_rule_hit *), void *arg)
{
	return db_be->rule_hit_each(since_day, fn, arg);
}

long long
db_rule_version(void)
{
	return db_be->rule_version();
}

int
db_rule_load(struct rule_def **defs, size_t *n)
{
	return db_be->rule_load(defs, n);
}

int
db_rule_get(long long id, struct rule_def *out)
{
	return db_be->rule_get(id, out);
}

int
db_quar_each(const struct db_quar_query *q,
    int (*fn)(void *, const struct db_quar_row *), void *arg)
{
	return db_be->quar_each(q, fn, arg);
}

int
db_quar_get(const char *id, int (*fn)(void *, const struct db_quar_row *), void *arg)
{
	return db_be->quar_get(id, fn, arg);
}

int
db_quar_raw(const char *id, char **raw, size_t *len)
{
	return db_be->quar_raw(id, raw, len);
}

long long
db_quar_total(void)
{
	return db_be->quar_total();
}

char *
db_user_hash(const char *name)
{
	return db_be->user_hash(name);
}

int
db_bayes_meta(struct db_bayes_meta *m)
{
	return db_be->bayes_meta(m);
}

int
db_bayes_load(long long since, struct db_bayes_meta *m,
    void (*fn)(void *, uint64_t, unsigned, unsigned), void *arg)
{
	return db_be->bayes_load(since, m, fn, arg);
}

/* ----------------------------------------------- admin edits (dispatch) */

/* Each change commits with its step of the admin token, for every
 * process (db_edit_end). */

int
db_access_add(const char *list, const char *kind, const char *value,
    const char *note)
{
	char *v = db_lower(value);
	int rc = -1;

	if (db_edit_begin() == 0) {
		rc = db_be->access_add(list, kind, v, note);
		rc = (int)db_edit_end(rc, rc == 0);
	}
	free(v);
	return rc;
}

int
db_access_del(const char *list, const char *kind, const char *value)
{
	char *v = db_lower(value);
	int rc = -1;

	if (db_edit_begin() == 0) {
		rc = db_be->access_del(list, kind, v);
		rc = (int)db_edit_end(rc, rc > 0);
	}
	free(v);
	return rc;
}

long long
db_rule_add(const struct rule_def *d)
{
	long long id;

	if (db_edit_begin() == -1)
		return -1;
	id = db_be->rule_add(d);
	return db_edit_end(id, id >= 0);
}

int
db_rule_update(long long id, const struct rule_def *d)
{
	int rc;

	if (db_edit_begin() == -1)
		return -1;
	rc = db_be->rule_update(id, d);
	return (int)db_edit_end(rc, rc == 0);
}

int
db_rule_delete(long long id)
{
	int rc;

	if (db_edit_begin() == -1)
		return -1;
	rc = db_be->rule_delete(id);
	return (int)db_edit_end(rc, rc == 0);
}

int
db_rule_import(const struct rule_def *defs, size_t n, int replace)
{
	int rc;

	if (db_edit_begin() == -1)
		return -1;
	rc = db_be->rule_import(defs, n, replace);
	return (int)db_edit_end(rc, rc == 0);
}

/* ------------------------------------------- quarantine, users (dispatch) */

int
db_quar_claim(const char *id, struct db_quar_claimed *out)
{
	return db_be->quar_claim(id, out);
}

int
db_quar_finish(const char *id, int delivered, const char *who, time_t when)
{
	return db_be->quar_finish(id, delivered, who, when);
}

int
db_quar_delete(const char *id)
{
	return db_be->quar_delete(id);
}

int
db_quar_expire(time_t now, long long max_age, int limit)
{
	return db_be->quar_expire(now - max_age, limit);
}

int
db_user_set(const char *name, const char *hash)
{
	int rc;

	if (db_edit_begin() == -1)
		return -1;
	rc = db_be->user_set(name, hash);
	return (int)db_edit_end(rc, rc == 0);
}

/* ------------------------------------------- shared values (dispatch) */

int
db_meta_get(const char *key, char **val)
{
	return db_be->meta_get(key, val);
}

int
db_meta_put(const char *key, const char *val, int keep)
{
	return db_be->meta_put(key, val, keep);
}

int
db_meta_prune(const char *prefix, long long below)
{
	return db_be->meta_prune(prefix, below);
}

long long
db_edit_version(void)
{
	return db_be->edit_version(DB_SIG_ADMIN);
}

int
db_meta_edit(const char *key, const char *val)
{
	int rc;

	if (db_edit_begin() == -1)
		return -1;
	rc = db_be->meta_put(key, val, 0);
	return (int)db_edit_end(rc, rc == 0);
}

/* ---------------------------------------------- web sessions (dispatch) */

int
db_session_put(const char *hash, const char *user, const char *csrf, time_t now)
{
	return db_be->session_put(hash, user, csrf, now);
}

int
db_session_get(const char *hash, time_t now, time_t idle_cut, time_t age_cut,
    char *user, size_t ulen, char *csrf, size_t clen)
{
	return db_be->session_get(hash, now, idle_cut, age_cut, user, ulen,
	    csrf, clen);
}

int
db_session_del(const char *hash)
{
	return db_be->session_del(hash);
}

int
db_session_prune(time_t idle_cut, time_t age_cut)
{
	return db_be->session_prune(idle_cut, age_cut);
}
