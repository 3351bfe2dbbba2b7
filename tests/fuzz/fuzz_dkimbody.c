/* fuzz_dkimbody.c -- the DKIM body hash (policy/dkimbody.h) against a
 * plain reference written here from RFC 6376 3.4.3/3.4.4, one octet at a
 * time: dkimbody's fast paths (verbatim lines hashed in place, eight
 * octets per step, the copy buffer's edges) must give the same digest for
 * every body, canonicalization and l=. Input: byte 0 picks the
 * canonicalization and whether l= applies, bytes 1-2 the limit, the rest
 * is the body. */
#include "fuzz.h"
#include "policy/dkimbody.h"

#define WSP(c)	((c) == ' ' || (c) == '\t')

/* The canonical form of b[0..n) into out (room for 2n + 2); its length. */
static size_t
ref_relaxed(const char *b, size_t n, char *out)
{
	size_t o = 0, empty = 0, i = 0;

	while (i < n) {
		size_t s = i, e, le;
		while (i < n && !(b[i] == '\r' && i + 1 < n && b[i + 1] == '\n'))
			i++;
		e = i;			/* the line is b[s..e) */
		i = i < n ? i + 2 : n;
		le = e;
		while (le > s && WSP(b[le - 1]))
			le--;
		if (le == s) {
			empty++;
			continue;
		}
		for (; empty > 0; empty--) {
			out[o++] = '\r';
			out[o++] = '\n';
		}
		for (size_t k = s; k < le; k++) {
			if (WSP(b[k])) {
				if (k == s || !WSP(b[k - 1]))
					out[o++] = ' ';
			} else
				out[o++] = b[k];
		}
		out[o++] = '\r';
		out[o++] = '\n';
	}
	return o;
}

static size_t
ref_simple(const char *b, size_t n, char *out)
{
	while (n >= 4 && memcmp(b + n - 4, "\r\n\r\n", 4) == 0)
		n -= 2;
	memcpy(out, b, n);
	if (n < 2 || memcmp(b + n - 2, "\r\n", 2) != 0) {
		out[n++] = '\r';
		out[n++] = '\n';
	}
	return n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	unsigned char got[EVP_MAX_MD_SIZE], want[EVP_MAX_MD_SIZE];
	unsigned int ng, nw = 0;
	enum dkimbody_canon canon;
	long long limit = -1;
	const char *body;
	char *ref;
	size_t len, rlen;

	if (n < 3)
		return 0;
	canon = (d[0] & 1) ? DKIMBODY_RELAXED : DKIMBODY_SIMPLE;
	if (d[0] & 2)
		limit = (long long)(d[1] | d[2] << 8);
	body = (const char *)d + 3;
	len = n - 3;
	ref = malloc(2 * len + 2);
	FUZZ_ASSERT(ref != NULL);
	rlen = canon == DKIMBODY_RELAXED ? ref_relaxed(body, len, ref) :
	    ref_simple(body, len, ref);
	if (limit >= 0 && (size_t)limit < rlen)
		rlen = (size_t)limit;
	FUZZ_ASSERT(EVP_Digest(ref, rlen, want, &nw, EVP_sha256(), NULL) == 1);
	ng = dkimbody_hash(body, len, canon, limit, EVP_sha256(), got);
	FUZZ_ASSERT(ng == nw && memcmp(got, want, nw) == 0);
	free(ref);
	return 0;
}
