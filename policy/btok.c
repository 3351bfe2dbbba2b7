/*
 * btok.c -- the classifier's tokeniser; see btok.h for the token kinds.
 *
 * Every token is hashed once, when it is made: XXH3 with a seed per kind
 * over its normalised text; a bigram hashes its two words' hashes and its
 * distance, so no bigram text is built unless btok_format() asks.
 * Duplicates are dropped at the end through a hash set (a message counts
 * each token once, as bogofilter does).
 *
 * Why these choices: lower-casing only ASCII keeps the cost a table
 * lookup per byte and never splits a UTF-8 sequence; the length bound
 * keeps base64 blobs and hashes out of the table (one "skip" token says
 * such a run was there); bigrams at distances 1 and 2 catch phrases ("click
 * here", "remove me from") that single words do not, as rspamd and
 * CRM114 found; on the training corpus (docs/bayes.md) distances up to 4
 * were no better, cost more tokens, and plain adjacent pairs were a
 * little worse. Header names are not tokens of their own: the mailing
 * lists' headers (List-Id, X-Mailman-Version, ...) made every spam posted
 * to a list look like ham, and without them ten more spam of the corpus
 * are caught at the same false positives, in each of the five folds.
 */
#include "policy/btok.h"
#include "lib/util.h"
#include "rules/mime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
/* XXH3 compiled in here rather than called through libxxhash: each token
 * costs one short hash, and inlined the 16-byte bigram hash is a few
 * multiplies instead of a call that dispatches on the length
 * (docs/performance.md). Same algorithm, same hashes. */
#define XXH_INLINE_ALL
#include <xxhash.h>

/* The numbers seed the hashes: a kind no longer made (K_HDR, header-name
 * presence tokens) keeps its place, so the learned tokens of the kinds
 * after it keep their hashes. */
enum btok_kind {
	K_BODY = 0, K_OSB, K_SKIP, K_SUBJECT, K_FROM, K_TO, K_CC, K_REPLYTO,
	K_RCVD, K_MAILER, K_MSGID, K_CTYPE, K_HDR, K_URL, K_URLDOM, K_PART,
	K_LAYOUT, K_TRAIT, K_ATTACH, K_RCVDIP, K_NKINDS
};

/* Readable prefixes, and the seed base: kind k hashes with seed k + 1. */
static const char *const btok_prefix[K_NKINDS] = {
	[K_BODY] = "", [K_OSB] = "", [K_SKIP] = "skip:", [K_SUBJECT] = "subject:",
	[K_FROM] = "from:", [K_TO] = "to:", [K_CC] = "cc:", [K_REPLYTO] = "reply-to:",
	[K_RCVD] = "received:", [K_MAILER] = "mailer:", [K_MSGID] = "message-id:",
	[K_CTYPE] = "content-type:", [K_HDR] = "header:", [K_URL] = "url:",
	[K_URLDOM] = "urldomain:", [K_PART] = "part:", [K_LAYOUT] = "layout:",
	[K_TRAIT] = "trait:", [K_ATTACH] = "attach:", [K_RCVDIP] = "received-ip:",
};
#define BTOK_OSB_SEED	0x6f73620000000000ULL

/* Header fields whose words become tokens of their own kind. */
static const struct {
	const char *name;
	enum btok_kind kind;
} btok_headers[] = {
	{ "Subject", K_SUBJECT }, { "From", K_FROM }, { "To", K_TO }, { "Cc", K_CC },
	{ "Reply-To", K_REPLYTO }, { "Received", K_RCVD }, { "X-Mailer", K_MAILER },
	{ "User-Agent", K_MAILER }, { "Content-Type", K_CTYPE },
};
/* Received headers read per message: the nearest hops say most. */
#define BTOK_MAX_RCVD	4

static char	*arena_reserve(struct btok_set *, size_t);
static uint32_t	 arena_commit(struct btok_set *, size_t);
static uint32_t	 arena_put(struct btok_set *, const char *, size_t);
static void	 word_skip(struct btok_set *, const char *, size_t, size_t);
static int	 tok_room(struct btok_set *);
static inline void tok_push(struct btok_set *, uint64_t, uint32_t, uint32_t, int, int);
static void	 tok_add(struct btok_set *, int kind, const char *, size_t);
static void	 words(struct btok_set *, int kind, const char *, size_t, int body);
static void	 word_one(struct btok_set *, int kind, const char *, size_t, int body);
static int	 rcvd_ip(struct btok_set *, const char *, size_t);
static void	 body_word(struct btok_set *, uint64_t h, uint32_t a);
static void	 headers(struct btok_set *, const struct mime_msg *);
static void	 addr_domains(struct btok_set *, int kind, const char *);
static void	 urls(struct btok_set *, const struct mime_msg *);
static void	 layout(struct btok_set *, const struct mime_msg *, size_t rawlen);

/* What each byte is, one table lookup per byte (the tokeniser's inner
 * loop): part of a word; trimmed from a word's ends; counted as a digit
 * (a word of only these is a number); upper-case ASCII, whose bit is
 * the one that lower-cases it. */
enum {
	C_WORD = 0x01, C_TRIM = 0x02, C_DIGIT = 0x04, C_UPPER = 0x20
};
static const uint8_t btok_class[256] = {
	['a' ... 'z'] = C_WORD, ['A' ... 'Z'] = C_WORD | C_UPPER,
	['0' ... '9'] = C_WORD | C_DIGIT, [0x80 ... 0xff] = C_WORD,
	['$'] = C_WORD, ['\''] = C_WORD | C_TRIM, ['_'] = C_WORD | C_TRIM,
	['-'] = C_WORD | C_TRIM | C_DIGIT, ['.'] = C_WORD | C_TRIM | C_DIGIT,
};

/* Bytes that make up a word. */
static int
is_word(unsigned char c)
{
	return btok_class[c] & C_WORD;
}

/* The arena is its own growable array rather than lib/buf: it takes
 * every word of the message, and with buf_space() + buf_commit() (two
 * calls out of this file per word) bench/bayes_bench measured tokenising
 * and classifying a 10 KB message at 3.10-3.30x the MIME parse's time
 * against 2.66-3.13x with an inline copy (9 runs, interleaved, shared
 * 2 cores), about 10% more; words are now folded straight into it.
 *
 * Room for n bytes and a NUL at the arena's end; arena_commit() keeps
 * them (until then the next reserve or put reuses the room). */
static char *
arena_reserve(struct btok_set *s, size_t n)
{
	if (s->acap == 0) {
		s->acap = 4096;
		s->arena = xmalloc(s->acap);
		s->arena[0] = '\0';	/* offset 0: "no text" */
		s->alen = 1;
	}
	if (s->alen + n + 1 > s->acap) {
		while (s->alen + n + 1 > s->acap)
			s->acap *= 2;
		s->arena = xrealloc(s->arena, s->acap);
	}
	return s->arena + s->alen;
}

static uint32_t
arena_commit(struct btok_set *s, size_t n)
{
	uint32_t off = (uint32_t)s->alen;

	s->arena[off + n] = '\0';
	s->alen += n + 1;
	return off;
}

static uint32_t
arena_put(struct btok_set *s, const char *p, size_t n)
{
	memcpy(arena_reserve(s, n), p, n);
	return arena_commit(s, n);
}

/* A blob or a long number: only its shape, by its first letter ('#' for
 * a number) and its length (in tens when over BTOK_MAX_WORD). */
static void
word_skip(struct btok_set *s, const char *p, size_t n, size_t digits)
{
	char buf[32];
	int l = snprintf(buf, sizeof(buf), "%c%zu", digits == n ? '#' :
	    (char)((unsigned char)p[0] < 0x80 ? p[0] | 0x20 : '~'),
	    n > BTOK_MAX_WORD ? n / 10 * 10 : n);

	tok_add(s, K_SKIP, buf, (size_t)l);
}

/* Room for one more token: grows v, or 0 at BTOK_MAX_TOKENS. */
static int
tok_room(struct btok_set *s)
{
	if (s->n >= BTOK_MAX_TOKENS)
		return 0;
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 1024;
		s->v = xrealloc(s->v, s->cap * sizeof(*s->v));
	}
	return 1;
}

/* Inline, the growth out of line: a push per token, 4,400 for a 10 KB
 * message, and as a call each cost 39 instructions (callgrind). */
static inline void
tok_push(struct btok_set *s, uint64_t h, uint32_t a, uint32_t b, int kind, int dist)
{
	if (s->n == s->cap && !tok_room(s))
		return;
	s->v[s->n++] = (struct btok){ h ? h : 1, a, b, (uint8_t)kind, (uint8_t)dist };
}

/* A token from text as it is (already normalised). */
static void
tok_add(struct btok_set *s, int kind, const char *p, size_t n)
{
	if (n > 0 && s->n < BTOK_MAX_TOKENS)
		tok_push(s, XXH3_64bits_withSeed(p, n, (uint64_t)kind + 1),
		    arena_put(s, p, n), 0, kind, 0);
}

/* A lower-cased word of kind; body words also make bigrams. The word is
 * folded straight into the arena's free end while its digits are
 * counted, and hashed there: one pass and no copy (callgrind, docs/
 * performance.md). */
static void
word_one(struct btok_set *s, int kind, const char *p, size_t n, int body)
{
	size_t digits = 0;
	uint32_t a;
	char *dst;
	uint64_t h;

	while (n > 0 && (btok_class[(unsigned char)p[n - 1]] & C_TRIM))
		n--;
	while (n > 0 && (btok_class[(unsigned char)p[0]] & C_TRIM)) {
		p++;
		n--;
	}
	if (n < BTOK_MIN_WORD)
		return;
	if (n > BTOK_MAX_WORD) {
		for (size_t i = 0; i < n; i++)
			digits += (btok_class[(unsigned char)p[i]] & C_DIGIT) != 0;
		word_skip(s, p, n, digits);
		return;
	}
	dst = arena_reserve(s, n);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		digits += (btok_class[c] & C_DIGIT) != 0;
		dst[i] = (char)(c | (btok_class[c] & C_UPPER));
	}
	if (digits == n) {
		/* a number: a relay's address, or only its shape when long */
		if (kind == K_RCVD && rcvd_ip(s, p, n))
			return;
		if (n > 4) {
			word_skip(s, p, n, digits);
			return;
		}
	}
	h = XXH3_64bits_withSeed(dst, n, (uint64_t)kind + 1);
	a = arena_commit(s, n);
	tok_push(s, h, a, 0, kind, 0);
	if (body)
		body_word(s, h, a);
}

/* A relay's IPv4 address in a Received header, kept whole and as its /24
 * (a spam run's relays share networks); anything else returns 0. */
static int
rcvd_ip(struct btok_set *s, const char *p, size_t n)
{
	unsigned a, b, c, d;
	char buf[32], rest;
	int l;

	if (n >= sizeof(buf))
		return 0;
	memcpy(buf, p, n);
	buf[n] = '\0';
	if (sscanf(buf, "%u.%u.%u.%u%c", &a, &b, &c, &d, &rest) != 4 ||
	    a > 255 || b > 255 || c > 255 || d > 255)
		return 0;
	tok_add(s, K_RCVDIP, buf, n);
	l = snprintf(buf, sizeof(buf), "%u.%u.%u/24", a, b, c);
	tok_add(s, K_RCVDIP, buf, (size_t)l);
	return 1;
}

/* Pair the new body word with the ones before it in the window; the
 * window is a shift register, newest first (win_h[d - 1] is d words
 * back), so no modulo per pair (callgrind, docs/performance.md). */
static void
body_word(struct btok_set *s, uint64_t h, uint32_t a)
{
	for (unsigned d = 1; d < BTOK_WINDOW && d <= s->nwords; d++) {
		uint64_t pair[2] = { s->win_h[d - 1], h };
		tok_push(s, XXH3_64bits_withSeed(pair, sizeof(pair), BTOK_OSB_SEED + d),
		    s->win_a[d - 1], a, K_OSB, (int)d);
	}
	for (unsigned d = BTOK_WINDOW - 1; d > 0; d--) {
		s->win_h[d] = s->win_h[d - 1];
		s->win_a[d] = s->win_a[d - 1];
	}
	s->win_h[0] = h;
	s->win_a[0] = a;
	s->nwords++;
}

static void
words(struct btok_set *s, int kind, const char *p, size_t n, int body)
{
	size_t i = 0;

	while (i < n) {
		size_t st;
		while (i < n && !(btok_class[(unsigned char)p[i]] & C_WORD))
			i++;
		st = i;
		while (i < n && (btok_class[(unsigned char)p[i]] & C_WORD))
			i++;
		if (i > st) {
			if (body && s->nwords >= BTOK_MAX_WORDS)
				return;
			word_one(s, kind, p + st, i - st, body);
		}
	}
}

void
btok_text(struct btok_set *s, const char *text, size_t len)
{
	words(s, K_BODY, text, len, 1);
}

/* "user@sub.example.com" -> "sub.example.com" as one token of kind. */
static void
addr_domains(struct btok_set *s, int kind, const char *v)
{
	for (const char *at = strchr(v, '@'); at != NULL; at = strchr(at + 1, '@')) {
		char buf[128];
		size_t n = 0;
		for (const char *p = at + 1; *p && n < sizeof(buf) - 1 &&
		    (is_word((unsigned char)*p)); p++)
			buf[n++] = (char)(*p >= 'A' && *p <= 'Z' ? *p | 0x20 : *p);
		buf[n] = '\0';
		if (n > 0) {
			char t[140];
			int l = snprintf(t, sizeof(t), "@%s", buf);
			tok_add(s, kind, t, (size_t)l);
		}
	}
}

static void
headers(struct btok_set *s, const struct mime_msg *m)
{
	size_t nh = mime_nheaders(m), nrcvd = 0;

	for (size_t i = 0; i < nh; i++) {
		const char *name, *v = mime_header_at(m, i, &name);

		for (size_t k = 0; k < ARRAY_SIZE(btok_headers); k++) {
			int kind = btok_headers[k].kind;
			if (strcasecmp(name, btok_headers[k].name) != 0)
				continue;
			if (kind == K_RCVD && nrcvd++ >= BTOK_MAX_RCVD)
				break;
			words(s, kind, v, strlen(v), 0);
			if (kind == K_FROM || kind == K_TO || kind == K_CC || kind == K_REPLYTO)
				addr_domains(s, kind, v);
			break;
		}
		if (strcasecmp(name, "Message-ID") == 0)
			addr_domains(s, K_MSGID, v);
	}
}

/* Each URL's host, and its last two labels. */
static void
urls(struct btok_set *s, const struct mime_msg *m)
{
	size_t n = mime_count(m, MIME_URL);

	for (size_t i = 0; i < n; i++) {
		const char *u = mime_item(m, MIME_URL, i, NULL), *h = strstr(u, "://");
		char host[256];
		size_t hl = 0, dots = 0, start = 0;

		if (h == NULL)
			continue;
		for (h += 3; *h && !strchr("/?#:", *h) && hl < sizeof(host) - 1; h++)
			host[hl++] = (char)(*h >= 'A' && *h <= 'Z' ? *h | 0x20 : *h);
		if (hl == 0)
			continue;
		tok_add(s, K_URL, host, hl);
		for (size_t k = hl; k-- > 0; )
			if (host[k] == '.' && ++dots == 2) {
				start = k + 1;
				break;
			}
		if (start > 0)
			tok_add(s, K_URLDOM, host + start, hl - start);
	}
}

/* Size, URL count, the MIME layout, parts, HTML-only, attachments. */
static void
layout(struct btok_set *s, const struct mime_msg *m, size_t rawlen)
{
	char sig[256], t[64];
	size_t sl = 0, np = mime_count(m, MIME_PART), nu = mime_count(m, MIME_URL);
	int html = 0, plain = 0, bits = 0, l;

	for (size_t i = 0; i < np; i++) {
		size_t len;
		const char *p = mime_item(m, MIME_PART, i, &len), *sp = strchr(p, ' ');
		tok_add(s, K_PART, sp ? sp + 1 : p, sp ? len - (size_t)(sp + 1 - p) : len);
		html |= strstr(p, " text/html") != NULL;
		plain |= strstr(p, " text/plain") != NULL;
		if (sl + len + 2 < sizeof(sig)) {
			memcpy(sig + sl, p, len);
			sl += len;
			sig[sl++] = ',';
		}
	}
	if (sl > 0)
		tok_add(s, K_LAYOUT, sig, sl - 1);
	if (html && !plain)
		tok_add(s, K_TRAIT, "html-only", 9);
	while ((rawlen >> bits) > 1)
		bits++;
	l = snprintf(t, sizeof(t), "size-2^%d", bits);
	tok_add(s, K_TRAIT, t, (size_t)l);
	l = snprintf(t, sizeof(t), "urls-%zu", nu > 20 ? 20 : nu < 5 ? nu : nu / 5 * 5);
	tok_add(s, K_TRAIT, t, (size_t)l);
	for (size_t i = 0; i < mime_count(m, MIME_ATTACHMENT); i++) {
		const char *fn = mime_item(m, MIME_ATTACHMENT, i, NULL), *dot = strrchr(fn, '.');
		char ext[16];
		size_t n = 0;
		for (const char *p = dot ? dot + 1 : ""; *p && n < sizeof(ext) - 1; p++)
			ext[n++] = (char)(*p >= 'A' && *p <= 'Z' ? *p | 0x20 : *p);
		tok_add(s, K_ATTACH, n ? ext : "none", n ? n : 4);
	}
	if (mime_truncated(m))
		tok_add(s, K_TRAIT, "truncated", 9);
}

/* Where a text of len bytes is cut to keep at most about max: after the
 * word that straddles max, so no word is cut in two. */
static size_t
text_cut(const char *t, size_t len, size_t max)
{
	size_t n = max;

	while (n < len && is_word((unsigned char)t[n]))
		n++;
	return n;
}

/* Room for about the tokens the text will make -- a word and its two
 * bigrams per word of ~6 bytes, at most BTOK_MAX_WORDS of them -- in one
 * allocation: grown by doubling, the array of a 10 KB message was copied
 * four times, 174k of its 1,291k instructions; tokenising it went 904k
 * -> 730k (callgrind, bench/bayes_bench). */
static void
tok_reserve(struct btok_set *s, const struct mime_msg *m)
{
	size_t text = 0, want;

	for (size_t i = 0; i < mime_count(m, MIME_TEXT); i++) {
		size_t len;
		mime_item(m, MIME_TEXT, i, &len);
		text += len;
	}
	want = 256 + (text / 2 < BTOK_WINDOW * BTOK_MAX_WORDS ? text / 2 :
	    BTOK_WINDOW * BTOK_MAX_WORDS);
	if (want > s->cap) {
		s->cap = want;
		s->v = xrealloc(s->v, s->cap * sizeof(*s->v));
	}
}

void
btok_message(struct btok_set *s, const struct mime_msg *m, size_t rawlen)
{
	size_t nt = mime_count(m, MIME_TEXT), left = s->max_text ? s->max_text : SIZE_MAX;

	tok_reserve(s, m);
	headers(s, m);
	urls(s, m);
	layout(s, m, rawlen);
	for (size_t i = 0; i < nt && s->nwords < BTOK_MAX_WORDS; i++) {
		size_t len, all;
		const char *t = mime_item(m, MIME_TEXT, i, &all);
		len = all <= left ? all : left > 0 ? text_cut(t, all, left) : 0;
		s->cut |= len < all;
		words(s, K_BODY, t, len, 1);
		left -= len < left ? len : left;
	}
	btok_unique(s);
}

/* Drop repeated hashes, keeping first occurrences in order: an open-
 * addressing set of indexes, linear in the tokens (a sort of thousands
 * of tokens cost more than the rest of the classification). */
void
btok_unique(struct btok_set *s)
{
	size_t slots = 64, k = 0;
	uint32_t *set;

	while (slots < 2 * s->n)
		slots *= 2;
	set = xmalloc(slots * sizeof(*set));
	memset(set, 0xff, slots * sizeof(*set));
	for (size_t i = 0; i < s->n; i++) {
		size_t j = (size_t)(s->v[i].h ^ (s->v[i].h >> 29)) & (slots - 1);
		for (; set[j] != UINT32_MAX; j = (j + 1) & (slots - 1))
			if (s->v[set[j]].h == s->v[i].h)
				break;
		if (set[j] != UINT32_MAX)
			continue;
		s->v[k] = s->v[i];
		set[j] = (uint32_t)k++;
	}
	s->n = k;
	free(set);
}

char *
btok_format(const struct btok_set *s, const struct btok *t, char *buf, size_t sz)
{
	if (t->kind == K_OSB)
		snprintf(buf, sz, t->dist == 1 ? "%s %s" : "%s .. %s", s->arena + t->a,
		    s->arena + t->b);
	else
		snprintf(buf, sz, "%s%s", t->kind < K_NKINDS ? btok_prefix[t->kind] : "?",
		    s->arena + t->a);
	return buf;
}

void
btok_free(struct btok_set *s)
{
	free(s->v);
	free(s->arena);
	memset(s, 0, sizeof(*s));
}
