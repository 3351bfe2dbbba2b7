/*
 * web.c -- see web.h. HTTP plumbing on libmicrohttpd: the daemon, request
 * bodies, the authentication gate (bearer token or session cookie + CSRF),
 * login/logout/session, static files, /healthz, and the headers every
 * response carries. The JSON API itself is in api.c.
 *
 * A request is answered in three steps: web_access() gathers the body
 * (bounded by WEB_MAX_BODY), web_route() decides who may see what, and
 * web_send() turns the web_resp into a libmicrohttpd response with the
 * security headers. Nothing here keeps per-request state past the request.
 */
#include "web/web.h"
#include "db/db.h"
#include "lib/conf.h"
#include "lib/prefix.h"
#include "lib/sockaddr.h"
#include "lib/util.h"
#include "web/auth.h"
#include "web/wconn.h"
#include "web/web_int.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define WEB_COOKIE		"postern_session"
#define WEB_THREADS		2	/* request threads; the UI is light */
/* Seconds idle before a connection closes: bounds a slow reader of an
 * answer; sending a request is bounded by web.request_timeout (wconn.h). */
#define WEB_CONN_TIMEOUT	30
#define WEB_TOKEN_MIN		32	/* chars of web.api_token we call strong */
#define WEB_XFF_HEADERS		8	/* X-Forwarded-For lines read (the last ones) */
#define WEB_XFF_HOPS		16	/* addresses walked back through */
#define WEB_MAX_PEM		(256 * 1024)	/* bytes of a TLS key or cert file */

/* Strict by design: no inline script or style anywhere in the dashboard. */
#define WEB_CSP "default-src 'self'; script-src 'self'; style-src 'self'; " \
	"img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; " \
	"form-action 'self'; frame-ancestors 'none'"

static struct MHD_Daemon *web_daemon;
static struct conf	*web_conf;
static int		 web_tls;
static char		*web_pem_cert, *web_pem_key;

static enum MHD_Result web_access(void *, struct MHD_Connection *, const char *url,
		    const char *method, const char *version, const char *upload,
		    size_t *upload_size, void **con_cls);
static void	 web_completed(void *, struct MHD_Connection *, void **,
		    enum MHD_RequestTerminationCode);
static void	 web_route(struct web_req *, struct web_resp *);
static int	 web_gate(struct web_req *, struct web_resp *);
static int	 web_gate_bearer(struct web_req *, struct web_resp *, const char *);
static void	 web_login(struct web_req *, struct web_resp *);
static void	 web_logout(struct web_req *, struct web_resp *);
static void	 web_session(struct web_req *, struct web_resp *);
static void	 web_static(struct web_req *, struct web_resp *, const char *name);
static enum MHD_Result web_send(struct web_req *, struct web_resp *);
static char	*web_read_pem(const char *path);
static int	 web_state_change(const char *method);
static void	 web_client_ip(struct web_req *);
static int	 web_trusted(const char *list, const struct sockaddr *);
static enum MHD_Result web_xff_collect(void *, enum MHD_ValueKind, const char *,
		    const char *);
static int	 web_xff_prev(const char *start, const char **end, char *tok, size_t sz);
static int	 web_xff_walk(struct web_req *, const char *list,
		    struct sockaddr_storage *);
static int	 web_too_many(struct web_resp *, int wait, const char *what);

/* ------------------------------------------------------------- helpers */

void
web_json(struct web_resp *r, int status, json_t *j)
{
	/* One shape for every answer: "ok" says which of the two it is. */
	if (json_is_object(j) && json_object_get(j, "ok") == NULL)
		json_object_set_new(j, "ok", json_boolean(status < 400));
	r->status = status;
	r->ctype = "application/json";
	r->body = json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII);
	if (r->body == NULL)
		fatalx("web: json_dumps failed");
	r->len = strlen(r->body);
	json_decref(j);
}

void
web_error(struct web_resp *r, int status, const char *fmt, ...)
{
	va_list ap;
	char msg[512];

	json_t *j;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	free(r->body);
	r->body = NULL;
	/* msg may quote a client's or the backend's bytes, and the cut above
	 * may split a UTF-8 sequence: jansson refuses invalid UTF-8, and a
	 * NULL here would end in web_json's fatalx. Fall back to ASCII. */
	if ((j = json_pack("{s:s}", "error", msg)) == NULL) {
		for (char *p = msg; *p != '\0'; p++)
			if ((unsigned char)*p >= 0x80)
				*p = '?';
		j = json_pack("{s:s}", "error", msg);
	}
	web_json(r, status, j);
}

const char *
web_arg(const struct web_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

int
web_ctype_is(const struct web_req *r, const char *type)
{
	const char *ct = r->ctype;
	size_t n = strlen(type);

	return ct != NULL && strncasecmp(ct, type, n) == 0 &&
	    (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

json_t *
web_body_json(const struct web_req *r, struct web_resp *resp)
{
	json_error_t e;
	json_t *j;

	/* A cross-site HTML form cannot send application/json. */
	if (!web_ctype_is(r, "application/json")) {
		web_error(resp, 415, "Content-Type must be application/json");
		return NULL;
	}
	if (r->body == NULL || r->len == 0) {
		web_error(resp, 400, "a JSON object is required in the body");
		return NULL;
	}
	if ((j = json_loadb(r->body, r->len, JSON_REJECT_DUPLICATES, &e)) == NULL) {
		web_error(resp, 400, "bad JSON at line %d column %d: %s", e.line,
		    e.column, e.text);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		web_error(resp, 400, "the body must be a JSON object");
		return NULL;
	}
	return j;
}

static int
web_state_change(const char *m)
{
	return strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0;
}

/* ------------------------------------------------------------- routing */

static void
web_route(struct web_req *r, struct web_resp *resp)
{
	if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0 &&
	    strcmp(r->method, "POST") != 0 && strcmp(r->method, "PUT") != 0 &&
	    strcmp(r->method, "DELETE") != 0) {
		web_error(resp, 405, "method not allowed");
		return;
	}
	if (r->too_big) {
		web_error(resp, 413, "body larger than %d bytes", WEB_MAX_BODY);
		return;
	}
	if (strcmp(r->path, "/healthz") == 0) {
		web_json(resp, 200, json_pack("{s:s, s:b}", "status", "ok",
		    "db", db_ok()));
		return;
	}
	if (strcmp(r->path, "/") == 0 || strcmp(r->path, "/index.html") == 0) {
		web_static(r, resp, "index.html");
		return;
	}
	if (strncmp(r->path, "/static/", 8) == 0) {
		web_static(r, resp, r->path + 8);
		return;
	}
	if (strcmp(r->path, "/api/login") == 0) {
		web_login(r, resp);
		return;
	}
	/* The signed token in the path is the authority (dpage.c). */
	if (strncmp(r->path, "/digest/", 8) == 0) {
		dpage_route(r, resp);
		return;
	}
	if (strncmp(r->path, "/api/", 5) != 0 && strcmp(r->path, "/metrics") != 0) {
		web_error(resp, 404, "no such page");
		return;
	}
	if (web_gate(r, resp) == -1)
		return;
	/* Where no body is read (DELETE, a release) one of another type is
	 * refused too, so that no state change rides on a form post. The one
	 * body that is not JSON, a message uploaded to /api/learn, is
	 * message/rfc822, which no HTML form can send either. */
	if (web_state_change(r->method) && r->len > 0 &&
	    !web_ctype_is(r, "application/json") &&
	    !(strcmp(r->path, "/api/learn") == 0 && web_ctype_is(r, "message/rfc822"))) {
		web_error(resp, 415, "Content-Type must be application/json");
		return;
	}
	if (strcmp(r->path, "/api/logout") == 0)
		web_logout(r, resp);
	else if (strcmp(r->path, "/api/session") == 0)
		web_session(r, resp);
	else
		api_dispatch(r, resp);
}

/* Who is asking: 0 and r->user set, or -1 with 401/403/429 in resp. */
static int
web_gate(struct web_req *r, struct web_resp *resp)
{
	const char *authz = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_AUTHORIZATION);
	const char *cookie = MHD_lookup_connection_value(r->conn, MHD_COOKIE_KIND,
	    WEB_COOKIE);
	const char *sent;
	int live;

	if (authz != NULL)
		return web_gate_bearer(r, resp, authz);
	if (cookie != NULL && (live = auth_session_get(cookie, r->user, r->csrf)) == -1) {
		web_error(resp, 503, "the database cannot check the session now; retry");
		return -1;
	}
	if (cookie == NULL || live == 0) {
		web_error(resp, 401, "log in or send Authorization: Bearer <web.api_token>");
		return -1;
	}
	/* A cookie rides along on cross-site requests; the CSRF token, which
	 * only our own page can read, proves the request came from it. */
	sent = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "X-CSRF-Token");
	if (web_state_change(r->method) && (sent == NULL || !auth_secret_eq(sent, r->csrf))) {
		web_error(resp, 403, "missing or wrong X-CSRF-Token");
		return -1;
	}
	return 0;
}

/* 429 with Retry-After: 0 when wait is 0 (go on), else -1. */
static int
web_too_many(struct web_resp *resp, int wait, const char *what)
{
	if (wait <= 0)
		return 0;
	web_error(resp, 429, "too many failed %s from this address; retry in %d s",
	    what, wait);
	resp->retry_after = wait;
	return -1;
}

/* The valid token is checked first and never waits: a script with the
 * right token must not be held up by another client failing from the same
 * address. Wrong tokens are delayed per address, apart from logins; the
 * token's own length is what stops guessing (web_start warns when short). */
static int
web_gate_bearer(struct web_req *r, struct web_resp *resp, const char *authz)
{
	const char *want = r->conf->web_api_token;

	if (strncasecmp(authz, "Bearer ", 7) == 0 && want != NULL && *want != '\0' &&
	    auth_secret_eq(authz + 7, want)) {
		snprintf(r->user, sizeof(r->user), "api-token");
		return 0;
	}
	if (web_too_many(resp, auth_delay_wait(r->net, NULL), "bearer tokens") == -1)
		return -1;
	auth_delay_fail(r->net, NULL);
	log_info("web: wrong bearer token from %s", r->from);
	web_error(resp, 401, "bad bearer token");
	return -1;
}

/* ------------------------------------------------- login and sessions */

static void
web_login(struct web_req *r, struct web_resp *resp)
{
	char token[AUTH_TOKEN_HEX + 1], csrf[AUTH_TOKEN_HEX + 1];
	const char *user = NULL, *pw = NULL;
	char *hash;
	json_t *j;
	int ok;

	if (strcmp(r->method, "POST") != 0) {
		web_error(resp, 405, "POST {\"user\", \"password\"} to log in");
		return;
	}
	if ((j = web_body_json(r, resp)) == NULL)
		return;
	if (json_unpack(j, "{s:s, s:s}", "user", &user, "password", &pw) == -1 ||
	    !auth_user_ok(user) || strlen(pw) > AUTH_MAX_PASSWORD) {
		json_decref(j);
		web_error(resp, 400, "user and password are required strings");
		return;
	}
	/* Before the password is looked at: a guess made during the wait
	 * must not learn anything. */
	if (web_too_many(resp, auth_delay_wait(r->net, user), "logins") == -1) {
		json_decref(j);
		return;
	}
	hash = db_user_hash(user);
	ok = auth_verify(pw, hash) == 1;
	free(hash);
	if (!ok) {
		auth_delay_fail(r->net, user);
		log_info("web: failed login for %s from %s", user, r->from);
		json_decref(j);
		web_error(resp, 401, "wrong user name or password");
		return;
	}
	auth_delay_ok(r->net, user);
	if (auth_session_new(user, token, csrf) == -1) {
		json_decref(j);
		web_error(resp, 503, "the database cannot store the session now; retry");
		return;
	}
	resp->cookie = xasprintf(WEB_COOKIE "=%s; Path=/; Max-Age=%d; HttpOnly; "
	    "SameSite=Strict%s", token, AUTH_SESSION_MAX_AGE, web_tls ? "; Secure" : "");
	log_info("web: %s logged in from %s", user, r->from);
	web_json(resp, 200, json_pack("{s:s, s:s}", "user", user, "csrf", csrf));
	json_decref(j);
}

static void
web_logout(struct web_req *r, struct web_resp *resp)
{
	const char *cookie = MHD_lookup_connection_value(r->conn, MHD_COOKIE_KIND,
	    WEB_COOKIE);

	if (strcmp(r->method, "POST") != 0) {
		web_error(resp, 405, "POST to log out");
		return;
	}
	if (cookie != NULL && auth_session_end(cookie) == -1) {
		web_error(resp, 503, "the database cannot end the session now; retry");
		return;
	}
	resp->cookie = xasprintf(WEB_COOKIE "=; Path=/; Max-Age=0; HttpOnly; "
	    "SameSite=Strict%s", web_tls ? "; Secure" : "");
	web_json(resp, 200, json_pack("{s:b}", "ok", 1));
}

/* The page asks who it is after a reload: user and the CSRF token (the
 * gate read both; a bearer has no token). */
static void
web_session(struct web_req *r, struct web_resp *resp)
{
	if (*r->csrf == '\0') {
		web_json(resp, 200, json_pack("{s:s}", "user", r->user));
		return;
	}
	web_json(resp, 200, json_pack("{s:s, s:s}", "user", r->user, "csrf", r->csrf));
}

static void
web_static(struct web_req *r, struct web_resp *resp, const char *name)
{
	if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0) {
		web_error(resp, 405, "method not allowed");
		return;
	}
	for (size_t i = 0; i < web_nassets; i++)
		if (strcmp(web_assets[i].name, name) == 0) {
			resp->status = 200;
			resp->ctype = web_assets[i].ctype;
			resp->body = xmalloc(web_assets[i].len + 1);
			memcpy(resp->body, web_assets[i].data, web_assets[i].len);
			resp->len = web_assets[i].len;
			return;
		}
	web_error(resp, 404, "no such file");
}

/* ------------------------------------------------------ libmicrohttpd */

static enum MHD_Result
web_send(struct web_req *r, struct web_resp *resp)
{
	struct MHD_Response *m;
	enum MHD_Result ret;

	m = MHD_create_response_from_buffer(resp->len, resp->body ? resp->body : "",
	    resp->body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	resp->body = NULL;
	if (m == NULL)
		return MHD_NO;
	MHD_add_response_header(m, MHD_HTTP_HEADER_CONTENT_TYPE,
	    resp->ctype ? resp->ctype : "text/plain; charset=utf-8");
	MHD_add_response_header(m, "Content-Security-Policy", WEB_CSP);
	MHD_add_response_header(m, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(m, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(m, "X-Frame-Options", "DENY");
	MHD_add_response_header(m, "Cross-Origin-Opener-Policy", "same-origin");
	MHD_add_response_header(m, "Cache-Control", "no-store");
	if (web_tls)
		MHD_add_response_header(m, "Strict-Transport-Security", "max-age=31536000");
	/* /metrics is scraped by tools that speak RFC 6750; the page's own
	 * /api/ calls handle 401 themselves. */
	if (resp->status == 401 && strncmp(r->path, "/api/", 5) != 0)
		MHD_add_response_header(m, "WWW-Authenticate", "Bearer realm=\"postern\"");
	if (resp->cookie != NULL)
		MHD_add_response_header(m, MHD_HTTP_HEADER_SET_COOKIE, resp->cookie);
	if (resp->disposition != NULL)
		MHD_add_response_header(m, "Content-Disposition", resp->disposition);
	if (resp->retry_after > 0) {
		char secs[16];

		snprintf(secs, sizeof(secs), "%d", resp->retry_after);
		MHD_add_response_header(m, MHD_HTTP_HEADER_RETRY_AFTER, secs);
	}
	ret = MHD_queue_response(r->conn, (unsigned)resp->status, m);
	MHD_destroy_response(m);
	return ret;
}

/* Is sa inside a block of the list (web.trusted_proxies, checked by
 * conf_load)? 1 or 0. */
static int
web_trusted(const char *list, const struct sockaddr *sa)
{
	return prefix_list_match(list, sa);
}

struct web_xff {
	const char	*v[WEB_XFF_HEADERS];
	int		 n;
};

/* Keeps the last WEB_XFF_HEADERS X-Forwarded-For lines, in order: the
 * right-most addresses are the ones our proxies wrote. */
static enum MHD_Result
web_xff_collect(void *cls, enum MHD_ValueKind kind, const char *key,
    const char *value)
{
	struct web_xff *x = cls;

	(void)kind;
	if (value == NULL || strcasecmp(key, "X-Forwarded-For") != 0)
		return MHD_YES;
	if (x->n == WEB_XFF_HEADERS) {
		memmove(x->v, x->v + 1, sizeof(x->v[0]) * (WEB_XFF_HEADERS - 1));
		x->n--;
	}
	x->v[x->n++] = value;
	return MHD_YES;
}

/* The comma-separated entry that ends at *end (right to left), trimmed,
 * into tok; *end moves before it. 1; 0 when none is left; -1 when it does
 * not fit (no address is that long). */
static int
web_xff_prev(const char *start, const char **end, char *tok, size_t sz)
{
	const char *e = *end, *b;

	if (e <= start)
		return 0;
	for (b = e; b > start && b[-1] != ','; b--)
		;
	*end = b > start ? b - 1 : start;
	while (b < e && (*b == ' ' || *b == '\t'))
		b++;
	while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	if ((size_t)(e - b) >= sz)
		return -1;
	memcpy(tok, b, (size_t)(e - b));
	tok[e - b] = '\0';
	return 1;
}

/* Standing on a trusted peer, step back through X-Forwarded-For while the
 * hop is itself a trusted proxy: the client is the right-most address
 * that is not. Anything left of a hop we cannot parse is the client's own
 * text and is not believed. Sets r->ip and ss; 1 when it moved, else 0. */
static int
web_xff_walk(struct web_req *r, const char *list, struct sockaddr_storage *ss)
{
	struct web_xff x = { .n = 0 };
	char tok[INET6_ADDRSTRLEN];
	int hops = 0, rc;

	MHD_get_connection_values(r->conn, MHD_HEADER_KIND, web_xff_collect, &x);
	for (int i = x.n - 1; i >= 0; i--) {
		const char *end = x.v[i] + strlen(x.v[i]);

		while (hops < WEB_XFF_HOPS &&
		    (rc = web_xff_prev(x.v[i], &end, tok, sizeof(tok))) != 0) {
			if (rc == -1 || sockaddr_ip(tok, 0, ss, NULL) == -1)
				return hops > 0;
			snprintf(r->ip, sizeof(r->ip), "%s", tok);
			hops++;
			if (!web_trusted(list, (struct sockaddr *)ss))
				return 1;
		}
	}
	return hops > 0;
}

/* Who the client is: the peer, or behind a peer listed in
 * web.trusted_proxies what X-Forwarded-For says; from anyone else the
 * header is ignored (it is the client's to forge). */
static void
web_client_ip(struct web_req *r)
{
	const char *list = r->conf->web_trusted_proxies;
	const struct sockaddr *sa = wconn_peer(r->conn, r->peer, sizeof(r->peer));
	struct sockaddr_storage ss;

	snprintf(r->ip, sizeof(r->ip), "%s", r->peer);
	snprintf(r->from, sizeof(r->from), "%s", r->peer);
	if (sa != NULL && web_trusted(list, sa) && web_xff_walk(r, list, &ss)) {
		sa = (struct sockaddr *)&ss;
		snprintf(r->from, sizeof(r->from), "%s via %s", r->ip, r->peer);
	}
	/* One IPv6 site holds a /64: its addresses are one client here. */
	if (sa == NULL || prefix_net(sa, 32, 64, r->net, sizeof(r->net)) == -1)
		snprintf(r->net, sizeof(r->net), "%s", r->ip);
}

/* Called once with no body, once per body chunk, then once to answer. */
static enum MHD_Result
web_access(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload,
    size_t *upload_size, void **con_cls)
{
	struct web_req *r = *con_cls;
	struct web_resp resp = { .status = 500 };
	enum MHD_Result ret;

	(void)cls;
	(void)version;
	if (r == NULL) {
		r = xcalloc(1, sizeof(*r));
		r->conn = conn;
		*con_cls = r;
		return MHD_YES;
	}
	if (*upload_size > 0) {
		if (!r->too_big && r->in.len + *upload_size <= WEB_MAX_BODY)
			buf_add(&r->in, upload, *upload_size);
		else
			r->too_big = 1;
		*upload_size = 0;
		return MHD_YES;
	}
	wconn_received(conn);		/* whole request in: its deadline stops */
	r->body = r->in.len > 0 ? buf_str(&r->in) : NULL;
	r->len = r->in.len;
	r->method = method;
	r->path = url;
	r->ctype = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_CONTENT_TYPE);
	/* The settings of the moment: SIGHUP may have swapped in a new token. */
	if ((r->conf = conf_current()) == NULL)
		r->conf = conf_ref(web_conf);
	web_client_ip(r);
	web_route(r, &resp);
	ret = web_send(r, &resp);
	conf_unref(r->conf);
	r->conf = NULL;
	free(resp.body);
	free(resp.cookie);
	free(resp.disposition);
	return ret;
}

static void
web_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
    enum MHD_RequestTerminationCode why)
{
	struct web_req *r = *con_cls;

	(void)cls;
	(void)why;
	wconn_answered(conn);
	if (r != NULL) {
		buf_free(&r->in);
		free(r);
		*con_cls = NULL;
	}
}

/* ------------------------------------------------------------ daemon */

static char *
web_read_pem(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	size_t n;

	if (f == NULL) {
		log_err("web: cannot open %s: %m", path);
		return NULL;
	}
	buf = xmalloc(WEB_MAX_PEM + 1);
	n = fread(buf, 1, WEB_MAX_PEM, f);
	fclose(f);
	if (n == 0 || n == WEB_MAX_PEM) {
		log_err("web: %s is empty or larger than %d bytes", path, WEB_MAX_PEM);
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	return buf;
}

int
web_start(struct conf *c)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	/* AUTO: epoll on Linux, so descriptors past FD_SETSIZE are served too. */
	unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
	int v6;

	if (c->web_listen == NULL || *c->web_listen == '\0') {
		log_info("web: web.listen is empty; no dashboard");
		return 0;
	}
	if (sockaddr_parse(c->web_listen, 0, &ss, &sslen) == -1) {
		log_err("web: web.listen %s is not an address:port", c->web_listen);
		return -1;
	}
	v6 = ss.ss_family == AF_INET6;
	web_tls = c->web_tls_cert && *c->web_tls_cert && c->web_tls_key && *c->web_tls_key;
	if (web_tls && ((web_pem_cert = web_read_pem(c->web_tls_cert)) == NULL ||
	    (web_pem_key = web_read_pem(c->web_tls_key)) == NULL))
		return -1;
	if (web_tls && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
		log_err("web: this libmicrohttpd has no TLS; unset web.tls_cert");
		return -1;
	}
	flags |= (v6 ? MHD_USE_IPv6 : 0) | (web_tls ? MHD_USE_TLS : 0);
	if (*c->web_api_token != '\0' && strlen(c->web_api_token) < WEB_TOKEN_MIN)
		log_warn("web: web.api_token has fewer than %d characters; a valid token is "
		    "never throttled, so its length is what stops guessing: use e.g. "
		    "openssl rand -hex 32", WEB_TOKEN_MIN);
	if (wconn_start(c->web_request_timeout) == -1)
		return -1;
	web_conf = conf_ref(c);
	web_daemon = MHD_start_daemon(flags, 0, NULL, NULL, web_access, NULL,
	    MHD_OPTION_EXTERNAL_LOGGER, wconn_log, NULL,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
	    MHD_OPTION_THREAD_POOL_SIZE, (unsigned)WEB_THREADS,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)c->web_max_conns,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)WEB_CONN_TIMEOUT,
	    MHD_OPTION_NOTIFY_COMPLETED, web_completed, NULL,
	    MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)c->web_max_conns_per_ip,
	    MHD_OPTION_NOTIFY_CONNECTION, wconn_notify, NULL,
	    web_tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, web_pem_cert,
	    MHD_OPTION_HTTPS_MEM_KEY, web_pem_key,
	    MHD_OPTION_HTTPS_PRIORITIES, c->web_tls_priorities,
	    MHD_OPTION_END);
	if (web_daemon == NULL) {
		log_err("web: cannot listen on %s%s", c->web_listen, web_tls ?
		    " (or web.tls_priorities is not a GnuTLS priority string)" : "");
		wconn_stop();
		conf_unref(web_conf);
		web_conf = NULL;
		return -1;
	}
	log_info("web: dashboard on %s://%s/ (at most %d connections, %d per address, "
	    "%lld s per request)", web_tls ? "https" : "http", c->web_listen,
	    c->web_max_conns, c->web_max_conns_per_ip, c->web_request_timeout);
	return 0;
}

void
web_stop(void)
{
	wconn_stop();		/* first: it shuts sockets the daemon owns */
	if (web_daemon != NULL)
		MHD_stop_daemon(web_daemon);
	web_daemon = NULL;
	if (web_conf != NULL)
		conf_unref(web_conf);
	web_conf = NULL;
	free(web_pem_cert);
	web_pem_cert = NULL;
	free(web_pem_key);
	web_pem_key = NULL;
}
