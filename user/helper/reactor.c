// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#include <errno.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "reactor.h"

#define REACTOR_BATCH 256

struct reactor {
	int epfd;
	__u64 now_ms;
	/* Events of the current round; reactor_del() clears the entries of a removed fd so
	 * that a connection freed by one handler is not called by a later one. */
	struct epoll_event events[REACTOR_BATCH];
	int nr_events;
};

__u64 now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

struct reactor *reactor_new(void)
{
	struct reactor *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (r->epfd < 0) {
		free(r);
		return NULL;
	}
	r->now_ms = now_us() / 1000;
	return r;
}

void reactor_free(struct reactor *r)
{
	if (!r)
		return;
	close(r->epfd);
	free(r);
}

/*
 * An empty mask takes the fd out of epoll altogether: epoll reports EPOLLHUP and EPOLLERR
 * whatever the mask, and a connection that may not be read now (its reader is behind) but
 * has been reset would wake its worker again and again, for nothing, until the reader
 * catches up. Whoever gives it a mask again gets the reset then.
 */
static int reactor_ctl(struct reactor *r, struct reactor_ev *ev, int op, __u32 mask)
{
	struct epoll_event e = {.events = mask, .data.ptr = ev};

	return epoll_ctl(r->epfd, op, ev->fd, &e) ? -errno : 0;
}

int reactor_add(struct reactor *r, struct reactor_ev *ev, __u32 mask)
{
	int err = mask ? reactor_ctl(r, ev, EPOLL_CTL_ADD, mask) : 0;

	ev->mask = mask;
	ev->registered = mask && !err;
	return err;
}

int reactor_mod(struct reactor *r, struct reactor_ev *ev, __u32 mask)
{
	int err;

	if (ev->mask == mask)
		return 0;
	if (!mask) {
		err = ev->registered ? reactor_ctl(r, ev, EPOLL_CTL_DEL, 0) : 0;
		ev->registered = false;
	} else if (!ev->registered) {
		err = reactor_ctl(r, ev, EPOLL_CTL_ADD, mask);
		ev->registered = !err;
		/* Not in epoll: the next call with this mask tries again. */
		if (err)
			mask = 0;
	} else {
		err = reactor_ctl(r, ev, EPOLL_CTL_MOD, mask);
	}
	ev->mask = mask;
	return err;
}

void reactor_del(struct reactor *r, struct reactor_ev *ev)
{
	int i;

	if (ev->registered)
		epoll_ctl(r->epfd, EPOLL_CTL_DEL, ev->fd, NULL);
	ev->registered = false;
	for (i = 0; i < r->nr_events; i++)
		if (r->events[i].data.ptr == ev)
			r->events[i].data.ptr = NULL;
}

__u64 reactor_now_ms(const struct reactor *r)
{
	return r->now_ms;
}

void reactor_run(struct reactor *r, int tick_ms, reactor_hook tick, reactor_hook before_sleep,
		 void *arg, const volatile bool *stop)
{
	__u64 next_tick = r->now_ms + tick_ms;
	int i, timeout;

	while (!*stop) {
		if (before_sleep)
			before_sleep(r, arg);
		timeout = next_tick > r->now_ms ? (int)(next_tick - r->now_ms) : 0;
		r->nr_events = epoll_wait(r->epfd, r->events, REACTOR_BATCH, timeout);
		r->now_ms = now_us() / 1000;
		for (i = 0; i < r->nr_events; i++) {
			struct reactor_ev *ev = r->events[i].data.ptr;

			if (ev)
				ev->fn(r, ev, r->events[i].events);
		}
		r->nr_events = 0;
		if (r->now_ms >= next_tick) {
			if (tick)
				tick(r, arg);
			next_tick = r->now_ms + tick_ms;
		}
	}
}
