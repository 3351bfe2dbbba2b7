/*
 * ev.c -- the epoll loop (see ev.h).
 */
#include "proxy/ev.h"
#include "lib/util.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* Events fetched per epoll_wait(); more simply wait for the next round. */
#define EV_BATCH	128

struct ev_loop {
	int		 epfd;
	struct ev_io	 wake;
	ev_wake_fn	*wake_cb;
	void		*wake_arg;
	/* ev_wake() writes the eventfd only while the loop sleeps in
	 * epoll_wait(); when it is busy, the pending flag is enough (it is
	 * looked at before every sleep): one syscall and one wakeup fewer
	 * per policy verdict under load. */
	atomic_int	 sleeping, pending;
};

static void	 ev_wake_read(struct ev_io *, unsigned);
static uint32_t	 ev_mask(unsigned);

struct ev_loop *
ev_new(void)
{
	struct ev_loop *l = xcalloc(1, sizeof(*l));

	if ((l->epfd = epoll_create1(EPOLL_CLOEXEC)) == -1)
		fatal("epoll_create1");
	l->wake.fd = -1;
	return l;
}

void
ev_free(struct ev_loop *l)
{
	if (l->wake.fd != -1)
		ev_del(l, &l->wake);
	close(l->epfd);
	free(l);
}

static uint32_t
ev_mask(unsigned want)
{
	return (want & EV_READ ? EPOLLIN : 0) | (want & EV_WRITE ? EPOLLOUT : 0);
}

void
ev_add(struct ev_loop *l, struct ev_io *io, int fd, unsigned want, ev_cb *cb, void *arg)
{
	struct epoll_event e = { .events = ev_mask(want), .data.ptr = io };

	io->fd = fd;
	io->want = want;
	io->cb = cb;
	io->arg = arg;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &e) == -1)
		fatal("epoll_ctl add %d", fd);
}

void
ev_set(struct ev_loop *l, struct ev_io *io, unsigned want)
{
	struct epoll_event e = { .events = ev_mask(want), .data.ptr = io };

	if (io->fd == -1 || io->want == want)
		return;
	io->want = want;
	if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, io->fd, &e) == -1)
		fatal("epoll_ctl mod %d", io->fd);
}

void
ev_del(struct ev_loop *l, struct ev_io *io)
{
	(void)l;
	if (io->fd == -1)
		return;
	/* close() drops the registration (we never dup() these fds), which
	 * saves an epoll_ctl() per connection. */
	close(io->fd);
	io->fd = -1;
	io->want = 0;
}

void
ev_run(struct ev_loop *l, int tick_ms, int (*after)(void *), void *arg)
{
	struct epoll_event evs[EV_BATCH];

	for (;;) {
		atomic_store(&l->sleeping, 1);
		int n = epoll_wait(l->epfd, evs, EV_BATCH,
		    atomic_load(&l->pending) ? 0 : tick_ms);
		atomic_store(&l->sleeping, 0);
		if (n == -1 && errno != EINTR)
			fatal("epoll_wait");
		if (l->wake_cb != NULL && atomic_exchange(&l->pending, 0))
			l->wake_cb(l->wake_arg);
		for (int i = 0; i < n; i++) {
			struct ev_io *io = evs[i].data.ptr;
			unsigned r = 0;
			if (io->fd == -1)
				continue;	/* died earlier in this batch */
			if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
				r |= EV_READ;
			if (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
				r |= EV_WRITE;
			io->cb(io, r);
		}
		if (after(arg))
			return;
	}
}

void
ev_wake_init(struct ev_loop *l, ev_wake_fn *cb, void *arg)
{
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

	if (fd == -1)
		fatal("eventfd");
	l->wake_cb = cb;
	l->wake_arg = arg;
	ev_add(l, &l->wake, fd, EV_READ, ev_wake_read, l);
}

static void
ev_wake_read(struct ev_io *io, unsigned r)
{
	struct ev_loop *l = io->arg;
	uint64_t v;

	(void)r;
	while (read(io->fd, &v, sizeof(v)) == -1 && errno == EINTR)
		;
	atomic_store(&l->pending, 0);
	l->wake_cb(l->wake_arg);
}

void
ev_wake(struct ev_loop *l)
{
	uint64_t one = 1;

	atomic_store(&l->pending, 1);
	if (!atomic_load(&l->sleeping))
		return;
	while (write(l->wake.fd, &one, sizeof(one)) == -1 && errno == EINTR)
		;
}
