/*
 * dns.c -- the one resolver of Postern: libunbound underneath, our own
 * TTL-honouring cache in front, a hard per-question timeout and a
 * per-session question budget.
 *
 * Public calls: dns_init, dns_shutdown, dns_budget_init, dns_query,
 * dns_query_cached, dns_answer_free, dns_spec_begin, dns_spec_active,
 * dns_spec_missed, dns_spec_end, dns_reverse_name, dns_status_name,
 * dns_stats_get.
 *
 * How a question travels: dns_query() looks in the cache; on a miss it
 * hands the question to libunbound with ub_resolve_async() and sleeps on a
 * condition variable until the answer arrives or dns.timeout passes. One
 * dispatcher thread of ours polls ub_fd() and runs ub_process(), which calls
 * dns_ub_done() with the answer. libunbound's own blocking ub_resolve() has
 * no timeout, which is why we do not use it.
 *
 * Where questions go: with dns.resolver = host:port, libunbound forwards
 * the root zone "." to that server only (forward-first: no, so it never
 * falls back to root hints); with "system", to the servers in resolv.conf.
 * No hosts file, no DNSSEC trust anchor: answers are what the resolver says.
 *
 * Ownership: a query record (struct dns_q) belongs to the waiting thread
 * until it gives up; after a timeout it belongs to whichever of ub_cancel()
 * or the late callback sees it last (the `abandoned' flag, under qlock).
 * Cache entries belong to the cache; callers get private copies.
 *
 * Thread: dns_query() from any number of threads; dns_init/dns_shutdown
 * once, from the main thread, with no queries in flight.
 * Privilege: none (UDP/TCP sockets to the configured resolver).
 */
#include "dns/dns.h"
#include "lib/conf.h"
#include "lib/sockaddr.h"
#include "lib/util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unbound.h>
#include <unistd.h>

/* RFC 1035 2.3.4: 255 octets on the wire, so at most 253 printable chars
 * without the trailing dot; a label is at most 63 octets. */
#define DNS_NAME_MAX		253
#define DNS_LABEL_MAX		63
/* Cap what we keep from a TTL (RFC 2181 8 allows 2^31-1 s; a day is
 * plenty for a mail gateway and bounds stale data after a zone change). */
#define DNS_TTL_CAP		86400
/* Records we decode from one answer; the rest are dropped. A UDP answer of
 * 64 KiB cannot hold more than a few thousand anyway. */
#define DNS_MAX_RR		512
#define DNS_CACHE_BUCKETS_MIN	1024

static const char *dns_nodefault[] = {
	"test. transparent", "invalid. transparent", "home.arpa. transparent",
	/* RFC 5737 / RFC 3849 documentation nets and RFC 1918 reverse zones */
	"2.0.192.in-addr.arpa. transparent", "100.51.198.in-addr.arpa. transparent",
	"113.0.203.in-addr.arpa. transparent", "8.b.d.0.1.0.0.2.ip6.arpa. transparent",
	"10.in-addr.arpa. transparent", "168.192.in-addr.arpa. transparent",
	/* loopback clients get their verified name (policy/rdns.c) from the
	 * resolver too, not from libunbound's built-in "localhost" */
	"127.in-addr.arpa. transparent",
};

enum dns_q_state { DNS_Q_WAITING = 0, DNS_Q_ANSWERED };

struct dns_q {
	enum dns_q_state state;
	int		 abandoned;	/* the waiter gave up; callback frees */
	int		 err;		/* libunbound error code */
	struct ub_result *res;
	pthread_cond_t	 cv;
};

/* One cached answer: the raw RDATA blobs, decoded again on each hit. */
struct dns_centry {
	struct dns_centry *hnext;	/* hash chain */
	struct dns_centry *prev, *next;	/* LRU list, most recent first */
	char		*name;		/* lower case, no trailing dot */
	int		 type;
	uint32_t	 hash;
	uint64_t	 expires_ms;	/* time_mono_ms() */
	uint32_t	 ttl;
	enum dns_status	 status;
	int		 count;
	int		*lens;
	unsigned char	**rdata;
};

struct dns_cache {
	pthread_mutex_t	 lock;
	struct dns_centry **buckets;
	size_t		 nbuckets;
	struct dns_centry *head, *tail;
	int		 n, cap;
};

static struct ub_ctx	*ub;
static pthread_t	 dispatcher;
static int		 wake[2] = { -1, -1 };
static long long	 timeout_ms;
static pthread_mutex_t	 qlock = PTHREAD_MUTEX_INITIALIZER;
static struct dns_cache	 cache = { .lock = PTHREAD_MUTEX_INITIALIZER };
static struct dns_stats	 stats;

static int	 dns_ub_setup(const struct conf *);
static void	*dns_dispatch(void *);
static void	 dns_ub_done(void *, int, struct ub_result *);
static struct dns_answer *dns_resolve(const char *, int);
static struct dns_answer *dns_from_result(const char *, int, int, struct ub_result *);
static struct dns_answer *dns_answer_new(int, enum dns_status, const char *);
static void	 dns_answer_fill(struct dns_answer *, int, unsigned char **, const int *);
static int	 dns_rr_decode(struct dns_rr *, int, const unsigned char *, int);
static char	*dns_wire_name(const unsigned char *, int, int *);
static int	 dns_name_norm(const char *, char *, size_t);
static unsigned long *dns_stat_counter(int which);
static void	 dns_stat(int which);
static uint32_t	 dns_hash(const char *, int);
static struct dns_centry *dns_cache_find(const char *, int, uint32_t);
static struct dns_answer *dns_cache_get(const char *, int);
static void	 dns_cache_put(const char *, int, struct ub_result *, enum dns_status);
static void	 dns_cache_link(struct dns_centry *);
static void	 dns_cache_unlink(struct dns_centry *);
static void	 dns_centry_free(struct dns_centry *);
static void	 dns_cache_clear(void);

enum { ST_QUERIES, ST_HITS, ST_MISSES, ST_TIMEOUTS, ST_BUDGET, ST_N };

/* This thread's speculation (dns_spec_begin): on, whether a question
 * found no answer in the cache, and the statistics held back until
 * dns_spec_end says whether the run is kept. */
static _Thread_local struct {
	int		 on, missed;
	unsigned long	 held[ST_N];
} spec;

int
dns_init(const struct conf *c)
{
	size_t nb = DNS_CACHE_BUCKETS_MIN;

	if (ub != NULL)
		fatalx("dns_init: called twice");
	timeout_ms = c->dns_timeout_ms;
	cache.cap = c->dns_cache_size;
	while (nb < (size_t)cache.cap)
		nb <<= 1;
	cache.nbuckets = nb;
	cache.buckets = xcalloc(nb, sizeof(*cache.buckets));
	memset(&stats, 0, sizeof(stats));
	if ((ub = ub_ctx_create()) == NULL) {
		log_err("dns: cannot create a libunbound context");
		return -1;
	}
	if (dns_ub_setup(c) == -1) {
		ub_ctx_delete(ub);
		ub = NULL;
		return -1;
	}
	if (pipe2(wake, O_CLOEXEC) == -1)
		fatal("dns: pipe");
	if ((errno = pthread_create(&dispatcher, NULL, dns_dispatch, NULL)) != 0)
		fatal("dns: pthread_create");
	return 0;
}

/* Point libunbound at the configured resolver and nowhere else. */
static int
dns_ub_setup(const struct conf *c)
{
	char host[256], fwd[300];
	int port, r;

	/* Threads, not a forked helper process: fork from a threaded
	 * server is asking for trouble. */
	if ((r = ub_ctx_async(ub, 1)) != 0 ||
	    /* Test resolvers and local caches (systemd-resolved, a local
	     * unbound) live on loopback; libunbound skips them by default. */
	    (r = ub_ctx_set_option(ub, "do-not-query-localhost:", "no")) != 0) {
		log_err("dns: libunbound setup: %s", ub_strerror(r));
		return -1;
	}
	/* libunbound answers RFC 6761 names (test., invalid., ...) itself
	 * with NXDOMAIN; making them transparent sends them to the configured
	 * resolver instead ("nodefault" is ignored when set this way), as
	 * test zones and some private zones live under them. */
	for (size_t i = 0; i < ARRAY_SIZE(dns_nodefault); i++)
		if ((r = ub_ctx_set_option(ub, "local-zone:", dns_nodefault[i])) != 0) {
			log_err("dns: libunbound local-zone: %s", ub_strerror(r));
			return -1;
		}
	if (strcmp(c->dns_resolver, "system") == 0) {
		if ((r = ub_ctx_resolvconf(ub, NULL)) != 0) {
			log_err("dns: cannot read resolv.conf: %s", ub_strerror(r));
			return -1;
		}
		return 0;
	}
	if (sockaddr_split(c->dns_resolver, host, sizeof(host), &port) == -1) {
		log_err("dns: dns.resolver '%s' is not host:port", c->dns_resolver);
		return -1;
	}
	snprintf(fwd, sizeof(fwd), "%s@%d", host, port);
	/* ub_ctx_set_fwd() makes a forward zone "." with forward-first: no,
	 * so a silent resolver means SERVFAIL, never a trip to the roots. */
	if ((r = ub_ctx_set_fwd(ub, fwd)) != 0) {
		log_err("dns: dns.resolver '%s': %s", c->dns_resolver, ub_strerror(r));
		return -1;
	}
	return 0;
}

void
dns_shutdown(void)
{
	if (ub == NULL)
		return;
	if (write(wake[1], "x", 1) == -1)
		fatal("dns: write");
	pthread_join(dispatcher, NULL);
	close(wake[0]);
	close(wake[1]);
	wake[0] = wake[1] = -1;
	ub_ctx_delete(ub);
	ub = NULL;
	dns_cache_clear();
	free(cache.buckets);
	cache.buckets = NULL;
}

/* The dispatcher: deliver libunbound's answers to their waiters. */
static void *
dns_dispatch(void *arg)
{
	struct pollfd pfd[2];

	(void)arg;
	pfd[0].fd = ub_fd(ub);
	pfd[0].events = POLLIN;
	pfd[1].fd = wake[0];
	pfd[1].events = POLLIN;
	for (;;) {
		if (poll(pfd, 2, -1) == -1) {
			if (errno == EINTR)
				continue;
			fatal("dns: poll");
		}
		if (pfd[1].revents)
			return NULL;
		if (pfd[0].revents && ub_process(ub) != 0)
			log_warn("dns: ub_process failed");
	}
}

/* libunbound's callback, on the dispatcher thread. */
static void
dns_ub_done(void *arg, int err, struct ub_result *res)
{
	struct dns_q *q = arg;

	pthread_mutex_lock(&qlock);
	if (q->abandoned) {
		pthread_mutex_unlock(&qlock);
		if (res != NULL)
			ub_resolve_free(res);
		pthread_cond_destroy(&q->cv);
		free(q);
		return;
	}
	q->err = err;
	q->res = res;
	q->state = DNS_Q_ANSWERED;
	pthread_cond_signal(&q->cv);
	pthread_mutex_unlock(&qlock);
}

void
dns_budget_init(struct dns_budget *b, const struct conf *c)
{
	b->left = c->dns_session_budget;
	b->asked = 0;
}

struct dns_answer *
dns_query(const char *name, int type, struct dns_budget *b)
{
	char norm[DNS_NAME_MAX + 2];
	struct dns_answer *a;

	dns_stat(ST_QUERIES);
	if (b != NULL) {
		if (b->left <= 0) {
			dns_stat(ST_BUDGET);
			return dns_answer_new(type, DNS_BUDGET,
			    "session DNS budget spent");
		}
		b->left--;
		b->asked++;
	}
	if (dns_name_norm(name, norm, sizeof(norm)) == -1)
		/* A name that cannot be on the wire cannot exist. */
		return dns_answer_new(type, DNS_NXDOMAIN, "invalid domain name");
	if (ub == NULL)
		return dns_answer_new(type, DNS_TEMPERROR, "resolver not started");
	if ((a = dns_cache_get(norm, type)) != NULL) {
		dns_stat(ST_HITS);
		return a;
	}
	dns_stat(ST_MISSES);
	if (spec.on) {
		spec.missed = 1;
		return dns_answer_new(type, DNS_TEMPERROR, "not in the cache");
	}
	return dns_resolve(norm, type);
}

struct dns_answer *
dns_query_cached(const char *name, int type)
{
	char norm[DNS_NAME_MAX + 2];
	struct dns_answer *a;

	if (ub == NULL || dns_name_norm(name, norm, sizeof(norm)) == -1)
		return NULL;
	if ((a = dns_cache_get(norm, type)) != NULL) {
		dns_stat(ST_QUERIES);
		dns_stat(ST_HITS);
	}
	return a;
}

void
dns_spec_begin(void)
{
	memset(&spec, 0, sizeof(spec));
	spec.on = 1;
}

int
dns_spec_active(void)
{
	return spec.on;
}

int
dns_spec_missed(void)
{
	return spec.missed;
}

void
dns_spec_end(int keep)
{
	spec.on = 0;
	for (int i = 0; keep && i < ST_N; i++)
		__atomic_fetch_add(dns_stat_counter(i), spec.held[i], __ATOMIC_RELAXED);
}

/* Ask libunbound and wait at most dns.timeout for the answer. */
static struct dns_answer *
dns_resolve(const char *name, int type)
{
	struct dns_q *q = xcalloc(1, sizeof(*q));
	pthread_condattr_t ca;
	struct timespec ts;
	int id, r, rc = 0;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&q->cv, &ca);
	pthread_condattr_destroy(&ca);
	if ((r = ub_resolve_async(ub, name, type, 1, q, dns_ub_done, &id)) != 0) {
		pthread_cond_destroy(&q->cv);
		free(q);
		return dns_answer_new(type, DNS_TEMPERROR, ub_strerror(r));
	}
	time_deadline_ts(CLOCK_MONOTONIC, (uint64_t)timeout_ms, &ts);
	pthread_mutex_lock(&qlock);
	while (q->state == DNS_Q_WAITING && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&q->cv, &qlock, &ts);
	if (q->state == DNS_Q_WAITING) {
		/* Give up. A successful ub_cancel() means no callback will
		 * come; otherwise the callback is on its way and frees q. */
		pthread_mutex_unlock(&qlock);
		dns_stat(ST_TIMEOUTS);
		if (ub_cancel(ub, id) == 0) {
			pthread_cond_destroy(&q->cv);
			free(q);
		} else {
			pthread_mutex_lock(&qlock);
			if (q->state == DNS_Q_ANSWERED) {
				if (q->res != NULL)
					ub_resolve_free(q->res);
				pthread_cond_destroy(&q->cv);
				free(q);
			} else
				q->abandoned = 1;
			pthread_mutex_unlock(&qlock);
		}
		return dns_answer_new(type, DNS_TEMPERROR, "timeout");
	}
	pthread_mutex_unlock(&qlock);
	struct dns_answer *a = dns_from_result(name, type, q->err, q->res);
	if (q->res != NULL)
		ub_resolve_free(q->res);
	pthread_cond_destroy(&q->cv);
	free(q);
	return a;
}

/* Turn libunbound's answer into ours, and cache what may be cached. */
static struct dns_answer *
dns_from_result(const char *name, int type, int err, struct ub_result *res)
{
	struct dns_answer *a;
	int n;

	if (err != 0 || res == NULL)
		return dns_answer_new(type, DNS_TEMPERROR, ub_strerror(err));
	/* RFC 7208 2.6.1 / 5: only NOERROR and NXDOMAIN are answers; any
	 * other RCODE (SERVFAIL, REFUSED...) means we could not find out. */
	if (res->rcode == 3 || res->nxdomain) {
		dns_cache_put(name, type, res, DNS_NXDOMAIN);
		return dns_answer_new(type, DNS_NXDOMAIN, "");
	}
	if (res->rcode != 0) {
		a = dns_answer_new(type, DNS_TEMPERROR, "");
		snprintf(a->why, sizeof(a->why), "rcode %d", res->rcode);
		return a;
	}
	for (n = 0; res->havedata && res->data[n] != NULL && n < DNS_MAX_RR; n++)
		;
	if (n == 0) {
		dns_cache_put(name, type, res, DNS_NODATA);
		return dns_answer_new(type, DNS_NODATA, "");
	}
	dns_cache_put(name, type, res, DNS_OK);
	a = dns_answer_new(type, DNS_OK, "");
	a->ttl = res->ttl > 0 ? (uint32_t)res->ttl : 0;
	dns_answer_fill(a, n, (unsigned char **)res->data, res->len);
	return a;
}

static struct dns_answer *
dns_answer_new(int type, enum dns_status st, const char *why)
{
	struct dns_answer *a = xcalloc(1, sizeof(*a));

	a->type = type;
	a->status = st;
	snprintf(a->why, sizeof(a->why), "%s", why);
	return a;
}

/* Copy and decode n RDATA blobs; undecodable ones are dropped, and if none
 * is left the answer is NODATA. */
static void
dns_answer_fill(struct dns_answer *a, int n, unsigned char **data, const int *lens)
{
	a->rr = xcalloc((size_t)n, sizeof(*a->rr));
	for (int i = 0; i < n; i++) {
		struct dns_rr *rr = &a->rr[a->count];
		unsigned char *copy = xmalloc((size_t)lens[i] + 1);

		memcpy(copy, data[i], (size_t)lens[i]);
		copy[lens[i]] = '\0';
		if (dns_rr_decode(rr, a->type, copy, lens[i]) == -1) {
			free(copy);
			memset(rr, 0, sizeof(*rr));
			continue;
		}
		a->count++;
	}
	if (a->count == 0)
		a->status = DNS_NODATA;
}

/* Decode one record's RDATA (RFC 1035 3.3, RFC 3596 2.2); 0 or -1. */
static int
dns_rr_decode(struct dns_rr *rr, int type, const unsigned char *p, int len)
{
	int used;

	rr->rdata = p;
	rr->rdlen = len;
	switch (type) {
	case DNS_T_A:
		if (len != 4)
			return -1;
		memcpy(&rr->u.a, p, 4);
		return 0;
	case DNS_T_AAAA:
		if (len != 16)
			return -1;
		memcpy(&rr->u.aaaa, p, 16);
		return 0;
	case DNS_T_MX:
		if (len < 3)
			return -1;
		rr->u.mx.pref = p[0] << 8 | p[1];
		rr->u.mx.host = dns_wire_name(p + 2, len - 2, &used);
		return rr->u.mx.host ? 0 : -1;
	case DNS_T_PTR:
	case DNS_T_CNAME:
	case DNS_T_NS:
		rr->u.name = dns_wire_name(p, len, &used);
		return rr->u.name ? 0 : -1;
	case DNS_T_TXT: {
		char *j = xmalloc((size_t)len + 1);
		int o = 0, k = 0, ns = 0;
		while (k < len) {
			int sl = p[k++];
			if (k + sl > len) {
				free(j);
				return -1;
			}
			memcpy(j + o, p + k, (size_t)sl);
			o += sl;
			k += sl;
			ns++;
		}
		j[o] = '\0';
		rr->u.txt.joined = j;
		rr->u.txt.len = o;
		rr->u.txt.nstrings = ns;
		return 0;
	}
	default:
		return 0;	/* raw RDATA only */
	}
}

/* An uncompressed wire-format name -> "a.b.c" (no trailing dot, "" for the
 * root). Printable bytes stay as they are (SPF test names hold ':' and
 * '/'); a '.' or '\\' inside a label, spaces and other bytes become \DDD
 * as in RFC 1035 5.1, which libunbound reads back as the same name. NULL
 * when malformed. */
static char *
dns_wire_name(const unsigned char *p, int len, int *used)
{
	char out[DNS_NAME_MAX * 4 + 8];
	size_t o = 0;
	int k = 0;

	while (k < len && p[k] != 0) {
		int ll = p[k++];
		if (ll > DNS_LABEL_MAX || k + ll > len)
			return NULL;
		if (o > 0)
			out[o++] = '.';
		for (int i = 0; i < ll; i++) {
			unsigned char ch = p[k + i];
			if (o + 5 >= sizeof(out))
				return NULL;
			if (ch > 0x20 && ch < 0x7f && ch != '.' && ch != '\\')
				out[o++] = (char)ch;
			else
				o += (size_t)snprintf(out + o, sizeof(out) - o, "\\%03u", ch);
		}
		k += ll;
	}
	if (k >= len)
		return NULL;	/* no terminating root label */
	out[o] = '\0';
	*used = k + 1;
	return xstrdup(out);
}

/* Lower-case, strip one trailing dot, check lengths; 0 or -1. */
static int
dns_name_norm(const char *in, char *out, size_t outsz)
{
	size_t n = strlen(in), label = 0;

	if (n > 0 && in[n - 1] == '.')
		n--;
	if (n == 0 || n > DNS_NAME_MAX || n >= outsz)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (in[i] == '.') {
			if (label == 0)
				return -1;	/* empty label */
			label = 0;
		} else if (++label > DNS_LABEL_MAX)
			return -1;
		out[i] = (char)tolower((unsigned char)in[i]);
	}
	if (label == 0)
		return -1;
	out[n] = '\0';
	return 0;
}

void
dns_answer_free(struct dns_answer *a)
{
	if (a == NULL)
		return;
	for (int i = 0; i < a->count; i++) {
		struct dns_rr *rr = &a->rr[i];
		switch (a->type) {
		case DNS_T_MX:
			free(rr->u.mx.host);
			break;
		case DNS_T_PTR:
		case DNS_T_CNAME:
		case DNS_T_NS:
			free(rr->u.name);
			break;
		case DNS_T_TXT:
			free(rr->u.txt.joined);
			break;
		}
		free((void *)rr->rdata);
	}
	free(a->rr);
	free(a);
}

/* ---- the cache ---- */

static uint32_t
dns_hash(const char *name, int type)
{
	uint32_t h = 2166136261u ^ (uint32_t)type;	/* FNV-1a */

	for (; *name; name++)
		h = (h ^ (unsigned char)*name) * 16777619u;
	return h;
}

/* The entry for a normalised name and type, live or not (lock held). */
static struct dns_centry *
dns_cache_find(const char *name, int type, uint32_t h)
{
	struct dns_centry *e;

	for (e = cache.buckets[h & (cache.nbuckets - 1)]; e; e = e->hnext)
		if (e->hash == h && e->type == type && strcmp(e->name, name) == 0)
			break;
	return e;
}

/* A fresh copy of a live entry, or NULL (missing or expired). A hit moves
 * the entry to the front of the LRU list. */
static struct dns_answer *
dns_cache_get(const char *name, int type)
{
	struct dns_answer *a = NULL;
	uint32_t h = dns_hash(name, type);
	uint64_t now = time_mono_ms();
	struct dns_centry *e;

	if (cache.cap == 0)
		return NULL;
	pthread_mutex_lock(&cache.lock);
	if ((e = dns_cache_find(name, type, h)) != NULL) {
		dns_cache_unlink(e);
		if (e->expires_ms <= now) {
			dns_centry_free(e);
		} else {
			a = dns_answer_new(type, e->status, "");
			/* What is left of the TTL, as a downstream cache says. */
			a->ttl = (uint32_t)((e->expires_ms - now + 999) / 1000);
			if (e->count > 0)
				dns_answer_fill(a, e->count, e->rdata, e->lens);
			dns_cache_link(e);
		}
	}
	pthread_mutex_unlock(&cache.lock);
	return a;
}

/* Remember an answer for its TTL. A TTL of 0 means "do not cache"
 * (RFC 1035 3.2.1); negative answers carry the SOA-derived TTL
 * libunbound computed (RFC 2308 5). */
static void
dns_cache_put(const char *name, int type, struct ub_result *res, enum dns_status st)
{
	struct dns_centry *e, *old;
	uint32_t ttl = res->ttl > 0 ? (uint32_t)res->ttl : 0;
	int n = 0;

	if (cache.cap == 0 || ttl == 0)
		return;
	if (ttl > DNS_TTL_CAP)
		ttl = DNS_TTL_CAP;
	if (st == DNS_OK)
		while (res->data[n] != NULL && n < DNS_MAX_RR)
			n++;
	e = xcalloc(1, sizeof(*e));
	e->name = xstrdup(name);
	e->type = type;
	e->hash = dns_hash(name, type);
	e->status = st;
	e->ttl = ttl;
	e->expires_ms = time_mono_ms() + (uint64_t)ttl * 1000;
	e->count = n;
	e->lens = xcalloc((size_t)n + 1, sizeof(int));
	e->rdata = xcalloc((size_t)n + 1, sizeof(*e->rdata));
	for (int i = 0; i < n; i++) {
		e->lens[i] = res->len[i];
		e->rdata[i] = xmalloc((size_t)res->len[i] + 1);
		memcpy(e->rdata[i], res->data[i], (size_t)res->len[i]);
	}
	pthread_mutex_lock(&cache.lock);
	/* Another thread may have asked the same question meanwhile. */
	if ((old = dns_cache_find(name, type, e->hash)) != NULL) {
		dns_cache_unlink(old);
		dns_centry_free(old);
	}
	while (cache.n >= cache.cap && cache.tail != NULL) {
		old = cache.tail;
		dns_cache_unlink(old);
		dns_centry_free(old);
	}
	dns_cache_link(e);
	pthread_mutex_unlock(&cache.lock);
}

/* Put e at the front of the LRU list and into its bucket (lock held). */
static void
dns_cache_link(struct dns_centry *e)
{
	struct dns_centry **b = &cache.buckets[e->hash & (cache.nbuckets - 1)];

	e->hnext = *b;
	*b = e;
	e->prev = NULL;
	e->next = cache.head;
	if (cache.head != NULL)
		cache.head->prev = e;
	cache.head = e;
	if (cache.tail == NULL)
		cache.tail = e;
	cache.n++;
}

/* Take e out of its bucket and the LRU list (lock held). */
static void
dns_cache_unlink(struct dns_centry *e)
{
	struct dns_centry **pp = &cache.buckets[e->hash & (cache.nbuckets - 1)];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		cache.head = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	else
		cache.tail = e->prev;
	cache.n--;
}

static void
dns_centry_free(struct dns_centry *e)
{
	for (int i = 0; i < e->count; i++)
		free(e->rdata[i]);
	free(e->rdata);
	free(e->lens);
	free(e->name);
	free(e);
}

static void
dns_cache_clear(void)
{
	pthread_mutex_lock(&cache.lock);
	while (cache.head != NULL) {
		struct dns_centry *e = cache.head;
		dns_cache_unlink(e);
		dns_centry_free(e);
	}
	pthread_mutex_unlock(&cache.lock);
}

void
dns_cache_flush(void)
{
	dns_cache_clear();
}

/* Counters are bumped on every question: atomics, not a lock. */
static unsigned long *
dns_stat_counter(int which)
{
	switch (which) {
	case ST_QUERIES: return &stats.queries;
	case ST_HITS: return &stats.cache_hits;
	case ST_MISSES: return &stats.cache_misses;
	case ST_TIMEOUTS: return &stats.timeouts;
	default: return &stats.budget_refused;
	}
}

static void
dns_stat(int which)
{
	if (spec.on)
		spec.held[which]++;
	else
		__atomic_fetch_add(dns_stat_counter(which), 1, __ATOMIC_RELAXED);
}

void
dns_stats_get(struct dns_stats *out)
{
	out->queries = __atomic_load_n(&stats.queries, __ATOMIC_RELAXED);
	out->cache_hits = __atomic_load_n(&stats.cache_hits, __ATOMIC_RELAXED);
	out->cache_misses = __atomic_load_n(&stats.cache_misses, __ATOMIC_RELAXED);
	out->timeouts = __atomic_load_n(&stats.timeouts, __ATOMIC_RELAXED);
	out->budget_refused = __atomic_load_n(&stats.budget_refused, __ATOMIC_RELAXED);
	pthread_mutex_lock(&cache.lock);
	out->cache_entries = (unsigned long)(cache.n > 0 ? cache.n : 0);
	pthread_mutex_unlock(&cache.lock);
}

/* RFC 1035 3.5 (in-addr.arpa) and RFC 3596 2.5 (ip6.arpa, nibbles). zone
 * NULL means the PTR zone of the address family. 0, or -1 if it does not
 * fit or the family is unknown. Written by hand, not with snprintf: RBL,
 * SPF and rDNS build several of these per message. */
int
dns_reverse_name(const struct sockaddr *sa, const char *zone, char *out, size_t outsz)
{
	static const char hex[] = "0123456789abcdef";
	/* "255.255.255.255." or 32 "x." nibbles */
	char buf[64];
	size_t o = 0, zl;

	if (sa->sa_family == AF_INET) {
		const unsigned char *p = (const unsigned char *)
		    &((const struct sockaddr_in *)sa)->sin_addr;
		for (int i = 3; i >= 0; i--) {
			unsigned v = p[i];
			if (v >= 100)
				buf[o++] = (char)('0' + v / 100);
			if (v >= 10)
				buf[o++] = (char)('0' + v / 10 % 10);
			buf[o++] = (char)('0' + v % 10);
			buf[o++] = '.';
		}
		if (zone == NULL)
			zone = "in-addr.arpa";
	} else if (sa->sa_family == AF_INET6) {
		const unsigned char *p = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
		for (int i = 15; i >= 0; i--) {
			buf[o++] = hex[p[i] & 0xf];
			buf[o++] = '.';
			buf[o++] = hex[p[i] >> 4];
			buf[o++] = '.';
		}
		if (zone == NULL)
			zone = "ip6.arpa";
	} else
		return -1;
	zl = strlen(zone);
	if (o + zl >= outsz)
		return -1;
	memcpy(out, buf, o);
	memcpy(out + o, zone, zl + 1);
	return 0;
}

const char *
dns_status_name(enum dns_status s)
{
	switch (s) {
	case DNS_OK: return "ok";
	case DNS_NXDOMAIN: return "nxdomain";
	case DNS_NODATA: return "nodata";
	case DNS_TEMPERROR: return "temperror";
	case DNS_BUDGET: return "budget";
	}
	return "?";
}
