/*
 * access.c -- see access.h. The lists live in the database; sessions walk
 * a snapshot of them in memory (struct access_snap), shared by all threads
 * and rebuilt when db_admin_token() moves -- an edit here, from the web UI,
 * or from `postern access` in another process -- so an edit takes effect
 * on the next session without a reload, and a session with a current
 * snapshot needs neither a database read nor a worker (access_blocks,
 * pol_stage_needed).
 */
#include "policy/access.h"
#include "db/db.h"
#include "lib/conf.h"
#include "lib/prefix.h"
#include "lib/util.h"
#include "policy/policy_int.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* RFC 5321 4.5.3.1.3: a path is at most 256 octets; a domain 255. */
#define ACCESS_VALUE_MAX	256
/* A value to delete: as long as any that older versions let in. */
#define ACCESS_DEL_MAX		1024

/* Entry kinds, indexed by stage (CONNECT client ... RCPT rcpt). */
static const char *access_kinds[] = { "client", "helo", "sender", "rcpt" };

/* One entry as the snapshot keeps it: what the database said, its kind
 * as an index, and for a client entry its CIDR block, parsed once per
 * snapshot rather than once per connection. */
struct access_ent {
	struct db_access a;		/* strings owned by the snapshot */
	int		 k;		/* index in access_kinds[], -1: unknown */
	int		 cidr_ok;	/* client entry and c parsed */
	struct prefix c;
};

/* The lists as read at one admin token. Entries in the database's order
 * (deny before allow, then kind, value). Freed by the last
 * access_snap_unref(). */
struct access_snap {
	unsigned long long token;
	_Atomic int	 refs;
	size_t		 n, cap;
	struct access_ent *e;
};

static pthread_mutex_t	 access_mtx = PTHREAD_MUTEX_INITIALIZER;
static struct access_snap *access_cur;		/* under access_mtx */

/* What one stage looks for while walking the entries of its kind, and
 * what it found. */
struct access_walk {
	const struct pol_session *ps;
	const char	*name;		/* helo/sender/rcpt, or NULL for client */
	int		 allow, deny;
	char		 entry[ACCESS_VALUE_MAX + 8];
};

static int	 access_visit(struct access_walk *, const struct access_ent *);
static void	 access_run(struct pol_session *, enum pol_stage, const struct pol_msg *);
static int	 access_enabled(const struct conf *);
static int	 access_blocks(const struct pol_session *, enum pol_stage,
		    const struct pol_msg *);
static void	 access_free(struct pol_session *);
static int	 access_snap_add(void *, const struct db_access *);
static struct access_snap *access_snap_get(void);
static int	 access_snap_current(void);
static void	 access_snap_unref(struct access_snap *);

const struct pol_check access_check = {
	.name = "access",
	.stages = 1u << POL_CONNECT | 1u << POL_HELO | 1u << POL_MAIL | 1u << POL_RCPT,
	.enabled = access_enabled,
	.run = access_run,
	.blocks = access_blocks,
	.free = access_free,
};

/* Our index in pol_session.priv[]: the session's snapshot. */
#define ACCESS_SLOT	pol_check_slot(&access_check)

int
access_name_match(const char *entry, const char *name)
{
	const char *at = strrchr(name, '@');
	const char *dom = at ? at + 1 : name;
	size_t el, dl;

	if (strchr(entry, '@') && entry[0] != '@')
		return strcasecmp(entry, name) == 0;
	if (entry[0] == '@')
		return strcasecmp(entry + 1, dom) == 0;
	el = strlen(entry);
	dl = strlen(dom);
	if (dl == el)
		return strcasecmp(entry, dom) == 0;
	return dl > el && dom[dl - el - 1] == '.' && strcasecmp(dom + dl - el, entry) == 0;
}

/* RFC 1035 2.3.4 / RFC 5890: labels of letters, digits, '-' (not at an
 * end) and '_' (DKIM/SRV style), or UTF-8 (an SMTPUTF8 domain), 1 to 63
 * bytes, 255 in all; no empty label. 1 or 0. */
static int
access_domain_ok(const char *d)
{
	size_t n = strlen(d), label = 0;

	if (n == 0 || n > 255 || d[0] == '.' || d[n - 1] == '.')
		return 0;
	for (size_t i = 0; i <= n; i++) {
		unsigned char ch = (unsigned char)d[i];
		if (ch == '.' || ch == '\0') {
			if (label == 0 || d[i - 1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!(ch >= 0x80 || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '_' || (ch == '-' && label > 0)))
			return 0;
		if (++label > 63)
			return 0;
	}
	return 1;
}

/* A name entry: "user@domain" (sender, rcpt), "@domain" or "domain"; a
 * HELO entry may also be an address, bare or as a literal [..]. */
static int
access_name_valid(const char *kind, const char *value, char *why, size_t whysz)
{
	const char *at = strrchr(value, '@'), *dom = at ? at + 1 : value;
	struct prefix c;
	size_t n = strlen(value);

	for (const unsigned char *p = (const unsigned char *)value; *p; p++)
		if (*p <= ' ' || *p == '<' || *p == '>' || *p == 0x7f) {
			snprintf(why, whysz, "no spaces, control characters or <> in entries");
			return -1;
		}
	if (strcmp(kind, "helo") == 0) {
		char lit[ACCESS_VALUE_MAX + 1];
		if (n > 2 && value[0] == '[' && value[n - 1] == ']') {
			snprintf(lit, sizeof(lit), "%.*s", (int)(n - 2), value + 1);
			if (prefix_parse(strncasecmp(lit, "IPv6:", 5) ? lit : lit + 5,
			    &c) == 0 && strchr(lit, '/') == NULL)
				return 0;
		} else if (access_domain_ok(value) || (prefix_parse(value, &c) == 0 &&
		    strchr(value, '/') == NULL))
			return 0;
		snprintf(why, whysz, "'%s' is not a host name or address literal "
		    "(mail.example.org, [192.0.2.1])", value);
		return -1;
	}
	if (at == value + n - 1 || (at != NULL && strchr(value, '@') != at) ||
	    !access_domain_ok(dom)) {
		snprintf(why, whysz, "'%s' is not an address or domain "
		    "(user@example.org, @example.org, example.org)", value);
		return -1;
	}
	return 0;
}

static int
access_kind_ok(const char *kind, char *why, size_t whysz)
{
	if (kind != NULL && (!strcmp(kind, "client") || !strcmp(kind, "helo") ||
	    !strcmp(kind, "sender") || !strcmp(kind, "rcpt")))
		return 0;
	snprintf(why, whysz, "kind must be client, helo, sender or rcpt");
	return -1;
}

int
access_valid(const char *kind, const char *value, char *why, size_t whysz)
{
	struct prefix c;

	if (access_kind_ok(kind, why, whysz) == -1)
		return -1;
	if (value == NULL || *value == '\0' || strlen(value) > ACCESS_VALUE_MAX) {
		snprintf(why, whysz, "value must be 1 to %d characters", ACCESS_VALUE_MAX);
		return -1;
	}
	if (strcmp(kind, "client") != 0)
		return access_name_valid(kind, value, why, whysz);
	if (prefix_parse(value, &c) == -1) {
		snprintf(why, whysz, "'%s' is not an IP address or CIDR block "
		    "(192.0.2.0/24, 2001:db8::/32)", value);
		return -1;
	}
	return 0;
}

int
access_entry_valid(const char *list, const char *kind, const char *value,
    int adding, char *why, size_t whysz)
{
	if (list == NULL || (strcmp(list, "allow") && strcmp(list, "deny"))) {
		snprintf(why, whysz, "list must be allow or deny");
		return -1;
	}
	if (adding)
		return access_valid(kind, value, why, whysz);
	/* What was let in before the checks grew stricter can still go. */
	if (access_kind_ok(kind, why, whysz) == -1)
		return -1;
	if (value == NULL || *value == '\0' || strlen(value) > ACCESS_DEL_MAX) {
		snprintf(why, whysz, "value must be 1 to %d characters", ACCESS_DEL_MAX);
		return -1;
	}
	return 0;
}

/* Does entry e (of the walk's kind) match? Notes allow/deny and the first
 * matching entry; 1 when an allow entry ends the walk. */
static int
access_visit(struct access_walk *w, const struct access_ent *e)
{
	int hit = w->name == NULL ?
	    e->cidr_ok && prefix_match(&e->c, (const struct sockaddr *)&w->ps->client) :
	    access_name_match(e->a.value, w->name);

	if (!hit)
		return 0;
	if (strcmp(e->a.list, "allow") == 0) {
		w->allow = 1;
		snprintf(w->entry, sizeof(w->entry), "%s", e->a.value);
		return 1;
	}
	if (!w->deny)
		snprintf(w->entry, sizeof(w->entry), "%s", e->a.value);
	w->deny = 1;
	return 0;
}

static int
access_enabled(const struct conf *c)
{
	(void)c;
	return 1;
}

/* The access_kinds[] index of a stage. */
static int
access_kind(enum pol_stage stage)
{
	return stage == POL_CONNECT ? 0 : stage == POL_HELO ? 1 :
	    stage == POL_MAIL ? 2 : 3;
}

/* ---- the snapshot ---- */

static int
access_snap_add(void *arg, const struct db_access *e)
{
	struct access_snap *sn = arg;

	if (sn->n == sn->cap) {
		sn->cap = sn->cap ? sn->cap * 2 : 16;
		sn->e = xrealloc(sn->e, sn->cap * sizeof(*sn->e));
	}
	struct access_ent *en = &sn->e[sn->n++];
	en->a = (struct db_access){
		.id = e->id, .created = e->created,
		.list = xstrdup(e->list), .kind = xstrdup(e->kind),
		.value = xstrdup(e->value), .note = xstrdup(e->note ? e->note : ""),
	};
	en->k = -1;
	for (int k = 0; k < (int)ARRAY_SIZE(access_kinds); k++)
		if (strcmp(e->kind, access_kinds[k]) == 0)
			en->k = k;
	en->cidr_ok = en->k == 0 && prefix_parse(e->value, &en->c) == 0;
	return 0;
}

static void
access_snap_unref(struct access_snap *sn)
{
	if (sn == NULL || atomic_fetch_sub(&sn->refs, 1) != 1)
		return;
	for (size_t i = 0; i < sn->n; i++) {
		free((char *)sn->e[i].a.list);
		free((char *)sn->e[i].a.kind);
		free((char *)sn->e[i].a.value);
		free((char *)sn->e[i].a.note);
	}
	free(sn->e);
	free(sn);
}

/* 1 when the shared snapshot matches the database's admin token. */
static int
access_snap_current(void)
{
	unsigned long long token = db_admin_token();
	int ok;

	pthread_mutex_lock(&access_mtx);
	ok = access_cur != NULL && access_cur->token == token;
	pthread_mutex_unlock(&access_mtx);
	return ok;
}

/* A reference to a current snapshot, read from the database when the
 * token moved; NULL when the database cannot be read. The token is taken
 * before the read: an edit racing with it moves the token again, so the
 * next session reads once more rather than missing the edit. */
static struct access_snap *
access_snap_get(void)
{
	unsigned long long token = db_admin_token();
	struct access_snap *sn, *old;

	pthread_mutex_lock(&access_mtx);
	if ((sn = access_cur) != NULL && sn->token == token) {
		atomic_fetch_add(&sn->refs, 1);
		pthread_mutex_unlock(&access_mtx);
		return sn;
	}
	pthread_mutex_unlock(&access_mtx);
	sn = xcalloc(1, sizeof(*sn));
	sn->token = token;
	atomic_init(&sn->refs, 2);	/* the caller's and access_cur's */
	if (db_access_each(NULL, access_snap_add, sn) == -1) {
		atomic_store(&sn->refs, 1);
		access_snap_unref(sn);
		return NULL;
	}
	pthread_mutex_lock(&access_mtx);
	old = access_cur;
	access_cur = sn;
	pthread_mutex_unlock(&access_mtx);
	access_snap_unref(old);
	return sn;
}

/* A stage needs a worker only to read the database: when the session
 * has no snapshot yet and the shared one is stale. */
static int
access_blocks(const struct pol_session *ps, enum pol_stage stage,
    const struct pol_msg *m)
{
	(void)stage; (void)m;
	return (ps == NULL || ps->priv[ACCESS_SLOT] == NULL) && !access_snap_current();
}

static void
access_free(struct pol_session *ps)
{
	access_snap_unref(ps->priv[ACCESS_SLOT]);
	ps->priv[ACCESS_SLOT] = NULL;
}

static void
access_run(struct pol_session *ps, enum pol_stage stage, const struct pol_msg *m)
{
	static const char *what[] = { "client", "HELO name", "sender", "recipient" };
	struct access_walk w = { .ps = ps };
	struct access_snap *sn;
	int k = access_kind(stage);
	char esc[LOG_ESCAPE_MAX];

	(void)m;
	w.name = k == 0 ? NULL : k == 1 ? ps->helo : k == 2 ? ps->mail_from : ps->rcpt;
	if (k != 0 && (w.name == NULL || *w.name == '\0'))
		return;
	if ((sn = ps->priv[ACCESS_SLOT]) == NULL)
		sn = ps->priv[ACCESS_SLOT] = access_snap_get();
	if (sn == NULL) {
		pol_result_add(ps, "access", "temperror", 0, NULL, "access lists unreadable");
		pol_hard_set(ps, POL_TEMPFAIL, 451, "4.3.0", 0,
		    "Temporary local problem, please try again later");
		return;
	}
	for (size_t i = 0; i < sn->n; i++)
		if (sn->e[i].k == k && access_visit(&w, &sn->e[i]))
			break;		/* allow wins: stop */
	const char *who = k == 0 ? ps->client_ip : log_escape(w.name, strlen(w.name), esc);
	if (w.allow) {
		pol_result_add(ps, "access", "allow", 0, NULL, "%s %s allowlisted (%s)",
		    what[k], who, w.entry);
		ps->allow |= k <= 1 ? POL_ALLOW_SESSION : k == 2 ? POL_ALLOW_TX : POL_ALLOW_RCPT;
	} else if (w.deny) {
		pol_result_add(ps, "access", "deny", 0, NULL, "%s %s denied (%s)",
		    what[k], who, w.entry);
		if (k == 0)
			pol_hard_set(ps, POL_REJECT, 554, "5.7.1", 1,
			    "Service unavailable; client %s denied by local policy", who);
		else
			pol_hard_set(ps, POL_REJECT, 550, "5.7.1", 0,
			    "<%s>: %s rejected: denied by local policy", who,
			    k == 1 ? "Helo command" : k == 2 ? "Sender address" :
			    "Recipient address");
	}
}
