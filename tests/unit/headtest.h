/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * What the head tests share (test_resphead.c, test_reqhead.c, fuzz_reqhead.c through the
 * latter, and test_http.c): byte tables, exact heap copies, printable escapes, and the
 * random edits of the mutation tests (each includer uses what it needs of them). The includer
 * defines WORK_MAX, the largest head a test builds, and includes cmocka first.
 */
#ifndef SOCKWAY_TESTS_HEADTEST_H
#define SOCKWAY_TESTS_HEADTEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/types.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
/* A string literal with its length, so that tables can hold NUL bytes. */
/* clang-format off */
#define S(lit) {lit, sizeof(lit) - 1}
/* clang-format on */

struct bytes {
	const char *s;
	size_t len;
};

/* The scanner and the parsers get exactly len bytes on the heap: reading past is an ASan error. */
static __attribute__((unused)) char *dup_exact(const char *s, size_t len)
{
	char *p = malloc(len ? len : 1);

	assert_non_null(p);
	memcpy(p, s, len);
	return p;
}

/* Bytes as a C string literal would spell them, for failure messages. */
static __attribute__((unused)) const char *escape(const char *s, size_t len)
{
	static char out[4 * WORK_MAX + 1];
	size_t i, n = 0;

	for (i = 0; i < len && n + 5 < sizeof(out); i++) {
		unsigned char c = s[i];

		if (c == '\r')
			n += sprintf(out + n, "\\r");
		else if (c == '\n')
			n += sprintf(out + n, "\\n");
		else if (c == '\t')
			n += sprintf(out + n, "\\t");
		else if (c == '"' || c == '\\')
			n += sprintf(out + n, "\\%c", c);
		else if (c < ' ' || c >= 0x7f)
			n += sprintf(out + n, "\\x%02x", c);
		else
			out[n++] = c;
	}
	out[n] = 0;
	return out;
}

/* A fixed-seed xorshift: every run mutates the same way. A number below n. */
static __u64 rnd_state = 0x9e3779b97f4a7c15ULL;

static __attribute__((unused)) __u32 rnd(__u32 n)
{
	rnd_state ^= rnd_state >> 12;
	rnd_state ^= rnd_state << 25;
	rnd_state ^= rnd_state >> 27;
	return (__u32)((rnd_state * 0x2545f4914f6cdd1dULL) >> 32) % n;
}

/* The offset of a random line start, that of the final empty line included; 0 if none. */
static __attribute__((unused)) size_t rnd_line_start(const char *s, size_t len)
{
	size_t i, nr = 0, pick;

	for (i = 1; i < len; i++)
		nr += s[i - 1] == '\n';
	if (!nr)
		return 0;
	pick = rnd(nr);
	for (i = 1; i < len; i++)
		if (s[i - 1] == '\n' && !pick--)
			break;
	return i;
}

/* The end of the line that starts at at: just after its LF, or the end of the bytes. */
static __attribute__((unused)) size_t line_end(const char *s, size_t len, size_t at)
{
	const char *lf = memchr(s + at, '\n', len - at);

	return lf ? (size_t)(lf - s) + 1 : len;
}

/* Replaces del bytes at at with ins; a change that would outgrow WORK_MAX is skipped. */
static __attribute__((unused)) void splice(char *s, size_t *len, size_t at, size_t del,
					   const char *ins, size_t ins_len)
{
	if (at > *len)
		at = *len;
	if (del > *len - at)
		del = *len - at;
	if (*len - del + ins_len > WORK_MAX)
		return;
	memmove(s + at + ins_len, s + at + del, *len - at - del);
	if (ins_len)
		memcpy(s + at, ins, ins_len);
	*len = *len - del + ins_len;
}

#endif /* SOCKWAY_TESTS_HEADTEST_H */
