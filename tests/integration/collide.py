#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
"""Sockets whose conns tag equals another's, on purpose (tests/integration/test_collide.sh).

The conns map finds sockwayd's connections by a tag, sw_sock_key_hash() of the socket's key
(include/sockway/hash.h). The hash is no secret: whoever picks the addresses and ports of a
connection can make its key share the tag of one of sockwayd's. The test build cuts the tag
to SW_TEST_SOCK_HASH_BITS (12) bits, so that a search over ports finds such a key at once.

    collide.py tag NETNS LOCAL_IP LOCAL_PORT REMOTE_IP REMOTE_PORT
        prints the tag of that key (IPv4), to check this model against the map
    collide.py backend PORT GATE
        a backend on 127.0.0.1:PORT that answers each request "hello" (keep-alive), but
        only once the file GATE exists; prints "ready", then "request" per request
    collide.py listen IP PORT OUT
        accepts one connection on IP:PORT and writes what it reads to OUT until it closes;
        prints "ready", then "accepted"
    collide.py connect TAG NETNS LISTEN_IP LISTEN_PORT CLIENT_IP SIDE PAYLOAD_FILE
        finds a client port such that the key of SIDE ("server": the accepted socket of
        LISTEN_IP:LISTEN_PORT, whose peer is the client; "client": the client's socket)
        has tag TAG, connects from it, sends PAYLOAD_FILE (may be empty), prints the port
        and the tag as JSON, and closes
"""
import json
import os
import socket
import struct
import sys
import time

BITS = 12
M64 = (1 << 64) - 1
FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x00000100000001B3
AF_INET = 2
SO_NETNS_COOKIE = 71


def final(h):
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & M64
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & M64
    h ^= h >> 33
    return h


def ip_word(ip):
    # The key holds the address in network byte order, read as a native (little-endian) word.
    return struct.unpack("<I", socket.inet_aton(ip))[0]


def tag(netns, local_ip, local_port, remote_ip, remote_port):
    h = FNV_OFFSET ^ netns
    for word in (AF_INET, ip_word(local_ip), 0, 0, 0, ip_word(remote_ip), 0, 0, 0):
        h = ((h ^ word) * FNV_PRIME) & M64
    h = ((h ^ ((local_port << 16) | remote_port)) * FNV_PRIME) & M64
    h = final(h) & ((1 << BITS) - 1)
    return h or 1


def netns_cookie():
    s = socket.socket()
    try:
        return struct.unpack("<Q", s.getsockopt(socket.SOL_SOCKET, SO_NETNS_COOKIE, 8))[0]
    finally:
        s.close()


def backend(port, gate):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(16)
    print("ready", flush=True)
    while True:
        conn, _ = srv.accept()
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                data = conn.recv(65536)
                if not data:
                    break
                buf += data
            if b"\r\n\r\n" not in buf:
                conn.close()
                break
            buf = buf[buf.index(b"\r\n\r\n") + 4:]
            print("request", flush=True)
            while not os.path.exists(gate):
                time.sleep(0.01)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")


def listen(ip, port, out):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((ip, port))
    srv.listen(1)
    print("ready", flush=True)
    conn, _ = srv.accept()
    print("accepted", flush=True)
    with open(out, "wb") as f:
        while True:
            data = conn.recv(65536)
            if not data:
                break
            f.write(data)
            f.flush()


def connect(want, netns, lip, lport, cip, side, payload_file):
    with open(payload_file, "rb") as f:
        payload = f.read()
    for cport in range(20000, 65000):
        if side == "server":
            t = tag(netns, lip, lport, cip, cport)
        else:
            t = tag(netns, cip, cport, lip, lport)
        if t != want:
            continue
        s = socket.socket()
        try:
            s.bind((cip, cport))
        except OSError:
            s.close()
            continue
        s.connect((lip, lport))
        if payload:
            s.sendall(payload)
        print(json.dumps({"port": cport, "tag": t}), flush=True)
        s.close()
        return 0
    print(json.dumps({"error": "no port gives that tag"}), flush=True)
    return 1


def main():
    cmd = sys.argv[1]
    if cmd == "tag":
        print(tag(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5], int(sys.argv[6])))
    elif cmd == "netns":
        print(netns_cookie())
    elif cmd == "backend":
        backend(int(sys.argv[2]), sys.argv[3])
    elif cmd == "listen":
        listen(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    elif cmd == "connect":
        return connect(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5]),
                       sys.argv[6], sys.argv[7], sys.argv[8])
    return 0


if __name__ == "__main__":
    sys.exit(main())
