/*
 * smtp.c -- the SMTP proxy session and the loops that run them (see smtp.h).
 *
 * Public calls: smtp_loop_new/listen/run/drain/free (from cli/daemon.c),
 * smtp_parse_cmd().
 * Ownership: a loop owns its sessions; a session owns its transaction
 * (spool, decision), its backend leg and its pol_session, except while a
 * policy job is out: then the job holds the pol_session and the spool, and
 * if the session dies meanwhile the loop frees them when the job returns.
 * smtp_free() is the only way a session ends; the memory goes in the
 * loop's after-batch hook, so events queued in the same batch are safe.
 * smtp_tx_end() is the only way a transaction ends.
 * Thread: everything below runs on one loop thread per session, except
 * the connection counters (shared, under a mutex), smtp_loop_new/free
 * (the daemon's main thread, before and after the loop runs) and
 * smtp_loop_drain (any thread).
 * Exposure: everything read from the client is hostile: each line and
 * the message are bounded (lim.h, struct conf), and logged text goes
 * through log_escape().
 */
#include "proxy/smtp.h"
#include "lib/addr.h"
#include "lib/buf.h"
#include "lib/conf.h"
#include "lib/lim.h"
#include "lib/prefix.h"
#include "lib/sockaddr.h"
#include "lib/stats.h"
#include "lib/util.h"
#include "policy/policy.h"
#include "proxy/be.h"
#include "proxy/ev.h"
#include "proxy/line.h"
#include "proxy/pxp.h"
#include "proxy/spool.h"
#include "proxy/tls.h"
#include "proxy/work.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Sessions per loop are found by id in this many hash buckets. */
#define SMTP_HASH	1024
/* Per-IP connection counts live in this many buckets (all loops). */
#define SMTP_IPHASH	4096
/* Connections accepted per listener event. One: the listener is level-
 * triggered, so the next epoll_wait() (which the loop makes anyway)
 * reports it again while connections wait, a flood cannot starve the
 * sessions of a loop, and no accept4() per event ends in EAGAIN. */
#define SMTP_ACCEPT_BATCH 1
/* Loop tick: timeouts are checked at this granularity. */
#define SMTP_TICK_MS	1000

enum smtp_state {
	SMTP_S_CONNECT = 0,	/* banner held until connect checks pass */
	SMTP_S_GREETED,
	SMTP_S_HELO,
	SMTP_S_MAIL,		/* backend opened, MAIL relayed */
	SMTP_S_RCPT,
	SMTP_S_DATA,		/* spooling, under size and line limits */
	SMTP_S_EOM,		/* content verdict, then the backend */
	SMTP_S_TLS,		/* STARTTLS handshake */
	SMTP_S_QUIT,		/* last reply queued; close when sent */
	SMTP_S_PROXYHDR,	/* PROXY protocol: the balancer's header comes
				   first, before CONNECT (smtp_proxyhdr) */
};

static const char *smtp_state_names[] = {
	"CONNECT", "GREETED", "HELO", "MAIL", "RCPT", "DATA", "EOM", "TLS", "QUIT",
	"PROXYHDR",
};

#define S(st)	(1u << (st))

/* Facts about the session. */
#define SMTP_F_EHLO	0x01u	/* EHLO (not HELO): ESMTP parameters allowed */
#define SMTP_F_TLS	0x02u
#define SMTP_F_DISCARD	0x04u	/* skipping the rest of an over-long line */
#define SMTP_F_DEAD	0x08u	/* smtp_free() ran; memory goes after the batch */
#define SMTP_F_WANTW	0x10u	/* TLS needs a writable socket to read */
#define SMTP_F_BEDIRTY	0x20u	/* the backend holds an unfinished transaction:
				   RSET it before the next MAIL */
#define SMTP_F_NOIP	0x40u	/* counted in the total only, not under s->ip:
				   the PROXY header has not named the client */

/*
 * What the session waits for: a policy job, or the next reply of the
 * backend operation that is out. Input processing pauses unless NONE.
 * Only smtp_enter_wait() writes s->wait.
 */
enum smtp_wait {
	SMTP_W_NONE = 0,
	SMTP_W_POLICY,		/* s->job is out */
	SMTP_W_BE_OPEN,		/* connect, EHLO, XCLIENT for a MAIL; then its 250 */
	SMTP_W_BE_REOPEN,	/* the same for an RCPT (the leg left since MAIL);
				   then the RCPT's group */
	/* An RCPT's group: [RSET] [MAIL] RCPT, pipelined; their replies
	 * come in this order. */
	SMTP_W_BE_RSET,		/* an earlier transaction was open there */
	SMTP_W_BE_MAIL,		/* MAIL goes with the first RCPT policy lets by */
	SMTP_W_BE_RCPT,
	SMTP_W_BE_DATA,		/* DATA sent, waiting for 354 */
	SMTP_W_BE_BODY,		/* body sent, waiting for the final reply */
};

static const char *smtp_wait_names[] = {
	"NONE", "POLICY", "BE_OPEN", "BE_REOPEN", "BE_RSET", "BE_MAIL", "BE_RCPT",
	"BE_DATA", "BE_BODY",
};

/* Whether the session may read from the client now (smtp_may_read). */
enum smtp_read {
	SMTP_R_NO,		/* not in this state, or the client must first
				   read the replies it has */
	SMTP_R_LATER,		/* not until our answer is out: the client's
				   next step waits for it */
	SMTP_R_YES,
};

struct smtp_loop;

struct smtp_tx {
	char		*from;
	char		*params;	/* MAIL params for the backend */
	int		 utf8;
	int		 nrcpt;		/* accepted by the backend */
	int		 nrcpt_tried;
	struct addr_cmd	*cur;		/* the RCPT under test */
	struct spool	*spool;
	struct spool_out out;
	char		*prepend;
	struct pol_decision d;
	struct pol_msg	 msg;
	uint64_t	 t_start;
	int		 data_started;	/* bytes came after 354 */
	uint64_t	 t_data;	/* 354 sent, monotonic ms */
	unsigned long long data_bytes;	/* received after 354 */
	/* MAIL goes to the backend with the first RCPT that policy lets
	 * through (pipelined with it), so a MAIL that never gets a recipient
	 * costs the backend nothing. */
	int		 mail_sent;
	char		*mail_fail;	/* the backend's refusal of MAIL, for the RCPT */
	int		 mail_fail_code;
	/* The last refusal of MAIL or RCPT, ours or the backend's: the
	 * outcome when no recipient gets through. */
	int		 refused;
	enum pol_outcome refused_outcome;
	const char	*refused_stage;
	char		*refused_text;
};

struct smtp_session {
	struct smtp_session *next, *prev, *hnext;
	struct smtp_loop *loop;
	struct conf	*conf;
	char		 id[ID_LEN + 1];
	char		 ip[INET6_ADDRSTRLEN];
	int		 port;
	int		 v6;
	/* where the client connected, from the PROXY header; family 0:
	 * our own socket's address (smtp_dest) */
	struct sockaddr_storage dest;
	uint64_t	 t_conn;	/* accepted, monotonic ms (stats) */
	struct ev_io	 io;
	SSL		*ssl;
	enum smtp_state	 state;
	enum smtp_wait	 wait;
	unsigned	 flags;
	char		*helo;
	struct buf	 in, out;
	struct pol_session *ps;
	struct work_job	*job;
	struct be	*be;
	struct smtp_tx	*tx;
	int		 errors, commands, commands_ok;
	uint64_t	 deadline;
};

struct smtp_loop {
	struct ev_loop	*ev;
	struct work_home *home;
	struct ev_io	 lis[CONF_MAX_LISTEN];
	int		 nlis;
	struct smtp_session *sessions, *graveyard;
	struct smtp_session *hash[SMTP_HASH];
	int		 nsessions;
	int		 jobs_out;
	int		 lis_paused;	/* accept() failed for want of resources */
	/* Reads land here first; a session keeps only what it has not
	 * processed yet, so no session holds a read-sized buffer. */
	char		 scratch[LIM_IO_CHUNK];
	uint64_t	 last_tick, drain_deadline;
	int		 draining;
	struct be_pool	*pool;		/* idle backend legs for the next sessions */
	int		 sched_batch;	/* the policy this thread runs under */
};

/* Connection counts shared by all loops. */
struct smtp_ipcount {
	struct smtp_ipcount *next;
	int		 n;
	char		 ip[INET6_ADDRSTRLEN];
};

static struct {
	pthread_mutex_t	 mu;
	int		 total;
	struct smtp_ipcount *ips[SMTP_IPHASH];
	atomic_int	 stop;
} smtp_conns = { .mu = PTHREAD_MUTEX_INITIALIZER };

struct smtp_cmd {
	const char	*verb;
	unsigned	 states;	/* S(state) where allowed */
	int		(*check)(struct smtp_session *, const char *);
	void		(*proceed)(struct smtp_session *, const char *);
	const char	*reply;		/* the whole answer when proceed is NULL */
};

/* Table of contents. */
static void	 smtp_trace(const struct smtp_session *, const char *what,
		    const char *from, const char *to);
static void	 smtp_enter_state(struct smtp_session *, enum smtp_state);
static void	 smtp_enter_wait(struct smtp_session *, enum smtp_wait);
static void	 smtp_reply(struct smtp_session *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	 smtp_reply_raw(struct smtp_session *, const char *, size_t);
static void	 smtp_close_after(struct smtp_session *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	 smtp_free(struct smtp_session *, const char *reason);
static void	 smtp_destroy(struct smtp_session *);
static void	 smtp_io(struct ev_io *, unsigned);
static void	 smtp_read(struct smtp_session *);
static void	 smtp_flush(struct smtp_session *);
static enum smtp_read smtp_may_read(const struct smtp_session *);
static void	 smtp_update_events(struct smtp_session *);
static void	 smtp_process(struct smtp_session *);
static void	 smtp_line(struct smtp_session *, char *, size_t);
static void	 smtp_data_input(struct smtp_session *);
static void	 smtp_error(struct smtp_session *);
static void	 smtp_set_deadline(struct smtp_session *);
static const char *smtp_deadline_passed(const struct smtp_session *, uint64_t);
static void	 smtp_policy(struct smtp_session *, enum pol_stage);
static void	 smtp_job_done(struct smtp_session *, struct work_job *);
static void	 smtp_jobs_back(void *);
static int	 smtp_refused(struct smtp_session *, struct pol_decision *);
static void	 smtp_decision_sane(struct smtp_session *, struct pol_decision *);
static void	 smtp_be_cb(void *, int, const char *, size_t);
static void	 smtp_be_relay(struct smtp_session *, enum smtp_wait);
static int	 smtp_be_group(enum smtp_wait);
static void	 smtp_be_take_pooled(struct smtp_session *);
static void	 smtp_be_rcpt_reply(struct smtp_session *, int, const char *, size_t);
static void	 smtp_mail_ok(struct smtp_session *);
static void	 smtp_tx_new(struct smtp_session *, const struct addr_cmd *);
static void	 smtp_tx_free(struct smtp_session *);
static enum pol_outcome smtp_outcome(int code, int backend);
static void	 smtp_tx_refused(struct smtp_session *, int code, int backend,
		    const char *stage, const char *text);
static void	 smtp_tx_end(struct smtp_session *, enum pol_outcome, const char *stage,
		    const char *text);
static void	 smtp_tx_record(struct smtp_session *, enum pol_outcome, const char *stage,
		    const char *text);
static void	 smtp_eom(struct smtp_session *);
static void	 smtp_eom_verdict(struct smtp_session *);
static void	 smtp_tls_step(struct smtp_session *);
static char	*smtp_received(struct smtp_session *);
static void	 smtp_peer(const struct sockaddr_storage *, char *, int *);
static void	 smtp_loop_add(struct smtp_loop *, struct smtp_session *);
static void	 smtp_hash_add(struct smtp_loop *, struct smtp_session *);
static void	 smtp_hash_del(struct smtp_loop *, struct smtp_session *);
static struct smtp_ipcount **smtp_conn_slot(const char *);
static int	 smtp_conn_take(const struct conf *, const char *, int total);
static void	 smtp_conn_give(const char *);
static void	 smtp_accept(struct ev_io *, unsigned);
static void	 smtp_accept_one(struct smtp_loop *, int, const struct sockaddr_storage *,
		    socklen_t);
static void	 smtp_begin(struct smtp_session *, const struct sockaddr_storage *,
		    socklen_t, const char *via);
static int	 smtp_proxyhdr(struct smtp_session *);
static int	 smtp_dest(const struct smtp_session *, struct sockaddr_storage *);
static int	 smtp_addr_error(struct smtp_session *, enum addr_err, int);
static int	 smtp_mail_params_ok(struct smtp_session *, const struct addr_cmd *);
static int	 smtp_notify_ok(const char *);
static const char *const *smtp_param_enum(const char *);
static int	 smtp_param_enum_ok(const char *const *, const char *);
static void	 smtp_be_rcpt_group(struct smtp_session *);
static void	 smtp_tick(struct smtp_loop *, uint64_t);
static void	 smtp_sched(struct smtp_loop *, int batch);
static int	 smtp_after(void *);

static int	 smtp_check_helo(struct smtp_session *, const char *);
static int	 smtp_check_mail(struct smtp_session *, const char *);
static int	 smtp_check_rcpt(struct smtp_session *, const char *);
static int	 smtp_check_data(struct smtp_session *, const char *);
static int	 smtp_check_noarg(struct smtp_session *, const char *);
static int	 smtp_check_starttls(struct smtp_session *, const char *);
static void	 smtp_proceed_helo(struct smtp_session *, const char *);
static void	 smtp_proceed_ehlo(struct smtp_session *, const char *);
static void	 smtp_proceed_mail(struct smtp_session *, const char *);
static void	 smtp_proceed_rcpt(struct smtp_session *, const char *);
static void	 smtp_proceed_data(struct smtp_session *, const char *);
static void	 smtp_proceed_rset(struct smtp_session *, const char *);
static void	 smtp_proceed_quit(struct smtp_session *, const char *);
static void	 smtp_proceed_help(struct smtp_session *, const char *);
static void	 smtp_proceed_starttls(struct smtp_session *, const char *);

#define SMTP_S_CMDS	(S(SMTP_S_GREETED) | S(SMTP_S_HELO) | S(SMTP_S_MAIL) | S(SMTP_S_RCPT))

static const struct smtp_cmd smtp_cmds[] = {
	{ "HELO", SMTP_S_CMDS, smtp_check_helo, smtp_proceed_helo, NULL },
	{ "EHLO", SMTP_S_CMDS, smtp_check_helo, smtp_proceed_ehlo, NULL },
	{ "MAIL", S(SMTP_S_HELO), smtp_check_mail, smtp_proceed_mail, NULL },
	{ "RCPT", S(SMTP_S_MAIL) | S(SMTP_S_RCPT), smtp_check_rcpt, smtp_proceed_rcpt, NULL },
	{ "DATA", S(SMTP_S_MAIL) | S(SMTP_S_RCPT), smtp_check_data, smtp_proceed_data, NULL },
	{ "RSET", SMTP_S_CMDS, smtp_check_noarg, smtp_proceed_rset, NULL },
	{ "NOOP", SMTP_S_CMDS, NULL, NULL, "250 2.0.0 Ok" },
	{ "QUIT", SMTP_S_CMDS, NULL, smtp_proceed_quit, NULL },
	/* RFC 5321 3.5.3: 252 when we cannot verify; EXPN is optional */
	{ "VRFY", SMTP_S_CMDS, NULL, NULL,
	    "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery" },
	{ "EXPN", SMTP_S_CMDS, NULL, NULL, "502 5.5.1 Error: command not implemented" },
	{ "HELP", SMTP_S_CMDS, NULL, smtp_proceed_help, NULL },
	{ "STARTTLS", S(SMTP_S_GREETED) | S(SMTP_S_HELO), smtp_check_starttls,
	    smtp_proceed_starttls, NULL },
};

/* ---- the command line ---------------------------------------------- */

int
smtp_parse_cmd(const char *line, const char **arg)
{
	size_t vl = strcspn(line, " ");

	for (size_t i = 0; i < ARRAY_SIZE(smtp_cmds); i++) {
		if (strlen(smtp_cmds[i].verb) != vl ||
		    strncasecmp(line, smtp_cmds[i].verb, vl) != 0)
			continue;
		*arg = line + vl;
		while (**arg == ' ')
			(*arg)++;
		return (int)i;
	}
	*arg = "";
	return -1;
}

/* The debug line of a door: what changes ("" for the state), old -> new. */
static void
smtp_trace(const struct smtp_session *s, const char *what, const char *from,
    const char *to)
{
	if (log_debug_enabled())
		log_debug("%s: %s%s -> %s", s->id, what, from, to);
}

static void
smtp_enter_state(struct smtp_session *s, enum smtp_state st)
{
	smtp_trace(s, "", smtp_state_names[s->state], smtp_state_names[st]);
	s->state = st;
	if (st == SMTP_S_DATA)
		s->tx->t_data = time_mono_ms();
	smtp_set_deadline(s);
}

/* The one door into a wait (and out of it). */
static void
smtp_enter_wait(struct smtp_session *s, enum smtp_wait w)
{
	smtp_trace(s, "wait ", smtp_wait_names[s->wait], smtp_wait_names[w]);
	s->wait = w;
}

/*
 * Start the clock on the unit of work the client owes us now: a whole
 * command line (and the wait before it) within proxy.timeout_command, as
 * Postfix's per-request deadline; in DATA each block within the RFC 5321
 * 4.5.3.2.4/4.5.3.2.5 timeouts and the whole phase within
 * timeout_data_min + bytes / data_rate_min. Called when a unit begins, never
 * for bytes in the middle of one: a trickle cannot hold a line open.
 */
static void
smtp_set_deadline(struct smtp_session *s)
{
	const struct conf *c = s->conf;
	uint64_t now = time_mono_ms(), total;

	if (s->state != SMTP_S_DATA) {
		s->deadline = now + (uint64_t)c->timeout_command * 1000;
		return;
	}
	s->deadline = now + (uint64_t)(s->tx->data_started ? c->timeout_data_block :
	    c->timeout_data_init) * 1000;
	total = s->tx->t_data + (uint64_t)c->timeout_data_min * 1000 +
	    s->tx->data_bytes * 1000 / (unsigned long long)c->data_rate_min;
	if (total < s->deadline)
		s->deadline = total;
}

/* Which bound the client overran, or NULL. proxy.session_max counts from
 * the connection, whatever the session has been doing. */
static const char *
smtp_deadline_passed(const struct smtp_session *s, uint64_t now)
{
	if (now > s->t_conn + (uint64_t)s->conf->session_max * 1000 &&
	    s->state != SMTP_S_QUIT)	/* the last reply may still go out */
		return "session time limit";
	if (now <= s->deadline)
		return NULL;
	return s->state == SMTP_S_DATA ? "DATA time limit" : "timeout";
}

static void
smtp_reply(struct smtp_session *s, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		fatalx("smtp_reply: format");
	if ((size_t)n > sizeof(buf) - 3)
		n = (int)sizeof(buf) - 3;
	memcpy(buf + n, "\r\n", 2);
	smtp_reply_raw(s, buf, (size_t)n + 2);
}

static void
smtp_reply_raw(struct smtp_session *s, const char *p, size_t n)
{
	if (s->flags & SMTP_F_DEAD)
		return;
	buf_add(&s->out, p, n);
	if (log_debug_enabled()) {
		char esc[LOG_ESCAPE_MAX];
		log_debug("%s: > %s", s->id, log_escape(p, n - 2, esc));
	}
}

/* A final reply, then the session ends once it is sent. */
static void
smtp_close_after(struct smtp_session *s, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	smtp_reply(s, "%s", buf);
	smtp_enter_state(s, SMTP_S_QUIT);
	smtp_flush(s);
}

/* A client mistake: past proxy.max_errors the session ends. */
static void
smtp_error(struct smtp_session *s)
{
	if (++s->errors >= s->conf->max_errors && s->state != SMTP_S_QUIT)
		smtp_close_after(s, "421 4.7.0 %s Error: too many errors",
		    s->conf->hostname);
}

/* ---- session life ---------------------------------------------------- */

static void
smtp_hash_add(struct smtp_loop *l, struct smtp_session *s)
{
	unsigned h = (unsigned)strtoul(s->id + ID_LEN - 6, NULL, 16) % SMTP_HASH;

	s->hnext = l->hash[h];
	l->hash[h] = s;
}

static void
smtp_hash_del(struct smtp_loop *l, struct smtp_session *s)
{
	unsigned h = (unsigned)strtoul(s->id + ID_LEN - 6, NULL, 16) % SMTP_HASH;

	for (struct smtp_session **p = &l->hash[h]; *p; p = &(*p)->hnext)
		if (*p == s) {
			*p = s->hnext;
			return;
		}
}

static struct smtp_session *
smtp_lookup(struct smtp_loop *l, const char *id)
{
	unsigned h = (unsigned)strtoul(id + ID_LEN - 6, NULL, 16) % SMTP_HASH;

	for (struct smtp_session *s = l->hash[h]; s; s = s->hnext)
		if (strcmp(s->id, id) == 0)
			return s;
	return NULL;
}

/* Where ip's count is, or the NULL to put it in. Under smtp_conns.mu. */
static struct smtp_ipcount **
smtp_conn_slot(const char *ip)
{
	unsigned h = 5381;
	struct smtp_ipcount **p;

	for (const char *c = ip; *c; c++)
		h = h * 33 + (unsigned char)*c;
	for (p = &smtp_conns.ips[h % SMTP_IPHASH]; *p && strcmp((*p)->ip, ip) != 0;
	    p = &(*p)->next)
		;
	return p;
}

/* Count the connection: in the total when total (at accept), under ip
 * unless ip is "" (a balancer's connection whose PROXY header has not
 * named the client yet; the header's turn comes with total 0). 0, or -1
 * when a limit says no (nothing counted). */
static int
smtp_conn_take(const struct conf *c, const char *ip, int total)
{
	struct smtp_ipcount **p, *e;
	int rc = -1;

	pthread_mutex_lock(&smtp_conns.mu);
	p = smtp_conn_slot(ip);
	e = *p;
	if ((!total || smtp_conns.total < c->max_connections) &&
	    (*ip == '\0' || e == NULL || e->n < c->max_connections_per_ip)) {
		if (*ip != '\0' && e == NULL) {
			e = *p = xcalloc(1, sizeof(*e));
			snprintf(e->ip, sizeof(e->ip), "%s", ip);
		}
		if (*ip != '\0')
			e->n++;
		smtp_conns.total += total;
		rc = 0;
	}
	pthread_mutex_unlock(&smtp_conns.mu);
	return rc;
}

/* The connection is gone: from the total, and from ip's count unless "". */
static void
smtp_conn_give(const char *ip)
{
	struct smtp_ipcount **p;

	pthread_mutex_lock(&smtp_conns.mu);
	p = smtp_conn_slot(ip);
	if (*ip != '\0' && *p != NULL && --(*p)->n == 0) {
		struct smtp_ipcount *dead = *p;
		*p = dead->next;
		free(dead);
	}
	smtp_conns.total--;
	pthread_mutex_unlock(&smtp_conns.mu);
}

/* The client's address as text and its port. */
static void
smtp_peer(const struct sockaddr_storage *ss, char *ip, int *port)
{
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const void *)ss;
		inet_ntop(AF_INET6, &a->sin6_addr, ip, INET6_ADDRSTRLEN);
		*port = ntohs(a->sin6_port);
	} else {
		const struct sockaddr_in *a = (const void *)ss;
		inet_ntop(AF_INET, &a->sin_addr, ip, INET6_ADDRSTRLEN);
		*port = ntohs(a->sin_port);
	}
}

/* The loop's list and id table. */
static void
smtp_loop_add(struct smtp_loop *l, struct smtp_session *s)
{
	s->next = l->sessions;
	if (l->sessions)
		l->sessions->prev = s;
	l->sessions = s;
	l->nsessions++;
	smtp_hash_add(l, s);
}

static void
smtp_accept_one(struct smtp_loop *l, int fd, const struct sockaddr_storage *ss,
    socklen_t sslen)
{
	struct conf *c = conf_current();
	struct smtp_session *s;
	char ip[INET6_ADDRSTRLEN];
	int port;

	smtp_peer(ss, ip, &port);
	/* PROXY protocol: only a balancer in proxy.proxy_from may connect */
	if (c->proxy_protocol && !prefix_list_match(c->proxy_from, (const struct sockaddr *)ss)) {
		log_info("refused connection from [%s]:%d: not in proxy.proxy_from", ip, port);
		stats_inc(STATS_REFUSED, 1);
		close(fd);
		conf_unref(c);
		return;
	}
	if (smtp_conn_take(c, c->proxy_protocol ? "" : ip, 1) == -1) {
		static const char busy[] = "421 4.7.0 Error: too many connections\r\n";
		log_info("refused connection from [%s]:%d: too many connections", ip, port);
		(void)send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		stats_inc(STATS_REFUSED, 1);
		close(fd);
		conf_unref(c);
		return;
	}
	s = xcalloc(1, sizeof(*s));
	s->loop = l;
	s->conf = c;
	id_new(s->id);
	snprintf(s->ip, sizeof(s->ip), "%s", ip);
	s->port = port;
	s->v6 = ss->ss_family == AF_INET6;
	s->state = SMTP_S_CONNECT;
	s->t_conn = time_mono_ms();
	stats_inc(STATS_SESSIONS, 1);
	stats_gauge_add(STATS_G_SESSIONS, 1);
	smtp_loop_add(l, s);
	/* EV_READ now: reading stays lazy (smtp_io), and the greeting then
	 * needs no epoll_ctl() of its own */
	ev_add(l->ev, &s->io, fd, EV_READ, smtp_io, s);
	if (c->proxy_protocol) {	/* PROXY protocol: smtp_proxyhdr() first */
		s->flags |= SMTP_F_NOIP;
		smtp_enter_state(s, SMTP_S_PROXYHDR);
		return;
	}
	smtp_begin(s, ss, sslen, "");
}

/* The client is known: its policy session, the connect line (via: how a
 * balancer told us, or ""), the connect stage. */
static void
smtp_begin(struct smtp_session *s, const struct sockaddr_storage *ss, socklen_t sslen,
    const char *via)
{
	s->ps = pol_session_new(s->conf, s->id, (const struct sockaddr *)ss, sslen);
	log_info("%s: connect from [%s]:%d%s", s->id, s->ip, s->port, via);
	smtp_set_deadline(s);
	smtp_policy(s, POL_CONNECT);
}

/* ---- PROXY protocol: the balancer's header before the greeting -------- */

/*
 * SMTP_S_PROXYHDR: read the header the balancer sends first (pxp.h); 0
 * while it is incomplete (the command deadline bounds the wait, see
 * smtp_tick). A bad header ends the session without a reply, the peer
 * being a balancer and not an SMTP client. PROXY makes the header's
 * source the client everywhere (policy, limits, XCLIENT, logs) and its
 * destination XCLIENT's DESTADDR; LOCAL (a health check) and UNKNOWN
 * keep the balancer's own address, as the spec says.
 */
static int
smtp_proxyhdr(struct smtp_session *s)
{
	struct pxp_hdr h;
	struct sockaddr_storage peer;
	socklen_t plen = sizeof(peer);
	char via[INET6_ADDRSTRLEN + 48], reason[96];
	const char *why;
	int n = pxp_parse(buf_ptr(&s->in), s->in.len, &h, &why);

	if (n == 0)
		return 0;
	if (n < 0) {
		snprintf(reason, sizeof(reason), "bad PROXY header (%s)", why);
		smtp_free(s, reason);
		return 1;
	}
	buf_drop(&s->in, (size_t)n);	/* the rest is the client's */
	snprintf(via, sizeof(via), " via [%s]:%d PROXY v%d %s", s->ip, s->port,
	    h.version, pxp_cmd_name(h.cmd));
	if (h.cmd == PXP_PROXY) {
		peer = h.src;
		plen = h.srclen;
		s->dest = h.dst;
	} else if (getpeername(s->io.fd, (struct sockaddr *)&peer, &plen) == -1) {
		smtp_free(s, "lost connection");
		return 1;
	}
	smtp_peer(&peer, s->ip, &s->port);
	s->v6 = peer.ss_family == AF_INET6;
	if (smtp_conn_take(s->conf, s->ip, 0) == -1) {
		log_info("refused connection from [%s]:%d%s: too many connections", s->ip,
		    s->port, via);
		stats_inc(STATS_REFUSED, 1);
		smtp_close_after(s, "421 4.7.0 Error: too many connections");
		return 1;
	}
	s->flags &= ~SMTP_F_NOIP;
	smtp_enter_state(s, SMTP_S_CONNECT);
	smtp_begin(s, &peer, plen, via);
	return 1;
}

/* Where the client connected, for XCLIENT DESTADDR/DESTPORT: the PROXY
 * header's destination when a balancer sent one, else our socket. */
static int
smtp_dest(const struct smtp_session *s, struct sockaddr_storage *out)
{
	socklen_t len = sizeof(*out);

	if (s->dest.ss_family != 0) {
		*out = s->dest;
		return 0;
	}
	return getsockname(s->io.fd, (struct sockaddr *)out, &len);
}

static void
smtp_accept(struct ev_io *io, unsigned r)
{
	struct smtp_loop *l = io->arg;

	(void)r;
	for (int i = 0; i < SMTP_ACCEPT_BATCH; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int fd = accept4(io->fd, (struct sockaddr *)&ss, &len,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
				return;
			/* Out of descriptors or memory: the listener would stay
			 * readable and spin; rest it until the next tick. */
			log_warn("accept: %s; not accepting for a second", strerror(errno));
			ev_set(l->ev, io, 0);
			l->lis_paused = 1;
			return;
		}
		smtp_accept_one(l, fd, &ss, len);
	}
}

/* The only teardown. Closes everything now; memory goes after the batch. */
static void
smtp_free(struct smtp_session *s, const char *reason)
{
	struct smtp_loop *l = s->loop;

	if (s->flags & SMTP_F_DEAD)
		return;
	s->flags |= SMTP_F_DEAD;
	if (s->job == NULL)	/* else the job holds the policy session */
		smtp_tx_end(s, POL_O_ABANDONED, NULL, reason ? reason : "disconnect");
	log_info("%s: disconnect from [%s] commands=%d/%d%s%s", s->id, s->ip,
	    s->commands_ok, s->commands, reason ? " reason=" : "", reason ? reason : "");
	smtp_hash_del(l, s);
	if (s->prev)
		s->prev->next = s->next;
	else
		l->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	l->nsessions--;
	s->next = l->graveyard;
	l->graveyard = s;
	if (s->be != NULL && be_pool_put(l->pool, s->be, s->conf->backend_pool,
	    (s->flags & SMTP_F_BEDIRTY) != 0))
		s->be = NULL;	/* the next session's now */
	else if (s->be != NULL)
		be_close(s->be);
	ev_del(l->ev, &s->io);
	smtp_conn_give((s->flags & SMTP_F_NOIP) ? "" : s->ip);
	stats_gauge_add(STATS_G_SESSIONS, -1);
	stats_observe(STATS_H_SESSION, (double)(time_mono_ms() - s->t_conn) / 1000.0);
}

/* After the batch: the memory of a session that smtp_free() closed. */
static void
smtp_destroy(struct smtp_session *s)
{
	if (s->job == NULL)
		pol_session_free(s->ps);
	else if (s->tx != NULL && s->job->keep == s->tx->spool)
		s->tx->spool = NULL;	/* the job's now; freed when it returns */
	smtp_tx_free(s);
	be_free(s->be);
	if (s->ssl)
		tls_free(s->ssl);
	buf_free(&s->in);
	buf_free(&s->out);
	free(s->helo);
	conf_unref(s->conf);
	free(s);
}

/* ---- client I/O ------------------------------------------------------ */

/*
 * The one answer to "may the session read from the client now?", for
 * polling (smtp_update_events), reading (smtp_io) and running what was
 * read (smtp_process). While we wait (policy, the backend, the banner,
 * the verdict on a message) nothing the client pipelined may run ahead
 * of our answer; past LIM_OUT_HIGH the client must read before it writes.
 */
static enum smtp_read
smtp_may_read(const struct smtp_session *s)
{
	if ((s->flags & SMTP_F_DEAD) || s->out.len >= LIM_OUT_HIGH)
		return SMTP_R_NO;
	switch (s->state) {
	case SMTP_S_TLS:	/* the handshake reads (smtp_tls_step) */
	case SMTP_S_QUIT:	/* the last reply goes out; nothing more comes in */
		return SMTP_R_NO;
	case SMTP_S_CONNECT:	/* the banner waits for the connect checks */
	case SMTP_S_EOM:	/* the message's verdict comes first */
		return SMTP_R_LATER;
	default:
		return s->wait == SMTP_W_NONE ? SMTP_R_YES : SMTP_R_LATER;
	}
}

static void
smtp_update_events(struct smtp_session *s)
{
	enum smtp_read r;
	unsigned want = 0;

	if (s->flags & SMTP_F_DEAD)
		return;
	if (s->state == SMTP_S_TLS)
		return;		/* smtp_tls_step() decides */
	if (s->out.len > 0 || (s->flags & SMTP_F_WANTW))
		want |= EV_WRITE;
	/* Reading pauses while we wait, but lazily: EV_READ stays on until
	 * input actually arrives during a wait (smtp_io), which saves two
	 * epoll_ctl() per command for clients that wait for replies. */
	r = smtp_may_read(s);
	if (r == SMTP_R_YES || (r == SMTP_R_LATER && (s->io.want & EV_READ)))
		want |= EV_READ;
	ev_set(s->loop->ev, &s->io, want);
}

static void
smtp_io(struct ev_io *io, unsigned r)
{
	struct smtp_session *s = io->arg;

	if (s->state == SMTP_S_TLS) {
		smtp_tls_step(s);
		return;
	}
	if (r & EV_WRITE) {
		if (s->flags & SMTP_F_WANTW) {	/* a TLS read waited for this */
			s->flags &= ~SMTP_F_WANTW;
			r |= EV_READ;
		}
		smtp_flush(s);
		if (s->flags & SMTP_F_DEAD)
			return;
	}
	if (!(r & EV_READ))
		return;
	if (smtp_may_read(s) != SMTP_R_YES) {
		/* input we may not take now (mostly during a wait): stop
		 * polling it until smtp_update_events() says otherwise */
		ev_set(s->loop->ev, &s->io, s->io.want & ~EV_READ);
		return;
	}
	smtp_read(s);
}

static void
smtp_read(struct smtp_session *s)
{
	char *p = s->loop->scratch;

	/* A TLS record may hold more than we asked for: drain what OpenSSL
	 * already decrypted, within a bound. */
	for (int rounds = 0; rounds < 4; rounds++) {
		unsigned want = 0;
		ssize_t n;

		if (s->ssl != NULL) {
			n = tls_read(s->ssl, p, LIM_IO_CHUNK, &want);
			if (n == 0) {
				if (want == EV_WRITE)
					s->flags |= SMTP_F_WANTW;
				break;
			}
		} else {
			n = recv(s->io.fd, p, LIM_IO_CHUNK, 0);
			if (n == -1 && (errno == EAGAIN || errno == EINTR))
				break;
			if (n == 0)
				n = -1;
		}
		if (n < 0) {
			smtp_free(s, "lost connection");
			return;
		}
		/* A new line starts its clock with its first byte; bytes of a
		 * line already begun (or being skipped) do not. */
		int first = s->in.len == 0 && !(s->flags & SMTP_F_DISCARD);
		buf_add(&s->in, p, (size_t)n);
		if (s->state == SMTP_S_DATA) {
			s->tx->data_started = 1;
			s->tx->data_bytes += (unsigned long long)n;
			smtp_set_deadline(s);
		} else if (first)
			smtp_set_deadline(s);
		if (s->ssl == NULL || tls_pending(s->ssl) == 0)
			break;
	}
	smtp_process(s);
}

static void
smtp_flush(struct smtp_session *s)
{
	while (s->out.len > 0 && !(s->flags & SMTP_F_DEAD)) {
		unsigned want = 0;
		ssize_t n;

		if (s->ssl != NULL) {
			n = tls_write(s->ssl, buf_ptr(&s->out), s->out.len, &want);
			if (n == 0)
				break;
		} else {
			n = send(s->io.fd, buf_ptr(&s->out), s->out.len, MSG_NOSIGNAL);
			if (n == -1 && (errno == EAGAIN || errno == EINTR))
				break;
		}
		if (n < 0) {
			smtp_free(s, "lost connection");
			return;
		}
		buf_drop(&s->out, (size_t)n);
	}
	if (s->out.len == 0 && s->state == SMTP_S_QUIT) {
		smtp_free(s, NULL);
		return;
	}
	smtp_update_events(s);
}

/* Run what the client sent, until input runs out or we must wait. */
static void
smtp_process(struct smtp_session *s)
{
	for (int guard = 0; guard < 100000; guard++) {
		size_t ll;
		long used;

		if (s->in.len == 0 || smtp_may_read(s) != SMTP_R_YES)
			break;
		if (s->state == SMTP_S_PROXYHDR) {	/* PROXY protocol */
			if (smtp_proxyhdr(s) == 0)
				break;
			continue;
		}
		if (s->state == SMTP_S_DATA) {
			smtp_data_input(s);
			continue;
		}
		if (s->flags & SMTP_F_DISCARD) {	/* the tail of a long line */
			const char *p = buf_ptr(&s->in);
			const char *lf = memchr(p, '\n', s->in.len);
			buf_drop(&s->in, lf ? (size_t)(lf - p) + 1 : s->in.len);
			if (lf != NULL)
				s->flags &= ~SMTP_F_DISCARD;
			continue;
		}
		used = line_find(buf_ptr(&s->in), s->in.len,
		    (size_t)s->conf->max_line_length, &ll);
		if (used == 0)
			break;
		if (used < 0) {
			buf_drop(&s->in, (size_t)s->conf->max_line_length);
			s->flags |= SMTP_F_DISCARD;
			s->commands++;
			smtp_reply(s, "500 5.5.2 Error: line too long");
			smtp_error(s);
			continue;
		}
		char *line = xstrndup(buf_ptr(&s->in), ll);
		buf_drop(&s->in, (size_t)used);
		smtp_set_deadline(s);	/* the next line's clock */
		smtp_line(s, line, ll);
		free(line);
	}
	if (!(s->flags & SMTP_F_DEAD))
		smtp_flush(s);
}

/* One command line (CRLF stripped, NUL-terminated copy). */
static void
smtp_line(struct smtp_session *s, char *line, size_t len)
{
	const struct smtp_cmd *cmd;
	const char *arg;
	char esc[LOG_ESCAPE_MAX];
	int i;

	if (log_debug_enabled())
		log_debug("%s: < %s", s->id, log_escape(line, len, esc));
	if (++s->commands > s->conf->max_commands) {
		smtp_close_after(s, "421 4.7.0 %s Error: too many commands",
		    s->conf->hostname);
		return;
	}
	if (memchr(line, '\0', len) != NULL) {
		smtp_reply(s, "500 5.5.2 Error: NUL in command");
		smtp_error(s);
		return;
	}
	if ((i = smtp_parse_cmd(line, &arg)) == -1) {
		smtp_reply(s, "502 5.5.2 Error: command not recognized");
		smtp_error(s);
		return;
	}
	cmd = &smtp_cmds[i];
	if (!(cmd->states & S(s->state))) {
		smtp_reply(s, "503 5.5.1 Error: bad sequence of commands");
		smtp_error(s);
		return;
	}
	if (cmd->check != NULL && !cmd->check(s, arg)) {
		smtp_error(s);
		return;
	}
	s->commands_ok++;
	if (cmd->proceed == NULL)
		smtp_reply(s, "%s", cmd->reply);
	else
		cmd->proceed(s, arg);
}

/* ---- policy jobs ----------------------------------------------------- */

static void
smtp_policy(struct smtp_session *s, enum pol_stage stage)
{
	struct work_job *j = xcalloc(1, sizeof(*j));

	memcpy(j->sid, s->id, sizeof(j->sid));
	j->ps = s->ps;
	j->stage = stage;
	if (stage == POL_DATA) {
		j->msg = s->tx->msg;
		j->keep = s->tx->spool;
	}
	s->job = j;
	smtp_enter_wait(s, SMTP_W_POLICY);
	s->loop->jobs_out++;
	smtp_update_events(s);
	if (pol_stage_needed(s->ps, stage, stage == POL_DATA ? &j->msg : NULL))
		work_submit(s->loop->home, j);
	else
		work_run_here(s->loop->home, j);
}

/* The loop's eventfd fired: verdicts are back. */
static void
smtp_jobs_back(void *arg)
{
	struct smtp_loop *l = arg;
	struct work_job *j, *next;

	for (j = work_take(l->home); j != NULL; j = next) {
		struct smtp_session *s = smtp_lookup(l, j->sid);
		next = j->next;
		l->jobs_out--;
		if (s != NULL && s->job == j && !(s->flags & SMTP_F_DEAD)) {
			s->job = NULL;
			smtp_enter_wait(s, SMTP_W_NONE);
			smtp_job_done(s, j);
		} else {	/* the session is gone: the job owns what it kept */
			struct smtp_session *g;
			for (g = l->graveyard; g && g->job != j; g = g->next)
				;
			if (g != NULL) {	/* dead in this batch, not yet destroyed */
				g->job = NULL;
				g->ps = NULL;
				if (g->tx != NULL && g->tx->spool == j->keep)
					g->tx->spool = NULL;
			}
			pol_session_free(j->ps);
			spool_free(j->keep);
		}
		pol_decision_clear(&j->d);
		free(j);
	}
}

/* A refusal whose code does not fit its verdict is a bug elsewhere; the
 * client must not get a 5xx for it (DESIGN.md: fail safe): 451 instead. */
static void
smtp_decision_sane(struct smtp_session *s, struct pol_decision *d)
{
	int lo = d->verdict == POL_REJECT ? 500 : 400;

	if (d->code >= lo && d->code < lo + 100 && d->status[0] == (char)('0' + lo / 100))
		return;
	log_err("%s: policy gave %s with code %d status \"%s\"; answering 451",
	    s->id, pol_verdict_name(d->verdict), d->code, d->status);
	d->verdict = POL_TEMPFAIL;
	d->code = 451;
	snprintf(d->status, sizeof(d->status), "4.3.0");
	snprintf(d->text, sizeof(d->text), "Error: local policy problem; try again later");
}

/* Reply with a refusal when the decision is one; 1 if it was. */
static int
smtp_refused(struct smtp_session *s, struct pol_decision *d)
{
	if (d->verdict != POL_REJECT && d->verdict != POL_TEMPFAIL)
		return 0;
	smtp_decision_sane(s, d);
	if (d->disconnect)
		smtp_close_after(s, "%d %s %s", d->code, d->status, d->text);
	else
		smtp_reply(s, "%d %s %s", d->code, d->status, d->text);
	return 1;
}

static void
smtp_job_done(struct smtp_session *s, struct work_job *j)
{
	struct pol_decision *d = &j->d;
	char esc[LOG_ESCAPE_MAX], reply[320];

	switch (j->stage) {
	case POL_CONNECT:
		if (d->verdict == POL_REJECT || d->verdict == POL_TEMPFAIL) {
			/* RFC 5321 3.1: refuse the connection and close */
			log_info("%s: reject: connect from [%s]: %d %s %s", s->id, s->ip,
			    d->code, d->status, d->text);
			smtp_close_after(s, "%d %s %s", d->code, d->status, d->text);
			return;
		}
		smtp_reply(s, "220 %s ESMTP Postern", s->conf->hostname);
		smtp_enter_state(s, SMTP_S_GREETED);
		break;
	case POL_HELO:
		if (smtp_refused(s, d))
			break;
		log_info("%s: helo=<%s>", s->id, log_escape(s->helo, strlen(s->helo), esc));
		if (s->flags & SMTP_F_EHLO) {
			smtp_reply(s, "250-%s", s->conf->hostname);
			smtp_reply(s, "250-PIPELINING");
			smtp_reply(s, "250-SIZE %lld", s->conf->max_message_size);
			if (tls_enabled() && !(s->flags & SMTP_F_TLS))
				smtp_reply(s, "250-STARTTLS");
			smtp_reply(s, "250-ENHANCEDSTATUSCODES");
			smtp_reply(s, "250-8BITMIME");
			smtp_reply(s, "250-DSN");
			smtp_reply(s, "250 SMTPUTF8");
		} else
			smtp_reply(s, "250 %s", s->conf->hostname);
		smtp_enter_state(s, SMTP_S_HELO);
		break;
	case POL_MAIL:
		if (smtp_refused(s, d)) {
			log_info("%s: reject: MAIL from=<%s>: %d %s %s", s->id,
			    log_escape(s->tx->from, strlen(s->tx->from), esc),
			    d->code, d->status, d->text);
			snprintf(reply, sizeof(reply), "%d %s %s", d->code, d->status, d->text);
			smtp_tx_end(s, smtp_outcome(d->code, 0), "mail", reply);
			break;
		}
		if (be_ready(s->be) && !be_stale(s->be)) {
			smtp_mail_ok(s);
			break;
		}
		smtp_be_relay(s, SMTP_W_BE_OPEN);
		return;
	case POL_RCPT:
		if (smtp_refused(s, d)) {
			log_info("%s: reject: RCPT to=<%s>: %d %s %s", s->id,
			    log_escape(s->tx->cur->path, strlen(s->tx->cur->path), esc),
			    d->code, d->status, d->text);
			snprintf(reply, sizeof(reply), "%d %s %s", d->code, d->status, d->text);
			smtp_tx_refused(s, d->code, 0, "rcpt", reply);
			free(s->tx->cur); s->tx->cur = NULL;
			break;
		}
		smtp_be_relay(s, SMTP_W_BE_RCPT);
		return;
	case POL_DATA:
		s->tx->d = *d;
		memset(d, 0, sizeof(*d));	/* the tx owns the buffers now */
		smtp_eom_verdict(s);
		return;
	default:
		fatalx("smtp_job_done: stage %d", j->stage);
	}
	smtp_process(s);
}

/* ---- commands -------------------------------------------------------- */

static int
smtp_check_noarg(struct smtp_session *s, const char *arg)
{
	if (*arg == '\0')
		return 1;
	smtp_reply(s, "501 5.5.4 Syntax: no parameters allowed");
	return 0;
}

static int
smtp_check_helo(struct smtp_session *s, const char *arg)
{
	size_t n = strlen(arg);

	if (n == 0) {
		smtp_reply(s, "501 5.5.4 Syntax: HELO/EHLO hostname");
		return 0;
	}
	if (n > LIM_HELO) {
		smtp_reply(s, "501 5.5.4 Error: hostname too long");
		return 0;
	}
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)arg[i] < 33 && arg[i] != ' ') {
			smtp_reply(s, "501 5.5.4 Error: bad characters in hostname");
			return 0;
		}
	return 1;
}

static void
smtp_proceed_helo(struct smtp_session *s, const char *arg)
{
	size_t n = strcspn(arg, " ");

	s->flags &= ~SMTP_F_EHLO;
	smtp_tx_end(s, POL_O_ABANDONED, NULL, "helo");	/* RFC 5321 4.1.4: like RSET */
	free(s->helo);
	s->helo = xstrndup(arg, n);
	pol_set_helo(s->ps, s->helo);
	smtp_policy(s, POL_HELO);
}

static void
smtp_proceed_ehlo(struct smtp_session *s, const char *arg)
{
	smtp_proceed_helo(s, arg);
	s->flags |= SMTP_F_EHLO;
}

/* MAIL parameters with a fixed set of values: the key, then the values. */
static const char *const smtp_enum_params[][3] = {
	{ "BODY", "7BIT", "8BITMIME" },		/* RFC 6152 */
	{ "RET", "FULL", "HDRS" },		/* RFC 3461 4.3 */
};

static const char *const *
smtp_param_enum(const char *key)
{
	for (size_t i = 0; i < ARRAY_SIZE(smtp_enum_params); i++)
		if (strcasecmp(key, smtp_enum_params[i][0]) == 0)
			return smtp_enum_params[i];
	return NULL;
}

static int
smtp_param_enum_ok(const char *const *e, const char *v)
{
	return v != NULL && (strcasecmp(v, e[1]) == 0 || strcasecmp(v, e[2]) == 0);
}

/* MAIL parameters we take (RFC 1870, 6152, 6531, 3461). */
static int
smtp_mail_params_ok(struct smtp_session *s, const struct addr_cmd *a)
{
	for (int i = 0; i < a->nparams; i++) {
		const char *k = a->params[i].key, *v = a->params[i].value;
		if (!(s->flags & SMTP_F_EHLO)) {
			smtp_reply(s, "555 5.5.4 Error: parameters need EHLO");
			return 0;
		}
		if (strcasecmp(k, "SIZE") == 0) {
			char *e;
			if (v == NULL || !isdigit((unsigned char)*v)) {
				smtp_reply(s, "501 5.5.4 Error: bad SIZE= value");
				return 0;
			}
			errno = 0;
			unsigned long long sz = strtoull(v, &e, 10);
			if (*e != '\0' || errno == ERANGE ||
			    sz > (unsigned long long)s->conf->max_message_size) {
				smtp_reply(s, "552 5.3.4 Error: message size exceeds fixed limit");
				return 0;
			}
		} else if (smtp_param_enum(k) != NULL) {
			if (!smtp_param_enum_ok(smtp_param_enum(k), v)) {
				smtp_reply(s, "501 5.5.4 Error: bad %s= value", smtp_param_enum(k)[0]);
				return 0;
			}
		} else if (strcasecmp(k, "SMTPUTF8") == 0) {
			if (v != NULL) {
				smtp_reply(s, "501 5.5.4 Error: SMTPUTF8 takes no value");
				return 0;
			}
		} else if (strcasecmp(k, "ENVID") == 0) {
			if (v == NULL || strlen(v) > 100 || !addr_xtext_ok(v)) {
				smtp_reply(s, "501 5.5.4 Error: bad ENVID= value");
				return 0;
			}
		} else {
			smtp_reply(s, "555 5.5.4 Error: unsupported parameter %.40s", k);
			return 0;
		}
	}
	return 1;
}

static int
smtp_addr_error(struct smtp_session *s, enum addr_err e, int rcpt)
{
	switch (e) {
	case ADDR_OK:
		return 1;
	case ADDR_E_SYNTAX:
		smtp_reply(s, "501 5.5.4 Syntax: %s", rcpt ? "RCPT TO:<address>" :
		    "MAIL FROM:<address>");
		break;
	case ADDR_E_PATH:
		smtp_reply(s, "501 %s Error: bad address syntax", rcpt ? "5.1.3" : "5.1.7");
		break;
	case ADDR_E_PARAM:
		smtp_reply(s, "501 5.5.4 Error: malformed parameter");
		break;
	case ADDR_E_UTF8:
		smtp_reply(s, "553 5.6.7 Error: non-ASCII address needs SMTPUTF8");
		break;
	case ADDR_E_LONG:
		smtp_reply(s, "501 5.5.4 Error: address or parameters too long");
		break;
	}
	return 0;
}

static int
smtp_check_mail(struct smtp_session *s, const char *arg)
{
	struct addr_cmd a;

	if (!smtp_addr_error(s, addr_parse(arg, "FROM:", -1, 1, &a), 0))
		return 0;
	if (!smtp_mail_params_ok(s, &a))
		return 0;
	return 1;
}

static void
smtp_proceed_mail(struct smtp_session *s, const char *arg)
{
	struct addr_cmd a;

	(void)addr_parse(arg, "FROM:", -1, 1, &a);	/* checked */
	smtp_tx_new(s, &a);
	pol_tx_begin(s->ps, a.path, a.raw);
	smtp_policy(s, POL_MAIL);
}

/* RFC 3461 4.1: NEVER alone, or a list of SUCCESS, FAILURE, DELAY. */
static int
smtp_notify_ok(const char *v)
{
	char buf[64], *save = NULL;
	int n = 0, never = 0;

	if (strlen(v) >= sizeof(buf))
		return 0;
	snprintf(buf, sizeof(buf), "%s", v);
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save), n++) {
		if (strcasecmp(t, "NEVER") == 0)
			never = 1;
		else if (strcasecmp(t, "SUCCESS") != 0 && strcasecmp(t, "FAILURE") != 0 &&
		    strcasecmp(t, "DELAY") != 0)
			return 0;
	}
	return n > 0 && (!never || n == 1);
}

static int
smtp_check_rcpt(struct smtp_session *s, const char *arg)
{
	struct addr_cmd a;

	if (s->tx->nrcpt_tried >= s->conf->max_recipients) {
		smtp_reply(s, "452 4.5.3 Error: too many recipients");
		return 0;
	}
	if (!smtp_addr_error(s, addr_parse(arg, "TO:", s->tx->utf8, 0, &a), 1))
		return 0;
	for (int i = 0; i < a.nparams; i++) {
		const char *k = a.params[i].key, *v = a.params[i].value;
		if (!(s->flags & SMTP_F_EHLO)) {
			smtp_reply(s, "555 5.5.4 Error: parameters need EHLO");
			return 0;
		}
		if (strcasecmp(k, "NOTIFY") == 0) {
			if (v != NULL && smtp_notify_ok(v))
				continue;
			smtp_reply(s, "501 5.5.4 Error: bad NOTIFY= value");
			return 0;
		}
		if (strcasecmp(k, "ORCPT") == 0) {
			if (v != NULL && strchr(v, ';') != NULL && addr_xtext_ok(strchr(v, ';') + 1))
				continue;
			smtp_reply(s, "501 5.5.4 Error: bad ORCPT= value");
			return 0;
		}
		smtp_reply(s, "555 5.5.4 Error: unsupported parameter %.40s", k);
		return 0;
	}
	return 1;
}

static void
smtp_proceed_rcpt(struct smtp_session *s, const char *arg)
{
	struct addr_cmd *a = xmalloc(sizeof(*a));

	(void)addr_parse(arg, "TO:", s->tx->utf8, 0, a);	/* checked */
	s->tx->nrcpt_tried++;
	free(s->tx->cur);
	s->tx->cur = a;
	pol_tx_rcpt(s->ps, a->path);
	smtp_policy(s, POL_RCPT);
}

static int
smtp_check_data(struct smtp_session *s, const char *arg)
{
	if (!smtp_check_noarg(s, arg))
		return 0;
	if (s->tx->nrcpt_tried == 0) {	/* RFC 5321 3.3: either code fits */
		smtp_reply(s, "503 5.5.1 Error: need RCPT command");
		return 0;
	}
	if (s->tx->nrcpt == 0) {
		smtp_reply(s, "554 5.5.1 Error: no valid recipients");
		return 0;
	}
	return 1;
}

static void
smtp_proceed_data(struct smtp_session *s, const char *arg)
{
	(void)arg;
	s->tx->spool = spool_new(s->conf);
	smtp_reply(s, "354 End data with <CR><LF>.<CR><LF>");
	smtp_enter_state(s, SMTP_S_DATA);
}

static void
smtp_proceed_rset(struct smtp_session *s, const char *arg)
{
	(void)arg;
	/* The backend's side is reset lazily, before the next MAIL
	 * (SMTP_F_BEDIRTY), so RSET needs no round trip. */
	smtp_tx_end(s, POL_O_ABANDONED, NULL, "rset");
	smtp_reply(s, "250 2.0.0 Ok");
}

static void
smtp_proceed_quit(struct smtp_session *s, const char *arg)
{
	(void)arg;
	smtp_tx_end(s, POL_O_ABANDONED, NULL, "quit");
	smtp_close_after(s, "221 2.0.0 Bye");
}

static void
smtp_proceed_help(struct smtp_session *s, const char *arg)
{
	(void)arg;
	smtp_reply(s, "214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP%s",
	    tls_enabled() ? " STARTTLS" : "");
}

static int
smtp_check_starttls(struct smtp_session *s, const char *arg)
{
	if (!tls_enabled()) {
		smtp_reply(s, "502 5.5.1 Error: command not implemented");
		return 0;
	}
	if (s->flags & SMTP_F_TLS) {
		smtp_reply(s, "554 5.5.1 Error: TLS already active");
		return 0;
	}
	return smtp_check_noarg(s, arg);
}

/* RFC 3207 4.2: what the client pipelined after STARTTLS is discarded;
 * after the handshake the session starts over (EHLO again). */
static void
smtp_proceed_starttls(struct smtp_session *s, const char *arg)
{
	(void)arg;
	buf_free(&s->in);
	smtp_reply(s, "220 2.0.0 Ready to start TLS");
	smtp_flush(s);
	if (s->flags & SMTP_F_DEAD)
		return;
	/* The 220 must be on the wire before the handshake starts. */
	if (s->out.len > 0) {
		smtp_close_after(s, "421 4.4.2 Error: cannot send");
		return;
	}
	if ((s->ssl = tls_new(s->io.fd)) == NULL) {
		smtp_close_after(s, "421 4.7.0 TLS not available");
		return;
	}
	smtp_enter_state(s, SMTP_S_TLS);
	smtp_tls_step(s);
}

static void
smtp_tls_step(struct smtp_session *s)
{
	unsigned want = 0;
	char desc[128];
	int rc = tls_handshake(s->ssl, &want);

	if (rc == -1) {
		smtp_free(s, "TLS handshake failed");
		return;
	}
	if (rc == 0) {
		ev_set(s->loop->ev, &s->io, want);
		return;
	}
	tls_describe(s->ssl, desc, sizeof(desc));
	log_info("%s: TLS established: %s", s->id, desc);
	pol_set_tls(s->ps, desc);
	s->flags |= SMTP_F_TLS;
	s->flags &= ~SMTP_F_EHLO;
	free(s->helo); s->helo = NULL;
	smtp_enter_state(s, SMTP_S_GREETED);
	smtp_update_events(s);
}

/* ---- transaction ----------------------------------------------------- */

static void
smtp_tx_new(struct smtp_session *s, const struct addr_cmd *a)
{
	struct smtp_tx *tx = xcalloc(1, sizeof(*tx));

	tx->from = xstrdup(a->path);
	tx->params = xstrdup(a->raw);
	tx->utf8 = addr_param(a, "SMTPUTF8") != NULL;
	tx->t_start = time_mono_ms();
	s->tx = tx;
}

static void
smtp_tx_free(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;

	if (tx == NULL)
		return;
	free(tx->from);
	free(tx->params);
	free(tx->cur);
	free(tx->mail_fail);
	free(tx->refused_text);
	spool_free(tx->spool);
	free(tx->prepend);
	pol_decision_clear(&tx->d);
	free(tx);
	s->tx = NULL;
}

/* The outcome of a reply: ours, or the backend's (-1: it went away). */
static enum pol_outcome
smtp_outcome(int code, int backend)
{
	switch (code / 100) {
	case 2:
		return backend ? POL_O_ACCEPT : POL_O_QUARANTINE;
	case 4:
		return backend ? POL_O_BACKEND_TEMPFAIL : POL_O_TEMPFAIL;
	case 5:
		return backend ? POL_O_BACKEND_REJECT : POL_O_REJECT;
	}
	return backend ? POL_O_BACKEND_LOST : POL_O_TEMPFAIL;
}

/* A MAIL or RCPT refused (code), by us or by the backend: the outcome
 * should no recipient get through. text: the reply's first line is kept. */
static void
smtp_tx_refused(struct smtp_session *s, int code, int backend, const char *stage,
    const char *text)
{
	struct smtp_tx *tx = s->tx;

	tx->refused = 1;
	tx->refused_outcome = smtp_outcome(code, backend);
	tx->refused_stage = stage;
	free(tx->refused_text);
	tx->refused_text = xstrndup(text, strcspn(text, "\r\n"));
}

/*
 * The one way a transaction ends, whatever ended it: recorded, freed,
 * and a live session is back in HELO (a QUIT stays). text decides it:
 * the backend's reply for accept and backend-*, what went wrong for
 * backend-lost, our reply for our own outcomes. The client ends it with
 * POL_O_ABANDONED, stage NULL and its step as text ("rset", "quit",
 * "helo", or why the session ended): recorded as the last refusal when
 * no recipient got through, else as abandoned where it stood. Without a
 * transaction, nothing happens.
 */
static void
smtp_tx_end(struct smtp_session *s, enum pol_outcome o, const char *stage,
    const char *text)
{
	struct smtp_tx *tx = s->tx;

	if (tx == NULL)
		return;
	if (o == POL_O_ABANDONED && tx->nrcpt == 0 && tx->refused) {
		o = tx->refused_outcome;
		stage = tx->refused_stage;
		text = tx->refused_text;
	} else if (o == POL_O_ABANDONED)
		stage = s->state == SMTP_S_DATA ? "data" : s->state == SMTP_S_EOM ?
		    "end-of-data" : tx->nrcpt > 0 ? "rcpt" : "mail";
	smtp_tx_record(s, o, stage, text);
	smtp_tx_free(s);
	pol_tx_reset(s->ps);
	if (!(s->flags & SMTP_F_DEAD) && s->state != SMTP_S_QUIT)
		smtp_enter_state(s, SMTP_S_HELO);
}

/* The transaction's log line and its record. */
static void
smtp_tx_record(struct smtp_session *s, enum pol_outcome o, const char *stage,
    const char *text)
{
	struct smtp_tx *tx = s->tx;
	char esc[LOG_ESCAPE_MAX], esc2[LOG_ESCAPE_MAX], sum[512], line[256];
	int mta = o == POL_O_ACCEPT || o == POL_O_BACKEND_REJECT ||
	    o == POL_O_BACKEND_TEMPFAIL || o == POL_O_BACKEND_LOST;
	struct pol_end e = {
		.outcome = o, .stage = stage, .reply = "", .mta_reply = "",
		.ms = (unsigned long)(time_mono_ms() - tx->t_start),
		.size = tx->spool ? spool_size(tx->spool) : 0,
	};

	if (text == NULL)
		text = "";
	snprintf(line, sizeof(line), "%.*s", (int)strcspn(text, "\r\n"), text);
	if (mta)
		e.mta_reply = line;
	else if (o != POL_O_ABANDONED)
		e.reply = line;
	if (log_info_enabled()) {	/* the summary is for this line only */
		pol_summary(s->ps, sum, sizeof(sum));
		log_info("%s: from=<%s> nrcpt=%d size=%zu verdict=%s %s stage=%s %s=\"%s\" ms=%lu",
		    s->id, log_escape(tx->from, strlen(tx->from), esc), tx->nrcpt, e.size,
		    pol_last_verdict(s->ps), sum, stage, pol_outcome_name(o),
		    log_escape(line, strlen(line), esc2), e.ms);
	}
	pol_tx_record(s->ps, &e);
}

/* Build "MAIL FROM:" / "RCPT TO:" for the backend, dropping parameters
 * it did not offer (DSN, SIZE, BODY, SMTPUTF8). */
static char *
smtp_be_line(struct smtp_session *s, const char *verb, const char *path,
    const struct addr_cmd *a)
{
	unsigned caps = be_caps(s->be);
	size_t o;
	char buf[LIM_PATH + 600];

	o = (size_t)snprintf(buf, sizeof(buf), "%s<%s>", verb, path);
	for (int i = 0; i < a->nparams && o < sizeof(buf); i++) {
		const char *k = a->params[i].key, *v = a->params[i].value;
		unsigned need = strcasecmp(k, "SIZE") == 0 ? BE_CAP_SIZE :
		    strcasecmp(k, "BODY") == 0 ? BE_CAP_8BITMIME :
		    strcasecmp(k, "SMTPUTF8") == 0 ? BE_CAP_SMTPUTF8 : BE_CAP_DSN;
		if (!(caps & need))
			continue;
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, " %s%s%s", k,
		    v ? "=" : "", v ? v : "");
	}
	return xstrdup(buf);
}

/* MAIL passed policy and the backend is there: the client hears 250 now;
 * MAIL itself goes to the backend with the first RCPT. */
static void
smtp_mail_ok(struct smtp_session *s)
{
	smtp_reply(s, "250 2.1.0 Ok");
	smtp_enter_state(s, SMTP_S_MAIL);
}

/* The group for an RCPT, from the first reply it waits for: RSET, MAIL,
 * then RCPT. */
static void
smtp_be_rcpt_group(struct smtp_session *s)
{
	const char *lines[BE_MAX_GROUP];
	char *mail = NULL, *rcpt;
	struct addr_cmd a;
	int n = 0;

	if (s->wait == SMTP_W_BE_RSET)
		lines[n++] = "RSET";
	if (s->wait != SMTP_W_BE_RCPT) {
		/* re-parse the stored parameters to filter them */
		char *arg = xasprintf("FROM:<> %s", s->tx->params);
		(void)addr_parse(arg, "FROM:", 1, 1, &a);
		free(arg);
		mail = smtp_be_line(s, "MAIL FROM:", s->tx->from, &a);
		lines[n++] = mail;
	}
	rcpt = smtp_be_line(s, "RCPT TO:", s->tx->cur->path, s->tx->cur);
	lines[n++] = rcpt;
	be_commands(s->be, lines, n);
	free(mail);
	free(rcpt);
}

/* A leg another session left idle saves connect, greeting and EHLO;
 * be_open() then introduces this client on it. */
static void
smtp_be_take_pooled(struct smtp_session *s)
{
	struct be *be;

	if (be_alive(s->be))
		return;
	be = be_pool_take(s->loop->pool, s->conf, s->id, smtp_be_cb, s);
	if (be == NULL)
		return;
	be_free(s->be);
	s->be = be;
	log_debug("%s: backend connection from the pool", s->id);
}

/* Waiting for a reply of an RCPT's group. */
static int
smtp_be_group(enum smtp_wait w)
{
	return w == SMTP_W_BE_RSET || w == SMTP_W_BE_MAIL || w == SMTP_W_BE_RCPT;
}

/* Start a backend operation, w the reply it waits for (SMTP_W_BE_RCPT:
 * an RCPT's group, whose first reply is decided here); its replies come
 * to smtp_be_cb(). */
static void
smtp_be_relay(struct smtp_session *s, enum smtp_wait w)
{
	struct be_client who;
	struct sockaddr_storage local;
	char dest[INET6_ADDRSTRLEN];

	if (w == SMTP_W_BE_RCPT && !s->tx->mail_sent) {
		if (!be_ready(s->be))	/* it left since MAIL; nothing of ours was there yet */
			w = SMTP_W_BE_REOPEN;
		else if (s->flags & SMTP_F_BEDIRTY)
			w = SMTP_W_BE_RSET;
		else
			w = SMTP_W_BE_MAIL;
	}
	smtp_enter_wait(s, w);
	smtp_update_events(s);
	if (w != SMTP_W_BE_OPEN && w != SMTP_W_BE_REOPEN && !be_ready(s->be)) {
		/* the backend left while the session was busy elsewhere */
		smtp_be_cb(s, -1, "connection lost", 15);
		return;
	}
	switch (w) {
	case SMTP_W_BE_OPEN:
	case SMTP_W_BE_REOPEN:
		if (be_stale(s->be))	/* the next leg introduces this client */
			be_close(s->be);
		smtp_be_take_pooled(s);
		if (s->be == NULL)	/* made at the first MAIL: idle sessions stay small */
			s->be = be_new(s->loop->ev, s->conf, s->id, smtp_be_cb, s);
		who.addr = s->ip;
		who.name = pol_client_name(s->ps);
		who.v6 = s->v6;
		who.port = s->port;
		who.helo = s->helo;
		who.esmtp = (s->flags & SMTP_F_EHLO) != 0;
		/* XCLIENT DESTADDR/DESTPORT: where the client connected */
		who.dest = NULL;
		if (smtp_dest(s, &local) == 0) {
			smtp_peer(&local, dest, &who.dest_port);
			who.dest = dest;
			who.dest_v6 = local.ss_family == AF_INET6;
		}
		be_open(s->be, &who);
		return;
	case SMTP_W_BE_RSET:
	case SMTP_W_BE_MAIL:
	case SMTP_W_BE_RCPT:
		smtp_be_rcpt_group(s);
		return;
	case SMTP_W_BE_DATA:
		be_command(s->be, "DATA");
		return;
	default:
		fatalx("smtp_be_relay: wait %s", smtp_wait_names[w]);
	}
}

/* One reply of an RCPT's group. Returns still waiting for the group
 * unless it was the RCPT's own reply. */
static void
smtp_be_rcpt_reply(struct smtp_session *s, int code, const char *text, size_t len)
{
	struct smtp_tx *tx = s->tx;
	char esc[LOG_ESCAPE_MAX], esc2[LOG_ESCAPE_MAX];

	switch (s->wait) {
	case SMTP_W_BE_RSET:
		s->flags &= ~SMTP_F_BEDIRTY;
		if (code / 100 != 2)
			log_warn("%s: backend refused RSET: %s", s->id,
			    log_escape(text, strcspn(text, "\r"), esc));
		smtp_enter_wait(s, SMTP_W_BE_MAIL);
		return;
	case SMTP_W_BE_MAIL:
		if (code / 100 == 2) {
			tx->mail_sent = 1;
			s->flags |= SMTP_F_BEDIRTY;
		} else {	/* its RCPT will be refused too; the client hears why */
			free(tx->mail_fail);
			tx->mail_fail = xstrndup(text, len);
			tx->mail_fail_code = code;
			log_info("%s: backend refused MAIL from=<%s>: %s", s->id,
			    log_escape(tx->from, strlen(tx->from), esc),
			    log_escape(text, strcspn(text, "\r"), esc2));
		}
		smtp_enter_wait(s, SMTP_W_BE_RCPT);
		return;
	case SMTP_W_BE_RCPT:
		smtp_enter_wait(s, SMTP_W_NONE);
		if (tx->mail_fail != NULL) {
			smtp_reply_raw(s, tx->mail_fail, strlen(tx->mail_fail));
			smtp_tx_refused(s, tx->mail_fail_code, 1, "mail", tx->mail_fail);
			free(tx->mail_fail); tx->mail_fail = NULL;
		} else {
			smtp_reply_raw(s, text, len);
			if (code / 100 == 2) {
				tx->nrcpt++;
				stats_inc(STATS_RCPTS, 1);
				pol_tx_rcpt_accepted(s->ps, tx->cur->path);
				smtp_enter_state(s, SMTP_S_RCPT);
			} else {
				smtp_tx_refused(s, code, 1, "rcpt", text);
				log_info("%s: %s: RCPT to=<%s>: %s", s->id,
				    pol_outcome_name(tx->refused_outcome),
				    log_escape(tx->cur->path, strlen(tx->cur->path), esc),
				    log_escape(text, strcspn(text, "\r"), esc2));
			}
		}
		free(tx->cur); tx->cur = NULL;
		smtp_process(s);
		return;
	default:
		fatalx("smtp_be_rcpt_reply: wait %s", smtp_wait_names[s->wait]);
	}
}

/* The backend answered (code), or the leg failed (-1). */
static void
smtp_be_cb(void *arg, int code, const char *text, size_t len)
{
	struct smtp_session *s = arg;
	enum smtp_wait w = s->wait;
	int opening = w == SMTP_W_BE_OPEN || w == SMTP_W_BE_REOPEN;

	if (smtp_be_group(w) && code != -1) {
		smtp_be_rcpt_reply(s, code, text, len);
		if (smtp_be_group(s->wait) && !be_alive(s->be))
			smtp_be_cb(s, -1, "closed mid-group", 16);	/* a 421 */
		return;
	}
	smtp_enter_wait(s, SMTP_W_NONE);
	if (code == -1 || (opening && code != 250))
		stats_inc(STATS_BACKEND_ERRORS, 1);
	switch (w) {
	case SMTP_W_BE_OPEN:
	case SMTP_W_BE_REOPEN:
		s->flags &= ~SMTP_F_BEDIRTY;
		if (code != 250) {
			smtp_reply(s, "451 4.4.1 Error: backend not available");
			smtp_tx_end(s, POL_O_BACKEND_LOST, "connect", text);
			break;
		}
		if (w == SMTP_W_BE_REOPEN) {
			smtp_be_relay(s, SMTP_W_BE_RCPT);
			return;
		}
		smtp_mail_ok(s);
		break;
	case SMTP_W_BE_RSET:	/* the leg failed mid-group */
	case SMTP_W_BE_MAIL:
	case SMTP_W_BE_RCPT:
		smtp_reply(s, "451 4.4.2 Error: backend connection lost");
		smtp_tx_end(s, POL_O_BACKEND_LOST, w == SMTP_W_BE_RCPT ? "rcpt" : "mail",
		    text);
		break;
	case SMTP_W_BE_DATA:
		if (code == 354) {
			smtp_enter_wait(s, SMTP_W_BE_BODY);
			spool_out_init(&s->tx->out, s->tx->prepend, &s->tx->msg,
			    s->tx->d.skip, s->tx->d.nskip);
			be_body(s->be, &s->tx->out);
			return;
		}
		/* the backend refused DATA: that is the answer */
		__attribute__((fallthrough));
	case SMTP_W_BE_BODY:
		if (code == -1)
			smtp_reply(s, "451 4.4.2 Error: backend connection lost; try again later");
		else
			smtp_reply_raw(s, text, len);
		/* Only a 2xx is sure to end it: Postfix keeps the MAIL
		 * transaction open after an smtpd_end_of_data_restrictions
		 * refusal, and the next XCLIENT or MAIL on this leg would get
		 * 503 "MAIL transaction in progress". */
		if (w == SMTP_W_BE_BODY && code / 100 == 2)
			s->flags &= ~SMTP_F_BEDIRTY;
		smtp_tx_end(s, smtp_outcome(code, 1),
		    w == SMTP_W_BE_BODY ? "end-of-data" : "data", text);
		break;
	default:
		fatalx("smtp_be_cb: wait %s (code %d)", smtp_wait_names[w], code);
	}
	smtp_process(s);
}

/* ---- DATA ------------------------------------------------------------ */

static void
smtp_data_input(struct smtp_session *s)
{
	int done;
	size_t used = spool_feed(s->tx->spool, buf_ptr(&s->in), s->in.len, &done);

	buf_drop(&s->in, done ? used : s->in.len);
	if (done)
		smtp_eom(s);
}

/* The final dot: limits first, then the content verdict. */
static void
smtp_eom(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;
	const char *reply = NULL;

	smtp_enter_state(s, SMTP_S_EOM);
	switch (spool_error(tx->spool)) {
	case SPOOL_OK:
		break;
	case SPOOL_E_BARE:
		reply = "550 5.5.2 Error: bare <LF> or <CR> in message; use <CR><LF>";
		break;
	case SPOOL_E_LOOP:
		reply = "554 5.4.6 Error: too many Received: headers; mail loop?";
		break;
	case SPOOL_E_SIZE:
		reply = "552 5.3.4 Error: message size exceeds fixed limit";
		break;
	case SPOOL_E_IO:
		reply = "451 4.3.0 Error: local problem; try again later";
		break;
	}
	if (reply == NULL && spool_map(tx->spool, &tx->msg) == -1)
		reply = "451 4.3.0 Error: local problem; try again later";
	if (reply != NULL) {
		smtp_reply(s, "%s", reply);
		smtp_tx_end(s, smtp_outcome(atoi(reply), 0), "end-of-data", reply);
		smtp_process(s);
		return;
	}
	smtp_policy(s, POL_DATA);
}

static void
smtp_eom_verdict(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;
	struct pol_decision *d = &tx->d;
	char reply[512];

	switch (d->verdict) {
	case POL_ACCEPT:
	case POL_TAG: {
		char *rcvd = be_introduced(s->be) ? xstrdup("") : smtp_received(s);
		tx->prepend = xasprintf("%s%s", rcvd, d->prepend ? d->prepend : "");
		free(rcvd);
		smtp_be_relay(s, SMTP_W_BE_DATA);
		return;
	}
	case POL_QUARANTINE:
		snprintf(reply, sizeof(reply), "%d %s %s", d->code ? d->code : 250,
		    d->status[0] ? d->status : "2.0.0", d->text[0] ? d->text : "Ok");
		break;
	case POL_TEMPFAIL:
	case POL_REJECT:
		smtp_decision_sane(s, d);
		snprintf(reply, sizeof(reply), "%d %s %s", d->code, d->status, d->text);
		break;
	}
	int disconnect = d->disconnect;
	smtp_reply(s, "%s", reply);
	smtp_tx_end(s, smtp_outcome(atoi(reply), 0), "end-of-data", reply);
	if (disconnect) {
		smtp_enter_state(s, SMTP_S_QUIT);
		smtp_flush(s);
		return;
	}
	smtp_process(s);
}

/* Our trace header (RFC 5321 4.4) when the backend cannot be told who
 * the client is (no XCLIENT/XFORWARD). */
static char *
smtp_received(struct smtp_session *s)
{
	char date[64], helo[LOG_ESCAPE_MAX];
	time_t now = time_wall();
	struct tm tm;

	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	/* the HELO name is client text: keep it printable */
	snprintf(helo, sizeof(helo), "%s", s->helo ? s->helo : "unknown");
	for (char *p = helo; *p; p++)
		if ((unsigned char)*p < 33 || (unsigned char)*p > 126 || *p == '(' || *p == ')')
			*p = '_';
	return xasprintf("Received: from %s ([%s%s])\r\n\tby %s (Postern) with %s%s id %s;\r\n\t%s\r\n",
	    helo, s->v6 ? "IPv6:" : "", s->ip, s->conf->hostname,
	    s->flags & SMTP_F_EHLO ? "ESMTP" : "SMTP", s->flags & SMTP_F_TLS ? "S" : "",
	    s->id, date);
}

/* ---- loops and threads ----------------------------------------------- */

/* Per second: timeouts of clients and backend legs. */
static void
smtp_tick(struct smtp_loop *l, uint64_t now)
{
	struct smtp_session *s, *next;

	if (l->lis_paused && !l->draining) {
		l->lis_paused = 0;
		for (int i = 0; i < l->nlis; i++)
			ev_set(l->ev, &l->lis[i], EV_READ);
	}
	if (l->pool != NULL)
		be_pool_tick(l->pool, now);
	struct conf *c = conf_current();
	smtp_sched(l, c->sched_batch);	/* follows SIGHUP */
	conf_unref(c);
	for (s = l->sessions; s != NULL; s = next) {
		next = s->next;
		if (s->be != NULL)
			be_tick(s->be, now);
		if (s->flags & SMTP_F_DEAD)
			continue;
		if (s->wait != SMTP_W_NONE || s->state == SMTP_S_EOM) {
			/* our wait, not the client's: its clock restarts after */
			uint64_t d = now + (uint64_t)s->conf->timeout_command * 1000;
			if (d > s->deadline)
				s->deadline = d;
			continue;
		}
		const char *why = smtp_deadline_passed(s, now);
		if (why == NULL)
			continue;
		if (s->state == SMTP_S_PROXYHDR) {	/* a balancer: no reply */
			smtp_free(s, "no complete PROXY header in time");
			continue;
		}
		if (s->state == SMTP_S_QUIT || s->state == SMTP_S_TLS) {
			smtp_free(s, why);
			continue;
		}
		log_info("%s: %s exceeded in %s from [%s]", s->id, why,
		    smtp_state_names[s->state], s->ip);
		smtp_close_after(s, "421 4.4.2 %s Error: %s exceeded",
		    s->conf->hostname, why);
	}
}

/* After each batch: free the dead, fire timers, drain on SIGTERM. */
static int
smtp_after(void *arg)
{
	struct smtp_loop *l = arg;
	uint64_t now = time_mono_ms();

	while (l->graveyard != NULL) {
		struct smtp_session *s = l->graveyard;
		l->graveyard = s->next;
		smtp_destroy(s);
	}
	if (now - l->last_tick >= SMTP_TICK_MS) {
		l->last_tick = now;
		smtp_tick(l, now);
	}
	if (atomic_load(&smtp_conns.stop) && !l->draining) {
		struct conf *c = conf_current();
		l->draining = 1;
		l->drain_deadline = now + (uint64_t)c->drain_timeout * 1000;
		conf_unref(c);
		be_pool_free(l->pool);	/* QUIT to each idle leg */
		l->pool = NULL;
		for (int i = 0; i < l->nlis; i++)
			ev_del(l->ev, &l->lis[i]);
	}
	if (l->draining && now >= l->drain_deadline) {
		for (struct smtp_session *s = l->sessions, *n; s != NULL; s = n) {
			n = s->next;
			smtp_reply(s, "421 4.3.2 %s Service shutting down", s->conf->hostname);
			smtp_flush(s);	/* one try; the session ends either way */
			smtp_free(s, "shutdown");
		}
	}
	if (l->draining && l->sessions == NULL) {
		while (l->graveyard != NULL) {
			struct smtp_session *s = l->graveyard;
			l->graveyard = s->next;
			smtp_destroy(s);
		}
		return l->jobs_out == 0;	/* orphaned jobs still come back */
	}
	return 0;
}

/* proxy.sched_batch for the calling loop thread. SCHED_BATCH keeps the
 * thread's share of the CPU but a wakeup no longer preempts whatever runs
 * on the core (the MTA behind us, a client on the same host): the thread
 * then runs a little later and finds more ready sessions per epoll_wait(),
 * which costs fewer context switches per message. */
static void
smtp_sched(struct smtp_loop *l, int batch)
{
	struct sched_param sp = { .sched_priority = 0 };
	int rc;

	if (l->sched_batch == batch)
		return;
	l->sched_batch = batch;
	if ((rc = pthread_setschedparam(pthread_self(), batch ? SCHED_BATCH : SCHED_OTHER,
	    &sp)) != 0)
		log_warn("proxy.sched_batch: cannot set the scheduling policy: %s",
		    strerror(rc));
}

/* ---- the loop as the daemon sees it --------------------------------- */

struct smtp_loop *
smtp_loop_new(void)
{
	struct smtp_loop *l = xcalloc(1, sizeof(*l));

	l->ev = ev_new();
	l->home = work_home_new(l->ev, smtp_jobs_back, l);
	l->pool = be_pool_new();
	return l;
}

int
smtp_loop_listen(struct smtp_loop *l, int fd)
{
	if (l->nlis == CONF_MAX_LISTEN)
		return -1;
	ev_add(l->ev, &l->lis[l->nlis++], fd, EV_READ, smtp_accept, l);
	return 0;
}

void
smtp_loop_run(struct smtp_loop *l)
{
	struct conf *c = conf_current();

	smtp_sched(l, c->sched_batch);
	conf_unref(c);
	ev_run(l->ev, SMTP_TICK_MS / 2, smtp_after, l);
}

void
smtp_loop_drain(struct smtp_loop *l)
{
	atomic_store(&smtp_conns.stop, 1);
	ev_wake(l->ev);
}

void
smtp_loop_free(struct smtp_loop *l)
{
	work_home_free(l->home);
	ev_free(l->ev);
	free(l);
}
