// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * The heads sockwayd writes (user/helper/headers.c), byte for byte: what reaches a backend
 * and a client for requests and responses that try to steer framing, paths, addresses or
 * credentials. tests/fuzz/fuzz_heads.c holds every head to the framing property; these are
 * the cases a reader can check by eye.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "headers.h"

/* The head for request in (parsed by sockwayd's parser), with the path given as routed. */
static void check_request(const char *in, const char *path, const char *query, bool shadow,
			  const char *want, unsigned want_underscores)
{
	static const char *const keep[] = {"Cookie"};
	static const char *const strip[] = {"X-Secret"};
	struct http_request *req = malloc(sizeof(*req));
	struct head_request_opts o = {
		.path = path,
		.path_len = strlen(path),
		.query = query,
		.query_len = strlen(query),
		.peer_ip = "192.0.2.7",
		.shadow = shadow,
		.shadow_keep = keep,
		.nr_shadow_keep = 1,
		.shadow_strip = strip,
		.nr_shadow_strip = 1,
	};
	struct buf b = {};
	unsigned underscores = 99;

	assert_non_null(req);
	assert_int_equal(http_parse_request(in, strlen(in), NULL, req), (int)strlen(in));
	assert_int_equal(head_request_build(&b, req, &o, &underscores), 0);
	if (b.len != strlen(want) || memcmp(buf_head(&b), want, b.len)) {
		print_error("got:\n%.*s\nwant:\n%s\n", (int)b.len, buf_head(&b), want);
		fail();
	}
	assert_int_equal(underscores, want_underscores);
	buf_free(&b);
	free(req);
}

static void test_request_canonical(void **state)
{
	(void)state;
	/* Content-Length as sockwayd counts it; fields named with '_' dropped (and counted);
	 * X-Original-URL and X-Rewrite-URL dropped; the client's X-Forwarded-For values
	 * kept, in order, with its address last; X-Forwarded-Proto sockwayd's own. */
	check_request("POST /public/../admin?x=1 HTTP/1.1\r\n"
		      "Host: ADMIN.Internal.:8080\r\n"
		      "Content-Length: 007\r\n"
		      "X-Forwarded-For: 10.9.9.9\r\n"
		      "X_Forwarded_For: 10.8.8.8\r\n"
		      "x-forwarded-for: 10.7.7.7, 10.6.6.6\r\n"
		      "X-Original-URL: /admin\r\n"
		      "X-Rewrite-URL: /admin\r\n"
		      "X-Forwarded-Proto: https\r\n"
		      "Auth_Token: t\r\n"
		      "Accept: */*\r\n\r\n",
		      "/admin", "?x=1", false,
		      "POST /admin?x=1 HTTP/1.1\r\n"
		      "Host: admin.internal:8080\r\n"
		      "Content-Length: 7\r\n"
		      "Accept: */*\r\n"
		      "X-Forwarded-For: 10.9.9.9, 10.7.7.7, 10.6.6.6, 192.0.2.7\r\n"
		      "X-Forwarded-Proto: http\r\n\r\n",
		      2);
}

static void test_request_hop_by_hop(void **state)
{
	(void)state;
	/* Connection tokens name fields to drop; Expect, TE, Upgrade never pass; a chunked
	 * body is announced by sockwayd; HTTP/1.0 keeps the upstream connection. */
	check_request("PUT /up HTTP/1.1\r\nHost: a\r\nConnection: x-drop, keep-alive\r\n"
		      "X-Drop: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nExpect: 100-continue\r\n"
		      "Transfer-Encoding: chunked\r\nX-Keep: 2\r\n\r\n",
		      "/up", "", false,
		      "PUT /up HTTP/1.1\r\nHost: a\r\nX-Keep: 2\r\n"
		      "X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\n"
		      "Transfer-Encoding: chunked\r\n\r\n",
		      0);
	check_request("GET http://Example.COM/p HTTP/1.0\r\n\r\n", "/p", "", false,
		      "GET /p HTTP/1.0\r\nHost: example.com\r\nX-Forwarded-For: 192.0.2.7\r\n"
		      "X-Forwarded-Proto: http\r\nConnection: keep-alive\r\n\r\n",
		      0);
	/* Forwarded, when the client sent it, is sockwayd's element alone; the other
	 * fields only a proxy may write are dropped. */
	check_request("GET / HTTP/1.1\r\nHost: a\r\nForwarded: for=10.9.9.9;host=evil\r\n"
		      "forwarded: for=\"1.2.3.4\r\nX-Forwarded-Host: evil\r\n"
		      "X-Forwarded-Port: 1\r\nX-Forwarded-Prefix: /x\r\nX-Real-IP: 6.6.6.6\r\n"
		      "True-Client-IP: 6.6.6.6\r\nX-Client-IP: 6.6.6.6\r\n"
		      "X-Forwarded-Server: s\r\n\r\n",
		      "/", "", false,
		      "GET / HTTP/1.1\r\nHost: a\r\n"
		      "Forwarded: for=192.0.2.7;proto=http\r\n"
		      "X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\n\r\n",
		      0);
	/* A client's X-Forwarded-For that its Connection names is dropped like any other. */
	check_request("GET / HTTP/1.1\r\nHost: [::1]:80\r\nConnection: X-Forwarded-For\r\n"
		      "X-Forwarded-For: 6.6.6.6\r\n\r\n",
		      "/", "", false,
		      "GET / HTTP/1.1\r\nHost: [::1]:80\r\nX-Forwarded-For: 192.0.2.7\r\n"
		      "X-Forwarded-Proto: http\r\n\r\n",
		      0);
}

static void test_request_shadow(void **state)
{
	(void)state;
	/* Credentials leave shadow copies unless kept (Cookie here); the strip list too;
	 * the copy is marked, and a client's own marker is dropped. */
	check_request("GET /s HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer x\r\n"
		      "proxy-authorization: Basic y\r\nCookie: s=1\r\nX-Secret: z\r\n"
		      "X-Sockway-Shadow: 0\r\nX-Other: o\r\n\r\n",
		      "/s", "", true,
		      "GET /s HTTP/1.1\r\nHost: a\r\nCookie: s=1\r\nX-Other: o\r\n"
		      "X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\n"
		      "X-Sockway-Shadow: 1\r\n\r\n",
		      0);
	/* The primary keeps them all (but the client's marker). */
	check_request(
		"GET /s HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer x\r\nCookie: s=1\r\n"
		"X-Secret: z\r\nX-Sockway-Shadow: 0\r\n\r\n",
		"/s", "", false,
		"GET /s HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer x\r\nCookie: s=1\r\n"
		"X-Secret: z\r\nX-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\n\r\n",
		0);
}

static void check_response(const char *in, bool head, bool keep, int minor, const char *want)
{
	struct http_response *resp = malloc(sizeof(*resp));
	struct buf b = {};
	int ret;

	assert_non_null(resp);
	ret = http_parse_response(in, strlen(in), NULL, head, resp);
	assert_true(ret > 0);
	assert_int_equal(head_response_build(&b, resp, keep, minor), 0);
	if (b.len != strlen(want) || memcmp(buf_head(&b), want, b.len)) {
		print_error("got:\n%.*s\nwant:\n%s\n", (int)b.len, buf_head(&b), want);
		fail();
	}
	buf_free(&b);
	free(resp);
}

static void test_response_canonical(void **state)
{
	(void)state;
	check_response("HTTP/1.1 200 OK\r\ncontent-length: 0007\r\nKeep-Alive: timeout=5\r\n"
		       "Connection: keep-alive, X-Hop\r\nX-Hop: 1\r\nX-End: 2\r\n\r\n",
		       false, true, 1, "HTTP/1.1 200 OK\r\ncontent-length: 7\r\nX-End: 2\r\n\r\n");
}

static void test_response_framing(void **state)
{
	(void)state;
	/* Chunked: announced by sockwayd, the backend's Trailer field passes as a field. */
	check_response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X\r\n\r\n", false,
		       true, 1,
		       "HTTP/1.1 200 OK\r\nTrailer: X\r\nTransfer-Encoding: chunked\r\n\r\n");
	/* A body that ends at close: the client connection closes too. */
	check_response("HTTP/1.0 200 OK\r\nX: y\r\n\r\n", false, false, 1,
		       "HTTP/1.1 200 OK\r\nX: y\r\nConnection: close\r\n\r\n");
	/* HEAD: the length of the body it would have had, in canonical form; an HTTP/1.0
	 * client that keeps its connection is told so. */
	check_response("HTTP/1.1 200 OK\r\nContent-Length: 010\r\n\r\n", true, true, 0,
		       "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: keep-alive\r\n\r\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_canonical), cmocka_unit_test(test_request_hop_by_hop),
		cmocka_unit_test(test_request_shadow),	  cmocka_unit_test(test_response_canonical),
		cmocka_unit_test(test_response_framing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
