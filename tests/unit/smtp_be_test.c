/* smtp_be_test.c -- the backend leg's parsers: multiline replies, EHLO
 * capabilities with XCLIENT/XFORWARD attributes, xtext. */
#include "proxy/be.h"
#include "t.h"

static int
feed(struct be_reply *r, const char *line)
{
	return be_reply_feed(r, line, strlen(line));
}

T_CASE(reply_single_and_multi)
{
	struct be_reply r = { 0 };

	T_EQ_INT(feed(&r, "250 2.0.0 Ok: queued as ABC"), 1);
	T_EQ_INT(r.code, 250);
	T_EQ_STR(buf_str(&r.text), "250 2.0.0 Ok: queued as ABC\r\n");
	be_reply_clear(&r);
	T_EQ_INT(feed(&r, "250-mx.example"), 0);
	T_EQ_INT(feed(&r, "250-PIPELINING"), 0);
	T_EQ_INT(feed(&r, "250 SIZE 1000"), 1);
	T_EQ_INT(r.nlines, 3);
	T_EQ_STR(buf_str(&r.text), "250-mx.example\r\n250-PIPELINING\r\n250 SIZE 1000\r\n");
	be_reply_clear(&r);
	T_EQ_INT(feed(&r, "354"), 1);		/* code alone is a reply */
	T_EQ_INT(r.code, 354);
	be_reply_clear(&r);
}

T_CASE(reply_malformed)
{
	struct be_reply r = { 0 };

	T_EQ_INT(feed(&r, "25"), -1);
	T_EQ_INT(feed(&r, "hello"), -1);
	T_EQ_INT(feed(&r, "650 x"), -1);
	T_EQ_INT(feed(&r, "250x"), -1);
	T_EQ_INT(feed(&r, "250-a"), 0);
	T_EQ_INT(feed(&r, "251 b"), -1);	/* codes must agree */
	be_reply_clear(&r);
	T_EQ_INT(be_reply_feed(&r, "220 mx\0x", 9), -1);	/* a NUL in the text (fuzz_be) */
	be_reply_clear(&r);
	/* bounded in lines */
	int rc = 0, i;
	for (i = 0; i < 1000 && rc == 0; i++)
		rc = feed(&r, "250-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
	T_EQ_INT(rc, -1);
	T_ASSERT(i <= LIM_REPLY_LINES + 1);
	be_reply_clear(&r);
	char big[LIM_REPLY_LINE + 10];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "250 ", 4);
	T_EQ_INT(feed(&r, big), -1);
	be_reply_clear(&r);
}

T_CASE(ehlo_caps)
{
	unsigned xc, xf, caps;

	caps = be_ehlo_caps("250-mx.example\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
	    "250-XCLIENT NAME ADDR PROTO HELO REVERSE_NAME PORT LOGIN\r\n"
	    "250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250 SMTPUTF8\r\n", &xc, &xf);
	T_EQ_INT(caps, BE_CAP_PIPELINING | BE_CAP_SIZE | BE_CAP_XCLIENT | BE_CAP_ENHANCED |
	    BE_CAP_8BITMIME | BE_CAP_DSN | BE_CAP_SMTPUTF8);
	/* LOGIN too: a reuse must clear it ([UNAVAILABLE]) */
	T_EQ_INT(xc, BE_XA_NAME | BE_XA_ADDR | BE_XA_PROTO | BE_XA_HELO | BE_XA_PORT |
	    BE_XA_LOGIN);
	T_EQ_INT(xf, 0);
	/* Postfix 3.7's full list */
	caps = be_ehlo_caps("250-mx\r\n250 XCLIENT NAME ADDR PROTO HELO REVERSE_NAME PORT "
	    "LOGIN DESTADDR DESTPORT\r\n", &xc, &xf);
	T_EQ_INT(xc, BE_XA_NAME | BE_XA_ADDR | BE_XA_PROTO | BE_XA_HELO | BE_XA_PORT |
	    BE_XA_LOGIN | BE_XA_DESTADDR | BE_XA_DESTPORT);
	T_EQ_INT(xf, 0);
	caps = be_ehlo_caps("250-mx\r\n250-XFORWARD NAME ADDR\r\n250 8bitmime\r\n", &xc, &xf);
	T_EQ_INT(caps, BE_CAP_XFORWARD | BE_CAP_8BITMIME);
	T_EQ_INT(xf, BE_XA_NAME | BE_XA_ADDR);
	/* the greeting line itself is not a keyword; prefixes do not match */
	caps = be_ehlo_caps("250 DSN\r\n", &xc, &xf);
	T_EQ_INT(caps, 0);
	caps = be_ehlo_caps("250-mx\r\n250 DSNX\r\n", &xc, &xf);
	T_EQ_INT(caps, 0);
}

T_CASE(xtext)
{
	char out[64];

	be_xtext("mail.example", out, sizeof(out));
	T_EQ_STR(out, "mail.example");
	be_xtext("a b+c=d", out, sizeof(out));
	T_EQ_STR(out, "a+20b+2Bc+3Dd");
	be_xtext("\xc3\xa9", out, sizeof(out));
	T_EQ_STR(out, "+C3+A9");
	be_xtext("0123456789012345678901234567890123456789", out, 16);
	T_ASSERT(strlen(out) < 16);
}

int
main(void)
{
	T_RUN(reply_single_and_multi);
	T_RUN(reply_malformed);
	T_RUN(ehlo_caps);
	T_RUN(xtext);
	return T_END();
}
