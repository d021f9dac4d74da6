// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * Request and response heads as sockwayd writes them (headers.h). Heads are built from
 * pieces, not printf: vsnprintf was 9% of sockwayd's CPU on small requests.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "headers.h"

/* "Name: value\r\n". */
static int buf_header(struct buf *b, const char *name, size_t name_len, const char *value,
		      size_t value_len)
{
	char *p;

	if (buf_reserve(b, name_len + value_len + 4))
		return -ENOMEM;
	p = buf_tail(b);
	memcpy(p, name, name_len);
	p += name_len;
	*p++ = ':';
	*p++ = ' ';
	memcpy(p, value, value_len);
	p += value_len;
	*p++ = '\r';
	*p++ = '\n';
	b->len += name_len + value_len + 4;
	return 0;
}

static bool name_is(const struct http_header *h, const char *name, size_t len)
{
	return h->name_len == len && !strncasecmp(h->name, name, len);
}

#define NAME_IS(h, lit) name_is((h), (lit), sizeof(lit) - 1)

/* The peer's Content-Length field with the value in canonical form: decimal without
 * leading zeros, whatever the peer wrote. The name is kept as it came, so that a head that
 * was canonical already comes out unchanged (resphead.h relies on that). */
static int buf_content_length(struct buf *b, const struct http_header *h, __u64 n)
{
	char digits[24];
	int len = snprintf(digits, sizeof(digits), "%llu", (unsigned long long)n);

	return buf_header(b, h->name, h->name_len, digits, len);
}

/* "Host: " the name in lower case without a trailing dot, then the port as it came. */
static int buf_host(struct buf *b, const char *h, size_t len)
{
	const char *end;
	size_t name_len, port, i;
	char *p;

	if (len && h[0] == '[') {
		end = memchr(h, ']', len);
		name_len = end ? (size_t)(end - h) + 1 : len;
		port = name_len;
	} else {
		end = memchr(h, ':', len);
		name_len = end ? (size_t)(end - h) : len;
		port = name_len;
		if (name_len && h[name_len - 1] == '.')
			name_len--;
	}
	if (buf_reserve(b, len + 8))
		return -ENOMEM;
	p = buf_tail(b);
	memcpy(p, "Host: ", 6);
	p += 6;
	for (i = 0; i < name_len; i++)
		*p++ = (h[i] >= 'A' && h[i] <= 'Z') ? h[i] | 0x20 : h[i];
	memcpy(p, h + port, len - port);
	p += len - port;
	*p++ = '\r';
	*p++ = '\n';
	b->len += p - buf_tail(b);
	return 0;
}

static bool in_list(const struct http_header *h, const char *const *names, unsigned nr)
{
	unsigned i;

	for (i = 0; i < nr; i++)
		if (name_is(h, names[i], strlen(names[i])))
			return true;
	return false;
}

/*
 * Fields that only a proxy may write, which backends set to trust it read as the client's
 * address, Host, port, scheme or path: a client's own are dropped (X-Forwarded-For is
 * appended to instead, X-Forwarded-Proto and Forwarded are sockwayd's). X-Original-URL and
 * X-Rewrite-URL are taken by some servers as the path, past the route.
 */
static bool forwarding_field(const struct http_header *h)
{
	static const char *const names[] = {
		"x-forwarded-proto",  "x-forwarded-host", "x-forwarded-port", "x-forwarded-prefix",
		"x-forwarded-server", "x-real-ip",	  "true-client-ip",   "x-client-ip",
		"x-original-url",     "x-rewrite-url",
	};

	return in_list(h, names, sizeof(names) / sizeof(names[0]));
}

/* Fields of the client that never go upstream as they came. */
static bool request_field_dropped(const struct http_request *req, const struct http_header *h,
				  const struct head_request_opts *o, unsigned *underscores)
{
	static const char *const credentials[] = HEAD_SHADOW_CREDENTIALS;

	if (memchr(h->name, '_', h->name_len)) {
		(*underscores)++;
		return true;
	}
	if (http_is_hop_by_hop(&req->conn, h->name, h->name_len) || NAME_IS(h, "host") ||
	    NAME_IS(h, "expect") || NAME_IS(h, "x-sockway-shadow") || NAME_IS(h, "forwarded") ||
	    forwarding_field(h))
		return true;
	if (!o->shadow)
		return false;
	if (in_list(h, credentials, sizeof(credentials) / sizeof(credentials[0])) &&
	    !in_list(h, o->shadow_keep, o->nr_shadow_keep))
		return true;
	return in_list(h, o->shadow_strip, o->nr_shadow_strip);
}

/*
 * "Forwarded: " with one element, the client's address (RFC 7239), when the client sent
 * the field: its own elements are not passed on. A parser that reads the first element
 * (several do) would take the client's word for its address, host and scheme, and a value
 * can be made to read differently to two parsers (quotes, escapes).
 */
static int buf_forwarded(struct buf *b, const struct http_request *req, const char *peer_ip)
{
	bool v6 = strchr(peer_ip, ':');
	int err;

	if (!http_find_header(req->headers, req->nr_headers, "forwarded"))
		return 0;
	err = v6 ? buf_lit(b, "Forwarded: for=\"[") : buf_lit(b, "Forwarded: for=");
	if (!err)
		err = buf_append(b, peer_ip, strlen(peer_ip));
	if (!err)
		err = v6 ? buf_lit(b, "]\";proto=http\r\n") : buf_lit(b, ";proto=http\r\n");
	return err;
}

/* "X-Forwarded-For: " the client's values, if any, then its address. */
static int buf_forwarded_for(struct buf *b, const struct http_request *req, const char *peer_ip)
{
	unsigned i;
	int err;

	err = buf_lit(b, "X-Forwarded-For: ");
	for (i = 0; !err && i < req->nr_headers; i++) {
		const struct http_header *h = &req->headers[i];

		if (!NAME_IS(h, "x-forwarded-for") || !h->value_len ||
		    http_is_hop_by_hop(&req->conn, h->name, h->name_len))
			continue;
		err = buf_append(b, h->value, h->value_len);
		if (!err)
			err = buf_lit(b, ", ");
	}
	if (!err)
		err = buf_append(b, peer_ip, strlen(peer_ip));
	if (!err)
		err = buf_lit(b, "\r\n");
	return err;
}

int head_request_build(struct buf *b, const struct http_request *req,
		       const struct head_request_opts *o, unsigned *underscores)
{
	char minor = req->version_minor ? '1' : '0';
	unsigned i, dropped = 0;
	int err;

	err = buf_append(b, req->method, req->method_len);
	if (!err)
		err = buf_lit(b, " ");
	if (!err)
		err = buf_append(b, o->path, o->path_len);
	if (!err)
		err = buf_append(b, o->query, o->query_len);
	if (!err)
		err = buf_lit(b, " HTTP/1.");
	if (!err)
		err = buf_append(b, &minor, 1);
	if (!err)
		err = buf_lit(b, "\r\n");
	if (!err && req->host)
		err = buf_host(b, req->host, req->host_len);
	for (i = 0; !err && i < req->nr_headers; i++) {
		const struct http_header *h = &req->headers[i];

		if (request_field_dropped(req, h, o, &dropped) || NAME_IS(h, "x-forwarded-for"))
			continue;
		if (NAME_IS(h, "content-length"))
			err = buf_content_length(b, h, req->content_length);
		else
			err = buf_header(b, h->name, h->name_len, h->value, h->value_len);
	}
	if (!err)
		err = buf_forwarded(b, req, o->peer_ip);
	if (!err)
		err = buf_forwarded_for(b, req, o->peer_ip);
	if (!err)
		err = buf_lit(b, "X-Forwarded-Proto: http\r\n");
	if (!err && req->body == HTTP_BODY_CHUNKED)
		err = buf_lit(b, "Transfer-Encoding: chunked\r\n");
	if (!err && o->shadow)
		err = buf_lit(b, "X-Sockway-Shadow: 1\r\n");
	if (!err && req->version_minor == 0)
		err = buf_lit(b, "Connection: keep-alive\r\n");
	if (!err)
		err = buf_lit(b, "\r\n");
	if (underscores)
		*underscores = dropped;
	return err;
}

int head_response_build(struct buf *b, const struct http_response *resp, bool client_keep,
			int version_minor)
{
	/* The parser took exactly three digits. */
	char status[4] = {'0' + resp->status / 100 % 10, '0' + resp->status / 10 % 10,
			  '0' + resp->status % 10, ' '};
	unsigned i;
	int err;

	err = buf_lit(b, "HTTP/1.1 ");
	if (!err)
		err = buf_append(b, status, sizeof(status));
	if (!err)
		err = buf_append(b, resp->reason, resp->reason_len);
	if (!err)
		err = buf_lit(b, "\r\n");
	for (i = 0; !err && i < resp->nr_headers; i++) {
		const struct http_header *h = &resp->headers[i];

		if (http_is_hop_by_hop(&resp->conn, h->name, h->name_len))
			continue;
		/* RFC 9110 8.6: no Content-Length on 1xx or 204; a lenient client would take
		 * it as a body and swallow the response behind it. */
		if (NAME_IS(h, "content-length") && (resp->status < 200 || resp->status == 204))
			continue;
		if (NAME_IS(h, "content-length"))
			err = buf_content_length(b, h, resp->content_length);
		else
			err = buf_header(b, h->name, h->name_len, h->value, h->value_len);
	}
	if (!err && resp->body == HTTP_BODY_CHUNKED)
		err = buf_lit(b, "Transfer-Encoding: chunked\r\n");
	if (!err && !client_keep)
		err = buf_lit(b, "Connection: close\r\n");
	else if (!err && version_minor == 0)
		err = buf_lit(b, "Connection: keep-alive\r\n");
	if (!err)
		err = buf_lit(b, "\r\n");
	return err;
}
