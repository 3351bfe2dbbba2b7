/*
 * web_int.h -- what web.c (HTTP plumbing, auth gate, static files) and
 * api.c (the JSON API handlers) share. Not for other modules.
 */
#ifndef POSTERN_WEB_INT_H
#define POSTERN_WEB_INT_H

#include "lib/buf.h"

#include <stddef.h>

#include <jansson.h>

struct MHD_Connection;
struct conf;

/* Bodies we read: a pasted message for the rule tester is the largest. */
#define WEB_MAX_BODY		(4 * 1024 * 1024)
#define WEB_MAX_QUERY		1024	/* bytes of the q= search string */

struct web_req {
	struct MHD_Connection *conn;
	const char	*method;
	const char	*path;		/* without the query string */
	const char	*ctype;		/* Content-Type, or NULL */
	struct buf	 in;		/* the body as it arrives */
	const char	*body;		/* in, whole: NUL-terminated, may be NULL */
	size_t		 len;
	int		 too_big;
	char		 peer[64];	/* the address connected to us */
	char		 ip[64];	/* the client: peer, or from X-Forwarded-For */
	char		 net[72];	/* ip, or its /64 for IPv6: failures count here */
	char		 from[140];	/* for logs: "ip" or "ip via peer" */
	char		 user[80];	/* who: a user name, or "api-token" */
	char		 csrf[72];	/* the session's CSRF token; "" for a bearer */
	struct conf	*conf;
};

struct web_resp {
	int		 status;
	char		*body;		/* malloc'd, freed by libmicrohttpd */
	size_t		 len;
	const char	*ctype;
	char		*disposition;	/* Content-Disposition, malloc'd */
	char		*cookie;	/* Set-Cookie, malloc'd */
	int		 retry_after;	/* seconds, for a 429; 0 = no header */
};

/* Answer with JSON (steals j) or {"error": msg}. An object gets "ok":
 * true below 400, false from 400 on, unless it says so itself. */
void	 web_json(struct web_resp *, int status, json_t *j);
void	 web_error(struct web_resp *, int status, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
/* A query-string argument, or NULL. */
const char *web_arg(const struct web_req *, const char *name);
/* Is the request's Content-Type this type (with or without parameters)?
 * 1 or 0. */
int	 web_ctype_is(const struct web_req *, const char *type);
/* The request body parsed as a JSON object, or NULL with the answer
 * already set in resp: 415 when the Content-Type is not application/json,
 * 400 naming where the JSON is wrong. Caller decrefs. */
json_t	*web_body_json(const struct web_req *, struct web_resp *);

/* Every route under /api/ but the login ones, and /metrics; the caller
 * has authenticated the request and checked CSRF. */
void	 api_dispatch(struct web_req *, struct web_resp *);
/* /digest/TOKEN: a digest link's confirmation page (GET) and its action
 * (POST), without login (dpage.c). */
void	 dpage_route(struct web_req *, struct web_resp *);
/* GET /api/lists, and the DNS list lines of /metrics (lists.c). */
void	 lists_api(struct web_req *, struct web_resp *);
char	*lists_metrics(void);
/* GET /api/domains: each [domain] section's and dashboard entry's policy
 * and the global one
 * (domains.c). */
void	 domains_api(struct web_req *, struct web_resp *);
/* PUT /api/domains/NAME (JSON body: policy/domtab.h) and DELETE: the
 * dashboard's policy of one domain. */
void	 domains_api_one(struct web_req *, struct web_resp *, const char *name);

/* The dashboard's files, generated into build/gen/web_assets.c from
 * web/static/ and Debian's Chart.js at build time. */
struct web_asset {
	const char	*name;		/* "app.js" */
	const char	*ctype;
	const unsigned char *data;
	size_t		 len;
};
extern const struct web_asset web_assets[];
extern const size_t web_nassets;

#endif
