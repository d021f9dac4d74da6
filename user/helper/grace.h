/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Grace periods (grace.c): when may a conns entry, or a lent upstream's socket, that
 * sockwayd is done with be freed, given that an sk_msg run that found it before may still
 * be running? A run is one RCU read-side section, and on a preemptible kernel it can be held
 * off its CPU for as long as the scheduler likes (a sender with the lowest priority on a
 * busy CPU: migration is disabled in a run, so it waits for that CPU). So no delay is long
 * enough; an RCU grace period is: every run that began before it has ended after it.
 */
#ifndef SOCKWAYD_GRACE_H
#define SOCKWAYD_GRACE_H

#include <linux/types.h>
#include <stdbool.h>

/* Waits out a first grace period and starts the thread that waits out the next ones. On
 * failure (logged), every ticket has passed at once: sockwayd frees what it closed on its
 * delay alone, and frees no entry of a sockwayd gone (grace_ok is false). */
void grace_start(void);
/* Grace periods run: grace_start worked, and grace_stop has not been called. */
bool grace_ok(void);
/* The thread stopped, and one last grace period: true if that one passed (every run that
 * began before the call has ended), false if it failed or grace periods never ran. */
bool grace_stop(void);
/* A ticket, taken once a new run can find the thing it guards only in a state in which it
 * does nothing with it (out of its lend set, not lent, its splice stopped): it has passed
 * once a grace period that began after the call has ended. */
__u64 grace_ticket(void);
bool grace_passed(__u64 ticket);

#endif
