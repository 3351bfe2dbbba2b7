/*
 * sockaddr.c -- see sockaddr.h.
 */
#include "lib/sockaddr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int	 sockaddr_name(const char *host, int port, struct sockaddr_storage *,
		    socklen_t *);

int
sockaddr_split(const char *s, char *host, size_t hostsz, int *port)
{
	const char *colon, *h = s;
	size_t hl;
	char *end;
	long p;

	if (*s == '[') {
		const char *rb = strchr(s, ']');
		if (rb == NULL || rb[1] != ':')
			return -1;
		h = s + 1;
		hl = (size_t)(rb - h);
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return -1;
		hl = (size_t)(colon - s);
		if (memchr(s, ':', hl) != NULL)
			return -1;	/* bare IPv6 needs brackets */
	}
	if (hl == 0 || hl >= hostsz)
		return -1;
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (errno || *end != '\0' || end == colon + 1 || p < 0 || p > 65535)
		return -1;
	memcpy(host, h, hl);
	host[hl] = '\0';
	*port = (int)p;
	return 0;
}

int
sockaddr_ip(const char *ip, int port, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_storage a = { 0 };
	struct sockaddr_in *a4 = (struct sockaddr_in *)&a;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&a;
	socklen_t l;

	if (inet_pton(AF_INET, ip, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)port);
		l = sizeof(*a4);
	} else if (inet_pton(AF_INET6, ip, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
		l = sizeof(*a6);
	} else
		return -1;
	*ss = a;
	if (len != NULL)
		*len = l;
	return 0;
}

/* The first address getaddrinfo() gives for a name. */
static int
sockaddr_name(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
	char portstr[16];

	snprintf(portstr, sizeof(portstr), "%d", port);
	if (getaddrinfo(host, portstr, &hints, &res) != 0)
		return -1;
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

int
sockaddr_parse(const char *hp, int flags, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[256];
	int port;

	if (sockaddr_split(hp, host, sizeof(host), &port) == -1)
		return -1;
	if (sockaddr_ip(host, port, ss, len) == 0)
		return 0;
	if (!(flags & SOCKADDR_NAMES))
		return -1;
	return sockaddr_name(host, port, ss, len);
}
