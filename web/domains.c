/*
 * domains.c -- the per-domain policy (policy/dompol.h) for the dashboard:
 * GET /api/domains, every [domain NAME] section's and dashboard entry's
 * effective policy next to the global one; PUT and DELETE
 * /api/domains/NAME, the dashboard's entries (policy/domtab.h). Reads the
 * web's own reference to the current config and the dashboard's table as
 * sessions read it (domtab_get: parsed once per admin edit, on any node,
 * not per request); touches no session.
 */
#include "lib/conf.h"
#include "lib/util.h"
#include "policy/dompol.h"
#include "policy/domtab.h"
#include "web/web_int.h"

#include <ctype.h>
#include <string.h>

static json_t	*domains_policy(const struct conf *, const struct conf_domain *);
static json_t	*domains_list(const char *);
static void	 domains_get(struct web_req *, struct web_resp *);
static int	 domains_status(enum domtab_rc);

/* "a, b" as ["a", "b"]. */
static json_t *
domains_list(const char *list)
{
	json_t *a = json_array();

	for (const char *s = list; *s != '\0'; ) {
		size_t n = strcspn(s, ", ");
		if (n > 0)
			json_array_append_new(a, json_stringn(s, n));
		s += n + strspn(s + n, ", ");
	}
	return a;
}

/* One policy's object: d NULL is the global one. */
static json_t *
domains_policy(const struct conf *c, const struct conf_domain *d)
{
	static const char *list_names[CONF_DOM_NLISTS] = {
		"allow_senders", "deny_senders", "allow_clients", "deny_clients",
	};
	struct dompol_limits l;
	json_t *o, *set;

	dompol_limits(c, d, &l);
	o = json_pack("{s:f, s:f, s:f, s:b}", "tag_score", l.tag,
	    "quarantine_score", l.quarantine, "reject_score", l.reject,
	    "greylisting", dompol_greylist(c, d));
	for (int k = 0; k < CONF_DOM_NLISTS; k++)
		json_object_set_new(o, list_names[k], domains_list(d ? d->lists[k] : ""));
	if (d == NULL)
		return o;
	set = json_array();
	for (int k = 0; k < CONF_DOM_NKEYS; k++)
		if (d->set & 1u << k)
			json_array_append_new(set, json_string(conf_dom_key_name(k)));
	json_object_set_new(o, "domain", json_string(d->name));
	json_object_set_new(o, "subdomains", json_boolean(d->name[0] == '.'));
	json_object_set_new(o, "set", set);
	json_object_set_new(o, "same_as_global", json_boolean(dompol_same(c, d, NULL)));
	return o;
}

/* The config's sections ("source": "config"), then the dashboard's
 * entries as of the last admin edit this node has seen ("dashboard";
 * "shadowed" when a section of the same name wins over it). */
static void
domains_get(struct web_req *r, struct web_resp *resp)
{
	const struct conf *c = r->conf;
	const struct conf_domain *d;
	struct domtab *t;
	json_t *arr, *global, *o;

	if ((t = domtab_get(1)) == NULL) {
		web_error(resp, 503, "the database is not answering; see the log");
		return;
	}
	arr = json_array();
	for (int i = 0; i < c->ndomains; i++) {
		o = domains_policy(c, &c->domains[i]);
		json_object_set_new(o, "source", json_string("config"));
		json_array_append_new(arr, o);
	}
	for (int i = 0; (d = domtab_at(t, i)) != NULL; i++) {
		o = domains_policy(c, d);
		json_object_set_new(o, "source", json_string("dashboard"));
		json_object_set_new(o, "shadowed", json_boolean(conf_dom_index_find(&c->dom_index, d->name) != NULL));
		json_array_append_new(arr, o);
	}
	global = domains_policy(c, NULL);
	/* what a client no domain allowlists meets before RCPT */
	json_object_set_new(global, "reject_score_before_rcpt",
	    json_real(dompol_reject_max(c, t)));
	domtab_unref(t);
	web_json(resp, 200, json_pack("{s:o, s:o}", "global", global, "domains", arr));
}

static int
domains_status(enum domtab_rc rc)
{
	switch (rc) {
	case DOMTAB_OK:		return 200;
	case DOMTAB_CREATED:	return 201;
	case DOMTAB_CONFLICT:	return 409;
	case DOMTAB_NOTFOUND:	return 404;
	case DOMTAB_DBERR:	return 503;
	case DOMTAB_INVALID:
	case DOMTAB_FULL:	break;
	}
	return 400;
}

void
domains_api(struct web_req *r, struct web_resp *resp)
{
	if (strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0)
		domains_get(r, resp);
	else
		web_error(resp, 405, "GET only; PUT or DELETE /api/domains/NAME to edit");
}

void
domains_api_one(struct web_req *r, struct web_resp *resp, const char *name)
{
	char why[400], low[300];
	enum domtab_rc rc;
	json_t *j;

	if (strcmp(r->method, "PUT") == 0) {
		if ((j = web_body_json(r, resp)) == NULL)
			return;
		rc = domtab_put(r->conf, name, j, why, sizeof(why));
		json_decref(j);
	} else if (strcmp(r->method, "DELETE") == 0)
		rc = domtab_del(name, why, sizeof(why));
	else {
		web_error(resp, 405, "PUT or DELETE");
		return;
	}
	if (rc != DOMTAB_OK && rc != DOMTAB_CREATED) {
		web_error(resp, domains_status(rc), "%s", why);
		return;
	}
	snprintf(low, sizeof(low), "%s", name);	/* valid: short enough */
	for (char *q = low; *q; q++)
		*q = (char)tolower((unsigned char)*q);
	web_json(resp, domains_status(rc), json_pack("{s:s, s:b}", "domain", low,
	    strcmp(r->method, "PUT") == 0 ? "saved" : "deleted", 1));
}
