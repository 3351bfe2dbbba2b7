/*
 * main.c -- the postern command: finds the command named by the first
 * argument and runs it (cli.h). Nothing else happens here.
 */
#include "cli/cli.h"
#include "lib/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
	const char	*name;
	int		(*run)(int, char **);
} cli_commands[] = {
	{ "serve", cli_serve },
	{ "configtest", cli_configtest },
	{ "check", cli_check },
	{ "passwd", cli_passwd },
	{ "web", cli_web },
	{ "access", cli_access },
	{ "rules", cli_rules },
	{ "learn", cli_learn },
	{ "quarantine", cli_quarantine },
	{ "db", cli_db },
};

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
	    "       postern quarantine list|show|raw|release|delete|spam|expire -c FILE [ID]\n"
	    "       postern db copy -c FILE --to URL\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	if (argc < 2)
		usage();
	log_init("postern", 0);
	for (size_t i = 0; i < ARRAY_SIZE(cli_commands); i++)
		if (strcmp(argv[1], cli_commands[i].name) == 0)
			return cli_commands[i].run(argc - 1, argv + 1);
	usage();
}
