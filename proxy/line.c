/*
 * line.c -- bounded byte buffers and the SMTP line finder (see line.h).
 */
#include "proxy/line.h"
#include "lib/util.h"

#include <stdlib.h>
#include <string.h>

char *
line_buf_space(struct line_buf *b, size_t n)
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
line_buf_commit(struct line_buf *b, size_t n)
{
	if (b->off + b->len + n > b->cap)
		fatalx("line_buf_commit: %zu bytes past the buffer", n);
	b->len += n;
	if (b->len == 0)
		line_buf_free(b);
}

void
line_buf_add(struct line_buf *b, const void *p, size_t n)
{
	if (n == 0)
		return;
	memcpy(line_buf_space(b, n), p, n);
	b->len += n;
}

void
line_buf_drop(struct line_buf *b, size_t n)
{
	if (n > b->len)
		fatalx("line_buf_drop: %zu of %zu bytes", n, b->len);
	b->off += n;
	b->len -= n;
	if (b->len == 0)
		line_buf_free(b);
}

void
line_buf_free(struct line_buf *b)
{
	free(b->data); b->data = NULL;
	b->off = b->len = b->cap = 0;
}

long
line_find(const char *buf, size_t len, size_t max, size_t *linelen)
{
	size_t scan = len < max ? len : max;
	const char *lf = memchr(buf, '\n', scan);

	if (lf == NULL)
		return len >= max ? -1 : 0;
	*linelen = (size_t)(lf - buf);
	if (*linelen > 0 && buf[*linelen - 1] == '\r')
		(*linelen)--;
	return (long)(lf - buf) + 1;
}
