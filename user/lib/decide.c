// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#include <errno.h>
#include <string.h>

#include <bpf/libbpf.h>

#include "sockway.skel.h"
#include "sockway/decide.h"
#include "decide.h"

/* The hooks' env: the maps, and room for the values that lookups copy out. */
struct decide_env {
	struct sw_maps *m;
	struct sw_route route;
	struct sw_endpoint ep;
	struct sw_slot_table table;
};

static const struct sw_route *sw_routes_lookup(void *env, const struct sw_route_key *key)
{
	struct decide_env *d = env;

	if (bpf_map__lookup_elem(d->m->skel->maps.routes, key, sizeof(*key), &d->route,
				 sizeof(d->route), 0))
		return NULL;
	return &d->route;
}

static const struct sw_ctl *sw_ctl_get(void *env)
{
	return ((struct decide_env *)env)->m->ctl;
}

static int sw_endpoint_get(void *env, __u32 index, const struct sw_endpoint **ep,
			   const struct sw_slot_table **table)
{
	struct decide_env *d = env;

	if (bpf_map__lookup_elem(d->m->skel->maps.endpoints, &index, sizeof(index), &d->ep,
				 sizeof(d->ep), 0) ||
	    bpf_map__lookup_elem(d->m->skel->maps.slots, &index, sizeof(index), &d->table,
				 sizeof(d->table), 0))
		return -ENOENT;
	*ep = &d->ep;
	*table = &d->table;
	return 0;
}

int sw_decide(struct sw_maps *m, struct sw_decide_args *args)
{
	struct decide_env env = {.m = m};
	struct sw_route_match match;
	struct sw_pick pick = {};
	__u32 i, len, tries;
	int err;

	len = args->host_len < SW_HOST_MAX ? args->host_len : SW_HOST_MAX;
	args->host_hash = len ? sw_hash64_lower(args->host, len) : 0;
	len = args->key_len < SW_SHARD_KEY_MAX ? args->key_len : SW_SHARD_KEY_MAX;
	args->key_hash = len ? sw_hash64(args->key, len) : 0;

	sw_route_match_init(&match, args->host_hash, args->method);
	len = args->path_len < SW_DECIDE_PATH_MAX ? args->path_len : SW_DECIDE_PATH_MAX;
	for (i = 0; i < len; i++)
		if (sw_route_match_feed(&match, &env, args->path[i]))
			break;
	args->endpoint_id = sw_route_match_end(&match, &env);
	if (args->endpoint_id == SW_ID_NONE) {
		args->err = -ENOENT;
		return 0;
	}
	args->slot = args->key_len ? sw_slot_of_hash(args->key_hash) : sw_slot_of_random(args->rnd);
	err = -EAGAIN;
	for (tries = 0; tries < 4 && err == -EAGAIN; tries++)
		err = sw_pick_backend(&env, args->endpoint_id, args->slot, &pick);
	args->err = err;
	args->generation = pick.generation;
	args->backend_id = pick.backend_id;
	args->split = pick.split;
	args->cell = pick.cell;
	args->copy = pick.copy;
	return 0;
}
