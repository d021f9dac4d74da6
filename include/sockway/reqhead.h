/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The request heads that the kernel may route itself, shared by sk_msg (which scans a head a
 * byte at a time in a bpf_loop) and by the tests (which check it against sockwayd's own
 * parser and head builder, tests/unit/test_reqhead.c).
 *
 * sockwayd rewrites every request head it forwards (user/helper/headers.c,
 * head_request_build): the request line with the normal path, "Host: " first, each field
 * as "name: value" with the value's outer whitespace trimmed, hop-by-hop and forwarding
 * fields dropped, then X-Forwarded-For and X-Forwarded-Proto. For a head that already reads
 * like that output but for where its Host line is, the rewrite only moves the "Host: " line
 * up behind the request line (if it is not there already), drops a "Connection: keep-alive"
 * line and adds the two fields before the empty line, which the kernel can do too
 * (bpf_msg_push_data, bpf_msg_pop_data). This scanner accepts only such heads:
 *   method SP path [ "?" query ] SP "HTTP/1.1" CRLF
 *   *( name ": " value CRLF )
 *   CRLF
 * with exactly one field line "Host: " host [ ":" port ] CRLF among the fields (named
 * "Host" in that case, as sockwayd writes it), and
 *   - method one of GET POST PUT DELETE PATCH OPTIONS (HEAD's response has no body to
 *     splice, CONNECT and TRACE are not routed);
 *   - the target in origin form, its bytes VCHAR but '#' (sockwayd's parser takes those),
 *     its path at most SW_DECIDE_PATH_MAX - 1 bytes (the kernel's decision checks later
 *     that the path is in normal form already);
 *   - host: lower-case letters, digits and "-._~!$&'()*+;=", not ending in '.', and a port
 *     of 1-5 digits (sockwayd writes the name in lower case without a trailing dot);
 *   - name a token without '_' (sockwayd drops those), value empty or starting and ending
 *     with a visible byte;
 *   - no second Host, no Connection but one "Connection: keep-alive", no Keep-Alive,
 *     Proxy-Connection, TE, Transfer-Encoding, Upgrade, Expect, Forwarded, X-Forwarded-*,
 *     X-Real-IP, True-Client-IP, X-Client-IP, X-Original-URL, X-Rewrite-URL or
 *     X-Sockway-Shadow (sockwayd drops or rewrites them);
 *   - at most one Content-Length, of 1-SW_REQHEAD_CL_DIGITS digits without a leading zero;
 *   - at most SW_REQHEAD_FIELDS fields, the whole head within SW_REQHEAD_MAX bytes.
 * Anything else is refused and goes to sockwayd as it came. Refusing is always safe;
 * accepting a head that sockwayd would have refused, or rewritten some other way, is the
 * bug the tests look for.
 */
#ifndef SOCKWAY_REQHEAD_H
#define SOCKWAY_REQHEAD_H

#include "abi.h"
#include "hash.h"
#include "resphead.h"

/* "X-Forwarded-For: " address "\r\nX-Forwarded-Proto: http\r\n": what goes in before the
 * empty line, around the client's address in dotted decimal. */
#define SW_KROUTE_XFF	     "X-Forwarded-For: "
#define SW_KROUTE_XFP	     "\r\nX-Forwarded-Proto: http\r\n"
#define SW_KROUTE_XFF_LEN    (sizeof(SW_KROUTE_XFF) - 1)
#define SW_KROUTE_XFP_LEN    (sizeof(SW_KROUTE_XFP) - 1)
#define SW_KROUTE_INSERT_MAX (SW_KROUTE_XFF_LEN + 15 + SW_KROUTE_XFP_LEN)

/* A byte of a Host name the kernel takes as sockwayd writes it (see above). */
static __always_inline int sw_rq_host_byte(__u8 c)
{
	if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
		return 1;
	switch (c) {
	case '-':
	case '.':
	case '_':
	case '~':
	case '!':
	case '$':
	case '&':
	case '\'':
	case '(':
	case ')':
	case '*':
	case '+':
	case ';':
	case '=':
		return 1;
	}
	return 0;
}

/* A byte of the request target: VCHAR but '#'. */
static __always_inline int sw_rq_target_byte(__u8 c)
{
	return c > ' ' && c < 0x7f && c != '#';
}

enum sw_rq_name {
	SW_RQ_OTHER,
	SW_RQ_REFUSED,
	SW_RQ_CONTENT_LENGTH,
	SW_RQ_CONNECTION,
	SW_RQ_HOST_FIELD,
};

/* Three name words, lower case, low byte first (SW_RH_W). */
static __always_inline int sw_rq_is(const struct sw_reqhead *p, __u64 a, __u64 b, __u64 c)
{
	return p->name[0] == a && p->name[1] == b && p->name[2] == c;
}

#define SW_RQ_W3(s0, s1, s2) sw_rq_is(p, s0, s1, s2)

/* What the field name just ended (len bytes, in p->name) means here. */
static __always_inline enum sw_rq_name sw_rq_name_kind(const struct sw_reqhead *p, __u32 len)
{
	const __u64 xforwar = SW_RH_W('x', '-', 'f', 'o', 'r', 'w', 'a', 'r');

	switch (len) {
	case 2:
		if (SW_RQ_W3(SW_RH_W('t', 'e', 0, 0, 0, 0, 0, 0), 0, 0))
			return SW_RQ_REFUSED;
		break;
	case 4:
		if (SW_RQ_W3(SW_RH_W('h', 'o', 's', 't', 0, 0, 0, 0), 0, 0))
			return SW_RQ_HOST_FIELD;
		break;
	case 6:
		if (SW_RQ_W3(SW_RH_W('e', 'x', 'p', 'e', 'c', 't', 0, 0), 0, 0))
			return SW_RQ_REFUSED;
		break;
	case 7:
		if (SW_RQ_W3(SW_RH_W('u', 'p', 'g', 'r', 'a', 'd', 'e', 0), 0, 0))
			return SW_RQ_REFUSED;
		break;
	case 9:
		if (SW_RQ_W3(SW_RH_W('f', 'o', 'r', 'w', 'a', 'r', 'd', 'e'),
			     SW_RH_W('d', 0, 0, 0, 0, 0, 0, 0), 0) ||
		    SW_RQ_W3(SW_RH_W('x', '-', 'r', 'e', 'a', 'l', '-', 'i'),
			     SW_RH_W('p', 0, 0, 0, 0, 0, 0, 0), 0))
			return SW_RQ_REFUSED;
		break;
	case 10:
		if (SW_RQ_W3(SW_RH_W('c', 'o', 'n', 'n', 'e', 'c', 't', 'i'),
			     SW_RH_W('o', 'n', 0, 0, 0, 0, 0, 0), 0))
			return SW_RQ_CONNECTION;
		if (SW_RQ_W3(SW_RH_W('k', 'e', 'e', 'p', '-', 'a', 'l', 'i'),
			     SW_RH_W('v', 'e', 0, 0, 0, 0, 0, 0), 0))
			return SW_RQ_REFUSED;
		break;
	case 11:
		if (SW_RQ_W3(SW_RH_W('x', '-', 'c', 'l', 'i', 'e', 'n', 't'),
			     SW_RH_W('-', 'i', 'p', 0, 0, 0, 0, 0), 0))
			return SW_RQ_REFUSED;
		break;
	case 13:
		if (SW_RQ_W3(SW_RH_W('x', '-', 'r', 'e', 'w', 'r', 'i', 't'),
			     SW_RH_W('e', '-', 'u', 'r', 'l', 0, 0, 0), 0))
			return SW_RQ_REFUSED;
		break;
	case 14:
		if (SW_RQ_W3(SW_RH_W('c', 'o', 'n', 't', 'e', 'n', 't', '-'),
			     SW_RH_W('l', 'e', 'n', 'g', 't', 'h', 0, 0), 0))
			return SW_RQ_CONTENT_LENGTH;
		if (SW_RQ_W3(SW_RH_W('t', 'r', 'u', 'e', '-', 'c', 'l', 'i'),
			     SW_RH_W('e', 'n', 't', '-', 'i', 'p', 0, 0), 0) ||
		    SW_RQ_W3(SW_RH_W('x', '-', 'o', 'r', 'i', 'g', 'i', 'n'),
			     SW_RH_W('a', 'l', '-', 'u', 'r', 'l', 0, 0), 0))
			return SW_RQ_REFUSED;
		break;
	case 15:
		if (SW_RQ_W3(xforwar, SW_RH_W('d', 'e', 'd', '-', 'f', 'o', 'r', 0), 0))
			return SW_RQ_REFUSED;
		break;
	case 16:
		if (SW_RQ_W3(SW_RH_W('p', 'r', 'o', 'x', 'y', '-', 'c', 'o'),
			     SW_RH_W('n', 'n', 'e', 'c', 't', 'i', 'o', 'n'), 0) ||
		    SW_RQ_W3(xforwar, SW_RH_W('d', 'e', 'd', '-', 'h', 'o', 's', 't'), 0) ||
		    SW_RQ_W3(xforwar, SW_RH_W('d', 'e', 'd', '-', 'p', 'o', 'r', 't'), 0) ||
		    SW_RQ_W3(SW_RH_W('x', '-', 's', 'o', 'c', 'k', 'w', 'a'),
			     SW_RH_W('y', '-', 's', 'h', 'a', 'd', 'o', 'w'), 0))
			return SW_RQ_REFUSED;
		break;
	case 17:
		if (SW_RQ_W3(SW_RH_W('t', 'r', 'a', 'n', 's', 'f', 'e', 'r'),
			     SW_RH_W('-', 'e', 'n', 'c', 'o', 'd', 'i', 'n'),
			     SW_RH_W('g', 0, 0, 0, 0, 0, 0, 0)) ||
		    SW_RQ_W3(xforwar, SW_RH_W('d', 'e', 'd', '-', 'p', 'r', 'o', 't'),
			     SW_RH_W('o', 0, 0, 0, 0, 0, 0, 0)))
			return SW_RQ_REFUSED;
		break;
	case 18:
		if (SW_RQ_W3(xforwar, SW_RH_W('d', 'e', 'd', '-', 'p', 'r', 'e', 'f'),
			     SW_RH_W('i', 'x', 0, 0, 0, 0, 0, 0)) ||
		    SW_RQ_W3(xforwar, SW_RH_W('d', 'e', 'd', '-', 's', 'e', 'r', 'v'),
			     SW_RH_W('e', 'r', 0, 0, 0, 0, 0, 0)))
			return SW_RQ_REFUSED;
		break;
	}
	return SW_RQ_OTHER;
}

/* Readies p for sw_reqhead_step from offset 0 (the map value holds the last scan). */
static __always_inline void sw_reqhead_begin(struct sw_reqhead *p)
{
	p->state = SW_RQ_METHOD;
	p->method = 0;
	p->start = 0;
	p->path_off = 0;
	p->path_len = 0;
	p->target_len = 0;
	p->host_off = 0;
	p->host_len = 0;
	p->port_digits = 0;
	p->fields = 0;
	p->cl_digits = 0;
	p->in_cl = 0;
	p->in_conn = 0;
	p->last_ws = 0;
	p->last = 0;
	p->name_host = 0;
	p->line0_end = 0;
	p->host_line_off = 0;
	p->host_line_len = 0;
	p->conn_off = 0;
	p->conn_line_len = 0;
	p->head_len = 0;
	p->body_len = 0;
	p->name[0] = p->name[1] = p->name[2] = 0;
	p->hash = SW_FNV_OFFSET;
	p->conn_value[0] = p->conn_value[1] = 0;
}

/* The method word (its letters, low byte first) as an SW_METHOD_* bit the kernel routes. */
static __always_inline __u32 sw_rq_method(__u64 w)
{
	if (w == SW_RH_W('G', 'E', 'T', 0, 0, 0, 0, 0))
		return SW_METHOD_GET;
	if (w == SW_RH_W('P', 'O', 'S', 'T', 0, 0, 0, 0))
		return SW_METHOD_POST;
	if (w == SW_RH_W('P', 'U', 'T', 0, 0, 0, 0, 0))
		return SW_METHOD_PUT;
	if (w == SW_RH_W('D', 'E', 'L', 'E', 'T', 'E', 0, 0))
		return SW_METHOD_DELETE;
	if (w == SW_RH_W('P', 'A', 'T', 'C', 'H', 0, 0, 0))
		return SW_METHOD_PATCH;
	if (w == SW_RH_W('O', 'P', 'T', 'I', 'O', 'N', 'S', 0))
		return SW_METHOD_OPTIONS;
	return 0;
}

/* The field being named gets its slot in the table: name and its hash. */
static __always_inline void sw_rq_field_name(struct sw_reqhead *p, __u32 i)
{
	struct sw_reqhead_field *f = &p->field[(p->fields - 1) & (SW_REQHEAD_FIELDS - 1)];

	f->hash = sw_hash_final(p->hash);
	f->name_off = p->start;
	f->name_len = i - p->start;
	f->value_off = i + 2;
	f->value_len = 0;
}

/* "HTTP/1.1\r\n", byte k. */
static __always_inline __u8 sw_rq_version_byte(__u32 k)
{
	switch (k) {
	case 0:
		return 'H';
	case 1:
	case 2:
		return 'T';
	case 3:
		return 'P';
	case 4:
		return '/';
	case 5:
	case 7:
		return '1';
	case 6:
		return '.';
	case 8:
		return '\r';
	default:
		return '\n';
	}
}

/* "Host", byte k (0 past it). */
static __always_inline __u8 sw_rq_host_name_byte(__u32 k)
{
	switch (k) {
	case 0:
		return 'H';
	case 1:
		return 'o';
	case 2:
		return 's';
	case 3:
		return 't';
	default:
		return 0;
	}
}

/* A value byte of the Connection field, kept in lower case (16 at most matter). */
static __always_inline void sw_rq_conn_byte(struct sw_reqhead *p, __u8 c, __u32 j)
{
	if (c >= 'A' && c <= 'Z')
		c |= 0x20;
	if (j < 8)
		p->conn_value[0] |= (__u64)c << (j * 8);
	else if (j < 16)
		p->conn_value[1] |= (__u64)c << ((j - 8) * 8);
}

/*
 * Byte c at offset i of the message. Returns 0 for more, 1 when the head ended with this
 * byte (head_len, body_len and the offsets are set), -1 when the head is not one the kernel
 * may route.
 */
static __always_inline int sw_reqhead_step(struct sw_reqhead *p, __u8 c, __u32 i)
{
	struct sw_reqhead_field *f;
	__u32 j;

	switch (p->state) {
	case SW_RQ_METHOD:
		if (c == ' ') {
			p->method = sw_rq_method(p->name[0]);
			if (!p->method)
				return -1;
			p->path_off = i + 1;
			p->state = SW_RQ_TARGET;
			return 0;
		}
		if (c < 'A' || c > 'Z' || i >= 7)
			return -1;
		p->name[0] |= (__u64)c << (i * 8);
		return 0;
	case SW_RQ_TARGET:
		if (c != '/')
			return -1;
		p->state = SW_RQ_PATH;
		return 0;
	case SW_RQ_PATH:
		if (c == '?' || c == ' ') {
			p->path_len = i - p->path_off;
			if (p->path_len >= SW_DECIDE_PATH_MAX)
				return -1;
			p->state = SW_RQ_QUERY;
			if (c == '?')
				return 0;
			/* fall through: the SP ends the query too */
		} else {
			return sw_rq_target_byte(c) ? 0 : -1;
		}
		/* fallthrough */
	case SW_RQ_QUERY:
		if (c == ' ') {
			p->target_len = i - p->path_off;
			p->start = i + 1;
			p->state = SW_RQ_VERSION;
			return 0;
		}
		return sw_rq_target_byte(c) ? 0 : -1;
	case SW_RQ_VERSION:
		j = i - p->start;
		if (c != sw_rq_version_byte(j))
			return -1;
		if (j == 9) {
			p->line0_end = i + 1;
			p->state = SW_RQ_LINE_START;
		}
		return 0;
	case SW_RQ_HOST_SP:
		if (c != ' ')
			return -1;
		p->host_off = i + 1;
		p->last = 0;
		p->state = SW_RQ_HOST;
		return 0;
	case SW_RQ_HOST:
		if (c == ':' || c == '\r') {
			/* A name, not ending in the '.' that sockwayd would drop. */
			if (i == p->host_off || p->last == '.')
				return -1;
			if (c == '\r')
				goto host_end;
			p->port_digits = 0;
			p->state = SW_RQ_PORT;
			return 0;
		}
		if (!sw_rq_host_byte(c))
			return -1;
		p->last = c;
		return 0;
	case SW_RQ_PORT:
		if (c == '\r') {
			if (!p->port_digits)
				return -1;
			goto host_end;
		}
		if (c < '0' || c > '9' || ++p->port_digits > 5)
			return -1;
		return 0;
	case SW_RQ_LINE_LF:
		if (c != '\n')
			return -1;
		p->state = SW_RQ_LINE_START;
		return 0;
	case SW_RQ_LINE_START:
		if (c == '\r') {
			p->state = SW_RQ_END_LF;
			return 0;
		}
		if (!sw_rh_tchar(c) || c == '_' || p->fields >= SW_REQHEAD_FIELDS)
			return -1;
		p->fields++;
		p->start = i;
		p->name_host = 1; /* so far: checked with the other name bytes below */
		p->name[0] = p->name[1] = p->name[2] = 0;
		p->hash = SW_FNV_OFFSET;
		p->state = SW_RQ_NAME;
		break; /* the byte is the name's first: stored below */
	case SW_RQ_NAME:
		if (c == ':') {
			p->in_cl = 0;
			p->in_conn = 0;
			switch (sw_rq_name_kind(p, i - p->start)) {
			case SW_RQ_REFUSED:
				return -1;
			case SW_RQ_CONTENT_LENGTH:
				/* A second one is refused by sockwayd's parser too. */
				if (p->cl_digits)
					return -1;
				p->in_cl = 1;
				break;
			case SW_RQ_CONNECTION:
				if (p->conn_line_len)
					return -1;
				p->in_conn = 1;
				p->conn_value[0] = p->conn_value[1] = 0;
				break;
			case SW_RQ_HOST_FIELD:
				/* The Host, in the table like the others (an endpoint may shard
				 * on it): named as sockwayd names it, and only one. */
				if (!p->name_host || p->host_off)
					return -1;
				sw_rq_field_name(p, i);
				p->host_line_off = p->start;
				p->state = SW_RQ_HOST_SP;
				return 0;
			case SW_RQ_OTHER:
				break;
			}
			sw_rq_field_name(p, i);
			p->state = SW_RQ_COLON_SP;
			return 0;
		}
		if (!sw_rh_tchar(c) || c == '_')
			return -1;
		break;
	case SW_RQ_COLON_SP:
		if (c != ' ')
			return -1;
		p->state = SW_RQ_VALUE_FIRST;
		return 0;
	case SW_RQ_VALUE_FIRST:
		if (c == '\r') {
			/* "name: " CRLF is rebuilt as itself; Content-Length and Connection need
			 * their values. */
			if (p->in_cl || p->in_conn)
				return -1;
			p->state = SW_RQ_LINE_LF;
			return 0;
		}
		if (c == ' ' || c == '\t' || !sw_rh_value_byte(c))
			return -1;
		p->state = SW_RQ_VALUE;
		p->last_ws = 0;
		goto value_byte;
	case SW_RQ_VALUE:
		if (c == '\r') {
			/* Trailing whitespace would be trimmed: not the same bytes. */
			if (p->last_ws)
				return -1;
			f = &p->field[(p->fields - 1) & (SW_REQHEAD_FIELDS - 1)];
			f->value_len = i - f->value_off;
			if (p->in_conn) {
				/* Only "keep-alive", which sockwayd drops with the line. */
				if (f->value_len != 10 ||
				    p->conn_value[0] !=
					    SW_RH_W('k', 'e', 'e', 'p', '-', 'a', 'l', 'i') ||
				    p->conn_value[1] != SW_RH_W('v', 'e', 0, 0, 0, 0, 0, 0))
					return -1;
				p->conn_off = p->start;
				p->conn_line_len = i + 2 - p->start;
			}
			p->in_cl = 0;
			p->in_conn = 0;
			p->state = SW_RQ_LINE_LF;
			return 0;
		}
		if (!sw_rh_value_byte(c))
			return -1;
		p->last_ws = c == ' ' || c == '\t';
		goto value_byte;
	case SW_RQ_END_LF:
		/* HTTP/1.1 asks for a Host. */
		if (c != '\n' || !p->host_line_len)
			return -1;
		p->head_len = i + 1;
		return 1;
	default:
		return -1;
	}
	/* A name byte: its hash, and the first 24 bytes in lower case to tell the few names
	 * that matter. */
	j = i - p->start;
	if (c != sw_rq_host_name_byte(j))
		p->name_host = 0;
	if (c >= 'A' && c <= 'Z')
		c |= 0x20;
	p->hash = sw_hash_step(p->hash, c);
	if (j < 8)
		p->name[0] |= (__u64)c << (j * 8);
	else if (j < 16)
		p->name[1] |= (__u64)c << ((j - 8) * 8);
	else if (j < 24)
		p->name[2] |= (__u64)c << ((j - 16) * 8);
	return 0;

host_end:
	p->host_len = i - p->host_off;
	if (p->host_len >= SW_DECIDE_HOST_MAX)
		return -1;
	f = &p->field[(p->fields - 1) & (SW_REQHEAD_FIELDS - 1)];
	f->value_len = p->host_len;
	p->host_line_len = i + 2 - p->host_line_off;
	p->state = SW_RQ_LINE_LF;
	return 0;

value_byte:
	if (p->in_conn) {
		j = i - p->field[(p->fields - 1) & (SW_REQHEAD_FIELDS - 1)].value_off;
		sw_rq_conn_byte(p, c, j);
		return 0;
	}
	if (!p->in_cl)
		return 0;
	if (c < '0' || c > '9' || p->cl_digits == SW_REQHEAD_CL_DIGITS)
		return -1;
	/* "0" alone is canonical; "007" is rewritten as "7", so it is not routed here. */
	if (p->cl_digits == 1 && p->body_len == 0)
		return -1;
	p->cl_digits++;
	p->body_len = p->body_len * 10 + (c - '0');
	return 0;
}

/*
 * The client's IPv4 address (network byte order) in dotted decimal at out, as sockwayd
 * writes it (inet_ntop). Returns its length, 7 to 15.
 */
static __always_inline __u32 sw_ipv4_text(__u32 addr_be, __u8 *out)
{
	const __u8 *a = (const __u8 *)&addr_be;
	__u32 n = 0, k;

	for (k = 0; k < 4; k++) {
		__u8 v = a[k];

		if (v >= 100)
			out[n++] = '0' + v / 100;
		if (v >= 10)
			out[n++] = '0' + v / 10 % 10;
		out[n++] = '0' + v % 10;
		if (k < 3)
			out[n++] = '.';
	}
	return n;
}

#endif /* SOCKWAY_REQHEAD_H */
