// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/* sockway traffic { set | show } */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "main.h"

static int traffic_help(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr,
		"Usage: sockway traffic set ENDPOINT BACKEND=WEIGHT [BACKEND=WEIGHT ...]\n"
		"       sockway traffic show ENDPOINT\n"
		"\n"
		"Weights are numbers >= 0 that sum to 1 (within 1e-6), e.g. the canary\n"
		"  sockway traffic set canary default_backend=0.99 canary_backend=0.01\n"
		"and the rollback\n"
		"  sockway traffic set canary default_backend=1\n"
		"Up to %d backends per endpoint. Weights compile into %u slots; a shard key\n"
		"always takes the same slot, so keys move only when their slot changes backend.\n",
		SW_MAX_SPLIT, SW_SLOTS);
	return 0;
}

struct traffic_edit {
	const char *endpoint;
	struct sw_policy_weight weights[SW_MAX_SPLIT];
	__u32 nr;
};

static int edit_set_traffic(struct sw_policy *p, void *ctx, struct sw_err *e)
{
	struct traffic_edit *t = ctx;

	return policy_set_traffic(p, t->endpoint, t->weights, t->nr, e);
}

static void set_plain(const void *data)
{
	const struct traffic_edit *t = data;

	printf("traffic of %s set; see \"sockway traffic show %s\"\n", t->endpoint, t->endpoint);
}

static json_t *set_json(const void *data)
{
	const struct traffic_edit *t = data;

	return json_pack("{s:s, s:b}", "endpoint", t->endpoint, "set", 1);
}

static const struct printer set_printer = {set_plain, set_json};

static int traffic_set(int argc, char **argv)
{
	struct traffic_edit t = {};
	struct sw_err e = {};
	char *eq, name[SW_NAME_MAX + 1];
	int i, err;

	if (argc < 2)
		return usage_error("usage: sockway traffic set ENDPOINT BACKEND=WEIGHT "
				   "[BACKEND=WEIGHT ...]");
	t.endpoint = argv[0];
	if (argc - 1 > SW_MAX_SPLIT)
		return agent_error(-ENOSPC, "%d backends given, an endpoint takes at most %d",
				   argc - 1, SW_MAX_SPLIT);
	for (i = 1; i < argc; i++) {
		eq = strchr(argv[i], '=');
		if (!eq)
			return usage_error("\"%s\" is not BACKEND=WEIGHT (for example b1=0.5)",
					   argv[i]);
		if ((size_t)(eq - argv[i]) >= sizeof(name))
			return agent_error(-EINVAL, "backend name \"%.*s\" is too long (limit %d)",
					   (int)(eq - argv[i]), argv[i], SW_NAME_MAX - 1);
		memcpy(name, argv[i], eq - argv[i]);
		name[eq - argv[i]] = '\0';
		err = sw_parse_name(name, "backend name", &e);
		if (!err)
			err = sw_parse_fraction(eq + 1, "weight", &t.weights[t.nr].weight, &e);
		if (err)
			return agent_fail(&e, err);
		strcpy(t.weights[t.nr++].backend, name);
	}
	err = agent_edit(edit_set_traffic, &t);
	return err ? err : agent_print(&set_printer, &t);
}

/* An endpoint's live split: its copy, and per split entry the backend and its slots. */
struct traffic_view {
	struct sw_endpoint ep;
	__u64 generation;
	char names[SW_MAX_SPLIT][SW_NAME_MAX];
	__u32 slots[SW_MAX_SPLIT];
};

static void show_plain(const void *data)
{
	const struct traffic_view *v = data;
	char num[32];
	__u32 i;

	printf("endpoint %s  route %s%s  slots %u  generation %llu\n", v->ep.name, v->ep.route.host,
	       v->ep.route.prefix, SW_SLOTS, (unsigned long long)v->generation);
	printf("%-31s %12s %8s %10s\n", "BACKEND", "WEIGHT", "SLOTS", "SHARE");
	for (i = 0; i < v->ep.nr_splits; i++)
		printf("%-31s %12s %8u %9.4f%%\n", v->names[i],
		       sw_format_fraction(v->ep.splits[i].weight, num, sizeof(num)), v->slots[i],
		       100.0 * v->slots[i] / SW_SLOTS);
	printf("last change moved %u of %u slots (%.4f%% of shard keys)\n", v->ep.moved_slots,
	       SW_SLOTS, 100.0 * v->ep.moved_slots / SW_SLOTS);
}

static json_t *show_json(const void *data)
{
	const struct traffic_view *v = data;
	json_t *backends = json_array();
	__u32 i;

	for (i = 0; i < v->ep.nr_splits; i++)
		json_array_append_new(backends,
				      json_pack("{s:s, s:o, s:i, s:f}", "backend", v->names[i],
						"weight", json_fraction(v->ep.splits[i].weight),
						"slots", v->slots[i], "share",
						v->slots[i] / (double)SW_SLOTS));
	return json_pack("{s:s, s:s, s:s, s:i, s:I, s:o, s:i, s:f}", "endpoint", v->ep.name,
			 "route", v->ep.route.prefix, "host", v->ep.route.host, "slots", SW_SLOTS,
			 "generation", (json_int_t)v->generation, "backends", backends,
			 "last_change_moved_slots", v->ep.moved_slots, "last_change_moved_fraction",
			 v->ep.moved_slots / (double)SW_SLOTS);
}

static const struct printer show_printer = {show_plain, show_json};

/* Reads endpoint name's live copy and counts the slots of each backend of its split. */
static int traffic_read(struct sw_maps *m, const char *name, struct traffic_view *v)
{
	struct sw_slot_table *table;
	struct sw_backend b;
	__u32 id, i, s;
	int err;

	if (sw_endpoint_id(m, name, &id))
		return agent_error(-ENOENT,
				   "endpoint \"%s\" does not exist; see \"sockway endpoint list\"",
				   name);
	table = malloc(sizeof(*table));
	if (!table)
		return agent_error(-ENOMEM, "out of memory");
	err = sw_endpoint_read(m, id, &v->ep, table);
	if (err) {
		agent_error(err, "cannot read endpoint \"%s\": %s", name, strerror(-err));
		goto cleanup;
	}
	v->generation = sw_generation(m);
	if (v->ep.nr_splits > SW_MAX_SPLIT)
		v->ep.nr_splits = SW_MAX_SPLIT;
	for (s = 0; s < SW_SLOTS; s++)
		if (table->split[s] < SW_MAX_SPLIT)
			v->slots[table->split[s]]++;
	for (i = 0; i < v->ep.nr_splits; i++) {
		b.flags = 0;
		sw_backend_read(m, v->ep.splits[i].backend_id, &b);
		strcpy(v->names[i], b.flags & SW_F_IN_USE ? b.name : "?");
	}
cleanup:
	free(table);
	return err;
}

static int traffic_show(int argc, char **argv)
{
	struct traffic_view *v;
	struct sw_maps m;
	int err;

	if (argc != 1)
		return usage_error("usage: sockway traffic show ENDPOINT");
	err = agent_open(&m, false);
	if (err)
		return err;
	v = calloc(1, sizeof(*v));
	if (!v)
		err = agent_error(-ENOMEM, "out of memory");
	if (!err)
		err = traffic_read(&m, argv[0], v);
	if (!err)
		err = agent_print(&show_printer, v);
	free(v);
	sw_maps_close(&m);
	return err;
}

static const struct cmd traffic_cmds[] = {
	{"set", traffic_set},
	{"show", traffic_show},
	{"help", traffic_help},
	{NULL, NULL},
};

int do_traffic(int argc, char **argv)
{
	return cmd_select("traffic", traffic_cmds, argc, argv, traffic_help, NULL);
}
