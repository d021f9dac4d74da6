// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * libFuzzer harness for the HTTP parser (user/helper/http.c). The first input byte picks
 * what to parse and with which limits; the rest is the bytes a peer sent. Besides the
 * sanitizers' checks it asserts what sockwayd relies on:
 *  - a head length is within the input, ends in CRLF CRLF, and every pointer lies in the head;
 *  - the answer does not depend on how the bytes arrived: a prefix of the input parses to
 *    "more" or to the same refusal, and the head alone parses to the same head length;
 *  - the chunked decoder consumes and counts the same whether fed at once, in two pieces
 *    or byte by byte, and stops at the end of the body.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__,       \
				#cond);                                                            \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/* How many prefixes of each input are re-parsed: all of them would be quadratic. */
#define PREFIXES 8

static bool inside(const char *p, size_t n, const char *buf, size_t len)
{
	return p >= buf && n <= len && (size_t)(p - buf) <= len - n;
}

/* Small limits reach the 414/431 paths with short inputs. */
static void fuzz_limits(uint8_t sel, struct http_limits *lim)
{
	http_limits_default(lim);
	if (sel & 0x80) {
		lim->max_request_line = 40;
		lim->max_header_bytes = 160;
		lim->max_headers = 4;
		lim->max_body = 1000;
	}
}

/* Parses an exact heap copy of buf[0..len), so that any read past len is caught. */
static int parse_copy(const char *buf, size_t len, const struct http_limits *lim, int kind,
		      bool head)
{
	static struct http_request req;
	static struct http_response resp;
	char *copy = malloc(len ? len : 1);
	int ret;

	CHECK(copy);
	memcpy(copy, buf, len);
	if (kind == 0)
		ret = http_parse_request(copy, len, lim, &req);
	else
		ret = http_parse_response(copy, len, lim, head, &resp);
	free(copy);
	return ret;
}

static void check_headers(const struct http_header *h, unsigned int nr, const char *buf,
			  size_t head_len)
{
	unsigned int i;

	for (i = 0; i < nr; i++) {
		CHECK(h[i].name_len > 0);
		CHECK(inside(h[i].name, h[i].name_len, buf, head_len));
		CHECK(inside(h[i].value, h[i].value_len, buf, head_len));
	}
}

/* A prefix never accepts less, and never refuses what the whole input does not. */
static void check_prefixes(const char *buf, size_t len, const struct http_limits *lim, int kind,
			   bool head, int ret)
{
	size_t k;
	int i, r;

	for (i = 0; i <= PREFIXES; i++) {
		k = i == PREFIXES ? (ret > 0 ? (size_t)ret - 1 : len - 1) : len * i / PREFIXES;
		if (k >= len)
			continue;
		r = parse_copy(buf, k, lim, kind, head);
		if (ret > 0)
			CHECK(k >= (size_t)ret ? r == ret : r == 0);
		else
			CHECK(r == 0 || r == ret);
	}
	if (ret > 0)
		CHECK(parse_copy(buf, ret, lim, kind, head) == ret);
}

static void fuzz_request(const char *buf, size_t len, const struct http_limits *lim)
{
	static struct http_request req;
	int ret = http_parse_request(buf, len, lim, &req);

	if (ret > 0) {
		CHECK((size_t)ret <= len && (size_t)ret <= lim->max_header_bytes);
		CHECK(req.head_len == (size_t)ret && !memcmp(buf + ret - 4, "\r\n\r\n", 4));
		CHECK(req.nr_headers <= lim->max_headers);
		CHECK(inside(req.method, req.method_len, buf, ret) && req.method_len > 0);
		CHECK(inside(req.target, req.target_len, buf, ret) && req.target_len > 0);
		CHECK(inside(req.path, req.path_len, buf, ret) ||
		      (req.path_len == 1 && req.path[0] == '/'));
		CHECK(!req.authority || inside(req.authority, req.authority_len, buf, ret));
		CHECK(!req.host || inside(req.host, req.host_len, buf, ret));
		CHECK(req.version_minor == 0 || req.version_minor == 1);
		CHECK(!req.authority || req.host == req.authority);
		CHECK(req.method_bit && !(req.method_bit & (req.method_bit - 1)));
		CHECK(req.body != HTTP_BODY_CLOSE);
		CHECK(req.body != HTTP_BODY_LENGTH || req.content_length <= lim->max_body);
		CHECK(req.body != HTTP_BODY_CHUNKED || req.version_minor == 1);
		check_headers(req.headers, req.nr_headers, buf, ret);
	} else if (ret < 0) {
		CHECK(ret == -400 || ret == -413 || ret == -414 || ret == -417 || ret == -431 ||
		      ret == -501 || ret == -505);
	}
	check_prefixes(buf, len, lim, 0, false, ret);
}

static void fuzz_response(const char *buf, size_t len, const struct http_limits *lim, bool head)
{
	static struct http_response resp;
	int ret = http_parse_response(buf, len, lim, head, &resp);

	if (ret > 0) {
		CHECK((size_t)ret <= len && (size_t)ret <= lim->max_header_bytes);
		CHECK(resp.head_len == (size_t)ret && !memcmp(buf + ret - 4, "\r\n\r\n", 4));
		CHECK(resp.status >= 100 && resp.status <= 599);
		CHECK(inside(resp.reason, resp.reason_len, buf, ret));
		CHECK(!head || resp.body == HTTP_BODY_NONE);
		CHECK(resp.body != HTTP_BODY_CLOSE || !resp.keep_alive);
		check_headers(resp.headers, resp.nr_headers, buf, ret);
	} else {
		CHECK(ret == 0 || ret == -502);
	}
	check_prefixes(buf, len, lim, 1, head, ret);
}

struct chunk_result {
	int ret;
	size_t consumed;
	bool done;
	__u64 data_bytes;
};

/* Feeds buf[0..len) to a new decoder: first cut bytes, then pieces of step bytes. */
static struct chunk_result chunk_feed(const char *buf, size_t len, size_t cut, size_t step)
{
	struct chunk_result r = {};
	struct http_chunked c;
	size_t used, n;

	http_chunked_init(&c);
	while (r.consumed < len && !r.done && !r.ret) {
		n = r.consumed < cut ? cut - r.consumed : step;
		if (n > len - r.consumed)
			n = len - r.consumed;
		r.ret = http_chunked_feed(&c, buf + r.consumed, n, &used, &r.done);
		CHECK(used <= n);
		CHECK(r.ret || r.done || used == n);
		r.consumed += used;
	}
	r.data_bytes = c.data_bytes;
	CHECK(r.data_bytes <= r.consumed);
	return r;
}

static bool chunk_same(const struct chunk_result *a, const struct chunk_result *b)
{
	return a->ret == b->ret && a->consumed == b->consumed && a->done == b->done &&
	       a->data_bytes == b->data_bytes;
}

static void fuzz_chunked(const char *buf, size_t len, size_t cut, size_t step)
{
	struct chunk_result whole = chunk_feed(buf, len, 0, len ? len : 1);
	struct chunk_result split = chunk_feed(buf, len, cut, len ? len : 1);
	struct chunk_result steps = chunk_feed(buf, len, cut, step);
	struct chunk_result bytes = chunk_feed(buf, len, 0, 1);

	CHECK(whole.ret == 0 || whole.ret == -400);
	CHECK(!whole.ret || whole.consumed < len);
	CHECK(chunk_same(&whole, &split) && chunk_same(&whole, &steps) &&
	      chunk_same(&whole, &bytes));
	/* What follows the body is the next message: consuming it would desync the stream. */
	if (whole.done)
		CHECK(whole.consumed >= 5 && !memcmp(buf + whole.consumed - 2, "\r\n", 2));
}

/* A request head and, if it announces one, its chunked body, as sockwayd reads them. */
static void fuzz_request_body(const char *buf, size_t len, const struct http_limits *lim,
			      size_t cut, size_t step)
{
	static struct http_request req;
	int ret = http_parse_request(buf, len, lim, &req);

	if (ret > 0 && req.body == HTTP_BODY_CHUNKED)
		fuzz_chunked(buf + ret, len - ret, cut, step);
}

/*
 * Input: one selector byte, then the peer's bytes. Selector bits 0-1: request, request with
 * chunked body, response, chunked body alone; bit 2: the request was HEAD; bits 3-6: the
 * piece size for the chunked decoder; bit 7: small limits.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data + 1;
	struct http_limits lim;
	size_t len, cut, step;
	uint8_t sel;

	if (!size)
		return 0;
	sel = data[0];
	len = size - 1;
	step = 1 + (sel >> 3 & 0xf);
	/* The two-piece split point comes from the last byte, to try every boundary. */
	cut = len ? (data[size - 1] * 257u + len / 2) % (len + 1) : 0;
	fuzz_limits(sel, &lim);
	switch (sel & 3) {
	case 0:
		fuzz_request(buf, len, &lim);
		break;
	case 1:
		fuzz_request(buf, len, &lim);
		fuzz_request_body(buf, len, &lim, cut, step);
		break;
	case 2:
		fuzz_response(buf, len, &lim, sel & 4);
		break;
	default:
		fuzz_chunked(buf, len, cut, step);
		break;
	}
	return 0;
}
