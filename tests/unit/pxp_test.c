/* pxp_test.c -- the PROXY protocol header (proxy/pxp.h): v1 TCP4, TCP6
 * and UNKNOWN lines, v2 PROXY and LOCAL blocks with IPv4, IPv6 and TLVs,
 * every truncation of a valid header asks for more, and malformed
 * signatures, versions, lengths, ports and addresses are refused. */
#include "lib/lim.h"
#include "proxy/pxp.h"
#include "t.h"

#include <arpa/inet.h>
#include <netinet/in.h>

/* The text of a parsed socket address, "ip port". */
static const char *
addr_str(const struct sockaddr_storage *ss)
{
	static char out[2][80];
	static int k;
	char ip[INET6_ADDRSTRLEN] = "?";
	int port = -1;

	k ^= 1;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const void *)ss;
		inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
		port = ntohs(a->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const void *)ss;
		inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
		port = ntohs(a->sin6_port);
	}
	snprintf(out[k], sizeof(out[k]), "%s %d", ip, port);
	return out[k];
}

static int
parse(const void *p, size_t n, struct pxp_hdr *h)
{
	const char *why;
	int rc = pxp_parse(p, n, h, &why);

	T_ASSERT(rc != -1 || *why != '\0');
	return rc;
}

/* Every proper prefix of a valid header is "need more", never "bad". */
static void
every_prefix_needs_more(const void *p, size_t len)
{
	struct pxp_hdr h;

	for (size_t k = 0; k < len; k++)
		if (parse(p, k, &h) != 0) {
			fprintf(stderr, "  prefix of %zu/%zu bytes not 0\n", k, len);
			T_ASSERT(0);
			return;
		}
	T_EQ_INT(parse(p, len, &h), (long long)len);
}

static int
bad(const char *s)
{
	struct pxp_hdr h;
	int rc = parse(s, strlen(s), &h);

	if (rc != -1)
		fprintf(stderr, "  accepted (%d): %s\n", rc, s);
	return rc == -1;
}

/* A v2 header: signature, ver_cmd, fam, then block (len bytes). */
static size_t
v2(unsigned char *out, unsigned char ver_cmd, unsigned char fam,
    const unsigned char *block, size_t len)
{
	static const unsigned char sig[12] = "\r\n\r\n\0\r\nQUIT\n";

	memcpy(out, sig, 12);
	out[12] = ver_cmd;
	out[13] = fam;
	out[14] = (unsigned char)(len >> 8);
	out[15] = (unsigned char)len;
	if (len > 0)
		memcpy(out + 16, block, len);
	return 16 + len;
}

static const unsigned char v4block[12] = {
	192, 0, 2, 7, 198, 51, 100, 25, 0xdc, 0x04, 0x00, 0x19,	/* :56324, :25 */
};

T_CASE(v1_tcp4)
{
	const char *s = "PROXY TCP4 192.0.2.7 198.51.100.25 56324 25\r\nEHLO x\r\n";
	struct pxp_hdr h;

	T_EQ_INT(parse(s, strlen(s), &h), (long long)(strlen(s) - 8));
	T_EQ_INT(h.version, 1);
	T_EQ_INT(h.cmd, PXP_PROXY);
	T_EQ_STR(addr_str(&h.src), "192.0.2.7 56324");
	T_EQ_STR(addr_str(&h.dst), "198.51.100.25 25");
	T_EQ_INT(h.srclen, sizeof(struct sockaddr_in));
	every_prefix_needs_more(s, strlen(s) - 8);
	/* the extremes the spec names: 0 and 65535, 255.255.255.255 */
	s = "PROXY TCP4 255.255.255.255 0.0.0.0 65535 0\r\n";
	T_EQ_INT(parse(s, strlen(s), &h), (long long)strlen(s));
	T_EQ_STR(addr_str(&h.src), "255.255.255.255 65535");
	T_EQ_STR(addr_str(&h.dst), "0.0.0.0 0");
}

T_CASE(v1_tcp6)
{
	const char *s = "PROXY TCP6 2001:db8::7 2001:DB8:0:0:0:0:0:19 1 65535\r\n";
	struct pxp_hdr h;

	T_EQ_INT(parse(s, strlen(s), &h), (long long)strlen(s));
	T_EQ_INT(h.cmd, PXP_PROXY);
	T_EQ_STR(addr_str(&h.src), "2001:db8::7 1");
	T_EQ_STR(addr_str(&h.dst), "2001:db8::19 65535");
	T_EQ_INT(h.srclen, sizeof(struct sockaddr_in6));
	every_prefix_needs_more(s, strlen(s));
	/* a dual-stack balancer's IPv4 client: mapped, handed back as IPv4 */
	s = "PROXY TCP6 ::ffff:192.0.2.7 ::1 2 3\r\n";
	T_EQ_INT(parse(s, strlen(s), &h), (long long)strlen(s));
	T_EQ_STR(addr_str(&h.src), "192.0.2.7 2");
	T_EQ_INT(h.srclen, sizeof(struct sockaddr_in));
	T_EQ_STR(addr_str(&h.dst), "::1 3");
}

T_CASE(v1_unknown)
{
	const char *s = "PROXY UNKNOWN\r\n";
	char worst[LIM_PXP_V1 + 1];
	struct pxp_hdr h;

	T_EQ_INT(parse(s, strlen(s), &h), 15);
	T_EQ_INT(h.cmd, PXP_UNSPEC);
	every_prefix_needs_more(s, strlen(s));
	/* 2.1: anything up to the CRLF is ignored; the worst case is 107 */
	snprintf(worst, sizeof(worst), "PROXY UNKNOWN %s %s 65535 65535\r\n",
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
	T_EQ_INT(strlen(worst), LIM_PXP_V1);
	T_EQ_INT(parse(worst, strlen(worst), &h), LIM_PXP_V1);
	T_EQ_INT(h.cmd, PXP_UNSPEC);
	every_prefix_needs_more(worst, strlen(worst));
	s = "PROXY UNKNOWN whatever the sender had\r\n";
	T_EQ_INT(parse(s, strlen(s), &h), (long long)strlen(s));
	T_ASSERT(bad("PROXY UNKNOWNX\r\n"));
}

T_CASE(v1_line_ends)
{
	char longer[LIM_PXP_V1 + 8];
	struct pxp_hdr h;

	T_ASSERT(bad("PROXY TCP4 192.0.2.7 198.51.100.25 56324 25\n"));
	T_ASSERT(bad("PROXY TCP4 192.0.2.7 198.51.100.25 56324 25\rX"));
	T_ASSERT(bad("PROXY TCP4 192.0.2.7\r\n198.51.100.25 56324 25\r\n"));
	T_ASSERT(bad("PROXY UNKNOWN\n\r\n"));
	/* CRLF past byte 107: too long, even for UNKNOWN */
	memset(longer, 'f', sizeof(longer));
	memcpy(longer, "PROXY UNKNOWN ", 14);
	T_EQ_INT(parse(longer, LIM_PXP_V1 - 1, &h), 0);
	T_EQ_INT(parse(longer, LIM_PXP_V1, &h), -1);
	memcpy(longer + LIM_PXP_V1 - 1, "\r\n", 2);
	T_EQ_INT(parse(longer, LIM_PXP_V1 - 1, &h), 0);
	T_EQ_INT(parse(longer, LIM_PXP_V1, &h), -1);	/* CR as byte 107 */
	T_EQ_INT(parse(longer, LIM_PXP_V1 + 1, &h), -1);
	/* a NUL is not text */
	T_EQ_INT(parse("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\0\r\n", 33, &h), -1);
}

T_CASE(v1_malformed)
{
	/* not the protocol at all: refused at the first byte */
	T_ASSERT(bad("E"));
	T_ASSERT(bad("EHLO client.example\r\n"));
	T_ASSERT(bad("proxy TCP4 192.0.2.7 198.51.100.25 56324 25\r\n"));
	T_ASSERT(bad("PROXX"));
	T_ASSERT(bad("PROXY\r\n"));
	T_ASSERT(bad("PROXY \r\n"));
	T_ASSERT(bad("PROXY TCP5 192.0.2.7 198.51.100.25 56324 25\r\n"));
	T_ASSERT(bad("PROXY UDP4 192.0.2.7 198.51.100.25 56324 25\r\n"));
	/* spacing */
	T_ASSERT(bad("PROXY  TCP4 192.0.2.7 198.51.100.25 56324 25\r\n"));
	T_ASSERT(bad("PROXY TCP4 192.0.2.7  198.51.100.25 56324 25\r\n"));
	T_ASSERT(bad("PROXY TCP4 192.0.2.7 198.51.100.25 56324 25 \r\n"));
	T_ASSERT(bad("PROXY TCP4\t192.0.2.7 198.51.100.25 56324 25\r\n"));
	/* field count */
	T_ASSERT(bad("PROXY TCP4 192.0.2.7 198.51.100.25 56324\r\n"));
	T_ASSERT(bad("PROXY TCP4 192.0.2.7 198.51.100.25 56324 25 26\r\n"));
	T_ASSERT(bad("PROXY TCP4\r\n"));
}

T_CASE(v1_bad_addresses)
{
	T_ASSERT(bad("PROXY TCP4 192.0.2.07 198.51.100.25 56324 25\r\n"));
	T_ASSERT(bad("PROXY TCP4 192.0.02.7 198.51.100.25 56324 25\r\n"));
	T_ASSERT(bad("PROXY TCP4 256.0.2.7 198.51.100.25 56324 25\r\n"));
	T_ASSERT(bad("PROXY TCP4 1000.0.2.7 198.51.100.25 56324 25\r\n"));
	T_ASSERT(bad("PROXY TCP4 192.0.2 198.51.100.25 56324 25\r\n"));
	T_ASSERT(bad("PROXY TCP4 192.0.2.7.1 198.51.100.25 56324 25\r\n"));
	T_ASSERT(bad("PROXY TCP4 192.0..7 198.51.100.25 56324 25\r\n"));
	T_ASSERT(bad("PROXY TCP4 192.0.2.7. 198.51.100.25 56324 25\r\n"));
	T_ASSERT(bad("PROXY TCP4 0x7f.0.0.1 198.51.100.25 56324 25\r\n"));
	T_ASSERT(bad("PROXY TCP4 192.0.2.7 host.example 56324 25\r\n"));
	/* the address must be of the announced family */
	T_ASSERT(bad("PROXY TCP4 2001:db8::7 198.51.100.25 56324 25\r\n"));
	T_ASSERT(bad("PROXY TCP6 192.0.2.7 2001:db8::19 56324 25\r\n"));
	T_ASSERT(bad("PROXY TCP6 2001:db8::7 198.51.100.25 56324 25\r\n"));
	T_ASSERT(bad("PROXY TCP6 2001:db8:::7 2001:db8::19 56324 25\r\n"));
	T_ASSERT(bad("PROXY TCP6 2001:db8::7%eth0 2001:db8::19 56324 25\r\n"));
	T_ASSERT(bad("PROXY TCP6 1:2:3:4:5:6:7:8:9 2001:db8::19 56324 25\r\n"));
}

T_CASE(v1_bad_ports)
{
	T_ASSERT(bad("PROXY TCP4 192.0.2.7 198.51.100.25 65536 25\r\n"));
	T_ASSERT(bad("PROXY TCP4 192.0.2.7 198.51.100.25 056324 25\r\n"));
	T_ASSERT(bad("PROXY TCP4 192.0.2.7 198.51.100.25 56324 025\r\n"));
	T_ASSERT(bad("PROXY TCP4 192.0.2.7 198.51.100.25 00 25\r\n"));
	T_ASSERT(bad("PROXY TCP4 192.0.2.7 198.51.100.25 -1 25\r\n"));
	T_ASSERT(bad("PROXY TCP4 192.0.2.7 198.51.100.25 +1 25\r\n"));
	T_ASSERT(bad("PROXY TCP4 192.0.2.7 198.51.100.25 1a 25\r\n"));
	T_ASSERT(bad("PROXY TCP4 192.0.2.7 198.51.100.25 99999999999 25\r\n"));
}

T_CASE(v2_proxy_ipv4)
{
	unsigned char b[64];
	size_t n = v2(b, 0x21, 0x11, v4block, sizeof(v4block));
	struct pxp_hdr h;

	memcpy(b + n, "EHLO", 4);	/* the client's bytes follow */
	T_EQ_INT(parse(b, n + 4, &h), 28);
	T_EQ_INT(h.version, 2);
	T_EQ_INT(h.cmd, PXP_PROXY);
	T_EQ_STR(addr_str(&h.src), "192.0.2.7 56324");
	T_EQ_STR(addr_str(&h.dst), "198.51.100.25 25");
	every_prefix_needs_more(b, n);
}

T_CASE(v2_proxy_ipv6_tlvs_skipped)
{
	unsigned char blk[36 + 64], b[200];
	size_t o = 36, n;
	struct pxp_hdr h;

	memset(blk, 0, sizeof(blk));
	blk[0] = 0x20; blk[1] = 0x01; blk[2] = 0x0d; blk[3] = 0xb8; blk[15] = 7;
	blk[16] = 0x20; blk[17] = 0x01; blk[18] = 0x0d; blk[19] = 0xb8; blk[31] = 0x19;
	blk[32] = 0x12; blk[33] = 0x34; blk[34] = 0x00; blk[35] = 0x19;
	/* ALPN "smtp", a NOOP of length 0, a unique ID, an SSL TLV */
	memcpy(blk + o, "\x01\x00\x04smtp", 7); o += 7;
	memcpy(blk + o, "\x04\x00\x00", 3); o += 3;
	memcpy(blk + o, "\x05\x00\x05" "abcde", 8); o += 8;
	memcpy(blk + o, "\x20\x00\x05\x01\x00\x00\x00\x00", 8); o += 8;
	n = v2(b, 0x21, 0x21, blk, o);
	T_EQ_INT(parse(b, n, &h), (long long)n);
	T_EQ_INT(h.cmd, PXP_PROXY);
	T_EQ_STR(addr_str(&h.src), "2001:db8::7 4660");
	T_EQ_STR(addr_str(&h.dst), "2001:db8::19 25");
	T_EQ_INT(h.srclen, sizeof(struct sockaddr_in6));
	every_prefix_needs_more(b, n);
	/* mapped IPv4 in the binary form too */
	memset(blk, 0, 16);
	blk[10] = blk[11] = 0xff;
	blk[12] = 192; blk[13] = 0; blk[14] = 2; blk[15] = 7;
	n = v2(b, 0x21, 0x21, blk, 36);
	T_EQ_INT(parse(b, n, &h), (long long)n);
	T_EQ_STR(addr_str(&h.src), "192.0.2.7 4660");
	T_EQ_STR(addr_str(&h.dst), "2001:db8::19 25");
}

T_CASE(v2_local)
{
	unsigned char b[64];
	struct pxp_hdr h;
	size_t n = v2(b, 0x20, 0x00, NULL, 0);

	T_EQ_INT(parse(b, n, &h), 16);
	T_EQ_INT(h.cmd, PXP_LOCAL);
	every_prefix_needs_more(b, n);
	/* LOCAL with an address block: skipped, not used (2.2) */
	n = v2(b, 0x20, 0x11, v4block, sizeof(v4block));
	T_EQ_INT(parse(b, n, &h), 28);
	T_EQ_INT(h.cmd, PXP_LOCAL);
	T_EQ_INT(h.src.ss_family, 0);
}

T_CASE(v2_unspec_families)
{
	unsigned char blk[216], b[300];
	struct pxp_hdr h;
	size_t n;

	memset(blk, 0, sizeof(blk));
	n = v2(b, 0x21, 0x00, NULL, 0);		/* PROXY, UNSPEC */
	T_EQ_INT(parse(b, n, &h), 16);
	T_EQ_INT(h.cmd, PXP_UNSPEC);
	n = v2(b, 0x21, 0x12, v4block, 12);	/* UDP over IPv4 */
	T_EQ_INT(parse(b, n, &h), 28);
	T_EQ_INT(h.cmd, PXP_UNSPEC);
	n = v2(b, 0x21, 0x31, blk, 216);	/* AF_UNIX stream */
	T_EQ_INT(parse(b, n, &h), 232);
	T_EQ_INT(h.cmd, PXP_UNSPEC);
	T_EQ_INT(h.src.ss_family, 0);
}

T_CASE(v2_bad_signature)
{
	unsigned char b[64];
	size_t n = v2(b, 0x21, 0x11, v4block, sizeof(v4block));
	struct pxp_hdr h;

	/* a wrong byte anywhere in the signature is refused as soon as seen */
	for (int i = 1; i < 12; i++) {
		b[i] ^= 0x40;
		T_EQ_INT(parse(b, (size_t)i + 1, &h), -1);
		T_EQ_INT(parse(b, n, &h), -1);
		b[i] ^= 0x40;
	}
	T_EQ_INT(parse(b, n, &h), 28);
	/* a v1 line that starts like the v2 signature */
	T_ASSERT(bad("\r\nPROXY TCP4 192.0.2.7 198.51.100.25 56324 25\r\n"));
}

T_CASE(v2_bad_version_command_family)
{
	unsigned char b[64];
	struct pxp_hdr h;
	static const unsigned char vc[] = { 0x11, 0x31, 0x01, 0x22, 0x2f };
	static const unsigned char fam[] = { 0x41, 0xf1, 0x13, 0x1f };

	for (size_t i = 0; i < sizeof(vc); i++) {
		(void)v2(b, vc[i], 0x11, v4block, sizeof(v4block));
		T_EQ_INT(parse(b, 13, &h), -1);		/* at once */
	}
	for (size_t i = 0; i < sizeof(fam); i++) {
		(void)v2(b, 0x21, fam[i], v4block, sizeof(v4block));
		T_EQ_INT(parse(b, 14, &h), -1);
	}
}

T_CASE(v2_bad_lengths)
{
	unsigned char blk[LIM_PXP_V2 + 1], b[LIM_PXP_V2 + 32];
	struct pxp_hdr h;
	size_t n;

	memset(blk, 0, sizeof(blk));
	/* shorter than the family's addresses */
	n = v2(b, 0x21, 0x11, v4block, 11);
	T_EQ_INT(parse(b, n, &h), -1);
	n = v2(b, 0x21, 0x21, blk, 35);
	T_EQ_INT(parse(b, n, &h), -1);
	n = v2(b, 0x21, 0x31, blk, 215);
	T_EQ_INT(parse(b, n, &h), -1);
	/* over our bound: refused from the length field alone */
	(void)v2(b, 0x21, 0x11, blk, LIM_PXP_V2 + 1);
	T_EQ_INT(parse(b, 16, &h), -1);
	/* at the bound: one NOOP TLV filling it */
	memcpy(blk, v4block, 12);
	blk[12] = 0x04;
	blk[13] = (unsigned char)((LIM_PXP_V2 - 15) >> 8);
	blk[14] = (unsigned char)(LIM_PXP_V2 - 15);
	n = v2(b, 0x21, 0x11, blk, LIM_PXP_V2);
	T_EQ_INT(parse(b, n, &h), (long long)n);
	T_EQ_INT(parse(b, n - 1, &h), 0);
}

T_CASE(v2_bad_tlvs)
{
	unsigned char blk[64], b[100];
	struct pxp_hdr h;
	size_t n;

	memcpy(blk, v4block, 12);
	/* a TLV whose length runs past the header */
	memcpy(blk + 12, "\x01\x00\x05smtp", 7);
	n = v2(b, 0x21, 0x11, blk, 19);
	T_EQ_INT(parse(b, n, &h), -1);
	/* one or two bytes left over: not a TLV */
	memcpy(blk + 12, "\x04\x00", 2);
	n = v2(b, 0x21, 0x11, blk, 14);
	T_EQ_INT(parse(b, n, &h), -1);
	n = v2(b, 0x21, 0x11, blk, 13);
	T_EQ_INT(parse(b, n, &h), -1);
	/* a good one for contrast */
	memcpy(blk + 12, "\x04\x00\x00", 3);
	n = v2(b, 0x21, 0x11, blk, 15);
	T_EQ_INT(parse(b, n, &h), 31);
}

T_CASE(cmd_names)
{
	T_EQ_STR(pxp_cmd_name(PXP_LOCAL), "LOCAL");
	T_EQ_STR(pxp_cmd_name(PXP_UNSPEC), "UNKNOWN");
	T_EQ_STR(pxp_cmd_name(PXP_PROXY), "PROXY");
}

int
main(void)
{
	T_RUN(v1_tcp4);
	T_RUN(v1_tcp6);
	T_RUN(v1_unknown);
	T_RUN(v1_line_ends);
	T_RUN(v1_malformed);
	T_RUN(v1_bad_addresses);
	T_RUN(v1_bad_ports);
	T_RUN(v2_proxy_ipv4);
	T_RUN(v2_proxy_ipv6_tlvs_skipped);
	T_RUN(v2_local);
	T_RUN(v2_unspec_families);
	T_RUN(v2_bad_signature);
	T_RUN(v2_bad_version_command_family);
	T_RUN(v2_bad_lengths);
	T_RUN(v2_bad_tlvs);
	T_RUN(cmd_names);
	return T_END();
}
