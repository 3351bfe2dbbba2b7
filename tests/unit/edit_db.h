/* edit_db.h -- cases for db_test.c (SQLite) and pg_test.c (PostgreSQL):
 * an admin edit commits in one transaction with its step of the shared
 * edit version (db.c's db_edit_end), so a node never misses an edit that
 * stayed; a triplet forgotten by hand moves the greylist's own counter
 * and no other, and other edits leave it alone. The including file defines edit_db_refuse(on): while on, the
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

/* A stored row, as a first attempt leaves it. */
static int
edit_db_step(struct db_grey_row *r, time_t now, void *arg, int *count_pass)
{
	(void)arg;
	r->first_seen = r->last_seen = now;
	*count_pass = 0;
	return 1;
}

/* 1 when the triplet is stored, 0 when not (-1 on error). */
static int
edit_db_grey_has(const char *net)
{
	struct db_grey_row r;

	return db_grey_get(net, "s@apart.test", "r@apart.test", &r) == -1 ? -1 : r.found;
}

T_CASE(grey_token_apart)
{
	const char *net = "198.51.100.0/24";
	unsigned long long a = db_admin_token(), g = db_grey_token();
	long long v0 = db_edit_version();

	/* an admin edit: its token moves, the greylist's does not */
	T_EQ_INT(db_access_add("deny", "helo", "apart.test", NULL), 0);
	T_ASSERT(db_admin_token() != a);
	T_ASSERT(db_grey_token() == g);
	T_EQ_INT(db_access_del("deny", "helo", "apart.test"), 1);
	a = db_admin_token();
	v0 = db_edit_version();

	T_EQ_INT(db_grey_update(net, "s@apart.test", "r@apart.test", 1000,
	    edit_db_step, NULL), 1);
	T_EQ_INT(db_grey_forget(net, "s@apart.test", "r@other.test"), 0);
	T_ASSERT(db_grey_token() == g);			/* nothing forgotten */
	edit_db_refuse(1);
	T_EQ_INT(db_grey_forget(net, "s@apart.test", "r@apart.test"), -1);
	T_EQ_INT(edit_db_grey_has(net), 1);		/* kept with its signal */
	edit_db_refuse(0);
	T_ASSERT(db_grey_token() == g);
	T_EQ_INT(db_grey_forget(net, "s@apart.test", "r@apart.test"), 1);
	T_EQ_INT(edit_db_grey_has(net), 0);
	T_ASSERT(db_grey_token() != g);			/* seen here at once */
	T_ASSERT(db_admin_token() == a);
	T_EQ_INT(db_edit_version(), v0);
}

#endif
