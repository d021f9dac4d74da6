// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/* sockway stats [ENDPOINT] [--reset]: the counter cells, summed over their shards. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
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

/* One counter cell, summed, with the names of its endpoint and backend. */
struct stats_row {
	__u32 cell;
	const char *role;
	char endpoint[SW_NAME_MAX];
	char backend[SW_NAME_MAX];
	struct sw_counters sum;
};

struct stats_view {
	__u32 nr;
	struct stats_row rows[SW_MAX_CELLS];
};

static void list_plain(const void *data)
{
	const struct stats_view *v = data;
	__u64 errors;
	__u32 r;
	int i;

	printf("%-20s %-20s %-7s %10s %8s %8s %8s %8s %8s %7s %12s %12s %9s %9s\n", "ENDPOINT",
	       "BACKEND", "ROLE", "REQUESTS", "1XX", "2XX", "3XX", "4XX", "5XX", "ERRORS",
	       "BYTES_IN", "BYTES_OUT", "P50_US", "P99_US");
	for (r = 0; r < v->nr; r++) {
		const struct stats_row *row = &v->rows[r];
		const struct sw_counters *c = &row->sum;

		for (i = 0, errors = 0; i < SW_ERR_MAX; i++)
			errors += c->errors[i];
		printf("%-20s %-20s %-7s %10llu %8llu %8llu %8llu %8llu %8llu %7llu %12llu %12llu "
		       "%9llu %9llu\n",
		       row->endpoint, row->backend, row->role, (unsigned long long)c->requests,
		       (unsigned long long)c->status[0], (unsigned long long)c->status[1],
		       (unsigned long long)c->status[2], (unsigned long long)c->status[3],
		       (unsigned long long)c->status[4], (unsigned long long)errors,
		       (unsigned long long)c->bytes_from_client,
		       (unsigned long long)c->bytes_to_client,
		       (unsigned long long)latency_quantile(c, 0.5),
		       (unsigned long long)latency_quantile(c, 0.99));
	}
}

static json_t *list_json(const void *data)
{
	const struct stats_view *v = data;
	json_t *out = json_array();
	__u32 r;

	for (r = 0; r < v->nr; r++) {
		const struct stats_row *row = &v->rows[r];

		json_array_append_new(out, json_pack("{s:s, s:s, s:s, s:i, s:o}", "endpoint",
						     row->endpoint, "backend", row->backend, "role",
						     row->role, "cell", row->cell, "counters",
						     counters_json(&row->sum)));
	}
	return out;
}

static const struct printer list_printer = {list_plain, list_json};

/* The cells in use, of endpoint filter (SW_ID_NONE: all), summed over their shards. */
static void stats_read(struct sw_maps *m, __u32 filter, struct stats_view *v)
{
	struct sw_endpoint ep;
	struct sw_backend b;
	__u32 c;

	for (c = 0; c < SW_MAX_CELLS; c++) {
		const struct sw_cell *cell = &m->cells[c];
		struct stats_row *row = &v->rows[v->nr];

		if (!(cell->flags & SW_F_IN_USE))
			continue;
		if (filter != SW_ID_NONE && cell->endpoint_id != filter)
			continue;
		row->cell = c;
		row->role = cell->role == SW_ROLE_SHADOW ? "shadow" : "primary";
		ep.flags = 0;
		sw_endpoint_read(m, cell->endpoint_id, &ep, NULL);
		strcpy(row->endpoint, ep.flags & SW_F_IN_USE ? ep.name : "?");
		b.flags = 0;
		sw_backend_read(m, cell->backend_id, &b);
		strcpy(row->backend, b.flags & SW_F_IN_USE ? b.name : "?");
		sw_cell_sum(cell, &row->sum);
		v->nr++;
	}
}

/* Whose counters --reset zeroed: one endpoint's, or (NULL) every endpoint's. */
static void reset_plain(const void *data)
{
	printf("reset the counters of %s\n", data ? (const char *)data : "every endpoint");
}

static json_t *reset_json(const void *data)
{
	return json_pack("{s:s}", "reset", data ? (const char *)data : "*");
}

static const struct printer reset_printer = {reset_plain, reset_json};

int do_stats(int argc, char **argv)
{
	const char *endpoint = NULL;
	__u32 filter = SW_ID_NONE;
	struct stats_view *v = NULL;
	bool reset = false;
	struct sw_maps m;
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
				  "endpoint \"%s\" does not exist; see \"sockway endpoint list\"",
				  endpoint);
		goto cleanup;
	}
	if (reset) {
		sw_cells_reset(&m, filter);
		err = agent_print(&reset_printer, endpoint);
		goto cleanup;
	}
	v = calloc(1, sizeof(*v));
	if (!v) {
		err = agent_error(-ENOMEM, "out of memory");
		goto cleanup;
	}
	stats_read(&m, filter, v);
	err = agent_print(&list_printer, v);
cleanup:
	free(v);
	sw_maps_close(&m);
	return err;
}
