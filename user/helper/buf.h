/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * A growable byte buffer: bytes are appended at the end and consumed from the front; the
 * unread part slides to the front before the buffer grows.
 */
#ifndef SOCKWAY_BUF_H
#define SOCKWAY_BUF_H

#include <stddef.h>

struct buf {
	char *data;
	size_t len; /* bytes held, from data[off] */
	size_t off;
	size_t cap;
};

/* Room for extra more bytes after the held ones: 0 or -ENOMEM. */
int buf_reserve(struct buf *b, size_t extra);
int buf_append(struct buf *b, const void *p, size_t n);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_consume(struct buf *b, size_t n);
void buf_free(struct buf *b);

/* (An empty buffer may have no data yet: no arithmetic on a null pointer, which C leaves
 * undefined even for an offset of 0.) */
static inline char *buf_head(const struct buf *b)
{
	return b->data ? b->data + b->off : NULL;
}

/* Where the next appended byte goes (after buf_reserve). */
static inline char *buf_tail(const struct buf *b)
{
	return b->data ? b->data + b->off + b->len : NULL;
}

/* A string literal, without strlen ("" s: anything but a literal fails to compile). */
#define buf_lit(b, s) buf_append((b), "" s, sizeof(s) - 1)

#endif /* SOCKWAY_BUF_H */
