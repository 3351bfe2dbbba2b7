/*
 * pxp.h -- the PROXY protocol header that a TCP load balancer (HAProxy's
 * send-proxy / send-proxy-v2) puts before the client's first byte: who the
 * client is and where it connected, versions 1 (one text line) and 2
 * (binary), as HAProxy's proxy-protocol.txt (2020/03/05) specifies them.
 *
 * Public calls: pxp_parse(), pxp_cmd_name().
 * Ownership: results live in the caller's struct pxp_hdr; nothing kept.
 * Thread: no shared state. Exposure: the bytes are hostile until proved
 * otherwise; a header is read only from the balancers in proxy.proxy_from
 * (the caller checks), and never more than LIM_PXP_V1 / 16 + LIM_PXP_V2
 * bytes of it are looked at.
 */
#ifndef POSTERN_PXP_H
#define POSTERN_PXP_H

#include <stddef.h>
#include <sys/socket.h>

enum pxp_cmd {
	PXP_LOCAL,	/* v2 LOCAL: the balancer's own connection (a health
			   check); the real endpoints stand */
	PXP_UNSPEC,	/* v1 UNKNOWN, or v2 PROXY for a family or protocol
			   we do not carry (UNSPEC, UDP, AF_UNIX): the spec
			   says use the real endpoints, as for LOCAL */
	PXP_PROXY,	/* src and dst are the client's TCP connection */
};

struct pxp_hdr {
	int		 version;	/* 1 or 2 */
	enum pxp_cmd	 cmd;
	/* PXP_PROXY only: AF_INET or AF_INET6, ports set; an IPv4-mapped
	 * IPv6 address (a dual-stack balancer's IPv4 client) comes back as
	 * the IPv4 address it carries, as every check and XCLIENT want it */
	struct sockaddr_storage src, dst;
	socklen_t	 srclen, dstlen;
};

/*
 * Read the header at the start of the n bytes at p (what the connection
 * has brought so far). Returns the header's length (> 0: drop that many
 * bytes, the rest is the client's), 0 when it is not complete yet but may
 * still be valid, -1 when it is not a valid header (*why: a short reason
 * for the log, static text). Decides as early as the bytes allow: a first
 * byte that starts neither version is -1 at once.
 */
int		 pxp_parse(const void *p, size_t n, struct pxp_hdr *, const char **why);
/* "LOCAL", "UNKNOWN", "PROXY" for logs. */
const char	*pxp_cmd_name(enum pxp_cmd);

#endif
