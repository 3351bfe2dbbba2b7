/* rules_test.c -- rules/rules.c: text format, compile errors, every target
 * on real messages, JIT vs interpreter, runaway patterns, the swap. */
#include "rules/mime.h"
#include "rules/rules.h"
#include "mail.h"
#include "t.h"

#include <pthread.h>
#include "lib/util.h"

static const struct rule_opts jit_on = { .match_limit = 1000000, .depth_limit = 10000, .jit = 1 };
static const struct rule_opts jit_off = { .match_limit = 1000000, .depth_limit = 10000, .jit = 0 };
static const struct rule_opts jit_nopf = { .match_limit = 1000000, .depth_limit = 10000,
    .jit = 1, .no_prefilter = 1 };

/* Hits are collected as "name@where" joined by spaces. */
struct hits {
	char	 s[4096];
};

static void
collect(void *arg, const struct rule_hit *h)
{
	struct hits *c = arg;
	size_t n = strlen(c->s);

	snprintf(c->s + n, sizeof(c->s) - n, "%s%s@%s", n ? " " : "", h->name, h->where);
}

static struct rule_set *
build(const char *text, const struct rule_opts *o)
{
	struct rule_def *d;
	size_t n;
	char err[256];
	struct rule_set *rs;

	if (rule_text_parse(text, strlen(text), &d, &n, err, sizeof(err)) == -1) {
		fprintf(stderr, "  parse: %s\n", err);
		return NULL;
	}
	rs = rule_set_build(d, n, o, err, sizeof(err));
	if (rs == NULL)
		fprintf(stderr, "  build: %s\n", err);
	for (size_t i = 0; i < n; i++)
		rule_def_clear(&d[i]);
	free(d);
	return rs;
}

/* Run text's rules over a sample file (and envelope) and return the hits. */
static void
run(const char *text, const struct rule_opts *o, const char *file,
    const struct rule_input *env, unsigned mask, struct hits *out)
{
	struct rule_set *rs = build(text, o);
	struct rule_input in = { 0 };
	size_t n = 0;
	char *raw = file ? mail_load(file, &n) : NULL;

	memset(out, 0, sizeof(*out));
	if (env)
		in = *env;
	in.raw = raw;
	in.rawlen = n;
	in.msg = raw ? mime_parse(raw, n) : NULL;
	if (rs != NULL)
		rule_set_eval(rs, &in, mask, collect, out);
	else
		snprintf(out->s, sizeof(out->s), "BUILD FAILED");
	mime_free((struct mime_msg *)in.msg);
	free(raw);
	rule_set_unref(rs);
}

T_CASE(line_parse_good)
{
	struct rule_def d;
	char err[256];

	T_EQ_INT(rule_line_parse("  # a comment", &d, err, sizeof(err)), 0);
	T_EQ_INT(rule_line_parse("   ", &d, err, sizeof(err)), 0);
	T_EQ_INT(rule_line_parse("pipe_rule | url | /a|b\\/c|d/ix | score 2.5", &d, err, sizeof(err)), 1);
	T_EQ_STR(d.name, "pipe_rule");
	T_EQ_STR(d.target, "url");
	T_EQ_STR(d.pattern, "a|b\\/c|d");
	T_EQ_STR(d.flags, "ix");
	T_EQ_STR(d.action, "score");
	T_ASSERT(d.score == 2.5);
	T_EQ_INT(d.enabled, 1);
	rule_def_clear(&d);
	T_EQ_INT(rule_line_parse("!off | header:X-Mailer | /^Bulk/ | reject", &d, err, sizeof(err)), 1);
	T_EQ_INT(d.enabled, 0);
	T_EQ_STR(d.target, "header:X-Mailer");
	T_EQ_STR(d.flags, "");
	T_ASSERT(d.score == 0);
	rule_def_clear(&d);
}

T_CASE(line_parse_errors)
{
	struct rule_def d;
	char err[256];

	T_EQ_INT(rule_line_parse("r | subject | /(unclosed/ | score 1", &d, err, sizeof(err)), -1);
	T_ASSERT(strstr(err, "offset 9") != NULL);
	T_ASSERT(strstr(err, "missing closing parenthesis") != NULL);
	T_EQ_INT(rule_line_parse("r | nowhere | /x/ | score 1", &d, err, sizeof(err)), -1);
	T_ASSERT(strstr(err, "target") != NULL);
	T_EQ_INT(rule_line_parse("r | subject | /x/q | score 1", &d, err, sizeof(err)), -1);
	T_ASSERT(strstr(err, "flags") != NULL);
	T_EQ_INT(rule_line_parse("r | subject | /x/ii | score 1", &d, err, sizeof(err)), -1);
	T_EQ_INT(rule_line_parse("r | subject | /x/ | explode", &d, err, sizeof(err)), -1);
	T_ASSERT(strstr(err, "action") != NULL);
	T_EQ_INT(rule_line_parse("r | subject | /x/ | score many", &d, err, sizeof(err)), -1);
	T_EQ_INT(rule_line_parse("r | subject | x | score 1", &d, err, sizeof(err)), -1);
	T_EQ_INT(rule_line_parse("r | subject | /x/", &d, err, sizeof(err)), -1);
	T_EQ_INT(rule_line_parse("bad name | subject | /x/ | score 1", &d, err, sizeof(err)), -1);
	T_EQ_INT(rule_line_parse("r | header: | /x/ | score 1", &d, err, sizeof(err)), -1);
	T_EQ_INT(rule_line_parse("r | subject | // | score 1", &d, err, sizeof(err)), -1);
	T_EQ_INT(rule_line_parse("r | subject | /\\C/ | score 1", &d, err, sizeof(err)), -1);
}

T_CASE(format_round_trip)
{
	struct rule_def d, e;
	char err[256], *line;

	T_EQ_INT(rule_line_parse("!x.y-1 | header:List-Id | /a | b/msi | quarantine 4", &d, err, sizeof(err)), 1);
	line = rule_line_format(&d);
	T_EQ_STR(line, "!x.y-1 | header:List-Id | /a | b/msi | quarantine 4\n");
	T_EQ_INT(rule_line_parse(line, &e, err, sizeof(err)), 1);
	T_EQ_STR(e.pattern, d.pattern);
	T_EQ_STR(e.flags, d.flags);
	T_EQ_INT(e.enabled, 0);
	free(line);
	rule_def_clear(&e);
	rule_def_clear(&d);
}

/* The log-only option: a word of its own after the action and score,
 * kept through format and parse, and carried on the rule's hits. */
static void
log_only_hit(void *arg, const struct rule_hit *h)
{
	*(int *)arg = h->log_only ? 1 : 2;
}

T_CASE(log_only_flag)
{
	struct rule_def d, e;
	struct rule_set *rs;
	struct rule_opts o = { .match_limit = 100000, .depth_limit = 1000 };
	struct rule_input in = { .mail_from = "a@watch.example" };
	char err[256], *line;
	int seen = 0;

	T_EQ_INT(rule_line_parse("w | subject | /x/ | reject 3 log-only", &d, err, sizeof(err)), 1);
	T_EQ_INT(d.log_only, 1);
	T_EQ_STR(d.action, "reject");
	T_ASSERT(d.score == 3);
	line = rule_line_format(&d);
	T_EQ_STR(line, "w | subject | /x/ | reject 3 log-only\n");
	T_EQ_INT(rule_line_parse(line, &e, err, sizeof(err)), 1);
	T_EQ_INT(e.log_only, 1);
	free(line);
	rule_def_clear(&e);
	rule_def_clear(&d);
	T_EQ_INT(rule_line_parse("w | subject | /x/ | quarantine\tlog-only", &d, err, sizeof(err)), 1);
	T_EQ_INT(d.log_only, 1);
	T_EQ_STR(d.action, "quarantine");
	rule_def_clear(&d);
	/* without it, and in the wrong place or glued to the action */
	T_EQ_INT(rule_line_parse("w | subject | /x/ | score 1", &d, err, sizeof(err)), 1);
	T_EQ_INT(d.log_only, 0);
	rule_def_clear(&d);
	T_EQ_INT(rule_line_parse("w | subject | /x/ | log-only", &d, err, sizeof(err)), -1);
	T_ASSERT(strstr(err, "action") != NULL);
	T_EQ_INT(rule_line_parse("w | subject | /x/ | log-only score 1", &d, err, sizeof(err)), -1);
	T_EQ_INT(rule_line_parse("w | subject | /x/ | scorelog-only", &d, err, sizeof(err)), -1);
	T_EQ_INT(rule_line_parse("w | subject | /x/ | score 1 log-only log-only", &d, err, sizeof(err)), -1);
	/* a hit says so */
	rs = build("w | mail_from | /@watch\\.example$/ | reject log-only\n", &o);
	T_ASSERT(rs != NULL);
	T_EQ_INT(rule_set_eval(rs, &in, RULE_MASK_ALL, log_only_hit, &seen), 1);
	T_EQ_INT(seen, 1);
	rule_set_unref(rs);
}

T_CASE(text_parse_reports_line)
{
	const char *t = "# rules\nok | subject | /a/ | score 1\n\nbad | subject | /[z/ | score 1\n";
	struct rule_def *d = NULL;
	size_t n = 99;
	char err[256];

	T_EQ_INT(rule_text_parse(t, strlen(t), &d, &n, err, sizeof(err)), -1);
	T_ASSERT(strncmp(err, "line 4: pattern at offset", 25) == 0);
	t = "a | subject | /a/ | score 1\r\nb | body | /b/ | reject\n";
	T_EQ_INT(rule_text_parse(t, strlen(t), &d, &n, err, sizeof(err)), 0);
	T_EQ_INT(n, 2);
	for (size_t i = 0; i < n; i++)
		rule_def_clear(&d[i]);
	free(d);
}

static const char content_rules[] =
    "mailer | header:x-mailer | /^Bulk Sender Pro/ | score 1\n"
    "received | header:Received | /by mx\\.example\\.org/ | score 1\n"
    "subj | subject | /prüfen café$/ | score 1\n"
    "subj_raw_only | subject | /R3LDtsOfZSBwcsO8ZmVu/ | score 1\n"
    "from_name | from | /^René/ | score 1\n"
    "qp_body | body | /Café crème/ | score 1\n"
    "html_body | body | /cheap viagra/i | score 2\n"
    "raw_b64 | raw | /PGh0bWw\\+/ | score 1\n"
    "link | url | /^http:\\/\\/spam\\.example\\// | reject\n"
    "exe | attachment | /\\.exe$/i | quarantine\n"
    "euro | attachment | /^€/ | score 1\n"
    "nohit | body | /definitely not there/ | score 9\n"
    "forwarded | body | /secret-token-XYZ/ | score 1\n"
    "cyr | subject | /^Привет/ | score 1\n";

T_CASE(content_targets_alternative)
{
	struct hits h;

	run(content_rules, &jit_on, "alternative.eml", NULL, RULE_MASK_CONTENT, &h);
	T_EQ_STR(h.s, "mailer@header:x-mailer[0] received@header:Received[0] "
	    "subj@subject from_name@from qp_body@body[0] html_body@body[1] "
	    "raw_b64@raw link@url[1]");
}

T_CASE(content_targets_nested)
{
	struct hits h;

	run(content_rules, &jit_on, "nested.eml", NULL, RULE_MASK_CONTENT, &h);
	T_EQ_STR(h.s, "cyr@subject forwarded@body[2] exe@attachment[1] euro@attachment[0]");
}

T_CASE(envelope_targets_and_mask)
{
	static const char env_rules[] =
	    "h | helo | /^\\[?\\d+\\.\\d+/ | score 1\n"
	    "mf | mail_from | /@spam\\.example$/ | reject\n"
	    "rt | rcpt_to | /^postmaster@/ | accept\n"
	    "ip | client_ip | /^192\\.0\\.2\\./ | tempfail\n"
	    "cn | client_name | /^unknown$/ | score 2\n"
	    "subj | subject | /./ | score 1\n";
	const char *rcpts[] = { "alice@example.org", "postmaster@example.org" };
	struct rule_input env = { .helo = "[192.0.2.1]", .mail_from = "x@spam.example",
	    .client_ip = "192.0.2.9", .client_name = "unknown", .rcpts = rcpts, .nrcpts = 2 };
	struct hits h;

	run(env_rules, &jit_on, NULL, &env, RULE_MASK_ALL, &h);
	T_EQ_STR(h.s, "h@helo mf@mail_from rt@rcpt_to[1] ip@client_ip cn@client_name");
	run(env_rules, &jit_on, NULL, &env, RULE_MASK(RULE_HELO), &h);
	T_EQ_STR(h.s, "h@helo");
	run(env_rules, &jit_on, "sjis.eml", &env, RULE_MASK_CONTENT, &h);
	T_EQ_STR(h.s, "subj@subject");
}

T_CASE(flags)
{
	static const char r[] =
	    "ci | body | /CAFÉ CRÈME/i | score 1\n"
	    "cs | body | /CAFÉ CRÈME/ | score 1\n"
	    "ml | body | /^Cheap Viagra/m | score 1\n"
	    "nml | body | /^Cheap Viagra/ | score 1\n"
	    "dot | raw | /ALT-b1..Content-Type/s | score 1\n"
	    "nodot | raw | /ALT-b1..Content-Type/ | score 1\n"
	    "ext | subject | / Größe \\s prüfen  (?#comment)/x | score 1\n"
	    "noext | subject | / Größe \\s prüfen / | score 1\n";
	struct hits h;

	run(r, &jit_on, "alternative.eml", NULL, RULE_MASK_CONTENT, &h);
	T_EQ_STR(h.s, "ext@subject ci@body[0] ml@body[1] dot@raw");
}

/* Every rule of a mixed set over every sample: JIT and interpreter agree. */
/* Every sample gives the same hits under options a and b. */
static void
same_hits(const char *rules, const struct rule_opts *a, const struct rule_opts *b)
{
	static const char *files[] = { "alternative.eml", "nested.eml", "sjis.eml",
	    "malformed.eml" };
	struct hits ha, hb;

	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		run(rules, a, files[i], NULL, RULE_MASK_ALL, &ha);
		run(rules, b, files[i], NULL, RULE_MASK_ALL, &hb);
		T_EQ_STR(ha.s, hb.s);
		T_ASSERT(strcmp(ha.s, "BUILD FAILED") != 0);
	}
}

T_CASE(jit_and_interpreter_agree)
{
	static const char extra[] =
	    "w1 | body | /\\b\\w{6,}\\b/ | score 1\n"
	    "w2 | raw | /^Content-Type:\\s*text\\/html/mi | score 1\n"
	    "w3 | subject | /\\p{Cyrillic}+/ | score 1\n"
	    "w4 | raw | /\\xff|never/ | score 1\n"
	    "w5 | body | /(?<=invoice )attached/ | score 1\n";
	char *all = xasprintf("%s%s", content_rules, extra);

	same_hits(all, &jit_on, &jit_off);
	free(all);
}

/* The literal prefilter only skips work: same hits with it off, on every
 * sample, for the test rules and the starter set. */
T_CASE(prefilter_changes_no_answer)
{
	size_t n;
	char *starter = mail_load("../../../etc/rules.txt", &n);
	char *all = xasprintf("%s%s"
	    "k1 | body | /crème, visit https/ | score 1\n"
	    "k2 | raw | /(?:boundary|nothing-here)=\"ALT-b1\"/i | score 1\n"
	    "k3 | url | /spam\\.example\\/(buy|sell)\\?a=1/ | score 1\n"
	    "k4 | body | /\\bplease find\\b.{0,40}\\b(invoice|receipt)\\b/is | score 1\n"
	    "k5 | subject | /größe|zzz-nothing/i | score 1\n", content_rules, starter);
	struct hits a;

	same_hits(all, &jit_on, &jit_nopf);
	run(all, &jit_on, "alternative.eml", NULL, RULE_MASK_ALL, &a);
	T_ASSERT(strstr(a.s, "k1@body[0]") && strstr(a.s, "k2@raw") && strstr(a.s, "k3@url[1]"));
	run(all, &jit_on, "nested.eml", NULL, RULE_MASK_ALL, &a);
	T_ASSERT(strstr(a.s, "k4@body[0]") != NULL);
	free(all);
	free(starter);
}

/* Header rules on different fields share a target, and the prefilter
 * scans a target's text once: it must leave header rules out (rules.c
 * does), or To's "alice" would be looked for in X-Mailer's text and the
 * rule skipped. */
T_CASE(prefilter_header_rules_own_fields)
{
	const char *text = "h1 | header:X-Mailer | /Bulk Sender/ | score 1\n"
	    "h2 | header:To | /alice@example/ | score 1\n"
	    "h3 | header:Return-Path | /news@shop/ | score 1\n";
	struct hits a;

	same_hits(text, &jit_on, &jit_nopf);
	run(text, &jit_on, "alternative.eml", NULL, RULE_MASK_ALL, &a);
	T_ASSERT(strstr(a.s, "h1@") && strstr(a.s, "h2@") && strstr(a.s, "h3@"));
}

/* Random patterns against random texts: whenever the regex matches, the
 * prefilter lets it run (same count with and without). Deterministic. */
T_CASE(prefilter_sound_on_random_patterns)
{
	static const char *ptok[] = { "abc", "foo", "bar", "(", ")", "|", "?", "*", "+",
	    "{2}", "[a-c]", "\\d", "\\b", ".", "x{1,3}", "(?:", "\\.", "é", "kit", "Sun",
	    "^", "$", "{0,2}", "(?=foo)", "\\x41", "food", "ba", "[i1]", "[ab]", "[-_]",
	    "[xy]+", "[ok]", "[Oo]", "[a-c]" };
	static const char *ttok[] = { "abc", "foo", "bar", "xx", "é", "KIT", "sun", ".", "7",
	    " ", "\n", "food", "ABCFOO", "x", "Ba", "\xe2\x84\xaa" "it", "\xc5\xbf" "un", "A",
	    "ab", "fo", "ki", "Su", "foa", "bard", "1", "-", "_", "y", "o", "O", "i" };
	unsigned long seed = 7;
	int compared = 0, matched = 0;
	char pat[256], text[1024], line[512], err[256];

	for (int round = 0; round < 20000; round++) {
		size_t pl = 0, tl = 0;
		seed = seed * 6364136223846793005UL + 1442695040888963407UL;
		for (int k = 0, nt = 1 + (int)((seed >> 33) % 7); k < nt; k++) {
			seed = seed * 6364136223846793005UL + 1442695040888963407UL;
			pl += (size_t)snprintf(pat + pl, sizeof(pat) - pl, "%s",
			    ptok[(seed >> 33) % ARRAY_SIZE(ptok)]);
		}
		for (int k = 0, nt = 2 + (int)((seed >> 40) % 10); k < nt; k++) {
			seed = seed * 6364136223846793005UL + 1442695040888963407UL;
			tl += (size_t)snprintf(text + tl, sizeof(text) - tl, "%s",
			    ttok[(seed >> 33) % ARRAY_SIZE(ttok)]);
		}
		const char *flags = (seed >> 50) % 3 == 0 ? "i" : (seed >> 50) % 3 == 1 ? "" : "is";
		snprintf(line, sizeof(line), "r | raw | /%s/%s | score 1", pat, flags);
		struct rule_def d;
		if (rule_line_parse(line, &d, err, sizeof(err)) != 1)
			continue;	/* did not compile: nothing to compare */
		struct rule_set *a = rule_set_build(&d, 1, &jit_on, err, sizeof(err));
		struct rule_set *b = rule_set_build(&d, 1, &jit_nopf, err, sizeof(err));
		struct rule_input in = { .raw = text, .rawlen = tl };
		int ha = rule_set_eval(a, &in, RULE_MASK_ALL, NULL, NULL);
		int hb = rule_set_eval(b, &in, RULE_MASK_ALL, NULL, NULL);
		if (ha != hb)
			fprintf(stderr, "  prefilter disagrees on /%s/%s\n", pat, flags);
		T_EQ_INT(ha, hb);
		compared++;
		matched += hb;
		rule_set_unref(a);
		rule_set_unref(b);
		rule_def_clear(&d);
	}
	fprintf(stderr, "  (%d patterns compared, %d matched)\n", compared, matched);
	/* the corpus is not degenerate: plenty compile, some match, some not */
	T_ASSERT(compared > 5000);
	T_ASSERT(matched > 100 && matched < compared - 100);
}

/* A caseless 's' or 'k' also matches LONG S / KELVIN SIGN, which the
 * prefilter does not fold: it must let the rule run. */
T_CASE(prefilter_unicode_caseless)
{
	struct rule_set *rs = build("ks | raw | /seek kit/i | score 1\n", &jit_on);
	const char raw[] = "Subject: x\r\n\r\n\xc5\xbf" "eek \xe2\x84\xaa" "it and padding";
	struct rule_input in = { .raw = raw, .rawlen = sizeof(raw) - 1 };

	T_EQ_INT(rule_set_eval(rs, &in, RULE_MASK_ALL, NULL, NULL), 1);
	rule_set_unref(rs);
}

/* (a+)+$ over 200 KB of 'a' ending in '!': exponential without limits. */
T_CASE(catastrophic_pattern_bounded)
{
	for (int jit = 0; jit < 2; jit++) {
		struct rule_opts o = { .match_limit = 100000, .depth_limit = 1000, .jit = jit };
		struct rule_set *rs = build("cat | raw | /(a+)+$/ | score 5\n"
		    "fine | raw | /a!/ | score 1\n", &o);
		size_t n = 200 * 1024;
		char *raw = malloc(n + 1);
		unsigned long before = rule_limit_hits();
		struct rule_input in = { .raw = raw, .rawlen = n };
		struct hits h = { { 0 } };

		memset(raw, 'a', n);
		raw[n - 1] = '!';
		raw[n] = '\0';
		T_EQ_INT(rule_set_eval(rs, &in, RULE_MASK_ALL, collect, &h), 1);
		T_EQ_STR(h.s, "fine@raw");
		T_ASSERT(rule_limit_hits() > before);
		free(raw);
		rule_set_unref(rs);
	}
}

T_CASE(invalid_utf8_subject_still_matches)
{
	struct rule_set *rs = build("bin | raw | /ab+c/ | score 1\n", &jit_on);
	const char raw[] = "Subject: \xff\xfe abbbc \xc3\r\n\r\nx";
	struct rule_input in = { .raw = raw, .rawlen = sizeof(raw) - 1 };

	T_EQ_INT(rule_set_eval(rs, &in, RULE_MASK_ALL, NULL, NULL), 1);
	rule_set_unref(rs);
}

T_CASE(disabled_rules_skipped_and_counted)
{
	struct rule_set *rs = build("a | subject | /x/ | score 1\n!b | subject | /x/ | score 1\n", &jit_on);

	T_EQ_INT(rule_set_count(rs), 1);
	rule_set_unref(rs);
}

T_CASE(swap_keeps_old_set_for_holders)
{
	struct rule_set *a = build("one | helo | /x/ | score 1\n", &jit_on);
	struct rule_set *b = build("two | helo | /x/ | score 1\n", &jit_on);
	struct rule_input in = { .helo = "x" };
	struct rule_set *held;
	struct hits h = { { 0 } };

	T_ASSERT(rule_current() == NULL);
	rule_set_tag(a, 1);
	rule_swap(a);
	held = rule_current();
	T_EQ_INT(rule_set_version(held), 1);
	rule_set_tag(b, 2);
	rule_swap(b);
	/* the holder still evaluates its set after the swap */
	rule_set_eval(held, &in, RULE_MASK_ALL, collect, &h);
	T_EQ_STR(h.s, "one@helo");
	rule_set_unref(held);
	held = rule_current();
	T_EQ_INT(rule_set_version(held), 2);
	rule_set_unref(held);
	rule_swap(NULL);
	T_ASSERT(rule_current() == NULL);
}

T_CASE(test_one_rule_reports_where)
{
	struct rule_def d = { 0, "t", "url", "spam\\.example/buy", "", "score", 1, 0, 0 };
	struct rule_test_result r;
	size_t n;
	char *raw = mail_load("alternative.eml", &n), err[256];

	T_EQ_INT(rule_test(&d, raw, n, NULL, &jit_on, &r, err, sizeof(err)), 1);
	T_EQ_STR(r.where, "url[1]");
	T_EQ_STR(r.excerpt, "spam.example/buy");
	T_EQ_INT(r.off, 7);
	d.pattern = "nothing like this";
	T_EQ_INT(rule_test(&d, raw, n, NULL, &jit_on, &r, err, sizeof(err)), 0);
	d.pattern = "a{2,1}";
	T_EQ_INT(rule_test(&d, raw, n, NULL, &jit_on, &r, err, sizeof(err)), -1);
	T_ASSERT(strstr(err, "offset") != NULL);
	free(raw);
}

/* etc/rules.txt compiles and catches what its comments promise. */
T_CASE(starter_rules)
{
	size_t n;
	char *text = mail_load("../../../etc/rules.txt", &n);
	const char *rcpts[] = { "bob@example.org" };
	struct rule_input env = { .helo = "10.1.2.3", .mail_from = "x1234567@win.top",
	    .client_ip = "192.0.2.1", .client_name = "unknown", .rcpts = rcpts, .nrcpts = 1 };
	struct hits h;

	run(text, &jit_on, "nested.eml", NULL, RULE_MASK_ALL, &h);
	T_ASSERT(strstr(h.s, "attach_executable@attachment[1]") != NULL);
	run(text, &jit_on, "alternative.eml", NULL, RULE_MASK_ALL, &h);
	T_ASSERT(strstr(h.s, "body_pharma@body[1]") != NULL);
	T_ASSERT(strstr(h.s, "mailer_bulk") == NULL);
	run(text, &jit_on, NULL, &env, RULE_MASK_ALL, &h);
	T_EQ_STR(h.s, "helo_bare_ip@helo from_digits_local@mail_from "
	    "from_abused_tld@mail_from client_no_rdns@client_name");
	env.helo = "[10.1.2.3]";
	env.mail_from = "alice@example.org";
	env.client_name = "mail.example.org";
	run(text, &jit_on, NULL, &env, RULE_MASK_ALL, &h);
	T_EQ_STR(h.s, "");
	free(text);
}

/* Threads parse and match while another swaps sets: every evaluation
 * sees one whole set (the hits of old or new, nothing else). */
struct conc {
	const char *raw;
	size_t	 len;
	int	 bad, runs;
};

static void *
conc_worker(void *arg)
{
	struct conc *c = arg;

	for (int i = 0; i < 60; i++) {
		struct rule_set *rs = rule_current();
		struct mime_msg *m = mime_parse(c->raw, c->len);
		struct rule_input in = { .msg = m, .raw = c->raw, .rawlen = c->len };
		struct hits h = { { 0 } };
		rule_set_eval(rs, &in, RULE_MASK_ALL, collect, &h);
		if (strcmp(h.s, "old@subject html@body[1]") != 0 &&
		    strcmp(h.s, "new@from html@body[1]") != 0)
			__atomic_add_fetch(&c->bad, 1, __ATOMIC_RELAXED);
		__atomic_add_fetch(&c->runs, 1, __ATOMIC_RELAXED);
		mime_free(m);
		rule_set_unref(rs);
	}
	return NULL;
}

T_CASE(concurrent_eval_and_swap)
{
	static const char *sets[2] = {
	    "old | subject | /café$/ | score 1\nhtml | body | /viagra/i | score 1\n",
	    "new | from | /René/ | score 1\nhtml | body | /viagra/i | score 1\n" };
	struct conc c = { 0 };
	pthread_t t[4];
	char *raw = mail_load("alternative.eml", &c.len);

	c.raw = raw;
	rule_swap(build(sets[0], &jit_on));
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, conc_worker, &c);
	for (int i = 0; i < 40; i++)
		rule_swap(build(sets[i % 2], &jit_on));
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	T_EQ_INT(c.runs, 240);
	T_EQ_INT(c.bad, 0);
	rule_swap(NULL);
	free(raw);
}

int
main(void)
{
	log_set_level(LOG_LVL_ERR);
	T_RUN(line_parse_good);
	T_RUN(line_parse_errors);
	T_RUN(format_round_trip);
	T_RUN(log_only_flag);
	T_RUN(text_parse_reports_line);
	T_RUN(content_targets_alternative);
	T_RUN(content_targets_nested);
	T_RUN(envelope_targets_and_mask);
	T_RUN(flags);
	T_RUN(jit_and_interpreter_agree);
	T_RUN(prefilter_changes_no_answer);
	T_RUN(prefilter_header_rules_own_fields);
	T_RUN(prefilter_unicode_caseless);
	T_RUN(prefilter_sound_on_random_patterns);
	T_RUN(catastrophic_pattern_bounded);
	T_RUN(invalid_utf8_subject_still_matches);
	T_RUN(disabled_rules_skipped_and_counted);
	T_RUN(swap_keeps_old_set_for_holders);
	T_RUN(concurrent_eval_and_swap);
	T_RUN(test_one_rule_reports_where);
	T_RUN(starter_rules);
	return T_END();
}
