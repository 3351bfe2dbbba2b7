/*
 * bayes_cv.c -- `make bench-detect`: k-fold cross-validation of the
 * content checks over a labelled corpus, through the real code: each
 * fold's training part is learned by `postern learn` (the binary, into
 * the fold's own database), and each held-back message is run through
 * pol_run() at DATA, as `postern check` runs it, three times: rules
 * alone, the classifier alone, both.
 *
 *   bayes_cv POSTERN CORPUS WORKDIR [-k FOLDS] [-r RULEFILE] [--relearn]
 *            [section.key=value ...]
 *
 * CORPUS holds labels.tsv (id, group, class, label) and messages/ID.eml,
 * as ../shared/corpus/get-train.py writes them. Folds are stratified: the
 * i-th message of labels.tsv (which lists ham, then spam) is in fold
 * i % k. Fold databases are kept in WORKDIR and reused when present, so
 * detection settings can be tried without learning again; --relearn (or
 * an empty WORKDIR) learns afresh -- needed after a change to the
 * tokeniser or to bayes.max_tokens.
 *
 * A message counts as called spam when its verdict is not accept (score
 * >= policy.tag_score, or a rule's action). Prints, per mode: precision,
 * recall, F1, false positives (count and share of ham), false negatives
 * and messages per second per core of the check (CPU time of this
 * process in pol_run), and the learning rate of `postern learn` (its CPU
 * time), and how many messages of each class every rule matched (the
 * content rules; the envelope here is one made-up sender). Per-message
 * results go to WORKDIR/results.tsv.
 */
#include "policy/bayes.h"
#include "bench/corpus.h"
#include "lib/conf.h"
#include "policy/policy_int.h"	/* pol_only_set, as `postern check --only` */
#include "lib/util.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CV_MAX_MSGS	100000
#define CV_MAX_SET	64

enum { M_RULES, M_BAYES, M_BOTH, M_N };
static const char *const cv_mode_name[M_N] = { "rules alone", "classifier alone", "both" };
static const char *const cv_mode_only[M_N] = { "rule", "bayes", "rule,bayes" };

struct cv_msg {
	char	*id;
	int	 spam;
	int	 fold;
	int	 called[M_N];
	double	 score[M_N], prob;
};

struct cv_count {
	long	 tp, fp, tn, fn;
	double	 cpu;
	long	 n;
};

/* Per rule: messages of each class it matched (rules-alone pass). */
#define CV_MAX_RULES	512
static struct {
	char	*name;
	long	 ham, spam;
} rules_hit[CV_MAX_RULES];
static int nrules_hit;

static struct cv_msg msgs[CV_MAX_MSGS];
static int nmsgs;
static const char *sets[CV_MAX_SET];
static int nsets;

static double
cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
cv_labels(const char *corpus, int k)
{
	char *p = xasprintf("%s/labels.tsv", corpus), line[1024];
	FILE *f = fopen(p, "r");

	free(p);
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) && nmsgs < CV_MAX_MSGS) {
		char *id;
		int spam;
		if (!corpus_label(line, &id, &spam))
			continue;
		msgs[nmsgs].id = xstrdup(id);
		msgs[nmsgs].spam = spam;
		msgs[nmsgs].fold = nmsgs % k;
		nmsgs++;
	}
	fclose(f);
	return nmsgs > 0 ? 0 : -1;
}

/* The fold's config: its database, the rules, and the settings given. */
static char *
cv_conf(const char *work, int fold, const char *rules)
{
	char *path = xasprintf("%s/fold%d.conf", work, fold);
	FILE *f = fopen(path, "w");
	const char *cur = "";

	if (f == NULL)
		fatal("%s", path);
	fprintf(f, "[db]\npath = %s/fold%d.db\n[dns]\nresolver = 127.0.0.1:9\n"
	    "[rules]\nfile = %s\n[log]\nlevel = warning\n", work, fold, rules);
	for (int i = 0; i < nsets; i++) {
		const char *dot = strchr(sets[i], '.'), *eq = strchr(sets[i], '=');
		if (dot == NULL || eq == NULL || eq < dot)
			fatalx("setting %s: write section.key=value", sets[i]);
		if (strncmp(cur, sets[i], (size_t)(dot - sets[i])) != 0 ||
		    cur[dot - sets[i]] != '\0') {
			char *sec = xstrndup(sets[i], (size_t)(dot - sets[i]));
			fprintf(f, "[%s]\n", sec);
			cur = sec;	/* kept for the rest of the run */
		}
		fprintf(f, "%.*s = %s\n", (int)(eq - dot - 1), dot + 1, eq + 1);
	}
	fclose(f);
	return path;
}

/* `postern learn` over the fold's training messages of one class; its
 * CPU seconds, or -1. */
static double
cv_learn(const char *postern, const char *conf, const char *corpus, int fold,
    int spam, long *n)
{
	char **argv = xcalloc((size_t)nmsgs + 8, sizeof(char *));
	struct rusage ru;
	int a = 0, st;
	pid_t pid;

	argv[a++] = (char *)postern;
	argv[a++] = "learn";
	argv[a++] = "-c";
	argv[a++] = (char *)conf;
	argv[a++] = spam ? "spam" : "ham";
	for (int i = 0; i < nmsgs; i++)
		if (msgs[i].fold != fold && msgs[i].spam == spam) {
			argv[a++] = xasprintf("%s/messages/%s.eml", corpus, msgs[i].id);
			(*n)++;
		}
	if ((pid = fork()) == 0) {
		execv(postern, argv);
		_exit(127);
	}
	if (pid == -1 || wait4(pid, &st, 0, &ru) == -1 || !WIFEXITED(st) ||
	    WEXITSTATUS(st) != 0)
		return -1;
	for (int i = 5; i < a; i++)
		free(argv[i]);
	free(argv);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	    (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* Run one held-back message through the policy at DATA. */
static void
cv_check(struct conf *c, struct cv_msg *m, const char *corpus, int mode,
    struct cv_count *cc)
{
	char *path = xasprintf("%s/messages/%s.eml", corpus, m->id);
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct pol_decision d = { 0 };
	struct pol_session *ps;
	struct pol_msg pm;
	char *raw = corpus_read(path, &pm.len);
	double t0;

	free(path);
	if (raw == NULL)
		fatal("read %s", m->id);
	pm.data = raw;
	t0 = cpu_now();
	ps = pol_session_new(c, "cv", (struct sockaddr *)&sin, sizeof(sin));
	pol_set_dry_run(ps);
	pol_tx_begin(ps, "sender@example.com", "");
	pol_run(ps, POL_DATA, &pm, &d);
	cc->cpu += cpu_now() - t0;
	cc->n++;
	m->called[mode] = d.verdict != POL_ACCEPT;
	m->score[mode] = d.score;
	for (int i = 0; mode == M_RULES && i < ps->nresults; i++) {
		const struct pol_result *r = &ps->results[i];
		int k;
		if (strcmp(r->check, "rule") != 0 || r->reason == NULL)
			continue;
		for (k = 0; k < nrules_hit && strcmp(rules_hit[k].name, r->reason) != 0; k++)
			;
		if (k == nrules_hit && nrules_hit < CV_MAX_RULES)
			rules_hit[nrules_hit++].name = xstrdup(r->reason);
		if (k < nrules_hit)
			m->spam ? rules_hit[k].spam++ : rules_hit[k].ham++;
	}
	if (mode == M_BAYES) {
		const struct bayes_verdict *v = bayes_session_verdict(ps);
		m->prob = v ? v->prob : -1;
	}
	pol_decision_clear(&d);
	pol_session_free(ps);
	free(raw);
	if (m->called[mode])
		m->spam ? cc->tp++ : cc->fp++;
	else
		m->spam ? cc->fn++ : cc->tn++;
}

static void
cv_print(const char *what, const struct cv_count *c)
{
	double p = c->tp + c->fp ? (double)c->tp / (double)(c->tp + c->fp) : 0;
	double r = c->tp + c->fn ? (double)c->tp / (double)(c->tp + c->fn) : 0;
	double f1 = p + r > 0 ? 2 * p * r / (p + r) : 0;

	printf("%-17s precision %.4f  recall %.4f  F1 %.4f  FP %ld (%.2f%% of ham)"
	    "  FN %ld  %.0f msg/s per core\n", what, p, r, f1, c->fp,
	    100.0 * (double)c->fp / (double)(c->fp + c->tn), c->fn,
	    c->cpu > 0 ? (double)c->n / c->cpu : 0);
}

static int
cv_usage(void)
{
	fprintf(stderr, "usage: bayes_cv POSTERN CORPUS WORKDIR [-k FOLDS] [-r RULEFILE]"
	    " [--relearn] [section.key=value ...]\n");
	return 2;
}

int
main(int argc, char **argv)
{
	const char *postern, *corpus, *work, *rules = "etc/rules.txt";
	struct cv_count tot[M_N] = { 0 };
	double lcpu = 0;
	long ln = 0;
	int k = 5, relearn = 0;

	if (argc < 4)
		return cv_usage();
	postern = argv[1];
	corpus = argv[2];
	work = argv[3];
	for (int i = 4; i < argc; i++) {
		if (strcmp(argv[i], "-k") == 0 && i + 1 < argc)
			k = atoi(argv[++i]);
		else if (strcmp(argv[i], "-r") == 0 && i + 1 < argc)
			rules = argv[++i];
		else if (strcmp(argv[i], "--relearn") == 0)
			relearn = 1;
		else if (strchr(argv[i], '=') != NULL && nsets < CV_MAX_SET)
			sets[nsets++] = argv[i];
		else
			return cv_usage();
	}
	log_init("bayes_cv", 0);
	if (k < 2 || cv_labels(corpus, k) == -1) {
		fprintf(stderr, "bayes_cv: no labels in %s\n", corpus);
		return 1;
	}
	mkdir(work, 0755);
	for (int f = 0; f < k; f++) {
		char *conf = cv_conf(work, f, rules), *db = xasprintf("%s/fold%d.db", work, f);
		struct conf *c;
		struct stat st;

		if (relearn || stat(db, &st) == -1) {
			char *rm = xasprintf("rm -f %s %s-wal %s-shm %s-admin", db, db, db, db);
			if (system(rm) != 0)
				fatalx("%s", rm);
			free(rm);
			double a = cv_learn(postern, conf, corpus, f, 0, &ln);
			double b = cv_learn(postern, conf, corpus, f, 1, &ln);
			if (a < 0 || b < 0)
				fatalx("postern learn failed for fold %d", f);
			lcpu += a + b;
		}
		if ((c = conf_load_report(conf)) == NULL || pol_init(c) == -1)
			fatalx("fold %d: bad config", f);
		for (int mode = 0; mode < M_N; mode++) {
			pol_only_set(cv_mode_only[mode]);
			for (int i = 0; i < nmsgs; i++)
				if (msgs[i].fold == f)
					cv_check(c, &msgs[i], corpus, mode, &tot[mode]);
		}
		pol_only_set(NULL);
		pol_shutdown();
		conf_unref(c);
		fprintf(stderr, "fold %d of %d done\n", f + 1, k);
		free(conf);
		free(db);
	}
	char *rp = xasprintf("%s/results.tsv", work);
	FILE *rf = fopen(rp, "w");
	for (int i = 0; rf && i < nmsgs; i++)
		fprintf(rf, "%s\t%s\t%d\t%d\t%d\t%.2f\t%.2f\t%.2f\t%.6f\n", msgs[i].id,
		    msgs[i].spam ? "spam" : "ham", msgs[i].called[0], msgs[i].called[1],
		    msgs[i].called[2], msgs[i].score[0], msgs[i].score[1], msgs[i].score[2],
		    msgs[i].prob);
	if (rf)
		fclose(rf);
	printf("%d-fold cross-validation over %d messages (%s)\n", k, nmsgs, corpus);
	for (int mode = 0; mode < M_N; mode++)
		cv_print(cv_mode_name[mode], &tot[mode]);
	if (ln > 0)
		printf("learning: %ld messages, %.0f msg/s per core (postern learn)\n", ln,
		    lcpu > 0 ? (double)ln / lcpu : 0);
	for (int i = 0; i < nrules_hit; i++)
		printf("rule %-24s matched %4ld spam, %4ld ham\n", rules_hit[i].name,
		    rules_hit[i].spam, rules_hit[i].ham);
	printf("per-message results: %s\n", rp);
	free(rp);
	return 0;
}
