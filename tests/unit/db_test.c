/* db_test.c -- db/: migrations, the writer queue, reads, and a locked
 * database (another connection holding BEGIN EXCLUSIVE). */
#include "t.h"
#include "meta_db.h"
#include "rate_db.h"
#include "bayes_db.h"
#include "edit_db.h"
#include "dbrows.h"
#include "lib/conf.h"
#include "db/db.h"
#include "web/rowjson.h"
#include "lib/util.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <unistd.h>

static char dir[] = "/tmp/postern-dbtest-XXXXXX";
static char path[256];
static struct conf *c;
static long long stat_total(const char *);

/* step for the tests: count calls in the row's passed field. */
static int
step_count(struct db_grey_row *r, time_t now, void *arg, int *count_pass)
{
	(void)arg;
	if (!r->found)
		r->first_seen = now;
	r->last_seen = now;
	r->passed++;
	*count_pass = 1;
	return r->found ? 2 : 1;
}

static int
count_rows(const char *table)
{
	return dbrows_count(path, table);
}

T_CASE(open_migrates)
{
	T_EQ_INT(db_open(c, 1), 0);
	T_ASSERT(db_schema_version() >= 2);	/* 2: rules and quarantine; later steps append */
	T_EQ_INT(db_ok(), 1);
}

T_CASE(verdict_roundtrip)
{
	const char *rc[] = { "a@example.org", "b@example.org" };
	struct db_check ck[] = { { "rbl", "listed", "client listed at bl.test", 5 },
	    { "spf", "pass", NULL, -0.5 } };
	struct db_verdict v = { .ts = time_wall(), .sid = "ABC", .client_ip = "192.0.2.1",
	    .client_name = "unknown", .helo = "h.test", .mail_from = "s@test",
	    .rcpts = rc, .nrcpts = 2, .size = 123, .msgid = "<m@x>", .subject = "Hello",
	    .checks = ck, .nchecks = 2, .score = 4.5, .verdict = "tag",
	    .reply = "", .outcome = "accept", .stage = "end-of-data",
	    .mta_reply = "250 2.0.0 queued", .ms = 12 };

	db_verdict_add(&v);
	v.sid = "DEF";
	v.verdict = "reject";
	v.outcome = "backend-reject";
	v.stage = "rcpt";
	v.mta_reply = "550 5.1.1 <a@example.org>: no such user";
	v.subject = "Other";
	db_verdict_add(&v);
	T_EQ_INT(db_flush(5000), 0);
	struct dbrows r;
	T_EQ_INT(dbrows_verdicts(10, 0, NULL, &r), 0);
	T_EQ_INT(r.n, 2);
	/* newest first, every field typed as it was added */
	T_EQ_STR(r.text, "DEF|reject|backend-reject|rcpt|550 5.1.1 <a@example.org>: no such"
	    " user||Other|h.test|123|4.5|12|rcpts:a@example.org,b@example.org"
	    "|checks:rbl/listed/client listed at bl.test/5;spf/pass/-/-0.5;");
	long long id = r.id;
	T_EQ_INT(dbrows_verdicts(10, id, NULL, &r), 0);
	T_EQ_INT(r.n, 1);
	T_ASSERT(strncmp(r.text, "ABC|tag|accept|end-of-data|250 2.0.0 queued|", 44) == 0);
	T_ASSERT(r.id < id);
	T_EQ_INT(dbrows_verdicts(10, 0, "oTHer", &r), 0);
	T_EQ_INT(r.n, 1);
	T_EQ_INT(dbrows_verdicts(10, 0, "backend-rej", &r), 0);	/* the outcome is searched too */
	T_EQ_INT(r.n, 1);
	T_EQ_INT(stat_total("outcome:backend-reject"), 1);
	T_EQ_INT(stat_total("outcome:accept"), 1);
	T_EQ_INT(dbrows_verdicts(10, 0, "nothing-like-this", &r), 0);
	T_EQ_INT(r.n, 0);
	T_EQ_INT(dbrows_verdicts(1, 0, NULL, &r), 0);	/* limit */
	T_EQ_INT(r.n, 1);
	/* the API's JSON of that row: its keys in order, its values typed */
	json_t *a = rowjson_verdicts(1, 0, NULL);
	char *got = json_dumps(json_array_get(a, 0), JSON_COMPACT), want[1024];
	snprintf(want, sizeof(want), "{\"id\":%lld,\"ts\":%lld,\"sid\":\"DEF\","
	    "\"client_ip\":\"192.0.2.1\",\"client_name\":\"unknown\",\"helo\":\"h.test\","
	    "\"mail_from\":\"s@test\",\"rcpts\":[\"a@example.org\",\"b@example.org\"],"
	    "\"size\":123,\"msgid\":\"<m@x>\",\"subject\":\"Other\",\"checks\":["
	    "{\"check\":\"rbl\",\"result\":\"listed\",\"score\":5.0,"
	    "\"reason\":\"client listed at bl.test\"},"
	    "{\"check\":\"spf\",\"result\":\"pass\",\"score\":-0.5}],"
	    "\"score\":4.5,\"verdict\":\"reject\",\"reply\":\"\",\"outcome\":\"backend-reject\","
	    "\"stage\":\"rcpt\",\"mta_reply\":\"550 5.1.1 <a@example.org>: no such user\","
	    "\"backend_reply\":\"550 5.1.1 <a@example.org>: no such user\",\"ms\":12}",
	    id, (long long)v.ts);
	T_EQ_STR(got, want);
	free(got);
	json_decref(a);
}

/* fn's non-zero answer stops the walk and comes back. */
static int
stop_at_first(void *arg, const struct db_verdict_row *r)
{
	(*(int *)arg)++;
	(void)r;
	return 7;
}

T_CASE(verdict_each_stops)
{
	int calls = 0;

	T_EQ_INT(db_verdict_each(10, 0, NULL, stop_at_first, &calls), 7);
	T_EQ_INT(calls, 1);
}

/* Attacker-written text that is not UTF-8 (a raw 8-bit Subject, a HELO
 * with a stray byte) keeps its place in the log, with U+FFFD for the bad
 * bytes: JSON cannot carry it as is, and dropping it would hide evidence. */
T_CASE(verdict_invalid_utf8_kept)
{
	const char *rc[] = { "x\xff@example.org" };
	struct db_check ck[] = { { "rule", "match", "helo h\xc3(.test", 1 } };
	struct db_verdict v = { .ts = time_wall(), .sid = "UTF8BAD", .client_ip = "192.0.2.9",
	    .client_name = "unknown", .helo = "h\xc3(.test", .mail_from = "s@test",
	    .rcpts = rc, .nrcpts = 1, .size = 1, .msgid = "<u@x>",
	    .subject = "caf\xe9 \xe2\x82\xac ok", .checks = ck, .nchecks = 1, .score = 1,
	    .verdict = "accept", .reply = "250", .mta_reply = "250", .ms = 1 };
	struct dbrows r;

	db_verdict_add(&v);
	T_EQ_INT(db_flush(5000), 0);
	T_EQ_INT(dbrows_verdicts(1, 0, NULL, &r), 0);	/* the newest */
	/* plain columns come back byte for byte; the JSON columns mended */
	T_EQ_STR(r.text, "UTF8BAD|accept|||250|250|caf\xe9 \xe2\x82\xac ok|h\xc3(.test|1|1|1"
	    "|rcpts:x\xef\xbf\xbd@example.org|checks:rule/match/helo h\xef\xbf\xbd(.test/1;");
	/* and the API's JSON mends the rest the same way */
	json_t *a = rowjson_verdicts(1, 0, NULL), *row = json_array_get(a, 0);
	T_EQ_STR(json_string_value(json_object_get(row, "subject")),
	    "caf\xef\xbf\xbd \xe2\x82\xac ok");
	T_EQ_STR(json_string_value(json_object_get(row, "helo")), "h\xef\xbf\xbd(.test");
	T_EQ_STR(json_string_value(json_array_get(json_object_get(row, "rcpts"), 0)),
	    "x\xef\xbf\xbd@example.org");
	T_EQ_STR(json_string_value(json_object_get(json_array_get(
	    json_object_get(row, "checks"), 0), "reason")), "helo h\xef\xbf\xbd(.test");
	json_decref(a);
}

/* A counter's total over the last hour (0 when absent, -1 on error). */
struct stat_sum {
	const char	*name;
	long long	 n;
	time_t		 last_minute;
	int		 ordered;	/* rows came by minute */
};

static int
stat_sum_row(void *arg, const struct db_stat_row *r)
{
	struct stat_sum *s = arg;

	if (r->minute < s->last_minute || r->minute % 60 != 0)
		s->ordered = 0;
	s->last_minute = r->minute;
	if (strcmp(r->name, s->name) == 0)
		s->n += r->n;
	return 0;
}

static long long
stat_total(const char *name)
{
	struct stat_sum s = { name, 0, 0, 1 };

	if (db_stat_each(time_wall() - 3600, stat_sum_row, &s) != 0 || !s.ordered)
		return -1;
	return s.n;
}

/* One text column of the newest verdict row, read on a connection of our
 * own (xmalloc'd, NULL when unreadable). */
static char *
newest_column(const char *col)
{
	sqlite3 *h;
	sqlite3_stmt *st = NULL;
	char sql[128], *out = NULL;

	snprintf(sql, sizeof(sql), "SELECT %s FROM verdicts ORDER BY id DESC LIMIT 1", col);
	if (sqlite3_open(path, &h) != SQLITE_OK)
		return NULL;
	if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		out = xstrdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(h);
	return out;
}

/* The rcpts and checks columns are written by hand (db/jsonw.c) but hold
 * exactly the text jansson printed before: the same json_pack objects,
 * dumped compact. The counters come out under the same names. */
T_CASE(verdict_json_text_as_jansson)
{
	const char *rc[] = { "\"q\\uote\"@example.org", "caf\xc3\xa9@\xe2\x82\xac.test", "" };
	struct db_check ck[] = {
		{ "spf", "pass", "ok /path\t\x01", 0 },
		{ "rule", "jt", NULL, 2.5 },
		{ "rbl", "jt", "\\\"", -0.1 },
		{ "dkim", "x", "", 1e20 },
	};
	struct db_verdict v = { .ts = time_wall(), .sid = "JSONTEXT", .client_ip = "192.0.2.7",
	    .client_name = "unknown", .helo = "h.test", .mail_from = "s@test",
	    .rcpts = rc, .nrcpts = 3, .size = 1, .msgid = "<j@x>", .subject = "S",
	    .checks = ck, .nchecks = 4, .score = 2.5, .verdict = "quarantine",
	    .reply = "250", .mta_reply = "", .ms = 1 };
	json_t *jr = json_array(), *jc = json_array();
	char *want_r, *want_c, *got;

	for (int i = 0; i < v.nrcpts; i++)
		json_array_append_new(jr, json_string(rc[i]));
	for (int i = 0; i < v.nchecks; i++) {
		json_t *o = json_pack("{s:s, s:s, s:f}", "check", ck[i].check,
		    "result", ck[i].result, "score", ck[i].score);
		if (ck[i].reason != NULL)
			json_object_set_new(o, "reason", json_string(ck[i].reason));
		json_array_append_new(jc, o);
	}
	want_r = json_dumps(jr, JSON_COMPACT);
	want_c = json_dumps(jc, JSON_COMPACT);
	json_decref(jr);
	json_decref(jc);
	db_verdict_add(&v);
	T_EQ_INT(db_flush(5000), 0);
	got = newest_column("rcpts");
	T_EQ_STR(got, want_r);
	free(got);
	got = newest_column("checks");
	T_EQ_STR(got, want_c);
	free(got);
	got = newest_column("backend_reply");
	T_EQ_STR(got, "");
	free(got);
	got = newest_column("sid || '|' || helo || '|' || verdict || '|' || msgid");
	T_EQ_STR(got, "JSONTEXT|h.test|quarantine|<j@x>");
	free(got);
	free(want_r);
	free(want_c);
	/* and they read back as the typed values that went in */
	struct dbrows r;
	T_EQ_INT(dbrows_verdicts(1, 0, NULL, &r), 0);
	T_ASSERT(strstr(r.text, "|rcpts:\"q\\uote\"@example.org,caf\xc3\xa9@\xe2\x82\xac.test,"
	    "|checks:spf/pass/ok /path\t\x01/0;rule/jt/-/2.5;rbl/jt/\\\"/-0.1;dkim/x//1e+20;")
	    != NULL);
	T_EQ_INT(stat_total("verdict:quarantine"), 1);
	T_EQ_INT(stat_total("check:rule:jt"), 1);
	T_EQ_INT(stat_total("check:rbl:jt"), 1);
	T_EQ_INT(stat_total("check:dkim:x"), 1);
}

/* A quarantined message: recipients and reasons go in and come out as
 * typed arrays; a claim hands the envelope over as one; the API's JSON
 * keeps its keys, in order, with "reason": null and the release fields. */
T_CASE(quar_typed_roundtrip)
{
	const char *rc[] = { "a@example.org", "b@example.org" };
	struct db_check why[] = { { "rule", "match", "viagra", 7 },
	    { "spf", "fail", NULL, 1.5 } };
	struct db_quar q = { .id = "0123456789ab", .ts = 1700000000, .sid = "QS",
	    .client_ip = "192.0.2.5", .client_name = "unknown", .helo = "h.test",
	    .mail_from = "s@test", .rcpts = rc, .nrcpts = 2, .subject = "Buy",
	    .msgid = "<q@x>", .score = 8.5, .reasons = why, .nreasons = 2,
	    .raw = "Subject: Buy\r\n\r\nbody\r\n", .len = 22 };
	struct db_quar_claimed cl;
	struct dbrows r;
	int found;

	T_EQ_INT(db_quar_add(&q, 1 << 20), 0);
	T_EQ_INT(dbrows_quar_get(q.id, &r), 0);
	T_EQ_STR(r.text, "0123456789ab|s@test|held|Buy|22|8.5|-|rcpts:a@example.org,"
	    "b@example.org|checks:rule/match/viagra/7;spf/fail/-/1.5;");
	T_EQ_INT(dbrows_quar_get("ffffffffffff", &r), 1);
	T_EQ_INT(r.n, 0);
	T_EQ_INT(dbrows_quar(&(struct db_quar_query){ .reason = "VIAGRA" }, &r), 0);
	T_EQ_INT(r.n, 1);
	T_EQ_INT(dbrows_quar(&(struct db_quar_query){ .state = "released" }, &r), 0);
	T_EQ_INT(r.n, 0);
	T_EQ_INT(db_quar_claim(q.id, &cl), 0);
	T_EQ_STR(cl.mail_from, "s@test");
	T_EQ_INT(cl.nrcpts, 2);
	T_EQ_STR(cl.rcpts[1], "b@example.org");
	T_EQ_INT(cl.len, 22);
	T_ASSERT(memcmp(cl.raw, q.raw, 22) == 0);
	db_quar_claimed_free(&cl);
	T_EQ_INT(db_quar_claim(q.id, &cl), 2);	/* a second click */
	T_ASSERT(cl.rcpts == NULL && cl.raw == NULL);
	T_EQ_INT(db_quar_claim("ffffffffffff", &cl), 1);
	T_EQ_INT(db_quar_finish(q.id, 1, "admin", 1700000100), 0);
	json_t *o = rowjson_quar_get(q.id, &found);
	char *text = json_dumps(o, JSON_COMPACT);
	T_EQ_INT(found, 1);
	T_EQ_STR(text, "{\"id\":\"0123456789ab\",\"ts\":1700000000,\"sid\":\"QS\","
	    "\"client_ip\":\"192.0.2.5\",\"client_name\":\"unknown\",\"helo\":\"h.test\","
	    "\"mail_from\":\"s@test\",\"rcpts\":[\"a@example.org\",\"b@example.org\"],"
	    "\"subject\":\"Buy\",\"msgid\":\"<q@x>\",\"score\":8.5,\"reasons\":["
	    "{\"check\":\"rule\",\"result\":\"match\",\"score\":7.0,\"reason\":\"viagra\"},"
	    "{\"check\":\"spf\",\"result\":\"fail\",\"score\":1.5,\"reason\":null}],"
	    "\"size\":22,\"state\":\"released\",\"released_at\":1700000100,"
	    "\"released_by\":\"admin\"}");
	free(text);
	json_decref(o);
	T_ASSERT(rowjson_quar_get("ffffffffffff", &found) == NULL && found == 0);
	T_EQ_INT(db_quar_delete(q.id), 0);
}

T_CASE(stats_by_minute)
{
	db_stat_add("session", time_wall(), 3);
	T_EQ_INT(db_flush(5000), 0);
	T_EQ_INT(stat_total("verdict:tag"), 1);
	T_EQ_INT(stat_total("verdict:reject"), 1);
	T_EQ_INT(stat_total("check:rbl:listed"), 2);
	T_EQ_INT(stat_total("session"), 3);
}

/* "name@day-offset=n;" per row, days relative to *(long long *)arg's day. */
struct hitlog {
	long long day;
	char	 s[256];
};

static int
collect_hit(void *arg, const struct db_rule_hit *h)
{
	struct hitlog *l = arg;
	size_t n = strlen(l->s);

	snprintf(l->s + n, sizeof(l->s) - n, "%s@%lld=%lld;", h->name, h->day - l->day, h->n);
	return 0;
}

/* A verdict's rule checks that name a rule count one hit each per UTC day
 * (log-only too), the "N more rules" sum and other checks none; pruned
 * 31 days past the verdict log's age. */
T_CASE(rule_hits_counted)
{
	time_t now = time_wall();
	struct db_check ck[] = { { "rule", "match", "a", 1 },
	    { "rule", "log-only", "b", 0 }, { "rule", "match", "3 more rules", 2 },
	    { "rbl", "listed", "c", 5 } };
	struct db_verdict v = { .ts = now, .sid = "H1", .client_ip = "192.0.2.9",
	    .checks = ck, .nchecks = 4, .verdict = "accept", .outcome = "accept" };
	struct hitlog l = { .day = now / DB_DAY };
	json_t *hits;

	db_verdict_add(&v);
	db_verdict_add(&v);
	v.ts = now - DB_DAY;
	v.nchecks = 1;
	db_verdict_add(&v);
	T_EQ_INT(db_flush(5000), 0);
	T_EQ_INT(db_rule_hit_each(l.day - 1, collect_hit, &l), 0);
	T_EQ_STR(l.s, "a@-1=1;a@0=2;b@0=2;");
	l.s[0] = '\0';
	T_EQ_INT(db_rule_hit_each(l.day, collect_hit, &l), 0);
	T_EQ_STR(l.s, "a@0=2;b@0=2;");
	hits = rowjson_rule_hits(now);
	T_ASSERT(hits != NULL);
	T_EQ_INT(json_integer_value(json_object_get(json_object_get(hits, "a"), "today")), 2);
	T_EQ_INT(json_integer_value(json_object_get(json_object_get(hits, "a"), "days7")), 3);
	T_EQ_INT(json_array_size(json_object_get(json_object_get(hits, "a"), "daily")), 30);
	T_ASSERT(json_object_get(hits, "c") == NULL);
	json_decref(hits);
	/* a day is gone once it is more than 31 days past verdict_max_age (30 days) */
	T_EQ_INT(db_prune(now + 61 * DB_DAY), 0);
	T_EQ_INT(count_rows("rule_hits"), 2);	/* today's a and b */
	T_EQ_INT(db_prune(now + 62 * DB_DAY), 0);
	T_EQ_INT(count_rows("rule_hits"), 0);
}

static int
collect(void *arg, const struct db_access *e)
{
	char *buf = arg;
	size_t l = strlen(buf);

	snprintf(buf + l, 256 - l, "%s/%s/%s;", e->list, e->kind, e->value);
	return 0;
}

T_CASE(access_add_del_list)
{
	char buf[256] = "";

	T_EQ_INT(db_access_add("allow", "client", "192.0.2.0/24", "test"), 0);
	T_EQ_INT(db_access_add("allow", "client", "192.0.2.0/24", NULL), 1);
	T_EQ_INT(db_access_add("deny", "sender", "Spam@Example.COM", NULL), 0);
	T_EQ_INT(db_access_add("maybe", "sender", "x", NULL), -1);	/* CHECK constraint */
	T_EQ_INT(db_access_each(NULL, collect, buf), 0);
	T_EQ_STR(buf, "deny/sender/spam@example.com;allow/client/192.0.2.0/24;");
	buf[0] = '\0';
	T_EQ_INT(db_access_each("client", collect, buf), 0);
	T_EQ_STR(buf, "allow/client/192.0.2.0/24;");
	T_EQ_INT(db_access_del("deny", "sender", "spam@example.com"), 1);
	T_EQ_INT(db_access_del("deny", "sender", "spam@example.com"), 0);
}

static int
grey_collect(void *arg, const struct db_grey_entry *g)
{
	char *buf = arg;
	size_t l = strlen(buf);

	snprintf(buf + l, 256 - l, "%s %s %s %lld %lld %d;", g->net, g->sender,
	    g->rcpt, (long long)g->first_seen, (long long)g->last_seen, g->passed);
	return 0;
}

static int
grey_auto_collect(void *arg, const struct db_grey_auto *a)
{
	char *buf = arg;
	size_t l = strlen(buf);

	snprintf(buf + l, 256 - l, "%s %d %lld;", a->net, a->passes,
	    (long long)a->last_seen);
	return 0;
}

T_CASE(grey_update_atomic)
{
	T_EQ_INT(db_grey_update("192.0.2.0/24", "s@a", "r@b", 1000, step_count, NULL), 1);
	T_EQ_INT(db_grey_update("192.0.2.0/24", "s@a", "r@b", 1010, step_count, NULL), 2);
	T_EQ_INT(db_grey_auto_allowed("192.0.2.0/24", 2, 1010, 100), 1);
	T_EQ_INT(db_grey_auto_allowed("192.0.2.0/24", 3, 1010, 100), 0);
	T_EQ_INT(db_grey_auto_allowed("192.0.2.0/24", 2, 1200, 100), 0);	/* expired */
	T_EQ_INT(db_grey_auto_allowed("198.51.100.0/24", 1, 1010, 100), 0);
	char buf[256] = "";
	T_EQ_INT(db_grey_each(10, grey_collect, buf), 0);
	T_EQ_STR(buf, "192.0.2.0/24 s@a r@b 1000 1010 2;");
	buf[0] = '\0';
	T_EQ_INT(db_grey_auto_each(10, grey_auto_collect, buf), 0);
	T_EQ_STR(buf, "192.0.2.0/24 2 1010;");
}

/* meta: set, kept against a second writer with keep, replaced without. */
T_CASE(meta_get_put)
{
	char *v = (char *)"untouched";

	T_EQ_INT(db_meta_get("hmac", &v), 0);
	T_ASSERT(v == NULL);
	T_EQ_INT(db_meta_put("hmac", "first", 1), 0);
	T_EQ_INT(db_meta_put("hmac", "second", 1), 0);	/* the first one wins */
	T_EQ_INT(db_meta_get("hmac", &v), 1);
	T_EQ_STR(v, "first");
	free(v);
	T_EQ_INT(db_meta_put("hmac", "third", 0), 0);
	T_EQ_INT(db_meta_get("hmac", &v), 1);
	T_EQ_STR(v, "third");
	free(v);
}

/* The edit version starts at 0, moves one step on every committed admin
 * edit (through db.c), not on one that changed nothing. */
T_CASE(edit_version_moves)
{
	long long v0 = db_edit_version();

	T_ASSERT(v0 >= 0);
	T_EQ_INT(db_meta_edit("domains-test", "{}"), 0);
	T_EQ_INT((int)(db_edit_version() - v0), 1);
	unsigned long long tok = db_admin_token();
	T_EQ_INT(db_access_add("allow", "helo", "edit.test", NULL), 0);
	T_EQ_INT((int)(db_edit_version() - v0), 2);
	T_ASSERT(db_admin_token() != tok);	/* this process sees it at once */
	tok = db_admin_token();
	T_EQ_INT(db_access_add("allow", "helo", "edit.test", NULL), 1);	/* no change */
	T_EQ_INT(db_access_del("allow", "helo", "nothing.test"), 0);
	T_EQ_INT((int)(db_edit_version() - v0), 2);
	T_ASSERT(db_admin_token() == tok);
	T_EQ_INT(db_access_del("allow", "helo", "edit.test"), 1);
	T_EQ_INT(db_user_set("carol", "hash"), 0);
	T_EQ_INT((int)(db_edit_version() - v0), 4);
}

/* edit_db.h's refusal: a trigger that fails every change of the row. */
static void
edit_db_refuse(int on)
{
	sqlite3 *h;

	T_ASSERT(sqlite3_open(path, &h) == SQLITE_OK);
	sqlite3_busy_timeout(h, 5000);
	T_ASSERT(sqlite3_exec(h, on ? "CREATE TRIGGER edit_db_refuse BEFORE UPDATE"
	    " ON edits BEGIN SELECT RAISE(ABORT, 'refused by the test'); END" :
	    "DROP TRIGGER edit_db_refuse", NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(h);
}

/* Another process (here: a connection of the test's own) bumps the row:
 * the poller publishes it within a few polls, without an edit here. */
T_CASE(edit_version_polled)
{
	unsigned long long tok = db_admin_token();
	sqlite3 *h;

	T_ASSERT(sqlite3_open(path, &h) == SQLITE_OK);
	T_ASSERT(sqlite3_exec(h, "UPDATE edits SET version = version + 1", NULL,
	    NULL, NULL) == SQLITE_OK);
	sqlite3_close(h);
	for (int i = 0; i < 60 && db_admin_token() == tok; i++)
		usleep(50000);
	T_ASSERT(db_admin_token() != tok);
}

/* Sessions: found while fresh, seen moved, idle and max age both end
 * them, delete ends one, prune removes the stale ones only. */
T_CASE(sessions)
{
	char user[DB_SESSION_TEXT], csrf[DB_SESSION_TEXT];

	T_EQ_INT(db_session_put("aa11", "alice", "csrf-a", 1000), 0);
	T_EQ_INT(db_session_put("aa11", "mallory", "x", 1000), -1);	/* no overwrite */
	T_EQ_INT(db_session_put("bb22", "bob", "csrf-b", 1000), 0);
	T_EQ_INT(db_session_get("zz99", 1000, 0, 0, user, sizeof(user), csrf,
	    sizeof(csrf)), 0);
	T_EQ_INT(db_session_get("aa11", 1500, 1000, 0, user, sizeof(user), csrf,
	    sizeof(csrf)), 1);
	T_EQ_STR(user, "alice");
	T_EQ_STR(csrf, "csrf-a");
	/* seen moved to 1500: an idle cut of 1200 no longer ends it */
	T_EQ_INT(db_session_get("aa11", 1600, 1200, 0, user, sizeof(user), csrf,
	    sizeof(csrf)), 1);
	/* bob was last seen at 1000: idle past a cut of 1200 */
	T_EQ_INT(db_session_get("bb22", 1600, 1200, 0, user, sizeof(user), csrf,
	    sizeof(csrf)), 0);
	/* created at 1000: too old for an age cut of 1001 however fresh */
	T_EQ_INT(db_session_get("aa11", 1600, 0, 1001, user, sizeof(user), csrf,
	    sizeof(csrf)), 0);
	/* a short buffer is cut, not overrun */
	char u3[4];
	T_EQ_INT(db_session_get("aa11", 1600, 0, 0, u3, sizeof(u3), csrf,
	    sizeof(csrf)), 1);
	T_EQ_STR(u3, "ali");
	T_EQ_INT(db_session_prune(1200, 0), 1);		/* bob only */
	T_EQ_INT(count_rows("web_sessions"), 1);
	T_EQ_INT(db_session_del("aa11"), 0);
	T_EQ_INT(db_session_get("aa11", 1600, 0, 0, user, sizeof(user), csrf,
	    sizeof(csrf)), 0);
	T_EQ_INT(db_session_del("aa11"), 0);
	T_EQ_INT(count_rows("web_sessions"), 0);
}

T_CASE(prune_by_age)
{
	/* verdict_max_age defaults to 30 days; 31 days on they are gone. */
	T_EQ_INT(db_prune(time_wall() + 31 * 86400), 0);
	T_EQ_INT(count_rows("verdicts"), 0);
	T_EQ_INT(count_rows("greylist"), 0);	/* last seen at 1010 */
}

/* Another process-like connection holds the write lock: the greylist
 * answer is -1 (-> 451), db_ok() drops, queued rows wait and land after. */
T_CASE(locked_database_fails_then_recovers)
{
	sqlite3 *h;
	struct db_verdict v = { .ts = time_wall(), .sid = "LOCK", .verdict = "accept" };

	T_ASSERT(sqlite3_open(path, &h) == SQLITE_OK);
	T_ASSERT(sqlite3_exec(h, "BEGIN EXCLUSIVE", NULL, NULL, NULL) == SQLITE_OK);
	db_verdict_add(&v);
	T_EQ_INT(db_grey_update("203.0.113.0/24", "s@a", "r@b", 1000, step_count, NULL), -1);
	T_EQ_INT(db_ok(), 0);
	T_ASSERT(sqlite3_exec(h, "COMMIT", NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(h);
	T_EQ_INT(db_flush(10000), 0);
	T_EQ_INT(db_ok(), 1);
	struct dbrows r;
	T_EQ_INT(dbrows_verdicts(10, 0, "LOCK", &r), 0);
	T_EQ_INT(r.n, 0);	/* q does not search sid */
	T_EQ_INT(count_rows("verdicts"), 1);
}

/* While the database is locked the queue stays bounded: past
 * DB_QUEUE_MAX the oldest queued rows go (logged); the rest land later. */
T_CASE(queue_is_bounded)
{
	sqlite3 *h;
	sqlite3_stmt *st;
	long long n = -1;
	time_t now = time_wall();

	T_ASSERT(sqlite3_open(path, &h) == SQLITE_OK);
	T_ASSERT(sqlite3_exec(h, "BEGIN EXCLUSIVE", NULL, NULL, NULL) == SQLITE_OK);
	for (int i = 0; i < DB_QUEUE_MAX + 2000; i++)
		db_stat_add("overflow", now, 1);
	T_ASSERT(sqlite3_exec(h, "COMMIT", NULL, NULL, NULL) == SQLITE_OK);
	T_EQ_INT(db_flush(30000), 0);
	if (sqlite3_prepare_v2(h, "SELECT sum(n) FROM stats WHERE name = 'overflow'",
	    -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(h);
	/* what was queued, plus at most one batch the writer held */
	T_ASSERT(n >= DB_QUEUE_MAX && n < DB_QUEUE_MAX + 2000);
}

T_CASE(reopen_keeps_state)
{
	db_close();
	T_EQ_INT(db_open(c, 1), 0);
	T_ASSERT(db_schema_version() >= 2);	/* 2: rules and quarantine; later steps append */
	T_EQ_INT(count_rows("verdicts"), 1);
	T_EQ_INT(count_rows("access"), 1);
}

/* A database from a newer postern, and a path that is a directory: both
 * refuse to open (logged), nothing is changed. */
T_CASE(open_refuses_newer_schema_and_bad_path)
{
	char p2[300];
	sqlite3 *h;
	struct conf *c2 = conf_defaults();

	snprintf(p2, sizeof(p2), "%s/newer.db", dir);
	T_ASSERT(sqlite3_open(p2, &h) == SQLITE_OK);
	T_ASSERT(sqlite3_exec(h, "PRAGMA user_version = 999", NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(h);
	free(c2->db_path);
	c2->db_path = xstrdup(p2);
	T_EQ_INT(db_open(c2, 0), -1);
	free(c2->db_path);
	c2->db_path = xstrdup(dir);		/* a directory */
	T_EQ_INT(db_open(c2, 0), -1);
	conf_unref(c2);
}

int
main(void)
{
	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(path, sizeof(path), "%s/t.db", dir);
	c = conf_defaults();
	free(c->db_path);
	c->db_path = xstrdup(path);
	log_set_level(LOG_LVL_ERR);
	T_RUN(open_migrates);
	T_RUN(verdict_roundtrip);
	T_RUN(verdict_each_stops);
	T_RUN(verdict_invalid_utf8_kept);
	T_RUN(verdict_json_text_as_jansson);
	T_RUN(quar_typed_roundtrip);
	T_RUN(stats_by_minute);
	T_RUN(rule_hits_counted);
	T_RUN(access_add_del_list);
	T_RUN(grey_update_atomic);
	T_RUN(meta_get_put);
	T_RUN(meta_prune_numbered);
	T_RUN(edit_version_moves);
	T_RUN(edit_version_polled);
	T_RUN(edit_commits_with_its_version);
	T_RUN(grey_token_apart);
	T_RUN(sessions);
	T_RUN(rate_counts_shared);
	T_RUN(rate_keys_kept_verbatim);
	T_RUN(bayes_batch_sums_as_one_by_one);
	T_RUN(bayes_learn_forget_one_batch);
	T_RUN(bayes_batch_random_as_one_by_one);
	T_RUN(prune_by_age);
	T_RUN(locked_database_fails_then_recovers);
	T_RUN(queue_is_bounded);
	T_RUN(reopen_keeps_state);
	db_close();
	T_RUN(open_refuses_newer_schema_and_bad_path);
	conf_unref(c);
	if (t_rm_rf(dir) == -1)
		return 1;
	return T_END();
}
