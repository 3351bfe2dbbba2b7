/* bayes_db.h -- cases for db_test.c (SQLite) and pg_test.c (PostgreSQL),
 * on a database opened with its writer: a learn batch sums its messages'
 * token moves per key and writes each key once (db_bayes_sum, db/db.c).
 * Whether the messages come in one db_bayes_learn() call, one call each,
 * or queued to the writer (db_bayes_learn_queue), the counts must come out
 * the same: spam and ham per key, nspam, nham, ntokens (the rows made),
 * and each message's was/changed. Each run learns keys and digests of its
 * own (a salt in them), so the runs share one database; the totals are
 * compared as what a run moved. Keys with the top bit set and without
 * are mixed, as bigint and SQLite's integer order them apart. */
#ifndef POSTERN_TEST_BAYES_DB_H
#define POSTERN_TEST_BAYES_DB_H

#include "db/db.h"
#include "lib/util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BDB_POOL	300	/* keys a run may use */
#define BDB_MSGS	60	/* messages of the random run */
#define BDB_MAXK	64	/* keys per message, at most */

enum bdb_mode { BDB_EACH, BDB_ONE_CALL, BDB_QUEUED };

struct bdb_msg {
	int	 k[BDB_MAXK];	/* pool indices; repeats allowed */
	int	 n;
};

struct bdb_step {
	int	 msg, cls;	/* cls 0 ham, 1 spam, 2 forget */
};

/* What a run did, to compare with another run's. */
struct bdb_out {
	int	 present[BDB_POOL];
	unsigned spam[BDB_POOL], ham[BDB_POOL];
	int	 rows;
	long long dspam, dham, dtok;
	int	 was[2 * BDB_MSGS], changed[2 * BDB_MSGS];
	unsigned salt;
};

static uint64_t
bdb_key(unsigned salt, int i)
{
	return (uint64_t)(i & 1) << 63 | (uint64_t)salt << 32 | (uint64_t)i;
}

static void
bdb_row(void *arg, uint64_t key, unsigned spam, unsigned ham)
{
	struct bdb_out *o = arg;
	uint64_t i = key & 0xffffffffu;

	if ((key >> 32 & 0x7fffffffu) != o->salt || i >= BDB_POOL ||
	    (key >> 63) != (i & 1))
		return;
	o->present[i] = 1;
	o->spam[i] = spam;
	o->ham[i] = ham;
	o->rows++;
}

/* Message m of run salt as a learn of cls; keys into buf. */
static void
bdb_fill(struct db_bayes_learn *l, uint64_t *buf, const struct bdb_msg *m,
    int msg, int cls, unsigned salt)
{
	memset(l, 0, sizeof(*l));
	l->digest[0] = (unsigned char)msg;
	memcpy(l->digest + 1, &salt, sizeof(salt));
	l->digest[31] = 0xbd;
	l->cls = cls;
	for (int i = 0; i < m->n; i++)
		buf[i] = bdb_key(salt, m->k[i]);
	l->keys = buf;
	l->nkeys = (size_t)m->n;
}

/* Learn steps s[0..n) of msgs the way mode says; what they moved into o. */
static void
bdb_run(enum bdb_mode mode, unsigned salt, const struct bdb_msg *msgs,
    const struct bdb_step *s, int n, struct bdb_out *o)
{
	struct db_bayes_learn *l = calloc((size_t)n, sizeof(*l));
	uint64_t *keys = calloc((size_t)n * BDB_MAXK, sizeof(*keys));
	struct db_bayes_meta m0, m1;

	T_ASSERT(l != NULL && keys != NULL && n <= 2 * BDB_MSGS);
	memset(o, 0, sizeof(*o));
	o->salt = salt;
	T_EQ_INT(db_bayes_meta(&m0), 0);
	for (int i = 0; i < n; i++)
		bdb_fill(&l[i], keys + (size_t)i * BDB_MAXK, &msgs[s[i].msg],
		    s[i].msg, s[i].cls, salt);
	if (mode == BDB_ONE_CALL)
		T_EQ_INT(db_bayes_learn(l, (size_t)n, 0), 0);
	for (int i = 0; i < n && mode == BDB_EACH; i++)
		T_EQ_INT(db_bayes_learn(&l[i], 1, 0), 0);
	for (int i = 0; i < n && mode == BDB_QUEUED; i++) {
		struct db_bayes_learn q = l[i];	/* the queue takes its keys */
		q.keys = xmalloc((q.nkeys ? q.nkeys : 1) * sizeof(*q.keys));
		memcpy(q.keys, l[i].keys, q.nkeys * sizeof(*q.keys));
		T_EQ_INT(db_bayes_learn_queue(&q, 0), 0);
		if (i % 32 == 31)	/* under DB_BAYES_PENDING_MAX */
			T_EQ_INT(db_flush(5000), 0);
	}
	T_EQ_INT(db_flush(5000), 0);
	for (int i = 0; i < n; i++) {
		o->was[i] = l[i].was;
		o->changed[i] = l[i].changed;
	}
	T_EQ_INT(db_bayes_load(-1, &m1, bdb_row, o), 0);
	o->dspam = m1.nspam - m0.nspam;
	o->dham = m1.nham - m0.nham;
	o->dtok = m1.ntokens - m0.ntokens;
	free(keys);
	free(l);
}

/* b moved exactly what a did (a key with no row counts as 0 and 0). */
static void
bdb_same(const struct bdb_out *a, const struct bdb_out *b, int n, int flags)
{
	T_EQ_INT(b->dspam, a->dspam);
	T_EQ_INT(b->dham, a->dham);
	T_EQ_INT(b->dtok, a->dtok);
	T_EQ_INT(b->rows, a->rows);
	for (int i = 0; i < BDB_POOL; i++) {
		T_EQ_INT(b->present[i], a->present[i]);
		T_EQ_INT(b->spam[i], a->spam[i]);
		T_EQ_INT(b->ham[i], a->ham[i]);
	}
	for (int i = 0; i < n && flags; i++) {
		T_EQ_INT(b->was[i], a->was[i]);
		T_EQ_INT(b->changed[i], a->changed[i]);
	}
}

/* Messages sharing keys. Every key of message 3 is another's too, so the
 * learn and forget of it leaves no row of its own behind (that case is
 * bayes_learn_forget_one_batch's). */
static const struct bdb_msg bdb_fixed[] = {
	{ { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 5, 9 }, 13 },	/* repeats */
	{ { 5, 6, 7, 8, 9, 10, 11, 12, 13, 14 }, 10 },
	{ { 10, 11, 12, 13, 14, 15, 16, 17, 18, 19 }, 10 },
	{ { 0, 1, 2, 15, 16, 17, 18 }, 7 },
	{ { 22, 23, 24, 8 }, 4 },
	{ { 25, 26, 27, 28, 29, 9 }, 6 },
};

/* Learned before, one batch each; then the batch: the same message twice
 * (0), a relearn of a message learned before (1, twice: ham, then spam
 * again), a learn and its relearn as the other class (2), a learn and a
 * forget (3), a forget that only lowers its keys (5, learned before). */
static const struct bdb_step bdb_before[] = { { 1, 1 }, { 5, 0 } };
static const struct bdb_step bdb_batch[] = {
	{ 0, 1 }, { 1, 0 }, { 0, 1 }, { 2, 1 }, { 2, 0 }, { 3, 1 },
	{ 3, 2 }, { 4, 1 }, { 5, 2 }, { 1, 1 },
};
#define BDB_NBATCH	((int)(sizeof(bdb_batch) / sizeof(bdb_batch[0])))

T_CASE(bayes_batch_sums_as_one_by_one)
{
	static struct bdb_out o[3], pre;
	const enum bdb_mode modes[3] = { BDB_EACH, BDB_ONE_CALL, BDB_QUEUED };

	for (int r = 0; r < 3; r++) {
		bdb_run(BDB_EACH, 0x101 + r, bdb_fixed, bdb_before, 2, &pre);
		T_EQ_INT(pre.dtok, 15);		/* 5-14, 25-29 */
		bdb_run(modes[r], 0x101 + r, bdb_fixed, bdb_batch, BDB_NBATCH, &o[r]);
	}
	/* what one batch each gives, worked out by hand */
	T_EQ_INT(o[0].dspam, 2);		/* 0 and 4; 1 back as it was */
	T_EQ_INT(o[0].dham, 1 - 1);		/* 2 in, 5 out */
	T_EQ_INT(o[0].dtok, 13);		/* 0-4, 15-19, 22-24 */
	T_EQ_INT(o[0].spam[9] * 10 + o[0].ham[9], 20);	/* 0, 1; 5 forgotten */
	T_EQ_INT(o[0].spam[15] * 10 + o[0].ham[15], 1);	/* 2 only, as ham */
	T_EQ_INT(o[0].present[27] * 100 + o[0].spam[27] * 10 + o[0].ham[27], 100);
	T_EQ_INT(o[0].changed[2], 0);		/* the repeat */
	T_EQ_INT(o[0].was[2], 1);
	T_EQ_INT(o[0].was[4], 1);		/* relearned within the batch */
	bdb_same(&o[0], &o[1], BDB_NBATCH, 1);
	bdb_same(&o[0], &o[2], BDB_NBATCH, 0);	/* queued: no was to read */
}

/* A learn and a forget of a message in one batch leave nothing of its
 * own keys: one batch each leaves their rows at 0 (counted in ntokens),
 * which expiry takes first. The difference backend.h tells of. */
T_CASE(bayes_learn_forget_one_batch)
{
	static const struct bdb_msg msg[] = { { { 40, 41, 42, 43 }, 4 } };
	static const struct bdb_step s[] = { { 0, 1 }, { 0, 2 } };
	static struct bdb_out each, one;

	bdb_run(BDB_EACH, 0x201, msg, s, 2, &each);
	bdb_run(BDB_ONE_CALL, 0x202, msg, s, 2, &one);
	T_EQ_INT(each.rows, 4);
	T_EQ_INT(each.dtok, 4);
	T_EQ_INT(each.spam[40] + each.ham[40], 0);
	T_EQ_INT(one.rows, 0);
	T_EQ_INT(one.dtok, 0);
	T_EQ_INT(one.dspam, 0);
	T_EQ_INT(one.changed[0] + one.changed[1], 2);
}

/* A batch as big as postern learn's, of messages drawn at random (fixed
 * seed) from a pool they share, learned, relearned and forgotten in
 * random order: the three ways give the same rows, and ntokens moves by
 * the rows the run made. */
T_CASE(bayes_batch_random_as_one_by_one)
{
	static struct bdb_msg msgs[BDB_MSGS];
	static struct bdb_step s[2 * BDB_MSGS];
	static struct bdb_out o[3];
	const enum bdb_mode modes[3] = { BDB_EACH, BDB_ONE_CALL, BDB_QUEUED };
	unsigned seed = 12345;

	for (int i = 0; i < BDB_MSGS; i++) {
		msgs[i].n = 8 + rand_r(&seed) % (BDB_MAXK - 8);
		for (int k = 0; k < msgs[i].n; k++)
			msgs[i].k[k] = rand_r(&seed) % BDB_POOL;
	}
	for (int i = 0; i < 2 * BDB_MSGS; i++)
		s[i] = (struct bdb_step){ rand_r(&seed) % BDB_MSGS, rand_r(&seed) % 3 };
	for (int r = 0; r < 3; r++) {
		bdb_run(modes[r], 0x301 + r, msgs, s, 2 * BDB_MSGS, &o[r]);
		T_EQ_INT(o[r].dtok, o[r].rows);
	}
	T_ASSERT(o[0].rows > BDB_POOL / 2);
	T_ASSERT(o[0].dspam > 0 && o[0].dham > 0);
	/* one batch each leaves zero rows where summing leaves none */
	for (int i = 0; i < BDB_POOL; i++)
		if (o[0].present[i] && o[0].spam[i] + o[0].ham[i] == 0)
			o[0].present[i] = 0, o[0].rows--, o[0].dtok--;
	for (int r = 1; r < 3; r++)
		for (int i = 0; i < BDB_POOL; i++)
			if (o[r].present[i] && o[r].spam[i] + o[r].ham[i] == 0)
				o[r].present[i] = 0, o[r].rows--, o[r].dtok--;
	bdb_same(&o[0], &o[1], 2 * BDB_MSGS, 1);
	bdb_same(&o[0], &o[2], 2 * BDB_MSGS, 0);
}

#endif
