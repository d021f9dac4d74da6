// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * Counter cells as the agent shows them (main.h), shared by `stats` and `top`: the names of
 * a cell's endpoint and backend, latency quantiles from the log2 histogram, and the JSON of
 * a set of counters.
 */
#include <errno.h>
#include <string.h>

#include "main.h"

static const char *const error_names[SW_ERR_MAX] = {
	[SW_ERR_CONNECT_REFUSED] = "connect_refused",
	[SW_ERR_RESET] = "reset",
	[SW_ERR_TIMEOUT] = "timeout",
	[SW_ERR_BAD_RESPONSE] = "bad_response",
};

int cell_names_read(struct sw_maps *m, struct cell_names *n, struct sw_err *e)
{
	struct sw_policy *p = policy_alloc();
	__u32 i;
	int err;

	if (!p)
		return sw_errorf(e, -ENOMEM, "out of memory");
	err = policy_read(m, p, e);
	if (err)
		goto cleanup;
	memset(n, 0, sizeof(*n));
	for (i = 0; i < p->nr_endpoints; i++)
		if (p->endpoints[i].id < SW_MAX_ENDPOINTS)
			strcpy(n->endpoint[p->endpoints[i].id], p->endpoints[i].name);
	for (i = 0; i < p->nr_backends; i++)
		if (p->backends[i].id < SW_MAX_BACKENDS)
			strcpy(n->backend[p->backends[i].id], p->backends[i].name);
cleanup:
	policy_free(p);
	return err;
}

/* A cell names ids that the policy read may not have had (a commit since): "?" for those. */
const char *cell_endpoint(const struct cell_names *n, const struct sw_cell *cell)
{
	__u16 id = cell->endpoint_id;

	return id < SW_MAX_ENDPOINTS && n->endpoint[id][0] ? n->endpoint[id] : "?";
}

const char *cell_backend(const struct cell_names *n, const struct sw_cell *cell)
{
	__u16 id = cell->backend_id;

	return id < SW_MAX_BACKENDS && n->backend[id][0] ? n->backend[id] : "?";
}

const char *cell_role(const struct sw_cell *cell)
{
	return cell->role == SW_ROLE_SHADOW ? "shadow" : "primary";
}

__u64 latency_quantile(const struct sw_counters *c, double q)
{
	__u64 total = 0, seen = 0;
	int i;

	for (i = 0; i < SW_LAT_BUCKETS; i++)
		total += c->latency[i];
	if (!total)
		return 0;
	for (i = 0; i < SW_LAT_BUCKETS; i++) {
		seen += c->latency[i];
		if (seen >= q * total)
			break;
	}
	return 1ULL << (i + 1 < SW_LAT_BUCKETS ? i + 1 : SW_LAT_BUCKETS);
}

json_t *counters_json(const struct sw_counters *c)
{
	json_t *errors = json_object(), *hist = json_array();
	int i;

	for (i = 0; i < SW_ERR_MAX; i++)
		json_object_set_new(errors, error_names[i], json_integer(c->errors[i]));
	/* Prometheus-like buckets: counts of [2^i, 2^(i+1)) us, the last one open-ended. */
	for (i = 0; i < SW_LAT_BUCKETS; i++)
		json_array_append_new(hist, json_pack("{s:o, s:I}", "le_us",
						      i + 1 < SW_LAT_BUCKETS
							      ? json_integer(1LL << (i + 1))
							      : json_string("+Inf"),
						      "count", (json_int_t)c->latency[i]));
	return json_pack(
		"{s:I, s:{s:I, s:I, s:I, s:I, s:I}, s:o, s:I, s:I, s:I, s:o, s:I, s:I, "
		"s:I, s:I, s:I}",
		"requests", (json_int_t)c->requests, "status", "1xx", (json_int_t)c->status[0],
		"2xx", (json_int_t)c->status[1], "3xx", (json_int_t)c->status[2], "4xx",
		(json_int_t)c->status[3], "5xx", (json_int_t)c->status[4], "errors", errors,
		"bytes_from_client", (json_int_t)c->bytes_from_client, "bytes_to_client",
		(json_int_t)c->bytes_to_client, "latency_sum_us", (json_int_t)c->latency_sum_us,
		"latency", hist, "latency_p50_us", (json_int_t)latency_quantile(c, 0.5),
		"latency_p99_us", (json_int_t)latency_quantile(c, 0.99), "shadow_match",
		(json_int_t)c->shadow_match, "shadow_drops", (json_int_t)c->shadow_drops,
		"accel_bytes", (json_int_t)c->accel_bytes);
}
