/*
 * wconn.h -- the dashboard's connections and their whole-request deadline.
 *
 * libmicrohttpd's connection timeout is an idle timeout that every byte
 * resets: a client trickling a byte every few seconds would hold its
 * connection forever, and a few hundred of them lock the dashboard up. So
 * every connection is tracked here from accept (MHD_OPTION_NOTIFY_CONNECTION)
 * and has web.request_timeout to deliver a whole request, headers and body
 * (and, over HTTPS, the handshake before them). The clock stops when the
 * request is complete and starts again once the answer has been sent, so a
 * keep-alive connection gets the same bound for each request and for the
 * wait before it.
 *
 * A sweep thread wakes once a second and shutdown()s the socket of every
 * connection past its deadline. libmicrohttpd then reads the end of the
 * stream and closes the connection its own way. Its CLOSED notice comes
 * before it closes the descriptor, and the entry leaves our list there under
 * our mutex, so the sweep never touches a descriptor number that has been
 * reused.
 *
 * libmicrohttpd's own messages come here too (wconn_log): it says "Server
 * reached connection limit" once per refused connection, so a flood from
 * one address would flood the log. A message repeating the previous one
 * within WCONN_LOG_QUIET of its last line is only counted, and the sweep
 * logs the count when that time is up: one line per WCONN_LOG_QUIET at
 * most, however long the flood.
 *
 * Public calls: wconn_start, wconn_stop, wconn_notify (the
 *   MHD_OPTION_NOTIFY_CONNECTION callback), wconn_log (the
 *   MHD_OPTION_EXTERNAL_LOGGER callback), wconn_received, wconn_answered,
 *   wconn_peer.
 * Clock: time_mono_ms() plus the test clock's offset (time_test_offset()),
 *   so tests move deadlines without sleeping.
 * Ownership: one entry per connection, ours, kept in libmicrohttpd's socket
 *   context from STARTED to CLOSED.
 * Thread: the callbacks run on libmicrohttpd's threads, the sweep on its
 *   own; one mutex guards the list, another the message counter.
 */
#ifndef POSTERN_WCONN_H
#define POSTERN_WCONN_H

#include <stdarg.h>
#include <stddef.h>
#include <sys/socket.h>

#include <microhttpd.h>

#define WCONN_SWEEP_MS	1000	/* how often deadlines are checked */
#define WCONN_LOG_QUIET	10000	/* ms a repeated library message is only counted */

/* Start the sweep with this deadline (seconds). 0, or -1 logged. */
int	 wconn_start(long long timeout_s);
/* Stop the sweep (before MHD_stop_daemon, which then closes what is left). */
void	 wconn_stop(void);
void	 wconn_notify(void *cls, struct MHD_Connection *, void **socket_context,
	    enum MHD_ConnectionNotificationCode);
void	 wconn_log(void *cls, const char *fmt, va_list ap);
/* The peer's address as text in ip ("unknown" and NULL when it is not
 * IPv4 or IPv6); the sockaddr lives as long as the connection. */
const struct sockaddr *wconn_peer(struct MHD_Connection *, char *ip, size_t ipsz);
/* The request on this connection is complete: its clock stops. */
void	 wconn_received(struct MHD_Connection *);
/* Its answer is sent: the next request's clock starts now. */
void	 wconn_answered(struct MHD_Connection *);

#endif
