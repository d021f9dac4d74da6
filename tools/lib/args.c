// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/* Command-line values of args.h. */
#include <errno.h>
#include <stdlib.h>

#include "args.h"

int parse_number(const char *text, long long min, long long max, long long *out)
{
	char *end;
	long long value;

	if (!*text || *text == '-' || *text == '+' || *text == ' ')
		return -EINVAL;
	errno = 0;
	value = strtoll(text, &end, 10);
	if (errno || *end || value < min || value > max)
		return -EINVAL;
	*out = value;
	return 0;
}
