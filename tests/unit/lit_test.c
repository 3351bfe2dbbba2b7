/* lit_test.c -- rules/lit.c: what literals a pattern requires, and the
 * scanner finding them. */
#include "rules/lit.h"
#include "t.h"
#include "lib/util.h"

/* The factors as "{a|b}{c}", or "-" when none. */
static const char *
req(const char *pattern, const char *flags)
{
	static char out[512];
	struct lit_req r;
	size_t o = 0;

	if (!lit_extract(pattern, flags, &r))
		return "-";
	for (int j = 0; j < r.n; j++) {
		o += (size_t)snprintf(out + o, sizeof(out) - o, "{");
		for (int k = 0; k < r.f[j].n; k++)
			o += (size_t)snprintf(out + o, sizeof(out) - o, "%s%.*s", k ? "|" : "",
			    (int)r.f[j].len[k], r.f[j].s[k]);
		o += (size_t)snprintf(out + o, sizeof(out) - o, "}");
	}
	return out;
}

T_CASE(extract)
{
	T_EQ_STR(req("\\bFree Money\\b", "i"), "{free money}");
	T_EQ_STR(req("Café crème", ""), "{café crème}");
	T_EQ_STR(req("Café crème", "i"), "{caf}{ cr}");	/* caseless non-ASCII left out */
	T_EQ_STR(req("\\bweekly[- ]?(now|12off|deal12)\\b", "i"), "{weekly}{now|12off|deal12}");
	T_EQ_STR(req("(?:spam12|weekly-12|x12y)", ""), "{spam12|weekly-12|x12y}");
	T_EQ_STR(req("abc|defg", ""), "{abc|defg}");
	T_EQ_STR(req("ab|defg", ""), "-");		/* "ab" is too short */
	T_EQ_STR(req("x(abc)?yzw", ""), "{yzw}");	/* optional group skipped */
	T_EQ_STR(req("abcd?e", ""), "{abc}");		/* optional 'd' ends the run */
	T_EQ_STR(req("abcd+e", ""), "{abcd}");
	T_EQ_STR(req("a\\x41bc\\d{3}def", ""), "{def}");
	T_EQ_STR(req("foo\\.bar", ""), "{foo.bar}");
	T_EQ_STR(req("(?i)foo", ""), "-");		/* inline options: give up */
	T_EQ_STR(req("foo bar", "x"), "-");
	T_EQ_STR(req("\\Qa.b\\E", ""), "-");
	T_EQ_STR(req("(*UTF)abc", ""), "-");
	T_EQ_STR(req("[abc]+", ""), "-");
	T_EQ_STR(req("(?=abc)def", ""), "{def}");	/* lookahead consumes nothing */
	/* "\c(" is one character (control-H), so the '|' is top-level and
	 * its empty alternative matches anywhere (found by fuzz_lit) */
	T_EQ_STR(req("\\c(abc|", ""), "-");
	T_EQ_STR(req("x\\c(abcd", ""), "{abcd}");
	T_EQ_STR(req("[\\c]abc]def", ""), "{def}");	/* "\c]" inside the class */
	/* subroutine calls are no text (fuzz_lit: "<1>cdef" was required) */
	T_EQ_STR(req("(ab)\\g<1>cdef", ""), "{cdef}");
	T_EQ_STR(req("(ab)\\g'1'cdef", ""), "{cdef}");
	/* (*ACCEPT) ends the match: nothing after it is required (fuzz_lit) */
	T_EQ_STR(req("(abc|(*ACCEPT)def) xyzw", ""), "-");
	/* a \E outside \Q is nothing: {0} applies to the group (fuzz_lit) */
	T_EQ_STR(req("(?:abc)\\E{0}def", ""), "-");
	T_EQ_STR(req("abc{2}", ""), "{abc}");
	T_EQ_STR(req("ab{0,2}cde", ""), "{cde}");
	T_EQ_STR(req("\\b(v[i1]agra|cialis)\\b", "i"), "{viagra|v1agra|cialis}");
	/* small classes are spelled out; anything else ends the run */
	T_EQ_STR(req("v[i1!|]agra", "i"), "{viagra|v1agra|v!agra|v|agra}");
	T_EQ_STR(req("c[i1]al[i1]s", ""), "{cialis|cial1s|c1alis|c1al1s}");
	T_EQ_STR(req("ab[xy]?cde", ""), "{cde}");
	T_EQ_STR(req("abc[de]+fgh", ""), "{abcd|abce}{fgh}");
	T_EQ_STR(req("[^a]bcd", ""), "{bcd}");
	T_EQ_STR(req("[a-c]+", ""), "-");
	T_EQ_STR(req("x[a-c]yz", ""), "-");
	T_EQ_STR(req("[-_]abc", ""), "{-abc|_abc}");
	T_EQ_STR(req("[Aa][Bb][Cc]", "i"), "{abc}");
	/* a run that filled up stays contiguous: nothing after the gap */
	T_EQ_STR(req("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaéxyz", ""), "{aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa}");
	T_EQ_STR(req("\\1abc", ""), "{abc}");
	T_EQ_STR(req("x{", ""), "-");
}

T_CASE(scan)
{
	struct lit_set *ls = lit_set_new();
	unsigned char found[4] = { 0 };
	const char *text = "Hello WORLD, this is a Test of weekly-12 offers";

	lit_set_add(ls, "world", 5);
	lit_set_add(ls, "weekly-12", 9);
	lit_set_add(ls, "missing", 7);
	lit_set_add(ls, "offers", 6);
	lit_set_scan(ls, text, strlen(text), found);
	T_EQ_INT(found[0], 1);
	T_EQ_INT(found[1], 1);
	T_EQ_INT(found[2], 0);
	T_EQ_INT(found[3], 1);	/* at the very end */
	memset(found, 0, sizeof(found));
	lit_set_scan(ls, "wor", 3, found);
	T_EQ_INT(found[0], 0);
	T_EQ_INT(lit_set_count(ls), 4);
	lit_set_free(ls);
}

/* The filter folds by setting bit 5, which also pairs '@' with '`', '['
 * with '{' and so on; only the exact compare may decide. A literal that
 * is the whole text, or ends it, is read without a fourth byte. */
T_CASE(scan_loose_filter)
{
	struct lit_set *ls = lit_set_new();
	unsigned char found[3] = { 0 };

	lit_set_add(ls, "ab@", 3);
	lit_set_add(ls, "x[1]", 4);
	lit_set_add(ls, "zzz", 3);
	lit_set_scan(ls, "--AB`--X{1}--", 13, found);
	T_EQ_INT(found[0], 0);
	T_EQ_INT(found[1], 0);
	lit_set_scan(ls, "--X[1]--aB@", 11, found);
	T_EQ_INT(found[0], 1);
	T_EQ_INT(found[1], 1);
	T_EQ_INT(found[2], 0);
	char *end = xmalloc(3);		/* no byte after it: ASan sees an overread */
	memcpy(end, "ZZZ", 3);
	lit_set_scan(ls, end, 3, found);
	T_EQ_INT(found[2], 1);
	free(end);
	lit_set_free(ls);
}

/* A few literals with punctuation in them are found by their pivot
 * bytes; the same literals in a set that needs the filter (one literal
 * has no punctuation) must be found in exactly the same texts. */
T_CASE(scan_pivots_agree_with_filter)
{
	static const char *lits[] = { "font-size:", "display:", "a:b", "x-y" };
	static const char *parts[] = { "Font-Size:", "DISPLAY:", "A:B", "x-Y", "font-size",
	    "display;", ":", "-", "hello ", "a:", ":b", "\r\n" };
	struct lit_set *piv = lit_set_new(), *fil = lit_set_new();
	unsigned int seed = 7;

	for (size_t i = 0; i < ARRAY_SIZE(lits); i++) {
		lit_set_add(piv, lits[i], strlen(lits[i]));
		lit_set_add(fil, lits[i], strlen(lits[i]));
	}
	lit_set_add(fil, "plain", 5);
	for (int round = 0; round < 2000; round++) {
		char text[256];
		size_t n = 0;
		int k = rand_r(&seed) % 8;
		unsigned char f1[5] = { 0 }, f2[5] = { 0 };
		for (int j = 0; j < k; j++) {
			const char *p = parts[rand_r(&seed) % ARRAY_SIZE(parts)];
			memcpy(text + n, p, strlen(p));
			n += strlen(p);
		}
		/* an exact-size heap copy: a read past the end is ASan's */
		char *t = xmalloc(n + 1);
		memcpy(t, text, n);
		lit_set_scan(piv, t, n, f1);
		lit_set_scan(fil, t, n, f2);
		free(t);
		for (size_t i = 0; i < ARRAY_SIZE(lits); i++)
			if (f1[i] != f2[i]) {
				T_EQ_INT(f1[i], f2[i]);
				break;
			}
	}
	unsigned char f[4] = { 0 };
	lit_set_scan(piv, "display:none; FONT-SIZE :0", 26, f);
	T_EQ_INT(f[0], 0);	/* a space before the colon */
	T_EQ_INT(f[1], 1);
	lit_set_scan(piv, "font-size:0", 11, f);
	T_EQ_INT(f[0], 1);
	lit_set_free(piv);
	lit_set_free(fil);
}

int
main(void)
{
	T_RUN(extract);
	T_RUN(scan);
	T_RUN(scan_loose_filter);
	T_RUN(scan_pivots_agree_with_filter);
	return T_END();
}
