/*
 * learn.c -- `postern learn -c FILE spam|ham [--forget] FILE|DIR|MBOX...`:
 * train the classifier (policy/bayes.h) from files.
 *
 * A file holds one message, or several in mbox form (each after a
 * "From " line); a directory is read recursively in name order (a
 * Maildir's cur/ and new/), so that runs are repeatable. Each message is
 * learned once, by its digest: again as the other class moves it,
 * --forget removes it. On a terminal a progress line; at the end one line
 * with the counts and messages/s. Exit 0 when every file was read and
 * every message learned, 1 otherwise, 2 bad usage.
 * Privilege: reads the files it is given.
 */
#include "cli/cli.h"
#include "lib/conf.h"
#include "lib/util.h"
#include "policy/bayes.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Largest file read. */
#define LEARN_MAX_FILE	(64u << 20)
/* Directories below the ones given that are still read. */
#define LEARN_MAX_DEPTH	8

/* One run: the learner and the progress shown so far. */
struct learn {
	struct bayes_batch *b;
	uint64_t	 t0, shown;
	int		 tty;
};

static int	 learn_path(struct learn *, const char *path, int depth);
static int	 learn_file(struct learn *, const char *path);
static void	 learn_split(struct learn *, const char *, size_t);
static void	 learn_message(struct learn *, const char *, size_t);
static void	 learn_progress(struct learn *, int last);

static void
learn_message(struct learn *l, const char *msg, size_t len)
{
	if (bayes_batch_add(l->b, msg, len))
		learn_progress(l, 0);
}

static void
learn_progress(struct learn *l, int last)
{
	const struct bayes_batch_counts *n = bayes_batch_counts(l->b);
	uint64_t now = time_mono_ms();
	double secs = (double)(now - l->t0) / 1000.0;

	if (last) {
		if (l->tty)
			fputs("\r\033[K", stderr);
		fprintf(stderr, "postern learn: %lld messages: %lld changed (%lld moved from the"
		    " other class), %lld already so, %lld failed; %.1f s, %.0f messages/s\n",
		    n->seen, n->changed, n->moved, n->same, n->failed, secs,
		    secs > 0 ? (double)n->seen / secs : 0.0);
		return;
	}
	if (!l->tty || now - l->shown < 200)
		return;
	l->shown = now;
	fprintf(stderr, "\r\033[Klearning: %lld messages, %lld changed, %.0f/s", n->seen,
	    n->changed, secs > 0 ? (double)n->seen / secs : 0.0);
}

/* An mbox holds messages each starting with a "From " line; a single
 * message file does not (or has only the first). */
static void
learn_split(struct learn *l, const char *buf, size_t n)
{
	const char *p = buf, *end = buf + n, *next;

	if (n < 5 || memcmp(buf, "From ", 5) != 0) {
		learn_message(l, buf, n);
		return;
	}
	while (p < end) {
		next = p;
		for (;;) {
			const char *nl = memmem(next, (size_t)(end - next), "\nFrom ", 6);
			if (nl == NULL) {
				next = end;
				break;
			}
			next = nl + 1;
			break;
		}
		learn_message(l, p, (size_t)(next - p));
		p = next;
	}
}

static int
learn_file(struct learn *l, const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	size_t n;

	if (f == NULL) {
		fprintf(stderr, "postern learn: %s: %s\n", path, strerror(errno));
		return -1;
	}
	buf = xmalloc(LEARN_MAX_FILE + 1);
	n = fread(buf, 1, LEARN_MAX_FILE + 1, f);
	fclose(f);
	if (n > LEARN_MAX_FILE) {
		fprintf(stderr, "postern learn: %s: larger than %u bytes, skipped\n", path,
		    LEARN_MAX_FILE);
		free(buf);
		return -1;
	}
	learn_split(l, buf, n);
	free(buf);
	return 0;
}

/* A file, or a directory read recursively, in name order. */
static int
learn_path(struct learn *l, const char *path, int depth)
{
	struct dirent **ents;
	struct stat st;
	int n, rc = 0;

	if (stat(path, &st) == -1) {
		fprintf(stderr, "postern learn: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode))
		return S_ISREG(st.st_mode) ? learn_file(l, path) : 0;
	if (depth > LEARN_MAX_DEPTH || (n = scandir(path, &ents, NULL, alphasort)) == -1)
		return -1;
	for (int i = 0; i < n; i++) {
		if (ents[i]->d_name[0] != '.') {
			char *p = xasprintf("%s/%s", path, ents[i]->d_name);
			rc |= learn_path(l, p, depth + 1);
			free(p);
		}
		free(ents[i]);
	}
	free(ents);
	return rc;
}

int
cli_learn(int argc, char **argv)
{
	struct learn l = { 0 };
	const char *cpath = conf_path_arg(argc, argv), *cls = NULL;
	enum bayes_class k;
	struct conf *c;
	int forget = 0, first = 0, rc = 0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
			i++;
		else if (strcmp(argv[i], "--forget") == 0)
			forget = 1;
		else if (cls == NULL && argv[i][0] != '-')
			cls = argv[i];
		else if (argv[i][0] != '-' && first == 0)
			first = i;
	}
	if (cls == NULL || (strcmp(cls, "spam") != 0 && strcmp(cls, "ham") != 0) || first == 0) {
		fprintf(stderr, "usage: postern learn -c FILE spam|ham [--forget] FILE|DIR|MBOX...\n");
		return 2;
	}
	k = forget ? BAYES_FORGET : strcmp(cls, "spam") == 0 ? BAYES_LEARN_SPAM :
	    BAYES_LEARN_HAM;
	if ((c = cli_open_db(cpath)) == NULL)
		return 1;
	l.b = bayes_batch_new(c, k);
	l.tty = isatty(STDERR_FILENO);
	l.t0 = l.shown = time_mono_ms();
	for (int i = first; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0) {
			i++;
			continue;
		}
		if (strcmp(argv[i], "--forget") != 0)
			rc |= learn_path(&l, argv[i], 0);
	}
	rc |= bayes_batch_flush(l.b);
	learn_progress(&l, 1);
	rc = rc || bayes_batch_counts(l.b)->failed ? 1 : 0;
	bayes_batch_free(l.b);
	cli_close_db(c);
	return rc;
}
