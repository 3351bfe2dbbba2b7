/*
 * domains.c -- the per-domain policy (policy/dompol.h) for the dashboard:
 * GET /api/domains, every [domain NAME] section's effective policy next to
 * the global one. Reads the web's own reference to the current config;
 * touches no session and no database.
 */
#include "lib/conf.h"
#include "lib/util.h"
#include "policy/dompol.h"
#include "web/web_int.h"

#include <string.h>

static json_t	*domains_policy(const struct conf *, const struct conf_domain *);
static json_t	*domains_list(const char *);

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

void
domains_api(struct web_req *r, struct web_resp *resp)
{
	const struct conf *c = r->conf;
	json_t *arr, *global;

	if (strcmp(r->method, "GET") != 0) {
		web_error(resp, 405, "GET only");
		return;
	}
	arr = json_array();
	for (int i = 0; i < c->ndomains; i++)
		json_array_append_new(arr, domains_policy(c, &c->domains[i]));
	global = domains_policy(c, NULL);
	/* what a client no domain allowlists meets before RCPT */
	json_object_set_new(global, "reject_score_before_rcpt",
	    json_real(dompol_reject_max(c)));
	web_json(resp, 200, json_pack("{s:o, s:o}", "global", global, "domains", arr));
}
