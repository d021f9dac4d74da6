// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * sockway: the agent. It turns the operator's commands into the pinned maps and exits;
 * nothing of it runs between commands.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "main.h"

#define SOCKWAY_VERSION "0.1.0"

struct agent_cfg agent_cfg;

bool is_prefix(const char *arg, const char *word)
{
	return arg[0] && !strncmp(arg, word, strlen(arg));
}

int cmd_select(const char *object, const struct cmd *cmds, int argc, char **argv,
	       int (*help)(int argc, char **argv), const char *default_verb)
{
	const struct cmd *found = NULL;
	const char *verb;
	int i;

	if (argc < 1) {
		if (!default_verb)
			return help(argc, argv);
		verb = default_verb;
	} else {
		verb = argv[0];
	}
	for (i = 0; cmds[i].name; i++) {
		if (!strcmp(verb, cmds[i].name)) {
			found = &cmds[i];
			break;
		}
		if (!is_prefix(verb, cmds[i].name))
			continue;
		if (found)
			return usage_error(
				"\"%s\" is ambiguous (%s or %s); try \"sockway %s%shelp\"", verb,
				found->name, cmds[i].name, object, object[0] ? " " : "");
		found = &cmds[i];
	}
	if (!found)
		return usage_error("unknown command \"%s\"; try \"sockway %s%shelp\"", verb, object,
				   object[0] ? " " : "");
	return found->func(argc > 0 ? argc - 1 : 0, argc > 0 ? argv + 1 : argv);
}

int agent_open(struct sw_maps *m, bool lock)
{
	struct sw_err e = {};
	int err;

	if (geteuid() != 0)
		return agent_error(-EPERM, "must run as root: the maps under %s are root-only",
				   sw_pin_root());
	err = sw_maps_open(m, &e);
	if (err)
		return agent_fail(&e, err);
	if (lock) {
		err = sw_maps_lock(m, &e);
		if (err) {
			sw_maps_close(m);
			return agent_fail(&e, err);
		}
	}
	return 0;
}

int agent_open_policy(struct sw_maps *m, struct sw_policy **p)
{
	struct sw_err e = {};
	int err;

	err = agent_open(m, false);
	if (err)
		return err;
	*p = policy_alloc();
	if (!*p) {
		sw_maps_close(m);
		return agent_error(-ENOMEM, "out of memory");
	}
	err = policy_read(m, *p, &e);
	if (err) {
		policy_free(*p);
		*p = NULL;
		sw_maps_close(m);
		return agent_fail(&e, err);
	}
	return 0;
}

int agent_print_policy(const struct printer *printer)
{
	struct sw_policy *p = NULL;
	struct sw_maps m;
	int err;

	err = agent_open_policy(&m, &p);
	if (err)
		return err;
	err = agent_print(printer, p);
	policy_free(p);
	sw_maps_close(&m);
	return err;
}

int agent_edit(policy_edit_fn edit, void *ctx)
{
	struct sw_policy *old = NULL, *new = NULL;
	struct sw_err e = {};
	struct sw_maps m;
	int err;

	err = agent_open(&m, true);
	if (err)
		return err;
	old = policy_alloc();
	new = policy_alloc();
	if (!old || !new) {
		err = agent_error(-ENOMEM, "out of memory");
		goto cleanup;
	}
	err = policy_read(&m, old, &e);
	if (err)
		goto fail;
	memcpy(new, old, sizeof(*new));
	err = edit(new, ctx, &e);
	if (err)
		goto fail;
	err = policy_validate(new, &e);
	if (err)
		goto fail;
	err = policy_commit(&m, old, new, &e);
	if (err)
		goto fail;
	pr_info("committed generation %llu", (unsigned long long)sw_generation(&m));
	goto cleanup;
fail:
	agent_fail(&e, err);
cleanup:
	policy_free(new);
	policy_free(old);
	sw_maps_close(&m);
	return err;
}

static int do_help(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr,
		"Usage: sockway [OPTIONS] OBJECT { COMMAND | help }\n"
		"       sockway load | unload | status\n"
		"       sockway backend  { create | delete | list | help }\n"
		"       sockway endpoint { create | delete | list | help }\n"
		"       sockway traffic  { set | show | help }\n"
		"       sockway shadow   { set | list | help }\n"
		"       sockway stats    [ENDPOINT] [--reset]\n"
		"       sockway top      [-n COUNT] [-d SECONDS] [ENDPOINT]\n"
		"       sockway apply    -f FILE|- [--dry-run] [--watch]\n"
		"       sockway export\n"
		"       sockway explain  PATH [--host HOST] [--method M] [--key KEY ...]\n"
		"       sockway accel    { add | del | list | on | off | help }\n"
		"       sockway guard    { attach | detach | deny | allow | limit | stats | on | "
		"off\n"
		"                          | help }\n"
		"\n"
		"OPTIONS := { -j|--json | -v|--verbose | -h|--help | -V|--version }\n"
		"Commands and objects may be abbreviated to a unique prefix.\n"
		"State lives in pinned BPF maps under %s; every command needs root.\n"
		"Exit codes: 0 done, 1 refused (nothing changed), 2 usage error.\n",
		sw_pin_root());
	return 0;
}

static const struct cmd top_cmds[] = {
	{"backend", do_backend}, {"endpoint", do_endpoint},
	{"traffic", do_traffic}, {"shadow", do_shadow},
	{"stats", do_stats},	 {"apply", do_apply},
	{"export", do_export},	 {"explain", do_explain},
	{"load", do_load},	 {"unload", do_unload},
	{"accel", do_accel},	 {"status", do_status},
	{"guard", do_guard},	 {"top", do_top},
	{"help", do_help},	 {NULL, NULL},
};

static void version_plain(const void *data)
{
	(void)data;
	printf("sockway %s\n", SOCKWAY_VERSION);
}

static json_t *version_json(const void *data)
{
	(void)data;
	return json_pack("{s:s}", "version", SOCKWAY_VERSION);
}

static const struct printer version_printer = {version_plain, version_json};

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	bool version = false;
	int opt, err;

	/* '+': options end at the object, so verbs keep their own options. */
	while ((opt = getopt_long(argc, argv, "+jvhV", opts, NULL)) != -1) {
		switch (opt) {
		case 'j':
			agent_cfg.json = true;
			break;
		case 'v':
			agent_cfg.verbose++;
			break;
		case 'h':
			do_help(0, NULL);
			return 0;
		case 'V':
			version = true;
			break;
		default:
			do_help(0, NULL);
			return 2;
		}
	}
	/* After the loop, so that -V prints JSON whether -j comes before it or after. */
	if (version)
		return agent_print(&version_printer, NULL) ? 1 : 0;
	log_init("sockway", agent_cfg.verbose >= 2 ? SW_LOG_DEBUG
			    : agent_cfg.verbose	   ? SW_LOG_INFO
						   : SW_LOG_WARN);
	if (optind >= argc) {
		do_help(0, NULL);
		return 2;
	}
	err = cmd_select("", top_cmds, argc - optind, argv + optind, do_help, NULL);
	if (err == -EUSAGE)
		return 2;
	return err ? 1 : 0;
}
