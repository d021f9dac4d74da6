// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/* sockway endpoint { create | delete | list } */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "main.h"

static int endpoint_help(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr,
		"Usage: sockway endpoint create NAME --route PATH --backend BACKEND\n"
		"                               [--host HOST] [--methods GET,POST]\n"
		"                               [--shard-header NAME]\n"
		"       sockway endpoint delete NAME\n"
		"       sockway endpoint list\n"
		"\n"
		"An endpoint is a route (path prefix on segment boundaries, optional Host and\n"
		"methods) served by backends. It starts with all traffic on BACKEND; change the\n"
		"split with \"sockway traffic set\". Requests carrying the shard header (default\n"
		"%s) stick to one backend. Up to %d endpoints.\n",
		SW_DEFAULT_SHARD_HEADER, SW_MAX_ENDPOINTS);
	return 0;
}

static int edit_add_endpoint(struct sw_policy *p, void *ctx, struct sw_err *e)
{
	return policy_add_endpoint(p, ctx, e);
}

/* The value of option argv[*i], which must exist. */
static const char *opt_value(int argc, char **argv, int *i)
{
	if (*i + 1 >= argc)
		return NULL;
	return argv[++*i];
}

/* A created endpoint has its whole traffic on one backend. */
static void created_plain(const void *data)
{
	const struct sw_policy_endpoint *ep = data;

	printf("created endpoint %s: %s%s -> %s\n", ep->name, ep->host, ep->route,
	       ep->weights[0].backend);
}

static json_t *created_json(const void *data)
{
	const struct sw_policy_endpoint *ep = data;

	return json_pack("{s:s, s:s, s:s, s:s}", "created", ep->name, "route", ep->route, "host",
			 ep->host, "backend", ep->weights[0].backend);
}

static const struct printer created_printer = {created_plain, created_json};

static int endpoint_create(int argc, char **argv)
{
	struct sw_policy_endpoint ep = {};
	const char *backend = NULL, *v;
	bool have_route = false;
	struct sw_err e = {};
	int i, err;

	if (argc < 1 || argv[0][0] == '-')
		return usage_error("usage: sockway endpoint create NAME --route PATH --backend "
				   "BACKEND [--host HOST] [--methods M,...] [--shard-header NAME]");
	err = sw_parse_name(argv[0], "endpoint name", &e);
	if (err)
		return agent_fail(&e, err);
	strcpy(ep.name, argv[0]);
	strcpy(ep.shard_header, SW_DEFAULT_SHARD_HEADER);
	for (i = 1; i < argc; i++) {
		const char *opt = argv[i];

		v = opt_value(argc, argv, &i);
		if (!v)
			return usage_error("option \"%s\" needs a value", opt);
		if (!strcmp(opt, "--route")) {
			err = sw_parse_route(v, ep.route, &e);
			have_route = true;
		} else if (!strcmp(opt, "--backend")) {
			backend = v;
		} else if (!strcmp(opt, "--host")) {
			err = sw_parse_host(v, ep.host, &e);
		} else if (!strcmp(opt, "--methods")) {
			err = sw_parse_methods(v, &ep.methods, &e);
		} else if (!strcmp(opt, "--shard-header")) {
			err = sw_parse_header_name(v, ep.shard_header, &e);
		} else {
			return usage_error("unknown option \"%s\"; try \"sockway endpoint help\"",
					   opt);
		}
		if (err)
			return agent_fail(&e, err);
	}
	if (!have_route || !backend)
		return usage_error("endpoint create needs --route PATH and --backend BACKEND");
	err = sw_parse_name(backend, "backend name", &e);
	if (err)
		return agent_fail(&e, err);
	strcpy(ep.weights[0].backend, backend);
	ep.weights[0].weight = SW_WEIGHT_ONE;
	ep.nr_weights = 1;
	err = agent_edit(edit_add_endpoint, &ep);
	return err ? err : agent_print(&created_printer, &ep);
}

static int edit_del_endpoint(struct sw_policy *p, void *ctx, struct sw_err *e)
{
	return policy_del_endpoint(p, ctx, e);
}

static void deleted_plain(const void *data)
{
	printf("deleted endpoint %s\n", (const char *)data);
}

static json_t *deleted_json(const void *data)
{
	return json_pack("{s:s}", "deleted", (const char *)data);
}

static const struct printer deleted_printer = {deleted_plain, deleted_json};

static int endpoint_delete(int argc, char **argv)
{
	int err;

	if (argc != 1)
		return usage_error("usage: sockway endpoint delete NAME");
	err = agent_edit(edit_del_endpoint, argv[0]);
	return err ? err : agent_print(&deleted_printer, argv[0]);
}

static void list_plain(const void *data)
{
	char weights[SW_MAX_SPLIT * 48], shadows[SW_MAX_SHADOWS * 48], methods[96];
	const struct sw_policy *p = data;
	__u32 i;

	printf("%-20s %4s  %-20s %-16s %-12s %-18s %-28s %s\n", "NAME", "ID", "ROUTE", "HOST",
	       "METHODS", "SHARD HEADER", "TRAFFIC", "SHADOWS");
	for (i = 0; i < p->nr_endpoints; i++) {
		const struct sw_policy_endpoint *ep = &p->endpoints[i];

		sw_format_methods(ep->methods, methods, sizeof(methods));
		printf("%-20s %4u  %-20s %-16s %-12s %-18s %-28s %s\n", ep->name, ep->id, ep->route,
		       ep->host[0] ? ep->host : "*", methods[0] ? methods : "*", ep->shard_header,
		       format_weights(ep, weights, sizeof(weights)),
		       format_shadows(ep, shadows, sizeof(shadows)));
	}
}

static json_t *list_json(const void *data)
{
	const struct sw_policy *p = data;
	json_t *out = json_array();
	char methods[96];
	__u32 i;

	for (i = 0; i < p->nr_endpoints; i++) {
		const struct sw_policy_endpoint *ep = &p->endpoints[i];

		sw_format_methods(ep->methods, methods, sizeof(methods));
		json_array_append_new(
			out, json_pack("{s:s, s:i, s:s, s:s, s:s, s:s, s:o, s:o}", "name", ep->name,
				       "id", ep->id, "route", ep->route, "host", ep->host,
				       "methods", methods, "shard_header", ep->shard_header,
				       "traffic", json_weights(ep), "shadows", json_shadows(ep)));
	}
	return out;
}

static const struct printer list_printer = {list_plain, list_json};

static int endpoint_list(int argc, char **argv)
{
	(void)argv;
	if (argc)
		return usage_error("usage: sockway endpoint list");
	return agent_print_policy(&list_printer);
}

static const struct cmd endpoint_cmds[] = {
	{"create", endpoint_create},
	{"delete", endpoint_delete},
	{"list", endpoint_list},
	{"help", endpoint_help},
	{NULL, NULL},
};

int do_endpoint(int argc, char **argv)
{
	return cmd_select("endpoint", endpoint_cmds, argc, argv, endpoint_help, NULL);
}
