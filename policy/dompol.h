/*
 * dompol.h -- per-domain policy: the [domain NAME] sections of the config
 * (lib/conf.h, struct conf_domain) and the dashboard's domain policies
 * (policy/domtab.h, the same struct) applied to recipients.
 *
 * A recipient gets the policy named like its domain ("example.org"),
 * else the ".NAME" one with the longest NAME its domain is a subdomain
 * of, else the global policy (NULL here). A config section beats a
 * dashboard entry of the same name (the API refuses to save one). A section overrides the score
 * thresholds and greylist.enabled, and has its own allow and deny lists of
 * senders and clients.
 *
 * One transaction has one policy: the one of its first recipient the
 * backend took. A later RCPT whose policy differs (thresholds, greylisting
 * or lists; not merely another domain name) gets 452 4.5.3 before any
 * check runs, so the client sends it again in a separate transaction
 * (RFC 5321 4.5.3.1.10), as a recipient past a limit would be; each
 * transaction is then decided by its own policy. Before any recipient is
 * known (CONNECT, HELO, MAIL), the score rejects only past the highest
 * reject_score of all policies, and not at all for a client or sender
 * some domain allowlists: a domain that tolerates more does not lose
 * mail another's threshold refused; the recipients' own thresholds
 * decide at RCPT.
 *
 * The check (dompol_check, after access in the check table) applies the
 * domain's lists at RCPT: a denied sender or client gets 550 5.7.1 for
 * that recipient; an allowed one skips the recipient's remaining checks
 * (greylisting) and, at DATA, the content checks: the message is
 * accepted. A global allow entry (postern access) comes first.
 *
 * A session reads the dashboard's table it took a reference to
 * (domtab_get): a new one before each transaction's first accepted
 * recipient, when an admin edit moved db_admin_token(); the stage that
 * needs the database read goes to a worker (the check's .blocks).
 *
 * Public calls below; dompol_stage() runs inside pol_run() (policy.c).
 * Thread: whichever runs the session; the conf is immutable.
 */
#ifndef POSTERN_DOMPOL_H
#define POSTERN_DOMPOL_H

#include <stddef.h>
#include <sys/socket.h>

struct conf;
struct conf_domain;
struct domtab;
struct pol_check;
struct pol_session;

/* Score thresholds in force. */
struct dompol_limits {
	double	 tag, quarantine, reject;
};

/* What a domain's lists say of a client and sender. */
enum dompol_hit { DOMPOL_NONE = 0, DOMPOL_ALLOW, DOMPOL_DENY };

/* The policy a recipient path ("user@example.org") gets from the config's
 * sections and t's entries (t may be NULL); NULL: the global policy (also
 * for a path without a domain). */
const struct conf_domain *dompol_find(const struct conf *, const struct domtab *t,
	    const char *rcpt);
/* dompol_find() with the session's config and dashboard table. */
const struct conf_domain *dompol_of_rcpt(const struct pol_session *, const char *rcpt);
/* Do recipients under a and b get the same policy? NULL is the global
 * one; a section that changes nothing is the same as the global policy.
 * 1 or 0. */
int	 dompol_same(const struct conf *, const struct conf_domain *,
	    const struct conf_domain *);
/* d's thresholds (the global ones for NULL). */
void	 dompol_limits(const struct conf *, const struct conf_domain *,
	    struct dompol_limits *);
/* The reject threshold before any recipient is known: the highest
 * reject_score of every policy, or none (HUGE_VAL) when a domain's allow
 * lists take the session's client or sender. */
double	 dompol_reject_early(const struct pol_session *);
/* The highest reject_score of every policy (the config's, t's entries,
 * the global one). */
double	 dompol_reject_max(const struct conf *, const struct domtab *t);
/* Does d's recipient get greylisted? (greylist.enabled for NULL.) */
int	 dompol_greylist(const struct conf *, const struct conf_domain *);
/* d's lists on the client and the sender ("" the null sender): allow
 * beats deny; the matching entry in entry, what it matched ("client" or
 * "sender") in *what. */
enum dompol_hit dompol_lists(const struct conf_domain *, const struct sockaddr *client,
	    const char *sender, char *entry, size_t entrysz, const char **what);
/* "tag 2, quarantine 4, reject 8, greylisting off" of d (NULL: global). */
void	 dompol_describe(const struct conf *, const struct conf_domain *,
	    char *buf, size_t sz);

/* The policy that decides stage: the recipient's at RCPT, the
 * transaction's at DATA, none (the global one) before. */
const struct conf_domain *dompol_of_stage(const struct pol_session *, int stage);
/* Called by pol_run() before a stage's checks (after the relay guard):
 * notes the stage's policy in the session, splits a RCPT whose policy
 * differs from the transaction's (452 4.5.3), and records which domain
 * policy decides. */
void	 dompol_stage(struct pol_session *, int stage);

extern const struct pol_check dompol_check;

#endif
