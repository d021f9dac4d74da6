/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * A worker's copy of the live policy. Requests decide against the copy, with the shared
 * decision code (include/sockway/decide.h), so the request path makes no syscall; the copy
 * is refreshed when the generation in the mmap-ed ctl map moves.
 */
#ifndef SOCKWAY_SNAPSHOT_H
#define SOCKWAY_SNAPSHOT_H

#include "sockway/abi.h"
#include "sockway/decide_types.h"
#include "sockway/hash.h"
#include "maps.h"

/* Open addressing over the route keys; twice the routes map's size keeps probes short. */
#define SNAP_ROUTE_SLOTS (SW_MAX_ENDPOINTS * 4)

struct snap_route {
	struct sw_route_key key;
	struct sw_route route;
	bool used;
};

struct snapshot {
	struct sw_ctl ctl; /* generation, and the copy each endpoint had */
	struct sw_endpoint ep[SW_MAX_ENDPOINTS];
	struct sw_slot_table *table[SW_MAX_ENDPOINTS]; /* NULL for unused endpoints */
	struct sw_backend be[SW_MAX_BACKENDS];
	struct snap_route routes[SNAP_ROUTE_SLOTS];
};

struct snapshot *snapshot_alloc(void);
void snapshot_free(struct snapshot *s);

/*
 * Reads the live policy into next (reusing cur's tables for endpoints whose copy did not
 * change). Returns 0, or -EAGAIN when a commit ran meanwhile (next is then incomplete and
 * the caller keeps cur), or another -errno.
 */
int snapshot_load(struct sw_maps *m, const struct snapshot *cur, struct snapshot *next);

/* Files a route in the snapshot (the load does, and tests that build one by hand). */
int snapshot_route_set(struct snapshot *s, const struct sw_route_key *key,
		       const struct sw_route *route);

/* The decision (include/sockway/decide.h: sw_decide_route, sw_decide_pick) on a snapshot:
 * the request's route, then its backend once the caller has set the shard key. */
int snapshot_decide_route(struct snapshot *s, struct sw_decide_state *d);
int snapshot_decide_pick(struct snapshot *s, struct sw_decide_state *d);

#endif /* SOCKWAY_SNAPSHOT_H */
