/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Kernel routing, for sk_msg.bpf.c: a client's send to sockwayd's socket that holds one plain
 * request (include/sockway/reqhead.h) is routed here, by the decision code sockwayd runs
 * (include/sockway/decide.h), into an idle upstream connection that sockwayd lent for the
 * chosen replica (abi.h, struct sw_lend_set). The head gets what sockwayd would add to it,
 * the request goes straight into the backend's socket, and the upstream's splice is armed
 * for the whole response (PREARMED), which sk_msg passes on from the backend's send to the
 * client's socket (sk_msg.bpf.c, splice); kroute_answered() then counts it and gives the
 * upstream back. Nothing of it wakes sockwayd. Anything else goes on to sockwayd as before,
 * and the client's conns entry (enum sw_kroute_state, K1..K7 in abi.h) keeps requests and
 * responses of one connection in order.
 */
#ifndef SOCKWAY_BPF_KROUTE_H
#define SOCKWAY_BPF_KROUTE_H

#include "decide_env.h"
#include "sock.h"

#include "sockway/reqhead.h"

/* "Host: " host CRLF fits, a power of two for the verifier's masks. */
#define KHOST_LINE_MAX 256
_Static_assert(6 + SW_DECIDE_HOST_MAX + 2 <= KHOST_LINE_MAX, "KHOST_LINE_MAX");

/*
 * sk_msg's scratch: the request's scan and decision, larger than the BPF stack. One per
 * CPU; busy guards it against a run that preempted another on the same CPU (programs run
 * with migration, not preemption, disabled): the later one leaves its request to sockwayd.
 */
struct sw_kscratch {
	__u32 busy;
	__u32 pad;
	struct sw_reqhead rh;
	struct sw_decide_state d;
	__u8 ins[SW_KROUTE_INSERT_MAX + 8]; /* what goes into the head */
	__u8 host_line[KHOST_LINE_MAX];	    /* the Host line, when it moves up */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sw_kscratch);
} kscratch SEC(".maps");

static __always_inline void kmiss(enum sw_kroute_miss why)
{
	struct sw_accel_stats *st;
	__u32 zero = 0;

	st = bpf_map_lookup_elem(&accel_stats, &zero);
	if (st && why < SW_KM_MAX)
		st->kmiss[why]++;
}

/*
 * An offset into the message, made visibly smaller than SW_REQHEAD_MAX for the verifier:
 * packet pointer arithmetic needs a bounded register, and the compiler would otherwise
 * drop a mask it can prove redundant, or check one copy of the value and add another.
 * Callers have checked off < SW_REQHEAD_MAX, so the mask changes nothing.
 */
static __always_inline __u32 kbound(__u32 off)
{
	barrier_var(off);
	return off & (SW_REQHEAD_MAX - 1);
}

/* The message's bytes for a bpf_loop walk: packet pointers stay typed on the stack. */
struct kwalk {
	void *data, *data_end;
	struct sw_kscratch *s;
	__u32 off;
	__u32 len;
	int result;
};

static long kscan_byte(__u64 index, void *ctx)
{
	struct kwalk *k = ctx;
	__u32 i = (__u32)index;
	__u8 *b = k->data;

	if (i >= SW_REQHEAD_MAX) {
		k->result = -1;
		return 1;
	}
	i = kbound(i);
	if ((void *)(b + i + 1) > k->data_end) {
		k->result = -1;
		return 1;
	}
	k->result = sw_reqhead_step(&k->s->rh, b[i], i);
	return k->result != 0;
}

/* Copies len bytes at off into the decision's path, Host or key (which: k->result). */
enum kcopy_to { KCOPY_PATH, KCOPY_HOST, KCOPY_KEY };

static long kcopy_byte(__u64 index, void *ctx)
{
	struct kwalk *k = ctx;
	__u32 i = (__u32)index, at = k->off + i;
	__u8 *b = k->data;

	if (i >= k->len || at >= SW_REQHEAD_MAX)
		return 1;
	at = kbound(at);
	if ((void *)(b + at + 1) > k->data_end)
		return 1;
	switch (k->result) {
	case KCOPY_PATH:
		k->s->d.path[i & (SW_DECIDE_PATH_MAX - 1)] = b[at];
		break;
	case KCOPY_HOST:
		k->s->d.host[i & (SW_DECIDE_HOST_MAX - 1)] = b[at];
		break;
	default:
		k->s->d.key[i & (SW_SHARD_KEY_MAX - 1)] = b[at];
		break;
	}
	return 0;
}

static __always_inline void kcopy(struct kwalk *k, enum kcopy_to to, __u32 off, __u32 len)
{
	k->off = off;
	k->len = len;
	k->result = to;
	bpf_loop(len, kcopy_byte, k, 0);
}

/* Is the normal path what the request has (norm == path, byte for byte)? */
struct knorm {
	struct sw_decide_state *d;
	__u32 len;
	int same;
};

static long knorm_same(__u64 index, void *ctx)
{
	struct knorm *k = ctx;
	__u32 i = (__u32)index & (SW_DECIDE_PATH_MAX - 1);

	if ((__u32)index >= k->len)
		return 1;
	if (k->d->norm[i] != k->d->path[i]) {
		k->same = 0;
		return 1;
	}
	return 0;
}

/*
 * The route of the request in d (path, Host, method): 0, or -SW_KM_ROUTE when it has none
 * or its path is not in normal form already (sockwayd would send the normal form, the
 * kernel sends the bytes it has). A global function: the verifier checks it once, on its
 * own, not again on every path of its caller.
 */
__noinline int kdecide_route(struct sw_decide_state *d)
{
	struct knorm k = {.d = d, .same = 1};

	if (!d || sw_decide_route(d, 0) || d->norm_len != d->path_len ||
	    d->path_len > SW_DECIDE_PATH_MAX)
		return -SW_KM_ROUTE;
	k.len = d->path_len;
	bpf_loop(k.len, knorm_same, &k, 0);
	return k.same ? 0 : -SW_KM_ROUTE;
}

/* The shadows of endpoint ep that sample this request, as a mask: each draws on its own,
 * as in sockwayd. Global, as kdecide_route (a loop counter the compiler spills in the
 * caller loses its bounds). */
__noinline __u32 kdecide_shadows(const struct sw_endpoint *ep)
{
	__u32 i, n, shadows = 0;

	if (!ep)
		return 0;
	n = ep->nr_shadows;
	for (i = 0; i < SW_MAX_SHADOWS; i++)
		if (i < n && sw_shadow_sampled(&ep->shadows[i], bpf_get_prandom_u32()))
			shadows |= 1U << i;
	return shadows;
}

/* The pick of the routed request in d (key or d->rnd): 0, or -SW_KM_POLICY. Global, as
 * kdecide_route. */
__noinline int kdecide_pick(struct sw_decide_state *d)
{
	if (!d || sw_decide_pick(d, 0))
		return -SW_KM_POLICY;
	return 0;
}

/* Does the field name at off (len bytes) read as the endpoint's shard header, whatever
 * the case? The hash only found a candidate: the bytes decide. */
struct kname {
	void *data, *data_end;
	const char *want;
	__u32 off;
	__u32 len;
	int same;
};

static long kname_byte(__u64 index, void *ctx)
{
	struct kname *k = ctx;
	__u32 i = (__u32)index, at = k->off + i;
	__u8 *b = k->data, c, w;

	if (i >= k->len || i >= SW_HEADER_NAME_MAX - 1 || at >= SW_REQHEAD_MAX) {
		k->same = 0;
		return 1;
	}
	at = kbound(at);
	if ((void *)(b + at + 1) > k->data_end) {
		k->same = 0;
		return 1;
	}
	c = b[at];
	w = k->want[i & (SW_HEADER_NAME_MAX - 1)];
	if (c >= 'A' && c <= 'Z')
		c |= 0x20;
	if (w >= 'A' && w <= 'Z')
		w |= 0x20;
	if (c != w) {
		k->same = 0;
		return 1;
	}
	return 0;
}

/* The shard key's field of the endpoint, as http_find_header finds it (the first field of
 * that name): its index in the table, or -1. */
static __always_inline int kshard_field(struct kwalk *k, const struct sw_endpoint *ep)
{
	struct sw_reqhead *rh = &k->s->rh;
	struct kname kn;
	__u32 i;

	for (i = 0; i < SW_REQHEAD_FIELDS; i++) {
		struct sw_reqhead_field *f = &rh->field[i];

		if (i >= rh->fields)
			break;
		if (f->hash != ep->shard_header_hash || f->name_len >= SW_HEADER_NAME_MAX)
			continue;
		if (ep->shard_header[f->name_len & (SW_HEADER_NAME_MAX - 1)])
			continue;
		kn.data = k->data;
		kn.data_end = k->data_end;
		kn.want = ep->shard_header;
		kn.off = f->name_off;
		kn.len = f->name_len;
		kn.same = 1;
		bpf_loop(f->name_len, kname_byte, &kn, 0);
		if (kn.same)
			return (int)i;
	}
	return -1;
}

/* A lent upstream from the set, taken (its slot set to 0): its conns index + 1, or 0. */
static __always_inline __u32 klend_take(struct sw_lend_set *set, __u32 *slot)
{
	/* From a random slot on: one connection that is not ready does not turn away every
	 * request that finds it first. */
	__u32 k, j, v, start = bpf_get_prandom_u32();

	for (k = 0; k < SW_LEND_SLOTS; k++) {
		j = (start + k) & (SW_LEND_SLOTS - 1);
		v = set->slot[j];
		if (!v)
			continue;
		if (__sync_val_compare_and_swap(&set->slot[j], v, 0) == v) {
			*slot = j;
			return v;
		}
	}
	return 0;
}

/* Gives a lent upstream back to its set: 0, or -1 when the set is full (sockwayd then finds
 * it at its tick). */
static __always_inline int klend_put(struct sw_lend_set *set, __u32 v)
{
	__u32 j;

	for (j = 0; j < SW_LEND_SLOTS; j++)
		if (!set->slot[j] && __sync_val_compare_and_swap(&set->slot[j], 0, v) == 0)
			return 0;
	return -1;
}

/* The latency histogram's bucket for us microseconds (abi.h, SW_LAT_BUCKETS). */
static __always_inline __u32 klat_bucket(__u64 us)
{
	__u32 b = 0;

	if (us >= 1ULL << 16) {
		us >>= 16;
		b += 16;
	}
	if (us >= 1ULL << 8) {
		us >>= 8;
		b += 8;
	}
	if (us >= 1ULL << 4) {
		us >>= 4;
		b += 4;
	}
	if (us >= 1ULL << 2) {
		us >>= 2;
		b += 2;
	}
	if (us >= 1ULL << 1)
		b += 1;
	return b < SW_LAT_BUCKETS - 1 ? b : SW_LAT_BUCKETS - 1;
}

/*
 * A counter cell; the BPF programs write its shard 0. (Not a pointer to the shard: the
 * compiler would add the offset before the null check, which the verifier refuses.)
 */
static __always_inline struct sw_cell *kcell(__u32 cell)
{
	if (cell >= SW_MAX_CELLS)
		return 0;
	return bpf_map_lookup_elem(&counters, &cell);
}

/*
 * A routed request's response went to the client whole (the upstream's entry e, index
 * e_idx, in TAKING): counts it in shard 0 and, if the client is still the kernel's (K5),
 * gives the upstream back to its lend set. Else sockwayd took the exchange over (K6): the
 * entry goes to DONE for it to collect, as for a response it armed itself. Returns the
 * splice state it left.
 */
static __always_inline __u32 kroute_answered(struct sw_conn *e, __u32 e_idx, __u64 size, __u64 now)
{
	struct sw_cell *ctr = kcell(e->kx_cell);
	struct sw_accel_stats *st;
	struct sw_sock_key ak;
	struct sw_lend_set *set;
	struct sw_conn *a;
	__u32 a_idx = e->kx_client - 1, zero = 0, status = e->head.status / 100;
	__u64 us = (now - e->kx_start_ns) / 1000;
	int mine = 0;

	if (ctr) {
		/* The class as an index, range-checked after the division (the verifier must
		 * see the check on the index itself). */
		status -= 1;
		barrier_var(status);
		if (status < 5)
			__sync_fetch_and_add(&ctr->shard[0].status[status], 1);
		__sync_fetch_and_add(&ctr->shard[0].bytes_to_client, size);
		__sync_fetch_and_add(&ctr->shard[0].latency_sum_us, us);
		__sync_fetch_and_add(&ctr->shard[0].latency[klat_bucket(us) & 31], 1);
	}
	a = bpf_map_lookup_elem(&conns, &a_idx);
	/* The client's entry, if it still is: its key is the client's own, reversed. */
	key_reverse(&ak, &e->client);
	if (a && sw_sock_key_equal(&a->self, &ak)) {
		__sync_fetch_and_add(&a->kx_done, 1);
		mine = __sync_val_compare_and_swap(&a->kroute, SW_KR_BUSY, SW_KR_OPEN) ==
		       SW_KR_BUSY; /* K5 */
	}
	st = bpf_map_lookup_elem(&accel_stats, &zero);
	if (st)
		st->kanswered++;
	if (!mine) {
		__sync_val_compare_and_swap(&e->splice, SW_SPLICE_TAKING, SW_SPLICE_DONE); /* S6 */
		return SW_SPLICE_DONE;
	}
	e->kx_client = 0;
	e->done = 0;
	e->kx_last_ns = now;
	__sync_val_compare_and_swap(&e->splice, SW_SPLICE_TAKING, SW_SPLICE_IDLE); /* S17 */
	set = bpf_map_lookup_elem(&lend, &e->lend_set);
	if (set)
		klend_put(set, e_idx + 1);
	return SW_SPLICE_IDLE;
}

/* The state of a routing attempt, to undo. */
struct kroute_try {
	struct sw_conn *u;
	struct sw_lend_set *set;
	__u32 v; /* u's conns index + 1 */
	__u32 slot;
};

/* Gives a lent upstream that was taken but not used back. */
static __always_inline void kroute_untake(struct kroute_try *t)
{
	if (!t->u)
		return;
	if (__sync_val_compare_and_swap(&t->set->slot[t->slot & (SW_LEND_SLOTS - 1)], 0, t->v))
		klend_put(t->set, t->v);
	t->u = 0;
}

/*
 * Takes an idle lent upstream to the replica `replica` of backend be from the set of lender
 * id worker (abi.h), lent by the sockwayd owner that holds the client: one whose socket and
 * backend's socket are here, ready, and still the replica's address.
 */
static __always_inline int kroute_upstream(struct kroute_try *t, const struct sw_backend *be,
					   __u32 backend, __u32 replica, __u32 worker, __u32 owner,
					   struct sw_sock_key *bkey)
{
	const struct sw_addr *ra;
	struct tcp_sock *up, *bt;
	struct sw_lend_set *set;
	struct sw_conn *u;
	__u32 idx, sidx, v, slot = 0;

	sidx = sw_lend_index(backend, replica, worker);
	set = bpf_map_lookup_elem(&lend, &sidx);
	if (!set)
		return -SW_KM_NO_CONN;
	v = klend_take(set, &slot);
	if (!v) {
		__sync_fetch_and_add(&set->misses, 1);
		return -SW_KM_NO_CONN;
	}
	t->set = set;
	t->v = v;
	t->slot = slot;
	idx = v - 1;
	u = bpf_map_lookup_elem(&conns, &idx);
	/* An entry that is not this set's lent connection any more (freed, taken back, of a
	 * sockwayd gone) leaves the set here: sockwayd closes a lent connection it finds in
	 * no set. So does a client and an upstream that one sockwayd marked for reclaim
	 * (equal owners then, both the mark: `owner` is the client's). One that is only not
	 * ready goes back (kroute_untake). */
	if (!u || !u->owner || u->owner != owner || (owner & SW_CONN_RECLAIMING) || !u->lent ||
	    u->lend_set != sidx || u->worker != worker)
		return -SW_KM_UPSTREAM;
	t->u = u;
	ra = &be->replicas[replica & (SW_MAX_REPLICAS - 1)];
	if (u->kx_client || u->peer_closed || u->splice != SW_SPLICE_IDLE ||
	    u->self.family != AF_INET || ra->family != AF_INET || u->self.remote_port != ra->port ||
	    __builtin_memcmp(&u->self.remote_ip[0], ra->addr, 4))
		return -SW_KM_UPSTREAM;
	/* Both ends still open (a backend that closed after its last response, without
	 * saying so, has its socket out of ESTABLISHED before its FIN reaches sockwayd: a
	 * request sent now would be lost, and sockwayd has no copy to send again), nothing
	 * of the backend's unread by sockwayd (a stray byte would precede the next
	 * response), nothing of sockwayd's still on TCP to the backend, and room there. */
	up = sock_of(&u->self);
	key_reverse(bkey, &u->self);
	bt = sock_of(bkey);
	if (!up || !bt || !tcp_open(up) || !tcp_open(bt) || !tcp_sent_all(up) ||
	    !tcp_read_all(up) || !queue_known_empty(up) || !tcp_read_all(bt) || !has_room(bt))
		return -SW_KM_UPSTREAM;
	return 0;
}

/* Writes the insertion (s->ins, n bytes) into the message at off, which has room for it. */
static __always_inline int kroute_write(struct sk_msg_md *msg, struct sw_kscratch *s, __u32 off,
					__u32 n)
{
	__u8 *b, *end;
	__u32 i;

	if (bpf_msg_pull_data(msg, off, off + n, 0))
		return -1;
	/* Pulled as [off, off + n): data starts at off now. */
	b = (void *)(long)msg->data;
	end = (void *)(long)msg->data_end;
	for (i = 0; i < SW_KROUTE_INSERT_MAX; i++) {
		if (i >= n)
			break;
		if ((void *)(b + i + 1) > (void *)end)
			return -1;
		b[i] = s->ins[i];
	}
	return 0;
}

/* Eight bytes of a string at ins[n & 63], low byte first; len of them. */
static __always_inline __u32 kput(__u8 *ins, __u32 n, __u64 w, __u32 len)
{
	__u32 i;

	for (i = 0; i < 8; i++)
		if (i < len)
			ins[(n + i) & 63] = (__u8)(w >> (i * 8));
	return n + len;
}

/*
 * X-Forwarded-For and X-Forwarded-Proto for a client at addr, in s->ins: their length.
 * (Written a word at a time: a string constant would need a .rodata section, which the
 * skeleton of this object cannot have.) Global: the address's digits branch 81 ways,
 * which the verifier would otherwise walk on every path of the caller.
 */
__noinline __u32 kroute_insertion(struct sw_kscratch *s, __u32 addr)
{
	__u32 n = 0;

	if (!s)
		return 0;
	_Static_assert(SW_KROUTE_XFF_LEN == 17 && SW_KROUTE_XFP_LEN == 27, "kroute_insertion");
	n = kput(s->ins, n, SW_RH_W('X', '-', 'F', 'o', 'r', 'w', 'a', 'r'), 8);
	n = kput(s->ins, n, SW_RH_W('d', 'e', 'd', '-', 'F', 'o', 'r', ':'), 8);
	n = kput(s->ins, n, SW_RH_W(' ', 0, 0, 0, 0, 0, 0, 0), 1);
	n += sw_ipv4_text(addr, &s->ins[n]) & 15;
	n = kput(s->ins, n, SW_RH_W('\r', '\n', 'X', '-', 'F', 'o', 'r', 'w'), 8);
	n = kput(s->ins, n, SW_RH_W('a', 'r', 'd', 'e', 'd', '-', 'P', 'r'), 8);
	n = kput(s->ins, n, SW_RH_W('o', 't', 'o', ':', ' ', 'h', 't', 't'), 8);
	n = kput(s->ins, n, SW_RH_W('p', '\r', '\n', 0, 0, 0, 0, 0), 3);
	return n;
}

/*
 * The request's Host line as sockwayd writes it, "Host: " host CRLF, in s->host_line, from
 * the Host the decision copied (s->d.host, host_len bytes): its length. Global, as
 * kroute_insertion (its loop is checked once).
 */
__noinline __u32 kroute_host_line(struct sw_kscratch *s, __u32 host_len)
{
	__u32 j, n;

	if (!s || host_len >= SW_DECIDE_HOST_MAX)
		return 0;
	n = kput(s->host_line, 0, SW_RH_W('H', 'o', 's', 't', ':', ' ', 0, 0), 6);
	for (j = 0; j < SW_DECIDE_HOST_MAX; j++) {
		if (j >= host_len)
			break;
		s->host_line[(n + j) & (KHOST_LINE_MAX - 1)] = s->d.host[j];
	}
	n += host_len;
	s->host_line[n & (KHOST_LINE_MAX - 1)] = '\r';
	s->host_line[(n + 1) & (KHOST_LINE_MAX - 1)] = '\n';
	return n + 2;
}

/* Bytes for a bpf_loop write into the message, from its data on. */
struct kout {
	void *data, *data_end;
	const __u8 *src;
	__u32 len;
	int err;
};

static long kout_byte(__u64 index, void *ctx)
{
	struct kout *o = ctx;
	__u32 i = (__u32)index;
	__u8 *b = o->data;

	if (i >= o->len || i >= KHOST_LINE_MAX)
		return 1;
	if ((void *)(b + i + 1) > o->data_end) {
		o->err = -1;
		return 1;
	}
	b[i] = o->src[i & (KHOST_LINE_MAX - 1)];
	return 0;
}

/*
 * The Host line up behind the request line, where sockwayd writes it (reqhead.h), when it
 * is not there already (or no longer: a Connection line before it went out, its length
 * conn_popped). 0, or -1 with the message as it was: a copy goes in first, the line's old
 * place goes out last, and a failed step takes the copy out again. Only should that too
 * fail (no memory for a split) is the request left with its Host twice, which sockwayd
 * answers 400; the insertion's undo in kroute_locked is no safer.
 */
static __always_inline int kroute_host_first(struct sk_msg_md *msg, struct sw_kscratch *s,
					     const struct sw_reqhead *rh, __u32 conn_popped)
{
	__u32 at = rh->line0_end, from = rh->host_line_off, len;
	struct kout o = {};

	if (conn_popped && rh->conn_off < from)
		from -= conn_popped;
	if (from == at)
		return 0;
	len = kroute_host_line(s, rh->host_len);
	if (!len || len != rh->host_line_len || at >= SW_REQHEAD_MAX || from <= at)
		return -1;
	if (bpf_msg_push_data(msg, at, len, 0))
		return -1;
	if (bpf_msg_pull_data(msg, at, at + len, 0))
		goto out;
	/* Pulled as [at, at + len): data starts at at now. */
	o.data = (void *)(long)msg->data;
	o.data_end = (void *)(long)msg->data_end;
	o.src = s->host_line;
	o.len = len;
	bpf_loop(len, kout_byte, &o, 0);
	if (o.err || bpf_msg_pop_data(msg, from + len, len, 0))
		goto out;
	return 0;
out:
	bpf_msg_pop_data(msg, at, len, 0);
	return -1;
}

/*
 * Nothing of this client's is anywhere but read by sockwayd, either way: none of its bytes
 * still on TCP to sockwayd's socket (key peer) or in that socket's queues, none of
 * sockwayd's still on TCP to it. A request taken now overtakes nothing, and its response
 * nothing sockwayd sent. Returns the cookie of sockwayd's socket (the splice of the response
 * checks by it that this socket, and so the client's, is still there), or 0: not in order,
 * or no cookie (sockwayd makes one at accept, before it opens the client to the kernel).
 */
static __always_inline __u64 kroute_in_order(struct sk_msg_md *msg, const struct sw_sock_key *peer)
{
	struct tcp_sock *self, *swd;
	struct bpf_sock *sk = msg->sk;

	if (!sk)
		return 0;
	self = bpf_skc_to_tcp_sock(sk);
	swd = sock_of(peer);
	if (!self || !swd || self->snd_una != self->write_seq || !tcp_read_all(swd) ||
	    !queue_known_empty(swd) || !tcp_sent_all(swd) || !tcp_read_all(self))
		return 0;
	return sock_cookie(swd);
}

/* A request decided on (its shadows drawn) that goes to sockwayd after all (K3, or K9 from
 * ROUTING): handoff tells sockwayd the draw, so that it does not draw again. */
static __always_inline int khandoff_from(struct sw_conn *a, enum sw_kroute_miss why, __u32 shadows,
					 __u32 from)
{
	a->handoff = SW_HANDOFF(why, shadows);
	__sync_val_compare_and_swap(&a->kroute, from, SW_KR_CLOSED); /* K3, K9 */
	return -(int)why;
}

static __always_inline int khandoff(struct sw_conn *a, enum sw_kroute_miss why, __u32 shadows)
{
	return khandoff_from(a, why, shadows, SW_KR_OPEN);
}

/*
 * The decision, with the scratch held: 0 when the request was routed (redirected to the
 * backend), or -enum sw_kroute_miss when it goes on to sockwayd.
 */
static __always_inline int kroute_locked(struct sk_msg_md *msg, struct sw_kscratch *s,
					 struct sw_conn *a, __u32 a_idx,
					 const struct sw_sock_key *peer, __u64 size, __u64 cookie)
{
	struct sw_reqhead *rh = &s->rh;
	struct sw_decide_state *d = &s->d;
	struct sw_reqhead_field *field;
	const struct sw_endpoint *ep;
	const struct sw_backend *be;
	const struct sw_ctl *ctl;
	struct sw_lend_set *set0;
	struct sw_accel_stats *st;
	struct sw_cell *ctr;
	struct kroute_try t = {};
	struct sw_sock_key bkey, client;
	struct kwalk k = {};
	struct sw_conn *u;
	__u32 n, i, copy, ep_idx, backend, nr, replica, worker, off, ins_len, zero = 0;
	__u32 shadows = 0;
	__u64 gen;
	int f, err;

	n = size < SW_REQHEAD_MAX ? (__u32)size : SW_REQHEAD_MAX;
	if (bpf_msg_pull_data(msg, 0, n, 0))
		return -SW_KM_HEAD;
	k.data = (void *)(long)msg->data;
	k.data_end = (void *)(long)msg->data_end;
	k.s = s;
	k.result = -1;
	sw_reqhead_begin(rh);
	bpf_loop(n, kscan_byte, &k, 0);
	if (k.result != 1 || rh->body_len > SW_KROUTE_BODY_MAX ||
	    size != (__u64)rh->head_len + rh->body_len)
		return -SW_KM_HEAD;

	/* One policy from here to the upstream: the generation is even and stays. */
	ctl = sw_ctl_get(0);
	if (!ctl)
		return -SW_KM_POLICY;
	gen = SW_READ_ONCE(ctl->generation);
	if (gen & 1)
		return -SW_KM_POLICY;
	kcopy(&k, KCOPY_PATH, rh->path_off, rh->path_len);
	kcopy(&k, KCOPY_HOST, rh->host_off, rh->host_len);
	d->path_len = rh->path_len;
	d->host_len = rh->host_len;
	d->method = rh->method;
	d->key_len = 0;
	if (kdecide_route(d))
		return -SW_KM_ROUTE;

	copy = SW_READ_ONCE(ctl->active[d->endpoint_id & (SW_MAX_ENDPOINTS - 1)]) & 1;
	ep_idx = (d->endpoint_id & (SW_MAX_ENDPOINTS - 1)) * 2 + copy;
	ep = bpf_map_lookup_elem(&endpoints, &ep_idx);
	if (!ep || !(ep->flags & SW_F_IN_USE))
		return -SW_KM_ROUTE;
	f = kshard_field(&k, ep);
	if (f >= 0) {
		field = &rh->field[f & (SW_REQHEAD_FIELDS - 1)];
		if (field->value_len) {
			kcopy(&k, KCOPY_KEY, field->value_off,
			      field->value_len < SW_SHARD_KEY_MAX ? field->value_len
								  : SW_SHARD_KEY_MAX);
			d->key_len = field->value_len;
		}
	}
	d->rnd = bpf_get_prandom_u32();
	if (kdecide_pick(d) || d->pick.generation != gen || d->pick.copy != copy)
		return -SW_KM_POLICY;
	/* Each shadow draws on its own, as in sockwayd. */
	shadows = kdecide_shadows(ep);
	if (SW_READ_ONCE(ctl->generation) != gen)
		return -SW_KM_POLICY;

	/* Decided: from here on, a request left to sockwayd carries the draw. */
	if (shadows)
		return khandoff(a, SW_KM_SHADOW, shadows);
	backend = d->pick.backend_id;
	be = bpf_map_lookup_elem(&backends, &backend);
	if (!be || !(be->flags & SW_F_IN_USE))
		return khandoff(a, SW_KM_ROUTE, 0);
	nr = be->nr_replicas;
	worker = a->worker;
	if (!nr || nr > SW_MAX_REPLICAS || worker >= SW_LEND_WORKERS)
		return khandoff(a, SW_KM_NO_CONN, 0);
	/* The replicas in turn, as sockwayd picks them; the next one if this one's set is
	 * empty. */
	i = sw_lend_index(backend, 0, worker);
	set0 = bpf_map_lookup_elem(&lend, &i);
	if (!set0)
		return khandoff(a, SW_KM_NO_CONN, 0);
	replica = __sync_fetch_and_add(&set0->rr, 1) % nr;
	err = kroute_upstream(&t, be, backend, replica, worker, a->owner, &bkey);
	if (err == -SW_KM_NO_CONN && nr > 1) {
		replica = (replica + 1) % nr;
		err = kroute_upstream(&t, be, backend, replica, worker, a->owner, &bkey);
	}
	if (!err && SW_READ_ONCE(ctl->generation) != gen)
		err = -SW_KM_POLICY;
	if (err) {
		kroute_untake(&t);
		return khandoff(a, (enum sw_kroute_miss)(-err), 0);
	}

	/* The upstream's exchange, then the client's state (K4), then its splice armed for
	 * the whole response (S1, by the kernel): all before the request can reach the
	 * backend, which happens once this run returns. */
	u = t.u;
	key_reverse(&client, peer);
	__builtin_memcpy(&u->client, &client, sizeof(client));
	u->egress = 0;
	u->client_cookie = cookie;
	u->kx_client = a_idx + 1;
	u->kx_cell = d->pick.cell;
	u->kx_endpoint = d->endpoint_id;
	u->kx_method = rh->method;
	u->kx_bytes = (__u32)size;
	u->kx_start_ns = bpf_ktime_get_ns();
	u->done = 0;
	u->left = 0;
	u->done_ns = 0;
	a->kx_up = t.v;
	if (__sync_val_compare_and_swap(&a->kroute, SW_KR_OPEN, SW_KR_ROUTING) != SW_KR_OPEN) {
		u->kx_client = 0; /* K4 lost: sockwayd took the client */
		kroute_untake(&t);
		return -SW_KM_ORDER;
	}
	if (__sync_val_compare_and_swap(&u->splice, SW_SPLICE_IDLE, SW_SPLICE_PREARMED) !=
	    SW_SPLICE_IDLE) /* S16 */
		goto undo_taken;

	/* The head as sockwayd would send it: its Connection line out, its Host line first,
	 * X-Forwarded-For and X-Forwarded-Proto in before the empty line. */
	off = rh->head_len - 2;
	ins_len = kroute_insertion(s, msg->local_ip4);
	if (rh->conn_line_len) {
		if (bpf_msg_pop_data(msg, rh->conn_off, rh->conn_line_len, 0))
			goto undo;
		off -= rh->conn_line_len;
	}
	if (kroute_host_first(msg, s, rh, rh->conn_line_len))
		goto undo;
	if (bpf_msg_push_data(msg, off, ins_len, 0))
		goto undo;
	if (kroute_write(msg, s, off, ins_len) ||
	    bpf_msg_redirect_hash(msg, &sock_hash, &bkey, BPF_F_INGRESS) != SK_PASS) {
		bpf_msg_pop_data(msg, off, ins_len, 0);
		goto undo;
	}
	/* Sent: the response cannot come before this run returns, and sockwayd may take the
	 * exchange over from now on. */
	__sync_val_compare_and_swap(&a->kroute, SW_KR_ROUTING, SW_KR_BUSY); /* K8 */
	ctr = kcell(d->pick.cell);
	if (ctr) {
		__sync_fetch_and_add(&ctr->shard[0].requests, 1);
		__sync_fetch_and_add(&ctr->shard[0].bytes_from_client, size);
	}
	st = bpf_map_lookup_elem(&accel_stats, &zero);
	if (st) {
		st->krouted++;
		st->krouted_bytes += size;
	}
	return 0;

undo:
	/* The message goes to sockwayd (without a Connection: keep-alive line, which sockwayd
	 * drops anyway, its Host line maybe moved up, where sockwayd writes it anyway), and
	 * the upstream back to its set. */
	__sync_val_compare_and_swap(&u->splice, SW_SPLICE_PREARMED, SW_SPLICE_IDLE); /* S18 */
undo_taken:
	/* Still ROUTING (or WANT, K11: the client is going, and its K9 below fails): sockwayd
	 * has not touched the upstream meanwhile. */
	u->kx_client = 0;
	kroute_untake(&t);
	return khandoff_from(a, SW_KM_UPSTREAM, 0, SW_KR_ROUTING); /* K9 */
}

/*
 * A client's send to sockwayd's socket (key peer), whose entry a (index a_idx) is OPEN:
 * 1 when the kernel routed it (the verdict is set), 0 when it goes on as before.
 */
static __always_inline int kroute(struct sk_msg_md *msg, struct sw_conn *a, __u32 a_idx,
				  const struct sw_sock_key *peer, __u64 size)
{
	struct sw_kscratch *s;
	__u32 zero = 0;
	__u64 cookie;
	int ret;

	if (msg->family != AF_INET) {
		ret = -SW_KM_FAMILY;
		goto miss;
	}
	cookie = kroute_in_order(msg, peer);
	if (!cookie) {
		ret = -SW_KM_ORDER;
		goto miss;
	}
	s = bpf_map_lookup_elem(&kscratch, &zero);
	if (!s || __sync_val_compare_and_swap(&s->busy, 0, 1)) {
		ret = -SW_KM_SCRATCH;
		goto miss;
	}
	ret = kroute_locked(msg, s, a, a_idx, peer, size, cookie);
	/* A plain store: the next run on this CPU starts after this one ended. */
	s->busy = 0;
	if (!ret)
		return 1;
miss:
	/* The send goes to sockwayd's socket: the client is sockwayd's (K3; a request decided
	 * on has already gone CLOSED with its handoff), so that the kernel takes nothing that
	 * follows bytes sockwayd is to read, a body after its head say. */
	__sync_val_compare_and_swap(&a->kroute, SW_KR_OPEN, SW_KR_CLOSED); /* K3 */
	kmiss((enum sw_kroute_miss)(-ret));
	return 0;
}

#endif /* SOCKWAY_BPF_KROUTE_H */
