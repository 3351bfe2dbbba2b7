/*
 * dns.h -- the one DNS resolver of Postern (libunbound underneath).
 *
 * Everything that asks DNS goes through dns_query(): RBL lookups, SPF (our
 * own evaluator in policy/spf.c), DKIM keys (libopendkim's callback
 * hooks), DMARC records. One config (dns.resolver, dns.timeout), one cache
 * that honours TTLs, one timeout policy. No library's own resolver is used,
 * and with dns.resolver = host:port nothing but that server is asked.
 *
 * Thread: dns_query() is blocking and safe from any number of worker
 * threads at once. Ownership: the caller frees an answer with
 * dns_answer_free(). A budget belongs to one session (one thread at a time).
 */
#ifndef POSTERN_DNS_H
#define POSTERN_DNS_H

#include <netinet/in.h>
#include <stdint.h>

struct conf;

enum dns_status {
	DNS_OK = 0,		/* at least one record of the type */
	DNS_NXDOMAIN,		/* the name does not exist */
	DNS_NODATA,		/* the name exists, no record of the type */
	DNS_TEMPERROR,		/* timeout, SERVFAIL, network error */
	DNS_BUDGET,		/* this session asked too many questions */
};

/* Record types we ask for (values are the DNS type numbers). */
#define DNS_T_A		1
#define DNS_T_NS	2
#define DNS_T_CNAME	5
#define DNS_T_PTR	12
#define DNS_T_MX	15
#define DNS_T_TXT	16
#define DNS_T_AAAA	28

struct dns_rr {
	/* Raw RDATA in wire format, for adapters that parse themselves. */
	const unsigned char *rdata;
	int	 rdlen;
	/* Decoded, by type: */
	union {
		struct in_addr	 a;		/* A */
		struct in6_addr	 aaaa;		/* AAAA */
		struct {
			int	 pref;
			char	*host;		/* MX exchange, no trailing dot */
		} mx;
		char	*name;			/* PTR, CNAME, NS: no trailing dot */
		struct {
			char	*joined;	/* all character-strings concatenated, NUL-terminated */
			int	 len;		/* bytes in joined (may contain NUL) */
			int	 nstrings;	/* how many character-strings */
		} txt;
	} u;
};

struct dns_answer {
	enum dns_status	 status;
	int		 type;
	uint32_t	 ttl;
	int		 count;
	struct dns_rr	*rr;		/* count records */
	char		 why[128];	/* for TEMPERROR: what happened */
};

struct dns_budget {
	int	 left;			/* questions this session may still ask */
	int	 asked;
};

/* Start the resolver per conf (dns.resolver, dns.timeout, dns.cache_size).
 * 0, or -1 with a log line naming the problem. */
int	 dns_init(const struct conf *);
void	 dns_shutdown(void);
void	 dns_budget_init(struct dns_budget *, const struct conf *);

/* Names, asked and answered, are text in RFC 1035 5.1 presentation form
 * without the trailing dot: '\\' starts an escape (\DDD or \X). */
/* Ask one question. budget may be NULL (no limit). Never returns NULL. */
struct dns_answer *dns_query(const char *name, int type, struct dns_budget *);
void	 dns_answer_free(struct dns_answer *);
/* The cached answer, or NULL when the cache has none (nothing is asked
 * and no budget is charged): lets callers that fan questions out to
 * threads start threads only for what the cache cannot answer. */
struct dns_answer *dns_query_cached(const char *name, int type);
/* Speculation, for a stage that runs on an I/O loop only when it need
 * not wait (policy/policy.c, pol_run_here): from dns_spec_begin() to
 * dns_spec_end(), this thread's dns_query() answers from the cache only
 * -- a question the cache cannot answer gets DNS_TEMPERROR "not in the
 * cache" at once, and dns_spec_missed() says 1 from then on -- and the
 * statistics it counts are held back: added at dns_spec_end(1) (the run
 * is kept), dropped at dns_spec_end(0) (it is undone and done again).
 * The budget is charged as usual; undoing that is the caller's.
 * dns_spec_active() tells code that fans questions out to other threads
 * to ask them here instead. */
void	 dns_spec_begin(void);
int	 dns_spec_active(void);
int	 dns_spec_missed(void);
void	 dns_spec_end(int keep);

/* Counters for /metrics and tests. */
struct dns_stats {
	unsigned long	 queries;	/* dns_query() calls */
	unsigned long	 cache_hits, cache_misses;
	unsigned long	 timeouts;	/* dns.timeout passed */
	unsigned long	 budget_refused;
	unsigned long	 cache_entries;
};
void	 dns_stats_get(struct dns_stats *);
/* Forget every cached answer (tests; a future admin command). */
void	 dns_cache_flush(void);

/* "1.2.0.192.zone" (zone NULL: in-addr.arpa / ip6.arpa) / nibble form for IPv6, for RBL and PTR names. */
int	 dns_reverse_name(const struct sockaddr *, const char *zone, char *out, size_t outsz);
const char *dns_status_name(enum dns_status);

#endif
