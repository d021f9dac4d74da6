/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The policy compiler: an endpoint's weights become a slot table (include/sockway/abi.h).
 */
#ifndef SOCKWAY_COMPILE_H
#define SOCKWAY_COMPILE_H

#include "policy.h"

/*
 * Fills table[0..nr_slots) with indexes into weights[] (sorted by backend name, at most
 * SW_MAX_SPLIT, weights in 1/SW_WEIGHT_ONE, sum > 0). nr_slots is a power of two
 * >= 1024 and <= 2^20. The table is a pure function of (names, weights):
 *   - exact: backend i gets floor or ceil of weight_i / sum * nr_slots slots, and the counts
 *     sum to nr_slots (largest remainder, ties broken by name);
 *   - stable: on the changes operators make most (a canary rising, an incremental rollout,
 *     a rollback, a backend added to or removed from equal ones) the fraction of slots that
 *     change backend stays within 1.1 x the minimum (half the sum of absolute share
 *     changes) + 2 / nr_slots; test_compile.c holds it to that. No pure function of the
 *     weights can be that close on every change ({a,b} -> {a,c} -> {b,c} cannot be minimal
 *     at each step): moving weight between two of several backends may move up to about
 *     twice the minimum.
 * Returns 0 or -EINVAL (bad arguments) or -ENOMEM.
 */
int policy_compile_slots(const struct sw_policy_weight *weights, __u32 nr, __u8 *table,
			 __u32 nr_slots);

/* Slots whose backend differs between two tables, compared by backend name. */
__u32 policy_slots_moved(const struct sw_policy_weight *old_w, __u32 nr_old, const __u8 *old_table,
			 const struct sw_policy_weight *new_w, __u32 nr_new, const __u8 *new_table,
			 __u32 nr_slots);

#endif /* SOCKWAY_COMPILE_H */
