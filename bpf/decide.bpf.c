// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * decide: the decision code of include/sockway/decide.h run in the kernel on one request
 * given through BPF_PROG_TEST_RUN. It reads the same pinned maps as the data plane, so
 * tests can prove that the BPF build and the userspace build of the decision code agree.
 */
#include "maps.h"
#include <bpf/bpf_helpers.h>

#include "sockway/decide.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

static __always_inline const struct sw_route *sw_routes_lookup(void *env,
							       const struct sw_route_key *key)
{
	return bpf_map_lookup_elem(&routes, key);
}

static __always_inline const struct sw_ctl *sw_ctl_get(void *env)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&ctl, &zero);
}

static __always_inline int sw_endpoint_get(void *env, __u32 index, const struct sw_endpoint **ep,
					   const struct sw_slot_table **table)
{
	*ep = bpf_map_lookup_elem(&endpoints, &index);
	*table = bpf_map_lookup_elem(&slots, &index);
	return *ep && *table ? 0 : -ENOENT;
}

/* State of one walk over a path, on the stack so that bpf_loop() callbacks can reach it. */
struct path_walk {
	struct sw_route_match m;
	__u32 len;
	__u8 buf[SW_DECIDE_PATH_MAX];
};

/*
 * One path byte per call: bpf_loop() keeps the verifier's work per byte constant, where
 * an open-coded loop with lookups in it costs a state per byte and branch.
 */
static long path_walk_step(__u32 i, struct path_walk *w)
{
	if (i >= w->len || i >= SW_DECIDE_PATH_MAX)
		return 1;
	/* Bound the index where it is used: clang checks a copy of i otherwise. */
	SW_BARRIER_VAR(i);
	return sw_route_match_feed(&w->m, NULL, w->buf[i & (SW_DECIDE_PATH_MAX - 1)]);
}

struct key_walk {
	__u64 state;
	__u32 len;
	__u32 lower; /* hash in lower case (hosts) */
	__u8 buf[SW_SHARD_KEY_MAX];
};

static long key_walk_step(__u32 i, struct key_walk *w)
{
	if (i >= w->len || i >= SW_SHARD_KEY_MAX)
		return 1;
	SW_BARRIER_VAR(i);
	i &= SW_SHARD_KEY_MAX - 1;
	w->state = w->lower ? sw_hash_step_lower(w->state, w->buf[i])
			    : sw_hash_step(w->state, w->buf[i]);
	return 0;
}

/* sw_hash64 of a string in the context; len is cut to max, as the userspace side does. */
static __always_inline __u64 hash_string(struct key_walk *w, const void *src, __u32 len, __u32 max,
					 __u32 lower)
{
	w->state = SW_FNV_OFFSET;
	w->len = len < max ? len : max;
	w->lower = lower;
	if (bpf_probe_read_kernel(w->buf, sizeof(w->buf), src))
		return 0;
	bpf_loop(SW_SHARD_KEY_MAX, key_walk_step, w, 0);
	return sw_hash_final(w->state);
}

SEC("syscall")
int decide(struct sw_decide_args *args)
{
	/* The two walks take turns, in one stack area: BPF has 512 bytes of stack. */
	union {
		struct key_walk kw;
		struct path_walk pw;
	} w = {};
	struct sw_pick pick = {};
	__u16 endpoint_id;
	__u32 slot;
	int err, tries;

	args->host_hash =
		args->host_len ? hash_string(&w.kw, args->host, args->host_len, SW_HOST_MAX, 1) : 0;
	args->key_hash = args->key_len
				 ? hash_string(&w.kw, args->key, args->key_len, SW_SHARD_KEY_MAX, 0)
				 : 0;

	if (bpf_probe_read_kernel(w.pw.buf, sizeof(w.pw.buf), args->path))
		return 0;
	w.pw.len = args->path_len;
	sw_route_match_init(&w.pw.m, args->host_hash, args->method);
	bpf_loop(SW_DECIDE_PATH_MAX, path_walk_step, &w.pw, 0);
	endpoint_id = sw_route_match_end(&w.pw.m, NULL);
	args->endpoint_id = endpoint_id;
	if (endpoint_id == SW_ID_NONE) {
		args->err = -ENOENT;
		return 0;
	}

	slot = args->key_len ? sw_slot_of_hash(args->key_hash) : sw_slot_of_random(args->rnd);
	/* A commit that runs during the pick makes it retry; two tries are plenty, since commits
	 * are rare and short, and the verifier wants a bound. */
	err = -EAGAIN;
	for (tries = 0; tries < 4 && err == -EAGAIN; tries++)
		err = sw_pick_backend(NULL, endpoint_id, slot, &pick);
	args->err = err;
	args->slot = slot;
	args->generation = pick.generation;
	args->backend_id = pick.backend_id;
	args->split = pick.split;
	args->cell = pick.cell;
	args->copy = pick.copy;
	return 0;
}
