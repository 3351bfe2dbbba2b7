/* fuzz_pxp.c -- the PROXY protocol header (proxy/pxp.h), v1 and v2. A
 * header found is at most LIM_PXP_V1 / 16 + LIM_PXP_V2 bytes and within
 * the input; the same bytes alone parse to the same header; every shorter
 * prefix of it is "need more" (a header split by TCP is never refused);
 * PROXY results carry two addresses of one family with its length; "need
 * more" is never said of more bytes than a header may have; no mapped
 * IPv4 address comes back as IPv6. */
#include "lib/lim.h"
#include "proxy/pxp.h"
#include "fuzz.h"

#include <netinet/in.h>

static void
check_addr(const struct sockaddr_storage *ss, socklen_t len)
{
	int f = ss->ss_family;

	FUZZ_ASSERT(f == AF_INET || f == AF_INET6);
	FUZZ_ASSERT(len == (f == AF_INET ? sizeof(struct sockaddr_in) :
	    sizeof(struct sockaddr_in6)));
	if (f == AF_INET6)
		FUZZ_ASSERT(!IN6_IS_ADDR_V4MAPPED(&((const struct sockaddr_in6 *)ss)->sin6_addr));
}

static void
check_header(const uint8_t *d, int rc, const struct pxp_hdr *h)
{
	struct pxp_hdr again;
	const char *why;

	FUZZ_ASSERT(h->version == 1 || h->version == 2);
	FUZZ_ASSERT(rc <= (h->version == 1 ? LIM_PXP_V1 : 16 + LIM_PXP_V2));
	if (h->cmd == PXP_PROXY) {
		check_addr(&h->src, h->srclen);
		check_addr(&h->dst, h->dstlen);
	} else
		FUZZ_ASSERT(h->src.ss_family == 0 && h->dst.ss_family == 0);
	FUZZ_ASSERT(pxp_parse(d, (size_t)rc, &again, &why) == rc);
	FUZZ_ASSERT(memcmp(&again, h, sizeof(again)) == 0);
	for (int k = 0; k < rc; k++)
		FUZZ_ASSERT(pxp_parse(d, (size_t)k, &again, &why) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	struct pxp_hdr h;
	const char *why = NULL;
	int rc = pxp_parse(d, n, &h, &why);

	FUZZ_ASSERT(rc >= -1 && (size_t)(rc > 0 ? rc : 0) <= n);
	FUZZ_ASSERT(why != NULL && (rc != -1 || *why != '\0'));
	FUZZ_ASSERT(rc != 0 || n < 16 + LIM_PXP_V2);
	if (rc > 0)
		check_header(d, rc, &h);
	(void)pxp_cmd_name(h.cmd);
	return 0;
}
