/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The kernel fast path's switches: which cgroups are accelerated (their sockets go into
 * sock_hash through the sockops program) and whether the sk_msg redirect is on at all.
 *
 * State lives in the pins: accel_cgroups lists the cgroups, each attached one has a
 * pinned link "accel_<cgroup id>" in the pin directory, ctl.accel_off is the kill switch.
 * Callers hold the writers' lock (sw_maps_lock).
 */
#ifndef SOCKWAY_ACCEL_H
#define SOCKWAY_ACCEL_H

#include <stdbool.h>

#include "maps.h"

/* The cgroup v2 mount point from /proc/mounts. -ENOENT when there is none. */
int sw_cgroup2_mount(char *buf, size_t len, struct sw_err *e);
/* The id of a cgroup v2 directory (what bpf_get_current_cgroup_id() returns in it). */
int sw_cgroup_id(const char *path, __u64 *id, struct sw_err *e);

/* Adds a cgroup (a directory under the cgroup v2 mount); attaches it unless accel is off. */
int sw_accel_add(struct sw_maps *m, const char *path, struct sw_err *e);
/* Removes a cgroup: its link goes; sockets already in sock_hash stay until they close. */
int sw_accel_del(struct sw_maps *m, const char *path, struct sw_err *e);
/* The kill switch. off: sk_msg passes every send to TCP and the cgroup links go, so no
 * socket joins; connections stay up and lose nothing. on: redirect again, links back. */
int sw_accel_set(struct sw_maps *m, bool on, struct sw_err *e);
bool sw_accel_is_on(const struct sw_maps *m);
/* After a reload replaced the pinned programs: points the sk_msg attachment and every
 * cgroup link at the new ones, without dropping any socket from the fast path. */
int sw_accel_reattach(struct sw_maps *m, struct sw_err *e);

/* Sums the per-CPU accel_stats. */
int sw_accel_stats_read(struct sw_maps *m, struct sw_accel_stats *out);
/* The name of a reason the kernel left a request to sockwayd (enum sw_kroute_miss). */
const char *sw_kmiss_name(unsigned why);

#endif /* SOCKWAY_ACCEL_H */
