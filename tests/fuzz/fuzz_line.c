/* fuzz_line.c -- the SMTP line finder and the growable buffer behind it
 * (proxy/line.h). Knob byte: the line bound (64..1087). The input is fed
 * through a struct buf in chunks and split with line_find() as the session
 * does; every line found must lie inside what was buffered. */
#include "fuzz.h"
#include "lib/buf.h"
#include "proxy/line.h"

static void
drain(struct buf *b, size_t max)
{
	for (int guard = 0; guard < 100000; guard++) {
		size_t ll = 0;
		long r = line_find(buf_ptr(b), b->len, max, &ll);

		if (r == 0)
			return;
		if (r < 0) {
			FUZZ_ASSERT(b->len >= max);
			buf_drop(b, b->len);
			return;
		}
		FUZZ_ASSERT((size_t)r <= b->len);
		FUZZ_ASSERT(ll < (size_t)r);
		FUZZ_ASSERT(buf_ptr(b)[r - 1] == '\n');
		buf_drop(b, (size_t)r);
	}
	FUZZ_ASSERT(!"line_find made no progress");
}

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	size_t max = 64 + 4 * fuzz_byte(&d, &n);
	size_t chunk = 1 + fuzz_byte(&d, &n);
	struct buf b = { 0 };

	for (size_t off = 0; off < n; off += chunk) {
		size_t k = n - off < chunk ? n - off : chunk;
		if (off & 1) {
			buf_add(&b, d + off, k);
		} else {
			memcpy(buf_space(&b, k), d + off, k);
			buf_commit(&b, k);
		}
		drain(&b, max);
	}
	buf_free(&b);
	return 0;
}
