// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * Response bodies through a pipe (proxy.h): on the userspace path, the rest of a
 * Content-Length body moves from the upstream's socket into a pipe and from the pipe into
 * the client's socket with splice(2). The pages move by reference: sockwayd never copies
 * the bytes, where recv and send would copy each one twice.
 *
 * Only for sockets the kernel fast path does not hold (sockmap): bytes another socket
 * redirected into an upstream socket wait in a queue of the fast path's that splice(2)
 * does not read, and a client socket in the map would run sk_msg over each piece. On
 * the fast path, the kernel's own splice (splice.c) is the better tool anyway.
 *
 * Each worker keeps a few empty pipes for reuse. A pipe belongs to one exchange while it
 * holds its bytes, since a slow client may keep them there for long; one that is not empty
 * when its exchange ends (a client gone, a backend cut short) is closed, not reused.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "conns.h"
#include "proxy.h"

/*
 * Pipe capacity asked for: 64 pages, which takes a body in four times fewer splice calls
 * than the kernel's default of 16 (64 KiB). The pages of every pipe of a user count
 * against fs.pipe-user-pages-soft (16,384 by default, shared with every other process of
 * the user, root included unless it has CAP_SYS_RESOURCE or CAP_SYS_ADMIN, which the
 * systemd unit drops): past it, new pipes get two pages, and F_SETPIPE_SZ fails. So the
 * whole of sockwayd holds at most PIPES_TOTAL pipes (4,096 pages at full size, a quarter of
 * the default), and a pipe that came out smaller than PIPE_SIZE_MIN is not used: bodies
 * are copied instead.
 */
#define PIPE_SIZE     (256 * 1024)
#define PIPE_SIZE_MIN (64 * 1024)
#define PIPES_TOTAL   64
/* Empty pipes a worker keeps for the next body; how long it copies bodies after it could
 * not have a pipe. */
#define PIPES_IDLE     8
#define PIPES_RETRY_MS 100

/* Pipes open in all workers, held or kept. */
static unsigned pipes_open;

struct swd_pipe {
	int rfd, wfd;
	size_t cap;
	struct swd_pipe *next;
};

static void pipe_close(struct swd_pipe *p)
{
	close(p->rfd);
	close(p->wfd);
	free(p);
	__atomic_fetch_sub(&pipes_open, 1, __ATOMIC_RELAXED);
}

static struct swd_pipe *pipe_get(struct worker *w)
{
	struct swd_pipe *p = w->pipes_idle;
	int fds[2], sz;

	if (p) {
		w->pipes_idle = p->next;
		w->nr_pipes_idle--;
		return p;
	}
	/* None to be had a moment ago: bodies are copied for a while rather than paying
	 * for another try on every read. */
	if (reactor_now_ms(w->r) < w->pipes_retry_ms)
		return NULL;
	w->pipes_retry_ms = reactor_now_ms(w->r) + PIPES_RETRY_MS;
	if (__atomic_fetch_add(&pipes_open, 1, __ATOMIC_RELAXED) >= PIPES_TOTAL) {
		__atomic_fetch_sub(&pipes_open, 1, __ATOMIC_RELAXED);
		return NULL;
	}
	p = malloc(sizeof(*p));
	if (!p || pipe2(fds, O_NONBLOCK | O_CLOEXEC)) {
		free(p);
		__atomic_fetch_sub(&pipes_open, 1, __ATOMIC_RELAXED);
		return NULL;
	}
	p->rfd = fds[0];
	p->wfd = fds[1];
	sz = fcntl(p->wfd, F_SETPIPE_SZ, PIPE_SIZE);
	if (sz < 0)
		sz = fcntl(p->wfd, F_GETPIPE_SZ);
	if (sz < PIPE_SIZE_MIN) {
		pipe_close(p);
		return NULL;
	}
	p->cap = sz;
	w->pipes_retry_ms = 0;
	return p;
}

/* Gives a pipe back: kept when it is empty and the worker has room, else closed. */
static void pipe_put(struct worker *w, struct swd_pipe *p, bool empty)
{
	if (empty && w->nr_pipes_idle < PIPES_IDLE) {
		p->next = w->pipes_idle;
		w->pipes_idle = p;
		w->nr_pipes_idle++;
		return;
	}
	pipe_close(p);
}

void pipe_release(struct exchange *x)
{
	if (!x->pipe)
		return;
	pipe_put(x->c->w, x->pipe, !x->piped);
	x->pipe = NULL;
	x->piped = 0;
}

void pipe_spares_free(struct worker *w)
{
	struct swd_pipe *p;

	while ((p = w->pipes_idle)) {
		w->pipes_idle = p->next;
		pipe_close(p);
	}
	w->nr_pipes_idle = 0;
}

/*
 * Is the socket in sock_hash (sockops files the keys of what it puts there in sock_addr)?
 * With peer_too, or its peer: a tracked peer may redirect bytes into this socket's queue
 * of the fast path, if this socket is in sock_hash after all (its own sock_addr entry
 * gone from the LRU). Unsure (no netns cookie, no key): yes.
 */
static bool sock_on_fast_path(struct worker *w, int fd, bool peer_too)
{
	struct sw_sock_key key, peer;

	if (!w->netns_id || sw_conn_key(&key, w->netns_id, fd))
		return true;
	if (sw_sock_tracked(w->maps, &key))
		return true;
	if (!peer_too)
		return false;
	sw_conn_key_reverse(&peer, &key);
	return sw_sock_tracked(w->maps, &peer);
}

/*
 * May the client's socket take spliced pages? Known from its accept when sockwayd is on
 * the fast path (client_accept); else asked once, at its first body large enough (an
 * operator may run sockwayd --no-accel inside an accelerated cgroup all the same).
 */
static bool client_pipe_ok(struct client *c)
{
	if (c->pipe_ok == PIPE_UNKNOWN)
		c->pipe_ok =
			!c->kc && !sock_on_fast_path(c->w, c->ev.fd, false) ? PIPE_YES : PIPE_NO;
	return c->pipe_ok == PIPE_YES;
}

/*
 * May the upstream's socket be read by splice(2)? Only if nothing can be redirected into
 * it: with a conns entry, once upstream_check_peer took it out of sock_hash (or found it
 * out already); without (--no-accel), when neither end is in sock_hash. Without an entry
 * on the fast path (the conns map was full), never.
 */
static bool upstream_pipe_ok(struct upstream *u)
{
	if (u->pipe_ok == PIPE_UNKNOWN && !u->kc && !u->w->netns)
		u->pipe_ok = sock_on_fast_path(u->w, u->ev.fd, true) ? PIPE_NO : PIPE_YES;
	return u->pipe_ok == PIPE_YES;
}

/* All that pipe_eligible asks but that nothing waits for the client in sockwayd's buffer:
 * with this, a response head waiting there (for the round's batched writes) is written at
 * once, so that the body can take the pipe behind it (upstream_read). */
bool pipe_eligible_but_buffered(struct exchange *x)
{
	struct upstream *u = x->u;

	return !swd_cfg.no_pipe && u && x->resp == RESP_BODY && x->resp_body == HTTP_BODY_LENGTH &&
	       x->resp_left >= PIPE_MIN && x->splice == SPLICE_OFF && !u->in.len &&
	       client_pipe_ok(x->c) && upstream_pipe_ok(u);
}

bool pipe_eligible(struct exchange *x)
{
	return !x->c->out.len && pipe_eligible_but_buffered(x);
}

bool pipe_take(struct exchange *x)
{
	x->pipe = pipe_get(x->c->w);
	x->piped = 0;
	x->pipe_full = false;
	return x->pipe != NULL;
}

/*
 * A pipe is full when its slots are, not only its bytes: each slot holds one piece of what
 * the socket received, and pieces smaller than a page (a network's segments) fill the
 * slots early. pipe_full says a splice in found no room; a splice out clears it.
 */
bool pipe_wants_upstream(const struct exchange *x)
{
	return x->u && x->resp_left && x->piped < x->pipe->cap && !x->pipe_full;
}

bool pipe_is_full(const struct exchange *x)
{
	return x->pipe && x->piped && (x->pipe_full || x->piped >= x->pipe->cap);
}

/* Into the pipe from the upstream. Returns false when the upstream failed (ret says how). */
static bool pipe_fill(struct exchange *x, bool *moved, enum xres *ret)
{
	struct upstream *u = x->u;
	size_t room = x->pipe->cap - x->piped;
	ssize_t n;

	n = splice(u->ev.fd, NULL, x->pipe->wfd, NULL, x->resp_left < room ? x->resp_left : room,
		   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		/* Nothing to read, or no slot left: with bytes in the pipe, take it for the
		 * latter (the client's progress clears it; epoll would wake us for nothing). */
		x->pipe_full = x->piped > 0;
		return true;
	}
	if (n <= 0) {
		/* Closed or broken mid-body: the client can only see a close. */
		*ret = exchange_upstream_failed(x, SW_ERR_RESET);
		return false;
	}
	x->piped += n;
	x->resp_left -= n;
	*moved = true;
	u->deadline_ms = reactor_now_ms(u->w->r) + swd_cfg.response_timeout_ms;
	/* The body is all here: the backend's part is done (its connection goes back to its
	 * pool now), and the client gets as long as a backend would to take the rest. */
	if (!x->resp_left) {
		exchange_upstream_release(x);
		x->c->deadline_ms = reactor_now_ms(x->c->w->r) + swd_cfg.response_timeout_ms;
	}
	return true;
}

/*
 * Moves the body on: out of the pipe into the client, into the pipe from the upstream, for
 * as long as either moves. Ends the exchange once the body is all out.
 */
enum xres pipe_pump(struct exchange *x)
{
	struct client *c = x->c;
	struct worker *w = c->w;
	enum xres ret;
	bool moved;
	ssize_t n;

	do {
		moved = false;
		if (x->piped) {
			n = splice(x->pipe->rfd, NULL, c->ev.fd, NULL, x->piped,
				   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (n < 0 && errno != EAGAIN && errno != EINTR) {
				/* The client is gone: so is the exchange, and the pipe with it. */
				client_close(c);
				return XR_CLIENT_GONE;
			}
			if (n > 0) {
				x->piped -= n;
				x->pipe_full = false;
				x->bytes_out += n;
				__atomic_fetch_add(&w->stats.piped_bytes, n, __ATOMIC_RELAXED);
				moved = true;
				/* Once the backend is done, the client's progress keeps it alive
				 * (client_tick). */
				if (!x->u)
					c->deadline_ms =
						reactor_now_ms(w->r) + swd_cfg.response_timeout_ms;
			}
		}
		if (!x->resp_left && !x->piped) {
			pipe_release(x);
			x->resp = RESP_DONE;
			return exchange_finish(x);
		}
		if (pipe_wants_upstream(x) && !pipe_fill(x, &moved, &ret))
			return ret;
	} while (moved);
	return XR_GOES_ON;
}
