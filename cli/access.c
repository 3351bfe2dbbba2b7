/*
 * access.c -- `postern access`: the allow and deny lists (policy/access.h)
 * from a shell.
 *
 *   postern access add allow|deny KIND VALUE [NOTE] [-c FILE]
 *   postern access del allow|deny KIND VALUE [-c FILE]
 *   postern access list [KIND] [-c FILE]
 *
 * add and del accept what POST/DELETE /api/access accept
 * (access_entry_valid). Exit 0 done (an entry already listed included),
 * 1 refused, not listed (del) or failed, 2 bad usage.
 */
#include "cli/cli.h"
#include "db/db.h"
#include "lib/util.h"
#include "policy/access.h"

#include <stdio.h>
#include <string.h>

static int	 access_print(void *, const struct db_access *);
static int	 access_usage(void);
static int	 access_run(int, char **);

static int
access_print(void *arg, const struct db_access *e)
{
	(void)arg;
	printf("%s\t%s\t%s%s%s\n", e->list, e->kind, e->value,
	    *e->note ? "\t# " : "", e->note);
	return 0;
}

static int
access_usage(void)
{
	fprintf(stderr,
	    "usage: postern access add allow|deny client|helo|sender|rcpt VALUE [NOTE] [-c FILE]\n"
	    "       postern access del allow|deny client|helo|sender|rcpt VALUE [-c FILE]\n"
	    "       postern access list [client|helo|sender|rcpt] [-c FILE]\n");
	return 2;
}

/* Run one command against the open database; exit status. */
static int
access_run(int n, char **a)
{
	char why[200];
	int rc;

	if (n >= 1 && strcmp(a[0], "list") == 0 && n <= 2)
		return db_access_each(n == 2 ? a[1] : NULL, access_print, NULL) == -1;
	if (n < 4 || (strcmp(a[0], "add") && strcmp(a[0], "del")) ||
	    (strcmp(a[1], "allow") && strcmp(a[1], "deny")))
		return access_usage();
	if (access_entry_valid(a[1], a[2], a[3], strcmp(a[0], "add") == 0, why,
	    sizeof(why)) == -1) {
		fprintf(stderr, "postern access: %s\n", why);
		return 1;
	}
	if (strcmp(a[0], "add") == 0) {
		if (n > 5)
			return access_usage();
		if ((rc = db_access_add(a[1], a[2], a[3], n == 5 ? a[4] : "")) == -1)
			return 1;
		printf("%s %s %s: %s\n", a[1], a[2], a[3], rc ? "already listed" : "added");
		return 0;
	}
	if (n > 4)
		return access_usage();
	if ((rc = db_access_del(a[1], a[2], a[3])) == -1)
		return 1;
	printf("%s %s %s: %s\n", a[1], a[2], a[3], rc ? "removed" : "not listed");
	return rc ? 0 : 1;
}

int
cli_access(int argc, char **argv)
{
	const char *path = "etc/postern.conf";
	char *args[8];
	struct conf *c;
	int n = 0, rc;

	for (int i = 1; i < argc; i++) {
		if (cli_opt(argc, argv, &i, "-c", &path))
			continue;
		if (n == (int)ARRAY_SIZE(args))
			return access_usage();
		args[n++] = argv[i];
	}
	if ((c = cli_open_db(path)) == NULL)
		return 1;
	rc = access_run(n, args);
	cli_close_db(c);
	return rc;
}
