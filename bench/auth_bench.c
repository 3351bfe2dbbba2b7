/*
 * auth_bench.c -- sender-authentication evaluations per second on one core.
 *
 * Runs the whole policy path a message takes (pol_run at CONNECT, HELO,
 * MAIL, RCPT and DATA: SPF, DKIM, DMARC and whatever else the config
 * enables) in a loop on one thread, against the resolver the config names,
 * after one warm-up pass so DNS answers come from the cache. Prints one
 * line: "auth_bench: N evaluations in S s = R per second (size B bytes)".
 * With -v it first prints the verdict, the summary and the headers the
 * backend would get, which makes it a handy manual check too.
 *
 * usage: auth_bench -c CONF [-n COUNT] [-v] [--ip IP] [--helo NAME]
 *        [--from ADDR] [--rcpt ADDR] MESSAGE
 * Without arguments (as `make bench` runs every bench program) it hands
 * over to bench/auth_bench.py, which sets up DNS, keys and a signed 10 KB
 * message and calls back with arguments.
 * Thread: one. Built by `make bench`; linked with build/libpostern.a.
 */
#include "lib/conf.h"
#include "policy/policy.h"
#include "lib/util.h"

#include <arpa/inet.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Debian's interpreter (not a pyenv one on PATH), and the driver script,
 * relative to the top of the tree where `make bench` runs. */
#define BENCH_PYTHON	"/usr/bin/python3"
#define BENCH_DRIVER	"bench/auth_bench.py"

struct bench_args {
	const char	*conf, *ip, *helo, *from, *rcpt, *file;
	long		 count;
	int		 verbose;
};

static char	*bench_slurp(const char *, size_t *);
static void	 bench_one(struct conf *, const struct bench_args *,
		    const struct pol_msg *, int verbose);
static void	 bench_usage(void);

static void
bench_usage(void)
{
	fprintf(stderr, "usage: auth_bench -c CONF [-n COUNT] [-v] [--ip IP] "
	    "[--helo NAME] [--from ADDR] [--rcpt ADDR] MESSAGE\n");
	exit(2);
}

/* The message file, with LF line ends turned into CRLF (what the proxy
 * hands the policy). */
static char *
bench_slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t n = 0, cap = 0;
	int c, prev = 0;

	if (f == NULL)
		fatal("%s", path);
	while ((c = getc(f)) != EOF) {
		if (n + 2 >= cap)
			buf = xrealloc(buf, cap = cap * 2 + 4096);
		if (c == '\n' && prev != '\r')
			buf[n++] = '\r';
		buf[n++] = (char)c;
		prev = c;
	}
	fclose(f);
	*len = n;
	return buf;
}

static void
bench_one(struct conf *c, const struct bench_args *a, const struct pol_msg *m,
    int verbose)
{
	static const enum pol_stage stages[] = { POL_CONNECT, POL_HELO,
	    POL_MAIL, POL_RCPT, POL_DATA };
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct pol_decision d;
	struct pol_session *ps;
	char sum[512];

	if (inet_pton(AF_INET, a->ip, &sin.sin_addr) != 1)
		fatalx("--ip %s: not an IPv4 address", a->ip);
	ps = pol_session_new(c, "BENCH", (struct sockaddr *)&sin, sizeof(sin));
	pol_set_helo(ps, a->helo);
	pol_tx_begin(ps, a->from, "");
	pol_tx_rcpt(ps, a->rcpt);
	memset(&d, 0, sizeof(d));
	for (size_t i = 0; i < ARRAY_SIZE(stages); i++) {
		pol_decision_clear(&d);
		pol_run(ps, stages[i], stages[i] == POL_DATA ? m : NULL, &d);
		if (d.verdict != POL_ACCEPT && d.verdict != POL_TAG)
			break;
		if (stages[i] == POL_RCPT)
			pol_tx_rcpt_accepted(ps, a->rcpt);
	}
	if (verbose) {
		pol_summary(ps, sum, sizeof(sum));
		printf("verdict %d %d %s %s\nsummary %s\nskip %d\n%s", d.verdict,
		    d.code, d.status, d.text, sum, d.nskip,
		    d.prepend ? d.prepend : "");
	}
	pol_decision_clear(&d);
	pol_session_free(ps);
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "ip", required_argument, NULL, 'i' },
		{ "helo", required_argument, NULL, 'H' },
		{ "from", required_argument, NULL, 'f' },
		{ "rcpt", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 } };
	struct bench_args a = { .ip = "127.0.0.1", .helo = "localhost",
	    .from = "", .rcpt = "postmaster@localhost", .count = 1000 };
	struct conf_err *errs;
	struct pol_msg m;
	struct conf *c;
	uint64_t t0, t1;
	size_t len;
	int ch, nerr;

	log_init("auth_bench", 0);
	if (argc == 1) {
		execl(BENCH_PYTHON, "python3", BENCH_DRIVER, (char *)NULL);
		fatal("%s %s", BENCH_PYTHON, BENCH_DRIVER);
	}
	while ((ch = getopt_long(argc, argv, "c:n:v", lo, NULL)) != -1) {
		switch (ch) {
		case 'c': a.conf = optarg; break;
		case 'n': a.count = strtol(optarg, NULL, 10); break;
		case 'v': a.verbose = 1; break;
		case 'i': a.ip = optarg; break;
		case 'H': a.helo = optarg; break;
		case 'f': a.from = optarg; break;
		case 'r': a.rcpt = optarg; break;
		default: bench_usage();
		}
	}
	if (a.conf == NULL || optind != argc - 1 || a.count < 1)
		bench_usage();
	a.file = argv[optind];
	if ((c = conf_load(a.conf, &errs, &nerr)) == NULL) {
		for (int i = 0; i < nerr; i++)
			fprintf(stderr, "%s\n", errs[i].msg);
		return 1;
	}
	if (pol_init(c) == -1)
		return 1;
	m.data = bench_slurp(a.file, &len);
	m.len = len;
	bench_one(c, &a, &m, a.verbose);	/* warm the DNS cache */
	t0 = time_mono_ms();
	for (long i = 0; i < a.count; i++)
		bench_one(c, &a, &m, 0);
	t1 = time_mono_ms();
	printf("auth_bench: %ld evaluations in %.3f s = %.0f per second "
	    "(size %zu bytes)\n", a.count, (double)(t1 - t0) / 1000,
	    (double)a.count * 1000 / (double)(t1 - t0 ? t1 - t0 : 1), len);
	free((void *)m.data);
	pol_shutdown();
	conf_unref(c);
	return 0;
}
