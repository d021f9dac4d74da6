// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * sockwayd's side of the response splice (include/sockway/abi.h, struct sw_conn and the
 * table of enum sw_splice_state, whose transitions S1..S15 the comments cite): arming an
 * upstream's conns entry so that sk_msg moves the response backend -> client, and taking
 * it back, or collecting what the kernel moved, before sockwayd reads that upstream or
 * answers the client itself. The kernel never overtakes bytes sockwayd holds or writes:
 * sockwayd arms only with nothing of the response in hand, and disarms (a compare-and-swap)
 * before it touches the response again.
 */
#include <errno.h>
#include <sys/socket.h>

#include "conns.h"
#include "proxy.h"

/*
 * May the kernel pass the whole response on, head included, if the head is one that
 * head_response_build gives back unchanged? Only when sockwayd has nothing to add to it
 * (an HTTP/1.1 client that keeps its connection, no HEAD, no shadows to launch on the
 * head) and would take every head the kernel takes (its limits are no lower); and not
 * while a pipelined request waits: a response the kernel passes on whole wakes nobody,
 * and that request would wait for the tick. Nor for a client the kernel could route:
 * sockwayd writes its response itself, and so learns at once that the client is idle and
 * can give it back to the kernel before its next request (a response passed on whole is
 * seen only at the client's next event, which then is that request).
 */
static bool splice_whole_ok(const struct exchange *x)
{
	const struct http_limits *lim = &swd_cfg.limits;

	return x->resp == RESP_NONE && !x->splice_whole_tried && !x->is_head && !x->nr_shadows &&
	       x->version_minor == 1 && !x->c->in.len && !x->c->pipelines &&
	       !kroute_client_could(x->c) && exchange_client_keep(x) &&
	       lim->max_header_bytes >= SW_RESPHEAD_MAX &&
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
void splice_arm(struct exchange *x)
{
	struct upstream *u = x->u;
	struct client *c = x->c;
	struct sw_sock_key client;

	/* Not before the request is done: until then sockwayd may still answer the client
	 * itself (a request body timeout), which must not meet kernel-moved bytes. */
	/* A body in a pipe (pipe.c) is between sockets off the fast path already: no
	 * conns entry on the client's side; said here all the same. */
	/* Nor without the cookie of sockwayd's socket to the client, by which the kernel
	 * makes sure that socket, and so the client's, is still the one armed for. */
	if (swd_cfg.no_splice || x->pipe || x->splice != SPLICE_OFF || !u || !u->kc ||
	    !(c->kc || c->egress) || !c->cookie || x->req != REQ_DONE || x->resp == RESP_DONE ||
	    u->in.len || c->out.len)
		return;
	/* Into the local client's socket, or out of sockwayd's own to a remote client. */
	if (c->egress)
		client = c->key;
	else
		sw_conn_key_reverse(&client, &c->key);
	if (x->resp == RESP_NONE) {
		struct sw_counters *ctr = worker_cell(c->w, x->cell);

		if (!splice_whole_ok(x) || u->out.len)
			return;
		/* The client's side of this exchange is over (request and body): counted now,
		 * as a response passed on whole adds nothing to it, and its exchange may end
		 * only once the next request's bytes came (exchange_finish). */
		if (ctr && c->kc)
			counters_add(&ctr->accel_bytes, accel_delta(c->kc, &c->accel_seen));
		sw_conn_splice_prearm(u->kc, &client, c->egress, c->cookie); /* S1 */
		x->splice = SPLICE_WHOLE;
		x->splice_whole_tried = true;
	} else {
		if (x->resp_body != HTTP_BODY_LENGTH || x->resp_left < SW_SPLICE_MIN)
			return;
		sw_conn_splice_arm(u->kc, &client, x->resp_left - 1, c->egress, c->cookie); /* S2 */
		x->splice = SPLICE_BODY;
	}
	x->splice_seen = 0;
	u->splice_used = true;
}

/*
 * The kernel passed the first `done` bytes of the response on, its head whole among them
 * (sk_msg's scan is in kc->head): the exchange goes on from there, as if sockwayd had
 * forwarded them. All of them when it found the response whole in one send (DONE).
 */
static enum xres splice_took_response(struct exchange *x, __u64 done, bool whole)
{
	const struct sw_resphead *h = &x->u->kc->head;
	__u64 total = (__u64)h->head_len + h->body_len;

	x->resp = RESP_BODY;
	x->spliced = true;
	if (done < h->head_len || done > total || (done == total) != whole)
		/* sk_msg never stops inside the head, and moves the last byte only with
		 * all the others. */
		return exchange_upstream_failed(x, SW_ERR_BAD_RESPONSE);
	x->status = (int)h->status;
	x->resp_body = HTTP_BODY_LENGTH;
	x->resp_left = total - done;
	if (whole)
		x->resp = RESP_DONE;
	if (whole) {
		x->t_end_us = __atomic_load_n(&x->u->kc->done_ns, __ATOMIC_RELAXED) / 1000;
		__atomic_fetch_add(&x->c->w->stats.kernel_responses, 1, __ATOMIC_RELAXED);
	}
	x->resp_keepalive = true;
	x->client_keep = exchange_client_keep(x);
	x->bytes_out += done;
	/* A routed request's whole response is the kernel's to count (kroute.h). */
	if (!(x->kernel && whole))
		exchange_count_status(x, x->status);
	return XR_GOES_ON;
}

/*
 * Before sockwayd reads an upstream with a splice armed: takes it back (S3), and counts what
 * the kernel moved as sent (S13). SETTLED_READ: read on; SETTLED_BUSY: leave the socket
 * alone; SETTLED_FAILED: the exchange cannot go on, *ret says what became of it.
 */
enum splice_settled splice_settle(struct exchange *x, enum xres *ret)
{
	struct upstream *u = x->u;
	bool whole = x->splice == SPLICE_WHOLE;
	long long done;
	__u32 seen;
	char b;

	*ret = XR_GOES_ON;
	done = sw_conn_splice_settle(u->kc, &seen);
	/* Taking a whole response: over within its sk_msg run; nothing to read before. */
	if (seen == SW_SPLICE_TAKING)
		return SETTLED_BUSY;
	if (done < 0) {
		/* Active: a wake-up now is the backend closing early (it sends nothing more,
		 * so the kernel is done with the splice), or nothing. */
		ssize_t n = recv(u->ev.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return SETTLED_BUSY;
		if (n > 0) {
			/* Bytes for sockwayd while the kernel sends to the client: their order
			 * is lost; the kernel must never do this. */
			*ret = exchange_upstream_failed(x, SW_ERR_BAD_RESPONSE);
			return SETTLED_FAILED;
		}
		done = (long long)__atomic_load_n(&u->kc->done, __ATOMIC_ACQUIRE);
		__atomic_store_n(&u->kc->splice, SW_SPLICE_IDLE, __ATOMIC_RELAXED); /* S14 */
	}
	x->splice = SPLICE_OFF;
	if (whole) {
		if (done > 0)
			*ret = splice_took_response(x, (__u64)done, seen == SW_SPLICE_DONE);
		return *ret == XR_GOES_ON ? SETTLED_READ : SETTLED_FAILED;
	}
	x->spliced |= done > 0;
	if ((__u64)done > x->resp_left) {
		*ret = exchange_upstream_failed(x, SW_ERR_BAD_RESPONSE);
		return SETTLED_FAILED;
	}
	x->resp_left -= done;
	x->bytes_out += done;
	return SETTLED_READ;
}

/*
 * Before sockwayd answers the client itself (an error, a timeout): takes the splice back.
 * If the kernel moved bytes, or is moving them, the client has part of a response: it can
 * only be closed now (exchange_fail does that once the response started).
 */
void splice_abandon(struct exchange *x)
{
	struct sw_conn *kc;
	long long done;
	bool active;
	__u32 seen;

	if (x->splice == SPLICE_OFF || !x->u || !x->u->kc)
		return;
	kc = x->u->kc;
	done = sw_conn_splice_settle(kc, &seen);
	active = done < 0;
	if (active)
		/* Still moving (perhaps not one byte yet): started all the same. */
		done = (long long)__atomic_load_n(&kc->done, __ATOMIC_ACQUIRE);
	if (active || done) {
		/* A whole response's head went first, and its status was in kc->head before
		 * the kernel started (sk_msg writes it before the swap to ACTIVE). */
		if (x->splice == SPLICE_WHOLE && x->resp == RESP_NONE) {
			x->status = (int)kc->head.status;
			exchange_count_status(x, x->status);
		}
		x->resp = RESP_BODY;
		x->spliced = true;
		x->bytes_out += (__u64)done;
	}
	x->splice = SPLICE_OFF;
}

/* Has the kernel passed the whole response on by itself (nothing woke sockwayd)? */
bool splice_done(const struct exchange *x)
{
	return x->splice == SPLICE_WHOLE && x->u && x->u->kc &&
	       __atomic_load_n(&x->u->kc->splice, __ATOMIC_ACQUIRE) == SW_SPLICE_DONE;
}

/*
 * Ends the exchange if the kernel passed its whole response on (DONE). take_back: the
 * client sent bytes (a pipelined request, or its close) while the response was armed. If
 * the kernel has not taken it yet, the arming is taken back and the response comes
 * through sockwayd. If it has (TAKING, or DONE since the client event began; a remote
 * client's bytes may have been read in the round's batch before that event's first
 * look, client_read_ok), the response's bytes were still on their way when the client
 * sent its own: the tick ends the exchange, so that no answer to that request can
 * overtake them. Such a client pipelines, and gets no more responses that end with
 * nobody woken.
 */
enum xres splice_check(struct exchange *x, bool take_back)
{
	struct sw_conn *kc;
	enum xres ret;
	__u32 state;

	if (x->splice != SPLICE_WHOLE || !x->u || !x->u->kc)
		return XR_GOES_ON;
	kc = x->u->kc;
	state = __atomic_load_n(&kc->splice, __ATOMIC_ACQUIRE);
	if (take_back && x->c->in.len) {
		x->c->pipelines = true;
		if (state == SW_SPLICE_PREARMED &&
		    __atomic_compare_exchange_n(&kc->splice, &state, SW_SPLICE_IDLE, false,
						__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) /* S3 */
			x->splice = SPLICE_OFF;
		return XR_GOES_ON;
	}
	/* Not done (a large response's last byte wakes sockwayd), unless a half-close
	 * takes it back: nothing to overtake then, and the close must not wait. */
	if (state != SW_SPLICE_DONE && (state != SW_SPLICE_PREARMED || !take_back))
		return XR_GOES_ON;
	switch (splice_settle(x, &ret)) {
	case SETTLED_BUSY:
		return XR_GOES_ON; /* the kernel is taking it: the tick ends it */
	case SETTLED_FAILED:
		return ret;
	case SETTLED_READ:
		break;
	}
	return x->resp == RESP_DONE ? exchange_finish(x) : XR_GOES_ON;
}

/* For the response timer: did the kernel move body bytes since the last check? */
bool splice_progressed(struct exchange *x)
{
	__u64 done;

	if (x->splice == SPLICE_OFF || !x->u || !x->u->kc)
		return false;
	done = __atomic_load_n(&x->u->kc->done, __ATOMIC_RELAXED);
	if (done == x->splice_seen)
		return false;
	x->splice_seen = done;
	return true;
}
