/*
 * policy.h -- the policy engine as the proxy sees it.
 *
 * One struct pol_session per SMTP session, created by the proxy at connect.
 * The proxy sets the inputs (HELO, envelope) on its loop thread, then hands
 * the session to a worker for pol_run(); while a job is out the proxy does
 * not touch it (reading from the client pauses), so a pol_session is only
 * ever used by one thread at a time and needs no lock.
 *
 * pol_run() may block (DNS, SQLite, libopendkim); it never touches
 * a socket. It fills a struct pol_decision: what to answer and, at DATA,
 * how to edit the message on its way to the backend.
 *
 * Ownership: the proxy owns the pol_session (pol_session_free); strings
 * passed in are copied; a decision's buffers belong to the decision and go
 * with pol_decision_clear().
 */
#ifndef POSTERN_POLICY_H
#define POSTERN_POLICY_H

#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>

struct conf;
struct json_t;
struct pol_session;

enum pol_stage {
	POL_CONNECT = 0,
	POL_HELO,
	POL_MAIL,
	POL_RCPT,
	POL_DATA,
	POL_NSTAGES
};

enum pol_verdict {
	POL_ACCEPT = 0,		/* go on / deliver */
	POL_TAG,		/* deliver with X-Spam-Flag: YES */
	POL_QUARANTINE,		/* DATA only: committed to quarantine, answer 250 */
	POL_TEMPFAIL,		/* 4xx */
	POL_REJECT,		/* 5xx */
};

/* A byte range of the message to leave out on the way to the backend. */
struct pol_skip {
	size_t	 off, len;
};

struct pol_decision {
	enum pol_verdict verdict;
	int	 code;		/* reply code for TEMPFAIL/REJECT/QUARANTINE(250) */
	char	 status[8];	/* enhanced status code, e.g. "5.7.1" */
	char	 text[256];	/* reply text without code, e.g. "Service unavailable; ..." */
	int	 disconnect;	/* close after the reply (421, or 554 at connect) */
	double	 score;
	/* POL_DATA only: */
	char	*prepend;	/* header lines, each CRLF-terminated, or NULL */
	struct pol_skip *skip;	/* sorted, non-overlapping; or NULL */
	int	 nskip;
};

/* The message as received: unstuffed, canonical CRLF, headers and body. */
struct pol_msg {
	const char *data;
	size_t	 len;
};

/* Process-wide setup with the first config; 0 or -1 (logged). Starts the
 * DNS resolver and whatever the checks need (database, rule sets). */
int	 pol_init(struct conf *);
/* A new config after SIGHUP; checks take what changed. */
void	 pol_reload(struct conf *);
void	 pol_shutdown(void);

struct pol_session *pol_session_new(struct conf *, const char *sid,
		    const struct sockaddr *client, socklen_t len);
void	 pol_session_free(struct pol_session *);
/* For `postern check`, which answers "what would happen": a quarantine
 * verdict is reported but no copy is stored, and no stats are counted.
 * Greylisting still records the attempt, as a real one would, so a second
 * check shows the retry logic. */
void	 pol_set_dry_run(struct pol_session *);

/* Inputs. Called by the proxy between jobs. */
void	 pol_set_client_name(struct pol_session *, const char *); /* verified rDNS or "unknown" */
/* The verified name found at CONNECT (policy/rdns.c), or "unknown". */
const char *pol_client_name(const struct pol_session *);
void	 pol_set_helo(struct pol_session *, const char *helo);
void	 pol_set_tls(struct pol_session *, const char *version_cipher);
/* A transaction: MAIL (address without <>; "" for the null sender, params
 * as given), then each RCPT under test; pol_tx_rcpt_accepted() once the
 * backend took it; pol_tx_reset() at RSET or after the final reply. */
void	 pol_tx_begin(struct pol_session *, const char *mail_from, const char *params);
void	 pol_tx_rcpt(struct pol_session *, const char *rcpt);
void	 pol_tx_rcpt_accepted(struct pol_session *, const char *rcpt);
void	 pol_tx_reset(struct pol_session *);

/* Run one stage (blocking; on a worker thread). msg only for POL_DATA.
 * The decision must be zeroed or cleared before. */
void	 pol_run(struct pol_session *, enum pol_stage, const struct pol_msg *,
	    struct pol_decision *);
void	 pol_decision_clear(struct pol_decision *);
/* pol_run() on the proxy's loop, for a stage pol_stage_needed() let
 * through, speculatively: DNS answers from the cache only, nothing done
 * that waits (no database read, no quarantine copy stored). 0 when the
 * stage ran and is kept -- the decision is final, as pol_run() would
 * have made it; -1 when it needed more: the session is put back as it
 * was, the decision cleared, and pol_run() of the same stage must follow
 * on a worker. Logs and statistics count only the run that is kept. */
int	 pol_run_here(struct pol_session *, enum pol_stage, const struct pol_msg *,
	    struct pol_decision *);
/* Must pol_run() for this stage go to a worker whatever the DNS cache
 * holds? 1 when a check it would run reads the database or files, or
 * has CPU work too long for the I/O loop (a check's .blocks); 0 when
 * pol_run_here() may try. msg only for POL_DATA. Non-blocking; called
 * by the proxy between jobs. */
int	 pol_stage_needed(const struct pol_session *, enum pol_stage,
	    const struct pol_msg *);

/* How a transaction ended: who had the last word, and what it was. The
 * verdict is ours; the outcome is what became of the message. */
enum pol_outcome {
	POL_O_ACCEPT = 0,	/* the backend took the message: 2xx to the data */
	POL_O_QUARANTINE,	/* committed to our quarantine; we answered 250 */
	POL_O_REJECT,		/* we refused it (5xx) */
	POL_O_TEMPFAIL,		/* we deferred it (4xx), greylisting included */
	POL_O_BACKEND_REJECT,	/* the backend refused it (5xx) */
	POL_O_BACKEND_TEMPFAIL,	/* the backend deferred it (4xx) */
	POL_O_BACKEND_LOST,	/* the backend could not be reached or went away */
	POL_O_ABANDONED,	/* the client left first (RSET, QUIT, HELO, drop) */
	POL_NOUTCOMES
};

/* What pol_tx_record() keeps of a transaction's end. */
struct pol_end {
	enum pol_outcome outcome;
	const char *stage;	/* where it ended: "connect" (the backend's greeting
				   or XCLIENT), "mail", "rcpt", "data",
				   "end-of-data" */
	const char *reply;	/* our own answer that ended it, or "" */
	const char *mta_reply;	/* the backend's own answer (first line), or "" */
	size_t	 size;		/* message bytes, 0 when no DATA */
	unsigned long ms;	/* MAIL to the end */
};

/* After the transaction ended: record it for the verdict log and stats.
 * Non-blocking (queued to the db writer). */
void	 pol_tx_record(struct pol_session *, const struct pol_end *);
/* "accept", "quarantine", "reject", "tempfail", "backend-reject",
 * "backend-tempfail", "backend-lost", "abandoned". */
const char *pol_outcome_name(enum pol_outcome);
/* The verdict of the session's last decision, as recorded. */
const char *pol_last_verdict(const struct pol_session *);

/* "spf=pass dkim=none dmarc=none score=0.0" for the transaction log line. */
void	 pol_summary(const struct pol_session *, char *buf, size_t sz);
/* "accept", "tag", "quarantine", "tempfail", "reject". */
const char *pol_verdict_name(enum pol_verdict);

/* The check names, comma-separated (what --only takes). */
void	 pol_check_names(FILE *);
/* Is every name of the comma-separated list a check's? 0, or -1 with
 * the problem in why. */
int	 pol_only_ok(const char *csv, char *why, size_t whysz);

/* `postern check`: what one session would meet, without the network.
 * The envelope; whatever is NULL comes from the message, if any. */
struct pol_dry {
	const char	*helo;		/* NULL: no HELO stage */
	const char	*from;		/* "<>" the null sender; NULL: the
					   message's, or no MAIL stage */
	const char *const *rcpts;	/* none: the message's first To */
	int		 nrcpts;
	const char	*only;		/* the checks to run (csv); NULL: all */
	int		 record;	/* store the greylist triplet anyway */
};
/* Run the stages a session from the client address would run, as a dry
 * run (pol_set_dry_run), and report every result, the envelope, score and
 * verdict as one JSON object (the caller's reference; policy/check.c
 * describes it). After pol_init(); main thread. */
struct json_t *pol_dry_run(struct conf *, const struct sockaddr *, socklen_t,
	    const struct pol_dry *, const struct pol_msg *);

#endif
