/*
 * corpus.h -- reading a labelled corpus as ../shared/corpus/get-train.py
 * writes it (labels.tsv: id, group, class, label; messages/ID.eml), for
 * the benchmarks that go over one (bayes_cv.c, btok_dump.c). Header-only:
 * each bench is one file linked with libpostern.a.
 */
#ifndef POSTERN_BENCH_CORPUS_H
#define POSTERN_BENCH_CORPUS_H

#include "lib/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One line of labels.tsv, cut in place: 1 with *id and *spam set, 0 for
 * the heading or a line without a label. */
static inline int
corpus_label(char *line, char **id, int *spam)
{
	char *label;

	*id = strtok(line, "\t");
	strtok(NULL, "\t");
	strtok(NULL, "\t");
	label = strtok(NULL, "\t\n");
	if (*id == NULL || label == NULL || strcmp(*id, "id") == 0)
		return 0;
	*spam = strcmp(label, "spam") == 0;
	return 1;
}

/* A message file's bytes with every bare LF made CRLF, as the proxy hands
 * a message to the policy (xmalloc'd), or NULL. */
static inline char *
corpus_read(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	size_t cap = 1 << 16, n = 0, r;
	char *b, *out;

	if (f == NULL)
		return NULL;
	b = xmalloc(cap);
	while ((r = fread(b + n, 1, cap - n, f)) > 0)
		if ((n += r) == cap)
			b = xrealloc(b, cap *= 2);
	fclose(f);
	out = xmalloc(2 * n + 1);
	*len = 0;
	for (size_t i = 0; i < n; i++) {
		if (b[i] == '\n' && (i == 0 || b[i - 1] != '\r'))
			out[(*len)++] = '\r';
		out[(*len)++] = b[i];
	}
	free(b);
	return out;
}

#endif
