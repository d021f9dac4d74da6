/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * A strict HTTP/1.1 head parser for sockwayd (RFC 9112, RFC 9110), and a chunked-body
 * decoder. Nothing is copied or allocated: every pointer in the results points into the
 * caller's buffer, which need not be NUL-terminated. The parsers keep no state between calls;
 * when more bytes arrive the caller parses again from the start of the longer buffer, and the
 * "incomplete" answer costs one scan for the end of the head.
 *
 * Strictness is the point: anything two implementations could frame differently (request
 * smuggling, response splitting) is refused, and the caller closes the connection after
 * answering with the returned status.
 */
#ifndef SOCKWAY_HTTP_H
#define SOCKWAY_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "sockway/abi.h"

#define HTTP_MAX_HEADERS	128  /* headers array size; a larger max_headers is cut to it */
#define HTTP_MAX_CONN_OPTIONS	16   /* Connection tokens kept; more is a 400 (or 502) */
#define HTTP_MAX_EMPTY_LINES	4    /* CRLFs ignored before a request line (RFC 9112 2.2) */
#define HTTP_CHUNK_LINE_MAX	4096 /* chunk-size line with extensions, or trailer line, no CRLF */
#define HTTP_CHUNK_TRAILERS_MAX 32768 /* the whole trailer section of a chunked body */

struct http_limits {
	size_t max_request_line;  /* request or status line without CRLF; longer: 414 */
	size_t max_header_bytes;  /* whole head, empty lines and final CRLF CRLF included; 431 */
	unsigned int max_headers; /* header fields; more: 431 */
	__u64 max_body;		  /* request Content-Length above it: 413; chunked: caller's job */
};

/* 8192, 32768, 100 and 1 GiB. */
void http_limits_default(struct http_limits *lim);

/* One field line. Both strings point into the caller's buffer; the value has OWS trimmed. */
struct http_header {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
};

/* A token of the Connection header, pointing into the caller's buffer. */
struct http_token {
	const char *name;
	size_t len;
};

/* Every token of every Connection header: each names a hop-by-hop field (RFC 9110 7.6.1). */
struct http_conn_options {
	unsigned int nr;
	struct http_token opt[HTTP_MAX_CONN_OPTIONS];
};

enum http_body {
	HTTP_BODY_NONE,	   /* no body bytes follow the head */
	HTTP_BODY_LENGTH,  /* content_length bytes follow (possibly 0) */
	HTTP_BODY_CHUNKED, /* a chunked body follows: feed it to http_chunked_feed() */
	HTTP_BODY_CLOSE,   /* responses only: the body ends when the upstream closes */
};

struct http_request {
	const char *method; /* a token, case-sensitive */
	size_t method_len;
	__u32 method_bit;   /* its SW_METHOD_* bit, SW_METHOD_OTHER for any other token */
	const char *target; /* the request-target as sent */
	size_t target_len;
	/*
	 * origin-form: the target. absolute-form ("http://a/p?q"): "/p?q", or a static "/" when
	 * the path is empty. asterisk-form: "*", OPTIONS only.
	 */
	const char *path;
	size_t path_len;
	const char *authority; /* absolute-form's authority, else NULL */
	size_t authority_len;
	const char *host; /* the authority, else the Host value (maybe empty), else NULL */
	size_t host_len;
	int version_minor; /* HTTP/1.0 or HTTP/1.1 */
	enum http_body body;
	__u64 content_length;
	bool keep_alive;      /* 1.1 without "Connection: close"; 1.0 with "keep-alive" */
	bool expect_continue; /* "Expect: 100-continue" on 1.1; 1.0 ignores it (RFC 9110 10.1.1) */
	bool upgrade;	      /* 1.1 with "Connection: upgrade" and an Upgrade header */
	size_t head_len;      /* bytes of the head, leading empty lines and CRLF CRLF included */
	struct http_conn_options conn;
	unsigned int nr_headers;
	struct http_header headers[HTTP_MAX_HEADERS];
};

/*
 * Parses the request head at the start of buf[0..len). lim may be NULL for the defaults.
 * Returns the head length (> 0, also in req->head_len) for a whole valid head, 0 when more
 * bytes are needed, or a negative status for the caller to answer before closing:
 *   -400 malformed or ambiguous (see http.c), -413 Content-Length above max_body,
 *   -414 request line too long (already while it arrives), -417 an Expect other than
 *   100-continue, -431 head or header count over the limits, -501 CONNECT (no tunnels),
 *   -505 a version other than HTTP/1.0 and HTTP/1.1.
 * Bytes after the head (a body, a pipelined request) are not looked at.
 */
int http_parse_request(const char *buf, size_t len, const struct http_limits *lim,
		       struct http_request *req);

struct http_response {
	int status; /* 100..599 */
	int version_minor;
	const char *reason; /* may be empty */
	size_t reason_len;
	enum http_body body;
	__u64 content_length;
	bool keep_alive; /* false when the body ends at close */
	size_t head_len;
	struct http_conn_options conn;
	unsigned int nr_headers;
	struct http_header headers[HTTP_MAX_HEADERS];
};

/*
 * Parses an upstream response head, like http_parse_request(): head length, 0 for more, or
 * -502 for anything malformed or over lim (max_body does not apply to responses). The framing
 * rules are the request's: a Transfer-Encoding other than "chunked", or with Content-Length,
 * or on HTTP/1.0, is a 502 rather than a body read until close, since it cannot be re-framed.
 * request_was_head: the request was HEAD, so there is no body whatever the headers say.
 * A 1xx interim response comes back on its own (status and head_len): the caller forwards or
 * skips it and parses again after it for the final response.
 */
int http_parse_response(const char *buf, size_t len, const struct http_limits *lim,
			bool request_was_head, struct http_response *resp);

/*
 * A chunked body decoder (RFC 9112 7.1), and the encoder of its canonical form: the next
 * hop gets the body framed by sockwayd, never the peer's framing as it came (a size with
 * leading zeros, an extension or a trailer is where two parsers come to disagree).
 */
struct http_chunked {
	__u64 data_bytes; /* chunk data bytes so far: the caller checks its body limit on it */
	__u64 remaining;  /* data bytes left of the current chunk, or the size being read */
	__u32 line_len;	  /* bytes of the current chunk-size or trailer line */
	__u32 trailer_bytes;
	__u8 state;
	__u8 digits; /* hex digits of the size being read */
};

void http_chunked_init(struct http_chunked *c);

/*
 * Consumes the next bytes of a chunked body from buf[0..len): *consumed says how many.
 * *done becomes true once the last chunk, the trailers and the final CRLF are consumed; the
 * bytes after them (a pipelined message) are left alone. Returns 0, or -400 on bad framing:
 * a size of more than 16 hex digits, an extension or trailer line that breaks the grammar or
 * exceeds HTTP_CHUNK_LINE_MAX, trailers above HTTP_CHUNK_TRAILERS_MAX, no CRLF after the
 * data, a bare CR or LF; *consumed then stops at the offending byte, and the decoder stays
 * failed. For a response body the caller turns -400 into its 502.
 */
int http_chunked_feed(struct http_chunked *c, const char *buf, size_t len, size_t *consumed,
		      bool *done);

/*
 * Room http_chunked_recode may need beyond the input's length: a size line whose digits
 * came in an earlier call is written whole at its LF.
 */
#define HTTP_CHUNK_RECODE_SLACK 32

/*
 * http_chunked_feed that also writes the body, re-framed canonically, to out (room for
 * len + HTTP_CHUNK_RECODE_SLACK bytes); *out_len says how many. Each chunk goes as its
 * size in lower-case hex without leading zeros, CRLF, the data, CRLF; extensions are
 * dropped; the last chunk goes as "0" CRLF CRLF: trailers are dropped, since nothing
 * downstream may rely on fields that arrive after the head was checked.
 */
int http_chunked_recode(struct http_chunked *c, const char *buf, size_t len, size_t *consumed,
			bool *done, char *out, size_t *out_len);

/* The first header named name (case-insensitive, NUL-terminated), or NULL. */
const struct http_header *http_find_header(const struct http_header *h, unsigned int nr,
					   const char *name);

/*
 * Whether a header must not be forwarded (RFC 9110 7.6.1): Connection, Proxy-Connection,
 * Keep-Alive, TE, Transfer-Encoding, Upgrade, and every field that conn names. The caller
 * writes its own Connection header; Transfer-Encoding is dropped like the rest, and the caller
 * writes "Transfer-Encoding: chunked" back when it forwards a chunked body as-is.
 */
bool http_is_hop_by_hop(const struct http_conn_options *conn, const char *name, size_t len);

#endif /* SOCKWAY_HTTP_H */
