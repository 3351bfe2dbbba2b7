/*
 * rules.c -- rule model, text format, PCRE2 rule sets and matching.
 *
 * Patterns compile with PCRE2_UTF | PCRE2_MATCH_INVALID_UTF: decoded parts
 * are UTF-8, but the raw message and attacker-written envelope strings may
 * not be, and a rule must still run over them rather than error out.
 * PCRE2_NEVER_BACKSLASH_C keeps \C (which can split a UTF-8 character) out.
 *
 * A set keeps, per target, the list of its rules in input order, so a stage
 * only walks the rules it asked for. The set, its compiled codes and the
 * match context are read-only after build; each eval call has its own
 * match data.
 *
 * Thread: see rules.h. The current set is guarded by a mutex (taken only to
 * copy a pointer and bump a count).
 */
#include "rules/rules.h"
#include "lib/util.h"
#include "rules/lit.h"
#include "rules/mime.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct rule {
	struct rule_def	 def;
	enum rule_target target;
	enum rule_action action;
	const char	*header;	/* for RULE_HEADER: the field name */
	pcre2_code	*code;
	/* Prefilter: factor j's alternatives are lits lit0 + facstart[j] ..
	 * + facstart[j + 1] - 1 of its target's lit_set. nfac 0: always run. */
	size_t		 lit0;
	int		 nfac;
	int		 facstart[LIT_FACTORS + 1];
};

/* Which prefilter literals occur in any item of one target, per eval:
 * a match lies within one item, so a rule whose literals are in none of
 * them cannot match. Computed on first need. */
struct prefilter {
	unsigned char	*found;
};

struct rule_set {
	atomic_int	 refs;
	long long	 version;
	struct rule	*rules;
	size_t		 nrules;
	size_t		*by_target[RULE_NTARGETS];	/* indices into rules */
	size_t		 nby_target[RULE_NTARGETS];
	pcre2_match_context *mctx;
	unsigned	 targets;	/* RULE_MASK of non-empty by_target */
	/* Required literals, a set per target (none for headers): the raw
	 * message is then searched for the raw rules' few literals alone,
	 * which a pivot scan finds (lit.c). */
	struct lit_set	*lits[RULE_NTARGETS];
};

static const char *target_names[RULE_NTARGETS] = {
	"header:", "subject", "from", "body", "raw", "url", "attachment",
	"helo", "mail_from", "rcpt_to", "client_ip", "client_name",
};
static const char *action_names[RULE_NACTIONS] = {
	"score", "accept", "quarantine", "reject", "tempfail",
};

static pthread_mutex_t cur_mtx = PTHREAD_MUTEX_INITIALIZER;
static struct rule_set *cur_set;
static atomic_ulong limit_hits;

static int	 name_ok(const char *);
static int	 header_name_ok(const char *);
static int	 flags_ok(const char *);
static char	*trim(char *);
static int	 line_split(char *, char *f[4], char *err, size_t errsz);
static int	 line_action(char *, struct rule_def *, char *err, size_t errsz);
static pcre2_code *compile(const struct rule_def *, int jit, char *err, size_t errsz);
static int	 rule_init(struct rule *, const struct rule_def *, int jit, char *, size_t);
static int	 item_get(const struct rule *, const struct rule_input *, size_t i,
		    const char **s, size_t *len);
static void	 where_fmt(const struct rule *, size_t i, char *where, size_t wsz);
static void	 prefilter_add(struct rule_set *, struct rule *);
static int	 prefilter_pass(const struct rule_set *, const struct rule *,
		    const struct rule_input *, struct prefilter *);
static int	 match_one(const struct rule_set *, const struct rule *,
		    const char *s, size_t len, pcre2_match_data *, size_t *off, size_t *mlen);

int
rule_target_parse(const char *s)
{
	if (s == NULL)
		return -1;
	if (strncasecmp(s, "header:", 7) == 0)
		return header_name_ok(s + 7) ? RULE_HEADER : -1;
	for (int t = RULE_SUBJECT; t < RULE_NTARGETS; t++)
		if (strcmp(s, target_names[t]) == 0)
			return t;
	return -1;
}

int
rule_action_parse(const char *s)
{
	for (int a = 0; s != NULL && a < RULE_NACTIONS; a++)
		if (strcmp(s, action_names[a]) == 0)
			return a;
	return -1;
}

const char *
rule_action_name(enum rule_action a)
{
	return action_names[a];
}

void
rule_def_clear(struct rule_def *d)
{
	free(d->name); d->name = NULL;
	free(d->target); d->target = NULL;
	free(d->pattern); d->pattern = NULL;
	free(d->flags); d->flags = NULL;
	free(d->action); d->action = NULL;
}

void
rule_def_copy(struct rule_def *dst, const struct rule_def *src)
{
	*dst = *src;
	dst->name = xstrdup(src->name ? src->name : "");
	dst->target = xstrdup(src->target ? src->target : "");
	dst->pattern = xstrdup(src->pattern ? src->pattern : "");
	dst->flags = xstrdup(src->flags ? src->flags : "");
	dst->action = xstrdup(src->action ? src->action : "");
}

/* Names are what admins and verdicts quote: [A-Za-z0-9_.-], bounded. */
static int
name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > RULE_MAX_NAME)
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("_.-", *s))
			return 0;
	return 1;
}

/* RFC 5322 2.2: printable US-ASCII except ':'. */
static int
header_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > RULE_MAX_HEADER_NAME)
		return 0;
	for (; *s; s++)
		if (*s < 33 || *s > 126 || *s == ':')
			return 0;
	return 1;
}

static int
flags_ok(const char *f)
{
	for (const char *p = f; *p; p++)
		if (!strchr("imsx", *p) || strchr(p + 1, *p))
			return 0;
	return 1;
}

int
rule_def_check(const struct rule_def *d, char *err, size_t errsz)
{
	pcre2_code *c;

	if (d->name == NULL || !name_ok(d->name)) {
		snprintf(err, errsz, "name: 1 to %d characters of A-Z a-z 0-9 _ . -",
		    RULE_MAX_NAME);
		return -1;
	}
	if (rule_target_parse(d->target) == -1) {
		snprintf(err, errsz, "target: one of header:<Name>, subject, from, body, raw, "
		    "url, attachment, helo, mail_from, rcpt_to, client_ip, client_name");
		return -1;
	}
	if (d->flags != NULL && !flags_ok(d->flags)) {
		snprintf(err, errsz, "flags: each of i, m, s, x at most once");
		return -1;
	}
	if (rule_action_parse(d->action) == -1) {
		snprintf(err, errsz, "action: one of score, accept, quarantine, reject, tempfail");
		return -1;
	}
	if (!isfinite(d->score) || fabs(d->score) > 1000) {
		snprintf(err, errsz, "score: a number between -1000 and 1000");
		return -1;
	}
	if ((c = compile(d, 0, err, errsz)) == NULL)
		return -1;
	pcre2_code_free(c);
	return 0;
}

static pcre2_code *
compile(const struct rule_def *d, int jit, char *err, size_t errsz)
{
	uint32_t opt = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | PCRE2_NEVER_BACKSLASH_C;
	const char *p = d->pattern ? d->pattern : "";
	size_t plen = strlen(p);
	PCRE2_SIZE eoff;
	unsigned char msg[160];
	pcre2_code *c;
	int ec;

	if (plen == 0 || plen > RULE_MAX_PATTERN || strpbrk(p, "\r\n")) {
		snprintf(err, errsz, "pattern: 1 to %d bytes on one line", RULE_MAX_PATTERN);
		return NULL;
	}
	for (const char *f = d->flags ? d->flags : ""; *f; f++)
		opt |= *f == 'i' ? PCRE2_CASELESS : *f == 'm' ? PCRE2_MULTILINE :
		    *f == 's' ? PCRE2_DOTALL : *f == 'x' ? PCRE2_EXTENDED : 0;
	c = pcre2_compile((PCRE2_SPTR)p, plen, opt, &ec, &eoff, NULL);
	if (c == NULL) {
		pcre2_get_error_message(ec, msg, sizeof(msg));
		snprintf(err, errsz, "pattern at offset %zu: %s", (size_t)eoff, msg);
		return NULL;
	}
	/* JIT failing (no memory for it, unsupported CPU) leaves the
	 * interpreter, which gives the same answers. */
	if (jit && (ec = pcre2_jit_compile(c, PCRE2_JIT_COMPLETE)) != 0) {
		pcre2_get_error_message(ec, msg, sizeof(msg));
		log_warn("rules: %s: JIT unavailable (%s), interpreting", d->name, msg);
	}
	return c;
}

/* ---- the text format ---- */

static char *
trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
		*--e = '\0';
	return s;
}

/* Split "name | target | /pattern/flags | action [score] [log-only]" in
 * place on the first two bars and the last one (the pattern may hold '|').
 * 0 or -1. */
static int
line_split(char *s, char *f[4], char *err, size_t errsz)
{
	char *b1, *b2, *b3;

	if ((b1 = strchr(s, '|')) == NULL || (b2 = strchr(b1 + 1, '|')) == NULL ||
	    (b3 = strrchr(b2 + 1, '|')) == NULL) {
		snprintf(err, errsz, "expected: name | target | /pattern/flags | "
		    "action [score] [log-only]");
		return -1;
	}
	*b1 = *b2 = *b3 = '\0';
	f[0] = trim(s);
	f[1] = trim(b1 + 1);
	f[2] = trim(b2 + 1);
	f[3] = trim(b3 + 1);
	return 0;
}

/* "action", "action score", either followed by "log-only", into out.
 * 0 or -1. */
static int
line_action(char *s, struct rule_def *out, char *err, size_t errsz)
{
	size_t len = strlen(s), olen = strlen(RULE_LOG_ONLY);
	char *sc, *end;

	/* The option is a word of its own after the action. */
	if (len > olen && strcmp(s + len - olen, RULE_LOG_ONLY) == 0 &&
	    (s[len - olen - 1] == ' ' || s[len - olen - 1] == '\t')) {
		out->log_only = 1;
		s[len - olen] = '\0';
		s = trim(s);
	}
	sc = s + strcspn(s, " \t");

	if (*sc != '\0') {
		*sc++ = '\0';
		sc = trim(sc);
		out->score = strtod(sc, &end);
		if (end == sc || *end != '\0') {
			snprintf(err, errsz, "score: not a number");
			return -1;
		}
	}
	out->action = xstrdup(s);
	return 0;
}

int
rule_line_parse(const char *line, struct rule_def *out, char *err, size_t errsz)
{
	char buf[RULE_MAX_LINE + 1], *s, *f[4], *slash;

	memset(out, 0, sizeof(*out));
	if (strlen(line) > RULE_MAX_LINE) {
		snprintf(err, errsz, "line longer than %d bytes", RULE_MAX_LINE);
		return -1;
	}
	snprintf(buf, sizeof(buf), "%s", line);
	s = trim(buf);
	if (*s == '\0' || *s == '#')
		return 0;
	out->enabled = *s != '!';
	if (line_split(s + !out->enabled, f, err, errsz) == -1)
		return -1;
	if (*f[2] != '/' || (slash = strrchr(f[2], '/')) == f[2]) {
		snprintf(err, errsz, "pattern: write it as /pattern/flags");
		return -1;
	}
	*slash = '\0';
	out->name = xstrdup(f[0]);
	out->target = xstrdup(f[1]);
	out->pattern = xstrdup(f[2] + 1);
	out->flags = xstrdup(trim(slash + 1));
	if (line_action(f[3], out, err, errsz) == -1 ||
	    rule_def_check(out, err, errsz) == -1) {
		rule_def_clear(out);
		return -1;
	}
	return 1;
}

char *
rule_line_format(const struct rule_def *d)
{
	char sc[32] = "";

	/* The shortest form that reads back as the same double: "%g" alone
	 * would turn 1.23456789 into 1.23457 on an export/import trip. */
	if (d->score != 0 || strcmp(d->action, "score") == 0)
		for (int prec = 6; prec <= 17; prec++) {
			snprintf(sc, sizeof(sc), " %.*g", prec, d->score);
			if (strtod(sc, NULL) == d->score)
				break;
		}
	return xasprintf("%s%s | %s | /%s/%s | %s%s%s\n", d->enabled ? "" : "!",
	    d->name, d->target, d->pattern, d->flags ? d->flags : "", d->action, sc,
	    d->log_only ? " " RULE_LOG_ONLY : "");
}

int
rule_text_parse(const char *text, size_t len, struct rule_def **defs, size_t *n,
    char *err, size_t errsz)
{
	struct rule_def *v = NULL, d;
	size_t nv = 0, lineno = 0;
	char line[RULE_MAX_LINE + 2], e[256];

	for (size_t i = 0; i < len; ) {
		const char *nl = memchr(text + i, '\n', len - i);
		size_t l = nl ? (size_t)(nl - (text + i)) : len - i;
		lineno++;
		if (l > RULE_MAX_LINE || memchr(text + i, '\0', l)) {
			snprintf(err, errsz, "line %zu: longer than %d bytes or holds NUL",
			    lineno, RULE_MAX_LINE);
			goto fail;
		}
		memcpy(line, text + i, l);
		line[l] = '\0';
		i += l + 1;
		int r = rule_line_parse(line, &d, e, sizeof(e));
		if (r == -1 || (r == 1 && nv == RULE_MAX_RULES)) {
			snprintf(err, errsz, "line %zu: %s", lineno,
			    r == -1 ? e : "too many rules");
			if (r == 1)
				rule_def_clear(&d);
			goto fail;
		}
		if (r == 1) {
			v = xrealloc(v, (nv + 1) * sizeof(*v));
			v[nv++] = d;
		}
	}
	*defs = v;
	*n = nv;
	return 0;
fail:
	for (size_t k = 0; k < nv; k++)
		rule_def_clear(&v[k]);
	free(v);
	return -1;
}

/* ---- rule sets ---- */

static int
rule_init(struct rule *r, const struct rule_def *d, int jit, char *err, size_t errsz)
{
	memset(r, 0, sizeof(*r));
	if (rule_def_check(d, err, errsz) == -1)
		return -1;
	if ((r->code = compile(d, jit, err, errsz)) == NULL)
		return -1;
	rule_def_copy(&r->def, d);
	r->target = (enum rule_target)rule_target_parse(d->target);
	r->action = (enum rule_action)rule_action_parse(d->action);
	if (r->target == RULE_HEADER)
		r->header = r->def.target + 7;
	return 0;
}

struct rule_set *
rule_set_build(const struct rule_def *defs, size_t n, const struct rule_opts *o,
    char *err, size_t errsz)
{
	struct rule_set *rs = xcalloc(1, sizeof(*rs));
	char e[256];

	atomic_init(&rs->refs, 1);
	if (n > RULE_MAX_RULES) {
		snprintf(err, errsz, "more than %d rules", RULE_MAX_RULES);
		rule_set_unref(rs);
		return NULL;
	}
	rs->rules = xcalloc(n ? n : 1, sizeof(*rs->rules));
	for (size_t i = 0; i < n; i++) {
		if (!defs[i].enabled)
			continue;
		if (rule_init(&rs->rules[rs->nrules], &defs[i], o->jit, e, sizeof(e)) == -1) {
			snprintf(err, errsz, "rule %s: %s", defs[i].name ? defs[i].name : "?", e);
			rule_set_unref(rs);
			return NULL;
		}
		rs->nrules++;
	}
	for (size_t i = 0; i < rs->nrules; i++) {
		enum rule_target t = rs->rules[i].target;
		rs->by_target[t] = xrealloc(rs->by_target[t],
		    (rs->nby_target[t] + 1) * sizeof(size_t));
		rs->by_target[t][rs->nby_target[t]++] = i;
		rs->targets |= RULE_MASK(t);
		if (!o->no_prefilter && t != RULE_HEADER)
			prefilter_add(rs, &rs->rules[i]);
	}
	rs->mctx = pcre2_match_context_create(NULL);
	pcre2_set_match_limit(rs->mctx, (uint32_t)o->match_limit);
	pcre2_set_depth_limit(rs->mctx, (uint32_t)o->depth_limit);
	return rs;
}

struct rule_set *
rule_set_ref(struct rule_set *rs)
{
	if (rs != NULL)
		atomic_fetch_add(&rs->refs, 1);
	return rs;
}

void
rule_set_unref(struct rule_set *rs)
{
	if (rs == NULL || atomic_fetch_sub(&rs->refs, 1) != 1)
		return;
	for (size_t i = 0; i < rs->nrules; i++) {
		pcre2_code_free(rs->rules[i].code);
		rule_def_clear(&rs->rules[i].def);
	}
	for (int t = 0; t < RULE_NTARGETS; t++)
		free(rs->by_target[t]);
	pcre2_match_context_free(rs->mctx);
	for (int t = 0; t < RULE_NTARGETS; t++)
		lit_set_free(rs->lits[t]);
	free(rs->rules);
	free(rs);
}

size_t
rule_set_count(const struct rule_set *rs)
{
	return rs->nrules;
}

unsigned
rule_set_targets(const struct rule_set *rs)
{
	return rs->targets;
}

void
rule_set_tag(struct rule_set *rs, long long version)
{
	rs->version = version;
}

long long
rule_set_version(const struct rule_set *rs)
{
	return rs->version;
}

struct rule_set *
rule_current(void)
{
	struct rule_set *rs;

	pthread_mutex_lock(&cur_mtx);
	rs = rule_set_ref(cur_set);
	pthread_mutex_unlock(&cur_mtx);
	return rs;
}

void
rule_swap(struct rule_set *rs)
{
	struct rule_set *old;

	pthread_mutex_lock(&cur_mtx);
	old = cur_set;
	cur_set = rs;
	pthread_mutex_unlock(&cur_mtx);
	rule_set_unref(old);
}

unsigned long
rule_limit_hits(void)
{
	return atomic_load(&limit_hits);
}

/* ---- matching ---- */

/* Item i of what rule r looks at: 1 and s, len set, or 0 past the last.
 * Except for header:<Name>, items depend only on the target. */
static int
item_get(const struct rule *r, const struct rule_input *in, size_t i,
    const char **s, size_t *len)
{
	const struct mime_msg *m = in->msg;
	const char *v = NULL;
	enum mime_kind k;

	switch (r->target) {
	case RULE_HEADER:
		if (m == NULL || (v = mime_header(m, r->header, i)) == NULL)
			return 0;
		break;
	case RULE_SUBJECT:
	case RULE_FROM:
		if (m == NULL || i > 0 || (v = mime_header(m,
		    r->target == RULE_SUBJECT ? "Subject" : "From", 0)) == NULL)
			return 0;
		break;
	case RULE_RAW:
		if (in->raw == NULL || i > 0)
			return 0;
		*s = in->raw;
		*len = in->rawlen;
		return 1;
	case RULE_BODY:
	case RULE_URL:
	case RULE_ATTACHMENT:
		k = r->target == RULE_BODY ? MIME_TEXT : r->target == RULE_URL ?
		    MIME_URL : MIME_ATTACHMENT;
		if (m == NULL || i >= mime_count(m, k))
			return 0;
		*s = mime_item(m, k, i, len);
		return 1;
	case RULE_RCPT_TO:
		if (i >= in->nrcpts)
			return 0;
		v = in->rcpts[i];
		break;
	case RULE_HELO:
	case RULE_MAIL_FROM:
	case RULE_CLIENT_IP:
	case RULE_CLIENT_NAME:
		v = r->target == RULE_HELO ? in->helo : r->target == RULE_MAIL_FROM ?
		    in->mail_from : r->target == RULE_CLIENT_IP ? in->client_ip : in->client_name;
		if (v == NULL || i > 0)
			return 0;
		break;
	case RULE_NTARGETS:
		fatalx("item_get: bad target");
	}
	*s = v;
	*len = strlen(v);
	return 1;
}

static void
prefilter_add(struct rule_set *rs, struct rule *r)
{
	struct lit_req q;
	struct lit_set **ls = &rs->lits[r->target];
	int k = 0;

	if (!lit_extract(r->def.pattern, r->def.flags, &q))
		return;
	if (*ls == NULL)
		*ls = lit_set_new();
	r->lit0 = lit_set_count(*ls);
	for (int j = 0; j < q.n; j++) {
		r->facstart[j] = k;
		for (int i = 0; i < q.f[j].n; i++, k++)
			lit_set_add(*ls, q.f[j].s[i], q.f[j].len[i]);
	}
	r->facstart[q.n] = k;
	r->nfac = q.n;
}

/* Where item i of rule r is, for hits: "subject", "body[1]", ... */
static void
where_fmt(const struct rule *r, size_t i, char *where, size_t wsz)
{
	switch (r->target) {
	case RULE_HEADER:
		snprintf(where, wsz, "header:%s[%zu]", r->header, i);
		break;
	case RULE_BODY:
	case RULE_URL:
	case RULE_ATTACHMENT:
	case RULE_RCPT_TO:
		snprintf(where, wsz, "%s[%zu]", target_names[r->target], i);
		break;
	default:
		snprintf(where, wsz, "%s", target_names[r->target]);
	}
}

/* 0 when the prefilter proves rule r cannot match any item; else 1. */
static int
prefilter_pass(const struct rule_set *rs, const struct rule *r,
    const struct rule_input *in, struct prefilter *pf)
{
	const struct lit_set *ls = rs->lits[r->target];
	const unsigned char *found;
	const char *s;
	size_t len;

	if (r->nfac == 0)
		return 1;
	if (pf->found == NULL) {
		pf->found = xcalloc(lit_set_count(ls), 1);
		for (size_t i = 0; item_get(r, in, i, &s, &len); i++)
			lit_set_scan(ls, s, len, pf->found);
	}
	found = pf->found + r->lit0;
	for (int j = 0; j < r->nfac; j++) {
		int any = 0;
		for (int k = r->facstart[j]; k < r->facstart[j + 1] && !any; k++)
			any = found[k];
		if (!any)
			return 0;
	}
	return 1;
}

/* 1 matched (off, mlen set), 0 not; a limit hit is logged and is 0. */
static int
match_one(const struct rule_set *rs, const struct rule *r, const char *s,
    size_t len, pcre2_match_data *md, size_t *off, size_t *mlen)
{
	int rc = pcre2_match(r->code, (PCRE2_SPTR)s, len, 0, 0, md, rs->mctx);
	PCRE2_SIZE *ov;

	if (rc >= 0) {
		ov = pcre2_get_ovector_pointer(md);
		*off = ov[0];
		*mlen = ov[1] >= ov[0] ? ov[1] - ov[0] : 0;
		return 1;
	}
	if (rc == PCRE2_ERROR_NOMATCH)
		return 0;
	atomic_fetch_add(&limit_hits, 1);
	if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT ||
	    rc == PCRE2_ERROR_HEAPLIMIT || rc == PCRE2_ERROR_JIT_STACKLIMIT)
		log_warn("rules: %s: gave up at a match limit over %zu bytes; "
		    "counted as no match", r->def.name, len);
	else
		log_warn("rules: %s: match error %d; counted as no match",
		    r->def.name, rc);
	return 0;
}

int
rule_set_eval(const struct rule_set *rs, const struct rule_input *in,
    unsigned mask, rule_hit_fn *fn, void *arg)
{
	pcre2_match_data *md = pcre2_match_data_create(1, NULL);
	struct prefilter pf[RULE_NTARGETS] = { { 0 } };
	int hits = 0;
	char where[RULE_MAX_HEADER_NAME + 32];

	for (int t = 0; t < RULE_NTARGETS; t++) {
		if (!(mask & RULE_MASK(t)))
			continue;
		for (size_t k = 0; k < rs->nby_target[t]; k++) {
			const struct rule *r = &rs->rules[rs->by_target[t][k]];
			struct rule_hit h = { 0 };
			if (!prefilter_pass(rs, r, in, &pf[t]))
				continue;
			for (size_t i = 0; item_get(r, in, i, &h.item, &h.itemlen); i++) {
				if (!match_one(rs, r, h.item, h.itemlen, md, &h.off, &h.len))
					continue;
				where_fmt(r, i, where, sizeof(where));
				h.name = r->def.name;
				h.action = r->action;
				h.score = r->def.score;
				h.log_only = r->def.log_only;
				h.target = r->target;
				h.where = where;
				hits++;
				if (fn != NULL)
					fn(arg, &h);
				break;
			}
		}
	}
	pcre2_match_data_free(md);
	for (int t = 0; t < RULE_NTARGETS; t++)
		free(pf[t].found);
	return hits;
}

struct test_ctx {
	struct rule_test_result *res;
	int	 matched;
};

static void
test_hit(void *arg, const struct rule_hit *h)
{
	struct test_ctx *tc = arg;
	size_t n = h->len < sizeof(tc->res->excerpt) - 1 ? h->len : sizeof(tc->res->excerpt) - 1;

	/* Cut between characters: the excerpt goes out as a JSON string, and
	 * a split UTF-8 sequence is not one. */
	while (n > 0 && n < h->len && ((unsigned char)h->item[h->off + n] & 0xc0) == 0x80)
		n--;
	tc->matched = 1;
	snprintf(tc->res->where, sizeof(tc->res->where), "%s", h->where);
	tc->res->off = h->off;
	tc->res->len = h->len;
	memcpy(tc->res->excerpt, h->item + h->off, n);
	tc->res->excerpt[n] = '\0';
}

int
rule_test(const struct rule_def *d, const char *raw, size_t len,
    const struct rule_input *env, const struct rule_opts *o,
    struct rule_test_result *res, char *err, size_t errsz)
{
	struct rule_def one;
	struct rule_input in = { 0 };
	struct rule_set *rs;
	struct test_ctx tc = { res, 0 };

	rule_def_copy(&one, d);
	one.enabled = 1;
	memset(res, 0, sizeof(*res));
	rs = rule_set_build(&one, 1, o, err, errsz);
	rule_def_clear(&one);
	if (rs == NULL)
		return -1;
	if (env != NULL)
		in = *env;
	in.raw = raw;
	in.rawlen = len;
	in.msg = raw != NULL ? mime_parse(raw, len) : NULL;
	rule_set_eval(rs, &in, RULE_MASK_ALL, test_hit, &tc);
	mime_free((struct mime_msg *)in.msg);
	rule_set_unref(rs);
	return tc.matched;
}
