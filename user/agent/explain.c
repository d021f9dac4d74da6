// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * sockway explain PATH [--host HOST] [--method M] [--key KEY ...]: which endpoint, slot and
 * backend a request gets under the live policy, computed by the same decision code as the
 * data plane. Without a key the slot is random per request, so only the endpoint is fixed.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "decide.h"
#include "main.h"

static int explain_help(void)
{
	fprintf(stderr,
		"Usage: sockway explain PATH [--host HOST] [--method METHOD] [--key KEY ...]\n"
		"\n"
		"Prints the endpoint a request for PATH matches and, for each shard KEY, the slot\n"
		"and backend it is pinned to, as sockwayd and the kernel path decide it: on the\n"
		"path's normal form (dot segments removed, slashes merged, unreserved escapes\n"
		"decoded), which is also what the backend receives, and on the Host without its\n"
		"case, port or trailing dot. A path or Host that sockwayd refuses says so.\n");
	return 0;
}

/* Prints one decision; key may be NULL. */
static void explain_print(struct sw_maps *m, const struct sw_decide_args *a, const char *key,
			  json_t *out)
{
	struct sw_endpoint ep;
	struct sw_backend b;
	const char *ep_name = "-", *be_name = "-";
	const char *refused = a->err == -EINVAL ? "the path or Host is refused (400)"
			      : a->err == -E2BIG ? "a '..' deeper than 64 segments (400)"
						 : NULL;

	if (a->endpoint_id != SW_ID_NONE && !sw_endpoint_read(m, a->endpoint_id, &ep, NULL))
		ep_name = ep.name;
	if (key && !a->err && !sw_backend_read(m, a->backend_id, &b) && (b.flags & SW_F_IN_USE))
		be_name = b.name;
	if (agent_cfg.json) {
		json_t *j = json_pack("{s:s, s:s%, s:s}", "path", a->path, "normal", a->norm,
				      (size_t)a->norm_len, "endpoint", ep_name);

		if (refused)
			json_object_set_new(j, "refused", json_string(refused));
		if (key) {
			json_object_set_new(j, "key", json_string(key));
			json_object_set_new(j, "slot", json_integer(a->slot));
			json_object_set_new(j, "backend", json_string(be_name));
		}
		json_array_append_new(out, j);
		return;
	}
	if (refused) {
		printf("%s: %s\n", a->path, refused);
		return;
	}
	if (a->norm_len && (a->norm_len != a->path_len || memcmp(a->norm, a->path, a->path_len)))
		printf("%s: routed (and sent upstream) as %.*s\n", a->path, (int)a->norm_len,
		       a->norm);
	if (a->endpoint_id == SW_ID_NONE)
		printf("%s: no route (404)\n", a->path);
	else if (!key)
		printf("%s: endpoint %s; no shard key, so a random slot per request\n", a->path,
		       ep_name);
	else
		printf("%s: endpoint %s, key \"%s\": slot %u, backend %s\n", a->path, ep_name, key,
		       a->slot, be_name);
}

int do_explain(int argc, char **argv)
{
	const char *path = NULL, *host = NULL;
	const char *keys[4096];
	struct sw_decide_args a;
	struct sw_err e = {};
	__u32 method = SW_METHOD_GET;
	int nr_keys = 0, i, err;
	size_t path_len;
	struct sw_maps m;
	json_t *out;

	for (i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "help") || !strcmp(argv[i], "-h"))
			return explain_help();
		if (!strcmp(argv[i], "--host") && i + 1 < argc) {
			host = argv[++i];
		} else if (!strcmp(argv[i], "--method") && i + 1 < argc) {
			err = sw_parse_methods(argv[++i], &method, &e);
			if (err)
				return agent_fail(&e, err);
		} else if (!strcmp(argv[i], "--key") && i + 1 < argc) {
			if (nr_keys == (int)(sizeof(keys) / sizeof(keys[0])))
				return usage_error("at most %zu --key", sizeof(keys) / sizeof(keys[0]));
			keys[nr_keys++] = argv[++i];
		} else if (argv[i][0] != '-' && !path) {
			path = argv[i];
		} else {
			return usage_error("usage: sockway explain PATH [--host HOST] [--method M] "
					   "[--key KEY ...]");
		}
	}
	if (!path)
		return usage_error("explain needs a PATH, like /api/users");
	/* The query plays no part in routing. */
	path_len = strcspn(path, "?");
	if (path_len >= SW_DECIDE_PATH_MAX || (host && strlen(host) >= SW_DECIDE_HOST_MAX))
		return agent_error(-EINVAL, "the path is limited to %d bytes and the host to %d",
				   SW_DECIDE_PATH_MAX - 1, SW_DECIDE_HOST_MAX - 1);
	err = agent_open(&m, false);
	if (err)
		return err;
	out = json_array();
	for (i = 0; i < (nr_keys ? nr_keys : 1); i++) {
		const char *key = nr_keys ? keys[i] : NULL;

		memset(&a, 0, sizeof(a));
		memcpy(a.path, path, path_len);
		a.path_len = path_len;
		if (host) {
			memcpy(a.host, host, strlen(host));
			a.host_len = strlen(host);
		}
		a.method = method;
		if (key) {
			a.key_len = strlen(key) < SW_SHARD_KEY_MAX ? strlen(key) : SW_SHARD_KEY_MAX;
			memcpy(a.key, key, a.key_len);
		}
		sw_decide(&m, &a);
		explain_print(&m, &a, key, out);
	}
	if (agent_cfg.json)
		err = json_print(out);
	else
		json_decref(out);
	sw_maps_close(&m);
	return err;
}
