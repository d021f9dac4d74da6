/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Logging for every sockway binary: pr_warn always, pr_info with -v, pr_debug with -vv.
 * libbpf's own messages go through the same filter (log_init() sets libbpf_set_print).
 */
#ifndef SOCKWAY_LOG_H
#define SOCKWAY_LOG_H

enum sw_log_level {
	SW_LOG_WARN = 0,
	SW_LOG_INFO = 1,
	SW_LOG_DEBUG = 2,
};

/* Sets the level and the program name that prefixes every line ("sockway: ..."). */
void log_init(const char *prog, enum sw_log_level level);
void log_printf(enum sw_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define pr_warn(fmt, ...)  log_printf(SW_LOG_WARN, fmt, ##__VA_ARGS__)
#define pr_info(fmt, ...)  log_printf(SW_LOG_INFO, fmt, ##__VA_ARGS__)
#define pr_debug(fmt, ...) log_printf(SW_LOG_DEBUG, fmt, ##__VA_ARGS__)

#endif /* SOCKWAY_LOG_H */
