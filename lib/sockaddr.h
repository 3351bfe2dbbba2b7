/*
 * sockaddr.h -- "host:port" text into socket addresses: the one parser of
 * proxy.listen, proxy.backend, web.listen and dns.resolver, and of bare IP
 * literals (an X-Forwarded-For hop, `postern check --ip`).
 *
 * Syntax: "192.0.2.1:25", "[2001:db8::1]:25", "name:25"; a bare IPv6
 * address needs its brackets (its colons would eat the port).
 * Public calls: sockaddr_split(), sockaddr_parse(), sockaddr_ip().
 * Ownership: results live in the caller's memory. Thread: no shared state.
 * Exposure: sockaddr_ip() reads attacker-written header text (XFF).
 */
#ifndef POSTERN_SOCKADDR_H
#define POSTERN_SOCKADDR_H

#include <stddef.h>
#include <sys/socket.h>

/* Split "host:port" or "[v6]:port" into host (no brackets) and a port in
 * 0..65535; 0 or -1. Syntax only: the host is not looked at. */
int	 sockaddr_split(const char *, char *host, size_t hostsz, int *port);

/* Names allowed: a host that is no IP literal goes through getaddrinfo(),
 * which may block (proxy.backend; deployments give an address). */
#define SOCKADDR_NAMES	0x1

/* "host:port" into *ss and *len; 0 or -1. Without SOCKADDR_NAMES only IP
 * literals pass (listeners bind to addresses, never to names). */
int	 sockaddr_parse(const char *hostport, int flags, struct sockaddr_storage *ss,
	    socklen_t *len);
/* An IP literal ("192.0.2.1", "2001:db8::1"; no brackets) and a port into *ss and *len (len may be NULL); 0 or -1, ss untouched on -1. */
int	 sockaddr_ip(const char *ip, int port, struct sockaddr_storage *ss,
	    socklen_t *len);

#endif
