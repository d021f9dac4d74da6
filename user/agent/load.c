// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/* sockway load | unload | status */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "sockway.skel.h"
#include "accel.h"
#include "main.h"

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

		/* The programs were replaced: move the fast path's attachments over. */
		err = agent_open(&m, true);
		if (err)
			return err;
		err = sw_accel_reattach(&m, &e);
		sw_maps_close(&m);
		if (err)
			return agent_fail(&e, err);
	}
	if (agent_cfg.json)
		return json_print(json_pack("{s:b, s:s, s:b, s:b}", "loaded", 1, "pin_root",
					    sw_pin_root(), "reused", info.reused, "mounted_bpffs",
					    info.mounted_bpffs));
	printf("loaded into %s%s%s\n", sw_pin_root(),
	       info.reused ? " (maps were pinned already: the policy is kept)" : "",
	       info.mounted_bpffs ? "; mounted bpffs on " SW_BPFFS : "");
	return 0;
}

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
	if (agent_cfg.json)
		return json_print(json_pack("{s:b}", "unloaded", 1));
	printf("unloaded: removed %s\n", sw_pin_root());
	return 0;
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

int do_status(int argc, char **argv)
{
	__u32 nr_backends = 0, nr_endpoints = 0, nr_cells = 0, nr_cgroups, id;
	struct sw_accel_stats ast;
	__u64 cgid, *prev;
	json_t *jmaps = NULL, *jprogs = NULL;
	struct bpf_program *prog;
	struct sw_endpoint ep;
	struct sw_backend b;
	struct bpf_map *map;
	struct sw_maps m;
	char path[512];
	int err, fd;

	err = no_args("status", argc, argv);
	if (err)
		return err < 0 ? err : 0;
	if (geteuid() != 0)
		return agent_error(-EPERM, "must run as root: the maps under %s are root-only",
				   sw_pin_root());
	if (access(sw_pin_root(), F_OK)) {
		if (agent_cfg.json)
			return json_print(json_pack("{s:b}", "loaded", 0));
		printf("not loaded (%s does not exist); run \"sockway load\"\n", sw_pin_root());
		return 0;
	}
	err = agent_open(&m, false);
	if (err)
		return err;
	for (id = 0; id < SW_MAX_BACKENDS; id++)
		nr_backends += !sw_backend_read(&m, id, &b) && (b.flags & SW_F_IN_USE);
	for (id = 0; id < SW_MAX_ENDPOINTS; id++)
		nr_endpoints += !sw_endpoint_read(&m, id, &ep, NULL) && (ep.flags & SW_F_IN_USE);
	for (id = 0; id < SW_MAX_CELLS; id++)
		nr_cells += !!(m.cells[id].flags & SW_F_IN_USE);

	jmaps = json_array();
	jprogs = json_array();
	bpf_object__for_each_map(map, m.skel->obj)
	{
		if (bpf_map__pin_path(map))
			json_array_append_new(jmaps, json_pack("{s:s, s:s, s:i}", "name",
							       bpf_map__name(map), "pinned",
							       bpf_map__pin_path(map), "id",
							       obj_id(bpf_map__fd(map), false)));
	}
	bpf_object__for_each_program(prog, m.skel->obj)
	{
		snprintf(path, sizeof(path), "%s/%s", sw_pin_root(), bpf_program__name(prog));
		fd = bpf_obj_get(path);
		json_array_append_new(jprogs, json_pack("{s:s, s:s, s:i}", "name",
							bpf_program__name(prog), "pinned", path,
							"id", fd < 0 ? 0 : obj_id(fd, true)));
		if (fd >= 0)
			close(fd);
	}
	nr_cgroups = 0;
	for (prev = NULL; !bpf_map_get_next_key(bpf_map__fd(m.skel->maps.accel_cgroups), prev, &cgid);
	     prev = &cgid)
		nr_cgroups++;
	if (sw_accel_stats_read(&m, &ast))
		memset(&ast, 0, sizeof(ast));
	if (agent_cfg.json) {
		err = json_print(json_pack(
			"{s:b, s:s, s:I, s:{s:i, s:i}, s:{s:i, s:i}, s:{s:i, s:i}, s:{s:b, s:i, s:I, "
			"s:I}, s:o, s:o}",
			"loaded", 1, "pin_root", sw_pin_root(), "generation",
			(json_int_t)sw_generation(&m), "backends", "count", nr_backends, "limit",
			SW_MAX_BACKENDS, "endpoints", "count", nr_endpoints, "limit", SW_MAX_ENDPOINTS,
			"counter_cells", "count", nr_cells, "limit", SW_MAX_CELLS, "accel", "on",
			sw_accel_is_on(&m), "cgroups", nr_cgroups, "redirected",
			(json_int_t)ast.redirected, "redirected_bytes", (json_int_t)ast.redirected_bytes,
			"maps", jmaps, "programs", jprogs));
		goto cleanup;
	}
	printf("loaded:     yes, pinned under %s\n", sw_pin_root());
	printf("generation: %llu\n", (unsigned long long)sw_generation(&m));
	printf("backends:   %u of %u\n", nr_backends, SW_MAX_BACKENDS);
	printf("endpoints:  %u of %u\n", nr_endpoints, SW_MAX_ENDPOINTS);
	printf("counters:   %u of %u cells\n", nr_cells, SW_MAX_CELLS);
	printf("accel:      %s, %u cgroup%s; %llu sends (%llu bytes) took the kernel path\n",
	       sw_accel_is_on(&m) ? "on" : "off (kill switch)", nr_cgroups,
	       nr_cgroups == 1 ? "" : "s", (unsigned long long)ast.redirected,
	       (unsigned long long)ast.redirected_bytes);
	printf("maps:      ");
	for (size_t i = 0; i < json_array_size(jmaps); i++) {
		json_t *j = json_array_get(jmaps, i);

		printf(" %s (id %lld)", json_string_value(json_object_get(j, "name")),
		       json_integer_value(json_object_get(j, "id")));
	}
	printf("\nprograms:  ");
	for (size_t i = 0; i < json_array_size(jprogs); i++) {
		json_t *j = json_array_get(jprogs, i);

		printf(" %s (id %lld)", json_string_value(json_object_get(j, "name")),
		       json_integer_value(json_object_get(j, "id")));
	}
	printf("\n");
	json_decref(jmaps);
	json_decref(jprogs);
cleanup:
	sw_maps_close(&m);
	return err;
}
