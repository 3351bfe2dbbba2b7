/*
 * relay.c -- the relay guard's lists; see relay.h.
 *
 * A list is a sorted array of lower-cased entries, searched with
 * bsearch(): a domain costs one search per label, a recipient two (the
 * address, then "@domain"), however long the list. Entries are checked
 * with the RCPT parser's own grammar (addr_mailbox_ok), so a list cannot
 * hold what no RCPT could ever match.
 */
#include "lib/relay.h"
#include "lib/addr.h"
#include "lib/lim.h"
#include "lib/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A bound on entries, so a wrong file (a mailbox, a log) cannot take all
 * memory; a million domains or addresses is beyond any real site. */
#define RELAY_MAX_ENTRIES	1000000

struct relay_list {
	char		**e;	/* lower case, sorted by strcmp */
	size_t		 n, cap;
	enum relay_kind	 kind;
};

/* Where an entry came from, for the error message. */
struct relay_src {
	const char	*file;	/* NULL: the config value itself */
	long		 line;
};

static int	 relay_entry_ok(enum relay_kind, const char *);
static int	 relay_add(struct relay_list *, const char *tok, const struct relay_src *,
		    char *why, size_t whysz);
static int	 relay_add_text(struct relay_list *, char *text, const struct relay_src *,
		    char *why, size_t whysz);
static int	 relay_read_file(struct relay_list *, const char *path, char *why,
		    size_t whysz);
static int	 relay_cmp(const void *, const void *);
static int	 relay_has(const struct relay_list *, const char *key);
static void	 relay_lower(char *);

static void
relay_lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

/* Could this entry match a RCPT path? The forms of relay.h only. */
static int
relay_entry_ok(enum relay_kind kind, const char *e)
{
	char buf[LIM_PATH + 4];
	const char *at = strrchr(e, '@');

	if (strlen(e) > LIM_PATH)
		return 0;
	if (kind == RELAY_DOMAINS) {
		if (at != NULL)
			return 0;
		snprintf(buf, sizeof(buf), "x@%s", e[0] == '.' ? e + 1 : e);
	} else if (e[0] == '@')
		snprintf(buf, sizeof(buf), "x%s", e);
	else
		snprintf(buf, sizeof(buf), "%s", e);
	return addr_mailbox_ok(buf, strlen(buf), 1) == 0;
}

static int
relay_add(struct relay_list *l, const char *tok, const struct relay_src *src,
    char *why, size_t whysz)
{
	char where[300] = "";

	if (src->file != NULL)
		snprintf(where, sizeof(where), "%s:%ld: ", src->file, src->line);
	if (!relay_entry_ok(l->kind, tok)) {
		snprintf(why, whysz, "%s'%.80s' is not %s", where, tok,
		    l->kind == RELAY_DOMAINS ?
		    "a domain; write example.org, or .example.org for its subdomains" :
		    "an address; write user@example.org, or @example.org for the whole domain");
		return -1;
	}
	if (l->n == RELAY_MAX_ENTRIES) {
		snprintf(why, whysz, "%smore than %d entries; is this the right file?",
		    where, RELAY_MAX_ENTRIES);
		return -1;
	}
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->e = xrealloc(l->e, l->cap * sizeof(*l->e));
	}
	l->e[l->n] = xstrdup(tok);
	relay_lower(l->e[l->n++]);
	return 0;
}

/* Every entry of one piece of text (a line of a file, or the config
 * value): separated by commas or white space, '#' to the end a comment. */
static int
relay_add_text(struct relay_list *l, char *text, const struct relay_src *src,
    char *why, size_t whysz)
{
	char *save = NULL, *hash = strchr(text, '#');

	if (hash != NULL)
		*hash = '\0';
	for (char *t = strtok_r(text, ", \t\r\n", &save); t != NULL;
	    t = strtok_r(NULL, ", \t\r\n", &save))
		if (relay_add(l, t, src, why, whysz) == -1)
			return -1;
	return 0;
}

static int
relay_read_file(struct relay_list *l, const char *path, char *why, size_t whysz)
{
	struct relay_src src = { .file = path };
	FILE *fp = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	int rc = 0;

	if (fp == NULL) {
		snprintf(why, whysz, "cannot read %s: %s; give a readable file "
		    "(file:PATH) or the entries themselves", path, strerror(errno));
		return -1;
	}
	while (rc == 0 && getline(&line, &cap, fp) != -1) {
		src.line++;
		rc = relay_add_text(l, line, &src, why, whysz);
	}
	if (rc == 0 && ferror(fp)) {
		snprintf(why, whysz, "cannot read %s: %s", path, strerror(errno));
		rc = -1;
	}
	free(line);
	fclose(fp);
	return rc;
}

static int
relay_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
relay_load(const char *value, enum relay_kind kind, struct relay_list **out,
    char *why, size_t whysz)
{
	struct relay_list *l = xcalloc(1, sizeof(*l));
	struct relay_src inline_src = { 0 };
	int rc;

	l->kind = kind;
	*out = NULL;
	if (strncmp(value, "file:", 5) == 0) {
		rc = relay_read_file(l, value + 5, why, whysz);
	} else if (strchr(value, '/') != NULL) {
		rc = relay_read_file(l, value, why, whysz);
	} else {
		char *copy = xstrdup(value);
		rc = relay_add_text(l, copy, &inline_src, why, whysz);
		free(copy);
	}
	if (rc == -1 || l->n == 0) {
		relay_free(l);
		return rc;
	}
	qsort(l->e, l->n, sizeof(*l->e), relay_cmp);
	*out = l;
	return 0;
}

void
relay_free(struct relay_list *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->n; i++)
		free(l->e[i]);
	free(l->e);
	free(l);
}

static int
relay_has(const struct relay_list *l, const char *key)
{
	return bsearch(&key, l->e, l->n, sizeof(*l->e), relay_cmp) != NULL;
}

int
relay_allows(const struct relay_list *domains, const struct relay_list *rcpts,
    const char *rcpt)
{
	char a[LIM_PATH + 2], *at;

	if (domains == NULL && rcpts == NULL)
		return 1;
	if (strcasecmp(rcpt, "postmaster") == 0)
		return 1;
	if (strlen(rcpt) > LIM_PATH || (at = strrchr(rcpt, '@')) == NULL)
		return 0;
	/* user%host@us, host!user@us, "user@host"@us: routed on from here */
	if (strcspn(rcpt, "%!@") < (size_t)(at - rcpt))
		return 0;
	snprintf(a, sizeof(a), "%s", rcpt);
	relay_lower(a);
	at = strrchr(a, '@');
	if (domains != NULL) {
		const char *d = at + 1;
		int hit = relay_has(domains, d);
		for (const char *p = strchr(d, '.'); !hit && p != NULL; p = strchr(p + 1, '.'))
			hit = relay_has(domains, p);	/* ".parent" entries */
		if (!hit)
			return 0;
	}
	return rcpts == NULL || relay_has(rcpts, a) || relay_has(rcpts, at);
}
