/* fuzz_rules.c -- the rule text format importer (rules/rules.h). Every
 * rule a text parses to must format back to a line that parses to the same
 * rule; the first few are also checked and compiled (PCRE2, with the
 * match limits of a real set) and run against the input as a message. */
#include "fuzz.h"
#include "rules/rules.h"

#include <math.h>

static int
str_eq(const char *a, const char *b)
{
	return (a == NULL ? "" : a)[0] == (b == NULL ? "" : b)[0] &&
	    strcmp(a == NULL ? "" : a, b == NULL ? "" : b) == 0;
}

static void
round_trip(const struct rule_def *r)
{
	char err[256];
	char *line = rule_line_format(r);
	struct rule_def r2;

	memset(&r2, 0, sizeof(r2));
	FUZZ_ASSERT(rule_line_parse(line, &r2, err, sizeof(err)) == 1);
	FUZZ_ASSERT(str_eq(r->name, r2.name) && str_eq(r->target, r2.target));
	FUZZ_ASSERT(str_eq(r->pattern, r2.pattern) && str_eq(r->flags, r2.flags));
	FUZZ_ASSERT(str_eq(r->action, r2.action) && r->enabled == r2.enabled);
	FUZZ_ASSERT(r->score == r2.score || (isnan(r->score) && isnan(r2.score)));
	rule_def_clear(&r2);
	free(line);
}

/* Compile and run one rule against the input as a message. */
static void
try_rule(const struct rule_def *r, const char *raw, size_t len)
{
	struct rule_opts o = { .match_limit = 10000, .depth_limit = 1000 };
	struct rule_test_result res;
	char err[256];
	int m = rule_test(r, raw, len, NULL, &o, &res, err, sizeof(err));

	FUZZ_ASSERT(m >= -1 && m <= 1);
	FUZZ_ASSERT((rule_def_check(r, err, sizeof(err)) == 0) == (m >= 0));
	if (m == 1)
		FUZZ_ASSERT(strlen(res.excerpt) < sizeof(res.excerpt));
}

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	struct rule_def *defs = NULL;
	size_t nd = 0;
	char err[256];

	if (rule_text_parse((const char *)d, n, &defs, &nd, err, sizeof(err)) == -1) {
		FUZZ_ASSERT(defs == NULL || nd == 0);
		free(defs);
		return 0;
	}
	for (size_t i = 0; i < nd; i++) {
		round_trip(&defs[i]);
		if (i < 2)
			try_rule(&defs[i], (const char *)d, n);
	}
	for (size_t i = 0; i < nd; i++)
		rule_def_clear(&defs[i]);
	free(defs);
	return 0;
}
