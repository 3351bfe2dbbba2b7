/*
 * copy.c -- moving up: a node's SQLite database copied into PostgreSQL
 * (db_copy() in db.h, for `postern db copy`).
 *
 * Both schemas are first brought up to date by their engines' own open
 * (sqlite.c's migrations, then pg.c's, under its migration lock); then
 * every table the two share is copied row by row, column by column, in
 * one PostgreSQL transaction: a failed copy leaves the target as empty as
 * it found it. A target that already holds state is refused, so a copy
 * never mixes two histories. The one-row tables (the rules version, the
 * classifier totals, the edit counter) take the source's row; identity
 * columns then continue after the highest id copied.
 *
 * Ownership: everything here is the call's own. Thread: the caller's,
 * with no database open (db_open not called) in the process.
 */
#include "db/backend.h"
#include "lib/conf.h"
#include "lib/utf8.h"
#include "lib/util.h"

#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CP_COLS_MAX	24	/* columns of the widest table */
#define CP_TICK		500	/* rows between progress calls */

/* The tables, in an order that keeps triggers' effects (the rules
 * version after the rules). one: the target's rows are replaced (the
 * one-row tables, and meta: a node started on the empty database may have
 * stored its own first values, and the source's are the ones in use);
 * ident: has an identity id to move past the copied ones; state: a row
 * here means the target is in use. */
static const struct {
	const char	*name;
	int		 one, ident, state;
} cp_tables[DB_COPY_TABLES] = {
	{ "greylist", 0, 0, 1 }, { "grey_auto", 0, 0, 1 }, { "access", 0, 1, 1 },
	{ "verdicts", 0, 1, 1 }, { "stats", 0, 0, 1 }, { "rules", 0, 1, 1 },
	{ "rules_version", 1, 0, 0 }, { "quarantine", 0, 0, 1 },
	{ "web_users", 0, 0, 1 }, { "bayes_tokens", 0, 0, 1 },
	{ "bayes_msgs", 0, 0, 1 }, { "bayes_meta", 1, 0, 0 },
	{ "rule_hits", 0, 0, 1 }, { "meta", 1, 0, 0 }, { "edits", 1, 0, 0 },
	{ "web_sessions", 0, 0, 1 },
};

/* One table's copy: its statements and the caller's progress. */
struct cp {
	sqlite3		*sq;
	PGconn		*pg;
	db_copy_progress_fn fn;
	void		*arg;
	long long	 done, total;
};

static int	 cp_ok(PGconn *pg, PGresult *r, const char *what);
static int	 cp_pg(PGconn *pg, const char *sql, const char *what);
static int	 cp_in_use(PGconn *pg, char *why, size_t whylen);
static long long cp_count(sqlite3 *sq, const char *table);
static char	*cp_insert_sql(sqlite3_stmt *st, const char *table, int one);
static int	 cp_row(struct cp *c, sqlite3_stmt *st, const char *sql);
static long long cp_table(struct cp *c, const char *table, int one, int ident);
static int	 cp_open(const char *path, const char *url, sqlite3 **sq,
		    PGconn **pg);

/* r's status is a success: 1; else logged, 0. r is cleared. */
static int
cp_ok(PGconn *pg, PGresult *r, const char *what)
{
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK ||
	    PQresultStatus(r) == PGRES_TUPLES_OK;

	if (!ok)
		log_err("db copy: %s: %s", what, r ? PQresultErrorMessage(r) :
		    PQerrorMessage(pg));
	PQclear(r);
	return ok;
}

static int
cp_pg(PGconn *pg, const char *sql, const char *what)
{
	return cp_ok(pg, PQexec(pg, sql), what) ? 0 : -1;
}

/* 1 (and the table in why) when a state table of the target has a row. */
static int
cp_in_use(PGconn *pg, char *why, size_t whylen)
{
	for (size_t i = 0; i < ARRAY_SIZE(cp_tables); i++) {
		char sql[128];
		PGresult *r;
		int used;

		if (!cp_tables[i].state)
			continue;
		snprintf(sql, sizeof(sql), "SELECT 1 FROM %s LIMIT 1", cp_tables[i].name);
		r = PQexec(pg, sql);
		used = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0;
		if (!cp_ok(pg, r, "look at the target"))
			return -1;
		if (used) {
			snprintf(why, whylen, "%s", cp_tables[i].name);
			return 1;
		}
	}
	return 0;
}

/* Rows of a source table; -1 when the source has no such table (a
 * database made before it existed copies nothing into it). */
static long long
cp_count(sqlite3 *sq, const char *table)
{
	char sql[128];
	sqlite3_stmt *st;
	long long n = -1;

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", table);
	if (sqlite3_prepare_v2(sq, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

/* INSERT INTO table ("c1", ...) VALUES ($1, ...) for st's columns
 * (xmalloc'd); a one-row table's row replaces the target's. */
static char *
cp_insert_sql(sqlite3_stmt *st, const char *table, int one)
{
	int n = sqlite3_column_count(st);
	size_t room = 128 + strlen(table);
	char *sql, *p;

	for (int i = 0; i < n; i++)
		room += strlen(sqlite3_column_name(st, i)) + 12;
	p = sql = xmalloc(room);
	p += sprintf(p, "INSERT INTO %s (", table);
	for (int i = 0; i < n; i++)
		p += sprintf(p, "%s\"%s\"", i ? ", " : "", sqlite3_column_name(st, i));
	p += sprintf(p, ") VALUES (");
	for (int i = 0; i < n; i++)
		p += sprintf(p, "%s$%d", i ? ", " : "", i + 1);
	sprintf(p, ")%s", one ? "" : " ON CONFLICT DO NOTHING");
	return sql;
}

/* One row of st into the prepared "cp" statement. 0 or -1. */
static int
cp_row(struct cp *c, sqlite3_stmt *st, const char *table)
{
	int n = sqlite3_column_count(st);
	const char *v[CP_COLS_MAX];
	int len[CP_COLS_MAX], fmt[CP_COLS_MAX];
	char num[CP_COLS_MAX][32], *own[CP_COLS_MAX] = { 0 };
	int ok;

	for (int i = 0; i < n; i++) {
		len[i] = fmt[i] = 0;
		switch (sqlite3_column_type(st, i)) {
		case SQLITE_NULL:
			v[i] = NULL;
			break;
		case SQLITE_INTEGER:
			snprintf(num[i], sizeof(num[i]), "%lld",
			    (long long)sqlite3_column_int64(st, i));
			v[i] = num[i];
			break;
		case SQLITE_FLOAT:
			snprintf(num[i], sizeof(num[i]), "%.17g", sqlite3_column_double(st, i));
			v[i] = num[i];
			break;
		case SQLITE_BLOB:
			v[i] = sqlite3_column_blob(st, i);
			len[i] = sqlite3_column_bytes(st, i);
			fmt[i] = 1;
			break;
		default:
			v[i] = (const char *)sqlite3_column_text(st, i);
			if ((own[i] = utf8_mend(v[i])) != NULL)
				v[i] = own[i];
		}
	}
	ok = cp_ok(c->pg, PQexecPrepared(c->pg, "cp", n, v, len, fmt, 0), table);
	for (int i = 0; i < n; i++)
		free(own[i]);
	return ok ? 0 : -1;
}

/* Copy one table: the rows copied, or -1. */
static long long
cp_table(struct cp *c, const char *table, int one, int ident)
{
	char sql[256], *ins;
	sqlite3_stmt *st;
	long long n = 0;
	int rc;

	snprintf(sql, sizeof(sql), "SELECT * FROM %s", table);
	if (sqlite3_prepare_v2(c->sq, sql, -1, &st, NULL) != SQLITE_OK) {
		log_err("db copy: read %s: %s", table, sqlite3_errmsg(c->sq));
		return -1;
	}
	if (sqlite3_column_count(st) > CP_COLS_MAX)
		fatalx("db copy: %s has more than %d columns", table, CP_COLS_MAX);
	snprintf(sql, sizeof(sql), "DELETE FROM %s", table);
	ins = cp_insert_sql(st, table, one);
	if ((one && cp_pg(c->pg, sql, table) == -1) ||
	    cp_pg(c->pg, "DEALLOCATE ALL", table) == -1 ||
	    !cp_ok(c->pg, PQprepare(c->pg, "cp", ins, 0, NULL), table))
		n = -1;
	free(ins);
	while (n >= 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (cp_row(c, st, table) == -1) {
			n = -1;
			break;
		}
		n++;
		if (++c->done % CP_TICK == 0 && c->fn)
			c->fn(c->arg, table, c->done, c->total);
	}
	if (n >= 0 && rc != SQLITE_DONE) {
		log_err("db copy: read %s: %s", table, sqlite3_errmsg(c->sq));
		n = -1;
	}
	sqlite3_finalize(st);
	if (n >= 0 && ident) {
		snprintf(sql, sizeof(sql), "SELECT setval(pg_get_serial_sequence('%s', 'id'),"
		    " coalesce(max(id), 0) + 1, false) FROM %s", table, table);
		if (cp_pg(c->pg, sql, table) == -1)
			n = -1;
	}
	if (n >= 0 && c->fn)
		c->fn(c->arg, table, c->done, c->total);
	return n;
}

/* Both databases migrated by their engines, then a connection to each
 * of our own. 0 or -1 (logged). */
static int
cp_open(const char *path, const char *url, sqlite3 **sq, PGconn **pg)
{
	struct conf c = { .db_path = (char *)path, .db_url = (char *)url };

	if (db_sqlite.open(&c, 0) == -1)
		return -1;
	db_sqlite.close();
	if (db_pg.open(&c, 0) == -1)
		return -1;
	db_pg.close();
	if (sqlite3_open_v2(path, sq, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		log_err("db copy: cannot open %s: %s", path, sqlite3_errmsg(*sq));
		return -1;
	}
	*pg = PQconnectdb(url);
	if (PQstatus(*pg) != CONNECTION_OK) {
		log_err("db copy: cannot connect: %s", PQerrorMessage(*pg));
		return -1;
	}
	PQsetClientEncoding(*pg, "UTF8");
	return 0;
}

int
db_copy(const char *path, const char *url, db_copy_progress_fn fn, void *arg,
    long long copied[DB_COPY_TABLES], char *why, size_t whylen)
{
	struct cp c = { .fn = fn, .arg = arg };
	long long n[ARRAY_SIZE(cp_tables)];
	int rc = -1;

	memset(copied, 0, sizeof(*copied) * DB_COPY_TABLES);
	if (cp_open(path, url, &c.sq, &c.pg) == -1 ||
	    cp_pg(c.pg, "BEGIN", "begin") == -1 ||
	    /* a second copy at once waits, then finds the target in use */
	    cp_pg(c.pg, "SELECT pg_advisory_xact_lock(7070111115116101)", "lock") == -1)
		goto out;
	if ((rc = cp_in_use(c.pg, why, whylen)) != 0)
		goto out;
	rc = -1;
	for (size_t i = 0; i < ARRAY_SIZE(cp_tables); i++)
		if ((n[i] = cp_count(c.sq, cp_tables[i].name)) > 0)
			c.total += n[i];
	for (size_t i = 0; i < ARRAY_SIZE(cp_tables); i++) {
		if (n[i] < 0)
			continue;
		if ((copied[i] = cp_table(&c, cp_tables[i].name, cp_tables[i].one,
		    cp_tables[i].ident)) < 0)
			goto out;
	}
	if (cp_pg(c.pg, "COMMIT", "commit") == 0)
		rc = 0;
out:
	sqlite3_close_v2(c.sq);
	PQfinish(c.pg);
	return rc;
}

const char *
db_copy_table(size_t i)
{
	return i < ARRAY_SIZE(cp_tables) ? cp_tables[i].name : NULL;
}
