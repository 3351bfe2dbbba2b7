/* fuzz_web.c -- the web API's JSON body path without a daemon (web/):
 * POST /api/rules/test through api_dispatch(), i.e. web_body_json(), the
 * rule-from-JSON reader, rule_test() and the error replies. A body naming
 * a well-formed quarantine_id is skipped: that branch reads the database,
 * which is not set up here (malformed ids are refused before it).
 * Every answer must be a JSON document with a status. */
#include "lib/conf.h"
#include "fuzz.h"
#include "web/web_int.h"

#include <ctype.h>

/* Does the body hold "quarantine_id" with a value api.c would take to the
 * database (letters, digits, '-' and '_')? Cheap and conservative: any
 * such run after the key counts. */
static int
quar_id_wellformed(const uint8_t *d, size_t n)
{
	const uint8_t *k = memmem(d, n, "quarantine_id", 13);

	if (k == NULL)
		return 0;
	for (const uint8_t *p = k + 13; p < d + n; p++)
		if (*p == '"' && p + 1 < d + n && (isalnum(p[1]) || p[1] == '-' ||
		    p[1] == '_'))
			return 1;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	static struct conf *c;
	struct web_req r = { 0 };
	struct web_resp resp = { 0 };
	char *body;

	if (quar_id_wellformed(d, n))
		return 0;
	if (c == NULL)
		c = conf_defaults();
	r.method = "POST";
	r.path = "/api/rules/test";
	r.ctype = "application/json";
	r.body = body = fuzz_str(d, n);
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
	free(body);
	return 0;
}
