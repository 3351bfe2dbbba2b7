/*
 * dompol.c -- see dompol.h. Reads the [domain NAME] sections conf.c
 * parsed and the dashboard's entries (policy/domtab.h), both with lists
 * lower-case "a, b" and parsed (conf_domain.entries); a value a policy
 * does not set is the global one (conf_domain.set), so comparing two
 * policies is comparing values, and nothing here allocates but the
 * session's reference to the dashboard's table. What a transaction asks
 * of every policy at once (a name, the highest reject score, the allow
 * lists) comes from the two sets' indexes (struct conf_dom_index), built
 * when the config was loaded and when the table was read: the hot path
 * walks no list of policies.
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

/* A policy's name in logs and verdict rows. */
#define DOMPOL_NAME(d)	((d) ? (d)->name : "the global policy")

static const char *dompol_list(const struct conf_domain *, int key);
static const struct conf_domain *dompol_named(const struct conf *, const struct domtab *,
		    const char *name);
static enum dompol_hit dompol_lists_n(const struct conf_domain *, size_t nlists,
		    const struct sockaddr *client, const char *sender, char *entry,
		    size_t entrysz, const char **what);
static struct domtab *dompol_tab(const struct pol_session *);
static void	 dompol_pin(struct pol_session *, int stage);
static int	 dompol_blocks(const struct pol_session *, enum pol_stage,
		    const struct pol_msg *);
static void	 dompol_free(struct pol_session *);
static int	 dompol_match(const struct conf_domain *, int key,
		    const struct sockaddr *client, const char *sender, char *entry,
		    size_t entrysz);
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

/* The policy called name: the config's section, else the dashboard's
 * entry (the section wins; domtab.h). */
static const struct conf_domain *
dompol_named(const struct conf *c, const struct domtab *t, const char *name)
{
	const struct conf_domain *d = conf_dom_index_find(&c->dom_index, name);

	return d ? d : conf_dom_index_find(domtab_index(t), name);
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

/* The exact name, then ".NAME" for each parent, the longest first: one
 * binary search per label and set. */
const struct conf_domain *
dompol_find(const struct conf *c, const struct domtab *t, const char *rcpt)
{
	const char *at = rcpt ? strrchr(rcpt, '@') : NULL, *dom;
	const struct conf_domain *d;

	if (at == NULL || at[1] == '\0')
		return NULL;
	dom = at + 1;
	if (dom[0] != '.' && (d = dompol_named(c, t, dom)) != NULL)
		return d;	/* the exact name beats any parent */
	for (const char *p = strchr(dom + 1, '.'); p != NULL; p = strchr(p + 1, '.'))
		if ((d = dompol_named(c, t, p)) != NULL)
			return d;
	return NULL;
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

/* Only the policies with allow lists can allow; only their allow lists
 * are read (the first two of dompol_lists_n's order). */
double
dompol_reject_early(const struct pol_session *ps)
{
	const struct conf *c = ps->conf;
	const char *from = ps->mail_from ? ps->mail_from : "", *what;
	const struct domtab *t = dompol_tab(ps);
	const struct conf_dom_index *set[] = { &c->dom_index, domtab_index(t) };
	char entry[LIM_PATH + 1];

	for (size_t s = 0; s < ARRAY_SIZE(set); s++)
		for (int i = 0; i < set[s]->nallow; i++)
			if (dompol_lists_n(set[s]->allow[i], 2,
			    (const struct sockaddr *)&ps->client, from, entry, sizeof(entry),
			    &what) == DOMPOL_ALLOW)
				return HUGE_VAL;
	return dompol_reject_max(c, t);
}

/* A policy that sets no reject_score has the global one. */
double
dompol_reject_max(const struct conf *c, const struct domtab *t)
{
	const struct conf_dom_index *set[] = { &c->dom_index, domtab_index(t) };
	double r = c->reject_score;

	for (size_t s = 0; s < ARRAY_SIZE(set); s++)
		if (set[s]->n > 0 && set[s]->reject_max > r)
			r = set[s]->reject_max;
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

/* Does an entry of d's list key (clients when client is set, else
 * senders) match? 1 with it in entry, or 0. */
static int
dompol_match(const struct conf_domain *d, int key, const struct sockaddr *client,
    const char *sender, char *entry, size_t entrysz)
{
	const struct conf_dom_entry *e = d->entries[key - CONF_DOM_LIST0];
	int n = d->nentries[key - CONF_DOM_LIST0];

	for (int i = 0; i < n; i++)
		if (client ? prefix_match(&e[i].cidr, client) :
		    access_name_match(e[i].text, sender)) {
			snprintf(entry, entrysz, "%s", e[i].text);
			return 1;
		}
	return 0;
}

/* The first nlists lists of d in the order allow beats deny, clients
 * before senders. */
static enum dompol_hit
dompol_lists_n(const struct conf_domain *d, size_t nlists, const struct sockaddr *client,
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
	for (size_t i = 0; i < nlists && i < ARRAY_SIZE(order); i++) {
		if (!order[i].client && *sender == '\0')
			continue;	/* <> is no sender a list can name */
		if (dompol_match(d, order[i].key, order[i].client ? client : NULL, sender,
		    entry, entrysz)) {
			*what = order[i].client ? "client" : "sender";
			return order[i].hit;
		}
	}
	return DOMPOL_NONE;
}

enum dompol_hit
dompol_lists(const struct conf_domain *d, const struct sockaddr *client,
    const char *sender, char *entry, size_t entrysz, const char **what)
{
	return dompol_lists_n(d, 4, client, sender, entry, entrysz, what);
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
dompol_stage(struct pol_session *ps, int stage)
{
	dompol_pin(ps, stage);
	ps->dom_stage = dompol_of_stage(ps, stage);
	if (ps->hard.set || (stage != POL_RCPT && stage != POL_DATA))
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
