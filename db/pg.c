/*
 * pg.c -- the PostgreSQL engine behind db.h (struct db_backend db_pg, see
 * backend.h), chosen by db.url: the schema and its migrations, every SQL
 * statement of the shared store, and the connections, through libpq.
 *
 * Connections: one per thread, opened on first use and closed by a
 * pthread key at thread exit -- the writer thread's too, which frames
 * its batches with begin/commit. Each statement is prepared once per
 * connection (keyed by the address of its SQL literal) and run with
 * parameters: values never become SQL text. Text goes in as UTF-8 (bytes
 * that are not become U+FFFD: PostgreSQL refuses them, SQLite kept them);
 * quarantined messages and learned digests go in as bytea, classifier
 * token keys as bigint (the uint64 cast to signed and back).
 *
 * Several nodes share one database: migrations run at open in one
 * transaction under pg_advisory_xact_lock(PG_MIGRATE_LOCK), so nodes
 * starting together migrate once; a quarantine claim is one conditional
 * UPDATE, so a message is released once whichever nodes click; a learn
 * locks the classifier totals' row (FOR UPDATE) for its transaction.
 *
 * Failure: a lost connection is reopened on the thread's next use (never
 * inside a transaction: that fails and the writer retries the batch). An
 * outage -- connection refused or lost, read-only, shutting down, out of
 * resources -- logs one line when it starts and one when it ends, not one
 * per statement; those states are retryable(). Other errors are logged
 * each time.
 */
#include "db/backend.h"
#include "lib/buf.h"
#include "lib/conf.h"
#include "lib/utf8.h"
#include "lib/util.h"
#include "rules/rules.h"

#include <assert.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PG_PREP_MAX	64	/* statements prepared per connection */
#define PG_ARGS_MAX	20	/* parameters of one statement */
#define PG_RETRY_MS	500	/* a thread's pause between failed connects */
#define PG_CONNECT_MS	5000	/* longest connection start */
/* pg_advisory_xact_lock keys: "postern" in ASCII, then one per purpose */
#define PG_MIGRATE_LOCK	"7070111115116101"
#define PG_QUAR_LOCK	"7070111115116102"

/* A thread's connection and the statements prepared on it. */
struct pgc {
	PGconn		*c;
	int		 in_tx;		/* BEGIN sent, no COMMIT/ROLLBACK yet */
	int		 nprep;
	const char	*prep[PG_PREP_MAX];	/* statement "sN" is prep[N] */
	uint64_t	 next_try;	/* no connect before (time_mono_ms) */
	uint64_t	 born;		/* connected at (time_mono_ms) */
};

/* One statement's parameters, as libpq takes them: text, or binary for
 * bytea; numbers are printed into num. */
struct pg_args {
	int		 n;
	const char	*v[PG_ARGS_MAX];
	int		 len[PG_ARGS_MAX];
	int		 fmt[PG_ARGS_MAX];
	char		 num[PG_ARGS_MAX][32];
	char		*own[PG_ARGS_MAX];	/* UTF-8 repairs, freed by pa_free */
};

/* A row iterator's callback and argument, and the row's decoded JSON. */
struct pg_each {
	union db_row_fn fn;
	void	*arg;
	struct db_dec dec;
};

typedef int (*pg_row_fn)(const PGresult *, int, struct pg_each *);

static void	 pg_key_init(void);
static void	 pg_conn_free(void *p);
static PGconn	*pg_connect(const char *url, char *err, size_t errlen);
static void	 pg_msg(char *out, size_t len, const char *msg);
static void	 pg_notice(void *arg, const char *msg);
static struct pgc *pg_conn(void);
static void	 pg_outage(const char *msg);
static void	 pg_up(const struct pgc *pc, int wrote);
static int	 pg_stale(const struct pgc *pc);
static int	 pg_lost(const char *state);
static int	 pg_fail(struct pgc *pc, PGresult *r, const char *what);
static PGresult *pg_run(struct pgc *pc, const char *sql,
		    const struct pg_args *a, int binary, const char *what);
static PGresult *pg_exec(struct pgc *pc, const char *sql,
		    const struct pg_args *a, int binary);
static PGresult *pg_q(const char *sql, const struct pg_args *a,
		    const char *what);
static int	 pg_cmd(const char *sql, const struct pg_args *a,
		    const char *what);
static int	 pg_simple(struct pgc *pc, const char *sql,
		    const char *what);
static int	 pg_tx(struct pgc **pcp, const char *what);
static int	 pg_tx_end(struct pgc *pc, int ok, const char *what);
static void	 pa_str(struct pg_args *a, const char *s);
static void	 pa_int(struct pg_args *a, long long v);
static void	 pa_dbl(struct pg_args *a, double d);
static void	 pa_bin(struct pg_args *a, const void *p, size_t len);
static void	 pa_free(struct pg_args *a);
static void	 pg_arr_next(struct buf *b);
static void	 pg_arr_num(struct buf *b, long long v);
static void	 pg_arr_text(struct buf *b, const char *s);
static char	*pg_arr_take(struct buf *b);
static long long	 pg_ll(const PGresult *r, int row, int col);
static double	 pg_dbl(const PGresult *r, int row, int col);
static int	 pg_rows(const char *sql, struct pg_args *a, const char *what,
		    pg_row_fn row, struct pg_each *e);
static int	 pg_migrate(struct pgc *pc);
static int	 pg_open(const struct conf *c, int writer);
static void	 pg_close(void);
static int	 pg_schema_version(void);
static int	 pg_begin(void);
static int	 pg_commit(void);
static void	 pg_rollback(void);
static int	 pg_retryable(void);
static int	 pg_probe(void);
static int	 pg_put_verdict(const struct db_vrow *v);
static int	 pg_bump(const char *sql, long long k, const char *name, int n,
		    const char *what);
static int	 pg_stat_bump(const char *name, long long minute, int n);
static int	 pg_rule_hit_bump(const char *name, long long day, int n);
static void	 pa_triplet(struct pg_args *a, const char *net,
		    const char *sender, const char *rcpt);
static void	 pg_grey_fill(const PGresult *r, struct db_grey_row *row);
static int	 pg_grey_run(const char *net, const char *sender,
		    const char *rcpt, time_t now, db_grey_step_fn step,
		    void *arg, int *answer);
static int	 pg_prune(time_t verdict_cut, time_t grey_cut);
static int	 pg_grey_get(const char *net, const char *sender,
		    const char *rcpt, struct db_grey_row *row);
static int	 pg_grey_auto_get(const char *net, int *passes,
		    time_t *last_seen);
static int	 pg_grey_row(const PGresult *r, int i, struct pg_each *e);
static int	 pg_grey_each(int limit, int (*fn)(void *,
		    const struct db_grey_entry *), void *arg);
static int	 pg_grey_auto_row(const PGresult *r, int i, struct pg_each *e);
static int	 pg_grey_auto_each(int limit, int (*fn)(void *,
		    const struct db_grey_auto *), void *arg);
static int	 pg_verdict_row(const PGresult *r, int i, struct pg_each *e);
static int	 pg_verdict_each(int limit, long long before, const char *q,
		    int (*fn)(void *, const struct db_verdict_row *),
		    void *arg);
static int	 pg_stat_row(const PGresult *r, int i, struct pg_each *e);
static int	 pg_stat_each(time_t since, int (*fn)(void *,
		    const struct db_stat_row *), void *arg);
static int	 pg_rule_hit_row(const PGresult *r, int i, struct pg_each *e);
static int	 pg_rule_hit_each(long long since_day, int (*fn)(void *,
		    const struct db_rule_hit *), void *arg);
static int	 pg_access_add(const char *list, const char *kind,
		    const char *value, const char *note);
static int	 pg_delete3(const char *sql, const char *a, const char *b,
		    const char *c, const char *what);
static int	 pg_access_del(const char *list, const char *kind,
		    const char *value);
static int	 pg_grey_forget(const char *net, const char *sender,
		    const char *rcpt);
static int	 pg_access_row(const PGresult *r, int i, struct pg_each *e);
static int	 pg_access_each(const char *kind, int (*fn)(void *,
		    const struct db_access *), void *arg);
static long long	 pg_scalar(const char *sql, const char *what);
static long long	 pg_rule_version(void);
static void	 pg_rule_row(const PGresult *r, int i, struct rule_def *d);
static int	 pg_rule_load(struct rule_def **defs, size_t *n);
static int	 pg_rule_get(long long id, struct rule_def *out);
static void	 pa_rule(struct pg_args *a, const struct rule_def *d);
static long long	 pg_rule_write(const char *sql, const struct rule_def *d,
		    long long id, const char *what);
static long long	 pg_rule_add(const struct rule_def *d);
static int	 pg_rule_update(long long id, const struct rule_def *d);
static int	 pg_rule_delete(long long id);
static int	 pg_rule_import(const struct rule_def *defs, size_t n,
		    int replace);
static int	 pg_quar_insert(const struct db_quar *q, const char *rcpts,
		    const char *reasons, long long max_total);
static int	 pg_quar_row(const PGresult *r, int i, struct pg_each *e);
static int	 pg_quar_each(const struct db_quar_query *q, int (*fn)(void *,
		    const struct db_quar_row *), void *arg);
static int	 pg_quar_get(const char *id, int (*fn)(void *,
		    const struct db_quar_row *), void *arg);
static int	 pg_quar_raw(const char *id, char **raw, size_t *len);
static long long	 pg_quar_change(const char *sql, const char *id,
		    const char *what);
static int	 pg_quar_claim(const char *id, struct db_quar_claimed *out);
static int	 pg_quar_finish(const char *id, int delivered, const char *who,
		    time_t when);
static int	 pg_quar_delete(const char *id);
static int	 pg_quar_expire(time_t cut, int limit);
static long long	 pg_quar_total(void);
static int	 pg_user_set(const char *name, const char *hash);
static char	*pg_text1(const char *sql, const char *key, const char *what);
static char	*pg_user_hash(const char *name);
static int	 pg_meta_fill(const PGresult *r, struct db_bayes_meta *m);
static int	 pg_bq_tokens(const struct db_bayes_delta *d, size_t n,
		    struct db_bayes_meta *m);
static int	 pg_bq_one(struct db_bayes_learn *v, struct db_bayes_meta *m,
		    struct db_bayes_sum *sum);
static int	 pg_bq_expire(struct db_bayes_meta *m, long long max);
static int	 pg_bayes_run(struct db_bayes_learn *const *v, size_t n,
		    long long max);
static int	 pg_bayes_learn(struct db_bayes_learn *const *v, size_t n,
		    long long max_tokens);
static int	 pg_bayes_batch(struct db_bayes_learn *const *v, size_t n,
		    long long max_tokens);
static int	 pg_bayes_meta(struct db_bayes_meta *m);
static int	 pg_bayes_load(long long since, struct db_bayes_meta *m,
		    void (*fn)(void *, uint64_t, unsigned, unsigned),
		    void *arg);
static int	 pg_meta_get(const char *key, char **val);
static int	 pg_meta_put(const char *key, const char *val, int keep);
static int	 pg_meta_prune(const char *prefix, long long below);
static long long	 pg_edit_version(enum db_edit_sig sig);
static int	 pg_edit_begin(void);
static int	 pg_edit_end(enum db_edit_sig sig);
static int	 pg_session_put(const char *hash, const char *user,
		    const char *csrf, time_t now);
static int	 pg_session_get(const char *hash, time_t now, time_t idle_cut,
		    time_t age_cut, char *user, size_t ulen, char *csrf,
		    size_t clen);
static int	 pg_session_del(const char *hash);
static int	 pg_session_prune(time_t idle_cut, time_t age_cut);
static int	 pg_rate_upsert(const struct db_rate_delta *d, size_t n);
static int	 pg_rate_add(const struct db_rate_delta *d, size_t n,
		    long long cut_win);
static int	 pg_rate_row(const PGresult *r, int i, struct pg_each *e);
static int	 pg_rate_each(long long since_win, int (*fn)(void *,
		    const struct db_rate_delta *), void *arg);

/*
 * The schema, one step per entry. APPEND ONLY: schema_version holds how
 * many steps a database has run. The tables are SQLite's (db/sqlite.c)
 * as they stand after its migrations, with PostgreSQL's types, so that
 * `postern db copy` moves rows column by column.
 */
static const struct {
	const char	*what;
	const char	*sql;
} migrations[] = {
	{ "every table of Postern's SQLite schema 11",
	  "CREATE TABLE greylist ("
	  "  net text NOT NULL, sender text NOT NULL, rcpt text NOT NULL,"
	  "  first_seen bigint NOT NULL, last_seen bigint NOT NULL,"
	  "  passed integer NOT NULL DEFAULT 0, attempts integer NOT NULL DEFAULT 1,"
	  "  PRIMARY KEY (net, sender, rcpt));"
	  "CREATE INDEX greylist_last ON greylist(last_seen);"
	  "CREATE TABLE grey_auto ("
	  "  net text PRIMARY KEY, passes integer NOT NULL, last_seen bigint NOT NULL);"
	  "CREATE TABLE access ("
	  "  id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
	  "  list text NOT NULL CHECK (list IN ('allow', 'deny')),"
	  "  kind text NOT NULL CHECK (kind IN ('client', 'helo', 'sender', 'rcpt')),"
	  "  value text NOT NULL, note text NOT NULL DEFAULT '',"
	  "  created bigint NOT NULL, UNIQUE (list, kind, value));"
	  "CREATE TABLE verdicts ("
	  "  id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
	  "  ts bigint NOT NULL, sid text NOT NULL,"
	  "  client_ip text NOT NULL, client_name text NOT NULL, helo text NOT NULL,"
	  "  mail_from text NOT NULL, rcpts text NOT NULL, size bigint NOT NULL,"
	  "  msgid text NOT NULL, subject text NOT NULL, checks text NOT NULL,"
	  "  score double precision NOT NULL, verdict text NOT NULL, reply text NOT NULL,"
	  "  backend_reply text NOT NULL, ms bigint NOT NULL,"
	  "  outcome text NOT NULL DEFAULT '', stage text NOT NULL DEFAULT '');"
	  "CREATE INDEX verdicts_ts ON verdicts(ts);"
	  "CREATE TABLE stats ("
	  "  minute bigint NOT NULL, name text NOT NULL, n bigint NOT NULL,"
	  "  PRIMARY KEY (minute, name));"
	  "CREATE TABLE rules ("
	  "  id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
	  "  name text NOT NULL UNIQUE, target text NOT NULL, pattern text NOT NULL,"
	  "  flags text NOT NULL DEFAULT '', action text NOT NULL,"
	  "  score double precision NOT NULL DEFAULT 0,"
	  "  enabled integer NOT NULL DEFAULT 1, updated bigint NOT NULL,"
	  "  log_only integer NOT NULL DEFAULT 0);"
	  "CREATE TABLE rules_version ("
	  "  one integer PRIMARY KEY CHECK (one = 1), version bigint NOT NULL);"
	  "INSERT INTO rules_version VALUES (1, 0);"
	  "CREATE FUNCTION postern_rules_bump() RETURNS trigger LANGUAGE plpgsql AS"
	  "  $$BEGIN UPDATE rules_version SET version = version + 1; RETURN NULL; END$$;"
	  "CREATE TRIGGER rules_bump AFTER INSERT OR UPDATE OR DELETE ON rules"
	  "  FOR EACH STATEMENT EXECUTE FUNCTION postern_rules_bump();"
	  "CREATE TABLE quarantine ("
	  "  id text PRIMARY KEY, ts bigint NOT NULL, sid text NOT NULL,"
	  "  client_ip text NOT NULL, client_name text NOT NULL, helo text NOT NULL,"
	  "  mail_from text NOT NULL, rcpts text NOT NULL, subject text NOT NULL,"
	  "  msgid text NOT NULL, score double precision NOT NULL, reasons text NOT NULL,"
	  "  size bigint NOT NULL, raw bytea NOT NULL,"
	  "  state text NOT NULL DEFAULT 'held'"
	  "   CHECK (state IN ('held', 'releasing', 'released')),"
	  "  released_at bigint, released_by text);"
	  "CREATE INDEX quarantine_ts ON quarantine(ts);"
	  "CREATE TABLE web_users ("
	  "  name text PRIMARY KEY, hash text NOT NULL, updated bigint NOT NULL);"
	  "CREATE TABLE bayes_tokens ("
	  "  key bigint PRIMARY KEY, spam bigint NOT NULL, ham bigint NOT NULL,"
	  "  seen bigint NOT NULL);"
	  "CREATE INDEX bayes_tokens_seen ON bayes_tokens(seen);"
	  "CREATE TABLE bayes_msgs ("
	  "  digest bytea PRIMARY KEY, class integer NOT NULL, ts bigint NOT NULL);"
	  "CREATE TABLE bayes_meta ("
	  "  one integer PRIMARY KEY CHECK (one = 1), nspam bigint NOT NULL,"
	  "  nham bigint NOT NULL, ntokens bigint NOT NULL, seq bigint NOT NULL,"
	  "  epoch bigint NOT NULL);"
	  "INSERT INTO bayes_meta VALUES (1, 0, 0, 0, 0, 0);"
	  "CREATE TABLE rule_hits ("
	  "  day bigint NOT NULL, name text NOT NULL, n bigint NOT NULL,"
	  "  PRIMARY KEY (name, day));" },
	{ "cluster: named values, the edit counter, web sessions",
	  "CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL);"
	  "CREATE TABLE edits ("
	  "  id integer PRIMARY KEY CHECK (id = 1), version bigint NOT NULL);"
	  "INSERT INTO edits VALUES (1, 0);"
	  "CREATE TABLE web_sessions ("
	  "  hash text PRIMARY KEY, \"user\" text NOT NULL, csrf text NOT NULL,"
	  "  created bigint NOT NULL, seen bigint NOT NULL);"
	  "CREATE INDEX web_sessions_seen ON web_sessions(seen);" },
	/* As SQLite's migration 10 (db/sqlite.c). */
	{ "rate counters",
	  "CREATE TABLE rate_counts ("
	  "  win bigint NOT NULL, kind integer NOT NULL, key text NOT NULL,"
	  "  n bigint NOT NULL, PRIMARY KEY (win, kind, key));" },
	/* As SQLite's migration 11 (db/sqlite.c). */
	{ "edit counter of the greylist",
	  "ALTER TABLE edits ADD COLUMN grey bigint NOT NULL DEFAULT 0;" },
	/* Append new steps here. */
};

static char		*pg_url;
static int		 pg_version;
static pthread_key_t	 pg_key;
static pthread_once_t	 pg_key_once = PTHREAD_ONCE_INIT;
/* When the outage began (time_mono_ms; 0 while the database answers),
 * and whether it is only read-only: then reads still work, and only a
 * committed write (or the writer's probe) ends it. */
static _Atomic uint64_t	 pg_down_since;
static _Atomic int	 pg_down_ro;
static _Atomic int	 pg_down_lost;
/* The SQLSTATE of this thread's last failure ("" none, "08xxx" for a lost
 * connection libpq reported without one). */
static _Thread_local char pg_state[6];

/* ---------------------------------------------------------------- setup */

static void
pg_key_init(void)
{
	if (pthread_key_create(&pg_key, pg_conn_free) != 0)
		fatalx("db: pthread_key_create");
}

static void
pg_conn_free(void *p)
{
	struct pgc *pc = p;

	PQfinish(pc->c);
	free(pc);
}

/* A connection to url with our settings, or NULL and err. Later keywords
 * override earlier ones, so the URL's own settings win. Our notice
 * processor is in place before the first byte is read: a server going
 * down says so while a connection starts, and libpq's own processor
 * would print that on stderr. The whole start is bounded by
 * PG_CONNECT_MS (a black-holed address). */
static PGconn *
pg_connect(const char *url, char *err, size_t errlen)
{
	const char *const kw[] = { "keepalives_idle", "keepalives_interval",
	    "keepalives_count", "tcp_user_timeout", "application_name", "dbname",
	    "client_encoding", NULL };
	const char *const val[] = { "10", "5", "2", "10000", "postern", url, "UTF8",
	    NULL };
	PGconn *c = PQconnectStartParams(kw, val, 1);
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	uint64_t end = time_mono_ms() + PG_CONNECT_MS;

	if (c != NULL && PQstatus(c) != CONNECTION_BAD)
		PQsetNoticeProcessor(c, pg_notice, NULL);
	while (c != NULL && PQstatus(c) != CONNECTION_BAD &&
	    st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
		struct pollfd pfd = { PQsocket(c), st == PGRES_POLLING_READING ?
		    POLLIN : POLLOUT, 0 };
		uint64_t now = time_mono_ms();
		if (now >= end || poll(&pfd, 1, (int)(end - now)) == 0) {
			snprintf(err, errlen, "no connection within %d ms", PG_CONNECT_MS);
			PQfinish(c);
			return NULL;
		}
		st = PQconnectPoll(c);
	}
	if (c != NULL && PQstatus(c) == CONNECTION_OK)
		return c;
	pg_msg(err, errlen, c ? PQerrorMessage(c) : "out of memory");
	PQfinish(c);
	return NULL;
}

/* libpq's message as one log line: its first line, without the server's
 * severity words ("FATAL:  ", "ERROR:  "), which would read as
 * Postern's own. */
static void
pg_msg(char *out, size_t len, const char *msg)
{
	static const char *const sev[] = { "FATAL:  ", "ERROR:  ", "PANIC:  " };
	size_t o = 0;

	while (*msg && *msg != '\n' && o + 1 < len) {
		size_t i;
		for (i = 0; i < ARRAY_SIZE(sev); i++)
			if (strncmp(msg, sev[i], strlen(sev[i])) == 0)
				break;
		if (i < ARRAY_SIZE(sev))
			msg += strlen(sev[i]);
		else
			out[o++] = *msg++;
	}
	out[o] = '\0';
}

/* The server's notices ("relation already exists, skipping") go to the
 * debug log, not to stderr as libpq would print them. */
static void
pg_notice(void *arg, const char *msg)
{
	(void)arg;
	log_debug("db: PostgreSQL says: %.*s", (int)strcspn(msg, "\n"), msg);
}

/* This thread's connection, (re)opened when missing or broken -- but not
 * inside a transaction, whose statements must all run on one connection.
 * NULL when the database cannot be reached (the outage is logged once). */
static struct pgc *
pg_conn(void)
{
	struct pgc *pc;
	char err[256];

	if (pg_url == NULL)
		fatalx("db: used before pg_open");
	if ((pc = pthread_getspecific(pg_key)) == NULL) {
		pc = xcalloc(1, sizeof(*pc));
		pthread_setspecific(pg_key, pc);
	}
	if (pc->c != NULL && PQstatus(pc->c) == CONNECTION_OK)
		return pc;
	if (pc->in_tx) {
		strcpy(pg_state, "08003");
		return NULL;
	}
	PQfinish(pc->c);
	pc->c = NULL;
	pc->nprep = 0;
	if (time_mono_ms() < pc->next_try) {
		strcpy(pg_state, "08001");
		return NULL;
	}
	if ((pc->c = pg_connect(pg_url, err, sizeof(err))) == NULL) {
		pc->next_try = time_mono_ms() + PG_RETRY_MS;
		strcpy(pg_state, "08001");
		pg_outage(err);
		return NULL;
	}
	pc->born = time_mono_ms();
	pg_up(pc, 0);
	return pc;
}

/* The first failure of an outage logs it; the rest are quiet. */
static void
pg_outage(const char *msg)
{
	uint64_t none = 0, now = time_mono_ms();

	if (atomic_compare_exchange_strong(&pg_down_since, &none, now ? now : 1)) {
		atomic_store(&pg_down_ro, strcmp(pg_state, "25006") == 0);
		atomic_store(&pg_down_lost, strncmp(pg_state, "08", 2) == 0 ||
		    strncmp(pg_state, "57P0", 4) == 0);
		log_err("db: PostgreSQL unreachable: %s; decisions that need it answer"
		    " 4xx until it is back", msg);
	}
}

/* Is pc a connection made before the outage of a lost server now on
 * (pg_up cannot take its answers as the end of it)? */
static int
pg_stale(const struct pgc *pc)
{
	uint64_t since = atomic_load(&pg_down_since);

	return since != 0 && atomic_load(&pg_down_lost) && pc->born < since;
}

/* A statement worked on pc (wrote: a write was committed, or the database
 * said it takes writes): the end of an outage, unless that outage is a
 * read-only database and this was a read, or a lost server and pc is a
 * connection older than the outage: while a server shuts down, a
 * connection it has not closed yet still answers, and that is no proof it
 * is back (one outage would be logged as two). */
static void
pg_up(const struct pgc *pc, int wrote)
{
	uint64_t since = atomic_load(&pg_down_since);

	if (since == 0 || (!wrote && atomic_load(&pg_down_ro)) || pg_stale(pc))
		return;
	if (atomic_compare_exchange_strong(&pg_down_since, &since, 0))
		log_info("db: PostgreSQL back after %llu s",
		    (unsigned long long)((time_mono_ms() - since + 500) / 1000));
}

/* Is SQLSTATE state the database's condition rather than the statement's:
 * connection trouble (class 08), out of resources (53), shutting down
 * (57P01-57P03), read-only (25006), or a lock conflict to retry (40001
 * serialization, 40P01 deadlock)? */
static int
pg_lost(const char *state)
{
	static const char *const codes[] = { "25006", "57P01", "57P02", "57P03",
	    "40001", "40P01" };

	if (strncmp(state, "08", 2) == 0 || strncmp(state, "53", 2) == 0)
		return 1;
	for (size_t i = 0; i < ARRAY_SIZE(codes); i++)
		if (strcmp(state, codes[i]) == 0)
			return 1;
	return 0;
}

/* A failed statement: note its SQLSTATE for retryable(); an outage is
 * logged once (pg_outage), anything else each time. A broken connection
 * is tried again at once: when that works, the database is up and only
 * this connection was stale (after a restart of the server), and outside
 * a transaction the new one takes its place: then 1 (run it again), else
 * 0. */
static int
pg_fail(struct pgc *pc, PGresult *r, const char *what)
{
	const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	char msg[256];
	PGconn *fresh;

	pg_msg(msg, sizeof(msg), r && *PQresultErrorMessage(r) ?
	    PQresultErrorMessage(r) : PQerrorMessage(pc->c));
	if (PQstatus(pc->c) != CONNECTION_OK && (st == NULL || *st == '\0'))
		st = "08006";
	snprintf(pg_state, sizeof(pg_state), "%s", st ? st : "XX000");
	if (!pg_lost(pg_state)) {
		log_err("db: %s: %s (SQLSTATE %s)", what, msg, pg_state);
		return 0;
	}
	if (strncmp(pg_state, "40", 2) == 0) {	/* a conflict, not an outage */
		log_info("db: %s: %s; retried", what, msg);
		return 0;
	}
	if (PQstatus(pc->c) != CONNECTION_OK) {
		char err[256];
		if ((fresh = pg_connect(pg_url, err, sizeof(err))) != NULL) {
			if (pc->in_tx) {
				PQfinish(fresh);	/* the retried batch reconnects */
				return 0;
			}
			PQfinish(pc->c);
			pc->c = fresh;
			pc->nprep = 0;
			pc->born = time_mono_ms();
			return 1;
		}
		/* that try cost up to PG_CONNECT_MS: the next waits its turn */
		pc->next_try = time_mono_ms() + PG_RETRY_MS;
	}
	pg_outage(msg);
	return 0;
}

/* Run sql on pc, prepared once per connection; with binary, results come
 * as binary (bytea). The result (PQclear it), or NULL (logged). */
static PGresult *
pg_run(struct pgc *pc, const char *sql, const struct pg_args *a,
    int binary, const char *what)
{
	static const struct pg_args none = { 0 };
	PGresult *r;
	int again;

	if (a == NULL)
		a = &none;
	for (int tries = 0;; tries++) {
		r = pg_exec(pc, sql, a, binary);
		if (PQresultStatus(r) == PGRES_COMMAND_OK ||
		    PQresultStatus(r) == PGRES_TUPLES_OK) {
			pg_up(pc, 0);
			return r;
		}
		again = pg_fail(pc, r, what) == 1 && tries == 0;
		PQclear(r);
		if (!again)
			return NULL;
	}
}

/* sql prepared on pc when first seen there (statement "sN" is
 * pc->prep[N]), then run; past PG_PREP_MAX, run unprepared. The result,
 * whatever its status. */
static PGresult *
pg_exec(struct pgc *pc, const char *sql, const struct pg_args *a, int binary)
{
	PGresult *r;
	char name[16];
	int i;

	for (i = 0; i < pc->nprep && pc->prep[i] != sql; i++)
		;
	if (i == PG_PREP_MAX)
		return PQexecParams(pc->c, sql, a->n, NULL, a->v, a->len, a->fmt,
		    binary);
	snprintf(name, sizeof(name), "s%d", i);
	if (i == pc->nprep) {
		r = PQprepare(pc->c, name, sql, 0, NULL);
		if (PQresultStatus(r) != PGRES_COMMAND_OK)
			return r;
		PQclear(r);
		pc->prep[pc->nprep++] = sql;
	}
	return PQexecPrepared(pc->c, name, a->n, a->v, a->len, a->fmt, binary);
}

/* pg_run on this thread's connection. */
static PGresult *
pg_q(const char *sql, const struct pg_args *a, const char *what)
{
	struct pgc *pc = pg_conn();

	return pc ? pg_run(pc, sql, a, 0, what) : NULL;
}

/* A statement whose rows are not read: the rows it changed, or -1. */
static int
pg_cmd(const char *sql, const struct pg_args *a, const char *what)
{
	PGresult *r = pg_q(sql, a, what);
	int n;

	if (r == NULL)
		return -1;
	n = atoi(PQcmdTuples(r));
	PQclear(r);
	return n;
}

/* A statement without parameters (BEGIN, COMMIT, several at once), run
 * again once on a fresh connection when the thread's was stale (as
 * pg_run does). 0 or -1. */
static int
pg_simple(struct pgc *pc, const char *sql, const char *what)
{
	for (int tries = 0;; tries++) {
		PGresult *r = PQexec(pc->c, sql);
		int again;

		if (PQresultStatus(r) == PGRES_COMMAND_OK ||
		    PQresultStatus(r) == PGRES_TUPLES_OK) {
			PQclear(r);
			pg_up(pc, 0);
			return 0;
		}
		again = pg_fail(pc, r, what) == 1 && tries == 0;
		PQclear(r);
		if (!again)
			return -1;
	}
}

/* BEGIN on this thread's connection (*pcp). 0 or -1. The transaction's
 * failures start from no SQLSTATE: one a row fails without (a check of
 * ours) must not read as an earlier outage's, which retryable() would
 * retry for ever. */
static int
pg_tx(struct pgc **pcp, const char *what)
{
	struct pgc *pc;

	pg_state[0] = '\0';
	pc = *pcp = pg_conn();

	if (pc == NULL || pg_simple(pc, "BEGIN", what) == -1)
		return -1;
	pc->in_tx = 1;
	return 0;
}

/* COMMIT when ok, else ROLLBACK: 0 committed, -1 not. */
static int
pg_tx_end(struct pgc *pc, int ok, const char *what)
{
	int rc = -1;

	if (ok && pg_simple(pc, "COMMIT", what) == 0) {
		rc = 0;
		pg_up(pc, 1);
	}
	else if (PQstatus(pc->c) == CONNECTION_OK &&
	    PQtransactionStatus(pc->c) != PQTRANS_IDLE)
		PQclear(PQexec(pc->c, "ROLLBACK"));
	pc->in_tx = 0;
	return rc;
}

/* ----------------------------------------------------------- parameters */

/* Text goes as UTF-8 (utf8_mend); NULL is SQL NULL. */
static void
pa_str(struct pg_args *a, const char *s)
{
	int k = a->n++;

	if (k >= PG_ARGS_MAX)
		fatalx("db: more than %d parameters", PG_ARGS_MAX);
	a->fmt[k] = 0;
	a->len[k] = 0;
	a->v[k] = s;
	if ((a->own[k] = s != NULL ? utf8_mend(s) : NULL) != NULL)
		a->v[k] = a->own[k];
}

static void
pa_int(struct pg_args *a, long long v)
{
	int k = a->n;

	pa_str(a, NULL);
	snprintf(a->num[k], sizeof(a->num[k]), "%lld", v);
	a->v[k] = a->num[k];
}

/* PostgreSQL spells the values C cannot print portably its own way. */
static void
pa_dbl(struct pg_args *a, double d)
{
	int k = a->n;

	pa_str(a, NULL);
	if (d != d)
		snprintf(a->num[k], sizeof(a->num[k]), "NaN");
	else if (d > 1e308 || d < -1e308)
		snprintf(a->num[k], sizeof(a->num[k]), "%sInfinity", d < 0 ? "-" : "");
	else
		snprintf(a->num[k], sizeof(a->num[k]), "%.17g", d);
	a->v[k] = a->num[k];
}

static void
pa_bin(struct pg_args *a, const void *p, size_t len)
{
	int k = a->n;

	pa_str(a, NULL);
	a->v[k] = p;
	a->len[k] = (int)len;
	a->fmt[k] = 1;
}

static void
pa_free(struct pg_args *a)
{
	for (int i = 0; i < a->n; i++)
		free(a->own[i]);
	a->n = 0;
}

/* An array parameter in array_in's text form, built one element at a time
 * into b (empty at first): a batch then goes in one statement, not one
 * round trip per row. Numbers as printed; text double-quoted with " and \
 * escaped, so that no element reads as NULL or splits at a comma.
 * pg_arr_take closes it ("{}" when empty) and hands it over. */
static void
pg_arr_next(struct buf *b)
{
	buf_addc(b, b->len == 0 ? '{' : ',');
}

static void
pg_arr_num(struct buf *b, long long v)
{
	pg_arr_next(b);
	buf_printf(b, "%lld", v);
}

static void
pg_arr_text(struct buf *b, const char *s)
{
	pg_arr_next(b);
	buf_addc(b, '"');
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\')
			buf_addc(b, '\\');
		buf_addc(b, *s);
	}
	buf_addc(b, '"');
}

static char *
pg_arr_take(struct buf *b)
{
	if (b->len == 0)
		buf_addc(b, '{');
	buf_addc(b, '}');
	return buf_take(b);
}

static long long
pg_ll(const PGresult *r, int row, int col)
{
	return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static double
pg_dbl(const PGresult *r, int row, int col)
{
	return strtod(PQgetvalue(r, row, col), NULL);
}

/* Call row(r, i, e) for each row of sql's result until it returns
 * non-zero: that value, 0 at the end, or -1 (logged). Frees a. */
static int
pg_rows(const char *sql, struct pg_args *a, const char *what, pg_row_fn row,
    struct pg_each *e)
{
	PGresult *r = pg_q(sql, a, what);
	int ret = 0;

	pa_free(a);
	if (r == NULL)
		return -1;
	for (int i = 0; i < PQntuples(r) && ret == 0; i++) {
		ret = row(r, i, e);
		db_dec_free(&e->dec);
	}
	PQclear(r);
	return ret;
}

/* ------------------------------------------------------------ lifecycle */

/* Bring the schema up to date: every step in one transaction that first
 * takes the migration lock, so that nodes starting at once wait for the
 * first and then find nothing left to do. */
static int
pg_migrate(struct pgc *pc)
{
	PGresult *r;
	int have = 0, want = (int)ARRAY_SIZE(migrations), ok = 0;
	struct pg_args a = { 0 };

	if (pg_tx(&pc, "migration lock") == -1)
		return -1;
	if (pg_simple(pc, "SELECT pg_advisory_xact_lock(" PG_MIGRATE_LOCK ");"
	    "CREATE TABLE IF NOT EXISTS schema_version ("
	    "  one integer PRIMARY KEY CHECK (one = 1), version integer NOT NULL)",
	    "migration lock") == -1 ||
	    (r = pg_run(pc, "SELECT version FROM schema_version", NULL, 0,
	    "read schema version")) == NULL)
		goto out;
	have = PQntuples(r) ? (int)pg_ll(r, 0, 0) : 0;
	PQclear(r);
	if (have > want) {
		log_err("db: the PostgreSQL database has schema version %d, this"
		    " postern knows %d; use a newer postern or another db.url", have,
		    want);
		goto out;
	}
	for (int i = have; i < want; i++) {
		log_info("db: PostgreSQL migration %d: %s", i + 1, migrations[i].what);
		if (pg_simple(pc, migrations[i].sql, migrations[i].what) == -1)
			goto out;
	}
	pa_int(&a, want);
	if ((r = pg_run(pc, "INSERT INTO schema_version VALUES (1, $1)"
	    " ON CONFLICT (one) DO UPDATE SET version = excluded.version", &a, 0,
	    "set schema version")) == NULL)
		goto out;
	PQclear(r);
	ok = 1;
	pg_version = want;
out:
	return pg_tx_end(pc, ok, "migration commit");
}

static int
pg_open(const struct conf *c, int writer)
{
	struct pgc *pc;

	(void)writer;	/* the writer thread opens its own on first use */
	pthread_once(&pg_key_once, pg_key_init);
	free(pg_url);
	pg_url = xstrdup(c->db_url);
	if ((pc = pg_conn()) == NULL) {
		log_err("db: cannot open the PostgreSQL database of db.url");
		return -1;
	}
	return pg_migrate(pc);
}

/* After the writer thread stopped (its connection went with it): the
 * caller's. */
static void
pg_close(void)
{
	struct pgc *pc = pthread_getspecific(pg_key);

	if (pc != NULL) {
		pthread_setspecific(pg_key, NULL);
		pg_conn_free(pc);
	}
}

static int
pg_schema_version(void)
{
	return pg_version;
}

/* ---------------------------------------------------- the writer's batch */

static int
pg_begin(void)
{
	struct pgc *pc;

	return pg_tx(&pc, "cannot start a write transaction");
}

static int
pg_commit(void)
{
	struct pgc *pc = pthread_getspecific(pg_key);

	return pg_tx_end(pc, 1, "commit failed");
}

static void
pg_rollback(void)
{
	struct pgc *pc = pthread_getspecific(pg_key);

	if (pc != NULL && pc->c != NULL)
		pg_tx_end(pc, 0, "rollback");
}

static int
pg_retryable(void)
{
	if (strncmp(pg_state, "40", 2) == 0)	/* 40001, 40P01 */
		return DB_CONFLICT;
	return pg_lost(pg_state);
}

/* Can a write transaction start: reachable, and neither a standby nor
 * read-only? */
static int
pg_probe(void)
{
	struct pgc *pc = pg_conn();
	PGresult *r;

	/* The writer's connection may predate the outage, and its answer
	 * would never end it: the probe then connects afresh, which does. */
	if (pc != NULL && !pc->in_tx && pg_stale(pc)) {
		PQfinish(pc->c);
		pc->c = NULL;
		pc = pg_conn();
	}
	r = pc == NULL ? NULL : pg_run(pc, "SELECT 1 WHERE NOT"
	    " pg_is_in_recovery() AND current_setting('transaction_read_only')"
	    " = 'off'", NULL, 0, "health probe");
	int ok = r != NULL && PQntuples(r) == 1;

	PQclear(r);
	if (ok)
		pg_up(pc, 1);
	return ok ? 0 : -1;
}

static int
pg_put_verdict(const struct db_vrow *v)
{
	static const char sql[] =
	    "INSERT INTO verdicts (ts, sid, client_ip, client_name, helo, mail_from,"
	    " rcpts, size, msgid, subject, checks, score, verdict, reply,"
	    " backend_reply, ms, outcome, stage) VALUES ($1, $2, $3, $4, $5, $6,"
	    " $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)";
	/* The parameter of each text column, by enum db_vtext (1-based). */
	static const int col[DB_V_NTEXT] = { 2, 3, 4, 5, 6, 7, 9, 10, 11, 13, 14, 15,
	    17, 18 };
	struct pg_args a = { 0 };
	const char *by[PG_ARGS_MAX + 1] = { 0 };
	int rc;

	for (int k = 0; k < DB_V_NTEXT; k++)
		by[col[k]] = v->text + v->off[k];
	for (int i = 1; i <= 18; i++) {
		if (i == 1)
			pa_int(&a, (long long)v->ts);
		else if (i == 8)
			pa_int(&a, v->size);
		else if (i == 12)
			pa_dbl(&a, v->score);
		else if (i == 16)
			pa_int(&a, (long long)v->ms);
		else
			pa_str(&a, by[i]);
	}
	rc = pg_cmd(sql, &a, "store verdict");
	pa_free(&a);
	return rc < 0 ? -1 : 0;
}

/* One UPSERT adding n to a counter row keyed by (k, name). */
static int
pg_bump(const char *sql, long long k, const char *name, int n, const char *what)
{
	struct pg_args a = { 0 };
	int rc;

	pa_int(&a, k);
	pa_str(&a, name);
	pa_int(&a, n);
	rc = pg_cmd(sql, &a, what);
	pa_free(&a);
	return rc < 0 ? -1 : 0;
}

static int
pg_stat_bump(const char *name, long long minute, int n)
{
	return pg_bump("INSERT INTO stats (minute, name, n) VALUES ($1, $2, $3)"
	    " ON CONFLICT (minute, name) DO UPDATE SET n = stats.n + excluded.n",
	    minute, name, n, "count stats");
}

static int
pg_rule_hit_bump(const char *name, long long day, int n)
{
	return pg_bump("INSERT INTO rule_hits (day, name, n) VALUES ($1, $2, $3)"
	    " ON CONFLICT (name, day) DO UPDATE SET n = rule_hits.n + excluded.n",
	    day, name, n, "count rule hits");
}

static void
pa_triplet(struct pg_args *a, const char *net, const char *sender,
    const char *rcpt)
{
	pa_str(a, net);
	pa_str(a, sender);
	pa_str(a, rcpt);
}

/* A greylist row from the first row of r (found = 0 when r has none). */
static void
pg_grey_fill(const PGresult *r, struct db_grey_row *row)
{
	memset(row, 0, sizeof(*row));
	if (PQntuples(r) == 0)
		return;
	row->found = 1;
	row->first_seen = (time_t)pg_ll(r, 0, 0);
	row->last_seen = (time_t)pg_ll(r, 0, 1);
	row->passed = (int)pg_ll(r, 0, 2);
	row->attempts = (int)pg_ll(r, 0, 3);
}

/* The row is locked (FOR UPDATE) until the batch commits: another node
 * deciding on the same triplet waits for this decision. */
static int
pg_grey_run(const char *net, const char *sender, const char *rcpt, time_t now,
    db_grey_step_fn step, void *arg, int *answer)
{
	struct db_grey_row row;
	struct pg_args a = { 0 };
	PGresult *r;
	int count_pass = 0, rc = -1;

	pa_triplet(&a, net, sender, rcpt);
	if ((r = pg_q("SELECT first_seen, last_seen, passed, attempts FROM greylist"
	    " WHERE net = $1 AND sender = $2 AND rcpt = $3 FOR UPDATE", &a,
	    "read greylist")) == NULL)
		goto out;
	pg_grey_fill(r, &row);
	PQclear(r);
	*answer = step(&row, now, arg, &count_pass);
	pa_int(&a, (long long)row.first_seen);
	pa_int(&a, (long long)row.last_seen);
	pa_int(&a, row.passed);
	pa_int(&a, row.attempts);
	if (pg_cmd("INSERT INTO greylist (net, sender, rcpt, first_seen, last_seen,"
	    " passed, attempts) VALUES ($1, $2, $3, $4, $5, $6, $7)"
	    " ON CONFLICT (net, sender, rcpt) DO UPDATE"
	    " SET first_seen = excluded.first_seen, last_seen = excluded.last_seen,"
	    " passed = excluded.passed, attempts = excluded.attempts", &a,
	    "store greylist") == -1)
		goto out;
	pa_free(&a);
	rc = 0;
	if (!row.passed)
		goto out;
	pa_str(&a, net);
	pa_int(&a, count_pass ? 1 : 0);
	pa_int(&a, (long long)now);
	rc = pg_cmd("INSERT INTO grey_auto (net, passes, last_seen) VALUES ($1, $2, $3)"
	    " ON CONFLICT (net) DO UPDATE SET passes = grey_auto.passes +"
	    " excluded.passes, last_seen = excluded.last_seen", &a,
	    "store greylist auto-allow") < 0 ? -1 : 0;
out:
	pa_free(&a);
	return rc;
}

static int
pg_prune(time_t verdict_cut, time_t grey_cut)
{
	static const char *const sql[] = {
		"DELETE FROM verdicts WHERE ts < $1",
		"DELETE FROM stats WHERE minute < $1",
		"DELETE FROM rule_hits WHERE day < $1",
		"DELETE FROM greylist WHERE last_seen < $1",
		"DELETE FROM grey_auto WHERE last_seen < $1",
	};
	const long long cut[] = { verdict_cut, verdict_cut,
	    verdict_cut / DB_DAY - DB_RULE_HIT_DAYS, grey_cut, grey_cut };
	int removed = 0;

	for (size_t i = 0; i < ARRAY_SIZE(sql); i++) {
		struct pg_args a = { 0 };
		int n;
		pa_int(&a, cut[i]);
		if ((n = pg_cmd(sql[i], &a, "prune")) == -1)
			return -1;
		removed += n;
	}
	return removed;
}

/* ---------------------------------------------------------------- reads */

static int
pg_grey_get(const char *net, const char *sender, const char *rcpt,
    struct db_grey_row *row)
{
	struct pg_args a = { 0 };
	PGresult *r;

	memset(row, 0, sizeof(*row));
	pa_triplet(&a, net, sender, rcpt);
	r = pg_q("SELECT first_seen, last_seen, passed, attempts FROM greylist"
	    " WHERE net = $1 AND sender = $2 AND rcpt = $3", &a, "read greylist");
	pa_free(&a);
	if (r == NULL)
		return -1;
	pg_grey_fill(r, row);
	PQclear(r);
	return 0;
}

static int
pg_grey_auto_get(const char *net, int *passes, time_t *last_seen)
{
	struct pg_args a = { 0 };
	PGresult *r;

	*passes = 0;
	*last_seen = 0;
	pa_str(&a, net);
	r = pg_q("SELECT passes, last_seen FROM grey_auto WHERE net = $1", &a,
	    "read greylist auto-allow");
	pa_free(&a);
	if (r == NULL)
		return -1;
	if (PQntuples(r) > 0) {
		*passes = (int)pg_ll(r, 0, 0);
		*last_seen = (time_t)pg_ll(r, 0, 1);
	}
	PQclear(r);
	return 0;
}

/* ------------------------------------------------------- row iterators */

static int
pg_grey_row(const PGresult *r, int i, struct pg_each *e)
{
	struct db_grey_entry g = {
		.net = PQgetvalue(r, i, 0), .sender = PQgetvalue(r, i, 1),
		.rcpt = PQgetvalue(r, i, 2),
		.first_seen = (time_t)pg_ll(r, i, 3),
		.last_seen = (time_t)pg_ll(r, i, 4),
		.passed = (int)pg_ll(r, i, 5), .attempts = (int)pg_ll(r, i, 6),
	};

	return e->fn.grey(e->arg, &g);
}

static int
pg_grey_each(int limit, int (*fn)(void *, const struct db_grey_entry *), void *arg)
{
	struct pg_each e = { .fn.grey = fn, .arg = arg };
	struct pg_args a = { 0 };

	pa_int(&a, limit);
	return pg_rows("SELECT net, sender, rcpt, first_seen, last_seen, passed,"
	    " attempts FROM greylist ORDER BY last_seen DESC LIMIT $1", &a,
	    "list greylist", pg_grey_row, &e);
}

static int
pg_grey_auto_row(const PGresult *r, int i, struct pg_each *e)
{
	struct db_grey_auto g = {
		.net = PQgetvalue(r, i, 0), .passes = (int)pg_ll(r, i, 1),
		.last_seen = (time_t)pg_ll(r, i, 2),
	};

	return e->fn.grey_auto(e->arg, &g);
}

static int
pg_grey_auto_each(int limit, int (*fn)(void *, const struct db_grey_auto *),
    void *arg)
{
	struct pg_each e = { .fn.grey_auto = fn, .arg = arg };
	struct pg_args a = { 0 };

	pa_int(&a, limit);
	return pg_rows("SELECT net, passes, last_seen FROM grey_auto"
	    " ORDER BY last_seen DESC LIMIT $1", &a, "list auto-allow",
	    pg_grey_auto_row, &e);
}

static int
pg_verdict_row(const PGresult *r, int i, struct pg_each *e)
{
	struct db_verdict_row v = {
		.id = pg_ll(r, i, 0),
		.v = {
			.ts = (time_t)pg_ll(r, i, 1),
			.sid = PQgetvalue(r, i, 2), .client_ip = PQgetvalue(r, i, 3),
			.client_name = PQgetvalue(r, i, 4), .helo = PQgetvalue(r, i, 5),
			.mail_from = PQgetvalue(r, i, 6),
			.size = (size_t)pg_ll(r, i, 8),
			.msgid = PQgetvalue(r, i, 9), .subject = PQgetvalue(r, i, 10),
			.score = pg_dbl(r, i, 12),
			.verdict = PQgetvalue(r, i, 13), .reply = PQgetvalue(r, i, 14),
			.outcome = PQgetvalue(r, i, 15), .stage = PQgetvalue(r, i, 16),
			.mta_reply = PQgetvalue(r, i, 17),
			.ms = (unsigned long)pg_ll(r, i, 18),
		},
	};

	v.v.rcpts = db_dec_rcpts(&e->dec, PQgetvalue(r, i, 7), &v.v.nrcpts);
	v.v.checks = db_dec_checks(&e->dec, PQgetvalue(r, i, 11), &v.v.nchecks);
	return e->fn.verdict(e->arg, &v);
}

static int
pg_verdict_each(int limit, long long before, const char *q,
    int (*fn)(void *, const struct db_verdict_row *), void *arg)
{
	struct pg_each e = { .fn.verdict = fn, .arg = arg };
	struct pg_args a = { 0 };

	pa_int(&a, before);
	pa_str(&a, q && *q ? q : NULL);
	pa_int(&a, limit);
	return pg_rows("SELECT id, ts, sid, client_ip, client_name, helo, mail_from,"
	    " rcpts, size, msgid, subject, checks, score, verdict, reply, outcome,"
	    " stage, backend_reply, ms FROM verdicts"
	    " WHERE ($1::bigint = 0 OR id < $1::bigint) AND ($2::text IS NULL OR"
	    "  strpos(lower(client_ip || ' ' || client_name || ' ' || mail_from ||"
	    "   ' ' || rcpts || ' ' || subject || ' ' || msgid || ' ' || verdict ||"
	    "   ' ' || outcome), lower($2::text)) > 0)"
	    " ORDER BY id DESC LIMIT $3", &a, "list verdicts", pg_verdict_row, &e);
}

static int
pg_stat_row(const PGresult *r, int i, struct pg_each *e)
{
	struct db_stat_row s = {
		.minute = (time_t)pg_ll(r, i, 0), .name = PQgetvalue(r, i, 1),
		.n = pg_ll(r, i, 2),
	};

	return e->fn.stat(e->arg, &s);
}

static int
pg_stat_each(time_t since, int (*fn)(void *, const struct db_stat_row *), void *arg)
{
	struct pg_each e = { .fn.stat = fn, .arg = arg };
	struct pg_args a = { 0 };

	pa_int(&a, (long long)since);
	return pg_rows("SELECT minute, name, n FROM stats WHERE minute >= $1"
	    " ORDER BY minute, name COLLATE \"C\"", &a, "read stats", pg_stat_row, &e);
}

static int
pg_rule_hit_row(const PGresult *r, int i, struct pg_each *e)
{
	struct db_rule_hit h = {
		.name = PQgetvalue(r, i, 0), .day = pg_ll(r, i, 1),
		.n = pg_ll(r, i, 2),
	};

	return e->fn.rule_hit(e->arg, &h);
}

static int
pg_rule_hit_each(long long since_day,
    int (*fn)(void *, const struct db_rule_hit *), void *arg)
{
	struct pg_each e = { .fn.rule_hit = fn, .arg = arg };
	struct pg_args a = { 0 };

	pa_int(&a, since_day);
	return pg_rows("SELECT name, day, n FROM rule_hits WHERE day >= $1"
	    " ORDER BY name COLLATE \"C\", day", &a, "read rule hits",
	    pg_rule_hit_row, &e);
}

/* ---------------------------------------------------------- access lists */

static int
pg_access_add(const char *list, const char *kind, const char *value,
    const char *note)
{
	struct pg_args a = { 0 };
	int n;

	pa_triplet(&a, list, kind, value);
	pa_str(&a, note ? note : "");
	pa_int(&a, (long long)time_wall());
	n = pg_cmd("INSERT INTO access (list, kind, value, note, created)"
	    " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING", &a,
	    "add access entry");
	pa_free(&a);
	return n == -1 ? -1 : n == 0 ? 1 : 0;
}

/* A DELETE keyed by three text parameters: rows deleted, or -1. */
static int
pg_delete3(const char *sql, const char *a1, const char *a2, const char *a3,
    const char *what)
{
	struct pg_args a = { 0 };
	int n;

	pa_triplet(&a, a1, a2, a3);
	n = pg_cmd(sql, &a, what);
	pa_free(&a);
	return n;
}

static int
pg_access_del(const char *list, const char *kind, const char *value)
{
	return pg_delete3("DELETE FROM access WHERE list = $1 AND kind = $2"
	    " AND value = $3", list, kind, value, "delete access entry");
}

static int
pg_grey_forget(const char *net, const char *sender, const char *rcpt)
{
	return pg_delete3("DELETE FROM greylist WHERE net = $1 AND sender = $2"
	    " AND rcpt = $3", net, sender, rcpt, "forget greylist triplet");
}

static int
pg_access_row(const PGresult *r, int i, struct pg_each *e)
{
	struct db_access x = {
		.id = pg_ll(r, i, 0),
		.list = PQgetvalue(r, i, 1), .kind = PQgetvalue(r, i, 2),
		.value = PQgetvalue(r, i, 3), .note = PQgetvalue(r, i, 4),
		.created = (time_t)pg_ll(r, i, 5),
	};

	return e->fn.access(e->arg, &x);
}

static int
pg_access_each(const char *kind, int (*fn)(void *, const struct db_access *),
    void *arg)
{
	struct pg_each e = { .fn.access = fn, .arg = arg };
	struct pg_args a = { 0 };

	pa_str(&a, kind);
	return pg_rows("SELECT id, list, kind, value, note, created FROM access"
	    " WHERE $1::text IS NULL OR kind = $1::text"
	    " ORDER BY list COLLATE \"C\" DESC, kind COLLATE \"C\", value COLLATE \"C\"",
	    &a, "read access lists", pg_access_row, &e);
}

/* ----------------------------------------------------------------- rules */

/* One integer from a query without parameters, or -1. */
static long long
pg_scalar(const char *sql, const char *what)
{
	PGresult *r = pg_q(sql, NULL, what);
	long long v = -1;

	if (r != NULL && PQntuples(r) > 0)
		v = pg_ll(r, 0, 0);
	PQclear(r);
	return v;
}

static long long
pg_rule_version(void)
{
	return pg_scalar("SELECT version FROM rules_version WHERE one = 1",
	    "read rules version");
}

static void
pg_rule_row(const PGresult *r, int i, struct rule_def *d)
{
	d->id = pg_ll(r, i, 0);
	d->name = xstrdup(PQgetvalue(r, i, 1));
	d->target = xstrdup(PQgetvalue(r, i, 2));
	d->pattern = xstrdup(PQgetvalue(r, i, 3));
	d->flags = xstrdup(PQgetvalue(r, i, 4));
	d->action = xstrdup(PQgetvalue(r, i, 5));
	d->score = pg_dbl(r, i, 6);
	d->enabled = (int)pg_ll(r, i, 7);
	d->log_only = (int)pg_ll(r, i, 8);
}

#define PG_RULE_COLS "id, name, target, pattern, flags, action, score, enabled, log_only"

static int
pg_rule_load(struct rule_def **defs, size_t *n)
{
	PGresult *r = pg_q("SELECT " PG_RULE_COLS " FROM rules ORDER BY id", NULL,
	    "load rules");
	size_t nv;

	*defs = NULL;
	*n = 0;
	if (r == NULL)
		return -1;
	nv = (size_t)PQntuples(r);
	*defs = xcalloc(nv + 1, sizeof(**defs));
	for (size_t i = 0; i < nv; i++)
		pg_rule_row(r, (int)i, &(*defs)[i]);
	*n = nv;
	PQclear(r);
	return 0;
}

static int
pg_rule_get(long long id, struct rule_def *out)
{
	struct pg_args a = { 0 };
	PGresult *r;
	int found;

	memset(out, 0, sizeof(*out));
	pa_int(&a, id);
	if ((r = pg_q("SELECT " PG_RULE_COLS " FROM rules WHERE id = $1", &a,
	    "read rule")) == NULL)
		return -1;
	if ((found = PQntuples(r) > 0))
		pg_rule_row(r, 0, out);
	PQclear(r);
	return found ? 0 : 1;
}

/* A rule's fields as $1..$7 (name .. enabled), $8 = now, $9 = log_only. */
static void
pa_rule(struct pg_args *a, const struct rule_def *d)
{
	pa_str(a, d->name);
	pa_str(a, d->target);
	pa_str(a, d->pattern);
	pa_str(a, d->flags ? d->flags : "");
	pa_str(a, d->action);
	pa_dbl(a, d->score);
	pa_int(a, d->enabled ? 1 : 0);
	pa_int(a, (long long)time_wall());
	pa_int(a, d->log_only ? 1 : 0);
}

/* Run sql with a rule's fields (and $10 = id when id > 0): the id it
 * returns (0 when it returns none), -2 when the name is taken, -1. */
static long long
pg_rule_write(const char *sql, const struct rule_def *d, long long id,
    const char *what)
{
	struct pgc *pc = pg_conn();
	struct pg_args a = { 0 };
	PGresult *r;
	long long rc = 0;

	if (pc == NULL)
		return -1;
	pa_rule(&a, d);
	if (id > 0)
		pa_int(&a, id);
	r = pg_run(pc, sql, &a, 0, what);
	pa_free(&a);
	if (r == NULL)
		return strcmp(pg_state, "23505") == 0 ? -2 : -1;
	if (PQntuples(r) > 0)
		rc = pg_ll(r, 0, 0);
	PQclear(r);
	return rc;
}

static long long
pg_rule_add(const struct rule_def *d)
{
	return pg_rule_write("INSERT INTO rules (name, target, pattern, flags,"
	    " action, score, enabled, updated, log_only)"
	    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id", d, 0,
	    "add rule");
}

static int
pg_rule_update(long long id, const struct rule_def *d)
{
	long long rc = pg_rule_write("UPDATE rules SET name = $1, target = $2,"
	    " pattern = $3, flags = $4, action = $5, score = $6, enabled = $7,"
	    " updated = $8, log_only = $9 WHERE id = $10 RETURNING id", d, id,
	    "update rule");

	return rc < 0 ? (int)rc : rc ? 0 : 1;
}

static int
pg_rule_delete(long long id)
{
	struct pg_args a = { 0 };
	int n;

	pa_int(&a, id);
	n = pg_cmd("DELETE FROM rules WHERE id = $1", &a, "delete rule");
	return n == -1 ? -1 : n == 0 ? 1 : 0;
}

static int
pg_rule_import(const struct rule_def *defs, size_t n, int replace)
{
	struct pgc *pc = pg_conn();
	int ok = pc != NULL;

	if (ok && replace && pg_simple(pc, "DELETE FROM rules", "clear rules") == -1)
		ok = 0;
	for (size_t i = 0; ok && i < n; i++) {
		struct pg_args a = { 0 };
		PGresult *r;
		pa_rule(&a, &defs[i]);
		r = pg_run(pc, "INSERT INTO rules (name, target, pattern, flags,"
		    " action, score, enabled, updated, log_only)"
		    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (name)"
		    " DO UPDATE SET target = $2, pattern = $3, flags = $4, action = $5,"
		    " score = $6, enabled = $7, updated = $8, log_only = $9", &a, 0,
		    "import rule");
		pa_free(&a);
		ok = r != NULL;
		PQclear(r);
	}
	return ok ? 0 : -1;
}

/* ------------------------------------------------------------ quarantine */

/* db_quar_add's transaction: 0, -2 over max_total, -1 error. The lock
 * makes the total and the insert one step for every node; the commit is
 * durable (synchronous_commit as the server has it) before the 250. */
static int
pg_quar_insert(const struct db_quar *q, const char *rcpts, const char *reasons,
    long long max_total)
{
	struct pgc *pc;
	struct pg_args a = { 0 };
	long long total;
	PGresult *r = NULL;
	int rc = -1;

	if (pg_tx(&pc, "quarantine") == -1)
		return -1;
	if (pg_simple(pc, "SELECT pg_advisory_xact_lock(" PG_QUAR_LOCK ")",
	    "quarantine lock") == -1 || (total = pg_quar_total()) < 0)
		goto out;
	if (total + (long long)q->len > max_total) {
		rc = -2;
		goto out;
	}
	pa_str(&a, q->id);
	pa_int(&a, (long long)q->ts);
	pa_str(&a, q->sid ? q->sid : "");
	pa_str(&a, q->client_ip ? q->client_ip : "");
	pa_str(&a, q->client_name ? q->client_name : "");
	pa_str(&a, q->helo ? q->helo : "");
	pa_str(&a, q->mail_from ? q->mail_from : "");
	pa_str(&a, rcpts);
	pa_str(&a, q->subject ? q->subject : "");
	pa_str(&a, q->msgid ? q->msgid : "");
	pa_dbl(&a, q->score);
	pa_str(&a, reasons);
	pa_int(&a, (long long)q->len);
	pa_bin(&a, q->raw, q->len);
	r = pg_run(pc, "INSERT INTO quarantine (id, ts, sid, client_ip,"
	    " client_name, helo, mail_from, rcpts, subject, msgid, score, reasons,"
	    " size, raw) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,"
	    " $13, $14)", &a, 0, "store quarantined message");
	pa_free(&a);
	if (r != NULL)
		rc = 0;
	PQclear(r);
out:
	if (pg_tx_end(pc, rc == 0, "commit quarantine") == -1 && rc == 0)
		rc = -1;
	return rc;
}

#define PG_QUAR_COLS "id, ts, sid, client_ip, client_name, helo, mail_from," \
	" rcpts, subject, msgid, score, reasons, size, state," \
	" coalesce(released_at, 0), released_by"

static int
pg_quar_row(const PGresult *r, int i, struct pg_each *e)
{
	struct db_quar_row q = {
		.q = {
			.id = PQgetvalue(r, i, 0),
			.ts = (time_t)pg_ll(r, i, 1),
			.sid = PQgetvalue(r, i, 2), .client_ip = PQgetvalue(r, i, 3),
			.client_name = PQgetvalue(r, i, 4), .helo = PQgetvalue(r, i, 5),
			.mail_from = PQgetvalue(r, i, 6), .subject = PQgetvalue(r, i, 8),
			.msgid = PQgetvalue(r, i, 9),
			.score = pg_dbl(r, i, 10),
			.len = (size_t)pg_ll(r, i, 12),
		},
		.state = PQgetvalue(r, i, 13),
		.released_at = (time_t)pg_ll(r, i, 14),
		.released_by = PQgetisnull(r, i, 15) ? NULL : PQgetvalue(r, i, 15),
	};

	q.q.rcpts = db_dec_rcpts(&e->dec, PQgetvalue(r, i, 7), &q.q.nrcpts);
	q.q.reasons = db_dec_checks(&e->dec, PQgetvalue(r, i, 11), &q.q.nreasons);
	return e->fn.quar(e->arg, &q);
}

/* As SQ_QUAR_EACH (sqlite.c): $1..$8 the filters, $9, $10 the page. */
#define PG_QUAR_EACH(order) "SELECT " PG_QUAR_COLS " FROM quarantine" \
	" WHERE ($1::text IS NULL OR strpos(lower(mail_from || ' ' || rcpts ||" \
	"   ' ' || subject || ' ' || reasons || ' ' || id), lower($1::text)) > 0)" \
	" AND ($2::text IS NULL OR strpos(lower(mail_from), lower($2::text)) > 0)" \
	" AND ($3::text IS NULL OR strpos(lower(rcpts), lower($3::text)) > 0)" \
	" AND ($4::text IS NULL OR strpos(lower(subject), lower($4::text)) > 0)" \
	" AND ($5::text IS NULL OR strpos(lower(reasons), lower($5::text)) > 0)" \
	" AND ($6::bigint = 0 OR ts >= $6::bigint)" \
	" AND ($7::bigint = 0 OR ts <= $7::bigint)" \
	" AND ($8::text IS NULL OR state = $8::text)" \
	" AND ($11::text IS NULL OR ts > $6::bigint OR id COLLATE \"C\" > $11::text)" \
	" ORDER BY " order " LIMIT $9 OFFSET $10"

static int
pg_quar_each(const struct db_quar_query *q,
    int (*fn)(void *, const struct db_quar_row *), void *arg)
{
	struct pg_each e = { .fn.quar = fn, .arg = arg };
	struct pg_args a = { 0 };
	const char *txt[] = { q->q, q->sender, q->rcpt, q->subject, q->reason };
	int limit = q->limit < 1 ? 100 : q->limit > 1000 ? 1000 : q->limit;

	for (size_t i = 0; i < ARRAY_SIZE(txt); i++)
		pa_str(&a, txt[i] != NULL && *txt[i] ? txt[i] : NULL);
	pa_int(&a, (long long)q->since);
	pa_int(&a, (long long)q->until);
	pa_str(&a, q->state != NULL && *q->state ? q->state : NULL);
	pa_int(&a, limit);
	pa_int(&a, q->offset < 0 ? 0 : q->offset);
	pa_str(&a, q->after_id);
	return pg_rows(q->oldest_first ? PG_QUAR_EACH("ts, id COLLATE \"C\"") :
	    PG_QUAR_EACH("ts DESC, id COLLATE \"C\""), &a, "list quarantine",
	    pg_quar_row, &e);
}

static int
pg_quar_get(const char *id, int (*fn)(void *, const struct db_quar_row *), void *arg)
{
	struct pg_each e = { .fn.quar = fn, .arg = arg };
	struct pg_args a = { 0 };
	PGresult *r;
	int ret = 1;

	pa_str(&a, id);
	r = pg_q("SELECT " PG_QUAR_COLS " FROM quarantine WHERE id = $1", &a,
	    "read quarantine");
	pa_free(&a);
	if (r == NULL)
		return -1;
	if (PQntuples(r) > 0) {
		ret = pg_quar_row(r, 0, &e);
		db_dec_free(&e.dec);
	}
	PQclear(r);
	return ret;
}

static int
pg_quar_raw(const char *id, char **raw, size_t *len)
{
	struct pgc *pc = pg_conn();
	struct pg_args a = { 0 };
	PGresult *r;
	int found;

	*raw = NULL;
	*len = 0;
	if (pc == NULL)
		return -1;
	pa_str(&a, id);
	r = pg_run(pc, "SELECT raw FROM quarantine WHERE id = $1", &a, 1,
	    "read quarantined message");
	pa_free(&a);
	if (r == NULL)
		return -1;
	if ((found = PQntuples(r) > 0)) {
		*len = (size_t)PQgetlength(r, 0, 0);
		*raw = xmalloc(*len + 1);
		memcpy(*raw, PQgetvalue(r, 0, 0), *len);
		(*raw)[*len] = '\0';
	}
	PQclear(r);
	return found ? 0 : 1;
}

/* A change to the message $1 = id: the rows it changed, or -1. */
static long long
pg_quar_change(const char *sql, const char *id, const char *what)
{
	struct pg_args a = { 0 };
	int n;

	pa_str(&a, id);
	n = pg_cmd(sql, &a, what);
	pa_free(&a);
	return n;
}

/* One conditional UPDATE moves held to releasing: of two nodes clicking
 * at once, the second waits for the first's row lock, then finds the
 * state changed and gets 2. */
static int
pg_quar_claim(const char *id, struct db_quar_claimed *out)
{
	struct pg_args a = { 0 };
	PGresult *r;
	int claimed;

	memset(out, 0, sizeof(*out));
	pa_str(&a, id);
	r = pg_q("UPDATE quarantine SET state = 'releasing' WHERE id = $1 AND"
	    " state = 'held' RETURNING mail_from, rcpts", &a,
	    "claim quarantined message");
	if (r == NULL) {
		pa_free(&a);
		return -1;
	}
	if ((claimed = PQntuples(r) == 1)) {
		out->mail_from = xstrdup(PQgetvalue(r, 0, 0));
		db_dec_claimed(out, PQgetvalue(r, 0, 1));
	}
	PQclear(r);
	if (!claimed) {
		r = pg_q("SELECT state FROM quarantine WHERE id = $1", &a,
		    "read quarantine");
		pa_free(&a);
		claimed = r == NULL ? -1 : PQntuples(r) == 0 ? 1 : 2;
		PQclear(r);
		return claimed;
	}
	pa_free(&a);
	if (pg_quar_raw(id, &out->raw, &out->len) != 0) {
		db_quar_claimed_free(out);
		pg_quar_finish(id, 0, NULL, 0);
		return -1;
	}
	return 0;
}

static int
pg_quar_finish(const char *id, int delivered, const char *who, time_t when)
{
	struct pg_args a = { 0 };
	int n;

	pa_str(&a, id);
	if (delivered) {
		pa_int(&a, (long long)when);
		pa_str(&a, who ? who : "");
	}
	n = pg_cmd(delivered ?
	    "UPDATE quarantine SET state = 'released', released_at = $2,"
	    " released_by = $3 WHERE id = $1 AND state = 'releasing'" :
	    "UPDATE quarantine SET state = 'held' WHERE id = $1"
	    " AND state = 'releasing'", &a, "finish release");
	pa_free(&a);
	return n < 0 ? -1 : 0;
}

static int
pg_quar_delete(const char *id)
{
	long long n = pg_quar_change("DELETE FROM quarantine WHERE id = $1"
	    " AND state != 'releasing'", id, "delete quarantined message");

	return n == -1 ? -1 : n ? 0 : 1;
}

static int
pg_quar_expire(time_t cut, int limit)
{
	struct pg_args a = { 0 };

	pa_int(&a, (long long)cut);
	pa_int(&a, limit);
	return pg_cmd("DELETE FROM quarantine WHERE id IN (SELECT id FROM quarantine"
	    " WHERE ts < $1 AND state != 'releasing' ORDER BY ts LIMIT $2)", &a,
	    "expire quarantine");
}

static long long
pg_quar_total(void)
{
	return pg_scalar("SELECT coalesce(sum(size), 0) FROM quarantine",
	    "sum quarantine");
}

/* ------------------------------------------------------------ web users */

static int
pg_user_set(const char *name, const char *hash)
{
	struct pg_args a = { 0 };
	int n;

	pa_str(&a, name);
	pa_str(&a, hash);
	pa_int(&a, (long long)time_wall());
	n = pg_cmd("INSERT INTO web_users (name, hash, updated) VALUES ($1, $2, $3)"
	    " ON CONFLICT (name) DO UPDATE SET hash = excluded.hash,"
	    " updated = excluded.updated", &a, "set web user");
	pa_free(&a);
	return n < 0 ? -1 : 0;
}

/* The one text value sql finds for key (xmalloc'd); NULL when none or on
 * error (then pg_state is set). */
static char *
pg_text1(const char *sql, const char *key, const char *what)
{
	struct pg_args a = { 0 };
	PGresult *r;
	char *v = NULL;

	pg_state[0] = '\0';
	pa_str(&a, key);
	r = pg_q(sql, &a, what);
	pa_free(&a);
	if (r != NULL && PQntuples(r) > 0)
		v = xstrdup(PQgetvalue(r, 0, 0));
	PQclear(r);
	return v;
}

static char *
pg_user_hash(const char *name)
{
	return pg_text1("SELECT hash FROM web_users WHERE name = $1", name,
	    "read web user");
}

/* ------------------------------------------------------------ classifier */

/* The totals from r's first row (nspam, nham, ntokens, seq, epoch). */
static int
pg_meta_fill(const PGresult *r, struct db_bayes_meta *m)
{
	if (PQntuples(r) != 1) {
		log_err("db: the classifier totals' row is missing");
		return -1;
	}
	m->nspam = pg_ll(r, 0, 0);
	m->nham = pg_ll(r, 0, 1);
	m->ntokens = pg_ll(r, 0, 2);
	m->seq = pg_ll(r, 0, 3);
	m->epoch = pg_ll(r, 0, 4);
	return 0;
}

/* Move each key by its summed deltas (db_bayes_sum), stamped with seq,
 * in one statement: the deltas go as three arrays (a round trip per key
 * would cost a batch's worth of latency). Existing rows are updated,
 * missing ones with a positive part inserted: an upsert would see a
 * negative delta of a row it updates only clamped, through excluded. Two
 * nodes cannot insert the same key between the two, as learns hold the
 * totals' row (pg_bayes_run). The rows inserted count in ntokens.
 * 0 or -1. */
static int
pg_bq_tokens(const struct db_bayes_delta *d, size_t n, struct db_bayes_meta *m)
{
	struct buf col[3] = { { 0 } };
	struct pg_args a = { 0 };
	char *arr[3];
	PGresult *r;

	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		pg_arr_num(&col[0], (long long)d[i].key);
		pg_arr_num(&col[1], d[i].ds);
		pg_arr_num(&col[2], d[i].dh);
	}
	for (int k = 0; k < 3; k++)
		pa_str(&a, arr[k] = pg_arr_take(&col[k]));
	pa_int(&a, m->seq);
	r = pg_q("WITH d AS (SELECT * FROM unnest($1::bigint[], $2::bigint[],"
	    " $3::bigint[]) AS d (k, s, h)),"
	    " up AS (UPDATE bayes_tokens t SET spam = greatest(0, t.spam + d.s),"
	    " ham = greatest(0, t.ham + d.h), seen = $4 FROM d WHERE t.key = d.k"
	    " RETURNING t.key),"
	    " ins AS (INSERT INTO bayes_tokens (key, spam, ham, seen)"
	    " SELECT k, greatest(0, s), greatest(0, h), $4 FROM d"
	    " WHERE (s > 0 OR h > 0) AND NOT EXISTS (SELECT 1 FROM up WHERE up.key = d.k)"
	    " RETURNING 1)"
	    " SELECT count(*) FROM ins",
	    &a, "count classifier tokens");
	pa_free(&a);
	for (int k = 0; k < 3; k++)
		free(arr[k]);
	if (r == NULL)
		return -1;
	m->ntokens += pg_ll(r, 0, 0);
	PQclear(r);
	return 0;
}

/* One message: what it was learned as decides what moves (into sum);
 * its own row is written at once. 0 or -1. */
static int
pg_bq_one(struct db_bayes_learn *v, struct db_bayes_meta *m,
    struct db_bayes_sum *sum)
{
	struct pg_args a = { 0 };
	PGresult *r;
	int rc;

	pa_bin(&a, v->digest, sizeof(v->digest));
	if ((r = pg_q("SELECT class FROM bayes_msgs WHERE digest = $1", &a,
	    "read learned message")) == NULL)
		return -1;
	v->was = PQntuples(r) > 0 ? (int)pg_ll(r, 0, 0) : -1;
	PQclear(r);
	if (!db_bayes_move(v, m, sum))
		return 0;
	if (v->cls == 2)
		return pg_cmd("DELETE FROM bayes_msgs WHERE digest = $1", &a,
		    "forget learned message") < 0 ? -1 : 0;
	pa_int(&a, v->cls);
	pa_int(&a, (long long)time_wall());
	rc = pg_cmd("INSERT INTO bayes_msgs (digest, class, ts) VALUES ($1, $2, $3)"
	    " ON CONFLICT (digest) DO UPDATE SET class = excluded.class,"
	    " ts = excluded.ts", &a, "record learned message");
	return rc < 0 ? -1 : 0;
}

/* Past the cap: delete down to 9/10 of it, forgotten rows first. */
static int
pg_bq_expire(struct db_bayes_meta *m, long long max)
{
	struct pg_args a = { 0 };
	long long count;
	int n;

	if (max <= 0 || m->ntokens <= max)
		return 0;
	if ((count = pg_scalar("SELECT count(*) FROM bayes_tokens",
	    "count classifier tokens")) < 0)
		return -1;
	if ((m->ntokens = count) <= max)
		return 0;
	pa_int(&a, m->ntokens - max / 10 * 9);
	if ((n = pg_cmd("DELETE FROM bayes_tokens WHERE key IN (SELECT key FROM"
	    " bayes_tokens ORDER BY (spam + ham > 0), seen LIMIT $1)", &a,
	    "expire classifier tokens")) == -1)
		return -1;
	m->ntokens -= n;
	m->epoch++;
	return 0;
}

/* Inside a transaction the caller opened. The totals' row stays locked
 * until it commits: learns on two nodes take turns. */
static int
pg_bayes_run(struct db_bayes_learn *const *v, size_t n, long long max)
{
	struct db_bayes_meta m;
	struct db_bayes_sum *sum;
	const struct db_bayes_delta *d;
	struct pg_args a = { 0 };
	PGresult *r;
	size_t nd;
	int rc = -1;

	if ((r = pg_q("SELECT nspam, nham, ntokens, seq, epoch FROM bayes_meta"
	    " FOR UPDATE", NULL, "read classifier totals")) == NULL)
		return -1;
	if (pg_meta_fill(r, &m) == -1) {
		PQclear(r);
		return -1;
	}
	PQclear(r);
	sum = db_bayes_sum_new(n);
	for (size_t i = 0; i < n; i++)
		if (pg_bq_one(v[i], &m, sum) == -1)
			goto out;
	d = db_bayes_sum_end(sum, &nd);
	if (pg_bq_tokens(d, nd, &m) == -1 || pg_bq_expire(&m, max) == -1)
		goto out;
	pa_int(&a, m.nspam);
	pa_int(&a, m.nham);
	pa_int(&a, m.ntokens);
	pa_int(&a, m.seq);
	pa_int(&a, m.epoch);
	rc = pg_cmd("UPDATE bayes_meta SET nspam = $1, nham = $2, ntokens = $3,"
	    " seq = $4, epoch = $5", &a, "store classifier totals") < 0 ? -1 : 0;
out:
	db_bayes_sum_free(sum);
	return rc;
}

/* Learn without a writer (a CLI process), in a transaction of its own. */
static int
pg_bayes_learn(struct db_bayes_learn *const *v, size_t n, long long max_tokens)
{
	struct pgc *pc;

	if (pg_tx(&pc, "start learning") == -1)
		return -1;
	return pg_tx_end(pc, pg_bayes_run(v, n, max_tokens) == 0, "commit learning");
}

static int
pg_bayes_batch(struct db_bayes_learn *const *v, size_t n, long long max_tokens)
{
	return pg_bayes_run(v, n, max_tokens);
}

static int
pg_bayes_meta(struct db_bayes_meta *m)
{
	PGresult *r = pg_q("SELECT nspam, nham, ntokens, seq, epoch FROM bayes_meta",
	    NULL, "read classifier totals");
	int rc;

	if (r == NULL)
		return -1;
	rc = pg_meta_fill(r, m);
	PQclear(r);
	return rc;
}

/* The totals and the changed rows in one snapshot (REPEATABLE READ),
 * streamed a row at a time: the whole table may be a million rows. */
static int
pg_bayes_load(long long since, struct db_bayes_meta *m,
    void (*fn)(void *, uint64_t, unsigned, unsigned), void *arg)
{
	struct pgc *pc;
	struct pg_args a = { 0 };
	PGresult *r;
	int ok = 0;

	if (pg_tx(&pc, "read classifier") == -1)
		return -1;
	if (pg_simple(pc, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ",
	    "read classifier") == -1 || pg_bayes_meta(m) == -1)
		goto out;
	pa_int(&a, since);
	if (!PQsendQueryParams(pc->c, "SELECT key, spam, ham FROM bayes_tokens"
	    " WHERE seen > $1", 1, NULL, a.v, NULL, NULL, 0) ||
	    !PQsetSingleRowMode(pc->c)) {
		pg_fail(pc, NULL, "read classifier tokens");
		goto out;
	}
	ok = 1;
	while ((r = PQgetResult(pc->c)) != NULL) {
		if (PQresultStatus(r) == PGRES_SINGLE_TUPLE)
			fn(arg, (uint64_t)pg_ll(r, 0, 0), (unsigned)pg_ll(r, 0, 1),
			    (unsigned)pg_ll(r, 0, 2));
		else if (PQresultStatus(r) != PGRES_TUPLES_OK) {
			pg_fail(pc, r, "read classifier tokens");
			ok = 0;
		}
		PQclear(r);
	}
out:
	pg_tx_end(pc, 0, "read classifier");	/* it wrote nothing: roll back */
	return ok ? 0 : -1;
}

/* ------------------------------------------------ shared by every node */

static int
pg_meta_get(const char *key, char **val)
{
	*val = pg_text1("SELECT value FROM meta WHERE key = $1", key, "read meta");
	return *val != NULL ? 1 : pg_state[0] ? -1 : 0;
}

static int
pg_meta_put(const char *key, const char *val, int keep)
{
	struct pg_args a = { 0 };
	int n;

	pa_str(&a, key);
	pa_str(&a, val);
	n = pg_cmd(keep ? "INSERT INTO meta (key, value) VALUES ($1, $2)"
	    " ON CONFLICT (key) DO NOTHING" :
	    "INSERT INTO meta (key, value) VALUES ($1, $2)"
	    " ON CONFLICT (key) DO UPDATE SET value = excluded.value", &a,
	    "store meta");
	pa_free(&a);
	return n < 0 ? -1 : 0;
}

/* As sq_meta_prune; the CASE keeps the cast from text that is not a
 * number (PostgreSQL's AND may test its sides in either order). */
static int
pg_meta_prune(const char *prefix, long long below)
{
	struct pg_args a = { 0 };
	int n;

	pa_str(&a, prefix);
	pa_int(&a, below);
	n = pg_cmd("DELETE FROM meta WHERE left(key, length($1::text)) = $1::text"
	    " AND CASE WHEN substr(key, length($1::text) + 1) ~ '^[0-9]{1,18}$'"
	    " THEN substr(key, length($1::text) + 1)::bigint < $2::bigint"
	    " ELSE false END", &a, "prune meta");
	pa_free(&a);
	return n;
}

static long long
pg_edit_version(enum db_edit_sig sig)
{
	assert(sig >= 0 && sig < DB_SIG_N);
	return pg_scalar(db_edit_read_sql[sig], "read edit version");
}

static int
pg_edit_begin(void)
{
	struct pgc *pc;

	return pg_tx(&pc, "start an admin edit");
}

/* After pg_edit_begin on this thread, so its connection is there. */
static int
pg_edit_end(enum db_edit_sig sig)
{
	struct pgc *pc = pthread_getspecific(pg_key);
	PGresult *r = NULL;

	assert(pc != NULL && pc->in_tx && sig >= DB_SIG_NONE && sig < DB_SIG_N);
	if (sig != DB_SIG_NONE)
		r = pg_run(pc, db_edit_move_sql[sig], NULL, 0, "move the edit version");
	PQclear(r);
	if (pg_tx_end(pc, r != NULL, "commit an admin edit") == 0)
		return 0;
	return sig == DB_SIG_NONE ? 0 : -1;
}

static int
pg_session_put(const char *hash, const char *user, const char *csrf, time_t now)
{
	struct pg_args a = { 0 };
	int n;

	pa_triplet(&a, hash, user, csrf);
	pa_int(&a, (long long)now);
	/* a hash is new or refused, as in sqlite.c: never another's session */
	n = pg_cmd("INSERT INTO web_sessions (hash, \"user\", csrf, created, seen)"
	    " VALUES ($1, $2, $3, $4, $4)", &a, "store session");
	pa_free(&a);
	return n < 0 ? -1 : 0;
}

/* Read, then move seen only when it is older than now: the requests of
 * one page load (a second) write once, as in sqlite.c. */
static int
pg_session_get(const char *hash, time_t now, time_t idle_cut, time_t age_cut,
    char *user, size_t ulen, char *csrf, size_t clen)
{
	struct pg_args a = { 0 };
	PGresult *r;
	int found;
	time_t seen = now;

	pa_str(&a, hash);
	pa_int(&a, (long long)idle_cut);
	pa_int(&a, (long long)age_cut);
	r = pg_q("SELECT \"user\", csrf, seen FROM web_sessions WHERE hash = $1"
	    " AND seen >= $2 AND created >= $3", &a, "read session");
	pa_free(&a);
	if (r == NULL)
		return -1;
	if ((found = PQntuples(r) > 0)) {
		snprintf(user, ulen, "%s", PQgetvalue(r, 0, 0));
		snprintf(csrf, clen, "%s", PQgetvalue(r, 0, 1));
		seen = (time_t)pg_ll(r, 0, 2);
	}
	PQclear(r);
	if (!found || seen + DB_SESSION_TOUCH_S > now)
		return found;
	/* a failed touch is logged; the session found stays valid */
	pa_str(&a, hash);
	pa_int(&a, (long long)now);
	(void)pg_cmd("UPDATE web_sessions SET seen = $2 WHERE hash = $1 AND seen < $2",
	    &a, "touch session");
	pa_free(&a);
	return 1;
}

static int
pg_session_del(const char *hash)
{
	struct pg_args a = { 0 };
	int n;

	pa_str(&a, hash);
	n = pg_cmd("DELETE FROM web_sessions WHERE hash = $1", &a, "end session");
	pa_free(&a);
	return n < 0 ? -1 : 0;
}

static int
pg_session_prune(time_t idle_cut, time_t age_cut)
{
	struct pg_args a = { 0 };

	pa_int(&a, (long long)idle_cut);
	pa_int(&a, (long long)age_cut);
	return pg_cmd("DELETE FROM web_sessions WHERE seen < $1 OR created < $2",
	    &a, "prune sessions");
}

/* Every delta in one upsert: four arrays unnested into rows (a round trip
 * per row cost about 50 ms per 1,000 clients; bench/pg_rate.py). Rows go
 * in the caller's order (WITH ORDINALITY: the planner knows unnest's rows
 * come in it, so the sort costs nothing), which is sorted, so two nodes'
 * batches lock rows in one order; the caller's deltas are distinct
 * (backend.h), as one upsert may not touch a row twice. 0 or -1. */
static int
pg_rate_upsert(const struct db_rate_delta *d, size_t n)
{
	struct buf col[4] = { { 0 } };
	struct pg_args a = { 0 };
	char *arr[4];
	int rc;

	for (size_t i = 0; i < n; i++) {
		pg_arr_num(&col[0], d[i].win);
		pg_arr_num(&col[1], d[i].kind);
		pg_arr_text(&col[2], d[i].key);
		pg_arr_num(&col[3], d[i].n);
	}
	for (int k = 0; k < 4; k++)
		pa_str(&a, arr[k] = pg_arr_take(&col[k]));
	rc = pg_cmd("INSERT INTO rate_counts (win, kind, key, n)"
	    " SELECT win, kind, key, n FROM unnest($1::bigint[], $2::integer[],"
	    " $3::text[], $4::bigint[]) WITH ORDINALITY AS d (win, kind, key, n, i)"
	    " ORDER BY i"
	    " ON CONFLICT (win, kind, key) DO UPDATE SET n = rate_counts.n + excluded.n",
	    &a, "count rates");
	pa_free(&a);
	for (int k = 0; k < 4; k++)
		free(arr[k]);
	return rc < 0 ? -1 : 0;
}

static int
pg_rate_add(const struct db_rate_delta *d, size_t n, long long cut_win)
{
	struct pg_args a = { 0 };

	if (n > 0 && pg_rate_upsert(d, n) == -1)
		return -1;
	pa_int(&a, cut_win);
	return pg_cmd("DELETE FROM rate_counts WHERE win < $1", &a,
	    "prune rate counts") < 0 ? -1 : 0;
}

static int
pg_rate_row(const PGresult *r, int i, struct pg_each *e)
{
	struct db_rate_delta row = {
		.win = pg_ll(r, i, 0), .kind = (int)pg_ll(r, i, 1),
		.key = PQgetvalue(r, i, 2), .n = pg_ll(r, i, 3),
	};

	return e->fn.rate(e->arg, &row);
}

static int
pg_rate_each(long long since_win,
    int (*fn)(void *, const struct db_rate_delta *), void *arg)
{
	struct pg_args a = { 0 };
	struct pg_each e = { .fn.rate = fn, .arg = arg };

	pa_int(&a, since_win);
	return pg_rows("SELECT win, kind, key, n FROM rate_counts WHERE win >= $1"
	    " ORDER BY win, kind, key",
	    &a, "read rate counts", pg_rate_row, &e);
}

const struct db_backend db_pg = {
	.name = "postgresql",
	.open = pg_open,
	.close = pg_close,
	.schema_version = pg_schema_version,
	.begin = pg_begin,
	.commit = pg_commit,
	.rollback = pg_rollback,
	.retryable = pg_retryable,
	.probe = pg_probe,
	.put_verdict = pg_put_verdict,
	.put_stat = pg_stat_bump,
	.put_rule_hit = pg_rule_hit_bump,
	.grey_run = pg_grey_run,
	.prune = pg_prune,
	.bayes_batch = pg_bayes_batch,
	.grey_get = pg_grey_get,
	.grey_auto_get = pg_grey_auto_get,
	.grey_each = pg_grey_each,
	.grey_auto_each = pg_grey_auto_each,
	.access_each = pg_access_each,
	.verdict_each = pg_verdict_each,
	.stat_each = pg_stat_each,
	.rule_hit_each = pg_rule_hit_each,
	.rule_version = pg_rule_version,
	.rule_load = pg_rule_load,
	.rule_get = pg_rule_get,
	.quar_each = pg_quar_each,
	.quar_get = pg_quar_get,
	.quar_raw = pg_quar_raw,
	.quar_total = pg_quar_total,
	.user_hash = pg_user_hash,
	.bayes_meta = pg_bayes_meta,
	.bayes_load = pg_bayes_load,
	.edit_begin = pg_edit_begin,
	.edit_end = pg_edit_end,
	.access_add = pg_access_add,
	.access_del = pg_access_del,
	.grey_forget = pg_grey_forget,
	.rule_add = pg_rule_add,
	.rule_update = pg_rule_update,
	.rule_delete = pg_rule_delete,
	.rule_import = pg_rule_import,
	.quar_add = pg_quar_insert,
	.quar_claim = pg_quar_claim,
	.quar_finish = pg_quar_finish,
	.quar_delete = pg_quar_delete,
	.quar_expire = pg_quar_expire,
	.user_set = pg_user_set,
	.bayes_learn = pg_bayes_learn,
	.meta_get = pg_meta_get,
	.meta_put = pg_meta_put,
	.meta_prune = pg_meta_prune,
	.edit_version = pg_edit_version,
	.session_put = pg_session_put,
	.session_get = pg_session_get,
	.session_del = pg_session_del,
	.session_prune = pg_session_prune,
	.rate_add = pg_rate_add,
	.rate_each = pg_rate_each,
};
