/*
 * policy.c -- stages, the check table, scoring and the decision.
 *
 * pol_run() runs every enabled check registered for the stage, in table
 * order, then turns hard decisions and the score sum into a pol_decision.
 * Decide as early as possible: a score past reject_score rejects at the
 * stage where it is reached, so spam never costs a DATA transfer.
 */
#include "policy_int.h"
#include "authres.h"
#include "dkim.h"
#include "dmarc.h"
#include "conf.h"
#include "util.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void	 pol_decide(struct pol_session *, enum pol_stage, struct pol_decision *);
static void	 pol_results_drop(struct pol_session *, int keep_session);
static char	*pol_authres_header(const struct pol_session *);

/* The checks, in the order they run within a stage. Each module adds its
 * entry here. */
extern const struct pol_check spf_check;

static const struct pol_check *checks[] = {
	&spf_check,
	&dkim_check,
	&dmarc_check,		/* after spf and dkim: reads their results */
	NULL
};

/* `postern check --only`: a comma-separated list, or NULL for all. */
static char *only_list;

int
pol_check_slot(const struct pol_check *ck)
{
	for (int i = 0; checks[i] != NULL; i++)
		if (checks[i] == ck)
			return i;
	fatalx("pol_check_slot: %s is not in checks[]", ck->name);
}

void
pol_only_set(const char *csv)
{
	free(only_list);
	only_list = csv ? xasprintf(",%s,", csv) : NULL;
}

static int
pol_only_allows(const char *name)
{
	char key[32];

	if (only_list == NULL)
		return 1;
	snprintf(key, sizeof(key), ",%s,", name);
	return strstr(only_list, key) != NULL;
}

int
pol_init(struct conf *c)
{
	if (dns_init(c) == -1)
		return -1;
	return 0;
}

void
pol_reload(struct conf *c)
{
	(void)c;
}

void
pol_shutdown(void)
{
	dns_shutdown();
}

struct pol_session *
pol_session_new(struct conf *c, const char *sid, const struct sockaddr *sa,
    socklen_t len)
{
	struct pol_session *ps = xcalloc(1, sizeof(*ps));

	ps->conf = conf_ref(c);
	snprintf(ps->sid, sizeof(ps->sid), "%s", sid);
	if (len > sizeof(ps->client))
		fatalx("pol_session_new: sockaddr too long");
	memcpy(&ps->client, sa, len);
	ps->clientlen = len;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
		    ps->client_ip, sizeof(ps->client_ip));
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr,
		    ps->client_ip, sizeof(ps->client_ip));
	else
		snprintf(ps->client_ip, sizeof(ps->client_ip), "unknown");
	ps->client_name = xstrdup("unknown");
	dns_budget_init(&ps->dns, c);
	return ps;
}

void
pol_session_free(struct pol_session *ps)
{
	if (ps == NULL)
		return;
	pol_tx_reset(ps);
	for (size_t i = 0; checks[i] != NULL; i++)
		if (checks[i]->free)
			checks[i]->free(ps);
	pol_results_drop(ps, 0);
	free(ps->client_name);
	free(ps->helo);
	free(ps->tls);
	conf_unref(ps->conf);
	free(ps);
}

void
pol_set_client_name(struct pol_session *ps, const char *name)
{
	free(ps->client_name);
	ps->client_name = xstrdup(name);
}

void
pol_set_helo(struct pol_session *ps, const char *helo)
{
	free(ps->helo);
	ps->helo = xstrdup(helo);
}

void
pol_set_tls(struct pol_session *ps, const char *v)
{
	free(ps->tls);
	ps->tls = xstrdup(v);
}

void
pol_tx_begin(struct pol_session *ps, const char *from, const char *params)
{
	pol_tx_reset(ps);
	ps->mail_from = xstrdup(from);
	ps->mail_params = xstrdup(params ? params : "");
}

void
pol_tx_rcpt(struct pol_session *ps, const char *rcpt)
{
	free(ps->rcpt);
	ps->rcpt = xstrdup(rcpt);
}

void
pol_tx_rcpt_accepted(struct pol_session *ps, const char *rcpt)
{
	ps->rcpts = xrealloc(ps->rcpts, sizeof(char *) * (size_t)(ps->nrcpts + 1));
	ps->rcpts[ps->nrcpts++] = xstrdup(rcpt);
}

void
pol_tx_reset(struct pol_session *ps)
{
	for (size_t i = 0; checks[i] != NULL; i++)
		if (checks[i]->tx_reset)
			checks[i]->tx_reset(ps);
	free(ps->mail_from); ps->mail_from = NULL;
	free(ps->mail_params); ps->mail_params = NULL;
	free(ps->rcpt); ps->rcpt = NULL;
	for (int i = 0; i < ps->nrcpts; i++)
		free(ps->rcpts[i]);
	free(ps->rcpts); ps->rcpts = NULL;
	ps->nrcpts = 0;
	free(ps->msgid); ps->msgid = NULL;
	free(ps->subject); ps->subject = NULL;
	free(ps->from_hdr); ps->from_hdr = NULL;
	pol_results_drop(ps, 1);
}

/* Drop transaction results; with keep_session, CONNECT/HELO ones stay. */
static void
pol_results_drop(struct pol_session *ps, int keep_session)
{
	int n = 0;

	for (int i = 0; i < ps->nresults; i++) {
		struct pol_result *r = &ps->results[i];
		if (keep_session && r->stage <= POL_HELO) {
			ps->results[n++] = *r;
			continue;
		}
		free(r->reason);
		free(r->authres);
	}
	ps->nresults = n;
	ps->score = 0;
	for (int i = 0; i < n; i++)
		ps->score += ps->results[i].score;
}

struct pol_result *
pol_result_add(struct pol_session *ps, const char *check, const char *result,
    double score, const char *authres, const char *fmt, ...)
{
	struct pol_result *r;
	va_list ap;

	if (ps->nresults == POL_MAX_RESULTS) {
		log_warn("%s: too many policy results; %s=%s not recorded",
		    ps->sid, check, result);
		return NULL;
	}
	r = &ps->results[ps->nresults++];
	memset(r, 0, sizeof(*r));
	snprintf(r->check, sizeof(r->check), "%s", check);
	snprintf(r->result, sizeof(r->result), "%s", result);
	r->score = score;
	r->authres = authres ? xstrdup(authres) : NULL;
	if (fmt != NULL) {
		va_start(ap, fmt);
		if (vasprintf(&r->reason, fmt, ap) == -1)
			fatalx("out of memory");
		va_end(ap);
	}
	ps->score += score;
	return r;
}

const struct pol_result *
pol_result_find(const struct pol_session *ps, const char *check)
{
	for (int i = ps->nresults - 1; i >= 0; i--)
		if (strcmp(ps->results[i].check, check) == 0)
			return &ps->results[i];
	return NULL;
}

void
pol_hard_set(struct pol_session *ps, enum pol_verdict v, int code,
    const char *status, int disconnect, const char *fmt, ...)
{
	va_list ap;

	if (ps->hard.set)
		return;
	ps->hard.set = 1;
	ps->hard.verdict = v;
	ps->hard.code = code;
	ps->hard.disconnect = disconnect;
	snprintf(ps->hard.status, sizeof(ps->hard.status), "%s", status);
	va_start(ap, fmt);
	vsnprintf(ps->hard.text, sizeof(ps->hard.text), fmt, ap);
	va_end(ap);
}

void
pol_run(struct pol_session *ps, enum pol_stage stage, const struct pol_msg *msg,
    struct pol_decision *d)
{
	/* RFC 8601 5: nobody else may speak for our authserv-id. Set before
	 * the checks, so whatever keeps a copy at DATA can leave them out. */
	if (stage == POL_DATA && msg != NULL)
		d->nskip = authres_skips(msg->data, msg->len, ps->conf->hostname,
		    &d->skip);
	memset(&ps->hard, 0, sizeof(ps->hard));
	for (size_t i = 0; checks[i] != NULL; i++) {
		const struct pol_check *ck = checks[i];
		if (!(ck->stages & (1u << stage)))
			continue;
		if ((ck->enabled && !ck->enabled(ps->conf)) || !pol_only_allows(ck->name))
			continue;
		int before = ps->nresults;
		ck->run(ps, stage, msg);
		for (int j = before; j < ps->nresults; j++)
			ps->results[j].stage = stage;
		if (ps->hard.set)
			break;
	}
	pol_decide(ps, stage, d);
	ps->verdict = d->verdict;
}

static void
pol_decide(struct pol_session *ps, enum pol_stage stage, struct pol_decision *d)
{
	const struct conf *c = ps->conf;

	d->score = ps->score;
	if (ps->hard.set) {
		d->verdict = ps->hard.verdict;
		d->code = ps->hard.code;
		d->disconnect = ps->hard.disconnect;
		snprintf(d->status, sizeof(d->status), "%s", ps->hard.status);
		snprintf(d->text, sizeof(d->text), "%s", ps->hard.text);
	} else if (ps->score >= c->reject_score) {
		d->verdict = POL_REJECT;
		d->code = stage == POL_CONNECT ? 554 : 550;
		snprintf(d->status, sizeof(d->status), "5.7.1");
		snprintf(d->text, sizeof(d->text),
		    "Service unavailable; message scored %.1f, over the limit of %.1f",
		    ps->score, c->reject_score);
	} else if (stage == POL_DATA && ps->score >= c->quarantine_score) {
		d->verdict = POL_QUARANTINE;
	} else if (stage == POL_DATA && ps->score >= c->tag_score) {
		d->verdict = POL_TAG;
	} else {
		d->verdict = POL_ACCEPT;
	}
	if (stage == POL_DATA && (d->verdict == POL_ACCEPT || d->verdict == POL_TAG)) {
		char *ar = pol_authres_header(ps);
		d->prepend = d->verdict == POL_TAG ?
		    xasprintf("%sX-Spam-Flag: YES\r\nX-Spam-Score: %.1f\r\n", ar, ps->score) :
		    xasprintf("%sX-Spam-Score: %.1f\r\n", ar, ps->score);
		free(ar);
	}
}

/* RFC 8601 header from the results that carry authres properties. */
static char *
pol_authres_header(const struct pol_session *ps)
{
	char *h = xasprintf("Authentication-Results: %s", ps->conf->hostname);
	int any = 0;

	for (int i = 0; i < ps->nresults; i++) {
		const struct pol_result *r = &ps->results[i];
		if (r->authres == NULL)
			continue;
		/* Properties may quote what a client wrote (MAIL FROM):
		 * no control character may fold or end our header. */
		char *p = xstrdup(r->authres), *q = p;
		for (const char *c = r->authres; *c; c++)
			if ((unsigned char)*c >= 0x20 && *c != 0x7f)
				*q++ = *c;
		*q = '\0';
		char *n = xasprintf("%s;\r\n\t%s=%s%s%s", h, r->check, r->result,
		    *p ? " " : "", p);
		free(p);
		free(h);
		h = n;
		any = 1;
	}
	char *n = xasprintf("%s%s\r\n", h, any ? "" : "; none");
	free(h);
	return n;
}

void
pol_decision_clear(struct pol_decision *d)
{
	free(d->prepend);
	free(d->skip);
	memset(d, 0, sizeof(*d));
}

void
pol_tx_record(struct pol_session *ps, const char *backend_reply, size_t size,
    unsigned long ms)
{
	(void)ps; (void)backend_reply; (void)size; (void)ms;
}

void
pol_summary(const struct pol_session *ps, char *buf, size_t sz)
{
	size_t o = 0;

	buf[0] = '\0';
	for (int i = 0; i < ps->nresults && o < sz; i++) {
		const struct pol_result *r = &ps->results[i], *best = r;
		int seen = 0;

		/* One word per check: a message with three DKIM signatures
		 * logs dkim=pass when any passed, else its first result. */
		for (int j = 0; j < i && !seen; j++)
			seen = strcmp(ps->results[j].check, r->check) == 0;
		if (seen)
			continue;
		for (int j = i; j < ps->nresults && strcmp(best->result, "pass") != 0; j++)
			if (strcmp(ps->results[j].check, r->check) == 0 &&
			    strcmp(ps->results[j].result, "pass") == 0)
				best = &ps->results[j];
		o += (size_t)snprintf(buf + o, sz - o, "%s=%s ", r->check, best->result);
	}
	if (o < sz)
		snprintf(buf + o, sz - o, "score=%.1f", ps->score);
}
