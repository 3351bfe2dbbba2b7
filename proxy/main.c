/*
 * main.c -- the postern command: serve, configtest, check, passwd, rules,
 * learn.
 * Each subcommand lives with its module; this file only dispatches.
 */
#include "access.h"
#include "bayes.h"
#include "rbl.h"
#include "conf.h"
#include "policy.h"
#include "quar.h"
#include "rulecheck.h"
#include "smtp.h"
#include "util.h"
#include "web.h"

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
	    "                     [--only CHECK,...] [MESSAGE|-]\n"
	    "       postern passwd -c FILE USER\n"
	    "       postern learn -c FILE spam|ham [--forget] FILE|DIR|MBOX...\n"
	    "       postern web -c FILE\n"
	    "       postern access add|del|list [allow|deny KIND VALUE] -c FILE\n"
	    "       postern rules import [--replace]|export|test -c FILE [ARGS]\n"
	    "       postern quarantine list|show|raw|release|delete|expire -c FILE [ID]\n");
	exit(2);
}

static int
cmd_configtest(int argc, char **argv)
{
	struct conf *c = conf_load_report(conf_path_arg(argc, argv));
	char why[400];

	if (c == NULL)
		return 1;
	if (rbl_conf_check(c, why, sizeof(why)) == -1) {
		fprintf(stderr, "%s: %s\n", c->path, why);
		conf_unref(c);
		return 1;
	}
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "-v") == 0)
			conf_dump_keys(stdout);
	conf_unref(c);
	return 0;
}

static int
cmd_serve(int argc, char **argv)
{
	const char *path = conf_path_arg(argc, argv);
	struct conf *c = conf_load_report(path);

	if (c == NULL)
		return 1;
	return smtp_serve(path, c);
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
