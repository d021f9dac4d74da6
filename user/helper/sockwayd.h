/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * sockwayd: the userspace helper. Each worker thread runs one reactor with its own
 * SO_REUSEPORT listeners, its own copy of the policy (snapshot.h), its own upstream pools
 * and shadow queue; workers share nothing mutable but the counter cells, where each adds
 * to its own shard.
 */
#ifndef SOCKWAY_SOCKWAYD_H
#define SOCKWAY_SOCKWAYD_H

#include <stdbool.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "sockway/abi.h"
#include "buf.h"
#include "conns.h"
#include "http.h"
#include "maps.h"
#include "reactor.h"
#include "snapshot.h"

#define SWD_MAX_LISTEN	16
#define SWD_MAX_WORKERS 64
#define SWD_MAX_STRIP	16

/* The configuration: set by main() from the command line, read-only afterwards. */
struct swd_config {
	struct sockaddr_storage listen[SWD_MAX_LISTEN];
	socklen_t listen_len[SWD_MAX_LISTEN];
	unsigned nr_listen;
	struct sockaddr_storage admin;
	socklen_t admin_len;
	unsigned workers;
	int verbose;
	struct http_limits limits;
	unsigned header_timeout_ms;    /* a request head must arrive within this */
	unsigned keepalive_timeout_ms; /* an idle client connection is closed after this */
	unsigned body_timeout_ms;      /* a request body must make progress within this */
	unsigned connect_timeout_ms;   /* upstream connect */
	unsigned response_timeout_ms;  /* upstream response head after the request was sent */
	unsigned drain_ms;	       /* in-flight requests get this long after SIGTERM */
	unsigned pool_size;	       /* idle upstream connections kept per replica and worker */
	unsigned down_ms;      /* a replica that refused a connection is skipped this long */
	size_t body_copy_max;  /* request body kept for retries and shadow copies */
	unsigned shadow_queue; /* shadow requests in flight per worker */
	const char *strip[SWD_MAX_STRIP]; /* headers removed from shadow copies */
	unsigned nr_strip;
	/* credentials (Authorization, Proxy-Authorization, Cookie) kept on shadow copies */
	const char *shadow_keep[SWD_MAX_STRIP];
	unsigned nr_shadow_keep;
	bool no_accel;	       /* stay out of the kernel fast path */
	bool no_splice;	       /* never hand a response body to the kernel */
	bool no_egress;	       /* ... nor one for a remote client (the egress splice) */
	bool no_pipe;	       /* never move a response body through a pipe (pipe.c) */
	bool no_uring;	       /* write in place, never batched (reactor.h) */
	unsigned lend;	       /* connections per replica and worker lent to kernel routing */
	bool retry_on_timeout; /* retry idempotent requests after a response timeout */
};

extern struct swd_config swd_cfg;

/* Why a request went to a second replica (proxy.c, exchange_retry). */
enum swd_retry {
	SWD_RETRY_CONNECT, /* the first connection never carried it */
	SWD_RETRY_RESET,   /* it broke before any response byte (idempotent requests) */
	SWD_RETRY_TIMEOUT, /* no response in time (idempotent, --retry-on-timeout) */
	SWD_RETRY_MAX,
	SWD_RETRY_NONE = SWD_RETRY_MAX,
};

/* The statuses of requests refused before routing, as /metrics counts them. */
#define SWD_BAD_STATUSES                                                                           \
	{                                                                                          \
		400, 408, 413, 414, 417, 431, 501, 505                                             \
	}
#define SWD_NR_BAD 8

/* Counters of a worker that belong to no cell (no route, bad request...). */
struct swd_worker_stats {
	__u64 connections;		/* accepted */
	__u64 active;			/* open client connections */
	__u64 unrouted;			/* 404: no route matched */
	__u64 bad_requests[SWD_NR_BAD]; /* by status, in the order of SWD_BAD_STATUSES */
	__u64 shadow_drops;		/* shadow samples dropped (queue full, body too big) */
	__u64 policy_reloads;
	__u64 policy_stale;	      /* refreshes that gave up (a writer stuck mid-commit) */
	__u64 kernel_responses;	      /* whole responses the kernel passed on by itself */
	__u64 kernel_responses_tick;  /* ... of them, ended at the tick (a quiet client) */
	__u64 underscore_headers;     /* request fields dropped for a '_' in their name */
	__u64 kroute_adopted;	      /* requests the kernel routed, taken over by sockwayd */
	__u64 kroute_handoffs;	      /* requests the kernel decided on and left to sockwayd */
	__u64 lend_opened;	      /* connections opened to be lent to the kernel */
	__u64 untracked;	      /* upstream sockets taken out of sock_hash: untracked peer */
	__u64 clients_untracked;      /* remote clients' sockets taken out: no egress splice */
	__u64 piped_bytes;	      /* response body bytes moved through a pipe (pipe.c) */
	__u64 accept_paused;	      /* listeners paused: no descriptor for a connection */
	struct reactor_counts batch;  /* batched writes and reads (reactor.h) */
	__u64 retries[SWD_RETRY_MAX]; /* requests sent to a second replica, by enum swd_retry */
};

struct client;
struct upstream;
struct shadow;
struct swd_pipe;
struct exchange;

struct worker {
	unsigned id;
	pthread_t thread;
	struct reactor *r;
	struct sw_maps *maps;
	struct snapshot *snap, *spare;
	struct reactor_ev listeners[SWD_MAX_LISTEN];
	unsigned nr_listeners;
	unsigned shard;		    /* counter shard this worker adds to */
	__u64 netns;		    /* its sockets' netns cookie; 0: no conns entries */
	__u64 netns_id;		    /* the same, also with --no-accel (pipe.c): keys */
	__u64 rng;		    /* xorshift state: slot and shadow draws */
	struct client *clients;	    /* every open client connection */
	struct upstream *upstreams; /* every open upstream connection */
	struct shadow *shadows;	    /* shadow requests in flight */
	unsigned nr_shadows;
	unsigned nr_exchanges; /* requests in flight */
	/* Per backend: round-robin position, replicas refusing until a time, idle pool. */
	__u32 rr[SW_MAX_BACKENDS];
	__u64 down_until[SW_MAX_BACKENDS][SW_MAX_REPLICAS];
	struct upstream *idle[SW_MAX_BACKENDS][SW_MAX_REPLICAS];
	unsigned nr_idle[SW_MAX_BACKENDS][SW_MAX_REPLICAS];
	/* conns entries of closed upstreams that had a splice armed, and of clients the
	 * kernel routed for, freed a tick later and after a grace period (upstream.c,
	 * conn_entry_defer); how many lent upstreams' sockets wait with them. */
	struct deferred_entry *deferred;
	unsigned nr_deferred_fds;
	/* conns entries of sockwayds gone, marked when a bucket was full (conns.h). */
	struct sw_reclaims reclaims;
	bool lend_held; /* lending stopped for those: said once */
	/* Kernel routing (kroute.c): whether this worker lends; its clients and lent
	 * upstreams by conns index; per replica, connections lent (or connecting to be),
	 * the lend set's misses at the last look, and a replica not to lend to until then
	 * (its backend is not local). */
	bool kroute;
	bool kroute_wait;	   /* kernel routing waits for a lender id (lend_tick) */
	unsigned lend_id;	   /* its lender id (abi.h), when kroute */
	struct client **client_at; /* by conns index: the clients the kernel may route for */
	struct upstream **lent_at; /* by conns index: the upstreams lent to the kernel */
	unsigned nr_lent[SW_MAX_BACKENDS][SW_MAX_REPLICAS];  /* lent or being connected */
	__u64 lend_misses[SW_MAX_BACKENDS][SW_MAX_REPLICAS]; /* the sets' misses seen so far */
	/* No lending to the replica before this (ms): its backend is not local, or closed a
	 * connection right after a response without saying so. */
	__u64 lend_off_until[SW_MAX_BACKENDS][SW_MAX_REPLICAS];
	/* Exchanges kept for the next requests (exchange_alloc). */
	struct exchange *spare_x;
	unsigned nr_spare_x;
	/* Empty pipes kept for the next response bodies (pipe.c). */
	struct swd_pipe *pipes_idle;
	unsigned nr_pipes_idle;
	__u64 pipes_retry_ms;	       /* no new pipe before this (pipe.c) */
	struct buf norm;	       /* the normal path of the request being decided */
	struct swd_worker_stats stats; /* written by this worker, read by admin (relaxed) */
	__u64 stale_generation;	       /* a generation the worker gave up reading */
	bool draining;
	bool accept_paused; /* out of descriptors: listeners rest until the tick */
	bool stop;
	__u64 drain_deadline_ms;
};

/* worker.c */
/* A non-blocking TCP socket connecting to addr: the fd (connect in progress) or -errno. */
int tcp_connect_start(const struct sw_addr *addr);
/* Makes close(fd) reset the connection (SO_LINGER 0), dropping what it still holds. */
void tcp_reset_on_close(int fd);
__u32 worker_random(struct worker *w);
/* Makes sure w->snap is the live policy (a no-op unless the generation moved). */
void worker_policy_refresh(struct worker *w);
/* Adds to a counter cell in this worker's shard. */
struct sw_counters *worker_cell(struct worker *w, __u16 cell);
void counters_add(__u64 *field, __u64 v);
void counters_latency(struct sw_counters *c, __u64 us);
void counters_status(struct sw_counters *c, int status);

/* proxy.h: client.c, upstream.c, exchange.c, splice.c */
void client_accept(struct reactor *r, struct reactor_ev *ev, __u32 events);
/* Listeners paused for want of descriptors take connections again (at each tick). */
void client_accept_resume(struct worker *w);
/* The proxy's timers: client deadlines, upstream timeouts, idle pools. */
void proxy_tick(struct worker *w);
/* Closes idle client connections and pooled upstreams (for draining); true while client
 * connections wait for a request to come whole (client_close_idle). */
bool proxy_close_idle(struct worker *w);
/* client.c: the worker stopped; its clients still owed a response are reset (at its end). */
void client_stop_all(struct worker *w);
/* pipe.c: frees a worker's spare pipes, at its end. */
void pipe_spares_free(struct worker *w);
/* exchange.c: frees a worker's spare exchanges, at its end. */
void exchange_spares_free(struct worker *w);
/* kroute.c: whether the worker lets the kernel route (at its start). */
void kroute_worker_init(struct worker *w);

/* shadow.c */
/* A sample of a request, with its head as the shadow backend gets it; is_head: a HEAD,
 * whose response has no body whatever its head says. */
struct shadow *shadow_new(struct worker *w, __u16 endpoint_id, const struct sw_shadow *s,
			  const char *head, size_t head_len, bool is_head);
int shadow_append_body(struct shadow *s, const char *buf, size_t len);
void shadow_launch(struct shadow *s, int primary_status);
void shadow_discard(struct shadow *s);
void shadow_tick(struct worker *w);

/* admin.c */
struct admin;
/* Starts the admin listener's thread on swd_cfg.admin: the handle, or NULL with errno set. */
struct admin *admin_start(struct worker *workers, unsigned nr, struct sw_maps *maps);
/* Stops the thread, closes every admin connection and frees a. */
void admin_stop(struct admin *a);

#endif /* SOCKWAY_SOCKWAYD_H */
