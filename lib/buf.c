/*
 * buf.c -- see buf.h.
 */
#include "lib/buf.h"
#include "lib/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *
buf_space(struct buf *b, size_t n)
{
	if (b->off > 0 && b->off + b->len + n > b->cap) {
		memmove(b->data, b->data + b->off, b->len);
		b->off = 0;
	}
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n)
			cap *= 2;
		b->data = xrealloc(b->data, cap);
		b->cap = cap;
	}
	return b->data + b->off + b->len;
}

void
buf_commit(struct buf *b, size_t n)
{
	if (b->off + b->len + n > b->cap)
		fatalx("buf_commit: %zu bytes past the buffer", n);
	b->len += n;
	if (b->len == 0)
		buf_free(b);
}

void
buf_add(struct buf *b, const void *p, size_t n)
{
	if (n == 0)
		return;
	memcpy(buf_space(b, n), p, n);
	b->len += n;
}

void
buf_drop(struct buf *b, size_t n)
{
	if (n > b->len)
		fatalx("buf_drop: %zu of %zu bytes", n, b->len);
	b->off += n;
	b->len -= n;
	if (b->len == 0)
		buf_free(b);
}

void
buf_free(struct buf *b)
{
	free(b->data); b->data = NULL;
	b->off = b->len = b->cap = 0;
}

void
buf_adds(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

void
buf_addc(struct buf *b, char c)
{
	buf_add(b, &c, 1);
}

void
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n <= 0)
		return;
	/* one more byte: vsnprintf writes its NUL, which commit leaves out */
	char *p = buf_space(b, (size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	buf_commit(b, (size_t)n);
}

const char *
buf_str(struct buf *b)
{
	if (b->data == NULL)
		return "";
	*buf_space(b, 1) = '\0';
	return b->data + b->off;
}

char *
buf_take(struct buf *b)
{
	char *s;

	if (b->data == NULL)
		return xstrdup("");
	buf_str(b);
	if (b->off > 0)
		memmove(b->data, b->data + b->off, b->len + 1);
	s = b->data;
	b->data = NULL;
	b->off = b->len = b->cap = 0;
	return s;
}
