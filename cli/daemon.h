/*
 * daemon.h -- the gateway's lifecycle: start, run until SIGTERM, stop.
 *
 * daemon_serve() creates the spool directory, starts the policy (and with
 * it the database, the resolver and the rules), hands a database this
 * start created as root to proxy.user, starts TLS and the dashboard, binds
 * every proxy.listen address once per I/O thread (SO_REUSEPORT), drops to
 * proxy.user, starts the policy workers and one loop thread per I/O
 * thread (proxy/smtp.h), then waits for signals on the main thread:
 * SIGHUP reloads the config, SIGTERM (or SIGINT) drains the loops and
 * stops everything in the reverse order.
 * This is the one place that wires proxy/, policy/, db/ and web/
 * together; the SMTP session itself knows none of db/ or web/.
 * Privilege: binding port 25 needs root or CAP_NET_BIND_SERVICE; as root,
 * with proxy.user set, it drops to that user once the ports are bound.
 * Thread: the main thread, which it keeps until the process stops.
 */
#ifndef POSTERN_DAEMON_H
#define POSTERN_DAEMON_H

struct conf;

/* Run the gateway until SIGTERM drains it. conf_path is read again on
 * SIGHUP. Takes the conf reference. Returns the process exit code: 0
 * after a drain, 1 when it could not start (the reason logged). */
int	 daemon_serve(const char *conf_path, struct conf *);

#endif
