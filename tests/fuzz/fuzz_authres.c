/* fuzz_authres.c -- Authentication-Results hygiene (policy/authres.h):
 * the authserv-id reader on the raw input, the skip ranges over it as a
 * message (sorted, in bounds, each a whole field naming our host or one of
 * our own X-Spam-/X-Postern- fields), and the
 * property-value sanitiser. */
#include "policy/authres.h"
#include "fuzz.h"
#include "policy/policy.h"

#include <strings.h>

#define HOST	"mx.example.org"

static void
check_skips(const char *msg, size_t n)
{
	struct pol_skip *sk = NULL;
	int k = authres_skips(msg, n, HOST, &sk);
	size_t end = 0;

	FUZZ_ASSERT(k >= 0);
	FUZZ_ASSERT((k == 0) == (sk == NULL));
	for (int i = 0; i < k; i++) {
		FUZZ_ASSERT(sk[i].off >= end && sk[i].len > 0);
		FUZZ_ASSERT(sk[i].off + sk[i].len <= n);
		/* our own result fields (X-Spam-*, X-Postern-*) are skipped too */
		FUZZ_ASSERT(strncasecmp(msg + sk[i].off, "Authentication-Results", 22) == 0 ||
		    strncasecmp(msg + sk[i].off, "X-Spam-", 7) == 0 ||
		    strncasecmp(msg + sk[i].off, "X-Postern-", 10) == 0);
		end = sk[i].off + sk[i].len;
	}
	free(sk);
}

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	char id[AUTHRES_SERVID_MAX + 1], val[64];
	char *s = fuzz_str(d, n);

	if (authres_servid((const char *)d, n, id, sizeof(id)) == 0)
		FUZZ_ASSERT(strlen(id) <= AUTHRES_SERVID_MAX);
	(void)authres_servid((const char *)d, n, id, 8);
	check_skips((const char *)d, n);
	authres_value(s, val, sizeof(val));
	FUZZ_ASSERT(strlen(val) < sizeof(val));
	for (const char *p = val; *p; p++)
		FUZZ_ASSERT(*p > ' ' && *p < 127);
	free(s);
	return 0;
}
