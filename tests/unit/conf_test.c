/* conf_test.c -- config parsing: defaults, values, errors with lines. */
#include "lib/conf.h"
#include "lib/prefix.h"
#include "t.h"
#include "proxy/tls.h"
#include "lib/util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/ssl.h>

#include <stdlib.h>
#include <unistd.h>

/* conf_load() on text: the config, or NULL with the errors in e and n. */
static struct conf *
load_text(const char *text, struct conf_err **e, int *n)
{
	char *p = t_write_tmp(text);
	struct conf *c = conf_load(p, e, n);

	unlink(p);
	free(p);
	return c;
}

/* proxy.tls_protocols: a range of versions, as OpenSSL takes them. */
T_CASE(tls_protocols)
{
	int lo, hi;

	T_EQ_INT(conf_tls_range("TLSv1.2 TLSv1.3", &lo, &hi), 0);
	T_EQ_INT(lo, TLS1_2_VERSION);
	T_EQ_INT(hi, TLS1_3_VERSION);
	T_EQ_INT(conf_tls_range("tlsv1.3", &lo, &hi), 0);	/* case, one alone */
	T_EQ_INT(lo, TLS1_3_VERSION);
	T_EQ_INT(hi, TLS1_3_VERSION);
	T_EQ_INT(conf_tls_range(" TLSv1.1,TLSv1, TLSv1.2 ", &lo, &hi), 0);
	T_EQ_INT(lo, TLS1_VERSION);
	T_EQ_INT(hi, TLS1_2_VERSION);
	T_EQ_INT(conf_tls_range("TLSv1.1 TLSv1.3", &lo, &hi), -1);	/* a hole */
	T_EQ_INT(conf_tls_range("SSLv3 TLSv1", &lo, &hi), -1);	/* not ours */
	T_EQ_INT(conf_tls_range("TLSv1.2x", &lo, &hi), -1);
	T_EQ_INT(conf_tls_range("", &lo, &hi), -1);
	T_EQ_INT(conf_tls_range(" , ", &lo, &hi), -1);
}

T_CASE(defaults)
{
	struct conf *c = conf_defaults();

	T_EQ_INT(c->max_message_size, 26214400);
	T_EQ_STR(c->backend, "127.0.0.1:10025");
	T_EQ_INT(c->greylist_delay, 300);
	T_EQ_INT(c->greylist_retry_window, 2 * 86400);
	T_EQ_INT(c->bare_lf, CONF_BARE_LF_REJECT);
	T_EQ_STR(c->tls_protocols, "TLSv1.2 TLSv1.3");
	T_EQ_INT(c->tls_ticket_rotation, 12 * 3600);
	T_EQ_INT(c->session_max, 3600);
	T_EQ_INT(c->data_rate_min, 500);
	conf_unref(c);
}

T_CASE(values_parsed)
{
	char *p = t_write_tmp("[proxy]\nlisten = 127.0.0.1:2600\nmax_message_size = 10M\n"
	    "bare_lf = normalize\n; comment\n[greylist]\nenabled = no\ndelay = 5m\n");
	struct conf_err *e;
	int n;
	struct conf *c = conf_load(p, &e, &n);

	T_ASSERT(c != NULL);
	if (c) {
		T_EQ_STR(c->listen, "127.0.0.1:2600");
		T_EQ_INT(c->max_message_size, 10 * 1048576);
		T_EQ_INT(c->bare_lf, CONF_BARE_LF_NORMALIZE);
		T_EQ_INT(c->greylist_enabled, 0);
		T_EQ_INT(c->greylist_delay, 300);
		conf_unref(c);
	}
	unlink(p);
	free(p);
}

T_CASE(errors_name_line)
{
	struct conf_err *e = NULL;
	int n = 0;
	struct conf *c = load_text("[proxy]\nbackend = nowhere\n\n[bogus]\nkey = 1\n"
	    "[proxy]\nmax_recipients = 0\n", &e, &n);

	T_ASSERT(c == NULL);
	T_EQ_INT(n, 3);
	if (n == 3) {
		T_EQ_INT(e[0].line, 2);
		T_ASSERT(strstr(e[0].msg, "proxy.backend") != NULL);
		T_EQ_INT(e[1].line, 5);
		T_ASSERT(strstr(e[1].msg, "unknown key") != NULL);
		T_EQ_INT(e[2].line, 7);
		T_ASSERT(strstr(e[2].msg, "out of range") != NULL);
	}
	free(e);
}

T_CASE(list_keys_add_up)
{
	char *p = t_write_tmp("[rbl]\nzones = a.example*2\nzones = b.example=127.0.0.2*3\n"
	    "[proxy]\nhostname = one\nhostname = two\n");
	struct conf_err *e = NULL;
	int n = 0;
	struct conf *c = conf_load(p, &e, &n);

	/* a list key repeated adds to the list; any other key twice is an error */
	T_ASSERT(c == NULL);
	T_EQ_INT(n, 1);
	if (n == 1)
		T_ASSERT(strstr(e[0].msg, "proxy.hostname") != NULL);
	free(e);
	unlink(p);
	free(p);
	p = t_write_tmp("[rbl]\nzones = a.example*2\nzones = b.example=127.0.0.2*3\n");
	c = conf_load(p, &e, &n);
	T_ASSERT(c != NULL);
	if (c) {
		T_EQ_STR(c->rbl_zones, "a.example*2,b.example=127.0.0.2*3");
		conf_unref(c);
	}
	unlink(p);
	free(p);
}

static void
seg_collect(void *arg, int line, const char *part)
{
	char *out = arg;
	size_t o = strlen(out);

	snprintf(out + o, 200 - o, "%d:%s;", line, part);
}

T_CASE(lines_segments_restart_keys)
{
	char *p = t_write_tmp("[proxy]\nlisten = 127.0.0.1:2600\n[rbl]\nzones = a.example*2\n"
	    "\nzones = b.example*3\n[proxy]\nthreads = 2\n");
	char *q = t_write_tmp("[proxy]\nlisten = 127.0.0.1:2601\nthreads = 2\n"
	    "max_recipients = 5\n[web]\nlisten = 127.0.0.1:9999\n");
	struct conf_err *e = NULL;
	int n = 0;
	struct conf *c = conf_load(p, &e, &n), *d = conf_load(q, &e, &n);
	char segs[200] = "", keys[200];

	T_ASSERT(c != NULL && d != NULL);
	if (c && d) {
		T_EQ_INT(conf_key_line(c, "proxy.listen"), 2);
		T_EQ_INT(conf_key_line(c, "rbl.zones"), 4);
		T_EQ_INT(conf_key_line(c, "proxy.threads"), 8);
		T_EQ_INT(conf_key_line(c, "proxy.hostname"), 0);	/* default */
		conf_list_each(c, "rbl.zones", seg_collect, segs);
		T_EQ_STR(segs, "4:a.example*2;6:b.example*3;");
		/* max_recipients applies on reload; listen and web.listen do not */
		T_EQ_INT(conf_restart_keys(c, d, keys, sizeof(keys)), 2);
		T_EQ_STR(keys, "proxy.listen, web.listen");
		T_EQ_INT(conf_restart_keys(c, c, keys, sizeof(keys)), 0);
		T_EQ_STR(keys, "");
	}
	conf_unref(c);
	conf_unref(d);
	unlink(p);
	unlink(q);
	free(p);
	free(q);
}

T_CASE(all_problems_kept_with_the_conf)
{
	char *p = t_write_tmp("[policy]\ntag_score = 9\n\nreject_score = 2\n[proxy]\nthreads = x\n");
	struct conf_err *e = NULL;
	int n = 0;
	struct conf *c = conf_load_all(p, &e, &n);

	T_ASSERT(c != NULL);
	T_EQ_INT(n, 3);
	if (n == 3) {
		T_EQ_INT(e[0].line, 6);		/* parse errors first, as read */
		T_EQ_INT(e[1].line, 2);		/* tag 9 > quarantine 6: tag's line */
		T_EQ_INT(e[2].line, 4);		/* quarantine 6 > reject 2 */
		T_ASSERT(strstr(e[1].msg, "policy.tag_score (9) is above") != NULL);
	}
	conf_err_add(&e, &n, c, 3, "%s", "from elsewhere");
	T_EQ_INT(n, 4);
	if (n == 4)
		T_ASSERT(strstr(e[3].msg, ":3: from elsewhere") != NULL);
	free(e);
	conf_unref(c);
	unlink(p);
	free(p);
}

/* The problems conf_load_all finds in text: their number; the first's
 * line and message into *line and msg. */
static int
conf_text_problems(const char *text, int *line, char *msg, size_t msgsz)
{
	char *p = t_write_tmp(text);
	struct conf_err *e = NULL;
	int n = 0;
	struct conf *c = conf_load_all(p, &e, &n);

	*line = n > 0 ? e[0].line : 0;
	snprintf(msg, msgsz, "%s", n > 0 ? e[0].msg : "");
	free(e);
	conf_unref(c);
	unlink(p);
	free(p);
	return n;
}

/* An out-of-range bayes.autolearn_until names its line and the range. */
T_CASE(autolearn_until_range)
{
	char msg[600];
	int line;

	T_EQ_INT(conf_text_problems("[bayes]\nautolearn_balance = 3\nautolearn_until = 0.4\n",
	    &line, msg, sizeof(msg)), 1);
	T_EQ_INT(line, 3);
	T_ASSERT(strstr(msg, "within [0.5, 1]") != NULL);
	T_EQ_INT(conf_text_problems("[bayes]\nautolearn_until = 1\n", &line, msg,
	    sizeof(msg)), 0);
}

/* bayes.markov_spam_threshold may lie below 0.5 (its default 0.4), but
 * not at or below bayes.ham_threshold: a message would be both. */
T_CASE(markov_spam_threshold_range)
{
	char msg[600];
	int line;

	T_EQ_INT(conf_text_problems("[bayes]\nmarkov_spam_threshold = 0.3\n", &line, msg,
	    sizeof(msg)), 0);
	T_EQ_INT(conf_text_problems("[bayes]\nham_threshold = 0.2\n"
	    "markov_spam_threshold = 0.2\n", &line, msg, sizeof(msg)), 1);
	T_EQ_INT(line, 3);
	T_ASSERT(strstr(msg, "ham_threshold < markov_spam_threshold") != NULL);
	T_EQ_INT(conf_text_problems("[bayes]\nmarkov_spam_threshold = 1.1\n", &line, msg,
	    sizeof(msg)), 1);
}

T_CASE(trusted_proxies_checked)
{
	struct conf_err *e = NULL;
	int n = 0;
	struct conf *c = load_text("[web]\ntrusted_proxies = 10.0.0.5, 192.0.2.0/24\n"
	    "trusted_proxies = 2001:db8::/32\nrequest_timeout = 5\n", &e, &n);

	T_ASSERT(c != NULL);
	if (c) {
		T_EQ_STR(c->web_trusted_proxies, "10.0.0.5, 192.0.2.0/24,2001:db8::/32");
		T_EQ_INT(c->web_request_timeout, 5);
		T_EQ_INT(c->web_max_conns_per_ip, 16);
		conf_unref(c);
	}
	/* A typo must not silently trust a network, or none. */
	c = load_text("[web]\ntrusted_proxies = 10.0.0.5, 10.0.0.0/33, proxy.example\n",
	    &e, &n);
	T_ASSERT(c == NULL);
	T_EQ_INT(n, 2);
	if (n == 2) {
		T_ASSERT(strstr(e[0].msg, "web.trusted_proxies: '10.0.0.0/33'") != NULL);
		T_ASSERT(strstr(e[1].msg, "'proxy.example'") != NULL);
	}
	free(e);
}

/* proxy.proxy_protocol needs the balancers it trusts; a typo in them is
 * an error, never a silent "nobody" or "everybody". */
T_CASE(proxy_protocol_needs_proxy_from)
{
	struct conf_err *e = NULL;
	int n = 0;
	struct conf *c = load_text("[proxy]\nproxy_protocol = yes\n"
	    "proxy_from = 10.0.0.5, 192.0.2.0/24\nproxy_from = 2001:db8::/32\n", &e, &n);
	struct sockaddr_in sin = { .sin_family = AF_INET };

	T_ASSERT(c != NULL);
	if (c) {
		T_EQ_INT(c->proxy_protocol, 1);
		T_EQ_STR(c->proxy_from, "10.0.0.5, 192.0.2.0/24,2001:db8::/32");
		inet_pton(AF_INET, "192.0.2.77", &sin.sin_addr);
		T_EQ_INT(prefix_list_match(c->proxy_from, (struct sockaddr *)&sin), 1);
		inet_pton(AF_INET, "10.0.0.6", &sin.sin_addr);
		T_EQ_INT(prefix_list_match(c->proxy_from, (struct sockaddr *)&sin), 0);
		conf_unref(c);
	}
	c = conf_defaults();
	T_EQ_INT(c->proxy_protocol, 0);
	T_EQ_INT(prefix_list_match(c->proxy_from, (struct sockaddr *)&sin), 0);
	conf_unref(c);
	/* yes with nobody listed: the error names the line of proxy_protocol */
	c = load_text("[proxy]\nhostname = mx.example\nproxy_protocol = yes\nproxy_from = ,\n",
	    &e, &n);
	T_ASSERT(c == NULL);
	T_EQ_INT(n, 1);
	if (n == 1) {
		T_ASSERT(strstr(e[0].msg, ":3: proxy.proxy_protocol = yes but proxy.proxy_from "
		    "is empty") != NULL);
		T_ASSERT(strstr(e[0].msg, "proxy_from = 10.0.0.5") != NULL);
	}
	free(e);
	c = load_text("[proxy]\nproxy_from = 10.0.0.5, lb.example\n", &e, &n);
	T_ASSERT(c == NULL);
	T_EQ_INT(n, 1);
	if (n == 1)
		T_ASSERT(strstr(e[0].msg, ":2: proxy.proxy_from: 'lb.example' is not an IP "
		    "address or CIDR block") != NULL);
	free(e);
	/* no restart: the next connection reads them */
	struct conf *a = conf_defaults(), *b = load_text("[proxy]\nproxy_protocol = yes\n"
	    "proxy_from = 10.0.0.5\n", &e, &n);
	char keys[200];
	T_ASSERT(b != NULL);
	if (b)
		T_EQ_INT(conf_restart_keys(a, b, keys, sizeof(keys)), 0);
	conf_unref(a);
	conf_unref(b);
}

int
main(void)
{
	T_RUN(tls_protocols);
	T_RUN(defaults);
	T_RUN(values_parsed);
	T_RUN(errors_name_line);
	T_RUN(autolearn_until_range);
	T_RUN(list_keys_add_up);
	T_RUN(lines_segments_restart_keys);
	T_RUN(all_problems_kept_with_the_conf);
	T_RUN(markov_spam_threshold_range);
	T_RUN(trusted_proxies_checked);
	T_RUN(proxy_protocol_needs_proxy_from);
	return T_END();
}
