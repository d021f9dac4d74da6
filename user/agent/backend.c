// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/* sockway backend { create | delete | list } */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "main.h"

static int backend_help(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr,
		"Usage: sockway backend create NAME ADDR:PORT [ADDR:PORT ...]\n"
		"       sockway backend delete NAME\n"
		"       sockway backend list\n"
		"\n"
		"A backend is a named group of replicas: IPv4 a.b.c.d:port or [IPv6]:port.\n"
		"NAME is 1-%d characters of [A-Za-z0-9._-]; up to %d replicas, %d backends.\n"
		"A backend that an endpoint routes or shadows to cannot be deleted.\n",
		SW_NAME_MAX - 1, SW_MAX_REPLICAS, SW_MAX_BACKENDS);
	return 0;
}

static int edit_add_backend(struct sw_policy *p, void *ctx, struct sw_err *e)
{
	return policy_add_backend(p, ctx, e);
}

static int backend_create(int argc, char **argv)
{
	struct sw_policy_backend b = {};
	struct sw_err e = {};
	int i, err;

	if (argc < 2)
		return usage_error("usage: sockway backend create NAME ADDR:PORT [ADDR:PORT ...]");
	err = sw_parse_name(argv[0], "backend name", &e);
	if (err)
		return agent_fail(&e, err);
	strcpy(b.name, argv[0]);
	if (argc - 1 > SW_MAX_REPLICAS)
		return agent_error(-ENOSPC, "backend \"%s\" has %d replicas, the limit is %d",
				   b.name, argc - 1, SW_MAX_REPLICAS);
	for (i = 1; i < argc; i++) {
		err = sw_parse_addr(argv[i], &b.replicas[b.nr_replicas++], &e);
		if (err)
			return agent_fail(&e, err);
	}
	err = agent_edit(edit_add_backend, &b);
	if (err)
		return err;
	if (agent_cfg.json)
		return json_print(
			json_pack("{s:s, s:i}", "created", b.name, "replicas", b.nr_replicas));
	printf("created backend %s with %u replica%s\n", b.name, b.nr_replicas,
	       b.nr_replicas == 1 ? "" : "s");
	return 0;
}

static int edit_del_backend(struct sw_policy *p, void *ctx, struct sw_err *e)
{
	return policy_del_backend(p, ctx, e);
}

static int backend_delete(int argc, char **argv)
{
	int err;

	if (argc != 1)
		return usage_error("usage: sockway backend delete NAME");
	err = agent_edit(edit_del_backend, argv[0]);
	if (err)
		return err;
	if (agent_cfg.json)
		return json_print(json_pack("{s:s}", "deleted", argv[0]));
	printf("deleted backend %s\n", argv[0]);
	return 0;
}

static int backend_list(int argc, char **argv)
{
	struct sw_policy *p = NULL;
	struct sw_maps m;
	char addr[64];
	json_t *out;
	__u32 i, j;
	int err;

	(void)argv;
	if (argc)
		return usage_error("usage: sockway backend list");
	err = agent_open_policy(&m, &p);
	if (err)
		return err;
	out = json_array();
	if (!agent_cfg.json)
		printf("%-31s %4s  %s\n", "NAME", "ID", "REPLICAS");
	for (i = 0; i < p->nr_backends; i++) {
		const struct sw_policy_backend *b = &p->backends[i];
		json_t *replicas = json_array();

		if (!agent_cfg.json)
			printf("%-31s %4u ", b->name, b->id);
		for (j = 0; j < b->nr_replicas; j++) {
			sw_format_addr(&b->replicas[j], addr, sizeof(addr));
			json_array_append_new(replicas, json_string(addr));
			if (!agent_cfg.json)
				printf(" %s", addr);
		}
		if (!agent_cfg.json)
			printf("\n");
		json_array_append_new(out, json_pack("{s:s, s:i, s:o}", "name", b->name, "id", b->id,
						     "replicas", replicas));
	}
	if (agent_cfg.json)
		err = json_print(out);
	else
		json_decref(out);
	policy_free(p);
	sw_maps_close(&m);
	return err;
}

static const struct cmd backend_cmds[] = {
	{"create", backend_create},
	{"delete", backend_delete},
	{"list", backend_list},
	{"help", backend_help},
	{NULL, NULL},
};

int do_backend(int argc, char **argv)
{
	return cmd_select("backend", backend_cmds, argc, argv, backend_help, NULL);
}
