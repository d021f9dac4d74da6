// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * The forwarding half of tools/bench/xdpflood: attached to the inner veth end that the
 * generator's frames arrive on, it redirects each frame out of out_ifindex (the veth end
 * that faces the host) as an XDP frame, the way a NIC hands packets to XDP: the host's
 * end runs its XDP program before any socket buffer exists, and builds one only for what
 * passes (or for every frame when it has no program, as a NIC driver does).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

const volatile __u32 out_ifindex;

SEC("xdp")
int xdpflood(struct xdp_md *ctx)
{
	return bpf_redirect(out_ifindex, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
