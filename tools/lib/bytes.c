// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/* The growable byte buffer of bytes.h. */
#include <errno.h>
#include <stdlib.h>

#include "bytes.h"

int bytes_reserve(struct bytes *b, size_t extra)
{
	size_t cap = b->cap ? b->cap : 256;
	char *data;

	if (b->len + extra <= b->cap)
		return 0;
	while (cap < b->len + extra)
		cap *= 2;
	data = realloc(b->data, cap);
	if (!data)
		return -ENOMEM;
	b->data = data;
	b->cap = cap;
	return 0;
}
