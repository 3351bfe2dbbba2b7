/*
 * access.h -- local allow and deny lists (client IP/CIDR, HELO name, sender
 * address or domain, recipient), kept in the database (db_access_*), and
 * the CIDR arithmetic the greylist triplet shares.
 *
 * Matching: client entries are addresses or CIDR blocks ("192.0.2.0/24",
 * "2001:db8::/32"); IPv4-mapped IPv6 clients match IPv4 entries. HELO,
 * sender and recipient entries match case-insensitively: "user@domain" the
 * address, "@domain" the domain exactly, "domain" the domain and every
 * subdomain. An allow entry beats a deny entry that also matches.
 *
 * Effect (policy/policy.c applies it): an allowlisted client or HELO skips
 * every later check of the session and is accepted; an allowlisted sender
 * the rest of the transaction; an allowlisted recipient the rest of its
 * RCPT checks (greylisting). A deny entry rejects with 554 5.7.1 at connect
 * (and closes) or 550 5.7.1 at HELO, MAIL or RCPT.
 *
 * Thread: any. Sessions read a snapshot shared by all threads; it is
 * rebuilt (a database read on the calling thread) after an admin edit.
 */
#ifndef POSTERN_ACCESS_H
#define POSTERN_ACCESS_H

#include <stddef.h>
#include <sys/socket.h>

struct pol_check;

/* Does an address or domain entry match the name? 1 or 0. */
int	 access_name_match(const char *entry, const char *name);
/* Is value a valid entry of kind ("client", "helo", "sender", "rcpt")?
 * A client entry is an address or CIDR block; a HELO entry a host name or
 * an address (literal); a sender or recipient entry "user@domain",
 * "@domain" or "domain" with a well-formed domain. 0, or -1 with the
 * reason in why. */
int	 access_valid(const char *kind, const char *value, char *why, size_t whysz);
/* What `postern access add|del` and POST/DELETE /api/access both accept:
 * list "allow" or "deny", a kind, and to add a valid value (access_valid);
 * to delete any value up to 1024 bytes, so that an entry an older version
 * let in can still be removed. 0, or -1 with the reason in why. */
int	 access_entry_valid(const char *list, const char *kind, const char *value,
	    int adding, char *why, size_t whysz);

extern const struct pol_check access_check;

#endif
