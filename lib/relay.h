/*
 * relay.h -- Postern's own relay guard: the domains (proxy.relay_domains)
 * and recipients (proxy.relay_recipients) it takes RCPT for, whatever the
 * backend would say. A backend that trusts Postern's address (Postfix's
 * mynetworks, or a backend without XCLIENT) would otherwise relay for
 * every client on the Internet.
 *
 * Matching follows Postfix's relay_domains: "example.org" is that domain
 * only, ".example.org" every subdomain of it; case does not matter. A
 * recipient entry is a whole address, or "@example.org" for every address
 * of a domain. A local part that routes further ('%', '!' or '@' in it,
 * the tricks of nmap's smtp-open-relay) never passes; the bare
 * <postmaster> always does (RFC 5321 4.5.1).
 *
 * Public calls: relay_load(), relay_free(), relay_allows().
 * Ownership: a list belongs to the struct conf it was loaded for and is
 * freed with it. Thread: a loaded list is read-only, any thread.
 * Privilege: a list file must be readable by proxy.user, since SIGHUP
 * reads it again after privileges are dropped.
 */
#ifndef POSTERN_RELAY_H
#define POSTERN_RELAY_H

#include <stddef.h>

struct relay_list;

/* What a list holds. */
enum relay_kind {
	RELAY_DOMAINS,		/* example.org, .example.org */
	RELAY_RECIPIENTS,	/* user@example.org, @example.org */
};

/*
 * Load a list from a config value: entries separated by commas or white
 * space; or, when the value starts with "file:" or holds a '/', the file
 * at that path (relative to the working directory), entries separated by
 * commas, white space or newlines, '#' starting a comment. 0 with *out
 * set (NULL for a value without entries), or -1 with the first problem in
 * why ("FILE:LINE: 'x' is not a domain; ..." for a file).
 */
int	 relay_load(const char *value, enum relay_kind, struct relay_list **out,
	    char *why, size_t whysz);
void	 relay_free(struct relay_list *);
/* May mail go to rcpt (a RCPT path, without <>)? Each list that is not
 * NULL must let it through. 1 or 0. */
int	 relay_allows(const struct relay_list *domains,
	    const struct relay_list *recipients, const char *rcpt);

#endif
