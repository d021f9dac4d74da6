#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
"""A backend on non-blocking sockets, as most servers are (nginx, Go, node).

    nb_backend.py PORT SIZE

Answers every request on 127.0.0.1:PORT (keep-alive) with 200 and a Content-Length body of
SIZE pseudo-random bytes (seeded as drip_backend.py's), head and body in one send() per
attempt; a short write is retried from where it stopped once select() says the socket is
writable. That is the sender the egress splice must never cut short: the kernel counts a
redirected send as moved before it queues it. Logs "short write" lines to stderr.
"""
import random
import select
import socket
import sys
import threading

port, size = int(sys.argv[1]), int(sys.argv[2])
body = random.Random(42).randbytes(size)
head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size


def send_all(c, data):
    off = 0
    while off < len(data):
        try:
            n = c.send(data[off:])
        except BlockingIOError:
            select.select([], [c], [], 5)
            continue
        if n < len(data) - off:
            print("short write %d of %d" % (n, len(data) - off), file=sys.stderr, flush=True)
        off += n


def serve(c):
    c.setblocking(False)
    buf = b""
    try:
        while True:
            while b"\r\n\r\n" not in buf:
                select.select([c], [], [], 30)
                try:
                    d = c.recv(65536)
                except BlockingIOError:
                    continue
                if not d:
                    return
                buf += d
            _, buf = buf.split(b"\r\n\r\n", 1)
            send_all(c, head + body)
    except OSError as e:
        print("error: %r" % e, file=sys.stderr, flush=True)
    finally:
        c.close()


ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", port))
ls.listen(64)
print("ready", file=sys.stderr, flush=True)
while True:
    c, _ = ls.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
