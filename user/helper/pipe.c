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

/* Pipe capacity asked for: 64 pages. The kernel's default is 16 pages (64 KiB); more
 * takes a body in four times fewer splice calls. Root processes without CAP_SYS_RESOURCE
 * are held to fs.pipe-user-pages-soft all the same; past it, pipes get one page. */
#define PIPE_SIZE (256 * 1024)
/* Empty pipes a worker keeps for the next body, and pipes it holds at most (each two
 * file descriptors); beyond that, bodies take recv and send. */
#define PIPES_IDLE 16
#define PIPES_MAX  256

struct swd_pipe {
	int rfd, wfd;
	size_t cap;
	struct swd_pipe *next;
};

static struct swd_pipe *pipe_get(struct worker *w)
{
	struct swd_pipe *p = w->pipes_idle;
	int fds[2], sz;

	if (p) {
		w->pipes_idle = p->next;
		w->nr_pipes_idle--;
		w->nr_pipes++;
		return p;
	}
	if (w->nr_pipes >= PIPES_MAX)
		return NULL;
	p = malloc(sizeof(*p));
	if (!p)
		return NULL;
	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC)) {
		free(p);
		return NULL;
	}
	p->rfd = fds[0];
	p->wfd = fds[1];
	sz = fcntl(p->wfd, F_SETPIPE_SZ, PIPE_SIZE);
	if (sz < 0)
		sz = fcntl(p->wfd, F_GETPIPE_SZ);
	if (sz <= 0) {
		close(p->rfd);
		close(p->wfd);
		free(p);
		return NULL;
	}
	p->cap = sz;
	w->nr_pipes++;
	return p;
}

/* Gives a pipe back: kept when it is empty and the worker has room, else closed. */
static void pipe_put(struct worker *w, struct swd_pipe *p, bool empty)
{
	w->nr_pipes--;
	if (empty && w->nr_pipes_idle < PIPES_IDLE) {
		p->next = w->pipes_idle;
		w->pipes_idle = p;
		w->nr_pipes_idle++;
		return;
	}
	close(p->rfd);
	close(p->wfd);
	free(p);
}

void pipe_release(struct exchange *x)
{
	if (!x->pipe)
		return;
	pipe_put(x->c->w, x->pipe, !x->piped);
	x->pipe = NULL;
	x->piped = 0;
}

void pipes_free(struct worker *w)
{
	struct swd_pipe *p;

	while ((p = w->pipes_idle)) {
		w->pipes_idle = p->next;
		close(p->rfd);
		close(p->wfd);
		free(p);
	}
	w->nr_pipes_idle = 0;
}

/* Is the socket, or its peer, in sock_hash (sockops files both ends' keys in sock_addr)? */
static bool sock_on_fast_path(struct worker *w, int fd, bool peer_too)
{
	struct sw_sock_key key, peer;

	if (sw_conn_key(&key, w->netns_id, fd))
		return true; /* cannot tell: assume the worst */
	if (sw_sock_tracked(w->maps, &key))
		return true;
	if (!peer_too)
		return false;
	sw_conn_key_reverse(&peer, &key);
	return sw_sock_tracked(w->maps, &peer);
}

/*
 * May the client's socket take spliced pages? Asked once per connection, at its first body
 * large enough. One with a conns entry is on the fast path; without, sockwayd asks the map
 * (an operator may run sockwayd --no-accel inside an accelerated cgroup all the same).
 */
static bool client_plain(struct client *c)
{
	if (!c->plain_known) {
		c->plain_known = true;
		c->plain = !c->kc && !sock_on_fast_path(c->w, c->ev.fd, false);
	}
	return c->plain;
}

/*
 * May the upstream's socket be read by splice(2)? Only once nothing can be redirected into
 * it: with a conns entry, once upstream_check_peer took it out of sock_hash (or found it
 * out already); without (--no-accel), when neither end is in sock_hash. Without an entry
 * on the fast path (the conns map was full), never.
 */
static bool upstream_plain(struct upstream *u)
{
	if (!u->plain_known && !u->kc && !u->w->netns) {
		u->plain_known = true;
		u->plain = !sock_on_fast_path(u->w, u->ev.fd, true);
	}
	return u->plain_known && u->plain;
}

bool pipe_eligible(struct exchange *x)
{
	struct upstream *u = x->u;
	struct client *c = x->c;

	return !swd_cfg.no_pipe && u && x->resp == RESP_BODY && x->resp_body == HTTP_BODY_LENGTH &&
	       x->resp_left >= PIPE_MIN && x->splice == SPLICE_OFF && !u->in.len && !c->out.len &&
	       client_plain(c) && upstream_plain(u);
}

bool pipe_start(struct exchange *x)
{
	x->pipe = pipe_get(x->c->w);
	x->piped = 0;
	return x->pipe != NULL;
}

bool pipe_wants_upstream(const struct exchange *x)
{
	return x->resp_left && x->piped < x->pipe->cap;
}

/*
 * Moves the body on: out of the pipe into the client, into the pipe from the upstream, for
 * as long as either moves. Ends the exchange once the body is all out.
 */
enum xres pipe_pump(struct exchange *x)
{
	struct swd_pipe *p = x->pipe;
	struct client *c = x->c;
	struct upstream *u = x->u;
	struct worker *w = c->w;
	bool moved;
	ssize_t n;

	do {
		moved = false;
		if (x->piped) {
			n = splice(p->rfd, NULL, c->ev.fd, NULL, x->piped,
				   SPLICE_F_MOVE | SPLICE_F_NONBLOCK |
					   (x->resp_left ? SPLICE_F_MORE : 0));
			if (n < 0 && errno != EAGAIN && errno != EINTR) {
				/* The client is gone: so is the exchange, and the pipe with it. */
				client_close(c);
				return XR_CLIENT_GONE;
			}
			if (n > 0) {
				x->piped -= n;
				__atomic_fetch_add(&w->stats.piped_bytes, n, __ATOMIC_RELAXED);
				moved = true;
				/* The backend is gone (all of the body is here): the client's
				 * progress keeps it alive (client_tick). */
				if (!u)
					c->deadline_ms =
						reactor_now_ms(w->r) + swd_cfg.response_timeout_ms;
			}
		}
		if (!x->resp_left && !x->piped) {
			pipe_release(x);
			x->resp = RESP_DONE;
			return exchange_finish(x);
		}
		if (!pipe_wants_upstream(x))
			continue;
		n = splice(u->ev.fd, NULL, p->wfd, NULL,
			   x->resp_left < p->cap - x->piped ? x->resp_left : p->cap - x->piped,
			   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0) {
			/* Closed or broken mid-body: the client can only see a close. */
			return exchange_upstream_failed(x, SW_ERR_RESET);
		}
		x->piped += n;
		x->resp_left -= n;
		x->bytes_out += n;
		moved = true;
		u->deadline_ms = reactor_now_ms(w->r) + swd_cfg.response_timeout_ms;
	} while (moved);
	return XR_GOES_ON;
}
