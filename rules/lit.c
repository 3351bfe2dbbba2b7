/*
 * lit.c -- literal extraction from PCRE2 patterns and a trigram scanner;
 * see lit.h.
 *
 * The extractor reads only the top-level sequence of a pattern and gives up
 * (returns 0) on anything it does not fully understand: top-level
 * alternation, inline options, \Q, verbs, the x flag. Within the sequence,
 * runs of literal characters that cannot be skipped (no ?, * or {0,}
 * after them) are required, and so is a group that is a plain alternation
 * of literals, e.g. (now|today). The factor whose shortest alternative is
 * longest wins.
 *
 * The scanner files each literal under one of its trigrams (the rarest
 * looking: digits and punctuation beat letters, later beats earlier, since
 * rule words share prefixes): a 64 Kbit Bloom filter (8 KB, stays in L1)
 * rejects most text positions with one bit test; survivors are checked
 * against the literals in their bucket.
 */
#include "rules/lit.h"
#include "lib/util.h"

#include <ctype.h>
#include <endian.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define LIT_BLOOM_BITS	65536
#define LIT_BUCKETS	4096
#define LIT_PIVOTS	2	/* distinct bytes a pivot scan looks for */
#define LIT_PIVOT_LITS	8	/* literals a pivot scan checks at each one */

struct lit {
	char	*s;		/* folded */
	size_t	 len;
	size_t	 anchor;	/* offset of the trigram it is filed under */
	uint32_t key;		/* that trigram */
	uint32_t h;		/* lit_hash(key) */
	size_t	 pivot;		/* offset of its pivot byte (a pivot scan) */
};

struct lit_bucket {
	size_t	*v;
	size_t	 n;
};

struct lit_set {
	struct lit	*lits;
	size_t		 n;
	/* A few literals that each hold one of a few punctuation bytes
	 * ("font-size:", "display:") are found by memchr() for those bytes,
	 * which text holds seldom; npivots -1: the set is not like that. */
	unsigned char	 pivots[LIT_PIVOTS];
	int		 npivots;
	uint64_t	 bloom[LIT_BLOOM_BITS / 64];
	struct lit_bucket buckets[LIT_BUCKETS];
};

/* The run being collected and the best factor so far. */
struct lit_parse {
	const char	*p;
	int		 icase;
	/* The run's variants (a class such as [i1] multiplies them), all
	 * runlen bytes long; full once an atom did not fit, so the run stays
	 * contiguous. */
	char		 run[LIT_ALTS][LIT_MAX + 1];
	size_t		 runlen;
	int		 nrun, full;
	int		 depth;
	struct lit_req	 req;
};

static unsigned char fold[256];
static pthread_once_t fold_once = PTHREAD_ONCE_INIT;

static void	 fold_init(void);
static int	 has_top_alt(const char *);
static size_t	 unit_len(const char *);
static int	 quant(const char *, int *min);
static size_t	 group_end(const char *);
static size_t	 class_end(const char *);
static void	 run_flush(struct lit_parse *);
static void	 consider(struct lit_parse *, const struct lit_factor *);
static int	 alts_factor(const char *, size_t, int icase, int depth, struct lit_factor *);
static int	 extract(const char *, const char *flags, struct lit_req *, int depth);
static void	 run_append(struct lit_parse *, const char *, size_t);
static int	 class_members(const char *, size_t, char m[LIT_CLASS_MAX]);
static void	 run_class(struct lit_parse *, const char *, int);
static size_t	 factor_min(const struct lit_factor *);
static size_t	 lit_atom(struct lit_parse *, const char *, char *out, size_t *outlen);
static uint32_t	 lit_hash(uint32_t key);
static size_t	 lit_anchor(const char *, size_t);
static const char *escape_end(const char *);
static int	 fold_trap(const unsigned char *, size_t);

/* Length of the syntactic unit at p: an escape pair, a whole class, a
 * whole group, or one byte; 0 when it is unterminated. Splitting on '|'
 * and finding a group's end both walk a pattern unit by unit. */
static size_t
unit_len(const char *p)
{
	const char *e;

	/* an escape is as long as escape_end says: \c( is one character
	 * (a control-H), not \c and a group (fuzz_lit) */
	if (p[0] == '\\')
		return p[1] != '\0' && (e = escape_end(p)) != NULL ? (size_t)(e - p) : 0;
	if (p[0] == '[')
		return class_end(p);
	if (p[0] == '(')
		return group_end(p);
	return 1;
}

/* Does the pattern have a '|' outside every group and class? */
static int
has_top_alt(const char *p)
{
	for (size_t i = 0, n; p[i]; i += n) {
		if (p[i] == '|')
			return 1;
		if ((n = unit_len(p + i)) == 0)
			return 0;
	}
	return 0;
}

static void
fold_init(void)
{
	for (int c = 0; c < 256; c++)
		fold[c] = (unsigned char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
}

/* A quantifier at q: its length and *min, or 0 when none. -1 for a '{'
 * that is not a quantifier (PCRE2 then reads it literally; we give up). */
static int
quant(const char *q, int *min)
{
	int n = 0;
	const char *s = q;

	if (*q == '*' || *q == '?')
		*min = 0;
	else if (*q == '+')
		*min = 1;
	else if (*q == '{') {
		s++;
		if (!isdigit((unsigned char)*s))
			return -1;
		*min = 0;
		/* PCRE2 takes counts up to 65535; a longer digit run must
		 * saturate here, not overflow. */
		for (; isdigit((unsigned char)*s); s++)
			if (*min < 100000)
				*min = *min * 10 + (*s - '0');
		if (*s == ',')
			for (s++; isdigit((unsigned char)*s); s++)
				;
		if (*s != '}')
			return -1;
		n = (int)(s - q);
	} else
		return 0;
	n++;
	if (q[n] == '?' || q[n] == '+')	/* lazy, possessive */
		n++;
	return n;
}

/* Index just past the ')' matching the '(' at p[0], or 0 if unbalanced. */
static size_t
group_end(const char *p)
{
	size_t i = 1, n;

	while (p[i] != '\0' && p[i] != ')') {
		if ((n = unit_len(p + i)) == 0)
			return 0;
		i += n;
	}
	return p[i] == ')' ? i + 1 : 0;
}

/* Index just past the ']' closing the class at p[0], or 0. */
static size_t
class_end(const char *p)
{
	size_t i = 1;

	if (p[i] == '^')
		i++;
	if (p[i] == ']')
		i++;
	for (; p[i]; i++) {
		if (p[i] == '\\') {
			if (p[++i] == '\0')
				return 0;
			if (p[i] == 'c' && p[++i] == '\0')	/* \c] is one character */
				return 0;
		} else if (p[i] == '[' && p[i + 1] == ':') {
			const char *e = strstr(p + i + 2, ":]");
			if (e == NULL)
				return 0;
			i = (size_t)(e - p) + 1;
		} else if (p[i] == ']')
			return i + 1;
	}
	return 0;
}

/* One literal atom at s: bytes consumed, its bytes in out (*outlen), or 0
 * when s is not a plain literal (metacharacter, class escape...). */
static size_t
lit_atom(struct lit_parse *lp, const char *s, char *out, size_t *outlen)
{
	unsigned char c = (unsigned char)*s;
	size_t n = 1;

	if (c == '\\') {
		unsigned char d = (unsigned char)s[1];
		if (d == '\0' || isalnum(d) || d >= 0x80)
			return 0;	/* \d \w \x.. \1 ...: not a literal byte */
		c = d;
		n = 2;
	} else if (strchr("^$.[]|()?*+{}", c))
		return 0;
	if (c >= 0x80) {
		if (lp->icase)
			return 0;
		size_t k = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
		for (size_t i = 1; i < k; i++)
			if (((unsigned char)s[i] & 0xC0) != 0x80)
				return 0;
		memcpy(out, s, k);
		*outlen = k;
		return k;
	}
	out[0] = (char)fold[c];
	*outlen = 1;
	return n;
}

static size_t
factor_min(const struct lit_factor *f)
{
	size_t min = SIZE_MAX;

	for (int i = 0; i < f->n; i++)
		if (f->len[i] < min)
			min = f->len[i];
	return min;
}

/* Keep the LIT_FACTORS factors with the longest shortest alternative. */
static void
consider(struct lit_parse *lp, const struct lit_factor *f)
{
	struct lit_req *r = &lp->req;
	int worst = 0;

	if (f->n == 0 || factor_min(f) < LIT_MIN)
		return;
	if (r->n < LIT_FACTORS) {
		r->f[r->n++] = *f;
		return;
	}
	for (int i = 1; i < r->n; i++)
		if (factor_min(&r->f[i]) < factor_min(&r->f[worst]))
			worst = i;
	if (factor_min(f) > factor_min(&r->f[worst]))
		r->f[worst] = *f;
}

static void
run_flush(struct lit_parse *lp)
{
	struct lit_factor f = { 0 };

	if (lp->runlen >= LIT_MIN) {
		f.n = lp->nrun;
		for (int i = 0; i < lp->nrun; i++) {
			f.len[i] = lp->runlen;
			memcpy(f.s[i], lp->run[i], lp->runlen);
		}
		consider(lp, &f);
	}
	lp->runlen = 0;
	lp->nrun = 1;
	lp->full = 0;
}

/* Append one literal atom (bl bytes) to every variant of the run. */
static void
run_append(struct lit_parse *lp, const char *b, size_t bl)
{
	if (lp->full || lp->runlen + bl > LIT_MAX) {
		lp->full = 1;
		return;
	}
	for (int i = 0; i < lp->nrun; i++)
		memcpy(lp->run[i] + lp->runlen, b, bl);
	lp->runlen += bl;
}

/* The members of a small plain class ("[i1!]", "[-_]") folded and
 * deduplicated into m: how many, or 0 when it is anything else (negated,
 * a range, an escape class, non-ASCII, more than LIT_CLASS_MAX). */
static int
class_members(const char *s, size_t e, char m[LIT_CLASS_MAX])
{
	int k = 0;

	if (s[1] == '^')
		return 0;
	for (size_t i = 1; i + 1 < e; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\\') {
			c = (unsigned char)s[++i];
			if (isalnum(c) || c >= 0x80)
				return 0;
		} else if (c == '[' || c >= 0x80 || c < 0x20 ||
		    (c == '-' && i != 1 && i + 2 != e))
			return 0;	/* posix class, non-ASCII, a range */
		c = fold[c];
		if (memchr(m, c, (size_t)k) != NULL)
			continue;
		if (k == LIT_CLASS_MAX)
			return 0;
		m[k++] = (char)c;
	}
	return k;
}

/* Multiply the run by a class's members (each variant once per member). */
static void
run_class(struct lit_parse *lp, const char *m, int k)
{
	char tmp[LIT_ALTS][LIT_MAX + 1];

	if (lp->full || lp->runlen + 1 > LIT_MAX || lp->nrun * k > LIT_ALTS)
		run_flush(lp);		/* start over with the class alone */
	for (int i = 0; i < lp->nrun; i++)
		for (int j = 0; j < k; j++) {
			memcpy(tmp[i * k + j], lp->run[i], lp->runlen);
			tmp[i * k + j][lp->runlen] = m[j];
		}
	lp->nrun *= k;
	lp->runlen++;
	memcpy(lp->run, tmp, sizeof(tmp));
}

/* Split body (len bytes) at its top-level '|'; each alternative must have
 * a required literal; the union of their best ones is one factor for the
 * whole alternation. 1 and *f filled, or 0. */
static int
alts_factor(const char *body, size_t len, int icase, int depth, struct lit_factor *f)
{
	size_t st = 0;

	memset(f, 0, sizeof(*f));
	for (size_t i = 0, n = 1; i <= len; i += n) {
		if (i < len && body[i] != '|') {
			if ((n = unit_len(body + i)) == 0 || i + n > len)
				return 0;
			continue;
		}
		n = 1;
		char *alt = xstrndup(body + st, i - st);
		struct lit_req r;
		int ok = extract(alt, icase ? "i" : "", &r, depth + 1);
		free(alt);
		if (!ok)
			return 0;
		/* the alternative's best factor, if it is a single literal */
		const struct lit_factor *b = &r.f[0];
		for (int k = 1; k < r.n; k++)
			if (factor_min(&r.f[k]) > factor_min(b))
				b = &r.f[k];
		if (f->n + b->n > LIT_ALTS)
			return 0;
		for (int k = 0; k < b->n; k++) {
			f->len[f->n] = b->len[k];
			memcpy(f->s[f->n++], b->s[k], b->len[k] + 1);
		}
		st = i + 1;
	}
	return f->n > 0;
}

int
lit_extract(const char *pattern, const char *flags, struct lit_req *out)
{
	/* Give up on the whole pattern (fuzz_lit found both):
	 * (*ACCEPT) ends a match where it stands, so nothing after it is
	 * required, even in an alternative we skip or a group called from
	 * elsewhere ("(a|(*ACCEPT)b) xyzw" required "xyzw"); and PCRE2
	 * ignores a \E outside \Q, so a quantifier after it applies to the
	 * item before it ("(?:abc)\E{0}" required "abc"). */
	if (strstr(pattern, "(*ACCEPT") != NULL || strstr(pattern, "\\E") != NULL)
		return 0;
	return extract(pattern, flags, out, 0);
}

static int
extract(const char *pattern, const char *flags, struct lit_req *out, int depth)
{
	struct lit_parse lp = { .p = pattern, .nrun = 1, .depth = depth };
	const char *s = pattern;
	char b[8];
	size_t bl, a;
	int min, q;

	pthread_once(&fold_once, fold_init);
	if (flags != NULL && strchr(flags, 'x'))
		return 0;
	lp.icase = flags != NULL && strchr(flags, 'i') != NULL;
	if (depth > LIT_DEPTH)
		return 0;
	if (has_top_alt(pattern)) {
		struct lit_factor f;
		if (!alts_factor(pattern, strlen(pattern), lp.icase, depth, &f))
			return 0;
		out->n = 1;
		out->f[0] = f;
		return 1;
	}
	while (*s) {
		if (*s == ')')
			return 0;	/* unbalanced */
		if (*s == '\\' && (s[1] == 'b' || s[1] == 'B')) {
			s += 2;		/* zero-width: the run goes on */
			continue;
		}
		if ((a = lit_atom(&lp, s, b, &bl)) > 0) {
			if ((q = quant(s + a, &min)) < 0)
				return 0;
			if (q > 0 && min == 0) {
				run_flush(&lp);
				s += a + (size_t)q;
				continue;
			}
			run_append(&lp, b, bl);
			if (q > 0)
				run_flush(&lp);
			s += a + (size_t)q;
			continue;
		}
		if (*s == '[') {
			size_t e = class_end(s);
			char m[LIT_CLASS_MAX];
			int k;
			if (e == 0 || (q = quant(s + e, &min)) < 0)
				return 0;
			if ((q == 0 || min > 0) && (k = class_members(s, e, m)) > 0) {
				run_class(&lp, m, k);
				if (q > 0)
					run_flush(&lp);
			} else
				run_flush(&lp);
			s += e + (size_t)q;
			continue;
		}
		run_flush(&lp);
		if (*s == '(') {
			size_t e = group_end(s);
			struct lit_factor f;
			if (e == 0 || s[1] == '*')
				return 0;	/* unbalanced, or a (*VERB) */
			const char *body = s + 1;
			size_t blen = e - 2;
			if (s[1] == '?') {
				if (s[2] != ':' && s[2] != '=' && s[2] != '!' && s[2] != '<')
					return 0;	/* inline options and the like */
				if (s[2] == '<' && s[3] != '=' && s[3] != '!')
					blen = 0;	/* named group: opaque */
				else if (s[2] != ':')
					blen = 0;	/* lookaround: consumes nothing */
				else {
					body += 2;
					blen -= 2;
				}
			}
			if ((q = quant(s + e, &min)) < 0)
				return 0;
			if (blen > 0 && (q == 0 || min > 0) &&
			    alts_factor(body, blen, lp.icase, depth + 1, &f))
				consider(&lp, &f);
			s += e + (size_t)q;
			continue;
		}
		if (*s == '\\') {
			if (s[1] == 'Q' || s[1] == '\0')
				return 0;
			if ((s = escape_end(s)) == NULL)
				return 0;
		} else if (*s == '^' || *s == '$' || *s == '.') {
			s++;
		} else if (!strchr("?*+{}]", *s)) {
			/* a character we may not use (caseless non-ASCII) */
			s++;
			while (((unsigned char)*s & 0xC0) == 0x80)
				s++;
		} else
			return 0;	/* a stray quantifier or brace */
		if ((q = quant(s, &min)) < 0)
			return 0;
		s += q;
	}
	run_flush(&lp);
	*out = lp.req;
	return out->n > 0;
}

/* Past a non-literal escape at s ("\\d", "\\x{263a}", "\\k<n>", "\\12"),
 * or NULL when it is malformed. */
static const char *
escape_end(const char *s)
{
	const char *e;

	if (s[2] == '{' && strchr("pPxoNgk", s[1]))
		return (e = strchr(s, '}')) ? e + 1 : NULL;
	/* \k<name>, and \g<1> or \g'name', Oniguruma's subroutine calls */
	if ((s[1] == 'k' || s[1] == 'g') && (s[2] == '<' || s[2] == '\'')) {
		e = strchr(s + 3, s[2] == '<' ? '>' : '\'');
		return e ? e + 1 : NULL;
	}
	if (s[1] == 'x')
		return s + 2 + (strspn(s + 2, "0123456789abcdefABCDEF") > 2 ? 2 :
		    strspn(s + 2, "0123456789abcdefABCDEF"));
	if (s[1] == 'p' || s[1] == 'P' || s[1] == 'c')
		return s[2] ? s + 3 : NULL;
	if (s[1] == 'g')
		return s + 2 + (s[2] == '-' || s[2] == '+') + strspn(s + 2 +
		    (s[2] == '-' || s[2] == '+'), "0123456789");
	if (isdigit((unsigned char)s[1]))
		return s + 1 + strspn(s + 1, "0123456789");
	return s + 2;
}

/* ---- the scanner ---- */

/* Does the text hold LONG S (C5 BF) or KELVIN SIGN (E2 84 AA)? memchr on
 * the lead byte is much faster than memmem on the sequence. */
static int
fold_trap(const unsigned char *t, size_t n)
{
	const unsigned char *p, *e = t + n;

	for (p = t; (p = memchr(p, 0xC5, (size_t)(e - p))) != NULL; p++)
		if (p + 1 < e && p[1] == 0xBF)
			return 1;
	for (p = t; (p = memchr(p, 0xE2, (size_t)(e - p))) != NULL; p++)
		if (p + 2 < e && p[1] == 0x84 && p[2] == 0xAA)
			return 1;
	return 0;
}

static uint32_t
lit_hash(uint32_t key)
{
	return (key * 2654435761u) >> 16;
}

/* The trigram at p as the filter sees it: the three bytes in load order
 * with bit 5 set in each, which folds A-Z as fold[] does (and merges a
 * few other bytes: only more candidates, which the exact compare
 * drops). Each position's key stands alone, so the scan has no chain
 * from one byte to the next: 10 KB of text with 41 literals scans in
 * 11.2-11.5 us, against 17.5-19.4 us with a rolling key. */
static inline uint32_t
lit_key(const unsigned char *p)
{
	return ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16) | 0x202020u;
}

/* The same from a 4-byte load, when a fourth byte is there to read. */
static inline uint32_t
lit_key4(const unsigned char *p)
{
	uint32_t w;

	memcpy(&w, p, sizeof(w));
	return (le32toh(w) & 0xFFFFFFu) | 0x202020u;
}

struct lit_set *
lit_set_new(void)
{
	pthread_once(&fold_once, fold_init);
	return xcalloc(1, sizeof(struct lit_set));
}

void
lit_set_free(struct lit_set *ls)
{
	if (ls == NULL)
		return;
	for (size_t i = 0; i < ls->n; i++)
		free(ls->lits[i].s);
	for (size_t i = 0; i < LIT_BUCKETS; i++)
		free(ls->buckets[i].v);
	free(ls->lits);
	free(ls);
}

/* Give l a pivot byte for ls's pivot scan: a punctuation byte, one the
 * set has already if it can; else the set is scanned with the filter. */
static void
lit_pivot(struct lit_set *ls, struct lit *l)
{
	size_t first = l->len;

	if (ls->npivots < 0)
		return;
	if (ls->n >= LIT_PIVOT_LITS) {
		ls->npivots = -1;
		return;
	}
	for (size_t i = 0; i < l->len; i++) {
		if (!ispunct((unsigned char)l->s[i]))
			continue;
		for (int p = 0; p < ls->npivots; p++)
			if (ls->pivots[p] == (unsigned char)l->s[i]) {
				l->pivot = i;
				return;
			}
		if (first == l->len)
			first = i;
	}
	if (first == l->len || ls->npivots == LIT_PIVOTS) {
		ls->npivots = -1;
		return;
	}
	l->pivot = first;
	ls->pivots[ls->npivots++] = (unsigned char)l->s[first];
}

/* The trigram of s to file it under: most non-letters, then the latest. */
static size_t
lit_anchor(const char *s, size_t len)
{
	size_t best = 0;
	int bscore = -1;

	for (size_t i = 0; i + LIT_MIN <= len; i++) {
		int score = 0;
		for (size_t j = i; j < i + LIT_MIN; j++)
			score += !isalpha((unsigned char)s[j]) && s[j] != ' ';
		if (score >= bscore) {
			bscore = score;
			best = i;
		}
	}
	return best;
}

size_t
lit_set_add(struct lit_set *ls, const char *s, size_t len)
{
	struct lit *l;
	struct lit_bucket *b;
	const unsigned char *k;

	if (len < LIT_MIN || len > LIT_MAX)
		fatalx("lit_set_add: literal of %zu bytes", len);
	ls->lits = xrealloc(ls->lits, (ls->n + 1) * sizeof(*ls->lits));
	l = &ls->lits[ls->n];
	l->s = xmalloc(len);
	for (size_t i = 0; i < len; i++)
		l->s[i] = (char)fold[(unsigned char)s[i]];
	l->len = len;
	lit_pivot(ls, l);
	l->anchor = lit_anchor(l->s, len);
	k = (const unsigned char *)l->s + l->anchor;
	l->key = lit_key(k);
	l->h = lit_hash(l->key);
	ls->bloom[l->h / 64] |= 1ull << (l->h % 64);
	b = &ls->buckets[l->h % LIT_BUCKETS];
	b->v = xrealloc(b->v, (b->n + 1) * sizeof(*b->v));
	b->v[b->n++] = ls->n;
	return ls->n++;
}

size_t
lit_set_count(const struct lit_set *ls)
{
	return ls->n;
}

/* Whether l is at st (its bytes there, folded). */
static int
lit_is_at(const struct lit *l, const unsigned char *st)
{
	size_t j = 0;

	while (j < l->len && fold[st[j]] == (unsigned char)l->s[j])
		j++;
	return j == l->len;
}

/* Each pivot byte in the text, and the literals around it. */
static void
lit_scan_pivots(const struct lit_set *ls, const unsigned char *t, size_t len,
    unsigned char *found)
{
	for (int p = 0; p < ls->npivots; p++) {
		const unsigned char *q = t, *e = t + len;

		while ((q = memchr(q, ls->pivots[p], (size_t)(e - q))) != NULL) {
			size_t at = (size_t)(q - t);
			for (size_t k = 0; k < ls->n; k++) {
				const struct lit *l = &ls->lits[k];
				if (!found[k] && (unsigned char)l->s[l->pivot] == ls->pivots[p] &&
				    at >= l->pivot && l->len - l->pivot <= len - at &&
				    lit_is_at(l, q - l->pivot))
					found[k] = 1;
			}
			q++;
		}
	}
}

/* Every position's trigram through the filter, and the literals filed
 * under the ones it passes. */
static void
lit_scan_filter(const struct lit_set *ls, const unsigned char *t, size_t len,
    unsigned char *found)
{
	uint64_t bloom[LIT_BLOOM_BITS / 64];
	uint32_t key;

	/* A private copy of the filter: once every literal behind a bit is
	 * found, the bit is cleared, so common words cost one test after
	 * their first occurrence. */
	memcpy(bloom, ls->bloom, sizeof(bloom));
	for (size_t i = 0; i + LIT_MIN <= len; i++) {
		key = i + 4 <= len ? lit_key4(t + i) : lit_key(t + i);
		uint32_t h = lit_hash(key);
		if (!(bloom[h / 64] >> (h % 64) & 1))
			continue;
		const struct lit_bucket *b = &ls->buckets[h % LIT_BUCKETS];
		int pending = 0;
		for (size_t k = 0; k < b->n; k++) {
			const struct lit *l = &ls->lits[b->v[k]];
			if (found[b->v[k]] || l->h != h)
				continue;
			pending = 1;
			/* the trigram ends at i + 2; the literal starts anchor before i */
			if (l->key != key || i < l->anchor || l->len - l->anchor > len - i ||
			    !lit_is_at(l, t + i - l->anchor))
				continue;
			found[b->v[k]] = 1;
			pending = 0;
			for (size_t m = 0; m < b->n && !pending; m++)
				pending = !found[b->v[m]] && ls->lits[b->v[m]].h == h;
		}
		if (!pending)
			bloom[h / 64] &= ~(1ull << (h % 64));
	}
}

void
lit_set_scan(const struct lit_set *ls, const char *text, size_t len,
    unsigned char *found)
{
	const unsigned char *t = (const unsigned char *)text;

	if (len < LIT_MIN || ls->n == 0)
		return;
	/* Caseless 'k'/'s' also match these; we do not fold them, so pass
	 * every literal rather than skip a rule that could match. */
	if (fold_trap(t, len)) {
		memset(found, 1, ls->n);
		return;
	}
	if (ls->npivots > 0)
		lit_scan_pivots(ls, t, len, found);
	else
		lit_scan_filter(ls, t, len, found);
}
