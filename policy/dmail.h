/*
 * dmail.h -- one recipient's quarantine digest as an Internet message
 * (RFC 5322, MIME): multipart/alternative with a text/plain and a
 * text/html part, both quoted-printable UTF-8, listing per message its
 * sender, subject, score and main reason with signed links
 * (policy/dlink.h): release, delete, and (with head.allow) release and
 * always allow the sender.
 *
 * Headers: Date (local time), From, To, Subject (RFC 2047 encoded-words
 * when it carries non-ASCII), Message-ID, Auto-Submitted: auto-generated
 * (RFC 3834: no auto-replies to it), MIME-Version, Content-Type.
 *
 * Exposure: sender, subject and reason come from an attacker's message.
 * Each is cut to a length, invalid UTF-8 and control characters (CR, LF
 * included) become '?', and in the HTML part every one of & < > " ' is
 * written as an entity, so no message text can add a header, a part, a
 * tag or an attribute.
 *
 * Public calls: dmail_compose, dmail_clean, dmail_html_escape.
 * Ownership: dmail_compose's message is the caller's (free it).
 * Thread: any; no shared state.
 */
#ifndef POSTERN_DMAIL_H
#define POSTERN_DMAIL_H

#include "lib/util.h"
#include "policy/dlink.h"

#include <stddef.h>
#include <time.h>

struct buf;
struct conf;

#define DMAIL_SUBJECT_MAX	200	/* bytes of a listed subject */
#define DMAIL_REASON_MAX	200	/* bytes of a listed reason */

/* One held message as the digest lists it (strings already cleaned). */
struct dmail_item {
	char	 id[ID_LEN + 1];
	time_t	 ts;
	double	 score;
	char	*from, *subject, *reason;
};

/* What goes around the items. */
struct dmail_head {
	const char	*rcpt;
	const char	*from;		/* the digest's sender address */
	const char	*base;		/* web.public_url without a trailing '/' */
	const char	*hostname;	/* for the Message-ID */
	time_t		 now;
	time_t		 expires;	/* the links' expiry */
	int		 more;		/* held messages not listed (over the cap) */
	int		 allow;		/* offer the release-and-allow link */
};

/* The whole message, CRLF line ends, in *len bytes (xmalloc'd). */
char	*dmail_compose(const struct dmail_head *, const struct dmail_item *, int n,
	    const unsigned char key[DLINK_KEY_LEN], size_t *len);
/* s cut to max bytes (never inside a UTF-8 sequence), invalid UTF-8 and
 * control characters as '?'; NULL as "". xmalloc'd. */
char	*dmail_clean(const char *s, size_t max);
/* s with & < > " ' as entities, appended to b. */
void	 dmail_html_escape(struct buf *b, const char *s);

#endif
