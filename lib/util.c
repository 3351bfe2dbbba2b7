/*
 * util.c -- see util.h. Nothing here keeps state but the log settings and
 * the id counter, both set once at start or updated atomically, and the
 * log lines a thread holds back (log_hold), its own.
 */
#include "lib/util.h"
#include "lib/buf.h"
#include "lib/lim.h"

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

static void	 log_emit(enum log_level, const char *, size_t, const char *);
static void	 log_vwrite(enum log_level, const char *, va_list);

static _Atomic int	 log_lvl = LOG_LVL_INFO;
static int		 log_syslog;
/* log_hold(): this thread's lines kept back until log_release(). */
static _Thread_local struct {
	int		 on;
	struct buf	 b;
} log_held;
static const char	*log_ident = "postern";

void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		fatalx("out of memory (%zu bytes)", n);
	return p;
}

void *
xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n ? n : 1, sz ? sz : 1);

	if (p == NULL)
		fatalx("out of memory (%zu x %zu bytes)", n, sz);
	return p;
}

void *
xrealloc(void *old, size_t n)
{
	void *p = realloc(old, n ? n : 1);

	if (p == NULL)
		fatalx("out of memory (%zu bytes)", n);
	return p;
}

char *
xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *
xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *
xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *p;

	va_start(ap, fmt);
	if (vasprintf(&p, fmt, ap) == -1)
		fatalx("out of memory (asprintf)");
	va_end(ap);
	return p;
}

void
log_init(const char *ident, int use_syslog)
{
	log_ident = ident;
	log_syslog = use_syslog;
	if (use_syslog)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void
log_set_level(enum log_level l)
{
	log_lvl = l;
}

int
log_level_parse(const char *s, enum log_level *out)
{
	static const char *names[] = { "error", "warning", "info", "debug" };

	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (strcmp(s, names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	return -1;
}

int
log_debug_enabled(void)
{
	return log_lvl >= LOG_LVL_DEBUG;
}

int
log_info_enabled(void)
{
	return log_lvl >= LOG_LVL_INFO;
}

static const char *log_tag[] = { "error: ", "warning: ", "", "debug: " };

/* One finished line out: stderr (one write(2), so lines from several
 * threads never mix) and syslog. */
static void
log_emit(enum log_level l, const char *out, size_t n, const char *line)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };

	if (write(STDERR_FILENO, out, n) == -1) {
		/* nowhere left to report it */
	}
	if (log_syslog)
		syslog(prio[l], "%s%s", log_tag[l], line);
}

static void
log_vwrite(enum log_level l, const char *fmt, va_list ap)
{
	char line[2048], ts[32], out[2200];
	struct timespec now;
	struct tm tm;
	int n;

	if ((int)l > log_lvl)
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	n = snprintf(out, sizeof(out), "%s.%03ldZ %s[%d]: %s%s\n", ts,
	    now.tv_nsec / 1000000, log_ident, (int)getpid(), log_tag[l], line);
	if (n >= (int)sizeof(out))
		n = sizeof(out) - 1;
	if (!log_held.on) {
		log_emit(l, out, (size_t)n, line);
		return;
	}
	buf_addc(&log_held.b, (char)l);		/* level, line out, syslog's */
	buf_add(&log_held.b, out, (size_t)n + 1);
	buf_add(&log_held.b, line, strlen(line) + 1);
}

void
log_hold(void)
{
	log_held.on = 1;
}

void
log_release(int keep)
{
	const char *p = log_held.b.data, *end = p;

	if (keep && p != NULL) {
		p += log_held.b.off;
		end = p + log_held.b.len;
	}
	while (p < end) {
		enum log_level l = (enum log_level)*p++;
		const char *out = p, *line = out + strlen(out) + 1;
		log_emit(l, out, strlen(out), line);
		p = line + strlen(line) + 1;
	}
	buf_free(&log_held.b);
	log_held.on = 0;
}

#define LOG_FN(name, lvl)					\
void								\
name(const char *fmt, ...)					\
{								\
	va_list ap;						\
	va_start(ap, fmt);					\
	log_vwrite(lvl, fmt, ap);				\
	va_end(ap);						\
}
LOG_FN(log_err, LOG_LVL_ERR)
LOG_FN(log_warn, LOG_LVL_WARN)
LOG_FN(log_info, LOG_LVL_INFO)
LOG_FN(log_debug, LOG_LVL_DEBUG)

const char *
log_escape(const char *s, size_t len, char *buf)
{
	size_t o = 0, i;

	for (i = 0; i < len && i < 100; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c < 0x7f && c != '\\')
			buf[o++] = (char)c;
		else
			o += (size_t)sprintf(buf + o, "\\x%02x", c);
	}
	if (i < len) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
	return buf;
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LVL_ERR, fmt, ap);
	va_end(ap);
	abort();
}

void
fatal(const char *fmt, ...)
{
	char msg[1024];
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_err("fatal: %s: %s", msg, strerror(saved));
	exit(1);
}

uint64_t
time_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

long long
time_test_offset(void)
{
	const char *path = getenv("POSTERN_CLOCK_FILE");
	long long off = 0;
	FILE *f;

	if (path == NULL || (f = fopen(path, "r")) == NULL)
		return 0;
	if (fscanf(f, "%lld", &off) != 1)
		off = 0;
	fclose(f);
	return off;
}

void
time_deadline_ts(clockid_t clock, uint64_t ms, struct timespec *ts)
{
	clock_gettime(clock, ts);
	ts->tv_sec += (time_t)(ms / 1000);
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

time_t
time_wall(void)
{
	return time(NULL) + (time_t)time_test_offset();
}

void
id_new(char out[ID_LEN + 1])
{
	static _Atomic uint32_t counter;
	struct timespec ts;
	uint64_t v;

	clock_gettime(CLOCK_REALTIME, &ts);
	/* 28 bits of microseconds-in-time, 20 bits of counter: unique per
	 * process for a million sessions a second. */
	v = ((uint64_t)(ts.tv_sec * 1000000 + ts.tv_nsec / 1000) & 0xfffffff) << 20;
	v |= atomic_fetch_add(&counter, 1) & 0xfffff;
	snprintf(out, ID_LEN + 1, "%012llX", (unsigned long long)v);
}

static int
parse_scaled(const char *s, long long *out, const char *units,
    const long long *mult)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s || v < 0)
		return -1;
	if (*end != '\0') {
		const char *u = strchr(units, tolower((unsigned char)*end));
		if (u == NULL || end[1] != '\0' || v > LLONG_MAX / mult[u - units])
			return -1;	/* the product would overflow */
		v *= mult[u - units];
	}
	*out = v;
	return 0;
}

int
parse_seconds(const char *s, long long *out)
{
	static const long long m[] = { 1, 60, 3600, 86400, 604800 };

	return parse_scaled(s, out, "smhdw", m);
}

int
parse_bytes(const char *s, long long *out)
{
	static const long long m[] = { 1, 1024, 1048576, 1073741824LL };

	return parse_scaled(s, out, "bkmg", m);
}

int
priv_drop(const char *user, const char *const *writable)
{
	struct passwd *pw = getpwnam(user);

	if (pw == NULL) {
		log_err("proxy.user: no user '%s'; create it (adduser --system %s) "
		    "or leave proxy.user empty", user, user);
		return -1;
	}
	/* glibc applies set*id to every thread of the process. */
	if (initgroups(pw->pw_name, pw->pw_gid) == -1 || setgid(pw->pw_gid) == -1 ||
	    setuid(pw->pw_uid) == -1) {
		log_err("proxy.user: cannot become %s: %s (start Postern as root)",
		    user, strerror(errno));
		return -1;
	}
	if (setuid(0) != -1 && pw->pw_uid != 0) {
		log_err("proxy.user: root could be regained after dropping to %s", user);
		return -1;
	}
	for (int i = 0; writable[i] != NULL; i++)
		if (access(writable[i], W_OK) == -1) {
			log_err("proxy.user: %s is not writable by %s: %s; "
			    "chown %s %s", writable[i], user, strerror(errno), user,
			    writable[i]);
			return -1;
		}
	log_info("serve: running as %s (uid %d)", user, (int)pw->pw_uid);
	return 0;
}

int
mkdir_p(const char *dir, int mode)
{
	char *p = xstrdup(dir);
	int rc = 0;

	for (char *s = p + 1; rc == 0 && *s != '\0'; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, (mode_t)mode) == -1 && errno != EEXIST)
			rc = -1;
		*s = '/';
	}
	if (rc == 0 && mkdir(p, (mode_t)mode) == -1 && errno != EEXIST)
		rc = -1;
	free(p);
	return rc;
}

int
file_read(const char *path, char **buf, size_t *len)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	struct buf b = { 0 };
	size_t r;

	if (f == NULL)
		return -1;
	while ((r = fread(buf_space(&b, LIM_IO_CHUNK), 1, LIM_IO_CHUNK, f)) > 0)
		buf_commit(&b, r);
	if (f != stdin)
		fclose(f);
	*len = b.len;
	*buf = buf_take(&b);
	return 0;
}
