/*
 * rules_bench.c -- content rules per message per core: 500 rules over a
 * 100 KB MIME message (text/plain QP + text/html base64 + an attachment),
 * JIT and interpreter. Prints milliseconds per message on one thread,
 * split into MIME parsing and matching. Target: under 2 ms with JIT.
 *
 * The rule mix is shaped like a real set: the starter rules from
 * etc/rules.txt plus generated keyword rules spread over the targets the
 * way rule sets are (mostly body, subject, headers and URLs; a few raw).
 * Most rules do not match, as in real mail, and a few do.
 *
 * Run by `make bench` from the repository root.
 */
#include "rules/mime.h"
#include "rules/rules.h"
#include "lib/util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BENCH_RULES	500
#define BENCH_MSG_SIZE	(100 * 1024)
#define BENCH_ROUNDS	200

static const char *words[] = {
	"account", "offer", "delivery", "invoice", "meeting", "report", "update",
	"price", "discount", "shipping", "order", "customer", "service", "product",
	"weekly", "newsletter", "team", "project", "review", "schedule", "payment",
	"support", "security", "notice", "limited", "exclusive", "free", "bonus",
};

static unsigned long lcg = 12345;

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static unsigned
rnd(unsigned n)
{
	lcg = lcg * 6364136223846793005UL + 1442695040888963407UL;
	return (unsigned)((lcg >> 33) % n);
}

/* Append text of about n bytes: sentences of words, a URL now and then. */
static void
prose(char **p, size_t *len, size_t n, int html)
{
	size_t end = *len + n;

	while (*len < end) {
		char line[256];
		int k = 0;
		if (html)
			k += snprintf(line + k, sizeof(line) - (size_t)k, "<p>");
		for (int w = 0; w < 9; w++)
			k += snprintf(line + k, sizeof(line) - (size_t)k, "%s%s",
			    w ? " " : "", words[rnd(ARRAY_SIZE(words))]);
		if (rnd(8) == 0)
			k += snprintf(line + k, sizeof(line) - (size_t)k, html ?
			    " <a href=\"https://news%u.example/item?id=%u\">more</a>" :
			    " https://news%u.example/item?id=%u", rnd(50), rnd(100000));
		k += snprintf(line + k, sizeof(line) - (size_t)k, "%s\r\n", html ? "</p>" : ".");
		*p = xrealloc(*p, *len + (size_t)k + 1);
		memcpy(*p + *len, line, (size_t)k + 1);
		*len += (size_t)k;
	}
}

static void
append(char **p, size_t *len, const char *s)
{
	size_t n = strlen(s);

	*p = xrealloc(*p, *len + n + 1);
	memcpy(*p + *len, s, n + 1);
	*len += n;
}

/* Base64 with 76-column lines (RFC 2045 6.8). */
static void
base64(char **p, size_t *len, const char *s, size_t n)
{
	static const char b[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char line[80];
	int col = 0;

	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned char)s[i] << 16 |
		    (i + 1 < n ? (unsigned char)s[i + 1] << 8 : 0) |
		    (i + 2 < n ? (unsigned char)s[i + 2] : 0);
		line[col++] = b[v >> 18 & 63];
		line[col++] = b[v >> 12 & 63];
		line[col++] = i + 1 < n ? b[v >> 6 & 63] : '=';
		line[col++] = i + 2 < n ? b[v & 63] : '=';
		if (col == 76 || i + 3 >= n) {
			line[col] = '\0';
			append(p, len, line);
			append(p, len, "\r\n");
			col = 0;
		}
	}
}

static char *
message(size_t *len)
{
	char *m = NULL, *html = NULL, *bin;
	size_t n = 0, hn = 0;

	append(&m, &n, "Received: from mx.sender.example (mx.sender.example [192.0.2.10])\r\n"
	    "\tby mx.example.org with ESMTPS; Mon, 23 Nov 2026 04:00:00 +0000\r\n"
	    "From: \"Weekly News\" <news@sender.example>\r\nTo: alice@example.org\r\n"
	    "Subject: =?UTF-8?Q?Your_weekly_update_=E2=80=94_offers_inside?=\r\n"
	    "Date: Mon, 23 Nov 2026 04:00:00 +0000\r\nMessage-ID: <bench@sender.example>\r\n"
	    "X-Mailer: Example Mailer 4.2\r\nMIME-Version: 1.0\r\n"
	    "Content-Type: multipart/mixed; boundary=\"MIX\"\r\n\r\n"
	    "--MIX\r\nContent-Type: multipart/alternative; boundary=\"ALT\"\r\n\r\n"
	    "--ALT\r\nContent-Type: text/plain; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n\r\n");
	prose(&m, &n, 40 * 1024, 0);
	append(&m, &n, "\r\n--ALT\r\nContent-Type: text/html; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\n");
	prose(&html, &hn, 30 * 1024, 1);
	base64(&m, &n, html, hn);
	append(&m, &n, "--ALT--\r\n\r\n--MIX\r\nContent-Type: application/pdf\r\n"
	    "Content-Disposition: attachment; filename=\"report.pdf\"\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\n");
	/* fill up to BENCH_MSG_SIZE: base64 is 4/3 the size plus CRLF per 76 */
	size_t rem = BENCH_MSG_SIZE > n + 100 ? BENCH_MSG_SIZE - n - 100 : 0;
	size_t bn = rem * 3 / 4 * 76 / 78;
	bin = xmalloc(bn + 1);
	for (size_t i = 0; i < bn; i++)
		bin[i] = (char)rnd(256);
	base64(&m, &n, bin, bn);
	append(&m, &n, "--MIX--\r\n");
	free(bin);
	free(html);
	*len = n;
	return m;
}

/* The starter set plus generated rules, BENCH_RULES in all; *nstarter
 * is how many came from etc/rules.txt. */
static struct rule_def *
rules(size_t *n, size_t *nstarter)
{
	static const char *targets[] = { "body", "body", "body", "body", "subject",
	    "subject", "header:X-Mailer", "header:Received", "url", "url", "from",
	    "attachment", "raw" };
	struct rule_def *d;
	size_t len, k = 0;
	char err[256], *text;
	FILE *f = fopen("etc/rules.txt", "rb");

	if (f == NULL)
		fatal("etc/rules.txt");
	text = xmalloc(1 << 20);
	len = fread(text, 1, (1 << 20) - 1, f);
	fclose(f);
	if (rule_text_parse(text, len, &d, &k, err, sizeof(err)) == -1)
		fatalx("etc/rules.txt: %s", err);
	free(text);
	*nstarter = k;
	d = xrealloc(d, BENCH_RULES * sizeof(*d));
	for (unsigned i = 0; k < BENCH_RULES; i++, k++) {
		const char *w = words[rnd(ARRAY_SIZE(words))];
		d[k].id = 0;
		d[k].name = xasprintf("gen%u", i);
		d[k].target = xstrdup(targets[rnd(ARRAY_SIZE(targets))]);
		/* keyword+suffix rules that rarely match; every 25th matches */
		d[k].pattern = i % 25 == 0 ? xasprintf("\\b%s\\b", w) : rnd(2) ?
		    xasprintf("\\b%s[- ]?(now|%uoff|deal%u)\\b", w, i, i) :
		    xasprintf("(?:spam%u|%s-%u|x%uy)", i, w, i, i);
		d[k].flags = xstrdup(rnd(2) ? "i" : "");
		d[k].action = xstrdup("score");
		d[k].score = 0.1;
		d[k].enabled = 1;
	}
	*n = k;
	return d;
}

static void
run(const char *label, const struct rule_def *d, size_t nd, const char *msg,
    size_t len, int jit, int prefilter)
{
	struct rule_opts o = { .match_limit = 1000000, .depth_limit = 10000,
	    .jit = jit, .no_prefilter = !prefilter };
	char err[256];
	struct rule_set *rs = rule_set_build(d, nd, &o, err, sizeof(err));
	uint64_t t0, parse = 0, match = 0;
	int hits = 0;

	if (rs == NULL)
		fatalx("build: %s", err);
	for (int r = 0; r < BENCH_ROUNDS; r++) {
		t0 = now_ns();
		struct mime_msg *m = mime_parse(msg, len);
		uint64_t t1 = now_ns();
		struct rule_input in = { .msg = m, .raw = msg, .rawlen = len };
		hits = rule_set_eval(rs, &in, RULE_MASK_CONTENT, NULL, NULL);
		match += now_ns() - t1;
		parse += t1 - t0;
		mime_free(m);
	}
	printf("rules_bench %s: %zu rules, %zu-byte message, %d rules matched: "
	    "%.3f ms/message/core (parse %.3f + match %.3f)\n", label,
	    rule_set_count(rs), len, hits,
	    (double)(parse + match) / BENCH_ROUNDS / 1e6, (double)parse / BENCH_ROUNDS / 1e6,
	    (double)match / BENCH_ROUNDS / 1e6);
	rule_set_unref(rs);
}

int
main(int argc, char **argv)
{
	int quick = argc > 1 && strcmp(argv[1], "-1") == 0;	/* first mode only (profiling) */
	size_t len, nd, nstarter;
	char *msg = message(&len);
	struct rule_def *d = rules(&nd, &nstarter);

	mime_init();
	run("jit+prefilter", d, nd, msg, len, 1, 1);
	if (!quick) {
		run("starter set (etc/rules.txt), jit+prefilter", d, nstarter, msg, len, 1, 1);
		run("jit", d, nd, msg, len, 1, 0);
		run("interpreter+prefilter", d, nd, msg, len, 0, 1);
	}
	for (size_t i = 0; i < nd; i++)
		rule_def_clear(&d[i]);
	free(d);
	free(msg);
	return 0;
}
