// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/* sockway shadow { set | list } */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "main.h"

static int shadow_help(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr,
		"Usage: sockway shadow set ENDPOINT BACKEND FRACTION\n"
		"       sockway shadow list [ENDPOINT]\n"
		"\n"
		"A shadow gets a copy of an independent FRACTION (0..1) of the endpoint's\n"
		"requests; its responses are discarded, its counters kept. FRACTION 0 stops it.\n"
		"Up to %d shadows per endpoint; a backend of the split cannot also be a shadow.\n",
		SW_MAX_SHADOWS);
	return 0;
}

struct shadow_edit {
	const char *endpoint;
	const char *backend;
	__u32 fraction;
};

static int edit_set_shadow(struct sw_policy *p, void *ctx, struct sw_err *e)
{
	struct shadow_edit *s = ctx;

	return policy_set_shadow(p, s->endpoint, s->backend, s->fraction, e);
}

static int shadow_set(int argc, char **argv)
{
	struct shadow_edit s;
	struct sw_err e = {};
	int err;

	if (argc != 3)
		return usage_error("usage: sockway shadow set ENDPOINT BACKEND FRACTION");
	s.endpoint = argv[0];
	s.backend = argv[1];
	err = sw_parse_fraction(argv[2], "shadow fraction", &s.fraction, &e);
	if (err)
		return agent_fail(&e, err);
	err = agent_edit(edit_set_shadow, &s);
	if (err)
		return err;
	if (agent_cfg.json)
		return json_print(json_pack("{s:s, s:s, s:f}", "endpoint", s.endpoint, "backend",
					    s.backend, "fraction",
					    s.fraction / (double)SW_WEIGHT_ONE));
	if (s.fraction)
		printf("shadowing a fraction %s of %s's requests to %s\n", argv[2], s.endpoint,
		       s.backend);
	else
		printf("stopped shadowing %s to %s\n", s.endpoint, s.backend);
	return 0;
}

static int shadow_list(int argc, char **argv)
{
	struct sw_policy *p = NULL;
	struct sw_maps m;
	char num[32];
	json_t *out;
	__u32 i, j;
	int err;

	if (argc > 1)
		return usage_error("usage: sockway shadow list [ENDPOINT]");
	err = agent_open_policy(&m, &p);
	if (err)
		return err;
	if (argc == 1 && !policy_find_endpoint(p, argv[0])) {
		err = agent_error(-ENOENT,
				  "endpoint \"%s\" does not exist; see \"sockway endpoint "
				  "list\"",
				  argv[0]);
		goto cleanup;
	}
	out = json_array();
	if (!agent_cfg.json)
		printf("%-31s %-31s %s\n", "ENDPOINT", "BACKEND", "FRACTION");
	for (i = 0; i < p->nr_endpoints; i++) {
		const struct sw_policy_endpoint *ep = &p->endpoints[i];

		if (argc == 1 && strcmp(ep->name, argv[0]))
			continue;
		for (j = 0; j < ep->nr_shadows; j++) {
			sw_format_fraction(ep->shadows[j].fraction, num, sizeof(num));
			if (!agent_cfg.json)
				printf("%-31s %-31s %s\n", ep->name, ep->shadows[j].backend, num);
			json_array_append_new(
				out, json_pack("{s:s, s:s, s:f}", "endpoint", ep->name, "backend",
					       ep->shadows[j].backend, "fraction",
					       ep->shadows[j].fraction / (double)SW_WEIGHT_ONE));
		}
	}
	if (agent_cfg.json)
		err = json_print(out);
	else
		json_decref(out);
cleanup:
	policy_free(p);
	sw_maps_close(&m);
	return err;
}

static const struct cmd shadow_cmds[] = {
	{"set", shadow_set},
	{"list", shadow_list},
	{"help", shadow_help},
	{NULL, NULL},
};

int do_shadow(int argc, char **argv)
{
	return cmd_select("shadow", shadow_cmds, argc, argv, shadow_help, NULL);
}
