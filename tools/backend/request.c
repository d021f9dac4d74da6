// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * swbackend's requests: each is read, checked, counted and answered in turn; the answer
 * echoes what the request carried (X-Seen-*) so that a test sees what the router did.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/clock.h"
#include "backend.h"

#define STATS_PATH "/__swbackend/stats"

static const char *const hop_header_names[] = {
	"Connection", "Keep-Alive", "TE", "Upgrade", "Proxy-Connection",
};

/* What the request line and header fields say, gathered before any of it is acted on. */
struct head_facts {
	const char *target;
	size_t target_len;
	bool head_method;
	bool get_method;
	struct http_framing framing;
	bool expect_continue;
	bool shadow_seen;
	bool shadow_one;
	unsigned int hop_mask; /* bit i: hop_header_names[i] was received */
	const char *shard_key;
	size_t shard_key_len;
	bool shard_key_seen;
	struct bytes *xff; /* the connection's X-Forwarded-For values, joined */
};

/* "METHOD SP target SP HTTP/1.x"; 0 or -EBADMSG. */
static int request_line_parse(const char *line, size_t len, struct head_facts *h)
{
	const char *end = line + len, *p = line, *method = line;
	size_t method_len;

	while (p < end && http_is_tchar(*p))
		p++;
	method_len = p - method;
	if (!method_len || p == end || *p != ' ')
		return -EBADMSG;
	h->get_method = method_len == 3 && !memcmp(method, "GET", 3);
	h->head_method = method_len == 4 && !memcmp(method, "HEAD", 4);

	h->target = ++p;
	while (p<end && * p> ' ' && *p < 0x7f)
		p++;
	h->target_len = p - h->target;
	if (!h->target_len || p == end || *p != ' ')
		return -EBADMSG;
	p++;
	if (end - p != 8)
		return -EBADMSG;
	return http_version_parse(p, &h->framing.http10);
}

/* Notes what the echo and the answer need from one field line; 0 or -ENOMEM. */
static int header_field_note(void *arg, const struct http_field *f, enum http_field_kind kind)
{
	struct head_facts *h = arg;

	if (kind == HTTP_FIELD_CONNECTION)
		h->hop_mask |= 1u << 0;
	if (kind != HTTP_FIELD_OTHER)
		return 0;
	if (http_field_is(f, "keep-alive")) {
		h->hop_mask |= 1u << 1;
	} else if (http_field_is(f, "te")) {
		h->hop_mask |= 1u << 2;
	} else if (http_field_is(f, "upgrade")) {
		h->hop_mask |= 1u << 3;
	} else if (http_field_is(f, "proxy-connection")) {
		h->hop_mask |= 1u << 4;
	} else if (http_field_is(f, "x-serve-shard-key")) {
		if (!h->shard_key_seen) {
			h->shard_key_seen = true;
			h->shard_key = f->value;
			h->shard_key_len = f->value_len;
		}
	} else if (http_field_is(f, "x-forwarded-for")) {
		/* Several lines make one list (RFC 9110 5.3), as a proxy would see it. */
		if (f->value_len && h->xff->len && bytes_append(h->xff, ", ", 2))
			return -ENOMEM;
		if (bytes_append(h->xff, f->value, f->value_len))
			return -ENOMEM;
	} else if (http_field_is(f, "x-sockway-shadow")) {
		h->shadow_seen = true;
		h->shadow_one |= f->value_len == 1 && f->value[0] == '1';
	} else if (http_field_is(f, "expect")) {
		h->expect_continue = http_name_is(f->value, f->value_len, "100-continue");
	}
	return 0;
}

/* Renders the X-Seen-* lines of the response to this request into c->echo. */
static int echo_build(struct conn *c, const struct head_facts *h)
{
	struct bytes *e = &c->echo;
	int err = 0;

	e->len = 0;
	err |= bytes_append_str(e, "X-Seen-Path: ");
	err |= bytes_append(e, h->target, h->target_len);
	err |= bytes_append_str(e, "\r\n");
	if (h->shard_key_seen) {
		err |= bytes_append_str(e, "X-Seen-Shard-Key: ");
		err |= bytes_append(e, h->shard_key, h->shard_key_len);
		err |= bytes_append_str(e, "\r\n");
	}
	if (c->xff.len) {
		err |= bytes_append_str(e, "X-Seen-Forwarded-For: ");
		err |= bytes_append(e, c->xff.data, c->xff.len);
		err |= bytes_append_str(e, "\r\n");
	}
	if (h->shadow_seen)
		err |= bytes_append_str(e, "X-Seen-Shadow: 1\r\n");
	if (h->hop_mask) {
		const char *sep = "X-Seen-Hop: ";

		for (size_t i = 0; i < sizeof(hop_header_names) / sizeof(hop_header_names[0]);
		     i++) {
			if (!(h->hop_mask & (1u << i)))
				continue;
			err |= bytes_append_str(e, sep);
			err |= bytes_append_str(e, hop_header_names[i]);
			sep = ",";
		}
		err |= bytes_append_str(e, "\r\n");
	}
	return err ? -ENOMEM : 0;
}

/* Queues the answer to the request just read and gets ready for the next; 0 or -ENOMEM. */
static int request_answer(struct conn *c)
{
	static const char conn_close_line[] = "Connection: close\r\n";
	static const char conn_keep_line[] = "Connection: keep-alive\r\n";
	struct worker *w = c->worker;
	bool close_after = !c->req.keep_alive || cfg.close_each;
	struct response *r;
	char *p;

	if (c->req.stats) {
		char json[256], text[512];
		int json_len, len;

		/* The stats request itself is not counted, so tests can read exact numbers. */
		json_len = stats_format(json, sizeof(json));
		len = snprintf(
			text, sizeof(text),
			"HTTP/1.1 200 OK\r\nX-Backend: %s\r\nContent-Type: application/json\r\n"
			"Content-Length: %d\r\n%s\r\n%s\n",
			cfg.name, json_len + 1, close_after ? conn_close_line : "", json);
		if (len < 0 || (size_t)len >= sizeof(text) ||
		    response_queue_bytes(c, text, len, close_after))
			return -ENOMEM;
		goto next_request;
	}

	r = response_alloc(cfg.head_prefix_len + sizeof(conn_keep_line) + c->echo.len + 64);
	if (!r)
		return -ENOMEM;
	p = r->data;
	memcpy(p, cfg.head_prefix, cfg.head_prefix_len);
	p += cfg.head_prefix_len;
	if (close_after) {
		memcpy(p, conn_close_line, sizeof(conn_close_line) - 1);
		p += sizeof(conn_close_line) - 1;
	} else if (c->req.http10) {
		/* An HTTP/1.0 client closes unless told the connection stays. */
		memcpy(p, conn_keep_line, sizeof(conn_keep_line) - 1);
		p += sizeof(conn_keep_line) - 1;
	}
	memcpy(p, c->echo.data, c->echo.len);
	p += c->echo.len;
	p += sprintf(p, "X-Seen-Body-Bytes: %" PRIu64 "\r\n\r\n", c->req.body_bytes);
	response_add_piece(r, r->data, p - r->data);
	if (cfg.status_has_body && !c->req.head_method) {
		response_add_piece(r, cfg.chunk_head, cfg.chunk_head_len);
		response_add_piece(r, cfg.body, cfg.body_len);
		response_add_piece(r, cfg.chunk_tail, cfg.chunk_tail_len);
	}
	r->close_after = close_after;
	if (cfg.latency_ms)
		r->due_ns = now_ns() + cfg.latency_ms * 1000000ULL;
	atomic_fetch_add_explicit(&w->requests, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&w->body_bytes, c->req.body_bytes, memory_order_relaxed);
	if (c->req.shadow)
		atomic_fetch_add_explicit(&w->shadow_requests, 1, memory_order_relaxed);
	response_queue(c, r);

next_request:
	if (close_after)
		c->closing = true;
	memset(&c->req, 0, sizeof(c->req));
	c->state = CONN_READ_HEAD;
	return 0;
}

/* Acts on a complete request head p[0..len); 0, -EBADMSG or -ENOMEM. */
static int request_head_parse(struct conn *c, const char *p, size_t len)
{
	static const char continue_line[] = "HTTP/1.1 100 Continue\r\n\r\n";
	struct head_facts h = {.xff = &c->xff};
	const struct http_framing *fr = &h.framing;
	const char *end = p + len, *line;
	size_t line_len, used;
	bool has_body;
	int err;

	c->xff.len = 0;
	used = http_line_take(p, end, &line, &line_len);
	if (!used)
		return -EBADMSG;
	err = request_line_parse(line, line_len, &h);
	if (!err)
		err = http_fields_parse(p + used, end, &h.framing, header_field_note, &h);
	if (err)
		return err;

	/*
	 * A length we cannot tell for sure is refused rather than guessed: that is where
	 * request smuggling lives (RFC 9112 6.1, 6.3).
	 */
	if (fr->te_seen && (!fr->te_chunked_last || fr->te_chunked_count != 1 || fr->cl_seen))
		return -EBADMSG;

	err = echo_build(c, &h);
	if (err)
		return err;
	c->req.http10 = fr->http10;
	c->req.keep_alive = http_framing_keep_alive(fr);
	c->req.shadow = h.shadow_one;
	c->req.head_method = h.head_method;
	c->req.stats = h.get_method && h.target_len == strlen(STATS_PATH) &&
		       !memcmp(h.target, STATS_PATH, h.target_len);

	has_body = fr->te_seen || fr->content_length;
	if (h.expect_continue && !fr->http10 && has_body &&
	    response_queue_bytes(c, continue_line, sizeof(continue_line) - 1, false))
		return -ENOMEM;
	if (fr->te_seen) {
		c->state = CONN_READ_CHUNKED;
		http_chunked_start(&c->chunked);
	} else if (fr->content_length) {
		c->state = CONN_READ_BODY;
		c->remaining = fr->content_length;
	} else {
		return request_answer(c);
	}
	return 0;
}

/*
 * Takes one step of the request at c->in.data + *pos: a head, some body, a chunk line or a
 * trailer. HTTP_STEP_ADVANCED, HTTP_STEP_MORE when it needs more bytes, -EBADMSG or -ENOMEM.
 */
static int conn_parse_step(struct conn *c, size_t *pos)
{
	const char *p = c->in.data + *pos;
	size_t avail = c->in.len - *pos, used;
	uint64_t take;
	int ret;

	switch (c->state) {
	case CONN_READ_HEAD:
		/* Empty lines before a request line are ignored (RFC 9112 2.2). */
		if (c->head_scan == 0 && avail >= 1 && (p[0] == '\n' || p[0] == '\r')) {
			used = p[0] == '\n' ? 1 : avail >= 2 && p[1] == '\n' ? 2 : 0;
			if (!used)
				return avail >= 2 ? -EBADMSG : HTTP_STEP_MORE;
			*pos += used;
			return HTTP_STEP_ADVANCED;
		}
		used = http_head_end_find(p, avail, &c->head_scan);
		if (!used)
			return avail > MAX_HEAD_BYTES ? -EBADMSG : HTTP_STEP_MORE;
		c->head_scan = 0;
		ret = request_head_parse(c, p, used);
		*pos += used;
		return ret ? ret : HTTP_STEP_ADVANCED;

	case CONN_READ_BODY:
		take = http_body_take(&c->remaining, avail);
		*pos += take;
		c->req.body_bytes += take;
		if (c->remaining)
			return HTTP_STEP_MORE;
		break;

	case CONN_READ_CHUNKED:
		ret = http_chunked_step(&c->chunked, p, avail, pos);
		if (ret != HTTP_STEP_DONE)
			return ret;
		c->req.body_bytes = c->chunked.data_bytes;
		break;
	}
	/* The body is all in: answer. */
	ret = request_answer(c);
	return ret ? ret : HTTP_STEP_ADVANCED;
}

/*
 * Answers every complete request in the input buffer, in order, until the connection
 * closes or pauses. A malformed request gets 400 and the connection closes after it.
 * 0 or -ENOMEM.
 */
int conn_parse(struct conn *c)
{
	static const char bad_request_fmt[] =
		"HTTP/1.1 400 Bad Request\r\nX-Backend: %s\r\nContent-Type: text/plain\r\n"
		"Content-Length: 12\r\nConnection: close\r\n\r\nbad request\n";
	size_t pos = 0;
	int ret = 0;

	while (!c->closing && !c->read_paused) {
		ret = conn_parse_step(c, &pos);
		if (ret <= 0)
			break;
	}
	if (ret == -EBADMSG) {
		char text[sizeof(bad_request_fmt) + 256];
		int len = snprintf(text, sizeof(text), bad_request_fmt, cfg.name);

		ret = response_queue_bytes(c, text, len, true);
		c->closing = true;
		pos = c->in.len;
	}
	c->in.len -= pos;
	if (c->in.len && pos)
		memmove(c->in.data, c->in.data + pos, c->in.len);
	return ret < 0 ? ret : 0;
}
