/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The response heads that the kernel may pass from a backend to the client unchanged,
 * shared by sk_msg (which scans a head a byte at a time in a bpf_loop) and by the tests
 * (which check it against sockwayd's own parser and head builder).
 *
 * sockwayd rewrites every response head it forwards (user/helper/headers.c,
 * head_response_build): "HTTP/1.1", the status and reason, each field as "name: value"
 * with the value's outer whitespace trimmed, hop-by-hop fields dropped, Connection added
 * when the client connection closes. For a head that already reads exactly like that
 * output, the rewrite changes nothing, and the kernel can send the head on as it came.
 * This scanner accepts only such heads, and only with a Content-Length body:
 *   "HTTP/1.1 " status " " reason CRLF
 *   *( name ": " value CRLF )     name a token; value empty, or starting and ending with
 *                                 a visible byte; no Connection, Keep-Alive,
 *                                 Proxy-Connection, TE, Transfer-Encoding or Upgrade
 *   CRLF
 * with the status 200-599 but not 204 or 304, exactly one Content-Length of 1-15 digits
 * without a leading zero (sockwayd writes the length in canonical form),
 * at most SW_RESPHEAD_FIELDS fields, the whole head within SW_RESPHEAD_MAX bytes. Anything
 * else is refused (sockwayd then reads the head itself, as always). Refusing is always
 * safe; accepting a head that sockwayd would have rewritten or refused is the bug the
 * tests look for (tests/unit/test_resphead.c).
 */
#ifndef SOCKWAY_RESPHEAD_H
#define SOCKWAY_RESPHEAD_H

#include "abi.h"

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

/* A token byte (RFC 9110 5.6.2): ALPHA, DIGIT and !#$%&'*+-.^_`|~. As a bit mask so the
 * BPF side needs no table. */
#define SW_RH_BIT(c) (1ULL << ((c)&63))
#define SW_RH_TCHAR_LO                                                                             \
	(SW_RH_BIT('!') | SW_RH_BIT('#') | SW_RH_BIT('$') | SW_RH_BIT('%') | SW_RH_BIT('&') |      \
	 SW_RH_BIT('\'') | SW_RH_BIT('*') | SW_RH_BIT('+') | SW_RH_BIT('-') | SW_RH_BIT('.') |     \
	 (0x3ffULL << ('0' & 63)))
#define SW_RH_TCHAR_HI                                                                             \
	(SW_RH_BIT('^') | SW_RH_BIT('_') | SW_RH_BIT('`') | SW_RH_BIT('|') | SW_RH_BIT('~') |      \
	 (0x3ffffffULL << ('A' & 63)) | (0x3ffffffULL << ('a' & 63)))

static __always_inline int sw_rh_tchar(__u8 c)
{
	if (c < 64)
		return (SW_RH_TCHAR_LO >> c) & 1;
	if (c < 128)
		return (SW_RH_TCHAR_HI >> (c - 64)) & 1;
	return 0;
}

/* A byte of a field value or reason phrase: HTAB, SP, VCHAR, obs-text. */
static __always_inline int sw_rh_value_byte(__u8 c)
{
	return c == '\t' || (c >= ' ' && c != 0x7f);
}

/* Eight bytes as the name words hold them. */
#define SW_RH_W(a, b, c, d, e, f, g, h)                                                            \
	((__u64)(a) | (__u64)(b) << 8 | (__u64)(c) << 16 | (__u64)(d) << 24 | (__u64)(e) << 32 |   \
	 (__u64)(f) << 40 | (__u64)(g) << 48 | (__u64)(h) << 56)

enum sw_rh_name { SW_RH_OTHER, SW_RH_HOP, SW_RH_CONTENT_LENGTH };

/* What the field name just ended (len bytes, in p->name) means here. */
static __always_inline enum sw_rh_name sw_rh_name_kind(const struct sw_resphead *p, __u32 len)
{
	__u64 a = p->name[0], b = p->name[1], c = p->name[2];

	switch (len) {
	case 2:
		if (a == SW_RH_W('t', 'e', 0, 0, 0, 0, 0, 0))
			return SW_RH_HOP;
		break;
	case 7:
		if (a == SW_RH_W('u', 'p', 'g', 'r', 'a', 'd', 'e', 0))
			return SW_RH_HOP;
		break;
	case 10:
		if (a == SW_RH_W('c', 'o', 'n', 'n', 'e', 'c', 't', 'i') &&
		    b == SW_RH_W('o', 'n', 0, 0, 0, 0, 0, 0))
			return SW_RH_HOP;
		if (a == SW_RH_W('k', 'e', 'e', 'p', '-', 'a', 'l', 'i') &&
		    b == SW_RH_W('v', 'e', 0, 0, 0, 0, 0, 0))
			return SW_RH_HOP;
		break;
	case 14:
		if (a == SW_RH_W('c', 'o', 'n', 't', 'e', 'n', 't', '-') &&
		    b == SW_RH_W('l', 'e', 'n', 'g', 't', 'h', 0, 0))
			return SW_RH_CONTENT_LENGTH;
		break;
	case 16:
		if (a == SW_RH_W('p', 'r', 'o', 'x', 'y', '-', 'c', 'o') &&
		    b == SW_RH_W('n', 'n', 'e', 'c', 't', 'i', 'o', 'n'))
			return SW_RH_HOP;
		break;
	case 17:
		if (a == SW_RH_W('t', 'r', 'a', 'n', 's', 'f', 'e', 'r') &&
		    b == SW_RH_W('-', 'e', 'n', 'c', 'o', 'd', 'i', 'n') &&
		    c == SW_RH_W('g', 0, 0, 0, 0, 0, 0, 0))
			return SW_RH_HOP;
		break;
	}
	return SW_RH_OTHER;
}

/*
 * The fixed start, b[0..SW_RESPHEAD_START): "HTTP/1.1 " and a status with a body, then
 * the space before the reason. Returns 0 and readies p for sw_resphead_step at offset
 * SW_RESPHEAD_START, or -1.
 */
static __always_inline int sw_resphead_begin(struct sw_resphead *p, const __u8 *b)
{
	__u32 status;

	if (b[0] != 'H' || b[1] != 'T' || b[2] != 'T' || b[3] != 'P' || b[4] != '/' ||
	    b[5] != '1' || b[6] != '.' || b[7] != '1' || b[8] != ' ' || b[12] != ' ')
		return -1;
	if (b[9] < '2' || b[9] > '5' || b[10] < '0' || b[10] > '9' || b[11] < '0' || b[11] > '9')
		return -1;
	status = (b[9] - '0') * 100 + (b[10] - '0') * 10 + (b[11] - '0');
	if (status == 204 || status == 304)
		return -1;
	p->state = SW_RH_REASON;
	p->name_start = 0;
	p->name[0] = p->name[1] = p->name[2] = 0;
	p->fields = 0;
	p->cl_digits = 0;
	p->in_cl = 0;
	p->last_ws = 0;
	p->body_len = 0;
	p->status = status;
	p->head_len = 0;
	return 0;
}

/*
 * Byte c at offset i of the head. Returns 0 for more, 1 when the head ended with this
 * byte (p->head_len, p->body_len and p->status are set), -1 when the head is not one the
 * kernel may pass on.
 */
static __always_inline int sw_resphead_step(struct sw_resphead *p, __u8 c, __u32 i)
{
	__u32 j;

	switch (p->state) {
	case SW_RH_REASON:
		if (c == '\r') {
			p->state = SW_RH_LINE_LF;
			return 0;
		}
		return sw_rh_value_byte(c) ? 0 : -1;
	case SW_RH_LINE_LF:
		if (c != '\n')
			return -1;
		p->state = SW_RH_LINE_START;
		return 0;
	case SW_RH_LINE_START:
		if (c == '\r') {
			p->state = SW_RH_END_LF;
			return 0;
		}
		if (!sw_rh_tchar(c) || ++p->fields > SW_RESPHEAD_FIELDS)
			return -1;
		p->name_start = i;
		p->name[0] = p->name[1] = p->name[2] = 0;
		p->state = SW_RH_NAME;
		break; /* the byte is the name's first: stored below */
	case SW_RH_NAME:
		if (c == ':') {
			switch (sw_rh_name_kind(p, i - p->name_start)) {
			case SW_RH_HOP:
				return -1;
			case SW_RH_CONTENT_LENGTH:
				/* A second one is refused by sockwayd's parser too. */
				if (p->cl_digits)
					return -1;
				p->in_cl = 1;
				break;
			case SW_RH_OTHER:
				p->in_cl = 0;
				break;
			}
			p->state = SW_RH_COLON_SP;
			return 0;
		}
		if (!sw_rh_tchar(c))
			return -1;
		break;
	case SW_RH_COLON_SP:
		if (c != ' ')
			return -1;
		p->state = SW_RH_VALUE_FIRST;
		return 0;
	case SW_RH_VALUE_FIRST:
		if (c == '\r') {
			/* "name: " CRLF is rebuilt as itself; Content-Length needs digits. */
			if (p->in_cl)
				return -1;
			p->state = SW_RH_LINE_LF;
			return 0;
		}
		if (c == ' ' || c == '\t' || !sw_rh_value_byte(c))
			return -1;
		p->state = SW_RH_VALUE;
		p->last_ws = 0;
		goto cl_digit;
	case SW_RH_VALUE:
		if (c == '\r') {
			/* Trailing whitespace would be trimmed: not the same bytes. */
			if (p->last_ws)
				return -1;
			p->in_cl = 0;
			p->state = SW_RH_LINE_LF;
			return 0;
		}
		if (!sw_rh_value_byte(c))
			return -1;
		p->last_ws = c == ' ' || c == '\t';
		goto cl_digit;
	case SW_RH_END_LF:
		if (c != '\n')
			return -1;
		if (!p->cl_digits)
			return -1;
		p->head_len = i + 1;
		return 1;
	default:
		return -1;
	}
	/* A name byte: keep the first 24, lower case, to tell the few names that matter. */
	j = i - p->name_start;
	if (c >= 'A' && c <= 'Z')
		c |= 0x20;
	if (j < 8)
		p->name[0] |= (__u64)c << (j * 8);
	else if (j < 16)
		p->name[1] |= (__u64)c << ((j - 8) * 8);
	else if (j < 24)
		p->name[2] |= (__u64)c << ((j - 16) * 8);
	return 0;

cl_digit:
	if (!p->in_cl)
		return 0;
	if (c < '0' || c > '9' || p->cl_digits == SW_RESPHEAD_CL_DIGITS)
		return -1;
	/* "0" alone is canonical; "007" is rewritten as "7", so it is not passed on. */
	if (p->cl_digits == 1 && p->body_len == 0)
		return -1;
	p->cl_digits++;
	p->body_len = p->body_len * 10 + (c - '0');
	return 0;
}

#endif /* SOCKWAY_RESPHEAD_H */
