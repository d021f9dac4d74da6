// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * The exchange (proxy.h): one request and its response between a client and an upstream.
 * It decides the route (include/sockway/decide.h), writes the heads (headers.c), streams
 * both bodies with their framing re-made, retries when it is safe, counts, and ends.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "headers.h"
#include "proxy.h"

/* RFC 9110 9.2.2: methods a client may repeat without changing the outcome. */
static bool method_idempotent(__u32 method_bit)
{
	return method_bit & (SW_METHOD_GET | SW_METHOD_HEAD | SW_METHOD_OPTIONS | SW_METHOD_TRACE |
			     SW_METHOD_PUT | SW_METHOD_DELETE);
}

/* Spare exchanges a worker keeps, each with its head buffer: a request then costs no
 * allocation. Heads that grew past HEAD_KEEP are not kept. */
#ifndef __has_feature
#define __has_feature(x) 0
#endif
#if defined(__SANITIZE_ADDRESS__) || __has_feature(address_sanitizer) /* gcc, clang */
#define SPARE_EXCHANGES 0 /* a stale pointer must reach freed memory, where ASan sees it */
#else
#define SPARE_EXCHANGES 64
#endif
#define HEAD_KEEP 8192

struct exchange *exchange_alloc(struct worker *w)
{
	struct exchange *x = w->spare_x;
	struct buf head;

	if (!x)
		return calloc(1, sizeof(*x));
	w->spare_x = x->next_spare;
	w->nr_spare_x--;
	head = x->head;
	memset(x, 0, sizeof(*x));
	x->head.data = head.data;
	x->head.cap = head.cap;
	return x;
}

void exchange_free(struct exchange *x)
{
	unsigned i;

	/* Shadows that were never launched go with their request (and count as dropped). */
	for (i = 0; i < x->nr_shadows; i++)
		if (x->shadows[i])
			shadow_discard(x->shadows[i]);
	pipe_release(x);
	buf_free(&x->body_copy);
#if SPARE_EXCHANGES
	struct worker *w = x->c->w;

	if (w->nr_spare_x < SPARE_EXCHANGES && x->head.cap <= HEAD_KEEP) {
		x->next_spare = w->spare_x;
		w->spare_x = x;
		w->nr_spare_x++;
		return;
	}
#endif
	buf_free(&x->head);
	free(x);
}

void exchange_spares_free(struct worker *w)
{
	struct exchange *x;

	while ((x = w->spare_x)) {
		w->spare_x = x->next_spare;
		buf_free(&x->head);
		free(x);
	}
	w->nr_spare_x = 0;
}

void exchange_count_status(struct exchange *x, int status)
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
		if (x->body_copy_short ||
		    shadow_append_body(s, buf_head(&x->body_copy), x->body_copy.len)) {
			/* The body did not fit the copy: this sample is lost, and counted. */
			shadow_discard(s);
			continue;
		}
		shadow_launch(s, x->status);
	}
}

/*
 * The response is all in (or the exchange ends): the upstream connection goes back to its
 * pool, or its lend set, when it can carry another request, else it closes.
 */
void exchange_upstream_release(struct exchange *x)
{
	struct upstream *u = x->u;
	bool whole = x->resp == RESP_DONE ||
		     (x->resp == RESP_BODY && !x->resp_left && x->resp_body == HTTP_BODY_LENGTH);
	struct sw_counters *ctr;

	if (!u)
		return;
	/* What the kernel moved on it since the exchange started (see exchange_finish). */
	if (u->kc && !(x->kernel && x->t_end_us) && (ctr = worker_cell(x->c->w, x->cell)))
		counters_add(&ctr->accel_bytes, accel_delta(u->kc, &u->accel_seen));
	u->x = NULL;
	x->u = NULL;
	/* A piped body was read to its exact length: whatever the backend sent past it is
	 * still in the socket (a recv would have taken it into u->in), and the next request
	 * on this connection, maybe another client's, would read it as its response. */
	if (x->resp_keepalive && x->req == REQ_DONE && whole && !u->in.len &&
	    !(x->pipe && upstream_stale(u)))
		u->lent ? lend_return(u) : pool_put(u);
	else
		upstream_close(u);
}

/*
 * The exchange is over (answered, by the upstream or by us). Counts it, returns the upstream
 * connection to its pool when it can be reused, and readies the client for the next request.
 * Returns 1, or -1 when the client is gone.
 */
enum xres exchange_finish(struct exchange *x)
{
	struct client *c = x->c;
	struct worker *w = c->w;
	struct sw_counters *ctr = worker_cell(w, x->cell);
	struct upstream *u = x->u;

	/* A routed request's response the kernel passed on whole: it counted it. */
	if (ctr && x->kernel && x->t_end_us)
		ctr = NULL;
	if (ctr) {
		counters_add(&ctr->bytes_from_client, x->bytes_in);
		counters_add(&ctr->bytes_to_client, x->bytes_out);
		/* What the kernel moved on both connections since the exchange started (the
		 * request head's bytes went to its cell then). The client's side of a response
		 * the kernel passed on whole was counted when sockwayd armed it, and by now may
		 * hold the next request's bytes: those are the next exchange's. The upstream's
		 * side is counted as it is let go (exchange_upstream_release). */
		if (c->kc && !x->t_end_us)
			counters_add(&ctr->accel_bytes, accel_delta(c->kc, &c->accel_seen));
		counters_latency(ctr, (x->t_end_us ? x->t_end_us : now_us()) - x->t_start_us);
	}
	if (x->req == REQ_DONE)
		exchange_launch_shadows(x);
	/*
	 * Bytes past the body after a splice: the kernel counted bytes it then failed to
	 * deliver (memory pressure; the backend sent them again), so the client is short of
	 * some. Its connection cannot be trusted to frame the next response: close it.
	 */
	if (x->spliced && u && u->in.len)
		x->client_keep = false;
	exchange_upstream_release(x);
	/* A routed exchange taken over is over: the client is sockwayd's until idle (K7). */
	if (x->kernel && c->kc)
		__atomic_store_n(&c->kc->kroute, SW_KR_CLOSED, __ATOMIC_RELEASE);
	/* A request whose body was not read to its end leaves the connection unusable. */
	if (x->req != REQ_DONE)
		x->client_keep = false;
	c->x = NULL;
	w->nr_exchanges--;
	c->answered = true;
	/* A close-delimited response cut short (exchange_fail): a close would end it as if
	 * whole. */
	if (x->resp == RESP_BODY && x->resp_body == HTTP_BODY_CLOSE) {
		exchange_free(x);
		client_reset(c);
		return XR_CLIENT_GONE;
	}
	/* A client that half-closed after pipelining still gets an answer to each request it
	 * sent whole, as from nginx or HAProxy: the connection closes once none is left. */
	if (!x->client_keep || (c->eof && !c->in.len) || w->draining) {
		exchange_free(x);
		client_closing(c);
		return client_flush(c) ? XR_CLIENT_GONE : XR_OVER;
	}
	exchange_free(x);
	c->state = C_HEAD;
	c->deadline_ms = reactor_now_ms(w->r) + swd_cfg.keepalive_timeout_ms;
	client_update(c);
	return XR_OVER;
}

/* Ends the exchange with an error response of ours. Returns 1, or -1 if the client is gone. */
enum xres exchange_fail(struct exchange *x, int status, const char *fmt, const char *what)
{
	struct client *c = x->c;

	splice_abandon(x);
	if (x->resp != RESP_NONE) {
		/* Part of the upstream's response is out: the client can only see a close, and
		 * a reset where a close would end a close-delimited body as if whole. */
		x->client_keep = false;
		if (x->resp != RESP_DONE)
			x->req = REQ_BODY;
		return exchange_finish(x);
	}
	x->status = status;
	exchange_count_status(x, status);
	x->client_keep = x->keep_alive && x->req == REQ_DONE;
	if (client_error(c, status, !x->client_keep, fmt, what))
		return XR_CLIENT_GONE;
	return exchange_finish(x);
}

/* A chunked body re-framed (http_chunked_recode), on its way to the other side. */
static __thread char recode_buf[READ_CHUNK + HTTP_CHUNK_RECODE_SLACK];

/* Moves request body bytes from the client's buffer to the upstream, as much as the
 * upstream takes. */
enum xres exchange_pump_request(struct exchange *x)
{
	struct client *c = x->c;
	struct upstream *u = x->u;
	size_t n, consumed;
	bool done = false;
	int err;

	while (x->req != REQ_DONE && u && !u->connecting && c->in.len && u->out.len < HIGH_WATER) {
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
			x->req = REQ_DONE;
			u->deadline_ms = reactor_now_ms(c->w->r) + swd_cfg.response_timeout_ms;
		}
	}
	if (x->req == REQ_DONE && x->resp != RESP_NONE)
		exchange_launch_shadows(x);
	if (x->req != REQ_DONE)
		c->deadline_ms = reactor_now_ms(c->w->r) + swd_cfg.body_timeout_ms;
	client_update(c);
	if (x->u)
		upstream_update(x->u);
	return XR_GOES_ON;
}

/* The connection is up: send the head and whatever body there is to replay or pump. */
static enum xres upstream_begin(struct exchange *x)
{
	struct upstream *u = x->u;
	int err;

	/* A request that is all here: its response may be the kernel's to pass on. Armed
	 * before it goes out, so that the first send of a quick backend finds it armed. */
	if (x->req == REQ_DONE && !x->body_sent)
		splice_arm(x);
	err = upstream_send(u, buf_head(&x->head), x->head.len);
	if (!err && x->body_sent)
		err = upstream_send(u, buf_head(&x->body_copy), x->body_copy.len);
	if (err)
		return exchange_upstream_failed(x, SW_ERR_RESET);
	if (x->req == REQ_DONE)
		u->deadline_ms = reactor_now_ms(x->c->w->r) + swd_cfg.response_timeout_ms;
	return exchange_pump_request(x);
}

/* Attaches the exchange to an upstream connection (pooled or new). */
static enum xres upstream_start(struct exchange *x)
{
	struct worker *w = x->c->w;
	const struct sw_backend *be = &w->snap->be[x->backend_id];
	struct upstream *u;
	int idx;

	if (!(be->flags & SW_F_IN_USE) || !be->nr_replicas)
		return exchange_fail(x, 503, "%s", "the backend has no replica");
	idx = pick_replica(w, x->backend_id, be, x->tries, x->replica);
	if (idx < 0)
		return exchange_fail(x, 503, "no replica of backend %s is reachable", be->name);
	x->replica = idx;
	u = pool_get(w, x->backend_id, idx, &be->replicas[idx], !method_idempotent(x->method_bit));
	if (!u)
		u = upstream_connect(w, x->backend_id, idx, &be->replicas[idx]);
	if (!u && (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM))
		/* sockwayd's own shortage (descriptors, memory), not the backend's doing: its
		 * replica is not marked down, and nothing is counted against it. */
		return exchange_fail(x, 503, "%s", "sockwayd is out of descriptors or memory");
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
	/* A pooled connection known to be off the kernel path: no egress splice to arm. */
	if (u->off_path)
		client_egress_drop(x->c);
	if (u->connecting) {
		upstream_update(u);
		client_update(x->c);
		return XR_GOES_ON;
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

	if (x->resp != RESP_NONE || x->upstream_spoke || !replayable || x->tries >= 1 ||
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
enum xres exchange_upstream_failed(struct exchange *x, enum sw_upstream_error kind)
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
		enum xres ret;

		x->tries++;
		__atomic_fetch_add(&w->stats.retries[retry], 1, __ATOMIC_RELAXED);
		ret = upstream_start(x);
		/* The exchange goes on, but on another connection: the caller's u is gone. */
		return ret != XR_GOES_ON ? ret : XR_MOVED;
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
		*why = err == -E2BIG ? "a '..' deeper than 64 segments in"
				     : "refused: path or Host of";
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
				    const struct head_request_opts *primary, __u32 handoff)
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

		/* The kernel drew already for a request it left to sockwayd (kroute.c). */
		if (handoff & SW_HANDOFF_VALID ? !((SW_HANDOFF_SHADOWS(handoff) >> i) & 1)
					       : !sw_shadow_sampled(sh, worker_random(w)))
			continue;
		if ((req->body == HTTP_BODY_LENGTH &&
		     req->content_length > swd_cfg.body_copy_max) ||
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
int exchange_start(struct client *c, const struct http_request *req)
{
	struct worker *w = c->w;
	struct sw_decide_state d;
	struct head_request_opts o = {};
	struct sw_counters *ctr;
	struct exchange *x;
	const char *why = "";
	unsigned underscores = 0;
	__u32 handoff = c->handoff;
	__u16 backend;
	bool has_body = req->body == HTTP_BODY_CHUNKED ||
			(req->body == HTTP_BODY_LENGTH && req->content_length);
	int status;

	c->handoff = 0;
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

	x = exchange_alloc(w);
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
	x->req = has_body ? REQ_BODY : REQ_DONE;
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
	exchange_sample_shadows(x, req, &o, handoff);
	if (handoff & SW_HANDOFF_VALID)
		__atomic_fetch_add(&w->stats.kroute_handoffs, 1, __ATOMIC_RELAXED);
	/* req points into c->in: its head is consumed only now that every head is built,
	 * and before the body (the rest of c->in) is pumped. */
	buf_consume(&c->in, req->head_len);
	if (req->expect_continue && x->req != REQ_DONE &&
	    client_send(c, "HTTP/1.1 100 Continue\r\n\r\n", 25))
		return -1;
	backend = x->backend_id;
	if (upstream_start(x) == XR_CLIENT_GONE)
		return -1;
	/* The kernel found no connection to lend: it gets some for next time, after this
	 * request has its own (x may be gone by now). */
	if ((handoff & SW_HANDOFF_VALID) && SW_HANDOFF_REASON(handoff) == SW_KM_NO_CONN)
		lend_demand(w, backend);
	return 0;
}

/* ---- upstream connection -------------------------------------------------------------- */

/* Does the client connection stay open after this exchange, as far as is known now? */
bool exchange_client_keep(const struct exchange *x)
{
	return x->keep_alive && (!x->c->eof || x->c->in.len) && !x->c->w->draining &&
	       x->req == REQ_DONE;
}

bool exchange_client_behind(const struct exchange *x)
{
	return x->c->out.len >= HIGH_WATER || pipe_is_full(x);
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
static enum xres upstream_pump_response(struct upstream *u)
{
	struct exchange *x = u->x;
	struct client *c = x->c;
	size_t n, consumed, head_len;
	bool done = false;
	int ret;

	while (x->resp == RESP_NONE) {
		ret = http_parse_response(buf_head(&u->in), u->in.len, &swd_cfg.limits, x->is_head,
					  &scratch_resp);
		if (ret == 0)
			return XR_GOES_ON;
		if (ret < 0 || scratch_resp.status == 101)
			return exchange_upstream_failed(x, SW_ERR_BAD_RESPONSE);
		if (scratch_resp.status < 200) {
			/* Our own 100 Continue went out already; other interim answers pass on,
			 * as heads of sockwayd's (hop-by-hop fields dropped). */
			if (scratch_resp.status != 100 && x->version_minor == 1 &&
			    interim_send(c, &scratch_resp))
				return XR_CLIENT_GONE;
			buf_consume(&u->in, scratch_resp.head_len);
			continue;
		}
		x->status = scratch_resp.status;
		x->resp_body = scratch_resp.body;
		x->resp_left = scratch_resp.content_length;
		x->resp_keepalive = scratch_resp.keep_alive;
		x->resp = scratch_resp.body == HTTP_BODY_NONE ||
					  (scratch_resp.body == HTTP_BODY_LENGTH &&
					   !scratch_resp.content_length)
				  ? RESP_DONE
				  : RESP_BODY;
		if (scratch_resp.body == HTTP_BODY_CHUNKED)
			http_chunked_init(&x->resp_chunk);
		exchange_count_status(x, x->status);
		/* The head is queued, not sent: the first body bytes join it in one send. */
		head_len = c->out.len;
		if (response_head(x, &scratch_resp, &c->out)) {
			client_close(c);
			return XR_CLIENT_GONE;
		}
		buf_consume(&u->in, scratch_resp.head_len);
		x->bytes_out += c->out.len - head_len;
		if (x->req == REQ_DONE)
			exchange_launch_shadows(x);
	}
	while (x->resp != RESP_DONE && u->in.len) {
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
			return XR_CLIENT_GONE;
		buf_consume(&u->in, consumed);
		if (done)
			x->resp = RESP_DONE;
	}
	if (c->out.len && client_flush(c))
		return XR_CLIENT_GONE;
	if (x->resp == RESP_DONE)
		return exchange_finish(x);
	u->deadline_ms = reactor_now_ms(u->w->r) + swd_cfg.response_timeout_ms;
	return XR_GOES_ON;
}

/* After an exchange ended in an upstream event: start the pipelined request, if any. */
void exchange_after(struct client *c, enum xres ret)
{
	if (ret == XR_OVER && c->state == C_HEAD && c->in.len)
		client_process(c);
}

/* The upstream's connect finished: the request goes, or the exchange fails over. */
static enum xres upstream_connected(struct exchange *x)
{
	struct upstream *u = x->u;
	socklen_t len = sizeof(int);
	int err = 0;

	getsockopt(u->ev.fd, SOL_SOCKET, SO_ERROR, &err, &len);
	if (err)
		return exchange_upstream_failed(x, SW_ERR_CONNECT_REFUSED);
	u->connecting = false;
	upstream_track(u);
	u->deadline_ms = reactor_now_ms(u->w->r) + swd_cfg.response_timeout_ms;
	return upstream_begin(x);
}

/* Reads the upstream while the client can take more: the response, or its close. */
static enum xres upstream_read(struct exchange *x)
{
	struct upstream *u = x->u;
	enum xres ret = XR_GOES_ON;
	ssize_t n;

	/* A read batched for this event is taken whatever the client's buffer holds: its
	 * bytes are in u->in already, and no EPOLLIN may come for them again. */
	while (ret == XR_GOES_ON && (x->c->out.len < HIGH_WATER || u->ev.read_done)) {
		/* A head (and the body's first bytes) waiting for the round's batched writes
		 * would keep the rest out of the pipe: they go now. */
		if (!x->pipe && x->c->ev.send_queued && pipe_eligible_but_buffered(x) &&
		    client_flush_now(x->c))
			return XR_CLIENT_GONE;
		/* The rest of a long body, past sockwayd's memory (pipe.c). */
		if (x->pipe || (pipe_eligible(x) && pipe_take(x)))
			return pipe_pump(x);
		/* The round's batched read of this socket first (its bytes appended already). */
		if (!reactor_read_taken(&u->ev, &n)) {
			if (buf_reserve(&u->in, READ_CHUNK))
				return exchange_upstream_failed(x, SW_ERR_RESET);
			n = recv(u->ev.fd, buf_tail(&u->in), READ_CHUNK, 0);
			if (n > 0)
				u->in.len += n;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			/* Closed: the end of a close-delimited body, or a failure. A reset or an
			 * error ends no body: the bytes the client has are not all there was. */
			ret = upstream_pump_response(u);
			if (ret != XR_GOES_ON)
				return ret;
			if (!n && x->resp != RESP_NONE && x->resp_body == HTTP_BODY_CLOSE) {
				x->resp = RESP_DONE;
				x->resp_keepalive = false;
				return exchange_finish(x);
			}
			return exchange_upstream_failed(x, SW_ERR_RESET);
		}
		x->upstream_spoke = true;
		upstream_check_peer(u);
		ret = upstream_pump_response(u);
		if (n < READ_CHUNK)
			break;
	}
	return ret;
}

void exchange_upstream_event(struct upstream *u, __u32 events)
{
	struct exchange *x = u->x;
	enum xres ret = XR_GOES_ON;
	struct client *c = x->c;

	if (u->connecting) {
		if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
			exchange_after(c, upstream_connected(x));
		return;
	}
	if (events & EPOLLOUT) {
		if (upstream_flush(u))
			ret = exchange_upstream_failed(x, SW_ERR_RESET);
		else if (x->req != REQ_DONE)
			/* Room upstream: more body can come from the client. */
			ret = exchange_pump_request(x);
		if (ret != XR_GOES_ON) {
			exchange_after(c, ret);
			return;
		}
	}
	if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && x->splice != SPLICE_OFF) {
		switch (splice_settle(x, &ret)) {
		case SETTLED_BUSY:
			upstream_update(u);
			return;
		case SETTLED_FAILED:
			exchange_after(c, ret);
			return;
		case SETTLED_READ:
			break;
		}
		/* The kernel passed the whole response on, and the backend speaks after it:
		 * it closes, or sends bytes past the response (exchange_finish then closes
		 * the client too). Either way this connection is not reused. */
		if (x->resp == RESP_DONE)
			x->resp_keepalive = false;
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		ret = upstream_read(x);
	/* A whole response the kernel passed on, collected above, and nothing to read
	 * after all (a wake-up with no bytes): it ends here. */
	if (ret == XR_GOES_ON && x->resp == RESP_DONE)
		ret = exchange_finish(x);
	if (ret != XR_GOES_ON) {
		exchange_after(c, ret);
		return;
	}
	splice_arm(x);
	/* x->u, not u: a piped body that is all in the pipe let go of it (pipe_fill). */
	if (x->u)
		upstream_update(x->u);
	client_update(c);
}

void exchange_tick(struct worker *w)
{
	__u64 now = reactor_now_ms(w->r);
	struct client *c, *cn;
	struct upstream *u, *un;

	/* Responses the kernel passed on whole to clients that stayed quiet since. Ending
	 * one touches no other client (a pooled upstream may go, hence clients, not
	 * upstreams). */
	for (c = w->clients; c; c = cn) {
		cn = c->next;
		if (c->x && splice_done(c->x)) {
			enum xres ret = splice_check(c->x, false);

			if (ret != XR_GOES_ON)
				__atomic_fetch_add(&w->stats.kernel_responses_tick, 1,
						   __ATOMIC_RELAXED);
			exchange_after(c, ret);
		}
	}
	for (u = w->upstreams; u; u = un) {
		un = u->next;
		if (u->idle || !u->x || u->deadline_ms > now)
			continue;
		if (splice_progressed(u->x)) {
			/* The body is flowing, past sockwayd. */
			u->deadline_ms = now + swd_cfg.response_timeout_ms;
			continue;
		}
		if (u->x->resp == RESP_BODY && exchange_client_behind(u->x)) {
			/* The backend waits for the client, not the other way round: the
			 * client's timeout, not the backend's (no error counted against it, no
			 * replica marked down, which one slow client could do at will). */
			client_close(u->x->c);
			un = w->upstreams;
			continue;
		}
		if (u->connecting || u->x->req == REQ_DONE) {
			/* Connect or response timeout (a stalled body upload is the client's).
			 * The client first: the failure may free u and its exchange. */
			c = u->x->c;
			exchange_after(c, exchange_upstream_failed(u->x, SW_ERR_TIMEOUT));
			/* The list changed under us (a retry, a close): start over; what was
			 * handled has a deadline in the future now or is gone. */
			un = w->upstreams;
		}
	}
}
