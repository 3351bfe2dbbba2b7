/*
 * rulecheck.c -- regex rules as a policy check; see rulecheck.h.
 *
 * Each stage runs only the targets it can see: client_ip/client_name at
 * CONNECT, helo at HELO, mail_from at MAIL, rcpt_to (the recipient under
 * test) at RCPT, content targets at DATA. Every matching rule adds a
 * "rule"/"match" result named after it, with its score. When several rules
 * with actions match in one stage the most severe wins:
 * reject > tempfail > quarantine > accept. A log-only rule adds a
 * "rule"/"log-only" result with score 0 and nothing else. A quarantine action met before
 * DATA is remembered and applied at DATA (only a whole message can be
 * quarantined).
 *
 * Ownership: the session's state (ps->priv[RULECHECK_SLOT]) holds one
 * rule_set reference, dropped at transaction reset (the one taken at
 * CONNECT serves the session's first transaction too).
 * Thread: the check runs on policy workers, or on the proxy's loop thread
 * when rc_blocks() says it has nothing to read from the database and no
 * message past policy.inline_bytes to match (envelope rules always match
 * on the loop); one session at a time.
 */
#include "policy/rulecheck.h"
#include "db/db.h"
#include "lib/buf.h"
#include "lib/conf.h"
#include "lib/lim.h"
#include "lib/util.h"
#include "policy/policy_int.h"
#include "rules/mime.h"
#include "rules/rules.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Our index in pol_session.priv[]: our place in policy.c's check table. */
#define RULECHECK_SLOT	pol_check_slot(&rulecheck)
/* Matching rules named one result each, per stage; past it the rest add
 * their score as one "N more rules" result, so a message matching
 * hundreds of rules cannot crowd POL_MAX_RESULTS nor lose score. */
#define RULECHECK_MAX_NAMED	16

struct rc_state {
	struct rule_set	*set;
	/* set was checked at CONNECT/HELO and no transaction used it yet: the
	 * session's first MAIL keeps it instead of asking the database again
	 * (so that MAIL, with nothing else to look up, needs no worker). */
	int		 fresh;
	int		 quarantine;	/* a quarantine rule matched before DATA */
	char		 qrule[RULE_MAX_NAME + 1];
	/* this stage's hits past RULECHECK_MAX_NAMED, and strongest action */
	int		 named, more;
	double		 more_score;
	int		 action;	/* enum rule_action, or -1 */
	char		 arule[RULE_MAX_NAME + 1];
	struct pol_session *ps;
};

static pthread_mutex_t rc_build_mtx = PTHREAD_MUTEX_INITIALIZER;
static int rc_have_db;
/* db_admin_token() when the rule set was last found current (rc_checked
 * 0: never, or the last check failed): while the token stays, nobody
 * edited the rules and no session needs to ask the database. */
static _Atomic unsigned long long rc_token;
static _Atomic int rc_checked;

static struct rc_state *rc_state(struct pol_session *);
static int	 rc_current(void);
static void	 rc_run(struct pol_session *, enum pol_stage, const struct pol_msg *);
static void	 rc_tx_reset(struct pol_session *);
static void	 rc_free(struct pol_session *);
static int	 rc_blocks(const struct pol_session *, enum pol_stage,
		    const struct pol_msg *);
static int	 rc_heavy(const struct pol_session *, struct rule_set *, enum pol_stage,
		    const struct pol_msg *);
static void	 rc_hit(void *, const struct rule_hit *);
static void	 rc_apply(struct rc_state *, enum pol_stage);
static unsigned	 rc_stage_mask(enum pol_stage);
static int	 rc_build(struct conf *, struct rule_def *, size_t, long long v,
		    unsigned long long token);
static int	 rc_starter(struct conf *);
static int	 rc_parse_file(const char *path, struct rule_def **, size_t *);

const struct pol_check rulecheck = {
	.name = "rule",
	.stages = 1u << POL_CONNECT | 1u << POL_HELO | 1u << POL_MAIL |
	    1u << POL_RCPT | 1u << POL_DATA,
	.enabled = NULL,
	.run = rc_run,
	.tx_reset = rc_tx_reset,
	.free = rc_free,
	.blocks = rc_blocks,
};

/* Severity order for competing actions (higher wins). */
static const int rc_severity[RULE_NACTIONS] = {
	[RULE_SCORE] = 0, [RULE_ACCEPT] = 1, [RULE_QUARANTINE] = 2,
	[RULE_TEMPFAIL] = 3, [RULE_REJECT] = 4,
};

static struct rc_state *
rc_state(struct pol_session *ps)
{
	if (ps->priv[RULECHECK_SLOT] == NULL)
		ps->priv[RULECHECK_SLOT] = xcalloc(1, sizeof(struct rc_state));
	return ps->priv[RULECHECK_SLOT];
}

static unsigned
rc_stage_mask(enum pol_stage st)
{
	switch (st) {
	case POL_CONNECT:
		return RULE_MASK(RULE_CLIENT_IP) | RULE_MASK(RULE_CLIENT_NAME);
	case POL_HELO:
		return RULE_MASK(RULE_HELO);
	case POL_MAIL:
		return RULE_MASK(RULE_MAIL_FROM);
	case POL_RCPT:
		return RULE_MASK(RULE_RCPT_TO);
	case POL_DATA:
		return RULE_MASK_CONTENT;
	default:
		return 0;
	}
}

static void
rc_run(struct pol_session *ps, enum pol_stage st, const struct pol_msg *msg)
{
	struct rc_state *s = rc_state(ps);
	struct rule_input in = { 0 };
	const char *rcpt[1];
	unsigned mask = rc_stage_mask(st);

	if (s->set == NULL) {
		rulecheck_refresh(ps->conf, 0);
		s->set = rule_current();
		s->fresh = st <= POL_HELO;
	}
	s->ps = ps;
	s->action = -1;
	s->named = s->more = 0;
	s->more_score = 0;
	if (s->set != NULL && (rule_set_targets(s->set) & mask)) {
		in.client_ip = ps->client_ip;
		in.client_name = ps->client_name;
		in.helo = ps->helo;
		in.mail_from = ps->mail_from;
		if (ps->rcpt != NULL) {
			rcpt[0] = ps->rcpt;
			in.rcpts = rcpt;
			in.nrcpts = 1;
		}
		if (st == POL_DATA && msg != NULL) {
			in.raw = msg->data;
			in.rawlen = msg->len;
			if (rule_set_targets(s->set) & mask & ~RULE_MASK(RULE_RAW))
				in.msg = pol_mime(ps, msg);
		}
		rule_set_eval(s->set, &in, mask, rc_hit, s);
	}
	rc_apply(s, st);
}

/* 1 when the rule set in memory is known to match the database. */
static int
rc_current(void)
{
	return rc_checked && db_admin_token() == rc_token;
}

/* The run blocks when it must read the database (the session has no rule
 * set yet and the rules may have been edited: rulecheck_refresh), when
 * content rules run at DATA over a body past policy.inline_bytes (each
 * match is bounded by rules.match_limit, but their number grows with the
 * body), or when a quarantine rule matched earlier stores the message at
 * DATA. Envelope rules (client, HELO, MAIL FROM, RCPT TO) do not block:
 * their subjects are bounded by the command line and each match by
 * rules.match_limit, a few microseconds against a worker's round trip
 * (three of them per message with the starter rules: 14 -> 5 futex calls
 * per message). */
static int
rc_blocks(const struct pol_session *ps, enum pol_stage st, const struct pol_msg *msg)
{
	const struct rc_state *s = ps->priv[RULECHECK_SLOT];
	struct rule_set *set;
	int r;

	if (s != NULL && s->set != NULL)
		return s->quarantine || rc_heavy(ps, s->set, st, msg);
	if (!rc_current())
		return 1;
	set = rule_current();
	r = set == NULL || (s != NULL && s->quarantine) || rc_heavy(ps, set, st, msg);
	rule_set_unref(set);
	return r;
}

/* Rules of this stage that read a message too large for the loop. */
static int
rc_heavy(const struct pol_session *ps, struct rule_set *set, enum pol_stage st,
    const struct pol_msg *msg)
{
	return st == POL_DATA && (rule_set_targets(set) & rc_stage_mask(st)) != 0 &&
	    !pol_inline_msg(ps, msg);
}

static void
rc_hit(void *arg, const struct rule_hit *h)
{
	struct rc_state *s = arg;

	/* Watched, not acting: recorded (and counted by db/) under a result
	 * of its own, with no score and no action. */
	if (h->log_only) {
		if (s->named < RULECHECK_MAX_NAMED) {
			pol_result_add(s->ps, "rule", RULE_LOG_ONLY, 0, NULL, "%s", h->name);
			s->named++;
		}
		return;
	}
	if (s->named < RULECHECK_MAX_NAMED) {
		pol_result_add(s->ps, "rule", "match", h->score, NULL, "%s", h->name);
		s->named++;
	} else {
		s->more++;
		s->more_score += h->score;
	}
	if (h->action == RULE_SCORE)
		return;
	if (s->action == -1 || rc_severity[h->action] > rc_severity[s->action]) {
		s->action = (int)h->action;
		snprintf(s->arule, sizeof(s->arule), "%s", h->name);
	}
}

/* Turn the stage's strongest action into a hard decision. */
static void
rc_apply(struct rc_state *s, enum pol_stage st)
{
	struct pol_session *ps = s->ps;

	if (s->more > 0)
		pol_result_add(ps, "rule", "match", s->more_score, NULL,
		    "%d more rules", s->more);
	if (s->action == RULE_QUARANTINE && st != POL_DATA) {
		s->quarantine = 1;
		snprintf(s->qrule, sizeof(s->qrule), "%s", s->arule);
		return;
	}
	if (st == POL_DATA && s->quarantine && (s->action == -1 ||
	    rc_severity[s->action] < rc_severity[RULE_QUARANTINE])) {
		s->action = RULE_QUARANTINE;
		snprintf(s->arule, sizeof(s->arule), "%s", s->qrule);
	}
	switch (s->action) {
	case RULE_REJECT:
		pol_hard_set(ps, POL_REJECT, st == POL_CONNECT ? 554 : 550, "5.7.1",
		    st == POL_CONNECT, "Rejected by policy rule %s", s->arule);
		break;
	case RULE_TEMPFAIL:
		pol_hard_set(ps, POL_TEMPFAIL, 451, "4.7.1", 0,
		    "Try again later (policy rule %s)", s->arule);
		break;
	case RULE_QUARANTINE:
		pol_hard_set(ps, POL_QUARANTINE, 250, "2.0.0", 0,
		    "Ok: quarantined by rule %s", s->arule);
		break;
	case RULE_ACCEPT:
		pol_hard_set(ps, POL_ACCEPT, 250, "2.0.0", 0, "Ok");
		break;
	default:
		break;
	}
}

static void
rc_tx_reset(struct pol_session *ps)
{
	struct rc_state *s = ps->priv[RULECHECK_SLOT];

	if (s == NULL)
		return;
	/* No transaction yet (the reset of the first MAIL, or an RSET
	 * before it): a fresh set stays. */
	if (!s->fresh || ps->mail_from != NULL) {
		rule_set_unref(s->set);
		s->set = NULL;
		s->fresh = 0;
	}
	s->quarantine = 0;
}

static void
rc_free(struct pol_session *ps)
{
	struct rc_state *s = ps->priv[RULECHECK_SLOT];

	if (s != NULL)
		s->fresh = 0;
	rc_tx_reset(ps);
	free(ps->priv[RULECHECK_SLOT]);
	ps->priv[RULECHECK_SLOT] = NULL;
}

/* ---- loading ---- */

void
rulecheck_opts(const struct conf *c, struct rule_opts *o)
{
	/* Whole: the callers' structs are on the stack, and a stray
	 * no_prefilter ran every content regex over every message. */
	*o = (struct rule_opts){
		.match_limit = (unsigned long)c->rules_match_limit,
		.depth_limit = (unsigned long)c->rules_depth_limit,
		.jit = 1,
	};
}

int
rulecheck_refresh(struct conf *c, int force)
{
	struct rule_set *cur;
	struct rule_def *defs;
	size_t n;
	long long v;
	unsigned long long token;
	int rc;

	if (!rc_have_db)
		return 0;
	if (!force && rc_current())
		return 0;
	/* Taken before the read: an edit racing with it moves the token
	 * again, and the next session reads once more. */
	token = db_admin_token();
	if ((v = db_rule_version()) < 0) {
		rc_checked = 0;
		return -1;
	}
	/* The common case, unchanged, takes no lock. */
	cur = rule_current();
	if (!force && cur != NULL && rule_set_version(cur) == v) {
		rule_set_unref(cur);
		rc_token = token;
		rc_checked = 1;
		return 0;
	}
	rule_set_unref(cur);
	pthread_mutex_lock(&rc_build_mtx);
	cur = rule_current();
	if (!force && cur != NULL && rule_set_version(cur) == v) {
		rule_set_unref(cur);
		rc_token = token;
		rc_checked = 1;
		pthread_mutex_unlock(&rc_build_mtx);
		return 0;
	}
	rule_set_unref(cur);
	if (db_rule_load(&defs, &n) == -1) {
		pthread_mutex_unlock(&rc_build_mtx);
		return -1;
	}
	rc = rc_build(c, defs, n, v, token);
	pthread_mutex_unlock(&rc_build_mtx);
	return rc;
}

/* Compile defs (consumed) into the current set tagged with version v;
 * the caller holds rc_build_mtx. 0, or -1 with the old set kept. */
static int
rc_build(struct conf *c, struct rule_def *defs, size_t n, long long v,
    unsigned long long token)
{
	struct rule_set *rs;
	struct rule_opts o;
	size_t k = 0;
	char err[512];

	/* A stored rule that no longer compiles is skipped, not fatal. */
	for (size_t i = 0; i < n; i++) {
		if (defs[i].enabled && rule_def_check(&defs[i], err, sizeof(err)) == -1) {
			log_err("rules: rule %s (id %lld) skipped: %s", defs[i].name,
			    defs[i].id, err);
			rule_def_clear(&defs[i]);
			continue;
		}
		defs[k++] = defs[i];
	}
	rulecheck_opts(c, &o);
	rs = rule_set_build(defs, k, &o, err, sizeof(err));
	for (size_t i = 0; i < k; i++)
		rule_def_clear(&defs[i]);
	free(defs);
	if (rs == NULL) {
		log_err("rules: rebuild failed, keeping the old set: %s", err);
		return -1;
	}
	rule_set_tag(rs, v);
	log_info("rules: %zu rules active (version %lld)", rule_set_count(rs), v);
	rule_swap(rs);
	rc_token = token;
	rc_checked = 1;
	return 0;
}

/* `postern check` sets it: rules.file is read into memory, never written. */
static int rc_no_writes;

void
rulecheck_no_writes(void)
{
	rc_no_writes = 1;
}

/* Version 0: the table was never written, so the starter file is imported
 * (at start and on SIGHUP); an admin who deletes every rule keeps none.
 * 1 when the starter set was built in memory instead (rc_no_writes), 0
 * when the table is to be read, -1 on error. */
static int
rc_starter(struct conf *c)
{
	struct rule_def *defs;
	size_t n;
	int rc;

	if (c->rules_file == NULL || *c->rules_file == '\0' || db_rule_version() != 0)
		return 0;
	if (!rc_no_writes)
		return rulecheck_import(c->rules_file, 0);
	if (rc_parse_file(c->rules_file, &defs, &n) == -1)
		return -1;
	pthread_mutex_lock(&rc_build_mtx);
	rc = rc_build(c, defs, n, 0, db_admin_token());
	pthread_mutex_unlock(&rc_build_mtx);
	return rc == 0 ? 1 : -1;
}

int
rulecheck_init(struct conf *c)
{
	int rc;

	mime_init();
	rc_have_db = 1;
	if ((rc = rc_starter(c)) != 0)
		return rc == 1 ? 0 : -1;
	return rulecheck_refresh(c, 1);
}

void
rulecheck_reload(struct conf *c)
{
	if (rc_starter(c) == -1)
		log_err("rules: rules.file %s not imported; the rule table stays empty",
		    c->rules_file);
	rulecheck_refresh(c, 1);
}

/* ---- rule files ---- */

/* Read and parse a rule file; errors are logged. 0 or -1. */
static int
rc_parse_file(const char *path, struct rule_def **defs, size_t *n)
{
	size_t len;
	char *text, err[512];
	int rc;

	if (file_read(path, &text, &len) == -1) {
		fprintf(stderr, "postern: %s: %s\n", path, strerror(errno));
		return -1;
	}
	rc = rule_text_parse(text, len, defs, n, err, sizeof(err));
	free(text);
	if (rc == -1)
		log_err("rules: %s: %s", path, err);
	return rc;
}

int
rulecheck_import(const char *path, int replace)
{
	struct rule_def *defs;
	size_t n;
	int rc;

	if (rc_parse_file(path, &defs, &n) == -1)
		return -1;
	rc = db_rule_import(defs, n, replace);
	if (rc == 0)
		log_info("rules: imported %zu rules from %s", n, path);
	for (size_t i = 0; i < n; i++)
		rule_def_clear(&defs[i]);
	free(defs);
	return rc;
}
