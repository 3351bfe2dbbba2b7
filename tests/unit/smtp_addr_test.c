/* smtp_addr_test.c -- MAIL/RCPT argument parsing: paths, quoted local
 * parts, address literals, UTF-8 (RFC 6531), ESMTP parameters, limits. */
#include "lib/addr.h"
#include "t.h"

static enum addr_err
mail(const char *arg, struct addr_cmd *a)
{
	return addr_parse(arg, "FROM:", -1, 1, a);
}

static enum addr_err
rcpt(const char *arg, int utf8, struct addr_cmd *a)
{
	return addr_parse(arg, "TO:", utf8, 0, a);
}

T_CASE(plain_paths)
{
	struct addr_cmd a;

	T_EQ_INT(mail("FROM:<a@b.example>", &a), ADDR_OK);
	T_EQ_STR(a.path, "a@b.example");
	T_EQ_INT(a.nparams, 0);
	T_EQ_INT(mail("from:<>", &a), ADDR_OK);
	T_EQ_STR(a.path, "");
	T_EQ_INT(mail("FROM: <a@b.example>", &a), ADDR_OK);	/* tolerated */
	T_EQ_INT(rcpt("TO:<>", 0, &a), ADDR_E_PATH);
	T_EQ_INT(rcpt("TO:<Postmaster>", 0, &a), ADDR_OK);
	T_EQ_INT(rcpt("TO:<@relay.example,@r2.example:u@d.example>", 0, &a), ADDR_OK);
	T_EQ_STR(a.path, "u@d.example");
}

T_CASE(bad_paths)
{
	struct addr_cmd a;

	T_EQ_INT(mail("FROM:a@b.example", &a), ADDR_E_SYNTAX);
	T_EQ_INT(mail("FROM:<a@b.example", &a), ADDR_E_SYNTAX);
	T_EQ_INT(mail("TO:<a@b.example>", &a), ADDR_E_SYNTAX);
	T_EQ_INT(mail("FROM:<a@b.example>x", &a), ADDR_E_SYNTAX);
	T_EQ_INT(mail("FROM:<ab.example>", &a), ADDR_E_PATH);
	T_EQ_INT(mail("FROM:<a..b@c.example>", &a), ADDR_E_PATH);
	T_EQ_INT(mail("FROM:<.a@c.example>", &a), ADDR_E_PATH);
	T_EQ_INT(mail("FROM:<a@-c.example>", &a), ADDR_E_PATH);
	T_EQ_INT(mail("FROM:<a@c-.example>", &a), ADDR_E_PATH);
	T_EQ_INT(mail("FROM:<a@c..example>", &a), ADDR_E_PATH);
	T_EQ_INT(mail("FROM:<a b@c.example>", &a), ADDR_E_PATH);
	T_EQ_INT(mail("FROM:<@c.example>", &a), ADDR_E_PATH);
}

T_CASE(quoted_local_parts)
{
	struct addr_cmd a;

	T_EQ_INT(mail("FROM:<\"john doe\"@b.example>", &a), ADDR_OK);
	T_EQ_STR(a.path, "\"john doe\"@b.example");
	T_EQ_INT(mail("FROM:<\"a>b\"@b.example> SIZE=10", &a), ADDR_OK);
	T_EQ_STR(a.path, "\"a>b\"@b.example");
	T_EQ_STR(addr_param(&a, "size"), "10");
	T_EQ_INT(mail("FROM:<\"a\\\"b@c\"@b.example>", &a), ADDR_OK);
	T_EQ_INT(mail("FROM:<\"unterminated@b.example>", &a), ADDR_E_PATH);
	T_EQ_INT(mail("FROM:<\"a\"b\"@b.example>", &a), ADDR_E_PATH);
}

T_CASE(address_literals)
{
	struct addr_cmd a;

	T_EQ_INT(rcpt("TO:<u@[192.0.2.1]>", 0, &a), ADDR_OK);
	T_EQ_INT(rcpt("TO:<u@[IPv6:2001:db8::1]>", 0, &a), ADDR_OK);
	T_EQ_INT(rcpt("TO:<u@[ipv6:::1]>", 0, &a), ADDR_OK);
	T_EQ_INT(rcpt("TO:<u@[IPv6:2001:db8::zz]>", 0, &a), ADDR_E_PATH);
	T_EQ_INT(rcpt("TO:<u@[300.1.1.1]>", 0, &a), ADDR_E_PATH);
	T_EQ_INT(rcpt("TO:<u@[192.0.2.1>", 0, &a), ADDR_E_PATH);
	T_EQ_INT(rcpt("TO:<u@[]>", 0, &a), ADDR_E_PATH);
}

T_CASE(utf8)
{
	struct addr_cmd a;

	/* non-ASCII needs SMTPUTF8 on this MAIL, or on the transaction */
	T_EQ_INT(mail("FROM:<j\xc3\xb6rg@b\xc3\xbc\x63her.example>", &a), ADDR_E_UTF8);
	T_EQ_INT(mail("FROM:<j\xc3\xb6rg@b\xc3\xbc\x63her.example> SMTPUTF8", &a), ADDR_OK);
	T_EQ_STR(addr_param(&a, "SMTPUTF8"), "");
	T_EQ_INT(rcpt("TO:<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.example>", 1, &a), ADDR_OK);
	T_EQ_INT(rcpt("TO:<\xe7\x94\xa8\xe6\x88\xb7@example.org>", 0, &a), ADDR_E_UTF8);
	/* invalid UTF-8 is refused even with SMTPUTF8 */
	T_EQ_INT(rcpt("TO:<\xc3\x28@example.org>", 1, &a), ADDR_E_PATH);
	T_EQ_INT(rcpt("TO:<\xed\xa0\x80@example.org>", 1, &a), ADDR_E_PATH);	/* surrogate */
	T_EQ_INT(rcpt("TO:<\xc0\xaf@example.org>", 1, &a), ADDR_E_PATH);	/* overlong */
}

T_CASE(esmtp_params)
{
	struct addr_cmd a;

	T_EQ_INT(mail("FROM:<a@b.example> SIZE=1000 BODY=8BITMIME RET=HDRS ENVID=x+2By", &a), ADDR_OK);
	T_EQ_INT(a.nparams, 4);
	T_EQ_STR(addr_param(&a, "BODY"), "8BITMIME");
	T_EQ_STR(addr_param(&a, "envid"), "x+2By");
	T_ASSERT(addr_param(&a, "AUTH") == NULL);
	T_EQ_STR(a.raw, "SIZE=1000 BODY=8BITMIME RET=HDRS ENVID=x+2By");
	T_EQ_INT(rcpt("TO:<u@d.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;u+40d.example", 0, &a), ADDR_OK);
	T_EQ_STR(addr_param(&a, "ORCPT"), "rfc822;u+40d.example");
	T_EQ_INT(mail("FROM:<a@b.example> SIZE=", &a), ADDR_E_PARAM);
	T_EQ_INT(mail("FROM:<a@b.example> =x", &a), ADDR_E_PARAM);
	T_EQ_INT(mail("FROM:<a@b.example> K=a=b", &a), ADDR_E_PARAM);
	T_EQ_INT(mail("FROM:<a@b.example> K_X=1", &a), ADDR_E_PARAM);
	T_EQ_INT(mail("FROM:<a@b.example>   ", &a), ADDR_OK);
	T_EQ_INT(a.nparams, 0);
	/* bounded count of parameters */
	char many[400] = "FROM:<a@b.example>";
	for (int i = 0; i < LIM_ESMTP_PARAMS + 1; i++)
		strcat(many, " X=1");
	T_EQ_INT(mail(many, &a), ADDR_E_PARAM);
	T_ASSERT(addr_xtext_ok("abc+2B"));
	T_ASSERT(!addr_xtext_ok("abc+2"));
	T_ASSERT(!addr_xtext_ok("a=b"));
}

T_CASE(length_limits)
{
	struct addr_cmd a;
	char buf[2048], lp[80];

	memset(lp, 'l', 65);
	lp[65] = '\0';
	snprintf(buf, sizeof(buf), "FROM:<%s@b.example>", lp);
	T_EQ_INT(mail(buf, &a), ADDR_E_PATH);		/* local part > 64 */
	lp[64] = '\0';
	snprintf(buf, sizeof(buf), "FROM:<%s@b.example>", lp);
	T_EQ_INT(mail(buf, &a), ADDR_OK);
	char dom[300];
	memset(dom, 'd', 62);
	dom[62] = '\0';
	snprintf(buf, sizeof(buf), "FROM:<a@%s.%s.%s.%s.%s>", dom, dom, dom, dom, dom);
	T_EQ_INT(mail(buf, &a), ADDR_E_LONG);		/* path > 256 */
	memset(dom, 'd', 64);
	dom[64] = '\0';
	snprintf(buf, sizeof(buf), "FROM:<a@%s.example>", dom);
	T_EQ_INT(mail(buf, &a), ADDR_E_PATH);		/* label > 63 */
}

int
main(void)
{
	T_RUN(plain_paths);
	T_RUN(bad_paths);
	T_RUN(quoted_local_parts);
	T_RUN(address_literals);
	T_RUN(utf8);
	T_RUN(esmtp_params);
	T_RUN(length_limits);
	return T_END();
}
