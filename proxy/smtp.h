/*
 * smtp.h -- the SMTP proxy: listeners, I/O threads and client sessions.
 *
 * smtp_serve() binds every proxy.listen address once per I/O thread
 * (SO_REUSEPORT), starts the policy workers and the loops, then waits for
 * signals: SIGHUP reloads the config, SIGTERM (or SIGINT) drains and
 * returns 0. Each loop owns its sessions outright; a session talks to the
 * client (server side of RFC 5321 with PIPELINING, SIZE, 8BITMIME,
 * SMTPUTF8, ENHANCEDSTATUSCODES, DSN and STARTTLS), asks policy through
 * the worker pool, and relays to the backend through its be leg.
 * Privilege: binding port 25 needs root or CAP_NET_BIND_SERVICE.
 * Thread: smtp_serve() on the main thread; the rest inside.
 */
#ifndef POSTERN_SMTP_H
#define POSTERN_SMTP_H

struct conf;

/* Run the gateway until SIGTERM drains it. Takes the conf reference.
 * Returns the process exit code. */
int	 smtp_serve(const char *conf_path, struct conf *);

/* Split one command line into verb and argument (RFC 5321 4.1.1: the verb
 * is followed by one space). Returns the command table index or -1 when
 * the verb is unknown; *arg points into line ("" when none). */
int	 smtp_parse_cmd(const char *line, const char **arg);

#endif
