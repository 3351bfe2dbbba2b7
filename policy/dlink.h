/*
 * dlink.h -- the signed links of quarantine digests: one token says which
 * message (quarantine id), what to do with it (release, delete, release
 * and allow the sender), for which recipient, and until when. The
 * dashboard's /digest/ page acts on a token without a login, so the token
 * is the whole authority: HMAC-SHA256 (OpenSSL) over all four fields with
 * a key only Postern knows.
 *
 * Token: base64url(payload) "." base64url(mac), no padding, where payload
 * is "1\n" id "\n" action "\n" recipient "\n" expiry (decimal seconds of
 * the wall clock). The mac covers the payload's bytes exactly, so an
 * altered field, a token cut short or one signed with another key fails
 * the signature before any field is believed.
 *
 * Key: DLINK_KEY_LEN random bytes, made on first use and kept in the
 * database's shared values (db_meta_put with keep: of several nodes
 * starting at once, the first one's key wins and every node reads that
 * one back), so a link works on whichever node serves it and across
 * restarts. dlink_key() caches it for the life of the process.
 *
 * Public calls: dlink_sign, dlink_verify (pure: key given), dlink_key,
 *   dlink_action_name, dlink_action_parse.
 * Thread: any; dlink_key's cache is guarded by a mutex.
 * Exposure: tokens arrive from anyone on the Internet; dlink_verify bounds
 *   their length (DLINK_TOKEN_MAX) and compares macs in constant time.
 */
#ifndef POSTERN_DLINK_H
#define POSTERN_DLINK_H

#include "lib/lim.h"
#include "lib/util.h"

#include <stddef.h>
#include <time.h>

#define DLINK_KEY_LEN		32	/* bytes: SHA-256's block-sized key */
#define DLINK_TOKEN_MAX		1024	/* characters of a token we read */

enum dlink_action { DLINK_RELEASE, DLINK_DELETE, DLINK_ALLOW };

enum dlink_err {
	DLINK_OK = 0,
	DLINK_MALFORMED,	/* not a token at all (or too long) */
	DLINK_BAD_SIG,		/* altered, or signed with another key */
	DLINK_EXPIRED,		/* signed by us, past its expiry */
};

struct dlink {
	char		 id[ID_LEN + 1];
	enum dlink_action action;
	char		 rcpt[LIM_PATH + 1];
	time_t		 expires;
};

/* The token for l (xmalloc'd; URL-safe as it is). */
char	*dlink_sign(const unsigned char key[DLINK_KEY_LEN], const struct dlink *l);
/* Check a token at time now: DLINK_OK with *out filled, or why not. */
enum dlink_err dlink_verify(const unsigned char key[DLINK_KEY_LEN], const char *token,
	    time_t now, struct dlink *out);
/* The shared key (made and stored on first use): 0, or -1 when the
 * database cannot give one (logged). */
int	 dlink_key(unsigned char key[DLINK_KEY_LEN]);
/* "release", "delete", "allow"; and back (0 or -1). */
const char *dlink_action_name(enum dlink_action);
int	 dlink_action_parse(const char *, size_t len, enum dlink_action *);

#endif
