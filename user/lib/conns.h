/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * sockwayd's side of the conns map (abi.h, struct sw_conn): the key of a socket as the
 * sk_msg program sees it, claiming and freeing its entry, and the splice handshake.
 */
#ifndef SOCKWAY_CONNS_H
#define SOCKWAY_CONNS_H

#include <stdbool.h>
#include <sys/socket.h>

#include "maps.h"
#include "sockway/abi.h"

/* The network namespace cookie of a socket (SO_NETNS_COOKIE); 0 when the kernel has none. */
__u64 sw_netns_cookie(int fd);
/* The key of socket fd as sockops filed it in sock_hash: -errno if it has no TCP address. */
int sw_conn_key(struct sw_sock_key *k, __u64 netns, int fd);
/* The same connection seen from its other end. */
void sw_conn_key_reverse(struct sw_sock_key *out, const struct sw_sock_key *k);
/* The socket of key k is on the kernel path: sockops filed its address in sock_addr (it
 * joined sock_hash, and has not closed since, as far as sockops saw). */
bool sw_sock_tracked(struct sw_maps *m, const struct sw_sock_key *k);
/* The socket of key k is a target of the egress splice: sockops filed it in egress_hash
 * (one of sockwayd's accepted sockets, its client on another host), and it is still there. */
bool sw_sock_egress(struct sw_maps *m, const struct sw_sock_key *k);
/* Takes one of sockwayd's own sockets out of sock_hash, then its address out of sock_addr:
 * 0, or -errno of the first (-ENOENT: it was not there). Whatever was redirected into the
 * socket and not read yet is dropped with it (a kernel quirk): callers make sure there is
 * none. */
int sw_sock_untrack(struct sw_maps *m, const struct sw_sock_key *k);
/* The same for egress_hash and egress_addr. Nothing is ever redirected into a socket there,
 * so nothing is dropped with it. */
int sw_egress_untrack(struct sw_maps *m, const struct sw_sock_key *k);
/*
 * Entries of sockwayds gone that one sockwayd marked for reclaim (owner
 * SW_CONN_RECLAIMING | its pid), each with the grace period ticket it waits for: a run of
 * sk_msg that found one while its owner was alive may still be at work on it.
 * ticket and passed are grace.h's grace_ticket and grace_passed (no ticket: no grace
 * periods, so no reclaim); one set per thread.
 */
#define SW_RECLAIMS_MAX 64
struct sw_reclaims {
	unsigned n;
	__u32 idx[SW_RECLAIMS_MAX];
	__u64 grace[SW_RECLAIMS_MAX];
	__u64 (*ticket)(void);
	bool (*passed)(__u64 ticket);
};

/* Claims a free way of the key's bucket (m->conn_tags, m->conns): NULL if all are taken.
 * Then, if r, it marks those of the bucket's entries whose owner is gone, into r (and
 * still returns NULL): they are free once sw_reclaims_tick finds their grace period
 * passed, for a later claim. */
struct sw_conn *sw_conn_claim(struct sw_maps *m, const struct sw_sock_key *k,
			      struct sw_reclaims *r);
/* Frees the entries of r whose grace period has passed. */
void sw_reclaims_tick(struct sw_maps *m, struct sw_reclaims *r);
/* Frees an entry: no splice, tag 0. */
void sw_conn_release(struct sw_maps *m, struct sw_conn *e);
/* Frees every entry this process holds or marked (at exit, once its workers stopped and
 * a grace period passed). */
void sw_conns_release_mine(struct sw_maps *m);
/* Marks every entry whose owner process is gone (a sockwayd killed, or an earlier process
 * with our pid): how many. Only at start-up, before this process claims any entry. */
unsigned sw_conns_mark_dead(struct sw_maps *m);
/* Frees every entry this process marked (also marks of an earlier process with its pid):
 * call once a grace period begun after the marks has passed. */
void sw_conns_free_marked(struct sw_maps *m);

/*
 * The splice of an upstream connection (e), towards the client's socket: arms it for the
 * next `left` bytes. Call only with every byte read from the upstream already forwarded.
 * egress: client is sockwayd's own socket to a remote client (the egress splice), whose
 * send queue the bytes join; else a local client's socket, whose receive queue they join.
 * cookie: the SO_COOKIE of sockwayd's socket to that client (egress: of client itself),
 * never 0: the kernel moves nothing unless that very socket is still there, so that a new
 * connection that got the same address and port gets none of it.
 */
void sw_conn_splice_arm(struct sw_conn *e, const struct sw_sock_key *client, __u64 left,
			bool egress, __u64 cookie);
/*
 * Arms the splice of a whole response, before it comes: the kernel takes it if its head
 * passes on unchanged (include/sockway/resphead.h); its status and lengths are then in
 * e->head. Call only with nothing of the response read yet.
 */
void sw_conn_splice_prearm(struct sw_conn *e, const struct sw_sock_key *client, bool egress,
			   __u64 cookie);
/*
 * Takes the splice back before reading the upstream socket or answering the client:
 * disarms it if the kernel has not started it, or collects what the kernel moved if it
 * has stopped. Returns the bytes the kernel moved to the client (0 if it never started or
 * declined), or -1 while the kernel is still moving bytes (the splice stays on; do not
 * read). *seen: the state it found (IDLE when it disarmed, or the kernel had declined;
 * DONE: the kernel moved a whole response, last byte included; TAKING: it is moving one,
 * within its sk_msg run).
 */
long long sw_conn_splice_settle(struct sw_conn *e, __u32 *seen);

/* The entry's index in the conns map (what lend sets and kx_up/kx_client hold, plus 1). */
__u32 sw_conn_index(const struct sw_maps *m, const struct sw_conn *e);

/*
 * Lend sets (abi.h, struct sw_lend_set): sw_lend_put files conns index idx in a free slot
 * (false: the set is full); sw_lend_take takes it out again (false: it is not there, the
 * kernel has it); both by compare-and-swap, as the kernel does. sw_lend_sweep empties the
 * slots that name no upstream lent by a live sockwayd (a killed one's): how many.
 */
bool sw_lend_put(struct sw_lend_set *set, __u32 idx);
bool sw_lend_take(struct sw_lend_set *set, __u32 idx);
unsigned sw_lend_sweep(struct sw_maps *m);

/*
 * Lender ids (abi.h, SW_LEND_OWNERS): sw_lend_claim gives this process a free one, or one
 * of a sockwayd gone (-1: none left); sw_lend_release_mine frees every id this process
 * holds, once its connections are out of the sets.
 */
int sw_lend_claim(struct sw_maps *m);
void sw_lend_release_mine(struct sw_maps *m);

#endif /* SOCKWAY_CONNS_H */
