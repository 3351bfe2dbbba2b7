/*
 * line.c -- the SMTP line finder (see line.h).
 */
#include "proxy/line.h"
#include <string.h>

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
