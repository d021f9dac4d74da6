/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The pinned state under /sys/fs/bpf/sockway: loading and unloading it (load.c), opening it
 * from any process and reaching its maps (maps.c), reading the policy out of it (read.c) and
 * committing a new policy into it (commit.c).
 *
 * Commit protocol (readers: include/sockway/decide.h):
 *   1. ctl.generation += 1 (now odd: a commit is writing);
 *   2. counter cells that the commit releases or takes are zeroed; backends that are new
 *      or changed are written;
 *   3. each new or changed endpoint gets its inactive copy and slot table written, then
 *      ctl.active[id] flips to that copy;
 *   4. routes are swapped, deleted endpoints and backends are cleared;
 *   5. ctl.generation += 1 (even again).
 * Writers serialise on flock() of the pin directory, so two agents never interleave.
 */
#ifndef SOCKWAY_MAPS_H
#define SOCKWAY_MAPS_H

#include <stdbool.h>

#include "policy.h"

#define SW_BPFFS    "/sys/fs/bpf"
#define SW_PIN_ROOT SW_BPFFS "/sockway"
/* Environment variable that moves the pin directory (tests use their own, under bpffs). */
#define SW_PIN_ROOT_ENV "SOCKWAY_PIN_ROOT"

struct sockway;

struct sw_maps {
	struct sockway *skel;		  /* opened, not loaded: its maps reuse the pinned fds */
	struct sw_ctl *ctl;		  /* mmap of the ctl map */
	struct sw_cell *cells;		  /* mmap of the counters map */
	struct sw_conn *conns;		  /* mmap of the conns map (sockwayd's connections) */
	struct sw_conn_bucket *conn_tags; /* mmap of conn_tags, their tags */
	struct sw_lend_set *lend;	  /* mmap of lend: upstreams lent to kernel routing */
	int dir_fd;			  /* the pin directory, flock()ed by writers */
	bool locked;
};

/* What sw_load() did. */
struct sw_load_info {
	bool mounted_bpffs; /* bpffs was not mounted, and sw_load() mounted it */
	bool reused;	    /* the maps were pinned already and kept their contents */
};

/* load.c: loading and unloading. */

/* The pin directory: $SOCKWAY_PIN_ROOT, or SW_PIN_ROOT. */
const char *sw_pin_root(void);
/* Mounts bpffs if needed, loads the object and pins maps and programs. Idempotent. */
int sw_load(struct sw_load_info *info, struct sw_err *e);
/* Unpins everything under SW_PIN_ROOT and removes it. -ENOENT when nothing is loaded. */
int sw_unload(struct sw_err *e);

/* maps.c: the pinned maps from any process. */

/* Opens the pinned maps: -ENOENT with "run `sockway load` first" when nothing is loaded. */
int sw_maps_open(struct sw_maps *m, struct sw_err *e);
void sw_maps_close(struct sw_maps *m);
/* Takes the writers' lock (blocking). sw_maps_unlock() or sw_maps_close() releases it. */
int sw_maps_lock(struct sw_maps *m, struct sw_err *e);
void sw_maps_unlock(struct sw_maps *m);

/* Copies endpoint id's live copy and slot table (either pointer may be NULL). */
int sw_endpoint_read(struct sw_maps *m, __u32 id, struct sw_endpoint *ep,
		     struct sw_slot_table *table);
/* The id of a named endpoint or backend (a lookup each: a loop takes ids from the model). */
int sw_endpoint_id(struct sw_maps *m, const char *name, __u32 *id);
int sw_backend_id(struct sw_maps *m, const char *name, __u32 *id);
/* Copies backend id (flags == 0 when unused). */
int sw_backend_read(struct sw_maps *m, __u32 id, struct sw_backend *b);

/* The generation, read once. */
__u64 sw_generation(const struct sw_maps *m);

/* Sums the shards of a cell into out. */
void sw_cell_sum(const struct sw_cell *cell, struct sw_counters *out);
/* Zeroes the counters of every cell of endpoint id (all of them for SW_ID_NONE). */
void sw_cells_reset(struct sw_maps *m, __u32 endpoint_id);

/* read.c: maps to model. */

/* Reads the live policy (every endpoint's active copy), with the ids, into p. */
int policy_read(struct sw_maps *m, struct sw_policy *p, struct sw_err *e);

/* commit.c: model to maps. */

/* What a commit does to one backend or endpoint. */
enum sw_plan_op {
	SW_PLAN_KEEP,	/* the same in both policies: nothing is written */
	SW_PLAN_CREATE, /* only in the new one: it gets a free id */
	SW_PLAN_CHANGE, /* in both, different: rewritten under its id */
	SW_PLAN_DELETE, /* only in the old one: its id is cleared, or taken by a create */
};

/* What a CHANGE of an endpoint changes. */
enum sw_plan_change {
	SW_PLAN_ROUTE = 1 << 0, /* route or host */
	SW_PLAN_METHODS = 1 << 1,
	SW_PLAN_SHARD_HEADER = 1 << 2,
	SW_PLAN_TRAFFIC = 1 << 3, /* the weights, so a new slot table */
	SW_PLAN_SHADOWS = 1 << 4,
};

struct sw_plan_backend {
	enum sw_plan_op op;
	__u32 id;
	const struct sw_policy_backend *old, *new; /* NULL in the policy that lacks it */
};

struct sw_plan_endpoint {
	enum sw_plan_op op;
	__u32 id;
	__u32 changes;	   /* enum sw_plan_change bits, of a CHANGE */
	__u32 moved_slots; /* of SW_SLOTS, whose backend a CHANGE of traffic moves */
	const struct sw_policy_endpoint *old, *new;
};

struct sw_plan_write;

/*
 * A commit worked out whole before its first write: what happens to each backend and
 * endpoint, the deleted ones first, then those of the new policy in its order. It points
 * into the two policies it was made from, which must outlive it.
 */
struct sw_plan {
	__u32 nr_backends;
	struct sw_plan_backend backends[2 * SW_MAX_BACKENDS];
	__u32 nr_endpoints;
	struct sw_plan_endpoint endpoints[2 * SW_MAX_ENDPOINTS];
	__u32 nr_changes;	     /* entries that are not SW_PLAN_KEEP */
	struct sw_plan_write *write; /* commit.c's: copies, slot tables, counter cells */
};

/*
 * Plans the commit of new (validated) over old (what policy_read() returned: its ids say
 * where each entry lives; for a policy built by hand, without ids, the name maps are read
 * whole). Reads the maps, writes nothing. *plan is policy_plan_free()d by the caller.
 */
int policy_plan(struct sw_maps *m, const struct sw_policy *old, const struct sw_policy *new,
		struct sw_plan **plan, struct sw_err *e);
/* Writes a plan as one generation. The caller holds the lock, as it did for policy_plan(). */
int policy_plan_write(struct sw_maps *m, const struct sw_plan *plan, struct sw_err *e);
void policy_plan_free(struct sw_plan *plan);
/* policy_plan(), policy_plan_write(), policy_plan_free(): one generation, even unchanged. */
int policy_commit(struct sw_maps *m, const struct sw_policy *old, const struct sw_policy *new,
		  struct sw_err *e);

#endif /* SOCKWAY_MAPS_H */
