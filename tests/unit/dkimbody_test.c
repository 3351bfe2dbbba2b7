/*
 * dkimbody_test.c -- DKIM body canonicalization and hash against the
 * canonical forms RFC 6376 spells out (3.4.3-3.4.5 and its example), each
 * digested here with OpenSSL directly: the test states what the canonical
 * text is, not what its hash happens to be. Signed mail from a real
 * signer (dkimpy) is verified end to end in tests/integration/test_dkim.py.
 */
#include "t.h"
#include "policy/dkimbody.h"

#include <stdio.h>
#include <string.h>

/* 1 when dkimbody_hash(body, canon, limit) is the SHA-256 of want. */
static int
hashes_to(const char *body, enum dkimbody_canon canon, long long limit,
    const char *want)
{
	unsigned char a[EVP_MAX_MD_SIZE], b[EVP_MAX_MD_SIZE];
	unsigned int na = dkimbody_hash(body, strlen(body), canon, limit, EVP_sha256(), a);
	unsigned int nb = 0;

	if (EVP_Digest(want, strlen(want), b, &nb, EVP_sha256(), NULL) != 1)
		return 0;
	return na == 32 && na == nb && memcmp(a, b, na) == 0;
}

/* RFC 6376 3.4.5, the body of the example. */
static const char rfc_body[] = " C \r\nD \t E\r\n\r\n\r\n";

T_CASE(rfc6376_example)
{
	T_ASSERT(hashes_to(rfc_body, DKIMBODY_RELAXED, -1, " C\r\nD E\r\n"));
	T_ASSERT(hashes_to(rfc_body, DKIMBODY_SIMPLE, -1, " C \r\nD \t E\r\n"));
	/* and not the other way round */
	T_ASSERT(!hashes_to(rfc_body, DKIMBODY_RELAXED, -1, " C \r\nD \t E\r\n"));
}

T_CASE(empty_bodies)
{
	/* 3.4.3: simple makes an empty body one CRLF; 3.4.4: relaxed leaves
	 * it empty. Only empty (or blank) lines count as empty. */
	T_ASSERT(hashes_to("", DKIMBODY_SIMPLE, -1, "\r\n"));
	T_ASSERT(hashes_to("\r\n\r\n\r\n", DKIMBODY_SIMPLE, -1, "\r\n"));
	T_ASSERT(hashes_to("", DKIMBODY_RELAXED, -1, ""));
	T_ASSERT(hashes_to("\r\n \t\r\n\r\n", DKIMBODY_RELAXED, -1, ""));
	/* simple keeps a line of blanks: it is not empty */
	T_ASSERT(hashes_to(" \r\n\r\n", DKIMBODY_SIMPLE, -1, " \r\n"));
}

T_CASE(inner_empty_lines_stay)
{
	const char *b = "a\r\n\r\n \r\nb\r\n\r\n";

	T_ASSERT(hashes_to(b, DKIMBODY_RELAXED, -1, "a\r\n\r\n\r\nb\r\n"));
	T_ASSERT(hashes_to(b, DKIMBODY_SIMPLE, -1, "a\r\n\r\n \r\nb\r\n"));
}

T_CASE(missing_final_crlf_is_added)
{
	T_ASSERT(hashes_to("abc", DKIMBODY_SIMPLE, -1, "abc\r\n"));
	T_ASSERT(hashes_to("a  b\t", DKIMBODY_RELAXED, -1, "a b\r\n"));
}

T_CASE(only_crlf_ends_a_line)
{
	/* a bare CR or LF is an octet like any other (no FIXCRLF) */
	T_ASSERT(hashes_to("a\rb\nc\r\n", DKIMBODY_RELAXED, -1, "a\rb\nc\r\n"));
	T_ASSERT(hashes_to("a \r\r\n", DKIMBODY_RELAXED, -1, "a \r\r\n"));
}

T_CASE(leading_and_inner_wsp_become_one_sp)
{
	T_ASSERT(hashes_to("\t\t x \t y  \r\n", DKIMBODY_RELAXED, -1, " x y\r\n"));
}

T_CASE(wsp_runs_found_at_every_offset)
{
	/* lines that need changing are told from lines that do not eight
	 * octets at a time: put the change at every offset, across the
	 * word edges, and next to a line left as it is */
	char body[128], want[128];

	for (int k = 0; k < 26; k++) {
		const char *run[] = { "  ", "\t", " \t", "   " };
		for (size_t r = 0; r < sizeof(run) / sizeof(run[0]); r++) {
			snprintf(body, sizeof(body), "plain line here\r\n%.*s%sy\r\n",
			    k, "abcdefghijklmnopqrstuvwxyz", run[r]);
			snprintf(want, sizeof(want), "plain line here\r\n%.*s y\r\n",
			    k, "abcdefghijklmnopqrstuvwxyz");
			T_ASSERT(hashes_to(body, DKIMBODY_RELAXED, -1, want));
		}
		/* single spaces stay where they are */
		snprintf(body, sizeof(body), "%.*s a b\r\n", k, "abcdefghijklmnopqrstuvwxyz");
		T_ASSERT(hashes_to(body, DKIMBODY_RELAXED, -1, body));
	}
}

T_CASE(length_limit_counts_canonical_octets)
{
	/* l= counts the canonical form: "a b\r\n" is 5 octets */
	T_ASSERT(hashes_to("a    b\r\nmore\r\n", DKIMBODY_RELAXED, 5, "a b\r\n"));
	T_ASSERT(hashes_to("a    b\r\nmore\r\n", DKIMBODY_RELAXED, 3, "a b"));
	T_ASSERT(hashes_to("a    b\r\n", DKIMBODY_SIMPLE, 4, "a   "));
	T_ASSERT(hashes_to("a\r\n", DKIMBODY_RELAXED, 0, ""));
	/* a limit past the end takes all of it */
	T_ASSERT(hashes_to("a\r\n", DKIMBODY_RELAXED, 100, "a\r\n"));
}

T_CASE(long_lines_cross_the_buffer)
{
	/* lines far longer than the internal buffer, with runs of WSP
	 * falling on its edges */
	static char body[20000], want[20000];
	size_t n = 0, m = 0;

	for (int i = 0; i < 3000; i++) {
		body[n++] = 'x';
		body[n++] = ' ';
		body[n++] = '\t';
		body[n++] = ' ';
		want[m++] = 'x';
		want[m++] = ' ';
		if (i % 700 == 699) {
			memcpy(body + n, "\r\n", 2);
			n += 2;
			m--;	/* trailing WSP of the line goes */
			memcpy(want + m, "\r\n", 2);
			m += 2;
		}
	}
	memcpy(body + n, "y\r\n", 4);
	memcpy(want + m, "y\r\n", 4);
	T_ASSERT(hashes_to(body, DKIMBODY_RELAXED, -1, want));
	T_ASSERT(hashes_to(body, DKIMBODY_SIMPLE, -1, body));
}

int
main(void)
{
	T_RUN(rfc6376_example);
	T_RUN(empty_bodies);
	T_RUN(inner_empty_lines_stay);
	T_RUN(missing_final_crlf_is_added);
	T_RUN(only_crlf_ends_a_line);
	T_RUN(leading_and_inner_wsp_become_one_sp);
	T_RUN(wsp_runs_found_at_every_offset);
	T_RUN(length_limit_counts_canonical_octets);
	T_RUN(long_lines_cross_the_buffer);
	return T_END();
}
