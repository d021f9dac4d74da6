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

static void set_plain(const void *data)
{
	const struct shadow_edit *s = data;
	char num[32];

	if (s->fraction)
		printf("shadowing a fraction %s of %s's requests to %s\n",
		       sw_format_fraction(s->fraction, num, sizeof(num)), s->endpoint, s->backend);
	else
		printf("stopped shadowing %s to %s\n", s->endpoint, s->backend);
}

static json_t *set_json(const void *data)
{
	const struct shadow_edit *s = data;

	return json_pack("{s:s, s:s, s:o}", "endpoint", s->endpoint, "backend", s->backend,
			 "fraction", json_fraction(s->fraction));
}

static const struct printer set_printer = {set_plain, set_json};

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
	return err ? err : agent_print(&set_printer, &s);
}

/* The shadows of every endpoint, or of one. */
struct shadow_view {
	const struct sw_policy *p;
	const char *endpoint; /* NULL: all */
};

static void list_plain(const void *data)
{
	const struct shadow_view *v = data;
	char num[32];
	__u32 i, j;

	printf("%-31s %-31s %s\n", "ENDPOINT", "BACKEND", "FRACTION");
	for (i = 0; i < v->p->nr_endpoints; i++) {
		const struct sw_policy_endpoint *ep = &v->p->endpoints[i];

		if (v->endpoint && strcmp(ep->name, v->endpoint))
			continue;
		for (j = 0; j < ep->nr_shadows; j++)
			printf("%-31s %-31s %s\n", ep->name, ep->shadows[j].backend,
			       sw_format_fraction(ep->shadows[j].fraction, num, sizeof(num)));
	}
}

static json_t *list_json(const void *data)
{
	const struct shadow_view *v = data;
	json_t *out = json_array();
	__u32 i, j;

	for (i = 0; i < v->p->nr_endpoints; i++) {
		const struct sw_policy_endpoint *ep = &v->p->endpoints[i];

		if (v->endpoint && strcmp(ep->name, v->endpoint))
			continue;
		for (j = 0; j < ep->nr_shadows; j++)
			json_array_append_new(
				out, json_pack("{s:s, s:s, s:o}", "endpoint", ep->name, "backend",
					       ep->shadows[j].backend, "fraction",
					       json_fraction(ep->shadows[j].fraction)));
	}
	return out;
}

static const struct printer list_printer = {list_plain, list_json};

static int shadow_list(int argc, char **argv)
{
	struct shadow_view v = {.endpoint = argc == 1 ? argv[0] : NULL};
	struct sw_policy *p = NULL;
	struct sw_maps m;
	int err;

	if (argc > 1)
		return usage_error("usage: sockway shadow list [ENDPOINT]");
	err = agent_open_policy(&m, &p);
	if (err)
		return err;
	v.p = p;
	if (v.endpoint && !policy_find_endpoint(p, v.endpoint))
		err = agent_error(-ENOENT,
				  "endpoint \"%s\" does not exist; see \"sockway endpoint list\"",
				  v.endpoint);
	else
		err = agent_print(&list_printer, &v);
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
