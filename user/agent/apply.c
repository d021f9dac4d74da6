// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/* sockway apply -f FILE|- [--dry-run], sockway export: the whole policy as one document. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compile.h"
#include "policy_json.h"
#include "main.h"

/* Policy files are small; a megabyte-sized one is a mistake, not a policy. */
#define POLICY_FILE_MAX (16 << 20)

static int apply_help(void)
{
	fprintf(stderr,
		"Usage: sockway apply -f FILE|- [--dry-run]\n"
		"       sockway export\n"
		"\n"
		"apply makes the maps hold exactly the policy in FILE (- for stdin): backends\n"
		"and endpoints missing from it are deleted. The document is validated whole and\n"
		"committed as one generation, or refused with nothing changed. --dry-run prints\n"
		"the changes and, per endpoint, the fraction of shard keys that would move.\n"
		"export prints the live policy; \"sockway export | sockway apply -f -\" is a "
		"no-op.\n");
	return 0;
}

static char *read_all(FILE *f, size_t *len)
{
	size_t cap = 65536, n = 0, got;
	char *buf = malloc(cap + 1), *tmp;

	while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
		n += got;
		if (n < cap)
			continue;
		if (cap >= POLICY_FILE_MAX) {
			free(buf);
			errno = EFBIG;
			return NULL;
		}
		cap *= 2;
		tmp = realloc(buf, cap + 1);
		if (!tmp)
			free(buf);
		buf = tmp;
	}
	if (buf && ferror(f)) {
		free(buf);
		return NULL;
	}
	if (buf) {
		buf[n] = '\0';
		*len = n;
	}
	return buf;
}

static void weights_str(const struct sw_policy_endpoint *ep, char *buf, size_t len)
{
	size_t off = 0;
	char num[32];
	__u32 i;

	buf[0] = '\0';
	for (i = 0; i < ep->nr_weights && off < len; i++)
		off += snprintf(buf + off, len - off, "%s%s=%s", i ? " " : "",
				ep->weights[i].backend,
				sw_format_fraction(ep->weights[i].weight, num, sizeof(num)));
}

/*
 * Prints what changes from old to new, and for endpoints whose weights change the share of
 * shard keys that move (the new table compiled here against the live one). Counts changes.
 */
static int policy_diff(struct sw_maps *m, const struct sw_policy *old, const struct sw_policy *new,
		       json_t *changes, struct sw_err *e)
{
	char a[SW_MAX_SPLIT * 48], b[SW_MAX_SPLIT * 48];
	struct sw_slot_table *live = NULL;
	__u8 *table = NULL;
	__u32 i, id, moved;
	int err = 0;

	live = malloc(sizeof(*live));
	table = malloc(SW_SLOTS);
	if (!live || !table) {
		err = sw_errorf(e, -ENOMEM, "out of memory");
		goto cleanup;
	}
	for (i = 0; i < old->nr_backends; i++)
		if (!policy_find_backend(new, old->backends[i].name))
			json_array_append_new(changes, json_pack("{s:s, s:s, s:s}", "op", "delete",
								 "backend", old->backends[i].name,
								 "text", ""));
	for (i = 0; i < new->nr_backends; i++) {
		const struct sw_policy_backend *nb = &new->backends[i];
		const struct sw_policy_backend *ob =
			policy_find_backend(old, nb->name);

		if (!ob)
			json_array_append_new(changes, json_pack("{s:s, s:s, s:s}", "op", "create",
								 "backend", nb->name, "text", ""));
		else if (ob->nr_replicas != nb->nr_replicas ||
			 memcmp(ob->replicas, nb->replicas,
				nb->nr_replicas * sizeof(nb->replicas[0])))
			json_array_append_new(changes,
					      json_pack("{s:s, s:s, s:s}", "op", "change",
							"backend", nb->name, "text", "replicas"));
	}
	for (i = 0; i < old->nr_endpoints; i++)
		if (!policy_find_endpoint(new, old->endpoints[i].name))
			json_array_append_new(changes, json_pack("{s:s, s:s, s:s}", "op", "delete",
								 "endpoint", old->endpoints[i].name,
								 "text", ""));
	for (i = 0; i < new->nr_endpoints; i++) {
		const struct sw_policy_endpoint *ne = &new->endpoints[i];
		const struct sw_policy_endpoint *oe =
			policy_find_endpoint(old, ne->name);
		char text[2 * sizeof(a) + 64];
		json_t *change;

		weights_str(ne, b, sizeof(b));
		if (!oe) {
			snprintf(text, sizeof(text), "route %s%s traffic %s", ne->host, ne->route,
				 b);
			json_array_append_new(changes,
					      json_pack("{s:s, s:s, s:s}", "op", "create",
							"endpoint", ne->name, "text", text));
			continue;
		}
		weights_str(oe, a, sizeof(a));
		change = json_pack("{s:s, s:s}", "op", "change", "endpoint", ne->name);
		text[0] = '\0';
		if (strcmp(oe->route, ne->route) || strcmp(oe->host, ne->host) ||
		    oe->methods != ne->methods || strcmp(oe->shard_header, ne->shard_header))
			snprintf(text, sizeof(text), "route %s%s -> %s%s; ", oe->host, oe->route,
				 ne->host, ne->route);
		if (strcmp(a, b)) {
			if (sw_endpoint_id(m, ne->name, &id) ||
			    sw_endpoint_read(m, id, NULL, live)) {
				err = sw_errorf(e, -ENOENT, "cannot read endpoint \"%s\"",
						ne->name);
				json_decref(change);
				goto cleanup;
			}
			err = policy_compile_slots(ne->weights, ne->nr_weights, table, SW_SLOTS);
			if (err) {
				sw_errorf(e, err, "cannot compile endpoint \"%s\"", ne->name);
				json_decref(change);
				goto cleanup;
			}
			moved = policy_slots_moved(oe->weights, oe->nr_weights, live->split,
						   ne->weights, ne->nr_weights, table, SW_SLOTS);
			snprintf(text + strlen(text), sizeof(text) - strlen(text),
				 "traffic %s -> %s; shard keys moving: %.4f%% (%u of %u slots)", a,
				 b, 100.0 * moved / SW_SLOTS, moved, SW_SLOTS);
			json_object_set_new(change, "moved_slots", json_integer(moved));
			json_object_set_new(change, "moved_fraction",
					    json_real(moved / (double)SW_SLOTS));
		}
		if (oe->nr_shadows != ne->nr_shadows ||
		    memcmp(oe->shadows, ne->shadows, ne->nr_shadows * sizeof(ne->shadows[0])))
			snprintf(text + strlen(text), sizeof(text) - strlen(text), "%sshadows",
				 text[0] ? "; " : "");
		if (!text[0]) {
			json_decref(change);
			continue;
		}
		json_object_set_new(change, "text", json_string(text));
		json_array_append_new(changes, change);
	}
cleanup:
	free(table);
	free(live);
	return err;
}

static void changes_print(json_t *changes, const char *verb)
{
	size_t i;

	if (!json_array_size(changes)) {
		printf("no changes\n");
		return;
	}
	for (i = 0; i < json_array_size(changes); i++) {
		json_t *c = json_array_get(changes, i);
		const char *op = json_string_value(json_object_get(c, "op"));
		const char *kind = json_object_get(c, "backend") ? "backend" : "endpoint";
		const char *text = json_string_value(json_object_get(c, "text"));

		printf("%c %s %s%s%s\n",
		       op[0] == 'c' && op[1] == 'r' ? '+'
		       : op[0] == 'd'		    ? '-'
						    : '~',
		       kind, json_string_value(json_object_get(c, kind)),
		       text && text[0] ? ": " : "", text ? text : "");
	}
	printf("%s %zu change%s\n", verb, json_array_size(changes),
	       json_array_size(changes) == 1 ? "" : "s");
}

int do_apply(int argc, char **argv)
{
	struct sw_policy *old = NULL, *new = NULL;
	const char *file = NULL;
	bool dry_run = false;
	struct sw_err e = {};
	json_t *changes = NULL;
	struct sw_maps m = {};
	char *text = NULL;
	size_t len = 0;
	FILE *f;
	int i, err;

	for (i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--dry-run"))
			dry_run = true;
		else if ((!strcmp(argv[i], "-f") || !strcmp(argv[i], "--file")) && i + 1 < argc)
			file = argv[++i];
		else if (!strcmp(argv[i], "help") || !strcmp(argv[i], "-h"))
			return apply_help();
		else
			return usage_error("usage: sockway apply -f FILE|- [--dry-run]");
	}
	if (!file)
		return usage_error("apply needs -f FILE (or -f - for stdin)");
	f = strcmp(file, "-") ? fopen(file, "r") : stdin;
	if (!f)
		return agent_error(-errno, "cannot open %s: %s", file, strerror(errno));
	text = read_all(f, &len);
	if (!text)
		err = agent_error(-errno, "cannot read %s: %s", file, strerror(errno));
	if (f != stdin)
		fclose(f);
	if (!text)
		return err;

	old = policy_alloc();
	new = policy_alloc();
	changes = json_array();
	if (!old || !new || !changes) {
		err = agent_error(-ENOMEM, "out of memory");
		goto cleanup;
	}
	err = policy_from_json(text, len, new, &e);
	if (!err)
		err = policy_validate(new, &e);
	if (err) {
		agent_error(err, "%s: %s", file, e.msg);
		goto cleanup;
	}
	err = agent_open(&m, !dry_run);
	if (err)
		goto cleanup;
	err = policy_read(&m, old, &e);
	if (!err)
		err = policy_diff(&m, old, new, changes, &e);
	if (!err && !dry_run && json_array_size(changes))
		err = policy_commit(&m, old, new, &e);
	if (err) {
		agent_fail(&e, err);
		goto cleanup;
	}
	if (agent_cfg.json) {
		err = json_print(json_pack("{s:b, s:I, s:O}", "dry_run", dry_run, "generation",
					   (json_int_t)sw_generation(&m), "changes", changes));
		goto cleanup;
	}
	changes_print(changes, dry_run ? "would apply" : "applied");
cleanup:
	json_decref(changes);
	if (m.skel)
		sw_maps_close(&m);
	policy_free(new);
	policy_free(old);
	free(text);
	return err;
}

int do_export(int argc, char **argv)
{
	struct sw_policy *p = NULL;
	struct sw_maps m;
	char *text;
	int err;

	if (argc > 0 && (!strcmp(argv[0], "help") || !strcmp(argv[0], "-h")))
		return apply_help();
	if (argc)
		return usage_error("usage: sockway export");
	err = agent_open_policy(&m, &p);
	if (err)
		return err;
	text = policy_to_json(p);
	if (!text) {
		err = agent_error(-ENOMEM, "out of memory");
		goto cleanup;
	}
	fputs(text, stdout);
	free(text);
cleanup:
	policy_free(p);
	sw_maps_close(&m);
	return err;
}
