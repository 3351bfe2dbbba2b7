/*
 * spf.c -- SPF (RFC 7208) for Postern: check_host() on dns/, and the
 * policy check "spf".
 *
 * Why our own evaluator and not libspf2's: see docs/spf.md. In short,
 * libspf2 gets about a third of RFC 7208's cases wrong in its parser and
 * interpreter themselves (syntax checks, /0 CIDRs, lookup and void limits,
 * explanations, error results), and every fix around it needs a full RFC
 * 7208 parser and term counter of our own -- at which point the library
 * adds nothing but a second, disagreeing opinion.
 *
 * Public calls: spf_check_host, spf_outcome_clear, spf_result_name,
 * spf_session_get, and the check table entry spf_check.
 *
 * Shape: spf_check_host() -> spf_eval_domain() (4.3-4.5: name checks,
 * record lookup and selection) -> spf_parse() (4.6: the whole record's
 * syntax, before anything is evaluated) -> spf_eval_record() (4.6.2, 5:
 * terms in order; include and redirect recurse into spf_eval_domain()).
 * The limits of 4.6.4 live in struct spf_ctx and are checked before each
 * DNS-querying term. Macros (7) are checked by spf_macro_check() at parse
 * time and expanded by spf_expand() at evaluation time.
 *
 * Ownership: a parsed record owns its copy of the text; terms point into
 * it. Thread: reentrant; the policy check runs on a worker thread with the
 * session's DNS budget, or on the session's I/O loop in a speculative run
 * (policy/policy.c, pol_run_here), where only the DNS cache answers.
 * Privilege: none.
 */
#include "policy/spf.h"
#include "dns/dns.h"
#include "lib/buf.h"
#include "lib/conf.h"
#include "lib/prefix.h"
#include "lib/util.h"
#include "policy/policy_int.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* RFC 7208 4.6.4: at most 10 terms that query DNS, at most 2 of their
 * lookups void; per mx, at most 10 MX names; per ptr / %{p}, at most 10
 * PTR names looked at. */
#define SPF_MAX_DNS_TERMS	10
#define SPF_MAX_VOID		2
#define SPF_MAX_MX		10
#define SPF_MAX_PTR		10
/* RFC 7208 7.3 and RFC 1035 2.3.4: expanded domain names are cut from
 * the left to 253 characters. */
#define SPF_NAME_MAX		253
/* Expanded explanation text (6.2): a line of text, kept short. */
#define SPF_EXP_MAX		1024
/* A record or macro expansion that grows past this is hostile. */
#define SPF_EXPAND_MAX		4096

enum spf_mech {
	M_ALL, M_INCLUDE, M_A, M_MX, M_PTR, M_IP4, M_IP6, M_EXISTS,
	M_REDIRECT, M_EXP, M_UNKNOWN_MOD,
};

struct spf_term {
	enum spf_mech	 mech;
	char		 qual;		/* '+', '-', '~', '?' */
	const char	*spec;		/* domain-spec, or NULL for the current domain */
	int		 cidr4, cidr6;	/* prefix lengths (32 / 128 when absent) */
	unsigned char	 net[16];	/* ip4 (first 4 bytes) / ip6 network */
};

struct spf_record {
	char		*text;		/* our copy; terms point into it */
	struct spf_term	*terms;
	int		 nterms;
	int		 redirect, exp;	/* index of the modifier, or -1 */
};

/* One check_host() evaluation, across its includes and redirects. */
struct spf_ctx {
	const struct spf_query *q;
	int		 v6;		/* client address family after unmapping */
	unsigned char	 addr[16];	/* 4 or 16 bytes */
	char		 local[256];	/* %{l} */
	char		 sdomain[256];	/* %{o} */
	int		 dns_terms;
	int		 voids;
	char		 reason[256];
	char		*explanation;
	char		*validated;	/* %{p}, computed once */
	char		 dnswhy[128];	/* the last DNS failure, for reasons */
	int		 in_include;	/* > 0: explanations are not wanted */
};

static enum spf_result spf_eval_domain(struct spf_ctx *, const char *);
static enum spf_result spf_eval_record(struct spf_ctx *, struct spf_record *, const char *);
static enum spf_result spf_eval_term(struct spf_ctx *, const struct spf_term *, const char *, int *);
static enum spf_result spf_get_record(struct spf_ctx *, const char *, char **);
static int	 spf_parse(const char *, struct spf_record *, char *, size_t);
static int	 spf_parse_term(char *, struct spf_term *, char *, size_t);
static int	 spf_parse_cidr(char *, struct spf_term *, int dual);
static int	 spf_parse_mech_arg(char *, struct spf_term *);
static int	 spf_parse_spec(char *, struct spf_term *, int optional);
static int	 spf_macro_check(const char *, int is_exp);
static int	 spf_domain_spec_check(const char *);
static int	 spf_toplabel(const char *, size_t);
static void	 spf_record_free(struct spf_record *);
static int	 spf_expand(struct spf_ctx *, const char *, const char *, int, char *, size_t);
static const char *spf_expand_macro(struct spf_ctx *, const char *, const char *, char *, size_t);
static void	 spf_transform(char *, size_t, const char *, long keep, int rev);
static void	 spf_urlescape(char *, size_t);
static int	 spf_macro_value(struct spf_ctx *, char, const char *, char *, size_t);
static int	 spf_target(struct spf_ctx *, const struct spf_term *, const char *, char *, size_t);
static int	 spf_domain_ok(const char *);
static int	 spf_match_addrs(struct spf_ctx *, const char *, int cidr4, int cidr6, int count_void, int *temp);
static int	 spf_cidr_num(const char *, int);
static int	 spf_ip_in(const struct spf_ctx *, const unsigned char *, int is6, int cidr);
static enum spf_result spf_mx(struct spf_ctx *, const struct spf_term *, const char *);
static enum spf_result spf_ptr(struct spf_ctx *, const struct spf_term *, const char *);
static enum spf_result spf_include(struct spf_ctx *, const struct spf_term *, const char *);
static char	*spf_validated_name(struct spf_ctx *, const char *target, int count_void);
static int	 spf_void(struct spf_ctx *, enum dns_status);
static int	 spf_dns_failed(struct spf_ctx *, const struct dns_answer *);
static enum spf_result spf_limit(struct spf_ctx *);
static struct dns_answer *spf_dns(struct spf_ctx *, const char *, int);
static enum spf_result spf_err(struct spf_ctx *, enum spf_result, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
static void	 spf_explain(struct spf_ctx *, struct spf_record *, const char *);
static enum spf_result spf_qual(char);
static void	 spf_reason_matched(struct spf_ctx *, enum spf_result, int, const char *);

/* ---- check_host() ---- */

void
spf_check_host(const struct spf_query *q, struct spf_outcome *out)
{
	struct spf_ctx ctx;
	const char *at;

	memset(&ctx, 0, sizeof(ctx));
	memset(out, 0, sizeof(*out));
	ctx.q = q;
	if (q->ip->sa_family == AF_INET) {
		memcpy(ctx.addr, &((const struct sockaddr_in *)q->ip)->sin_addr, 4);
	} else {
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *)q->ip)->sin6_addr;
		/* RFC 7208 5: an IPv4-mapped IPv6 client is an IPv4 client. */
		if (IN6_IS_ADDR_V4MAPPED(a6))
			memcpy(ctx.addr, a6->s6_addr + 12, 4);
		else {
			memcpy(ctx.addr, a6->s6_addr, 16);
			ctx.v6 = 1;
		}
	}
	/* 4.3: no local-part means "postmaster". */
	at = strrchr(q->sender, '@');
	if (at == NULL || at == q->sender)
		snprintf(ctx.local, sizeof(ctx.local), "postmaster");
	else
		snprintf(ctx.local, sizeof(ctx.local), "%.*s", (int)(at - q->sender), q->sender);
	snprintf(ctx.sdomain, sizeof(ctx.sdomain), "%s", at ? at + 1 : q->sender);
	snprintf(out->domain, sizeof(out->domain), "%s", q->domain);
	out->result = spf_eval_domain(&ctx, q->domain);
	snprintf(out->reason, sizeof(out->reason), "%s", ctx.reason);
	if (out->result == SPF_R_FAIL) {
		out->explanation = ctx.explanation;
		ctx.explanation = NULL;
	}
	out->dns_terms = ctx.dns_terms;
	out->void_lookups = ctx.voids;
	free(ctx.explanation);
	free(ctx.validated);
}

void
spf_outcome_clear(struct spf_outcome *o)
{
	free(o->explanation);
	memset(o, 0, sizeof(*o));
}

const char *
spf_result_name(enum spf_result r)
{
	static const char *names[] = { "none", "neutral", "pass", "fail",
	    "softfail", "temperror", "permerror" };

	return (unsigned)r < ARRAY_SIZE(names) ? names[r] : "permerror";
}

/* 4.3-4.6 for one domain: check the name, fetch, select, parse, evaluate. */
static enum spf_result
spf_eval_domain(struct spf_ctx *ctx, const char *domain)
{
	struct spf_record rec;
	char why[160], *text;
	enum spf_result r;

	if (!spf_domain_ok(domain))
		return spf_err(ctx, SPF_R_NONE, "'%.100s' is not a valid domain name (RFC 7208 4.3)", domain);
	if ((r = spf_get_record(ctx, domain, &text)) != SPF_R_PASS)
		return r;
	if (spf_parse(text, &rec, why, sizeof(why)) == -1) {
		free(text);
		return spf_err(ctx, SPF_R_PERMERROR, "%s: %s (RFC 7208 4.6)", domain, why);
	}
	free(text);
	r = spf_eval_record(ctx, &rec, domain);
	spf_record_free(&rec);
	return r;
}

/* Every question of an evaluation. */
static struct dns_answer *
spf_dns(struct spf_ctx *ctx, const char *name, int type)
{
	return dns_query(name, type, ctx->q->budget);
}

/* 4.4 and 4.5: the one "v=spf1" record of domain, in *text. PASS means
 * found; anything else is the result to return. */
static enum spf_result
spf_get_record(struct spf_ctx *ctx, const char *domain, char **text)
{
	struct dns_answer *a = spf_dns(ctx, domain, DNS_T_TXT);
	enum spf_result r = SPF_R_PASS;
	int found = 0;

	*text = NULL;
	if (spf_dns_failed(ctx, a)) {
		r = spf_err(ctx, SPF_R_TEMPERROR, "DNS error looking up %s TXT: %s",
		    domain, ctx->dnswhy);
		dns_answer_free(a);
		return r;
	}
	for (int i = 0; i < a->count; i++) {
		const char *t = a->rr[i].u.txt.joined;
		/* 4.5: exactly "v=spf1", then a space or the end. */
		if (strncasecmp(t, "v=spf1", 6) != 0 || (t[6] != '\0' && t[6] != ' '))
			continue;
		if (found++ == 0) {
			size_t len = (size_t)a->rr[i].u.txt.len;
			*text = xmalloc(len + 1);
			/* A NUL inside the record is a syntax error (3.1), not
			 * its end: make it a control character the parser
			 * rejects. */
			for (size_t k = 0; k < len; k++)
				(*text)[k] = t[k] ? t[k] : '\x01';
			(*text)[len] = '\0';
		}
	}
	dns_answer_free(a);
	if (found > 1) {
		free(*text);
		*text = NULL;
		return spf_err(ctx, SPF_R_PERMERROR, "%s has %d SPF records (RFC 7208 4.5)", domain, found);
	}
	if (found == 0)
		return spf_err(ctx, SPF_R_NONE, "no SPF record at %s", domain);
	return SPF_R_PASS;
}

/* "pass: matched term 2 of the SPF record of example.org": the reason of
 * nearly every evaluation. */
static void
spf_reason_matched(struct spf_ctx *ctx, enum spf_result r, int term, const char *domain)
{
	snprintf(ctx->reason, sizeof(ctx->reason), "%s: matched term %d of the SPF record of %s",
	    spf_result_name(r), term, domain);
}

/* 4.6.2 and 6.1: evaluate mechanisms in order; then redirect or neutral. */
static enum spf_result
spf_eval_record(struct spf_ctx *ctx, struct spf_record *rec, const char *domain)
{
	char target[SPF_NAME_MAX + 1];
	enum spf_result r;

	for (int i = 0; i < rec->nterms; i++) {
		const struct spf_term *t = &rec->terms[i];
		int matched = 0;

		if (t->mech >= M_REDIRECT)
			continue;
		r = spf_eval_term(ctx, t, domain, &matched);
		if (r == SPF_R_TEMPERROR || r == SPF_R_PERMERROR)
			return r;
		if (!matched)
			continue;
		r = spf_qual(t->qual);
		spf_reason_matched(ctx, r, i + 1, domain);
		if (r == SPF_R_FAIL)
			spf_explain(ctx, rec, domain);
		return r;
	}
	if (rec->redirect == -1)
		return spf_err(ctx, SPF_R_NEUTRAL, "no term matched in the SPF record of %s", domain);
	/* 6.1: redirect counts as a DNS-querying term; a target without a
	 * record is a permerror, and the target's exp= applies, not ours. */
	if ((r = spf_limit(ctx)) != SPF_R_PASS)
		return r;
	if (spf_target(ctx, &rec->terms[rec->redirect], domain, target, sizeof(target)) == -1)
		return spf_err(ctx, SPF_R_PERMERROR, "bad macro in redirect of %s", domain);
	r = spf_eval_domain(ctx, target);
	if (r == SPF_R_NONE)
		return spf_err(ctx, SPF_R_PERMERROR, "redirect target %s has no SPF record (RFC 7208 6.1)", target);
	return r;
}

/* One mechanism (5.1-5.7). Sets *matched; returns PASS to go on, or
 * TEMPERROR / PERMERROR to stop the evaluation. */
static enum spf_result
spf_eval_term(struct spf_ctx *ctx, const struct spf_term *t, const char *domain, int *matched)
{
	char target[SPF_NAME_MAX + 1];
	enum spf_result r;
	int temp = 0, m;

	switch (t->mech) {
	case M_ALL:
		*matched = 1;
		return SPF_R_PASS;
	case M_IP4:
		*matched = !ctx->v6 && spf_ip_in(ctx, t->net, 0, t->cidr4);
		return SPF_R_PASS;
	case M_IP6:
		*matched = ctx->v6 && spf_ip_in(ctx, t->net, 1, t->cidr6);
		return SPF_R_PASS;
	default:
		break;
	}
	if ((r = spf_limit(ctx)) != SPF_R_PASS)
		return r;
	switch (t->mech) {
	case M_INCLUDE:
		r = spf_include(ctx, t, domain);
		if (r == SPF_R_PASS)
			*matched = 1;
		return r == SPF_R_TEMPERROR || r == SPF_R_PERMERROR ? r : SPF_R_PASS;
	case M_MX:
		r = spf_mx(ctx, t, domain);
		break;
	case M_PTR:
		r = spf_ptr(ctx, t, domain);
		break;
	case M_A:
		if (spf_target(ctx, t, domain, target, sizeof(target)) == -1)
			return spf_err(ctx, SPF_R_PERMERROR, "bad macro in a: of %s", domain);
		m = spf_match_addrs(ctx, target, t->cidr4, t->cidr6, 1, &temp);
		if (temp)
			return spf_err(ctx, SPF_R_TEMPERROR, "DNS error looking up %s: %s",
			    target, ctx->dnswhy);
		if (m == -1)
			return spf_err(ctx, SPF_R_PERMERROR, "more than %d void lookups (RFC 7208 4.6.4)", SPF_MAX_VOID);
		r = m ? SPF_R_PASS : SPF_R_NEUTRAL;
		break;
	case M_EXISTS: {
		if (spf_target(ctx, t, domain, target, sizeof(target)) == -1)
			return spf_err(ctx, SPF_R_PERMERROR, "bad macro in exists: of %s", domain);
		/* 5.7: always an A query, whatever the client's family. */
		struct dns_answer *a = spf_dns(ctx, target, DNS_T_A);
		enum dns_status st = a->status;
		int failed = spf_dns_failed(ctx, a);
		dns_answer_free(a);
		if (failed)
			return spf_err(ctx, SPF_R_TEMPERROR, "DNS error looking up %s A: %s",
			    target, ctx->dnswhy);
		if (spf_void(ctx, st) == -1)
			return spf_err(ctx, SPF_R_PERMERROR, "more than %d void lookups (RFC 7208 4.6.4)", SPF_MAX_VOID);
		r = st == DNS_OK ? SPF_R_PASS : SPF_R_NEUTRAL;
		break;
	}
	default:
		fatalx("spf_eval_term: mechanism %d", t->mech);
	}
	if (r == SPF_R_TEMPERROR || r == SPF_R_PERMERROR)
		return r;
	*matched = r == SPF_R_PASS;
	return SPF_R_PASS;
}

/* 5.2: include matches on pass only; none in the target is a permerror. */
static enum spf_result
spf_include(struct spf_ctx *ctx, const struct spf_term *t, const char *domain)
{
	char target[SPF_NAME_MAX + 1];
	char *saved = ctx->explanation;
	enum spf_result r;

	if (spf_target(ctx, t, domain, target, sizeof(target)) == -1)
		return spf_err(ctx, SPF_R_PERMERROR, "bad macro in include: of %s", domain);
	ctx->explanation = NULL;
	ctx->in_include++;
	r = spf_eval_domain(ctx, target);
	ctx->in_include--;
	/* 6.2: the included record's exp= is never used. */
	free(ctx->explanation);
	ctx->explanation = saved;
	switch (r) {
	case SPF_R_PASS:
		return SPF_R_PASS;
	case SPF_R_NONE:
		return spf_err(ctx, SPF_R_PERMERROR, "include:%s has no SPF record (RFC 7208 5.2)", target);
	case SPF_R_TEMPERROR:
	case SPF_R_PERMERROR:
		return r;
	default:
		return SPF_R_NEUTRAL;	/* fail, softfail, neutral: no match */
	}
}

/* 5.4: PASS when an address of an MX host is in the network. */
static enum spf_result
spf_mx(struct spf_ctx *ctx, const struct spf_term *t, const char *domain)
{
	char target[SPF_NAME_MAX + 1];
	struct dns_answer *a;
	int temp = 0, m = 0;

	if (spf_target(ctx, t, domain, target, sizeof(target)) == -1)
		return spf_err(ctx, SPF_R_PERMERROR, "bad macro in mx: of %s", domain);
	a = spf_dns(ctx, target, DNS_T_MX);
	if (spf_dns_failed(ctx, a)) {
		dns_answer_free(a);
		return spf_err(ctx, SPF_R_TEMPERROR, "DNS error looking up %s MX: %s",
		    target, ctx->dnswhy);
	}
	if (spf_void(ctx, a->status) == -1) {
		dns_answer_free(a);
		return spf_err(ctx, SPF_R_PERMERROR, "more than %d void lookups (RFC 7208 4.6.4)", SPF_MAX_VOID);
	}
	if (a->count > SPF_MAX_MX) {
		dns_answer_free(a);
		return spf_err(ctx, SPF_R_PERMERROR, "%s has more than %d MX records (RFC 7208 4.6.4)", target, SPF_MAX_MX);
	}
	for (int i = 0; i < a->count && !m && !temp; i++) {
		const char *host = a->rr[i].u.mx.host;
		if (*host == '\0')
			continue;	/* RFC 7505 null MX */
		/* Address lookups of MX hosts are not void lookups of a term. */
		m = spf_match_addrs(ctx, host, t->cidr4, t->cidr6, 0, &temp);
	}
	dns_answer_free(a);
	if (temp)
		return spf_err(ctx, SPF_R_TEMPERROR, "DNS error looking up the MX hosts of %s: %s",
		    target, ctx->dnswhy);
	return m > 0 ? SPF_R_PASS : SPF_R_NEUTRAL;
}

/* 5.5: PASS when a validated name of the client is target or below it. */
static enum spf_result
spf_ptr(struct spf_ctx *ctx, const struct spf_term *t, const char *domain)
{
	char target[SPF_NAME_MAX + 1];
	char *name;

	if (spf_target(ctx, t, domain, target, sizeof(target)) == -1)
		return spf_err(ctx, SPF_R_PERMERROR, "bad macro in ptr: of %s", domain);
	name = spf_validated_name(ctx, target, 1);
	if (name == NULL && ctx->voids > SPF_MAX_VOID)
		return spf_err(ctx, SPF_R_PERMERROR, "more than %d void lookups (RFC 7208 4.6.4)", SPF_MAX_VOID);
	if (name == NULL)
		return SPF_R_NEUTRAL;
	free(name);
	return SPF_R_PASS;
}

/* 5.5 / 7.3 %{p}: the client's PTR names whose addresses include the
 * client. With a target: the first such name equal to or below target,
 * else NULL. Without: such a name, preferring one at or below the current
 * sender domain, else NULL. DNS errors just mean "not validated". */
static char *
spf_validated_name(struct spf_ctx *ctx, const char *target, int count_void)
{
	char rev[128], *found = NULL;
	struct sockaddr_storage ss;
	struct dns_answer *a;
	int temp = 0;

	memset(&ss, 0, sizeof(ss));
	ss.ss_family = ctx->v6 ? AF_INET6 : AF_INET;
	if (ctx->v6)
		memcpy(&((struct sockaddr_in6 *)&ss)->sin6_addr, ctx->addr, 16);
	else
		memcpy(&((struct sockaddr_in *)&ss)->sin_addr, ctx->addr, 4);
	if (dns_reverse_name((struct sockaddr *)&ss, NULL, rev, sizeof(rev)) == -1)
		return NULL;
	a = spf_dns(ctx, rev, DNS_T_PTR);
	if (count_void)
		(void)spf_void(ctx, a->status);
	for (int i = 0; i < a->count && i < SPF_MAX_PTR && found == NULL; i++) {
		const char *n = a->rr[i].u.name;
		size_t nl = strlen(n), tl = target ? strlen(target) : 0;
		if (target != NULL && !(strcasecmp(n, target) == 0 ||
		    (nl > tl && n[nl - tl - 1] == '.' && strcasecmp(n + nl - tl, target) == 0)))
			continue;
		if (spf_match_addrs(ctx, n, 32, 128, 0, &temp) == 1)
			found = xstrdup(n);
		temp = 0;	/* 5.5: an error here only skips the name */
	}
	dns_answer_free(a);
	return found;
}

/* Look up target's A or AAAA (per the client's family) and match with the
 * prefix lengths: 1 match, 0 no match, -1 void-lookup limit passed (only
 * counted with count_void); *temp set on a DNS error. */
static int
spf_match_addrs(struct spf_ctx *ctx, const char *target, int cidr4, int cidr6,
    int count_void, int *temp)
{
	struct dns_answer *a = spf_dns(ctx, target, ctx->v6 ? DNS_T_AAAA : DNS_T_A);
	int m = 0;

	if (spf_dns_failed(ctx, a)) {
		*temp = 1;
		dns_answer_free(a);
		return 0;
	}
	if (count_void && spf_void(ctx, a->status) == -1) {
		dns_answer_free(a);
		return -1;
	}
	for (int i = 0; i < a->count && !m; i++)
		m = ctx->v6 ? spf_ip_in(ctx, a->rr[i].u.aaaa.s6_addr, 1, cidr6) :
		    spf_ip_in(ctx, (const unsigned char *)&a->rr[i].u.a, 0, cidr4);
	dns_answer_free(a);
	return m;
}

/* Is the client inside net/cidr? A family mismatch never matches. */
static int
spf_ip_in(const struct spf_ctx *ctx, const unsigned char *net, int is6, int cidr)
{
	return is6 == ctx->v6 && prefix_eq(ctx->addr, net, cidr);
}

/* 1 when the answer is no answer (timeout, SERVFAIL, budget spent); what
 * happened goes to ctx->dnswhy. RFC 7208 2.6.6: that is a temperror. */
static int
spf_dns_failed(struct spf_ctx *ctx, const struct dns_answer *a)
{
	if (a->status != DNS_TEMPERROR && a->status != DNS_BUDGET)
		return 0;
	snprintf(ctx->dnswhy, sizeof(ctx->dnswhy), "%s", a->why[0] ? a->why :
	    dns_status_name(a->status));
	return 1;
}

/* 4.6.4: count a void lookup; -1 once past the limit. */
static int
spf_void(struct spf_ctx *ctx, enum dns_status st)
{
	if (st != DNS_NXDOMAIN && st != DNS_NODATA)
		return 0;
	return ++ctx->voids > SPF_MAX_VOID ? -1 : 0;
}

/* 4.6.4: count one DNS-querying term; PERMERROR past the tenth. */
static enum spf_result
spf_limit(struct spf_ctx *ctx)
{
	if (++ctx->dns_terms > SPF_MAX_DNS_TERMS)
		return spf_err(ctx, SPF_R_PERMERROR,
		    "more than %d DNS-querying terms (RFC 7208 4.6.4)", SPF_MAX_DNS_TERMS);
	return SPF_R_PASS;
}

static enum spf_result
spf_err(struct spf_ctx *ctx, enum spf_result r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(ctx->reason, sizeof(ctx->reason), fmt, ap);
	va_end(ap);
	return r;
}

static enum spf_result
spf_qual(char q)
{
	switch (q) {
	case '-': return SPF_R_FAIL;
	case '~': return SPF_R_SOFTFAIL;
	case '?': return SPF_R_NEUTRAL;
	default: return SPF_R_PASS;
	}
}

/* 6.2: on fail, the exp= text of the record that failed. Any problem
 * (DNS, no record, several, bad macros, non-ASCII) just means no text. */
static void
spf_explain(struct spf_ctx *ctx, struct spf_record *rec, const char *domain)
{
	char target[SPF_NAME_MAX + 1], *out;
	struct dns_answer *a;

	free(ctx->explanation);
	ctx->explanation = NULL;
	if (ctx->in_include > 0 || rec->exp == -1 ||
	    spf_target(ctx, &rec->terms[rec->exp], domain, target, sizeof(target)) == -1)
		return;
	a = spf_dns(ctx, target, DNS_T_TXT);
	if (a->status != DNS_OK || a->count != 1) {
		dns_answer_free(a);
		return;
	}
	const char *t = a->rr[0].u.txt.joined;
	for (const char *p = t; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e) {
			dns_answer_free(a);
			return;
		}
	out = xmalloc(SPF_EXP_MAX);
	if (spf_macro_check(t, 1) == 0 &&
	    spf_expand(ctx, t, domain, 0, out, SPF_EXP_MAX) == 0)
		ctx->explanation = out;
	else
		free(out);
	dns_answer_free(a);
}

/* ---- names ---- */

/* 4.3: a multi-label name with no empty or over-long labels. */
static int
spf_domain_ok(const char *d)
{
	size_t n = strlen(d), label = 0;
	int labels = 1;

	if (n > 0 && d[n - 1] == '.')
		n--;
	if (n == 0 || n > SPF_NAME_MAX || d[0] == '[')
		return 0;	/* empty, too long, or an address literal */
	for (size_t i = 0; i < n; i++) {
		if (d[i] == '.') {
			if (label == 0)
				return 0;
			label = 0;
			labels++;
		} else if (++label > 63)
			return 0;
	}
	return label > 0 && labels >= 2;
}

/* The expanded domain-spec of a term, or the current domain; 0 or -1. */
static int
spf_target(struct spf_ctx *ctx, const struct spf_term *t, const char *domain,
    char *out, size_t outsz)
{
	char buf[SPF_EXPAND_MAX];
	const char *p;

	if (t->spec == NULL) {
		snprintf(out, outsz, "%s", domain);
		return 0;
	}
	if (spf_expand(ctx, t->spec, domain, 1, buf, sizeof(buf)) == -1)
		return -1;
	/* 7.3: over 253 characters, drop labels from the left. */
	p = buf;
	while (strlen(p) > SPF_NAME_MAX) {
		const char *dot = strchr(p, '.');
		if (dot == NULL)
			return -1;
		p = dot + 1;
	}
	snprintf(out, outsz, "%s", p);
	return 0;
}

/* ---- parsing (4.6, 5, 6, 12 ABNF) ---- */

/* Parse a whole record; on a syntax error, -1 and what is wrong in why. */
static int
spf_parse(const char *text, struct spf_record *rec, char *why, size_t whysz)
{
	char *p, *end;

	memset(rec, 0, sizeof(*rec));
	rec->redirect = rec->exp = -1;
	for (const char *c = text; *c; c++)
		if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e) {
			snprintf(why, whysz, "character 0x%02x is not allowed",
			    (unsigned char)*c);
			return -1;
		}
	rec->text = xstrdup(text);
	p = rec->text + 6;	/* after "v=spf1", checked by the caller */
	for (;;) {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			return 0;
		for (end = p; *end && *end != ' '; end++)
			;
		int last = *end == '\0';
		*end = '\0';
		rec->terms = xrealloc(rec->terms, sizeof(*rec->terms) * (size_t)(rec->nterms + 1));
		struct spf_term *t = &rec->terms[rec->nterms];
		if (spf_parse_term(p, t, why, whysz) == -1) {
			spf_record_free(rec);
			return -1;
		}
		if (t->mech == M_REDIRECT || t->mech == M_EXP) {
			int *slot = t->mech == M_REDIRECT ? &rec->redirect : &rec->exp;
			if (*slot != -1) {
				snprintf(why, whysz, "%s= given twice (RFC 7208 6)",
				    t->mech == M_REDIRECT ? "redirect" : "exp");
				spf_record_free(rec);
				return -1;
			}
			*slot = rec->nterms;
		}
		rec->nterms++;
		if (last)
			return 0;
		p = end + 1;
	}
}

static const struct {
	const char	*name;
	enum spf_mech	 mech;
} spf_mechs[] = {
	{ "all", M_ALL }, { "include", M_INCLUDE }, { "a", M_A }, { "mx", M_MX },
	{ "ptr", M_PTR }, { "ip4", M_IP4 }, { "ip6", M_IP6 }, { "exists", M_EXISTS },
};

/* One term, NUL-terminated; 0 or -1 with why. */
static int
spf_parse_term(char *s, struct spf_term *t, char *why, size_t whysz)
{
	char *name = s, *arg;
	size_t nl;

	memset(t, 0, sizeof(*t));
	t->qual = '+';
	t->cidr4 = 32;
	t->cidr6 = 128;
	if (strchr("+-~?", *s) != NULL)
		t->qual = *name++;
	/* name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." ) */
	for (nl = 0; name[nl] != '\0' && (isalnum((unsigned char)name[nl]) ||
	    strchr("-_.", name[nl]) != NULL); nl++)
		;
	if (nl == 0 || !isalpha((unsigned char)name[0]))
		goto bad;
	arg = name + nl;
	if (*arg == '=') {
		/* a modifier (6): no qualifier, value a macro-string */
		if (name != s)
			goto bad;
		*arg++ = '\0';
		if (strcasecmp(name, "redirect") == 0 || strcasecmp(name, "exp") == 0) {
			t->mech = strcasecmp(name, "redirect") == 0 ? M_REDIRECT : M_EXP;
			t->spec = arg;
			if (spf_domain_spec_check(arg) == -1)
				goto bad;
			return 0;
		}
		t->mech = M_UNKNOWN_MOD;
		if (spf_macro_check(arg, 0) == -1)
			goto bad;
		return 0;
	}
	size_t i;
	for (i = 0; i < ARRAY_SIZE(spf_mechs); i++)
		if (strlen(spf_mechs[i].name) == nl && strncasecmp(name, spf_mechs[i].name, nl) == 0)
			break;
	if (i == ARRAY_SIZE(spf_mechs)) {
		snprintf(why, whysz, "unknown mechanism '%.60s'", s);
		return -1;
	}
	t->mech = spf_mechs[i].mech;
	if (spf_parse_mech_arg(arg, t) == 0)
		return 0;
bad:
	snprintf(why, whysz, "bad term '%.60s'", s);
	return -1;
}

/* A CIDR length: digits only, no leading zero (RFC 7208 5.6, 12),
 * 0..max; the value or -1. */
static int
spf_cidr_num(const char *c, int max)
{
	long v = 0;

	if (!isdigit((unsigned char)*c) || (c[0] == '0' && c[1] != '\0'))
		return -1;
	for (; *c; c++) {
		if (!isdigit((unsigned char)*c) || (v = v * 10 + (*c - '0')) > max)
			return -1;
	}
	return (int)v;
}

/* What follows a mechanism's name (5.1-5.7, 12); 0 or -1. */
static int
spf_parse_mech_arg(char *arg, struct spf_term *t)
{
	switch (t->mech) {
	case M_ALL:
		return *arg == '\0' ? 0 : -1;
	case M_INCLUDE:
	case M_EXISTS:
		return spf_parse_spec(arg, t, 0);
	case M_A:
	case M_MX:
		if (spf_parse_cidr(arg, t, 1) == -1)
			return -1;
		return spf_parse_spec(arg, t, 1);
	case M_PTR:
		return spf_parse_spec(arg, t, 1);
	case M_IP4:
	case M_IP6:
		if (*arg++ != ':' || spf_parse_cidr(arg, t, 0) == -1)
			return -1;
		/* ip4: qnum has no leading zeros, 0-255 (glibc's inet_pton agrees) */
		if (t->mech == M_IP4)
			return strchr(arg, ':') == NULL &&
			    inet_pton(AF_INET, arg, t->net) == 1 ? 0 : -1;
		return inet_pton(AF_INET6, arg, t->net) == 1 ? 0 : -1;
	default:
		return -1;
	}
}

/* ":" domain-spec, or nothing when optional; 0 or -1. */
static int
spf_parse_spec(char *arg, struct spf_term *t, int optional)
{
	if (optional && *arg == '\0')
		return 0;
	if (*arg++ != ':' || spf_domain_spec_check(arg) == -1)
		return -1;
	t->spec = arg;
	return 0;
}

/* Cut a trailing CIDR suffix off s (in place): for a/mx the dual form
 * "/n", "//m" or "/n//m" at the very end (a domain-spec may hold '/' in
 * macro literals, so we look from the end); for ip4/ip6 one "/n". -1 when
 * malformed or out of range (0..32, 0..128). */
static int
spf_parse_cidr(char *s, struct spf_term *t, int dual)
{
	char *e = s + strlen(s), *d;

	if (!dual) {
		if ((d = strrchr(s, '/')) == NULL)
			return 0;
		*d = '\0';
		int v = spf_cidr_num(d + 1, t->mech == M_IP6 ? 128 : 32);
		if (v == -1)
			return -1;
		*(t->mech == M_IP6 ? &t->cidr6 : &t->cidr4) = v;
		return 0;
	}
	for (d = e; d > s && isdigit((unsigned char)d[-1]); d--)
		;
	if (d < e && d - s >= 2 && d[-1] == '/' && d[-2] == '/') {
		if ((t->cidr6 = spf_cidr_num(d, 128)) == -1)
			return -1;
		d[-2] = '\0';
		e = d - 2;
		for (d = e; d > s && isdigit((unsigned char)d[-1]); d--)
			;
	}
	if (d > s && d[-1] == '/') {
		if ((t->cidr4 = spf_cidr_num(d, 32)) == -1)
			return -1;
		d[-1] = '\0';
	}
	return 0;
}

/* 7.1: a macro-string. In exp text (is_exp) the letters c, r, t are
 * allowed too, and spaces. 0 or -1. Sets nothing. */
static int
spf_macro_check(const char *s, int is_exp)
{
	for (const char *p = s; *p; p++) {
		if (*p != '%') {
			if (*p == ' ' && is_exp)
				continue;
			if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e)
				return -1;
			continue;
		}
		p++;
		if (*p == '%' || *p == '_' || *p == '-')
			continue;
		if (*p != '{')
			return -1;
		p++;
		char l = (char)tolower((unsigned char)*p);
		if (l == '\0' || (strchr("slodiphv", l) == NULL &&
		    !(is_exp && strchr("crt", l) != NULL)))
			return -1;
		p++;
		if (isdigit((unsigned char)*p)) {
			long n = strtol(p, NULL, 10);
			if (n == 0)
				return -1;	/* 7.3: the DIGIT must be nonzero */
			while (isdigit((unsigned char)*p))
				p++;
		}
		if (*p == 'r' || *p == 'R')
			p++;
		while (*p && strchr(".-+,/_=", *p))
			p++;
		if (*p != '}')
			return -1;
	}
	return 0;
}

/* 12: domain-spec = macro-string domain-end, where domain-end is
 * "." toplabel ["."] or a macro-expand. 0 or -1. */
static int
spf_domain_spec_check(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || spf_macro_check(s, 0) == -1)
		return -1;
	/* ends with a macro-expand? ("%{...}", "%%", "%_", "%-") */
	if (s[n - 1] == '}') {
		const char *o = s + n - 1;
		while (o > s && *o != '{')
			o--;
		if (o > s && o[-1] == '%')
			return 0;
	}
	if (n >= 2 && s[n - 2] == '%' && strchr("%_-", s[n - 1])) {
		/* count the run of '%' so "%%%" ends in a literal '%' */
		size_t k = 0;
		while (k < n - 1 && s[n - 2 - k] == '%')
			k++;
		if (k % 2 == 1)
			return 0;
	}
	if (s[n - 1] == '.')
		n--;
	size_t dot = n;
	while (dot > 0 && s[dot - 1] != '.')
		dot--;
	if (dot == 0)
		return -1;	/* domain-end needs "." toplabel */
	return spf_toplabel(s + dot, n - dot) ? 0 : -1;
}

/* toplabel = ( *alphanum ALPHA *alphanum ) /
 *            ( 1*alphanum "-" *( alphanum / "-" ) alphanum ) */
static int
spf_toplabel(const char *s, size_t n)
{
	int alpha = 0, dash = 0;

	if (n == 0 || n > 63)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (isalpha((unsigned char)s[i]))
			alpha = 1;
		else if (s[i] == '-')
			dash = 1;
		else if (!isdigit((unsigned char)s[i]))
			return 0;
	}
	if (s[0] == '-' || s[n - 1] == '-')
		return 0;
	return alpha || dash;
}

static void
spf_record_free(struct spf_record *rec)
{
	free(rec->text);
	free(rec->terms);
	memset(rec, 0, sizeof(*rec));
}

/* ---- macros (7) ---- */

/* Expand a checked macro-string into out; 0, or -1 on a bad macro. What
 * does not fit is cut: for a domain name (tail) from the left, as 7.3 cuts
 * names from the left anyway; for explanation text from the right. */
static int
spf_expand(struct spf_ctx *ctx, const char *s, const char *domain, int tail,
    char *out, size_t outsz)
{
	char val[SPF_EXPAND_MAX];
	size_t o = 0;

	for (const char *p = s; *p; p++) {
		const char *add = val;

		if (*p != '%') {
			val[0] = *p;
			val[1] = '\0';
		} else if (p[1] == '%' || p[1] == '_' || p[1] == '-') {
			add = p[1] == '%' ? "%" : p[1] == '_' ? " " : "%20";
			p++;
		} else if ((p = spf_expand_macro(ctx, p, domain, val, sizeof(val))) == NULL)
			return -1;
		size_t al = strlen(add);
		if (al >= outsz)
			add += al - (outsz - 1), al = outsz - 1;
		if (o + al >= outsz) {
			if (!tail)
				break;
			size_t drop = o + al - (outsz - 1);
			memmove(out, out + drop, o - drop);
			o -= drop;
		}
		memcpy(out + o, add, al);
		o += al;
	}
	out[o] = '\0';
	return 0;
}

/* One checked "%{" letter [digits] ["r"] delimiters "}" at p: its value,
 * transformed (7.3), into val. Returns the closing brace, or NULL. */
static const char *
spf_expand_macro(struct spf_ctx *ctx, const char *p, const char *domain,
    char *val, size_t valsz)
{
	char letter = p[2], delims[16] = "";
	const char *q = p + 3;
	size_t nd = 0;
	long keep = 0;
	int rev = 0;

	if (isdigit((unsigned char)*q)) {
		keep = strtol(q, NULL, 10);
		while (isdigit((unsigned char)*q))
			q++;
	}
	if (*q == 'r' || *q == 'R')
		rev = 1, q++;
	for (; *q != '}'; q++)
		if (nd < sizeof(delims) - 1 && strchr(delims, *q) == NULL)
			delims[nd++] = *q;
	if (spf_macro_value(ctx, letter, domain, val, valsz) == -1)
		return NULL;
	spf_transform(val, valsz, nd ? delims : ".", keep, rev);
	/* an upper-case letter means: URL-escape the value */
	if (isupper((unsigned char)letter))
		spf_urlescape(val, valsz);
	return q;
}

/* 7.3: split val on the delimiters, reverse if asked, keep the right-most
 * keep parts (all when 0 or more than there are), join with dots. */
static void
spf_transform(char *val, size_t valsz, const char *delims, long keep, int rev)
{
	char *copy = xstrdup(val), **f = xcalloc(strlen(val) + 2, sizeof(char *));
	struct buf joined = { 0 };
	int nf = 0, first;

	f[nf++] = copy;
	for (char *c = copy; *c; c++)
		if (strchr(delims, *c) != NULL) {
			*c = '\0';
			f[nf++] = c + 1;
		}
	for (int i = 0; rev && i < nf / 2; i++) {
		char *tmp = f[i];
		f[i] = f[nf - 1 - i];
		f[nf - 1 - i] = tmp;
	}
	first = keep > 0 && keep < nf ? nf - (int)keep : 0;
	for (int i = first; i < nf; i++) {
		if (i > first)
			buf_addc(&joined, '.');
		buf_adds(&joined, f[i]);
	}
	snprintf(val, valsz, "%s", buf_str(&joined));
	buf_free(&joined);
	free(f);
	free(copy);
}

/* RFC 3986 2.3: everything but the unreserved characters as %XX. */
static void
spf_urlescape(char *val, size_t valsz)
{
	char *esc = xmalloc(valsz);
	size_t eo = 0;

	for (const char *v = val; *v && eo + 4 < valsz; v++) {
		if (isalnum((unsigned char)*v) || strchr("-._~", *v) != NULL)
			esc[eo++] = *v;
		else {
			esc[eo++] = '%';
			esc[eo++] = "0123456789ABCDEF"[(unsigned char)*v >> 4];
			esc[eo++] = "0123456789ABCDEF"[(unsigned char)*v & 0xf];
		}
	}
	esc[eo] = '\0';
	memcpy(val, esc, eo + 1);
	free(esc);
}

/* The value of one macro letter (7.3). */
static int
spf_macro_value(struct spf_ctx *ctx, char letter, const char *domain, char *out, size_t sz)
{
	const struct spf_query *q = ctx->q;
	char ip[INET6_ADDRSTRLEN];

	switch (tolower((unsigned char)letter)) {
	case 's': snprintf(out, sz, "%s@%s", ctx->local, ctx->sdomain); return 0;
	case 'l': snprintf(out, sz, "%s", ctx->local); return 0;
	case 'o': snprintf(out, sz, "%s", ctx->sdomain); return 0;
	case 'd': snprintf(out, sz, "%s", domain); return 0;
	case 'h': snprintf(out, sz, "%s", q->helo ? q->helo : "unknown"); return 0;
	case 'v': snprintf(out, sz, "%s", ctx->v6 ? "ip6" : "in-addr"); return 0;
	case 'r': snprintf(out, sz, "%s", q->receiver ? q->receiver : "unknown"); return 0;
	case 't': snprintf(out, sz, "%lld", (long long)(q->now ? q->now : time_wall())); return 0;
	case 'c':
		inet_ntop(ctx->v6 ? AF_INET6 : AF_INET, ctx->addr, ip, sizeof(ip));
		snprintf(out, sz, "%s", ip);
		return 0;
	case 'i':
		if (!ctx->v6) {
			snprintf(out, sz, "%u.%u.%u.%u", ctx->addr[0], ctx->addr[1],
			    ctx->addr[2], ctx->addr[3]);
			return 0;
		}
		/* IPv6: dot-separated nibbles, most significant first */
		if (sz < 64)
			return -1;
		for (int i = 0; i < 16; i++)
			snprintf(out + i * 4, sz - (size_t)i * 4, "%x.%x%s",
			    ctx->addr[i] >> 4, ctx->addr[i] & 0xf, i < 15 ? "." : "");
		return 0;
	case 'p':
		if (ctx->validated == NULL) {
			char *n = spf_validated_name(ctx, domain, 0);
			if (n == NULL)
				n = spf_validated_name(ctx, NULL, 0);
			ctx->validated = n ? n : xstrdup("unknown");
		}
		snprintf(out, sz, "%s", ctx->validated);
		return 0;
	}
	return -1;
}

/* ---- the policy check ---- */

/* What spf_run() keeps besides ps->found.spf (which the checks after it
 * read): the HELO stage's outcome of the HELO identity, for the null
 * sender, and the whole outcome of the transaction's, for `postern
 * check`. Each is written only by its own stage, so running a stage
 * again (pol_run_here undid it) finds what the first run found. */
struct spf_state {
	int		 have_helo;
	struct spf_outcome helo, mail;
};

static int	 spf_enabled(const struct conf *);
static void	 spf_run(struct pol_session *, enum pol_stage, const struct pol_msg *);
static void	 spf_tx_reset(struct pol_session *);
static void	 spf_free(struct pol_session *);
static struct spf_state *spf_state(const struct pol_session *);
static struct spf_state *spf_state_new(struct pol_session *);
static void	 spf_eval_identity(struct pol_session *, const char *sender,
		    const char *domain, struct spf_outcome *);
static void	 spf_eval_helo(struct pol_session *, struct spf_outcome *);
static double	 spf_score(const struct conf *, enum spf_result);

const struct pol_check spf_check = {
	.name = "spf",
	.stages = 1u << POL_HELO | 1u << POL_MAIL,
	.enabled = spf_enabled,
	.run = spf_run,
	.tx_reset = spf_tx_reset,
	.free = spf_free,
};

static int
spf_enabled(const struct conf *c)
{
	return c->spf_enabled;
}

/* The session's SPF state, or NULL before the check first ran. */
static struct spf_state *
spf_state(const struct pol_session *ps)
{
	return ps->priv[pol_check_slot(&spf_check)];
}

static struct spf_state *
spf_state_new(struct pol_session *ps)
{
	int slot = pol_check_slot(&spf_check);

	if (ps->priv[slot] == NULL)
		ps->priv[slot] = xcalloc(1, sizeof(struct spf_state));
	return ps->priv[slot];
}

/* check_host() of one identity, on the session's budget. */
static void
spf_eval_identity(struct pol_session *ps, const char *sender, const char *domain,
    struct spf_outcome *o)
{
	struct spf_query q = {
		.ip = (const struct sockaddr *)&ps->client,
		.sender = sender,
		.helo = ps->helo,
		.domain = domain,
		.receiver = ps->conf->hostname,
		.budget = &ps->dns,
	};

	spf_check_host(&q, o);
}

static void
spf_run(struct pol_session *ps, enum pol_stage stage, const struct pol_msg *msg)
{
	struct spf_state *st = spf_state_new(ps);
	struct spf_outcome *o = &st->mail;
	char *props;

	(void)msg;
	if (stage == POL_HELO) {
		/* 2.3: the HELO identity; kept for the null sender. */
		spf_outcome_clear(&st->helo);
		spf_eval_helo(ps, &st->helo);
		st->have_helo = 1;
		return;
	}
	if (ps->mail_from == NULL)
		return;
	spf_outcome_clear(&st->mail);
	if (*ps->mail_from == '\0') {
		/* 2.4: for <>, the MAIL FROM check uses postmaster@HELO. */
		if (st->have_helo) {
			*o = st->helo;
			o->explanation = st->helo.explanation ?
			    xstrdup(st->helo.explanation) : NULL;
		} else
			spf_eval_helo(ps, o);
		ps->found.spf.identity = SPF_ID_HELO;
		props = xasprintf("smtp.helo=%s", ps->helo ? ps->helo : "");
	} else {
		const char *at = strrchr(ps->mail_from, '@');
		spf_eval_identity(ps, ps->mail_from, at ? at + 1 : ps->mail_from, o);
		ps->found.spf.identity = SPF_ID_MAILFROM;
		props = xasprintf("smtp.mailfrom=%s", ps->mail_from);
	}
	ps->found.spf.ran = 1;
	ps->found.spf.result = o->result;
	memcpy(ps->found.spf.domain, o->domain, sizeof(ps->found.spf.domain));
	if (o->explanation != NULL)
		pol_result_add(ps, "spf", spf_result_name(o->result),
		    spf_score(ps->conf, o->result), props, "%s; explanation: %s",
		    o->reason, o->explanation);
	else
		pol_result_add(ps, "spf", spf_result_name(o->result),
		    spf_score(ps->conf, o->result), props, "%s", o->reason);
	free(props);
}

/* The HELO identity (2.3), as postmaster@HELO; no HELO is no domain. */
static void
spf_eval_helo(struct pol_session *ps, struct spf_outcome *o)
{
	const char *helo = ps->helo ? ps->helo : "";
	char *sender = xasprintf("postmaster@%s", helo);

	spf_eval_identity(ps, sender, helo, o);
	free(sender);
}

/* temperror and none score 0: never a silent pass, never a penalty for
 * our own DNS trouble. */
static double
spf_score(const struct conf *c, enum spf_result r)
{
	switch (r) {
	case SPF_R_PASS: return c->spf_pass_score;
	case SPF_R_NEUTRAL: return c->spf_neutral_score;
	case SPF_R_SOFTFAIL: return c->spf_softfail_score;
	case SPF_R_FAIL: return c->spf_fail_score;
	case SPF_R_PERMERROR: return c->spf_permerror_score;
	default: return 0;
	}
}

static void
spf_tx_reset(struct pol_session *ps)
{
	struct spf_state *st = spf_state(ps);

	if (st == NULL)
		return;
	spf_outcome_clear(&st->mail);
}

static void
spf_free(struct pol_session *ps)
{
	struct spf_state *st = spf_state(ps);

	if (st == NULL)
		return;
	spf_tx_reset(ps);
	spf_outcome_clear(&st->helo);
	free(st);
	ps->priv[pol_check_slot(&spf_check)] = NULL;
}

int
spf_session_get(const struct pol_session *ps, enum spf_result *r,
    const char **domain, const char **identity)
{
	const struct spf_found *f = &ps->found.spf;

	if (!f->ran)
		return -1;
	*r = f->result;
	if (domain)
		*domain = f->domain;
	if (identity)
		*identity = f->identity == SPF_ID_HELO ? "helo" : "mailfrom";
	return 0;
}

/* The whole outcome, for `postern check`. NULL when SPF did not run. */
const struct spf_outcome *
spf_session_outcome(const struct pol_session *ps)
{
	struct spf_state *st = spf_state(ps);

	return st && ps->found.spf.ran ? &st->mail : NULL;
}
