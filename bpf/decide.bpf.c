// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * decide: the decision code of include/sockway/decide.h (sw_decide_route, sw_decide_pick)
 * run in the kernel on one request given through BPF_PROG_TEST_RUN. It reads the same
 * pinned maps as the data plane, so tests can prove that the BPF build and the userspace
 * build of the decision agree, normal forms included.
 */
#include "decide_env.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* The decision's state: larger than the 512 bytes of BPF stack. Only this program. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sw_decide_state);
} decide_state SEC(".maps");

SEC("syscall")
int decide(struct sw_decide_args *args)
{
	struct sw_decide_state *s;
	__u32 zero = 0;
	int err;

	s = bpf_map_lookup_elem(&decide_state, &zero);
	if (!s)
		return 0;
	__builtin_memcpy(s->path, args->path, sizeof(s->path));
	__builtin_memcpy(s->host, args->host, sizeof(s->host));
	__builtin_memcpy(s->key, args->key, sizeof(s->key));
	/* Bytes past the normal path are copied out too: zero, as a fresh buffer's. */
	__builtin_memset(s->norm, 0, sizeof(s->norm));
	s->path_len = args->path_len;
	s->host_len = args->host_len;
	s->method = args->method;
	s->rnd = args->rnd;

	err = sw_decide_route(s, NULL);
	if (!err) {
		s->key_len = args->key_len;
		err = sw_decide_pick(s, NULL);
	}
	args->err = err;
	args->host_hash = s->host_hash;
	args->endpoint_id = s->endpoint_id;
	args->norm_len = s->norm_len;
	__builtin_memcpy(args->norm, s->norm, sizeof(args->norm));
	args->key_hash = s->key_hash;
	args->slot = s->pick.slot;
	args->generation = s->pick.generation;
	args->backend_id = s->pick.backend_id;
	args->split = s->pick.split;
	args->cell = s->pick.cell;
	args->copy = s->pick.copy;
	return 0;
}
