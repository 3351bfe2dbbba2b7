/* edit_db.h -- one case for db_test.c (SQLite) and pg_test.c (PostgreSQL):
 * an admin edit commits in one transaction with its step of the shared
 * edit version (db.c's db_edit_end), so a node never misses an edit that
 * stayed. The including file defines edit_db_refuse(on): while on, the
 * database refuses to move the version (a trigger on a connection of the
 * test's own), as a failed bump would. */
#ifndef POSTERN_TEST_EDIT_DB_H
#define POSTERN_TEST_EDIT_DB_H

#include "db/db.h"
#include "rules/rules.h"

#include <stdlib.h>
#include <string.h>

static void	 edit_db_refuse(int on);

/* Counts the access entries whose value is arg's. */
struct edit_db_find {
	const char *value;
	int	 n;
};

static int
edit_db_access(void *arg, const struct db_access *a)
{
	struct edit_db_find *f = arg;

	f->n += strcmp(a->value, f->value) == 0;
	return 0;
}

/* How many "helo" entries have value (-1 on error). */
static int
edit_db_has(const char *value)
{
	struct edit_db_find f = { value, 0 };

	return db_access_each("helo", edit_db_access, &f) == -1 ? -1 : f.n;
}

/* While the version cannot move, no edit stays: each answers -1 and the
 * database holds what it held; then the same edits commit, one step each. */
T_CASE(edit_commits_with_its_version)
{
	struct rule_def d = { .name = (char *)"edit-db", .target = (char *)"subject",
	    .pattern = (char *)"x", .flags = (char *)"", .action = (char *)"score",
	    .score = 1, .enabled = 1 };
	long long v0 = db_edit_version(), r0 = db_rule_version();
	char *v = NULL;

	T_ASSERT(v0 >= 0);
	edit_db_refuse(1);
	T_EQ_INT(db_access_add("deny", "helo", "lost.test", NULL), -1);
	T_EQ_INT(edit_db_has("lost.test"), 0);
	T_EQ_INT(db_rule_add(&d), -1);
	T_EQ_INT(db_rule_import(&d, 1, 0), -1);
	T_EQ_INT(db_rule_version(), r0);		/* no rule went in */
	T_EQ_INT(db_meta_edit("edit-db", "lost"), -1);
	T_EQ_INT(db_meta_get("edit-db", &v), 0);
	T_EQ_INT(db_user_set("edit-db", "hash"), -1);
	T_ASSERT(db_user_hash("edit-db") == NULL);
	T_EQ_INT(db_edit_version(), v0);
	edit_db_refuse(0);

	T_EQ_INT(db_access_add("deny", "helo", "lost.test", NULL), 0);
	T_EQ_INT(edit_db_has("lost.test"), 1);
	T_EQ_INT(db_edit_version() - v0, 1);
	edit_db_refuse(1);
	T_EQ_INT(db_access_del("deny", "helo", "lost.test"), -1);
	T_EQ_INT(edit_db_has("lost.test"), 1);		/* still there */
	edit_db_refuse(0);
	T_EQ_INT(db_access_del("deny", "helo", "lost.test"), 1);
	T_EQ_INT(edit_db_has("lost.test"), 0);
	T_EQ_INT(db_meta_edit("edit-db", "kept"), 0);
	T_EQ_INT(db_meta_get("edit-db", &v), 1);
	T_EQ_STR(v, "kept");
	free(v);
	T_EQ_INT(db_edit_version() - v0, 3);
}

#endif
