/*
 * buf_test.c -- lib/buf.h: appends, front drops, strings, hand-over.
 */
#include "t.h"
#include "lib/buf.h"

#include <stdlib.h>
#include <string.h>

T_CASE(add_drop_releases_storage)
{
	struct buf b = { 0 };

	buf_add(&b, "HELO x\r\n", 8);
	buf_adds(&b, "QUIT");
	T_EQ_INT(b.len, 12);
	buf_drop(&b, 8);
	T_EQ_INT(b.len, 4);
	T_ASSERT(memcmp(buf_ptr(&b), "QUIT", 4) == 0);
	buf_drop(&b, 4);
	T_ASSERT(b.data == NULL);	/* empty: nothing kept */
	T_EQ_STR(buf_ptr(&b), "");
}

T_CASE(printf_and_str)
{
	struct buf b = { 0 };

	buf_printf(&b, "spf=%s", "pass");
	buf_addc(&b, ' ');
	buf_printf(&b, "%d", 42);
	T_EQ_STR(buf_str(&b), "spf=pass 42");
	T_EQ_INT(b.len, 11);		/* the NUL is not counted */
	buf_printf(&b, "%s", "");	/* nothing to add */
	T_EQ_INT(b.len, 11);
	buf_free(&b);
	T_EQ_STR(buf_str(&b), "");
}

T_CASE(growth_keeps_bytes)
{
	struct buf b = { 0 };

	for (int i = 0; i < 10000; i++)
		buf_addc(&b, (char)('a' + i % 26));
	buf_drop(&b, 26 * 100);
	T_EQ_INT(b.len, 10000 - 2600);
	T_ASSERT(buf_ptr(&b)[0] == 'a' && buf_ptr(&b)[25] == 'z');
	buf_free(&b);
}

T_CASE(take_after_drop)
{
	struct buf b = { 0 };
	char *s;

	buf_adds(&b, "xxabc");
	buf_drop(&b, 2);
	s = buf_take(&b);
	T_EQ_STR(s, "abc");
	T_ASSERT(b.data == NULL && b.len == 0);
	free(s);
	s = buf_take(&b);		/* empty: an empty string, still owned */
	T_EQ_STR(s, "");
	free(s);
}

int
main(void)
{
	T_RUN(add_drop_releases_storage);
	T_RUN(printf_and_str);
	T_RUN(growth_keeps_bytes);
	T_RUN(take_after_drop);
	return T_END();
}
