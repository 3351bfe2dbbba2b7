/* fuzz_addr.c -- MAIL FROM:/RCPT TO: arguments and their ESMTP parameters
 * (lib/addr.h). Knob byte: bit 0 RCPT (TO:) vs MAIL (FROM:), bits 1-2
 * utf8 -1/0/1, bit 3 null_ok. A parsed path must fit LIM_PATH and its
 * parameters LIM_ESMTP_PARAMS, and every parameter must be findable. */
#include "lib/addr.h"
#include "lib/utf8.h"
#include "fuzz.h"

#include <strings.h>

static void
check_ok(const struct addr_cmd *c, int utf8)
{
	FUZZ_ASSERT(strlen(c->path) <= LIM_PATH);
	FUZZ_ASSERT(c->nparams >= 0 && c->nparams <= LIM_ESMTP_PARAMS);
	for (int i = 0; i < c->nparams; i++) {
		const char *v = addr_param(c, c->params[i].key);
		FUZZ_ASSERT(v != NULL);
		FUZZ_ASSERT(c->params[i].value == NULL || strlen(c->params[i].value) <= LIM_ESMTP_VALUE);
	}
	/* <Postmaster> alone is a valid RCPT (RFC 5321 4.5.1). */
	if (c->path[0] != '\0' && strcasecmp(c->path, "postmaster") != 0)
		FUZZ_ASSERT(addr_mailbox_ok(c->path, strlen(c->path), utf8 == 1) == 0 ||
		    utf8 == -1);
}

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	unsigned k = fuzz_byte(&d, &n);
	const char *prefix = (k & 1) ? "TO:" : "FROM:";
	int utf8 = (int)((k >> 1) & 3) - 1;
	struct addr_cmd c;
	char *s;

	if (utf8 > 1)
		utf8 = 1;
	s = fuzz_str(d, n);
	memset(&c, 0, sizeof(c));
	if (addr_parse(s, prefix, utf8, (k >> 3) & 1, &c) == ADDR_OK)
		check_ok(&c, utf8);
	(void)addr_param(&c, "SIZE");
	(void)addr_mailbox_ok(s, strlen(s), k & 1);
	(void)utf8_valid((const char *)d, n);
	(void)addr_xtext_ok(s);
	free(s);
	return 0;
}
