/*
 * main.c -- the postern command: serve, configtest, check, passwd, rules,
 * learn.
 * Each subcommand lives with its module; this file only dispatches.
 */
#include "policy/access.h"
#include "policy/bayes.h"
#include "policy/rbl.h"
#include "lib/conf.h"
#include "policy/policy.h"
#include "policy/quar.h"
#include "policy/rulecheck.h"
#include "proxy/daemon.h"
#include "proxy/tls.h"
#include "lib/util.h"
#include "web/web.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int	 cmd_serve(int, char **);
static int	 cmd_configtest(int, char **);
static void	 usage(void) __attribute__((noreturn));

static void
usage(void)
{
	fprintf(stderr,
	    "usage: postern serve -c FILE\n"
	    "       postern configtest [-v] -c FILE\n"
	    "       postern check -c FILE --ip IP [--helo NAME] [--from ADDR] [--rcpt ADDR]...\n"
	    "                     [--only CHECK,...] [--record] [MESSAGE|-]\n"
	    "       postern passwd -c FILE USER\n"
	    "       postern learn -c FILE spam|ham [--forget] FILE|DIR|MBOX...\n"
	    "       postern web -c FILE\n"
	    "       postern access add|del|list [allow|deny KIND VALUE] -c FILE\n"
	    "       postern rules import [--replace]|export|test -c FILE [ARGS]\n"
	    "       postern quarantine list|show|raw|release|delete|spam|expire -c FILE [ID]\n");
	exit(2);
}

/* Every problem of one config: conf.c's own and the policy's. */
struct configtest {
	struct conf	*c;
	struct conf_err	*errs;
	int		 n;
};

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

static int
cmd_configtest(int argc, char **argv)
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

static int
cmd_serve(int argc, char **argv)
{
	const char *path = conf_path_arg(argc, argv);
	struct conf *c = conf_load_report(path);

	if (c == NULL)
		return 1;
	return daemon_serve(path, c);
}

int
main(int argc, char **argv)
{
	if (argc < 2)
		usage();
	log_init("postern", 0);
	if (strcmp(argv[1], "serve") == 0)
		return cmd_serve(argc - 1, argv + 1);
	if (strcmp(argv[1], "configtest") == 0)
		return cmd_configtest(argc - 1, argv + 1);
	if (strcmp(argv[1], "check") == 0)
		return pol_check_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "passwd") == 0)
		return web_passwd_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "web") == 0)
		return web_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "access") == 0)
		return access_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "rules") == 0)
		return rulecheck_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "learn") == 0)
		return bayes_learn_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "quarantine") == 0)
		return quar_main(argc - 1, argv + 1);
	usage();
}
