/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The decision code (include/sockway/decide.h) over the pinned maps: the hooks it asks its
 * includer for, for every BPF program that decides (decide.bpf.c, and sk_msg's kernel
 * routing). env is unused: the maps are global.
 */
#ifndef SOCKWAY_BPF_DECIDE_ENV_H
#define SOCKWAY_BPF_DECIDE_ENV_H

#include "maps.h"
#include <bpf/bpf_helpers.h>

#include "sockway/decide.h"

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

#endif /* SOCKWAY_BPF_DECIDE_ENV_H */
