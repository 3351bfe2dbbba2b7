/*
 * web.c -- `postern web -c FILE`: the dashboard and the API alone (no
 * SMTP) over the config's database, until SIGTERM or SIGINT (web/web.h).
 * Exit 0 after a signal, 1 when the config, the database or the listener
 * failed.
 */
#include "cli/cli.h"
#include "db/db.h"
#include "lib/conf.h"
#include "lib/util.h"
#include "web/web.h"

#include <pthread.h>
#include <signal.h>
#include <stddef.h>

int
cli_web(int argc, char **argv)
{
	struct conf *c;
	sigset_t set;
	int sig;

	if ((c = conf_load_report(conf_path_arg(argc, argv))) == NULL)
		return 1;
	log_set_level(c->log_level);
	/* Block before any thread starts so only sigwait() sees them. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (db_open(c, 0) == -1 || web_start(c) == -1) {
		conf_unref(c);
		return 1;
	}
	sigwait(&set, &sig);
	log_info("web: signal %d, stopping", sig);
	web_stop();
	cli_close_db(c);
	return 0;
}
