/* dompol_test.c -- per-domain policy resolution: which [domain] section a
 * recipient gets, when two policies are the same, the thresholds before
 * and after RCPT, the domain's lists; and through pol_run() over a real
 * database: the 452 4.5.3 split, each transaction decided by its own
 * thresholds, greylisting off for one domain. */
#include "t.h"
#include "tconf.h"
#include "lib/conf.h"
#include "lib/util.h"
#include "policy/dompol.h"
#include "policy/policy_int.h"

#include <arpa/inet.h>
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

static char dir[] = "/tmp/postern-domtest-XXXXXX";
static struct conf *c;

static const char conf_text[] =
	"[greylist]\nenabled = yes\n"
	"[spf]\nenabled = no\n[dkim]\nenabled = no\n[dmarc]\nenabled = no\n"
	"[bayes]\nenabled = no\n"
	"[domain Strict.Example]\npolicy.quarantine_score = 4\npolicy.tag_score = 2\n"
	"access.deny_senders = Bad.Example,  @worse.example\n"
	"[domain .strict.example]\npolicy.quarantine_score = 4\npolicy.tag_score = 2\n"
	"access.deny_senders = bad.example, @Worse.example\n"
	"[domain .deep.strict.example]\npolicy.reject_score = 20\n"
	"[domain same.example]\ngreylist.enabled = yes\n"
	"[domain nogrey.example]\ngreylist.enabled = no\n"
	"[domain vip.example]\naccess.allow_clients = 192.0.2.0/24\n"
	"access.deny_clients = 192.0.2.7\naccess.allow_senders = boss@partner.example\n";

static struct sockaddr_in
addr4(const char *ip)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(25) };

	inet_pton(AF_INET, ip, &sa.sin_addr);
	return sa;
}

static const char *
name_of(const char *rcpt)
{
	const struct conf_domain *d = dompol_find(c, NULL, rcpt);

	return d ? d->name : "global";
}

T_CASE(find_exact_then_longest_parent)
{
	T_EQ_STR(name_of("a@strict.example"), "strict.example");
	T_EQ_STR(name_of("a@STRICT.example"), "strict.example");
	T_EQ_STR(name_of("a@mx.strict.example"), ".strict.example");
	T_EQ_STR(name_of("a@x.deep.strict.example"), ".deep.strict.example");
	T_EQ_STR(name_of("a@deep.strict.example"), ".strict.example");
	T_EQ_STR(name_of("a@notstrict.example"), "global");
	T_EQ_STR(name_of("a@strict.example.evil"), "global");
	T_EQ_STR(name_of("postmaster"), "global");
	T_EQ_STR(name_of("a@"), "global");
	T_ASSERT(dompol_find(c, NULL, NULL) == NULL);
}

T_CASE(same_policy_is_values_not_names)
{
	const struct conf_domain *a = dompol_find(c, NULL, "x@strict.example"),
	    *b = dompol_find(c, NULL, "x@mx.strict.example"),
	    *deep = dompol_find(c, NULL, "x@y.deep.strict.example"),
	    *same = dompol_find(c, NULL, "x@same.example"),
	    *nogrey = dompol_find(c, NULL, "x@nogrey.example");

	/* equal thresholds and lists (lower-cased, spaced alike): one policy */
	T_EQ_STR(a->lists[CONF_DOM_DENY_SENDERS - CONF_DOM_LIST0], "bad.example, @worse.example");
	T_EQ_INT(dompol_same(c, a, b), 1);
	T_EQ_INT(dompol_same(c, a, NULL), 0);
	T_EQ_INT(dompol_same(c, deep, NULL), 0);
	/* a section that sets what the global policy has changes nothing */
	T_EQ_INT(dompol_same(c, same, NULL), 1);
	T_EQ_INT(dompol_same(c, NULL, same), 1);
	T_EQ_INT(dompol_same(c, nogrey, NULL), 0);
	T_EQ_INT(dompol_same(c, NULL, NULL), 1);
}

T_CASE(limits_and_reject_before_rcpt)
{
	struct dompol_limits l;
	struct sockaddr_in sa = addr4("198.51.100.1"), vip = addr4("192.0.2.1");
	struct pol_session *ps = pol_session_new(c, "T1", (struct sockaddr *)&sa, sizeof(sa));
	struct pol_session *pv = pol_session_new(c, "T2", (struct sockaddr *)&vip, sizeof(vip));

	dompol_limits(c, dompol_find(c, NULL, "a@strict.example"), &l);
	T_ASSERT(l.tag == 2 && l.quarantine == 4 && l.reject == 10);
	dompol_limits(c, NULL, &l);
	T_ASSERT(l.tag == 3 && l.quarantine == 6 && l.reject == 10);
	T_ASSERT(dompol_reject_max(c, NULL) == 20);
	T_ASSERT(dompol_reject_early(ps) == 20);
	/* a client some domain allowlists is not refused by score before RCPT */
	T_ASSERT(isinf(dompol_reject_early(pv)));
	T_EQ_INT(dompol_greylist(c, dompol_find(c, NULL, "a@nogrey.example")), 0);
	T_EQ_INT(dompol_greylist(c, NULL), 1);
	pol_session_free(ps);
	pol_session_free(pv);
}

T_CASE(lists_allow_beats_deny)
{
	const struct conf_domain *vip = dompol_find(c, NULL, "a@vip.example"),
	    *strict = dompol_find(c, NULL, "a@strict.example");
	struct sockaddr_in in = addr4("192.0.2.7"), out = addr4("203.0.113.9");
	char entry[300];
	const char *what = "";

	/* 192.0.2.7 is in both lists: allow wins */
	T_EQ_INT(dompol_lists(vip, (struct sockaddr *)&in, "", entry, sizeof(entry), &what),
	    DOMPOL_ALLOW);
	T_EQ_STR(what, "client");
	T_EQ_STR(entry, "192.0.2.0/24");
	T_EQ_INT(dompol_lists(vip, (struct sockaddr *)&out, "Boss@Partner.Example", entry,
	    sizeof(entry), &what), DOMPOL_ALLOW);
	T_EQ_STR(what, "sender");
	T_EQ_INT(dompol_lists(vip, (struct sockaddr *)&out, "other@partner.example", entry,
	    sizeof(entry), &what), DOMPOL_NONE);
	T_EQ_INT(dompol_lists(strict, (struct sockaddr *)&out, "x@mx.bad.example", entry,
	    sizeof(entry), &what), DOMPOL_DENY);
	T_EQ_STR(entry, "bad.example");
	/* "@worse.example": that domain only */
	T_EQ_INT(dompol_lists(strict, (struct sockaddr *)&out, "x@mx.worse.example", entry,
	    sizeof(entry), &what), DOMPOL_NONE);
	T_EQ_INT(dompol_lists(strict, (struct sockaddr *)&out, "", entry, sizeof(entry), &what),
	    DOMPOL_NONE);
	T_EQ_INT(dompol_lists(NULL, (struct sockaddr *)&in, "a@b.example", entry,
	    sizeof(entry), &what), DOMPOL_NONE);
}

static enum pol_verdict
run(struct pol_session *ps, enum pol_stage st, const struct pol_msg *m,
    struct pol_decision *d)
{
	pol_decision_clear(d);
	pol_run(ps, st, m, d);
	return d->verdict;
}

/* RCPT one recipient; on accept the backend takes it. */
static enum pol_verdict
rcpt(struct pol_session *ps, const char *to, struct pol_decision *d)
{
	enum pol_verdict v;

	pol_tx_rcpt(ps, to);
	if ((v = run(ps, POL_RCPT, NULL, d)) == POL_ACCEPT)
		pol_tx_rcpt_accepted(ps, to);
	return v;
}

/* Score 5: quarantine for strict.example (4), tag for the global policy. */
T_CASE(split_and_each_transaction_its_thresholds)
{
	struct sockaddr_in sa = addr4("198.51.100.2");
	struct pol_session *ps = pol_session_new(c, "T3", (struct sockaddr *)&sa, sizeof(sa));
	struct pol_msg m = { "Subject: x\r\n\r\nbody\r\n", 20 };
	struct pol_decision d = { 0 };

	T_EQ_INT(run(ps, POL_CONNECT, NULL, &d), POL_ACCEPT);
	pol_tx_begin(ps, "a@sender.example", "");
	T_EQ_INT(run(ps, POL_MAIL, NULL, &d), POL_ACCEPT);
	pol_result_add(ps, "x", "match", 5, NULL, "five");
	ps->results[ps->nresults - 1].stage = POL_MAIL;
	/* greylisting is on globally, but strict.example has it on too, and
	 * nogrey.example off: the first recipient sets the transaction's */
	T_EQ_INT(rcpt(ps, "u@nogrey.example", &d), POL_ACCEPT);
	T_EQ_INT(rcpt(ps, "u@strict.example", &d), POL_TEMPFAIL);
	T_EQ_INT(d.code, 452);
	T_EQ_STR(d.status, "4.5.3");
	T_EQ_STR(d.text, "<u@strict.example>: Recipient of another domain policy; "
	    "send it again in a separate transaction");
	T_EQ_INT(rcpt(ps, "v@nogrey.example", &d), POL_ACCEPT);
	T_EQ_INT(ps->nrcpts, 2);
	T_EQ_INT(run(ps, POL_DATA, &m, &d), POL_TAG);		/* the global thresholds */
	pol_tx_reset(ps);
	T_ASSERT(ps->dom == NULL);

	/* the 452'd recipient's own transaction: its thresholds */
	pol_tx_begin(ps, "a@sender.example", "");
	T_EQ_INT(run(ps, POL_MAIL, NULL, &d), POL_ACCEPT);
	pol_result_add(ps, "x", "match", 5, NULL, "five");
	ps->results[ps->nresults - 1].stage = POL_MAIL;
	pol_set_dry_run(ps);	/* no quarantine copy */
	/* strict.example greylists: the first attempt is deferred, not split */
	T_EQ_INT(rcpt(ps, "u@strict.example", &d), POL_TEMPFAIL);
	T_EQ_INT(d.code, 450);
	T_EQ_INT(ps->nrcpts, 0);
	T_EQ_INT(rcpt(ps, "w@nogrey.example", &d), POL_ACCEPT);
	T_EQ_STR(ps->dom->name, "nogrey.example");
	pol_session_free(ps);

	ps = pol_session_new(c, "T4", (struct sockaddr *)&sa, sizeof(sa));
	pol_set_dry_run(ps);
	pol_tx_begin(ps, "a@sender.example", "");
	pol_result_add(ps, "x", "match", 5, NULL, "five");
	ps->results[ps->nresults - 1].stage = POL_MAIL;
	ps->rcpt = xstrdup("u@strict.example");
	pol_tx_rcpt_accepted(ps, "u@strict.example");	/* as if the retry passed */
	T_EQ_INT(run(ps, POL_DATA, &m, &d), POL_QUARANTINE);
	T_EQ_STR(pol_result_find(ps, "domain")->result, "policy");
	T_EQ_STR(pol_result_find(ps, "domain")->reason,
	    "strict.example: tag 2, quarantine 4, reject 10, greylisting on");
	pol_session_free(ps);
	pol_decision_clear(&d);
}

/* The split is binding: an allowlisted sender does not join two
 * policies either; a domain deny refuses only its own recipients. */
T_CASE(split_is_binding_and_deny_is_per_domain)
{
	struct sockaddr_in sa = addr4("198.51.100.3");
	struct pol_session *ps = pol_session_new(c, "T5", (struct sockaddr *)&sa, sizeof(sa));
	struct pol_decision d = { 0 };

	pol_tx_begin(ps, "x@mail.bad.example", "");
	T_EQ_INT(run(ps, POL_MAIL, NULL, &d), POL_ACCEPT);
	T_EQ_INT(rcpt(ps, "u@strict.example", &d), POL_REJECT);
	T_EQ_INT(d.code, 550);
	T_EQ_STR(d.text, "<u@strict.example>: Recipient address rejected: sender "
	    "x@mail.bad.example denied by the policy of strict.example");
	T_EQ_INT(rcpt(ps, "u@nogrey.example", &d), POL_ACCEPT);
	ps->allow |= POL_ALLOW_TX;	/* as a global sender allow entry would */
	T_EQ_INT(rcpt(ps, "u@vip.example", &d), POL_TEMPFAIL);
	T_EQ_INT(d.code, 452);
	pol_session_free(ps);
	pol_decision_clear(&d);
}

/* configtest's words for bad sections, keys and values. */
T_CASE(conf_errors)
{
	char *p = t_write_tmp("[domain]\npolicy.tag_score = 1\n"
	    "[domain a..b]\npolicy.tag_score = 1\n"
	    "[domain ok.example]\nnope = 1\npolicy.reject_score = x\n"
	    "access.deny_senders = a<b@c\npolicy.tag_score = 1\npolicy.tag_score = 2\n");
	struct conf_err *e = NULL;
	int n = 0;
	struct conf *bad = conf_load(p, &e, &n);

	T_ASSERT(bad == NULL);
	T_EQ_INT(n, 6);
	T_ASSERT(n >= 6 && strstr(e[0].msg, ":2: [domain] does not name a domain") != NULL);
	T_ASSERT(n >= 6 && strstr(e[1].msg, ":4: [domain a..b] does not name a domain") != NULL);
	T_ASSERT(n >= 6 && strstr(e[2].msg, ":6: unknown key 'nope' in section [domain ok.example]") != NULL);
	T_ASSERT(n >= 6 && strstr(e[3].msg, ":7: [domain ok.example] policy.reject_score: 'x' is not a number") != NULL);
	T_ASSERT(n >= 6 && strstr(e[4].msg, ":10: 'policy.tag_score' is set twice in [domain ok.example]; keep one (line 9)") != NULL);
	T_ASSERT(n >= 6 && strstr(e[5].msg, ":8: [domain ok.example] access.deny_senders: 'a<b@c' is not a sender") != NULL);
	free(e);
	unlink(p);
	free(p);
}

int
main(void)
{
	if ((c = t_policy_conf(dir, conf_text)) == NULL)
		return 1;
	T_RUN(find_exact_then_longest_parent);
	T_RUN(same_policy_is_values_not_names);
	T_RUN(limits_and_reject_before_rcpt);
	T_RUN(lists_allow_beats_deny);
	T_RUN(split_and_each_transaction_its_thresholds);
	T_RUN(split_is_binding_and_deny_is_per_domain);
	T_RUN(conf_errors);
	pol_shutdown();
	conf_unref(c);
	return T_END();
}
