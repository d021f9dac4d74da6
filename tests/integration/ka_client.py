#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
"""One keep-alive connection, N GETs, timed: for responses that end with nobody woken.

    ka_client.py PORT PATH N [MODE] [HOLD_MS]

Sends N requests for PATH to 127.0.0.1:PORT on one connection and reads each response by
its Content-Length. MODE says when each request goes out:
  seq    after the response before it (the default);
  pipe   all N in one send;
  pairs  two at a time: one, another 2 ms later, then both responses are read;
  half   all N at once, then the client shuts its sending side (a half-close).
Then it holds the connection HOLD_MS (default 0) more, to see what the server does with it;
with KA_HOLD_FILE set, until that file exists (HOLD_MS at most), so that a test lets it go
once the state it waits for is there rather than after a time.
Prints one line: "OK BYTES MS END", where OK is the responses read whole with status 200,
BYTES their bytes, heads included, MS the time from the first request to the last response,
and END what came after the last response within HOLD_MS: "open" (nothing), "closed" (the
server closed), or "bytes" (more bytes). With KA_OUT set, the responses' bytes are written to
that file as they came. KA_HOST, if set, is the address to connect to instead of 127.0.0.1.
"""
import os
import select
import socket
import sys
import time

port, path, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
mode = sys.argv[4] if len(sys.argv) > 4 else "seq"
hold = (int(sys.argv[5]) if len(sys.argv) > 5 else 0) / 1000.0
req = ("GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % path).encode()
s = socket.create_connection((os.environ.get("KA_HOST", "127.0.0.1"), port))
s.settimeout(10)
buf = b""
raw = []


def response():
    """Reads one response; returns its status, or 0 on a close before it was whole."""
    global buf
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            return 0
        buf += d
    head, rest = buf.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        d = s.recv(65536)
        if not d:
            return 0
        rest += d
    raw.append(head + b"\r\n\r\n" + rest[:length])
    buf = rest[length:]
    return int(head.split(b" ", 2)[1])


ok = 0
t0 = time.monotonic()
if mode in ("pipe", "half"):
    s.sendall(req * n)
    if mode == "half":
        s.shutdown(socket.SHUT_WR)
    ok = sum(response() == 200 for _ in range(n))
elif mode == "pairs":
    for i in range(0, n, 2):
        s.sendall(req)
        time.sleep(0.002)
        s.sendall(req)
        ok += (response() == 200) + (response() == 200)
else:
    for _ in range(n):
        s.sendall(req)
        ok += response() == 200
ms = (time.monotonic() - t0) * 1000
end = "open"
hold_file = os.environ.get("KA_HOLD_FILE")


def peer_end():
    """What the server did: "bytes" or "closed" (a read: it waits, if the socket blocks)."""
    try:
        d = s.recv(65536)
    except ConnectionResetError:
        return "closed"
    return "bytes" if d else "closed"


if buf:
    end = "bytes"
elif hold_file:
    deadline = time.monotonic() + hold
    while True:
        last = os.path.exists(hold_file) or time.monotonic() > deadline
        if select.select([s], [], [], 0 if last else 0.02)[0]:
            end = peer_end()
            break
        if last:
            break
elif hold:
    s.settimeout(hold)
    try:
        end = peer_end()
    except socket.timeout:
        pass
s.close()
if os.environ.get("KA_OUT"):
    with open(os.environ["KA_OUT"], "wb") as f:
        f.write(b"".join(raw))
print("%d %d %d %s" % (ok, sum(len(r) for r in raw), ms, end))
