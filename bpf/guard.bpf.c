// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * The XDP guard: on an interface that carries client traffic, drops
 *   - every packet from a denied prefix (guard_deny, an LPM trie), and
 *   - a new TCP connection (SYN without ACK) to a guarded port (guard_ports) beyond its
 *     source's rate (guard_cfg), unless the source is in an allowed prefix (guard_allow),
 * before the stack allocates anything for it. Everything else passes untouched.
 *
 * Headers an attacker could shape to slip a SYN past the limit are not trusted:
 *   - up to SW_GUARD_VLANS VLAN tags are read past (the stack strips tags of VLAN 0 one
 *     after the other, and a VLAN device delivers the inner packet); a frame with more is
 *     dropped as malformed;
 *   - IPv4: a header shorter than 20 bytes is malformed; a TCP fragment at offset 8 bytes
 *     (which could overwrite the flags of the first) is dropped, and so is a first fragment
 *     too short to show the TCP flags (RFC 1858), so every SYN the stack sees was seen here;
 *     later fragments carry no TCP header and pass (the first decides);
 *   - IPv6: up to SW_GUARD_EXT extension headers are walked to the TCP header; a packet with
 *     more, or whose first fragment does not hold the TCP flags, is dropped as malformed.
 * The deny list applies to every packet of the source, fragments and other protocols too.
 * Tunnels (IPIP, GRE, IPv6 in IPv6...) are not looked into: their outer source counts.
 */
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "sockway/abi.h"

#define ETH_P_IP       0x0800
#define ETH_P_IPV6     0x86DD
#define ETH_P_8021Q    0x8100
#define ETH_P_8021AD   0x88A8
#define IP_MF	       0x2000
#define IP_OFFSET      0x1fff
#define SW_GUARD_EXT   6
#define SW_GUARD_VLANS 8
#define NEXTHDR_HOP    0
#define NEXTHDR_TCP    6
#define NEXTHDR_ROUTE  43
#define NEXTHDR_FRAG   44
#define NEXTHDR_AUTH   51
#define NEXTHDR_DEST   60
#define TCP_FLAGS_END  14 /* the flags are byte 13 of the TCP header */

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SW_GUARD_DENY_MAX);
	__type(key, struct sw_guard_prefix);
	__type(value, struct sw_guard_hits);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} guard_deny SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SW_GUARD_ALLOW_MAX);
	__type(key, struct sw_guard_prefix);
	__type(value, struct sw_guard_hits);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} guard_allow SEC(".maps");

/* Source (an IPv4 address, an IPv6 /64) -> its rate limit's state. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SW_GUARD_SOURCES);
	__type(key, struct sw_guard_prefix);
	__type(value, struct sw_guard_source);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} guard_sources SEC(".maps");

/* TCP port (host order) -> 1: the ports whose new connections are limited. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SW_GUARD_PORTS);
	__type(key, __u16);
	__type(value, __u8);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} guard_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sw_guard_cfg);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} guard_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sw_guard_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} guard_stats SEC(".maps");

/* What the parse found: the source, and whether this is a SYN to a guarded port. */
struct gpkt {
	struct sw_guard_prefix src; /* the full address, for the tries */
	__u16 dport;		    /* host order; 0: no TCP SYN without ACK here */
};

/* Reads the TCP header at l4 (packet bounds checked) for a SYN without ACK. */
static __always_inline int tcp_syn(void *l4, void *end, struct gpkt *g)
{
	struct tcphdr *th = l4;

	if ((void *)th + TCP_FLAGS_END > end)
		return -1;
	if (th->syn && !th->ack)
		g->dport = bpf_ntohs(th->dest);
	return 0;
}

static __always_inline int parse_ip4(void *l3, void *end, struct gpkt *g)
{
	struct iphdr *ip = l3;
	__u16 frag;
	__u32 hl;

	if ((void *)(ip + 1) > end)
		return -1;
	hl = ip->ihl * 4;
	if (ip->version != 4 || hl < sizeof(*ip))
		return -1;
	g->src.family = SW_GUARD_V4;
	g->src.prefixlen = 8 + 32;
	__builtin_memcpy(g->src.addr, &ip->saddr, 4);
	if (ip->protocol != NEXTHDR_TCP)
		return 0;
	frag = bpf_ntohs(ip->frag_off);
	if (frag & IP_OFFSET)
		/* A later fragment: none of the TCP header, but at offset 1 it could rewrite the
		 * flags the first one showed. */
		return (frag & IP_OFFSET) == 1 ? -1 : 0;
	return tcp_syn(l3 + hl, end, g);
}

static __always_inline int parse_ip6(void *l3, void *end, struct gpkt *g)
{
	struct ipv6hdr *ip6 = l3;
	struct frag_hdr *fh;
	struct ipv6_opt_hdr *oh;
	void *p;
	__u8 next;
	int i;

	if ((void *)(ip6 + 1) > end)
		return -1;
	if (ip6->version != 6)
		return -1;
	g->src.family = SW_GUARD_V6;
	g->src.prefixlen = 8 + 128;
	__builtin_memcpy(g->src.addr, &ip6->saddr, 16);
	next = ip6->nexthdr;
	p = ip6 + 1;
	/* SW_GUARD_EXT extension headers, then the TCP header. */
	for (i = 0; i <= SW_GUARD_EXT; i++) {
		switch (next) {
		case NEXTHDR_TCP:
			return tcp_syn(p, end, g);
		case NEXTHDR_HOP:
		case NEXTHDR_ROUTE:
		case NEXTHDR_DEST:
			oh = p;
			if ((void *)(oh + 1) > end)
				return -1;
			next = oh->nexthdr;
			p += (oh->hdrlen + 1) * 8;
			break;
		case NEXTHDR_AUTH:
			oh = p;
			if ((void *)(oh + 1) > end)
				return -1;
			next = oh->nexthdr;
			p += (oh->hdrlen + 2) * 4;
			break;
		case NEXTHDR_FRAG:
			fh = p;
			if ((void *)(fh + 1) > end)
				return -1;
			/* A later fragment carries no TCP header; the first decides. */
			if (bpf_ntohs(fh->frag_off) & ~7)
				return 0;
			next = fh->nexthdr;
			p = fh + 1;
			break;
		default:
			return 0; /* not TCP */
		}
	}
	return -1;
}

static __always_inline struct sw_guard_stats *stats(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&guard_stats, &zero);
}

static __always_inline int count(struct sw_guard_stats *st, enum sw_guard_verdict v, __u64 len,
				 int action)
{
	if (st) {
		st->v[v].packets++;
		st->v[v].bytes += len;
	}
	return action;
}

/* The rate limit: 1 when a SYN from src may pass now. */
static __always_inline int rate_ok(const struct sw_guard_cfg *cfg, const struct gpkt *g)
{
	struct sw_guard_source *b, fresh;
	__u64 now = bpf_ktime_get_ns(), tat, next;
	struct sw_guard_prefix key = g->src;
	int i;

	/* One source: an IPv4 address, an IPv6 /64 (a host holds a whole /64). */
	key.prefixlen = 0;
	if (key.family == SW_GUARD_V6)
		__builtin_memset(&key.addr[8], 0, 8);
	b = bpf_map_lookup_elem(&guard_sources, &key);
	if (!b) {
		fresh.tat = now + cfg->interval_ns;
		if (!bpf_map_update_elem(&guard_sources, &key, &fresh, BPF_NOEXIST))
			return 1;
		/* Another CPU added it meanwhile: go by its entry. */
		b = bpf_map_lookup_elem(&guard_sources, &key);
		if (!b)
			return 1;
	}
	/* Lock-free: a lost race tries again with the other CPU's value. */
	for (i = 0; i < 4; i++) {
		tat = b->tat;
		next = tat > now ? tat : now;
		/* A looser limit's debt is cut to the present one's burst. */
		if (next - now > cfg->burst_ns)
			next = now + cfg->burst_ns;
		next += cfg->interval_ns;
		if (next - now > cfg->burst_ns)
			return 0;
		if (__sync_val_compare_and_swap(&b->tat, tat, next) == tat)
			return 1;
	}
	return 0;
}

SEC("xdp")
int xdp_guard(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct sw_guard_stats *st = stats();
	const struct sw_guard_cfg *cfg;
	struct sw_guard_hits *hit;
	struct ethhdr *eth = data;
	struct vlan_hdr *vh;
	struct gpkt g = {};
	__u64 len = end - data;
	void *l3;
	__u16 proto;
	__u32 zero = 0;
	int i, err;

	cfg = bpf_map_lookup_elem(&guard_cfg, &zero);
	if (!cfg || cfg->off)
		return XDP_PASS;
	if ((void *)(eth + 1) > end)
		return count(st, SW_GV_PASSED, len, XDP_PASS);
	proto = eth->h_proto;
	l3 = eth + 1;
	for (i = 0; i < SW_GUARD_VLANS; i++) {
		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		vh = l3;
		if ((void *)(vh + 1) > end)
			return count(st, SW_GV_MALFORMED, len, XDP_DROP);
		proto = vh->h_vlan_encapsulated_proto;
		l3 = vh + 1;
	}
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD))
		return count(st, SW_GV_MALFORMED, len, XDP_DROP);
	if (proto == bpf_htons(ETH_P_IP))
		err = parse_ip4(l3, end, &g);
	else if (proto == bpf_htons(ETH_P_IPV6))
		err = parse_ip6(l3, end, &g);
	else
		return count(st, SW_GV_PASSED, len, XDP_PASS); /* ARP, ND's link layer, ... */
	if (err)
		return count(st, SW_GV_MALFORMED, len, XDP_DROP);

	if (cfg->nr_deny) {
		hit = bpf_map_lookup_elem(&guard_deny, &g.src);
		if (hit) {
			__sync_fetch_and_add(&hit->packets, 1);
			__sync_fetch_and_add(&hit->bytes, len);
			return count(st, SW_GV_DENIED, len, XDP_DROP);
		}
	}
	if (!g.dport || !cfg->rate || !bpf_map_lookup_elem(&guard_ports, &g.dport))
		return count(st, SW_GV_PASSED, len, XDP_PASS);
	hit = cfg->nr_allow ? bpf_map_lookup_elem(&guard_allow, &g.src) : NULL;
	if (hit) {
		__sync_fetch_and_add(&hit->packets, 1);
		__sync_fetch_and_add(&hit->bytes, len);
	} else if (!rate_ok(cfg, &g)) {
		return count(st, SW_GV_LIMITED, len, XDP_DROP);
	}
	count(st, SW_GV_SYN, len, 0);
	return count(st, SW_GV_PASSED, len, XDP_PASS);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
