/* conf_test.c -- config parsing: defaults, values, errors with lines. */
#include "conf.h"
#include "t.h"
#include "tls.h"
#include "util.h"

#include <openssl/ssl.h>

#include <stdlib.h>
#include <unistd.h>

static char *
write_tmp(const char *text)
{
	char *path = xstrdup("/tmp/postern-conf-XXXXXX");
	int fd = mkstemp(path);

	if (fd == -1 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		abort();
	close(fd);
	return path;
}

/* proxy.tls_protocols: a range of versions, as OpenSSL takes them. */
T_CASE(tls_protocols)
{
	int lo, hi;

	T_EQ_INT(tls_protocols_parse("TLSv1.2 TLSv1.3", &lo, &hi), 0);
	T_EQ_INT(lo, TLS1_2_VERSION);
	T_EQ_INT(hi, TLS1_3_VERSION);
	T_EQ_INT(tls_protocols_parse("tlsv1.3", &lo, &hi), 0);	/* case, one alone */
	T_EQ_INT(lo, TLS1_3_VERSION);
	T_EQ_INT(hi, TLS1_3_VERSION);
	T_EQ_INT(tls_protocols_parse(" TLSv1.1,TLSv1, TLSv1.2 ", &lo, &hi), 0);
	T_EQ_INT(lo, TLS1_VERSION);
	T_EQ_INT(hi, TLS1_2_VERSION);
	T_EQ_INT(tls_protocols_parse("TLSv1.1 TLSv1.3", &lo, &hi), -1);	/* a hole */
	T_EQ_INT(tls_protocols_parse("SSLv3 TLSv1", &lo, &hi), -1);	/* not ours */
	T_EQ_INT(tls_protocols_parse("TLSv1.2x", &lo, &hi), -1);
	T_EQ_INT(tls_protocols_parse("", &lo, &hi), -1);
	T_EQ_INT(tls_protocols_parse(" , ", &lo, &hi), -1);
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
	char *p = write_tmp("[proxy]\nlisten = 127.0.0.1:2600\nmax_message_size = 10M\n"
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
	char *p = write_tmp("[proxy]\nbackend = nowhere\n\n[bogus]\nkey = 1\n"
	    "[proxy]\nmax_recipients = 0\n");
	struct conf_err *e = NULL;
	int n = 0;
	struct conf *c = conf_load(p, &e, &n);

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
	unlink(p);
	free(p);
}

T_CASE(list_keys_add_up)
{
	char *p = write_tmp("[rbl]\nzones = a.example*2\nzones = b.example=127.0.0.2*3\n"
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
	p = write_tmp("[rbl]\nzones = a.example*2\nzones = b.example=127.0.0.2*3\n");
	c = conf_load(p, &e, &n);
	T_ASSERT(c != NULL);
	if (c) {
		T_EQ_STR(c->rbl_zones, "a.example*2,b.example=127.0.0.2*3");
		conf_unref(c);
	}
	unlink(p);
	free(p);
}

T_CASE(hostport)
{
	char h[64];
	int port;

	T_EQ_INT(hostport_split("127.0.0.1:25", h, sizeof(h), &port), 0);
	T_EQ_STR(h, "127.0.0.1");
	T_EQ_INT(port, 25);
	T_EQ_INT(hostport_split("[::1]:2525", h, sizeof(h), &port), 0);
	T_EQ_STR(h, "::1");
	T_EQ_INT(hostport_split("::1:25", h, sizeof(h), &port), -1);
	T_EQ_INT(hostport_split("host:99999", h, sizeof(h), &port), -1);
}

int
main(void)
{
	T_RUN(tls_protocols);
	T_RUN(defaults);
	T_RUN(values_parsed);
	T_RUN(errors_name_line);
	T_RUN(list_keys_add_up);
	T_RUN(hostport);
	return T_END();
}
