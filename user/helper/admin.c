// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * The admin listener: GET /healthz, GET /metrics (Prometheus text format) and GET /policy
 * (the export JSON), HEAD of each. It runs off the request path on its own thread, one
 * request per connection; it reads the maps with syscalls and the workers' stats with
 * relaxed loads.
 *
 * The thread is a reactor (reactor.h) so that no client can hold it: sockets are
 * non-blocking, every connection has a deadline, and there are at most ADMIN_MAX_CONNS of
 * them. A connection moves through two states:
 *
 *   READ_HEAD     accepted; the request head arrives into a fixed buffer. It must be whole
 *                 within ADMIN_HEAD_TIMEOUT_MS of the accept (slowloris) and fit in the
 *                 buffer (otherwise 400).
 *   WRITE_ANSWER  the whole answer is built at once into the output buffer and sent as the
 *                 socket takes it; the client must take all of it within
 *                 ADMIN_ANSWER_TIMEOUT_MS (a client that never reads). Sent: closed.
 *
 * Any missed deadline, error or early close closes the connection from either state.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "policy_json.h"
#include "reason.h"
#include "sockwayd.h"

/* Above this, a new connection closes the oldest one (admin_accept says why). */
#define ADMIN_MAX_CONNS 64
/* Accepts per round: fewer than half the cap, so a connection accepted in one round is not
 * pushed out by the accepts of that round and the next before its request was read. */
#define ADMIN_ACCEPT_BATCH 16
/* A request head is a line and a few fields; 8 KiB is plenty and bounds each connection. */
#define ADMIN_HEAD_MAX		8192
#define ADMIN_HEAD_TIMEOUT_MS	2000
#define ADMIN_ANSWER_TIMEOUT_MS 10000
/* Deadlines are checked this often: they fire up to this late. */
#define ADMIN_TICK_MS 100

enum admin_conn_state {
	ADMIN_READ_HEAD,
	ADMIN_WRITE_ANSWER,
};

struct admin_conn {
	struct reactor_ev ev;
	struct admin *a;
	struct admin_conn *prev, *next; /* in accept order: a->oldest is the first */
	enum admin_conn_state state;
	__u64 deadline_ms;
	struct buf out; /* the answer not yet sent (WRITE_ANSWER) */
	size_t in_len;
	char in[ADMIN_HEAD_MAX];
};

struct admin {
	pthread_t thread;
	struct reactor *r;
	struct reactor_ev listener;
	/* admin_stop writes a byte here; its handler sets stop, which ends reactor_run. */
	struct reactor_ev stop_ev;
	int stop_pipe[2];
	bool stop;
	struct admin_conn *oldest, *newest;
	unsigned nr_conns;
	/* The listener is out of epoll until the next tick (admin_accept_pause). */
	bool accept_paused;
	/* Times it was: only this thread writes and reads it (/metrics is built here). */
	__u64 accept_paused_count;
	/* swd_cfg.limits with the head cut to what the buffer holds. */
	struct http_limits limits;
	struct worker *workers;
	unsigned nr;
	struct sw_maps *maps;
	/* /policy's JSON for one generation: reading the maps costs about a millisecond,
	 * and a client asking again and again must not hold the loop (and /healthz). */
	char *policy_json;
	__u64 policy_generation;
};

static const char *const error_kinds[SW_ERR_MAX] = {"connect_refused", "reset", "timeout",
						    "bad_response"};

static __u64 load(const __u64 *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* Escapes a label value (names are [A-Za-z0-9._-], but a "?" may stand for a lost one). */
static void metrics_cells(const struct admin *a, struct buf *b)
{
	struct sw_endpoint ep;
	struct sw_backend be;
	struct sw_counters c;
	__u32 i, k;

	buf_printf(
		b,
		"# HELP sockway_requests_total Requests per endpoint, backend and role.\n"
		"# TYPE sockway_requests_total counter\n"
		"# HELP sockway_responses_total Responses by status class.\n"
		"# TYPE sockway_responses_total counter\n"
		"# HELP sockway_upstream_errors_total Upstream failures by kind.\n"
		"# TYPE sockway_upstream_errors_total counter\n"
		"# HELP sockway_bytes_from_client_total Request bytes.\n"
		"# TYPE sockway_bytes_from_client_total counter\n"
		"# HELP sockway_bytes_to_client_total Response bytes.\n"
		"# TYPE sockway_bytes_to_client_total counter\n"
		"# HELP sockway_accel_bytes_total Bytes the kernel moved socket to socket (sk_msg) "
		"for these exchanges, both ways.\n"
		"# TYPE sockway_accel_bytes_total counter\n"
		"# HELP sockway_request_duration_seconds Time from request head to response end.\n"
		"# TYPE sockway_request_duration_seconds histogram\n"
		"# HELP sockway_shadow_status_match_total Shadow responses whose status equalled "
		"the primary's.\n"
		"# TYPE sockway_shadow_status_match_total counter\n"
		"# HELP sockway_shadow_dropped_total Shadow samples dropped (queue full, body too "
		"large).\n"
		"# TYPE sockway_shadow_dropped_total counter\n");
	for (i = 0; i < SW_MAX_CELLS; i++) {
		const struct sw_cell *cell = &a->maps->cells[i];
		char labels[160];
		const char *en = "?", *bn = "?";
		__u64 cum = 0;

		if (!(cell->flags & SW_F_IN_USE))
			continue;
		if (!sw_endpoint_read(a->maps, cell->endpoint_id, &ep, NULL) &&
		    (ep.flags & SW_F_IN_USE))
			en = ep.name;
		if (!sw_backend_read(a->maps, cell->backend_id, &be) && (be.flags & SW_F_IN_USE))
			bn = be.name;
		snprintf(labels, sizeof(labels), "endpoint=\"%s\",backend=\"%s\",role=\"%s\"", en,
			 bn, cell->role == SW_ROLE_SHADOW ? "shadow" : "primary");
		sw_cell_sum(cell, &c);
		buf_printf(b, "sockway_requests_total{%s} %llu\n", labels,
			   (unsigned long long)c.requests);
		for (k = 0; k < 5; k++)
			buf_printf(b, "sockway_responses_total{%s,class=\"%uxx\"} %llu\n", labels,
				   k + 1, (unsigned long long)c.status[k]);
		for (k = 0; k < SW_ERR_MAX; k++)
			buf_printf(b, "sockway_upstream_errors_total{%s,kind=\"%s\"} %llu\n",
				   labels, error_kinds[k], (unsigned long long)c.errors[k]);
		buf_printf(b, "sockway_bytes_from_client_total{%s} %llu\n", labels,
			   (unsigned long long)c.bytes_from_client);
		buf_printf(b, "sockway_bytes_to_client_total{%s} %llu\n", labels,
			   (unsigned long long)c.bytes_to_client);
		buf_printf(b, "sockway_accel_bytes_total{%s} %llu\n", labels,
			   (unsigned long long)c.accel_bytes);
		/* Prometheus buckets are cumulative, in seconds; ours are [2^k, 2^(k+1)) us. */
		for (k = 0; k + 1 < SW_LAT_BUCKETS; k++) {
			cum += c.latency[k];
			buf_printf(
				b, "sockway_request_duration_seconds_bucket{%s,le=\"%g\"} %llu\n",
				labels, (double)(1ULL << (k + 1)) / 1e6, (unsigned long long)cum);
		}
		cum += c.latency[SW_LAT_BUCKETS - 1];
		buf_printf(b, "sockway_request_duration_seconds_bucket{%s,le=\"+Inf\"} %llu\n",
			   labels, (unsigned long long)cum);
		buf_printf(b, "sockway_request_duration_seconds_sum{%s} %.6f\n", labels,
			   c.latency_sum_us / 1e6);
		buf_printf(b, "sockway_request_duration_seconds_count{%s} %llu\n", labels,
			   (unsigned long long)cum);
		if (cell->role == SW_ROLE_SHADOW) {
			buf_printf(b, "sockway_shadow_status_match_total{%s} %llu\n", labels,
				   (unsigned long long)c.shadow_match);
			buf_printf(b, "sockway_shadow_dropped_total{%s} %llu\n", labels,
				   (unsigned long long)c.shadow_drops);
		}
	}
}

static void metrics_workers(const struct admin *a, struct buf *b)
{
	static const int statuses[SWD_NR_BAD] = SWD_BAD_STATUSES;
	__u64 conns = 0, active = 0, unrouted = 0, drops = 0, reloads = 0, stale = 0;
	__u64 bad[SWD_NR_BAD] = {};
	__u64 kresp = 0, ktick = 0, under = 0, retries[SWD_RETRY_MAX] = {};
	__u64 adopted = 0, handoffs = 0, lent = 0, untracked = 0, piped = 0, cl_untracked = 0;
	__u64 batched = 0, batched_reads = 0, batching = 0;
	__u64 paused = a->accept_paused_count;
	unsigned i, k;

	for (i = 0; i < a->nr; i++) {
		const struct swd_worker_stats *s = &a->workers[i].stats;

		conns += load(&s->connections);
		active += load(&s->active);
		unrouted += load(&s->unrouted);
		drops += load(&s->shadow_drops);
		reloads += load(&s->policy_reloads);
		stale += load(&s->policy_stale);
		kresp += load(&s->kernel_responses);
		ktick += load(&s->kernel_responses_tick);
		under += load(&s->underscore_headers);
		adopted += load(&s->kroute_adopted);
		handoffs += load(&s->kroute_handoffs);
		lent += load(&s->lend_opened);
		untracked += load(&s->untracked);
		cl_untracked += load(&s->clients_untracked);
		piped += load(&s->piped_bytes);
		paused += load(&s->accept_paused);
		batched += load(&s->batch.writes);
		batched_reads += load(&s->batch.reads);
		batching += load(&s->batch.enabled);
		for (k = 0; k < SWD_RETRY_MAX; k++)
			retries[k] += load(&s->retries[k]);
		for (k = 0; k < SWD_NR_BAD; k++)
			bad[k] += load(&s->bad_requests[k]);
	}
	buf_printf(b,
		   "# HELP sockway_connections_total Client connections accepted.\n"
		   "# TYPE sockway_connections_total counter\n"
		   "sockway_connections_total %llu\n"
		   "# HELP sockway_connections_active Client connections open.\n"
		   "# TYPE sockway_connections_active gauge\n"
		   "sockway_connections_active %llu\n"
		   "# HELP sockway_unrouted_requests_total Requests no route matched (404).\n"
		   "# TYPE sockway_unrouted_requests_total counter\n"
		   "sockway_unrouted_requests_total %llu\n"
		   "# HELP sockway_shadow_drops_total Shadow samples dropped by all workers.\n"
		   "# TYPE sockway_shadow_drops_total counter\n"
		   "sockway_shadow_drops_total %llu\n"
		   "# HELP sockway_policy_reloads_total Policy copies reloaded by the workers.\n"
		   "# TYPE sockway_policy_reloads_total counter\n"
		   "sockway_policy_reloads_total %llu\n"
		   "# HELP sockway_policy_stale_total Policy reloads given up (a writer stuck "
		   "mid-commit).\n"
		   "# TYPE sockway_policy_stale_total counter\n"
		   "sockway_policy_stale_total %llu\n"
		   "# HELP sockway_policy_generation The policy generation in the maps.\n"
		   "# TYPE sockway_policy_generation gauge\n"
		   "sockway_policy_generation %llu\n"
		   "# HELP sockway_policy_refused_total Policy documents sockway apply refused "
		   "(the live policy stayed).\n"
		   "# TYPE sockway_policy_refused_total counter\n"
		   "sockway_policy_refused_total %llu\n"
		   "# HELP sockway_bad_requests_total Requests refused before routing, by status.\n"
		   "# TYPE sockway_bad_requests_total counter\n",
		   (unsigned long long)conns, (unsigned long long)active,
		   (unsigned long long)unrouted, (unsigned long long)drops,
		   (unsigned long long)reloads, (unsigned long long)stale,
		   (unsigned long long)sw_generation(a->maps),
		   (unsigned long long)__atomic_load_n(&a->maps->ctl->policy_refused,
						       __ATOMIC_RELAXED));
	for (k = 0; k < SWD_NR_BAD; k++)
		buf_printf(b, "sockway_bad_requests_total{status=\"%d\"} %llu\n", statuses[k],
			   (unsigned long long)bad[k]);
	buf_printf(
		b,
		"# HELP sockway_kernel_responses_total Whole responses the kernel passed "
		"backend -> client with nobody woken.\n"
		"# TYPE sockway_kernel_responses_total counter\n"
		"sockway_kernel_responses_total %llu\n"
		"# HELP sockway_kernel_responses_tick_total Of those, the ones sockwayd ended at "
		"its tick (the client stayed quiet).\n"
		"# TYPE sockway_kernel_responses_tick_total counter\n"
		"sockway_kernel_responses_tick_total %llu\n"
		"# HELP sockway_underscore_headers_dropped_total Request header fields dropped "
		"for a '_' in their name.\n"
		"# TYPE sockway_underscore_headers_dropped_total counter\n"
		"sockway_underscore_headers_dropped_total %llu\n"
		"# HELP sockway_upstream_retries_total Requests sent to a second replica, by "
		"why the first failed.\n"
		"# TYPE sockway_upstream_retries_total counter\n"
		"sockway_upstream_retries_total{reason=\"connect\"} %llu\n"
		"sockway_upstream_retries_total{reason=\"reset\"} %llu\n"
		"sockway_upstream_retries_total{reason=\"timeout\"} %llu\n",
		(unsigned long long)kresp, (unsigned long long)ktick, (unsigned long long)under,
		(unsigned long long)retries[SWD_RETRY_CONNECT],
		(unsigned long long)retries[SWD_RETRY_RESET],
		(unsigned long long)retries[SWD_RETRY_TIMEOUT]);
	buf_printf(b,
		   "# HELP sockway_kroute_adopted_total Requests the kernel routed whose exchange "
		   "sockwayd took over (a timeout, an error, a response it could not pass on "
		   "whole, the client's next event).\n"
		   "# TYPE sockway_kroute_adopted_total counter\n"
		   "sockway_kroute_adopted_total %llu\n"
		   "# HELP sockway_kroute_handoffs_total Requests the kernel decided on and left "
		   "to sockwayd (a shadow sample, no lent connection).\n"
		   "# TYPE sockway_kroute_handoffs_total counter\n"
		   "sockway_kroute_handoffs_total %llu\n"
		   "# HELP sockway_lend_opened_total Upstream connections opened to be lent to "
		   "the kernel.\n"
		   "# TYPE sockway_lend_opened_total counter\n"
		   "sockway_lend_opened_total %llu\n"
		   "# HELP sockway_upstream_untracked_total Upstream connections taken out of the "
		   "kernel path: the backend's end is local but not accelerated, so sk_msg could "
		   "only cost.\n"
		   "# TYPE sockway_upstream_untracked_total counter\n"
		   "sockway_upstream_untracked_total %llu\n"
		   "# HELP sockway_client_untracked_total Remote clients' sockets taken out of "
		   "egress_hash: their requests went to backends the kernel cannot reach (or the "
		   "egress splice is off).\n"
		   "# TYPE sockway_client_untracked_total counter\n"
		   "sockway_client_untracked_total %llu\n"
		   "# HELP sockway_piped_bytes_total Response body bytes moved from backends to "
		   "clients through a pipe (splice), never copied into sockwayd.\n"
		   "# TYPE sockway_piped_bytes_total counter\n"
		   "sockway_piped_bytes_total %llu\n"
		   "# HELP sockway_accept_paused_total Times a worker or the admin listener "
		   "stopped accepting connections until its next tick (100 ms): no file "
		   "descriptor left.\n"
		   "# TYPE sockway_accept_paused_total counter\n"
		   "sockway_accept_paused_total %llu\n"
		   "# HELP sockway_batched_writes_total Writes made together at the end of an "
		   "event-loop round, in one io_uring_enter: to clients off the kernel path, and "
		   "to backends.\n"
		   "# TYPE sockway_batched_writes_total counter\n"
		   "sockway_batched_writes_total %llu\n"
		   "# HELP sockway_batched_reads_total Reads of sockets off the kernel path that "
		   "epoll found readable, made together before the round's handlers ran, in one "
		   "io_uring_enter.\n"
		   "# TYPE sockway_batched_reads_total counter\n"
		   "sockway_batched_reads_total %llu\n"
		   "# HELP sockway_batching_workers Workers that batch their writes and reads "
		   "(0: none, with --no-uring, before Linux 6.15, or where io_uring is "
		   "refused).\n"
		   "# TYPE sockway_batching_workers gauge\n"
		   "sockway_batching_workers %llu\n",
		   (unsigned long long)adopted, (unsigned long long)handoffs,
		   (unsigned long long)lent, (unsigned long long)untracked,
		   (unsigned long long)cl_untracked, (unsigned long long)piped,
		   (unsigned long long)paused, (unsigned long long)batched,
		   (unsigned long long)batched_reads, (unsigned long long)batching);
}

static void admin_conn_close(struct admin_conn *c)
{
	struct admin *a = c->a;

	/* An answer the client did not take would sit in an orphaned socket probing its zero
	 * window for minutes: a reset frees it now. */
	if (c->out.len)
		tcp_reset_on_close(c->ev.fd);
	reactor_del(a->r, &c->ev);
	close(c->ev.fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		a->oldest = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		a->newest = c->prev;
	a->nr_conns--;
	buf_free(&c->out);
	free(c);
}

/* Sends what the socket takes; closes the connection once all is sent, or on an error. */
static void admin_conn_write(struct admin_conn *c)
{
	ssize_t n;

	while (c->out.len) {
		n = send(c->ev.fd, buf_head(&c->out), c->out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			if (reactor_mod(c->a->r, &c->ev, EPOLLOUT))
				break;
			return;
		}
		if (n <= 0)
			break;
		buf_consume(&c->out, n);
	}
	admin_conn_close(c);
}

/* Queues the whole answer, head and (unless HEAD) body, and starts sending it. */
static void admin_reply(struct admin_conn *c, bool head_only, int status, const char *type,
			const char *body, size_t len)
{
	if (buf_printf(&c->out,
		       "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
		       "Connection: close\r\n\r\n",
		       status, http_reason(status), type, len,
		       status == 405 ? "Allow: GET, HEAD\r\n" : "") ||
	    (!head_only && buf_append(&c->out, body, len))) {
		admin_conn_close(c);
		return;
	}
	c->state = ADMIN_WRITE_ANSWER;
	c->deadline_ms = reactor_now_ms(c->a->r) + ADMIN_ANSWER_TIMEOUT_MS;
	admin_conn_write(c);
}

/*
 * The policy as JSON, read again only when the generation moved (a commit between the
 * read and the check is not kept). NULL if it cannot be read.
 */
static const char *admin_policy_json(struct admin *a)
{
	__u64 gen = sw_generation(a->maps);
	struct sw_policy *p;
	struct sw_err e = {};
	char *json = NULL;

	if (a->policy_json && gen == a->policy_generation)
		return a->policy_json;
	p = policy_alloc();
	if (p && !policy_read(a->maps, p, &e))
		json = policy_to_json(p);
	policy_free(p);
	if (!json)
		return NULL;
	free(a->policy_json);
	a->policy_json = json;
	/* Kept for the next request only if no commit ran meanwhile (odd: one was running). */
	a->policy_generation = (gen & 1) || sw_generation(a->maps) != gen ? ~0ULL : gen;
	return json;
}

/* Answers req, or a request the parser refused (req NULL). */
static void admin_answer(struct admin_conn *c, const struct http_request *req)
{
	const struct admin *a = c->a;
	struct buf b = {};
	const char *json;
	bool head_only;

	if (!req) {
		admin_reply(c, false, 400, "text/plain", "bad request\n", 12);
		return;
	}
	head_only = req->method_bit == SW_METHOD_HEAD;
	if (req->method_bit != SW_METHOD_GET && !head_only) {
		admin_reply(c, false, 405, "text/plain", "only GET and HEAD\n", 18);
	} else if (req->path_len == 8 && !memcmp(req->path, "/healthz", 8)) {
		admin_reply(c, head_only, 200, "text/plain", "ok\n", 3);
	} else if (req->path_len == 8 && !memcmp(req->path, "/metrics", 8)) {
		metrics_workers(a, &b);
		metrics_cells(a, &b);
		admin_reply(c, head_only, 200, "text/plain; version=0.0.4", buf_head(&b), b.len);
	} else if (req->path_len == 7 && !memcmp(req->path, "/policy", 7)) {
		json = admin_policy_json(c->a);
		if (json)
			admin_reply(c, head_only, 200, "application/json", json, strlen(json));
		else
			admin_reply(c, head_only, 500, "text/plain", "cannot read the policy\n",
				    23);
	} else {
		admin_reply(c, head_only, 404, "text/plain", "try /healthz, /metrics or /policy\n",
			    34);
	}
	buf_free(&b);
}

/* Reads what arrived; answers once the head is whole or cannot be. */
static void admin_conn_read(struct admin_conn *c)
{
	struct http_request req;
	ssize_t n;
	int ret;

	for (;;) {
		n = recv(c->ev.fd, c->in + c->in_len, sizeof(c->in) - c->in_len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0 || (n == 0 && !c->in_len)) {
			admin_conn_close(c);
			return;
		}
		/* The client shut its side mid-head: it may still read the 400. */
		if (n == 0) {
			admin_answer(c, NULL);
			return;
		}
		c->in_len += n;
		/* Parsed again from the start on each read: at most 8 KiB, and rare. */
		ret = http_parse_request(c->in, c->in_len, &c->a->limits, &req);
		if (ret > 0) {
			admin_answer(c, &req);
			return;
		}
		/* A full buffer without a whole head is refused like any head too large. */
		if (ret < 0 || c->in_len == sizeof(c->in)) {
			admin_answer(c, NULL);
			return;
		}
	}
}

static void admin_conn_event(struct reactor *r, struct reactor_ev *ev, __u32 events)
{
	struct admin_conn *c = ev->owner;

	(void)r;
	(void)events;
	/* An error or hang-up shows in the recv or send that follows. */
	if (c->state == ADMIN_READ_HEAD)
		admin_conn_read(c);
	else
		admin_conn_write(c);
}

/*
 * Out of descriptors (or memory), accept4 fails and leaves the connection in the backlog:
 * the listener stays readable and epoll would wake the thread for it again and again, a
 * whole CPU, until a descriptor came free. It leaves epoll until the next tick instead
 * (admin_tick), as the workers' listeners do; a probe waits up to ADMIN_TICK_MS longer.
 */
static void admin_accept_pause(struct admin *a)
{
	reactor_mod(a->r, &a->listener, 0);
	a->accept_paused = true;
	a->accept_paused_count++;
}

static void admin_accept_resume(struct admin *a)
{
	/* Back into epoll failed (no memory): the next tick tries again. */
	if (!a->accept_paused || reactor_mod(a->r, &a->listener, EPOLLIN))
		return;
	a->accept_paused = false;
}

static void admin_accept(struct reactor *r, struct reactor_ev *ev, __u32 events)
{
	struct admin *a = ev->owner;
	struct admin_conn *c;
	int i, fd;

	(void)events;
	for (i = 0; i < ADMIN_ACCEPT_BATCH; i++) {
		fd = accept4(ev->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0 &&
		    (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)) {
			admin_accept_pause(a);
			return;
		}
		if (fd < 0)
			return;
		/*
		 * Full: the oldest connection goes. Refusing the new one instead would let
		 * ADMIN_MAX_CONNS idle sockets, renewed every ADMIN_HEAD_TIMEOUT_MS, lock
		 * /healthz out for good. This way a probe is crowded out only by a flood
		 * that opens ADMIN_MAX_CONNS connections between the probe's connect and
		 * its request (sent right after it, and often read in the accepting round
		 * below); the oldest connection has had the longest to make its request.
		 */
		if (a->nr_conns == ADMIN_MAX_CONNS)
			admin_conn_close(a->oldest);
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->a = a;
		c->ev.fd = fd;
		c->ev.fn = admin_conn_event;
		c->ev.owner = c;
		c->state = ADMIN_READ_HEAD;
		c->deadline_ms = reactor_now_ms(r) + ADMIN_HEAD_TIMEOUT_MS;
		if (reactor_add(r, &c->ev, EPOLLIN)) {
			close(fd);
			free(c);
			continue;
		}
		c->prev = a->newest;
		if (a->newest)
			a->newest->next = c;
		else
			a->oldest = c;
		a->newest = c;
		a->nr_conns++;
		/* The request often came with the connection: answer it in this round. */
		admin_conn_read(c);
	}
}

static void admin_tick(struct reactor *r, void *arg)
{
	struct admin *a = arg;
	struct admin_conn *c, *next;
	__u64 now = reactor_now_ms(r);

	for (c = a->oldest; c; c = next) {
		next = c->next;
		if (c->deadline_ms <= now)
			admin_conn_close(c);
	}
	admin_accept_resume(a);
}

static void admin_stop_event(struct reactor *r, struct reactor_ev *ev, __u32 events)
{
	struct admin *a = ev->owner;

	(void)r;
	(void)events;
	a->stop = true;
}

static void *admin_main(void *arg)
{
	struct admin *a = arg;

	reactor_run(a->r, ADMIN_TICK_MS, admin_tick, NULL, a, &a->stop);
	while (a->oldest)
		admin_conn_close(a->oldest);
	return NULL;
}

struct admin *admin_start(struct worker *workers, unsigned nr, struct sw_maps *maps)
{
	struct admin *a = calloc(1, sizeof(*a));
	int one = 1, err;

	if (!a)
		return NULL;
	a->workers = workers;
	a->nr = nr;
	a->maps = maps;
	a->limits = swd_cfg.limits;
	if (a->limits.max_header_bytes > ADMIN_HEAD_MAX)
		a->limits.max_header_bytes = ADMIN_HEAD_MAX;
	a->listener.fd = -1;
	a->stop_pipe[0] = a->stop_pipe[1] = -1;
	a->r = reactor_new();
	if (!a->r)
		goto cleanup;
	a->listener.fd =
		socket(swd_cfg.admin.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (a->listener.fd < 0)
		goto cleanup;
	setsockopt(a->listener.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* A deep backlog: a burst of connections waits to be accepted (and may push out the
	 * oldest) rather than have a probe's SYN dropped, which costs it a 1 s retransmit. */
	if (bind(a->listener.fd, (struct sockaddr *)&swd_cfg.admin, swd_cfg.admin_len) ||
	    listen(a->listener.fd, 1024) || pipe2(a->stop_pipe, O_CLOEXEC))
		goto cleanup;
	a->listener.fn = admin_accept;
	a->listener.owner = a;
	a->stop_ev.fd = a->stop_pipe[0];
	a->stop_ev.fn = admin_stop_event;
	a->stop_ev.owner = a;
	err = reactor_add(a->r, &a->listener, EPOLLIN);
	if (!err)
		err = reactor_add(a->r, &a->stop_ev, EPOLLIN);
	if (!err)
		err = -pthread_create(&a->thread, NULL, admin_main, a);
	if (!err)
		return a;
	errno = -err;
cleanup:
	err = errno;
	if (a->stop_pipe[0] >= 0) {
		close(a->stop_pipe[0]);
		close(a->stop_pipe[1]);
	}
	if (a->listener.fd >= 0)
		close(a->listener.fd);
	reactor_free(a->r);
	free(a);
	errno = err;
	return NULL;
}

void admin_stop(struct admin *a)
{
	/* The thread closes its connections before it returns. */
	if (write(a->stop_pipe[1], "x", 1) == 1)
		pthread_join(a->thread, NULL);
	close(a->stop_pipe[0]);
	close(a->stop_pipe[1]);
	close(a->listener.fd);
	reactor_free(a->r);
	free(a->policy_json);
	free(a);
}
