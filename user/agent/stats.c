// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/* sockway stats [ENDPOINT] [--reset]: the counter cells, summed over their shards. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "main.h"

static const char *const error_names[SW_ERR_MAX] = {
	[SW_ERR_CONNECT_REFUSED] = "connect_refused",
	[SW_ERR_RESET] = "reset",
	[SW_ERR_TIMEOUT] = "timeout",
	[SW_ERR_BAD_RESPONSE] = "bad_response",
};

static int stats_help(void)
{
	fprintf(stderr,
		"Usage: sockway stats [ENDPOINT] [--reset]\n"
		"\n"
		"Counters per endpoint x backend x role (primary or shadow): requests, responses\n"
		"by status class, upstream errors, bytes, latency (log2 histogram, 1 us to 16 s).\n"
		"With -j every field, with the histogram. --reset zeroes the counters shown.\n"
		"The same counters: bpftool map dump pinned %s/counters\n",
		sw_pin_root());
	return 0;
}

/* Upper bound in us of the bucket holding quantile q, 0 when there is no sample. */
static __u64 latency_quantile(const struct sw_counters *c, double q)
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

static json_t *counters_json(const struct sw_counters *c)
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

int do_stats(int argc, char **argv)
{
	const char *endpoint = NULL;
	__u32 filter = SW_ID_NONE, c;
	struct sw_counters sum;
	struct sw_endpoint ep;
	struct sw_backend b;
	bool reset = false;
	struct sw_maps m;
	json_t *out;
	int i, err;

	for (i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--reset"))
			reset = true;
		else if (!strcmp(argv[i], "help") || !strcmp(argv[i], "-h"))
			return stats_help();
		else if (argv[i][0] == '-' || endpoint)
			return usage_error("usage: sockway stats [ENDPOINT] [--reset]");
		else
			endpoint = argv[i];
	}
	err = agent_open(&m, reset);
	if (err)
		return err;
	if (endpoint && sw_endpoint_id(&m, endpoint, &filter)) {
		err = agent_error(-ENOENT,
				  "endpoint \"%s\" does not exist; see \"sockway endpoint "
				  "list\"",
				  endpoint);
		goto cleanup;
	}
	if (reset) {
		sw_cells_reset(&m, filter);
		if (agent_cfg.json)
			err = json_print(json_pack("{s:s}", "reset", endpoint ? endpoint : "*"));
		else
			printf("reset the counters of %s\n",
			       endpoint ? endpoint : "every endpoint");
		goto cleanup;
	}
	out = json_array();
	if (!agent_cfg.json)
		printf("%-20s %-20s %-7s %10s %8s %8s %8s %8s %8s %7s %12s %12s %9s %9s\n",
		       "ENDPOINT", "BACKEND", "ROLE", "REQUESTS", "1XX", "2XX", "3XX", "4XX", "5XX",
		       "ERRORS", "BYTES_IN", "BYTES_OUT", "P50_US", "P99_US");
	for (c = 0; c < SW_MAX_CELLS; c++) {
		const struct sw_cell *cell = &m.cells[c];
		const char *ep_name = "?", *be_name = "?";
		const char *role;
		__u64 errors = 0;

		if (!(cell->flags & SW_F_IN_USE))
			continue;
		if (filter != SW_ID_NONE && cell->endpoint_id != filter)
			continue;
		if (!sw_endpoint_read(&m, cell->endpoint_id, &ep, NULL) && (ep.flags & SW_F_IN_USE))
			ep_name = ep.name;
		if (!sw_backend_read(&m, cell->backend_id, &b) && (b.flags & SW_F_IN_USE))
			be_name = b.name;
		role = cell->role == SW_ROLE_SHADOW ? "shadow" : "primary";
		sw_cell_sum(cell, &sum);
		for (i = 0; i < SW_ERR_MAX; i++)
			errors += sum.errors[i];
		if (!agent_cfg.json)
			printf("%-20s %-20s %-7s %10llu %8llu %8llu %8llu %8llu %8llu %7llu %12llu "
			       "%12llu %9llu %9llu\n",
			       ep_name, be_name, role, (unsigned long long)sum.requests,
			       (unsigned long long)sum.status[0], (unsigned long long)sum.status[1],
			       (unsigned long long)sum.status[2], (unsigned long long)sum.status[3],
			       (unsigned long long)sum.status[4], (unsigned long long)errors,
			       (unsigned long long)sum.bytes_from_client,
			       (unsigned long long)sum.bytes_to_client,
			       (unsigned long long)latency_quantile(&sum, 0.5),
			       (unsigned long long)latency_quantile(&sum, 0.99));
		json_array_append_new(out, json_pack("{s:s, s:s, s:s, s:i, s:o}", "endpoint",
						     ep_name, "backend", be_name, "role", role,
						     "cell", c, "counters", counters_json(&sum)));
	}
	if (agent_cfg.json)
		err = json_print(out);
	else
		json_decref(out);
cleanup:
	sw_maps_close(&m);
	return err;
}
