/* regress_test.c -- one case per crash or hang the fuzzers in tests/fuzz/
 * found, with the input class in the name; `make unit-asan` runs them
 * under ASan+UBSan, where an out-of-bounds read fails loudly. An alarm
 * turns a hang into a failure. */
#include "policy/authres.h"
#include "proxy/be.h"
#include "lib/conf.h"
#include "policy/dkim.h"
#include "rules/lit.h"
#include "policy/policy.h"
#include "policy/policy_int.h"
#include "policy/rbl.h"
#include "rules/rules.h"
#include "t.h"
#include "lib/util.h"
#include "web/web_int.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* be_ehlo_caps() on a heap copy, so ASan sees the exact end. */
static unsigned
caps_of(const char *text, unsigned *xc, unsigned *xf)
{
	char *s = xstrdup(text);
	unsigned caps = be_ehlo_caps(s, xc, xf);

	free(s);
	return caps;
}

/* fuzz_be: an EHLO reply line shorter than "250-" made the keyword
 * pointer step past the end of the text (heap-buffer-overflow). */
T_CASE(be_ehlo_short_line)
{
	unsigned xc, xf;

	T_EQ_INT(caps_of("250-mx\r\nh\r\n", &xc, &xf), 0);
	T_EQ_INT(caps_of("250-mx\r\n250\r\n", &xc, &xf), 0);
	T_EQ_INT(caps_of("250-mx\r\n25\r\n250 DSN\r\n", &xc, &xf), BE_CAP_DSN);
}

/* fuzz_be: a bare CR among the XCLIENT/XFORWARD attributes stopped the
 * attribute scan from advancing (endless loop in the event loop thread). */
T_CASE(be_ehlo_xclient_bare_cr)
{
	unsigned xc, xf;

	T_EQ_INT(caps_of("250-mx\r\n250-XCLIENT NAME\rADDR PORT\r\n250 OK\r\n", &xc, &xf),
	    BE_CAP_XCLIENT);
	T_EQ_INT(xc, BE_XA_NAME | BE_XA_ADDR | BE_XA_PORT);
	T_EQ_INT(caps_of("250-mx\r\n250 XFORWARD \r\r\r\n", &xc, &xf), BE_CAP_XFORWARD);
	T_EQ_INT(xf, 0);
}

/* Review of authres.c: comments nested deeper than a fixed cap made the
 * authserv-id unreadable, so a forged field claiming our host name behind
 * 40 levels of "(" was relayed (fail-open of RFC 8601 5 hygiene). */
T_CASE(authres_deep_comment_forgery)
{
	char hdr[512], id[AUTHRES_SERVID_MAX + 1];
	struct pol_skip *sk = NULL;
	size_t o = 0;

	o += (size_t)snprintf(hdr + o, sizeof(hdr) - o, "Authentication-Results: ");
	for (int i = 0; i < 40; i++)
		hdr[o++] = '(';
	for (int i = 0; i < 40; i++)
		hdr[o++] = ')';
	o += (size_t)snprintf(hdr + o, sizeof(hdr) - o, " mx.example.org; spf=pass\r\n\r\n");
	T_EQ_INT(authres_servid(hdr + 23, o - 23, id, sizeof(id)), 0);
	T_EQ_STR(id, "mx.example.org");
	T_EQ_INT(authres_skips(hdr, o, "mx.example.org", &sk), 1);
	T_ASSERT(sk != NULL && sk[0].off == 0 && sk[0].len == o - 2);
	free(sk);
}

/* Load text as a config; returns the conf or NULL with *errs. */
static struct conf *
load_text(const char *text, struct conf_err **errs, int *nerrs)
{
	char *path = t_write_tmp(text);
	struct conf *c = conf_load(path, errs, nerrs);

	unlink(path);
	free(path);
	return c;
}

/* Review of conf.c: a line longer than inih's 200-byte buffer came back
 * as two lines, so the tail of a long comment was read as a key (a
 * commented-out setting came alive) and line numbers went wrong. */
T_CASE(conf_long_line_split)
{
	char text[600];
	struct conf_err *errs = NULL;
	int nerrs = 0;
	struct conf *c;

	/* The tail after byte 199 would be "hostname = evil.example". */
	snprintf(text, sizeof(text), "[proxy]\n# %-197shostname = evil.example\n"
	    "max_received = 7\n", "padding");
	c = load_text(text, &errs, &nerrs);
	T_ASSERT(c == NULL);
	T_EQ_INT(nerrs, 1);
	T_ASSERT(nerrs >= 1 && errs[0].line == 2 &&
	    strstr(errs[0].msg, "longer than") != NULL);
	if (c != NULL)
		conf_unref(c);
	free(errs);
	errs = NULL;
	c = load_text("[proxy]\nmax_received = 7\n", &errs, &nerrs);
	T_ASSERT(c != NULL && c->max_received == 7);
	if (c != NULL)
		conf_unref(c);
	free(errs);
	errs = NULL;
	/* Review: a score of nan or inf was taken (NaN thresholds never match). */
	c = load_text("[policy]\nreject_score = nan\ntag_score = -inf\n", &errs, &nerrs);
	T_ASSERT(c == NULL);
	T_EQ_INT(nerrs, 2);
	if (c != NULL)
		conf_unref(c);
	free(errs);
}

/* Review of util.c: a size or time with a unit multiplied past
 * LLONG_MAX ("9999999999g", signed overflow, UB; a wrapped value could
 * pass the range check). */
T_CASE(parse_scaled_overflow)
{
	long long v = 0;

	T_EQ_INT(parse_bytes("9999999999999g", &v), -1);
	T_EQ_INT(parse_seconds("99999999999999999w", &v), -1);
	T_EQ_INT(parse_bytes("8589934591g", &v), 0);	/* (2^63-1)/2^30 */
	T_EQ_INT(v, 8589934591LL << 30);
	T_EQ_INT(parse_bytes("8589934592g", &v), -1);
	T_EQ_INT(parse_seconds("2w", &v), 0);
	T_EQ_INT(v, 1209600);
}

/* Review of rbl.c: a weight of "nan" or "inf" (or one past DBL_MAX) was
 * taken, and a NaN score makes every verdict threshold compare false. */
T_CASE(rbl_weight_not_finite)
{
	struct rbl_site s[4];
	char why[256];

	T_EQ_INT(rbl_parse("bl.example*nan", s, 4, why, sizeof(why)), -1);
	T_EQ_INT(rbl_parse("bl.example*inf", s, 4, why, sizeof(why)), -1);
	T_EQ_INT(rbl_parse("bl.example*-1e999", s, 4, why, sizeof(why)), -1);
	T_EQ_INT(rbl_parse("bl.example*2.5 wl.example*-1e3", s, 4, why, sizeof(why)), 2);
	T_ASSERT(s[0].weight == 2.5 && s[1].weight == -1000);
}

/* fuzz_rules: the prefilter's quantifier reader overflowed int on a long
 * digit run ("tp{9999999999999 |", signed overflow UB under UBSan). */
T_CASE(lit_quantifier_digits_overflow)
{
	struct lit_req r;

	T_EQ_INT(lit_extract("ht-tp{99999999999999999999999999 x", "", &r), 0);
	T_ASSERT(lit_extract("abcdef{99999999999999999999}ghij", "", &r) >= 0);
	T_EQ_INT(lit_extract("abcdef{2}ghij", "", &r), 1);
}

/* POST /api/rules/test with body pre + 300 x "é" + post; the reply into
 * *resp (caller frees resp->body). */
static void
rules_test_post(const char *pre, const char *post, struct web_resp *resp)
{
	struct conf *c = conf_defaults();
	struct web_req r = { 0 };
	char body[1024];
	size_t o = (size_t)snprintf(body, sizeof(body), "%s", pre);

	for (int i = 0; i < 300; i++)
		o += (size_t)snprintf(body + o, sizeof(body) - o, "\xc3\xa9");
	o += (size_t)snprintf(body + o, sizeof(body) - o, "%s", post);
	r.method = "POST";
	r.path = "/api/rules/test";
	r.ctype = "application/json";
	r.body = body;
	r.len = o;
	r.conf = c;
	memset(resp, 0, sizeof(*resp));
	api_dispatch(&r, resp);
	conf_unref(c);
}

/* fuzz_web: an error reply quoting a long non-ASCII quarantine_id was cut
 * inside a UTF-8 sequence; jansson refused it and web_json() called
 * fatalx(): one API request aborted the daemon. */
T_CASE(web_error_cut_utf8)
{
	struct web_resp resp;

	rules_test_post("{\"rule\": {\"name\": \"t\", \"target\": \"subject\", "
	    "\"pattern\": \"x\"}, \"quarantine_id\": \"!", "\"}", &resp);
	T_EQ_INT(resp.status, 404);
	T_ASSERT(resp.body != NULL && strstr(resp.body, "no quarantined message !?") != NULL);
	free(resp.body);
}

/* Review after fuzz_web: a rule-test match longer than the excerpt was cut
 * inside a UTF-8 sequence; the 200 reply's json_pack failed and web_json
 * called fatalx() (the daemon aborted). The cut is on a boundary now. */
T_CASE(rule_test_excerpt_utf8_cut)
{
	struct web_resp resp;

	rules_test_post("{\"rule\": {\"name\": \"t\", \"target\": \"body\", "
	    "\"pattern\": \"x.+\"}, \"message\": \"Subject: a\\r\\n\\r\\nxx",
	    "\\r\\n\"}", &resp);
	T_EQ_INT(resp.status, 200);
	T_ASSERT(resp.body != NULL && strstr(resp.body, "\"matched\":true") != NULL);
	free(resp.body);
}

/* The authres properties of the first dkim result for msg (no DNS: the
 * key lookup is a temperror, the signature is still reported). */
static void
dkim_props(const char *msg, char *out, size_t outsz)
{
	struct conf *c = conf_defaults();
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct pol_session *ps;
	struct pol_msg m = { msg, strlen(msg) };
	const struct pol_result *r;

	ps = pol_session_new(c, "R", (struct sockaddr *)&sin, sizeof(sin));
	pol_tx_begin(ps, "a@example.org", "");
	dkim_check.run(ps, POL_DATA, &m);
	r = pol_result_find(ps, "dkim");
	snprintf(out, outsz, "%s", r != NULL && r->authres != NULL ? r->authres : "");
	pol_session_free(ps);
	conf_unref(c);
}

/* fuzz_dkim: an i= tag ending in "=" made libopendkim's dkim_qp_decode()
 * (via dkim_sig_getidentity) step over the string's end and read on
 * through the heap until it crashed (SEGV). */
T_CASE(dkim_identity_trailing_equals)
{
	char props[768];

	dkim_props("DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=sel;\r\n"
	    " h=from; i=@example.org=; bh=frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=;\r\n"
	    " b=dGVzdA==\r\nFrom: a@example.org\r\n\r\nbody\r\n", props, sizeof(props));
	T_ASSERT(strstr(props, "header.i=@example.org= ") != NULL);
	dkim_props("DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=sel;\r\n"
	    " h=from; i=jo=2Esmith@exam\r\n ple.org; bh=frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=;\r\n"
	    " b=dGVzdA==\r\nFrom: a@example.org\r\n\r\nbody\r\n", props, sizeof(props));
	T_ASSERT(strstr(props, "header.i=jo.smith@example.org ") != NULL);
}

/* fuzz_rules: rule_line_format() wrote scores with "%g", so an export
 * and re-import turned score 1.23456789 into 1.23457. */
T_CASE(rule_score_round_trip)
{
	static const double scores[] = { 1.23456789, 0.1, -999.999999999, 1e-7, 3 };
	char err[256];

	for (size_t i = 0; i < sizeof(scores) / sizeof(scores[0]); i++) {
		struct rule_def d = { 0 }, back;
		char *line;

		d.name = "r";
		d.target = "subject";
		d.pattern = "x";
		d.action = "score";
		d.score = scores[i];
		d.enabled = 1;
		line = rule_line_format(&d);
		T_EQ_INT(rule_line_parse(line, &back, err, sizeof(err)), 1);
		T_ASSERT(back.score == scores[i]);
		rule_def_clear(&back);
		free(line);
	}
}

int
main(void)
{
	alarm(20);
	T_RUN(be_ehlo_short_line);
	T_RUN(be_ehlo_xclient_bare_cr);
	T_RUN(authres_deep_comment_forgery);
	T_RUN(conf_long_line_split);
	T_RUN(parse_scaled_overflow);
	T_RUN(rbl_weight_not_finite);
	T_RUN(lit_quantifier_digits_overflow);
	T_RUN(web_error_cut_utf8);
	T_RUN(rule_test_excerpt_utf8_cut);
	T_RUN(dkim_identity_trailing_equals);
	T_RUN(rule_score_round_trip);
	return T_END();
}
