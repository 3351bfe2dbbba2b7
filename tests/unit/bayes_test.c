/* bayes_test.c -- the classifier: tokeniser (btok), count table (btab),
 * learning through db_bayes_* (exact counts, once per digest, moves and
 * forgets), the cap with its expiry, and combining on a small trained set. */
#include "t.h"
#include "policy/bayes.h"
#include "policy/bmark.h"
#include "policy/btab.h"
#include "policy/btok.h"
#include "lib/conf.h"
#include "db/db.h"
#include "rules/mime.h"
#include "lib/util.h"

#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[] = "/tmp/postern-bayestest-XXXXXX";
static struct conf *c;

/* Does the set hold a token whose readable form is text? */
static int
has_token(const struct btok_set *s, const char *text)
{
	char buf[BAYES_TOKEN_TEXT];

	for (size_t i = 0; i < s->n; i++)
		if (strcmp(btok_format(s, &s->v[i], buf, sizeof(buf)), text) == 0)
			return 1;
	return 0;
}

static void
tokenise(struct btok_set *s, const char *msg)
{
	struct mime_msg *m = mime_parse(msg, strlen(msg));

	memset(s, 0, sizeof(*s));
	btok_message(s, m, strlen(msg));
	mime_free(m);
}

T_CASE(tokens_words_lowercase_unique)
{
	struct btok_set s = { 0 };

	btok_text(&s, "Hello hello HELLO, World! a", 26);
	btok_unique(&s);
	T_ASSERT(has_token(&s, "hello"));
	T_ASSERT(has_token(&s, "world"));
	T_ASSERT(!has_token(&s, "a"));		/* shorter than BTOK_MIN_WORD */
	T_ASSERT(has_token(&s, "hello hello"));	/* bigram, distance 1 */
	T_ASSERT(has_token(&s, "hello world"));
	T_ASSERT(has_token(&s, "hello .. world"));	/* distance 2 */
	/* hello, world, hello+hello (d1, d2), hello+world (d1, d2) */
	T_EQ_INT(s.n, 6);
	for (size_t i = 0; i < s.n; i++)
		for (size_t j = i + 1; j < s.n; j++)
			T_ASSERT(s.v[i].h != s.v[j].h);
	btok_free(&s);
}

T_CASE(tokens_bounded_words)
{
	struct btok_set s = { 0 };
	char blob[200];

	memset(blob, 'Q', sizeof(blob) - 1);
	blob[sizeof(blob) - 1] = '\0';
	btok_text(&s, blob, strlen(blob));
	btok_text(&s, " 1234567 ", 9);
	btok_unique(&s);
	T_ASSERT(has_token(&s, "skip:q190"));	/* first letter, length in tens */
	T_ASSERT(has_token(&s, "skip:#7"));	/* a long number: its length */
	T_EQ_INT(s.n, 2);
	btok_free(&s);
}

T_CASE(tokens_headers_urls_layout)
{
	struct btok_set s;

	tokenise(&s, "From: Alice <alice@Mail.Example.ORG>\r\n"
	    "Subject: =?UTF-8?B?Q2hlYXAgcGlsbHM=?=\r\n"
	    "X-Mailer: FooMail 1.0\r\n"
	    "Content-Type: text/html; charset=iso-8859-1\r\n\r\n"
	    "<p>Buy <b>now</b> at <a href=\"http://www.shop.example.net/x\">here</a></p>\r\n");
	T_ASSERT(has_token(&s, "subject:cheap"));	/* RFC 2047 decoded */
	T_ASSERT(has_token(&s, "subject:pills"));
	T_ASSERT(has_token(&s, "from:alice"));
	T_ASSERT(has_token(&s, "from:@mail.example.org"));
	T_ASSERT(has_token(&s, "mailer:foomail"));
	T_ASSERT(!has_token(&s, "header:x-mailer"));	/* header names are not tokens */
	T_ASSERT(has_token(&s, "url:www.shop.example.net"));
	T_ASSERT(has_token(&s, "urldomain:example.net"));
	T_ASSERT(has_token(&s, "trait:html-only"));
	T_ASSERT(has_token(&s, "part:text/html iso-8859-1"));
	T_ASSERT(has_token(&s, "buy now"));	/* HTML as text */
	T_ASSERT(!has_token(&s, "cheap"));	/* subject words are their own kind */
	btok_free(&s);
}

/* Markup in a header value reaches a token's text as it is (the web
 * pages must escape it; tests/integration/test_bayes_web.py). */
T_CASE(tokens_part_charset_kept_verbatim)
{
	struct btok_set s;

	tokenise(&s, "Content-Type: text/plain; charset=\"x-<script>alert(1)</script>\"\r\n"
	    "Subject: hi\r\n\r\nbody\r\n");
	T_ASSERT(has_token(&s, "part:text/plain x-<script>alert(1)</script>"));
	btok_free(&s);
}

T_CASE(tokens_received_relay_ips)
{
	struct btok_set s;

	tokenise(&s, "Received: from relay.example.com (relay.example.com [192.0.2.77])\r\n"
	    "\tby mx.example.org with ESMTP id 12345678\r\n"
	    "Received: from h (x [999.1.2.3]) by y\r\n"
	    "Subject: hi\r\n\r\nbody 10.0.0.1\r\n");
	T_ASSERT(has_token(&s, "received-ip:192.0.2.77"));
	T_ASSERT(has_token(&s, "received-ip:192.0.2/24"));
	T_ASSERT(has_token(&s, "received:relay.example.com"));
	T_ASSERT(has_token(&s, "skip:#8"));		/* other numbers: their shape */
	T_ASSERT(!has_token(&s, "received-ip:999.1.2.3"));	/* not an address */
	T_ASSERT(!has_token(&s, "received-ip:10.0.0.1"));	/* body numbers stay words */
	btok_free(&s);
}

T_CASE(table_set_get_delete)
{
	struct btab *t = btab_new(0);
	unsigned sp, hm;
	int ok = 1;

	/* enough keys to grow several times and to wrap probe runs */
	for (uint64_t k = 1; k <= 20000; k++)
		btab_set(t, k * 0x9e3779b97f4a7c15ULL, (unsigned)k, (unsigned)(k * 2));
	T_EQ_INT(btab_count(t), 20000);
	for (uint64_t k = 1; k <= 20000; k += 2)
		btab_set(t, k * 0x9e3779b97f4a7c15ULL, 0, 0);	/* delete odd */
	T_EQ_INT(btab_count(t), 10000);
	for (uint64_t k = 1; k <= 20000; k++) {
		int found = btab_get(t, k * 0x9e3779b97f4a7c15ULL, &sp, &hm);
		if (found != (k % 2 == 0) || (found && (sp != k || hm != k * 2)))
			ok = 0;
	}
	T_ASSERT(ok);
	T_ASSERT(btab_bytes(t) * BTAB_LOAD_PCT / 100 >= 10000 * 16);
	btab_free(t);
}

/* Counts of one token (by text) in the database, via the tokeniser. */
struct row_find {
	uint64_t key;
	unsigned spam, ham;
	int found;
};

static void
row_find_fn(void *arg, uint64_t key, unsigned spam, unsigned ham)
{
	struct row_find *r = arg;

	if (key == r->key) {
		r->spam = spam;
		r->ham = ham;
		r->found = 1;
	}
}

static struct row_find
token_counts(const char *msg, const char *text)
{
	struct row_find r = { 0 };
	struct db_bayes_meta m;
	struct btok_set s;
	char buf[BAYES_TOKEN_TEXT];

	tokenise(&s, msg);
	for (size_t i = 0; i < s.n; i++)
		if (strcmp(btok_format(&s, &s.v[i], buf, sizeof(buf)), text) == 0)
			r.key = s.v[i].h;
	btok_free(&s);
	db_bayes_load(-1, &m, row_find_fn, &r);
	return r;
}

static const char msg_a[] = "Subject: zebra offer\r\n\r\nquagga okapi zebra\r\n";
static const char msg_b[] = "Subject: meeting\r\n\r\nokapi agenda notes\r\n";

T_CASE(learn_counts_exact)
{
	struct bayes_learned l;
	struct db_bayes_meta m;
	struct row_find r;

	T_EQ_INT(bayes_learn(c, msg_a, strlen(msg_a), BAYES_LEARN_SPAM, &l), 0);
	T_EQ_INT(l.was, -1);
	T_EQ_INT(l.changed, 1);
	T_EQ_INT(bayes_learn(c, msg_b, strlen(msg_b), BAYES_LEARN_HAM, &l), 0);
	r = token_counts(msg_a, "okapi");
	T_EQ_INT(r.spam, 1);
	T_EQ_INT(r.ham, 1);
	/* again, same class: nothing moves */
	T_EQ_INT(bayes_learn(c, msg_a, strlen(msg_a), BAYES_LEARN_SPAM, &l), 0);
	T_EQ_INT(l.was, BAYES_LEARN_SPAM);
	T_EQ_INT(l.changed, 0);
	db_bayes_meta(&m);
	T_EQ_INT(m.nspam, 1);
	T_EQ_INT(m.nham, 1);
	r = token_counts(msg_a, "zebra");
	T_EQ_INT(r.spam, 1);
	T_EQ_INT(r.ham, 0);
	/* the same message with LF line ends and an mbox From line is the
	 * same message */
	static const char lf[] = "From x@y Mon Jan  1 00:00:00 2024\nSubject: zebra offer\n\n"
	    "quagga okapi zebra\n";
	T_EQ_INT(bayes_learn(c, lf, strlen(lf), BAYES_LEARN_SPAM, &l), 0);
	T_EQ_INT(l.changed, 0);
}

T_CASE(relearn_moves_forget_removes)
{
	struct bayes_learned l;
	struct db_bayes_meta m;
	struct row_find r;

	T_EQ_INT(bayes_learn(c, msg_a, strlen(msg_a), BAYES_LEARN_HAM, &l), 0);
	T_EQ_INT(l.was, BAYES_LEARN_SPAM);
	T_EQ_INT(l.changed, 1);
	db_bayes_meta(&m);
	T_EQ_INT(m.nspam, 0);
	T_EQ_INT(m.nham, 2);
	r = token_counts(msg_a, "zebra");
	T_EQ_INT(r.spam, 0);
	T_EQ_INT(r.ham, 1);
	r = token_counts(msg_a, "okapi");
	T_EQ_INT(r.ham, 2);
	T_EQ_INT(bayes_learn(c, msg_a, strlen(msg_a), BAYES_FORGET, &l), 0);
	T_EQ_INT(l.was, BAYES_LEARN_HAM);
	db_bayes_meta(&m);
	T_EQ_INT(m.nham, 1);
	r = token_counts(msg_a, "zebra");
	T_EQ_INT(r.spam + r.ham, 0);
	r = token_counts(msg_a, "okapi");
	T_EQ_INT(r.ham, 1);
	/* forgetting what is not learned changes nothing */
	T_EQ_INT(bayes_learn(c, msg_a, strlen(msg_a), BAYES_FORGET, &l), 0);
	T_EQ_INT(l.was, -1);
	T_EQ_INT(l.changed, 0);
	T_EQ_INT(bayes_learn(c, msg_b, strlen(msg_b), BAYES_FORGET, &l), 0);
	db_bayes_meta(&m);
	T_EQ_INT(m.nham + m.nspam, 0);
}

/* Counts of one key in the database. */
static struct row_find
key_counts(uint64_t key)
{
	struct row_find r = { .key = key };
	struct db_bayes_meta m;

	db_bayes_load(-1, &m, row_find_fn, &r);
	return r;
}

/* A gram of msg's Markov text (position i). */
static uint64_t
gram_of(const char *msg, size_t i)
{
	struct mime_msg *m = mime_parse(msg, strlen(msg));
	struct bmark b = { 0 };
	uint64_t g;

	bmark_grams(&b, m, (size_t)c->bayes_markov_bytes);
	g = i < b.n ? b.gram[i] : 0;
	bmark_free(&b);
	mime_free(m);
	return g;
}

#define T_COUNTS(r, s, h) do { struct row_find _r = (r); \
	T_EQ_INT(_r.spam, s); T_EQ_INT(_r.ham, h); } while (0)

/* The marker (messages learned with grams) and the grams move exactly
 * with learn, learn again, relearn as the other class and forget; with
 * bayes.markov off nothing of the model is learned. Empty before and
 * after. */
T_CASE(markov_marker_moves_with_learn)
{
	/* " subject zebra..." and " subject meeting...": position 10 is
	 * "ebra " in one and "eting" in the other */
	uint64_t ga = gram_of(msg_a, 10), gb = gram_of(msg_b, 10);
	struct bayes_learned l;

	/* each learn, then the marker's and one gram's counts */
	static const struct {
		const char *msg;
		enum bayes_class cls;
		unsigned ms, mh, gs, gh;
	} step[] = {
		{ msg_a, BAYES_LEARN_SPAM, 1, 0, 1, 0 },
		{ msg_a, BAYES_LEARN_SPAM, 1, 0, 1, 0 },	/* again: nothing moves */
		{ msg_b, BAYES_LEARN_HAM, 1, 1, 0, 1 },
		{ msg_a, BAYES_LEARN_HAM, 0, 2, 0, 1 },		/* moved from spam */
		{ msg_a, BAYES_FORGET, 0, 1, 0, 0 },
		{ msg_b, BAYES_FORGET, 0, 0, 0, 0 },
	};

	T_ASSERT(ga != 0 && gb != 0 && ga != gb);
	T_COUNTS(key_counts(BMARK_MARKER), 0, 0);	/* (a forgotten row may stay at 0) */
	for (size_t i = 0; i < ARRAY_SIZE(step); i++) {
		T_EQ_INT(bayes_learn(c, step[i].msg, strlen(step[i].msg), step[i].cls, &l), 0);
		T_EQ_INT(l.changed, i != 1);
		T_COUNTS(key_counts(BMARK_MARKER), step[i].ms, step[i].mh);
		T_COUNTS(key_counts(step[i].msg == msg_a ? ga : gb), step[i].gs, step[i].gh);
	}
	/* off: the words are learned, no gram and no marker */
	c->bayes_markov = 0;
	T_EQ_INT(bayes_learn(c, msg_a, strlen(msg_a), BAYES_LEARN_SPAM, &l), 0);
	T_EQ_INT(l.changed, 1);
	T_COUNTS(token_counts(msg_a, "zebra"), 1, 0);
	T_COUNTS(key_counts(BMARK_MARKER), 0, 0);
	T_COUNTS(key_counts(ga), 0, 0);
	T_EQ_INT(bayes_learn(c, msg_a, strlen(msg_a), BAYES_FORGET, &l), 0);
	c->bayes_markov = 1;
}

/* A gram that stands many times in a message counts once for it, as a
 * word does: learned, relearned and forgotten by one each time. */
T_CASE(markov_repeats_count_once)
{
	static const char msg[] = "Subject: r\r\n\r\nzzzzzzzzzzzzzzzz zzzzzzzzzzzz\r\n";
	struct bmark b = { 0 };
	struct bayes_learned l;
	uint64_t g, cx;

	bmark_grams_text(&b, "zzzzz", 5);
	g = b.gram[0];
	cx = b.ctx[0];
	bmark_free(&b);
	T_EQ_INT(bayes_learn(c, msg, strlen(msg), BAYES_LEARN_SPAM, &l), 0);
	T_COUNTS(key_counts(g), 1, 0);
	T_COUNTS(key_counts(cx), 1, 0);
	T_EQ_INT(bayes_learn(c, msg, strlen(msg), BAYES_LEARN_HAM, &l), 0);
	T_COUNTS(key_counts(g), 0, 1);
	T_EQ_INT(bayes_learn(c, msg, strlen(msg), BAYES_FORGET, &l), 0);
	T_COUNTS(key_counts(g), 0, 0);
	T_COUNTS(key_counts(cx), 0, 0);
}

/* A message of n made-up words from a vocabulary of its class. */
static char *
gen_msg(int spam, unsigned seed, int words)
{
	static const char *sw[] = { "viagra", "cheap", "pills", "winner", "casino",
	    "mortgage", "refinance", "click", "unsubscribe", "offer", "rolex", "bonus" };
	static const char *hw[] = { "meeting", "agenda", "kernel", "patch", "review",
	    "lunch", "report", "build", "release", "thanks", "minutes", "draft" };
	char *b = xmalloc((size_t)words * 16 + 128);
	int o = sprintf(b, "Subject: %s %u\r\n\r\n", spam ? "great offer" : "status", seed);

	for (int i = 0; i < words; i++) {
		seed = seed * 1103515245u + 12345u;
		o += sprintf(b + o, "%s ", (spam ? sw : hw)[(seed >> 16) % 12]);
	}
	strcpy(b + o, "\r\n");
	return b;
}

/* Batches (`postern learn`): a full batch is written by the add that
 * fills it; the counts tell learned, moved, already so and forgotten. The
 * database is empty again at the end. */
T_CASE(batch_counts_and_flushes)
{
	const struct bayes_batch_counts *n;
	struct bayes_batch *b;
	struct db_bayes_meta m;
	int wrote = 0;
	char *x;

	b = bayes_batch_new(c, BAYES_LEARN_SPAM);
	n = bayes_batch_counts(b);
	T_EQ_INT(bayes_batch_add(b, msg_a, strlen(msg_a)), 0);
	T_EQ_INT(bayes_batch_add(b, msg_a, strlen(msg_a)), 0);	/* twice in one batch */
	T_EQ_INT(n->seen, 2);
	T_EQ_INT(n->changed, 0);		/* nothing written yet */
	T_EQ_INT(bayes_batch_flush(b), 0);
	T_EQ_INT(n->changed, 1);
	T_EQ_INT(n->same, 1);
	T_EQ_INT(n->moved, 0);
	bayes_batch_free(b);

	b = bayes_batch_new(c, BAYES_LEARN_HAM);
	n = bayes_batch_counts(b);
	bayes_batch_add(b, msg_a, strlen(msg_a));
	for (unsigned i = 1; i < BAYES_BATCH; i++) {
		x = gen_msg(0, 1000 + i, 10);
		wrote += bayes_batch_add(b, x, strlen(x));
		T_EQ_INT(wrote, i == BAYES_BATCH - 1);
		free(x);
	}
	T_EQ_INT(n->changed, BAYES_BATCH);
	T_EQ_INT(n->moved, 1);			/* msg_a, from spam */
	T_EQ_INT(bayes_batch_flush(b), 0);	/* nothing left */
	bayes_batch_free(b);
	db_bayes_meta(&m);
	T_EQ_INT(m.nspam, 0);
	T_EQ_INT(m.nham, BAYES_BATCH);

	b = bayes_batch_new(c, BAYES_FORGET);
	n = bayes_batch_counts(b);
	bayes_batch_add(b, msg_a, strlen(msg_a));
	for (unsigned i = 1; i < BAYES_BATCH; i++) {
		x = gen_msg(0, 1000 + i, 10);
		bayes_batch_add(b, x, strlen(x));
		free(x);
	}
	bayes_batch_add(b, msg_b, strlen(msg_b));	/* never learned */
	T_EQ_INT(bayes_batch_flush(b), 0);
	T_EQ_INT(n->seen, BAYES_BATCH + 1);
	T_EQ_INT(n->changed, BAYES_BATCH);
	T_EQ_INT(n->moved, 0);			/* forgetting moves nothing */
	T_EQ_INT(n->same, 1);
	T_EQ_INT(n->failed, 0);
	bayes_batch_free(b);
	db_bayes_meta(&m);
	T_EQ_INT(m.nham + m.nspam, 0);
}

/* Learn gen_msg's spam and ham of seeds from..to-1, one of each. */
static void
learn_pairs(unsigned from, unsigned to)
{
	for (unsigned i = from; i < to; i++)
		for (int spam = 1; spam >= 0; spam--) {
			char *x = gen_msg(spam, i, 30);
			bayes_learn(c, x, strlen(x), spam ? BAYES_LEARN_SPAM : BAYES_LEARN_HAM, NULL);
			free(x);
		}
}

T_CASE(classify_untrained_then_trained)
{
	struct bayes_verdict v;
	struct mime_msg *m;
	char *x;

	c->bayes_min_learned = 10;
	learn_pairs(0, 9);
	x = gen_msg(1, 999, 30);
	m = mime_parse(x, strlen(x));
	T_EQ_INT(bayes_classify(c, m, strlen(x), &v), 0);
	T_EQ_INT(v.state, BAYES_UNTRAINED);
	T_EQ_INT(v.score == 0, 1);
	learn_pairs(9, 20);
	T_EQ_INT(bayes_classify(c, m, strlen(x), &v), 0);
	T_EQ_INT(v.state, BAYES_SPAM);
	T_ASSERT(v.prob > 0.99);
	T_ASSERT(v.score == c->bayes_spam_score);
	T_EQ_INT(v.nspam, 20);
	T_ASSERT(v.ntop > 0 && v.top[0].prob > 0.9);
	mime_free(m);
	free(x);
	x = gen_msg(0, 998, 30);
	m = mime_parse(x, strlen(x));
	T_EQ_INT(bayes_classify(c, m, strlen(x), &v), 0);
	T_EQ_INT(v.state, BAYES_HAM);
	T_ASSERT(v.prob < 0.01);
	mime_free(m);
	free(x);
	/* neither kind of word: no token weighs in, unsure at 0.5 */
	m = mime_parse("Subject: x\r\n\r\nzzyzx qwxqw\r\n", 28);
	bayes_classify(c, m, 28, &v);
	T_EQ_INT(v.state, BAYES_UNSURE);
	mime_free(m);
}

/* After classify_untrained_then_trained (20 messages of each class,
 * learned with grams): the Markov part leans the right way once each
 * class has min_learned gram-learned messages, and says nothing before,
 * even when the words are trained (messages learned without grams, as
 * by an older version, do not count for it). */
/* Classify gen_msg(spam, seed) into v; bayes_classify's answer. */
static int
classify_gen(int spam, unsigned seed, struct bayes_verdict *v)
{
	char *x = gen_msg(spam, seed, 30);
	struct mime_msg *m = mime_parse(x, strlen(x));
	int rc = bayes_classify(c, m, strlen(x), v);

	mime_free(m);
	free(x);
	return rc;
}

T_CASE(markov_silent_until_min_learned)
{
	struct bayes_verdict v;

	c->bayes_min_learned = 20;
	T_EQ_INT(classify_gen(1, 997, &v), 0);
	T_EQ_INT(v.markov, 1);
	T_EQ_INT(v.mspam, 20);
	T_EQ_INT(v.mham, 20);
	T_ASSERT(v.markov_mean > 0);
	T_ASSERT(v.prob > v.words_prob || v.words_prob > 0.999);
	T_EQ_INT(classify_gen(0, 996, &v), 0);
	T_EQ_INT(v.markov, 1);
	T_ASSERT(v.markov_mean < 0);
	T_EQ_INT(v.state, BAYES_HAM);
	/* five more of each without grams: words 25, grams still 20 */
	c->bayes_markov = 0;
	learn_pairs(100, 105);
	c->bayes_markov = 1;
	c->bayes_min_learned = 21;
	T_EQ_INT(classify_gen(1, 997, &v), 0);
	T_EQ_INT(v.nspam, 25);
	T_EQ_INT(v.markov, 0);
	T_EQ_INT(v.mspam, 20);
	T_ASSERT(v.markov_mean == 0);
	T_ASSERT(v.prob == v.words_prob);
	T_EQ_INT(v.state, BAYES_SPAM);
	/* off: the words alone, whatever the counts */
	c->bayes_min_learned = 20;
	c->bayes_markov = 0;
	T_EQ_INT(classify_gen(1, 997, &v), 0);
	T_EQ_INT(v.markov, 0);
	T_ASSERT(v.prob == v.words_prob);
	c->bayes_markov = 1;
}

T_CASE(cap_expires_least_recent)
{
	struct db_bayes_meta m;
	long long max = 1000;
	struct db_bayes_learn l = { .cls = BAYES_LEARN_SPAM };
	uint64_t keys[300];

	/* 10 messages of 300 fresh keys each: past 1000 the oldest go */
	for (int i = 0; i < 10; i++) {
		for (int k = 0; k < 300; k++)
			keys[k] = (uint64_t)(i * 1000 + k + 1) << 20;
		memset(l.digest, 0, sizeof(l.digest));
		l.digest[0] = (unsigned char)(i + 100);
		l.keys = keys;
		l.nkeys = 300;
		T_EQ_INT(db_bayes_learn(&l, 1, max), 0);
		db_bayes_meta(&m);
		T_ASSERT(m.ntokens <= max);
	}
	/* the newest message's keys are all there */
	struct row_find r = { .key = keys[299] };
	db_bayes_load(-1, &m, row_find_fn, &r);
	T_EQ_INT(r.found, 1);
	r = (struct row_find){ .key = (uint64_t)1 << 20 };	/* the first message's */
	db_bayes_load(-1, &m, row_find_fn, &r);
	T_EQ_INT(r.found, 0);
	T_ASSERT(m.epoch > 0);
}

/* In the daemon learning goes through the db writer thread: the API the
 * web uses waits for it, the queued form does not. */
T_CASE(learn_through_writer)
{
	static const char m1[] = "Subject: writer one\r\n\r\nalpha beta gamma\r\n";
	static const char m2[] = "Subject: writer two\r\n\r\ndelta epsilon\r\n";
	struct db_bayes_meta before, after;
	struct bayes_learned l;

	db_close();
	T_EQ_INT(db_open(c, 1), 0);
	db_bayes_meta(&before);
	T_EQ_INT(bayes_learn(c, m1, strlen(m1), BAYES_LEARN_SPAM, &l), 0);
	T_EQ_INT(l.changed, 1);
	T_EQ_INT(l.was, -1);
	bayes_learn_queue(c, m2, strlen(m2), BAYES_LEARN_HAM);
	T_EQ_INT(db_flush(5000), 0);
	db_bayes_meta(&after);
	T_EQ_INT(after.nspam, before.nspam + 1);
	T_EQ_INT(after.nham, before.nham + 1);
	T_EQ_INT(bayes_learn(c, m1, strlen(m1), BAYES_LEARN_HAM, &l), 0);
	T_EQ_INT(l.was, BAYES_LEARN_SPAM);
	db_bayes_meta(&after);
	T_EQ_INT(after.nspam, before.nspam);
	T_EQ_INT(after.nham, before.nham + 2);
	db_close();
	T_EQ_INT(db_open(c, 0), 0);
}

/* A writer that cannot write (another connection holds the database
 * locked) takes at most DB_BAYES_PENDING_MAX queued learns; the rest are
 * refused at once, not queued without bound, and those taken are all
 * written once the database is free again. */
T_CASE(learn_queue_bounded_while_writer_stuck)
{
	struct db_bayes_meta before, after;
	sqlite3 *lock;
	int queued = 0, refused = 0;
	char m[128];

	db_close();
	T_EQ_INT(db_open(c, 1), 0);
	db_bayes_meta(&before);
	T_EQ_INT(sqlite3_open(c->db_path, &lock), SQLITE_OK);
	T_EQ_INT(sqlite3_exec(lock, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
	for (int i = 0; i < DB_BAYES_PENDING_MAX + 30; i++) {
		snprintf(m, sizeof(m), "Subject: stuck %d\r\n\r\nword%d other%d\r\n", i, i, i);
		if (bayes_learn_queue(c, m, strlen(m), BAYES_LEARN_HAM) == 0)
			queued++;
		else
			refused++;
	}
	T_EQ_INT(queued, DB_BAYES_PENDING_MAX);
	T_EQ_INT(refused, 30);
	T_EQ_INT(sqlite3_exec(lock, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(lock);
	T_EQ_INT(db_flush(3 * DB_SYNC_WAIT_MS), 0);
	db_bayes_meta(&after);
	T_EQ_INT(after.nham, before.nham + DB_BAYES_PENDING_MAX);
	/* and the writer takes learns again */
	snprintf(m, sizeof(m), "Subject: after\r\n\r\nfree\r\n");
	T_EQ_INT(bayes_learn_queue(c, m, strlen(m), BAYES_LEARN_HAM), 0);
	T_EQ_INT(db_flush(DB_SYNC_WAIT_MS), 0);
	db_bayes_meta(&after);
	T_EQ_INT(after.nham, before.nham + DB_BAYES_PENDING_MAX + 1);
	db_close();
	T_EQ_INT(db_open(c, 0), 0);
}

/* Queued learns spread over a third of DB_BAYES_LINGER_MS share one
 * commit: every row a batch writes carries its last seq as `seen`, so the
 * rows these learns touched carry one or two values (two if a slow
 * machine stretches the gaps past the linger), not one per learn (as with
 * the 10 ms linger of other rows, which each 22 ms gap outlasts). And
 * they are written without anyone flushing. */
T_CASE(queued_learns_share_a_commit)
{
	struct db_bayes_meta before, after;
	sqlite3 *h;
	sqlite3_stmt *st;
	int n = DB_BAYES_LINGER_N - 1, gap_ms = DB_BAYES_LINGER_MS / 3 / n, seen = -1;
	char m[128];

	db_close();
	T_EQ_INT(db_open(c, 1), 0);
	db_bayes_meta(&before);
	for (int i = 0; i < n; i++) {
		snprintf(m, sizeof(m), "Subject: company %d\r\n\r\nalone%d only%d\r\n", i, i, i);
		T_EQ_INT(bayes_learn_queue(c, m, strlen(m), BAYES_LEARN_SPAM), 0);
		usleep((useconds_t)gap_ms * 1000);
	}
	for (int t = 0; t < 100; t++) {		/* written by itself: 10 s at most */
		db_bayes_meta(&after);
		if (after.nspam == before.nspam + n)
			break;
		usleep(100 * 1000);
	}
	T_EQ_INT(after.nspam, before.nspam + n);
	T_EQ_INT(sqlite3_open(c->db_path, &h), SQLITE_OK);
	T_EQ_INT(sqlite3_prepare_v2(h, "SELECT count(DISTINCT seen) FROM bayes_tokens"
	    " WHERE seen > ?", -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_int64(st, 1, before.seq);
	if (sqlite3_step(st) == SQLITE_ROW)
		seen = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(h);
	T_ASSERT(seen >= 1 && seen <= 2);
	db_close();
	T_EQ_INT(db_open(c, 0), 0);
}

int
main(void)
{
	char *p;

	if (mkdtemp(dir) == NULL)
		return 1;
	log_init("bayes_test", 0);
	log_set_level(LOG_LVL_WARN);
	mime_init();
	c = conf_defaults();
	p = xasprintf("%s/t.db", dir);
	free(c->db_path);
	c->db_path = p;
	if (db_open(c, 0) == -1 || bayes_init(c) == -1)
		return 1;
	T_RUN(tokens_words_lowercase_unique);
	T_RUN(tokens_bounded_words);
	T_RUN(tokens_headers_urls_layout);
	T_RUN(tokens_part_charset_kept_verbatim);
	T_RUN(tokens_received_relay_ips);
	T_RUN(table_set_get_delete);
	T_RUN(learn_counts_exact);
	T_RUN(relearn_moves_forget_removes);
	T_RUN(markov_marker_moves_with_learn);
	T_RUN(batch_counts_and_flushes);
	T_RUN(classify_untrained_then_trained);
	T_RUN(markov_silent_until_min_learned);
	T_RUN(markov_repeats_count_once);
	T_RUN(cap_expires_least_recent);
	T_RUN(learn_through_writer);
	T_RUN(learn_queue_bounded_while_writer_stuck);
	T_RUN(queued_learns_share_a_commit);
	bayes_shutdown();
	db_close();
	conf_unref(c);
	p = xasprintf("rm -rf %s", dir);
	if (system(p) != 0)
		return 1;
	free(p);
	return T_END();
}
