// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/* A worker: its listeners, its policy copy, its counters, its loop. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "proxy.h"

/* Filled in by main() before any worker starts. */
struct swd_config swd_cfg;

int tcp_connect_start(const struct sw_addr *addr)
{
	struct sockaddr_storage ss;
	socklen_t len = sw_addr_to_sockaddr(addr, &ss);
	int fd, one = 1;

	fd = socket(addr->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* Requests and answers are small writes that must not wait for more. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&ss, len) && errno != EINPROGRESS) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

__u32 worker_random(struct worker *w)
{
	/* xorshift64*: fast, and good enough for slot and shadow draws. */
	w->rng ^= w->rng >> 12;
	w->rng ^= w->rng << 25;
	w->rng ^= w->rng >> 27;
	return (w->rng * 0x2545f4914f6cdd1dULL) >> 32;
}

void tcp_reset_on_close(int fd)
{
	struct linger reset = {.l_onoff = 1, .l_linger = 0};

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
}

void worker_policy_refresh(struct worker *w)
{
	struct snapshot *tmp;
	int err, tries;
	__u64 gen = __atomic_load_n(&w->maps->ctl->generation, __ATOMIC_ACQUIRE);

	if (gen == w->snap->ctl.generation || gen == w->stale_generation)
		return;
	/*
	 * A commit in flight (or one that lands while we copy) makes the copy retry. Waiting is
	 * right: a request sent after `sockway traffic set` returned must see the change, and
	 * a commit takes milliseconds. The bound only guards against a stuck writer.
	 */
	for (tries = 0; tries < 1000; tries++) {
		err = snapshot_load(w->maps, w->snap, w->spare);
		if (err != -EAGAIN)
			break;
		usleep(100);
	}
	if (err) {
		/* Not again for this generation: a stuck writer must not stall every request. */
		w->stale_generation = gen;
		w->stats.policy_stale++;
		pr_warn("worker %u: cannot read policy generation %llu (%s); still deciding on "
			"%llu",
			w->id, (unsigned long long)gen, strerror(-err),
			(unsigned long long)w->snap->ctl.generation);
		return;
	}
	tmp = w->snap;
	w->snap = w->spare;
	w->spare = tmp;
	w->stats.policy_reloads++;
}

struct sw_counters *worker_cell(struct worker *w, __u16 cell)
{
	if (cell >= SW_MAX_CELLS)
		return NULL;
	return &w->maps->cells[cell].shard[w->shard];
}

void counters_add(__u64 *field, __u64 v)
{
	/* Relaxed atomics: other workers share the shard when there are more than 7. */
	__atomic_fetch_add(field, v, __ATOMIC_RELAXED);
}

void counters_latency(struct sw_counters *c, __u64 us)
{
	int bucket = us ? 63 - __builtin_clzll(us) : 0;

	if (bucket >= SW_LAT_BUCKETS)
		bucket = SW_LAT_BUCKETS - 1;
	counters_add(&c->latency[bucket], 1);
	counters_add(&c->latency_sum_us, us);
}

void counters_status(struct sw_counters *c, int status)
{
	if (status >= 100 && status < 600)
		counters_add(&c->status[status / 100 - 1], 1);
}

void proxy_tick(struct worker *w)
{
	/* Each module its own timers; the exchange's may free upstreams and clients, so it
	 * runs after the pool's walk and before the clients'. */
	upstream_tick(w);
	sw_reclaims_tick(w->maps, &w->reclaims);
	lend_tick(w);
	exchange_tick(w);
	client_tick(w);
}

bool proxy_close_idle(struct worker *w)
{
	bool waiting;

	kroute_drain(w);
	waiting = client_close_idle(w);
	upstream_close_idle(w);
	return waiting;
}
