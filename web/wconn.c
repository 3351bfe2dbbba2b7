/*
 * wconn.c -- see wconn.h. A doubly linked list of live connections under
 * one mutex; the sweep walks it (at most web.max_conns entries) once per
 * WCONN_SWEEP_MS and logs one line per sweep that cut anything, so a flood
 * of slow clients cannot flood the log. The sweep takes wconn_msg.mtx while
 * it holds wconn_mtx; nothing takes them the other way round.
 */
#include "web/wconn.h"
#include "lib/util.h"

#include <arpa/inet.h>
#include <assert.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

struct wconn {
	struct wconn	*prev, *next;
	int		 fd;
	uint64_t	 start;		/* ms: accepted, or the last answer sent */
	int		 busy;		/* a complete request is being answered */
	int		 cut;		/* shut down by the sweep */
	char		 ip[INET6_ADDRSTRLEN];
};

/* The last library message and how often it came again unlogged. */
static struct {
	pthread_mutex_t	 mtx;
	char		 last[200];
	uint64_t	 since;		/* ms: logged, or its count logged */
	unsigned	 held;
} wconn_msg = { .mtx = PTHREAD_MUTEX_INITIALIZER };

static pthread_mutex_t	 wconn_mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	 wconn_cond;
static pthread_t	 wconn_thread;
static int		 wconn_running;
static uint64_t		 wconn_timeout_ms;
static struct wconn	*wconn_head;

static uint64_t	 wconn_now(void);
static void	*wconn_main(void *);
static void	 wconn_sweep(uint64_t now);
static struct wconn *wconn_of(struct MHD_Connection *);
static void	 wconn_log_held(uint64_t now, int force);

static uint64_t
wconn_now(void)
{
	return time_mono_ms() + (uint64_t)(time_test_offset() * 1000);
}

/* Under wconn_mtx: shut down every connection past its deadline. */
static void
wconn_sweep(uint64_t now)
{
	const char *last = NULL;
	int n = 0;

	for (struct wconn *w = wconn_head; w != NULL; w = w->next) {
		/* now < start: a test clock set back; not a deadline passed. */
		if (w->busy || w->cut || now < w->start || now - w->start < wconn_timeout_ms)
			continue;
		/* Not close(): the descriptor stays libmicrohttpd's to close. */
		shutdown(w->fd, SHUT_RDWR);
		w->cut = 1;
		last = w->ip;
		n++;
	}
	if (n > 0)
		log_info("web: closed %d connection%s that sent no whole request within "
		    "%llu s (web.request_timeout), the last from %s", n, n == 1 ? "" : "s",
		    (unsigned long long)(wconn_timeout_ms / 1000), last);
}

/* Under wconn_msg.mtx: log the count of repeats held back, WCONN_LOG_QUIET
 * after the last line about them (with force: now, before another line). */
static void
wconn_log_held(uint64_t now, int force)
{
	if (wconn_msg.held == 0 || (!force && now - wconn_msg.since < WCONN_LOG_QUIET))
		return;
	log_warn("web: libmicrohttpd: \"%s\" %u more time%s", wconn_msg.last,
	    wconn_msg.held, wconn_msg.held == 1 ? "" : "s");
	wconn_msg.held = 0;
	wconn_msg.since = now;
}

void
wconn_log(void *cls, const char *fmt, va_list ap)
{
	uint64_t now = time_mono_ms();
	char msg[sizeof(wconn_msg.last)];

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\r\n")] = '\0';
	pthread_mutex_lock(&wconn_msg.mtx);
	if (strcmp(msg, wconn_msg.last) == 0 && now - wconn_msg.since < WCONN_LOG_QUIET) {
		wconn_msg.held++;
	} else {
		wconn_log_held(now, 1);
		log_warn("web: libmicrohttpd: %s", msg);
		memcpy(wconn_msg.last, msg, sizeof(msg));
		wconn_msg.since = now;
	}
	pthread_mutex_unlock(&wconn_msg.mtx);
}

static void *
wconn_main(void *arg)
{
	struct timespec ts;

	(void)arg;
	pthread_mutex_lock(&wconn_mtx);
	while (wconn_running) {
		wconn_sweep(wconn_now());
		pthread_mutex_lock(&wconn_msg.mtx);
		wconn_log_held(time_mono_ms(), 0);
		pthread_mutex_unlock(&wconn_msg.mtx);
		time_deadline_ts(CLOCK_MONOTONIC, WCONN_SWEEP_MS, &ts);
		pthread_cond_timedwait(&wconn_cond, &wconn_mtx, &ts);
	}
	pthread_mutex_unlock(&wconn_mtx);
	return NULL;
}

int
wconn_start(long long timeout_s)
{
	pthread_condattr_t ca;

	assert(!wconn_running);
	wconn_timeout_ms = (uint64_t)timeout_s * 1000;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&wconn_cond, &ca);
	pthread_condattr_destroy(&ca);
	wconn_running = 1;
	if (pthread_create(&wconn_thread, NULL, wconn_main, NULL) != 0) {
		log_err("web: cannot start the request deadline thread");
		wconn_running = 0;
		pthread_cond_destroy(&wconn_cond);
		return -1;
	}
	return 0;
}

void
wconn_stop(void)
{
	if (!wconn_running)
		return;
	pthread_mutex_lock(&wconn_mtx);
	wconn_running = 0;
	pthread_cond_signal(&wconn_cond);
	pthread_mutex_unlock(&wconn_mtx);
	pthread_join(wconn_thread, NULL);
	pthread_cond_destroy(&wconn_cond);
	pthread_mutex_lock(&wconn_msg.mtx);
	wconn_log_held(time_mono_ms(), 1);
	pthread_mutex_unlock(&wconn_msg.mtx);
}

const struct sockaddr *
wconn_peer(struct MHD_Connection *c, char *ip, size_t ipsz)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c,
	    MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;

	snprintf(ip, ipsz, "unknown");
	if (sa != NULL && sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, ip, ipsz);
	else if (sa != NULL && sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, ip, ipsz);
	else
		sa = NULL;
	return sa;
}

void
wconn_notify(void *cls, struct MHD_Connection *c, void **ctx,
    enum MHD_ConnectionNotificationCode code)
{
	const union MHD_ConnectionInfo *ci;
	struct wconn *w;

	(void)cls;
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		w = xcalloc(1, sizeof(*w));
		ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		w->fd = ci ? ci->connect_fd : -1;
		wconn_peer(c, w->ip, sizeof(w->ip));
		w->start = wconn_now();
		pthread_mutex_lock(&wconn_mtx);
		if ((w->next = wconn_head) != NULL)
			wconn_head->prev = w;
		wconn_head = w;
		pthread_mutex_unlock(&wconn_mtx);
		*ctx = w;
		return;
	}
	if ((w = *ctx) == NULL)
		return;
	pthread_mutex_lock(&wconn_mtx);
	if (w->prev != NULL)
		w->prev->next = w->next;
	else
		wconn_head = w->next;
	if (w->next != NULL)
		w->next->prev = w->prev;
	pthread_mutex_unlock(&wconn_mtx);
	free(w);
	*ctx = NULL;
}

static struct wconn *
wconn_of(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c,
	    MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return ci != NULL ? ci->socket_context : NULL;
}

void
wconn_received(struct MHD_Connection *c)
{
	struct wconn *w = wconn_of(c);

	if (w == NULL)
		return;
	pthread_mutex_lock(&wconn_mtx);
	w->busy = 1;
	pthread_mutex_unlock(&wconn_mtx);
}

void
wconn_answered(struct MHD_Connection *c)
{
	struct wconn *w = wconn_of(c);
	uint64_t now = wconn_now();

	if (w == NULL)
		return;
	pthread_mutex_lock(&wconn_mtx);
	w->busy = 0;
	w->start = now;
	pthread_mutex_unlock(&wconn_mtx);
}
