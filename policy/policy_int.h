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
	struct dkim_found dkim[DKIM_MAX_SIGS];	/* each signature verified */
	int		 ndkim;
	/* the last result the dkim check reported: its last signature's,
	 * none, or temperror when the verifier failed; NONE before */
	enum authres_result dkim_last;
	enum authres_result dmarc;	/* NONE until it ran */
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
	 * transaction's; before: NULL). Point into conf. */
	const struct conf_domain *dom, *dom_stage;
	/* pol_run_here: the quarantine copy is still to be stored. */
	int		 quar_pending;
	/* Per-check private state, indexed by the check's slot. */
	void		*priv[16];
	/* Probe rounds (pol_stage_needed), numbered from 1: what a .probe
	 * keeps for its run is tagged with the round (pol_probe_round). */
	unsigned	 probe_round;
	int		 probe_stage;	/* the stage the last round was about */
	int		 probe_inline;	/* it said the stage cannot block */
	/* While pol_run_here() runs the stage that round sent inline: the
	 * round; else 0 (pol_probe_reusable). */
	unsigned	 reuse_round;
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
	/* May run() block at this stage of this session (see
	 * pol_stage_needed)? NULL: it always may. */
	int		(*blocks)(const struct pol_session *, enum pol_stage);
	/* The same for a check that must see the message to tell (DATA;
	 * msg is NULL before): used instead of blocks when set. */
	int		(*blocks_msg)(const struct pol_session *, enum pol_stage,
			    const struct pol_msg *);
	/* blocks_msg for a check whose probe computes most of what run()
	 * would (the whole evaluation from cached DNS answers): it may keep
	 * that in ps->priv, tagged with pol_probe_round(), and run() uses it
	 * instead of evaluating again only when pol_probe_reusable() says
	 * the run follows that very probe inline; otherwise run() drops it
	 * and evaluates afresh. Used instead of blocks/blocks_msg when set. */
	int		(*probe)(struct pol_session *, enum pol_stage,
			    const struct pol_msg *);
};

/* The check's index in the table, for ps->priv[]. */
int	 pol_check_slot(const struct pol_check *);
/* The probe round under way (in a .probe), for tagging what it keeps. */
unsigned pol_probe_round(const struct pol_session *);
/* In a run(): 1 when this stage runs inline (pol_run_here) right after
 * probe round `round` found that no check would block -- nothing else
 * ran in between, so what that round's probe computed from the DNS cache
 * is what the run would compute (the caller still checks that the
 * inputs and its DNS budget are what the probe saw). 0 on a worker, for
 * any other round, and outside a run. */
int	 pol_probe_reusable(const struct pol_session *, unsigned round);
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
