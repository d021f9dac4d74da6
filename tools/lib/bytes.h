/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The growable byte buffer of swbackend and swclient: bytes live in data[0..len), and the
 * tools slide what they have not parsed to the front themselves.
 *
 * Not sockwayd's struct buf (user/helper/buf.h): that one consumes from an offset and slides
 * only before it grows, which would shrink the room the tools read into and so change
 * their reads; it also starts at 4 KiB where a tool's echo and request heads need 256.
 */
#ifndef SW_TOOLS_BYTES_H
#define SW_TOOLS_BYTES_H

#include <errno.h>
#include <stddef.h>
#include <string.h>

struct bytes {
	char *data;
	size_t len, cap;
};

/* Room for extra more bytes after the held ones, doubling from 256: 0 or -ENOMEM. */
int bytes_reserve(struct bytes *b, size_t extra);

/* Inline, like the parser's predicates: swbackend appends its echo lines on every request. */
static inline int bytes_append(struct bytes *b, const void *data, size_t len)
{
	if (b->len + len > b->cap && bytes_reserve(b, len))
		return -ENOMEM;
	memcpy(b->data + b->len, data, len);
	b->len += len;
	return 0;
}

static inline int bytes_append_str(struct bytes *b, const char *s)
{
	return bytes_append(b, s, strlen(s));
}

#endif /* SW_TOOLS_BYTES_H */
