// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * The response heads the kernel passes from a backend to the client unchanged
 * (include/sockway/resphead.h). Each head the scanner takes must be one that sockwayd's
 * parser takes too, with the same length, status and Content-Length, keeping the connection,
 * and that head_response_build rebuilds byte for byte: otherwise the client would get bytes
 * sockwayd never meant to send. Refusing is safe, but a head refused for no reason loses the
 * fast path silently, so the mutation test checks both ways.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sockway/resphead.h"
#include "http.h"
#include "headers.h"

/* Mutated heads grow by a few lines at most; the largest base is SW_RESPHEAD_MAX bytes. */
#define WORK_MAX (2 * SW_RESPHEAD_MAX)
#include "headtest.h"

/* The bytes after a head: a body, then what looks like a second head. Any of them scanned
 * as part of the head would show as a different answer. */
static const char tail[] = "0123456789\r\n\r\nConnection: close\r\n\r\n\n\r \x00\xff";

enum scan_verdict {
	SCAN_SHORT,    /* the bytes ran out first: sk_msg leaves the response to sockwayd */
	SCAN_REFUSED,  /* a byte, or the length cap, ruled the head out */
	SCAN_ACCEPTED, /* the kernel may pass it on */
};

struct scan {
	enum scan_verdict verdict;
	__u32 head_len;
	__u32 status;
	__u64 body_len;
};

/*
 * The scan as sk_msg runs it over the backend's first send: the fixed start at once, then
 * byte by byte, never past SW_RESPHEAD_MAX.
 */
static struct scan scan_head(const char *s, size_t len)
{
	size_t end = len < SW_RESPHEAD_MAX ? len : SW_RESPHEAD_MAX;
	struct scan res = {SCAN_SHORT, 0, 0, 0};
	struct sw_resphead h;
	__u8 *b;
	size_t i;
	int r = 0;

	if (len < SW_RESPHEAD_START)
		return res;
	b = (__u8 *)dup_exact(s, len);
	/* The map value sk_msg scans into holds the last response's scan: begin must reset it. */
	memset(&h, 0xa5, sizeof(h));
	if (sw_resphead_begin(&h, b)) {
		res.verdict = SCAN_REFUSED;
		goto out;
	}
	for (i = SW_RESPHEAD_START; i < end; i++) {
		r = sw_resphead_step(&h, b[i], i);
		if (r)
			break;
	}
	if (r == 1) {
		res.verdict = SCAN_ACCEPTED;
		res.head_len = h.head_len;
		res.status = h.status;
		res.body_len = h.body_len;
	} else if (r < 0 || len >= SW_RESPHEAD_MAX) {
		res.verdict = SCAN_REFUSED;
	}
out:
	free(b);
	return res;
}

/* What sockwayd makes of a head: its parse, and whether the head it sends is the same. */
struct sockwayd_view {
	int ret; /* http_parse_response's */
	struct http_response resp;
	bool same; /* head_response_build gave back the first ret bytes, exactly */
};

static void sockwayd_view(const char *s, size_t len, struct sockwayd_view *v)
{
	struct http_limits lim;
	struct buf out = {};
	char *b = dup_exact(s, len);

	http_limits_default(&lim);
	v->same = false;
	v->ret = http_parse_response(b, len, &lim, false, &v->resp);
	if (v->ret > 0) {
		/* An HTTP/1.1 client that keeps its connection, as when sk_msg is armed. */
		assert_int_equal(head_response_build(&out, &v->resp, true, 1), 0);
		v->same = out.len == (size_t)v->ret && !memcmp(buf_head(&out), b, out.len);
	}
	buf_free(&out);
	free(b);
}

/*
 * Would sockwayd pass this head on unchanged, with a Content-Length body, within the limits
 * the scanner keeps (SW_RESPHEAD_MAX bytes, SW_RESPHEAD_CL_DIGITS digits)?
 */
static bool passes_unchanged(const struct sockwayd_view *v)
{
	const struct http_header *cl;

	if (v->ret <= 0 || !v->same || v->resp.body != HTTP_BODY_LENGTH || !v->resp.keep_alive ||
	    v->ret > SW_RESPHEAD_MAX)
		return false;
	cl = http_find_header(v->resp.headers, v->resp.nr_headers, "content-length");
	return cl && cl->value_len <= SW_RESPHEAD_CL_DIGITS;
}

/* An accepted head, checked against sockwayd: alone, and with the bytes that follow it. */
static void check_accepted(const char *s, size_t len, const struct scan *sc)
{
	struct sockwayd_view *v = malloc(sizeof(*v));
	bool ok;

	assert_non_null(v);
	assert_true(sc->head_len >= SW_RESPHEAD_START + 4 && sc->head_len <= len);
	sockwayd_view(s, sc->head_len, v);
	ok = v->ret == (int)sc->head_len && v->resp.head_len == sc->head_len &&
	     v->resp.status == (int)sc->status && v->resp.body == HTTP_BODY_LENGTH &&
	     v->resp.content_length == sc->body_len && v->resp.keep_alive;
	if (!ok) {
		print_error("scanner took %u bytes (status %u, body %llu), sockwayd's parser "
			    "returned %d (status %d, body kind %d, length %llu, keep-alive %d): "
			    "\"%s\"\n",
			    sc->head_len, sc->status, (unsigned long long)sc->body_len, v->ret,
			    v->resp.status, v->resp.body,
			    (unsigned long long)v->resp.content_length, v->resp.keep_alive,
			    escape(s, len));
		fail();
	}
	if (!v->same) {
		print_error("head_response_build rewrites a head the scanner took: \"%s\"\n",
			    escape(s, sc->head_len));
		fail();
	}
	/* With the rest of the input, the parser still ends the head where the scanner did. */
	sockwayd_view(s, len, v);
	assert_int_equal(v->ret, sc->head_len);
	free(v);
}

/* The answer for a head does not depend on the bytes after it. */
static void check_tail_ignored(const char *s, size_t len, const struct scan *sc)
{
	char *more = malloc(len + sizeof(tail));
	struct scan again;

	assert_non_null(more);
	memcpy(more, s, len);
	memcpy(more + len, tail, sizeof(tail));
	again = scan_head(more, len + sizeof(tail));
	if (sc->verdict == SCAN_ACCEPTED) {
		assert_int_equal(again.verdict, SCAN_ACCEPTED);
		assert_int_equal(again.head_len, sc->head_len);
		assert_int_equal(again.status, sc->status);
		assert_int_equal(again.body_len, sc->body_len);
		/* And the head alone is all the scanner needs. */
		again = scan_head(s, sc->head_len);
		assert_int_equal(again.verdict, SCAN_ACCEPTED);
		assert_int_equal(again.head_len, sc->head_len);
	} else if (sc->verdict == SCAN_REFUSED) {
		assert_int_equal(again.verdict, SCAN_REFUSED);
	}
	free(more);
}

/*
 * "HTTP/1.1 200 OK" and nr_fields fields, the last "Content-Length: 5". With total set, the
 * first field is "X-Pad: ppp...", as long as makes the head total bytes. Returns the length.
 */
static size_t make_head(char *out, size_t cap, unsigned int nr_fields, size_t total)
{
	const size_t status_line = strlen("HTTP/1.1 200 OK\r\n");
	unsigned int fillers, i;
	size_t n, pad;

	assert_true(nr_fields >= 1u + !!total);
	fillers = nr_fields - 1 - !!total;
	n = snprintf(out, cap, "HTTP/1.1 200 OK\r\n");
	for (i = 0; i < fillers; i++)
		n += snprintf(out + n, cap - n, "X-Field-%03u: v\r\n", i);
	n += snprintf(out + n, cap - n, "Content-Length: 5\r\n\r\n");
	assert_true(n < cap);
	if (!total)
		return n;
	/* "X-Pad: " value CRLF, after the status line: 9 bytes and the padding. */
	assert_true(total >= n + 10 && total <= cap);
	pad = total - n - 9;
	memmove(out + status_line + 9 + pad, out + status_line, n - status_line);
	memcpy(out + status_line, "X-Pad: ", 7);
	memset(out + status_line + 7, 'p', pad);
	memcpy(out + status_line + 7 + pad, "\r\n", 2);
	return total;
}

/* ---- heads the kernel passes on ---- */

static const struct good_head {
	struct bytes in;
	__u32 head_len; /* 0: all of in */
	__u32 status;
	__u64 body_len;
} good_heads[] = {
	/* What tools/swbackend sends. */
	{S("HTTP/1.1 200 OK\r\nX-Backend: a1\r\nContent-Type: text/plain\r\nContent-Length: "
	   "1048576\r\nX-Seen-Path: /big\r\n\r\n"),
	 0, 200, 1048576},
	{S("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), 0, 200, 0},
	/* The reason may be empty, as long as the space before it is there. */
	{S("HTTP/1.1 200 \r\nContent-Length: 3\r\n\r\n"), 0, 200, 3},
	{S("HTTP/1.1 200 \t OK  \r\nContent-Length: 3\r\n\r\n"), 0, 200, 3},
	{S("HTTP/1.1 200 OK\r\nX-Empty: \r\nContent-Length: 3\r\n\r\n"), 0, 200, 3},
	/* obs-text, inner SP and HTAB, and a ':' are value bytes like any other. */
	{S("HTTP/1.1 503 Dienst nicht verf\xc3\xbcgbar\r\nX-Obs: caf\xc3\xa9\x80\xff\r\n"
	   "X-Inner: a \t b:c\r\nContent-Length: 12\r\n\r\n"),
	 0, 503, 12},
	{S("HTTP/1.1 599 x\r\ncontent-length: 7\r\n\r\n"), 0, 599, 7},
	{S("HTTP/1.1 206 Partial Content\r\nCONTENT-LENGTH: 99\r\nContent-Range: bytes 0-98/"
	   "1000\r\n\r\n"),
	 0, 206, 99},
	{S("HTTP/1.1 200 OK\r\nContent-Length: 999999999999999\r\n\r\n"), 0, 200,
	 999999999999999ULL},
	/* Names that are hop-by-hop ones but for a byte, and every token character. */
	{S("HTTP/1.1 200 OK\r\nConnections: 1\r\nTE-Hint: 2\r\nT: 3\r\nUpgrades: 4\r\n"
	   "Keep-Alivex: 5\r\nProxy-Connectio: 6\r\nTransfer-Encodings: 7\r\nContent-Lengthy: 8\r\n"
	   "Content-Lengt: 9\r\n!#$%&'*+-.^_`|~09AZaz: 10\r\nContent-Length: 11\r\n\r\n"),
	 0, 200, 11},
	/* A name over the 24 bytes the scanner keeps. */
	{S("HTTP/1.1 200 OK\r\nX-A-Very-Long-Header-Name-Indeed: 1\r\nContent-Length: 1\r\n\r\n"),
	 0, 200, 1},
	/* The body starts right after the head. */
	{S("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"), 38, 200, 5},
	{S("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n\r\n\r\n"), 38, 200, 5},
};

static void check_good(const char *s, size_t len, __u32 head_len, __u32 status, __u64 body_len)
{
	struct scan sc = scan_head(s, len);

	if (sc.verdict != SCAN_ACCEPTED) {
		print_error("refused (verdict %d): \"%s\"\n", sc.verdict, escape(s, len));
		fail();
	}
	assert_int_equal(sc.head_len, head_len ? head_len : len);
	assert_int_equal(sc.status, status);
	assert_int_equal(sc.body_len, body_len);
	check_accepted(s, len, &sc);
	check_tail_ignored(s, len, &sc);
}

static void test_accepted_heads(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(good_heads); i++) {
		const struct good_head *g = &good_heads[i];

		check_good(g->in.s, g->in.len, g->head_len, g->status, g->body_len);
	}
}

/* SW_RESPHEAD_FIELDS fields, and a head of SW_RESPHEAD_MAX bytes: the largest taken. */
static void test_accepted_at_the_limits(void **state)
{
	static char head[WORK_MAX];
	size_t len;

	(void)state;
	len = make_head(head, sizeof(head), SW_RESPHEAD_FIELDS, 0);
	check_good(head, len, 0, 200, 5);
	len = make_head(head, sizeof(head), 2, SW_RESPHEAD_MAX);
	check_good(head, len, 0, 200, 5);
	len = make_head(head, sizeof(head), SW_RESPHEAD_FIELDS, SW_RESPHEAD_MAX);
	check_good(head, len, 0, 200, 5);
}

/* ---- heads left to sockwayd ---- */

static const struct bad_head {
	const char *why;
	struct bytes in;
} bad_heads[] = {
	{"1xx", S("HTTP/1.1 100 Continue\r\nContent-Length: 5\r\n\r\n")},
	/* sockwayd writes the length as "123": not the bytes that came. */
	{"leading zeros", S("HTTP/1.1 404 Not Found\r\nContent-Length: 0000123\r\n\r\n")},
	{"leading zero", S("HTTP/1.1 200 OK\r\nContent-Length: 00\r\n\r\n")},
	{"1xx", S("HTTP/1.1 199 x\r\nContent-Length: 5\r\n\r\n")},
	{"101", S("HTTP/1.1 101 Switching Protocols\r\nContent-Length: 5\r\n\r\n")},
	{"204", S("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n")},
	{"304", S("HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n")},
	{"status 600", S("HTTP/1.1 600 x\r\nContent-Length: 5\r\n\r\n")},
	{"status 0xx", S("HTTP/1.1 099 x\r\nContent-Length: 5\r\n\r\n")},
	{"status digits", S("HTTP/1.1 2x0 OK\r\nContent-Length: 5\r\n\r\n")},
	{"HTTP/1.0", S("HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\n")},
	{"HTTP/1.2", S("HTTP/1.2 200 OK\r\nContent-Length: 5\r\n\r\n")},
	{"HTTP/2", S("HTTP/2.0 200 OK\r\nContent-Length: 5\r\n\r\n")},
	{"lower-case version", S("http/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")},
	{"no reason, no space", S("HTTP/1.1 200\r\nContent-Length: 5\r\n\r\n")},
	{"two spaces", S("HTTP/1.1  200 OK\r\nContent-Length: 5\r\n\r\n")},
	{"CTL in reason", S("HTTP/1.1 200 O\x01K\r\nContent-Length: 5\r\n\r\n")},
	{"NUL in reason", S("HTTP/1.1 200 O\x00K\r\nContent-Length: 5\r\n\r\n")},
	{"bare CR in reason", S("HTTP/1.1 200 O\rK\r\nContent-Length: 5\r\n\r\n")},
	{"no Content-Length", S("HTTP/1.1 200 OK\r\nX-A: b\r\n\r\n")},
	{"no fields", S("HTTP/1.1 200 OK\r\n\r\n")},
	{"two Content-Length",
	 S("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n")},
	{"two Content-Length",
	 S("HTTP/1.1 200 OK\r\ncontent-length: 5\r\nX: y\r\nCONTENT-LENGTH: 6\r\n\r\n")},
	{"Content-Length list", S("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n")},
	{"Content-Length non-digit", S("HTTP/1.1 200 OK\r\nContent-Length: 5a\r\n\r\n")},
	{"Content-Length sign", S("HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n")},
	{"Content-Length sign", S("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n")},
	{"Content-Length hex", S("HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n")},
	{"Content-Length empty", S("HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n")},
	{"Content-Length 16 digits",
	 S("HTTP/1.1 200 OK\r\nContent-Length: 0000000000000005\r\n\r\n")},
	{"Content-Length 20 digits",
	 S("HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551616\r\n\r\n")},
	{"Content-Length leading SP", S("HTTP/1.1 200 OK\r\nContent-Length:  5\r\n\r\n")},
	{"Content-Length trailing SP", S("HTTP/1.1 200 OK\r\nContent-Length: 5 \r\n\r\n")},
	{"Connection", S("HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 5\r\n\r\n")},
	{"Connection", S("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nconnection: close\r\n\r\n")},
	{"Connection empty", S("HTTP/1.1 200 OK\r\nCONNECTION: \r\nContent-Length: 5\r\n\r\n")},
	{"Keep-Alive", S("HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5\r\nContent-Length: 5\r\n\r\n")},
	{"Keep-Alive", S("HTTP/1.1 200 OK\r\nkEEP-aLIVE: 1\r\nContent-Length: 5\r\n\r\n")},
	{"Proxy-Connection",
	 S("HTTP/1.1 200 OK\r\nProxy-Connection: keep-alive\r\nContent-Length: 5\r\n\r\n")},
	{"TE", S("HTTP/1.1 200 OK\r\nTE: trailers\r\nContent-Length: 5\r\n\r\n")},
	{"TE", S("HTTP/1.1 200 OK\r\nContent-Length: 5\r\ntE: \r\n\r\n")},
	{"Transfer-Encoding", S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")},
	{"Transfer-Encoding",
	 S("HTTP/1.1 200 OK\r\nContent-Length: 5\r\ntransfer-encoding: identity\r\n\r\n")},
	{"Upgrade", S("HTTP/1.1 200 OK\r\nUpgrade: h2c\r\nContent-Length: 5\r\n\r\n")},
	{"Upgrade", S("HTTP/1.1 200 OK\r\nUPGRADE: \r\nContent-Length: 5\r\n\r\n")},
	{"no space after colon", S("HTTP/1.1 200 OK\r\nX-A:b\r\nContent-Length: 5\r\n\r\n")},
	{"HTAB after colon", S("HTTP/1.1 200 OK\r\nX-A:\tb\r\nContent-Length: 5\r\n\r\n")},
	{"two spaces after colon", S("HTTP/1.1 200 OK\r\nX-A:  b\r\nContent-Length: 5\r\n\r\n")},
	{"SP HTAB after colon", S("HTTP/1.1 200 OK\r\nX-A: \tb\r\nContent-Length: 5\r\n\r\n")},
	{"empty value, no SP", S("HTTP/1.1 200 OK\r\nX-A:\r\nContent-Length: 5\r\n\r\n")},
	{"value of spaces", S("HTTP/1.1 200 OK\r\nX-A:   \r\nContent-Length: 5\r\n\r\n")},
	{"trailing SP", S("HTTP/1.1 200 OK\r\nX-A: b \r\nContent-Length: 5\r\n\r\n")},
	{"trailing HTAB", S("HTTP/1.1 200 OK\r\nX-A: b\t\r\nContent-Length: 5\r\n\r\n")},
	{"SP before colon", S("HTTP/1.1 200 OK\r\nX-A : b\r\nContent-Length: 5\r\n\r\n")},
	{"obs-fold", S("HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\nContent-Length: 5\r\n\r\n")},
	{"obs-fold HTAB", S("HTTP/1.1 200 OK\r\nX-A: b\r\n\tc\r\nContent-Length: 5\r\n\r\n")},
	{"SP after status line", S("HTTP/1.1 200 OK\r\n X-A: b\r\nContent-Length: 5\r\n\r\n")},
	{"bare LF, status line", S("HTTP/1.1 200 OK\nContent-Length: 5\r\n\r\n")},
	{"bare LF, field", S("HTTP/1.1 200 OK\r\nContent-Length: 5\n\r\n")},
	{"bare LF, end", S("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\n")},
	{"bare CR, field", S("HTTP/1.1 200 OK\r\nX-A: b\rc\r\nContent-Length: 5\r\n\r\n")},
	{"CR CR", S("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\r\n")},
	{"empty name", S("HTTP/1.1 200 OK\r\n: b\r\nContent-Length: 5\r\n\r\n")},
	{"no colon", S("HTTP/1.1 200 OK\r\nX-A\r\nContent-Length: 5\r\n\r\n")},
	{"SP in name", S("HTTP/1.1 200 OK\r\nX A: b\r\nContent-Length: 5\r\n\r\n")},
	{"'@' in name", S("HTTP/1.1 200 OK\r\nX@A: b\r\nContent-Length: 5\r\n\r\n")},
	{"'/' in name", S("HTTP/1.1 200 OK\r\nX/A: b\r\nContent-Length: 5\r\n\r\n")},
	{"DEL in name", S("HTTP/1.1 200 OK\r\nX\x7f: b\r\nContent-Length: 5\r\n\r\n")},
	{"obs-text in name", S("HTTP/1.1 200 OK\r\nX\x80: b\r\nContent-Length: 5\r\n\r\n")},
	{"NUL in name", S("HTTP/1.1 200 OK\r\nX\x00: b\r\nContent-Length: 5\r\n\r\n")},
	{"NUL in value", S("HTTP/1.1 200 OK\r\nX-A: b\x00\r\nContent-Length: 5\r\n\r\n")},
	{"DEL in value", S("HTTP/1.1 200 OK\r\nX-A: \x7f\r\nContent-Length: 5\r\n\r\n")},
	{"CTL in value", S("HTTP/1.1 200 OK\r\nX-A: b\x1b[0m\r\nContent-Length: 5\r\n\r\n")},
	{"incomplete", S("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r")},
	{"incomplete", S("HTTP/1.1 200 ")},
	{"shorter than the fixed start", S("HTTP/1.1 200")},
};

static void check_bad(const char *why, const char *s, size_t len)
{
	struct scan sc = scan_head(s, len);

	if (sc.verdict == SCAN_ACCEPTED) {
		print_error("%s: accepted %u bytes of \"%s\"\n", why, sc.head_len, escape(s, len));
		fail();
	}
	check_tail_ignored(s, len, &sc);
}

static void test_refused_heads(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(bad_heads); i++)
		check_bad(bad_heads[i].why, bad_heads[i].in.s, bad_heads[i].in.len);
}

/* One field, or one byte, over the limits. */
static void test_refused_over_the_limits(void **state)
{
	static char head[WORK_MAX];
	struct sockwayd_view *v = malloc(sizeof(*v));
	size_t len;

	(void)state;
	assert_non_null(v);
	len = make_head(head, sizeof(head), SW_RESPHEAD_FIELDS + 1, 0);
	check_bad("too many fields", head, len);
	/* sockwayd's default max_headers is SW_RESPHEAD_FIELDS: it refuses the head too. */
	sockwayd_view(head, len, v);
	assert_int_equal(v->ret, -502);

	len = make_head(head, sizeof(head), 2, SW_RESPHEAD_MAX + 1);
	check_bad("too long", head, len);
	assert_int_equal(scan_head(head, len).verdict, SCAN_REFUSED);
	/* sockwayd would pass it on unchanged: it is the scanner's own cap that refuses it. */
	sockwayd_view(head, len, v);
	assert_int_equal(v->ret, SW_RESPHEAD_MAX + 1);
	assert_true(v->same);
	free(v);
}

/* ---- mutated heads ---- */

/* xorshift64*, with a fixed seed: the same heads on every run. */
/* The bytes that the scanner's states turn on. */
static const char mut_bytes[] = "\r\n \t:,;\"@/-0123456789"
				"connectionCONNECTIONlengthLENGTHteTEupgradeUPGRADEkeep-aliveKEEP"
				"transferTRANSFERproxyPROXYxX\x7f\x80\xff\x01\x1b";

static const struct bytes mut_pieces[] = {
	S("connection"),
	S("Connection"),
	S("content-length"),
	S("CONTENT-LENGTH"),
	S("te"),
	S("TE"),
	S("upgrade"),
	S("Keep-Alive"),
	S("transfer-encoding"),
	S("Proxy-Connection"),
	S(": "),
	S(":"),
	S("\r\n"),
	S("\r\n\r\n"),
	S("\n"),
	S("\r"),
	S("  "),
	S("\t"),
	S("00"),
	S("9999999999999999"),
	S("5, 5"),
	S(" 5"),
	S("5 "),
	S("\x00"),
	S("1"),
};

/* Whole field lines, put in at the start of a line. */
static const struct bytes mut_lines[] = {
	S("Connection: close\r\n"),
	S("Content-Length: 5\r\n"),
	S(" folded\r\n"),
	S("\tfolded\r\n"),
	S("X-A: b\r\n"),
	S("X-Empty: \r\n"),
	S("Keep-Alive: timeout=5\r\n"),
	S("TE: trailers\r\n"),
	S("Upgrade: h2c\r\n"),
	S("Transfer-Encoding: chunked\r\n"),
	S("Proxy-Connection: keep-alive\r\n"),
	S("x-obs: \x80\xff\r\n"),
	S("X-Trail: a \r\n"),
	S("X-Lead:  a\r\n"),
	S("X-Tab:\ta\r\n"),
	S("X-NoSp:a\r\n"),
	S("X : a\r\n"),
	S("X\r\n"),
	S("content-length: 0000000000000007\r\n"),
	S("Content-Length: 123456789012345\r\n"),
	S("Connection-X: 1\r\n"),
	S("TE-X: 1\r\n"),
	S("Upgrad: 1\r\n"),
	S("Content-Lengths: 1\r\n"),
	S("X-Conn: close\r\n"),
	S("\r\n"),
	S("X: a\n"),
};

static const char *const mut_statuses[] = {
	"100", "101", "199", "200", "201", "204", "206", "299", "304",
	"399", "404", "500", "599", "600", "099", "2a0", "20 ",
};

/* The heads mutations start from: the accepted table, plus the limits' heads. */
struct base {
	char s[WORK_MAX];
	size_t len;
};

static void mutate(char *s, size_t *len)
{
	static char line[WORK_MAX];
	size_t at = *len ? rnd(*len + 1) : 0, end;
	const struct bytes *p;
	char c;

	switch (rnd(10)) {
	case 0: /* insert a byte */
		c = mut_bytes[rnd(sizeof(mut_bytes) - 1)];
		splice(s, len, at, 0, &c, 1);
		break;
	case 1: /* delete a byte */
		splice(s, len, at, 1, NULL, 0);
		break;
	case 2: /* replace a byte */
		c = mut_bytes[rnd(sizeof(mut_bytes) - 1)];
		splice(s, len, at, 1, &c, 1);
		break;
	case 3: /* insert a piece of a name, a value or a line end */
		p = &mut_pieces[rnd(ARRAY_SIZE(mut_pieces))];
		splice(s, len, at, 0, p->s, p->len);
		break;
	case 4:
	case 5: /* insert a whole line */
		p = &mut_lines[rnd(ARRAY_SIZE(mut_lines))];
		splice(s, len, rnd_line_start(s, *len), 0, p->s, p->len);
		break;
	case 6: /* delete a whole line */
		at = rnd_line_start(s, *len);
		splice(s, len, at, line_end(s, *len, at) - at, NULL, 0);
		break;
	case 7: /* duplicate a whole line */
		at = rnd_line_start(s, *len);
		end = line_end(s, *len, at);
		memcpy(line, s + at, end - at);
		splice(s, len, at, 0, line, end - at);
		break;
	case 8: /* flip the case of a letter */
		if (at < *len && ((s[at] | 0x20) >= 'a' && (s[at] | 0x20) <= 'z'))
			s[at] ^= 0x20;
		break;
	default: /* another status code */
		if (*len >= 12)
			memcpy(s + 9, mut_statuses[rnd(ARRAY_SIZE(mut_statuses))], 3);
		break;
	}
}

#define MUTATED_HEADS 200000
/* Of the mutated heads, at least this many must be accepted, or the test proves little. */
#define MUTATED_ACCEPTED_MIN 20000

/*
 * Mutated heads, each checked both ways: every head the scanner takes is one that sockwayd
 * passes on unchanged, and every head that sockwayd passes on unchanged, within the
 * scanner's limits, is taken (a miss costs the fast path, silently).
 */
static void test_mutated_heads(void **state)
{
	struct base *bases = calloc(ARRAY_SIZE(good_heads) + 3, sizeof(*bases));
	struct sockwayd_view *v = malloc(sizeof(*v));
	static char s[WORK_MAX + sizeof(tail)];
	size_t nr_bases = 0, len, i;
	unsigned int accepted = 0, refused = 0, k, nr;
	struct scan sc;

	(void)state;
	assert_non_null(bases);
	assert_non_null(v);
	for (i = 0; i < ARRAY_SIZE(good_heads); i++, nr_bases++) {
		memcpy(bases[nr_bases].s, good_heads[i].in.s, good_heads[i].in.len);
		bases[nr_bases].len = good_heads[i].in.len;
	}
	bases[nr_bases].len = make_head(bases[nr_bases].s, WORK_MAX, SW_RESPHEAD_FIELDS, 0);
	nr_bases++;
	bases[nr_bases].len = make_head(bases[nr_bases].s, WORK_MAX, 2, SW_RESPHEAD_MAX);
	nr_bases++;
	bases[nr_bases].len = make_head(bases[nr_bases].s, WORK_MAX, 2, SW_RESPHEAD_MAX - 40);
	nr_bases++;

	for (i = 0; i < MUTATED_HEADS; i++) {
		const struct base *b = &bases[rnd(nr_bases)];

		memcpy(s, b->s, b->len);
		len = b->len;
		for (k = 0, nr = 1 + rnd(3); k < nr; k++)
			mutate(s, &len);

		sc = scan_head(s, len);
		sockwayd_view(s, len, v);
		if (sc.verdict == SCAN_ACCEPTED) {
			accepted++;
			check_accepted(s, len, &sc);
		} else {
			refused++;
			if (passes_unchanged(v)) {
				print_error("refused (verdict %d) a head sockwayd passes on "
					    "unchanged: \"%s\"\n",
					    sc.verdict, escape(s, len));
				fail();
			}
		}
		check_tail_ignored(s, len, &sc);
	}
	print_message("%u mutated heads: %u accepted, %u refused\n", MUTATED_HEADS, accepted,
		      refused);
	assert_true(accepted >= MUTATED_ACCEPTED_MIN);
	free(v);
	free(bases);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accepted_heads),
		cmocka_unit_test(test_accepted_at_the_limits),
		cmocka_unit_test(test_refused_heads),
		cmocka_unit_test(test_refused_over_the_limits),
		cmocka_unit_test(test_mutated_heads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
