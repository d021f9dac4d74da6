// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * sk_msg: attached to sock_hash, it runs on every send of a socket in the map. When the
 * peer of the connection is in the map too (a local socket of an accelerated cgroup), the
 * bytes go straight into the peer's receive queue, skipping the TCP/IP stack twice;
 * otherwise they take the normal path. Nothing is ever dropped here.
 */
#include "maps.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AF_INET 2

enum verdict { PASSED, REDIRECTED, HELD };

static __always_inline void count(enum verdict v, __u64 size)
{
	struct sw_accel_stats *st;
	__u32 zero = 0;

	st = bpf_map_lookup_elem(&accel_stats, &zero);
	if (!st)
		return;
	if (v == REDIRECTED) {
		st->redirected++;
		st->redirected_bytes += size;
		return;
	}
	st->passed++;
	st->passed_bytes += size;
	if (v == HELD) {
		st->held++;
		st->held_bytes += size;
	}
}

/*
 * May these bytes go straight into the peer's queue? Only when that keeps the stream in
 * order and bounded:
 * - no byte of ours is still on the TCP path (sent but not acked, or acked but not yet
 *   read by the peer): the peer reads its sk_msg queue first, so a redirect would
 *   overtake them;
 * - the peer holds less than a limit (below) in redirected bytes not yet read. A redirect
 *   never blocks the sender, so without this a slow reader lets a sender fill kernel
 *   memory (64 MiB queued was seen). Past the limit the bytes take TCP, whose window
 *   blocks the sender; once the peer has read everything, sends are redirected again. So
 *   a peer holds at most the limit plus one message (up to the sender's send buffer) on
 *   this path, and TCP's own buffers on the other.
 */
enum peer_state { NO_PEER, BEHIND, READY };

static __always_inline enum peer_state peer_ready(struct sk_msg_md *msg, struct sw_sock_key *peer)
{
	struct tcp_sock *self, *tp;
	struct sk_psock *psock;
	struct bpf_sock *sk;
	__u32 queued, rcvbuf, limit;
	__u64 *addr;

	addr = bpf_map_lookup_elem(&sock_addr, peer);
	if (!addr)
		return NO_PEER;
	sk = msg->sk;
	if (!sk)
		return NO_PEER;
	self = bpf_skc_to_tcp_sock(sk);
	if (!self)
		return NO_PEER;
	if (self->snd_una != self->write_seq)
		return BEHIND;
	tp = (struct tcp_sock *)(unsigned long)*addr;
	if (BPF_CORE_READ(tp, rcv_nxt) != BPF_CORE_READ(tp, copied_seq))
		return BEHIND;
	psock = (struct sk_psock *)((unsigned long)BPF_CORE_READ(tp, inet_conn.icsk_inet.sk.sk_user_data) &
				    ~7UL);
	if (!psock)
		return NO_PEER;
	queued = BPF_CORE_READ(psock, msg_tot_len);
	/* The peer's SO_RCVBUF, but at least SW_ACCEL_QUEUE (or tcp_rmem[2] if smaller): no
	 * autotuning grows this queue for a reader that keeps up, and at the initial 128 KiB
	 * every stream of large writes would fall back to TCP. */
	limit = BPF_CORE_READ(tp, inet_conn.icsk_inet.sk.__sk_common.skc_net.net,
			      ipv4.sysctl_tcp_rmem[2]);
	if (limit > SW_ACCEL_QUEUE)
		limit = SW_ACCEL_QUEUE;
	rcvbuf = BPF_CORE_READ(tp, inet_conn.icsk_inet.sk.sk_rcvbuf);
	if (limit < rcvbuf)
		limit = rcvbuf;
	return queued < limit ? READY : BEHIND;
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
		count(PASSED, size);
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
	switch (peer_ready(msg, &peer)) {
	case NO_PEER:
		count(PASSED, size);
		return SK_PASS;
	case BEHIND:
		count(HELD, size);
		return SK_PASS;
	case READY:
		break;
	}
	/* SK_DROP here only means "no such peer" (it closed since): nothing was set up, the
	 * send goes on. */
	ret = bpf_msg_redirect_hash(msg, &sock_hash, &peer, BPF_F_INGRESS);
	count(ret == SK_PASS ? REDIRECTED : PASSED, size);
	return SK_PASS;
}
