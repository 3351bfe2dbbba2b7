/*
 * quar.c -- the quarantine; see quar.h.
 *
 * The release client is deliberately small and blocking: it runs on a web
 * or CLI thread, never on an I/O loop, one message at a time. It speaks
 * EHLO, MAIL, RCPT, DATA, QUIT (RFC 5321 3.3) and dot-stuffs the body
 * (RFC 5321 4.5.2). The stored bytes are canonical CRLF already.
 */
#include "policy/quar.h"
#include "policy/authres.h"
#include "policy/bayes.h"
#include "lib/conf.h"
#include "db/db.h"
#include "rules/mime.h"
#include "policy/policy_int.h"
#include "lib/sockaddr.h"
#include "lib/util.h"

#include <errno.h>
#include <jansson.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

struct smtpc {
	int	 fd;
	char	 buf[QUAR_REPLY_MAX];
	size_t	 n;
	char	 reply[QUAR_REPLY_MAX];
	unsigned caps;		/* QUAR_CAP_* from the EHLO reply */
};

#define QUAR_CAP_8BITMIME	0x1	/* RFC 6152 */
#define QUAR_CAP_SMTPUTF8	0x2	/* RFC 6531 */

static char	*quar_reasons(const struct pol_session *);
static void	 quar_answer(struct pol_decision *, enum pol_verdict, int code,
		    const char *status, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int	 has_8bit(const char *, size_t);
static int	 quar_utf8_env(const char *, json_t *);
static int	 quar_due(long long now, long long last);
static int	 smtpc_connect(struct smtpc *, const char *hostport, char *err, size_t);
static int	 smtpc_reply(struct smtpc *);
static int	 smtpc_send(struct smtpc *, const char *, size_t);
static int	 smtpc_cmd(struct smtpc *, int want, char *err, size_t errsz,
		    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int	 smtpc_data(struct smtpc *, const char *hdr, const char *raw, size_t len,
		    const struct pol_skip *, int nskip);
static int	 quar_deliver(const struct conf *, const char *from, json_t *rcpts,
		    const char *hdr, const char *raw, size_t len, char *err, size_t errsz);
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

/* The session's results as the JSON the dashboard shows. */
static char *
quar_reasons(const struct pol_session *ps)
{
	json_t *a = json_array();
	char *s;

	for (int i = 0; i < ps->nresults; i++) {
		const struct pol_result *r = &ps->results[i];
		json_array_append_new(a, json_pack("{s:s, s:s, s:f, s:s?}",
		    "check", r->check, "result", r->result, "score", r->score,
		    "reason", r->reason));
	}
	s = json_dumps(a, JSON_COMPACT);
	json_decref(a);
	if (s == NULL)
		fatalx("out of memory");
	return s;
}

void
quar_store(struct pol_session *ps, const struct pol_msg *msg, struct pol_decision *d)
{
	const struct conf *c = ps->conf;
	struct mime_msg *m;
	struct db_quar q = { 0 };
	char id[ID_LEN + 1], *reasons;
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
	reasons = quar_reasons(ps);
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
	q.reasons_json = reasons;
	q.raw = msg->data;
	q.len = msg->len;
	rc = db_quar_add(&q, c->quarantine_max_total);
	mime_free(m);
	free(reasons);
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
quar_release(const struct conf *c, const char *id, const char *who, char *err,
    size_t errsz)
{
	char *from, *rcpts, *raw, *hdr, date[64];
	json_t *rj;
	size_t len;
	time_t now = time_wall();
	struct tm tm;
	int rc;

	snprintf(err, errsz, "ok");
	if ((rc = db_quar_claim(id, &from, &rcpts, &raw, &len)) != 0) {
		snprintf(err, errsz, "%s", rc == 1 ? "no such message" : rc == 2 ?
		    "not held (released already or being released)" : "database error");
		return rc;
	}
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	hdr = xasprintf("X-Postern-Released: %s by %s\r\n", date, who ? who : "admin");
	rj = json_loads(rcpts, 0, NULL);
	rc = quar_deliver(c, from, rj, hdr, raw, len, err, errsz);
	if (db_quar_finish(id, rc == 0, who ? who : "admin", now) == -1 && rc == 0)
		log_err("quarantine: %s delivered but not marked released", id);
	log_info("quarantine: %s release by %s: %s", id, who ? who : "admin",
	    rc == 0 ? "delivered" : err);
	/* Only a delivered message was judged ham; the claim above lets one
	 * release through, so it is learned once (and the digest makes a
	 * repeat a no-op anyway). */
	if (rc == 0 && c->bayes_learn_on_release)
		quar_learn(c, id, who, raw, len, BAYES_LEARN_HAM);
	json_decref(rj);
	free(hdr);
	free(from);
	free(rcpts);
	free(raw);
	return rc == 0 ? 0 : -1;
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

static int
quar_deliver(const struct conf *c, const char *from, json_t *rcpts,
    const char *hdr, const char *raw, size_t len, char *err, size_t errsz)
{
	struct smtpc s = { .fd = -1 };
	struct pol_skip *skip;
	size_t i, ok = 0;
	json_t *r;
	int rc = -1, nskip;

	if (!json_is_array(rcpts) || json_array_size(rcpts) == 0) {
		snprintf(err, errsz, "no recipients stored");
		return -1;
	}
	if (smtpc_connect(&s, c->backend, err, errsz) == -1)
		return -1;
	if (smtpc_cmd(&s, 220, err, errsz, "%s", "") == -1 ||
	    smtpc_cmd(&s, 250, err, errsz, "EHLO %s\r\n", c->hostname) == -1 ||
	    smtpc_cmd(&s, 250, err, errsz, "MAIL FROM:<%s>%s%s\r\n", from,
	    (s.caps & QUAR_CAP_8BITMIME) && has_8bit(raw, len) ? " BODY=8BITMIME" : "",
	    (s.caps & QUAR_CAP_SMTPUTF8) && quar_utf8_env(from, rcpts) ? " SMTPUTF8" : "") == -1)
		goto out;
	json_array_foreach(rcpts, i, r)
		if (json_is_string(r) && smtpc_cmd(&s, 250, err, errsz,
		    "RCPT TO:<%s>\r\n", json_string_value(r)) == 0)
			ok++;
	if (ok == 0 || smtpc_cmd(&s, 354, err, errsz, "DATA\r\n") == -1)
		goto out;
	/* as at delivery: no sender-written field of ours reaches the backend */
	nskip = authres_skips(raw, len, c->hostname, &skip);
	rc = smtpc_data(&s, hdr, raw, len, skip, nskip);
	free(skip);
	if (rc == -1 || smtpc_reply(&s) != 250) {
		rc = -1;
		snprintf(err, errsz, "end of data: %s", s.reply[0] ? s.reply : "no reply");
		goto out;
	}
	rc = 0;
	smtpc_cmd(&s, 221, err, errsz, "QUIT\r\n");
	snprintf(err, errsz, "ok");
out:
	close(s.fd);
	return rc;
}

static int
has_8bit(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] >= 0x80)
			return 1;
	return 0;
}

/* Does the envelope need SMTPUTF8 (a non-ASCII address)? */
static int
quar_utf8_env(const char *from, json_t *rcpts)
{
	size_t i;
	json_t *r;

	if (has_8bit(from, strlen(from)))
		return 1;
	json_array_foreach(rcpts, i, r)
		if (json_is_string(r) && has_8bit(json_string_value(r),
		    strlen(json_string_value(r))))
			return 1;
	return 0;
}

static int
smtpc_connect(struct smtpc *s, const char *hostport, char *err, size_t errsz)
{
	struct sockaddr_storage ss;
	struct timeval tv = { QUAR_SMTP_TIMEOUT_S, 0 };
	socklen_t len;

	if (sockaddr_parse(hostport, 0, &ss, &len) == -1) {
		snprintf(err, errsz, "bad backend address %s", hostport);
		return -1;
	}
	s->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->fd == -1 ||
	    setsockopt(s->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == -1 ||
	    setsockopt(s->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == -1 ||
	    connect(s->fd, (struct sockaddr *)&ss, len) == -1) {
		snprintf(err, errsz, "backend %s: %s", hostport, strerror(errno));
		if (s->fd != -1)
			close(s->fd);
		s->fd = -1;
		return -1;
	}
	return 0;
}

/* Read one reply (all its lines); its code, or -1. s->reply keeps the last
 * line for messages. */
static int
smtpc_reply(struct smtpc *s)
{
	for (;;) {
		char *nl = memchr(s->buf, '\n', s->n);
		if (nl != NULL) {
			size_t l = (size_t)(nl - s->buf) + 1;
			int last = l >= 4 && s->buf[3] != '-';
			snprintf(s->reply, sizeof(s->reply), "%.*s", (int)(l > 2 ? l - 2 : 0), s->buf);
			if (strncasecmp(s->reply + (l > 4 ? 4 : 0), "8BITMIME", 8) == 0)
				s->caps |= QUAR_CAP_8BITMIME;
			if (strncasecmp(s->reply + (l > 4 ? 4 : 0), "SMTPUTF8", 8) == 0)
				s->caps |= QUAR_CAP_SMTPUTF8;
			int code = atoi(s->buf);
			memmove(s->buf, s->buf + l, s->n - l);
			s->n -= l;
			if (last)
				return code;
			continue;
		}
		if (s->n == sizeof(s->buf))
			return -1;	/* a reply line past QUAR_REPLY_MAX */
		ssize_t r = read(s->fd, s->buf + s->n, sizeof(s->buf) - s->n);
		if (r <= 0)
			return -1;
		s->n += (size_t)r;
	}
}

static int
smtpc_send(struct smtpc *s, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(s->fd, p, n, MSG_NOSIGNAL);
		if (w == -1 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Send a command (empty: just read, for the greeting) and expect want (2xx
 * class for 250). 0 or -1 with err. */
static int
smtpc_cmd(struct smtpc *s, int want, char *err, size_t errsz, const char *fmt, ...)
{
	char *line;
	va_list ap;
	int code;

	va_start(ap, fmt);
	if (vasprintf(&line, fmt, ap) == -1)
		fatalx("out of memory");
	va_end(ap);
	if (*line && smtpc_send(s, line, strlen(line)) == -1) {
		snprintf(err, errsz, "backend: write failed: %s", strerror(errno));
		free(line);
		return -1;
	}
	code = smtpc_reply(s);
	if (code / 100 != want / 100 || (want != 250 && code != want)) {
		snprintf(err, errsz, "backend answered %.*s: %s", (int)strcspn(line, "\r"),
		    *line ? line : "connect", code == -1 ? "no reply" : s->reply);
		free(line);
		return -1;
	}
	free(line);
	return 0;
}

/* The header line, then raw dot-stuffed without the skipped fields, then
 * CRLF.CRLF. */
static int
smtpc_data(struct smtpc *s, const char *hdr, const char *raw, size_t len,
    const struct pol_skip *skip, int nskip)
{
	size_t i = 0;
	int k = 0;

	if (smtpc_send(s, hdr, strlen(hdr)) == -1)
		return -1;
	while (i < len) {
		if (k < nskip && skip[k].off == i) {	/* whole lines, sorted */
			i += skip[k++].len;
			continue;
		}
		const char *nl = memchr(raw + i, '\n', len - i);
		size_t l = nl ? (size_t)(nl - (raw + i)) + 1 : len - i;
		if (raw[i] == '.' && smtpc_send(s, ".", 1) == -1)
			return -1;
		if (smtpc_send(s, raw + i, l) == -1)
			return -1;
		i += l;
	}
	if (len > 0 && raw[len - 1] != '\n' && smtpc_send(s, "\r\n", 2) == -1)
		return -1;
	return smtpc_send(s, ".\r\n", 3);
}

/* ---- the CLI ---- */

static int
quar_print(json_t *j)
{
	char *s;

	if (j == NULL)
		return 1;
	s = json_dumps(j, JSON_INDENT(2));
	printf("%s\n", s);
	free(s);
	json_decref(j);
	return 0;
}

static int
quar_cli(const struct conf *c, int na, char **a, const char *who, const char *q)
{
	char err[512], *raw;
	size_t len;
	int rc, found;

	if (na == 1 && strcmp(a[0], "list") == 0) {
		struct db_quar_query qq = { .q = q, .limit = 1000 };
		return quar_print(db_quar_list(&qq));
	}
	if (na == 1 && strcmp(a[0], "expire") == 0) {
		rc = quar_expire(c, 0);
		printf("%d expired\n", rc < 0 ? 0 : rc);
		return rc < 0;
	}
	if (na != 2)
		return 2;
	if (strcmp(a[0], "show") == 0) {
		json_t *o = db_quar_get(a[1], &found);
		if (o == NULL)
			fprintf(stderr, "postern: %s: %s\n", a[1], found ? "error" : "no such message");
		return quar_print(o);
	}
	if (strcmp(a[0], "raw") == 0) {
		if ((rc = db_quar_raw(a[1], &raw, &len)) != 0) {
			fprintf(stderr, "postern: %s: %s\n", a[1], rc == 1 ? "no such message" : "error");
			return 1;
		}
		fwrite(raw, 1, len, stdout);
		free(raw);
		return 0;
	}
	if (strcmp(a[0], "release") == 0) {
		rc = quar_release(c, a[1], who, err, sizeof(err));
		printf("%s: %s\n", a[1], rc == 0 ? "released" : err);
		return rc == 0 ? 0 : 1;
	}
	if (strcmp(a[0], "spam") == 0) {
		rc = quar_spam(c, a[1], who, err, sizeof(err));
		printf("%s: %s\n", a[1], rc == 0 ? "deleted as spam" : err);
		return rc == 0 ? 0 : 1;
	}
	if (strcmp(a[0], "delete") == 0) {
		rc = db_quar_delete(a[1]);
		printf("%s: %s\n", a[1], rc == 0 ? "deleted" : rc == 1 ?
		    "no such message (or being released)" : "error");
		return rc == 0 ? 0 : 1;
	}
	return 2;
}

int
quar_main(int argc, char **argv)
{
	const char *cpath = "etc/postern.conf", *who = "cli", *q = NULL;
	char *a[2];
	struct conf *c;
	int na = 0, rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
			cpath = argv[++i];
		else if (strcmp(argv[i], "--by") == 0 && i + 1 < argc)
			who = argv[++i];
		else if (strcmp(argv[i], "-q") == 0 && i + 1 < argc)
			q = argv[++i];
		else if (na < 2)
			a[na++] = argv[i];
	}
	if ((c = conf_load_report(cpath)) == NULL)
		return 1;
	if (db_open(c, 0) == -1) {
		conf_unref(c);
		return 1;
	}
	if ((rc = quar_cli(c, na, a, who, q)) == 2)
		fprintf(stderr, "usage: postern quarantine -c FILE list [-q TEXT] | show ID |"
		    " raw ID | release ID [--by WHO] | spam ID [--by WHO] | delete ID | expire\n");
	db_close();
	conf_unref(c);
	return rc;
}
