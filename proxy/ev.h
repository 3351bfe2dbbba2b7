/*
 * ev.h -- one epoll loop per I/O thread (in the manner of Redis's ae.c).
 *
 * A struct ev_io is embedded in its owner (session, backend leg, listener,
 * wakeup eventfd). Events are level-triggered; ev_set() calls epoll_ctl
 * only when the wanted set changes. An owner torn down inside a callback
 * calls ev_del() (fd becomes -1) and frees itself only in the loop's
 * after-batch hook, so events still queued in this batch find a dead
 * ev_io and are skipped.
 * Ownership: the loop owns nothing but its epoll fd.
 * Thread: a loop is used only by the thread running ev_run(), except
 * ev_wake(), which any thread may call.
 */
#ifndef POSTERN_EV_H
#define POSTERN_EV_H

#define EV_READ		0x1u
#define EV_WRITE	0x2u

struct ev_loop;
struct ev_io;

typedef void	 ev_cb(struct ev_io *, unsigned revents);

struct ev_io {
	int		 fd;
	unsigned	 want;		/* EV_READ|EV_WRITE as registered */
	ev_cb		*cb;
	void		*arg;
};

struct ev_loop	*ev_new(void);
void		 ev_free(struct ev_loop *);
/* Register fd with the wanted events (may be 0). */
void		 ev_add(struct ev_loop *, struct ev_io *, int fd, unsigned want,
		    ev_cb *, void *arg);
void		 ev_set(struct ev_loop *, struct ev_io *, unsigned want);
/* Unregister and close the fd. */
void		 ev_del(struct ev_loop *, struct ev_io *);
/*
 * Run until after() returns non-zero. after() is called after each batch
 * of events and at least every tick_ms; it frees what died in the batch,
 * fires timers and checks for shutdown.
 */
void		 ev_run(struct ev_loop *, int tick_ms, int (*after)(void *), void *);
/* Wake the loop from another thread: cb runs on the loop thread. */
typedef void	 ev_wake_fn(void *);
void		 ev_wake_init(struct ev_loop *, ev_wake_fn *, void *arg);
void		 ev_wake(struct ev_loop *);

#endif
