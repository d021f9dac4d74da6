/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The decision code: the request's normal form (norm.h), the route match, the shard-key
 * hash and the slot pick. It compiles into the BPF programs and into userspace, and
 * sockwayd, `sockway explain` and the BPF decide program all run sw_decide_route() and
 * sw_decide_pick() below, so that they choose the same backend for the same request;
 * tests/integration/test_parity.c proves it on 10,000 generated requests.
 *
 * Map access goes through hooks that the includer defines (see "Hooks" below): BPF looks
 * into its maps, userspace into pinned maps or its own copies. Everything here returns
 * 0 or -errno and never loops on its own without a bound.
 */
#ifndef SOCKWAY_DECIDE_H
#define SOCKWAY_DECIDE_H

#include "abi.h"
#include "decide_types.h"
#include "hash.h"
#include "norm.h"

/* errno values; BPF has no <errno.h>. */
#ifndef ENOENT
#define ENOENT 2
#endif
#ifndef EAGAIN
#define EAGAIN 11
#endif
#ifndef EINVAL
#define EINVAL 22
#endif
#ifndef ESTALE
#define ESTALE 116
#endif

/*
 * One load the compiler may not merge, split or move across another SW_READ_ONCE. On x86
 * loads are not reordered with loads, which is what the generation protocol needs; the BPF
 * ISA of clang 14 has no load-acquire to say more.
 */
#define SW_READ_ONCE(x) (*(const volatile __typeof__(x) *)&(x))

/* Hides a value from the optimiser, so that a bound check written after it stays where it
 * is instead of being merged with an earlier one that the BPF verifier cannot see. */
#define SW_BARRIER_VAR(x) __asm__ volatile("" : "+r"(x))

/*
 * Hooks. The includer defines these three functions (static, after including this file);
 * env is whatever the includer passes to the sw_route_* and sw_pick_* calls.
 *   sw_routes_lookup()   the routes map entry for key, or NULL.
 *   sw_ctl_get()         the ctl map value, or NULL.
 *   sw_endpoint_get()    endpoints[index] and slots[index] (index = id * 2 + copy), or NULL.
 */
static __always_inline const struct sw_route *sw_routes_lookup(void *env,
							       const struct sw_route_key *key);
static __always_inline const struct sw_ctl *sw_ctl_get(void *env);
static __always_inline int sw_endpoint_get(void *env, __u32 index, const struct sw_endpoint **ep,
					   const struct sw_slot_table **slots);

/*
 * Longest-prefix route match (struct sw_route_match, decide_types.h) on path-segment boundaries,
 * fed one byte at a time so that a BPF program can drive it from bpf_loop() over packet bytes and
 * userspace from a plain loop.
 *
 * Candidates are "/" and every prefix that ends before a '/' or at the end of the path, so
 * route "/api" matches "/api", "/api/" and "/api/x" but not "/apix". The path ends at '?',
 * '#', a space or NUL. A route with a Host beats every route without one (the Host picks
 * the virtual host first, as nginx and Envoy do); among equals the longest prefix wins.
 */

static __always_inline void sw_route_match_init(struct sw_route_match *m, __u64 host_hash,
						__u32 method)
{
	m->host_hash = host_hash;
	m->state = SW_FNV_OFFSET;
	m->method = method;
	m->len = 0;
	m->last = 0;
	m->done = 0;
	m->host_ep = SW_ID_NONE;
	m->any_ep = SW_ID_NONE;
	m->host_len = 0;
	m->any_len = 0;
	m->params = 0;
}

/* Unrolled by clang, which the BPF verifier needs for loops over words; gcc builds the
 * userspace side and unrolls as it likes. */
#ifdef __clang__
#define SW_UNROLL _Pragma("unroll")
#else
#define SW_UNROLL
#endif

/* The bytes of a little-endian word below n, as a mask (all of them from 8). */
#define SW_WORD_MASK(n) ((n) >= 8 ? ~0ULL : (1ULL << ((n)*8)) - 1)

/*
 * Is r the route of exactly the prefix fed (m->fed, m->len bytes) and, with_host, of exactly
 * the request's Host name (hn->name)? The map is keyed by hashes, which whoever writes the
 * path and the Host can make collide; the route's own strings cannot be (the agent writes
 * them NUL-padded). A word at a time, over fixed arrays the same in both builds: a byte
 * loop here costs the BPF verifier a state per byte.
 */
static __always_inline int sw_route_same(const struct sw_route *r, const struct sw_route_match *m,
					 const struct sw_host_norm *hn, int with_host)
{
	__u32 i, n;

	if (r->prefix_len != m->len)
		return 0;
	SW_UNROLL
	for (i = 0; i < SW_PREFIX_MAX / 8; i++) {
		__u64 a, b;

		if (i * 8 >= m->len)
			break;
		__builtin_memcpy(&a, r->prefix + i * 8, 8);
		__builtin_memcpy(&b, m->fed + i * 8, 8);
		if ((a ^ b) & SW_WORD_MASK(m->len - i * 8))
			return 0;
	}
	if (!with_host)
		return 1;
	n = hn->name_len;
	if (n >= SW_HOST_MAX)
		return 0;
	SW_UNROLL
	for (i = 0; i < SW_HOST_MAX / 8; i++) {
		__u64 a, b;

		/* The route's NUL after the name is compared too: a longer one is no match. */
		if (i * 8 > n)
			break;
		__builtin_memcpy(&a, r->host + i * 8, 8);
		__builtin_memcpy(&b, hn->name + i * 8, 8);
		if ((a ^ b) & SW_WORD_MASK(n - i * 8))
			return 0;
		if (n - i * 8 < 8 && (a >> ((n - i * 8) * 8)) & 0xff)
			return 0;
	}
	return 1;
}

/* Looks up the prefix fed so far (m->len bytes, hash state m->state) as a candidate. */
static __always_inline void sw_route_match_try(struct sw_route_match *m, void *env,
					       const struct sw_host_norm *hn)
{
	struct sw_route_key key = {.host_hash = 0, .prefix_hash = sw_hash_final(m->state)};
	const struct sw_route *r;

	r = sw_routes_lookup(env, &key);
	if (r && (!r->methods || (r->methods & m->method)) && sw_route_same(r, m, hn, 0)) {
		m->any_ep = r->endpoint_id;
		m->any_len = m->len;
	}
	if (!m->host_hash)
		return;
	key.host_hash = m->host_hash;
	r = sw_routes_lookup(env, &key);
	if (r && (!r->methods || (r->methods & m->method)) && sw_route_same(r, m, hn, 1)) {
		m->host_ep = r->endpoint_id;
		m->host_len = m->len;
	}
}

static __always_inline int sw_path_ends(__u8 c)
{
	return c == '?' || c == '#' || c == ' ' || c == 0;
}

/*
 * Feeds one byte of the normal path; a segment's parameters (from a ';' to the segment's
 * end) are left out, as Java servers leave them out when they resolve the path. Returns 1
 * when the match is decided (no more bytes needed).
 */
static __always_inline int sw_route_match_feed(struct sw_decide_state *s, void *env, __u8 c)
{
	struct sw_route_match *m = &s->m;

	if (m->done)
		return 1;
	if (m->len == 0) {
		/* Origin-form paths start with '/'; anything else matches no route. */
		if (c != '/') {
			m->done = 1;
			return 1;
		}
		m->state = sw_hash_step(m->state, c);
		m->fed[0] = c;
		m->len = 1;
		m->last = c;
		sw_route_match_try(m, env, &s->hn); /* the root route "/" */
		return 0;
	}
	if (m->params) {
		if (c != '/' && !sw_path_ends(c))
			return 0;
		m->params = 0;
		/* A segment that was all parameters is no segment. */
		if (c == '/' && m->last == '/')
			return 0;
	} else if (c == ';') {
		m->params = 1;
		return 0;
	}
	if (sw_path_ends(c) || c == '/') {
		/* A prefix ending in '/' ("//" or a trailing slash) was tried before its '/'. */
		if (m->last != '/')
			sw_route_match_try(m, env, &s->hn);
		if (c != '/' || m->len >= SW_PREFIX_MAX - 1) {
			m->done = 1;
			return 1;
		}
	} else if (m->len >= SW_PREFIX_MAX - 1) {
		/* Longer than any route can be: the best so far is final. */
		m->done = 1;
		return 1;
	}
	m->state = sw_hash_step(m->state, c);
	m->fed[m->len & (SW_PREFIX_MAX - 1)] = c;
	m->len++;
	m->last = c;
	return 0;
}

/* Ends the path (the caller ran out of bytes) and returns the endpoint id or SW_ID_NONE. */
static __always_inline __u16 sw_route_match_end(struct sw_decide_state *s, void *env)
{
	sw_route_match_feed(s, env, 0);
	return s->m.host_ep != SW_ID_NONE ? s->m.host_ep : s->m.any_ep;
}

/*
 * Picks the backend of endpoint_id for a slot. Returns -EAGAIN when a policy commit ran
 * while it read (the caller retries a bounded number of times), -ENOENT when the endpoint
 * does not exist. The generation is read before and after: see struct sw_ctl.
 */
static __always_inline int sw_pick_backend(void *env, __u16 endpoint_id, __u32 slot,
					   struct sw_pick *out)
{
	const struct sw_slot_table *table;
	const struct sw_endpoint *ep;
	const struct sw_ctl *ctl;
	__u64 gen;
	__u32 copy, split;
	int err;

	if (endpoint_id >= SW_MAX_ENDPOINTS)
		return -EINVAL;
	ctl = sw_ctl_get(env);
	if (!ctl)
		return -ENOENT;
	/* The mask repeats the bound check in a form the verifier keeps across spills. */
	SW_BARRIER_VAR(endpoint_id);
	endpoint_id &= SW_MAX_ENDPOINTS - 1;
	gen = SW_READ_ONCE(ctl->generation);
	copy = SW_READ_ONCE(ctl->active[endpoint_id]) & 1;
	err = sw_endpoint_get(env, endpoint_id * 2 + copy, &ep, &table);
	if (err)
		return err;
	if (!(ep->flags & SW_F_IN_USE))
		return -ENOENT;
	slot &= SW_SLOTS - 1;
	split = table->split[slot];
	if (split >= SW_MAX_SPLIT || split >= ep->nr_splits)
		/* Only a commit that lapped this reader can leave a table and its copy at odds. */
		return SW_READ_ONCE(ctl->generation) != gen ? -EAGAIN : -ESTALE;
	SW_BARRIER_VAR(split);
	split &= SW_MAX_SPLIT - 1;
	out->generation = gen;
	out->endpoint_id = endpoint_id;
	out->backend_id = ep->splits[split].backend_id;
	out->cell = ep->splits[split].cell;
	out->split = split;
	out->slot = slot;
	out->copy = copy;
	if (SW_READ_ONCE(ctl->generation) != gen)
		return -EAGAIN;
	return 0;
}

/* The callbacks' context: bpf_loop passes a pointer to the caller's stack. */
struct sw_decide_ctx {
	struct sw_decide_state *s;
	void *env;
};

/* A bounded walk: bpf_loop in BPF (the verifier checks one step), a loop in userspace. */
#ifdef __bpf__
#define SW_DECIDE_LOOP(n, fn, ctx) bpf_loop((n), (fn), (ctx), 0)
#else
static inline void sw_decide_loop(__u32 n, long (*fn)(__u32, void *), void *ctx)
{
	__u32 i;

	for (i = 0; i < n; i++)
		if (fn(i, ctx))
			break;
}
#define SW_DECIDE_LOOP(n, fn, ctx) sw_decide_loop((n), (fn), (ctx))
#endif

static __attribute__((unused)) long sw_decide_host_step(__u32 i, void *ctx)
{
	struct sw_decide_state *s = ((struct sw_decide_ctx *)ctx)->s;

	if (i >= s->host_len)
		return 1;
	s->err = sw_host_feed(&s->hn, i, SW_DECIDE_IN(s->host, i, SW_DECIDE_HOST_MAX));
	return s->err != 0;
}

/* Path byte i + 1: the first, '/', is the normal form's start. */
static __attribute__((unused)) long sw_decide_path_step(__u32 i, void *ctx)
{
	struct sw_decide_state *s = ((struct sw_decide_ctx *)ctx)->s;

	if (i + 1 >= s->path_len)
		return 1;
	s->err = sw_path_feed(&s->pn, s->norm, SW_DECIDE_IN(s->path, i + 1, SW_DECIDE_PATH_MAX));
	return s->err != 0;
}

static __attribute__((unused)) long sw_decide_route_step(__u32 i, void *ctx)
{
	struct sw_decide_ctx *x = ctx;
	struct sw_decide_state *s = x->s;

	if (i >= s->pn.len)
		return 1;
	return sw_route_match_feed(s, x->env, SW_DECIDE_IN(s->norm, i, SW_DECIDE_PATH_MAX));
}

static __attribute__((unused)) long sw_decide_key_step(__u32 i, void *ctx)
{
	struct sw_decide_state *s = ((struct sw_decide_ctx *)ctx)->s;

	if (i >= s->key_len || i >= SW_SHARD_KEY_MAX)
		return 1;
	s->key_state = sw_hash_step(s->key_state, SW_DECIDE_IN(s->key, i, SW_SHARD_KEY_MAX));
	return 0;
}

/*
 * The route of a request: its Host and path in normal form (a refusal is -EINVAL, which
 * sockwayd answers with 400), then the longest route. Sets norm_len, host_hash and
 * endpoint_id. Returns 0, -EINVAL, -ENOENT when no route matches, or -E2BIG for an input
 * longer than the BPF build takes.
 */
static __always_inline int sw_decide_route(struct sw_decide_state *s, void *env)
{
	struct sw_decide_ctx x = {.s = s, .env = env};

	/* Every output starts over: a state may hold the last request's. */
	s->err = 0;
	s->norm_len = 0;
	s->host_hash = 0;
	s->key_hash = 0;
	__builtin_memset(&s->pick, 0, sizeof(s->pick));
	s->endpoint_id = SW_ID_NONE;
#ifdef __bpf__
	if (s->host_len > SW_DECIDE_HOST_MAX || s->path_len > SW_DECIDE_PATH_MAX)
		return -E2BIG;
#endif
	sw_host_init(&s->hn);
	SW_DECIDE_LOOP(s->host_len, sw_decide_host_step, &x);
	if (!s->err)
		s->err = sw_host_end(&s->hn, &s->host_hash);
	if (s->err)
		return s->err;
	/* Only origin-form paths route ("*" of OPTIONS does not). */
	if (!s->path_len || SW_DECIDE_IN(s->path, 0, SW_DECIDE_PATH_MAX) != '/')
		return -ENOENT;
	sw_path_init(&s->pn, s->norm);
	SW_DECIDE_LOOP(s->path_len - 1, sw_decide_path_step, &x);
	if (!s->err)
		s->err = sw_path_end(&s->pn, s->norm);
	if (s->err)
		return s->err;
	s->norm_len = s->pn.len;
	sw_route_match_init(&s->m, s->host_hash, s->method);
	SW_DECIDE_LOOP(s->pn.len, sw_decide_route_step, &x);
	s->endpoint_id = sw_route_match_end(s, env);
	return s->endpoint_id == SW_ID_NONE ? -ENOENT : 0;
}

/*
 * The backend of the routed request: the slot of its shard key (key and key_len, set by
 * the caller from the endpoint's shard header) or of rnd, then the pick, retried while a
 * commit runs. Sets key_hash and pick. Returns 0 or -errno of sw_pick_backend.
 */
static __always_inline int sw_decide_pick(struct sw_decide_state *s, void *env)
{
	struct sw_decide_ctx x = {.s = s, .env = env};
	__u32 slot;
	int err = -EAGAIN, tries;

	s->key_hash = 0;
	__builtin_memset(&s->pick, 0, sizeof(s->pick));
	if (s->key_len) {
		s->key_state = SW_FNV_OFFSET;
		SW_DECIDE_LOOP(s->key_len < SW_SHARD_KEY_MAX ? s->key_len : SW_SHARD_KEY_MAX,
			       sw_decide_key_step, &x);
		s->key_hash = sw_hash_final(s->key_state);
		slot = sw_slot_of_hash(s->key_hash);
	} else {
		slot = sw_slot_of_random(s->rnd);
	}
	/* A commit during the pick makes it retry; commits are rare and short, and the
	 * verifier wants a bound. */
	for (tries = 0; tries < 4 && err == -EAGAIN; tries++)
		err = sw_pick_backend(env, s->endpoint_id, slot, &s->pick);
	s->pick.slot = slot;
	return err;
}

#endif /* SOCKWAY_DECIDE_H */
