/*
 * dkim_test.c -- the dkim check without a DNS server: the RFC 8601 result
 * mapping of libopendkim's signature errors, an unsigned message, a
 * malformed signature, and a key lookup that cannot be answered (resolver
 * not started) which must be temperror -- never pass, never permerror;
 * and the decoded-key cache behind d2i_PUBKEY_bio (same bytes, same key;
 * the BIO consumed as OpenSSL would; bad bytes no key).
 * Real signatures against real DNS are in tests/integration/test_dkim.py.
 */
#include "t.h"
#include "lib/conf.h"
#include "policy/dkim.h"
#include "policy/policy_int.h"
#include "lib/util.h"

#include <opendkim/dkim.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <netinet/in.h>

static struct pol_session *
session(struct conf *c)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };

	sin.sin_addr.s_addr = htonl(0xc0000201);
	return pol_session_new(c, "T", (struct sockaddr *)&sin, sizeof(sin));
}

static const struct pol_result *
run(struct pol_session *ps, const char *msg)
{
	struct pol_msg m = { msg, strlen(msg) };

	pol_tx_begin(ps, "a@example.org", "");
	dkim_check.run(ps, POL_DATA, &m);
	return pol_result_find(ps, "dkim");
}

/* A fresh RSA key's SubjectPublicKeyInfo in buf (with `extra` zero bytes
 * after it); its length without them. */
static int
spki(EVP_PKEY **pk, unsigned char *buf, size_t bufsz, int extra)
{
	unsigned char *der = NULL;
	int n;

	*pk = EVP_RSA_gen(1024);
	if (*pk == NULL || (n = i2d_PUBKEY(*pk, &der)) <= 0 || (size_t)(n + extra) > bufsz)
		return -1;
	memcpy(buf, der, (size_t)n);
	memset(buf + n, 0, (size_t)extra);
	OPENSSL_free(der);
	return n;
}

static EVP_PKEY *
decode(const unsigned char *buf, int len, int *left)
{
	BIO *b = BIO_new_mem_buf(buf, len);
	EVP_PKEY *pk = d2i_PUBKEY_bio(b, NULL);

	*left = (int)BIO_pending(b);
	BIO_free(b);
	return pk;
}

T_CASE(decoded_keys_are_cached_by_their_bytes)
{
	unsigned char a[2048], b[2048], junk[64];
	EVP_PKEY *ka, *kb, *k1, *k2, *k3, *k4;
	int na = spki(&ka, a, sizeof(a), 1), nb = spki(&kb, b, sizeof(b), 0), left;

	T_ASSERT(na > 0 && nb > 0);
	k1 = decode(a, na, &left);
	T_ASSERT(k1 != NULL);
	T_EQ_INT(left, 0);
	T_EQ_INT(EVP_PKEY_eq(k1, ka), 1);
	k2 = decode(a, na, &left);
	T_ASSERT(k2 == k1);			/* the cached key, a new reference */
	k3 = decode(b, nb, &left);
	T_ASSERT(k3 != NULL && k3 != k1);
	T_EQ_INT(EVP_PKEY_eq(k3, kb), 1);
	k4 = decode(a, na + 1, &left);		/* other bytes: decoded on its own */
	T_ASSERT(k4 != NULL);
	T_EQ_INT(left, 1);			/* the trailing byte is not read */
	T_EQ_INT(EVP_PKEY_eq(k4, ka), 1);
	memset(junk, 0x30, sizeof(junk));
	T_ASSERT(decode(junk, (int)sizeof(junk), &left) == NULL);
	EVP_PKEY_free(k1);
	EVP_PKEY_free(k2);
	EVP_PKEY_free(k3);
	EVP_PKEY_free(k4);
	EVP_PKEY_free(ka);
	EVP_PKEY_free(kb);
}

T_CASE(sigerror_mapping)
{
	T_EQ_STR(authres_result_name(dkim_sigerror_result(DKIM_SIGERROR_NOKEY)), "permerror");
	T_EQ_STR(authres_result_name(dkim_sigerror_result(DKIM_SIGERROR_KEYREVOKED)), "permerror");
	T_EQ_STR(authres_result_name(dkim_sigerror_result(DKIM_SIGERROR_KEYFAIL)), "temperror");
	T_EQ_STR(authres_result_name(dkim_sigerror_result(DKIM_SIGERROR_BADSIG)), "fail");
	T_EQ_STR(authres_result_name(dkim_sigerror_result(DKIM_SIGERROR_EXPIRED)), "policy");
	T_EQ_STR(authres_result_name(dkim_sigerror_result(DKIM_SIGERROR_KEYTOOSMALL)), "policy");
	T_EQ_STR(authres_result_name(dkim_sigerror_result(DKIM_SIGERROR_MISSING_B)), "neutral");
	T_EQ_STR(authres_result_name(dkim_sigerror_result(DKIM_SIGERROR_VERSION)), "neutral");
}

T_CASE(unsigned_is_none)
{
	struct conf *c = conf_defaults();
	struct pol_session *ps = session(c);
	const struct pol_result *r = run(ps, "From: a@example.org\r\nSubject: x\r\n\r\nbody\r\n");

	T_ASSERT(r != NULL);
	if (r != NULL) {
		T_EQ_STR(r->result, "none");
		T_ASSERT(r->score == 0);
	}
	pol_session_free(ps);
	conf_unref(c);
}

static const char signed_msg[] =
	"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org;\r\n"
	" s=sel; h=from:subject; bh=frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=;\r\n"
	" b=dGVzdA==\r\n"
	"From: a@example.org\r\nSubject: x\r\n\r\nbody\r\n";

T_CASE(unanswerable_key_is_temperror_and_scores_nothing)
{
	struct conf *c = conf_defaults();
	struct pol_session *ps = session(c);
	const struct pol_result *r;

	/* dns_init() was never called: every question is a temperror */
	r = run(ps, signed_msg);
	T_ASSERT(r != NULL);
	if (r != NULL) {
		T_EQ_STR(r->result, "temperror");
		T_ASSERT(strstr(r->authres, "header.d=example.org") != NULL);
		T_ASSERT(strstr(r->authres, "header.s=sel") != NULL);
	}
	T_ASSERT(ps->score == 0);
	pol_session_free(ps);
	conf_unref(c);
}

T_CASE(malformed_signature_is_neutral_and_scores_fail)
{
	struct conf *c = conf_defaults();
	struct pol_session *ps = session(c);
	const struct pol_result *r;

	/* v=2 is not DKIM version 1: a syntax problem, not a lookup */
	r = run(ps, "DKIM-Signature: v=2; a=rsa-sha256; d=example.org; s=sel;\r\n"
	    " h=from; bh=AAAA; b=AAAA\r\nFrom: a@example.org\r\n\r\nbody\r\n");
	T_ASSERT(r != NULL);
	if (r != NULL)
		T_EQ_STR(r->result, "neutral");
	T_ASSERT(ps->score == c->dkim_fail_score);
	/* no d= at all: still a signature (neutral), not "none" */
	r = run(ps, "DKIM-Signature: v=1; a=rsa-sha256; s=sel;\r\n"
	    " h=from; bh=AAAA; b=AAAA\r\nFrom: a@example.org\r\n\r\nbody\r\n");
	T_ASSERT(r != NULL);
	if (r != NULL)
		T_EQ_STR(r->result, "neutral");
	pol_session_free(ps);
	conf_unref(c);
}

T_CASE(hostile_tag_values_are_cleaned)
{
	struct conf *c = conf_defaults();
	struct pol_session *ps = session(c);
	const struct pol_result *r;

	/* tag values the message author wrote end up in our header */
	r = run(ps, "DKIM-Signature: v=1; a=rsa-sha256; d=exa\"(m)ple.org; s=s\\el;\r\n"
	    " h=from; bh=AAAA; b=A(A\"AA\r\nFrom: a@example.org\r\n\r\nbody\r\n");
	T_ASSERT(r != NULL && r->authres != NULL);
	if (r != NULL && r->authres != NULL) {
		T_ASSERT(strpbrk(r->authres, "()\"\\;\r\n") == NULL);
		T_ASSERT(strstr(r->authres, "header.d=example.org") != NULL);
		T_ASSERT(strstr(r->authres, "header.s=sel") != NULL);
	}
	pol_session_free(ps);
	conf_unref(c);
}

T_CASE(summary_one_word_per_check)
{
	struct conf *c = conf_defaults();
	struct pol_session *ps = session(c);
	char buf[256];

	pol_tx_begin(ps, "a@example.org", "");
	/* as pol_run() would mark them: transaction results */
	pol_result_add(ps, "dkim", "fail", 2, "", NULL)->stage = POL_DATA;
	pol_result_add(ps, "dkim", "pass", -0.5, "", NULL)->stage = POL_DATA;
	pol_result_add(ps, "dmarc", "pass", 0, "", NULL)->stage = POL_DATA;
	pol_summary(ps, buf, sizeof(buf));
	T_EQ_STR(buf, "dkim=pass dmarc=pass score=1.5");
	pol_tx_begin(ps, "a@example.org", "");
	pol_result_add(ps, "dkim", "permerror", 0, "", NULL);
	pol_result_add(ps, "dkim", "fail", 0, "", NULL);
	pol_summary(ps, buf, sizeof(buf));
	T_EQ_STR(buf, "dkim=permerror score=0.0");
	pol_session_free(ps);
	conf_unref(c);
}

T_CASE(authres_header_has_no_control_characters)
{
	struct conf *c = conf_defaults();
	struct pol_session *ps = session(c);
	struct pol_decision d;

	memset(&d, 0, sizeof(d));
	pol_tx_begin(ps, "a@example.org", "");
	pol_result_add(ps, "spf", "fail", 0, "smtp.mailfrom=a\r\nX-Evil: 1\t@x", NULL);
	pol_run(ps, POL_DATA, &(struct pol_msg){ "From: a@b.example\r\n\r\n", 21 }, &d);
	T_ASSERT(d.prepend != NULL);
	if (d.prepend != NULL) {
		T_ASSERT(strstr(d.prepend, "smtp.mailfrom=aX-Evil: 1@x") != NULL);
		T_ASSERT(strstr(d.prepend, "\r\nX-Evil") == NULL);
	}
	pol_decision_clear(&d);
	pol_session_free(ps);
	conf_unref(c);
}

int
main(void)
{
	log_init("dkim_test", 0);
	T_RUN(decoded_keys_are_cached_by_their_bytes);
	T_RUN(sigerror_mapping);
	T_RUN(unsigned_is_none);
	T_RUN(unanswerable_key_is_temperror_and_scores_nothing);
	T_RUN(malformed_signature_is_neutral_and_scores_fail);
	T_RUN(hostile_tag_values_are_cleaned);
	T_RUN(summary_one_word_per_check);
	T_RUN(authres_header_has_no_control_characters);
	return T_END();
}
