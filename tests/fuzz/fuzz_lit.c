/* fuzz_lit.c -- the rules' literal prefilter (rules/lit.h) against PCRE2
 * itself: whenever a pattern matches a text, the literals lit_extract()
 * says every match needs must all be found in that text by
 * lit_set_scan(). A prefilter that says "absent" for a text the pattern
 * matches would skip the rule without a word: spam let through, no crash
 * to show for it. So this target is a difference test, not a crash hunt.
 *
 * Input: one byte of flags (bits: i, m, s, x), the pattern up to the
 * first newline, then the text. The pattern compiles as rules/rules.c
 * compiles a rule's (UTF, invalid UTF matched, no \C). */
#include "fuzz.h"
#include "rules/lit.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

/* The flag letters a knob byte turns on, as a rule's flags field. */
static void
fuzz_flags(unsigned knob, char *flags, uint32_t *opt)
{
	static const struct { char c; uint32_t o; } f[] = {
		{ 'i', PCRE2_CASELESS }, { 'm', PCRE2_MULTILINE },
		{ 's', PCRE2_DOTALL }, { 'x', PCRE2_EXTENDED },
	};
	int n = 0;

	*opt = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | PCRE2_NEVER_BACKSLASH_C;
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		if (knob & (1u << i)) {
			flags[n++] = f[i].c;
			*opt |= f[i].o;
		}
	flags[n] = '\0';
}

/* Does the text hold an alternative of every factor of r? */
static int
fuzz_prefilter(const struct lit_req *r, const char *text, size_t len)
{
	struct lit_set *ls = lit_set_new();
	unsigned char found[LIT_FACTORS * LIT_ALTS] = { 0 };
	int start[LIT_FACTORS + 1], k = 0, pass = 1;

	for (int j = 0; j < r->n; j++) {
		start[j] = k;
		for (int i = 0; i < r->f[j].n; i++, k++) {
			FUZZ_ASSERT(r->f[j].len[i] >= LIT_MIN && r->f[j].len[i] <= LIT_MAX);
			lit_set_add(ls, r->f[j].s[i], r->f[j].len[i]);
		}
	}
	start[r->n] = k;
	lit_set_scan(ls, text, len, found);
	for (int j = 0; j < r->n && pass; j++) {
		int any = 0;
		for (int i = start[j]; i < start[j + 1]; i++)
			any |= found[i];
		pass = any;
	}
	lit_set_free(ls);
	return pass;
}

/* 1 when the pattern matches the text, 0 when it does not, -1 when PCRE2
 * gave up (its limits) or the pattern does not compile. */
static int
fuzz_pcre(const char *pat, size_t plen, uint32_t opt, const char *text, size_t len)
{
	pcre2_code *c;
	pcre2_match_data *md;
	pcre2_match_context *mc;
	PCRE2_SIZE eoff;
	int ec, rc;

	c = pcre2_compile((PCRE2_SPTR)pat, plen, opt, &ec, &eoff, NULL);
	if (c == NULL)
		return -1;
	md = pcre2_match_data_create_from_pattern(c, NULL);
	mc = pcre2_match_context_create(NULL);
	pcre2_set_match_limit(mc, 10000);
	pcre2_set_depth_limit(mc, 1000);
	rc = pcre2_match(c, (PCRE2_SPTR)text, len, 0, 0, md, mc);
	pcre2_match_context_free(mc);
	pcre2_match_data_free(md);
	pcre2_code_free(c);
	return rc >= 0 ? 1 : rc == PCRE2_ERROR_NOMATCH ? 0 : -1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	char flags[8];
	uint32_t opt;
	const char *nl;
	char *pat;
	size_t plen;
	struct lit_req r;

	fuzz_flags(fuzz_byte(&d, &n), flags, &opt);
	nl = memchr(d, '\n', n);
	if (nl == NULL)
		return 0;
	plen = (size_t)(nl - (const char *)d);
	pat = fuzz_str(d, plen);	/* lit_extract reads a C string */
	if (strlen(pat) == plen && lit_extract(pat, flags, &r) &&
	    fuzz_pcre(pat, plen, opt, nl + 1, n - plen - 1) == 1)
		FUZZ_ASSERT(fuzz_prefilter(&r, nl + 1, n - plen - 1));
	free(pat);
	return 0;
}
