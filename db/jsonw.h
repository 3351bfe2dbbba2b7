/*
 * jsonw.h -- a one-pass JSON text writer into one growing buffer, for the
 * recipient and check columns db/ stores as JSON text (the verdict row's
 * "rcpts" and "checks", written once per message; the quarantine's).
 * jansson stays the library for parsing and for the API; building a json_t
 * tree and dumping it cost ~80k instructions per row here (measured with
 * callgrind); the whole row, written with this, costs ~5k.
 *
 * The text is what json_dumps(..., JSON_COMPACT) prints for the same
 * values: strings escaped per RFC 8259 section 7 (", \, control characters,
 * with \b \f \n \r \t where they exist and \u00XX otherwise; "/" and DEL
 * as they are), reals as %.17g with ".0" added to integral values and the
 * exponent without "+" or leading zeros.
 *
 * Text that is not UTF-8 (a raw 8-bit Subject, a stray byte in HELO) keeps
 * its place: each byte that does not start a valid sequence becomes U+FFFD,
 * as web/rowjson.c does for the plain text columns it puts in the API;
 * both judge a sequence with lib/utf8.h's utf8_len().
 *
 * Public calls: jsonw_init, jsonw_raw (JSONW_LIT), jsonw_str, jsonw_real,
 * jsonw_take, jsonw_free; jsonw_grow for jsonw_raw.
 * Ownership: the caller owns the struct; buf is xmalloc'd and belongs to
 * it until jsonw_take() hands it over (or jsonw_free() frees it).
 * Thread: no shared state; one writer per thread at a time.
 */
#ifndef POSTERN_JSONW_H
#define POSTERN_JSONW_H

#include <stddef.h>
#include <string.h>

struct jsonw {
	char	*buf;
	size_t	 len, cap;	/* len < cap: room for jsonw_take's NUL */
};

/* An empty buffer with room for about hint bytes. */
void	 jsonw_init(struct jsonw *, size_t hint);
/* Make room for n more bytes (and the final NUL). */
void	 jsonw_grow(struct jsonw *, size_t n);

/* Append n bytes as they are (they may hold NULs: the caller's framing).
 * Inline: a verdict row makes ~80 of these calls. */
static inline void
jsonw_raw(struct jsonw *w, const char *s, size_t n)
{
	if (n >= w->cap - w->len)
		jsonw_grow(w, n);
	memcpy(w->buf + w->len, s, n);
	w->len += n;
}

/* Append a string literal (its length known at compile time). */
#define JSONW_LIT(w, lit)	jsonw_raw((w), "" lit, sizeof(lit) - 1)
/* Append s as a JSON string, quotes included; NULL writes "". */
void	 jsonw_str(struct jsonw *, const char *s);
/* Append a number as jansson prints a real; NaN and infinities, which
 * JSON cannot carry, as null. Scores (integral, or multiples of 1/1024
 * such as -0.5) are written without printf. */
void	 jsonw_real(struct jsonw *, double);
/* The text (xmalloc'd, NUL-terminated; *len its length when len is not
 * NULL); the struct is empty afterwards. */
char	*jsonw_take(struct jsonw *, size_t *len);
void	 jsonw_free(struct jsonw *);

#endif
