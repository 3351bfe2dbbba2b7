/* pg_test.c -- db/ on PostgreSQL (db/pg.c), where SQLite's db_test.c
 * cannot reach: the cluster ops' semantics as sqlite.c has them, token
 * keys past 2^63 through bigint, text that is not UTF-8, and a quarantine
 * claim raced by threads on connections of their own, the shared rate
 * counts (rate_db.h, as db_test.c runs them on SQLite). It needs a fresh
 * database: tests/integration/test_pg.py runs it with POSTERN_TEST_PG_URL
 * set; without, it runs nothing. */
#include "t.h"
#include "meta_db.h"
#include "rate_db.h"
#include "bayes_db.h"
#include "edit_db.h"
#include "lib/conf.h"
#include "db/db.h"
#include "lib/util.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

static struct conf *c;

T_CASE(meta_edit_sessions)
{
	char *v = NULL, user[DB_SESSION_TEXT], csrf[DB_SESSION_TEXT], u3[4];
	long long v0 = db_edit_version();

	T_EQ_INT(db_meta_get("k", &v), 0);
	T_EQ_INT(db_meta_put("k", "first", 1), 0);
	T_EQ_INT(db_meta_put("k", "second", 1), 0);	/* the first one wins */
	T_EQ_INT(db_meta_get("k", &v), 1);
	T_EQ_STR(v, "first");
	free(v);
	T_EQ_INT(db_meta_put("k", "third", 0), 0);
	T_EQ_INT(db_meta_get("k", &v), 1);
	T_EQ_STR(v, "third");
	free(v);
	T_ASSERT(v0 >= 0);
	T_EQ_INT(db_meta_edit("domains-test", "{}"), 0);
	T_EQ_INT(db_edit_version() - v0, 1);
	T_EQ_INT(db_session_put("aa11", "alice", "csrf-a", 1000), 0);
	T_EQ_INT(db_session_put("aa11", "mallory", "x", 1000), -1);	/* no overwrite */
	T_EQ_INT(db_session_put("bb22", "bob", "csrf-b", 1000), 0);
	T_EQ_INT(db_session_get("aa11", 1500, 1000, 0, user, sizeof(user), csrf,
	    sizeof(csrf)), 1);
	T_EQ_STR(user, "alice");
	T_EQ_STR(csrf, "csrf-a");
	T_EQ_INT(db_session_get("aa11", 1600, 1200, 0, user, sizeof(user), csrf,
	    sizeof(csrf)), 1);				/* seen moved to 1500 */
	T_EQ_INT(db_session_get("bb22", 1600, 1200, 0, user, sizeof(user), csrf,
	    sizeof(csrf)), 0);				/* idle */
	T_EQ_INT(db_session_get("aa11", 1600, 0, 1001, user, sizeof(user), csrf,
	    sizeof(csrf)), 0);				/* too old */
	T_EQ_INT(db_session_get("aa11", 1600, 0, 0, u3, sizeof(u3), csrf,
	    sizeof(csrf)), 1);
	T_EQ_STR(u3, "ali");
	T_EQ_INT(db_session_prune(1200, 0), 1);		/* bob only */
	T_EQ_INT(db_session_del("aa11"), 0);
	T_EQ_INT(db_session_get("aa11", 1600, 0, 0, user, sizeof(user), csrf,
	    sizeof(csrf)), 0);
}

/* edit_db.h's refusal: a trigger that fails every change of the row. */
static void
edit_db_refuse(int on)
{
	PGconn *pc = PQconnectdb(getenv("POSTERN_TEST_PG_URL"));
	PGresult *r;

	T_ASSERT(PQstatus(pc) == CONNECTION_OK);
	r = PQexec(pc, on ?
	    "CREATE FUNCTION edit_db_refuse() RETURNS trigger LANGUAGE plpgsql AS"
	    " $$BEGIN RAISE EXCEPTION 'refused by the test'; END$$;"
	    "CREATE TRIGGER edit_db_refuse BEFORE UPDATE ON edits"
	    " FOR EACH ROW EXECUTE FUNCTION edit_db_refuse()" :
	    "DROP TRIGGER edit_db_refuse ON edits; DROP FUNCTION edit_db_refuse()");
	T_ASSERT(PQresultStatus(r) == PGRES_COMMAND_OK);
	PQclear(r);
	PQfinish(pc);
}

static uint64_t seen_key;
static unsigned seen_spam;

static void
token(void *arg, uint64_t key, unsigned spam, unsigned ham)
{
	(void)arg;
	(void)ham;
	if (key == UINT64_C(0xfedcba9876543210)) {
		seen_key = key;
		seen_spam = spam;
	}
}

/* A key with the top bit set goes through bigint and comes back equal. */
T_CASE(bayes_keys_past_2_63)
{
	uint64_t keys[] = { UINT64_C(0xfedcba9876543210), 1, UINT64_MAX };
	struct db_bayes_learn l = { .cls = 1, .keys = keys, .nkeys = 3 };
	struct db_bayes_meta m;

	memset(l.digest, 0xab, sizeof(l.digest));
	T_EQ_INT(db_bayes_learn(&l, 1, 0), 0);
	T_EQ_INT(l.changed, 1);
	T_EQ_INT(db_bayes_load(-1, &m, token, NULL), 0);
	T_EQ_INT(m.nspam, 1);
	T_EQ_INT(m.ntokens, 3);
	T_ASSERT(seen_key == UINT64_C(0xfedcba9876543210));
	T_EQ_INT(seen_spam, 1);
	l.changed = 0;
	T_EQ_INT(db_bayes_learn(&l, 1, 0), 0);
	T_EQ_INT(l.changed, 0);			/* learned once */
	T_EQ_INT(l.was, 1);
}

static int
quar_subject(void *arg, const struct db_quar_row *r)
{
	snprintf(arg, 64, "%s", r->q.subject);
	return 0;
}

/* A byte that starts no UTF-8 sequence is stored as U+FFFD, not refused. */
T_CASE(text_not_utf8_repaired)
{
	const char *rcpts[] = { "bob@example.org" };
	struct db_quar q = { .id = "00000000000A", .ts = 1, .sid = "s",
	    .client_ip = "192.0.2.1", .client_name = "", .helo = "h\xff",
	    .mail_from = "a@b", .rcpts = rcpts, .nrcpts = 1, .subject = "caf\xe9",
	    .msgid = "", .raw = "raw \xff\r\n", .len = 7 };
	char subject[64] = "";
	char *raw;
	size_t len;

	T_EQ_INT(db_quar_add(&q, 1 << 20), 0);
	T_EQ_INT(db_quar_get("00000000000A", quar_subject, subject), 0);
	T_EQ_STR(subject, "caf\xef\xbf\xbd");
	T_EQ_INT(db_quar_raw("00000000000A", &raw, &len), 0);
	T_EQ_INT(len, 7);
	T_ASSERT(memcmp(raw, "raw \xff\r\n", 7) == 0);	/* the body byte for byte */
	free(raw);
}

static int claims[2];

static void *
claimer(void *arg)
{
	struct db_quar_claimed out;
	int *rc = arg;

	*rc = db_quar_claim("00000000000A", &out);
	if (*rc == 0)
		db_quar_claimed_free(&out);
	return NULL;
}

/* Two threads, two connections, one held message: one claim wins. */
T_CASE(claim_once_across_connections)
{
	pthread_t t[2];

	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, claimer, &claims[i]);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	T_EQ_INT(claims[0] + claims[1], 2);		/* 0 (claimed) and 2 (not held) */
	T_ASSERT(claims[0] == 0 || claims[1] == 0);
	T_EQ_INT(db_quar_finish("00000000000A", 1, "t", 5), 0);
	T_EQ_INT(db_quar_claim("00000000000A", &(struct db_quar_claimed){ 0 }), 2);
}

int
main(void)
{
	const char *url = getenv("POSTERN_TEST_PG_URL");

	if (url == NULL || *url == '\0') {
		printf("pg_test: POSTERN_TEST_PG_URL not set (test_pg.py sets it)\n");
		return T_END();
	}
	c = conf_defaults();
	free(c->db_url);
	c->db_url = xstrdup(url);
	log_set_level(LOG_LVL_ERR);
	T_EQ_INT(db_open(c, 1), 0);
	T_RUN(meta_edit_sessions);
	T_RUN(meta_prune_numbered);
	T_RUN(edit_commits_with_its_version);
	T_RUN(grey_token_apart);
	T_RUN(bayes_keys_past_2_63);
	T_RUN(text_not_utf8_repaired);
	T_RUN(claim_once_across_connections);
	T_RUN(rate_counts_shared);
	T_RUN(rate_keys_kept_verbatim);
	T_RUN(bayes_batch_sums_as_one_by_one);
	T_RUN(bayes_learn_forget_one_batch);
	T_RUN(bayes_batch_random_as_one_by_one);
	db_close();
	conf_unref(c);
	return T_END();
}
