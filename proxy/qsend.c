/*
 * qsend.c -- see qsend.h.
 */
#include "proxy/qsend.h"
#include "policy/quar.h"
#include "proxy/smtpc.h"

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
