/*
 * util.h -- allocation, logging, time and small string helpers shared by
 * every module of Postern.
 *
 * Allocation does not fail: x*() abort on OOM, so callers check nothing.
 * Logging is one line per event on stderr (and syslog when enabled); client
 * supplied text must go through log_escape() first.
 * Thread: all calls are thread-safe.
 */
#ifndef POSTERN_UTIL_H
#define POSTERN_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

void	*xmalloc(size_t);
void	*xcalloc(size_t, size_t);
void	*xrealloc(void *, size_t);
char	*xstrdup(const char *);
char	*xstrndup(const char *, size_t);
char	*xasprintf(const char *, ...) __attribute__((format(printf, 1, 2)));

enum log_level { LOG_LVL_ERR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

void	 log_init(const char *ident, int use_syslog);
void	 log_set_level(enum log_level);
int	 log_level_parse(const char *, enum log_level *);
void	 log_err(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
int	 log_debug_enabled(void);
int	 log_info_enabled(void);	/* for lines costly to put together */
/* Keep this thread's log lines back, for work that may be undone (the
 * policy's speculative runs, policy/policy.c), until log_release():
 * written then, in order, with the time they were made (keep), or
 * dropped. */
void	 log_hold(void);
void	 log_release(int keep);
/* Escape client text for a log line: non-printables as \xNN, cut to 100
 * chars with "...". Writes into buf (at least LOG_ESCAPE_MAX bytes). */
#define LOG_ESCAPE_MAX 420
const char *log_escape(const char *s, size_t len, char *buf);

/* A bug in our own code: log and abort. */
void	 fatalx(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));
/* A system call failed where we cannot go on: log with errno and exit 1. */
void	 fatal(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Monotonic milliseconds, for timeouts and durations. */
uint64_t time_mono_ms(void);
/* ts = now on clock plus ms: the deadline pthread_cond_timedwait() wants
 * (CLOCK_MONOTONIC needs a condvar made with pthread_condattr_setclock). */
void	 time_deadline_ts(clockid_t clock, uint64_t ms, struct timespec *ts);
/* Wall clock in seconds. Tests control it: when the environment variable
 * POSTERN_CLOCK_FILE names a file holding an integer, that many seconds are
 * added to the real clock (greylisting and expiry tests, no sleeping). */
time_t	 time_wall(void);
/* The seconds POSTERN_CLOCK_FILE adds (0 without it): tests move deadlines
 * kept on the monotonic clock with it too. */
long long time_test_offset(void);

/* Session/queue ids in the style of Postfix: 12 upper-case hex digits. */
#define ID_LEN 12
void	 id_new(char out[ID_LEN + 1]);

/* mkdir -p: create dir and its missing parents; 0 or -1 with errno. */
int	 mkdir_p(const char *dir, int mode);
/* The whole file at path ("-": stdin) in *buf (xmalloc'd, NUL-terminated;
 * *len leaves the NUL out). A read error ends the file early. 0, or -1
 * with errno when it cannot be opened. */
int	 file_read(const char *path, char **buf, size_t *len);

/* Least privilege (STYLE 14): become user (and its groups) for good, for
 * every thread. Then check that each of the NULL-terminated paths (files or
 * directories that must stay writable) is; 0, or -1 with the reason logged
 * naming the path and the fix. */
int	 priv_drop(const char *user, const char *const *writable);

/* Duration and size parsing for config values ("300", "5m", "2d", "10M"). */
int	 parse_seconds(const char *, long long *);
int	 parse_bytes(const char *, long long *);

#endif
