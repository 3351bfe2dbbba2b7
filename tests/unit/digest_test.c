/*
 * digest_test.c -- policy/digest.c with a cap of five (recipient, message)
 * pairs per round (this file defines the digest_* calls itself, so the
 * library's copy is not linked in), on a SQLite database of its own: a
 * round that reaches the cap lists the oldest messages and ends before
 * the second it stopped in; the next round lists the rest. Every message
 * is listed once to each of its recipients, none skipped, and a deferred
 * recipient keeps its place through a round cut short.
 */
#define DIGEST_MAX_PAIRS 5
#define DIGEST_PAGE 2	/* pages of two rows: every walk pages by key */
#include "policy/digest.c"
#include "t.h"

#include <stdlib.h>

#define NRCPT	3
#define NMSG	6

static const char *const rcpts[NRCPT] = { "a@x.test", "b@x.test", "c@x.test" };

/* Oldest first; D and E share a second, and a round of this set reaches
 * the cap inside it (A 2 pairs, B 1, C 1, D 1: E's first is the sixth). */
static const struct {
	const char	*id;
	time_t		 ts;
	const char	*to[2];
} msgs[NMSG] = {
	{ "00000000000A", 1000, { "a@x.test", "b@x.test" } },
	{ "00000000000B", 1001, { "a@x.test" } },
	{ "00000000000C", 1002, { "b@x.test" } },
	{ "00000000000D", 1003, { "a@x.test" } },
	{ "00000000000E", 1003, { "a@x.test", "b@x.test" } },
	{ "00000000000F", 1004, { "c@x.test" } },
};

static char dir[] = "/tmp/postern-digesttest-XXXXXX";
static struct conf *c;
static int listed[NRCPT][NMSG];	/* digests that listed message m to r */

/* A fresh database holding msgs. */
static void
open_fresh(const char *name)
{
	char path[300];

	snprintf(path, sizeof(path), "%s/%s.db", dir, name);
	free(c->db_path);
	c->db_path = xstrdup(path);
	T_ASSERT(db_open(c, 0) == 0);
	for (int i = 0; i < NMSG; i++) {
		char subject[32];
		struct db_quar q = { .id = msgs[i].id, .ts = msgs[i].ts, .sid = "s",
		    .client_ip = "192.0.2.1", .client_name = "", .helo = "h",
		    .mail_from = "s@y.test", .rcpts = msgs[i].to,
		    .nrcpts = msgs[i].to[1] ? 2 : 1, .subject = subject, .msgid = "",
		    .score = 9, .raw = "x\r\n", .len = 3 };
		snprintf(subject, sizeof(subject), "subj%s", msgs[i].id);
		T_EQ_INT(db_quar_add(&q, 1 << 20), 0);
	}
	memset(listed, 0, sizeof(listed));
}

static int
rcpt_index(const char *rcpt)
{
	for (int i = 0; i < NRCPT; i++)
		if (strcasecmp(rcpts[i], rcpt) == 0)
			return i;
	T_ASSERT(!"a digest to a stranger");
	return 0;
}

/* Does the digest list message m? Its subject, once quoted-printable's
 * soft line breaks are gone. */
static int
lists(const struct digest_mail *d, int m)
{
	char *text = xstrndup(d->data, d->len), *w = text, want[32];
	int found;

	for (const char *p = text; *p; p++) {
		if (p[0] == '=' && p[1] == '\r' && p[2] == '\n')
			p += 2;
		else
			*w++ = *p;
	}
	*w = '\0';
	snprintf(want, sizeof(want), "subj%s", msgs[m].id);
	found = strstr(text, want) != NULL;
	free(text);
	return found;
}

/* One round at now, the digests to the recipients in deferred not taken:
 * counts what the others listed. Its end (until). */
static time_t
round_at(time_t now, const char *deferred, int *nmails)
{
	struct digest_round r;
	char err[200];
	time_t until;

	T_EQ_INT(digest_prepare(c, now, &r, err, sizeof(err)), 0);
	for (int i = 0; i < r.nmails; i++) {
		int k = rcpt_index(r.mails[i].rcpt);
		r.mails[i].deferred = deferred && strcmp(deferred, rcpts[k]) == 0;
		for (int m = 0; m < NMSG && !r.mails[i].deferred; m++)
			listed[k][m] += lists(&r.mails[i], m);
	}
	T_EQ_INT(digest_done(&r), 0);
	until = r.until;
	*nmails = r.nmails;
	digest_free(&r);
	return until;
}

/* Each message listed exactly once to each of its recipients, never to
 * anyone else. */
static void
each_once(void)
{
	for (int m = 0; m < NMSG; m++)
		for (int k = 0; k < NRCPT; k++) {
			int want = (msgs[m].to[0] && strcmp(msgs[m].to[0], rcpts[k]) == 0) ||
			    (msgs[m].to[1] && strcmp(msgs[m].to[1], rcpts[k]) == 0);
			if (listed[k][m] != want)
				fprintf(stderr, "  %s listed to %s %d times\n", msgs[m].id,
				    rcpts[k], listed[k][m]);
			T_EQ_INT(listed[k][m], want);
		}
}

T_CASE(full_round_then_the_rest)
{
	int n;

	open_fresh("full");
	/* the oldest first, up to the second before D and E */
	T_EQ_INT(round_at(2000, NULL, &n), 1002);
	T_EQ_INT(n, 2);
	T_EQ_INT(listed[0][0] + listed[0][1] + listed[1][0] + listed[1][2], 4);
	T_EQ_INT(listed[0][3] + listed[0][4] + listed[1][4] + listed[2][5], 0);
	T_EQ_INT(round_at(2000, NULL, &n), 2000 - DIGEST_SETTLE_S);
	T_EQ_INT(n, 3);
	each_once();
	T_EQ_INT(round_at(2000, NULL, &n), 2000 - DIGEST_SETTLE_S);
	T_EQ_INT(n, 0);				/* nothing left */
	db_close();
}

/* b's first digest is deferred: the next round lists b's messages from
 * the start again, reaches the cap before F and ends there; b is then
 * caught up like everyone, and the third round lists F. */
T_CASE(deferred_recipient_through_a_cut_round)
{
	int n;

	open_fresh("deferred");
	T_EQ_INT(round_at(2000, "b@x.test", &n), 1002);
	T_EQ_INT(listed[1][0] + listed[1][2], 0);	/* not taken: not counted */
	T_EQ_INT(round_at(2000, NULL, &n), 1003);	/* A,C,E to b; D,E to a */
	T_EQ_INT(n, 2);
	T_EQ_INT(listed[2][5], 0);
	T_EQ_INT(round_at(2000, NULL, &n), 2000 - DIGEST_SETTLE_S);
	T_EQ_INT(n, 1);
	each_once();
	db_close();
}

int
main(void)
{
	if (mkdtemp(dir) == NULL)
		return 1;
	c = conf_defaults();
	free(c->web_public_url);
	c->web_public_url = xstrdup("https://mx.test");
	log_set_level(LOG_LVL_ERR);
	T_RUN(full_round_then_the_rest);
	T_RUN(deferred_recipient_through_a_cut_round);
	conf_unref(c);
	if (t_rm_rf(dir) == -1)
		return 1;
	return T_END();
}
