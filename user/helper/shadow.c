// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * Shadow requests: a copy of a sampled request goes to the shadow backend, fire and forget.
 * Its response is read and thrown away; only its status, latency and errors are counted,
 * with whether the status matched the primary's. Nothing here ever touches the client:
 * a shadow is created when the request is sampled, launched once the request body is
 * whole and the primary's status is known, and lives on its own connection afterwards.
 * Each worker caps its shadows in flight; a sample over the cap is dropped and counted.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sockwayd.h"

/* A shadow's response head must fit here; the body is only counted. */
#define SHADOW_HEAD_MAX 16384

struct shadow {
	struct reactor_ev ev;
	struct worker *w;
	struct shadow *prev, *next; /* the worker's shadows in flight */
	__u16 endpoint_id, backend_id, cell;
	bool launched;
	bool connecting;
	int primary_status;
	int status;
	struct buf out;	 /* request head and body */
	struct buf head; /* response bytes until the head is whole */
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
			  const char *head, size_t head_len)
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
	s->ev.fd = -1;
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

	if (s->ev.fd >= 0) {
		reactor_del(w->r, &s->ev);
		close(s->ev.fd);
	}
	if (s->prev)
		s->prev->next = s->next;
	else
		w->shadows = s->next;
	if (s->next)
		s->next->prev = s->prev;
	w->nr_shadows--;
	buf_free(&s->out);
	buf_free(&s->head);
	free(s);
}

void shadow_discard(struct shadow *s)
{
	shadow_drop(s->w, s->cell);
	shadow_free(s);
}

/* The shadow is over: count what it did. status 0 means it failed with error kind. */
static void shadow_end(struct shadow *s, int err_kind)
{
	struct sw_counters *ctr = worker_cell(s->w, s->cell);

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
	shadow_free(s);
}

/* Reads the status code off a response head that starts in buf. 0 if it is not one. */
static int status_of(const char *buf, size_t len)
{
	int st;

	if (len < 12 || memcmp(buf, "HTTP/1.", 7) || buf[8] != ' ')
		return 0;
	if (buf[9] < '1' || buf[9] > '5' || buf[10] < '0' || buf[10] > '9' || buf[11] < '0' ||
	    buf[11] > '9')
		return 0;
	st = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
	return st;
}

static void shadow_event(struct reactor *r, struct reactor_ev *ev, __u32 events)
{
	struct shadow *s = ev->owner;
	char discard[16384];
	int err = 0;
	socklen_t len = sizeof(err);
	ssize_t n;

	if (s->connecting) {
		getsockopt(ev->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err || (events & EPOLLERR)) {
			shadow_end(s, SW_ERR_CONNECT_REFUSED);
			return;
		}
		s->connecting = false;
	}
	while (s->out.len) {
		n = send(ev->fd, buf_head(&s->out), s->out.len, MSG_NOSIGNAL);
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			shadow_end(s, SW_ERR_RESET);
			return;
		}
		buf_consume(&s->out, n);
	}
	/* The request went with "Connection: close": the response ends at the close. */
	for (;;) {
		n = recv(ev->fd, discard, sizeof(discard), 0);
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0) {
			shadow_end(s, s->status ? 0 : SW_ERR_RESET);
			return;
		}
		if (n == 0) {
			if (!s->status)
				s->status = status_of(buf_head(&s->head), s->head.len);
			shadow_end(s, s->head.len ? SW_ERR_BAD_RESPONSE : SW_ERR_RESET);
			return;
		}
		s->bytes_read += n;
		if (!s->status && s->head.len < SHADOW_HEAD_MAX) {
			buf_append(&s->head, discard, n);
			s->status = status_of(buf_head(&s->head), s->head.len);
		}
	}
	reactor_mod(r, &s->ev, s->out.len ? EPOLLOUT | EPOLLIN : EPOLLIN);
}

void shadow_launch(struct shadow *s, int primary_status)
{
	struct worker *w = s->w;
	const struct sw_backend *be = &w->snap->be[s->backend_id];
	struct sockaddr_storage ss;
	const struct sw_addr *a;
	__u64 now = reactor_now_ms(w->r);
	__u32 i, idx = 0;
	socklen_t len;
	int fd, one = 1;
	bool found = false;

	s->launched = true;
	s->primary_status = primary_status;
	s->bytes_sent = s->out.len;
	s->t_start_us = now_us();
	s->deadline_ms = now + swd_cfg.connect_timeout_ms + swd_cfg.response_timeout_ms;
	if (!(be->flags & SW_F_IN_USE) || !be->nr_replicas) {
		shadow_end(s, SW_ERR_CONNECT_REFUSED);
		return;
	}
	for (i = 0; i < be->nr_replicas && !found; i++) {
		idx = w->rr[s->backend_id]++ % be->nr_replicas;
		found = w->down_until[s->backend_id][idx] <= now;
	}
	if (!found) {
		shadow_end(s, SW_ERR_CONNECT_REFUSED);
		return;
	}
	a = &be->replicas[idx];
	len = sw_addr_to_sockaddr(a, &ss);
	fd = socket(a->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || (connect(fd, (struct sockaddr *)&ss, len) && errno != EINPROGRESS)) {
		if (fd >= 0)
			close(fd);
		shadow_end(s, SW_ERR_CONNECT_REFUSED);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	s->ev.fd = fd;
	s->ev.fn = shadow_event;
	s->ev.owner = s;
	s->connecting = true;
	if (reactor_add(w->r, &s->ev, EPOLLOUT | EPOLLIN)) {
		close(fd);
		s->ev.fd = -1;
		shadow_end(s, SW_ERR_CONNECT_REFUSED);
	}
}

void shadow_tick(struct worker *w)
{
	__u64 now = reactor_now_ms(w->r);
	struct shadow *s, *sn;

	for (s = w->shadows; s; s = sn) {
		sn = s->next;
		if (s->launched && s->deadline_ms <= now)
			shadow_end(s, SW_ERR_TIMEOUT);
	}
}
