#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
"""A backend that sends each response head first and its body later, in pieces.

    drip_backend.py PORT SIZE [PIECE] [PAUSE_MS] [CUT]

Answers every request on 127.0.0.1:PORT (keep-alive) with 200 and a Content-Length body of
SIZE pseudo-random bytes (the same for every request, seeded), written PIECE bytes at a time
(default 262144) with PAUSE_MS (default 2) between pieces and 5 x PAUSE_MS between the
head and the first piece; with CUT, it closes the
connection after CUT body bytes instead (a backend dying mid-body). That is a body sockwayd has
forwarded the head of before it arrives: what the kernel splice of a response body takes.
PIECE 0 sends the head and the whole body (or CUT bytes of it) in one send instead, as most
servers do: what the kernel splice of a whole response takes. DRIP_HEAD_EXTRA, if set, is
added to the head as it is (field lines, each ending in CRLF; "\r\n" in it stands for CRLF).
DRIP_INTERIM, if set, is sent before the head (an interim response such as 103 Early Hints,
"\r\n" for CRLF): in the head's send, or in a send of its own 20 ms earlier with
DRIP_INTERIM_ALONE=1. With PIECE 0, a request path with "/silent" waits DRIP_SLOW_MS
(default 2000) before it answers, and one with "/stall" gets the head and half the body at
once, the rest DRIP_SLOW_MS later (a backend that stalls mid-body); one with "/close" is
closed right after its response (a backend that says keep-alive and closes all the same), and
one with "/reset" is reset (SO_LINGER 0) once the peer has acknowledged every byte of its
response (a backend that resets after a response the peer holds whole, unread; with
DRIP_RESET_GO=FILE, it logs "reset: acknowledged" and waits until FILE exists); one with
"/tail" gets a second response ("EVIL", 4 bytes) right behind its own, in the same send
(bytes past its Content-Length); one with "/extra" gets "junk" 50 ms after its response, in a send of its own (bytes past the
response; it logs "extra: junk sent", then "extra: closed" when the peer closes).
DRIP_HOLD_AT=BYTES with DRIP_HOLD_FILE=FILE (piece mode): before the first piece that
starts at or past BYTES of a body, it creates FILE.held and sends nothing until FILE exists,
then removes both and goes on (a body paused mid-way, for as long as the test needs).
DRIP_BIND, if set, is the address to listen on instead of 127.0.0.1. DRIP_CLOSE=1 (with
PIECE 0) makes every body close-delimited: the head has "Connection: close" and no
Content-Length, and the connection closes after the body ("/reset" then resets it instead,
once acknowledged: a body cut where only the reset tells).
Prints "ready" once listening, and the body's sha256 on the first line of stdout.
"""
import fcntl
import hashlib
import os
import random
import socket
import struct
import sys
import termios
import threading
import time

port, size = int(sys.argv[1]), int(sys.argv[2])
piece = int(sys.argv[3]) if len(sys.argv) > 3 else 262144
pause = (int(sys.argv[4]) if len(sys.argv) > 4 else 2) / 1000.0
cut = int(sys.argv[5]) if len(sys.argv) > 5 else None
body = random.Random(42).randbytes(size)
extra = os.environ.get("DRIP_HEAD_EXTRA", "").replace("\\r\\n", "\r\n").encode("latin-1")
interim = os.environ.get("DRIP_INTERIM", "").replace("\\r\\n", "\r\n").encode("latin-1")
interim_alone = os.environ.get("DRIP_INTERIM_ALONE") == "1"
slow = int(os.environ.get("DRIP_SLOW_MS", "2000")) / 1000.0
hold_at = int(os.environ["DRIP_HOLD_AT"]) if "DRIP_HOLD_AT" in os.environ else None
hold_file = os.environ.get("DRIP_HOLD_FILE", "")
reset_go = os.environ.get("DRIP_RESET_GO", "")
close_body = os.environ.get("DRIP_CLOSE") == "1"
length = b"Connection: close\r\n" if close_body else b"Content-Length: %d\r\n" % size
head = (b"HTTP/1.1 200 OK\r\n" + length + b"Content-Type: application/octet-stream\r\n"
        + extra + b"\r\n")


def hold():
    """Waits until the test creates hold_file (it saw FILE.held), then clears both."""
    open(hold_file + ".held", "w").close()
    while not os.path.exists(hold_file):
        time.sleep(0.01)
    os.remove(hold_file)
    os.remove(hold_file + ".held")


def reset(conn):
    """Waits until the peer acknowledged every byte sent (it holds them all), then resets
    the connection (SO_LINGER 0) rather than closing it."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if struct.unpack("i", fcntl.ioctl(conn, termios.TIOCOUTQ, b"\0" * 4))[0] == 0:
            break
        time.sleep(0.01)
    print("reset: acknowledged", file=sys.stderr, flush=True)
    while reset_go and not os.path.exists(reset_go):
        time.sleep(0.01)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    print("reset: sent", file=sys.stderr, flush=True)


def serve(conn):
    buf = b""
    extra_sent = False
    with conn:
        while True:
            while b"\r\n\r\n" not in buf:
                try:
                    d = conn.recv(65536)
                except ConnectionResetError:
                    d = b""
                if not d:
                    if extra_sent:
                        print("extra: closed", file=sys.stderr, flush=True)
                    return
                buf += d
            req, buf = buf.split(b"\r\n\r\n", 1)
            target = req.split(b"\r\n", 1)[0]
            first = interim
            if interim and interim_alone:
                conn.sendall(interim)
                time.sleep(0.02)
                first = b""
            if piece == 0 and b"/stall" in target:
                conn.sendall(first + head + body[:size // 2])
                time.sleep(slow)
                conn.sendall(body[size // 2:])
                continue
            if piece == 0 and b"/silent" in target:
                time.sleep(slow)
            if piece == 0:
                # "/tail": a response past the one asked for, in the same send (a backend
                # whose Content-Length was short, or that answers twice).
                tail = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL" if b"/tail" in target else b""
                conn.sendall(first + head + body[:cut] + tail)
                if b"/reset" in target:
                    reset(conn)
                    return
                if cut is not None or close_body or b"/close" in target:
                    return
                if b"/extra" in target:
                    time.sleep(0.05)
                    conn.sendall(b"junk")
                    extra_sent = True
                    print("extra: junk sent", file=sys.stderr, flush=True)
                continue
            conn.sendall(first + head)
            time.sleep(pause * 5)
            held = False
            for off in range(0, size, piece):
                if hold_at is not None and off >= hold_at and not held:
                    hold()
                    held = True
                if cut is not None and off + piece > cut:
                    conn.sendall(body[off:cut])
                    return
                conn.sendall(body[off:off + piece])
                time.sleep(pause)


ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((os.environ.get("DRIP_BIND", "127.0.0.1"), port))
ls.listen(64)
print(hashlib.sha256(body).hexdigest(), flush=True)
print("ready", file=sys.stderr, flush=True)
while True:
    c, _ = ls.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
