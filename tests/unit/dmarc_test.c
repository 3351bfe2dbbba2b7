/*
 * dmarc_test.c -- DMARC's pure parts: record parsing (RFC 7489 6.3, 6.4,
 * 6.6.3 step 6), the RFC5322.From domain (6.6.1), organizational domains
 * from the Public Suffix List and identifier alignment (3.1).
 */
#include "t.h"
#include "policy/dmarc.h"

static enum dmarc_rec_status
rec(const char *s, struct dmarc_record *r)
{
	return dmarc_record_parse(s, strlen(s), r);
}

T_CASE(record_basic)
{
	struct dmarc_record r;

	T_EQ_INT(rec("v=DMARC1; p=reject", &r), DMARC_REC_OK);
	T_EQ_INT(r.p, DMARC_P_REJECT);
	T_EQ_INT(r.sp, DMARC_P_UNSET);
	T_EQ_INT(r.pct, 100);
	T_EQ_INT(r.adkim_strict, 0);
	T_EQ_INT(r.aspf_strict, 0);
	T_EQ_INT(rec("v = DMARC1 ;p = Quarantine; sp=none; adkim=s; aspf=s; pct=20;", &r),
	    DMARC_REC_OK);
	T_EQ_INT(r.p, DMARC_P_QUARANTINE);
	T_EQ_INT(r.sp, DMARC_P_NONE);
	T_EQ_INT(r.adkim_strict, 1);
	T_EQ_INT(r.aspf_strict, 1);
	T_EQ_INT(r.pct, 20);
}

T_CASE(record_not_dmarc)
{
	struct dmarc_record r;

	T_EQ_INT(rec("v=spf1 -all", &r), DMARC_REC_NOT_DMARC);
	T_EQ_INT(rec("p=reject; v=DMARC1", &r), DMARC_REC_NOT_DMARC);
	T_EQ_INT(rec("v=dmarc1; p=reject", &r), DMARC_REC_NOT_DMARC);
	T_EQ_INT(rec("v=DMARC10; p=reject", &r), DMARC_REC_NOT_DMARC);
	T_EQ_INT(rec("", &r), DMARC_REC_NOT_DMARC);
}

T_CASE(record_invalid_p)
{
	struct dmarc_record r;

	T_EQ_INT(rec("v=DMARC1", &r), DMARC_REC_INVALID);
	T_EQ_INT(rec("v=DMARC1; p=bogus", &r), DMARC_REC_INVALID);
	T_EQ_INT(rec("v=DMARC1; p=reject; sp=bogus", &r), DMARC_REC_INVALID);
	/* 6.6.3 step 6: with a valid rua, act as p=none */
	T_EQ_INT(rec("v=DMARC1; p=bogus; rua=mailto:d@example.org", &r), DMARC_REC_OK);
	T_EQ_INT(r.p, DMARC_P_NONE);
}

T_CASE(record_bad_optional_values_default)
{
	struct dmarc_record r;

	T_EQ_INT(rec("v=DMARC1; p=none; adkim=x; aspf=strict; pct=200; fo=1; zz=9", &r),
	    DMARC_REC_OK);
	T_EQ_INT(r.adkim_strict, 0);
	T_EQ_INT(r.aspf_strict, 0);
	T_EQ_INT(r.pct, 100);
	T_EQ_INT(rec("v=DMARC1; p=none; pct=0", &r), DMARC_REC_OK);
	T_EQ_INT(r.pct, 0);
	T_EQ_INT(rec("v=DMARC1; p=reject; p=none", &r), DMARC_REC_OK);
	T_EQ_INT(r.p, DMARC_P_REJECT);		/* the first one counts */
}

static enum dmarc_from_status
from(const char *m, char *dom)
{
	return dmarc_from_domain(m, strlen(m), dom, DMARC_DOMAIN_MAX);
}

T_CASE(from_forms)
{
	char d[DMARC_DOMAIN_MAX];

	T_EQ_INT(from("From: a@Example.ORG\r\n\r\nbody", d), DMARC_FROM_OK);
	T_EQ_STR(d, "example.org");
	T_EQ_INT(from("Subject: x\r\nfrom: \"Bank <x@bank.example>\" <u@evil.example>\r\n\r\n", d),
	    DMARC_FROM_OK);
	T_EQ_STR(d, "evil.example");
	T_EQ_INT(from("From: u@evil.example (x@bank.example)\r\n\r\n", d), DMARC_FROM_OK);
	T_EQ_STR(d, "evil.example");
	T_EQ_INT(from("From: Name\r\n <u@sub.example.org.>\r\n\r\n", d), DMARC_FROM_OK);
	T_EQ_STR(d, "sub.example.org");
	T_EQ_INT(from("From: \"a\\\"@b\"@example.net\r\n\r\n", d), DMARC_FROM_OK);
	T_EQ_STR(d, "example.net");
	/* two addresses of one domain count as that domain */
	T_EQ_INT(from("From: a@example.org, \"B, b\" <b@EXAMPLE.org>\r\n\r\n", d),
	    DMARC_FROM_OK);
	T_EQ_STR(d, "example.org");
	T_EQ_INT(from("From: team: a@example.org, b@example.org;\r\n\r\n", d), DMARC_FROM_OK);
	T_EQ_STR(d, "example.org");
}

T_CASE(from_problems)
{
	char d[DMARC_DOMAIN_MAX];

	T_EQ_INT(from("Subject: x\r\n\r\nFrom: a@example.org\r\n", d), DMARC_FROM_MISSING);
	T_EQ_INT(from("From: a@example.org\r\nFrom: b@example.org\r\n\r\n", d),
	    DMARC_FROM_SEVERAL_FIELDS);
	T_EQ_INT(from("From: a@example.org, b@example.net\r\n\r\n", d),
	    DMARC_FROM_SEVERAL_DOMAINS);
	T_EQ_INT(from("From: undisclosed:;\r\n\r\n", d), DMARC_FROM_MISSING);
	T_EQ_INT(from("From: nobody\r\n\r\n", d), DMARC_FROM_BAD);
	T_EQ_INT(from("From: a@[192.0.2.1]\r\n\r\n", d), DMARC_FROM_BAD);
	T_EQ_INT(from("From: a@exa mple.org\r\n\r\n", d), DMARC_FROM_BAD);
	T_EQ_INT(from("From: a@example..org\r\n\r\n", d), DMARC_FROM_BAD);
	T_EQ_INT(from("From: <>\r\n\r\n", d), DMARC_FROM_BAD);
	{
		/* a mailbox past 998 characters is not cut to a domain */
		char big[1200];
		int n = snprintf(big, sizeof(big), "From: <");
		memset(big + n, 'a', 1050);
		snprintf(big + n + 1050, sizeof(big) - (size_t)n - 1050, "@bank.example>\r\n\r\n");
		T_EQ_INT(from(big, d), DMARC_FROM_BAD);
	}
}

T_CASE(org_domain)
{
	char o[DMARC_DOMAIN_MAX];

	T_EQ_INT(dmarc_org_domain("mail.sub.example.org", o, sizeof(o)), 0);
	T_EQ_STR(o, "example.org");
	T_EQ_INT(dmarc_org_domain("shop.co.uk", o, sizeof(o)), 0);
	T_EQ_STR(o, "shop.co.uk");
	T_EQ_INT(dmarc_org_domain("a.b.shop.co.uk", o, sizeof(o)), 0);
	T_EQ_STR(o, "shop.co.uk");
	T_EQ_INT(dmarc_org_domain("co.uk", o, sizeof(o)), 0);
	T_EQ_STR(o, "co.uk");		/* a public suffix is its own */
	T_EQ_INT(dmarc_org_domain("x.y.example.test", o, sizeof(o)), 0);
	T_EQ_STR(o, "example.test");	/* unlisted TLD: the "*" rule */
	T_EQ_INT(dmarc_org_domain("bad domain", o, sizeof(o)), -1);
}

T_CASE(alignment)
{
	T_ASSERT(dmarc_aligned("example.org", "example.org", 1));
	T_ASSERT(dmarc_aligned("Example.org", "example.ORG.", 1));
	T_ASSERT(!dmarc_aligned("example.org", "mail.example.org", 1));
	T_ASSERT(dmarc_aligned("example.org", "mail.example.org", 0));
	T_ASSERT(dmarc_aligned("a.example.org", "b.example.org", 0));
	T_ASSERT(!dmarc_aligned("example.org", "example.net", 0));
	/* what libopendmarc gets wrong: a public suffix aligns with nothing
	 * below it */
	T_ASSERT(!dmarc_aligned("shop.co.uk", "co.uk", 0));
	T_ASSERT(!dmarc_aligned("shop.co.uk", "other.co.uk", 0));
	T_ASSERT(dmarc_aligned("www.shop.co.uk", "shop.co.uk", 0));
	T_ASSERT(!dmarc_aligned("example.org", "", 0));
}

/* Hostile input: random strings over the characters the parsers care
 * about. Nothing may crash or read out of bounds (the ASan run), and a
 * domain handed back must be clean. Seeded, so a failure repeats. */
T_CASE(hostile_input)
{
	static const char alpha[] = "\"()<>,:;@\\ \r\n\t.aZ9-_=vDMARC1p";
	char buf[300], d[DMARC_DOMAIN_MAX];
	struct dmarc_record r;
	unsigned seed = 12345;
	int ok = 0;

	for (int n = 0; n < 20000; n++) {
		size_t len = 6 + (seed = seed * 1103515245 + 12345) % 200;
		memcpy(buf, "From: ", 6);
		for (size_t i = 6; i < len; i++)
			buf[i] = alpha[((seed = seed * 1103515245 + 12345) >> 16) %
			    (sizeof(alpha) - 1)];
		if (dmarc_from_domain(buf, len, d, sizeof(d)) == DMARC_FROM_OK) {
			T_ASSERT(strspn(d, "abcdefghijklmnopqrstuvwxyz0123456789.-_") == strlen(d));
			ok++;
		}
		(void)dmarc_record_parse(buf + 6, len - 6, &r);
		T_ASSERT(r.pct >= 0 && r.pct <= 100);
	}
	T_ASSERT(ok > 0);	/* the generator does reach the happy path */
}

int
main(void)
{
	T_RUN(record_basic);
	T_RUN(record_not_dmarc);
	T_RUN(record_invalid_p);
	T_RUN(record_bad_optional_values_default);
	T_RUN(from_forms);
	T_RUN(from_problems);
	T_RUN(org_domain);
	T_RUN(alignment);
	T_RUN(hostile_input);
	return T_END();
}
