# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
"""One HTTP/1.1 response read off a socket by its Content-Length, for the test clients.

    from httpread import read_response
    status, head, body, rest = read_response(sock, buf=b"", after_head=None)

Reads until the head is whole, then its Content-Length of body (0 without the field);
buf holds bytes already read, rest what came after the body. after_head, if given, is
called once the head is in, before the body is read (a test that holds the body up).
Raises EOFError if the peer closes first: the response is not whole.
"""


def read_response(sock, buf=b"", after_head=None):
    while b"\r\n\r\n" not in buf:
        d = sock.recv(65536)
        if not d:
            raise EOFError("closed before the head was whole")
        buf += d
    head, _, body = buf.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if after_head:
        after_head()
    while len(body) < length:
        d = sock.recv(1 << 20)
        if not d:
            raise EOFError("closed before the body was whole")
        body += d
    status = int(head.split(b" ", 2)[1])
    return status, head, body[:length], body[length:]
