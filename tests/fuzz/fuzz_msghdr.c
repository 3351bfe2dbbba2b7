/* fuzz_msghdr.c -- the header field walker (policy/msghdr.h). Every field
 * must lie inside the message, fields must follow one another, and the
 * walk must end. */
#include "fuzz.h"
#include "policy/msghdr.h"

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	const char *msg = (const char *)d;
	struct msghdr_field f;
	size_t pos = 0, prev_end = 0;
	int count = 0;

	while (msghdr_next(msg, n, &pos, &f) == 1) {
		FUZZ_ASSERT(++count <= (int)n + 1);
		FUZZ_ASSERT(f.off >= prev_end && f.len > 0 && f.off + f.len <= n);
		FUZZ_ASSERT(pos >= f.off + f.len && pos <= n);
		prev_end = f.off + f.len;
		if (f.name != NULL) {
			FUZZ_ASSERT(f.name >= msg + f.off && f.name + f.namelen <= msg + n);
			FUZZ_ASSERT(f.value >= f.name && f.value + f.valuelen <= msg + f.off + f.len);
			char *u = msghdr_unfold(&f);
			FUZZ_ASSERT(strlen(u) <= f.valuelen);
			free(u);
			(void)msghdr_is(&f, "From");
		}
	}
	return 0;
}
