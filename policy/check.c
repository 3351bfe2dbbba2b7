/*
 * check.c -- the dry run behind `postern check` (cli/check.c): one offline
 * session on one envelope (and optionally one message), reported as one
 * JSON object (jansson).
 *
 * The stages run as a real session would run them -- connect, helo (with
 * a HELO name), mail, rcpt (each recipient), data (with a message) -- and
 * stop at the first stage whose verdict is reject or tempfail, as the SMTP
 * dialogue would. With a message the envelope comes from it unless given:
 * the sender from Return-Path, else the From address ("<>" and a message
 * without either are the null sender), the recipient the first To
 * address. Without a message, MAIL and RCPT run only with a sender.
 * Report: every result under its check's name (the last one wins; all of
 * them in "results"), the envelope used, the score, the verdict, the
 * stage it was reached at, and the policy ("policy": the recipient
 * domain's [domain] section or "global", with its thresholds).
 *
 * Nothing is written: the session is a dry run (pol_set_dry_run), and
 * rules.file is compiled in memory when the rule table was never written
 * (the caller's rulecheck_no_writes). The one exception is record: the
 * greylist triplet is stored as a real session would store it, so that
 * runs can replay a sender's retries.
 *
 * Public calls: pol_dry_run, pol_only_ok. Thread: main only (pol_only_set
 * is process-wide).
 */
#include "lib/conf.h"
#include "lib/util.h"
#include "policy/bayes.h"
#include "policy/dompol.h"
#include "policy/msghdr.h"
#include "policy/policy_int.h"
#include "policy/spf.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The envelope a run uses: given, or taken from the message. */
struct check_env {
	char		*from;		/* NULL: no MAIL stage; "" the null sender */
	const char	**rcpts;
	int		 nrcpts;
	char		*to;		/* the first To address, when it is used */
};

static char	*check_header_addr(const char *msg, size_t len, const char *name);
static char	*check_first_addr(const char *);
static void	 check_envelope(const struct pol_dry *, const struct pol_msg *,
		    struct check_env *);
static int	 check_run(struct pol_session *, const struct pol_dry *,
		    const struct check_env *, const struct pol_msg *,
		    struct pol_decision *);
static int	 check_stage(struct pol_session *, enum pol_stage, const struct pol_msg *,
		    struct pol_decision *);
static json_t	*check_json(const struct pol_session *, enum pol_stage,
		    const struct check_env *, const struct pol_decision *);
static void	 check_spf_json(const struct pol_session *, json_t *);
static void	 check_bayes_json(const struct pol_session *, json_t *);
static json_t	*check_policy_json(const struct pol_session *, enum pol_stage);

static const char *stage_names[] = { "connect", "helo", "mail", "rcpt", "data" };

struct json_t *
pol_dry_run(struct conf *c, const struct sockaddr *sa, socklen_t sl,
    const struct pol_dry *dry, const struct pol_msg *m)
{
	struct check_env env = { 0 };
	struct pol_decision d = { 0 };
	struct pol_session *ps;
	json_t *j;

	check_envelope(dry, m, &env);
	pol_only_set(dry->only);
	ps = pol_session_new(c, "check", sa, sl);
	pol_set_dry_run(ps);
	ps->record_grey = dry->record;
	j = check_json(ps, check_run(ps, dry, &env, m, &d), &env, &d);
	pol_decision_clear(&d);
	pol_session_free(ps);
	pol_only_set(NULL);
	free(env.from);
	free(env.to);
	free(env.rcpts);
	return j;
}

/* The stages, in order, up to the first that ends the session; returns
 * the last stage run. */
static int
check_run(struct pol_session *ps, const struct pol_dry *a,
    const struct check_env *env, const struct pol_msg *m, struct pol_decision *d)
{
	enum pol_stage stage = POL_CONNECT;
	int stop = check_stage(ps, POL_CONNECT, NULL, d);

	if (!stop && a->helo) {
		pol_set_helo(ps, a->helo);
		stop = check_stage(ps, stage = POL_HELO, NULL, d);
	}
	if (stop || env->from == NULL)
		return stage;
	pol_tx_begin(ps, env->from, "");
	stop = check_stage(ps, stage = POL_MAIL, NULL, d);
	for (int i = 0; !stop && i < env->nrcpts; i++) {
		pol_tx_rcpt(ps, env->rcpts[i]);
		stop = check_stage(ps, stage = POL_RCPT, NULL, d);
		if (!stop)
			pol_tx_rcpt_accepted(ps, env->rcpts[i]);
	}
	if (!stop && m != NULL)
		check_stage(ps, stage = POL_DATA, m, d);
	return stage;
}

int
pol_only_ok(const char *only, char *why, size_t whysz)
{
	char *list, *name, *save = NULL;
	int rc = 0;

	list = xstrdup(only);
	for (name = strtok_r(list, ",", &save); name != NULL && rc == 0;
	    name = strtok_r(NULL, ",", &save))
		if (!pol_check_known(name)) {
			snprintf(why, whysz, "--only: no check named '%s'", name);
			rc = -1;
		}
	if (*only == '\0' || strspn(only, ",") == strlen(only)) {
		snprintf(why, whysz, "--only needs check names");
		rc = -1;
	}
	free(list);
	return rc;
}

/* The envelope: what the arguments give, the rest from the message. */
static void
check_envelope(const struct pol_dry *a, const struct pol_msg *m,
    struct check_env *env)
{
	if (a->from != NULL)
		env->from = xstrdup(strcmp(a->from, "<>") == 0 ? "" : a->from);
	else if (m != NULL &&
	    (env->from = check_header_addr(m->data, m->len, "Return-Path")) == NULL &&
	    (env->from = check_header_addr(m->data, m->len, "From")) == NULL)
		env->from = xstrdup("");	/* a message from nobody: <> */
	env->rcpts = xcalloc((size_t)a->nrcpts + 1, sizeof(*env->rcpts));
	for (int i = 0; i < a->nrcpts; i++)
		env->rcpts[env->nrcpts++] = a->rcpts[i];
	if (env->nrcpts == 0 && m != NULL &&
	    (env->to = check_header_addr(m->data, m->len, "To")) != NULL && *env->to)
		env->rcpts[env->nrcpts++] = env->to;
}

/* The first address of the first field called name; "" for "<>", NULL
 * when there is no such field or it holds no address. xmalloc'd. */
static char *
check_header_addr(const char *msg, size_t len, const char *name)
{
	struct msghdr_field f;
	size_t pos = 0;
	char *v, *addr;

	while (msghdr_next(msg, len, &pos, &f))
		if (msghdr_is(&f, name)) {
			v = msghdr_unfold(&f);
			addr = check_first_addr(v);
			free(v);
			return addr;
		}
	return NULL;
}

/* RFC 5322 3.4: the first mailbox of an address list -- the angle-addr
 * when it has one, else the addr-spec -- skipping quoted strings and
 * comments, which may hold '<', ',' or '@'. xmalloc'd, or NULL. */
static char *
check_first_addr(const char *v)
{
	const char *p = v, *word = NULL, *wend = NULL, *end;
	int depth;

	for (; *p != '\0' && *p != ','; p++) {
		if (*p == '"') {
			for (p++; *p != '\0' && *p != '"'; p++)
				if (*p == '\\' && p[1] != '\0')
					p++;
			if (*p == '\0')
				return NULL;
		} else if (*p == '(') {
			for (depth = 1; depth > 0 && *++p != '\0'; )
				depth += *p == '(' ? 1 : *p == ')' ? -1 : 0;
			if (*p == '\0')
				return NULL;
		} else if (*p == '<') {
			if ((end = strchr(p + 1, '>')) == NULL)
				return NULL;
			return xstrndup(p + 1, (size_t)(end - p - 1));
		} else if (word == NULL && *p != ' ' && *p != '\t')
			word = p;
		else if (word != NULL && wend == NULL && (*p == ' ' || *p == '\t'))
			wend = p;	/* a display name, unless no <...> follows */
	}
	if (word == NULL)
		return NULL;
	return xstrndup(word, (size_t)((wend ? wend : p) - word));
}

/* Run one stage; 1 when the session would end here. */
static int
check_stage(struct pol_session *ps, enum pol_stage st, const struct pol_msg *m,
    struct pol_decision *d)
{
	pol_decision_clear(d);
	pol_run(ps, st, m, d);
	return d->verdict == POL_REJECT || d->verdict == POL_TEMPFAIL;
}

static json_t *
check_json(const struct pol_session *ps, enum pol_stage stage,
    const struct check_env *env, const struct pol_decision *d)
{
	json_t *o = json_object(), *all = json_array(), *rcpts = json_array();

	json_object_set_new(o, "ip", json_string(ps->client_ip));
	for (int i = 0; i < env->nrcpts; i++)
		json_array_append_new(rcpts, json_string(env->rcpts[i]));
	json_object_set_new(o, "mail_from", env->from ? json_string(env->from) : json_null());
	json_object_set_new(o, "rcpts", rcpts);
	for (int i = 0; i < ps->nresults; i++) {
		const struct pol_result *r = &ps->results[i];
		json_t *j = json_object();

		json_object_set_new(j, "result", json_string(r->result));
		json_object_set_new(j, "score", json_real(r->score));
		json_object_set_new(j, "stage", json_string(stage_names[r->stage]));
		if (r->reason)
			json_object_set_new(j, "reason", json_string(r->reason));
		if (r->authres)
			json_object_set_new(j, "authres", json_string(r->authres));
		if (strcmp(r->check, "spf") == 0)
			check_spf_json(ps, j);
		if (strcmp(r->check, "bayes") == 0)
			check_bayes_json(ps, j);
		json_object_set(o, r->check, j);
		json_object_set_new(j, "check", json_string(r->check));
		json_array_append_new(all, j);
	}
	json_object_set_new(o, "results", all);
	json_object_set_new(o, "score", json_real(ps->score));
	json_object_set_new(o, "client_name", json_string(pol_client_name(ps)));
	json_object_set_new(o, "verdict", json_string(pol_verdict_name(d->verdict)));
	json_object_set_new(o, "stage", json_string(stage_names[stage]));
	json_object_set_new(o, "policy", check_policy_json(ps, stage));
	if (d->code)
		json_object_set_new(o, "reply", json_sprintf("%d %s %s", d->code,
		    d->status, d->text));
	if (d->prepend)
		json_object_set_new(o, "headers", json_string(d->prepend));
	return o;
}

/* The policy that decided the last stage (dompol.h): a [domain] section's
 * name, or "global"; its thresholds and greylisting. */
static json_t *
check_policy_json(const struct pol_session *ps, enum pol_stage stage)
{
	const struct conf_domain *dom = ps->dom_stage;
	struct dompol_limits l;

	dompol_limits(ps->conf, dom, &l);
	if (stage < POL_RCPT)
		l.reject = dompol_reject_early(ps);
	return json_pack("{s:s, s:f, s:f, s:f, s:b}", "domain", dom ? dom->name : "global",
	    "tag_score", l.tag, "quarantine_score", l.quarantine, "reject_score", l.reject,
	    "greylisting", dompol_greylist(ps->conf, dom));
}

/* The SPF details that do not fit a pol_result. */
static void
check_spf_json(const struct pol_session *ps, json_t *j)
{
	const struct spf_outcome *o = spf_session_outcome(ps);
	const char *dom, *ident;
	enum spf_result r;

	if (o == NULL || spf_session_get(ps, &r, &dom, &ident) == -1)
		return;
	json_object_set_new(j, "identity", json_string(ident));
	json_object_set_new(j, "domain", json_string(dom));
	json_object_set_new(j, "dns_terms", json_integer(o->dns_terms));
	json_object_set_new(j, "void_lookups", json_integer(o->void_lookups));
	json_object_set_new(j, "explanation",
	    o->explanation ? json_string(o->explanation) : json_null());
}

/* The classifier's probability, counts, Markov part and the tokens that
 * weighed most. */
static void
check_bayes_json(const struct pol_session *ps, json_t *j)
{
	const struct bayes_verdict *v = bayes_session_verdict(ps);
	json_t *top;

	if (v == NULL)
		return;
	json_object_set_new(j, "probability", json_real(v->prob));
	json_object_set_new(j, "learned_spam", json_integer(v->nspam));
	json_object_set_new(j, "learned_ham", json_integer(v->nham));
	json_object_set_new(j, "tokens", json_integer(v->ntokens));
	json_object_set_new(j, "tokens_used", json_integer(v->used));
	/* the Markov part: its mean log ratio (null when it did not weigh
	 * in), the words' probability alone, its learned messages */
	json_object_set_new(j, "markov", v->markov ? json_real(v->markov_mean) : json_null());
	json_object_set_new(j, "words_probability", json_real(v->words_prob));
	json_object_set_new(j, "markov_learned_spam", json_integer(v->mspam));
	json_object_set_new(j, "markov_learned_ham", json_integer(v->mham));
	top = json_array();
	for (int i = 0; i < v->ntop; i++)
		json_array_append_new(top, json_pack("{s:s, s:f, s:i, s:i}",
		    "token", v->top[i].text, "probability", v->top[i].prob,
		    "spam", (int)v->top[i].spam, "ham", (int)v->top[i].ham));
	json_object_set_new(j, "top_tokens", top);
}
