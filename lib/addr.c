/*
 * addr.c -- MAIL/RCPT argument parsing (see addr.h).
 *
 * Grammar from RFC 5321 4.1.2 (Path, Mailbox, Local-part, Domain,
 * address-literal), RFC 5321 4.1.3 (address literals) and RFC 6531 3.3
 * (UTF-8 in atoms and sub-domains when SMTPUTF8 is in force).
 */
#include "lib/addr.h"
#include "lib/utf8.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static int	 addr_atext(unsigned char);
static int	 addr_dot_string(const char *, size_t, int);
static int	 addr_quoted(const char *, size_t);
static int	 addr_domain(const char *, size_t, int);
static int	 addr_literal(const char *, size_t);
static enum addr_err addr_params_parse(const char *, struct addr_cmd *);
static enum addr_err addr_path(const char *, size_t, int, int, struct addr_cmd *);

/* RFC 5322 3.2.3 atext. */
static int
addr_atext(unsigned char c)
{
	return isalnum(c) || (c && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* atoms separated by single dots; UTF-8 octets when utf8. */
static int
addr_dot_string(const char *s, size_t n, int utf8)
{
	if (n == 0 || s[0] == '.' || s[n - 1] == '.')
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.' && s[i - 1] == '.')
			return 0;
		if (c == '.' || addr_atext(c) || (utf8 && c >= 0x80))
			continue;
		return 0;
	}
	return !utf8 || utf8_valid(s, n);
}

/* RFC 5321 Quoted-string: qtextSMTP (32,33,35-91,93-126) or "\" %d32-126. */
static int
addr_quoted(const char *s, size_t n)
{
	if (n < 2 || s[0] != '"' || s[n - 1] != '"')
		return 0;
	for (size_t i = 1; i < n - 1; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\\') {
			if (++i >= n - 1 || s[i] < 32 || s[i] > 126)
				return 0;
		} else if (c < 32 || c > 126 || c == '"')
			return 0;
	}
	return 1;
}

/* sub-domain *("." sub-domain); Let-dig [Ldh-str]; U-labels when utf8. */
static int
addr_domain(const char *s, size_t n, int utf8)
{
	size_t lab = 0;

	if (n == 0 || n > LIM_DOMAIN)
		return 0;
	for (size_t i = 0; i <= n; i++) {
		unsigned char c = i < n ? (unsigned char)s[i] : '.';
		if (c == '.') {
			if (lab == 0 || lab > 63 || s[i - 1] == '-')
				return 0;
			lab = 0;
		} else if (isalnum(c) || (utf8 && c >= 0x80) || (c == '-' && lab > 0)) {
			lab++;
		} else
			return 0;
	}
	return !utf8 || utf8_valid(s, n);
}

/* "[1.2.3.4]", "[IPv6:::1]" or a General-address-literal "[tag:text]". */
static int
addr_literal(const char *s, size_t n)
{
	char buf[LIM_DOMAIN + 1];
	unsigned char bin[16];

	if (n < 3 || n > LIM_DOMAIN || s[0] != '[' || s[n - 1] != ']')
		return 0;
	memcpy(buf, s + 1, n - 2);
	buf[n - 2] = '\0';
	if (strncasecmp(buf, "IPv6:", 5) == 0)
		return inet_pton(AF_INET6, buf + 5, bin) == 1;
	if (inet_pton(AF_INET, buf, bin) == 1)
		return 1;
	/* General-address-literal: Standardized-tag ":" 1*dcontent. */
	char *colon = strchr(buf, ':');
	if (colon == NULL || colon == buf || colon[1] == '\0')
		return 0;
	for (char *p = buf; p < colon; p++)
		if (!isalnum((unsigned char)*p) && *p != '-')
			return 0;
	for (char *p = colon + 1; *p; p++)
		if (*p < 33 || *p > 126 || *p == '[' || *p == ']' || *p == '\\')
			return 0;
	return 1;
}

int
addr_mailbox_ok(const char *s, size_t n, int utf8)
{
	const char *at;
	size_t lp;

	/* The local part may be quoted and hold '@': split at the last one. */
	at = NULL;
	for (size_t i = 0; i < n; i++)
		if (s[i] == '@')
			at = s + i;
	if (at == NULL)
		return -1;
	lp = (size_t)(at - s);
	if (lp == 0 || lp > LIM_LOCAL_PART)
		return -1;
	if (!(s[0] == '"' ? addr_quoted(s, lp) : addr_dot_string(s, lp, utf8)))
		return -1;
	at++;
	n -= lp + 1;
	if (n > 0 && at[0] == '[')
		return addr_literal(at, n) ? 0 : -1;
	return addr_domain(at, n, utf8) ? 0 : -1;
}

int
addr_xtext_ok(const char *s)
{
	for (; *s; s++) {
		if (*s == '+') {
			if (!isxdigit((unsigned char)s[1]) || !isxdigit((unsigned char)s[2]))
				return 0;
			s += 2;
		} else if (*s < 33 || *s > 126 || *s == '=')
			return 0;
	}
	return 1;
}

/* "keyword[=value]" separated by spaces, into cmd->params. */
static enum addr_err
addr_params_parse(const char *s, struct addr_cmd *cmd)
{
	char *p;

	while (*s == ' ')
		s++;
	if (strlen(s) >= sizeof(cmd->raw))
		return ADDR_E_LONG;
	snprintf(cmd->raw, sizeof(cmd->raw), "%s", s);
	snprintf(cmd->store, sizeof(cmd->store), "%s", s);
	/* trailing spaces are not a parameter */
	for (size_t n = strlen(cmd->raw); n > 0 && cmd->raw[n - 1] == ' '; n--)
		cmd->raw[n - 1] = cmd->store[n - 1] = '\0';
	p = cmd->store;
	while (*p) {
		char *tok = p, *eq;
		if (cmd->nparams == LIM_ESMTP_PARAMS)
			return ADDR_E_PARAM;
		while (*p && *p != ' ')
			p++;
		if (*p) {
			*p++ = '\0';
			while (*p == ' ')
				p++;
		}
		if ((eq = strchr(tok, '=')) != NULL)
			*eq++ = '\0';
		if (!isalnum((unsigned char)tok[0]))
			return ADDR_E_PARAM;
		for (char *k = tok; *k; k++)
			if (!isalnum((unsigned char)*k) && *k != '-')
				return ADDR_E_PARAM;
		if (eq != NULL) {
			if (*eq == '\0' || strlen(eq) > LIM_ESMTP_VALUE)
				return ADDR_E_PARAM;
			for (char *v = eq; *v; v++)
				if ((unsigned char)*v < 33 || *v == '=' || *v == 127)
					return ADDR_E_PARAM;
		}
		cmd->params[cmd->nparams].key = tok;
		cmd->params[cmd->nparams].value = eq;
		cmd->nparams++;
	}
	return ADDR_OK;
}

const char *
addr_param(const struct addr_cmd *cmd, const char *key)
{
	for (int i = 0; i < cmd->nparams; i++)
		if (strcasecmp(cmd->params[i].key, key) == 0)
			return cmd->params[i].value ? cmd->params[i].value : "";
	return NULL;
}

/* The text between < and >: optional source route, then the mailbox. */
static enum addr_err
addr_path(const char *p, size_t n, int utf8, int null_ok, struct addr_cmd *cmd)
{
	if (n == 0) {
		if (!null_ok)
			return ADDR_E_PATH;
		cmd->path[0] = '\0';
		return ADDR_OK;
	}
	if (p[0] == '@') {	/* A-d-l ":" -- RFC 5321 4.1.2, ignored (C.) */
		const char *colon = memchr(p, ':', n);
		if (colon == NULL)
			return ADDR_E_PATH;
		n -= (size_t)(colon + 1 - p);
		p = colon + 1;
	}
	if (n > LIM_PATH - 2)
		return ADDR_E_LONG;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] >= 0x80 && !utf8)
			return ADDR_E_UTF8;
	memcpy(cmd->path, p, n);
	cmd->path[n] = '\0';
	/* RFC 5321 4.5.1: <Postmaster> without a domain is a valid RCPT. */
	if (!null_ok && strcasecmp(cmd->path, "postmaster") == 0)
		return ADDR_OK;
	return addr_mailbox_ok(p, n, utf8) == 0 ? ADDR_OK : ADDR_E_PATH;
}

enum addr_err
addr_parse(const char *arg, const char *prefix, int utf8, int null_ok,
    struct addr_cmd *cmd)
{
	size_t plen = strlen(prefix);
	const char *lt, *gt, *q;
	enum addr_err e;

	memset(cmd, 0, sizeof(*cmd));
	if (strncasecmp(arg, prefix, plen) != 0)
		return ADDR_E_SYNTAX;
	lt = arg + plen;
	while (*lt == ' ')	/* tolerated, as Postfix does */
		lt++;
	if (*lt != '<')
		return ADDR_E_SYNTAX;
	/* Find the closing '>' outside a quoted local part. */
	for (q = lt + 1, gt = NULL; *q && gt == NULL; q++) {
		if (*q == '"') {
			for (q++; *q && *q != '"'; q++)
				if (*q == '\\' && q[1])
					q++;
			if (*q == '\0')
				return ADDR_E_PATH;
		} else if (*q == '>')
			gt = q;
	}
	if (gt == NULL)
		return ADDR_E_SYNTAX;
	if (gt[1] != '\0' && gt[1] != ' ')
		return ADDR_E_SYNTAX;
	if ((e = addr_params_parse(gt + 1, cmd)) != ADDR_OK)
		return e;
	if (utf8 == -1)
		utf8 = addr_param(cmd, "SMTPUTF8") != NULL;
	return addr_path(lt + 1, (size_t)(gt - lt - 1), utf8, null_ok, cmd);
}
