// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * swbackend's responses: what every response shares, built once from the options, and the
 * queue of responses on a connection, held back by --latency-ms and written in order.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/uio.h>

#include "backend.h"
#include "reason.h"

/*
 * A client that pipelines faster than it reads stops being read once this many responses
 * wait on its connection, so its memory stays bounded; reading resumes at half.
 */
#define MAX_QUEUED_RESPONSES 128
#define WRITE_IOVECS	     64
#define FILLER		     "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ\n"

/*
 * Builds the parts every response shares: the body (once, however large, so a 1 MiB
 * response costs no copy), its chunk framing, and the head up to the per-request headers.
 * 0 or -ENOMEM.
 */
int response_templates_build(void)
{
	size_t name_len = strlen(cfg.name), filler_len = strlen(FILLER);
	char framing[64];
	int len;

	cfg.body_len = cfg.body_size < 0 ? name_len + 1 : (size_t)cfg.body_size;
	cfg.body = malloc(cfg.body_len + 1);
	if (!cfg.body)
		return -ENOMEM;
	/* "NAME\n" first, so even a large body says who sent it, then printable filler. */
	for (size_t i = 0; i < cfg.body_len; i++) {
		if (i < name_len)
			cfg.body[i] = cfg.name[i];
		else if (i == name_len)
			cfg.body[i] = '\n';
		else
			cfg.body[i] = FILLER[(i - name_len - 1) % filler_len];
	}

	cfg.status_has_body = cfg.status != 204 && cfg.status != 304;
	if (!cfg.status_has_body) {
		framing[0] = '\0';
	} else if (cfg.chunked) {
		/* One chunk with the whole body; an empty body is just the last chunk. */
		if (cfg.body_len) {
			cfg.chunk_head_len = snprintf(cfg.chunk_head, sizeof(cfg.chunk_head),
						      "%zx\r\n", cfg.body_len);
			cfg.chunk_tail = "\r\n0\r\n\r\n";
		} else {
			cfg.chunk_tail = "0\r\n\r\n";
		}
		cfg.chunk_tail_len = strlen(cfg.chunk_tail);
		snprintf(framing, sizeof(framing), "Transfer-Encoding: chunked\r\n");
	} else {
		snprintf(framing, sizeof(framing), "Content-Length: %zu\r\n", cfg.body_len);
	}

	len = asprintf(&cfg.head_prefix,
		       "HTTP/1.1 %d %s\r\nX-Backend: %s\r\nContent-Type: text/plain\r\n%s",
		       cfg.status, http_reason(cfg.status) ? http_reason(cfg.status) : "Status",
		       cfg.name, framing);
	if (len < 0)
		return -ENOMEM;
	cfg.head_prefix_len = len;
	return 0;
}

/* Points the worker's timerfd at the earliest due response, or disarms it. */
void timer_arm(struct worker *w)
{
	struct itimerspec its = {};

	if (w->timer_head) {
		its.it_value.tv_sec = w->timer_head->due_ns / 1000000000ULL;
		its.it_value.tv_nsec = w->timer_head->due_ns % 1000000000ULL;
	}
	timerfd_settime(w->timer.fd, TFD_TIMER_ABSTIME, &its, NULL);
}

/*
 * Every delayed response waits the same --latency-ms, so appending keeps the list ordered
 * by due time and the earliest is always at the head.
 */
static void timer_add(struct worker *w, struct response *r)
{
	r->timer_prev = w->timer_tail;
	r->timer_next = NULL;
	if (w->timer_tail)
		w->timer_tail->timer_next = r;
	else
		w->timer_head = r;
	w->timer_tail = r;
	r->in_timer_list = true;
	if (w->timer_head == r)
		timer_arm(w);
}

void timer_remove(struct worker *w, struct response *r)
{
	if (r->timer_prev)
		r->timer_prev->timer_next = r->timer_next;
	else
		w->timer_head = r->timer_next;
	if (r->timer_next)
		r->timer_next->timer_prev = r->timer_prev;
	else
		w->timer_tail = r->timer_prev;
	r->in_timer_list = false;
}

void response_free(struct worker *w, struct response *r)
{
	if (r->in_timer_list)
		timer_remove(w, r);
	free(r);
}

/* Allocates a response with room for size bytes of head; NULL with errno set. */
struct response *response_alloc(size_t size)
{
	struct response *r = malloc(sizeof(*r) + size);

	if (!r)
		return NULL;
	memset(r, 0, sizeof(*r));
	return r;
}

void response_add_piece(struct response *r, const void *data, size_t len)
{
	if (!len)
		return;
	r->iov[r->iovcnt].iov_base = (void *)data;
	r->iov[r->iovcnt].iov_len = len;
	r->iovcnt++;
	r->total += len;
}

/* Appends r to c's queue; a response with a due time also waits in the timer list. */
void response_queue(struct conn *c, struct response *r)
{
	r->conn = c;
	if (c->out_tail)
		c->out_tail->next = r;
	else
		c->out_head = r;
	c->out_tail = r;
	c->out_count++;
	if (c->out_count >= MAX_QUEUED_RESPONSES)
		c->read_paused = true;
	if (r->due_ns)
		timer_add(c->worker, r);
}

/* Queues a response whose bytes are all given; 0 or -ENOMEM. */
int response_queue_bytes(struct conn *c, const char *data, size_t len, bool close_after)
{
	struct response *r = response_alloc(len);

	if (!r)
		return -ENOMEM;
	memcpy(r->data, data, len);
	response_add_piece(r, r->data, len);
	r->close_after = close_after;
	response_queue(c, r);
	return 0;
}

/*
 * Writes the due responses at the head of the queue, in order, as far as the socket takes
 * them. 0 (including when the socket is full: EPOLLOUT resumes) or -errno.
 */
int conn_flush(struct conn *c)
{
	struct worker *w = c->worker;
	struct response *r;

	while (c->out_head && !c->out_head->due_ns) {
		struct iovec iov[WRITE_IOVECS];
		size_t skip = c->out_sent, want = 0;
		ssize_t written;
		int n = 0;

		for (r = c->out_head; r && !r->due_ns; r = r->next) {
			if (n + r->iovcnt > WRITE_IOVECS)
				break;
			for (int i = 0; i < r->iovcnt; i++) {
				if (skip >= r->iov[i].iov_len) {
					skip -= r->iov[i].iov_len;
					continue;
				}
				iov[n].iov_base = (char *)r->iov[i].iov_base + skip;
				iov[n].iov_len = r->iov[i].iov_len - skip;
				want += iov[n].iov_len;
				skip = 0;
				n++;
			}
		}
		written = writev(c->src.fd, iov, n);
		if (written < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			return -errno;
		}
		c->out_sent += written;
		while ((r = c->out_head) && c->out_sent >= r->total) {
			c->out_sent -= r->total;
			c->out_head = r->next;
			if (!c->out_head)
				c->out_tail = NULL;
			c->out_count--;
			if (r->close_after) {
				/*
				 * FIN rather than close(): closing with unread input would send
				 * a RST that can destroy the response before the client reads it.
				 */
				shutdown(c->src.fd, SHUT_WR);
				c->write_shut = true;
			}
			response_free(w, r);
		}
		if ((size_t)written < want)
			return 0;
	}
	if (c->read_paused && c->out_count <= MAX_QUEUED_RESPONSES / 2)
		c->read_paused = false;
	/* The peer is gone and everything it asked for is answered. */
	if (!c->out_head && c->peer_eof)
		conn_close(c);
	return 0;
}
