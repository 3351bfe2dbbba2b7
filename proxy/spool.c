/*
 * spool.c -- DATA parsing and the message store (see spool.h).
 *
 * The parser is a byte state machine with a fast path for the middle of a
 * line; its only input is what the client sent, so every transition is
 * bounded: no state keeps more than the one pending CR or dot.
 */
#include "proxy/spool.h"
#include "lib/buf.h"
#include "lib/conf.h"
#include "lib/util.h"
#include "policy/policy.h"
#include "proxy/line.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* File writes are batched in memory up to this many bytes. */
#define SPOOL_WBUF	65536

enum sp_state {
	SP_BOL,		/* after a real CRLF (or at the start): dot rules apply */
	SP_BOLN,	/* after a bare LF/CR: a line start, but never an end */
	SP_DOT,		/* "." at SP_BOL */
	SP_DOTCR,	/* ".\r" at SP_BOL */
	SP_MID,
	SP_CR,		/* a CR is pending */
};

struct spool {
	enum sp_state	 state;
	enum spool_err	 err;
	int		 normalize;
	int		 max_received, received;
	int		 in_header, hdr_match;
	size_t		 line_len;
	size_t		 size, max_size, mem_max;
	struct buf	 mem;		/* the message, or the file's write batch */
	int		 fd;
	size_t		 filelen;
	char		*spool_dir;
	void		*map;
	size_t		 maplen;
};

static void	 sp_emit(struct spool *, const char *, size_t);
static void	 sp_header(struct spool *, const char *, size_t);
static void	 sp_store(struct spool *, const char *, size_t);
static int	 sp_flush(struct spool *);
static void	 sp_to_file(struct spool *);
static void	 sp_bare(struct spool *);
static void	 sp_fail(struct spool *, enum spool_err);
static size_t	 spool_out_run(struct spool_out *, const char **);

struct spool *
spool_new(const struct conf *c)
{
	struct spool *sp = xcalloc(1, sizeof(*sp));

	sp->state = SP_BOL;
	sp->normalize = c->bare_lf == CONF_BARE_LF_NORMALIZE;
	sp->max_received = c->max_received;
	sp->in_header = 1;
	sp->max_size = (size_t)c->max_message_size;
	sp->mem_max = (size_t)c->spool_memory;
	sp->spool_dir = xstrdup(c->spool_dir);
	sp->fd = -1;
	return sp;
}

void
spool_free(struct spool *sp)
{
	if (sp == NULL)
		return;
	if (sp->map != NULL)
		munmap(sp->map, sp->maplen);
	if (sp->fd != -1)
		close(sp->fd);
	buf_free(&sp->mem);
	free(sp->spool_dir);
	free(sp);
}

enum spool_err spool_error(const struct spool *sp) { return sp->err; }
size_t spool_size(const struct spool *sp) { return sp->size; }
int spool_received(const struct spool *sp) { return sp->received; }

/* The first error wins, except that size beats what came before it. */
static void
sp_fail(struct spool *sp, enum spool_err e)
{
	if (sp->err == SPOOL_OK || e == SPOOL_E_SIZE)
		sp->err = e;
}

/* A bare LF or CR was seen: either a line end or an error. */
static void
sp_bare(struct spool *sp)
{
	if (sp->normalize)
		sp_emit(sp, "\r\n", 2);
	else {
		sp_fail(sp, SPOOL_E_BARE);
		sp->line_len = 0;
	}
	sp->state = SP_BOLN;
}

size_t
spool_feed(struct spool *sp, const char *buf, size_t n, int *done)
{
	size_t i = 0;

	*done = 0;
	while (i < n) {
		char c = buf[i];
		switch (sp->state) {
		case SP_BOL:
			if (c == '.') { sp->state = SP_DOT; i++; break; }
			/* FALLTHROUGH */
		case SP_BOLN:
			sp->state = SP_MID;
			/* FALLTHROUGH */
		case SP_MID: {
			/* The common case, a whole CRLF line, with two vector
			 * scans instead of a byte loop. */
			const char *lf = memchr(buf + i, '\n', n - i);
			size_t end = lf ? (size_t)(lf - buf) : n;
			const char *cr = memchr(buf + i, '\r', end - i);
			size_t j = cr ? (size_t)(cr - buf) : end;
			if (lf != NULL && cr == lf - 1 && j > i) {
				sp_emit(sp, buf + i, end + 1 - i);	/* text CRLF */
				sp->state = SP_BOL;
				i = end + 1;
				break;
			}
			if (j > i)
				sp_emit(sp, buf + i, j - i);
			if (j == n)
				return 0;
			i = j + 1;
			if (buf[j] == '\r')
				sp->state = SP_CR;
			else
				sp_bare(sp);
			break;
		}
		case SP_CR:
			if (c == '\n') {
				sp_emit(sp, "\r\n", 2);
				sp->state = SP_BOL;
				i++;
			} else
				sp_bare(sp);	/* c is looked at again */
			break;
		case SP_DOT:	/* the dot was stuffing: drop it */
			if (c == '\r') { sp->state = SP_DOTCR; i++; }
			else sp->state = SP_MID;
			break;
		case SP_DOTCR:
			if (c == '\n') {
				*done = 1;
				return i + 1;
			}
			sp->state = SP_CR;	/* ".\rX": the CR is bare */
			break;
		}
	}
	return 0;
}

/* Unstuffed, canonical bytes of the message. */
static void
sp_emit(struct spool *sp, const char *p, size_t n)
{
	if (sp->in_header)
		sp_header(sp, p, n);
	sp->size += n;
	if (sp->size > sp->max_size)
		sp_fail(sp, SPOOL_E_SIZE);
	if (sp->err == SPOOL_OK)
		sp_store(sp, p, n);
}

/* Count Received: headers until the empty line ending the header. */
static void
sp_header(struct spool *sp, const char *p, size_t n)
{
	static const char rcvd[] = "received:";

	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		if (c == '\r')
			continue;
		if (c == '\n') {
			if (sp->line_len == 0) {
				sp->in_header = 0;
				return;
			}
			sp->line_len = 0;
			sp->hdr_match = 0;
			continue;
		}
		sp->line_len++;
		if (sp->hdr_match < 0)
			continue;
		if (tolower((unsigned char)c) != rcvd[sp->hdr_match]) {
			sp->hdr_match = -1;
		} else if (++sp->hdr_match == (int)sizeof(rcvd) - 1) {
			sp->hdr_match = -1;
			if (++sp->received > sp->max_received)
				sp_fail(sp, SPOOL_E_LOOP);
		}
	}
}

static void
sp_store(struct spool *sp, const char *p, size_t n)
{
	if (sp->fd == -1 && sp->mem.len + n > sp->mem_max)
		sp_to_file(sp);
	if (sp->fd != -1 && sp->mem.len + n > SPOOL_WBUF && sp_flush(sp) == -1)
		return;
	buf_add(&sp->mem, p, n);
}

/* Past spool_memory: move to an unlinked file, so nothing outlives us. */
static void
sp_to_file(struct spool *sp)
{
	char *path = xasprintf("%s/postern.XXXXXX", sp->spool_dir);

	if ((sp->fd = mkstemp(path)) == -1) {
		log_err("spool: mkstemp %s: %s", path, strerror(errno));
		sp_fail(sp, SPOOL_E_IO);
	} else if (unlink(path) == -1)
		log_warn("spool: unlink %s: %s", path, strerror(errno));
	free(path);
}

static int
sp_flush(struct spool *sp)
{
	size_t off = 0;

	while (off < sp->mem.len) {
		ssize_t w = write(sp->fd, buf_ptr(&sp->mem) + off, sp->mem.len - off);
		if (w == -1 && errno == EINTR)
			continue;
		if (w == -1) {
			log_err("spool: write: %s", strerror(errno));
			sp_fail(sp, SPOOL_E_IO);
			return -1;
		}
		off += (size_t)w;
	}
	sp->filelen += sp->mem.len;
	buf_free(&sp->mem);
	return 0;
}

int
spool_map(struct spool *sp, struct pol_msg *m)
{
	if (sp->fd == -1) {
		m->data = buf_ptr(&sp->mem);
		m->len = sp->mem.len;
		return 0;
	}
	if (sp->map == NULL) {
		if (sp_flush(sp) == -1)
			return -1;
		sp->map = mmap(NULL, sp->filelen, PROT_READ, MAP_PRIVATE, sp->fd, 0);
		if (sp->map == MAP_FAILED) {
			sp->map = NULL;
			log_err("spool: mmap: %s", strerror(errno));
			sp_fail(sp, SPOOL_E_IO);
			return -1;
		}
		sp->maplen = sp->filelen;
		buf_free(&sp->mem);
	}
	m->data = sp->map;
	m->len = sp->maplen;
	return 0;
}

void
spool_out_init(struct spool_out *o, const char *prepend, const struct pol_msg *m,
    const struct pol_skip *skip, int nskip)
{
	memset(o, 0, sizeof(*o));
	o->pre = prepend ? prepend : "";
	o->prelen = strlen(o->pre);
	o->msg = m->data;
	o->len = m->len;
	o->skip = skip;
	o->nskip = nskip;
	o->bol = 1;
	o->last = '\n';
}

/* The next source byte run: prepend, then the message between skips.
 * Returns its length (0 at the end) and sets *p. */
static size_t
spool_out_run(struct spool_out *o, const char **p)
{
	if (o->prepos < o->prelen) {
		*p = o->pre + o->prepos;
		return o->prelen - o->prepos;
	}
	while (o->iskip < o->nskip) {
		const struct pol_skip *s = &o->skip[o->iskip];
		if (o->pos < s->off)
			break;
		if (o->pos < s->off + s->len)
			o->pos = s->off + s->len;
		o->iskip++;
	}
	if (o->pos >= o->len)
		return 0;
	*p = o->msg + o->pos;
	if (o->iskip < o->nskip && o->skip[o->iskip].off < o->len)
		return o->skip[o->iskip].off - o->pos;
	return o->len - o->pos;
}

size_t
spool_out_fill(struct spool_out *o, char *buf, size_t n)
{
	size_t w = 0;
	const char *p;
	size_t run;

	while (o->tail == 0 && w + 2 <= n && (run = spool_out_run(o, &p)) > 0) {
		if (o->bol && p[0] == '.')
			buf[w++] = '.';	/* RFC 5321 4.5.2 transparency */
		/* copy up to and including the next LF */
		const char *lf = memchr(p, '\n', run);
		size_t take = lf ? (size_t)(lf - p) + 1 : run;
		if (take > n - w)
			take = n - w;
		memcpy(buf + w, p, take);
		w += take;
		o->last = p[take - 1];
		o->bol = o->last == '\n';
		if (o->prepos < o->prelen)
			o->prepos += take;
		else
			o->pos += take;
	}
	if (o->tail == 0 && spool_out_run(o, &p) == 0)
		o->tail = o->last == '\n' ? 3 : 1;
	/* terminator: CRLF if the message did not end with one, then . CRLF */
	static const char term[] = "\r\n.\r\n";
	while (o->tail > 0 && o->tail < 6 && w < n) {
		buf[w++] = term[o->tail - 1];
		o->tail++;
	}
	return w;
}
