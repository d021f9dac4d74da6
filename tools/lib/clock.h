/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/* The clock of swbackend's delays and swclient's deadlines and latencies. */
#ifndef SW_TOOLS_CLOCK_H
#define SW_TOOLS_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Monotonic nanoseconds: wall-clock steps must not stretch a delay or a latency. */
static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

#endif /* SW_TOOLS_CLOCK_H */
