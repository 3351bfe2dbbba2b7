/*
 * daemon.c -- the gateway's lifecycle (see daemon.h): start in order, wait
 * for signals, stop in the reverse order.
 *
 * Public call: daemon_serve().
 * Ownership: the I/O loops (struct smtp_loop, one per thread) and their
 * threads; the listening sockets are handed to the loops.
 * Thread: the main thread only; it starts the loop threads and joins them.
 * Signals: SIGHUP, SIGTERM and SIGINT are blocked before any module starts
 * a thread, so every thread inherits the mask and only the main thread
 * takes them, in sigwait(); SIGPIPE is ignored (writes say EPIPE).
 */
#include "cli/daemon.h"
#include "db/db.h"
#include "lib/conf.h"
#include "lib/sockaddr.h"
#include "lib/util.h"
#include "policy/policy.h"
#include "policy/rate.h"
#include "policy/rblhealth.h"
#include "proxy/be.h"
#include "proxy/dsched.h"
#include "proxy/smtp.h"
#include "proxy/tls.h"
#include "proxy/work.h"
#include "web/web.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* One I/O thread and the loop it runs. */
struct daemon_io {
	struct smtp_loop *loop;
	pthread_t	 thread;
};

static int	 daemon_listen_one(const char *);
static int	 daemon_listen(struct smtp_loop *, const char *);
static void	*daemon_io_main(void *);
static void	 daemon_reload(const char *);
static int	 daemon_chown_db(const struct conf *);
static int	 daemon_drop_privileges(const struct conf *);
static int	 daemon_start(struct conf *, struct daemon_io *, int);
static void	 daemon_wait_signals(const char *, const sigset_t *);
static void	 daemon_stop(struct daemon_io *, int);

/* One listening socket with SO_REUSEPORT; fd or -1 (logged). */
static int
daemon_listen_one(const char *hp)
{
	int fd, one = 1;
	struct sockaddr_storage ss;
	socklen_t len;

	if (sockaddr_parse(hp, 0, &ss, &len) == -1) {
		log_err("proxy.listen: %s is not IP:port", hp);
		return -1;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == -1 ||
	    /* accepted sockets inherit it (Linux): no setsockopt per client */
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == -1 ||
	    (ss.ss_family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) == -1) ||
	    bind(fd, (struct sockaddr *)&ss, len) == -1 || listen(fd, 1024) == -1) {
		log_err("proxy.listen: %s: %s", hp, strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	return fd;
}

/* Bind every address of the list for one loop; 0 or -1. */
static int
daemon_listen(struct smtp_loop *l, const char *list)
{
	char *copy = xstrdup(list), *save = NULL;

	for (char *hp = strtok_r(copy, ", ", &save); hp; hp = strtok_r(NULL, ", ", &save)) {
		int fd = daemon_listen_one(hp);
		if (fd == -1 || smtp_loop_listen(l, fd) == -1) {
			if (fd != -1)
				close(fd);
			free(copy);
			return -1;
		}
	}
	free(copy);
	return 0;
}

static void *
daemon_io_main(void *arg)
{
	pthread_setname_np(pthread_self(), "postern-io");
	smtp_loop_run(arg);
	return NULL;
}

/* SIGHUP: a new config for new sessions, or the old one and each problem. */
static void
daemon_reload(const char *path)
{
	struct conf_err *errs;
	struct conf *c, *old;
	char keys[400];
	int n;

	if ((c = conf_load(path, &errs, &n)) == NULL) {
		for (int i = 0; i < n; i++)
			log_err("reload: %s", errs[i].msg);
		log_err("reload: keeping the running configuration");
		free(errs);
		return;
	}
	old = conf_current();
	if ((n = conf_restart_keys(old, c, keys, sizeof(keys))) > 0)
		log_warn("reload: restart needed: %s changed, and %s read at start "
		    "only; the running value%s stay%s until a restart", keys,
		    n == 1 ? "is" : "are", n == 1 ? "" : "s", n == 1 ? "s" : "");
	conf_unref(old);
	tls_reload(c);
	log_set_level((enum log_level)c->log_level);
	pol_reload(c);
	conf_swap(c);
	log_info("reload: configuration %s loaded; new sessions use it", path);
	be_probe(c);
}

/* Give the database files just created to proxy.user. */
static int
daemon_chown_db(const struct conf *c)
{
	static const char *suffix[] = { "", "-wal", "-shm" };
	struct passwd *pw = getpwnam(c->user);

	if (pw == NULL)
		return 0;	/* priv_drop() reports it */
	for (size_t i = 0; i < ARRAY_SIZE(suffix); i++) {
		char *p = xasprintf("%s%s", c->db_path, suffix[i]);
		int rc = chown(p, pw->pw_uid, pw->pw_gid);
		if (rc == -1 && errno != ENOENT) {
			log_err("serve: cannot give %s to %s: %s", p, c->user, strerror(errno));
			free(p);
			return -1;
		}
		free(p);
	}
	return 0;
}

/* Ports are bound: become proxy.user. What must stay writable is the
 * spool and the database (its directory too: SQLite makes -wal and -shm
 * files, and readers open their own connections later). */
static int
daemon_drop_privileges(const struct conf *c)
{
	char *dbdir = xstrdup(c->db_path), *slash = strrchr(dbdir, '/');
	const char *paths[] = { c->spool_dir, c->db_path, dbdir, NULL };
	int rc;

	if (slash == NULL)
		strcpy(dbdir, ".");
	else if (slash == dbdir)
		slash[1] = '\0';
	else
		*slash = '\0';
	rc = priv_drop(c->user, paths);
	free(dbdir);
	return rc;
}

/* Modules, listeners, workers, loops; 0, or -1 with the reason logged. */
static int
daemon_start(struct conf *c, struct daemon_io *io, int nthreads)
{
	if (mkdir_p(c->spool_dir, 0700) == -1) {
		log_err("serve: cannot create proxy.spool_dir %s: %s", c->spool_dir,
		    strerror(errno));
		return -1;
	}
	/* A database this start creates as root is handed to proxy.user; one
	 * that exists keeps its owner (the writability check names the fix). */
	int fresh_db = *c->user != '\0' && access(c->db_path, F_OK) == -1;
	if (pol_init(c) == -1) {
		log_err("serve: policy initialisation failed");
		return -1;
	}
	if (fresh_db && daemon_chown_db(c) == -1) {
		pol_shutdown();
		return -1;
	}
	if (tls_init(c) == -1) {
		pol_shutdown();
		return -1;
	}
	/* The dashboard is not on the mail path: mail flows without it. */
	if (web_start(c) == -1)
		log_err("serve: no dashboard (see above); SMTP goes on without it");
	rblh_start();		/* DNS list probes, off the SMTP path */
	rate_sync_start();	/* the cluster's rate counts, off the SMTP path */
	dsched_start();		/* quarantine digests, off the SMTP path */
	for (int i = 0; i < nthreads; i++) {
		io[i].loop = smtp_loop_new();
		if (daemon_listen(io[i].loop, c->listen) == -1) {
			log_err("serve: cannot listen on %s", c->listen);
			return -1;	/* exiting: the rest goes with the process */
		}
	}
	if (*c->user != '\0' && daemon_drop_privileges(c) == -1)
		return -1;
	work_init(c->workers > 0 ? c->workers : 1);
	for (int i = 0; i < nthreads; i++)
		if ((errno = pthread_create(&io[i].thread, NULL, daemon_io_main, io[i].loop)) != 0)
			fatal("pthread_create");
	log_info("serve: listening on %s, backend %s, %d I/O threads, %d policy workers%s",
	    c->listen, c->backend, nthreads, c->workers, tls_enabled() ? ", STARTTLS" : "");
	be_probe(c);
	return 0;
}

/* The main thread's job: signals. Returns at SIGTERM or SIGINT. */
static void
daemon_wait_signals(const char *path, const sigset_t *set)
{
	int sig;

	for (;;) {
		if (sigwait(set, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			daemon_reload(path);
			continue;
		}
		log_info("serve: signal %d: draining sessions", sig);
		return;
	}
}

/* Drain the loops (they close their listeners and wait for sessions up
 * to proxy.drain_timeout), then stop everything else. */
static void
daemon_stop(struct daemon_io *io, int nthreads)
{
	for (int i = 0; i < nthreads; i++)
		smtp_loop_drain(io[i].loop);
	for (int i = 0; i < nthreads; i++)
		pthread_join(io[i].thread, NULL);
	web_stop();
	dsched_stop();
	work_shutdown();
	for (int i = 0; i < nthreads; i++)
		smtp_loop_free(io[i].loop);
	tls_shutdown();
	rblh_stop();
	rate_sync_stop();
	pol_shutdown();
}

int
daemon_serve(const char *path, struct conf *c)
{
	struct daemon_io *io;
	sigset_t set;
	int nthreads = c->threads > 0 ? c->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);

	if (nthreads < 1)
		nthreads = 1;
	/* Before any module starts a thread (resolver, db writer, web). */
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	log_set_level((enum log_level)c->log_level);
	conf_swap(conf_ref(c));
	io = xcalloc((size_t)nthreads, sizeof(*io));
	if (daemon_start(c, io, nthreads) == -1) {
		conf_unref(c);
		return 1;
	}
	daemon_wait_signals(path, &set);
	daemon_stop(io, nthreads);
	free(io);
	conf_unref(c);
	log_info("serve: stopped");
	return 0;
}
