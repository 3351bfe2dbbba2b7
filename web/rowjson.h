/*
 * rowjson.h -- the JSON shape of stored rows in the API (CONTRACT.md) and
 * in `postern quarantine list|show`: web/ owns it, db/ hands out typed
 * rows (db.h) and knows nothing of it.
 *
 * Keys and values are what the API has always answered: a verdict is
 * {"id","ts","sid","client_ip","client_name","helo","mail_from","rcpts",
 * "size","msgid","subject","checks","score","verdict","reply","outcome",
 * "stage","mta_reply","backend_reply","ms"}, in that order. Stored text
 * need not be UTF-8 (a raw 8-bit Subject): each byte that does not start
 * a valid sequence becomes U+FFFD, so the value keeps its place.
 *
 * Public calls: rowjson_str, rowjson_verdicts, rowjson_stats,
 *   rowjson_greylist, rowjson_quar_list, rowjson_quar_get,
 *   rowjson_rule_hits, rowjson_rule_hit.
 * Ownership: every json_t returned is a new reference for the caller;
 *   NULL means the database failed (logged by db/).
 * Thread: any thread that may read the database (db.h).
 */
#ifndef POSTERN_ROWJSON_H
#define POSTERN_ROWJSON_H

#include <time.h>

#include <jansson.h>

struct db_quar_query;

/* A JSON string of s, invalid UTF-8 mended; NULL is "". Never NULL. */
json_t	*rowjson_str(const char *s);
/* db_verdict_each's rows as an array. */
json_t	*rowjson_verdicts(int limit, long long before, const char *q);
/* {"minutes":[{"minute","name","n"},...],"totals":{name:n,...}}. */
json_t	*rowjson_stats(time_t since);
/* {"triplets":[{"net","sender","rcpt","first_seen","last_seen","passed"}],
 *  "auto":[{"net","passes","last_seen"}]}. */
/* Triplets and auto-allowlisted networks; delay (greylist.delay) tells
 * when a deferred triplet's retry will pass. */
json_t	*rowjson_greylist(int limit, long long delay);
/* Quarantined messages (no raw) as an array of {"id","ts","sid",
 * "client_ip","client_name","helo","mail_from","rcpts","subject","msgid",
 * "score","reasons","size","state","released_at","released_by"}. */
json_t	*rowjson_quar_list(const struct db_quar_query *);
/* One message as that object; NULL when absent (*found 0) or on error. */
json_t	*rowjson_quar_get(const char *id, int *found);

/* Rule hits per UTC day, the last ROWJSON_HIT_DAYS days up to now's:
 * {name: {"today","days7","days30","daily":[oldest .. today]}} for every
 * rule with a hit in that time. */
#define ROWJSON_HIT_DAYS	30
json_t	*rowjson_rule_hits(time_t now);
/* A rule's entry of that object, or the all-zero one when it has none. */
json_t	*rowjson_rule_hit(json_t *hits, const char *name);

#endif
