/* fuzz_dkim.c -- the DKIM check (policy/dkim.h, libopendkim underneath)
 * on hostile messages: DKIM-Signature tag lists, canonicalization of odd
 * headers and bodies, and hostile key records. This target's dns_query()
 * replaces dns/'s (see the Makefile): every TXT question is answered with
 * the input's first line as the key record; nothing leaves the process.
 * Input: key record LF message. The check must end with one result per
 * signature (at most DKIM_MAX_SIGS) or one "none". */
#include "lib/conf.h"
#include "policy/dkim.h"
#include "dns/dns.h"
#include "fuzz.h"
#include "policy/policy.h"
#include "policy/policy_int.h"
#include "lib/util.h"

#include <netinet/in.h>

static const char *keyrec;
static size_t keylen;

struct dns_answer *
dns_query(const char *name, int type, struct dns_budget *b)
{
	struct dns_answer *a = xcalloc(1, sizeof(*a));

	(void)b;
	FUZZ_ASSERT(name != NULL);
	a->type = type;
	a->ttl = 300;
	a->rr = xcalloc(1, sizeof(*a->rr));
	if (type != DNS_T_TXT || keylen == 0) {
		a->status = DNS_NXDOMAIN;
		return a;
	}
	a->count = 1;
	a->rr->u.txt.joined = xstrndup(keyrec, keylen);
	a->rr->u.txt.len = (int)keylen;
	a->rr->u.txt.nstrings = 1 + (int)keylen / 255;
	return a;
}

void
dns_answer_free(struct dns_answer *a)
{
	if (a->count > 0)
		free(a->rr->u.txt.joined);
	free(a->rr);
	free(a);
}

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	static struct conf *c;
	const uint8_t *nl = memchr(d, '\n', n);
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct pol_session *ps;
	struct pol_msg m;
	int nres = 0;

	if (c == NULL)
		c = conf_defaults();
	keyrec = (const char *)d;
	keylen = nl ? (size_t)(nl - d) : 0;
	m.data = nl ? (const char *)nl + 1 : (const char *)d;
	m.len = nl ? n - keylen - 1 : n;
	sin.sin_addr.s_addr = htonl(0xc0000201);
	ps = pol_session_new(c, "F", (struct sockaddr *)&sin, sizeof(sin));
	pol_tx_begin(ps, "a@example.org", "");
	dkim_check.run(ps, POL_DATA, &m);
	for (int i = 0; i < ps->nresults; i++) {
		const struct pol_result *r = &ps->results[i];
		nres += strcmp(r->check, "dkim") == 0;
		if (getenv("FUZZ_DEBUG") != NULL)	/* triage: what was decided */
			fprintf(stderr, "%s=%s (%s)\n", r->check, r->result,
			    r->reason ? r->reason : "");
	}
	FUZZ_ASSERT(nres >= 1 && nres <= DKIM_MAX_SIGS + 1);
	FUZZ_ASSERT(ps->score == ps->score);	/* not NaN */
	pol_session_free(ps);
	return 0;
}
