/* fuzz_spool.c -- the DATA phase (proxy/spool.h): end of data, unstuffing,
 * bare LF/CR, size and Received limits, and the dot-stuffed stream back out.
 * Knob bytes: [0] bit 0 normalize, bit 1 spill to a file after 64 bytes,
 * bits 2-3 a small max_message_size, bits 4-7 max_received; [1] chunk size.
 * Round trip: what spool_out produces, fed into a new spool, must store
 * exactly the prepended header plus the first message without the
 * Authentication-Results fields of "mx" (the skip ranges policy hands the
 * proxy) -- a difference is a smuggling, stuffing or skipping bug. */
#include "policy/authres.h"
#include "lib/conf.h"
#include "fuzz.h"
#include "policy/policy.h"
#include "proxy/spool.h"
#include "lib/util.h"

#define PREPEND	"X-Fuzz: 1\r\n"

static struct conf *
mkconf(unsigned k)
{
	struct conf *c = conf_defaults();

	c->bare_lf = (k & 1) ? CONF_BARE_LF_NORMALIZE : CONF_BARE_LF_REJECT;
	if (k & 2) {
		c->spool_memory = 64;
		free(c->spool_dir);
		c->spool_dir = xstrdup("/tmp");
	}
	if (k & 12)
		c->max_message_size = 256 << ((k >> 2) & 3);
	c->max_received = 1 + (int)(k >> 4);
	return c;
}

/* Feed in chunks; returns bytes up to the end of data or -1. */
static long
feed(struct spool *sp, const uint8_t *d, size_t n, size_t chunk)
{
	size_t off = 0;
	int done = 0;

	while (off < n) {
		size_t k = n - off < chunk ? n - off : chunk;
		size_t used = spool_feed(sp, (const char *)d + off, k, &done);
		if (done) {
			FUZZ_ASSERT(used >= 1 && used <= k);
			return (long)(off + used);
		}
		FUZZ_ASSERT(used == 0);
		off += k;
	}
	return -1;
}

/* The message as the backend should get it: without the skipped ranges. */
static char *
expected(const struct pol_msg *m, const struct pol_skip *sk, int nsk, size_t *len)
{
	char *e = xmalloc(m->len + 1);
	size_t pos = 0, o = 0;

	for (int i = 0; i < nsk; i++) {
		memcpy(e + o, m->data + pos, sk[i].off - pos);
		o += sk[i].off - pos;
		pos = sk[i].off + sk[i].len;
	}
	memcpy(e + o, m->data + pos, m->len - pos);
	*len = o + m->len - pos;
	return e;
}

static void
round_trip(struct conf *c, const struct pol_msg *m)
{
	struct spool_out o;
	char buf[64];
	size_t cap = 2 * (m->len + sizeof(PREPEND)) + 16, len = 0, k, wantlen;
	char *out = xmalloc(cap), *want;
	struct pol_skip *sk = NULL;
	int nsk = authres_skips(m->data, m->len, "mx", &sk);
	struct spool *sp2;
	struct pol_msg m2;

	want = expected(m, sk, nsk, &wantlen);
	spool_out_init(&o, PREPEND, m, sk, nsk);
	while ((k = spool_out_fill(&o, buf, 8 + (len % 50))) > 0) {
		FUZZ_ASSERT(len + k <= cap);
		memcpy(out + len, buf, k);
		len += k;
	}
	c->max_message_size = 1LL << 40;
	c->max_received = 1000;
	sp2 = spool_new(c);
	FUZZ_ASSERT(feed(sp2, (const uint8_t *)out, len, 4096) == (long)len);
	FUZZ_ASSERT(spool_error(sp2) == SPOOL_OK);
	FUZZ_ASSERT(spool_map(sp2, &m2) == 0);
	FUZZ_ASSERT(m2.len == wantlen + strlen(PREPEND));
	FUZZ_ASSERT(memcmp(m2.data, PREPEND, strlen(PREPEND)) == 0);
	FUZZ_ASSERT(memcmp(m2.data + strlen(PREPEND), want, wantlen) == 0);
	spool_free(sp2);
	free(want);
	free(sk);
	free(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	unsigned k = fuzz_byte(&d, &n);
	size_t chunk = 1 + fuzz_byte(&d, &n) * 16;
	struct conf *c = mkconf(k);
	struct spool *sp = spool_new(c);
	struct pol_msg m;
	long end = feed(sp, d, n, chunk);

	if (end >= 0 && spool_error(sp) == SPOOL_OK) {
		FUZZ_ASSERT(spool_map(sp, &m) == 0);
		FUZZ_ASSERT(m.len == spool_size(sp));
		/* Unstuffing only shrinks; normalizing bare LF/CR may grow. */
		if (c->bare_lf == CONF_BARE_LF_REJECT)
			FUZZ_ASSERT(m.len <= (size_t)end);
		round_trip(c, &m);
	}
	if (spool_error(sp) == SPOOL_E_SIZE)
		FUZZ_ASSERT(spool_size(sp) > (size_t)c->max_message_size);
	spool_free(sp);
	conf_unref(c);
	return 0;
}
