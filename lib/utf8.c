/*
 * utf8.c -- see utf8.h. The lead byte fixes the length and the range of
 * the second byte (where overlongs, surrogates and code points past
 * U+10FFFF show); the other bytes are plain continuations.
 */
#include "lib/utf8.h"
#include "lib/buf.h"

#include <stdint.h>
#include <string.h>

#define UTF8_FFFD	"\xef\xbf\xbd"

size_t
utf8_seq(const char *s, size_t left)
{
	const unsigned char *p = (const unsigned char *)s;
	unsigned char lo = 0x80, hi = 0xbf;	/* the second byte's range */
	size_t n;

	if (left == 0)
		return 0;
	if (p[0] < 0x80)
		return 1;
	if (p[0] < 0xc2 || p[0] > 0xf4)		/* continuation, C0/C1, F5-FF */
		return 0;
	if (p[0] < 0xe0)
		n = 2;
	else if (p[0] < 0xf0) {
		n = 3;
		if (p[0] == 0xe0)
			lo = 0xa0;		/* overlong */
		else if (p[0] == 0xed)
			hi = 0x9f;		/* surrogates D800-DFFF */
	} else {
		n = 4;
		if (p[0] == 0xf0)
			lo = 0x90;		/* overlong */
		else if (p[0] == 0xf4)
			hi = 0x8f;		/* past U+10FFFF */
	}
	if (left < n)
		return 0;
	/* In order, so a NUL (never a continuation byte) stops the reads. */
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

size_t
utf8_len(const char *s)
{
	return utf8_seq(s, SIZE_MAX);
}

int
utf8_valid(const char *s, size_t n)
{
	size_t k;

	for (; n > 0; s += k, n -= k)
		if ((k = utf8_seq(s, n)) == 0)
			return 0;
	return 1;
}

char *
utf8_mend(const char *s)
{
	struct buf b = { 0 };
	const char *p = s;
	size_t k;

	/* The common case, valid text, costs one pass and no copy. */
	while (*p != '\0' && (k = utf8_len(p)) > 0)
		p += k;
	if (*p == '\0')
		return NULL;
	buf_add(&b, s, (size_t)(p - s));
	for (; *p != '\0'; p += k ? k : 1) {
		k = utf8_len(p);
		buf_add(&b, k ? p : UTF8_FFFD, k ? k : 3);
	}
	return buf_take(&b);
}
