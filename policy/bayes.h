/*
 * bayes.h -- the statistical classifier: the `bayes` check, learning
 * (the C API below for the web, autolearn, and batches for `postern
 * learn`), and its counters.
 *
 * What it does. A message (as rules/mime.c decodes it: unfolded, RFC
 * 2047-decoded headers, UTF-8 text and HTML-as-text bodies, URLs,
 * attachment names, the MIME layout) becomes a set of tokens -- body and
 * subject words, header tokens keyed by header name, URL hosts, structural
 * traits, orthogonal sparse bigrams of nearby words -- each hashed to 64
 * bits (XXH3). Per token the database keeps how many learned spam and ham
 * messages held it; Robinson's f(w) and Fisher's chi-square combining
 * (as bogofilter and SpamBayes do) turn the counts into a probability that
 * the message is spam. Beside the words, a character-level Markov model
 * (policy/bmark.h, bayes.markov) reads the first bayes.markov_bytes of the
 * normalised text; once each class has bayes.min_learned messages learned
 * with its grams, the probability becomes 1 / (1 + e^-2t), t = (S - H) +
 * bayes.markov_weight * its mean log ratio (near 0.5 the same scale as
 * (1 + S - H) / 2, which stays the probability without it).
 * docs/bayes.md has the details and every [bayes] key.
 *
 * Learning is per message, by content digest (SHA-256 of the raw bytes):
 * learning a message again as the same class changes nothing; as the
 * other class it moves it (unlearn the old class, learn the new one);
 * forgetting removes it. Counts never go below zero.
 *
 * Where the numbers live: the database (db_bayes_*), which any process may
 * write (`postern learn` in its own process, the daemon through its db
 * writer thread). Each classifying process keeps an in-memory copy (a hash
 * table of 64-bit keys to counts), loaded at bayes_init() and refreshed at
 * most once per BAYES_REFRESH_MS from the rows changed since (every learn
 * advances a sequence number the changed rows carry), so learning done
 * elsewhere is seen within about a second, without a restart.
 *
 * Memory: bayes.max_tokens caps the stored tokens; past it the least
 * recently seen (learned) ones are deleted, in the same transaction as the
 * learn that crossed the cap.
 *
 * Public calls: bayes_init, bayes_reload, bayes_shutdown, bayes_check
 *   (policy.c's table), bayes_classify, bayes_verdict_clear,
 *   bayes_learn, bayes_learn_queue, bayes_batch_*, bayes_counts,
 *   bayes_state_name, bayes_chi2q.
 * Thread: everything is safe from any thread after bayes_init(); the
 *   in-memory table is read under a read lock and swapped or patched under
 *   the write lock.
 * Privilege: the database through db/.
 */
#ifndef POSTERN_BAYES_H
#define POSTERN_BAYES_H

#include <stddef.h>

struct conf;
struct mime_msg;
struct pol_check;

/* How often a classifying process asks the database whether another
 * process (or its own writer) learned something. */
#define BAYES_REFRESH_MS	1000
/* Tokens shown with a verdict (postern check, the verdict row). */
#define BAYES_TOP		10
/* Longest readable token text kept for the top tokens, bytes. */
#define BAYES_TOKEN_TEXT	64

/* The check, for policy.c's table: runs at DATA, after the rules. Its
 * result is check "bayes" with result "spam", "ham", "unsure",
 * "untrained" (fewer than bayes.min_learned messages of a class; scores
 * nothing) or "temperror" (the database could not be read); the reason
 * carries the probability and the top tokens. */
extern const struct pol_check bayes_check;

/* --- lifecycle ------------------------------------------------------------ */

/* After db_open(): load the token counts. 0 or -1 (logged). A process that
 * only learns (postern learn, the web) need not call it; the check runs
 * only in a process that did (pol_init does). */
int	 bayes_init(struct conf *);
/* SIGHUP: new thresholds and caps take effect for the next message. */
void	 bayes_reload(struct conf *);
/* Free the in-memory table (at exit; tests between databases). */
void	 bayes_shutdown(void);

/* --- classifying ------------------------------------------------------------ */

enum bayes_state {
	BAYES_UNTRAINED = 0,	/* a class has fewer than bayes.min_learned */
	BAYES_HAM,		/* prob <= bayes.ham_threshold */
	BAYES_UNSURE,		/* in between: scores nothing */
	BAYES_SPAM,		/* prob >= bayes.spam_threshold */
	BAYES_ERROR,		/* the counts could not be read */
};

/* One token that weighed in, with its readable form. */
struct bayes_token {
	char	 text[BAYES_TOKEN_TEXT];	/* e.g. "viagra", "subject:free", "url:example.com" */
	double	 prob;			/* Robinson's f(w), 0..1 (1 = spammy) */
	unsigned spam, ham;		/* learned messages that held it */
};

struct bayes_verdict {
	enum bayes_state state;
	double	 prob;			/* 0..1; 0.5 when untrained */
	double	 score;			/* what it adds to the message's score */
	long long nspam, nham;		/* messages learned per class */
	int	 ntokens;		/* distinct tokens in the message */
	int	 used;			/* tokens that weighed in (|f - 0.5| >= min_dev) */
	struct bayes_token top[BAYES_TOP];	/* strongest first */
	int	 ntop;
	/* The Markov part (policy/bmark.h), with bayes.markov: */
	int	 markov_on;		/* bayes.markov: grams were read */
	int	 markov;		/* 1: it weighed in (prob combines both) */
	double	 markov_mean;		/* its mean log ratio; > 0 leans spam */
	double	 words_prob;		/* the words' chi-square alone, (1 + S - H) / 2 */
	long long mspam, mham;		/* messages learned with grams, per class */
	/* Decided by the first pass (bayes.first_pass_bytes): the bytes of
	 * body text whose words it read and of the Markov text; 0: all read. */
	int	 first_pass, first_pass_markov;
};

/* Classify a parsed message (rawlen: the raw message's size, one of the
 * structural traits) with c's [bayes] settings. Fills v; returns 0, or -1
 * when the counts could not be read (v->state BAYES_ERROR). Costs CPU
 * only (the parse is the caller's), plus one database read when the
 * refresh interval has passed. */
int	 bayes_classify(struct conf *c, const struct mime_msg *, size_t rawlen,
	    struct bayes_verdict *v);
/* The verdict the check reached in this session's transaction, or NULL
 * (postern check's JSON). */
struct pol_session;
const struct bayes_verdict *bayes_session_verdict(const struct pol_session *);
/* P(chi-square with v degrees of freedom >= x2), v even: the combining's
 * tail (bench/bayes_proto.c reproduces the check's arithmetic with it). */
double	 bayes_chi2q(double x2, int v);
/* "untrained", "ham", "unsure", "spam", "temperror". */
const char *bayes_state_name(enum bayes_state);

/* --- learning (the API the web uses) ---------------------------------------- */

enum bayes_class {
	BAYES_LEARN_HAM = 0,
	BAYES_LEARN_SPAM = 1,
	BAYES_FORGET = 2,	/* remove the message, whatever it was learned as */
};

/* What a learn did. */
struct bayes_learned {
	int	 was;		/* -1 not learned before, else BAYES_LEARN_HAM/SPAM */
	int	 changed;	/* 0 when nothing moved (same class again, or
				 * forgetting a message never learned) */
	int	 ntokens;	/* tokens of the message */
};

/*
 * Learn one raw message (as received or as stored in the quarantine: CRLF
 * or LF line ends; the digest is taken over the bytes as given, after any
 * leading mbox "From " line is dropped) as spam or ham, or forget it.
 * Blocking: in the daemon the write goes through the db writer thread and
 * this waits for it (up to DB_SYNC_WAIT_MS); in a process without a writer
 * (the CLI, `postern web`) it writes on the caller's connection. Never
 * call it on an SMTP I/O thread; web threads and policy workers may.
 * Returns 0 (out filled, may be NULL) or -1 (database error, logged).
 * The daemon's classifier sees the change within BAYES_REFRESH_MS.
 */
int	 bayes_learn(const struct conf *c, const char *msg, size_t len, enum bayes_class,
	    struct bayes_learned *out);
/* The same without waiting: tokenised on the caller's thread, queued to
 * the db writer (the daemon only), as autolearn does. 0, or -1 when the
 * writer is DB_BAYES_PENDING_MAX learns behind (nothing queued). */
int	 bayes_learn_queue(const struct conf *c, const char *msg, size_t len, enum bayes_class);
/* bayes_learn() on a message already parsed (mime_parse of the same
 * bytes): the digest is still taken over msg. */
int	 bayes_learn_parsed(const struct conf *c, const char *msg, size_t len,
	    const struct mime_msg *, enum bayes_class, struct bayes_learned *out);

/* --- learning many messages (`postern learn`) ------------------------------- */

/* What the batches of one learner did so far. */
struct bayes_batch_counts {
	long long seen;		/* messages added */
	long long changed;	/* learned or forgotten anew */
	long long moved;	/* of those, moved from the other class */
	long long same;		/* already learned so: nothing changed */
	long long failed;	/* in a transaction that failed */
};

struct bayes_batch;

/* Messages per transaction. */
#define BAYES_BATCH	100

/* A learner of many messages as one class (or forgetting them): each is
 * tokenised as it comes, and every BAYES_BATCH of them are learned in one
 * transaction on the caller's own connection (a process without the db
 * writer, after db_open()). */
struct bayes_batch *bayes_batch_new(const struct conf *c, enum bayes_class);
/* One raw message, as bayes_learn() takes it. 1 when this call wrote a
 * full batch (bayes_batch_counts() moved), else 0. */
int	 bayes_batch_add(struct bayes_batch *, const char *msg, size_t len);
/* Learn what waits now. 0, or -1 (those messages counted failed; logged). */
int	 bayes_batch_flush(struct bayes_batch *);
const struct bayes_batch_counts *bayes_batch_counts(const struct bayes_batch *);
/* Drops what was not flushed. */
void	 bayes_batch_free(struct bayes_batch *);

/* --- counters (dashboard, /metrics, /api/stats) ------------------------------ */

struct bayes_counts {
	long long nspam, nham;		/* messages learned per class */
	long long ntokens;		/* tokens stored */
	/* classifier verdicts in this process since start, by state */
	long long verdicts[BAYES_ERROR + 1];
	long long autolearned[2];	/* [BAYES_LEARN_HAM], [BAYES_LEARN_SPAM] */
};

/* From the database (learned, tokens) and this process. 0 or -1. */
int	 bayes_counts(struct bayes_counts *);


#endif
