/* regress_test.c -- one case per crash or hang the fuzzers in tests/fuzz/
 * found, with the input class in the name; `make unit-asan` runs them
 * under ASan+UBSan, where an out-of-bounds read fails loudly. An alarm
 * turns a hang into a failure. */
#include "authres.h"
#include "be.h"
#include "conf.h"
#include "policy.h"
#include "t.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* be_ehlo_caps() on a heap copy, so ASan sees the exact end. */
static unsigned
caps_of(const char *text, unsigned *xc, unsigned *xf)
{
	char *s = xstrdup(text);
	unsigned caps = be_ehlo_caps(s, xc, xf);

	free(s);
	return caps;
}

/* fuzz_be: an EHLO reply line shorter than "250-" made the keyword
 * pointer step past the end of the text (heap-buffer-overflow). */
T_CASE(be_ehlo_short_line)
{
	unsigned xc, xf;

	T_EQ_INT(caps_of("250-mx\r\nh\r\n", &xc, &xf), 0);
	T_EQ_INT(caps_of("250-mx\r\n250\r\n", &xc, &xf), 0);
	T_EQ_INT(caps_of("250-mx\r\n25\r\n250 DSN\r\n", &xc, &xf), BE_CAP_DSN);
}

/* fuzz_be: a bare CR among the XCLIENT/XFORWARD attributes stopped the
 * attribute scan from advancing (endless loop in the event loop thread). */
T_CASE(be_ehlo_xclient_bare_cr)
{
	unsigned xc, xf;

	T_EQ_INT(caps_of("250-mx\r\n250-XCLIENT NAME\rADDR PORT\r\n250 OK\r\n", &xc, &xf),
	    BE_CAP_XCLIENT);
	T_EQ_INT(xc, BE_XA_NAME | BE_XA_ADDR | BE_XA_PORT);
	T_EQ_INT(caps_of("250-mx\r\n250 XFORWARD \r\r\r\n", &xc, &xf), BE_CAP_XFORWARD);
	T_EQ_INT(xf, 0);
}

/* Review of authres.c: comments nested deeper than a fixed cap made the
 * authserv-id unreadable, so a forged field claiming our host name behind
 * 40 levels of "(" was relayed (fail-open of RFC 8601 5 hygiene). */
T_CASE(authres_deep_comment_forgery)
{
	char hdr[512], id[AUTHRES_SERVID_MAX + 1];
	struct pol_skip *sk = NULL;
	size_t o = 0;

	o += (size_t)snprintf(hdr + o, sizeof(hdr) - o, "Authentication-Results: ");
	for (int i = 0; i < 40; i++)
		hdr[o++] = '(';
	for (int i = 0; i < 40; i++)
		hdr[o++] = ')';
	o += (size_t)snprintf(hdr + o, sizeof(hdr) - o, " mx.example.org; spf=pass\r\n\r\n");
	T_EQ_INT(authres_servid(hdr + 23, o - 23, id, sizeof(id)), 0);
	T_EQ_STR(id, "mx.example.org");
	T_EQ_INT(authres_skips(hdr, o, "mx.example.org", &sk), 1);
	T_ASSERT(sk != NULL && sk[0].off == 0 && sk[0].len == o - 2);
	free(sk);
}

/* Load text as a config; returns the conf or NULL with *errs. */
static struct conf *
load_text(const char *text, struct conf_err **errs, int *nerrs)
{
	char path[] = "/tmp/postern-regress-XXXXXX";
	int fd = mkstemp(path);
	struct conf *c;

	if (fd == -1 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		abort();
	close(fd);
	c = conf_load(path, errs, nerrs);
	unlink(path);
	return c;
}

/* Review of conf.c: a line longer than inih's 200-byte buffer came back
 * as two lines, so the tail of a long comment was read as a key (a
 * commented-out setting came alive) and line numbers went wrong. */
T_CASE(conf_long_line_split)
{
	char text[600];
	struct conf_err *errs = NULL;
	int nerrs = 0;
	struct conf *c;

	/* The tail after byte 199 would be "hostname = evil.example". */
	snprintf(text, sizeof(text), "[proxy]\n# %-197shostname = evil.example\n"
	    "max_received = 7\n", "padding");
	c = load_text(text, &errs, &nerrs);
	T_ASSERT(c == NULL);
	T_EQ_INT(nerrs, 1);
	T_ASSERT(nerrs >= 1 && errs[0].line == 2 &&
	    strstr(errs[0].msg, "longer than") != NULL);
	if (c != NULL)
		conf_unref(c);
	free(errs);
	errs = NULL;
	c = load_text("[proxy]\nmax_received = 7\n", &errs, &nerrs);
	T_ASSERT(c != NULL && c->max_received == 7);
	if (c != NULL)
		conf_unref(c);
	free(errs);
}

/* Review of util.c: a size or time with a unit multiplied past
 * LLONG_MAX ("9999999999g", signed overflow, UB; a wrapped value could
 * pass the range check). */
T_CASE(parse_scaled_overflow)
{
	long long v = 0;

	T_EQ_INT(parse_bytes("9999999999999g", &v), -1);
	T_EQ_INT(parse_seconds("99999999999999999w", &v), -1);
	T_EQ_INT(parse_bytes("8589934591g", &v), 0);	/* (2^63-1)/2^30 */
	T_EQ_INT(v, 8589934591LL << 30);
	T_EQ_INT(parse_bytes("8589934592g", &v), -1);
	T_EQ_INT(parse_seconds("2w", &v), 0);
	T_EQ_INT(v, 1209600);
}

int
main(void)
{
	alarm(20);
	T_RUN(be_ehlo_short_line);
	T_RUN(be_ehlo_xclient_bare_cr);
	T_RUN(authres_deep_comment_forgery);
	T_RUN(conf_long_line_split);
	T_RUN(parse_scaled_overflow);
	return T_END();
}
