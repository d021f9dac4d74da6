/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The pinned state under /sys/fs/bpf/sockway: loading and unloading it (load.c), opening it
 * from any process and reaching its maps (maps.c), reading the policy out of it (read.c) and
 * committing a new policy into it (commit.c).
 *
 * Commit protocol (readers: include/sockway/decide.h):
 *   1. ctl.generation += 1 (now odd: a commit is writing);
 *   2. backends that are new or changed are written;
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
	struct sockway *skel;  /* opened, not loaded: its maps reuse the pinned fds */
	struct sw_ctl *ctl;    /* mmap of the ctl map */
	struct sw_cell *cells; /* mmap of the counters map */
	struct sw_conn *conns; /* mmap of the conns map (sockwayd's connections) */
	struct sw_conn_bucket *conn_tags; /* mmap of conn_tags, their tags */
	int dir_fd;	       /* the pin directory, flock()ed by writers */
	bool locked;
};

/* What sw_load() did. */
struct sw_load_info {
	bool mounted_bpffs; /* bpffs was not mounted, and sw_load() mounted it */
	bool reused;	    /* the maps were pinned already and kept their contents */
};

/* load.c. The pin directory: $SOCKWAY_PIN_ROOT, or SW_PIN_ROOT. */
const char *sw_pin_root(void);

/* Mounts bpffs if needed, loads the object and pins maps and programs. Idempotent. */
int sw_load(struct sw_load_info *info, struct sw_err *e);
/* Unpins everything under SW_PIN_ROOT and removes it. -ENOENT when nothing is loaded. */
int sw_unload(struct sw_err *e);

/* maps.c. Opens the pinned maps: -ENOENT with "run `sockway load` first" when nothing is loaded. */
int sw_maps_open(struct sw_maps *m, struct sw_err *e);
void sw_maps_close(struct sw_maps *m);
/* Takes the writers' lock (blocking). sw_maps_unlock() or sw_maps_close() releases it. */
int sw_maps_lock(struct sw_maps *m, struct sw_err *e);
void sw_maps_unlock(struct sw_maps *m);

/* read.c. Reads the live policy (every endpoint's active copy) into p. */
int policy_read(struct sw_maps *m, struct sw_policy *p, struct sw_err *e);

/*
 * commit.c. Writes the difference between old (what policy_read() returned) and new (validated) into
 * the maps, as one generation. The caller holds the lock. dry_run computes without writing.
 */
int policy_commit(struct sw_maps *m, const struct sw_policy *old, const struct sw_policy *new,
		  struct sw_err *e);

/* Copies endpoint id's live copy and slot table (either pointer may be NULL). */
int sw_endpoint_read(struct sw_maps *m, __u32 id, struct sw_endpoint *ep,
		     struct sw_slot_table *table);
/* The id of a named endpoint or backend: 0 or -ENOENT. */
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

#endif /* SOCKWAY_MAPS_H */
