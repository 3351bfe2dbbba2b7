/*
 * bayes.c -- the statistical classifier; see bayes.h for what it does and
 * docs/bayes.md for the settings.
 *
 * Combining, per token w of the message (spam/ham counts n_s, n_h out of
 * N_s, N_h learned messages; n = n_s + n_h):
 *   p(w) = (n_s/N_s) / (n_s/N_s + n_h/N_h)
 *   f(w) = (s*x + n*p(w)) / (s + n)                    Robinson
 * Only tokens with |f - 0.5| >= min_dev weigh in, the strongest max_used
 * of them; then, as SpamBayes and bogofilter do,
 *   S = 1 - chi2Q(-2 sum ln(1 - f), 2k),  H = 1 - chi2Q(-2 sum ln f, 2k)
 *   prob = (1 + S - H) / 2.
 * With the Markov part (bmark.h) trained, its mean log ratio M joins:
 *   t = (S - H) + bayes.markov_weight * M,  prob = 1 / (1 + e^-2t)
 * -- the measured combination M + 0.2 (S - H) (docs/bayes.md), on a scale
 * whose slope at 0.5 is (1 + S - H) / 2's, without its clamp at 0 and 1
 * (M ranges over several units).
 *
 * The in-memory copy (struct bayes_mem) mirrors the database: loaded
 * whole at bayes_init() and when rows were deleted elsewhere (expiry
 * moves the epoch); otherwise patched with the rows learned since its
 * sequence number. A classification that finds the refresh due does the
 * refresh first (one read of the totals when nothing changed); only one
 * thread refreshes at a time, the others go on with the copy they have.
 *
 * Autolearn runs in the check on the policy worker: the tokens the
 * classification made are queued to the db writer, never written here.
 *
 * Thread: the copy under a rwlock; counters atomic; the rest per call.
 */
#include "policy/bayes.h"
#include "db/db.h"
#include "lib/conf.h"
#include "lib/util.h"
#include "policy/bmark.h"
#include "policy/btab.h"
#include "policy/btok.h"
#include "policy/policy_int.h"
#include "rules/mime.h"

#include <errno.h>
#include <math.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BAYES_SLOT	pol_check_slot(&bayes_check)
/* Lookups ahead of use: prefetching overlaps the table's cache misses. */
#define BAYES_PREFETCH	8

struct bayes_mem {
	_Atomic int	 inited;	/* bayes_init() ran: the database is there */
	pthread_rwlock_t lock;
	struct btab	*tab;		/* NULL until loaded */
	long long	 nspam, nham, seq, epoch;
	pthread_mutex_t	 refresh;
	_Atomic uint64_t due_ms;	/* next refresh; 0: now */
};

/* One token that weighs in (classification scratch). */
struct bayes_clue {
	double	 f, dev;
	unsigned spam, ham;
	uint32_t idx;			/* into the token set */
};

/* f(w) of counts below BAYES_MEMO, computed when first needed (0 until
 * then: f is never 0, as s > 0 and x > 0), for one (s, x, N_s, N_h):
 * bayes_memo(). */
#define BAYES_MEMO	64
struct bayes_fmemo {
	double	 s, x;
	long long nspam, nham;
	double	 f[BAYES_MEMO][BAYES_MEMO];
};

/* What a message is learned and classified by: its word tokens and, with
 * bayes.markov, its Markov positions. */
struct bayes_feat {
	struct btok_set s;
	struct bmark	mk;
	int		mk_cut;	/* the grams are a first pass's, fewer than all */
};

/* The check's state for one transaction. bayes_run decides; what that
 * changes outside the session -- the verdict counters, an autolearn --
 * waits for bayes_commit, since a run on the I/O loop may be undone and
 * run again on a worker (policy/policy_int.h). */
struct bayes_tx {
	struct bayes_verdict v;
	int	 have;
	int	 learn_pending;	/* learn (its keys ours) waits for the commit */
	struct db_bayes_learn learn;
	double	 before;	/* the score without ours, for autolearn's log */
};

/* Writer-preferring: every classification holds the read lock (with the
 * Markov part, two lookups a byte of 3 KB of text), and under load they
 * overlap without a gap, so glibc's default, which lets new readers past a
 * waiting writer, could hold a refresh -- and the message whose worker
 * runs it -- off for as long as the load lasts. Nobody takes it twice. */
static struct bayes_mem bm = {
	.lock = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP,
	.refresh = PTHREAD_MUTEX_INITIALIZER,
};
static _Atomic long long bayes_nverdict[BAYES_ERROR + 1];
static _Atomic long long bayes_nauto[2];

static int	 bayes_refresh(int force);
static int	 bayes_reload_all(void);
static int	 bayes_apply_delta(void);
static void	 bayes_row_tab(void *, uint64_t, unsigned, unsigned);
static int	 bayes_score_set(struct conf *, const struct bayes_feat *, struct bayes_verdict *,
		    int wait);
static void	 bayes_markov(struct conf *, const struct bmark *, struct bayes_verdict *);
static void	 bayes_feat_make(const struct conf *, struct bayes_feat *,
		    const struct mime_msg *, size_t rawlen);
static int	 bayes_classify_msg(struct conf *, struct bayes_feat *,
		    const struct mime_msg *, size_t rawlen, struct bayes_verdict *, int wait);
static int	 bayes_sure(const struct conf *, const struct bayes_verdict *);
static void	 bayes_feat_read(const struct conf *, struct bayes_feat *,
		    const struct mime_msg *, size_t rawlen, size_t text, size_t mtext);
static void	 bayes_feat_whole(const struct conf *, struct bayes_feat *,
		    const struct mime_msg *, size_t rawlen);
static void	 bayes_feat_free(struct bayes_feat *);
static double	 bayes_f(double, double, unsigned, unsigned, long long, long long);
static struct bayes_fmemo *bayes_memo(double, double, long long, long long);
static double	 bayes_fisher(const struct bayes_clue *, int n);
static int	 bayes_clue_cmp(const void *, const void *);
static void	 bayes_select(struct bayes_clue *, int n, int k);
static void	 bayes_top(const struct btok_set *, struct bayes_clue *, int n,
		    struct bayes_verdict *);
static void	 bayes_verdict_set(struct conf *, struct bayes_verdict *);
static void	 bayes_digest(const char *, size_t, unsigned char out[32]);
static const char *bayes_skip_from(const char *, size_t *);
static void	 bayes_fill(struct db_bayes_learn *, enum bayes_class, const char *,
		    size_t, const struct bayes_feat *, uint64_t **);
static size_t	 bayes_lf_len(const char *, size_t);
static void	 bayes_run(struct pol_session *, enum pol_stage, const struct pol_msg *);
static int	 bayes_autolearn_sure(const struct conf *, const struct bayes_verdict *,
		    enum bayes_class);
static void	 bayes_autolearn(struct pol_session *, const struct pol_msg *,
		    struct bayes_feat *, double before);
static void	 bayes_learn_drop(struct bayes_tx *);
static void	 bayes_reason(const struct bayes_verdict *, char *, size_t);
static void	 bayes_tx_reset(struct pol_session *);
static int	 bayes_enabled(const struct conf *);
static int	 bayes_blocks(const struct pol_session *, enum pol_stage,
		    const struct pol_msg *);
static int	 bayes_idle(const struct conf *, long long *nspam, long long *nham);
static void	 bayes_commit(struct pol_session *, enum pol_stage);

const struct pol_check bayes_check = {
	.name = "bayes",
	.stages = 1u << POL_DATA,
	.enabled = bayes_enabled,
	.run = bayes_run,
	.commit = bayes_commit,
	.tx_reset = bayes_tx_reset,
	.free = bayes_tx_reset,
	.blocks = bayes_blocks,
};

static const char *const bayes_states[] = {
	[BAYES_UNTRAINED] = "untrained", [BAYES_HAM] = "ham", [BAYES_UNSURE] = "unsure",
	[BAYES_SPAM] = "spam", [BAYES_ERROR] = "temperror",
};

const char *
bayes_state_name(enum bayes_state s)
{
	return (unsigned)s < ARRAY_SIZE(bayes_states) ? bayes_states[s] : "?";
}

/* A process that never opened the classifier (bayes_init) has no counts
 * to classify with: the check does not run there. */
static int
bayes_enabled(const struct conf *c)
{
	return c->bayes_enabled && atomic_load(&bm.inited);
}

/* ------------------------------------------------------------ the copy */

int
bayes_init(struct conf *c)
{
	(void)c;
	atomic_store(&bm.due_ms, 0);
	atomic_store(&bm.inited, 1);
	return bayes_refresh(1);
}

void
bayes_reload(struct conf *c)
{
	(void)c;
	atomic_store(&bm.due_ms, 0);	/* thresholds are read per message */
}

void
bayes_shutdown(void)
{
	pthread_rwlock_wrlock(&bm.lock);
	btab_free(bm.tab);
	bm.tab = NULL;
	bm.nspam = bm.nham = bm.seq = bm.epoch = 0;
	pthread_rwlock_unlock(&bm.lock);
	atomic_store(&bm.due_ms, 0);
	atomic_store(&bm.inited, 0);
}

static void
bayes_row_tab(void *arg, uint64_t key, unsigned spam, unsigned ham)
{
	btab_set(arg, key, spam, ham);
}

/* Build a whole new copy aside, then swap it in. */
static int
bayes_reload_all(void)
{
	struct db_bayes_meta m;
	struct db_bayes_meta cur;
	struct btab *t, *old;

	if (db_bayes_meta(&cur) == -1)
		return -1;
	t = btab_new((size_t)cur.ntokens);
	if (db_bayes_load(-1, &m, bayes_row_tab, t) == -1) {
		btab_free(t);
		return -1;
	}
	pthread_rwlock_wrlock(&bm.lock);
	old = bm.tab;
	bm.tab = t;
	bm.nspam = m.nspam;
	bm.nham = m.nham;
	bm.seq = m.seq;
	bm.epoch = m.epoch;
	pthread_rwlock_unlock(&bm.lock);
	btab_free(old);
	return 0;
}

/* The rows learned since our sequence number, gathered first and applied
 * under the write lock in one go. */
struct bayes_rows {
	struct { uint64_t key; unsigned spam, ham; } *v;
	size_t	 n, cap;
};

static void
bayes_row_keep(void *arg, uint64_t key, unsigned spam, unsigned ham)
{
	struct bayes_rows *r = arg;

	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 1024;
		r->v = xrealloc(r->v, r->cap * sizeof(*r->v));
	}
	r->v[r->n].key = key;
	r->v[r->n].spam = spam;
	r->v[r->n++].ham = ham;
}

static int
bayes_apply_delta(void)
{
	struct bayes_rows r = { 0 };
	struct db_bayes_meta m;

	if (db_bayes_load(bm.seq, &m, bayes_row_keep, &r) == -1) {
		free(r.v);
		return -1;
	}
	if (m.epoch != bm.epoch) {	/* rows were deleted meanwhile */
		free(r.v);
		return bayes_reload_all();
	}
	pthread_rwlock_wrlock(&bm.lock);
	for (size_t i = 0; i < r.n; i++)
		btab_set(bm.tab, r.v[i].key, r.v[i].spam, r.v[i].ham);
	bm.nspam = m.nspam;
	bm.nham = m.nham;
	bm.seq = m.seq;
	pthread_rwlock_unlock(&bm.lock);
	free(r.v);
	return 0;
}

/* Bring the copy up to date when due (force: now). 0, or -1 when the
 * database could not be read (the old copy stays). */
static int
bayes_refresh(int force)
{
	struct db_bayes_meta m;
	uint64_t now = time_mono_ms();
	int rc = 0;

	if (!force && bm.tab != NULL && now < atomic_load(&bm.due_ms))
		return 0;
	if (force)
		pthread_mutex_lock(&bm.refresh);
	else if (pthread_mutex_trylock(&bm.refresh) != 0)
		return bm.tab != NULL ? 0 : -1;
	atomic_store(&bm.due_ms, now + BAYES_REFRESH_MS);
	if (db_bayes_meta(&m) == -1)
		rc = -1;
	else if (bm.tab == NULL || m.epoch != bm.epoch)
		rc = bayes_reload_all();
	else if (m.seq != bm.seq)
		rc = bayes_apply_delta();
	pthread_mutex_unlock(&bm.refresh);
	return rc;
}

/* ---------------------------------------------------------- combining */

/* The series e^-m sum m^i/i!, i < v/2 (SpamBayes' chi2Q). */
double
bayes_chi2q(double x2, int v)
{
	double m = x2 / 2.0, term = exp(-m), sum = term;

	for (int i = 1; i < v / 2; i++) {
		term *= m / i;
		sum += term;
	}
	return sum < 1.0 ? sum : 1.0;
}

static double
bayes_fisher(const struct bayes_clue *c, int n)
{
	double ls = 0, lh = 0, s, h;

	if (n == 0)
		return 0.5;
	for (int i = 0; i < n; i++) {
		lh += log(c[i].f);
		ls += log(1.0 - c[i].f);
	}
	s = 1.0 - bayes_chi2q(-2.0 * ls, 2 * n);
	h = 1.0 - bayes_chi2q(-2.0 * lh, 2 * n);
	return (1.0 + s - h) / 2.0;
}

/* Move the k strongest clues to the front (quickselect on dev): only
 * they are sorted afterwards, not the thousands a long message has. */
static void
bayes_select(struct bayes_clue *cl, int n, int k)
{
	int lo = 0, hi = n - 1;

	while (lo < hi) {
		double pivot = cl[(lo + hi) / 2].dev;
		int i = lo, j = hi;
		while (i <= j) {
			while (cl[i].dev > pivot)
				i++;
			while (cl[j].dev < pivot)
				j--;
			if (i <= j) {
				struct bayes_clue t = cl[i];
				cl[i++] = cl[j];
				cl[j--] = t;
			}
		}
		if (k - 1 <= j)
			hi = j;
		else if (k - 1 >= i)
			lo = i;
		else
			break;
	}
}

/* Strongest first. */
static int
bayes_clue_cmp(const void *a, const void *b)
{
	double x = ((const struct bayes_clue *)a)->dev, y = ((const struct bayes_clue *)b)->dev;

	return x < y ? 1 : x > y ? -1 : 0;
}

/* Robinson's f(w) for counts ns, nh out of N_s, N_h learned messages. */
static double
bayes_f(double sv, double xv, unsigned ns, unsigned nh, long long nspam, long long nham)
{
	double ps = (double)ns / (double)nspam, ph = (double)nh / (double)nham;
	double p = ps / (ps + ph), nn = (double)ns + nh;

	return (sv * xv + nn * p) / (sv + nn);
}

/* This thread's f(w) of small counts, valid while (s, x, N_s, N_h) stay.
 * Most tokens have small counts: a message's four divisions per token
 * (about 6% of the daemon's CPU with every check on) become a load. The
 * very same expression fills it, so every f is bit for bit the same. In
 * thread-local storage, not on the heap: a worker's copy goes with it. */
static struct bayes_fmemo *
bayes_memo(double sv, double xv, long long nspam, long long nham)
{
	static _Thread_local struct bayes_fmemo m;

	if (m.s == sv && m.x == xv && m.nspam == nspam && m.nham == nham)
		return &m;
	m.s = sv;
	m.x = xv;
	m.nspam = nspam;
	m.nham = nham;
	memset(m.f, 0, sizeof(m.f));
	return &m;
}

/* The counts of f's tokens (and Markov positions) from the copy,
 * combined. 0 or -1. */
static int
bayes_score_set(struct conf *c, const struct bayes_feat *ft, struct bayes_verdict *v,
    int wait)
{
	const struct btok_set *s = &ft->s;
	struct bayes_clue *cl;
	double sv = c->bayes_s, xv = c->bayes_x;
	struct bayes_fmemo *memo;
	int n = 0;

	if (wait)
		pthread_rwlock_rdlock(&bm.lock);
	else if (pthread_rwlock_tryrdlock(&bm.lock) != 0)
		return -2;	/* a refresh is swapping rows in */
	cl = xmalloc((s->n + 1) * sizeof(*cl));
	v->nspam = bm.nspam;
	v->nham = bm.nham;
	if (bm.tab == NULL || bm.nspam < c->bayes_min_learned ||
	    bm.nham < c->bayes_min_learned) {
		v->state = bm.tab == NULL ? BAYES_ERROR : BAYES_UNTRAINED;
		pthread_rwlock_unlock(&bm.lock);
		free(cl);
		v->prob = 0.5;
		return v->state == BAYES_ERROR ? -1 : 0;
	}
	memo = bayes_memo(sv, xv, bm.nspam, bm.nham);
	for (size_t i = 0; i < s->n && i < BAYES_PREFETCH; i++)
		btab_prefetch(bm.tab, s->v[i].h);
	for (size_t i = 0; i < s->n; i++) {
		unsigned ns, nh;
		double f;
		if (i + BAYES_PREFETCH < s->n)
			btab_prefetch(bm.tab, s->v[i + BAYES_PREFETCH].h);
		if (!btab_get(bm.tab, s->v[i].h, &ns, &nh))
			continue;
		if (ns < BAYES_MEMO && nh < BAYES_MEMO) {
			double *m = &memo->f[ns][nh];
			if (*m == 0)
				*m = bayes_f(sv, xv, ns, nh, bm.nspam, bm.nham);
			f = *m;
		} else
			f = bayes_f(sv, xv, ns, nh, bm.nspam, bm.nham);
		if (fabs(f - 0.5) < c->bayes_min_dev)
			continue;
		cl[n++] = (struct bayes_clue){ f, fabs(f - 0.5), ns, nh, (uint32_t)i };
	}
	bayes_markov(c, &ft->mk, v);
	pthread_rwlock_unlock(&bm.lock);
	if (n > c->bayes_max_used) {
		bayes_select(cl, n, c->bayes_max_used);
		n = c->bayes_max_used;
	}
	v->used = n;
	v->prob = v->words_prob = bayes_fisher(cl, n);
	if (v->markov && c->bayes_markov_weight > 0) {	/* 0: shown, not weighed */
		double t = (2 * v->words_prob - 1) + c->bayes_markov_weight * v->markov_mean;
		v->prob = 1 / (1 + exp(-2 * t));
	}
	bayes_top(s, cl, n, v);
	free(cl);
	bayes_verdict_set(c, v);
	return 0;
}

/* The Markov part's mean into v, when bayes.markov is on and each class
 * has bayes.min_learned messages learned with grams (a database learned
 * without them, or with one class only, must not score against empty
 * counts). Under the read lock. */
static void
bayes_markov(struct conf *c, const struct bmark *mk, struct bayes_verdict *v)
{
	unsigned ms, mh;

	if (!c->bayes_markov)
		return;
	v->markov_on = 1;
	btab_get(bm.tab, BMARK_MARKER, &ms, &mh);
	v->mspam = ms;
	v->mham = mh;
	if (ms < (unsigned)c->bayes_min_learned || mh < (unsigned)c->bayes_min_learned)
		return;
	v->markov = 1;
	v->markov_mean = bmark_mean(mk, bm.tab);
}

/* The strongest tokens, readable. Only the BAYES_TOP shown are sorted:
 * sorting all max_used clues cost 2% of the daemon's CPU (perf, 10 KB
 * messages with every check on), and the combining does not need it. */
static void
bayes_top(const struct btok_set *s, struct bayes_clue *cl, int n,
    struct bayes_verdict *v)
{
	if (n > BAYES_TOP) {
		bayes_select(cl, n, BAYES_TOP);
		n = BAYES_TOP;
	}
	qsort(cl, (size_t)n, sizeof(*cl), bayes_clue_cmp);
	for (int i = 0; i < n && v->ntop < BAYES_TOP; i++) {
		struct bayes_token *t = &v->top[v->ntop++];
		btok_format(s, &s->v[cl[i].idx], t->text, sizeof(t->text));
		t->prob = cl[i].f;
		t->spam = cl[i].spam;
		t->ham = cl[i].ham;
	}
}

static void
bayes_verdict_set(struct conf *c, struct bayes_verdict *v)
{
	/* Two thresholds: the combined probability was tuned with the Markov
	 * part (0.6), but the words alone call ham spam there (10 of 2,925
	 * against 5 at 0.85, docs/bayes.md), and a database learned before the
	 * Markov part has words only until its grams reach min_learned. */
	double spam = v->markov && c->bayes_markov_weight > 0 ?
	    c->bayes_markov_spam_threshold : c->bayes_spam_threshold;

	/* The combined cut lies below 0.5 (0.4), where a message that no
	 * learned word speaks for either way would land (0.5, the Markov part
	 * at 0 when its grams are unknown): spam takes a word that weighs in. */
	if (v->prob >= spam && v->used > 0) {
		v->state = BAYES_SPAM;
		v->score = c->bayes_spam_score;
	} else if (v->prob <= c->bayes_ham_threshold) {
		v->state = BAYES_HAM;
		v->score = c->bayes_ham_score;
	} else
		v->state = BAYES_UNSURE;
}

/* Classify a message's features already made (the check keeps them for
 * autolearn). wait 0 (the I/O loop): no database read and no waiting for
 * the lock -- -2 when the copy is due for a refresh or being refreshed.
 * Else 0, or -1 (v->state BAYES_ERROR). Counts nothing. */
static int
bayes_classify_set(struct conf *c, const struct bayes_feat *f, struct bayes_verdict *v,
    int wait)
{
	int rc;

	if (!wait && (bm.tab == NULL || time_mono_ms() >= atomic_load(&bm.due_ms)))
		return -2;
	memset(v, 0, sizeof(*v));
	v->prob = v->words_prob = 0.5;
	v->ntokens = (int)f->s.n;
	if (wait && bayes_refresh(0) == -1 && bm.tab == NULL)
		v->state = BAYES_ERROR;
	rc = v->state == BAYES_ERROR ? -1 : bayes_score_set(c, f, v, wait);
	if (rc == -1)
		v->state = BAYES_ERROR;
	return rc;
}

int
bayes_classify(struct conf *c, const struct mime_msg *m, size_t rawlen,
    struct bayes_verdict *v)
{
	struct bayes_feat f = { 0 };
	int rc;

	rc = bayes_classify_msg(c, &f, m, rawlen, v, 1);
	atomic_fetch_add(&bayes_nverdict[v->state], 1);
	bayes_feat_free(&f);
	return rc;
}

/* Classify m in two passes: the first reads the words of the headers and
 * of the first bayes.first_pass_bytes of body text, and the Markov part's
 * grams of the first half of bayes.markov_bytes; a verdict it is sure of
 * (bayes_sure) stands, else all of both is read and the message
 * classified again. f keeps the features of the pass that decided. As
 * bayes_classify_set. */
static int
bayes_classify_msg(struct conf *c, struct bayes_feat *f, const struct mime_msg *m,
    size_t rawlen, struct bayes_verdict *v, int wait)
{
	size_t mtext = (size_t)c->bayes_markov_bytes;
	int rc, cut;

	if (c->bayes_first_pass_bytes > 0)
		mtext /= 2;
	bayes_feat_read(c, f, m, rawlen, (size_t)c->bayes_first_pass_bytes, mtext);
	rc = bayes_classify_set(c, f, v, wait);
	cut = f->s.cut || f->mk_cut;
	if (rc != 0 || !cut)
		return rc;
	if (bayes_sure(c, v)) {
		v->first_pass = c->bayes_first_pass_bytes;
		v->first_pass_markov = c->bayes_markov ? (int)mtext : 0;
		return 0;
	}
	bayes_feat_whole(c, f, m, rawlen);
	return bayes_classify_set(c, f, v, wait);
}

/* Sure enough to skip the rest of the text: spam or ham at least
 * 1 - bayes.ham_threshold. */
static int
bayes_sure(const struct conf *c, const struct bayes_verdict *v)
{
	return v->state == BAYES_HAM || (v->state == BAYES_SPAM &&
	    v->prob >= 1 - c->bayes_ham_threshold);
}

/* What a first pass left out of f, read again: the words of all of m's
 * text and the Markov part's grams of all of its text (after an unsure
 * first pass, or for a learn of what a first pass classified). */
static void
bayes_feat_whole(const struct conf *c, struct bayes_feat *f, const struct mime_msg *m,
    size_t rawlen)
{
	if (f->s.cut) {
		btok_free(&f->s);	/* zeroed: max_text 0, all of it */
		btok_message(&f->s, m, rawlen);
	}
	if (f->mk_cut) {
		bmark_grams(&f->mk, m, (size_t)c->bayes_markov_bytes);
		f->mk_cut = 0;
	}
}

/* m's tokens from the first text bytes of its body (0: all), and, when
 * bayes.markov is on, its Markov positions from the first mtext bytes of
 * the Markov part's text. */
static void
bayes_feat_read(const struct conf *c, struct bayes_feat *f, const struct mime_msg *m,
    size_t rawlen, size_t text, size_t mtext)
{
	f->s.max_text = text;
	btok_message(&f->s, m, rawlen);
	f->mk_cut = c->bayes_markov &&
	    bmark_grams_first(&f->mk, m, (size_t)c->bayes_markov_bytes, mtext);
}

/* m's tokens, and its Markov positions when bayes.markov is on. */
static void
bayes_feat_make(const struct conf *c, struct bayes_feat *f, const struct mime_msg *m,
    size_t rawlen)
{
	bayes_feat_read(c, f, m, rawlen, 0, SIZE_MAX);
}

static void
bayes_feat_free(struct bayes_feat *f)
{
	btok_free(&f->s);
	bmark_free(&f->mk);
}

/* ----------------------------------------------------------- learning */

/* A leading mbox "From " line is no part of the message. */
static const char *
bayes_skip_from(const char *msg, size_t *len)
{
	const char *nl;

	if (*len >= 5 && memcmp(msg, "From ", 5) == 0 &&
	    (nl = memchr(msg, '\n', *len)) != NULL) {
		*len -= (size_t)(nl + 1 - msg);
		return nl + 1;
	}
	return msg;
}

/* SHA-256 over the message with CRLF read as LF: the copy a file holds
 * and the copy SMTP brought are one message. */
static void
bayes_digest(const char *msg, size_t len, unsigned char out[32])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	const char *p = msg, *end = msg + len, *cr;
	unsigned olen = 32;

	if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
		fatalx("bayes: SHA-256 unavailable");
	while ((cr = memmem(p, (size_t)(end - p), "\r\n", 2)) != NULL) {
		EVP_DigestUpdate(ctx, p, (size_t)(cr - p));
		p = cr + 1;	/* the LF stays */
	}
	EVP_DigestUpdate(ctx, p, (size_t)(end - p));
	EVP_DigestFinal_ex(ctx, out, &olen);
	EVP_MD_CTX_free(ctx);
}

/* The message's size with CRLF counted as LF (the size trait must not
 * tell a file's copy from SMTP's). */
static size_t
bayes_lf_len(const char *msg, size_t len)
{
	size_t n = len;

	for (const char *p = msg, *e = msg + len; (p = memchr(p, '\r', (size_t)(e - p))) != NULL; p++)
		n -= p + 1 < e && p[1] == '\n';
	return n;
}

/* A learn of msg (its features in f) as cls: digest and keys -- the
 * tokens, then the Markov grams and marker (*keys is xmalloc'd: the
 * caller frees it after a waited learn; db_bayes_learn_queue takes it). */
static void
bayes_fill(struct db_bayes_learn *l, enum bayes_class cls, const char *msg,
    size_t len, const struct bayes_feat *f, uint64_t **keys)
{
	const struct btok_set *s = &f->s;

	memset(l, 0, sizeof(*l));
	l->cls = (int)cls;
	bayes_digest(msg, len, l->digest);
	*keys = xmalloc((s->n + 2 * f->mk.n + 1) * sizeof(uint64_t));
	for (size_t i = 0; i < s->n; i++)
		(*keys)[i] = s->v[i].h;
	l->keys = *keys;
	l->nkeys = s->n + bmark_keys(&f->mk, *keys + s->n);
}

int
bayes_learn_parsed(const struct conf *c, const char *msg, size_t len,
    const struct mime_msg *m, enum bayes_class cls, struct bayes_learned *out)
{
	struct db_bayes_learn l;
	struct bayes_feat f = { 0 };
	uint64_t *keys;
	int rc;

	msg = bayes_skip_from(msg, &len);
	bayes_feat_make(c, &f, m, bayes_lf_len(msg, len));
	bayes_fill(&l, cls, msg, len, &f, &keys);
	rc = db_bayes_learn(&l, 1, c->bayes_max_tokens);
	if (rc == 0 && out != NULL)
		*out = (struct bayes_learned){ l.was, l.changed, (int)f.s.n };
	atomic_store(&bm.due_ms, 0);	/* our own copy sees it next time */
	free(keys);
	bayes_feat_free(&f);
	return rc;
}

int
bayes_learn(const struct conf *c, const char *msg, size_t len, enum bayes_class cls,
    struct bayes_learned *out)
{
	size_t l = len;
	const char *body = bayes_skip_from(msg, &l);
	struct mime_msg *m = mime_parse(body, l);
	int rc = bayes_learn_parsed(c, body, l, m, cls, out);

	mime_free(m);
	return rc;
}

int
bayes_learn_queue(const struct conf *c, const char *msg, size_t len, enum bayes_class cls)
{
	struct db_bayes_learn l;
	struct bayes_feat f = { 0 };
	struct mime_msg *m;
	uint64_t *keys;
	int rc;

	msg = bayes_skip_from(msg, &len);
	m = mime_parse(msg, len);
	bayes_feat_make(c, &f, m, bayes_lf_len(msg, len));
	bayes_fill(&l, cls, msg, len, &f, &keys);
	rc = db_bayes_learn_queue(&l, c->bayes_max_tokens);	/* takes keys */
	bayes_feat_free(&f);
	mime_free(m);
	return rc;
}

int
bayes_counts(struct bayes_counts *bc)
{
	struct db_bayes_meta m;

	memset(bc, 0, sizeof(*bc));
	for (int i = 0; i <= BAYES_ERROR; i++)
		bc->verdicts[i] = atomic_load(&bayes_nverdict[i]);
	bc->autolearned[0] = atomic_load(&bayes_nauto[0]);
	bc->autolearned[1] = atomic_load(&bayes_nauto[1]);
	if (db_bayes_meta(&m) == -1)
		return -1;
	bc->nspam = m.nspam;
	bc->nham = m.nham;
	bc->ntokens = m.ntokens;
	return 0;
}

/* ------------------------------------------------------------ the check */

/* The dashboard reads this text (web/static/app.js, bayesInfo): keep
 * "probability P (U of N tokens; ...)" and "; top: TOKEN F, ..." as they are. */
static void
bayes_reason(const struct bayes_verdict *v, char *buf, size_t sz)
{
	size_t o;

	if (v->state == BAYES_UNTRAINED) {
		snprintf(buf, sz, "not enough training: %lld spam and %lld ham learned",
		    v->nspam, v->nham);
		return;
	}
	if (v->state == BAYES_ERROR) {
		snprintf(buf, sz, "token counts could not be read");
		return;
	}
	o = (size_t)snprintf(buf, sz, "probability %.4f (%d of %d tokens; %lld spam, %lld ham learned)",
	    v->prob, v->used, v->ntokens, v->nspam, v->nham);
	if (v->first_pass && o < sz)
		o += (size_t)snprintf(buf + o, sz - o, "; sure on a first pass: %d bytes "
		    "of text, %d of the Markov text", v->first_pass, v->first_pass_markov);
	if (v->markov && o < sz)
		o += (size_t)snprintf(buf + o, sz - o, "; markov %+.4f, words %.4f",
		    v->markov_mean, v->words_prob);
	else if (v->markov_on && o < sz)
		o += (size_t)snprintf(buf + o, sz - o,
		    "; markov not enough training: %lld spam, %lld ham", v->mspam, v->mham);
	for (int i = 0; i < v->ntop && i < 5 && o < sz; i++)
		o += (size_t)snprintf(buf + o, sz - o, "%s%s %.3f", i ? ", " : "; top: ",
		    v->top[i].text, v->top[i].prob);
}

/* Nothing to compute: untrained, the copy current, no autolearn (so no
 * tokens are needed). Says so without waiting for the lock. 1 or 0. */
static int
bayes_idle(const struct conf *c, long long *nspam, long long *nham)
{
	int idle;

	if (c->bayes_autolearn || pthread_rwlock_tryrdlock(&bm.lock) != 0)
		return 0;
	idle = bm.tab != NULL && time_mono_ms() < atomic_load(&bm.due_ms) &&
	    (bm.nspam < c->bayes_min_learned || bm.nham < c->bayes_min_learned);
	*nspam = bm.nspam;
	*nham = bm.nham;
	pthread_rwlock_unlock(&bm.lock);
	return idle;
}

/* The classification is CPU work proportional to the message: a
 * worker's job past policy.inline_bytes, unless there is nothing to do at
 * all (bayes_idle). A copy due for a refresh (a database read) sends a
 * run on the loop to a worker from bayes_run. */
static int
bayes_blocks(const struct pol_session *ps, enum pol_stage st,
    const struct pol_msg *msg)
{
	long long ns, nh;

	return st == POL_DATA && !pol_inline_msg(ps, msg) &&
	    !bayes_idle(ps->conf, &ns, &nh);
}

static void
bayes_run(struct pol_session *ps, enum pol_stage st, const struct pol_msg *msg)
{
	struct bayes_tx *bs;
	struct bayes_feat f = { 0 };
	char reason[600];
	double before = ps->score;

	if (st != POL_DATA || msg == NULL)
		return;
	if ((bs = ps->priv[BAYES_SLOT]) == NULL)
		bs = ps->priv[BAYES_SLOT] = xcalloc(1, sizeof(*bs));
	bayes_learn_drop(bs);	/* an undone run's */
	memset(&bs->v, 0, sizeof(bs->v));
	bs->have = 0;
	if (bayes_idle(ps->conf, &bs->v.nspam, &bs->v.nham)) {
		bs->v.state = BAYES_UNTRAINED;
		bs->v.prob = 0.5;
		bs->have = 1;
		bayes_reason(&bs->v, reason, sizeof(reason));
		pol_result_add(ps, "bayes", "untrained", 0, NULL, "%s", reason);
		return;
	}
	if (bayes_classify_msg(ps->conf, &f, pol_mime(ps, msg), bayes_lf_len(msg->data, msg->len),
	    &bs->v, !pol_speculative(ps)) == -2) {
		pol_spec_miss(ps);	/* a worker refreshes the copy */
		bayes_feat_free(&f);
		return;
	}
	bs->have = 1;
	bayes_reason(&bs->v, reason, sizeof(reason));
	pol_result_add(ps, "bayes", bayes_state_name(bs->v.state), bs->v.score, NULL,
	    "%s", reason);
	if (!ps->dry_run && ps->conf->bayes_autolearn && bs->v.state != BAYES_ERROR)
		bayes_autolearn(ps, msg, &f, before);
	bayes_feat_free(&f);
}

/* The verdict counts, and the autolearn goes to the writer, once the
 * stage is kept: on the I/O loop a stage may be undone and run again
 * (policy/policy_int.h). */
static void
bayes_commit(struct pol_session *ps, enum pol_stage st)
{
	struct bayes_tx *bs = ps->priv[BAYES_SLOT];
	int cls;

	if (st != POL_DATA || bs == NULL)
		return;
	if (bs->have)	/* commit follows each kept run once */
		atomic_fetch_add(&bayes_nverdict[bs->v.state], 1);
	if (!bs->learn_pending)
		return;
	bs->learn_pending = 0;
	cls = bs->learn.cls;
	if (db_bayes_learn_queue(&bs->learn, ps->conf->bayes_max_tokens) == -1) {
		/* the writer is behind: db.c logs it; the keys are gone */
		log_debug("%s: bayes: autolearn as %s skipped", ps->sid, cls ? "spam" : "ham");
		return;
	}
	atomic_fetch_add(&bayes_nauto[cls], 1);
	log_info("%s: bayes: autolearn as %s (score %.1f without the classifier)",
	    ps->sid, cls ? "spam" : "ham", bs->before);
}

/* A learn decided but not queued: its keys go. */
static void
bayes_learn_drop(struct bayes_tx *bs)
{
	if (bs->learn_pending)
		free(bs->learn.keys);
	bs->learn_pending = 0;
}

/* The classifier already gives the message cls with at least
 * bayes.autolearn_until: learning it would teach little and cost a write
 * of all its tokens (learning what it gets wrong or is unsure of, as
 * rspamd's learn condition and train-on-error filters do). A classifier
 * still short of training says 0.5 and never is sure. */
static int
bayes_autolearn_sure(const struct conf *c, const struct bayes_verdict *v,
    enum bayes_class cls)
{
	double p = cls == BAYES_LEARN_SPAM ? v->prob : 1 - v->prob;

	return c->bayes_autolearn_until < 1 && v->state != BAYES_UNTRAINED &&
	    p >= c->bayes_autolearn_until;
}

/* Learn from the other checks' confident verdicts (before: the score
 * without ours), unless that class is already far ahead of the other or
 * the classifier already puts the message there with
 * bayes.autolearn_until: the learn is made here and queued by
 * bayes_commit. */
static void
bayes_autolearn(struct pol_session *ps, const struct pol_msg *msg,
    struct bayes_feat *f, double before)
{
	const struct conf *c = ps->conf;
	struct bayes_tx *bs = ps->priv[BAYES_SLOT];
	const struct bayes_verdict *v = &bs->v;
	enum bayes_class cls;
	long long mine, other;
	uint64_t *keys;

	if (before >= c->bayes_autolearn_spam_score)
		cls = BAYES_LEARN_SPAM;
	else if (before <= c->bayes_autolearn_ham_score)
		cls = BAYES_LEARN_HAM;
	else
		return;
	if (bayes_autolearn_sure(c, v, cls)) {
		log_debug("%s: bayes: no autolearn as %s: the classifier already says %.4f",
		    ps->sid, cls ? "spam" : "ham", v->prob);
		return;
	}
	mine = cls == BAYES_LEARN_SPAM ? v->nspam : v->nham;
	other = cls == BAYES_LEARN_SPAM ? v->nham : v->nspam;
	if (mine >= c->bayes_min_learned && mine > c->bayes_autolearn_balance * (double)other) {
		log_debug("%s: bayes: no autolearn as %s: %lld learned against %lld",
		    ps->sid, cls ? "spam" : "ham", mine, other);
		return;
	}
	/* learned from all its text, as postern learn would */
	bayes_feat_whole(c, f, pol_mime(ps, msg), bayes_lf_len(msg->data, msg->len));
	bayes_fill(&bs->learn, cls, msg->data, msg->len, f, &keys);
	bs->learn_pending = 1;
	bs->before = before;
}

static void
bayes_tx_reset(struct pol_session *ps)
{
	struct bayes_tx *bs = ps->priv[BAYES_SLOT];

	if (bs != NULL)
		bayes_learn_drop(bs);
	free(bs);
	ps->priv[BAYES_SLOT] = NULL;
}

const struct bayes_verdict *
bayes_session_verdict(const struct pol_session *ps)
{
	const struct bayes_tx *bs = ps->priv[BAYES_SLOT];

	return bs != NULL && bs->have ? &bs->v : NULL;
}

/* ------------------------------------------------ learning in batches */

/* Messages tokenised and waiting for their transaction, and what the
 * batches so far did. */
struct bayes_batch {
	const struct conf *c;
	enum bayes_class cls;
	struct db_bayes_learn l[BAYES_BATCH];
	uint64_t	*keys[BAYES_BATCH];
	int		 n;
	struct bayes_batch_counts counts;
};

struct bayes_batch *
bayes_batch_new(const struct conf *c, enum bayes_class cls)
{
	struct bayes_batch *b = xcalloc(1, sizeof(*b));

	b->c = c;
	b->cls = cls;
	return b;
}

int
bayes_batch_add(struct bayes_batch *b, const char *msg, size_t len)
{
	struct bayes_feat f = { 0 };
	struct mime_msg *m;

	msg = bayes_skip_from(msg, &len);
	m = mime_parse(msg, len);
	bayes_feat_make(b->c, &f, m, bayes_lf_len(msg, len));
	bayes_fill(&b->l[b->n], b->cls, msg, len, &f, &b->keys[b->n]);
	bayes_feat_free(&f);
	mime_free(m);
	b->counts.seen++;
	if (++b->n < BAYES_BATCH)
		return 0;
	bayes_batch_flush(b);
	return 1;
}

int
bayes_batch_flush(struct bayes_batch *b)
{
	struct bayes_batch_counts *n = &b->counts;
	int rc = 0;

	if (b->n == 0)
		return 0;
	if (db_bayes_learn(b->l, (size_t)b->n, b->c->bayes_max_tokens) == -1) {
		n->failed += b->n;
		rc = -1;
	} else
		for (int i = 0; i < b->n; i++) {
			n->changed += b->l[i].changed;
			n->moved += b->l[i].changed && b->l[i].was >= 0 &&
			    b->cls != BAYES_FORGET;
			n->same += !b->l[i].changed;
		}
	for (int i = 0; i < b->n; i++) {
		free(b->keys[i]);
		b->keys[i] = NULL;
	}
	b->n = 0;
	return rc;
}

const struct bayes_batch_counts *
bayes_batch_counts(const struct bayes_batch *b)
{
	return &b->counts;
}

void
bayes_batch_free(struct bayes_batch *b)
{
	for (int i = 0; i < b->n; i++)
		free(b->keys[i]);
	free(b);
}
