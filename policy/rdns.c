/*
 * rdns.c -- see rdns.h.
 */
#include "policy/rdns.h"
#include "dns/dns.h"
#include "lib/conf.h"
#include "lib/util.h"
#include "policy/policy_int.h"

#include <netinet/in.h>
#include <string.h>

static int	 rdns_points_back(struct pol_session *, const char *name);
static void	 rdns_run(struct pol_session *, enum pol_stage, const struct pol_msg *);

const struct pol_check rdns_check = {
	.name = "rdns",
	.stages = 1u << POL_CONNECT,
	.run = rdns_run,
};

/* 1 when name has an address record equal to the client's, 0 when not,
 * -1 when DNS could not say. */
static int
rdns_points_back(struct pol_session *ps, const char *name)
{
	int v6 = ps->client.ss_family == AF_INET6;
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&ps->client;
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ps->client;
	struct dns_answer *a = dns_query(name, v6 ? DNS_T_AAAA : DNS_T_A, &ps->dns);
	int found = a->status == DNS_TEMPERROR || a->status == DNS_BUDGET ? -1 : 0;

	for (int i = 0; i < a->count && found != 1; i++)
		if (v6 ? memcmp(&a->rr[i].u.aaaa, &sin6->sin6_addr, 16) == 0 :
		    a->rr[i].u.a.s_addr == sin->sin_addr.s_addr)
			found = 1;
	dns_answer_free(a);
	return found;
}

static void
rdns_run(struct pol_session *ps, enum pol_stage stage, const struct pol_msg *msg)
{
	char qname[128];
	struct dns_answer *ptr;
	int tempfail = 0;

	(void)stage;
	(void)msg;
	if (dns_reverse_name((const struct sockaddr *)&ps->client, NULL, qname,
	    sizeof(qname)) == -1)
		return;		/* not an IP client: nothing to look up */
	ptr = dns_query(qname, DNS_T_PTR, &ps->dns);
	if (ptr->status != DNS_OK) {
		int temp = ptr->status == DNS_TEMPERROR || ptr->status == DNS_BUDGET;
		pol_result_add(ps, "rdns", temp ? "temperror" : "none", 0, NULL,
		    "%s: %s", qname, temp ? ptr->why : dns_status_name(ptr->status));
		dns_answer_free(ptr);
		return;
	}
	for (int i = 0; i < ptr->count && i < RDNS_MAX_NAMES; i++) {
		const char *name = ptr->rr[i].u.name;
		int r = rdns_points_back(ps, name);
		if (r == 1) {
			pol_set_client_name(ps, name);
			pol_result_add(ps, "rdns", "pass", 0, NULL, "%s", name);
			dns_answer_free(ptr);
			return;
		}
		tempfail |= r == -1;
	}
	pol_result_add(ps, "rdns", tempfail ? "temperror" : "fail", 0, NULL,
	    "%s does not point back at %s", ptr->rr[0].u.name, ps->client_ip);
	dns_answer_free(ptr);
}
