/* meta_db.h -- one case for db_test.c (SQLite) and pg_test.c (PostgreSQL):
 * db_meta_prune deletes the numbered values below a number, and only
 * those: another prefix, a name whose tail is not all digits, and the
 * bare prefix stay. */
#ifndef POSTERN_TEST_META_DB_H
#define POSTERN_TEST_META_DB_H

#include "db/db.h"

#include <stdlib.h>

/* 1 when key is set, 0 when not (-1 on a database error). */
static int
meta_db_has(const char *key)
{
	char *v = NULL;
	int rc = db_meta_get(key, &v);

	free(v);
	return rc;
}

T_CASE(meta_prune_numbered)
{
	static const char *const keys[] = { "slot.100", "slot.200", "slot.3000",
	    "slot.99x", "slot.", "slotx.5", "other.slot.1" };

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		T_EQ_INT(db_meta_put(keys[i], "v", 0), 0);
	T_EQ_INT(db_meta_prune("slot.", 200), 1);
	T_EQ_INT(meta_db_has("slot.100"), 0);
	T_EQ_INT(meta_db_has("slot.200"), 1);
	T_EQ_INT(db_meta_prune("slot.", 200), 0);
	T_EQ_INT(db_meta_prune("slot.", 3001), 2);	/* numbers, not text order */
	T_EQ_INT(meta_db_has("slot.3000"), 0);
	for (size_t i = 3; i < sizeof(keys) / sizeof(keys[0]); i++)
		T_EQ_INT(meta_db_has(keys[i]), 1);
}

#endif
