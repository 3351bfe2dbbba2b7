/* smtp_line_test.c -- the bounded line finder, the lazy buffers, and the
 * SMTP command parser. */
#include "lib/buf.h"
#include "proxy/line.h"
#include "proxy/smtp.h"
#include "t.h"

T_CASE(line_find_basic)
{
	size_t ll = 99;

	T_EQ_INT(line_find("HELO x\r\nMAIL", 12, 512, &ll), 8);
	T_EQ_INT(ll, 6);
	T_EQ_INT(line_find("NOOP\nX", 6, 512, &ll), 5);	/* bare LF ends a command */
	T_EQ_INT(ll, 4);
	T_EQ_INT(line_find("\r\n", 2, 512, &ll), 2);
	T_EQ_INT(ll, 0);
	T_EQ_INT(line_find("HELO x\r", 7, 512, &ll), 0);	/* need more */
	T_EQ_INT(line_find("", 0, 512, &ll), 0);
}

T_CASE(line_find_limits)
{
	char buf[600];
	size_t ll;

	memset(buf, 'a', sizeof(buf));
	T_EQ_INT(line_find(buf, 511, 512, &ll), 0);	/* not yet too long */
	T_EQ_INT(line_find(buf, 512, 512, &ll), -1);	/* max bytes, no LF */
	T_EQ_INT(line_find(buf, 600, 512, &ll), -1);
	buf[511] = '\n';				/* LF as the 512th byte fits */
	T_EQ_INT(line_find(buf, 600, 512, &ll), 512);
	T_EQ_INT(ll, 511);
	buf[511] = 'a';
	buf[512] = '\n';				/* one past the bound does not */
	T_EQ_INT(line_find(buf, 600, 512, &ll), -1);
}

T_CASE(buf_lazy)
{
	struct buf b = { 0 };

	T_ASSERT(b.data == NULL);
	buf_add(&b, "hello ", 6);
	buf_add(&b, "world", 5);
	T_EQ_INT(b.len, 11);
	T_ASSERT(memcmp(buf_ptr(&b), "hello world", 11) == 0);
	buf_drop(&b, 6);
	T_ASSERT(memcmp(buf_ptr(&b), "world", 5) == 0);
	buf_drop(&b, 5);
	T_ASSERT(b.data == NULL);		/* storage goes when empty */
	char *p = buf_space(&b, 100);
	memcpy(p, "xy", 2);
	buf_commit(&b, 2);
	T_EQ_INT(b.len, 2);
	buf_drop(&b, 2);
	buf_space(&b, 100);
	buf_commit(&b, 0);			/* nothing read: nothing kept */
	T_ASSERT(b.data == NULL);
	for (int i = 0; i < 1000; i++)
		buf_add(&b, "0123456789", 10);
	T_EQ_INT(b.len, 10000);
	buf_free(&b);
	T_ASSERT(b.data == NULL && b.len == 0);
}

T_CASE(command_parser)
{
	const char *arg;
	int i;

	T_ASSERT((i = smtp_parse_cmd("EHLO client.example", &arg)) >= 0);
	T_EQ_STR(arg, "client.example");
	T_ASSERT(smtp_parse_cmd("ehlo client.example", &arg) == i);
	T_ASSERT(smtp_parse_cmd("MAIL FROM:<a@b>", &arg) >= 0);
	T_EQ_STR(arg, "FROM:<a@b>");
	T_ASSERT(smtp_parse_cmd("QUIT", &arg) >= 0);
	T_EQ_STR(arg, "");
	T_ASSERT(smtp_parse_cmd("StartTLS", &arg) >= 0);
	T_EQ_INT(smtp_parse_cmd("EHLOX a", &arg), -1);
	T_EQ_INT(smtp_parse_cmd("EHL", &arg), -1);
	T_EQ_INT(smtp_parse_cmd("", &arg), -1);
	T_EQ_INT(smtp_parse_cmd("BDAT 10", &arg), -1);
	T_ASSERT(smtp_parse_cmd("VRFY  user", &arg) >= 0);
	T_EQ_STR(arg, "user");
}

int
main(void)
{
	T_RUN(line_find_basic);
	T_RUN(line_find_limits);
	T_RUN(buf_lazy);
	T_RUN(command_parser);
	return T_END();
}
