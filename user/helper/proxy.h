/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The proxy of sockwayd, in four modules that share these types:
 *   client.c    client connections: accept, read, write, errors of ours, close;
 *   upstream.c  upstream connections: connect, the idle pool per replica, the replica
 *               pick, the conns entry of each (kernel fast path);
 *   exchange.c  one request and its response between a client and an upstream: the
 *               decision, the heads, the bodies both ways, retries, timeouts;
 *   splice.c    sockwayd's side of the response splice, the handshake with sk_msg over
 *               an upstream's conns entry (its state table is there).
 * A client connection is in one of three states:
 *   HEAD     waiting for a request head (idle keep-alive, or a head arriving);
 *   PROXY    an exchange runs: its body streams up, then the response streams down;
 *   CLOSING  an answer is being flushed, then the connection closes.
 * Pipelined requests wait in the client's input buffer until the exchange before them is
 * done, so responses go out in order. Both directions stream with a high-water mark: a side
 * stops reading while the other side's output buffer is full.
 */
#ifndef SOCKWAY_PROXY_H
#define SOCKWAY_PROXY_H

#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdbool.h>

#include "sockwayd.h"

/* Output beyond this pauses the other side's reads. */
#define HIGH_WATER (256 * 1024)
/* One read takes at most this much. */
#define READ_CHUNK (64 * 1024)
/* The rest of a Content-Length body at least this long moves through a pipe (pipe.c). */
#define PIPE_MIN (32 * 1024)

enum client_state { C_HEAD, C_PROXY, C_CLOSING };
/* May a socket be spliced from or to (pipe.c)? Not known until asked. */
enum pipe_ok { PIPE_UNKNOWN, PIPE_YES, PIPE_NO };

struct exchange;

struct client {
	struct reactor_ev ev;
	struct worker *w;
	struct client *prev, *next;
	char peer_ip[INET6_ADDRSTRLEN];
	struct buf in, out;
	enum client_state state;
	__u64 deadline_ms;
	bool eof;	/* the client shut its sending side */
	bool pipelines; /* it sent a request while a response was armed (splice_check) */
	bool answered;	/* sockwayd answered a request of it (the kernel's: kc->kx_done) */
	struct exchange *x;
	struct sw_conn *kc;	/* its conns entry (kernel fast path), or NULL */
	struct sw_sock_key key; /* its key in sock_hash (kc) or egress_hash (egress) */
	/* A remote client whose socket sockops filed in egress_hash (bpf/maps.h): a local
	 * accelerated backend's response may go out of it without passing through sockwayd
	 * (the egress splice, splice.c). No conns entry: nothing of the client's own goes
	 * through the kernel. Cleared, and the socket taken out, once a request of it goes
	 * to a backend the kernel cannot reach (client_egress_drop). */
	bool egress;
	__u64 cookie;	  /* its socket's SO_COOKIE, when egress or kc (0: none, no splice) */
	__u64 accel_seen; /* kc->accel_bytes already added to a cell */
	/* Kernel routing (kroute.c): */
	__u32 kidx;	  /* kc's index in the conns map */
	__u32 handoff;	  /* what sk_msg decided of the request being parsed (SW_HANDOFF_*) */
	__u64 kx_seen;	  /* kc->kx_done at the last look: the kernel answered it since */
	bool kroute_used; /* it was left to the kernel once: its entry is freed late */
	/* Its socket is off the fast path, so it may take spliced pages (pipe.c). */
	enum pipe_ok pipe_ok;
};

struct upstream {
	struct reactor_ev ev;
	struct worker *w;
	struct upstream *prev, *next; /* every upstream of the worker */
	struct upstream *pool_next;   /* idle pool of its replica */
	__u16 backend_id;
	__u8 replica;
	bool connecting;
	bool idle;
	struct sw_addr addr;
	struct buf in, out;
	struct exchange *x; /* the exchange it carries, or NULL */
	struct shadow *s;   /* or the shadow (shadow.c); both NULL while idle */
	__u64 deadline_ms;
	struct sw_conn *kc; /* its conns entry (kernel fast path), or NULL */
	__u64 accel_seen;   /* kc->accel_bytes already added to a cell */
	bool splice_used;   /* a splice was armed on kc at some point */
	/* Kernel routing (kroute.c): */
	bool lending; /* connecting, to be lent to the kernel */
	bool lent;    /* lent: in its lend set, the kernel's, or carrying an exchange taken over */
	bool lend_wait;	  /* not in its set, carrying nothing yet: events wait for the tick */
	bool lend_orphan; /* so at the last tick too */
	__u32 kidx;	  /* kc's index in the conns map */
	/* The fast path's membership (upstream_check_peer): */
	bool peer_checked; /* it ran */
	/* It found the socket off sock_hash (or took it off): the kernel cannot reach this
	 * backend on this connection, so it cannot send its responses to a remote client
	 * either (client_egress_drop). */
	bool off_path;
	__u64 accel_base; /* kc->accel_bytes when it was filed (the entry's count goes on) */
	/* Nothing can be redirected into it, so splice(2) may read it (pipe.c). */
	enum pipe_ok pipe_ok;
};

/*
 * An exchange's two sides move on their own: a backend may answer before the request body
 * is all sent (an early 413, say), and the body still has to be read to its end for the
 * client connection to be reused.
 *   request:  REQ_BODY (body bytes still to come from the client) -> REQ_DONE;
 *   response: RESP_NONE (no final head yet) -> RESP_BODY (a head went to the client, by
 *             sockwayd or by the kernel) -> RESP_DONE.
 * The splice says what the kernel may do with the response (splice.c).
 */
enum req_state { REQ_BODY, REQ_DONE };
enum resp_state { RESP_NONE, RESP_BODY, RESP_DONE };
enum splice_mode {
	SPLICE_OFF,   /* sockwayd reads the response */
	SPLICE_WHOLE, /* armed before the response came (PREARMED): head and body */
	SPLICE_BODY,  /* armed after sockwayd forwarded the head (ARMED): the body's rest */
};

struct exchange {
	struct client *c;
	struct upstream *u;
	__u32 method_bit;
	int version_minor;
	bool keep_alive; /* what the client asked for */
	bool is_head;
	/* request body */
	enum req_state req;
	enum http_body req_body;
	__u64 req_left;
	struct http_chunked req_chunk;
	bool body_sent;	      /* body bytes went to an upstream */
	bool body_copy_short; /* the body outgrew body_copy: no replay, no shadow */
	bool upstream_spoke;  /* a byte of a response came (even a 1xx): no replay */
	struct buf head;      /* the request head as sent upstream */
	struct buf body_copy; /* the body bytes sent so far, for a retry and the shadows */
	/* routing */
	__u16 endpoint_id, backend_id, cell;
	__u8 replica;
	int tries;
	/* response */
	enum resp_state resp;
	int status;
	bool resp_keepalive; /* the upstream connection can be reused */
	bool client_keep;    /* the client connection stays open afterwards */
	enum http_body resp_body;
	__u64 resp_left;
	struct http_chunked resp_chunk;
	enum splice_mode splice;
	bool splice_whole_tried; /* once per exchange (after a 1xx, the kernel could take
				  * the final head while sockwayd still forwards the 1xx) */
	bool spliced;		 /* some of the response went past sockwayd */
	__u64 splice_seen;	 /* bytes the kernel had moved at the last timer check */
	__u64 t_start_us;
	__u64 t_end_us; /* when the kernel passed the whole response on (DONE), or 0 */
	__u64 bytes_in, bytes_out;
	struct shadow *shadows[SW_MAX_SHADOWS];
	unsigned nr_shadows;
	/* The rest of the response body moves through this pipe (pipe.c), holding piped
	 * bytes of it, or NULL. */
	struct swd_pipe *pipe;
	size_t piped;
	bool pipe_full; /* its slots are (pipe_wants_upstream) */
	/* The kernel routed the request and sockwayd took the exchange over (kroute.c): the
	 * kernel counted the request, and counts the response if it passes it on whole. */
	bool kernel;
	struct exchange *next_spare; /* in the worker's spares (exchange_alloc) */
};

/*
 * What became of an exchange after a step that can end it, and so who owns what: callers
 * stop touching x on XR_OVER and XR_CLIENT_GONE, and the upstream they held on anything
 * but XR_GOES_ON.
 */
enum xres {
	XR_CLIENT_GONE = -1, /* x and its client are freed */
	XR_GOES_ON = 0,	     /* x and its upstream live on */
	XR_OVER = 1,	     /* x is freed; the client lives */
	XR_MOVED = 2,	     /* x goes on over another upstream; the one the caller held is freed */
};

/* client.c */
void client_update(struct client *c);
void client_close(struct client *c);
void client_egress_drop(struct client *c);
void client_closing(struct client *c);
/* Writes what is buffered: now, or at the round's end with the round's other writes
 * (batched, reactor.h). Returns -1 when the client is gone (and freed). */
int client_flush(struct client *c);
/* The same, never batched: for bytes that must be in the socket before the next step. */
int client_flush_now(struct client *c);
/* Closes a connection with nothing more to ask, once what is buffered for it is out. */
void client_end(struct client *c);
void client_reset(struct client *c);
/* Queues bytes for the client, writing them now when nothing waits before them, or with
 * the round's batched writes. Returns -1 when the client is gone. */
int client_send(struct client *c, const char *p, size_t n);
/* Answers with an error of our own; close_after: the connection closes after it. Returns
 * -1 when the client is gone. */
int client_error(struct client *c, int status, bool close_after, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Parses and starts requests while the client is ready for one. Returns -1 if it is gone. */
int client_process(struct client *c);
/* Bad requests by status, for /metrics. */
void count_bad_request(struct worker *w, int status);
/* Head, body and keep-alive deadlines of the worker's clients. */
void client_tick(struct worker *w);
/* Draining: closes the connections idle between requests; true while others are owed an
 * answer (a request, or the first one, still to come whole). */
bool client_close_idle(struct worker *w);

/* upstream.c */
void upstream_update(struct upstream *u);
void upstream_close(struct upstream *u);
/* Takes an upstream out of its replica's idle pool. */
void pool_remove(struct upstream *u);
/* Puts an upstream whose exchange ended cleanly back in its replica's pool (or closes it). */
void pool_put(struct upstream *u);
/* An idle connection to exactly this address, or NULL. check: make sure the backend did
 * not close it (one recv MSG_PEEK). */
struct upstream *pool_get(struct worker *w, __u16 backend, __u8 replica, const struct sw_addr *addr,
			  bool check);
/* Has the backend closed the connection, or sent bytes nobody asked for (one recv with
 * MSG_PEEK)? */
bool upstream_stale(const struct upstream *u);
/* A new connection to addr (connect in progress), or NULL. */
struct upstream *upstream_connect(struct worker *w, __u16 backend, __u8 replica,
				  const struct sw_addr *addr);
/* Frees a conns entry; later: a tick or two from now, as the kernel may still write it. */
void conn_entry_release(struct worker *w, struct sw_conn *e, bool later);
/* Files a connected upstream in the conns map, so that the kernel can find it. */
void upstream_track(struct upstream *u);
/* At the upstream's first response bytes: out of sock_hash if the backend's end is not in it. */
void upstream_check_peer(struct upstream *u);
/* Sends bytes, buffering what the socket does not take now: 0 or -errno. */
int upstream_send(struct upstream *u, const char *p, size_t n);
int upstream_flush(struct upstream *u);
/* A replica of backend_id: round robin, skipping those marked down and, on a retry, the
 * one that failed. Returns its index, or -1. */
int pick_replica(struct worker *w, __u16 backend_id, const struct sw_backend *be, int tries,
		 __u8 failed);
/* Bytes the kernel moved on a connection since *seen, which moves on. */
__u64 accel_delta(struct sw_conn *kc, __u64 *seen);
/* Idle timeouts of pooled connections, and conns entries whose time has come. */
void upstream_tick(struct worker *w);
void upstream_close_idle(struct worker *w);

/* exchange.c */
/* Starts the exchange of a parsed head (route, pick, shadows, upstream). Returns -1 when
 * the client is gone, else 0 (whether or not the exchange is already over). */
int exchange_start(struct client *c, const struct http_request *req);
/* A zeroed exchange (but for its head buffer's storage), a worker's spare if it has one
 * (no allocation), or NULL. */
struct exchange *exchange_alloc(struct worker *w);
/* Frees an exchange, with the shadows it never launched (kept as a spare when it can). */
void exchange_free(struct exchange *x);
enum xres exchange_finish(struct exchange *x);
/* The upstream's part is over: its connection is pooled, lent back or closed. */
void exchange_upstream_release(struct exchange *x);
enum xres exchange_fail(struct exchange *x, int status, const char *fmt, const char *what);
enum xres exchange_pump_request(struct exchange *x);
enum xres exchange_upstream_failed(struct exchange *x, enum sw_upstream_error kind);
void exchange_count_status(struct exchange *x, int status);
/* Does the client connection stay open after this exchange, as far as is known now? */
bool exchange_client_keep(const struct exchange *x);
/* Is the response waiting for the client (its output, or its pipe, is full)? */
bool exchange_client_behind(const struct exchange *x);
/* After an exchange ended: start the pipelined request, if any. */
void exchange_after(struct client *c, enum xres ret);
/* An event of the upstream that carries an exchange. */
void exchange_upstream_event(struct upstream *u, __u32 events);
/* Connect and response timeouts, and responses the kernel passed on to quiet clients. */
void exchange_tick(struct worker *w);

/* shadow.c: an event of the upstream that carries a shadow. */
void shadow_upstream_event(struct upstream *u, __u32 events);

/* kroute.c: kernel routing, sockwayd's side */
/* A client with a conns entry: files it for the kernel. */
void kroute_client_track(struct client *c);
/* The client goes: the kernel lets go of it. */
void kroute_client_untrack(struct client *c);
/* The client is idle at sockwayd: its next request may be the kernel's (K1). */
void kroute_client_idle(struct client *c);
/* Could the kernel route this client's requests (K1 when it is idle)? */
bool kroute_client_could(const struct client *c);
/* Before sockwayd touches the client on an event, and before each read of its socket: K2,
 * or K6 and the exchange taken over. Returns -1 when the client is gone, 1 when the kernel
 * is sending a request of it this instant (ROUTING: leave it, the event comes again). */
int kroute_client_event(struct client *c);
/* Did the kernel answer the client since the last look (its idle deadline moves on)? */
bool kroute_client_active(struct client *c);
/* The handoff of the request being parsed, taken from the client's entry. */
__u32 kroute_handoff_take(struct client *c);
/* sockwayd routes a request to backend b itself: lend connections to it if none are. */
void lend_demand(struct worker *w, __u16 b);
/* Events of a lent upstream that carries no exchange of sockwayd's. */
void lend_event(struct upstream *u, __u32 events);
/* An exchange taken over ended cleanly on a lent upstream: back to its lend set. */
void lend_return(struct upstream *u);
/* A lent upstream closes: out of its set and the worker's books. */
void lend_forget(struct upstream *u);
/* Lend sets: idle timeouts, stuck exchanges, more connections where the kernel missed. */
void lend_tick(struct worker *w);
/* Draining: the kernel routes no more; idle lent connections close. */
void kroute_drain(struct worker *w);

/* pipe.c: response bodies through a pipe, on the userspace path */
/* May the rest of the response body go through a pipe now? */
bool pipe_eligible(struct exchange *x);
/* ... but for bytes still in the client's buffer (then written at once, exchange.c). */
bool pipe_eligible_but_buffered(struct exchange *x);
/* Gives the exchange a pipe: false when there is none to have. */
bool pipe_take(struct exchange *x);
/* Moves body bytes on, both ways; ends the exchange once the body is out. */
enum xres pipe_pump(struct exchange *x);
/* Does the exchange's pipe hold what it can (the client is behind)? */
bool pipe_is_full(const struct exchange *x);
/* Is there room in the pipe, and body still to come from an upstream? */
bool pipe_wants_upstream(const struct exchange *x);
/* The exchange lets go of its pipe (kept for reuse when empty). */
void pipe_release(struct exchange *x);

/* splice.c */
void splice_arm(struct exchange *x);
void splice_abandon(struct exchange *x);

/* What sockwayd may do with an upstream's socket after splice_settle. */
enum splice_settled {
	SETTLED_READ,	/* the splice is taken back: read on */
	SETTLED_BUSY,	/* the kernel is moving bytes: leave the socket alone */
	SETTLED_FAILED, /* the exchange failed (its result in *ret) */
};
enum splice_settled splice_settle(struct exchange *x, enum xres *ret);
enum xres splice_check(struct exchange *x, bool take_back);
bool splice_done(const struct exchange *x);
bool splice_progressed(struct exchange *x);

#endif /* SOCKWAY_PROXY_H */
