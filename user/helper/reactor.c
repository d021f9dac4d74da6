// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#include <errno.h>
#include <liburing.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "reactor.h"

#define REACTOR_BATCH 256
/* Writes batched in one round; past that, owners write at once. */
#define REACTOR_SENDS 256
/* io_uring's epoll_wait (Linux 6.15): Debian 12's headers predate it, so the number is here
 * (uapi enum io_uring_op); the kernel is asked whether it knows it before it is used. */
#define OP_EPOLL_WAIT 59
/* Reads batched in one round; past that, owners read themselves. */
#define REACTOR_READS 128
/* user_data of the epoll wait; a write's is its index in the round's writes, a read's its
 * index in the round's reads with READ_TAG. */
#define WAIT_TAG (~0ULL)
#define READ_TAG (1ULL << 32)

struct reactor {
	int epfd;
	__u64 now_ms;
	/* Events of the current round; reactor_del() clears the entries of a removed fd so
	 * that a connection freed by one handler is not called by a later one. */
	struct epoll_event events[REACTOR_BATCH];
	int nr_events;
	/* Batched writes: the ring (set up by reactor_run, in the thread that submits) and
	 * the writes queued for the end of the round. done[] holds the writes of the last
	 * io_uring_enter while their owners hear of them (reactor_del clears its entries). */
	bool batch_on, wait_armed;
	struct reactor_counts *counts;
	struct io_uring ring;
	struct reactor_ev *queued[REACTOR_SENDS];
	int nr_queued;
	struct reactor_ev *done[REACTOR_SENDS];
	int done_res[REACTOR_SENDS];
	int nr_done;
	int nr_pending; /* writes of done[] and reads of reads[] without their CQE yet */
	/* The round's batched reads, while the round's handlers run (reactor_del clears). */
	struct reactor_ev *reads[REACTOR_READS];
	int nr_reads;
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
	if (r->batch_on)
		io_uring_queue_exit(&r->ring);
	close(r->epfd);
	free(r);
}

/*
 * The ring of batched writes. Made here, in the thread that makes the reactor (before
 * sockwayd says it is ready, so that what it says holds), disabled: the thread that runs
 * the reactor enables it (batch_enable), and SINGLE_ISSUER then ties it to that thread.
 * DEFER_TASKRUN makes io_uring do its deferred work (completing the epoll wait, which
 * writes r->events) only when that thread asks for completions, in batch_round: never
 * while handlers walk r->events, which a wait armed across a round could otherwise fill at
 * any system call's return. SUBMIT_ALL: a write that fails at submission (its fd gone bad)
 * fails alone, in its CQE, rather than leave the writes behind it in the ring. Any failure
 * leaves batching off: epoll_wait and writes in place.
 */
bool reactor_batch(struct reactor *r, bool on, struct reactor_counts *counts)
{
	struct io_uring_probe *probe;
	bool known;
	int err;

	r->counts = counts;
	if (!on)
		return false;
	err = io_uring_queue_init(2 * REACTOR_SENDS, &r->ring,
				  IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
					  IORING_SETUP_SUBMIT_ALL | IORING_SETUP_R_DISABLED);
	if (err) {
		pr_info("io_uring unavailable (%s): writes go one by one", strerror(-err));
		return false;
	}
	probe = io_uring_get_probe_ring(&r->ring);
	known = probe && probe->last_op >= OP_EPOLL_WAIT &&
		io_uring_opcode_supported(probe, OP_EPOLL_WAIT);
	io_uring_free_probe(probe);
	if (!known) {
		pr_info("%s", "io_uring has no epoll wait (Linux 6.15): writes go one by one");
		io_uring_queue_exit(&r->ring);
		return false;
	}
	r->batch_on = true;
	if (counts)
		__atomic_store_n(&counts->enabled, 1, __ATOMIC_RELAXED);
	return true;
}

bool reactor_batching(const struct reactor *r)
{
	return r->batch_on;
}

/* In the thread that runs the reactor: the ring becomes its own. */
static void batch_enable(struct reactor *r)
{
	int fd = r->ring.ring_fd;

	if (!r->batch_on)
		return;
	/* (Debian 12's liburing declares io_uring_enable_rings but does not have it.) */
	if (syscall(__NR_io_uring_register, fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0)) {
		pr_warn("io_uring refused to enable a worker's ring (%s): it writes one by one",
			strerror(errno));
		io_uring_queue_exit(&r->ring);
		r->batch_on = false;
		if (r->counts)
			__atomic_store_n(&r->counts->enabled, 0, __ATOMIC_RELAXED);
	}
}

bool reactor_send_later(struct reactor *r, struct reactor_ev *ev)
{
	if (ev->send_queued)
		return true;
	if (!r->batch_on || r->nr_queued == REACTOR_SENDS || !ev->out || !ev->out->len)
		return false;
	/* The socket was full at the last batched write: this one goes now, finds it still
	 * full (EAGAIN) and asks epoll for room; the one after is batched again. */
	if (ev->send_short) {
		ev->send_short = false;
		return false;
	}
	ev->send_queued = true;
	r->queued[r->nr_queued++] = ev;
	return true;
}

void reactor_send_cancel(struct reactor *r, struct reactor_ev *ev)
{
	int i;

	if (!ev->send_queued)
		return;
	ev->send_queued = false;
	for (i = 0; i < r->nr_queued; i++)
		if (r->queued[i] == ev) {
			r->queued[i] = r->queued[--r->nr_queued];
			break;
		}
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
	reactor_send_cancel(r, ev);
	for (i = 0; i < r->nr_done; i++)
		if (r->done[i] == ev)
			r->done[i] = NULL;
	for (i = 0; i < r->nr_reads; i++)
		if (r->reads[i] == ev)
			r->reads[i] = NULL;
}

bool reactor_read_taken(struct reactor_ev *ev, ssize_t *n)
{
	if (!ev->read_done)
		return false;
	ev->read_done = false;
	*n = ev->read_res;
	if (ev->read_res < 0) {
		errno = -ev->read_res;
		*n = -1;
	}
	return true;
}

__u64 reactor_now_ms(const struct reactor *r)
{
	return r->now_ms;
}

static void dispatch(struct reactor *r);

/*
 * Reads the sockets epoll found readable whose owners allow it, in one io_uring_enter,
 * before any handler runs: each read tried once, at once (MSG_DONTWAIT), into the end of
 * the owner's buffer, which nothing touches until its result is appended (reap). Then the
 * handlers run; a read they did not take is dropped from the books once they have (its
 * bytes stay in the buffer; an end or an error stays for the owner's next read).
 */
static void batch_reads(struct reactor *r);
static void submit(struct reactor *r);

static void dispatch_batched(struct reactor *r)
{
	int i;

	batch_reads(r);
	dispatch(r);
	for (i = 0; i < r->nr_reads; i++) {
		struct reactor_ev *ev = r->reads[i];

		if (ev && ev->read_done && ev->read_res > 0)
			ev->read_done = false;
	}
	r->nr_reads = 0;
}

static void dispatch(struct reactor *r)
{
	int i;

	for (i = 0; i < r->nr_events; i++) {
		struct reactor_ev *ev = r->events[i].data.ptr;

		if (ev)
			ev->fn(r, ev, r->events[i].events);
	}
	r->nr_events = 0;
}

/* Applies the CQEs there are: the writes' results and the epoll wait's events. */
static void reap(struct reactor *r)
{
	struct io_uring_cqe *cqe;
	unsigned head, seen = 0;

	io_uring_for_each_cqe(&r->ring, head, cqe)
	{
		__u64 tag = io_uring_cqe_get_data64(cqe);

		seen++;
		if (tag == WAIT_TAG) {
			r->wait_armed = false;
			r->nr_events = cqe->res > 0 ? cqe->res : 0;
		} else if (tag & READ_TAG) {
			struct reactor_ev *ev = r->reads[tag & (READ_TAG - 1)];

			/* Appended now, as a recv(2) would have: nothing runs between the read's
			 * preparation at the buffer's end and this. */
			if (cqe->res > 0)
				ev->in->len += cqe->res;
			/* Nothing there after all (EAGAIN): as if never read. */
			ev->read_res = cqe->res;
			ev->read_done = cqe->res != -EAGAIN;
			r->nr_pending--;
		} else if (tag < (__u64)r->nr_done) {
			r->done_res[tag] = cqe->res;
			r->nr_pending--;
		}
	}
	io_uring_cq_advance(&r->ring, seen);
}

/*
 * Submits the writes prepared. They name fds that may be closed, and their numbers reused,
 * as soon as their owners run again: none may stay in the ring past this call. A refusal
 * of the whole call (-EAGAIN, -ENOMEM: the kernel is short of memory; -EBUSY: completions
 * it could not post yet) leaves them there, so it is tried again, the completions taken
 * first, until it goes; if it never does, sockwayd stops rather than risk it.
 */
static void submit(struct reactor *r)
{
	int ret = 0, tries;

	for (tries = 0; tries < 10000; tries++) {
		ret = io_uring_submit_and_get_events(&r->ring);
		if (ret >= 0 && !io_uring_sq_ready(&r->ring))
			return;
		reap(r);
		sched_yield();
	}
	pr_warn("io_uring refuses sockwayd's writes (%d): stopping", ret);
	abort();
}

static void arm_wait(struct reactor *r)
{
	struct io_uring_sqe *sqe;

	if (r->wait_armed)
		return;
	sqe = io_uring_get_sqe(&r->ring);
	io_uring_prep_rw(OP_EPOLL_WAIT, sqe, r->epfd, r->events, REACTOR_BATCH, 0);
	io_uring_sqe_set_data64(sqe, WAIT_TAG);
	r->wait_armed = true;
}

static void batch_reads(struct reactor *r)
{
	struct io_uring_cqe *cqe;
	struct io_uring_sqe *sqe;
	int i, n = 0;

	for (i = 0; i < r->nr_events && n < REACTOR_READS; i++) {
		struct reactor_ev *ev = r->events[i].data.ptr;

		if (!ev || !(r->events[i].events & EPOLLIN) || !ev->in || !ev->read_ok ||
		    ev->read_done || !ev->read_ok(ev) || buf_reserve(ev->in, REACTOR_READ_SIZE))
			continue;
		sqe = io_uring_get_sqe(&r->ring);
		io_uring_prep_recv(sqe, ev->fd, buf_tail(ev->in), REACTOR_READ_SIZE, MSG_DONTWAIT);
		io_uring_sqe_set_data64(sqe, READ_TAG | (__u64)n);
		r->reads[n++] = ev;
	}
	r->nr_reads = n;
	if (!n)
		return;
	r->nr_pending = n;
	if (r->counts)
		__atomic_fetch_add(&r->counts->reads, n, __ATOMIC_RELAXED);
	submit(r);
	for (;;) {
		reap(r);
		if (!r->nr_pending)
			break;
		io_uring_wait_cqe(&r->ring, &cqe);
	}
}

/*
 * One round with batched writes. With writes queued: they go in one io_uring_enter that
 * does not wait, each tried once, at once (MSG_DONTWAIT: io_uring neither retries nor waits,
 * so no buffer is held past the call, and no fd can be closed and reused between the
 * write's preparation and its submission, both here); their results are applied to the
 * buffers first, all of them, then their owners hear of them (EPOLLOUT: room again, or a
 * short write to find out about), then any events epoll had. The owners act on that before
 * anything waits: a write that filled the socket needs its owner to ask epoll for room, and
 * one that emptied a buffer may let its owner read more (HIGH_WATER). With nothing queued:
 * one io_uring_enter waits for epoll (its wait armed once, until it completes), or the
 * timeout.
 */
static void batch_round(struct reactor *r, int timeout_ms)
{
	struct __kernel_timespec ts = {.tv_sec = timeout_ms / 1000,
				       .tv_nsec = (long long)(timeout_ms % 1000) * 1000000};
	struct io_uring_cqe *cqe;
	struct io_uring_sqe *sqe;
	int i, n = r->nr_queued;

	if (!n) {
		/* Only the wait is in the ring: refused, it is tried again next round. */
		arm_wait(r);
		io_uring_submit_and_wait_timeout(&r->ring, &cqe, 1, &ts, NULL);
		r->now_ms = now_us() / 1000;
		reap(r);
		dispatch_batched(r);
		return;
	}
	for (i = 0; i < n; i++) {
		struct reactor_ev *ev = r->queued[i];

		sqe = io_uring_get_sqe(&r->ring);
		io_uring_prep_send(sqe, ev->fd, buf_head(ev->out), ev->out->len,
				   MSG_NOSIGNAL | MSG_DONTWAIT);
		io_uring_sqe_set_data64(sqe, (__u64)i);
		r->done[i] = ev;
		r->done_res[i] = -EAGAIN;
	}
	r->nr_done = n;
	r->nr_pending = n;
	r->nr_queued = 0;
	if (r->counts)
		__atomic_fetch_add(&r->counts->writes, n, __ATOMIC_RELAXED);
	/* The wait is armed (if it is not still from an earlier round): epoll's events, if
	 * it has some now, come back with the writes' results (submit asks for completions
	 * without waiting). */
	arm_wait(r);
	submit(r);
	r->now_ms = now_us() / 1000;
	for (;;) {
		reap(r);
		/* Tried at submission, so complete already; should one not be, wait for it
		 * rather than let its owner go on with its bytes in flight. */
		if (!r->nr_pending)
			break;
		io_uring_wait_cqe(&r->ring, &cqe);
	}
	for (i = 0; i < r->nr_done; i++) {
		struct reactor_ev *ev = r->done[i];
		int res = r->done_res[i];

		ev->send_queued = false;
		if (res > 0)
			buf_consume(ev->out, res);
		/* Short, full (EAGAIN) or failed: the owner's next write goes now, and finds
		 * out which. */
		ev->send_short = ev->out->len > 0;
	}
	for (i = 0; i < r->nr_done; i++) {
		struct reactor_ev *ev = r->done[i];

		if (ev)
			ev->fn(r, ev, EPOLLOUT);
	}
	r->nr_done = 0;
	dispatch_batched(r);
}

void reactor_run(struct reactor *r, int tick_ms, reactor_hook tick, reactor_hook before_sleep,
		 void *arg, const volatile bool *stop)
{
	__u64 next_tick;
	int timeout;

	batch_enable(r);
	r->now_ms = now_us() / 1000;
	next_tick = r->now_ms + tick_ms;
	while (!*stop) {
		if (before_sleep)
			before_sleep(r, arg);
		timeout = next_tick > r->now_ms ? (int)(next_tick - r->now_ms) : 0;
		if (r->batch_on) {
			batch_round(r, timeout);
		} else {
			r->nr_events = epoll_wait(r->epfd, r->events, REACTOR_BATCH, timeout);
			r->now_ms = now_us() / 1000;
			dispatch(r);
		}
		if (r->now_ms >= next_tick) {
			/* The tick's timeouts and closes see the round's writes out, not queued. */
			if (r->nr_queued)
				batch_round(r, 0);
			if (tick)
				tick(r, arg);
			next_tick = r->now_ms + tick_ms;
		}
	}
	/* Writes queued in the last round still go (a drain's last responses). */
	if (r->nr_queued)
		batch_round(r, 0);
}
