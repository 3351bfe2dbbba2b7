/*
 * rdns.h -- the client's verified name (forward-confirmed reverse DNS).
 *
 * At CONNECT, before the other checks: PTR of the client address, then A or
 * AAAA of each name (at most RDNS_MAX_NAMES); the first name that points
 * back at the client becomes the session's client name, as Postfix's smtpd
 * "verified" name. Otherwise the name stays "unknown". Results: rdns=pass
 * (verified), none (no PTR), fail (PTR does not point back), temperror.
 * The name feeds the client_name rule target, the verdict log and XCLIENT
 * NAME= at the backend. No score of its own: rules decide what an unknown
 * name is worth.
 * Thread: runs on a policy worker; blocking DNS through dns/.
 */
#ifndef POSTERN_RDNS_H
#define POSTERN_RDNS_H

#define RDNS_MAX_NAMES	10	/* PTR names tried, as RFC 7208 5.5 bounds ptr */

struct pol_check;
extern const struct pol_check rdns_check;

#endif
