/* fuzz_mime.c -- the MIME parser (rules/mime.h, GMime underneath): any
 * bytes must parse, every list stay inside its MIME_MAX_* bound and every
 * item be a NUL-terminated string of the length it claims; the
 * classifier's tokeniser (policy/btok.h) then stays inside its bounds and
 * every token it makes formats. */
#include "fuzz.h"
#include "policy/btok.h"
#include "rules/mime.h"

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	struct mime_msg *m;
	size_t total = 0;

	mime_init();
	m = mime_parse((const char *)d, n);
	FUZZ_ASSERT(m != NULL);
	FUZZ_ASSERT(mime_count(m, MIME_URL) <= MIME_MAX_URLS);
	FUZZ_ASSERT(mime_count(m, MIME_TEXT) <= MIME_MAX_PARTS);
	FUZZ_ASSERT(mime_count(m, MIME_PART) <= MIME_MAX_PARTS);
	FUZZ_ASSERT(mime_nheaders(m) <= MIME_MAX_HEADERS);
	for (int k = 0; k < MIME_NKINDS; k++) {
		for (size_t i = 0; i < mime_count(m, (enum mime_kind)k); i++) {
			size_t len = 0;
			const char *s = mime_item(m, (enum mime_kind)k, i, &len);
			FUZZ_ASSERT(s != NULL && s[len] == '\0');
			if (k == MIME_URL)
				FUZZ_ASSERT(len <= MIME_MAX_URL_LEN);
			if (k == MIME_TEXT)
				total += len;
		}
	}
	FUZZ_ASSERT(total <= MIME_MAX_TEXT_TOTAL);
	for (size_t i = 0; i < mime_nheaders(m); i++) {
		const char *name = NULL;
		const char *v = mime_header_at(m, i, &name);
		FUZZ_ASSERT(v != NULL && name != NULL);
	}
	(void)mime_header(m, "Subject", 0);
	struct btok_set ts = { 0 };
	char buf[64];
	btok_message(&ts, m, n);
	FUZZ_ASSERT(ts.n <= BTOK_MAX_TOKENS);
	for (size_t i = 0; i < ts.n; i++)
		FUZZ_ASSERT(strlen(btok_format(&ts, &ts.v[i], buf, sizeof(buf))) < sizeof(buf));
	btok_free(&ts);
	mime_free(m);
	return 0;
}
