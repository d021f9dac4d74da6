// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/* What swclient counts while it runs, and the JSON report it prints at the end. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"

struct results results;

/* The id of backend name, added on first sight; -ENOMEM. */
int backend_intern(const char *name)
{
	struct backend *grown;

	for (int i = 0; i < results.nr_backends; i++) {
		if (!strcmp(results.backends[i].name, name))
			return i;
	}
	if (results.nr_backends == results.backends_cap) {
		int cap = results.backends_cap ? results.backends_cap * 2 : 16;

		grown = realloc(results.backends, cap * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		results.backends = grown;
		results.backends_cap = cap;
	}
	results.backends[results.nr_backends].name = strdup(name);
	if (!results.backends[results.nr_backends].name)
		return -ENOMEM;
	results.backends[results.nr_backends].responses = 0;
	return results.nr_backends++;
}

int id_set_add(struct id_set *set, int id)
{
	for (int i = 0; i < set->len; i++) {
		if (set->ids[i] == id)
			return 0;
	}
	if (set->len == set->cap) {
		int cap = set->cap ? set->cap * 2 : 4;
		int *grown = realloc(set->ids, cap * sizeof(*grown));

		if (!grown)
			return -ENOMEM;
		set->ids = grown;
		set->cap = cap;
	}
	set->ids[set->len++] = id;
	return 0;
}

int latency_add(uint64_t us)
{
	if (results.nr_latency == results.latency_cap) {
		size_t cap = results.latency_cap ? results.latency_cap * 2 : 1024;
		uint64_t *grown = realloc(results.latency_us, cap * sizeof(*grown));

		if (!grown)
			return -ENOMEM;
		results.latency_us = grown;
		results.latency_cap = cap;
	}
	results.latency_us[results.nr_latency++] = us;
	return 0;
}

static void json_string_print(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = *s;

		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20 || ch == 0x7f)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

static int backend_name_cmp(const void *a, const void *b)
{
	const struct backend *x = *(const struct backend *const *)a;
	const struct backend *y = *(const struct backend *const *)b;

	return strcmp(x->name, y->name);
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The nearest-rank percentile q of the sorted latencies. */
static uint64_t latency_percentile(double q)
{
	size_t rank;

	if (!results.nr_latency)
		return 0;
	rank = (size_t)(q * results.nr_latency + 0.999999);
	return results.latency_us[rank ? rank - 1 : 0];
}

/* Prints the report as one JSON object; backends and key sets sorted by name. 0 or -ENOMEM. */
int report_print(void)
{
	struct backend **sorted = calloc(results.nr_backends + 1, sizeof(*sorted));
	const char *sep = "";

	if (!sorted)
		return -ENOMEM;
	for (int i = 0; i < results.nr_backends; i++)
		sorted[i] = &results.backends[i];
	if (results.nr_backends)
		qsort(sorted, results.nr_backends, sizeof(*sorted), backend_name_cmp);
	if (results.nr_latency)
		qsort(results.latency_us, results.nr_latency, sizeof(uint64_t), u64_cmp);

	printf("{\"requests\": %" PRIu64 ", \"responses\": %" PRIu64 ", \"errors\": %" PRIu64
	       ", \"error_kinds\": {\"connect\": %" PRIu64 ", \"closed\": %" PRIu64
	       ", \"reset\": %" PRIu64 ", \"timeout\": %" PRIu64 ", \"bad_response\": %" PRIu64
	       "}, \"status\": {",
	       results.requests, results.responses, results.errors,
	       results.error_kinds[ERR_CONNECT], results.error_kinds[ERR_CLOSED],
	       results.error_kinds[ERR_RESET], results.error_kinds[ERR_TIMEOUT],
	       results.error_kinds[ERR_BAD]);
	for (int code = 0; code < 1000; code++) {
		if (!results.status[code])
			continue;
		printf("%s\"%d\": %" PRIu64, sep, code, results.status[code]);
		sep = ", ";
	}
	printf("}, \"backends\": {");
	for (int i = 0; i < results.nr_backends; i++) {
		printf("%s", i ? ", " : "");
		json_string_print(sorted[i]->name);
		printf(": %" PRIu64, sorted[i]->responses);
	}
	printf("}");
	if (cfg.keys) {
		printf(", \"keys\": {");
		for (long long k = 0; k < cfg.keys; k++) {
			struct id_set *set = &results.keys[k];
			int printed = 0;

			printf("%s\"%s%lld\": [", k ? ", " : "", cfg.key_prefix, k);
			/* The sorted backend list, filtered by the key's set, is its sorted set. */
			for (int i = 0; i < results.nr_backends; i++) {
				for (int j = 0; j < set->len; j++) {
					if (&results.backends[set->ids[j]] != sorted[i])
						continue;
					printf("%s", printed++ ? ", " : "");
					json_string_print(sorted[i]->name);
				}
			}
			printf("]");
		}
		printf("}");
	}
	printf(", \"latency_us\": {\"p50\": %" PRIu64 ", \"p99\": %" PRIu64 ", \"max\": %" PRIu64
	       "}, \"shadow_seen\": %" PRIu64 "}\n",
	       latency_percentile(0.50), latency_percentile(0.99), latency_percentile(1.0),
	       results.shadow_seen);
	free(sorted);
	return fflush(stdout) ? -errno : 0;
}
