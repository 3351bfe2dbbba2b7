/*
 * prefix.c -- see prefix.h.
 */
#include "lib/prefix.h"
#include "lib/util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void	 prefix_mask(unsigned char *, int bytes, int prefix);

/* The address bytes, IPv4-mapped IPv6 unwrapped. 0 or -1. */
int
prefix_addr(const struct sockaddr *sa, int *family, unsigned char out[16])
{
	if (sa->sa_family == AF_INET) {
		*family = AF_INET;
		memcpy(out, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		return 0;
	}
	if (sa->sa_family != AF_INET6)
		return -1;
	const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
	if (IN6_IS_ADDR_V4MAPPED(a6)) {
		*family = AF_INET;
		memcpy(out, a6->s6_addr + 12, 4);
	} else {
		*family = AF_INET6;
		memcpy(out, a6->s6_addr, 16);
	}
	return 0;
}

/* Zero the host bits past prefix. */
static void
prefix_mask(unsigned char *a, int bytes, int prefix)
{
	for (int i = 0; i < bytes; i++) {
		int bits = prefix - i * 8;
		if (bits >= 8)
			continue;
		a[i] &= bits <= 0 ? 0 : (unsigned char)(0xff << (8 - bits));
	}
}

int
prefix_parse(const char *s, struct prefix *c)
{
	char buf[64], *slash, *end;
	long p;

	if (strlen(s) >= sizeof(buf))
		return -1;
	snprintf(buf, sizeof(buf), "%s", s);
	memset(c, 0, sizeof(*c));
	if ((slash = strchr(buf, '/')) != NULL)
		*slash++ = '\0';
	if (inet_pton(AF_INET, buf, c->addr) == 1)
		c->family = AF_INET;
	else if (inet_pton(AF_INET6, buf, c->addr) == 1)
		c->family = AF_INET6;
	else
		return -1;
	c->prefix = c->family == AF_INET ? 32 : 128;
	if (slash) {
		p = strtol(slash, &end, 10);
		if (*slash == '\0' || *end != '\0' || p < 0 || p > c->prefix)
			return -1;
		c->prefix = (int)p;
	}
	prefix_mask(c->addr, c->family == AF_INET ? 4 : 16, c->prefix);
	return 0;
}

int
prefix_match(const struct prefix *c, const struct sockaddr *sa)
{
	unsigned char a[16];
	int fam;

	if (prefix_addr(sa, &fam, a) == -1 || fam != c->family)
		return 0;
	return prefix_eq(a, c->addr, c->prefix);
}

int
prefix_eq(const unsigned char *a, const unsigned char *net, int bits)
{
	int full = bits / 8, rest = bits % 8;

	if (memcmp(a, net, (size_t)full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	unsigned char mask = (unsigned char)(0xff << (8 - rest));
	return (a[full] & mask) == (net[full] & mask);
}

int
prefix_list_match(const char *list, const struct sockaddr *sa)
{
	struct prefix cidr;
	char *copy, *save = NULL;
	int hit = 0;

	if (list == NULL || *list == '\0')
		return 0;
	copy = xstrdup(list);
	for (char *t = strtok_r(copy, ", \t", &save); t != NULL && !hit;
	    t = strtok_r(NULL, ", \t", &save))
		hit = prefix_parse(t, &cidr) == 0 && prefix_match(&cidr, sa);
	free(copy);
	return hit;
}

int
prefix_net(const struct sockaddr *sa, int v4prefix, int v6prefix, char *out,
    size_t outsz)
{
	unsigned char a[16];
	char txt[INET6_ADDRSTRLEN];
	int fam, prefix;

	if (prefix_addr(sa, &fam, a) == -1)
		return -1;
	prefix = fam == AF_INET ? v4prefix : v6prefix;
	prefix_mask(a, fam == AF_INET ? 4 : 16, prefix);
	if (inet_ntop(fam, a, txt, sizeof(txt)) == NULL)
		return -1;
	return snprintf(out, outsz, "%s/%d", txt, prefix) < (int)outsz ? 0 : -1;
}

