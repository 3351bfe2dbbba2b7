/* policy_test.c -- the greylist state machine with injected time, and the
 * policy engine end to end over a real database: which stages need a
 * worker (pol_stage_needed), speculative runs on the loop and how they
 * are undone (pol_run_here), thresholds, hard decisions, allow/deny
 * lists, greylisting with a controlled clock, DNS lists that cannot
 * answer, a locked database, the verdict log. */
#include "t.h"
#include "dbrows.h"
#include "policy/access.h"
#include "lib/conf.h"
#include "db/db.h"
#include "policy/grey.h"
#include "policy/policy_int.h"
#include "policy/quar.h"
#include "policy/rate.h"
#include "lib/relay.h"
#include "lib/util.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static char dir[] = "/tmp/postern-poltest-XXXXXX";
static char dbpath[256], clockpath[256];
static struct conf *c;

static void
clock_set(long long off)
{
	FILE *f = fopen(clockpath, "w");

	if (f) {
		fprintf(f, "%lld\n", off);
		fclose(f);
	}
}

/* Rate limits count per wall-clock minute. A test that needs two events
 * in one window starts at the top of a minute on the test clock, so no
 * boundary falls between them (speculation_undone waits for a 200 ms DNS
 * timeout between its two messages, and failed now and then). */
static void
clock_minute_start(void)
{
	clock_set(60 - (long long)(time(NULL) % 60));
}

static struct pol_session *
session(const char *ip)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(25) };

	inet_pton(AF_INET, ip, &sa.sin_addr);
	return pol_session_new(c, "TEST00000001", (struct sockaddr *)&sa, sizeof(sa));
}

/* A finding as a DATA-stage check would make it. */
static void
add(struct pol_session *ps, const char *check, double score, const char *reason)
{
	pol_result_add(ps, check, "match", score, NULL, "%s", reason);
	ps->results[ps->nresults - 1].stage = POL_DATA;
}

static enum pol_verdict
run(struct pol_session *ps, enum pol_stage st, struct pol_decision *d)
{
	pol_decision_clear(d);
	pol_run(ps, st, NULL, d);
	return d->verdict;
}

/* connect, HELO, MAIL, RCPT: the verdict of the last stage run. */
static enum pol_verdict
envelope(struct pol_session *ps, const char *from, const char *rcpt,
    struct pol_decision *d)
{
	enum pol_verdict v;

	pol_tx_begin(ps, from, "");
	if ((v = run(ps, POL_MAIL, d)) != POL_ACCEPT)
		return v;
	pol_tx_rcpt(ps, rcpt);
	return run(ps, POL_RCPT, d);
}

/* With an empty database and only access, rate and rules enabled, a stage
 * stays on the proxy's loop once CONNECT has read the lists; anything that
 * may block sends it to a worker. Runs first: the lists must be empty. */
T_CASE(stage_needed)
{
	struct pol_decision d = { 0 };
	struct pol_msg m = { "Subject: x\r\n\r\nbody\r\n", 20 };
	struct pol_session *ps;
	int grey = c->greylist_enabled, dkim = c->dkim_enabled, dmarc = c->dmarc_enabled;
	int autolearn = c->bayes_autolearn;

	c->greylist_enabled = c->dkim_enabled = c->dmarc_enabled = 0;
	c->bayes_autolearn = 0;
	ps = session("192.0.2.77");
	T_EQ_INT(pol_stage_needed(ps, POL_CONNECT, NULL), 1);	/* lists unread */
	T_EQ_INT(access_check.blocks(ps, POL_HELO, NULL), 1);	/* not read yet */
	T_EQ_INT(run(ps, POL_CONNECT, &d), POL_ACCEPT);
	pol_set_helo(ps, "mx.example.org");
	T_EQ_INT(pol_stage_needed(ps, POL_HELO, NULL), 0);
	T_EQ_INT(run(ps, POL_HELO, &d), POL_ACCEPT);
	pol_tx_begin(ps, "a@example.org", "");
	/* the first MAIL also expires quarantine (quar_tick): a worker */
	T_EQ_INT(pol_stage_needed(ps, POL_MAIL, NULL), quar_tick_due());
	T_EQ_INT(run(ps, POL_MAIL, &d), POL_ACCEPT);
	T_EQ_INT(quar_tick_due(), 0);
	T_EQ_INT(pol_stage_needed(ps, POL_MAIL, NULL), 0);
	pol_tx_rcpt(ps, "b@example.net");
	T_EQ_INT(pol_stage_needed(ps, POL_RCPT, NULL), 0);
	T_EQ_INT(run(ps, POL_RCPT, &d), POL_ACCEPT);
	/* the classifier, untrained and without autolearn, has nothing to do */
	T_EQ_INT(pol_stage_needed(ps, POL_DATA, &m), 0);
	T_EQ_INT(pol_stage_needed(ps, POL_DATA, NULL), 1);
	c->bayes_autolearn = 1;					/* tokenises */
	/* a message within policy.inline_bytes is tokenised on the loop;
	 * past it, or with the key at 0, a worker does it */
	T_EQ_INT(pol_stage_needed(ps, POL_DATA, &m), 0);
	c->inline_bytes = (long long)m.len - 1;
	T_EQ_INT(pol_stage_needed(ps, POL_DATA, &m), 1);
	c->inline_bytes = (long long)m.len;
	T_EQ_INT(pol_stage_needed(ps, POL_DATA, &m), 0);
	c->inline_bytes = 0;
	T_EQ_INT(pol_stage_needed(ps, POL_DATA, &m), 1);
	c->inline_bytes = 65536;
	c->bayes_autolearn = 0;
	c->dkim_enabled = 1;				/* library not set up yet */
	T_EQ_INT(pol_stage_needed(ps, POL_DATA, &m), 1);
	c->dkim_enabled = 0;
	add(ps, "x", c->quarantine_score, "spam");		/* would store a copy */
	T_EQ_INT(pol_stage_needed(ps, POL_DATA, &m), 1);
	pol_session_free(ps);

	/* The lists are read once per admin edit, not per session: a
	 * current snapshot needs no worker. A session keeps the lists it
	 * met at CONNECT; an edit (here, the web UI or the CLI) counts from
	 * the next session on, which reads them again. */
	T_EQ_INT(access_check.blocks(NULL, POL_CONNECT, NULL), 0);
	ps = session("192.0.2.77");
	T_EQ_INT(run(ps, POL_CONNECT, &d), POL_ACCEPT);
	pol_set_helo(ps, "mx.stage.test");
	T_EQ_INT(db_access_add("deny", "helo", "stage.test", NULL), 0);
	T_EQ_INT(pol_stage_needed(ps, POL_HELO, NULL), 0);
	T_EQ_INT(run(ps, POL_HELO, &d), POL_ACCEPT);
	pol_session_free(ps);
	ps = session("192.0.2.77");
	T_EQ_INT(access_check.blocks(ps, POL_CONNECT, NULL), 1);
	T_EQ_INT(run(ps, POL_CONNECT, &d), POL_ACCEPT);
	T_EQ_INT(access_check.blocks(ps, POL_HELO, NULL), 0);
	pol_set_helo(ps, "mx.stage.test");
	T_EQ_INT(run(ps, POL_HELO, &d), POL_REJECT);
	T_EQ_INT(d.code, 550);
	pol_session_free(ps);
	T_EQ_INT(db_access_del("deny", "helo", "stage.test"), 1);
	T_EQ_INT(access_check.blocks(NULL, POL_CONNECT, NULL), 1);
	c->greylist_enabled = grey;
	c->dkim_enabled = dkim;
	c->dmarc_enabled = dmarc;
	c->bayes_autolearn = autolearn;
}

T_CASE(grey_state_machine)
{
	struct db_grey_row r = { 0 };
	struct grey_params p = { .delay = 300, .retry_window = 3600, .expire = 86400 };
	int cp;

	T_EQ_INT(grey_step(&r, 1000, &p, &cp), GREY_NEW);
	T_EQ_INT(p.wait, 300);
	T_EQ_INT(cp, 0);
	T_EQ_INT(grey_step(&r, 1100, &p, &cp), GREY_EARLY);
	T_EQ_INT(p.wait, 200);
	T_EQ_INT(r.first_seen, 1000);		/* early retry keeps the clock */
	T_EQ_INT(grey_step(&r, 1300, &p, &cp), GREY_PASS_RETRY);
	T_EQ_INT(cp, 1);
	T_EQ_INT(grey_step(&r, 5000, &p, &cp), GREY_PASS_KNOWN);
	T_EQ_INT(cp, 0);
	T_EQ_INT(grey_step(&r, 5000 + 86401, &p, &cp), GREY_NEW);	/* expired */
	T_EQ_INT(r.passed, 0);
	/* a retry after the window starts over */
	struct db_grey_row late = { .found = 1, .first_seen = 0, .last_seen = 0 };
	T_EQ_INT(grey_step(&late, 3601, &p, &cp), GREY_NEW);
	T_EQ_INT(late.first_seen, 3601);
	/* exactly at the delay passes; exactly at the window end still counts */
	struct db_grey_row edge = { .found = 1, .first_seen = 0, .last_seen = 0 };
	T_EQ_INT(grey_step(&edge, 300, &p, &cp), GREY_PASS_RETRY);
	struct db_grey_row edge2 = { .found = 1, .first_seen = 0, .last_seen = 0 };
	T_EQ_INT(grey_step(&edge2, 3600, &p, &cp), GREY_PASS_RETRY);
}

T_CASE(skip_domains)
{
	T_EQ_INT(grey_domain_listed("example.org, other.test", "example.org"), 1);
	T_EQ_INT(grey_domain_listed("example.org, other.test", "mail.other.test"), 1);
	T_EQ_INT(grey_domain_listed("example.org", "example.net"), 0);
	T_EQ_INT(grey_domain_listed("", "example.org"), 0);
}

T_CASE(dynamic_names)
{
	T_EQ_INT(grey_name_dynamic("mail.example.org"), 0);
	T_EQ_INT(grey_name_dynamic("mx1.mail2.example.org"), 0);
	T_EQ_INT(grey_name_dynamic("o1.ptr1234.example.net"), 0);
	T_EQ_INT(grey_name_dynamic("203-0-113-5.example.net"), 1);
	T_EQ_INT(grey_name_dynamic("c-73-12-4-1.hsd1.example.com"), 1);
	T_EQ_INT(grey_name_dynamic("host86-1-2-3"), 1);
	T_EQ_INT(grey_name_dynamic("x.dyn.example.net"), 1);
	T_EQ_INT(grey_name_dynamic("p5.DSL.example.de"), 1);
	T_EQ_INT(grey_name_dynamic("pool-71-1-2.example.com"), 1);
	T_EQ_INT(grey_name_dynamic("dynamo.example.com"), 0);	/* a word, not "dyn" */
	T_EQ_INT(grey_name_dynamic(""), 0);
}

T_CASE(thresholds)
{
	struct pol_decision d = { 0 };
	struct pol_session *ps = session("198.51.100.10");
	const double score[] = { 0, 3, 6, 10 };
	const enum pol_verdict want[] = { POL_ACCEPT, POL_TAG, POL_QUARANTINE, POL_REJECT };

	c->greylist_enabled = 0;
	T_EQ_INT(run(ps, POL_CONNECT, &d), POL_ACCEPT);
	for (int i = 0; i < 4; i++) {
		T_EQ_INT(envelope(ps, "s@example.org", "r@example.net", &d), POL_ACCEPT);
		char why[64];
		snprintf(why, sizeof(why), "test rule scored %.0f", score[i]);
		if (score[i] > 0)
			add(ps, "rule", score[i], why);
		T_EQ_INT(run(ps, POL_DATA, &d), want[i]);
		pol_tx_reset(ps);
	}
	T_EQ_INT(d.code, 550);
	T_EQ_STR(d.status, "5.7.1");
	T_EQ_STR(d.text, "Service unavailable; test rule scored 10");
	/* tagged mail carries the headers */
	pol_tx_begin(ps, "s@example.org", "");
	add(ps, "rule", 3.5, "odd");
	T_EQ_INT(run(ps, POL_DATA, &d), POL_TAG);
	T_ASSERT(d.prepend && strstr(d.prepend, "X-Spam-Flag: YES\r\nX-Spam-Score: 3.5\r\n"));
	pol_decision_clear(&d);
	pol_session_free(ps);
	c->greylist_enabled = 1;
}

T_CASE(deny_and_allow_lists)
{
	struct pol_decision d = { 0 };
	struct pol_session *ps;

	T_EQ_INT(db_access_add("deny", "client", "203.0.113.0/24", NULL), 0);
	T_EQ_INT(db_access_add("allow", "client", "203.0.113.7", NULL), 0);
	T_EQ_INT(db_access_add("deny", "sender", "spammer.test", NULL), 0);
	T_EQ_INT(db_access_add("deny", "rcpt", "nobody@example.net", NULL), 0);

	ps = session("203.0.113.8");
	T_EQ_INT(run(ps, POL_CONNECT, &d), POL_REJECT);
	T_EQ_INT(d.code, 554);
	T_EQ_INT(d.disconnect, 1);
	T_EQ_STR(d.text, "Service unavailable; client 203.0.113.8 denied by local policy");
	pol_session_free(ps);

	/* allow beats the deny block, and beats any score or hard decision */
	ps = session("203.0.113.7");
	T_EQ_INT(run(ps, POL_CONNECT, &d), POL_ACCEPT);
	T_EQ_INT(envelope(ps, "x@spammer.test", "nobody@example.net", &d), POL_ACCEPT);
	add(ps, "dmarc", 50, "p=reject");
	T_EQ_INT(run(ps, POL_DATA, &d), POL_ACCEPT);
	pol_session_free(ps);

	ps = session("198.51.100.20");
	T_EQ_INT(run(ps, POL_CONNECT, &d), POL_ACCEPT);
	pol_tx_begin(ps, "X@Sub.Spammer.Test", "");
	T_EQ_INT(run(ps, POL_MAIL, &d), POL_REJECT);
	T_EQ_INT(d.code, 550);
	T_EQ_STR(d.text, "<X@Sub.Spammer.Test>: Sender address rejected: denied by local policy");
	T_EQ_INT(envelope(ps, "ok@example.org", "Nobody@example.net", &d), POL_REJECT);
	T_EQ_STR(d.text, "<Nobody@example.net>: Recipient address rejected: denied by local policy");
	pol_session_free(ps);
}

/* The relay guard: 554 before any check, through an allowlist, and its
 * finding belongs to the transaction (gone after it, unlike CONNECT's). */
T_CASE(relay_guard)
{
	struct pol_decision d = { 0 };
	struct pol_session *ps;
	char why[300];
	int grey = c->greylist_enabled;

	c->greylist_enabled = 1;
	T_EQ_INT(relay_load("example.org", RELAY_DOMAINS, &c->relay_domains, why,
	    sizeof(why)), 0);
	T_EQ_INT(db_access_add("allow", "client", "192.0.2.177", NULL), 0);
	ps = session("192.0.2.177");
	T_EQ_INT(run(ps, POL_CONNECT, &d), POL_ACCEPT);
	T_EQ_INT(envelope(ps, "a@sender.test", "x@elsewhere.test", &d), POL_REJECT);
	T_EQ_INT(d.code, 554);
	T_EQ_STR(d.status, "5.7.1");
	T_EQ_STR(d.text, "<x@elsewhere.test>: Relay access denied");
	T_ASSERT(pol_result_find(ps, "relay") != NULL);
	T_ASSERT(pol_result_find(ps, "grey") == NULL);	/* no check ran */
	pol_tx_reset(ps);
	T_ASSERT(pol_result_find(ps, "relay") == NULL);
	T_EQ_INT(envelope(ps, "a@sender.test", "y@example.org", &d), POL_ACCEPT);
	pol_session_free(ps);
	T_EQ_INT(db_access_del("allow", "client", "192.0.2.177"), 1);
	relay_free(c->relay_domains);
	c->relay_domains = NULL;
	c->greylist_enabled = grey;
}

T_CASE(greylisting_with_clock)
{
	struct pol_decision d = { 0 };
	struct pol_session *ps = session("192.0.2.10");

	clock_set(0);
	T_EQ_INT(run(ps, POL_CONNECT, &d), POL_ACCEPT);
	T_EQ_INT(envelope(ps, "a@example.org", "r@example.net", &d), POL_TEMPFAIL);
	T_EQ_INT(d.code, 450);
	T_EQ_STR(d.status, "4.7.1");
	T_EQ_STR(d.text, "Greylisted, try again in 300 seconds");
	clock_set(100);
	T_EQ_INT(envelope(ps, "a@example.org", "r@example.net", &d), POL_TEMPFAIL);
	/* the test clock is an offset on the real one: a real second may pass */
	int wait = -1;
	T_EQ_INT(sscanf(d.text, "Greylisted, try again in %d seconds", &wait), 1);
	T_ASSERT(wait >= 195 && wait <= 200);
	clock_set(301);
	T_EQ_INT(envelope(ps, "a@example.org", "r@example.net", &d), POL_ACCEPT);
	/* same /24, same sender and recipient: the triplet passes */
	pol_session_free(ps);
	ps = session("192.0.2.99");
	T_EQ_INT(envelope(ps, "A@Example.org", "r@example.net", &d), POL_ACCEPT);
	/* another recipient is another triplet */
	T_EQ_INT(envelope(ps, "a@example.org", "s@example.net", &d), POL_TEMPFAIL);
	/* too late: past the retry window the triplet starts over */
	clock_set(301 + 2 * 86400 + 1);
	T_EQ_INT(envelope(ps, "a@example.org", "s@example.net", &d), POL_TEMPFAIL);
	T_EQ_STR(d.text, "Greylisted, try again in 300 seconds");
	pol_session_free(ps);
}

T_CASE(auto_allow_and_dnswl_skip)
{
	struct pol_decision d = { 0 };
	struct pol_session *ps = session("192.0.2.10");

	c->greylist_auto_allow = 2;
	clock_set(10 * 86400);
	/* one triplet already passed in the test above; one more */
	T_EQ_INT(envelope(ps, "b@example.org", "r@example.net", &d), POL_TEMPFAIL);
	clock_set(10 * 86400 + 400);
	T_EQ_INT(envelope(ps, "b@example.org", "r@example.net", &d), POL_ACCEPT);
	T_EQ_INT(envelope(ps, "new@example.org", "new@example.net", &d), POL_ACCEPT);
	T_EQ_STR(pol_result_find(ps, "grey")->result, "auto");
	pol_session_free(ps);
	c->greylist_auto_allow = 5;

	ps = session("198.51.100.77");
	/* what rbl_judge records for an allow list's listing at connect */
	ps->found.dnswl |= 1u << POL_CONNECT;
	pol_result_add(ps, "dnswl", "listed", -5, NULL, "client on wl.test");
	ps->results[ps->nresults - 1].stage = POL_CONNECT;
	T_EQ_INT(envelope(ps, "c@example.org", "r@example.net", &d), POL_ACCEPT);
	T_EQ_STR(pol_result_find(ps, "grey")->result, "skip");
	pol_session_free(ps);
}

T_CASE(greylist_survives_restart_and_expires)
{
	struct pol_decision d = { 0 };
	struct pol_session *ps;

	pol_shutdown();
	T_EQ_INT(pol_init(c), 0);
	ps = session("192.0.2.10");
	clock_set(20 * 86400);
	T_EQ_INT(envelope(ps, "a@example.org", "r@example.net", &d), POL_ACCEPT);
	T_EQ_STR(pol_result_find(ps, "grey")->result, "pass");
	/* unused for longer than greylist.expire (35 days): gone */
	clock_set(20 * 86400 + 36 * 86400);
	T_EQ_INT(db_prune(time_wall()), 0);
	T_EQ_INT(envelope(ps, "a@example.org", "r@example.net", &d), POL_TEMPFAIL);
	pol_session_free(ps);
	clock_set(0);
}

/* One RCPT as the proxy runs it: speculatively on its loop first
 * (pol_run_here), and on a worker when that was undone -- *blocks: the
 * greylisting needed the database. */
static enum pol_verdict
grey_rcpt(struct pol_session *ps, const char *from, const char *rcpt, int *blocks,
    struct pol_decision *d)
{
	pol_tx_begin(ps, from, "");
	pol_tx_rcpt(ps, rcpt);
	pol_decision_clear(d);
	if ((*blocks = pol_run_here(ps, POL_RCPT, NULL, d) == -1))
		pol_run(ps, POL_RCPT, NULL, d);
	return d->verdict;
}

/* What policy/greyc.h kept decides a triplet that passed, or an
 * auto-allowlisted network, without the database -- with the database's
 * answer; anything else still goes to it. */
T_CASE(greylist_cache)
{
	struct pol_decision d = { 0 };
	struct pol_session *ps = session("203.0.113.10");
	long long t0 = 40 * 86400;
	int b = -1, aa = c->greylist_auto_allow;

	c->greylist_auto_allow = 0;
	clock_set(t0);
	T_EQ_INT(grey_rcpt(ps, "c1@example.org", "r1@example.net", &b, &d), POL_TEMPFAIL);
	T_EQ_INT(b, 1);					/* never seen */
	clock_set(t0 + 100);
	T_EQ_INT(grey_rcpt(ps, "c1@example.org", "r1@example.net", &b, &d), POL_TEMPFAIL);
	T_EQ_INT(b, 1);					/* deferred ones are not kept */
	clock_set(t0 + 301);
	T_EQ_INT(grey_rcpt(ps, "c1@example.org", "r1@example.net", &b, &d), POL_ACCEPT);
	T_EQ_INT(b, 1);
	T_EQ_INT(grey_rcpt(ps, "C1@Example.org", "r1@example.net", &b, &d), POL_ACCEPT);
	T_EQ_INT(b, 0);					/* kept after the pass */
	T_EQ_STR(pol_result_find(ps, "grey")->reason, "known triplet");
	T_EQ_INT(grey_rcpt(ps, "c1@example.org", "r2@example.net", &b, &d), POL_TEMPFAIL);
	T_EQ_INT(b, 1);					/* another triplet */
	/* the database is the truth: a restart forgets the cache, not the pass */
	pol_session_free(ps);
	pol_shutdown();
	T_EQ_INT(pol_init(c), 0);
	ps = session("203.0.113.99");
	T_EQ_INT(grey_rcpt(ps, "c1@example.org", "r1@example.net", &b, &d), POL_ACCEPT);
	T_EQ_INT(b, 1);
	T_EQ_INT(grey_rcpt(ps, "c1@example.org", "r1@example.net", &b, &d), POL_ACCEPT);
	T_EQ_INT(b, 0);
	/* due for a last_seen refresh: a write, on a worker */
	clock_set(t0 + 301 + GREY_TOUCH_S);
	T_EQ_INT(grey_rcpt(ps, "c1@example.org", "r1@example.net", &b, &d), POL_ACCEPT);
	T_EQ_INT(b, 1);
	T_EQ_INT(grey_rcpt(ps, "c1@example.org", "r1@example.net", &b, &d), POL_ACCEPT);
	T_EQ_INT(b, 0);
	/* a cached entry past greylist.expire is not trusted: start over */
	clock_set(t0 + 301 + GREY_TOUCH_S + 36 * 86400);
	T_EQ_INT(grey_rcpt(ps, "c1@example.org", "r1@example.net", &b, &d), POL_TEMPFAIL);
	T_EQ_INT(b, 1);
	T_EQ_STR(d.text, "Greylisted, try again in 300 seconds");
	pol_session_free(ps);

	/* auto-allowlisting after two passes from 198.51.100.0/24 */
	c->greylist_auto_allow = 2;
	long long t1 = t0 + 40 * 86400;
	ps = session("198.51.100.20");
	for (int i = 0; i < 2; i++) {
		const char *from = i ? "a2@example.org" : "a1@example.org";
		clock_set(t1 + i * 1000);
		T_EQ_INT(grey_rcpt(ps, from, "r@example.net", &b, &d), POL_TEMPFAIL);
		clock_set(t1 + i * 1000 + 301);
		T_EQ_INT(grey_rcpt(ps, from, "r@example.net", &b, &d), POL_ACCEPT);
		if (i == 0) {
			/* the counted pass made the cache forget the network */
			T_EQ_INT(grey_rcpt(ps, from, "r@example.net", &b, &d), POL_ACCEPT);
			T_EQ_INT(b, 1);
			/* read again: below the threshold, and that is kept */
			T_EQ_INT(grey_rcpt(ps, from, "r@example.net", &b, &d), POL_ACCEPT);
			T_EQ_INT(b, 0);
			T_EQ_STR(pol_result_find(ps, "grey")->result, "pass");
		}
	}
	/* the second counted pass: read again, now auto-allowlisted */
	T_EQ_INT(grey_rcpt(ps, "a3@example.org", "r@example.net", &b, &d), POL_ACCEPT);
	T_EQ_INT(b, 1);
	T_EQ_STR(pol_result_find(ps, "grey")->result, "auto");
	T_EQ_INT(grey_rcpt(ps, "a4@example.org", "r@example.net", &b, &d), POL_ACCEPT);
	T_EQ_INT(b, 0);
	T_EQ_STR(pol_result_find(ps, "grey")->result, "auto");
	/* a higher threshold after a reload: the same kept row says no */
	c->greylist_auto_allow = 3;
	T_EQ_INT(grey_rcpt(ps, "a5@example.org", "r@example.net", &b, &d), POL_TEMPFAIL);
	T_EQ_INT(b, 1);
	/* the auto-allowlisting expires with the network's last pass */
	c->greylist_auto_allow = 2;
	clock_set(t1 + 1301 + 36 * 86400);
	T_EQ_INT(grey_rcpt(ps, "a6@example.org", "r@example.net", &b, &d), POL_TEMPFAIL);
	T_EQ_INT(b, 1);
	pol_session_free(ps);
	c->greylist_auto_allow = aa;
	clock_set(0);
}

/* On the proxy's loop (pol_run_here) a DATA verdict of quarantine is not
 * kept: storing the copy waits on the disk, so the stage is undone --
 * nothing stored, the decision cleared -- for a worker to run it again
 * and store it; any other verdict is final at once. */
T_CASE(quarantine_copy_left_to_a_worker)
{
	struct pol_decision d = { 0 };
	struct pol_msg m = { "Subject: q\r\n\r\nbody\r\n", 20 };
	struct pol_session *ps = session("192.0.2.55");
	int grey = c->greylist_enabled, dkim = c->dkim_enabled, dmarc = c->dmarc_enabled;
	int n0 = dbrows_count(dbpath, "quarantine"), nres;

	c->greylist_enabled = c->dkim_enabled = c->dmarc_enabled = 0;
	pol_tx_begin(ps, "q@example.org", "");
	T_EQ_INT(pol_run_here(ps, POL_DATA, &m, &d), 0);
	T_EQ_INT(d.verdict, POL_ACCEPT);
	T_ASSERT(d.prepend != NULL);
	pol_decision_clear(&d);
	add(ps, "x", c->quarantine_score, "spam");
	nres = ps->nresults;
	T_EQ_INT(pol_run_here(ps, POL_DATA, &m, &d), -1);
	T_EQ_INT(d.verdict, POL_ACCEPT);
	T_ASSERT(d.prepend == NULL && d.skip == NULL);
	T_EQ_INT(ps->nresults, nres);
	T_EQ_INT(dbrows_count(dbpath, "quarantine"), n0);	/* nothing stored */
	pol_run(ps, POL_DATA, &m, &d);
	T_EQ_INT(d.verdict, POL_QUARANTINE);
	T_EQ_INT(d.code, 250);
	T_EQ_INT(dbrows_count(dbpath, "quarantine"), n0 + 1);
	pol_decision_clear(&d);
	pol_session_free(ps);
	c->greylist_enabled = grey;
	c->dkim_enabled = dkim;
	c->dmarc_enabled = dmarc;
}

/* A speculative MAIL that meets a question the DNS cache cannot answer
 * (the sender domain's DNS list) is undone: no result, score, DNS budget
 * or statistics stay, and the rate limit, decided before the list, counts
 * nothing -- only the run on a worker counts the message. */
T_CASE(speculation_undone)
{
	struct pol_decision d = { 0 };
	struct pol_session *ps;
	struct dns_budget b;
	struct dns_stats s0, s1;
	char *old = c->rhsbl_zones;
	int grey = c->greylist_enabled, nres;
	double score;

	clock_minute_start();
	rate_reset();
	c->rate_messages_per_minute = 1;
	c->greylist_enabled = 0;
	c->rhsbl_zones = xstrdup("dbl.test*10");
	ps = session("198.51.100.41");
	T_EQ_INT(run(ps, POL_CONNECT, &d), POL_ACCEPT);
	pol_tx_begin(ps, "a@spec.test", "");
	nres = ps->nresults;
	score = ps->score;
	b = ps->dns;
	dns_stats_get(&s0);
	for (int i = 0; i < 3; i++) {
		pol_decision_clear(&d);
		T_EQ_INT(pol_run_here(ps, POL_MAIL, NULL, &d), -1);
		T_EQ_INT(ps->nresults, nres);
		T_ASSERT(ps->score == score);
		T_EQ_INT(ps->dns.left, b.left);
		T_EQ_INT(ps->dns.asked, b.asked);
	}
	dns_stats_get(&s1);
	T_EQ_INT(s1.queries - s0.queries, 0);
	T_EQ_INT(run(ps, POL_MAIL, &d), POL_ACCEPT);	/* the list times out */
	T_EQ_INT(ps->dns.asked, b.asked + 1);
	pol_tx_begin(ps, "b@spec.test", "");
	T_EQ_INT(run(ps, POL_MAIL, &d), POL_TEMPFAIL);	/* the second message */
	T_EQ_INT(d.code, 450);
	pol_session_free(ps);
	free(c->rhsbl_zones);
	c->rhsbl_zones = old;
	c->rate_messages_per_minute = 0;
	c->greylist_enabled = grey;
	rate_reset();
	clock_set(0);
}

T_CASE(dns_lists_that_cannot_answer_do_not_list)
{
	struct pol_decision d = { 0 };
	struct pol_session *ps;
	char *old = c->rbl_zones;

	/* no resolver answers in this test: every list times out */
	c->rbl_zones = xstrdup("bl.test*10, wl.test*-5");
	ps = session("198.51.100.30");
	T_EQ_INT(run(ps, POL_CONNECT, &d), POL_ACCEPT);
	T_ASSERT(pol_result_find(ps, "rbl") != NULL);
	T_EQ_STR(pol_result_find(ps, "rbl") ? pol_result_find(ps, "rbl")->result : "", "temperror");
	T_ASSERT(pol_result_find(ps, "dnswl") == NULL);
	pol_session_free(ps);
	free(c->rbl_zones);
	c->rbl_zones = old;
}

T_CASE(rate_limits)
{
	struct pol_decision d = { 0 };
	struct pol_session *ps;

	clock_minute_start();
	rate_reset();
	c->rate_connections_per_minute = 1;
	c->rate_messages_per_minute = 1;
	c->greylist_enabled = 0;
	ps = session("198.51.100.40");
	T_EQ_INT(run(ps, POL_CONNECT, &d), POL_ACCEPT);
	T_EQ_INT(envelope(ps, "a@example.org", "r@example.net", &d), POL_ACCEPT);
	T_EQ_INT(envelope(ps, "a@example.org", "r@example.net", &d), POL_TEMPFAIL);
	T_EQ_INT(d.code, 450);
	T_EQ_STR(d.status, "4.7.1");
	pol_session_free(ps);
	ps = session("198.51.100.40");
	T_EQ_INT(run(ps, POL_CONNECT, &d), POL_TEMPFAIL);
	T_EQ_INT(d.code, 421);
	T_EQ_STR(d.status, "4.7.0");
	T_EQ_INT(d.disconnect, 1);
	pol_session_free(ps);
	c->rate_connections_per_minute = 0;
	c->rate_messages_per_minute = 0;
	c->greylist_enabled = 1;
	rate_reset();
	clock_set(0);
}

/* Message-ID, Subject (unfolded) and From come from the header only. */
T_CASE(message_fields)
{
	static const char m[] =
	    "Received: from x\r\n\tby y\r\n"
	    "subject: Quarterly\r\n numbers\r\n"
	    "Message-ID:   <m1@example.org>\r\n"
	    "From: Alice <alice@example.org>\r\n"
	    "\r\n"
	    "Subject: not a header\r\nMessage-ID: <body@x>\r\n";
	struct pol_msg msg = { m, sizeof(m) - 1 };
	struct pol_decision d = { 0 };
	struct pol_session *ps = session("198.51.100.60");

	c->greylist_enabled = 0;
	pol_tx_begin(ps, "alice@example.org", "");
	pol_run(ps, POL_DATA, &msg, &d);
	T_EQ_STR(ps->subject, "Quarterly numbers");
	T_EQ_STR(ps->msgid, "<m1@example.org>");
	T_EQ_STR(ps->from_hdr, "Alice <alice@example.org>");
	pol_decision_clear(&d);
	/* no header at all: nothing is made up */
	pol_tx_begin(ps, "alice@example.org", "");
	msg.data = "\r\nSubject: body only\r\n";
	msg.len = strlen(msg.data);
	pol_run(ps, POL_DATA, &msg, &d);
	T_ASSERT(ps->subject == NULL && ps->msgid == NULL);
	pol_decision_clear(&d);
	/* no empty line: all of it is header, up to the last byte */
	pol_tx_begin(ps, "alice@example.org", "");
	msg.data = "X-A: 1\r\n\r\r\nMESSAGE-ID: <m2@x>\r\nSubject: last";
	msg.len = strlen(msg.data);
	pol_run(ps, POL_DATA, &msg, &d);
	T_EQ_STR(ps->subject, "last");
	T_EQ_STR(ps->msgid, "<m2@x>");
	pol_decision_clear(&d);
	pol_session_free(ps);
	c->greylist_enabled = 1;
}

T_CASE(verdict_log)
{
	struct pol_decision d = { 0 };
	struct pol_session *ps = session("198.51.100.50");

	c->greylist_enabled = 0;
	run(ps, POL_CONNECT, &d);
	envelope(ps, "log@example.org", "r@example.net", &d);
	pol_tx_rcpt_accepted(ps, "r@example.net");
	add(ps, "rule", 3, "looks odd");
	run(ps, POL_DATA, &d);
	pol_tx_record(ps, &(struct pol_end){ .outcome = POL_O_ACCEPT,
	    .stage = "end-of-data", .reply = "", .mta_reply = "250 2.0.0 Ok: queued",
	    .size = 1234, .ms = 7 });
	pol_tx_reset(ps);
	T_EQ_INT(db_flush(10000), 0);
	struct dbrows r;
	T_EQ_INT(dbrows_verdicts(5, 0, "log@example.org", &r), 0);
	T_EQ_INT(r.n, 1);
	/* verdict, outcome, stage, the backend's words, size; the rule, and
	 * rdns from CONNECT (it names the client, no score) */
	T_ASSERT(strstr(r.text, "|tag|accept|end-of-data|250 2.0.0 Ok: queued|") != NULL);
	T_ASSERT(strstr(r.text, "|1234|") != NULL);
	T_ASSERT(strstr(r.text, "|rcpts:r@example.net|checks:") != NULL);
	const char *ck = strstr(r.text, "|checks:") + 8;
	int nrule = 0, nother = 0;
	for (const char *p = ck; *p; p = strchr(p, ';') + 1) {
		if (strncmp(p, "rule/", 5) == 0)
			nrule++;
		else if (strncmp(p, "rdns/", 5) != 0)
			nother++;
	}
	T_EQ_INT(nrule, 1);
	T_EQ_INT(nother, 0);
	pol_decision_clear(&d);
	pol_session_free(ps);
	c->greylist_enabled = 1;
}

/* The database locked by another connection: RCPT (greylisting) answers
 * 451 4.3.0, new MAILs too until it is writable again; no pass. */
T_CASE(locked_database_tempfails)
{
	struct pol_decision d = { 0 };
	struct pol_session *ps = session("192.0.2.200");
	void *h = dbrows_lock(dbpath);

	T_ASSERT(h != NULL);
	run(ps, POL_CONNECT, &d);
	T_EQ_INT(envelope(ps, "l@example.org", "r@example.net", &d), POL_TEMPFAIL);
	T_EQ_INT(d.code, 451);
	T_EQ_STR(d.status, "4.3.0");
	T_EQ_INT(db_ok(), 0);
	pol_tx_begin(ps, "l@example.org", "");
	T_EQ_INT(run(ps, POL_MAIL, &d), POL_TEMPFAIL);
	T_EQ_INT(d.code, 451);
	dbrows_unlock(h);
	T_EQ_INT(db_flush(10000), 0);
	T_EQ_INT(envelope(ps, "l@example.org", "r@example.net", &d), POL_TEMPFAIL);
	T_EQ_INT(d.code, 450);	/* greylisted normally again */
	pol_session_free(ps);
}

int
main(void)
{
	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(dbpath, sizeof(dbpath), "%s/p.db", dir);
	snprintf(clockpath, sizeof(clockpath), "%s/clock", dir);
	clock_set(0);
	setenv("POSTERN_CLOCK_FILE", clockpath, 1);
	c = conf_defaults();
	free(c->db_path);
	c->db_path = xstrdup(dbpath);
	/* DNS goes to a loopback port where nobody answers: every question
	 * times out (SPF and the DNS lists then say temperror). */
	free(c->dns_resolver);
	c->dns_resolver = xstrdup("127.0.0.1:9");
	c->dns_timeout_ms = 200;
	c->spf_enabled = 0;	/* policy/spf.c has its own tests */
	log_set_level(LOG_LVL_ERR);
	if (pol_init(c) == -1)
		return 1;
	T_RUN(stage_needed);
	T_RUN(grey_state_machine);
	T_RUN(skip_domains);
	T_RUN(thresholds);
	T_RUN(deny_and_allow_lists);
	T_RUN(relay_guard);
	T_RUN(greylisting_with_clock);
	T_RUN(auto_allow_and_dnswl_skip);
	T_RUN(greylist_survives_restart_and_expires);
	T_RUN(greylist_cache);
	T_RUN(dynamic_names);
	T_RUN(quarantine_copy_left_to_a_worker);
	T_RUN(speculation_undone);
	T_RUN(dns_lists_that_cannot_answer_do_not_list);
	T_RUN(rate_limits);
	T_RUN(message_fields);
	T_RUN(verdict_log);
	T_RUN(locked_database_tempfails);
	pol_shutdown();
	conf_unref(c);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		return 1;
	return T_END();
}
