/*
 * line.h -- the line finder for SMTP streams. line_find() splits SMTP
 * lines: LF ends a line (a CR before it is dropped from the line), and a
 * line longer than the caller's bound is reported instead of buffered.
 * The bytes live in a struct buf (lib/buf.h), whose storage exists only
 * while it holds bytes, so idle sessions keep no buffer (the memory target
 * in DESIGN.md).
 * Thread: no shared state.
 */
#ifndef POSTERN_LINE_H
#define POSTERN_LINE_H

#include <stddef.h>

/*
 * Find one line at buf[0..len). Returns >0, the bytes to consume including
 * the LF, with *linelen the line without CR LF; 0 when no LF yet and fewer
 * than max bytes are buffered; -1 when max bytes hold no LF (the line is too
 * long: the caller replies and skips to the next LF).
 */
long	 line_find(const char *buf, size_t len, size_t max, size_t *linelen);

#endif
