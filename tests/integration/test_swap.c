// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * Atomic swap: while a writer commits three policies in turn, 10,000 times, readers pick
 * backends through the generation protocol (userspace, and the BPF decide program). A pick
 * made at an even generation must come from that generation's policy; at an odd one (a
 * commit in flight), from the policy before or after it. Never from anything else. The
 * writer goes on past 10,000 until each reader checked READS_MIN picks while it ran: on a
 * busy machine a reader may get little CPU beside the writer, which only takes longer.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <cmocka.h>

#include "compile.h"
#include "decide.h"
#include "helpers.h"

#define NR_FLIPS    10000
#define NR_POLICIES 3
/* Picks each reader checks while commits run, for the test to mean something. */
#define READS_MIN 1000
/* How long the writer goes on for the readers, at most (a generous deadline). */
#define READS_WAIT_S 120

static struct sw_maps maps;
static struct sw_policy *policies[NR_POLICIES];
/* The expected table of each policy, by backend id. */
static __u16 expected[NR_POLICIES][SW_SLOTS];
static __u64 gen_base;
static __u32 copy_base;
static volatile int writer_done;
static __u32 endpoint_id;

struct reader_result {
	long checked; /* written by its reader only; read by the writer, atomically */
	long violations;
	long retries;
	char first_violation[256];
};

static void build_policies(void)
{
	static const __u32 weights[NR_POLICIES][3] = {
		{200000000, 300000000, 500000000},
		{500000000, 200000000, 300000000},
		{300000000, 500000000, 200000000},
	};
	struct sw_err e = {};
	__u8 table[SW_SLOTS];
	__u32 p, i, s, id[3];

	for (p = 0; p < NR_POLICIES; p++) {
		struct sw_policy_endpoint ep = {.nr_weights = 1};
		struct sw_policy_weight w[3];

		policies[p] = policy_alloc();
		assert_non_null(policies[p]);
		for (i = 0; i < 3; i++) {
			struct sw_policy_backend b = {.nr_replicas = 1};

			snprintf(b.name, sizeof(b.name), "b%u", i);
			assert_int_equal(sw_parse_addr("127.0.0.1:9001", &b.replicas[0], &e), 0);
			assert_int_equal(policy_add_backend(policies[p], &b, &e), 0);
			snprintf(w[i].backend, sizeof(w[i].backend), "b%u", i);
			w[i].weight = weights[p][i];
		}
		strcpy(ep.name, "swap");
		strcpy(ep.route, "/swap");
		strcpy(ep.shard_header, SW_DEFAULT_SHARD_HEADER);
		ep.weights[0] = w[0];
		ep.weights[0].weight = SW_WEIGHT_ONE;
		assert_int_equal(policy_add_endpoint(policies[p], &ep, &e), 0);
		assert_int_equal(policy_set_traffic(policies[p], "swap", w, 3, &e), 0);
		assert_int_equal(policy_compile_slots(w, 3, table, SW_SLOTS), 0);
		if (p == 0) {
			test_commit(&maps, policies[0]);
			for (i = 0; i < 3; i++)
				assert_int_equal(sw_backend_id(&maps, w[i].backend, &id[i]), 0);
		}
		for (s = 0; s < SW_SLOTS; s++)
			expected[p][s] = id[table[s]];
	}
}

/*
 * Whether a pick made at generation gen from endpoint copy `copy` is right. After k commits
 * policy k is live in copy copy_base ^ (k & 1). While commit k+1 runs (odd generation) it
 * may flip to the other copy, which then holds policy k+1, whole.
 */
static bool allowed(__u64 gen, __u32 copy, __u32 slot, __u16 backend)
{
	__u64 k = (gen - gen_base) / 2; /* commits completed */

	if (copy == (copy_base ^ (k & 1)))
		return expected[k % NR_POLICIES][slot] == backend;
	return (gen & 1) && expected[(k + 1) % NR_POLICIES][slot] == backend;
}

static void record(struct reader_result *r, __u64 gen, __u32 copy, __u32 slot, __u16 backend,
		   const char *who)
{
	__atomic_store_n(&r->checked, r->checked + 1, __ATOMIC_RELAXED);
	if (allowed(gen, copy, slot, backend))
		return;
	if (!r->violations++)
		snprintf(r->first_violation, sizeof(r->first_violation),
			 "%s: generation %llu copy %u slot %u got backend %u", who,
			 (unsigned long long)gen, copy, slot, backend);
}

static void *user_reader(void *arg)
{
	struct reader_result *r = arg;
	struct sw_decide_args a;
	__u64 x = 88172645463325252ULL;

	while (!writer_done) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memset(&a, 0, sizeof(a));
		strcpy(a.path, "/swap/x");
		a.path_len = strlen(a.path);
		a.method = SW_METHOD_GET;
		a.rnd = x;
		sw_decide(&maps, &a);
		if (a.err == -EAGAIN) {
			r->retries++;
			continue;
		}
		if (a.err) {
			r->violations++;
			snprintf(r->first_violation, sizeof(r->first_violation), "user: err %d",
				 a.err);
			continue;
		}
		record(r, a.generation, a.copy, a.slot, a.backend_id, "userspace");
	}
	return NULL;
}

static void *bpf_reader(void *arg)
{
	struct reader_result *r = arg;
	struct sw_decide_args a;
	__u64 x = 0x1234567887654321ULL;
	int fd = test_decide_fd();

	if (fd < 0) {
		r->violations++;
		snprintf(r->first_violation, sizeof(r->first_violation), "no decide program");
		return NULL;
	}
	while (!writer_done) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memset(&a, 0, sizeof(a));
		strcpy(a.path, "/swap");
		a.path_len = strlen(a.path);
		a.method = SW_METHOD_GET;
		a.rnd = x;
		if (test_decide_bpf(fd, &a) || a.err == -EAGAIN) {
			r->retries++;
			continue;
		}
		if (a.err) {
			r->violations++;
			snprintf(r->first_violation, sizeof(r->first_violation), "bpf: err %d",
				 a.err);
			continue;
		}
		record(r, a.generation, a.copy, a.slot, a.backend_id, "bpf");
	}
	close(fd);
	return NULL;
}

static time_t now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* Each reader checked READS_MIN picks, or the deadline passed (the asserts then tell). */
static bool readers_done(struct reader_result *ur, struct reader_result *br, time_t deadline)
{
	return (__atomic_load_n(&ur->checked, __ATOMIC_RELAXED) >= READS_MIN &&
		__atomic_load_n(&br->checked, __ATOMIC_RELAXED) >= READS_MIN) ||
	       now_s() > deadline;
}

static void test_swap_10000(void **state)
{
	struct reader_result ur = {}, br = {};
	pthread_t ut, bt;
	struct sw_err e = {};
	time_t deadline;
	int i, err, flips;

	(void)state;
	build_policies();
	assert_int_equal(sw_endpoint_id(&maps, "swap", &endpoint_id), 0);
	gen_base = sw_generation(&maps);
	copy_base = maps.ctl->active[endpoint_id] & 1;
	assert_int_equal(gen_base % 2, 0);
	assert_int_equal(pthread_create(&ut, NULL, user_reader, &ur), 0);
	assert_int_equal(pthread_create(&bt, NULL, bpf_reader, &br), 0);
	deadline = now_s() + READS_WAIT_S;
	for (i = 1; i <= NR_FLIPS || !readers_done(&ur, &br, deadline); i++) {
		err = policy_commit(&maps, policies[(i - 1) % NR_POLICIES],
				    policies[i % NR_POLICIES], &e);
		if (err)
			break;
	}
	writer_done = 1;
	pthread_join(ut, NULL);
	pthread_join(bt, NULL);
	if (err)
		fail_msg("commit %d: %s", i, e.msg);
	flips = i - 1;
	assert_int_equal(sw_generation(&maps), gen_base + 2 * (__u64)flips);
	print_message("swap: %d commits; userspace checked %ld picks (%ld retries), bpf %ld (%ld "
		      "retries)\n",
		      flips, ur.checked, ur.retries, br.checked, br.retries);
	if (ur.violations || br.violations)
		fail_msg("%ld + %ld picks from neither policy; first: %s%s", ur.violations,
			 br.violations, ur.first_violation, br.first_violation);
	/* Enough reads overlapped the flips for the test to mean something. */
	assert_true(ur.checked >= READS_MIN);
	assert_true(br.checked >= READS_MIN);
	for (i = 0; i < NR_POLICIES; i++)
		policy_free(policies[i]);
}

static int setup(void **state)
{
	(void)state;
	test_load("swap", &maps);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	test_unload(&maps);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_swap_10000),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
