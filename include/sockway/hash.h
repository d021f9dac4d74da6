/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The shard-key hash and the slot pick, shared by BPF and userspace. No map access here:
 * any program may include it (decide.h adds the parts that read maps).
 */
#ifndef SOCKWAY_HASH_H
#define SOCKWAY_HASH_H

#include "abi.h"

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

/*
 * The shard-key hash, sw_hash64(): 64-bit FNV-1a over the bytes, then the MurmurHash3
 * 64-bit finaliser so that every output bit depends on every input bit (the slot pick uses
 * the low bits). README "Shard-key hash" gives the same definition for other tools.
 */
#define SW_FNV_OFFSET 0xcbf29ce484222325ULL
#define SW_FNV_PRIME  0x00000100000001b3ULL

static __always_inline __u64 sw_hash_step(__u64 state, __u8 c)
{
	return (state ^ c) * SW_FNV_PRIME;
}

/* Hosts compare case-insensitively (RFC 9110 4.2.3): hash them in ASCII lower case. */
static __always_inline __u64 sw_hash_step_lower(__u64 state, __u8 c)
{
	if (c >= 'A' && c <= 'Z')
		c += 'a' - 'A';
	return sw_hash_step(state, c);
}

static __always_inline __u64 sw_hash_final(__u64 h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

/* sw_hash64() of a whole buffer, in ASCII lower case if lower; BPF code feeds bytes
 * through bpf_loop() instead. */
static __always_inline __u64 sw_hash64_of(const void *buf, __u32 len, int lower)
{
	const __u8 *p = (const __u8 *)buf;
	__u64 state = SW_FNV_OFFSET;
	__u32 i;

	for (i = 0; i < len; i++)
		state = lower ? sw_hash_step_lower(state, p[i]) : sw_hash_step(state, p[i]);
	return sw_hash_final(state);
}

static __always_inline __u64 sw_hash64(const void *buf, __u32 len)
{
	return sw_hash64_of(buf, len, 0);
}

/*
 * The tag of a socket in the conns map (abi.h): never 0, which marks a free entry. Not a
 * secret and not collision-free: lookups compare the whole key as well. A test build
 * narrows it (SW_TEST_SOCK_HASH_BITS) so that tests/integration/test_collide.sh can make
 * two sockets share a tag on purpose.
 */
static __always_inline __u64 sw_sock_key_hash(const struct sw_sock_key *k)
{
	__u64 h = SW_FNV_OFFSET ^ k->netns;

	h = (h ^ k->family) * SW_FNV_PRIME;
	h = (h ^ k->local_ip[0]) * SW_FNV_PRIME;
	h = (h ^ k->local_ip[1]) * SW_FNV_PRIME;
	h = (h ^ k->local_ip[2]) * SW_FNV_PRIME;
	h = (h ^ k->local_ip[3]) * SW_FNV_PRIME;
	h = (h ^ k->remote_ip[0]) * SW_FNV_PRIME;
	h = (h ^ k->remote_ip[1]) * SW_FNV_PRIME;
	h = (h ^ k->remote_ip[2]) * SW_FNV_PRIME;
	h = (h ^ k->remote_ip[3]) * SW_FNV_PRIME;
	h = (h ^ ((__u64)k->local_port << 16 | k->remote_port)) * SW_FNV_PRIME;
	h = sw_hash_final(h);
#ifdef SW_TEST_SOCK_HASH_BITS
	h &= (1ULL << SW_TEST_SOCK_HASH_BITS) - 1;
#endif
	return h ? h : 1;
}

/* The same socket seen by both ends: equal keys, pad ignored. */
static __always_inline int sw_sock_key_equal(const struct sw_sock_key *a,
					     const struct sw_sock_key *b)
{
	return a->netns == b->netns && a->family == b->family && a->local_ip[0] == b->local_ip[0] &&
	       a->local_ip[1] == b->local_ip[1] && a->local_ip[2] == b->local_ip[2] &&
	       a->local_ip[3] == b->local_ip[3] && a->remote_ip[0] == b->remote_ip[0] &&
	       a->remote_ip[1] == b->remote_ip[1] && a->remote_ip[2] == b->remote_ip[2] &&
	       a->remote_ip[3] == b->remote_ip[3] && a->local_port == b->local_port &&
	       a->remote_port == b->remote_port;
}

/* sw_hash64() of the ASCII lower case of a buffer: the hash of a Host. */
static __always_inline __u64 sw_hash64_lower(const void *buf, __u32 len)
{
	return sw_hash64_of(buf, len, 1);
}

/* Slot of a request with a shard key of hash h. */
static __always_inline __u32 sw_slot_of_hash(__u64 h)
{
	return (__u32)h & (SW_SLOTS - 1);
}

/* Slot of a request without a shard key: a uniform 32-bit random value picks it. */
static __always_inline __u32 sw_slot_of_random(__u32 rnd)
{
	return rnd & (SW_SLOTS - 1);
}

/* A shadow takes a request when its own uniform 32-bit draw is below its threshold. */
static __always_inline int sw_shadow_sampled(const struct sw_shadow *s, __u32 rnd)
{
	return (__u64)rnd < s->threshold;
}

/* The threshold of a fraction in 1/SW_WEIGHT_ONE: fraction * 2^32, so 1.0 always samples. */
static __always_inline __u64 sw_shadow_threshold(__u32 fraction)
{
	return ((__u64)fraction << 32) / SW_WEIGHT_ONE;
}

/* The result of a backend pick. */
struct sw_pick {
	__u64 generation; /* the policy generation the pick was made under */
	__u16 endpoint_id;
	__u16 backend_id;
	__u16 cell;  /* counter cell of (endpoint, backend, primary) */
	__u16 split; /* index into the endpoint's splits[] */
	__u32 slot;
	__u32 copy; /* which copy (0 or 1) of the endpoint was live */
};

#endif /* SOCKWAY_HASH_H */
