/*
 * quar.c -- the quarantine; see quar.h. It never talks to the backend
 * itself: a release is delivered by proxy/qsend.c between quar_claim()
 * and quar_finish().
 */
#include "policy/quar.h"
#include "db/db.h"
#include "lib/conf.h"
#include "lib/util.h"
#include "policy/authres.h"
#include "policy/bayes.h"
#include "policy/policy_int.h"
#include "rules/mime.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void	 quar_answer(struct pol_decision *, enum pol_verdict, int code,
		    const char *status, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int	 quar_due(long long now, long long last);
static int	 quar_learn(const struct conf *, const char *id, const char *who,
		    const char *raw, size_t len, enum bayes_class);

static _Atomic long long quar_last_tick;

static void
quar_answer(struct pol_decision *d, enum pol_verdict v, int code,
    const char *status, const char *fmt, ...)
{
	va_list ap;

	d->verdict = v;
	d->code = code;
	snprintf(d->status, sizeof(d->status), "%s", status);
	va_start(ap, fmt);
	vsnprintf(d->text, sizeof(d->text), fmt, ap);
	va_end(ap);
}

void
quar_store(struct pol_session *ps, const struct pol_msg *msg, struct pol_decision *d)
{
	const struct conf *c = ps->conf;
	struct mime_msg *m;
	struct db_quar q = { 0 };
	struct db_check ck[POL_MAX_RESULTS];
	char id[ID_LEN + 1];
	int rc;

	if (!c->quarantine_enabled) {
		quar_answer(d, POL_REJECT, 550, "5.7.1",
		    "Message rejected as spam (score %.1f)", ps->score);
		return;
	}
	if ((long long)msg->len > c->quarantine_max_message) {
		log_warn("%s: message of %zu bytes over quarantine.max_message; tempfail",
		    ps->sid, msg->len);
		quar_answer(d, POL_TEMPFAIL, 452, "4.3.1",
		    "Insufficient system storage; try again later");
		return;
	}
	m = mime_parse(msg->data, msg->len);
	id_new(id);
	for (int i = 0; i < ps->nresults; i++)
		ck[i] = (struct db_check){ ps->results[i].check, ps->results[i].result,
		    ps->results[i].reason, ps->results[i].score };
	q.id = id;
	q.ts = time_wall();
	q.sid = ps->sid;
	q.client_ip = ps->client_ip;
	q.client_name = ps->client_name;
	q.helo = ps->helo;
	q.mail_from = ps->mail_from;
	q.rcpts = (const char *const *)ps->rcpts;
	q.nrcpts = ps->nrcpts;
	q.subject = mime_header(m, "Subject", 0);
	q.msgid = mime_header(m, "Message-ID", 0);
	q.score = ps->score;
	q.reasons = ck;
	q.nreasons = ps->nresults;
	q.raw = msg->data;
	q.len = msg->len;
	rc = db_quar_add(&q, c->quarantine_max_total);
	mime_free(m);
	if (rc == 0) {
		log_info("%s: quarantined as %s (score %.1f)", ps->sid, id, ps->score);
		quar_answer(d, POL_QUARANTINE, 250, "2.0.0", "Ok: quarantined as %s", id);
	} else if (rc == -2) {
		log_warn("%s: quarantine.max_total reached; tempfail", ps->sid);
		quar_answer(d, POL_TEMPFAIL, 452, "4.3.1",
		    "Insufficient system storage; try again later");
	} else {
		log_err("%s: cannot store in quarantine; tempfail", ps->sid);
		quar_answer(d, POL_TEMPFAIL, 451, "4.3.0",
		    "Local error in processing; try again later");
	}
}

int
quar_expire(const struct conf *c, int batch)
{
	int n, total = 0;

	/* Batches, so a large backlog never holds the write lock for long. */
	do {
		n = db_quar_expire(time_wall(), c->quarantine_max_age, QUAR_EXPIRE_BATCH);
		if (n > 0)
			total += n;
	} while (n == QUAR_EXPIRE_BATCH && (batch == 0 || total < batch));
	if (total > 0)
		log_info("quarantine: %d messages expired", total);
	return n < 0 ? -1 : total;
}

/* Wall clock (the test clock moves it), so expiry tests need no sleep. */
static int
quar_due(long long now, long long last)
{
	return last == 0 || now - last >= QUAR_TICK_S || now < last;
}

/* A second early: pol_stage_needed() asks just before pol_run() ticks,
 * and a tick that fell due in between must not run on the proxy's loop. */
int
quar_tick_due(void)
{
	return quar_due((long long)time_wall() + 1, atomic_load(&quar_last_tick));
}

void
quar_tick(const struct conf *c)
{
	long long now = (long long)time_wall(), last = atomic_load(&quar_last_tick);

	if (!quar_due(now, last))
		return;
	if (!atomic_compare_exchange_strong(&quar_last_tick, &last, now))
		return;
	quar_expire(c, QUAR_EXPIRE_BATCH);
}

/* ---- release ---- */

int
quar_claim(const struct conf *c, const char *id, const char *who,
    struct quar_release *r, char *err, size_t errsz)
{
	struct db_quar_claimed cl;
	char date[64];
	struct tm tm;
	int rc;

	memset(r, 0, sizeof(*r));
	snprintf(err, errsz, "ok");
	if ((rc = db_quar_claim(id, &cl)) != 0) {
		snprintf(err, errsz, "%s", rc == 1 ? "no such message" : rc == 2 ?
		    "not held (released already or being released)" : "database error");
		return rc;
	}
	snprintf(r->id, sizeof(r->id), "%s", id);	/* stored ids are ID_LEN */
	r->who = who ? who : "admin";
	r->when = time_wall();
	gmtime_r(&r->when, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	r->header = xasprintf("X-Postern-Released: %s by %s\r\n", date, r->who);
	r->from = cl.mail_from;		/* r owns the claimed envelope now */
	r->rcpts = cl.rcpts;
	r->nrcpts = cl.nrcpts;
	r->raw = cl.raw;
	r->len = cl.len;
	/* as at delivery: no sender-written field of ours reaches the backend */
	r->nskip = authres_skips(r->raw, r->len, c->hostname, &r->skip);
	return 0;
}

void
quar_finish(const struct conf *c, struct quar_release *r, int delivered, const char *err)
{
	struct db_quar_claimed cl;

	if (db_quar_finish(r->id, delivered, r->who, r->when) == -1 && delivered)
		log_err("quarantine: %s delivered but not marked released", r->id);
	log_info("quarantine: %s release by %s: %s", r->id, r->who,
	    delivered ? "delivered" : err);
	/* Only a delivered message was judged ham; the claim lets one
	 * release through, so it is learned once (and the digest makes a
	 * repeat a no-op anyway). */
	if (delivered && c->bayes_learn_on_release)
		quar_learn(c, r->id, r->who, r->raw, r->len, BAYES_LEARN_HAM);
	cl = (struct db_quar_claimed){ .mail_from = r->from, .rcpts = r->rcpts,
	    .nrcpts = r->nrcpts, .raw = r->raw, .len = r->len };
	db_quar_claimed_free(&cl);	/* db/ allocated them; it frees them */
	free(r->skip);
	free(r->header);
	memset(r, 0, sizeof(*r));
}

/* Learn a quarantined message the admin judged: 0, or -1 (logged). */
static int
quar_learn(const struct conf *c, const char *id, const char *who, const char *raw,
    size_t len, enum bayes_class cls)
{
	struct bayes_learned l;
	const char *name = cls == BAYES_LEARN_SPAM ? "spam" : "ham";

	if (bayes_learn(c, raw, len, cls, &l) == -1) {
		log_err("quarantine: %s could not be learned as %s", id, name);
		return -1;
	}
	log_info("quarantine: %s learned as %s by %s%s", id, name, who ? who : "admin",
	    l.changed ? "" : " (learned so already)");
	return 0;
}

int
quar_spam(const struct conf *c, const char *id, const char *who, char *err,
    size_t errsz)
{
	size_t len;
	char *raw;
	int rc;

	snprintf(err, errsz, "ok");
	if ((rc = db_quar_raw(id, &raw, &len)) != 0) {
		snprintf(err, errsz, "%s", rc == 1 ? "no such message" : "database error");
		return rc == 1 ? 1 : -1;
	}
	/* Learned before it is deleted: a failed learn leaves the message
	 * where the admin can try again. */
	if (c->bayes_learn_on_delete_spam &&
	    quar_learn(c, id, who, raw, len, BAYES_LEARN_SPAM) == -1) {
		snprintf(err, errsz, "could not learn it as spam; kept");
		free(raw);
		return -1;
	}
	free(raw);
	if ((rc = db_quar_delete(id)) == -1)
		snprintf(err, errsz, "database error");
	else if (rc == 1)
		snprintf(err, errsz, "being released");
	else
		log_info("quarantine: %s deleted as spam by %s", id, who ? who : "admin");
	return rc == 1 ? 2 : rc;
}

