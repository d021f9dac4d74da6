// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * The policy compiler (user/lib/compile.c): every backend gets its exact share of slots,
 * every host builds the same table, and a weight change moves close to the fewest slots
 * it can. The movement tests print each step's ratio of slots moved to that minimum.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "compile.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define ONE	      SW_WEIGHT_ONE
#define MAX_TABLE     (1U << 20)

/* A split as the agent hands it over: sorted by backend name. */
struct split {
	__u32 nr;
	struct sw_policy_weight w[SW_MAX_SPLIT];
};

static int cmp_weight(const void *a, const void *b)
{
	return strcmp(((const struct sw_policy_weight *)a)->backend,
		      ((const struct sw_policy_weight *)b)->backend);
}

static void split_add(struct split *sp, const char *name, __u32 weight)
{
	assert_true(sp->nr < SW_MAX_SPLIT);
	memset(&sp->w[sp->nr], 0, sizeof(sp->w[sp->nr]));
	snprintf(sp->w[sp->nr].backend, SW_NAME_MAX, "%s", name);
	sp->w[sp->nr].weight = weight;
	sp->nr++;
	qsort(sp->w, sp->nr, sizeof(sp->w[0]), cmp_weight);
}

/* A split from a list of (name, weight) pairs ending in a NULL name. */
static struct split make_split(const char *name, ...)
{
	struct split sp = {0};
	va_list ap;

	va_start(ap, name);
	for (; name; name = va_arg(ap, const char *))
		split_add(&sp, name, va_arg(ap, __u32));
	va_end(ap);
	return sp;
}

static __u8 *compile(const struct split *sp, __u32 nr_slots)
{
	__u8 *table = malloc(nr_slots);

	assert_non_null(table);
	assert_int_equal(policy_compile_slots(sp->w, sp->nr, table, nr_slots), 0);
	return table;
}

static void count_slots(const struct split *sp, const __u8 *table, __u32 nr_slots, __u32 *count)
{
	__u32 s;

	memset(count, 0, SW_MAX_SPLIT * sizeof(*count));
	for (s = 0; s < nr_slots; s++) {
		assert_true(table[s] < sp->nr);
		count[table[s]]++;
	}
}

/* xorshift64: a fixed seed makes the "random" weights the same in every run. */
static __u64 next_random(__u64 *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 7;
	*state ^= *state << 17;
	return *state;
}

/* ---- exact shares ---- */

static const struct split *remainder_order_split;
static const __u64 *remainder_order_rem;

/* Larger remainder first, then the smaller name (the split is sorted, so the lower index). */
static int cmp_remainder(const void *a, const void *b)
{
	__u32 i = *(const __u32 *)a, j = *(const __u32 *)b;

	if (remainder_order_rem[i] != remainder_order_rem[j])
		return remainder_order_rem[i] > remainder_order_rem[j] ? -1 : 1;
	return strcmp(remainder_order_split->w[i].backend, remainder_order_split->w[j].backend);
}

/* The reference: largest remainder apportionment, written out independently of compile.c. */
static void expected_counts(const struct split *sp, __u32 nr_slots, __u32 *count)
{
	__u64 sum = 0, rem[SW_MAX_SPLIT];
	__u32 order[SW_MAX_SPLIT], i, given = 0;

	for (i = 0; i < sp->nr; i++)
		sum += sp->w[i].weight;
	for (i = 0; i < sp->nr; i++) {
		count[i] = (__u64)sp->w[i].weight * nr_slots / sum;
		rem[i] = (__u64)sp->w[i].weight * nr_slots % sum;
		given += count[i];
		order[i] = i;
	}
	remainder_order_split = sp;
	remainder_order_rem = rem;
	qsort(order, sp->nr, sizeof(order[0]), cmp_remainder);
	for (i = 0; given < nr_slots; i++, given++)
		count[order[i]]++;
}

static void check_exact(const struct split *sp, __u32 nr_slots)
{
	__u32 count[SW_MAX_SPLIT], want[SW_MAX_SPLIT], i;
	__u64 sum = 0;
	__u8 *table = compile(sp, nr_slots);

	count_slots(sp, table, nr_slots, count);
	expected_counts(sp, nr_slots, want);
	for (i = 0; i < sp->nr; i++)
		sum += sp->w[i].weight;
	for (i = 0; i < sp->nr; i++) {
		__u64 share = (__u64)sp->w[i].weight * nr_slots; /* slots * sum */

		if (count[i] != want[i])
			print_error("%s: %u slots of %u, want %u\n", sp->w[i].backend, count[i],
				    nr_slots, want[i]);
		assert_int_equal(count[i], want[i]);
		/* Within one slot of weight / sum * nr_slots. */
		assert_true((__u64)count[i] * sum < share + sum);
		assert_true((__u64)count[i] * sum + sum > share);
		if (!sp->w[i].weight)
			assert_int_equal(count[i], 0);
	}
	free(table);
}

static void test_exact_shares(void **state)
{
	static const __u32 sizes[] = {1024, 16384, 65536};
	struct split sets[] = {
		make_split("a", ONE, NULL),
		make_split("default_backend", 990000000U, "canary_backend", 10000000U, NULL),
		make_split("a", 999000000U, "b", 1000000U, NULL),
		make_split("a", 998000000U, "b", 1000000U, "c", 1000000U, NULL),
		make_split("a", 333333333U, "b", 333333333U, "c", 333333334U, NULL),
		make_split("a", 1U, "b", ONE - 1, NULL),
		make_split("a", 0U, "b", ONE, NULL),
		make_split("a", 0U, "b", ONE / 2, "c", 0U, "d", ONE / 2, NULL),
		/* Sums other than 1.0 share by weight / sum. */
		make_split("x", 1U, "y", 1U, "z", 1U, NULL),
		make_split("x", 7U, "y", 3U, NULL),
		make_split("x", 0xffffffffU, "y", 0xffffffffU, "z", 1U, NULL),
		make_split("p", 123456789U, "q", 987654321U, "r", 55555U, "s", 0U, NULL),
	};
	struct split random = {0}, sparse = {0};
	__u64 seed = 20240611;
	char name[SW_NAME_MAX];
	__u32 i, j;

	(void)state;
	for (i = 0; i < SW_MAX_SPLIT; i++) {
		snprintf(name, sizeof(name), "backend-%02u", i);
		split_add(&random, name, next_random(&seed) % (ONE / 32) + 1);
		/* Every fifth weight 0, the rest spread over six orders of magnitude. */
		split_add(&sparse, name, i % 5 ? (__u32)(next_random(&seed) % 1000000) + 1 : 0);
	}
	for (i = 0; i < ARRAY_SIZE(sets); i++)
		for (j = 0; j < ARRAY_SIZE(sizes); j++)
			check_exact(&sets[i], sizes[j]);
	for (j = 0; j < ARRAY_SIZE(sizes); j++) {
		check_exact(&random, sizes[j]);
		check_exact(&sparse, sizes[j]);
	}
	check_exact(&sets[3], MAX_TABLE);
}

/* Equal remainders go to the first name: 1024 / 3 leaves one slot, and "a" gets it. */
static void test_ties_go_to_first_name(void **state)
{
	struct split sp = make_split("c", 1U, "a", 1U, "b", 1U, NULL);
	__u32 count[SW_MAX_SPLIT];
	__u8 *table = compile(&sp, 1024);

	(void)state;
	count_slots(&sp, table, 1024, count);
	assert_string_equal(sp.w[0].backend, "a");
	assert_int_equal(count[0], 342);
	assert_int_equal(count[1], 341);
	assert_int_equal(count[2], 341);
	free(table);
}

/*
 * A share under one slot that the remainder rounds up to one: so small that no slot ranks
 * the backend second (at 16384 slots with these names), and still it gets its slot.
 */
static void test_tiny_share_gets_its_slot(void **state)
{
	static const __u32 sizes[] = {1024, 16384, 65536};
	char name[SW_NAME_MAX];
	__u32 i, j;

	(void)state;
	for (j = 0; j < ARRAY_SIZE(sizes); j++) {
		struct split sp = {0};

		for (i = 0; i < SW_MAX_SPLIT - 1; i++) {
			snprintf(name, sizeof(name), "backend-%02u", i);
			split_add(&sp, name, 15873000U);
		}
		/* 0.6 slots: the largest remainder of all. */
		split_add(&sp, "backend-63", 600000U / (sizes[j] / 1024));
		check_exact(&sp, sizes[j]);
	}
}

/* ---- determinism ---- */

static __u64 fnv_table(const __u8 *table, __u32 nr_slots)
{
	__u64 h = 0xcbf29ce484222325ULL;
	__u32 s;

	for (s = 0; s < nr_slots; s++)
		h = (h ^ table[s]) * 0x00000100000001b3ULL;
	return h;
}

static void test_deterministic(void **state)
{
	struct split sp = make_split("default_backend", 980000000U, "canary_backend", 10000000U,
				     "new_backend", 10000000U, NULL);
	struct split other = make_split("x", 5U, "y", 7U, NULL);
	struct sw_policy_weight *copy;
	__u8 *first, *second, *third, *unrelated;
	__u32 i;

	(void)state;
	first = compile(&sp, 16384);
	second = compile(&sp, 16384);
	assert_memory_equal(first, second, 16384);

	/* Another table in between, and the same split built apart at another address. */
	unrelated = compile(&other, 65536);
	copy = calloc(sp.nr + 1, sizeof(*copy));
	assert_non_null(copy);
	for (i = 0; i < sp.nr; i++) {
		snprintf(copy[i + 1].backend, SW_NAME_MAX, "%s", sp.w[i].backend);
		copy[i + 1].weight = sp.w[i].weight;
	}
	third = malloc(16384);
	assert_non_null(third);
	assert_int_equal(policy_compile_slots(copy + 1, sp.nr, third, 16384), 0);
	assert_memory_equal(first, third, 16384);
	free(copy);
	free(unrelated);
	free(third);
	free(second);
	free(first);
}

/*
 * Every host must build these exact bytes: a different table would send the same shard key
 * to another backend on another host. A change here is a change of the table format.
 */
static void test_golden_tables(void **state)
{
	struct split canary =
		make_split("default_backend", 990000000U, "canary_backend", 10000000U, NULL);
	struct split wide = {0};
	char name[SW_NAME_MAX];
	__u8 *table;
	__u32 i;

	(void)state;
	for (i = 0; i < SW_MAX_SPLIT; i++) {
		snprintf(name, sizeof(name), "backend-%02u", i);
		split_add(&wide, name, (i + 1) * 100000U);
	}
	table = compile(&canary, SW_SLOTS);
	print_message("golden canary %#llx\n", (unsigned long long)fnv_table(table, SW_SLOTS));
	assert_true(fnv_table(table, SW_SLOTS) == 0xe2f98041c081c08fULL);
	free(table);
	table = compile(&wide, 65536);
	print_message("golden wide %#llx\n", (unsigned long long)fnv_table(table, 65536));
	assert_true(fnv_table(table, 65536) == 0x94728273dd7a2aa5ULL);
	free(table);
}

/* A backend with weight 0 takes no slot and changes no other slot. */
static void test_zero_weight_moves_nothing(void **state)
{
	struct split before = make_split("b", 600000000U, "d", 400000000U, NULL);
	struct split after = before;
	__u8 *t1, *t2;

	(void)state;
	split_add(&after, "a", 0);
	split_add(&after, "c", 0);
	t1 = compile(&before, 16384);
	t2 = compile(&after, 16384);
	assert_int_equal(policy_slots_moved(before.w, before.nr, t1, after.w, after.nr, t2, 16384),
			 0);
	free(t2);
	free(t1);
}

/* ---- movement ---- */

/* The fewest slots any table could move: half the sum of count changes, by name. */
static __u32 min_moved(const struct split *a, const __u32 *ca, const struct split *b,
		       const __u32 *cb)
{
	__u32 i, j, sum = 0;

	for (i = 0; i < a->nr; i++) {
		__u32 now = 0;

		for (j = 0; j < b->nr; j++)
			if (!strcmp(a->w[i].backend, b->w[j].backend))
				now = cb[j];
		sum += ca[i] > now ? ca[i] - now : now - ca[i];
	}
	for (j = 0; j < b->nr; j++) {
		bool known = false;

		for (i = 0; i < a->nr; i++)
			known |= !strcmp(a->w[i].backend, b->w[j].backend);
		if (!known)
			sum += cb[j];
	}
	return sum / 2;
}

/*
 * Compiles each split of a sequence and checks every step: moved <= 1.1 * minimum + 2 slots
 * (2 / nr_slots as a fraction). With exact set, the step must move the minimum itself.
 */
static void check_sequence(const char *what, const struct split *steps, __u32 nr_steps,
			   __u32 nr_slots, bool exact)
{
	__u32 count[2][SW_MAX_SPLIT], i, moved, least;
	char line[256];
	__u8 *table[2];
	int len;

	len = snprintf(line, sizeof(line), "%-11s %5u:", what, nr_slots);
	table[0] = compile(&steps[0], nr_slots);
	count_slots(&steps[0], table[0], nr_slots, count[0]);
	for (i = 1; i < nr_steps; i++) {
		__u32 a = (i - 1) & 1, b = i & 1;

		table[b] = compile(&steps[i], nr_slots);
		count_slots(&steps[i], table[b], nr_slots, count[b]);
		moved = policy_slots_moved(steps[i - 1].w, steps[i - 1].nr, table[a], steps[i].w,
					   steps[i].nr, table[b], nr_slots);
		least = min_moved(&steps[i - 1], count[a], &steps[i], count[b]);
		len += snprintf(line + len, sizeof(line) - len, " %.4f", (double)moved / least);
		if (moved * 10 > least * 11 + 20 || (exact && moved != least))
			print_error("%s step %u: moved %u slots, minimum %u\n", what, i, moved,
				    least);
		assert_true(moved * 10 <= least * 11 + 20);
		if (exact)
			assert_int_equal(moved, least);
		free(table[a]);
	}
	free(table[(nr_steps - 1) & 1]);
	print_message("%s\n", line);
}

static const __u32 movement_sizes[] = {16384, 65536};

static void test_move_canary(void **state)
{
	const struct split steps[] = {
		make_split("default_backend", ONE, NULL),
		make_split("default_backend", 990000000U, "canary_backend", 10000000U, NULL),
		make_split("default_backend", 980000000U, "canary_backend", 10000000U,
			   "new_backend", 10000000U, NULL),
		make_split("new_backend", ONE, NULL),
		make_split("default_backend", ONE, NULL),
	};
	__u32 i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(movement_sizes); i++)
		check_sequence("canary", steps, ARRAY_SIZE(steps), movement_sizes[i], false);
}

/* Between two backends the slots nest: a shift moves exactly the shifted share. */
static void test_move_incremental(void **state)
{
	const struct split steps[] = {
		make_split("old_backend", 900000000U, "new_backend", 100000000U, NULL),
		make_split("old_backend", 800000000U, "new_backend", 200000000U, NULL),
		make_split("old_backend", 500000000U, "new_backend", 500000000U, NULL),
		make_split("new_backend", ONE, NULL),
	};
	__u32 i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(movement_sizes); i++)
		check_sequence("incremental", steps, ARRAY_SIZE(steps), movement_sizes[i], true);
}

static void test_move_add_remove(void **state)
{
	const struct split five = make_split("b1", ONE / 5, "b2", ONE / 5, "b3", ONE / 5, "b4",
					     ONE / 5, "b5", ONE / 5, NULL);
	const struct split six = make_split("b1", ONE / 6, "b2", ONE / 6, "b3", ONE / 6, "b4",
					    ONE / 6, "b5", ONE / 6, "b6", ONE / 6, NULL);
	const struct split four =
		make_split("b1", ONE / 4, "b2", ONE / 4, "b4", ONE / 4, "b5", ONE / 4, NULL);
	const struct split grow[] = {five, six, five};
	const struct split shrink[] = {five, four};
	__u32 i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(movement_sizes); i++) {
		check_sequence("5->6->5", grow, ARRAY_SIZE(grow), movement_sizes[i], false);
		check_sequence("5->4", shrink, ARRAY_SIZE(shrink), movement_sizes[i], false);
	}
}

/* ---- arguments ---- */

static void test_bad_args(void **state)
{
	struct split sp = make_split("a", ONE / 2, "b", ONE / 2, NULL);
	struct split zero = make_split("a", 0U, "b", 0U, NULL);
	struct split big = {0};
	static __u8 table[2 * MAX_TABLE];
	char name[SW_NAME_MAX];
	__u32 i;

	(void)state;
	for (i = 0; i < SW_MAX_SPLIT; i++) {
		snprintf(name, sizeof(name), "b%02u", i);
		split_add(&big, name, ONE / SW_MAX_SPLIT);
	}
	assert_int_equal(policy_compile_slots(big.w, SW_MAX_SPLIT, table, 1024), 0);
	/* One past the limit, refused before any entry is read. */
	assert_int_equal(policy_compile_slots(big.w, SW_MAX_SPLIT + 1, table, 1024), -EINVAL);
	assert_int_equal(policy_compile_slots(sp.w, 0, table, 1024), -EINVAL);
	assert_int_equal(policy_compile_slots(sp.w, 2, table, 1000), -EINVAL);
	assert_int_equal(policy_compile_slots(sp.w, 2, table, 3 * 1024), -EINVAL);
	assert_int_equal(policy_compile_slots(sp.w, 2, table, 512), -EINVAL);
	assert_int_equal(policy_compile_slots(sp.w, 2, table, 0), -EINVAL);
	assert_int_equal(policy_compile_slots(sp.w, 2, table, 2 * MAX_TABLE), -EINVAL);
	assert_int_equal(policy_compile_slots(sp.w, 2, table, MAX_TABLE), 0);
	assert_int_equal(policy_compile_slots(zero.w, 2, table, 1024), -EINVAL);
	assert_int_equal(policy_compile_slots(NULL, 2, table, 1024), -EINVAL);
	assert_int_equal(policy_compile_slots(sp.w, 2, NULL, 1024), -EINVAL);

	/* Unsorted or repeated names, and a name without its NUL. */
	memcpy(&zero.w[0], &sp.w[1], sizeof(sp.w[1]));
	memcpy(&zero.w[1], &sp.w[0], sizeof(sp.w[0]));
	assert_int_equal(policy_compile_slots(zero.w, 2, table, 1024), -EINVAL);
	memcpy(&zero.w[0], &sp.w[0], sizeof(sp.w[0]));
	assert_int_equal(policy_compile_slots(zero.w, 2, table, 1024), -EINVAL);
	memset(zero.w[1].backend, 'z', SW_NAME_MAX);
	assert_int_equal(policy_compile_slots(zero.w, 2, table, 1024), -EINVAL);
}

/* ---- policy_slots_moved ---- */

static void test_slots_moved(void **state)
{
	struct split ab = make_split("a", 1U, "b", 1U, NULL);
	struct split aab = make_split("a", 1U, "aa", 1U, "b", 1U, NULL);
	struct split ac = make_split("a", 1U, "c", 1U, NULL);
	static const __u8 t_ab[8] = {0, 1, 0, 1, 0, 1, 0, 1};
	/* The same backends as t_ab at their new indexes, then slot 7 from "b" to "aa". */
	static const __u8 t_aab[8] = {0, 2, 0, 2, 0, 2, 0, 1};
	static const __u8 t_ac[8] = {0, 1, 0, 1, 1, 1, 0, 0};
	static const __u8 t_bad[8] = {0, 1, 0, 1, 0, 1, 0, 9};

	(void)state;
	assert_int_equal(policy_slots_moved(ab.w, ab.nr, t_ab, ab.w, ab.nr, t_ab, 8), 0);
	assert_int_equal(policy_slots_moved(ab.w, ab.nr, t_ab, aab.w, aab.nr, t_aab, 8), 1);
	assert_int_equal(policy_slots_moved(aab.w, aab.nr, t_aab, ab.w, ab.nr, t_ab, 8), 1);
	/* "b" became "c": its 4 slots moved by name (slot 7 to "a"), and slot 4 from "a". */
	assert_int_equal(policy_slots_moved(ab.w, ab.nr, t_ab, ac.w, ac.nr, t_ac, 8), 5);
	/* An index past the split names no backend: that slot counts as moved. */
	assert_int_equal(policy_slots_moved(ab.w, ab.nr, t_ab, ab.w, ab.nr, t_bad, 8), 1);
	assert_int_equal(policy_slots_moved(ab.w, ab.nr, t_bad, ab.w, ab.nr, t_ab, 8), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exact_shares),
		cmocka_unit_test(test_ties_go_to_first_name),
		cmocka_unit_test(test_tiny_share_gets_its_slot),
		cmocka_unit_test(test_deterministic),
		cmocka_unit_test(test_golden_tables),
		cmocka_unit_test(test_zero_weight_moves_nothing),
		cmocka_unit_test(test_move_canary),
		cmocka_unit_test(test_move_incremental),
		cmocka_unit_test(test_move_add_remove),
		cmocka_unit_test(test_bad_args),
		cmocka_unit_test(test_slots_moved),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
