/*
 * bmark.c -- the character-level Markov model; see bmark.h.
 *
 * Why these choices (docs/bayes.md, round 5 and "The Markov part"): a
 * compression model's core (Bratko et al. 2006) read over decoded headers
 * and text ranked the training corpus five to seven times better than the
 * word chi-square, and added to it halved the spam missed at the same
 * false positives. Counting each gram once per message (not per
 * occurrence) makes the counts order-insensitive and forgettable, as the
 * word counts are, so the grams ride on the same learn. The decoded text
 * beat the raw message (base64 and HTML tags are noise); 5-grams beat 4-
 * and 6-grams; the smoothing below was the best of eight pairs.
 */
#include "policy/bmark.h"
#include "lib/util.h"
#include "policy/btab.h"
#include "rules/mime.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
/* Inlined as in btok.c: a 4- or 5-byte hash is a few multiplies. */
#define XXH_INLINE_ALL
#include <xxhash.h>

/* Seeds of their own: a gram never hashes like a word token or a
 * context ("mkg", "mkc"; btok.c's kinds use 1..20 and "osb"). */
#define BMARK_GRAM_SEED	0x6d6b670000000000ULL
#define BMARK_CTX_SEED	0x6d6b630000000000ULL
/* The smoothing P = (n(gram) + alpha/vocab) / (n(context) + alpha):
 * alpha 1, vocab 1000 was the best of eight pairs (alpha 0.3-10, vocab
 * 40-1000) on the training corpus; an unseen context gives 1/vocab in
 * both classes (log ratio 0), a context seen only in one class leans
 * strongly to it. */
#define BMARK_ALPHA	1.0
#define BMARK_VOCAB	1000.0
/* The share of the text (percent) the headers may take. Measured on the
 * training corpus (docs/bayes.md, "The Markov part"), half of 6,000 bytes
 * with the signatures skipped ranks as the whole did (31 spam missed at
 * 5 false positives, pooled; 35 against 34 at the 0.6 threshold); a
 * third of 3,000 bytes lost half the spam caught. Half of 3,000 (the
 * default since) missed 32 spam against 34. */
#define BMARK_HEADER_PCT	50
/* Positions multiplied before the product is renormalised: each ratio
 * lies within about 1e+-22 (32-bit counts), 8 of them well inside a
 * double's range. */
#define BMARK_RENORM	8
/* Positions looked up ahead: overlaps the table's cache misses. */
#define BMARK_PREFETCH	8

static size_t	 bmark_text_upto(const struct mime_msg *, size_t max, size_t stop, char *);

/* A word byte: kept (lower-cased); anything else is a separator. */
static int
bmark_word(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c >= 0x80 || c == '$' || c == '\'' ||
	    c == '-' || c == '.' || c == '_';
}

/* Append t normalised to buf[0..n), up to cap; every piece ends in one
 * space, so two pieces never run together. */
static size_t
bmark_append(char *buf, size_t n, size_t cap, const char *t, size_t len)
{
	for (size_t i = 0; i < len && n < cap; i++) {
		unsigned char c = (unsigned char)t[i];
		if (!bmark_word(c)) {
			if (buf[n - 1] != ' ')
				buf[n++] = ' ';
			continue;
		}
		buf[n++] = (char)(c >= 'A' && c <= 'Z' ? c | 0x20 : c);
	}
	if (n < cap && buf[n - 1] != ' ')
		buf[n++] = ' ';
	return n;
}

/* Fields of machine-made text -- signatures, and the verdicts of the
 * hops before us -- that say nothing of the sender or the content: today
 * an ARC set and two DKIM signatures are 2-4 KB of base64, which would
 * use up the budget before the body. */
static const char *const bmark_skip[] = {
	"DKIM-Signature", "X-Google-DKIM-Signature", "ARC-Seal",
	"ARC-Message-Signature", "ARC-Authentication-Results",
	"Authentication-Results",
};

static int
bmark_skipped(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(bmark_skip); i++)
		if (strcasecmp(name, bmark_skip[i]) == 0)
			return 1;
	return 0;
}

size_t
bmark_text(const struct mime_msg *m, size_t max, char *buf)
{
	return bmark_text_upto(m, max, max, buf);
}

/* bmark_text's text for a budget of max, built no further than stop
 * (<= max) bytes: the same bytes up to there, as every byte depends only
 * on those before it. buf holds stop + 1; the length can be stop + 1
 * when the headers reach stop. */
static size_t
bmark_text_upto(const struct mime_msg *m, size_t max, size_t stop, char *buf)
{
	size_t n = 0, nt = mime_count(m, MIME_TEXT), hmax;

	if (max == 0 || stop == 0)
		return 0;
	/* the headers take at most BMARK_HEADER_PCT of the budget, so that
	 * a long header section (a dozen hops) leaves room for the body */
	hmax = max * BMARK_HEADER_PCT / 100;
	if (hmax > stop)
		hmax = stop;
	buf[n++] = ' ';		/* the first word's start is a context too */
	for (size_t i = 0; i < mime_nheaders(m) && n < hmax; i++) {
		const char *name, *v = mime_header_at(m, i, &name);
		if (bmark_skipped(name))
			continue;
		n = bmark_append(buf, n, hmax, name, strlen(name));
		n = bmark_append(buf, n, hmax, v, strlen(v));
	}
	if (buf[n - 1] != ' ')	/* cut in a word: the body starts its own */
		buf[n++] = ' ';
	for (size_t i = 0; i < nt && n < stop; i++) {
		size_t len;
		const char *t = mime_item(m, MIME_TEXT, i, &len);
		n = bmark_append(buf, n, stop, t, len);
	}
	return n;
}

/* Each distinct gram is one position, at its first occurrence: a
 * message's repeats (a footer, a quoted block, the same link ten times)
 * say nothing new. Scoring repeats as often as they occur missed 32 spam
 * at 5 false positives of the training corpus, once each 15 (docs/bayes.md,
 * "The Markov part"); this is what Bratko et al.'s adaptive models do by
 * learning the message as they read it. The keys a learn writes are the
 * same either way (a repeat's context is its first occurrence's). */
void
bmark_grams_text(struct bmark *b, const char *text, size_t len)
{
	size_t n = len >= BMARK_ORDER ? len - BMARK_ORDER + 1 : 0, k = 0, mask;
	uint16_t *seen;	/* 1 + the index in b->gram of a gram kept, 0 empty */
	_Static_assert(BMARK_MAX_BYTES + 2 - BMARK_ORDER <= UINT16_MAX,
	    "a position's index + 1 fits a slot");

	/* 16-bit slots (n < 65536: BMARK_MAX_BYTES) clear in a quarter of
	 * the time of 64-bit hashes: the calloc was a quarter of this
	 * function's instructions (callgrind, the bench's 10 KB message) */
	mask = 64;
	while (mask < 2 * n)
		mask <<= 1;
	seen = xcalloc(mask--, sizeof(*seen));
	b->gram = xrealloc(b->gram, (n + 1) * sizeof(*b->gram));
	b->ctx = xrealloc(b->ctx, (n + 1) * sizeof(*b->ctx));
	for (size_t i = 0; i < n; i++) {
		uint64_t g = XXH3_64bits_withSeed(text + i, BMARK_ORDER, BMARK_GRAM_SEED), c;
		size_t j;

		g = g ? g : 1;	/* 0 is btab's empty slot */
		for (j = (size_t)g & mask; seen[j] != 0 && b->gram[seen[j] - 1] != g;
		    j = (j + 1) & mask)
			;
		if (seen[j] != 0)
			continue;
		c = XXH3_64bits_withSeed(text + i, BMARK_ORDER - 1, BMARK_CTX_SEED);
		b->gram[k] = g;
		b->ctx[k++] = c ? c : 1;
		seen[j] = (uint16_t)k;
	}
	free(seen);
	b->n = k;
}

int
bmark_grams_first(struct bmark *b, const struct mime_msg *m, size_t max, size_t first)
{
	char *buf;
	size_t len, stop;

	if (max > BMARK_MAX_BYTES)
		max = BMARK_MAX_BYTES;
	/* one byte past the first part tells whether the text goes on; the
	 * rest of it a first pass does not read, so it is not built */
	stop = first < max ? first + 1 : max;
	buf = xmalloc(stop + 1);
	len = bmark_text_upto(m, max, stop, buf);
	bmark_grams_text(b, buf, len < first ? len : first);
	free(buf);
	return len > first;
}

void
bmark_grams(struct bmark *b, const struct mime_msg *m, size_t max)
{
	(void)bmark_grams_first(b, m, max, max);
}

size_t
bmark_keys(const struct bmark *b, uint64_t *out)
{
	if (b->n == 0)
		return 0;
	/* repeated contexts stay: the learn keeps one of each when it writes
	 * (db_bayes_move), and a learn that changes nothing -- autolearn of
	 * a message already learned -- never pays for finding them */
	memcpy(out, b->gram, b->n * sizeof(*out));
	memcpy(out + b->n, b->ctx, b->n * sizeof(*out));
	out[2 * b->n] = BMARK_MARKER;
	return 2 * b->n + 1;
}

/* The sum of the positions' log ratios is the log of their product:
 * the ratios are multiplied (mantissa and exponent kept apart by frexp)
 * and one log taken at the end. Two logs per position were half the
 * model's instructions (callgrind, bayes_bench). */
double
bmark_mean(const struct bmark *b, const struct btab *t)
{
	const double av = BMARK_ALPHA / BMARK_VOCAB;
	double prod = 1;
	long exp2 = 0;
	int e;

	if (b->n == 0)
		return 0;
	for (size_t i = 0; i < b->n && i < BMARK_PREFETCH; i++) {
		btab_prefetch(t, b->gram[i]);
		btab_prefetch(t, b->ctx[i]);
	}
	for (size_t i = 0; i < b->n; i++) {
		unsigned gs, gh, cs, ch;
		if (i + BMARK_PREFETCH < b->n) {
			btab_prefetch(t, b->gram[i + BMARK_PREFETCH]);
			btab_prefetch(t, b->ctx[i + BMARK_PREFETCH]);
		}
		btab_get(t, b->gram[i], &gs, &gh);
		btab_get(t, b->ctx[i], &cs, &ch);
		/* P_spam / P_ham, P = (n(gram) + alpha/vocab) / (n(context) + alpha) */
		prod *= ((gs + av) * (ch + BMARK_ALPHA)) / ((gh + av) * (cs + BMARK_ALPHA));
		if (i % BMARK_RENORM == BMARK_RENORM - 1) {
			prod = frexp(prod, &e);
			exp2 += e;
		}
	}
	return (log(prod) + (double)exp2 * M_LN2) / (double)b->n;
}

void
bmark_free(struct bmark *b)
{
	free(b->gram);
	free(b->ctx);
	memset(b, 0, sizeof(*b));
}
