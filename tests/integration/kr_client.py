#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
"""A client for the kernel-routing tests: it knows, request by request, which path took it.

    kr_client.py PORT probe WARM_PATH FILE [RESPONSES] [HEAD]
    kr_client.py PORT keys N PREFIX HEADER PATH
    kr_client.py PORT stream N PATH MODE [WARM_PATH]
    kr_client.py PORT replay WARM_PATH FILE...
    kr_client.py PORT backend NAME
    kr_client.py PORT bodysplit PATH

PORT is sockwayd's listener on 127.0.0.1. The kernel's counters are read with
"$SOCKWAY -j accel list" (SOCKWAY and SOCKWAY_PIN_ROOT from the environment).

probe: on one connection, sends "GET WARM_PATH" (none when it is -) until one of them is routed by the kernel
  (krouted grew by one across it; for at most 60 s, each waiting for its response, so the
  connection is the kernel's and the lend set of WARM_PATH's backend holds a connection),
  then the bytes of FILE in one send, and reads RESPONSES responses (default 1; HEAD: the
  first has no body). Prints JSON: {"warm": tries, "krouted": growth of krouted across the
  send, "kmiss": {reason: growth}, "status": [...], "bodies": [...], "seen": [X-Seen-Path...]}.
keys: N GETs of PATH with HEADER: PREFIX<i> on one connection, one after the other. Prints
  {"backends": {key: X-Backend}, "krouted": growth of krouted}.
stream: N GETs of PATH/<i> on one connection: MODE seq (each after the last response),
  pipe (all in one send), half (all in one send, then a half-close). Every response must be
  200, carry X-Seen-Path PATH/<i> for the i-th request (in order) and the body X-Backend
  plus a newline (and, with KR_BACKEND set, come from that backend). Prints "OK N" or
  "BAD <what>" and exits 1. With WARM_PATH, the connection
  is warmed first as for probe, and the line is "OK N krouted K", K the growth of krouted
  across the N requests.
replay: warms as probe does, then each FILE's bytes as one request, in turn on the same
  connection; prints {"warm": tries, "status": [...], "krouted": growth across the files}.

bodysplit: on one connection, a GET of PATH/r1 with a lower-case "host:" (the kernel leaves
  it to sockwayd), then a POST of PATH/r2 whose body ("len" bytes), sent 300 ms after its
  head, reads as a whole GET request: the body must reach the backend as R2's body, not be
  routed by the kernel as a request. Prints {"status": [...], "seen": [...], "body": [...],
  "krouted": growth across the body's send, "extra": bytes that came after R2's answer}.
backend: not a client: a keep-alive backend named NAME on 127.0.0.1:PORT, a thread per
  connection, that misbehaves by path: ".../slow" answers after 30 s, ".../reset" closes
  the connection without an answer, ".../chunked" answers in chunks; any other path gets
  200 with the body NAME and a newline, X-Backend and X-Seen-Path. Prints "ready".

Exits 2 on a connection error or a response it cannot read.
"""
import json
import os
import socket
import subprocess
import sys
import threading
import time


def stats():
    out = subprocess.run([os.environ.get("SOCKWAY", ".output/sockway"), "-j", "accel", "list"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["stats"]


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.buf = b""

    def fill(self):
        data = self.s.recv(65536)
        if not data:
            raise EOFError("the server closed the connection")
        self.buf += data

    def line(self):
        while b"\r\n" not in self.buf:
            self.fill()
        i = self.buf.index(b"\r\n")
        ln, self.buf = self.buf[:i], self.buf[i + 2:]
        return ln

    def take(self, n):
        while len(self.buf) < n:
            self.fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def response(self, head_only=False):
        """(status, {lower name: value}, body); interim 1xx responses are skipped."""
        while True:
            status = int(self.line().split(b" ")[1])
            fields = {}
            while True:
                ln = self.line()
                if not ln:
                    break
                name, _, value = ln.partition(b":")
                fields[name.strip().lower().decode()] = value.strip().decode()
            if 100 <= status < 200:
                continue
            break
        if head_only or status in (204, 304):
            return status, fields, b""
        if fields.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.line().split(b";")[0], 16)
                if size == 0:
                    while self.line():
                        pass
                    return status, fields, body
                body += self.take(size)
                self.take(2)
        return status, fields, self.take(int(fields.get("content-length", "0")))


def get(path, extra=b""):
    return b"GET " + path.encode() + b" HTTP/1.1\r\nHost: kr.test\r\n" + extra + b"\r\n"


def warm(c, path):
    """GET path on c until the kernel routed one: the number of tries, or -1."""
    if path == "-":
        return 0
    deadline = time.monotonic() + 60
    tries = 0
    while time.monotonic() < deadline:
        tries += 1
        before = stats()["krouted"]
        c.s.sendall(get(path))
        status, _, _ = c.response()
        if status != 200:
            return -1
        if stats()["krouted"] == before + 1:
            return tries
    return -1


def probe(port, warm_path, file, responses, head):
    c = Conn(port)
    st0 = stats()
    tries = warm(c, warm_path)
    if tries < 0:
        st1 = stats()
        print(json.dumps({"warm": -1, "port": c.s.getsockname()[1],
                          "grew": {k: st1[k] - st0[k] for k in st1
                                   if isinstance(st1[k], int) and st1[k] != st0[k]}}))
        return 1
    with open(file, "rb") as f:
        req = f.read()
    st0 = stats()
    c.s.sendall(req)
    out = {"warm": tries, "port": c.s.getsockname()[1], "status": [], "bodies": [], "seen": []}
    for i in range(responses):
        status, fields, body = c.response(head_only=head and i == 0)
        out["status"].append(status)
        out["bodies"].append(body.decode(errors="replace"))
        out["seen"].append(fields.get("x-seen-path", ""))
    st1 = stats()
    out["krouted"] = st1["krouted"] - st0["krouted"]
    out["kmiss"] = {k[6:]: st1[k] - st0[k] for k in st1 if k.startswith("kmiss_")}
    print(json.dumps(out))
    return 0


def keys(port, n, prefix, header, path):
    c = Conn(port)
    before = stats()["krouted"]
    got = {}
    for i in range(n):
        key = prefix + str(i)
        c.s.sendall(get(path, header.encode() + b": " + key.encode() + b"\r\n"))
        status, fields, _ = c.response()
        if status != 200:
            print("BAD status %d for key %s" % (status, key))
            return 1
        got[key] = fields.get("x-backend", "")
    print(json.dumps({"backends": got, "krouted": stats()["krouted"] - before}))
    return 0


def stream(port, n, path, mode, warm_path):
    c = Conn(port)
    st0 = stats()
    if warm(c, warm_path) < 0:
        st1 = stats()
        print("BAD the connection never warmed: %s" %
              json.dumps({k: st1[k] - st0[k] for k in st1 if isinstance(st1[k], int) and st1[k] != st0[k]}))
        return 1
    before = stats()["krouted"] if warm_path != "-" else 0
    reqs = [get("%s/%d" % (path, i)) for i in range(n)]
    if mode != "seq":
        c.s.sendall(b"".join(reqs))
        if mode == "half":
            c.s.shutdown(socket.SHUT_WR)
    for i in range(n):
        if mode == "seq":
            c.s.sendall(reqs[i])
        status, fields, body = c.response()
        want = "%s/%d" % (path, i)
        if status != 200 or fields.get("x-seen-path") != want or \
                body != fields.get("x-backend", "").encode() + b"\n" or \
                fields.get("x-backend") != os.environ.get("KR_BACKEND", fields.get("x-backend")):
            print("BAD response %d: status %d, seen %r, want %r, body %r" %
                  (i, status, fields.get("x-seen-path"), want, body[:40]))
            return 1
    if warm_path != "-":
        print("OK %d krouted %d" % (n, stats()["krouted"] - before))
    else:
        print("OK %d" % n)
    return 0


def replay(port, warm_path, files):
    c = Conn(port)
    tries = warm(c, warm_path)
    if tries < 0:
        print(json.dumps({"warm": -1}))
        return 1
    before = stats()["krouted"]
    out = []
    for name in files:
        with open(name, "rb") as f:
            c.s.sendall(f.read())
        status, _, _ = c.response()
        out.append(status)
    print(json.dumps({"warm": tries, "status": out, "krouted": stats()["krouted"] - before}))
    return 0


def serve(conn, name):
    c = Conn.__new__(Conn)
    c.s, c.buf = conn, b""
    try:
        while True:
            line = c.line()
            length = 0
            while True:
                ln = c.line()
                if not ln:
                    break
                k, _, v = ln.partition(b":")
                if k.strip().lower() == b"content-length":
                    length = int(v)
            c.take(length)
            path = line.split(b" ")[1].decode()
            if path.endswith("/reset"):
                conn.close()
                return
            if path.endswith("/slow"):
                time.sleep(30)
            head = "HTTP/1.1 200 OK\r\nX-Backend: %s\r\nX-Seen-Path: %s\r\n" % (name, path)
            body = (name + "\n").encode()
            if path.endswith("/chunked"):
                conn.sendall(head.encode() + b"Transfer-Encoding: chunked\r\n\r\n" +
                             b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n")
            else:
                conn.sendall(head.encode() + b"Content-Length: %d\r\n\r\n" % len(body) + body)
    except (OSError, EOFError, ValueError, IndexError):
        conn.close()


def bodysplit(port, path):
    c = Conn(port)
    out = {"status": [], "seen": [], "body": []}
    c.s.sendall(("GET %s/r1 HTTP/1.1\r\nhost: kr.test\r\n\r\n" % path).encode())
    status, fields, _ = c.response()
    out["status"].append(status)
    out["seen"].append(fields.get("x-seen-path", ""))
    out["body"].append(fields.get("x-seen-body-bytes", ""))
    inner = ("GET %s/smuggled HTTP/1.1\r\nHost: kr.test\r\n\r\n" % path).encode()
    c.s.sendall(("POST %s/r2 HTTP/1.1\r\nHost: kr.test\r\nContent-Length: %d\r\n\r\n" %
                 (path, len(inner))).encode())
    time.sleep(0.3)
    before = stats()["krouted"]
    c.s.sendall(inner)
    status, fields, _ = c.response()
    out["krouted"] = stats()["krouted"] - before
    out["status"].append(status)
    out["seen"].append(fields.get("x-seen-path", ""))
    out["body"].append(fields.get("x-seen-body-bytes", ""))
    c.s.settimeout(0.5)
    try:
        c.fill()
    except (socket.timeout, EOFError):
        pass
    out["extra"] = len(c.buf)
    out["len"] = len(inner)
    print(json.dumps(out))
    return 0


def backend(port, name):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(64)
    print("ready", flush=True)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(conn, name), daemon=True).start()


def main():
    port, cmd, args = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    try:
        if cmd == "probe":
            return probe(port, args[0], args[1], int(args[2]) if len(args) > 2 else 1,
                         len(args) > 3 and args[3] == "HEAD")
        if cmd == "keys":
            return keys(port, int(args[0]), args[1], args[2], args[3])
        if cmd == "stream":
            return stream(port, int(args[0]), args[1], args[2], args[3] if len(args) > 3 else "-")
        if cmd == "bodysplit":
            return bodysplit(port, args[0])
        if cmd == "backend":
            return backend(port, args[0])
        if cmd == "replay":
            return replay(port, args[0], args[1:])
    except (OSError, EOFError, ValueError, IndexError) as e:
        print("ERROR %s" % e)
        return 2
    print("unknown command " + cmd)
    return 2


sys.exit(main())
