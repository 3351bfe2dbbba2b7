/*
 * bayes_proto.c -- a workbench for combining methods: five-fold
 * cross-validation over the tokens btok_dump wrote, in memory, in
 * seconds, with the same fold split as bayes_cv (message i in fold i % k).
 * It is not the real check (that is bayes_cv through postern learn and
 * pol_run); it reproduces the check's chi-square arithmetic so that other
 * methods can be compared with it on the same tokens.
 *
 *   bayes_proto TOKENS METHOD [key=value ...]
 *
 * TOKENS: what `btok_dump CORPUS TOKENS` wrote. METHOD:
 *   chi     Robinson/Fisher as policy/bayes.c (s, x, mindev, maxused);
 *   lr      online logistic regression over binary token presence, trained
 *           on error with a margin (eta, margin, passes, avg: averaged
 *           weights, l2, decay, norm: 1/sqrt(n) scaling, nb: features
 *           valued by their naive-Bayes log-count ratio, lrmask: kinds the
 *           LR sees, ens: mean of that many runs' weights);
 *   stack   lr + beta * chi's (S - H), each learned on the same fold;
 *   resid   the same, the LR trained on the chi part computed with the
 *           message itself left out of the counts;
 *   online  one learner seeing each message once (order 0 shuffled, 1 all
 *           ham then all spam, 2 spam then ham), as `postern learn` would;
 *   tune    chi-square counts learned on error (tunelo, tunehi,
 *           tunepasses);
 *   chillr  beta * (S - H) + the sum (llrmean=1: mean) of the used
 *           tokens' log-odds;
 *   ng      a second model over btok_dump's character n-grams (kinds
 *           20-23) plus beta * the words' chi (S - H); amask= the kinds
 *           the words' chi reads (1048575: the tokeniser's own), bmode: 1
 *           chi over the n-grams, 2 (4) the mean (sum) of their naive-Bayes
 *           log ratios, 3 a Markov model's cross-entropy difference per
 *           position (alpha, vocab: its smoothing; low=1: backing off
 *           to btok_dump's nglow= order instead of 1/vocab; clip=C: each
 *           position's log ratio within +-C; mexp=E: the sum over n^E
 *           positions; ngbits=B: n-grams
 *           and contexts counted in 2^B shared buckets); beta=-1 the
 *           second model alone;
 *   nested  stack with beta and the threshold chosen per fold by a 4-fold
 *           CV of its training part (chionly=1: chi alone, the threshold
 *           chosen so; bmode=N: the ng method's model instead of the LR,
 *           agrid=1 also its smoothing; fixbeta=B: beta fixed, as the
 *           check's bayes.markov_weight 1/B, only the threshold chosen),
 *           as a deployment fixes them beforehand.
 * Prints best F1 with at most fpmax (5) ham called spam, the threshold
 * swept over the pooled scores; false positives/negatives per fold at
 * that threshold; spam missed at 2, 5, 10, 20, 40 false positives; 1 -
 * ROC area. seed= picks the shuffles; top=N lists the N highest ham;
 * dump=1 writes build/proto/scores.tsv; thr= also scores one threshold.
 */
#include "policy/bayes.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define K	5

struct msg {
	int	 spam, fold, n, ofold, skip;
	uint32_t *idx;		/* global feature index per token */
	uint32_t *sq;		/* ngseq: per text position its n-gram, its context */
	int	 nsq;
	uint8_t	 *kind;
	double	 score, chi, lr, sh, oscore;
	double	 bv[8];		/* nested agrid=1: b_score per smoothing of agrid[] */
};

static struct msg *msgs;
static int nmsgs;
static uint32_t nfeat;

/* parameters */
static double p_s = 0.45, p_x = 0.5, p_mindev = 0.1, p_eta = 0.02, p_margin = 1e9;
static double p_l2 = 0, p_beta = 0, p_thr = -1, p_norm = 0, p_bias = 1;
static int p_maxused = 300, p_passes = 5, p_fpmax = 5, p_seed = 1, p_kmask = -1;
static double p_w0 = 0, p_tunelo = 0.1, p_tunehi = 0.9, p_avg = 0, p_decay = 0;
static int p_ngbits = 0;	/* n-grams and contexts share 2^ngbits buckets */
static int p_tunepasses = 3, p_prior = 0, p_top = 0, p_dump = 0;

/* ------------------------------------------------------------ loading */

static int have_low;	/* the file has nglow= sequences: 4 entries a position */
static uint64_t *hkeys;
static uint32_t *hval;
static size_t hcap;

static uint32_t
feat_index(uint64_t h)
{
	size_t i = (size_t)(h * 0x9e3779b97f4a7c15ULL) & (hcap - 1);

	while (hkeys[i] != 0 && hkeys[i] != h)
		i = (i + 1) & (hcap - 1);
	if (hkeys[i] == 0) {
		hkeys[i] = h;
		hval[i] = nfeat++;
	}
	return hval[i];
}

static void
load(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint32_t hdr[2];
	int cap = 8192;

	if (f == NULL) {
		perror(path);
		exit(1);
	}
	hcap = 1 << 23;
	hkeys = calloc(hcap, 8);
	hval = calloc(hcap, 4);
	msgs = calloc((size_t)cap, sizeof(*msgs));
	while (fread(hdr, sizeof(hdr), 1, f) == 1) {
		struct msg *m = &msgs[nmsgs];
		struct { uint64_t h; uint8_t kind, dist, pad[6]; } t;
		m->spam = (int)hdr[0];
		m->fold = nmsgs % K;
		m->idx = malloc((hdr[1] + 1) * sizeof(uint32_t));
		m->sq = malloc((hdr[1] + 1) * sizeof(uint32_t));
		m->kind = malloc(hdr[1] + 1);
		for (uint32_t i = 0; i < hdr[1]; i++) {
			if (fread(&t, sizeof(t), 1, f) != 1)
				exit(1);
			if (p_ngbits && t.kind >= 20)	/* buckets, as a keyless table */
				t.h = 0x5a00000000000000ULL | (t.h & ((1ULL << p_ngbits) - 1));
			have_low |= t.kind == 24;
			if (t.kind >= 21 && t.kind <= 25 && t.kind != 23) {
				m->sq[m->nsq++] = feat_index(t.h ? t.h : 1);
				continue;
			}
			if (p_kmask != -1 && !(p_kmask & (1 << t.kind)))
				continue;
			m->kind[m->n] = t.kind;
			m->idx[m->n++] = feat_index(t.h ? t.h : 1);
		}
		nmsgs++;
	}
	fclose(f);
	fprintf(stderr, "%d messages, %u distinct tokens\n", nmsgs, nfeat);
}

/* ----------------------------------------------------------- evaluation */

static int
cmp_desc(const void *a, const void *b)
{
	double x = (*(struct msg *const *)a)->score, y = (*(struct msg *const *)b)->score;

	return x < y ? 1 : x > y ? -1 : 0;
}

static double
f1(long tp, long fp, long fn)
{
	return tp ? 2.0 * tp / (2.0 * tp + fp + fn) : 0;
}

/* The best cut of the messages not skipped. */
struct cut {
	double	 f1, thr;
	long	 tp, fp, nspam;
};

/* The messages not skipped, highest score first (malloc'd; *n of them). */
static struct msg **
sorted(int *n, long *nspam)
{
	struct msg **o = malloc((size_t)nmsgs * sizeof(*o));

	*n = 0;
	*nspam = 0;
	for (int i = 0; i < nmsgs; i++)
		if (!msgs[i].skip) {
			o[(*n)++] = &msgs[i];
			*nspam += msgs[i].spam;
		}
	qsort(o, (size_t)*n, sizeof(*o), cmp_desc);
	return o;
}

/* Best F1 with at most fpmax ham above the threshold, cutting only
 * between different scores. */
static struct cut
best_cut(struct msg **o, int n, long nspam, int fpmax)
{
	struct cut c = { .nspam = nspam };
	long tp = 0, fp = 0;

	for (int i = 0; i < n; i++) {
		o[i]->spam ? tp++ : fp++;
		if (fp > fpmax)
			break;
		if (i + 1 < n && o[i + 1]->score == o[i]->score)
			continue;
		if (f1(tp, fp, nspam - tp) > c.f1) {
			c.f1 = f1(tp, fp, nspam - tp);
			c.tp = tp;
			c.fp = fp;
			c.thr = i + 1 < n ? (o[i]->score + o[i + 1]->score) / 2 : o[i]->score;
		}
	}
	return c;
}

static void
report(const char *what)
{
	long nspam;
	int n;
	struct msg **o = sorted(&n, &nspam);
	struct cut c = best_cut(o, n, nspam, p_fpmax);
	double thr = c.thr;

	printf("%s: best F1 %.4f at FP <= %d: FP %ld FN %ld thr %.6g; per fold (FP/FN):",
	    what, c.f1, p_fpmax, c.fp, nspam - c.tp, thr);
	for (int k = 0; k < K; k++) {
		long kfp = 0, kfn = 0;
		for (int i = 0; i < nmsgs; i++)
			if (msgs[i].fold == k) {
				kfp += !msgs[i].spam && msgs[i].score > thr;
				kfn += msgs[i].spam && msgs[i].score <= thr;
			}
		printf(" %ld/%ld", kfp, kfn);
	}
	printf("\n");
	{	/* spam missed at other FP budgets, and 1 - ROC area */
		long fps[] = { 2, 5, 10, 20, 40 }, t2 = 0, f2 = 0, area = 0;
		int j = 0;
		printf("  FN at FP<=");
		for (int i = 0; i < nmsgs; i++) {
			if (j < 5 && !o[i]->spam && f2 == fps[j]) {
				printf(" %ld:%ld", fps[j], nspam - t2);
				j++;
			}
			o[i]->spam ? t2++ : (f2++, area += t2);
		}
		printf("  1-AUC %.4f%%\n", 100.0 * (1.0 - (double)area / ((double)nspam * (nmsgs - nspam))));
	}
	if (p_top) {
		printf("  top ham:");
		for (int i = 0, shown = 0; i < n && shown < p_top; i++)
			if (!o[i]->spam) {
				printf(" %ld:%.4g", (long)(o[i] - msgs), o[i]->score);
				shown++;
			}
		printf("\n");
	}
	if (p_dump) {
		FILE *f = fopen("build/proto/scores.tsv", "w");
		for (int i = 0; f && i < nmsgs; i++)
			fprintf(f, "%d\t%d\t%.6g\t%.6g\t%.6g\n", i, msgs[i].spam,
			    msgs[i].score, msgs[i].chi, msgs[i].lr);
		if (f)
			fclose(f);
	}
	if (p_thr > -1e300 && p_thr != -1) {
		long a = 0, b = 0, c = 0;
		for (int i = 0; i < nmsgs; i++) {
			int called = msgs[i].score >= p_thr;
			if (msgs[i].spam)
				called ? a++ : c++;
			else
				b += called;
		}
		printf("%s: at thr %g: F1 %.4f FP %ld FN %ld\n", what, p_thr, f1(a, b, c), b, c);
	}
	free(o);
}

/* --------------------------------------------------------- chi-square */

static unsigned *cs, *ch;	/* per feature: spam, ham counts */
static long Ns, Nh;

static int
dcmp(const void *a, const void *b)
{
	double x = fabs(*(const double *)a - 0.5), y = fabs(*(const double *)b - 0.5);

	return x < y ? 1 : x > y ? -1 : 0;
}

static double last_llr;
static int p_amask = -1, p_bmode = 0;
static double p_alpha = 1, p_vocab = 40;
static int p_llrmean, p_lrmask = -1, p_ens = 1, p_nb = 0, p_chionly = 0, p_nbloo = 0;

/* nested agrid=1 (bmode 3): the Markov model's smoothings (alpha, vocab)
 * chosen from, inside each fold, with beta. */
static const double agrid[][2] = { { 1, 40 }, { 3, 40 }, { 10, 40 }, { 1, 200 },
    { 3, 200 }, { 1, 1000 }, { 3, 1000 }, { 0.3, 200 } };
#define NAGRID	((int)(sizeof(agrid) / sizeof(agrid[0])))
static int p_agrid, p_low;
static double p_clip = 0, p_mexp = 1;	/* bmode 3: |log ratio| cap; sum / n^mexp */
static double p_fixbeta = -1;	/* nested: this beta only (the check's fixed weight) */

/* The kinds chi_score() looks at. */
static int chi_mask = -1;

/* The check's probability; *sh gets S - H. */
static double
chi_score(const struct msg *m, double *sh)
{
	static double *fv;
	static int fcap;
	double ls = 0, lh = 0, s, h;
	int n = 0;

	if (fcap < m->n + 1) {
		fcap = m->n + 1;
		fv = realloc(fv, (size_t)fcap * sizeof(double));
	}
	for (int i = 0; i < m->n; i++) {
		unsigned ns = cs[m->idx[i]], nh = ch[m->idx[i]];
		if (ns + nh == 0 || !(chi_mask & (1 << m->kind[i])))
			continue;
		double ps = Ns ? (double)ns / Ns : 0, ph = Nh ? (double)nh / Nh : 0;
		double p = ps / (ps + ph), nn = (double)ns + nh;
		double f = (p_s * p_x + nn * p) / (p_s + nn);
		if (fabs(f - 0.5) < p_mindev)
			continue;
		fv[n++] = f;
	}
	if (n > p_maxused) {
		qsort(fv, (size_t)n, sizeof(double), dcmp);
		n = p_maxused;
	}
	if (n == 0) {
		*sh = 0;
		return 0.5;
	}
	for (int i = 0; i < n; i++) {
		lh += log(fv[i]);
		ls += log(1.0 - fv[i]);
	}
	s = 1.0 - bayes_chi2q(-2.0 * ls, 2 * n);
	h = 1.0 - bayes_chi2q(-2.0 * lh, 2 * n);
	*sh = s - h;
	last_llr = (lh - ls) / (p_llrmean ? n : 1);
	return (1.0 + s - h) / 2.0;
}

/* The second model's score of m (bmode): 1 chi-square S - H over the
 * n-grams (kind 20); 2 the mean, 4 the sum of their naive-Bayes log
 * ratios (presence, add-alpha); 3 a Markov model's cross-entropy
 * difference per text position, P(byte | context) from the n-gram and
 * context counts of each class, add-alpha towards 1/vocab. */
static double
b_score(const struct msg *m)
{
	double sum = 0, sh = 0;
	int n = 0;

	if (p_bmode == 1) {
		int save = chi_mask;
		chi_mask = 1 << 20;
		chi_score(m, &sh);
		chi_mask = save;
		return sh;
	}
	if (p_bmode == 3) {
		int step = have_low ? 4 : 2;
		for (int i = 0; i + step - 1 < m->nsq; i += step) {
			uint32_t g = m->sq[i], c = m->sq[i + 1];
			double bs = 1 / p_vocab, bh = 1 / p_vocab;
			if (step == 4 && p_low) {	/* back off to the lower order */
				uint32_t lg = m->sq[i + 2], lc = m->sq[i + 3];
				bs = (cs[lg] + p_alpha / p_vocab) / (cs[lc] + p_alpha);
				bh = (ch[lg] + p_alpha / p_vocab) / (ch[lc] + p_alpha);
			}
			double ps = (cs[g] + p_alpha * bs) / (cs[c] + p_alpha);
			double ph = (ch[g] + p_alpha * bh) / (ch[c] + p_alpha);
			double l = log(ps / ph);
			if (p_clip > 0)
				l = l > p_clip ? p_clip : l < -p_clip ? -p_clip : l;
			sum += l;
			n++;
		}
		return n ? sum / pow(n, p_mexp) : 0;
	}
	for (int i = 0; i < m->n; i++) {
		uint32_t f = m->idx[i];
		if (m->kind[i] != 20)
			continue;
		sum += log(((cs[f] + p_alpha) / (Ns + 2 * p_alpha)) /
		    ((ch[f] + p_alpha) / (Nh + 2 * p_alpha)));
		n++;
	}
	return p_bmode == 4 ? sum : n ? sum / n : 0;
}

static void
chi_learn(const struct msg *m, int sign)
{
	for (int i = 0; i < m->n; i++)
		(m->spam ? cs : ch)[m->idx[i]] += (unsigned)sign;
	*(m->spam ? &Ns : &Nh) += sign;
}

static void
chi_fold(int k)
{
	memset(cs, 0, nfeat * sizeof(unsigned));
	memset(ch, 0, nfeat * sizeof(unsigned));
	Ns = Nh = 0;
	for (int i = 0; i < nmsgs; i++)
		if (msgs[i].fold != k && !msgs[i].skip)
			chi_learn(&msgs[i], 1);

}

/* ------------------------------------------------------------ shuffling */

static unsigned long rng = 1;

static unsigned
rnd(void)
{
	rng = rng * 6364136223846793005UL + 1442695040888963407UL;
	return (unsigned)(rng >> 33);
}

static int *
train_order(int k, int *n)
{
	int *o = malloc((size_t)nmsgs * sizeof(int));

	*n = 0;
	for (int i = 0; i < nmsgs; i++)
		if (msgs[i].fold != k && !msgs[i].skip)
			o[(*n)++] = i;
	return o;
}

static void
shuffle(int *o, int n)
{
	for (int i = n - 1; i > 0; i--) {
		int j = (int)(rnd() % (unsigned)(i + 1)), t = o[i];
		o[i] = o[j];
		o[j] = t;
	}
}

/* ------------------------------------------------- logistic regression */

static float *w, *wsum, *rv;	/* rv: NB log-count ratios as feature values (nb=1) */

static void
nb_ratios(void)
{
	double a = 1.0;

	for (uint32_t i = 0; i < nfeat; i++)
		rv[i] = cs[i] + ch[i] == 0 ? 0.0f :
		    (float)log(((cs[i] + a) / (Ns + 2 * a)) / ((ch[i] + a) / (Nh + 2 * a)));
}
static double bias;

/* The feature value of token i of m: 1, or its log-count ratio -- with m
 * itself left out of the counts while m is a training message (nbloo). */
static int lr_training;

static inline float
fval(const struct msg *m, int i)
{
	uint32_t f = m->idx[i];
	double a = 1.0, s, h, S = Ns, H = Nh;

	if (rv == NULL)
		return 1.0f;
	if (!p_nbloo || !lr_training)
		return rv[f];
	s = cs[f] - (m->spam ? 1 : 0);
	h = ch[f] - (m->spam ? 0 : 1);
	S -= m->spam;
	H -= !m->spam;
	if (s + h == 0)
		return 0.0f;
	return (float)log(((s + a) / (S + 2 * a)) / ((h + a) / (H + 2 * a)));
}

static double
lr_score(const struct msg *m)
{
	double s = bias * p_bias, x = p_norm ? 1.0 / sqrt(m->n + 1.0) : 1.0;

	for (int i = 0; i < m->n; i++)
		if (p_lrmask & (1 << m->kind[i]))
			s += w[m->idx[i]] * fval(m, i);
	return s * x;
}

static double avg_c, bsum;

static void
lr_update(const struct msg *m, double g)
{
	double x = p_norm ? 1.0 / sqrt(m->n + 1.0) : 1.0;

	for (int i = 0; i < m->n; i++) {
		float *wi = &w[m->idx[i]];
		if (!(p_lrmask & (1 << m->kind[i])))
			continue;
		double d = p_eta * (g * x * fval(m, i) - p_l2 * *wi);
		*wi += (float)d;
		wsum[m->idx[i]] += (float)(avg_c * d);
	}
	bias += p_eta * g * x;
	bsum += avg_c * p_eta * g * x;
}

static long nupdates;

/* resid: the chi-square part of each training message's score, computed
 * with the message itself left out of the counts (as if forgotten). */
static double *base;

static void
loo_base(int k)
{
	if (base == NULL)
		base = calloc((size_t)nmsgs, sizeof(double));
	for (int i = 0; i < nmsgs; i++) {
		double sh = 0;
		if (msgs[i].fold == k)
			continue;
		chi_learn(&msgs[i], -1);
		chi_score(&msgs[i], &sh);
		chi_learn(&msgs[i], 1);
		base[i] = p_beta * sh;
	}
}

static void
lr_fold(int k)
{
	int n, *o = train_order(k, &n);

	for (uint32_t i = 0; i < nfeat; i++)
		w[i] = (float)p_w0;
	memset(wsum, 0, nfeat * sizeof(float));
	bias = bsum = 0;
	avg_c = 1;
	lr_training = 1;
	for (int pass = 0; pass < p_passes; pass++) {
		shuffle(o, n);
		double eta0 = p_eta;
		if (p_decay > 0)
			p_eta = eta0 / (1 + p_decay * pass);
		for (int t = 0; t < n; t++) {
			const struct msg *m = &msgs[o[t]];
			double y = m->spam ? 1 : -1, s = lr_score(m) + (base ? base[o[t]] : 0);
			avg_c++;
			if (y * s >= p_margin)
				continue;	/* right, and by the margin */
			double p = 1.0 / (1.0 + exp(-s));
			lr_update(m, (m->spam ? 1.0 : 0.0) - p);
			nupdates++;
		}
		p_eta = eta0;
	}
	lr_training = 0;
	if (p_avg) {	/* averaged SGD: the mean of the weights over all steps */
		for (uint32_t i = 0; i < nfeat; i++)
			w[i] -= (float)(wsum[i] / avg_c);
		bias -= bsum / avg_c;
	}
	free(o);
}

/* online: what a learner that sees each message once does -- score it
 * with the counts and weights so far (chi-square part beta * (S - H)),
 * step the weights when it is wrong or within the margin, then count it.
 * order 0 shuffled, 1 all ham then all spam (as two `postern learn`
 * runs), 2 spam then ham. */
static int p_order = 0;

static void
online_fold(int k)
{
	int n, *o = train_order(k, &n);

	memset(cs, 0, nfeat * sizeof(unsigned));
	memset(ch, 0, nfeat * sizeof(unsigned));
	memset(w, 0, nfeat * sizeof(float));
	Ns = Nh = 0;
	bias = 0;
	for (int pass = 0; pass < p_passes; pass++) {
		shuffle(o, n);
		if (p_order) {	/* stable partition by class */
			int *t = malloc((size_t)n * sizeof(int)), j = 0;
			for (int c = 0; c < 2; c++)
				for (int i = 0; i < n; i++)
					if (msgs[o[i]].spam == (p_order == 1 ? c : 1 - c))
						t[j++] = o[i];
			memcpy(o, t, (size_t)n * sizeof(int));
			free(t);
		}
		for (int t = 0; t < n; t++) {
			const struct msg *m = &msgs[o[t]];
			double sh = 0, y = m->spam ? 1 : -1, sc;
			if (pass > 0)
				chi_learn(m, -1);
			if (Ns > 0 && Nh > 0)
				chi_score(m, &sh);
			sc = lr_score(m) + p_beta * sh;
			if (y * sc < p_margin) {
				lr_update(m, (m->spam ? 1.0 : 0.0) - 1.0 / (1.0 + exp(-sc)));
				nupdates++;
			}
			chi_learn(m, 1);
		}
	}
	free(o);
}

/* -------------------------------------------------- train on error (TUNE) */

static void
tune_fold(int k)
{
	int n, *o = train_order(k, &n);
	char *in = calloc((size_t)nmsgs, 1);

	memset(cs, 0, nfeat * sizeof(unsigned));
	memset(ch, 0, nfeat * sizeof(unsigned));
	Ns = Nh = 0;
	if (p_prior) {	/* start from everything learned once */
		for (int t = 0; t < n; t++) {
			chi_learn(&msgs[o[t]], 1);
			in[o[t]] = 1;
		}
	}
	for (int pass = 0; pass < p_tunepasses; pass++) {
		shuffle(o, n);
		long changed = 0;
		for (int t = 0; t < n; t++) {
			const struct msg *m = &msgs[o[t]];
			double sh, p;
			if (in[o[t]])
				continue;
			p = chi_score(m, &sh);
			if (m->spam ? p > p_tunehi : p < p_tunelo)
				continue;
			chi_learn(m, 1);
			in[o[t]] = 1;
			changed++;
		}
		nupdates += changed;
		if (changed == 0)
			break;
	}
	free(in);
	free(o);
}

/* ---------------------------------------------------- nested choice of beta */

/* Best F1 with at most fpmax ham over the messages not skipped. */
static double
best_f1_sel(int fpmax, double *thr)
{
	long nspam;
	int n;
	struct msg **o = sorted(&n, &nspam);
	struct cut c = best_cut(o, n, nspam, fpmax);

	free(o);
	*thr = c.thr;
	return c.f1;
}

/* One training of the stack on the non-skipped messages outside fold k;
 * sh and lr for those in it. */
static void
stack_fold(int k)
{
	chi_fold(k);
	if (p_nb)
		nb_ratios();
	if (!p_chionly && !p_bmode)
		lr_fold(k);

	for (int i = 0; i < nmsgs; i++)
		if (msgs[i].fold == k && !msgs[i].skip) {
			chi_mask = p_amask;
			msgs[i].chi = chi_score(&msgs[i], &msgs[i].sh);
			chi_mask = -1;
			msgs[i].lr = p_chionly ? 0 : p_bmode ? b_score(&msgs[i]) :
			    lr_score(&msgs[i]);
			for (int a = 0; p_agrid && a < NAGRID; a++) {
				double sa = p_alpha, sv = p_vocab;
				p_alpha = agrid[a][0];
				p_vocab = agrid[a][1];
				msgs[i].bv[a] = b_score(&msgs[i]);
				p_alpha = sa;
				p_vocab = sv;
			}
		}
}

static double
nested_score(const struct msg *m, double beta, int a)
{
	return p_chionly ? m->chi : (a < 0 ? m->lr : m->bv[a]) + beta * m->sh;
}

/* The stack with beta chosen per outer fold by a 4-fold cross-validation
 * of its training part alone (best F1 with at most 4 ham called spam). */
static void
nested(void)
{
	static const double grid0[] = { 0.5, 1, 1.5, 2, 3, 5, 10, 20, 30 };
	static const double gridb[] = { 0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10,
	    20, 50, 100, 1000 };
	const double *grid = p_fixbeta >= 0 ? &p_fixbeta : p_bmode ? gridb : grid0;
	int ng = p_chionly || p_fixbeta >= 0 ? 1 : p_bmode ? (int)(sizeof(gridb) / sizeof(gridb[0])) :
	    (int)(sizeof(grid0) / sizeof(grid0[0]));
	long tp = 0, fp = 0, fn = 0;

	if (p_nb && rv == NULL)
		rv = calloc(nfeat, sizeof(float));
	for (int i = 0; i < nmsgs; i++)
		msgs[i].ofold = msgs[i].fold;
	for (int k = 0; k < K; k++) {
		double bestv = -1, beta = 0, thr = 0;
		int besta = -1;
		long kfp = 0, kfn = 0;
		for (int i = 0, j = 0; i < nmsgs; i++) {
			msgs[i].skip = msgs[i].ofold == k;
			msgs[i].fold = msgs[i].skip ? -1 : j++ % 4;
		}
		for (int j = 0; j < 4; j++)
			stack_fold(j);
		for (int a = p_agrid ? 0 : -1; a < (p_agrid ? NAGRID : 0); a++)
		for (int g = 0; g < ng; g++) {
			double t = 0, v;
			for (int i = 0; i < nmsgs; i++)
				msgs[i].score = nested_score(&msgs[i], grid[g], a);
			if ((v = best_f1_sel(4, &t)) > bestv) {
				bestv = v;
				beta = grid[g];
				besta = a;
				thr = t;
			}
		}
		for (int i = 0; i < nmsgs; i++) {
			msgs[i].skip = 0;
			msgs[i].fold = msgs[i].ofold;
		}
		stack_fold(k);
		for (int i = 0; i < nmsgs; i++)
			if (msgs[i].fold == k) {
				struct msg *m = &msgs[i];
				m->score = m->oscore = nested_score(m, beta, besta);
				if (m->spam)
					m->score > thr ? tp++ : (kfn++, fn++);
				else if (m->score > thr)
					kfp++, fp++;
			}
		printf("  fold %d: beta %g", k, beta);
		if (besta >= 0)
			printf(" alpha %g vocab %g", agrid[besta][0], agrid[besta][1]);
		printf(" threshold %.4g (inner F1 %.4f): FP %ld FN %ld\n", thr, bestv, kfp, kfn);
	}
	for (int i = 0; i < nmsgs; i++)	/* the inner runs overwrote them */
		msgs[i].score = msgs[i].oscore;
	printf("  beta and threshold chosen inside each fold: F1 %.4f FP %ld FN %ld\n",
	    f1(tp, fp, fn), fp, fn);
}

/* ----------------------------------------------------------------- main */

static void
set(const char *kv)
{
	const char *eq = strchr(kv, '=');
	double v;

	if (eq == NULL) {
		fprintf(stderr, "bad setting %s\n", kv);
		exit(2);
	}
	v = atof(eq + 1);
#define P(name, var) if (strncmp(kv, name "=", strlen(name) + 1) == 0) { var = v; return; }
	P("s", p_s) P("x", p_x) P("mindev", p_mindev) P("eta", p_eta) P("margin", p_margin)
	P("l2", p_l2) P("beta", p_beta) P("thr", p_thr) P("norm", p_norm) P("bias", p_bias)
	P("maxused", p_maxused) P("passes", p_passes) P("fpmax", p_fpmax) P("seed", p_seed)
	P("kmask", p_kmask) P("amask", p_amask) P("bmode", p_bmode) P("alpha", p_alpha) P("vocab", p_vocab) P("agrid", p_agrid) P("ngbits", p_ngbits) P("low", p_low) P("clip", p_clip) P("mexp", p_mexp) P("tunelo", p_tunelo) P("tunehi", p_tunehi) P("avg", p_avg) P("fixbeta", p_fixbeta)
	P("tunepasses", p_tunepasses) P("prior", p_prior) P("decay", p_decay) P("top", p_top) P("nbloo", p_nbloo) P("chionly", p_chionly) P("w0", p_w0) P("nb", p_nb) P("ens", p_ens) P("lrmask", p_lrmask) P("llrmean", p_llrmean) P("order", p_order) P("dump", p_dump)
#undef P
	fprintf(stderr, "unknown setting %s\n", kv);
	exit(2);
}

int
main(int argc, char **argv)
{
	const char *method;
	char what[512];
	int o;

	if (argc < 3) {
		fprintf(stderr, "usage: bayes_proto TOKENS chi|lr|stack|resid|online|tune|chillr|nested"
		    " [key=value ...]\n");
		return 2;
	}
	method = argv[2];
	for (int i = 3; i < argc; i++)
		set(argv[i]);
	rng = (unsigned long)p_seed;
	load(argv[1]);
	cs = calloc(nfeat, sizeof(unsigned));
	ch = calloc(nfeat, sizeof(unsigned));
	w = calloc(nfeat, sizeof(float));
	wsum = calloc(nfeat, sizeof(float));
	for (int k = 0; k < K && strcmp(method, "nested") != 0; k++) {
		int want_chi = strcmp(method, "chi") == 0 || strcmp(method, "stack") == 0 ||
		    strcmp(method, "chillr") == 0;
		if (base)
			memset(base, 0, (size_t)nmsgs * sizeof(double));
		int want_lr = strcmp(method, "lr") == 0 || strcmp(method, "stack") == 0;
		if (strcmp(method, "ng") == 0) {	/* words' chi + beta * ... the second model */
			chi_fold(k);
			for (int i = 0; i < nmsgs; i++) {
				struct msg *m = &msgs[i];
				if (m->fold != k)
					continue;
				chi_mask = p_amask;
				m->chi = chi_score(m, &m->sh);
				chi_mask = -1;
				m->lr = b_score(m);
				m->score = p_beta < 0 ? m->lr : m->lr + p_beta * m->sh;
			}
			continue;
		}
		if (want_chi)
			chi_fold(k);
		chi_mask = p_amask;
		if (strcmp(method, "tune") == 0) {
			tune_fold(k);
			want_chi = 1;
		}
		if (strcmp(method, "online") == 0) {
			online_fold(k);
			want_chi = 1;
			want_lr = 2;
		}
		if (strcmp(method, "resid") == 0) {
			chi_fold(k);
			loo_base(k);
			want_chi = want_lr = 1;
		}
		if (p_nb) {
			if (rv == NULL)
				rv = calloc(nfeat, sizeof(float));
			chi_fold(k);
			nb_ratios();
			want_chi = 1;
		}
		if (want_lr == 1 && p_ens > 1) {	/* the mean of p_ens runs' weights */
			float *acc = calloc(nfeat, sizeof(float));
			double bacc = 0;
			for (int e = 0; e < p_ens; e++) {
				lr_fold(k);
				for (uint32_t i = 0; i < nfeat; i++)
					acc[i] += w[i] / (float)p_ens;
				bacc += bias / p_ens;
			}
			memcpy(w, acc, nfeat * sizeof(float));
			bias = bacc;
			free(acc);
		} else if (want_lr == 1)
			lr_fold(k);
		for (int i = 0; i < nmsgs; i++) {
			struct msg *m = &msgs[i];
			double sh = 0;
			if (m->fold != k)
				continue;
			if (want_chi)
				m->chi = chi_score(m, &sh);
			if (want_lr)
				m->lr = lr_score(m);
			m->score = want_lr ? m->lr + p_beta * sh : m->chi;
			if (strcmp(method, "chillr") == 0)
				m->score = p_beta * sh + last_llr;
			m->sh = sh;
		}
	}
	if (strcmp(method, "nested") == 0)
		nested();
	o = snprintf(what, sizeof(what), "%s", method);
	for (int i = 3; i < argc; i++)
		o += snprintf(what + o, sizeof(what) - (size_t)o, " %s", argv[i]);
	report(what);
	if (nupdates)
		printf("  updates %ld; features %u\n", nupdates, nfeat);
	return 0;
}
