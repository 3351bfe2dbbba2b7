/*
 * rules.c -- `postern rules`: the rule table as text (docs/rules.md).
 *
 *   postern rules import [--replace] -c FILE RULEFILE
 *   postern rules export -c FILE
 *   postern rules test -c FILE 'RULE LINE' MESSAGE
 *
 * import parses the whole file first (policy/rulecheck.h) and writes
 * nothing when a line is wrong; export prints every rule as one line;
 * test matches one rule line against one message (file or "-") with the
 * config's limits, without the database, and prints where it matched.
 * Exit 0 done (a test with no match included), 1 failed, 2 bad usage.
 */
#include "cli/cli.h"
#include "db/db.h"
#include "lib/conf.h"
#include "lib/util.h"
#include "policy/rulecheck.h"
#include "rules/rules.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int	 rules_export(void);
static int	 rules_test(struct conf *, const char *line, const char *path);

static int
rules_export(void)
{
	struct rule_def *defs;
	size_t n;

	if (db_rule_load(&defs, &n) == -1)
		return 1;
	printf("# name | target | /pattern/flags | action [score] [log-only]\n");
	for (size_t i = 0; i < n; i++) {
		char *l = rule_line_format(&defs[i]);
		fputs(l, stdout);
		free(l);
		rule_def_clear(&defs[i]);
	}
	free(defs);
	return 0;
}

static int
rules_test(struct conf *c, const char *line, const char *path)
{
	struct rule_def d;
	struct rule_test_result r;
	struct rule_opts o;
	char err[512], *raw;
	size_t len;
	int rc;

	if ((rc = rule_line_parse(line, &d, err, sizeof(err))) != 1) {
		fprintf(stderr, "postern: rule: %s\n", rc == 0 ? "empty" : err);
		return 1;
	}
	if (file_read(path, &raw, &len) == -1) {
		fprintf(stderr, "postern: %s: %s\n", path, strerror(errno));
		rule_def_clear(&d);
		return 1;
	}
	rulecheck_opts(c, &o);
	rc = rule_test(&d, raw, len, NULL, &o, &r, err, sizeof(err));
	if (rc == 1)
		printf("match %s offset %zu: %s\n", r.where, r.off, r.excerpt);
	else if (rc == 0)
		printf("no match\n");
	else
		fprintf(stderr, "postern: %s\n", err);
	free(raw);
	rule_def_clear(&d);
	return rc == -1 ? 1 : 0;
}

int
cli_rules(int argc, char **argv)
{
	const char *cpath = "etc/postern.conf", *args[3];
	struct conf *c;
	int replace = 0, na = 0, rc = 2;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--replace") == 0)
			replace = 1;
		else if (!cli_opt(argc, argv, &i, "-c", &cpath) && na < 3)
			args[na++] = argv[i];
	}
	if ((c = conf_load_report(cpath)) == NULL)
		return 1;
	if (na == 3 && strcmp(args[0], "test") == 0) {
		rc = rules_test(c, args[1], args[2]);
		conf_unref(c);
		return rc;
	}
	if (db_open(c, 0) == -1) {
		conf_unref(c);
		return 1;
	}
	if (na == 2 && strcmp(args[0], "import") == 0)
		rc = rulecheck_import(args[1], replace) == -1 ? 1 : 0;
	else if (na == 1 && strcmp(args[0], "export") == 0)
		rc = rules_export();
	else
		fprintf(stderr, "usage: postern rules import [--replace] -c FILE RULEFILE\n"
		    "       postern rules export -c FILE\n"
		    "       postern rules test -c FILE 'RULE LINE' MESSAGE\n");
	cli_close_db(c);
	return rc;
}
