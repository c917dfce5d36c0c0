"""How `subledger serve` runs uvicorn: asyncio's own event loop and the httptools parser.

uvicorn picks both by itself ("auto"): uvloop if it is installed, httptools if it is
installed, else asyncio and h11. The choice is made here instead, so what serves requests
does not depend on what else happens to be installed next to subledger.

- **httptools** (C, pinned in pyproject.toml) rather than h11 (pure Python): in six
  `subledger bench graphql` runs of each, old and new code alternating, the API process
  spent less CPU per `spendPoints` over HTTP in every pair (2.33 ms against 2.63 ms on
  average) and served more spends/s in every pair (415 against 365 on average); the p99
  moved either way (docs/performance.md#the-http-transport).
- **asyncio's loop**, not uvloop: uvloop saved CPU as well, but both runs with it had a p99
  of 536 and 607 ms, against 120-145 ms in the runs around them without it. The commands
  run in executor threads; why their answers wait so much longer under uvloop is not
  worked out, so it stays out.

The tests' in-thread servers (tests/servers.py) use the same settings. The sandbox
gateway's server (`subledger sandbox-gateway`) keeps uvicorn's own choice, which is
httptools too now that it is installed with subledger.
"""
from __future__ import annotations

import socket
from typing import Any

#: uvicorn.Config / uvicorn.run keywords: the event loop and the HTTP/1.1 parser.
UVICORN_TRANSPORT: dict[str, Any] = {"loop": "asyncio", "http": "httptools"}


def shared_port_listener(host: str, port: int) -> socket.socket:
    """The listening socket of `serve --reuse-port`: bound with SO_REUSEPORT, so several `serve`
    processes share the port and the kernel spreads new connections over them.

    It is made with its protocol named (IPPROTO_TCP), not left at 0: asyncio turns Nagle's
    algorithm off (TCP_NODELAY) only on accepted sockets whose protocol reads IPPROTO_TCP,
    and an accepted socket takes the listener's. Left at 0, every answer waited for the
    client's delayed ACK: about 44 ms per request, 363 requests/s for `/healthz` against
    11,355/s on uvicorn's own socket (docs/performance.md#the-shared-port).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listener.bind((host, port))
    return listener
