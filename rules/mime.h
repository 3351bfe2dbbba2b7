/*
 * mime.h -- a received message taken apart into what rules look at.
 *
 * mime_parse() runs GMime 3 over the raw message (canonical CRLF bytes as
 * spooled) and keeps, as UTF-8:
 *   - the top-level headers, unfolded and RFC 2047-decoded;
 *   - every text part (not an attachment), transfer-decoded (base64, QP) and
 *     converted from its charset; HTML parts as plain text (tags dropped,
 *     entities decoded, never rendered);
 *   - URLs: href/src values in HTML and bare http(s):// URLs in any text;
 *   - attachment file names (RFC 2231 and RFC 2047 decoded);
 *   - the layout: each MIME entity walked, as "DEPTH type/subtype[ charset]"
 *     ("0 multipart/alternative", "1 text/html utf-8"), for the classifier.
 * Malformed MIME never fails the parse: whatever GMime recovers is used.
 * Nesting, part count, URL count and decoded sizes are bounded (MIME_MAX_*);
 * past a bound the rest is left out and mime_truncated() says so.
 *
 * Public calls: mime_init, mime_parse, mime_free, mime_count, mime_item,
 *   mime_header, mime_header_at, mime_truncated.
 * Ownership: a struct mime_msg owns copies of everything; it does not keep
 *   a pointer to the raw bytes. Returned strings live as long as the msg.
 * Thread: mime_init() once (any thread, idempotent); separate messages may
 *   then be parsed on separate threads. A mime_msg is read-only after parse.
 * Privilege: none (memory only).
 */
#ifndef POSTERN_MIME_H
#define POSTERN_MIME_H

#include <stddef.h>

/* Bounds on attacker-shaped structure. RFC 2046 5.1 sets no nesting limit,
 * so these are ours: generous for real mail, small enough for a worker. */
#define MIME_MAX_DEPTH		16	/* multipart / message/rfc822 nesting */
#define MIME_MAX_PARTS		256	/* leaf parts walked */
#define MIME_MAX_BOUNDARIES	512	/* "boundary=" seen before GMime runs */
#define MIME_MAX_HEADERS	512	/* top-level header fields kept */
#define MIME_MAX_URLS		512
#define MIME_MAX_URL_LEN	2048
#define MIME_MAX_TEXT		(4u << 20)	/* decoded text per part, bytes */
#define MIME_MAX_TEXT_TOTAL	(16u << 20)	/* decoded text per message */

struct mime_msg;

/* What a list holds. */
enum mime_kind {
	MIME_TEXT = 0,		/* decoded text of each body part */
	MIME_URL,		/* each URL found */
	MIME_ATTACHMENT,	/* each attachment file name */
	MIME_PART,		/* each entity walked: "DEPTH type/subtype[ charset]" */
	MIME_NKINDS
};

void		 mime_init(void);
/* Never NULL: an empty message parses to no parts. */
struct mime_msg	*mime_parse(const char *raw, size_t len);
void		 mime_free(struct mime_msg *);

size_t		 mime_count(const struct mime_msg *, enum mime_kind);
/* Item i of a list (i < mime_count), NUL-terminated; *len is its length. */
const char	*mime_item(const struct mime_msg *, enum mime_kind, size_t i, size_t *len);
/* Top-level headers: the idx-th field named name (case-insensitive), or
 * NULL. Decoded subject is mime_header(m, "Subject", 0). */
const char	*mime_header(const struct mime_msg *, const char *name, size_t idx);
size_t		 mime_nheaders(const struct mime_msg *);
/* Field i: *name set to its name, returns its decoded value. */
const char	*mime_header_at(const struct mime_msg *, size_t i, const char **name);
/* Non-zero when a MIME_MAX_* bound cut something off. */
int		 mime_truncated(const struct mime_msg *);

#endif
