/*
 * policy_int.h -- what the checks inside policy/ share; nothing outside
 * policy/ includes this. The session struct is here so each check (spf.c,
 * dkim.c, dmarc.c, rbl.c, grey.c, access.c, rate.c, rules glue) can read
 * the envelope and earlier results without a pile of accessors.
 *
 * Thread: a pol_session is used by one thread at a time (see policy.h).
 */
#ifndef POSTERN_POLICY_INT_H
#define POSTERN_POLICY_INT_H

#include "dns/dns.h"
#include "policy/authres.h"
#include "policy/dkim.h"
#include "policy/policy.h"
#include "policy/spf.h"

#include <stdio.h>
#include <sys/socket.h>

#define POL_MAX_RESULTS	64

/* One check's finding as text, for the Authentication-Results header, the
 * logs, the verdict log and `postern check`: made once, by the check, from
 * its typed outcome (struct pol_found). No check reads another's text.
 * Results from CONNECT and HELO live for the session, the others for the
 * transaction. */
struct pol_result {
	char	 check[16];	/* "spf", "dkim", "dmarc", "rbl", "grey", "rule", ... */
	char	 result[16];	/* "pass", "fail", "listed", "temperror", ... */
	double	 score;
	char	*reason;	/* short human text, or NULL */
	/* RFC 8601 properties ("smtp.mailfrom=a@b.example header.d=b.example"),
	 * when the result belongs in Authentication-Results; else NULL. */
	char	*authres;
	int	 stage;
};

/* A decision that overrides the score sum (allow/deny lists, DMARC p=reject,
 * rule actions, greylisting). The first hard decision of a stage wins. */
struct pol_hard {
	int	 set;
	enum pol_verdict verdict;
	int	 code;
	char	 status[8];
	char	 text[256];
	int	 disconnect;
	int	 binding;	/* not an anti-spam finding: allowlists cannot undo it */
};

/* What the checks found, typed, for the checks after them: DMARC aligns
 * on SPF's and DKIM's identities, greylisting skips on a DNS allow list,
 * SPF pass or DKIM pass, and pol_decide answers temperrors with 451 under
 * policy.temperror_tempfail. Each part is written by the check it names.
 * Transaction scope (pol_tx_reset clears it), but for the CONNECT and
 * HELO bits of dnswl. */
struct pol_found {
	unsigned	 dnswl;		/* 1u << stage: a DNS allow list listed the
					   client, HELO name or sender domain */
	struct spf_found spf;		/* MAIL FROM, or HELO for <> */
	int		 ndkim;
	/* the last result the dkim check reported: its last signature's,
	 * none, or temperror when the verifier failed; NONE before */
	enum authres_result dkim_last;
	enum authres_result dmarc;	/* NONE until it ran */
	/* each signature verified, ndkim of them: last, so that a copy of
	 * what comes before it is a copy of the findings (pol_run_here) */
	struct dkim_found dkim[DKIM_MAX_SIGS];
};

struct pol_session {
	struct conf	*conf;		/* a reference */
	char		 sid[16];
	int		 dry_run;	/* `postern check`: no state written (no
					   quarantine copy, stats, greylist row) */
	int		 record_grey;	/* `postern check --record`: the greylist
					   row is written after all */
	struct sockaddr_storage client;
	socklen_t	 clientlen;
	char		 client_ip[64];
	char		*client_name;
	char		*helo;
	char		*tls;

	/* transaction */
	char		*mail_from;	/* NULL before MAIL, "" for <> */
	char		*mail_params;
	char		*rcpt;		/* the RCPT under test */
	char	       **rcpts;		/* accepted by the backend */
	int		 nrcpts;
	char		*msgid, *subject, *from_hdr;	/* filled at DATA */
	/* The message taken apart by rules/mime.c, parsed once at DATA by the
	 * first check that asks (pol_mime) and shared by the rest. */
	struct mime_msg	*mime;

	struct dns_budget dns;
	struct pol_result results[POL_MAX_RESULTS];
	int		 nresults;
	struct pol_found found;
	struct pol_hard	 hard;
	double		 score;		/* sum over results */
	int		 verdict;	/* last decision's verdict */
	char		 reply[300];	/* last decision as answered, for the log */
	unsigned	 allow;		/* POL_ALLOW_*: allowlisted, skip checks */
	/* Per-domain policy (policy/dompol.h), NULL meaning the global one:
	 * the transaction's (its first accepted recipient's), and the one of
	 * the stage under way (RCPT: the recipient's; DATA: the
	 * transaction's; before: NULL). Point into conf, or into the
	 * dashboard's table the session holds (dompol.c). */
	const struct conf_domain *dom, *dom_stage;
	/* Per-check private state, indexed by the check's slot. */
	void		*priv[16];
	/* pol_run_here: the stage runs speculatively (pol_speculative), and
	 * a check found it would have to wait (pol_spec_miss). */
	int		 spec, spec_missed;
};

/* Allowlisting (policy/access.c) and how long it lasts. */
#define POL_ALLOW_SESSION 0x1	/* client or HELO: the whole session */
#define POL_ALLOW_TX	 0x2	/* sender: until the transaction ends */
#define POL_ALLOW_RCPT	 0x4	/* recipient: until the next RCPT */

struct pol_check {
	const char	*name;
	unsigned	 stages;	/* 1u << POL_CONNECT | ... */
	int		(*enabled)(const struct conf *);
	void		(*run)(struct pol_session *, enum pol_stage, const struct pol_msg *);
	void		(*tx_reset)(struct pol_session *);	/* may be NULL */
	void		(*free)(struct pol_session *);		/* may be NULL */
	/* Must this stage go to a worker for a reason other than DNS (a
	 * database read, files, CPU work too long for the I/O loop)? msg
	 * only at DATA, else NULL. NULL: never (pol_stage_needed). */
	int		(*blocks)(const struct pol_session *, enum pol_stage,
			    const struct pol_msg *);
	/* The side effects of what run() decided (a counter, a recipient
	 * kept for later): right after run() on a worker, after the whole
	 * stage when a speculative run is kept, never when it is undone.
	 * run() does none itself (pol_speculative). May be NULL. */
	void		(*commit)(struct pol_session *, enum pol_stage);
};

/* The check's index in the table, for ps->priv[]. */
int	 pol_check_slot(const struct pol_check *);
/* In a run(): 1 when the stage runs speculatively on the proxy's I/O
 * loop (pol_run_here): DNS answers come from the cache only
 * (dns_spec_begin), and what needs waiting otherwise -- a database read
 * -- must not be done but reported with pol_spec_miss(). The stage is
 * then undone and run again on a worker, so run() changes nothing
 * outside the session (its .commit does). 0 on a worker. */
int	 pol_speculative(const struct pol_session *);
/* May the content checks (rules over the body, the classifier) read this
 * DATA message on the I/O loop (policy.inline_bytes)? Their CPU grows
 * with the message, so a large one goes to a worker; a small one costs
 * less than the hand-off. 1 or 0; 0 without a message. */
int	 pol_inline_msg(const struct pol_session *, const struct pol_msg *);
void	 pol_spec_miss(struct pol_session *);
/* `postern check --only a,b`: run only these checks (NULL: all). */
void	 pol_only_set(const char *csv);
/* Is name a check's name (what --only takes)? 1 or 0. */
int	 pol_check_known(const char *name);

/* The DATA message parsed (rules/mime.h), once per transaction: the
 * first caller parses, later ones (rules, the classifier) share it.
 * Owned by the session; freed at the transaction's reset. */
const struct mime_msg *pol_mime(struct pol_session *, const struct pol_msg *);

/* Record a finding. reason/authres may be NULL. Returns the stored result. */
struct pol_result *pol_result_add(struct pol_session *, const char *check,
		    const char *result, double score, const char *authres,
		    const char *reasonfmt, ...) __attribute__((format(printf, 6, 7)));
/* The latest result of a check, or NULL. */
const struct pol_result *pol_result_find(const struct pol_session *, const char *check);
/* Override the score sum for this stage. */
void	 pol_hard_set(struct pol_session *, enum pol_verdict, int code,
	    const char *status, int disconnect, const char *fmt, ...)
	    __attribute__((format(printf, 6, 7)));

#endif
