/* fuzz_spf.c -- SPF record parsing and evaluation (policy/spf.h) on a fake
 * resolver: this target's dns_query() replaces dns/'s (see the Makefile),
 * so nothing leaves the process.
 * Input: a knob byte (bits 0-1: client 192.0.2.1, 2001:db8::1, or
 * ::ffff:192.0.2.1; bit 2: sender with a macro-heavy local part), then
 * LF-separated lines: the n-th TXT question gets line n as its one record
 * (NXDOMAIN past the last line). A and AAAA answer for names of even
 * length, MX gives two hosts under the name, PTR one name, and a name
 * containing "tmp" fails with a temporary error.
 * The evaluation must end with a known result inside the RFC 7208 4.6.4
 * limits. */
#include "dns/dns.h"
#include "fuzz.h"
#include "policy/spf.h"
#include "lib/util.h"

#include <arpa/inet.h>

#define FUZZ_MAX_LINES	64

static const char *lines[FUZZ_MAX_LINES];
static size_t linelen[FUZZ_MAX_LINES];
static int nlines, nextline, queries;

static struct dns_answer *
answer(enum dns_status st, int type, int count)
{
	struct dns_answer *a = xcalloc(1, sizeof(*a));

	a->status = count > 0 ? st : (st == DNS_OK ? DNS_NXDOMAIN : st);
	a->type = type;
	a->ttl = 300;
	a->count = st == DNS_OK ? count : 0;
	a->rr = xcalloc((size_t)(count > 0 ? count : 1), sizeof(*a->rr));
	if (st == DNS_TEMPERROR)
		snprintf(a->why, sizeof(a->why), "fuzz: timeout");
	return a;
}

static void
fill(struct dns_answer *a, const char *name)
{
	struct dns_rr *rr = a->rr;

	switch (a->type) {
	case DNS_T_TXT:
		rr->u.txt.joined = xstrndup(lines[nextline], linelen[nextline]);
		rr->u.txt.len = (int)linelen[nextline];
		rr->u.txt.nstrings = 1;
		nextline++;
		break;
	case DNS_T_A:
		inet_pton(AF_INET, "192.0.2.1", &rr[0].u.a);
		inet_pton(AF_INET, "127.0.0.1", &rr[1].u.a);
		break;
	case DNS_T_AAAA:
		inet_pton(AF_INET6, "2001:db8::1", &rr[0].u.aaaa);
		break;
	case DNS_T_MX:
		rr[0].u.mx.pref = 10;
		rr[0].u.mx.host = xasprintf("mx1.%s", name);
		rr[1].u.mx.pref = 20;
		rr[1].u.mx.host = xasprintf("mx2.%s", name);
		break;
	case DNS_T_PTR:
		rr[0].u.name = xstrdup("mail.example.org");
		break;
	}
}

struct dns_answer *
dns_query(const char *name, int type, struct dns_budget *b)
{
	static const int counts[] = { [DNS_T_A] = 2, [DNS_T_AAAA] = 1,
	    [DNS_T_MX] = 2, [DNS_T_PTR] = 1, [DNS_T_TXT] = 1 };
	int count = type < (int)ARRAY_SIZE(counts) ? counts[type] : 0;
	struct dns_answer *a;

	(void)b;
	FUZZ_ASSERT(name != NULL && ++queries < 1000);
	if (strstr(name, "tmp") != NULL)
		return answer(DNS_TEMPERROR, type, 0);
	if (type == DNS_T_TXT && nextline >= nlines)
		count = 0;
	if ((type == DNS_T_A || type == DNS_T_AAAA) && strlen(name) % 2)
		count = 0;
	a = answer(DNS_OK, type, count);
	if (a->count > 0)
		fill(a, name);
	return a;
}

void
dns_answer_free(struct dns_answer *a)
{
	for (int i = 0; i < a->count; i++) {
		if (a->type == DNS_T_TXT)
			free(a->rr[i].u.txt.joined);
		else if (a->type == DNS_T_MX)
			free(a->rr[i].u.mx.host);
		else if (a->type == DNS_T_PTR)
			free(a->rr[i].u.name);
	}
	free(a->rr);
	free(a);
}

static void
split_lines(const uint8_t *d, size_t n)
{
	size_t start = 0;

	nlines = nextline = queries = 0;
	for (size_t i = 0; i <= n && nlines < FUZZ_MAX_LINES; i++) {
		if (i < n && d[i] != '\n')
			continue;
		lines[nlines] = (const char *)d + start;
		linelen[nlines++] = i - start;
		start = i + 1;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	unsigned k = fuzz_byte(&d, &n);
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	struct spf_query q = { 0 };
	struct spf_outcome o;

	if ((k & 3) == 0) {
		s4->sin_family = AF_INET;
		inet_pton(AF_INET, "192.0.2.1", &s4->sin_addr);
	} else {
		s6->sin6_family = AF_INET6;
		inet_pton(AF_INET6, (k & 3) == 1 ? "2001:db8::1" : "::ffff:192.0.2.1",
		    &s6->sin6_addr);
	}
	split_lines(d, n);
	q.ip = (struct sockaddr *)&ss;
	q.sender = (k & 4) ? "a.b-c+d=e/f_%g@example.org" : "user@example.org";
	q.helo = "helo.example.org";
	q.domain = "example.org";
	q.receiver = "mx.example.net";
	q.now = 1700000000;
	memset(&o, 0, sizeof(o));
	spf_check_host(&q, &o);
	FUZZ_ASSERT(o.result >= SPF_R_NONE && o.result <= SPF_R_PERMERROR);
	FUZZ_ASSERT(strlen(o.reason) < sizeof(o.reason));
	FUZZ_ASSERT(o.explanation == NULL || o.result == SPF_R_FAIL);
	spf_outcome_clear(&o);
	return 0;
}
