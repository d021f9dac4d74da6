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

static void created_plain(const void *data)
{
	const struct sw_policy_backend *b = data;

	printf("created backend %s with %u replica%s\n", b->name, b->nr_replicas,
	       b->nr_replicas == 1 ? "" : "s");
}

static json_t *created_json(const void *data)
{
	const struct sw_policy_backend *b = data;

	return json_pack("{s:s, s:i}", "created", b->name, "replicas", b->nr_replicas);
}

static const struct printer created_printer = {created_plain, created_json};

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
	return err ? err : agent_print(&created_printer, &b);
}

static int edit_del_backend(struct sw_policy *p, void *ctx, struct sw_err *e)
{
	return policy_del_backend(p, ctx, e);
}

static void deleted_plain(const void *data)
{
	printf("deleted backend %s\n", (const char *)data);
}

static json_t *deleted_json(const void *data)
{
	return json_pack("{s:s}", "deleted", (const char *)data);
}

static const struct printer deleted_printer = {deleted_plain, deleted_json};

static int backend_delete(int argc, char **argv)
{
	int err;

	if (argc != 1)
		return usage_error("usage: sockway backend delete NAME");
	err = agent_edit(edit_del_backend, argv[0]);
	return err ? err : agent_print(&deleted_printer, argv[0]);
}

static void list_plain(const void *data)
{
	const struct sw_policy *p = data;
	char addr[64];
	__u32 i, j;

	printf("%-31s %4s  %s\n", "NAME", "ID", "REPLICAS");
	for (i = 0; i < p->nr_backends; i++) {
		const struct sw_policy_backend *b = &p->backends[i];

		printf("%-31s %4u ", b->name, b->id);
		for (j = 0; j < b->nr_replicas; j++)
			printf(" %s", sw_format_addr(&b->replicas[j], addr, sizeof(addr)));
		printf("\n");
	}
}

static json_t *list_json(const void *data)
{
	const struct sw_policy *p = data;
	json_t *out = json_array(), *replicas;
	char addr[64];
	__u32 i, j;

	for (i = 0; i < p->nr_backends; i++) {
		const struct sw_policy_backend *b = &p->backends[i];

		replicas = json_array();
		for (j = 0; j < b->nr_replicas; j++)
			json_array_append_new(
				replicas,
				json_string(sw_format_addr(&b->replicas[j], addr, sizeof(addr))));
		json_array_append_new(out, json_pack("{s:s, s:i, s:o}", "name", b->name, "id",
						     b->id, "replicas", replicas));
	}
	return out;
}

static const struct printer list_printer = {list_plain, list_json};

static int backend_list(int argc, char **argv)
{
	(void)argv;
	if (argc)
		return usage_error("usage: sockway backend list");
	return agent_print_policy(&list_printer);
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
