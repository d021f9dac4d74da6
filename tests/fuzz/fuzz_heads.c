// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * libFuzzer harness for the heads sockwayd writes (user/helper/headers.c) and the chunked
 * re-framing (http_chunked_recode). Framing is sockwayd's, never the peer's: whatever a
 * client or a backend sends, the head sockwayd writes, parsed again by sockwayd's own
 * parser, must frame the body exactly as the message sockwayd parsed. This is the check
 * that catches a Connection field naming Content-Length (a body that becomes a second
 * request) and its kin. The low two bits of the first input byte pick what is built:
 *   0: a request head (bit 2: as a shadow copy), to an upstream;
 *   1: a response head (bits 2-4: a HEAD request, the client keeps its connection, an
 *      HTTP/1.0 client), to the client;
 *   2, 3: a chunked body, re-framed in pieces cut where the input says.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sockway/norm.h"
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

static const char peer_ip[] = "192.0.2.7";

/* Limits for parsing what sockwayd wrote: it adds fields, so allow the most. */
static void rebuilt_limits(struct http_limits *lim)
{
	http_limits_default(lim);
	lim->max_request_line = 1 << 20;
	lim->max_header_bytes = 1 << 20;
	lim->max_headers = HTTP_MAX_HEADERS;
	lim->max_body = ~0ULL;
}

/* The normal form of path[0..len): its length in out, or -1 if refused. */
static long normal_path(const char *path, size_t len, __u8 *out)
{
	struct sw_path_norm pn;
	size_t i;
	int err = 0;

	if (!len || path[0] != '/')
		return -1;
	sw_path_init(&pn, out);
	for (i = 1; i < len && !err; i++)
		err = sw_path_feed(&pn, out, (__u8)path[i]);
	if (!err)
		err = sw_path_end(&pn, out);
	return err ? -1 : (long)pn.len;
}

/* The routing hash of a Host, or 1 when it is refused (a real hash of 1 is no matter). */
static __u64 host_hash(const char *h, size_t len)
{
	struct sw_host_norm hn;
	__u64 hash = 0;
	size_t i;
	int err = 0;

	sw_host_init(&hn);
	for (i = 0; i < len && !err; i++)
		err = sw_host_feed(&hn, i, (__u8)h[i]);
	if (!err)
		err = sw_host_end(&hn, &hash);
	return err ? 1 : hash;
}

static bool has_field(const struct http_header *h, unsigned nr, const char *name)
{
	return http_find_header(h, nr, name) != NULL;
}

/* The fields sockwayd writes itself. */
static bool own_field(const struct http_header *h)
{
	static const char *const own[] = {
		"connection",	     "transfer-encoding", "host",     "x-forwarded-for",
		"x-forwarded-proto", "x-sockway-shadow",  "forwarded"};
	size_t i;

	for (i = 0; i < sizeof(own) / sizeof(own[0]); i++)
		if (h->name_len == strlen(own[i]) && !strncasecmp(h->name, own[i], h->name_len))
			return true;
	return false;
}

static void check_request(const char *in, size_t len, bool shadow)
{
	static struct http_request req, again;
	static const char *const keep[] = {"cookie"};
	static const char *const strip[] = {"x-secret"};
	struct head_request_opts o = {.peer_ip = peer_ip, .shadow = shadow};
	struct http_limits lim;
	struct buf b = {};
	const char *q;
	size_t path_len;
	unsigned underscores, i;
	__u8 *norm;
	long norm_len;
	int ret;

	if (http_parse_request(in, len, NULL, &req) <= 0)
		return;
	q = memchr(req.path, '?', req.path_len);
	path_len = q ? (size_t)(q - req.path) : req.path_len;
	norm = malloc(path_len + 1);
	CHECK(norm);
	norm_len = normal_path(req.path, path_len, norm);
	if (norm_len < 0 || (req.host && host_hash(req.host, req.host_len) == 1)) {
		/* sockwayd answers 400 and sends nothing upstream. */
		free(norm);
		return;
	}
	o.path = (const char *)norm;
	o.path_len = norm_len;
	o.query = req.path + path_len;
	o.query_len = req.path_len - path_len;
	if (shadow) {
		o.shadow_keep = keep;
		o.nr_shadow_keep = 1;
		o.shadow_strip = strip;
		o.nr_shadow_strip = 1;
	}
	CHECK(!head_request_build(&b, &req, &o, &underscores));

	rebuilt_limits(&lim);
	ret = http_parse_request(buf_head(&b), b.len, &lim, &again);
	/* One whole head, nothing after it, and the same request. */
	CHECK(ret > 0 && (size_t)ret == b.len);
	CHECK(again.method_len == req.method_len &&
	      !memcmp(again.method, req.method, req.method_len));
	CHECK(again.version_minor == req.version_minor);
	CHECK(again.target_len == (size_t)norm_len + o.query_len);
	CHECK(!memcmp(again.target, norm, norm_len));
	CHECK(!memcmp(again.target + norm_len, o.query, o.query_len));
	/* The normal form is a fixed point: the backend gets what was routed. */
	CHECK(normal_path(again.path, norm_len, norm) == norm_len);
	CHECK(!memcmp(again.path, norm, norm_len));
	CHECK(!req.host == !again.host);
	if (req.host)
		CHECK(host_hash(again.host, again.host_len) == host_hash(req.host, req.host_len));
	/* The framing: what sockwayd parsed, as it will send it. */
	CHECK(again.body == req.body);
	if (req.body == HTTP_BODY_LENGTH)
		CHECK(again.content_length == req.content_length);
	/* The upstream connection stays open, and nothing hop-by-hop passes. */
	CHECK(again.keep_alive && !again.expect_continue && !again.upgrade);
	CHECK(again.conn.nr == (req.version_minor == 0 ? 1u : 0u));
	CHECK(!has_field(again.headers, again.nr_headers, "expect"));
	CHECK(!has_field(again.headers, again.nr_headers, "upgrade"));
	CHECK(!has_field(again.headers, again.nr_headers, "x-original-url"));
	CHECK(!has_field(again.headers, again.nr_headers, "x-real-ip"));
	CHECK(!has_field(again.headers, again.nr_headers, "x-forwarded-host"));
	for (i = 0; i < again.nr_headers; i++) {
		const struct http_header *h = &again.headers[i];

		CHECK(!memchr(h->name, '_', h->name_len));
		/* Nothing the client named hop-by-hop, but the fields sockwayd writes. */
		CHECK(!http_is_hop_by_hop(&req.conn, h->name, h->name_len) || own_field(h));
	}
	/* X-Forwarded-For ends with the client's address; one of it. */
	{
		const struct http_header *xff =
			http_find_header(again.headers, again.nr_headers, "x-forwarded-for");

		CHECK(xff && xff->value_len >= sizeof(peer_ip) - 1);
		CHECK(!memcmp(xff->value + xff->value_len - (sizeof(peer_ip) - 1), peer_ip,
			      sizeof(peer_ip) - 1));
	}
	CHECK(has_field(again.headers, again.nr_headers, "x-sockway-shadow") == shadow);
	if (shadow) {
		CHECK(!has_field(again.headers, again.nr_headers, "authorization"));
		CHECK(!has_field(again.headers, again.nr_headers, "proxy-authorization"));
		CHECK(!has_field(again.headers, again.nr_headers, "x-secret"));
	}
	buf_free(&b);
	free(norm);
}

static void check_response(const char *in, size_t len, bool was_head, bool client_keep, int minor)
{
	static struct http_response resp, again;
	struct http_limits lim;
	struct buf b = {};
	bool keep;
	int ret;

	if (http_parse_response(in, len, NULL, was_head, &resp) <= 0 || resp.status < 200)
		return;
	/* sockwayd keeps the client only if the body does not end at close. */
	keep = client_keep && resp.body != HTTP_BODY_CLOSE;
	CHECK(!head_response_build(&b, &resp, keep, minor));
	rebuilt_limits(&lim);
	ret = http_parse_response(buf_head(&b), b.len, &lim, was_head, &again);
	CHECK(ret > 0 && (size_t)ret == b.len);
	CHECK(again.status == resp.status && again.version_minor == 1);
	CHECK(again.body == resp.body);
	if (resp.body == HTTP_BODY_LENGTH)
		CHECK(again.content_length == resp.content_length);
	CHECK(again.keep_alive == keep);
	buf_free(&b);
}

/* Re-frames body[0..len) in pieces; returns the output (malloc), its length in *out_len. */
static char *recode(const char *body, size_t len, const uint8_t *cuts, size_t nr_cuts,
		    size_t *out_len, size_t *consumed_all, bool *done, int *err)
{
	struct http_chunked c;
	char *out = malloc(len + HTTP_CHUNK_RECODE_SLACK * (nr_cuts + 2));
	size_t at = 0, o = 0, k = 0;

	CHECK(out);
	http_chunked_init(&c);
	*done = false;
	*err = 0;
	while (at < len && !*done && !*err) {
		size_t piece = len - at, used, n;

		if (k < nr_cuts && cuts[k] && cuts[k] < piece)
			piece = cuts[k];
		k++;
		*err = http_chunked_recode(&c, body + at, piece, &used, done, out + o, &n);
		CHECK(n <= used + HTTP_CHUNK_RECODE_SLACK);
		o += n;
		at += used;
		if (!*err && !*done)
			CHECK(used == piece);
	}
	*out_len = o;
	*consumed_all = at;
	return out;
}

/*
 * The data of a chunked body that http_chunked_feed accepted, decoded plainly (sizes in hex
 * up to anything else, data, CRLF; trailers skipped), into out; its length.
 */
static size_t chunked_data(const char *body, size_t len, char *out)
{
	size_t p = 0, o = 0, size;

	while (p < len) {
		size = 0;
		while (p < len && sw_norm_hex((__u8)body[p]) >= 0)
			size = size << 4 | (size_t)sw_norm_hex((__u8)body[p++]);
		while (p + 1 < len && !(body[p] == '\r' && body[p + 1] == '\n'))
			p++;
		p += 2;
		if (!size)
			break;
		memcpy(out + o, body + p, size);
		o += size;
		p += size + 2;
	}
	return o;
}

static void check_chunked(const uint8_t *data, size_t size)
{
	size_t nr_cuts = size < 8 ? size : 8, out_len, again_len, used, used2, n_in;
	const char *body = (const char *)data + nr_cuts;
	size_t len = size - nr_cuts;
	struct http_chunked c;
	char *out, *again;
	bool done, done2;
	int err, err2;

	out = recode(body, len, data, nr_cuts, &out_len, &used, &done, &err);
	/* The decoder alone agrees on where the body ends and whether it is valid. */
	http_chunked_init(&c);
	err2 = http_chunked_feed(&c, body, len, &used2, &done2);
	CHECK(!err == !err2 && done == done2);
	if (!err)
		CHECK(used == used2);
	if (done) {
		char *data_in = malloc(len + 1), *data_out = malloc(out_len + 1);

		/* The canonical form is itself canonical, and carries the same data. */
		again = recode(out, out_len, NULL, 0, &again_len, &used2, &done2, &err2);
		CHECK(!err2 && done2 && used2 == out_len);
		CHECK(again_len == out_len && !memcmp(again, out, out_len));
		CHECK(data_in && data_out);
		n_in = chunked_data(body, used, data_in);
		CHECK(chunked_data(out, out_len, data_out) == n_in);
		CHECK(!memcmp(data_in, data_out, n_in));
		free(data_in);
		free(data_out);
		free(again);
	}
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy;

	if (size < 1)
		return 0;
	/* An exact heap copy, so that any read past the input is caught. */
	copy = malloc(size - 1 ? size - 1 : 1);
	CHECK(copy);
	memcpy(copy, data + 1, size - 1);
	switch (data[0] & 3) {
	case 0:
		check_request(copy, size - 1, data[0] & 4);
		break;
	case 1:
		check_response(copy, size - 1, data[0] & 4, data[0] & 8, (data[0] & 16) ? 0 : 1);
		break;
	default:
		check_chunked(data + 1, size - 1);
		break;
	}
	free(copy);
	return 0;
}
