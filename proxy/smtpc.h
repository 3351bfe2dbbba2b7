/*
 * smtpc.h -- the blocking SMTP client, for what Postern itself sends
 * through the backend MTA (quarantine releases, digests) and for the
 * backend probe. The session's own relaying stays on be.h's
 * non-blocking leg; both parse replies with be_reply_feed() and EHLO
 * keywords with be_ehlo_caps(), and find proxy.backend with
 * sockaddr_parse(SOCKADDR_NAMES).
 *
 * Plain submission as a client of our own: greeting, EHLO with
 * proxy.hostname, then per message MAIL, RCPT for each recipient (one the
 * backend refuses is left out), DATA and the dot-stuffed body (RFC 5321
 * 4.5.2) through spool_out, the same stream the session sends. No XCLIENT:
 * the backend sees Postern. BODY=8BITMIME and SMTPUTF8 go with MAIL when
 * the message or the envelope needs them and the backend offers them.
 *
 * Public calls: smtpc_open, smtpc_caps, smtpc_send, smtpc_refused, smtpc_close,
 *   smtpc_sendmail (open, send one message, close).
 * Ownership: smtpc_open() hands back a connection smtpc_close() frees;
 * a message's bytes stay the caller's.
 * Thread: any thread that may block (web, CLI, a probe thread), never an
 * I/O loop: every read and write waits up to the timeout given.
 * Exposure: the message bytes may be attacker-written; they are sent as
 * they are, dot-stuffed, never interpreted. Replies are bounded by lim.h.
 */
#ifndef POSTERN_SMTPC_H
#define POSTERN_SMTPC_H

#include <stddef.h>

struct conf;
struct pol_skip;
struct smtpc;

/* Per reply and per write (RFC 5321 4.5.3.2 suggests minutes; an admin
 * is waiting, so less). */
#define SMTPC_TIMEOUT_S	60

/* One message: the envelope, header lines of ours put first, and the
 * stored message (canonical CRLF) without its skip ranges (sorted). */
struct smtpc_msg {
	const char		*from;		/* "" for the null sender <> */
	const char *const	*rcpts;
	int			 nrcpts;
	const char		*prepend;	/* CRLF-ended lines, or NULL */
	const char		*data;
	size_t			 len;
	const struct pol_skip	*skip;
	int			 nskip;
};

/* Connect to backend (host:port, a name resolved), read the 220 and say
 * EHLO hostname. NULL with err on failure. */
struct smtpc	*smtpc_open(const char *backend, const char *hostname, int timeout_s,
		    char *err, size_t errsz);
/* BE_CAP_* bits of the EHLO reply. */
unsigned	 smtpc_caps(const struct smtpc *);
/* Send one message; more may follow on the same connection. 0 when the
 * backend took it (final 2xx) for at least one recipient; -1 with err
 * (the backend's reply where there was one). */
int		 smtpc_send(struct smtpc *, const struct smtpc_msg *, char *err,
		    size_t errsz);
/* After smtpc_send() failed: 1 when the backend refused the message for
 * good (a 5xx to MAIL, to every RCPT, to DATA or to its end), 0 when it
 * may take it later (4xx, connection lost). */
int		 smtpc_refused(const struct smtpc *);
/* QUIT (when the connection still stands) and free; NULL is fine. */
void		 smtpc_close(struct smtpc *);
/* smtpc_open(c->backend, c->hostname, SMTPC_TIMEOUT_S), smtpc_send,
 * smtpc_close: 0 or -1 with err. */
int		 smtpc_sendmail(const struct conf *c, const struct smtpc_msg *,
		    char *err, size_t errsz);

#endif
