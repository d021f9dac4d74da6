// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * The admin listener: GET /healthz, GET /metrics (Prometheus text format) and GET /policy
 * (the export JSON). It runs on its own thread, one request per connection, off the
 * request path; it reads the maps with syscalls and the workers' stats with relaxed loads.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "policy_json.h"
#include "sockwayd.h"

struct admin {
	pthread_t thread;
	int fd;
	int stop_pipe[2];
	struct worker *workers;
	unsigned nr;
	struct sw_maps *maps;
};

static const char *const error_kinds[SW_ERR_MAX] = { "connect_refused", "reset", "timeout",
						     "bad_response" };

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

	buf_printf(b, "# HELP sockway_requests_total Requests per endpoint, backend and role.\n"
		      "# TYPE sockway_requests_total counter\n"
		      "# HELP sockway_responses_total Responses by status class.\n"
		      "# TYPE sockway_responses_total counter\n"
		      "# HELP sockway_upstream_errors_total Upstream failures by kind.\n"
		      "# TYPE sockway_upstream_errors_total counter\n"
		      "# HELP sockway_bytes_from_client_total Request bytes.\n"
		      "# TYPE sockway_bytes_from_client_total counter\n"
		      "# HELP sockway_bytes_to_client_total Response bytes.\n"
		      "# TYPE sockway_bytes_to_client_total counter\n"
		      "# HELP sockway_accel_bytes_total Bytes the kernel moved socket to socket (sk_msg) for these exchanges, both ways.\n"
		      "# TYPE sockway_accel_bytes_total counter\n"
		      "# HELP sockway_request_duration_seconds Time from request head to response end.\n"
		      "# TYPE sockway_request_duration_seconds histogram\n"
		      "# HELP sockway_shadow_status_match_total Shadow responses whose status equalled the primary's.\n"
		      "# TYPE sockway_shadow_status_match_total counter\n"
		      "# HELP sockway_shadow_dropped_total Shadow samples dropped (queue full, body too large).\n"
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
		snprintf(labels, sizeof(labels), "endpoint=\"%s\",backend=\"%s\",role=\"%s\"", en, bn,
			 cell->role == SW_ROLE_SHADOW ? "shadow" : "primary");
		sw_cell_sum(cell, &c);
		buf_printf(b, "sockway_requests_total{%s} %llu\n", labels,
			   (unsigned long long)c.requests);
		for (k = 0; k < 5; k++)
			buf_printf(b, "sockway_responses_total{%s,class=\"%uxx\"} %llu\n", labels, k + 1,
				   (unsigned long long)c.status[k]);
		for (k = 0; k < SW_ERR_MAX; k++)
			buf_printf(b, "sockway_upstream_errors_total{%s,kind=\"%s\"} %llu\n", labels,
				   error_kinds[k], (unsigned long long)c.errors[k]);
		buf_printf(b, "sockway_bytes_from_client_total{%s} %llu\n", labels,
			   (unsigned long long)c.bytes_from_client);
		buf_printf(b, "sockway_bytes_to_client_total{%s} %llu\n", labels,
			   (unsigned long long)c.bytes_to_client);
		buf_printf(b, "sockway_accel_bytes_total{%s} %llu\n", labels,
			   (unsigned long long)c.accel_bytes);
		/* Prometheus buckets are cumulative, in seconds; ours are [2^k, 2^(k+1)) us. */
		for (k = 0; k + 1 < SW_LAT_BUCKETS; k++) {
			cum += c.latency[k];
			buf_printf(b, "sockway_request_duration_seconds_bucket{%s,le=\"%g\"} %llu\n",
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
	static const int statuses[6] = { 400, 413, 414, 417, 431, 505 };
	__u64 conns = 0, active = 0, unrouted = 0, drops = 0, reloads = 0, stale = 0, bad[6] = {};
	__u64 kresp = 0, ktick = 0;
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
		for (k = 0; k < 6; k++)
			bad[k] += load(&s->bad_requests[k]);
	}
	buf_printf(b, "# HELP sockway_connections_total Client connections accepted.\n"
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
		      "# HELP sockway_policy_stale_total Policy reloads given up (a writer stuck mid-commit).\n"
		      "# TYPE sockway_policy_stale_total counter\n"
		      "sockway_policy_stale_total %llu\n"
		      "# HELP sockway_policy_generation The policy generation in the maps.\n"
		      "# TYPE sockway_policy_generation gauge\n"
		      "sockway_policy_generation %llu\n"
		      "# HELP sockway_bad_requests_total Requests refused before routing, by status.\n"
		      "# TYPE sockway_bad_requests_total counter\n",
		   (unsigned long long)conns, (unsigned long long)active,
		   (unsigned long long)unrouted, (unsigned long long)drops,
		   (unsigned long long)reloads, (unsigned long long)stale,
		   (unsigned long long)sw_generation(a->maps));
	for (k = 0; k < 6; k++)
		buf_printf(b, "sockway_bad_requests_total{status=\"%d\"} %llu\n", statuses[k],
			   (unsigned long long)bad[k]);
	buf_printf(b, "# HELP sockway_kernel_responses_total Whole responses the kernel passed "
		      "backend -> client with nobody woken.\n"
		      "# TYPE sockway_kernel_responses_total counter\n"
		      "sockway_kernel_responses_total %llu\n"
		      "# HELP sockway_kernel_responses_tick_total Of those, the ones sockwayd ended at "
		      "its tick (the client stayed quiet).\n"
		      "# TYPE sockway_kernel_responses_tick_total counter\n"
		      "sockway_kernel_responses_tick_total %llu\n",
		   (unsigned long long)kresp, (unsigned long long)ktick);
}

static void admin_reply(int fd, int status, const char *type, const char *body, size_t len)
{
	char head[256];
	int n;

	n = snprintf(head, sizeof(head),
		     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
		     "Connection: close\r\n\r\n",
		     status, status == 200 ? "OK" : status == 404 ? "Not Found" : "Error", type,
		     len);
	if (send(fd, head, n, MSG_NOSIGNAL) == n)
		send(fd, body, len, MSG_NOSIGNAL);
}

static void admin_serve(const struct admin *a, int fd)
{
	struct http_request *req = calloc(1, sizeof(*req));
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	struct sw_policy *p = NULL;
	struct buf b = {};
	char in[8192];
	size_t len = 0;
	ssize_t n;
	int ret = 0;
	struct sw_err e = {};
	char *json;

	while (req && len < sizeof(in) && poll(&pfd, 1, 2000) == 1) {
		n = recv(fd, in + len, sizeof(in) - len, 0);
		if (n <= 0)
			break;
		len += n;
		ret = http_parse_request(in, len, &swd_cfg.limits, req);
		if (ret)
			break;
	}
	if (!req || ret <= 0) {
		admin_reply(fd, 400, "text/plain", "bad request\n", 12);
		goto cleanup;
	}
	if (req->path_len == 8 && !memcmp(req->path, "/healthz", 8)) {
		admin_reply(fd, 200, "text/plain", "ok\n", 3);
	} else if (req->path_len == 8 && !memcmp(req->path, "/metrics", 8)) {
		metrics_workers(a, &b);
		metrics_cells(a, &b);
		admin_reply(fd, 200, "text/plain; version=0.0.4", buf_head(&b), b.len);
	} else if (req->path_len == 7 && !memcmp(req->path, "/policy", 7)) {
		p = policy_alloc();
		json = p && !policy_read(a->maps, p, &e) ? policy_to_json(p) : NULL;
		if (json)
			admin_reply(fd, 200, "application/json", json, strlen(json));
		else
			admin_reply(fd, 500, "text/plain", "cannot read the policy\n", 23);
		free(json);
	} else {
		admin_reply(fd, 404, "text/plain", "try /healthz, /metrics or /policy\n", 34);
	}
cleanup:
	policy_free(p);
	buf_free(&b);
	free(req);
}

static void *admin_main(void *arg)
{
	struct admin *a = arg;
	struct pollfd pfd[2] = { { .fd = a->fd, .events = POLLIN },
				 { .fd = a->stop_pipe[0], .events = POLLIN } };
	int fd;

	while (poll(pfd, 2, -1) >= 0 || errno == EINTR) {
		if (pfd[1].revents)
			break;
		if (!(pfd[0].revents & POLLIN))
			continue;
		fd = accept4(a->fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		admin_serve(a, fd);
		close(fd);
	}
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
	a->fd = -1;
	a->stop_pipe[0] = a->stop_pipe[1] = -1;
	a->fd = socket(swd_cfg.admin.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (a->fd < 0)
		goto cleanup;
	setsockopt(a->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(a->fd, (struct sockaddr *)&swd_cfg.admin, swd_cfg.admin_len) ||
	    listen(a->fd, 64) || pipe2(a->stop_pipe, O_CLOEXEC))
		goto cleanup;
	err = pthread_create(&a->thread, NULL, admin_main, a);
	if (!err)
		return a;
	errno = err;
cleanup:
	err = errno;
	if (a->fd >= 0)
		close(a->fd);
	if (a->stop_pipe[0] >= 0) {
		close(a->stop_pipe[0]);
		close(a->stop_pipe[1]);
	}
	free(a);
	errno = err;
	return NULL;
}

void admin_stop(struct admin *a)
{
	if (write(a->stop_pipe[1], "x", 1) == 1)
		pthread_join(a->thread, NULL);
	close(a->fd);
	close(a->stop_pipe[0]);
	close(a->stop_pipe[1]);
	free(a);
}
