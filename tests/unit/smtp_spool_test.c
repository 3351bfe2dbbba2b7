/* smtp_spool_test.c -- DATA parsing: end of data, unstuffing, smuggling
 * variants, bare LF/CR (reject and normalize), size and loop limits, the
 * file spool, and the dot-stuffed stream to the backend. */
#include "lib/conf.h"
#include "policy/policy.h"
#include "proxy/spool.h"
#include "t.h"
#include "lib/util.h"

#include <stdlib.h>
#include <sys/stat.h>

/* Feed s (length n) in chunks of `chunk` bytes; returns bytes consumed at
 * the end of data, or -1 when no end was found. The stored message goes
 * into out (NUL-terminated, malloc'd). */
static long
feed(struct spool *sp, const char *s, size_t n, size_t chunk, char **out)
{
	size_t off = 0;
	int done = 0;
	long end = -1;

	while (off < n && !done) {
		size_t k = n - off < chunk ? n - off : chunk;
		size_t used = spool_feed(sp, s + off, k, &done);
		if (done)
			end = (long)(off + used);
		off += done ? used : k;
	}
	if (out != NULL) {
		struct pol_msg m;
		if (spool_map(sp, &m) == -1)
			abort();
		*out = xstrndup(m.data, m.len);
	}
	return end;
}

static struct conf *
mkconf(int normalize)
{
	struct conf *c = conf_defaults();

	c->bare_lf = normalize ? CONF_BARE_LF_NORMALIZE : CONF_BARE_LF_REJECT;
	return c;
}

/* Run one input with every chunk size 1..7 and whole; all must agree. */
static void
check(int normalize, const char *in, long want_end, const char *want_msg,
    enum spool_err want_err)
{
	static const size_t chunks[] = { 1, 2, 3, 5, 7, 100000 };
	struct conf *c = mkconf(normalize);

	for (size_t i = 0; i < ARRAY_SIZE(chunks); i++) {
		struct spool *sp = spool_new(c);
		char *msg = NULL;
		long end = feed(sp, in, strlen(in), chunks[i], want_end >= 0 ? &msg : NULL);
		T_EQ_INT(end, want_end);
		if (want_end >= 0) {
			T_EQ_INT(spool_error(sp), want_err);
			if (want_msg != NULL)
				T_EQ_STR(msg, want_msg);
		}
		free(msg);
		spool_free(sp);
	}
	conf_unref(c);
}

T_CASE(simple_end)
{
	check(0, "Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n", 23,
	    "Subject: x\r\n\r\nbody\r\n", SPOOL_OK);
}

T_CASE(empty_message)
{
	check(0, ".\r\nNOOP\r\n", 3, "", SPOOL_OK);
}

T_CASE(unstuffing)
{
	check(0, "..leading\r\n...\r\n.x\r\n.\r\n", 23, ".leading\r\n..\r\nx\r\n", SPOOL_OK);
}

T_CASE(smuggling_lf_dot_lf)
{
	/* none of these may end data; with reject they make it fail later */
	check(0, "a\n.\nMAIL FROM:<x@y>\r\n.\r\n", 24, NULL, SPOOL_E_BARE);
	check(0, "a\r.\rb\r\n.\r\n", 10, NULL, SPOOL_E_BARE);
	check(0, "a\r\n.\nb\r\n.\r\n", 11, NULL, SPOOL_E_BARE);
	check(0, "a\n.\r\nb\r\n.\r\n", 11, NULL, SPOOL_E_BARE);
	check(0, "a\r.\r\nb\r\n.\r\n", 11, NULL, SPOOL_E_BARE);
}

T_CASE(smuggling_without_end_needs_more)
{
	check(0, "a\n.\n", -1, NULL, SPOOL_OK);
	check(0, "a\r\n.\n", -1, NULL, SPOOL_OK);
	check(0, "a\n.\r\n", -1, NULL, SPOOL_OK);
	check(0, "a\r.\r\n", -1, NULL, SPOOL_OK);
	check(1, "a\n.\r\n", -1, NULL, SPOOL_OK);
}

T_CASE(normalize_bare_lf_and_cr)
{
	/* the dot after a bare LF is content, so it is kept literally (and
	 * stuffed again towards the backend) */
	check(1, "a\nb\rc\r\n.\n\r\n.\r\n", 14, "a\r\nb\r\nc\r\n\r\n\r\n", SPOOL_OK);
	check(1, "x\n.\r\ny\r\n.\r\n", 11, "x\r\n.\r\ny\r\n", SPOOL_OK);
}

T_CASE(size_limit)
{
	struct conf *c = mkconf(0);
	struct spool *sp;
	char *big = xmalloc(3000), *msg;

	c->max_message_size = 1024;
	memset(big, 'x', 2990);
	memcpy(big + 2990, "\r\n.\r\n", 6);
	sp = spool_new(c);
	T_EQ_INT(feed(sp, big, strlen(big), 512, &msg), (long)strlen(big));
	T_EQ_INT(spool_error(sp), SPOOL_E_SIZE);
	T_EQ_INT(spool_size(sp), 2992);
	free(msg);
	spool_free(sp);
	free(big);
	conf_unref(c);
}

T_CASE(received_loop)
{
	struct conf *c = mkconf(0);
	struct spool *sp;
	char *m = xstrdup(""), *msg;

	c->max_received = 3;
	for (int i = 0; i < 4; i++) {
		char *n = xasprintf("%sReceived: from h%d\r\n", m, i);
		free(m);
		m = n;
	}
	/* Received: in the body does not count */
	char *in = xasprintf("%s\r\nReceived: body\r\n.\r\n", m);
	sp = spool_new(c);
	feed(sp, in, strlen(in), 4, &msg);
	T_EQ_INT(spool_received(sp), 4);
	T_EQ_INT(spool_error(sp), SPOOL_E_LOOP);
	spool_free(sp);
	free(msg);
	free(in);
	/* exactly at the limit is fine */
	in = xstrdup("Received: a\r\nRECEIVED: b\r\nreceived:c\r\nX-Received: d\r\n\r\n.\r\n");
	sp = spool_new(c);
	feed(sp, in, strlen(in), 3, &msg);
	T_EQ_INT(spool_received(sp), 3);
	T_EQ_INT(spool_error(sp), SPOOL_OK);
	spool_free(sp);
	free(msg);
	free(in);
	free(m);
	conf_unref(c);
}

T_CASE(file_spool)
{
	struct conf *c = mkconf(0);
	struct spool *sp;
	size_t n = 200000;
	char *in = xmalloc(n + 16), *msg;

	free(c->spool_dir);
	c->spool_dir = xstrdup("/tmp");
	c->spool_memory = 4096;
	for (size_t i = 0; i < n; i++)
		in[i] = (i % 100 == 98) ? '\r' : (i % 100 == 99) ? '\n' : 'a' + (char)(i % 26);
	memcpy(in + n, ".\r\n", 4);
	sp = spool_new(c);
	T_EQ_INT(feed(sp, in, n + 3, 8192, &msg), (long)n + 3);
	T_EQ_INT(spool_error(sp), SPOOL_OK);
	T_EQ_INT(strlen(msg), n);
	T_ASSERT(memcmp(msg, in, n) == 0);
	free(msg);
	spool_free(sp);
	/* an unusable spool dir is our failure (4xx), not the client's */
	free(c->spool_dir);
	c->spool_dir = xstrdup("/nonexistent/postern");
	sp = spool_new(c);
	feed(sp, in, n + 3, 65536, NULL);
	T_EQ_INT(spool_error(sp), SPOOL_E_IO);
	spool_free(sp);
	free(in);
	conf_unref(c);
}

/* The stream to the backend, produced in chunks of k bytes. */
static char *
out_all(const char *prepend, const char *msg, const struct pol_skip *skip, int nskip,
    size_t k)
{
	struct pol_msg m = { msg, strlen(msg) };
	struct spool_out o;
	char *buf = xcalloc(1, 65536);
	size_t w = 0, n;

	spool_out_init(&o, prepend, &m, skip, nskip);
	while ((n = spool_out_fill(&o, buf + w, k)) > 0 && w < 60000)
		w += n;
	return buf;
}

T_CASE(stuffing_out)
{
	static const size_t ks[] = { 8, 9, 13, 4096 };

	for (size_t i = 0; i < ARRAY_SIZE(ks); i++) {
		char *o = out_all("X-A: 1\r\n", ".a\r\nb\r\n.\r\n..\r\n", NULL, 0, ks[i]);
		T_EQ_STR(o, "X-A: 1\r\n..a\r\nb\r\n..\r\n...\r\n.\r\n");
		free(o);
		o = out_all(NULL, "", NULL, 0, ks[i]);
		T_EQ_STR(o, ".\r\n");
		free(o);
		o = out_all(NULL, "no newline", NULL, 0, ks[i]);
		T_EQ_STR(o, "no newline\r\n.\r\n");
		free(o);
	}
}

T_CASE(skip_ranges)
{
	/* drop "DKIM: x\r\n" (off 0, len 9) and "c\r\n" */
	static const struct pol_skip sk[] = { { 0, 9 }, { 12, 3 } };
	const char *msg = "DKIM: x\r\nb\r\nc\r\n.d\r\n";
	char *o = out_all("H: 1\r\n", msg, sk, 2, 8);

	T_EQ_STR(o, "H: 1\r\nb\r\n..d\r\n.\r\n");
	free(o);
}

int
main(void)
{
	T_RUN(simple_end);
	T_RUN(empty_message);
	T_RUN(unstuffing);
	T_RUN(smuggling_lf_dot_lf);
	T_RUN(smuggling_without_end_needs_more);
	T_RUN(normalize_bare_lf_and_cr);
	T_RUN(size_limit);
	T_RUN(received_loop);
	T_RUN(file_spool);
	T_RUN(stuffing_out);
	T_RUN(skip_ranges);
	return T_END();
}
