/*
 * dkimbody.c -- see dkimbody.h.
 */
#include "policy/dkimbody.h"

#include <stdint.h>
#include <string.h>

/* Canonical octets are gathered here and digested a buffer at a time:
 * relaxed output comes in short runs (a word, a space). */
#define DKIMBODY_BUF	4096

#define DKIMBODY_WSP(c)	((c) == ' ' || (c) == '\t')

struct dkimbody_out {
	EVP_MD_CTX	*md;
	long long	 left;		/* octets l= still allows; -1: no limit */
	int		 ok;
	size_t		 n;
	unsigned char	 buf[DKIMBODY_BUF];
};

static void
dkimbody_flush(struct dkimbody_out *o)
{
	if (o->n > 0 && EVP_DigestUpdate(o->md, o->buf, o->n) != 1)
		o->ok = 0;
	o->n = 0;
}

/* n canonical octets, as far as l= allows. */
static void
dkimbody_put(struct dkimbody_out *o, const char *p, size_t n)
{
	if (o->left >= 0) {
		if ((long long)n > o->left)
			n = (size_t)o->left;
		o->left -= (long long)n;
	}
	if (n >= sizeof(o->buf)) {	/* a long simple body: no copy */
		dkimbody_flush(o);
		if (EVP_DigestUpdate(o->md, p, n) != 1)
			o->ok = 0;
		return;
	}
	if (o->n + n > sizeof(o->buf))
		dkimbody_flush(o);
	memcpy(o->buf + o->n, p, n);
	o->n += n;
}

/* 3.4.3: as it is, without the empty lines at the end; an empty body is
 * one CRLF, and a last line without one gets it. */
static void
dkimbody_simple(struct dkimbody_out *o, const char *b, size_t len)
{
	while (len >= 4 && memcmp(b + len - 4, "\r\n\r\n", 4) == 0)
		len -= 2;
	dkimbody_put(o, b, len);
	if (len < 2 || memcmp(b + len - 2, "\r\n", 2) != 0)
		dkimbody_put(o, "\r\n", 2);
}

/* One line's content, p..le (no trailing WSP, not empty), with each run
 * of WSP as one SP, written straight into the buffer -- the runs are a
 * word or a space long, too short for a call each -- and no further than
 * l= allows. */
static void
dkimbody_relaxed_line(struct dkimbody_out *o, const char *p, const char *le)
{
	while (p < le && o->left != 0) {
		unsigned char *w = o->buf + o->n, *w0 = w, *wend = o->buf + sizeof(o->buf);

		if (o->left > 0 && wend - w > o->left)
			wend = w + o->left;
		while (p < le && w < wend) {
			char c = *p++;
			if (DKIMBODY_WSP(c)) {
				while (DKIMBODY_WSP(*p))
					p++;	/* stops before le: trimmed */
				c = ' ';
			}
			*w++ = (unsigned char)c;
		}
		o->n = (size_t)(w - o->buf);
		if (o->left > 0)
			o->left -= w - w0;
		if (o->n == sizeof(o->buf))
			dkimbody_flush(o);
	}
}

/* Sixteen octets at a time, as three masks: bit i set when octet i is a
 * CR, an SP, an HTAB. SSE2 (every x86-64) compares all sixteen at once;
 * elsewhere two eight-octet words do (DKIMBODY_PORTABLE forces that path,
 * for its test). */
#if defined(__SSE2__) && !defined(DKIMBODY_PORTABLE)
#include <emmintrin.h>

static inline void
dkimbody_masks(const char *p, unsigned *cr, unsigned *sp, unsigned *ht)
{
	__m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);

	*cr = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, _mm_set1_epi8('\r')));
	*sp = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, _mm_set1_epi8(' ')));
	*ht = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, _mm_set1_epi8('\t')));
}
#else
/* Bit k of the result set when octet k of the little-endian word x equals
 * the octet pat repeats; exact (no borrow between octets). */
static inline unsigned
dkimbody_eq8(uint64_t x, uint64_t pat)
{
	const uint64_t low7 = 0x7f7f7f7f7f7f7f7fULL;
	uint64_t y = x ^ pat, hi = ~(((y & low7) + low7) | y | low7);

	/* the octets' high bits, gathered into the top octet */
	return (unsigned)(((hi >> 7) * 0x0102040810204080ULL) >> 56);
}

/* Eight octets at p as a little-endian word. */
static inline uint64_t
dkimbody_load8(const char *p)
{
	uint64_t x;

	memcpy(&x, p, sizeof(x));
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	x = __builtin_bswap64(x);
#endif
	return x;
}

static inline void
dkimbody_masks(const char *p, unsigned *cr, unsigned *sp, unsigned *ht)
{
	uint64_t lo = dkimbody_load8(p), hi = dkimbody_load8(p + 8);

	*cr = dkimbody_eq8(lo, 0x0d0d0d0d0d0d0d0dULL) | dkimbody_eq8(hi, 0x0d0d0d0d0d0d0d0dULL) << 8;
	*sp = dkimbody_eq8(lo, 0x2020202020202020ULL) | dkimbody_eq8(hi, 0x2020202020202020ULL) << 8;
	*ht = dkimbody_eq8(lo, 0x0909090909090909ULL) | dkimbody_eq8(hi, 0x0909090909090909ULL) << 8;
}
#endif

/* The CR of the CRLF that ends the line at p (end when none does), and in
 * *plain whether relaxed canonicalization leaves the line as it is: ended
 * by CRLF, no HTAB, no run of SPs, none at the end. Most lines of most
 * mail are plain; they are hashed in place, many at a time. One pass of
 * sixteen octets a step tells both (memchr for the end and a second pass
 * for the rest cost more than the copying it saves). A line with a bare
 * CR in it is finished an octet at a time. */
static const char *
dkimbody_line(const char *p, const char *end, int *plain)
{
	const char *q = p;
	unsigned prev = 0, bad = 0;	/* prev: 1 when the octet before q is SP */
	int last_sp;

	for (; end - q >= 16; q += 16) {
		unsigned c, s, t, b;

		dkimbody_masks(q, &c, &s, &t);
		b = t | (s & ((s << 1) | prev));	/* HTAB, or SP after SP */
		if (c != 0) {
			const char *eol = q + __builtin_ctz(c);

			if (eol + 1 < end && eol[1] == '\n') {
				/* only the octets before the CR count */
				bad |= b & ((c & -c) - 1);
				*plain = !bad && eol > p && !DKIMBODY_WSP(eol[-1]);
				return eol;
			}
			break;
		}
		bad |= b;
		prev = s >> 15 & 1;
	}
	for (last_sp = prev != 0; q < end; q++) {
		if (*q == '\r' && q + 1 < end && q[1] == '\n')
			break;
		bad |= *q == '\t' || (*q == ' ' && last_sp);
		last_sp = *q == ' ';
	}
	*plain = !bad && q < end && q > p && !DKIMBODY_WSP(q[-1]);
	return q;
}

/* 3.4.4: WSP at the end of a line goes, other runs of WSP become one SP,
 * the empty lines at the end go (held back until a line with content
 * shows they were not at the end), a last line without CRLF gets one.
 * Lines it would not change are not copied: span..span_end is a run of
 * them (with the empty lines between them) still to be hashed. */
static void
dkimbody_relaxed(struct dkimbody_out *o, const char *b, size_t len)
{
	const char *p = b, *end = b + len, *span = NULL, *span_end = NULL;
	size_t empty = 0;	/* empty lines held back */
	int empty_plain = 1;	/* ... all of them "" (none made of WSP) */

	while (p < end) {
		int plain;
		const char *eol = dkimbody_line(p, end, &plain), *le = eol;
		const char *next = eol < end ? eol + 2 : end;

		while (le > p && DKIMBODY_WSP(le[-1]))
			le--;
		if (le == p) {
			empty++;
			empty_plain &= eol == p;
		} else if (plain) {
			if (span == NULL || !empty_plain) {
				if (span != NULL)
					dkimbody_put(o, span, (size_t)(span_end - span));
				for (; empty > 0; empty--)
					dkimbody_put(o, "\r\n", 2);
				span = p;
			}
			span_end = next;	/* the empty lines, if any, with it */
			empty = 0;
			empty_plain = 1;
		} else {
			if (span != NULL)
				dkimbody_put(o, span, (size_t)(span_end - span));
			span = NULL;
			for (; empty > 0; empty--)
				dkimbody_put(o, "\r\n", 2);
			empty_plain = 1;
			dkimbody_relaxed_line(o, p, le);
			dkimbody_put(o, "\r\n", 2);
		}
		p = next;
	}
	if (span != NULL)
		dkimbody_put(o, span, (size_t)(span_end - span));
}

unsigned int
dkimbody_hash(const char *body, size_t len, enum dkimbody_canon canon,
    long long limit, const EVP_MD *md, unsigned char out[EVP_MAX_MD_SIZE])
{
	struct dkimbody_out o = { .left = limit < 0 ? -1 : limit, .ok = 1 };
	unsigned int n = 0;

	if ((o.md = EVP_MD_CTX_new()) == NULL)
		return 0;
	if (EVP_DigestInit_ex(o.md, md, NULL) != 1)
		o.ok = 0;
	if (canon == DKIMBODY_RELAXED)
		dkimbody_relaxed(&o, body, len);
	else
		dkimbody_simple(&o, body, len);
	dkimbody_flush(&o);
	if (!o.ok || EVP_DigestFinal_ex(o.md, out, &n) != 1)
		n = 0;
	EVP_MD_CTX_free(o.md);
	return n;
}
