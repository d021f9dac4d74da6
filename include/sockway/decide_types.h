/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The types of the decision code (decide.h), apart from its functions: a file may hold a
 * decision's state without defining the map hooks that decide.h needs.
 */
#ifndef SOCKWAY_DECIDE_TYPES_H
#define SOCKWAY_DECIDE_TYPES_H

#include "abi.h"
#include "hash.h"
#include "norm.h"

/* The state of a longest-prefix route match over a path fed byte by byte (decide.h). */
struct sw_route_match {
	__u64 host_hash; /* sw_hash64 of the lower-case Host without port; 0 = none */
	__u64 state;	 /* FNV state of the path bytes fed so far */
	__u32 method;	 /* the request's SW_METHOD_* bit */
	__u32 len;	 /* path bytes fed so far */
	__u8 last;	 /* last byte fed */
	__u8 done;	 /* 1 once no longer prefix can match */
	__u8 params;	 /* in a segment's parameters (after its ';'): left out */
	__u8 pad;
	__u16 host_ep;		 /* best match among routes with a Host, or SW_ID_NONE */
	__u16 any_ep;		 /* best match among routes without a Host, or SW_ID_NONE */
	__u16 host_len;		 /* prefix length of host_ep's route */
	__u16 any_len;		 /* prefix length of any_ep's route */
	__u8 fed[SW_PREFIX_MAX]; /* the len bytes fed, to confirm a route found by hash */
};

/*
 * One request's decision, with the state its byte walks need. BPF keeps the inputs in the
 * state, at fixed sizes (its bpf_loop callbacks can only reach memory through the context);
 * userspace points at the request's own bytes and gives a buffer for the normal path.
 */
struct sw_decide_state {
	/* in */
#ifdef __bpf__
	__u8 path[SW_DECIDE_PATH_MAX];
	__u8 host[SW_DECIDE_HOST_MAX];
	__u8 key[SW_SHARD_KEY_MAX];
	__u8 norm[SW_DECIDE_PATH_MAX]; /* out: the path in normal form */
#else
	const __u8 *path;
	const __u8 *host;
	const __u8 *key;
	__u8 *norm; /* room for path_len bytes (the normal form is never longer) */
#endif
	__u32 path_len; /* the path without its query; it starts with '/' to be routed */
	__u32 host_len; /* 0: no Host */
	__u32 key_len;	/* 0: no shard key (set between route and pick) */
	__u32 method;	/* SW_METHOD_* bit */
	__u32 rnd;	/* uniform random value: the slot of a request without a key */
	/* work */
	int err;
	struct sw_path_norm pn;
	struct sw_host_norm hn;
	struct sw_route_match m;
	__u64 key_state;
	/* out */
	__u32 norm_len;
	__u16 endpoint_id; /* SW_ID_NONE: no route */
	__u16 pad;
	__u64 host_hash;
	__u64 key_hash;
	struct sw_pick pick;
};

/* Byte i of an input (SW_DECIDE_*_MAX, a power of two, is its size in BPF). */
#ifdef __bpf__
#define SW_DECIDE_IN(arr, i, max) ((arr)[(i) & ((max)-1)])
#else
#define SW_DECIDE_IN(arr, i, max) ((arr)[i])
#endif

#endif /* SOCKWAY_DECIDE_TYPES_H */
