// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * The exchange (user/helper/exchange.c) driven whole, in one process: a worker with a policy
 * built by hand (no BPF, no pinned maps), its reactor on a thread, and the test playing the
 * client and two backend replicas over loopback sockets. It checks what a backend receives
 * (the routed path, sockwayd's framing), what the client gets back, and the retry rule
 * (exchange_retry): a GET whose connection breaks goes to the other replica, a POST does not.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "options.h"
#include "proxy.h"

/* Long enough for a loaded machine: a test only waits this long for what must come. */
#define WAIT_MS 30000

struct rig {
	struct worker w;
	struct sw_maps maps;
	volatile bool stop;
	pthread_t thread;
	int backend[2]; /* the two replicas' listeners */
	__u16 port;	/* sockwayd's */
};

/* A listener on 127.0.0.1 (non-blocking for sockwayd's, which accepts until EAGAIN). */
static int listener(__u16 *port, int flags)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | flags, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 16), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

static void rig_tick(struct reactor *r, void *arg)
{
	(void)r;
	proxy_tick(arg);
	shadow_tick(arg);
}

static void *rig_run(void *arg)
{
	struct rig *g = arg;

	reactor_run(g->w.r, 100, rig_tick, NULL, &g->w, &g->stop);
	return NULL;
}

/* One endpoint on "/" with one backend of two replicas: the test's listeners. */
static void rig_policy(struct rig *g)
{
	struct snapshot *s = g->w.snap;
	struct sw_route_key key = {.prefix_hash = sw_hash64("/", 1)};
	struct sw_route route = {.endpoint_id = 0, .prefix_len = 1, .prefix = "/"};
	struct sw_backend *be = &s->be[0];
	struct sw_endpoint *ep = &s->ep[0];
	__u16 port;
	int i;

	s->ctl.generation = 2;
	g->maps.ctl->generation = 2;
	ep->flags = SW_F_IN_USE;
	strcpy(ep->name, "e");
	strcpy(ep->shard_header, "X-SERVE-SHARD-KEY");
	ep->nr_splits = 1;
	ep->splits[0].backend_id = 0;
	ep->splits[0].cell = 1;
	ep->splits[0].weight = SW_WEIGHT_ONE;
	ep->route = route;
	s->table[0] = calloc(1, sizeof(struct sw_slot_table));
	assert_non_null(s->table[0]);
	be->flags = SW_F_IN_USE;
	strcpy(be->name, "b");
	be->nr_replicas = 2;
	for (i = 0; i < 2; i++) {
		g->backend[i] = listener(&port, 0);
		be->replicas[i].family = AF_INET;
		be->replicas[i].port = port;
		be->replicas[i].addr[0] = 127;
		be->replicas[i].addr[3] = 1;
	}
	assert_int_equal(snapshot_route_set(s, &key, &route), 0);
}

static int rig_setup(void **state)
{
	static char *argv[] = {"test_exchange", "--workers", "1", NULL};
	struct rig *g = calloc(1, sizeof(*g));
	struct worker *w = &g->w;

	assert_non_null(g);
	optind = 1;
	assert_int_equal(swd_options_parse(3, argv), 0);
	g->maps.ctl = calloc(1, sizeof(*g->maps.ctl));
	g->maps.cells = calloc(SW_MAX_CELLS, sizeof(*g->maps.cells));
	assert_true(g->maps.ctl && g->maps.cells);
	w->maps = &g->maps;
	w->shard = 1;
	w->rng = 1;
	w->r = reactor_new();
	w->snap = snapshot_alloc();
	w->spare = snapshot_alloc();
	assert_true(w->r && w->snap && w->spare);
	rig_policy(g);
	w->listeners[0].fd = listener(&g->port, SOCK_NONBLOCK);
	w->listeners[0].fn = client_accept;
	w->listeners[0].owner = w;
	w->nr_listeners = 1;
	assert_int_equal(reactor_add(w->r, &w->listeners[0], EPOLLIN), 0);
	assert_int_equal(pthread_create(&g->thread, NULL, rig_run, g), 0);
	*state = g;
	return 0;
}

static int rig_teardown(void **state)
{
	struct rig *g = *state;

	g->stop = true;
	pthread_join(g->thread, NULL);
	proxy_close_idle(&g->w);
	close(g->w.listeners[0].fd);
	close(g->backend[0]);
	close(g->backend[1]);
	free(g->maps.ctl);
	free(g->maps.cells);
	free(g);
	return 0;
}

/* Waits for fd to be readable, up to WAIT_MS (wait 0: just asks). */
static bool readable(int fd, int wait_ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	return poll(&p, 1, wait_ms) == 1;
}

/* Reads from fd into buf until what came holds needle (or the peer closes); its length.
 * The bytes come in as many pieces as the machine makes of them. */
static size_t read_until(int fd, char *buf, size_t cap, const char *needle)
{
	size_t n = 0;
	ssize_t r;

	while (n < cap - 1 && !memmem(buf, n, needle, strlen(needle))) {
		assert_true(readable(fd, WAIT_MS));
		r = recv(fd, buf + n, cap - 1 - n, 0);
		if (r <= 0)
			break;
		n += r;
	}
	buf[n] = '\0';
	return n;
}

/* Reads a whole head (and what came with it). */
static size_t read_head(int fd, char *buf, size_t cap)
{
	return read_until(fd, buf, cap, "\r\n\r\n");
}

/* Sends a request to sockwayd and returns the client's socket. */
static int client_request(struct rig *g, const char *req)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons(g->port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(send(fd, req, strlen(req), 0), (ssize_t)strlen(req));
	return fd;
}

/* Accepts sockwayd's connection on replica i. */
static int backend_accept(struct rig *g, int i)
{
	int fd;

	assert_true(readable(g->backend[i], WAIT_MS));
	fd = accept(g->backend[i], NULL, NULL);
	assert_true(fd >= 0);
	return fd;
}

static void test_routed_path_and_framing(void **state)
{
	struct rig *g = *state;
	char buf[4096];
	int c, b;

	c = client_request(g, "POST /a/../b//c%7e?q=%2e HTTP/1.1\r\nHost: H.example.\r\n"
			      "Content-Length: 003\r\nX_Odd: 1\r\n\r\nabc");
	b = backend_accept(g, 0);
	read_until(b, buf, sizeof(buf), "\r\n\r\nabc");
	/* The path as routed, the query as sent; sockwayd's framing and forwarding fields. */
	assert_non_null(strstr(buf, "POST /b/c~?q=%2e HTTP/1.1\r\nHost: h.example\r\n"));
	assert_non_null(strstr(buf, "\r\nContent-Length: 3\r\n"));
	assert_non_null(strstr(buf, "\r\nX-Forwarded-For: 127.0.0.1\r\n"));
	assert_null(strstr(buf, "X_Odd"));
	assert_non_null(strstr(buf, "\r\n\r\nabc"));
	assert_int_equal(send(b, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 40, 0), 40);
	read_until(c, buf, sizeof(buf), "\r\n\r\nok");
	assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
	assert_non_null(strstr(buf, "\r\n\r\nok"));
	close(b);
	close(c);
}

/* Replica 0 takes the request and closes without a byte of response. */
static void first_replica_breaks(struct rig *g)
{
	char buf[4096];
	int b = backend_accept(g, 0);

	read_head(b, buf, sizeof(buf));
	close(b);
}

static void test_get_retried_on_reset(void **state)
{
	struct rig *g = *state;
	char buf[4096];
	int c, b;

	c = client_request(g, "GET /x HTTP/1.1\r\nHost: h\r\n\r\n");
	first_replica_breaks(g);
	b = backend_accept(g, 1);
	read_head(b, buf, sizeof(buf));
	assert_non_null(strstr(buf, "GET /x HTTP/1.1\r\n"));
	assert_int_equal(send(b, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 40, 0), 40);
	read_head(c, buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
	assert_int_equal(g->w.stats.retries[SWD_RETRY_RESET], 1);
	close(b);
	close(c);
}

static void test_post_not_retried_on_reset(void **state)
{
	struct rig *g = *state;
	char buf[4096];
	int c;

	c = client_request(g, "POST /pay HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nx");
	first_replica_breaks(g);
	read_head(c, buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 502 Bad Gateway\r\n"));
	/* A retry would have connected before the answer: nothing is waiting at replica 1. */
	assert_false(readable(g->backend[1], 0));
	assert_int_equal(g->w.stats.retries[SWD_RETRY_RESET], 0);
	close(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_routed_path_and_framing, rig_setup,
						rig_teardown),
		cmocka_unit_test_setup_teardown(test_get_retried_on_reset, rig_setup, rig_teardown),
		cmocka_unit_test_setup_teardown(test_post_not_retried_on_reset, rig_setup,
						rig_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
