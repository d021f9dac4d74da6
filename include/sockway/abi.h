/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The map ABI of sockway: every key, value, enum and limit that the pinned maps under
 * /sys/fs/bpf/sockway use. This header is the only definition; it is compiled into the BPF
 * object and into every userspace binary, and bpftool prints the same names from BTF.
 *
 * No libc here: only the fixed-width kernel types, so that the BPF side can include it
 * after vmlinux.h and userspace after <linux/types.h>.
 */
#ifndef SOCKWAY_ABI_H
#define SOCKWAY_ABI_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Limits. Each is enforced by the agent with an error that names it (README "Limits"). */
#define SW_NAME_MAX	   32	/* backend/endpoint name, NUL included: 31 chars */
#define SW_MAX_BACKENDS	   256	/* backends that can exist at once */
#define SW_MAX_ENDPOINTS   256	/* endpoints that can exist at once */
#define SW_MAX_REPLICAS	   16	/* replicas (ip:port) per backend */
#define SW_MAX_SPLIT	   64	/* backends in one endpoint's weighted split */
#define SW_MAX_SHADOWS	   4	/* shadow backends per endpoint */
#define SW_PREFIX_MAX	   128	/* route path prefix, NUL included */
#define SW_HOST_MAX	   64	/* route Host, NUL included */
#define SW_HEADER_NAME_MAX 64	/* shard-key header name, NUL included */
#define SW_SHARD_KEY_MAX   128	/* shard-key bytes hashed; longer keys are cut here */
#define SW_MAX_CELLS	   2048 /* counter cells: (endpoint, backend, role) triples */
#define SW_COUNTER_SHARDS  8	/* writers' shards per cell; shard 0 is kept for BPF */

/*
 * Slot tables. A request takes slot hash(shard key) & (SW_SLOTS - 1), or a random slot.
 * 2^14 slots give every backend its share within 1/16384 (0.006%), so a 1% canary gets
 * 164 slots, while two tables per endpoint stay at 16 KiB each (8 MiB for all endpoints).
 */
#define SW_SLOTS_BITS 14
#define SW_SLOTS      (1U << SW_SLOTS_BITS)

/* Weights and shadow fractions are fixed point: SW_WEIGHT_ONE parts make 1.0. */
#define SW_WEIGHT_ONE 1000000000U
/* A weight sum may differ from 1.0 by this much (1e-6) and still be accepted. */
#define SW_WEIGHT_TOLERANCE 1000U

/* Latency histogram: bucket i counts [2^i, 2^(i+1)) us; 0 also < 1 us, the last >= 2^24 us. */
#define SW_LAT_BUCKETS 25

/* No endpoint or backend: the answer of a lookup that found nothing. */
#define SW_ID_NONE 0xffffU

/* Request methods as bits, for route method filters. A route with methods == 0 takes any. */
enum sw_method {
	SW_METHOD_GET = 1U << 0,
	SW_METHOD_HEAD = 1U << 1,
	SW_METHOD_POST = 1U << 2,
	SW_METHOD_PUT = 1U << 3,
	SW_METHOD_DELETE = 1U << 4,
	SW_METHOD_PATCH = 1U << 5,
	SW_METHOD_OPTIONS = 1U << 6,
	SW_METHOD_CONNECT = 1U << 7,
	SW_METHOD_TRACE = 1U << 8,
	SW_METHOD_OTHER = 1U << 9, /* any method not above: only routes without a filter */
};
#define SW_METHOD_ALL 0x3ffU

/* Where an endpoint's shard key comes from. Cookie, query and client IP come later. */
enum sw_shard_source {
	SW_SHARD_HEADER = 1, /* a request header, X-SERVE-SHARD-KEY by default */
};

/* Role of a counter cell: the backend answered the client, or got a shadow copy. */
enum sw_role {
	SW_ROLE_PRIMARY = 0,
	SW_ROLE_SHADOW = 1,
};

/* Upstream failures, counted per cell. */
enum sw_upstream_error {
	SW_ERR_CONNECT_REFUSED = 0, /* connect() refused or unreachable */
	SW_ERR_RESET = 1,	    /* reset or closed before a whole response */
	SW_ERR_TIMEOUT = 2,	    /* connect or response timeout */
	SW_ERR_BAD_RESPONSE = 3,    /* the response did not parse as HTTP/1.x */
	SW_ERR_MAX = 4,
};

/* One replica address. IPv4 uses the first 4 bytes of addr. Port is in host byte order. */
struct sw_addr {
	__u16 family; /* AF_INET (2) or AF_INET6 (10) */
	__u16 port;   /* host byte order, 1..65535 */
	__u8 addr[16];
};

/*
 * backends map value, indexed by backend id. Written by the agent; read by sockwayd.
 * flags == 0 marks a free id.
 */
struct sw_backend {
	__u32 flags; /* SW_F_IN_USE */
	__u32 nr_replicas;
	char name[SW_NAME_MAX];
	struct sw_addr replicas[SW_MAX_REPLICAS];
};

#define SW_F_IN_USE 1U

/*
 * routes map key: hashes of the Host (0 for "any host") and of the path prefix, both with
 * sw_hash64() (include/sockway/decide.h). Hosts are hashed in lower case without a port.
 */
struct sw_route_key {
	__u64 host_hash;
	__u64 prefix_hash;
};

/*
 * routes map value. Written by the agent; read by the decision code (BPF and sockwayd).
 * prefix_len is checked on lookup, so a 64-bit hash collision would also need equal lengths.
 */
struct sw_route {
	__u16 endpoint_id;
	__u16 prefix_len; /* strlen(prefix) */
	__u32 methods;	  /* SW_METHOD_* bits; 0 = any method */
	char prefix[SW_PREFIX_MAX];
	char host[SW_HOST_MAX]; /* "" = any host */
};

/* One backend of an endpoint's weighted split. Splits are sorted by backend name. */
struct sw_split {
	__u16 backend_id;
	__u16 cell;   /* counter cell of (endpoint, backend, primary) */
	__u32 weight; /* in 1/SW_WEIGHT_ONE */
};

/* One shadow of an endpoint: an independent draw sends a copy to backend_id. */
struct sw_shadow {
	__u16 backend_id;
	__u16 cell;	 /* counter cell of (endpoint, backend, shadow) */
	__u32 fraction;	 /* in 1/SW_WEIGHT_ONE, as the operator gave it */
	__u64 threshold; /* sampled when a uniform 32-bit random value < threshold */
};

/*
 * endpoints map value, at index endpoint_id * 2 + copy. Each endpoint has two copies
 * (double buffer): the agent writes the copy that sw_ctl.active[] does not name, then
 * flips active[]. Read by the decision code and sockwayd. flags == 0 marks a free id.
 */
struct sw_endpoint {
	__u32 flags; /* SW_F_IN_USE */
	__u16 id;
	__u16 shard_source; /* enum sw_shard_source */
	char name[SW_NAME_MAX];
	char shard_header[SW_HEADER_NAME_MAX];
	struct sw_route route; /* the endpoint's route, as in the routes map */
	__u32 nr_splits;
	__u32 nr_shadows;
	__u32 moved_slots; /* slots whose backend the last weight change moved */
	__u32 pad;
	__u64 shard_header_hash; /* sw_hash64 of shard_header in lower case (kernel routing) */
	struct sw_split splits[SW_MAX_SPLIT];
	struct sw_shadow shadows[SW_MAX_SHADOWS];
};

/*
 * slots map value, at the same index as the endpoint copy it belongs to. Each byte is an
 * index into that copy's splits[]: an index rather than a backend id, so that the table
 * is a pure function of (backend names, weights) and identical on every host.
 */
struct sw_slot_table {
	__u8 split[SW_SLOTS];
};

/*
 * ctl map value (one entry, mmap-able). The agent writes it; everyone reads it.
 * generation is a sequence count: odd while a commit writes, even when it is done. A reader
 * that sees the same even value before and after reading has seen one whole policy.
 */
struct sw_ctl {
	__u64 generation;
	__u32 active[SW_MAX_ENDPOINTS]; /* which copy (0 or 1) of each endpoint is live */
	__u32 accel_off;		/* the kill switch: 1 after `sockway accel off` */
	__u32 pad;
	__u64 swd_cgroup;     /* id of sockwayd's accelerated cgroup (0: none), written by sockwayd:
			       * sk_msg tells sockwayd's sends from its peers' by it */
	__u64 policy_refused; /* policy documents `sockway apply` refused (atomic add); the
			       * live policy stayed. sockwayd exports it for alerting */
};

/* Counters of one writer (shard) for one cell. All adds are atomic (relaxed). */
struct sw_counters {
	__u64 requests;
	__u64 status[5];	  /* responses by class: [0] = 1xx ... [4] = 5xx */
	__u64 errors[SW_ERR_MAX]; /* upstream errors by enum sw_upstream_error */
	__u64 bytes_from_client;  /* request bytes, head and body */
	__u64 bytes_to_client;	  /* response bytes (for shadows: bytes read and dropped) */
	__u64 latency_sum_us;
	__u64 latency[SW_LAT_BUCKETS]; /* log2 histogram, see SW_LAT_BUCKETS */
	__u64 shadow_match;	       /* shadow role: status equal to the primary's */
	__u64 shadow_drops;	       /* shadow role: samples dropped on a full queue */
	__u64 accel_bytes; /* bytes between sockwayd and a local client or backend that the
			    * kernel moved socket to socket (sk_msg), spliced bodies included */
	__u64 reserved[7];
};

/*
 * counters map value, indexed by cell (mmap-able array). The agent assigns a cell to each
 * (endpoint, backend, role) when the backend first joins the endpoint and frees it when the
 * endpoint is deleted, so a backend's history survives a rollback. Writers add to their own
 * shard: shard 0 is the BPF programs' (sk_msg counts there the requests the kernel routed,
 * bpf/kroute.h), sockwayd worker w uses 1 + w % (SW_COUNTER_SHARDS - 1).
 * Readers sum the shards.
 */
struct sw_cell {
	__u32 flags; /* SW_F_IN_USE */
	__u16 endpoint_id;
	__u16 backend_id;
	__u32 role;    /* enum sw_role */
	__u32 pad[13]; /* the shards start on their own cache line */
	struct sw_counters shard[SW_COUNTER_SHARDS];
};

/*
 * sock_hash map key: a local TCP socket by its connection tuple, as its own side sees it.
 * Addresses in network byte order (IPv4 in the first word), ports in host byte order. The
 * sk_msg program looks a sender's peer up by the same tuple reversed.
 */
struct sw_sock_key {
	__u64 netns;  /* network namespace cookie: equal tuples in two namespaces differ */
	__u32 family; /* AF_INET or AF_INET6 */
	__u32 local_ip[4];
	__u32 remote_ip[4];
	__u32 local_port;
	__u32 remote_port;
	__u32 pad;
};

/*
 * Redirected bytes a peer may hold unread before sends to it take TCP (sk_msg.bpf.c): at
 * least this much (capped by tcp_rmem[2]), more if its SO_RCVBUF is larger.
 */
#define SW_ACCEL_QUEUE (4u << 20)
/* Below this many unread bytes the peer has room whatever its limit (tcp_rmem[2] below it
 * is not a setting anyone runs). */
#define SW_ACCEL_QUEUE_FLOOR (128u << 10)

/* Why sk_msg left a request of an OPEN client to sockwayd (accel_stats.kmiss). */
enum sw_kroute_miss {
	SW_KM_ORDER = 0,    /* bytes of the client's still on their way, or sockwayd's socket
			     * not empty: taking it could reorder */
	SW_KM_SCRATCH = 1,  /* another sk_msg run on this CPU had the scratch (preempted) */
	SW_KM_HEAD = 2,	    /* not a head the kernel routes (reqhead.h), or not all of the
			     * request in one send, or more than it */
	SW_KM_ROUTE = 3,    /* no route, a path or Host refused, or a path not in normal form */
	SW_KM_POLICY = 4,   /* a commit ran while it decided */
	SW_KM_SHADOW = 5,   /* a shadow sampled it: sockwayd mirrors it */
	SW_KM_NO_CONN = 6,  /* no idle lent connection to the replica */
	SW_KM_UPSTREAM = 7, /* the lent connection or the backend's socket not ready */
	SW_KM_FAMILY = 8,   /* not IPv4 */
	SW_KM_MAX = 9,
};

/* accel_stats map value (per CPU): what the kernel path did. */
struct sw_accel_stats {
	__u64 sockets;	  /* sockets the sockops program put into sock_hash */
	__u64 redirected; /* messages sk_msg moved straight to the peer socket */
	__u64 redirected_bytes;
	__u64 passed; /* messages whose peer was not local: the normal TCP path */
	__u64 passed_bytes;
	__u64 held;		/* messages to a local peer that took TCP all the same: the peer */
	__u64 held_bytes;	/* had a full buffer, or earlier bytes were still on TCP */
	__u64 spliced;		/* messages of a response (or of its body) moved from the */
	__u64 spliced_bytes;	/* backend straight to the client, past sockwayd (counted in
				 * redirected too) */
	__u64 krouted;		/* requests sk_msg routed itself (kernel routing) */
	__u64 krouted_bytes;	/* their bytes as the clients sent them */
	__u64 kanswered;	/* ... whose response it passed on whole, upstream given back */
	__u64 kmiss[SW_KM_MAX]; /* requests of OPEN clients left to sockwayd, by reason */
	__u64 untracked;	/* sockets sockops left out of sock_hash: no local tracked peer */
};

/*
 * The conns map: one entry per TCP connection of sockwayd (to clients and to upstreams),
 * found from the socket's sw_sock_key: bucket sw_sock_key_hash() % SW_CONN_BUCKETS of the
 * conn_tags map, then a way of its SW_CONN_WAYS whose tag is that hash, whose entry (same
 * index, bucket * SW_CONN_WAYS + way, in conns) is owned and holds that very key (self).
 * The tag only narrows the search: the hash is not a secret and can be made to collide
 * by anyone who picks a connection's addresses and ports, so a socket is never taken for
 * another on an equal tag. sockwayd claims a tag when it opens the connection (a
 * compare-and-swap of 0), then writes self, then owner; it frees the entry at close. The
 * tags are apart so that the search, done for most sends, reads one cache line. Both maps
 * are mmap-able, so nothing here costs a syscall per request.
 *   accel_bytes: sk_msg adds the bytes it moves on the connection, either way; sockwayd
 *     adds what is new to the counter cell of the exchange when the exchange starts, when
 *     it arms a whole response, and when it ends. (Per connection, not per cell: a
 *     cell's counters would be one cache line that every send of the cell, on every CPU,
 *     writes.)
 *   splice: the response splice of an upstream connection, two ways in:
 *     - PREARMED: sockwayd sends a request whose response head it would pass on unchanged
 *       (resphead.h) and arms before the response comes. sk_msg scans the head of the
 *       backend's first send; if it is such a head, it writes status, head_len and
 *       body_len, and the whole response, head included, goes backend -> client. Else it
 *       declines (IDLE) and sockwayd reads the head as always.
 *     - ARMED: sockwayd read the head and forwarded every byte it read; the rest of a
 *       Content-Length body (left) goes backend -> client from the backend's next send.
 *     Either way sk_msg starts only if sockwayd's socket is empty then. A PREARMED response
 *     that is all in that first send (most small ones) goes as it is: TAKING while sk_msg
 *     redirects it, then DONE with done and done_ns. Nothing reaches sockwayd's socket, so
 *     nothing wakes sockwayd: it ends the exchange when the client speaks again (the
 *     response reached it before, so DONE is there to see) or closes, or at its tick; and
 *     it arms so only when no pipelined request waits, and takes the arming back when one
 *     comes. Any other splice (ACTIVE) moves at most `left` bytes (all but the response's
 *     last one) into the client's socket, splitting the message that holds more (SPLIT:
 *     the rest of it goes to sockwayd's socket on the program's next run), and ends
 *     (STOPPED) once left is 0 or the client cannot take more; the last byte, in
 *     sockwayd's socket, wakes sockwayd. sockwayd disarms (ARMED/PREARMED -> IDLE, a
 *     compare-and-swap) before it reads an armed socket or answers the client itself, so
 *     the kernel never overtakes bytes that sockwayd holds or writes. For a remote client
 *     (egress = 1), client names sockwayd's own socket to it, which sockops files in
 *     egress_hash (not sock_hash), and the kernel sends the bytes out of it (a redirect
 *     to its egress): they join its send queue behind all that sockwayd wrote before it
 *     armed, and a start needs room in its send buffer for the whole send. The table of
 *     transitions is next to enum sw_splice_state; sk_msg.bpf.c, user/lib/conns.c and
 *     user/helper/splice.c hold the rest.
 * A sockwayd killed leaves its entries behind: sockops retires the key of an entry whose
 * key connects again (before any sockwayd can claim it, so no new connection ever finds an
 * old splice; only the owner frees an entry, or another sockwayd once the owner is dead),
 * and sockwayd frees the entries of dead owners when it starts and when a bucket is full:
 * it marks them first (owner SW_CONN_RECLAIMING | its pid, so that no other sockwayd takes
 * them too; anything that reads owner as a pid strips that bit), retires their keys
 * (family 0: no new run finds them), and frees them after an RCU grace period begun after
 * that (a run that found one before may still be at work on it). Kernel routing lends no
 * upstream to a marked owner.
 */
#define SW_CONN_RECLAIMING 0x80000000u
#define SW_CONN_BUCKETS	   4096
#define SW_CONN_WAYS	   4
#define SW_CONNS	   (SW_CONN_BUCKETS * SW_CONN_WAYS)

/*
 * The splice of an upstream's conns entry (sw_conn.splice). Every transition, who makes it
 * and how (CAS: compare-and-swap); the code that makes one cites its label:
 *   S1  IDLE -> PREARMED        sockwayd store    a request whose response head it would
 *                                                 pass on unchanged, before it goes
 *   S2  IDLE -> ARMED           sockwayd store    the head forwarded, a Content-Length body
 *                                                 of SW_SPLICE_MIN or more left
 *   S3  ARMED/PREARMED -> IDLE  sockwayd CAS      taken back before sockwayd reads the
 *                                                 upstream or answers the client itself
 *   S4  PREARMED -> IDLE        sk_msg   CAS      the backend's first send is no head to
 *                                                 pass on, or holds bytes past it
 *   S5  PREARMED -> TAKING      sk_msg   CAS      the whole response is in that send
 *   S6  TAKING -> DONE          sk_msg   CAS      its redirect is queued (done, done_ns
 *                                                 written before)
 *   S7  TAKING -> STOPPED       sk_msg   CAS      the client's socket is gone (done 0)
 *   S8  ARMED/PREARMED -> ACTIVE
 *                               sk_msg   CAS      a splice starts
 *   S9  ACTIVE/TAKING -> ARMED/PREARMED
 *                               sk_msg   CAS      given back: sockwayd armed again for
 *                                                 another client, or the start no longer
 *                                                 holds once the arming is the kernel's
 *   S10 ACTIVE -> SPLIT         sk_msg   CAS      the send holds the response's last byte:
 *                                                 all before it went to the client
 *   S11 ACTIVE -> STOPPED       sk_msg   CAS      left reached 0, the client has no room or
 *                                                 is gone, or the kill switch
 *   S12 SPLIT -> STOPPED        sk_msg   CAS      the rest's run (or a later send, when the
 *                                                 split's redirect failed)
 *   S13 STOPPED/DONE -> IDLE    sockwayd store    it collected done (nothing writes after)
 *   S14 ACTIVE -> IDLE          sockwayd store    the backend closed early: nothing more
 *                                                 comes for the kernel to move
 *   S15 any -> IDLE             sockwayd store    the entry is freed (its owner's close,
 *                                                 or the reclaim of a dead owner's)
 *   S16 IDLE -> PREARMED        sk_msg   CAS      kernel routing (K4 below): a lent
 *                                                 upstream's request, before it goes
 *   S17 TAKING -> IDLE          sk_msg   CAS      its response went whole to a client
 *                                                 still the kernel's (K5): back to its set
 *   S18 PREARMED -> IDLE        sk_msg   CAS      the routing undone before the request
 *                                                 went (the upstream back to its set)
 * The stores of S1 and S2 are release stores, after client, left and done. sk_msg moves
 * only by compare-and-swap, since sockwayd may free or re-arm the entry under it; sockwayd
 * stores only where the kernel is done with the entry (S13, S14, S15).
 */
enum sw_splice_state {
	SW_SPLICE_IDLE = 0,
	SW_SPLICE_ARMED = 1,
	SW_SPLICE_ACTIVE = 2,
	SW_SPLICE_STOPPED = 3,
	SW_SPLICE_PREARMED = 4,
	SW_SPLICE_SPLIT = 5,
	SW_SPLICE_TAKING = 6,
	SW_SPLICE_DONE = 7,
};

/* A body sockwayd read the head of is spliced (ARMED) only if this much of it is left: a
 * shorter one is likely in sockwayd's socket already, and the arming costs more than the
 * copy it saves. */
#define SW_SPLICE_MIN (64 * 1024)

/* Longest head the kernel scans; fields at most. sockwayd arms only when its own limits
 * take every head this accepts (max_header_bytes, max_request_line, max_headers). */
#define SW_RESPHEAD_MAX	   4096
#define SW_RESPHEAD_FIELDS 100
/* "HTTP/1.1 200 ": the fixed part that sw_resphead_begin checks. */
#define SW_RESPHEAD_START 13
/* Content-Length digits at most: 10^15 bytes is plenty, and the value cannot overflow. */
#define SW_RESPHEAD_CL_DIGITS 15

enum sw_resphead_state {
	SW_RH_REASON,	   /* the reason phrase, up to its CR */
	SW_RH_LINE_LF,	   /* the LF that ends a line */
	SW_RH_LINE_START,  /* a field name's first byte, or the CR of the empty line */
	SW_RH_NAME,	   /* more of a name, or its ':' */
	SW_RH_COLON_SP,	   /* the one space after ':' */
	SW_RH_VALUE_FIRST, /* a value's first byte, or the CR of an empty value */
	SW_RH_VALUE,	   /* more of a value, or its CR */
	SW_RH_END_LF,	   /* the LF of the empty line */
};

/*
 * The scan of a response head by sk_msg (include/sockway/resphead.h says which heads it
 * takes). It lives in the upstream connection's conns entry: only the backend's sends,
 * one at a time under its socket lock, scan there, and map memory keeps the verifier from
 * following the scan's values through every byte.
 */
struct sw_resphead {
	__u32 state;	  /* enum sw_resphead_state */
	__u32 name_start; /* offset of the current field name */
	__u64 name[3];	  /* its first 24 bytes, lower case, 8 per word, low byte first */
	__u32 fields;	  /* field lines so far */
	__u32 cl_digits;  /* digits of Content-Length so far; 0 before it */
	__u32 in_cl;	  /* the current value is Content-Length's */
	__u32 last_ws;	  /* the value's last byte so far was SP or HTAB */
	__u64 body_len;	  /* Content-Length */
	__u32 status;	  /* 200-599 */
	__u32 head_len;	  /* when done: bytes of the head, its empty line included */
};

/* conn_tags map value: sw_sock_key_hash() of each way's socket; 0 for a free way. A hint,
 * not an identity: the entry's self is compared too. */
struct sw_conn_bucket {
	__u64 tag[SW_CONN_WAYS];
};

struct sw_conn {
	/* The first cache line is what every lookup reads (owner, self). */
	__u32 owner;  /* pid of the sockwayd that claimed it; 0 while free; or
		       * SW_CONN_RECLAIMING | the pid of one that frees it (pids < 2^22) */
	__u32 splice; /* enum sw_splice_state; written with compare-and-swap */
	/* The key of the socket this entry belongs to, written by sockwayd before owner: a
	 * lookup matches the whole key, never the tag alone. */
	struct sw_sock_key self;
	__u64 accel_bytes;	   /* bytes sk_msg moved on the connection, both ways */
	__u64 left;		   /* bytes the kernel is still to move to the client */
	__u64 done;		   /* bytes it moved since sockwayd armed the splice */
	struct sw_sock_key client; /* the client's own socket, where the body goes (egress:
				    * sockwayd's socket to the client, out of which it goes) */
	/* sk_msg's scan of a PREARMED response's head; when it took the response, sockwayd
	 * reads status, head_len and body_len from here (written before done and STOPPED). */
	struct sw_resphead head;
	__u64 done_ns;	   /* DONE: when the kernel passed the response on (CLOCK_MONOTONIC) */
	__u32 peer_closed; /* sockops saw the socket get the peer's FIN or die (CLOSE_WAIT,
			    * CLOSE): sockwayd does not reuse it. 0 in a free entry. */
	__u16 worker;	   /* lender id of the worker that owns the socket (kernel routing) */
	__u16 pad16;
	/* Kernel routing, on a client connection's entry (enum sw_kroute_state): */
	__u32 kroute;  /* enum sw_kroute_state, moved by compare-and-swap */
	__u32 handoff; /* SW_HANDOFF_*: what sk_msg decided of the request it passed on */
	__u32 kx_up;   /* conns index + 1 of the upstream carrying its routed request */
	__u32 pad32;
	__u64 kx_done; /* routed requests of this client answered whole by the kernel */
	/* ... and on a lent upstream's entry: */
	__u32 lent;	   /* 1: sockwayd lent it to the kernel, in lend set lend_set */
	__u32 lend_set;	   /* sw_lend_index() of its (backend, replica, worker) */
	__u32 kx_client;   /* conns index + 1 of the client whose request it carries; 0: idle */
	__u32 kx_bytes;	   /* that request's bytes, as the client sent them */
	__u64 kx_start_ns; /* when sk_msg routed it (CLOCK_MONOTONIC) */
	__u64 kx_last_ns;  /* when it last went back to the lend set */
	__u16 kx_cell;	   /* counter cell of the routed request */
	__u16 kx_endpoint;
	__u32 kx_method; /* SW_METHOD_* bit */
	/* The splice's target (client) is sockwayd's own socket to a remote client, not a
	 * local client's: the response goes out of it (redirect to its egress) instead of
	 * into the client's receive queue. Written with client, before the arming. */
	__u32 egress;
	__u32 pad32b;
	/* The cookie (SO_COOKIE) of sockwayd's socket to that client: egress, client itself;
	 * else the client socket's peer. A tuple names a socket only while it lives; a new
	 * connection from the same address and port gets the same key, and an arming left by
	 * a sockwayd that died must not send it another client's bytes. Never 0 when armed
	 * (the kernel moves nothing then). */
	__u64 client_cookie;
	__u64 pad[2];
};

/*
 * Kernel routing: sk_msg, on a client's send to sockwayd's socket, routes a plain request
 * itself (include/sockway/reqhead.h says which) into an idle upstream connection that
 * sockwayd lent it, and the response comes back by the whole-response splice above. The
 * client's conns entry says whether the kernel may, and keeps requests and responses of one
 * connection in order; transitions, who makes them and how:
 *   K1 CLOSED -> OPEN   sockwayd store   the client is idle: no exchange, nothing read
 *                                        and unparsed, nothing to write (bytes unread in
 *                                        its socket keep the kernel off: kroute_in_order)
 *   K2 OPEN -> CLOSED   sockwayd CAS     an event on the client, and before every read of
 *                                        its socket (or its close)
 *   K3 OPEN -> CLOSED   sk_msg   CAS     any send it does not route, which goes on to
 *                                        sockwayd's socket; for a request it decided on
 *                                        (shadows drawn), handoff says what it drew
 *   K4 OPEN -> ROUTING  sk_msg   CAS     a request decided on and an upstream taken: the
 *                                        head is being rewritten and redirected, in this
 *                                        one program run; sockwayd leaves the client alone
 *                                        until it ends
 *   K8 ROUTING -> BUSY  sk_msg   CAS     the request went (kx_up names the upstream)
 *   K9 ROUTING -> CLOSED
 *                       sk_msg   CAS     it could not go after all: the send goes to
 *                                        sockwayd, handoff says why
 *   K5 BUSY -> OPEN     sk_msg   CAS     its response passed on whole: the upstream goes
 *                                        back to its lend set
 *   K6 BUSY -> WANT     sockwayd CAS     an event on the client or the upstream, a timeout,
 *                                        the client's close, a drain: sockwayd takes the
 *                                        exchange over
 *   K7 WANT -> CLOSED   sockwayd store   the exchange taken over has ended, or there was
 *                                        none to take (the kernel had just given it back)
 *   K10 any -> CLOSED   sockwayd store   the entry is freed (entry_reset, as S15)
 *   K11 ROUTING -> WANT sockwayd CAS     only for a client that closes, whose run stayed
 *                                        ROUTING through all of sockwayd's wait (held off
 *                                        its CPU): its K8, K9 and K5 then fail, and the
 *                                        entry, freed after a grace period, never opens
 *                                        again
 * sk_msg takes a request only when the client's entry is OPEN and nothing of the client's is
 * anywhere but read by sockwayd (its socket empty, no byte still on TCP either way), so a
 * request the kernel takes never overtakes one sockwayd holds, and one that comes while a
 * routed one is BUSY goes to sockwayd, which takes the routed one over first (K6). Nothing
 * but the program run that made ROUTING moves it (but K11, for a client going away), so
 * sockwayd never takes over a request that is still being sent, or undone.
 */
enum sw_kroute_state {
	SW_KR_CLOSED = 0,
	SW_KR_OPEN = 1,
	SW_KR_BUSY = 2,
	SW_KR_WANT = 3,
	SW_KR_ROUTING = 4,
};

/* handoff: valid, the reason (enum sw_kroute_miss) and the shadows drawn (bit i: shadow i
 * of the endpoint copy that was live). sockwayd uses the draw for the next request it parses
 * from the client instead of drawing again, so each shadow samples a request once. */
#define SW_HANDOFF_VALID       (1U << 31)
#define SW_HANDOFF_REASON(h)   (((h) >> 8) & 0xff)
#define SW_HANDOFF_SHADOWS(h)  ((h)&0xff)
#define SW_HANDOFF(reason, sh) (SW_HANDOFF_VALID | (__u32)(reason) << 8 | (__u32)(sh))

/*
 * Lend sets: the idle upstream connections that sockwayd lent the kernel, per backend,
 * replica and lender (a request goes over a connection of the worker that holds the
 * client, which then owns both ends if it takes the exchange over). The kernel takes a
 * connection with a compare-and-swap of its slot to 0 and gives it back the same way;
 * sockwayd adds and removes them so too.
 *
 * A lender is a worker that holds one of SW_LEND_WORKERS lender ids, of whichever sockwayd
 * on the pin directory (two run side by side in a rolling restart: they must not share a
 * set, or each would find the other's connections in it). The entry SW_LEND_OWNERS of the
 * lend map, after the sets, is not a set: its slot[i] is the pid of the sockwayd whose
 * worker holds lender id i, 0 when it is free. A worker claims a free id, or the id of a
 * sockwayd gone, with a compare-and-swap; a worker that finds none does not lend.
 */
#define SW_LEND_WORKERS 8
#define SW_LEND_SLOTS	32
#define SW_LEND_SETS	(SW_MAX_BACKENDS * SW_MAX_REPLICAS * SW_LEND_WORKERS)
#define SW_LEND_OWNERS	SW_LEND_SETS

struct sw_lend_set {
	__u32 slot[SW_LEND_SLOTS]; /* conns index + 1 of an idle lent upstream; 0: empty */
	__u32 rr;		   /* set of replica 0 only: the next replica to try */
	__u32 pad;
	__u64 misses; /* requests that found this set empty: sockwayd lends more */
};

static inline __u32 sw_lend_index(__u32 backend, __u32 replica, __u32 worker)
{
	return (backend * SW_MAX_REPLICAS + replica) * SW_LEND_WORKERS + worker;
}

/* accel_cgroups map value, keyed by cgroup id: a cgroup whose sockets are accelerated. */
struct sw_accel_cgroup {
	char path[256]; /* as given to `sockway accel add`, for `accel list` and `accel on` */
};

/*
 * Kernel routing: the request heads sk_msg routes itself (include/sockway/reqhead.h says
 * which). The head must be in the first SW_REQHEAD_MAX bytes of one send, with at most
 * SW_REQHEAD_FIELDS field lines (Host included), and the send must hold the request whole:
 * the head and a Content-Length body of at most SW_KROUTE_BODY_MAX bytes, nothing after.
 * sockwayd lets the kernel route only when its own limits take every such request.
 */
#define SW_REQHEAD_MAX	   4096
#define SW_REQHEAD_FIELDS  32
#define SW_KROUTE_BODY_MAX (64 * 1024)
/* Digits of a Content-Length the scan reads at most (SW_KROUTE_BODY_MAX has 5). */
#define SW_REQHEAD_CL_DIGITS 6

enum sw_reqhead_state {
	SW_RQ_METHOD,	   /* the method's letters, up to its SP */
	SW_RQ_TARGET,	   /* the target's first byte, '/' */
	SW_RQ_PATH,	   /* the path, up to '?' or SP */
	SW_RQ_QUERY,	   /* the query, up to SP */
	SW_RQ_VERSION,	   /* "HTTP/1.1" CRLF */
	SW_RQ_HOST_SP,	   /* the one space after "Host:" */
	SW_RQ_HOST,	   /* the Host's name */
	SW_RQ_PORT,	   /* its port's digits */
	SW_RQ_LINE_LF,	   /* the LF that ends a line */
	SW_RQ_LINE_START,  /* a field name's first byte, or the CR of the empty line */
	SW_RQ_NAME,	   /* more of a name, or its ':' */
	SW_RQ_COLON_SP,	   /* the one space after ':' */
	SW_RQ_VALUE_FIRST, /* a value's first byte, or the CR of an empty value */
	SW_RQ_VALUE,	   /* more of a value, or its CR */
	SW_RQ_END_LF,	   /* the LF of the empty line */
};

/* A field line of a scanned request head: where its name and value are in the message. */
struct sw_reqhead_field {
	__u64 hash; /* sw_hash64 of the name in lower case */
	__u16 name_off;
	__u16 name_len;
	__u16 value_off;
	__u16 value_len;
};

/* The scan of a request head (reqhead.h), in sk_msg's per-CPU scratch (struct sw_kscratch). */
struct sw_reqhead {
	__u32 state;	/* enum sw_reqhead_state */
	__u32 method;	/* SW_METHOD_* bit */
	__u32 start;	/* offset of the current method, version, name or value */
	__u32 path_off; /* the target's offset: its path, then its query */
	__u32 path_len; /* the path without the query */
	__u32 target_len;
	__u32 host_off; /* the Host field's value; never 0 once seen (the scan's mark) */
	__u32 host_len;
	__u32 port_digits;
	__u32 fields; /* field lines so far, Host included */
	__u32 cl_digits;
	__u32 in_cl;	     /* the current value is Content-Length's */
	__u32 in_conn;	     /* the current value is Connection's */
	__u32 last_ws;	     /* the value's last byte so far was SP or HTAB */
	__u32 last;	     /* the last byte of the Host's name so far */
	__u32 name_host;     /* the current name's bytes so far are those of "Host" */
	__u32 line0_end;     /* the request line's end (its CRLF included) */
	__u32 host_line_off; /* the "Host: " line, which goes first (it may be there already) */
	__u32 host_line_len; /* 0 until it ended */
	__u32 conn_off;	     /* the "Connection: keep-alive" line, which does not go on; */
	__u32 conn_line_len; /* 0 when there is none */
	__u32 head_len;	     /* when done: bytes of the head, its empty line included */
	__u64 body_len;	     /* Content-Length; 0 without one */
	__u64 name[3];	     /* the current name's first 24 bytes, lower case, as in sw_resphead */
	__u64 hash;	     /* FNV state of the current name, lower case */
	__u64 conn_value[2]; /* the Connection value's first 16 bytes, lower case */
	struct sw_reqhead_field field[SW_REQHEAD_FIELDS];
};

/*
 * Context of the decide program (SEC("syscall"), run through BPF_PROG_TEST_RUN): the
 * kernel's own answer for one request, so that tests compare it with userspace's. The
 * kernel build of the decision takes a path and a Host up to these sizes (-E2BIG beyond).
 */
#define SW_DECIDE_PATH_MAX 256
#define SW_DECIDE_HOST_MAX 128 /* a Host with its port and a trailing dot */

struct sw_decide_args {
	/* in */
	char path[SW_DECIDE_PATH_MAX]; /* the path only, without its query */
	char host[SW_DECIDE_HOST_MAX]; /* the Host as the request gave it, port and all */
	char key[SW_SHARD_KEY_MAX];
	__u32 path_len;
	__u32 host_len; /* 0 = no Host */
	__u32 key_len;	/* 0 = no shard key: rnd picks the slot */
	__u32 method;	/* SW_METHOD_* bit */
	__u32 rnd;	/* the random value for a request without a key */
	/* out */
	__s32 err; /* 0; -EINVAL: a path or Host refused (400); -ENOENT: no route; -E2BIG:
		    * longer than the kernel build takes; or -errno of the pick */
	__u64 host_hash;
	__u64 key_hash;
	__u64 generation;
	__u32 slot;
	__u16 endpoint_id;
	__u16 backend_id;
	__u16 split;
	__u16 cell;
	__u32 copy;		       /* the endpoint copy (0 or 1) that was live */
	__u32 norm_len;		       /* bytes of norm */
	char norm[SW_DECIDE_PATH_MAX]; /* the path in normal form (norm.h), as forwarded */
};

/*
 * The XDP guard (bpf/guard.bpf.c), on the interfaces that carry client traffic: packets
 * from a denied prefix are dropped; new TCP connections (SYN without ACK) to a guarded port
 * beyond a rate per source are dropped, but from allowed prefixes; everything else passes
 * untouched. A source is an IPv4 address, or an IPv6 /64 (what one host holds).
 */
#define SW_GUARD_DENY_MAX  16384   /* denied prefixes */
#define SW_GUARD_ALLOW_MAX 1024	   /* prefixes exempt from the rate limit */
#define SW_GUARD_SOURCES   65536   /* sources whose rate is tracked (least recently used go) */
#define SW_GUARD_PORTS	   64	   /* guarded ports: sockwayd adds its listening ports */
#define SW_GUARD_RATE_MAX  1000000 /* new connections per second and source */
#define SW_GUARD_BURST_MAX 1000000
#define SW_GUARD_V4	   4 /* sw_guard_prefix.family */
#define SW_GUARD_V6	   6

/*
 * guard_deny and guard_allow key (LPM trie), and guard_sources key (prefixlen 0). The
 * family byte comes first and counts in prefixlen, so that no IPv6 prefix (::/0 say)
 * covers an IPv4 address: 10.0.0.0/8 is {8 + 8, 4, 10}, 2001:db8::/32 is {8 + 32, 6, ...}.
 */
struct sw_guard_prefix {
	__u32 prefixlen; /* 8 + the prefix length (0-32, 0-128) */
	__u8 family;	 /* SW_GUARD_V4, SW_GUARD_V6 */
	__u8 addr[16];	 /* an IPv4 address in addr[0..3], the rest 0 */
	/* The trie keeps the value right after the key's 24 data bytes: a multiple of 8, so
	 * that the program's atomic adds to the hit counters never straddle a cache line
	 * (with 20 they did, in some nodes: a bus lock per packet, 1.5 us instead of 45 ns). */
	__u8 pad[7];
};

/* guard_deny and guard_allow value: what the prefix matched, counted by the program. */
struct sw_guard_hits {
	__u64 packets;
	__u64 bytes;
};

/* guard_cfg[0]: written by the agent, read by the program. */
struct sw_guard_cfg {
	__u32 off;	/* 1: the kill switch, every packet passes uncounted */
	__u32 rate;	/* new connections per second and source; 0: no limit */
	__u32 burst;	/* connections a source may open at once */
	__u32 nr_deny;	/* prefixes in guard_deny: 0 skips the lookup */
	__u32 nr_allow; /* prefixes in guard_allow: 0 skips the lookup */
	__u32 pad;
	__u64 interval_ns; /* 1e9 / rate: one connection's share of time */
	__u64 burst_ns;	   /* burst * interval_ns */
};

/* guard_sources value, keyed by the source (a sw_guard_prefix with prefixlen 0, an IPv6
 * address cut to its /64): the limit's state, a token bucket kept as its theoretical
 * arrival time (GCRA): a SYN at now passes when max(tat, now) + interval_ns - now <=
 * burst_ns, and moves tat there (compare-and-swap). A tat further ahead than burst_ns
 * (left by an older, looser limit) counts as now + burst_ns. */
struct sw_guard_source {
	__u64 tat;
};

/* What the guard did with a packet: guard_stats (per CPU) is indexed by it. */
enum sw_guard_verdict {
	SW_GV_PASSED,	 /* not a packet the guard drops */
	SW_GV_DENIED,	 /* from a denied prefix */
	SW_GV_LIMITED,	 /* a SYN beyond its source's rate */
	SW_GV_MALFORMED, /* a header the guard cannot read safely (see guard.bpf.c) */
	SW_GV_SYN,	 /* of the passed: SYNs to a guarded port that the limit let through */
	SW_GV_MAX,
};

struct sw_guard_count {
	__u64 packets;
	__u64 bytes;
};

/* guard_stats value (per CPU). */
struct sw_guard_stats {
	struct sw_guard_count v[SW_GV_MAX];
};

/* Indexes are masked with these in BPF, so they must be powers of two. */
_Static_assert((SW_MAX_ENDPOINTS & (SW_MAX_ENDPOINTS - 1)) == 0, "SW_MAX_ENDPOINTS");
_Static_assert((SW_MAX_SPLIT & (SW_MAX_SPLIT - 1)) == 0, "SW_MAX_SPLIT");
_Static_assert((SW_SHARD_KEY_MAX & (SW_SHARD_KEY_MAX - 1)) == 0, "SW_SHARD_KEY_MAX");
_Static_assert((SW_DECIDE_PATH_MAX & (SW_DECIDE_PATH_MAX - 1)) == 0, "SW_DECIDE_PATH_MAX");
_Static_assert((SW_DECIDE_HOST_MAX & (SW_DECIDE_HOST_MAX - 1)) == 0, "SW_DECIDE_HOST_MAX");
/* The kernel build of sw_route_same (decide.h) compares route strings a word at a time,
 * reading the request's normal path and Host in whole words up to the route's sizes. */
_Static_assert(SW_PREFIX_MAX % 8 == 0 && SW_HOST_MAX % 8 == 0, "route strings in words");
_Static_assert(SW_PREFIX_MAX <= SW_DECIDE_PATH_MAX, "normal path holds a route's words");
_Static_assert(SW_HOST_MAX <= SW_DECIDE_HOST_MAX, "Host holds a route's words");

#endif /* SOCKWAY_ABI_H */
