#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
"""A burst of new connections from one source, for the XDP guard's rate limit.

  guard_client.py HOST PORT SRC_A SRC_B COUNT [--all WAIT_S]

From SRC_A: one keep-alive connection that asks a request; then COUNT connections opened at
once without waiting for any (non-blocking connect: each sends its SYN now); then a second
request on the first connection (an established connection of the flooding source). From
SRC_B: one more connection and a request. With --all, waits up to WAIT_S seconds for all
COUNT connections to be established (the source is allowed) and reports how many were.
Prints one JSON line: the three statuses, and "connected" (with --all).
"""
import json
import select
import socket
import sys
import time

from httpread import read_response


def family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def request(sock, path):
    """Sends one GET, reads one response with a Content-Length: its status (0: none)."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: guard\r\n\r\n".encode())
    try:
        return read_response(sock)[0]
    except EOFError:
        return 0


def connected(host, port, src, timeout):
    s = socket.socket(family(host), socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((src, 0))
    s.connect((host, port))
    return s


def main():
    host, port, src_a, src_b, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
    wait_all = float(sys.argv[7]) if len(sys.argv) > 7 and sys.argv[6] == "--all" else None
    out = {}
    keep = connected(host, port, src_a, 60)
    out["before"] = request(keep, "/api/before")
    flood = []
    for _ in range(count):
        s = socket.socket(family(host), socket.SOCK_STREAM)
        s.setblocking(False)
        s.bind((src_a, 0))
        s.connect_ex((host, port))
        flood.append(s)
    if wait_all is not None:
        pending = set(flood)
        done = 0
        deadline = time.monotonic() + wait_all
        while pending and time.monotonic() < deadline:
            _, ready, _ = select.select([], list(pending), [], 0.2)
            for s in ready:
                pending.discard(s)
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                    done += 1
        out["connected"] = done
    out["after"] = request(keep, "/api/after")
    other = connected(host, port, src_b, 60)
    out["other"] = request(other, "/api/other")
    print(json.dumps(out), flush=True)
    for s in flood + [keep, other]:
        s.close()


if __name__ == "__main__":
    main()
