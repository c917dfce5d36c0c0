"""Reading HTTP/1.1 requests off a plain socket, for the test providers that must answer
below what an ASGI server allows (hang up before the status line, never answer, answer
garbage): tests/integration/test_answer_lost_before_headers.py, test_aiohttp_transport.py."""
from __future__ import annotations

import socket


def read_request(connection: socket.socket, buffered: bytes = b"") -> tuple[bytes | None, bytes]:
    """One whole request (headers and Content-Length body) from `connection`, after the
    `buffered` bytes already read: its request line (None if the peer closed first) and the
    bytes read past it (a next request's start, on a kept-alive connection)."""
    data = buffered
    while b"\r\n\r\n" not in data:
        try:
            chunk = connection.recv(65536)
        except OSError:
            return None, b""
        if not chunk:
            return None, b""
        data += chunk
    head, _, data = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(data) < length:
        chunk = connection.recv(65536)
        if not chunk:
            break
        data += chunk
    return head.split(b"\r\n", 1)[0], data[length:]
