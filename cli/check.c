/*
 * check.c -- `postern check`: run the policy offline on one envelope (and
 * optionally one message) and print what policy/check.c reports, one JSON
 * object.
 *
 *   postern check -c FILE --ip IP [--helo NAME] [--from ADDR] [--rcpt ADDR]...
 *                 [--only CHECK,...] [--record] [MESSAGE|-]
 *
 * The message is read as the proxy hands it over: every line ending made
 * CRLF, at most proxy.max_message_size bytes. Exit 0 whatever the
 * verdict; 1 on a bad config or resolver; 2 on bad arguments (unknown
 * option or --only name, missing value, unreadable message); --help
 * prints the usage and exits 0.
 */
#include "cli/cli.h"
#include "lib/buf.h"
#include "lib/conf.h"
#include "lib/sockaddr.h"
#include "lib/util.h"
#include "policy/policy.h"
#include "policy/rulecheck.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK_MAX_RCPTS	1000

struct check_args {
	const char	*conf, *ip, *message;
	const char	*rcpts[CHECK_MAX_RCPTS];
	struct pol_dry	 dry;
	int		 help;
};

static void	 check_usage(FILE *);
static int	 check_parse(int, char **, struct check_args *);
static int	 check_only_ok(const char *);
static int	 check_sockaddr(const char *, struct sockaddr_storage *, socklen_t *);
static char	*check_read_message(const char *, long long max, size_t *);

static void
check_usage(FILE *fp)
{
	fprintf(fp, "usage: postern check -c FILE --ip IP [--helo NAME] "
	    "[--from ADDR] [--rcpt ADDR]... [--only CHECK,...] [--record] [MESSAGE|-]\n"
	    "  MESSAGE gives the envelope too: --from defaults to Return-Path, else\n"
	    "  the From address; --rcpt to the first To address. Nothing is written\n"
	    "  but, with --record, the greylist triplet. Checks for --only: ");
	pol_check_names(fp);
	fputc('\n', fp);
}

int
cli_check(int argc, char **argv)
{
	struct check_args a;
	struct sockaddr_storage ss;
	struct pol_msg m = { 0 };
	struct conf *c;
	char *buf = NULL;
	socklen_t sl;
	json_t *j;
	int rc = 2;

	if (check_parse(argc, argv, &a) == -1 || check_only_ok(a.dry.only) == -1 ||
	    (!a.help && check_sockaddr(a.ip, &ss, &sl) == -1)) {
		check_usage(stderr);
		return 2;
	}
	if (a.help) {
		check_usage(stdout);
		return 0;
	}
	if ((c = conf_load_report(a.conf)) == NULL)
		return 1;
	log_set_level((enum log_level)c->log_level);
	if (a.message != NULL &&
	    (buf = check_read_message(a.message, c->max_message_size, &m.len)) == NULL)
		goto out;
	m.data = buf;
	rulecheck_no_writes();
	rc = 1;
	if (pol_init(c) == -1)
		goto out;
	j = pol_dry_run(c, (struct sockaddr *)&ss, sl, &a.dry, buf ? &m : NULL);
	json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	fputc('\n', stdout);
	json_decref(j);
	pol_shutdown();
	rc = 0;
out:
	free(buf);
	conf_unref(c);
	return rc;
}

/* 0; 1 for --help; -1 on an unknown option, a missing value or a second
 * message (each said on stderr). */
static int
check_parse(int argc, char **argv, struct check_args *a)
{
	memset(a, 0, sizeof(*a));
	a->conf = "etc/postern.conf";
	a->dry.rcpts = a->rcpts;
	for (int i = 1; i < argc; i++) {
		const char *o = argv[i];
		const char **dst = NULL;

		if (strcmp(o, "-h") == 0 || strcmp(o, "--help") == 0) {
			a->help = 1;
			return 0;
		}
		if (strcmp(o, "--record") == 0) {
			a->dry.record = 1;
			continue;
		}
		if (strcmp(o, "-c") == 0) dst = &a->conf;
		else if (strcmp(o, "--ip") == 0) dst = &a->ip;
		else if (strcmp(o, "--helo") == 0) dst = &a->dry.helo;
		else if (strcmp(o, "--from") == 0) dst = &a->dry.from;
		else if (strcmp(o, "--only") == 0) dst = &a->dry.only;
		else if (strcmp(o, "--rcpt") == 0) {
			if (a->dry.nrcpts == CHECK_MAX_RCPTS) {
				fprintf(stderr, "postern check: at most %d --rcpt\n",
				    CHECK_MAX_RCPTS);
				return -1;
			}
			dst = &a->rcpts[a->dry.nrcpts++];
		} else if (o[0] == '-' && o[1] != '\0') {
			fprintf(stderr, "postern check: unknown option %s\n", o);
			return -1;
		} else if (a->message == NULL) {
			a->message = o;
			continue;
		} else {
			fprintf(stderr, "postern check: one message only (%s and %s)\n",
			    a->message, o);
			return -1;
		}
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

/* Every --only name is a check's: 0, or -1 said on stderr. */
static int
check_only_ok(const char *only)
{
	char why[200];

	if (only == NULL || pol_only_ok(only, why, sizeof(why)) == 0)
		return 0;
	fprintf(stderr, "postern check: %s\n", why);
	return -1;
}

static int
check_sockaddr(const char *ip, struct sockaddr_storage *ss, socklen_t *sl)
{
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
	if (sockaddr_ip(ip, 0, ss, sl) == 0)
		return 0;
	fprintf(stderr, "postern check: --ip %s is not an IP address\n", ip);
	return -1;
}

/* The message from a file or stdin ("-"), at most max bytes, with every
 * line ending made CRLF as the proxy hands it over. NULL on error. */
static char *
check_read_message(const char *path, long long max, size_t *len)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	struct buf b = { 0 };
	int ch, prev = 0, big = 0;

	if (f == NULL) {
		fprintf(stderr, "postern check: %s: %s\n", path, strerror(errno));
		return NULL;
	}
	while ((ch = getc(f)) != EOF) {
		if (ch == '\n' && prev != '\r')
			buf_addc(&b, '\r');
		buf_addc(&b, (char)ch);
		prev = ch;
		if ((big = (long long)b.len > max)) {
			fprintf(stderr, "postern check: %s is larger than proxy.max_message_size\n", path);
			buf_free(&b);
			break;
		}
	}
	if (f != stdin)
		fclose(f);
	*len = b.len;
	return big ? NULL : buf_take(&b);
}
