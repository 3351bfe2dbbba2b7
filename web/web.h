/*
 * web.h -- the dashboard and the HTTP API: libmicrohttpd serving the JSON
 * API of CONTRACT.md, /metrics, /healthz and the static dashboard embedded
 * in the binary at build time.
 *
 * Exposure: this is the one door admins walk through, so it assumes the
 * network is hostile even on loopback: every path but /healthz, the
 * static login page and /digest/ (a signed, expiring link is its own
 * authority: web/dpage.c) needs a session cookie or the bearer token; state
 * changes from a cookie session need the session's CSRF token; every
 * response carries a strict Content-Security-Policy; message text is only
 * ever JSON-encoded here and inserted with textContent by the front-end.
 *
 * Public calls: web_start, web_stop (from daemon_serve, and from `postern
 *   web`, which serves the dashboard alone).
 * Thread: web_start/web_stop from the main thread. Requests run on
 *   libmicrohttpd's threads; they read the database (db_ readers) and
 *   stats_ counters and never touch a session.
 * Privilege: binds web.listen (unprivileged port by default); reads the
 *   TLS key file once at start.
 */
#ifndef POSTERN_WEB_H
#define POSTERN_WEB_H

struct conf;

/* Listen on c->web_listen (HTTPS when web.tls_cert/tls_key are set) and
 * serve until web_stop(); an empty web.listen means no dashboard (0).
 * Keeps its own reference to c. 0, or -1 logged. */
int	 web_start(struct conf *c);
void	 web_stop(void);

#endif
