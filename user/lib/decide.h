/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The decision code of include/sockway/decide.h built for userspace over the pinned maps
 * (one syscall per lookup): what the agent uses to explain a decision, and what the parity
 * test compares with the BPF build of the same code (the decide program).
 */
#ifndef SOCKWAY_USER_DECIDE_H
#define SOCKWAY_USER_DECIDE_H

#include "maps.h"

/* Fills the out fields of args exactly as the BPF decide program does. Returns 0. */
int sw_decide(struct sw_maps *m, struct sw_decide_args *args);

#endif /* SOCKWAY_USER_DECIDE_H */
