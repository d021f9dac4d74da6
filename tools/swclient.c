// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * swclient: sends HTTP/1.1 requests and reports, as one JSON object, who answered them.
 *
 *   swclient --url http://ADDR:PORT/PATH [--requests N] [--connections C] [--keys K]
 *            [--key-prefix P] [--header 'Name: value' ...] [--method M] [--body-size B]
 *            [--chunked] [--duration-ms D] [--host HOST] [--no-keepalive] [--timeout-ms T]
 *            [--raw FILE]
 *
 * C keep-alive connections each carry one request at a time, driven by one epoll loop,
 * until N requests were sent or D milliseconds passed. Responses are parsed strictly
 * enough to stay in sync (Content-Length, chunked, or delimited by close), and counted by
 * status, by X-Backend and, with --keys, by shard key. With --raw the bytes of FILE go out
 * as they are and whatever comes back is printed, for tests of malformed input.
 *
 * Exit status: 0 when it ran (HTTP errors included), 1 when it could not, 2 on bad usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "lib/args.h"
#include "lib/bytes.h"
#include "lib/clock.h"
#include "lib/http.h"

#define MAX_HEADERS	64
#define MAX_CONNECTIONS 10000
#define EVENT_BATCH	256
/* A response head larger than this is taken as garbage rather than buffered forever. */
#define MAX_HEAD_BYTES	   65536
#define MAX_BACKEND_NAME   255
#define IN_BUF_INITIAL	   16384
#define BODY_CHUNK_BYTES   8192
#define DEFAULT_TIMEOUT_MS 5000
#define RAW_TIMEOUT_MS	   2000
#define FILLER		   "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ\n"

/* Set once from the command line; read-only afterwards. */
struct config {
	const char *url;
	struct sockaddr_storage addr;
	socklen_t addr_len;
	char *authority; /* as written in the URL; the default Host */
	const char *path;
	const char *host;
	long long requests; /* -1: no limit but the duration */
	long long connections;
	long long keys;
	const char *key_prefix;
	const char *headers[MAX_HEADERS];
	int nr_headers;
	bool user_host_header;
	const char *method;
	long long body_size; /* -1: no body */
	bool chunked;
	long long duration_ms;
	bool no_keepalive;
	long long timeout_ms;
	const char *raw_file;

	/* Built by request_templates_build(). */
	char *head_prefix; /* request line and every header but the shard key */
	size_t head_prefix_len;
	char *body; /* with its chunk framing when --chunked */
	size_t body_len;
	bool head_method;
};

static struct config cfg = {
	.requests = 100,
	.connections = 1,
	.key_prefix = "key-",
	.method = "GET",
	.body_size = -1,
	.timeout_ms = -1,
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: swclient --url http://ADDR:PORT/PATH [--requests N] [--connections C]\n"
		"                [--keys K] [--key-prefix P] [--header 'Name: value' ...]\n"
		"                [--method M] [--body-size B] [--chunked] [--duration-ms D]\n"
		"                [--host HOST] [--no-keepalive] [--timeout-ms T] [--raw FILE]\n");
}

/*
 * Splits "http://host:port/path" into cfg.addr, cfg.authority and cfg.path. The host is
 * an IPv4 address, [IPv6] or a name; the port defaults to 80. 0 or -EINVAL.
 */
static int url_parse(const char *url)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
	const char *authority, *slash, *host_start, *host_end, *port = "80";
	char host[256];
	size_t host_len;

	if (strncasecmp(url, "http://", 7))
		return -EINVAL;
	authority = url + 7;
	slash = strchr(authority, '/');
	cfg.path = slash ? slash : "/";
	cfg.authority = strndup(authority, slash ? (size_t)(slash - authority) : strlen(authority));
	if (!cfg.authority || !cfg.authority[0])
		return -EINVAL;

	if (cfg.authority[0] == '[') {
		host_start = cfg.authority + 1;
		host_end = strchr(host_start, ']');
		if (!host_end || (host_end[1] && host_end[1] != ':'))
			return -EINVAL;
		host_len = host_end - host_start;
		if (host_end[1] == ':')
			port = host_end + 2;
	} else {
		host_start = cfg.authority;
		host_end = strchr(host_start, ':');
		host_len = host_end ? (size_t)(host_end - host_start) : strlen(host_start);
		if (host_end)
			port = host_end + 1;
	}
	if (!host_len || host_len >= sizeof(host) || strlen(port) > 5)
		return -EINVAL;
	memcpy(host, host_start, host_len);
	host[host_len] = '\0';
	for (const char *p = port; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
	}
	if (!*port || atoi(port) > 65535)
		return -EINVAL;
	if (getaddrinfo(host, port, &hints, &res))
		return -EINVAL;
	memcpy(&cfg.addr, res->ai_addr, res->ai_addrlen);
	cfg.addr_len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/* "Name: value" with a valid name and no CR or LF; 0 or -EINVAL. */
static int header_arg_check(const char *header)
{
	const char *colon = strchr(header, ':');

	if (!colon || colon == header)
		return -EINVAL;
	for (const char *p = header; p < colon; p++) {
		if (!http_is_tchar(*p))
			return -EINVAL;
	}
	return http_field_value_valid(colon + 1, strlen(colon + 1)) ? 0 : -EINVAL;
}

/* Fills cfg from argv; 0 or -EINVAL after printing what was wrong. */
static int parse_args(int argc, char **argv)
{
	static const struct option options[] = {
		{"url", required_argument, NULL, 'u'},
		{"requests", required_argument, NULL, 'n'},
		{"connections", required_argument, NULL, 'c'},
		{"keys", required_argument, NULL, 'k'},
		{"key-prefix", required_argument, NULL, 'p'},
		{"header", required_argument, NULL, 'H'},
		{"method", required_argument, NULL, 'm'},
		{"body-size", required_argument, NULL, 'b'},
		{"chunked", no_argument, NULL, 'C'},
		{"duration-ms", required_argument, NULL, 'd'},
		{"host", required_argument, NULL, 'o'},
		{"no-keepalive", no_argument, NULL, 'K'},
		{"timeout-ms", required_argument, NULL, 't'},
		{"raw", required_argument, NULL, 'r'},
		{"help", no_argument, NULL, 'h'},
		{},
	};
	bool requests_given = false;
	const char *bad = NULL;
	int opt;

	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case 'u':
			cfg.url = optarg;
			break;
		case 'n':
			requests_given = true;
			if (parse_number(optarg, 1, 1LL << 40, &cfg.requests))
				bad = "--requests wants a number >= 1";
			break;
		case 'c':
			if (parse_number(optarg, 1, MAX_CONNECTIONS, &cfg.connections))
				bad = "--connections wants 1..10000";
			break;
		case 'k':
			if (parse_number(optarg, 1, 1 << 24, &cfg.keys))
				bad = "--keys wants 1..16777216";
			break;
		case 'p':
			cfg.key_prefix = optarg;
			if (!http_field_value_valid(optarg, strlen(optarg)) ||
			    strchr(optarg, '"') || strchr(optarg, '\\'))
				bad = "--key-prefix must be printable, without quotes or "
				      "backslashes";
			break;
		case 'H':
			if (cfg.nr_headers == MAX_HEADERS) {
				bad = "too many --header";
				break;
			}
			if (header_arg_check(optarg)) {
				bad = "--header wants 'Name: value'";
				break;
			}
			cfg.user_host_header |= !strncasecmp(optarg, "host:", 5);
			cfg.headers[cfg.nr_headers++] = optarg;
			break;
		case 'm':
			cfg.method = optarg;
			for (const char *p = optarg; *p; p++) {
				if (!http_is_tchar(*p))
					bad = "--method must be a token such as GET or POST";
			}
			if (!*optarg)
				bad = "--method must not be empty";
			break;
		case 'b':
			if (parse_number(optarg, 0, 1LL << 30, &cfg.body_size))
				bad = "--body-size wants 0..1073741824";
			break;
		case 'C':
			cfg.chunked = true;
			break;
		case 'd':
			if (parse_number(optarg, 1, 1LL << 40, &cfg.duration_ms))
				bad = "--duration-ms wants a number >= 1";
			break;
		case 'o':
			cfg.host = optarg;
			if (!*optarg || !http_field_value_valid(optarg, strlen(optarg)))
				bad = "--host wants a printable host name";
			break;
		case 'K':
			cfg.no_keepalive = true;
			break;
		case 't':
			if (parse_number(optarg, 1, 1LL << 40, &cfg.timeout_ms))
				bad = "--timeout-ms wants a number >= 1";
			break;
		case 'r':
			cfg.raw_file = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -EINVAL;
		}
		if (bad) {
			fprintf(stderr, "swclient: %s, not '%s'\n", bad, optarg);
			return -EINVAL;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "swclient: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	if (!cfg.url) {
		fprintf(stderr, "swclient: --url is required\n");
		usage(stderr);
		return -EINVAL;
	}
	if (url_parse(cfg.url)) {
		fprintf(stderr, "swclient: bad --url '%s': use http://127.0.0.1:PORT/PATH\n",
			cfg.url);
		return -EINVAL;
	}
	/* A duration alone means: as many requests as fit in it. */
	if (cfg.duration_ms && !requests_given)
		cfg.requests = -1;
	if (cfg.timeout_ms < 0)
		cfg.timeout_ms = cfg.raw_file ? RAW_TIMEOUT_MS : DEFAULT_TIMEOUT_MS;
	return 0;
}

/*
 * Builds what every request shares: the head up to where the shard key goes, and the
 * body with its framing. 0 or -ENOMEM.
 */
static int request_templates_build(void)
{
	size_t payload = cfg.body_size > 0 ? cfg.body_size : 0, filler_len = strlen(FILLER);
	char *head = NULL, *p;
	size_t head_len = 0;
	FILE *out;

	out = open_memstream(&head, &head_len);
	if (!out)
		return -ENOMEM;
	fprintf(out, "%s %s HTTP/1.1\r\n", cfg.method, cfg.path);
	if (!cfg.user_host_header)
		fprintf(out, "Host: %s\r\n", cfg.host ? cfg.host : cfg.authority);
	fprintf(out, "User-Agent: swclient\r\n");
	for (int i = 0; i < cfg.nr_headers; i++)
		fprintf(out, "%s\r\n", cfg.headers[i]);
	if (cfg.no_keepalive)
		fprintf(out, "Connection: close\r\n");
	if (cfg.chunked)
		fprintf(out, "Transfer-Encoding: chunked\r\n");
	else if (cfg.body_size >= 0)
		fprintf(out, "Content-Length: %zu\r\n", payload);
	if (fclose(out))
		return -ENOMEM;
	cfg.head_prefix = head;
	cfg.head_prefix_len = head_len;
	cfg.head_method = !strcmp(cfg.method, "HEAD");

	/* Chunks of BODY_CHUNK_BYTES, so a chunked body exercises more than one chunk. */
	cfg.body = malloc(payload + (payload / BODY_CHUNK_BYTES + 1) * 24 + 8);
	if (!cfg.body)
		return -ENOMEM;
	p = cfg.body;
	for (size_t done = 0; done < payload;) {
		size_t len = payload - done < BODY_CHUNK_BYTES ? payload - done : BODY_CHUNK_BYTES;

		if (cfg.chunked)
			p += sprintf(p, "%zx\r\n", len);
		for (size_t i = 0; i < len; i++)
			*p++ = FILLER[(done + i) % filler_len];
		if (cfg.chunked)
			p += sprintf(p, "\r\n");
		done += len;
	}
	if (cfg.chunked)
		p += sprintf(p, "0\r\n\r\n");
	cfg.body_len = p - cfg.body;
	return 0;
}

/* A growable array of backend ids: the set of backends one shard key reached. */
struct id_set {
	int *ids;
	int len, cap;
};

struct backend {
	char *name;
	uint64_t responses;
};

/* Everything the JSON report says. */
struct results {
	uint64_t requests;
	uint64_t responses;
	uint64_t errors;
	uint64_t shadow_seen;
	uint64_t status[1000];
	struct backend *backends;
	int nr_backends, backends_cap;
	struct id_set *keys; /* cfg.keys entries with --keys */
	uint64_t *latency_us;
	size_t nr_latency, latency_cap;
};

static struct results results;

/* The id of backend name, added on first sight; -ENOMEM. */
static int backend_intern(const char *name)
{
	struct backend *grown;

	for (int i = 0; i < results.nr_backends; i++) {
		if (!strcmp(results.backends[i].name, name))
			return i;
	}
	if (results.nr_backends == results.backends_cap) {
		int cap = results.backends_cap ? results.backends_cap * 2 : 16;

		grown = realloc(results.backends, cap * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		results.backends = grown;
		results.backends_cap = cap;
	}
	results.backends[results.nr_backends].name = strdup(name);
	if (!results.backends[results.nr_backends].name)
		return -ENOMEM;
	results.backends[results.nr_backends].responses = 0;
	return results.nr_backends++;
}

static int id_set_add(struct id_set *set, int id)
{
	for (int i = 0; i < set->len; i++) {
		if (set->ids[i] == id)
			return 0;
	}
	if (set->len == set->cap) {
		int cap = set->cap ? set->cap * 2 : 4;
		int *grown = realloc(set->ids, cap * sizeof(*grown));

		if (!grown)
			return -ENOMEM;
		set->ids = grown;
		set->cap = cap;
	}
	set->ids[set->len++] = id;
	return 0;
}

static int latency_add(uint64_t us)
{
	if (results.nr_latency == results.latency_cap) {
		size_t cap = results.latency_cap ? results.latency_cap * 2 : 1024;
		uint64_t *grown = realloc(results.latency_us, cap * sizeof(*grown));

		if (!grown)
			return -ENOMEM;
		results.latency_us = grown;
		results.latency_cap = cap;
	}
	results.latency_us[results.nr_latency++] = us;
	return 0;
}

enum resp_state {
	RESP_HEAD,
	RESP_BODY_LENGTH,
	RESP_BODY_TO_CLOSE,
	RESP_CHUNKED,
};

/* One client connection: at most one request in flight, reopened when the server closes. */
struct conn {
	int index;
	int fd; /* -1 between sockets */
	/* Bumped with each socket, so events of an earlier socket are told apart. */
	uint32_t generation;
	bool connecting;
	bool in_flight;
	bool write_failed; /* the server stopped reading; its answer may still be there */
	uint64_t request_index;
	uint64_t sent_ns;
	uint64_t deadline_ns;
	struct bytes out; /* the head of the request in flight; the body is cfg.body */
	size_t out_sent;  /* bytes of head and body written */

	struct bytes in;
	size_t head_scan; /* how far in.data was searched for the end of a head */
	enum resp_state state;
	uint64_t remaining; /* body bytes still to read */
	struct http_chunked chunked;
	/* The response being read. */
	int status;
	bool close_after;
	bool shadow;
	bool has_backend;
	char backend[MAX_BACKEND_NAME + 1];
};

static int epoll_fd;
static uint64_t next_request_index;
static uint64_t end_ns; /* 0 without --duration-ms */

/* "HTTP/1.x SSS[ reason]"; 0 or -EBADMSG. */
static int status_line_parse(struct conn *c, const char *line, size_t len, struct http_framing *fr)
{
	if (len < 12 || http_version_parse(line, &fr->http10) || line[8] != ' ')
		return -EBADMSG;
	c->status = 0;
	for (int i = 9; i < 12; i++) {
		if (line[i] < '0' || line[i] > '9')
			return -EBADMSG;
		c->status = c->status * 10 + (line[i] - '0');
	}
	if (c->status < 100 || (len > 12 && line[12] != ' '))
		return -EBADMSG;
	return http_field_value_valid(line + 12, len - 12) ? 0 : -EBADMSG;
}

/* Notes who answered from one field line of a response head; always 0. */
static int header_field_note(void *arg, const struct http_field *f, enum http_field_kind kind)
{
	struct conn *c = arg;
	size_t len = f->value_len;

	if (kind != HTTP_FIELD_OTHER)
		return 0;
	if (http_field_is(f, "x-backend")) {
		if (len > MAX_BACKEND_NAME)
			len = MAX_BACKEND_NAME;
		memcpy(c->backend, f->value, len);
		c->backend[len] = '\0';
		c->has_backend = true;
	} else if (http_field_is(f, "x-seen-shadow")) {
		c->shadow = true;
	}
	return 0;
}

/*
 * Acts on a complete response head p[0..len): decides how its body ends.
 * HTTP_STEP_ADVANCED, HTTP_STEP_DONE when there is no body, or -EBADMSG.
 */
static int response_head_parse(struct conn *c, const char *p, size_t len)
{
	const char *end = p + len, *line;
	struct http_framing fr = {};
	size_t line_len, used;
	int err;

	c->has_backend = false;
	c->shadow = false;
	used = http_line_take(p, end, &line, &line_len);
	if (!used)
		return -EBADMSG;
	err = status_line_parse(c, line, line_len, &fr);
	if (!err)
		err = http_fields_parse(p + used, end, &fr, header_field_note, c);
	if (err)
		return err;

	if (c->status < 200) {
		/* 100 Continue and friends precede the real response; 101 would end HTTP. */
		return c->status == 101 ? -EBADMSG : HTTP_STEP_ADVANCED;
	}
	c->close_after = !http_framing_keep_alive(&fr) || cfg.no_keepalive;
	/* RFC 9112 6.3: no body after HEAD, 204 and 304; then chunked; then Content-Length. */
	if (cfg.head_method || c->status == 204 || c->status == 304)
		return HTTP_STEP_DONE;
	if (fr.te_seen && fr.te_chunked_last) {
		c->state = RESP_CHUNKED;
		http_chunked_start(&c->chunked);
	} else if (fr.te_seen || !fr.cl_seen) {
		c->state = RESP_BODY_TO_CLOSE;
		c->close_after = true;
	} else if (fr.content_length) {
		c->state = RESP_BODY_LENGTH;
		c->remaining = fr.content_length;
	} else {
		return HTTP_STEP_DONE;
	}
	return HTTP_STEP_ADVANCED;
}

/*
 * Takes one step of the response at c->in.data + *pos. HTTP_STEP_ADVANCED, HTTP_STEP_DONE
 * when a response is complete, HTTP_STEP_MORE when more bytes are needed, or -EBADMSG.
 */
static int conn_parse_step(struct conn *c, size_t *pos)
{
	const char *p = c->in.data + *pos;
	size_t avail = c->in.len - *pos, used;
	int ret;

	switch (c->state) {
	case RESP_HEAD:
		used = http_head_end_find(p, avail, &c->head_scan);
		if (!used)
			return avail > MAX_HEAD_BYTES ? -EBADMSG : HTTP_STEP_MORE;
		c->head_scan = 0;
		ret = response_head_parse(c, p, used);
		if (ret > 0)
			*pos += used;
		return ret;

	case RESP_BODY_LENGTH:
		*pos += http_body_take(&c->remaining, avail);
		return c->remaining ? HTTP_STEP_MORE : HTTP_STEP_DONE;

	case RESP_BODY_TO_CLOSE:
		/* Only the server's FIN ends this body: see conn_eof(). */
		*pos += avail;
		return HTTP_STEP_MORE;

	case RESP_CHUNKED:
		return http_chunked_step(&c->chunked, p, avail, pos);
	}
	return -EBADMSG;
}

static void conn_socket_close(struct conn *c)
{
	if (c->fd < 0)
		return;
	close(c->fd);
	c->fd = -1;
	c->connecting = false;
	c->in.len = 0;
	c->head_scan = 0;
	c->state = RESP_HEAD;
}

/* Starts a non-blocking connect on a fresh socket; 0 or -errno. */
static int conn_connect(struct conn *c)
{
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET};
	int fd, one = 1, err;

	fd = socket(cfg.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* Requests go out whole; Nagle would only delay the body behind the head. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->connecting = false;
	if (connect(fd, (struct sockaddr *)&cfg.addr, cfg.addr_len)) {
		if (errno != EINPROGRESS)
			goto fail;
		c->connecting = true;
	}
	c->generation++;
	ev.data.u64 = (uint64_t)c->generation << 32 | (uint32_t)c->index;
	if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev))
		goto fail;
	c->fd = fd;
	return 0;

fail:
	err = -errno;
	close(fd);
	c->connecting = false;
	return err;
}

/* Writes what is left of the request in flight; 0 (also when the socket is full) or -errno. */
static int conn_write(struct conn *c)
{
	size_t total = c->out.len + cfg.body_len;

	while (c->out_sent < total) {
		struct iovec iov[2];
		int n = 0;
		ssize_t written;

		if (c->out_sent < c->out.len) {
			iov[n].iov_base = c->out.data + c->out_sent;
			iov[n].iov_len = c->out.len - c->out_sent;
			n++;
		}
		if (cfg.body_len) {
			size_t body_sent = c->out_sent > c->out.len ? c->out_sent - c->out.len : 0;

			iov[n].iov_base = cfg.body + body_sent;
			iov[n].iov_len = cfg.body_len - body_sent;
			n++;
		}
		written = writev(c->fd, iov, n);
		if (written < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? 0 : -errno;
		}
		c->out_sent += written;
	}
	return 0;
}

static bool more_requests(void)
{
	if (cfg.requests >= 0 && next_request_index >= (uint64_t)cfg.requests)
		return false;
	return !end_ns || now_ns() < end_ns;
}

/* Writes the head of request c->request_index into c->out; 0 or -ENOMEM. */
static int request_head_build(struct conn *c)
{
	size_t room = cfg.head_prefix_len + strlen(cfg.key_prefix) + 64;
	char *p;

	c->out.len = 0;
	if (bytes_reserve(&c->out, room))
		return -ENOMEM;
	p = c->out.data;
	memcpy(p, cfg.head_prefix, cfg.head_prefix_len);
	p += cfg.head_prefix_len;
	if (cfg.keys)
		p += sprintf(p, "X-SERVE-SHARD-KEY: %s%" PRIu64 "\r\n", cfg.key_prefix,
			     (uint64_t)(c->request_index % cfg.keys));
	p += sprintf(p, "\r\n");
	c->out.len = p - c->out.data;
	return 0;
}

/*
 * Puts the next request on c, opening a socket if c has none, or closes c when there is
 * nothing left to send. A request whose connection cannot even be opened is an error.
 * 0 or -ENOMEM.
 */
static int conn_next_request(struct conn *c)
{
	uint64_t now;

	for (;;) {
		if (!more_requests()) {
			conn_socket_close(c);
			return 0;
		}
		c->request_index = next_request_index++;
		results.requests++;
		if (c->fd >= 0 || conn_connect(c) == 0)
			break;
		results.errors++;
	}
	if (request_head_build(c))
		return -ENOMEM;
	now = now_ns();
	c->sent_ns = now;
	c->deadline_ns = now + cfg.timeout_ms * 1000000ULL;
	c->out_sent = 0;
	c->write_failed = false;
	c->in_flight = true;
	c->state = RESP_HEAD;
	if (!c->connecting && conn_write(c))
		c->write_failed = true;
	return 0;
}

/* Ends the request in flight without a response: an error; then goes on with the next. */
static int conn_fail(struct conn *c)
{
	if (c->in_flight) {
		results.errors++;
		c->in_flight = false;
	}
	conn_socket_close(c);
	return conn_next_request(c);
}

/* Counts the complete response of the request in flight, then sends the next. */
static int conn_response_done(struct conn *c)
{
	uint64_t latency_us = (now_ns() - c->sent_ns) / 1000;
	int id;

	results.responses++;
	results.status[c->status < 1000 ? c->status : 999]++;
	results.shadow_seen += c->shadow;
	if (latency_add(latency_us))
		return -ENOMEM;
	if (c->has_backend) {
		id = backend_intern(c->backend);
		if (id < 0)
			return id;
		results.backends[id].responses++;
		if (cfg.keys && id_set_add(&results.keys[c->request_index % cfg.keys], id))
			return -ENOMEM;
	}
	c->in_flight = false;
	c->state = RESP_HEAD;
	/* A request not fully written leaves the connection out of step: start over. */
	if (c->close_after || c->write_failed || c->out_sent < c->out.len + cfg.body_len)
		conn_socket_close(c);
	return conn_next_request(c);
}

/*
 * Parses what arrived for the request in flight. 0 when it needs more bytes or the
 * connection moved on, -EBADMSG for a malformed response, -ENOMEM.
 */
static int conn_parse(struct conn *c)
{
	uint32_t generation = c->generation;
	size_t pos = 0;
	int ret = 0;

	while (c->in_flight && c->generation == generation) {
		ret = conn_parse_step(c, &pos);
		if (ret == HTTP_STEP_DONE) {
			/* Bytes left over stay for the next response on this connection. */
			c->in.len -= pos;
			memmove(c->in.data, c->in.data + pos, c->in.len);
			pos = 0;
			ret = conn_response_done(c);
			if (ret)
				return ret;
			continue;
		}
		if (ret <= 0)
			break;
	}
	if (c->generation == generation) {
		c->in.len -= pos;
		memmove(c->in.data, c->in.data + pos, c->in.len);
	}
	return ret < 0 ? ret : 0;
}

/* The server closed: that ends a close-delimited response, and fails any other. */
static int conn_eof(struct conn *c)
{
	if (c->in_flight && c->state == RESP_BODY_TO_CLOSE) {
		conn_socket_close(c);
		return conn_response_done(c);
	}
	return conn_fail(c);
}

/*
 * Handles an event on c's current socket: finishes a connect, writes, reads and parses
 * until the socket has nothing more. With edge-triggered epoll it leaves only on EAGAIN
 * or when the connection moved to another socket. 0 or -ENOMEM.
 */
static int conn_pump(struct conn *c)
{
	uint32_t generation = c->generation;
	int err;

	if (c->connecting) {
		int so_error = 0;
		socklen_t len = sizeof(so_error);

		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &so_error, &len);
		if (so_error)
			return conn_fail(c);
		c->connecting = false;
	}
	while (c->fd >= 0 && c->generation == generation) {
		ssize_t n;

		if (c->in_flight && !c->write_failed && conn_write(c))
			c->write_failed = true;
		if (c->in.len == c->in.cap &&
		    bytes_reserve(&c->in, c->in.cap ? c->in.cap : IN_BUF_INITIAL))
			return -ENOMEM;
		n = read(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? 0 : conn_fail(c);
		}
		if (n == 0)
			return conn_eof(c);
		/* An open socket always has a request in flight: see conn_next_request(). */
		c->in.len += n;
		err = conn_parse(c);
		if (err == -EBADMSG)
			return conn_fail(c);
		if (err)
			return err;
	}
	return 0;
}

/* Fails the requests that waited longer than --timeout-ms; returns ms to the next deadline. */
static int deadlines_check(struct conn *conns, int *timeout_ms)
{
	uint64_t now = now_ns(), next = UINT64_MAX;
	int err;

	for (int i = 0; i < cfg.connections; i++) {
		struct conn *c = &conns[i];

		if (c->in_flight && now >= c->deadline_ns) {
			err = conn_fail(c);
			if (err)
				return err;
		}
		if (c->in_flight && c->deadline_ns < next)
			next = c->deadline_ns;
	}
	if (next == UINT64_MAX)
		*timeout_ms = -1;
	else
		*timeout_ms = next > now ? (next - now + 999999) / 1000000 : 0;
	return 0;
}

/* Runs every request to its end; 0, or -errno when the client itself failed. */
static int requests_run(void)
{
	struct epoll_event events[EVENT_BATCH];
	struct conn *conns;
	int timeout_ms, err = 0;

	conns = calloc(cfg.connections, sizeof(*conns));
	if (!conns)
		return -ENOMEM;
	for (int i = 0; i < cfg.connections; i++) {
		conns[i].index = i;
		conns[i].fd = -1;
	}
	epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (epoll_fd < 0) {
		err = -errno;
		goto cleanup;
	}
	if (cfg.keys) {
		results.keys = calloc(cfg.keys, sizeof(*results.keys));
		if (!results.keys) {
			err = -ENOMEM;
			goto cleanup;
		}
	}
	if (cfg.duration_ms)
		end_ns = now_ns() + cfg.duration_ms * 1000000ULL;

	for (int i = 0; i < cfg.connections && !err; i++)
		err = conn_next_request(&conns[i]);
	while (!err) {
		int n;

		err = deadlines_check(conns, &timeout_ms);
		/* Nothing in flight: every request was answered or failed. */
		if (err || timeout_ms < 0)
			break;
		n = epoll_wait(epoll_fd, events, EVENT_BATCH, timeout_ms);
		if (n < 0 && errno != EINTR) {
			err = -errno;
			break;
		}
		for (int i = 0; i < n && !err; i++) {
			struct conn *c = &conns[(uint32_t)events[i].data.u64];

			/* An event of a socket since closed is stale. */
			if (c->fd < 0 || c->generation != events[i].data.u64 >> 32)
				continue;
			err = conn_pump(c);
		}
	}

cleanup:
	for (int i = 0; i < cfg.connections; i++) {
		conn_socket_close(&conns[i]);
		free(conns[i].in.data);
		free(conns[i].out.data);
	}
	if (epoll_fd >= 0)
		close(epoll_fd);
	free(conns);
	return err;
}

static void json_string_print(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = *s;

		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20 || ch == 0x7f)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

static int backend_name_cmp(const void *a, const void *b)
{
	const struct backend *x = *(const struct backend *const *)a;
	const struct backend *y = *(const struct backend *const *)b;

	return strcmp(x->name, y->name);
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The nearest-rank percentile q of the sorted latencies. */
static uint64_t latency_percentile(double q)
{
	size_t rank;

	if (!results.nr_latency)
		return 0;
	rank = (size_t)(q * results.nr_latency + 0.999999);
	return results.latency_us[rank ? rank - 1 : 0];
}

/* Prints the report as one JSON object; backends and key sets sorted by name. 0 or -ENOMEM. */
static int report_print(void)
{
	struct backend **sorted = calloc(results.nr_backends + 1, sizeof(*sorted));
	const char *sep = "";

	if (!sorted)
		return -ENOMEM;
	for (int i = 0; i < results.nr_backends; i++)
		sorted[i] = &results.backends[i];
	if (results.nr_backends)
		qsort(sorted, results.nr_backends, sizeof(*sorted), backend_name_cmp);
	if (results.nr_latency)
		qsort(results.latency_us, results.nr_latency, sizeof(uint64_t), u64_cmp);

	printf("{\"requests\": %" PRIu64 ", \"responses\": %" PRIu64 ", \"errors\": %" PRIu64
	       ", \"status\": {",
	       results.requests, results.responses, results.errors);
	for (int code = 0; code < 1000; code++) {
		if (!results.status[code])
			continue;
		printf("%s\"%d\": %" PRIu64, sep, code, results.status[code]);
		sep = ", ";
	}
	printf("}, \"backends\": {");
	for (int i = 0; i < results.nr_backends; i++) {
		printf("%s", i ? ", " : "");
		json_string_print(sorted[i]->name);
		printf(": %" PRIu64, sorted[i]->responses);
	}
	printf("}");
	if (cfg.keys) {
		printf(", \"keys\": {");
		for (long long k = 0; k < cfg.keys; k++) {
			struct id_set *set = &results.keys[k];
			int printed = 0;

			printf("%s\"%s%lld\": [", k ? ", " : "", cfg.key_prefix, k);
			/* The sorted backend list, filtered by the key's set, is its sorted set. */
			for (int i = 0; i < results.nr_backends; i++) {
				for (int j = 0; j < set->len; j++) {
					if (&results.backends[set->ids[j]] != sorted[i])
						continue;
					printf("%s", printed++ ? ", " : "");
					json_string_print(sorted[i]->name);
				}
			}
			printf("]");
		}
		printf("}");
	}
	printf(", \"latency_us\": {\"p50\": %" PRIu64 ", \"p99\": %" PRIu64 ", \"max\": %" PRIu64
	       "}, \"shadow_seen\": %" PRIu64 "}\n",
	       latency_percentile(0.50), latency_percentile(0.99), latency_percentile(1.0),
	       results.shadow_seen);
	free(sorted);
	return fflush(stdout) ? -errno : 0;
}

/* Reads all of path into a new buffer; 0 or -errno. */
static int file_read(const char *path, char **data, size_t *len)
{
	struct bytes b = {};
	FILE *f = fopen(path, "rb");
	int err = 0;

	if (!f)
		return -errno;
	for (;;) {
		size_t n;

		err = bytes_reserve(&b, 65536);
		if (err)
			break;
		n = fread(b.data + b.len, 1, b.cap - b.len, f);
		b.len += n;
		if (n == 0) {
			err = ferror(f) ? -EIO : 0;
			break;
		}
	}
	fclose(f);
	if (err) {
		free(b.data);
		return err;
	}
	*data = b.data;
	*len = b.len;
	return 0;
}

/* Waits until fd is ready for events or the deadline passes; 1, 0 on timeout, -errno. */
static int fd_wait(int fd, short events, uint64_t deadline)
{
	struct pollfd pfd = {.fd = fd, .events = events};
	uint64_t now = now_ns();
	int n;

	if (now >= deadline)
		return 0;
	n = poll(&pfd, 1, (deadline - now + 999999) / 1000000);
	if (n < 0)
		return errno == EINTR ? 1 : -errno;
	return n;
}

/*
 * --raw: sends the file's bytes as they are on one connection and copies to stdout what
 * comes back until the server closes or the timeout passes. 0 or -errno.
 */
static int raw_run(void)
{
	uint64_t deadline = now_ns() + cfg.timeout_ms * 1000000ULL;
	int fd = -1, so_error = 0, err;
	socklen_t len = sizeof(so_error);
	size_t request_len = 0, sent = 0;
	char *request = NULL, buf[65536];

	err = file_read(cfg.raw_file, &request, &request_len);
	if (err) {
		fprintf(stderr, "swclient: cannot read %s: %s\n", cfg.raw_file, strerror(-err));
		return err;
	}
	fd = socket(cfg.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		err = -errno;
		goto cleanup;
	}
	if (connect(fd, (struct sockaddr *)&cfg.addr, cfg.addr_len) && errno != EINPROGRESS) {
		err = -errno;
		goto cleanup;
	}
	err = fd_wait(fd, POLLOUT, deadline);
	if (err <= 0) {
		err = err ? err : -ETIMEDOUT;
		goto cleanup;
	}
	getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len);
	if (so_error) {
		err = -so_error;
		goto cleanup;
	}

	/* A server that refuses early may stop reading: what it answered is still printed. */
	while (sent < request_len) {
		ssize_t n = write(fd, request + sent, request_len - sent);

		if (n >= 0) {
			sent += n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN || fd_wait(fd, POLLOUT, deadline) <= 0)
			break;
	}
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n > 0) {
			fwrite(buf, 1, n, stdout);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN && fd_wait(fd, POLLIN, deadline) > 0)
			continue;
		break;
	}
	err = fflush(stdout) ? -errno : 0;

cleanup:
	if (err && err != -EPIPE)
		fprintf(stderr, "swclient: %s: %s\n", cfg.url, strerror(-err));
	if (fd >= 0)
		close(fd);
	free(request);
	return err;
}

int main(int argc, char **argv)
{
	int err;

	if (parse_args(argc, argv))
		return 2;
	/* A server that closes mid-request must cost an EPIPE, not the process. */
	signal(SIGPIPE, SIG_IGN);
	if (cfg.raw_file)
		return raw_run() ? 1 : 0;

	err = request_templates_build();
	if (!err)
		err = requests_run();
	if (!err)
		err = report_print();
	if (err) {
		fprintf(stderr, "swclient: %s\n", strerror(-err));
		return 1;
	}
	return 0;
}
