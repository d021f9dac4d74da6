// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * Shadow requests: a copy of a sampled request goes to the shadow backend, fire and forget.
 * Its response is read and thrown away; only its status, latency and errors are counted,
 * with whether the status matched the primary's. Nothing here ever touches the client:
 * a shadow is created when the request is sampled, launched once the request body is
 * whole and the primary's status is known, and lives on its own connection afterwards.
 *
 * A shadow goes over an upstream connection like a primary request (upstream.c): the same
 * replica pick and the same keep-alive pools, per replica (a shadow per request on a fresh
 * connection would leave a TIME-WAIT socket each time and run a busy host out of ephemeral
 * ports). Each worker caps its shadows in flight; a sample over the cap is dropped and
 * counted.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy.h"

/* Response bytes one read takes. */
#define SHADOW_READ (16 * 1024)

struct shadow {
	struct worker *w;
	struct shadow *prev, *next; /* the worker's shadows */
	struct upstream *u;	    /* the connection it goes over, once launched */
	__u16 endpoint_id, backend_id, cell;
	bool launched;
	bool is_head; /* a HEAD: the response ends at its head */
	int primary_status;
	int status;	/* the response's, 0 while none or when the shadow failed */
	struct buf out; /* request head and body, until they go */
	bool head_done;
	enum http_body body;
	__u64 left;
	struct http_chunked chunk;
	bool keep_alive;
	__u64 bytes_read;
	__u64 bytes_sent; /* the whole request, set at launch */
	__u64 t_start_us;
	__u64 deadline_ms;
};

static void shadow_drop(struct worker *w, __u16 cell)
{
	struct sw_counters *ctr = worker_cell(w, cell);

	if (ctr)
		counters_add(&ctr->shadow_drops, 1);
	__atomic_fetch_add(&w->stats.shadow_drops, 1, __ATOMIC_RELAXED);
}

struct shadow *shadow_new(struct worker *w, __u16 endpoint_id, const struct sw_shadow *sh,
			  const char *head, size_t head_len, bool is_head)
{
	struct shadow *s;

	/* The cap counts samples waiting for their request too, so memory stays bounded. */
	if (w->nr_shadows >= swd_cfg.shadow_queue) {
		shadow_drop(w, sh->cell);
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s || buf_append(&s->out, head, head_len)) {
		free(s);
		shadow_drop(w, sh->cell);
		return NULL;
	}
	s->w = w;
	s->is_head = is_head;
	s->endpoint_id = endpoint_id;
	s->backend_id = sh->backend_id;
	s->cell = sh->cell;
	s->next = w->shadows;
	if (s->next)
		s->next->prev = s;
	w->shadows = s;
	w->nr_shadows++;
	return s;
}

int shadow_append_body(struct shadow *s, const char *buf, size_t len)
{
	return buf_append(&s->out, buf, len);
}

static void shadow_free(struct shadow *s)
{
	struct worker *w = s->w;

	if (s->prev)
		s->prev->next = s->next;
	else
		w->shadows = s->next;
	if (s->next)
		s->next->prev = s->prev;
	w->nr_shadows--;
	buf_free(&s->out);
	free(s);
}

void shadow_discard(struct shadow *s)
{
	shadow_drop(s->w, s->cell);
	shadow_free(s);
}

/*
 * The shadow is over: count what it did (status 0: it failed with err_kind) and keep its
 * connection for the next request when the response ended cleanly.
 */
static void shadow_end(struct shadow *s, int err_kind, bool reusable)
{
	struct sw_counters *ctr = worker_cell(s->w, s->cell);
	struct upstream *u = s->u;

	if (ctr) {
		counters_add(&ctr->requests, 1);
		counters_add(&ctr->bytes_from_client, s->bytes_sent);
		counters_add(&ctr->bytes_to_client, s->bytes_read);
		if (s->status) {
			counters_status(ctr, s->status);
			counters_latency(ctr, now_us() - s->t_start_us);
			if (s->status == s->primary_status)
				counters_add(&ctr->shadow_match, 1);
		} else {
			counters_add(&ctr->errors[err_kind], 1);
		}
		/* What the kernel moved for it: the next exchange over u would count it. */
		if (u && u->kc)
			counters_add(&ctr->accel_bytes, accel_delta(u->kc, &u->accel_seen));
	}
	if (u) {
		u->s = NULL;
		s->u = NULL;
		if (reusable && s->keep_alive && !u->in.len && !u->out.len)
			pool_put(u);
		else
			upstream_close(u);
	}
	shadow_free(s);
}

/* Parses what arrived of the response. Returns 1 when it is complete, -1 if malformed. */
static int shadow_parse(struct shadow *s, struct buf *in)
{
	static __thread struct http_response resp;
	size_t consumed;
	bool done = false;
	int ret;

	while (!s->head_done) {
		ret = http_parse_response(buf_head(in), in->len, &swd_cfg.limits, s->is_head,
					  &resp);
		if (ret <= 0)
			return ret < 0 ? -1 : 0;
		buf_consume(in, resp.head_len);
		if (resp.status < 200)
			continue; /* interim responses carry nothing to count */
		s->head_done = true;
		s->status = resp.status;
		s->body = resp.body;
		s->left = resp.content_length;
		s->keep_alive = resp.keep_alive;
		if (resp.body == HTTP_BODY_CHUNKED)
			http_chunked_init(&s->chunk);
		if (resp.body == HTTP_BODY_NONE ||
		    (resp.body == HTTP_BODY_LENGTH && !resp.content_length))
			return 1;
	}
	switch (s->body) {
	case HTTP_BODY_LENGTH:
		consumed = in->len < s->left ? in->len : s->left;
		s->left -= consumed;
		buf_consume(in, consumed);
		return s->left ? 0 : 1;
	case HTTP_BODY_CHUNKED:
		if (http_chunked_feed(&s->chunk, buf_head(in), in->len, &consumed, &done))
			return -1;
		buf_consume(in, consumed);
		return done;
	default:
		/* Until close: the caller ends it at EOF. */
		buf_consume(in, in->len);
		return 0;
	}
}

/* Sends the request over s->u, connected. 0, or -1 when the shadow ended. */
static int shadow_send(struct shadow *s)
{
	if (upstream_send(s->u, buf_head(&s->out), s->out.len)) {
		shadow_end(s, SW_ERR_RESET, false);
		return -1;
	}
	buf_free(&s->out);
	return 0;
}

/* The connection came up: the request goes. 0, or -1 when the shadow ended. */
static int shadow_connected(struct shadow *s)
{
	struct upstream *u = s->u;
	socklen_t len = sizeof(int);
	int err = 0;

	getsockopt(u->ev.fd, SOL_SOCKET, SO_ERROR, &err, &len);
	if (err) {
		shadow_end(s, SW_ERR_CONNECT_REFUSED, false);
		return -1;
	}
	u->connecting = false;
	upstream_track(u);
	return shadow_send(s);
}

/* Reads the response and drops it, counting. 0, or -1 when the shadow ended. */
static int shadow_read(struct shadow *s)
{
	struct upstream *u = s->u;
	ssize_t n;
	int ret;

	for (;;) {
		if (buf_reserve(&u->in, SHADOW_READ)) {
			shadow_end(s, SW_ERR_RESET, false);
			return -1;
		}
		n = recv(u->ev.fd, buf_tail(&u->in), SHADOW_READ, 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return 0;
		if (n <= 0) {
			/* Closed: the end of a close-delimited body, or a failure (a reset ends
			 * no body). */
			if (n < 0 || !s->head_done || s->body != HTTP_BODY_CLOSE)
				s->status = 0;
			shadow_end(s, n < 0 || !s->bytes_read ? SW_ERR_RESET : SW_ERR_BAD_RESPONSE,
				   false);
			return -1;
		}
		s->bytes_read += n;
		u->in.len += n;
		upstream_check_peer(u);
		ret = shadow_parse(s, &u->in);
		if (ret) {
			if (ret < 0)
				s->status = 0;
			shadow_end(s, SW_ERR_BAD_RESPONSE, ret > 0);
			return -1;
		}
	}
}

void shadow_upstream_event(struct upstream *u, __u32 events)
{
	struct shadow *s = u->s;

	if (u->connecting && (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) || shadow_connected(s)))
		return;
	if ((events & EPOLLOUT) && upstream_flush(u)) {
		shadow_end(s, SW_ERR_RESET, false);
		return;
	}
	if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && shadow_read(s))
		return;
	upstream_update(u);
}

void shadow_launch(struct shadow *s, int primary_status)
{
	struct worker *w = s->w;
	const struct sw_backend *be = &w->snap->be[s->backend_id];
	struct upstream *u = NULL;
	int idx = -1;

	s->launched = true;
	s->primary_status = primary_status;
	s->bytes_sent = s->out.len;
	s->t_start_us = now_us();
	s->deadline_ms =
		reactor_now_ms(w->r) + swd_cfg.connect_timeout_ms + swd_cfg.response_timeout_ms;
	/* The primaries' replica pick and pools: a shadow is one more request to a backend. */
	if ((be->flags & SW_F_IN_USE) && be->nr_replicas)
		idx = pick_replica(w, s->backend_id, be, 0, 0);
	if (idx >= 0) {
		u = pool_get(w, s->backend_id, idx, &be->replicas[idx], false);
		if (!u)
			u = upstream_connect(w, s->backend_id, idx, &be->replicas[idx]);
	}
	if (!u) {
		shadow_end(s, SW_ERR_CONNECT_REFUSED, false);
		return;
	}
	u->s = s;
	s->u = u;
	if (!u->connecting && shadow_send(s))
		return;
	upstream_update(u);
}

void shadow_tick(struct worker *w)
{
	__u64 now = reactor_now_ms(w->r);
	struct shadow *s, *sn;

	for (s = w->shadows; s; s = sn) {
		sn = s->next;
		if (s->launched && s->deadline_ms <= now) {
			s->status = 0;
			shadow_end(s, SW_ERR_TIMEOUT, false);
		}
	}
}
