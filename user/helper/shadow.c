// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * Shadow requests: a copy of a sampled request goes to the shadow backend, fire and forget.
 * Its response is read and thrown away; only its status, latency and errors are counted,
 * with whether the status matched the primary's. Nothing here ever touches the client:
 * a shadow is created when the request is sampled, launched once the request body is
 * whole and the primary's status is known, and lives on its own connection afterwards.
 *
 * Connections to shadow backends are kept alive and pooled per worker, like the primary
 * ones: a shadow per request on a fresh connection would leave a TIME-WAIT socket each
 * time and run a busy host out of ephemeral ports. Each worker caps its shadows in
 * flight; a sample over the cap is dropped and counted.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sockwayd.h"

/* A connection to a replica of a shadow backend: busy with one shadow, or idle. */
struct shadow_conn {
	struct reactor_ev ev;
	struct worker *w;
	struct shadow_conn *next; /* the worker's idle list */
	struct shadow *s;	  /* the shadow it carries, NULL when idle */
	__u16 backend_id;
	struct sw_addr addr;
	bool connecting;
	__u64 idle_until_ms;
};

struct shadow {
	struct worker *w;
	struct shadow *prev, *next; /* the worker's shadows */
	struct shadow_conn *conn;
	__u16 endpoint_id, backend_id, cell;
	bool launched;
	bool is_head; /* a HEAD: the response ends at its head */
	int primary_status;
	int status;
	struct buf out; /* request head and body */
	struct buf in;	/* response bytes not yet parsed */
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

static void conn_close(struct shadow_conn *c)
{
	reactor_del(c->w->r, &c->ev);
	close(c->ev.fd);
	free(c);
}

static void conn_unlink_idle(struct shadow_conn *c)
{
	struct shadow_conn **p;

	for (p = &c->w->shadow_idle; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			c->w->nr_shadow_idle--;
			break;
		}
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
	buf_free(&s->in);
	free(s);
}

void shadow_discard(struct shadow *s)
{
	shadow_drop(s->w, s->cell);
	shadow_free(s);
}

/*
 * The shadow is over: count what it did (status 0: it failed with err_kind) and keep its
 * connection for the next shadow when the response ended cleanly.
 */
static void shadow_end(struct shadow *s, int err_kind, bool reusable)
{
	struct sw_counters *ctr = worker_cell(s->w, s->cell);
	struct shadow_conn *c = s->conn;
	struct worker *w = s->w;

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
	}
	if (c) {
		c->s = NULL;
		if (reusable && s->keep_alive && !s->in.len && !w->draining &&
		    w->nr_shadow_idle < swd_cfg.pool_size) {
			c->idle_until_ms = reactor_now_ms(w->r) + swd_cfg.keepalive_timeout_ms;
			c->next = w->shadow_idle;
			w->shadow_idle = c;
			w->nr_shadow_idle++;
			reactor_mod(w->r, &c->ev, EPOLLIN);
		} else {
			conn_close(c);
		}
	}
	shadow_free(s);
}

/* Parses what arrived of the response. Returns 1 when it is complete, -1 if malformed. */
static int shadow_parse(struct shadow *s)
{
	static __thread struct http_response resp;
	size_t consumed;
	bool done = false;
	int ret;

	while (!s->head_done) {
		ret = http_parse_response(buf_head(&s->in), s->in.len, &swd_cfg.limits, s->is_head,
					  &resp);
		if (ret <= 0)
			return ret < 0 ? -1 : 0;
		buf_consume(&s->in, resp.head_len);
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
		consumed = s->in.len < s->left ? s->in.len : s->left;
		s->left -= consumed;
		buf_consume(&s->in, consumed);
		return s->left ? 0 : 1;
	case HTTP_BODY_CHUNKED:
		if (http_chunked_feed(&s->chunk, buf_head(&s->in), s->in.len, &consumed, &done))
			return -1;
		buf_consume(&s->in, consumed);
		return done;
	default:
		/* Until close: the caller ends it at EOF. */
		buf_consume(&s->in, s->in.len);
		return 0;
	}
}

static void conn_event(struct reactor *r, struct reactor_ev *ev, __u32 events)
{
	struct shadow_conn *c = ev->owner;
	struct shadow *s = c->s;
	char tmp[16384];
	int err = 0, ret;
	socklen_t len = sizeof(err);
	ssize_t n;

	if (!s) {
		/* An idle connection that speaks is closing (or broken): drop it. */
		conn_unlink_idle(c);
		conn_close(c);
		return;
	}
	if (c->connecting) {
		getsockopt(ev->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err || (events & EPOLLERR)) {
			shadow_end(s, SW_ERR_CONNECT_REFUSED, false);
			return;
		}
		c->connecting = false;
	}
	while (s->out.len) {
		n = send(ev->fd, buf_head(&s->out), s->out.len, MSG_NOSIGNAL);
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			shadow_end(s, SW_ERR_RESET, false);
			return;
		}
		buf_consume(&s->out, n);
	}
	for (;;) {
		n = recv(ev->fd, tmp, sizeof(tmp), 0);
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			/* Closed: the end of a close-delimited body, or a failure. */
			bool whole = s->head_done && s->body == HTTP_BODY_CLOSE;

			if (!whole)
				s->status = 0;
			shadow_end(s, s->bytes_read ? SW_ERR_BAD_RESPONSE : SW_ERR_RESET, false);
			return;
		}
		s->bytes_read += n;
		if (buf_append(&s->in, tmp, n)) {
			shadow_end(s, SW_ERR_RESET, false);
			return;
		}
		ret = shadow_parse(s);
		if (ret) {
			if (ret < 0)
				s->status = 0;
			shadow_end(s, SW_ERR_BAD_RESPONSE, ret > 0);
			return;
		}
	}
	reactor_mod(r, &c->ev, s->out.len ? EPOLLOUT | EPOLLIN : EPOLLIN);
}

/* An idle connection to addr, or a new one. NULL when connect() fails at once. */
static struct shadow_conn *conn_get(struct worker *w, __u16 backend, const struct sw_addr *addr)
{
	struct shadow_conn *c, **p;
	int fd;

	for (p = &w->shadow_idle; (c = *p); p = &c->next) {
		if (c->backend_id == backend && !memcmp(&c->addr, addr, sizeof(*addr))) {
			*p = c->next;
			w->nr_shadow_idle--;
			return c;
		}
	}
	fd = tcp_connect_start(addr);
	if (fd < 0)
		return NULL;
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return NULL;
	}
	c->w = w;
	c->ev.fd = fd;
	c->ev.fn = conn_event;
	c->ev.owner = c;
	c->backend_id = backend;
	c->addr = *addr;
	c->connecting = true;
	if (reactor_add(w->r, &c->ev, EPOLLOUT | EPOLLIN)) {
		close(fd);
		free(c);
		return NULL;
	}
	return c;
}

void shadow_launch(struct shadow *s, int primary_status)
{
	struct worker *w = s->w;
	const struct sw_backend *be = &w->snap->be[s->backend_id];
	__u64 now = reactor_now_ms(w->r);
	__u32 i, idx = 0;
	bool found = false;

	s->launched = true;
	s->primary_status = primary_status;
	s->bytes_sent = s->out.len;
	s->t_start_us = now_us();
	s->deadline_ms = now + swd_cfg.connect_timeout_ms + swd_cfg.response_timeout_ms;
	if (!(be->flags & SW_F_IN_USE) || !be->nr_replicas) {
		shadow_end(s, SW_ERR_CONNECT_REFUSED, false);
		return;
	}
	for (i = 0; i < be->nr_replicas && !found; i++) {
		idx = w->rr[s->backend_id]++ % be->nr_replicas;
		found = w->down_until[s->backend_id][idx] <= now;
	}
	s->conn = found ? conn_get(w, s->backend_id, &be->replicas[idx]) : NULL;
	if (!s->conn) {
		shadow_end(s, SW_ERR_CONNECT_REFUSED, false);
		return;
	}
	s->conn->s = s;
	/* A pooled connection is writable now; a new one says so when connected. */
	reactor_mod(w->r, &s->conn->ev, EPOLLOUT | EPOLLIN);
}

void shadow_tick(struct worker *w)
{
	__u64 now = reactor_now_ms(w->r);
	struct shadow_conn *c, **p;
	struct shadow *s, *sn;

	for (s = w->shadows; s; s = sn) {
		sn = s->next;
		if (s->launched && s->deadline_ms <= now) {
			s->status = 0;
			shadow_end(s, SW_ERR_TIMEOUT, false);
		}
	}
	for (p = &w->shadow_idle; (c = *p);) {
		if (c->idle_until_ms > now) {
			p = &c->next;
			continue;
		}
		*p = c->next;
		w->nr_shadow_idle--;
		conn_close(c);
	}
}

void shadow_close_idle(struct worker *w)
{
	struct shadow_conn *c;

	while ((c = w->shadow_idle)) {
		w->shadow_idle = c->next;
		w->nr_shadow_idle--;
		conn_close(c);
	}
}
