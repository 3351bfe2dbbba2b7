/* fuzz_mime.c -- the MIME parser (rules/mime.h, GMime underneath): any
 * bytes must parse, every list stay inside its MIME_MAX_* bound and every
 * item be a NUL-terminated string of the length it claims; the
 * classifier's tokeniser (policy/btok.h) then stays inside its bounds and
 * every token it makes formats, and its Markov part (policy/bmark.h) keeps
 * the promises fuzz_markov() lists. */
#include "fuzz.h"
#include "policy/bmark.h"
#include "policy/btok.h"
#include "rules/mime.h"

/* The normalised text: within max, a leading space, lower-case, word
 * bytes or single spaces only. */
static void
fuzz_markov_text(const char *t, size_t len, size_t max)
{
	FUZZ_ASSERT(len <= max);
	FUZZ_ASSERT(len == 0 || t[0] == ' ');
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)t[i];
		FUZZ_ASSERT(!(c >= 'A' && c <= 'Z'));
		FUZZ_ASSERT(c != ' ' || i == 0 || t[i - 1] != ' ');
		FUZZ_ASSERT(c == ' ' || c >= 0x80 || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || strchr("$'-._", c) != NULL);
	}
}

static int
fuzz_u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Two position lists hold the same grams and contexts in the same order. */
static void
fuzz_markov_same(const struct bmark *a, const struct bmark *b)
{
	FUZZ_ASSERT(a->n == b->n);
	for (size_t i = 0; i < a->n; i++)
		FUZZ_ASSERT(a->gram[i] == b->gram[i] && a->ctx[i] == b->ctx[i]);
}

/* The Markov part on m, with a budget from the input's length: the text
 * is normalised; its positions are distinct non-zero grams, no more than
 * the text has; the grams of the message are those of its text, and a
 * first pass's are those of the text's first bytes; the learn keys are
 * every gram, every context and the marker. */
static void
fuzz_markov(const struct mime_msg *m, size_t n)
{
	size_t max = 16 + n % 6000, first = max / 3, len, nk;
	char *text = malloc(max + 1);
	struct bmark b = { 0 }, t = { 0 }, f = { 0 }, ft = { 0 };
	uint64_t *keys, *sorted;

	FUZZ_ASSERT(text != NULL);
	len = bmark_text(m, max, text);
	fuzz_markov_text(text, len, max);
	bmark_grams(&b, m, max);
	bmark_grams_text(&t, text, len);
	fuzz_markov_same(&b, &t);
	FUZZ_ASSERT(b.n <= (len >= BMARK_ORDER ? len - BMARK_ORDER + 1 : 0));
	sorted = malloc((b.n + 1) * sizeof(*sorted));
	FUZZ_ASSERT(sorted != NULL);
	for (size_t i = 0; i < b.n; i++) {
		FUZZ_ASSERT(b.gram[i] != 0 && b.ctx[i] != 0);
		sorted[i] = b.gram[i];
	}
	qsort(sorted, b.n, sizeof(*sorted), fuzz_u64_cmp);
	for (size_t i = 1; i < b.n; i++)
		FUZZ_ASSERT(sorted[i - 1] != sorted[i]);
	FUZZ_ASSERT(bmark_grams_first(&f, m, max, first) == (len > first));
	bmark_grams_text(&ft, text, len < first ? len : first);
	fuzz_markov_same(&f, &ft);
	keys = malloc((2 * b.n + 1) * sizeof(*keys));
	FUZZ_ASSERT(keys != NULL);
	nk = bmark_keys(&b, keys);
	FUZZ_ASSERT(nk == (b.n > 0 ? 2 * b.n + 1 : 0));
	FUZZ_ASSERT(nk == 0 || keys[nk - 1] == BMARK_MARKER);
	free(keys);
	free(sorted);
	free(text);
	bmark_free(&b);
	bmark_free(&t);
	bmark_free(&f);
	bmark_free(&ft);
}

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
	fuzz_markov(m, n);
	mime_free(m);
	return 0;
}
