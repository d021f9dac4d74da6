// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/* sockway stats [ENDPOINT] [--reset]: the counter cells, summed over their shards. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "main.h"

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
static void stats_read(struct sw_maps *m, const struct cell_names *names, __u32 filter,
		       struct stats_view *v)
{
	__u32 c;

	for (c = 0; c < SW_MAX_CELLS; c++) {
		const struct sw_cell *cell = &m->cells[c];
		struct stats_row *row = &v->rows[v->nr];

		if (!(cell->flags & SW_F_IN_USE))
			continue;
		if (filter != SW_ID_NONE && cell->endpoint_id != filter)
			continue;
		row->cell = c;
		row->role = cell_role(cell);
		strcpy(row->endpoint, cell_endpoint(names, cell));
		strcpy(row->backend, cell_backend(names, cell));
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
	struct cell_names *names = NULL;
	struct stats_view *v = NULL;
	struct sw_err e = {};
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
	names = malloc(sizeof(*names));
	if (!v || !names) {
		err = agent_error(-ENOMEM, "out of memory");
		goto cleanup;
	}
	err = cell_names_read(&m, names, &e);
	if (err) {
		agent_fail(&e, err);
		goto cleanup;
	}
	stats_read(&m, names, filter, v);
	err = agent_print(&list_printer, v);
cleanup:
	free(names);
	free(v);
	sw_maps_close(&m);
	return err;
}
