// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * sockway explain PATH [--host HOST] [--method M] [--key KEY ...]: which endpoint, slot and
 * backend a request gets under the live policy, computed by the same decision code as the
 * data plane. Without a key the slot is random per request, so only the endpoint is fixed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decide.h"
#include "main.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

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

/* One decision: for a key, or (key NULL) for the path alone. */
struct explain_row {
	const char *key;
	__s32 err;
	__u32 slot;
	bool routed;
	char endpoint[SW_NAME_MAX]; /* "-" when there is none */
	char backend[SW_NAME_MAX];  /* "-" without a key */
};

/* The path as given (without its query), its normal form, and a decision per key. */
struct explain_view {
	char path[SW_DECIDE_PATH_MAX];
	char norm[SW_DECIDE_PATH_MAX];
	__u32 norm_len;
	int nr;
	struct explain_row rows[];
};

/* Why sockwayd refuses the request (400), or NULL. */
static const char *refusal(__s32 err)
{
	return err == -EINVAL  ? "the path or Host is refused (400)"
	       : err == -E2BIG ? "a '..' deeper than 64 segments (400)"
			       : NULL;
}

static void explain_plain(const void *data)
{
	const struct explain_view *v = data;
	size_t path_len = strlen(v->path);
	int i;

	for (i = 0; i < v->nr; i++) {
		const struct explain_row *r = &v->rows[i];

		if (refusal(r->err)) {
			printf("%s: %s\n", v->path, refusal(r->err));
			continue;
		}
		if (v->norm_len && (v->norm_len != path_len || memcmp(v->norm, v->path, path_len)))
			printf("%s: routed (and sent upstream) as %.*s\n", v->path,
			       (int)v->norm_len, v->norm);
		if (!r->routed)
			printf("%s: no route (404)\n", v->path);
		else if (!r->key)
			printf("%s: endpoint %s; no shard key, so a random slot per request\n",
			       v->path, r->endpoint);
		else
			printf("%s: endpoint %s, key \"%s\": slot %u, backend %s\n", v->path,
			       r->endpoint, r->key, r->slot, r->backend);
	}
}

static json_t *explain_json(const void *data)
{
	const struct explain_view *v = data;
	json_t *out = json_array(), *j;
	int i;

	for (i = 0; i < v->nr; i++) {
		const struct explain_row *r = &v->rows[i];

		j = json_pack("{s:s, s:s%, s:s}", "path", v->path, "normal", v->norm,
			      (size_t)v->norm_len, "endpoint", r->endpoint);
		if (refusal(r->err))
			json_object_set_new(j, "refused", json_string(refusal(r->err)));
		if (r->key) {
			json_object_set_new(j, "key", json_string(r->key));
			json_object_set_new(j, "slot", json_integer(r->slot));
			json_object_set_new(j, "backend", json_string(r->backend));
		}
		json_array_append_new(out, j);
	}
	return out;
}

static const struct printer explain_printer = {explain_plain, explain_json};

/* What the request is: the path, and the options that shape its decision. */
struct explain_args {
	const char *path, *host;
	__u32 method;
	int nr_keys;
	const char *keys[4096];
};

/* 0, or 1 when it printed the help, or -errno after printing the error. */
static int explain_parse(int argc, char **argv, struct explain_args *x)
{
	struct sw_err e = {};
	int i, err;

	x->method = SW_METHOD_GET;
	for (i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "help") || !strcmp(argv[i], "-h")) {
			explain_help();
			return 1;
		}
		if (!strcmp(argv[i], "--host") && i + 1 < argc) {
			x->host = argv[++i];
		} else if (!strcmp(argv[i], "--method") && i + 1 < argc) {
			err = sw_parse_methods(argv[++i], &x->method, &e);
			if (err)
				return agent_fail(&e, err);
		} else if (!strcmp(argv[i], "--key") && i + 1 < argc) {
			if (x->nr_keys == (int)ARRAY_SIZE(x->keys))
				return usage_error("at most %zu --key", ARRAY_SIZE(x->keys));
			x->keys[x->nr_keys++] = argv[++i];
		} else if (argv[i][0] != '-' && !x->path) {
			x->path = argv[i];
		} else {
			return usage_error("usage: sockway explain PATH [--host HOST] [--method M] "
					   "[--key KEY ...]");
		}
	}
	if (!x->path)
		return usage_error("explain needs a PATH, like /api/users");
	/* The query plays no part in routing. */
	if (strcspn(x->path, "?") >= SW_DECIDE_PATH_MAX ||
	    (x->host && strlen(x->host) >= SW_DECIDE_HOST_MAX))
		return agent_error(-EINVAL, "the path is limited to %d bytes and the host to %d",
				   SW_DECIDE_PATH_MAX - 1, SW_DECIDE_HOST_MAX - 1);
	return 0;
}

/* Decides the request once per key (once without), as the data plane would. */
static void explain_decide(struct sw_maps *m, const struct explain_args *x, struct explain_view *v)
{
	struct sw_decide_args a;
	struct sw_endpoint ep;
	struct sw_backend b;

	for (v->nr = 0; v->nr < (x->nr_keys ? x->nr_keys : 1); v->nr++) {
		struct explain_row *r = &v->rows[v->nr];

		memset(&a, 0, sizeof(a));
		a.path_len = strcspn(x->path, "?");
		memcpy(a.path, x->path, a.path_len);
		if (x->host) {
			a.host_len = strlen(x->host);
			memcpy(a.host, x->host, a.host_len);
		}
		a.method = x->method;
		r->key = x->nr_keys ? x->keys[v->nr] : NULL;
		if (r->key) {
			a.key_len = strlen(r->key) < SW_SHARD_KEY_MAX ? strlen(r->key)
								      : SW_SHARD_KEY_MAX;
			memcpy(a.key, r->key, a.key_len);
		}
		sw_decide(m, &a);
		r->err = a.err;
		r->slot = a.slot;
		r->routed = a.endpoint_id != SW_ID_NONE;
		if (r->routed && !sw_endpoint_read(m, a.endpoint_id, &ep, NULL))
			strcpy(r->endpoint, ep.name);
		else
			strcpy(r->endpoint, "-");
		b.flags = 0;
		if (r->key && !a.err)
			sw_backend_read(m, a.backend_id, &b);
		strcpy(r->backend, b.flags & SW_F_IN_USE ? b.name : "-");
		memcpy(v->path, a.path, sizeof(v->path));
		memcpy(v->norm, a.norm, sizeof(v->norm));
		v->norm_len = a.norm_len;
	}
}

int do_explain(int argc, char **argv)
{
	struct explain_args *x;
	struct explain_view *v = NULL;
	struct sw_maps m = {};
	int err;

	x = calloc(1, sizeof(*x));
	if (!x)
		return agent_error(-ENOMEM, "out of memory");
	err = explain_parse(argc, argv, x);
	if (err) {
		err = err < 0 ? err : 0;
		goto cleanup;
	}
	err = agent_open(&m, false);
	if (err)
		goto cleanup;
	v = calloc(1, sizeof(*v) + (x->nr_keys ? x->nr_keys : 1) * sizeof(v->rows[0]));
	if (!v) {
		err = agent_error(-ENOMEM, "out of memory");
		goto cleanup;
	}
	explain_decide(&m, x, v);
	err = agent_print(&explain_printer, v);
cleanup:
	if (m.skel)
		sw_maps_close(&m);
	free(v);
	free(x);
	return err;
}
