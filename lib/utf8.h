/*
 * utf8.h -- the one UTF-8 validator (RFC 3629 section 4) and the one
 * mend: the address grammar (SMTPUTF8 paths), the JSON writer and the
 * API's strings, the PostgreSQL engine's text and the digests all judge
 * a byte sequence here.
 *
 * Well-formed means what RFC 3629's table allows: no stray continuation
 * byte, no C0/C1/F5-FF lead, no overlong form, no UTF-16 surrogate
 * (U+D800-DFFF), nothing past U+10FFFF, no sequence cut short. A NUL is
 * a one-byte character (ASCII); C strings end at it.
 *
 * Public calls: utf8_seq, utf8_len, utf8_valid, utf8_mend.
 * Ownership: utf8_mend's copy is xmalloc'd, the caller frees it.
 * Thread: no shared state.
 */
#ifndef POSTERN_UTF8_H
#define POSTERN_UTF8_H

#include <stddef.h>

/* Length (1-4) of the well-formed sequence at s within its first left
 * bytes, or 0 when none starts there (left 0 included). Reads no byte at
 * or past s + left, and none past a NUL (never a continuation byte). */
size_t	 utf8_seq(const char *s, size_t left);
/* utf8_seq for a NUL-terminated s whose length the caller does not
 * know: a sequence cut short by the NUL is 0; "" is 1 (the NUL). */
size_t	 utf8_len(const char *s);
/* Is s[0..n) well-formed UTF-8 throughout? */
int	 utf8_valid(const char *s, size_t n);
/* NULL when the NUL-terminated s is well-formed already; else a copy in
 * which each byte that starts no valid sequence is U+FFFD (EF BF BD), as
 * browsers and PostgreSQL's own conversions replace it. */
char	*utf8_mend(const char *s);

#endif
