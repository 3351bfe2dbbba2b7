/*
 * dbrows.h -- test helpers for db/.
 *
 * dbrows_count: count a table's rows the way an admin would, on a
 * connection of its own (not through db/), so a test sees what was
 * committed. -1 when the database or the table cannot be read.
 *
 * dbrows_lock/dbrows_unlock: hold the database's write lock from a
 * connection of their own (another process, as far as db/ can tell), for
 * fault tests; dbrows_lock returns NULL when it cannot.
 *
 * dbrows_verdicts, dbrows_quar, dbrows_quar_get: run db.h's typed
 * iterators and keep how many rows came and the first row's fields as
 * one line of text ('|' between fields), so a test compares typed
 * results in one assertion. Their return value is the iterator's.
 */
#ifndef POSTERN_TEST_DBROWS_H
#define POSTERN_TEST_DBROWS_H

#include "db/db.h"

#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct dbrows {
	int		 n;
	long long	 id;		/* the first verdict's row id */
	char		 text[2048];	/* the first row's fields */
};

static inline int
dbrows_count(const char *path, const char *table)
{
	sqlite3 *h;
	sqlite3_stmt *st = NULL;
	char sql[128];
	int n = -1;

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", table);
	if (sqlite3_open(path, &h) != SQLITE_OK)
		return -1;
	if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(h);
	return n;
}

static inline void *
dbrows_lock(const char *path)
{
	sqlite3 *h;

	if (sqlite3_open(path, &h) != SQLITE_OK)
		return NULL;
	if (sqlite3_exec(h, "BEGIN EXCLUSIVE", NULL, NULL, NULL) != SQLITE_OK) {
		sqlite3_close(h);
		return NULL;
	}
	return h;
}

static inline void
dbrows_unlock(void *lock)
{
	sqlite3 *h = lock;

	sqlite3_exec(h, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(h);
}

static inline void __attribute__((format(printf, 2, 3)))
dbrows_add(struct dbrows *r, const char *fmt, ...)
{
	size_t l = strlen(r->text);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->text + l, sizeof(r->text) - l, fmt, ap);
	va_end(ap);
}

/* "|rcpts:a,b|checks:check/result/reason/score;..." (reason "-" when NULL) */
static inline void
dbrows_lists(struct dbrows *r, const char *const *rc, int nrc,
    const struct db_check *ck, int nck)
{
	dbrows_add(r, "|rcpts:");
	for (int i = 0; i < nrc; i++)
		dbrows_add(r, "%s%s", i ? "," : "", rc[i]);
	dbrows_add(r, "|checks:");
	for (int i = 0; i < nck; i++)
		dbrows_add(r, "%s/%s/%s/%g;", ck[i].check, ck[i].result,
		    ck[i].reason ? ck[i].reason : "-", ck[i].score);
}

/* sid|verdict|outcome|stage|mta_reply|reply|subject|helo|size|score|ms
 * |rcpts:...|checks:... -- of the first row only */
static inline int
dbrows_verdict_fn(void *arg, const struct db_verdict_row *row)
{
	struct dbrows *r = arg;
	const struct db_verdict *v = &row->v;

	if (r->n++ == 0) {
		r->id = row->id;
		dbrows_add(r, "%s|%s|%s|%s|%s|%s|%s|%s|%zu|%g|%lu", v->sid,
		    v->verdict, v->outcome, v->stage, v->mta_reply, v->reply,
		    v->subject, v->helo, v->size, v->score, v->ms);
		dbrows_lists(r, v->rcpts, v->nrcpts, v->checks, v->nchecks);
	}
	return 0;
}

static inline int
dbrows_verdicts(int limit, long long before, const char *q, struct dbrows *r)
{
	memset(r, 0, sizeof(*r));
	return db_verdict_each(limit, before, q, dbrows_verdict_fn, r);
}

/* id|mail_from|state|subject|size|score|released_by(or -)
 * |rcpts:...|checks:... (the reasons) -- of the first row only */
static inline int
dbrows_quar_fn(void *arg, const struct db_quar_row *row)
{
	const struct db_quar *q = &row->q;
	struct dbrows *r = arg;

	if (r->n++ > 0)
		return 0;
	dbrows_add(r, "%s|%s|%s|%s|%zu|%g|%s", q->id, q->mail_from, row->state,
	    q->subject, q->len, q->score, row->released_by ? row->released_by : "-");
	dbrows_lists(r, q->rcpts, q->nrcpts, q->reasons, q->nreasons);
	return 0;
}

static inline int
dbrows_quar(const struct db_quar_query *q, struct dbrows *r)
{
	memset(r, 0, sizeof(*r));
	return db_quar_each(q, dbrows_quar_fn, r);
}

static inline int
dbrows_quar_get(const char *id, struct dbrows *r)
{
	memset(r, 0, sizeof(*r));
	return db_quar_get(id, dbrows_quar_fn, r);
}

#endif
