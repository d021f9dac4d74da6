// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * The policy file (policy_json.h). Every value goes through the parser the CLI uses for it,
 * so an error reads the same whichever way the value came in; the JSON path in front of it
 * says where in the file it is.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "policy_json.h"

#define POLICY_VERSION 1

/* A JSON path: "endpoints." + a quoted 31-character name + ".traffic." + another, with room. */
#define JPATH_MAX 256

/*
 * A fraction has at most nine decimals below 1, so %.9g (JSON_REAL_PRECISION(9)) prints it
 * exactly and in the fewest digits, and strtod reads back the same double.
 */
#define DUMP_FLAGS (JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(9))

static const char *const top_fields[] = {"version", "backends", "endpoints", "guard", NULL};
static const char *const guard_fields[] = {"deny", "allow", "limit", NULL};
static const char *const limit_fields[] = {"rate", "burst", NULL};
static const char *const backend_fields[] = {"replicas", NULL};
static const char *const endpoint_fields[] = {
	"route", "host", "methods", "shard_header", "traffic", "shadows", NULL,
};

/* A path cut short still shows where it starts; mark the cut. */
static void path_mark_cut(char out[JPATH_MAX], int n)
{
	if (n >= JPATH_MAX)
		strcpy(out + JPATH_MAX - 4, "...");
}

static void path_join(char out[JPATH_MAX], const char *base, const char *key)
{
	char shown[80];

	sw_format_quoted(key, shown, sizeof(shown));
	path_mark_cut(out, snprintf(out, JPATH_MAX, "%s%s%s", base, *base ? "." : "", shown));
}

static void path_index(char out[JPATH_MAX], const char *base, size_t i)
{
	path_mark_cut(out, snprintf(out, JPATH_MAX, "%s[%zu]", base, i));
}

/* Puts the path in front of a message a value parser wrote. */
static int at_path(struct sw_err *e, int err, const char *path)
{
	char msg[sizeof(e->msg)];

	if (!e)
		return err;
	memcpy(msg, e->msg, sizeof(msg));
	return sw_errorf(e, err, "%s: %s", path, msg);
}

static const char *type_name(json_type type)
{
	switch (type) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
	case JSON_REAL:
		return "a number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	default:
		return "null";
	}
}

static int want_type(const json_t *v, json_type type, const char *path, struct sw_err *e)
{
	/* Integers and reals are both numbers to the operator. */
	if (json_typeof(v) == type || (type == JSON_REAL && json_is_number(v)))
		return 0;
	return sw_errorf(e, -EINVAL, "\"%s\" must be %s, not %s; fix its value", path,
			 type_name(type), type_name(json_typeof(v)));
}

static int check_fields(json_t *obj, const char *path, const char *const *known, struct sw_err *e)
{
	char child[JPATH_MAX], list[128];
	const char *key;
	size_t i, n;
	void *it;

	for (it = json_object_iter(obj); it; it = json_object_iter_next(obj, it)) {
		key = json_object_iter_key(it);
		for (i = 0; known[i] && strcmp(known[i], key); i++)
			;
		if (known[i])
			continue;
		for (i = 0, n = 0; known[i]; i++)
			n += snprintf(list + n, sizeof(list) - n, "%s%s", i ? ", " : "", known[i]);
		path_join(child, path, key);
		return sw_errorf(e, -EINVAL, "unknown field \"%s\"; known fields: %s", child, list);
	}
	return 0;
}

/* The field key of obj, of the given type. example, if not NULL, makes the field required. */
static int get_field(json_t *obj, const char *path, const char *key, json_type type,
		     const char *example, json_t **out, struct sw_err *e)
{
	char child[JPATH_MAX];

	path_join(child, path, key);
	*out = json_object_get(obj, key);
	if (!*out)
		return example ? sw_errorf(e, -EINVAL, "missing field \"%s\"; add it, like %s",
					   child, example)
			       : 0;
	return want_type(*out, type, child, e);
}

static int parse_backend(const char *name, json_t *obj, struct sw_policy_backend *b,
			 struct sw_err *e)
{
	char path[JPATH_MAX], replicas_path[JPATH_MAX], elem_path[JPATH_MAX];
	json_t *replicas, *elem;
	size_t i;
	int err;

	path_join(path, "backends", name);
	err = sw_parse_name(name, "backend name", e);
	if (err)
		return at_path(e, err, path);
	err = want_type(obj, JSON_OBJECT, path, e);
	if (!err)
		err = check_fields(obj, path, backend_fields, e);
	if (!err)
		err = get_field(obj, path, "replicas", JSON_ARRAY,
				"\"replicas\": [\"127.0.0.1:8080\"]", &replicas, e);
	if (err)
		return err;
	if (json_array_size(replicas) > SW_MAX_REPLICAS)
		return sw_errorf(
			e, -ENOSPC,
			"backend \"%s\" has %zu replicas (limit %d); give it fewer, or split "
			"it into several backends",
			name, json_array_size(replicas), SW_MAX_REPLICAS);
	strcpy(b->name, name);
	b->id = SW_ID_NONE;
	path_join(replicas_path, path, "replicas");
	for (i = 0; i < json_array_size(replicas); i++) {
		elem = json_array_get(replicas, i);
		path_index(elem_path, replicas_path, i);
		err = want_type(elem, JSON_STRING, elem_path, e);
		if (err)
			return err;
		err = sw_parse_addr(json_string_value(elem), &b->replicas[i], e);
		if (err)
			return at_path(e, err, elem_path);
	}
	b->nr_replicas = json_array_size(replicas);
	return 0;
}

static int parse_methods(json_t *arr, const char *path, __u32 *mask, struct sw_err *e)
{
	char elem_path[JPATH_MAX];
	__u32 bits;
	json_t *elem;
	size_t i;
	int err;

	/* [] reads as "no method at all": say what was meant instead of guessing. */
	if (!json_array_size(arr))
		return sw_errorf(
			e, -EINVAL,
			"\"%s\" is empty; list methods, or leave the field out to take any", path);
	*mask = 0;
	for (i = 0; i < json_array_size(arr); i++) {
		elem = json_array_get(arr, i);
		path_index(elem_path, path, i);
		err = want_type(elem, JSON_STRING, elem_path, e);
		if (err)
			return err;
		err = sw_parse_methods(json_string_value(elem), &bits, e);
		if (err)
			return at_path(e, err, elem_path);
		*mask |= bits;
	}
	return 0;
}

/*
 * Reads an object of backend name -> fraction into an array of at most max weights or shadows
 * (entry_size apart). Whether shadows are above 0 and weights sum to 1 is policy_validate()'s
 * call: the reader only refuses what the model cannot hold.
 */
static int parse_fractions(json_t *obj, const char *path, const char *what, void *dst,
			   size_t entry_size, size_t max, struct sw_err *e)
{
	char child[JPATH_MAX];
	const char *key;
	char *entry;
	__u32 units;
	json_t *v;
	void *it;
	int err;

	if (json_object_size(obj) > max)
		return sw_errorf(e, -ENOSPC, "\"%s\" has %zu backends (limit %zu); use fewer", path,
				 json_object_size(obj), max);
	entry = dst;
	for (it = json_object_iter(obj); it; it = json_object_iter_next(obj, it)) {
		key = json_object_iter_key(it);
		v = json_object_iter_value(it);
		path_join(child, path, key);
		err = sw_parse_name(key, "backend name", e);
		if (err)
			return at_path(e, err, child);
		err = want_type(v, JSON_REAL, child, e);
		if (err)
			return err;
		err = sw_fraction_from_double(json_number_value(v), what, &units, e);
		if (err)
			return at_path(e, err, child);
		/* Weights and shadows both lay out as { char backend[SW_NAME_MAX]; __u32 value; }.
		 */
		strcpy(entry, key);
		memcpy(entry + SW_NAME_MAX, &units, sizeof(units));
		entry += entry_size;
	}
	return 0;
}

_Static_assert(offsetof(struct sw_policy_weight, weight) == SW_NAME_MAX &&
		       offsetof(struct sw_policy_shadow, fraction) == SW_NAME_MAX,
	       "parse_fractions() and fractions_to_json() find the value right after the name");

static int parse_endpoint(const char *name, json_t *obj, struct sw_policy_endpoint *ep,
			  struct sw_err *e)
{
	char path[JPATH_MAX], child[JPATH_MAX];
	json_t *route, *host, *methods, *header, *traffic, *shadows;
	int err;

	path_join(path, "endpoints", name);
	err = sw_parse_name(name, "endpoint name", e);
	if (err)
		return at_path(e, err, path);
	err = want_type(obj, JSON_OBJECT, path, e);
	if (!err)
		err = check_fields(obj, path, endpoint_fields, e);
	if (!err)
		err = get_field(obj, path, "route", JSON_STRING, "\"route\": \"/api\"", &route, e);
	if (!err)
		err = get_field(obj, path, "host", JSON_STRING, NULL, &host, e);
	if (!err)
		err = get_field(obj, path, "methods", JSON_ARRAY, NULL, &methods, e);
	if (!err)
		err = get_field(obj, path, "shard_header", JSON_STRING, NULL, &header, e);
	if (!err)
		err = get_field(obj, path, "traffic", JSON_OBJECT, "\"traffic\": {\"b1\": 1}",
				&traffic, e);
	if (!err)
		err = get_field(obj, path, "shadows", JSON_OBJECT, NULL, &shadows, e);
	if (err)
		return err;

	strcpy(ep->name, name);
	ep->id = SW_ID_NONE;
	path_join(child, path, "route");
	err = sw_parse_route(json_string_value(route), ep->route, e);
	if (err)
		return at_path(e, err, child);
	/* "" is "any host", as an absent field is: both mean no Host filter. */
	path_join(child, path, "host");
	if (host && json_string_length(host)) {
		err = sw_parse_host(json_string_value(host), ep->host, e);
		if (err)
			return at_path(e, err, child);
	}
	path_join(child, path, "methods");
	if (methods) {
		err = parse_methods(methods, child, &ep->methods, e);
		if (err)
			return err;
	}
	path_join(child, path, "shard_header");
	err = sw_parse_header_name(header ? json_string_value(header) : SW_DEFAULT_SHARD_HEADER,
				   ep->shard_header, e);
	if (err)
		return at_path(e, err, child);
	path_join(child, path, "traffic");
	err = parse_fractions(traffic, child, "weight", ep->weights, sizeof(ep->weights[0]),
			      SW_MAX_SPLIT, e);
	if (err)
		return err;
	ep->nr_weights = json_object_size(traffic);
	if (shadows) {
		path_join(child, path, "shadows");
		err = parse_fractions(shadows, child, "shadow fraction", ep->shadows,
				      sizeof(ep->shadows[0]), SW_MAX_SHADOWS, e);
		if (err)
			return err;
		ep->nr_shadows = json_object_size(shadows);
	}
	return 0;
}

static int parse_policy(json_t *root, struct sw_policy *p, struct sw_err *e)
{
	json_t *version, *backends, *endpoints;
	void *it;
	int err;

	if (!json_is_object(root))
		return sw_errorf(e, -EINVAL,
				 "the policy must be an object like {\"version\": 1, ...}, not %s",
				 type_name(json_typeof(root)));
	/* The version first: a newer file may have fields this reader does not know. */
	version = json_object_get(root, "version");
	if (!version)
		return sw_errorf(e, -EINVAL, "missing field \"version\"; add \"version\": %d",
				 POLICY_VERSION);
	if (!json_is_integer(version))
		return sw_errorf(e, -EINVAL,
				 "\"version\" must be an integer, not %s; write "
				 "\"version\": %d",
				 type_name(json_typeof(version)), POLICY_VERSION);
	if (json_integer_value(version) != POLICY_VERSION)
		return sw_errorf(e, -EINVAL,
				 "unsupported policy version %" JSON_INTEGER_FORMAT
				 "; this sockway reads version %d",
				 json_integer_value(version), POLICY_VERSION);
	err = check_fields(root, "", top_fields, e);
	/* Required, even empty: a typo must not read as "delete every endpoint". */
	if (!err)
		err = get_field(root, "", "backends", JSON_OBJECT, "\"backends\": {}", &backends,
				e);
	if (!err)
		err = get_field(root, "", "endpoints", JSON_OBJECT, "\"endpoints\": {}", &endpoints,
				e);
	if (err)
		return err;

	if (json_object_size(backends) > SW_MAX_BACKENDS)
		return sw_errorf(e, -ENOSPC, "too many backends (%zu, limit %d); remove some",
				 json_object_size(backends), SW_MAX_BACKENDS);
	if (json_object_size(endpoints) > SW_MAX_ENDPOINTS)
		return sw_errorf(e, -ENOSPC, "too many endpoints (%zu, limit %d); remove some",
				 json_object_size(endpoints), SW_MAX_ENDPOINTS);
	for (it = json_object_iter(backends); it; it = json_object_iter_next(backends, it)) {
		err = parse_backend(json_object_iter_key(it), json_object_iter_value(it),
				    &p->backends[p->nr_backends], e);
		if (err)
			return err;
		p->nr_backends++;
	}
	for (it = json_object_iter(endpoints); it; it = json_object_iter_next(endpoints, it)) {
		err = parse_endpoint(json_object_iter_key(it), json_object_iter_value(it),
				     &p->endpoints[p->nr_endpoints], e);
		if (err)
			return err;
		p->nr_endpoints++;
	}
	/* Objects come in file order; the model and the export want name order. */
	policy_sort(p);
	return 0;
}

/* guard.deny or guard.allow: an array of prefix strings, at most max. */
static int parse_prefixes(json_t *guard, const char *key, struct sw_guard_prefix *out, __u32 max,
			  __u32 *nr, struct sw_err *e)
{
	char path[JPATH_MAX], item[JPATH_MAX];
	json_t *arr, *v;
	size_t i;
	int err;

	*nr = 0;
	path_join(path, "guard", key);
	err = get_field(guard, "guard", key, JSON_ARRAY, NULL, &arr, e);
	if (err || !arr)
		return err;
	if (json_array_size(arr) > max)
		return sw_errorf(e, -ENOSPC, "%s: too many prefixes (%zu, limit %u)", path,
				 json_array_size(arr), max);
	json_array_foreach(arr, i, v)
	{
		path_index(item, path, i);
		err = want_type(v, JSON_STRING, item, e);
		if (!err)
			err = sw_guard_prefix_parse(json_string_value(v), &out[i], e);
		if (err)
			return at_path(e, err, item);
		(*nr)++;
	}
	return 0;
}

/* A whole number in [min, max] at path. */
static int parse_count(json_t *v, const char *path, __u32 min, __u32 max, __u32 *out,
		       struct sw_err *e)
{
	json_int_t n;

	if (!json_is_integer(v))
		return sw_errorf(e, -EINVAL, "\"%s\" must be a whole number, not %s", path,
				 json_is_number(v) ? "a fraction" : type_name(json_typeof(v)));
	n = json_integer_value(v);
	if (n < min || n > max)
		return sw_errorf(e, -EINVAL, "\"%s\" is %u to %u, not %" JSON_INTEGER_FORMAT, path,
				 min, max, n);
	*out = (__u32)n;
	return 0;
}

/* "guard": {"deny": [...], "allow": [...], "limit": {"rate": R, "burst": B}}, all optional. */
static int parse_guard(json_t *root, struct sw_guard_policy *g, struct sw_err *e)
{
	json_t *guard, *limit, *v;
	int err;

	memset(g, 0, sizeof(*g));
	err = get_field(root, "", "guard", JSON_OBJECT, NULL, &guard, e);
	if (err || !guard)
		return err;
	g->present = true;
	err = check_fields(guard, "guard", guard_fields, e);
	if (!err)
		err = parse_prefixes(guard, "deny", g->deny, SW_GUARD_DENY_MAX, &g->nr_deny, e);
	if (!err)
		err = parse_prefixes(guard, "allow", g->allow, SW_GUARD_ALLOW_MAX, &g->nr_allow, e);
	if (!err)
		err = get_field(guard, "guard", "limit", JSON_OBJECT, NULL, &limit, e);
	if (err)
		return err;
	if (limit) {
		err = check_fields(limit, "guard.limit", limit_fields, e);
		v = json_object_get(limit, "rate");
		if (!err && !v)
			err = sw_errorf(e, -EINVAL,
					"missing field \"guard.limit.rate\"; add it, "
					"like \"rate\": 100 (0: no limit)");
		if (!err)
			err = parse_count(v, "guard.limit.rate", 0, SW_GUARD_RATE_MAX, &g->rate, e);
		v = json_object_get(limit, "burst");
		if (!err && v)
			err = parse_count(v, "guard.limit.burst", 1, SW_GUARD_BURST_MAX, &g->burst,
					  e);
		if (err)
			return err;
		g->burst = sw_guard_burst(g->rate, g->burst);
	}
	return sw_guard_policy_sort(g, e);
}

/* The document, its keys unique (a duplicate would silently keep one of two backends,
 * weights or prefixes), or NULL with e filled. */
static json_t *doc_load(const char *text, size_t len, struct sw_err *e)
{
	json_error_t jerr;
	json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);

	if (!root)
		sw_errorf(e, -EINVAL,
			  "policy is not valid JSON: line %d, column %d: %s; fix it there",
			  jerr.line, jerr.column, jerr.text);
	return root;
}

int guard_from_json(const char *text, size_t len, struct sw_guard_policy *g, struct sw_err *e)
{
	json_t *root;
	int err;

	memset(g, 0, sizeof(*g));
	root = doc_load(text, len, e);
	if (!root)
		return -EINVAL;
	err = json_is_object(root) ? parse_guard(root, g, e) : 0;
	json_decref(root);
	return err;
}

int policy_from_json(const char *text, size_t len, struct sw_policy *p, struct sw_err *e)
{
	json_t *root;
	int err;

	memset(p, 0, sizeof(*p));
	root = doc_load(text, len, e);
	if (!root)
		return -EINVAL;
	err = parse_policy(root, p, e);
	json_decref(root);
	return err;
}

/* 0 and 1 print as integers rather than 0.0 and 1.0: the shortest form, and what people type. */
static json_t *fraction_to_json(__u32 v)
{
	if (v % SW_WEIGHT_ONE == 0)
		return json_integer(v / SW_WEIGHT_ONE);
	return json_real((double)v / SW_WEIGHT_ONE);
}

/* Fields are fixed-size arrays: never read past one, even in a policy nobody validated. */
#define field_string(f) json_stringn((f), strnlen((f), sizeof(f)))

static json_t *backend_to_json(const struct sw_policy_backend *b)
{
	json_t *obj, *replicas;
	char addr[64];
	__u32 i;

	obj = json_object();
	if (!obj)
		return NULL;
	/* _set_new() takes the reference even when it fails: nothing to release here. */
	replicas = json_array();
	if (json_object_set_new(obj, "replicas", replicas))
		goto fail;
	for (i = 0; i < b->nr_replicas && i < SW_MAX_REPLICAS; i++) {
		sw_format_addr(&b->replicas[i], addr, sizeof(addr));
		if (json_array_append_new(replicas, json_string(addr)))
			goto fail;
	}
	return obj;
fail:
	json_decref(obj);
	return NULL;
}

/* The reverse of parse_fractions(), over the same name-then-value layout. */
static json_t *fractions_to_json(const void *src, size_t entry_size, __u32 nr)
{
	json_t *obj = json_object();
	const char *entry = src;
	__u32 i, units;

	for (i = 0; obj && i < nr; i++, entry += entry_size) {
		memcpy(&units, entry + SW_NAME_MAX, sizeof(units));
		if (json_object_setn_new(obj, entry, strnlen(entry, SW_NAME_MAX),
					 fraction_to_json(units))) {
			json_decref(obj);
			return NULL;
		}
	}
	return obj;
}

static json_t *endpoint_to_json(const struct sw_policy_endpoint *ep)
{
	__u32 nr_weights = ep->nr_weights < SW_MAX_SPLIT ? ep->nr_weights : SW_MAX_SPLIT;
	__u32 nr_shadows = ep->nr_shadows < SW_MAX_SHADOWS ? ep->nr_shadows : SW_MAX_SHADOWS;
	char methods[128], *m;
	json_t *obj, *arr;

	obj = json_object();
	if (!obj)
		return NULL;
	if (json_object_set_new(obj, "route", field_string(ep->route)) ||
	    json_object_set_new(obj, "shard_header", field_string(ep->shard_header)) ||
	    json_object_set_new(obj, "traffic",
				fractions_to_json(ep->weights, sizeof(ep->weights[0]), nr_weights)))
		goto fail;
	/* Optional fields are left out at their default, which keeps simple files simple. */
	if (ep->host[0] && json_object_set_new(obj, "host", field_string(ep->host)))
		goto fail;
	if (nr_shadows &&
	    json_object_set_new(obj, "shadows",
				fractions_to_json(ep->shadows, sizeof(ep->shadows[0]), nr_shadows)))
		goto fail;
	if (ep->methods) {
		arr = json_array();
		if (json_object_set_new(obj, "methods", arr))
			goto fail;
		sw_format_methods(ep->methods, methods, sizeof(methods));
		for (m = strtok(methods, ","); m; m = strtok(NULL, ",")) {
			if (json_array_append_new(arr, json_string(m)))
				goto fail;
		}
	}
	return obj;
fail:
	json_decref(obj);
	return NULL;
}

static json_t *prefixes_to_json(const struct sw_guard_prefix *list, __u32 nr)
{
	json_t *arr = json_array();
	char name[64];
	__u32 i;

	for (i = 0; arr && i < nr; i++) {
		sw_guard_prefix_format(&list[i], name, sizeof(name));
		json_array_append_new(arr, json_string(name));
	}
	return arr;
}

static json_t *guard_to_json(const struct sw_guard_policy *g)
{
	json_t *out = json_pack("{s:o, s:o}", "deny", prefixes_to_json(g->deny, g->nr_deny),
				"allow", prefixes_to_json(g->allow, g->nr_allow));

	if (out && g->rate)
		json_object_set_new(
			out, "limit",
			json_pack("{s:i, s:i}", "rate", (int)g->rate, "burst", (int)g->burst));
	return out;
}

char *policy_to_json(const struct sw_policy *p)
{
	return policy_guard_to_json(p, NULL);
}

char *policy_guard_to_json(const struct sw_policy *p, const struct sw_guard_policy *g)
{
	json_t *root, *backends, *endpoints;
	char *text = NULL, *out = NULL;
	size_t len;
	__u32 i;

	root = json_object();
	if (!root)
		goto cleanup;
	/* Each container belongs to root as soon as it exists, so cleanup frees it. */
	backends = json_object();
	if (json_object_set_new(root, "backends", backends))
		goto cleanup;
	endpoints = json_object();
	if (json_object_set_new(root, "endpoints", endpoints) ||
	    json_object_set_new(root, "version", json_integer(POLICY_VERSION)))
		goto cleanup;
	if (g && !sw_guard_policy_empty(g) && json_object_set_new(root, "guard", guard_to_json(g)))
		goto cleanup;
	for (i = 0; i < p->nr_backends && i < SW_MAX_BACKENDS; i++) {
		const struct sw_policy_backend *b = &p->backends[i];

		if (json_object_setn_new(backends, b->name, strnlen(b->name, sizeof(b->name)),
					 backend_to_json(b)))
			goto cleanup;
	}
	for (i = 0; i < p->nr_endpoints && i < SW_MAX_ENDPOINTS; i++) {
		const struct sw_policy_endpoint *ep = &p->endpoints[i];

		if (json_object_setn_new(endpoints, ep->name, strnlen(ep->name, sizeof(ep->name)),
					 endpoint_to_json(ep)))
			goto cleanup;
	}
	text = json_dumps(root, DUMP_FLAGS);
	if (!text)
		goto cleanup;
	len = strlen(text);
	out = malloc(len + 2);
	if (!out)
		goto cleanup;
	memcpy(out, text, len);
	out[len] = '\n';
	out[len + 1] = '\0';
cleanup:
	/* jansson reports no cause: a string that is not UTF-8 or a failed allocation. */
	if (!out)
		errno = ENOMEM;
	free(text);
	json_decref(root);
	return out;
}
