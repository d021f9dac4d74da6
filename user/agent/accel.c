// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/* sockway accel { add | del | list | on | off }: the kernel fast path and its kill switch. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
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

/* The verbs that change the fast path, and what each takes. */
enum accel_verb { ACCEL_ADD, ACCEL_DEL, ACCEL_ON, ACCEL_OFF };

struct accel_done {
	enum accel_verb verb;
	const char *path; /* the cgroup of add and del */
};

static void done_plain(const void *data)
{
	const struct accel_done *d = data;

	switch (d->verb) {
	case ACCEL_ADD:
		printf("accelerated cgroup %s\n", d->path);
		break;
	case ACCEL_DEL:
		printf("cgroup %s is no longer accelerated (open connections keep their path)\n",
		       d->path);
		break;
	case ACCEL_ON:
		printf("kernel fast path on\n");
		break;
	case ACCEL_OFF:
		printf("kernel fast path off: plain TCP, nothing detached dropped a connection\n");
		break;
	}
}

static json_t *done_json(const void *data)
{
	const struct accel_done *d = data;

	switch (d->verb) {
	case ACCEL_ADD:
		return json_pack("{s:s}", "added", d->path);
	case ACCEL_DEL:
		return json_pack("{s:s}", "deleted", d->path);
	default:
		return json_pack("{s:b}", "accel", d->verb == ACCEL_ON);
	}
}

static const struct printer done_printer = {done_plain, done_json};

static int cgroup_add(struct sw_maps *m, const struct accel_done *d, struct sw_err *e)
{
	return sw_accel_add(m, d->path, e);
}

static int cgroup_del(struct sw_maps *m, const struct accel_done *d, struct sw_err *e)
{
	return sw_accel_del(m, d->path, e);
}

static int switch_set(struct sw_maps *m, const struct accel_done *d, struct sw_err *e)
{
	return sw_accel_set(m, d->verb == ACCEL_ON, e);
}

/* Runs one verb under the writers' lock: add and del take CGROUP_PATH, on and off nothing. */
static int accel_change(enum accel_verb verb, int argc, char **argv)
{
	static const struct {
		const char *usage;
		int (*fn)(struct sw_maps *m, const struct accel_done *d, struct sw_err *e);
	} verbs[] = {
		[ACCEL_ADD] = {"add CGROUP_PATH", cgroup_add},
		[ACCEL_DEL] = {"del CGROUP_PATH", cgroup_del},
		[ACCEL_ON] = {"on", switch_set},
		[ACCEL_OFF] = {"off", switch_set},
	};
	struct accel_done d = {.verb = verb};
	bool has_path = verb == ACCEL_ADD || verb == ACCEL_DEL;
	struct sw_err e = {};
	struct sw_maps m;
	int err;

	if (argc != has_path)
		return usage_error("usage: sockway accel %s", verbs[verb].usage);
	d.path = has_path ? argv[0] : NULL;
	err = agent_open(&m, true);
	if (err)
		return err;
	err = verbs[verb].fn(&m, &d, &e);
	if (err)
		agent_fail(&e, err);
	sw_maps_close(&m);
	return err ? err : agent_print(&done_printer, &d);
}

static int accel_add(int argc, char **argv)
{
	return accel_change(ACCEL_ADD, argc, argv);
}

static int accel_del(int argc, char **argv)
{
	return accel_change(ACCEL_DEL, argc, argv);
}

static int accel_on(int argc, char **argv)
{
	return accel_change(ACCEL_ON, argc, argv);
}

static int accel_off(int argc, char **argv)
{
	return accel_change(ACCEL_OFF, argc, argv);
}

/* The switch, the accelerated cgroups and what the kernel path did. */
struct accel_view {
	bool on;
	struct sw_accel_stats st;
	__u32 nr, max;
	struct {
		__u64 id;
		char path[sizeof(((struct sw_accel_cgroup *)0)->path)];
	} cgroups[]; /* max: as many as accel_cgroups holds */
};

static void list_plain(const void *data)
{
	const struct accel_view *v = data;
	const struct sw_accel_stats *st = &v->st;
	__u32 i;

	printf("kernel fast path: %s\n", v->on ? "on" : "off (kill switch)");
	for (i = 0; i < v->nr; i++)
		printf("  %s\n", v->cgroups[i].path);
	printf("sockets tracked %llu, left out (no local tracked peer) %llu; sends redirected %llu "
	       "(%llu bytes), passed to TCP "
	       "%llu (%llu bytes), of which held back from a local peer %llu (%llu bytes); "
	       "response bytes spliced backend to client %llu\n",
	       (unsigned long long)st->sockets, (unsigned long long)st->untracked,
	       (unsigned long long)st->redirected, (unsigned long long)st->redirected_bytes,
	       (unsigned long long)st->passed, (unsigned long long)st->passed_bytes,
	       (unsigned long long)st->held, (unsigned long long)st->held_bytes,
	       (unsigned long long)st->spliced_bytes);
	printf("requests routed by the kernel %llu (%llu bytes), answered whole %llu; left to "
	       "sockwayd:",
	       (unsigned long long)st->krouted, (unsigned long long)st->krouted_bytes,
	       (unsigned long long)st->kanswered);
	for (i = 0; i < SW_KM_MAX; i++)
		printf(" %s %llu", sw_kmiss_name(i), (unsigned long long)st->kmiss[i]);
	printf("\n");
}

static json_t *list_json(const void *data)
{
	const struct accel_view *v = data;
	const struct sw_accel_stats *st = &v->st;
	json_t *cgroups = json_array(), *out;
	char name[32];
	__u32 i;

	for (i = 0; i < v->nr; i++)
		json_array_append_new(cgroups, json_pack("{s:s, s:I}", "path", v->cgroups[i].path,
							 "id", (json_int_t)v->cgroups[i].id));
	out = json_pack(
		"{s:b, s:o, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}}", "on",
		v->on, "cgroups", cgroups, "stats", "sockets", (json_int_t)st->sockets,
		"redirected", (json_int_t)st->redirected, "redirected_bytes",
		(json_int_t)st->redirected_bytes, "passed", (json_int_t)st->passed, "passed_bytes",
		(json_int_t)st->passed_bytes, "held", (json_int_t)st->held, "held_bytes",
		(json_int_t)st->held_bytes, "spliced", (json_int_t)st->spliced, "spliced_bytes",
		(json_int_t)st->spliced_bytes, "krouted", (json_int_t)st->krouted, "krouted_bytes",
		(json_int_t)st->krouted_bytes, "kanswered", (json_int_t)st->kanswered);
	if (out)
		json_object_set_new(json_object_get(out, "stats"), "untracked",
				    json_integer((json_int_t)st->untracked));
	/* Flat, like the rest of stats: kmiss_order, kmiss_head... */
	for (i = 0; out && i < SW_KM_MAX; i++) {
		snprintf(name, sizeof(name), "kmiss_%s", sw_kmiss_name(i));
		json_object_set_new(json_object_get(out, "stats"), name,
				    json_integer((json_int_t)st->kmiss[i]));
	}
	return out;
}

static const struct printer list_printer = {list_plain, list_json};

static void accel_read(struct sw_maps *m, struct accel_view *v)
{
	int fd = bpf_map__fd(m->skel->maps.accel_cgroups);
	struct sw_accel_cgroup val;
	__u64 key, *prev = NULL;

	v->on = sw_accel_is_on(m);
	while (v->nr < v->max && !bpf_map_get_next_key(fd, prev, &key)) {
		prev = &key;
		if (bpf_map_lookup_elem(fd, &key, &val))
			continue;
		v->cgroups[v->nr].id = key;
		memcpy(v->cgroups[v->nr].path, val.path, sizeof(val.path));
		v->cgroups[v->nr++].path[sizeof(val.path) - 1] = '\0';
	}
	if (sw_accel_stats_read(m, &v->st))
		memset(&v->st, 0, sizeof(v->st));
}

static int accel_list(int argc, char **argv)
{
	struct accel_view *v;
	struct sw_maps m;
	__u32 max;
	int err;

	(void)argv;
	if (argc)
		return usage_error("usage: sockway accel list");
	err = agent_open(&m, false);
	if (err)
		return err;
	max = bpf_map__max_entries(m.skel->maps.accel_cgroups);
	v = calloc(1, sizeof(*v) + max * sizeof(v->cgroups[0]));
	if (v) {
		v->max = max;
		accel_read(&m, v);
		err = agent_print(&list_printer, v);
	} else {
		err = agent_error(-ENOMEM, "out of memory");
	}
	free(v);
	sw_maps_close(&m);
	return err;
}

static const struct cmd accel_cmds[] = {
	{"add", accel_add}, {"del", accel_del},	  {"list", accel_list}, {"on", accel_on},
	{"off", accel_off}, {"help", accel_help}, {NULL, NULL},
};

int do_accel(int argc, char **argv)
{
	return cmd_select("accel", accel_cmds, argc, argv, accel_help, NULL);
}
