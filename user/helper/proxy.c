// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * Client connections, upstream connections, and the exchange (one request and its
 * response) between them.
 *
 * A client connection is in one of three states:
 *   HEAD     waiting for a request head (idle keep-alive, or a head arriving);
 *   PROXY    an exchange runs: its body streams up, then the response streams down;
 *   CLOSING  an answer is being flushed, then the connection closes.
 * Pipelined requests wait in the client's input buffer until the exchange before them is
 * done, so responses go out in order. Both directions stream with a high-water mark: a side
 * stops reading while the other side's output buffer is full.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sockway/hash.h"
#include "conns.h"
#include "headers.h"
#include "log.h"
#include "sockwayd.h"

/* Output beyond this pauses the other side's reads. */
#define HIGH_WATER (256 * 1024)
/* One read takes at most this much. */
#define READ_CHUNK (64 * 1024)

enum client_state { C_HEAD, C_PROXY, C_CLOSING };

struct exchange;

struct client {
	struct reactor_ev ev;
	struct worker *w;
	struct client *prev, *next;
	char peer_ip[INET6_ADDRSTRLEN];
	struct buf in, out;
	enum client_state state;
	__u64 deadline_ms;
	bool eof; /* the client shut its sending side */
	bool pipelines; /* it sent a request while a response was armed (splice_check) */
	struct exchange *x;
	struct sw_conn *kc;	/* its conns entry (kernel fast path), or NULL */
	struct sw_sock_key key; /* its key in sock_hash, when kc */
	__u64 accel_seen;	/* kc->accel_bytes already added to a cell */
};

struct upstream {
	struct reactor_ev ev;
	struct worker *w;
	struct upstream *prev, *next; /* every upstream of the worker */
	struct upstream *pool_next;   /* idle pool of its replica */
	__u16 backend_id;
	__u8 replica;
	bool connecting;
	bool idle;
	struct sw_addr addr;
	struct buf in, out;
	struct exchange *x;
	__u64 deadline_ms;
	struct sw_conn *kc; /* its conns entry (kernel fast path), or NULL */
	__u64 accel_seen;   /* kc->accel_bytes already added to a cell */
	bool splice_used;   /* a splice was armed on kc at some point */
};

struct exchange {
	struct client *c;
	struct upstream *u;
	__u32 method_bit;
	int version_minor;
	bool keep_alive; /* what the client asked for */
	bool is_head;
	/* request body */
	enum http_body req_body;
	__u64 req_left;
	struct http_chunked req_chunk;
	bool req_done;
	bool body_sent;	      /* body bytes went to an upstream */
	bool body_copy_short; /* the body outgrew body_copy: no replay, no shadow */
	bool upstream_spoke;  /* a byte of a response came (even a 1xx): no replay */
	struct buf head;      /* the request head as sent upstream */
	struct buf body_copy; /* the body bytes sent so far, for a retry and the shadows */
	/* routing */
	__u16 endpoint_id, backend_id, cell;
	__u8 replica;
	int tries;
	/* response */
	int status;
	bool resp_started; /* a final response head arrived */
	bool resp_sent;	   /* bytes of it reached the client's buffer */
	bool resp_done;
	bool resp_keepalive; /* the upstream connection can be reused */
	bool client_keep;    /* the client connection stays open afterwards */
	enum http_body resp_body;
	__u64 resp_left;
	struct http_chunked resp_chunk;
	bool splice_armed;    /* the response body may go backend -> client in the kernel */
	bool splice_whole;    /* ... and its head too: armed before it came (PREARMED) */
	bool splice_whole_tried; /* once per exchange (after a 1xx, the kernel could take
				  * the final head while sockwayd still forwards the 1xx) */
	bool spliced;	      /* some of it did */
	__u64 splice_seen;    /* bytes the kernel had moved at the last timer check */
	__u64 t_start_us;
	__u64 t_end_us; /* when the kernel passed the whole response on (DONE), or 0 */
	__u64 bytes_in, bytes_out;
	struct shadow *shadows[SW_MAX_SHADOWS];
	unsigned nr_shadows;
};

static void client_event(struct reactor *r, struct reactor_ev *ev, __u32 events);
static void upstream_event(struct reactor *r, struct reactor_ev *ev, __u32 events);
/*
 * Functions that can end an exchange return 0 while it goes on, 1 when it is over (x is
 * freed, the client lives), -1 when the client is gone too, and 2 when it goes on over a
 * new upstream connection (the old one is freed). Callers stop touching x on 1 and -1 and
 * the upstream they held on anything but 0.
 */
static int client_process(struct client *c);
static int exchange_upstream_failed(struct exchange *x, enum sw_upstream_error kind);
static int upstream_start(struct exchange *x);
static void splice_arm(struct exchange *x);
static void splice_abandon(struct exchange *x);
static int splice_check(struct exchange *x, bool take_back);

static const char *reason_phrase(int status)
{
	switch (status) {
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 408: return "Request Timeout";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 417: return "Expectation Failed";
	case 431: return "Request Header Fields Too Large";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default: return "Error";
	}
}

/* ---- client connection -------------------------------------------------------------- */

static void client_update(struct client *c)
{
	struct exchange *x = c->x;
	__u32 mask = 0;

	if (c->state == C_HEAD)
		mask |= EPOLLIN;
	else if (c->state == C_PROXY && !x->req_done)
		/* Body bytes wait in the kernel until the upstream can take them. */
		mask |= x->u && !x->u->connecting && x->u->out.len < HIGH_WATER ? EPOLLIN : 0;
	else if (c->state == C_PROXY && c->in.len < swd_cfg.limits.max_header_bytes && !c->eof)
		mask |= EPOLLIN; /* a pipelined request, kept for later */
	if (c->out.len)
		mask |= EPOLLOUT;
	reactor_mod(c->w->r, &c->ev, mask);
}

static void upstream_update(struct upstream *u)
{
	__u32 mask = 0;

	if (u->connecting || u->out.len)
		mask |= EPOLLOUT;
	if (u->idle || (u->x && !u->x->resp_done && u->x->c && u->x->c->out.len < HIGH_WATER))
		mask |= EPOLLIN;
	reactor_mod(u->w->r, &u->ev, mask);
}

/* A conns entry whose splice is over, waiting a tick before it is freed. */
struct deferred_entry {
	struct sw_conn *e;
	__u64 free_at_ms;
	struct deferred_entry *next;
};

/*
 * Frees the conns entry of an upstream being closed. One that had a splice armed may still
 * be written by an sk_msg run that started before (its done and left counts, its head
 * scan): freed now, the way could be claimed and armed by another connection in between.
 * So the splice is stopped now (the kernel leaves ACTIVE by compare-and-swap only, and
 * starts only from an armed state), and the entry is freed at the second tick from now
 * (100-200 ms), long after any such run.
 */
static void upstream_release_entry(struct upstream *u)
{
	struct worker *w = u->w;
	struct deferred_entry *d;

	__atomic_store_n(&u->kc->splice, SW_SPLICE_IDLE, __ATOMIC_RELEASE);
	d = u->splice_used ? malloc(sizeof(*d)) : NULL;
	if (!d) {
		sw_conn_release(w->maps, u->kc);
		return;
	}
	d->e = u->kc;
	d->free_at_ms = reactor_now_ms(w->r) + 100;
	d->next = w->deferred;
	w->deferred = d;
}

/* Frees the deferred entries whose time has come (at exit, sw_conns_release_mine frees
 * what is left). */
static void deferred_entries_free(struct worker *w)
{
	__u64 now = reactor_now_ms(w->r);
	struct deferred_entry **p = &w->deferred, *d;

	while ((d = *p)) {
		if (d->free_at_ms > now) {
			p = &d->next;
			continue;
		}
		sw_conn_release(w->maps, d->e);
		*p = d->next;
		free(d);
	}
}

static void upstream_close(struct upstream *u)
{
	struct worker *w = u->w;

	if (u->x)
		u->x->u = NULL;
	if (u->kc)
		upstream_release_entry(u);
	reactor_del(w->r, &u->ev);
	close(u->ev.fd);
	if (u->prev)
		u->prev->next = u->next;
	else
		w->upstreams = u->next;
	if (u->next)
		u->next->prev = u->prev;
	buf_free(&u->in);
	buf_free(&u->out);
	free(u);
}

/* Removes u from its replica's idle pool. */
static void pool_remove(struct upstream *u)
{
	struct worker *w = u->w;
	struct upstream **p = &w->idle[u->backend_id][u->replica];

	for (; *p; p = &(*p)->pool_next) {
		if (*p == u) {
			*p = u->pool_next;
			w->nr_idle[u->backend_id][u->replica]--;
			break;
		}
	}
	u->idle = false;
	u->pool_next = NULL;
}

/* RFC 9110 9.2.2: methods a client may repeat without changing the outcome. */
static bool method_idempotent(__u32 method_bit)
{
	return method_bit & (SW_METHOD_GET | SW_METHOD_HEAD | SW_METHOD_OPTIONS | SW_METHOD_TRACE |
			     SW_METHOD_PUT | SW_METHOD_DELETE);
}

/* Did the backend close the connection (its FIN, seen by sockops, may be unread yet)? */
static bool upstream_peer_closed(const struct upstream *u)
{
	return u->kc && __atomic_load_n(&u->kc->peer_closed, __ATOMIC_RELAXED);
}

static void pool_put(struct upstream *u)
{
	struct worker *w = u->w;

	u->x = NULL;
	if (w->draining || w->nr_idle[u->backend_id][u->replica] >= swd_cfg.pool_size ||
	    upstream_peer_closed(u)) {
		upstream_close(u);
		return;
	}
	u->idle = true;
	u->deadline_ms = reactor_now_ms(w->r) + swd_cfg.keepalive_timeout_ms;
	u->pool_next = w->idle[u->backend_id][u->replica];
	w->idle[u->backend_id][u->replica] = u;
	w->nr_idle[u->backend_id][u->replica]++;
	upstream_update(u);
}

/*
 * Has an idle connection been closed (or spoken) by the backend, with sockwayd not told yet?
 * A request that must not be retried (exchange_retry) asks before it goes: the backend's
 * FIN is often there already, and a request sent into it fails for sure. One syscall.
 */
static bool upstream_stale(const struct upstream *u)
{
	char b;
	ssize_t n = recv(u->ev.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);

	return !(n < 0 && (errno == EAGAIN || errno == EINTR));
}

/* An idle connection to exactly this address, or NULL. check: make sure the backend did
 * not close it (upstream_stale). */
static struct upstream *pool_get(struct worker *w, __u16 backend, __u8 replica,
				 const struct sw_addr *addr, bool check)
{
	struct upstream *u;

	while ((u = w->idle[backend][replica])) {
		pool_remove(u);
		if (!memcmp(&u->addr, addr, sizeof(*addr)) && !upstream_peer_closed(u) &&
		    !(check && upstream_stale(u)))
			return u;
		/* The backend's replicas changed since this connection was pooled, or the
		 * backend closed it. */
		upstream_close(u);
	}
	return NULL;
}

/* Bytes the kernel moved on a connection since *seen, which moves on. */
static __u64 accel_delta(struct sw_conn *kc, __u64 *seen)
{
	__u64 now = __atomic_load_n(&kc->accel_bytes, __ATOMIC_RELAXED), d = now - *seen;

	*seen = now;
	return d;
}

static void exchange_free(struct exchange *x)
{
	unsigned i;

	/* Shadows that were never launched go with their request (and count as dropped). */
	for (i = 0; i < x->nr_shadows; i++)
		if (x->shadows[i])
			shadow_discard(x->shadows[i]);
	buf_free(&x->head);
	buf_free(&x->body_copy);
	free(x);
}

static void client_close(struct client *c)
{
	struct worker *w = c->w;
	struct exchange *x = c->x;

	if (x) {
		if (x->u) {
			x->u->x = NULL;
			upstream_close(x->u);
		}
		w->nr_exchanges--;
		exchange_free(x);
	}
	if (c->kc)
		sw_conn_release(c->w->maps, c->kc);
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

/* Writes what is buffered. Returns -1 when the client is gone (and freed). */
static int client_flush(struct client *c)
{
	ssize_t n;

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
	}
	if (!c->out.len && c->state == C_CLOSING) {
		client_close(c);
		return -1;
	}
	return 0;
}

/* Queues bytes for the client, writing directly when nothing waits before them. */
static int client_send(struct client *c, const char *p, size_t n)
{
	ssize_t sent = 0;

	if (!c->out.len) {
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
	return 0;
}

/*
 * Answers the current request (or a request that could not start) with an error of our own,
 * one line of text. close: the connection closes after it.
 */
static int client_error(struct client *c, int status, bool close_after, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int client_error(struct client *c, int status, bool close_after, const char *fmt, ...)
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
		       status, reason_phrase(status), n,
		       close_after ? "Connection: close\r\n" : "") ||
	    buf_append(&c->out, body, n)) {
		client_close(c);
		return -1;
	}
	if (close_after)
		c->state = C_CLOSING;
	return 0;
}

static void exchange_count_status(struct exchange *x, int status)
{
	struct sw_counters *ctr = worker_cell(x->c->w, x->cell);

	if (ctr)
		counters_status(ctr, status);
}

static void exchange_count_error(struct exchange *x, enum sw_upstream_error kind)
{
	struct sw_counters *ctr = worker_cell(x->c->w, x->cell);

	if (ctr)
		counters_add(&ctr->errors[kind], 1);
}

static void exchange_launch_shadows(struct exchange *x)
{
	unsigned i;

	for (i = 0; i < x->nr_shadows; i++) {
		struct shadow *s = x->shadows[i];

		if (!s)
			continue;
		x->shadows[i] = NULL;
		if (x->body_copy_short || shadow_append_body(s, buf_head(&x->body_copy),
							     x->body_copy.len)) {
			/* The body did not fit the copy: this sample is lost, and counted. */
			shadow_discard(s);
			continue;
		}
		shadow_launch(s, x->status);
	}
}

/*
 * The exchange is over (answered, by the upstream or by us). Counts it, returns the upstream
 * connection to its pool when it can be reused, and readies the client for the next request.
 * Returns 1, or -1 when the client is gone.
 */
static int exchange_finish(struct exchange *x)
{
	struct client *c = x->c;
	struct worker *w = c->w;
	struct sw_counters *ctr = worker_cell(w, x->cell);
	struct upstream *u = x->u;

	if (ctr) {
		counters_add(&ctr->bytes_from_client, x->bytes_in);
		counters_add(&ctr->bytes_to_client, x->bytes_out);
		/* What the kernel moved on both connections since the exchange started (the
		 * request head's bytes went to its cell then). The client's side of a response
		 * the kernel passed on whole was counted when sockwayd armed it, and by now may
		 * hold the next request's bytes: those are the next exchange's. */
		if (c->kc && !x->t_end_us)
			counters_add(&ctr->accel_bytes, accel_delta(c->kc, &c->accel_seen));
		if (u && u->kc)
			counters_add(&ctr->accel_bytes, accel_delta(u->kc, &u->accel_seen));
		counters_latency(ctr, (x->t_end_us ? x->t_end_us : now_us()) - x->t_start_us);
	}
	if (x->req_done)
		exchange_launch_shadows(x);
	/*
	 * Bytes past the body after a splice: the kernel counted bytes it then failed to
	 * deliver (memory pressure; the backend sent them again), so the client is short of
	 * some. Its connection cannot be trusted to frame the next response: close it.
	 */
	if (x->spliced && u && u->in.len)
		x->client_keep = false;
	if (u) {
		u->x = NULL;
		x->u = NULL;
		if (x->resp_keepalive && x->req_done && x->resp_done && !u->in.len)
			pool_put(u);
		else
			upstream_close(u);
	}
	/* A request whose body was not read to its end leaves the connection unusable. */
	if (!x->req_done)
		x->client_keep = false;
	c->x = NULL;
	w->nr_exchanges--;
	if (!x->client_keep || c->eof || w->draining) {
		exchange_free(x);
		c->state = C_CLOSING;
		return client_flush(c) ? -1 : 1;
	}
	exchange_free(x);
	c->state = C_HEAD;
	c->deadline_ms = reactor_now_ms(w->r) + swd_cfg.keepalive_timeout_ms;
	client_update(c);
	return 1;
}

/* Ends the exchange with an error response of ours. Returns 1, or -1 if the client is gone. */
static int exchange_fail(struct exchange *x, int status, const char *fmt, const char *what)
{
	struct client *c = x->c;

	splice_abandon(x);
	if (x->resp_sent) {
		/* Part of the upstream's response is out: the client can only see a close. */
		x->client_keep = false;
		x->req_done = x->req_done && x->resp_done;
		return exchange_finish(x);
	}
	x->status = status;
	exchange_count_status(x, status);
	x->client_keep = x->keep_alive && x->req_done;
	if (client_error(c, status, !x->client_keep, fmt, what))
		return -1;
	return exchange_finish(x);
}

/* Sends bytes to the upstream, buffering what the socket does not take now. */
static int upstream_send(struct upstream *u, const char *p, size_t n)
{
	ssize_t sent = 0;

	if (!u->out.len && !u->connecting) {
		sent = send(u->ev.fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (sent < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		if (sent < 0)
			sent = 0;
	}
	if ((size_t)sent < n && buf_append(&u->out, p + sent, n - sent))
		return -ENOMEM;
	return 0;
}

static int upstream_flush(struct upstream *u)
{
	ssize_t n;

	while (u->out.len) {
		n = send(u->ev.fd, buf_head(&u->out), u->out.len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n <= 0)
			return n < 0 ? -errno : -EPIPE;
		buf_consume(&u->out, n);
	}
	return 0;
}

/* A chunked body re-framed (http_chunked_recode), on its way to the other side. */
static __thread char recode_buf[READ_CHUNK + HTTP_CHUNK_RECODE_SLACK];

/* Moves request body bytes from the client's buffer to the upstream, as much as the
 * upstream takes. */
static int exchange_pump_request(struct exchange *x)
{
	struct client *c = x->c;
	struct upstream *u = x->u;
	size_t n, consumed;
	bool done = false;
	int err;

	while (!x->req_done && u && !u->connecting && c->in.len && u->out.len < HIGH_WATER) {
		const char *p = buf_head(&c->in);

		if (x->req_body == HTTP_BODY_LENGTH) {
			n = c->in.len < x->req_left ? c->in.len : x->req_left;
			consumed = n;
			x->req_left -= n;
			done = !x->req_left;
		} else {
			/* Re-framed as sockwayd's own chunks (http.h). */
			err = http_chunked_recode(&x->req_chunk, p,
						  c->in.len < READ_CHUNK ? c->in.len : READ_CHUNK,
						  &consumed, &done, recode_buf, &n);
			if (err)
				return exchange_fail(x, 400, "%s", "invalid chunked request body");
			if (x->req_chunk.data_bytes > swd_cfg.limits.max_body)
				return exchange_fail(x, 413, "%s", "request body too large");
			p = recode_buf;
		}
		if (!x->body_copy_short) {
			if (x->body_copy.len + n <= swd_cfg.body_copy_max)
				buf_append(&x->body_copy, p, n);
			else
				x->body_copy_short = true;
		}
		err = upstream_send(u, p, n);
		x->body_sent = true;
		x->bytes_in += consumed;
		buf_consume(&c->in, consumed);
		if (err)
			return exchange_upstream_failed(x, SW_ERR_RESET);
		if (done) {
			x->req_done = true;
			u->deadline_ms = reactor_now_ms(c->w->r) + swd_cfg.response_timeout_ms;
		}
	}
	if (x->req_done && x->resp_started)
		exchange_launch_shadows(x);
	if (!x->req_done)
		c->deadline_ms = reactor_now_ms(c->w->r) + swd_cfg.body_timeout_ms;
	client_update(c);
	if (x->u)
		upstream_update(x->u);
	return 0;
}

/* Picks a replica of the exchange's backend: round robin, skipping those that refused. */
static int pick_replica(struct exchange *x, const struct sw_backend *be)
{
	struct worker *w = x->c->w;
	__u64 now = reactor_now_ms(w->r);
	__u32 i, idx, nr = be->nr_replicas;

	for (i = 0; i < nr; i++) {
		idx = w->rr[x->backend_id]++ % nr;
		/* A retry goes elsewhere when there is an elsewhere. */
		if (x->tries && idx == x->replica && nr > 1)
			continue;
		if (w->down_until[x->backend_id][idx] > now)
			continue;
		return idx;
	}
	return -1;
}

static struct upstream *upstream_connect(struct worker *w, __u16 backend, __u8 replica,
					 const struct sw_addr *addr)
{
	struct upstream *u;
	int fd;

	fd = tcp_connect_start(addr);
	if (fd < 0)
		return NULL;
	u = calloc(1, sizeof(*u));
	if (!u) {
		close(fd);
		return NULL;
	}
	u->w = w;
	u->ev.fd = fd;
	u->ev.fn = upstream_event;
	u->ev.owner = u;
	u->backend_id = backend;
	u->replica = replica;
	u->addr = *addr;
	u->connecting = true;
	u->deadline_ms = reactor_now_ms(w->r) + swd_cfg.connect_timeout_ms;
	if (reactor_add(w->r, &u->ev, EPOLLOUT)) {
		close(fd);
		free(u);
		return NULL;
	}
	u->next = w->upstreams;
	if (u->next)
		u->next->prev = u;
	w->upstreams = u;
	return u;
}

/* The connection is up: send the head and whatever body there is to replay or pump. */
static int upstream_begin(struct exchange *x)
{
	struct upstream *u = x->u;
	int err;

	/* A request that is all here: its response may be the kernel's to pass on. Armed
	 * before it goes out, so that the first send of a quick backend finds it armed. */
	if (x->req_done && !x->body_sent)
		splice_arm(x);
	err = upstream_send(u, buf_head(&x->head), x->head.len);
	if (!err && x->body_sent)
		err = upstream_send(u, buf_head(&x->body_copy), x->body_copy.len);
	if (err)
		return exchange_upstream_failed(x, SW_ERR_RESET);
	if (x->req_done)
		u->deadline_ms = reactor_now_ms(x->c->w->r) + swd_cfg.response_timeout_ms;
	return exchange_pump_request(x);
}

/* Attaches the exchange to an upstream connection (pooled or new). */
static int upstream_start(struct exchange *x)
{
	struct worker *w = x->c->w;
	const struct sw_backend *be = &w->snap->be[x->backend_id];
	struct upstream *u;
	int idx;

	if (!(be->flags & SW_F_IN_USE) || !be->nr_replicas)
		return exchange_fail(x, 503, "%s", "the backend has no replica");
	idx = pick_replica(x, be);
	if (idx < 0)
		return exchange_fail(x, 503, "no replica of backend %s is reachable", be->name);
	x->replica = idx;
	u = pool_get(w, x->backend_id, idx, &be->replicas[idx], !method_idempotent(x->method_bit));
	if (!u)
		u = upstream_connect(w, x->backend_id, idx, &be->replicas[idx]);
	if (!u) {
		w->down_until[x->backend_id][idx] = reactor_now_ms(w->r) + swd_cfg.down_ms;
		exchange_count_error(x, SW_ERR_CONNECT_REFUSED);
		/* Nothing was sent: any request may go elsewhere (exchange_retry). */
		if (x->tries++ < 1) {
			__atomic_fetch_add(&w->stats.retries[SWD_RETRY_CONNECT], 1,
					   __ATOMIC_RELAXED);
			return upstream_start(x);
		}
		return exchange_fail(x, 503, "no replica of backend %s is reachable", be->name);
	}
	u->x = x;
	x->u = u;
	if (u->connecting) {
		upstream_update(u);
		client_update(x->c);
		return 0;
	}
	return upstream_begin(x);
}

/*
 * May a failed request go again, to another replica? Only while nothing of a response came
 * (the client has seen nothing) and sockwayd still holds the whole request (no body, or
 * all of it in the copy), once, and only when running it twice cannot hurt:
 *   - the connection never carried it (connect refused, failed or timed out): any method;
 *   - the connection broke before any response byte: idempotent methods only (the backend
 *     may have acted on it);
 *   - no response in time: idempotent methods, and only with --retry-on-timeout (the
 *     backend is most likely still running it).
 * As nginx's proxy_next_upstream "error" (non_idempotent off) and Envoy's retry_on
 * "connect-failure" plus, for idempotent requests, "reset".
 */
static enum swd_retry exchange_retry(const struct exchange *x, enum sw_upstream_error kind,
				     bool unsent)
{
	bool replayable = !x->body_sent || !x->body_copy_short;

	if (x->resp_started || x->upstream_spoke || !replayable || x->tries >= 1 ||
	    kind == SW_ERR_BAD_RESPONSE)
		return SWD_RETRY_NONE;
	if (kind == SW_ERR_CONNECT_REFUSED || unsent)
		return SWD_RETRY_CONNECT;
	if (!method_idempotent(x->method_bit))
		return SWD_RETRY_NONE;
	if (kind == SW_ERR_RESET)
		return SWD_RETRY_RESET;
	return swd_cfg.retry_on_timeout ? SWD_RETRY_TIMEOUT : SWD_RETRY_NONE;
}

/*
 * The upstream failed before or during the response. Retries on another replica when
 * exchange_retry allows it, else answers 502, 503 or 504.
 */
static int exchange_upstream_failed(struct exchange *x, enum sw_upstream_error kind)
{
	struct worker *w = x->c->w;
	struct upstream *u = x->u;
	/* Still connecting: not one byte of the request went out. */
	bool unsent = u && u->connecting;
	enum swd_retry retry;

	/* First, so that a response the kernel started is not retried nor answered. */
	splice_abandon(x);
	exchange_count_error(x, kind);
	if (u) {
		u->x = NULL;
		x->u = NULL;
		upstream_close(u);
	}
	if (kind == SW_ERR_CONNECT_REFUSED || kind == SW_ERR_TIMEOUT)
		w->down_until[x->backend_id][x->replica] = reactor_now_ms(w->r) + swd_cfg.down_ms;
	retry = exchange_retry(x, kind, unsent);
	if (retry != SWD_RETRY_NONE) {
		int ret;

		x->tries++;
		__atomic_fetch_add(&w->stats.retries[retry], 1, __ATOMIC_RELAXED);
		ret = upstream_start(x);
		/* The exchange goes on, but on another connection: the caller's u is gone. */
		return ret ? ret : 2;
	}
	switch (kind) {
	case SW_ERR_CONNECT_REFUSED:
		return exchange_fail(x, 503, "%s", "no replica of the backend is reachable");
	case SW_ERR_TIMEOUT:
		return exchange_fail(x, 504, "%s", "the backend did not answer in time");
	default:
		return exchange_fail(x, 502, "%s", "the backend failed to answer");
	}
}

/* Bad requests by status, for /metrics. */
static void count_bad_request(struct worker *w, int status)
{
	static const int statuses[6] = { 400, 413, 414, 417, 431, 505 };
	int i;

	for (i = 0; i < 6; i++)
		if (statuses[i] == status)
			__atomic_fetch_add(&w->stats.bad_requests[i], 1, __ATOMIC_RELAXED);
}

static __thread struct http_request scratch_req;

/*
 * The decision for a parsed head (include/sockway/decide.h, the code `sockway explain` and
 * the kernel run too): route on the normal path and Host, then pick by the endpoint's shard
 * key. d->norm (w->norm) holds the normal path. Returns 0, or the status to answer.
 */
static int exchange_decide(struct worker *w, const struct http_request *req,
			   struct sw_decide_state *d, const char **why)
{
	const struct sw_endpoint *ep;
	const struct http_header *key;
	const char *q = memchr(req->path, '?', req->path_len);
	int err;

	worker_policy_refresh(w);
	if (buf_reserve(&w->norm, req->path_len)) {
		*why = "out of memory";
		return 503;
	}
	memset(d, 0, sizeof(*d));
	d->path = (const __u8 *)req->path;
	d->path_len = q ? (__u32)(q - req->path) : req->path_len;
	d->host = (const __u8 *)req->host;
	d->host_len = req->host ? req->host_len : 0;
	d->norm = (__u8 *)buf_tail(&w->norm);
	d->method = req->method_bit;
	err = snapshot_decide_route(w->snap, d);
	if (err == -ENOENT) {
		*why = "no route for";
		return 404;
	}
	if (err) {
		*why = err == -E2BIG ? "a '..' deeper than 64 segments in" : "refused: path or Host of";
		return 400;
	}
	ep = &w->snap->ep[d->endpoint_id];
	key = http_find_header(req->headers, req->nr_headers, ep->shard_header);
	if (key && key->value_len) {
		d->key = (const __u8 *)key->value;
		d->key_len = key->value_len;
	}
	d->rnd = worker_random(w);
	if (snapshot_decide_pick(w->snap, d)) {
		*why = "no backend in the endpoint of";
		return 503;
	}
	return 0;
}

/* Drops a shadow sample that could not be made, counting it. */
static void exchange_shadow_drop(struct worker *w, const struct sw_shadow *sh)
{
	struct sw_counters *ctr = worker_cell(w, sh->cell);

	if (ctr)
		counters_add(&ctr->shadow_drops, 1);
	__atomic_fetch_add(&w->stats.shadow_drops, 1, __ATOMIC_RELAXED);
}

/* Each shadow of the endpoint draws on its own, keyed or not: shadows sample requests, not
 * users. A sample gets its own head: marked, credentials removed. */
static void exchange_sample_shadows(struct exchange *x, const struct http_request *req,
				    const struct head_request_opts *primary)
{
	struct worker *w = x->c->w;
	const struct sw_endpoint *ep = &w->snap->ep[x->endpoint_id];
	struct head_request_opts o = *primary;
	unsigned i, underscores;
	struct shadow *s;

	o.shadow = true;
	o.shadow_keep = swd_cfg.shadow_keep;
	o.nr_shadow_keep = swd_cfg.nr_shadow_keep;
	o.shadow_strip = swd_cfg.strip;
	o.nr_shadow_strip = swd_cfg.nr_strip;
	for (i = 0; i < ep->nr_shadows && i < SW_MAX_SHADOWS; i++) {
		const struct sw_shadow *sh = &ep->shadows[i];
		struct buf head = {};

		if (!sw_shadow_sampled(sh, worker_random(w)))
			continue;
		if ((req->body == HTTP_BODY_LENGTH && req->content_length > swd_cfg.body_copy_max) ||
		    head_request_build(&head, req, &o, &underscores)) {
			exchange_shadow_drop(w, sh);
			buf_free(&head);
			continue;
		}
		s = shadow_new(w, x->endpoint_id, sh, buf_head(&head), head.len, x->is_head);
		buf_free(&head);
		if (s)
			x->shadows[x->nr_shadows++] = s;
	}
}

/*
 * Starts the exchange of a parsed head: route, pick, shadows, upstream. Returns -1 when the
 * client is gone, else 0 (whether or not the exchange is already over).
 */
static int exchange_start(struct client *c, const struct http_request *req)
{
	struct worker *w = c->w;
	struct sw_decide_state d;
	struct head_request_opts o = {};
	struct sw_counters *ctr;
	struct exchange *x;
	const char *why = "";
	unsigned underscores = 0;
	bool has_body = req->body == HTTP_BODY_CHUNKED ||
			(req->body == HTTP_BODY_LENGTH && req->content_length);
	int status;

	status = exchange_decide(w, req, &d, &why);
	if (status) {
		int ret;

		if (status == 404)
			__atomic_fetch_add(&w->stats.unrouted, 1, __ATOMIC_RELAXED);
		else if (status == 400)
			count_bad_request(w, 400);
		/* The body of a request we do not route is not read: close after the answer. */
		ret = client_error(c, status, has_body || !req->keep_alive || status != 404,
				   "%s %.*s", why, (int)(req->path_len < 200 ? req->path_len : 200),
				   req->path);
		if (!ret)
			buf_consume(&c->in, req->head_len);
		return ret;
	}

	x = calloc(1, sizeof(*x));
	if (!x) {
		client_close(c);
		return -1;
	}
	x->c = c;
	x->t_start_us = now_us();
	x->method_bit = req->method_bit;
	x->is_head = req->method_bit == SW_METHOD_HEAD;
	x->version_minor = req->version_minor;
	x->keep_alive = req->keep_alive;
	x->endpoint_id = d.endpoint_id;
	x->backend_id = d.pick.backend_id;
	x->cell = d.pick.cell;
	x->bytes_in = req->head_len;
	x->req_body = req->body;
	x->req_left = req->content_length;
	x->req_done = !has_body;
	if (req->body == HTTP_BODY_CHUNKED)
		http_chunked_init(&x->req_chunk);
	c->x = x;
	c->state = C_PROXY;
	w->nr_exchanges++;
	ctr = worker_cell(w, x->cell);
	if (ctr) {
		counters_add(&ctr->requests, 1);
		if (c->kc)
			counters_add(&ctr->accel_bytes, accel_delta(c->kc, &c->accel_seen));
	}
	/* The backend gets the path that was routed, and the query as it came. */
	o.path = (const char *)d.norm;
	o.path_len = d.norm_len;
	o.query = req->path + d.path_len;
	o.query_len = req->path_len - d.path_len;
	o.peer_ip = c->peer_ip;
	if (head_request_build(&x->head, req, &o, &underscores)) {
		client_close(c);
		return -1;
	}
	if (underscores)
		__atomic_fetch_add(&w->stats.underscore_headers, underscores, __ATOMIC_RELAXED);
	exchange_sample_shadows(x, req, &o);
	/* req points into c->in: its head is consumed only now that every head is built,
	 * and before the body (the rest of c->in) is pumped. */
	buf_consume(&c->in, req->head_len);
	if (req->expect_continue && !x->req_done &&
	    client_send(c, "HTTP/1.1 100 Continue\r\n\r\n", 25))
		return -1;
	return upstream_start(x) < 0 ? -1 : 0;
}

/* Parses and starts requests while the client is ready for one. Returns -1 if gone. */
static int client_process(struct client *c)
{
	struct worker *w = c->w;
	int ret;

	while (c->state == C_HEAD && c->in.len) {
		ret = http_parse_request(buf_head(&c->in), c->in.len, &swd_cfg.limits, &scratch_req);
		if (ret == 0) {
			/* The head timeout runs from the first byte of the request. */
			if (c->deadline_ms > reactor_now_ms(w->r) + swd_cfg.header_timeout_ms)
				c->deadline_ms = reactor_now_ms(w->r) + swd_cfg.header_timeout_ms;
			break;
		}
		if (ret < 0) {
			count_bad_request(w, -ret);
			/* Nothing after a bad head can be trusted: answer and close. */
			if (client_error(c, -ret, true, "%s", reason_phrase(-ret)))
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

	for (;;) {
		/* Heads and pipelined requests are bounded by the head limit (431 past it). */
		if ((c->state == C_HEAD || (c->x && c->x->req_done)) &&
		    c->in.len > swd_cfg.limits.max_header_bytes)
			break;
		if (buf_reserve(&c->in, READ_CHUNK)) {
			client_close(c);
			return -1;
		}
		n = recv(c->ev.fd, c->in.data + c->in.off + c->in.len, READ_CHUNK, 0);
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
		c->in.len += n;
		/* Stream body bytes as they come rather than hoarding them. */
		if (c->state == C_PROXY && c->x && !c->x->req_done)
			break;
		if (n < READ_CHUNK)
			break;
	}
	if (c->state == C_HEAD) {
		if (client_process(c))
			return -1;
		if (c->eof && c->state == C_HEAD) {
			/* Closed between requests, or in the middle of a head. */
			client_close(c);
			return -1;
		}
		return 0;
	}
	if (c->state == C_PROXY && c->x) {
		struct exchange *x = c->x;
		int ret = 0;

		/* A pipelined request: its turn must not hang on a response that wakes
		 * nobody. */
		if (x->req_done && (c->in.len || c->eof) && x->splice_armed)
			ret = splice_check(x, true);
		else if (!x->req_done)
			ret = exchange_pump_request(x);
		if (ret < 0)
			return -1;
		if (!ret && c->eof && !x->req_done) {
			/* The body will never be whole: give up on this request. */
			if (exchange_fail(x, 400, "%s", "request body cut short") < 0)
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
	/* The response the kernel passed on whole ends here (the client got it, and this
	 * is its next request or its close), before anything else is decided. */
	if (c->x && c->x->splice_armed && splice_check(c->x, false) < 0)
		return;
	/* An error, or a peer gone both ways: nothing it asked can reach it any more. */
	if (events & (EPOLLERR | EPOLLHUP)) {
		client_close(c);
		return;
	}
	if (events & EPOLLOUT) {
		if (client_flush(c))
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
		c->state = C_HEAD;
		c->deadline_ms = reactor_now_ms(r) + swd_cfg.header_timeout_ms;
		if (reactor_add(r, &c->ev, EPOLLIN)) {
			close(fd);
			free(c);
			continue;
		}
		if (w->netns && !sw_conn_key(&c->key, w->netns, fd))
			c->kc = sw_conn_claim(w->maps, &c->key);
		if (c->kc)
			c->accel_seen = __atomic_load_n(&c->kc->accel_bytes, __ATOMIC_RELAXED);
		c->next = w->clients;
		if (c->next)
			c->next->prev = c;
		w->clients = c;
		__atomic_fetch_add(&w->stats.connections, 1, __ATOMIC_RELAXED);
		__atomic_fetch_add(&w->stats.active, 1, __ATOMIC_RELAXED);
	}
}

/* ---- upstream connection -------------------------------------------------------------- */

/* Does the client connection stay open after this exchange, as far as is known now? */
static bool exchange_client_keep(const struct exchange *x)
{
	return x->keep_alive && !x->c->eof && !x->c->w->draining && x->req_done;
}

/* Builds the client's response head from the upstream's. */
static int response_head(struct exchange *x, const struct http_response *resp, struct buf *b)
{
	x->client_keep = resp->body != HTTP_BODY_CLOSE && exchange_client_keep(x);
	return head_response_build(b, resp, x->client_keep, x->version_minor);
}

static __thread struct http_response scratch_resp;

/* Sends an interim (1xx) response head to an HTTP/1.1 client. Returns -1 if it is gone. */
static int interim_send(struct client *c, const struct http_response *resp)
{
	size_t before = c->out.len;

	if (head_response_build(&c->out, resp, true, 1)) {
		client_close(c);
		return -1;
	}
	/* client_send writes at once when nothing waited before: do the same here. */
	return before ? 0 : client_flush(c);
}

/* Handles the bytes in u->in: the response head, then its body towards the client. */
static int upstream_pump_response(struct upstream *u)
{
	struct exchange *x = u->x;
	struct client *c = x->c;
	size_t n, consumed, head_len;
	bool done = false;
	int ret;

	while (!x->resp_started) {
		ret = http_parse_response(buf_head(&u->in), u->in.len, &swd_cfg.limits, x->is_head,
					  &scratch_resp);
		if (ret == 0)
			return 0;
		if (ret < 0 || scratch_resp.status == 101)
			return exchange_upstream_failed(x, SW_ERR_BAD_RESPONSE);
		if (scratch_resp.status < 200) {
			/* Our own 100 Continue went out already; other interim answers pass on,
			 * as heads of sockwayd's (hop-by-hop fields dropped). */
			if (scratch_resp.status != 100 && x->version_minor == 1 &&
			    interim_send(c, &scratch_resp))
				return -1;
			buf_consume(&u->in, scratch_resp.head_len);
			continue;
		}
		x->status = scratch_resp.status;
		x->resp_started = true;
		x->resp_body = scratch_resp.body;
		x->resp_left = scratch_resp.content_length;
		x->resp_keepalive = scratch_resp.keep_alive;
		x->resp_done = scratch_resp.body == HTTP_BODY_NONE ||
			       (scratch_resp.body == HTTP_BODY_LENGTH && !scratch_resp.content_length);
		if (scratch_resp.body == HTTP_BODY_CHUNKED)
			http_chunked_init(&x->resp_chunk);
		exchange_count_status(x, x->status);
		/* The head is queued, not sent: the first body bytes join it in one send. */
		head_len = c->out.len;
		if (response_head(x, &scratch_resp, &c->out)) {
			client_close(c);
			return -1;
		}
		buf_consume(&u->in, scratch_resp.head_len);
		x->bytes_out += c->out.len - head_len;
		x->resp_sent = true;
		if (x->req_done)
			exchange_launch_shadows(x);
	}
	while (!x->resp_done && u->in.len) {
		const char *p = buf_head(&u->in);

		if (x->resp_body == HTTP_BODY_LENGTH) {
			n = u->in.len < x->resp_left ? u->in.len : x->resp_left;
			consumed = n;
			x->resp_left -= n;
			done = !x->resp_left;
		} else if (x->resp_body == HTTP_BODY_CHUNKED) {
			/* Re-framed as sockwayd's own chunks, trailers dropped (http.h). */
			if (http_chunked_recode(&x->resp_chunk, p,
						u->in.len < READ_CHUNK ? u->in.len : READ_CHUNK,
						&consumed, &done, recode_buf, &n)) {
				exchange_count_error(x, SW_ERR_BAD_RESPONSE);
				x->resp_keepalive = false;
				return exchange_fail(x, 502, "%s", "bad response");
			}
			p = recode_buf;
		} else {
			n = consumed = u->in.len;
		}
		x->bytes_out += n;
		if (client_send(c, p, n))
			return -1;
		buf_consume(&u->in, consumed);
		x->resp_done = done;
	}
	if (c->out.len && client_flush(c))
		return -1;
	if (x->resp_done)
		return exchange_finish(x);
	u->deadline_ms = reactor_now_ms(u->w->r) + swd_cfg.response_timeout_ms;
	return 0;
}

/* ---- the response-body splice (abi.h, struct sw_conn) ------------------------------------ */

/* Files a connected upstream in the conns map, so that the kernel can find it. */
static void upstream_track(struct upstream *u)
{
	struct sw_sock_key key;

	if (u->w->netns && !u->kc && !sw_conn_key(&key, u->w->netns, u->ev.fd))
		u->kc = sw_conn_claim(u->w->maps, &key);
	if (u->kc)
		u->accel_seen = __atomic_load_n(&u->kc->accel_bytes, __ATOMIC_RELAXED);
}

/*
 * May the kernel pass the whole response on, head included, if the head is one that
 * head_response_build gives back unchanged? Only when sockwayd has nothing to add to it
 * (an HTTP/1.1 client that keeps its connection, no HEAD, no shadows to launch on the
 * head) and would take every head the kernel takes (its limits are no lower); and not
 * while a pipelined request waits: a response the kernel passes on whole wakes nobody,
 * and that request would wait for the tick.
 */
static bool splice_whole_ok(const struct exchange *x)
{
	const struct http_limits *lim = &swd_cfg.limits;

	return !x->resp_started && !x->splice_whole_tried && !x->is_head && !x->nr_shadows &&
	       x->version_minor == 1 && !x->c->in.len && !x->c->pipelines &&
	       exchange_client_keep(x) && lim->max_header_bytes >= SW_RESPHEAD_MAX &&
	       lim->max_request_line >= SW_RESPHEAD_MAX && lim->max_headers >= SW_RESPHEAD_FIELDS;
}

/*
 * Offers the response to the kernel, when sockwayd holds nothing of it (every byte it read
 * went to the client already, nothing is waiting for the client):
 * - before it comes (splice_whole_ok): if the backend's first send is a head that passes
 *   on unchanged, with a Content-Length body, sk_msg moves the response into the client's
 *   socket as it came;
 * - once the head is forwarded, the rest of a Content-Length body: sk_msg moves it from
 *   the backend's next send on, if sockwayd's socket is still empty then.
 * The kernel leaves the response's last byte to sockwayd, which wakes it to end the
 * exchange (abi.h, struct sw_conn), unless the whole response came in one send: then it
 * passes it all on (DONE), and sockwayd ends the exchange when the client speaks again
 * (splice_check) or at its tick.
 */
static void splice_arm(struct exchange *x)
{
	struct upstream *u = x->u;
	struct client *c = x->c;
	struct sw_sock_key client;

	/* Not before the request is done: until then sockwayd may still answer the client
	 * itself (a request body timeout), which must not meet kernel-moved bytes. */
	if (swd_cfg.no_splice || x->splice_armed || !u || !u->kc || !c->kc || !x->req_done ||
	    x->resp_done || u->in.len || c->out.len)
		return;
	sw_conn_key_reverse(&client, &c->key);
	if (!x->resp_started) {
		struct sw_counters *ctr = worker_cell(c->w, x->cell);

		if (!splice_whole_ok(x) || u->out.len)
			return;
		/* The client's side of this exchange is over (request and body): counted now,
		 * as a response passed on whole adds nothing to it, and its exchange may end
		 * only once the next request's bytes came (exchange_finish). */
		if (ctr)
			counters_add(&ctr->accel_bytes, accel_delta(c->kc, &c->accel_seen));
		sw_conn_splice_prearm(u->kc, &client);
		x->splice_whole = true;
		x->splice_whole_tried = true;
	} else {
		if (x->resp_body != HTTP_BODY_LENGTH || x->resp_left < SW_SPLICE_MIN)
			return;
		sw_conn_splice_arm(u->kc, &client, x->resp_left - 1);
		x->splice_whole = false;
	}
	x->splice_armed = true;
	x->splice_seen = 0;
	u->splice_used = true;
}

/*
 * The kernel passed the first `done` bytes of the response on, its head whole among them
 * (sk_msg's scan is in kc->head): the exchange goes on from there, as if sockwayd had
 * forwarded them. All of them when it found the response whole in one send (DONE).
 */
static int splice_took_response(struct exchange *x, __u64 done, bool whole)
{
	const struct sw_resphead *h = &x->u->kc->head;
	__u64 total = (__u64)h->head_len + h->body_len;

	x->resp_started = true;
	x->resp_sent = true;
	x->spliced = true;
	if (done < h->head_len || done > total || (done == total) != whole)
		/* sk_msg never stops inside the head, and moves the last byte only with
		 * all the others. */
		return exchange_upstream_failed(x, SW_ERR_BAD_RESPONSE);
	x->status = (int)h->status;
	x->resp_body = HTTP_BODY_LENGTH;
	x->resp_left = total - done;
	x->resp_done = whole;
	if (whole) {
		x->t_end_us = __atomic_load_n(&x->u->kc->done_ns, __ATOMIC_RELAXED) / 1000;
		__atomic_fetch_add(&x->c->w->stats.kernel_responses, 1, __ATOMIC_RELAXED);
	}
	x->resp_keepalive = true;
	x->client_keep = exchange_client_keep(x);
	x->bytes_out += done;
	exchange_count_status(x, x->status);
	return 0;
}

/* splice_settle: the kernel is moving bytes, leave the socket alone (not an exchange
 * result: those are -1 to 2). */
#define SPLICE_BUSY 3

/*
 * Before sockwayd reads an upstream with a splice armed: takes it back, and counts what
 * the kernel moved as sent. Returns 0 to read on, SPLICE_BUSY to leave the socket alone,
 * or an exchange result (exchange_upstream_failed) when it cannot go on.
 */
static int splice_settle(struct exchange *x)
{
	struct upstream *u = x->u;
	bool whole = x->splice_whole;
	long long done;
	__u32 seen;
	char b;

	done = sw_conn_splice_settle(u->kc, &seen);
	/* Taking a whole response: over within its sk_msg run; nothing to read before. */
	if (seen == SW_SPLICE_TAKING)
		return SPLICE_BUSY;
	if (done < 0) {
		/* Active: a wake-up now is the backend closing early (it sends nothing more,
		 * so the kernel is done with the splice), or nothing. */
		ssize_t n = recv(u->ev.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return SPLICE_BUSY;
		if (n > 0)
			/* Bytes for sockwayd while the kernel sends to the client: their order
			 * is lost; the kernel must never do this. */
			return exchange_upstream_failed(x, SW_ERR_BAD_RESPONSE);
		done = (long long)__atomic_load_n(&u->kc->done, __ATOMIC_ACQUIRE);
		__atomic_store_n(&u->kc->splice, SW_SPLICE_IDLE, __ATOMIC_RELAXED);
	}
	x->splice_armed = false;
	x->splice_whole = false;
	if (whole)
		return done > 0 ? splice_took_response(x, (__u64)done, seen == SW_SPLICE_DONE) : 0;
	x->spliced |= done > 0;
	if ((__u64)done > x->resp_left)
		return exchange_upstream_failed(x, SW_ERR_BAD_RESPONSE);
	x->resp_left -= done;
	x->bytes_out += done;
	return 0;
}

/*
 * Before sockwayd answers the client itself (an error, a timeout): takes the splice back.
 * If the kernel moved bytes, or is moving them, the client has part of a response: it can
 * only be closed now (exchange_fail does that for resp_sent).
 */
static void splice_abandon(struct exchange *x)
{
	struct sw_conn *kc;
	long long done;
	bool active;
	__u32 seen;

	if (!x->splice_armed || !x->u || !x->u->kc)
		return;
	kc = x->u->kc;
	done = sw_conn_splice_settle(kc, &seen);
	active = done < 0;
	if (active)
		/* Still moving (perhaps not one byte yet): started all the same. */
		done = (long long)__atomic_load_n(&kc->done, __ATOMIC_ACQUIRE);
	x->splice_armed = false;
	if (active || done) {
		/* A whole response's head went first, and its status was in kc->head before
		 * the kernel started (sk_msg writes it before the swap to ACTIVE). */
		if (x->splice_whole && !x->resp_started) {
			x->status = (int)kc->head.status;
			exchange_count_status(x, x->status);
		}
		x->resp_started = true;
		x->resp_sent = true;
		x->spliced = true;
		x->bytes_out += (__u64)done;
	}
	x->splice_whole = false;
}

/* Has the kernel passed the whole response on by itself (nothing woke sockwayd)? */
static bool splice_done(const struct exchange *x)
{
	return x->splice_armed && x->splice_whole && x->u && x->u->kc &&
	       __atomic_load_n(&x->u->kc->splice, __ATOMIC_ACQUIRE) == SW_SPLICE_DONE;
}

/*
 * Ends the exchange if the kernel passed its whole response on (DONE). take_back: the
 * client sent bytes (a pipelined request, or its close) while the response was armed. If
 * the kernel has not taken it yet, the arming is taken back and the response comes
 * through sockwayd. If it has (TAKING, or DONE since the client event began), the
 * response's bytes were still on their way when the client sent its own: the tick ends
 * the exchange, so that no answer to that request can overtake them. Such a client
 * pipelines, and gets no more responses that end with nobody woken. Returns 0 when the
 * exchange goes on, else an exchange result.
 */
static int splice_check(struct exchange *x, bool take_back)
{
	struct sw_conn *kc;
	__u32 state;
	int ret;

	if (!x->splice_armed || !x->splice_whole || !x->u || !x->u->kc)
		return 0;
	kc = x->u->kc;
	state = __atomic_load_n(&kc->splice, __ATOMIC_ACQUIRE);
	if (take_back && x->c->in.len) {
		x->c->pipelines = true;
		if (state == SW_SPLICE_PREARMED &&
		    __atomic_compare_exchange_n(&kc->splice, &state, SW_SPLICE_IDLE, false,
						__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
			x->splice_armed = false;
			x->splice_whole = false;
		}
		return 0;
	}
	/* Not done (a large response's last byte wakes sockwayd), unless a half-close
	 * takes it back: nothing to overtake then, and the close must not wait. */
	if (state != SW_SPLICE_DONE && (state != SW_SPLICE_PREARMED || !take_back))
		return 0;
	ret = splice_settle(x);
	if (ret == SPLICE_BUSY)
		return 0; /* the kernel is taking it: the tick ends it */
	if (ret || !x->resp_done)
		return ret;
	return exchange_finish(x);
}

/* For the response timer: did the kernel move body bytes since the last check? */
static bool splice_progressed(struct exchange *x)
{
	__u64 done;

	if (!x->splice_armed || !x->u || !x->u->kc)
		return false;
	done = __atomic_load_n(&x->u->kc->done, __ATOMIC_RELAXED);
	if (done == x->splice_seen)
		return false;
	x->splice_seen = done;
	return true;
}

/* After an exchange ended in an upstream event: start the pipelined request, if any. */
static void exchange_after(struct client *c, int ret)
{
	if (ret == 1 && c->state == C_HEAD && c->in.len)
		client_process(c);
}

static void upstream_event(struct reactor *r, struct reactor_ev *ev, __u32 events)
{
	struct upstream *u = ev->owner;
	struct exchange *x = u->x;
	struct client *c;
	int err = 0, ret = 0;
	socklen_t len = sizeof(err);
	ssize_t n;

	if (u->idle) {
		/* An idle connection that speaks is closing (or broken): drop it. */
		pool_remove(u);
		upstream_close(u);
		return;
	}
	if (!x) {
		upstream_close(u);
		return;
	}
	c = x->c;
	if (u->connecting) {
		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		getsockopt(ev->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err) {
			exchange_after(c, exchange_upstream_failed(x, SW_ERR_CONNECT_REFUSED));
			return;
		}
		u->connecting = false;
		upstream_track(u);
		u->deadline_ms = reactor_now_ms(r) + swd_cfg.response_timeout_ms;
		exchange_after(c, upstream_begin(x));
		return;
	}
	if (events & EPOLLOUT) {
		if (upstream_flush(u))
			ret = exchange_upstream_failed(x, SW_ERR_RESET);
		else if (!x->req_done)
			/* Room upstream: more body can come from the client. */
			ret = exchange_pump_request(x);
		if (ret) {
			exchange_after(c, ret);
			return;
		}
	}
	if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && x->splice_armed) {
		ret = splice_settle(x);
		if (ret == SPLICE_BUSY) {
			upstream_update(u);
			return;
		}
		if (ret) {
			exchange_after(c, ret);
			return;
		}
		/* The kernel passed the whole response on, and the backend speaks after it:
		 * it closes, or sends bytes past the response (exchange_finish then closes
		 * the client too). Either way this connection is not reused. */
		if (x->resp_done)
			x->resp_keepalive = false;
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		while (!ret && c->out.len < HIGH_WATER) {
			if (buf_reserve(&u->in, READ_CHUNK)) {
				ret = exchange_upstream_failed(x, SW_ERR_RESET);
				break;
			}
			n = recv(ev->fd, u->in.data + u->in.off + u->in.len, READ_CHUNK, 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno == EAGAIN)
				break;
			if (n <= 0) {
				/* Closed: the end of a close-delimited body, or a failure. */
				ret = upstream_pump_response(u);
				if (ret)
					break;
				if (x->resp_started && x->resp_body == HTTP_BODY_CLOSE) {
					x->resp_done = true;
					x->resp_keepalive = false;
					ret = exchange_finish(x);
				} else {
					ret = exchange_upstream_failed(x, SW_ERR_RESET);
				}
				break;
			}
			u->in.len += n;
			x->upstream_spoke = true;
			ret = upstream_pump_response(u);
			if (n < READ_CHUNK)
				break;
		}
	}
	/* A whole response the kernel passed on, collected above, and nothing to read
	 * after all (a wake-up with no bytes): it ends here. */
	if (!ret && x->resp_done)
		ret = exchange_finish(x);
	if (ret) {
		exchange_after(c, ret);
		return;
	}
	splice_arm(x);
	upstream_update(u);
	client_update(c);
}

/* ---- timers ----------------------------------------------------------------------------- */

void proxy_tick(struct worker *w)
{
	__u64 now = reactor_now_ms(w->r);
	struct client *c, *cn;
	struct upstream *u, *un;

	deferred_entries_free(w);

	/* Responses the kernel passed on whole to clients that stayed quiet since. Ending
	 * one touches no other client (a pooled upstream may go, hence clients, not
	 * upstreams). */
	for (c = w->clients; c; c = cn) {
		cn = c->next;
		if (c->x && splice_done(c->x)) {
			int ret = splice_check(c->x, false);

			if (ret)
				__atomic_fetch_add(&w->stats.kernel_responses_tick, 1,
						   __ATOMIC_RELAXED);
			exchange_after(c, ret);
		}
	}
	for (u = w->upstreams; u; u = un) {
		un = u->next;
		if (u->deadline_ms > now)
			continue;
		if (u->x && splice_progressed(u->x)) {
			/* The body is flowing, past sockwayd. */
			u->deadline_ms = now + swd_cfg.response_timeout_ms;
			continue;
		}
		if (u->idle) {
			pool_remove(u);
			upstream_close(u);
		} else if (u->x && (u->connecting || u->x->req_done)) {
			/* Connect or response timeout (a stalled body upload is the client's). */
			struct client *c = u->x->c;

			exchange_after(c, exchange_upstream_failed(u->x, SW_ERR_TIMEOUT));
			/* The list changed under us (a retry, a close): start over; what was handled
			 * has a deadline in the future now or is gone. */
			un = w->upstreams;
		}
	}
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
			client_close(c);
		} else if (c->state == C_PROXY && c->x && !c->x->req_done) {
			exchange_fail(c->x, 408, "%s", "request body timeout");
		} else if (c->state == C_CLOSING) {
			client_close(c);
		}
	}
}

void proxy_close_idle(struct worker *w)
{
	struct client *c, *cn;
	__u32 b, i;

	shadow_close_idle(w);
	for (c = w->clients; c; c = cn) {
		cn = c->next;
		if (c->state == C_HEAD && !c->in.len)
			client_close(c);
	}
	for (b = 0; b < SW_MAX_BACKENDS; b++)
		for (i = 0; i < SW_MAX_REPLICAS; i++)
			while (w->idle[b][i]) {
				struct upstream *u = w->idle[b][i];

				pool_remove(u);
				upstream_close(u);
			}
}
