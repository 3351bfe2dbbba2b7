/*
 * policy.c -- stages, the check table, scoring and the decision.
 *
 * pol_run() runs every enabled check registered for the stage, in table
 * order, then turns hard decisions and the score sum into a pol_decision.
 * Decide as early as possible: a score past reject_score rejects at the
 * stage where it is reached, so spam never costs a DATA transfer.
 *
 * Precedence, strongest first: the relay guard (proxy.relay_domains and
 * relay_recipients, relay.h: whom we take mail for at all, which no
 * allowlist changes), an allowlist entry (policy/access.c; the
 * rest of its scope runs no checks and is accepted, so DMARC p=reject or a
 * rule cannot undo it), a hard decision (deny lists, DMARC, greylisting,
 * rate limits, database trouble -- the first of a stage wins), then the
 * score sum against policy.reject_score, quarantine_score, tag_score.
 * While the database cannot take writes (db_ok() == 0) new transactions
 * get 451 4.3.0 at MAIL, so no verdict goes unrecorded for long.
 *
 * Where a stage runs (docs/policy.md, "Which stages need a worker"):
 * pol_stage_needed() asks the checks' .blocks hooks for reasons other
 * than DNS; without one the proxy calls pol_run_here(), which runs the
 * stage speculatively on its I/O loop -- DNS from the cache only, log
 * lines and DNS statistics held back, the checks' side effects left to
 * their .commit -- and keeps it, or undoes it (struct pol_snap) when
 * something was missing, for the proxy to run it again on a worker.
 */
#include "db/db.h"
#include "lib/buf.h"
#include "lib/conf.h"
#include "lib/relay.h"
#include "lib/stats.h"
#include "lib/util.h"
#include "policy/access.h"
#include "policy/authres.h"
#include "policy/bayes.h"
#include "policy/dkim.h"
#include "policy/dmarc.h"
#include "policy/dompol.h"
#include "policy/grey.h"
#include "policy/greyc.h"
#include "policy/policy_int.h"
#include "policy/quar.h"
#include "policy/rate.h"
#include "policy/rbl.h"
#include "policy/rdns.h"
#include "policy/rulecheck.h"
#include "rules/mime.h"

#include <arpa/inet.h>
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stddef.h>

struct pol_snap;

static void	 pol_decide(struct pol_session *, enum pol_stage, const struct pol_msg *,
		    struct pol_decision *);
static int	 pol_run_stage(struct pol_session *, enum pol_stage, const struct pol_msg *,
		    struct pol_decision *, unsigned *ran);
static int	 pol_check_on(const struct pol_session *, const struct pol_check *,
		    enum pol_stage);
static int	 pol_missed(const struct pol_session *);
static void	 pol_stage_done(struct pol_session *, enum pol_stage);
static void	 pol_snap_take(const struct pol_session *, enum pol_stage, struct pol_snap *);
static void	 pol_snap_end(struct pol_session *, struct pol_snap *, int keep);
static void	 pol_results_cut(struct pol_session *, int n);
static void	 pol_results_drop(struct pol_session *, int keep_session);
static void	 pol_found_drop(struct pol_session *);
static char	*pol_authres_header(const struct pol_session *, const char *tail);
static int	 pol_authres_char(char);
static void	 pol_authres_props(struct buf *, const char *);
static int	 pol_allowed(const struct pol_session *, enum pol_stage);
static const char *pol_top_reason(const struct pol_session *);
static void	 pol_reply_note(struct pol_session *, const struct pol_decision *);
static void	 pol_msg_fields(struct pol_session *, const struct pol_msg *);
static char	*pol_field_value(const char *h, const char *end, size_t namelen);
static int	 pol_check_conf(const struct conf *);
static int	 pol_auth_temperror(const struct pol_session *);
static void	 pol_relay_guard(struct pol_session *);

/* RFC 5322 2.1.1: a header line is at most 998 characters; a field kept
 * for the verdict log is cut there (after unfolding). */
#define POL_FIELD_MAX	998
/* Largest message whose DATA stage may run on the proxy's loop thread
 * when no check needs a worker: pol_run() then only scans the header
 * section (authres_skips, pol_msg_fields), but a message that is nearly
 * all header must not stall every other session of the loop. */
#define POL_INLINE_MSG_MAX	(256 * 1024)

/* What pol_run_here() puts back when it undoes a stage: everything a
 * check's run adds to or changes in the session. The rest -- the
 * checks' private state, the parsed message, the header fields -- a run
 * of the same stage overwrites with the same values. */
struct pol_snap {
	int		 nresults;
	double		 score;
	unsigned	 allow;
	struct dns_budget dns;
	char		*client_name;
	/* struct pol_found up to its signatures (ndkim says how many count) */
	unsigned char	 found[offsetof(struct pol_found, dkim)];
};

/* The checks, in the order they run within a stage. Each module adds its
 * entry here. access first: an allowlisted client skips the others; grey
 * after spf (it skips SPF-pass senders of greylist.skip_domains). */
extern const struct pol_check spf_check;

static const struct pol_check *checks[] = {
	&rdns_check,		/* first: the name feeds access, rules and the log */
	&access_check,
	&dompol_check,		/* the recipient domain's lists, after the global ones */
	&rate_check,
	&rbl_check,
	&spf_check,
	&grey_check,
	&dkim_check,
	&dmarc_check,		/* after spf and dkim: reads their results */
	&grey_data_check,	/* greylisting that waited for DKIM */
	&rulecheck,
	&bayes_check,		/* last: autolearn reads the others' score */
	NULL
};

static const char *verdict_names[] = {
	[POL_ACCEPT] = "accept", [POL_TAG] = "tag", [POL_QUARANTINE] = "quarantine",
	[POL_TEMPFAIL] = "tempfail", [POL_REJECT] = "reject",
};

const char *
pol_verdict_name(enum pol_verdict v)
{
	return (unsigned)v < ARRAY_SIZE(verdict_names) ? verdict_names[v] : "?";
}

static void
pol_conf_problem(void *arg, int line, const char *msg)
{
	const struct conf *c = arg;

	if (line > 0)
		log_err("policy: %s:%d: %s", c->path ? c->path : "config", line, msg);
	else
		log_err("policy: %s: %s", c->path ? c->path : "config", msg);
}

/* A bad DNS list setting is a config error; say so before serving. */
static int
pol_check_conf(const struct conf *c)
{
	return rbl_conf_check(c, pol_conf_problem, (void *)c) > 0 ? -1 : 0;
}

/* `postern check --only`: a comma-separated list, or NULL for all. */
static char *only_list;

int
pol_check_slot(const struct pol_check *ck)
{
	for (int i = 0; checks[i] != NULL; i++)
		if (checks[i] == ck)
			return i;
	fatalx("pol_check_slot: %s is not in checks[]", ck->name);
}

void
pol_only_set(const char *csv)
{
	free(only_list);
	only_list = csv ? xasprintf(",%s,", csv) : NULL;
}

int
pol_check_known(const char *name)
{
	for (int i = 0; checks[i] != NULL; i++)
		if (strcmp(checks[i]->name, name) == 0)
			return 1;
	return 0;
}

void
pol_check_names(FILE *fp)
{
	for (int i = 0; checks[i] != NULL; i++) {
		int dup = 0;
		for (int j = 0; j < i; j++)
			dup |= strcmp(checks[j]->name, checks[i]->name) == 0;
		if (!dup)
			fprintf(fp, "%s%s", i ? ", " : "", checks[i]->name);
	}
}

static int
pol_only_allows(const char *name)
{
	char key[32];

	if (only_list == NULL)
		return 1;
	snprintf(key, sizeof(key), ",%s,", name);
	return strstr(only_list, key) != NULL;
}

int
pol_init(struct conf *c)
{
	greyc_clear();		/* it mirrors the database about to be opened */
	if (pol_check_conf(c) == -1 || dns_init(c) == -1)
		return -1;
	if (db_open(c, 1) == -1 || rulecheck_init(c) == -1 || bayes_init(c) == -1) {
		dns_shutdown();
		return -1;
	}
	return 0;
}

void
pol_reload(struct conf *c)
{
	if (pol_check_conf(c) == -1)
		log_err("policy: DNS lists with a bad setting are not asked until it is fixed");
	db_reload(c);
	rulecheck_reload(c);
	bayes_reload(c);
}

void
pol_shutdown(void)
{
	bayes_shutdown();
	db_close();
	dns_shutdown();
}

struct pol_session *
pol_session_new(struct conf *c, const char *sid, const struct sockaddr *sa,
    socklen_t len)
{
	struct pol_session *ps = xcalloc(1, sizeof(*ps));

	ps->conf = conf_ref(c);
	snprintf(ps->sid, sizeof(ps->sid), "%s", sid);
	if (len > sizeof(ps->client))
		fatalx("pol_session_new: sockaddr too long");
	memcpy(&ps->client, sa, len);
	ps->clientlen = len;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
		    ps->client_ip, sizeof(ps->client_ip));
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr,
		    ps->client_ip, sizeof(ps->client_ip));
	else
		snprintf(ps->client_ip, sizeof(ps->client_ip), "unknown");
	ps->client_name = xstrdup("unknown");
	dns_budget_init(&ps->dns, c);
	return ps;
}

void
pol_session_free(struct pol_session *ps)
{
	if (ps == NULL)
		return;
	pol_tx_reset(ps);
	for (size_t i = 0; checks[i] != NULL; i++)
		if (checks[i]->free)
			checks[i]->free(ps);
	pol_results_drop(ps, 0);
	free(ps->client_name);
	free(ps->helo);
	free(ps->tls);
	conf_unref(ps->conf);
	free(ps);
}

void
pol_set_dry_run(struct pol_session *ps)
{
	ps->dry_run = 1;
}

void
pol_set_client_name(struct pol_session *ps, const char *name)
{
	free(ps->client_name);
	ps->client_name = xstrdup(name);
}

const char *
pol_client_name(const struct pol_session *ps)
{
	return ps->client_name;
}

void
pol_set_helo(struct pol_session *ps, const char *helo)
{
	free(ps->helo);
	ps->helo = xstrdup(helo);
}

void
pol_set_tls(struct pol_session *ps, const char *v)
{
	free(ps->tls);
	ps->tls = xstrdup(v);
}

void
pol_tx_begin(struct pol_session *ps, const char *from, const char *params)
{
	pol_tx_reset(ps);
	ps->mail_from = xstrdup(from);
	ps->mail_params = xstrdup(params ? params : "");
}

void
pol_tx_rcpt(struct pol_session *ps, const char *rcpt)
{
	free(ps->rcpt);
	ps->rcpt = xstrdup(rcpt);
	ps->allow &= ~POL_ALLOW_RCPT;
}

void
pol_tx_rcpt_accepted(struct pol_session *ps, const char *rcpt)
{
	if (ps->nrcpts == 0)	/* the transaction's policy from now on */
		ps->dom = dompol_of_rcpt(ps, rcpt);
	ps->rcpts = xrealloc(ps->rcpts, sizeof(char *) * (size_t)(ps->nrcpts + 1));
	ps->rcpts[ps->nrcpts++] = xstrdup(rcpt);
}

void
pol_tx_reset(struct pol_session *ps)
{
	for (size_t i = 0; checks[i] != NULL; i++)
		if (checks[i]->tx_reset)
			checks[i]->tx_reset(ps);
	free(ps->mail_from); ps->mail_from = NULL;
	free(ps->mail_params); ps->mail_params = NULL;
	free(ps->rcpt); ps->rcpt = NULL;
	for (int i = 0; i < ps->nrcpts; i++)
		free(ps->rcpts[i]);
	free(ps->rcpts); ps->rcpts = NULL;
	ps->nrcpts = 0;
	ps->dom = ps->dom_stage = NULL;
	free(ps->msgid); ps->msgid = NULL;
	free(ps->subject); ps->subject = NULL;
	free(ps->from_hdr); ps->from_hdr = NULL;
	mime_free(ps->mime); ps->mime = NULL;
	ps->allow &= ~(POL_ALLOW_TX | POL_ALLOW_RCPT);
	pol_found_drop(ps);
	pol_results_drop(ps, 1);
}

/* The transaction's typed findings go; the session's stay. */
static void
pol_found_drop(struct pol_session *ps)
{
	unsigned dnswl = ps->found.dnswl & (1u << POL_CONNECT | 1u << POL_HELO);

	memset(&ps->found, 0, sizeof(ps->found));
	ps->found.dnswl = dnswl;
}

/* Drop the results from the nth on (their score is the caller's). */
static void
pol_results_cut(struct pol_session *ps, int n)
{
	for (int i = n; i < ps->nresults; i++) {
		free(ps->results[i].reason);
		free(ps->results[i].authres);
	}
	ps->nresults = n;
}

/* Drop transaction results; with keep_session, CONNECT/HELO ones stay. */
static void
pol_results_drop(struct pol_session *ps, int keep_session)
{
	int n = 0;

	for (int i = 0; i < ps->nresults; i++) {
		struct pol_result *r = &ps->results[i];
		if (keep_session && r->stage <= POL_HELO) {
			ps->results[n++] = *r;
			continue;
		}
		free(r->reason);
		free(r->authres);
	}
	ps->nresults = n;
	ps->score = 0;
	for (int i = 0; i < n; i++)
		ps->score += ps->results[i].score;
}

const struct mime_msg *
pol_mime(struct pol_session *ps, const struct pol_msg *msg)
{
	if (ps->mime == NULL)
		ps->mime = mime_parse(msg->data, msg->len);
	return ps->mime;
}

struct pol_result *
pol_result_add(struct pol_session *ps, const char *check, const char *result,
    double score, const char *authres, const char *fmt, ...)
{
	struct pol_result *r;
	va_list ap;

	if (ps->nresults == POL_MAX_RESULTS) {
		log_warn("%s: too many policy results; %s=%s not recorded",
		    ps->sid, check, result);
		return NULL;
	}
	r = &ps->results[ps->nresults++];
	memset(r, 0, sizeof(*r));
	snprintf(r->check, sizeof(r->check), "%s", check);
	snprintf(r->result, sizeof(r->result), "%s", result);
	r->score = score;
	r->authres = authres ? xstrdup(authres) : NULL;
	va_start(ap, fmt);
	if (fmt != NULL && fmt[0] == '%' && fmt[1] == 's' && fmt[2] == '\0') {
		/* the usual case, without vasprintf; glibc's text for NULL */
		const char *a = va_arg(ap, const char *);
		r->reason = xstrdup(a != NULL ? a : "(null)");
	} else if (fmt != NULL && vasprintf(&r->reason, fmt, ap) == -1)
		fatalx("out of memory");
	va_end(ap);
	ps->score += score;
	return r;
}

const struct pol_result *
pol_result_find(const struct pol_session *ps, const char *check)
{
	for (int i = ps->nresults - 1; i >= 0; i--)
		if (strcmp(ps->results[i].check, check) == 0)
			return &ps->results[i];
	return NULL;
}

void
pol_hard_set(struct pol_session *ps, enum pol_verdict v, int code,
    const char *status, int disconnect, const char *fmt, ...)
{
	va_list ap;

	if (ps->hard.set)
		return;
	ps->hard.set = 1;
	ps->hard.verdict = v;
	ps->hard.code = code;
	ps->hard.disconnect = disconnect;
	snprintf(ps->hard.status, sizeof(ps->hard.status), "%s", status);
	va_start(ap, fmt);
	vsnprintf(ps->hard.text, sizeof(ps->hard.text), fmt, ap);
	va_end(ap);
}

/* Does an allowlisting cover this stage? */
static int
pol_allowed(const struct pol_session *ps, enum pol_stage stage)
{
	if (ps->allow & (POL_ALLOW_SESSION | POL_ALLOW_TX))
		return 1;
	return stage == POL_RCPT && (ps->allow & POL_ALLOW_RCPT);
}

void
pol_run(struct pol_session *ps, enum pol_stage stage, const struct pol_msg *msg,
    struct pol_decision *d)
{
	(void)pol_run_stage(ps, stage, msg, d, NULL);
	pol_stage_done(ps, stage);
}

int
pol_run_here(struct pol_session *ps, enum pol_stage stage, const struct pol_msg *msg,
    struct pol_decision *d)
{
	struct pol_snap snap;
	unsigned ran = 0;
	int kept;

	pol_snap_take(ps, stage, &snap);
	ps->spec = 1;
	ps->spec_missed = 0;
	dns_spec_begin();
	log_hold();
	kept = pol_run_stage(ps, stage, msg, d, &ran) == 0;
	ps->spec = 0;
	dns_spec_end(kept);
	log_release(kept);
	pol_snap_end(ps, &snap, kept);
	if (!kept) {
		pol_decision_clear(d);
		return -1;
	}
	for (size_t i = 0; checks[i] != NULL; i++)
		if ((ran & 1u << i) && checks[i]->commit != NULL)
			checks[i]->commit(ps, stage);
	pol_stage_done(ps, stage);
	return 0;
}

int
pol_speculative(const struct pol_session *ps)
{
	return ps->spec;
}

int
pol_inline_msg(const struct pol_session *ps, const struct pol_msg *msg)
{
	return msg != NULL && (long long)msg->len <= ps->conf->inline_bytes;
}

void
pol_spec_miss(struct pol_session *ps)
{
	assert(ps->spec);
	ps->spec_missed = 1;
}

/* Did the speculation under way meet something it would wait for? */
static int
pol_missed(const struct pol_session *ps)
{
	return ps->spec && (ps->spec_missed || dns_spec_missed());
}

static void
pol_snap_take(const struct pol_session *ps, enum pol_stage stage, struct pol_snap *s)
{
	s->nresults = ps->nresults;
	s->score = ps->score;
	s->allow = ps->allow;
	s->dns = ps->dns;
	/* only rdns, at CONNECT, names the client */
	s->client_name = stage == POL_CONNECT ? xstrdup(ps->client_name) : NULL;
	memcpy(s->found, &ps->found, sizeof(s->found));
}

/* The snapshot goes; unless the run is kept, the session is first put
 * back as it was (the score as saved: summing again could round
 * otherwise). */
static void
pol_snap_end(struct pol_session *ps, struct pol_snap *s, int keep)
{
	if (!keep) {
		pol_results_cut(ps, s->nresults);
		ps->score = s->score;
		ps->allow = s->allow;
		ps->dns = s->dns;
		memcpy(&ps->found, s->found, sizeof(s->found));
		if (s->client_name != NULL) {
			free(ps->client_name);
			ps->client_name = s->client_name;
			s->client_name = NULL;
		}
	}
	free(s->client_name);
}

/* The stage's own side effects, once it is kept: the session counted
 * (CONNECT), quarantine housekeeping (MAIL). */
static void
pol_stage_done(struct pol_session *ps, enum pol_stage stage)
{
	if (stage == POL_CONNECT && !ps->dry_run)
		db_stat_add("session", time_wall(), 1);
	if (stage == POL_MAIL && !ps->dry_run)
		quar_tick(ps->conf);
}

/* Does this check run at this stage (registered, enabled -- greylisting
 * by the stage's domain policy, dompol.h -- and not left out
 * by --only)? */
static int
pol_check_on(const struct pol_session *ps, const struct pol_check *ck,
    enum pol_stage stage)
{
	int on;

	if (!(ck->stages & (1u << stage)))
		return 0;
	if (ck == &grey_check || ck == &grey_data_check)
		on = dompol_greylist(ps->conf, dompol_of_stage(ps, stage));
	else
		on = ck->enabled == NULL || ck->enabled(ps->conf);
	return on && pol_only_allows(ck->name);
}

/* The checks of the stage, then the decision. On a worker (ran NULL)
 * each check's side effects follow its run; in a speculation they are
 * left to pol_run_here (the checks that ran, in *ran), and the stage
 * stops at the first check that would have waited: -1. Else 0. */
static int
pol_run_stage(struct pol_session *ps, enum pol_stage stage, const struct pol_msg *msg,
    struct pol_decision *d, unsigned *ran)
{
	/* RFC 8601 5: nobody else may speak for our authserv-id. Set before
	 * the checks, so whatever keeps a copy at DATA can leave them out. */
	if (stage == POL_DATA && msg != NULL)
		d->nskip = authres_skips(msg->data, msg->len, ps->conf->hostname,
		    &d->skip);
	memset(&ps->hard, 0, sizeof(ps->hard));
	if (stage == POL_DATA && msg != NULL)
		pol_msg_fields(ps, msg);
	if (stage == POL_MAIL && !db_ok() && !pol_allowed(ps, stage)) {
		log_err("%s: database not writable; answering 451 to MAIL", ps->sid);
		pol_hard_set(ps, POL_TEMPFAIL, 451, "4.3.0", 0,
		    "Temporary local problem, please try again later");
	}
	if (stage == POL_RCPT)
		pol_relay_guard(ps);
	dompol_stage(ps, stage);
	for (size_t i = 0; checks[i] != NULL && !ps->hard.set; i++) {
		const struct pol_check *ck = checks[i];
		if (pol_allowed(ps, stage) || !pol_check_on(ps, ck, stage))
			continue;
		int before = ps->nresults;
		ck->run(ps, stage, msg);
		for (int j = before; j < ps->nresults; j++)
			ps->results[j].stage = stage;
		if (pol_missed(ps))
			return -1;
		if (ran != NULL)
			*ran |= 1u << i;
		else if (ck->commit != NULL)
			ck->commit(ps, stage);
	}
	pol_decide(ps, stage, msg, d);
	if (pol_missed(ps))
		return -1;
	ps->verdict = d->verdict;
	pol_reply_note(ps, d);
	return 0;
}

/* A recipient outside proxy.relay_domains / relay_recipients: refused
 * before any check runs (no greylist entry, no DNS), as Postfix's
 * reject_unauth_destination words it. */
static void
pol_relay_guard(struct pol_session *ps)
{
	char esc[LOG_ESCAPE_MAX];
	struct pol_result *r;

	if (ps->rcpt == NULL || relay_allows(ps->conf->relay_domains,
	    ps->conf->relay_recipients, ps->rcpt))
		return;
	log_escape(ps->rcpt, strlen(ps->rcpt), esc);
	r = pol_result_add(ps, "relay", "deny", 0, NULL, "<%s> is not a recipient we "
	    "relay for (proxy.relay_domains, proxy.relay_recipients)", esc);
	if (r != NULL)	/* a transaction's finding: it goes at its end */
		r->stage = POL_RCPT;
	pol_hard_set(ps, POL_REJECT, 554, "5.7.1", 0, "<%s>: Relay access denied", esc);
	ps->hard.binding = 1;
}

int
pol_stage_needed(const struct pol_session *ps, enum pol_stage stage,
    const struct pol_msg *msg)
{
	struct dompol_limits lim;

	/* Work pol_run() does around the checks: quar_tick may expire
	 * quarantined files; a score at quarantine_score already means a
	 * copy to store. */
	if (stage == POL_MAIL && quar_tick_due())
		return 1;
	if (stage == POL_DATA) {
		dompol_limits(ps->conf, dompol_of_stage(ps, stage), &lim);
		if (msg == NULL || msg->len > POL_INLINE_MSG_MAX || ps->score >= lim.quarantine)
			return 1;
	}
	if (pol_allowed(ps, stage))
		return 0;
	for (size_t i = 0; checks[i] != NULL; i++)
		if (checks[i]->blocks != NULL && pol_check_on(ps, checks[i], stage) &&
		    checks[i]->blocks(ps, stage, msg))
			return 1;
	return 0;
}

/* One header field's unfolded value, cut to POL_FIELD_MAX; h points at
 * the field's first byte, end at the end of the message (the empty line
 * that ends the header section is no continuation: it does not start
 * with white space). */
static char *
pol_field_value(const char *h, const char *end, size_t namelen)
{
	char *v = xmalloc(POL_FIELD_MAX + 1);
	size_t n = 0;
	const char *p = h + namelen;

	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	for (; p < end && n < POL_FIELD_MAX; p++) {
		if (*p == '\r' || *p == '\n') {
			/* a continuation line starts with white space */
			const char *q = p + (*p == '\r' && p + 1 < end && p[1] == '\n' ? 2 : 1);
			if (q >= end || (*q != ' ' && *q != '\t'))
				break;
			p = q - 1;
			continue;
		}
		v[n++] = *p;
	}
	v[n] = '\0';
	return v;
}

/* Message-ID, Subject and From for the verdict log and the checks: one
 * walk over the header lines, up to the empty line that ends the header
 * section ("\r\n\r\n"; without one, the whole message). */
static void
pol_msg_fields(struct pol_session *ps, const struct pol_msg *m)
{
	static const struct { const char *name; size_t len, off; } f[] = {
		{ "message-id:", 11, offsetof(struct pol_session, msgid) },
		{ "subject:", 8, offsetof(struct pol_session, subject) },
		{ "from:", 5, offsetof(struct pol_session, from_hdr) },
	};
	const char *end = m->data + m->len, *h, *nl;

	if (m->len >= 2 && m->data[0] == '\r' && m->data[1] == '\n')
		return;		/* an empty header section */
	for (h = m->data; h < end; h = nl ? nl + 1 : end) {
		/* an empty line after a CRLF-ended one: the header's end */
		if (h - m->data >= 2 && end - h >= 2 && h[0] == '\r' && h[1] == '\n' &&
		    h[-2] == '\r' && h[-1] == '\n')
			break;
		nl = memchr(h, '\n', (size_t)(end - h));
		for (size_t i = 0; i < ARRAY_SIZE(f); i++) {
			char **slot = (char **)((char *)ps + f[i].off);
			if (*slot == NULL && (*h | 0x20) == f[i].name[0] &&
			    (size_t)(end - h) > f[i].len && strncasecmp(h, f[i].name, f[i].len) == 0)
				*slot = pol_field_value(h, end, f[i].len);
		}
	}
}

/* Keep what we answered for the verdict log. */
static void
pol_reply_note(struct pol_session *ps, const struct pol_decision *d)
{
	if (d->verdict == POL_TEMPFAIL || d->verdict == POL_REJECT)
		snprintf(ps->reply, sizeof(ps->reply), "%d %s %s", d->code, d->status, d->text);
	else
		ps->reply[0] = '\0';
}

/* The reason of the result that added most to the score, for the reply. */
static const char *
pol_top_reason(const struct pol_session *ps)
{
	const struct pol_result *top = NULL;

	for (int i = 0; i < ps->nresults; i++) {
		const struct pol_result *r = &ps->results[i];
		if (r->score > 0 && r->reason && (top == NULL || r->score > top->score))
			top = r;
	}
	return top ? top->reason : NULL;
}

/* At DATA with policy.temperror_tempfail: a sender-authentication check
 * that could not decide makes the message wait rather than pass. */
static int
pol_auth_temperror(const struct pol_session *ps)
{
	const struct pol_found *f = &ps->found;

	return (f->spf.ran && f->spf.result == SPF_R_TEMPERROR) ||
	    f->dkim_last == AUTHRES_TEMPERROR || f->dmarc == AUTHRES_TEMPERROR;
}

static void
pol_decide(struct pol_session *ps, enum pol_stage stage, const struct pol_msg *msg,
    struct pol_decision *d)
{
	const struct conf *c = ps->conf;
	struct dompol_limits lim;

	dompol_limits(c, ps->dom_stage, &lim);
	/* No domain known: reject what every policy would. That bar is never
	 * below the global one, so below it the walk is not needed. */
	if (stage < POL_RCPT && ps->score >= lim.reject)
		lim.reject = dompol_reject_early(ps);
	d->score = ps->score;
	if (pol_allowed(ps, stage) && !ps->hard.binding) {
		d->verdict = POL_ACCEPT;
	} else if (ps->hard.set) {
		d->verdict = ps->hard.verdict;
		d->code = ps->hard.code;
		d->disconnect = ps->hard.disconnect;
		snprintf(d->status, sizeof(d->status), "%s", ps->hard.status);
		snprintf(d->text, sizeof(d->text), "%s", ps->hard.text);
	} else if (ps->score >= lim.reject) {
		const char *why = pol_top_reason(ps);
		d->verdict = POL_REJECT;
		d->code = stage == POL_CONNECT ? 554 : 550;
		d->disconnect = stage == POL_CONNECT;
		snprintf(d->status, sizeof(d->status), "5.7.1");
		if (why)
			snprintf(d->text, sizeof(d->text), "Service unavailable; %s", why);
		else
			snprintf(d->text, sizeof(d->text),
			    "Service unavailable; message scored %.1f, over the limit of %.1f",
			    ps->score, lim.reject);
	} else if (stage == POL_DATA && c->temperror_tempfail && pol_auth_temperror(ps)) {
		d->verdict = POL_TEMPFAIL;
		d->code = 451;
		snprintf(d->status, sizeof(d->status), "4.4.3");
		snprintf(d->text, sizeof(d->text),
		    "Sender authentication could not be checked (DNS), try again later");
	} else if (stage == POL_DATA && ps->score >= lim.quarantine) {
		d->verdict = POL_QUARANTINE;
	} else if (stage == POL_DATA && ps->score >= lim.tag) {
		d->verdict = POL_TAG;
	} else {
		d->verdict = POL_ACCEPT;
	}
	/* Committed before the 250, or turned into a 4xx (quar_store also
	 * refuses with 550 when quarantine.enabled = no). Storing waits on
	 * the disk: on the I/O loop the stage goes to a worker instead, which
	 * runs the stage's checks again. That is the price of one undo path
	 * for every miss: a DATA stage runs on the loop only when it is cheap
	 * (no content rules, an idle classifier), and quarantining is rare. */
	if (stage == POL_DATA && d->verdict == POL_QUARANTINE && msg != NULL &&
	    !ps->dry_run) {
		if (ps->spec)
			pol_spec_miss(ps);
		else
			quar_store(ps, msg, d);
	} else if (d->verdict == POL_QUARANTINE && !c->quarantine_enabled) {
		d->verdict = POL_REJECT;
		d->code = 550;
		snprintf(d->status, sizeof(d->status), "5.7.1");
		snprintf(d->text, sizeof(d->text), "Message refused as spam (score %.1f)",
		    ps->score);
	} else if (d->verdict == POL_QUARANTINE && d->code == 0) {
		d->code = 250;
		snprintf(d->status, sizeof(d->status), "2.0.0");
		snprintf(d->text, sizeof(d->text), "Ok");
	}
	if (stage == POL_DATA && (d->verdict == POL_ACCEPT || d->verdict == POL_TAG)) {
		char tail[96];
		snprintf(tail, sizeof(tail), "%sX-Spam-Score: %.1f\r\n",
		    d->verdict == POL_TAG ? "X-Spam-Flag: YES\r\n" : "", ps->score);
		d->prepend = pol_authres_header(ps, tail);
	}
}

/* Properties may quote what a client wrote (MAIL FROM): control
 * characters are left out, so none can fold or end our header. */
static int
pol_authres_char(char c)
{
	return (unsigned char)c >= 0x20 && c != 0x7f;
}

/* " " and props, cleaned, unless nothing of them is left. */
static void
pol_authres_props(struct buf *b, const char *props)
{
	while (*props != '\0' && !pol_authres_char(*props))
		props++;
	if (*props == '\0')
		return;
	buf_addc(b, ' ');
	for (; *props != '\0'; props++)
		if (pol_authres_char(*props))
			buf_addc(b, *props);
}

/* RFC 8601 header from the results that carry authres properties, then
 * tail. */
static char *
pol_authres_header(const struct pol_session *ps, const char *tail)
{
	struct buf b = { 0 };
	int any = 0;

	buf_adds(&b, "Authentication-Results: ");
	buf_adds(&b, ps->conf->hostname);
	for (int i = 0; i < ps->nresults; i++) {
		const struct pol_result *r = &ps->results[i];
		if (r->authres == NULL)
			continue;
		buf_printf(&b, ";\r\n\t%s=%s", r->check, r->result);
		pol_authres_props(&b, r->authres);
		any = 1;
	}
	buf_adds(&b, any ? "\r\n" : "; none\r\n");
	buf_adds(&b, tail);
	return buf_take(&b);
}

void
pol_decision_clear(struct pol_decision *d)
{
	free(d->prepend);
	free(d->skip);
	memset(d, 0, sizeof(*d));
}

static const char *outcome_names[] = {
	[POL_O_ACCEPT] = "accept", [POL_O_QUARANTINE] = "quarantine",
	[POL_O_REJECT] = "reject", [POL_O_TEMPFAIL] = "tempfail",
	[POL_O_BACKEND_REJECT] = "backend-reject",
	[POL_O_BACKEND_TEMPFAIL] = "backend-tempfail",
	[POL_O_BACKEND_LOST] = "backend-lost", [POL_O_ABANDONED] = "abandoned",
};

const char *
pol_outcome_name(enum pol_outcome o)
{
	return (unsigned)o < ARRAY_SIZE(outcome_names) ? outcome_names[o] : "?";
}

const char *
pol_last_verdict(const struct pol_session *ps)
{
	return pol_verdict_name((enum pol_verdict)ps->verdict);
}

void
pol_tx_record(struct pol_session *ps, const struct pol_end *e)
{
	struct db_check ck[POL_MAX_RESULTS];
	const char *one[1];
	struct db_verdict v = {
		.ts = time_wall(), .sid = ps->sid, .client_ip = ps->client_ip,
		.client_name = ps->client_name, .helo = ps->helo,
		.mail_from = ps->mail_from, .rcpts = (const char *const *)ps->rcpts,
		.nrcpts = ps->nrcpts, .size = e->size, .msgid = ps->msgid,
		.subject = ps->subject, .checks = ck, .nchecks = ps->nresults,
		.score = ps->score, .reply = e->reply,
		.outcome = pol_outcome_name(e->outcome), .stage = e->stage,
		.mta_reply = e->mta_reply, .ms = e->ms,
	};

	v.verdict = pol_last_verdict(ps);
	/* Refused at RCPT: the recipient under test is the one to show. */
	if (ps->nrcpts == 0 && ps->rcpt) {
		one[0] = ps->rcpt;
		v.rcpts = one;
		v.nrcpts = 1;
	}
	for (int i = 0; i < ps->nresults; i++)
		ck[i] = (struct db_check){ ps->results[i].check, ps->results[i].result,
		    ps->results[i].reason, ps->results[i].score };
	db_verdict_add(&v);
	stats_inc(STATS_MESSAGES, 1);
	stats_inc(STATS_BYTES, (long long)e->size);
	stats_verdict(v.verdict);
	stats_outcome(v.outcome);
	for (int i = 0; i < ps->nresults; i++)
		stats_check(ck[i].check, ck[i].result);
	stats_observe(STATS_H_TRANSACTION, e->ms / 1000.0);
}

void
pol_summary(const struct pol_session *ps, char *buf, size_t sz)
{
	size_t o = 0;

	buf[0] = '\0';
	for (int i = 0; i < ps->nresults && o < sz; i++) {
		const struct pol_result *r = &ps->results[i], *best = r;
		int seen = 0;

		/* One word per check: a message with three DKIM signatures
		 * logs dkim=pass when any passed, else its first result. */
		for (int j = 0; j < i && !seen; j++)
			seen = strcmp(ps->results[j].check, r->check) == 0;
		if (seen)
			continue;
		for (int j = i; j < ps->nresults && strcmp(best->result, "pass") != 0; j++)
			if (strcmp(ps->results[j].check, r->check) == 0 &&
			    strcmp(ps->results[j].result, "pass") == 0)
				best = &ps->results[j];
		o += (size_t)snprintf(buf + o, sz - o, "%s=%s ", r->check, best->result);
	}
	if (o < sz)
		snprintf(buf + o, sz - o, "score=%.1f", ps->score);
}
