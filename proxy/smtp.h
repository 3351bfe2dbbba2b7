/*
 * smtp.h -- the SMTP proxy: the I/O loops and the client sessions they run.
 *
 * A loop owns its sessions outright; a session talks to the client (server
 * side of RFC 5321 with PIPELINING, SIZE, 8BITMIME, SMTPUTF8,
 * ENHANCEDSTATUSCODES, DSN and STARTTLS), asks policy through the worker
 * pool, and relays to the backend through its be leg. The daemon
 * (cli/daemon.c) makes one loop per I/O thread, hands it its bound
 * listeners and runs it on its own thread; sockets, threads, signals and
 * privileges are the daemon's, never this module's.
 * Privilege: none of its own (the listeners arrive bound).
 * Thread: smtp_loop_run() on the loop's thread, which owns every session
 * of that loop; the other calls as each one says.
 */
#ifndef POSTERN_SMTP_H
#define POSTERN_SMTP_H

struct smtp_loop;

/* A loop with its event loop, its return queue from the policy workers
 * and its pool of idle backend legs; no listener yet. Main thread, before
 * work_init(). */
struct smtp_loop *smtp_loop_new(void);
/* Accept sessions on fd, a bound, listening, non-blocking socket (the
 * loop keeps it). Before smtp_loop_run(). 0, or -1 when the loop has
 * CONF_MAX_LISTEN listeners already. */
int	 smtp_loop_listen(struct smtp_loop *, int fd);
/* The loop thread's body: serve until drained, i.e. smtp_loop_drain() was
 * called, the listeners are closed and every session has ended (or
 * proxy.drain_timeout passed: the rest hear 421) and every policy job has
 * come back. */
void	 smtp_loop_run(struct smtp_loop *);
/* Start draining (SIGTERM): stop accepting, let sessions finish. Any
 * thread. */
void	 smtp_loop_drain(struct smtp_loop *);
/* After smtp_loop_run() returned and work_shutdown(). */
void	 smtp_loop_free(struct smtp_loop *);

/* Split one command line into verb and argument (RFC 5321 4.1.1: the verb
 * is followed by one space). Returns the command table index or -1 when
 * the verb is unknown; *arg points into line ("" when none). */
int	 smtp_parse_cmd(const char *line, const char **arg);

#endif
