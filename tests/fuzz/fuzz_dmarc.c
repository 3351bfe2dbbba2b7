/* fuzz_dmarc.c -- the DMARC record parser and RFC5322.From domain finder
 * (policy/dmarc.h), plus the organizational-domain and alignment helpers on
 * what the From parser returns. Knob byte: bit 0 record vs message. */
#include "policy/dmarc.h"
#include "fuzz.h"

static void
check_record(const char *s, size_t n)
{
	struct dmarc_record r;

	if (dmarc_record_parse(s, n, &r) == DMARC_REC_OK) {
		FUZZ_ASSERT(r.p >= DMARC_P_NONE && r.p <= DMARC_P_REJECT);
		FUZZ_ASSERT(r.sp >= DMARC_P_UNSET && r.sp <= DMARC_P_REJECT);
		FUZZ_ASSERT(r.pct >= 0 && r.pct <= 100);
	}
}

static void
check_from(const char *s, size_t n)
{
	char dom[DMARC_DOMAIN_MAX + 1], org[DMARC_DOMAIN_MAX + 1];

	if (dmarc_from_domain(s, n, dom, sizeof(dom)) != DMARC_FROM_OK)
		return;
	FUZZ_ASSERT(strlen(dom) <= DMARC_DOMAIN_MAX && dom[0] != '\0');
	if (dmarc_org_domain(dom, org, sizeof(org)) == 0) {
		FUZZ_ASSERT(strlen(org) <= strlen(dom));
		FUZZ_ASSERT(dmarc_aligned(dom, org, 0));
	}
	FUZZ_ASSERT(dmarc_aligned(dom, dom, 1));
}

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	unsigned k = fuzz_byte(&d, &n);

	if (k & 1) {
		check_record((const char *)d, n);
	} else {
		char *s = fuzz_str(d, n);
		char org[DMARC_DOMAIN_MAX + 1];
		check_from((const char *)d, n);
		(void)dmarc_org_domain(s, org, sizeof(org));
		free(s);
	}
	return 0;
}
