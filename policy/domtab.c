/*
 * domtab.c -- see domtab.h. The JSON of an entry becomes the text a
 * config line would carry and goes through conf.c's own checks, so the
 * dashboard cannot save what the file would refuse. Entries keep only
 * what they set (conf_domain.set): the global values fill in when they
 * are read (dompol_limits), so a config reload changes what they inherit.
 */
#include "policy/domtab.h"
#include "db/db.h"
#include "lib/buf.h"
#include "lib/conf.h"
#include "lib/util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The entries as read at one admin token, by name, and their index.
 * Freed by the last domtab_unref(). */
struct domtab {
	unsigned long long token;
	_Atomic int	 refs;
	int		 n;
	struct conf_domain *d;
	struct conf_dom_index idx;
};

/* An entry's JSON members, in enum conf_dom_key's order. */
static const char *domtab_members[CONF_DOM_NKEYS] = {
	"tag_score", "quarantine_score", "reject_score", "greylisting",
	"allow_senders", "deny_senders", "allow_clients", "deny_clients",
};

static pthread_mutex_t	 domtab_mtx = PTHREAD_MUTEX_INITIALIZER;
static struct domtab	*domtab_cur;		/* under domtab_mtx */
/* One save at a time in this process: read, change, write the document. */
static pthread_mutex_t	 domtab_edit_mtx = PTHREAD_MUTEX_INITIALIZER;

static int	 domtab_member(struct conf_domain *, int k, json_t *v, char *why,
		    size_t whysz);
static int	 domtab_text(int k, json_t *v, struct buf *out);
static int	 domtab_cmp(const void *, const void *);
static struct domtab *domtab_load(unsigned long long token);
static enum domtab_rc domtab_write(json_t *doc, char *why, size_t whysz);

/* A member's value as the config's text: 0, or -1 when its JSON type is
 * not one the key takes. */
static int
domtab_text(int k, json_t *v, struct buf *out)
{
	size_t i;
	json_t *e;

	if (k < CONF_DOM_GREYLIST && json_is_number(v))
		buf_printf(out, "%.17g", json_number_value(v));
	else if (k == CONF_DOM_GREYLIST && json_is_boolean(v))
		buf_printf(out, "%s", json_is_true(v) ? "yes" : "no");
	else if (json_is_string(v))
		buf_printf(out, "%s", json_string_value(v));
	else if (k >= CONF_DOM_LIST0 && json_is_array(v)) {
		json_array_foreach(v, i, e) {
			if (!json_is_string(e))
				return -1;
			buf_printf(out, "%s%s", i ? ", " : "", json_string_value(e));
		}
	} else
		return -1;
	return 0;
}

/* Member k of d from v (null: not set). 0, or -1 with why. */
static int
domtab_member(struct conf_domain *d, int k, json_t *v, char *why, size_t whysz)
{
	struct buf text = { 0 };
	int rc;

	if (v == NULL || json_is_null(v))
		return 0;
	if (domtab_text(k, v, &text) == -1) {
		snprintf(why, whysz, "[domain %s] %s must be %s", d->name, domtab_members[k],
		    k < CONF_DOM_GREYLIST ? "a number or null" : k == CONF_DOM_GREYLIST ?
		    "true, false or null" : "a list of strings, or null");
		buf_free(&text);
		return -1;
	}
	rc = conf_dom_set(d, k, buf_str(&text), why, whysz);
	if (rc == -1) {	/* conf's "what; fix" without a section name: add it */
		char tmp[400];
		snprintf(tmp, sizeof(tmp), "[domain %s] %s: %s", d->name, domtab_members[k], why);
		snprintf(why, whysz, "%s", tmp);
	} else if (k >= CONF_DOM_LIST0)
		rc = conf_dom_list_norm(d, k, why, whysz);
	buf_free(&text);
	return rc;
}

int
domtab_entry_parse(const struct conf *c, const char *name, json_t *j,
    struct conf_domain **out, char *why, size_t whysz)
{
	struct conf_domain *d;
	const char *key;
	json_t *v;
	int k;

	*out = NULL;
	if ((d = conf_dom_new(name, why, whysz)) == NULL)
		return -1;
	if (!json_is_object(j)) {
		snprintf(why, whysz, "[domain %s] the policy must be a JSON object", d->name);
		goto bad;
	}
	json_object_foreach(j, key, v) {
		for (k = 0; k < CONF_DOM_NKEYS && strcmp(domtab_members[k], key) != 0; k++)
			;
		if (k == CONF_DOM_NKEYS) {
			snprintf(why, whysz, "[domain %s] unknown member '%.60s'; a domain policy "
			    "takes tag_score, quarantine_score, reject_score, greylisting, "
			    "allow_senders, deny_senders, allow_clients, deny_clients", d->name, key);
			goto bad;
		}
		if (domtab_member(d, k, v, why, whysz) == -1)
			goto bad;
	}
	if (c != NULL && conf_dom_rise(c, d, why, whysz) == -1)
		goto bad;
	*out = d;
	return 0;
bad:
	conf_dom_clear(d);
	free(d);
	return -1;
}

json_t *
domtab_entry_json(const struct conf_domain *d)
{
	json_t *o = json_object();
	const double *score[] = { &d->tag_score, &d->quarantine_score, &d->reject_score };

	for (int k = 0; k < CONF_DOM_NKEYS; k++) {
		if (!(d->set & 1u << k))
			continue;
		if (k < CONF_DOM_GREYLIST)
			json_object_set_new(o, domtab_members[k], json_real(*score[k]));
		else if (k == CONF_DOM_GREYLIST)
			json_object_set_new(o, domtab_members[k], json_boolean(d->greylist_enabled));
		else
			json_object_set_new(o, domtab_members[k],
			    json_string(d->lists[k - CONF_DOM_LIST0]));
	}
	return o;
}

/* ------------------------------------------------------------ the table */

static int
domtab_cmp(const void *a, const void *b)
{
	return strcmp(((const struct conf_domain *)a)->name,
	    ((const struct conf_domain *)b)->name);
}

struct domtab *
domtab_from_json(const char *doc)
{
	struct domtab *t = xcalloc(1, sizeof(*t));
	struct conf_domain *d;
	json_error_t err;
	json_t *j, *v;
	const char *name;
	char why[400];

	atomic_init(&t->refs, 1);
	if ((j = json_loads(doc, 0, &err)) == NULL || !json_is_object(j)) {
		log_err("domains: the dashboard's domain policies (%s) are not a JSON "
		    "object; none apply", DOMTAB_META_KEY);
		json_decref(j);
		return t;
	}
	t->d = xcalloc(json_object_size(j) + 1, sizeof(*t->d));
	json_object_foreach(j, name, v) {
		if (domtab_entry_parse(NULL, name, v, &d, why, sizeof(why)) == -1) {
			log_err("domains: a dashboard domain policy is left out: %s", why);
			continue;
		}
		t->d[t->n++] = *d;
		free(d);
	}
	json_decref(j);
	qsort(t->d, (size_t)t->n, sizeof(*t->d), domtab_cmp);
	conf_dom_index_build(&t->idx, t->d, t->n);
	return t;
}

/* The table from the database, or NULL when it cannot be read. */
static struct domtab *
domtab_load(unsigned long long token)
{
	struct domtab *t;
	char *doc = NULL;
	int rc;

	if ((rc = db_meta_get(DOMTAB_META_KEY, &doc)) == -1)
		return NULL;
	if (rc == 1 && strlen(doc) > DOMTAB_DOC_MAX) {
		log_err("domains: %s is longer than %d bytes; none apply", DOMTAB_META_KEY,
		    DOMTAB_DOC_MAX);
		rc = 0;
	}
	t = domtab_from_json(rc == 1 ? doc : "{}");
	free(doc);
	t->token = token;
	return t;
}

/* The token is taken before the read: an edit racing with it moves the
 * token again, and the next reader reads once more. */
struct domtab *
domtab_get(int read)
{
	unsigned long long token = db_admin_token();
	struct domtab *t, *old;

	pthread_mutex_lock(&domtab_mtx);
	if ((t = domtab_cur) != NULL && (t->token == token || !read))
		atomic_fetch_add(&t->refs, 1);
	pthread_mutex_unlock(&domtab_mtx);
	if (t != NULL && (t->token == token || !read))
		return t;
	if ((t = domtab_load(token)) == NULL)
		return domtab_get(0);	/* the last good table, if any */
	atomic_fetch_add(&t->refs, 1);	/* the caller's and domtab_cur's */
	pthread_mutex_lock(&domtab_mtx);
	old = domtab_cur;
	domtab_cur = t;
	pthread_mutex_unlock(&domtab_mtx);
	domtab_unref(old);
	return t;
}

int
domtab_stale(const struct domtab *t)
{
	return t == NULL || t->token != db_admin_token();
}

void
domtab_unref(struct domtab *t)
{
	if (t == NULL || atomic_fetch_sub(&t->refs, 1) != 1)
		return;
	conf_dom_index_free(&t->idx);
	for (int i = 0; i < t->n; i++)
		conf_dom_clear(&t->d[i]);
	free(t->d);
	free(t);
}

int
domtab_count(const struct domtab *t)
{
	return t ? t->n : 0;
}

const struct conf_domain *
domtab_at(const struct domtab *t, int i)
{
	return t != NULL && i >= 0 && i < t->n ? &t->d[i] : NULL;
}

const struct conf_dom_index *
domtab_index(const struct domtab *t)
{
	static const struct conf_dom_index none;

	return t != NULL ? &t->idx : &none;
}

/* ------------------------------------------------------------ editing */

int
domtab_read(json_t **doc)
{
	char *s = NULL;
	int rc;

	*doc = NULL;
	if ((rc = db_meta_get(DOMTAB_META_KEY, &s)) == -1)
		return -1;
	if (rc == 1)
		*doc = json_loads(s, 0, NULL);
	free(s);
	if (!json_is_object(*doc)) {
		json_decref(*doc);
		*doc = json_object();
	}
	return 0;
}

/* Store doc and tell every node. */
static enum domtab_rc
domtab_write(json_t *doc, char *why, size_t whysz)
{
	char *s = json_dumps(doc, JSON_SORT_KEYS | JSON_COMPACT);
	int rc;

	if (s != NULL && strlen(s) > DOMTAB_DOC_MAX) {
		snprintf(why, whysz, "the domain policies would take more than %d bytes; "
		    "shorten their lists or delete one", DOMTAB_DOC_MAX);
		free(s);
		return DOMTAB_FULL;
	}
	rc = s != NULL ? db_meta_edit(DOMTAB_META_KEY, s) : -1;
	free(s);
	if (rc == -1) {
		snprintf(why, whysz, "the database refused the change; see the log");
		return DOMTAB_DBERR;
	}
	return DOMTAB_OK;
}

enum domtab_rc
domtab_put(const struct conf *c, const char *name, json_t *entry, char *why,
    size_t whysz)
{
	struct conf_domain *d;
	enum domtab_rc rc;
	json_t *doc;
	int fresh = 0;

	if (domtab_entry_parse(c, name, entry, &d, why, whysz) == -1)
		return DOMTAB_INVALID;
	for (int i = 0; i < c->ndomains; i++)
		if (strcmp(c->domains[i].name, d->name) == 0) {
			snprintf(why, whysz, "[domain %s] is a section of the config file, which "
			    "wins over the dashboard; change it there", d->name);
			rc = DOMTAB_CONFLICT;
			goto done;
		}
	pthread_mutex_lock(&domtab_edit_mtx);
	if (domtab_read(&doc) == -1) {
		snprintf(why, whysz, "the database is not answering; see the log");
		rc = DOMTAB_DBERR;
	} else if ((fresh = json_object_get(doc, d->name) == NULL) &&
	    json_object_size(doc) >= DOMTAB_MAX) {
		snprintf(why, whysz, "%d domain policies already; delete one first", DOMTAB_MAX);
		rc = DOMTAB_FULL;
	} else {
		json_object_set_new(doc, d->name, domtab_entry_json(d));
		rc = domtab_write(doc, why, whysz);
		if (rc == DOMTAB_OK && fresh)
			rc = DOMTAB_CREATED;
	}
	pthread_mutex_unlock(&domtab_edit_mtx);
	json_decref(doc);
	if (rc == DOMTAB_OK || rc == DOMTAB_CREATED)
		log_info("domains: dashboard policy of %s saved: %s", d->name,
		    rc == DOMTAB_CREATED ? "created" : "changed");
done:
	conf_dom_clear(d);
	free(d);
	return rc;
}

enum domtab_rc
domtab_del(const char *name, char *why, size_t whysz)
{
	struct conf_domain *d;
	enum domtab_rc rc;
	json_t *doc;

	if ((d = conf_dom_new(name, why, whysz)) == NULL)
		return DOMTAB_INVALID;
	pthread_mutex_lock(&domtab_edit_mtx);
	if (domtab_read(&doc) == -1) {
		snprintf(why, whysz, "the database is not answering; see the log");
		rc = DOMTAB_DBERR;
	} else if (json_object_del(doc, d->name) == -1) {
		snprintf(why, whysz, "no dashboard policy for %s", d->name);
		rc = DOMTAB_NOTFOUND;
	} else if ((rc = domtab_write(doc, why, whysz)) == DOMTAB_OK)
		log_info("domains: dashboard policy of %s deleted", d->name);
	pthread_mutex_unlock(&domtab_edit_mtx);
	json_decref(doc);
	conf_dom_clear(d);
	free(d);
	return rc;
}
