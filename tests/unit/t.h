/*
 * t.h -- the smallest test harness that does the job: named, numbered
 * cases, a count at the end ("N passed, N failed"), exit 1 on any failure.
 * Usage: T_CASE(name) { ... T_ASSERT(cond); T_EQ_STR(a, b); } then
 * int main(void) { T_RUN(name); ...; return T_END(); }
 */
#ifndef POSTERN_T_H
#define POSTERN_T_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int t_passed, t_failed, t_case_failed, t_num;

#define T_CASE(name) static void t_##name(void)
#define T_ASSERT(c) do { if (!(c)) { t_case_failed = 1; \
	fprintf(stderr, "  %s:%d: assertion failed: %s\n", __FILE__, __LINE__, #c); } } while (0)
#define T_EQ_INT(a, b) do { long long _a = (a), _b = (b); if (_a != _b) { t_case_failed = 1; \
	fprintf(stderr, "  %s:%d: %s == %lld, expected %lld\n", __FILE__, __LINE__, #a, _a, _b); } } while (0)
#define T_EQ_STR(a, b) do { const char *_a = (a), *_b = (b); \
	if (_a == NULL || _b == NULL || strcmp(_a, _b) != 0) { t_case_failed = 1; \
	fprintf(stderr, "  %s:%d: %s == \"%s\", expected \"%s\"\n", __FILE__, __LINE__, #a, \
	    _a ? _a : "(null)", _b ? _b : "(null)"); } } while (0)
#define T_RUN(name) do { t_case_failed = 0; t_num++; t_##name(); \
	if (t_case_failed) { t_failed++; printf("not ok %d %s\n", t_num, #name); } \
	else { t_passed++; printf("ok %d %s\n", t_num, #name); } } while (0)
/* text written to a new file under /tmp; the caller unlinks and frees the
 * path. Aborts on failure: a test that cannot write /tmp tests nothing. */
static inline char *
t_write_tmp(const char *text)
{
	char *path = strdup("/tmp/postern-test-XXXXXX");
	int fd = path == NULL ? -1 : mkstemp(path);

	if (fd == -1 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		abort();
	close(fd);
	return path;
}

/* Remove a test's scratch directory and all in it: 0, or -1. */
static inline int
t_rm_rf(const char *dir)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

#define T_END() (printf("%d passed, %d failed\n", t_passed, t_failed), t_failed ? 1 : 0)

#endif
