/*
 * dkim.h -- the "dkim" check: verify every DKIM-Signature (RFC 6376) of a
 * message at POL_DATA with libopendkim, one result per signature.
 *
 * Each signature becomes pol_result_add(ps, "dkim", RESULT, score,
 * "header.d=D header.i=I header.s=S header.a=A header.b=B", reason) with
 * RESULT one of RFC 8601's pass, fail, neutral, policy, temperror,
 * permerror; a message without signatures gets one "none". The score goes
 * on once: dkim.pass_score when any signature passes, else dkim.fail_score
 * when some signature failed for good (a temperror adds nothing: the check
 * could not decide, DMARC and policy.temperror_tempfail take it from there).
 *
 * Every key lookup goes through dns_query() with the session's budget: the
 * library's key-lookup hook is ours, and its own resolver hooks are set to
 * refuse, so nothing can bypass dns/.
 *
 * Each signature's result, d= and s= are also kept typed in the session
 * (struct dkim_found in pol_found.dkim[]) for the checks after this one:
 * DMARC aligns on them, greylisting's skip_dkim_pass reads them.
 *
 * Public: dkim_check (for policy.c's table), dkim_sigerror_result().
 * Thread: any worker, or the session's I/O loop in a speculative run
 * (policy/policy.c, pol_run_here: every key from the DNS cache, or the
 * stage goes to a worker) when dkim_check.blocks lets the message
 * through; the library handle is shared read-only after a
 * pthread_once() setup, each verification has its own context.
 * Privilege: none (no files; DNS only through dns/).
 */
#ifndef POSTERN_DKIM_H
#define POSTERN_DKIM_H

#include "policy/authres.h"

struct pol_check;

/* Signatures evaluated per message; the rest are ignored and logged. Each
 * costs a DNS question and an RSA operation (RFC 6376 8.4: bound the work
 * an attacker can cause). */
#define DKIM_MAX_SIGS		8
/* Verified on the proxy's I/O loop instead of a worker when every key
 * is in the DNS cache, and the work is small: at most this many
 * signatures, in a message of at most this many bytes (body hashing and
 * one public-key operation each, a few hundred microseconds at most). */
#define DKIM_INLINE_SIGS	3
#define DKIM_INLINE_MAX		(64 * 1024)
/* RFC 8301 3.2: verifiers must not accept RSA keys under 1024 bits. */
#define DKIM_MIN_RSA_BITS	1024
/* A domain name as text (RFC 1035 2.3.4: 253), plus the NUL. */
#define DKIM_DOMAIN_MAX		254

/* One signature's outcome as later checks read it. */
struct dkim_found {
	enum authres_result result;
	char	 domain[DKIM_DOMAIN_MAX];	/* d= as signed; "" when longer */
	char	 selector[DKIM_DOMAIN_MAX];	/* s=, likewise */
};

extern const struct pol_check dkim_check;

/* RFC 8601 result of a libopendkim DKIM_SIGERROR_* code of a signature
 * that did not pass (fail, neutral, policy, permerror, temperror). */
enum authres_result dkim_sigerror_result(int sigerror);

#endif
