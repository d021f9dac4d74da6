// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * sockops: attached to each accelerated cgroup, it puts every TCP socket of the cgroup
 * that reaches ESTABLISHED (both ends: connect and accept) into sock_hash, keyed by its
 * tuple, where the sk_msg program can find it as somebody's peer.
 */
#include "maps.h"
#include <bpf/bpf_endian.h>

#include "sockway/hash.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AF_INET	 2
#define AF_INET6 10

/*
 * A new connection with the key of a conns entry whose socket is gone: a killed sockwayd's
 * (its owner is dead) or one sockwayd closed and frees a tick later (upstream_release_entry).
 * This runs before sockwayd can claim the new socket (it accepts or sees the connect
 * complete after ESTABLISHED), so no lookup may find the old entry for it: its key is
 * retired (family 0 matches no socket). The entry is not freed here: its owner frees it
 * (at its deferred time, or reclaim() once the owner is dead), so a way is never free while
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

SEC("sockops")
int sock_track(struct bpf_sock_ops *ops)
{
	struct sw_sock_key key = {};
	struct sw_accel_stats *st;
	struct bpf_sock *sk;
	struct sw_conn *e;
	__u32 zero = 0, op = ops->op;
	__u64 addr;

	/* A tracked socket closing: its address leaves sock_addr (sock_hash drops the
	 * socket itself), so that the LRU never has to evict a live one. One of sockwayd's
	 * that got its peer's FIN, or died, is marked in its conns entry: a backend that
	 * closes right after a response the kernel passed on (nothing woke sockwayd to see
	 * the close) must not have its connection taken from the pool for the next request. */
	if (op == BPF_SOCK_OPS_STATE_CB) {
		__u32 state = ops->args[1];

		if ((state == BPF_TCP_CLOSE || state == BPF_TCP_CLOSE_WAIT) && key_of(ops, &key)) {
			if (state == BPF_TCP_CLOSE)
				bpf_map_delete_elem(&sock_addr, &key);
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
	if (bpf_map_update_elem(&sock_addr, &key, &addr, BPF_ANY))
		return 1;
	if (bpf_sock_hash_update(ops, &sock_hash, &key, BPF_ANY))
		return 1;
	bpf_sock_ops_cb_flags_set(ops, BPF_SOCK_OPS_STATE_CB_FLAG);
	st = bpf_map_lookup_elem(&accel_stats, &zero);
	if (st)
		st->sockets++;
	return 1;
}
