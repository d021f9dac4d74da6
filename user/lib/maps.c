// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * The pinned state: load/unload, open, read the policy, commit a policy. See maps.h for the
 * commit protocol.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <linux/magic.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "sockway.skel.h"
#include "sockway/hash.h"
#include "compile.h"
#include "log.h"
#include "maps.h"

_Static_assert(sizeof(struct sw_addr) == 20, "sw_addr layout");
_Static_assert(sizeof(struct sw_route_key) == 16, "sw_route_key layout");
_Static_assert(sizeof(struct sw_route) == 200, "sw_route layout");
_Static_assert(sizeof(struct sw_split) == 8, "sw_split layout");
_Static_assert(sizeof(struct sw_shadow) == 16, "sw_shadow layout");
_Static_assert(sizeof(struct sw_counters) == 384, "sw_counters: 6 cache lines");
_Static_assert(sizeof(struct sw_cell) == 64 + SW_COUNTER_SHARDS * 384, "sw_cell layout");
_Static_assert(sizeof(struct sw_conn) == 256, "sw_conn: 4 cache lines");
_Static_assert(__builtin_offsetof(struct sw_conn, accel_bytes) == 64, "sw_conn: lookups read one line");
_Static_assert(sizeof(struct sw_slot_table) == SW_SLOTS, "sw_slot_table layout");
_Static_assert(SW_MAX_SPLIT <= 256, "slot tables store split indexes in a byte");

const char *sw_pin_root(void)
{
	const char *root = getenv(SW_PIN_ROOT_ENV);

	return root && root[0] ? root : SW_PIN_ROOT;
}

static int bpffs_ensure(bool *mounted, struct sw_err *e)
{
	struct statfs st;

	if (statfs(SW_BPFFS, &st) == 0 && st.f_type == BPF_FS_MAGIC)
		return 0;
	if (mkdir(SW_BPFFS, 0700) && errno != EEXIST)
		return sw_errorf(e, -errno, "cannot create %s: %s", SW_BPFFS, strerror(errno));
	if (mount("bpf", SW_BPFFS, "bpf", 0, "mode=0700"))
		return sw_errorf(e, -errno,
				 "bpffs is not mounted on %s and mounting it failed: %s; "
				 "mount it with \"mount -t bpf bpf %s\"",
				 SW_BPFFS, strerror(errno), SW_BPFFS);
	*mounted = true;
	pr_info("mounted bpffs on %s", SW_BPFFS);
	return 0;
}

/* Pins a program under sw_pin_root(), replacing an older pin without a moment of absence. */
static int prog_pin(struct bpf_program *prog, struct sw_err *e)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	int err;

	snprintf(path, sizeof(path), "%s/%s", sw_pin_root(), bpf_program__name(prog));
	/* bpffs refuses dots in names, hence no ".new". */
	snprintf(tmp, sizeof(tmp), "%s/%s_new", sw_pin_root(), bpf_program__name(prog));
	unlink(tmp);
	err = bpf_program__pin(prog, tmp);
	if (err)
		return sw_errorf(e, err, "cannot pin program %s at %s: %s", bpf_program__name(prog),
				 tmp, strerror(-err));
	if (rename(tmp, path)) {
		err = -errno;
		unlink(tmp);
		return sw_errorf(e, err, "cannot pin program at %s: %s", path, strerror(-err));
	}
	return 0;
}

static int pin_dir_remove(const char *path, struct sw_err *e);

int sw_load(struct sw_load_info *info, struct sw_err *e)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = sw_pin_root());
	struct bpf_program *prog;
	struct sockway *skel;
	int err;

	memset(info, 0, sizeof(*info));
	err = bpffs_ensure(&info->mounted_bpffs, e);
	if (err)
		return err;
	skel = sockway__open_opts(&opts);
	if (!skel)
		return sw_errorf(e, -errno, "cannot open the BPF object: %s", strerror(errno));
	info->reused = access(bpf_map__pin_path(skel->maps.ctl), F_OK) == 0;
	/* libbpf reuses every map already pinned by name, and pins the new ones. */
	err = sockway__load(skel);
	if (err && !info->reused)
		/* Leave no half-made directory behind: the next load starts clean. */
		pin_dir_remove(sw_pin_root(), NULL);
	if (err) {
		sw_errorf(e, err, "cannot load the BPF object: %s%s", strerror(-err),
			  info->reused ? "; if an older sockway pinned these maps, run "
					 "\"sockway unload\" (this drops the policy) and load again"
				       : "; run with -v for the verifier's log");
		goto cleanup;
	}
	if (chmod(sw_pin_root(), 0700)) {
		err = sw_errorf(e, -errno, "cannot chmod %s: %s", sw_pin_root(), strerror(errno));
		goto cleanup;
	}
	bpf_object__for_each_program(prog, skel->obj)
	{
		err = prog_pin(prog, e);
		if (err)
			goto cleanup;
	}
cleanup:
	sockway__destroy(skel);
	return err;
}

/* Removes a pin directory and everything in it (bpffs has no other way to drop pins). */
static int pin_dir_remove(const char *path, struct sw_err *e)
{
	char child[PATH_MAX];
	struct dirent *de;
	struct stat st;
	DIR *dir;
	int err = 0;

	dir = opendir(path);
	if (!dir)
		return sw_errorf(e, -errno, "cannot open %s: %s", path, strerror(errno));
	while ((de = readdir(dir))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(child, sizeof(child), "%s/%s", path, de->d_name);
		if (lstat(child, &st) == 0 && S_ISDIR(st.st_mode))
			err = pin_dir_remove(child, e);
		else if (unlink(child))
			err = sw_errorf(e, -errno, "cannot unpin %s: %s", child, strerror(errno));
		if (err)
			break;
	}
	closedir(dir);
	if (!err && rmdir(path))
		err = sw_errorf(e, -errno, "cannot remove %s: %s", path, strerror(errno));
	return err;
}

int sw_unload(struct sw_err *e)
{
	struct statfs st;

	if (statfs(sw_pin_root(), &st) || st.f_type != BPF_FS_MAGIC)
		return sw_errorf(e, -ENOENT, "nothing is loaded (%s does not exist)",
				 sw_pin_root());
	return pin_dir_remove(sw_pin_root(), e);
}

/* Points map at its pinned twin, refusing a pin whose shape differs from this build's. */
static int map_reuse_pinned(struct bpf_map *map, struct sw_err *e)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	const char *path = bpf_map__pin_path(map);
	int fd, err;

	fd = bpf_obj_get(path);
	if (fd < 0) {
		if (errno == ENOENT)
			return sw_errorf(
				e, -ENOENT,
				"nothing is loaded (%s is missing); run \"sockway load\" first",
				path);
		return sw_errorf(e, -errno, "cannot open %s: %s", path, strerror(errno));
	}
	err = bpf_obj_get_info_by_fd(fd, &info, &len);
	if (err) {
		err = sw_errorf(e, -errno, "cannot inspect %s: %s", path, strerror(errno));
		goto cleanup;
	}
	if (info.type != bpf_map__type(map) || info.key_size != bpf_map__key_size(map) ||
	    info.value_size != bpf_map__value_size(map) ||
	    info.max_entries != bpf_map__max_entries(map)) {
		err = sw_errorf(
			e, -EINVAL,
			"pinned map %s does not match this sockway (value size %u, expected "
			"%u); run \"sockway unload\" and \"sockway load\" (this drops the "
			"policy)",
			path, info.value_size, bpf_map__value_size(map));
		goto cleanup;
	}
	err = bpf_map__reuse_fd(map, fd);
	if (err)
		sw_errorf(e, err, "cannot use %s: %s", path, strerror(-err));
cleanup:
	close(fd);
	return err;
}

static void *map_mmap(struct bpf_map *map, size_t size, struct sw_err *e)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, bpf_map__fd(map), 0);

	if (p == MAP_FAILED) {
		sw_errorf(e, -errno, "cannot mmap map %s: %s", bpf_map__name(map), strerror(errno));
		return NULL;
	}
	return p;
}

int sw_maps_open(struct sw_maps *m, struct sw_err *e)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = sw_pin_root());
	struct bpf_map *map;
	int err;

	memset(m, 0, sizeof(*m));
	m->dir_fd = open(sw_pin_root(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (m->dir_fd < 0) {
		if (errno == ENOENT)
			return sw_errorf(e, -ENOENT,
					 "nothing is loaded; run \"sockway load\" first");
		return sw_errorf(e, -errno, "cannot open %s: %s", sw_pin_root(), strerror(errno));
	}
	m->skel = sockway__open_opts(&opts);
	if (!m->skel) {
		err = sw_errorf(e, -errno, "cannot open the BPF object: %s", strerror(errno));
		goto fail;
	}
	bpf_object__for_each_map(map, m->skel->obj)
	{
		if (!bpf_map__pin_path(map))
			continue;
		err = map_reuse_pinned(map, e);
		if (err)
			goto fail;
	}
	m->ctl = map_mmap(m->skel->maps.ctl, sizeof(struct sw_ctl), e);
	m->cells = map_mmap(m->skel->maps.counters, sizeof(struct sw_cell) * SW_MAX_CELLS, e);
	m->conns = map_mmap(m->skel->maps.conns, sizeof(struct sw_conn) * SW_CONNS, e);
	m->conn_tags = map_mmap(m->skel->maps.conn_tags,
				sizeof(struct sw_conn_bucket) * SW_CONN_BUCKETS, e);
	if (!m->ctl || !m->cells || !m->conns || !m->conn_tags) {
		err = -ENOMEM;
		goto fail;
	}
	return 0;
fail:
	sw_maps_close(m);
	return err;
}

void sw_maps_close(struct sw_maps *m)
{
	if (m->cells)
		munmap(m->cells, sizeof(struct sw_cell) * SW_MAX_CELLS);
	if (m->conns)
		munmap(m->conns, sizeof(struct sw_conn) * SW_CONNS);
	if (m->conn_tags)
		munmap(m->conn_tags, sizeof(struct sw_conn_bucket) * SW_CONN_BUCKETS);
	if (m->ctl)
		munmap(m->ctl, sizeof(struct sw_ctl));
	sockway__destroy(m->skel);
	/* Closing the directory drops the flock. */
	if (m->dir_fd > 0)
		close(m->dir_fd);
	memset(m, 0, sizeof(*m));
}

int sw_maps_lock(struct sw_maps *m, struct sw_err *e)
{
	if (flock(m->dir_fd, LOCK_EX))
		return sw_errorf(e, -errno, "cannot lock %s: %s", sw_pin_root(), strerror(errno));
	m->locked = true;
	return 0;
}

void sw_maps_unlock(struct sw_maps *m)
{
	if (m->locked)
		flock(m->dir_fd, LOCK_UN);
	m->locked = false;
}

__u64 sw_generation(const struct sw_maps *m)
{
	return __atomic_load_n(&m->ctl->generation, __ATOMIC_ACQUIRE);
}

static int map_lookup(struct bpf_map *map, const void *key, void *value, size_t size)
{
	return bpf_map__lookup_elem(map, key, bpf_map__key_size(map), value, size, 0);
}

static int map_update(struct bpf_map *map, const void *key, const void *value, size_t size)
{
	return bpf_map__update_elem(map, key, bpf_map__key_size(map), value, size, BPF_ANY);
}

int sw_endpoint_read(struct sw_maps *m, __u32 id, struct sw_endpoint *ep,
		     struct sw_slot_table *table)
{
	__u32 index;
	int err;

	if (id >= SW_MAX_ENDPOINTS)
		return -EINVAL;
	index = id * 2 + (__atomic_load_n(&m->ctl->active[id], __ATOMIC_ACQUIRE) & 1);
	if (ep) {
		err = map_lookup(m->skel->maps.endpoints, &index, ep, sizeof(*ep));
		if (err)
			return err;
	}
	if (table)
		return map_lookup(m->skel->maps.slots, &index, table, sizeof(*table));
	return 0;
}

static int name_to_id(struct bpf_map *map, const char *name, __u32 *id)
{
	char key[SW_NAME_MAX] = {};

	if (strlen(name) >= sizeof(key))
		return -ENOENT;
	strcpy(key, name);
	return map_lookup(map, key, id, sizeof(*id)) ? -ENOENT : 0;
}

int sw_endpoint_id(struct sw_maps *m, const char *name, __u32 *id)
{
	return name_to_id(m->skel->maps.endpoint_ids, name, id);
}

int sw_backend_id(struct sw_maps *m, const char *name, __u32 *id)
{
	return name_to_id(m->skel->maps.backend_ids, name, id);
}

int sw_backend_read(struct sw_maps *m, __u32 id, struct sw_backend *b)
{
	if (id >= SW_MAX_BACKENDS)
		return -EINVAL;
	return map_lookup(m->skel->maps.backends, &id, b, sizeof(*b));
}

/* Copies a NUL-terminated map string into a model field of the same size, always terminated. */
#define COPY_STR(dst, src)                                                                         \
	do {                                                                                       \
		_Static_assert(sizeof(dst) == sizeof(src), "string fields differ");                \
		memcpy(dst, src, sizeof(dst));                                                     \
		(dst)[sizeof(dst) - 1] = '\0';                                                     \
	} while (0)

int policy_read(struct sw_maps *m, struct sw_policy *p, struct sw_err *e)
{
	static const char unknown[] = "?";
	char names[SW_MAX_BACKENDS][SW_NAME_MAX];
	struct sw_endpoint ep;
	struct sw_backend b;
	__u32 id, i;
	int err;

	memset(p, 0, sizeof(*p));
	memset(names, 0, sizeof(names));
	for (id = 0; id < SW_MAX_BACKENDS; id++) {
		struct sw_policy_backend *pb = &p->backends[p->nr_backends];

		err = sw_backend_read(m, id, &b);
		if (err)
			return sw_errorf(e, err, "cannot read backend %u: %s", id, strerror(-err));
		if (!(b.flags & SW_F_IN_USE))
			continue;
		COPY_STR(pb->name, b.name);
		memcpy(names[id], pb->name, SW_NAME_MAX);
		pb->nr_replicas = b.nr_replicas < SW_MAX_REPLICAS ? b.nr_replicas : SW_MAX_REPLICAS;
		memcpy(pb->replicas, b.replicas, sizeof(pb->replicas));
		p->nr_backends++;
	}
	for (id = 0; id < SW_MAX_ENDPOINTS; id++) {
		struct sw_policy_endpoint *pe = &p->endpoints[p->nr_endpoints];

		err = sw_endpoint_read(m, id, &ep, NULL);
		if (err)
			return sw_errorf(e, err, "cannot read endpoint %u: %s", id, strerror(-err));
		if (!(ep.flags & SW_F_IN_USE))
			continue;
		COPY_STR(pe->name, ep.name);
		COPY_STR(pe->route, ep.route.prefix);
		COPY_STR(pe->host, ep.route.host);
		COPY_STR(pe->shard_header, ep.shard_header);
		pe->methods = ep.route.methods;
		pe->nr_weights = ep.nr_splits < SW_MAX_SPLIT ? ep.nr_splits : SW_MAX_SPLIT;
		for (i = 0; i < pe->nr_weights; i++) {
			__u16 bid = ep.splits[i].backend_id;

			strcpy(pe->weights[i].backend,
			       bid < SW_MAX_BACKENDS && names[bid][0] ? names[bid] : unknown);
			pe->weights[i].weight = ep.splits[i].weight;
		}
		pe->nr_shadows = ep.nr_shadows < SW_MAX_SHADOWS ? ep.nr_shadows : SW_MAX_SHADOWS;
		for (i = 0; i < pe->nr_shadows; i++) {
			__u16 bid = ep.shadows[i].backend_id;

			strcpy(pe->shadows[i].backend,
			       bid < SW_MAX_BACKENDS && names[bid][0] ? names[bid] : unknown);
			pe->shadows[i].fraction = ep.shadows[i].fraction;
		}
		p->nr_endpoints++;
	}
	/* Ids follow creation order; the model is sorted by name. */
	policy_sort(p);
	return 0;
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
		const struct sw_policy_backend *ob =
			policy_find_backend(old, nb->name);

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
		const struct sw_policy_endpoint *oe =
			policy_find_endpoint(old, ne->name);

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

void sw_cell_sum(const struct sw_cell *cell, struct sw_counters *out)
{
	const __u64 *src;
	__u64 *dst = (__u64 *)out;
	size_t i, n = sizeof(*out) / sizeof(__u64);
	int s;

	memset(out, 0, sizeof(*out));
	for (s = 0; s < SW_COUNTER_SHARDS; s++) {
		src = (const __u64 *)&cell->shard[s];
		for (i = 0; i < n; i++)
			dst[i] += __atomic_load_n(&src[i], __ATOMIC_RELAXED);
	}
}

void sw_cells_reset(struct sw_maps *m, __u32 endpoint_id)
{
	__u32 c;

	/* Adds racing with the reset may be lost or kept; a reset is not a snapshot. */
	for (c = 0; c < SW_MAX_CELLS; c++) {
		struct sw_cell *cell = &m->cells[c];

		if ((cell->flags & SW_F_IN_USE) &&
		    (endpoint_id == SW_ID_NONE || cell->endpoint_id == endpoint_id))
			memset(cell->shard, 0, sizeof(cell->shard));
	}
}
