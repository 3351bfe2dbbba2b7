/*
 * quarantine.c -- `postern quarantine`: the quarantine (policy/quar.h)
 * from a shell.
 *
 *   postern quarantine -c FILE list [-q TEXT] | show ID | raw ID |
 *       release ID [--by WHO] | spam ID [--by WHO] | delete ID | expire |
 *       digest --now
 *
 * list and show print JSON, raw the message as stored; release, spam and
 * delete one line "ID: what happened"; digest --now sends one round of
 * recipient digests (proxy/qsend.h) and prints "digest: N recipients, M
 * messages". Exit 0 done, 1 not found or failed, 2 bad usage.
 */
#include "cli/cli.h"
#include "db/db.h"
#include "lib/util.h"
#include "policy/quar.h"
#include "proxy/qsend.h"
#include "web/rowjson.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int	 quarantine_print(json_t *);
static int	 quarantine_digest(const struct conf *);
static int	 quarantine_run(const struct conf *, int, char **, const char *who,
		    const char *q);

static int
quarantine_print(json_t *j)
{
	char *s;

	if (j == NULL)
		return 1;
	s = json_dumps(j, JSON_INDENT(2));
	printf("%s\n", s);
	free(s);
	json_decref(j);
	return 0;
}

/* One round of digests by hand, whatever quarantine.digest says. */
static int
quarantine_digest(const struct conf *c)
{
	struct qsend_digest_sum sum;
	char err[512];

	if (qsend_digest(c, time_wall(), &sum, err, sizeof(err)) == -1) {
		fprintf(stderr, "postern: digest: %s\n", err);
		return 1;
	}
	printf("digest: %d recipient%s, %d message%s", sum.rcpts, sum.rcpts == 1 ? "" : "s",
	    sum.msgs, sum.msgs == 1 ? "" : "s");
	if (sum.refused)
		printf("; %d refused by the backend", sum.refused);
	printf("%s%s\n", sum.failed ? "; " : "", sum.failed ? err : "");
	return sum.failed ? 1 : 0;
}

/* One command against the open database; exit status. */
static int
quarantine_run(const struct conf *c, int na, char **a, const char *who, const char *q)
{
	char err[512], *raw;
	size_t len;
	int rc, found;

	if (na == 1 && strcmp(a[0], "list") == 0) {
		struct db_quar_query qq = { .q = q, .limit = 1000 };
		return quarantine_print(rowjson_quar_list(&qq));
	}
	if (na == 1 && strcmp(a[0], "expire") == 0) {
		rc = quar_expire(c, 0);
		printf("%d expired\n", rc < 0 ? 0 : rc);
		return rc < 0;
	}
	if (na != 2)
		return 2;
	if (strcmp(a[0], "show") == 0) {
		json_t *o = rowjson_quar_get(a[1], &found);
		if (o == NULL)
			fprintf(stderr, "postern: %s: %s\n", a[1], found ? "error" : "no such message");
		return quarantine_print(o);
	}
	if (strcmp(a[0], "raw") == 0) {
		if ((rc = db_quar_raw(a[1], &raw, &len)) != 0) {
			fprintf(stderr, "postern: %s: %s\n", a[1], rc == 1 ? "no such message" : "error");
			return 1;
		}
		fwrite(raw, 1, len, stdout);
		free(raw);
		return 0;
	}
	if (strcmp(a[0], "digest") == 0 && strcmp(a[1], "--now") == 0)
		return quarantine_digest(c);
	if (strcmp(a[0], "release") == 0) {
		rc = qsend_release(c, a[1], who, err, sizeof(err));
		printf("%s: %s\n", a[1], rc == 0 ? "released" : err);
		return rc == 0 ? 0 : 1;
	}
	if (strcmp(a[0], "spam") == 0) {
		rc = quar_spam(c, a[1], who, err, sizeof(err));
		printf("%s: %s\n", a[1], rc == 0 ? "deleted as spam" : err);
		return rc == 0 ? 0 : 1;
	}
	if (strcmp(a[0], "delete") == 0) {
		rc = db_quar_delete(a[1]);
		printf("%s: %s\n", a[1], rc == 0 ? "deleted" : rc == 1 ?
		    "no such message (or being released)" : "error");
		return rc == 0 ? 0 : 1;
	}
	return 2;
}

int
cli_quarantine(int argc, char **argv)
{
	const char *cpath = "etc/postern.conf", *who = "cli", *q = NULL;
	char *a[2];
	struct conf *c;
	int na = 0, rc;

	for (int i = 1; i < argc; i++)
		if (!cli_opt(argc, argv, &i, "-c", &cpath) &&
		    !cli_opt(argc, argv, &i, "--by", &who) &&
		    !cli_opt(argc, argv, &i, "-q", &q) && na < 2)
			a[na++] = argv[i];
	if ((c = cli_open_db(cpath)) == NULL)
		return 1;
	if ((rc = quarantine_run(c, na, a, who, q)) == 2)
		fprintf(stderr, "usage: postern quarantine -c FILE list [-q TEXT] | show ID |"
		    " raw ID | release ID [--by WHO] | spam ID [--by WHO] | delete ID | expire |"
		    " digest --now\n");
	cli_close_db(c);
	return rc;
}
