// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * swbackend: a small, fast HTTP/1.1 backend for sockway demos, tests and benchmarks.
 *
 *   swbackend --name NAME --listen ADDR:PORT [--listen ...] [--latency-ms N] [--status CODE]
 *             [--body-size BYTES] [--threads N] [--chunked] [--close]
 *
 * Every response names the backend (X-Backend) and echoes what the request carried
 * (X-Seen-*), so a test can tell from the client side where a request went and what the
 * router did to it. GET /__swbackend/stats answers the counters as JSON; SIGTERM and
 * SIGINT print the same JSON line on stdout and exit 0.
 *
 * Each thread runs its own epoll loop over its own SO_REUSEPORT listeners, so threads
 * share nothing but the configuration and the response body, which is built once.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "lib/args.h"
#include "lib/bytes.h"
#include "lib/clock.h"
#include "lib/http.h"

#define MAX_LISTEN     16
#define MAX_THREADS    256
#define LISTEN_BACKLOG 4096
#define EVENT_BATCH    256
/* A request head (request line and headers) larger than this is refused with 400. */
#define MAX_HEAD_BYTES 65536
#define IN_BUF_INITIAL 16384
/*
 * A client that pipelines faster than it reads stops being read once this many responses
 * wait on its connection, so its memory stays bounded; reading resumes at half.
 */
#define MAX_QUEUED_RESPONSES 128
/* Bytes a closing connection may still send us before we stop waiting for its FIN. */
#define MAX_LINGER_BYTES (1 << 20)
#define WRITE_IOVECS	 64
#define STATS_PATH	 "/__swbackend/stats"
#define FILLER		 "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ\n"

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

static struct config cfg = {
	.status = 200,
	.body_size = -1,
	.threads = 1,
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: swbackend --name NAME --listen ADDR:PORT [--listen ADDR:PORT ...]\n"
		"                 [--latency-ms N] [--status CODE] [--body-size BYTES]\n"
		"                 [--threads N] [--chunked] [--close]\n"
		"  ADDR:PORT is 127.0.0.1:9001 or [::1]:9001; port 0 picks a free port, and the\n"
		"  \"listening on\" line printed on stderr tells which.\n");
}

/* Parses "1.2.3.4:80" or "[::1]:80" into addr; 0 or -EINVAL. */
static int parse_listen_addr(const char *text, struct listen_addr *la)
{
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&la->addr;
	struct sockaddr_in *sin = (struct sockaddr_in *)&la->addr;
	char host[INET6_ADDRSTRLEN];
	const char *port_text;
	long long port;
	size_t host_len;

	memset(la, 0, sizeof(*la));
	if (text[0] == '[') {
		const char *close = strchr(text, ']');

		if (!close || close[1] != ':')
			return -EINVAL;
		host_len = close - text - 1;
		port_text = close + 2;
		text++;
	} else {
		const char *colon = strrchr(text, ':');

		if (!colon)
			return -EINVAL;
		host_len = colon - text;
		port_text = colon + 1;
	}
	if (host_len == 0 || host_len >= sizeof(host))
		return -EINVAL;
	memcpy(host, text, host_len);
	host[host_len] = '\0';
	if (parse_number(port_text, 0, 65535, &port))
		return -EINVAL;

	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		la->addr_len = sizeof(*sin);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		la->addr_len = sizeof(*sin6);
		return 0;
	}
	return -EINVAL;
}

/* Formats addr as "1.2.3.4:80" or "[::1]:80". */
static void format_addr(const struct sockaddr_storage *addr, char *buf, size_t size)
{
	char host[INET6_ADDRSTRLEN];

	if (addr->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)addr;

		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		snprintf(buf, size, "[%s]:%u", host, ntohs(sin6->sin6_port));
	} else {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)addr;

		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		snprintf(buf, size, "%s:%u", host, ntohs(sin->sin_port));
	}
}

/* Fills cfg from argv; 0 or -EINVAL after printing what was wrong. */
static int parse_args(int argc, char **argv)
{
	static const struct option options[] = {
		{"name", required_argument, NULL, 'n'},
		{"listen", required_argument, NULL, 'l'},
		{"latency-ms", required_argument, NULL, 'L'},
		{"status", required_argument, NULL, 's'},
		{"body-size", required_argument, NULL, 'b'},
		{"threads", required_argument, NULL, 't'},
		{"chunked", no_argument, NULL, 'c'},
		{"close", no_argument, NULL, 'C'},
		{"help", no_argument, NULL, 'h'},
		{},
	};
	long long value;
	int opt;

	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case 'n':
			cfg.name = optarg;
			break;
		case 'l':
			if (cfg.nr_listen == MAX_LISTEN) {
				fprintf(stderr, "swbackend: at most %d --listen\n", MAX_LISTEN);
				return -EINVAL;
			}
			if (parse_listen_addr(optarg, &cfg.listen[cfg.nr_listen])) {
				fprintf(stderr,
					"swbackend: bad --listen '%s': use 127.0.0.1:PORT or "
					"[::1]:PORT\n",
					optarg);
				return -EINVAL;
			}
			cfg.nr_listen++;
			break;
		case 'L':
			if (parse_number(optarg, 0, 3600 * 1000, &value)) {
				fprintf(stderr, "swbackend: bad --latency-ms '%s'\n", optarg);
				return -EINVAL;
			}
			cfg.latency_ms = value;
			break;
		case 's':
			if (parse_number(optarg, 200, 599, &value)) {
				fprintf(stderr, "swbackend: bad --status '%s': use 200..599\n",
					optarg);
				return -EINVAL;
			}
			cfg.status = value;
			break;
		case 'b':
			if (parse_number(optarg, 0, 1LL << 30, &value)) {
				fprintf(stderr,
					"swbackend: bad --body-size '%s': use 0..1073741824\n",
					optarg);
				return -EINVAL;
			}
			cfg.body_size = value;
			break;
		case 't':
			if (parse_number(optarg, 1, MAX_THREADS, &value)) {
				fprintf(stderr, "swbackend: bad --threads '%s': use 1..%d\n",
					optarg, MAX_THREADS);
				return -EINVAL;
			}
			cfg.threads = value;
			break;
		case 'c':
			cfg.chunked = true;
			break;
		case 'C':
			cfg.close_each = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "swbackend: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	if (!cfg.name || !cfg.name[0] || !cfg.nr_listen) {
		fprintf(stderr, "swbackend: --name and at least one --listen are required\n");
		usage(stderr);
		return -EINVAL;
	}
	/* The name goes into a header and into JSON: keep it to plain visible characters. */
	for (const char *p = cfg.name; *p; p++) {
		if (*p <= ' ' || *p >= 0x7f || *p == '"' || *p == '\\') {
			fprintf(stderr, "swbackend: --name must be visible ASCII without quotes\n");
			return -EINVAL;
		}
	}
	return 0;
}

static const char *status_reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 202:
		return "Accepted";
	case 204:
		return "No Content";
	case 301:
		return "Moved Permanently";
	case 302:
		return "Found";
	case 304:
		return "Not Modified";
	case 400:
		return "Bad Request";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 429:
		return "Too Many Requests";
	case 500:
		return "Internal Server Error";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	default:
		return "Status";
	}
}

/*
 * Builds the parts every response shares: the body (once, however large, so a 1 MiB
 * response costs no copy), its chunk framing, and the head up to the per-request headers.
 * 0 or -ENOMEM.
 */
static int response_templates_build(void)
{
	size_t name_len = strlen(cfg.name), filler_len = strlen(FILLER);
	char framing[64];
	int len;

	cfg.body_len = cfg.body_size < 0 ? name_len + 1 : (size_t)cfg.body_size;
	cfg.body = malloc(cfg.body_len + 1);
	if (!cfg.body)
		return -ENOMEM;
	/* "NAME\n" first, so even a large body says who sent it, then printable filler. */
	for (size_t i = 0; i < cfg.body_len; i++) {
		if (i < name_len)
			cfg.body[i] = cfg.name[i];
		else if (i == name_len)
			cfg.body[i] = '\n';
		else
			cfg.body[i] = FILLER[(i - name_len - 1) % filler_len];
	}

	cfg.status_has_body = cfg.status != 204 && cfg.status != 304;
	if (!cfg.status_has_body) {
		framing[0] = '\0';
	} else if (cfg.chunked) {
		/* One chunk with the whole body; an empty body is just the last chunk. */
		if (cfg.body_len) {
			cfg.chunk_head_len = snprintf(cfg.chunk_head, sizeof(cfg.chunk_head),
						      "%zx\r\n", cfg.body_len);
			cfg.chunk_tail = "\r\n0\r\n\r\n";
		} else {
			cfg.chunk_tail = "0\r\n\r\n";
		}
		cfg.chunk_tail_len = strlen(cfg.chunk_tail);
		snprintf(framing, sizeof(framing), "Transfer-Encoding: chunked\r\n");
	} else {
		snprintf(framing, sizeof(framing), "Content-Length: %zu\r\n", cfg.body_len);
	}

	len = asprintf(&cfg.head_prefix,
		       "HTTP/1.1 %d %s\r\nX-Backend: %s\r\nContent-Type: text/plain\r\n%s",
		       cfg.status, status_reason(cfg.status), cfg.name, framing);
	if (len < 0)
		return -ENOMEM;
	cfg.head_prefix_len = len;
	return 0;
}

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

static struct worker *workers;

/* Formats the counters of every worker as one JSON object; returns its length. */
static int stats_format(char *buf, size_t size)
{
	uint64_t requests = 0, shadow = 0, body = 0;

	for (int i = 0; i < cfg.threads; i++) {
		requests += atomic_load_explicit(&workers[i].requests, memory_order_relaxed);
		shadow += atomic_load_explicit(&workers[i].shadow_requests, memory_order_relaxed);
		body += atomic_load_explicit(&workers[i].body_bytes, memory_order_relaxed);
	}
	return snprintf(buf, size,
			"{\"name\":\"%s\",\"requests\":%" PRIu64 ",\"shadow_requests\":%" PRIu64
			",\"body_bytes\":%" PRIu64 "}",
			cfg.name, requests, shadow, body);
}

/* Points the worker's timerfd at the earliest due response, or disarms it. */
static void timer_arm(struct worker *w)
{
	struct itimerspec its = {};

	if (w->timer_head) {
		its.it_value.tv_sec = w->timer_head->due_ns / 1000000000ULL;
		its.it_value.tv_nsec = w->timer_head->due_ns % 1000000000ULL;
	}
	timerfd_settime(w->timer.fd, TFD_TIMER_ABSTIME, &its, NULL);
}

/*
 * Every delayed response waits the same --latency-ms, so appending keeps the list ordered
 * by due time and the earliest is always at the head.
 */
static void timer_add(struct worker *w, struct response *r)
{
	r->timer_prev = w->timer_tail;
	r->timer_next = NULL;
	if (w->timer_tail)
		w->timer_tail->timer_next = r;
	else
		w->timer_head = r;
	w->timer_tail = r;
	r->in_timer_list = true;
	if (w->timer_head == r)
		timer_arm(w);
}

static void timer_remove(struct worker *w, struct response *r)
{
	if (r->timer_prev)
		r->timer_prev->timer_next = r->timer_next;
	else
		w->timer_head = r->timer_next;
	if (r->timer_next)
		r->timer_next->timer_prev = r->timer_prev;
	else
		w->timer_tail = r->timer_prev;
	r->in_timer_list = false;
}

static void response_free(struct worker *w, struct response *r)
{
	if (r->in_timer_list)
		timer_remove(w, r);
	free(r);
}

/* Allocates a response with room for size bytes of head; NULL with errno set. */
static struct response *response_alloc(size_t size)
{
	struct response *r = malloc(sizeof(*r) + size);

	if (!r)
		return NULL;
	memset(r, 0, sizeof(*r));
	return r;
}

static void response_add_piece(struct response *r, const void *data, size_t len)
{
	if (!len)
		return;
	r->iov[r->iovcnt].iov_base = (void *)data;
	r->iov[r->iovcnt].iov_len = len;
	r->iovcnt++;
	r->total += len;
}

/* Appends r to c's queue; a response with a due time also waits in the timer list. */
static void response_queue(struct conn *c, struct response *r)
{
	r->conn = c;
	if (c->out_tail)
		c->out_tail->next = r;
	else
		c->out_head = r;
	c->out_tail = r;
	c->out_count++;
	if (c->out_count >= MAX_QUEUED_RESPONSES)
		c->read_paused = true;
	if (r->due_ns)
		timer_add(c->worker, r);
}

/* Queues a response whose bytes are all given; 0 or -ENOMEM. */
static int response_queue_bytes(struct conn *c, const char *data, size_t len, bool close_after)
{
	struct response *r = response_alloc(len);

	if (!r)
		return -ENOMEM;
	memcpy(r->data, data, len);
	response_add_piece(r, r->data, len);
	r->close_after = close_after;
	response_queue(c, r);
	return 0;
}

/*
 * Closes the socket now and frees the connection after the current event batch, since
 * later events of the same batch may still point at it.
 */
static void conn_close(struct conn *c)
{
	struct worker *w = c->worker;

	if (c->dead)
		return;
	close(c->src.fd);
	while (c->out_head) {
		struct response *r = c->out_head;

		c->out_head = r->next;
		response_free(w, r);
	}
	c->out_tail = NULL;
	free(c->in.data);
	free(c->echo.data);
	free(c->xff.data);
	c->dead = true;
	c->next_dead = w->dead_list;
	w->dead_list = c;
}

/*
 * Writes the due responses at the head of the queue, in order, as far as the socket takes
 * them. 0 (including when the socket is full: EPOLLOUT resumes) or -errno.
 */
static int conn_flush(struct conn *c)
{
	struct worker *w = c->worker;
	struct response *r;

	while (c->out_head && !c->out_head->due_ns) {
		struct iovec iov[WRITE_IOVECS];
		size_t skip = c->out_sent, want = 0;
		ssize_t written;
		int n = 0;

		for (r = c->out_head; r && !r->due_ns; r = r->next) {
			if (n + r->iovcnt > WRITE_IOVECS)
				break;
			for (int i = 0; i < r->iovcnt; i++) {
				if (skip >= r->iov[i].iov_len) {
					skip -= r->iov[i].iov_len;
					continue;
				}
				iov[n].iov_base = (char *)r->iov[i].iov_base + skip;
				iov[n].iov_len = r->iov[i].iov_len - skip;
				want += iov[n].iov_len;
				skip = 0;
				n++;
			}
		}
		written = writev(c->src.fd, iov, n);
		if (written < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			return -errno;
		}
		c->out_sent += written;
		while ((r = c->out_head) && c->out_sent >= r->total) {
			c->out_sent -= r->total;
			c->out_head = r->next;
			if (!c->out_head)
				c->out_tail = NULL;
			c->out_count--;
			if (r->close_after) {
				/*
				 * FIN rather than close(): closing with unread input would send
				 * a RST that can destroy the response before the client reads it.
				 */
				shutdown(c->src.fd, SHUT_WR);
				c->write_shut = true;
			}
			response_free(w, r);
		}
		if ((size_t)written < want)
			return 0;
	}
	if (c->read_paused && c->out_count <= MAX_QUEUED_RESPONSES / 2)
		c->read_paused = false;
	/* The peer is gone and everything it asked for is answered. */
	if (!c->out_head && c->peer_eof)
		conn_close(c);
	return 0;
}

static const char *const hop_header_names[] = {
	"Connection", "Keep-Alive", "TE", "Upgrade", "Proxy-Connection",
};

/* What the request line and header fields say, gathered before any of it is acted on. */
struct head_facts {
	const char *target;
	size_t target_len;
	bool head_method;
	bool get_method;
	struct http_framing framing;
	bool expect_continue;
	bool shadow_seen;
	bool shadow_one;
	unsigned int hop_mask; /* bit i: hop_header_names[i] was received */
	const char *shard_key;
	size_t shard_key_len;
	bool shard_key_seen;
	struct bytes *xff; /* the connection's X-Forwarded-For values, joined */
};

/* "METHOD SP target SP HTTP/1.x"; 0 or -EBADMSG. */
static int request_line_parse(const char *line, size_t len, struct head_facts *h)
{
	const char *end = line + len, *p = line, *method = line;
	size_t method_len;

	while (p < end && http_is_tchar(*p))
		p++;
	method_len = p - method;
	if (!method_len || p == end || *p != ' ')
		return -EBADMSG;
	h->get_method = method_len == 3 && !memcmp(method, "GET", 3);
	h->head_method = method_len == 4 && !memcmp(method, "HEAD", 4);

	h->target = ++p;
	while (p<end && * p> ' ' && *p < 0x7f)
		p++;
	h->target_len = p - h->target;
	if (!h->target_len || p == end || *p != ' ')
		return -EBADMSG;
	p++;
	if (end - p != 8)
		return -EBADMSG;
	return http_version_parse(p, &h->framing.http10);
}

/* Notes what the echo and the answer need from one field line; 0 or -ENOMEM. */
static int header_field_note(void *arg, const struct http_field *f, enum http_field_kind kind)
{
	struct head_facts *h = arg;

	if (kind == HTTP_FIELD_CONNECTION)
		h->hop_mask |= 1u << 0;
	if (kind != HTTP_FIELD_OTHER)
		return 0;
	if (http_field_is(f, "keep-alive")) {
		h->hop_mask |= 1u << 1;
	} else if (http_field_is(f, "te")) {
		h->hop_mask |= 1u << 2;
	} else if (http_field_is(f, "upgrade")) {
		h->hop_mask |= 1u << 3;
	} else if (http_field_is(f, "proxy-connection")) {
		h->hop_mask |= 1u << 4;
	} else if (http_field_is(f, "x-serve-shard-key")) {
		if (!h->shard_key_seen) {
			h->shard_key_seen = true;
			h->shard_key = f->value;
			h->shard_key_len = f->value_len;
		}
	} else if (http_field_is(f, "x-forwarded-for")) {
		/* Several lines make one list (RFC 9110 5.3), as a proxy would see it. */
		if (f->value_len && h->xff->len && bytes_append(h->xff, ", ", 2))
			return -ENOMEM;
		if (bytes_append(h->xff, f->value, f->value_len))
			return -ENOMEM;
	} else if (http_field_is(f, "x-sockway-shadow")) {
		h->shadow_seen = true;
		h->shadow_one |= f->value_len == 1 && f->value[0] == '1';
	} else if (http_field_is(f, "expect")) {
		h->expect_continue = http_name_is(f->value, f->value_len, "100-continue");
	}
	return 0;
}

/* Renders the X-Seen-* lines of the response to this request into c->echo. */
static int echo_build(struct conn *c, const struct head_facts *h)
{
	struct bytes *e = &c->echo;
	int err = 0;

	e->len = 0;
	err |= bytes_append_str(e, "X-Seen-Path: ");
	err |= bytes_append(e, h->target, h->target_len);
	err |= bytes_append_str(e, "\r\n");
	if (h->shard_key_seen) {
		err |= bytes_append_str(e, "X-Seen-Shard-Key: ");
		err |= bytes_append(e, h->shard_key, h->shard_key_len);
		err |= bytes_append_str(e, "\r\n");
	}
	if (c->xff.len) {
		err |= bytes_append_str(e, "X-Seen-Forwarded-For: ");
		err |= bytes_append(e, c->xff.data, c->xff.len);
		err |= bytes_append_str(e, "\r\n");
	}
	if (h->shadow_seen)
		err |= bytes_append_str(e, "X-Seen-Shadow: 1\r\n");
	if (h->hop_mask) {
		const char *sep = "X-Seen-Hop: ";

		for (size_t i = 0; i < sizeof(hop_header_names) / sizeof(hop_header_names[0]);
		     i++) {
			if (!(h->hop_mask & (1u << i)))
				continue;
			err |= bytes_append_str(e, sep);
			err |= bytes_append_str(e, hop_header_names[i]);
			sep = ",";
		}
		err |= bytes_append_str(e, "\r\n");
	}
	return err ? -ENOMEM : 0;
}

/* Queues the answer to the request just read and gets ready for the next; 0 or -ENOMEM. */
static int request_answer(struct conn *c)
{
	static const char conn_close_line[] = "Connection: close\r\n";
	static const char conn_keep_line[] = "Connection: keep-alive\r\n";
	struct worker *w = c->worker;
	bool close_after = !c->req.keep_alive || cfg.close_each;
	struct response *r;
	char *p;

	if (c->req.stats) {
		char json[256], text[512];
		int json_len, len;

		/* The stats request itself is not counted, so tests can read exact numbers. */
		json_len = stats_format(json, sizeof(json));
		len = snprintf(
			text, sizeof(text),
			"HTTP/1.1 200 OK\r\nX-Backend: %s\r\nContent-Type: application/json\r\n"
			"Content-Length: %d\r\n%s\r\n%s\n",
			cfg.name, json_len + 1, close_after ? conn_close_line : "", json);
		if (len < 0 || (size_t)len >= sizeof(text) ||
		    response_queue_bytes(c, text, len, close_after))
			return -ENOMEM;
		goto next_request;
	}

	r = response_alloc(cfg.head_prefix_len + sizeof(conn_keep_line) + c->echo.len + 64);
	if (!r)
		return -ENOMEM;
	p = r->data;
	memcpy(p, cfg.head_prefix, cfg.head_prefix_len);
	p += cfg.head_prefix_len;
	if (close_after) {
		memcpy(p, conn_close_line, sizeof(conn_close_line) - 1);
		p += sizeof(conn_close_line) - 1;
	} else if (c->req.http10) {
		/* An HTTP/1.0 client closes unless told the connection stays. */
		memcpy(p, conn_keep_line, sizeof(conn_keep_line) - 1);
		p += sizeof(conn_keep_line) - 1;
	}
	memcpy(p, c->echo.data, c->echo.len);
	p += c->echo.len;
	p += sprintf(p, "X-Seen-Body-Bytes: %" PRIu64 "\r\n\r\n", c->req.body_bytes);
	response_add_piece(r, r->data, p - r->data);
	if (cfg.status_has_body && !c->req.head_method) {
		response_add_piece(r, cfg.chunk_head, cfg.chunk_head_len);
		response_add_piece(r, cfg.body, cfg.body_len);
		response_add_piece(r, cfg.chunk_tail, cfg.chunk_tail_len);
	}
	r->close_after = close_after;
	if (cfg.latency_ms)
		r->due_ns = now_ns() + cfg.latency_ms * 1000000ULL;
	atomic_fetch_add_explicit(&w->requests, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&w->body_bytes, c->req.body_bytes, memory_order_relaxed);
	if (c->req.shadow)
		atomic_fetch_add_explicit(&w->shadow_requests, 1, memory_order_relaxed);
	response_queue(c, r);

next_request:
	if (close_after)
		c->closing = true;
	memset(&c->req, 0, sizeof(c->req));
	c->state = CONN_READ_HEAD;
	return 0;
}

/* Acts on a complete request head p[0..len); 0, -EBADMSG or -ENOMEM. */
static int request_head_parse(struct conn *c, const char *p, size_t len)
{
	static const char continue_line[] = "HTTP/1.1 100 Continue\r\n\r\n";
	struct head_facts h = {.xff = &c->xff};
	const struct http_framing *fr = &h.framing;
	const char *end = p + len, *line;
	size_t line_len, used;
	bool has_body;
	int err;

	c->xff.len = 0;
	used = http_line_take(p, end, &line, &line_len);
	if (!used)
		return -EBADMSG;
	err = request_line_parse(line, line_len, &h);
	if (!err)
		err = http_fields_parse(p + used, end, &h.framing, header_field_note, &h);
	if (err)
		return err;

	/*
	 * A length we cannot tell for sure is refused rather than guessed: that is where
	 * request smuggling lives (RFC 9112 6.1, 6.3).
	 */
	if (fr->te_seen && (!fr->te_chunked_last || fr->te_chunked_count != 1 || fr->cl_seen))
		return -EBADMSG;

	err = echo_build(c, &h);
	if (err)
		return err;
	c->req.http10 = fr->http10;
	c->req.keep_alive = http_framing_keep_alive(fr);
	c->req.shadow = h.shadow_one;
	c->req.head_method = h.head_method;
	c->req.stats = h.get_method && h.target_len == strlen(STATS_PATH) &&
		       !memcmp(h.target, STATS_PATH, h.target_len);

	has_body = fr->te_seen || fr->content_length;
	if (h.expect_continue && !fr->http10 && has_body &&
	    response_queue_bytes(c, continue_line, sizeof(continue_line) - 1, false))
		return -ENOMEM;
	if (fr->te_seen) {
		c->state = CONN_READ_CHUNKED;
		http_chunked_start(&c->chunked);
	} else if (fr->content_length) {
		c->state = CONN_READ_BODY;
		c->remaining = fr->content_length;
	} else {
		return request_answer(c);
	}
	return 0;
}

/*
 * Takes one step of the request at c->in.data + *pos: a head, some body, a chunk line or a
 * trailer. HTTP_STEP_ADVANCED, HTTP_STEP_MORE when it needs more bytes, -EBADMSG or -ENOMEM.
 */
static int conn_parse_step(struct conn *c, size_t *pos)
{
	const char *p = c->in.data + *pos;
	size_t avail = c->in.len - *pos, used;
	uint64_t take;
	int ret;

	switch (c->state) {
	case CONN_READ_HEAD:
		/* Empty lines before a request line are ignored (RFC 9112 2.2). */
		if (c->head_scan == 0 && avail >= 1 && (p[0] == '\n' || p[0] == '\r')) {
			used = p[0] == '\n' ? 1 : avail >= 2 && p[1] == '\n' ? 2 : 0;
			if (!used)
				return avail >= 2 ? -EBADMSG : HTTP_STEP_MORE;
			*pos += used;
			return HTTP_STEP_ADVANCED;
		}
		used = http_head_end_find(p, avail, &c->head_scan);
		if (!used)
			return avail > MAX_HEAD_BYTES ? -EBADMSG : HTTP_STEP_MORE;
		c->head_scan = 0;
		ret = request_head_parse(c, p, used);
		*pos += used;
		return ret ? ret : HTTP_STEP_ADVANCED;

	case CONN_READ_BODY:
		take = http_body_take(&c->remaining, avail);
		*pos += take;
		c->req.body_bytes += take;
		if (c->remaining)
			return HTTP_STEP_MORE;
		break;

	case CONN_READ_CHUNKED:
		ret = http_chunked_step(&c->chunked, p, avail, pos);
		if (ret != HTTP_STEP_DONE)
			return ret;
		c->req.body_bytes = c->chunked.data_bytes;
		break;
	}
	/* The body is all in: answer. */
	ret = request_answer(c);
	return ret ? ret : HTTP_STEP_ADVANCED;
}

/*
 * Answers every complete request in the input buffer, in order, until the connection
 * closes or pauses. A malformed request gets 400 and the connection closes after it.
 * 0 or -ENOMEM.
 */
static int conn_parse(struct conn *c)
{
	static const char bad_request_fmt[] =
		"HTTP/1.1 400 Bad Request\r\nX-Backend: %s\r\nContent-Type: text/plain\r\n"
		"Content-Length: 12\r\nConnection: close\r\n\r\nbad request\n";
	size_t pos = 0;
	int ret = 0;

	while (!c->closing && !c->read_paused) {
		ret = conn_parse_step(c, &pos);
		if (ret <= 0)
			break;
	}
	if (ret == -EBADMSG) {
		char text[sizeof(bad_request_fmt) + 256];
		int len = snprintf(text, sizeof(text), bad_request_fmt, cfg.name);

		ret = response_queue_bytes(c, text, len, true);
		c->closing = true;
		pos = c->in.len;
	}
	c->in.len -= pos;
	if (c->in.len && pos)
		memmove(c->in.data, c->in.data + pos, c->in.len);
	return ret < 0 ? ret : 0;
}

/*
 * Reads, answers and writes until the socket has nothing more for us or can take no more.
 * Runs on every event of the connection and when one of its delayed responses falls due;
 * with edge-triggered epoll it must leave only on EAGAIN, a pause or a close.
 */
static void conn_pump(struct conn *c)
{
	for (;;) {
		ssize_t n;

		if (!c->write_shut && conn_parse(c)) {
			conn_close(c);
			return;
		}
		if (conn_flush(c)) {
			conn_close(c);
			return;
		}
		if (c->dead || c->read_paused || c->peer_eof)
			return;
		/* A closing connection reads again only to discard input until the peer's FIN. */
		if (c->closing && !c->write_shut)
			return;
		if (c->in.len == c->in.cap) {
			/* Only an unfinished head fills the buffer; parsing refuses one too long.
			 */
			if (c->in.cap >= 2 * MAX_HEAD_BYTES || bytes_reserve(&c->in, c->in.cap)) {
				conn_close(c);
				return;
			}
		}
		n = read(c->src.fd, c->in.data + c->in.len, c->in.cap - c->in.len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				conn_close(c);
			return;
		}
		if (n == 0) {
			/* Requests already complete are still answered before closing. */
			c->peer_eof = true;
			c->closing = true;
			continue;
		}
		if (c->write_shut) {
			c->linger_bytes += n;
			if (c->linger_bytes > MAX_LINGER_BYTES) {
				conn_close(c);
				return;
			}
			continue;
		}
		c->in.len += n;
	}
}

static void conn_open(struct worker *w, int fd)
{
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET};
	struct conn *c = calloc(1, sizeof(*c));
	int one = 1;

	if (!c || bytes_reserve(&c->in, IN_BUF_INITIAL))
		goto fail;
	c->src.kind = SOURCE_CONN;
	c->src.fd = fd;
	c->worker = w;
	/* Responses go out whole in one writev; Nagle would only hold back their tail. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	ev.data.ptr = c;
	if (epoll_ctl(w->epoll_fd, EPOLL_CTL_ADD, fd, &ev))
		goto fail;
	return;

fail:
	if (c)
		free(c->in.data);
	free(c);
	close(fd);
}

static void listener_accept(struct worker *w, struct source *listener)
{
	for (;;) {
		int fd = accept4(listener->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd >= 0) {
			conn_open(w, fd);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if ((errno == EMFILE || errno == ENFILE) && w->spare_fd >= 0) {
			/*
			 * Out of descriptors: take one connection and drop it, or the
			 * level-triggered listener would wake us forever.
			 */
			close(w->spare_fd);
			fd = accept(listener->fd, NULL, NULL);
			if (fd >= 0)
				close(fd);
			w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		}
		return;
	}
}

/* Marks the responses that fell due as writable, then writes them. */
static void timer_fire(struct worker *w)
{
	uint64_t expirations, now = now_ns();
	struct conn *c;

	if (read(w->timer.fd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
		fprintf(stderr, "swbackend: timerfd read: %s\n", strerror(errno));
	while (w->timer_head && w->timer_head->due_ns <= now) {
		struct response *r = w->timer_head;

		timer_remove(w, r);
		r->due_ns = 0;
		c = r->conn;
		if (!c->flush_pending) {
			c->flush_pending = true;
			c->next_flush = w->flush_list;
			w->flush_list = c;
		}
	}
	timer_arm(w);
	while ((c = w->flush_list)) {
		w->flush_list = c->next_flush;
		c->flush_pending = false;
		if (!c->dead)
			conn_pump(c);
	}
}

static void *worker_run(void *arg)
{
	struct epoll_event events[EVENT_BATCH];
	struct worker *w = arg;
	struct conn *c;

	for (;;) {
		int n = epoll_wait(w->epoll_fd, events, EVENT_BATCH, -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "swbackend: epoll_wait: %s\n", strerror(errno));
			exit(1);
		}
		for (int i = 0; i < n; i++) {
			struct source *s = events[i].data.ptr;

			switch (s->kind) {
			case SOURCE_LISTENER:
				listener_accept(w, s);
				break;
			case SOURCE_TIMER:
				timer_fire(w);
				break;
			case SOURCE_CONN:
				c = (struct conn *)s;
				if (!c->dead)
					conn_pump(c);
				break;
			}
		}
		while ((c = w->dead_list)) {
			w->dead_list = c->next_dead;
			free(c);
		}
	}
	return NULL;
}

/* Opens one SO_REUSEPORT listener on la; the descriptor or -errno. */
static int listener_open(const struct listen_addr *la)
{
	int fd, one = 1, err;

	fd = socket(la->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* Each thread has its own listener on the same address; the kernel spreads connections. */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)))
		goto fail;
	/* So that [::]:P and 0.0.0.0:P can both be given. */
	if (la->addr.ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)))
		goto fail;
	if (bind(fd, (const struct sockaddr *)&la->addr, la->addr_len) ||
	    listen(fd, LISTEN_BACKLOG))
		goto fail;
	return fd;

fail:
	err = -errno;
	close(fd);
	return err;
}

static int worker_init(struct worker *w, int index)
{
	struct epoll_event ev = {.events = EPOLLIN};

	w->timer.fd = -1;
	w->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (w->epoll_fd < 0)
		return -errno;
	w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (cfg.latency_ms) {
		w->timer.kind = SOURCE_TIMER;
		w->timer.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
		if (w->timer.fd < 0)
			return -errno;
		ev.data.ptr = &w->timer;
		if (epoll_ctl(w->epoll_fd, EPOLL_CTL_ADD, w->timer.fd, &ev))
			return -errno;
	}
	for (int i = 0; i < cfg.nr_listen; i++) {
		struct source *l = &w->listeners[i];
		int fd = listener_open(&cfg.listen[i]);
		char text[INET6_ADDRSTRLEN + 16];

		if (fd < 0) {
			format_addr(&cfg.listen[i].addr, text, sizeof(text));
			fprintf(stderr, "swbackend: cannot listen on %s: %s\n", text,
				strerror(-fd));
			return fd;
		}
		/* Port 0: the first thread's port becomes everyone's. */
		if (index == 0) {
			socklen_t len = sizeof(cfg.listen[i].addr);

			getsockname(fd, (struct sockaddr *)&cfg.listen[i].addr, &len);
		}
		l->kind = SOURCE_LISTENER;
		l->fd = fd;
		ev.data.ptr = l;
		if (epoll_ctl(w->epoll_fd, EPOLL_CTL_ADD, fd, &ev))
			return -errno;
	}
	return 0;
}

/* Thousands of connections need more descriptors than the usual soft limit of 1024. */
static void fd_limit_raise(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int main(int argc, char **argv)
{
	char json[256];
	sigset_t stop_signals;
	int sig, err;

	if (parse_args(argc, argv))
		return 2;
	/* A client that resets mid-response must cost an EPIPE, not the process. */
	signal(SIGPIPE, SIG_IGN);
	/* Blocked in every thread, taken by sigwait() in this one. */
	sigemptyset(&stop_signals);
	sigaddset(&stop_signals, SIGTERM);
	sigaddset(&stop_signals, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
	fd_limit_raise();

	if (response_templates_build()) {
		fprintf(stderr, "swbackend: out of memory for a %zu-byte body\n", cfg.body_len);
		return 1;
	}
	workers = calloc(cfg.threads, sizeof(*workers));
	if (!workers) {
		fprintf(stderr, "swbackend: out of memory\n");
		return 1;
	}
	for (int i = 0; i < cfg.threads; i++) {
		err = worker_init(&workers[i], i);
		if (err) {
			if (err != -EADDRINUSE && err != -EADDRNOTAVAIL && err != -EACCES)
				fprintf(stderr, "swbackend: thread setup: %s\n", strerror(-err));
			return 1;
		}
	}
	for (int i = 0; i < cfg.threads; i++) {
		err = pthread_create(&workers[i].thread, NULL, worker_run, &workers[i]);
		if (err) {
			fprintf(stderr, "swbackend: pthread_create: %s\n", strerror(err));
			return 1;
		}
	}
	for (int i = 0; i < cfg.nr_listen; i++) {
		char text[INET6_ADDRSTRLEN + 16];

		format_addr(&cfg.listen[i].addr, text, sizeof(text));
		fprintf(stderr, "swbackend %s listening on %s\n", cfg.name, text);
	}

	while (sigwait(&stop_signals, &sig))
		;
	stats_format(json, sizeof(json));
	printf("%s\n", json);
	fflush(stdout);
	return 0;
}
