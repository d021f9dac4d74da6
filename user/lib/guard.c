// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/* The XDP guard's state in the pins (guard.h). */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/if_link.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "sockway.skel.h"
#include "guard.h"

#define LINK_PREFIX "guard_if"

static bool is_v4(const struct sw_guard_prefix *p)
{
	return p->family == SW_GUARD_V4;
}

int sw_guard_prefix_parse(const char *s, struct sw_guard_prefix *p, struct sw_err *e)
{
	char addr[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(s, '/'), *c;
	struct sw_guard_prefix want;
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);
	unsigned long len;
	__u32 i, bits;
	bool v4;

	memset(p, 0, sizeof(*p));
	if (!alen || alen >= sizeof(addr))
		return sw_errorf(e, -EINVAL, "\"%s\" is not an address or prefix (ADDR[/LEN])", s);
	memcpy(addr, s, alen);
	addr[alen] = '\0';
	v4 = inet_pton(AF_INET, addr, p->addr) == 1;
	if (!v4 && inet_pton(AF_INET6, addr, p->addr) != 1)
		return sw_errorf(e, -EINVAL, "\"%s\" is not an IPv4 or IPv6 address", addr);
	p->family = v4 ? SW_GUARD_V4 : SW_GUARD_V6;
	bits = v4 ? 32 : 128;
	len = bits;
	if (slash) {
		/* Digits only: no sign, no space, at most three. */
		for (c = slash + 1; *c >= '0' && *c <= '9'; c++)
			;
		len = strtoul(slash + 1, NULL, 10);
		if (c == slash + 1 || *c || c - slash > 4 || len > bits)
			return sw_errorf(e, -EINVAL, "\"%s\": the prefix length is 0-%u", s, bits);
	}
	p->prefixlen = 8 + (__u32)len;
	/* Bits past the length: refused, as ip route does, with the prefix meant. */
	want = *p;
	for (i = (__u32)len; i < 128; i++)
		want.addr[i / 8] &= (__u8) ~(0x80 >> (i % 8));
	if (memcmp(want.addr, p->addr, sizeof(p->addr))) {
		char fixed[64];

		sw_guard_prefix_format(&want, fixed, sizeof(fixed));
		return sw_errorf(e, -EINVAL,
				 "\"%s\" has bits set past its length; did you mean %s?", s, fixed);
	}
	return 0;
}

void sw_guard_prefix_format(const struct sw_guard_prefix *p, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	inet_ntop(is_v4(p) ? AF_INET : AF_INET6, p->addr, a, sizeof(a));
	snprintf(buf, len, "%s/%u", a, p->prefixlen - 8);
}

static int list_fd(struct sw_maps *m, enum sw_guard_list l)
{
	return bpf_map__fd(l == SW_GUARD_DENY ? m->skel->maps.guard_deny
					      : m->skel->maps.guard_allow);
}

static const char *list_name(enum sw_guard_list l)
{
	return l == SW_GUARD_DENY ? "deny" : "allow";
}

static int cfg_update(struct sw_maps *m, const struct sw_guard_cfg *cfg, struct sw_err *e)
{
	__u32 zero = 0;

	if (bpf_map_update_elem(bpf_map__fd(m->skel->maps.guard_cfg), &zero, cfg, BPF_ANY))
		return sw_errorf(e, -errno, "cannot write guard_cfg: %s", strerror(errno));
	return 0;
}

int sw_guard_cfg_read(struct sw_maps *m, struct sw_guard_cfg *cfg)
{
	__u32 zero = 0;

	if (bpf_map_lookup_elem(bpf_map__fd(m->skel->maps.guard_cfg), &zero, cfg))
		return -errno;
	return 0;
}

/*
 * guard_cfg.nr_deny and nr_allow: the program skips a list's lookup at 0, so a count is
 * never below the entries there: raised before an insert, lowered after a delete, and set
 * exact by a walk after a batch (list_apply) or a failed insert.
 */
static __u32 *count_of(struct sw_guard_cfg *cfg, enum sw_guard_list l)
{
	return l == SW_GUARD_DENY ? &cfg->nr_deny : &cfg->nr_allow;
}

/* Adds delta to the count (clamped at 0), or sets it to the entries there with exact. */
static int count_update(struct sw_maps *m, enum sw_guard_list l, int delta, bool exact,
			struct sw_err *e)
{
	struct sw_guard_prefix key, prev;
	struct sw_guard_cfg cfg;
	int fd = list_fd(m, l);
	bool first = true;
	__u32 n = 0, *c;

	if (sw_guard_cfg_read(m, &cfg))
		return sw_errorf(e, -errno, "cannot read guard_cfg: %s", strerror(errno));
	c = count_of(&cfg, l);
	if (exact) {
		while (!bpf_map_get_next_key(fd, first ? NULL : &prev, &key)) {
			first = false;
			prev = key;
			n++;
		}
		*c = n;
	} else {
		*c = delta < 0 && *c < (__u32)-delta ? 0 : *c + (__u32)delta;
	}
	return cfg_update(m, &cfg, e);
}

/* The map update of an add, its count raised first. */
static int list_insert(struct sw_maps *m, enum sw_guard_list l, const struct sw_guard_prefix *p,
		       bool *existed, struct sw_err *e)
{
	struct sw_guard_hits hits = {};
	char name[64];
	int err;

	*existed = false;
	err = count_update(m, l, 1, false, e);
	if (err)
		return err;
	if (!bpf_map_update_elem(list_fd(m, l), p, &hits, BPF_NOEXIST))
		return 0;
	err = -errno;
	count_update(m, l, 0, true, NULL);
	if (err == -EEXIST) {
		*existed = true;
		return 0;
	}
	sw_guard_prefix_format(p, name, sizeof(name));
	if (err == -E2BIG || err == -ENOSPC)
		return sw_errorf(e, -ENOSPC, "cannot add %s: the %s list holds %u prefixes", name,
				 list_name(l),
				 l == SW_GUARD_DENY ? SW_GUARD_DENY_MAX : SW_GUARD_ALLOW_MAX);
	return sw_errorf(e, err, "cannot add %s to the %s list: %s", name, list_name(l),
			 strerror(-err));
}

/* The map update of a delete (its count is lowered by the caller). */
static int list_remove(struct sw_maps *m, enum sw_guard_list l, const struct sw_guard_prefix *p,
		       struct sw_err *e)
{
	char name[64];

	if (!bpf_map_delete_elem(list_fd(m, l), p))
		return 0;
	sw_guard_prefix_format(p, name, sizeof(name));
	if (errno == ENOENT)
		return sw_errorf(e, -ENOENT, "%s is not in the %s list", name, list_name(l));
	return sw_errorf(e, -errno, "cannot remove %s from the %s list: %s", name, list_name(l),
			 strerror(errno));
}

int sw_guard_prefix_add(struct sw_maps *m, enum sw_guard_list l, const struct sw_guard_prefix *p,
			bool *existed, struct sw_err *e)
{
	return list_insert(m, l, p, existed, e);
}

int sw_guard_prefix_del(struct sw_maps *m, enum sw_guard_list l, const struct sw_guard_prefix *p,
			struct sw_err *e)
{
	int err = list_remove(m, l, p, e);

	return err ? err : count_update(m, l, -1, false, e);
}

/* IPv4 first, then by address, then by length. */
static int entry_cmp(const void *a, const void *b)
{
	const struct sw_guard_entry *x = a, *y = b;
	int c;

	if (x->prefix.family != y->prefix.family)
		return (int)x->prefix.family - (int)y->prefix.family;
	c = memcmp(x->prefix.addr, y->prefix.addr, sizeof(x->prefix.addr));
	if (c)
		return c;
	return (int)x->prefix.prefixlen - (int)y->prefix.prefixlen;
}

int sw_guard_prefix_list(struct sw_maps *m, enum sw_guard_list l, struct sw_guard_entry *out,
			 int max)
{
	struct sw_guard_prefix key, prev;
	int fd = list_fd(m, l), n = 0;
	bool first = true;

	while (n < max && !bpf_map_get_next_key(fd, first ? NULL : &prev, &key)) {
		first = false;
		prev = key;
		out[n].prefix = key;
		if (!bpf_map_lookup_elem(fd, &key, &out[n].hits))
			n++;
	}
	qsort(out, (size_t)n, sizeof(*out), entry_cmp);
	return n;
}

__u32 sw_guard_burst(__u32 rate, __u32 burst)
{
	return rate ? (burst ? burst : rate) : 0;
}

int sw_guard_limit_set(struct sw_maps *m, __u32 rate, __u32 burst, struct sw_err *e)
{
	struct sw_guard_cfg cfg;

	if (rate > SW_GUARD_RATE_MAX)
		return sw_errorf(e, -EINVAL, "a rate of %u is over the limit of %u per second",
				 rate, SW_GUARD_RATE_MAX);
	if (burst > SW_GUARD_BURST_MAX)
		return sw_errorf(e, -EINVAL, "a burst of %u is over the limit of %u", burst,
				 SW_GUARD_BURST_MAX);
	if (sw_guard_cfg_read(m, &cfg))
		return sw_errorf(e, -errno, "cannot read guard_cfg: %s", strerror(errno));
	cfg.rate = rate;
	cfg.burst = sw_guard_burst(rate, burst);
	cfg.interval_ns = rate ? 1000000000ULL / rate : 0;
	cfg.burst_ns = cfg.interval_ns * cfg.burst;
	return cfg_update(m, &cfg, e);
}

int sw_guard_set(struct sw_maps *m, bool on, struct sw_err *e)
{
	struct sw_guard_cfg cfg;

	if (sw_guard_cfg_read(m, &cfg))
		return sw_errorf(e, -errno, "cannot read guard_cfg: %s", strerror(errno));
	cfg.off = !on;
	return cfg_update(m, &cfg, e);
}

int sw_guard_stats_read(struct sw_maps *m, struct sw_guard_stats *out)
{
	int ncpu = libbpf_num_possible_cpus(), i, v;
	struct sw_guard_stats *per;
	__u32 zero = 0;

	memset(out, 0, sizeof(*out));
	if (ncpu <= 0)
		return ncpu;
	per = calloc((size_t)ncpu, sizeof(*per));
	if (!per)
		return -ENOMEM;
	if (bpf_map_lookup_elem(bpf_map__fd(m->skel->maps.guard_stats), &zero, per)) {
		free(per);
		return -errno;
	}
	for (i = 0; i < ncpu; i++)
		for (v = 0; v < SW_GV_MAX; v++) {
			out->v[v].packets += per[i].v[v].packets;
			out->v[v].bytes += per[i].v[v].bytes;
		}
	free(per);
	return 0;
}

int sw_guard_port_add(struct sw_maps *m, __u16 port, struct sw_err *e)
{
	__u8 one = 1;

	if (bpf_map_update_elem(bpf_map__fd(m->skel->maps.guard_ports), &port, &one, BPF_ANY))
		return sw_errorf(e, -errno, "cannot add port %u to guard_ports: %s", port,
				 strerror(errno));
	return 0;
}

static int port_cmp(const void *a, const void *b)
{
	return (int)*(const __u16 *)a - (int)*(const __u16 *)b;
}

int sw_guard_ports(struct sw_maps *m, __u16 *out, int max)
{
	int fd = bpf_map__fd(m->skel->maps.guard_ports), n = 0;
	__u16 key, *prev = NULL;

	while (n < max && !bpf_map_get_next_key(fd, prev, &key)) {
		out[n] = key;
		prev = &out[n++];
	}
	qsort(out, (size_t)n, sizeof(*out), port_cmp);
	return n;
}

bool sw_guard_policy_empty(const struct sw_guard_policy *g)
{
	return !g->nr_deny && !g->nr_allow && !g->rate;
}

static int prefix_cmp(const void *a, const void *b)
{
	struct sw_guard_entry x = {.prefix = *(const struct sw_guard_prefix *)a};
	struct sw_guard_entry y = {.prefix = *(const struct sw_guard_prefix *)b};

	return entry_cmp(&x, &y);
}

static int list_read(struct sw_maps *m, enum sw_guard_list l, struct sw_guard_prefix *out,
		     __u32 max, __u32 *nr)
{
	struct sw_guard_entry *e = calloc(max, sizeof(*e));
	int n, i;

	if (!e)
		return -ENOMEM;
	n = sw_guard_prefix_list(m, l, e, (int)max);
	for (i = 0; i < n; i++)
		out[i] = e[i].prefix;
	*nr = n > 0 ? (__u32)n : 0;
	free(e);
	return 0;
}

int sw_guard_policy_read(struct sw_maps *m, struct sw_guard_policy *g, struct sw_err *e)
{
	struct sw_guard_cfg cfg;

	memset(g, 0, sizeof(*g));
	if (sw_guard_cfg_read(m, &cfg))
		return sw_errorf(e, -errno, "cannot read guard_cfg: %s", strerror(errno));
	g->rate = cfg.rate;
	g->burst = cfg.burst;
	if (list_read(m, SW_GUARD_DENY, g->deny, SW_GUARD_DENY_MAX, &g->nr_deny) ||
	    list_read(m, SW_GUARD_ALLOW, g->allow, SW_GUARD_ALLOW_MAX, &g->nr_allow))
		return sw_errorf(e, -ENOMEM, "out of memory");
	g->present = !sw_guard_policy_empty(g);
	return 0;
}

static int sort_unique(struct sw_guard_prefix *list, __u32 nr, const char *what, struct sw_err *e)
{
	char name[64];
	__u32 i;

	qsort(list, nr, sizeof(*list), prefix_cmp);
	for (i = 1; i < nr; i++) {
		if (prefix_cmp(&list[i - 1], &list[i]))
			continue;
		sw_guard_prefix_format(&list[i], name, sizeof(name));
		return sw_errorf(e, -EINVAL, "%s lists %s twice; keep one", what, name);
	}
	return 0;
}

int sw_guard_policy_sort(struct sw_guard_policy *g, struct sw_err *e)
{
	int err = sort_unique(g->deny, g->nr_deny, "guard.deny", e);

	return err ? err : sort_unique(g->allow, g->nr_allow, "guard.allow", e);
}

static bool has_prefix(const struct sw_guard_prefix *list, __u32 nr,
		       const struct sw_guard_prefix *p)
{
	return bsearch(p, list, nr, sizeof(*p), prefix_cmp) != NULL;
}

/*
 * Makes list l hold want[0..nr) (sorted). New deny prefixes go in before old ones go, so
 * that no moment denies less than both lists do (unless both do not fit at once); old
 * allow prefixes go first, so that none exempts more. Each insert raises the count
 * first (list_insert); the walk at the end sets it exact.
 */
static int list_apply(struct sw_maps *m, enum sw_guard_list l, const struct sw_guard_prefix *want,
		      __u32 nr, const struct sw_guard_prefix *have, __u32 nr_have, bool dry_run,
		      __u32 *added, __u32 *removed, struct sw_err *e)
{
	__u32 max = l == SW_GUARD_DENY ? SW_GUARD_DENY_MAX : SW_GUARD_ALLOW_MAX, i, pass;
	bool add_first, existed;
	int err = 0;

	*added = *removed = 0;
	for (i = 0; i < nr; i++)
		*added += !has_prefix(have, nr_have, &want[i]);
	for (i = 0; i < nr_have; i++)
		*removed += !has_prefix(want, nr, &have[i]);
	if (dry_run || (!*added && !*removed))
		return 0;
	add_first = l == SW_GUARD_DENY && nr_have + *added <= max;
	for (pass = 0; pass < 2 && !err; pass++) {
		if ((pass == 0) == add_first) {
			for (i = 0; i < nr && !err; i++)
				if (!has_prefix(have, nr_have, &want[i]))
					err = list_insert(m, l, &want[i], &existed, e);
		} else {
			for (i = 0; i < nr_have && !err; i++)
				if (!has_prefix(want, nr, &have[i]))
					err = list_remove(m, l, &have[i], e);
		}
	}
	/* Exact again, whatever happened. */
	count_update(m, l, 0, true, err ? NULL : e);
	return err;
}

int sw_guard_apply(struct sw_maps *m, const struct sw_guard_policy *g, bool dry_run,
		   struct sw_guard_delta *d, struct sw_err *e)
{
	struct sw_guard_policy *old = calloc(1, sizeof(*old));
	int err;

	memset(d, 0, sizeof(*d));
	if (!old)
		return sw_errorf(e, -ENOMEM, "out of memory");
	err = sw_guard_policy_read(m, old, e);
	d->old_rate = old->rate;
	d->old_burst = old->burst;
	d->rate = g->present ? g->rate : old->rate;
	d->burst = g->present ? g->burst : old->burst;
	if (err || !g->present)
		goto out;
	d->limit_changed = d->rate != d->old_rate || d->burst != d->old_burst;
	err = list_apply(m, SW_GUARD_DENY, g->deny, g->nr_deny, old->deny, old->nr_deny, dry_run,
			 &d->deny_added, &d->deny_removed, e);
	if (!err)
		err = list_apply(m, SW_GUARD_ALLOW, g->allow, g->nr_allow, old->allow,
				 old->nr_allow, dry_run, &d->allow_added, &d->allow_removed, e);
	if (!err && !dry_run && d->limit_changed)
		err = sw_guard_limit_set(m, g->rate, g->burst, e);
out:
	free(old);
	return err;
}

static void link_path(char *buf, size_t len, __u32 ifindex)
{
	snprintf(buf, len, "%s/" LINK_PREFIX "%u", sw_pin_root(), ifindex);
}

/* The ifindex a pinned XDP link is attached to (0: detached, its interface gone), or -1. */
static int link_ifindex(const char *path, __u32 *prog_id)
{
	struct bpf_link_info info = {};
	__u32 len = sizeof(info);
	int fd = bpf_obj_get(path), ret = -1;

	if (fd < 0)
		return -1;
	if (!bpf_obj_get_info_by_fd(fd, &info, &len) && info.type == BPF_LINK_TYPE_XDP) {
		ret = (int)info.xdp.ifindex;
		if (prog_id)
			*prog_id = info.prog_id;
	}
	close(fd);
	return ret;
}

/* The program attached to ifindex here (0: none). */
static __u32 query_prog(__u32 ifindex)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);

	return bpf_xdp_query((int)ifindex, 0, &q) ? 0 : q.prog_id;
}

/* The pin at path is a link of ifindex in this network namespace: the interface of that
 * index here runs the link's program (bpffs is shared between namespaces, ifindexes are
 * not). */
static bool link_here(const char *path, __u32 ifindex)
{
	__u32 prog_id = 0;

	return link_ifindex(path, &prog_id) == (int)ifindex && prog_id &&
	       query_prog(ifindex) == prog_id;
}

static enum sw_guard_mode query_mode(__u32 ifindex)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);

	if (bpf_xdp_query((int)ifindex, 0, &q))
		return SW_GUARD_AUTO;
	switch (q.attach_mode) {
	case XDP_ATTACHED_DRV:
	case XDP_ATTACHED_HW:
		return SW_GUARD_NATIVE;
	case XDP_ATTACHED_SKB:
		return SW_GUARD_GENERIC;
	}
	return SW_GUARD_AUTO;
}

static int link_make(int prog, __u32 ifindex, enum sw_guard_mode mode)
{
	LIBBPF_OPTS(bpf_link_create_opts, opts);

	opts.flags = mode == SW_GUARD_NATIVE ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE;
	return bpf_link_create(prog, (int)ifindex, BPF_XDP, &opts);
}

int sw_guard_attach(const char *ifname, enum sw_guard_mode *mode, bool *already, struct sw_err *e)
{
	char path[PATH_MAX], ppath[PATH_MAX];
	__u32 ifindex = if_nametoindex(ifname);
	int prog, link, err = 0, have;

	*already = false;
	if (!ifindex)
		return sw_errorf(e, -ENODEV, "no interface \"%s\" here (see ip link)", ifname);
	link_path(path, sizeof(path), ifindex);
	have = link_ifindex(path, NULL);
	if (have == (int)ifindex && !link_here(path, ifindex))
		return sw_errorf(e, -EBUSY,
				 "%s holds a guard link of interface %u of another network "
				 "namespace; use a pin directory per namespace (SOCKWAY_PIN_ROOT)",
				 path, ifindex);
	if (have == (int)ifindex) {
		enum sw_guard_mode now = query_mode(ifindex);

		if (*mode != SW_GUARD_AUTO && now != *mode)
			return sw_errorf(e, -EBUSY,
					 "the guard is attached to %s in %s mode; detach it first "
					 "to attach in %s mode",
					 ifname, sw_guard_mode_name(now),
					 sw_guard_mode_name(*mode));
		*mode = now;
		*already = true;
		return 0;
	}
	/* A pin left by an interface gone (whose index came back): it holds nothing. */
	unlink(path);
	snprintf(ppath, sizeof(ppath), "%s/xdp_guard", sw_pin_root());
	prog = bpf_obj_get(ppath);
	if (prog < 0)
		return sw_errorf(e, -errno,
				 "the xdp_guard program is not pinned (%s); run "
				 "\"sockway load\"",
				 ppath);
	if (*mode == SW_GUARD_AUTO) {
		link = link_make(prog, ifindex, SW_GUARD_NATIVE);
		*mode = SW_GUARD_NATIVE;
		if (link < 0 && errno != EBUSY && errno != EEXIST) {
			link = link_make(prog, ifindex, SW_GUARD_GENERIC);
			*mode = SW_GUARD_GENERIC;
		}
	} else {
		link = link_make(prog, ifindex, *mode);
	}
	if (link < 0) {
		err = -errno;
		if (err == -EBUSY || err == -EEXIST)
			sw_errorf(e, err,
				  "%s has another XDP program attached (see bpftool net); "
				  "detach it first",
				  ifname);
		else
			sw_errorf(e, err, "cannot attach to %s in %s mode: %s%s", ifname,
				  sw_guard_mode_name(*mode), strerror(-err),
				  *mode == SW_GUARD_NATIVE ? " (try --mode generic)" : "");
		goto out;
	}
	if (bpf_obj_pin(link, path))
		err = sw_errorf(e, -errno, "cannot pin %s: %s", path, strerror(errno));
	close(link);
out:
	close(prog);
	return err;
}

int sw_guard_detach(const char *ifname, struct sw_err *e)
{
	char path[PATH_MAX];
	__u32 ifindex = if_nametoindex(ifname);

	/* The link of an interface that was deleted goes by its pin's name, as stats shows
	 * it ("guard_if7 (interface gone)"): it holds nothing, only the pin is left. */
	if (!ifindex && !strncmp(ifname, LINK_PREFIX, strlen(LINK_PREFIX)) &&
	    !strchr(ifname, '/')) {
		snprintf(path, sizeof(path), "%s/%s", sw_pin_root(), ifname);
		if (link_ifindex(path, NULL) != 0)
			return sw_errorf(e, -ENOENT, "%s is not the link of an interface gone",
					 ifname);
		if (unlink(path))
			return sw_errorf(e, -errno, "cannot unpin %s: %s", path, strerror(errno));
		return 0;
	}
	if (!ifindex)
		return sw_errorf(e, -ENODEV, "no interface \"%s\" here (see ip link)", ifname);
	link_path(path, sizeof(path), ifindex);
	if (!link_here(path, ifindex))
		return sw_errorf(e, -ENOENT, "the guard is not attached to %s", ifname);
	/* The pin holds the last reference: unlinking it detaches the program. */
	if (unlink(path))
		return sw_errorf(e, -errno, "cannot unpin %s: %s", path, strerror(errno));
	return 0;
}

int sw_guard_reattach(struct sw_err *e)
{
	char path[PATH_MAX], ppath[PATH_MAX];
	struct dirent *de;
	int prog, link, err = 0;
	DIR *dir;

	snprintf(ppath, sizeof(ppath), "%s/xdp_guard", sw_pin_root());
	prog = bpf_obj_get(ppath);
	if (prog < 0)
		return sw_errorf(e, -errno, "the xdp_guard program is not pinned (%s)", ppath);
	dir = opendir(sw_pin_root());
	while (dir && !err && (de = readdir(dir))) {
		if (strncmp(de->d_name, LINK_PREFIX, strlen(LINK_PREFIX)))
			continue;
		snprintf(path, sizeof(path), "%s/%s", sw_pin_root(), de->d_name);
		link = bpf_obj_get(path);
		if (link < 0)
			continue;
		/* A link whose interface went is left alone (detach or unload removes it). */
		if (bpf_link_update(link, prog, NULL) && errno != ENOLINK)
			err = sw_errorf(e, -errno, "cannot update %s: %s", path, strerror(errno));
		close(link);
	}
	if (dir)
		closedir(dir);
	close(prog);
	return err;
}

int sw_guard_ifaces(struct sw_guard_iface *out, int max)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *dir = opendir(sw_pin_root());
	int n = 0, idx;

	if (!dir)
		return -errno;
	while (n < max && (de = readdir(dir))) {
		if (strncmp(de->d_name, LINK_PREFIX, strlen(LINK_PREFIX)))
			continue;
		snprintf(path, sizeof(path), "%s/%s", sw_pin_root(), de->d_name);
		memset(&out[n], 0, sizeof(out[n]));
		idx = link_ifindex(path, &out[n].prog_id);
		if (idx < 0)
			continue;
		out[n].ifindex = (__u32)idx;
		if (!idx || !if_indextoname((unsigned)idx, out[n].name)) {
			out[n].ifindex = 0;
			snprintf(out[n].name, sizeof(out[n].name), "%.15s", de->d_name);
		} else {
			out[n].mode = query_mode((__u32)idx);
		}
		n++;
	}
	closedir(dir);
	return n;
}

const char *sw_guard_mode_name(enum sw_guard_mode mode)
{
	switch (mode) {
	case SW_GUARD_NATIVE:
		return "native";
	case SW_GUARD_GENERIC:
		return "generic";
	default:
		return "auto";
	}
}

const char *sw_guard_verdict_name(unsigned v)
{
	static const char *const names[SW_GV_MAX] = {
		[SW_GV_PASSED] = "passed",   [SW_GV_DENIED] = "denied",
		[SW_GV_LIMITED] = "limited", [SW_GV_MALFORMED] = "malformed",
		[SW_GV_SYN] = "syn_passed",
	};

	return v < SW_GV_MAX ? names[v] : "?";
}
