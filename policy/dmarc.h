/*
 * dmarc.h -- the "dmarc" check (RFC 7489) at POL_DATA, after spf and dkim.
 *
 * Finds the RFC5322.From domain, discovers its policy (_dmarc.DOMAIN, then
 * _dmarc.ORGDOMAIN from the Public Suffix List via libpsl), checks SPF and
 * DKIM alignment (relaxed or strict, aspf/adkim) on the typed findings the
 * spf and dkim checks left (ps->found.spf, ps->found.dkim[]), and reports
 * one result (typed in ps->found.dmarc, and as text):
 *   pol_result_add(ps, "dmarc", pass|fail|none|temperror|permerror, score,
 *       "(p=reject dis=none) header.from=example.org", reason)
 * On fail it hands the domain's policy to the engine: p=reject with
 * dmarc.reject_action=follow is a 550 5.7.1 hard reject, p=quarantine with
 * dmarc.quarantine_action=follow a quarantine (250); "score" adds
 * dmarc.fail_score instead; "ignore" does nothing. pct< 100 samples as
 * RFC 7489 6.6.4 says (the unsampled get the next milder policy).
 * A temperror (DNS, or an SPF/DKIM temperror that could have aligned)
 * answers 451 4.4.3 when policy.temperror_tempfail is set.
 *
 * RFC 7489 6.6.1 choices (docs/dkim-dmarc.md): no From field, several From
 * fields, or one From naming several domains -> dmarc=permerror and
 * dmarc.fail_score (no domain asked for a rejection, so no hard verdict);
 * several addresses of one domain are evaluated as that domain.
 *
 * We do not use libopendmarc (wrong strict alignment, public-suffix
 * alignment, first-TXT-only discovery).
 *
 * Public: dmarc_check, and the pure helpers below (unit tested).
 * Thread: any worker; the PSL is loaded once (pthread_once), then read-only.
 * Privilege: reads the Public Suffix List that libpsl finds; DNS via dns/.
 */
#ifndef POSTERN_DMARC_H
#define POSTERN_DMARC_H

#include "policy/policy_int.h"

#include <stddef.h>

/* A domain name, RFC 1035 2.3.4 (253 characters in text form), plus NUL. */
#define DMARC_DOMAIN_MAX	254
/* From fields we look at before calling the message malformed. */
#define DMARC_FROM_MAX_ADDRS	32
/* A DMARC record we bother parsing: records are small, TXT may join many
 * strings (RFC 7489 6.3 sets no limit; DNS does, at 64 KB). */
#define DMARC_RECORD_MAX	4096

enum dmarc_policy { DMARC_P_NONE = 0, DMARC_P_QUARANTINE, DMARC_P_REJECT,
	DMARC_P_UNSET = -1 };

struct dmarc_record {
	int	 p;		/* enum dmarc_policy */
	int	 sp;		/* DMARC_P_UNSET when absent */
	int	 adkim_strict, aspf_strict;
	int	 pct;		/* 0..100 */
};

enum dmarc_rec_status {
	DMARC_REC_OK = 0,
	DMARC_REC_NOT_DMARC,	/* does not start with v=DMARC1: ignore it */
	DMARC_REC_INVALID,	/* v=DMARC1 but no usable p= and no rua */
};

enum dmarc_from_status {
	DMARC_FROM_OK = 0,
	DMARC_FROM_MISSING,	/* no From field, or no address in it */
	DMARC_FROM_SEVERAL_FIELDS,
	DMARC_FROM_SEVERAL_DOMAINS,
	DMARC_FROM_BAD,		/* an address without a usable domain */
};

extern const struct pol_check dmarc_check;

/* Parse one TXT record (RFC 7489 6.3, 6.6.3 step 6). */
enum dmarc_rec_status dmarc_record_parse(const char *txt, size_t len,
		    struct dmarc_record *);
/* The RFC5322.From domain of a message, lower-cased, into dom. */
enum dmarc_from_status dmarc_from_domain(const char *msg, size_t len,
		    char *dom, size_t domsz);
/* Organizational domain (RFC 7489 3.2) of a lower-case domain, into out;
 * a public suffix is its own. 0, or -1 when the name is not a domain. */
int	 dmarc_org_domain(const char *domain, char *out, size_t outsz);
/* Identifier alignment (RFC 7489 3.1): equal when strict, same
 * organizational domain when relaxed. Case-insensitive. */
int	 dmarc_aligned(const char *from_domain, const char *auth_domain, int strict);
const char *dmarc_policy_name(int);

#endif
