/*
 * authres.c -- Authentication-Results hygiene; see authres.h.
 *
 * The authserv-id is the first lexical element of the field (RFC 8601 2.2:
 * authserv-id = value, RFC 2045's token or quoted-string), possibly after
 * CFWS. Comments nest and may hold quoted-pairs (RFC 5322 3.2.2); a forger
 * will try every one of those forms, so we parse them rather than match text.
 */
#include "policy/authres.h"
#include "lib/util.h"
#include "policy/msghdr.h"
#include "policy/policy.h"

#include <string.h>
#include <strings.h>

static size_t	 authres_cfws(const char *, size_t, size_t);
static int	 authres_tokenchar(unsigned char);
static int	 authres_forged(const struct msghdr_field *, const char *host);

/* Name prefixes of the fields Postern itself writes (X-Spam-Score,
 * X-Spam-Flag at delivery; X-Postern-Released at a quarantine release):
 * whatever a sender wrote under them is a forgery, whatever it says. */
static const char *const authres_own_prefix[] = { "X-Spam-", "X-Postern-" };

/* Skip CFWS from i; returns the index of the next other character (or len;
 * an unterminated comment swallows the rest). */
static size_t
authres_cfws(const char *s, size_t len, size_t i)
{
	/* Nesting is only counted, never recursed into, so any depth costs
	 * one pass. A cap that gave up on deep comments would leave the field
	 * unread and unstripped, while a reader downstream could still see our
	 * authserv-id after them: a forgery that passes. */
	size_t depth = 0;

	while (i < len) {
		unsigned char c = (unsigned char)s[i];
		if (depth > 0 && c == '\\' && i + 1 < len) {
			i += 2;
			continue;
		}
		if (c == '(') {
			depth++;
		} else if (c == ')' && depth > 0) {
			depth--;
		} else if (depth == 0 && c != ' ' && c != '\t' && c != '\r' &&
		    c != '\n') {
			break;
		}
		i++;
	}
	return i;
}

/* RFC 2045 token: printable ASCII but SP and tspecials. */
static int
authres_tokenchar(unsigned char c)
{
	return c > 0x20 && c < 0x7f && strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

int
authres_servid(const char *v, size_t len, char *out, size_t outsz)
{
	size_t i = authres_cfws(v, len, 0), o = 0;

	if (i >= len || outsz == 0)
		return -1;
	if (v[i] == '"') {
		for (i++; i < len && v[i] != '"'; i++) {
			if (v[i] == '\\' && i + 1 < len)
				i++;
			if (v[i] == '\r' || v[i] == '\n')
				continue;
			if (o + 1 >= outsz || o >= AUTHRES_SERVID_MAX)
				return -1;
			out[o++] = v[i];
		}
		/* Unterminated: take what is there; a reader downstream
		 * might be as lenient, so it counts as a claim. */
	} else {
		/* RFC 2045 excludes '@' and '/', yet real MTAs write bare host
		 * names only; accept what the hostname may hold plus what a
		 * forger could append, and let the comparison decide. */
		for (; i < len && (authres_tokenchar((unsigned char)v[i]) ||
		    v[i] == '@' || v[i] == '/'); i++) {
			if (o + 1 >= outsz || o >= AUTHRES_SERVID_MAX)
				return -1;
			out[o++] = v[i];
		}
	}
	if (o > 1 && out[o - 1] == '.')
		o--;
	out[o] = '\0';
	return o == 0 ? -1 : 0;
}

/* Is f a field only we may write: one of our own names, or an
 * Authentication-Results that claims our authserv-id host ("" when the
 * hostname cannot be one)? */
static int
authres_forged(const struct msghdr_field *f, const char *host)
{
	char id[AUTHRES_SERVID_MAX + 1];

	if (f->name == NULL)
		return 0;
	for (size_t i = 0; i < ARRAY_SIZE(authres_own_prefix); i++) {
		size_t pl = strlen(authres_own_prefix[i]);
		if (f->namelen > pl && strncasecmp(f->name, authres_own_prefix[i], pl) == 0)
			return 1;
	}
	return *host != '\0' && msghdr_is(f, "Authentication-Results") &&
	    authres_servid(f->value, f->valuelen, id, sizeof(id)) == 0 &&
	    strcasecmp(id, host) == 0;
}

int
authres_skips(const char *msg, size_t len, const char *hostname,
    struct pol_skip **out)
{
	struct msghdr_field f;
	char host[AUTHRES_SERVID_MAX + 1] = "";
	size_t pos = 0, hl = strlen(hostname);
	int n = 0;

	*out = NULL;
	if (hl > 0 && hl <= AUTHRES_SERVID_MAX) {
		memcpy(host, hostname, hl + 1);
		if (hl > 1 && host[hl - 1] == '.')
			host[hl - 1] = '\0';
	}
	while (msghdr_next(msg, len, &pos, &f)) {
		if (!authres_forged(&f, host))
			continue;
		*out = xrealloc(*out, sizeof(**out) * (size_t)(n + 1));
		(*out)[n].off = f.off;
		(*out)[n].len = f.len;
		n++;
	}
	return n;
}

char *
authres_value(const char *in, char *out, size_t outsz)
{
	size_t o = 0;

	for (; in != NULL && *in != '\0' && o + 1 < outsz; in++) {
		unsigned char c = (unsigned char)*in;
		if (authres_tokenchar(c) || c == '@' || c == '/' || c == '=')
			out[o++] = (char)c;
	}
	out[o] = '\0';
	return out;
}

const char *
authres_result_name(enum authres_result r)
{
	static const char *names[] = {
		[AUTHRES_NONE] = "none", [AUTHRES_PASS] = "pass",
		[AUTHRES_FAIL] = "fail", [AUTHRES_POLICY] = "policy",
		[AUTHRES_NEUTRAL] = "neutral", [AUTHRES_TEMPERROR] = "temperror",
		[AUTHRES_PERMERROR] = "permerror",
	};

	return (unsigned)r < ARRAY_SIZE(names) ? names[r] : "permerror";
}
