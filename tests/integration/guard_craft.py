#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
"""Crafted frames for the XDP guard's header rules (tests/integration/test_guard.sh).

  guard_craft.py IFACE DST_MAC KIND SRC DST PORT

Writes one Ethernet frame of KIND out of IFACE (AF_PACKET; IFACE is a veth end in the
test's namespace, DST_MAC its peer's address), from SRC to DST:PORT:
  vlan3-syn    a TCP SYN inside three 802.1Q tags of VLAN 0 (the stack strips them all)
  vlan9-syn    the same inside nine tags (more than the guard reads: malformed)
  frag-off1    an IPv4 TCP fragment at offset 8 bytes (could rewrite the flags: malformed)
  frag-tiny    an IPv4 first fragment with 8 bytes of TCP header (no flags: malformed)
  ext6-syn     an IPv6 TCP SYN behind six destination-options headers (read through)
  ext7-syn     the same behind seven (more than the guard reads: malformed)
  v6frag-syn   an IPv6 first fragment (offset 0, more to come) holding a TCP SYN
SRC may be a comma-separated list: one frame from each, back to back, from one process (for
checks that two frames meet the guard within a rate limit's refill time).
"""
import socket
import struct
import sys


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def tcp_syn(sport, dport):
    # 20 bytes: ports, seq, ack, offset 5, SYN, window; checksum left 0 (the guard reads
    # flags, not checksums; the stack drops the packet after).
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, 0x02, 64240, 0, 0)


def ipv4(src, dst, payload, frag=0, ident=1):
    head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, frag, 64, 6, 0,
                       socket.inet_aton(src), socket.inet_aton(dst))
    head = head[:10] + struct.pack("!H", csum(head)) + head[12:]
    return head + payload


def ipv6(src, dst, next_header, payload):
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), next_header, 64,
                       socket.inet_pton(socket.AF_INET6, src),
                       socket.inet_pton(socket.AF_INET6, dst)) + payload


def dest_opts(n, last_next, payload):
    """n destination-options headers (8 bytes each: next, length 0, a PadN option)."""
    for i in range(n):
        nxt = last_next if i == 0 else 60
        payload = struct.pack("!BBBB4s", nxt, 0, 1, 4, b"\0" * 4) + payload
    return payload


def frame(kind, src, dst, port):
    """The frame's body after the MAC addresses' place, and its ethertype."""
    syn = tcp_syn(40000, port)
    if kind in ("vlan3-syn", "vlan9-syn"):
        tags = 3 if kind == "vlan3-syn" else 9
        body = b"".join(struct.pack("!HH", 0, 0x8100) for _ in range(tags - 1))
        body += struct.pack("!HH", 0, 0x0800) + ipv4(src, dst, syn)
        ethertype = 0x8100
    elif kind == "frag-off1":
        body, ethertype = ipv4(src, dst, syn[8:], frag=1), 0x0800
    elif kind == "frag-tiny":
        body, ethertype = ipv4(src, dst, syn[:8], frag=0x2000), 0x0800
    elif kind in ("ext6-syn", "ext7-syn"):
        n = 6 if kind == "ext6-syn" else 7
        body, ethertype = ipv6(src, dst, 60, dest_opts(n, 6, syn)), 0x86DD
    elif kind == "v6frag-syn":
        frag = struct.pack("!BBHI", 6, 0, 1, 7)  # next TCP, offset 0, M set, id 7
        body, ethertype = ipv6(src, dst, 44, frag + syn), 0x86DD
    else:
        sys.exit(f"unknown kind {kind}")
    return body, ethertype


def main():
    iface, dst_mac, kind, srcs, dst, port = sys.argv[1:7]
    port = int(port)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    src_mac = s.getsockname()[4]
    dmac = bytes.fromhex(dst_mac.replace(":", ""))
    frames = []
    for src in srcs.split(","):
        body, ethertype = frame(kind, src, dst, port)
        frames.append(dmac + src_mac + struct.pack("!H", ethertype) + body)
    for f in frames:
        s.send(f)


if __name__ == "__main__":
    main()
