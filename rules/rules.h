/*
 * rules.h -- regex rules: the rule model, its text format, PCRE2 (JIT) rule
 * sets, matching over message parts and the envelope, and the atomic swap.
 *
 * A rule is plain data (struct rule_def, the CONTRACT.md rule object).
 * rule_set_build() compiles a list of them aside into an immutable,
 * refcounted struct rule_set; rule_swap() publishes it. A session takes a
 * reference with rule_current() and keeps it for a transaction, so sessions
 * in flight finish with the set they began with while new ones see the new
 * set. rules/ knows nothing of SMTP: callers say which targets to run.
 *
 * Runaway patterns: every match runs under rules.match_limit and
 * rules.depth_limit (a pcre2_match_context). A match that hits a limit is
 * logged and counted as no match (rule_limit_hits()).
 *
 * Public calls: rule_def_*, rule_line_*, rule_text_parse, rule_set_*,
 *   rule_current, rule_swap, rule_test, rule_target_*, rule_action_*.
 * Ownership: a rule_def owns its strings (rule_def_clear). A rule_set owns
 *   copies of its rules. Hits point into the set and the input: valid only
 *   inside the callback.
 * Thread: a built rule_set is read-only and shared by any number of
 *   threads; refcounts and the current-set pointer are atomic/locked.
 * Privilege: none (memory only).
 */
#ifndef POSTERN_RULES_H
#define POSTERN_RULES_H

#include <stddef.h>

struct mime_msg;
struct rule_set;

#define RULE_MAX_NAME		64	/* bytes of a rule name */
#define RULE_MAX_PATTERN	4096	/* bytes of a pattern */
#define RULE_MAX_LINE		8192	/* one line of the text format */
#define RULE_MAX_RULES		20000	/* rules in one set */
/* A header name is RFC 5322 2.2 ftext; RFC 5322 2.1.1 caps a line at 998. */
#define RULE_MAX_HEADER_NAME	76
/* The option word after a rule's action (and score) in the text format. */
#define RULE_LOG_ONLY	"log-only"

enum rule_target {
	RULE_HEADER = 0,	/* header:<Name>, every field of that name */
	RULE_SUBJECT,
	RULE_FROM,
	RULE_BODY,		/* each text part, decoded; HTML as text */
	RULE_RAW,		/* the message as received */
	RULE_URL,
	RULE_ATTACHMENT,	/* file names */
	RULE_HELO,
	RULE_MAIL_FROM,
	RULE_RCPT_TO,
	RULE_CLIENT_IP,
	RULE_CLIENT_NAME,
	RULE_NTARGETS
};
#define RULE_MASK(t)	(1u << (t))
#define RULE_MASK_CONTENT (RULE_MASK(RULE_HEADER) | RULE_MASK(RULE_SUBJECT) | \
	RULE_MASK(RULE_FROM) | RULE_MASK(RULE_BODY) | RULE_MASK(RULE_RAW) | \
	RULE_MASK(RULE_URL) | RULE_MASK(RULE_ATTACHMENT))
#define RULE_MASK_ALL	((1u << RULE_NTARGETS) - 1)

enum rule_action {
	RULE_SCORE = 0,		/* add the rule's score */
	RULE_ACCEPT,
	RULE_QUARANTINE,
	RULE_REJECT,
	RULE_TEMPFAIL,
	RULE_NACTIONS
};

/* One rule as stored, imported, exported and sent over the API. */
struct rule_def {
	long long id;		/* database row, 0 when none */
	char	*name;
	char	*target;	/* "subject", "header:X-Mailer", ... */
	char	*pattern;
	char	*flags;		/* subset of "imsx" */
	char	*action;	/* "score", "accept", ... */
	double	 score;
	int	 enabled;
	int	 log_only;	/* matches and is recorded; no score, no action */
};

/* Options for building a set (from conf rules.*). */
struct rule_opts {
	unsigned long match_limit;
	unsigned long depth_limit;
	int	 jit;		/* compile with pcre2_jit_compile */
	int	 no_prefilter;	/* run every regex, skip the literal prefilter (tests) */
};

/* What rules look at. Unset fields (NULL) are simply not matched. */
struct rule_input {
	const char *helo, *mail_from, *client_ip, *client_name;
	const char *const *rcpts;
	size_t	 nrcpts;
	const struct mime_msg *msg;	/* content targets; NULL at envelope stages */
	const char *raw;		/* for target raw */
	size_t	 rawlen;
};

/* One rule that matched, and where (its first match). */
struct rule_hit {
	const char *name;
	enum rule_action action;
	double	 score;
	int	 log_only;	/* the rule's: callers apply neither of the two */
	enum rule_target target;
	const char *where;	/* "subject", "header:Received[2]", "body[0]", "url[3]" */
	const char *item;	/* the text matched against */
	size_t	 itemlen;
	size_t	 off, len;	/* the match within item */
};

typedef void rule_hit_fn(void *arg, const struct rule_hit *);

/* Names <-> enums; -1 when unknown. "header:Foo" parses as RULE_HEADER. */
int	 rule_target_parse(const char *);
int	 rule_action_parse(const char *);
const char *rule_action_name(enum rule_action);

void	 rule_def_clear(struct rule_def *);
void	 rule_def_copy(struct rule_def *dst, const struct rule_def *src);
/* Check every field and compile the pattern: 0, or -1 with a message in
 * err, for a bad pattern "pattern at offset N: <PCRE2's reason>". */
int	 rule_def_check(const struct rule_def *, char *err, size_t errsz);

/*
 * The text format, one rule per line (docs/rules.md):
 *   name | target | /pattern/flags | action [score] [log-only]
 * '#' starts a comment line; a leading '!' marks a disabled rule; a
 * trailing word log-only sets log_only.
 * rule_line_parse: 1 and *out filled, 0 for a blank/comment line, -1 with
 * err. rule_line_format: the line for a rule, with '\n' (xmalloc'd).
 */
int	 rule_line_parse(const char *line, struct rule_def *out, char *err, size_t errsz);
char	*rule_line_format(const struct rule_def *);
/* A whole file's text: every rule, or -1 with "line N: ..." for the first
 * bad line and nothing returned. *defs is xmalloc'd (caller clears each). */
int	 rule_text_parse(const char *text, size_t len, struct rule_def **defs,
	    size_t *n, char *err, size_t errsz);

/* Compile enabled rules aside (refcount 1); NULL with err naming the rule. */
struct rule_set	*rule_set_build(const struct rule_def *, size_t n,
		    const struct rule_opts *, char *err, size_t errsz);
struct rule_set	*rule_set_ref(struct rule_set *);
void		 rule_set_unref(struct rule_set *);
size_t		 rule_set_count(const struct rule_set *);
/* RULE_MASK() of the targets its rules use: skip parsing what none reads. */
unsigned	 rule_set_targets(const struct rule_set *);
/* The build's version tag (whatever the loader passed to rule_set_tag). */
void		 rule_set_tag(struct rule_set *, long long version);
long long	 rule_set_version(const struct rule_set *);
/* Run every rule whose target is in mask; fn once per matching rule.
 * Returns the number of matching rules. */
int		 rule_set_eval(const struct rule_set *, const struct rule_input *,
		    unsigned mask, rule_hit_fn *fn, void *arg);

/* The process-wide current set: rule_current() returns a new reference (or
 * NULL before the first swap); rule_swap() takes one reference (or NULL). */
struct rule_set	*rule_current(void);
void		 rule_swap(struct rule_set *);
/* Matches given up on a match/depth limit since start (all sets). */
unsigned long	 rule_limit_hits(void);

/* POST /api/rules/test: one unsaved rule against a raw message and an
 * optional envelope. 1 matched (*hit's where/excerpt filled), 0 not, -1 bad
 * rule (err). */
struct rule_test_result {
	char	 where[64];
	size_t	 off, len;
	char	 excerpt[256];	/* the matched text, cut to fit */
};
int	 rule_test(const struct rule_def *, const char *raw, size_t len,
	    const struct rule_input *env, const struct rule_opts *,
	    struct rule_test_result *, char *err, size_t errsz);

#endif
