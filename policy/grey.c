/*
 * grey.c -- see grey.h.
 */
#include "policy/grey.h"
#include "db/db.h"
#include "lib/conf.h"
#include "lib/prefix.h"
#include "lib/util.h"
#include "policy/access.h"
#include "policy/greyc.h"
#include "policy/policy_int.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Recipients of this transaction whose greylisting waits for DKIM at the
 * end of DATA (ps->priv of grey_check; bounded by proxy.max_recipients),
 * and whether the RCPT stage under way decided that its recipient waits
 * too (added by grey_commit, once the stage is kept). */
struct grey_tx {
	char	**rcpts;
	int	  n;
	int	  wait;
};

#define GREY_NET_MAX	64
#define GREY_ADDR_MAX	256	/* RFC 5321 4.5.3.1.3: path length */

static int	 grey_skip(const struct pol_session *, char *why, size_t whysz);
static int	 grey_waits_for_dkim(const struct pol_session *);
static int	 grey_keys(const struct pol_session *, const char *rcpt_addr, char *net,
		    char *sender, char *rcpt);
static int	 grey_known(const char *, const char *, const char *, time_t,
		    const struct grey_params *, int cache_only);
static int	 grey_auto(const struct conf *, const char *net, time_t, int cache_only);
static void	 grey_cache_check(void);
static void	 grey_remember(const char *, const char *, const char *, time_t,
		    const struct grey_params *);
static int	 grey_step_row(struct db_grey_row *, time_t, struct grey_params *, int *);
static void	 grey_run(struct pol_session *, enum pol_stage, const struct pol_msg *);
static void	 grey_commit(struct pol_session *, enum pol_stage);
static int	 grey_enabled(const struct conf *);
static void	 grey_tx_reset(struct pol_session *);
static struct grey_tx *grey_tx(struct pol_session *, int create);
static void	 grey_data_run(struct pol_session *, enum pol_stage, const struct pol_msg *);
static int	 grey_update(struct pol_session *, const char *net, const char *sender,
		    const char *rcpt, time_t, struct grey_params *);
static int	 grey_triplet(struct pol_session *, const char *rcpt_addr, time_t now,
		    struct grey_params *);
static void	 grey_lower(char *dst, const char *src, size_t dstsz);
static void	 grey_defer(struct pol_session *, const struct grey_params *);
static void	 grey_deferred(struct pol_session *, const char *net, const char *sender,
		    const char *rcpt, int action, time_t pass_at);
static void	 grey_from_domain(const char *from, char *out, size_t outsz);
static int	 grey_accepted(const struct pol_session *, const char *rcpt);
static int	 grey_dkim_ok(const struct pol_session *);

const struct pol_check grey_check = {
	.name = "grey",
	.stages = 1u << POL_RCPT,
	.enabled = grey_enabled,
	.run = grey_run,
	.commit = grey_commit,
	.tx_reset = grey_tx_reset,
	.free = grey_tx_reset,
};

const struct pol_check grey_data_check = {
	.name = "grey",
	.stages = 1u << POL_DATA,
	.enabled = grey_enabled,
	.run = grey_data_run,
};

int
grey_step(struct db_grey_row *r, time_t now, void *arg, int *count_pass)
{
	struct grey_params *p = arg;
	int a = grey_step_row(r, now, p, count_pass);

	p->passed = r->passed;
	p->last_seen = r->last_seen;
	p->counted = *count_pass;
	return a;
}

static int
grey_step_row(struct db_grey_row *r, time_t now, struct grey_params *p, int *count_pass)
{
	*count_pass = 0;
	p->wait = 0;
	if (r->found && r->passed && now - r->last_seen <= p->expire) {
		r->last_seen = now;
		return GREY_PASS_KNOWN;
	}
	if (r->found && !r->passed && now - r->first_seen <= p->retry_window) {
		if (now - r->first_seen >= p->delay) {
			r->passed = 1;
			r->last_seen = now;
			r->attempts++;
			*count_pass = 1;
			return GREY_PASS_RETRY;
		}
		/* An early retry does not restart the clock (postgrey). */
		r->last_seen = now;
		r->attempts++;
		p->wait = p->delay - (now - r->first_seen);
		return GREY_EARLY;
	}
	/* Unknown, expired, or retried too late: start over. */
	r->found = 1;
	r->first_seen = r->last_seen = now;
	r->passed = 0;
	r->attempts = 1;
	p->wait = p->delay;
	return GREY_NEW;
}

/* A pass by hand: the triplet passes from now on, as if retried in time,
 * without counting towards the network's auto-allowlisting (a person, not
 * the client, proved it). */
static int
grey_step_hand(struct db_grey_row *r, time_t now, void *arg, int *count_pass)
{
	struct grey_params *p = arg;

	*count_pass = 0;
	if (!r->found) {
		r->found = 1;
		r->first_seen = now;
	}
	r->passed = 1;
	r->last_seen = now;
	p->passed = 1;
	p->last_seen = now;
	p->counted = 0;
	return GREY_PASS_RETRY;
}

int
grey_hand_pass(const char *net, const char *sender, const char *rcpt)
{
	struct grey_params p = { 0 };
	struct db_grey_row r;

	if (db_grey_get(net, sender, rcpt, &r) == -1)
		return -1;
	if (!r.found)
		return 0;
	if (db_grey_update(net, sender, rcpt, time_wall(), grey_step_hand, &p) == -1)
		return -1;
	grey_remember(net, sender, rcpt, time_wall(), &p);
	return 1;
}

int
grey_hand_forget(const char *net, const char *sender, const char *rcpt)
{
	/* The memory first: a pass it kept must not outlive the row. */
	greyc_triplet_forget(net, sender, rcpt);
	return db_grey_forget(net, sender, rcpt);
}

int
grey_domain_listed(const char *list, const char *domain)
{
	const char *p = list ? list : "";
	char entry[GREY_ADDR_MAX];

	for (;;) {
		p += strspn(p, ", \t");
		if (*p == '\0')
			return 0;
		size_t len = strcspn(p, ", \t");
		if (len < sizeof(entry)) {
			memcpy(entry, p, len);
			entry[len] = '\0';
			if (access_name_match(entry, domain))
				return 1;
		}
		p += len;
	}
}

static void
grey_lower(char *dst, const char *src, size_t dstsz)
{
	size_t i;

	for (i = 0; src[i] && i + 1 < dstsz; i++)
		dst[i] = (src[i] >= 'A' && src[i] <= 'Z') ? (char)(src[i] + 32) : src[i];
	dst[i] = '\0';
}

/* Does a host name look like an access network's generic name (a
 * dynamic pool, not a mail server's own)? A label naming the kind of line
 * (dyn, dhcp, dsl, pool, ppp, dial, cable, ...), or a first label holding
 * three or more runs of digits ("203-0-113-5", "c-73-12-4-1"). */
int
grey_name_dynamic(const char *name)
{
	static const char *const words[] = { "dyn", "dynamic", "dhcp", "dsl", "adsl",
	    "xdsl", "vdsl", "pool", "ppp", "pppoe", "dial", "dialup", "dialin", "cable",
	    "broadband", "dip", "client", "clients", "customer", "res", "residential",
	    "catv", "ftth", "fibre", "fiber", "mobile", NULL };
	const char *p = name;
	int runs = 0, first = 1;

	while (*p) {
		size_t n = strcspn(p, ".-_0123456789");
		for (int i = 0; words[i] && n > 0; i++)
			if (strlen(words[i]) == n && strncasecmp(p, words[i], n) == 0)
				return 1;
		p += n;
		if (*p >= '0' && *p <= '9') {
			runs += first;
			p += strspn(p, "0123456789");
		} else if (*p == '.') {
			if (first && runs >= 3)
				return 1;
			first = 0;
			p++;
		} else if (*p)
			p++;
	}
	return first && runs >= 3;
}

/* Reasons not to greylist this RCPT; 1 with why filled, else 0. */
static int
grey_skip(const struct pol_session *ps, char *why, size_t whysz)
{
	const struct conf *c = ps->conf;
	const char *at = ps->mail_from ? strrchr(ps->mail_from, '@') : NULL;

	if (ps->found.dnswl != 0) {
		snprintf(why, whysz, "client on a DNS allow list");
		return 1;
	}
	/* As Fastmail does: a big sender's pool retries from another address,
	 * and such pools have verified, static names. */
	if (c->greylist_only_unverified && strcmp(pol_client_name(ps), "unknown") != 0 &&
	    !grey_name_dynamic(pol_client_name(ps))) {
		snprintf(why, whysz, "verified client name %.64s", pol_client_name(ps));
		return 1;
	}
	if (c->greylist_skip_spf_pass && at && grey_domain_listed(c->greylist_skip_domains, at + 1) &&
	    ps->found.spf.ran && ps->found.spf.result == SPF_R_PASS) {
		snprintf(why, whysz, "SPF pass for %s", at + 1);
		return 1;
	}
	return 0;
}

/* What greyc kept, forgotten when the greylist's token moved: a triplet
 * forgotten by hand on another node (or by another process) must not
 * stay passed here. Such edits are rare; after one, each kept answer is
 * read once more. Other admin edits (rules, lists, users, domains) move
 * another token and leave this memory alone: they change nothing it
 * holds. */
static void
grey_cache_check(void)
{
	static _Atomic unsigned long long seen;
	unsigned long long tok = db_grey_token(), old = atomic_load(&seen);

	if (tok != old && atomic_compare_exchange_strong(&seen, &old, tok))
		greyc_clear();
}

/* A triplet that passed and was refreshed lately passes on a read, with
 * no write: 1; 0 when the state machine must run; -1 database error; with
 * cache_only, -2 when only the database could tell. */
static int
grey_known(const char *net, const char *sender, const char *rcpt, time_t now,
    const struct grey_params *p, int cache_only)
{
	struct db_grey_row r;
	long long touch = p->expire < GREY_TOUCH_S ? p->expire / 2 : GREY_TOUCH_S;
	time_t seen;

	grey_cache_check();
	if (greyc_triplet_get(net, sender, rcpt, &seen) && now - seen >= 0 && now - seen < touch)
		return 1;
	if (cache_only)
		return -2;
	if (db_grey_get(net, sender, rcpt, &r) == -1)
		return -1;
	if (r.found && r.passed)
		greyc_triplet_put(net, sender, rcpt, r.last_seen, 0);
	return r.found && r.passed && now - r.last_seen >= 0 && now - r.last_seen < touch;
}

/* Has net passed greylisting.auto_allow times, lately? 1 yes, 0 no, -1
 * database error; with cache_only, -2 when only the database could tell.
 * The same judgment as db_grey_auto_allowed, on what greyc kept. */
static int
grey_auto(const struct conf *c, const char *net, time_t now, int cache_only)
{
	int passes;
	time_t seen;
	long long age;
	unsigned long gen;

	if (greyc_net_get(net, &passes, &seen, &age)) {
		if (passes >= c->greylist_auto_allow && seen + c->greylist_expire >= now)
			return 1;
		if (age >= 0 && age < GREYC_NEG_MS)
			return 0;
	}
	if (cache_only)
		return -2;
	gen = greyc_net_gen();
	if (db_grey_auto_get(net, &passes, &seen) == -1)
		return -1;
	greyc_net_put(net, passes, seen, gen);
	return passes >= c->greylist_auto_allow && seen + c->greylist_expire >= now;
}

/* After a committed db_grey_update: what it stored, into greyc. */
static void
grey_remember(const char *net, const char *sender, const char *rcpt, time_t now,
    const struct grey_params *p)
{
	if (!p->passed)
		return;
	greyc_triplet_put(net, sender, rcpt, p->last_seen, 1);
	/* db_run_grey: a passed row also stamps the network's row now */
	if (p->counted)
		greyc_net_forget(net);
	else
		greyc_net_seen(net, now);
}

static struct grey_tx *
grey_tx(struct pol_session *ps, int create)
{
	int slot = pol_check_slot(&grey_check);

	if (ps->priv[slot] == NULL && create)
		ps->priv[slot] = xcalloc(1, sizeof(struct grey_tx));
	return ps->priv[slot];
}

static void
grey_tx_reset(struct pol_session *ps)
{
	struct grey_tx *t = grey_tx(ps, 0);

	if (t == NULL)
		return;
	for (int i = 0; i < t->n; i++)
		free(t->rcpts[i]);
	free(t->rcpts);
	free(t);
	ps->priv[pol_check_slot(&grey_check)] = NULL;
}

static int
grey_enabled(const struct conf *c)
{
	return c->greylist_enabled;
}

/* The triplet's parts, lower-case; -1 when the client is not an IP
 * address (nothing to key on). */
static int
grey_keys(const struct pol_session *ps, const char *rcpt_addr, char *net,
    char *sender, char *rcpt)
{
	const struct conf *c = ps->conf;

	if (prefix_net((const struct sockaddr *)&ps->client, c->greylist_ipv4_prefix,
	    c->greylist_ipv6_prefix, net, GREY_NET_MAX) == -1)
		return -1;
	grey_lower(sender, *ps->mail_from ? ps->mail_from : "<>", GREY_ADDR_MAX);
	grey_lower(rcpt, rcpt_addr, GREY_ADDR_MAX);
	return 0;
}

/* The triplet's next state, stored (and kept in greyc), or for `postern
 * check` only worked out from the stored row: GREY_*, or -1 on a database
 * error. */
static int
grey_update(struct pol_session *ps, const char *net, const char *sender,
    const char *rcpt, time_t now, struct grey_params *p)
{
	struct db_grey_row r;
	int a, counted;

	if (ps->dry_run && !ps->record_grey) {
		if (db_grey_get(net, sender, rcpt, &r) == -1)
			return -1;
		return grey_step(&r, now, p, &counted);
	}
	if ((a = db_grey_update(net, sender, rcpt, now, grey_step, p)) != -1)
		grey_remember(net, sender, rcpt, now, p);
	return a;
}

/* Why a triplet was deferred, for people: "new triplet", or "retry too
 * early (passes at 2026-12-07T05:30:00Z)" -- the same words in the check
 * result (the verdict row) and in a log line of its own, so an admin who
 * sees the 450 can tell a stranger from an impatient retry. */
static void
grey_deferred(struct pol_session *ps, const char *net, const char *sender,
    const char *rcpt, int a, time_t pass_at)
{
	char why[80], at[32], esc[LOG_ESCAPE_MAX], esc2[LOG_ESCAPE_MAX];
	struct tm tm;

	if (a == GREY_NEW)
		snprintf(why, sizeof(why), "new triplet");
	else {
		gmtime_r(&pass_at, &tm);
		strftime(at, sizeof(at), "%Y-%m-%dT%H:%M:%SZ", &tm);
		snprintf(why, sizeof(why), "retry too early (passes at %s)", at);
	}
	pol_result_add(ps, "grey", "defer", 0, NULL, "%s", why);
	log_info("%s: greylist: defer %s from=<%s> to=<%s>: %s", ps->sid, net,
	    log_escape(sender, strlen(sender), esc), log_escape(rcpt, strlen(rcpt), esc2), why);
}

/* One triplet through greylisting, with the result recorded: GREY_*,
 * GREY_AUTO for an auto-allowlisted network, or -1 on a database error
 * (answered 451 here). p->wait says how long a deferred client waits.
 * In a speculative run only greyc answers: what needs the database --
 * a read, or the state machine's write -- is GREY_MISSED (pol_spec_miss),
 * and the stage is done again on a worker. */
#define GREY_AUTO	100
#define GREY_MISSED	(-2)
static int
grey_triplet(struct pol_session *ps, const char *rcpt_addr, time_t now,
    struct grey_params *p)
{
	const struct conf *c = ps->conf;
	char net[GREY_NET_MAX], sender[GREY_ADDR_MAX], rcpt[GREY_ADDR_MAX];
	int a;

	if (grey_keys(ps, rcpt_addr, net, sender, rcpt) == -1)
		return GREY_PASS_KNOWN;
	if (c->greylist_auto_allow > 0) {
		a = grey_auto(c, net, now, pol_speculative(ps));
		if (a == 1) {
			pol_result_add(ps, "grey", "auto", 0, NULL, "%s auto-allowlisted", net);
			return GREY_AUTO;
		}
		if (a == -1)
			goto dberr;
		if (a == -2)
			goto missed;
	}
	if ((a = grey_known(net, sender, rcpt, now, p, pol_speculative(ps))) == -1)
		goto dberr;
	if (a == 1)
		a = GREY_PASS_KNOWN;
	else if (pol_speculative(ps))
		goto missed;
	else if ((a = grey_update(ps, net, sender, rcpt, now, p)) == -1)
		goto dberr;
	if (a == GREY_NEW || a == GREY_EARLY)
		grey_deferred(ps, net, sender, rcpt, a, now + p->wait);
	else
		pol_result_add(ps, "grey", "pass", 0, NULL, "%s",
		    a == GREY_PASS_RETRY ? "retried in time" : "known triplet");
	return a;
dberr:
	log_err("%s: greylist: database unavailable; answering 451", ps->sid);
	pol_result_add(ps, "grey", "temperror", 0, NULL, "database unavailable");
	pol_hard_set(ps, POL_TEMPFAIL, 451, "4.3.0", 0,
	    "Temporary local problem, please try again later");
	return -1;
missed:
	pol_spec_miss(ps);
	return GREY_MISSED;
}

static void
grey_defer(struct pol_session *ps, const struct grey_params *p)
{
	pol_hard_set(ps, POL_TEMPFAIL, 450, "4.7.1", 0,
	    "Greylisted, try again in %lld seconds", p->wait);
}

static void
grey_run(struct pol_session *ps, enum pol_stage stage, const struct pol_msg *m)
{
	const struct conf *c = ps->conf;
	struct grey_params p = { c->greylist_delay, c->greylist_retry_window,
	    c->greylist_expire, 0, 0, 0, 0 };
	struct grey_tx *t = grey_tx(ps, 0);
	char why[128];
	int a;

	(void)stage; (void)m;
	if (t != NULL)
		t->wait = 0;	/* what an undone run decided */
	if (ps->rcpt == NULL || ps->mail_from == NULL)
		return;
	if (grey_skip(ps, why, sizeof(why))) {
		pol_result_add(ps, "grey", "skip", 0, NULL, "%s", why);
		return;
	}
	/* A skip domain may still prove itself with DKIM: decide at DATA. */
	if (grey_waits_for_dkim(ps)) {
		grey_tx(ps, 1)->wait = 1;
		pol_result_add(ps, "grey", "deferred", 0, NULL, "decided at DATA (DKIM)");
		return;
	}
	a = grey_triplet(ps, ps->rcpt, time_wall(), &p);
	if (a == GREY_NEW || a == GREY_EARLY)
		grey_defer(ps, &p);
}

/* The recipient whose greylisting waits for DKIM joins the list. */
static void
grey_commit(struct pol_session *ps, enum pol_stage stage)
{
	struct grey_tx *t = grey_tx(ps, 0);

	(void)stage;
	if (t == NULL || !t->wait)
		return;
	t->rcpts = xrealloc(t->rcpts, sizeof(char *) * (size_t)(t->n + 1));
	t->rcpts[t->n++] = xstrdup(ps->rcpt);
	t->wait = 0;
}

/* Is the envelope sender from a skip domain that may still prove itself
 * with DKIM at the end of DATA? */
static int
grey_waits_for_dkim(const struct pol_session *ps)
{
	const struct conf *c = ps->conf;
	const char *at = strrchr(ps->mail_from, '@');

	return c->greylist_skip_dkim_pass && at &&
	    grey_domain_listed(c->greylist_skip_domains, at + 1);
}

/* The From header's domain, lower-case, or "" (RFC 5322 3.6.2, loosely:
 * after the last '@', up to '>', space or the end). */
static void
grey_from_domain(const char *from, char *out, size_t outsz)
{
	const char *at = from ? strrchr(from, '@') : NULL;
	size_t n;

	out[0] = '\0';
	if (at == NULL)
		return;
	n = strcspn(at + 1, "> \t;,");
	if (n >= outsz)
		return;
	grey_lower(out, at + 1, n + 1);
}

/* A verifying DKIM signature by a skip domain aligned (relaxed: the same
 * domain, or one a subdomain of the other) with the From domain? */
static int
grey_dkim_ok(const struct pol_session *ps)
{
	const struct conf *c = ps->conf;
	char from[GREY_ADDR_MAX], d[GREY_ADDR_MAX];

	grey_from_domain(ps->from_hdr, from, sizeof(from));
	if (*from == '\0')
		return 0;
	for (int i = 0; i < ps->found.ndkim; i++) {
		if (ps->found.dkim[i].result != AUTHRES_PASS)
			continue;
		grey_lower(d, ps->found.dkim[i].domain, sizeof(d));
		if ((access_name_match(d, from) || access_name_match(from, d)) &&
		    grey_domain_listed(c->greylist_skip_domains, d))
			return 1;
	}
	return 0;
}

/* Did the backend take this recipient? */
static int
grey_accepted(const struct pol_session *ps, const char *rcpt)
{
	for (int i = 0; i < ps->nrcpts; i++)
		if (strcmp(ps->rcpts[i], rcpt) == 0)
			return 1;
	return 0;
}

/* End of DATA, for the recipients whose greylisting waited for DKIM (not
 * the allowlisted ones, nor those the backend refused). */
static void
grey_data_run(struct pol_session *ps, enum pol_stage stage, const struct pol_msg *m)
{
	const struct conf *c = ps->conf;
	struct grey_params p = { c->greylist_delay, c->greylist_retry_window,
	    c->greylist_expire, 0, 0, 0, 0 };
	struct grey_tx *t = grey_tx(ps, 0);
	time_t now = time_wall();
	int defer = 0;

	(void)stage; (void)m;
	if (t == NULL || t->n == 0)
		return;
	if (grey_dkim_ok(ps)) {
		pol_result_add(ps, "grey", "skip", 0, NULL, "DKIM pass for a skip domain");
		return;
	}
	for (int i = 0; i < t->n; i++) {
		if (!grey_accepted(ps, t->rcpts[i]))
			continue;
		int a = grey_triplet(ps, t->rcpts[i], now, &p);
		if (a < 0)
			return;
		defer |= a == GREY_NEW || a == GREY_EARLY;
	}
	if (defer)
		grey_defer(ps, &p);
}
