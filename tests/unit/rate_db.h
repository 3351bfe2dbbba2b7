/* rate_db.h -- cases for db_test.c (SQLite) and pg_test.c (PostgreSQL):
 * the shared rate counts add up per (win, kind, key), read back from a
 * window on, in order, and windows before cut_win go with an add; keys
 * come back byte for byte. */
#ifndef POSTERN_TEST_RATE_DB_H
#define POSTERN_TEST_RATE_DB_H

#include "db/db.h"

#include <stdio.h>
#include <string.h>

static int
rate_db_collect(void *arg, const struct db_rate_delta *r)
{
	char *buf = arg;
	size_t l = strlen(buf);

	snprintf(buf + l, 256 - l, "%lld/%d/%s=%lld;", r->win, r->kind, r->key, r->n);
	return 0;
}

T_CASE(rate_counts_shared)
{
	const struct db_rate_delta d[] = { { 0, "192.0.2.1", 100, 2 },
	    { 1, "192.0.2.1", 100, 1 }, { 0, "2001:db8::1", 101, 3 } };
	char buf[256] = "";

	T_EQ_INT(db_rate_add(d, 3, 99), 0);
	T_EQ_INT(db_rate_add(d, 1, 99), 0);	/* another node's 2 */
	T_EQ_INT(db_rate_each(100, rate_db_collect, buf), 0);
	T_EQ_STR(buf, "100/0/192.0.2.1=4;100/1/192.0.2.1=1;101/0/2001:db8::1=3;");
	buf[0] = '\0';
	T_EQ_INT(db_rate_each(101, rate_db_collect, buf), 0);
	T_EQ_STR(buf, "101/0/2001:db8::1=3;");
	T_EQ_INT(db_rate_add(d + 2, 1, 101), 0);	/* window 100 goes */
	buf[0] = '\0';
	T_EQ_INT(db_rate_each(0, rate_db_collect, buf), 0);
	T_EQ_STR(buf, "101/0/2001:db8::1=6;");
	T_EQ_INT(db_rate_add(NULL, 0, 102), 0);		/* only the prune */
	buf[0] = '\0';
	T_EQ_INT(db_rate_each(0, rate_db_collect, buf), 0);
	T_EQ_STR(buf, "");
}

/* Keys go into one statement as array elements on PostgreSQL: text that
 * array syntax would read as NULL, split or unquote comes back as it was. */
T_CASE(rate_keys_kept_verbatim)
{
	const struct db_rate_delta d[] = { { 0, "", 200, 1 },
	    { 0, " a,b ", 200, 2 }, { 0, "NULL", 200, 3 },
	    { 0, "q\"{x}\\", 200, 4 } };
	char buf[256] = "";

	T_EQ_INT(db_rate_add(d, 4, 199), 0);
	T_EQ_INT(db_rate_add(d + 2, 1, 199), 0);
	T_EQ_INT(db_rate_each(200, rate_db_collect, buf), 0);
	T_EQ_STR(buf, "200/0/=1;200/0/ a,b =2;200/0/NULL=6;200/0/q\"{x}\\=4;");
	T_EQ_INT(db_rate_add(NULL, 0, 201), 0);
}

#endif
