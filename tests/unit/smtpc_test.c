/*
 * smtpc_test.c -- proxy/smtpc.h against a scripted SMTP server on a
 * loopback port: several messages on one connection (what a digest run
 * does), refused recipients, RSET after a refused transaction, the body
 * dot-stuffed without its skipped ranges, BODY=8BITMIME where offered,
 * and failures reported, not hung on.
 */
#include "t.h"
#include "proxy/smtpc.h"
#include "lib/buf.h"
#include "policy/policy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* The server: what it got, and how it greets. */
static struct buf got;
static const char *greeting;
static int lfd = -1;

static void
srv_say(int fd, const char *s)
{
	(void)!write(fd, s, strlen(s));
}

/* One reply per command; RCPT to nobody@ is refused, so is MAIL from
 * refused@; in DATA, lines are kept until the dot. */
static void
srv_line(int fd, const char *l, int *data)
{
	if (*data) {
		if (strcmp(l, ".\r\n") == 0) {
			*data = 0;
			srv_say(fd, "250 2.0.0 queued\r\n");
		}
		return;
	}
	if (strncmp(l, "EHLO", 4) == 0)
		srv_say(fd, "250-srv.test\r\n250-8BITMIME\r\n250 SIZE 1000\r\n");
	else if (strncmp(l, "MAIL FROM:<refused@", 19) == 0)
		srv_say(fd, "553 5.7.1 not you\r\n");
	else if (strncmp(l, "RCPT TO:<nobody@", 16) == 0)
		srv_say(fd, "550 5.1.1 no such user\r\n");
	else if (strncmp(l, "DATA", 4) == 0) {
		srv_say(fd, "354 go\r\n");
		*data = 1;
	} else if (strncmp(l, "QUIT", 4) == 0)
		srv_say(fd, "221 bye\r\n");
	else
		srv_say(fd, "250 ok\r\n");
}

static void *
srv_main(void *arg)
{
	char in[65536], line[8192];
	size_t have = 0;
	int fd = accept(lfd, NULL, NULL), data = 0;
	ssize_t n;

	(void)arg;
	srv_say(fd, greeting);
	while ((n = read(fd, in + have, sizeof(in) - have)) > 0) {
		char *nl;
		buf_add(&got, in + have, (size_t)n);
		have += (size_t)n;
		while ((nl = memchr(in, '\n', have)) != NULL) {
			size_t l = (size_t)(nl - in) + 1;
			snprintf(line, sizeof(line), "%.*s", (int)l, in);
			memmove(in, in + l, have - l);
			have -= l;
			srv_line(fd, line, &data);
		}
	}
	close(fd);
	return NULL;
}

/* Listen on a free loopback port and serve one connection; the port. */
static int
srv_start(pthread_t *t, const char *greet)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a);

	buf_free(&got);
	greeting = greet;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd == -1 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) == -1 ||
	    listen(lfd, 1) == -1 || getsockname(lfd, (struct sockaddr *)&a, &al) == -1)
		abort();
	pthread_create(t, NULL, srv_main, NULL);
	return ntohs(a.sin_port);
}

/* A loopback port bound but not listening: connecting is refused. */
static int
srv_port_unused(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd == -1 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) == -1 ||
	    getsockname(lfd, (struct sockaddr *)&a, &al) == -1)
		abort();
	return ntohs(a.sin_port);
}

static void
srv_stop(pthread_t t)
{
	pthread_join(t, NULL);
	close(lfd);
	lfd = -1;
}

T_CASE(messages_on_one_connection)
{
	static const char body[] = "Subject: hi\r\nX-Spam-Flag: NO\r\n\r\n.dot line\r\ncaf\xc3\xa9\r\n";
	const char *r1[] = { "a@x.test", "nobody@x.test", "b@x.test" };
	const char *r2[] = { "nobody@x.test" };
	struct pol_skip skip = { .off = 13, .len = 17 };	/* the X-Spam-Flag line */
	struct smtpc_msg m = {
		.from = "s@x.test", .rcpts = r1, .nrcpts = 3, .prepend = "X-Ours: 1\r\n",
		.data = body, .len = sizeof(body) - 1, .skip = &skip, .nskip = 1,
	};
	char hp[64], err[256];
	pthread_t t;
	struct smtpc *s;

	snprintf(hp, sizeof(hp), "127.0.0.1:%d", srv_start(&t, "220 srv.test ESMTP\r\n"));
	s = smtpc_open(hp, "postern.test", 5, err, sizeof(err));
	T_ASSERT(s != NULL);
	T_EQ_INT(smtpc_send(s, &m, err, sizeof(err)), 0);
	T_EQ_STR(err, "ok");
	/* every recipient refused: no DATA, an RSET, and the reason */
	m.rcpts = r2;
	m.nrcpts = 1;
	T_EQ_INT(smtpc_send(s, &m, err, sizeof(err)), -1);
	T_ASSERT(strstr(err, "550 5.1.1 no such user") != NULL);
	T_EQ_INT(smtpc_refused(s), 1);		/* for good: a 5xx to every RCPT */
	/* the sender refused: RSET again; then the connection still serves */
	m.from = "refused@x.test";
	T_EQ_INT(smtpc_send(s, &m, err, sizeof(err)), -1);
	T_ASSERT(strstr(err, "553 5.7.1") != NULL);
	T_EQ_INT(smtpc_refused(s), 1);
	m.from = "";
	m.rcpts = r1;
	m.nrcpts = 1;
	m.nskip = 0;
	m.prepend = NULL;
	m.data = "x";
	m.len = 1;
	T_EQ_INT(smtpc_send(s, &m, err, sizeof(err)), 0);
	T_EQ_INT(smtpc_refused(s), 0);
	smtpc_close(s);
	srv_stop(t);
	T_EQ_STR(buf_str(&got),
	    "EHLO postern.test\r\n"
	    "MAIL FROM:<s@x.test> BODY=8BITMIME\r\n"
	    "RCPT TO:<a@x.test>\r\nRCPT TO:<nobody@x.test>\r\nRCPT TO:<b@x.test>\r\n"
	    "DATA\r\n"
	    "X-Ours: 1\r\nSubject: hi\r\n\r\n..dot line\r\ncaf\xc3\xa9\r\n.\r\n"
	    "MAIL FROM:<s@x.test> BODY=8BITMIME\r\nRCPT TO:<nobody@x.test>\r\nRSET\r\n"
	    "MAIL FROM:<refused@x.test> BODY=8BITMIME\r\nRSET\r\n"
	    "MAIL FROM:<>\r\nRCPT TO:<a@x.test>\r\nDATA\r\nx\r\n.\r\n"
	    "QUIT\r\n");
	buf_free(&got);
}

T_CASE(bad_greeting_and_no_server)
{
	char hp[64], err[256];
	pthread_t t;
	int port;

	snprintf(hp, sizeof(hp), "127.0.0.1:%d", srv_start(&t, "554 5.3.2 go away\r\n"));
	T_ASSERT(smtpc_open(hp, "postern.test", 5, err, sizeof(err)) == NULL);
	T_ASSERT(strstr(err, "554 5.3.2 go away") != NULL);
	srv_stop(t);
	snprintf(hp, sizeof(hp), "127.0.0.1:%d", srv_start(&t, "hello, not SMTP\r\n"));
	T_ASSERT(smtpc_open(hp, "postern.test", 5, err, sizeof(err)) == NULL);
	T_ASSERT(strstr(err, "no reply") != NULL);
	srv_stop(t);
	/* a port nobody listens on: bound, never listening */
	port = srv_port_unused();
	snprintf(hp, sizeof(hp), "127.0.0.1:%d", port);
	T_ASSERT(smtpc_open(hp, "postern.test", 5, err, sizeof(err)) == NULL);
	T_ASSERT(strstr(err, "backend 127.0.0.1:") != NULL);
	T_ASSERT(smtpc_open("not-an-address", "postern.test", 5, err, sizeof(err)) == NULL);
	T_ASSERT(strstr(err, "bad backend address") != NULL);
	close(lfd);
	lfd = -1;
	buf_free(&got);
}

int
main(void)
{
	T_RUN(messages_on_one_connection);
	T_RUN(bad_greeting_and_no_server);
	return T_END();
}
