// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * Client connections (proxy.h): accept, read, write, answers of sockwayd's own, deadlines,
 * close. A request head that parses starts an exchange (exchange.c); its body and the
 * pipelined requests behind it stay in the client's input buffer meanwhile.
 */
#include <errno.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conns.h"
#include "proxy.h"
#include "reason.h"

/* ---- client connection -------------------------------------------------------------- */

void client_update(struct client *c)
{
	struct exchange *x = c->x;
	__u32 mask = 0;

	if (c->state == C_HEAD)
		mask |= EPOLLIN;
	else if (c->state == C_PROXY && x->req != REQ_DONE)
		/* Body bytes wait in the kernel until the upstream can take them. */
		mask |= x->u && !x->u->connecting && x->u->out.len < HIGH_WATER ? EPOLLIN : 0;
	else if (c->state == C_PROXY && c->in.len < swd_cfg.limits.max_header_bytes && !c->eof)
		mask |= EPOLLIN; /* a pipelined request, kept for later */
	/* (A batched write is epoll's EPOLLOUT already: it ends in one.) */
	if ((c->out.len && !c->ev.send_queued) || (x && x->piped))
		mask |= EPOLLOUT;
	reactor_mod(c->w->r, &c->ev, mask);
	kroute_client_idle(c);
}

/*
 * Does closing the client now cut a response short: bytes of it still buffered for it, or
 * a body under way (pipe, splice or sockwayd)? Then its connection is reset, not closed:
 * a close would end a close-delimited body as if it were whole.
 */
static bool client_owed(const struct client *c)
{
	return c->out.len || (c->x && c->x->resp == RESP_BODY);
}

void client_close(struct client *c)
{
	struct worker *w = c->w;
	struct exchange *x = c->x;

	if (client_owed(c))
		tcp_reset_on_close(c->ev.fd);
	if (x) {
		if (x->u) {
			x->u->x = NULL;
			upstream_close(x->u);
		}
		w->nr_exchanges--;
		exchange_free(x);
	}
	if (c->kc) {
		kroute_client_untrack(c);
		/* The kernel may still write the entry of a client it routed for. */
		conn_entry_release(w, c->kc, c->kroute_used);
	}
	reactor_del(w->r, &c->ev);
	close(c->ev.fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		w->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	buf_free(&c->in);
	buf_free(&c->out);
	__atomic_fetch_sub(&w->stats.active, 1, __ATOMIC_RELAXED);
	free(c);
}

/*
 * The connection closes once what is buffered for it is out (Connection: close, a client that
 * half-closed, an error). The client has the response timeout, from now and again after each
 * write that moves bytes, to take them; then it is closed at the tick.
 */
void client_closing(struct client *c)
{
	c->state = C_CLOSING;
	c->deadline_ms = reactor_now_ms(c->w->r) + swd_cfg.response_timeout_ms;
}

/*
 * Batched writes (reactor.h) for clients sockwayd filed no conns entry for (remote clients,
 * or no fast path at all): the kernel writes into a local client only under the rules of
 * splice.c and kroute.c, which count on sockwayd's bytes being in the socket when it arms
 * the kernel, and a batched write would only make them decline. So would a remote client's
 * egress splice (splice_arm), which is armed as soon as the response head is out: a client
 * in egress_hash writes in place too, until it leaves it (client_egress_drop).
 */
static bool client_batches(const struct client *c)
{
	return !c->kc && !c->egress && reactor_batching(c->w->r);
}

static int flush(struct client *c, bool later)
{
	bool moved = false;
	ssize_t n;

	if (later && c->out.len && c->state != C_CLOSING && client_batches(c) &&
	    reactor_send_later(c->w->r, &c->ev))
		return 0;
	/* Written now, all of it: no write stays queued (client_update asks for EPOLLOUT
	 * again if bytes are left). */
	reactor_send_cancel(c->w->r, &c->ev);
	while (c->out.len) {
		n = send(c->ev.fd, buf_head(&c->out), c->out.len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			client_close(c);
			return -1;
		}
		buf_consume(&c->out, n);
		moved = true;
	}
	if (c->state != C_CLOSING)
		return 0;
	if (!c->out.len) {
		client_close(c);
		return -1;
	}
	/* Bytes left for a closing connection: wait until it can take more. Nothing else asks
	 * for EPOLLOUT for it (its exchange is over), and without it those bytes would wait
	 * forever, the connection with them. */
	if (moved)
		c->deadline_ms = reactor_now_ms(c->w->r) + swd_cfg.response_timeout_ms;
	client_update(c);
	return 0;
}

/*
 * May the reactor read this client with the round's other reads (reactor.h)? When
 * client_read would: a client with no conns entry (a local client's may be the kernel's
 * to read, K2), before its end, and within the head limit. A remote client in egress_hash
 * reads batched too, though it writes in place: the kernel's egress splice writes into its
 * socket and never reads it. Its bytes read before the event's first look (splice_check)
 * meet the arming as a recv() a moment later would have: PREARMED is taken back, TAKING
 * leaves them for the tick, DONE ends the exchange first. (DONE is set in sk_msg just
 * before the kernel queues the response's bytes: the race the README's known limits of
 * the splice name, the same with or without this read.)
 */
static bool client_read_ok(struct reactor_ev *ev)
{
	struct client *c = ev->owner;

	return !c->kc && reactor_batching(c->w->r) && !c->kroute_used && !c->eof &&
	       c->state != C_CLOSING &&
	       !((c->state == C_HEAD || (c->x && c->x->req == REQ_DONE)) &&
		 c->in.len > swd_cfg.limits.max_header_bytes);
}

/* Writes what is buffered (at the round's end, if batched). Returns -1 when the client is
 * gone (and freed). */
int client_flush(struct client *c)
{
	return flush(c, true);
}

/* The same, never batched: what is buffered goes now. */
int client_flush_now(struct client *c)
{
	return flush(c, false);
}

/* Queues bytes for the client, writing directly when nothing waits before them (or at the
 * round's end, with the round's other writes). */
int client_send(struct client *c, const char *p, size_t n)
{
	bool later = c->state != C_CLOSING && client_batches(c), was_empty = !c->out.len;
	ssize_t sent = 0;

	if (!c->out.len && !later) {
		sent = send(c->ev.fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (sent < 0 && errno != EAGAIN && errno != EINTR) {
			client_close(c);
			return -1;
		}
		if (sent < 0)
			sent = 0;
	}
	if ((size_t)sent < n && buf_append(&c->out, p + sent, n - sent)) {
		client_close(c);
		return -1;
	}
	/* Bytes were waiting already: queued, or waiting for room (EPOLLOUT, which flushes
	 * them all). */
	return later && was_empty ? client_flush(c) : 0;
}

/*
 * Closes a connection with nothing more to ask, once what is buffered for it is out: its
 * last response may still wait for room, or for the round's batched writes.
 */
void client_end(struct client *c)
{
	if (!c->out.len) {
		client_close(c);
		return;
	}
	client_closing(c);
	client_flush(c);
}

/*
 * Closes a connection with a reset (SO_LINGER 0), dropping what it still holds: for a
 * response cut where its framing cannot say so (a close-delimited body), so that the
 * client sees a failure, not a clean end of a short body. client_close does the same by
 * itself when it drops bytes or a body under way (client_owed).
 */
void client_reset(struct client *c)
{
	tcp_reset_on_close(c->ev.fd);
	client_close(c);
}

/* The worker stops (the drain's deadline): the clients it still owes bytes to are reset as
 * the process exit closes them. */
void client_stop_all(struct worker *w)
{
	struct client *c;

	for (c = w->clients; c; c = c->next)
		if (client_owed(c))
			tcp_reset_on_close(c->ev.fd);
}

/*
 * Answers the current request (or a request that could not start) with an error of our own,
 * one line of text. close: the connection closes after it.
 */
int client_error(struct client *c, int status, bool close_after, const char *fmt, ...)
{
	char body[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(body, sizeof(body) - 1, fmt, ap);
	va_end(ap);
	if (n < 0 || n > (int)sizeof(body) - 2)
		n = sizeof(body) - 2;
	body[n++] = '\n';
	if (c->w->draining)
		close_after = true;
	if (buf_printf(&c->out,
		       "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
		       "%s\r\n",
		       status, http_reason(status) ? http_reason(status) : "Error", n,
		       close_after ? "Connection: close\r\n" : "") ||
	    buf_append(&c->out, body, n)) {
		client_close(c);
		return -1;
	}
	if (close_after)
		client_closing(c);
	return 0;
}

/* Bad requests by status, for /metrics. */
void count_bad_request(struct worker *w, int status)
{
	static const int statuses[SWD_NR_BAD] = SWD_BAD_STATUSES;
	int i;

	for (i = 0; i < SWD_NR_BAD; i++)
		if (statuses[i] == status)
			__atomic_fetch_add(&w->stats.bad_requests[i], 1, __ATOMIC_RELAXED);
}

/* The head being parsed; exchange_start reads it before the next parse. */
static __thread struct http_request scratch_req;

int client_process(struct client *c)
{
	struct worker *w = c->w;
	int ret;

	while (c->state == C_HEAD && c->in.len) {
		ret = http_parse_request(buf_head(&c->in), c->in.len, &swd_cfg.limits,
					 &scratch_req);
		if (ret == 0) {
			/* The head timeout runs from the first byte of the request. */
			if (c->deadline_ms > reactor_now_ms(w->r) + swd_cfg.header_timeout_ms)
				c->deadline_ms = reactor_now_ms(w->r) + swd_cfg.header_timeout_ms;
			break;
		}
		/* What the kernel decided of this request, if it did (K3). */
		c->handoff = kroute_handoff_take(c);
		if (ret < 0) {
			count_bad_request(w, -ret);
			/* Nothing after a bad head can be trusted: answer and close. */
			if (client_error(c, -ret, true, "%s",
					 http_reason(-ret) ? http_reason(-ret) : "Error"))
				return -1;
			break;
		}
		if (exchange_start(c, &scratch_req))
			return -1;
	}
	if (c->state == C_CLOSING)
		return client_flush(c);
	client_update(c);
	return 0;
}

static int client_read(struct client *c)
{
	ssize_t n;

	/* The client is sockwayd's before any byte of it is read (K2, or K6 for a request in
	 * flight): handling this event may have given it back to the kernel (K1) after the
	 * event's first look, and the kernel must not take bytes that follow ones sockwayd
	 * reads now, such as a body. 1: the kernel is sending a request of it this instant;
	 * the event comes again. */
	switch (kroute_client_event(c)) {
	case 0:
		break;
	case 1:
		return 0;
	default:
		return -1;
	}
	for (;;) {
		/* Heads and pipelined requests are bounded by the head limit (431 past it); a
		 * read batched for this event is taken all the same (its bytes are in). */
		if ((c->state == C_HEAD || (c->x && c->x->req == REQ_DONE)) &&
		    c->in.len > swd_cfg.limits.max_header_bytes && !c->ev.read_done)
			break;
		/* The round's batched read of this socket first (its bytes appended already). */
		if (!reactor_read_taken(&c->ev, &n)) {
			if (buf_reserve(&c->in, READ_CHUNK)) {
				client_close(c);
				return -1;
			}
			n = recv(c->ev.fd, buf_tail(&c->in), READ_CHUNK, 0);
			if (n > 0)
				c->in.len += n;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0) {
			client_close(c);
			return -1;
		}
		if (n == 0) {
			c->eof = true;
			break;
		}
		/* Stream body bytes as they come rather than hoarding them. */
		if (c->state == C_PROXY && c->x && c->x->req != REQ_DONE)
			break;
		if (n < READ_CHUNK)
			break;
	}
	if (c->state == C_HEAD) {
		if (client_process(c))
			return -1;
		if (c->eof && c->state == C_HEAD) {
			/* Closed between requests, or in the middle of a head: the last answer
			 * still goes out first. */
			client_end(c);
			return -1;
		}
		return 0;
	}
	if (c->state == C_PROXY && c->x) {
		struct exchange *x = c->x;
		enum xres ret = XR_GOES_ON;

		/* A pipelined request: its turn must not hang on a response that wakes
		 * nobody. */
		if (x->req == REQ_DONE && (c->in.len || c->eof) && x->splice != SPLICE_OFF)
			ret = splice_check(x, true);
		else if (x->req != REQ_DONE)
			ret = exchange_pump_request(x);
		if (ret == XR_CLIENT_GONE)
			return -1;
		if (ret == XR_GOES_ON && c->eof && x->req != REQ_DONE) {
			/* The body will never be whole: give up on this request. */
			if (exchange_fail(x, 400, "%s", "request body cut short") == XR_CLIENT_GONE)
				return -1;
		}
	}
	if (c->state == C_HEAD)
		return client_process(c);
	if (c->state == C_PROXY)
		client_update(c);
	return 0;
}

static void client_event(struct reactor *r, struct reactor_ev *ev, __u32 events)
{
	struct client *c = ev->owner;
	struct exchange *x;

	(void)r;
	/* The kernel's no more, before sockwayd reads (K2), or its exchange sockwayd's (K6). */
	if (c->kroute_used && kroute_client_event(c))
		return;
	/* The response the kernel passed on whole ends here (the client got it, and this
	 * is its next request or its close), before anything else is decided. */
	if (c->x && c->x->splice != SPLICE_OFF && splice_check(c->x, false) == XR_CLIENT_GONE)
		return;
	/* An error, or a peer gone both ways: nothing it asked can reach it any more. */
	if (events & (EPOLLERR | EPOLLHUP)) {
		client_close(c);
		return;
	}
	if (events & EPOLLOUT) {
		if (client_flush(c))
			return;
		/* A body in a pipe: out to the client, more in from the upstream. */
		if (c->x && c->x->pipe && pipe_pump(c->x) == XR_CLIENT_GONE)
			return;
		x = c->x;
		/* Room again downstream: let the upstream's bytes flow. */
		if (x && x->u && c->out.len < HIGH_WATER)
			upstream_update(x->u);
		if (!c->x && c->state == C_HEAD && c->in.len && client_process(c))
			return;
	}
	if (events & EPOLLIN) {
		if (client_read(c))
			return;
	}
	if (c->state != C_CLOSING)
		client_update(c);
}

static void client_accept_pause(struct worker *w)
{
	unsigned i;

	for (i = 0; i < w->nr_listeners; i++)
		reactor_mod(w->r, &w->listeners[i], 0);
	w->accept_paused = true;
	__atomic_fetch_add(&w->stats.accept_paused, 1, __ATOMIC_RELAXED);
}

void client_accept_resume(struct worker *w)
{
	unsigned i;

	if (!w->accept_paused)
		return;
	for (i = 0; i < w->nr_listeners; i++)
		reactor_mod(w->r, &w->listeners[i], EPOLLIN);
	w->accept_paused = false;
}

/*
 * Takes a remote client's socket out of egress_hash (sockops filed it there as a target of
 * the egress splice): its requests go to backends the kernel cannot reach, or the egress
 * splice is off, and its slot is better left to other clients. Nothing is ever redirected
 * into it, so nothing is dropped with it. Never while a splice to it is armed: callers have
 * an exchange whose upstream the kernel cannot reach, or none.
 */
void client_egress_drop(struct client *c)
{
	if (!c->egress)
		return;
	c->egress = false;
	if (!sw_egress_untrack(c->w->maps, &c->key))
		__atomic_fetch_add(&c->w->stats.clients_untracked, 1, __ATOMIC_RELAXED);
}

void client_accept(struct reactor *r, struct reactor_ev *ev, __u32 events)
{
	struct worker *w = ev->owner;
	struct sockaddr_storage ss;
	socklen_t len;
	struct client *c;
	int fd, one = 1;

	(void)events;
	for (;;) {
		len = sizeof(ss);
		fd = accept4(ev->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0 &&
		    (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)) {
			/* Out of descriptors: the connection stays in the backlog, the listener
			 * readable, and the worker would be woken for it again and again. The
			 * listeners rest until the next tick (client_accept_resume). */
			client_accept_pause(w);
			return;
		}
		if (fd < 0)
			return;
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

			/* A v4 client on a dual-stack socket reads as a v4 address. */
			if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
				inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], c->peer_ip,
					  sizeof(c->peer_ip));
			else
				inet_ntop(AF_INET6, &s6->sin6_addr, c->peer_ip, sizeof(c->peer_ip));
		} else {
			inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, c->peer_ip,
				  sizeof(c->peer_ip));
		}
		c->w = w;
		c->ev.fd = fd;
		c->ev.fn = client_event;
		c->ev.owner = c;
		c->ev.out = &c->out;
		c->ev.in = &c->in;
		c->ev.read_ok = client_read_ok;
		c->state = C_HEAD;
		c->deadline_ms = reactor_now_ms(r) + swd_cfg.header_timeout_ms;
		if (reactor_add(r, &c->ev, EPOLLIN)) {
			close(fd);
			free(c);
			continue;
		}
		/* Only a connection on the kernel path gets an entry: sockops let this end into
		 * sock_hash (its client is local and accelerated) before accept saw it. Others
		 * (remote clients, local ones not accelerated) skip the kernel path's bookkeeping
		 * on every request. */
		if (w->netns && !sw_conn_key(&c->key, w->netns, fd)) {
			if (sw_sock_tracked(w->maps, &c->key)) {
				c->pipe_ok = PIPE_NO;
				c->kc = sw_conn_claim(w->maps, &c->key, &w->reclaims);
				/* A splice into the client's socket checks by this cookie that
				 * sockwayd's socket, and so the client's, is still the one armed
				 * for (a tuple outlives its socket); kernel routing reads it
				 * there. Without it (0), no splice and no kernel routing. */
				len = sizeof(c->cookie);
				if (c->kc &&
				    getsockopt(fd, SOL_SOCKET, SO_COOKIE, &c->cookie, &len))
					c->cookie = 0;
			} else {
				/* Left out of sock_hash, no program runs on its sends (nor on
				 * those of an egress target): response bodies may be spliced into
				 * it (pipe.c). */
				c->pipe_ok = PIPE_YES;
				/* A remote client: its socket is in egress_hash, so that the
				 * kernel can send a local backend's response out of it. */
				c->egress = sw_sock_egress(w->maps, &c->key);
				/* The kernel checks it is this very socket by its cookie. */
				len = sizeof(c->cookie);
				if (c->egress &&
				    (swd_cfg.no_splice || swd_cfg.no_egress ||
				     getsockopt(fd, SOL_SOCKET, SO_COOKIE, &c->cookie, &len) ||
				     !c->cookie))
					client_egress_drop(c);
			}
		}
		if (c->kc)
			c->accel_seen = __atomic_load_n(&c->kc->accel_bytes, __ATOMIC_RELAXED);
		kroute_client_track(c);
		/* Its first request may be the kernel's already. */
		kroute_client_idle(c);
		c->next = w->clients;
		if (c->next)
			c->next->prev = c;
		w->clients = c;
		__atomic_fetch_add(&w->stats.connections, 1, __ATOMIC_RELAXED);
		__atomic_fetch_add(&w->stats.active, 1, __ATOMIC_RELAXED);
	}
}

void client_tick(struct worker *w)
{
	__u64 now = reactor_now_ms(w->r);
	struct client *c, *cn;

	for (c = w->clients; c; c = cn) {
		cn = c->next;
		if (c->deadline_ms > now)
			continue;
		if (c->state == C_HEAD && c->in.len) {
			/* A head that never finished arriving (slowloris). */
			count_bad_request(w, 408);
			if (!client_error(c, 408, true, "%s", "request head timeout"))
				client_flush(c);
		} else if (c->state == C_HEAD) {
			/* Idle at sockwayd, perhaps not at the kernel. */
			if (kroute_client_active(c)) {
				c->deadline_ms = now + swd_cfg.keepalive_timeout_ms;
				continue;
			}
			client_close(c);
		} else if (c->state == C_PROXY && c->x && c->x->req != REQ_DONE) {
			exchange_fail(c->x, 408, "%s", "request body timeout");
		} else if (c->state == C_PROXY && c->x && c->x->pipe && !c->x->u) {
			/* The rest of a body waits in a pipe for a client that takes nothing. */
			client_close(c);
		} else if (c->state == C_CLOSING) {
			client_close(c);
		}
	}
}

/*
 * A connection with no request in it is closed once it was answered: then it is idle between
 * requests, and HTTP clients open another for the next one. One not answered yet was accepted
 * for a request that has not come whole (or at all) yet, and so is one with part of a head:
 * closing them would lose a request that the client cannot tell from one the server saw.
 * They are kept until the request is answered (with Connection: close), or the head's
 * deadline or the drain's passes.
 */
bool client_close_idle(struct worker *w)
{
	struct client *c, *cn;
	bool waiting = false;

	for (c = w->clients; c; c = cn) {
		cn = c->next;
		/* Its last answer still going out: the drain waits for it too. */
		if (c->state == C_CLOSING && c->out.len)
			waiting = true;
		if (c->state != C_HEAD)
			continue;
		if (c->answered || (c->kc && __atomic_load_n(&c->kc->kx_done, __ATOMIC_RELAXED)))
			c->answered = true;
		if (!c->answered || c->in.len) {
			waiting = true;
		} else if (c->out.len) {
			/* Answered, the answer not all out yet (room, or the round's batched
			 * writes): it closes once it is. */
			waiting = true;
			client_end(c);
		} else {
			client_close(c);
		}
	}
	return waiting;
}
