/*
 * cli.c -- what several commands share (see cli.h).
 */
#include "cli/cli.h"
#include "db/db.h"
#include "lib/conf.h"

#include <stddef.h>
#include <string.h>

int
cli_opt(int argc, char **argv, int *i, const char *name, const char **val)
{
	if (strcmp(argv[*i], name) != 0 || *i + 1 >= argc)
		return 0;
	*val = argv[++*i];
	return 1;
}

struct conf *
cli_open_db(const char *path)
{
	struct conf *c = conf_load_report(path);

	if (c == NULL)
		return NULL;
	if (db_open(c, 0) == -1) {
		conf_unref(c);
		return NULL;
	}
	return c;
}

void
cli_close_db(struct conf *c)
{
	db_close();
	conf_unref(c);
}
