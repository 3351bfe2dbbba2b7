/*
 * bayes_bench.c -- what the classifier costs per message beyond the MIME
 * parse: tokenising a 10 KB message and combining its counts, against a
 * table trained on 1,000 generated messages of 2-8 KB, on
 * one thread. Target (issue 12): at most 0.5 ms of CPU per message.
 *
 * Run by `make bench-detect` (and `make bench`) from the repository root;
 * the database lives in a temporary directory. `bayes_bench first_pass=0`
 * reads all of each message's text (a message the first pass is unsure of
 * costs about that plus the first pass).
 */
#include "policy/bayes.h"
#include "lib/conf.h"
#include "db/db.h"
#include "rules/mime.h"
#include "lib/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
/* Under `valgrind --tool=callgrind --instr-atstart=no` only the
 * classifying loop is instrumented (the training before it would take
 * minutes there); natively the macros cost nothing. */
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#else
#define CALLGRIND_START_INSTRUMENTATION
#define CALLGRIND_STOP_INSTRUMENTATION
#endif

#define BENCH_TRAIN	1000
#define BENCH_ROUNDS	2000
/* Different messages, classified in turn: one message again and again
 * keeps its few thousand table slots in the cache, which mail does not
 * (0.10 against 0.21-0.29 ms, docs/performance.md). */
#define BENCH_MSGS	200
#define BENCH_SIZE	(10 * 1024)
#define BENCH_VOCAB	20000

static unsigned long lcg = 42;

static unsigned
rnd(void)
{
	lcg = lcg * 6364136223846793005UL + 1442695040888963407UL;
	return (unsigned)(lcg >> 33);
}

static double
cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A message of about size bytes; words drawn from one half of the
 * vocabulary for spam, the other for ham, with a shared middle. */
static char *
gen(int spam, size_t size, size_t *len)
{
	char *b = xmalloc(size + 512);
	size_t o = (size_t)sprintf(b, "From: %s <x%u@%s.example>\r\nTo: bob@example.org\r\n"
	    "Subject: w%u w%u w%u\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
	    spam ? "Deals" : "Alice", rnd() % 1000, spam ? "deals" : "corp",
	    rnd() % BENCH_VOCAB, rnd() % BENCH_VOCAB, rnd() % BENCH_VOCAB);

	while (o < size) {
		unsigned w = rnd() % (BENCH_VOCAB * 2 / 3) + (spam ? BENCH_VOCAB / 3 : 0);
		o += (size_t)sprintf(b + o, "w%u%s", w, rnd() % 12 ? " " : ".\r\n");
	}
	o += (size_t)sprintf(b + o, "\r\nhttp://www.site%u.example/x\r\n", rnd() % 100);
	*len = o;
	return b;
}

/* Learned as `postern learn` learns: words and, with bayes.markov, the
 * Markov model's grams. */
static void
train(struct conf *c)
{
	struct bayes_batch *b[2] = { bayes_batch_new(c, BAYES_LEARN_HAM),
	    bayes_batch_new(c, BAYES_LEARN_SPAM) };

	for (int i = 0; i < BENCH_TRAIN; i++) {
		size_t len;
		char *m = gen(i % 2, 2000 + rnd() % 6000, &len);
		bayes_batch_add(b[i % 2], m, len);
		free(m);
	}
	for (int k = 0; k < 2; k++) {
		if (bayes_batch_flush(b[k]) == -1 || bayes_batch_counts(b[k])->failed > 0)
			fatalx("learn failed");
		bayes_batch_free(b[k]);
	}
}

int
main(int argc, char **argv)
{
	char dir[] = "/tmp/postern-bayesbench-XXXXXX", *cmd;
	struct conf *c = conf_defaults();
	struct bayes_verdict v;
	struct db_bayes_meta meta;
	double t0, parse = 0, classify = 0;
	size_t len[BENCH_MSGS];
	char *msg[BENCH_MSGS];

	if (mkdtemp(dir) == NULL)
		fatal("mkdtemp");
	log_init("bayes_bench", 0);
	log_set_level(LOG_LVL_WARN);
	free(c->db_path);
	c->db_path = xasprintf("%s/b.db", dir);
	c->bayes_min_learned = 10;
	if (argc > 1 && strcmp(argv[1], "markov=no") == 0)
		c->bayes_markov = 0;	/* the words alone, as before the Markov part */
	else if (argc > 1 && strcmp(argv[1], "first_pass=0") == 0)
		c->bayes_first_pass_bytes = 0;	/* all the text, as for an unsure one */
	else if (argc > 1)
		fatalx("usage: bayes_bench [markov=no | first_pass=0]");
	if (db_open(c, 0) == -1)
		fatalx("db_open");
	mime_init();
	train(c);
	if (bayes_init(c) == -1 || db_bayes_meta(&meta) == -1)
		fatalx("bayes_init");
	for (int k = 0; k < BENCH_MSGS; k++)
		msg[k] = gen(1, BENCH_SIZE, &len[k]);
	CALLGRIND_START_INSTRUMENTATION;
	for (int i = 0; i < BENCH_ROUNDS; i++) {
		int k = i % BENCH_MSGS;
		struct mime_msg *m;
		t0 = cpu_s();
		m = mime_parse(msg[k], len[k]);
		parse += cpu_s() - t0;
		t0 = cpu_s();
		bayes_classify(c, m, len[k], &v);
		classify += cpu_s() - t0;
		mime_free(m);
	}
	CALLGRIND_STOP_INSTRUMENTATION;
	printf("bayes: %lld tokens learned from %d messages; %d different messages of"
	    " about %d bytes; the last has %d tokens (%d used), verdict %s %.4f (Markov part"
	    " %s, mean %+.3f)\n", meta.ntokens, BENCH_TRAIN, BENCH_MSGS, BENCH_SIZE, v.ntokens, v.used, bayes_state_name(v.state), v.prob,
	    v.markov ? "weighed in" : c->bayes_markov ? "untrained" : "off", v.markov_mean);
	printf("bayes: %.3f ms CPU per message to tokenise and classify (target <= 0.5);"
	    " the MIME parse before it: %.3f ms\n", classify * 1000 / BENCH_ROUNDS,
	    parse * 1000 / BENCH_ROUNDS);
	bayes_shutdown();
	db_close();
	cmd = xasprintf("rm -rf %s", dir);
	if (system(cmd) != 0)
		return 1;
	free(cmd);
	for (int k = 0; k < BENCH_MSGS; k++)
		free(msg[k]);
	conf_unref(c);
	return 0;
}
