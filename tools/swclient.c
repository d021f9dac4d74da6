// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * swclient: sends HTTP/1.1 requests and reports, as one JSON object, who answered them.
 *
 *   swclient --url http://ADDR:PORT/PATH [--requests N] [--connections C] [--keys K]
 *            [--key-prefix P] [--header 'Name: value' ...] [--method M] [--body-size B]
 *            [--chunked] [--duration-ms D] [--host HOST] [--no-keepalive] [--timeout-ms T]
 *            [--raw FILE]
 *
 * C keep-alive connections each carry one request at a time, driven by one epoll loop,
 * until N requests were sent, D milliseconds passed, or a SIGTERM or SIGINT came (then the
 * requests in flight finish and the report is printed: a test runs a client "until the
 * event it waits for happened" this way, rather than for a time). Responses are parsed strictly
 * enough to stay in sync (Content-Length, chunked, or delimited by close), and counted by
 * status, by X-Backend and, with --keys, by shard key. With --raw the bytes of FILE go out
 * as they are and whatever comes back is printed, for tests of malformed input. The report
 * counts the requests that got no response (errors) by why (error_kinds: connect, closed,
 * reset, timeout, bad_response).
 *
 * Exit status: 0 when it ran (HTTP errors included), 1 when it could not, 2 on bad usage.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "client/client.h"
#include "lib/clock.h"

#define EVENT_BATCH    256
#define IN_BUF_INITIAL 16384

static int epoll_fd;
static uint64_t next_request_index;
static uint64_t end_ns; /* 0 without --duration-ms */
/* Set by SIGTERM or SIGINT: no request starts after it. */
static volatile sig_atomic_t stop_requested;

static void conn_socket_close(struct conn *c)
{
	if (c->fd < 0)
		return;
	close(c->fd);
	c->fd = -1;
	c->connecting = false;
	c->in.len = 0;
	c->head_scan = 0;
	c->state = RESP_HEAD;
}

/* Starts a non-blocking connect on a fresh socket; 0 or -errno. */
static int conn_connect(struct conn *c)
{
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET};
	int fd, one = 1, err;

	fd = socket(cfg.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* Requests go out whole; Nagle would only delay the body behind the head. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->connecting = false;
	if (connect(fd, (struct sockaddr *)&cfg.addr, cfg.addr_len)) {
		if (errno != EINPROGRESS)
			goto fail;
		c->connecting = true;
	}
	c->generation++;
	ev.data.u64 = (uint64_t)c->generation << 32 | (uint32_t)c->index;
	if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev))
		goto fail;
	c->fd = fd;
	return 0;

fail:
	err = -errno;
	close(fd);
	c->connecting = false;
	return err;
}

/* Writes what is left of the request in flight; 0 (also when the socket is full) or -errno. */
static int conn_write(struct conn *c)
{
	size_t total = c->out.len + cfg.body_len;

	while (c->out_sent < total) {
		struct iovec iov[2];
		int n = 0;
		ssize_t written;

		if (c->out_sent < c->out.len) {
			iov[n].iov_base = c->out.data + c->out_sent;
			iov[n].iov_len = c->out.len - c->out_sent;
			n++;
		}
		if (cfg.body_len) {
			size_t body_sent = c->out_sent > c->out.len ? c->out_sent - c->out.len : 0;

			iov[n].iov_base = cfg.body + body_sent;
			iov[n].iov_len = cfg.body_len - body_sent;
			n++;
		}
		written = writev(c->fd, iov, n);
		if (written < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? 0 : -errno;
		}
		c->out_sent += written;
	}
	return 0;
}

static bool more_requests(void)
{
	if (stop_requested)
		return false;
	if (cfg.requests >= 0 && next_request_index >= (uint64_t)cfg.requests)
		return false;
	return !end_ns || now_ns() < end_ns;
}

/*
 * Puts the next request on c, opening a socket if c has none, or closes c when there is
 * nothing left to send. A request whose connection cannot even be opened is an error.
 * 0 or -ENOMEM.
 */
static int conn_next_request(struct conn *c)
{
	uint64_t now;

	for (;;) {
		if (!more_requests()) {
			conn_socket_close(c);
			return 0;
		}
		c->request_index = next_request_index++;
		results.requests++;
		if (c->fd >= 0 || conn_connect(c) == 0)
			break;
		results.errors++;
		results.error_kinds[ERR_CONNECT]++;
	}
	if (request_head_build(c))
		return -ENOMEM;
	now = now_ns();
	c->sent_ns = now;
	c->deadline_ns = now + cfg.timeout_ms * 1000000ULL;
	c->out_sent = 0;
	c->write_failed = false;
	c->in_flight = true;
	c->state = RESP_HEAD;
	if (!c->connecting && conn_write(c))
		c->write_failed = true;
	return 0;
}

/* Ends the request in flight without a response: an error (of that kind); then goes on
 * with the next. */
static int conn_fail(struct conn *c, enum error_kind kind)
{
	if (c->in_flight) {
		results.errors++;
		results.error_kinds[kind]++;
		c->in_flight = false;
	}
	conn_socket_close(c);
	return conn_next_request(c);
}

/* Counts the complete response of the request in flight, then sends the next. */
static int conn_response_done(struct conn *c)
{
	uint64_t latency_us = (now_ns() - c->sent_ns) / 1000;
	int id;

	results.responses++;
	results.status[c->status < 1000 ? c->status : 999]++;
	results.shadow_seen += c->shadow;
	if (latency_add(latency_us))
		return -ENOMEM;
	if (c->has_backend) {
		id = backend_intern(c->backend);
		if (id < 0)
			return id;
		results.backends[id].responses++;
		if (cfg.keys && id_set_add(&results.keys[c->request_index % cfg.keys], id))
			return -ENOMEM;
	}
	c->in_flight = false;
	c->state = RESP_HEAD;
	/* A request not fully written leaves the connection out of step: start over. */
	if (c->close_after || c->write_failed || c->out_sent < c->out.len + cfg.body_len)
		conn_socket_close(c);
	return conn_next_request(c);
}

/*
 * Parses what arrived for the request in flight. 0 when it needs more bytes or the
 * connection moved on, -EBADMSG for a malformed response, -ENOMEM.
 */
static int conn_parse(struct conn *c)
{
	uint32_t generation = c->generation;
	size_t pos = 0;
	int ret = 0;

	while (c->in_flight && c->generation == generation) {
		ret = conn_parse_step(c, &pos);
		if (ret == HTTP_STEP_DONE) {
			/* Bytes left over stay for the next response on this connection. */
			c->in.len -= pos;
			memmove(c->in.data, c->in.data + pos, c->in.len);
			pos = 0;
			ret = conn_response_done(c);
			if (ret)
				return ret;
			continue;
		}
		if (ret <= 0)
			break;
	}
	if (c->generation == generation) {
		c->in.len -= pos;
		memmove(c->in.data, c->in.data + pos, c->in.len);
	}
	return ret < 0 ? ret : 0;
}

/* The server closed: that ends a close-delimited response, and fails any other. */
static int conn_eof(struct conn *c)
{
	if (c->in_flight && c->state == RESP_BODY_TO_CLOSE) {
		conn_socket_close(c);
		return conn_response_done(c);
	}
	return conn_fail(c, ERR_CLOSED);
}

/*
 * Handles an event on c's current socket: finishes a connect, writes, reads and parses
 * until the socket has nothing more. With edge-triggered epoll it leaves only on EAGAIN
 * or when the connection moved to another socket. 0 or -ENOMEM.
 */
static int conn_pump(struct conn *c)
{
	uint32_t generation = c->generation;
	int err;

	if (c->connecting) {
		int so_error = 0;
		socklen_t len = sizeof(so_error);

		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &so_error, &len);
		if (so_error)
			return conn_fail(c, ERR_RESET);
		c->connecting = false;
	}
	while (c->fd >= 0 && c->generation == generation) {
		ssize_t n;

		if (c->in_flight && !c->write_failed && conn_write(c))
			c->write_failed = true;
		if (c->in.len == c->in.cap &&
		    bytes_reserve(&c->in, c->in.cap ? c->in.cap : IN_BUF_INITIAL))
			return -ENOMEM;
		n = read(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? 0 : conn_fail(c, ERR_RESET);
		}
		if (n == 0)
			return conn_eof(c);
		/* An open socket always has a request in flight: see conn_next_request(). */
		c->in.len += n;
		err = conn_parse(c);
		if (err == -EBADMSG)
			return conn_fail(c, ERR_BAD);
		if (err)
			return err;
	}
	return 0;
}

/* Fails the requests that waited longer than --timeout-ms; returns ms to the next deadline. */
static int deadlines_check(struct conn *conns, int *timeout_ms)
{
	uint64_t now = now_ns(), next = UINT64_MAX;
	int err;

	for (int i = 0; i < cfg.connections; i++) {
		struct conn *c = &conns[i];

		if (c->in_flight && now >= c->deadline_ns) {
			err = conn_fail(c, ERR_TIMEOUT);
			if (err)
				return err;
		}
		if (c->in_flight && c->deadline_ns < next)
			next = c->deadline_ns;
	}
	if (next == UINT64_MAX)
		*timeout_ms = -1;
	else
		*timeout_ms = next > now ? (next - now + 999999) / 1000000 : 0;
	return 0;
}

/* Runs every request to its end; 0, or -errno when the client itself failed. */
static int requests_run(void)
{
	struct epoll_event events[EVENT_BATCH];
	struct conn *conns;
	int timeout_ms, err = 0;

	conns = calloc(cfg.connections, sizeof(*conns));
	if (!conns)
		return -ENOMEM;
	for (int i = 0; i < cfg.connections; i++) {
		conns[i].index = i;
		conns[i].fd = -1;
	}
	epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (epoll_fd < 0) {
		err = -errno;
		goto cleanup;
	}
	if (cfg.keys) {
		results.keys = calloc(cfg.keys, sizeof(*results.keys));
		if (!results.keys) {
			err = -ENOMEM;
			goto cleanup;
		}
	}
	if (cfg.duration_ms)
		end_ns = now_ns() + cfg.duration_ms * 1000000ULL;

	for (int i = 0; i < cfg.connections && !err; i++)
		err = conn_next_request(&conns[i]);
	while (!err) {
		int n;

		err = deadlines_check(conns, &timeout_ms);
		/* Nothing in flight: every request was answered or failed. */
		if (err || timeout_ms < 0)
			break;
		n = epoll_wait(epoll_fd, events, EVENT_BATCH, timeout_ms);
		if (n < 0 && errno != EINTR) {
			err = -errno;
			break;
		}
		for (int i = 0; i < n && !err; i++) {
			struct conn *c = &conns[(uint32_t)events[i].data.u64];

			/* An event of a socket since closed is stale. */
			if (c->fd < 0 || c->generation != events[i].data.u64 >> 32)
				continue;
			err = conn_pump(c);
		}
	}

cleanup:
	for (int i = 0; i < cfg.connections; i++) {
		conn_socket_close(&conns[i]);
		free(conns[i].in.data);
		free(conns[i].out.data);
	}
	if (epoll_fd >= 0)
		close(epoll_fd);
	free(conns);
	return err;
}

static void stop_request(int sig)
{
	(void)sig;
	stop_requested = 1;
}

int main(int argc, char **argv)
{
	/* No SA_RESTART: the signal interrupts epoll_wait, and the loop sees the stop. */
	struct sigaction stop = {.sa_handler = stop_request};
	int err;

	if (parse_args(argc, argv))
		return 2;
	/* A server that closes mid-request must cost an EPIPE, not the process. */
	signal(SIGPIPE, SIG_IGN);
	if (cfg.raw_file)
		return raw_run() ? 1 : 0;
	sigemptyset(&stop.sa_mask);
	sigaction(SIGTERM, &stop, NULL);
	sigaction(SIGINT, &stop, NULL);

	err = request_templates_build();
	if (!err)
		err = requests_run();
	if (!err)
		err = report_print();
	if (err) {
		fprintf(stderr, "swclient: %s\n", strerror(-err));
		return 1;
	}
	return 0;
}
