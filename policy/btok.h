/*
 * btok.h -- the classifier's tokeniser: a parsed message (rules/mime.h)
 * in, a set of distinct 64-bit token hashes out, each able to say what it
 * was ("viagra", "subject:free", "url:example.com", "click|here").
 *
 * Tokens, each hashed with XXH3 (libxxhash) and a seed per kind, so the
 * same word in the body and in the Subject are different tokens:
 *   - body words: text and HTML-as-text parts, lower-cased (ASCII),
 *     BTOK_MIN_WORD..BTOK_MAX_WORD bytes; a longer run is one "skip" token
 *     by its first letter and length bucket (as SpamAssassin does);
 *   - orthogonal sparse bigrams of body words: each word paired with each
 *     of the next BTOK_WINDOW - 1 words, the distance part of the token;
 *   - header tokens keyed by header name: Subject words, From/To/Cc/
 *     Reply-To words and address domains, Received words (hosts, helo,
 *     protocol) and relay IPv4 addresses, whole and as their /24,
 *     X-Mailer/User-Agent, Message-ID domain, Content-Type;
 *   - URL hosts and their last two labels;
 *   - structural traits: the MIME layout, each part's type and charset,
 *     HTML without a text part, attachment extensions, size and URL count
 *     buckets.
 * Bounds: at most BTOK_MAX_WORDS body words per message and BTOK_MAX_TOKENS
 * tokens in all; the rest of a huge message is not looked at.
 *
 * Public calls: btok_init, btok_message, btok_text, btok_free.
 * Ownership: a struct btok_set owns its arrays; btok_free() releases them.
 * Thread: none shared; one set per thread at a time.
 */
#ifndef POSTERN_BTOK_H
#define POSTERN_BTOK_H

#include <stddef.h>
#include <stdint.h>

struct mime_msg;

#define BTOK_MIN_WORD	2	/* bytes */
#define BTOK_MAX_WORD	32	/* bytes; longer runs become a "skip" token */
#define BTOK_WINDOW	3	/* a word and the 2 after it make bigrams */
#define BTOK_MAX_WORDS	8000	/* body words looked at per message */
#define BTOK_MAX_TOKENS	65536	/* tokens per message in all */

/* One distinct token: its hash, and where its text is (offsets into the
 * set's arena of NUL-terminated words; b is 0 for a single word). */
struct btok {
	uint64_t h;
	uint32_t a, b;
	uint8_t	 kind;		/* enum btok_kind (btok.c) */
	uint8_t	 dist;		/* bigrams: words apart */
};

struct btok_set {
	/* Set before btok_message: body text bytes read (0: all; the
	 * check's first pass reads bayes.first_pass_bytes, docs/bayes.md). */
	size_t	 max_text;
	int	 cut;		/* set by btok_message: max_text left text out */
	struct btok *v;
	size_t	 n, cap;
	char	*arena;
	size_t	 alen, acap;
	/* the previous BTOK_WINDOW - 1 body words (word hash, arena offset),
	 * newest first */
	uint64_t win_h[BTOK_WINDOW];
	uint32_t win_a[BTOK_WINDOW];
	unsigned nwin, nwords;
};

/* Tokenise m (raw length rawlen, for the size trait) into s, which must be
 * zeroed or freed before: afterwards s->v holds s->n distinct tokens. */
void	 btok_message(struct btok_set *s, const struct mime_msg *m, size_t rawlen);
/* Tokenise one plain text as body words (tests, and btok_message). */
void	 btok_text(struct btok_set *s, const char *text, size_t len);
/* Drop duplicate hashes, first occurrences kept in order (btok_message
 * does it). */
void	 btok_unique(struct btok_set *s);
/* The token's readable form into buf (cut to sz); buf. */
char	*btok_format(const struct btok_set *s, const struct btok *t, char *buf, size_t sz);
void	 btok_free(struct btok_set *s);

#endif
