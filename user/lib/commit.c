// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * The commit (maps.h): a plan worked out whole from the old and the new policy, then written
 * as one generation. See maps.h for the protocol readers rely on.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/libbpf.h>

#include "sockway.skel.h"
#include "sockway/hash.h"
#include "compile.h"
#include "maps.h"

static int map_update(struct bpf_map *map, const void *key, const void *value, size_t size)
{
	return bpf_map__update_elem(map, key, bpf_map__key_size(map), value, size, BPF_ANY);
}

/* What a commit will do, worked out completely before the first write. */
struct commit_plan {
	__u32 backend_id[SW_MAX_BACKENDS];   /* of new->backends[i] */
	bool backend_write[SW_MAX_BACKENDS]; /* new or changed */
	__u32 endpoint_id[SW_MAX_ENDPOINTS]; /* of new->endpoints[i] */
	bool endpoint_write[SW_MAX_ENDPOINTS];
	struct sw_endpoint ep[SW_MAX_ENDPOINTS]; /* the copy to write, when endpoint_write */
	__u8 *tables;				 /* SW_SLOTS per endpoint, when endpoint_write */
	bool cell_new[SW_MAX_CELLS];		 /* cells this commit takes */
	bool cell_free[SW_MAX_CELLS];		 /* cells this commit releases */
	__u32 gone_backend[SW_MAX_BACKENDS];	 /* ids of deleted backends */
	__u32 nr_gone_backends;
	__u32 gone_endpoint[SW_MAX_ENDPOINTS];
	__u32 nr_gone_endpoints;
};

static bool backend_equal(const struct sw_policy_backend *a, const struct sw_policy_backend *b)
{
	return a->nr_replicas == b->nr_replicas &&
	       !memcmp(a->replicas, b->replicas, a->nr_replicas * sizeof(a->replicas[0]));
}

static bool weights_equal(const struct sw_policy_endpoint *a, const struct sw_policy_endpoint *b)
{
	__u32 i;

	if (a->nr_weights != b->nr_weights)
		return false;
	for (i = 0; i < a->nr_weights; i++)
		if (strcmp(a->weights[i].backend, b->weights[i].backend) ||
		    a->weights[i].weight != b->weights[i].weight)
			return false;
	return true;
}

static bool endpoint_equal(const struct sw_policy_endpoint *a, const struct sw_policy_endpoint *b)
{
	__u32 i;

	if (strcmp(a->route, b->route) || strcmp(a->host, b->host) || a->methods != b->methods ||
	    strcmp(a->shard_header, b->shard_header) || !weights_equal(a, b) ||
	    a->nr_shadows != b->nr_shadows)
		return false;
	for (i = 0; i < a->nr_shadows; i++)
		if (strcmp(a->shadows[i].backend, b->shadows[i].backend) ||
		    a->shadows[i].fraction != b->shadows[i].fraction)
			return false;
	return true;
}

/* The first id that neither the maps (flags) nor this plan uses, or -ENOSPC. */
static int id_alloc(bool *used, __u32 max)
{
	__u32 id;

	for (id = 0; id < max; id++)
		if (!used[id]) {
			used[id] = true;
			return id;
		}
	return -ENOSPC;
}

/* The cell of (endpoint, backend, role): the one it has, or a free one that the plan takes. */
static int cell_find(struct sw_maps *m, struct commit_plan *plan, __u32 ep_id, __u32 be_id,
		     __u32 role, struct sw_err *e)
{
	__u32 i, first_free = SW_MAX_CELLS;

	for (i = 0; i < SW_MAX_CELLS; i++) {
		const struct sw_cell *c = &m->cells[i];

		if (plan->cell_new[i]) {
			/* Taken earlier in this plan: its header is not written yet. */
			continue;
		}
		if (!(c->flags & SW_F_IN_USE) || plan->cell_free[i]) {
			if (first_free == SW_MAX_CELLS && !(c->flags & SW_F_IN_USE))
				first_free = i;
			continue;
		}
		if (c->endpoint_id == ep_id && c->backend_id == be_id && c->role == role)
			return i;
	}
	if (first_free == SW_MAX_CELLS)
		return sw_errorf(e, -ENOSPC,
				 "no free counter cell (limit %u endpoint x backend x role pairs); "
				 "delete endpoints you no longer use",
				 SW_MAX_CELLS);
	plan->cell_new[first_free] = true;
	return first_free;
}

/* The id the plan gives the backend called name in the new policy. */
static int plan_backend_id(const struct commit_plan *plan, const struct sw_policy *new,
			   const char *name, __u32 *id, struct sw_err *e)
{
	__u32 i;

	for (i = 0; i < new->nr_backends; i++)
		if (!strcmp(new->backends[i].name, name)) {
			*id = plan->backend_id[i];
			return 0;
		}
	return sw_errorf(e, -ENOENT, "backend \"%s\" does not exist", name);
}

/* Builds the endpoint copy to write for new->endpoints[i] (ids of backends are in plan). */
static int plan_endpoint(struct sw_maps *m, struct commit_plan *plan, const struct sw_policy *new,
			 __u32 i, const struct sw_policy_endpoint *old_pe, struct sw_err *e)
{
	const struct sw_policy_endpoint *pe = &new->endpoints[i];
	struct sw_endpoint *ep = &plan->ep[i];
	__u8 *table = plan->tables + (size_t)i * SW_SLOTS;
	__u32 id = plan->endpoint_id[i], j, bid = 0;
	int err, cell;

	memset(ep, 0, sizeof(*ep));
	ep->flags = SW_F_IN_USE;
	ep->id = id;
	ep->shard_source = SW_SHARD_HEADER;
	strcpy(ep->name, pe->name);
	strcpy(ep->shard_header, pe->shard_header);
	ep->route.endpoint_id = id;
	ep->route.prefix_len = strlen(pe->route);
	ep->route.methods = pe->methods;
	strcpy(ep->route.prefix, pe->route);
	strcpy(ep->route.host, pe->host);
	ep->nr_splits = pe->nr_weights;
	for (j = 0; j < pe->nr_weights; j++) {
		err = plan_backend_id(plan, new, pe->weights[j].backend, &bid, e);
		if (err)
			return err;
		cell = cell_find(m, plan, id, bid, SW_ROLE_PRIMARY, e);
		if (cell < 0)
			return cell;
		ep->splits[j].backend_id = bid;
		ep->splits[j].cell = cell;
		ep->splits[j].weight = pe->weights[j].weight;
	}
	ep->nr_shadows = pe->nr_shadows;
	for (j = 0; j < pe->nr_shadows; j++) {
		err = plan_backend_id(plan, new, pe->shadows[j].backend, &bid, e);
		if (err)
			return err;
		cell = cell_find(m, plan, id, bid, SW_ROLE_SHADOW, e);
		if (cell < 0)
			return cell;
		ep->shadows[j].backend_id = bid;
		ep->shadows[j].cell = cell;
		ep->shadows[j].fraction = pe->shadows[j].fraction;
		ep->shadows[j].threshold = sw_shadow_threshold(pe->shadows[j].fraction);
	}
	err = policy_compile_slots(pe->weights, pe->nr_weights, table, SW_SLOTS);
	if (err)
		return sw_errorf(e, err, "cannot compile the weights of endpoint \"%s\": %s",
				 pe->name, strerror(-err));
	if (old_pe) {
		struct sw_endpoint old_ep;
		struct sw_slot_table *old_table = malloc(sizeof(*old_table));

		if (!old_table)
			return sw_errorf(e, -ENOMEM, "out of memory");
		err = sw_endpoint_read(m, id, &old_ep, old_table);
		if (!err)
			ep->moved_slots =
				weights_equal(old_pe, pe)
					? old_ep.moved_slots
					: policy_slots_moved(old_pe->weights, old_pe->nr_weights,
							     old_table->split, pe->weights,
							     pe->nr_weights, table, SW_SLOTS);
		free(old_table);
		if (err)
			return sw_errorf(e, err, "cannot read endpoint \"%s\": %s", pe->name,
					 strerror(-err));
	}
	return 0;
}

/* Works out ids, cells, copies and slot tables: everything that can fail, before any write. */
static int plan_build(struct sw_maps *m, struct commit_plan *plan, const struct sw_policy *old,
		      const struct sw_policy *new, struct sw_err *e)
{
	bool used_be[SW_MAX_BACKENDS] = {}, used_ep[SW_MAX_ENDPOINTS] = {};
	__u32 i, id, c;
	int err;

	/* Ids in use: those of backends and endpoints that stay. A deleted one's id may go to
	 * a new name in the same commit; readers of the old generation retry (maps.h). */
	for (i = 0; i < old->nr_backends; i++)
		if (policy_find_backend(new, old->backends[i].name) &&
		    !sw_backend_id(m, old->backends[i].name, &id) && id < SW_MAX_BACKENDS)
			used_be[id] = true;
	for (i = 0; i < old->nr_endpoints; i++)
		if (policy_find_endpoint(new, old->endpoints[i].name) &&
		    !sw_endpoint_id(m, old->endpoints[i].name, &id) && id < SW_MAX_ENDPOINTS)
			used_ep[id] = true;

	for (i = 0; i < new->nr_backends; i++) {
		const struct sw_policy_backend *nb = &new->backends[i];
		const struct sw_policy_backend *ob = policy_find_backend(old, nb->name);

		if (ob && !sw_backend_id(m, nb->name, &plan->backend_id[i])) {
			plan->backend_write[i] = !backend_equal(ob, nb);
			continue;
		}
		err = id_alloc(used_be, SW_MAX_BACKENDS);
		if (err < 0)
			return sw_errorf(e, err, "too many backends (limit %u)", SW_MAX_BACKENDS);
		plan->backend_id[i] = err;
		plan->backend_write[i] = true;
	}
	for (i = 0; i < old->nr_backends; i++)
		if (!policy_find_backend(new, old->backends[i].name) &&
		    !sw_backend_id(m, old->backends[i].name, &id))
			plan->gone_backend[plan->nr_gone_backends++] = id;
	for (i = 0; i < old->nr_endpoints; i++)
		if (!policy_find_endpoint(new, old->endpoints[i].name) &&
		    !sw_endpoint_id(m, old->endpoints[i].name, &id))
			plan->gone_endpoint[plan->nr_gone_endpoints++] = id;

	/* Cells of deleted endpoints and backends are released; their ids may be reused. */
	for (c = 0; c < SW_MAX_CELLS; c++) {
		const struct sw_cell *cell = &m->cells[c];

		if (!(cell->flags & SW_F_IN_USE))
			continue;
		for (i = 0; i < plan->nr_gone_endpoints; i++)
			if (cell->endpoint_id == plan->gone_endpoint[i])
				plan->cell_free[c] = true;
		for (i = 0; i < plan->nr_gone_backends; i++)
			if (cell->backend_id == plan->gone_backend[i])
				plan->cell_free[c] = true;
	}

	for (i = 0; i < new->nr_endpoints; i++) {
		const struct sw_policy_endpoint *ne = &new->endpoints[i];
		const struct sw_policy_endpoint *oe = policy_find_endpoint(old, ne->name);

		if (oe && !sw_endpoint_id(m, ne->name, &plan->endpoint_id[i])) {
			/* Backend ids are stable by name, so an equal endpoint's copy holds. */
			if (endpoint_equal(oe, ne))
				continue;
		} else {
			oe = NULL;
			err = id_alloc(used_ep, SW_MAX_ENDPOINTS);
			if (err < 0)
				return sw_errorf(e, err, "too many endpoints (limit %u)",
						 SW_MAX_ENDPOINTS);
			plan->endpoint_id[i] = err;
		}
		plan->endpoint_write[i] = true;
		err = plan_endpoint(m, plan, new, i, oe, e);
		if (err)
			return err;
	}
	return 0;
}

static struct sw_route_key route_key_of(const struct sw_route *r)
{
	struct sw_route_key key = {
		.host_hash = r->host[0] ? sw_hash64_lower(r->host, strlen(r->host)) : 0,
		.prefix_hash = sw_hash64(r->prefix, r->prefix_len),
	};

	return key;
}

/* Writes a plan. Every step is a map write that the plan has made sure can succeed; if one
 * fails anyway (the kernel is out of memory), the rest still runs so that the generation
 * ends even, and the first error is returned. */
static int plan_write(struct sw_maps *m, struct commit_plan *plan, const struct sw_policy *old,
		      const struct sw_policy *new, struct sw_err *e)
{
	static const struct sw_endpoint empty_ep;
	static const struct sw_backend empty_be;
	struct sw_maps_writes {
		int err;
	} w = {0};
	struct sw_endpoint old_ep;
	char key[SW_NAME_MAX];
	__u32 i, c, id, copy;
	int err;

#define WRITE(call)                                                                                \
	do {                                                                                       \
		err = (call);                                                                      \
		if (err && !w.err)                                                                 \
			w.err = sw_errorf(e, err,                                                  \
					  "commit failed at %s: %s; the policy may be "            \
					  "partly applied, run the command again",                 \
					  #call, strerror(-err));                                  \
	} while (0)

	/* Odd under our lock: a writer died mid-commit. Its half-written copies are inactive
	 * or already flipped whole, so closing its generation is safe; readers then resume. */
	if (__atomic_load_n(&m->ctl->generation, __ATOMIC_ACQUIRE) & 1)
		__atomic_add_fetch(&m->ctl->generation, 1, __ATOMIC_SEQ_CST);
	__atomic_add_fetch(&m->ctl->generation, 1, __ATOMIC_SEQ_CST);

	/* New cells start from zero before anything can count into them. */
	for (c = 0; c < SW_MAX_CELLS; c++) {
		struct sw_cell *cell = &m->cells[c];

		if (plan->cell_free[c]) {
			__atomic_store_n(&cell->flags, 0, __ATOMIC_RELEASE);
			memset(cell->shard, 0, sizeof(cell->shard));
		}
	}
	for (i = 0; i < new->nr_endpoints; i++) {
		const struct sw_endpoint *ep = &plan->ep[i];
		__u32 j;

		if (!plan->endpoint_write[i])
			continue;
		for (j = 0; j < ep->nr_splits + ep->nr_shadows; j++) {
			bool shadow = j >= ep->nr_splits;
			__u32 cidx =
				shadow ? ep->shadows[j - ep->nr_splits].cell : ep->splits[j].cell;
			struct sw_cell *cell = &m->cells[cidx];

			if (!plan->cell_new[cidx] || (cell->flags & SW_F_IN_USE))
				continue;
			memset(cell->shard, 0, sizeof(cell->shard));
			cell->endpoint_id = ep->id;
			cell->backend_id = shadow ? ep->shadows[j - ep->nr_splits].backend_id
						  : ep->splits[j].backend_id;
			cell->role = shadow ? SW_ROLE_SHADOW : SW_ROLE_PRIMARY;
			__atomic_store_n(&cell->flags, SW_F_IN_USE, __ATOMIC_RELEASE);
		}
	}

	for (i = 0; i < new->nr_backends; i++) {
		const struct sw_policy_backend *pb = &new->backends[i];
		struct sw_backend b = {.flags = SW_F_IN_USE, .nr_replicas = pb->nr_replicas};

		if (!plan->backend_write[i])
			continue;
		id = plan->backend_id[i];
		strcpy(b.name, pb->name);
		memcpy(b.replicas, pb->replicas, sizeof(b.replicas));
		WRITE(map_update(m->skel->maps.backends, &id, &b, sizeof(b)));
		memset(key, 0, sizeof(key));
		strcpy(key, pb->name);
		WRITE(map_update(m->skel->maps.backend_ids, key, &id, sizeof(id)));
	}

	/* Each endpoint: write the copy nobody reads, then flip to it. */
	for (i = 0; i < new->nr_endpoints; i++) {
		if (!plan->endpoint_write[i])
			continue;
		id = plan->endpoint_id[i];
		copy = !(__atomic_load_n(&m->ctl->active[id], __ATOMIC_ACQUIRE) & 1);
		c = id * 2 + copy;
		WRITE(map_update(m->skel->maps.endpoints, &c, &plan->ep[i], sizeof(plan->ep[i])));
		WRITE(map_update(m->skel->maps.slots, &c, plan->tables + (size_t)i * SW_SLOTS,
				 SW_SLOTS));
		if (!w.err)
			__atomic_store_n(&m->ctl->active[id], copy, __ATOMIC_RELEASE);
		memset(key, 0, sizeof(key));
		strcpy(key, new->endpoints[i].name);
		WRITE(map_update(m->skel->maps.endpoint_ids, key, &id, sizeof(id)));
	}

	/* Routes: insert or overwrite the new keys first, then drop the keys nobody has any
	 * more, so that a route moving between endpoints never disappears. */
	for (i = 0; i < new->nr_endpoints; i++) {
		struct sw_route_key rk;

		if (!plan->endpoint_write[i])
			continue;
		rk = route_key_of(&plan->ep[i].route);
		WRITE(map_update(m->skel->maps.routes, &rk, &plan->ep[i].route,
				 sizeof(plan->ep[i].route)));
	}
	for (i = 0; i < old->nr_endpoints; i++) {
		const struct sw_policy_endpoint *oe = &old->endpoints[i];
		const struct sw_policy_endpoint *ne;
		struct sw_route_key rk;
		__u32 j;
		bool kept = false;

		for (j = 0; j < new->nr_endpoints && !kept; j++) {
			ne = &new->endpoints[j];
			kept = !strcmp(ne->route, oe->route) && !strcmp(ne->host, oe->host);
		}
		if (kept || sw_endpoint_id(m, oe->name, &id) ||
		    sw_endpoint_read(m, id, &old_ep, NULL))
			continue;
		rk = route_key_of(&old_ep.route);
		bpf_map__delete_elem(m->skel->maps.routes, &rk, sizeof(rk), 0);
	}

	for (i = 0; i < plan->nr_gone_endpoints; i++) {
		const struct sw_policy_endpoint *oe = NULL;
		bool reused = false;

		id = plan->gone_endpoint[i];
		for (c = 0; c < old->nr_endpoints; c++) {
			__u32 oid;

			if (!sw_endpoint_id(m, old->endpoints[c].name, &oid) && oid == id)
				oe = &old->endpoints[c];
		}
		if (oe) {
			memset(key, 0, sizeof(key));
			strcpy(key, oe->name);
			bpf_map__delete_elem(m->skel->maps.endpoint_ids, key, sizeof(key), 0);
		}
		for (c = 0; c < new->nr_endpoints; c++)
			reused |= plan->endpoint_id[c] == id;
		if (reused)
			continue;
		for (copy = 0; copy < 2; copy++) {
			c = id * 2 + copy;
			WRITE(map_update(m->skel->maps.endpoints, &c, &empty_ep, sizeof(empty_ep)));
		}
	}
	for (i = 0; i < plan->nr_gone_backends; i++) {
		const char *name = NULL;
		bool reused = false;
		__u32 oid;

		id = plan->gone_backend[i];
		for (c = 0; c < old->nr_backends; c++)
			if (!sw_backend_id(m, old->backends[c].name, &oid) && oid == id &&
			    !policy_find_backend(new, old->backends[c].name))
				name = old->backends[c].name;
		if (name) {
			memset(key, 0, sizeof(key));
			strcpy(key, name);
			bpf_map__delete_elem(m->skel->maps.backend_ids, key, sizeof(key), 0);
		}
		for (c = 0; c < new->nr_backends; c++)
			reused |= plan->backend_write[c] && plan->backend_id[c] == id;
		if (!reused)
			WRITE(map_update(m->skel->maps.backends, &id, &empty_be, sizeof(empty_be)));
	}
#undef WRITE

	__atomic_add_fetch(&m->ctl->generation, 1, __ATOMIC_SEQ_CST);
	return w.err;
}

int policy_commit(struct sw_maps *m, const struct sw_policy *old, const struct sw_policy *new,
		  struct sw_err *e)
{
	struct commit_plan *plan;
	int err;

	if (!m->locked)
		return sw_errorf(e, -EPERM, "internal error: commit without the writers' lock");
	plan = calloc(1, sizeof(*plan));
	if (!plan)
		return sw_errorf(e, -ENOMEM, "out of memory");
	plan->tables = malloc((size_t)SW_MAX_ENDPOINTS * SW_SLOTS);
	if (!plan->tables) {
		err = sw_errorf(e, -ENOMEM, "out of memory");
		goto cleanup;
	}
	err = plan_build(m, plan, old, new, e);
	if (err)
		goto cleanup;
	err = plan_write(m, plan, old, new, e);
cleanup:
	free(plan->tables);
	free(plan);
	return err;
}
