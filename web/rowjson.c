/*
 * rowjson.c -- the API's JSON for db/'s typed rows (see rowjson.h): one
 * builder per row type, each called from a db_*_each() callback.
 */
#include "web/rowjson.h"
#include "db/db.h"
#include "lib/utf8.h"
#include "lib/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static json_t	*rowjson_int(long long);
static json_t	*rowjson_real(double);
static json_t	*rowjson_strv(const char *const *, int);
static json_t	*rowjson_checks(const struct db_check *, int, int null_reason);
static int	 rowjson_verdict(void *, const struct db_verdict_row *);
static int	 rowjson_stat(void *, const struct db_stat_row *);
static int	 rowjson_grey(void *, const struct db_grey_entry *);
static int	 rowjson_grey_auto(void *, const struct db_grey_auto *);
static int	 rowjson_quar(void *, const struct db_quar_row *);
static json_t	*rowjson_quar_obj(const struct db_quar_row *);
static int	 rowjson_quar_one(void *, const struct db_quar_row *);
static void	 rowjson_env(json_t *, time_t, const char *const txt[5],
		    const char *const *rcpts, int nrcpts);
static json_t	*rowjson_done(json_t *, int rc);

/* json_string() refuses invalid UTF-8, which would drop the value; each
 * byte that does not start a valid sequence becomes U+FFFD instead. */
json_t *
rowjson_str(const char *s)
{
	json_t *j = json_string(s ? s : "");
	char *mended;

	if (j != NULL)
		return j;
	mended = utf8_mend(s);
	j = json_string(mended ? mended : "");
	free(mended);
	return j ? j : json_string("");
}

static json_t *
rowjson_int(long long v)
{
	return json_integer((json_int_t)v);
}

/* A number JSON cannot carry (NaN, infinity) is null, as stored. */
static json_t *
rowjson_real(double v)
{
	return isfinite(v) ? json_real(v) : json_null();
}

static json_t *
rowjson_strv(const char *const *v, int n)
{
	json_t *a = json_array();

	for (int i = 0; i < n; i++)
		json_array_append_new(a, rowjson_str(v[i]));
	return a;
}

/* [{"check","result","score","reason"}]: a verdict's checks leave out a
 * missing reason, a quarantined message's reasons say null. */
static json_t *
rowjson_checks(const struct db_check *ck, int n, int null_reason)
{
	json_t *a = json_array();

	for (int i = 0; i < n; i++) {
		json_t *o = json_object();

		json_object_set_new(o, "check", rowjson_str(ck[i].check));
		json_object_set_new(o, "result", rowjson_str(ck[i].result));
		json_object_set_new(o, "score", rowjson_real(ck[i].score));
		if (ck[i].reason != NULL)
			json_object_set_new(o, "reason", rowjson_str(ck[i].reason));
		else if (null_reason)
			json_object_set_new(o, "reason", json_null());
		json_array_append_new(a, o);
	}
	return a;
}

/* What a verdict and a quarantined message share, in the API's order:
 * "ts", then txt as "sid", "client_ip", "client_name", "helo",
 * "mail_from", then "rcpts". */
static void
rowjson_env(json_t *o, time_t ts, const char *const txt[5],
    const char *const *rcpts, int nrcpts)
{
	static const char *const key[5] = { "sid", "client_ip", "client_name",
	    "helo", "mail_from" };

	json_object_set_new(o, "ts", rowjson_int(ts));
	for (int i = 0; i < 5; i++)
		json_object_set_new(o, key[i], rowjson_str(txt[i]));
	json_object_set_new(o, "rcpts", rowjson_strv(rcpts, nrcpts));
}

/* The collected value, or NULL (freed) when the read failed. */
static json_t *
rowjson_done(json_t *j, int rc)
{
	if (rc == 0)
		return j;
	json_decref(j);
	return NULL;
}

/* ------------------------------------------------------------ verdicts */

static int
rowjson_verdict(void *arg, const struct db_verdict_row *r)
{
	const struct db_verdict *v = &r->v;
	json_t *o = json_object();

	json_object_set_new(o, "id", rowjson_int(r->id));
	rowjson_env(o, v->ts, (const char *const []){ v->sid, v->client_ip,
	    v->client_name, v->helo, v->mail_from }, v->rcpts, v->nrcpts);
	json_object_set_new(o, "size", rowjson_int((long long)v->size));
	json_object_set_new(o, "msgid", rowjson_str(v->msgid));
	json_object_set_new(o, "subject", rowjson_str(v->subject));
	json_object_set_new(o, "checks", rowjson_checks(v->checks, v->nchecks, 0));
	json_object_set_new(o, "score", rowjson_real(v->score));
	json_object_set_new(o, "verdict", rowjson_str(v->verdict));
	json_object_set_new(o, "reply", rowjson_str(v->reply));
	json_object_set_new(o, "outcome", rowjson_str(v->outcome));
	json_object_set_new(o, "stage", rowjson_str(v->stage));
	/* the old name stays beside the new one */
	json_object_set_new(o, "mta_reply", rowjson_str(v->mta_reply));
	json_object_set_new(o, "backend_reply", rowjson_str(v->mta_reply));
	json_object_set_new(o, "ms", rowjson_int((long long)v->ms));
	json_array_append_new(arg, o);
	return 0;
}

json_t *
rowjson_verdicts(int limit, long long before, const char *q)
{
	json_t *a = json_array();

	return rowjson_done(a, db_verdict_each(limit, before, q, rowjson_verdict, a));
}

/* --------------------------------------------------------------- stats */

static int
rowjson_stat(void *arg, const struct db_stat_row *r)
{
	json_t *m = json_object_get(arg, "minutes"), *tot = json_object_get(arg, "totals");
	json_t *name = rowjson_str(r->name);
	const char *key = json_string_value(name);

	json_array_append_new(m, json_pack("{s:I, s:o, s:I}", "minute",
	    (json_int_t)r->minute, "name", name, "n", (json_int_t)r->n));
	json_object_set_new(tot, key, json_integer(
	    json_integer_value(json_object_get(tot, key)) + (json_int_t)r->n));
	return 0;
}

json_t *
rowjson_stats(time_t since)
{
	json_t *s = json_pack("{s:[], s:{}}", "minutes", "totals");

	return rowjson_done(s, db_stat_each(since, rowjson_stat, s));
}

/* ------------------------------------------------------------ greylist */

struct rowjson_grey_arg {
	json_t		*a;
	long long	 delay;
};

/* state and reason: why a triplet not yet passed is deferred (one attempt:
 * a new triplet; more: retries too early), and when a retry will pass. */
static int
rowjson_grey(void *arg, const struct db_grey_entry *g)
{
	struct rowjson_grey_arg *ga = arg;
	const char *state = g->passed ? "passed" : g->attempts > 1 ? "early" : "new";
	const char *reason = g->passed ? "passed" : g->attempts > 1 ?
	    "retry too early" : "new triplet";

	json_array_append_new(ga->a, json_pack("{s:o, s:o, s:o, s:I, s:I, s:i, s:i,"
	    " s:s, s:s, s:o}",
	    "net", rowjson_str(g->net), "sender", rowjson_str(g->sender),
	    "rcpt", rowjson_str(g->rcpt), "first_seen", (json_int_t)g->first_seen,
	    "last_seen", (json_int_t)g->last_seen, "passed", g->passed,
	    "attempts", g->attempts, "state", state, "reason", reason,
	    "pass_at", g->passed ? json_null() :
	    json_integer((json_int_t)(g->first_seen + ga->delay))));
	return 0;
}

static int
rowjson_grey_auto(void *arg, const struct db_grey_auto *a)
{
	json_array_append_new(arg, json_pack("{s:o, s:i, s:I}",
	    "net", rowjson_str(a->net), "passes", a->passes,
	    "last_seen", (json_int_t)a->last_seen));
	return 0;
}

json_t *
rowjson_greylist(int limit, long long delay)
{
	json_t *t = json_array(), *a = json_array();
	struct rowjson_grey_arg ga = { t, delay };

	if ((t = rowjson_done(t, db_grey_each(limit, rowjson_grey, &ga))) == NULL) {
		json_decref(a);
		return NULL;
	}
	if ((a = rowjson_done(a, db_grey_auto_each(limit, rowjson_grey_auto, a))) == NULL) {
		json_decref(t);
		return NULL;
	}
	return json_pack("{s:o, s:o}", "triplets", t, "auto", a);
}

/* ---------------------------------------------------------- quarantine */

static json_t *
rowjson_quar_obj(const struct db_quar_row *r)
{
	const struct db_quar *q = &r->q;
	json_t *o = json_object();

	json_object_set_new(o, "id", rowjson_str(q->id));
	rowjson_env(o, q->ts, (const char *const []){ q->sid, q->client_ip,
	    q->client_name, q->helo, q->mail_from }, q->rcpts, q->nrcpts);
	json_object_set_new(o, "subject", rowjson_str(q->subject));
	json_object_set_new(o, "msgid", rowjson_str(q->msgid));
	json_object_set_new(o, "score", rowjson_real(q->score));
	json_object_set_new(o, "reasons", rowjson_checks(q->reasons, q->nreasons, 1));
	json_object_set_new(o, "size", rowjson_int((long long)q->len));
	json_object_set_new(o, "state", rowjson_str(r->state));
	json_object_set_new(o, "released_at", r->released_at != 0 ?
	    rowjson_int(r->released_at) : json_null());
	json_object_set_new(o, "released_by", r->released_by != NULL ?
	    rowjson_str(r->released_by) : json_null());
	return o;
}

static int
rowjson_quar(void *arg, const struct db_quar_row *r)
{
	json_array_append_new(arg, rowjson_quar_obj(r));
	return 0;
}

json_t *
rowjson_quar_list(const struct db_quar_query *q)
{
	json_t *a = json_array();

	return rowjson_done(a, db_quar_each(q, rowjson_quar, a));
}

static int
rowjson_quar_one(void *arg, const struct db_quar_row *r)
{
	*(json_t **)arg = rowjson_quar_obj(r);
	return 0;
}

json_t *
rowjson_quar_get(const char *id, int *found)
{
	json_t *o = NULL;
	int rc = db_quar_get(id, rowjson_quar_one, &o);

	*found = rc != 1;
	return rc == 0 ? o : NULL;
}

/* ----------------------------------------------------------- rule hits */

struct rowjson_hits {
	json_t		*by;		/* name -> daily array */
	long long	 first;		/* the day of daily[0] */
};

static json_t *
rowjson_zero_days(void)
{
	json_t *a = json_array();

	for (int i = 0; i < ROWJSON_HIT_DAYS; i++)
		json_array_append_new(a, json_integer(0));
	return a;
}

static int
rowjson_hit_day(void *arg, const struct db_rule_hit *h)
{
	struct rowjson_hits *t = arg;
	json_t *days = json_object_get(t->by, h->name);
	long long i = h->day - t->first;

	if (i < 0 || i >= ROWJSON_HIT_DAYS)
		return 0;
	if (days == NULL) {
		days = rowjson_zero_days();
		json_object_set_new(t->by, h->name, days);
	}
	json_array_set_new(days, (size_t)i, json_integer(h->n));
	return 0;
}

/* {"today","days7","days30","daily"} of a daily array (a reference taken). */
static json_t *
rowjson_hit_sums(json_t *days)
{
	json_int_t today = 0, d7 = 0, d30 = 0, n;

	for (int i = 0; i < ROWJSON_HIT_DAYS; i++) {
		n = json_integer_value(json_array_get(days, (size_t)i));
		d30 += n;
		if (i >= ROWJSON_HIT_DAYS - 7)
			d7 += n;
		if (i == ROWJSON_HIT_DAYS - 1)
			today = n;
	}
	return json_pack("{s:I, s:I, s:I, s:O}", "today", today, "days7", d7,
	    "days30", d30, "daily", days);
}

json_t *
rowjson_rule_hits(time_t now)
{
	struct rowjson_hits t = {
		.by = json_object(),
		.first = (long long)(now / DB_DAY) - (ROWJSON_HIT_DAYS - 1),
	};
	json_t *out, *days;
	const char *name;

	if ((t.by = rowjson_done(t.by, db_rule_hit_each(t.first,
	    rowjson_hit_day, &t))) == NULL)
		return NULL;
	out = json_object();
	json_object_foreach(t.by, name, days)
		json_object_set_new(out, name, rowjson_hit_sums(days));
	json_decref(t.by);
	return out;
}

json_t *
rowjson_rule_hit(json_t *hits, const char *name)
{
	json_t *h = hits != NULL ? json_object_get(hits, name) : NULL, *z;

	if (h != NULL)
		return json_incref(h);
	z = rowjson_zero_days();
	h = rowjson_hit_sums(z);
	json_decref(z);
	return h;
}
