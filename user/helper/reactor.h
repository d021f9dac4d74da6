/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * A small event loop in the manner of redis' ae: file events on epoll, one periodic timer
 * tick, and a before-sleep hook. One reactor per worker thread; nothing in it is shared.
 */
#ifndef SOCKWAY_REACTOR_H
#define SOCKWAY_REACTOR_H

#include <stdbool.h>
#include <sys/epoll.h>

#include <linux/types.h>

struct reactor;
struct reactor_ev;

/* Called with the epoll events (EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP...) of ev->fd. */
typedef void (*reactor_fn)(struct reactor *r, struct reactor_ev *ev, __u32 events);

/* A registration. It lives inside its owner (a connection), which it points back to. */
struct reactor_ev {
	int fd;
	__u32 mask;	 /* the events asked for */
	bool registered; /* in epoll: not with an empty mask (reactor_mod) */
	reactor_fn fn;
	void *owner;
};

typedef void (*reactor_hook)(struct reactor *r, void *arg);

struct reactor *reactor_new(void);
void reactor_free(struct reactor *r);

/* Registers ev (fd, fn and owner set by the caller) for mask. */
int reactor_add(struct reactor *r, struct reactor_ev *ev, __u32 mask);
/* Changes the mask; a no-op when it is the same. An empty one means no event at all, not
 * even EPOLLHUP or EPOLLERR (the fd leaves epoll until it gets a mask again). */
int reactor_mod(struct reactor *r, struct reactor_ev *ev, __u32 mask);
/* Unregisters ev. Events already fetched for it in this round are dropped. */
void reactor_del(struct reactor *r, struct reactor_ev *ev);

/*
 * Runs until *stop is true after a round: tick() every tick_ms, before_sleep() before each
 * wait. Both may be NULL.
 */
void reactor_run(struct reactor *r, int tick_ms, reactor_hook tick, reactor_hook before_sleep,
		 void *arg, const volatile bool *stop);

/* Monotonic milliseconds, cached once per round (cheap to call on every event). */
__u64 reactor_now_ms(const struct reactor *r);
/* Monotonic microseconds, read from the clock (for latencies). */
__u64 now_us(void);

#endif /* SOCKWAY_REACTOR_H */
