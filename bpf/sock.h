/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * What sk_msg reads of sockets: their keys, the kernel's TCP state behind a key (sent and
 * acked, delivered and read), the sk_msg queue of a socket's psock, and the kernel path's
 * own counts. Shared by the bypass and the splice (sk_msg.bpf.c) and kernel routing
 * (kroute.h).
 */
#ifndef SOCKWAY_BPF_SOCK_H
#define SOCKWAY_BPF_SOCK_H

#include "maps.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

/* A kernel address as a read-only typed pointer: loads through it are fault-safe direct
 * loads (no helper call per field, unlike bpf_probe_read_kernel). */
extern void *bpf_rdonly_cast(const void *obj__ign, __u32 btf_id) __ksym;

#define AF_INET 2

enum verdict { PASSED, REDIRECTED, HELD, SPLICED };

static __always_inline void count(enum verdict v, __u64 size)
{
	struct sw_accel_stats *st;
	__u32 zero = 0;

	st = bpf_map_lookup_elem(&accel_stats, &zero);
	if (!st)
		return;
	if (v == PASSED || v == HELD) {
		st->passed++;
		st->passed_bytes += size;
		if (v == HELD) {
			st->held++;
			st->held_bytes += size;
		}
		return;
	}
	st->redirected++;
	st->redirected_bytes += size;
	if (v == SPLICED) {
		st->spliced++;
		st->spliced_bytes += size;
	}
}

/* The same connection from its other end. */
static __always_inline void key_reverse(struct sw_sock_key *out, const struct sw_sock_key *k)
{
	out->netns = k->netns;
	out->family = k->family;
	out->local_ip[0] = k->remote_ip[0];
	out->local_ip[1] = k->remote_ip[1];
	out->local_ip[2] = k->remote_ip[2];
	out->local_ip[3] = k->remote_ip[3];
	out->remote_ip[0] = k->local_ip[0];
	out->remote_ip[1] = k->local_ip[1];
	out->remote_ip[2] = k->local_ip[2];
	out->remote_ip[3] = k->local_ip[3];
	out->local_port = k->remote_port;
	out->remote_port = k->local_port;
	out->pad = 0;
}

/* The kernel's tcp_sock of a socket in sock_hash, by its key (see sock_addr). */
static __always_inline struct tcp_sock *sock_of(const struct sw_sock_key *k)
{
	__u64 *addr = bpf_map_lookup_elem(&sock_addr, k);

	if (!addr)
		return 0;
	return bpf_rdonly_cast((void *)(unsigned long)*addr,
			       bpf_core_type_id_kernel(struct tcp_sock));
}

/* The kernel's tcp_sock of a socket in egress_hash, by its key (see egress_addr). */
static __always_inline struct tcp_sock *egress_sock_of(const struct sw_sock_key *k)
{
	__u64 *addr = bpf_map_lookup_elem(&egress_addr, k);

	if (!addr)
		return 0;
	return bpf_rdonly_cast((void *)(unsigned long)*addr,
			       bpf_core_type_id_kernel(struct tcp_sock));
}

/* Every byte the socket sent on TCP has been acked, so it is in its peer's queue. */
static __always_inline int tcp_sent_all(struct tcp_sock *tp)
{
	return tp->snd_una == tp->write_seq;
}

/* The socket is ESTABLISHED: its application has not closed or shut it down (a close
 * moves it to FIN_WAIT1 at once, before its FIN reaches the peer). */
static __always_inline int tcp_open(struct tcp_sock *tp)
{
	return tp->inet_conn.icsk_inet.sk.__sk_common.skc_state == 1; /* TCP_ESTABLISHED */
}

/* The socket's application has read every byte that TCP delivered to it. */
static __always_inline int tcp_read_all(struct tcp_sock *tp)
{
	return tp->rcv_nxt == tp->copied_seq;
}

/*
 * Bytes redirected into the socket and not yet read (its sk_msg queue); -1 if it has no
 * psock. Kernels without psock->msg_tot_len (the FIONREAD count of that queue) report 0:
 * the bypass then works without its bound, as before it existed.
 */
static __always_inline long msg_queued(struct tcp_sock *tp)
{
	unsigned long p = (unsigned long)tp->inet_conn.icsk_inet.sk.sk_user_data & ~7UL;
	struct sk_psock *psock;

	if (!p)
		return -1;
	psock = bpf_rdonly_cast((void *)p, bpf_core_type_id_kernel(struct sk_psock));
	if (!bpf_core_field_exists(psock->msg_tot_len))
		return 0;
	return psock->msg_tot_len;
}

/*
 * What a socket may hold in its sk_msg queue before sends to it take TCP: its SO_RCVBUF,
 * but at least SW_ACCEL_QUEUE (or tcp_rmem[2] if smaller). No autotuning grows this queue
 * for a reader that keeps up, and at the initial 128 KiB every stream of large writes
 * would fall back to TCP.
 */
static __always_inline int has_room(struct tcp_sock *tp)
{
	long queued = msg_queued(tp);
	__u32 limit, rcvbuf;

	if (queued < 0)
		return 0;
	/* The common case, without reading more of a socket that another CPU is using. */
	if (queued < SW_ACCEL_QUEUE_FLOOR)
		return 1;
	limit = tp->inet_conn.icsk_inet.sk.__sk_common.skc_net.net->ipv4.sysctl_tcp_rmem[2];
	if (limit > SW_ACCEL_QUEUE)
		limit = SW_ACCEL_QUEUE;
	rcvbuf = tp->inet_conn.icsk_inet.sk.sk_rcvbuf;
	if (limit < rcvbuf)
		limit = rcvbuf;
	return queued < limit;
}

/*
 * Room in the socket for size more bytes at once, and the socket open: an egress redirect
 * (the egress splice, sk_msg.bpf.c) appends them to its write queue, and the kernel counts
 * them as moved before it does. The append must not wait for room, nor fail half-way: a
 * sender that does not block would get a short write, and the rest of a response that
 * sk_msg counted whole would come again. So the whole send must fit what the TCP send path
 * checks before each buffer: the send buffer (sk_wmem_queued against sk_sndbuf; the
 * margin covers the headers of the buffers that carry the bytes) and the not-sent
 * low-water mark (TCP_NOTSENT_LOWAT, or net.ipv4.tcp_notsent_lowat: bytes queued and not
 * yet sent stay under it). What it cannot see is memory pressure (tcp_mem, a memory
 * cgroup): README, the egress splice's limits.
 */
static __always_inline int send_room(struct tcp_sock *tp, __u64 size)
{
	long queued = tp->inet_conn.icsk_inet.sk.sk_wmem_queued;
	long sndbuf = tp->inet_conn.icsk_inet.sk.sk_sndbuf;
	__u64 lowat = tp->notsent_lowat;

	if (!tcp_open(tp) || queued + (long)size + (long)(size >> 2) + 4096 > sndbuf)
		return 0;
	if (!lowat)
		lowat = tp->inet_conn.icsk_inet.sk.__sk_common.skc_net.net->ipv4
				.sysctl_tcp_notsent_lowat;
	return (__u64)(tp->write_seq - tp->snd_nxt) + size < lowat;
}

/* The socket's cookie, if it has one yet (SO_COOKIE or the kernel made it): 0 if not. */
static __always_inline __u64 sock_cookie(struct tcp_sock *tp)
{
	return tp->inet_conn.icsk_inet.sk.__sk_common.skc_cookie.counter;
}

enum peer_state { NO_PEER, BEHIND, READY };

/*
 * May these bytes go straight into the peer's queue? Only when that keeps the stream in
 * order and bounded:
 * - no byte of ours is still on the TCP path (sent but not acked, or acked but not yet
 *   read by the peer): the peer reads its sk_msg queue first, so a redirect would
 *   overtake them;
 * - the peer has room (has_room). A redirect never blocks the sender, so without this a
 *   slow reader lets a sender fill kernel memory (64 MiB queued was seen). Past the limit
 *   the bytes take TCP, whose window blocks the sender; once the peer has read
 *   everything, sends are redirected again. So a peer holds at most the limit plus one
 *   message (up to the sender's send buffer) on this path, and TCP's own buffers on the
 *   other.
 */
static __always_inline enum peer_state peer_ready(struct sk_msg_md *msg,
						  const struct sw_sock_key *peer)
{
	struct tcp_sock *self, *tp;
	struct bpf_sock *sk;

	tp = sock_of(peer);
	if (!tp)
		return NO_PEER;
	sk = msg->sk;
	if (!sk)
		return NO_PEER;
	self = bpf_skc_to_tcp_sock(sk);
	if (!self)
		return NO_PEER;
	if (self->snd_una != self->write_seq)
		return BEHIND;
	/* Only a sender that ever sent data on TCP can have bytes in the peer's TCP queue;
	 * most never do, and then the peer's TCP state need not be read. */
	if (self->bytes_sent && !tcp_read_all(tp))
		return BEHIND;
	return has_room(tp) ? READY : BEHIND;
}

/* Nothing redirected into the socket is waiting to be read. Unknown (no msg_tot_len in
 * this kernel, where msg_queued says 0) counts as not empty: a splice must never start
 * then. */
static __always_inline int queue_known_empty(struct tcp_sock *tp)
{
	return bpf_core_field_exists(struct sk_psock, msg_tot_len) && msg_queued(tp) == 0;
}

/* The peer's key: the sender's tuple reversed, in its network namespace. */
static __always_inline void peer_key(struct sk_msg_md *msg, struct sw_sock_key *peer)
{
	peer->netns = bpf_get_netns_cookie(msg);
	peer->family = msg->family;
	if (msg->family == AF_INET) {
		peer->local_ip[0] = msg->remote_ip4;
		peer->remote_ip[0] = msg->local_ip4;
	} else {
		peer->local_ip[0] = msg->remote_ip6[0];
		peer->local_ip[1] = msg->remote_ip6[1];
		peer->local_ip[2] = msg->remote_ip6[2];
		peer->local_ip[3] = msg->remote_ip6[3];
		peer->remote_ip[0] = msg->local_ip6[0];
		peer->remote_ip[1] = msg->local_ip6[1];
		peer->remote_ip[2] = msg->local_ip6[2];
		peer->remote_ip[3] = msg->local_ip6[3];
	}
	peer->local_port = bpf_ntohl(msg->remote_port);
	peer->remote_port = msg->local_port;
}

#endif /* SOCKWAY_BPF_SOCK_H */
