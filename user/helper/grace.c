// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * Grace periods (grace.h), by a guarantee of the kernel's: an update of a map of maps
 * returns only after every BPF program run that may still use the old inner map has ended
 * (the bpf(2) syscall waits for an RCU grace period, synchronize_rcu, so that userspace can
 * use the update as a barrier), which is every run that began before the update; sk_msg
 * runs are RCU read-side sections. One thread makes such updates, on a private
 * ARRAY_OF_MAPS of one slot, whenever a ticket waits for one (microseconds to a few
 * milliseconds each, longer while a run is held off its CPU), but not more often than
 * every GRACE_GAP_MS: tickets taken meanwhile wait for the next. What waits for them waits
 * 100 ms or more anyway (upstream.c), and a grace period is not free: on a kernel that
 * expedites them (rcu_expedited, or one that makes this update expedite it), each one
 * interrupts every CPU, so clients that close by the thousand per second must not make
 * as many. A ticket is one atomic add; it wakes the thread only when it sleeps.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "grace.h"
#include "log.h"

/* Grace periods begin at least this far apart. */
#define GRACE_GAP_MS 10

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv; /* on CLOCK_MONOTONIC */
	pthread_t thread;
	int outer, inner;
	bool running, stop;
	__u64 requested; /* the last ticket given (atomic) */
	__u64 completed; /* every ticket up to this one has passed (atomic) */
	int sleeping;	 /* the thread waits for a ticket (atomic): the next one wakes it */
} g = {
	.mu = PTHREAD_MUTEX_INITIALIZER,
	.cv = PTHREAD_COND_INITIALIZER,
	.outer = -1,
	.inner = -1,
	.completed = UINT64_MAX, /* until started: no grace periods, every ticket passed */
};

/* One grace period: 0, or -errno when the kernel would not update the map. */
static int grace_period(void)
{
	__u32 zero = 0;

	return bpf_map_update_elem(g.outer, &zero, &g.inner, BPF_ANY) ? -errno : 0;
}

/* Waits under g.mu, on g.cv, until the monotonic time *until or g.stop. */
static void gap_wait(const struct timespec *until)
{
	while (!g.stop && pthread_cond_timedwait(&g.cv, &g.mu, until) != ETIMEDOUT)
		;
}

static void *grace_main(void *arg)
{
	struct timespec next;
	unsigned tries;
	__u64 r;
	int err;

	(void)arg;
	pthread_mutex_lock(&g.mu);
	while (!g.stop) {
		r = __atomic_load_n(&g.requested, __ATOMIC_SEQ_CST);
		if (r == __atomic_load_n(&g.completed, __ATOMIC_RELAXED)) {
			/* Asleep, then a look again: a ticket either comes before the look and
			 * is seen, or sees sleeping and signals, which it can only do (it takes
			 * the mutex) once this waits. */
			__atomic_store_n(&g.sleeping, 1, __ATOMIC_SEQ_CST);
			if (__atomic_load_n(&g.requested, __ATOMIC_SEQ_CST) == r && !g.stop)
				pthread_cond_wait(&g.cv, &g.mu);
			__atomic_store_n(&g.sleeping, 0, __ATOMIC_RELAXED);
			continue;
		}
		/* Tickets up to r were taken before the grace period below begins. */
		pthread_mutex_unlock(&g.mu);
		clock_gettime(CLOCK_MONOTONIC, &next);
		next.tv_nsec += GRACE_GAP_MS * 1000000L;
		if (next.tv_nsec >= 1000000000L) {
			next.tv_sec++;
			next.tv_nsec -= 1000000000L;
		}
		/* A failure (out of memory, say) is tried again, up to a second apart, until
		 * it works or sockwayd stops: the tickets wait meanwhile (waiting is the safe
		 * side; a worker lends no more once too many sockets wait, kroute.c). */
		for (tries = 0;
		     (err = grace_period()) && !__atomic_load_n(&g.stop, __ATOMIC_RELAXED);
		     tries++) {
			if (!tries)
				pr_warn("grace periods: the kernel would not update a map of maps "
					"(%s); trying again",
					strerror(-err));
			usleep(tries < 10 ? 100000u << (tries < 3 ? tries : 3) : 1000000u);
		}
		if (err)
			return NULL; /* stopping (the mutex is not held here) */
		if (tries)
			pr_warn("grace periods: going again after %u tries", tries + 1);
		__atomic_store_n(&g.completed, r, __ATOMIC_RELEASE);
		pthread_mutex_lock(&g.mu);
		gap_wait(&next);
	}
	pthread_mutex_unlock(&g.mu);
	return NULL;
}

void grace_start(void)
{
	LIBBPF_OPTS(bpf_map_create_opts, opts);
	pthread_condattr_t ca;
	int err;

	g.inner = bpf_map_create(BPF_MAP_TYPE_ARRAY, "sw_grace_in", 4, 4, 1, NULL);
	if (g.inner < 0) {
		err = -errno;
		goto fail;
	}
	opts.inner_map_fd = g.inner;
	g.outer = bpf_map_create(BPF_MAP_TYPE_ARRAY_OF_MAPS, "sw_grace", 4, 4, 1, &opts);
	if (g.outer < 0) {
		err = -errno;
		goto fail;
	}
	err = pthread_condattr_init(&ca);
	if (!err) {
		err = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		if (!err)
			err = pthread_cond_init(&g.cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	if (err) {
		err = -err;
		goto fail;
	}
	/* The first one, here: every run that began before the call has ended. */
	err = grace_period();
	if (err)
		goto fail;
	__atomic_store_n(&g.requested, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&g.completed, 0, __ATOMIC_RELEASE);
	err = -pthread_create(&g.thread, NULL, grace_main, NULL);
	if (err) {
		g.completed = UINT64_MAX;
		goto fail;
	}
	g.running = true;
	return;
fail:
	pr_warn("grace periods: %s; conns entries are freed on their delay alone", strerror(-err));
	if (g.outer >= 0)
		close(g.outer);
	if (g.inner >= 0)
		close(g.inner);
	g.outer = g.inner = -1;
}

bool grace_ok(void)
{
	return g.running;
}

/*
 * Stops the thread, then one last grace period in the caller's: if it passes, every run
 * that began before the call has ended when it returns.
 */
bool grace_stop(void)
{
	bool passed = false;

	if (!g.running)
		return false;
	pthread_mutex_lock(&g.mu);
	__atomic_store_n(&g.stop, true, __ATOMIC_RELAXED);
	pthread_cond_signal(&g.cv);
	pthread_mutex_unlock(&g.mu);
	pthread_join(g.thread, NULL);
	g.running = false;
	passed = grace_period() == 0;
	__atomic_store_n(&g.completed, UINT64_MAX, __ATOMIC_RELEASE);
	close(g.outer);
	close(g.inner);
	g.outer = g.inner = -1;
	return passed;
}

__u64 grace_ticket(void)
{
	__u64 t = __atomic_add_fetch(&g.requested, 1, __ATOMIC_SEQ_CST);

	if (__atomic_load_n(&g.sleeping, __ATOMIC_SEQ_CST)) {
		pthread_mutex_lock(&g.mu);
		pthread_cond_signal(&g.cv);
		pthread_mutex_unlock(&g.mu);
	}
	return t;
}

bool grace_passed(__u64 ticket)
{
	return __atomic_load_n(&g.completed, __ATOMIC_ACQUIRE) >= ticket;
}
