/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The heads sockwayd writes: the request it sends upstream and the response it sends the
 * client, built from what http.c parsed. The framing is always sockwayd's own: the head it
 * writes, parsed again by http.c, frames the body exactly as the message it parsed
 * (tests/fuzz/fuzz_heads.c holds every head to that), whatever the peer's Connection field
 * named or how it spelled Content-Length.
 */
#ifndef SOCKWAY_HEADERS_H
#define SOCKWAY_HEADERS_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "http.h"

/* The credentials removed from shadow copies unless the operator keeps them. */
#define HEAD_SHADOW_CREDENTIALS                                                                    \
	{                                                                                          \
		"authorization", "proxy-authorization", "cookie"                                   \
	}

/* How to build a request head for an upstream. */
struct head_request_opts {
	const char *path; /* the path in normal form (decide.h) ... */
	size_t path_len;
	const char *query; /* ... and the query as the client sent it ("?..." or empty) */
	size_t query_len;
	const char *peer_ip;		/* the client's address, for X-Forwarded-For */
	bool shadow;			/* a shadow copy: marked, credentials removed */
	const char *const *shadow_keep; /* credential fields the operator keeps on shadows */
	unsigned nr_shadow_keep;
	const char *const *shadow_strip; /* more fields removed from shadow copies */
	unsigned nr_shadow_strip;
};

/*
 * Appends the request head to send upstream for req: the method, the normal path and the
 * query, HTTP/1.x; Host first (lower case, no trailing dot); the client's fields but the
 * hop-by-hop ones, Expect, X-Sockway-Shadow, the forwarding fields only a proxy may write
 * (X-Forwarded-Host/-Port/-Prefix/-Server/-Proto, X-Real-IP, True-Client-IP, X-Client-IP,
 * Forwarded), X-Original-URL and X-Rewrite-URL (which some servers take as the path, past
 * the route) and names with '_' (CGI and WSGI servers read them as '-': counted in
 * *underscores); Content-Length in its place, in canonical form; then sockwayd's own:
 * Forwarded with the client's address alone (if the client sent one), X-Forwarded-For
 * with the client's address appended, X-Forwarded-Proto, Transfer-Encoding: chunked for
 * a chunked body, and for HTTP/1.0 Connection: keep-alive. Returns 0 or -ENOMEM.
 */
int head_request_build(struct buf *b, const struct http_request *req,
		       const struct head_request_opts *o, unsigned *underscores);

/*
 * Appends the head sockwayd sends the client for an upstream's response head: "HTTP/1.1",
 * the status and reason, the fields but the hop-by-hop ones, Content-Length in canonical
 * form, Transfer-Encoding: chunked for a chunked body, Connection as the client
 * connection needs. The kernel passes on unchanged only heads this gives back as they were
 * (include/sockway/resphead.h). Returns 0 or -ENOMEM.
 */
int head_response_build(struct buf *b, const struct http_response *resp, bool client_keep,
			int version_minor);

#endif /* SOCKWAY_HEADERS_H */
