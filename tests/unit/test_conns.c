// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * The splice handshake of a conns entry, sockwayd's side (user/lib/conns.c): arming, and
 * settling against every state the sk_msg program leaves (abi.h, struct sw_conn); then a
 * thread that plays the kernel's side of a whole response (PREARMED -> TAKING -> DONE, by
 * compare-and-swap as bpf/sk_msg.bpf.c does) against sockwayd settling at the same time:
 * the response is either taken back untouched or collected whole, never both or neither.
 * Last, the reclaim of a dead sockwayd's entries: marked, and freed only once a grace
 * period taken after the mark has passed.
 */
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "conns.h"
#include "sockway/hash.h"

static struct sw_sock_key key_of(__u32 port)
{
	struct sw_sock_key k = {
		.netns = 4096, .family = AF_INET, .local_port = port, .remote_port = 80};

	k.local_ip[0] = 0x0100007f;
	k.remote_ip[0] = 0x0100007f;
	return k;
}

static void test_arm_and_prearm(void **state)
{
	struct sw_conn e;
	struct sw_sock_key k = key_of(40000);

	(void)state;
	memset(&e, 0xa5, sizeof(e));
	sw_conn_splice_prearm(&e, &k, false, 55);
	assert_int_equal(e.splice, SW_SPLICE_PREARMED);
	assert_memory_equal(&e.client, &k, sizeof(k));
	assert_int_equal(e.done, 0);
	assert_int_equal(e.left, 0);
	assert_int_equal(e.egress, 0);
	assert_int_equal(e.client_cookie, 55);
	memset(&e, 0xa5, sizeof(e));
	sw_conn_splice_prearm(&e, &k, true, 77);
	assert_int_equal(e.egress, 1);
	assert_int_equal(e.client_cookie, 77);
	memset(&e, 0xa5, sizeof(e));
	sw_conn_splice_arm(&e, &k, 12345, false, 66);
	assert_int_equal(e.egress, 0);
	assert_int_equal(e.client_cookie, 66);
	assert_int_equal(e.splice, SW_SPLICE_ARMED);
	assert_memory_equal(&e.client, &k, sizeof(k));
	assert_int_equal(e.done, 0);
	assert_int_equal(e.left, 12345);
}

/* settle in each state: what it returns, what it saw, and the state it leaves. */
static void test_settle_states(void **state)
{
	static const struct {
		__u32 in;
		long long ret;
		__u32 seen, out;
	} cases[] = {
		{SW_SPLICE_IDLE, 0, SW_SPLICE_IDLE, SW_SPLICE_IDLE},
		/* Not started: taken back. */
		{SW_SPLICE_ARMED, 0, SW_SPLICE_IDLE, SW_SPLICE_IDLE},
		{SW_SPLICE_PREARMED, 0, SW_SPLICE_IDLE, SW_SPLICE_IDLE},
		/* The kernel is moving bytes: left alone. */
		{SW_SPLICE_ACTIVE, -1, SW_SPLICE_ACTIVE, SW_SPLICE_ACTIVE},
		{SW_SPLICE_SPLIT, -1, SW_SPLICE_SPLIT, SW_SPLICE_SPLIT},
		{SW_SPLICE_TAKING, -1, SW_SPLICE_TAKING, SW_SPLICE_TAKING},
		/* Over: what it moved, and the entry is sockwayd's again. */
		{SW_SPLICE_STOPPED, 777, SW_SPLICE_STOPPED, SW_SPLICE_IDLE},
		{SW_SPLICE_DONE, 777, SW_SPLICE_DONE, SW_SPLICE_IDLE},
	};
	struct sw_sock_key k = key_of(40001);
	struct sw_conn e;
	unsigned i;
	__u32 seen;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&e, 0, sizeof(e));
		e.client = k;
		e.done = 777;
		e.splice = cases[i].in;
		seen = 0xffffffff;
		assert_int_equal(sw_conn_splice_settle(&e, &seen), cases[i].ret);
		assert_int_equal(seen, cases[i].seen);
		assert_int_equal(e.splice, cases[i].out);
		/* Nothing else is touched. */
		assert_int_equal(e.done, 777);
		assert_memory_equal(&e.client, &k, sizeof(k));
	}
}

/*
 * The kernel's side of a whole response, as sk_msg does it: take the arming (a swap from
 * PREARMED), pass the response on, then DONE with what moved. Driven round by round from
 * the test's thread.
 */
struct race {
	struct sw_conn e;
	unsigned round; /* the round the kernel side is to play; 0: stop */
	unsigned played;
	int took; /* that round's kernel took the response */
};

/* Rounds at least, and more while some outcome is still rare, for 3 s at most. */
#define RACE_ROUNDS 20000
#define RACE_SEEN   20
/* Until every outcome came up RACE_SEEN times: at once on an idle machine; a busy one (the
 * threads seldom overlap) may need many more rounds, so the bound is only a backstop. */
#define RACE_NS	   60000000000ll
#define RACE_BYTES 1234

static void *kernel_side(void *arg)
{
	struct race *r = arg;
	unsigned done_rounds = 0, round;

	for (;;) {
		while ((round = __atomic_load_n(&r->round, __ATOMIC_ACQUIRE)) == done_rounds)
			sched_yield();
		if (round == 0)
			return NULL;
		r->took = __sync_bool_compare_and_swap(&r->e.splice, SW_SPLICE_PREARMED,
						       SW_SPLICE_TAKING);
		if (r->took) {
			/* Some work between the swaps, as the redirect is. */
			for (volatile int i = 0; i < (int)(round % 512); i++)
				;
			r->e.done = RACE_BYTES;
			__sync_val_compare_and_swap(&r->e.splice, SW_SPLICE_TAKING, SW_SPLICE_DONE);
		}
		done_rounds = round;
		__atomic_store_n(&r->played, round, __ATOMIC_RELEASE);
	}
}

static long long elapsed_ns(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000000000ll + (t.tv_nsec - t0->tv_nsec);
}

static void test_settle_races_whole_response(void **state)
{
	static struct race r;
	struct sw_sock_key k = key_of(40002);
	unsigned round, took = 0, back = 0, busy = 0;
	struct timespec t0;
	cpu_set_t set;
	int cpus = 1;
	pthread_t t;
	long long ret;
	__u32 seen;

	(void)state;
	if (!sched_getaffinity(0, sizeof(set), &set))
		cpus = CPU_COUNT(&set);
	assert_int_equal(pthread_create(&t, NULL, kernel_side, &r), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (round = 1;; round++) {
		if (round > RACE_ROUNDS &&
		    (cpus < 2 || (took >= RACE_SEEN && back >= RACE_SEEN && busy >= RACE_SEEN) ||
		     elapsed_ns(&t0) > RACE_NS))
			break;
		sw_conn_splice_prearm(&r.e, &k, false, 1);
		__atomic_store_n(&r.round, round, __ATOMIC_RELEASE);
		/* sockwayd settles at a varying moment of the kernel's run. */
		for (volatile unsigned i = 0; i < round % 4099; i++)
			;
		ret = sw_conn_splice_settle(&r.e, &seen);
		busy += ret < 0;
		while (ret < 0) {
			/* Only a whole response being taken is left to finish. */
			assert_int_equal(seen, SW_SPLICE_TAKING);
			sched_yield();
			ret = sw_conn_splice_settle(&r.e, &seen);
		}
		while (__atomic_load_n(&r.played, __ATOMIC_ACQUIRE) != round)
			sched_yield();
		if (r.took) {
			/* Collected whole, exactly once. */
			assert_int_equal(ret, RACE_BYTES);
			assert_int_equal(seen, SW_SPLICE_DONE);
			took++;
		} else {
			/* Taken back before the kernel looked: nothing moved. */
			assert_int_equal(ret, 0);
			assert_int_equal(seen, SW_SPLICE_IDLE);
			back++;
		}
		assert_int_equal(r.e.splice, SW_SPLICE_IDLE);
	}
	__atomic_store_n(&r.round, 0, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	print_message("# %u rounds: the kernel took %u (%u found being taken), sockwayd took "
		      "back %u\n",
		      round - 1, took, busy, back);
	assert_int_equal(took + back, round - 1);
	/* With two CPUs the race really ran: every outcome came up (one CPU interleaves
	 * the threads only at their yields; a busy machine makes some outcomes rare). */
	if (cpus >= 2) {
		assert_true(took > 0);
		assert_true(back > 0);
		assert_true(busy > 0);
	}
}

/* The reclaim's grace periods, played by the test: tickets count up, and those below
 * grace_upto have passed. A ticket must come after the marks it covers: each checks that
 * the way named in must_be_marked is marked, its key retired, by then. */
static __u64 next_ticket = 1, grace_upto;
static struct sw_conn *must_be_marked;
static __u64 fake_ticket(void)
{
	if (must_be_marked) {
		assert_int_equal(must_be_marked->owner, SW_CONN_RECLAIMING | (__u32)getpid());
		assert_int_equal(must_be_marked->self.family, 0);
	}
	return next_ticket++;
}
static bool fake_passed(__u64 t)
{
	return t < grace_upto;
}

/* A pid that was and is no more: a child, exited and reaped. */
static pid_t dead_pid(void)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (!pid)
		_exit(0);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	return pid;
}

/* A pid that is alive until stopped: a child that waits, and dies with the test (a failed
 * assertion does not stop it), holding none of its output open. */
static pid_t live_pid(void)
{
	pid_t parent = getpid(), pid = fork();

	assert_true(pid >= 0);
	if (!pid) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(0);
		close(STDOUT_FILENO);
		close(STDERR_FILENO);
		pause();
		_exit(0);
	}
	return pid;
}

static void fill(struct sw_maps *m, __u32 bucket, unsigned way, __u32 owner, __u16 port)
{
	m->conn_tags[bucket].tag[way] = 1000 + way;
	m->conns[bucket * SW_CONN_WAYS + way].owner = owner;
	m->conns[bucket * SW_CONN_WAYS + way].self = key_of(port);
	m->conns[bucket * SW_CONN_WAYS + way].splice = SW_SPLICE_ACTIVE;
}

static void test_reclaim_after_grace(void **state)
{
	struct sw_maps m = {0};
	struct sw_reclaims r = {.ticket = fake_ticket, .passed = fake_passed};
	struct sw_sock_key k = key_of(41000), k2 = key_of(41001);
	__u32 bucket = sw_sock_key_hash(&k) % SW_CONN_BUCKETS;
	__u32 bucket2 = sw_sock_key_hash(&k2) % SW_CONN_BUCKETS;
	__u32 me = (__u32)getpid(), mark = SW_CONN_RECLAIMING | me;
	pid_t dead = dead_pid(), dead2 = dead_pid(), live = live_pid();
	struct sw_conn *e, *way, *way2;
	__u64 first_ticket;
	unsigned i;

	(void)state;
	assert_int_not_equal(bucket, bucket2);
	m.conns = calloc(SW_CONNS, sizeof(*m.conns));
	m.conn_tags = calloc(SW_CONN_BUCKETS, sizeof(*m.conn_tags));
	assert_non_null(m.conns);
	assert_non_null(m.conn_tags);
	way = &m.conns[bucket * SW_CONN_WAYS];
	way2 = &m.conns[bucket2 * SW_CONN_WAYS];

	/* Ways 0 and 1 of a dead sockwayd, 2 of a live one, 3 marked by a sockwayd that died
	 * before it freed it. */
	fill(&m, bucket, 0, (__u32)dead, 1);
	fill(&m, bucket, 1, (__u32)dead, 2);
	fill(&m, bucket, 2, (__u32)live, 3);
	fill(&m, bucket, 3, SW_CONN_RECLAIMING | (__u32)dead2, 4);

	/* Without a reclaim set, or grace periods (no ticket), a full bucket is just full. */
	assert_null(sw_conn_claim(&m, &k, NULL));
	r.ticket = NULL;
	assert_null(sw_conn_claim(&m, &k, &r));
	assert_int_equal(r.n, 0);
	r.ticket = fake_ticket;
	for (i = 0; i < SW_CONN_WAYS; i++)
		assert_int_not_equal(way[i].owner, mark);
	assert_int_equal(way[0].owner, (__u32)dead);
	assert_int_equal(way[0].self.family, AF_INET);

	/* Marked, their keys retired, not freed: their tags and splices stay, and one ticket
	 * taken after the marks covers them. */
	must_be_marked = &way[3];
	assert_null(sw_conn_claim(&m, &k, &r));
	must_be_marked = NULL;
	assert_int_equal(r.n, 3);
	for (i = 0; i < SW_CONN_WAYS; i++) {
		assert_int_equal(m.conn_tags[bucket].tag[i], 1000 + i);
		assert_int_equal(way[i].splice, SW_SPLICE_ACTIVE);
		assert_int_equal(way[i].owner, i == 2 ? (__u32)live : mark);
		assert_int_equal(way[i].self.family, i == 2 ? AF_INET : 0);
	}
	assert_int_equal(r.grace[0], r.grace[1]);
	assert_int_equal(r.grace[0], r.grace[2]);
	first_ticket = r.grace[0];

	/* Marked by us: not marked again, and the bucket stays full. */
	assert_null(sw_conn_claim(&m, &k, &r));
	assert_int_equal(r.n, 3);

	/* A second bucket, later: a way of a dead sockwayd; one marked by a live sockwayd
	 * (it frees it); one half claimed (tag set, owner not yet written); one of ours. */
	fill(&m, bucket2, 0, (__u32)dead, 5);
	fill(&m, bucket2, 1, SW_CONN_RECLAIMING | (__u32)live, 6);
	fill(&m, bucket2, 2, 0, 7);
	fill(&m, bucket2, 3, me, 8);
	must_be_marked = &way2[0];
	assert_null(sw_conn_claim(&m, &k2, &r));
	must_be_marked = NULL;
	assert_int_equal(r.n, 4);
	assert_true(r.grace[3] > first_ticket);
	assert_int_equal(way2[0].owner, mark);
	assert_int_equal(way2[1].owner, SW_CONN_RECLAIMING | (__u32)live);
	assert_int_equal(way2[2].owner, 0);
	assert_int_equal(way2[3].owner, me);

	/* No grace period has passed: nothing is freed. */
	sw_reclaims_tick(&m, &r);
	assert_int_equal(r.n, 4);
	assert_null(sw_conn_claim(&m, &k, &r));

	/* The first ticket's has: its three are free and idle, the second bucket's one waits
	 * (and the set keeps it alone), and a claim takes a freed way. */
	grace_upto = first_ticket + 1;
	sw_reclaims_tick(&m, &r);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.idx[0], bucket2 * SW_CONN_WAYS);
	for (i = 0; i < SW_CONN_WAYS; i++) {
		if (i == 2)
			continue;
		assert_int_equal(m.conn_tags[bucket].tag[i], 0);
		assert_int_equal(way[i].owner, 0);
		assert_int_equal(way[i].splice, SW_SPLICE_IDLE);
	}
	assert_int_equal(way2[0].owner, mark);
	e = sw_conn_claim(&m, &k, &r);
	assert_ptr_equal(e, &way[0]);
	assert_int_equal(e->owner, me);
	assert_memory_equal(&e->self, &k, sizeof(k));
	grace_upto = next_ticket;
	sw_reclaims_tick(&m, &r);
	assert_int_equal(r.n, 0);
	assert_int_equal(m.conn_tags[bucket2].tag[0], 0);
	assert_int_equal(way2[0].owner, 0);

	/* An entry in the set that is not our mark any more (freed, claimed) is left alone. */
	r.n = 1;
	r.idx[0] = bucket * SW_CONN_WAYS;
	r.grace[0] = 0;
	sw_reclaims_tick(&m, &r);
	assert_int_equal(r.n, 0);
	assert_int_equal(way[0].owner, me);
	assert_int_equal(m.conn_tags[bucket].tag[0], sw_sock_key_hash(&k));

	/* A set that is full marks no more than it holds. */
	fill(&m, bucket, 0, (__u32)dead, 1);
	fill(&m, bucket, 1, (__u32)dead, 2);
	fill(&m, bucket, 3, (__u32)dead, 4);
	r.n = SW_RECLAIMS_MAX - 1;
	assert_null(sw_conn_claim(&m, &k, &r));
	assert_int_equal(r.n, SW_RECLAIMS_MAX);
	assert_int_equal(r.idx[SW_RECLAIMS_MAX - 1], bucket * SW_CONN_WAYS);
	assert_int_equal(r.grace[SW_RECLAIMS_MAX - 1], next_ticket - 1);
	assert_int_equal(way[0].owner, mark);
	assert_int_equal(way[1].owner, (__u32)dead);
	r.n = 0;

	/* The sweep at start: every dead owner's entry marked, and so is every entry with
	 * our pid (an earlier process's: this one holds none yet), freed when told; the live
	 * one's and its mark stay, and so does a half claim. */
	fill(&m, 7, 0, (__u32)dead2, 9);
	/* bucket's ways 0 (ours, marked above), 1 and 3; bucket2's way 3; bucket 7's */
	assert_int_equal(sw_conns_mark_dead(&m), 5);
	assert_int_equal(m.conns[7 * SW_CONN_WAYS].owner, mark);
	assert_int_equal(m.conns[7 * SW_CONN_WAYS].self.family, 0);
	assert_int_equal(way2[3].owner, mark);
	assert_int_equal(way2[3].self.family, 0);
	sw_conns_free_marked(&m);
	assert_int_equal(m.conn_tags[7].tag[0], 0);
	for (i = 0; i < SW_CONN_WAYS; i++) {
		assert_int_equal(m.conn_tags[bucket].tag[i], i == 2 ? 1002 : 0);
		assert_int_equal(m.conn_tags[bucket2].tag[i], i == 1 || i == 2 ? 1000 + i : 0);
	}
	assert_int_equal(way2[1].owner, SW_CONN_RECLAIMING | (__u32)live);
	assert_int_equal(way2[1].self.family, AF_INET);
	fill(&m, 8, 0, me, 10);
	fill(&m, 8, 1, mark, 11);
	fill(&m, 8, 2, (__u32)live, 12);
	sw_conns_release_mine(&m);
	assert_int_equal(m.conn_tags[8].tag[0], 0);
	assert_int_equal(m.conn_tags[8].tag[1], 0);
	assert_int_equal(m.conn_tags[8].tag[2], 1002);
	kill(live, SIGKILL);
	waitpid(live, NULL, 0);
	free(m.conns);
	free(m.conn_tags);
}

/* The lend sweep at start: a slot stays while its entry is lent in that set by a live
 * owner (ours too); a dead owner's goes, and so does a marked one's (a mark means the
 * owner is gone, whoever marked it). */
static void test_lend_sweep_marks(void **state)
{
	struct sw_maps m = {0};
	pid_t dead = dead_pid(), live = live_pid();
	__u32 owners[4] = {(__u32)live, SW_CONN_RECLAIMING | (__u32)live, (__u32)getpid(),
			   (__u32)dead};
	unsigned i;

	(void)state;
	m.conns = calloc(SW_CONNS, sizeof(*m.conns));
	m.lend = calloc(SW_LEND_SETS, sizeof(*m.lend));
	assert_non_null(m.conns);
	assert_non_null(m.lend);
	for (i = 0; i < 4; i++) {
		m.conns[10 + i].owner = owners[i];
		m.conns[10 + i].lent = 1;
		m.conns[10 + i].lend_set = 3;
		m.lend[3].slot[i] = 10 + i + 1;
	}
	assert_int_equal(sw_lend_sweep(&m), 2);
	assert_int_equal(m.lend[3].slot[0], 11);
	assert_int_equal(m.lend[3].slot[1], 0);
	assert_int_equal(m.lend[3].slot[2], 13);
	assert_int_equal(m.lend[3].slot[3], 0);
	kill(live, SIGKILL);
	waitpid(live, NULL, 0);
	free(m.conns);
	free(m.lend);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_arm_and_prearm),
		cmocka_unit_test(test_settle_states),
		cmocka_unit_test(test_settle_races_whole_response),
		cmocka_unit_test(test_reclaim_after_grace),
		cmocka_unit_test(test_lend_sweep_marks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
