/*
 * grey.c -- see grey.h.
 */
#include "grey.h"
#include "access.h"
#include "conf.h"
#include "db.h"
#include "policy_int.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define GREY_NET_MAX	64
#define GREY_ADDR_MAX	256	/* RFC 5321 4.5.3.1.3: path length */

static int	 grey_skip(struct pol_session *, char *why, size_t whysz);
static int	 grey_known(const char *, const char *, const char *, time_t,
		    const struct grey_params *);
static void	 grey_run(struct pol_session *, enum pol_stage, const struct pol_msg *);
static int	 grey_enabled(const struct conf *);
static void	 grey_lower(char *dst, const char *src, size_t dstsz);

const struct pol_check grey_check = {
	.name = "grey",
	.stages = 1u << POL_RCPT,
	.enabled = grey_enabled,
	.run = grey_run,
};

int
grey_step(struct db_grey_row *r, time_t now, void *arg, int *count_pass)
{
	struct grey_params *p = arg;

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
			*count_pass = 1;
			return GREY_PASS_RETRY;
		}
		/* An early retry does not restart the clock (postgrey). */
		r->last_seen = now;
		p->wait = p->delay - (now - r->first_seen);
		return GREY_EARLY;
	}
	/* Unknown, expired, or retried too late: start over. */
	r->found = 1;
	r->first_seen = r->last_seen = now;
	r->passed = 0;
	p->wait = p->delay;
	return GREY_NEW;
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

/* Reasons not to greylist this RCPT; 1 with why filled, else 0. */
static int
grey_skip(struct pol_session *ps, char *why, size_t whysz)
{
	const struct conf *c = ps->conf;
	const struct pol_result *r;
	const char *at = ps->mail_from ? strrchr(ps->mail_from, '@') : NULL;

	if ((r = pol_result_find(ps, "dnswl")) != NULL && strcmp(r->result, "listed") == 0) {
		snprintf(why, whysz, "client on a DNS allow list");
		return 1;
	}
	if (c->greylist_skip_spf_pass && at && grey_domain_listed(c->greylist_skip_domains, at + 1) &&
	    (r = pol_result_find(ps, "spf")) != NULL && strcmp(r->result, "pass") == 0) {
		snprintf(why, whysz, "SPF pass for %s", at + 1);
		return 1;
	}
	return 0;
}

/* A triplet that passed and was refreshed lately passes on a read, with
 * no write: 1; 0 when the state machine must run; -1 database error. */
static int
grey_known(const char *net, const char *sender, const char *rcpt, time_t now,
    const struct grey_params *p)
{
	struct db_grey_row r;
	long long touch = p->expire < GREY_TOUCH_S ? p->expire / 2 : GREY_TOUCH_S;

	if (db_grey_get(net, sender, rcpt, &r) == -1)
		return -1;
	return r.found && r.passed && now - r.last_seen >= 0 && now - r.last_seen < touch;
}

static int
grey_enabled(const struct conf *c)
{
	return c->greylist_enabled;
}

static void
grey_run(struct pol_session *ps, enum pol_stage stage, const struct pol_msg *m)
{
	const struct conf *c = ps->conf;
	struct grey_params p = { c->greylist_delay, c->greylist_retry_window,
	    c->greylist_expire, 0 };
	char net[GREY_NET_MAX], sender[GREY_ADDR_MAX], rcpt[GREY_ADDR_MAX], why[128];
	time_t now = time_wall();
	int a;

	(void)stage; (void)m;
	if (ps->rcpt == NULL || ps->mail_from == NULL)
		return;
	if (grey_skip(ps, why, sizeof(why))) {
		pol_result_add(ps, "grey", "skip", 0, NULL, "%s", why);
		return;
	}
	if (access_net((const struct sockaddr *)&ps->client, c->greylist_ipv4_prefix,
	    c->greylist_ipv6_prefix, net, sizeof(net)) == -1)
		return;
	if (c->greylist_auto_allow > 0) {
		a = db_grey_auto_allowed(net, c->greylist_auto_allow, now, c->greylist_expire);
		if (a == 1) {
			pol_result_add(ps, "grey", "auto", 0, NULL, "%s auto-allowlisted", net);
			return;
		}
		if (a == -1)
			goto dberr;
	}
	grey_lower(sender, *ps->mail_from ? ps->mail_from : "<>", sizeof(sender));
	grey_lower(rcpt, ps->rcpt, sizeof(rcpt));
	if ((a = grey_known(net, sender, rcpt, now, &p)) == -1)
		goto dberr;
	if (a == 1) {
		pol_result_add(ps, "grey", "pass", 0, NULL, "known triplet");
		return;
	}
	switch ((a = db_grey_update(net, sender, rcpt, now, grey_step, &p))) {
	case GREY_NEW:
	case GREY_EARLY:
		pol_result_add(ps, "grey", "defer", 0, NULL, "%s attempt",
		    a == GREY_NEW ? "first" : "early");
		pol_hard_set(ps, POL_TEMPFAIL, 450, "4.7.1", 0,
		    "Greylisted, try again in %lld seconds", p.wait);
		return;
	case GREY_PASS_RETRY:
	case GREY_PASS_KNOWN:
		pol_result_add(ps, "grey", "pass", 0, NULL, "%s",
		    a == GREY_PASS_RETRY ? "retried in time" : "known triplet");
		return;
	}
dberr:
	log_err("%s: greylist: database unavailable; answering 451", ps->sid);
	pol_result_add(ps, "grey", "temperror", 0, NULL, "database unavailable");
	pol_hard_set(ps, POL_TEMPFAIL, 451, "4.3.0", 0,
	    "Temporary local problem, please try again later");
}
