/*
 * configtest.c -- `postern configtest [-v] -c FILE`: every problem of one
 * config, conf.c's own and those only a module can see (the DNS list
 * syntax, the proxy.tls_* settings OpenSSL refuses), one per line in file
 * order, then their count; -v lists every key of a good config on stdout.
 * Exit 0 when there is none, else 1.
 */
#include "cli/cli.h"
#include "lib/conf.h"
#include "policy/rbl.h"
#include "proxy/tls.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every problem of one config: conf.c's own and the policy's. */
struct configtest {
	struct conf	*c;
	struct conf_err	*errs;
	int		 n;
};

static void	 configtest_problem(void *, int, const char *);
static void	 configtest_sort(struct conf_err *, int);

static void
configtest_problem(void *arg, int line, const char *msg)
{
	struct configtest *t = arg;

	conf_err_add(&t->errs, &t->n, t->c, line, "%s", msg);
}

/* File order; problems of no line last. Stable: few problems. */
static void
configtest_sort(struct conf_err *e, int n)
{
	for (int i = 1; i < n; i++) {
		struct conf_err x = e[i];
		int kx = x.line > 0 ? x.line : INT_MAX, j = i;
		while (j > 0 && (e[j - 1].line > 0 ? e[j - 1].line : INT_MAX) > kx) {
			e[j] = e[j - 1];
			j--;
		}
		e[j] = x;
	}
}

int
cli_configtest(int argc, char **argv)
{
	const char *path = conf_path_arg(argc, argv);
	struct configtest t = { 0 };
	int given = 0, verbose = 0;

	for (int i = 1; i < argc; i++) {
		given |= strcmp(argv[i], "-c") == 0;
		verbose |= strcmp(argv[i], "-v") == 0;
	}
	if (!given)
		fprintf(stderr, "postern: no -c FILE given; checking %s\n", path);
	t.c = conf_load_all(path, &t.errs, &t.n);
	rbl_conf_check(t.c, configtest_problem, &t);
	if (tls_check(t.c) == -1)	/* ciphers, groups, files: OpenSSL's say */
		configtest_problem(&t, conf_key_line(t.c, "proxy.tls_cert"),
		    "the proxy.tls_* settings do not work (OpenSSL's reasons above)");
	configtest_sort(t.errs, t.n);
	for (int i = 0; i < t.n; i++)
		fprintf(stderr, "%s\n", t.errs[i].msg);
	if (t.n == 0 && verbose)
		conf_dump_keys(stdout);
	if (t.n == 0)
		fprintf(stderr, "%s: configuration OK\n", path);
	else
		fprintf(stderr, "%s: %d problem%s\n", path, t.n, t.n == 1 ? "" : "s");
	free(t.errs);
	conf_unref(t.c);
	return t.n == 0 ? 0 : 1;
}
