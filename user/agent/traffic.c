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
	if (err)
		return err;
	if (agent_cfg.json)
		return json_print(json_pack("{s:s, s:b}", "endpoint", t.endpoint, "set", 1));
	printf("traffic of %s set; see \"sockway traffic show %s\"\n", t.endpoint, t.endpoint);
	return 0;
}

static int traffic_show(int argc, char **argv)
{
	struct sw_slot_table *table = NULL;
	__u32 counts[SW_MAX_SPLIT] = {}, id, i, s;
	struct sw_backend b;
	struct sw_endpoint ep;
	struct sw_maps m;
	char num[32];
	json_t *jb;
	int err;

	if (argc != 1)
		return usage_error("usage: sockway traffic show ENDPOINT");
	err = agent_open(&m, false);
	if (err)
		return err;
	table = malloc(sizeof(*table));
	if (!table) {
		err = agent_error(-ENOMEM, "out of memory");
		goto cleanup;
	}
	if (sw_endpoint_id(&m, argv[0], &id)) {
		err = agent_error(-ENOENT,
				  "endpoint \"%s\" does not exist; see \"sockway endpoint "
				  "list\"",
				  argv[0]);
		goto cleanup;
	}
	err = sw_endpoint_read(&m, id, &ep, table);
	if (err) {
		agent_error(err, "cannot read endpoint \"%s\": %s", argv[0], strerror(-err));
		goto cleanup;
	}
	for (s = 0; s < SW_SLOTS; s++)
		if (table->split[s] < SW_MAX_SPLIT)
			counts[table->split[s]]++;

	jb = json_array();
	if (!agent_cfg.json) {
		printf("endpoint %s  route %s%s  slots %u  generation %llu\n", ep.name,
		       ep.route.host, ep.route.prefix, SW_SLOTS,
		       (unsigned long long)sw_generation(&m));
		printf("%-31s %12s %8s %10s\n", "BACKEND", "WEIGHT", "SLOTS", "SHARE");
	}
	for (i = 0; i < ep.nr_splits && i < SW_MAX_SPLIT; i++) {
		const char *name = "?";

		if (!sw_backend_read(&m, ep.splits[i].backend_id, &b) && (b.flags & SW_F_IN_USE))
			name = b.name;
		sw_format_fraction(ep.splits[i].weight, num, sizeof(num));
		if (!agent_cfg.json)
			printf("%-31s %12s %8u %9.4f%%\n", name, num, counts[i],
			       100.0 * counts[i] / SW_SLOTS);
		json_array_append_new(
			jb, json_pack("{s:s, s:f, s:i, s:f}", "backend", name, "weight",
				      ep.splits[i].weight / (double)SW_WEIGHT_ONE, "slots",
				      counts[i], "share", counts[i] / (double)SW_SLOTS));
	}
	if (agent_cfg.json) {
		err = json_print(
			json_pack("{s:s, s:i, s:I, s:o, s:i, s:f}", "endpoint", ep.name, "slots",
				  SW_SLOTS, "generation", (json_int_t)sw_generation(&m), "backends",
				  jb, "last_change_moved_slots", ep.moved_slots,
				  "last_change_moved_fraction", ep.moved_slots / (double)SW_SLOTS));
		goto cleanup;
	}
	json_decref(jb);
	printf("last change moved %u of %u slots (%.4f%% of shard keys)\n", ep.moved_slots,
	       SW_SLOTS, 100.0 * ep.moved_slots / SW_SLOTS);
cleanup:
	free(table);
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
