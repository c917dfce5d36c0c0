"""The listener of `serve --reuse-port` (subledger.http_server.shared_port_listener): served by
asyncio as uvicorn serves it, each accepted connection must have Nagle's algorithm off, as on
uvicorn's own socket. With the listener's protocol left at 0 asyncio did not set TCP_NODELAY
and every answer waited about 40 ms for the client's delayed ACK."""
from __future__ import annotations

import asyncio
import socket

from subledger.http_server import shared_port_listener


async def _nodelay_of_accepted_connections(listeners: list[socket.socket]) -> list[int]:
    """TCP_NODELAY of the server side of one connection to each listener, served by asyncio."""
    seen: asyncio.Queue[int] = asyncio.Queue()

    def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.put_nowait(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    servers = [await asyncio.start_server(accepted, sock=listener) for listener in listeners]
    found = []
    try:
        for listener in listeners:
            # A port shared by two listeners: the kernel picks which one accepts. Either way one
            # connection per listener is answered by one of them; each answer is checked.
            _, writer = await asyncio.open_connection(*listener.getsockname()[:2])
            found.append(await asyncio.wait_for(seen.get(), timeout=10))
            writer.close()
    finally:
        for server in servers:
            server.close()
            await server.wait_closed()
    return found


def test_connections_to_the_shared_port_have_nagle_off() -> None:
    listener = shared_port_listener("127.0.0.1", 0)
    assert listener.proto == socket.IPPROTO_TCP
    assert asyncio.run(_nodelay_of_accepted_connections([listener])) == [1]


def test_a_second_listener_binds_the_same_port() -> None:
    first = shared_port_listener("127.0.0.1", 0)
    second = shared_port_listener("127.0.0.1", first.getsockname()[1])  # would raise EADDRINUSE without SO_REUSEPORT
    assert second.getsockname() == first.getsockname()
    assert asyncio.run(_nodelay_of_accepted_connections([first, second])) == [1, 1]
