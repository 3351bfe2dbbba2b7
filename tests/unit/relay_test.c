/* relay_test.c -- the relay guard's lists: matching as Postfix's
 * relay_domains does, routing tricks refused, files with their lines,
 * and configtest naming the config file and the list file. */
#include "lib/conf.h"
#include "lib/relay.h"
#include "t.h"
#include "lib/util.h"

#include <stdlib.h>
#include <unistd.h>

static struct relay_list *
load(const char *v, enum relay_kind k)
{
	struct relay_list *l = NULL;
	char why[300];

	if (relay_load(v, k, &l, why, sizeof(why)) == -1) {
		fprintf(stderr, "  relay_load(%s): %s\n", v, why);
		return NULL;
	}
	return l;
}

T_CASE(domains_exact_and_dot_subdomains)
{
	struct relay_list *d = load("Example.ORG, .sub.example.net  other.test", RELAY_DOMAINS);

	T_ASSERT(d != NULL);
	T_EQ_INT(relay_allows(d, NULL, "a@example.org"), 1);
	T_EQ_INT(relay_allows(d, NULL, "A@EXAMPLE.org"), 1);
	/* no leading dot: the domain only, as Postfix since 3.0 */
	T_EQ_INT(relay_allows(d, NULL, "a@mx.example.org"), 0);
	T_EQ_INT(relay_allows(d, NULL, "a@example.org.evil.test"), 0);
	T_EQ_INT(relay_allows(d, NULL, "a@notexample.org"), 0);
	/* leading dot: any depth below, not the domain itself */
	T_EQ_INT(relay_allows(d, NULL, "a@x.sub.example.net"), 1);
	T_EQ_INT(relay_allows(d, NULL, "a@y.x.SUB.example.net"), 1);
	T_EQ_INT(relay_allows(d, NULL, "a@sub.example.net"), 0);
	T_EQ_INT(relay_allows(d, NULL, "a@other.test"), 1);
	T_EQ_INT(relay_allows(d, NULL, "a@nmap.scanme.org"), 0);
	relay_free(d);
}

/* The 16 recipients of nmap's smtp-open-relay, with our own names in
 * them: none passes, whatever the domain list holds. */
T_CASE(routing_tricks_refused)
{
	struct relay_list *d = load("postern.test,[127.0.0.1],nmap.scanme.org", RELAY_DOMAINS);
	static const char *bad[] = {
	    "relaytest%nmap.scanme.org@[127.0.0.1]", "relaytest%nmap.scanme.org@postern.test",
	    "\"relaytest@nmap.scanme.org\"", "\"relaytest%nmap.scanme.org\"",
	    "relaytest@nmap.scanme.org@[127.0.0.1]", "\"relaytest@nmap.scanme.org\"@[127.0.0.1]",
	    "relaytest@nmap.scanme.org@postern.test", "nmap.scanme.org!relaytest",
	    "nmap.scanme.org!relaytest@[127.0.0.1]", "nmap.scanme.org!relaytest@postern.test",
	    "", "nobody" };

	T_ASSERT(d != NULL);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		if (relay_allows(d, NULL, bad[i]) != 0) {
			fprintf(stderr, "  let through: %s\n", bad[i]);
			T_ASSERT(0);
		}
	T_EQ_INT(relay_allows(d, NULL, "relaytest@[127.0.0.1]"), 1);
	/* RFC 5321 4.5.1 */
	T_EQ_INT(relay_allows(d, NULL, "Postmaster"), 1);
	relay_free(d);
}

T_CASE(recipients_and_catch_all)
{
	struct relay_list *r = load("Alice@Example.org @catch.test", RELAY_RECIPIENTS);
	struct relay_list *d = load("example.org", RELAY_DOMAINS);

	T_ASSERT(r != NULL && d != NULL);
	T_EQ_INT(relay_allows(NULL, r, "alice@example.ORG"), 1);
	T_EQ_INT(relay_allows(NULL, r, "bob@example.org"), 0);
	T_EQ_INT(relay_allows(NULL, r, "anyone@catch.test"), 1);
	T_EQ_INT(relay_allows(NULL, r, "anyone@sub.catch.test"), 0);
	/* both set: a recipient must pass both */
	T_EQ_INT(relay_allows(d, r, "alice@example.org"), 1);
	T_EQ_INT(relay_allows(d, r, "anyone@catch.test"), 0);
	T_EQ_INT(relay_allows(d, r, "bob@example.org"), 0);
	T_EQ_INT(relay_allows(NULL, NULL, "anyone@anywhere.test"), 1);
	relay_free(r);
	relay_free(d);
}

T_CASE(empty_value_is_no_list)
{
	struct relay_list *l = (void *)1;
	char why[300];

	T_EQ_INT(relay_load("", RELAY_DOMAINS, &l, why, sizeof(why)), 0);
	T_ASSERT(l == NULL);
	T_EQ_INT(relay_load(" , ", RELAY_DOMAINS, &l, why, sizeof(why)), 0);
	T_ASSERT(l == NULL);
}

T_CASE(file_with_comments_and_lines)
{
	char *f = t_write_tmp("# our domains\nexample.org   # the main one\n\n"
	    "example.net, .example.com\n");
	char *v = xasprintf("file:%s", f);
	struct relay_list *l = load(v, RELAY_DOMAINS);
	char why[300];

	T_ASSERT(l != NULL);
	T_EQ_INT(relay_allows(l, NULL, "a@example.net"), 1);
	T_EQ_INT(relay_allows(l, NULL, "a@x.example.com"), 1);
	T_EQ_INT(relay_allows(l, NULL, "a@the"), 0);
	relay_free(l);
	/* a path without file: works too */
	l = load(f, RELAY_DOMAINS);
	T_ASSERT(l != NULL && relay_allows(l, NULL, "b@example.org"));
	relay_free(l);
	unlink(f);
	free(f);
	f = t_write_tmp("example.org\nexample.net\nuser@example.org\n");
	T_EQ_INT(relay_load(f, RELAY_DOMAINS, &l, why, sizeof(why)), -1);
	T_ASSERT(strstr(why, f) != NULL && strstr(why, ":3: 'user@example.org' is not a domain"));
	T_EQ_INT(relay_load("file:/nonexistent/relay", RELAY_DOMAINS, &l, why, sizeof(why)), -1);
	T_ASSERT(strstr(why, "cannot read /nonexistent/relay") != NULL);
	T_EQ_INT(relay_load("alice", RELAY_RECIPIENTS, &l, why, sizeof(why)), -1);
	T_ASSERT(strstr(why, "'alice' is not an address") != NULL);
	unlink(f);
	free(f);
	free(v);
}

/* configtest: the config file and line of the key, then the list file
 * and line of the entry. */
T_CASE(conf_errors_name_both_files)
{
	char *list = t_write_tmp("example.org\nexa mple..org\n");
	char *text = xasprintf("[proxy]\nhostname = mx.test\nrelay_domains = file:%s\n"
	    "relay_recipients = nobody\n", list);
	char *p = t_write_tmp(text);
	struct conf_err *e = NULL;
	int n = 0;
	struct conf *c = conf_load(p, &e, &n);

	T_ASSERT(c == NULL);
	T_EQ_INT(n, 2);
	if (n == 2) {
		T_EQ_INT(e[0].line, 3);
		T_ASSERT(strstr(e[0].msg, "proxy.relay_domains") != NULL);
		T_ASSERT(strstr(e[0].msg, list) != NULL && strstr(e[0].msg, ":2: 'mple..org'"));
		T_EQ_INT(e[1].line, 4);
		T_ASSERT(strstr(e[1].msg, "proxy.relay_recipients") != NULL);
	}
	free(e);
	unlink(p);
	free(p);
	free(text);
	p = t_write_tmp("[proxy]\nrelay_domains = example.org, .example.net\n");
	c = conf_load(p, &e, &n);
	T_ASSERT(c != NULL && c->relay_domains != NULL && c->relay_recipients == NULL);
	if (c)
		T_EQ_INT(relay_allows(c->relay_domains, c->relay_recipients, "a@b.example.net"), 1);
	conf_unref(c);
	unlink(p);
	free(p);
	unlink(list);
	free(list);
}

int
main(void)
{
	T_RUN(domains_exact_and_dot_subdomains);
	T_RUN(routing_tricks_refused);
	T_RUN(recipients_and_catch_all);
	T_RUN(empty_value_is_no_list);
	T_RUN(file_with_comments_and_lines);
	T_RUN(conf_errors_name_both_files);
	return T_END();
}
