// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * sk_msg: attached to sock_hash, it runs on every send of a socket in the map. When the
 * peer of the connection is in the map too (a local socket of an accelerated cgroup), the
 * bytes go straight into the peer's receive queue, skipping the TCP/IP stack twice;
 * otherwise they take the normal path. Nothing is dropped here but the rest of a split
 * message whose reader, sockwayd's socket, is gone.
 *
 * Two things ride on it for sockwayd's connections (the conns map, abi.h; the splice's
 * transitions S1..S15 are tabled next to enum sw_splice_state there): the bytes are
 * counted per connection (sockwayd adds them to the exchange's counter cell), and a
 * response can skip sockwayd altogether, from the backend's socket straight into the
 * client's (the splice): its body, or all of it when its head is one that sockwayd would
 * pass on unchanged (resphead.h), which this program scans.
 */
#include "kroute.h"
#include "sock.h"

#include "sockway/hash.h"
#include "sockway/resphead.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/*
 * Sends the message to the splice's client: into a local client's receive queue (its socket
 * in sock_hash), or out of sockwayd's socket to a remote client (in egress_hash: the
 * egress splice). Two calls, each with its own map, rather than one with a map picked at
 * run time. SK_PASS, or SK_DROP when that socket is gone.
 */
static __always_inline long redirect_client(struct sk_msg_md *msg, struct sw_sock_key *client,
					    __u32 egress)
{
	if (egress)
		return bpf_msg_redirect_hash(msg, &egress_hash, client, 0);
	return bpf_msg_redirect_hash(msg, &sock_hash, client, BPF_F_INGRESS);
}

/*
 * The client's socket, in whichever map it is, if it is still the one the splice was armed
 * for: a tuple outlives its socket, and a new connection from the same address and port
 * (after the client or sockwayd died, say) gets the same key. So the socket of sockwayd's
 * end of the connection must be the very one, by its cookie (e->client_cookie, never 0
 * when armed): for the egress splice that is the client socket itself; for a local client,
 * its peer, returned in *swd (while that end lives, the client's end is the same socket
 * too, as both ends of a connection leave the tuple only together).
 */
static __always_inline struct tcp_sock *client_sock(const struct sw_conn *e,
						    const struct sw_sock_key *client, __u32 egress,
						    struct tcp_sock **swd)
{
	struct sw_sock_key swd_key;
	struct tcp_sock *tp;
	__u64 cookie = e->client_cookie;

	if (!cookie)
		return 0;
	if (egress) {
		tp = egress_sock_of(client);
		return tp && sock_cookie(tp) == cookie ? tp : 0;
	}
	key_reverse(&swd_key, client);
	*swd = sock_of(&swd_key);
	if (!*swd || sock_cookie(*swd) != cookie)
		return 0;
	return sock_of(client);
}

/*
 * May the splice armed on sockwayd's upstream socket (key up) start with this
 * send of the backend? Only if nothing the backend sent before is anywhere but read by
 * sockwayd (so sockwayd, which armed after forwarding all it read, or before the response
 * came, holds nothing of it), nothing sockwayd sent the client is still on TCP, and the
 * client's socket is here with room.
 * Egress (client is sockwayd's own socket to a remote client): whatever sockwayd sent the
 * client is in that socket's write queue already (it armed with nothing left to write, and
 * writes nothing while armed), and the kernel appends to the same queue, so order holds
 * without waiting for acks; what counts is room in its send buffer for this whole send.
 */
static __always_inline int splice_can_start(struct sk_msg_md *msg, const struct sw_conn *e,
					    const struct sw_sock_key *up,
					    const struct sw_sock_key *client, __u32 egress,
					    __u64 size)
{
	struct tcp_sock *self, *u, *cl, *swd = 0;
	struct bpf_sock *sk;

	sk = msg->sk;
	if (!sk)
		return 0;
	self = bpf_skc_to_tcp_sock(sk);
	if (!self || self->snd_una != self->write_seq)
		return 0;
	u = sock_of(up);
	if (!u || !tcp_read_all(u) || !queue_known_empty(u))
		return 0;
	cl = client_sock(e, client, egress, &swd);
	if (egress)
		return cl && send_room(cl, size);
	if (!cl || !swd || !tcp_sent_all(swd) || !tcp_read_all(cl))
		return 0;
	return has_room(cl);
}

/*
 * Is this run on the rest of a message whose first part the previous run redirected with
 * bpf_msg_apply_bytes (a splice's split)? Such a run must reset the byte count and
 * redirect explicitly (or drop), whatever state the conns entry is in by now. Two marks
 * of the previous run tell it, read from the kernel's struct behind the context
 * (bpf_rdonly_cast: the UAPI view has neither):
 * - its byte count (struct sk_msg's apply_bytes). The kernel copies the message's count
 *   into the psock after every run and never clears it in the message, so a run on the
 *   rest that left it alone would hand the split's count to its own verdict: the
 *   socket's next sends, up to that many bytes, would follow that verdict without a run
 *   (seen on 6.18: the first 480 KiB of the next response went to sockwayd's socket
 *   unseen, so no splice could start on it);
 * - its target (sk_redir), which some kernels keep in the message and would follow
 *   again on SK_PASS; 6.18 has cleared it by then, so it cannot be the only mark.
 * A new message starts with both zero and only the split sets a count, so either one at
 * entry means exactly this.
 */
static __always_inline int msg_is_rest(struct sk_msg_md *msg)
{
	struct sk_msg *km = bpf_rdonly_cast(msg, bpf_core_type_id_kernel(struct sk_msg));

	return km->apply_bytes != 0 || km->sk_redir != 0;
}

/* A response head being scanned (bpf_loop context): the message's first bytes, and the
 * scan state in the connection's conns entry (abi.h, struct sw_resphead). */
struct head_scan {
	void *data, *data_end;
	struct sw_conn *e;
	int result;
};

static long head_scan_byte(__u64 index, void *ctx)
{
	struct head_scan *s = ctx;
	__u32 i = (__u32)index + SW_RESPHEAD_START;
	__u8 *b = s->data;

	/* Bounds for the verifier: i stays in the head limit and inside the packet. */
	if (i >= SW_RESPHEAD_MAX || (void *)(b + i + 1) > s->data_end) {
		s->result = -1;
		return 1;
	}
	s->result = sw_resphead_step(&s->e->head, b[i], i);
	return s->result != 0;
}

/*
 * Is the message's start a response head that sockwayd would pass on unchanged
 * (resphead.h), with a body worth a splice? Leaves the scan in e->head. The head must be
 * in the message's first SW_RESPHEAD_MAX bytes, which bpf_msg_pull_data makes contiguous
 * (it copies only when they span pages).
 */
static __always_inline int head_scan(struct sk_msg_md *msg, __u64 size, struct sw_conn *e)
{
	__u32 n = size < SW_RESPHEAD_MAX ? (__u32)size : SW_RESPHEAD_MAX;
	struct head_scan s;
	__u8 *b;

	if (bpf_msg_pull_data(msg, 0, n, 0))
		return -1;
	b = (void *)(long)msg->data;
	s.data_end = (void *)(long)msg->data_end;
	if ((void *)(b + SW_RESPHEAD_START) > s.data_end || sw_resphead_begin(&e->head, b))
		return -1;
	s.data = b;
	s.e = e;
	s.result = -1;
	bpf_loop(n - SW_RESPHEAD_START, head_scan_byte, &s, 0);
	return s.result == 1 ? 0 : -1;
}

enum splice_result {
	NOT_SPLICED,  /* the normal path decides */
	SPLICED_SENT, /* (some of) the message went to the client */
	SPLICE_GONE,  /* redirected to a client connection that has gone since: the message
		       * must go to sockwayd's socket instead (rest_redirect) */
};

/*
 * Redirects the message (its first bytes, with apply_bytes) to the splice's client, and
 * checks again, after the redirect looked the client's socket up, that sockwayd's end of
 * that connection is still the socket armed for: the check before (client_sock) may be old
 * by then, as a run can be held off its CPU in between. That end still here, it was here
 * at the look-up, and then the client's key named the client's socket and no other (a new
 * connection cannot take a tuple while the old one's end is in the hash tables, and sockops
 * drops the end from sock_addr before the kernel unhashes it). 0: redirected; -1: the
 * client's socket is gone, nothing redirected; -2: redirected, and the connection went
 * meanwhile, so the redirect must be replaced.
 */
static __always_inline int redirect_client_checked(struct sk_msg_md *msg, struct sw_conn *e,
						   struct sw_sock_key *client, __u32 egress)
{
	struct tcp_sock *swd = 0;
	__u64 fence;

	if (redirect_client(msg, client, egress) != SK_PASS)
		return -1;
	/* A full barrier, so that the look-ups below come after the redirect's: a fetching
	 * atomic (one whose result is unused, clang makes a plain atomic add, which orders
	 * nothing on arm64). */
	fence = __sync_fetch_and_add(&e->accel_bytes, 0);
	barrier_var(fence);
	return client_sock(e, client, egress, &swd) ? 0 : -2;
}

/*
 * The message is a whole response, head and body, and the splice is ours (TAKING): it all
 * goes to the client, and the entry says DONE with what moved and when. Nothing reaches
 * sockwayd's socket, so nothing wakes it: the client's next request does, or its tick.
 */
static __always_inline enum splice_result splice_whole_send(struct sk_msg_md *msg,
							    struct sw_conn *e, __u32 e_idx,
							    struct sw_sock_key *client, __u64 size,
							    __u32 egress)
{
	int r = redirect_client_checked(msg, e, client, egress);

	if (r) {
		/* The client's socket is gone: the response goes to sockwayd, which finds
		 * the splice stopped with nothing moved (and the client closed). */
		e->done = 0;
		__sync_val_compare_and_swap(&e->splice, SW_SPLICE_TAKING,
					    SW_SPLICE_STOPPED); /* S7 */
		return r == -1 ? NOT_SPLICED : SPLICE_GONE;
	}
	e->done = size;
	e->left = 0;
	e->done_ns = bpf_ktime_get_ns();
	count(SPLICED, size);
	__sync_fetch_and_add(&e->accel_bytes, size);
	/* A request the kernel routed: counted, and the upstream given back (kroute.h). */
	if (e->kx_client) {
		kroute_answered(e, e_idx, size, e->done_ns);
		return SPLICED_SENT;
	}
	/* A swap: sockwayd may have freed the entry meanwhile (it never leaves TAKING
	 * otherwise). */
	__sync_val_compare_and_swap(&e->splice, SW_SPLICE_TAKING, SW_SPLICE_DONE); /* S6 */
	return SPLICED_SENT;
}

/*
 * A PREARMED response's first send: is it a head that passes on unchanged, with nothing
 * past the response? Then *next is TAKING when all of it is here, ACTIVE when not, and
 * *total its length. Else the arming goes back to sockwayd (S4): -1.
 */
static __always_inline int splice_prearmed(struct sk_msg_md *msg, struct sw_conn *e, __u64 size,
					   __u32 *next, __u64 *total)
{
	if (head_scan(msg, size, e))
		goto decline;
	*total = (__u64)e->head.head_len + e->head.body_len;
	/* Bytes past the response in its first send: not a stream to pass on. */
	if (size > *total)
		goto decline;
	/* The whole response in this send (most small ones): all of it goes, and nothing
	 * wakes sockwayd; it finds DONE when the client speaks again, or at its next tick. */
	*next = size == *total ? SW_SPLICE_TAKING : SW_SPLICE_ACTIVE;
	return 0;
decline:
	__sync_val_compare_and_swap(&e->splice, SW_SPLICE_PREARMED, SW_SPLICE_IDLE); /* S4 */
	return -1;
}

/*
 * An ACTIVE splice: up to e->left bytes of the message go into the client's socket, and the
 * splice stops (S11) once left is 0 or the client cannot take more.
 */
static __always_inline enum splice_result splice_move(struct sk_msg_md *msg, struct sw_conn *e,
						      struct sw_sock_key *client, __u64 size,
						      __u32 egress)
{
	__u64 left = e->left;
	int r = -1;

	if (!left)
		goto stop;
	if (size > left) {
		/* The message holds the response's last byte: the first `left` bytes go to
		 * the client; the kernel runs the program again on the rest, which goes to
		 * sockwayd (msg_is_rest, in msg_redirect). */
		bpf_msg_apply_bytes(msg, left);
		r = redirect_client_checked(msg, e, client, egress);
		if (r) {
			bpf_msg_apply_bytes(msg, 0);
			goto stop; /* the client's socket is gone */
		}
		e->done += left;
		e->left = 0;
		count(SPLICED, left);
		__sync_fetch_and_add(&e->accel_bytes, left);
		__sync_val_compare_and_swap(&e->splice, SW_SPLICE_ACTIVE,
					    SW_SPLICE_SPLIT); /* S10 */
		return SPLICED_SENT;
	}
	r = redirect_client_checked(msg, e, client, egress);
	if (r)
		goto stop; /* the client's socket is gone */
	e->done += size;
	e->left = left - size;
	count(SPLICED, size);
	__sync_fetch_and_add(&e->accel_bytes, size);
	if (left == size) /* S11 */
		__sync_val_compare_and_swap(&e->splice, SW_SPLICE_ACTIVE, SW_SPLICE_STOPPED);
	return SPLICED_SENT;
stop:
	/* Only this program moves an active splice on; the swap (after the done count)
	 * makes it visible to sockwayd. A swap, not a store: sockwayd may have freed the
	 * entry meanwhile (IDLE), and another connection may hold it by now. S11. */
	__sync_val_compare_and_swap(&e->splice, SW_SPLICE_ACTIVE, SW_SPLICE_STOPPED);
	return r == -2 ? SPLICE_GONE : NOT_SPLICED;
}

/*
 * A send of a backend to sockwayd's upstream socket (key up, conns entry e) while a splice
 * is armed or on (abi.h, struct sw_conn): moves up to e->left bytes into the client's
 * socket. Every send after the splice stopped goes the normal way, to sockwayd, which
 * learns from e->done how much the kernel moved.
 */
static __always_inline enum splice_result splice(struct sk_msg_md *msg, struct sw_conn *e,
						 __u32 e_idx, const struct sw_sock_key *up,
						 __u64 size, int accel_off)
{
	struct sw_sock_key client, again;
	__u32 state = e->splice, next = SW_SPLICE_ACTIVE, egress;
	struct tcp_sock *cl, *swd = 0;
	__u64 total = 0;

	if (state == SW_SPLICE_SPLIT) {
		/* Split, but this is not the rest (msg_redirect handles that first): the
		 * split's redirect failed and the backend sends again. The kernel counted
		 * bytes it did not deliver; sockwayd finds bytes past the response and closes
		 * the client (exchange_finish). */
		__sync_val_compare_and_swap(&e->splice, SW_SPLICE_SPLIT,
					    SW_SPLICE_STOPPED); /* S12 */
		return NOT_SPLICED;
	}
	if (state != SW_SPLICE_ARMED && state != SW_SPLICE_ACTIVE && state != SW_SPLICE_PREARMED)
		return NOT_SPLICED;
	if (accel_off && state != SW_SPLICE_ACTIVE)
		return NOT_SPLICED;
	__builtin_memcpy(&client, &e->client, sizeof(client));
	/* Egress: out of sockwayd's socket to a remote client, appended to its send queue. */
	egress = e->egress;
	if (state == SW_SPLICE_ACTIVE) {
		cl = client_sock(e, &client, egress, &swd);
		if (!accel_off && cl && (egress ? send_room(cl, size) : has_room(cl)))
			return splice_move(msg, e, &client, size, egress);
		__sync_val_compare_and_swap(&e->splice, SW_SPLICE_ACTIVE,
					    SW_SPLICE_STOPPED); /* S11 */
		return NOT_SPLICED;
	}
	if (!splice_can_start(msg, e, up, &client, egress, size))
		return NOT_SPLICED;
	if (state == SW_SPLICE_PREARMED && splice_prearmed(msg, e, size, &next, &total))
		return NOT_SPLICED;
	/* S8, or S5 for a whole response */
	if (__sync_val_compare_and_swap(&e->splice, state, next) != state)
		return NOT_SPLICED; /* sockwayd disarmed it just now */
	/* sockwayd may have disarmed and armed again, for another client, between the copy
	 * above and the swap: then give this arming back untouched. */
	__builtin_memcpy(&again, &e->client, sizeof(again));
	if (!sw_sock_key_equal(&again, &client) || e->egress != egress) {
		__sync_val_compare_and_swap(&e->splice, next, state); /* S9 */
		return NOT_SPLICED;
	}
	/* Or disarmed, forwarded bytes to the same client and armed again (a 1xx, or the head
	 * before a body): those bytes must not be on TCP still, where this splice would
	 * overtake them. Checked again now that the arming is ours. */
	if (!splice_can_start(msg, e, up, &client, egress, size)) {
		__sync_val_compare_and_swap(&e->splice, next, state); /* S9 */
		return NOT_SPLICED;
	}
	if (next == SW_SPLICE_TAKING)
		return splice_whole_send(msg, e, e_idx, &client, size, egress);
	/* All of the response but its last byte; sockwayd reads the head's status and
	 * lengths from e->head once it sees STOPPED. */
	if (state == SW_SPLICE_PREARMED)
		e->left = total - 1;
	return splice_move(msg, e, &client, size, egress);
}

/*
 * The rest of a message split by a splice: the response's last byte(s), for sockwayd's
 * socket (the peer, entry pe), which is empty since the splice started; or all of a message
 * whose client went while it was redirected there (SPLICE_GONE). Whatever became of the
 * splice meanwhile (the kill switch, sockwayd freeing the entry), the kernel's leftover
 * target and byte count are replaced here, so these bytes never follow the client's old
 * target and nothing after them is steered unchecked.
 */
static __always_inline int rest_redirect(struct sk_msg_md *msg, struct sw_conn *pe,
					 struct sw_sock_key *peer, __u64 size)
{
	bpf_msg_apply_bytes(msg, 0);
	if (pe) /* S12 */
		__sync_val_compare_and_swap(&pe->splice, SW_SPLICE_SPLIT, SW_SPLICE_STOPPED);
	if (bpf_msg_redirect_hash(msg, &sock_hash, peer, BPF_F_INGRESS) != SK_PASS) {
		/* sockwayd's socket is gone: nobody reads this connection any more. */
		count(PASSED, size);
		return SK_DROP;
	}
	count(REDIRECTED, size);
	if (pe)
		__sync_fetch_and_add(&pe->accel_bytes, size);
	return SK_PASS;
}

SEC("sk_msg")
int msg_redirect(struct sk_msg_md *msg)
{
	struct sw_sock_key peer = {}, self;
	struct sw_conn *pe;
	const struct sw_ctl *c;
	/* Read ctx fields once, up front: the verifier refuses a ctx pointer that clang
	 * offsets to share a load between branches. */
	__u64 size = msg->size;
	__u32 zero = 0, pe_idx = 0;
	__u64 swd_cg;
	int from_swd;
	int off;
	long ret;

	c = bpf_map_lookup_elem(&ctl, &zero);
	off = !c || c->accel_off;
	swd_cg = c ? c->swd_cgroup : 0;
	/* sk_msg runs in the sender's sendmsg: its cgroup says whether sockwayd sends. */
	from_swd = swd_cg && bpf_get_current_cgroup_id() == swd_cg;

	peer_key(msg, &peer);

	/* A backend's send to sockwayd, with a response-body splice armed or on. The kill
	 * switch stops an active one: the rest reaches the client through sockwayd. Only a
	 * send from outside sockwayd can have sockwayd's socket as its peer (two sockwayds of
	 * one pin directory talking to each other skip this: no splice, no count). */
	pe = swd_cg && !from_swd ? conn_find_idx(&peer, &pe_idx) : 0;
	if (msg_is_rest(msg))
		return rest_redirect(msg, pe, &peer, size);
	/* A client's request, if sockwayd left the client to the kernel (kroute.h). */
	if (pe && !off && pe->kroute == SW_KR_OPEN && kroute(msg, pe, pe_idx, &peer, size))
		return SK_PASS;
	if (pe) {
		switch (splice(msg, pe, pe_idx, &peer, size, off)) {
		case SPLICED_SENT:
			return SK_PASS;
		case SPLICE_GONE:
			/* The whole message to sockwayd's socket, replacing the redirect to the
			 * client (SK_PASS alone would follow it): sockwayd finds the splice
			 * stopped, its client closed. */
			return rest_redirect(msg, pe, &peer, size);
		case NOT_SPLICED:
			break;
		}
	}

	/* The kill switch: pass everything to TCP. Sockets stay in the map until they
	 * close, so what was redirected before is still read first, in order. */
	if (off) {
		count(PASSED, size);
		return SK_PASS;
	}
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
	if (ret != SK_PASS) {
		count(PASSED, size);
		return SK_PASS;
	}
	count(REDIRECTED, size);
	/* On sockwayd's connection: its socket is the peer or the sender. */
	if (from_swd) {
		key_reverse(&self, &peer);
		pe = conn_find(&self);
	}
	if (pe)
		__sync_fetch_and_add(&pe->accel_bytes, size);
	return SK_PASS;
}
