/*
 * cli.h -- the front door: `postern COMMAND [ARGS]`, one file per command
 * (cli/COMMAND.c). A command parses its arguments, calls the modules'
 * public functions and prints what they return; what a command does lives
 * in the module that owns it, so the web UI and the daemon do the same.
 *
 * Every cli_COMMAND() takes argc/argv from the command's own name on
 * (argv[0] is "serve", "check", ...) and returns the process's exit code:
 * 0 done, 1 failed (bad config, database, a refusal), 2 bad usage, unless
 * its file says otherwise. Messages go to stderr, results to stdout.
 * Thread: main; a command may start modules that run their own threads.
 */
#ifndef POSTERN_CLI_H
#define POSTERN_CLI_H

#include <stddef.h>

struct conf;

int	 cli_serve(int argc, char **argv);
int	 cli_configtest(int argc, char **argv);
int	 cli_check(int argc, char **argv);
int	 cli_passwd(int argc, char **argv);
int	 cli_learn(int argc, char **argv);
int	 cli_web(int argc, char **argv);
int	 cli_access(int argc, char **argv);
int	 cli_rules(int argc, char **argv);
int	 cli_quarantine(int argc, char **argv);
int	 cli_db(int argc, char **argv);

/* Is argv[*i] the option name with a value after it? Then the value goes
 * to *val, *i moves onto it, and 1; else 0 (nothing changes). */
int	 cli_opt(int argc, char **argv, int *i, const char *name, const char **val);

/* The config at path and the database it names, opened for one command:
 * the conf, or NULL with every problem said on stderr. */
struct conf *cli_open_db(const char *path);
/* db_close() and drop the conf cli_open_db() returned. */
void	 cli_close_db(struct conf *);

#endif
