/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The parts of swclient (tools/swclient.c): the configuration (options.c), the requests
 * it sends (request.c), reading the responses (response.c), the report (report.c) and
 * --raw (raw.c). One thread: the globals are cfg, set before any request, and results.
 */
#ifndef SW_TOOLS_CLIENT_H
#define SW_TOOLS_CLIENT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "../lib/bytes.h"
#include "../lib/http.h"

#define MAX_HEADERS	 64
#define MAX_BACKEND_NAME 255

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

extern struct config cfg;

/* A growable array of backend ids: the set of backends one shard key reached. */
struct id_set {
	int *ids;
	int len, cap;
};

struct backend {
	char *name;
	uint64_t responses;
};

/* Why a request ended without a response (the report's "error_kinds"). */
enum error_kind {
	ERR_CONNECT, /* the connection could not be opened */
	ERR_CLOSED,  /* the server closed before the response was whole */
	ERR_RESET,   /* a read or the connect failed (a reset, mostly) */
	ERR_TIMEOUT, /* no whole response within --timeout-ms */
	ERR_BAD,     /* a response that does not parse */
	ERR_KINDS
};

/* Everything the JSON report says. */
struct results {
	uint64_t requests;
	uint64_t responses;
	uint64_t errors;
	uint64_t error_kinds[ERR_KINDS];
	uint64_t shadow_seen;
	uint64_t status[1000];
	struct backend *backends;
	int nr_backends, backends_cap;
	struct id_set *keys; /* cfg.keys entries with --keys */
	uint64_t *latency_us;
	size_t nr_latency, latency_cap;
};

extern struct results results;

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

/* options.c */
int parse_args(int argc, char **argv);

/* request.c */
int request_templates_build(void);
int request_head_build(struct conn *c);

/* response.c */
int conn_parse_step(struct conn *c, size_t *pos);

/* report.c */
int backend_intern(const char *name);
int id_set_add(struct id_set *set, int id);
int latency_add(uint64_t us);
int report_print(void);

/* raw.c */
int raw_run(void);

#endif /* SW_TOOLS_CLIENT_H */
