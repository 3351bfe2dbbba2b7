/*
 * qsend.c -- see qsend.h.
 */
#include "proxy/qsend.h"
#include "lib/conf.h"
#include "lib/util.h"
#include "policy/digest.h"
#include "policy/quar.h"
#include "proxy/smtpc.h"

#include <stdio.h>
#include <string.h>

int
qsend_release(const struct conf *c, const char *id, const char *who, char *err,
    size_t errsz)
{
	struct quar_release r;
	int rc;

	if ((rc = quar_claim(c, id, who, &r, err, errsz)) != 0)
		return rc;
	struct smtpc_msg m = {
		.from = r.from, .rcpts = (const char *const *)r.rcpts,
		.nrcpts = r.nrcpts, .prepend = r.header, .data = r.raw,
		.len = r.len, .skip = r.skip, .nskip = r.nskip,
	};
	rc = smtpc_sendmail(c, &m, err, errsz);
	quar_finish(c, &r, rc == 0, err);
	return rc == 0 ? 0 : -1;
}

int
qsend_digest(const struct conf *c, time_t now, struct qsend_digest_sum *sum, char *err,
    size_t errsz)
{
	struct digest_round r;
	struct smtpc *sc = NULL;
	char why[512];

	memset(sum, 0, sizeof(*sum));
	if (digest_prepare(c, now, &r, err, errsz) == -1) {
		digest_free(&r);
		return -1;
	}
	if (r.nmails > 0 &&
	    (sc = smtpc_open(c->backend, c->hostname, SMTPC_TIMEOUT_S, err, errsz)) == NULL) {
		digest_free(&r);
		return -1;
	}
	for (int i = 0; i < r.nmails; i++) {
		const char *rcpt = r.mails[i].rcpt;
		struct smtpc_msg m = { .from = r.from, .rcpts = &rcpt, .nrcpts = 1,
		    .data = r.mails[i].data, .len = r.mails[i].len };
		if (smtpc_send(sc, &m, why, sizeof(why)) == -1) {
			/* A mailbox the backend refuses for good must not hold
			 * every other recipient's round back. */
			int perm = smtpc_refused(sc);
			log_warn("digest: to %s not sent%s: %s", rcpt, perm ?
			    " (refused for good; not retried)" : "", why);
			r.mails[i].deferred = !perm;
			sum->refused += perm;
			sum->failed += !perm;
			continue;
		}
		log_info("digest: to %s: %d message%s", rcpt, r.mails[i].nmsgs,
		    r.mails[i].nmsgs == 1 ? "" : "s");
		sum->rcpts++;
	}
	smtpc_close(sc);
	sum->msgs = r.nmsgs;
	snprintf(err, errsz, "ok");
	if (digest_done(&r) == -1)
		snprintf(err, errsz, "sent, but the round could not be remembered");
	else if (sum->failed > 0)
		snprintf(err, errsz, "%d digest%s not taken by the backend; the next round "
		    "lists their messages again", sum->failed, sum->failed == 1 ? "" : "s");
	digest_free(&r);
	return 0;
}
