/* fuzz_be.c -- the backend reply parser and EHLO capability reader
 * (proxy/be.h). The input is split at LF into reply lines fed to
 * be_reply_feed(); a completed reply must respect the LIM_REPLY_* bounds.
 * The whole input also goes through be_ehlo_caps() and be_xtext(). */
#include "proxy/be.h"
#include "fuzz.h"

static void
feed_lines(const char *s, size_t n)
{
	struct be_reply r = { 0 };
	size_t start = 0;

	for (size_t i = 0; i <= n; i++) {
		if (i < n && s[i] != '\n')
			continue;
		size_t len = i - start;
		if (len > 0 && s[start + len - 1] == '\r')
			len--;
		int st = be_reply_feed(&r, s + start, len);
		if (st == 1) {
			FUZZ_ASSERT(r.code >= 100 && r.code <= 599);
			FUZZ_ASSERT(r.nlines >= 1 && r.nlines <= LIM_REPLY_LINES);
			FUZZ_ASSERT(r.text.len <= LIM_REPLY_TOTAL);
			FUZZ_ASSERT(strlen(buf_str(&r.text)) == r.text.len);
		}
		if (st != 0)
			be_reply_clear(&r);
		start = i + 1;
	}
	be_reply_clear(&r);
}

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	char *s = fuzz_str(d, n);
	unsigned xc = 0, xf = 0;
	char out[128];

	feed_lines((const char *)d, n);
	(void)be_ehlo_caps(s, &xc, &xf);
	be_xtext(s, out, sizeof(out));
	FUZZ_ASSERT(strlen(out) < sizeof(out));
	be_xtext(s, out, 4);
	free(s);
	return 0;
}
