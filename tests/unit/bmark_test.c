/* bmark_test.c -- the Markov model's text, grams, learn keys and mean:
 * the normalised text of small messages pinned byte for byte, the gram
 * and context hashes pinned (learned tables hold them), the keys distinct
 * with the marker last, and the mean against counts set by hand. */
#include "t.h"
#include "policy/bmark.h"
#include "policy/btab.h"
#include "rules/mime.h"
#include "lib/buf.h"
#include "lib/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The normalised text of msg, at most max bytes, as a C string. */
static char *
text_of(const char *msg, size_t max)
{
	struct mime_msg *m = mime_parse(msg, strlen(msg));
	char *buf = xmalloc(max + 1);
	size_t n = bmark_text(m, max, buf);

	buf[n] = '\0';
	mime_free(m);
	return buf;
}

T_CASE(text_headers_then_body_normalised)
{
	char *t = text_of("From: Alice <Alice@Example.ORG>\r\n"
	    "Subject: =?UTF-8?B?Q2hlYXAgUGlsbHM=?= -- 50% OFF!!\r\n\r\n"
	    "Buy NOW,   at $9.99...\r\n\r\nit's d\xc3\xa9j\xc3\xa0 vu\r\n", 4096);

	/* header names and decoded values, lower-cased ASCII; runs of
	 * non-word bytes one space; word bytes keep . - _ $ ' and UTF-8 */
	T_EQ_STR(t, " from alice alice example.org subject cheap pills -- 50 off "
	    "buy now at $9.99... it's d\xc3\xa9j\xc3\xa0 vu ");
	free(t);
}

T_CASE(text_html_as_text_and_cut)
{
	char *t = text_of("Subject: Hi\r\nContent-Type: text/html\r\n\r\n"
	    "<p>Click <b>HERE</b></p>\r\n", 4096);

	/* (rules/mime.c lists the message's own headers; the MIME part
	 * headers are the layout's, not text) */
	T_EQ_STR(t, " subject hi click here ");
	free(t);
	/* the cut: the first max bytes of that text, of which the headers
	 * take at most half (cut in a word, the body starts after a space) */
	t = text_of("Subject: Hi\r\nContent-Type: text/html\r\n\r\n<p>Click</p>\r\n", 14);
	T_EQ_STR(t, " subjec click ");
	free(t);
	t = text_of("Subject: Hi\r\nContent-Type: text/html\r\n\r\n<p>Click</p>\r\n", 22);
	T_EQ_STR(t, " subject hi click ");
	free(t);
	t = text_of("Subject: Hi\r\n\r\nx\r\n", 0);
	T_EQ_STR(t, "");
	free(t);
}

/* Today's header sections run to kilobytes (a dozen hops, ARC sets, DKIM
 * signatures): the signatures are skipped and the rest takes at most half
 * of the text, so the body is read. */
T_CASE(text_long_headers_leave_room_for_the_body)
{
	struct buf msg = { 0 };
	char *t;

	buf_adds(&msg, "DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=sel; "
	    "b=QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=\r\n"
	    "ARC-Seal: i=1; a=rsa-sha256; cv=none; b=WllYV1ZVVFNSUVBPTk1MSw==\r\n"
	    "Authentication-Results: mx.example.org; spf=pass\r\n");
	for (int i = 0; i < 40; i++)
		buf_printf(&msg, "Received: from relay%d.example.net by mx.example.org\r\n", i);
	buf_adds(&msg, "Subject: Hi\r\n\r\nthe body speaks\r\n");
	t = text_of(buf_str(&msg), 1000);
	T_ASSERT(strstr(t, "qujd") == NULL && strstr(t, "wllyv") == NULL);
	T_ASSERT(strstr(t, "spf") == NULL);
	T_ASSERT(strncmp(t, " received from relay0.example.net by mx.example.org ", 52) == 0);
	T_ASSERT(strstr(t, "relay5.") != NULL && strstr(t, "relay20.") == NULL);
	T_ASSERT(strlen(t) <= 1000);
	/* the Subject came after the cut; the body is there whole */
	T_ASSERT(strstr(t, "subject") == NULL);
	T_EQ_STR(t + strlen(t) - strlen(" the body speaks "), " the body speaks ");
	free(t);
	buf_free(&msg);
}

T_CASE(grams_positions_and_pinned_hashes)
{
	struct bmark b = { 0 };

	bmark_grams_text(&b, " abcdef abcd", 12);
	/* 8 positions, but " abcd" at 0 and at 7 are one gram: counted once */
	T_EQ_INT(b.n, 12 - BMARK_ORDER);
	/* " abcd" and "abcde" differ */
	T_ASSERT(b.gram[0] != b.gram[1]);
	for (size_t i = 1; i < b.n; i++)
		T_ASSERT(b.gram[i] != b.gram[0]);
	/* the gram of " abc" plus a byte is never the context " abc" */
	T_ASSERT(b.gram[0] != b.ctx[0]);
	/* the hashes are what tables learned hold: pinned */
	T_EQ_INT(b.gram[0], (long long)0xc04a3077c93ba70fULL);
	T_EQ_INT(b.ctx[0], (long long)0x6cbc29dc2981e95dULL);
	T_EQ_INT(b.gram[5], (long long)0x01ffeb8112f45b22ULL);
	bmark_grams_text(&b, " abc", 4);	/* shorter than a gram: nothing */
	T_EQ_INT(b.n, 0);
	bmark_free(&b);
}

/* The first pass's grams are the first positions of the whole text's,
 * and say whether the text went on; a text that fits is all read. */
T_CASE(grams_first_is_a_prefix)
{
	const char *msg = "Subject: first\r\n\r\none two three four five six seven\r\n";
	struct mime_msg *m = mime_parse(msg, strlen(msg));
	struct bmark all = { 0 }, first = { 0 }, fits = { 0 };

	bmark_grams(&all, m, 3000);
	T_EQ_INT(bmark_grams_first(&first, m, 3000, 20), 1);
	T_EQ_INT(bmark_grams_first(&fits, m, 3000, 3000), 0);
	T_EQ_INT(first.n, 20 - BMARK_ORDER + 1);
	T_ASSERT(all.n > first.n);
	T_EQ_INT(fits.n, all.n);
	T_EQ_INT(memcmp(first.gram, all.gram, first.n * sizeof(*first.gram)), 0);
	T_EQ_INT(memcmp(first.ctx, all.ctx, first.n * sizeof(*first.ctx)), 0);
	bmark_free(&all);
	bmark_free(&first);
	bmark_free(&fits);
	mime_free(m);
	/* the first part cut inside the headers, and a text of exactly the
	 * first part's length (" x y " is 5 bytes: not cut) */
	msg = "X-A: alpha beta gamma delta\r\nX-B: epsilon zeta\r\n\r\nbody text here\r\n";
	m = mime_parse(msg, strlen(msg));
	memset(&all, 0, sizeof(all));
	bmark_grams(&all, m, 3000);
	for (size_t cut = 5; cut < 40; cut++) {
		memset(&first, 0, sizeof(first));
		T_EQ_INT(bmark_grams_first(&first, m, 3000, cut), 1);
		T_EQ_INT(first.n, cut - BMARK_ORDER + 1);
		T_EQ_INT(memcmp(first.gram, all.gram, first.n * sizeof(*first.gram)), 0);
		bmark_free(&first);
	}
	bmark_free(&all);
	mime_free(m);
	msg = "X: y\r\n\r\n";
	m = mime_parse(msg, strlen(msg));
	memset(&fits, 0, sizeof(fits));
	T_EQ_INT(bmark_grams_first(&fits, m, 3000, 5), 0);
	bmark_free(&fits);
	T_EQ_INT(bmark_grams_first(&fits, m, 3000, 4), 1);
	bmark_free(&fits);
	mime_free(m);
}

T_CASE(keys_every_position_marker_last)
{
	struct bmark b = { 0 };
	uint64_t *k;
	size_t n;

	/* " aaaaaaaa": " aaaa", then the gram "aaaaa" four times, kept once */
	bmark_grams_text(&b, " aaaaaaaa", 9);
	T_EQ_INT(b.n, 2);
	k = xmalloc((2 * b.n + 1) * sizeof(*k));
	n = bmark_keys(&b, k);
	/* each position's gram, each one's context, the marker (the learn
	 * counts a key once; bayes_test markov_repeats_count_once) */
	T_EQ_INT(n, 5);
	T_EQ_INT(k[n - 1] == BMARK_MARKER, 1);
	for (size_t i = 0; i < b.n; i++) {
		T_ASSERT(k[i] == b.gram[i]);
		T_ASSERT(k[b.n + i] == b.ctx[i]);
	}
	T_ASSERT(k[0] != k[1] && k[2] != k[3]);
	free(k);
	bmark_free(&b);
	/* a repeated gram keeps its first place; a repeated context with a
	 * new byte is a new gram: " abcd abce abcd" */
	bmark_grams_text(&b, " abcd abce abcd", 15);
	T_EQ_INT(b.n, 11 - 1);	/* 11 positions, " abcd" again at the last */
	T_ASSERT(b.ctx[0] == b.ctx[5]);	/* " abc" before 'd', then 'e' */
	T_ASSERT(b.gram[0] != b.gram[5]);
	bmark_free(&b);
	/* no positions, no keys (not even the marker) */
	T_EQ_INT(bmark_keys(&b, NULL), 0);
}

/* The mean is the formula of bmark.h over the positions, from the table. */
T_CASE(mean_from_counts)
{
	struct bmark b = { 0 };
	struct btab *t = btab_new(0);
	double a = 1.0, v = 1000.0, want;

	bmark_grams_text(&b, " abcdef", 7);	/* 3 positions */
	T_EQ_INT(b.n, 3);
	/* position 0: gram in 4 spam, 0 ham; context in 5 spam, 6 ham;
	 * position 1: gram 1 spam 2 ham, context 100 spam 200 ham;
	 * position 2: nothing known (0) */
	btab_set(t, b.gram[0], 4, 0);
	btab_set(t, b.ctx[0], 5, 6);
	btab_set(t, b.gram[1], 1, 2);
	btab_set(t, b.ctx[1], 100, 200);
	want = (log((4 + a / v) / (5 + a)) - log((0 + a / v) / (6 + a)) +
	    log((1 + a / v) / (100 + a)) - log((2 + a / v) / (200 + a)) + 0) / 3;
	T_ASSERT(fabs(bmark_mean(&b, t) - want) < 1e-12);
	T_ASSERT(bmark_mean(&b, t) > 0);	/* a gram only spam had leans spam */
	btab_set(t, b.gram[0], 0, 4);
	btab_set(t, b.ctx[0], 6, 5);
	T_ASSERT(bmark_mean(&b, t) < 0);
	bmark_free(&b);
	T_ASSERT(bmark_mean(&b, t) == 0);	/* no positions: says nothing */
	btab_free(t);
	/* a repeat weighs once: " abcde abcde abcde" has the 6 distinct
	 * grams of " abcde abc" and no more, so a spam-only " abcd" is one
	 * sixth of the mean however often it comes */
	t = btab_new(0);
	bmark_grams_text(&b, " abcde abcde abcde", 18);
	T_EQ_INT(b.n, 6);
	btab_set(t, b.gram[0], 4, 0);
	btab_set(t, b.ctx[0], 4, 0);
	want = (log((4 + a / v) / (4 + a)) - log((0 + a / v) / (0 + a))) / 6;
	T_ASSERT(fabs(bmark_mean(&b, t) - want) < 1e-12);
	bmark_free(&b);
	btab_free(t);
}

int
main(void)
{
	log_init("bmark_test", 0);
	mime_init();
	T_RUN(text_headers_then_body_normalised);
	T_RUN(text_html_as_text_and_cut);
	T_RUN(text_long_headers_leave_room_for_the_body);
	T_RUN(grams_positions_and_pinned_hashes);
	T_RUN(grams_first_is_a_prefix);
	T_RUN(keys_every_position_marker_last);
	T_RUN(mean_from_counts);
	return T_END();
}
