/*
 * dompol.c -- see dompol.h. Reads the [domain NAME] sections conf.c
 * parsed and the dashboard's entries (policy/domtab.h), both with lists
 * lower-case "a, b"; a value a policy does not set is the global one
 * (conf_domain.set), so comparing two policies is comparing values, and
 * nothing here allocates but the session's reference to the dashboard's
 * table.
 */
#include "policy/dompol.h"
#include "lib/conf.h"
#include "lib/lim.h"
#include "lib/prefix.h"
#include "lib/util.h"
#include "policy/access.h"
#include "policy/domtab.h"
#include "policy/policy_int.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* A policy's name in logs and verdict rows. */
#define DOMPOL_NAME(d)	((d) ? (d)->name : "the global policy")

static const char *dompol_list(const struct conf_domain *, int key);
static const struct conf_domain *dompol_nth(const struct conf *, const struct domtab *,
		    int i);
static struct domtab *dompol_tab(const struct pol_session *);
static void	 dompol_pin(struct pol_session *, int stage);
static int	 dompol_blocks(const struct pol_session *, enum pol_stage,
		    const struct pol_msg *);
static void	 dompol_free(struct pol_session *);
static int	 dompol_match(const char *list, const struct sockaddr *client,
		    const char *sender, char *entry, size_t entrysz);
static void	 dompol_note(struct pol_session *, int stage);
static void	 dompol_split(struct pol_session *);
static void	 dompol_run(struct pol_session *, enum pol_stage, const struct pol_msg *);

const struct pol_check dompol_check = {
	.name = "domain",
	.stages = 1u << POL_RCPT | 1u << POL_DATA,
	.run = dompol_run,
	.blocks = dompol_blocks,
	.free = dompol_free,
};

/* Policy i of the config's sections, then of the dashboard's entries;
 * NULL past the last. */
static const struct conf_domain *
dompol_nth(const struct conf *c, const struct domtab *t, int i)
{
	return i < c->ndomains ? &c->domains[i] : domtab_at(t, i - c->ndomains);
}

/* The dashboard's table the session reads, or NULL. */
static struct domtab *
dompol_tab(const struct pol_session *ps)
{
	return ps->priv[pol_check_slot(&dompol_check)];
}

/* Take the newest dashboard table while no recipient has fixed the
 * transaction's policy (ps->dom points into the table; DATA has its
 * recipients); read it from the database only on a worker (dompol_blocks
 * sends the stage there). */
static void
dompol_pin(struct pol_session *ps, int stage)
{
	struct domtab *t = dompol_tab(ps), *nt;

	if (stage > POL_RCPT || (stage == POL_RCPT && ps->nrcpts > 0) || !domtab_stale(t))
		return;
	if ((nt = domtab_get(!pol_speculative(ps))) == NULL)
		return;
	domtab_unref(t);
	ps->priv[pol_check_slot(&dompol_check)] = nt;
}

/* A recipient's policy is still open and the table is older than the
 * last admin edit: a worker reads it. */
static int
dompol_blocks(const struct pol_session *ps, enum pol_stage stage,
    const struct pol_msg *m)
{
	(void)m;
	return ps != NULL && stage == POL_RCPT && ps->nrcpts == 0 &&
	    domtab_stale(dompol_tab(ps));
}

static void
dompol_free(struct pol_session *ps)
{
	int slot = pol_check_slot(&dompol_check);

	domtab_unref(ps->priv[slot]);
	ps->priv[slot] = NULL;
}

/* The config's sections come first: of a section and a dashboard entry
 * of the same name, the section wins. */
const struct conf_domain *
dompol_find(const struct conf *c, const struct domtab *t, const char *rcpt)
{
	const char *at = rcpt ? strrchr(rcpt, '@') : NULL;
	const struct conf_domain *best = NULL, *d;
	size_t dl, bestlen = 0;

	if (at == NULL || at[1] == '\0')
		return NULL;
	dl = strlen(at + 1);
	for (int i = 0; (d = dompol_nth(c, t, i)) != NULL; i++) {
		size_t n = strlen(d->name);
		if (d->name[0] != '.') {
			if (strcasecmp(d->name, at + 1) == 0)
				return d;	/* the exact name beats any parent */
		} else if (dl > n && n > bestlen && strcasecmp(at + 1 + dl - n, d->name) == 0) {
			best = d;
			bestlen = n;
		}
	}
	return best;
}

/* A list key's entries; "" for the global policy, which has none here. */
static const char *
dompol_list(const struct conf_domain *d, int key)
{
	return d ? d->lists[key - CONF_DOM_LIST0] : "";
}

int
dompol_same(const struct conf *c, const struct conf_domain *a,
    const struct conf_domain *b)
{
	struct dompol_limits la, lb;

	if (a == b)
		return 1;
	dompol_limits(c, a, &la);
	dompol_limits(c, b, &lb);
	if (la.tag != lb.tag || la.quarantine != lb.quarantine || la.reject != lb.reject ||
	    dompol_greylist(c, a) != dompol_greylist(c, b))
		return 0;
	for (int k = CONF_DOM_LIST0; k < CONF_DOM_NKEYS; k++)
		if (strcmp(dompol_list(a, k), dompol_list(b, k)) != 0)
			return 0;
	return 1;
}

void
dompol_limits(const struct conf *c, const struct conf_domain *d,
    struct dompol_limits *out)
{
	unsigned set = d ? d->set : 0;

	out->tag = set & 1u << CONF_DOM_TAG ? d->tag_score : c->tag_score;
	out->quarantine = set & 1u << CONF_DOM_QUARANTINE ? d->quarantine_score :
	    c->quarantine_score;
	out->reject = set & 1u << CONF_DOM_REJECT ? d->reject_score : c->reject_score;
}

double
dompol_reject_early(const struct pol_session *ps)
{
	const struct conf *c = ps->conf;
	const char *from = ps->mail_from ? ps->mail_from : "", *what;
	const struct domtab *t = dompol_tab(ps);
	const struct conf_domain *d;
	char entry[LIM_PATH + 1];

	for (int i = 0; (d = dompol_nth(c, t, i)) != NULL; i++)
		if (dompol_lists(d, (const struct sockaddr *)&ps->client, from,
		    entry, sizeof(entry), &what) == DOMPOL_ALLOW)
			return HUGE_VAL;
	return dompol_reject_max(c, t);
}

double
dompol_reject_max(const struct conf *c, const struct domtab *t)
{
	const struct conf_domain *d;
	struct dompol_limits l;
	double r = c->reject_score;

	for (int i = 0; (d = dompol_nth(c, t, i)) != NULL; i++) {
		dompol_limits(c, d, &l);
		if (l.reject > r)
			r = l.reject;
	}
	return r;
}

int
dompol_greylist(const struct conf *c, const struct conf_domain *d)
{
	return d && d->set & 1u << CONF_DOM_GREYLIST ? d->greylist_enabled :
	    c->greylist_enabled;
}

const struct conf_domain *
dompol_of_rcpt(const struct pol_session *ps, const char *rcpt)
{
	return dompol_find(ps->conf, dompol_tab(ps), rcpt);
}

const struct conf_domain *
dompol_of_stage(const struct pol_session *ps, int stage)
{
	return stage == POL_RCPT ? dompol_of_rcpt(ps, ps->rcpt) :
	    stage == POL_DATA ? ps->dom : NULL;
}

/* Does an entry of list (clients when client is set, else senders)
 * match? 1 with it in entry, or 0. */
static int
dompol_match(const char *list, const struct sockaddr *client, const char *sender,
    char *entry, size_t entrysz)
{
	char tok[LIM_PATH + 1];
	struct prefix p;

	for (const char *s = list; *s != '\0'; ) {
		size_t n = strcspn(s, ", ");
		if (n > 0 && n <= LIM_PATH) {
			memcpy(tok, s, n);
			tok[n] = '\0';
			if (client ? prefix_parse(tok, &p) == 0 && prefix_match(&p, client) :
			    access_name_match(tok, sender)) {
				snprintf(entry, entrysz, "%s", tok);
				return 1;
			}
		}
		s += n + strspn(s + n, ", ");
	}
	return 0;
}

enum dompol_hit
dompol_lists(const struct conf_domain *d, const struct sockaddr *client,
    const char *sender, char *entry, size_t entrysz, const char **what)
{
	static const struct { int key; enum dompol_hit hit; int client; } order[] = {
		{ CONF_DOM_ALLOW_CLIENTS, DOMPOL_ALLOW, 1 },
		{ CONF_DOM_ALLOW_SENDERS, DOMPOL_ALLOW, 0 },
		{ CONF_DOM_DENY_CLIENTS, DOMPOL_DENY, 1 },
		{ CONF_DOM_DENY_SENDERS, DOMPOL_DENY, 0 },
	};

	if (d == NULL)
		return DOMPOL_NONE;
	for (size_t i = 0; i < ARRAY_SIZE(order); i++) {
		if (!order[i].client && *sender == '\0')
			continue;	/* <> is no sender a list can name */
		if (dompol_match(dompol_list(d, order[i].key), order[i].client ? client : NULL,
		    sender, entry, entrysz)) {
			*what = order[i].client ? "client" : "sender";
			return order[i].hit;
		}
	}
	return DOMPOL_NONE;
}

void
dompol_describe(const struct conf *c, const struct conf_domain *d, char *buf,
    size_t sz)
{
	struct dompol_limits l;

	dompol_limits(c, d, &l);
	snprintf(buf, sz, "tag %g, quarantine %g, reject %g, greylisting %s",
	    l.tag, l.quarantine, l.reject, dompol_greylist(c, d) ? "on" : "off");
}

void
dompol_stage(struct pol_session *ps, int stage, int split)
{
	if (split)
		dompol_pin(ps, stage);
	ps->dom_stage = dompol_of_stage(ps, stage);
	if (!split || ps->hard.set || (stage != POL_RCPT && stage != POL_DATA))
		return;
	if (stage == POL_RCPT && ps->nrcpts > 0 &&
	    !dompol_same(ps->conf, ps->dom, ps->dom_stage))
		dompol_split(ps);
	else if (ps->conf->ndomains > 0 || domtab_count(dompol_tab(ps)) > 0)
		/* with domain policies, say which one decides */
		dompol_note(ps, stage);
}

/* RFC 5321 4.5.3.1.10: a recipient refused with 452 comes back in a
 * later transaction; the client does that for a recipient limit, and
 * Postfix's policy services use it the same way. Binding: no allowlist
 * may join two policies in one message. */
static void
dompol_split(struct pol_session *ps)
{
	const char *mine = DOMPOL_NAME(ps->dom_stage), *tx = DOMPOL_NAME(ps->dom);
	char esc[LOG_ESCAPE_MAX];
	struct pol_result *r = NULL;
	int noted = 0;

	log_escape(ps->rcpt, strlen(ps->rcpt), esc);
	for (int i = 0; i < ps->nresults && !noted; i++)
		noted = !strcmp(ps->results[i].check, "domain") &&
		    !strcmp(ps->results[i].result, "split");
	if (!noted)	/* once per transaction: 100 recipients fit no row */
		r = pol_result_add(ps, "domain", "split", 0, NULL, "<%s> has the policy of "
		    "%s, this transaction that of %s: 452, sent again in a separate "
		    "transaction", esc, mine, tx);
	if (r != NULL)
		r->stage = POL_RCPT;
	log_info("%s: domain policy: <%s> (%s) is not %s's: 452, a separate transaction",
	    ps->sid, esc, mine, tx);
	pol_hard_set(ps, POL_TEMPFAIL, 452, "4.5.3", 0, "<%s>: Recipient of another "
	    "domain policy; send it again in a separate transaction", esc);
	ps->hard.binding = 1;
}

/* The verdict row names the domain policy that decides the stage: once
 * per transaction and policy (the last such result is the one in force). */
static void
dompol_note(struct pol_session *ps, int stage)
{
	const char *name = DOMPOL_NAME(ps->dom_stage);
	const struct pol_result *last = NULL;
	size_t n = strlen(name);
	char how[128];
	struct pol_result *r;

	for (int i = 0; i < ps->nresults; i++)
		if (!strcmp(ps->results[i].check, "domain") &&
		    !strcmp(ps->results[i].result, "policy"))
			last = &ps->results[i];
	if (last != NULL && last->reason != NULL && strncmp(last->reason, name, n) == 0 &&
	    last->reason[n] == ':')
		return;
	dompol_describe(ps->conf, ps->dom_stage, how, sizeof(how));
	if ((r = pol_result_add(ps, "domain", "policy", 0, NULL, "%s: %s", name, how)) != NULL)
		r->stage = stage;
}

/* The domain's lists for the recipient under test (RCPT) or the
 * transaction (DATA: an allowed sender or client skips the content
 * checks, as it skipped the recipient's). */
static void
dompol_run(struct pol_session *ps, enum pol_stage stage, const struct pol_msg *m)
{
	const struct conf_domain *d = ps->dom_stage;
	char entry[LIM_PATH + 1], esc[LOG_ESCAPE_MAX], resc[LOG_ESCAPE_MAX];
	const char *from = ps->mail_from ? ps->mail_from : "", *what = "", *who;
	enum dompol_hit hit;

	(void)m;
	hit = dompol_lists(d, (const struct sockaddr *)&ps->client, from, entry,
	    sizeof(entry), &what);
	if (hit == DOMPOL_NONE)
		return;
	who = *what == 'c' ? ps->client_ip : log_escape(from, strlen(from), esc);
	if (hit == DOMPOL_ALLOW) {
		if (stage == POL_RCPT)
			pol_result_add(ps, "domain", "allow", 0, NULL, "%s %s allowlisted "
			    "for %s (%s)", what, who, d->name, entry);
		ps->allow |= stage == POL_DATA ? POL_ALLOW_TX : POL_ALLOW_RCPT;
		return;
	}
	if (stage != POL_RCPT)
		return;		/* refused at its RCPT already */
	log_escape(ps->rcpt, strlen(ps->rcpt), resc);
	pol_result_add(ps, "domain", "deny", 0, NULL, "%s %s denied for %s (%s)",
	    what, who, d->name, entry);
	pol_hard_set(ps, POL_REJECT, 550, "5.7.1", 0, "<%s>: Recipient address "
	    "rejected: %s %s denied by the policy of %s", resc, what, who, d->name);
}
