/*
 * check.c -- `postern check`: run the policy offline on one envelope (and
 * optionally one message) and print one JSON object (jansson).
 *
 *   postern check -c FILE --ip IP [--helo NAME] [--from ADDR] [--rcpt ADDR]...
 *                 [--only CHECK,...] [MESSAGE|-]
 *
 * The stages run as a real session would run them -- connect, helo (with
 * --helo), mail (with --from; "" or "<>" is the null sender), rcpt (each
 * --rcpt), data (with MESSAGE) -- and stop at the first stage whose verdict
 * is reject or tempfail, as the SMTP dialogue would. Output: every result
 * under its check's name (the last one wins; all of them in "results"),
 * the score, the verdict and the stage it was reached at. Exit 0 whatever
 * the verdict; 1 on a bad config or resolver, 2 on bad arguments.
 *
 * Public call: pol_check_main (from proxy/main.c). Thread: main only.
 */
#include "policy_int.h"
#include "bayes.h"
#include "conf.h"
#include "spf.h"
#include "util.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK_MAX_RCPTS	1000

struct check_args {
	const char	*conf, *ip, *helo, *from, *only, *message;
	const char	*rcpts[CHECK_MAX_RCPTS];
	int		 nrcpts;
};

static int	 check_parse(int, char **, struct check_args *);
static int	 check_sockaddr(const char *, struct sockaddr_storage *, socklen_t *);
static char	*check_read_message(const char *, long long max, size_t *);
static int	 check_stage(struct pol_session *, enum pol_stage, const struct pol_msg *,
		    struct pol_decision *);
static json_t	*check_json(const struct pol_session *, enum pol_stage,
		    const struct pol_decision *);
static void	 check_spf_json(const struct pol_session *, json_t *);
static void	 check_bayes_json(const struct pol_session *, json_t *);

static const char *stage_names[] = { "connect", "helo", "mail", "rcpt", "data" };

static void
check_usage(void)
{
	fprintf(stderr, "usage: postern check -c FILE --ip IP [--helo NAME] "
	    "[--from ADDR] [--rcpt ADDR]... [--only CHECK,...] [MESSAGE|-]\n");
}

int
pol_check_main(int argc, char **argv)
{
	struct check_args a;
	struct sockaddr_storage ss;
	struct conf_err *errs;
	struct pol_decision d;
	struct pol_session *ps;
	enum pol_stage stage = POL_CONNECT;
	struct conf *c;
	socklen_t sl;
	int nerrs, stop;

	if (check_parse(argc, argv, &a) == -1 ||
	    check_sockaddr(a.ip, &ss, &sl) == -1) {
		check_usage();
		return 2;
	}
	if ((c = conf_load(a.conf, &errs, &nerrs)) == NULL) {
		for (int i = 0; i < nerrs; i++)
			fprintf(stderr, "%s\n", errs[i].msg);
		free(errs);
		return 1;
	}
	log_set_level((enum log_level)c->log_level);
	if (pol_init(c) == -1) {
		conf_unref(c);
		return 1;
	}
	pol_only_set(a.only);
	ps = pol_session_new(c, "check", (struct sockaddr *)&ss, sl);
	pol_set_dry_run(ps);
	memset(&d, 0, sizeof(d));
	stop = check_stage(ps, POL_CONNECT, NULL, &d);
	if (!stop && a.helo) {
		pol_set_helo(ps, a.helo);
		stop = check_stage(ps, stage = POL_HELO, NULL, &d);
	}
	if (!stop && a.from) {
		const char *f = strcmp(a.from, "<>") == 0 ? "" : a.from;
		pol_tx_begin(ps, f, "");
		stop = check_stage(ps, stage = POL_MAIL, NULL, &d);
		for (int i = 0; !stop && i < a.nrcpts; i++) {
			pol_tx_rcpt(ps, a.rcpts[i]);
			stop = check_stage(ps, stage = POL_RCPT, NULL, &d);
			if (!stop)
				pol_tx_rcpt_accepted(ps, a.rcpts[i]);
		}
	}
	if (!stop && a.from && a.message) {
		struct pol_msg m;
		char *buf = check_read_message(a.message, c->max_message_size, &m.len);
		if (buf == NULL) {
			pol_session_free(ps);
			pol_shutdown();
			conf_unref(c);
			return 1;
		}
		m.data = buf;
		check_stage(ps, stage = POL_DATA, &m, &d);
		free(buf);
	}
	json_t *out = check_json(ps, stage, &d);
	json_dumpf(out, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	fputc('\n', stdout);
	json_decref(out);
	pol_decision_clear(&d);
	pol_session_free(ps);
	pol_only_set(NULL);
	pol_shutdown();
	conf_unref(c);
	return 0;
}

/* 0, or -1 on an unknown option or a missing value. */
static int
check_parse(int argc, char **argv, struct check_args *a)
{
	memset(a, 0, sizeof(*a));
	a->conf = "etc/postern.conf";
	for (int i = 1; i < argc; i++) {
		const char *o = argv[i];
		const char **dst = NULL;

		if (strcmp(o, "-c") == 0) dst = &a->conf;
		else if (strcmp(o, "--ip") == 0) dst = &a->ip;
		else if (strcmp(o, "--helo") == 0) dst = &a->helo;
		else if (strcmp(o, "--from") == 0) dst = &a->from;
		else if (strcmp(o, "--only") == 0) dst = &a->only;
		else if (strcmp(o, "--rcpt") == 0) {
			if (a->nrcpts == CHECK_MAX_RCPTS)
				return -1;
			dst = &a->rcpts[a->nrcpts++];
		} else if (o[0] == '-' && o[1] != '\0') {
			fprintf(stderr, "postern check: unknown option %s\n", o);
			return -1;
		} else if (a->message == NULL) {
			a->message = o;
			continue;
		} else
			return -1;
		if (i + 1 >= argc) {
			fprintf(stderr, "postern check: %s needs a value\n", o);
			return -1;
		}
		*dst = argv[++i];
	}
	if (a->ip == NULL) {
		fprintf(stderr, "postern check: --ip is required\n");
		return -1;
	}
	return 0;
}

static int
check_sockaddr(const char *ip, struct sockaddr_storage *ss, socklen_t *sl)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	char buf[64];
	size_t n;

	if (ip == NULL)
		return -1;
	memset(ss, 0, sizeof(*ss));
	n = strlen(ip);
	if (n >= 2 && ip[0] == '[' && ip[n - 1] == ']' && n - 2 < sizeof(buf)) {
		memcpy(buf, ip + 1, n - 2);
		buf[n - 2] = '\0';
		ip = buf;
	}
	if (inet_pton(AF_INET, ip, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		*sl = sizeof(*sin);
		return 0;
	}
	if (inet_pton(AF_INET6, ip, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		*sl = sizeof(*sin6);
		return 0;
	}
	fprintf(stderr, "postern check: --ip %s is not an IP address\n", ip);
	return -1;
}

/* The message from a file or stdin ("-"), at most max bytes, with every
 * line ending made CRLF as the proxy hands it over. NULL on error. */
static char *
check_read_message(const char *path, long long max, size_t *len)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	size_t cap = 65536, n = 0;
	char *buf;
	int ch, prev = 0;

	if (f == NULL) {
		fprintf(stderr, "postern check: %s: cannot open\n", path);
		return NULL;
	}
	buf = xmalloc(cap);
	while ((ch = getc(f)) != EOF) {
		if (n + 2 >= cap)
			buf = xrealloc(buf, cap *= 2);
		if (ch == '\n' && prev != '\r')
			buf[n++] = '\r';
		buf[n++] = (char)ch;
		prev = ch;
		if ((long long)n > max) {
			fprintf(stderr, "postern check: %s is larger than proxy.max_message_size\n", path);
			free(buf);
			buf = NULL;
			break;
		}
	}
	if (f != stdin)
		fclose(f);
	*len = n;
	return buf;
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
    const struct pol_decision *d)
{
	json_t *o = json_object(), *all = json_array();

	json_object_set_new(o, "ip", json_string(ps->client_ip));
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
	if (d->code)
		json_object_set_new(o, "reply", json_sprintf("%d %s %s", d->code,
		    d->status, d->text));
	if (d->prepend)
		json_object_set_new(o, "headers", json_string(d->prepend));
	return o;
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

/* The classifier's probability, counts and the tokens that weighed most. */
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
	top = json_array();
	for (int i = 0; i < v->ntop; i++)
		json_array_append_new(top, json_pack("{s:s, s:f, s:i, s:i}",
		    "token", v->top[i].text, "probability", v->top[i].prob,
		    "spam", (int)v->top[i].spam, "ham", (int)v->top[i].ham));
	json_object_set_new(j, "top_tokens", top);
}
