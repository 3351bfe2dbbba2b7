/*
 * bmark.h -- the classifier's second model: a character-level Markov
 * model of order 4 over a message's normalised text (docs/bayes.md,
 * "The Markov part").
 *
 * The text: every header (name, then decoded value) but signatures and
 * earlier hops' verdicts, up to half of max, then the text and
 * HTML-as-text body parts, as rules/mime.c decoded them; ASCII
 * lower-cased, every run of non-word bytes one space; the first max bytes
 * of that.
 * Each position of it (from the 5th byte on) is a 5-gram, the byte and the
 * 4 before it, and its 4-byte context. Both are hashed with XXH3 under
 * seeds of their own, so they never meet the word tokens (policy/btok.h).
 *
 * Learned as extra keys of the message (db_bayes_learn's keys, which the
 * learn counts once each): its 5-grams and contexts, and BMARK_MARKER, which every message
 * learned with grams carries, so its counts say how many messages of each
 * class the gram counts come from (learn, forget and relearning move it
 * with the grams).
 *
 * Scored as the mean over distinct grams (a repeat counts once, at its
 * first position) of log P_spam(byte | context) -
 * log P_ham(byte | context), P = (n(gram) + alpha/vocab) / (n(context) +
 * alpha), n the learned messages of that class that held it: positive
 * leans spam, negative ham, 0 says nothing.
 *
 * Public calls: bmark_text, bmark_grams, bmark_grams_first, bmark_grams_text,
 *   bmark_keys, bmark_mean, bmark_free.
 * Ownership: a struct bmark owns its arrays; bmark_free() releases them.
 * Thread: no shared state.
 */
#ifndef POSTERN_BMARK_H
#define POSTERN_BMARK_H

#include <stddef.h>
#include <stdint.h>

struct mime_msg;
struct btab;

#define BMARK_ORDER	5		/* bytes of a gram: the byte and its context */
#define BMARK_MAX_BYTES	65536		/* most text bayes.markov_bytes may ask for */
/* The key every gram-learning message carries (no XXH3 output in
 * particular: a fixed constant, "markov01"). */
#define BMARK_MARKER	0x6d61726b6f763031ULL

/* A message's positions: gram[i] and ctx[i] are position i's hashes. */
struct bmark {
	uint64_t *gram, *ctx;
	size_t	 n;
};

/* m's normalised text, at most max bytes (max <= BMARK_MAX_BYTES), into
 * buf (room for max bytes; not NUL-terminated); its length. */
size_t	 bmark_text(const struct mime_msg *m, size_t max, char *buf);
/* The positions of m's first max bytes of normalised text into b (zeroed
 * or freed before). */
void	 bmark_grams(struct bmark *b, const struct mime_msg *m, size_t max);
/* The positions of the first `first` bytes of that text only (the
 * classifier's first pass); 1 when the text is longer. */
int	 bmark_grams_first(struct bmark *b, const struct mime_msg *m, size_t max,
	    size_t first);
/* The positions of a text already normalised (tests, bench). */
void	 bmark_grams_text(struct bmark *b, const char *text, size_t len);
/* b's learn keys into out (room for 2 * b->n + 1): every position's gram,
 * every position's context, then BMARK_MARKER; repeats stay (the learn
 * counts each key once per message). Their number. */
size_t	 bmark_keys(const struct bmark *b, uint64_t *out);
/* The mean log ratio of b's positions from t's counts (0 with no
 * positions). The caller holds t steady (bayes.c's read lock). */
double	 bmark_mean(const struct bmark *b, const struct btab *t);
void	 bmark_free(struct bmark *b);

#endif
