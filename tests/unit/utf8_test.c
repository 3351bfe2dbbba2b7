/*
 * utf8_test.c -- lib/utf8.h: one sequence's length within a bound or up to
 * a NUL, whole-range validity, and the mend that turns each bad byte into
 * U+FFFD. Malformed input of every kind RFC 3629 section 4 rules out
 * (overlong forms, surrogates, past U+10FFFF, stray and missing
 * continuation bytes, sequences cut short by the bound or by a NUL), and
 * a reference decoder over every 1-3 byte string. Buffers are exactly as
 * long as the bound, so the ASan build proves nothing past it is read.
 */
#include "t.h"
#include "lib/utf8.h"
#include "lib/util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FFFD	"\xef\xbf\xbd"

/* utf8_seq on a heap copy of exactly left bytes. */
static size_t
seq_exact(const char *bytes, size_t left)
{
	char *p = xmalloc(left ? left : 1);
	size_t n;

	memcpy(p, bytes, left);
	n = utf8_seq(p, left);
	free(p);
	return n;
}

T_CASE(seq_well_formed_and_edges)
{
	static const struct { const char *s; size_t left, want; } ok[] = {
		{ "A", 1, 1 }, { "\0", 1, 1 }, { "\x7f", 1, 1 },
		{ "\xc2\x80", 2, 2 },			/* U+0080, the first two-byte */
		{ "\xdf\xbf", 2, 2 },
		{ "\xe0\xa0\x80", 3, 3 },		/* U+0800 */
		{ "\xed\x9f\xbf", 3, 3 },		/* U+D7FF, below the surrogates */
		{ "\xee\x80\x80", 3, 3 },		/* U+E000, above them */
		{ "\xef\xbf\xbf", 3, 3 },
		{ "\xf0\x90\x80\x80", 4, 4 },		/* U+10000 */
		{ "\xf4\x8f\xbf\xbf", 4, 4 },		/* U+10FFFF, the last */
		{ "\xc3\xa9tail", 6, 2 },		/* only the sequence counts */
	};

	for (size_t i = 0; i < ARRAY_SIZE(ok); i++)
		T_EQ_INT(seq_exact(ok[i].s, ok[i].left), ok[i].want);
	T_EQ_INT(seq_exact("", 0), 0);			/* nothing left */
}

T_CASE(seq_malformed_is_zero)
{
	static const struct { const char *s; size_t left; } bad[] = {
		/* overlong: a shorter form exists */
		{ "\xc0\x80", 2 },			/* NUL in two bytes */
		{ "\xc0\xaf", 2 }, { "\xc1\xbf", 2 },
		{ "\xe0\x80\xaf", 3 }, { "\xe0\x9f\xbf", 3 },
		{ "\xf0\x80\x80\xaf", 4 }, { "\xf0\x8f\xbf\xbf", 4 },
		/* UTF-16 surrogates */
		{ "\xed\xa0\x80", 3 }, { "\xed\xad\xbf", 3 }, { "\xed\xbf\xbf", 3 },
		/* past U+10FFFF, and leads that never start anything */
		{ "\xf4\x90\x80\x80", 4 }, { "\xf5\x80\x80\x80", 4 },
		{ "\xf7\xbf\xbf\xbf", 4 }, { "\xfe", 1 }, { "\xff", 1 },
		/* stray continuation bytes */
		{ "\x80", 1 }, { "\xbf\x80", 2 },
		/* a continuation missing in the middle */
		{ "\xc3\x28", 2 }, { "\xe2\x28\xa1", 3 }, { "\xe2\x82\x28", 3 },
		{ "\xf0\x9f\x98\x28", 4 }, { "\xf0\x9f\xc3\xa9", 4 },
		/* truncated by the bound */
		{ "\xc3\xa9", 1 }, { "\xe2\x82\xac", 2 }, { "\xf0\x9f\x98\x80", 3 },
		{ "\xf0\x9f\x98\x80", 1 },
		/* truncated by a NUL inside the bound */
		{ "\xc3\0", 2 }, { "\xe2\x82\0", 3 }, { "\xe2\0\xac", 3 },
		{ "\xf0\x9f\0\x80", 4 },
	};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		if (seq_exact(bad[i].s, bad[i].left) != 0) {
			fprintf(stderr, "  case %zu accepted\n", i);
			T_ASSERT(0);
		}
}

/* Without a bound the NUL ends the string: a sequence it cuts short is
 * 0, and no byte after it is read (the buffer ends there). */
T_CASE(len_stops_at_nul)
{
	static const char *const cut[] = { "\xc3", "\xe2\x82", "\xf0\x9f\x98", "\xf4" };
	char *p;

	T_EQ_INT(utf8_len(""), 1);
	T_EQ_INT(utf8_len("\xe2\x82\xac"), 3);
	for (size_t i = 0; i < ARRAY_SIZE(cut); i++) {
		p = xstrdup(cut[i]);
		T_EQ_INT(utf8_len(p), 0);
		free(p);
	}
	/* a continuation byte after the NUL does not complete the sequence */
	T_EQ_INT(utf8_len("\xc3\0\xa9"), 0);
	T_EQ_INT(utf8_len("\xe2\x82\0\xac"), 0);
}

T_CASE(valid_ranges)
{
	T_ASSERT(utf8_valid("", 0));
	T_ASSERT(utf8_valid("a\0b", 3));		/* a NUL is a character */
	T_ASSERT(utf8_valid("j\xc3\xb6rg \xe7\x94\xa8 \xf0\x9f\x98\x80", 14));
	T_ASSERT(utf8_valid("\xf0\x9f\x98\x80", 4));
	T_ASSERT(!utf8_valid("\xf0\x9f\x98\x80", 3));	/* cut by n */
	T_ASSERT(!utf8_valid("ok\xed\xa0\x80", 5));	/* a surrogate at the end */
	T_ASSERT(!utf8_valid("\xc0\x80ok", 4));		/* an overlong at the start */
	T_ASSERT(!utf8_valid("a\0\x80", 3));		/* stray byte after a NUL */
}

/* The definition, decoded the long way: the code point, then its range. */
static int
reference_valid(const unsigned char *p, size_t n)
{
	const unsigned char *e = p + n;

	while (p < e) {
		unsigned c = *p, need, min, cp;

		if (c < 0x80) { p++; continue; }
		if (c >= 0xc0 && c <= 0xdf) { need = 1; min = 0x80; cp = c & 0x1f; }
		else if (c >= 0xe0 && c <= 0xef) { need = 2; min = 0x800; cp = c & 0x0f; }
		else if (c >= 0xf0 && c <= 0xf7) { need = 3; min = 0x10000; cp = c & 0x07; }
		else return 0;
		if ((size_t)(e - p) <= need)
			return 0;
		for (unsigned i = 1; i <= need; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (p[i] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		p += need + 1;
	}
	return 1;
}

/* Every string of one, two and three bytes; four-byte ones with each
 * lead and second byte and edge values after. */
T_CASE(agrees_with_reference_decoder)
{
	static const unsigned char tail[] = { 0x00, 0x41, 0x7f, 0x80, 0x8f,
	    0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xff };
	unsigned char s[4];
	long bad = 0;

	for (unsigned v = 0; v < (1u << 24); v++) {
		s[0] = (unsigned char)(v >> 16);
		s[1] = (unsigned char)(v >> 8);
		s[2] = (unsigned char)v;
		/* the first n bytes: each 1- and 2-byte prefix once */
		for (size_t n = 1; n <= 3; n++)
			if ((v & ((1u << (8 * (3 - n))) - 1)) == 0)
				bad += utf8_valid((char *)s, n) !=
				    reference_valid(s, n);
	}
	for (unsigned a = 0xf0; a <= 0xff; a++)
		for (unsigned b = 0; b < 256; b++)
			for (size_t c = 0; c < sizeof(tail); c++)
				for (size_t d = 0; d < sizeof(tail); d++) {
					s[0] = (unsigned char)a;
					s[1] = (unsigned char)b;
					s[2] = tail[c];
					s[3] = tail[d];
					bad += utf8_valid((char *)s, 4) !=
					    reference_valid(s, 4);
				}
	T_EQ_INT(bad, 0);
}

T_CASE(mend_replaces_each_bad_byte)
{
	static const struct { const char *in, *out; } cases[] = {
		{ "caf\xe9", "caf" FFFD },
		{ "\xc0\x80", FFFD FFFD },			/* overlong NUL */
		{ "\xe0\x80\xaf", FFFD FFFD FFFD },		/* overlong "/" */
		{ "\xed\xa0\x80x", FFFD FFFD FFFD "x" },	/* surrogate */
		{ "\xf4\x90\x80\x80", FFFD FFFD FFFD FFFD },	/* past U+10FFFF */
		{ "x\xe2\x82", "x" FFFD FFFD },		/* cut short by the NUL */
		{ "\xf0\x9f\x98", FFFD FFFD FFFD },
		{ "\xe2\x82y\xc3", FFFD FFFD "y" FFFD },
		{ "\x80\xbf", FFFD FFFD },			/* stray continuations */
		{ "ok \xc3\xa9 \xfe ok", "ok \xc3\xa9 " FFFD " ok" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *m = utf8_mend(cases[i].in);

		T_EQ_STR(m, cases[i].out);
		if (m != NULL) {
			T_ASSERT(utf8_valid(m, strlen(m)));
			T_ASSERT(utf8_mend(m) == NULL);	/* mended once is enough */
		}
		free(m);
	}
}

/* Well-formed text is not copied: NULL says "use it as it is". */
T_CASE(mend_keeps_valid_text)
{
	T_ASSERT(utf8_mend("") == NULL);
	T_ASSERT(utf8_mend("plain ascii") == NULL);
	T_ASSERT(utf8_mend("caf\xc3\xa9 \xf0\x9f\x98\x80 " FFFD) == NULL);
}

int
main(void)
{
	T_RUN(seq_well_formed_and_edges);
	T_RUN(seq_malformed_is_zero);
	T_RUN(len_stops_at_nul);
	T_RUN(valid_ranges);
	T_RUN(agrees_with_reference_decoder);
	T_RUN(mend_replaces_each_bad_byte);
	T_RUN(mend_keeps_valid_text);
	return T_END();
}
