/*
 * fuzz.h -- what the libFuzzer targets in tests/fuzz/ share: a
 * NUL-terminated copy of the input, a byte reader for the knobs some
 * targets take from the front of the input, and an invariant check that
 * aborts (libFuzzer then saves the input as a crash).
 * Thread: libFuzzer calls each target from one thread.
 */
#ifndef POSTERN_FUZZ_H
#define POSTERN_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int	 LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* A parser broke a promise its header makes: report and crash. */
#define FUZZ_ASSERT(c) do {						\
	if (!(c)) {							\
		fprintf(stderr, "%s:%d: invariant failed: %s\n",	\
		    __FILE__, __LINE__, #c);				\
		abort();						\
	}								\
} while (0)

/* The input as a C string (xmalloc'd; NULs inside end it early). */
static inline char *
fuzz_str(const uint8_t *d, size_t n)
{
	char *s = malloc(n + 1);

	if (s == NULL)
		abort();
	memcpy(s, d, n);
	s[n] = '\0';
	return s;
}

/* Take one knob byte off the front; 0 when the input is used up. */
static inline unsigned
fuzz_byte(const uint8_t **d, size_t *n)
{
	unsigned b;

	if (*n == 0)
		return 0;
	b = **d;
	(*d)++;
	(*n)--;
	return b;
}

#endif
