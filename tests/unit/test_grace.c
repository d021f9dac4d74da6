// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * sockwayd's grace periods (user/helper/grace.c), for real: the thread, its map of maps
 * and the kernel's grace periods (root, as the whole suite: grace_start needs to create BPF
 * maps, and without them this fails). A ticket must pass whether the thread was asleep or
 * at work when it was taken (a lost wake-up leaves it waiting for good, which the waits
 * below turn into a failure after a minute); grace periods begin at least GRACE_GAP_MS
 * apart however many tickets ask; before the start and after the stop every ticket has
 * passed.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "grace.h"

static __u64 now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000 + (__u64)ts.tv_nsec / 1000000;
}

/* Until the ticket has passed: true, or false after a minute (it never will). */
static bool wait_passed(__u64 t)
{
	__u64 until = now_ms() + 60000;

	while (!grace_passed(t)) {
		if (now_ms() > until)
			return false;
		usleep(200);
	}
	return true;
}

static void *ticket_taker(void *arg)
{
	unsigned i;

	(void)arg;
	for (i = 0; i < 300; i++)
		if (!wait_passed(grace_ticket()))
			return (void *)1;
	return NULL;
}

static void test_grace(void **state)
{
	pthread_t th[4];
	unsigned i, rounds;
	__u64 t, start, elapsed;
	void *ret;

	(void)state;
	/* Not started: nothing to wait for. */
	assert_false(grace_ok());
	assert_true(grace_passed(grace_ticket()));

	grace_start();
	assert_true(grace_ok()); /* as root, the maps could be made */

	/* Tickets taken at every point of the thread's cycle: while it sleeps (after a
	 * pause longer than the gap), while it waits out the gap, right after a pass. */
	for (i = 0; i < 60; i++) {
		t = grace_ticket();
		assert_true(wait_passed(t));
		assert_false(grace_passed(t + 1000));
		usleep((i % 4) * 5000);
	}

	/* Many takers at once: each one's tickets pass. */
	for (i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&th[i], NULL, ticket_taker, NULL), 0);
	for (i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], &ret), 0);
		assert_null(ret);
	}

	/* However often tickets ask, grace periods begin at least 10 ms apart: each round
	 * here needs one grace period begun after its ticket, so no more rounds fit in the
	 * time than that allows (a slow machine makes fewer, never more). */
	start = now_ms();
	for (rounds = 0; now_ms() - start < 300; rounds++)
		assert_true(wait_passed(grace_ticket()));
	elapsed = now_ms() - start;
	print_message("# %u rounds of a ticket and its grace period in %llu ms\n", rounds,
		      (unsigned long long)elapsed);
	assert_true(rounds <= elapsed / 10 + 2);

	/* Stopped: the last grace period passed, and tickets pass at once again. */
	t = grace_ticket();
	assert_true(grace_stop());
	assert_false(grace_ok());
	assert_true(grace_passed(t));
	assert_true(grace_passed(grace_ticket()));
	assert_false(grace_stop());
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_grace),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
