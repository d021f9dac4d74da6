// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/* sockway load | unload | status */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "sockway.skel.h"
#include "accel.h"
#include "guard.h"
#include "main.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static int no_args(const char *cmd, int argc, char **argv)
{
	if (argc > 0 && (!strcmp(argv[0], "help") || !strcmp(argv[0], "-h"))) {
		fprintf(stderr, "Usage: sockway %s\n", cmd);
		return 1;
	}
	if (argc > 0)
		return usage_error("\"sockway %s\" takes no arguments, got \"%s\"", cmd, argv[0]);
	return 0;
}

static void load_plain(const void *data)
{
	const struct sw_load_info *info = data;

	printf("loaded into %s%s%s\n", sw_pin_root(),
	       info->reused ? " (maps were pinned already: the policy is kept)" : "",
	       info->mounted_bpffs ? "; mounted bpffs on " SW_BPFFS : "");
}

static json_t *load_json(const void *data)
{
	const struct sw_load_info *info = data;

	return json_pack("{s:b, s:s, s:b, s:b}", "loaded", 1, "pin_root", sw_pin_root(), "reused",
			 info->reused, "mounted_bpffs", info->mounted_bpffs);
}

static const struct printer load_printer = {load_plain, load_json};

int do_load(int argc, char **argv)
{
	struct sw_load_info info;
	struct sw_err e = {};
	int err;

	err = no_args("load", argc, argv);
	if (err)
		return err < 0 ? err : 0;
	if (geteuid() != 0)
		return agent_error(-EPERM, "must run as root to load BPF programs and pin maps");
	err = sw_load(&info, &e);
	if (err)
		return agent_fail(&e, err);
	if (info.reused) {
		struct sw_maps m;

		/* The programs were replaced: move the fast path's and the guard's attachments
		 * over. */
		err = agent_open(&m, true);
		if (err)
			return err;
		err = sw_accel_reattach(&m, &e);
		if (!err)
			err = sw_guard_reattach(&e);
		sw_maps_close(&m);
		if (err)
			return agent_fail(&e, err);
	}
	return agent_print(&load_printer, &info);
}

static void unload_plain(const void *data)
{
	(void)data;
	printf("unloaded: removed %s\n", sw_pin_root());
}

static json_t *unload_json(const void *data)
{
	(void)data;
	return json_pack("{s:b}", "unloaded", 1);
}

static const struct printer unload_printer = {unload_plain, unload_json};

int do_unload(int argc, char **argv)
{
	struct sw_err e = {};
	int err;

	err = no_args("unload", argc, argv);
	if (err)
		return err < 0 ? err : 0;
	if (geteuid() != 0)
		return agent_error(-EPERM, "must run as root to unpin %s", sw_pin_root());
	err = sw_unload(&e);
	if (err)
		return agent_fail(&e, err);
	return agent_print(&unload_printer, NULL);
}

/* id of an object by fd, 0 if unknown. */
static __u32 obj_id(int fd, bool prog)
{
	struct bpf_prog_info pinfo = {};
	struct bpf_map_info minfo = {};
	__u32 len = prog ? sizeof(pinfo) : sizeof(minfo);

	if (bpf_obj_get_info_by_fd(fd, prog ? (void *)&pinfo : (void *)&minfo, &len))
		return 0;
	return prog ? pinfo.id : minfo.id;
}

/* A pinned map or program: its name, pin and kernel id. */
struct pinned {
	const char *name;
	char path[PATH_MAX];
	__u32 id;
};

/* What is loaded: the generation, what the policy uses of each limit, the fast path. */
struct status_view {
	bool loaded;
	__u64 generation;
	__u32 nr_backends, nr_endpoints, nr_cells, nr_cgroups;
	bool accel_on;
	struct sw_accel_stats accel;
	struct sw_guard_cfg guard;
	struct sw_guard_stats guard_st;
	int nr_ifaces;
	struct sw_guard_iface ifaces[16];
	__u32 nr_maps, nr_progs;
	struct pinned maps[32], progs[32];
};

static void pinned_plain(const char *title, const struct pinned *p, __u32 nr)
{
	__u32 i;

	printf("%s", title);
	for (i = 0; i < nr; i++)
		printf(" %s (id %u)", p[i].name, p[i].id);
	printf("\n");
}

static void status_plain(const void *data)
{
	const struct status_view *v = data;
	int i;

	if (!v->loaded) {
		printf("not loaded (%s does not exist); run \"sockway load\"\n", sw_pin_root());
		return;
	}
	printf("loaded:     yes, pinned under %s\n", sw_pin_root());
	printf("generation: %llu\n", (unsigned long long)v->generation);
	printf("backends:   %u of %u\n", v->nr_backends, SW_MAX_BACKENDS);
	printf("endpoints:  %u of %u\n", v->nr_endpoints, SW_MAX_ENDPOINTS);
	printf("counters:   %u of %u cells\n", v->nr_cells, SW_MAX_CELLS);
	printf("accel:      %s, %u cgroup%s; %llu sends (%llu bytes) took the kernel path\n",
	       v->accel_on ? "on" : "off (kill switch)", v->nr_cgroups,
	       v->nr_cgroups == 1 ? "" : "s", (unsigned long long)v->accel.redirected,
	       (unsigned long long)v->accel.redirected_bytes);
	printf("guard:      %s,", v->guard.off ? "off (kill switch)" : "on");
	for (i = 0; i < v->nr_ifaces; i++)
		printf(" %s (%s)%s", v->ifaces[i].name,
		       v->ifaces[i].ifindex ? sw_guard_mode_name(v->ifaces[i].mode)
					    : "interface gone",
		       i + 1 < v->nr_ifaces ? "," : "");
	printf("%s; %llu packets denied, %llu SYNs limited, %llu malformed dropped\n",
	       v->nr_ifaces ? "" : " on no interface",
	       (unsigned long long)v->guard_st.v[SW_GV_DENIED].packets,
	       (unsigned long long)v->guard_st.v[SW_GV_LIMITED].packets,
	       (unsigned long long)v->guard_st.v[SW_GV_MALFORMED].packets);
	pinned_plain("maps:      ", v->maps, v->nr_maps);
	pinned_plain("programs:  ", v->progs, v->nr_progs);
}

static json_t *pinned_json(const struct pinned *p, __u32 nr)
{
	json_t *out = json_array();
	__u32 i;

	for (i = 0; i < nr; i++)
		json_array_append_new(out, json_pack("{s:s, s:s, s:i}", "name", p[i].name, "pinned",
						     p[i].path, "id", p[i].id));
	return out;
}

static json_t *status_json(const void *data)
{
	const struct status_view *v = data;

	json_t *ifaces = json_array(), *out;
	int i;

	if (!v->loaded) {
		json_decref(ifaces);
		return json_pack("{s:b}", "loaded", 0);
	}
	for (i = 0; i < v->nr_ifaces; i++)
		json_array_append_new(ifaces,
				      json_pack("{s:s, s:b, s:s}", "name", v->ifaces[i].name,
						"present", v->ifaces[i].ifindex != 0, "mode",
						sw_guard_mode_name(v->ifaces[i].mode)));
	out = json_pack(
		"{s:b, s:s, s:I, s:{s:i, s:i}, s:{s:i, s:i}, s:{s:i, s:i}, "
		"s:{s:b, s:i, s:I, s:I}, s:o, s:o}",
		"loaded", 1, "pin_root", sw_pin_root(), "generation", (json_int_t)v->generation,
		"backends", "count", v->nr_backends, "limit", SW_MAX_BACKENDS, "endpoints", "count",
		v->nr_endpoints, "limit", SW_MAX_ENDPOINTS, "counter_cells", "count", v->nr_cells,
		"limit", SW_MAX_CELLS, "accel", "on", v->accel_on, "cgroups", v->nr_cgroups,
		"redirected", (json_int_t)v->accel.redirected, "redirected_bytes",
		(json_int_t)v->accel.redirected_bytes, "maps", pinned_json(v->maps, v->nr_maps),
		"programs", pinned_json(v->progs, v->nr_progs));
	if (out)
		json_object_set_new(
			out, "guard",
			json_pack("{s:b, s:o, s:I, s:I, s:I}", "on", !v->guard.off, "interfaces",
				  ifaces, "denied", (json_int_t)v->guard_st.v[SW_GV_DENIED].packets,
				  "limited", (json_int_t)v->guard_st.v[SW_GV_LIMITED].packets,
				  "malformed", (json_int_t)v->guard_st.v[SW_GV_MALFORMED].packets));
	else
		json_decref(ifaces);
	return out;
}

static const struct printer status_printer = {status_plain, status_json};

/* The pinned maps and programs of the object, with their kernel ids. */
static void pins_read(struct sw_maps *m, struct status_view *v)
{
	struct bpf_program *prog;
	struct bpf_map *map;
	struct pinned *p;
	int fd;

	bpf_object__for_each_map(map, m->skel->obj)
	{
		if (!bpf_map__pin_path(map) || v->nr_maps == ARRAY_SIZE(v->maps))
			continue;
		p = &v->maps[v->nr_maps++];
		p->name = bpf_map__name(map);
		snprintf(p->path, sizeof(p->path), "%s", bpf_map__pin_path(map));
		p->id = obj_id(bpf_map__fd(map), false);
	}
	bpf_object__for_each_program(prog, m->skel->obj)
	{
		if (v->nr_progs == ARRAY_SIZE(v->progs))
			break;
		p = &v->progs[v->nr_progs++];
		p->name = bpf_program__name(prog);
		snprintf(p->path, sizeof(p->path), "%s/%s", sw_pin_root(), p->name);
		fd = bpf_obj_get(p->path);
		p->id = fd < 0 ? 0 : obj_id(fd, true);
		if (fd >= 0)
			close(fd);
	}
}

static void status_read(struct sw_maps *m, struct status_view *v)
{
	int fd = bpf_map__fd(m->skel->maps.accel_cgroups);
	struct sw_endpoint ep;
	struct sw_backend b;
	__u64 cgid, *prev;
	__u32 id;

	v->loaded = true;
	v->generation = sw_generation(m);
	for (id = 0; id < SW_MAX_BACKENDS; id++)
		v->nr_backends += !sw_backend_read(m, id, &b) && (b.flags & SW_F_IN_USE);
	for (id = 0; id < SW_MAX_ENDPOINTS; id++)
		v->nr_endpoints += !sw_endpoint_read(m, id, &ep, NULL) && (ep.flags & SW_F_IN_USE);
	for (id = 0; id < SW_MAX_CELLS; id++)
		v->nr_cells += !!(m->cells[id].flags & SW_F_IN_USE);
	for (prev = NULL; !bpf_map_get_next_key(fd, prev, &cgid); prev = &cgid)
		v->nr_cgroups++;
	v->accel_on = sw_accel_is_on(m);
	if (sw_accel_stats_read(m, &v->accel))
		memset(&v->accel, 0, sizeof(v->accel));
	sw_guard_cfg_read(m, &v->guard);
	sw_guard_stats_read(m, &v->guard_st);
	v->nr_ifaces = sw_guard_ifaces(v->ifaces, (int)ARRAY_SIZE(v->ifaces));
	if (v->nr_ifaces < 0)
		v->nr_ifaces = 0;
	pins_read(m, v);
}

int do_status(int argc, char **argv)
{
	struct status_view *v;
	struct sw_maps m = {};
	int err;

	err = no_args("status", argc, argv);
	if (err)
		return err < 0 ? err : 0;
	if (geteuid() != 0)
		return agent_error(-EPERM, "must run as root: the maps under %s are root-only",
				   sw_pin_root());
	v = calloc(1, sizeof(*v));
	if (!v)
		return agent_error(-ENOMEM, "out of memory");
	if (!access(sw_pin_root(), F_OK)) {
		err = agent_open(&m, false);
		if (!err)
			status_read(&m, v);
	}
	if (!err)
		err = agent_print(&status_printer, v);
	if (m.skel)
		sw_maps_close(&m);
	free(v);
	return err;
}
