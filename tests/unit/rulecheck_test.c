/* rulecheck_test.c -- rules through pol_run, hot reload from the table,
 * and the quarantine store (durable row, bounds, expiry by the test clock).
 * Uses a real SQLite database in a temporary directory. */
#include "lib/conf.h"
#include "db/db.h"
#include "mail.h"
#include "policy/policy.h"
#include "policy/policy_int.h"
#include "policy/quar.h"
#include "policy/rulecheck.h"
#include "rules/rules.h"
#include "t.h"
#include "dbrows.h"
#include "lib/util.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <stdlib.h>
#include <unistd.h>

static char dir[64];
static struct conf *conf;

static void
write_file(const char *name, const char *text)
{
	char p[128];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	if ((f = fopen(p, "w")) == NULL || fputs(text, f) < 0)
		abort();
	fclose(f);
}

static struct pol_session *
session(const char *ip)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };

	inet_pton(AF_INET, ip, &sin.sin_addr);
	return pol_session_new(conf, "TESTSID", (struct sockaddr *)&sin, sizeof(sin));
}

/* Run CONNECT..DATA for one message; returns the DATA decision (caller
 * clears). Stops early at an envelope refusal and returns that. */
static void
deliver(struct pol_session *ps, const char *from, const char *rcpt,
    const char *file, struct pol_decision *d)
{
	static const enum pol_stage env[] = { POL_MAIL, POL_RCPT };
	struct pol_msg m;
	size_t n;
	char *raw = mail_load(file, &n);

	memset(d, 0, sizeof(*d));
	pol_tx_begin(ps, from, "");
	for (size_t i = 0; i < ARRAY_SIZE(env); i++) {
		if (env[i] == POL_RCPT)
			pol_tx_rcpt(ps, rcpt);
		pol_run(ps, env[i], NULL, d);
		if (d->verdict != POL_ACCEPT)
			goto out;
		pol_decision_clear(d);
	}
	pol_tx_rcpt_accepted(ps, rcpt);
	m.data = raw;
	m.len = n;
	pol_run(ps, POL_DATA, &m, d);
out:
	free(raw);
}

T_CASE(starter_file_imported_once)
{
	struct rule_def *defs;
	size_t n;

	T_EQ_INT(db_rule_load(&defs, &n), 0);
	T_EQ_INT(n, 4);
	for (size_t i = 0; i < n; i++)
		rule_def_clear(&defs[i]);
	free(defs);
	/* a second init does not import again (table version is not 0) */
	T_EQ_INT(rulecheck_init(conf), 0);
	T_EQ_INT(db_rule_load(&defs, &n), 0);
	T_EQ_INT(n, 4);
	for (size_t i = 0; i < n; i++)
		rule_def_clear(&defs[i]);
	free(defs);
}

T_CASE(score_rules_named_in_results)
{
	struct pol_session *ps = session("198.51.100.1");
	struct pol_decision d = { 0 };
	char sum[512];

	pol_set_helo(ps, "mx.shop.example");
	deliver(ps, "news@shop.example", "alice@example.org", "nested.eml", &d);
	T_EQ_INT(d.verdict, POL_ACCEPT);
	T_ASSERT(d.score == 1.5);
	pol_summary(ps, sum, sizeof(sum));
	T_ASSERT(strstr(sum, "rule=match") != NULL);
	T_ASSERT(d.prepend != NULL && strstr(d.prepend, "X-Spam-Score: 1.5") != NULL);
	pol_decision_clear(&d);
	pol_session_free(ps);
}

T_CASE(envelope_reject_at_its_stage)
{
	struct pol_session *ps = session("198.51.100.1");
	struct pol_decision d = { 0 };

	deliver(ps, "boss@spam.example", "alice@example.org", "sjis.eml", &d);
	T_EQ_INT(d.verdict, POL_REJECT);
	T_EQ_INT(d.code, 550);
	T_ASSERT(strstr(d.text, "mf_spam") != NULL);
	pol_decision_clear(&d);
	pol_session_free(ps);
}

T_CASE(quarantine_commits_before_250)
{
	struct pol_session *ps = session("198.51.100.1");
	struct pol_decision d = { 0 };
	char id[ID_LEN + 1], *raw, *orig;
	size_t len, olen;
	struct dbrows r;

	deliver(ps, "billing@invoices.example", "bob@example.org", "alternative.eml", &d);
	T_EQ_INT(d.verdict, POL_QUARANTINE);
	T_EQ_INT(d.code, 250);
	T_ASSERT(strncmp(d.text, "Ok: quarantined as ", 19) == 0);
	memcpy(id, d.text + 19, ID_LEN);
	id[ID_LEN] = '\0';
	T_EQ_INT(dbrows_quar_get(id, &r), 0);
	T_EQ_INT(r.n, 1);
	T_ASSERT(strncmp(r.text + ID_LEN, "|billing@invoices.example|held|", 31) == 0);
	T_ASSERT(strstr(r.text, "|rcpts:bob@example.org|checks:") != NULL);
	T_ASSERT(strstr(r.text, "viagra_html") != NULL);
	T_EQ_INT(db_quar_raw(id, &raw, &len), 0);
	orig = mail_load("alternative.eml", &olen);
	T_EQ_INT(len, olen);
	T_ASSERT(len == olen && memcmp(raw, orig, len) == 0);
	free(raw);
	free(orig);
	/* a claim makes it "releasing"; a second claim (double click) gets 2 */
	struct db_quar_claimed cl;
	T_EQ_INT(db_quar_claim(id, &cl), 0);
	T_EQ_STR(cl.rcpts[0], "bob@example.org");
	db_quar_claimed_free(&cl);
	T_EQ_INT(db_quar_claim(id, &cl), 2);
	T_EQ_INT(db_quar_finish(id, 0, NULL, 0), 0);
	T_EQ_INT(db_quar_claim(id, &cl), 0);
	db_quar_claimed_free(&cl);
	T_EQ_INT(db_quar_finish(id, 0, NULL, 0), 0);
	pol_decision_clear(&d);
	pol_session_free(ps);
}

T_CASE(quarantine_search)
{
	struct db_quar_query q = { .subject = "PRüFEN café", .limit = 10 };
	struct dbrows r;

	T_EQ_INT(dbrows_quar(&q, &r), 0);
	T_EQ_INT(r.n, 1);
	q.subject = NULL;
	q.reason = "no_such_rule";
	T_EQ_INT(dbrows_quar(&q, &r), 0);
	T_EQ_INT(r.n, 0);
	q.reason = NULL;
	q.rcpt = "bob@";
	T_EQ_INT(dbrows_quar(&q, &r), 0);
	T_EQ_INT(r.n, 1);
}

T_CASE(quarantine_full_is_tempfail)
{
	struct conf_err *e;
	int n;
	struct conf *small;
	struct pol_session *ps;
	struct pol_decision d = { 0 };
	char p[128];

	snprintf(p, sizeof(p), "%s/postern.conf", dir);
	{
		FILE *f = fopen(p, "a");
		fputs("[quarantine]\nmax_total = 2048\n", f);
		fclose(f);
	}
	small = conf_load(p, &e, &n);
	T_ASSERT(small != NULL);
	ps = pol_session_new(small, "SMALL", (struct sockaddr *)&(struct sockaddr_in){
	    .sin_family = AF_INET }, sizeof(struct sockaddr_in));
	long long before = db_quar_total();
	deliver(ps, "billing@invoices.example", "bob@example.org", "alternative.eml", &d);
	T_EQ_INT(d.verdict, POL_TEMPFAIL);
	T_EQ_INT(d.code, 452);
	T_EQ_STR(d.status, "4.3.1");
	T_EQ_INT(db_quar_total(), before);
	pol_decision_clear(&d);
	pol_session_free(ps);
	conf_unref(small);
}

T_CASE(rule_change_applies_next_transaction)
{
	struct pol_session *ps = session("198.51.100.1");
	struct pol_decision d = { 0 };
	struct rule_def r = { 0, "late_subject", "subject", "Привет", "", "reject", 0, 1, 0 };
	struct pol_msg m;
	size_t n;
	char *raw = mail_load("nested.eml", &n);

	/* transaction 1 begins with the old set... */
	pol_tx_begin(ps, "a@example.net", "");
	pol_run(ps, POL_MAIL, NULL, &d);
	pol_decision_clear(&d);
	/* ...the rule arrives mid-transaction (the web UI, no signal) */
	T_ASSERT(db_rule_add(&r) > 0);
	pol_tx_rcpt_accepted(ps, "bob@example.org");
	m.data = raw;
	m.len = n;
	pol_run(ps, POL_DATA, &m, &d);
	T_EQ_INT(d.verdict, POL_ACCEPT);
	pol_decision_clear(&d);
	/* transaction 2 sees it */
	pol_tx_begin(ps, "a@example.net", "");
	pol_run(ps, POL_MAIL, NULL, &d);
	pol_decision_clear(&d);
	pol_tx_rcpt_accepted(ps, "bob@example.org");
	pol_run(ps, POL_DATA, &m, &d);
	T_EQ_INT(d.verdict, POL_REJECT);
	T_ASSERT(strstr(d.text, "late_subject") != NULL);
	pol_decision_clear(&d);
	free(raw);
	pol_session_free(ps);
}

T_CASE(expiry_by_test_clock)
{
	char clock[128];
	long long held = db_quar_total();

	T_ASSERT(held > 0);
	snprintf(clock, sizeof(clock), "%s/clock", dir);
	setenv("POSTERN_CLOCK_FILE", clock, 1);
	write_file("clock", "86400\n");		/* one day on: still kept */
	T_EQ_INT(quar_expire(conf, 0), 0);
	write_file("clock", "2592100\n");	/* past 30 days */
	T_ASSERT(quar_expire(conf, 0) >= 1);
	T_EQ_INT(db_quar_total(), 0);
	unsetenv("POSTERN_CLOCK_FILE");
}

/* 40 rules match one HELO: 16 named results and one "24 more rules"
 * carrying the rest of the score. */
T_CASE(many_matches_keep_score)
{
	struct pol_session *ps;
	struct pol_decision d = { 0 };
	int named = 0, more = 0;

	for (int i = 0; i < 40; i++) {
		char name[16];
		snprintf(name, sizeof(name), "many%d", i);
		struct rule_def r = { 0, name, "helo", "^flood", "", "score", 0.25, 1, 0 };
		T_ASSERT(db_rule_add(&r) > 0);
	}
	ps = session("198.51.100.7");
	pol_set_helo(ps, "flood.example");
	pol_run(ps, POL_CONNECT, NULL, &d);
	pol_decision_clear(&d);
	pol_run(ps, POL_HELO, NULL, &d);
	T_ASSERT(d.score == 10.0);
	T_EQ_INT(d.verdict, POL_REJECT);
	for (int i = 0; i < ps->nresults; i++) {
		if (strcmp(ps->results[i].check, "rule") != 0)
			continue;
		named++;
		if (ps->results[i].reason && strcmp(ps->results[i].reason, "24 more rules") == 0)
			more = 1;
	}
	T_EQ_INT(named, 17);
	T_ASSERT(more);
	pol_decision_clear(&d);
	pol_session_free(ps);
}

/* A backlog expires in batches: a tick deletes QUAR_EXPIRE_BATCH, the
 * CLI's full run the rest. */
T_CASE(expiry_in_batches)
{
	const char *rcpts[] = { "bob@example.org" };
	int n = QUAR_EXPIRE_BATCH * 2 + 3;

	for (int i = 0; i < n; i++) {
		char id[ID_LEN + 1];
		id_new(id);
		struct db_quar q = { .id = id, .ts = time_wall() - 40 * 86400 + i, .sid = "B",
		    .mail_from = "a@example.net", .rcpts = rcpts, .nrcpts = 1,
		    .raw = "Subject: x\r\n\r\nx\r\n", .len = 17 };
		T_EQ_INT(db_quar_add(&q, 1LL << 40), 0);
	}
	T_EQ_INT(db_quar_total(), 17LL * n);
	T_EQ_INT(quar_expire(conf, QUAR_EXPIRE_BATCH), QUAR_EXPIRE_BATCH);
	T_EQ_INT(quar_expire(conf, 0), n - QUAR_EXPIRE_BATCH);
	T_EQ_INT(db_quar_total(), 0);
}

/* The options the daemon and the CLI build with are all set, whatever
 * their stack held: a stray no_prefilter ran every content regex over
 * every message. */
T_CASE(opts_are_whole)
{
	struct rule_opts o;

	memset(&o, 0xa5, sizeof(o));
	rulecheck_opts(conf, &o);
	T_EQ_INT(o.no_prefilter, 0);
	T_EQ_INT(o.jit, 1);
	T_EQ_INT((long long)o.match_limit, conf->rules_match_limit);
	T_EQ_INT((long long)o.depth_limit, conf->rules_depth_limit);
}

int
main(void)
{
	struct conf_err *e;
	char p[128], *text;
	int n;

	log_set_level(LOG_LVL_ERR);
	snprintf(dir, sizeof(dir), "/tmp/postern-rc-XXXXXX");
	if (mkdtemp(dir) == NULL)
		abort();
	write_file("rules.txt",
	    "# starter rules for the test\n"
	    "mf_spam | mail_from | /@spam\\.example$/ | reject\n"
	    "viagra_html | body | /cheap viagra/i | quarantine 2\n"
	    "invoice_exe | attachment | /\\.exe$/i | score 1\n"
	    "cyr_subject | subject | /Привет/ | score 0.5\n");
	/* Only rules decide here: no greylisting, no DNS-based checks. */
	text = xasprintf("[db]\npath = %s/p.db\n[rules]\nfile = %s/rules.txt\n"
	    "[greylist]\nenabled = no\n[spf]\nenabled = no\n", dir, dir);
	write_file("postern.conf", text);
	free(text);
	snprintf(p, sizeof(p), "%s/postern.conf", dir);
	if ((conf = conf_load(p, &e, &n)) == NULL || pol_init(conf) == -1) {
		fprintf(stderr, "setup failed\n");
		return 1;
	}
	T_RUN(starter_file_imported_once);
	T_RUN(score_rules_named_in_results);
	T_RUN(envelope_reject_at_its_stage);
	T_RUN(quarantine_commits_before_250);
	T_RUN(quarantine_search);
	T_RUN(quarantine_full_is_tempfail);
	T_RUN(rule_change_applies_next_transaction);
	T_RUN(expiry_by_test_clock);
	T_RUN(many_matches_keep_score);
	T_RUN(expiry_in_batches);
	T_RUN(opts_are_whole);
	pol_shutdown();
	rule_swap(NULL);
	conf_unref(conf);
	text = xasprintf("rm -rf %s", dir);
	if (system(text) != 0)
		return 1;
	free(text);
	return T_END();
}
