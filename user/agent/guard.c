// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * sockway guard: the XDP guard on the interfaces that carry client traffic (attach,
 * detach), its deny and allow prefixes, its rate limit of new connections per source, its
 * kill switch and its counters.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guard.h"
#include "main.h"

static int guard_help(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr,
		"Usage: sockway guard attach IFACE [--mode native|generic]\n"
		"       sockway guard detach IFACE\n"
		"       sockway guard deny  { add | del } CIDR\n"
		"       sockway guard deny  list\n"
		"       sockway guard allow { add | del } CIDR\n"
		"       sockway guard allow list\n"
		"       sockway guard limit RATE [--burst N]\n"
		"       sockway guard stats\n"
		"       sockway guard on | off\n"
		"\n"
		"An XDP program on the interfaces that carry client traffic drops, before the\n"
		"stack sees them, every packet from a denied prefix, and new TCP connections\n"
		"(SYN without ACK) to sockwayd's listening ports beyond RATE per second from one\n"
		"source address (BURST at once, RATE by default; 0 turns the limit off), unless\n"
		"the source is in an allowed prefix. Everything else passes untouched. CIDR is an\n"
		"IPv4 or IPv6 address or prefix (10.0.0.0/8, 2001:db8::/32). attach picks native\n"
		"mode where the driver has it, generic otherwise. \"off\" is the kill switch:\n"
		"every packet passes uncounted until \"on\".\n");
	return 0;
}

/* --- attach, detach ----------------------------------------------------------------------- */

struct attach_done {
	const char *ifname;
	bool attach, already;
	enum sw_guard_mode mode;
};

static void attach_plain(const void *data)
{
	const struct attach_done *d = data;

	if (!d->attach)
		printf("guard detached from %s\n", d->ifname);
	else
		printf("guard %s %s in %s mode\n",
		       d->already ? "already attached to" : "attached to", d->ifname,
		       sw_guard_mode_name(d->mode));
}

static json_t *attach_json(const void *data)
{
	const struct attach_done *d = data;

	if (!d->attach)
		return json_pack("{s:s}", "detached", d->ifname);
	return json_pack("{s:s, s:s, s:b}", "attached", d->ifname, "mode",
			 sw_guard_mode_name(d->mode), "already", d->already);
}

static const struct printer attach_printer = {attach_plain, attach_json};

static int guard_attach(int argc, char **argv)
{
	struct attach_done d = {.attach = true, .mode = SW_GUARD_AUTO};
	struct sw_err e = {};
	struct sw_maps m;
	int i, err;

	for (i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--mode") && i + 1 < argc) {
			i++;
			if (!strcmp(argv[i], "native"))
				d.mode = SW_GUARD_NATIVE;
			else if (!strcmp(argv[i], "generic"))
				d.mode = SW_GUARD_GENERIC;
			else
				return usage_error("--mode is native or generic, not \"%s\"",
						   argv[i]);
		} else if (argv[i][0] == '-' || d.ifname) {
			return usage_error("usage: sockway guard attach IFACE "
					   "[--mode native|generic]");
		} else {
			d.ifname = argv[i];
		}
	}
	if (!d.ifname)
		return usage_error("usage: sockway guard attach IFACE [--mode native|generic]");
	err = agent_open(&m, true);
	if (err)
		return err;
	err = sw_guard_attach(d.ifname, &d.mode, &d.already, &e);
	sw_maps_close(&m);
	if (err)
		return agent_fail(&e, err);
	return agent_print(&attach_printer, &d);
}

static int guard_detach(int argc, char **argv)
{
	struct attach_done d = {.attach = false};
	struct sw_err e = {};
	struct sw_maps m;
	int err;

	if (argc != 1 || argv[0][0] == '-')
		return usage_error("usage: sockway guard detach IFACE");
	d.ifname = argv[0];
	err = agent_open(&m, true);
	if (err)
		return err;
	err = sw_guard_detach(d.ifname, &e);
	sw_maps_close(&m);
	if (err)
		return agent_fail(&e, err);
	return agent_print(&attach_printer, &d);
}

/* --- deny, allow ------------------------------------------------------------------------- */

struct prefix_done {
	enum sw_guard_list list;
	bool add, existed;
	char name[64];
};

static const char *list_word(enum sw_guard_list l)
{
	return l == SW_GUARD_DENY ? "deny" : "allow";
}

static void prefix_plain(const void *data)
{
	const struct prefix_done *d = data;

	if (d->add)
		printf("%s %s the %s list\n", d->name, d->existed ? "is already in" : "added to",
		       list_word(d->list));
	else
		printf("%s removed from the %s list\n", d->name, list_word(d->list));
}

static json_t *prefix_json(const void *data)
{
	const struct prefix_done *d = data;

	return json_pack("{s:s, s:s, s:b}", d->add ? "added" : "deleted", d->name, "list",
			 list_word(d->list), "already", d->existed);
}

static const struct printer prefix_printer = {prefix_plain, prefix_json};

struct list_view {
	enum sw_guard_list list;
	int n;
	struct sw_guard_entry e[];
};

static void list_plain(const void *data)
{
	const struct list_view *v = data;
	char name[64];
	int i;

	if (!v->n)
		printf("the %s list is empty\n", list_word(v->list));
	/* An allowed prefix counts the SYNs it exempted from the limit. */
	for (i = 0; i < v->n; i++) {
		sw_guard_prefix_format(&v->e[i].prefix, name, sizeof(name));
		if (v->list == SW_GUARD_DENY)
			printf("%-43s packets %llu bytes %llu\n", name,
			       (unsigned long long)v->e[i].hits.packets,
			       (unsigned long long)v->e[i].hits.bytes);
		else
			printf("%-43s SYNs %llu\n", name, (unsigned long long)v->e[i].hits.packets);
	}
}

static json_t *entries_json(const struct sw_guard_entry *e, int n)
{
	json_t *out = json_array();
	char name[64];
	int i;

	for (i = 0; i < n; i++) {
		sw_guard_prefix_format(&e[i].prefix, name, sizeof(name));
		json_array_append_new(out, json_pack("{s:s, s:I, s:I}", "prefix", name, "packets",
						     (json_int_t)e[i].hits.packets, "bytes",
						     (json_int_t)e[i].hits.bytes));
	}
	return out;
}

static json_t *list_json(const void *data)
{
	const struct list_view *v = data;

	return entries_json(v->e, v->n);
}

static const struct printer list_printer = {list_plain, list_json};

static struct list_view *list_read(struct sw_maps *m, enum sw_guard_list l)
{
	int max = l == SW_GUARD_DENY ? SW_GUARD_DENY_MAX : SW_GUARD_ALLOW_MAX;
	struct list_view *v = calloc(1, sizeof(*v) + (size_t)max * sizeof(v->e[0]));

	if (!v)
		return NULL;
	v->list = l;
	v->n = sw_guard_prefix_list(m, l, v->e, max);
	if (v->n < 0)
		v->n = 0;
	return v;
}

static int prefix_cmd(enum sw_guard_list l, int argc, char **argv)
{
	struct prefix_done d = {.list = l};
	struct sw_guard_prefix p;
	struct list_view *v;
	struct sw_err e = {};
	struct sw_maps m;
	int err;

	if (argc == 1 && !strcmp(argv[0], "list")) {
		err = agent_open(&m, false);
		if (err)
			return err;
		v = list_read(&m, l);
		err = v ? agent_print(&list_printer, v) : agent_error(-ENOMEM, "out of memory");
		free(v);
		sw_maps_close(&m);
		return err;
	}
	if (argc != 2 || (strcmp(argv[0], "add") && strcmp(argv[0], "del")))
		return usage_error("usage: sockway guard %s { add | del } CIDR | list",
				   list_word(l));
	d.add = !strcmp(argv[0], "add");
	err = sw_guard_prefix_parse(argv[1], &p, &e);
	if (err)
		return agent_fail(&e, err);
	sw_guard_prefix_format(&p, d.name, sizeof(d.name));
	err = agent_open(&m, true);
	if (err)
		return err;
	err = d.add ? sw_guard_prefix_add(&m, l, &p, &d.existed, &e)
		    : sw_guard_prefix_del(&m, l, &p, &e);
	sw_maps_close(&m);
	if (err)
		return agent_fail(&e, err);
	return agent_print(&prefix_printer, &d);
}

static int guard_deny(int argc, char **argv)
{
	return prefix_cmd(SW_GUARD_DENY, argc, argv);
}

static int guard_allow(int argc, char **argv)
{
	return prefix_cmd(SW_GUARD_ALLOW, argc, argv);
}

/* --- limit, on, off ---------------------------------------------------------------------- */

/* A whole number of at most max, digits only. */
static int parse_count(const char *what, const char *s, __u32 max, __u32 *out)
{
	unsigned long long v = 0;
	const char *c;

	if (!*s)
		return usage_error("%s is a whole number, not \"\"", what);
	for (c = s; *c; c++) {
		if (*c < '0' || *c > '9')
			return usage_error("%s is a whole number, not \"%s\"", what, s);
		v = v * 10 + (unsigned)(*c - '0');
		if (v > max)
			return agent_error(-EINVAL, "%s %s is over the limit of %u", what, s, max);
	}
	*out = (__u32)v;
	return 0;
}

struct cfg_done {
	bool is_limit;
	struct sw_guard_cfg cfg;
};

static void cfg_plain(const void *data)
{
	const struct cfg_done *d = data;

	if (!d->is_limit)
		printf("guard %s\n", d->cfg.off ? "off: every packet passes (kill switch)" : "on");
	else if (!d->cfg.rate)
		printf("no limit on new connections\n");
	else
		printf("new connections limited to %u per second per source, %u at once\n",
		       d->cfg.rate, d->cfg.burst);
}

static json_t *cfg_json(const void *data)
{
	const struct cfg_done *d = data;

	if (!d->is_limit)
		return json_pack("{s:b}", "guard", !d->cfg.off);
	return json_pack("{s:i, s:i}", "rate", (int)d->cfg.rate, "burst", (int)d->cfg.burst);
}

static const struct printer cfg_printer = {cfg_plain, cfg_json};

static int guard_limit(int argc, char **argv)
{
	struct cfg_done d = {.is_limit = true};
	__u32 rate, burst = 0;
	struct sw_err e = {};
	struct sw_maps m;
	int err;

	if (argc != 1 && !(argc == 3 && !strcmp(argv[1], "--burst")))
		return usage_error("usage: sockway guard limit RATE [--burst N]");
	err = parse_count("RATE", argv[0], SW_GUARD_RATE_MAX, &rate);
	if (!err && argc == 3) {
		err = parse_count("--burst", argv[2], SW_GUARD_BURST_MAX, &burst);
		if (!err && !burst)
			err = usage_error("--burst is at least 1");
	}
	if (err)
		return err;
	err = agent_open(&m, true);
	if (err)
		return err;
	err = sw_guard_limit_set(&m, rate, burst, &e);
	if (!err)
		sw_guard_cfg_read(&m, &d.cfg);
	sw_maps_close(&m);
	if (err)
		return agent_fail(&e, err);
	return agent_print(&cfg_printer, &d);
}

static int guard_switch(bool on, int argc, char **argv)
{
	struct cfg_done d = {.is_limit = false};
	struct sw_err e = {};
	struct sw_maps m;
	int err;

	(void)argv;
	if (argc)
		return usage_error("usage: sockway guard %s", on ? "on" : "off");
	err = agent_open(&m, true);
	if (err)
		return err;
	err = sw_guard_set(&m, on, &e);
	if (!err)
		sw_guard_cfg_read(&m, &d.cfg);
	sw_maps_close(&m);
	if (err)
		return agent_fail(&e, err);
	return agent_print(&cfg_printer, &d);
}

static int guard_on(int argc, char **argv)
{
	return guard_switch(true, argc, argv);
}

static int guard_off(int argc, char **argv)
{
	return guard_switch(false, argc, argv);
}

/* --- stats -------------------------------------------------------------------------------- */

#define STATS_IFACES 64

struct stats_view {
	struct sw_guard_cfg cfg;
	struct sw_guard_stats st;
	int nr_ifaces, nr_ports;
	struct sw_guard_iface ifaces[STATS_IFACES];
	__u16 ports[SW_GUARD_PORTS];
	struct list_view *deny, *allow;
};

static void stats_plain(const void *data)
{
	const struct stats_view *v = data;
	char name[64];
	int i;

	printf("guard:      %s\n", v->cfg.off ? "off (kill switch)" : "on");
	printf("interfaces:");
	for (i = 0; i < v->nr_ifaces; i++) {
		if (v->ifaces[i].ifindex)
			printf(" %s (%s, prog %u)", v->ifaces[i].name,
			       sw_guard_mode_name(v->ifaces[i].mode), v->ifaces[i].prog_id);
		else
			printf(" %s (interface gone)", v->ifaces[i].name);
	}
	printf("%s\n", v->nr_ifaces ? "" : " none");
	if (v->cfg.rate)
		printf("limit:      %u new connections per second per source, %u at once\n",
		       v->cfg.rate, v->cfg.burst);
	else
		printf("limit:      off\n");
	printf("ports:     ");
	for (i = 0; i < v->nr_ports; i++)
		printf(" %u", v->ports[i]);
	printf("%s\n", v->nr_ports ? "" : " none (sockwayd adds its listening ports)");
	printf("packets:   ");
	for (i = 0; i < SW_GV_MAX; i++)
		printf(" %s %llu (%llu bytes)%s", sw_guard_verdict_name((unsigned)i),
		       (unsigned long long)v->st.v[i].packets, (unsigned long long)v->st.v[i].bytes,
		       i + 1 < SW_GV_MAX ? "," : "\n");
	printf("deny:       %d prefix%s\n", v->deny->n, v->deny->n == 1 ? "" : "es");
	for (i = 0; i < v->deny->n; i++) {
		sw_guard_prefix_format(&v->deny->e[i].prefix, name, sizeof(name));
		printf("  %-41s packets %llu bytes %llu\n", name,
		       (unsigned long long)v->deny->e[i].hits.packets,
		       (unsigned long long)v->deny->e[i].hits.bytes);
	}
	printf("allow:      %d prefix%s\n", v->allow->n, v->allow->n == 1 ? "" : "es");
	for (i = 0; i < v->allow->n; i++) {
		sw_guard_prefix_format(&v->allow->e[i].prefix, name, sizeof(name));
		printf("  %-41s SYNs %llu\n", name,
		       (unsigned long long)v->allow->e[i].hits.packets);
	}
}

json_t *guard_counters_json(const struct sw_guard_stats *st)
{
	json_t *counts = json_object();
	unsigned i;

	for (i = 0; counts && i < SW_GV_MAX; i++)
		json_object_set_new(counts, sw_guard_verdict_name(i),
				    json_pack("{s:I, s:I}", "packets", (json_int_t)st->v[i].packets,
					      "bytes", (json_int_t)st->v[i].bytes));
	return counts;
}

static json_t *stats_json(const void *data)
{
	const struct stats_view *v = data;
	json_t *ifaces = json_array(), *ports = json_array();
	int i;

	for (i = 0; i < v->nr_ifaces; i++)
		json_array_append_new(ifaces,
				      json_pack("{s:s, s:b, s:s, s:i}", "name", v->ifaces[i].name,
						"present", v->ifaces[i].ifindex != 0, "mode",
						sw_guard_mode_name(v->ifaces[i].mode), "prog_id",
						(int)v->ifaces[i].prog_id));
	for (i = 0; i < v->nr_ports; i++)
		json_array_append_new(ports, json_integer(v->ports[i]));
	return json_pack("{s:b, s:o, s:{s:i, s:i}, s:o, s:o, s:o, s:o}", "on", !v->cfg.off,
			 "interfaces", ifaces, "limit", "rate", (int)v->cfg.rate, "burst",
			 (int)v->cfg.burst, "ports", ports, "counters", guard_counters_json(&v->st),
			 "deny", entries_json(v->deny->e, v->deny->n), "allow",
			 entries_json(v->allow->e, v->allow->n));
}

static const struct printer stats_printer = {stats_plain, stats_json};

static int guard_stats(int argc, char **argv)
{
	struct stats_view *v;
	struct sw_maps m;
	int err;

	(void)argv;
	if (argc)
		return usage_error("usage: sockway guard stats");
	err = agent_open(&m, false);
	if (err)
		return err;
	v = calloc(1, sizeof(*v));
	if (v) {
		sw_guard_cfg_read(&m, &v->cfg);
		sw_guard_stats_read(&m, &v->st);
		v->nr_ifaces = sw_guard_ifaces(v->ifaces, STATS_IFACES);
		if (v->nr_ifaces < 0)
			v->nr_ifaces = 0;
		v->nr_ports = sw_guard_ports(&m, v->ports, SW_GUARD_PORTS);
		v->deny = list_read(&m, SW_GUARD_DENY);
		v->allow = list_read(&m, SW_GUARD_ALLOW);
	}
	if (v && v->deny && v->allow)
		err = agent_print(&stats_printer, v);
	else
		err = agent_error(-ENOMEM, "out of memory");
	if (v) {
		free(v->deny);
		free(v->allow);
	}
	free(v);
	sw_maps_close(&m);
	return err;
}

static const struct cmd guard_cmds[] = {
	{"attach", guard_attach}, {"detach", guard_detach},
	{"deny", guard_deny},	  {"allow", guard_allow},
	{"limit", guard_limit},	  {"stats", guard_stats},
	{"on", guard_on},	  {"off", guard_off},
	{"help", guard_help},	  {NULL, NULL},
};

int do_guard(int argc, char **argv)
{
	return cmd_select("guard", guard_cmds, argc, argv, guard_help, NULL);
}
