/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The parts of swbackend (tools/swbackend.c): the configuration (options.c), reading and
 * answering requests (request.c), and the queue of responses on each connection, with their
 * delays (response.c). Each worker thread owns its connections and everything queued on
 * them; they share only cfg, set before the workers start, and the stats counters.
 */
#ifndef SW_TOOLS_BACKEND_H
#define SW_TOOLS_BACKEND_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "../lib/bytes.h"
#include "../lib/http.h"

#define MAX_LISTEN 16
/* A request head (request line and headers) larger than this is refused with 400. */
#define MAX_HEAD_BYTES 65536

struct listen_addr {
	struct sockaddr_storage addr;
	socklen_t addr_len;
};

/* Set once by main() before any worker starts; read-only afterwards. */
struct config {
	const char *name;
	struct listen_addr listen[MAX_LISTEN];
	int nr_listen;
	unsigned int latency_ms;
	int status;
	long long body_size; /* -1: the default body, "NAME\n" */
	int threads;
	bool chunked;
	bool close_each;

	/* Built from the options by response_templates_build(). */
	char *body;
	size_t body_len;
	char chunk_head[24]; /* "<hex size>\r\n" in front of the body with --chunked */
	size_t chunk_head_len;
	const char *chunk_tail; /* what follows the body: CRLF and the last chunk */
	size_t chunk_tail_len;
	bool status_has_body; /* 204 and 304 carry neither body nor framing */
	char *head_prefix;    /* status line, X-Backend, Content-Type and framing headers */
	size_t head_prefix_len;
};

extern struct config cfg;

/* What an epoll event points at: the first member of each thing a worker polls. */
enum source_kind {
	SOURCE_LISTENER,
	SOURCE_TIMER,
	SOURCE_CONN,
};

struct source {
	enum source_kind kind;
	int fd;
};

struct conn;

/*
 * One queued response. Its bytes are up to four pieces: the head (owned, in data[]), the
 * chunk size line, the body (shared, or owned for stats) and the chunk tail. It waits in
 * its connection's queue, in request order, and with --latency-ms also in the worker's
 * timer list until due.
 */
struct response {
	struct response *next;
	struct response *timer_prev, *timer_next;
	struct conn *conn;
	uint64_t due_ns; /* 0 once it may be written */
	bool in_timer_list;
	bool close_after; /* half-close the connection once this is written */
	struct iovec iov[4];
	int iovcnt;
	size_t total;
	char data[];
};

enum conn_state {
	CONN_READ_HEAD,
	CONN_READ_BODY,
	CONN_READ_CHUNKED,
};

/* What the response to the request being read needs to know about it. */
struct request_facts {
	bool http10;
	bool keep_alive;
	bool shadow;	  /* X-Sockway-Shadow: 1, counted apart */
	bool stats;	  /* GET /__swbackend/stats */
	bool head_method; /* HEAD: the response has no body */
	uint64_t body_bytes;
};

struct conn {
	struct source src; /* first: epoll data points here */
	struct worker *worker;
	enum conn_state state;

	struct bytes in;    /* bytes read and not yet parsed */
	size_t head_scan;   /* how far in.data was searched for the end of the head */
	uint64_t remaining; /* body bytes still to discard */
	struct http_chunked chunked;
	struct request_facts req;
	struct bytes echo; /* the X-Seen-* lines of the request being read */
	struct bytes xff;  /* X-Forwarded-For values, joined, until the head ends */

	struct response *out_head, *out_tail;
	size_t out_count;
	size_t out_sent; /* bytes of out_head already written */

	bool closing;	  /* no more requests are read; close once the queue is written */
	bool read_paused; /* too many queued responses: stop reading for now */
	bool peer_eof;
	bool write_shut; /* we sent FIN and discard input until the peer's */
	size_t linger_bytes;
	bool dead;	    /* closed; freed at the end of the event batch */
	bool flush_pending; /* on the worker's flush list after a timer fired */
	struct conn *next_dead, *next_flush;
};

struct worker {
	pthread_t thread;
	int epoll_fd;
	struct source listeners[MAX_LISTEN];
	struct source timer; /* a timerfd, with --latency-ms only */
	/* Kept open so that accept() can still take and drop a connection at EMFILE. */
	int spare_fd;
	struct response *timer_head, *timer_tail; /* ordered by due time */
	struct conn *dead_list, *flush_list;

	/* Written by this worker only, read by whoever answers a stats request. */
	_Atomic uint64_t requests;
	_Atomic uint64_t shadow_requests;
	_Atomic uint64_t body_bytes;
};

/* cfg.threads workers, one per thread. */
extern struct worker *workers;

/* options.c */
int parse_args(int argc, char **argv);
void format_addr(const struct sockaddr_storage *addr, char *buf, size_t size);

/* request.c */
int conn_parse(struct conn *c);

/* response.c */
int response_templates_build(void);
struct response *response_alloc(size_t size);
void response_add_piece(struct response *r, const void *data, size_t len);
void response_queue(struct conn *c, struct response *r);
int response_queue_bytes(struct conn *c, const char *data, size_t len, bool close_after);
void response_free(struct worker *w, struct response *r);
int conn_flush(struct conn *c);
void timer_arm(struct worker *w);
void timer_remove(struct worker *w, struct response *r);

/* swbackend.c */
int stats_format(char *buf, size_t size);
void conn_close(struct conn *c);

#endif /* SW_TOOLS_BACKEND_H */
