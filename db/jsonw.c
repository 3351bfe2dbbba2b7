/*
 * jsonw.c -- the one-pass JSON writer behind jsonw.h: a growing buffer,
 * strings escaped in runs (plain bytes and valid UTF-8 copied with one
 * memcpy per run), reals printed as jansson prints them.
 *
 * Why not jansson here: the verdict row is built once per message on the
 * I/O loop, and json_pack + json_array_append + json_dumps (its callback
 * and strbuffer machinery) + json_string's validation cost ~80k
 * instructions per row; the whole row written with this costs ~5k.
 * tests/unit/jsonw_test.c and tests/fuzz/fuzz_jsonw.c hold it to
 * json_dumps' output and to json_loads.
 *
 * Ownership and thread: see jsonw.h.
 */
#include "db/jsonw.h"
#include "lib/utf8.h"
#include "lib/util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Integral reals below this print as digits + ".0" without snprintf; %.17g
 * prints every integer under 1e17 in full, so the text is the same. */
#define JSONW_INT_FAST	1e15
/* Multiples of 1/JSONW_FRAC below JSONW_FRAC_MAX print without snprintf:
 * their decimal expansion has at most 10 fraction digits (1/1024 =
 * 0.0009765625) and 16 in all, so %.17g prints it in full, and none is
 * below 1e-4, where %g would switch to an exponent. */
#define JSONW_FRAC	1024
#define JSONW_FRAC_DIGITS 10
#define JSONW_FRAC_5POW	9765625ULL	/* 5^10: n/1024 = n * 5^10 / 10^10 */
#define JSONW_FRAC_MAX	1e6

static void	 jsonw_escape(struct jsonw *, unsigned char);
static size_t	 jsonw_run(const unsigned char *);
static void	 jsonw_exp_trim(char *);
static void	 jsonw_int(struct jsonw *, long long, int neg);
static int	 jsonw_frac(struct jsonw *, double);

/* Bytes a JSON string carries as they are: printable ASCII and DEL, but
 * not the quote and the backslash (RFC 8259 section 7). */
static const unsigned char jsonw_plain[256] = {
	[0x20 ... '"' - 1] = 1,
	['"' + 1 ... '\\' - 1] = 1,
	['\\' + 1 ... 0x7f] = 1,
};

void
jsonw_init(struct jsonw *w, size_t hint)
{
	w->cap = hint < 16 ? 16 : hint;
	w->buf = xmalloc(w->cap);
	w->len = 0;
}

void
jsonw_grow(struct jsonw *w, size_t more)
{
	size_t need = w->len + more + 1;

	if (need <= w->cap)
		return;
	if (need < w->len)
		fatalx("jsonw: size overflow");
	while (w->cap < need)
		w->cap *= 2;
	w->buf = xrealloc(w->buf, w->cap);
}

/* Length of the run at p that goes out unchanged: plain bytes and valid
 * UTF-8 sequences, up to a byte that needs an escape, a bad byte or NUL. */
static size_t
jsonw_run(const unsigned char *p)
{
	const unsigned char *q = p;
	size_t n;

	for (;;) {
		if (jsonw_plain[*q])
			q++;
		else if (*q >= 0x80 && (n = utf8_len((const char *)q)) > 0)
			q += n;
		else
			return (size_t)(q - p);
	}
}

/* One byte that cannot go out as it is: an escape, or U+FFFD for a byte
 * that does not start valid UTF-8. */
static void
jsonw_escape(struct jsonw *w, unsigned char c)
{
	static const char hex[] = "0123456789ABCDEF";
	char e[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
	const char *s = e;
	size_t n = 6;

	switch (c) {
	case '"':  s = "\\\""; n = 2; break;
	case '\\': s = "\\\\"; n = 2; break;
	case '\b': s = "\\b"; n = 2; break;
	case '\f': s = "\\f"; n = 2; break;
	case '\n': s = "\\n"; n = 2; break;
	case '\r': s = "\\r"; n = 2; break;
	case '\t': s = "\\t"; n = 2; break;
	default:
		if (c >= 0x80) {
			s = "\xef\xbf\xbd";
			n = 3;
		}
	}
	jsonw_raw(w, s, n);
}

void
jsonw_str(struct jsonw *w, const char *s)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");

	jsonw_raw(w, "\"", 1);
	for (;;) {
		size_t n = jsonw_run(p);

		if (n > 0)
			jsonw_raw(w, (const char *)p, n);
		p += n;
		if (*p == '\0')
			break;
		jsonw_escape(w, *p++);
	}
	jsonw_raw(w, "\"", 1);
}

/* jansson's exponent: no "+", no leading zeros ("1e+20" -> "1e20",
 * "1e-05" -> "1e-5"). */
static void
jsonw_exp_trim(char *t)
{
	char *e = strchr(t, 'e'), *d, *src;

	if (e == NULL)
		return;
	d = e + 1;
	src = d;
	if (*src == '-')
		d++, src++;
	else if (*src == '+')
		src++;
	while (*src == '0' && src[1] != '\0')
		src++;
	memmove(d, src, strlen(src) + 1);
}

/* An integral real: its digits and ".0" (neg: the sign, -0 included). */
static void
jsonw_int(struct jsonw *w, long long v, int neg)
{
	char t[32], *p = t + sizeof(t);
	unsigned long long u = v < 0 ? -(unsigned long long)v : (unsigned long long)v;

	*--p = '0';
	*--p = '.';
	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0);
	if (neg)
		*--p = '-';
	jsonw_raw(w, p, (size_t)(t + sizeof(t) - p));
}

/* A multiple of 1/JSONW_FRAC that is not integral: 1 when written, 0 when
 * v is not one (the caller prints it). */
static int
jsonw_frac(struct jsonw *w, double v)
{
	double s = v * JSONW_FRAC;	/* exact: a power of two */
	char t[40], *p = t + sizeof(t);
	unsigned long long u, f;
	int i;

	if (!(v > -JSONW_FRAC_MAX && v < JSONW_FRAC_MAX) || s != (double)(long long)s)
		return 0;
	u = s < 0 ? (unsigned long long)-(long long)s : (unsigned long long)s;
	f = (u % JSONW_FRAC) * JSONW_FRAC_5POW;		/* 10 fraction digits */
	for (i = 0; i < JSONW_FRAC_DIGITS && f % 10 == 0; i++)
		f /= 10;				/* %g drops trailing zeros */
	for (; i < JSONW_FRAC_DIGITS; i++, f /= 10)
		*--p = (char)('0' + f % 10);
	*--p = '.';
	u /= JSONW_FRAC;
	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0);
	if (v < 0)
		*--p = '-';
	jsonw_raw(w, p, (size_t)(t + sizeof(t) - p));
	return 1;
}

void
jsonw_real(struct jsonw *w, double v)
{
	char t[40];

	if (!isfinite(v)) {
		jsonw_raw(w, "null", 4);
		return;
	}
	if (v > -JSONW_INT_FAST && v < JSONW_INT_FAST && v == (double)(long long)v) {
		jsonw_int(w, (long long)v, signbit(v) != 0);
		return;
	}
	if (jsonw_frac(w, v))
		return;
	snprintf(t, sizeof(t), "%.17g", v);
	/* A real must read back as a real, not as an integer. */
	if (strpbrk(t, ".e") == NULL)
		strcat(t, ".0");
	jsonw_exp_trim(t);
	jsonw_raw(w, t, strlen(t));
}

char *
jsonw_take(struct jsonw *w, size_t *len)
{
	char *s = w->buf;

	s[w->len] = '\0';
	if (len != NULL)
		*len = w->len;
	w->buf = NULL;
	w->len = w->cap = 0;
	return s;
}

void
jsonw_free(struct jsonw *w)
{
	free(w->buf);
	w->buf = NULL;
	w->len = w->cap = 0;
}
