/*
 * api.c -- the JSON API of CONTRACT.md and /metrics, behind web.c's gate.
 *
 * Every handler validates its input and answers 400 {"error"} naming the
 * field; the database is reached only through db_*() (and the rule and
 * quarantine stores through their own calls); nothing from a message is
 * interpreted here, only copied into JSON strings.
 */
#include "db/db.h"
#include "lib/conf.h"
#include "lib/stats.h"
#include "lib/util.h"
#include "policy/access.h"
#include "policy/bayes.h"
#include "policy/grey.h"
#include "policy/policy.h"
#include "policy/quar.h"
#include "proxy/qsend.h"
#include "rules/rules.h"
#include "web/rowjson.h"
#include "web/web_int.h"

#include <ctype.h>
#include <errno.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define API_MAX_SEGS		4	/* /api/a/b/c/d */
#define API_DEFAULT_LIMIT	100
#define API_MAX_LIMIT		1000
#define API_TOP_SAMPLE		1000	/* verdicts read for the "top" tables */
#define API_TOP_N		10
#define API_MAX_BULK		1000	/* ids in one bulk quarantine action */
#define API_MAX_ID		64	/* bytes of a quarantine id */

struct api_path {
	char	*seg[API_MAX_SEGS];
	int	 n;
	char	*buf;
};

static void	 api_metrics(struct web_req *, struct web_resp *);
static json_t	*api_outcomes(void);
static void	 api_stats(struct web_req *, struct web_resp *);
static char	*api_bayes_metrics(void);
static json_t	*api_bayes_json(void);
static void	 api_verdicts(struct web_req *, struct web_resp *);
static void	 api_greylist(struct web_req *, struct web_resp *);
static void	 api_greylist_hand(struct web_req *, struct web_resp *, const char *action);
static void	 api_access(struct web_req *, struct web_resp *);
static void	 api_rules(struct web_req *, struct web_resp *, struct api_path *);
static void	 api_quarantine(struct web_req *, struct web_resp *, struct api_path *);
static int	 api_limit(const struct web_req *, struct web_resp *, int *);
static int	 api_rule_from_json(json_t *, struct rule_def *, struct web_resp *);
static json_t	*api_rule_json(const struct rule_def *);
static json_t	*api_rules_read(long long id);
static json_t	*api_rule_saved(const struct rule_def *);
static int	 api_is(const struct web_req *, const char *method);
static void	 api_split(const char *path, struct api_path *);
static int	 api_arg_ll(const struct web_req *, struct web_resp *, const char *name,
		    long long *out);
static int	 api_query(const struct web_req *, struct web_resp *, const char **q);
static void	 api_count(json_t *obj, const char *key);
static json_t	*api_top(json_t *counts);
static int	 api_tops_row(void *, const struct db_verdict_row *);
static json_t	*api_tops(time_t since);
static int	 api_access_row(void *arg, const struct db_access *);
static int	 api_access_key(struct web_resp *, const char *list, const char *kind,
		    const char *value, int adding);
static void	 api_access_add(struct web_req *, struct web_resp *);
static void	 api_rules_list(struct web_resp *);
static void	 api_rules_get(struct web_resp *, long long id);
static void	 api_rules_save(struct web_req *, struct web_resp *, long long id);
static void	 api_rules_test(struct web_req *, struct web_resp *);
static int	 api_quar_id_ok(const char *);
static int	 api_quar_act(const struct web_req *, const char *action, const char *id,
		    char *err, size_t errsz);
static void	 api_quar_one(struct web_req *, struct web_resp *, const char *action,
		    const char *id);
static void	 api_quar_bulk(struct web_req *, struct web_resp *);
static void	 api_quar_list(struct web_req *, struct web_resp *);
static void	 api_quar_raw(struct web_resp *, const char *id);
static int	 api_learn_class(const char *, enum bayes_class *);
static int	 api_looks_like_message(const char *, size_t);
static void	 api_learn_reply(struct web_req *, struct web_resp *, const char *raw,
		    size_t len, enum bayes_class, const char *id);
static void	 api_learn_quar(struct web_req *, struct web_resp *);
static void	 api_learn_upload(struct web_req *, struct web_resp *);
static void	 api_learn(struct web_req *, struct web_resp *);

static int
api_is(const struct web_req *r, const char *m)
{
	return strcmp(r->method, m) == 0 ||
	    (strcmp(m, "GET") == 0 && strcmp(r->method, "HEAD") == 0);
}

/* "/api/rules/12/x" -> {"rules", "12", "x"}; extra segments make n > max. */
static void
api_split(const char *path, struct api_path *p)
{
	char *s, *save = NULL;

	memset(p, 0, sizeof(*p));
	p->buf = xstrdup(path + strlen("/api/"));
	for (s = strtok_r(p->buf, "/", &save); s != NULL; s = strtok_r(NULL, "/", &save)) {
		if (p->n == API_MAX_SEGS) {
			p->n++;
			break;
		}
		p->seg[p->n++] = s;
	}
}

void
api_dispatch(struct web_req *r, struct web_resp *resp)
{
	struct api_path p;

	if (strcmp(r->path, "/metrics") == 0) {
		api_metrics(r, resp);
		return;
	}
	api_split(r->path, &p);
	if (p.n == 0 || p.n > API_MAX_SEGS)
		web_error(resp, 404, "no such endpoint");
	else if (strcmp(p.seg[0], "stats") == 0 && p.n == 1)
		api_stats(r, resp);
	else if (strcmp(p.seg[0], "verdicts") == 0 && p.n == 1)
		api_verdicts(r, resp);
	else if (strcmp(p.seg[0], "greylist") == 0 && p.n == 1)
		api_greylist(r, resp);
	else if (strcmp(p.seg[0], "greylist") == 0 && p.n == 2)
		api_greylist_hand(r, resp, p.seg[1]);
	else if (strcmp(p.seg[0], "access") == 0 && p.n == 1)
		api_access(r, resp);
	else if (strcmp(p.seg[0], "rules") == 0)
		api_rules(r, resp, &p);
	else if (strcmp(p.seg[0], "quarantine") == 0)
		api_quarantine(r, resp, &p);
	else if (strcmp(p.seg[0], "learn") == 0 && p.n == 1)
		api_learn(r, resp);
	else if (strcmp(p.seg[0], "lists") == 0 && p.n == 1)
		lists_api(r, resp);
	else if (strcmp(p.seg[0], "domains") == 0 && p.n == 1)
		domains_api(r, resp);
	else if (strcmp(p.seg[0], "domains") == 0 && p.n == 2)
		domains_api_one(r, resp, p.seg[1]);
	else
		web_error(resp, 404, "no such endpoint");
	free(p.buf);
}

/* limit= in 1..API_MAX_LIMIT: 0, or -1 with a 400 set. */
static int
api_limit(const struct web_req *r, struct web_resp *resp, int *limit)
{
	const char *s = web_arg(r, "limit");
	char *end;
	long v;

	*limit = API_DEFAULT_LIMIT;
	if (s == NULL)
		return 0;
	errno = 0;
	v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno || v < 1 || v > API_MAX_LIMIT) {
		web_error(resp, 400, "limit must be an integer from 1 to %d", API_MAX_LIMIT);
		return -1;
	}
	*limit = (int)v;
	return 0;
}

/* A non-negative integer argument (0 when absent): 0, or -1 with a 400. */
static int
api_arg_ll(const struct web_req *r, struct web_resp *resp, const char *name,
    long long *out)
{
	const char *s = web_arg(r, name);
	char *end;

	*out = 0;
	if (s == NULL)
		return 0;
	errno = 0;
	*out = strtoll(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno || *out < 0) {
		web_error(resp, 400, "%s must be a non-negative integer", name);
		return -1;
	}
	return 0;
}

static int
api_query(const struct web_req *r, struct web_resp *resp, const char **q)
{
	*q = web_arg(r, "q");
	if (*q != NULL && strlen(*q) > WEB_MAX_QUERY) {
		web_error(resp, 400, "q is longer than %d bytes", WEB_MAX_QUERY);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------ metrics, stats */

static void
api_metrics(struct web_req *r, struct web_resp *resp)
{
	char *text, *all;

	if (!api_is(r, "GET")) {
		web_error(resp, 405, "GET only");
		return;
	}
	char *bayes = api_bayes_metrics();
	char *lists = lists_metrics();

	stats_gauge_set(STATS_G_DB_QUEUE, db_queue_len());
	text = stats_prometheus();
	all = xasprintf("%s# HELP postern_db_ok 1 when the database writer's last "
	    "transaction committed.\n# TYPE postern_db_ok gauge\npostern_db_ok %d\n%s%s",
	    text, db_ok(), bayes, lists);
	free(text);
	free(bayes);
	free(lists);
	resp->status = 200;
	resp->ctype = "text/plain; version=0.0.4; charset=utf-8";
	resp->body = all;
	resp->len = strlen(all);
}

/* The classifier: learned messages per class and tokens (from the
 * database), verdicts and autolearns (this process). */
static char *
api_bayes_metrics(void)
{
	struct bayes_counts bc;

	if (bayes_counts(&bc) == -1)
		return xstrdup("");
	return xasprintf("# HELP postern_bayes_learned Messages the classifier has learned, by class.\n"
	    "# TYPE postern_bayes_learned gauge\n"
	    "postern_bayes_learned{class=\"spam\"} %lld\npostern_bayes_learned{class=\"ham\"} %lld\n"
	    "# HELP postern_bayes_tokens Tokens the classifier keeps.\n"
	    "# TYPE postern_bayes_tokens gauge\npostern_bayes_tokens %lld\n"
	    "# HELP postern_bayes_verdicts_total Classifier verdicts by result.\n"
	    "# TYPE postern_bayes_verdicts_total counter\n"
	    "postern_bayes_verdicts_total{result=\"spam\"} %lld\n"
	    "postern_bayes_verdicts_total{result=\"ham\"} %lld\n"
	    "postern_bayes_verdicts_total{result=\"unsure\"} %lld\n"
	    "postern_bayes_verdicts_total{result=\"untrained\"} %lld\n"
	    "postern_bayes_verdicts_total{result=\"temperror\"} %lld\n"
	    "# HELP postern_bayes_autolearned_total Messages autolearned, by class.\n"
	    "# TYPE postern_bayes_autolearned_total counter\n"
	    "postern_bayes_autolearned_total{class=\"spam\"} %lld\n"
	    "postern_bayes_autolearned_total{class=\"ham\"} %lld\n",
	    bc.nspam, bc.nham, bc.ntokens, bc.verdicts[BAYES_SPAM], bc.verdicts[BAYES_HAM],
	    bc.verdicts[BAYES_UNSURE], bc.verdicts[BAYES_UNTRAINED], bc.verdicts[BAYES_ERROR],
	    bc.autolearned[BAYES_LEARN_SPAM], bc.autolearned[BAYES_LEARN_HAM]);
}

/* The same for /api/stats; null when the database is not answering. */
static json_t *
api_bayes_json(void)
{
	struct bayes_counts bc;

	if (bayes_counts(&bc) == -1)
		return json_null();
	return json_pack("{s:I, s:I, s:I, s:{s:I, s:I, s:I, s:I, s:I}, s:{s:I, s:I}}",
	    "learned_spam", (json_int_t)bc.nspam, "learned_ham", (json_int_t)bc.nham,
	    "tokens", (json_int_t)bc.ntokens, "verdicts",
	    "spam", (json_int_t)bc.verdicts[BAYES_SPAM], "ham", (json_int_t)bc.verdicts[BAYES_HAM],
	    "unsure", (json_int_t)bc.verdicts[BAYES_UNSURE],
	    "untrained", (json_int_t)bc.verdicts[BAYES_UNTRAINED],
	    "temperror", (json_int_t)bc.verdicts[BAYES_ERROR], "autolearned",
	    "spam", (json_int_t)bc.autolearned[BAYES_LEARN_SPAM],
	    "ham", (json_int_t)bc.autolearned[BAYES_LEARN_HAM]);
}

/* Count key in obj (a name -> n map); keys are mended as JSON strings
 * are, so that raw 8-bit text still counts. */
static void
api_count(json_t *obj, const char *key)
{
	json_t *k;

	if (key == NULL || *key == '\0')
		return;
	k = rowjson_str(key);
	key = json_string_value(k);
	json_object_set_new(obj, key, json_integer(
	    json_integer_value(json_object_get(obj, key)) + 1));
	json_decref(k);
}

/* The API_TOP_N largest entries of a name -> n map, as [[name, n], ...]. */
static json_t *
api_top(json_t *counts)
{
	json_t *out = json_array();
	const char *k;
	json_t *v;

	for (int i = 0; i < API_TOP_N; i++) {
		const char *best = NULL;
		json_int_t bn = 0;

		json_object_foreach(counts, k, v)
			if (json_integer_value(v) > bn) {
				best = k;
				bn = json_integer_value(v);
			}
		if (best == NULL)
			break;
		json_array_append_new(out, json_pack("[s, I]", best, (json_int_t)bn));
		json_object_del(counts, best);
	}
	json_decref(counts);
	return out;
}

/* The "top" tables being counted, and from when. */
struct api_tops {
	time_t	 since;
	json_t	*clients, *domains, *rules;
};

static int
api_tops_row(void *arg, const struct db_verdict_row *r)
{
	struct api_tops *t = arg;
	const char *from = r->v.mail_from, *at = strrchr(from, '@');

	if (r->v.ts < t->since)
		return 0;
	api_count(t->clients, r->v.client_ip);
	api_count(t->domains, at ? at + 1 : (*from ? from : "<>"));
	for (int i = 0; i < r->v.nchecks; i++)
		if (r->v.checks[i].check != NULL && strcmp(r->v.checks[i].check, "rule") == 0)
			api_count(t->rules, r->v.checks[i].reason);
	return 0;
}

/* Top clients, sender domains and rules among the latest verdicts since. */
static json_t *
api_tops(time_t since)
{
	struct api_tops t = { since, json_object(), json_object(), json_object() };

	db_verdict_each(API_TOP_SAMPLE, 0, NULL, api_tops_row, &t);
	return json_pack("{s:o, s:o, s:o}", "clients", api_top(t.clients),
	    "sender_domains", api_top(t.domains), "rules", api_top(t.rules));
}

/* Transactions since start by outcome: {"accept": n, ...}. */
static json_t *
api_outcomes(void)
{
	json_t *o = json_object();

	for (int i = 0; i < POL_NOUTCOMES; i++)
		json_object_set_new(o, pol_outcome_name(i),
		    json_integer(stats_outcome_get(pol_outcome_name(i))));
	return o;
}

static void
api_stats(struct web_req *r, struct web_resp *resp)
{
	const char *range = web_arg(r, "range");
	time_t now = time_wall(), span;
	json_t *hist, *live;

	if (!api_is(r, "GET")) {
		web_error(resp, 405, "GET only");
		return;
	}
	if (range == NULL || strcmp(range, "hour") == 0)
		span = 3600, range = "hour";
	else if (strcmp(range, "day") == 0)
		span = 86400;
	else if (strcmp(range, "week") == 0)
		span = 7 * 86400;
	else {
		web_error(resp, 400, "range must be hour, day or week");
		return;
	}
	if ((hist = rowjson_stats(now - span)) == NULL) {
		web_error(resp, 503, "the database is not answering; see the log");
		return;
	}
	live = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:b}",
	    "sessions", (json_int_t)stats_get(STATS_SESSIONS),
	    "sessions_active", (json_int_t)stats_gauge_get(STATS_G_SESSIONS),
	    "messages", (json_int_t)stats_get(STATS_MESSAGES),
	    "quarantined", (json_int_t)stats_verdict_get("quarantine"),
	    "rejected", (json_int_t)stats_verdict_get("reject"),
	    "tempfailed", (json_int_t)stats_verdict_get("tempfail"),
	    "db_ok", db_ok());
	json_object_set_new(live, "outcomes", api_outcomes());
	json_object_set_new(hist, "live", live);
	json_object_set_new(hist, "range", json_string(range));
	json_object_set_new(hist, "now", json_integer(now));
	json_object_set_new(hist, "since", json_integer(now - span));
	json_object_set_new(hist, "top", api_tops(now - span));
	json_object_set_new(hist, "bayes", api_bayes_json());
	web_json(resp, 200, hist);
}

/* ------------------------------------------- verdicts, greylist, access */

static void
api_verdicts(struct web_req *r, struct web_resp *resp)
{
	long long before;
	const char *q;
	json_t *a;
	int limit;

	if (!api_is(r, "GET")) {
		web_error(resp, 405, "GET only");
		return;
	}
	if (api_limit(r, resp, &limit) == -1 || api_arg_ll(r, resp, "before", &before) == -1 ||
	    api_query(r, resp, &q) == -1)
		return;
	if ((a = rowjson_verdicts(limit, before, q)) == NULL) {
		web_error(resp, 503, "the database is not answering; see the log");
		return;
	}
	web_json(resp, 200, json_pack("{s:o}", "verdicts", a));
}

static void
api_greylist(struct web_req *r, struct web_resp *resp)
{
	json_t *g;
	int limit;

	if (!api_is(r, "GET")) {
		web_error(resp, 405, "GET only");
		return;
	}
	if (api_limit(r, resp, &limit) == -1)
		return;
	if ((g = rowjson_greylist(limit, r->conf->greylist_delay)) == NULL) {
		web_error(resp, 503, "the database is not answering; see the log");
		return;
	}
	web_json(resp, 200, g);
}

/* POST /api/greylist/pass|forget {"net", "sender", "rcpt"}: the triplet
 * as GET lists it (sender and recipient compared lower-case, as stored). */
static void
api_greylist_hand(struct web_req *r, struct web_resp *resp, const char *action)
{
	const char *net = NULL, *sender = NULL, *rcpt = NULL;
	int pass = strcmp(action, "pass") == 0, rc;
	char s[257], t[257];
	json_t *j;

	if (!pass && strcmp(action, "forget") != 0) {
		web_error(resp, 404, "no such endpoint");
		return;
	}
	if (!api_is(r, "POST")) {
		web_error(resp, 405, "POST only");
		return;
	}
	if ((j = web_body_json(r, resp)) == NULL)
		return;
	if (json_unpack(j, "{s:s, s:s, s:s}", "net", &net, "sender", &sender,
	    "rcpt", &rcpt) == -1 || *net == '\0' || *sender == '\0' || *rcpt == '\0')
		web_error(resp, 400, "net, sender and rcpt must be non-empty strings");
	else if (strlen(net) > 64 || strlen(sender) >= sizeof(s) || strlen(rcpt) >= sizeof(t))
		web_error(resp, 400, "net, sender or rcpt is too long");
	else {
		for (size_t i = 0; i <= strlen(sender); i++)
			s[i] = (char)tolower((unsigned char)sender[i]);
		for (size_t i = 0; i <= strlen(rcpt); i++)
			t[i] = (char)tolower((unsigned char)rcpt[i]);
		rc = pass ? grey_hand_pass(net, s, t) : grey_hand_forget(net, s, t);
		if (rc == -1)
			web_error(resp, 503, "the database refused the change; see the log");
		else if (rc == 0)
			web_error(resp, 404, "no such triplet");
		else
			web_json(resp, 200, json_pack("{s:s, s:s, s:s, s:s}", "done", action,
			    "net", net, "sender", s, "rcpt", t));
	}
	json_decref(j);
}

static int
api_access_row(void *arg, const struct db_access *e)
{
	json_array_append_new(arg, json_pack("{s:I, s:s, s:s, s:s, s:s, s:I}",
	    "id", (json_int_t)e->id, "list", e->list, "kind", e->kind,
	    "value", e->value, "note", e->note ? e->note : "",
	    "created", (json_int_t)e->created));
	return 0;
}

/* list/kind/value from JSON or the query string, checked as `postern
 * access add|del` checks them: 0 or -1 (400 with the reason). */
static int
api_access_key(struct web_resp *resp, const char *list, const char *kind,
    const char *value, int adding)
{
	char why[300];

	if (access_entry_valid(list, kind, value, adding, why, sizeof(why)) == 0)
		return 0;
	web_error(resp, 400, "%s", why);
	return -1;
}

static void
api_access_add(struct web_req *r, struct web_resp *resp)
{
	const char *list = NULL, *kind = NULL, *value = NULL, *note = "";
	json_t *j = web_body_json(r, resp);
	int rc;

	if (j == NULL)
		return;
	if (json_unpack(j, "{s?s, s?s, s?s, s?s}", "list", &list, "kind", &kind,
	    "value", &value, "note", &note) == -1)
		web_error(resp, 400, "list, kind, value and note must be strings");
	else if (api_access_key(resp, list, kind, value, 1) == 0) {
		if ((rc = db_access_add(list, kind, value, note)) == -1)
			web_error(resp, 503, "the database refused the change; see the log");
		else
			web_json(resp, rc == 0 ? 201 : 200, json_pack("{s:b}", "created", rc == 0));
	}
	json_decref(j);
}

static void
api_access(struct web_req *r, struct web_resp *resp)
{
	const char *list = web_arg(r, "list"), *kind = web_arg(r, "kind");
	const char *value = web_arg(r, "value");
	json_t *a;
	int rc;

	if (api_is(r, "GET")) {
		a = json_array();
		if (db_access_each(NULL, api_access_row, a) == -1) {
			json_decref(a);
			web_error(resp, 503, "the database is not answering; see the log");
		} else
			web_json(resp, 200, json_pack("{s:o}", "entries", a));
	} else if (api_is(r, "POST"))
		api_access_add(r, resp);
	else if (api_is(r, "DELETE")) {
		if (api_access_key(resp, list, kind, value, 0) == -1)
			return;
		if ((rc = db_access_del(list, kind, value)) == -1)
			web_error(resp, 503, "the database refused the change; see the log");
		else if (rc == 0)
			web_error(resp, 404, "no such entry");
		else
			web_json(resp, 200, json_pack("{s:b}", "deleted", 1));
	} else
		web_error(resp, 405, "GET, POST or DELETE");
}

/* ----------------------------------------------------------------- rules */

static json_t *
api_rule_json(const struct rule_def *d)
{
	return json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:f, s:b, s:b}",
	    "id", (json_int_t)d->id, "name", d->name, "target", d->target,
	    "pattern", d->pattern, "flags", d->flags ? d->flags : "",
	    "action", d->action, "score", d->score, "enabled", d->enabled,
	    "log_only", d->log_only);
}

/* A rule from JSON, every field checked and the pattern compiled: 0, or -1
 * with a 400 naming the problem (and "offset" for a bad pattern). */
static int
api_rule_from_json(json_t *j, struct rule_def *d, struct web_resp *resp)
{
	const char *name = NULL, *target = NULL, *pattern = NULL, *flags = "";
	const char *action = "score";
	json_t *score = NULL;
	int enabled = 1, log_only = 0;
	char err[512];
	long off;

	memset(d, 0, sizeof(*d));
	if (json_unpack(j, "{s:s, s:s, s:s, s?s, s?s, s?o, s?b, s?b}", "name", &name,
	    "target", &target, "pattern", &pattern, "flags", &flags, "action", &action,
	    "score", &score, "enabled", &enabled, "log_only", &log_only) == -1) {
		web_error(resp, 400, "a rule needs name, target and pattern strings; "
		    "flags and action are strings, score a number, enabled and "
		    "log_only booleans");
		return -1;
	}
	if (score != NULL && !json_is_number(score)) {
		web_error(resp, 400, "score must be a number");
		return -1;
	}
	d->name = xstrdup(name);
	d->target = xstrdup(target);
	d->pattern = xstrdup(pattern);
	d->flags = xstrdup(flags);
	d->action = xstrdup(action);
	d->score = score ? json_number_value(score) : 0;
	d->enabled = enabled;
	d->log_only = log_only;
	if (rule_def_check(d, err, sizeof(err)) == -1) {
		rule_def_clear(d);
		/* The editor marks where a pattern went wrong. */
		if (sscanf(err, "pattern at offset %ld", &off) == 1)
			web_json(resp, 400, json_pack("{s:s, s:i}", "error", err,
			    "offset", (int)off));
		else
			web_error(resp, 400, "%s", err);
		return -1;
	}
	return 0;
}

/* The stored rules (only rule id when id > 0) as the list shows them, each
 * with its "hits" (rowjson_rule_hits): an array, or NULL when the database
 * failed. */
static json_t *
api_rules_read(long long id)
{
	struct rule_def *defs = NULL;
	json_t *a, *hits, *j;
	size_t n = 0;

	if ((hits = rowjson_rule_hits(time_wall())) == NULL)
		return NULL;
	if (db_rule_load(&defs, &n) == -1) {
		json_decref(hits);
		return NULL;
	}
	a = json_array();
	for (size_t i = 0; i < n; i++) {
		if (id <= 0 || defs[i].id == id) {
			j = api_rule_json(&defs[i]);
			json_object_set_new(j, "hits", rowjson_rule_hit(hits, defs[i].name));
			json_array_append_new(a, j);
		}
		rule_def_clear(&defs[i]);
	}
	free(defs);
	json_decref(hits);
	return a;
}

static void
api_rules_list(struct web_resp *resp)
{
	json_t *a = api_rules_read(0);

	if (a == NULL)
		web_error(resp, 503, "the database is not answering; see the log");
	else
		web_json(resp, 200, json_pack("{s:o}", "rules", a));
}

/* GET /api/rules/{id}: the rule as the list shows it. */
static void
api_rules_get(struct web_resp *resp, long long id)
{
	json_t *a = api_rules_read(id);

	if (a == NULL)
		web_error(resp, 503, "the database is not answering; see the log");
	else if (json_array_size(a) == 0)
		web_error(resp, 404, "no rule %lld", id);
	else
		web_json(resp, 200, json_incref(json_array_get(a, 0)));
	json_decref(a);
}

/* POST (id 0) or PUT /api/rules/{id}. */
static void
api_rules_save(struct web_req *r, struct web_resp *resp, long long id)
{
	json_t *j = web_body_json(r, resp);
	struct rule_def d;
	long long got;
	int rc;

	if (j == NULL || api_rule_from_json(j, &d, resp) == -1) {
		json_decref(j);
		return;
	}
	json_decref(j);
	d.id = id;
	/* Both calls: -2 name taken, -1 failed; add gives the new id, update
	 * 0 done or 1 no such rule. */
	if (id == 0)
		rc = (got = db_rule_add(&d)) < 0 ? (int)got : 0;
	else
		got = id, rc = db_rule_update(id, &d);
	if (rc == -2)
		web_error(resp, 409, "a rule named %s exists already", d.name);
	else if (rc == -1)
		web_error(resp, 503, "the database refused the change; see the log");
	else if (rc == 1)
		web_error(resp, 404, "no rule %lld", id);
	else {
		d.id = got;
		web_json(resp, id == 0 ? 201 : 200, api_rule_saved(&d));
	}
	rule_def_clear(&d);
}

/* A saved rule as GET answers it, hits included; when the hits cannot be
 * read the save still stands, so the rule goes back without them. */
static json_t *
api_rule_saved(const struct rule_def *d)
{
	json_t *a = api_rules_read(d->id), *j;

	if (a == NULL || json_array_size(a) != 1) {
		json_decref(a);
		return api_rule_json(d);
	}
	j = json_incref(json_array_get(a, 0));
	json_decref(a);
	return j;
}

/* POST /api/rules/test: {"rule": {...}, "message": "raw"} or
 * {"rule": {...}, "quarantine_id": "ID"}; never saves anything. */
static void
api_rules_test(struct web_req *r, struct web_resp *resp)
{
	json_t *j = web_body_json(r, resp), *rule;
	const char *msg = NULL, *qid = NULL;
	struct rule_opts o = { 0 };
	struct rule_test_result res;
	struct rule_def d;
	char err[512], *raw = NULL;
	size_t len = 0;
	int rc;

	if (j == NULL)
		return;
	if (json_unpack(j, "{s:o, s?s, s?s}", "rule", &rule, "message", &msg,
	    "quarantine_id", &qid) == -1 || !json_is_object(rule)) {
		web_error(resp, 400, "send {\"rule\": {...}, \"message\": \"...\"} or "
		    "{\"rule\": {...}, \"quarantine_id\": \"...\"}");
		goto out;
	}
	if (api_rule_from_json(rule, &d, resp) == -1)
		goto out;
	if (msg != NULL)
		raw = xstrdup(msg), len = strlen(msg);
	else if (qid != NULL && (!api_quar_id_ok(qid) || db_quar_raw(qid, &raw, &len) != 0))
		raw = NULL;
	else if (qid == NULL)
		raw = xstrdup(""), len = 0;
	if (raw == NULL) {
		web_error(resp, 404, "no quarantined message %s", qid);
		rule_def_clear(&d);
		goto out;
	}
	o.match_limit = (unsigned long)r->conf->rules_match_limit;
	o.depth_limit = (unsigned long)r->conf->rules_depth_limit;
	o.jit = 1;
	d.enabled = 1;
	rc = rule_test(&d, raw, len, NULL, &o, &res, err, sizeof(err));
	if (rc == -1)
		web_error(resp, 400, "%s", err);
	else if (rc == 0)
		web_json(resp, 200, json_pack("{s:b}", "matched", 0));
	else
		web_json(resp, 200, json_pack("{s:b, s:s, s:I, s:I, s:s%}", "matched", 1,
		    "where", res.where, "offset", (json_int_t)res.off,
		    "length", (json_int_t)res.len, "excerpt", res.excerpt,
		    strnlen(res.excerpt, sizeof(res.excerpt))));
	rule_def_clear(&d);
	free(raw);
out:
	json_decref(j);
}

static void
api_rules(struct web_req *r, struct web_resp *resp, struct api_path *p)
{
	struct rule_def d;
	long long id = 0;
	char *end;
	json_t *j;
	int rc;

	if (p->n == 2 && strcmp(p->seg[1], "test") == 0 && api_is(r, "POST")) {
		api_rules_test(r, resp);
		return;
	}
	if (p->n == 2 && strcmp(p->seg[1], "validate") == 0 && api_is(r, "POST")) {
		if ((j = web_body_json(r, resp)) != NULL &&
		    api_rule_from_json(j, &d, resp) == 0) {
			rule_def_clear(&d);
			web_json(resp, 200, json_pack("{s:b}", "ok", 1));
		}
		json_decref(j);
		return;
	}
	if (p->n == 2) {
		errno = 0;
		id = strtoll(p->seg[1], &end, 10);
		if (*end != '\0' || errno || id < 1) {
			web_error(resp, 404, "no such rule");
			return;
		}
	}
	if (p->n > 2) {
		web_error(resp, 404, "no such endpoint");
		return;
	}
	if (p->n == 1 && api_is(r, "GET"))
		api_rules_list(resp);
	else if (p->n == 1 && api_is(r, "POST"))
		api_rules_save(r, resp, 0);
	else if (p->n == 2 && api_is(r, "GET"))
		api_rules_get(resp, id);
	else if (p->n == 2 && api_is(r, "PUT"))
		api_rules_save(r, resp, id);
	else if (p->n == 2 && api_is(r, "DELETE")) {
		if ((rc = db_rule_delete(id)) == -1)
			web_error(resp, 503, "the database refused the change; see the log");
		else if (rc == 1)
			web_error(resp, 404, "no rule %lld", id);
		else
			web_json(resp, 200, json_pack("{s:b}", "deleted", 1));
	} else
		web_error(resp, 405, "method not allowed here");
}

/* ------------------------------------------------------------ quarantine */

static int
api_quar_id_ok(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n > API_MAX_ID)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'A' && id[i] <= 'Z') ||
		    (id[i] >= 'a' && id[i] <= 'z') || id[i] == '-' || id[i] == '_'))
			return 0;
	return 1;
}

/* Release, delete, or delete as spam one message: 0 done, 1 not found, 2
 * not held (released already or being released), -1 failed (err says why). */
static int
api_quar_act(const struct web_req *r, const char *action, const char *id,
    char *err, size_t errsz)
{
	snprintf(err, errsz, "failed; see the log");
	if (strcmp(action, "release") == 0)
		return qsend_release(r->conf, id, r->user, err, errsz);
	if (strcmp(action, "spam") == 0)
		return quar_spam(r->conf, id, r->user, err, errsz);
	return db_quar_delete(id);
}

static void
api_quar_one(struct web_req *r, struct web_resp *resp, const char *action,
    const char *id)
{
	char err[256];
	int rc = api_quar_act(r, action, id, err, sizeof(err));

	if (rc == -1)
		web_error(resp, 502, "%s %s: %s", action, id, err);
	else if (rc == 1)
		web_error(resp, 404, "no quarantined message %s", id);
	else if (rc == 2)
		web_error(resp, 409, "message %s is %s", id, strcmp(action, "release") == 0 ?
		    "released already or being released" : "being released");
	else
		web_json(resp, 200, json_pack("{s:s, s:s}", "id", id, "done", action));
}

/* POST /api/quarantine/bulk {"action": "release"|"delete"|"spam", "ids": [...]}:
 * every id is tried; the answer lists each outcome. */
static void
api_quar_bulk(struct web_req *r, struct web_resp *resp)
{
	json_t *j = web_body_json(r, resp), *ids, *id, *out;
	const char *action = NULL;
	char err[256];
	size_t i;

	if (j == NULL)
		return;
	if (json_unpack(j, "{s:s, s:o}", "action", &action, "ids", &ids) == -1 ||
	    (strcmp(action, "release") != 0 && strcmp(action, "delete") != 0 &&
	    strcmp(action, "spam") != 0) ||
	    !json_is_array(ids) || json_array_size(ids) > API_MAX_BULK) {
		web_error(resp, 400, "send {\"action\": \"release\", \"delete\" or \"spam\", "
		    "\"ids\": [at most %d ids]}", API_MAX_BULK);
		json_decref(j);
		return;
	}
	out = json_array();
	json_array_foreach(ids, i, id) {
		const char *s = json_string_value(id);
		int rc = s && api_quar_id_ok(s) ? api_quar_act(r, action, s, err,
		    sizeof(err)) : 1;

		json_array_append_new(out, json_pack("{s:s, s:s}", "id", s ? s : "",
		    "result", rc == 0 ? "ok" : rc == 1 ? "not found" :
		    rc == 2 ? "not held" : err));
	}
	web_json(resp, 200, json_pack("{s:s, s:o}", "action", action, "results", out));
	json_decref(j);
}

/* GET /api/quarantine?q=&limit=&offset=&state=&since=&until=: newest first. */
static void
api_quar_list(struct web_req *r, struct web_resp *resp)
{
	struct db_quar_query qq = { 0 };
	long long off, since, until;
	json_t *j;

	if (api_limit(r, resp, &qq.limit) == -1 || api_query(r, resp, &qq.q) == -1 ||
	    api_arg_ll(r, resp, "offset", &off) == -1 ||
	    api_arg_ll(r, resp, "since", &since) == -1 ||
	    api_arg_ll(r, resp, "until", &until) == -1)
		return;
	qq.offset = off > 1000000 ? 1000000 : (int)off;
	qq.since = (time_t)since;
	qq.until = (time_t)until;
	qq.state = web_arg(r, "state");
	if (qq.state != NULL && strcmp(qq.state, "held") != 0 &&
	    strcmp(qq.state, "releasing") != 0 && strcmp(qq.state, "released") != 0) {
		web_error(resp, 400, "state must be held, releasing or released");
		return;
	}
	if ((j = rowjson_quar_list(&qq)) == NULL)
		web_error(resp, 503, "the database is not answering; see the log");
	else
		web_json(resp, 200, json_pack("{s:o}", "messages", j));
}

static void
api_quar_raw(struct web_resp *resp, const char *id)
{
	size_t len = 0;
	char *raw = NULL;
	int rc = db_quar_raw(id, &raw, &len);

	if (rc != 0) {
		web_error(resp, rc == 1 ? 404 : 503, rc == 1 ? "no quarantined message %s" :
		    "the database is not answering (%s); see the log", id);
		return;
	}
	resp->status = 200;
	/* text/plain + nosniff + attachment: a browser never renders it. */
	resp->ctype = "text/plain; charset=utf-8";
	resp->disposition = xasprintf("attachment; filename=\"%s.eml\"", id);
	resp->body = raw;
	resp->len = len;
}

static void
api_quarantine(struct web_req *r, struct web_resp *resp, struct api_path *p)
{
	const char *id = p->n >= 2 ? p->seg[1] : NULL;
	json_t *j;
	int found;

	if (id != NULL && strcmp(id, "bulk") == 0 && p->n == 2 && api_is(r, "POST")) {
		api_quar_bulk(r, resp);
		return;
	}
	if (id != NULL && !api_quar_id_ok(id)) {
		web_error(resp, 404, "no such message");
		return;
	}
	if (p->n == 1 && api_is(r, "GET")) {
		api_quar_list(r, resp);
	} else if (p->n == 2 && api_is(r, "GET")) {
		if ((j = rowjson_quar_get(id, &found)) != NULL)
			web_json(resp, 200, j);
		else
			web_error(resp, found ? 503 : 404, found ? "the database is not "
			    "answering (%s); see the log" : "no quarantined message %s", id);
	} else if (p->n == 2 && api_is(r, "DELETE"))
		api_quar_one(r, resp, "delete", id);
	else if (p->n == 3 && strcmp(p->seg[2], "raw") == 0 && api_is(r, "GET"))
		api_quar_raw(resp, id);
	else if (p->n == 3 && strcmp(p->seg[2], "release") == 0 && api_is(r, "POST"))
		api_quar_one(r, resp, "release", id);
	else if (p->n == 3 && strcmp(p->seg[2], "spam") == 0 && api_is(r, "POST"))
		api_quar_one(r, resp, "spam", id);
	else
		web_error(resp, 404, "no such endpoint");
}

/* ------------------------------------------------------------------ learn */

static int
api_learn_class(const char *s, enum bayes_class *cls)
{
	if (s != NULL && strcmp(s, "spam") == 0)
		*cls = BAYES_LEARN_SPAM;
	else if (s != NULL && strcmp(s, "ham") == 0)
		*cls = BAYES_LEARN_HAM;
	else if (s != NULL && strcmp(s, "forget") == 0)
		*cls = BAYES_FORGET;
	else
		return -1;
	return 0;
}

/* A message starts with a header field (RFC 5322 2.2: a name, then a
 * colon; names in real mail are letters, digits and dashes), after an
 * optional mbox "From " line: enough to turn away a JSON document or a
 * form sent as message/rfc822 by mistake. */
static int
api_looks_like_message(const char *m, size_t len)
{
	const char *nl;
	size_t i;

	if (len >= 5 && memcmp(m, "From ", 5) == 0 && (nl = memchr(m, '\n', len)) != NULL) {
		len -= (size_t)(nl + 1 - m);
		m = nl + 1;
	}
	for (i = 0; i < len && (isalnum((unsigned char)m[i]) || m[i] == '-' || m[i] == '_'); i++)
		;
	return i > 0 && i < len && m[i] == ':';
}

/* Learn raw (a quarantined message id, or NULL for an upload) and answer. */
static void
api_learn_reply(struct web_req *r, struct web_resp *resp, const char *raw,
    size_t len, enum bayes_class cls, const char *id)
{
	static const char *const names[] = { "ham", "spam", "forget" };
	struct bayes_learned l;

	if (bayes_learn(r->conf, raw, len, cls, &l) == -1) {
		web_error(resp, 503, "the database refused the change; see the log");
		return;
	}
	log_info("web: %s learned %s%s as %s%s", r->user, id ? "quarantined message " :
	    "an upload", id ? id : "", names[cls], l.changed ? "" : " (no change)");
	web_json(resp, 200, json_pack("{s:b, s:s, s:s?, s:o, s:b, s:i}", "ok", 1,
	    "class", names[cls], "id", id,
	    "was", l.was < 0 ? json_null() : json_string(names[l.was]),
	    "changed", l.changed, "tokens", l.ntokens));
}

/* {"id": "ID", "class": "spam"|"ham"|"forget"}: the message stays where
 * it is (held or released); only the classifier learns. */
static void
api_learn_quar(struct web_req *r, struct web_resp *resp)
{
	json_t *j = web_body_json(r, resp), *jid = NULL;
	const char *cname = NULL;
	enum bayes_class cls;
	char id[API_MAX_ID + 1], *raw = NULL;
	size_t len;
	int rc;

	if (j == NULL)
		return;
	if (json_unpack(j, "{s:o, s:s}", "id", &jid, "class", &cname) == -1)
		web_error(resp, 400, "send {\"id\": quarantine id, \"class\": \"spam\", "
		    "\"ham\" or \"forget\"}");
	else if (api_learn_class(cname, &cls) == -1)
		web_error(resp, 400, "class must be spam, ham or forget");
	else if (!(json_is_string(jid) && snprintf(id, sizeof(id), "%s",
	    json_string_value(jid)) < (int)sizeof(id)) &&
	    !(json_is_integer(jid) && snprintf(id, sizeof(id), "%lld",
	    (long long)json_integer_value(jid)) > 0))
		web_error(resp, 400, "id must be a quarantine id");
	else if (!api_quar_id_ok(id))
		web_error(resp, 400, "id must be 1 to %d letters, digits, - or _", API_MAX_ID);
	else if ((rc = db_quar_raw(id, &raw, &len)) != 0)
		web_error(resp, rc == 1 ? 404 : 503, rc == 1 ? "no quarantined message %s" :
		    "the database is not answering (%s); see the log", id);
	else
		api_learn_reply(r, resp, raw, len, cls, id);
	free(raw);
	json_decref(j);
}

/* A message/rfc822 body, ?class=: bounded by proxy.max_message_size (and
 * by WEB_MAX_BODY, which web.c enforces before we get here). */
static void
api_learn_upload(struct web_req *r, struct web_resp *resp)
{
	enum bayes_class cls;

	if (api_learn_class(web_arg(r, "class"), &cls) == -1)
		web_error(resp, 400, "class must be spam, ham or forget (?class=)");
	else if (r->body == NULL || r->len == 0)
		web_error(resp, 400, "the body is empty: send the message");
	else if ((long long)r->len > r->conf->max_message_size)
		web_error(resp, 413, "the message is larger than proxy.max_message_size "
		    "(%lld bytes)", r->conf->max_message_size);
	else if (!api_looks_like_message(r->body, r->len))
		web_error(resp, 400, "the body is not a message: it must start with a "
		    "header field");
	else
		api_learn_reply(r, resp, r->body, r->len, cls, NULL);
}

/* POST /api/learn: application/json names a quarantined message;
 * message/rfc822 uploads one. */
static void
api_learn(struct web_req *r, struct web_resp *resp)
{
	if (!api_is(r, "POST"))
		web_error(resp, 405, "POST only");
	else if (web_ctype_is(r, "message/rfc822"))
		api_learn_upload(r, resp);
	else if (web_ctype_is(r, "application/json"))
		api_learn_quar(r, resp);
	else
		web_error(resp, 415, "Content-Type must be application/json (a quarantine "
		    "id) or message/rfc822 (a message)");
}
