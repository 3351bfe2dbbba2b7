/*
 * msghdr.c -- header field walker; see msghdr.h.
 */
#include "policy/msghdr.h"
#include "lib/util.h"

#include <string.h>
#include <strings.h>

static size_t	 msghdr_line_end(const char *, size_t, size_t);

/* Offset just past the line starting at p (past its LF), or len. */
static size_t
msghdr_line_end(const char *msg, size_t len, size_t p)
{
	const char *nl = memchr(msg + p, '\n', len - p);

	return nl == NULL ? len : (size_t)(nl - msg) + 1;
}

int
msghdr_next(const char *msg, size_t len, size_t *pos, struct msghdr_field *f)
{
	size_t p = *pos, end;
	const char *colon;

	if (p >= len || msg[p] == '\n' || (msg[p] == '\r' && p + 1 < len &&
	    msg[p + 1] == '\n') || (msg[p] == '\r' && p + 1 == len))
		return 0;
	end = msghdr_line_end(msg, len, p);
	while (end < len && (msg[end] == ' ' || msg[end] == '\t'))
		end = msghdr_line_end(msg, len, end);

	memset(f, 0, sizeof(*f));
	f->off = p;
	f->len = end - p;
	colon = memchr(msg + p, ':', msghdr_line_end(msg, len, p) - p);
	if (colon != NULL) {
		size_t n = (size_t)(colon - (msg + p));
		while (n > 0 && (msg[p + n - 1] == ' ' || msg[p + n - 1] == '\t'))
			n--;
		f->name = msg + p;
		f->namelen = n;
		f->value = colon + 1;
		f->valuelen = (size_t)(msg + end - f->value);
		while (f->valuelen > 0 && (f->value[f->valuelen - 1] == '\n' ||
		    f->value[f->valuelen - 1] == '\r'))
			f->valuelen--;
	}
	*pos = end;
	return 1;
}

int
msghdr_is(const struct msghdr_field *f, const char *name)
{
	size_t n = strlen(name);

	return f->name != NULL && f->namelen == n &&
	    strncasecmp(f->name, name, n) == 0;
}

char *
msghdr_unfold(const struct msghdr_field *f)
{
	char *out = xmalloc(f->valuelen + 1);
	size_t o = 0;

	for (size_t i = 0; i < f->valuelen; i++)
		if (f->value[i] != '\r' && f->value[i] != '\n')
			out[o++] = f->value[i];
	out[o] = '\0';
	return out;
}
