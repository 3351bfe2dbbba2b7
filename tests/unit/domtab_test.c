/* domtab_test.c -- the dashboard's domain policies: an entry's JSON to
 * struct conf_domain and back, checked by the config parser's rules (bad
 * names, list entries, types, unknown members, thresholds that do not
 * rise with the global ones); a stored document read back; lookups where
 * a config section and a dashboard entry meet; and over a real database:
 * save, conflict with a section, delete, the table rebuilt after the edit
 * version moved, and a session's thresholds following it. */
#include "t.h"
#include "tconf.h"
#include "db/db.h"
#include "lib/conf.h"
#include "lib/util.h"
#include "policy/dompol.h"
#include "policy/domtab.h"
#include "policy/policy_int.h"

#include <arpa/inet.h>
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

static char dir[] = "/tmp/postern-domtab-XXXXXX";
static struct conf *c;

static const char conf_text[] =
	"[spf]\nenabled = no\n[dkim]\nenabled = no\n[dmarc]\nenabled = no\n"
	"[bayes]\nenabled = no\n[greylist]\nenabled = no\n"
	"[policy]\ntag_score = 3\nquarantine_score = 6\nreject_score = 10\n"
	"[domain cfg.example]\npolicy.quarantine_score = 5\n";

/* Parse text as an entry of name; the error text in why. */
static struct conf_domain *
parse(const char *name, const char *text, char *why, size_t whysz)
{
	json_t *j = json_loads(text, JSON_DECODE_ANY, NULL);
	struct conf_domain *d = NULL;

	*why = '\0';
	if (domtab_entry_parse(c, name, j, &d, why, whysz) == -1)
		d = NULL;
	json_decref(j);
	return d;
}

static void
drop(struct conf_domain *d)
{
	if (d != NULL)
		conf_dom_clear(d);
	free(d);
}

T_CASE(entry_good_and_round_trip)
{
	char why[400];
	struct conf_domain *d = parse("Shop.Example", "{\"tag_score\": 2, \"quarantine_score\": \"4\","
	    " \"greylisting\": false, \"allow_senders\": [\"Boss@Partner.example\", \"@x.example\"],"
	    " \"deny_clients\": \"192.0.2.0/24,  198.51.100.7\", \"reject_score\": null}", why,
	    sizeof(why));
	struct conf_domain *back;
	json_t *j;
	char *s;

	T_ASSERT(d != NULL);
	if (d == NULL) {
		fprintf(stderr, "  %s\n", why);
		return;
	}
	T_EQ_STR(d->name, "shop.example");
	T_EQ_INT(d->set, 1u << CONF_DOM_TAG | 1u << CONF_DOM_QUARANTINE | 1u << CONF_DOM_GREYLIST |
	    1u << CONF_DOM_ALLOW_SENDERS | 1u << CONF_DOM_DENY_CLIENTS);
	T_ASSERT(d->tag_score == 2 && d->quarantine_score == 4 && d->greylist_enabled == 0);
	T_EQ_STR(d->lists[CONF_DOM_ALLOW_SENDERS - CONF_DOM_LIST0],
	    "boss@partner.example, @x.example");
	T_EQ_STR(d->lists[CONF_DOM_DENY_CLIENTS - CONF_DOM_LIST0], "192.0.2.0/24, 198.51.100.7");
	T_EQ_STR(d->lists[CONF_DOM_DENY_SENDERS - CONF_DOM_LIST0], "");
	j = domtab_entry_json(d);
	s = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
	T_EQ_STR(s, "{\"allow_senders\":\"boss@partner.example, @x.example\","
	    "\"deny_clients\":\"192.0.2.0/24, 198.51.100.7\",\"greylisting\":false,"
	    "\"quarantine_score\":4.0,\"tag_score\":2.0}");
	back = parse("shop.example", s, why, sizeof(why));
	T_ASSERT(back != NULL && back->set == d->set && dompol_same(c, back, d));
	free(s);
	json_decref(j);
	drop(back);
	drop(d);
	/* a subdomain entry; nothing set is the global policy */
	d = parse(".Sub.Example", "{}", why, sizeof(why));
	T_ASSERT(d != NULL && strcmp(d->name, ".sub.example") == 0 && d->set == 0);
	T_ASSERT(d != NULL && dompol_same(c, d, NULL));
	drop(d);
}

/* Each wrong entry names what is wrong, in conf.c's words where it has them. */
T_CASE(entry_bad_says_why)
{
	static const struct { const char *name, *json, *why; } bad[] = {
		{ "a..b", "{}", "'a..b' does not name a domain" },
		{ "", "{}", "'' does not name a domain" },
		{ "x.example", "[1]", "must be a JSON object" },
		{ "x.example", "{\"tag\": 1}", "unknown member 'tag'" },
		{ "x.example", "{\"tag_score\": true}", "tag_score must be a number or null" },
		{ "x.example", "{\"tag_score\": \"lots\"}", "'lots' is not a number" },
		{ "x.example", "{\"greylisting\": \"maybe\"}", "'maybe' is not a yes/no value" },
		{ "x.example", "{\"greylisting\": 1}", "greylisting must be true, false or null" },
		{ "x.example", "{\"allow_clients\": [\"10.0.0.0/8\", \"nonsense\"]}",
		  "access.allow_clients: 'nonsense' is not an IP address or CIDR block" },
		{ "x.example", "{\"deny_senders\": [\"a<b@c\"]}",
		  "access.deny_senders: 'a<b@c' is not a sender" },
		{ "x.example", "{\"deny_senders\": [7]}", "deny_senders must be a list of strings" },
		/* with the global tag 3 and reject 10 */
		{ "x.example", "{\"quarantine_score\": 2}",
		  "[domain x.example] thresholds tag 3, quarantine 2, reject 10" },
		{ "x.example", "{\"tag_score\": 5, \"quarantine_score\": 4, \"reject_score\": 8}",
		  "do not rise" },
	};
	char why[400];

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct conf_domain *d = parse(bad[i].name, bad[i].json, why, sizeof(why));
		T_ASSERT(d == NULL);
		if (strstr(why, bad[i].why) == NULL) {
			t_case_failed = 1;
			fprintf(stderr, "  case %zu: \"%s\" lacks \"%s\"\n", i, why, bad[i].why);
		}
		drop(d);
	}
}

/* A stored document: sorted by name, a bad entry left out, thresholds
 * not compared (the config may have changed since the save). */
T_CASE(document_and_lookup)
{
	struct domtab *t = domtab_from_json("{\"z.example\": {\"reject_score\": 30},"
	    " \"cfg.example\": {\"quarantine_score\": 9},"
	    " \".cfg.example\": {\"quarantine_score\": 4, \"reject_score\": 4},"
	    " \"bad..example\": {}, \"odd.example\": {\"tag_score\": 20}}");
	const struct conf_domain *d;
	struct dompol_limits l;
	struct domtab *none = domtab_from_json("not json");

	T_EQ_INT(domtab_count(t), 4);
	T_EQ_STR(domtab_at(t, 0)->name, ".cfg.example");
	T_EQ_STR(domtab_at(t, 3)->name, "z.example");
	T_ASSERT(domtab_at(t, 4) == NULL);
	/* the config's section beats the dashboard's entry of the same name */
	d = dompol_find(c, t, "u@cfg.example");
	T_ASSERT(d == &c->domains[0]);
	d = dompol_find(c, t, "u@mx.cfg.example");
	T_EQ_STR(d ? d->name : "global", ".cfg.example");
	dompol_limits(c, d, &l);	/* tag inherited from the global policy */
	T_ASSERT(l.tag == 3 && l.quarantine == 4 && l.reject == 4);
	T_ASSERT(dompol_find(c, t, "u@other.example") == NULL);
	T_ASSERT(dompol_reject_max(c, t) == 30);
	T_ASSERT(dompol_reject_max(c, NULL) == 10);
	T_EQ_INT(domtab_count(none), 0);
	domtab_unref(none);
	domtab_unref(t);
}

/* dompol_find's binary searches over the table (and the config's
 * sections): the first and the last name, names before, between and
 * after them, in any case; ".NAME" for subdomains only, the longest
 * parent first. The policy before RCPT reads the table's allow lists. */
T_CASE(lookup_binary_search)
{
	static const struct { const char *rcpt, *want; } cases[] = {
		{ "u@x.a.example", ".a.example" },	/* the first name */
		{ "u@zz.example", "zz.example" },	/* the last */
		{ "u@ZZ.Example", "zz.example" },	/* in any case */
		{ "u@X.A.EXAMPLE", ".a.example" },
		{ "u@b.example", "b.example" },
		{ "u@m.example", "m.example" },
		{ "u@mx.m.example", ".m.example" },
		{ "u@deep.m.example", ".m.example" },
		{ "u@x.deep.m.example", ".deep.m.example" },	/* the longest parent */
		{ "u@a.b.x.Deep.m.example", ".deep.m.example" },
		{ "u@a.example", "global" },		/* .a.example: subdomains only */
		{ "u@0.example", "global" },		/* before the first */
		{ "u@c.example", "global" },		/* between two */
		{ "u@zzz.example", "global" },		/* after the last */
		{ "u@x.b.example", "global" },		/* b.example: that domain only */
		{ "u@example", "global" },
		{ "u@cfg.example", "cfg.example" },	/* the config's section */
		{ "u@mx.cfg.example", "global" },
	};
	static const char doc[] = "{\"m.example\": {}, \"b.example\": {},"
	    " \".deep.m.example\": {\"tag_score\": 1}, \".m.example\": {\"tag_score\": 2},"
	    " \"y.example\": {}, \"zz.example\": {}, \".a.example\": {},"
	    " \"vip.example\": {\"allow_clients\": \"198.18.0.1, 198.18.0.2, 192.0.2.0/24\","
	    " \"reject_score\": 15}}";
	struct domtab *t = domtab_from_json(doc);
	struct sockaddr_in in = { .sin_family = AF_INET }, out = { .sin_family = AF_INET };
	struct pol_session *pin, *pout;
	const struct conf_domain *d;

	T_EQ_INT(domtab_count(t), 8);
	T_EQ_STR(domtab_at(t, 0)->name, ".a.example");
	T_EQ_STR(domtab_at(t, 7)->name, "zz.example");
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		d = dompol_find(c, t, cases[i].rcpt);
		T_EQ_STR(d ? d->name : "global", cases[i].want);
	}
	T_ASSERT(dompol_find(c, NULL, "u@zz.example") == NULL);
	inet_pton(AF_INET, "192.0.2.9", &in.sin_addr);
	inet_pton(AF_INET, "198.51.100.9", &out.sin_addr);
	pin = pol_session_new(c, "DT2", (struct sockaddr *)&in, sizeof(in));
	pout = pol_session_new(c, "DT3", (struct sockaddr *)&out, sizeof(out));
	/* each session frees the table it holds */
	pin->priv[pol_check_slot(&dompol_check)] = t;
	pout->priv[pol_check_slot(&dompol_check)] = domtab_from_json(doc);
	T_ASSERT(isinf(dompol_reject_early(pin)));
	T_ASSERT(dompol_reject_early(pout) == 15);
	pol_session_free(pin);
	pol_session_free(pout);
}

/* Through the database: save, refuse a config section's name, change,
 * delete; the shared table follows the edit version. */
T_CASE(save_conflict_delete_and_table)
{
	json_t *e = json_pack("{s:f, s:b}", "quarantine_score", 4.0, "greylisting", 1);
	json_t *bad = json_pack("{s:f}", "tag_score", 50.0);
	struct domtab *t0 = domtab_get(1), *t1, *t2;
	char why[400];
	json_t *doc;

	T_EQ_INT(domtab_count(t0), 0);
	T_EQ_INT(domtab_put(c, "Shop.Example", e, why, sizeof(why)), DOMTAB_CREATED);
	T_EQ_INT(domtab_put(c, "shop.example", e, why, sizeof(why)), DOMTAB_OK);
	T_EQ_INT(domtab_put(c, "cfg.example", e, why, sizeof(why)), DOMTAB_CONFLICT);
	T_ASSERT(strstr(why, "is a section of the config file") != NULL);
	T_EQ_INT(domtab_put(c, "x.example", bad, why, sizeof(why)), DOMTAB_INVALID);
	T_ASSERT(strstr(why, "do not rise") != NULL);
	T_EQ_INT(domtab_read(&doc), 0);
	T_EQ_INT(json_object_size(doc), 1);
	T_ASSERT(json_object_get(doc, "shop.example") != NULL);
	json_decref(doc);
	T_ASSERT(domtab_stale(t0));	/* the edit version moved */
	t1 = domtab_get(1);
	T_ASSERT(!domtab_stale(t1) && domtab_count(t1) == 1);
	T_ASSERT(domtab_at(t1, 0)->quarantine_score == 4);
	T_EQ_INT(domtab_del("shop.example", why, sizeof(why)), DOMTAB_OK);
	T_EQ_INT(domtab_del("shop.example", why, sizeof(why)), DOMTAB_NOTFOUND);
	T_EQ_INT(domtab_del("a..b", why, sizeof(why)), DOMTAB_INVALID);
	t2 = domtab_get(1);
	T_EQ_INT(domtab_count(t2), 0);
	/* the old table lives on for whoever holds it */
	T_EQ_STR(domtab_at(t1, 0)->name, "shop.example");
	domtab_unref(t0);
	domtab_unref(t1);
	domtab_unref(t2);
	json_decref(e);
	json_decref(bad);
}

/* A session's first RCPT after a save: the stage wants a worker (the
 * table is stale), and run there it decides by the new thresholds. */
T_CASE(session_follows_a_save)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(25) };
	struct pol_session *ps;
	json_t *e = json_pack("{s:f}", "tag_score", 1.0);
	struct pol_decision d;
	char why[400];

	inet_pton(AF_INET, "192.0.2.9", &sa.sin_addr);
	ps = pol_session_new(c, "DT1", (struct sockaddr *)&sa, sizeof(sa));
	pol_tx_begin(ps, "a@sender.example", "");
	T_EQ_INT(domtab_put(c, "live.example", e, why, sizeof(why)), DOMTAB_CREATED);
	pol_tx_rcpt(ps, "u@live.example");
	T_EQ_INT(pol_stage_needed(ps, POL_RCPT, NULL), 1);
	pol_run(ps, POL_RCPT, NULL, &d);
	T_EQ_STR(ps->dom_stage ? ps->dom_stage->name : "global", "live.example");
	pol_tx_rcpt_accepted(ps, "u@live.example");
	T_EQ_STR(ps->dom ? ps->dom->name : "global", "live.example");
	T_EQ_INT(domtab_del("live.example", why, sizeof(why)), DOMTAB_OK);
	/* the transaction keeps its policy (and the table it points into) */
	T_EQ_STR(ps->dom ? ps->dom->name : "global", "live.example");
	pol_session_free(ps);
	json_decref(e);
}

int
main(void)
{
	if ((c = t_policy_conf(dir, conf_text)) == NULL)
		return 1;
	T_RUN(entry_good_and_round_trip);
	T_RUN(entry_bad_says_why);
	T_RUN(document_and_lookup);
	T_RUN(lookup_binary_search);
	T_RUN(save_conflict_delete_and_table);
	T_RUN(session_follows_a_save);
	pol_shutdown();
	conf_unref(c);
	return T_END();
}
