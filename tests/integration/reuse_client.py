#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
"""A client that connects again from the same address and port (the same tuple).

    reuse_client.py HOST PORT SRC SPORT STEP HOLD FIRST SECOND

Bound to SRC:SPORT, it asks HOST:PORT for FIRST (a body the backend pauses in, see
drip_backend.py DRIP_HOLD_FILE=HOLD) and reads until the backend has paused (HOLD.held)
and nothing more comes; prints "read N" and creates STEP.read. It waits for STEP.1 (the
test has killed the sockwayd that served it), resets the connection, connects again from
SRC:SPORT, creates STEP.2, waits for STEP.3 (the backend went on), asks for SECOND and
prints the first 12 bytes of what comes back (CR and LF escaped): the answer to its own
request, unless an old splice put the rest of FIRST's body into the new connection.
"""
import os
import socket
import struct
import sys
import time

host, port, src, sport = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
step, hold, first, second = sys.argv[5], sys.argv[6], sys.argv[7], sys.argv[8]


def conn():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((src, sport))
    s.connect((host, port))
    s.settimeout(60)
    return s


def wait(name):
    deadline = time.monotonic() + 120
    while not os.path.exists(step + name):
        if time.monotonic() > deadline:
            sys.exit("no " + name)
        time.sleep(0.02)


def get(s, path):
    s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: t\r\n\r\n")


s = conn()
get(s, first)
# Read what comes (the kernel keeps moving the body while the client keeps up) until the
# backend has paused mid-body and nothing more is on its way.
got = 0
s.settimeout(0.2)
while True:
    try:
        d = s.recv(1 << 20)
        if not d:
            sys.exit("closed before the pause")
        got += len(d)
    except socket.timeout:
        if os.path.exists(hold + ".held"):
            break
print("read", got, flush=True)
s.settimeout(60)
open(step + ".read", "w").close()
wait(".1")
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()
s = conn()
open(step + ".2", "w").close()
wait(".3")
get(s, second)
buf = b""
while b"\r\n\r\n" not in buf:
    d = s.recv(65536)
    if not d:
        break
    buf += d
print(buf[:12].decode("latin-1").replace("\r", "\\r").replace("\n", "\\n"))
