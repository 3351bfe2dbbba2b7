/*
 * db.c -- `postern db copy -c FILE --to URL`: copy the node's SQLite
 * database (db.path of FILE) into an empty PostgreSQL database (db_copy
 * in db/db.h), with a progress line when stderr is a terminal, then say
 * what was copied. Exit 0 copied, 1 refused (the target holds data) or
 * failed, 2 bad usage. The node should be stopped: rows it writes during
 * the copy stay behind.
 */
#include "cli/cli.h"
#include "db/db.h"
#include "lib/conf.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void	 dbcli_progress(void *arg, const char *table, long long done,
		    long long total);
static int	 dbcli_usage(void);

/* "\r" and the line again: one line that moves. */
static void
dbcli_progress(void *arg, const char *table, long long done, long long total)
{
	(void)arg;
	fprintf(stderr, "\rcopying %-14s %lld/%lld rows", table, done, total);
	fflush(stderr);
}

static int
dbcli_usage(void)
{
	fprintf(stderr, "usage: postern db copy -c FILE --to URL\n"
	    "  copies db.path of FILE into the empty PostgreSQL database at URL\n");
	return 2;
}

int
cli_db(int argc, char **argv)
{
	const char *path = NULL, *url = NULL;
	long long copied[DB_COPY_TABLES], sum = 0;
	char why[64];
	struct conf *c;
	int rc, tty = isatty(STDERR_FILENO);

	if (argc < 2 || strcmp(argv[1], "copy") != 0)
		return dbcli_usage();
	for (int i = 2; i < argc; i++)
		if (!cli_opt(argc, argv, &i, "-c", &path) &&
		    !cli_opt(argc, argv, &i, "--to", &url))
			return dbcli_usage();
	if (path == NULL || url == NULL || *url == '\0')
		return dbcli_usage();
	if ((c = conf_load_report(path)) == NULL)
		return 1;
	rc = db_copy(c->db_path, url, tty ? dbcli_progress : NULL, NULL, copied,
	    why, sizeof(why));
	if (tty)
		fprintf(stderr, "\n");
	if (rc == 1)
		fprintf(stderr, "postern db copy: the target already holds data (table %s"
		    " has rows); copy into an empty database\n", why);
	else if (rc == -1)
		fprintf(stderr, "postern db copy: failed; nothing was written to the"
		    " target\n");
	else {
		printf("copied %s into PostgreSQL:", c->db_path);
		for (size_t i = 0; i < DB_COPY_TABLES; i++) {
			printf("%s %s %lld", i ? "," : "", db_copy_table(i), copied[i]);
			sum += copied[i];
		}
		printf("; %lld rows\n", sum);
	}
	conf_unref(c);
	return rc == 0 ? 0 : 1;
}
