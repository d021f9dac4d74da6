// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * sk_msg: attached to sock_hash, it runs on every send of a socket in the map. When the
 * peer of the connection is in the map too (a local socket of an accelerated cgroup), the
 * bytes go straight into the peer's receive queue, skipping the TCP/IP stack twice;
 * otherwise they take the normal path. Nothing is ever dropped here.
 */
#include "maps.h"
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AF_INET 2

static __always_inline void count(int redirected, __u64 size)
{
	struct sw_accel_stats *st;
	__u32 zero = 0;

	st = bpf_map_lookup_elem(&accel_stats, &zero);
	if (!st)
		return;
	if (redirected) {
		st->redirected++;
		st->redirected_bytes += size;
	} else {
		st->passed++;
		st->passed_bytes += size;
	}
}

SEC("sk_msg")
int msg_redirect(struct sk_msg_md *msg)
{
	struct sw_sock_key peer = {};
	const struct sw_ctl *c;
	/* Read ctx fields once, up front: the verifier refuses a ctx pointer that clang
	 * offsets to share a load between branches. */
	__u64 size = msg->size;
	__u32 zero = 0;
	long ret;

	/* The kill switch: pass everything to TCP. Sockets stay in the map until they
	 * close, so what was redirected before is still read first, in order. */
	c = bpf_map_lookup_elem(&ctl, &zero);
	if (!c || c->accel_off) {
		count(0, size);
		return SK_PASS;
	}

	/* The peer's tuple is ours reversed, in our network namespace. */
	peer.netns = bpf_get_netns_cookie(msg);
	peer.family = msg->family;
	if (msg->family == AF_INET) {
		peer.local_ip[0] = msg->remote_ip4;
		peer.remote_ip[0] = msg->local_ip4;
	} else {
		peer.local_ip[0] = msg->remote_ip6[0];
		peer.local_ip[1] = msg->remote_ip6[1];
		peer.local_ip[2] = msg->remote_ip6[2];
		peer.local_ip[3] = msg->remote_ip6[3];
		peer.remote_ip[0] = msg->local_ip6[0];
		peer.remote_ip[1] = msg->local_ip6[1];
		peer.remote_ip[2] = msg->local_ip6[2];
		peer.remote_ip[3] = msg->local_ip6[3];
	}
	peer.local_port = bpf_ntohl(msg->remote_port);
	peer.remote_port = msg->local_port;
	/* SK_DROP here only means "no such peer": nothing was set up, the send goes on. */
	ret = bpf_msg_redirect_hash(msg, &sock_hash, &peer, BPF_F_INGRESS);
	count(ret == SK_PASS, size);
	return SK_PASS;
}
