/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Every map of sockway. All are pinned by name under /sys/fs/bpf/sockway (the agent sets
 * the pin root), so a second `sockway load` reuses them and keeps the policy, and bpftool
 * shows them with field names from BTF. Keys and values come from include/sockway/abi.h.
 * Each .bpf.c includes this file; the definitions are weak, so `bpftool gen object` links
 * them into one map each.
 */
#ifndef SOCKWAY_BPF_MAPS_H
#define SOCKWAY_BPF_MAPS_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "sockway/abi.h"
#include "sockway/hash.h"

/*
 * Route (Host hash, prefix hash) -> endpoint. Agent writes; decision code reads.
 * The name and route maps hold twice the limit: a commit adds the new keys before it drops
 * the old ones, so that no route is ever missing while the policy changes.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SW_MAX_ENDPOINTS * 2);
	__type(key, struct sw_route_key);
	__type(value, struct sw_route);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} routes SEC(".maps") __weak;

/* Endpoint id * 2 + copy -> endpoint policy (double buffered). Agent writes; all read. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SW_MAX_ENDPOINTS * 2);
	__type(key, __u32);
	__type(value, struct sw_endpoint);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} endpoints SEC(".maps") __weak;

/* Endpoint id * 2 + copy -> slot table of that copy. Agent writes; decision code reads. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SW_MAX_ENDPOINTS * 2);
	__type(key, __u32);
	__type(value, struct sw_slot_table);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} slots SEC(".maps") __weak;

/* Backend id -> name and replicas. Agent writes; sockwayd reads. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SW_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct sw_backend);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} backends SEC(".maps") __weak;

/* Backend name -> id, so that any process and bpftool resolve names. Agent writes. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SW_MAX_BACKENDS * 2);
	__type(key, char[SW_NAME_MAX]);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} backend_ids SEC(".maps") __weak;

/* Endpoint name -> id. Agent writes. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SW_MAX_ENDPOINTS * 2);
	__type(key, char[SW_NAME_MAX]);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} endpoint_ids SEC(".maps") __weak;

/*
 * The generation counter and each endpoint's live copy (one entry, mmap-able so that
 * readers watch the generation without a syscall). Agent writes; all read.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sw_ctl);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ctl SEC(".maps") __weak;

/*
 * Counter cells (endpoint x backend x role), each with one shard per writer; mmap-able so
 * that sockwayd adds without a syscall. The agent assigns and frees cells; the data plane
 * (sockwayd workers: shards 1-7; shard 0 is kept for BPF) adds; `sockway stats` and bpftool
 * read.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SW_MAX_CELLS);
	__type(key, __u32);
	__type(value, struct sw_cell);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} counters SEC(".maps") __weak;

/*
 * Local TCP sockets of accelerated cgroups, by tuple. The sockops program adds them; the
 * sk_msg program (attached to this map) redirects each send into the peer's receive
 * queue, unless ctl.accel_off. Sockets leave the map when they close.
 */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 65536);
	__type(key, struct sw_sock_key);
	/* A 4-byte value: userspace updates then take a plain int fd (with an 8-byte one
	 * they must pass a 64-bit fd, or get EINVAL). */
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sock_hash SEC(".maps") __weak;

/*
 * The kernel address of each socket in sock_hash, by the same key: sk_msg reads the peer's
 * TCP and sk_msg queue state through it (bpf_rdonly_cast) to keep redirects in order and
 * bounded. Keyed by the whole tuple, like sock_hash: a hash of it could be made to collide
 * by a process that picks its own addresses and ports, and would then point the checks
 * at its socket. sk_msg programs cannot hold a reference on a socket (no bpf_sk_release),
 * so this is a plain number: an entry may outlive its socket, which is harmless since
 * sock_hash, checked by the redirect itself, no longer has that socket then. sockops
 * deletes the entry when the socket reaches TCP_CLOSE; LRU in case one is missed.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct sw_sock_key);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sock_addr SEC(".maps") __weak;

/*
 * sockwayd's accepted sockets to clients on other hosts, by tuple: the targets of the egress
 * splice (sk_msg.bpf.c), where a local backend's response is sent out of sockwayd's socket
 * to the client. No program is attached to this map: a socket in it has the psock that a
 * redirect to its egress needs, but its own sends run no program, and nothing is ever
 * redirected into it. Kept apart from sock_hash because anyone who can reach sockwayd's
 * listeners can make many of these: they can fill this map (then new clients just go
 * without the egress splice), not sock_hash, and sockwayd's sends to them cost nothing.
 * sockops adds them; they leave when they close, or when sockwayd takes them out (its
 * client's requests go to backends the kernel cannot reach).
 */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 65536);
	__type(key, struct sw_sock_key);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} egress_hash SEC(".maps") __weak;

/* The kernel address of each socket in egress_hash, as sock_addr for sock_hash: the egress
 * splice reads its send buffer's state through it. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct sw_sock_key);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} egress_addr SEC(".maps") __weak;

/* sockwayd's connections: the tags that find them (abi.h, struct sw_conn_bucket)... */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SW_CONN_BUCKETS);
	__type(key, __u32);
	__type(value, struct sw_conn_bucket);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} conn_tags SEC(".maps") __weak;

/* ... and their counter cell and body splice (abi.h, struct sw_conn). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SW_CONNS);
	__type(key, __u32);
	__type(value, struct sw_conn);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} conns SEC(".maps") __weak;

/*
 * Idle upstream connections that sockwayd lent the kernel, per backend, replica and worker
 * (abi.h, struct sw_lend_set): mmap-able, so that sockwayd lends and takes back with a
 * compare-and-swap and no syscall. sk_msg takes from them and gives back.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SW_LEND_SETS + 1); /* the sets, then the lender ids (abi.h) */
	__type(key, __u32);
	__type(value, struct sw_lend_set);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lend SEC(".maps") __weak;

/* What the kernel path did, per CPU. sockops and sk_msg add; `sockway status` reads. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sw_accel_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} accel_stats SEC(".maps") __weak;

/* Accelerated cgroups, by cgroup id. The agent writes; `accel list` and `accel on` read. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, struct sw_accel_cgroup);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} accel_cgroups SEC(".maps") __weak;

/*
 * Way i of bucket b holds the socket with key k: its tag, a claim finished (owner, written
 * after self), and the whole key. The tag alone proves nothing (abi.h, struct sw_conn).
 * (Owner is read before self with plain loads: x86 does not reorder loads with loads, and
 * the BPF ISA of clang 14 has no load-acquire; decide.h's SW_READ_ONCE says the same.)
 */
static __always_inline struct sw_conn *conn_way(const struct sw_conn_bucket *b, __u32 bucket,
						__u32 i, __u64 tag, const struct sw_sock_key *k,
						__u32 *index)
{
	struct sw_conn *e;
	__u32 idx;

	if (b->tag[i & (SW_CONN_WAYS - 1)] != tag)
		return 0;
	idx = bucket * SW_CONN_WAYS + i;
	e = bpf_map_lookup_elem(&conns, &idx);
	if (!e || !*(volatile __u32 *)&e->owner || !sw_sock_key_equal(&e->self, k))
		return 0;
	*index = idx;
	return e;
}

/* The conns entry of a socket of sockwayd, by its key, and its index in conns; NULL for
 * any other socket. */
static __always_inline struct sw_conn *conn_find_idx(const struct sw_sock_key *k, __u32 *index)
{
	__u64 tag = sw_sock_key_hash(k);
	__u32 bucket = (__u32)(tag % SW_CONN_BUCKETS), i;
	struct sw_conn_bucket *b;
	struct sw_conn *e;

	b = bpf_map_lookup_elem(&conn_tags, &bucket);
	if (!b)
		return 0;
		/* Every way: two sockets may share a tag (one of them made to), and only one of
		 * them has this key. */
#pragma unroll
	for (i = 0; i < SW_CONN_WAYS; i++) {
		e = conn_way(b, bucket, i, tag, k, index);
		if (e)
			return e;
	}
	return 0;
}

static __always_inline struct sw_conn *conn_find(const struct sw_sock_key *k)
{
	__u32 index;

	return conn_find_idx(k, &index);
}

#endif /* SOCKWAY_BPF_MAPS_H */
