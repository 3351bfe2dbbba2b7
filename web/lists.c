/*
 * lists.c -- the health of the DNS lists (policy/rblhealth.h) for the
 * dashboard: GET /api/lists as JSON and the postern_dnslist_* lines of
 * /metrics. Reads a snapshot of the probe table; asks no DNS itself.
 * Under `postern web` alone nothing probes: the list is empty.
 */
#include "lib/buf.h"
#include "lib/conf.h"
#include "lib/util.h"
#include "policy/rblhealth.h"
#include "web/web_int.h"

#include <stdlib.h>
#include <string.h>

static json_t	*lists_one(const struct rblh_view *);

/* One zone's object; share is null before any session this hour. */
static json_t *
lists_one(const struct rblh_view *v)
{
	json_t *share = v->sessions_hour ?
	    json_real((double)v->listed_hour / (double)v->sessions_hour) : json_null();

	return json_pack("{s:s, s:s, s:s, s:o, s:I, s:{s:s, s:s}, s:I, s:I, s:o}",
	    "zone", v->zone, "kind", v->kind, "state", rblh_state_name(v->state),
	    "last_probe", v->probed ? json_integer((json_int_t)v->probed) : json_null(),
	    "latency_ms", (json_int_t)v->latency_ms,
	    "answers", "listed_entry", v->listed_answer, "unlisted_entry", v->unlisted_answer,
	    "listed_this_hour", (json_int_t)v->listed_hour,
	    "sessions_this_hour", (json_int_t)v->sessions_hour,
	    "share_this_hour", share);
}

void
lists_api(struct web_req *r, struct web_resp *resp)
{
	struct rblh_view v[RBLH_MAX_ZONES];
	json_t *arr;
	int n;

	if (strcmp(r->method, "GET") != 0) {
		web_error(resp, 405, "GET only");
		return;
	}
	n = rblh_snapshot(v, RBLH_MAX_ZONES);
	arr = json_array();
	for (int i = 0; i < n; i++)
		json_array_append_new(arr, lists_one(&v[i]));
	web_json(resp, 200, json_pack("{s:o, s:I}", "lists", arr, "interval",
	    (json_int_t)r->conf->rbl_health_interval));
}

char *
lists_metrics(void)
{
	struct rblh_view v[RBLH_MAX_ZONES];
	struct buf b = { 0 };
	int n = rblh_snapshot(v, RBLH_MAX_ZONES);

	buf_adds(&b, "# HELP postern_dnslist_up 1 when the DNS list answered its RFC 5782 "
	    "test entries correctly at the last probe.\n# TYPE postern_dnslist_up gauge\n");
	for (int i = 0; i < n; i++)
		if (v[i].probed)
			buf_printf(&b, "postern_dnslist_up{zone=\"%s\",kind=\"%s\"} %d\n",
			    v[i].zone, v[i].kind, v[i].state == RBLH_OK);
	buf_adds(&b, "# HELP postern_dnslist_latency_seconds Time the last probe of the "
	    "DNS list took.\n# TYPE postern_dnslist_latency_seconds gauge\n");
	for (int i = 0; i < n; i++)
		if (v[i].probed)
			buf_printf(&b, "postern_dnslist_latency_seconds{zone=\"%s\",kind=\"%s\"} "
			    "%.3f\n", v[i].zone, v[i].kind, v[i].latency_ms / 1000.0);
	return buf_take(&b);
}
