// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * The policy compiler: an endpoint's weights become a slot table.
 *
 * Weighted rendezvous hashing scores backend k at slot s with -log2(U(name_k, s)) / weight_k,
 * U uniform in (0, 1], and gives the slot to the smallest score. A weight change then moves
 * only the slots it must, but each backend gets its share only on average. So the table is
 * the one with exact counts that minimises the sum over slots of log2(score), each slot
 * going to one of its two best backends: a min-cost flow from rendezvous, solved by
 * successive shortest paths between backends. Its corrections follow the score margins
 * (two backends always nest) and chain through third backends, so near weights give near
 * tables.
 *
 * Every host must build the same table, so there is no floating point: a float result
 * depends on the rounding mode, on FMA contraction and, for log(), on the libm version.
 * Scores are integers: a fixed-point log2 from a table that integer squaring builds, times
 * a fixed-point 1 / weight.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "sockway/hash.h"
#include "compile.h"

typedef unsigned __int128 sw_u128;

/* Spreads slot numbers over the 64 bits before they meet a name's hash (2^64 / golden ratio). */
#define SLOT_SALT 0x9e3779b97f4a7c15ULL

/* Slots that share one group_hash(). */
#define SLOT_GROUP 4

/*
 * log2(1 + k / LOG2_STEPS) in Q32, interpolated linearly in between: the error stays below
 * 3e-6, far below the counting noise that the apportionment corrects anyway.
 */
#define LOG2_BITS  8
#define LOG2_STEPS (1U << LOG2_BITS)

/* floor(2^63 / ln 2), rounded down so that bound_score() stays a lower bound. */
#define HALF_INV_LN2_Q64 0xb8aa3b295c17f0bbULL

/* -log2(U) at the total weight that sets the candidate threshold of rendezvous(), Q32. */
#define THRESHOLD_NEG_LOG (12ULL << 32)

/*
 * Backends a slot may go to: its rendezvous winner and runner-up. More make the flow a
 * little cheaper and the compile slower; rendezvous() needs as many live backends.
 */
#define NR_KEPT 2

#define MIN_SLOTS (1U << 10)
#define MAX_SLOTS (1U << 20)

/*
 * Edge keys sort the moves out of rendezvous winners: (from, to) in 12 bits, then the
 * margin (Q26 log2, 32 bits), then the slot (20 bits), which makes them unique.
 */
#define EDGE_SLOT_BITS	 20
#define EDGE_MARGIN_BITS 32
#define EDGE_PAIR_SHIFT	 (EDGE_SLOT_BITS + EDGE_MARGIN_BITS)
#define NR_PAIRS	 (SW_MAX_SPLIT * SW_MAX_SPLIT)
#define RADIX_BITS	 11
#define RADIX_MASK	 ((1U << RADIX_BITS) - 1)

/*
 * Distances of augment(): margins and potentials stay far below 2^40, so a distance plus
 * DIST_BIAS is positive and fits 57 bits, with room for an index below it.
 */
#define DIST_BIAS (1LL << 50)
#define UNREACHED (1LL << 56)
#define NO_MOVE	  (1LL << 58)

/* Keys keep a backend's position in their low 6 bits, and edge keys two indexes in 12. */
_Static_assert(SW_MAX_SPLIT <= 64, "positions must fit 6 bits");
_Static_assert(MAX_SLOTS <= 1U << EDGE_SLOT_BITS, "slot numbers must fit EDGE_SLOT_BITS");

/* What rendezvous() leaves of a slot; log scores are log2(score) in Q26. */
struct slot_scores {
	__u32 log_score[NR_KEPT]; /* of the best backends, smallest first */
	__u8 index[NR_KEPT];	  /* those backends */
};

/*
 * A move a slot offers from the backend it is at, other than the sorted edges: made when a
 * slot arrives somewhere, or when a backend is opened to every slot (see extend()).
 */
struct extra_edge {
	__s64 margin; /* log score at "to" minus at the slot's backend */
	__u32 slot;
	__u32 to;
};

struct edge_list {
	struct extra_edge *v;
	__u32 nr, cap;
};

/* The cheapest move between two backends: its margin (NO_MOVE if none) and slot. */
struct cheap_move {
	__s64 margin;
	__u32 slot;
};

struct compiler {
	const struct sw_policy_weight *weights;
	__u32 nr;
	__u8 *table;
	__u32 nr_slots;
	__u32 nr_live; /* backends with a weight above 0: the only ones that get slots */
	__u8 live[SW_MAX_SPLIT];
	__u64 name_hash[SW_MAX_SPLIT];	/* FNV-1a of the name, not finalised */
	__u64 inv_weight[SW_MAX_SPLIT]; /* (2^64 - 1) / weight */
	__u32 target[SW_MAX_SPLIT];	/* exact slot count */
	__u32 count[SW_MAX_SPLIT];	/* slots in table now */
	struct slot_scores *scores;	/* per slot */
	/* The flow's potentials: a move costs margin + potential[to] - potential[from]. */
	__s64 potential[SW_MAX_SPLIT];
	bool extended[SW_MAX_SPLIT]; /* every slot has an extra edge to it */
	__u64 *edges;		     /* sorted edge keys */
	__u32 pair_start[NR_PAIRS + 1];
	__u32 pair_next[NR_PAIRS];	      /* the first edge of a pair that may still hold */
	struct edge_list extra[SW_MAX_SPLIT]; /* by the backend the slot is at */
	/*
	 * cheapest_moves() of each backend until a slot leaves or joins it, by [from][to] and
	 * again by [to][from], so that searches either way read a row.
	 */
	struct cheap_move out[SW_MAX_SPLIT][SW_MAX_SPLIT], in[SW_MAX_SPLIT][SW_MAX_SPLIT];
	bool cheap_valid[SW_MAX_SPLIT];
	__u64 log2_tab[LOG2_STEPS + 1];
};

/* Names hash with FNV-1a-64, as shard keys do, but without the finaliser: see group_hash(). */
static __u64 backend_name_hash(const char *name)
{
	__u64 h = SW_FNV_OFFSET;

	for (; *name; name++)
		h = sw_hash_step(h, (__u8)*name);
	return h;
}

/* Integer squaring gives the bits of log2 one at a time, the same on every host. */
static void log2_table_init(__u64 *tab)
{
	__u32 k;
	int bit;

	for (k = 0; k < LOG2_STEPS; k++) {
		/* 1 + k / LOG2_STEPS in Q62 */
		__u64 x = (1ULL << 62) + ((__u64)k << (62 - LOG2_BITS));
		__u64 frac = 0;

		for (bit = 31; bit >= 0; bit--) {
			x = (__u64)(((sw_u128)x * x) >> 62);
			if (x >= 1ULL << 63) {
				x >>= 1;
				frac |= 1ULL << bit;
			}
		}
		tab[k] = frac;
	}
	tab[LOG2_STEPS] = 1ULL << 32;
}

/* log2(x) in Q32 for x >= 1; monotonic, since the table is and each piece is linear. */
static inline __u64 log2_q32(const __u64 *tab, __u64 x)
{
	unsigned int lz = __builtin_clzll(x);
	__u64 m = x << lz;
	__u64 k = (m >> (63 - LOG2_BITS)) & (LOG2_STEPS - 1);
	__u64 f = (m >> (31 - LOG2_BITS)) & 0xffffffffULL;

	return ((__u64)(63 - lz) << 32) + tab[k] + (((tab[k + 1] - tab[k]) * f) >> 32);
}

/* floor(x * y / 2^64): one multiply instruction on 64-bit hosts. */
static inline __u64 mul_hi(__u64 x, __u64 y)
{
	return (__u64)(((sw_u128)x * y) >> 64);
}

static inline __u64 min_u64(__u64 a, __u64 b)
{
	return a < b ? a : b;
}

static inline __u64 max_u64(__u64 a, __u64 b)
{
	return a < b ? b : a;
}

/*
 * The hash of (name, slot), 64 bits: the top 16 come from a hash of (name, slot / 4), a
 * quarter each for the four slots of a group; the low 48 from a hash of that and the slot.
 * The bound that rules out most backends needs only the top bits, so the main loop hashes
 * once per four slots.
 */
static inline __u64 group_hash(__u64 name_hash, __u32 slot)
{
	return sw_hash_final(name_hash ^ (__u64)(slot / SLOT_GROUP) * SLOT_SALT);
}

static inline __u64 slot_hash_top(__u64 group, __u32 slot)
{
	return (group << 16 * (slot % SLOT_GROUP)) & 0xffff000000000000ULL;
}

static inline __u64 slot_hash(__u64 group, __u32 slot)
{
	return slot_hash_top(group, slot) | sw_hash_final(group + slot) >> 16;
}

/*
 * The rendezvous score -log2(U) / weight of a backend at a slot, U = (h + 1) / 2^64, in
 * fixed point: neg_log (Q32, at most 2^38) << 20 times inv_weight / 2^64 stays below 2^58.
 * "h | 1" keeps clz defined; the table rounds down, so neg_log >= -log2(U).
 */
static inline __u64 exact_score(const __u64 *tab, __u64 h, __u64 inv_weight)
{
	__u64 neg_log = (64ULL << 32) - log2_q32(tab, h | 1);

	return mul_hi(neg_log << 20, inv_weight);
}

/*
 * A lower bound of exact_score() from the top 16 bits of h, without a log:
 * -log2(U) >= (1 - U) / ln 2, and 1 - U >= ~top / 2^16. bound_weight is inv_weight / (2 ln 2),
 * which takes a multiply out of the loop; every factor rounds down.
 */
static inline __u64 bound_score(__u64 h, __u64 bound_weight)
{
	return mul_hi((~h >> 48) << 37, bound_weight);
}

/* log2 of a score in Q26, which fits 32 bits. "| 1": a score may round to 0. */
static inline __u32 log_score(const __u64 *tab, __u64 score)
{
	return log2_q32(tab, score | 1) >> 6;
}

/* The log score of backend i (an index into weights[]) at a slot. */
static __u32 slot_log_score(const struct compiler *c, __u32 i, __u32 slot)
{
	__u64 h = slot_hash(group_hash(c->name_hash[i], slot), slot);

	return log_score(c->log2_tab, exact_score(c->log2_tab, h, c->inv_weight[i]));
}

static int check_args(const struct sw_policy_weight *weights, __u32 nr, const __u8 *table,
		      __u32 nr_slots)
{
	__u64 sum = 0;
	__u32 i;

	if (!weights || !table || !nr || nr > SW_MAX_SPLIT)
		return -EINVAL;
	if (nr_slots < MIN_SLOTS || nr_slots > MAX_SLOTS || (nr_slots & (nr_slots - 1)))
		return -EINVAL;
	for (i = 0; i < nr; i++) {
		if (!memchr(weights[i].backend, 0, SW_NAME_MAX))
			return -EINVAL;
		/* Sorted and unique: ties go to the first name, and names identify slots. */
		if (i && strcmp(weights[i - 1].backend, weights[i].backend) >= 0)
			return -EINVAL;
		sum += weights[i].weight;
	}
	return sum ? 0 : -EINVAL;
}

/* Largest remainder: floor(weight * nr_slots / sum) each, the rest by remainder, then name. */
static void compute_targets(struct compiler *c)
{
	__u64 rem[SW_MAX_SPLIT], sum = 0;
	__u32 i, given = 0;

	for (i = 0; i < c->nr; i++)
		sum += c->weights[i].weight;
	for (i = 0; i < c->nr; i++) {
		__u64 scaled = (__u64)c->weights[i].weight * c->nr_slots;

		c->target[i] = scaled / sum;
		rem[i] = scaled % sum;
		given += c->target[i];
	}
	/*
	 * Fewer slots are left than there are nonzero remainders, so a zero weight never
	 * gets one. Strict ">" keeps the first name on a tie.
	 */
	for (; given < c->nr_slots; given++) {
		__u32 best = 0;

		for (i = 1; i < c->nr; i++)
			if (rem[i] > rem[best])
				best = i;
		c->target[best]++;
		rem[best] = 0;
	}
}

/* Keeps the NR_KEPT smallest keys seen, smallest first, without branches. */
static inline void keep_key(__u64 *top, __u64 key)
{
	__u32 i;

	for (i = 0; i < NR_KEPT; i++) {
		__u64 low = min_u64(top[i], key);

		key = max_u64(top[i], key);
		top[i] = low;
	}
}

/*
 * The state of rendezvous(). Scores there are keys: a score << 6 | the backend's position in
 * live[], which follows name order. Keys are unique, ties go to the first name, and
 * keep_key() needs no branches.
 */
struct slot_scan {
	__u64 name_hash[SW_MAX_SPLIT];
	__u64 inv_weight[SW_MAX_SPLIT];
	__u64 bound_weight[SW_MAX_SPLIT];
	__u64 threshold; /* a score: see rendezvous() */
	/* ~top below this: bound_score() below threshold, a candidate */
	__u64 cand_limit[SW_MAX_SPLIT];
	__u64 group[SW_MAX_SPLIT];	     /* group_hash() of each backend */
	__u8 cand[SLOT_GROUP][SW_MAX_SPLIT]; /* candidates of each slot of the group */
	__u32 nr_cand[SLOT_GROUP];
};

static inline __u64 exact_key(const struct compiler *c, const struct slot_scan *scan, __u32 k,
			      __u32 slot)
{
	__u64 h = slot_hash(scan->group[k], slot);

	return exact_score(c->log2_tab, h, scan->inv_weight[k]) << 6 | k;
}

static inline __u64 bound_key(const struct slot_scan *scan, __u32 k, __u32 slot)
{
	__u64 h = slot_hash_top(scan->group[k], slot);

	return bound_score(h, scan->bound_weight[k]) << 6 | k;
}

/* An exact score only where the bound may beat the last kept key. */
static inline void try_key(const struct compiler *c, const struct slot_scan *scan, __u64 *top,
			   __u64 bound, __u32 slot)
{
	if (bound < top[NR_KEPT - 1])
		keep_key(top, exact_key(c, scan, bound & 63, slot));
}

static void save_slot(struct compiler *c, __u32 slot, const __u64 *top)
{
	struct slot_scores *sc = &c->scores[slot];
	__u32 i;

	for (i = 0; i < NR_KEPT; i++) {
		sc->index[i] = c->live[top[i] & 63];
		sc->log_score[i] = log_score(c->log2_tab, top[i] >> 6);
	}
	c->table[slot] = sc->index[0];
	c->count[sc->index[0]]++;
}

/*
 * Places one slot. The candidates with the smallest bounds get exact scores first; another
 * candidate needs one only if its bound beats the last kept key. A backend that is no
 * candidate has a bound of at least the threshold, so it needs a look only when the last
 * kept key is still above the threshold. Few branches that are hard to predict remain.
 */
static void place_slot(struct compiler *c, const struct slot_scan *scan, __u32 slot)
{
	__u64 bound[SW_MAX_SPLIT], low[NR_KEPT], top[NR_KEPT];
	const __u8 *cand = scan->cand[slot % SLOT_GROUP];
	__u32 i, k, nr_cand = scan->nr_cand[slot % SLOT_GROUP];

	memset(low, 0xff, sizeof(low));
	memset(top, 0xff, sizeof(top));
	for (i = 0; i < nr_cand; i++) {
		bound[i] = bound_key(scan, cand[i], slot);
		keep_key(low, bound[i]);
	}
	for (i = 0; i < NR_KEPT && low[i] != ~0ULL; i++)
		keep_key(top, exact_key(c, scan, low[i] & 63, slot));
	for (i = 0; i < nr_cand; i++)
		if (bound[i] > low[NR_KEPT - 1])
			try_key(c, scan, top, bound[i], slot);
	if (top[NR_KEPT - 1] >> 6 >= scan->threshold) {
		for (k = 0; k < c->nr_live; k++) {
			__u64 b = bound_key(scan, k, slot);

			if (b >> 6 >= scan->threshold)
				try_key(c, scan, top, b, slot);
		}
	}
	save_slot(c, slot, top);
}

/*
 * Appends backend k to a slot's candidates if its ~top is below the limit. No branch: a
 * store that does not count is overwritten by the next one. The count is a local of the
 * caller, so that it stays in a register.
 */
static inline __u32 add_candidate(__u8 *cand, __u32 nr, __u32 k, __u64 not_top, __u64 limit)
{
	cand[nr] = k;
	return nr + (not_top < limit);
}

/*
 * Gives each slot its rendezvous winner and keeps its NR_KEPT best log scores; needs at
 * least NR_KEPT live backends. The threshold is the score below which about 8 backends of
 * a slot would fall, were the weights equal (-log2(U) = 12 at the total weight): few
 * candidates, and rarely fewer than NR_KEPT, which is when a slot falls back to looking at
 * every backend.
 */
static void rendezvous(struct compiler *c)
{
	struct slot_scan scan;
	__u32 s, k, n = c->nr_live;
	__u64 total = 0;
	sw_u128 limit;

	for (k = 0; k < n; k++)
		total += c->weights[c->live[k]].weight;
	scan.threshold = mul_hi(THRESHOLD_NEG_LOG << 20, ~0ULL / total);
	/* Dense copies: the loop below runs nr_live * nr_slots / 4 times and is the cost. */
	for (k = 0; k < n; k++) {
		scan.name_hash[k] = c->name_hash[c->live[k]];
		scan.inv_weight[k] = c->inv_weight[c->live[k]];
		scan.bound_weight[k] = mul_hi(scan.inv_weight[k], HALF_INV_LN2_Q64);
		/* The least ~top whose bound reaches the threshold; see bound_score(). */
		limit = (((sw_u128)scan.threshold << 27) + scan.bound_weight[k] - 1) /
			scan.bound_weight[k];
		scan.cand_limit[k] = limit < 1ULL << 16 ? (__u64)limit : 1ULL << 16;
	}
	for (s = 0; s < c->nr_slots; s += SLOT_GROUP) {
		__u32 nr0 = 0, nr1 = 0, nr2 = 0, nr3 = 0;

		for (k = 0; k < n; k++) {
			__u64 group = group_hash(scan.name_hash[k], s), limit = scan.cand_limit[k];

			scan.group[k] = group;
			nr0 = add_candidate(scan.cand[0], nr0, k, ~group >> 48, limit);
			nr1 = add_candidate(scan.cand[1], nr1, k, ~group >> 32 & 0xffff, limit);
			nr2 = add_candidate(scan.cand[2], nr2, k, ~group >> 16 & 0xffff, limit);
			nr3 = add_candidate(scan.cand[3], nr3, k, ~group & 0xffff, limit);
		}
		scan.nr_cand[0] = nr0;
		scan.nr_cand[1] = nr1;
		scan.nr_cand[2] = nr2;
		scan.nr_cand[3] = nr3;
		for (k = 0; k < SLOT_GROUP; k++)
			place_slot(c, &scan, s + k);
	}
}

/* The log score of the backend a slot is at: kept, unless an extended edge took it there. */
static __u32 current_log_score(const struct compiler *c, __u32 slot)
{
	const struct slot_scores *sc = &c->scores[slot];
	__u32 i;

	for (i = 0; i < NR_KEPT; i++)
		if (sc->index[i] == c->table[slot])
			return sc->log_score[i];
	return slot_log_score(c, c->table[slot], slot);
}

static int add_extra_edge(struct compiler *c, __u32 from, __u32 slot, __u32 to, __s64 margin)
{
	struct edge_list *l = &c->extra[from];

	if (l->nr == l->cap) {
		__u32 cap = l->cap ? 2 * l->cap : 64;
		struct extra_edge *v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->nr].margin = margin;
	l->v[l->nr].slot = slot;
	l->v[l->nr].to = to;
	l->nr++;
	return 0;
}

/*
 * Sorts keys by their bits from "from" up with an LSD radix sort, which is stable: keys
 * made in order of their low bits need no pass over those. Returns keys or tmp, whichever
 * holds the result.
 */
static __u64 *sort_keys(__u64 *keys, __u64 *tmp, __u32 nr, __u32 from)
{
	__u32 count[1U << RADIX_BITS], shift, i, d, sum, n;
	__u64 *swap;

	for (shift = from; shift < 64; shift += RADIX_BITS) {
		memset(count, 0, sizeof(count));
		for (i = 0; i < nr; i++)
			count[keys[i] >> shift & RADIX_MASK]++;
		for (sum = 0, d = 0; d < 1U << RADIX_BITS; d++) {
			n = count[d];
			count[d] = sum;
			sum += n;
		}
		for (i = 0; i < nr; i++)
			tmp[count[keys[i] >> shift & RADIX_MASK]++] = keys[i];
		swap = keys;
		keys = tmp;
		tmp = swap;
	}
	return keys;
}

/*
 * The edges of the flow as rendezvous() left it: each slot may go from its winner to its
 * other kept backends, at the margin of their log scores. Sorted, each pair's cheapest
 * move that still holds is the first one that does.
 */
static int build_edges(struct compiler *c)
{
	__u32 s, i, p, nr = 0;
	__u64 *keys, *tmp, *sorted;

	keys = malloc((size_t)c->nr_slots * (NR_KEPT - 1) * sizeof(*keys));
	tmp = malloc((size_t)c->nr_slots * (NR_KEPT - 1) * sizeof(*tmp));
	if (!keys || !tmp) {
		free(tmp);
		free(keys);
		return -ENOMEM;
	}
	for (s = 0; s < c->nr_slots; s++) {
		const struct slot_scores *sc = &c->scores[s];

		for (i = 1; i < NR_KEPT; i++) {
			__u64 pair = sc->index[0] * SW_MAX_SPLIT + sc->index[i];
			__u64 margin = sc->log_score[i] - sc->log_score[0];

			keys[nr++] = pair << EDGE_PAIR_SHIFT | margin << EDGE_SLOT_BITS | s;
		}
	}
	/* Made in slot order: the sort needs only the pair and margin bits. */
	sorted = sort_keys(keys, tmp, nr, EDGE_SLOT_BITS);
	c->edges = sorted;
	free(sorted == keys ? tmp : keys);
	for (p = 0, i = 0; p <= NR_PAIRS; p++) {
		while (i < nr && c->edges[i] >> EDGE_PAIR_SHIFT < p)
			i++;
		c->pair_start[p] = i;
		if (p < NR_PAIRS)
			c->pair_next[p] = i;
	}
	return 0;
}

/*
 * The cheapest move from backend "from" to each other backend, by margin, then slot: the
 * first sorted edge of the pair whose slot is still at "from", and the extra edges.
 * Extra edges of slots that left are dropped on the way.
 */
static void cheapest_moves(struct compiler *c, __u32 from)
{
	struct cheap_move *out = c->out[from];
	struct edge_list *l = &c->extra[from];
	__u32 to, p, e;

	for (to = 0; to < c->nr; to++) {
		out[to].margin = NO_MOVE;
		p = from * SW_MAX_SPLIT + to;
		for (e = c->pair_next[p]; e < c->pair_start[p + 1]; e++) {
			__u32 s = c->edges[e] & ((1U << EDGE_SLOT_BITS) - 1);

			if (c->table[s] == from) {
				out[to].margin = (__u32)(c->edges[e] >> EDGE_SLOT_BITS);
				out[to].slot = s;
				break;
			}
		}
		c->pair_next[p] = e;
	}
	for (e = 0; e < l->nr;) {
		const struct extra_edge *x = &l->v[e];

		if (c->table[x->slot] != from) {
			l->v[e] = l->v[--l->nr];
			continue;
		}
		if (x->margin < out[x->to].margin ||
		    (x->margin == out[x->to].margin && x->slot < out[x->to].slot)) {
			out[x->to].margin = x->margin;
			out[x->to].slot = x->slot;
		}
		e++;
	}
	for (to = 0; to < c->nr; to++)
		c->in[to][from] = out[to];
}

/* Moves a slot along an edge and gives it the edges out of where it arrives. */
static int move_slot(struct compiler *c, __u32 slot, __u32 to)
{
	const struct slot_scores *sc = &c->scores[slot];
	__u32 i, j, at;
	int err;

	c->cheap_valid[c->table[slot]] = false;
	c->cheap_valid[to] = false;
	c->count[c->table[slot]]--;
	c->count[to]++;
	c->table[slot] = to;
	at = current_log_score(c, slot);
	for (i = 0; i < NR_KEPT; i++) {
		if (sc->index[i] == to)
			continue;
		err = add_extra_edge(c, to, slot, sc->index[i], (__s64)sc->log_score[i] - at);
		if (err)
			return err;
	}
	for (j = 0; j < c->nr; j++) {
		if (!c->extended[j] || j == to)
			continue;
		err = add_extra_edge(c, to, slot, j, (__s64)slot_log_score(c, j, slot) - at);
		if (err)
			return err;
	}
	return 0;
}

/*
 * Opens backend t, short of slots but out of reach, to every slot: nobody kept it, as a
 * tiny weight can be. Its potential rises until no new edge costs less than zero; edges
 * out of t may then, which only makes later paths less than shortest. Rare.
 */
static int extend(struct compiler *c, __u32 t)
{
	__s64 margin, need = c->potential[t];
	__u32 s;
	int err;

	c->extended[t] = true;
	memset(c->cheap_valid, 0, sizeof(c->cheap_valid));
	for (s = 0; s < c->nr_slots; s++) {
		if (c->table[s] == t)
			continue;
		margin = (__s64)slot_log_score(c, t, s) - current_log_score(c, s);
		err = add_extra_edge(c, c->table[s], s, t, margin);
		if (err)
			return err;
		if (c->potential[c->table[s]] - margin > need)
			need = c->potential[c->table[s]] - margin;
	}
	c->potential[t] = need;
	return 0;
}

/* Makes sure the cheapest moves out of every backend are known; few change per path. */
static void refresh_moves(struct compiler *c)
{
	__u32 i;

	for (i = 0; i < c->nr; i++) {
		if (!c->cheap_valid[i]) {
			cheapest_moves(c, i);
			c->cheap_valid[i] = true;
		}
	}
}

/*
 * One unit of flow: Dijkstra over backends, on reduced costs, which the potentials keep at
 * zero or more, from a backend over quota to the nearest one under quota, or with reverse
 * set from one under quota back to the nearest one over. The path's slots each move one
 * backend on; the potentials change so that the path costs nothing. Returns -ENOENT when
 * no backend of the other side is in reach.
 *
 * Without branches that depend on distances, which are hard to predict: keys of distance
 * and index pick the nearest, and a missing move (NO_MOVE) makes a distance too large to
 * win against UNREACHED. Backends done leave the list that both loops walk.
 */
static int augment(struct compiler *c, __u32 start, bool reverse)
{
	__s64 dist[SW_MAX_SPLIT], pot[SW_MAX_SPLIT], base, d, better;
	__u32 via_slot[SW_MAX_SPLIT], via[SW_MAX_SPLIT], v, u, t, i, nr_left;
	__u8 left[SW_MAX_SPLIT], pos[SW_MAX_SPLIT];
	bool goal[SW_MAX_SPLIT], done[SW_MAX_SPLIT] = {false};
	const struct cheap_move *row;
	__u64 nearest;
	int err;

	refresh_moves(c);
	/* Over all indexes: one without weight stays unreached and never leaves the list. */
	for (v = 0; v < c->nr; v++) {
		dist[v] = UNREACHED;
		goal[v] = reverse ? c->count[v] > c->target[v] : c->count[v] < c->target[v];
		/* A move t -> v costs margin + pot[v] - pot[t]; v -> t in reverse, the same. */
		pot[v] = reverse ? -c->potential[v] : c->potential[v];
		left[v] = v;
		pos[v] = v;
	}
	nr_left = c->nr;
	dist[start] = 0;
	for (;;) {
		/* The nearest backend left, the first name on a tie. */
		nearest = ~0ULL;
		for (i = 0; i < nr_left; i++) {
			v = left[i];
			nearest = min_u64(nearest, (__u64)(dist[v] + DIST_BIAS) << 6 | v);
		}
		if (nearest >> 6 >= UNREACHED + DIST_BIAS)
			return -ENOENT;
		t = nearest & 63;
		done[t] = true;
		left[pos[t]] = left[--nr_left];
		pos[left[pos[t]]] = pos[t];
		if (goal[t])
			break;
		row = reverse ? c->in[t] : c->out[t];
		base = dist[t] - pot[t];
		for (i = 0; i < nr_left; i++) {
			v = left[i];
			d = base + row[v].margin + pot[v];
			/* All ones where the path through t is shorter: masks, not branches. */
			better = -(__s64)(d < dist[v]);
			dist[v] = (d & better) | (dist[v] & ~better);
			via[v] = (t & better) | (via[v] & ~better);
			via_slot[v] = (row[v].slot & better) | (via_slot[v] & ~better);
		}
	}
	/* Forward, potentials rise near the start; in reverse they fall near it. */
	for (v = 0; v < c->nr; v++)
		if (done[v] && dist[v] < dist[t])
			c->potential[v] += reverse ? dist[v] - dist[t] : dist[t] - dist[v];
	for (v = t; v != start; v = u) {
		u = via[v];
		err = move_slot(c, via_slot[v], reverse ? u : v);
		if (err)
			return err;
	}
	return 0;
}

/* Extends every backend under quota that is not yet; see extend(). */
static int extend_short(struct compiler *c)
{
	__u32 i, t;
	int err;

	for (i = 0; i < c->nr_live; i++) {
		t = c->live[i];
		if (!c->extended[t] && c->count[t] < c->target[t]) {
			err = extend(c, t);
			if (err)
				return err;
		}
	}
	return 0;
}

/*
 * Successive shortest paths: each augmentation moves one slot of excess to a backend short
 * of slots along the cheapest chain of moves, so the table stays the cheapest one for its
 * counts, and it is done when the counts are the targets. A search starts on the side with
 * fewer backends left, so that the other side is near. After extend_short() every slot has
 * an edge to each backend still short, so the second try always finds a path.
 */
static int apportion(struct compiler *c)
{
	__u32 i, over, under, nr_over, nr_under;
	bool reverse;
	int err;

	err = build_edges(c);
	if (err)
		return err;
	for (;;) {
		over = under = nr_over = nr_under = 0;
		for (i = c->nr; i-- > 0;) {
			if (c->count[i] > c->target[i]) {
				over = i;
				nr_over++;
			} else if (c->count[i] < c->target[i]) {
				under = i;
				nr_under++;
			}
		}
		if (!nr_over)
			return 0;
		reverse = nr_under < nr_over;
		err = augment(c, reverse ? under : over, reverse);
		if (err == -ENOENT) {
			err = extend_short(c);
			if (!err)
				err = augment(c, reverse ? under : over, reverse);
		}
		if (err)
			return err;
	}
}

static void compiler_free(struct compiler *c)
{
	__u32 i;

	for (i = 0; i < SW_MAX_SPLIT; i++)
		free(c->extra[i].v);
	free(c->edges);
	free(c->scores);
	free(c);
}

int policy_compile_slots(const struct sw_policy_weight *weights, __u32 nr, __u8 *table,
			 __u32 nr_slots)
{
	struct compiler *c;
	__u32 i;
	int err;

	err = check_args(weights, nr, table, nr_slots);
	if (err)
		return err;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->scores = malloc((size_t)nr_slots * sizeof(*c->scores));
	if (!c->scores) {
		err = -ENOMEM;
		goto cleanup;
	}
	c->weights = weights;
	c->nr = nr;
	c->table = table;
	c->nr_slots = nr_slots;
	log2_table_init(c->log2_tab);
	for (i = 0; i < nr; i++) {
		c->name_hash[i] = backend_name_hash(weights[i].backend);
		if (!weights[i].weight)
			continue;
		c->inv_weight[i] = ~0ULL / weights[i].weight;
		c->live[c->nr_live++] = i;
	}
	compute_targets(c);
	if (c->nr_live == 1) {
		/* The only backend with a weight takes every slot: nothing to choose. */
		memset(table, c->live[0], nr_slots);
	} else {
		rendezvous(c);
		err = apportion(c);
	}
cleanup:
	compiler_free(c);
	return err;
}

__u32 policy_slots_moved(const struct sw_policy_weight *old_w, __u32 nr_old, const __u8 *old_table,
			 const struct sw_policy_weight *new_w, __u32 nr_new, const __u8 *new_table,
			 __u32 nr_slots)
{
	/* same[i]: the index in new_w of old backend i, or -1. A table byte indexes at most 256. */
	int same[256];
	__u32 i, j, s, moved = 0;

	for (i = 0; i < 256; i++)
		same[i] = -1;
	for (i = 0; i < nr_old && i < 256; i++) {
		for (j = 0; j < nr_new; j++) {
			if (!strncmp(old_w[i].backend, new_w[j].backend, SW_NAME_MAX)) {
				same[i] = j;
				break;
			}
		}
	}
	for (s = 0; s < nr_slots; s++)
		if (same[old_table[s]] < 0 || (__u32)same[old_table[s]] != new_table[s])
			moved++;
	return moved;
}
