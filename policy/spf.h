/*
 * spf.h -- SPF (RFC 7208): check_host() on Postern's resolver, and the
 * policy check "spf" (HELO and MAIL FROM identities).
 *
 * Public calls: spf_check_host() evaluates one identity; spf_result_name()
 * names a result; spf_session_get() gives `postern check` the SPF result
 * of the current transaction and the domain it is about. The checks after
 * spf (DMARC alignment, RFC 7489 4.2; greylisting's skip_spf_pass) read
 * the same, typed, in the session: struct spf_found in pol_found.spf.
 *
 * Every DNS question goes through dns_query() with the session's budget.
 * Ownership: a struct spf_outcome owns its explanation (spf_outcome_clear).
 * Thread: spf_check_host() is reentrant; one call per thread at a time per
 * budget. No privilege needed.
 */
#ifndef POSTERN_SPF_H
#define POSTERN_SPF_H

#include <sys/socket.h>
#include <time.h>

struct dns_budget;
struct pol_session;

/* A domain name as text (RFC 1035 2.3.4), with room to spare. */
#define SPF_DOMAIN_MAX	256

enum spf_result {
	SPF_R_NONE = 0,
	SPF_R_NEUTRAL,
	SPF_R_PASS,
	SPF_R_FAIL,
	SPF_R_SOFTFAIL,
	SPF_R_TEMPERROR,
	SPF_R_PERMERROR,
};

/* The inputs of check_host() (RFC 7208 4.1) and of its macros (7.3). */
struct spf_query {
	const struct sockaddr *ip;	/* AF_INET or AF_INET6 (v4-mapped ok) */
	const char	*sender;	/* "local@domain", or the HELO name for <> */
	const char	*helo;		/* for %{h}; may be NULL */
	const char	*domain;	/* the domain to check (after @, or HELO) */
	const char	*receiver;	/* for %{r} in explanations; may be NULL */
	time_t		 now;		/* for %{t}; 0 = time_wall() */
	struct dns_budget *budget;	/* may be NULL */
};

struct spf_outcome {
	enum spf_result	 result;
	char		 domain[SPF_DOMAIN_MAX];	/* the identity's domain, as checked */
	char		 reason[256];	/* why, for logs and `postern check` */
	char		*explanation;	/* fail only: exp= text or NULL */
	int		 dns_terms;	/* DNS-querying terms evaluated (4.6.4) */
	int		 void_lookups;
};

/* Which identity a transaction's SPF result is about: MAIL FROM, or the
 * HELO name standing in for the null sender (RFC 7208 2.4). */
enum spf_identity { SPF_ID_MAILFROM = 0, SPF_ID_HELO };

/* The transaction's SPF result as later checks read it. */
struct spf_found {
	int		 ran;		/* 0 until the check ran at MAIL */
	enum spf_result	 result;
	enum spf_identity identity;
	char		 domain[SPF_DOMAIN_MAX];	/* the identity's domain, as checked */
};

void	 spf_check_host(const struct spf_query *, struct spf_outcome *);
void	 spf_outcome_clear(struct spf_outcome *);
const char *spf_result_name(enum spf_result);

/* For DMARC: the SPF result of this transaction's MAIL FROM (or of HELO
 * for the null sender) and the domain it is about; identity is "mailfrom"
 * or "helo". -1 when SPF did not run for this transaction. */
int	 spf_session_get(const struct pol_session *, enum spf_result *,
	    const char **domain, const char **identity);

/* The whole outcome of this transaction's check, for `postern check`;
 * NULL when SPF did not run. */
const struct spf_outcome *spf_session_outcome(const struct pol_session *);

#endif
