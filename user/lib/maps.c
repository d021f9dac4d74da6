// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * The pinned maps from any process (maps.h): opened through the skeleton with every map
 * pointed at its pin, the mmap-able ones mapped, the writers' lock, and the accessors by id.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "sockway.skel.h"
#include "maps.h"

_Static_assert(sizeof(struct sw_addr) == 20, "sw_addr layout");
_Static_assert(sizeof(struct sw_route_key) == 16, "sw_route_key layout");
_Static_assert(sizeof(struct sw_route) == 200, "sw_route layout");
_Static_assert(sizeof(struct sw_split) == 8, "sw_split layout");
_Static_assert(sizeof(struct sw_shadow) == 16, "sw_shadow layout");
_Static_assert(sizeof(struct sw_counters) == 384, "sw_counters: 6 cache lines");
_Static_assert(sizeof(struct sw_cell) == 64 + SW_COUNTER_SHARDS * 384, "sw_cell layout");
_Static_assert(sizeof(struct sw_conn) == 320, "sw_conn: 5 cache lines");
_Static_assert(__builtin_offsetof(struct sw_conn, accel_bytes) == 64,
	       "sw_conn: lookups read one line");
_Static_assert(sizeof(struct sw_slot_table) == SW_SLOTS, "sw_slot_table layout");
_Static_assert(sizeof(struct sw_lend_set) == 144, "sw_lend_set layout");
_Static_assert(SW_LEND_WORKERS <= SW_LEND_SLOTS, "lender ids fit the owners entry");
_Static_assert(
	(sizeof(struct sw_guard_prefix) - 4) % 8 == 0,
	"sw_guard_prefix: the trie puts the hits right after the key data: keep it 8-aligned");
_Static_assert(sizeof(struct sw_guard_cfg) == 40, "sw_guard_cfg layout");
_Static_assert(SW_MAX_SPLIT <= 256, "slot tables store split indexes in a byte");

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
			"pinned map %s does not match this sockway (type %u, key size %u, "
			"value size %u, entries %u; expected %u, %u, %u, %u); run \"sockway "
			"unload\" and \"sockway load\" (this drops the policy)",
			path, info.type, info.key_size, info.value_size, info.max_entries,
			bpf_map__type(map), bpf_map__key_size(map), bpf_map__value_size(map),
			bpf_map__max_entries(map));
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
	m->lend = map_mmap(m->skel->maps.lend, sizeof(struct sw_lend_set) * (SW_LEND_SETS + 1), e);
	if (!m->ctl || !m->cells || !m->conns || !m->conn_tags || !m->lend) {
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
	if (m->lend)
		munmap(m->lend, sizeof(struct sw_lend_set) * (SW_LEND_SETS + 1));
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
