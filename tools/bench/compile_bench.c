// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * compile_bench: how long policy_compile_slots() takes, as median, min and max over a
 * number of runs, for splits of 2, 8 and 64 backends at 16384 and 65536 slots. The budget
 * is 20 ms for 64 backends at 65536 slots: an agent compiles every endpoint of a policy
 * on each commit.
 *
 *   compile_bench [RUNS]      (default 50)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "compile.h"

#define DEFAULT_RUNS 50

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/*
 * nr backends with distinct weights (nr + i parts out of 3 nr^2 / 2 - nr / 2, roughly
 * equal), so that ties cannot make the rendezvous loop faster than it is in practice.
 */
static void make_weights(struct sw_policy_weight *w, __u32 nr)
{
	__u64 sum = 0, given = 0;
	__u32 i;

	for (i = 0; i < nr; i++)
		sum += nr + i;
	for (i = 0; i < nr; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		/* Two digits keep the names sorted. */
		snprintf(w[i].backend, sizeof(w[i].backend), "backend-%02u", i);
		w[i].weight = (nr + i) * (__u64)SW_WEIGHT_ONE / sum;
		given += w[i].weight;
	}
	w[nr - 1].weight += SW_WEIGHT_ONE - given;
}

static int bench(__u32 nr, __u32 nr_slots, int runs)
{
	struct sw_policy_weight w[SW_MAX_SPLIT];
	double *ms = NULL;
	__u8 *table = NULL;
	int i, err = 0;

	ms = calloc(runs, sizeof(*ms));
	table = malloc(nr_slots);
	if (!ms || !table) {
		err = -ENOMEM;
		goto cleanup;
	}
	make_weights(w, nr);
	for (i = 0; i < runs; i++) {
		double start = now_ms();

		err = policy_compile_slots(w, nr, table, nr_slots);
		if (err)
			goto cleanup;
		ms[i] = now_ms() - start;
	}
	qsort(ms, runs, sizeof(*ms), cmp_double);
	printf("%8u %8u %10.3f %10.3f %10.3f\n", nr, nr_slots, ms[runs / 2], ms[0], ms[runs - 1]);
cleanup:
	free(table);
	free(ms);
	return err;
}

int main(int argc, char **argv)
{
	static const struct {
		__u32 nr, nr_slots;
	} cases[] = {
		{64, 65536}, {64, 16384}, {8, 65536}, {8, 16384}, {2, 65536}, {2, 16384},
	};
	int runs = DEFAULT_RUNS;
	size_t i;
	int err;

	if (argc > 2 || (argc == 2 && (runs = atoi(argv[1])) < 1)) {
		fprintf(stderr, "usage: %s [RUNS]: RUNS is a number of runs above 0 (default %d)\n",
			argv[0], DEFAULT_RUNS);
		return 2;
	}
	printf("%8s %8s %10s %10s %10s   (%d runs)\n", "backends", "slots", "median ms", "min ms",
	       "max ms", runs);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err = bench(cases[i].nr, cases[i].nr_slots, runs);
		if (err) {
			fprintf(stderr, "compile_bench: policy_compile_slots: %s\n",
				strerror(-err));
			return 1;
		}
	}
	return 0;
}
