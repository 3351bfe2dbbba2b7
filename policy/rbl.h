/*
 * rbl.h -- DNS block and allow lists (RFC 5782): the client address at
 * connect (rbl.zones, IPv4 dotted and IPv6 nibble names) and, from
 * rbl.rhsbl_zones, the HELO name at HELO and the sender domain at MAIL.
 *
 * Site syntax, as Postfix postscreen's dnsbl_sites, comma or space
 * separated:
 *	zone			any 127.0.0.0/8 answer, weight 1
 *	zone*3			weight 3 (negative: an allow list)
 *	zone=127.0.0.2		only that answer
 *	zone=127.0.0.[2..11]*3	an octet may be N, [N..M] or [A;B;C..D]
 * The weight of every site whose filter matches an answer is added to the
 * score once (results "rbl"/"rhsbl" listed, or "dnswl" for negative
 * weights). A list that times out counts as not listed and says so in the
 * log; answers in 127.255.255.0/24 are the list's own errors (RFC 5782
 * 2.3 reserves 127.0.0.0/8 for answers; lists such as Spamhaus report
 * refused queries in 127.255.255.0/24) and are ignored with a warning.
 *
 * All lists of a stage are asked in parallel, one short-lived thread per
 * extra list not in the DNS cache (dns_query() blocks and is thread-safe).
 * Thread: a worker, on its own session; or the session's I/O loop in a
 * speculative run (policy/policy.c, pol_run_here: the cache answers, or
 * the stage goes to a worker). The lists' health counters
 * (policy/rblhealth.h) count a stage once it is kept (rbl_check.commit).
 */
#ifndef POSTERN_RBL_H
#define POSTERN_RBL_H

#include <netinet/in.h>
#include <stddef.h>
#include <sys/socket.h>

struct conf;
struct pol_check;

#define RBL_MAX_SITES	32	/* per setting */
#define RBL_ZONE_MAX	253	/* RFC 1035 2.3.4 (text form) */

struct rbl_site {
	char		 zone[RBL_ZONE_MAX + 1];
	int		 filtered;	/* 0 = any 127/8 answer */
	unsigned char	 octet[4][32];	/* a bit per allowed value */
	double		 weight;
};

/* Parse a zones setting into at most max sites. Returns the count, or -1
 * with the reason (naming the bad site) in why. */
int	 rbl_parse(const char *spec, struct rbl_site *, int max, char *why, size_t whysz);
/* Does an answer address match the site's filter? 1 or 0. */
int	 rbl_match(const struct rbl_site *, struct in_addr);
/* The query name for a client address under zone: "4.3.2.1.zone" or the
 * 32 reversed nibbles for IPv6 (IPv4-mapped IPv6 as IPv4). 0 or -1. */
int	 rbl_name(const struct sockaddr *, const char *zone, char *out, size_t outsz);

/* Check rbl.zones and rbl.rhsbl_zones of a config, each line of a list
 * apart: every problem ("rbl.zones: bad DNS list ...") goes to report
 * with its line (0 when unknown). Returns the number of problems. */
int	 rbl_conf_check(const struct conf *,
	    void (*report)(void *arg, int line, const char *msg), void *arg);

extern const struct pol_check rbl_check;

#endif
