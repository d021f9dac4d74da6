/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Shared set-up of the C integration tests: a private pin directory under bpffs, the
 * object loaded into it, a policy committed, and everything unpinned at the end.
 */
#ifndef SOCKWAY_TEST_HELPERS_H
#define SOCKWAY_TEST_HELPERS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "maps.h"
#include "policy.h"

/* Loads sockway into /sys/fs/bpf/sockway-test-NAME-PID and opens it; exits on failure
 * (these tests need root and BPF, and say so rather than skip). */
static inline void test_load(const char *name, struct sw_maps *m)
{
	static char root[128];
	struct sw_load_info info;
	struct sw_err e = {};
	int err;

	if (geteuid() != 0) {
		fprintf(stderr, "%s: needs root (BPF maps, bpffs); run as root\n", name);
		exit(1);
	}
	snprintf(root, sizeof(root), "%s/sockway-test-%s-%d", SW_BPFFS, name, getpid());
	setenv(SW_PIN_ROOT_ENV, root, 1);
	err = sw_load(&info, &e);
	if (!err)
		err = sw_maps_open(m, &e);
	if (!err)
		err = sw_maps_lock(m, &e);
	if (err) {
		fprintf(stderr, "%s: cannot load sockway: %s\n", name, e.msg);
		sw_unload(&e);
		exit(1);
	}
}

static inline void test_unload(struct sw_maps *m)
{
	struct sw_err e = {};

	sw_maps_close(m);
	if (sw_unload(&e))
		fprintf(stderr, "unload: %s\n", e.msg);
}

/* Commits new over whatever the maps hold; exits on failure. */
static inline void test_commit(struct sw_maps *m, const struct sw_policy *new)
{
	struct sw_policy *old = policy_alloc();
	struct sw_err e = {};
	int err;

	if (!old)
		exit(1);
	err = policy_read(m, old, &e);
	if (!err)
		err = policy_validate(new, &e);
	if (!err)
		err = policy_commit(m, old, new, &e);
	policy_free(old);
	if (err) {
		fprintf(stderr, "commit: %s\n", e.msg);
		exit(1);
	}
}

/* Opens the pinned decide program. */
static inline int test_decide_fd(void)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/decide", sw_pin_root());
	return bpf_obj_get(path);
}

/* Runs the decide program on args, in place. */
static inline int test_decide_bpf(int fd, struct sw_decide_args *args)
{
	LIBBPF_OPTS(bpf_test_run_opts, opts, .ctx_in = args, .ctx_size_in = sizeof(*args));

	return bpf_prog_test_run_opts(fd, &opts);
}

#endif /* SOCKWAY_TEST_HELPERS_H */
