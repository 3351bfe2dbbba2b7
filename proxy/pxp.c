/*
 * pxp.c -- see pxp.h. Version 1 is one line, "PROXY TCP4 src dst sport
 * dport\r\n" (or TCP6, or UNKNOWN and anything up to the CRLF); version 2
 * is a 12-byte signature, a version/command byte, a family/protocol byte,
 * a 16-bit length, the address block and TLVs. Both are checked to the
 * letter of the spec (single spaces, no leading zeros, CRLF only, known
 * version, command, family and protocol, TLVs that add up to the length):
 * the spec asks the receiver to drop whatever does not match exactly.
 * TLVs are skipped: Postern needs none of them (no CRC32C check).
 */
#include "proxy/pxp.h"
#include "lib/lim.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#define PXP_V2_HEAD	16	/* signature, ver/cmd, fam, len */

static const unsigned char pxp_sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
};
static const char pxp_v1_start[] = "PROXY ";

/* Table of contents. */
static int	 pxp_v1(const unsigned char *, size_t, struct pxp_hdr *, const char **);
static int	 pxp_v1_line(char *, struct pxp_hdr *, const char **);
static int	 pxp_v1_addr(const char *, int family, struct sockaddr_storage *,
		    socklen_t *);
static int	 pxp_v1_ipv4(const char *, struct in_addr *);
static int	 pxp_v1_port(const char *, unsigned short *);
static int	 pxp_v2(const unsigned char *, size_t, struct pxp_hdr *, const char **);
static int	 pxp_v2_proxy(const unsigned char *, size_t, struct pxp_hdr *,
		    const char **);
static int	 pxp_v2_tlvs(const unsigned char *, size_t);
static void	 pxp_set(struct sockaddr_storage *, socklen_t *, int family,
		    const void *addr, const unsigned char port[2]);
static void	 pxp_unmap(struct sockaddr_storage *, socklen_t *);

int
pxp_parse(const void *buf, size_t n, struct pxp_hdr *h, const char **why)
{
	const unsigned char *p = buf;

	memset(h, 0, sizeof(*h));
	*why = "";
	if (n == 0)
		return 0;
	if (p[0] == pxp_sig[0])
		return pxp_v2(p, n, h, why);
	if (p[0] == (unsigned char)pxp_v1_start[0])
		return pxp_v1(p, n, h, why);
	*why = "no PROXY header";
	return -1;
}

const char *
pxp_cmd_name(enum pxp_cmd c)
{
	switch (c) {
	case PXP_LOCAL:
		return "LOCAL";
	case PXP_UNSPEC:
		return "UNKNOWN";
	case PXP_PROXY:
		return "PROXY";
	}
	return "?";
}

/* ---- version 1 --------------------------------------------------------- */

/* Find the CRLF within LIM_PXP_V1 bytes; a lone CR or LF ends nothing
 * (2.1: "must not tolerate a single CR or LF"). */
static int
pxp_v1(const unsigned char *p, size_t n, struct pxp_hdr *h, const char **why)
{
	size_t lim = n < LIM_PXP_V1 ? n : LIM_PXP_V1, i;
	char line[LIM_PXP_V1 + 1];

	h->version = 1;
	if (memcmp(p, pxp_v1_start, lim < 6 ? lim : 6) != 0) {
		*why = "v1: not \"PROXY \"";
		return -1;
	}
	for (i = 0; i < lim && p[i] != '\r' && p[i] != '\n'; i++)
		;
	if (i == lim) {
		if (n >= LIM_PXP_V1) {
			*why = "v1: no CRLF within 107 bytes";
			return -1;
		}
		return 0;
	}
	if (p[i] == '\n' || (i + 1 < n && p[i + 1] != '\n')) {
		*why = "v1: line not ended by CRLF";
		return -1;
	}
	if (i + 2 > LIM_PXP_V1) {
		*why = "v1: no CRLF within 107 bytes";
		return -1;
	}
	if (i + 1 == n)
		return 0;	/* the LF is still on its way */
	if (memchr(p, '\0', i) != NULL) {
		*why = "v1: NUL in the line";
		return -1;
	}
	memcpy(line, p, i);
	line[i] = '\0';
	if (pxp_v1_line(line + 6, h, why) == -1)
		return -1;
	return (int)(i + 2);
}

/* What follows "PROXY ": "UNKNOWN[ anything]" or "TCP4|TCP6 src dst
 * sport dport", fields separated by exactly one space. */
static int
pxp_v1_line(char *s, struct pxp_hdr *h, const char **why)
{
	char *f[5], *save = NULL;
	int nf = 0, family;

	if (strncmp(s, "UNKNOWN", 7) == 0 && (s[7] == '\0' || s[7] == ' ')) {
		h->cmd = PXP_UNSPEC;
		return 0;
	}
	if (*s == ' ' || strstr(s, "  ") != NULL || (*s != '\0' && s[strlen(s) - 1] == ' ')) {
		*why = "v1: not single spaces between the fields";
		return -1;
	}
	for (char *t = strtok_r(s, " ", &save); t != NULL; t = strtok_r(NULL, " ", &save)) {
		if (nf == 5) {
			*why = "v1: too many fields";
			return -1;
		}
		f[nf++] = t;
	}
	if (nf > 0 && strcmp(f[0], "TCP4") == 0)
		family = AF_INET;
	else if (nf > 0 && strcmp(f[0], "TCP6") == 0)
		family = AF_INET6;
	else {
		*why = "v1: protocol not TCP4, TCP6 or UNKNOWN";
		return -1;
	}
	if (nf < 5) {
		*why = "v1: too few fields";
		return -1;
	}
	if (pxp_v1_addr(f[1], family, &h->src, &h->srclen) == -1 ||
	    pxp_v1_addr(f[2], family, &h->dst, &h->dstlen) == -1) {
		*why = "v1: bad address";
		return -1;
	}
	unsigned short *sp = family == AF_INET ? &((struct sockaddr_in *)&h->src)->sin_port :
	    &((struct sockaddr_in6 *)&h->src)->sin6_port;
	unsigned short *dp = family == AF_INET ? &((struct sockaddr_in *)&h->dst)->sin_port :
	    &((struct sockaddr_in6 *)&h->dst)->sin6_port;
	if (pxp_v1_port(f[3], sp) == -1 || pxp_v1_port(f[4], dp) == -1) {
		*why = "v1: bad port";
		return -1;
	}
	h->cmd = PXP_PROXY;
	pxp_unmap(&h->src, &h->srclen);
	pxp_unmap(&h->dst, &h->dstlen);
	return 0;
}

/* An address of the announced family into ss (port 0 for now). */
static int
pxp_v1_addr(const char *s, int family, struct sockaddr_storage *ss, socklen_t *len)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;
		if (pxp_v1_ipv4(s, &a->sin_addr) == -1)
			return -1;
		a->sin_family = AF_INET;
		*len = sizeof(*a);
		return 0;
	}
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
	/* hex groups, "::" once, a dotted tail for mapped addresses: what
	 * inet_ntop() writes, which is what balancers send */
	if (strspn(s, "0123456789abcdefABCDEF:.") != strlen(s) ||
	    inet_pton(AF_INET6, s, &a6->sin6_addr) != 1)
		return -1;
	a6->sin6_family = AF_INET6;
	*len = sizeof(*a6);
	return 0;
}

/* Exactly four decimal numbers 0..255 without leading zeros (2.1: they
 * could be read as octal), separated by single dots. */
static int
pxp_v1_ipv4(const char *s, struct in_addr *out)
{
	unsigned char b[4];

	for (int i = 0; i < 4; i++) {
		unsigned v = 0;
		int digits = 0;
		for (; *s >= '0' && *s <= '9'; s++, digits++) {
			if (digits == 3 || (digits == 1 && v == 0))
				return -1;
			v = v * 10 + (unsigned)(*s - '0');
		}
		if (digits == 0 || v > 255 || *s != (i == 3 ? '\0' : '.'))
			return -1;
		b[i] = (unsigned char)v;
		s++;
	}
	memcpy(out, b, 4);
	return 0;
}

/* 0..65535, decimal, no leading zero; stored in network order. */
static int
pxp_v1_port(const char *s, unsigned short *out)
{
	unsigned long v = 0;
	size_t n = strlen(s);

	if (n == 0 || n > 5 || strspn(s, "0123456789") != n || (s[0] == '0' && n > 1))
		return -1;
	for (size_t i = 0; i < n; i++)
		v = v * 10 + (unsigned long)(s[i] - '0');
	if (v > 65535)
		return -1;
	*out = htons((unsigned short)v);
	return 0;
}

/* ---- version 2 --------------------------------------------------------- */

static int
pxp_v2(const unsigned char *p, size_t n, struct pxp_hdr *h, const char **why)
{
	size_t len;

	h->version = 2;
	if (memcmp(p, pxp_sig, n < sizeof(pxp_sig) ? n : sizeof(pxp_sig)) != 0) {
		*why = "v2: bad signature";
		return -1;
	}
	if (n > 12 && (p[12] >> 4) != 2) {
		*why = "v2: version not 2";
		return -1;
	}
	if (n > 12 && (p[12] & 0x0f) > 1) {
		*why = "v2: command neither LOCAL nor PROXY";
		return -1;
	}
	if (n > 13 && ((p[13] >> 4) > 3 || (p[13] & 0x0f) > 2)) {
		*why = "v2: unknown address family or protocol";
		return -1;
	}
	if (n < PXP_V2_HEAD)
		return 0;
	len = (size_t)p[14] << 8 | p[15];
	if (len > LIM_PXP_V2) {
		*why = "v2: header longer than we take";
		return -1;
	}
	if (n < PXP_V2_HEAD + len)
		return 0;
	/* 2.2: LOCAL ignores the family and whatever the block holds */
	h->cmd = PXP_LOCAL;
	if ((p[12] & 0x0f) == 1 && pxp_v2_proxy(p, len, h, why) == -1)
		return -1;
	return (int)(PXP_V2_HEAD + len);
}

/* A PROXY command whose block (len bytes after the 16) is all here. */
static int
pxp_v2_proxy(const unsigned char *p, size_t len, struct pxp_hdr *h, const char **why)
{
	/* address block per family: none, IPv4, IPv6, AF_UNIX */
	static const size_t blk[4] = { 0, 12, 36, 216 };
	int fam = p[13] >> 4, proto = p[13] & 0x0f;
	const unsigned char *a = p + PXP_V2_HEAD;

	h->cmd = PXP_UNSPEC;
	if (fam == 0 || proto == 0)
		return 0;	/* 2.2: the receiver should ignore the addresses */
	if (len < blk[fam]) {
		*why = "v2: length shorter than the addresses";
		return -1;
	}
	if (pxp_v2_tlvs(a + blk[fam], len - blk[fam]) == -1) {
		*why = "v2: TLVs do not add up to the length";
		return -1;
	}
	if (proto != 1 || fam == 3)
		return 0;	/* UDP, AF_UNIX: fall back to UNSPEC (2.2) */
	h->cmd = PXP_PROXY;
	if (fam == 1) {
		pxp_set(&h->src, &h->srclen, AF_INET, a, a + 8);
		pxp_set(&h->dst, &h->dstlen, AF_INET, a + 4, a + 10);
	} else {
		pxp_set(&h->src, &h->srclen, AF_INET6, a, a + 32);
		pxp_set(&h->dst, &h->dstlen, AF_INET6, a + 16, a + 34);
		pxp_unmap(&h->src, &h->srclen);
		pxp_unmap(&h->dst, &h->dstlen);
	}
	return 0;
}

/* Type, 16-bit length, value; again and again to exactly the end. */
static int
pxp_v2_tlvs(const unsigned char *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		if (n - i < 3)
			return -1;
		size_t l = (size_t)p[i + 1] << 8 | p[i + 2];
		if (l > n - i - 3)
			return -1;
		i += 3 + l;
	}
	return 0;
}

/* A socket address from network-order bytes. */
static void
pxp_set(struct sockaddr_storage *ss, socklen_t *len, int family, const void *addr,
    const unsigned char port[2])
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;
		a->sin_family = AF_INET;
		memcpy(&a->sin_addr, addr, 4);
		memcpy(&a->sin_port, port, 2);
		*len = sizeof(*a);
	} else {
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
		a6->sin6_family = AF_INET6;
		memcpy(&a6->sin6_addr, addr, 16);
		memcpy(&a6->sin6_port, port, 2);
		*len = sizeof(*a6);
	}
}

/* ::ffff:192.0.2.7 -> 192.0.2.7, port kept; anything else unchanged. */
static void
pxp_unmap(struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in6 a6;

	if (ss->ss_family != AF_INET6)
		return;
	memcpy(&a6, ss, sizeof(a6));
	if (!IN6_IS_ADDR_V4MAPPED(&a6.sin6_addr))
		return;
	pxp_set(ss, len, AF_INET, a6.sin6_addr.s6_addr + 12,
	    (const unsigned char *)&a6.sin6_port);
}
