"""The sandbox gateway served over real HTTP (uvicorn) for tests, and a port with
nothing listening on it."""
from __future__ import annotations

import contextlib
import socket
import threading
import time

import httpx
from collections.abc import Iterator

from gateways.sandbox_app import sandbox_server
from gateways.tls import client_ssl_context


@contextlib.contextmanager
def serve_sandbox() -> Iterator[str]:
    """Run a fresh sandbox on a free 127.0.0.1 port in a thread; yields its base URL."""
    # Bind first and hand uvicorn the socket: the port is known and cannot be taken meanwhile.
    # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets that say so, and without
    # it every answer waits ~40 ms for a delayed ACK (uvicorn writes head and body apart).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    host, port = sock.getsockname()
    server = sandbox_server(host, port, log_level="warning")
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("sandbox gateway server did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def closed_port_url() -> str:
    """A URL on a port that was free a moment ago: connecting to it is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        host, port = sock.getsockname()
    return f"http://{host}:{port}"


@contextlib.contextmanager
def sandbox_control(url: str) -> Iterator[httpx.Client]:
    """An HTTP client on the sandbox's own controls, after resetting it (every look-alike)."""
    with httpx.Client(base_url=url, verify=client_ssl_context()) as client:
        client.post("/sandbox/reset").raise_for_status()
        yield client
