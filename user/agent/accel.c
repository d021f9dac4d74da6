// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/* sockway accel { add | del | list | on | off }: the kernel fast path and its kill switch. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "sockway.skel.h"
#include "accel.h"
#include "main.h"

static int accel_help(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr,
		"Usage: sockway accel add CGROUP_PATH\n"
		"       sockway accel del CGROUP_PATH\n"
		"       sockway accel list\n"
		"       sockway accel on | off\n"
		"\n"
		"TCP connections between local sockets of accelerated cgroups (and their\n"
		"descendants) skip the TCP/IP stack: a sockops program tracks them in sock_hash\n"
		"and an sk_msg program moves each send into the peer's receive queue. sockwayd\n"
		"adds its own cgroup. \"off\" is the kill switch: everything is detached and\n"
		"traffic flows over plain TCP, without dropping a connection; \"on\" restores the\n"
		"fast path for new connections.\n");
	return 0;
}

/* Opens the maps with the writers' lock and runs fn. */
static int accel_locked(int (*fn)(struct sw_maps *m, const char *arg, struct sw_err *e),
			const char *arg)
{
	struct sw_err e = {};
	struct sw_maps m;
	int err;

	err = agent_open(&m, true);
	if (err)
		return err;
	err = fn(&m, arg, &e);
	if (err)
		agent_fail(&e, err);
	sw_maps_close(&m);
	return err;
}

static int accel_add(int argc, char **argv)
{
	int err;

	if (argc != 1)
		return usage_error("usage: sockway accel add CGROUP_PATH");
	err = accel_locked(sw_accel_add, argv[0]);
	if (err)
		return err;
	if (agent_cfg.json)
		return json_print(json_pack("{s:s}", "added", argv[0]));
	printf("accelerated cgroup %s\n", argv[0]);
	return 0;
}

static int accel_del(int argc, char **argv)
{
	int err;

	if (argc != 1)
		return usage_error("usage: sockway accel del CGROUP_PATH");
	err = accel_locked(sw_accel_del, argv[0]);
	if (err)
		return err;
	if (agent_cfg.json)
		return json_print(json_pack("{s:s}", "deleted", argv[0]));
	printf("cgroup %s is no longer accelerated (open connections keep their path)\n",
	       argv[0]);
	return 0;
}

static int set_on(struct sw_maps *m, const char *arg, struct sw_err *e)
{
	return sw_accel_set(m, !strcmp(arg, "on"), e);
}

static int accel_switch(const char *state, int argc)
{
	int err;

	if (argc)
		return usage_error("usage: sockway accel %s", state);
	err = accel_locked(set_on, state);
	if (err)
		return err;
	if (agent_cfg.json)
		return json_print(json_pack("{s:b}", "accel", !strcmp(state, "on")));
	printf("%s\n", !strcmp(state, "on") ? "kernel fast path on"
					    : "kernel fast path off: plain TCP, nothing detached "
					      "dropped a connection");
	return 0;
}

static int accel_on(int argc, char **argv)
{
	(void)argv;
	return accel_switch("on", argc);
}

static int accel_off(int argc, char **argv)
{
	(void)argv;
	return accel_switch("off", argc);
}

static int accel_list(int argc, char **argv)
{
	struct sw_accel_cgroup val;
	struct sw_accel_stats st;
	__u64 key, *prev = NULL;
	struct sw_maps m;
	json_t *cgs;
	int fd, err;

	(void)argv;
	if (argc)
		return usage_error("usage: sockway accel list");
	err = agent_open(&m, false);
	if (err)
		return err;
	cgs = json_array();
	fd = bpf_map__fd(m.skel->maps.accel_cgroups);
	while (!bpf_map_get_next_key(fd, prev, &key)) {
		prev = &key;
		if (!bpf_map_lookup_elem(fd, &key, &val))
			json_array_append_new(cgs, json_pack("{s:s, s:I}", "path", val.path, "id",
							     (json_int_t)key));
	}
	err = sw_accel_stats_read(&m, &st);
	if (err)
		memset(&st, 0, sizeof(st));
	if (agent_cfg.json) {
		err = json_print(json_pack("{s:b, s:o, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}}", "on",
					   sw_accel_is_on(&m), "cgroups", cgs, "stats", "sockets",
					   (json_int_t)st.sockets, "redirected",
					   (json_int_t)st.redirected, "redirected_bytes",
					   (json_int_t)st.redirected_bytes, "passed",
					   (json_int_t)st.passed, "passed_bytes",
					   (json_int_t)st.passed_bytes, "held",
					   (json_int_t)st.held, "held_bytes",
					   (json_int_t)st.held_bytes, "spliced",
					   (json_int_t)st.spliced, "spliced_bytes",
					   (json_int_t)st.spliced_bytes));
	} else {
		printf("kernel fast path: %s\n", sw_accel_is_on(&m) ? "on" : "off (kill switch)");
		for (size_t i = 0; i < json_array_size(cgs); i++)
			printf("  %s\n",
			       json_string_value(json_object_get(json_array_get(cgs, i), "path")));
		printf("sockets tracked %llu; sends redirected %llu (%llu bytes), passed to TCP "
		       "%llu (%llu bytes), of which held back from a local peer %llu (%llu bytes); "
		       "response bytes spliced backend to client %llu\n",
		       (unsigned long long)st.sockets, (unsigned long long)st.redirected,
		       (unsigned long long)st.redirected_bytes, (unsigned long long)st.passed,
		       (unsigned long long)st.passed_bytes, (unsigned long long)st.held,
		       (unsigned long long)st.held_bytes, (unsigned long long)st.spliced_bytes);
		json_decref(cgs);
	}
	sw_maps_close(&m);
	return err;
}

static const struct cmd accel_cmds[] = {
	{ "add", accel_add }, { "del", accel_del }, { "list", accel_list },
	{ "on", accel_on },   { "off", accel_off }, { "help", accel_help },
	{ NULL, NULL },
};

int do_accel(int argc, char **argv)
{
	return cmd_select("accel", accel_cmds, argc, argv, accel_help, NULL);
}
