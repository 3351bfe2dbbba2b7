/*
 * lit.h -- literal prefilter for rules: which literal strings must occur in
 * any match of a pattern, and one pass over a text that finds which of many
 * literals occur in it.
 *
 * Why: 500 rules over a 100 KB message is megabytes of regex scanning; most
 * rules need a word that is simply not in the message. One trigram scan
 * over the text tells which rules can be skipped without running PCRE2.
 * The prefilter is only a necessary condition: a rule whose literal occurs
 * still runs its regex, so answers never change (rules_test proves it by
 * comparing with the prefilter off).
 *
 * Matching is ASCII case-insensitive, which is a superset of both
 * case-sensitive and caseless matching for the bytes we extract: caseless
 * rules never contribute non-ASCII bytes, and a text holding KELVIN SIGN or
 * LONG S (which Unicode folds to 'k' and 's') passes every literal.
 *
 * Public calls: lit_extract, lit_set_new, lit_set_add, lit_set_count,
 *   lit_set_scan, lit_set_free.
 * Thread: a built lit_set is read-only; scans from many threads are fine.
 * Privilege: none (memory only).
 */
#ifndef POSTERN_LIT_H
#define POSTERN_LIT_H

#include <stddef.h>

#define LIT_MIN		3	/* shorter literals are too common to help */
#define LIT_MAX		32	/* longer ones are cut: a prefix is still required */
#define LIT_ALTS	16	/* alternatives in one factor, e.g. (foo|bar|baz) */
#define LIT_CLASS_MAX	4	/* members of a class like [i1!] spelled out */
#define LIT_DEPTH	8	/* group nesting looked into */
#define LIT_FACTORS	4	/* factors kept per pattern (all are required) */

/* "Every match contains one of s[0..n-1]" (lower-cased ASCII). */
struct lit_factor {
	int	 n;
	size_t	 len[LIT_ALTS];
	char	 s[LIT_ALTS][LIT_MAX + 1];
};

/* Every match contains one alternative of each factor. */
struct lit_req {
	int	 n;
	struct lit_factor f[LIT_FACTORS];
};

/* 1 and *r filled when the pattern (under flags, a subset of "imsx") has
 * required literals, else 0 (the rule must always run). */
int		 lit_extract(const char *pattern, const char *flags, struct lit_req *r);

struct lit_set;

struct lit_set	*lit_set_new(void);
void		 lit_set_free(struct lit_set *);
/* Add a literal (LIT_MIN..LIT_MAX bytes); its index. */
size_t		 lit_set_add(struct lit_set *, const char *s, size_t len);
size_t		 lit_set_count(const struct lit_set *);
/* found[i] = 1 for each literal i in text; found holds lit_set_count()
 * bytes, zeroed by the caller. */
void		 lit_set_scan(const struct lit_set *, const char *text, size_t len,
		    unsigned char *found);

#endif
