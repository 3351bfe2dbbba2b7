/*
 * authres.h -- Authentication-Results hygiene (RFC 8601 section 5).
 *
 * A sender must not be able to forge our verdict: before the proxy relays
 * accepted mail (and before a quarantine release), every Authentication-
 * Results field whose authserv-id is our own proxy.hostname, and every
 * field under a name only Postern writes (X-Spam-*, X-Postern-*), is left
 * out (byte ranges for pol_decision.skip); policy.c prepends the headers we
 * wrote. Authentication-Results of other authserv-ids stay: they are
 * someone else's claims, and downstream knows whom it trusts.
 *
 * It also names RFC 8601's result words (enum authres_result): the DKIM
 * and DMARC checks keep their outcomes typed, and the text is made once,
 * for the header and the logs.
 *
 * Public calls: authres_servid(), authres_skips(), authres_value(),
 * authres_result_name().
 * Ownership: authres_skips() hands back an xmalloc'd array.
 * Thread: no state, any thread. Privilege: none.
 */
#ifndef POSTERN_AUTHRES_H
#define POSTERN_AUTHRES_H

#include <stddef.h>

struct pol_skip;

/* RFC 8601 2.7.1 and 2.7.2: a DKIM signature's or DMARC's result. (SPF
 * has its own, with softfail: enum spf_result in spf.h.) */
enum authres_result {
	AUTHRES_NONE = 0,
	AUTHRES_PASS,
	AUTHRES_FAIL,
	AUTHRES_POLICY,
	AUTHRES_NEUTRAL,
	AUTHRES_TEMPERROR,
	AUTHRES_PERMERROR,
};

/* Longest authserv-id we compare: a domain name, RFC 1035 2.3.4. */
#define AUTHRES_SERVID_MAX	255

/* The authserv-id of an Authentication-Results value (after the colon;
 * folded or not): comments and whitespace skipped, a quoted-string
 * unquoted, one trailing dot dropped. 0, or -1 when there is none or it is
 * longer than AUTHRES_SERVID_MAX. */
int	 authres_servid(const char *value, size_t len, char *out, size_t outsz);

/* Skip ranges of the header fields of msg that only we may write: those
 * claiming to come from `hostname` (case-insensitive), and X-Spam-* and
 * X-Postern-* whatever the hostname. Sorted; returns how many; *out is
 * NULL for 0. */
int	 authres_skips(const char *msg, size_t len, const char *hostname,
	    struct pol_skip **out);

/* Make attacker-written text safe as an RFC 8601 property value: keep
 * printable ASCII that needs no quoting, cut at outsz-1. Returns out. */
char	*authres_value(const char *in, char *out, size_t outsz);

/* "none", "pass", "fail", "policy", "neutral", "temperror", "permerror". */
const char *authres_result_name(enum authres_result);

#endif
