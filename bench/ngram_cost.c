/*
 * ngram_cost.c -- what the character Markov model of docs/bayes.md's
 * round 5 would cost per message: normalise the first K bytes of a 10 KB
 * text, hash each position's 5-gram and 4-byte context, read both
 * classes' counts from a table of 2^B keyless buckets, and sum the log
 * ratios. A prototype's cost, not the check's: nothing in policy/ does
 * this.
 *
 *   ngram_cost [K [B]]        (3000 and 22 by default)
 *
 * Prints CPU ms per message; under `valgrind --tool=callgrind
 * --cache-sim=yes` the instructions and cache misses of ngram_score().
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#define ROUNDS	2000
#define TEXT	(10 * 1024)

struct cnt {
	uint16_t spam, ham;
};

static struct cnt *tab;
static uint64_t mask;

static int
word_byte(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	    c >= 0x80 || c == '$' || c == '\'' || c == '-' || c == '.' || c == '_';
}

/* The mean log ratio of the first k bytes of t (as btok_dump's ngram=5
 * normalises them); buf and h are the caller's scratch. */
static double __attribute__((noinline))
ngram_score(const char *t, size_t len, size_t k, char *buf, uint64_t *h)
{
	size_t n = 0, np;
	double sum = 0, a = 1, av = 1.0 / 1000;

	for (size_t i = 0; i < len && n < k; i++) {
		unsigned char c = (unsigned char)t[i];
		if (!word_byte(c)) {
			if (n > 0 && buf[n - 1] != ' ')
				buf[n++] = ' ';
		} else
			buf[n++] = (char)(c >= 'A' && c <= 'Z' ? c | 0x20 : c);
	}
	np = n >= 5 ? n - 4 : 0;
	for (size_t i = 0; i < np; i++) {	/* hashes first, so the reads can be prefetched */
		h[2 * i] = XXH3_64bits_withSeed(buf + i, 5, 21) & mask;
		h[2 * i + 1] = XXH3_64bits_withSeed(buf + i, 4, 24) & mask;
		__builtin_prefetch(&tab[h[2 * i]]);
		__builtin_prefetch(&tab[h[2 * i + 1]]);
	}
	for (size_t i = 0; i < np; i++) {
		struct cnt g = tab[h[2 * i]], c = tab[h[2 * i + 1]];
		sum += log(((g.spam + av) * (c.ham + a)) / ((c.spam + a) * (g.ham + av)));
	}
	return np ? sum / (double)np : 0;
}

int
main(int argc, char **argv)
{
	size_t k = argc > 1 ? strtoul(argv[1], NULL, 10) : 3000, len = 0;
	int bits = argc > 2 ? atoi(argv[2]) : 22;
	unsigned long r = 42;
	char *text = malloc(TEXT + 64), *buf = malloc(k + 2);
	uint64_t *h = malloc(2 * (k + 2) * sizeof(*h));
	struct timespec t0, t1;
	double s = 0;

	while (len < TEXT) {
		r = r * 6364136223846793005UL + 1442695040888963407UL;
		len += (size_t)sprintf(text + len, "W%lu%s", (r >> 33) % 20000,
		    (r >> 20) % 12 ? " " : ".\r\n");
	}
	mask = (1ULL << bits) - 1;
	tab = malloc((mask + 1) * sizeof(*tab));
	for (uint64_t i = 0; i <= mask; i++) {	/* counts as a learned table has them */
		r = r * 6364136223846793005UL + 1442695040888963407UL;
		tab[i] = (struct cnt){ (uint16_t)(r >> 60), (uint16_t)(r >> 56 & 15) };
	}
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
	for (int i = 0; i < ROUNDS; i++)
		s += ngram_score(text, len, k, buf, h);
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
	printf("ngram_cost: first %zu bytes of %zu, 2^%d buckets (%llu MB): %.3f ms CPU per"
	    " message (mean %.3f)\n", k, len, bits, (unsigned long long)((mask + 1) *
	    sizeof(*tab) >> 20), ((double)(t1.tv_sec - t0.tv_sec) * 1e3 +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e6) / ROUNDS, s / ROUNDS);
	free(tab);
	free(text);
	free(buf);
	free(h);
	return 0;
}
