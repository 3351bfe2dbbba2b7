/*
 * sockaddr_test.c -- lib/sockaddr.h: host:port syntax, IP literals, names
 * only where asked for.
 */
#include "t.h"
#include "lib/sockaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

T_CASE(split)
{
	char h[64];
	int port;

	T_EQ_INT(sockaddr_split("127.0.0.1:25", h, sizeof(h), &port), 0);
	T_EQ_STR(h, "127.0.0.1");
	T_EQ_INT(port, 25);
	T_EQ_INT(sockaddr_split("[::1]:2525", h, sizeof(h), &port), 0);
	T_EQ_STR(h, "::1");
	T_EQ_INT(sockaddr_split("mx.example:10025", h, sizeof(h), &port), 0);
	T_EQ_STR(h, "mx.example");
	T_EQ_INT(sockaddr_split("::1:25", h, sizeof(h), &port), -1);
	T_EQ_INT(sockaddr_split("host:99999", h, sizeof(h), &port), -1);
	T_EQ_INT(sockaddr_split("host:", h, sizeof(h), &port), -1);
	T_EQ_INT(sockaddr_split(":25", h, sizeof(h), &port), -1);
	T_EQ_INT(sockaddr_split("[::1]25", h, sizeof(h), &port), -1);
	T_EQ_INT(sockaddr_split("a-rather-long-name:25", h, 8, &port), -1);
}

T_CASE(parse_literals)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char txt[INET6_ADDRSTRLEN];

	T_EQ_INT(sockaddr_parse("192.0.2.7:2525", 0, &ss, &len), 0);
	T_EQ_INT(ss.ss_family, AF_INET);
	T_EQ_INT(len, sizeof(struct sockaddr_in));
	T_EQ_INT(ntohs(((struct sockaddr_in *)&ss)->sin_port), 2525);
	inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, txt, sizeof(txt));
	T_EQ_STR(txt, "192.0.2.7");
	T_EQ_INT(sockaddr_parse("[2001:db8::1]:25", 0, &ss, &len), 0);
	T_EQ_INT(ss.ss_family, AF_INET6);
	T_EQ_INT(len, sizeof(struct sockaddr_in6));
	T_EQ_INT(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 25);
	T_EQ_INT(sockaddr_parse("192.0.2.300:25", 0, &ss, &len), -1);
	T_EQ_INT(sockaddr_parse("192.0.2.7", 0, &ss, &len), -1);
}

/* A name passes only with SOCKADDR_NAMES ("localhost" comes from
 * /etc/hosts: no DNS). */
T_CASE(parse_names)
{
	struct sockaddr_storage ss;
	socklen_t len;

	T_EQ_INT(sockaddr_parse("localhost:25", 0, &ss, &len), -1);
	T_EQ_INT(sockaddr_parse("localhost:25", SOCKADDR_NAMES, &ss, &len), 0);
	T_ASSERT(ss.ss_family == AF_INET || ss.ss_family == AF_INET6);
}

/* An X-Forwarded-For hop: an address alone, anything else refused, and
 * the target left as it was. */
T_CASE(ip_literal)
{
	struct sockaddr_storage ss;
	socklen_t len = 0;

	T_EQ_INT(sockaddr_ip("::ffff:198.51.100.7", 0, &ss, &len), 0);
	T_EQ_INT(ss.ss_family, AF_INET6);
	T_EQ_INT(sockaddr_ip("198.51.100.7", 0, &ss, NULL), 0);
	T_EQ_INT(ss.ss_family, AF_INET);
	memset(&ss, 0x5a, sizeof(ss));
	T_EQ_INT(sockaddr_ip("[::1]", 0, &ss, &len), -1);
	T_EQ_INT(sockaddr_ip("198.51.100.7:25", 0, &ss, &len), -1);
	T_EQ_INT(sockaddr_ip("unknown", 0, &ss, &len), -1);
	T_EQ_INT(((unsigned char *)&ss)[0], 0x5a);
}

int
main(void)
{
	T_RUN(split);
	T_RUN(parse_literals);
	T_RUN(parse_names);
	T_RUN(ip_literal);
	return T_END();
}
