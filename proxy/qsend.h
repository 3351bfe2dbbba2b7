/*
 * qsend.h -- what leaves the quarantine through the backend MTA: a
 * released message, and the recipients' digests. The one place that joins
 * the quarantine's state (policy/quar.h: claim, finish) to the outbound
 * SMTP client (proxy/smtpc.h), so policy/ stays free of sockets and web/
 * and the CLI call one function.
 *
 * Release is exactly once: quar_claim() lets one caller through (held ->
 * releasing), smtpc_sendmail() delivers with the original envelope and an
 * X-Postern-Released header, quar_finish() marks it released (and learns
 * it as ham) only after the backend's final 2xx, else puts it back to held.
 *
 * Digests: qsend_digest() prepares a round (policy/digest.h), sends every
 * recipient's digest over one connection (envelope sender
 * quarantine.digest_from), and remembers the round per recipient: one
 * the backend took or refused for good (5xx: a mailbox that does not
 * exist) is never told of those messages again, one it did not take for
 * now (4xx) gets them listed again next round.
 *
 * Public calls: qsend_release(), qsend_digest().
 * Thread: any that may block (web threads, the CLI), never an I/O loop.
 * Privilege: the database through db/; connects to proxy.backend.
 */
#ifndef POSTERN_QSEND_H
#define POSTERN_QSEND_H

#include <stddef.h>
#include <time.h>

struct conf;

/* Deliver a held message to c->backend. 0 delivered and marked released,
 * 1 not found, 2 not held (released already or being released), -1 failed
 * (still held; err says why). */
int	 qsend_release(const struct conf *, const char *id, const char *who,
	    char *err, size_t errsz);

/* What a digest round did. */
struct qsend_digest_sum {
	int	 rcpts;			/* digests sent */
	int	 msgs;			/* distinct messages listed in them */
	int	 failed;		/* digests the backend did not take now (4xx) */
	int	 refused;		/* digests it refused for good (5xx) */
};

/* Send one round of digests at time now: 0 (sum filled; nothing to send
 * is 0 too), -1 with err (nothing remembered; the next round retries). */
int	 qsend_digest(const struct conf *, time_t now, struct qsend_digest_sum *sum,
	    char *err, size_t errsz);

#endif
