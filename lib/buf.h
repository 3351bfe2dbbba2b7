/*
 * buf.h -- the one growable byte buffer (Postfix has VSTRING, Redis sds):
 * bytes appended at the back, consumed from the front, storage released
 * when it empties. It carries network input and output, decoded message
 * text, and strings put together piece by piece (buf_printf, buf_str).
 * Growth doubles, so appends are amortised O(1); a caller that reads from
 * the network bounds what it lets in (the line finder's max, lim.h).
 * Public calls: buf_add, buf_adds, buf_addc, buf_printf, buf_space +
 * buf_commit, buf_drop, buf_str, buf_take, buf_free, buf_ptr.
 * Ownership: the caller owns the struct (zeroed = empty); data is
 * xmalloc'd and belongs to it until buf_take() hands it over.
 * Thread: no shared state.
 */
#ifndef POSTERN_BUF_H
#define POSTERN_BUF_H

#include <stddef.h>

struct buf {
	char	*data;
	size_t	 off;		/* consumed bytes at the front */
	size_t	 len;		/* valid bytes from data + off */
	size_t	 cap;
};

/* Append n bytes. */
void	 buf_add(struct buf *, const void *, size_t);
/* Make room for at least n more bytes; returns where to write them. Follow
 * with buf_commit(n_written). */
char	*buf_space(struct buf *, size_t n);
void	 buf_commit(struct buf *, size_t);
/* Drop n bytes from the front; storage goes when the buffer empties. */
void	 buf_drop(struct buf *, size_t);
void	 buf_free(struct buf *);
static inline const char *
buf_ptr(const struct buf *b) {
	return b->data ? b->data + b->off : "";
}
/* Append a C string, one byte, or formatted text. */
void	 buf_adds(struct buf *, const char *);
void	 buf_addc(struct buf *, char);
void	 buf_printf(struct buf *, const char *, ...) __attribute__((format(printf, 2, 3)));
/* The contents as a C string (a NUL kept past the end, not counted in
 * len); "" when empty. Valid until the next change. */
const char *buf_str(struct buf *);
/* Hand the contents over as a C string the caller frees; the buffer is
 * left empty. */
char	*buf_take(struct buf *);

#endif
