/*
 * addr.h -- parse the argument of MAIL FROM: and RCPT TO: (RFC 5321 4.1.2)
 * into a path and ESMTP parameters.
 *
 * Paths: "<>" (MAIL only), "<local@domain>", source routes dropped
 * ("<@a,@b:x@c>" -> "x@c"), quoted local parts, address literals
 * ([1.2.3.4], [IPv6:...]), and UTF-8 in local part and domain only when
 * the transaction is SMTPUTF8 (RFC 6531 3.3). Parameters: keyword[=value]
 * per RFC 5321 4.1.2 (esmtp-param), values printable ASCII without '='.
 * Ownership: results live in the caller's struct addr_cmd.
 * Thread: no shared state.
 */
#ifndef POSTERN_ADDR_H
#define POSTERN_ADDR_H

#include "lib/lim.h"

#include <stddef.h>

enum addr_err {
	ADDR_OK = 0,
	ADDR_E_SYNTAX,		/* 501 5.5.4: not "FROM:<...>" at all */
	ADDR_E_PATH,		/* 501 5.1.7 / 5.1.3: bad address */
	ADDR_E_PARAM,		/* 501 5.5.4: malformed parameter */
	ADDR_E_UTF8,		/* 553 5.6.7: non-ASCII without SMTPUTF8 */
	ADDR_E_LONG,		/* 501 5.5.4 / 552: part over its RFC length */
};

struct addr_param {
	const char	*key;
	const char	*value;		/* NULL when the keyword has no value */
};

struct addr_cmd {
	char		 path[LIM_PATH + 1];	/* no brackets; "" for <> */
	int		 nparams;
	struct addr_param params[LIM_ESMTP_PARAMS];
	char		 raw[512];		/* params as given, for relaying */
	char		 store[512];		/* storage the params point into */
};

/*
 * Parse arg (without the verb), e.g. "FROM:<a@b> SIZE=10". prefix is
 * "FROM:" or "TO:" (case-insensitive). utf8 is 1 when SMTPUTF8 was given
 * at MAIL, 0 when not, -1 to take it from this command's own parameters.
 * null_ok allows "<>". Returns ADDR_OK or the first problem.
 */
enum addr_err addr_parse(const char *arg, const char *prefix, int utf8, int null_ok,
		    struct addr_cmd *);
/* The value of a parameter (case-insensitive key); "" when it has none;
 * NULL when absent. */
const char	*addr_param(const struct addr_cmd *, const char *key);
/* Check one address "local@domain" (no brackets); 0 or -1. */
int		 addr_mailbox_ok(const char *, size_t, int utf8);
/* Is this RFC 3461 4 xtext ("+XX" hex escapes, printable otherwise)? */
int		 addr_xtext_ok(const char *);

#endif
