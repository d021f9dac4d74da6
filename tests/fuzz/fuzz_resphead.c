// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * libFuzzer harness for the response-head scanner that sk_msg runs (include/sockway/
 * resphead.h). The input is a backend's first send. The scanner's verdict is checked
 * against sockwayd's parser (user/helper/http.c), both ways:
 *  - a head it takes, the parser takes with the same length, status and Content-Length,
 *    keeping the connection, and head_response_build (run here) writes back byte for byte;
 *  - a head that head_response_build writes back unchanged, within SW_RESPHEAD_MAX bytes
 *    and SW_RESPHEAD_CL_DIGITS digits, it takes;
 *  - the verdict does not depend on the bytes after the head, and a prefix of the input is
 *    incomplete or gets the same verdict.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sockway/resphead.h"
#include "headers.h"
#include "http.h"

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__,       \
				#cond);                                                            \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

enum scan_verdict { SCAN_SHORT, SCAN_REFUSED, SCAN_ACCEPTED };

struct scan {
	enum scan_verdict verdict;
	struct sw_resphead h;
};

/* An exact heap copy of buf[0..len), so that any read past len is caught. */
static uint8_t *dup_exact(const uint8_t *buf, size_t len)
{
	uint8_t *copy = malloc(len ? len : 1);

	CHECK(copy);
	memcpy(copy, buf, len);
	return copy;
}

/* The scan as sk_msg runs it: the fixed start at once, then byte by byte, never past
 * SW_RESPHEAD_MAX. */
static struct scan scan_head(const uint8_t *buf, size_t len)
{
	size_t end = len < SW_RESPHEAD_MAX ? len : SW_RESPHEAD_MAX;
	struct scan s = {.verdict = SCAN_SHORT};
	uint8_t *b;
	size_t i;
	int r = 0;

	if (len < SW_RESPHEAD_START)
		return s;
	b = dup_exact(buf, len);
	/* sk_msg scans into a map value that holds the last response's scan. */
	memset(&s.h, 0xa5, sizeof(s.h));
	if (sw_resphead_begin(&s.h, b)) {
		s.verdict = SCAN_REFUSED;
		goto out;
	}
	for (i = SW_RESPHEAD_START; i < end && !r; i++)
		r = sw_resphead_step(&s.h, b[i], i);
	if (r == 1)
		s.verdict = SCAN_ACCEPTED;
	else if (r < 0 || len >= SW_RESPHEAD_MAX)
		s.verdict = SCAN_REFUSED;
out:
	free(b);
	return s;
}

/*
 * Are the first resp->head_len bytes exactly what head_response_build writes for resp to
 * an HTTP/1.1 client that keeps its connection? (The real rewrite, run here.)
 */
static bool rewritten_the_same(const char *buf, const struct http_response *resp)
{
	struct buf b = {};
	bool same;

	CHECK(!head_response_build(&b, resp, true, 1));
	same = b.len == resp->head_len && !memcmp(buf_head(&b), buf, b.len);
	buf_free(&b);
	return same;
}

/* Does sockwayd pass this head on unchanged, with a body the scanner can count? */
static bool passes_unchanged(const char *buf, int ret, const struct http_response *resp)
{
	const struct http_header *cl;

	if (ret <= 0 || ret > SW_RESPHEAD_MAX || resp->body != HTTP_BODY_LENGTH ||
	    !resp->keep_alive || !rewritten_the_same(buf, resp))
		return false;
	cl = http_find_header(resp->headers, resp->nr_headers, "content-length");
	return cl && cl->value_len <= SW_RESPHEAD_CL_DIGITS;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct http_response resp;
	struct http_limits lim;
	struct scan s = scan_head(data, size), again;
	char *copy = (char *)dup_exact(data, size);
	int ret;

	http_limits_default(&lim);
	ret = http_parse_response(copy, size, &lim, false, &resp);
	if (s.verdict == SCAN_ACCEPTED) {
		CHECK(ret > 0 && (size_t)ret == s.h.head_len && resp.head_len == s.h.head_len);
		CHECK(resp.status == (int)s.h.status && resp.body == HTTP_BODY_LENGTH);
		CHECK(resp.content_length == s.h.body_len && resp.keep_alive);
		CHECK(rewritten_the_same(copy, &resp));
		/* The head alone is enough, and gives the same answer. */
		again = scan_head(data, s.h.head_len);
		CHECK(again.verdict == SCAN_ACCEPTED && again.h.head_len == s.h.head_len);
		CHECK(again.h.status == s.h.status && again.h.body_len == s.h.body_len);
	} else {
		CHECK(!passes_unchanged(copy, ret, &resp));
	}
	/* Cut anywhere (the last byte picks where), the input is incomplete or gets the same
	 * answer: the scanner decides on the bytes it has seen. */
	if (size) {
		size_t k = data[size - 1] * 257u % size;

		again = scan_head(data, k);
		if (s.verdict == SCAN_ACCEPTED && k >= s.h.head_len)
			CHECK(again.verdict == SCAN_ACCEPTED && again.h.head_len == s.h.head_len);
		else if (s.verdict == SCAN_ACCEPTED)
			CHECK(again.verdict == SCAN_SHORT);
		else
			CHECK(again.verdict == SCAN_SHORT || again.verdict == s.verdict);
	}
	free(copy);
	return 0;
}
