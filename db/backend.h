/*
 * backend.h -- inside db/ only: what db.c (the public calls, the writer
 * thread and its queue) shares with a storage backend (sqlite.c today; a
 * PostgreSQL one next).
 *
 * Decoded columns: a backend that keeps recipients and check results as
 * JSON text (written by jsonw in db.c) decodes them with db_dec_*() into
 * the typed arrays of db.h; the arrays and their strings live until
 * db_dec_free().
 *
 * Thread: db_dec is per call, no shared state.
 */
#ifndef POSTERN_DB_BACKEND_H
#define POSTERN_DB_BACKEND_H

#include "db/db.h"

#include <jansson.h>

struct db_dec {
	json_t		*jr, *jc;	/* the parsed columns */
	const char	**rcpts;	/* strings inside jr */
	struct db_check	*checks;	/* strings inside jc */
};

/* ["a@b",...] as an array of *n strings (non-strings skipped; text that is
 * not a JSON array reads as empty). */
const char	**db_dec_rcpts(struct db_dec *, const char *text, int *n);
/* [{"check":..,"result":..,"score":..[,"reason":..]},...] as *n checks;
 * a missing reason is NULL, a score that is not a number NaN. */
const struct db_check *db_dec_checks(struct db_dec *, const char *text, int *n);
void		 db_dec_free(struct db_dec *);

#endif
