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
	struct sw_decide_state s = {};
	int err;

	/* The kernel build's limits, so that both answer the same (-E2BIG beyond them). */
	if (args->path_len > SW_DECIDE_PATH_MAX || args->host_len > SW_DECIDE_HOST_MAX) {
		args->err = -E2BIG;
		args->endpoint_id = SW_ID_NONE;
		return 0;
	}
	s.path = (const __u8 *)args->path;
	s.path_len = args->path_len;
	s.host = (const __u8 *)args->host;
	s.host_len = args->host_len;
	s.norm = (__u8 *)args->norm;
	s.method = args->method;
	s.rnd = args->rnd;
	err = sw_decide_route(&s, &env);
	if (!err) {
		s.key = (const __u8 *)args->key;
		s.key_len = args->key_len;
		err = sw_decide_pick(&s, &env);
	}
	args->err = err;
	args->host_hash = s.host_hash;
	args->endpoint_id = s.endpoint_id;
	args->norm_len = s.norm_len;
	args->key_hash = s.key_hash;
	args->slot = s.pick.slot;
	args->generation = s.pick.generation;
	args->backend_id = s.pick.backend_id;
	args->split = s.pick.split;
	args->cell = s.pick.cell;
	args->copy = s.pick.copy;
	return 0;
}
