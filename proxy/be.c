/*
 * be.c -- the backend leg (see be.h).
 *
 * States run CONNECTING -> GREETING -> EHLO [-> XCLIENT -> EHLO2 |
 * -> XFORWARD] -> READY, then READY -> CMD -> READY for each command and
 * READY -> BODY -> CMD -> READY for a message. Any failure closes the leg
 * (CLOSED) and reports -1 to whoever waits; the next transaction reopens.
 * A pooled leg sits in READY (or CMD while its RSET is out) and re-enters
 * at XCLIENT/XFORWARD when be_open() hands it to a new session. A refused
 * introduction goes back to CONNECTING on a fresh socket (be_refused).
 */
#include "proxy/be.h"
#include "lib/buf.h"
#include "lib/conf.h"
#include "lib/sockaddr.h"
#include "lib/util.h"
#include "proxy/ev.h"
#include "proxy/line.h"
#include "proxy/smtpc.h"
#include "proxy/spool.h"

#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

enum be_state {
	BE_S_CLOSED = 0,
	BE_S_CONNECTING,
	BE_S_GREETING,
	BE_S_EHLO,
	BE_S_XCLIENT,
	BE_S_EHLO2,
	BE_S_XFORWARD,
	BE_S_READY,
	BE_S_CMD,
	BE_S_BODY,
};

/* Reads land here, and body chunks are filled here before they are sent;
 * one per loop thread (a be lives on one loop). */
static _Thread_local char be_scratch[LIM_IO_CHUNK];

static const char *be_state_names[] = {
	"CLOSED", "CONNECTING", "GREETING", "EHLO", "XCLIENT", "EHLO2",
	"XFORWARD", "READY", "CMD", "BODY",
};

struct be {
	struct ev_loop	*loop;
	const struct conf *conf;
	char		 sid[ID_LEN + 1];
	struct ev_io	 io;
	enum be_state	 state;
	unsigned	 caps, xclient, xforward;
	int		 introduced;
	int		 ehlo_caps;	/* caps came from an EHLO reply (not HELO) */
	int		 xclient_set;	/* XCLIENT changed who the backend sees */
	int		 xforward_spent; /* XFORWARD's transaction has begun */
	int		 reused;	/* taken from the pool for this client */
	int		 noname;	/* NAME refused once: [UNAVAILABLE] now */
	struct buf	 in, out;
	struct be_reply	 reply;
	struct spool_out *body;
	/* A group of commands (RFC 2920): all sent at once when the backend
	 * offers PIPELINING, else one per reply; replies owed = nout. */
	char		*queue[BE_MAX_GROUP];
	int		 nqueue, iqueue, nout;
	uint64_t	 deadline;
	be_cb		*cb;
	void		*arg;
	struct {
		char	*addr, *helo, *name, *dest;
		int	 v6, port, esmtp, dest_v6, dest_port;
	} who;
	/* while pooled: our reference on conf (the session's may go) */
	struct conf	*pconf;
	uint64_t	 idle_since;
};

struct be_pool {
	struct be	*idle[BE_POOL_MAX];	/* oldest first */
	int		 n;
};

static void	 be_enter_state(struct be *, enum be_state);
static void	 be_io(struct ev_io *, unsigned);
static void	 be_read(struct be *);
static void	 be_write(struct be *);
static void	 be_send(struct be *, const char *);
static void	 be_send_queued(struct be *);
static void	 be_queue_clear(struct be *);
static void	 be_teardown(struct be *);
static void	 be_try_write(struct be *);
static void	 be_on_reply(struct be *);
static void	 be_fail(struct be *, const char *);
static void	 be_done(struct be *, int code, const char *, size_t);
static void	 be_introduce(struct be *);
static void	 be_refused(struct be *, const char *verb);
static void	 be_reconnect(struct be *);
static void	 be_greet_as_client(struct be *);
static int	 be_reusable(const struct be *);
static void	 be_update_events(struct be *);
static int	 be_connect(struct be *);
static void	 be_set_client(struct be *, const struct be_client *);
static void	 be_pool_rset_cb(void *, int, const char *, size_t);
static void	 be_pool_drop(struct be_pool *, int);

int
be_reply_feed(struct be_reply *r, const char *line, size_t len)
{
	int code;

	if (len < 3 || !isdigit((unsigned char)line[0]) || line[0] < '2' ||
	    line[0] > '5' || !isdigit((unsigned char)line[1]) ||
	    !isdigit((unsigned char)line[2]) || (len > 3 && line[3] != ' ' && line[3] != '-'))
		return -1;
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (r->nlines > 0 && code != r->code)
		return -1;
	if (len > LIM_REPLY_LINE || r->nlines >= LIM_REPLY_LINES ||
	    r->text.len + len + 2 > LIM_REPLY_TOTAL)
		return -1;
	/* a NUL is no reply text (RFC 5321 4.2) and would cut the reply
	 * short wherever it is read as a C string */
	if (memchr(line, '\0', len) != NULL)
		return -1;
	r->code = code;
	buf_add(&r->text, line, len);
	buf_add(&r->text, "\r\n", 2);
	r->nlines++;
	return len == 3 || line[3] == ' ';
}

void
be_reply_clear(struct be_reply *r)
{
	buf_free(&r->text);
	memset(r, 0, sizeof(*r));
}

/* One keyword per EHLO reply line after the first (RFC 5321 4.1.1.1). */
unsigned
be_ehlo_caps(const char *text, unsigned *xclient, unsigned *xforward)
{
	static const struct { const char *kw; unsigned bit; } kws[] = {
		{ "PIPELINING", BE_CAP_PIPELINING }, { "SIZE", BE_CAP_SIZE },
		{ "8BITMIME", BE_CAP_8BITMIME }, { "SMTPUTF8", BE_CAP_SMTPUTF8 },
		{ "DSN", BE_CAP_DSN }, { "XCLIENT", BE_CAP_XCLIENT },
		{ "XFORWARD", BE_CAP_XFORWARD }, { "ENHANCEDSTATUSCODES", BE_CAP_ENHANCED },
		{ "STARTTLS", BE_CAP_STARTTLS },
	};
	static const struct { const char *kw; unsigned bit; } attrs[] = {
		{ "NAME", BE_XA_NAME }, { "ADDR", BE_XA_ADDR }, { "PORT", BE_XA_PORT },
		{ "PROTO", BE_XA_PROTO }, { "HELO", BE_XA_HELO },
		{ "LOGIN", BE_XA_LOGIN }, { "DESTADDR", BE_XA_DESTADDR },
		{ "DESTPORT", BE_XA_DESTPORT },
	};
	unsigned caps = 0;
	const char *l = strstr(text, "\r\n");

	*xclient = *xforward = 0;
	while (l != NULL && l[2] != '\0') {
		const char *p = l + 2, *e = strstr(p, "\r\n");
		if (e == NULL)
			break;
		/* "250-" or "250 " comes first; a shorter line has no keyword
		 * (and stepping over 4 bytes would pass its end). */
		if (e - p <= 4) {
			l = e;
			continue;
		}
		p += 4;
		size_t kl = strcspn(p, " \r");
		for (size_t i = 0; i < ARRAY_SIZE(kws); i++) {
			if (strlen(kws[i].kw) != kl || strncasecmp(p, kws[i].kw, kl) != 0)
				continue;
			caps |= kws[i].bit;
			unsigned *xa = kws[i].bit == BE_CAP_XCLIENT ? xclient :
			    kws[i].bit == BE_CAP_XFORWARD ? xforward : NULL;
			for (const char *a = p + kl; xa && a < e; ) {
				while (*a == ' ')
					a++;
				size_t al = strcspn(a, " \r");
				for (size_t j = 0; j < ARRAY_SIZE(attrs); j++)
					if (strlen(attrs[j].kw) == al &&
					    strncasecmp(a, attrs[j].kw, al) == 0)
						*xa |= attrs[j].bit;
				a += al > 0 ? al : 1;	/* a bare CR: step over it */
			}
		}
		l = e;
	}
	return caps;
}

void
be_xtext(const char *s, char *out, size_t sz)
{
	size_t o = 0;

	for (; *s && o + 4 < sz; s++) {
		unsigned char c = (unsigned char)*s;
		if (c < 33 || c > 126 || c == '+' || c == '=')
			o += (size_t)snprintf(out + o, sz - o, "+%02X", c);
		else
			out[o++] = (char)c;
	}
	out[o] = '\0';
}

struct be *
be_new(struct ev_loop *l, const struct conf *c, const char *sid, be_cb *cb, void *arg)
{
	struct be *be = xcalloc(1, sizeof(*be));

	be->loop = l;
	be->conf = c;
	snprintf(be->sid, sizeof(be->sid), "%s", sid);
	be->io.fd = -1;
	be->cb = cb;
	be->arg = arg;
	return be;
}

static void
be_enter_state(struct be *be, enum be_state st)
{
	if (log_debug_enabled())
		log_debug("%s: backend %s -> %s", be->sid, be_state_names[be->state],
		    be_state_names[st]);
	be->state = st;
}

int be_ready(const struct be *be) { return be != NULL && be->state == BE_S_READY; }
int be_alive(const struct be *be) { return be != NULL && be->state != BE_S_CLOSED; }
unsigned be_caps(const struct be *be) { return be->caps; }
int be_introduced(const struct be *be) { return be->introduced; }
int be_stale(const struct be *be) { return be_alive(be) && be->xforward_spent; }

/* Start a non-blocking connect to proxy.backend; 0 or -1. We wait for
 * the greeting (EV_READ), not for writability: one event fewer. */
static int
be_connect(struct be *be)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, one = 1;

	if (sockaddr_parse(be->conf->backend, SOCKADDR_NAMES, &ss, &len) == -1)
		return -1;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&ss, len) == -1 && errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	ev_add(be->loop, &be->io, fd, EV_READ, be_io, be);
	return 0;
}

void
be_open(struct be *be, const struct be_client *who)
{
	be_set_client(be, who);
	be->introduced = 0;
	be->noname = 0;
	if (be->state == BE_S_READY) {	/* from the pool: connected, EHLO said */
		be->reused = 1;
		be_introduce(be);
		return;
	}
	if (be->state != BE_S_CLOSED)
		fatalx("be_open in state %s", be_state_names[be->state]);
	be->reused = 0;
	be_reconnect(be);
}

/* A new connection for the client set in be->who. */
static void
be_reconnect(struct be *be)
{
	be->caps = be->xclient = be->xforward = 0;
	be->ehlo_caps = be->xclient_set = 0;
	be->introduced = 0;
	if (be_connect(be) == -1) {
		be_done(be, -1, "cannot connect", 14);
		return;
	}
	be->deadline = time_mono_ms() + (uint64_t)be->conf->timeout_backend_connect * 1000;
	be_enter_state(be, BE_S_CONNECTING);
}

static void
be_set_client(struct be *be, const struct be_client *who)
{
	free(be->who.addr);
	free(be->who.helo);
	free(be->who.name);
	free(be->who.dest);
	be->who.addr = xstrdup(who->addr);
	be->who.dest = who->dest ? xstrdup(who->dest) : NULL;
	be->who.dest_v6 = who->dest_v6;
	be->who.dest_port = who->dest_port;
	be->who.helo = xstrdup(who->helo ? who->helo : "");
	/* "unknown" is policy's word for no verified name */
	be->who.name = who->name && strcmp(who->name, "unknown") != 0 ?
	    xstrdup(who->name) : NULL;
	be->who.v6 = who->v6;
	be->who.port = who->port;
	be->who.esmtp = who->esmtp;
}

void
be_command(struct be *be, const char *line)
{
	be_commands(be, &line, 1);
}

void
be_commands(struct be *be, const char **lines, int n)
{
	if (be->state != BE_S_READY)
		fatalx("be_commands in state %s", be_state_names[be->state]);
	if (n < 1 || n > BE_MAX_GROUP)
		fatalx("be_commands: %d commands", n);
	be_enter_state(be, BE_S_CMD);
	for (int i = 0; i < n; i++) {
		be->queue[i] = xstrdup(lines[i]);
		if (be->introduced && !be->xclient_set && strncasecmp(lines[i], "MAIL", 4) == 0)
			be->xforward_spent = 1;
	}
	be->nqueue = n;
	be->iqueue = 0;
	be->nout = 0;
	be_send_queued(be);
}

/* Send what may go now: the whole group with PIPELINING, else the next. */
static void
be_send_queued(struct be *be)
{
	while (be->iqueue < be->nqueue) {
		char *line = be->queue[be->iqueue];
		be->queue[be->iqueue++] = NULL;
		buf_add(&be->out, line, strlen(line));
		buf_add(&be->out, "\r\n", 2);
		free(line);
		be->nout++;
		if (!(be->caps & BE_CAP_PIPELINING))
			break;
	}
	be->deadline = time_mono_ms() + (uint64_t)be->conf->timeout_backend * 1000;
	be_try_write(be);
}

static void
be_queue_clear(struct be *be)
{
	for (int i = 0; i < be->nqueue; i++) {
		free(be->queue[i]);
		be->queue[i] = NULL;
	}
	be->nqueue = be->iqueue = be->nout = 0;
}

void
be_body(struct be *be, struct spool_out *o)
{
	if (be->state != BE_S_READY)
		fatalx("be_body in state %s", be_state_names[be->state]);
	be->body = o;
	be->deadline = time_mono_ms() + (uint64_t)be->conf->timeout_backend * 1000;
	be_enter_state(be, BE_S_BODY);
	be_write(be);	/* most messages fit the socket buffer at once */
}

static void
be_send(struct be *be, const char *line)
{
	buf_add(&be->out, line, strlen(line));
	buf_add(&be->out, "\r\n", 2);
	be->deadline = time_mono_ms() + (uint64_t)be->conf->timeout_backend * 1000;
	be_try_write(be);
}

/* Send now rather than on the next EPOLLOUT; whatever is left (or a
 * failure) is dealt with by be_write() on the next event, so no callback
 * runs from inside the caller's be_command(). */
static void
be_try_write(struct be *be)
{
	if (be->state != BE_S_CONNECTING && be->out.len > 0) {
		ssize_t w = send(be->io.fd, buf_ptr(&be->out), be->out.len,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w > 0)
			buf_drop(&be->out, (size_t)w);
	}
	be_update_events(be);
}

static void
be_update_events(struct be *be)
{
	unsigned want = EV_READ;

	if (be->state != BE_S_CONNECTING && (be->out.len > 0 || be->state == BE_S_BODY))
		want |= EV_WRITE;
	ev_set(be->loop, &be->io, want);
}

static void
be_io(struct ev_io *io, unsigned r)
{
	struct be *be = io->arg;

	if (be->state == BE_S_CONNECTING) {
		int err = 0;
		socklen_t l = sizeof(err);
		if (getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &err, &l) == -1 || err != 0) {
			be_fail(be, "cannot connect");
			return;
		}
		be_enter_state(be, BE_S_GREETING);
		be_read(be);	/* the greeting is what woke us */
		return;
	}
	if (r & EV_WRITE) {
		be_write(be);
		if (be->io.fd == -1)
			return;
	}
	if (r & EV_READ)
		be_read(be);
}

static void
be_write(struct be *be)
{
	for (int rounds = 0; rounds < 64; rounds++) {
		if (be->out.len == 0 && be->state == BE_S_BODY) {
			size_t n = spool_out_fill(be->body, be_scratch, LIM_IO_CHUNK);
			if (n > 0) {
				/* straight from the scratch; only what the socket
				 * did not take is kept (and allocated) */
				ssize_t w = send(be->io.fd, be_scratch, n, MSG_NOSIGNAL);
				if (w == -1 && errno != EAGAIN && errno != EINTR) {
					be_fail(be, "write failed");
					return;
				}
				if (w < 0)
					w = 0;
				buf_add(&be->out, be_scratch + w, n - (size_t)w);
				be->deadline = time_mono_ms() +
				    (uint64_t)be->conf->timeout_backend * 1000;
				if (be->out.len > 0)
					break;	/* the socket is full */
				continue;
			}
			/* the final dot went out: await the reply */
			be->body = NULL;
			be->nout = 1;
			be_enter_state(be, BE_S_CMD);
			/* RFC 5321 4.5.3.2.6: the reply to the dot may take long */
			be->deadline = time_mono_ms() +
			    (uint64_t)be->conf->timeout_data_term * 1000;
			break;
		}
		if (be->out.len == 0)
			break;
		ssize_t w = send(be->io.fd, buf_ptr(&be->out), be->out.len, MSG_NOSIGNAL);
		if (w == -1 && (errno == EAGAIN || errno == EINTR))
			break;
		if (w == -1) {
			be_fail(be, "write failed");
			return;
		}
		buf_drop(&be->out, (size_t)w);
		if (be->state == BE_S_BODY)
			be->deadline = time_mono_ms() +
			    (uint64_t)be->conf->timeout_backend * 1000;
	}
	be_update_events(be);
}

static void
be_read(struct be *be)
{
	/* Into the scratch, then only the bytes into be->in: replies are a
	 * few dozen bytes, and a 16 KB buffer per read cost a large malloc
	 * and free every round trip. */
	ssize_t n = recv(be->io.fd, be_scratch, LIM_IO_CHUNK, 0);
	size_t ll;
	long used;

	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		be_fail(be, n == 0 ? "connection closed" : "read failed");
		return;
	}
	buf_add(&be->in, be_scratch, (size_t)n);
	while ((used = line_find(buf_ptr(&be->in), be->in.len, LIM_REPLY_LINE, &ll)) != 0) {
		int rc;
		if (used < 0) {
			be_fail(be, "reply line too long");
			return;
		}
		rc = be_reply_feed(&be->reply, buf_ptr(&be->in), ll);
		buf_drop(&be->in, (size_t)used);
		if (rc == -1) {
			be_fail(be, "malformed reply");
			return;
		}
		if (rc == 1) {
			/* lockstep: nothing may follow but replies we still owe */
			if (be->in.len > 0 && !(be->state == BE_S_CMD && be->nout > 1)) {
				be_fail(be, "reply out of turn");
				return;
			}
			be_on_reply(be);
			if (be->state != BE_S_CMD)
				return;	/* done, or closed by the owner */
		}
	}
}

/* A complete reply arrived: advance the handshake, or hand it over. */
static void
be_on_reply(struct be *be)
{
	struct be_reply *r = &be->reply;
	char line[LIM_PATH + 64];

	be->deadline = 0;
	switch (be->state) {
	case BE_S_XCLIENT:
		if (r->code / 100 == 2 && r->code != 220) {
			/* accepted without a new greeting (smtp-sink does this) */
			be->introduced = be->xclient_set = 1;
			be_enter_state(be, BE_S_READY);
			be_reply_clear(r);
			be_done(be, 250, "", 0);
			return;
		}
		if (r->code != 220) {
			be_refused(be, "XCLIENT");
			return;
		}
		be->introduced = be->xclient_set = 1;
		be_reply_clear(r);
		be_greet_as_client(be);
		return;
	case BE_S_GREETING:
		if (r->code != 220) {
			be_fail(be, "no 220 greeting");
			return;
		}
		be_enter_state(be, BE_S_EHLO);
		snprintf(line, sizeof(line), "EHLO %s", be->conf->hostname);
		be_reply_clear(r);
		be_send(be, line);
		return;
	case BE_S_EHLO:
		if (r->code != 250) {
			be_fail(be, "EHLO refused");
			return;
		}
		be->caps = be_ehlo_caps(buf_str(&r->text), &be->xclient, &be->xforward);
		be->ehlo_caps = 1;
		be_reply_clear(r);
		be_introduce(be);
		return;
	case BE_S_XFORWARD:
		if (r->code != 250) {
			be_refused(be, "XFORWARD");
			return;
		}
		be->introduced = 1;
		be_enter_state(be, BE_S_READY);
		be_reply_clear(r);
		be_done(be, 250, "", 0);
		return;
	case BE_S_EHLO2:
		if (r->code != 250) {
			be_fail(be, "EHLO refused after XCLIENT");
			return;
		}
		/* what the backend offers this client now: a HELO reply
		 * lists nothing (and then the pool cannot tell) */
		be->caps = be_ehlo_caps(buf_str(&r->text), &be->xclient, &be->xforward);
		be->ehlo_caps = be->who.esmtp;
		be_enter_state(be, BE_S_READY);
		be_reply_clear(r);
		be_done(be, 250, "", 0);
		return;
	case BE_S_CMD: {
		struct be_reply done = *r;
		memset(r, 0, sizeof(*r));
		be->nout--;
		if (be->nout == 0 && be->iqueue == be->nqueue)
			be_enter_state(be, BE_S_READY);	/* the group is answered */
		else if (be->nout == 0)
			be_send_queued(be);		/* lockstep: the next one */
		if (done.code == 421)	/* the backend is leaving */
			be_teardown(be);
		be_update_events(be);
		be->cb(be->arg, done.code, buf_str(&done.text), done.text.len);
		buf_free(&done.text);
		return;
	}
	default:	/* READY: unsolicited (e.g. a 421 timeout) */
		be_fail(be, "unsolicited reply");
		return;
	}
}

/* Append " KEY=value" (value xtext-encoded unless raw) to line. */
static void
be_attr(char *line, size_t sz, const char *key, const char *pfx, const char *val)
{
	char v[3 * LIM_DOMAIN + 16];
	size_t o = strlen(line);

	be_xtext(val, v, sizeof(v));
	snprintf(line + o, sz - o, " %s=%s%s", key, pfx, v);
}

/*
 * XCLIENT if offered and enabled, else XFORWARD, else nothing. Every
 * attribute the backend names is sent, [UNAVAILABLE] where we know none:
 * the backend keeps what is not sent, and on a pooled leg that would be
 * the last client's.
 */
static void
be_introduce(struct be *be)
{
	char line[2048], port[16];
	const char *name = be->noname ? NULL : be->who.name;
	unsigned xa;

	if (!be->conf->xclient || !(be->caps & (BE_CAP_XCLIENT | BE_CAP_XFORWARD))) {
		be_enter_state(be, BE_S_READY);
		be_done(be, 250, "", 0);
		return;
	}
	int xc = (be->caps & BE_CAP_XCLIENT) != 0;
	xa = xc ? be->xclient : be->xforward;
	be->xforward_spent = 0;
	snprintf(line, sizeof(line), "%s", xc ? "XCLIENT" : "XFORWARD");
	if (xa & BE_XA_ADDR)
		be_attr(line, sizeof(line), "ADDR", be->who.v6 ? "IPV6:" : "", be->who.addr);
	if (xa & BE_XA_PORT) {
		snprintf(port, sizeof(port), "%d", be->who.port);
		be_attr(line, sizeof(line), "PORT", "", port);
	}
	if (xa & BE_XA_NAME)
		be_attr(line, sizeof(line), "NAME", name ? "" : "[UNAVAILABLE]", name ? name : "");
	if (xa & BE_XA_PROTO)
		be_attr(line, sizeof(line), "PROTO", "", be->who.esmtp ? "ESMTP" : "SMTP");
	if (xa & BE_XA_HELO)
		be_attr(line, sizeof(line), "HELO", be->who.helo[0] ? "" : "[UNAVAILABLE]",
		    be->who.helo);
	if (xa & BE_XA_LOGIN)	/* Postern takes no AUTH from Internet clients */
		be_attr(line, sizeof(line), "LOGIN", "[UNAVAILABLE]", "");
	if ((xa & BE_XA_DESTADDR) && be->who.dest != NULL)
		be_attr(line, sizeof(line), "DESTADDR", be->who.dest_v6 ? "IPV6:" : "",
		    be->who.dest);
	if ((xa & BE_XA_DESTPORT) && be->who.dest != NULL) {
		snprintf(port, sizeof(port), "%d", be->who.dest_port);
		be_attr(line, sizeof(line), "DESTPORT", "", port);
	}
	be_enter_state(be, xc ? BE_S_XCLIENT : BE_S_XFORWARD);
	be_send(be, line);
}

/* The new greeting after XCLIENT: Postfix then sees the client's own
 * HELO/EHLO name (its smtpd_helo_restrictions and Received: header), and
 * HELO where the client said HELO. */
static void
be_greet_as_client(struct be *be)
{
	char line[LIM_HELO + 16];

	snprintf(line, sizeof(line), "%s %s", be->who.esmtp ? "EHLO" : "HELO",
	    be->who.helo[0] != '\0' ? be->who.helo : be->conf->hostname);
	be_enter_state(be, BE_S_EHLO2);
	be_send(be, line);
}

/*
 * The backend refused to take this client's identity (be->reply): the
 * connection still carries the last one (Postern's, or a pooled leg's
 * previous client), so nothing may run on it. A pooled leg gets a fresh
 * connection; a refused NAME (Postfix: "501 5.5.4 Bad NAME syntax" for a
 * reverse name it finds invalid) goes once more as [UNAVAILABLE]; else the
 * owner hears -1 and the client a 4xx.
 */
static void
be_refused(struct be *be, const char *verb)
{
	struct be_reply *r = &be->reply;

	log_warn("%s: backend refused %s for [%s]%s: %.*s", be->sid, verb, be->who.addr,
	    be->reused ? " on a pooled connection" : "",
	    (int)strcspn(buf_str(&r->text), "\r"), buf_str(&r->text));
	if (be->reused)
		be->reused = 0;
	else if (be->who.name != NULL && !be->noname && r->code / 100 == 5)
		be->noname = 1;
	else {
		be_fail(be, "introduction refused");
		return;
	}
	log_info("%s: backend: new connection to introduce [%s]%s", be->sid, be->who.addr,
	    be->noname ? " with NAME=[UNAVAILABLE]" : "");
	be_teardown(be);
	be_reconnect(be);
}

/* Report to the owner; nothing of be is touched afterwards. */
static void
be_done(struct be *be, int code, const char *text, size_t len)
{
	be->cb(be->arg, code, text, len);
}

static void
be_fail(struct be *be, const char *why)
{
	int waiting = be->state != BE_S_READY && be->state != BE_S_CLOSED;

	if (be->state != BE_S_CLOSED)
		log_info("%s: backend %s: %s", be->sid, be->conf->backend, why);
	be_teardown(be);
	if (waiting)
		be_done(be, -1, why, strlen(why));
}

void
be_tick(struct be *be, uint64_t now)
{
	if (be->deadline != 0 && now > be->deadline)
		be_fail(be, "timeout");
}

void
be_close(struct be *be)
{
	if (be->state == BE_S_READY && be->out.len == 0)
		(void)send(be->io.fd, "QUIT\r\n", 6, MSG_NOSIGNAL | MSG_DONTWAIT);
	be_teardown(be);
}

/* Close the socket and drop everything in flight; no callback. */
static void
be_teardown(struct be *be)
{
	ev_del(be->loop, &be->io);
	buf_free(&be->in);
	buf_free(&be->out);
	be_reply_clear(&be->reply);
	be_queue_clear(be);
	be->body = NULL;
	be->deadline = 0;
	be_enter_state(be, BE_S_CLOSED);
}

void
be_free(struct be *be)
{
	if (be == NULL)
		return;
	be_close(be);
	conf_unref(be->pconf);
	free(be->who.addr);
	free(be->who.helo);
	free(be->who.name);
	free(be->who.dest);
	free(be);
}

/* ---- the pool -------------------------------------------------------- */

struct be_pool *
be_pool_new(void)
{
	return xcalloc(1, sizeof(struct be_pool));
}

/* Set once the pool's warning was logged; be_probe() re-arms it. */
static atomic_int be_pool_warned;

/* Can this leg introduce the next client? Its last EHLO reply must offer
 * XCLIENT, or XFORWARD where no XCLIENT changed the identity (XFORWARD
 * only names the client in logs: Postfix still applies its restrictions
 * to the address XCLIENT set, and offers XFORWARD to it), unless
 * introductions are off. */
static int
be_reusable(const struct be *be)
{
	unsigned need = be->xclient_set ? BE_CAP_XCLIENT : BE_CAP_XCLIENT | BE_CAP_XFORWARD;

	if (!be->conf->xclient)
		return 1;
	if (be->ehlo_caps && (be->caps & need))
		return 1;
	if (be->ehlo_caps && atomic_exchange(&be_pool_warned, 1) == 0)
		log_warn("backend %s: proxy.backend_pool unused: %s, so a connection "
		    "cannot introduce the next client and each session opens its own. "
		    "Postfix checks smtpd_authorized_xclient_hosts again against the "
		    "address XCLIENT set; on a smtpd only Postern can reach (loopback), "
		    "smtpd_authorized_xclient_hosts = static:all keeps the pool useful",
		    be->conf->backend, be->introduced ?
		    "after XCLIENT the backend no longer offers it" :
		    "the backend offers neither XCLIENT nor XFORWARD");
	return 0;
}

int
be_pool_put(struct be_pool *p, struct be *be, int max, int dirty)
{
	if (max > BE_POOL_MAX)
		max = BE_POOL_MAX;
	/* After XCLIENT and the client's HELO nothing says whether XCLIENT
	 * is still offered: an EHLO of ours asks (and resets a transaction
	 * too), off the next session's path. */
	int ask = be->conf->xclient && !be->ehlo_caps;
	char line[LIM_DOMAIN + 8];

	if (p == NULL || max <= 0 || !be_ready(be) || be->out.len > 0 || be->in.len > 0)
		return 0;
	if (!ask && !be_reusable(be))
		return 0;
	while (p->n >= max)
		be_pool_drop(p, 0);
	be->pconf = conf_ref((struct conf *)be->conf);
	be->idle_since = time_mono_ms();
	be->cb = be_pool_rset_cb;
	be->arg = be;
	p->idle[p->n++] = be;
	if (ask) {
		snprintf(line, sizeof(line), "EHLO %s", be->conf->hostname);
		be_command(be, line);
	} else if (dirty)	/* MAIL went out but no final reply closed it */
		be_command(be, "RSET");
	return 1;
}

/* The reply to a pooled leg's RSET or EHLO: anything but 2xx, or an EHLO
 * reply without the XCLIENT the next client needs, and it goes. */
static void
be_pool_rset_cb(void *arg, int code, const char *text, size_t len)
{
	struct be *be = arg;

	(void)len;
	if (code == -1)
		return;
	if (code / 100 != 2) {
		be_close(be);	/* the tick frees it */
		return;
	}
	if (!be->ehlo_caps) {
		be->caps = be_ehlo_caps(text, &be->xclient, &be->xforward);
		be->ehlo_caps = 1;
		if (!be_reusable(be))
			be_close(be);
	}
}

/* Close and free entry i (QUIT when idle). */
static void
be_pool_drop(struct be_pool *p, int i)
{
	be_free(p->idle[i]);
	memmove(&p->idle[i], &p->idle[i + 1], (size_t)(p->n - i - 1) * sizeof(p->idle[0]));
	p->n--;
}

/* Newest first: it was idle the shortest time. One whose RSET is still
 * out stays; one the backend closed, or for another backend (a reload
 * changed proxy.backend or proxy.xclient), is closed instead. */
struct be *
be_pool_take(struct be_pool *p, const struct conf *c, const char *sid, be_cb *cb, void *arg)
{
	for (int i = p == NULL ? -1 : p->n - 1; i >= 0; i--) {
		struct be *be = p->idle[i];
		if (!be_alive(be) || strcmp(be->conf->backend, c->backend) != 0 ||
		    be->conf->xclient != c->xclient) {
			be_pool_drop(p, i);
			continue;
		}
		if (!be_ready(be))
			continue;
		memmove(&p->idle[i], &p->idle[i + 1], (size_t)(p->n - i - 1) * sizeof(p->idle[0]));
		p->idle[--p->n] = NULL;
		be->conf = c;
		conf_unref(be->pconf);
		be->pconf = NULL;
		snprintf(be->sid, sizeof(be->sid), "%s", sid);
		be->cb = cb;
		be->arg = arg;
		return be;
	}
	return NULL;
}

void
be_pool_tick(struct be_pool *p, uint64_t now)
{
	for (int i = 0; i < p->n; ) {
		struct be *be = p->idle[i];
		uint64_t idle = BE_POOL_IDLE_S;
		if ((uint64_t)be->conf->timeout_backend < idle)
			idle = (uint64_t)be->conf->timeout_backend;
		be_tick(be, now);	/* an RSET that gets no answer */
		if (!be_alive(be) || now - be->idle_since > idle * 1000)
			be_pool_drop(p, i);
		else
			i++;
	}
}

int
be_pool_count(const struct be_pool *p)
{
	return p == NULL ? 0 : p->n;
}

void
be_pool_free(struct be_pool *p)
{
	if (p == NULL)
		return;
	while (p->n > 0)
		be_pool_drop(p, p->n - 1);
	free(p);
}

/* ---- the probe ------------------------------------------------------- */

struct be_probe_job {
	char	*backend;
	char	*hostname;
	int	timeout_s;
	int	xclient;
};

static void
be_probe_free(struct be_probe_job *j)
{
	free(j->backend);
	free(j->hostname);
	free(j);
}

/* Greeting, EHLO, QUIT; the EHLO reply's caps, or -1. */
static int
be_probe_caps(const struct be_probe_job *j, unsigned *caps)
{
	char err[256];
	struct smtpc *s = smtpc_open(j->backend, j->hostname, j->timeout_s, err, sizeof(err));

	if (s == NULL)
		return -1;
	*caps = smtpc_caps(s);
	smtpc_close(s);
	return 0;
}

static void *
be_probe_main(void *arg)
{
	struct be_probe_job *j = arg;
	unsigned caps = 0;
	const char *what;

	if (be_probe_caps(j, &caps) == -1) {
		log_warn("backend probe: %s: no greeting or EHLO reply; "
		    "sessions get 4xx until it answers", j->backend);
		be_probe_free(j);
		return NULL;
	}
	if (j->xclient && (caps & BE_CAP_XCLIENT)) {
		log_info("backend probe: %s offers XCLIENT: each client is introduced "
		    "as itself", j->backend);
		be_probe_free(j);
		return NULL;
	}
	what = !j->xclient ? "proxy.xclient = no" : (caps & BE_CAP_XFORWARD) ?
	    "the backend offers XFORWARD but not XCLIENT (it logs each client, but "
	    "applies its restrictions to Postern)" :
	    "the backend offers neither XCLIENT nor XFORWARD to Postern";
	log_warn("backend probe: %s: %s. Every client reaches the MTA as Postern's own "
	    "address, so that address must not be in the MTA's relay-permitted "
	    "networks (Postfix: mynetworks, permit_mynetworks) or Postern relays for "
	    "anyone, and the MTA's client and HELO restrictions and rate limits see "
	    "Postern. Fix: authorise Postern's address for XCLIENT (Postfix: "
	    "smtpd_authorized_xclient_hosts = 127.0.0.1)%s", j->backend, what,
	    j->xclient ? "" : " and set proxy.xclient = yes");
	be_probe_free(j);
	return NULL;
}

void
be_probe(const struct conf *c)
{
	struct be_probe_job *j = xcalloc(1, sizeof(*j));
	pthread_attr_t at;
	pthread_t t;

	atomic_store(&be_pool_warned, 0);
	j->backend = xstrdup(c->backend);
	j->hostname = xstrdup(c->hostname);
	j->timeout_s = c->timeout_backend_connect > 0 ? c->timeout_backend_connect : 30;
	j->xclient = c->xclient;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	if ((errno = pthread_create(&t, &at, be_probe_main, j)) != 0) {
		log_warn("backend probe: pthread_create: %s", strerror(errno));
		be_probe_free(j);
	}
	pthread_attr_destroy(&at);
}
