// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * libFuzzer harness for the request-head scanner that sk_msg runs to route a request in
 * the kernel (include/sockway/reqhead.h). The input is a client's send. The checks are
 * the unit test's (tests/unit/test_reqhead.c, compiled in here without its main), both
 * ways:
 *  - a head the scanner takes, sockwayd's parser takes with the same method, target,
 *    Host, fields and framing, and head_request_build writes exactly what the kernel
 *    sends (the head without its Connection: keep-alive line, X-Forwarded-For and
 *    X-Forwarded-Proto before the empty line);
 *  - a head it refuses is not one that the kernel's rules take, judged by sockwayd alone;
 *  - the verdict does not depend on the bytes after the head.
 * A broken check fails through cmocka's assertions, which end the process outside a
 * cmocka run: libFuzzer reports that as a crash with the input.
 */
#define main test_reqhead_main
#include "../unit/test_reqhead.c"
#undef main

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct scan sc;
	static struct sockwayd_view v;
	const char *s = (const char *)data;

	if (size > WORK_MAX)
		return 0;
	scan_head(s, size, &sc);
	if (sc.verdict == SCAN_ACCEPTED) {
		check_accepted(s, size, &sc);
	} else {
		sockwayd_view(s, size, &v);
		if (v.ret > 0 && (size_t)v.ret <= size) {
			sockwayd_view(s, v.ret, &v);
			if (kernel_should_take(s, &v)) {
				print_error("refused (verdict %d) a head the kernel could route: "
					    "\"%s\"\n",
					    sc.verdict, escape(s, size));
				fail();
			}
		}
		buf_free(&v.out);
	}
	check_tail_ignored(s, size, &sc);
	return 0;
}
