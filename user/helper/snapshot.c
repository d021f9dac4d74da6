// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "sockway.skel.h"
#include "sockway/decide.h"
#include "snapshot.h"

struct snapshot *snapshot_alloc(void)
{
	return calloc(1, sizeof(struct snapshot));
}

void snapshot_free(struct snapshot *s)
{
	__u32 i;

	if (!s)
		return;
	for (i = 0; i < SW_MAX_ENDPOINTS; i++)
		free(s->table[i]);
	free(s);
}

static struct snap_route *route_slot(struct snapshot *s, const struct sw_route_key *key,
				     bool insert)
{
	__u32 i, h = (__u32)(key->prefix_hash ^ (key->host_hash >> 7));

	for (i = 0; i < SNAP_ROUTE_SLOTS; i++) {
		struct snap_route *r = &s->routes[(h + i) & (SNAP_ROUTE_SLOTS - 1)];

		if (!r->used)
			return insert ? r : NULL;
		if (r->key.host_hash == key->host_hash && r->key.prefix_hash == key->prefix_hash)
			return r;
	}
	return NULL;
}

/* Batch-reads a whole array map (one syscall) into values. */
static int array_read_all(struct bpf_map *map, void *values, __u32 nr)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	__u32 *keys, count = nr, out_batch;
	int err;

	keys = calloc(nr, sizeof(*keys));
	if (!keys)
		return -ENOMEM;
	err = bpf_map_lookup_batch(bpf_map__fd(map), NULL, &out_batch, keys, values, &count, &opts);
	/* ENOENT marks the end of the map: every entry was returned. */
	if (err && errno == ENOENT)
		err = 0;
	else if (err)
		err = -errno;
	if (!err && count != nr)
		err = -EIO;
	free(keys);
	return err;
}

/* Reads the whole routes map: batches of entries, a few syscalls for all of it. */
static int routes_read(struct sw_maps *m, struct snapshot *s)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	enum { BATCH = 128 };
	struct sw_route_key keys[BATCH];
	struct sw_route values[BATCH];
	/* The batch cursor is opaque (a bucket index for hash maps): room for a key. */
	__u64 in_batch[2], out_batch[2];
	int fd = bpf_map__fd(m->skel->maps.routes), err;
	bool first = true;
	__u32 count, i;

	memset(s->routes, 0, sizeof(s->routes));
	do {
		count = BATCH;
		err = bpf_map_lookup_batch(fd, first ? NULL : in_batch, out_batch, keys, values,
					   &count, &opts);
		if (err && errno != ENOENT)
			return -errno;
		for (i = 0; i < count; i++)
			if (snapshot_route_set(s, &keys[i], &values[i]))
				return -ENOSPC;
		memcpy(in_batch, out_batch, sizeof(in_batch));
		first = false;
	} while (!err);
	return 0;
}

int snapshot_route_set(struct snapshot *s, const struct sw_route_key *key,
		       const struct sw_route *route)
{
	struct snap_route *r = route_slot(s, key, true);

	if (!r)
		return -ENOSPC;
	r->key = *key;
	r->route = *route;
	r->used = true;
	return 0;
}

int snapshot_load(struct sw_maps *m, const struct snapshot *cur, struct snapshot *next)
{
	struct sw_endpoint *copies = NULL;
	__u64 gen;
	__u32 id;
	int err;

	gen = sw_generation(m);
	if (gen & 1)
		return -EAGAIN;
	copies = malloc(sizeof(*copies) * SW_MAX_ENDPOINTS * 2);
	if (!copies)
		return -ENOMEM;
	memcpy(next->ctl.active, (const void *)m->ctl->active, sizeof(next->ctl.active));
	err = array_read_all(m->skel->maps.endpoints, copies, SW_MAX_ENDPOINTS * 2);
	if (!err)
		err = array_read_all(m->skel->maps.backends, next->be, SW_MAX_BACKENDS);
	if (!err)
		err = routes_read(m, next);
	for (id = 0; !err && id < SW_MAX_ENDPOINTS; id++) {
		__u32 copy = next->ctl.active[id] & 1, index = id * 2 + copy;
		struct sw_endpoint *ep = &copies[index];

		next->ep[id] = *ep;
		if (!(ep->flags & SW_F_IN_USE))
			continue;
		if (!next->table[id]) {
			next->table[id] = malloc(sizeof(struct sw_slot_table));
			if (!next->table[id]) {
				err = -ENOMEM;
				break;
			}
		}
		/* The table is a pure function of the copy's split: an equal copy in the same
		 * slot has an equal table, so only changed endpoints cost a read. */
		if (cur && cur->table[id] && cur->ctl.active[id] == copy &&
		    !memcmp(&cur->ep[id], ep, sizeof(*ep))) {
			memcpy(next->table[id], cur->table[id], sizeof(struct sw_slot_table));
			continue;
		}
		if (bpf_map_lookup_elem(bpf_map__fd(m->skel->maps.slots), &index, next->table[id]))
			err = -errno;
	}
	free(copies);
	if (err)
		return err;
	/* Seqlock: a commit that started after gen was read may have torn what we copied. */
	if (sw_generation(m) != gen)
		return -EAGAIN;
	next->ctl.generation = gen;
	return 0;
}

/* Hooks of decide.h over a snapshot. */
static const struct sw_route *sw_routes_lookup(void *env, const struct sw_route_key *key)
{
	struct snap_route *r = route_slot(env, key, false);

	return r ? &r->route : NULL;
}

static const struct sw_ctl *sw_ctl_get(void *env)
{
	return &((struct snapshot *)env)->ctl;
}

static int sw_endpoint_get(void *env, __u32 index, const struct sw_endpoint **ep,
			   const struct sw_slot_table **table)
{
	struct snapshot *s = env;
	__u32 id = index / 2;

	if (id >= SW_MAX_ENDPOINTS || (s->ctl.active[id] & 1) != index % 2 || !s->table[id])
		return -ENOENT;
	*ep = &s->ep[id];
	*table = s->table[id];
	return 0;
}

int snapshot_decide_route(struct snapshot *s, struct sw_decide_state *d)
{
	return sw_decide_route(d, s);
}

int snapshot_decide_pick(struct snapshot *s, struct sw_decide_state *d)
{
	return sw_decide_pick(d, s);
}
