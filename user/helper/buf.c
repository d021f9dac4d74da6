// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/* The growable byte buffer of buf.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

int buf_reserve(struct buf *b, size_t extra)
{
	size_t need, cap;
	char *p;

	/* Slide the unread bytes to the front before growing. */
	if (b->off && b->off + b->len + extra > b->cap) {
		memmove(b->data, b->data + b->off, b->len);
		b->off = 0;
	}
	need = b->off + b->len + extra;
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 4096;
	while (cap < need)
		cap *= 2;
	p = realloc(b->data, cap);
	if (!p)
		return -ENOMEM;
	b->data = p;
	b->cap = cap;
	return 0;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
	if (!n)
		return 0;
	if (buf_reserve(b, n))
		return -ENOMEM;
	memcpy(b->data + b->off + b->len, p, n);
	b->len += n;
	return 0;
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || buf_reserve(b, n + 1))
		return -ENOMEM;
	va_start(ap, fmt);
	vsnprintf(b->data + b->off + b->len, n + 1, fmt, ap);
	va_end(ap);
	b->len += n;
	return 0;
}

void buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
		b->off = 0;
		return;
	}
	b->off += n;
	b->len -= n;
}

void buf_free(struct buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}
