// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * Strict HTTP/1.1 heads and chunked bodies (RFC 9112). What is refused, and why:
 *
 *  - framing that another hop could read differently: Content-Length with Transfer-Encoding,
 *    a repeated or non-decimal Content-Length (even "5, 5"), a Transfer-Encoding other than
 *    exactly "chunked" (we cannot decode other codings, and "chunked" must be last anyway),
 *    Transfer-Encoding on HTTP/1.0 (RFC 9112 6.1 calls that framing faulty), a Connection
 *    token that names Content-Length, Transfer-Encoding or Host (a hop obeying it would drop
 *    the framing while the body still follows);
 *  - line ends other than CRLF, bare CRs, obs-fold, whitespace before a colon, CTLs in values;
 *  - a request line that is not exactly "method SP target SP HTTP/1.x": the target is
 *    origin-form, absolute-form with an http(s) scheme, or "*" for OPTIONS; CONNECT gets 501
 *    because sockwayd does not tunnel, and other authority-form targets get 400;
 *  - a missing (HTTP/1.1), repeated or malformed Host, or one that differs from the authority
 *    of an absolute-form target (RFC 9112 3.2 makes the client send them identical);
 *  - an Expect other than 100-continue (417).
 */
#include <stdint.h>
#include <string.h>

#include "http.h"

/* Limits are cut here so that offsets fit the int that the parsers return. */
#define HTTP_LIMIT_CLAMP (1U << 30)

/* Character classes, one byte per character, so that each scan costs a load and a test. */
#define C_TCHAR	 0x01 /* token (RFC 9110 5.6.2): field names, methods, chunk extensions */
#define C_VALUE	 0x02 /* field value and reason phrase: VCHAR, obs-text, SP, HTAB */
#define C_TARGET 0x04 /* request target: VCHAR except '#' (fragments are never sent) */
#define C_HOST	 0x08 /* reg-name (RFC 3986): unreserved, sub-delims but ',', '%' */

#define TVGH (C_TCHAR | C_VALUE | C_TARGET | C_HOST)
#define TVG  (C_TCHAR | C_VALUE | C_TARGET)
#define VGH  (C_VALUE | C_TARGET | C_HOST)
#define VG   (C_VALUE | C_TARGET)

static const unsigned char http_cc[256] = {
	['\t'] = C_VALUE,
	[' '] = C_VALUE,
	['!'] = TVGH,
	['"'] = VG,
	['#'] = C_TCHAR | C_VALUE,
	['$'] = TVGH,
	['%'] = TVGH,
	['&'] = TVGH,
	['\''] = TVGH,
	['('] = VGH,
	[')'] = VGH,
	['*'] = TVGH,
	['+'] = TVGH,
	[','] = VG,
	['-'] = TVGH,
	['.'] = TVGH,
	['/'] = VG,
	['0' ... '9'] = TVGH,
	[':'] = VG,
	[';'] = VGH,
	['<'] = VG,
	['='] = VGH,
	['>'] = VG,
	['?'] = VG,
	['@'] = VG,
	['A' ... 'Z'] = TVGH,
	['['] = VG,
	['\\'] = VG,
	[']'] = VG,
	['^'] = TVG,
	['_'] = TVGH,
	['`'] = TVG,
	['a' ... 'z'] = TVGH,
	['{'] = VG,
	['|'] = TVG,
	['}'] = VG,
	['~'] = TVGH,
	[0x80 ... 0xff] = C_VALUE,
};

static inline bool http_is(char ch, unsigned char class)
{
	return http_cc[(unsigned char)ch] & class;
}

static inline bool http_is_ws(char ch)
{
	return ch == ' ' || ch == '\t';
}

static inline bool http_is_digit(char ch)
{
	return (unsigned char)(ch - '0') < 10;
}

static inline int http_hex_value(char ch)
{
	if (http_is_digit(ch))
		return ch - '0';
	ch |= 0x20;
	return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* ASCII case folding only: "c | 0x20" alone would also fold '^' onto '~'. */
static inline unsigned char http_lower(char ch)
{
	return (unsigned char)(ch - 'A') < 26 ? ch | 0x20 : ch;
}

static bool http_caseeq(const char *a, size_t a_len, const char *b, size_t b_len)
{
	size_t i;

	if (a_len != b_len)
		return false;
	for (i = 0; i < a_len; i++)
		if (http_lower(a[i]) != http_lower(b[i]))
			return false;
	return true;
}

#define LIT_CASEEQ(s, len, lit) http_caseeq(s, len, lit, sizeof(lit) - 1)

void http_limits_default(struct http_limits *lim)
{
	lim->max_request_line = 8192;
	lim->max_header_bytes = 32768;
	lim->max_headers = 100;
	lim->max_body = 1ULL << 30;
}

static void http_limits_get(const struct http_limits *lim, struct http_limits *out)
{
	if (!lim) {
		http_limits_default(out);
		return;
	}
	*out = *lim;
	if (out->max_request_line > HTTP_LIMIT_CLAMP)
		out->max_request_line = HTTP_LIMIT_CLAMP;
	if (out->max_header_bytes > HTTP_LIMIT_CLAMP)
		out->max_header_bytes = HTTP_LIMIT_CLAMP;
	if (out->max_headers > HTTP_MAX_HEADERS)
		out->max_headers = HTTP_MAX_HEADERS;
}

/*
 * The length of the head whose first line ends with the CRLF at buf[from], or 0 if its
 * CRLF CRLF is not within the first max_head bytes. The first CRLF CRLF after the start line
 * is the end of a valid head, because field lines contain no CR; in an invalid head the
 * field parser finds the stray CR or LF before it. Hopping from LF to LF with memchr is three
 * times faster than memmem on a typical head.
 */
static size_t http_find_head_end(const char *buf, size_t from, size_t len, size_t max_head)
{
	size_t stop = len < max_head ? len : max_head;
	size_t p = from + 3;
	const char *lf;

	while (p < stop) {
		lf = memchr(buf + p, '\n', stop - p);
		if (!lf)
			return 0;
		p = lf - buf;
		if (buf[p - 1] == '\r' && buf[p - 2] == '\n' && buf[p - 3] == '\r')
			return p + 1;
		/* An LF at p + 1 would follow an LF, not a CR. */
		p += 2;
	}
	return 0;
}

/*
 * host [":" port] of a Host header or an authority (RFC 3986 3.2.2), userinfo excluded. A
 * ',' is refused although reg-name allows it: in Host it means two values folded into one.
 */
static bool http_host_valid(const char *s, size_t len)
{
	size_t i = 0, digits;

	if (len && s[0] == '[') {
		/* IPv6 literal, maybe with a dotted IPv4 tail; IPvFuture is not worth the risk. */
		for (i = 1; i < len && s[i] != ']'; i++)
			if (http_hex_value(s[i]) < 0 && s[i] != ':' && s[i] != '.')
				return false;
		if (i == len || i == 1)
			return false;
		i++;
	} else {
		for (; i < len && s[i] != ':'; i++) {
			if (s[i] == '%') {
				if (len - i < 3 || http_hex_value(s[i + 1]) < 0 ||
				    http_hex_value(s[i + 2]) < 0)
					return false;
				i += 2;
			} else if (!http_is(s[i], C_HOST)) {
				return false;
			}
		}
		/* A port with no host before it names nothing. */
		if (i == 0 && len)
			return false;
	}
	if (i == len)
		return true;
	if (s[i] != ':')
		return false;
	for (i++, digits = 0; i < len; i++, digits++)
		if (!http_is_digit(s[i]))
			return false;
	return digits <= 5;
}

static __u32 http_method_bit(const char *m, size_t len)
{
	static const struct {
		const char *name;
		size_t len;
		__u32 bit;
	} methods[] = {
		{"GET", 3, SW_METHOD_GET},	   {"HEAD", 4, SW_METHOD_HEAD},
		{"POST", 4, SW_METHOD_POST},	   {"PUT", 3, SW_METHOD_PUT},
		{"DELETE", 6, SW_METHOD_DELETE},   {"PATCH", 5, SW_METHOD_PATCH},
		{"OPTIONS", 7, SW_METHOD_OPTIONS}, {"CONNECT", 7, SW_METHOD_CONNECT},
		{"TRACE", 5, SW_METHOD_TRACE},
	};
	size_t i;

	/* Methods are case-sensitive (RFC 9110 9.1): "get" is some other method. */
	for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (methods[i].len == len && !memcmp(methods[i].name, m, len))
			return methods[i].bit;
	return SW_METHOD_OTHER;
}

/* Sorts the request target into its form (RFC 9112 3.2) and sets path and authority. */
static int http_request_target(struct http_request *req)
{
	const char *t = req->target;
	size_t len = req->target_len, scheme, i;

	if (req->method_bit == SW_METHOD_CONNECT)
		return -501;
	if (t[0] == '/') {
		req->path = t;
		req->path_len = len;
		return 0;
	}
	if (len == 1 && t[0] == '*') {
		req->path = t;
		req->path_len = 1;
		return req->method_bit == SW_METHOD_OPTIONS ? 0 : -400;
	}
	if (len > 7 && LIT_CASEEQ(t, 7, "http://"))
		scheme = 7;
	else if (len > 8 && LIT_CASEEQ(t, 8, "https://"))
		scheme = 8;
	else
		return -400;

	for (i = scheme; i < len && t[i] != '/' && t[i] != '?'; i++)
		;
	req->authority = t + scheme;
	req->authority_len = i - scheme;
	/*
	 * RFC 9110 4.2.1: an http URI has a host. Userinfo is deprecated and a phishing aid;
	 * its '@' fails the host check.
	 */
	if (!req->authority_len || !http_host_valid(req->authority, req->authority_len))
		return -400;
	if (i == len) {
		req->path = "/";
		req->path_len = 1;
		return 0;
	}
	/* "http://a?q" would need a "/" inserted; zero-copy cannot, and no client sends it. */
	if (t[i] == '?')
		return -400;
	req->path = t + i;
	req->path_len = len - i;
	return 0;
}

/*
 * The request line at buf[start]. Returns the offset after its CRLF, 0 for more bytes, or a
 * negative status. It looks at no more than max_line bytes and the CR, so an endless line is
 * a 414 as soon as it is too long, and garbage (a TLS hello, say) is a 400 at its first byte.
 */
static int http_parse_request_line(const char *buf, size_t start, size_t len, size_t max_line,
				   struct http_request *req)
{
	size_t limit = start + max_line + 1;
	size_t stop = len < limit ? len : limit;
	size_t p = start;
	const char *v;

	while (p < stop && http_is(buf[p], C_TCHAR))
		p++;
	if (p == stop)
		goto short_line;
	if (p == start || buf[p] != ' ')
		return -400;
	req->method = buf + start;
	req->method_len = p - start;
	req->method_bit = http_method_bit(req->method, req->method_len);

	req->target = buf + ++p;
	while (p < stop && http_is(buf[p], C_TARGET))
		p++;
	if (p == stop)
		goto short_line;
	if (buf[p] != ' ' || buf + p == req->target)
		return -400;
	req->target_len = buf + p - req->target;

	/* "HTTP/x.y" and the CR; the LF may lie past the limit. */
	if (stop - ++p < 9)
		goto short_line;
	v = buf + p;
	if (memcmp(v, "HTTP/", 5) || !http_is_digit(v[5]) || v[6] != '.' || !http_is_digit(v[7]))
		return -400;
	if (v[5] != '1' || (v[7] != '0' && v[7] != '1'))
		return -505;
	if (v[8] != '\r')
		return -400;
	if (p + 9 == len)
		return 0;
	if (v[9] != '\n')
		return -400;
	req->version_minor = v[7] - '0';
	return http_request_target(req) ?: (int)(p + 10);

short_line:
	return stop == limit ? -414 : 0;
}

/* What the framing and connection headers said, for the request or response checks. */
struct http_fields {
	const char *host;
	size_t host_len;
	unsigned int nr_host;
	bool has_content_length;
	bool has_transfer_encoding;
	bool has_upgrade;
	bool conn_close;
	bool conn_keep_alive;
	bool conn_upgrade;
	bool expect_continue;
	bool expect_other;
	__u64 content_length;
};

static int http_parse_content_length(const char *v, size_t len, __u64 *out)
{
	__u64 x = 0;
	size_t i;

	/* 1*DIGIT only: a list, a sign or a space is how two hops come to disagree. */
	if (!len)
		return -400;
	for (i = 0; i < len; i++) {
		unsigned int digit = (unsigned char)v[i] - '0';

		if (digit > 9 || x > (UINT64_MAX - digit) / 10)
			return -400;
		x = x * 10 + digit;
	}
	*out = x;
	return 0;
}

/* Connection = #token: keeps each token, and notes close, keep-alive and upgrade. */
static int http_parse_connection(const char *v, size_t len, struct http_conn_options *conn,
				 struct http_fields *f)
{
	size_t i = 0, start;

	while (i < len) {
		/* RFC 9110 5.6.1: empty list elements ("a, , b") are allowed and ignored. */
		if (http_is_ws(v[i]) || v[i] == ',') {
			i++;
			continue;
		}
		for (start = i; i < len && http_is(v[i], C_TCHAR); i++)
			;
		if (i == start)
			return -400;
		/* A hop that drops the fields its Connection names would lose the framing or
		 * the Host we route and frame by: refused, never obeyed (RFC 9110 7.6.1 lets
		 * a proxy drop them, which is how a body becomes a second request). */
		if (LIT_CASEEQ(v + start, i - start, "content-length") ||
		    LIT_CASEEQ(v + start, i - start, "transfer-encoding") ||
		    LIT_CASEEQ(v + start, i - start, "host"))
			return -400;
		if (LIT_CASEEQ(v + start, i - start, "close"))
			f->conn_close = true;
		else if (LIT_CASEEQ(v + start, i - start, "keep-alive"))
			f->conn_keep_alive = true;
		else if (LIT_CASEEQ(v + start, i - start, "upgrade"))
			f->conn_upgrade = true;
		/* A token we cannot keep names a header we could not strip. */
		if (conn->nr == HTTP_MAX_CONN_OPTIONS)
			return -400;
		conn->opt[conn->nr].name = v + start;
		conn->opt[conn->nr++].len = i - start;
		while (i < len && http_is_ws(v[i]))
			i++;
		if (i < len && v[i] != ',')
			return -400;
	}
	return 0;
}

/* Notes the headers that decide framing, routing and the connection. */
static int http_field_meaning(const struct http_header *h, struct http_conn_options *conn,
			      struct http_fields *f)
{
	const char *v = h->value;
	size_t len = h->value_len;

	/* The length picks the one candidate name, so most fields cost one switch. */
	switch (h->name_len) {
	case 4:
		if (LIT_CASEEQ(h->name, 4, "host") && !f->nr_host++) {
			f->host = v;
			f->host_len = len;
		}
		break;
	case 6:
		if (LIT_CASEEQ(h->name, 6, "expect")) {
			if (LIT_CASEEQ(v, len, "100-continue"))
				f->expect_continue = true;
			else
				f->expect_other = true;
		}
		break;
	case 7:
		if (LIT_CASEEQ(h->name, 7, "upgrade") && len)
			f->has_upgrade = true;
		break;
	case 10:
		if (LIT_CASEEQ(h->name, 10, "connection"))
			return http_parse_connection(v, len, conn, f);
		break;
	case 14:
		if (LIT_CASEEQ(h->name, 14, "content-length")) {
			if (f->has_content_length)
				return -400;
			f->has_content_length = true;
			return http_parse_content_length(v, len, &f->content_length);
		}
		break;
	case 17:
		if (LIT_CASEEQ(h->name, 17, "transfer-encoding")) {
			if (f->has_transfer_encoding || !LIT_CASEEQ(v, len, "chunked"))
				return -400;
			f->has_transfer_encoding = true;
		}
		break;
	}
	return 0;
}

/*
 * The field lines in buf[p..end), end being the CR of the empty line that ends the head.
 * Every scan stops at that CR at the latest, since CR is neither tchar nor a value byte.
 */
static int http_parse_fields(const char *buf, size_t p, size_t end, unsigned int max_headers,
			     struct http_header *headers, unsigned int *nr,
			     struct http_conn_options *conn, struct http_fields *f)
{
	struct http_header *h;
	size_t value_end;
	int err;

	while (p < end) {
		if (*nr == max_headers)
			return -431;
		h = &headers[*nr];
		/* An empty name also catches obs-fold and whitespace after the start line. */
		h->name = buf + p;
		while (http_is(buf[p], C_TCHAR))
			p++;
		if (buf + p == h->name || buf[p] != ':')
			return -400;
		h->name_len = buf + p - h->name;

		for (p++; http_is_ws(buf[p]); p++)
			;
		h->value = buf + p;
		while (http_is(buf[p], C_VALUE))
			p++;
		if (buf[p] != '\r' || buf[p + 1] != '\n')
			return -400;
		for (value_end = p; buf + value_end > h->value && http_is_ws(buf[value_end - 1]);)
			value_end--;
		h->value_len = buf + value_end - h->value;
		p += 2;
		(*nr)++;

		err = http_field_meaning(h, conn, f);
		if (err)
			return err;
	}
	return 0;
}

/* The checks that need the whole head: Host, framing, Expect, then the body limit. */
static int http_request_meaning(struct http_request *req, const struct http_fields *f,
				const struct http_limits *lim)
{
	bool http11 = req->version_minor == 1;

	if (f->nr_host > 1 || (!f->nr_host && http11))
		return -400;
	if (f->nr_host && !http_host_valid(f->host, f->host_len))
		return -400;
	if (req->authority) {
		if (f->nr_host &&
		    !http_caseeq(f->host, f->host_len, req->authority, req->authority_len))
			return -400;
		req->host = req->authority;
		req->host_len = req->authority_len;
	} else if (f->nr_host) {
		req->host = f->host;
		req->host_len = f->host_len;
	}
	if (f->has_transfer_encoding && (f->has_content_length || !http11))
		return -400;
	if (f->expect_other)
		return -417;
	if (f->has_content_length && f->content_length > lim->max_body)
		return -413;

	if (f->has_transfer_encoding)
		req->body = HTTP_BODY_CHUNKED;
	else if (f->has_content_length)
		req->body = HTTP_BODY_LENGTH;
	req->content_length = f->content_length;
	req->keep_alive = !f->conn_close && (http11 || f->conn_keep_alive);
	req->expect_continue = http11 && f->expect_continue;
	/* RFC 9110 7.8: Upgrade on an HTTP/1.0 request is ignored. */
	req->upgrade = http11 && f->conn_upgrade && f->has_upgrade;
	return 0;
}

int http_parse_request(const char *buf, size_t len, const struct http_limits *lim,
		       struct http_request *req)
{
	struct http_fields f = {};
	struct http_limits l;
	size_t start = 0, head_len;
	unsigned int empty;
	int ret;

	http_limits_get(lim, &l);
	/* RFC 9112 2.2: old clients send a CRLF after a body; a few are skipped, not more. */
	for (empty = 0; start < len && buf[start] == '\r'; empty++) {
		if (start + 1 == len)
			return 0;
		if (buf[start + 1] != '\n' || empty == HTTP_MAX_EMPTY_LINES)
			return -400;
		start += 2;
	}

	req->authority = NULL;
	req->authority_len = 0;
	req->host = NULL;
	req->host_len = 0;
	req->body = HTTP_BODY_NONE;
	req->conn.nr = 0;
	req->nr_headers = 0;
	ret = http_parse_request_line(buf, start, len, l.max_request_line, req);
	if (ret <= 0)
		return ret;

	/* The cheap test first: re-parses of an incomplete head stop here. */
	head_len = http_find_head_end(buf, ret - 2, len, l.max_header_bytes);
	if (!head_len)
		return len >= l.max_header_bytes ? -431 : 0;
	ret = http_parse_fields(buf, ret, head_len - 2, l.max_headers, req->headers,
				&req->nr_headers, &req->conn, &f);
	if (ret)
		return ret;
	ret = http_request_meaning(req, &f, &l);
	if (ret)
		return ret;
	req->head_len = head_len;
	return (int)head_len;
}

/*
 * "HTTP/1.x SP 3DIGIT SP reason CRLF". A status line that stops after the code is taken too:
 * servers send it, and it frames the same.
 */
static int http_parse_status_line(const char *buf, size_t len, size_t max_line,
				  struct http_response *resp)
{
	size_t limit = max_line + 1;
	size_t stop = len < limit ? len : limit;
	size_t p = 12;

	if (stop < 12)
		goto short_line;
	if (memcmp(buf, "HTTP/1.", 7) || (buf[7] != '0' && buf[7] != '1') || buf[8] != ' ' ||
	    buf[9] < '1' || buf[9] > '5' || !http_is_digit(buf[10]) || !http_is_digit(buf[11]))
		return -502;
	resp->version_minor = buf[7] - '0';
	resp->status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + buf[11] - '0';
	resp->reason = buf + p;
	if (p < stop && buf[p] == ' ') {
		resp->reason = buf + ++p;
		while (p < stop && http_is(buf[p], C_VALUE))
			p++;
	}
	if (p == stop)
		goto short_line;
	resp->reason_len = buf + p - resp->reason;
	if (buf[p] != '\r')
		return -502;
	if (p + 1 == len)
		return 0;
	return buf[p + 1] == '\n' ? (int)(p + 2) : -502;

short_line:
	return stop == limit ? -502 : 0;
}

int http_parse_response(const char *buf, size_t len, const struct http_limits *lim,
			bool request_was_head, struct http_response *resp)
{
	struct http_fields f = {};
	struct http_limits l;
	size_t head_len;
	int ret;

	http_limits_get(lim, &l);
	resp->body = HTTP_BODY_NONE;
	resp->conn.nr = 0;
	resp->nr_headers = 0;
	ret = http_parse_status_line(buf, len, l.max_request_line, resp);
	if (ret <= 0)
		return ret;
	head_len = http_find_head_end(buf, ret - 2, len, l.max_header_bytes);
	if (!head_len)
		return len >= l.max_header_bytes ? -502 : 0;
	/* Whatever the reason, the client gets a 502 and the upstream connection is closed. */
	if (http_parse_fields(buf, ret, head_len - 2, l.max_headers, resp->headers,
			      &resp->nr_headers, &resp->conn, &f))
		return -502;
	if (f.has_transfer_encoding && (f.has_content_length || !resp->version_minor))
		return -502;

	/* RFC 9112 6.3, in its order. */
	resp->content_length = f.content_length;
	if (request_was_head || resp->status < 200 || resp->status == 204 || resp->status == 304)
		resp->body = HTTP_BODY_NONE;
	else if (f.has_transfer_encoding)
		resp->body = HTTP_BODY_CHUNKED;
	else if (f.has_content_length)
		resp->body = HTTP_BODY_LENGTH;
	else
		resp->body = HTTP_BODY_CLOSE;
	resp->keep_alive = resp->body != HTTP_BODY_CLOSE && !f.conn_close &&
			   (resp->version_minor == 1 || f.conn_keep_alive);
	resp->head_len = head_len;
	return (int)head_len;
}

/*
 * Chunked decoder states. The size line is chunk-size *( BWS ";" BWS name [ BWS "=" BWS
 * value ] ) CRLF, value being a token or a quoted-string (RFC 9112 7.1.1); the trailer
 * section is field lines up to an empty line (7.1.2).
 */
enum http_chunk_state {
	CS_SIZE_FIRST,	   /* the first hex digit of a size */
	CS_SIZE,	   /* more digits, BWS, ';' or CR */
	CS_WS_SEMI,	   /* BWS that must lead to ';' */
	CS_EXT_NAME_FIRST, /* BWS after ';', then the first byte of a name */
	CS_EXT_NAME,	   /* more of a name, BWS, '=', ';' or CR */
	CS_WS_EQ,	   /* BWS after a name: '=' or ';' must follow */
	CS_EXT_VAL_FIRST,  /* BWS after '=', then a token or a quote */
	CS_EXT_TOKEN,	   /* more of a token value, BWS, ';' or CR */
	CS_EXT_QUOTED,	   /* inside a quoted-string */
	CS_EXT_QPAIR,	   /* after a backslash in a quoted-string */
	CS_EXT_VAL_END,	   /* after the closing quote: BWS, ';' or CR */
	CS_SIZE_LF,	   /* the LF of a size line */
	CS_DATA,	   /* chunk data */
	CS_DATA_CR,	   /* the CRLF after chunk data */
	CS_DATA_LF,
	CS_TRAILER_FIRST, /* start of a trailer line, or the CR of the final CRLF */
	CS_TRAILER_NAME,
	CS_TRAILER_VALUE,
	CS_TRAILER_LF,
	CS_FINAL_LF,
	CS_DONE,
	CS_ERROR,
};

void http_chunked_init(struct http_chunked *c)
{
	memset(c, 0, sizeof(*c));
	c->state = CS_SIZE_FIRST;
}

/* One byte of a size line. Returns the next state, or CS_ERROR. */
static enum http_chunk_state http_chunk_size_byte(struct http_chunked *c, char ch)
{
	int hex = http_hex_value(ch);

	switch (c->state) {
	case CS_SIZE_FIRST:
		if (hex < 0)
			return CS_ERROR;
		c->remaining = hex;
		c->digits = 1;
		return CS_SIZE;
	case CS_SIZE:
		/* 16 digits always fit 64 bits; leading zeros count, so "0..01" cannot hide. */
		if (hex >= 0) {
			if (++c->digits > 16)
				return CS_ERROR;
			c->remaining = c->remaining << 4 | hex;
			return CS_SIZE;
		}
		break;
	case CS_EXT_NAME_FIRST:
	case CS_EXT_VAL_FIRST:
		if (http_is_ws(ch))
			return c->state;
		if (c->state == CS_EXT_VAL_FIRST && ch == '"')
			return CS_EXT_QUOTED;
		if (!http_is(ch, C_TCHAR))
			return CS_ERROR;
		return c->state == CS_EXT_NAME_FIRST ? CS_EXT_NAME : CS_EXT_TOKEN;
	case CS_EXT_NAME:
		if (http_is(ch, C_TCHAR))
			return CS_EXT_NAME;
		if (http_is_ws(ch))
			return CS_WS_EQ;
		if (ch == '=')
			return CS_EXT_VAL_FIRST;
		break;
	case CS_WS_EQ:
		if (ch == '=')
			return CS_EXT_VAL_FIRST;
		if (http_is_ws(ch))
			return CS_WS_EQ;
		return ch == ';' ? CS_EXT_NAME_FIRST : CS_ERROR;
	case CS_WS_SEMI:
		/* BWS is only allowed before ';' (and '='): "5 \r\n" is not a size line. */
		if (http_is_ws(ch))
			return CS_WS_SEMI;
		return ch == ';' ? CS_EXT_NAME_FIRST : CS_ERROR;
	case CS_EXT_TOKEN:
		if (http_is(ch, C_TCHAR))
			return CS_EXT_TOKEN;
		break;
	case CS_EXT_QUOTED:
		if (ch == '"')
			return CS_EXT_VAL_END;
		if (ch == '\\')
			return CS_EXT_QPAIR;
		return http_is(ch, C_VALUE) ? CS_EXT_QUOTED : CS_ERROR;
	case CS_EXT_QPAIR:
		return http_is(ch, C_VALUE) ? CS_EXT_QUOTED : CS_ERROR;
	default:
		break;
	}
	/* The ends shared by a size, a name and a value: BWS, the next extension, the CR. */
	if (http_is_ws(ch))
		return CS_WS_SEMI;
	if (ch == ';')
		return CS_EXT_NAME_FIRST;
	return ch == '\r' ? CS_SIZE_LF : CS_ERROR;
}

/* One byte of framing, a trailer, or the end. Returns the next state, or CS_ERROR. */
static enum http_chunk_state http_chunk_byte(struct http_chunked *c, char ch)
{
	if (c->state <= CS_EXT_VAL_END) {
		if (ch != '\r' && ++c->line_len > HTTP_CHUNK_LINE_MAX)
			return CS_ERROR;
		return http_chunk_size_byte(c, ch);
	}
	if (c->state >= CS_TRAILER_FIRST && ++c->trailer_bytes > HTTP_CHUNK_TRAILERS_MAX)
		return CS_ERROR;

	switch (c->state) {
	case CS_SIZE_LF:
		if (ch != '\n')
			return CS_ERROR;
		c->line_len = 0;
		return c->remaining ? CS_DATA : CS_TRAILER_FIRST;
	case CS_DATA_CR:
		return ch == '\r' ? CS_DATA_LF : CS_ERROR;
	case CS_DATA_LF:
		return ch == '\n' ? CS_SIZE_FIRST : CS_ERROR;
	case CS_TRAILER_FIRST:
		if (ch == '\r')
			return CS_FINAL_LF;
		/* A leading SP would be obs-fold; a bare LF is not a line end. */
		c->line_len = 1;
		return http_is(ch, C_TCHAR) ? CS_TRAILER_NAME : CS_ERROR;
	case CS_TRAILER_NAME:
	case CS_TRAILER_VALUE:
		if (ch == '\r')
			return c->state == CS_TRAILER_VALUE ? CS_TRAILER_LF : CS_ERROR;
		if (++c->line_len > HTTP_CHUNK_LINE_MAX)
			return CS_ERROR;
		if (c->state == CS_TRAILER_NAME && ch == ':')
			return CS_TRAILER_VALUE;
		if (http_is(ch, c->state == CS_TRAILER_NAME ? C_TCHAR : C_VALUE))
			return c->state;
		return CS_ERROR;
	case CS_TRAILER_LF:
		return ch == '\n' ? CS_TRAILER_FIRST : CS_ERROR;
	case CS_FINAL_LF:
		return ch == '\n' ? CS_DONE : CS_ERROR;
	default:
		return CS_ERROR;
	}
}

/* "size CRLF" in lower-case hex without leading zeros: the canonical chunk-size line. */
static size_t http_chunk_size_line(char *out, __u64 size)
{
	static const char hex[] = "0123456789abcdef";
	int digits = 1, i;

	while (digits < 16 && size >> (4 * digits))
		digits++;
	for (i = 0; i < digits; i++)
		out[i] = hex[(size >> (4 * (digits - 1 - i))) & 15];
	out[digits] = '\r';
	out[digits + 1] = '\n';
	return digits + 2;
}

/*
 * The decoder; with out, also the encoder of the canonical framing. Framing is written
 * only once the line that carries it is whole and valid (a size line at its LF, the CRLF
 * after data at its LF, the end at the final LF), data as it comes.
 */
static int http_chunked_run(struct http_chunked *c, const char *buf, size_t len, size_t *consumed,
			    bool *done, char *out, size_t *out_len)
{
	enum http_chunk_state prev;
	size_t i = 0, n, o = 0;

	while (i < len && c->state != CS_DONE && c->state != CS_ERROR) {
		if (c->state == CS_DATA) {
			/* Data moves in bulk: only counted, or copied as it is. */
			n = len - i < c->remaining ? len - i : c->remaining;
			if (out)
				memcpy(out + o, buf + i, n);
			o += n;
			i += n;
			c->remaining -= n;
			c->data_bytes += n;
			if (!c->remaining)
				c->state = CS_DATA_CR;
			continue;
		}
		prev = c->state;
		c->state = http_chunk_byte(c, buf[i]);
		if (c->state == CS_ERROR)
			break;
		i++;
		if (!out)
			continue;
		if (prev == CS_SIZE_LF)
			o += http_chunk_size_line(out + o, c->remaining);
		else if (prev == CS_DATA_LF || prev == CS_FINAL_LF)
			out[o++] = '\r', out[o++] = '\n';
	}
	*consumed = i;
	*done = c->state == CS_DONE;
	if (out_len)
		*out_len = out ? o : 0;
	return c->state == CS_ERROR ? -400 : 0;
}

int http_chunked_feed(struct http_chunked *c, const char *buf, size_t len, size_t *consumed,
		      bool *done)
{
	return http_chunked_run(c, buf, len, consumed, done, NULL, NULL);
}

int http_chunked_recode(struct http_chunked *c, const char *buf, size_t len, size_t *consumed,
			bool *done, char *out, size_t *out_len)
{
	return http_chunked_run(c, buf, len, consumed, done, out, out_len);
}

const struct http_header *http_find_header(const struct http_header *h, unsigned int nr,
					   const char *name)
{
	size_t len = strlen(name);
	unsigned int i;

	for (i = 0; i < nr; i++)
		if (http_caseeq(h[i].name, h[i].name_len, name, len))
			return &h[i];
	return NULL;
}

bool http_is_hop_by_hop(const struct http_conn_options *conn, const char *name, size_t len)
{
	static const struct http_token always[] = {
		{"connection", 10}, {"proxy-connection", 16},  {"keep-alive", 10},
		{"te", 2},	    {"transfer-encoding", 17}, {"upgrade", 7},
	};
	unsigned int i;

	for (i = 0; i < sizeof(always) / sizeof(always[0]); i++)
		if (http_caseeq(name, len, always[i].name, always[i].len))
			return true;
	for (i = 0; conn && i < conn->nr; i++)
		if (http_caseeq(name, len, conn->opt[i].name, conn->opt[i].len))
			return true;
	return false;
}
