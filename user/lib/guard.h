/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The XDP guard's state (bpf/guard.bpf.c): its deny and allow prefixes, its rate limit and
 * kill switch (guard_cfg), the guarded ports, its counters, and the interfaces it is
 * attached to, each through a pinned link "guard_if<ifindex>" in the pin directory (the
 * link outlives the agent; unpinning it detaches the program).
 * Callers that change something hold the writers' lock (sw_maps_lock); sockwayd alone adds
 * its ports to guard_ports without it (one map update each, nothing to keep consistent).
 */
#ifndef SOCKWAY_GUARD_H
#define SOCKWAY_GUARD_H

#include <stdbool.h>
#include <net/if.h>

#include "maps.h"

enum sw_guard_list { SW_GUARD_DENY, SW_GUARD_ALLOW };

enum sw_guard_mode { SW_GUARD_AUTO, SW_GUARD_NATIVE, SW_GUARD_GENERIC };

/*
 * Parses "ADDR" or "ADDR/LEN" (IPv4 or IPv6) into a trie key. A prefix with bits set past
 * its length is refused (naming the prefix it may have meant), as `ip route` does.
 */
int sw_guard_prefix_parse(const char *s, struct sw_guard_prefix *p, struct sw_err *e);
/* "10.0.0.0/8", "fd00::/64": IPv4-mapped keys print as IPv4. */
void sw_guard_prefix_format(const struct sw_guard_prefix *p, char *buf, size_t len);

/* Adds a prefix; *existed tells that it was there already (its counters kept). */
int sw_guard_prefix_add(struct sw_maps *m, enum sw_guard_list l, const struct sw_guard_prefix *p,
			bool *existed, struct sw_err *e);
/* Removes a prefix: -ENOENT with a reason when it is not in the list. */
int sw_guard_prefix_del(struct sw_maps *m, enum sw_guard_list l, const struct sw_guard_prefix *p,
			struct sw_err *e);

struct sw_guard_entry {
	struct sw_guard_prefix prefix;
	struct sw_guard_hits hits;
};
/* Up to max entries of a list, sorted by address; returns how many (or -errno). */
int sw_guard_prefix_list(struct sw_maps *m, enum sw_guard_list l, struct sw_guard_entry *out,
			 int max);

/* The limit: rate new connections per second and source (0: off), burst at once (0: rate). */
int sw_guard_limit_set(struct sw_maps *m, __u32 rate, __u32 burst, struct sw_err *e);
/* The burst a limit has: burst, or rate when burst is 0; 0 without a rate. */
__u32 sw_guard_burst(__u32 rate, __u32 burst);
/* The kill switch: off, every packet passes uncounted (the program stays attached). */
int sw_guard_set(struct sw_maps *m, bool on, struct sw_err *e);
int sw_guard_cfg_read(struct sw_maps *m, struct sw_guard_cfg *cfg);
/* Sums the per-CPU counters. */
int sw_guard_stats_read(struct sw_maps *m, struct sw_guard_stats *out);
/* Adds a guarded port (sockwayd adds its listening ports). */
int sw_guard_port_add(struct sw_maps *m, __u16 port, struct sw_err *e);
/* Up to max guarded ports, ascending; returns how many. */
int sw_guard_ports(struct sw_maps *m, __u16 *out, int max);

/*
 * The guard as a policy file carries it ("guard": {"deny": [...], "allow": [...],
 * "limit": {"rate": R, "burst": B}}): the lists and the limit, not the interfaces or the
 * kill switch, which belong to the host. Large: keep it off the stack.
 */
struct sw_guard_policy {
	bool present; /* the file has "guard": apply replaces the guard's lists and limit */
	__u32 nr_deny, nr_allow;
	__u32 rate, burst; /* burst 0 with rate 0 */
	struct sw_guard_prefix deny[SW_GUARD_DENY_MAX];
	struct sw_guard_prefix allow[SW_GUARD_ALLOW_MAX];
};

/* What sw_guard_apply() changed, or would change. */
struct sw_guard_delta {
	__u32 deny_added, deny_removed, allow_added, allow_removed;
	bool limit_changed;
	__u32 old_rate, old_burst, rate, burst;
};

/* The live lists (sorted) and limit, present when any is set. */
int sw_guard_policy_read(struct sw_maps *m, struct sw_guard_policy *g, struct sw_err *e);
/* Makes the maps hold g (when present): prefixes not in it go, new ones come (those kept
 * keep their counters), the limit is set. Writes nothing with dry_run. */
int sw_guard_apply(struct sw_maps *m, const struct sw_guard_policy *g, bool dry_run,
		   struct sw_guard_delta *d, struct sw_err *e);
/* Sorts the lists of a parsed guard; -EINVAL naming a prefix listed twice. */
int sw_guard_policy_sort(struct sw_guard_policy *g, struct sw_err *e);
/* True when the policy holds no prefix and no limit. */
bool sw_guard_policy_empty(const struct sw_guard_policy *g);

/* Attaches xdp_guard to ifname. AUTO: native where the driver takes it, else generic.
 * *mode says which; *already that it was attached (nothing changed). */
int sw_guard_attach(const char *ifname, enum sw_guard_mode *mode, bool *already, struct sw_err *e);
/* After a reload replaced the pinned program: points every guard link at the new one. */
int sw_guard_reattach(struct sw_err *e);
/* Detaches it from ifname (the pin goes, and with it the program). */
int sw_guard_detach(const char *ifname, struct sw_err *e);

struct sw_guard_iface {
	__u32 ifindex;		 /* 0: the interface is gone (the pin is left to detach) */
	char name[IF_NAMESIZE];	 /* the pin's name when the interface is gone */
	enum sw_guard_mode mode; /* NATIVE or GENERIC, as the kernel reports it */
	__u32 prog_id;
};
/* The interfaces with a guard link pinned; returns how many (up to max). */
int sw_guard_ifaces(struct sw_guard_iface *out, int max);
/* "native", "generic" ("auto" for AUTO). */
const char *sw_guard_mode_name(enum sw_guard_mode mode);
/* The name of a verdict (enum sw_guard_verdict): "passed", "denied"... */
const char *sw_guard_verdict_name(unsigned v);

#endif /* SOCKWAY_GUARD_H */
