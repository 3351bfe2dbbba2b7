/*
 * learn_writer.c -- what a learn queued to the daemon's writer costs
 * (autolearn's path): the messages of DIR queued as ham one by one,
 * PACE_MS apart, to a writer on a copy of a learned database; CPU per
 * learn, tokenising included, once the last is written.
 *
 *   build/bench/learn_writer DB DIR COUNT PACE_MS
 *
 * DB is written: give it a copy (e.g. of a database `postern learn` filled
 * from the training corpus). PACE_MS 0 queues them all at once.
 */
#include "db/db.h"
#include "lib/conf.h"
#include "lib/util.h"
#include "policy/bayes.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#define LW_MAX_MSG	(1 << 20)

static double
lw_cpu(void)
{
	struct rusage u;

	getrusage(RUSAGE_SELF, &u);
	return (double)(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
	    (double)(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

/* Queue path's message as ham; 1 when it was queued. */
static int
lw_queue(const struct conf *c, const char *path)
{
	static char buf[LW_MAX_MSG];
	FILE *f = fopen(path, "rb");
	size_t len;

	if (f == NULL)
		return 0;
	len = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	return bayes_learn_queue(c, buf, len, BAYES_LEARN_HAM) == 0;
}

int
main(int argc, char **argv)
{
	struct conf *c;
	struct dirent *e;
	DIR *d;
	int n = 0, max, pace;
	double t0;

	if (argc != 5)
		fatalx("usage: learn_writer DB DIR COUNT PACE_MS");
	max = atoi(argv[3]);
	pace = atoi(argv[4]);
	c = conf_defaults();
	free(c->db_path);
	c->db_path = xstrdup(argv[1]);
	log_set_level(LOG_LVL_ERR);
	if (db_open(c, 1) != 0 || (d = opendir(argv[2])) == NULL)
		fatalx("cannot open %s or %s", argv[1], argv[2]);
	t0 = lw_cpu();
	while ((e = readdir(d)) != NULL && n < max) {
		char path[4096];
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", argv[2], e->d_name);
		n += lw_queue(c, path);
		if (pace > 0)
			usleep((useconds_t)pace * 1000);
	}
	closedir(d);
	if (db_flush(60000) != 0)
		fatalx("the writer did not finish");
	printf("%d learns queued %d ms apart: %.1f ms of CPU each\n", n, pace,
	    1000 * (lw_cpu() - t0) / (n ? n : 1));
	db_close();
	conf_unref(c);
	return 0;
}
