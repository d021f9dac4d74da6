/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Normal forms of the two request parts that routing reads, the path and the Host, fed one
 * byte at a time so that a BPF program can drive them from bpf_loop() and userspace from a
 * plain loop (decide.h does both with the same code).
 *
 * A router that matches the path as sent, while the backend resolves it, can be walked past:
 * "/public/../admin" matches a "/public" route and reaches "/admin". So the route is chosen
 * on the normal form below, and that form is what the backend receives:
 *   - repeated slashes merge ("//a///b" is "/a/b"), then dot segments go as RFC 3986
 *     5.2.4 says ("/a/./b/../c" is "/a/c", "/.." is "/");
 *   - percent-escapes of unreserved characters (RFC 3986 2.3: ALPHA DIGIT - _ ~) are decoded
 *     ("%61dmin" is "admin"), the hex digits of the others upper-cased ("%c3" is "%C3");
 *   - refused (400): an escaped '/', '\', '.' or NUL (%2F, %5C, %2E, %00: a backend that
 *     decodes them sees another path, as with Envoy's REJECT_REQUEST), escaped overlong
 *     UTF-8 (%C0, %C1, %E0 then %80-%9F, %F0 then %80-%8F: old servers decode them to '.'
 *     or '/'), a raw '\' (read as '/' by some servers), a bad escape, and a dot segment
 *     with parameters (".;x", "..;x": Java servers read it as "." or "..").
 * Routes are matched on the normal form without segment parameters ("/admin;x/y" routes
 * as "/admin/y", as Java servers resolve it); the parameters are still sent on.
 * The Host compares without case, port, or one trailing dot ("ADMIN.example.com.:8080" is
 * "admin.example.com"); an empty label ("a..b", ".a") or a '%' in it is refused.
 */
#ifndef SOCKWAY_NORM_H
#define SOCKWAY_NORM_H

#include "abi.h"
#include "hash.h"

#ifndef EINVAL
#define EINVAL 22
#endif
#ifndef E2BIG
#define E2BIG 7
#endif

/* Segments whose start a ".." can go back to; a ".." below more is refused (-E2BIG). A
 * power of two: BPF masks the index. */
#define SW_PATH_SEGS 64
_Static_assert((SW_PATH_SEGS & (SW_PATH_SEGS - 1)) == 0, "SW_PATH_SEGS");

/*
 * The index of byte i of a normal-form buffer. BPF keeps the buffer at a fixed size and
 * masks, which is what its verifier needs to see; userspace sizes it to the input.
 */
#ifdef __bpf__
#define SW_NORM_IDX(i) ((i) & (SW_DECIDE_PATH_MAX - 1))
#else
#define SW_NORM_IDX(i) (i)
#endif

enum sw_path_esc {
	SW_ESC_NONE, /* not in an escape */
	SW_ESC_HI,   /* after '%' */
	SW_ESC_LO,   /* after '%' and one hex digit */
};

/* A path being normalised into a buffer `out` that the caller keeps beside it. */
struct sw_path_norm {
	__u32 len;	 /* bytes of out so far; never more than the path's (its '/' included) */
	__u32 seg_start; /* offset in out of the current segment (just after its '/') */
	__u32 depth;	 /* segments before the current one */
	__u8 esc;	 /* enum sw_path_esc */
	__u8 hi;	 /* the first hex digit's value, in SW_ESC_LO */
	__u8 lead;	 /* the byte of the escape just before, if the last input was one */
	__u8 pad;
	__u32 starts[SW_PATH_SEGS]; /* seg_start of each segment before the current one */
};

static __always_inline int sw_norm_hex(__u8 c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* RFC 3986 2.3 unreserved: a percent-escape of these is the character itself. ('.' is
 * unreserved too, but its escape is refused before this is asked.) */
static __always_inline int sw_norm_unreserved(__u8 c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_' || c == '~';
}

/* Starts the normal form of a path whose first byte, '/', is not fed: out becomes "/". */
static __always_inline void sw_path_init(struct sw_path_norm *p, __u8 *out)
{
	out[0] = '/';
	p->len = 1;
	p->seg_start = 1;
	p->depth = 0;
	p->esc = SW_ESC_NONE;
	p->hi = 0;
	p->lead = 0;
}

static __always_inline __u8 sw_norm_at(const __u8 *out, __u32 i)
{
	return out[SW_NORM_IDX(i)];
}

/*
 * The current segment ends (at a '/' or at the end of the path): drops it if it is ".",
 * drops it and the one before if it is "..", else keeps it. Returns 0 or -errno.
 */
static __always_inline int sw_path_segment_end(struct sw_path_norm *p, const __u8 *out)
{
	__u32 s = p->seg_start, n = p->len - p->seg_start;
	__u8 c0 = n > 0 ? sw_norm_at(out, s) : 0, c1 = n > 1 ? sw_norm_at(out, s + 1) : 0;
	__u8 c2 = n > 2 ? sw_norm_at(out, s + 2) : 0;

	if (n == 1 && c0 == '.') {
		p->len = s;
		return 0;
	}
	if (n == 2 && c0 == '.' && c1 == '.') {
		if (!p->depth) {
			/* Above the root is the root. */
			p->len = s;
			return 0;
		}
		if (p->depth > SW_PATH_SEGS)
			return -E2BIG;
		p->depth--;
		p->len = p->starts[p->depth & (SW_PATH_SEGS - 1)];
		p->seg_start = p->len;
		return 0;
	}
	if ((c0 == '.' && c1 == ';') || (c0 == '.' && c1 == '.' && c2 == ';'))
		return -EINVAL;
	return 1; /* a segment that stays */
}

/* Feeds the byte after the first '/': returns 0 or -errno (the request gets a 400). */
static __always_inline int sw_path_feed(struct sw_path_norm *p, __u8 *out, __u8 c)
{
	int v, ret;

	if (p->esc == SW_ESC_HI) {
		v = sw_norm_hex(c);
		if (v < 0)
			return -EINVAL;
		p->hi = (__u8)v;
		p->esc = SW_ESC_LO;
		return 0;
	}
	if (p->esc == SW_ESC_LO) {
		v = sw_norm_hex(c);
		if (v < 0)
			return -EINVAL;
		p->esc = SW_ESC_NONE;
		c = (__u8)(p->hi << 4 | v);
		/* Overlong UTF-8, which old servers decode: 0xC0 and 0xC1 start only such
		 * forms ("%C0%AE" is '.'), and so do 0xE0 before 0x80-0x9F ("%E0%80%AE")
		 * and 0xF0 before 0x80-0x8F. */
		if (c == '/' || c == '\\' || c == '.' || c == 0 || c == 0xc0 || c == 0xc1 ||
		    (p->lead == 0xe0 && c >= 0x80 && c <= 0x9f) ||
		    (p->lead == 0xf0 && c >= 0x80 && c <= 0x8f))
			return -EINVAL;
		p->lead = c;
		if (sw_norm_unreserved(c)) {
			out[SW_NORM_IDX(p->len)] = c;
			p->len++;
			return 0;
		}
		out[SW_NORM_IDX(p->len)] = '%';
		out[SW_NORM_IDX(p->len + 1)] = "0123456789ABCDEF"[p->hi & 15];
		out[SW_NORM_IDX(p->len + 2)] = "0123456789ABCDEF"[v & 15];
		p->len += 3;
		return 0;
	}
	if (c == '%') {
		p->esc = SW_ESC_HI;
		return 0;
	}
	p->lead = 0;
	if (c == '\\')
		return -EINVAL;
	if (c != '/') {
		out[SW_NORM_IDX(p->len)] = c;
		p->len++;
		return 0;
	}
	/* An empty segment: the slash merges with the one before. */
	if (p->len == p->seg_start)
		return 0;
	ret = sw_path_segment_end(p, out);
	if (ret <= 0)
		return ret;
	if (p->depth < SW_PATH_SEGS)
		p->starts[p->depth & (SW_PATH_SEGS - 1)] = p->seg_start;
	p->depth++;
	out[SW_NORM_IDX(p->len)] = '/';
	p->len++;
	p->seg_start = p->len;
	return 0;
}

/* The path ended: its last segment is settled. Returns 0 or -errno. */
static __always_inline int sw_path_end(struct sw_path_norm *p, const __u8 *out)
{
	int ret;

	if (p->esc != SW_ESC_NONE)
		return -EINVAL;
	ret = sw_path_segment_end(p, out);
	return ret < 0 ? ret : 0;
}

enum sw_host_part {
	SW_HOST_NAME,	/* a reg-name or IPv4 address, up to ':' */
	SW_HOST_V6,	/* inside "[...]" */
	SW_HOST_V6_END, /* after ']': ':' or the end */
	SW_HOST_PORT,	/* the port's digits */
};

/* A Host (or absolute-form authority) being read for its routing hash. */
struct sw_host_norm {
	__u64 state;	/* FNV state of the lower-case name so far (sw_hash_step_lower) */
	__u32 name_len; /* bytes of the name hashed: no port, no trailing dot */
	__u32 part;	/* enum sw_host_part */
	__u8 dot;	/* the last byte was a '.', not yet hashed (it may be the trailing one) */
	__u8 any;	/* a byte of the name was read */
	__u16 pad;
	__u8 name[SW_HOST_MAX]; /* the name's first bytes, in lower case: what was hashed */
};

static __always_inline void sw_host_init(struct sw_host_norm *h)
{
	h->state = SW_FNV_OFFSET;
	h->name_len = 0;
	h->part = SW_HOST_NAME;
	h->dot = 0;
	h->any = 0;
}

/* Feeds byte i of the Host. Returns 0 or -EINVAL (400). The bytes were checked for the
 * Host grammar by the HTTP parser; this keeps to what routing needs. */
static __always_inline int sw_host_feed(struct sw_host_norm *h, __u32 i, __u8 c)
{
	switch (h->part) {
	case SW_HOST_NAME:
		if (i == 0 && c == '[') {
			h->part = SW_HOST_V6;
			break;
		}
		if (c == ':') {
			if (!h->any)
				return -EINVAL;
			h->part = SW_HOST_PORT;
			return 0;
		}
		if (c == '%')
			return -EINVAL;
		if (c == '.') {
			/* An empty label: a leading dot or two in a row. */
			if (!h->any || h->dot)
				return -EINVAL;
			h->dot = 1;
			return 0;
		}
		if (h->dot) {
			h->state = sw_hash_step(h->state, '.');
			h->name[h->name_len & (SW_HOST_MAX - 1)] = '.';
			h->name_len++;
			h->dot = 0;
		}
		break;
	case SW_HOST_V6:
		if (c == ']')
			h->part = SW_HOST_V6_END;
		break;
	case SW_HOST_V6_END:
		if (c != ':')
			return -EINVAL;
		h->part = SW_HOST_PORT;
		return 0;
	default:
		if (c < '0' || c > '9')
			return -EINVAL;
		return 0;
	}
	if (c >= 'A' && c <= 'Z')
		c |= 0x20;
	h->state = sw_hash_step(h->state, c);
	/* Past SW_HOST_MAX - 1 the name matches no route (sw_host_end): the bytes kept
	 * wrap, and are never compared. */
	h->name[h->name_len & (SW_HOST_MAX - 1)] = c;
	h->name_len++;
	h->any = 1;
	return 0;
}

/*
 * The Host ended: its routing hash, 0 for none (an empty Host, or a name longer than any
 * route's, which only routes without a Host can match). Returns 0 or -EINVAL.
 */
static __always_inline int sw_host_end(struct sw_host_norm *h, __u64 *hash)
{
	if (h->part == SW_HOST_V6)
		return -EINVAL;
	*hash = h->name_len && h->name_len < SW_HOST_MAX ? sw_hash_final(h->state) : 0;
	return 0;
}

#endif /* SOCKWAY_NORM_H */
