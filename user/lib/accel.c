// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <linux/magic.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "sockway.skel.h"
#include "accel.h"

int sw_cgroup2_mount(char *buf, size_t len, struct sw_err *e)
{
	char dev[256], dir[PATH_MAX], type[64];
	FILE *f = fopen("/proc/mounts", "r");
	int found = 0;

	if (!f)
		return sw_errorf(e, -errno, "cannot read /proc/mounts: %s", strerror(errno));
	while (!found && fscanf(f, "%255s %4095s %63s %*s %*d %*d", dev, dir, type) == 3)
		if (!strcmp(type, "cgroup2")) {
			snprintf(buf, len, "%s", dir);
			found = 1;
		}
	fclose(f);
	if (!found)
		return sw_errorf(e, -ENOENT,
				 "no cgroup v2 hierarchy is mounted; mount one with \"mount -t "
				 "cgroup2 none /sys/fs/cgroup/unified\"");
	return 0;
}

/* The path under the cgroup v2 mount, made absolute, and its cgroup id. */
static int cgroup_resolve(const char *path, char *real, __u64 *id, struct sw_err *e)
{
	struct statfs sfs;
	struct stat st;

	if (!realpath(path, real))
		return sw_errorf(e, -errno, "cgroup %s: %s", path, strerror(errno));
	if (statfs(real, &sfs) || sfs.f_type != CGROUP2_SUPER_MAGIC)
		return sw_errorf(
			e, -EINVAL,
			"%s is not a cgroup v2 directory; give a directory under the cgroup2 "
			"mount (see /proc/mounts)",
			real);
	if (stat(real, &st))
		return sw_errorf(e, -errno, "cgroup %s: %s", real, strerror(errno));
	/* On cgroup v2 the directory's inode number is the cgroup id (kernfs). */
	*id = st.st_ino;
	return 0;
}

int sw_cgroup_id(const char *path, __u64 *id, struct sw_err *e)
{
	char real[PATH_MAX];

	return cgroup_resolve(path, real, id, e);
}

static void link_path(char *buf, size_t len, __u64 id)
{
	snprintf(buf, len, "%s/accel_%llu", sw_pin_root(), (unsigned long long)id);
}

static int prog_fd(struct bpf_program *prog)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", sw_pin_root(), bpf_program__name(prog));
	return bpf_obj_get(path);
}

/* Attaches sockops to one cgroup through a pinned link (the link outlives the agent). */
static int cgroup_attach(struct sw_maps *m, const char *path, __u64 id, struct sw_err *e)
{
	char lpath[PATH_MAX];
	int cg, prog, link, err = 0;

	link_path(lpath, sizeof(lpath), id);
	if (!access(lpath, F_OK))
		return 0;
	cg = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cg < 0)
		return sw_errorf(e, -errno, "cannot open cgroup %s: %s", path, strerror(errno));
	prog = prog_fd(m->skel->progs.sock_track);
	if (prog < 0) {
		err = sw_errorf(e, -errno,
				"the sockops program is not pinned; run \"sockway load\"");
		goto cleanup;
	}
	link = bpf_link_create(prog, cg, BPF_CGROUP_SOCK_OPS, NULL);
	if (link < 0) {
		err = sw_errorf(e, -errno, "cannot attach sockops to %s: %s", path,
				strerror(errno));
		goto cleanup;
	}
	if (bpf_obj_pin(link, lpath))
		err = sw_errorf(e, -errno, "cannot pin %s: %s", lpath, strerror(errno));
	close(link);
cleanup:
	if (prog >= 0)
		close(prog);
	close(cg);
	return err;
}

/* Attaches the sk_msg program to sock_hash (replacing an older one). */
static int verdict_attach(struct sw_maps *m, struct sw_err *e)
{
	int prog = prog_fd(m->skel->progs.msg_redirect), err = 0;

	if (prog < 0)
		return sw_errorf(e, -errno,
				 "the sk_msg program is not pinned; run \"sockway load\"");
	if (bpf_prog_attach(prog, bpf_map__fd(m->skel->maps.sock_hash), BPF_SK_MSG_VERDICT, 0))
		err = sw_errorf(e, -errno, "cannot attach sk_msg to sock_hash: %s",
				strerror(errno));
	close(prog);
	return err;
}

bool sw_accel_is_on(const struct sw_maps *m)
{
	return !__atomic_load_n(&m->ctl->accel_off, __ATOMIC_ACQUIRE);
}

int sw_accel_add(struct sw_maps *m, const char *path, struct sw_err *e)
{
	struct sw_accel_cgroup val = {};
	char real[PATH_MAX];
	__u64 id;
	int err;

	err = cgroup_resolve(path, real, &id, e);
	if (err)
		return err;
	if (strlen(real) >= sizeof(val.path))
		return sw_errorf(e, -ENAMETOOLONG, "cgroup path %s is too long (limit %zu)", real,
				 sizeof(val.path) - 1);
	strcpy(val.path, real);
	err = bpf_map__update_elem(m->skel->maps.accel_cgroups, &id, sizeof(id), &val, sizeof(val),
				   BPF_ANY);
	if (err)
		return sw_errorf(e, err, "cannot record cgroup %s: %s", real, strerror(-err));
	if (!sw_accel_is_on(m))
		return 0;
	err = verdict_attach(m, e);
	return err ? err : cgroup_attach(m, real, id, e);
}

/* The id of the accelerated cgroup recorded under path: 0 if there is none. */
static __u64 recorded_id(struct sw_maps *m, const char *path)
{
	int fd = bpf_map__fd(m->skel->maps.accel_cgroups);
	struct sw_accel_cgroup val;
	__u64 key, *prev = NULL;

	while (!bpf_map_get_next_key(fd, prev, &key)) {
		prev = &key;
		if (!bpf_map_lookup_elem(fd, &key, &val) && !strcmp(val.path, path))
			return key;
	}
	return 0;
}

int sw_accel_del(struct sw_maps *m, const char *path, struct sw_err *e)
{
	char real[PATH_MAX], lpath[PATH_MAX];
	__u64 id;
	int err;

	/* A cgroup removed since it was added is found by the path it was recorded under. */
	id = recorded_id(m, path);
	if (id) {
		snprintf(real, sizeof(real), "%s", path);
	} else {
		err = cgroup_resolve(path, real, &id, e);
		if (err)
			return err;
	}
	if (bpf_map__delete_elem(m->skel->maps.accel_cgroups, &id, sizeof(id), 0))
		return sw_errorf(e, -ENOENT,
				 "cgroup %s is not accelerated; see \"sockway accel "
				 "list\"",
				 real);
	link_path(lpath, sizeof(lpath), id);
	/* The pin holds the last reference: unlinking it detaches the program. */
	if (unlink(lpath) && errno != ENOENT)
		return sw_errorf(e, -errno, "cannot unpin %s: %s", lpath, strerror(errno));
	return 0;
}

static int key_cmp(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct sw_sock_key));
}

/*
 * Drops the entries of an address map (sock_addr, egress_addr) whose socket left its socket
 * map (sock_hash, egress_hash: it closed) without sockops seeing its close: while the switch
 * was off the cgroups' programs were detached, so those sockets' TCP_CLOSE callbacks never
 * ran. A stale address would make a later socket with the same tuple look tracked to its
 * peer (or an egress target to sockwayd). The socket map's keys are listed first (a lookup
 * from userspace cannot tell: with 4-byte values it fails ENOSPC whether the key is there
 * or not). A socket between sockops' two inserts can lose its address here; it then just
 * goes without the fast path's help. Best effort: nothing is swept without memory.
 */
static void addr_sweep(struct bpf_map *addr_map, struct bpf_map *hash_map)
{
	int addr_fd = bpf_map__fd(addr_map);
	int hash_fd = bpf_map__fd(hash_map);
	size_t n = 0, cap = bpf_map__max_entries(hash_map);
	struct sw_sock_key key, next, *live;
	bool more;

	live = calloc(cap, sizeof(*live));
	if (!live)
		return;
	if (!bpf_map_get_next_key(hash_fd, NULL, &live[0]))
		for (n = 1; n < cap && !bpf_map_get_next_key(hash_fd, &live[n - 1], &live[n]); n++)
			;
	qsort(live, n, sizeof(*live), key_cmp);
	if (!bpf_map_get_next_key(addr_fd, NULL, &key)) {
		do {
			/* The next key first: a deleted key would restart the walk. */
			more = !bpf_map_get_next_key(addr_fd, &key, &next);
			if (!bsearch(&key, live, n, sizeof(*live), key_cmp))
				bpf_map_delete_elem(addr_fd, &key);
			key = next;
		} while (more);
	}
	free(live);
}

int sw_accel_set(struct sw_maps *m, bool on, struct sw_err *e)
{
	struct sw_accel_cgroup val;
	char lpath[PATH_MAX];
	__u64 key, *prev = NULL, gone[64];
	unsigned nr_gone = 0, i;
	struct sw_err one;
	int err = 0, r, fd = bpf_map__fd(m->skel->maps.accel_cgroups);

	/* First the switch sk_msg reads: from here on every send takes TCP (off), or may be
	 * redirected again (on). */
	__atomic_store_n(&m->ctl->accel_off, !on, __ATOMIC_RELEASE);
	if (on) {
		addr_sweep(m->skel->maps.sock_addr, m->skel->maps.sock_hash);
		addr_sweep(m->skel->maps.egress_addr, m->skel->maps.egress_hash);
		err = verdict_attach(m, e);
	}
	/* Then the cgroup links: off, no new socket joins sock_hash; on, new ones do. Every
	 * cgroup is tried: one that fails does not keep the others off; the first error is
	 * the answer. A cgroup removed since it was added has no sockets left to accelerate
	 * (its id is never reused): it leaves the list. */
	while (!bpf_map_get_next_key(fd, prev, &key)) {
		prev = &key;
		if (!on) {
			link_path(lpath, sizeof(lpath), key);
			unlink(lpath);
			continue;
		}
		if (bpf_map_lookup_elem(fd, &key, &val))
			continue;
		if (access(val.path, F_OK) && errno == ENOENT) {
			if (nr_gone < sizeof(gone) / sizeof(gone[0]))
				gone[nr_gone++] = key;
			continue;
		}
		r = cgroup_attach(m, val.path, key, err ? &one : e);
		if (r && !err)
			err = r;
	}
	for (i = 0; i < nr_gone; i++) {
		link_path(lpath, sizeof(lpath), gone[i]);
		unlink(lpath);
		bpf_map_delete_elem(fd, &gone[i]);
	}
	/*
	 * Sockets already in sock_hash stay until they close: deleting one from a sockmap
	 * discards what was redirected into its queue and not read yet (seen on 6.18, a
	 * request lost in flight), while a passing sk_msg costs almost nothing.
	 */
	return err;
}

int sw_accel_reattach(struct sw_maps *m, struct sw_err *e)
{
	char lpath[PATH_MAX];
	__u64 key, *prev = NULL;
	int prog, link, err = 0;

	if (!sw_accel_is_on(m))
		return 0;
	prog = prog_fd(m->skel->progs.sock_track);
	if (prog < 0)
		return sw_errorf(e, -errno, "the sockops program is not pinned");
	while (!err &&
	       !bpf_map_get_next_key(bpf_map__fd(m->skel->maps.accel_cgroups), prev, &key)) {
		prev = &key;
		link_path(lpath, sizeof(lpath), key);
		link = bpf_obj_get(lpath);
		if (link < 0)
			continue;
		if (bpf_link_update(link, prog, NULL))
			err = sw_errorf(e, -errno, "cannot update %s: %s", lpath, strerror(errno));
		close(link);
	}
	close(prog);
	/* sk_msg: an attach replaces the program the map holds; only if anything uses it. */
	if (!err && prev)
		err = verdict_attach(m, e);
	return err;
}

int sw_accel_stats_read(struct sw_maps *m, struct sw_accel_stats *out)
{
	int ncpu = libbpf_num_possible_cpus(), i, j, err;
	struct sw_accel_stats *per;
	__u32 zero = 0;

	if (ncpu <= 0)
		return -EINVAL;
	per = calloc(ncpu, sizeof(*per));
	if (!per)
		return -ENOMEM;
	err = bpf_map__lookup_elem(m->skel->maps.accel_stats, &zero, sizeof(zero), per,
				   sizeof(*per) * ncpu, 0);
	memset(out, 0, sizeof(*out));
	for (i = 0; !err && i < ncpu; i++) {
		out->sockets += per[i].sockets;
		out->redirected += per[i].redirected;
		out->redirected_bytes += per[i].redirected_bytes;
		out->passed += per[i].passed;
		out->passed_bytes += per[i].passed_bytes;
		out->held += per[i].held;
		out->held_bytes += per[i].held_bytes;
		out->spliced += per[i].spliced;
		out->spliced_bytes += per[i].spliced_bytes;
		out->krouted += per[i].krouted;
		out->krouted_bytes += per[i].krouted_bytes;
		out->kanswered += per[i].kanswered;
		out->untracked += per[i].untracked;
		for (j = 0; j < SW_KM_MAX; j++)
			out->kmiss[j] += per[i].kmiss[j];
	}
	free(per);
	return err;
}

const char *sw_kmiss_name(unsigned why)
{
	static const char *const names[SW_KM_MAX] = {
		[SW_KM_ORDER] = "order",     [SW_KM_SCRATCH] = "scratch",
		[SW_KM_HEAD] = "head",	     [SW_KM_ROUTE] = "route",
		[SW_KM_POLICY] = "policy",   [SW_KM_SHADOW] = "shadow",
		[SW_KM_NO_CONN] = "no_conn", [SW_KM_UPSTREAM] = "upstream",
		[SW_KM_FAMILY] = "family",
	};

	return why < SW_KM_MAX && names[why] ? names[why] : "?";
}
