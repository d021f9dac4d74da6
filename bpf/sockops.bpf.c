// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * sockops: attached to each accelerated cgroup, it puts the TCP sockets of the cgroup whose
 * peer can be a local accelerated socket into sock_hash when they reach ESTABLISHED (both
 * ends: connect and accept), keyed by their tuple, where the sk_msg program can find them
 * as somebody's peer. A socket in sock_hash pays for sk_msg on every send and for the
 * psock's receive path; one whose peer is on another host, or is local but not tracked,
 * gains nothing for it, so it stays out:
 *   - the connecting end (ACTIVE_ESTABLISHED) joins when its route goes through a loopback
 *     device, that is, its peer is an address of this host: it comes first, before its
 *     peer's end is established, so that is all it can know yet;
 *   - the accepting end (PASSIVE_ESTABLISHED) joins only when its peer is already in
 *     sock_addr: the connecting end's callback runs before it sends the handshake's last
 *     ACK, so a tracked local peer is always there by then.
 * A connecting end whose local peer never joins (a backend outside accelerated cgroups)
 * stays in; sockwayd takes its own such upstream sockets out (upstream.c).
 * sockwayd's accepted sockets to clients on other hosts go into egress_hash instead, the
 * targets of the egress splice (swd_accepted_remote).
 */
#include "maps.h"
#include <bpf/bpf_endian.h>

#include "sock.h"

#include "sockway/hash.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AF_INET6 10

/*
 * A new connection with the key of a conns entry whose socket is gone: a killed sockwayd's
 * (its owner is dead) or one sockwayd closed and frees a tick later (upstream_release_entry).
 * This runs before sockwayd can claim the new socket (it accepts or sees the connect
 * complete after ESTABLISHED), so no lookup may find the old entry for it: its key is
 * retired (family 0 matches no socket). The entry is not freed here: its owner frees it
 * (at its deferred time, or its reclaim once the owner is dead), so a way is never free while
 * its owner still holds it and may free it again. No live socket has the key of one being
 * established, while any number may share its tag.
 * (A store, not a compare-and-swap: only if the owner released the way and another socket
 * claimed it in the same instant could this hit the new claim, which would then just go
 * without the kernel's help; lookups can only ever fail because of it.)
 */
static __always_inline void conn_forget(const struct sw_sock_key *k)
{
	struct sw_conn *e = conn_find(k);

	if (e)
		__sync_lock_test_and_set(&e->self.family, 0);
}

/* The socket's key as its own side sees it: 0 if not TCP over IPv4 or IPv6. */
static __always_inline int key_of(struct bpf_sock_ops *ops, struct sw_sock_key *key)
{
	if (ops->family != AF_INET && ops->family != AF_INET6)
		return 0;
	key->netns = bpf_get_netns_cookie(ops);
	key->family = ops->family;
	if (ops->family == AF_INET) {
		key->local_ip[0] = ops->local_ip4;
		key->remote_ip[0] = ops->remote_ip4;
	} else {
		key->local_ip[0] = ops->local_ip6[0];
		key->local_ip[1] = ops->local_ip6[1];
		key->local_ip[2] = ops->local_ip6[2];
		key->local_ip[3] = ops->local_ip6[3];
		key->remote_ip[0] = ops->remote_ip6[0];
		key->remote_ip[1] = ops->remote_ip6[1];
		key->remote_ip[2] = ops->remote_ip6[2];
		key->remote_ip[3] = ops->remote_ip6[3];
	}
	key->local_port = ops->local_port;
	/* remote_port holds the network-order port in its upper half on little endian. */
	key->remote_port = bpf_ntohl(ops->remote_port);
	return 1;
}

/* The connected socket's cached route leaves through a loopback device: its peer is local.
 * (The route is cached at connect, so an ESTABLISHED connecting socket has one.) */
static __always_inline int route_is_local(struct bpf_sock *sk)
{
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
	struct dst_entry *dst;

	if (!tp)
		return 0;
	dst = tp->inet_conn.icsk_inet.sk.sk_dst_cache;
	return dst && dst->dev && (dst->dev->flags & IFF_LOOPBACK);
}

/*
 * An accepted socket of sockwayd (its listener was made in sockwayd's cgroup, ctl.swd_cgroup)
 * whose peer is on another host (its route does not go through a loopback device): the
 * target of the egress splice, where a local backend's response goes out to a remote client
 * without passing through sockwayd (sk_msg.bpf.c). A local client outside accelerated
 * cgroups is not one: loopback TCP is cheap, and the egress path buys it little.
 */
static __always_inline int swd_accepted_remote(struct bpf_sock *sk)
{
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
	const struct sw_ctl *c;
	struct cgroup *cg;
	__u32 zero = 0;

	c = bpf_map_lookup_elem(&ctl, &zero);
	if (!tp || !c || !c->swd_cgroup || c->accel_off)
		return 0;
	cg = tp->inet_conn.icsk_inet.sk.sk_cgrp_data.cgroup;
	return cg && cg->kn && cg->kn->id == c->swd_cgroup && !route_is_local(sk);
}

/*
 * Files such a socket in egress_hash (no program runs on its sends; see bpf/maps.h), its
 * address in egress_addr first. Full: it goes without the egress splice.
 */
static __always_inline void egress_track(struct bpf_sock_ops *ops, const struct sw_sock_key *key,
					 __u64 addr)
{
	if (bpf_map_update_elem(&egress_addr, key, &addr, BPF_ANY))
		return;
	if (bpf_sock_hash_update(ops, &egress_hash, (void *)key, BPF_ANY)) {
		bpf_map_delete_elem(&egress_addr, key);
		return;
	}
	bpf_sock_ops_cb_flags_set(ops, BPF_SOCK_OPS_STATE_CB_FLAG);
}

/* The peer of an accepted socket is tracked: its connecting end joined (see the top). */
static __always_inline int peer_tracked(const struct sw_sock_key *key)
{
	struct sw_sock_key peer;

	key_reverse(&peer, key);
	return bpf_map_lookup_elem(&sock_addr, &peer) != 0;
}

SEC("sockops")
int sock_track(struct bpf_sock_ops *ops)
{
	struct sw_sock_key key = {};
	struct sw_accel_stats *st;
	struct bpf_sock *sk;
	struct sw_conn *e;
	__u32 zero = 0, op = ops->op;
	__u64 addr;
	int track;

	/* A tracked socket closing: its address leaves sock_addr (sock_hash drops the
	 * socket itself), so that the LRU never has to evict a live one; an egress target's
	 * leaves egress_addr. One of sockwayd's that got its peer's FIN, or died, is marked
	 * in its conns entry: a backend that closes right after a response the kernel passed
	 * on (nothing woke sockwayd to see the close) must not have its connection taken
	 * from the pool for the next request. */
	if (op == BPF_SOCK_OPS_STATE_CB) {
		__u32 state = ops->args[1];

		if ((state == BPF_TCP_CLOSE || state == BPF_TCP_CLOSE_WAIT) && key_of(ops, &key)) {
			if (state == BPF_TCP_CLOSE) {
				bpf_map_delete_elem(&sock_addr, &key);
				bpf_map_delete_elem(&egress_addr, &key);
			}
			e = conn_find(&key);
			if (e)
				e->peer_closed = 1;
		}
		return 1;
	}
	if (op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB && op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
		return 1;
	if (!key_of(ops, &key))
		return 1;
	sk = ops->sk;
	if (!sk)
		return 1;
	addr = (__u64)(unsigned long)sk;
	conn_forget(&key);
	if (op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB) {
		track = route_is_local(sk);
	} else {
		track = peer_tracked(&key);
		if (!track && swd_accepted_remote(sk)) {
			egress_track(ops, &key, addr);
			return 1;
		}
	}
	if (!track) {
		st = bpf_map_lookup_elem(&accel_stats, &zero);
		if (st)
			st->untracked++;
		return 1;
	}
	if (bpf_map_update_elem(&sock_addr, &key, &addr, BPF_ANY))
		return 1;
	/* Not in sock_hash (full): no close callback will remove the address either, and a
	 * stale one would make a later socket with this tuple look like a tracked peer. */
	if (bpf_sock_hash_update(ops, &sock_hash, &key, BPF_ANY)) {
		bpf_map_delete_elem(&sock_addr, &key);
		return 1;
	}
	bpf_sock_ops_cb_flags_set(ops, BPF_SOCK_OPS_STATE_CB_FLAG);
	st = bpf_map_lookup_elem(&accel_stats, &zero);
	if (st)
		st->sockets++;
	return 1;
}
