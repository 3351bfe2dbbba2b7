/*
 * serve.c -- `postern serve -c FILE`: run the gateway in the foreground
 * until SIGTERM (cli/daemon.h). Exit 0 after the drain, 1 when the
 * config has problems (each said on stderr) or the start failed (logged).
 */
#include "cli/cli.h"
#include "cli/daemon.h"
#include "lib/conf.h"

int
cli_serve(int argc, char **argv)
{
	const char *path = conf_path_arg(argc, argv);
	struct conf *c = conf_load_report(path);

	if (c == NULL)
		return 1;
	return daemon_serve(path, c);
}
