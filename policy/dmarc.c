/*
 * dmarc.c -- the "dmarc" check; see dmarc.h for the contract.
 *
 * Steps at POL_DATA, in RFC 7489 order:
 *   dmarc_from_domain()   6.6.1  the RFC5322.From domain
 *   dmarc_discover()      6.6.3  _dmarc.FROM, else _dmarc.ORG (libpsl)
 *   dmarc_identifiers()   4.2    what SPF and DKIM authenticated
 *   dmarc_evaluate()      6.6.2  aligned pass -> pass, else fail
 *   dmarc_apply()         6.6.4  policy (p/sp, pct) -> verdict or score
 * Everything that comes from DNS or the message is bounded by the limits
 * in dmarc.h before it is copied.
 *
 * Thread: any worker thread, or the session's I/O loop in a speculative
 * run (policy/policy.c, pol_run_here: discovery from the DNS cache, or
 * the stage goes to a worker) once the PSL context is loaded -- on a
 * worker, once (dmarc_blocks) -- and read-only.
 */
#include "policy/dmarc.h"
#include "lib/conf.h"
#include "lib/util.h"
#include "policy/authres.h"
#include "policy/msghdr.h"

#include <libpsl.h>

#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Identifiers SPF and DKIM authenticated, for alignment. */
#define DMARC_MAX_IDS	17
/* One mailbox of a From field; RFC 5322 2.1.1 caps a line at 998
 * characters, and a longer address cannot be shown to a reader as is. */
#define DMARC_MAILBOX_MAX	1000

enum dmarc_found { DMARC_FOUND = 0, DMARC_NOTFOUND, DMARC_TEMP, DMARC_SEVERAL,
	DMARC_BROKEN };

/* What discovery found. */
struct dmarc_policy_ctx {
	struct dmarc_record rec;
	char	 where[DMARC_DOMAIN_MAX];	/* domain the record was found at */
	int	 at_org;			/* found at the organizational domain */
	char	 why[2 * DMARC_DOMAIN_MAX + 128];
};

/* Where an address-list scan is: inside a quoted string, comment depth. */
struct dmarc_lex {
	int	 depth, inq;
};
enum dmarc_lex_kind { DMARC_LEX_TEXT, DMARC_LEX_QUOTED, DMARC_LEX_COMMENT };

/* p= and sp= while a record is parsed: a policy, or absent, or bad. */
#define DMARC_P_ABSENT	(-3)
#define DMARC_P_BAD	(-2)
struct dmarc_ptags {
	int	 p, sp;
	int	 rua;		/* a syntactically valid rua= is there */
};

/* One tag of a tag list, WSP trimmed. */
struct dmarc_tagv {
	const char *name, *val;
	size_t	 nlen, vlen;
};

/* An authenticated identifier: its domain and whether it passed or could
 * not be decided (temperror). */
struct dmarc_id {
	char	 domain[DMARC_DOMAIN_MAX];
	int	 temp;
	int	 is_spf;
};

static pthread_once_t	 dmarc_once = PTHREAD_ONCE_INIT;
static const psl_ctx_t	*dmarc_psl;
static _Atomic int	 dmarc_psl_ready;	/* loaded (files read, on a worker) */

static void	 dmarc_psl_init(void);
static int	 dmarc_enabled(const struct conf *);
static void	 dmarc_run(struct pol_session *, enum pol_stage, const struct pol_msg *);
static int	 dmarc_domain_clean(const char *, size_t, char *, size_t);
static enum dmarc_lex_kind dmarc_lex(struct dmarc_lex *, const char *, size_t, size_t *);
static int	 dmarc_mailbox_domain(const char *, size_t, char *, size_t);
static int	 dmarc_from_addrs(const char *, char doms[][DMARC_DOMAIN_MAX], int *);
static int	 dmarc_wsp(char);
static int	 dmarc_tag(const char *, size_t, size_t *, struct dmarc_tagv *);
static int	 dmarc_policy_word(const char *, size_t);
static int	 dmarc_tag_is(const struct dmarc_tagv *, const char *);
static void	 dmarc_record_tag(const struct dmarc_tagv *, struct dmarc_ptags *,
		    struct dmarc_record *);
static enum dmarc_found dmarc_lookup(struct dns_budget *, const char *,
		    struct dmarc_policy_ctx *);
static enum dmarc_found dmarc_discover(struct dns_budget *, const char *,
		    struct dmarc_policy_ctx *);
static int	 dmarc_identifiers(const struct pol_session *, struct dmarc_id *, int);
static int	 dmarc_id_take(struct dmarc_id *, int pass, int temp, const char *domain,
		    int is_spf);
static void	 dmarc_result(struct pol_session *, enum authres_result, double,
		    const char *props, const char *why);
static int	 dmarc_evaluate(const char *, const struct dmarc_record *,
		    const struct dmarc_id *, int, int *);
static void	 dmarc_apply(struct pol_session *, const char *,
		    const struct dmarc_policy_ctx *, int pass);
static void	 dmarc_temperror(struct pol_session *, const char *, const char *);
static int	 dmarc_blocks(const struct pol_session *, enum pol_stage,
		    const struct pol_msg *);

const struct pol_check dmarc_check = {
	.name = "dmarc",
	.stages = 1u << POL_DATA,
	.enabled = dmarc_enabled,
	.run = dmarc_run,
	.blocks = dmarc_blocks,
};

static void
dmarc_psl_init(void)
{
	/* The newest of libpsl's built-in list and Debian's publicsuffix
	 * data, wherever the distribution keeps it. */
	dmarc_psl = psl_latest(NULL);
	if (dmarc_psl == NULL)
		dmarc_psl = psl_builtin();
	if (dmarc_psl == NULL)
		log_warn("dmarc: no Public Suffix List; organizational domain "
		    "is the last two labels");
	atomic_store(&dmarc_psl_ready, 1);
}

static int
dmarc_enabled(const struct conf *c)
{
	return c->dmarc_enabled;
}

const char *
dmarc_policy_name(int p)
{
	switch (p) {
	case DMARC_P_NONE:		return "none";
	case DMARC_P_QUARANTINE:	return "quarantine";
	case DMARC_P_REJECT:		return "reject";
	default:			return "unset";
	}
}

/* Lower-case s[0..n) into out as a domain name: LDH labels (and '_', seen
 * in the wild), no empty label, one trailing dot dropped. 0 or -1. */
static int
dmarc_domain_clean(const char *s, size_t n, char *out, size_t outsz)
{
	size_t o = 0;

	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	while (n > 0 && (*s == ' ' || *s == '\t'))
		s++, n--;
	if (n > 0 && s[n - 1] == '.')
		n--;
	if (n == 0 || n >= outsz || n > DMARC_DOMAIN_MAX - 1)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.' && (i == 0 || s[i - 1] == '.'))
			return -1;
		if (!isalnum(c) && c != '-' && c != '.' && c != '_')
			return -1;
		out[o++] = (char)tolower(c);
	}
	out[o] = '\0';
	return 0;
}

int
dmarc_org_domain(const char *domain, char *out, size_t outsz)
{
	char d[DMARC_DOMAIN_MAX];
	const char *reg, *p;

	if (dmarc_domain_clean(domain, strlen(domain), d, sizeof(d)) == -1)
		return -1;
	pthread_once(&dmarc_once, dmarc_psl_init);
	if (dmarc_psl != NULL) {
		reg = psl_registrable_domain(dmarc_psl, d);
		/* NULL: d is a public suffix itself; it is its own org domain,
		 * and only aligns with exactly itself. */
		snprintf(out, outsz, "%s", reg != NULL ? reg : d);
		return 0;
	}
	p = strrchr(d, '.');
	if (p != NULL)
		while (p > d && p[-1] != '.')
			p--;
	snprintf(out, outsz, "%s", p != NULL ? p : d);
	return 0;
}

int
dmarc_aligned(const char *from, const char *auth, int strict)
{
	char a[DMARC_DOMAIN_MAX], b[DMARC_DOMAIN_MAX];

	if (dmarc_domain_clean(from, strlen(from), a, sizeof(a)) == -1 ||
	    dmarc_domain_clean(auth, strlen(auth), b, sizeof(b)) == -1)
		return 0;
	/* the same name has the same organizational domain: no PSL walk */
	if (strict || strcmp(a, b) == 0)
		return strcmp(a, b) == 0;
	if (dmarc_org_domain(a, a, sizeof(a)) == -1 ||
	    dmarc_org_domain(b, b, sizeof(b)) == -1)
		return 0;
	return strcmp(a, b) == 0;
}

/* Classify s[*i] while scanning an address list: text, or part of a
 * quoted string (RFC 5322 3.2.4) or a comment (3.2.2, nesting); a
 * quoted-pair is consumed whole (*i advanced past it). */
static enum dmarc_lex_kind
dmarc_lex(struct dmarc_lex *lx, const char *s, size_t n, size_t *i)
{
	char c = s[*i];

	if ((lx->inq || lx->depth) && c == '\\' && *i + 1 < n) {
		(*i)++;
		return lx->inq ? DMARC_LEX_QUOTED : DMARC_LEX_COMMENT;
	}
	if (lx->inq) {
		lx->inq = c != '"';
		return DMARC_LEX_QUOTED;
	}
	if (lx->depth) {
		lx->depth += c == '(' ? 1 : c == ')' ? -1 : 0;
		return DMARC_LEX_COMMENT;
	}
	if (c == '(' || c == '"') {
		lx->depth = c == '(';
		lx->inq = c == '"';
		return c == '(' ? DMARC_LEX_COMMENT : DMARC_LEX_QUOTED;
	}
	return DMARC_LEX_TEXT;
}

/* Domain of one mailbox (display name, comments, quotes, <addr>, route):
 * 0 with dom filled, 1 for an empty mailbox (group syntax), -1 bad. */
static int
dmarc_mailbox_domain(const char *s, size_t n, char *dom, size_t domsz)
{
	char plain[DMARC_MAILBOX_MAX], angle[DMARC_MAILBOX_MAX];
	struct dmarc_lex lx = { 0, 0 };
	size_t np = 0, na = 0, len;
	int inangle = 0, sawangle = 0;
	const char *at, *src;

	if (n >= DMARC_MAILBOX_MAX)
		return -1;
	for (size_t i = 0; i < n; i++) {
		enum dmarc_lex_kind k = dmarc_lex(&lx, s, n, &i);
		char c = s[i];

		if (k == DMARC_LEX_COMMENT)
			continue;
		if (k == DMARC_LEX_QUOTED)
			c = 'q';	/* a quoted local-part: no '@' of its own */
		else if (c == '<') {
			inangle = sawangle = 1;
			na = 0;
			continue;
		} else if (c == '>') {
			inangle = 0;
			continue;
		}
		if (inangle)
			angle[na++] = c;
		else if (!sawangle)
			plain[np++] = c;
	}
	src = sawangle ? angle : plain;
	len = sawangle ? na : np;
	while (len > 0 && (src[len - 1] == ' ' || src[len - 1] == '\t'))
		len--;
	if (len == 0 || strspn(src, " \t") >= len)
		return sawangle ? -1 : 1;
	at = NULL;
	for (size_t i = 0; i < len; i++)
		if (src[i] == '@')
			at = src + i;
	if (at == NULL)
		return -1;
	return dmarc_domain_clean(at + 1, len - (size_t)(at + 1 - src), dom, domsz);
}

/* Split a From value into mailboxes (',' and group ':' ';' outside quotes,
 * comments and <>) and collect distinct domains. 0, or -1 on a bad one. */
static int
dmarc_from_addrs(const char *v, char doms[][DMARC_DOMAIN_MAX], int *ndoms)
{
	struct dmarc_lex lx = { 0, 0 };
	size_t start = 0, len = strlen(v);
	int inangle = 0;

	*ndoms = 0;
	for (size_t i = 0; i <= len; i++) {
		char dom[DMARC_DOMAIN_MAX];
		int r, dup = 0;

		if (i < len) {
			if (dmarc_lex(&lx, v, len, &i) != DMARC_LEX_TEXT)
				continue;
			inangle = v[i] == '<' ? 1 : v[i] == '>' ? 0 : inangle;
			if (inangle || !strchr(",:;", v[i]))
				continue;
			if (v[i] == ':') {	/* group name: not a mailbox */
				start = i + 1;
				continue;
			}
		}
		r = dmarc_mailbox_domain(v + start, i - start, dom, sizeof(dom));
		start = i + 1;
		if (r == 1)
			continue;
		if (r == -1)
			return -1;
		for (int k = 0; k < *ndoms; k++)
			dup |= strcmp(doms[k], dom) == 0;
		if (!dup && *ndoms < DMARC_FROM_MAX_ADDRS)
			snprintf(doms[(*ndoms)++], DMARC_DOMAIN_MAX, "%s", dom);
	}
	return 0;
}

enum dmarc_from_status
dmarc_from_domain(const char *msg, size_t len, char *dom, size_t domsz)
{
	char doms[DMARC_FROM_MAX_ADDRS][DMARC_DOMAIN_MAX];
	struct msghdr_field f, from;
	size_t pos = 0;
	int nfrom = 0, ndoms = 0, r;
	char *v;

	while (msghdr_next(msg, len, &pos, &f))
		if (msghdr_is(&f, "From") && nfrom++ == 0)
			from = f;
	if (nfrom == 0)
		return DMARC_FROM_MISSING;
	if (nfrom > 1)
		return DMARC_FROM_SEVERAL_FIELDS;
	v = msghdr_unfold(&from);
	r = dmarc_from_addrs(v, doms, &ndoms);
	free(v);
	if (r == -1)
		return DMARC_FROM_BAD;
	if (ndoms == 0)
		return DMARC_FROM_MISSING;
	if (ndoms > 1)
		return DMARC_FROM_SEVERAL_DOMAINS;
	snprintf(dom, domsz, "%s", doms[0]);
	return DMARC_FROM_OK;
}

static int
dmarc_wsp(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Next "name=value" of a tag list (RFC 7489 6.4, RFC 6376 3.2) from *pos,
 * surrounding WSP trimmed: 1 and *t filled, or 0 at the end. */
static int
dmarc_tag(const char *s, size_t len, size_t *pos, struct dmarc_tagv *t)
{
	size_t p = *pos, end, eq, v, vend;

	while (p < len) {
		const char *semi = memchr(s + p, ';', len - p);
		end = semi ? (size_t)(semi - s) : len;
		*pos = end < len ? end + 1 : len;
		while (p < end && dmarc_wsp(s[p]))
			p++;
		if (p == end) {
			p = *pos;
			continue;
		}
		for (eq = p; eq < end && s[eq] != '='; eq++)
			;
		t->name = s + p;
		t->nlen = eq - p;
		while (t->nlen > 0 && dmarc_wsp(s[p + t->nlen - 1]))
			t->nlen--;
		v = eq < end ? eq + 1 : end;
		while (v < end && dmarc_wsp(s[v]))
			v++;
		vend = end;
		while (vend > v && dmarc_wsp(s[vend - 1]))
			vend--;
		t->val = s + v;
		t->vlen = vend - v;
		return 1;
	}
	return 0;
}

static int
dmarc_policy_word(const char *v, size_t n)
{
	if (n == 4 && strncasecmp(v, "none", 4) == 0)
		return DMARC_P_NONE;
	if (n == 10 && strncasecmp(v, "quarantine", 10) == 0)
		return DMARC_P_QUARANTINE;
	if (n == 6 && strncasecmp(v, "reject", 6) == 0)
		return DMARC_P_REJECT;
	return DMARC_P_BAD;
}

/* Is tag t named `name` (case-insensitive, RFC 7489 6.4 ABNF)? */
static int
dmarc_tag_is(const struct dmarc_tagv *t, const char *name)
{
	return t->nlen == strlen(name) && strncasecmp(t->name, name, t->nlen) == 0;
}

/* Apply one tag after v=DMARC1. p= and sp= are kept in *pt for the caller
 * to judge (6.6.3 step 6); other bad values fall back to defaults (6.3).
 * The first of a repeated tag wins. */
static void
dmarc_record_tag(const struct dmarc_tagv *t, struct dmarc_ptags *pt,
    struct dmarc_record *r)
{
	const char *v = t->val;
	size_t vl = t->vlen;

	if (dmarc_tag_is(t, "p") && pt->p == DMARC_P_ABSENT)
		pt->p = dmarc_policy_word(v, vl);
	else if (dmarc_tag_is(t, "sp") && pt->sp == DMARC_P_ABSENT)
		pt->sp = dmarc_policy_word(v, vl);
	else if (dmarc_tag_is(t, "adkim"))
		r->adkim_strict = vl == 1 && (*v == 's' || *v == 'S');
	else if (dmarc_tag_is(t, "aspf"))
		r->aspf_strict = vl == 1 && (*v == 's' || *v == 'S');
	else if (dmarc_tag_is(t, "rua"))
		pt->rua = vl > 7 && strncasecmp(v, "mailto:", 7) == 0;
	else if (dmarc_tag_is(t, "pct") && vl > 0 && vl <= 3) {
		int n = 0;
		for (size_t i = 0; i < vl && n >= 0; i++)
			n = isdigit((unsigned char)v[i]) ? n * 10 + v[i] - '0' : -1;
		if (n >= 0 && n <= 100)
			r->pct = n;
	}
}

enum dmarc_rec_status
dmarc_record_parse(const char *txt, size_t len, struct dmarc_record *r)
{
	struct dmarc_ptags pt = { DMARC_P_ABSENT, DMARC_P_ABSENT, 0 };
	struct dmarc_tagv t;
	size_t pos = 0;

	memset(r, 0, sizeof(*r));
	r->p = DMARC_P_NONE;
	r->sp = DMARC_P_UNSET;
	r->pct = 100;
	if (len > DMARC_RECORD_MAX)
		len = DMARC_RECORD_MAX;
	/* 6.4: v=DMARC1 first, its value exactly as written. */
	if (!dmarc_tag(txt, len, &pos, &t) || !dmarc_tag_is(&t, "v") ||
	    t.vlen != 6 || strncmp(t.val, "DMARC1", 6) != 0)
		return DMARC_REC_NOT_DMARC;
	while (dmarc_tag(txt, len, &pos, &t))
		dmarc_record_tag(&t, &pt, r);
	/* 6.6.3 step 6: a bad or missing p (or a bad sp) is p=none when a
	 * valid rua is there, else the record is not applied. */
	if (pt.p < 0 || pt.sp == DMARC_P_BAD) {
		if (!pt.rua)
			return DMARC_REC_INVALID;
		r->p = DMARC_P_NONE;
		return DMARC_REC_OK;
	}
	r->p = pt.p;
	r->sp = pt.sp == DMARC_P_ABSENT ? DMARC_P_UNSET : pt.sp;
	return DMARC_REC_OK;
}

/* One DNS lookup at _dmarc.DOMAIN (6.6.3 steps 1-3), on the session's
 * budget b. */
static enum dmarc_found
dmarc_lookup(struct dns_budget *b, const char *domain, struct dmarc_policy_ctx *pc)
{
	char name[DMARC_DOMAIN_MAX + 8];
	struct dns_answer *a;
	struct dmarc_record rec;
	enum dmarc_found found = DMARC_NOTFOUND;
	int n = 0, broken = 0;

	snprintf(name, sizeof(name), "_dmarc.%s", domain);
	a = dns_query(name, DNS_T_TXT, b);
	if (a->status == DNS_TEMPERROR || a->status == DNS_BUDGET) {
		snprintf(pc->why, sizeof(pc->why), "%s: %s %s", name,
		    dns_status_name(a->status), a->why);
		dns_answer_free(a);
		return DMARC_TEMP;
	}
	for (int i = 0; a->status == DNS_OK && i < a->count; i++) {
		enum dmarc_rec_status st = dmarc_record_parse(a->rr[i].u.txt.joined,
		    (size_t)a->rr[i].u.txt.len, &rec);
		if (st == DMARC_REC_NOT_DMARC)
			continue;
		if (n++ == 0) {
			pc->rec = rec;
			broken = st == DMARC_REC_INVALID;
		}
	}
	dns_answer_free(a);
	if (n > 1) {
		snprintf(pc->why, sizeof(pc->why), "%d DMARC records at %s", n, name);
		found = DMARC_SEVERAL;
	} else if (n == 1 && broken) {
		snprintf(pc->why, sizeof(pc->why), "invalid DMARC record at %s", name);
		found = DMARC_BROKEN;
	} else if (n == 1) {
		found = DMARC_FOUND;
	}
	snprintf(pc->where, sizeof(pc->where), "%s", domain);
	return found;
}

/* 6.6.3: the From domain's record, else the organizational domain's. */
static enum dmarc_found
dmarc_discover(struct dns_budget *b, const char *from, struct dmarc_policy_ctx *pc)
{
	char org[DMARC_DOMAIN_MAX];
	enum dmarc_found f;

	memset(pc, 0, sizeof(*pc));
	f = dmarc_lookup(b, from, pc);
	if (f != DMARC_NOTFOUND)
		return f;
	if (dmarc_org_domain(from, org, sizeof(org)) == -1 || strcmp(org, from) == 0) {
		snprintf(pc->why, sizeof(pc->why), "no DMARC record for %s", from);
		return DMARC_NOTFOUND;
	}
	f = dmarc_lookup(b, org, pc);
	pc->at_org = 1;
	if (f == DMARC_NOTFOUND)
		snprintf(pc->why, sizeof(pc->why), "no DMARC record for %s or %s",
		    from, org);
	return f;
}

/* 4.2: the domain SPF authenticated (MAIL FROM, or HELO for <>: spf
 * checks the HELO identity only for the null sender, as 4.1 wants) and
 * the d= of DKIM signatures, as the spf and dkim checks found them;
 * passes and temperrors only. Returns how many. */
static int
dmarc_identifiers(const struct pol_session *ps, struct dmarc_id *ids, int max)
{
	const struct pol_found *f = &ps->found;
	int n = 0;

	if (f->spf.ran)
		n += dmarc_id_take(&ids[n], f->spf.result == SPF_R_PASS,
		    f->spf.result == SPF_R_TEMPERROR, f->spf.domain, 1);
	for (int i = 0; i < f->ndkim && n < max; i++)
		n += dmarc_id_take(&ids[n], f->dkim[i].result == AUTHRES_PASS,
		    f->dkim[i].result == AUTHRES_TEMPERROR, f->dkim[i].domain, 0);
	return n;
}

/* An identifier that passed or could not be decided, about a usable
 * domain, into *id: 1; else 0. */
static int
dmarc_id_take(struct dmarc_id *id, int pass, int temp, const char *domain, int is_spf)
{
	if ((!pass && !temp) ||
	    dmarc_domain_clean(domain, strlen(domain), id->domain, sizeof(id->domain)) == -1)
		return 0;
	id->temp = temp;
	id->is_spf = is_spf;
	return 1;
}

/* The check's one result: typed for the checks after it, as text for the
 * header and the logs. */
static void
dmarc_result(struct pol_session *ps, enum authres_result res, double score,
    const char *props, const char *why)
{
	ps->found.dmarc = res;
	pol_result_add(ps, "dmarc", authres_result_name(res), score, props, "%s", why);
}

/* 6.6.2: 1 pass (an aligned pass), 0 fail; *temp set when an aligned
 * identifier could not be decided. */
static int
dmarc_evaluate(const char *from, const struct dmarc_record *rec,
    const struct dmarc_id *ids, int n, int *temp)
{
	*temp = 0;
	for (int i = 0; i < n; i++) {
		int strict = ids[i].is_spf ? rec->aspf_strict : rec->adkim_strict;
		if (!dmarc_aligned(from, ids[i].domain, strict))
			continue;
		if (!ids[i].temp)
			return 1;
		*temp = 1;
	}
	return 0;
}

static void
dmarc_temperror(struct pol_session *ps, const char *from, const char *why)
{
	char props[DMARC_DOMAIN_MAX + 16];

	snprintf(props, sizeof(props), "header.from=%s", from);
	dmarc_result(ps, AUTHRES_TEMPERROR, 0, props, why);
	if (ps->conf->temperror_tempfail)
		pol_hard_set(ps, POL_TEMPFAIL, 451, "4.4.3", 0,
		    "Temporary failure evaluating DMARC for %s; try again later", from);
}

/* 6.6.4 and our config: what a fail (or pass) does. */
static void
dmarc_apply(struct pol_session *ps, const char *from,
    const struct dmarc_policy_ctx *pc, int pass)
{
	const struct conf *c = ps->conf;
	int pol = pc->at_org && pc->rec.sp != DMARC_P_UNSET ? pc->rec.sp : pc->rec.p;
	int eff = pol, act = CONF_DMARC_IGNORE, dis = DMARC_P_NONE;
	char props[DMARC_DOMAIN_MAX + 64], why[DMARC_DOMAIN_MAX + 96];
	double score = 0;

	if (!pass && pol != DMARC_P_NONE && pc->rec.pct < 100 &&
	    (int)arc4random_uniform(100) >= pc->rec.pct)
		eff = pol - 1;		/* not sampled: the next milder policy */
	if (!pass && eff == DMARC_P_REJECT)
		act = c->dmarc_reject_action;
	else if (!pass && eff == DMARC_P_QUARANTINE)
		act = c->dmarc_quarantine_action;
	if (act == CONF_DMARC_FOLLOW)
		dis = eff;
	else if (act == CONF_DMARC_SCORE)
		score = c->dmarc_fail_score;
	snprintf(props, sizeof(props), "(p=%s dis=%s) header.from=%s",
	    dmarc_policy_name(pol), dmarc_policy_name(dis), from);
	snprintf(why, sizeof(why), "policy of %s%s: p=%s%s", pc->where,
	    pc->at_org ? " (organizational)" : "", dmarc_policy_name(pol),
	    eff != pol ? ", not sampled by pct" : "");
	dmarc_result(ps, pass ? AUTHRES_PASS : AUTHRES_FAIL, score, props, why);
	if (dis == DMARC_P_REJECT)
		pol_hard_set(ps, POL_REJECT, 550, "5.7.1", 0,
		    "Message rejected: DMARC policy of %s rejects this message", from);
	else if (dis == DMARC_P_QUARANTINE)
		pol_hard_set(ps, POL_QUARANTINE, 250, "2.0.0",
		    0, "Ok: message held for review per DMARC policy of %s", from);
}

/* Loading the Public Suffix List reads files: a worker does it, once;
 * after that the check reads the message, the DNS and the other checks'
 * findings only. */
static int
dmarc_blocks(const struct pol_session *ps, enum pol_stage stage,
    const struct pol_msg *msg)
{
	(void)ps; (void)stage; (void)msg;
	return atomic_load(&dmarc_psl_ready) == 0;
}

static void
dmarc_run(struct pol_session *ps, enum pol_stage stage, const struct pol_msg *msg)
{
	struct dmarc_id ids[DMARC_MAX_IDS];
	struct dmarc_policy_ctx pc;
	char from[DMARC_DOMAIN_MAX], props[DMARC_DOMAIN_MAX + 16];
	enum dmarc_from_status fs;
	enum dmarc_found found = DMARC_NOTFOUND;
	int nids, temp, pass;

	if (stage != POL_DATA || msg == NULL)
		return;
	/* Loaded here, on a worker, even when alignment never needs it:
	 * until then dmarc_blocks keeps DATA off the I/O loop. */
	pthread_once(&dmarc_once, dmarc_psl_init);
	fs = dmarc_from_domain(msg->data, msg->len, from, sizeof(from));
	if (fs == DMARC_FROM_OK)
		found = dmarc_discover(&ps->dns, from, &pc);
	if (fs != DMARC_FROM_OK) {
		static const char *why[] = { "", "no From address (RFC 7489 6.6.1)",
		    "several From fields (RFC 7489 6.6.1)",
		    "From names several domains (RFC 7489 6.6.1)",
		    "From address without a usable domain (RFC 7489 6.6.1)" };
		dmarc_result(ps, AUTHRES_PERMERROR, ps->conf->dmarc_fail_score, "",
		    why[fs]);
		return;
	}
	snprintf(props, sizeof(props), "header.from=%s", from);
	switch (found) {
	case DMARC_TEMP:
		dmarc_temperror(ps, from, pc.why);
		return;
	case DMARC_NOTFOUND:
	case DMARC_SEVERAL:	/* 6.6.3 step 3: no policy applies */
		dmarc_result(ps, AUTHRES_NONE, 0, props, pc.why);
		return;
	case DMARC_BROKEN:
		dmarc_result(ps, AUTHRES_PERMERROR, 0, props, pc.why);
		return;
	case DMARC_FOUND:
		break;
	}
	nids = dmarc_identifiers(ps, ids, DMARC_MAX_IDS);
	pass = dmarc_evaluate(from, &pc.rec, ids, nids, &temp);
	if (!pass && temp) {
		dmarc_temperror(ps, from, "SPF or DKIM could not decide for an aligned domain");
		return;
	}
	dmarc_apply(ps, from, &pc, pass);
}
