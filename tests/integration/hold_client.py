#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
"""One GET whose reader stops reading partway, until the test lets it go on.

    hold_client.py PORT PATH OUT GO [AFTER]

Sends "GET PATH" to 127.0.0.1:PORT, reads the response head and AFTER bytes of its body
(default 0; the head is read 4 KiB at a time, so up to that much more may come with it),
then creates the file GO.held and reads nothing until the file GO exists. That is a client
whose queue fills up, deterministically: the test polls for the state it wants (the
backend's sends held back on TCP, a conns entry, a socket's memory), then creates GO, or
kills the client to have one that goes away mid-body. Once GO exists it reads the rest of
a Content-Length body, writes the body to OUT and prints "STATUS SIZE". It gives up after
waiting 300 s for GO or 60 s for a byte (exit 1). HOLD_HOST, if set, is the address to
connect to instead of 127.0.0.1 (a client in another network namespace). HOLD_WARM=N first
sends N GETs of PATH on the same connection and reads their responses whole (a connection
whose send buffers TCP has grown by then), then creates GO.warm and sends the held request
only once GO.warm.go exists (so that the test can read a counter in between).
"""
import os
import socket
import sys
import time

port, path, out, go = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
after = int(sys.argv[5]) if len(sys.argv) > 5 else 0
s = socket.create_connection((os.environ.get("HOLD_HOST", "127.0.0.1"), port))
s.settimeout(60)
buf = b""
for _ in range(int(os.environ.get("HOLD_WARM", "0"))):
    s.sendall(("GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % path).encode())
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            sys.exit("closed before a warm-up head was whole")
        buf += d
    head, buf = buf.split(b"\r\n\r\n", 1)
    n = [int(l.split(b":")[1]) for l in head.split(b"\r\n")
         if l.lower().startswith(b"content-length:")][0]
    while len(buf) < n:
        d = s.recv(1 << 20)
        if not d:
            sys.exit("closed in a warm-up body")
        buf += d
    buf = buf[n:]
if os.environ.get("HOLD_WARM"):
    open(go + ".warm", "w").close()
    deadline = time.monotonic() + 300
    while not os.path.exists(go + ".warm.go"):
        if time.monotonic() > deadline:
            sys.exit("%s.warm.go never came" % go)
        time.sleep(0.02)
s.sendall(("GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % path).encode())
while b"\r\n\r\n" not in buf:
    d = s.recv(4096)
    if not d:
        sys.exit("closed before the head was whole")
    buf += d
head, body = buf.split(b"\r\n\r\n", 1)
status = int(head.split(b" ", 2)[1])
length = 0
for line in head.split(b"\r\n")[1:]:
    name, _, value = line.partition(b":")
    if name.strip().lower() == b"content-length":
        length = int(value)
parts = [body]
got = len(body)
while got < min(after, length):
    d = s.recv(min(65536, after - got))
    if not d:
        break
    parts.append(d)
    got += len(d)
open(go + ".held", "w").close()
deadline = time.monotonic() + 300
while not os.path.exists(go):
    if time.monotonic() > deadline:
        sys.exit("%s never came" % go)
    time.sleep(0.02)
while got < length:
    d = s.recv(1 << 20)
    if not d:
        break
    parts.append(d)
    got += len(d)
s.close()
with open(out, "wb") as f:
    f.write(b"".join(parts))
print("%d %d" % (status, got))
