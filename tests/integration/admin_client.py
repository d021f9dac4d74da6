#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
"""Clients of sockwayd's admin port, well-behaved and not, for test_admin.sh.

    admin_client.py raw PORT REQUEST
        Sends REQUEST (with \\r and \\n escapes, a '%N' expanding to N 'a's) and prints what
        came back until the server closed (or 3 s passed).
    admin_client.py stuck PORT PATH
        Asks for PATH with a receive buffer and segment size so small that the answer cannot
        all leave the server, and never reads. Prints "started" once the first bytes of the
        answer are queued at this end, then "reset MS" when the server resets the connection
        MS after the request went out ("open MS" if it did not within 30 s).
    admin_client.py drip PORT INTERVAL_MS
        A slowloris: sends a request head one byte every INTERVAL_MS, never ending it.
        Prints "closed MS BYTES" when the server closes the connection, MS after connecting
        with BYTES sent ("open MS BYTES" if it did not within 30 s).
    admin_client.py attack PORT IDLE STATUS_FILE
        All of it at once, kept going until killed: one stuck client asking for /metrics
        (started first), one slowloris sending a byte a second, and IDLE connections that
        send nothing. Whatever the server closes is opened again 100 ms later. Every 50 ms
        it writes its counters to STATUS_FILE as JSON:
          idle_up        idle connections established and not closed by the server
          idle_opened    idle connections established, in all
          idle_evicted   idle connections the server closed less than 1.5 s after they
                         were established (before any head deadline: the connection cap)
          slow_bytes     bytes the slowloris sent, in all
          stuck_started  stuck clients whose answer started arriving
          stuck_up       1 while the current stuck client has started and is open
"""
import errno
import fcntl
import json
import os
import select
import socket
import sys
import termios
import time

HOST = "127.0.0.1"
DRIP_HEAD = b"GET /healthz HTTP/1.1\r\nX-Drip: " + b"a" * 8192


def now_ms():
    return int(time.monotonic() * 1000)


def queued(s):
    """Bytes received and not read (FIONREAD), without reading them."""
    return int.from_bytes(fcntl.ioctl(s.fileno(), termios.FIONREAD, b"\0" * 4), "little")


def stuck_socket():
    s = socket.socket()
    # A receive window of about 1 KiB and 536-byte segments: the server's send buffer is
    # sized by the segment size (about 28 KiB here), so an answer larger than that plus the
    # window stays with the server.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
    return s


def request(path):
    return ("GET %s HTTP/1.1\r\nHost: admin\r\n\r\n" % path).encode()


def do_raw(port, text):
    out = b""
    data = text.replace("\\r", "\r").replace("\\n", "\n")
    while "%" in data:
        i = data.index("%")
        j = i + 1
        while j < len(data) and data[j].isdigit():
            j += 1
        data = data[:i] + "a" * int(data[i + 1:j]) + data[j:]
    s = socket.create_connection((HOST, port), timeout=3)
    try:
        s.sendall(data.encode())
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
    except OSError:
        pass
    sys.stdout.buffer.write(out)


def do_stuck(port, path):
    s = stuck_socket()
    s.connect((HOST, port))
    s.sendall(request(path))
    t0 = now_ms()
    p = select.poll()
    # No POLLIN: only the reset (POLLERR/POLLHUP) ends the wait, nothing is read.
    p.register(s, 0)
    started = False
    while now_ms() - t0 < 30000:
        if not started and queued(s) > 0:
            started = True
            print("started", flush=True)
        if p.poll(50):
            print("reset", now_ms() - t0, flush=True)
            return
    print("open", now_ms() - t0, flush=True)


def do_drip(port, interval_ms):
    s = socket.create_connection((HOST, port))
    t0 = now_ms()
    sent = 0
    p = select.poll()
    p.register(s, select.POLLIN)
    while now_ms() - t0 < 30000:
        try:
            s.send(DRIP_HEAD[sent:sent + 1])
            sent += 1
        except OSError:
            break
        if p.poll(interval_ms):
            try:
                if s.recv(4096):
                    continue
            except OSError:
                pass
            break
    else:
        print("open", now_ms() - t0, sent, flush=True)
        return
    print("closed", now_ms() - t0, sent, flush=True)


class Conn:
    """One attack connection: kind is idle, slow or stuck."""

    def __init__(self, kind, port):
        self.kind = kind
        self.sock = stuck_socket() if kind == "stuck" else socket.socket()
        self.sock.setblocking(False)
        self.up = False
        self.started = False
        self.t_up = 0
        self.sent = 0
        self.next_byte = 0
        err = self.sock.connect_ex((HOST, port))
        if err not in (0, errno.EINPROGRESS):
            raise OSError(err, os.strerror(err))


def do_attack(port, nr_idle, status_file):
    st = dict(idle_up=0, idle_opened=0, idle_evicted=0, slow_bytes=0, stuck_started=0,
              stuck_up=0)
    conns = {}
    reopen = []  # (when, kind)
    p = select.poll()

    def open_conn(kind):
        c = Conn(kind, port)
        conns[c.sock.fileno()] = c
        p.register(c.sock, select.POLLOUT)

    def close_conn(c, t):
        p.unregister(c.sock)
        del conns[c.sock.fileno()]
        c.sock.close()
        if c.kind == "idle" and c.up:
            st["idle_up"] -= 1
            if t - c.t_up < 1500:
                st["idle_evicted"] += 1
        if c.kind == "stuck" and c.started:
            st["stuck_up"] = 0
        reopen.append((t + 100, c.kind))

    open_conn("stuck")
    t_start = now_ms()
    others = False
    while True:
        t = now_ms()
        # The others start once the stuck client is being answered (or 2 s passed), so
        # that a server which serves one connection at a time is stuck on it first.
        if not others and (st["stuck_started"] or t - t_start > 2000):
            others = True
            open_conn("slow")
            for _ in range(nr_idle):
                open_conn("idle")
        for when, kind in [r for r in reopen if r[0] <= t]:
            reopen.remove((when, kind))
            open_conn(kind)
        for fd, ev in p.poll(50):
            c = conns.get(fd)
            if not c:
                continue
            if not c.up:
                if c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    close_conn(c, t)
                    continue
                c.up = True
                c.t_up = t
                if c.kind == "idle":
                    st["idle_up"] += 1
                    st["idle_opened"] += 1
                if c.kind == "stuck":
                    c.sock.send(request("/metrics"))
                # The stuck client reads nothing: only a reset or hang-up wakes it.
                p.modify(c.sock, 0 if c.kind == "stuck" else select.POLLIN)
                continue
            if c.kind != "stuck":
                try:
                    if c.sock.recv(4096):
                        continue
                except BlockingIOError:
                    continue
                except OSError:
                    pass
            close_conn(c, t)
        t = now_ms()
        for c in list(conns.values()):
            if c.kind == "slow" and c.up and t >= c.next_byte:
                try:
                    c.sock.send(DRIP_HEAD[c.sent:c.sent + 1])
                    c.sent += 1
                    st["slow_bytes"] += 1
                    c.next_byte = t + 1000
                except BlockingIOError:
                    pass
                except OSError:
                    close_conn(c, t)
            elif c.kind == "stuck" and c.up and not c.started and queued(c.sock) > 0:
                c.started = True
                st["stuck_started"] += 1
                st["stuck_up"] = 1
        with open(status_file + ".tmp", "w") as f:
            json.dump(st, f)
        os.replace(status_file + ".tmp", status_file)


mode, port = sys.argv[1], int(sys.argv[2])
if mode == "raw":
    do_raw(port, sys.argv[3])
elif mode == "stuck":
    do_stuck(port, sys.argv[3])
elif mode == "drip":
    do_drip(port, int(sys.argv[3]))
elif mode == "attack":
    do_attack(port, int(sys.argv[3]), sys.argv[4])
else:
    sys.exit("unknown mode " + mode)
