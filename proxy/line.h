/*
 * line.h -- bounded byte buffers and a line finder for SMTP streams.
 *
 * struct line_buf is a growable buffer whose storage exists only while it
 * holds bytes (idle sessions keep no buffer: see the memory target in
 * DESIGN.md). line_find() splits SMTP lines: LF ends a line (a CR before it
 * is dropped from the line), and a line longer than the caller's bound is
 * reported instead of buffered.
 * Ownership: the caller owns the struct; line_buf_free() releases storage.
 * Thread: no shared state.
 */
#ifndef POSTERN_LINE_H
#define POSTERN_LINE_H

#include <stddef.h>

struct line_buf {
	char	*data;
	size_t	 off;		/* consumed bytes at the front */
	size_t	 len;		/* valid bytes from data + off */
	size_t	 cap;
};

/* Append n bytes. */
void	 line_buf_add(struct line_buf *, const void *, size_t);
/* Make room for at least n more bytes; returns where to write them. Follow
 * with line_buf_commit(n_written). */
char	*line_buf_space(struct line_buf *, size_t n);
void	 line_buf_commit(struct line_buf *, size_t);
/* Drop n bytes from the front; storage goes when the buffer empties. */
void	 line_buf_drop(struct line_buf *, size_t);
void	 line_buf_free(struct line_buf *);
static inline const char *line_buf_ptr(const struct line_buf *b) {
	return b->data ? b->data + b->off : "";
}

/*
 * Find one line at buf[0..len). Returns >0, the bytes to consume including
 * the LF, with *linelen the line without CR LF; 0 when no LF yet and fewer
 * than max bytes are buffered; -1 when max bytes hold no LF (the line is too
 * long: the caller replies and skips to the next LF).
 */
long	 line_find(const char *buf, size_t len, size_t max, size_t *linelen);

#endif
