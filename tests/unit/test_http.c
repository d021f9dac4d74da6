// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * The HTTP/1.1 parser (user/helper/http.c): the heads sockwayd accepts and what it reads from
 * them, the status it answers to everything else, the chunked framing it forwards, and that
 * the answer for a head never depends on how its bytes were split across reads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http.h"
/* headtest.h sizes its escape and edit buffers by WORK_MAX; this test uses neither. */
#define WORK_MAX 256
#include "headtest.h"

static int parse_req(const char *s, size_t len, const struct http_limits *lim)
{
	struct http_request *req = malloc(sizeof(*req));
	char *buf = dup_exact(s, len);
	int ret;

	assert_non_null(req);
	ret = http_parse_request(buf, len, lim, req);
	free(buf);
	free(req);
	return ret;
}

static int parse_resp(const char *s, size_t len, bool head)
{
	struct http_response *resp = malloc(sizeof(*resp));
	char *buf = dup_exact(s, len);
	int ret;

	assert_non_null(resp);
	ret = http_parse_response(buf, len, NULL, head, resp);
	free(buf);
	free(resp);
	return ret;
}

/* A span of the buffer equals want; want NULL means no span at all. */
static void check_span(const char *p, size_t len, const char *want)
{
	if (!want) {
		assert_null(p);
		return;
	}
	assert_non_null(p);
	if (len != strlen(want) || memcmp(p, want, len)) {
		print_error("got \"%.*s\", want \"%s\"\n", (int)len, p, want);
		fail();
	}
}

static bool inside(const char *p, size_t n, const char *buf, size_t len)
{
	return p >= buf && n <= len && p - buf <= (ptrdiff_t)(len - n);
}

/* Every prefix of a head is "more, please", and the head alone parses to the same length. */
static void check_prefixes(const char *s, int head_len, bool response, bool head)
{
	size_t k;

	for (k = 0; k < (size_t)head_len; k++) {
		int ret = response ? parse_resp(s, k, head) : parse_req(s, k, NULL);

		if (ret != 0) {
			print_error("prefix of %zu bytes returned %d: \"%.*s\"\n", k, ret, (int)k,
				    s);
			fail();
		}
	}
	assert_int_equal(response ? parse_resp(s, k, head) : parse_req(s, k, NULL), head_len);
}

/* ---- requests that parse ---- */

static const struct good_request {
	struct bytes in;
	int head_len; /* 0: all of in */
	__u32 method;
	const char *path, *authority, *host;
	int minor;
	enum http_body body;
	__u64 content_length;
	bool keep_alive, expect_continue, upgrade;
	unsigned int nr_headers;
} good_requests[] = {
	{S("GET /index.html?x=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\nAccept: "
	   "*/*\r\n\r\n"),
	 0, SW_METHOD_GET, "/index.html?x=1", NULL, "example.com", 1, HTTP_BODY_NONE, 0, true,
	 false, false, 3},
	{S("POST /api HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"), 50, SW_METHOD_POST,
	 "/api", NULL, "a", 1, HTTP_BODY_LENGTH, 5, true, false, false, 2},
	{S("PUT /up HTTP/1.1\r\nhost: a\r\nTransfer-Encoding: \tChunked \r\n\r\n"), 0,
	 SW_METHOD_PUT, "/up", NULL, "a", 1, HTTP_BODY_CHUNKED, 0, true, false, false, 2},
	{S("GET / HTTP/1.0\r\n\r\n"), 0, SW_METHOD_GET, "/", NULL, NULL, 0, HTTP_BODY_NONE, 0,
	 false, false, false, 0},
	{S("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\nHost: a\r\n\r\n"), 0, SW_METHOD_GET, "/",
	 NULL, "a", 0, HTTP_BODY_NONE, 0, true, false, false, 2},
	{S("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"), 0, SW_METHOD_GET, "/", NULL,
	 "a", 1, HTTP_BODY_NONE, 0, false, false, false, 2},
	{S("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n"), 0, SW_METHOD_GET,
	 "/", NULL, "a", 1, HTTP_BODY_NONE, 0, false, false, false, 2},
	/* Pipelined: only the first head counts. */
	{S("GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n"), 28,
	 SW_METHOD_GET, "/1", NULL, "a", 1, HTTP_BODY_NONE, 0, true, false, false, 1},
	{S("GET http://Example.com:8080/p?q HTTP/1.1\r\nHost: example.COM:8080\r\n\r\n"), 0,
	 SW_METHOD_GET, "/p?q", "Example.com:8080", "Example.com:8080", 1, HTTP_BODY_NONE, 0, true,
	 false, false, 1},
	{S("HEAD HTTPS://a.b HTTP/1.1\r\nHost: a.b\r\n\r\n"), 0, SW_METHOD_HEAD, "/", "a.b", "a.b",
	 1, HTTP_BODY_NONE, 0, true, false, false, 1},
	{S("GET http://a/x HTTP/1.0\r\n\r\n"), 0, SW_METHOD_GET, "/x", "a", "a", 0, HTTP_BODY_NONE,
	 0, false, false, false, 0},
	{S("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), 0, SW_METHOD_OPTIONS, "*", NULL, "a", 1,
	 HTTP_BODY_NONE, 0, true, false, false, 1},
	{S("PUT /x HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 10\r\n\r\n"), 0,
	 SW_METHOD_PUT, "/x", NULL, "a", 1, HTTP_BODY_LENGTH, 10, true, true, false, 3},
	/* RFC 9110 10.1.1: 100-continue on HTTP/1.0 is ignored. */
	{S("PUT /x HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n"), 0,
	 SW_METHOD_PUT, "/x", NULL, NULL, 0, HTTP_BODY_LENGTH, 1, false, false, false, 2},
	{S("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Secret,,  Upgrade \r\n"
	   "Upgrade: websocket\r\nX-Secret: 1\r\n\r\n"),
	 0, SW_METHOD_GET, "/ws", NULL, "a", 1, HTTP_BODY_NONE, 0, true, false, true, 4},
	/* Upgrade on HTTP/1.0 is ignored (RFC 9110 7.8). */
	{S("GET /ws HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"), 0,
	 SW_METHOD_GET, "/ws", NULL, NULL, 0, HTTP_BODY_NONE, 0, false, false, false, 2},
	{S("GET / HTTP/1.1\r\nUpgrade: websocket\r\nHost: a\r\n\r\n"), 0, SW_METHOD_GET, "/", NULL,
	 "a", 1, HTTP_BODY_NONE, 0, true, false, false, 2},
	{S("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 0, SW_METHOD_GET, "/", NULL, "a", 1,
	 HTTP_BODY_NONE, 0, true, false, false, 1},
	{S("PROPFIND /d HTTP/1.1\r\nHost: a\r\n\r\n"), 0, SW_METHOD_OTHER, "/d", NULL, "a", 1,
	 HTTP_BODY_NONE, 0, true, false, false, 1},
	{S("get / HTTP/1.1\r\nHost: a\r\n\r\n"), 0, SW_METHOD_OTHER, "/", NULL, "a", 1,
	 HTTP_BODY_NONE, 0, true, false, false, 1},
	{S("DELETE /r HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"), 0, SW_METHOD_DELETE, "/r", NULL,
	 "[::1]:8080", 1, HTTP_BODY_NONE, 0, true, false, false, 1},
	{S("PATCH /r HTTP/1.1\r\nHost: [::ffff:10.0.0.1]\r\nContent-Length: 0\r\n\r\n"), 0,
	 SW_METHOD_PATCH, "/r", NULL, "[::ffff:10.0.0.1]", 1, HTTP_BODY_LENGTH, 0, true, false,
	 false, 2},
	{S("TRACE / HTTP/1.1\r\nHost: a%41b.c-d_e~f:\r\n\r\n"), 0, SW_METHOD_TRACE, "/", NULL,
	 "a%41b.c-d_e~f:", 1, HTTP_BODY_NONE, 0, true, false, false, 1},
	/* RFC 9112 3.2: an empty Host is what a client sends when it has no authority. */
	{S("GET / HTTP/1.1\r\nHost:\r\n\r\n"), 0, SW_METHOD_GET, "/", NULL, "", 1, HTTP_BODY_NONE,
	 0, true, false, false, 1},
	{S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:  007 \r\nX: caf\xc3\xa9\r\n\r\n"), 0,
	 SW_METHOD_POST, "/", NULL, "a", 1, HTTP_BODY_LENGTH, 7, true, false, false, 3},
	{S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1073741824\r\n\r\n"), 0, SW_METHOD_POST,
	 "/", NULL, "a", 1, HTTP_BODY_LENGTH, 1073741824, true, false, false, 2},
	{S("GET //a/./b/%7e?x=[1]&y=\"|{}\" HTTP/1.1\r\nHost: a\r\n\r\n"), 0, SW_METHOD_GET,
	 "//a/./b/%7e?x=[1]&y=\"|{}\"", NULL, "a", 1, HTTP_BODY_NONE, 0, true, false, false, 1},
};

static void test_request_good(void **state)
{
	struct http_request *req = malloc(sizeof(*req));
	size_t i, j;

	(void)state;
	assert_non_null(req);
	for (i = 0; i < ARRAY_SIZE(good_requests); i++) {
		const struct good_request *g = &good_requests[i];
		int head_len = g->head_len ? g->head_len : (int)g->in.len;
		char *buf = dup_exact(g->in.s, g->in.len);

		print_message("request %zu\n", i);
		assert_int_equal(http_parse_request(buf, g->in.len, NULL, req), head_len);
		assert_int_equal(req->head_len, head_len);
		assert_int_equal(req->method_bit, g->method);
		check_span(req->path, req->path_len, g->path);
		check_span(req->authority, req->authority_len, g->authority);
		check_span(req->host, req->host_len, g->host);
		assert_int_equal(req->version_minor, g->minor);
		assert_int_equal(req->body, g->body);
		assert_true(req->content_length == g->content_length);
		assert_int_equal(req->keep_alive, g->keep_alive);
		assert_int_equal(req->expect_continue, g->expect_continue);
		assert_int_equal(req->upgrade, g->upgrade);
		assert_int_equal(req->nr_headers, g->nr_headers);
		assert_true(inside(req->method, req->method_len, buf, head_len));
		assert_true(inside(req->target, req->target_len, buf, head_len));
		for (j = 0; j < req->nr_headers; j++) {
			assert_true(inside(req->headers[j].name, req->headers[j].name_len, buf,
					   head_len));
			assert_true(inside(req->headers[j].value, req->headers[j].value_len, buf,
					   head_len));
		}
		free(buf);
		check_prefixes(g->in.s, head_len, false, false);
	}
	free(req);
}

static void test_request_fields(void **state)
{
	static const char in[] = "GET /x HTTP/1.1\r\nHost:a\r\nX-A: \t v a l \t \r\nX-Empty:\r\n"
				 "X-Sp:   \r\nx-a: second\r\n\r\n";
	struct http_request *req = malloc(sizeof(*req));
	const struct http_header *h;

	(void)state;
	assert_non_null(req);
	assert_int_equal(http_parse_request(in, sizeof(in) - 1, NULL, req), sizeof(in) - 1);
	check_span(req->method, req->method_len, "GET");
	check_span(req->target, req->target_len, "/x");
	assert_int_equal(req->nr_headers, 5);
	check_span(req->headers[0].name, req->headers[0].name_len, "Host");
	check_span(req->headers[0].value, req->headers[0].value_len, "a");
	h = http_find_header(req->headers, req->nr_headers, "x-a");
	assert_ptr_equal(h, &req->headers[1]);
	check_span(h->value, h->value_len, "v a l");
	h = http_find_header(req->headers, req->nr_headers, "X-EMPTY");
	assert_non_null(h);
	assert_int_equal(h->value_len, 0);
	h = http_find_header(req->headers, req->nr_headers, "x-sp");
	assert_non_null(h);
	assert_int_equal(h->value_len, 0);
	assert_null(http_find_header(req->headers, req->nr_headers, "x-"));
	assert_null(http_find_header(req->headers, req->nr_headers, "x-a2"));
	free(req);
}

static void test_hop_by_hop(void **state)
{
	static const char in[] = "GET / HTTP/1.1\r\nHost: a\r\nConnection: X-Secret , x-other\r\n"
				 "Connection: close\r\nX-Secret: 1\r\n\r\n";
	static const char *const hop[] = {
		"Connection",	     "proxy-connection", "Keep-Alive", "TE",
		"Transfer-Encoding", "UPGRADE",		 "x-secret",   "X-Other",
	};
	static const char *const end_to_end[] = {
		"Host", "Trailer", "Proxy-Authenticate", "Content-Length", "X-Secrets", "X", "T",
	};
	struct http_request *req = malloc(sizeof(*req));
	size_t i;

	(void)state;
	assert_non_null(req);
	assert_int_equal(http_parse_request(in, sizeof(in) - 1, NULL, req), sizeof(in) - 1);
	assert_false(req->keep_alive);
	assert_int_equal(req->conn.nr, 3);
	for (i = 0; i < ARRAY_SIZE(hop); i++)
		assert_true(http_is_hop_by_hop(&req->conn, hop[i], strlen(hop[i])));
	for (i = 0; i < ARRAY_SIZE(end_to_end); i++)
		assert_false(http_is_hop_by_hop(&req->conn, end_to_end[i], strlen(end_to_end[i])));
	/* Without a request, only the fixed list. */
	assert_true(http_is_hop_by_hop(NULL, "te", 2));
	assert_false(http_is_hop_by_hop(NULL, "x-secret", 8));
	free(req);
}

/* ---- requests that are refused, with the status sockwayd answers ---- */

#define HOST "Host: a\r\n"
static const struct bad_request {
	struct bytes in;
	int status;
} bad_requests[] = {
	/* Framing that two hops could read differently. */
	{S("POST / HTTP/1.1\r\n" HOST "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
	 -400},
	{S("POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"),
	 -400},
	{S("POST / HTTP/1.1\r\n" HOST "Content-Length: 5\r\nContent-Length: 5\r\n\r\n"), -400},
	{S("POST / HTTP/1.1\r\n" HOST "Content-Length: 5\r\ncontent-length: 6\r\n\r\n"), -400},
	{S("POST / HTTP/1.1\r\n" HOST "Content-Length:\r\n\r\n"), -400},
	{S("POST / HTTP/1.1\r\n" HOST "Content-Length: abc\r\n\r\n"), -400},
	{S("POST / HTTP/1.1\r\n" HOST "Content-Length: +5\r\n\r\n"), -400},
	{S("POST / HTTP/1.1\r\n" HOST "Content-Length: -5\r\n\r\n"), -400},
	{S("POST / HTTP/1.1\r\n" HOST "Content-Length: 5x\r\n\r\n"), -400},
	{S("POST / HTTP/1.1\r\n" HOST "Content-Length: x5\r\n\r\n"), -400},
	{S("POST / HTTP/1.1\r\n" HOST "Content-Length: 5 5\r\n\r\n"), -400},
	{S("POST / HTTP/1.1\r\n" HOST "Content-Length: 0x10\r\n\r\n"), -400},
	{S("POST / HTTP/1.1\r\n" HOST "Content-Length: 5,5\r\n\r\n"), -400},
	/* A Connection token naming a field sockwayd frames or routes by: a hop obeying it
	 * would drop Content-Length and read the body as a second request. */
	{S("POST /public HTTP/1.1\r\nHost: x\r\nConnection: content-length\r\n"
	   "Content-Length: 72\r\n\r\n"),
	 -400},
	{S("POST / HTTP/1.1\r\n" HOST
	   "Connection: close, Content-Length\r\nContent-Length: 1\r\n\r\n"),
	 -400},
	{S("POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked\r\nConnection: TRANSFER-ENCODING"
	   "\r\n\r\n"),
	 -400},
	{S("GET / HTTP/1.1\r\n" HOST "Connection: host\r\n\r\n"), -400},
	{S("GET / HTTP/1.1\r\n" HOST "Connection: keep-alive\r\nConnection: x, Host\r\n\r\n"),
	 -400},
	{S("POST / HTTP/1.1\r\n" HOST "Content-Length: 5, 5\r\n\r\n"), -400},
	{S("POST / HTTP/1.1\r\n" HOST "Content-Length: 18446744073709551616\r\n\r\n"), -400},
	{S("POST / HTTP/1.1\r\n" HOST "Content-Length: 99999999999999999999999\r\n\r\n"), -400},
	{S("POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: gzip, chunked\r\n\r\n"), -400},
	{S("POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked, gzip\r\n\r\n"), -400},
	{S("POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: identity\r\n\r\n"), -400},
	{S("POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: xchunked\r\n\r\n"), -400},
	{S("POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked,\r\n\r\n"), -400},
	{S("POST / HTTP/1.1\r\n" HOST "Transfer-Encoding:\r\n\r\n"), -400},
	{S("POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked\r\n"
	   "Transfer-Encoding: chunked\r\n\r\n"),
	 -400},
	{S("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), -400},
	/* Line ends and field syntax. */
	{S("GET / HTTP/1.1\r\n" HOST "X: a\rb\r\n\r\n"), -400},
	{S("GET / HTTP/1.1\r\n" HOST "X: a\r\r\n\r\n"), -400},
	{S("GET / HTTP/1.1\r\n" HOST "X: a\rxY: b\r\n\r\n"), -400},
	{S("GET / HTTP/1.1\rHost: a\r\n\r\n"), -400},
	{S("GET / HTTP/1.1\nHost: a\n\n"), -400},
	{S("GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n"), -400},
	{S("GET / HTTP/1.1\r\n" HOST "X: b\n\r\n\r\n"), -400},
	{S("GET / HTTP/1.1\r\n" HOST "X: b\r\n c\r\n\r\n"), -400},
	{S("GET / HTTP/1.1\r\n" HOST "X: b\r\n\tc\r\n\r\n"), -400},
	{S("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), -400},
	{S("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), -400},
	{S("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n"), -400},
	{S("GET / HTTP/1.1\r\n" HOST ": a\r\n\r\n"), -400},
	{S("GET / HTTP/1.1\r\n" HOST "X(a): b\r\n\r\n"), -400},
	{S("GET / HTTP/1.1\r\n" HOST "X@: b\r\n\r\n"), -400},
	{S("GET / HTTP/1.1\r\n" HOST "X\x80: b\r\n\r\n"), -400},
	{S("GET / HTTP/1.1\r\n" HOST "Xb\r\n\r\n"), -400},
	{S("GET / HTTP/1.1\r\n" HOST "X: a\0b\r\n\r\n"), -400},
	{S("GET / HTTP/1.1\r\n" HOST "X: a\x01\r\n\r\n"), -400},
	{S("GET / HTTP/1.1\r\n" HOST "X: a\x1f\r\n\r\n"), -400},
	{S("GET / HTTP/1.1\r\n" HOST "X: a\x7f\r\n\r\n"), -400},
	/* The request line. */
	{S("GET  / HTTP/1.1\r\n" HOST "\r\n"), -400},
	{S("GET /  HTTP/1.1\r\n" HOST "\r\n"), -400},
	{S("GET / HTTP/1.1 \r\n" HOST "\r\n"), -400},
	{S(" GET / HTTP/1.1\r\n" HOST "\r\n"), -400},
	{S("GET\t/ HTTP/1.1\r\n" HOST "\r\n"), -400},
	{S("GET /\tHTTP/1.1\r\n" HOST "\r\n"), -400},
	{S("GET / http/1.1\r\n" HOST "\r\n"), -400},
	{S("GET / HTTPS/1.1\r\n" HOST "\r\n"), -400},
	{S("GET / HTTP/1.10\r\n" HOST "\r\n"), -400},
	{S("GET / HTTP/11.1\r\n" HOST "\r\n"), -400},
	{S("GET / HTTP/a.b\r\n" HOST "\r\n"), -400},
	{S("GET /\r\n" HOST "\r\n"), -400},
	{S("GET\r\n" HOST "\r\n"), -400},
	{S("\r\n" HOST "\r\n"), -400},
	{S("G(T / HTTP/1.1\r\n" HOST "\r\n"), -400},
	{S("GE\x80 / HTTP/1.1\r\n" HOST "\r\n"), -400},
	{S("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), -400},
	{S("GET /a\x01 HTTP/1.1\r\n" HOST "\r\n"), -400},
	{S("GET /a\0 HTTP/1.1\r\n" HOST "\r\n"), -400},
	{S("GET /caf\xc3\xa9 HTTP/1.1\r\n" HOST "\r\n"), -400},
	{S("GET /\x7f HTTP/1.1\r\n" HOST "\r\n"), -400},
	{S("GET /a#frag HTTP/1.1\r\n" HOST "\r\n"), -400},
	{S("GET index.html HTTP/1.1\r\n" HOST "\r\n"), -400},
	{S("GET ftp://a/b HTTP/1.1\r\n" HOST "\r\n"), -400},
	{S("GET a.com:80 HTTP/1.1\r\nHost: a.com:80\r\n\r\n"), -400},
	{S("GET * HTTP/1.1\r\n" HOST "\r\n"), -400},
	{S("OPTIONS *a HTTP/1.1\r\n" HOST "\r\n"), -400},
	{S("GET http:///x HTTP/1.1\r\n" HOST "\r\n"), -400},
	{S("GET http:// HTTP/1.1\r\n" HOST "\r\n"), -400},
	{S("GET http://u@a/ HTTP/1.1\r\n" HOST "\r\n"), -400},
	{S("GET http://a?q HTTP/1.1\r\n" HOST "\r\n"), -400},
	{S("GET http://a b/ HTTP/1.1\r\n" HOST "\r\n"), -400},
	{S("GET http://a%/ HTTP/1.1\r\nHost: a%\r\n\r\n"), -400},
	/* Host. */
	{S("GET / HTTP/1.1\r\n\r\n"), -400},
	{S("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), -400},
	{S("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n"), -400},
	{S("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"), -400},
	{S("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), -400},
	{S("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), -400},
	{S("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n"), -400},
	{S("GET / HTTP/1.1\r\nHost: a,b\r\n\r\n"), -400},
	{S("GET / HTTP/1.0\r\nHost: a\"b\r\n\r\n"), -400},
	{S("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n"), -400},
	{S("GET / HTTP/1.1\r\nHost: []\r\n\r\n"), -400},
	{S("GET / HTTP/1.1\r\nHost: [::g]\r\n\r\n"), -400},
	{S("GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n"), -400},
	{S("GET / HTTP/1.1\r\nHost: a:80x\r\n\r\n"), -400},
	{S("GET / HTTP/1.1\r\nHost: a:123456\r\n\r\n"), -400},
	{S("GET / HTTP/1.1\r\nHost: a:1:2\r\n\r\n"), -400},
	{S("GET / HTTP/1.1\r\nHost: :80\r\n\r\n"), -400},
	{S("GET / HTTP/1.1\r\nHost: a%4\r\n\r\n"), -400},
	{S("GET / HTTP/1.1\r\nHost: a%4g\r\n\r\n"), -400},
	{S("GET / HTTP/1.1\r\nHost: caf\xc3\xa9\r\n\r\n"), -400},
	{S("GET http://a/ HTTP/1.1\r\nHost: b\r\n\r\n"), -400},
	{S("GET http://a:80/ HTTP/1.1\r\nHost: a\r\n\r\n"), -400},
	{S("GET http://a/ HTTP/1.1\r\nHost:\r\n\r\n"), -400},
	{S("GET http://a/ HTTP/1.1\r\n\r\n"), -400},
	/* Empty lines before the request line: a few are skipped, not five. */
	{S("\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n" HOST "\r\n"), -400},
	{S("\rGET / HTTP/1.1\r\n" HOST "\r\n"), -400},
	{S("\nGET / HTTP/1.1\r\n" HOST "\r\n"), -400},
	/* Connection tokens. */
	{S("GET / HTTP/1.1\r\n" HOST "Connection: a b\r\n\r\n"), -400},
	{S("GET / HTTP/1.1\r\n" HOST "Connection: a;b\r\n\r\n"), -400},
	{S("GET / HTTP/1.1\r\n" HOST "Connection: a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q\r\n\r\n"),
	 -400},
	/* Expect, CONNECT, versions, body limit. */
	{S("PUT / HTTP/1.1\r\n" HOST "Expect: something\r\n\r\n"), -417},
	{S("PUT / HTTP/1.1\r\n" HOST "Expect: 100-continue, foo\r\n\r\n"), -417},
	{S("PUT / HTTP/1.1\r\n" HOST "Expect:\r\n\r\n"), -417},
	{S("PUT / HTTP/1.0\r\nExpect: 200-ok\r\n\r\n"), -417},
	{S("CONNECT a.com:443 HTTP/1.1\r\nHost: a.com:443\r\n\r\n"), -501},
	{S("CONNECT / HTTP/1.1\r\n" HOST "\r\n"), -501},
	{S("GET / HTTP/2.0\r\n" HOST "\r\n"), -505},
	{S("GET / HTTP/1.2\r\n" HOST "\r\n"), -505},
	{S("GET / HTTP/0.9\r\n" HOST "\r\n"), -505},
	{S("GET / HTTP/3.1\r\n" HOST "\r\n"), -505},
	{S("POST / HTTP/1.1\r\n" HOST "Content-Length: 1073741825\r\n\r\n"), -413},
	{S("POST / HTTP/1.1\r\n" HOST "Content-Length: 18446744073709551615\r\n\r\n"), -413},
};

static void test_request_bad(void **state)
{
	size_t i, k;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(bad_requests); i++) {
		const struct bad_request *b = &bad_requests[i];
		int ret = parse_req(b->in.s, b->in.len, NULL);

		if (ret != b->status) {
			print_error("request %zu \"%.*s\": got %d, want %d\n", i, (int)b->in.len,
				    b->in.s, ret, b->status);
			fail();
		}
		/* Its prefixes are incomplete or already refused the same way, never accepted. */
		for (k = 0; k < b->in.len; k++) {
			ret = parse_req(b->in.s, k, NULL);
			if (ret != 0 && ret != b->status) {
				print_error("request %zu, %zu bytes: got %d\n", i, k, ret);
				fail();
			}
		}
	}
}

/* A refusal that needs no more bytes comes at once: a slow client cannot hold it off. */
static void test_request_early(void **state)
{
	static const struct bad_request early[] = {
		{S("\x16\x03"), -400},
		{S("GET /\x01"), -400},
		{S("GET / HTTP/2.0\r"), -505},
		{S("GET / HTTP/1.1\n"), -400},
		{S("CONNECT a:443 HTTP/1.1\r\n"), -501},
		{S("GET a.com HTTP/1.1\r\n"), -400},
		{S("\r\n\r\n\r\n\r\n\r\n"), -400},
	};
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(early); i++)
		assert_int_equal(parse_req(early[i].in.s, early[i].in.len, NULL), early[i].status);
	assert_int_equal(parse_req("\r\n\r\n\r\n\r\n", 8, NULL), 0);
	assert_int_equal(parse_req("GET / HTTP/1.1\r\nHost: a\n", 24, NULL), 0);
}

/* ---- limits ---- */

/* "GET /aaa... HTTP/1.1\r\nHost: a\r\n\r\n" whose request line is line_len bytes long. */
static char *request_with_line(size_t line_len, size_t *len)
{
	static const char tail[] = " HTTP/1.1\r\nHost: a\r\n\r\n";
	char *buf = malloc(line_len + sizeof(tail));

	assert_non_null(buf);
	memcpy(buf, "GET /", 5);
	memset(buf + 5, 'a', line_len - 5 - 9);
	memcpy(buf + line_len - 9, tail, sizeof(tail));
	*len = line_len + sizeof(tail) - 1 - 9;
	return buf;
}

static void test_limit_request_line(void **state)
{
	struct http_limits lim;
	size_t len;
	char *buf;

	(void)state;
	http_limits_default(&lim);
	assert_int_equal(lim.max_request_line, 8192);
	buf = request_with_line(8192, &len);
	assert_int_equal(parse_req(buf, len, NULL), (int)len);
	free(buf);

	buf = request_with_line(8193, &len);
	assert_int_equal(parse_req(buf, len, NULL), -414);
	/* No CR yet: 8192 bytes may still become a valid line, 8193 cannot. */
	assert_int_equal(parse_req(buf, 8192, NULL), 0);
	assert_int_equal(parse_req(buf, 8193, NULL), -414);
	free(buf);

	lim.max_request_line = 20;
	assert_int_equal(parse_req("GET /123456 HTTP/1.1\r\n" HOST "\r\n", 33, &lim), 33);
	assert_int_equal(parse_req("GET /1234567 HTTP/1.1\r\n" HOST "\r\n", 34, &lim), -414);
	assert_int_equal(parse_req("GET /1234567 HTTP/1.", 20, &lim), 0);
	assert_int_equal(parse_req("GET /1234567 HTTP/1.1", 21, &lim), -414);
	assert_int_equal(parse_req("GET /1234567890123456", 21, &lim), -414);
	/* Leading empty lines do not count against the line. */
	assert_int_equal(parse_req("\r\nGET /123456 HTTP/1.1\r\n" HOST "\r\n", 35, &lim), 35);
}

/* A request whose head is exactly head_len bytes, padded in one "X: aaa" field. */
static char *request_with_head(size_t head_len)
{
	static const char start[] = "GET / HTTP/1.1\r\nHost: a\r\nX: ";
	char *buf = malloc(head_len);

	assert_non_null(buf);
	memcpy(buf, start, sizeof(start) - 1);
	memset(buf + sizeof(start) - 1, 'a', head_len - (sizeof(start) - 1) - 4);
	memcpy(buf + head_len - 4, "\r\n\r\n", 4);
	return buf;
}

static void test_limit_head(void **state)
{
	char *buf;

	(void)state;
	buf = request_with_head(32768);
	assert_int_equal(parse_req(buf, 32768, NULL), 32768);
	free(buf);

	buf = request_with_head(32769);
	assert_int_equal(parse_req(buf, 32769, NULL), -431);
	/* Before the end arrives: 32767 bytes may still end in time, 32768 cannot. */
	assert_int_equal(parse_req(buf, 32767, NULL), 0);
	assert_int_equal(parse_req(buf, 32768, NULL), -431);
	free(buf);
}

/* A head of start_line, Host and nr "Xn: v" fields. */
static char *head_with_fields(const char *start_line, unsigned int nr, size_t *len)
{
	char *buf = malloc(64 + nr * 16);
	size_t n = 0;
	unsigned int i;

	assert_non_null(buf);
	n += sprintf(buf, "%s\r\nHost: a\r\n", start_line);
	for (i = 0; i < nr; i++)
		n += sprintf(buf + n, "X%u: v\r\n", i);
	n += sprintf(buf + n, "\r\n");
	*len = n;
	return buf;
}

static void test_limit_headers(void **state)
{
	struct http_limits lim;
	size_t len;
	char *buf;

	(void)state;
	buf = head_with_fields("GET / HTTP/1.1", 99, &len);
	assert_int_equal(parse_req(buf, len, NULL), (int)len);
	free(buf);
	buf = head_with_fields("GET / HTTP/1.1", 100, &len);
	assert_int_equal(parse_req(buf, len, NULL), -431);
	free(buf);

	/* Above HTTP_MAX_HEADERS, the array size wins. */
	http_limits_default(&lim);
	lim.max_headers = 1000;
	buf = head_with_fields("GET / HTTP/1.1", HTTP_MAX_HEADERS - 1, &len);
	assert_int_equal(parse_req(buf, len, &lim), (int)len);
	free(buf);
	buf = head_with_fields("GET / HTTP/1.1", HTTP_MAX_HEADERS, &len);
	assert_int_equal(parse_req(buf, len, &lim), -431);
	free(buf);

	lim.max_headers = 2;
	buf = head_with_fields("GET / HTTP/1.1", 1, &len);
	assert_int_equal(parse_req(buf, len, &lim), (int)len);
	free(buf);
	buf = head_with_fields("GET / HTTP/1.1", 2, &len);
	assert_int_equal(parse_req(buf, len, &lim), -431);
	free(buf);
}

static void test_limit_body(void **state)
{
	static const char ten[] = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n";
	static const char eleven[] = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n";
	static const char chunked[] =
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
	struct http_limits lim;

	(void)state;
	http_limits_default(&lim);
	lim.max_body = 10;
	assert_int_equal(parse_req(ten, sizeof(ten) - 1, &lim), sizeof(ten) - 1);
	assert_int_equal(parse_req(eleven, sizeof(eleven) - 1, &lim), -413);
	/* A chunked body has no length yet: the caller counts it as it streams. */
	assert_int_equal(parse_req(chunked, sizeof(chunked) - 1, &lim), sizeof(chunked) - 1);
}

/* ---- responses ---- */

static const struct good_response {
	struct bytes in;
	bool head;
	int head_len; /* 0: all of in */
	int status;
	const char *reason;
	enum http_body body;
	__u64 content_length;
	bool keep_alive;
} good_responses[] = {
	{S("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"), false, 38, 200, "OK",
	 HTTP_BODY_LENGTH, 5, true},
	{S("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"), false, 0, 204, "No Content",
	 HTTP_BODY_NONE, 5, true},
	{S("HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n"), false, 0, 304,
	 "Not Modified", HTTP_BODY_NONE, 100, true},
	{S("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"), true, 0, 200, "OK", HTTP_BODY_NONE,
	 100, true},
	{S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), true, 0, 200, "OK",
	 HTTP_BODY_NONE, 0, true},
	{S("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"), false, 25, 100, "Continue",
	 HTTP_BODY_NONE, 0, true},
	{S("HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n"), false,
	 0, 101, "Switching Protocols", HTTP_BODY_NONE, 0, true},
	{S("HTTP/1.1 200 OK\r\nServer: x\r\n\r\n"), false, 0, 200, "OK", HTTP_BODY_CLOSE, 0, false},
	{S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n"), false, 47, 200, "OK",
	 HTTP_BODY_CHUNKED, 0, true},
	{S("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"), false, 0, 200, "OK", HTTP_BODY_LENGTH,
	 0, false},
	{S("HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n"), false, 0, 200,
	 "OK", HTTP_BODY_LENGTH, 0, true},
	{S("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"), false, 0,
	 404, "Not Found", HTTP_BODY_LENGTH, 0, false},
	{S("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"), false, 0, 200, "", HTTP_BODY_LENGTH, 0,
	 true},
	{S("HTTP/1.1 503 \r\nContent-Length: 0\r\n\r\n"), false, 0, 503, "", HTTP_BODY_LENGTH, 0,
	 true},
	{S("HTTP/1.1 599 Tr\xe8s\tbien!\r\nContent-Length: 0\r\n\r\n"), false, 0, 599,
	 "Tr\xe8s\tbien!", HTTP_BODY_LENGTH, 0, true},
};

static void test_response_good(void **state)
{
	struct http_response *resp = malloc(sizeof(*resp));
	size_t i;

	(void)state;
	assert_non_null(resp);
	for (i = 0; i < ARRAY_SIZE(good_responses); i++) {
		const struct good_response *g = &good_responses[i];
		int head_len = g->head_len ? g->head_len : (int)g->in.len;
		char *buf = dup_exact(g->in.s, g->in.len);

		print_message("response %zu\n", i);
		assert_int_equal(http_parse_response(buf, g->in.len, NULL, g->head, resp),
				 head_len);
		assert_int_equal(resp->head_len, head_len);
		assert_int_equal(resp->status, g->status);
		check_span(resp->reason, resp->reason_len, g->reason);
		assert_int_equal(resp->body, g->body);
		assert_true(resp->content_length == g->content_length);
		assert_int_equal(resp->keep_alive, g->keep_alive);
		free(buf);
		check_prefixes(g->in.s, head_len, true, g->head);
	}
	free(resp);
}

static void test_response_bad(void **state)
{
	static const struct bytes bad[] = {
		S("HTTP/1.1 20 OK\r\n\r\n"),
		S("HTTP/1.1 2000 OK\r\n\r\n"),
		S("HTTP/1.1 200OK\r\n\r\n"),
		S("HTTP/2 200 OK\r\n\r\n"),
		S("HTTP/2.0 200 OK\r\n\r\n"),
		S("HTTP/1.2 200 OK\r\n\r\n"),
		S("http/1.1 200 OK\r\n\r\n"),
		S("HTTP/1.1  200 OK\r\n\r\n"),
		S("HTTP/1.1 099 Low\r\n\r\n"),
		S("HTTP/1.1 600 High\r\n\r\n"),
		S("HTTP/1.1 2x0 OK\r\n\r\n"),
		S("ICY 200 OK\r\n\r\n"),
		S("\r\nHTTP/1.1 200 OK\r\n\r\n"),
		S("HTTP/1.1 200 O\x01K\r\n\r\n"),
		S("HTTP/1.1 200 OK\n\n"),
		S("HTTP/1.1 200 OK\r\r\n\r\n"),
		S("HTTP/1.1 200 OK\r\nX: a\nb\r\n\r\n"),
		S("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n"),
		S("HTTP/1.1 200 OK\r\nX : a\r\n\r\n"),
		S("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
		S("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"),
		S("HTTP/1.1 200 OK\r\nContent-Length: 1,1\r\n\r\n"),
		S("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
		S("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
		S("HTTP/1.1 200 OK\r\nConnection: a b\r\n\r\n"),
		/* A backend naming its own framing hop-by-hop: the client would read two
		 * responses run together. */
		S("HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 5\r\n\r\n"),
		S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: "
		  "transfer-encoding\r\n\r\n"),
	};
	struct http_response *resp = malloc(sizeof(*resp));
	struct http_limits lim;
	size_t i, len;
	char *buf;

	(void)state;
	assert_non_null(resp);
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		int ret = parse_resp(bad[i].s, bad[i].len, false);

		if (ret != -502) {
			print_error("response %zu \"%.*s\": got %d\n", i, (int)bad[i].len, bad[i].s,
				    ret);
			fail();
		}
	}

	/* Limits give 502 too: the head is refused, not truncated. */
	buf = head_with_fields("HTTP/1.1 200 OK", HTTP_MAX_HEADERS - 1, &len);
	http_limits_default(&lim);
	lim.max_headers = 1000;
	assert_int_equal(http_parse_response(buf, len, &lim, false, resp), (int)len);
	free(buf);
	buf = head_with_fields("HTTP/1.1 200 OK", HTTP_MAX_HEADERS, &len);
	assert_int_equal(http_parse_response(buf, len, &lim, false, resp), -502);
	lim.max_header_bytes = 20;
	assert_int_equal(http_parse_response(buf, 20, &lim, false, resp), -502);
	lim.max_request_line = 10;
	assert_int_equal(http_parse_response(buf, 11, &lim, false, resp), -502);
	free(resp);
	free(buf);
}

/* ---- chunked bodies ---- */

struct chunk_case {
	struct bytes in;
	__u64 data_bytes;
	struct bytes canon; /* what http_chunked_recode writes: sockwayd's own framing */
};

/* Each body is followed by "GET": the decoder must stop right before it. */
static const struct chunk_case good_chunks[] = {
	{S("0\r\n\r\nGET"), 0, S("0\r\n\r\n")},
	{S("5\r\nhello\r\n0\r\n\r\nGET"), 5, S("5\r\nhello\r\n0\r\n\r\n")},
	{S("5\r\nhello\r\nA\r\n0123456789\r\n0\r\n\r\nGET"), 15,
	 S("5\r\nhello\r\na\r\n0123456789\r\n0\r\n\r\n")},
	/* Leading zeros go: a hop that reads sizes as octal, or cuts at 8 digits, disagrees. */
	{S("0000000000000005\r\nhello\r\n0000000000000000\r\n\r\nGET"), 5,
	 S("5\r\nhello\r\n0\r\n\r\n")},
	{S("1f\r\n0123456789abcdef0123456789abcde\r\n0\r\n\r\nGET"), 31,
	 S("1f\r\n0123456789abcdef0123456789abcde\r\n0\r\n\r\n")},
	/* Extensions go. */
	{S("5;a=b\r\nhello\r\n0;last\r\n\r\nGET"), 5, S("5\r\nhello\r\n0\r\n\r\n")},
	{S("5 ; a = \"q \\\" s\" ;b\r\nhello\r\n0\r\n\r\nGET"), 5, S("5\r\nhello\r\n0\r\n\r\n")},
	{S("5;a=b;c=\"\";d\t;e=f\r\nhello\r\n0\r\n\r\nGET"), 5, S("5\r\nhello\r\n0\r\n\r\n")},
	{S("5;a=\"\\\\\"\r\nhello\r\n0\r\n\r\nGET"), 5, S("5\r\nhello\r\n0\r\n\r\n")},
	/* Trailers go, even ones named like framing fields. */
	{S("5\r\nhello\r\n0\r\nX-Sum: 1\r\nY:\r\nz:\t\xff\r\n\r\nGET"), 5,
	 S("5\r\nhello\r\n0\r\n\r\n")},
	{S("5\r\nhello\r\n0\r\nContent-Length: 99\r\nHost: evil\r\n\r\nGET"), 5,
	 S("5\r\nhello\r\n0\r\n\r\n")},
	{S("2\r\n\r\n\r\n0\r\n\r\nGET"), 2, S("2\r\n\r\n\r\n0\r\n\r\n")},
	{S("FFFFFFFF\r\n"), 0, S("ffffffff\r\n")},
};

static const struct bytes bad_chunks[] = {
	S("\r\n"),
	S("x\r\n"),
	S(";a\r\n"),
	S("-5\r\n"),
	S("0x5\r\n"),
	S("11111111111111111\r\n"),
	S("00000000000000000\r\n"),
	S("5 \r\n"),
	S("5\t\r\n"),
	S("5;\r\n"),
	S("5;=b\r\n"),
	S("5;a=\r\n"),
	S("5;a =\r\n"),
	S("5;a \r\n"),
	S("5;a=b \r\n"),
	S("5;a=\"b\r\n"),
	S("5;a=\"b\"c\r\n"),
	S("5;a b\r\n"),
	S("5;a=\"\x01\"\r\n"),
	S("5;a=\"\\\x01\"\r\n"),
	S("5;a=b=c\r\n"),
	S("5\n"),
	S("5\rhello"),
	S("5\r\nhelloX\r\n"),
	S("5\r\nhello\n0\r\n\r\n"),
	S("5\r\nhello\r\r\n"),
	S("5\r\nhello\r\n\r\n"),
	S("0\r\nX : y\r\n\r\n"),
	S("0\r\n y\r\n\r\n"),
	S("0\r\nX\r\n\r\n"),
	S("0\r\n:y\r\n\r\n"),
	S("0\r\nX: a\rb\r\n\r\n"),
	S("0\r\nX: a\x01\r\n\r\n"),
	S("0\r\nX: a\n\r\n"),
	S("0\r\n\n"),
	S("0\r\n\r\r"),
	S("0\r\nX: a\r\r"),
};

/* Feeds in to a fresh decoder in pieces of at most step bytes, or split once at split. */
static int feed(const struct bytes *in, size_t split, size_t step, size_t *consumed, bool *done,
		__u64 *data_bytes)
{
	struct http_chunked c;
	size_t at = 0, n, used;
	char *piece;
	int ret = 0;

	http_chunked_init(&c);
	*done = false;
	while (at < in->len && !*done) {
		n = step ? step : (at < split ? split - at : in->len - at);
		if (n > in->len - at)
			n = in->len - at;
		piece = dup_exact(in->s + at, n);
		ret = http_chunked_feed(&c, piece, n, &used, done);
		free(piece);
		assert_true(used <= n);
		at += used;
		if (ret)
			break;
		/* All of a piece is consumed unless the body ended in it. */
		if (!*done)
			assert_int_equal(used, n);
	}
	*consumed = at;
	*data_bytes = c.data_bytes;
	return ret;
}

static void test_chunked_good(void **state)
{
	size_t i, split, consumed;
	__u64 data_bytes;
	bool done;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(good_chunks); i++) {
		const struct chunk_case *g = &good_chunks[i];
		size_t body_len = g->in.len - 3;

		/* Bodies that end (followed by "GET"); the last case does not. */
		if (memcmp(g->in.s + g->in.len - 3, "GET", 3))
			continue;

		print_message("chunked body %zu\n", i);
		for (split = 0; split <= g->in.len; split++) {
			assert_int_equal(feed(&g->in, split, 0, &consumed, &done, &data_bytes), 0);
			assert_true(done);
			assert_int_equal(consumed, body_len);
			assert_true(data_bytes == g->data_bytes);
		}
		assert_int_equal(feed(&g->in, 0, 1, &consumed, &done, &data_bytes), 0);
		assert_true(done);
		assert_int_equal(consumed, body_len);
	}
}

/* Re-frames in pieces cut at split (or of step bytes), as the proxy does; the output in
 * out. Returns the decoder's verdict. */
static int recode(const struct bytes *in, size_t split, size_t step, char *out, size_t *out_len,
		  bool *done)
{
	struct http_chunked c;
	size_t at = 0, n, used, o = 0, w;
	char *piece;
	int ret = 0;

	http_chunked_init(&c);
	*done = false;
	while (at < in->len && !*done) {
		n = step ? step : (at < split ? split - at : in->len - at);
		if (n > in->len - at)
			n = in->len - at;
		piece = dup_exact(in->s + at, n);
		ret = http_chunked_recode(&c, piece, n, &used, done, out + o, &w);
		free(piece);
		/* The room the proxy leaves is enough. */
		assert_true(w <= used + HTTP_CHUNK_RECODE_SLACK);
		o += w;
		at += used;
		if (ret)
			break;
	}
	*out_len = o;
	return ret;
}

static void test_chunked_recode(void **state)
{
	char out[4096];
	size_t i, split, out_len;
	bool done;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(good_chunks); i++) {
		const struct chunk_case *g = &good_chunks[i];

		print_message("re-framed chunked body %zu\n", i);
		for (split = 0; split <= g->in.len; split++) {
			assert_int_equal(recode(&g->in, split, 0, out, &out_len, &done), 0);
			check_span(out, out_len, g->canon.s);
		}
		assert_int_equal(recode(&g->in, 0, 1, out, &out_len, &done), 0);
		check_span(out, out_len, g->canon.s);
	}
	/* Bad framing fails the same as with http_chunked_feed. */
	for (i = 0; i < ARRAY_SIZE(bad_chunks); i++)
		assert_int_equal(recode(&bad_chunks[i], 0, 1, out, &out_len, &done), -400);
}

static void test_chunked_bad(void **state)
{
	size_t i, split, consumed;
	__u64 data_bytes;
	bool done;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(bad_chunks); i++) {
		print_message("bad chunked body %zu\n", i);
		for (split = 0; split <= bad_chunks[i].len; split++) {
			assert_int_equal(
				feed(&bad_chunks[i], split, 0, &consumed, &done, &data_bytes),
				-400);
			assert_false(done);
		}
		assert_int_equal(feed(&bad_chunks[i], 0, 1, &consumed, &done, &data_bytes), -400);
		/* The decoder stays failed. */
	}
}

static void test_chunked_state(void **state)
{
	static const char body[] = "3\r\nabc\r\n0\r\n\r\n";
	struct http_chunked c;
	size_t consumed, i;
	char line[HTTP_CHUNK_LINE_MAX + 8];
	bool done;

	(void)state;
	/* After the end, nothing more is consumed. */
	http_chunked_init(&c);
	assert_int_equal(http_chunked_feed(&c, body, sizeof(body) - 1, &consumed, &done), 0);
	assert_true(done);
	assert_int_equal(consumed, sizeof(body) - 1);
	assert_int_equal(http_chunked_feed(&c, body, 3, &consumed, &done), 0);
	assert_true(done);
	assert_int_equal(consumed, 0);

	/* After an error, every call fails and consumes nothing. */
	http_chunked_init(&c);
	assert_int_equal(http_chunked_feed(&c, "3\r\nabcX", 7, &consumed, &done), -400);
	assert_int_equal(consumed, 6);
	assert_int_equal(http_chunked_feed(&c, "\r\n", 2, &consumed, &done), -400);
	assert_int_equal(consumed, 0);
	assert_false(done);

	/* The largest size is 16 hex digits; data_bytes counts as the data streams. */
	http_chunked_init(&c);
	assert_int_equal(http_chunked_feed(&c, "ffffffffffffffff\r\nab", 20, &consumed, &done), 0);
	assert_int_equal(consumed, 20);
	assert_true(c.data_bytes == 2);
	assert_false(done);

	/* A size line of HTTP_CHUNK_LINE_MAX bytes is taken, one more is not. */
	for (i = 0; i < 2; i++) {
		size_t n = HTTP_CHUNK_LINE_MAX + i;

		memcpy(line, "1;a=", 4);
		memset(line + 4, 'b', n - 4);
		memcpy(line + n, "\r\n", 2);
		http_chunked_init(&c);
		assert_int_equal(http_chunked_feed(&c, line, n + 2, &consumed, &done),
				 i ? -400 : 0);
	}
}

static void test_chunked_trailer_limit(void **state)
{
	char *buf = malloc(HTTP_CHUNK_TRAILERS_MAX + 64);
	struct http_chunked c;
	size_t n = 0, consumed;
	bool done;

	(void)state;
	assert_non_null(buf);
	n += sprintf(buf, "0\r\n");
	while (n < HTTP_CHUNK_TRAILERS_MAX)
		n += sprintf(buf + n, "X: 0123456789abcdef0123456789\r\n");
	n += sprintf(buf + n, "\r\n");
	http_chunked_init(&c);
	assert_int_equal(http_chunked_feed(&c, buf, n, &consumed, &done), -400);
	assert_false(done);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_good),   cmocka_unit_test(test_request_fields),
		cmocka_unit_test(test_hop_by_hop),     cmocka_unit_test(test_request_bad),
		cmocka_unit_test(test_request_early),  cmocka_unit_test(test_limit_request_line),
		cmocka_unit_test(test_limit_head),     cmocka_unit_test(test_limit_headers),
		cmocka_unit_test(test_limit_body),     cmocka_unit_test(test_response_good),
		cmocka_unit_test(test_response_bad),   cmocka_unit_test(test_chunked_good),
		cmocka_unit_test(test_chunked_recode), cmocka_unit_test(test_chunked_bad),
		cmocka_unit_test(test_chunked_state),  cmocka_unit_test(test_chunked_trailer_limit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
