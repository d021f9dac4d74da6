#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
"""A backend that records every request it reads, as a naive server would read it.

    record_backend.py NAME PORT DIR [MODE]

Listens on 127.0.0.1:PORT (keep-alive). Each request it parses is written whole (head and
body, as received) to DIR/NAME-<n>.req, n counting from 1, before it is answered. It parses
like a lenient server: the head ends at the first CRLF CRLF; a body is framed by
"Transfer-Encoding: chunked" (read chunk by chunk) or else by the first Content-Length; so
bytes that smuggle a second request show up as a second .req file. Answers
"200 OK" with the body "NAME METHOD TARGET". MODE:
    slow=MS     answer each request MS milliseconds late
    reset       close the connection right after reading a request, answering nothing
    raw=FILE    answer each request with the bytes of FILE, as they are
Prints "ready" once listening.
"""
import os
import socket
import sys
import threading
import time

name, port, out_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
mode = sys.argv[4] if len(sys.argv) > 4 else ""
count = 0
lock = threading.Lock()


def read_until(conn, buf, marker):
    while marker not in buf:
        data = conn.recv(65536)
        if not data:
            return buf, False
        buf += data
    return buf, True


def read_exact(conn, buf, n):
    while len(buf) < n:
        data = conn.recv(65536)
        if not data:
            return buf, False
        buf += data
    return buf, True


def read_line(conn, buf, pos):
    """(buf, offset of the CRLF that ends the line at pos), or -1 at EOF."""
    while buf.find(b"\r\n", pos) < 0:
        data = conn.recv(65536)
        if not data:
            return buf, -1
        buf += data
    return buf, buf.find(b"\r\n", pos)


def read_request(conn, buf):
    """One request from buf and the socket: (raw bytes, head, rest), or None at EOF."""
    buf, ok = read_until(conn, buf, b"\r\n\r\n")
    if not ok:
        return None
    end = buf.index(b"\r\n\r\n") + 4
    head = buf[:end]
    fields = {}
    for line in head.split(b"\r\n")[1:]:
        if b":" in line:
            k, v = line.split(b":", 1)
            fields.setdefault(k.strip().lower(), v.strip())
    if fields.get(b"transfer-encoding", b"").lower() == b"chunked":
        pos = end
        while True:
            buf, eol = read_line(conn, buf, pos)
            if eol < 0:
                return None
            size = int(buf[pos:eol].split(b";")[0], 16)
            pos = eol + 2
            if size == 0:
                # Trailers up to the empty line.
                while True:
                    buf, eol = read_line(conn, buf, pos)
                    if eol < 0:
                        return None
                    empty = eol == pos
                    pos = eol + 2
                    if empty:
                        break
                break
            buf, ok = read_exact(conn, buf, pos + size + 2)
            if not ok:
                return None
            pos += size + 2
        return buf[:pos], head, buf[pos:]
    length = int(fields.get(b"content-length", b"0") or b"0")
    buf, ok = read_exact(conn, buf, end + length)
    if not ok:
        return None
    return buf[:end + length], head, buf[end + length:]


def serve(conn):
    global count
    buf = b""
    try:
        while True:
            got = read_request(conn, buf)
            if got is None:
                return
            raw, head, buf = got
            with lock:
                count += 1
                n = count
            path = os.path.join(out_dir, "%s-%d.req" % (name, n))
            with open(path + ".tmp", "wb") as f:
                f.write(raw)
            os.rename(path + ".tmp", path)
            if mode == "reset":
                conn.close()
                return
            if mode.startswith("slow="):
                time.sleep(int(mode[5:]) / 1000.0)
            if mode.startswith("raw="):
                with open(mode[4:], "rb") as f:
                    conn.sendall(f.read())
                continue
            line = head.split(b"\r\n", 1)[0].split(b" ")
            body = b"%s %s %s" % (name.encode(), line[0], line[1])
            if line[0] == b"HEAD":
                body_out = b""
            else:
                body_out = body
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body_out)
    except OSError:
        return
    finally:
        conn.close()


def main():
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(64)
    print("ready", flush=True)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


main()
