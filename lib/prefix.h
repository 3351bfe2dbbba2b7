/*
 * prefix.h -- IP addresses and CIDR blocks: parse "192.0.2.0/24" or
 * "2001:db8::/48", test whether a socket address falls inside, and name a
 * client's network. An IPv4-mapped IPv6 address counts as the IPv4
 * address it carries, everywhere.
 * Public calls: prefix_parse(), prefix_match(), prefix_list_match(),
 * prefix_eq(), prefix_net(), prefix_addr(). The one matcher of addresses
 * against blocks: access lists, web.trusted_proxies, proxy.proxy_from and
 * SPF's ip4/ip6/a/mx all use it.
 * Ownership: results live in the caller's memory. Thread: no shared state.
 */
#ifndef POSTERN_PREFIX_H
#define POSTERN_PREFIX_H

#include <stddef.h>
#include <sys/socket.h>

struct prefix {
	int		 family;	/* AF_INET or AF_INET6 */
	unsigned char	 addr[16];	/* network byte order, host bits zero */
	int		 prefix;
};

/* "192.0.2.1", "192.0.2.0/24", "2001:db8::/48". 0 or -1. */
int	 prefix_parse(const char *, struct prefix *);
/* Does the address fall inside the block? 1 or 0. */
int	 prefix_match(const struct prefix *, const struct sockaddr *);
/* Does the address fall inside a block of a comma- or space-separated
 * list ("10.0.0.5, 192.0.2.0/24")? Entries that do not parse match
 * nothing (configtest refuses them). 1 or 0. */
int	 prefix_list_match(const char *list, const struct sockaddr *);
/* Do the first bits bits of the address bytes a and net agree (network
 * byte order, same family; bits within it)? 1 or 0. */
int	 prefix_eq(const unsigned char *a, const unsigned char *net, int bits);
/* The client's network as text for the greylist triplet ("192.0.2.0/24",
 * "2001:db8:1:2::/64"). 0 or -1. */
int	 prefix_net(const struct sockaddr *, int v4prefix, int v6prefix,
	    char *out, size_t outsz);
/* The address bytes and family, IPv4-mapped IPv6 unwrapped. 0 or -1. */
int	 prefix_addr(const struct sockaddr *, int *family, unsigned char out[16]);

#endif
