// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * The request heads the kernel routes itself (include/sockway/reqhead.h). Each head the
 * scanner takes must be one that sockwayd's parser takes too, with the same method, path,
 * Host, fields and framing, and that head_request_build turns into exactly what the kernel
 * sends: the head with its Host line moved up behind the request line, without its
 * "Connection: keep-alive" line, with X-Forwarded-For and X-Forwarded-Proto before the
 * empty line (kernel_head models what bpf/kroute.h does to the message; test_kroute.sh
 * checks the real one at a backend). Otherwise a backend could tell the two paths
 * apart, or get a request that sockwayd would have refused. Refusing is safe, but a head
 * refused for no reason loses the fast path silently, so the mutation test checks both
 * ways.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "sockway/reqhead.h"
#include "sockway/norm.h"
#include "http.h"
#include "headers.h"

#define WORK_MAX (2 * SW_REQHEAD_MAX)
#include "headtest.h"
/* The client's address as the kernel writes it, and sockwayd. */
#define PEER	"10.1.2.3"
#define PEER_BE 0x0302010aU /* 10.1.2.3 in network byte order, on a little-endian host */

/* The bytes after a head: a body, then what looks like a second request. */
static const char tail[] = "0123456789\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n\n\r \x00\xff";

enum scan_verdict { SCAN_SHORT, SCAN_REFUSED, SCAN_ACCEPTED };

struct scan {
	enum scan_verdict verdict;
	struct sw_reqhead h;
};

/* The scan as sk_msg runs it: byte by byte from offset 0, never past SW_REQHEAD_MAX. */
static void scan_head(const char *s, size_t len, struct scan *res)
{
	size_t end = len < SW_REQHEAD_MAX ? len : SW_REQHEAD_MAX;
	__u8 *b = (__u8 *)dup_exact(s, len);
	size_t i;
	int r = 0;

	/* The scratch sk_msg scans into holds the last request's scan: begin must reset it. */
	memset(&res->h, 0xa5, sizeof(res->h));
	sw_reqhead_begin(&res->h);
	for (i = 0; i < end; i++) {
		r = sw_reqhead_step(&res->h, b[i], i);
		if (r)
			break;
	}
	if (r == 1)
		res->verdict = SCAN_ACCEPTED;
	else if (r < 0 || len >= SW_REQHEAD_MAX)
		res->verdict = SCAN_REFUSED;
	else
		res->verdict = SCAN_SHORT;
	free(b);
}

/* The normal form of a path (norm.h), as the decision makes it; -1 if refused. */
static int normal_path(const char *path, size_t len, char *out)
{
	struct sw_path_norm pn;
	size_t i;

	if (!len || path[0] != '/')
		return -1;
	sw_path_init(&pn, (__u8 *)out);
	for (i = 1; i < len; i++)
		if (sw_path_feed(&pn, (__u8 *)out, path[i]))
			return -1;
	if (sw_path_end(&pn, (__u8 *)out))
		return -1;
	return (int)pn.len;
}

/* What sockwayd makes of a head: its parse, and the head it sends upstream. */
struct sockwayd_view {
	int ret;
	struct http_request req;
	size_t path_len; /* the path without the query */
	char norm[WORK_MAX];
	int norm_len;
	struct buf out; /* head_request_build's, when ret > 0 and the path normalises */
};

/* Parses s in place: the results point into it, and compare with the scan's offsets. */
static void sockwayd_view(const char *b, size_t len, struct sockwayd_view *v)
{
	struct head_request_opts o = {.peer_ip = PEER};
	struct http_limits lim;
	const char *q;

	http_limits_default(&lim);
	buf_free(&v->out);
	v->norm_len = -1;
	v->ret = http_parse_request(b, len, &lim, &v->req);
	if (v->ret > 0 && v->req.path[0] == '/') {
		q = memchr(v->req.path, '?', v->req.path_len);
		v->path_len = q ? (size_t)(q - v->req.path) : v->req.path_len;
		v->norm_len = normal_path(v->req.path, v->path_len, v->norm);
		if (v->norm_len >= 0) {
			o.path = v->norm;
			o.path_len = v->norm_len;
			o.query = v->req.path + v->path_len;
			o.query_len = v->req.path_len - v->path_len;
			assert_int_equal(head_request_build(&v->out, &v->req, &o, NULL), 0);
		}
	}
}

/* Where a head's lines are, for kernel_head. */
struct head_lines {
	size_t head_len;
	size_t line0_end;	   /* the request line's end, CRLF included */
	size_t host_off, host_len; /* the Host line */
	size_t conn_off, conn_len; /* the Connection line (0, 0: none) */
};

/*
 * What the kernel sends for a head it routes: the request line, the Host line, then the
 * other field lines in order but the Connection line, the insertion before the empty line.
 */
static size_t kernel_head(const char *s, const struct head_lines *l, char *out)
{
	__u8 ip[16];
	size_t n = 0, ip_len = sw_ipv4_text(PEER_BE, ip), at;

	memcpy(out, s, l->line0_end);
	n = l->line0_end;
	memcpy(out + n, s + l->host_off, l->host_len);
	n += l->host_len;
	for (at = l->line0_end; at < l->head_len - 2;) {
		const char *eol = memchr(s + at, '\n', l->head_len - 2 - at);
		size_t len = eol ? (size_t)(eol + 1 - (s + at)) : l->head_len - 2 - at;

		if (at != l->host_off && (!l->conn_len || at != l->conn_off)) {
			memcpy(out + n, s + at, len);
			n += len;
		}
		at += len;
	}
	memcpy(out + n, SW_KROUTE_XFF, SW_KROUTE_XFF_LEN);
	n += SW_KROUTE_XFF_LEN;
	memcpy(out + n, ip, ip_len);
	n += ip_len;
	memcpy(out + n, SW_KROUTE_XFP, SW_KROUTE_XFP_LEN);
	n += SW_KROUTE_XFP_LEN;
	memcpy(out + n, "\r\n", 2);
	return n + 2;
}

static bool method_routed(__u32 bit)
{
	return bit == SW_METHOD_GET || bit == SW_METHOD_POST || bit == SW_METHOD_PUT ||
	       bit == SW_METHOD_DELETE || bit == SW_METHOD_PATCH || bit == SW_METHOD_OPTIONS;
}

/* The header of sockwayd's parse that a field of the scan names: same bytes, same place. */
static bool field_same(const char *s, const struct sw_reqhead_field *f, const struct http_header *h)
{
	return h->name == s + f->name_off && h->name_len == f->name_len &&
	       h->value == s + f->value_off && h->value_len == f->value_len &&
	       f->hash == sw_hash64_of(h->name, h->name_len, 1);
}

/* An accepted head, checked against sockwayd. */
static void check_accepted(const char *s, size_t len, const struct scan *sc)
{
	struct sockwayd_view *v = calloc(1, sizeof(*v));
	const struct sw_reqhead *h = &sc->h;
	static char want[WORK_MAX + 64];
	const char *sb;
	size_t want_len;
	unsigned i, k;

	assert_non_null(v);
	assert_true(h->head_len <= len && h->head_len <= SW_REQHEAD_MAX);
	/* Exactly len bytes on the heap: reading past is an ASan error. */
	sb = dup_exact(s, len);
	sockwayd_view(sb, h->head_len, v);
	if (v->ret != (int)h->head_len) {
		print_error("scanner took %u bytes, sockwayd's parser returned %d: \"%s\"\n",
			    h->head_len, v->ret, escape(s, len));
		fail();
	}
	assert_int_equal(v->req.method_bit, h->method);
	assert_true(method_routed(v->req.method_bit));
	assert_int_equal(v->req.version_minor, 1);
	assert_true(v->req.keep_alive);
	assert_false(v->req.expect_continue);
	assert_false(v->req.upgrade);
	assert_null(v->req.authority);
	assert_ptr_equal(v->req.path, sb + h->path_off);
	assert_int_equal(v->req.path_len, h->target_len);
	assert_int_equal(v->path_len, h->path_len);
	assert_ptr_equal(v->req.host, sb + h->host_off);
	assert_int_equal(v->req.host_len, h->host_len);
	if (h->cl_digits) {
		assert_int_equal(v->req.body, HTTP_BODY_LENGTH);
		assert_int_equal(v->req.content_length, h->body_len);
	} else {
		assert_int_equal(v->req.body, HTTP_BODY_NONE);
		assert_int_equal(h->body_len, 0);
	}
	/* Every field sockwayd saw, in order, in the table. */
	for (i = 0, k = 0; i < v->req.nr_headers; i++) {
		const struct http_header *hd = &v->req.headers[i];

		if (hd->name_len == 10 && !strncasecmp(hd->name, "connection", 10)) {
			assert_true(h->conn_line_len);
			assert_ptr_equal(hd->name, sb + h->conn_off);
		}
		assert_true(k < h->fields);
		assert_true(field_same(sb, &h->field[k], hd));
		k++;
	}
	assert_int_equal(k, h->fields);
	/* The head sockwayd sends is the kernel's, when the path is normal already (else the
	 * kernel does not route it). */
	if (v->norm_len == (int)h->path_len && !memcmp(v->norm, sb + h->path_off, h->path_len)) {
		struct head_lines l = {.head_len = h->head_len,
				       .line0_end = h->line0_end,
				       .host_off = h->host_line_off,
				       .host_len = h->host_line_len,
				       .conn_off = h->conn_off,
				       .conn_len = h->conn_line_len};

		want_len = kernel_head(sb, &l, want);
		if (v->out.len != want_len || memcmp(buf_head(&v->out), want, want_len)) {
			print_error("sockwayd sends \"%s\"\n",
				    escape(buf_head(&v->out), v->out.len));
			print_error("the kernel sends \"%s\"\n", escape(want, want_len));
			fail();
		}
	}
	/* With the rest of the input, the parser still ends the head where the scanner did. */
	sockwayd_view(sb, len, v);
	assert_int_equal(v->ret, h->head_len);
	buf_free(&v->out);
	free((void *)sb);
	free(v);
}

/* The answer for a head does not depend on the bytes after it. */
static void check_tail_ignored(const char *s, size_t len, const struct scan *sc)
{
	char *more = malloc(len + sizeof(tail));
	struct scan *again = malloc(sizeof(*again));

	assert_non_null(more);
	assert_non_null(again);
	memcpy(more, s, len);
	memcpy(more + len, tail, sizeof(tail));
	scan_head(more, len + sizeof(tail), again);
	if (sc->verdict == SCAN_ACCEPTED) {
		assert_int_equal(again->verdict, SCAN_ACCEPTED);
		assert_int_equal(again->h.head_len, sc->h.head_len);
		assert_int_equal(again->h.body_len, sc->h.body_len);
		scan_head(s, sc->h.head_len, again);
		assert_int_equal(again->verdict, SCAN_ACCEPTED);
		assert_int_equal(again->h.head_len, sc->h.head_len);
	} else if (sc->verdict == SCAN_REFUSED) {
		assert_int_equal(again->verdict, SCAN_REFUSED);
	}
	free(again);
	free(more);
}

/*
 * "GET /p HTTP/1.1", "Host: h" and nr_fields fields in all, the last "Content-Length: 5".
 * With total set, the second field is "X-Pad: ppp...", as long as makes total bytes.
 */
static size_t make_head(char *out, size_t cap, unsigned int nr_fields, size_t total)
{
	const size_t top = strlen("GET /p HTTP/1.1\r\nHost: h\r\n");
	unsigned int fillers, i;
	size_t n, pad;

	assert_true(nr_fields >= 2u + !!total);
	fillers = nr_fields - 2 - !!total;
	n = snprintf(out, cap, "GET /p HTTP/1.1\r\nHost: h\r\n");
	for (i = 0; i < fillers; i++)
		n += snprintf(out + n, cap - n, "X-Field-%03u: v\r\n", i);
	n += snprintf(out + n, cap - n, "Content-Length: 5\r\n\r\n");
	assert_true(n < cap);
	if (!total)
		return n;
	assert_true(total >= n + 10 && total <= cap);
	pad = total - n - 9;
	memmove(out + top + 9 + pad, out + top, n - top);
	memcpy(out + top, "X-Pad: ", 7);
	memset(out + top + 7, 'p', pad);
	memcpy(out + top + 7 + pad, "\r\n", 2);
	return total;
}

/* ---- heads the kernel routes ---- */

static const struct good_head {
	struct bytes in;
	__u32 head_len; /* 0: all of in */
	__u64 body_len;
} good_heads[] = {
	/* What wrk and curl send. */
	{S("GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"), 0, 0},
	{S("GET /api/x HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: curl/7.88.1\r\n"
	   "Accept: */*\r\n\r\n"),
	 0, 0},
	/* python-requests: its Connection line does not go on. */
	{S("GET /a/b?c=d&e HTTP/1.1\r\nHost: a.example\r\nUser-Agent: python-requests/2.28.1\r\n"
	   "Accept-Encoding: gzip, deflate\r\nAccept: */*\r\nConnection: keep-alive\r\n\r\n"),
	 0, 0},
	{S("GET / HTTP/1.1\r\nHost: h\r\nConnection: Keep-Alive\r\nX-A: b\r\n\r\n"), 0, 0},
	{S("GET / HTTP/1.1\r\nHost: h\r\nCONNECTION: KEEP-ALIVE\r\n\r\n"), 0, 0},
	{S("GET /api?user=1 HTTP/1.1\r\nHost: example.com\r\nX-SERVE-SHARD-KEY: user-42\r\n\r\n"),
	 0, 0},
	/* The Host elsewhere (wrk's Lua wrk.format, Java's HttpURLConnection): moved up. */
	{S("GET /keyed HTTP/1.1\r\nX-SERVE-SHARD-KEY: key-0\r\nHost: 127.0.0.1:8080\r\n\r\n"), 0,
	 0},
	{S("GET /x HTTP/1.1\r\nUser-Agent: Java/17.0.15\r\nHost: h:9\r\nAccept: */*\r\n"
	   "Connection: keep-alive\r\n\r\n"),
	 0, 0},
	{S("POST /p HTTP/1.1\r\nConnection: keep-alive\r\nContent-Length: 2\r\nX-A: b\r\n"
	   "Host: a.example\r\n\r\nhi"),
	 88, 2},
	{S("POST /submit HTTP/1.1\r\nHost: h:1\r\nContent-Type: application/json\r\n"
	   "Content-Length: 13\r\n\r\n"),
	 0, 13},
	{S("PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"), 0, 0},
	{S("DELETE /x/ HTTP/1.1\r\nHost: h\r\n\r\n"), 0, 0},
	{S("PATCH /x HTTP/1.1\r\nHost: h\r\ncontent-length: 999999\r\n\r\n"), 0, 999999},
	{S("OPTIONS /x HTTP/1.1\r\nHost: h\r\n\r\n"), 0, 0},
	/* Empty values, obs-text, inner whitespace, every token byte but '_'. */
	{S("GET /p HTTP/1.1\r\nHost: h\r\nX-Empty: \r\nX-Obs: caf\xc3\xa9\x80\xff\r\n"
	   "X-Inner: a \t b:c\r\n!#$%&'*+-.^`|~09AZaz: 1\r\n\r\n"),
	 0, 0},
	/* Names that are refused ones but for a byte. */
	{S("GET /p HTTP/1.1\r\nHost: h\r\nHosts: 1\r\nT: 2\r\nExpects: 3\r\nX-Forwarded: 4\r\n"
	   "X-Forwarded-Fo: 5\r\nConnections: 6\r\nForwarde: 7\r\nX-Real-Ip2: 8\r\n\r\n"),
	 0, 0},
	/* Host bytes sockwayd writes as they are. */
	{S("GET /p HTTP/1.1\r\nHost: a-b.c_d~e!$&'()*+;=9\r\n\r\n"), 0, 0},
	{S("GET /p HTTP/1.1\r\nHost: h:65535\r\n\r\n"), 0, 0},
	/* A target with every byte sockwayd's parser takes in it. */
	{S("GET /a%20b/c;p=1/~!$&'()*+,=:@[]{}|^`\"<>\\?q=/?x HTTP/1.1\r\nHost: h\r\n\r\n"), 0, 0},
	/* A long name, past the 24 bytes the scanner compares. */
	{S("GET /p HTTP/1.1\r\nHost: h\r\nX-A-Very-Long-Header-Name-Indeed: 1\r\n\r\n"), 0, 0},
	/* The body starts right after the head. */
	{S("POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"), 48, 5},
};

static void check_good(const char *s, size_t len, __u32 head_len, __u64 body_len)
{
	struct scan *sc = malloc(sizeof(*sc));

	assert_non_null(sc);
	scan_head(s, len, sc);
	if (sc->verdict != SCAN_ACCEPTED) {
		print_error("refused (verdict %d): \"%s\"\n", sc->verdict, escape(s, len));
		fail();
	}
	assert_int_equal(sc->h.head_len, head_len ? head_len : len);
	assert_int_equal(sc->h.body_len, body_len);
	check_accepted(s, len, sc);
	check_tail_ignored(s, len, sc);
	free(sc);
}

static void test_accepted_heads(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(good_heads); i++)
		check_good(good_heads[i].in.s, good_heads[i].in.len, good_heads[i].head_len,
			   good_heads[i].body_len);
}

/* The field table, and the address the kernel writes. */
static void test_fields_and_address(void **state)
{
	static const char s[] = "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n"
				"X-SERVE-SHARD-KEY: k1\r\nAccept: */*\r\n\r\n";
	struct scan *sc = malloc(sizeof(*sc));
	static const struct {
		__u32 addr;
		const char *text;
	} addrs[] = {
		{0x0100007fU, "127.0.0.1"},
		{0x00000000U, "0.0.0.0"},
		{0xffffffffU, "255.255.255.255"},
		{0x0a6400c0U, "192.0.100.10"},
	};
	__u8 text[16];
	size_t i, n;

	(void)state;
	assert_non_null(sc);
	scan_head(s, sizeof(s) - 1, sc);
	assert_int_equal(sc->verdict, SCAN_ACCEPTED);
	assert_int_equal(sc->h.fields, 4);
	assert_int_equal(sc->h.field[0].hash, sw_hash64_of("host", 4, 0));
	assert_int_equal(sc->h.field[1].hash, sw_hash64_of("connection", 10, 0));
	assert_int_equal(sc->h.field[2].hash, sw_hash64_of("x-serve-shard-key", 17, 0));
	assert_int_equal(sc->h.field[2].value_len, 2);
	assert_memory_equal(s + sc->h.field[2].value_off, "k1", 2);
	assert_int_equal(sc->h.field[3].hash, sw_hash64_of("accept", 6, 0));
	assert_int_equal(sc->h.conn_off, 25);
	assert_int_equal(sc->h.conn_line_len, 24);
	for (i = 0; i < ARRAY_SIZE(addrs); i++) {
		n = sw_ipv4_text(addrs[i].addr, text);
		assert_int_equal(n, strlen(addrs[i].text));
		assert_memory_equal(text, addrs[i].text, n);
	}
	assert_true(SW_KROUTE_INSERT_MAX >= SW_KROUTE_XFF_LEN + 15 + SW_KROUTE_XFP_LEN);
	free(sc);
}

/* SW_REQHEAD_FIELDS fields, and a head of SW_REQHEAD_MAX bytes: the largest taken. */
static void test_accepted_at_the_limits(void **state)
{
	static char head[WORK_MAX];
	size_t len;

	(void)state;
	len = make_head(head, sizeof(head), SW_REQHEAD_FIELDS, 0);
	check_good(head, len, 0, 5);
	len = make_head(head, sizeof(head), 3, SW_REQHEAD_MAX);
	check_good(head, len, 0, 5);
	len = make_head(head, sizeof(head), SW_REQHEAD_FIELDS, SW_REQHEAD_MAX);
	check_good(head, len, 0, 5);
}

/* ---- heads left to sockwayd ---- */

static const struct bad_head {
	const char *why;
	struct bytes in;
} bad_heads[] = {
	{"HEAD", S("HEAD / HTTP/1.1\r\nHost: h\r\n\r\n")},
	{"TRACE", S("TRACE / HTTP/1.1\r\nHost: h\r\n\r\n")},
	{"CONNECT", S("CONNECT h:80 HTTP/1.1\r\nHost: h:80\r\n\r\n")},
	{"other method", S("PURGE / HTTP/1.1\r\nHost: h\r\n\r\n")},
	{"lower-case method", S("get / HTTP/1.1\r\nHost: h\r\n\r\n")},
	{"long method", S("GETGETGET / HTTP/1.1\r\nHost: h\r\n\r\n")},
	{"leading CRLF", S("\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n")},
	{"two spaces", S("GET  / HTTP/1.1\r\nHost: h\r\n\r\n")},
	{"absolute form", S("GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n")},
	{"asterisk form", S("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n")},
	{"'#' in target", S("GET /a#b HTTP/1.1\r\nHost: h\r\n\r\n")},
	{"CTL in target", S("GET /a\x01 HTTP/1.1\r\nHost: h\r\n\r\n")},
	{"obs-text in target", S("GET /a\x80 HTTP/1.1\r\nHost: h\r\n\r\n")},
	{"HTTP/1.0", S("GET / HTTP/1.0\r\nHost: h\r\n\r\n")},
	{"HTTP/1.2", S("GET / HTTP/1.2\r\nHost: h\r\n\r\n")},
	{"lower-case version", S("GET / http/1.1\r\nHost: h\r\n\r\n")},
	{"bare LF, request line", S("GET / HTTP/1.1\nHost: h\r\n\r\n")},
	{"no Host", S("GET / HTTP/1.1\r\nX-A: b\r\n\r\n")},
	{"no fields", S("GET / HTTP/1.1\r\n\r\n")},
	{"lower-case Host name", S("GET / HTTP/1.1\r\nhost: h\r\n\r\n")},
	{"lower-case Host name, later", S("GET / HTTP/1.1\r\nX-A: b\r\nhost: h\r\n\r\n")},
	{"upper-case Host name, later", S("GET / HTTP/1.1\r\nX-A: b\r\nHOST: h\r\n\r\n")},
	{"Host later, two SP", S("GET / HTTP/1.1\r\nX-A: b\r\nHost:  h\r\n\r\n")},
	{"Host later, trailing dot", S("GET / HTTP/1.1\r\nX-A: b\r\nHost: h.\r\n\r\n")},
	{"two Hosts, later", S("GET / HTTP/1.1\r\nX-A: b\r\nHost: h\r\nX-B: c\r\nHost: h\r\n\r\n")},
	{"Host last, no LF", S("GET / HTTP/1.1\r\nX-A: b\r\nHost: h\r\n\r")},
	{"Host without SP", S("GET / HTTP/1.1\r\nHost:h\r\n\r\n")},
	{"Host two SP", S("GET / HTTP/1.1\r\nHost:  h\r\n\r\n")},
	{"empty Host", S("GET / HTTP/1.1\r\nHost: \r\n\r\n")},
	{"upper-case Host", S("GET / HTTP/1.1\r\nHost: Example.com\r\n\r\n")},
	{"Host trailing dot", S("GET / HTTP/1.1\r\nHost: h.\r\n\r\n")},
	{"Host trailing dot, port", S("GET / HTTP/1.1\r\nHost: h.:80\r\n\r\n")},
	{"Host IPv6", S("GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n")},
	{"Host empty port", S("GET / HTTP/1.1\r\nHost: h:\r\n\r\n")},
	{"Host long port", S("GET / HTTP/1.1\r\nHost: h:123456\r\n\r\n")},
	{"Host port letters", S("GET / HTTP/1.1\r\nHost: h:8a\r\n\r\n")},
	{"Host escape", S("GET / HTTP/1.1\r\nHost: h%41\r\n\r\n")},
	{"Host ','", S("GET / HTTP/1.1\r\nHost: a,b\r\n\r\n")},
	{"Host '@'", S("GET / HTTP/1.1\r\nHost: u@h\r\n\r\n")},
	{"Host trailing SP", S("GET / HTTP/1.1\r\nHost: h \r\n\r\n")},
	{"two Hosts", S("GET / HTTP/1.1\r\nHost: h\r\nHost: h\r\n\r\n")},
	{"two Hosts", S("GET / HTTP/1.1\r\nHost: h\r\nhOST: i\r\n\r\n")},
	{"Expect", S("POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
		     "Content-Length: 1\r\n\r\n")},
	{"Connection close", S("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")},
	{"Connection list", S("GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, x\r\n\r\n")},
	{"Connection, a tab", S("GET / HTTP/1.1\r\nHost: h\r\nConnection:\tkeep-alive\r\n\r\n")},
	{"Connection other", S("GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alivE2\r\n\r\n")},
	{"Connection empty", S("GET / HTTP/1.1\r\nHost: h\r\nConnection: \r\n\r\n")},
	{"two Connection", S("GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n"
			     "Connection: keep-alive\r\n\r\n")},
	{"Keep-Alive", S("GET / HTTP/1.1\r\nHost: h\r\nKeep-Alive: 5\r\n\r\n")},
	{"Proxy-Connection",
	 S("GET / HTTP/1.1\r\nHost: h\r\nProxy-Connection: keep-alive\r\n\r\n")},
	{"TE", S("GET / HTTP/1.1\r\nHost: h\r\nTE: trailers\r\n\r\n")},
	{"Upgrade", S("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n")},
	{"Transfer-Encoding",
	 S("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")},
	{"Forwarded", S("GET / HTTP/1.1\r\nHost: h\r\nForwarded: for=1.2.3.4\r\n\r\n")},
	{"X-Forwarded-For", S("GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n")},
	{"X-Forwarded-Proto", S("GET / HTTP/1.1\r\nHost: h\r\nx-forwarded-proto: https\r\n\r\n")},
	{"X-Forwarded-Host", S("GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-Host: evil\r\n\r\n")},
	{"X-Forwarded-Port", S("GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-Port: 1\r\n\r\n")},
	{"X-Forwarded-Prefix", S("GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-Prefix: /a\r\n\r\n")},
	{"X-Forwarded-Server", S("GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-Server: a\r\n\r\n")},
	{"X-Real-IP", S("GET / HTTP/1.1\r\nHost: h\r\nX-Real-IP: 1.2.3.4\r\n\r\n")},
	{"True-Client-IP", S("GET / HTTP/1.1\r\nHost: h\r\nTrue-Client-IP: 1.2.3.4\r\n\r\n")},
	{"X-Client-IP", S("GET / HTTP/1.1\r\nHost: h\r\nX-Client-IP: 1.2.3.4\r\n\r\n")},
	{"X-Original-URL", S("GET / HTTP/1.1\r\nHost: h\r\nX-Original-URL: /admin\r\n\r\n")},
	{"X-Rewrite-URL", S("GET / HTTP/1.1\r\nHost: h\r\nX-Rewrite-URL: /admin\r\n\r\n")},
	{"X-Sockway-Shadow", S("GET / HTTP/1.1\r\nHost: h\r\nX-Sockway-Shadow: 1\r\n\r\n")},
	{"'_' in name", S("GET / HTTP/1.1\r\nHost: h\r\nX_Forwarded_For: 1.2.3.4\r\n\r\n")},
	{"leading zero", S("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 05\r\n\r\n")},
	{"CL 7 digits", S("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1000000\r\n\r\n")},
	{"two CL",
	 S("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n")},
	{"CL empty", S("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \r\n\r\n")},
	{"CL list", S("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1, 1\r\n\r\n")},
	{"CL sign", S("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +1\r\n\r\n")},
	{"trailing SP", S("GET / HTTP/1.1\r\nHost: h\r\nX-A: b \r\n\r\n")},
	{"no SP after colon", S("GET / HTTP/1.1\r\nHost: h\r\nX-A:b\r\n\r\n")},
	{"HTAB after colon", S("GET / HTTP/1.1\r\nHost: h\r\nX-A:\tb\r\n\r\n")},
	{"two SP after colon", S("GET / HTTP/1.1\r\nHost: h\r\nX-A:  b\r\n\r\n")},
	{"empty value, no SP", S("GET / HTTP/1.1\r\nHost: h\r\nX-A:\r\n\r\n")},
	{"SP before colon", S("GET / HTTP/1.1\r\nHost: h\r\nX-A : b\r\n\r\n")},
	{"obs-fold", S("GET / HTTP/1.1\r\nHost: h\r\nX-A: b\r\n c\r\n\r\n")},
	{"bare LF, field", S("GET / HTTP/1.1\r\nHost: h\r\nX-A: b\n\r\n")},
	{"bare LF, end", S("GET / HTTP/1.1\r\nHost: h\r\n\n")},
	{"bare CR", S("GET / HTTP/1.1\r\nHost: h\r\nX-A: b\rc\r\n\r\n")},
	{"NUL in value", S("GET / HTTP/1.1\r\nHost: h\r\nX-A: b\x00\r\n\r\n")},
	{"DEL in value", S("GET / HTTP/1.1\r\nHost: h\r\nX-A: \x7f\r\n\r\n")},
	{"empty name", S("GET / HTTP/1.1\r\nHost: h\r\n: b\r\n\r\n")},
	{"obs-text in name", S("GET / HTTP/1.1\r\nHost: h\r\nX\x80: b\r\n\r\n")},
	{"incomplete", S("GET / HTTP/1.1\r\nHost: h\r\n\r")},
	{"incomplete", S("GET / HTTP/1.1\r\nHo")},
};

static void check_bad(const char *why, const char *s, size_t len)
{
	struct scan *sc = malloc(sizeof(*sc));

	assert_non_null(sc);
	scan_head(s, len, sc);
	if (sc->verdict == SCAN_ACCEPTED) {
		print_error("%s: accepted %u bytes of \"%s\"\n", why, sc->h.head_len,
			    escape(s, len));
		fail();
	}
	check_tail_ignored(s, len, sc);
	free(sc);
}

static void test_refused_heads(void **state)
{
	static char path[400];
	size_t i, n;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(bad_heads); i++)
		check_bad(bad_heads[i].why, bad_heads[i].in.s, bad_heads[i].in.len);
	/* A path the kernel's decision cannot hold (SW_DECIDE_PATH_MAX bytes). */
	n = snprintf(path, sizeof(path), "GET /");
	memset(path + n, 'a', SW_DECIDE_PATH_MAX - 1);
	n += SW_DECIDE_PATH_MAX - 1;
	n += snprintf(path + n, sizeof(path) - n, " HTTP/1.1\r\nHost: h\r\n\r\n");
	check_bad("long path", path, n);
}

/* One field, or one byte, over the limits. */
static void test_refused_over_the_limits(void **state)
{
	static char head[WORK_MAX];
	struct scan *sc = malloc(sizeof(*sc));
	size_t len;

	(void)state;
	assert_non_null(sc);
	len = make_head(head, sizeof(head), SW_REQHEAD_FIELDS + 1, 0);
	check_bad("too many fields", head, len);
	len = make_head(head, sizeof(head), 3, SW_REQHEAD_MAX + 1);
	check_bad("too long", head, len);
	scan_head(head, len, sc);
	assert_int_equal(sc->verdict, SCAN_REFUSED);
	free(sc);
}

/* ---- mutated heads ---- */

static const char mut_bytes[] = "\r\n \t:,;\"@/-._?#%0123456789"
				"connectionCONNECTIONlengthLENGTHhostHOSTkeep-aliveKEEP"
				"xX\x7f\x80\xff\x01";

static const struct bytes mut_pieces[] = {
	S("connection"),
	S("Connection"),
	S("content-length"),
	S("Host"),
	S("host"),
	S("keep-alive"),
	S("Keep-Alive"),
	S("x-forwarded-for"),
	S(": "),
	S(":"),
	S("\r\n"),
	S("\r\n\r\n"),
	S("\n"),
	S("\r"),
	S("  "),
	S("\t"),
	S("00"),
	S("9999999"),
	S("5, 5"),
	S(" 5"),
	S("\x00"),
	S("/../"),
	S("/./"),
	S("//"),
	S("%2e"),
	S("%41"),
	S("?"),
	S("_"),
	S("."),
	S("[::1]"),
};

static const struct bytes mut_lines[] = {
	S("Connection: close\r\n"),
	S("Connection: keep-alive\r\n"),
	S("connection: Keep-Alive\r\n"),
	S("Content-Length: 5\r\n"),
	S("Content-Length: 0\r\n"),
	S(" folded\r\n"),
	S("X-A: b\r\n"),
	S("X-Empty: \r\n"),
	S("Host: h\r\n"),
	S("Expect: 100-continue\r\n"),
	S("Keep-Alive: timeout=5\r\n"),
	S("TE: trailers\r\n"),
	S("Upgrade: h2c\r\n"),
	S("Transfer-Encoding: chunked\r\n"),
	S("X-Forwarded-For: 1.2.3.4\r\n"),
	S("Forwarded: for=x\r\n"),
	S("X-Sockway-Shadow: 1\r\n"),
	S("X_A: b\r\n"),
	S("X-SERVE-SHARD-KEY: k\r\n"),
	S("x-obs: \x80\xff\r\n"),
	S("X-Trail: a \r\n"),
	S("X-NoSp:a\r\n"),
	S("X : a\r\n"),
	S("\r\n"),
	S("X: a\n"),
};

static const char *const mut_methods[] = {
	"GET",	"POST",	 "PUT",	    "DELETE", "PATCH", "OPTIONS",
	"HEAD", "TRACE", "CONNECT", "get",    "GETX",
};

struct base {
	char s[WORK_MAX];
	size_t len;
};

static void mutate(char *s, size_t *len)
{
	static char line[WORK_MAX];
	size_t at = *len ? rnd(*len + 1) : 0, end;
	const struct bytes *p;
	const char *m, *sp;
	char c;

	switch (rnd(10)) {
	case 0:
		c = mut_bytes[rnd(sizeof(mut_bytes) - 1)];
		splice(s, len, at, 0, &c, 1);
		break;
	case 1:
		splice(s, len, at, 1, NULL, 0);
		break;
	case 2:
		c = mut_bytes[rnd(sizeof(mut_bytes) - 1)];
		splice(s, len, at, 1, &c, 1);
		break;
	case 3:
		p = &mut_pieces[rnd(ARRAY_SIZE(mut_pieces))];
		splice(s, len, at, 0, p->s, p->len);
		break;
	case 4:
	case 5:
		p = &mut_lines[rnd(ARRAY_SIZE(mut_lines))];
		splice(s, len, rnd_line_start(s, *len), 0, p->s, p->len);
		break;
	case 6:
		at = rnd_line_start(s, *len);
		if (at)
			splice(s, len, at, line_end(s, *len, at) - at, NULL, 0);
		break;
	case 7:
		at = rnd_line_start(s, *len);
		end = line_end(s, *len, at);
		memcpy(line, s + at, end - at);
		splice(s, len, at, 0, line, end - at);
		break;
	case 8:
		if (at < *len && ((s[at] | 0x20) >= 'a' && (s[at] | 0x20) <= 'z'))
			s[at] ^= 0x20;
		break;
	default: /* another method */
		sp = memchr(s, ' ', *len);
		if (sp) {
			m = mut_methods[rnd(ARRAY_SIZE(mut_methods))];
			splice(s, len, 0, sp - s, m, strlen(m));
		}
		break;
	}
}

/*
 * Would the kernel's rules take this head, judging by sockwayd alone: a request sockwayd
 * routes as it is (the head it sends is the kernel's), with a method, Host, length and
 * field count within what the scanner keeps to by design?
 */
static bool kernel_should_take(const char *s, const struct sockwayd_view *v)
{
	static char want[WORK_MAX + 64];
	const struct http_header *conn = NULL, *host = NULL;
	struct head_lines l = {0};
	size_t want_len, i, nr = 0;
	const char *h = v->req.host, *eol;

	if (v->ret <= 0 || v->ret > SW_REQHEAD_MAX || !v->out.len ||
	    !method_routed(v->req.method_bit) || v->req.version_minor != 1 || !v->req.keep_alive ||
	    v->req.expect_continue || v->req.upgrade || v->req.authority || !h ||
	    !v->req.host_len || v->path_len >= SW_DECIDE_PATH_MAX ||
	    v->req.host_len >= SW_DECIDE_HOST_MAX)
		return false;
	/* Hosts the scanner leaves alone by design: IPv6, escapes, an empty port. */
	if (h[0] == '[' || memchr(h, '%', v->req.host_len) || h[v->req.host_len - 1] == ':')
		return false;
	if (v->req.body == HTTP_BODY_LENGTH) {
		const struct http_header *cl =
			http_find_header(v->req.headers, v->req.nr_headers, "content-length");

		if (!cl || cl->value_len > SW_REQHEAD_CL_DIGITS)
			return false;
	} else if (v->req.body != HTTP_BODY_NONE) {
		return false;
	}
	for (i = 0; i < v->req.nr_headers; i++) {
		if (v->req.headers[i].name_len == 10 &&
		    !strncasecmp(v->req.headers[i].name, "connection", 10)) {
			if (conn)
				return false;
			conn = &v->req.headers[i];
		}
		if (v->req.headers[i].name_len == 4 &&
		    !strncasecmp(v->req.headers[i].name, "host", 4)) {
			if (host)
				return false;
			host = &v->req.headers[i];
		}
		nr++;
	}
	/* The Host line, wherever it is, goes first as it came (sockwayd writes it first). */
	if (!host || host->value != h)
		return false;
	eol = memchr(host->value, '\n', s + v->ret - host->value);
	if (!eol)
		return false;
	l.host_off = host->name - s;
	l.host_len = eol + 1 - host->name;
	l.line0_end = (const char *)memchr(s, '\n', v->ret) + 1 - s;
	l.head_len = v->ret;
	if (nr > SW_REQHEAD_FIELDS)
		return false;
	if (conn) {
		/* Only "Connection: keep-alive" CRLF, by design, though sockwayd drops any
		 * Connection line. */
		if (conn->value_len != 10 || strncasecmp(conn->value, "keep-alive", 10) ||
		    conn->value != conn->name + 12 || conn->name[11] != ' ' ||
		    conn->value[10] != '\r')
			return false;
		l.conn_off = conn->name - s;
		l.conn_len = conn->value + conn->value_len + 2 - conn->name;
	}
	want_len = kernel_head(s, &l, want);
	return v->out.len == want_len && !memcmp(buf_head(&v->out), want, want_len) &&
	       (size_t)v->norm_len == v->path_len;
}

#define MUTATED_HEADS	     200000
#define MUTATED_ACCEPTED_MIN 20000

static void test_mutated_heads(void **state)
{
	struct base *bases = calloc(ARRAY_SIZE(good_heads) + 3, sizeof(*bases));
	struct sockwayd_view *v = calloc(1, sizeof(*v));
	struct scan *sc = malloc(sizeof(*sc));
	static char s[WORK_MAX + sizeof(tail)];
	size_t nr_bases = 0, len, i;
	unsigned int accepted = 0, refused = 0, k, nr;

	(void)state;
	assert_non_null(bases);
	assert_non_null(v);
	assert_non_null(sc);
	for (i = 0; i < ARRAY_SIZE(good_heads); i++, nr_bases++) {
		memcpy(bases[nr_bases].s, good_heads[i].in.s, good_heads[i].in.len);
		bases[nr_bases].len = good_heads[i].in.len;
	}
	bases[nr_bases].len = make_head(bases[nr_bases].s, WORK_MAX, SW_REQHEAD_FIELDS, 0);
	nr_bases++;
	bases[nr_bases].len = make_head(bases[nr_bases].s, WORK_MAX, 3, SW_REQHEAD_MAX);
	nr_bases++;
	bases[nr_bases].len = make_head(bases[nr_bases].s, WORK_MAX, 3, SW_REQHEAD_MAX - 40);
	nr_bases++;

	for (i = 0; i < MUTATED_HEADS; i++) {
		const struct base *b = &bases[rnd(nr_bases)];

		memcpy(s, b->s, b->len);
		len = b->len;
		for (k = 0, nr = 1 + rnd(3); k < nr; k++)
			mutate(s, &len);

		scan_head(s, len, sc);
		if (sc->verdict == SCAN_ACCEPTED) {
			accepted++;
			check_accepted(s, len, sc);
		} else {
			refused++;
			sockwayd_view(s, len, v);
			if (v->ret > 0 && (size_t)v->ret <= len) {
				/* Judge the head alone, as the kernel would see it. */
				sockwayd_view(s, v->ret, v);
				if (kernel_should_take(s, v)) {
					print_error("refused (verdict %d) a head the kernel could "
						    "route: \"%s\"\n",
						    sc->verdict, escape(s, len));
					fail();
				}
			}
			buf_free(&v->out);
		}
		check_tail_ignored(s, len, sc);
	}
	print_message("%u mutated heads: %u accepted, %u refused\n", MUTATED_HEADS, accepted,
		      refused);
	assert_true(accepted >= MUTATED_ACCEPTED_MIN);
	free(sc);
	free(v);
	free(bases);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accepted_heads),
		cmocka_unit_test(test_fields_and_address),
		cmocka_unit_test(test_accepted_at_the_limits),
		cmocka_unit_test(test_refused_heads),
		cmocka_unit_test(test_refused_over_the_limits),
		cmocka_unit_test(test_mutated_heads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
