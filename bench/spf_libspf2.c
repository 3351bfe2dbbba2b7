/*
 * spf_libspf2.c -- libspf2 on Postern's resolver, for measuring how far
 * libspf2 is from RFC 7208 (bench/spf_compare.py, docs/spf.md). Not part
 * of postern: Postern evaluates SPF with policy/spf.c.
 *
 *   spf_libspf2 -c FILE < cases      (one "ip<TAB>helo<TAB>mailfrom" a line)
 *
 * prints "result<TAB>explanation<TAB>libspf2 error" a line. Every DNS
 * question libspf2 asks goes to dns_query() through the SPF_dns_server_t
 * layer below (spf2_lookup), so both evaluators see the same answers.
 */
#include "lib/conf.h"
#include "dns/dns.h"
#include "lib/util.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <spf2/spf.h>
#include <spf2/spf_dns.h>

/* Our answer in libspf2's shape (spf_dns_rr.h): one RR set of one type,
 * h_errno-style status, strings for names and TXT. */
static SPF_dns_rr_t *
spf2_lookup(SPF_dns_server_t *srv, const char *domain, ns_type type, int cache)
{
	struct dns_answer *a;
	SPF_dns_rr_t *rr;
	int herr;

	(void)cache;
	if (type != ns_t_a && type != ns_t_aaaa && type != ns_t_mx &&
	    type != ns_t_txt && type != ns_t_ptr)
		return SPF_dns_rr_new_init(srv, domain, type, 0, NO_DATA);
	a = dns_query(domain, (int)type, NULL);
	switch (a->status) {
	case DNS_OK: herr = NETDB_SUCCESS; break;
	case DNS_NXDOMAIN: herr = HOST_NOT_FOUND; break;
	case DNS_NODATA: herr = NO_DATA; break;
	default: herr = TRY_AGAIN; break;
	}
	rr = SPF_dns_rr_new_init(srv, domain, type, (int)a->ttl, herr);
	for (int i = 0; rr != NULL && herr == NETDB_SUCCESS && i < a->count; i++) {
		const struct dns_rr *r = &a->rr[i];
		const char *s = NULL;
		size_t len;

		switch (type) {
		case ns_t_a: len = sizeof(struct in_addr); break;
		case ns_t_aaaa: len = sizeof(struct in6_addr); break;
		case ns_t_mx: s = r->u.mx.host; len = strlen(s) + 1; break;
		case ns_t_ptr: s = r->u.name; len = strlen(s) + 1; break;
		default: s = r->u.txt.joined; len = strlen(s) + 1; break;
		}
		if (SPF_dns_rr_buf_realloc(rr, i, len) != SPF_E_SUCCESS)
			fatalx("libspf2: out of memory");
		if (type == ns_t_a)
			rr->rr[i]->a = r->u.a;
		else if (type == ns_t_aaaa)
			rr->rr[i]->aaaa = r->u.aaaa;
		else
			memcpy(rr->rr[i]->txt, s, len);	/* union: mx/ptr/txt alike */
		rr->num_rr = i + 1;
	}
	dns_answer_free(a);
	return rr;
}

static void
spf2_destroy(SPF_dns_server_t *srv)
{
	free(srv);
}

static SPF_dns_server_t *
spf2_dns_new(void)
{
	SPF_dns_server_t *srv = xcalloc(1, sizeof(*srv));

	srv->destroy = spf2_destroy;
	srv->lookup = spf2_lookup;
	srv->name = "postern";
	return srv;
}

static void
spf2_one(SPF_server_t *server, char *line)
{
	char *ip = strtok(line, "\t\n"), *helo = strtok(NULL, "\t\n"),
	    *from = strtok(NULL, "\t\n");
	SPF_request_t *req = SPF_request_new(server);
	SPF_response_t *resp = NULL;
	struct in_addr a4;
	struct in6_addr a6;

	if (ip == NULL || helo == NULL)
		fatalx("bad input line");
	if (from == NULL || strcmp(from, "-") == 0)
		from = "";
	if (inet_pton(AF_INET, ip, &a4) == 1)
		SPF_request_set_ipv4(req, a4);
	else if (inet_pton(AF_INET6, ip, &a6) == 1)
		SPF_request_set_ipv6(req, a6);
	SPF_request_set_helo_dom(req, helo);
	SPF_request_set_env_from(req, from);
	SPF_errcode_t err = SPF_request_query_mailfrom(req, &resp);
	const char *exp = resp ? SPF_response_get_explanation(resp) : NULL;
	if (exp != NULL && strcmp(exp, "DEFAULT") == 0)
		exp = NULL;
	printf("%s\t%s\t%s\n", resp ? SPF_strresult(SPF_response_result(resp)) : "(null)",
	    exp ? exp : "", SPF_strerror(err));
	fflush(stdout);
	SPF_response_free(resp);
	SPF_request_free(req);
}

int
main(int argc, char **argv)
{
	struct conf_err *errs;
	SPF_response_t *r = NULL;
	struct conf *c;
	char line[4096];
	int n;

	if (argc != 3 || strcmp(argv[1], "-c") != 0) {
		fprintf(stderr, "usage: spf_libspf2 -c FILE < cases\n");
		return 2;
	}
	log_init("spf_libspf2", 0);
	if ((c = conf_load(argv[2], &errs, &n)) == NULL || dns_init(c) == -1)
		return 1;
	SPF_server_t *server = SPF_server_new_dns(spf2_dns_new(), 0);
	SPF_server_set_rec_dom(server, c->hostname);
	SPF_server_set_explanation(server, "DEFAULT", &r);
	SPF_response_free(r);
	while (fgets(line, sizeof(line), stdin) != NULL)
		spf2_one(server, line);
	SPF_server_free(server);
	dns_shutdown();
	conf_unref(c);
	return 0;
}
