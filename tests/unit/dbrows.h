/*
 * dbrows.h -- test helper: count a table's rows the way an admin would,
 * on a connection of its own (not through db/), so a test sees what was
 * committed. -1 when the database or the table cannot be read.
 */
#ifndef POSTERN_TEST_DBROWS_H
#define POSTERN_TEST_DBROWS_H

#include <sqlite3.h>
#include <stdio.h>

static int
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

#endif
