/*
 * spf_test.c -- SPF pieces that need no DNS server: result names, the
 * identity checks of RFC 7208 4.3 (answered before any lookup), and the
 * fail-safe paths -- a resolver that never answers and a spent session
 * budget must give temperror with score 0, never pass. The RFC 7208 cases
 * with real DNS are in tests/integration/test_spf.py.
 */
#include "t.h"
#include "lib/conf.h"
#include "dns/dns.h"
#include "policy/policy_int.h"
#include "policy/spf.h"
#include "lib/util.h"

#include <arpa/inet.h>
#include <stdlib.h>

static struct sockaddr_in client;

static void
query(const char *sender, const char *domain, struct dns_budget *b, struct spf_outcome *o)
{
	struct spf_query q = {
		.ip = (struct sockaddr *)&client, .sender = sender, .helo = "h.test",
		.domain = domain, .budget = b,
	};

	spf_check_host(&q, o);
}

T_CASE(result_names)
{
	T_EQ_STR(spf_result_name(SPF_R_NONE), "none");
	T_EQ_STR(spf_result_name(SPF_R_NEUTRAL), "neutral");
	T_EQ_STR(spf_result_name(SPF_R_PASS), "pass");
	T_EQ_STR(spf_result_name(SPF_R_FAIL), "fail");
	T_EQ_STR(spf_result_name(SPF_R_SOFTFAIL), "softfail");
	T_EQ_STR(spf_result_name(SPF_R_TEMPERROR), "temperror");
	T_EQ_STR(spf_result_name(SPF_R_PERMERROR), "permerror");
}

T_CASE(identity_not_a_domain_is_none)
{
	static const char *bad[] = { "", "localhost", "[192.0.2.1]", "a..b.test",
	    "x.toolonglabel-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.test" };
	struct dns_stats s0, s1;
	struct spf_outcome o;

	dns_stats_get(&s0);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		query("u@x", bad[i], NULL, &o);
		T_EQ_STR(spf_result_name(o.result), "none");
		T_ASSERT(o.explanation == NULL);
		spf_outcome_clear(&o);
	}
	dns_stats_get(&s1);
	T_EQ_INT(s1.queries - s0.queries, 0);	/* decided before any lookup */
}

T_CASE(silent_resolver_is_temperror)
{
	struct spf_outcome o;

	query("u@example.test", "example.test", NULL, &o);
	T_EQ_STR(spf_result_name(o.result), "temperror");
	T_ASSERT(strstr(o.reason, "timeout") != NULL);
	spf_outcome_clear(&o);
}

T_CASE(spent_budget_is_temperror)
{
	struct dns_budget b = { .left = 0, .asked = 0 };
	struct spf_outcome o;

	query("u@example.test", "example.test", &b, &o);
	T_EQ_STR(spf_result_name(o.result), "temperror");
	T_ASSERT(strstr(o.reason, "budget") != NULL);
	T_EQ_INT(b.asked, 0);
	spf_outcome_clear(&o);
}

T_CASE(policy_check_temperror_scores_zero)
{
	struct conf *c = conf_defaults();
	struct pol_decision d;
	struct pol_session *ps;
	enum spf_result r;
	const char *dom, *ident;

	c->spf_pass_score = -100;	/* a silent pass would show */
	pol_only_set("spf");		/* no database, no other checks */
	ps = pol_session_new(c, "t1", (struct sockaddr *)&client, sizeof(client));
	T_EQ_INT(spf_session_get(ps, &r, &dom, &ident), -1);
	memset(&d, 0, sizeof(d));
	pol_set_helo(ps, "h.test");
	pol_run(ps, POL_HELO, NULL, &d);
	pol_decision_clear(&d);
	pol_tx_begin(ps, "a@example.test", "");
	pol_run(ps, POL_MAIL, NULL, &d);
	const struct pol_result *pr = pol_result_find(ps, "spf");
	T_ASSERT(pr != NULL);
	if (pr != NULL) {
		T_EQ_STR(pr->result, "temperror");
		T_ASSERT(pr->score == 0);
		T_EQ_STR(pr->authres, "smtp.mailfrom=a@example.test");
	}
	T_EQ_INT(d.verdict, POL_ACCEPT);
	T_EQ_INT(spf_session_get(ps, &r, &dom, &ident), 0);
	T_EQ_INT(r, SPF_R_TEMPERROR);
	T_EQ_STR(dom, "example.test");
	T_EQ_STR(ident, "mailfrom");
	pol_decision_clear(&d);
	/* the null sender is judged on HELO */
	pol_tx_begin(ps, "", "");
	pol_run(ps, POL_MAIL, NULL, &d);
	T_EQ_INT(spf_session_get(ps, &r, &dom, &ident), 0);
	T_EQ_STR(ident, "helo");
	T_EQ_STR(dom, "h.test");
	pr = pol_result_find(ps, "spf");
	if (pr != NULL)
		T_EQ_STR(pr->authres, "smtp.helo=h.test");
	pol_decision_clear(&d);
	pol_tx_reset(ps);
	T_EQ_INT(spf_session_get(ps, &r, &dom, &ident), -1);
	pol_session_free(ps);
	pol_only_set(NULL);
	conf_unref(c);
}

int
main(void)
{
	struct conf *c = conf_defaults();
	char dir[] = "/tmp/postern-spf-test-XXXXXX", cmd[64];
	int rc;

	client.sin_family = AF_INET;
	inet_pton(AF_INET, "192.0.2.1", &client.sin_addr);
	if (mkdtemp(dir) == NULL)
		return 1;
	free(c->db_path);
	c->db_path = xasprintf("%s/postern.db", dir);
	/* a loopback port nobody serves: every question times out */
	free(c->dns_resolver);
	c->dns_resolver = xstrdup("127.0.0.1:9");
	c->dns_timeout_ms = 50;
	log_set_level(LOG_LVL_ERR);
	if (pol_init(c) == -1)
		return 1;
	T_RUN(result_names);
	T_RUN(identity_not_a_domain_is_none);
	T_RUN(silent_resolver_is_temperror);
	T_RUN(spent_budget_is_temperror);
	T_RUN(policy_check_temperror_scores_zero);
	pol_shutdown();
	conf_unref(c);
	rc = T_END();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		return 1;
	return rc;
}
