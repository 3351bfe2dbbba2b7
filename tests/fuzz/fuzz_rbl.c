/* fuzz_rbl.c -- the DNS list site syntax (policy/rbl.h): parse, then match
 * a few answers and build query names under every zone parsed. */
#include "fuzz.h"
#include "policy/rbl.h"

#include <arpa/inet.h>

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	static struct rbl_site sites[RBL_MAX_SITES];
	char why[256], name[1024];
	char *s = fuzz_str(d, n);
	int k = rbl_parse(s, sites, RBL_MAX_SITES, why, sizeof(why));
	struct sockaddr_in6 sa6 = { .sin6_family = AF_INET6 };
	struct sockaddr_in sa = { .sin_family = AF_INET };

	FUZZ_ASSERT(k >= -1 && k <= RBL_MAX_SITES);
	inet_pton(AF_INET6, "2001:db8::1", &sa6.sin6_addr);
	sa.sin_addr.s_addr = htonl(0x7f000002);
	for (int i = 0; i < k; i++) {
		FUZZ_ASSERT(strlen(sites[i].zone) <= RBL_ZONE_MAX);
		(void)rbl_match(&sites[i], sa.sin_addr);
		(void)rbl_name((struct sockaddr *)&sa, sites[i].zone, name, sizeof(name));
		(void)rbl_name((struct sockaddr *)&sa6, sites[i].zone, name, sizeof(name));
	}
	free(s);
	return 0;
}
