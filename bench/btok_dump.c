/*
 * btok_dump.c -- the classifier's tokens of every message of a labelled
 * corpus, written once so that combining methods can be tried on them
 * without parsing again (bench/bayes_proto.c reads the file).
 *
 *   btok_dump CORPUS OUT [key=value ...]
 *
 * CORPUS as bench/bayes_cv.c reads it (labels.tsv, messages/ID.eml); the
 * messages are read and tokenised as the check sees them at DATA
 * (canonical CRLF, rules/mime.c's parse, btok_message()). OUT is binary,
 * host byte order: per message in labels.tsv order a header
 * { uint32 spam; uint32 ntokens } and ntokens of { uint64 hash; uint8
 * kind; uint8 dist; 6 bytes zero }.
 *
 * Settings for trying what the check does not do (docs/bayes.md, round 5):
 *   max_text=N  tokenise only the first N bytes of body text (btok_set's
 *               max_text; headers whole);
 *   ngram=5     also the Markov model's grams, as the check learns them
 *               (policy/bmark.c: the same text, the same hashes): each
 *               distinct 5-gram (kind DUMP_NGRAM) and 4-byte context
 *               (DUMP_CTX) once;
 *   ngbytes=K   of the first K bytes of its text (3000; the check reads
 *               bayes.markov_bytes);
 *   ngsubj=2    (the only text left: every header, then the body; the
 *               Subject-only and raw-message variants of round 5 went
 *               when the model was built);
 *   ngseq=1     also every position in order (duplicates kept): the
 *               gram (DUMP_SEQ) then its context (DUMP_SEQCTX), for the
 *               Markov model's cross-entropy.
 */
#include "bench/corpus.h"
#include "policy/bmark.h"
#include "policy/btok.h"
#include "rules/mime.h"
#include "lib/util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Kinds after the tokeniser's own (K_NKINDS is 20). */
enum { DUMP_NGRAM = 20, DUMP_SEQ = 21, DUMP_SEQCTX = 22, DUMP_CTX = 23 };

struct dump_tok {
	uint64_t h;
	uint8_t	 kind, dist, pad[6];
};

static size_t max_text, ngram, ngbytes = 3000, ngsubj = 2, ngseq;

/* The raw size with CRLF counted as LF, as bayes.c gives btok_message. */
static size_t
dump_lf_len(const char *msg, size_t len)
{
	size_t n = len;

	for (size_t i = 0; i + 1 < len; i++)
		n -= msg[i] == '\r' && msg[i + 1] == '\n';
	return n;
}

struct tokv {
	struct dump_tok *v;
	size_t n, cap;
};

static void
tv_push(struct tokv *tv, uint64_t h, int kind)
{
	if (tv->n == tv->cap)
		tv->v = xrealloc(tv->v, (tv->cap = tv->cap ? tv->cap * 2 : 4096) * sizeof(*tv->v));
	tv->v[tv->n++] = (struct dump_tok){ h ? h : 1, (uint8_t)kind, 0, { 0 } };
}

/* Keep the first of each hash of kind k in tv (from index from on). */
static void
tv_unique(struct tokv *tv, size_t from)
{
	size_t slots = 64, k = from;
	uint64_t *set;

	while (slots < 2 * (tv->n - from))
		slots *= 2;
	set = xcalloc(slots, sizeof(*set));
	for (size_t i = from; i < tv->n; i++) {
		uint64_t h = tv->v[i].h ^ ((uint64_t)tv->v[i].kind << 56);
		size_t j = (size_t)(h * 0x9e3779b97f4a7c15ULL >> 40) & (slots - 1);
		while (set[j] != 0 && set[j] != h)
			j = (j + 1) & (slots - 1);
		if (set[j] == h)
			continue;
		set[j] = h;
		tv->v[k++] = tv->v[i];
	}
	tv->n = k;
	free(set);
}

/* The Markov model's grams of m into tv: the check's own (bmark.h). */
static void
ngrams(struct tokv *tv, const struct mime_msg *m)
{
	struct bmark b = { 0 };
	size_t from = tv->n;

	bmark_grams(&b, m, ngbytes);
	for (size_t i = 0; i < b.n; i++) {
		tv_push(tv, b.gram[i], DUMP_NGRAM);
		tv_push(tv, b.ctx[i], DUMP_CTX);
	}
	tv_unique(tv, from);
	for (size_t i = 0; ngseq && i < b.n; i++) {
		tv_push(tv, b.gram[i], DUMP_SEQ);
		tv_push(tv, b.ctx[i], DUMP_SEQCTX);
	}
	bmark_free(&b);
}

static void
setting(const char *kv)
{
	const char *eq = strchr(kv, '=');
	size_t v = eq ? strtoul(eq + 1, NULL, 10) : 0;

	if (eq == NULL)
		fatalx("bad setting %s", kv);
#define S(name, var) if (strncmp(kv, name "=", strlen(name) + 1) == 0) { var = v; return; }
	S("max_text", max_text) S("ngram", ngram) S("ngbytes", ngbytes) S("ngsubj", ngsubj)
	S("ngseq", ngseq)
#undef S
	fatalx("unknown setting %s", kv);
}

int
main(int argc, char **argv)
{
	char line[1024], *p;
	FILE *lf, *out;
	long nmsg = 0, ntok = 0;

	if (argc < 3) {
		fprintf(stderr, "usage: btok_dump CORPUS OUT [key=value ...]\n");
		return 2;
	}
	log_init("btok_dump", 0);
	for (int i = 3; i < argc; i++)
		setting(argv[i]);
	if ((ngram != 0 && ngram != BMARK_ORDER) || ngsubj != 2)
		fatalx("ngram=%d and ngsubj=2 only: the check's Markov model", BMARK_ORDER);
	mime_init();
	p = xasprintf("%s/labels.tsv", argv[1]);
	if ((lf = fopen(p, "r")) == NULL || (out = fopen(argv[2], "wb")) == NULL)
		fatal("open");
	free(p);
	while (fgets(line, sizeof(line), lf)) {
		struct btok_set s = { .max_text = max_text };
		struct tokv tv = { 0 };
		struct mime_msg *m;
		uint32_t hdr[2];
		char *raw, *id;
		size_t len;
		int spam;

		if (!corpus_label(line, &id, &spam))
			continue;
		p = xasprintf("%s/messages/%s.eml", argv[1], id);
		if ((raw = corpus_read(p, &len)) == NULL)
			fatal("%s", p);
		free(p);
		m = mime_parse(raw, len);
		btok_message(&s, m, dump_lf_len(raw, len));
		for (size_t i = 0; i < s.n; i++) {
			tv_push(&tv, s.v[i].h, s.v[i].kind);
			tv.v[tv.n - 1].dist = s.v[i].dist;
		}
		if (ngram)
			ngrams(&tv, m);
		hdr[0] = (uint32_t)spam;
		hdr[1] = (uint32_t)tv.n;
		fwrite(hdr, sizeof(hdr), 1, out);
		fwrite(tv.v, sizeof(*tv.v), tv.n, out);
		nmsg++;
		ntok += (long)tv.n;
		free(tv.v);
		btok_free(&s);
		mime_free(m);
		free(raw);
	}
	fclose(lf);
	if (fclose(out) != 0)
		fatal("%s", argv[2]);
	fprintf(stderr, "btok_dump: %ld messages, %ld tokens\n", nmsg, ntok);
	return 0;
}
