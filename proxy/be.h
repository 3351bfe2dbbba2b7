/*
 * be.h -- the backend leg: one SMTP client connection to the real MTA per
 * session, driven in lockstep (one command, one reply).
 *
 * be_open() connects, reads the greeting, says EHLO and introduces the real
 * client with XCLIENT (then reads the new 220 and greets again, as Postfix
 * requires, with the client's own EHLO or HELO) or XFORWARD when the
 * backend offers them. Commands and
 * the message body then go one at a time; every reply comes back through
 * the owner's callback with the backend's code and full text, so the
 * session can pass it on verbatim. The connection is kept for the next
 * transaction of the session, and after the session for the next one
 * (be_pool_*).
 * Ownership: the session owns its be. A be never touches itself after it
 * called the callback, so the owner may close it from inside.
 * Thread: the owning loop's.
 */
#ifndef POSTERN_BE_H
#define POSTERN_BE_H

#include "lib/buf.h"
#include "lib/lim.h"

#include <stddef.h>
#include <stdint.h>

struct conf;
struct ev_loop;
struct spool_out;
struct be;

#define BE_CAP_PIPELINING	0x001u
#define BE_CAP_SIZE		0x002u
#define BE_CAP_8BITMIME		0x004u
#define BE_CAP_SMTPUTF8		0x008u
#define BE_CAP_DSN		0x010u
#define BE_CAP_XCLIENT		0x020u
#define BE_CAP_XFORWARD		0x040u
#define BE_CAP_ENHANCED		0x080u
#define BE_CAP_STARTTLS		0x100u

/* A multiline reply being read (RFC 5321 4.2.1). */
struct be_reply {
	int	 code;
	int	 nlines;
	struct buf text;	/* the lines as sent, each ending CRLF */
};

/* Add one reply line (no CRLF). 1: reply complete; 0: more lines follow;
 * -1: not a reply line, codes differ, or over the RFC bounds. */
int	 be_reply_feed(struct be_reply *, const char *, size_t);
void	 be_reply_clear(struct be_reply *);
/* EHLO reply -> BE_CAP_* bits; XCLIENT/XFORWARD attributes into *xattrs
 * (BE_XA_* bits). */
#define BE_XA_NAME	0x01u
#define BE_XA_ADDR	0x02u
#define BE_XA_PORT	0x04u
#define BE_XA_PROTO	0x08u
#define BE_XA_HELO	0x10u
#define BE_XA_LOGIN	0x20u
#define BE_XA_DESTADDR	0x40u
#define BE_XA_DESTPORT	0x80u
unsigned be_ehlo_caps(const char *text, unsigned *xclient, unsigned *xforward);
/* RFC 3461 4 xtext, as XCLIENT/XFORWARD values need: into out (size sz). */
void	 be_xtext(const char *, char *out, size_t sz);

/* Who the real client is, for XCLIENT/XFORWARD. */
struct be_client {
	const char	*addr;		/* IP as text */
	int		 v6;
	int		 port;
	const char	*helo;
	const char	*name;		/* verified name; NULL or "unknown": none */
	int		 esmtp;		/* said EHLO (else HELO) */
	const char	*dest;		/* the address it connected to; NULL: unknown */
	int		 dest_v6;
	int		 dest_port;
};

/* code: the backend's reply code; -1 when the leg failed (text says why,
 * no CRLF). text/len: the whole reply. */
typedef void	 be_cb(void *arg, int code, const char *text, size_t len);

struct be	*be_new(struct ev_loop *, const struct conf *, const char *sid,
		    be_cb *, void *arg);
/* Connect and greet; the callback gets 250 when ready, -1 on failure.
 * On a leg from the pool (already ready): only introduce the client.
 * The backend must accept the introduction: a refused XCLIENT/XFORWARD
 * is retried on a fresh connection (a pooled leg's identity is stale;
 * a refused NAME goes again as [UNAVAILABLE]), and else reports -1, so
 * no session runs on an identity the backend did not take. After
 * XCLIENT the new greeting carries the client's own HELO/EHLO. */
void		 be_open(struct be *, const struct be_client *);
int		 be_ready(const struct be *);	/* open and idle; 0 for NULL */
int		 be_alive(const struct be *);	/* open (busy or idle); 0 for NULL */
unsigned	 be_caps(const struct be *);
/* Did XCLIENT or XFORWARD introduce the client? Else we add Received:. */
int		 be_introduced(const struct be *);
/* The backend forgot the introduction: XFORWARD attributes last one
 * transaction (Postfix resets them with the transaction), and a MAIL went
 * out since. The next transaction needs another leg (from the pool, or
 * new), which be_open() introduces afresh. */
int		 be_stale(const struct be *);
/* Send one command line (no CRLF); the reply comes to the callback. */
void		 be_command(struct be *, const char *line);
/* A group of up to BE_MAX_GROUP commands (e.g. RSET, MAIL, RCPT): sent
 * together when the backend offers PIPELINING (RFC 2920), else one per
 * reply. Each reply comes to the callback, in order; be_ready() turns
 * true before the last one is reported. */
#define BE_MAX_GROUP	4
void		 be_commands(struct be *, const char **lines, int n);
/* After DATA got 354: stream the body (ends with "." CRLF); the final
 * reply comes to the callback. The spool_out must live until then. */
void		 be_body(struct be *, struct spool_out *);
/* Fail the leg if its deadline passed (now in time_mono_ms). */
void		 be_tick(struct be *, uint64_t now);
/* Close: QUIT first when idle (best effort, not waited for). */
void		 be_close(struct be *);
void		 be_free(struct be *);

/*
 * The pool: idle, ready legs of one loop, kept after their session ended
 * so the next session skips connect, greeting and EHLO. be_open() on a
 * pooled leg introduces the new client afresh (XCLIENT -> 220 -> EHLO, or
 * XFORWARD), so nothing of the last client carries over. Only a leg that
 * can introduce the next client goes back: its last EHLO reply offered
 * XCLIENT or XFORWARD (Postfix checks XCLIENT authorisation again against
 * the address XCLIENT set, and stops offering it), or proxy.xclient is off.
 * A leg refused for that is closed, with one warning per process (and per
 * reload). An idle leg keeps reading: the backend closing it just drops
 * it from the pool.
 * Ownership: the pool owns what it holds; be_pool_take() hands a leg back.
 * Thread: the owning loop's.
 */
#define BE_POOL_MAX	32	/* proxy.backend_pool's bound */
#define BE_POOL_IDLE_S	30	/* longest idle time (or proxy.timeout_backend) */
struct be_pool;
struct be_pool	*be_pool_new(void);
/* Keep a leg that is open and idle (dirty: a transaction is open there,
 * RSET goes first); the oldest goes when max are held. 1: the pool owns
 * it now; 0: not taken, the caller still owns it. */
int		 be_pool_put(struct be_pool *, struct be *, int max, int dirty);
/* A ready leg for the session sid with conf c (same backend), now
 * reporting to cb/arg; NULL when none. */
struct be	*be_pool_take(struct be_pool *, const struct conf *c, const char *sid,
		    be_cb *, void *arg);
/* Drop legs idle too long or closed by the backend. */
void		 be_pool_tick(struct be_pool *, uint64_t now);
int		 be_pool_count(const struct be_pool *);
/* QUIT and close them all (SIGTERM drain), then free the pool. */
void		 be_pool_free(struct be_pool *);

/*
 * At start and on reload: does the backend offer XCLIENT or XFORWARD to
 * us? Connects once (greeting, EHLO, QUIT) on a detached thread, so a
 * backend that is down delays nothing, and logs a warning saying what a
 * missing introduction means and how to fix it. Also re-arms the pool's
 * one warning. Thread: any; copies what it needs from c.
 */
void		 be_probe(const struct conf *c);

#endif
