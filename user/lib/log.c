// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#include <stdarg.h>
#include <stdio.h>

#include <bpf/libbpf.h>

#include "log.h"

/* Set once by log_init() before any thread starts; read-only afterwards. */
static struct {
	const char *prog;
	enum sw_log_level level;
} log_cfg = {"sockway", SW_LOG_WARN};

/* libbpf warns about things sockway handles (a map to reuse, a feature probe): show its
 * warnings with -v and its info and debug lines with -vv. */
static int log_libbpf(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	enum sw_log_level mine = level == LIBBPF_WARN ? SW_LOG_INFO : SW_LOG_DEBUG;

	if (mine > log_cfg.level)
		return 0;
	fprintf(stderr, "%s: libbpf: ", log_cfg.prog);
	return vfprintf(stderr, fmt, ap);
}

void log_init(const char *prog, enum sw_log_level level)
{
	log_cfg.prog = prog;
	log_cfg.level = level;
	libbpf_set_print(log_libbpf);
}

void log_printf(enum sw_log_level level, const char *fmt, ...)
{
	va_list ap;

	if (level > log_cfg.level)
		return;
	fprintf(stderr, "%s: ", log_cfg.prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}
