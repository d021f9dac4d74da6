/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * A small event loop in the manner of redis' ae: file events on epoll, one periodic timer
 * tick, and a before-sleep hook. One reactor per worker thread; nothing in it is shared.
 *
 * Batched writes (reactor_batch): where the kernel has io_uring's epoll wait (Linux 6.15),
 * the writes that handlers queue with reactor_send_later go out together at the end of the
 * round, in one io_uring_enter, and the wait for the next events is another (io_uring's
 * epoll wait): two system calls for a round instead of one per write and one for the wait.
 *
 * The rules of a queued write, for its owner:
 * - The reactor writes what ev->out holds when the round ends, consumes what the socket
 *   took, then calls the owner with EPOLLOUT. Until then the owner may append to ev->out,
 *   never consume from it, and never write to the fd itself: bytes it writes directly
 *   would go out ahead of the queued ones. An owner that must write now (a closing
 *   connection, a response whose body goes to a pipe next) cancels first
 *   (reactor_send_cancel), then writes all of ev->out.
 * - All the round's results are applied to their buffers before any owner hears of one:
 *   an owner's handler may write to another socket directly, and that socket's buffer
 *   must not still hold bytes the kernel already took.
 * - A queued write is epoll's EPOLLOUT already: owners leave EPOLLOUT out of their mask
 *   while ev->send_queued, and ask for it when a write comes back short.
 * - An owner may hear of EPOLLOUT twice in a round (the write's, then epoll's own).
 * - Removing ev (reactor_del) drops its queued write: a graceful close flushes first.
 *
 * Batched reads: when epoll reports sockets readable, the reactor reads each whose owner
 * allows it (ev->read_ok(ev), asked right then), up to REACTOR_READ_SIZE bytes appended to
 * ev->in, all in one io_uring_enter, before any handler runs. The owner's EPOLLIN handler
 * then takes the result (reactor_read_taken) where it would have called recv(2) first, and
 * must take it on that event even when it would not read more (the bytes are in its
 * buffer already and no EPOLLIN may come for them again). read_ok must say no when anything
 * but that handler would read the socket next (splice(2) of a pipe, a peek).
 */
#ifndef SOCKWAY_REACTOR_H
#define SOCKWAY_REACTOR_H

#include <stdbool.h>
#include <sys/types.h>
#include <sys/epoll.h>

#include <linux/types.h>

/* A batched read takes at most this; the owners' own reads take as much. */
#define REACTOR_READ_SIZE (64 * 1024)

struct buf;

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
	/* Batched writes: the owner's output buffer, and where its write stands. */
	struct buf *out;
	bool send_queued; /* its bytes go out at the end of this round */
	bool send_short;  /* the last batched write did not take them all */
	/* Batched reads: the owner's input buffer, whether the reactor may read into it now
	 * (asked when epoll says the socket is readable, before any handler runs), and the
	 * read's result until the owner takes it (reactor_read_taken). */
	struct buf *in;
	bool (*read_ok)(struct reactor_ev *ev);
	bool read_done;
	int read_res;
};

typedef void (*reactor_hook)(struct reactor *r, void *arg);

struct reactor *reactor_new(void);
void reactor_free(struct reactor *r);

/* Registers ev (fd, fn and owner set by the caller) for mask. */
int reactor_add(struct reactor *r, struct reactor_ev *ev, __u32 mask);
/* Changes the mask; a no-op when it is the same. An empty one means no event at all, not
 * even EPOLLHUP or EPOLLERR (the fd leaves epoll until it gets a mask again). */
int reactor_mod(struct reactor *r, struct reactor_ev *ev, __u32 mask);
/* Unregisters ev. Events already fetched for it in this round are dropped, and so is its
 * queued write. */
void reactor_del(struct reactor *r, struct reactor_ev *ev);

/* What a reactor batched, for another thread to read (atomically). */
struct reactor_counts {
	__u64 writes;  /* writes batched */
	__u64 reads;   /* reads batched */
	__u64 enabled; /* 1 while the reactor batches */
};

/*
 * Asks for batched writes and reads (before reactor_run; where the kernel lacks what they
 * need, or refuses io_uring, they stay off: epoll_wait, reads and writes in place), counted
 * in *counts. Returns whether they are on; so does reactor_batching.
 */
bool reactor_batch(struct reactor *r, bool on, struct reactor_counts *counts);
bool reactor_batching(const struct reactor *r);

/*
 * Queues a write of all that ev->out holds, at the end of this round. Until then the owner
 * must not write to the fd itself (nor consume ev->out); it may append. Once written, the
 * bytes sent are consumed from ev->out and ev's handler gets EPOLLOUT, as if epoll had said
 * the socket can take more (whether or not all went). Returns false when the write must be
 * done now instead: batching is off, the queue is full, or the last batched write to ev was
 * short (the socket is full: the owner writes, gets EAGAIN and asks epoll for EPOLLOUT).
 */
bool reactor_send_later(struct reactor *r, struct reactor_ev *ev);
/*
 * Whether a batched read of ev came back and was not taken yet: then *n is its result as
 * recv(2) gives it (bytes, 0 at the end, or -1 with errno set), the bytes already appended
 * to ev->in, and the next call says no.
 */
bool reactor_read_taken(struct reactor_ev *ev, ssize_t *n);

/* Takes back a queued write (the owner writes now, or closes): ev->send_queued is false
 * after it, so the owner's mask asks for EPOLLOUT again if bytes wait. */
void reactor_send_cancel(struct reactor *r, struct reactor_ev *ev);

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
