/* fuzz_web.c -- the web API's JSON body path without a daemon (web/):
 * POST /api/rules/test through api_dispatch(), i.e. web_body_json(), the
 * rule-from-JSON reader and rule_test(). Bodies that name a quarantine_id
 * are skipped: that branch reads the database, which is not set up here.
 * Every answer must be a JSON document with a status. */
#include "conf.h"
#include "fuzz.h"
#include "web_int.h"

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	static struct conf *c;
	struct web_req r = { 0 };
	struct web_resp resp = { 0 };

	if (memmem(d, n, "quarantine_id", 13) != NULL || memmem(d, n, "\\u", 2) != NULL)
		return 0;
	if (c == NULL)
		c = conf_defaults();
	r.method = "POST";
	r.path = "/api/rules/test";
	r.body = fuzz_str(d, n);
	r.len = n;
	r.conf = c;
	snprintf(r.ip, sizeof(r.ip), "127.0.0.1");
	snprintf(r.user, sizeof(r.user), "api-token");
	api_dispatch(&r, &resp);
	FUZZ_ASSERT(resp.status >= 200 && resp.status < 500);
	FUZZ_ASSERT(resp.body != NULL && resp.len > 0);
	free(resp.body);
	free(resp.disposition);
	free(resp.cookie);
	free(r.body);
	return 0;
}
