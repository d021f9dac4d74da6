// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * The commit (maps.h): a plan worked out whole from the old and the new policy, everything
 * that can fail before the first write, then written as one generation. The plan also serves
 * `apply --dry-run`, which prints it instead of writing it, so what a dry run shows is what
 * a commit does. See maps.h for the protocol readers rely on.
 *
 * Ids come from the old policy (read back from the maps), matched to the new one by name in
 * memory: nothing here looks names up in the maps one by one. (A policy built by hand has no
 * ids; for it the two name maps are read whole, in batches.)
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "sockway.skel.h"
#include "sockway/hash.h"
#include "compile.h"
#include "maps.h"

/* The plan's writes, worked out before the first one. Indexed by endpoint id. */
struct sw_plan_write {
	struct sw_policy *live;			 /* old with ids, when it came without */
	struct sw_endpoint ep[SW_MAX_ENDPOINTS]; /* the copy to write */
	__u8 *tables;		      /* SW_SLOTS per endpoint: the slot table to write */
	bool cell_new[SW_MAX_CELLS];  /* cells this commit takes */
	bool cell_free[SW_MAX_CELLS]; /* cells this commit releases */
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

static bool shadows_equal(const struct sw_policy_endpoint *a, const struct sw_policy_endpoint *b)
{
	__u32 i;

	if (a->nr_shadows != b->nr_shadows)
		return false;
	for (i = 0; i < a->nr_shadows; i++)
		if (strcmp(a->shadows[i].backend, b->shadows[i].backend) ||
		    a->shadows[i].fraction != b->shadows[i].fraction)
			return false;
	return true;
}

/* What differs between two versions of an endpoint: SW_PLAN_* bits, 0 when they are equal. */
static __u32 endpoint_changes(const struct sw_policy_endpoint *a,
			      const struct sw_policy_endpoint *b)
{
	__u32 changes = 0;

	if (strcmp(a->route, b->route) || strcmp(a->host, b->host))
		changes |= SW_PLAN_ROUTE;
	if (a->methods != b->methods)
		changes |= SW_PLAN_METHODS;
	if (strcmp(a->shard_header, b->shard_header))
		changes |= SW_PLAN_SHARD_HEADER;
	if (!weights_equal(a, b))
		changes |= SW_PLAN_TRAFFIC;
	if (!shadows_equal(a, b))
		changes |= SW_PLAN_SHADOWS;
	return changes;
}

/* The first id that this plan leaves free, or -ENOSPC. */
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

/* Whether every entry of p has an id, as one that policy_read() returned has. */
static bool has_ids(const struct sw_policy *p)
{
	__u32 i;

	for (i = 0; i < p->nr_backends; i++)
		if (p->backends[i].id >= SW_MAX_BACKENDS)
			return false;
	for (i = 0; i < p->nr_endpoints; i++)
		if (p->endpoints[i].id >= SW_MAX_ENDPOINTS)
			return false;
	return true;
}

/* A name map (backend_ids, endpoint_ids) whole. */
struct name_ids {
	__u32 nr;
	char names[SW_MAX_BACKENDS][SW_NAME_MAX];
	__u32 ids[SW_MAX_BACKENDS];
};
_Static_assert(SW_MAX_BACKENDS == SW_MAX_ENDPOINTS, "one name_ids holds either name map");

/* Reads a name map in batches: two syscalls or so, however many names it holds. */
static int name_ids_read(struct bpf_map *map, struct name_ids *t, struct sw_err *e)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	__u32 batch, n, max = SW_MAX_BACKENDS;
	void *in = NULL;
	int err;

	t->nr = 0;
	do {
		n = max - t->nr;
		err = bpf_map_lookup_batch(bpf_map__fd(map), in, &batch, t->names[t->nr],
					   &t->ids[t->nr], &n, &opts);
		t->nr += n;
		in = &batch;
	} while (!err && t->nr < max);
	/* -ENOENT: the map has no more. */
	if (err && err != -ENOENT)
		return sw_errorf(e, err, "cannot read map %s: %s", bpf_map__name(map),
				 strerror(-err));
	return 0;
}

/* The id that t gives name, or SW_ID_NONE. */
static __u32 name_id(const struct name_ids *t, const char *name)
{
	__u32 i;

	for (i = 0; i < t->nr; i++)
		if (!strncmp(t->names[i], name, SW_NAME_MAX))
			return t->ids[i];
	return SW_ID_NONE;
}

/*
 * Copies old, a policy built by hand rather than read, into live (empty) with the ids the
 * maps give its names. An entry the maps do not have is left out: it is not in the policy
 * being replaced.
 */
static int ids_from_names(struct sw_maps *m, struct sw_policy *live, const struct sw_policy *old,
			  struct sw_err *e)
{
	struct name_ids *t = malloc(sizeof(*t));
	__u32 i;
	int err;

	if (!t)
		return sw_errorf(e, -ENOMEM, "out of memory");
	err = name_ids_read(m->skel->maps.backend_ids, t, e);
	for (i = 0; !err && i < old->nr_backends; i++) {
		live->backends[live->nr_backends] = old->backends[i];
		live->backends[live->nr_backends].id = name_id(t, old->backends[i].name);
		live->nr_backends += live->backends[live->nr_backends].id < SW_MAX_BACKENDS;
	}
	if (!err)
		err = name_ids_read(m->skel->maps.endpoint_ids, t, e);
	for (i = 0; !err && i < old->nr_endpoints; i++) {
		live->endpoints[live->nr_endpoints] = old->endpoints[i];
		live->endpoints[live->nr_endpoints].id = name_id(t, old->endpoints[i].name);
		live->nr_endpoints += live->endpoints[live->nr_endpoints].id < SW_MAX_ENDPOINTS;
	}
	free(t);
	return err;
}

/* The policy a plan starts from: old, or when old has no ids, its copy that has them. */
static int plan_base(struct sw_maps *m, struct sw_plan_write *w, const struct sw_policy **old,
		     struct sw_err *e)
{
	int err;

	if (has_ids(*old))
		return 0;
	w->live = policy_alloc();
	if (!w->live)
		return sw_errorf(e, -ENOMEM, "out of memory");
	err = ids_from_names(m, w->live, *old, e);
	*old = w->live;
	return err;
}

/* Deleted backends first, then the new policy's in its order; ids for the created ones. */
static int plan_backends(struct sw_plan *plan, const struct sw_policy *old,
			 const struct sw_policy *new, struct sw_err *e)
{
	bool used[SW_MAX_BACKENDS] = {};
	struct sw_plan_backend *pb;
	__u32 i;
	int id;

	/* Ids in use: those of backends that stay. A deleted one's id may go to a new name in
	 * the same commit; readers of the old generation retry (maps.h). */
	for (i = 0; i < old->nr_backends; i++) {
		const struct sw_policy_backend *ob = &old->backends[i];

		if (policy_find_backend(new, ob->name)) {
			used[ob->id] = true;
			continue;
		}
		pb = &plan->backends[plan->nr_backends++];
		*pb = (struct sw_plan_backend){.op = SW_PLAN_DELETE, .id = ob->id, .old = ob};
	}
	for (i = 0; i < new->nr_backends; i++) {
		pb = &plan->backends[plan->nr_backends++];
		pb->new = &new->backends[i];
		pb->old = policy_find_backend(old, pb->new->name);
		if (pb->old) {
			pb->op = backend_equal(pb->old, pb->new) ? SW_PLAN_KEEP : SW_PLAN_CHANGE;
			pb->id = pb->old->id;
			continue;
		}
		id = id_alloc(used, SW_MAX_BACKENDS);
		if (id < 0)
			return sw_errorf(e, id, "too many backends (limit %u)", SW_MAX_BACKENDS);
		pb->op = SW_PLAN_CREATE;
		pb->id = id;
	}
	return 0;
}

/* As plan_backends(), for endpoints; their copies are planned once the cells are known. */
static int plan_endpoints(struct sw_plan *plan, const struct sw_policy *old,
			  const struct sw_policy *new, struct sw_err *e)
{
	bool used[SW_MAX_ENDPOINTS] = {};
	struct sw_plan_endpoint *pe;
	__u32 i;
	int id;

	for (i = 0; i < old->nr_endpoints; i++) {
		const struct sw_policy_endpoint *oe = &old->endpoints[i];

		if (policy_find_endpoint(new, oe->name)) {
			used[oe->id] = true;
			continue;
		}
		pe = &plan->endpoints[plan->nr_endpoints++];
		*pe = (struct sw_plan_endpoint){.op = SW_PLAN_DELETE, .id = oe->id, .old = oe};
	}
	for (i = 0; i < new->nr_endpoints; i++) {
		pe = &plan->endpoints[plan->nr_endpoints++];
		pe->new = &new->endpoints[i];
		pe->old = policy_find_endpoint(old, pe->new->name);
		if (pe->old) {
			pe->changes = endpoint_changes(pe->old, pe->new);
			pe->op = pe->changes ? SW_PLAN_CHANGE : SW_PLAN_KEEP;
			pe->id = pe->old->id;
			continue;
		}
		id = id_alloc(used, SW_MAX_ENDPOINTS);
		if (id < 0)
			return sw_errorf(e, id, "too many endpoints (limit %u)", SW_MAX_ENDPOINTS);
		pe->op = SW_PLAN_CREATE;
		pe->id = id;
	}
	return 0;
}

/* Cells of deleted endpoints and backends are released; their ids may be reused. */
static void plan_cells_free(struct sw_maps *m, struct sw_plan *plan)
{
	__u32 c, i;

	for (c = 0; c < SW_MAX_CELLS; c++) {
		const struct sw_cell *cell = &m->cells[c];

		if (!(cell->flags & SW_F_IN_USE))
			continue;
		for (i = 0; i < plan->nr_endpoints; i++)
			if (plan->endpoints[i].op == SW_PLAN_DELETE &&
			    cell->endpoint_id == plan->endpoints[i].id)
				plan->write->cell_free[c] = true;
		for (i = 0; i < plan->nr_backends; i++)
			if (plan->backends[i].op == SW_PLAN_DELETE &&
			    cell->backend_id == plan->backends[i].id)
				plan->write->cell_free[c] = true;
	}
}

/* The cell of (endpoint, backend, role): the one it has, or a free one that the plan takes. */
static int cell_find(struct sw_maps *m, struct sw_plan_write *w, __u32 ep_id, __u32 be_id,
		     __u32 role, struct sw_err *e)
{
	__u32 i, first_free = SW_MAX_CELLS;

	for (i = 0; i < SW_MAX_CELLS; i++) {
		const struct sw_cell *c = &m->cells[i];

		if (w->cell_new[i]) {
			/* Taken earlier in this plan: its header is not written yet. */
			continue;
		}
		if (!(c->flags & SW_F_IN_USE) || w->cell_free[i]) {
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
	w->cell_new[first_free] = true;
	return first_free;
}

/* The id the plan gives the backend called name in the new policy, and its cell for role. */
static int plan_target(struct sw_maps *m, struct sw_plan *plan, __u32 ep_id, const char *name,
		       __u32 role, __u16 *backend_id, __u16 *cell, struct sw_err *e)
{
	int c;
	__u32 i;

	for (i = 0; i < plan->nr_backends; i++) {
		const struct sw_plan_backend *pb = &plan->backends[i];

		if (!pb->new || strcmp(pb->new->name, name))
			continue;
		c = cell_find(m, plan->write, ep_id, pb->id, role, e);
		if (c < 0)
			return c;
		*backend_id = pb->id;
		*cell = c;
		return 0;
	}
	return sw_errorf(e, -ENOENT, "backend \"%s\" does not exist", name);
}

/* The copy to write for a created or changed endpoint, but for its moved_slots. */
static int plan_copy(struct sw_maps *m, struct sw_plan *plan, const struct sw_plan_endpoint *pe,
		     struct sw_err *e)
{
	const struct sw_policy_endpoint *pol = pe->new;
	struct sw_endpoint *ep = &plan->write->ep[pe->id];
	__u32 j;
	int err;

	memset(ep, 0, sizeof(*ep));
	ep->flags = SW_F_IN_USE;
	ep->id = pe->id;
	ep->shard_source = SW_SHARD_HEADER;
	strcpy(ep->name, pol->name);
	strcpy(ep->shard_header, pol->shard_header);
	ep->shard_header_hash = sw_hash64_of(pol->shard_header, strlen(pol->shard_header), 1);
	ep->route.endpoint_id = pe->id;
	ep->route.prefix_len = strlen(pol->route);
	ep->route.methods = pol->methods;
	strcpy(ep->route.prefix, pol->route);
	strcpy(ep->route.host, pol->host);
	ep->nr_splits = pol->nr_weights;
	for (j = 0; j < pol->nr_weights; j++) {
		err = plan_target(m, plan, pe->id, pol->weights[j].backend, SW_ROLE_PRIMARY,
				  &ep->splits[j].backend_id, &ep->splits[j].cell, e);
		if (err)
			return err;
		ep->splits[j].weight = pol->weights[j].weight;
	}
	ep->nr_shadows = pol->nr_shadows;
	for (j = 0; j < pol->nr_shadows; j++) {
		err = plan_target(m, plan, pe->id, pol->shadows[j].backend, SW_ROLE_SHADOW,
				  &ep->shadows[j].backend_id, &ep->shadows[j].cell, e);
		if (err)
			return err;
		ep->shadows[j].fraction = pol->shadows[j].fraction;
		ep->shadows[j].threshold = sw_shadow_threshold(pol->shadows[j].fraction);
	}
	return 0;
}

/*
 * The slot table of a created or changed endpoint, and the slots whose backend moves: those
 * of this commit when the weights change, else the copy keeps what the last change moved.
 */
static int plan_slots(struct sw_maps *m, struct sw_plan *plan, struct sw_plan_endpoint *pe,
		      struct sw_err *e)
{
	const struct sw_policy_endpoint *pol = pe->new;
	__u8 *table = plan->write->tables + (size_t)pe->id * SW_SLOTS;
	struct sw_slot_table *old_table;
	struct sw_endpoint old_ep;
	int err;

	err = policy_compile_slots(pol->weights, pol->nr_weights, table, SW_SLOTS);
	if (err)
		return sw_errorf(e, err, "cannot compile the weights of endpoint \"%s\": %s",
				 pol->name, strerror(-err));
	if (pe->op != SW_PLAN_CHANGE)
		return 0;
	old_table = malloc(sizeof(*old_table));
	if (!old_table)
		return sw_errorf(e, -ENOMEM, "out of memory");
	err = sw_endpoint_read(m, pe->id, &old_ep, old_table);
	if (err) {
		sw_errorf(e, err, "cannot read endpoint \"%s\": %s", pol->name, strerror(-err));
		goto cleanup;
	}
	plan->write->ep[pe->id].moved_slots = old_ep.moved_slots;
	if (pe->changes & SW_PLAN_TRAFFIC) {
		pe->moved_slots =
			policy_slots_moved(pe->old->weights, pe->old->nr_weights, old_table->split,
					   pol->weights, pol->nr_weights, table, SW_SLOTS);
		plan->write->ep[pe->id].moved_slots = pe->moved_slots;
	}
cleanup:
	free(old_table);
	return err;
}

void policy_plan_free(struct sw_plan *plan)
{
	if (!plan)
		return;
	if (plan->write) {
		policy_free(plan->write->live);
		free(plan->write->tables);
		free(plan->write);
	}
	free(plan);
}

static int plan_alloc(struct sw_plan **out, struct sw_err *e)
{
	struct sw_plan *plan = calloc(1, sizeof(*plan));

	if (plan)
		plan->write = calloc(1, sizeof(*plan->write));
	if (plan && plan->write)
		plan->write->tables = malloc((size_t)SW_MAX_ENDPOINTS * SW_SLOTS);
	if (!plan || !plan->write || !plan->write->tables) {
		policy_plan_free(plan);
		return sw_errorf(e, -ENOMEM, "out of memory");
	}
	*out = plan;
	return 0;
}

int policy_plan(struct sw_maps *m, const struct sw_policy *old, const struct sw_policy *new,
		struct sw_plan **out, struct sw_err *e)
{
	struct sw_plan *plan = NULL;
	__u32 i;
	int err;

	err = plan_alloc(&plan, e);
	if (err)
		return err;
	err = plan_base(m, plan->write, &old, e);
	if (!err)
		err = plan_backends(plan, old, new, e);
	if (!err)
		err = plan_endpoints(plan, old, new, e);
	if (err)
		goto cleanup;
	plan_cells_free(m, plan);
	for (i = 0; i < plan->nr_endpoints && !err; i++) {
		struct sw_plan_endpoint *pe = &plan->endpoints[i];

		if (pe->op != SW_PLAN_CREATE && pe->op != SW_PLAN_CHANGE)
			continue;
		err = plan_copy(m, plan, pe, e);
		if (!err)
			err = plan_slots(m, plan, pe, e);
	}
	for (i = 0; i < plan->nr_backends; i++)
		plan->nr_changes += plan->backends[i].op != SW_PLAN_KEEP;
	for (i = 0; i < plan->nr_endpoints; i++)
		plan->nr_changes += plan->endpoints[i].op != SW_PLAN_KEEP;
cleanup:
	if (err)
		policy_plan_free(plan);
	else
		*out = plan;
	return err;
}

/* A plan's writer: every write goes on after a failure, and the first error is kept. */
struct plan_writer {
	struct sw_maps *m;
	struct sw_err *e;
	int err;
};

static void map_write(struct plan_writer *w, struct bpf_map *map, const void *key,
		      const void *value, size_t size)
{
	int err = bpf_map__update_elem(map, key, bpf_map__key_size(map), value, size, BPF_ANY);

	if (err && !w->err)
		w->err = sw_errorf(w->e, err,
				   "commit failed writing map %s: %s; the policy may be partly "
				   "applied, run the command again",
				   bpf_map__name(map), strerror(-err));
}

/* The name maps (backend_ids, endpoint_ids) are keyed by the whole zero-padded name. */
static void name_write(struct plan_writer *w, struct bpf_map *map, const char *name, __u32 id)
{
	char key[SW_NAME_MAX] = {};

	strcpy(key, name);
	map_write(w, map, key, &id, sizeof(id));
}

/* A key nobody has any more goes; one that is already gone is fine. */
static void name_delete(struct bpf_map *map, const char *name)
{
	char key[SW_NAME_MAX] = {};

	strcpy(key, name);
	bpf_map__delete_elem(map, key, sizeof(key), 0);
}

static struct sw_route_key route_key(const char *host, const char *prefix)
{
	struct sw_route_key key = {
		.host_hash = host[0] ? sw_hash64_lower(host, strlen(host)) : 0,
		.prefix_hash = sw_hash64(prefix, strlen(prefix)),
	};

	return key;
}

/* A cell this plan takes starts from zero before anything can count into it. */
static void cell_take(struct plan_writer *w, __u32 c, __u16 endpoint_id, __u16 backend_id,
		      __u32 role)
{
	struct sw_cell *cell = &w->m->cells[c];

	if (cell->flags & SW_F_IN_USE)
		return;
	memset(cell->shard, 0, sizeof(cell->shard));
	cell->endpoint_id = endpoint_id;
	cell->backend_id = backend_id;
	cell->role = role;
	__atomic_store_n(&cell->flags, SW_F_IN_USE, __ATOMIC_RELEASE);
}

/* Released cells are zeroed and marked free; the ones the plan takes are set up. */
static void write_cells(struct plan_writer *w, const struct sw_plan *plan)
{
	const struct sw_plan_write *pw = plan->write;
	__u32 c, i, j;

	for (c = 0; c < SW_MAX_CELLS; c++) {
		struct sw_cell *cell = &w->m->cells[c];

		if (pw->cell_free[c]) {
			__atomic_store_n(&cell->flags, 0, __ATOMIC_RELEASE);
			memset(cell->shard, 0, sizeof(cell->shard));
		}
	}
	for (i = 0; i < plan->nr_endpoints; i++) {
		const struct sw_plan_endpoint *pe = &plan->endpoints[i];
		const struct sw_endpoint *ep = &pw->ep[pe->id];

		if (pe->op != SW_PLAN_CREATE && pe->op != SW_PLAN_CHANGE)
			continue;
		for (j = 0; j < ep->nr_splits; j++)
			if (pw->cell_new[ep->splits[j].cell])
				cell_take(w, ep->splits[j].cell, ep->id, ep->splits[j].backend_id,
					  SW_ROLE_PRIMARY);
		for (j = 0; j < ep->nr_shadows; j++)
			if (pw->cell_new[ep->shadows[j].cell])
				cell_take(w, ep->shadows[j].cell, ep->id, ep->shadows[j].backend_id,
					  SW_ROLE_SHADOW);
	}
}

static void write_backends(struct plan_writer *w, const struct sw_plan *plan)
{
	struct sw_backend b;
	__u32 i;

	for (i = 0; i < plan->nr_backends; i++) {
		const struct sw_plan_backend *pb = &plan->backends[i];

		if (pb->op != SW_PLAN_CREATE && pb->op != SW_PLAN_CHANGE)
			continue;
		memset(&b, 0, sizeof(b));
		b.flags = SW_F_IN_USE;
		b.nr_replicas = pb->new->nr_replicas;
		strcpy(b.name, pb->new->name);
		memcpy(b.replicas, pb->new->replicas, sizeof(b.replicas));
		map_write(w, w->m->skel->maps.backends, &pb->id, &b, sizeof(b));
		name_write(w, w->m->skel->maps.backend_ids, pb->new->name, pb->id);
	}
}

/* Each endpoint: write the copy nobody reads, then flip to it. */
static void write_endpoints(struct plan_writer *w, const struct sw_plan *plan)
{
	struct sw_maps *m = w->m;
	__u32 i, copy, index;

	for (i = 0; i < plan->nr_endpoints; i++) {
		const struct sw_plan_endpoint *pe = &plan->endpoints[i];

		if (pe->op != SW_PLAN_CREATE && pe->op != SW_PLAN_CHANGE)
			continue;
		copy = !(__atomic_load_n(&m->ctl->active[pe->id], __ATOMIC_ACQUIRE) & 1);
		index = pe->id * 2 + copy;
		map_write(w, m->skel->maps.endpoints, &index, &plan->write->ep[pe->id],
			  sizeof(plan->write->ep[pe->id]));
		map_write(w, m->skel->maps.slots, &index,
			  plan->write->tables + (size_t)pe->id * SW_SLOTS, SW_SLOTS);
		if (!w->err)
			__atomic_store_n(&m->ctl->active[pe->id], copy, __ATOMIC_RELEASE);
		name_write(w, m->skel->maps.endpoint_ids, pe->new->name, pe->id);
	}
}

/* Whether some endpoint of the new policy has this route. */
static bool route_kept(const struct sw_plan *plan, const struct sw_policy_endpoint *old)
{
	__u32 i;

	for (i = 0; i < plan->nr_endpoints; i++) {
		const struct sw_policy_endpoint *ne = plan->endpoints[i].new;

		if (ne && !strcmp(ne->route, old->route) && !strcmp(ne->host, old->host))
			return true;
	}
	return false;
}

/* Routes: insert or overwrite the new keys first, then drop the keys nobody has any more,
 * so that a route moving between endpoints never disappears. */
static void write_routes(struct plan_writer *w, const struct sw_plan *plan)
{
	struct bpf_map *routes = w->m->skel->maps.routes;
	struct sw_route_key rk;
	__u32 i;

	for (i = 0; i < plan->nr_endpoints; i++) {
		const struct sw_plan_endpoint *pe = &plan->endpoints[i];

		if (pe->op != SW_PLAN_CREATE && pe->op != SW_PLAN_CHANGE)
			continue;
		rk = route_key(pe->new->host, pe->new->route);
		map_write(w, routes, &rk, &plan->write->ep[pe->id].route,
			  sizeof(plan->write->ep[pe->id].route));
	}
	for (i = 0; i < plan->nr_endpoints; i++) {
		const struct sw_policy_endpoint *oe = plan->endpoints[i].old;

		if (!oe || route_kept(plan, oe))
			continue;
		rk = route_key(oe->host, oe->route);
		bpf_map__delete_elem(routes, &rk, sizeof(rk), 0);
	}
}

/* Deleted endpoints lose their name, and their copies unless a created one took the id. */
static void clear_endpoints(struct plan_writer *w, const struct sw_plan *plan)
{
	static const struct sw_endpoint empty;
	__u32 i, j, index;
	bool reused;

	for (i = 0; i < plan->nr_endpoints; i++) {
		const struct sw_plan_endpoint *pe = &plan->endpoints[i];

		if (pe->op != SW_PLAN_DELETE)
			continue;
		name_delete(w->m->skel->maps.endpoint_ids, pe->old->name);
		reused = false;
		for (j = 0; j < plan->nr_endpoints; j++)
			reused |= plan->endpoints[j].op == SW_PLAN_CREATE &&
				  plan->endpoints[j].id == pe->id;
		for (index = pe->id * 2; index < pe->id * 2 + 2 && !reused; index++)
			map_write(w, w->m->skel->maps.endpoints, &index, &empty, sizeof(empty));
	}
}

/* Deleted backends lose their name, and their entry unless a created one took the id. */
static void clear_backends(struct plan_writer *w, const struct sw_plan *plan)
{
	static const struct sw_backend empty;
	__u32 i, j;
	bool reused;

	for (i = 0; i < plan->nr_backends; i++) {
		const struct sw_plan_backend *pb = &plan->backends[i];

		if (pb->op != SW_PLAN_DELETE)
			continue;
		name_delete(w->m->skel->maps.backend_ids, pb->old->name);
		reused = false;
		for (j = 0; j < plan->nr_backends; j++)
			reused |= plan->backends[j].op == SW_PLAN_CREATE &&
				  plan->backends[j].id == pb->id;
		if (!reused)
			map_write(w, w->m->skel->maps.backends, &pb->id, &empty, sizeof(empty));
	}
}

/*
 * Every step is a map write that the plan has made sure can succeed; if one fails anyway
 * (the kernel is out of memory), the rest still runs so that the generation ends even, and
 * the first error is returned.
 */
int policy_plan_write(struct sw_maps *m, const struct sw_plan *plan, struct sw_err *e)
{
	struct plan_writer w = {.m = m, .e = e};

	if (!m->locked)
		return sw_errorf(e, -EPERM, "internal error: commit without the writers' lock");
	/* Odd under our lock: a writer died mid-commit. Its half-written copies are inactive
	 * or already flipped whole, so closing its generation is safe; readers then resume. */
	if (__atomic_load_n(&m->ctl->generation, __ATOMIC_ACQUIRE) & 1)
		__atomic_add_fetch(&m->ctl->generation, 1, __ATOMIC_SEQ_CST);
	__atomic_add_fetch(&m->ctl->generation, 1, __ATOMIC_SEQ_CST);
	write_cells(&w, plan);
	write_backends(&w, plan);
	write_endpoints(&w, plan);
	write_routes(&w, plan);
	clear_endpoints(&w, plan);
	clear_backends(&w, plan);
	__atomic_add_fetch(&m->ctl->generation, 1, __ATOMIC_SEQ_CST);
	return w.err;
}

int policy_commit(struct sw_maps *m, const struct sw_policy *old, const struct sw_policy *new,
		  struct sw_err *e)
{
	struct sw_plan *plan = NULL;
	int err;

	if (!m->locked)
		return sw_errorf(e, -EPERM, "internal error: commit without the writers' lock");
	err = policy_plan(m, old, new, &plan, e);
	if (err)
		return err;
	err = policy_plan_write(m, plan, e);
	policy_plan_free(plan);
	return err;
}
