/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/* Command-line values as swbackend and swclient both read them. */
#ifndef SW_TOOLS_ARGS_H
#define SW_TOOLS_ARGS_H

/*
 * Parses a decimal number in [min, max]: digits only, no sign or leading space, so that
 * "-1" is an error rather than a huge unsigned value. 0 or -EINVAL.
 */
int parse_number(const char *text, long long min, long long max, long long *out);

#endif /* SW_TOOLS_ARGS_H */
