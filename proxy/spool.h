/*
 * spool.h -- the DATA phase: end-of-data detection, unstuffing, bare CR/LF
 * handling, size and loop limits, and the message store (memory up to
 * proxy.spool_memory, then an unlinked file in proxy.spool_dir).
 *
 * Only CRLF "." CRLF ends data (RFC 5321 4.1.1.4); "\n.\n", "\r.\r",
 * "\r\n.\n", "\n.\r\n" and "\r.\r\n" do not (SMTP smuggling). What is
 * stored is the unstuffed message (RFC 5321 4.5.2). With proxy.bare_lf =
 * normalize a bare LF or CR becomes CRLF, so the store is canonical CRLF;
 * with reject the data is read to its end and then refused (550 5.5.2).
 * spool_out_*() produce the dot-stuffed stream for the backend, with
 * policy's prepended headers and without its skipped ranges.
 *
 * Ownership: the session owns the spool; the pol_msg view from spool_map()
 * lives until spool_free(). Thread: one at a time (loop, then a worker
 * while a DATA verdict is out).
 */
#ifndef POSTERN_SPOOL_H
#define POSTERN_SPOOL_H

#include <stddef.h>

struct conf;
struct pol_msg;
struct pol_skip;
struct spool;

enum spool_err {
	SPOOL_OK = 0,
	SPOOL_E_BARE,		/* bare LF or CR, bare_lf = reject: 550 5.5.2 */
	SPOOL_E_LOOP,		/* too many Received headers: 554 5.4.6 */
	SPOOL_E_SIZE,		/* over max_message_size: 552 5.3.4 */
	SPOOL_E_IO,		/* our spool file failed: 451 4.3.0 */
};

struct spool	*spool_new(const struct conf *);
/*
 * Feed bytes that arrived in DATA. Returns the bytes consumed up to and
 * including the end-of-data line when it was found (the rest are the next
 * commands), else 0 with everything consumed.
 */
size_t		 spool_feed(struct spool *, const char *, size_t, int *done);
enum spool_err	 spool_error(const struct spool *);
/* Message size as stored (unstuffed), counted past the limit too. */
size_t		 spool_size(const struct spool *);
int		 spool_received(const struct spool *);
/* A contiguous view of the stored message for policy; 0 or -1 (IO). */
int		 spool_map(struct spool *, struct pol_msg *);
void		 spool_free(struct spool *);

/* The dot-stuffed stream to the backend, ending with "." CRLF. */
struct spool_out {
	const char	*pre;
	size_t		 prelen, prepos;
	const char	*msg;
	size_t		 len, pos;
	const struct pol_skip *skip;
	int		 nskip, iskip;
	int		 bol;		/* next byte starts a line */
	int		 tail;		/* 0 body, 1..: terminator bytes sent */
	char		 last;		/* last byte sent */
};
void	 spool_out_init(struct spool_out *, const char *prepend,
	    const struct pol_msg *, const struct pol_skip *, int nskip);
/* Fill buf with up to n (>= 8) bytes; returns how many; 0 when finished. */
size_t	 spool_out_fill(struct spool_out *, char *buf, size_t n);

#endif
