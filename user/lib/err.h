/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * One-line errors. A function that refuses something fills a struct sw_err with a sentence
 * that says what was wrong and how to fix it, and returns -errno; main() prints it.
 */
#ifndef SOCKWAY_ERR_H
#define SOCKWAY_ERR_H

#include <stddef.h>

struct sw_err {
	char msg[512];
};

/* Formats e->msg (if e is not NULL) and returns code, a negative errno. */
int sw_errorf(struct sw_err *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif /* SOCKWAY_ERR_H */
