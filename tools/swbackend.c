// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * swbackend: a small, fast HTTP/1.1 backend for sockway demos, tests and benchmarks.
 *
 *   swbackend --name NAME --listen ADDR:PORT [--listen ...] [--latency-ms N] [--status CODE]
 *             [--body-size BYTES] [--threads N] [--chunked] [--close]
 *
 * Every response names the backend (X-Backend) and echoes what the request carried
 * (X-Seen-*), so a test can tell from the client side where a request went and what the
 * router did to it. GET /__swbackend/stats answers the counters as JSON; SIGTERM and
 * SIGINT print the same JSON line on stdout and exit 0.
 *
 * Each thread runs its own epoll loop over its own SO_REUSEPORT listeners, so threads
 * share nothing but the configuration and the response body, which is built once.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "backend/backend.h"
#include "lib/clock.h"

#define LISTEN_BACKLOG 4096
#define EVENT_BATCH    256
#define IN_BUF_INITIAL 16384
/* Bytes a closing connection may still send us before we stop waiting for its FIN. */
#define MAX_LINGER_BYTES (1 << 20)

struct worker *workers;

/* Formats the counters of every worker as one JSON object; returns its length. */
int stats_format(char *buf, size_t size)
{
	uint64_t requests = 0, shadow = 0, body = 0;

	for (int i = 0; i < cfg.threads; i++) {
		requests += atomic_load_explicit(&workers[i].requests, memory_order_relaxed);
		shadow += atomic_load_explicit(&workers[i].shadow_requests, memory_order_relaxed);
		body += atomic_load_explicit(&workers[i].body_bytes, memory_order_relaxed);
	}
	return snprintf(buf, size,
			"{\"name\":\"%s\",\"requests\":%" PRIu64 ",\"shadow_requests\":%" PRIu64
			",\"body_bytes\":%" PRIu64 "}",
			cfg.name, requests, shadow, body);
}

/*
 * Closes the socket now and frees the connection after the current event batch, since
 * later events of the same batch may still point at it.
 */
void conn_close(struct conn *c)
{
	struct worker *w = c->worker;

	if (c->dead)
		return;
	close(c->src.fd);
	while (c->out_head) {
		struct response *r = c->out_head;

		c->out_head = r->next;
		response_free(w, r);
	}
	c->out_tail = NULL;
	free(c->in.data);
	free(c->echo.data);
	free(c->xff.data);
	c->dead = true;
	c->next_dead = w->dead_list;
	w->dead_list = c;
}

/*
 * Reads, answers and writes until the socket has nothing more for us or can take no more.
 * Runs on every event of the connection and when one of its delayed responses falls due;
 * with edge-triggered epoll it must leave only on EAGAIN, a pause or a close.
 */
static void conn_pump(struct conn *c)
{
	for (;;) {
		ssize_t n;

		if (!c->write_shut && conn_parse(c)) {
			conn_close(c);
			return;
		}
		if (conn_flush(c)) {
			conn_close(c);
			return;
		}
		if (c->dead || c->read_paused || c->peer_eof)
			return;
		/* A closing connection reads again only to discard input until the peer's FIN. */
		if (c->closing && !c->write_shut)
			return;
		if (c->in.len == c->in.cap) {
			/* Only an unfinished head fills the buffer; parsing refuses one too long.
			 */
			if (c->in.cap >= 2 * MAX_HEAD_BYTES || bytes_reserve(&c->in, c->in.cap)) {
				conn_close(c);
				return;
			}
		}
		n = read(c->src.fd, c->in.data + c->in.len, c->in.cap - c->in.len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				conn_close(c);
			return;
		}
		if (n == 0) {
			/* Requests already complete are still answered before closing. */
			c->peer_eof = true;
			c->closing = true;
			continue;
		}
		if (c->write_shut) {
			c->linger_bytes += n;
			if (c->linger_bytes > MAX_LINGER_BYTES) {
				conn_close(c);
				return;
			}
			continue;
		}
		c->in.len += n;
	}
}

static void conn_open(struct worker *w, int fd)
{
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET};
	struct conn *c = calloc(1, sizeof(*c));
	int one = 1;

	if (!c || bytes_reserve(&c->in, IN_BUF_INITIAL))
		goto fail;
	c->src.kind = SOURCE_CONN;
	c->src.fd = fd;
	c->worker = w;
	/* Responses go out whole in one writev; Nagle would only hold back their tail. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	ev.data.ptr = c;
	if (epoll_ctl(w->epoll_fd, EPOLL_CTL_ADD, fd, &ev))
		goto fail;
	return;

fail:
	if (c)
		free(c->in.data);
	free(c);
	close(fd);
}

static void listener_accept(struct worker *w, struct source *listener)
{
	for (;;) {
		int fd = accept4(listener->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd >= 0) {
			conn_open(w, fd);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if ((errno == EMFILE || errno == ENFILE) && w->spare_fd >= 0) {
			/*
			 * Out of descriptors: take one connection and drop it, or the
			 * level-triggered listener would wake us forever.
			 */
			close(w->spare_fd);
			fd = accept(listener->fd, NULL, NULL);
			if (fd >= 0)
				close(fd);
			w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		}
		return;
	}
}

/* Marks the responses that fell due as writable, then writes them. */
static void timer_fire(struct worker *w)
{
	uint64_t expirations, now = now_ns();
	struct conn *c;

	if (read(w->timer.fd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
		fprintf(stderr, "swbackend: timerfd read: %s\n", strerror(errno));
	while (w->timer_head && w->timer_head->due_ns <= now) {
		struct response *r = w->timer_head;

		timer_remove(w, r);
		r->due_ns = 0;
		c = r->conn;
		if (!c->flush_pending) {
			c->flush_pending = true;
			c->next_flush = w->flush_list;
			w->flush_list = c;
		}
	}
	timer_arm(w);
	while ((c = w->flush_list)) {
		w->flush_list = c->next_flush;
		c->flush_pending = false;
		if (!c->dead)
			conn_pump(c);
	}
}

static void *worker_run(void *arg)
{
	struct epoll_event events[EVENT_BATCH];
	struct worker *w = arg;
	struct conn *c;

	for (;;) {
		int n = epoll_wait(w->epoll_fd, events, EVENT_BATCH, -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "swbackend: epoll_wait: %s\n", strerror(errno));
			exit(1);
		}
		for (int i = 0; i < n; i++) {
			struct source *s = events[i].data.ptr;

			switch (s->kind) {
			case SOURCE_LISTENER:
				listener_accept(w, s);
				break;
			case SOURCE_TIMER:
				timer_fire(w);
				break;
			case SOURCE_CONN:
				c = (struct conn *)s;
				if (!c->dead)
					conn_pump(c);
				break;
			}
		}
		while ((c = w->dead_list)) {
			w->dead_list = c->next_dead;
			free(c);
		}
	}
	return NULL;
}

/* Opens one SO_REUSEPORT listener on la; the descriptor or -errno. */
static int listener_open(const struct listen_addr *la)
{
	int fd, one = 1, err;

	fd = socket(la->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* Each thread has its own listener on the same address; the kernel spreads connections. */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)))
		goto fail;
	/* So that [::]:P and 0.0.0.0:P can both be given. */
	if (la->addr.ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)))
		goto fail;
	if (bind(fd, (const struct sockaddr *)&la->addr, la->addr_len) ||
	    listen(fd, LISTEN_BACKLOG))
		goto fail;
	return fd;

fail:
	err = -errno;
	close(fd);
	return err;
}

static int worker_init(struct worker *w, int index)
{
	struct epoll_event ev = {.events = EPOLLIN};

	w->timer.fd = -1;
	w->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (w->epoll_fd < 0)
		return -errno;
	w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (cfg.latency_ms) {
		w->timer.kind = SOURCE_TIMER;
		w->timer.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
		if (w->timer.fd < 0)
			return -errno;
		ev.data.ptr = &w->timer;
		if (epoll_ctl(w->epoll_fd, EPOLL_CTL_ADD, w->timer.fd, &ev))
			return -errno;
	}
	for (int i = 0; i < cfg.nr_listen; i++) {
		struct source *l = &w->listeners[i];
		int fd = listener_open(&cfg.listen[i]);
		char text[INET6_ADDRSTRLEN + 16];

		if (fd < 0) {
			format_addr(&cfg.listen[i].addr, text, sizeof(text));
			fprintf(stderr, "swbackend: cannot listen on %s: %s\n", text,
				strerror(-fd));
			return fd;
		}
		/* Port 0: the first thread's port becomes everyone's. */
		if (index == 0) {
			socklen_t len = sizeof(cfg.listen[i].addr);

			getsockname(fd, (struct sockaddr *)&cfg.listen[i].addr, &len);
		}
		l->kind = SOURCE_LISTENER;
		l->fd = fd;
		ev.data.ptr = l;
		if (epoll_ctl(w->epoll_fd, EPOLL_CTL_ADD, fd, &ev))
			return -errno;
	}
	return 0;
}

/* Thousands of connections need more descriptors than the usual soft limit of 1024. */
static void fd_limit_raise(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int main(int argc, char **argv)
{
	char json[256];
	sigset_t stop_signals;
	int sig, err;

	if (parse_args(argc, argv))
		return 2;
	/* A client that resets mid-response must cost an EPIPE, not the process. */
	signal(SIGPIPE, SIG_IGN);
	/* Blocked in every thread, taken by sigwait() in this one. */
	sigemptyset(&stop_signals);
	sigaddset(&stop_signals, SIGTERM);
	sigaddset(&stop_signals, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
	fd_limit_raise();

	if (response_templates_build()) {
		fprintf(stderr, "swbackend: out of memory for a %zu-byte body\n", cfg.body_len);
		return 1;
	}
	workers = calloc(cfg.threads, sizeof(*workers));
	if (!workers) {
		fprintf(stderr, "swbackend: out of memory\n");
		return 1;
	}
	for (int i = 0; i < cfg.threads; i++) {
		err = worker_init(&workers[i], i);
		if (err) {
			if (err != -EADDRINUSE && err != -EADDRNOTAVAIL && err != -EACCES)
				fprintf(stderr, "swbackend: thread setup: %s\n", strerror(-err));
			return 1;
		}
	}
	for (int i = 0; i < cfg.threads; i++) {
		err = pthread_create(&workers[i].thread, NULL, worker_run, &workers[i]);
		if (err) {
			fprintf(stderr, "swbackend: pthread_create: %s\n", strerror(err));
			return 1;
		}
	}
	for (int i = 0; i < cfg.nr_listen; i++) {
		char text[INET6_ADDRSTRLEN + 16];

		format_addr(&cfg.listen[i].addr, text, sizeof(text));
		fprintf(stderr, "swbackend %s listening on %s\n", cfg.name, text);
	}

	while (sigwait(&stop_signals, &sig))
		;
	stats_format(json, sizeof(json));
	printf("%s\n", json);
	fflush(stdout);
	return 0;
}
