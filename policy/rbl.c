/*
 * rbl.c -- see rbl.h. Parse the site list, build the query names, ask all
 * lists at once, and turn answers into scored results.
 */
#include "policy/rbl.h"
#include "dns/dns.h"
#include "lib/conf.h"
#include "lib/util.h"
#include "policy/policy_int.h"
#include "policy/rblhealth.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RBL_NAME_MAX	512

struct rbl_q {
	const struct rbl_site *site;
	char		 name[RBL_NAME_MAX];
	struct dns_answer *ans;
	pthread_t	 th;
	int		 threaded;
};

/* The questions a stage asks. */
struct rbl_plan {
	struct rbl_site	 sites[RBL_MAX_SITES];
	struct rbl_q	 q[RBL_MAX_SITES];
	int		 nq;
	const char	*check;		/* "rbl" or "rhsbl" */
	char		 what[300];	/* "client 192.0.2.1", for the log */
};

/* The zones that listed this stage's name: counted for the lists' health
 * page (rblh_count_listed) by rbl_commit, once the stage is kept. In
 * ps->priv. */
struct rbl_listed {
	int	 n;
	char	*zone[RBL_MAX_SITES];
};

static int	 rbl_parse_octet(const char **, unsigned char set[32]);
static int	 rbl_parse_num(const char **, int *);
static int	 rbl_parse_site(const char *tok, size_t len, struct rbl_site *,
		    char *why, size_t whysz);
static void	*rbl_q_thread(void *);
static void	 rbl_ask(struct pol_session *, struct rbl_q *, int n);
static void	 rbl_judge(struct pol_session *, enum pol_stage, const struct rbl_q *,
		    const char *check, const char *what);
static void	 rbl_plan_lists(const struct pol_session *, struct rbl_plan *, const char *spec,
		    const struct sockaddr *, const char *domain);
static int	 rbl_plan(const struct pol_session *, enum pol_stage, struct rbl_plan *);
static int	 rbl_budgeted(const struct pol_session *, int n);
static void	 rbl_run(struct pol_session *, enum pol_stage, const struct pol_msg *);
static void	 rbl_commit(struct pol_session *, enum pol_stage);
static void	 rbl_listed_add(struct pol_session *, const char *zone);
static void	 rbl_listed_drop(struct pol_session *);
static void	 rbl_free(struct pol_session *);
static int	 rbl_enabled(const struct conf *);
static int	 rbl_domain_ok(const char *);

const struct pol_check rbl_check = {
	.name = "rbl",
	.stages = 1u << POL_CONNECT | 1u << POL_HELO | 1u << POL_MAIL,
	.enabled = rbl_enabled,
	.run = rbl_run,
	.commit = rbl_commit,
	.free = rbl_free,
};

/* ------------------------------------------------------------- parsing */

static int
rbl_parse_num(const char **pp, int *v)
{
	const char *p = *pp;
	int n = 0;

	if (!isdigit((unsigned char)*p))
		return -1;
	while (isdigit((unsigned char)*p) && n <= 255)
		n = n * 10 + (*p++ - '0');
	if (n > 255)
		return -1;
	*v = n;
	*pp = p;
	return 0;
}

/* One octet pattern: N, or [item;item...] with items N or N..M. */
static int
rbl_parse_octet(const char **pp, unsigned char set[32])
{
	const char *p = *pp;
	int lo, hi;

	if (*p != '[') {
		if (rbl_parse_num(&p, &lo) == -1)
			return -1;
		set[lo / 8] |= (unsigned char)(1u << (lo % 8));
		*pp = p;
		return 0;
	}
	p++;
	for (;;) {
		if (rbl_parse_num(&p, &lo) == -1)
			return -1;
		hi = lo;
		if (p[0] == '.' && p[1] == '.') {
			p += 2;
			if (rbl_parse_num(&p, &hi) == -1 || hi < lo)
				return -1;
		}
		for (int v = lo; v <= hi; v++)
			set[v / 8] |= (unsigned char)(1u << (v % 8));
		if (*p == ';') {
			p++;
			continue;
		}
		if (*p != ']')
			return -1;
		*pp = p + 1;
		return 0;
	}
}

static int
rbl_parse_site(const char *tok, size_t len, struct rbl_site *s, char *why,
    size_t whysz)
{
	char buf[RBL_ZONE_MAX + 128], *end;
	const char *p;
	size_t zl;

	memset(s, 0, sizeof(*s));
	s->weight = 1;
	if (len >= sizeof(buf))
		goto bad;
	memcpy(buf, tok, len);
	buf[len] = '\0';
	zl = strcspn(buf, "=*");
	if (zl == 0 || zl > RBL_ZONE_MAX)
		goto bad;
	for (size_t i = 0; i < zl; i++)
		if (!isalnum((unsigned char)buf[i]) && !strchr(".-_", buf[i]))
			goto bad;
	memcpy(s->zone, buf, zl);
	p = buf + zl;
	if (*p == '=') {
		p++;
		s->filtered = 1;
		for (int i = 0; i < 4; i++) {
			if (rbl_parse_octet(&p, s->octet[i]) == -1)
				goto bad;
			if (i < 3 && *p++ != '.')
				goto bad;
		}
	}
	if (*p == '*') {
		s->weight = strtod(p + 1, &end);
		/* "nan" or "inf" would poison the score: every threshold
		 * comparison with NaN is false, so nothing is ever refused. */
		if (end == p + 1 || !isfinite(s->weight))
			goto bad;
		p = end;
	}
	if (*p == '\0')
		return 0;
bad:
	snprintf(why, whysz, "bad DNS list '%.*s'; write zone, zone*W, "
	    "zone=127.0.0.2*W or zone=127.0.0.[2..11]*W", (int)(len > 200 ? 200 : len), tok);
	return -1;
}

int
rbl_parse(const char *spec, struct rbl_site *sites, int max, char *why, size_t whysz)
{
	const char *p = spec ? spec : "";
	int n = 0;

	for (;;) {
		p += strspn(p, ", \t");
		if (*p == '\0')
			return n;
		size_t len = strcspn(p, ", \t");
		if (n == max) {
			snprintf(why, whysz, "more than %d DNS lists", max);
			return -1;
		}
		if (rbl_parse_site(p, len, &sites[n], why, whysz) == -1)
			return -1;
		n++;
		p += len;
	}
}

int
rbl_match(const struct rbl_site *s, struct in_addr a)
{
	const unsigned char *b = (const unsigned char *)&a.s_addr;

	if (!s->filtered)
		return b[0] == 127;
	for (int i = 0; i < 4; i++)
		if (!(s->octet[i][b[i] / 8] & (1u << (b[i] % 8))))
			return 0;
	return 1;
}

int
rbl_name(const struct sockaddr *sa, const char *zone, char *out, size_t outsz)
{
	struct sockaddr_in v4 = { .sin_family = AF_INET };
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;

	/* An IPv4 client on a dual-stack socket is listed by its IPv4 address. */
	if (sa->sa_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
		memcpy(&v4.sin_addr, s6->sin6_addr.s6_addr + 12, 4);
		sa = (const struct sockaddr *)&v4;
	}
	return dns_reverse_name(sa, zone, out, outsz);
}

/* One key under rbl_conf_check. */
struct rbl_conf_key {
	const char	*key;
	void		(*report)(void *, int, const char *);
	void		*arg;
	int		 bad;
};

static void
rbl_conf_bad(struct rbl_conf_key *k, int line, const char *why)
{
	char msg[400];

	snprintf(msg, sizeof(msg), "%s: %s", k->key, why);
	k->report(k->arg, line, msg);
	k->bad++;
}

/* Every site of one line on its own, so each bad one is named. */
static void
rbl_conf_part(void *arg, int line, const char *part)
{
	struct rbl_conf_key *k = arg;
	struct rbl_site site;
	char w[300];

	for (const char *p = part;;) {
		p += strspn(p, ", \t");
		if (*p == '\0')
			return;
		size_t len = strcspn(p, ", \t");
		if (rbl_parse_site(p, len, &site, w, sizeof(w)) == -1)
			rbl_conf_bad(k, line, w);
		p += len;
	}
}

/* Line by line, then the whole list (the number of lists is a limit of
 * the whole, and a conf not read from a file has no lines). */
static int
rbl_conf_key(const struct conf *c, const char *key, const char *value,
    void (*report)(void *, int, const char *), void *arg)
{
	struct rbl_conf_key k = { key, report, arg, 0 };

	struct rbl_site sites[RBL_MAX_SITES];
	char w[300];

	conf_list_each(c, key, rbl_conf_part, &k);
	if (k.bad == 0 && rbl_parse(value, sites, RBL_MAX_SITES, w, sizeof(w)) == -1)
		rbl_conf_bad(&k, conf_key_line(c, key), w);
	return k.bad;
}

int
rbl_conf_check(const struct conf *c, void (*report)(void *, int, const char *),
    void *arg)
{
	return rbl_conf_key(c, "rbl.zones", c->rbl_zones, report, arg) +
	    rbl_conf_key(c, "rbl.rhsbl_zones", c->rhsbl_zones, report, arg);
}

/* ------------------------------------------------------------- lookups */

static void *
rbl_q_thread(void *arg)
{
	struct rbl_q *q = arg;

	q->ans = dns_query(q->name, DNS_T_A, NULL);
	return NULL;
}

/* Ask every question at once: what the cache answers right here, then of
 * the rest the first on this thread and the others on their own (a thread
 * per question costs more than a cached answer) -- but all here in a
 * speculation, where the cache answers or the stage is undone. The
 * session's DNS budget is charged up front; questions past it are not
 * asked (ans stays NULL). */
static void
rbl_ask(struct pol_session *ps, struct rbl_q *q, int n)
{
	int allowed = rbl_budgeted(ps, n), first = -1;

	ps->dns.left -= allowed;
	ps->dns.asked += allowed;
	for (int i = 0; i < allowed; i++)
		q[i].ans = dns_query_cached(q[i].name, DNS_T_A);
	for (int i = 0; i < allowed; i++) {
		if (q[i].ans != NULL)
			continue;
		if (first == -1)
			first = i;	/* asked on this thread, below */
		else if (!dns_spec_active())
			q[i].threaded = pthread_create(&q[i].th, NULL, rbl_q_thread, &q[i]) == 0;
	}
	/* threaded entries are not read until joined */
	for (int i = 0; i < allowed; i++)
		if (i == first || (!q[i].threaded && q[i].ans == NULL))
			rbl_q_thread(&q[i]);
	for (int i = 0; i < allowed; i++)
		if (q[i].threaded)
			pthread_join(q[i].th, NULL);
}

/* One list's answer into a result (or a log line); an allow list's
 * listing also into ps->found.dnswl, for greylisting. */
static void
rbl_judge(struct pol_session *ps, enum pol_stage stage, const struct rbl_q *q,
    const char *check, const char *what)
{
	const struct rbl_site *s = q->site;
	char code[INET_ADDRSTRLEN] = "";

	if (q->ans == NULL) {
		log_warn("%s: %s: %s not asked: DNS budget spent; counted as not listed",
		    ps->sid, check, s->zone);
		return;
	}
	if (q->ans->status == DNS_TEMPERROR || q->ans->status == DNS_BUDGET) {
		log_warn("%s: %s: %s did not answer for %s (%s); counted as not listed",
		    ps->sid, check, s->zone, what, q->ans->why);
		pol_result_add(ps, check, "temperror", 0, NULL, "%s did not answer", s->zone);
		return;
	}
	for (int i = 0; q->ans->status == DNS_OK && i < q->ans->count; i++) {
		struct in_addr a = q->ans->rr[i].u.a;
		const unsigned char *b = (const unsigned char *)&a.s_addr;
		inet_ntop(AF_INET, &a, code, sizeof(code));
		if (b[0] == 127 && b[1] == 255 && b[2] == 255) {
			log_warn("%s: %s: %s answered %s for %s: an error code of the "
			    "list, not a listing; ignored", ps->sid, check, s->zone, code, what);
			continue;
		}
		if (!rbl_match(s, a))
			continue;
		log_info("%s: %s: %s listed at %s (%s)", ps->sid, check, what, s->zone, code);
		if (s->weight < 0)
			ps->found.dnswl |= 1u << stage;
		rbl_listed_add(ps, s->zone);
		pol_result_add(ps, s->weight < 0 ? "dnswl" : check, "listed", s->weight,
		    NULL, "%s listed at %s", what, s->zone);
		return;		/* a site's weight counts once */
	}
}

/* How many of n questions the session's DNS budget lets the stage ask:
 * the first ones, charged up front by rbl_ask. */
static int
rbl_budgeted(const struct pol_session *ps, int n)
{
	int allowed = n < ps->dns.left ? n : ps->dns.left;

	return allowed < 0 ? 0 : allowed;
}

/* Plan the lists of spec about the client address (sa) or a domain. */
static void
rbl_plan_lists(const struct pol_session *ps, struct rbl_plan *p, const char *spec,
    const struct sockaddr *sa, const char *domain)
{
	char why[300];
	int n;

	if ((n = rbl_parse(spec, p->sites, RBL_MAX_SITES, why, sizeof(why))) <= 0) {
		if (n == -1)	/* said loudly at start or reload; not per session */
			log_debug("%s: %s: %s", ps->sid, p->check, why);
		return;
	}
	for (int i = 0; i < n; i++) {
		struct rbl_q *q = &p->q[p->nq];
		/* put together apart from p: gcc cannot tell q->name and the
		 * zone, both in *p, do not overlap (-Wrestrict) */
		char name[RBL_NAME_MAX];
		int r = sa ? rbl_name(sa, p->sites[i].zone, name, sizeof(name)) :
		    (size_t)snprintf(name, sizeof(name), "%s.%s", domain,
		    p->sites[i].zone) < sizeof(name) ? 0 : -1;
		if (r == -1 || !rblh_usable(p->sites[i].zone, sa == NULL))
			continue;	/* too long, or failing its health probes */
		memcpy(q->name, name, sizeof(q->name));
		q->site = &p->sites[i];
		q->ans = NULL;
		q->threaded = 0;
		p->nq++;
	}
}

/* A name worth asking an RHSBL about: a dotted domain, not a literal. */
static int
rbl_domain_ok(const char *d)
{
	if (d == NULL || *d == '\0' || *d == '[' || strchr(d, '.') == NULL ||
	    strlen(d) > RBL_ZONE_MAX)
		return 0;
	for (; *d; d++)
		if (!isalnum((unsigned char)*d) && !strchr(".-_", *d))
			return 0;
	return 1;
}

static int
rbl_enabled(const struct conf *c)
{
	return (c->rbl_zones && *c->rbl_zones) || (c->rhsbl_zones && *c->rhsbl_zones);
}

/* The questions this stage asks (p->nq of them, maybe 0). */
static int
rbl_plan(const struct pol_session *ps, enum pol_stage stage, struct rbl_plan *p)
{
	const struct conf *c = ps->conf;
	const char *dom;

	p->nq = 0;
	p->check = "rbl";
	p->what[0] = '\0';
	if (stage == POL_CONNECT) {
		p->check = "rbl";
		snprintf(p->what, sizeof(p->what), "client %s", ps->client_ip);
		rbl_plan_lists(ps, p, c->rbl_zones, (const struct sockaddr *)&ps->client, NULL);
	} else if (stage == POL_HELO && rbl_domain_ok(ps->helo)) {
		p->check = "rhsbl";
		snprintf(p->what, sizeof(p->what), "HELO name %s", ps->helo);
		rbl_plan_lists(ps, p, c->rhsbl_zones, NULL, ps->helo);
	} else if (stage == POL_MAIL && ps->mail_from &&
	    (dom = strrchr(ps->mail_from, '@')) != NULL && rbl_domain_ok(dom + 1)) {
		p->check = "rhsbl";
		snprintf(p->what, sizeof(p->what), "sender domain %s", dom + 1);
		rbl_plan_lists(ps, p, c->rhsbl_zones, NULL, dom + 1);
	}
	return p->nq;
}

/* The stage's lists asked, each answer into a result. */
static void
rbl_run(struct pol_session *ps, enum pol_stage stage, const struct pol_msg *m)
{
	struct rbl_plan p;

	(void)m;
	rbl_listed_drop(ps);	/* what an undone run found */
	if (rbl_plan(ps, stage, &p) == 0)
		return;
	rbl_ask(ps, p.q, p.nq);
	for (int i = 0; i < p.nq; i++) {
		rbl_judge(ps, stage, &p.q[i], p.check, p.what);
		dns_answer_free(p.q[i].ans);
	}
}

static void
rbl_listed_add(struct pol_session *ps, const char *zone)
{
	int slot = pol_check_slot(&rbl_check);
	struct rbl_listed *l = ps->priv[slot];

	if (l == NULL)
		l = ps->priv[slot] = xcalloc(1, sizeof(*l));
	if (l->n < RBL_MAX_SITES)
		l->zone[l->n++] = xstrdup(zone);
}

static void
rbl_listed_drop(struct pol_session *ps)
{
	struct rbl_listed *l = ps->priv[pol_check_slot(&rbl_check)];

	while (l != NULL && l->n > 0)
		free(l->zone[--l->n]);
}

/* The lists' health counters: the session (once, at CONNECT, whichever
 * lists are used) and each listing. */
static void
rbl_commit(struct pol_session *ps, enum pol_stage stage)
{
	struct rbl_listed *l = ps->priv[pol_check_slot(&rbl_check)];

	if (stage == POL_CONNECT)
		rblh_count_session();
	for (int i = 0; l != NULL && i < l->n; i++)
		rblh_count_listed(l->zone[i], stage != POL_CONNECT);
	rbl_listed_drop(ps);
}

static void
rbl_free(struct pol_session *ps)
{
	int slot = pol_check_slot(&rbl_check);

	rbl_listed_drop(ps);
	free(ps->priv[slot]);
	ps->priv[slot] = NULL;
}
