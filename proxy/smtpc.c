/*
 * smtpc.c -- the blocking SMTP client (see smtpc.h).
 *
 * Lockstep, one command and one reply: the connection carries a few
 * messages at most, so PIPELINING would save nothing worth its states.
 * After any I/O failure the connection is marked dead and every later
 * call fails at once; a refused transaction is reset with RSET so the
 * next message can go on the same connection.
 */
#include "proxy/smtpc.h"
#include "lib/buf.h"
#include "lib/conf.h"
#include "lib/lim.h"
#include "lib/sockaddr.h"
#include "lib/util.h"
#include "policy/policy.h"
#include "proxy/be.h"
#include "proxy/line.h"
#include "proxy/spool.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

struct smtpc {
	int		 fd;		/* -1: dead */
	unsigned	 caps;		/* BE_CAP_* */
	struct buf	 in;
	struct be_reply	 reply;
	int		 refused;	/* the last message got a 5xx (smtpc_refused) */
};

static int	 smtpc_connect(struct smtpc *, const char *backend, int timeout_s,
		    char *err, size_t errsz);
static int	 smtpc_write(struct smtpc *, const char *, size_t);
static int	 smtpc_reply(struct smtpc *);
static int	 smtpc_cmd(struct smtpc *, int want, char *err, size_t errsz,
		    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int	 smtpc_body(struct smtpc *, const struct smtpc_msg *);
static int	 smtpc_fail(struct smtpc *, int code, const char *what, char *err,
		    size_t errsz);
static void	 smtpc_reset(struct smtpc *);
static int	 smtpc_8bit(const char *, size_t);
static int	 smtpc_utf8_env(const struct smtpc_msg *);

struct smtpc *
smtpc_open(const char *backend, const char *hostname, int timeout_s, char *err,
    size_t errsz)
{
	struct smtpc *s = xcalloc(1, sizeof(*s));

	s->fd = -1;
	if (smtpc_connect(s, backend, timeout_s, err, errsz) == -1 ||
	    smtpc_cmd(s, 220, err, errsz, "%s", "") == -1 ||
	    smtpc_cmd(s, 250, err, errsz, "EHLO %s", hostname) == -1) {
		smtpc_close(s);
		return NULL;
	}
	unsigned xc, xf;
	s->caps = be_ehlo_caps(buf_str(&s->reply.text), &xc, &xf);
	return s;
}

unsigned smtpc_caps(const struct smtpc *s) { return s->caps; }

static int
smtpc_connect(struct smtpc *s, const char *backend, int timeout_s, char *err,
    size_t errsz)
{
	struct sockaddr_storage ss;
	struct timeval tv = { .tv_sec = timeout_s };
	socklen_t len;

	if (sockaddr_parse(backend, SOCKADDR_NAMES, &ss, &len) == -1) {
		snprintf(err, errsz, "bad backend address %s", backend);
		return -1;
	}
	s->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->fd == -1 ||
	    setsockopt(s->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == -1 ||
	    setsockopt(s->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == -1 ||
	    connect(s->fd, (struct sockaddr *)&ss, len) == -1) {
		snprintf(err, errsz, "backend %s: %s", backend, strerror(errno));
		if (s->fd != -1)
			close(s->fd);
		s->fd = -1;
		return -1;
	}
	return 0;
}

int
smtpc_send(struct smtpc *s, const struct smtpc_msg *m, char *err, size_t errsz)
{
	int ok = 0, code, perm = 0;

	s->refused = 0;
	if (m->nrcpts == 0) {
		snprintf(err, errsz, "no recipients");
		return -1;
	}
	if (smtpc_cmd(s, 250, err, errsz, "MAIL FROM:<%s>%s%s", m->from,
	    (s->caps & BE_CAP_8BITMIME) && smtpc_8bit(m->data, m->len) ? " BODY=8BITMIME" : "",
	    (s->caps & BE_CAP_SMTPUTF8) && smtpc_utf8_env(m) ? " SMTPUTF8" : "") == -1) {
		s->refused = s->reply.code / 100 == 5;
		smtpc_reset(s);
		return -1;
	}
	for (int i = 0; i < m->nrcpts && s->fd != -1; i++)
		if (smtpc_cmd(s, 250, err, errsz, "RCPT TO:<%s>", m->rcpts[i]) == 0)
			ok++;
		else
			perm += s->reply.code / 100 == 5;
	if (ok == 0 || smtpc_cmd(s, 354, err, errsz, "DATA") == -1) {
		s->refused = ok == 0 ? perm == m->nrcpts : s->reply.code / 100 == 5;
		smtpc_reset(s);
		return -1;
	}
	code = smtpc_body(s, m) == -1 ? -1 : smtpc_reply(s);
	s->refused = code / 100 == 5;
	if (code / 100 != 2)
		return smtpc_fail(s, code, "end of data", err, errsz);
	snprintf(err, errsz, "ok");
	return 0;
}

int
smtpc_refused(const struct smtpc *s)
{
	return s->refused;
}

void
smtpc_close(struct smtpc *s)
{
	char err[64];

	if (s == NULL)
		return;
	if (s->fd != -1) {
		(void)smtpc_cmd(s, 221, err, sizeof(err), "QUIT");
		close(s->fd);
	}
	buf_free(&s->in);
	be_reply_clear(&s->reply);
	free(s);
}

int
smtpc_sendmail(const struct conf *c, const struct smtpc_msg *m, char *err, size_t errsz)
{
	struct smtpc *s;
	int rc;

	if ((s = smtpc_open(c->backend, c->hostname, SMTPC_TIMEOUT_S, err, errsz)) == NULL)
		return -1;
	rc = smtpc_send(s, m, err, errsz);
	smtpc_close(s);
	return rc;
}

/* Every byte, or -1 (the connection is dead then). */
static int
smtpc_write(struct smtpc *s, const char *p, size_t n)
{
	while (n > 0 && s->fd != -1) {
		ssize_t w = send(s->fd, p, n, MSG_NOSIGNAL);
		if (w == -1 && errno == EINTR)
			continue;
		if (w <= 0) {
			int e = errno;
			close(s->fd);
			errno = e;
			s->fd = -1;
			break;
		}
		p += w;
		n -= (size_t)w;
	}
	return s->fd == -1 ? -1 : 0;
}

/* Read one whole reply into s->reply; its code, or -1 (the connection is
 * dead then: nothing after a broken reply can be trusted). */
static int
smtpc_reply(struct smtpc *s)
{
	size_t ll;
	long used;
	int rc;

	be_reply_clear(&s->reply);
	while (s->fd != -1) {
		used = line_find(buf_ptr(&s->in), s->in.len, LIM_REPLY_LINE, &ll);
		if (used > 0) {
			rc = be_reply_feed(&s->reply, buf_ptr(&s->in), ll);
			buf_drop(&s->in, (size_t)used);
			if (rc == 1)
				return s->reply.code;
			if (rc == 0)
				continue;
		}
		if (used == 0) {
			ssize_t n = recv(s->fd, buf_space(&s->in, LIM_REPLY_LINE), LIM_REPLY_LINE, 0);
			if (n == -1 && errno == EINTR)
				continue;
			if (n > 0) {
				buf_commit(&s->in, (size_t)n);
				continue;
			}
		}
		close(s->fd);	/* closed, timed out, too long or malformed */
		s->fd = -1;
	}
	return -1;
}

/* Send a command (empty: just read, for the greeting) and expect want
 * (250: any 2xx). 0, or -1 with err naming the command and the reply. */
static int
smtpc_cmd(struct smtpc *s, int want, char *err, size_t errsz, const char *fmt, ...)
{
	char line[LIM_PATH + 128];
	va_list ap;
	int n, code;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) - 2) {
		snprintf(err, errsz, "command too long (%d bytes)", n);
		return -1;
	}
	if (n > 0) {
		memcpy(line + n, "\r\n", 3);
		if (smtpc_write(s, line, (size_t)n + 2) == -1) {
			snprintf(err, errsz, "backend: write failed: %s", strerror(errno));
			return -1;
		}
		line[n] = '\0';
	}
	code = smtpc_reply(s);
	if (code / 100 == want / 100 && (want == 250 || code == want))
		return 0;
	return smtpc_fail(s, code, n > 0 ? line : "connect", err, errsz);
}

/* err = what failed and the last line of the backend's reply; -1. */
static int
smtpc_fail(struct smtpc *s, int code, const char *what, char *err, size_t errsz)
{
	const char *t = buf_str(&s->reply.text), *last = t;

	if (code == -1 || *t == '\0') {
		snprintf(err, errsz, "backend answered %s: no reply", what);
		return -1;
	}
	for (const char *p = t; (p = strstr(p, "\r\n")) != NULL && p[2] != '\0'; p += 2)
		last = p + 2;
	snprintf(err, errsz, "backend answered %s: %.*s", what,
	    (int)strcspn(last, "\r"), last);
	return -1;
}

/* A refused transaction: RSET, so the next message starts clean. */
static void
smtpc_reset(struct smtpc *s)
{
	char err[64];

	if (s->fd != -1 && smtpc_cmd(s, 250, err, sizeof(err), "RSET") == -1 && s->fd != -1) {
		close(s->fd);
		s->fd = -1;
	}
}

/* The message as the session sends it: prepend, body without the skip
 * ranges, dot-stuffed, ending CRLF "." CRLF. */
static int
smtpc_body(struct smtpc *s, const struct smtpc_msg *m)
{
	struct pol_msg pm = { .data = m->data, .len = m->len };
	struct spool_out o;
	char chunk[LIM_IO_CHUNK];
	size_t n;

	spool_out_init(&o, m->prepend, &pm, m->skip, m->nskip);
	while ((n = spool_out_fill(&o, chunk, sizeof(chunk))) > 0)
		if (smtpc_write(s, chunk, n) == -1)
			return -1;
	return 0;
}

static int
smtpc_8bit(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] >= 0x80)
			return 1;
	return 0;
}

/* Does the envelope need SMTPUTF8 (a non-ASCII address)? */
static int
smtpc_utf8_env(const struct smtpc_msg *m)
{
	if (smtpc_8bit(m->from, strlen(m->from)))
		return 1;
	for (int i = 0; i < m->nrcpts; i++)
		if (smtpc_8bit(m->rcpts[i], strlen(m->rcpts[i])))
			return 1;
	return 0;
}
