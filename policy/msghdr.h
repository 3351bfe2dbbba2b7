/*
 * msghdr.h -- walk the header fields of a message held in memory.
 *
 * The checks that read headers without a MIME parser (DKIM's From lookup,
 * DMARC's RFC5322.From, Authentication-Results hygiene) share this one
 * walker, so "where does a field end" is decided in one place: a field is
 * its first line plus every following line that starts with SP or HTAB
 * (RFC 5322 2.2.3), and the header ends at the first empty line.
 *
 * Public calls: msghdr_next(), msghdr_is(), msghdr_unfold().
 * Ownership: fields point into the caller's buffer; msghdr_unfold() returns
 * an xmalloc'd string. Thread: no state, any thread. Privilege: none.
 */
#ifndef POSTERN_MSGHDR_H
#define POSTERN_MSGHDR_H

#include <stddef.h>

struct msghdr_field {
	size_t		 off, len;	/* the whole field, through its last line end */
	const char	*name;		/* NULL when the first line has no colon */
	size_t		 namelen;	/* trailing WSP before the colon excluded */
	const char	*value;		/* after the colon, up to the last line end */
	size_t		 valuelen;
};

/* Next field at *pos (start with 0). 1 and *f filled, or 0 at the end of
 * the header. Bare LF line ends are tolerated. */
int	 msghdr_next(const char *msg, size_t len, size_t *pos, struct msghdr_field *f);
/* Is this field named `name` (case-insensitive)? */
int	 msghdr_is(const struct msghdr_field *, const char *name);
/* The value with line ends removed (folding undone, RFC 5322 2.2.3). */
char	*msghdr_unfold(const struct msghdr_field *);

#endif
