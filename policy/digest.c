/*
 * digest.c -- see digest.h. A round reads the last round's value (its
 * end and the recipients behind it), then the held messages from the
 * oldest time a recipient is owed, oldest first, page by page
 * (db_quar_each), keeps one (recipient, message) pair per recipient that
 * gets digests and has not been told of that message, sorts the pairs by
 * recipient (each one's messages newest first) and composes one digest
 * per recipient. Progress is a time per recipient, so a round that
 * reaches DIGEST_MAX_PAIRS ends before the second where it stopped
 * (digest_cut): what it lists is everything up to there, and the next
 * round goes on from there.
 */
#include "policy/digest.h"
#include "db/db.h"
#include "lib/buf.h"
#include "lib/conf.h"
#include "lib/relay.h"
#include "lib/util.h"
#include "policy/dlink.h"
#include "policy/dmail.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DIGEST_META_LAST	"digest.last"
#define DIGEST_META_SLOT	"digest.slot."	/* + the slot's time: its claim */
#ifndef DIGEST_PAGE		/* tests/unit/digest_test.c sets a small one */
#define DIGEST_PAGE		1000	/* rows per db_quar_each page */
#endif
#define DIGEST_FROM_MAX		256	/* bytes of a listed sender */

struct digest_pair {
	char	*rcpt;			/* as the first message names it */
	int	 item;			/* index in the collect's items */
};

/* What the walk over the quarantine gathers. */
struct digest_collect {
	const struct conf *c;
	const struct digest_round *r;	/* who was told what already */
	struct dmail_item *items;
	int	 nitems, capitems;
	struct digest_pair *pairs;
	int	 npairs, cappairs;
	int	 rows;			/* rows seen on this page */
	time_t	 last_ts;		/* the page's last row: the next */
	char	 last_id[ID_LEN + 1];	/* page starts after it */
	int	 full;			/* DIGEST_MAX_PAIRS reached ... */
	time_t	 full_ts;		/* ... at a message of this time */
};

static void	 digest_parse(struct digest_round *r, const char *val);
static int	 digest_behind_cmp(const void *a, const void *b);
static time_t	 digest_since(const struct digest_round *r, const char *rcpt);
static char	*digest_reason(const struct db_quar *q);
static int	 digest_row(void *arg, const struct db_quar_row *row);
static void	 digest_cut(struct digest_collect *, struct digest_round *);
static void	 digest_items_free(struct digest_collect *, int from);
static int	 digest_pair_cmp(const void *a, const void *b);
static int	 digest_mail_cmp(const void *key, const void *m);
static void	 digest_line(struct buf *, int *n, time_t end, const char *rcpt,
		    time_t since);
static int	 digest_compose(const struct conf *, time_t now, struct digest_collect *,
		    struct digest_round *, char *err, size_t errsz);

/* The last round's value (digest.h): its end, then "SINCE RECIPIENT"
 * lines, into r->since and r->behind (sorted for digest_since). A line
 * that is not of that form is skipped: only digest_done writes them. */
static void
digest_parse(struct digest_round *r, const char *val)
{
	const char *line = strchr(val, '\n');
	int cap = 0;

	r->since = (time_t)strtoll(val, NULL, 10);
	while (line != NULL && *++line != '\0') {
		const char *end = strchrnul(line, '\n');
		char *sp;
		long long since = strtoll(line, &sp, 10);

		if (sp > line && *sp == ' ' && sp + 1 < end) {
			if (r->nbehind == cap) {
				cap = cap ? cap * 2 : 8;
				r->behind = xrealloc(r->behind, sizeof(*r->behind) * (size_t)cap);
			}
			r->behind[r->nbehind++] = (struct digest_behind){
			    xstrndup(sp + 1, (size_t)(end - sp - 1)), (time_t)since };
		}
		line = *end ? end : NULL;
	}
	if (r->nbehind > 0)
		qsort(r->behind, (size_t)r->nbehind, sizeof(*r->behind), digest_behind_cmp);
}

/* One mailbox, one digest: recipients compare case-insensitively. */
static int
digest_behind_cmp(const void *a, const void *b)
{
	const struct digest_behind *x = a, *y = b;

	return strcasecmp(x->rcpt, y->rcpt);
}

/* The quarantine time after which rcpt has not been told of messages. */
static time_t
digest_since(const struct digest_round *r, const char *rcpt)
{
	struct digest_behind key = { .rcpt = (char *)rcpt }, *b = NULL;

	if (r->nbehind > 0)
		b = bsearch(&key, r->behind, (size_t)r->nbehind, sizeof(*r->behind),
		    digest_behind_cmp);
	return b ? b->since : r->since;
}

/* The check that weighed most toward spam, else a matching rule: "check:
 * reason", or its result when it gave no reason. */
static char *
digest_reason(const struct db_quar *q)
{
	const struct db_check *best = NULL;
	char *s, *clean;

	for (int i = 0; i < q->nreasons; i++)
		if (q->reasons[i].score > 0 && (best == NULL || q->reasons[i].score > best->score))
			best = &q->reasons[i];
	/* A rule whose action is quarantine adds no score: its match is why. */
	for (int i = 0; i < q->nreasons && best == NULL; i++)
		if (strcmp(q->reasons[i].result, "match") == 0)
			best = &q->reasons[i];
	if (best == NULL)
		return xstrdup("the checks' total score");
	s = best->reason && *best->reason ? xasprintf("%s: %s", best->check, best->reason) :
	    xasprintf("%s=%s", best->check, best->result);
	clean = dmail_clean(s, DMAIL_REASON_MAX);
	free(s);
	return clean;
}

static int
digest_row(void *arg, const struct db_quar_row *row)
{
	struct digest_collect *dc = arg;
	const struct db_quar *q = &row->q;
	struct dmail_item *it;
	int item = -1;

	dc->rows++;
	dc->last_ts = q->ts;
	snprintf(dc->last_id, sizeof(dc->last_id), "%s", q->id);
	for (int i = 0; i < q->nrcpts; i++) {
		if (!relay_allows(dc->c->quarantine_digest_domains, NULL, q->rcpts[i]) ||
		    q->ts <= digest_since(dc->r, q->rcpts[i]))
			continue;
		if (dc->npairs == DIGEST_MAX_PAIRS) {
			dc->full = 1;
			dc->full_ts = q->ts;
			return 1;	/* the walk ends here */
		}
		if (item == -1) {
			if (dc->nitems == dc->capitems) {
				dc->capitems = dc->capitems ? dc->capitems * 2 : 64;
				dc->items = xrealloc(dc->items, sizeof(*dc->items) * (size_t)dc->capitems);
			}
			item = dc->nitems++;
			it = &dc->items[item];
			memset(it, 0, sizeof(*it));
			snprintf(it->id, sizeof(it->id), "%s", q->id);
			it->ts = q->ts;
			it->score = q->score;
			it->from = dmail_clean(*q->mail_from ? q->mail_from : "<>", DIGEST_FROM_MAX);
			it->subject = dmail_clean(q->subject, DMAIL_SUBJECT_MAX);
			it->reason = digest_reason(q);
		}
		if (dc->npairs == dc->cappairs) {
			dc->cappairs = dc->cappairs ? dc->cappairs * 2 : 64;
			dc->pairs = xrealloc(dc->pairs, sizeof(*dc->pairs) * (size_t)dc->cappairs);
		}
		dc->pairs[dc->npairs++] = (struct digest_pair){ xstrdup(q->rcpts[i]), item };
	}
	return 0;
}

/* A full walk (dc->full) stopped inside the second dc->full_ts, maybe
 * half-way through a message's recipients: the round ends one second
 * before it, and the pairs of that second go back, so that each
 * recipient is told of everything up to the round's end and of nothing
 * after it (progress is a time). Only when the cap's worth of pairs lies
 * in that one second, which no cut can split, is the rest of the second
 * left out (logged). */
static void
digest_cut(struct digest_collect *dc, struct digest_round *r)
{
	int k = dc->nitems;

	while (k > 0 && dc->items[k - 1].ts >= dc->full_ts)
		k--;
	if (k == 0) {
		log_warn("digest: more than %d (recipient, message) pairs quarantined "
		    "in one second; the rest of that second is not listed", DIGEST_MAX_PAIRS);
		r->until = dc->full_ts;
		return;
	}
	while (dc->npairs > 0 && dc->pairs[dc->npairs - 1].item >= k)
		free(dc->pairs[--dc->npairs].rcpt);
	digest_items_free(dc, k);
	r->until = dc->full_ts - 1;
	log_warn("digest: more than %d (recipient, message) pairs in one round; it "
	    "lists those quarantined up to %lld, the next round the rest",
	    DIGEST_MAX_PAIRS, (long long)r->until);
}

/* Free the collected items from index from on. */
static void
digest_items_free(struct digest_collect *dc, int from)
{
	for (int i = from; i < dc->nitems; i++) {
		free(dc->items[i].from);
		free(dc->items[i].subject);
		free(dc->items[i].reason);
	}
	dc->nitems = from;
}

/* By recipient (case-insensitively: one mailbox, one digest), then
 * newest first (the reverse of the order read). */
static int
digest_pair_cmp(const void *a, const void *b)
{
	const struct digest_pair *x = a, *y = b;
	int c = strcasecmp(x->rcpt, y->rcpt);

	return c ? c : (x->item < y->item) - (x->item > y->item);
}

/* bsearch over a round's mails (in recipient order) for a recipient. */
static int
digest_mail_cmp(const void *key, const void *m)
{
	return strcasecmp(key, ((const struct digest_mail *)m)->rcpt);
}

/* One digest per run of pairs with the same recipient. */
static int
digest_compose(const struct conf *c, time_t now, struct digest_collect *dc,
    struct digest_round *r, char *err, size_t errsz)
{
	unsigned char key[DLINK_KEY_LEN];
	char *base = xstrdup(c->web_public_url);
	size_t bl = strlen(base);
	int *seen = xcalloc((size_t)dc->nitems + 1, sizeof(*seen));

	if (dlink_key(key) == -1) {
		snprintf(err, errsz, "no link key (database error)");
		free(base);
		free(seen);
		return -1;
	}
	while (bl > 0 && base[bl - 1] == '/')
		base[--bl] = '\0';
	if (dc->npairs > 0)	/* qsort's array may not be NULL, even empty */
		qsort(dc->pairs, (size_t)dc->npairs, sizeof(*dc->pairs), digest_pair_cmp);
	r->mails = xcalloc((size_t)dc->npairs + 1, sizeof(*r->mails));
	for (int i = 0, j; i < dc->npairs; i = j) {
		struct dmail_item *list;
		int n;
		for (j = i; j < dc->npairs && strcasecmp(dc->pairs[j].rcpt, dc->pairs[i].rcpt) == 0; j++)
			seen[dc->pairs[j].item] = 1;
		n = j - i < DIGEST_MAX_LISTED ? j - i : DIGEST_MAX_LISTED;
		list = xcalloc((size_t)n, sizeof(*list));
		for (int k = 0; k < n; k++)
			list[k] = dc->items[dc->pairs[i + k].item];	/* shallow: dc owns */
		struct dmail_head h = { .rcpt = dc->pairs[i].rcpt, .from = r->from, .base = base,
		    .hostname = c->hostname, .now = now,
		    .expires = now + (time_t)(c->quarantine_digest_link_lifetime <
			c->quarantine_max_age ? c->quarantine_digest_link_lifetime :
			c->quarantine_max_age),
		    .more = j - i - n, .allow = c->quarantine_digest_allow_link };
		struct digest_mail *m = &r->mails[r->nmails++];
		m->rcpt = xstrdup(dc->pairs[i].rcpt);
		m->nmsgs = j - i;
		m->since = digest_since(r, m->rcpt);
		m->data = dmail_compose(&h, list, n, key, &m->len);
		free(list);
	}
	for (int i = 0; i < dc->nitems; i++)
		r->nmsgs += seen[i];
	memset(key, 0, sizeof(key));
	free(base);
	free(seen);
	return 0;
}

int
digest_prepare(const struct conf *c, time_t now, struct digest_round *r, char *err,
    size_t errsz)
{
	struct digest_collect dc = { .c = c, .r = r };
	struct db_quar_query q = { .state = "held", .limit = DIGEST_PAGE,
	    .oldest_first = 1 };
	char *last = NULL;
	time_t from;
	int rc = 0;

	memset(r, 0, sizeof(*r));
	if (*c->web_public_url == '\0') {
		snprintf(err, errsz, "web.public_url is empty; digests need it for their links");
		return -1;
	}
	if ((rc = db_meta_get(DIGEST_META_LAST, &last)) == -1) {
		snprintf(err, errsz, "database error");
		return -1;
	}
	if (rc == 1)
		digest_parse(r, last);
	free(last);
	r->until = now - DIGEST_SETTLE_S;
	r->from = *c->quarantine_digest_from ? xstrdup(c->quarantine_digest_from) :
	    xasprintf("postmaster@%s", c->hostname);
	if (r->until <= r->since)
		return 0;
	from = r->since;
	for (int i = 0; i < r->nbehind; i++)
		if (r->behind[i].since < from)
			from = r->behind[i].since;
	q.since = from + 1;
	q.until = r->until;
	do {
		dc.rows = 0;
		if ((rc = db_quar_each(&q, digest_row, &dc)) == -1)
			break;
		q.since = dc.last_ts;	/* by key: see db_quar_query.after_id */
		q.after_id = dc.last_id;
	} while (dc.rows == DIGEST_PAGE && !dc.full);
	if (rc != -1 && dc.full)
		digest_cut(&dc, r);
	if (rc != -1 && digest_compose(c, now, &dc, r, err, errsz) == -1)
		rc = -1;
	else if (rc == -1)
		snprintf(err, errsz, "database error");
	r->walked = rc != -1;
	digest_items_free(&dc, 0);
	for (int i = 0; i < dc.npairs; i++)
		free(dc.pairs[i].rcpt);
	free(dc.items);
	free(dc.pairs);
	return rc == -1 ? -1 : 0;
}

/* rcpt's progress is since: a line of the round's value unless that is
 * the round's end; *n counts the lines (written up to DIGEST_MAX_BEHIND). */
static void
digest_line(struct buf *v, int *n, time_t end, const char *rcpt, time_t since)
{
	if (since < end && ++*n <= DIGEST_MAX_BEHIND)
		buf_printf(v, "%lld %s\n", (long long)since, rcpt);
}

/* Each recipient's progress: a digest taken, or nothing owed, moves it
 * to the round's until (never back); a deferred one stays. The value's
 * end is the furthest any recipient got, so a round cut short
 * (digest_cut) before the last one's end moves nobody back. */
int
digest_done(const struct digest_round *r)
{
	time_t end = r->until > r->since ? r->until : r->since;
	struct buf v = { 0 };
	int n = 0, rc;

	if (!r->walked)
		return 0;
	buf_printf(&v, "%lld\n", (long long)end);
	for (int i = 0; i < r->nmails; i++) {
		const struct digest_mail *m = &r->mails[i];
		digest_line(&v, &n, end, m->rcpt, m->deferred || m->since > r->until ?
		    m->since : r->until);
	}
	for (int i = 0; i < r->nbehind; i++) {
		const struct digest_behind *b = &r->behind[i];
		if (r->nmails == 0 || bsearch(b->rcpt, r->mails, (size_t)r->nmails,
		    sizeof(*r->mails), digest_mail_cmp) == NULL)
			digest_line(&v, &n, end, b->rcpt, b->since > r->until ?
			    b->since : r->until);
	}
	if (n > DIGEST_MAX_BEHIND) {
		log_warn("digest: more than %d recipients behind (digests deferred, or "
		    "a round cut short); the round is not remembered, so the next one "
		    "lists every recipient's messages again", DIGEST_MAX_BEHIND);
		rc = -1;
	} else
		rc = db_meta_put(DIGEST_META_LAST, buf_str(&v), 0);
	buf_free(&v);
	return rc;
}

void
digest_free(struct digest_round *r)
{
	for (int i = 0; i < r->nmails; i++) {
		free(r->mails[i].rcpt);
		free(r->mails[i].data);
	}
	free(r->mails);
	free(r->from);
	for (int i = 0; i < r->nbehind; i++)
		free(r->behind[i].rcpt);
	free(r->behind);
	memset(r, 0, sizeof(*r));
}

time_t
digest_slot(const struct conf *c, time_t now)
{
	struct tm tm;
	time_t slot;

	if (c->digest_every == 0)
		return 0;
	if (c->digest_every == 3600)
		return now - now % 3600;
	localtime_r(&now, &tm);
	tm.tm_hour = c->digest_at / 3600;
	tm.tm_min = c->digest_at / 60 % 60;
	tm.tm_sec = 0;
	tm.tm_isdst = -1;		/* the day's own offset (DST) */
	slot = mktime(&tm);
	if (slot > now) {
		tm.tm_mday--;
		tm.tm_isdst = -1;
		slot = mktime(&tm);
	}
	return slot;
}

int
digest_claim(time_t slot)
{
	static char me[ID_LEN + 1];
	char key[64], *who = NULL;
	int rc;

	if (me[0] == '\0')
		id_new(me);		/* this process, for the claim */
	snprintf(key, sizeof(key), DIGEST_META_SLOT "%lld", (long long)slot);
	if (db_meta_put(key, me, 1) == -1 || (rc = db_meta_get(key, &who)) != 1) {
		free(who);
		return -1;
	}
	rc = strcmp(who, me) == 0;
	free(who);
	if (db_meta_prune(DIGEST_META_SLOT, (long long)(slot - DIGEST_SLOT_KEEP_S)) == -1)
		log_warn("digest: old round claims not deleted (database); next claim again");
	return rc;
}
